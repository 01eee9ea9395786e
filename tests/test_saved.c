/* test_saved.c — saved graphs: export and load give the live graph's bits
 * (a char-rnn sampler for 200 steps and its text, a train step for 10
 * steps, an open batch dimension), and every kind of corrupt file is
 * refused with DF_ERR_FORMAT naming what is wrong. The fuzz seed corpus
 * (fuzz/corpus/saved) is replayed through the harness, whose runs of what
 * loads are checked too; dagflow-run lists the char models' metadata. With
 * DF_WRITE_SAVED_SEEDS=DIR the tests also write their files there as seeds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "dagflow.h"
#include "model.h"
#include "sample.h"
#include "export.h"
#include "../tools/char_sampler.h"
#include "../graph/gradcheck.h"
#include "../graph/graph.h"
#include "../ops/registry.h"            /* the op table, for the registry-wide check */

#define FUZZ_ENTRY fuzz_saved_one
#include "../fuzz/fuzz_saved.c"

enum { HEADER = 24, TRAILER = 8 };

/* ------------------------------------------------------------ files */

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/dfsaved.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name)
{
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len + 1);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

/* Copies a test's file into DF_WRITE_SAVED_SEEDS (the fuzz corpus). */
static void keep_as_seed(const char *path, const char *name)
{
    const char *dir = getenv("DF_WRITE_SAVED_SEEDS");
    if (!dir) return;
    size_t len;
    unsigned char *buf = slurp(path, &len);
    char out[4096];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    FILE *f = fopen(out, "wb");
    cr_assert_not_null(f, "cannot write %s", out);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
}

/* ------------------------------------------------ a dense train step */

typedef struct dense {
    df_variable *w, *b;
    df_optimizer *opt;
} dense;

static df_status build_train_step(df_graph *g, df_node **in, void *user)
{
    dense *d = user;
    df_node *w = df_var(g, d->w), *b = df_var(g, d->b);
    df_node *pred = df_tanh(g, df_add(g, df_matmul(g, in[0], w, false, false), b));
    df_node *loss = df_mean(g, df_square(g, df_sub(g, pred, in[1])), NULL, 0, false);
    df_node *grads[2], *xs[2] = {w, b};
    df_status st = df_gradients(g, loss, NULL, 2, xs, grads);
    df_variable *vars[2] = {d->w, d->b};
    if (st == DF_OK) st = df_optimizer_apply(g, d->opt, 2, vars, grads);
    if (st == DF_OK) st = df_graph_output(g, loss);
    return st;
}

static void dense_init(dense *d)
{
    df_rng rng;
    df_rng_seed(&rng, 3);
    d->w = df_variable_new("dense/w", DF_F32, 2, (int64_t[]){3, 2}, df_init_glorot_uniform(), &rng);
    d->b = df_variable_new("dense/b", DF_F32, 1, (int64_t[]){2}, df_init_uniform(-0.1f, 0.1f), &rng);
    d->opt = df_adam_new(0.05f, 0.9f, 0.999f, 1e-7f);
    cr_assert(d->w && d->b && d->opt);
}

static void dense_free(dense *d)
{
    df_optimizer_free(d->opt);
    df_variable_free(d->w);
    df_variable_free(d->b);
}

static const df_tensor_spec dense_sig[2] = {{DF_F32, 2, {4, 3}}, {DF_F32, 2, {4, 2}}};

/* Batch k of the train step's data. */
static void dense_batch(int k, float *x, float *y)
{
    for (int i = 0; i < 12; i++) x[i] = (float)((i * 7 + k * 3) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < 8; i++) y[i] = (float)((i * 5 + k) % 7) / 7.0f - 0.4f;
}

/* Exports the dense train step (before any step) to path. */
static void export_dense(dense *d, df_function **f, const char *path)
{
    dense_init(d);
    *f = df_function_new_signature("train_step", build_train_step, d, 2, dense_sig);
    cr_assert_not_null(*f);
    cr_assert_eq(df_function_export(*f, 2, dense_sig, path, 0, NULL), DF_OK, "%s", df_last_error());
}

Test(saved, train_step_continues_bit_for_bit)
{
    make_tmpdir();
    dense d;
    df_function *f;
    const char *path = tmp_path("step.dfg");
    export_dense(&d, &f, path);
    keep_as_seed(path, "dense_train_step.dfg");
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    for (int k = 0; k < 10; k++) {
        float x[12], y[8];
        dense_batch(k, x, y);
        df_tensor in[2] = {df_tensor_make(DF_F32, x, 2, (int64_t[]){4, 3}), df_tensor_make(DF_F32, y, 2, (int64_t[]){4, 2})};
        df_tensor live, saved;
        cr_assert_eq(df_function_call(f, in, 2, &live, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_saved_run(s, in, 2, &saved, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(memcmp(live.data, saved.data, 4), 0, "step %d: loss %.9g live, %.9g saved", k,
                     *(float *)live.data, *(float *)saved.data);
    }
    /* The weights and every optimizer slot moved identically. */
    df_variable *live_vars[2] = {d.w, d.b};
    for (int i = 0; i < 2; i++) {
        df_variable *v = df_saved_find_variable(s, df_variable_name(live_vars[i]));
        cr_assert_not_null(v, "no variable '%s' in the file", df_variable_name(live_vars[i]));
        df_tensor a = df_variable_tensor(live_vars[i]), b = df_variable_tensor(v);
        cr_assert_eq(memcmp(a.data, b.data, (size_t)df_variable_numel(v) * 4), 0, "'%s' differs after 10 steps",
                     df_variable_name(v));
    }
    df_variable *state[16];
    int n = df_optimizer_state(d.opt, state, 16);
    cr_assert_gt(n, 1);
    for (int i = 0; i < n; i++) {
        df_variable *v = df_saved_find_variable(s, df_variable_name(state[i]));
        if (!v) continue;                                  /* e.g. the learning rate is a read, still there */
        df_tensor a = df_variable_tensor(state[i]), b = df_variable_tensor(v);
        cr_assert_eq(memcmp(a.data, b.data, (size_t)df_variable_numel(v) * (a.dtype == DF_I32 ? 4 : 4)), 0,
                     "optimizer state '%s' differs", df_variable_name(v));
    }
    cr_assert_not_null(df_saved_find_variable(s, "optimizer/learning_rate"));
    /* Reset puts the weights back to the exported values: the first loss again. */
    float x[12], y[8];
    dense_batch(0, x, y);
    df_tensor in[2] = {df_tensor_make(DF_F32, x, 2, (int64_t[]){4, 3}), df_tensor_make(DF_F32, y, 2, (int64_t[]){4, 2})};
    df_tensor first, again;
    df_saved *fresh;
    cr_assert_eq(df_saved_load(path, &fresh), DF_OK);
    cr_assert_eq(df_saved_run(fresh, in, 2, &first, 1), DF_OK);
    cr_assert_eq(df_saved_reset(s), DF_OK);
    cr_assert_eq(df_saved_run(s, in, 2, &again, 1), DF_OK);
    cr_assert_eq(memcmp(first.data, again.data, 4), 0, "after reset: %g, fresh: %g", *(float *)again.data,
                 *(float *)first.data);
    df_saved_free(fresh);
    df_saved_free(s);
    df_function_free(f);
    dense_free(&d);
    remove_tmpdir();
}

/* ------------------------------------------------ an open batch dim */

static df_status build_open(df_graph *g, df_node **in, void *user)
{
    dense *d = user;
    df_node *y = df_relu(g, df_add(g, df_matmul(g, in[0], df_var(g, d->w), false, false), df_var(g, d->b)));
    return df_graph_output(g, df_mul(g, y, df_scalar(g, 2.0f)));
}

Test(saved, open_dimension_stays_open)
{
    make_tmpdir();
    dense d;
    dense_init(&d);
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *f = df_function_new_signature("open", build_open, &d, 1, &sig);
    const char *path = tmp_path("open.dfg");
    df_saved_meta meta = {"note", "open batch", 10};
    cr_assert_eq(df_function_export(f, 1, &sig, path, 1, &meta), DF_OK, "%s", df_last_error());
    keep_as_seed(path, "open_batch.dfg");
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    cr_assert_eq(df_saved_signature(s, &n_in, &in, &n_out, &out), DF_OK);
    cr_assert_eq(n_in, 1);
    cr_assert_eq(n_out, 1);
    cr_assert_eq(in[0].shape[0], DF_DYNAMIC);
    cr_assert_eq(in[0].shape[1], 3);
    cr_assert_eq(out[0].ndim, 2);
    cr_assert_eq(out[0].shape[0], DF_DYNAMIC, "output dim 0 is %lld", (long long)out[0].shape[0]);
    cr_assert_eq(out[0].shape[1], 2);
    const void *data;
    size_t size;
    cr_assert_eq(df_saved_metadata(s, "note", &data, &size), DF_OK);
    cr_assert_eq(size, 10);
    cr_assert_eq(memcmp(data, "open batch", 10), 0);
    cr_assert_eq(df_saved_metadata(s, "missing", &data, &size), DF_ERR_ARG);
    for (int rows = 1; rows <= 7; rows += 3) {
        float x[21];
        for (int i = 0; i < rows * 3; i++) x[i] = (float)i / 5.0f - 1.0f;
        df_tensor t = df_tensor_make(DF_F32, x, 2, (int64_t[]){rows, 3}), live, saved;
        cr_assert_eq(df_function_call(f, &t, 1, &live, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_saved_run(s, &t, 1, &saved, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(saved.shape[0], rows);
        cr_assert_eq(memcmp(live.data, saved.data, (size_t)rows * 2 * 4), 0, "%d rows differ", rows);
    }
    df_tensor bad = df_tensor_make(DF_F32, (float[4]){0}, 2, (int64_t[]){2, 2}), o;
    cr_assert_eq(df_saved_run(s, &bad, 1, &o, 1), DF_ERR_SHAPE, "a (2,2) input for (None,3)");
    df_saved_free(s);
    /* Exported again after runs at concrete sizes: still open, same results. */
    cr_assert_eq(df_function_export(f, 1, &sig, path, 1, &meta), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_saved_signature(s, &n_in, &in, &n_out, &out), DF_OK);
    cr_assert_eq(in[0].shape[0], DF_DYNAMIC);
    cr_assert_eq(out[0].shape[0], DF_DYNAMIC);
    float x5[15];
    for (int i = 0; i < 15; i++) x5[i] = (float)i / 7.0f - 1.0f;
    df_tensor t5 = df_tensor_make(DF_F32, x5, 2, (int64_t[]){5, 3}), live5, saved5;
    cr_assert_eq(df_function_call(f, &t5, 1, &live5, 1), DF_OK);
    cr_assert_eq(df_saved_run(s, &t5, 1, &saved5, 1), DF_OK, "%s", df_last_error());
    cr_assert_eq(memcmp(live5.data, saved5.data, 5 * 2 * 4), 0);
    df_saved_free(s);
    df_function_free(f);
    dense_free(&d);
    remove_tmpdir();
}

Test(saved, export_refuses_bad_arguments)
{
    make_tmpdir();
    dense d;
    df_function *f;
    export_dense(&d, &f, tmp_path("a.dfg"));
    df_saved_meta twice[2] = {{"k", "a", 1}, {"k", "b", 1}};
    cr_assert_eq(df_function_export(f, 2, dense_sig, tmp_path("b.dfg"), 2, twice), DF_ERR_ARG);
    cr_assert(strstr(df_last_error(), "given twice"), "%s", df_last_error());
    cr_assert_eq(access(tmp_path("b.dfg"), F_OK), -1, "a refused export wrote a file");
    df_tensor_spec other[2] = {{DF_F32, 2, {5, 3}}, {DF_F32, 2, {5, 2}}};
    cr_assert_eq(df_function_export(f, 2, other, tmp_path("c.dfg"), 0, NULL), DF_ERR_ARG);
    cr_assert_eq(df_function_export(f, 2, dense_sig, "/nonexistent-dir/x.dfg", 0, NULL), DF_ERR_IO);
    /* Over an existing file: replaced whole, no temporary left behind. */
    cr_assert_eq(df_function_export(f, 2, dense_sig, tmp_path("a.dfg"), 0, NULL), DF_OK);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 1", tmpdir);
    cr_assert_eq(system(cmd), 0, "a temporary file was left in %s", tmpdir);
    df_function_free(f);
    dense_free(&d);
    remove_tmpdir();
}

Test(saved, missing_file_is_io_error)
{
    df_saved *s = (df_saved *)1;
    cr_assert_eq(df_saved_load("/nonexistent/file.dfg", &s), DF_ERR_IO);
    cr_assert_null(s);
}

/* ------------------------------------------------ char-rnn's sampler */

static void small_vocab(cr_vocab *v)
{
    const char *chars = "\n !,.:;?ABEIMORT'abcdefghilmnorstuwy";
    v->size = (int)strlen(chars);
    for (int i = 0; i < v->size; i++) v->chars[i] = (unsigned char)chars[i];
    for (int i = 1; i < v->size; i++)                     /* ascending, as the vocab requires */
        for (int k = i; k > 0 && v->chars[k] < v->chars[k - 1]; k--) {
            uint32_t t = v->chars[k];
            v->chars[k] = v->chars[k - 1];
            v->chars[k - 1] = t;
        }
}

static void small_model(cr_model *m, const cr_vocab *v, cr_cell cell)
{
    cr_config cfg = {.vocab = v->size, .embed = 8, .hidden = 16, .learning_rate = 0.01f, .seed = 5, .cell = cell};
    cr_assert_eq(cr_model_init(m, &cfg), DF_OK, "%s", df_last_error());
}

static void logits_equal_for_200_steps(cr_cell cell, const char *seed_name)
{
    make_tmpdir();
    cr_vocab *vocab = malloc(sizeof *vocab);
    small_vocab(vocab);
    cr_model m;
    small_model(&m, vocab, cell);
    const char *path = tmp_path("sampler.dfg");
    cr_assert_eq(cr_export_model_sampler(&m, vocab, path), DF_OK, "%s", df_last_error());
    keep_as_seed(path, seed_name);
    cr_model_reset_states(&m);               /* the file starts from the zero state, as sample --state zero does */
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    int V;
    cr_assert_eq(ds_check_char_model(s, &V), DF_OK, "%s", df_last_error());
    cr_assert_eq(V, vocab->size);
    int32_t id = 3;
    for (int k = 0; k < 200; k++) {
        df_tensor x = df_tensor_make(DF_I32, &id, 2, (int64_t[]){1, 1}), live, saved;
        cr_assert_eq(cr_logits(&m, &x, &live), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_saved_run(s, &x, 1, &saved, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(memcmp(live.data, saved.data, (size_t)V * 4), 0, "step %d: logits differ (%.9g vs %.9g)", k,
                     ((float *)live.data)[0], ((float *)saved.data)[0]);
        id = (int32_t)((id * 7 + k) % V);
    }
    df_saved_free(s);
    cr_model_free(&m);
    free(vocab);
    remove_tmpdir();
}

Test(saved, charrnn_lstm_sampler_logits_bit_identical) { logits_equal_for_200_steps(CR_CELL_LSTM, "charrnn_lstm.dfg"); }
Test(saved, charrnn_gru_sampler_logits_bit_identical) { logits_equal_for_200_steps(CR_CELL_GRU, "charrnn_gru.dfg"); }

typedef struct text { char buf[2048]; size_t len; } text;

static void append(const char *utf8, int len, void *ctx)
{
    text *t = ctx;
    if (t->len + (size_t)len < sizeof t->buf) {
        memcpy(t->buf + t->len, utf8, (size_t)len);
        t->len += (size_t)len;
        t->buf[t->len] = 0;
    }
}

Test(saved, charrnn_sampler_same_text_for_same_seed)
{
    make_tmpdir();
    cr_vocab *vocab = malloc(sizeof *vocab);
    small_vocab(vocab);
    cr_model m;
    small_model(&m, vocab, CR_CELL_LSTM);
    const char *path = tmp_path("sampler.dfg");
    cr_assert_eq(cr_export_model_sampler(&m, vocab, path), DF_OK, "%s", df_last_error());
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    text live = {.len = 0}, saved = {.len = 0}, other = {.len = 0};
    cr_assert_eq(cr_generate(&m, vocab, "R", 400, 1.0f, 7, append, &live), DF_OK, "%s", df_last_error());
    cr_assert_eq(ds_sample_chars(s, "R", 400, 1.0f, 7, append, &saved), DF_OK, "%s", df_last_error());
    cr_assert_eq(ds_sample_chars(s, "R", 400, 1.0f, 8, append, &other), DF_OK, "%s", df_last_error());
    cr_assert_eq(live.len, 400);
    cr_assert_str_eq(saved.buf, live.buf);
    cr_assert_str_neq(other.buf, live.buf, "another seed gave the same text: the test cannot tell");
    df_saved_free(s);
    cr_model_free(&m);
    free(vocab);
    remove_tmpdir();
}

/* ------------------------------------------------ many ops */

/* A step through most of the registry (forward ops and their gradients, an
 * SGD update), to compare with the live graph and to seed the fuzzer with
 * every op's attributes. */
typedef struct wide { df_variable *wq, *gain, *bias, *emb, *step; df_optimizer *opt; } wide;

static df_status build_wide(df_graph *g, df_node **in, void *user)
{
    wide *w = user;
    df_node *x = in[0], *ids = in[1];
    df_node *wq = df_var(g, w->wq), *gain = df_var(g, w->gain), *bias = df_var(g, w->bias), *emb = df_var(g, w->emb);
    df_node *h = df_add(g, x, df_gather(g, emb, ids));
    h = df_dropout(g, h, 0.1f, df_var(g, w->step), 11);
    df_node *ln = df_layer_norm(g, h, gain, bias, 1e-5f);
    df_node *q = df_reshape(g, df_matmul(g, df_reshape(g, ln, 2, (int64_t[]){8, 8}), wq, false, false), 3,
                            (int64_t[]){2, 4, 8});
    df_node *att = df_attention(g, q, ln, ln, true, 0.35f);
    df_node *s = df_causal_mask(g, df_batch_matmul(g, q, att, false, true), -1e9f);
    df_node *o = df_batch_matmul(g, df_softmax(g, s, -1), ln, false, false);
    df_node *t = df_transpose(g, o, (int[]){0, 2, 1});
    df_node *c = df_concat(g, 2, (df_node *[]){t, t}, 2);
    df_node *sl = df_slice(g, c, (int64_t[]){0, 1, 0}, (int64_t[]){2, 4, -1});
    df_node *pd = df_pad(g, sl, (int64_t[]){0, 0, 0}, 3, (int64_t[]){2, 4, 8});
    df_node *mx = df_reduce_max(g, pd, (int[]){2}, 1, true);
    df_node *am = df_argmax(g, pd, 2);
    df_node *oh = df_one_hot(g, am, 8);
    df_node *wh = df_where(g, df_greater(g, pd, x), pd, oh);
    df_node *pw = df_pow(g, df_sigmoid(g, df_sub(g, wh, mx)), 1.5f);
    df_node *ls = df_log_softmax(g, pw, 2);
    df_node *loss = df_sparse_softmax_cross_entropy(g, df_reshape(g, ls, 2, (int64_t[]){8, 8}),
                                                    df_reshape(g, am, 1, (int64_t[]){8}));
    loss = df_add(g, loss, df_mean(g, df_mul(g, df_cast(g, ids, DF_F32), df_logsumexp(g, pw, 2, false)), NULL, 0, false));
    df_node *vars[4] = {wq, gain, bias, emb}, *grads[4];
    df_status st = df_gradients(g, loss, NULL, 4, vars, grads);
    df_variable *vs[4] = {w->wq, w->gain, w->bias, w->emb};
    if (st == DF_OK) st = df_optimizer_apply(g, w->opt, 4, vs, grads);
    if (st == DF_OK) df_assign_add(g, w->step, df_cast(g, df_fill_like(g, df_var(g, w->step), 1.0f), DF_I32));
    if (st == DF_OK) st = df_graph_output(g, loss);
    if (st == DF_OK) st = df_graph_output(g, am);
    return st == DF_OK ? df_graph_status(g) : st;
}

Test(saved, wide_graph_matches_live_for_3_steps)
{
    make_tmpdir();
    df_rng rng;
    df_rng_seed(&rng, 9);
    wide w = {
        .wq = df_variable_new("wq", DF_F32, 2, (int64_t[]){8, 8}, df_init_glorot_uniform(), &rng),
        .gain = df_variable_new("gain", DF_F32, 1, (int64_t[]){8}, df_init_uniform(0.5f, 1.5f), &rng),
        .bias = df_variable_new("bias", DF_F32, 1, (int64_t[]){8}, df_init_uniform(-0.1f, 0.1f), &rng),
        .emb = df_variable_new("emb", DF_F32, 2, (int64_t[]){10, 8}, df_init_uniform(-1, 1), &rng),
        .step = df_variable_new("step", DF_I32, 0, NULL, df_init_zeros(), NULL),
        .opt = df_sgd_momentum_new(0.1f, 0.9f, true),
    };
    cr_assert(w.wq && w.gain && w.bias && w.emb && w.step && w.opt);
    cr_assert_eq(df_optimizer_set_global_clipnorm(w.opt, 1.0f), DF_OK);
    df_tensor_spec sig[2] = {{DF_F32, 3, {2, 4, 8}}, {DF_I32, 2, {2, 4}}};
    df_function *f = df_function_new_signature("wide", build_wide, &w, 2, sig);
    const char *path = tmp_path("wide.dfg");
    cr_assert_eq(df_function_export(f, 2, sig, path, 0, NULL), DF_OK, "%s", df_last_error());
    keep_as_seed(path, "wide_step.dfg");
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    for (int k = 0; k < 3; k++) {
        float x[64];
        int32_t ids[8];
        for (int i = 0; i < 64; i++) x[i] = (float)((i * 13 + k * 5) % 17) / 17.0f - 0.5f;
        for (int i = 0; i < 8; i++) ids[i] = (i * 3 + k) % 10;
        df_tensor in[2] = {df_tensor_make(DF_F32, x, 3, (int64_t[]){2, 4, 8}), df_tensor_make(DF_I32, ids, 2, (int64_t[]){2, 4})};
        df_tensor live[2], saved[2];
        cr_assert_eq(df_function_call(f, in, 2, live, 2), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_saved_run(s, in, 2, saved, 2), DF_OK, "%s", df_last_error());
        cr_assert_eq(memcmp(live[0].data, saved[0].data, 4), 0, "step %d: loss %.9g vs %.9g", k, *(float *)live[0].data,
                     *(float *)saved[0].data);
        cr_assert_eq(memcmp(live[1].data, saved[1].data, 8 * 4), 0, "step %d: argmax differs", k);
    }
    df_tensor a = df_variable_tensor(w.emb), b = df_variable_tensor(df_saved_find_variable(s, "emb"));
    cr_assert_eq(memcmp(a.data, b.data, 80 * 4), 0, "the embedding differs after 3 steps");
    cr_assert_eq(*(int32_t *)df_variable_tensor(df_saved_find_variable(s, "step")).data, 3);
    df_saved_free(s);
    df_function_free(f);
    df_optimizer_free(w.opt);
    df_variable *all[5] = {w.wq, w.gain, w.bias, w.emb, w.step};
    for (int i = 0; i < 5; i++) df_variable_free(all[i]);
    remove_tmpdir();
}

/* char-rnn's whole train step (forward, BPTT through the fused cells,
 * clipping, the optimizer, the carried state) for each cell. */
Test(saved, charrnn_train_steps_continue_bit_for_bit)
{
    make_tmpdir();
    cr_vocab *vocab = malloc(sizeof *vocab);
    small_vocab(vocab);
    const struct { cr_cell cell; int layers; float dropout, clip; cr_opt_kind opt; const char *seed; } runs[] = {
        {CR_CELL_LSTM, 2, 0.2f, 0, CR_OPT_ADAM, "charrnn_lstm_train.dfg"},
        {CR_CELL_GRU, 1, 0, 1.0f, CR_OPT_RMSPROP, "charrnn_gru_train.dfg"},
        {CR_CELL_RNN, 1, 0, 0, CR_OPT_SGD, "charrnn_rnn_train.dfg"},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        cr_config cfg = {.vocab = vocab->size, .embed = 8, .hidden = 16, .learning_rate = 0.01f, .seed = 5,
                         .cell = runs[r].cell, .layers = runs[r].layers, .dropout = runs[r].dropout,
                         .clipnorm = runs[r].clip, .optimizer = runs[r].opt};
        cr_model m;
        cr_assert_eq(cr_model_init(&m, &cfg), DF_OK, "%s", df_last_error());
        df_graph *g;
        cr_assert_eq(cr_compile_step(&m, 2, 5, DF_PASS_ALL, &g), DF_OK, "%s", df_last_error());
        const char *path = tmp_path("train.dfg");
        cr_assert_eq(df_graph_export(g, path, 0, NULL), DF_OK, "%s", df_last_error());
        keep_as_seed(path, runs[r].seed);
        df_saved *s;
        cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
        for (int k = 0; k < 4; k++) {
            int32_t x[10], y[10];
            for (int i = 0; i < 10; i++) x[i] = (i * 5 + k) % vocab->size, y[i] = (i * 7 + k + 1) % vocab->size;
            df_tensor in[2] = {df_tensor_make(DF_I32, x, 2, (int64_t[]){2, 5}), df_tensor_make(DF_I32, y, 2, (int64_t[]){2, 5})};
            df_tensor live, saved;
            cr_assert_eq(df_graph_run(g, in, 2, &live, 1), DF_OK, "%s", df_last_error());
            cr_assert_eq(df_saved_run(s, in, 2, &saved, 1), DF_OK, "%s", df_last_error());
            cr_assert_eq(memcmp(live.data, saved.data, 4), 0, "run %zu step %d: loss %.9g vs %.9g", r, k,
                         *(float *)live.data, *(float *)saved.data);
        }
        for (int i = 0; i < m.n_params; i++) {
            df_variable *v = df_saved_find_variable(s, df_variable_name(m.params[i]));
            cr_assert_not_null(v, "'%s' not in the file", df_variable_name(m.params[i]));
            cr_assert_eq(memcmp(df_variable_tensor(v).data, df_variable_tensor(m.params[i]).data,
                                (size_t)df_variable_numel(v) * 4), 0, "run %zu: '%s' differs", r, df_variable_name(v));
        }
        df_saved_free(s);
        df_graph_free(g);
        cr_model_free(&m);
    }
    free(vocab);
    remove_tmpdir();
}

/* ------------------------------------------------ corrupt files */

/* Where the fields of a saved graph are (a reader of the format written
 * here independently of the library's, so a loader bug is not mirrored). */
typedef struct layout {
    size_t op_name[64], op_version[64];
    char op_names[64][32];
    int n_ops;
    size_t node_at[512], node_n_in[512], node_inputs[512], node_dtype[512], node_dims[512], node_attr_size[512],
        node_attrs[512], node_var[512];
    int node_op[512], node_ndim[512], n_nodes;
    size_t outputs;
} layout;

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void wr64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }

static bool holds_variable(const char *op)
{
    return !strcmp(op, "variable") || !strcmp(op, "assign") || !strcmp(op, "assign_add") || !strncmp(op, "apply_", 6);
}

static void map_layout(const unsigned char *b, layout *l)
{
    memset(l, 0, sizeof *l);
    size_t at = HEADER + 4;                          /* past the passes */
    l->n_ops = (int)rd32(b + at), at += 4;
    for (int i = 0; i < l->n_ops; i++) {
        uint32_t n = rd32(b + at);
        l->op_name[i] = at + 4;
        memcpy(l->op_names[i], b + at + 4, n);
        at += 4 + n;
        l->op_version[i] = at, at += 4;
    }
    uint32_t n_vars = rd32(b + at);
    at += 4;
    for (uint32_t i = 0; i < n_vars; i++) {
        at += 4 + rd32(b + at);                      /* name */
        uint32_t dtype = rd32(b + at), ndim = rd32(b + at + 4);
        at += 8;
        int64_t numel = 1;
        for (uint32_t d = 0; d < ndim; d++, at += 8) numel *= (int64_t)rd64(b + at);
        (void)dtype;
        at += (size_t)numel * 4;
    }
    l->n_nodes = (int)rd32(b + at), at += 4;
    for (int k = 0; k < l->n_nodes; k++) {
        l->node_at[k] = at;
        l->node_op[k] = (int)rd32(b + at), at += 4;
        l->node_n_in[k] = at;
        uint32_t n_in = rd32(b + at);
        at += 4;
        l->node_inputs[k] = at, at += 4 * n_in;
        l->node_dtype[k] = at, at += 4;
        l->node_ndim[k] = (int)rd32(b + at), at += 4;
        l->node_dims[k] = at;
        int64_t numel = 1;
        for (int d = 0; d < l->node_ndim[k]; d++, at += 8) numel *= (int64_t)rd64(b + at);
        at += 4 + rd32(b + at);                      /* name */
        l->node_attr_size[k] = at;
        uint32_t size = rd32(b + at);
        at += 4;
        l->node_attrs[k] = at, at += size;
        const char *op = l->op_names[l->node_op[k]];
        if (holds_variable(op)) l->node_var[k] = at, at += 4;
        if (!strcmp(op, "constant")) at += (size_t)numel * 4;
    }
    l->outputs = at;
}

static int find_node(const layout *l, const char *op)
{
    for (int k = 0; k < l->n_nodes; k++)
        if (!strcmp(l->op_names[l->node_op[k]], op)) return k;
    cr_assert_fail("no '%s' node in the file", op);
    return -1;
}

/* A fresh, valid file to corrupt: the dense train step. */
static unsigned char *valid_file(size_t *len, layout *l)
{
    make_tmpdir();
    dense d;
    df_function *f;
    const char *path = tmp_path("valid.dfg");
    export_dense(&d, &f, path);
    unsigned char *buf = slurp(path, len);
    df_function_free(f);
    dense_free(&d);
    remove_tmpdir();
    map_layout(buf, l);
    return buf;
}

/* Fixes the header's payload size and the checksum after an edit, so that
 * the loader gets past them to the field under test. */
static void reframe(unsigned char *buf, size_t len)
{
    wr64(buf + 16, len - HEADER - TRAILER);
    wr64(buf + len - TRAILER, XXH64(buf, len - TRAILER, 0));
}

/* The file must be refused with DF_ERR_FORMAT and a message containing want. */
static void expect_refused(const unsigned char *buf, size_t len, const char *want)
{
    df_saved *s = (df_saved *)1;
    df_status st = df_saved_load_memory(buf, len, &s);
    cr_assert_eq(st, DF_ERR_FORMAT, "status %d for a file that should say '%s' (%s)", st, want,
                 st == DF_OK ? "loaded" : df_last_error());
    cr_assert_null(s);
    cr_assert(strstr(df_last_error(), want), "expected '%s' in: %s", want, df_last_error());
}

Test(saved_corrupt, valid_file_loads)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    df_saved *s;
    cr_assert_eq(df_saved_load_memory(buf, len, &s), DF_OK, "%s", df_last_error());
    df_saved_free(s);
    cr_assert_eq(l.outputs + 4 + 4 * 1 < len, true, "the layout reader is out of step");
    free(buf);
}

Test(saved_corrupt, flipped_byte_fails_the_checksum)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    for (size_t at = HEADER; at < len - TRAILER; at += (len - HEADER) / 23 + 1) {
        buf[at] ^= 0x10;
        expect_refused(buf, len, "checksum mismatch");
        buf[at] ^= 0x10;
    }
    buf[len - 1] ^= 1;                               /* the stored checksum itself */
    expect_refused(buf, len, "checksum mismatch");
    free(buf);
}

Test(saved_corrupt, truncated_anywhere)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    expect_refused(buf, 0, "no DFGRAPH magic");
    expect_refused(buf, 20, "truncated");
    for (size_t cut = HEADER + TRAILER; cut < len; cut += len / 37 + 1) expect_refused(buf, cut, "truncated");
    /* With a header that agrees with the shorter file, the sections run out. */
    for (size_t cut = HEADER + TRAILER + 4; cut < l.outputs; cut += len / 41 + 1) {
        unsigned char *copy = malloc(cut);
        memcpy(copy, buf, cut - TRAILER);
        reframe(copy, cut);
        expect_refused(copy, cut, "truncated");
        free(copy);
    }
    free(buf);
}

Test(saved_corrupt, trailing_bytes)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    unsigned char *longer = malloc(len + 3);
    memcpy(longer, buf, len - TRAILER);
    memset(longer + len - TRAILER, 0, 3);
    reframe(longer, len + 3);
    expect_refused(longer, len + 3, "3 bytes after the last section");
    free(longer);
    free(buf);
}

Test(saved_corrupt, wrong_magic)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    memcpy(buf, "DAGFLOW", 8);                       /* a checkpoint's magic */
    expect_refused(buf, len, "no DFGRAPH magic");
    free(buf);
}

Test(saved_corrupt, newer_format_version)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    wr32(buf + 8, 2);
    reframe(buf, len);
    expect_refused(buf, len, "format version 2 is newer than this library's 1");
    free(buf);
}

Test(saved_corrupt, newer_op_version)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    wr32(buf + l.op_version[l.node_op[k]], 2);
    reframe(buf, len);
    expect_refused(buf, len, "op 'matmul' is version 2, newer than this library's 1");
    free(buf);
}

Test(saved_corrupt, unknown_op)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    memcpy(buf + l.op_name[l.node_op[k]], "matmux", 6);
    reframe(buf, len);
    expect_refused(buf, len, "unknown op 'matmux'");
    free(buf);
}

Test(saved_corrupt, node_input_not_earlier)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    wr32(buf + l.node_inputs[k], (uint32_t)k);       /* itself */
    reframe(buf, len);
    char want[64];
    snprintf(want, sizeof want, "node %d ('matmul'): input 0 is node %d, not an earlier node", k, k);
    expect_refused(buf, len, want);
    wr32(buf + l.node_inputs[k], 0xFFFFFFF0u);
    reframe(buf, len);
    expect_refused(buf, len, "not an earlier node");
    free(buf);
}

Test(saved_corrupt, input_count_the_op_does_not_take)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    wr32(buf + l.node_n_in[k], 1);                   /* matmul of one input: its infer would read in[1] */
    reframe(buf, len);
    char want[96];
    snprintf(want, sizeof want, "node %d ('matmul'): 1 inputs, a number the op does not take", k);
    expect_refused(buf, len, want);
    free(buf);
}

Test(saved, every_op_declares_its_input_count)
{
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        bool declared = false;
        for (int n = 0; n <= 6 && !declared; n++) df_op_takes_inputs(op, n, &declared);
        cr_assert(declared, "op '%s' has no input count in ops/registry.c: saved graphs cannot load it", op->name);
    }
}

/* The declared counts must admit every node the constructors make: every
 * node of every gradcheck case (forward and gradient) of every op. */
Test(saved, declared_input_counts_admit_what_the_constructors_build)
{
    int nodes = 0;
    for (int i = 0; i < df_op_registry_count; i++) {
        for (const df_gradcheck_case *c = df_op_registry[i]->gradcheck; c && c->build; c++) {
            df_graph *g;
            cr_assert_eq(df_gradcheck_case_graph(c, &g), DF_OK, "%s", df_last_error());
            for (int k = 0; k < g->n_nodes; k++, nodes++) {
                const df_node *n = g->nodes[k];
                bool declared;
                cr_expect(df_op_takes_inputs(n->op, n->n_in, &declared) && declared,
                          "op '%s' (case '%s' of %s) was built with %d inputs, outside its declared %d..%d", n->op->name,
                          c->desc, df_op_registry[i]->name, n->n_in, n->op->min_inputs, n->op->max_inputs);
            }
            df_graph_free(g);
        }
    }
    cr_assert_gt(nodes, 500);
}

Test(saved_corrupt, op_index_out_of_table)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    wr32(buf + l.node_at[2], (uint32_t)l.n_ops);
    reframe(buf, len);
    expect_refused(buf, len, "node 2: op");
    free(buf);
}

Test(saved_corrupt, attributes_of_wrong_size)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    uint32_t size = rd32(buf + l.node_attr_size[k]);
    wr32(buf + l.node_attr_size[k], size + 1);
    reframe(buf, len);
    char want[96];
    snprintf(want, sizeof want, "%u attribute bytes, this library's op has %u", size + 1, size);
    expect_refused(buf, len, want);
    free(buf);
}

Test(saved_corrupt, bool_attribute_not_0_or_1)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    buf[l.node_attrs[k] + 1] = 2;                    /* transpose_b */
    reframe(buf, len);
    expect_refused(buf, len, "attribute byte 1 is 2, a bool");
    free(buf);
}

Test(saved_corrupt, inconsistent_shapes_with_valid_checksum)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");                 /* (4,3) x (3,2) -> (4,2) */
    cr_assert_eq(rd64(buf + l.node_dims[k] + 8), 2);
    wr64(buf + l.node_dims[k] + 8, 5);
    reframe(buf, len);
    expect_refused(buf, len, "inconsistent shapes: the file records f32 (4,5), shape inference gives f32 (4,2)");
    free(buf);
}

Test(saved_corrupt, recorded_dtype_differs)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    wr32(buf + l.node_dtype[k], DF_I32);
    reframe(buf, len);
    expect_refused(buf, len, "inconsistent shapes: the file records i32");
    wr32(buf + l.node_dtype[k], 7);
    reframe(buf, len);
    expect_refused(buf, len, "unknown dtype 7");
    free(buf);
}

Test(saved_corrupt, shapes_inference_rejects)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "matmul");
    /* matmul(x, x): (4,3) x (4,3) does not multiply */
    uint32_t first = rd32(buf + l.node_inputs[k]);
    wr32(buf + l.node_inputs[k] + 4, first);
    reframe(buf, len);
    expect_refused(buf, len, "rejected by shape inference");
    free(buf);
}

Test(saved_corrupt, variable_index_out_of_range)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "variable");
    wr32(buf + l.node_var[k], 1000);
    reframe(buf, len);
    expect_refused(buf, len, "variable 1000 of");
    free(buf);
}

Test(saved_corrupt, dimension_out_of_range)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    int k = find_node(&l, "placeholder");
    wr64(buf + l.node_dims[k], (uint64_t)-5);
    reframe(buf, len);
    expect_refused(buf, len, "dimension 0 is -5");
    wr32(buf + l.node_dims[k] - 4, 9);               /* the rank */
    reframe(buf, len);
    expect_refused(buf, len, "rank 9");
    free(buf);
}

Test(saved_corrupt, output_out_of_range)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    cr_assert_eq(rd32(buf + l.outputs), 1);
    wr32(buf + l.outputs + 4, (uint32_t)l.n_nodes);
    reframe(buf, len);
    expect_refused(buf, len, "output 0 is node");
    free(buf);
}

Test(saved_corrupt, huge_counts_are_refused_before_allocating)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    wr32(buf + l.node_at[0] - 4, 1u << 25);          /* the node count: allowed, but not in this file */
    reframe(buf, len);
    expect_refused(buf, len, "truncated: 33554432 nodes cannot fit");
    wr32(buf + l.node_at[0] - 4, 0x7FFFFFFF);
    reframe(buf, len);
    expect_refused(buf, len, "truncated: 2147483647 nodes cannot fit");
    free(buf);
}

/* A fused chain: its program's operands are checked. */
static df_status build_chain(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_node *x = in[0];
    return df_graph_output(g, df_tanh(g, df_add(g, df_mul(g, x, x), df_scalar(g, 1.0f))));
}

Test(saved_corrupt, fused_program_operands)
{
    make_tmpdir();
    df_tensor_spec sig = {DF_F32, 1, {6}};
    df_function *f = df_function_new_signature("chain", build_chain, NULL, 1, &sig);
    const char *path = tmp_path("chain.dfg");
    cr_assert_eq(df_function_export(f, 1, &sig, path, 0, NULL), DF_OK, "%s", df_last_error());
    keep_as_seed(path, "fused_chain.dfg");
    size_t len;
    unsigned char *buf = slurp(path, &len);
    df_saved *s;
    cr_assert_eq(df_saved_load_memory(buf, len, &s), DF_OK, "%s", df_last_error());
    float x[6] = {-1, -0.5f, 0, 0.5f, 1, 2}, want[6];
    df_tensor t = df_tensor_make(DF_F32, x, 1, (int64_t[]){6}), live, saved;
    cr_assert_eq(df_function_call(f, &t, 1, &live, 1), DF_OK);
    memcpy(want, live.data, sizeof want);
    cr_assert_eq(df_saved_run(s, &t, 1, &saved, 1), DF_OK);
    cr_assert_eq(memcmp(want, saved.data, sizeof want), 0);
    df_saved_free(s);
    layout l;
    map_layout(buf, &l);
    int k = find_node(&l, "fused_elementwise");
    unsigned char *prog = buf + l.node_attrs[k];     /* int n, then {code, a, b} */
    int n = (int)rd32(prog);
    cr_assert_geq(n, 2, "the chain fused into %d instructions", n);
    prog[4 + 3 * (n - 1) + 1] = 0x7F;                /* the last instruction reads input 127 */
    reframe(buf, len);
    expect_refused(buf, len, "operand 0 is 127");
    prog[4 + 3 * (n - 1) + 1] = (unsigned char)(-n);       /* ... or its own result, not computed yet */
    reframe(buf, len);
    char own[64];
    snprintf(own, sizeof own, "instruction %d: operand 0 is %d", n - 1, -n);
    expect_refused(buf, len, own);
    prog[4 + 3 * (n - 1) + 1] = 0xFF;
    wr32(prog, 16 + 1);
    reframe(buf, len);
    expect_refused(buf, len, "fused program of 17 instructions");
    wr32(prog, (uint32_t)n);
    prog[4 + 0] = 0;                                 /* op-table entry 0: placeholder, not elementwise */
    reframe(buf, len);
    expect_refused(buf, len, "is not an elementwise op");
    free(buf);
    df_function_free(f);
    remove_tmpdir();
}

/* Attributes only a constructor used to guarantee, found by the fuzzer. */
static df_status build_reshape(df_graph *g, df_node **in, void *user)
{
    (void)user;
    return df_graph_output(g, df_tanh(g, df_reshape(g, in[0], 2, (int64_t[]){3, 2})));
}

Test(saved_corrupt, reshape_attributes)
{
    make_tmpdir();
    df_tensor_spec sig = {DF_F32, 2, {2, 3}};
    df_function *f = df_function_new_signature("reshape", build_reshape, NULL, 1, &sig);
    const char *path = tmp_path("reshape.dfg");
    cr_assert_eq(df_function_export(f, 1, &sig, path, 0, NULL), DF_OK, "%s", df_last_error());
    size_t len;
    unsigned char *buf = slurp(path, &len);
    layout l;
    map_layout(buf, &l);
    unsigned char *attrs = buf + l.node_attrs[find_node(&l, "reshape")];   /* int64 shape[4], int32 ndim, mask */
    cr_assert_eq(rd32(attrs + 32), 2);
    wr32(attrs + 32, 5);
    reframe(buf, len);
    expect_refused(buf, len, "target rank 5 not in 0..4");
    wr32(attrs + 32, 2);
    wr64(attrs, (uint64_t)1 << 62);
    wr64(attrs + 8, (uint64_t)1 << 62);
    reframe(buf, len);
    expect_refused(buf, len, "target shape too large");
    free(buf);
    df_function_free(f);
    remove_tmpdir();
}

Test(saved_corrupt, sum_to_rank)
{
    size_t len;
    layout l;
    unsigned char *buf = valid_file(&len, &l);
    unsigned char *attrs = buf + l.node_attrs[find_node(&l, "sum_to")];   /* int64 shape[4], int64 ndim */
    wr64(attrs + 32, (uint64_t)INT64_C(-2147483648));
    reframe(buf, len);
    expect_refused(buf, len, "cannot sum");
    wr64(attrs + 32, 5);
    reframe(buf, len);
    expect_refused(buf, len, "cannot sum");
    free(buf);
}

/* ------------------------------------------------ the fuzz corpus */

/* Feeds every file of FUZZ_DIR/sub/saved to the harness; returns how many,
 * and in *loaded how many load. */
static int replay_dir(const char *sub, int *loaded)
{
    char dir[4096], cmd[4300];
    snprintf(dir, sizeof dir, "%s/%s/saved", FUZZ_DIR, sub);
    snprintf(cmd, sizeof cmd, "ls '%s' 2>/dev/null", dir);
    FILE *ls = popen(cmd, "r");
    cr_assert_not_null(ls);
    char name[512];
    int n = 0;
    *loaded = 0;
    while (fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        size_t len;
        unsigned char *buf = slurp(path, &len);
        fuzz_saved_one(buf, len);
        df_saved *s;
        if (df_saved_load_memory(buf, len, &s) == DF_OK) (*loaded)++, df_saved_free(s);
        free(buf);
        n++;
    }
    pclose(ls);
    return n;
}

Test(saved_fuzz, seed_corpus_and_regressions_replay)
{
    int loaded, n = replay_dir("corpus", &loaded);
    cr_assert_geq(n, 11, "only %d seeds in %s/corpus/saved", n, FUZZ_DIR);
    cr_assert_eq(loaded, n, "%d of the %d seeds do not load: rewrite them with DF_WRITE_SAVED_SEEDS=fuzz/corpus/saved "
                 "tests/test_saved", n - loaded, n);
    int crashes = replay_dir("regressions", &loaded);
    cr_assert_geq(crashes, 2, "the saved crash inputs are missing");
}

/* The harness runs what loads (fuzz_saved.c, sv_fuzz_run): a static graph
 * twice and then resets it, a graph with an open dim also once more at
 * another size (a second plan); one whose tensors would pass
 * SV_RUN_MAX_BYTES is not run. */
static df_saved *load_seed(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/corpus/saved/%s", FUZZ_DIR, name);
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    return s;
}

/* How many runs of s succeeded in sv_fuzz_run. */
static int64_t harness_runs(df_saved *s)
{
    int64_t runs = 0;
    df_graph_set_profiling(df_saved_graph(s), true);
    sv_fuzz_run(s, (const uint8_t *)"seed", 4);
    df_graph_profile(df_saved_graph(s), NULL, 0, &runs);
    return runs;
}

Test(saved_fuzz, harness_runs_and_resets_a_train_step)
{
    df_saved *fuzzed = load_seed("dense_train_step.dfg"), *fresh = load_seed("dense_train_step.dfg");
    cr_assert_eq(harness_runs(fuzzed), 2, "the harness should run a static graph twice");
    for (int i = 0; i < df_saved_variable_count(fresh); i++) {
        df_variable *a = df_saved_variable(fuzzed, i), *b = df_saved_variable(fresh, i);
        cr_expect_eq(memcmp(df_variable_tensor(a).data, df_variable_tensor(b).data, (size_t)df_variable_numel(a) * 4), 0,
                     "variable '%s' was not reset after the harness's runs", df_variable_name(a));
    }
    df_saved_free(fuzzed);
    df_saved_free(fresh);
}

Test(saved_fuzz, harness_runs_an_open_dim_at_two_sizes)
{
    df_saved *s = load_seed("open_batch.dfg");
    cr_assert_eq(harness_runs(s), 3, "the harness should run an open graph three times");
    cr_expect_eq(df_saved_graph(s)->plans_made, 2, "the open dims should take two sizes");
    df_saved_free(s);
}

static df_status build_tanh(df_graph *g, df_node **in, void *user)
{
    (void)user;
    return df_graph_output(g, df_tanh(g, in[0]));
}

/* A graph of one tanh over sig, exported and loaded. */
static df_saved *tanh_graph(const df_tensor_spec *sig)
{
    make_tmpdir();
    df_function *f = df_function_new_signature("tanh", build_tanh, NULL, 1, sig);
    const char *path = tmp_path("tanh.dfg");
    cr_assert_eq(df_function_export(f, 1, sig, path, 0, NULL), DF_OK, "%s", df_last_error());
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    df_function_free(f);
    remove_tmpdir();
    return s;
}

Test(saved_fuzz, harness_skips_graphs_too_large_to_run)
{
    /* Two 4.2 MB tensors; with an open dim, 2 x 3 x 1.6 MB at size 3 but 2 x 1.6 MB at 1. */
    df_tensor_spec fixed = {DF_F32, 2, {1050, 1000}}, open = {DF_F32, 2, {DF_DYNAMIC, 400000}},
                   small = {DF_F32, 2, {DF_DYNAMIC, 100000}};
    df_saved *s = tanh_graph(&fixed);
    cr_expect_eq(harness_runs(s), 0, "a static graph past the cap was run");
    df_saved_free(s);
    s = tanh_graph(&open);
    cr_expect_eq(harness_runs(s), 0, "an open graph past the cap at size 3 was run");
    df_saved_free(s);
    s = tanh_graph(&small);
    cr_expect_eq(harness_runs(s), 3, "an open graph of 2 x 3 x 0.4 MB at size 3 was not run");
    df_saved_free(s);
}

/* dagflow-run's listing: char-rnn's model line, char-gpt's context and keep. */
static void listing_of(const char *name, char *out, size_t cap)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' '%s/corpus/saved/%s' 2>&1", DAGFLOW_RUN, FUZZ_DIR, name);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    cr_assert_eq(pclose(p), 0, "%s failed (build tools/dagflow-run first): %s", cmd, out);
}

Test(saved, dagflow_run_lists_the_char_models_metadata)
{
    char rnn[4096], gpt[4096];
    listing_of("charrnn_cli.dfg", rnn, sizeof rnn);
    listing_of("chargpt_cli.dfg", gpt, sizeof gpt);
    cr_expect(strstr(rnn, "  model: 1 x LSTM(16); adam\n"), "no model line in:\n%s", rnn);
    cr_expect(strstr(rnn, "a char model (vocabulary"), "%s", rnn);
    cr_expect(!strstr(rnn, "context:") && !strstr(rnn, "keep:"), "char-rnn has no context or keep:\n%s", rnn);
    cr_expect(strstr(gpt, "  model: char-gpt --n-layer 1 --n-head 2 --n-embd 16 --block 8,"), "no model line in:\n%s", gpt);
    cr_expect(strstr(gpt, "  context: 8 tokens\n"), "no context line in:\n%s", gpt);
    cr_expect(strstr(gpt, "  keep: 4 tokens (run again when the context is full)\n"), "no keep line in:\n%s", gpt);
}
