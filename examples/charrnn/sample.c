/* sample.c — temperature sampling from the model's logits at batch 1. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runstate.h"
#include "sample.h"

void cr_sample_defaults(cr_sample_opts *o)
{
    *o = (cr_sample_opts){.checkpoint_dir = "./training_checkpoints", .start = "ROMEO: ", .length = 1000,
                          .temperature = 1.0f, .seed = 1};
}

/* Draws an index from softmax(logits / temperature); temperature 0 = argmax. */
static int draw(const float *logits, int V, float temperature, df_rng *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    double total = 0, p[CR_MAX_VOCAB];
    for (int i = 0; i < V; i++) total += p[i] = exp((logits[i] - logits[best]) / temperature);
    double u = df_rng_uniform(rng) * total;
    for (int i = 0; i < V; i++) {
        if (u < p[i]) return i;
        u -= p[i];
    }
    return V - 1;
}

/* cr_generate, from the model's batch-1 state as it is when reset is false. */
static df_status generate(cr_model *m, const cr_vocab *vocab, const char *start, int length, float temperature,
                          uint64_t seed, bool reset, cr_emit_fn emit, void *ctx)
{
    int max = (int)strlen(start) + 1, n;
    int32_t *ids = malloc((size_t)max * sizeof *ids);
    if (!ids) return df_error(DF_ERR_NOMEM, "out of memory");
    df_status st = cr_vocab_encode(vocab, start, ids, max, &n);
    if (st == DF_OK && n == 0) st = df_error(DF_ERR_ARG, "--start must not be empty");
    df_rng rng;
    df_rng_seed(&rng, seed);
    if (reset) cr_model_reset_states(m);
    df_tensor logits;
    if (st == DF_OK) {
        df_tensor prime = df_tensor_make(DF_I32, ids, 2, (int64_t[]){1, n});
        st = cr_logits(m, &prime, &logits);              /* the whole start string at once */
    }
    int V = m->cfg.vocab;
    const float *last = st == DF_OK ? (const float *)logits.data + (int64_t)(n - 1) * V : NULL;
    for (int i = 0; i < length && st == DF_OK; i++) {
        int32_t next = draw(last, V, temperature, &rng);
        char utf8[4];
        emit(utf8, cr_utf8_encode(vocab->chars[next], utf8), ctx);
        df_tensor one = df_tensor_make(DF_I32, &next, 2, (int64_t[]){1, 1});
        st = cr_logits(m, &one, &logits);
        last = logits.data;
    }
    cr_model_reset_states(m);
    free(ids);
    return st;
}

df_status cr_generate(cr_model *m, const cr_vocab *vocab, const char *start, int length, float temperature,
                      uint64_t seed, cr_emit_fn emit, void *ctx)
{
    return generate(m, vocab, start, length, temperature, seed, true, emit, ctx);
}

df_status cr_generate_from_current_state(cr_model *m, const cr_vocab *vocab, const char *start, int length,
                                         float temperature, uint64_t seed, cr_emit_fn emit, void *ctx)
{
    return generate(m, vocab, start, length, temperature, seed, false, emit, ctx);
}

/* Row `row` of the training batch's state (ck's entry named like v, shape
 * (B, H)) into v, a batch-1 state (1, H). Other state variables (a Dropout
 * layer's step counter) are left alone. */
static df_status load_state_row(const df_checkpoint *ck, df_variable *v, int64_t row)
{
    const df_tensor t = df_variable_tensor(v);
    if (t.dtype != DF_F32 || t.ndim != 2 || t.shape[0] != 1) return DF_OK;
    const char *name = df_variable_name(v);
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    if (df_checkpoint_tensor_shape(ck, name, &dtype, &ndim, shape) != DF_OK)
        return df_error(DF_ERR_FORMAT, "the checkpoint holds no training state '%s' (use --state zero)", name);
    if (dtype != DF_F32 || ndim != 2 || shape[1] != t.shape[1] || shape[0] <= row)
        return df_error(DF_ERR_FORMAT, "the checkpoint's training state '%s' is not (>%lld, %lld) f32", name,
                        (long long)row, (long long)t.shape[1]);
    const size_t bytes = (size_t)(shape[0] * shape[1]) * sizeof(float);
    float *all = malloc(bytes);
    if (!all) return df_error(DF_ERR_NOMEM, "out of memory for the training state '%s'", name);
    df_status st = df_checkpoint_get_tensor_into(ck, name, all, bytes);
    if (st == DF_OK) {
        const df_tensor one = df_tensor_make(DF_F32, all + row * shape[1], 2, (int64_t[]){1, shape[1]});
        st = df_variable_assign(v, &one);
    }
    free(all);
    return st;
}

df_status cr_load_trained_state(cr_model *m, const char *path, int64_t row)
{
    df_variable *vars[3 * CR_MAX_LAYERS];
    const int n = df_model_state_variables(m->net, 1, CR_STATE_MAIN, vars, (int)(sizeof vars / sizeof *vars));
    if (n < 0) return DF_ERR_NOMEM;      /* creating them: the message says */
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    for (int i = 0; i < n && st == DF_OK; i++) st = load_state_row(ck, vars[i], row);
    df_checkpoint_free(ck);
    return df_error_prefix(st, path);
}

static void emit_to_file(const char *utf8, int len, void *ctx)
{
    fwrite(utf8, 1, (size_t)len, ctx);
    fflush(ctx);
}

df_status cr_model_from_checkpoint(const char *path, cr_vocab *vocab, cr_model *m)
{
    cr_config rc;
    df_status st = cr_peek_run(path, &rc, vocab);
    if (st == DF_OK) st = cr_model_init(m, &rc);
    if (st != DF_OK) return st;
    if ((st = cr_load_run(path, &rc, vocab, m, NULL, NULL)) != DF_OK) cr_model_free(m);
    return st;
}

df_status cr_sample(const cr_sample_opts *o, FILE *out)
{
    char path[4096];
    df_status st = cr_checkpoint_path(o->checkpoint, o->checkpoint_dir, path, sizeof path);
    cr_vocab *vocab = malloc(sizeof *vocab);
    if (!vocab) return df_error(DF_ERR_NOMEM, "out of memory");
    cr_model m;
    bool have_model = false;
    if (st == DF_OK) have_model = (st = cr_model_from_checkpoint(path, vocab, &m)) == DF_OK;
    int n_start, max_start = (int)strlen(o->start) + 1;
    int32_t *probe = malloc((size_t)max_start * sizeof *probe);
    if (st == DF_OK && !probe) st = df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK)                          /* refuse a bad --start before printing anything */
        st = cr_vocab_encode(vocab, o->start, probe, max_start, &n_start);
    if (st == DF_OK && n_start == 0) st = df_error(DF_ERR_ARG, "--start must not be empty");
    free(probe);
    if (st == DF_OK && !o->zero_state) st = cr_load_trained_state(&m, path, 0);
    if (st == DF_OK) {
        fputs(o->start, out);
        fflush(out);
        st = generate(&m, vocab, o->start, o->length, o->temperature, o->seed, o->zero_state, emit_to_file, out);
        fputc('\n', out);
        if (st == DF_OK && (fflush(out) != 0 || ferror(out)))   /* e.g. a full disk or /dev/full */
            st = df_error(DF_ERR_IO, "cannot write the sample: %s", strerror(errno ? errno : EIO));
    }
    if (have_model) cr_model_free(&m);
    free(vocab);
    return st;
}
