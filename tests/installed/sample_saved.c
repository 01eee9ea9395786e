/* sample_saved.c — a program outside the tree, built with `pkg-config
 * dagflow` (tests/installed.sh, the README's "Saved graphs"): loads a
 * char-rnn sampler exported with `char-rnn export` and writes text from it.
 * It has none of char-rnn's code: the step, its weights and its LSTM state
 * are in the file, the characters in its "vocab" metadata.
 *
 *   sample_saved FILE START LENGTH SEED TEMPERATURE
 *
 * Draws as `dagflow-run FILE --sample` does (softmax of logits/temperature,
 * one df_rng_uniform per character), so both print the same text. */
#include <dagflow.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The vocabulary: character i is vocab[at[i] .. at[i+1]) (UTF-8). */
typedef struct chars {
    const char *vocab;
    size_t at[1025];
    int n;
} chars;

static int utf8_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

static int split_vocab(const char *vocab, size_t size, chars *c)
{
    c->vocab = vocab;
    c->n = 0;
    for (size_t at = 0; at < size && c->n < 1024; at += (size_t)utf8_length((unsigned char)vocab[at]))
        c->at[c->n++] = at;
    c->at[c->n] = size;
    return c->n;
}

static int id_of(const chars *c, const char *s, int len)
{
    for (int i = 0; i < c->n; i++)
        if ((int)(c->at[i + 1] - c->at[i]) == len && memcmp(c->vocab + c->at[i], s, (size_t)len) == 0) return i;
    return -1;
}

/* One step: the logits after feeding id (the LSTM state stays in s). */
static const float *step(df_saved *s, int32_t id)
{
    df_tensor in = df_tensor_make(DF_I32, &id, 2, (int64_t[]){1, 1}), logits;
    return df_saved_run(s, &in, 1, &logits, 1) == DF_OK ? logits.data : NULL;
}

static int draw(const float *logits, int V, float temperature, df_rng *rng, double *p)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    double total = 0;
    for (int i = 0; i < V; i++) total += p[i] = exp((logits[i] - logits[best]) / temperature);
    double u = df_rng_uniform(rng) * total;
    for (int i = 0; i < V; i++) {
        if (u < p[i]) return i;
        u -= p[i];
    }
    return V - 1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: sample_saved FILE START LENGTH SEED TEMPERATURE\n");
        return 2;
    }
    const char *start = argv[2];
    int length = atoi(argv[3]);
    float temperature = (float)atof(argv[5]);
    df_saved *s;
    if (df_saved_load(argv[1], &s) != DF_OK) {
        fprintf(stderr, "sample_saved: %s\n", df_last_error());
        return 1;
    }
    const void *vocab;
    size_t size;
    chars c;
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    df_saved_signature(s, &n_in, &in, &n_out, &out);
    if (df_saved_metadata(s, "vocab", &vocab, &size) != DF_OK || split_vocab(vocab, size, &c) < 1 || n_in != 1 ||
        n_out < 1 || out[0].ndim != 3 || out[0].shape[2] != c.n) {
        fprintf(stderr, "sample_saved: %s is not a char-rnn sampler (a vocabulary and logits of its size)\n", argv[1]);
        return 1;
    }
    const float *logits = NULL;
    for (const char *at = start; *at; at += utf8_length((unsigned char)*at)) {
        int id = id_of(&c, at, utf8_length((unsigned char)*at));
        if (id < 0 || !(logits = step(s, id))) {
            fprintf(stderr, "sample_saved: %s\n", id < 0 ? "a start character is not in the vocabulary" : df_last_error());
            return 1;
        }
    }
    if (!logits) {
        fprintf(stderr, "sample_saved: the start text is empty\n");
        return 1;
    }
    double *p = malloc((size_t)c.n * sizeof *p);
    df_rng rng;
    df_rng_seed(&rng, strtoull(argv[4], NULL, 10));
    fputs(start, stdout);
    for (int i = 0; i < length && logits && p; i++) {
        int next = draw(logits, c.n, temperature, &rng, p);
        fwrite(c.vocab + c.at[next], 1, c.at[next + 1] - c.at[next], stdout);
        if (i + 1 < length) logits = step(s, next);
    }
    putchar('\n');
    int rc = logits && p ? 0 : 1;
    if (rc) fprintf(stderr, "sample_saved: %s\n", p ? df_last_error() : "out of memory");
    free(p);
    df_saved_free(s);
    return rc;
}
