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

/* The decimal metadata entry key, in [lo, hi]; DF_ERR_ARG naming it otherwise. */
static df_status read_count(const df_saved *s, const char *key, int lo, int hi, int *out)
{
    const void *data;
    size_t size;
    char buf[16];
    if (df_saved_metadata(s, key, &data, &size) != DF_OK)
        return df_error(DF_ERR_ARG, "a positional char model needs \"%s\" metadata", key);
    char *end;
    long v = 0;
    if (size > 0 && size < sizeof buf) {
        memcpy(buf, data, size);
        buf[size] = '\0';
        v = strtol(buf, &end, 10);
    }
    if (size == 0 || size >= sizeof buf || *end || v < lo || v > hi)
        return df_error(DF_ERR_ARG, "the \"%s\" metadata must be a number in [%d, %d]", key, lo, hi);
    *out = (int)v;
    return DF_OK;
}

static bool is_spec(const df_tensor_spec *t, df_dtype dtype, int ndim, const int64_t *shape)
{
    if (t->dtype != dtype || t->ndim != ndim) return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return false;
    return true;
}

/* What the file says: its vocabulary size and, for a positional step, the
 * context and keep (0 and 0 otherwise). */
static df_status check_model(const df_saved *s, int *vocab_size, int *context, int *keep)
{
    const void *kind;
    size_t len;
    if (df_saved_metadata(s, "dagflow.sampler", &kind, &len) != DF_OK || len != 4 || memcmp(kind, "char", 4) != 0)
        return df_error(DF_ERR_ARG, "not a char model: no \"dagflow.sampler\" = \"char\" metadata");
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    df_saved_signature(s, &n_in, &in, &n_out, &out);
    bool positional = n_in == 2 && is_spec(&in[1], DF_I32, 1, (int64_t[]){1});
    if (!(n_in == 1 || positional) || !is_spec(&in[0], DF_I32, 2, (int64_t[]){1, 1}) || n_out < 1 ||
        out[0].dtype != DF_F32 || out[0].ndim != 3 || out[0].shape[2] < 1)
        return df_error(DF_ERR_ARG, "not a char model: the step must take i32 (1,1) (and, with positions, i32 (1)) "
                                    "and give f32 (1,1,V)");
    *context = *keep = 0;
    df_status st = DF_OK;
    if (positional) st = read_count(s, DS_CONTEXT_KEY, 1, 1 << 20, context);
    if (positional && st == DF_OK) st = read_count(s, DS_KEEP_KEY, 0, *context - 1, keep);
    if (st != DF_OK) return st;
    uint32_t *chars;
    int n;
    if ((st = read_vocab(s, &chars, &n)) != DF_OK) return st;
    free(chars);
    if (n != out[0].shape[2])
        return df_error(DF_ERR_ARG, "the vocabulary has %d characters, the logits %lld", n, (long long)out[0].shape[2]);
    *vocab_size = n;
    return DF_OK;
}

df_status ds_check_char_model(const df_saved *s, int *vocab_size)
{
    int context, keep;
    return check_model(s, vocab_size, &context, &keep);
}

int ds_draw(const float *logits, int V, float temperature, int top_k, df_rng *rng, double *p)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    float cut = -INFINITY;                 /* the top_k-th largest logit (p as scratch) */
    if (top_k > 0 && top_k < V) {
        for (int i = 0; i < V; i++) p[i] = logits[i];
        for (int n = 0; n < top_k; n++) {
            int m = 0;
            for (int i = 1; i < V; i++)
                if (p[i] > p[m]) m = i;
            cut = (float)p[m];
            p[m] = -INFINITY;
        }
    }
    double total = 0;
    for (int i = 0; i < V; i++) total += p[i] = logits[i] < cut ? 0.0 : exp((logits[i] - logits[best]) / temperature);
    double u = df_rng_uniform(rng) * total;
    for (int i = 0; i < V; i++) {
        if (u < p[i]) return i;
        u -= p[i];
    }
    return V - 1;
}

/* The step and, for a positional one, the tokens held and the crop. */
typedef struct driver {
    df_saved *s;
    int context, keep, len;
    int32_t *window;
} driver;

static df_status run_step(driver *d, int32_t id, const float **logits)
{
    int32_t pos = d->len;
    df_tensor in[2] = {df_tensor_make(DF_I32, &id, 2, (int64_t[]){1, 1}),
                       df_tensor_make(DF_I32, &pos, 1, (int64_t[]){1})}, out;
    df_status st = df_saved_run(d->s, in, d->context ? 2 : 1, &out, 1);
    *logits = out.data;
    if (st == DF_OK && d->context) d->window[d->len++] = id;
    return st;
}

/* A positional step whose context is full first replays the last keep
 * tokens at positions 0..keep-1 (their logits unused): the cache variables
 * then hold their keys and values, and the positions beyond are masked. */
static df_status step(driver *d, int32_t id, const float **logits)
{
    df_status st = DF_OK;
    if (d->context && d->len == d->context) {
        memmove(d->window, d->window + d->len - d->keep, (size_t)d->keep * sizeof *d->window);
        d->len = 0;
        for (int t = 0; t < d->keep && st == DF_OK; t++) st = run_step(d, d->window[t], logits);
    }
    return st == DF_OK ? run_step(d, id, logits) : st;
}

df_status ds_sample_chars(df_saved *s, const char *start, int length, float temperature, uint64_t seed,
                          ds_emit_fn emit, void *ctx)
{
    return ds_sample_chars_top_k(s, start, length, temperature, 0, seed, emit, ctx);
}

df_status ds_sample_chars_top_k(df_saved *s, const char *start, int length, float temperature, int top_k,
                                uint64_t seed, ds_emit_fn emit, void *ctx)
{
    int V;
    driver d = {.s = s};
    df_status st = check_model(s, &V, &d.context, &d.keep);
    if (st != DF_OK) return st;
    if (!start || !*start) return df_error(DF_ERR_ARG, "the start text must not be empty");
    uint32_t *chars;
    if ((st = read_vocab(s, &chars, &V)) != DF_OK) return st;
    double *p = malloc((size_t)V * sizeof *p);
    d.window = malloc((size_t)(d.context + 1) * sizeof *d.window);
    if (!p || !d.window) st = df_error(DF_ERR_NOMEM, "out of memory");
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
        if (st == DF_OK) st = step(&d, id, &logits);
        at += (size_t)(len ? len : 1);
    }
    df_rng rng;
    df_rng_seed(&rng, seed);
    for (int i = 0; i < length && st == DF_OK; i++) {
        int32_t next = ds_draw(logits, V, temperature, top_k, &rng, p);
        char utf8[4];
        emit(utf8, utf8_encode(chars[next], utf8), ctx);
        if (i + 1 < length) st = step(&d, next, &logits);
    }
    df_saved_reset(s);
    free(d.window);
    free(p);
    free(chars);
    return st;
}
