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

const char *const cr_start_states[] = {"trained", "zero", NULL};

/* A recurrent layer's batch-1 state (1, H), not some other state variable
 * (a Dropout layer's step counter, in a model of the library's layers that
 * lists one), which sampling leaves alone. */
static bool is_state_row(const df_variable *v)
{
    const df_tensor t = df_variable_tensor(v);
    return t.dtype == DF_F32 && t.ndim == 2 && t.shape[0] == 1;
}

/* Row `row` of the training batch's state (ck's entry named like v, shape
 * (B, H)) into v, a state row; *loaded whether ck has that entry,
 * *nonzero whether the row has a nonzero value. */
static df_status load_state_row(const df_checkpoint *ck, df_variable *v, int64_t row, bool *loaded, bool *nonzero)
{
    const df_tensor t = df_variable_tensor(v);
    *loaded = *nonzero = false;
    const char *name = df_variable_name(v);
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    if (df_checkpoint_tensor_shape(ck, name, &dtype, &ndim, shape) != DF_OK) return DF_OK;
    if (dtype != DF_F32 || ndim != 2 || shape[1] != t.shape[1] || shape[0] <= row) {
        char have[96];
        return df_error(DF_ERR_FORMAT, "its training state '%s' is %s %s, not f32 (more than %lld, %lld)", name,
                        df_dtype_name(dtype), df_shape_str(ndim, shape, have, sizeof have), (long long)row,
                        (long long)t.shape[1]);
    }
    const size_t bytes = (size_t)(shape[0] * shape[1]) * sizeof(float);
    float *all = malloc(bytes);
    if (!all) return df_error(DF_ERR_NOMEM, "out of memory for the training state '%s'", name);
    df_status st = df_checkpoint_get_tensor_into(ck, name, all, bytes);
    const float *mine = all + row * shape[1];
    if (st == DF_OK) {
        const df_tensor one = df_tensor_make(DF_F32, (void *)mine, 2, (int64_t[]){1, shape[1]});
        st = df_variable_assign(v, &one);
    }
    for (int64_t j = 0; st == DF_OK && j < shape[1] && !*nonzero; j++) *nonzero = mine[j] != 0.0f;
    *loaded = st == DF_OK;
    free(all);
    return st;
}

df_status cr_load_trained_state(cr_model *m, const df_checkpoint *ck, int64_t row, cr_trained_state *what)
{
    enum { CAP = 3 * CR_MAX_LAYERS };
    df_variable *vars[CAP];
    const int n = df_model_state_variables(m->net, 1, CR_STATE_MAIN, vars, CAP);
    if (n < 0) return DF_ERR_STATE;                     /* the message says why */
    if (n > CAP) return df_error(DF_ERR_RANGE, "the model carries %d state variables, at most %d", n, CAP);
    bool any_loaded = false, any_nonzero = false, all_loaded = true;
    df_status st = DF_OK;
    for (int i = 0; i < n && st == DF_OK; i++) {
        if (!is_state_row(vars[i])) continue;
        bool loaded, nonzero;
        st = load_state_row(ck, vars[i], row, &loaded, &nonzero);
        any_loaded |= loaded;
        all_loaded &= loaded;
        any_nonzero |= nonzero;
    }
    if (st == DF_OK && any_loaded && !all_loaded) {
        cr_model_reset_states(m);
        return df_error(DF_ERR_FORMAT, "it holds part of a training state only");
    }
    *what = !any_loaded ? CR_TRAINED_STATE_ABSENT : any_nonzero ? CR_TRAINED_STATE_LOADED : CR_TRAINED_STATE_ZERO;
    return st;
}

/* The model's batch-1 state from row 0 of ck's training state, or a zero
 * one, saying so on stderr, where ck holds none (written by a char-rnn
 * before df_fit) or a zero one (an older `--val` run's). */
df_status cr_start_from_trained_state(cr_model *m, const df_checkpoint *ck, const char *path, const char *who)
{
    cr_trained_state what;
    df_status st = cr_load_trained_state(m, ck, 0, &what);
    if (st != DF_OK) return df_error_prefix(st, path);
    if (what == CR_TRAINED_STATE_ABSENT)
        fprintf(stderr, "%s: note: %s holds no training state (an older char-rnn's): starting from a zero state\n",
                who, path);
    else if (what == CR_TRAINED_STATE_ZERO)
        fprintf(stderr, "%s: note: %s holds a zero training state (an older char-rnn's, trained with --val): "
                "starting from it\n", who, path);
    return DF_OK;
}

static void emit_to_file(const char *utf8, int len, void *ctx)
{
    fwrite(utf8, 1, (size_t)len, ctx);
    fflush(ctx);
}

df_status cr_model_from_open_checkpoint(const df_checkpoint *ck, cr_vocab *vocab, cr_model *m)
{
    cr_config rc;
    df_status st = cr_peek_checkpoint(ck, &rc, vocab);
    if (st == DF_OK) st = cr_model_init(m, &rc);
    if (st != DF_OK) return st;
    if ((st = cr_load_checkpoint(ck, &rc, vocab, m, NULL, NULL)) != DF_OK) cr_model_free(m);
    return st;
}

df_status cr_model_from_checkpoint(const char *path, cr_vocab *vocab, cr_model *m)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    st = cr_model_from_open_checkpoint(ck, vocab, m);
    df_checkpoint_free(ck);
    return df_error_prefix(st, path);
}

df_status cr_sample(const cr_sample_opts *o, FILE *out)
{
    char path[4096];
    df_status st = cr_checkpoint_path(o->checkpoint, o->checkpoint_dir, path, sizeof path);
    cr_vocab *vocab = malloc(sizeof *vocab);
    if (!vocab) return df_error(DF_ERR_NOMEM, "out of memory");
    cr_model m;
    bool have_model = false;
    df_checkpoint *ck = NULL;           /* read once: the weights and the state from the same file */
    if (st == DF_OK) st = df_checkpoint_read(path, &ck);
    if (st == DF_OK) have_model = (st = df_error_prefix(cr_model_from_open_checkpoint(ck, vocab, &m), path)) == DF_OK;
    int n_start, max_start = (int)strlen(o->start) + 1;
    int32_t *probe = malloc((size_t)max_start * sizeof *probe);
    if (st == DF_OK && !probe) st = df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK)                          /* refuse a bad --start before printing anything */
        st = cr_vocab_encode(vocab, o->start, probe, max_start, &n_start);
    if (st == DF_OK && n_start == 0) st = df_error(DF_ERR_ARG, "--start must not be empty");
    free(probe);
    if (st == DF_OK && !o->zero_state) st = cr_start_from_trained_state(&m, ck, path, "char-rnn sample");
    df_checkpoint_free(ck);
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
