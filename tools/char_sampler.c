/* char_sampler.c — temperature sampling from a saved char model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "char_sampler.h"

/* Decodes one UTF-8 character at s (n bytes left); 0 on a bad sequence. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *c)
{
    int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t v = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    *c = v;
    return len;
}

static int utf8_encode(uint32_t c, char *out)
{
    if (c < 0x80) { out[0] = (char)c; return 1; }
    if (c < 0x800) { out[0] = (char)(0xC0 | c >> 6); out[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12); out[1] = (char)(0x80 | (c >> 6 & 0x3F)); out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | c >> 18); out[1] = (char)(0x80 | (c >> 12 & 0x3F));
    out[2] = (char)(0x80 | (c >> 6 & 0x3F)); out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* The vocabulary's code points (malloc'd) and their count. */
static df_status read_vocab(const df_saved *s, uint32_t **chars, int *n)
{
    const void *data;
    size_t size;
    if (df_saved_metadata(s, "vocab", &data, &size) != DF_OK)
        return df_error(DF_ERR_ARG, "not a char model: no \"vocab\" metadata");
    *chars = malloc((size + 1) * sizeof **chars);
    if (!*chars) return df_error(DF_ERR_NOMEM, "out of memory");
    *n = 0;
    for (size_t at = 0; at < size;) {
        int len = utf8_decode((const unsigned char *)data + at, size - at, &(*chars)[*n]);
        if (!len) {
            free(*chars);
            return df_error(DF_ERR_ARG, "the \"vocab\" metadata is not UTF-8 (byte %zu)", at);
        }
        at += (size_t)len;
        (*n)++;
    }
    return DF_OK;
}

df_status ds_check_char_model(const df_saved *s, int *vocab_size)
{
    const void *kind;
    size_t len;
    if (df_saved_metadata(s, "dagflow.sampler", &kind, &len) != DF_OK || len != 4 || memcmp(kind, "char", 4) != 0)
        return df_error(DF_ERR_ARG, "not a char model: no \"dagflow.sampler\" = \"char\" metadata");
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    df_saved_signature(s, &n_in, &in, &n_out, &out);
    if (n_in != 1 || in[0].dtype != DF_I32 || in[0].ndim != 2 || in[0].shape[0] != 1 || in[0].shape[1] != 1 ||
        n_out < 1 || out[0].dtype != DF_F32 || out[0].ndim != 3 || out[0].shape[2] < 1)
        return df_error(DF_ERR_ARG, "not a char model: the step must take i32 (1,1) and give f32 (1,1,V)");
    uint32_t *chars;
    int n;
    df_status st = read_vocab(s, &chars, &n);
    if (st != DF_OK) return st;
    free(chars);
    if (n != out[0].shape[2])
        return df_error(DF_ERR_ARG, "the vocabulary has %d characters, the logits %lld", n, (long long)out[0].shape[2]);
    *vocab_size = n;
    return DF_OK;
}

/* As char-rnn's sample.c: softmax(logits / temperature) in double. */
static int draw(const float *logits, int V, float temperature, df_rng *rng, double *p)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    double total = 0;
    for (int i = 0; i < V; i++) total += p[i] = exp((logits[i] - logits[best]) / temperature);
    double u = df_rng_uniform(rng) * total;
    for (int i = 0; i < V; i++) {
        if (u < p[i]) return i;
        u -= p[i];
    }
    return V - 1;
}

static df_status step(df_saved *s, int32_t id, const float **logits)
{
    df_tensor in = df_tensor_make(DF_I32, &id, 2, (int64_t[]){1, 1}), out;
    df_status st = df_saved_run(s, &in, 1, &out, 1);
    *logits = out.data;
    return st;
}

df_status ds_sample_chars(df_saved *s, const char *start, int length, float temperature, uint64_t seed,
                          ds_emit_fn emit, void *ctx)
{
    int V;
    df_status st = ds_check_char_model(s, &V);
    if (st != DF_OK) return st;
    if (!start || !*start) return df_error(DF_ERR_ARG, "the start text must not be empty");
    uint32_t *chars;
    if ((st = read_vocab(s, &chars, &V)) != DF_OK) return st;
    double *p = malloc((size_t)V * sizeof *p);
    if (!p) st = df_error(DF_ERR_NOMEM, "out of memory");
    df_saved_reset(s);
    const float *logits = NULL;
    size_t n = strlen(start);
    for (size_t at = 0; at < n && st == DF_OK;) {
        uint32_t c = 0;
        int len = utf8_decode((const unsigned char *)start + at, n - at, &c);
        if (!len) st = df_error(DF_ERR_ARG, "the start text is not UTF-8 (byte %zu)", at);
        int id = 0;
        while (st == DF_OK && id < V && chars[id] != c) id++;
        if (st == DF_OK && id == V) st = df_error(DF_ERR_ARG, "start character U+%04X is not in the vocabulary", c);
        if (st == DF_OK) st = step(s, id, &logits);
        at += (size_t)(len ? len : 1);
    }
    df_rng rng;
    df_rng_seed(&rng, seed);
    for (int i = 0; i < length && st == DF_OK; i++) {
        int32_t next = draw(logits, V, temperature, &rng, p);
        char utf8[4];
        emit(utf8, utf8_encode(chars[next], utf8), ctx);
        st = step(s, next, &logits);
    }
    df_saved_reset(s);
    free(p);
    free(chars);
    return st;
}
