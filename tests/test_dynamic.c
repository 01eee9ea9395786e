/* test_dynamic.c — dynamic input dimensions (DF_DYNAMIC, tf.function's
 * input_signature with None): one trace serves every batch size and gives
 * the same outputs and gradients as a function traced at each concrete size;
 * training, the plan cache, the builder's view of open dims, signature errors
 * (and recovery from them) and plain graphs with open placeholders. */
#include <stdio.h>
#include "helpers.h"

#define MAX_OUT 12
#define MAX_IN 4

/* ------------------------------------------------------------- helpers */

/* The concrete shape of spec s at batch size B (every DF_DYNAMIC dim = B),
 * filled with uniform floats in [-1,1) or ints in [0, int_range). The data is
 * malloc'd; free it with free(t.data). */
static df_tensor batch_tensor(const df_tensor_spec *s, int64_t B, df_rng *rng, int32_t int_range)
{
    int64_t shape[DF_MAX_DIMS], n = 1;
    for (int d = 0; d < s->ndim; d++) {
        shape[d] = s->shape[d] == DF_DYNAMIC ? B : s->shape[d];
        n *= shape[d];
    }
    void *data;
    if (s->dtype == DF_F32) {
        data = rand_buf(rng, n, -1.0f, 1.0f);
    } else {
        int32_t *p = malloc((size_t)n * sizeof *p);
        cr_assert_not_null(p);
        for (int64_t i = 0; i < n; i++) p[i] = (int32_t)df_rng_below(rng, (uint32_t)int_range);
        data = p;
    }
    return df_tensor_make(s->dtype, data, s->ndim, shape);
}

static void free_tensors(df_tensor *t, int n)
{
    for (int i = 0; i < n; i++) free(t[i].data);
}

static bool same_shape(const df_tensor *a, const df_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* Same dtype and shape, values within rtol of the tensor's scale:
 * |got - want| <= rtol * (|want| + max |want|). Returns the largest error
 * relative to max |want|. */
static double expect_tensor_near(const df_tensor *got, const df_tensor *want, double rtol, const char *what)
{
    char sg[64], sw[64];
    cr_expect_eq(got->dtype, want->dtype, "%s: dtype", what);
    cr_expect(same_shape(got, want), "%s: shape %s, want %s", what, df_shape_str(got->ndim, got->shape, sg, sizeof sg),
              df_shape_str(want->ndim, want->shape, sw, sizeof sw));
    if (got->dtype != want->dtype || !same_shape(got, want)) return INFINITY;
    int64_t n = df_tensor_numel(want);
    const float *g = got->data, *w = want->data;
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(w[i]));
    if (scale == 0) scale = 1;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)g[i] - w[i]);
        worst = fmax(worst, err / scale);
        cr_expect(err <= rtol * (fabs(w[i]) + scale), "%s[%lld]: got %.9g, want %.9g", what, (long long)i, g[i],
                  w[i]);
        if (err > rtol * (fabs(w[i]) + scale)) break;          /* one message per tensor is enough */
    }
    return worst;
}

static bool bit_equal(const df_tensor *a, const df_tensor *b)
{
    return a->dtype == b->dtype && same_shape(a, b) &&
           memcmp(a->data, b->data, (size_t)df_tensor_numel(a) * df_dtype_size(a->dtype)) == 0;
}

/* A malloc'd copy of an output (outputs live in graph memory until the next call). */
static df_tensor copy_tensor(const df_tensor *t)
{
    size_t bytes = (size_t)df_tensor_numel(t) * df_dtype_size(t->dtype);
    void *p = malloc(bytes ? bytes : 1);
    cr_assert_not_null(p);
    memcpy(p, t->data, bytes);
    return df_tensor_make(t->dtype, p, t->ndim, t->shape);
}

static df_graph_stats stats_of(const df_function *f)
{
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(df_function_last_graph(f), &st), DF_OK, "%s", df_last_error());
    return st;
}

static df_variable *uniform_var(const char *name, int ndim, const int64_t *shape, df_rng *rng)
{
    df_variable *v = df_variable_new(name, DF_F32, ndim, shape, df_init_uniform(-0.5f, 0.5f), rng);
    cr_assert_not_null(v, "%s", df_last_error());
    return v;
}

/* Calls a dynamic-signature function of build and a plain (one trace per
 * shape) function of build on the same random batches of each size, and
 * expects the same outputs (values and shapes). The dynamic one must trace
 * once and make one plan per size it has not kept. */
static void compare_with_static(const char *name, df_build_fn build, void *user, int n_in,
                                const df_tensor_spec *sig, int n_out, int32_t int_range)
{
    static const int64_t sizes[] = {1, 2, 3, 7, 13, 64, 1};
    const int n_sizes = (int)(sizeof sizes / sizeof *sizes);
    df_function *dyn = df_function_new_signature(name, build, user, n_in, sig);
    df_function *ref = df_function_new(name, build, user);
    cr_assert(dyn && ref, "%s", df_last_error());
    df_function_set_retrace_warning(ref, 0);
    double worst = 0;
    for (int k = 0; k < n_sizes; k++) {
        df_rng rng;
        df_rng_seed(&rng, 1000 + (uint64_t)sizes[k]);
        df_tensor in[MAX_IN], got[MAX_OUT], want[MAX_OUT];
        for (int i = 0; i < n_in; i++) in[i] = batch_tensor(&sig[i], sizes[k], &rng, int_range);
        cr_assert_eq(df_function_call(dyn, in, n_in, got, n_out), DF_OK, "%s, B=%lld: %s", name,
                     (long long)sizes[k], df_last_error());
        cr_assert_eq(df_function_call(ref, in, n_in, want, n_out), DF_OK, "%s, B=%lld: %s", name,
                     (long long)sizes[k], df_last_error());
        for (int o = 0; o < n_out; o++) {
            char what[64];
            snprintf(what, sizeof what, "%s B=%lld output %d", name, (long long)sizes[k], o);
            worst = fmax(worst, expect_tensor_near(&got[o], &want[o], 1e-6, what));
        }
        free_tensors(in, n_in);
    }
    cr_log_info("%s: largest difference to the static traces %.3g (relative to each tensor's max)", name, worst);
    cr_expect_eq(df_function_trace_count(dyn), 1, "%s: one trace for all sizes, got %d", name,
                 df_function_trace_count(dyn));
    cr_expect_eq(df_function_trace_count(ref), n_sizes - 1, "the reference traces once per distinct size");
    /* 6 distinct sizes, then size 1 again after it was evicted from the 4-plan cache */
    df_graph_stats st = stats_of(dyn);
    cr_expect_eq(st.plans, n_sizes, "%s: plans %d", name, st.plans);
    cr_expect_eq(st.plans_cached, 4, "%s: plans_cached %d", name, st.plans_cached);
    df_function_free(dyn);
    df_function_free(ref);
}

/* ------------------------------------------ 1. equality with static traces */

/* x (B,4,5) through a dense layer, a fused elementwise chain, reshape with -1,
 * concat, slice, pad, means and sums; outputs forward values and the
 * gradients of a scalar loss with respect to w, b and x. */
typedef struct dense3d { df_variable *w, *b; } dense3d;

static df_status build_dense3d(df_graph *g, df_node **in, void *user)
{
    dense3d *m = user;
    df_node *x = in[0];
    df_tape *tape = df_tape_begin(g);
    df_node *w = df_var(g, m->w), *b = df_var(g, m->b);
    df_node *z = df_add(g, df_matmul(g, x, w, false, false), b);                  /* (B,4,6), bias broadcast */
    df_node *h = df_tanh(g, z);
    df_node *a = df_mul(g, df_sigmoid(g, h), df_exp(g, df_scale(g, h, -0.5f)));  /* fused chain */
    df_node *r = df_reshape(g, a, 2, SHAPE(-1, 6));                              /* (4B,6) */
    df_node *c = df_concat(g, 2, (df_node *[]){r, df_tanh(g, r)}, 1);           /* (4B,12), static axis */
    df_node *s = df_slice(g, c, SHAPE(1, 3), SHAPE(-1, 7));                      /* (4B-1,7) */
    df_node *mean_all = df_mean(g, df_square(g, s), NULL, 0, false);            /* over everything */
    df_node *mean_batch = df_mean(g, a, (int[]){0}, 1, false);                  /* (4,6): the dynamic axis only */
    df_node *p = df_pad(g, mean_batch, SHAPE(1, 2), 2, SHAPE(6, 9));
    df_node *s2 = df_sum(g, df_reshape(g, r, 3, SHAPE(-1, 4, 6)), (int[]){2}, 1, false);   /* (B,4) */
    df_node *loss = df_add(g, df_add(g, mean_all, df_sum(g, df_square(g, p), NULL, 0, false)),
                           df_mean(g, df_square(g, s2), NULL, 0, false));
    df_tape_end(tape);
    df_node *grads[3];
    if (df_tape_gradient_nodes(tape, loss, 3, (df_node *[]){w, b, x}, grads) != DF_OK) return df_graph_status(g);
    df_node *outs[] = {loss, a, s, mean_batch, p, s2, grads[0], grads[1], grads[2]};
    for (int i = 0; i < 9; i++) df_graph_output(g, outs[i]);
    return df_graph_status(g);
}

Test(equality, dense_3d_matmul_fusion_reshape_concat_slice_pad_reductions)
{
    df_rng rng;
    df_rng_seed(&rng, 1);
    dense3d m = {uniform_var("w", 2, SHAPE(5, 6), &rng), uniform_var("b", 1, SHAPE(6), &rng)};
    df_tensor_spec sig[1] = {{DF_F32, 3, {DF_DYNAMIC, 4, 5}}};
    compare_with_static("dense3d", build_dense3d, &m, 1, sig, 9, 0);
    /* the chain was fused in the dynamic trace too */
    df_function *f = df_function_new_signature("dense3d", build_dense3d, &m, 1, sig);
    df_rng_seed(&rng, 2);
    df_tensor in = batch_tensor(&sig[0], 3, &rng, 0), out;
    cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK, "%s", df_last_error());
    df_graph_stats st = stats_of(f);
    cr_expect_gt(st.fused_chains, 0, "the fusion pass fires on dynamic graphs");
    free(in.data);
    df_function_free(f);
    df_variable_free(m.w);
    df_variable_free(m.b);
}

/* Embedding lookup of i32 ids (B,3), a projection to 7 classes and the
 * sparse softmax cross entropy against (B,3) targets (a mean over 3B rows). */
typedef struct embed { df_variable *emb, *w, *b; } embed;

static df_status build_embed_xent(df_graph *g, df_node **in, void *user)
{
    embed *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *emb = df_var(g, m->emb), *w = df_var(g, m->w), *b = df_var(g, m->b);
    df_node *e = df_gather(g, emb, in[0]);                                       /* (B,3,4) */
    df_node *logits = df_add(g, df_matmul(g, df_tanh(g, e), w, false, false), b);  /* (B,3,7) */
    df_node *loss = df_sparse_softmax_cross_entropy(g, logits, in[1]);
    df_tape_end(tape);
    df_node *grads[3];
    if (df_tape_gradient_nodes(tape, loss, 3, (df_node *[]){emb, w, b}, grads) != DF_OK) return df_graph_status(g);
    df_node *outs[] = {loss, logits, grads[0], grads[1], grads[2]};
    for (int i = 0; i < 5; i++) df_graph_output(g, outs[i]);
    return df_graph_status(g);
}

Test(equality, embedding_gather_and_sparse_softmax_xent)
{
    df_rng rng;
    df_rng_seed(&rng, 3);
    embed m = {uniform_var("emb", 2, SHAPE(7, 4), &rng), uniform_var("w", 2, SHAPE(4, 7), &rng),
               uniform_var("b", 1, SHAPE(7), &rng)};
    df_tensor_spec sig[2] = {{DF_I32, 2, {DF_DYNAMIC, 3}}, {DF_I32, 2, {DF_DYNAMIC, 3}}};
    compare_with_static("embed_xent", build_embed_xent, &m, 2, sig, 5, 7);
    df_variable_free(m.emb);
    df_variable_free(m.w);
    df_variable_free(m.b);
}

/* An LSTM over x (B,3,4) with initial states h0, c0 (B,5) passed as inputs;
 * gradients to the weights and to both initial states. */
typedef struct lstm_model { df_variable *k, *r, *b; } lstm_model;

static df_status build_lstm(df_graph *g, df_node **in, void *user)
{
    lstm_model *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *k = df_var(g, m->k), *r = df_var(g, m->r), *b = df_var(g, m->b);
    df_node *xproj = df_add(g, df_matmul(g, in[0], k, false, false), b);          /* (B,3,20) */
    df_node *h = df_lstm(g, xproj, r, in[1], in[2]);                               /* (B,3,5) */
    df_node *loss = df_add(g, df_mean(g, df_square(g, h), NULL, 0, false),
                           df_sum(g, df_mean(g, h, (int[]){0}, 1, false), NULL, 0, false));
    df_tape_end(tape);
    df_node *final_c = df_lstm_final_c(g, h);
    df_node *grads[5];
    if (df_tape_gradient_nodes(tape, loss, 5, (df_node *[]){k, r, b, in[1], in[2]}, grads) != DF_OK)
        return df_graph_status(g);
    df_node *outs[] = {loss, h, final_c, grads[0], grads[1], grads[2], grads[3], grads[4]};
    for (int i = 0; i < 8; i++) df_graph_output(g, outs[i]);
    return df_graph_status(g);
}

Test(equality, lstm_with_initial_states_as_inputs)
{
    df_rng rng;
    df_rng_seed(&rng, 4);
    lstm_model m = {uniform_var("k", 2, SHAPE(4, 20), &rng), uniform_var("r", 2, SHAPE(5, 20), &rng),
                    uniform_var("b", 1, SHAPE(20), &rng)};
    df_tensor_spec sig[3] = {{DF_F32, 3, {DF_DYNAMIC, 3, 4}}, {DF_F32, 2, {DF_DYNAMIC, 5}},
                             {DF_F32, 2, {DF_DYNAMIC, 5}}};
    compare_with_static("lstm", build_lstm, &m, 3, sig, 8, 0);
    df_variable_free(m.k);
    df_variable_free(m.r);
    df_variable_free(m.b);
}

/* ------------------------------------------------- 2. training equivalence */

/* One training step of y = x w + b on the mean squared error. */
typedef struct linreg { df_variable *w, *b; df_optimizer *opt; } linreg;

static df_status build_linreg_step(df_graph *g, df_node **in, void *user)
{
    linreg *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *y = df_add(g, df_matmul(g, in[0], df_var(g, m->w), false, false), df_var(g, m->b));
    df_node *loss = df_mean(g, df_square(g, df_sub(g, y, in[1])), NULL, 0, false);
    df_tape_end(tape);
    df_variable *vars[2] = {m->w, m->b};
    df_node *grads[2];
    if (df_tape_gradient(tape, loss, 2, vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 2, vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

/* Variables initialised from the given values (the same for both runs). */
static linreg linreg_new(df_optimizer *opt, float *w0, float *b0)
{
    linreg m = {df_variable_new("w", DF_F32, 2, SHAPE(3, 2), df_init_zeros(), NULL),
                df_variable_new("b", DF_F32, 1, SHAPE(2), df_init_zeros(), NULL), opt};
    cr_assert(m.w && m.b && opt);
    df_tensor wt = F32(w0, 3, 2), bt = F32(b0, 2);
    cr_assert_eq(df_variable_assign(m.w, &wt), DF_OK);
    cr_assert_eq(df_variable_assign(m.b, &bt), DF_OK);
    return m;
}

static void linreg_free(linreg *m)
{
    df_variable_free(m->w);
    df_variable_free(m->b);
    df_optimizer_free(m->opt);
}

/* Two epochs over 113 rows in batches of 32, 32, 32, 17; the losses go to losses[8]. */
static void train_epochs(df_function *f, const float *xs, const float *ts, float *losses)
{
    int step = 0;
    for (int epoch = 0; epoch < 2; epoch++)
        for (int64_t start = 0; start < 113; start += 32, step++) {
            int64_t rows = start + 32 <= 113 ? 32 : 113 - start;
            df_tensor in[2] = {F32((float *)xs + start * 3, rows, 3), F32((float *)ts + start * 2, rows, 2)}, loss;
            cr_assert_eq(df_function_call(f, in, 2, &loss, 1), DF_OK, "step %d: %s", step, df_last_error());
            losses[step] = *(float *)loss.data;
        }
}

/* A dynamic-batch training loop ends with the same weights as the same loop
 * run through per-batch-size traces. */
static void check_training_equivalence(df_optimizer *opt_dyn, df_optimizer *opt_ref)
{
    df_rng rng;
    df_rng_seed(&rng, 5);
    float *xs = rand_buf(&rng, 113 * 3, -1, 1), *ts = rand_buf(&rng, 113 * 2, -1, 1);
    float *w0 = rand_buf(&rng, 6, -0.5f, 0.5f), b0[2] = {0.1f, -0.2f};
    linreg dyn = linreg_new(opt_dyn, w0, b0), ref = linreg_new(opt_ref, w0, b0);
    df_tensor_spec sig[2] = {{DF_F32, 2, {DF_DYNAMIC, 3}}, {DF_F32, 2, {DF_DYNAMIC, 2}}};
    df_function *f_dyn = df_function_new_signature("train_dyn", build_linreg_step, &dyn, 2, sig);
    df_function *f_ref = df_function_new("train_ref", build_linreg_step, &ref);
    float loss_dyn[8], loss_ref[8];
    train_epochs(f_dyn, xs, ts, loss_dyn);
    train_epochs(f_ref, xs, ts, loss_ref);
    cr_expect_eq(df_function_trace_count(f_dyn), 1);
    cr_expect_eq(df_function_trace_count(f_ref), 2, "one trace for 32 rows, one for 17");
    cr_expect_eq(df_optimizer_iterations(dyn.opt), 8);
    expect_near(loss_dyn, loss_ref, 8, 1e-6, "loss");
    df_tensor wd = df_variable_tensor(dyn.w), wr = df_variable_tensor(ref.w);
    df_tensor bd = df_variable_tensor(dyn.b), br = df_variable_tensor(ref.b);
    expect_tensor_near(&wd, &wr, 1e-6, "w");
    expect_tensor_near(&bd, &br, 1e-6, "b");
    /* and training did something */
    cr_expect(fabsf(((float *)wd.data)[0] - w0[0]) > 1e-3f, "w moved");
    cr_expect(loss_dyn[7] < loss_dyn[0], "loss fell: %g -> %g", loss_dyn[0], loss_dyn[7]);
    df_function_free(f_dyn);
    df_function_free(f_ref);
    linreg_free(&dyn);
    linreg_free(&ref);
    free(xs);
    free(ts);
    free(w0);
}

Test(training, sgd_dynamic_batches_match_per_size_traces)
{
    check_training_equivalence(df_sgd_new(0.1f), df_sgd_new(0.1f));
}

Test(training, adam_dynamic_batches_match_per_size_traces)
{
    check_training_equivalence(df_adam_new(0.01f, 0.9f, 0.999f, 1e-7f), df_adam_new(0.01f, 0.9f, 0.999f, 1e-7f));
}

/* ------------------------------------------------------- 3. the plan cache */

/* tanh(x w + b) for x (B,3), w (3,2), b (2); w and b fixed. */
typedef struct affine { df_variable *w, *b; } affine;

static const float affine_w[6] = {0.5f, -1.0f, 0.25f, 0.75f, -0.5f, 0.125f}, affine_b[2] = {0.1f, -0.3f};

static affine affine_new(void)
{
    affine m = {df_variable_new("w", DF_F32, 2, SHAPE(3, 2), df_init_zeros(), NULL),
                df_variable_new("b", DF_F32, 1, SHAPE(2), df_init_zeros(), NULL)};
    cr_assert(m.w && m.b);
    df_tensor wt = F32((float *)affine_w, 3, 2), bt = F32((float *)affine_b, 2);
    cr_assert_eq(df_variable_assign(m.w, &wt), DF_OK);
    cr_assert_eq(df_variable_assign(m.b, &bt), DF_OK);
    return m;
}

static void affine_free(affine *m)
{
    df_variable_free(m->w);
    df_variable_free(m->b);
}

static df_node *affine_nodes(df_graph *g, affine *m, df_node *x)
{
    return df_tanh(g, df_add(g, df_matmul(g, x, df_var(g, m->w), false, false), df_var(g, m->b)));
}

static df_status build_affine(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, affine_nodes(g, user, in[0]));
    return df_graph_status(g);
}

/* B rows: x[i][j] = sin(7i + 3j + salt + B), deterministic per (B, salt). */
static float *affine_input(int64_t B, int salt)
{
    float *x = malloc((size_t)B * 3 * sizeof *x);
    cr_assert_not_null(x);
    for (int64_t i = 0; i < B * 3; i++) x[i] = sinf((float)(7 * (i / 3) + 3 * (i % 3) + salt + B));
    return x;
}

/* Calls f on B rows and checks tanh(x w + b) against a double reference. */
static void expect_affine_call(df_function *f, int64_t B)
{
    static int calls;                     /* new data every call: stale inputs cannot pass */
    float *x = affine_input(B, ++calls);
    df_tensor in = F32(x, B, 3), out;
    cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK, "B=%lld: %s", (long long)B, df_last_error());
    cr_assert_eq(out.ndim, 2);
    cr_assert_eq(out.shape[0], B, "output rows %lld, want %lld", (long long)out.shape[0], (long long)B);
    cr_assert_eq(out.shape[1], 2);
    for (int64_t i = 0; i < B; i++)
        for (int j = 0; j < 2; j++) {
            double z = affine_b[j];
            for (int k = 0; k < 3; k++) z += (double)x[i * 3 + k] * affine_w[k * 2 + j];
            float got = ((float *)out.data)[i * 2 + j];
            cr_expect(fabs(got - tanh(z)) < 1e-5, "B=%lld out[%lld][%d] = %.7g, want %.7g", (long long)B,
                      (long long)i, j, got, tanh(z));
        }
    free(x);
}

static void expect_plans(df_function *f, int plans, int cached, const char *when)
{
    df_graph_stats st = stats_of(f);
    cr_expect_eq(st.plans, plans, "%s: plans %d, want %d", when, st.plans, plans);
    cr_expect_eq(st.plans_cached, cached, "%s: plans_cached %d, want %d", when, st.plans_cached, cached);
}

/* Sizes within the (default, 4) cache reuse their plans; a 5th size evicts
 * the least recently used one (not the oldest); results stay right. */
Test(plan_cache, four_plans_kept_least_recently_used_evicted)
{
    affine m = affine_new();
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *f = df_function_new_signature("affine", build_affine, &m, 1, &sig);
    for (int64_t B = 1; B <= 4; B++) expect_affine_call(f, B);
    expect_plans(f, 4, 4, "sizes 1..4");
    for (int rep = 0; rep < 3; rep++) {
        static const int64_t cycle[] = {2, 1, 4, 3};
        for (int k = 0; k < 4; k++) expect_affine_call(f, cycle[k]);
    }
    expect_plans(f, 4, 4, "cycling within the cache");
    expect_affine_call(f, 5);              /* most recent first: 5 3 4 1; size 2 was evicted */
    expect_plans(f, 5, 4, "a 5th size");
    expect_affine_call(f, 1);              /* kept: 1 5 3 4 */
    expect_plans(f, 5, 4, "size 1 is still cached (LRU, not FIFO)");
    expect_affine_call(f, 2);              /* re-planned, evicts 4: 2 1 5 3 */
    expect_plans(f, 6, 4, "size 2 was evicted");
    expect_affine_call(f, 3);
    expect_plans(f, 6, 4, "size 3 kept");
    expect_affine_call(f, 4);
    expect_plans(f, 7, 4, "size 4 was evicted");
    cr_expect_eq(df_function_trace_count(f), 1);
    df_function_free(f);
    affine_free(&m);
}

/* A plain graph with a one-plan cache re-plans at every size change and
 * still computes the right values; the cache size is fixed once it ran. */
Test(plan_cache, cache_of_one_replans_alternating_sizes)
{
    affine m = affine_new();
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_F32, 2, SHAPE(DF_DYNAMIC, 3), "x");
    df_graph_output(g, affine_nodes(g, &m, x));
    cr_expect_eq(df_graph_set_plan_cache(g, 0), DF_ERR_ARG);
    cr_assert_eq(df_graph_set_plan_cache(g, 1), DF_OK, "%s", df_last_error());
    static const int64_t sizes[] = {2, 3, 2, 3, 3, 2};
    static const int plans_after[] = {1, 2, 3, 4, 4, 5};
    for (int k = 0; k < 6; k++) {
        int64_t B = sizes[k];
        float *xv = affine_input(B, k);
        df_tensor in = F32(xv, B, 3);
        df_tensor out = run1(g, &in, 1);
        cr_assert_eq(out.shape[0], B);
        for (int64_t i = 0; i < B; i++)
            for (int j = 0; j < 2; j++) {
                double z = affine_b[j];
                for (int c = 0; c < 3; c++) z += (double)xv[i * 3 + c] * affine_w[c * 2 + j];
                cr_expect(fabs(((float *)out.data)[i * 2 + j] - tanh(z)) < 1e-5, "call %d B=%lld [%lld][%d]", k,
                          (long long)B, (long long)i, j);
            }
        df_graph_stats st;
        cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
        cr_expect_eq(st.plans, plans_after[k], "call %d: plans %d, want %d", k, st.plans, plans_after[k]);
        cr_expect_eq(st.plans_cached, 1);
        free(xv);
    }
    cr_expect_eq(df_graph_set_plan_cache(g, 4), DF_ERR_STATE, "set after a run");
    cr_expect(strstr(df_last_error(), "already run") != NULL, "message: %s", df_last_error());
    df_graph_free(g);
    affine_free(&m);
}

/* --------------------------------------------------- 4. the builder's view */

typedef struct view {
    int64_t x_dim0, x_dim1, x_dim_neg2, x_numel, x_shape0;   /* the (None,3) input */
    int64_t y_dim0, y_dim1, y_numel;                         /* x w, (None,2) */
    int64_t col_dim0, col_numel, w_numel;                    /* a sum over the batch, (2); w (3,2) */
    int64_t rs_dim0, rs_dim2;                                /* x reshaped to (df_node_dim(x,0), 3, 1) */
    int ndim;
} view;
typedef struct view_model { affine m; view v; int builds; } view_model;

/* Records what the builder sees of x, of x w (follows x), of a column sum
 * (static) and of a reshape whose size comes from df_node_dim. */
static df_status build_view(df_graph *g, df_node **in, void *user)
{
    view_model *vm = user;
    df_node *x = in[0], *w = df_var(g, vm->m.w);
    df_node *y = df_matmul(g, x, w, false, false);
    df_node *col = df_sum(g, y, (int[]){0}, 1, false);
    df_node *rs = df_reshape(g, x, 3, (int64_t[]){df_node_dim(x, 0), 3, 1});   /* -1 when dynamic */
    vm->builds++;
    vm->v = (view){.x_dim0 = df_node_dim(x, 0), .x_dim1 = df_node_dim(x, 1), .x_dim_neg2 = df_node_dim(x, -2),
                   .x_numel = df_node_numel(x), .x_shape0 = df_node_shape(x)[0], .ndim = df_node_ndim(x),
                   .y_dim0 = df_node_dim(y, 0), .y_dim1 = df_node_dim(y, 1), .y_numel = df_node_numel(y),
                   .col_dim0 = df_node_dim(col, 0), .col_numel = df_node_numel(col), .w_numel = df_node_numel(w),
                   .rs_dim0 = df_node_dim(rs, 0), .rs_dim2 = df_node_dim(rs, 2)};
    df_graph_output(g, y);
    df_graph_output(g, col);
    df_graph_output(g, rs);
    return df_graph_status(g);
}

Test(builder_view, dynamic_dims_read_as_DF_DYNAMIC_static_ones_as_numbers)
{
    view_model vm = {.m = affine_new()};
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *f = df_function_new_signature("view", build_view, &vm, 1, &sig);
    float xv[6] = {1, 2, 3, 4, 5, 6};
    df_tensor in = F32(xv, 2, 3), out[3];
    cr_assert_eq(df_function_call(f, &in, 1, out, 3), DF_OK, "%s", df_last_error());
    view v = vm.v;
    cr_expect_eq(v.ndim, 2);
    cr_expect_eq(v.x_dim0, DF_DYNAMIC, "df_node_dim(x, 0) = %lld", (long long)v.x_dim0);
    cr_expect_eq(v.x_dim_neg2, DF_DYNAMIC);
    cr_expect_eq(v.x_shape0, DF_DYNAMIC, "df_node_shape(x)[0] = %lld", (long long)v.x_shape0);
    cr_expect_eq(v.x_dim1, 3);
    cr_expect_eq(v.x_numel, DF_DYNAMIC, "df_node_numel(x) = %lld", (long long)v.x_numel);
    cr_expect_eq(v.y_dim0, DF_DYNAMIC, "x w follows x: %lld", (long long)v.y_dim0);
    cr_expect_eq(v.y_dim1, 2);
    cr_expect_eq(v.y_numel, DF_DYNAMIC);
    cr_expect_eq(v.col_dim0, 2, "a sum over the dynamic axis is static");
    cr_expect_eq(v.col_numel, 2);
    cr_expect_eq(v.w_numel, 6);
    cr_expect_eq(v.rs_dim0, DF_DYNAMIC);
    cr_expect_eq(v.rs_dim2, 1);
    /* the run itself has concrete shapes */
    cr_expect_eq(out[0].shape[0], 2);
    cr_expect_eq(out[2].ndim, 3);
    cr_expect_eq(out[2].shape[0], 2);
    float *rs = out[2].data;
    for (int i = 0; i < 6; i++) cr_expect_float_eq(rs[i], xv[i], 0);
    df_function_free(f);
    /* a static trace of the same builder sees numbers everywhere */
    df_function *s = df_function_new("view_static", build_view, &vm);
    cr_assert_eq(df_function_call(s, &in, 1, out, 3), DF_OK, "%s", df_last_error());
    cr_expect_eq(vm.v.x_dim0, 2);
    cr_expect_eq(vm.v.x_numel, 6);
    cr_expect_eq(vm.v.y_dim0, 2);
    cr_expect_eq(vm.v.y_numel, 4);
    cr_expect_eq(vm.v.rs_dim0, 2);
    cr_expect_eq(vm.builds, 2);
    df_function_free(s);
    affine_free(&vm.m);
}

/* ------------------------------------------------------------- 5. errors */

/* Calls f with the given inputs and expects status want and every one of the
 * (NULL-terminated) strings in the message. */
static void expect_call_fails(df_function *f, const df_tensor *in, int n, df_status want, const char *what,
                              const char *const *msg)
{
    df_tensor out;
    df_status st = df_function_call(f, in, n, &out, 1);
    cr_expect_eq(st, want, "%s: status %s, want %s (%s)", what, df_status_name(st), df_status_name(want),
                 df_last_error());
    for (int i = 0; msg[i]; i++)
        cr_expect(strstr(df_last_error(), msg[i]) != NULL, "%s: message lacks \"%s\": %s", what, msg[i],
                  df_last_error());
}

/* Inputs that do not match the signature fail with the right status and a
 * message naming the expected signature; each failure leaves the function
 * working (the next good call, new size or cached, gives the right values). */
Test(errors, calls_that_do_not_match_the_signature_fail_and_leave_the_function_working)
{
    affine m = affine_new();
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *f = df_function_new_signature("affine", build_affine, &m, 1, &sig);
    float buf[24] = {0};
    int32_t ibuf[12] = {0};
    struct bad {
        const char *what;
        df_tensor in[2];
        int n;
        df_status want;
        const char *msg[4];
    } bad[] = {
        {"wrong fixed dim", {F32(buf, 4, 2)}, 1, DF_ERR_SHAPE, {"(None,3)", "(4,2)", "affine", NULL}},
        {"rank 1", {F32(buf, 4)}, 1, DF_ERR_SHAPE, {"(None,3)", "(4)", NULL}},
        {"rank 3", {F32(buf, 4, 3, 1)}, 1, DF_ERR_SHAPE, {"(None,3)", "(4,3,1)", NULL}},
        {"wrong dtype", {I32(ibuf, 4, 3)}, 1, DF_ERR_DTYPE, {"f32", "i32", NULL}},
        {"dynamic dim 0", {F32(buf, 0, 3)}, 1, DF_ERR_SHAPE, {"(None,3)", "(0,3)", "any size >= 1", NULL}},
        {"two inputs", {F32(buf, 4, 3), F32(buf, 4, 3)}, 2, DF_ERR_ARG, {"2 inputs", "signature has 1", NULL}},
        {"no inputs", {{0}}, 0, DF_ERR_ARG, {"0 inputs", "signature has 1", NULL}},
    };
    const int n_bad = (int)(sizeof bad / sizeof *bad);
    /* the very first call is a bad one: it traces, then fails the check */
    expect_call_fails(f, bad[0].in, bad[0].n, bad[0].want, bad[0].what, bad[0].msg);
    for (int i = 0; i < n_bad; i++) {
        expect_call_fails(f, bad[i].in, bad[i].n, bad[i].want, bad[i].what, bad[i].msg);
        expect_affine_call(f, 2);                 /* a cached plan after the first round */
        expect_call_fails(f, bad[i].in, bad[i].n, bad[i].want, bad[i].what, bad[i].msg);
        expect_affine_call(f, 3 + i);             /* a new size: a new plan */
    }
    cr_expect_eq(df_function_trace_count(f), 1);
    df_function_free(f);
    affine_free(&m);
}

/* x (None,3) + a constant (4,3): the size 4 is baked in, the trace fails
 * (naming the op and the open dimension), and keeps failing cleanly. The
 * same builder traced at a concrete (4,3) is fine. */
static df_status build_baked_constant(df_graph *g, df_node **in, void *user)
{
    static float c[12];
    df_tensor t = F32(c, 4, 3);
    df_graph_output(g, df_add(g, in[0], df_constant(g, &t)));
    return df_graph_status(g);
}

Test(errors, constant_of_the_batch_size_fails_at_trace)
{
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *f = df_function_new_signature("baked", build_baked_constant, NULL, 1, &sig);
    float xv[12] = {0};
    df_tensor in = F32(xv, 4, 3), out;
    for (int i = 0; i < 2; i++)
        expect_call_fails(f, &in, 1, DF_ERR_SHAPE, "baked constant",
                          (const char *const[]){"dynamic (None)", "add", "baked", NULL});
    df_function_free(f);
    df_function *s = df_function_new("baked_static", build_baked_constant, NULL);
    cr_expect_eq(df_function_call(s, &in, 1, &out, 1), DF_OK, "%s", df_last_error());
    df_function_free(s);
}

/* A reshape to a literal size of the batch fails at trace time: 12 rows
 * (wrong at the trace size already) and 5040 rows (right at the first trace
 * size, caught by the second shape inference). */
static df_status build_reshape_literal(df_graph *g, df_node **in, void *user)
{
    int64_t rows = *(int64_t *)user;
    df_graph_output(g, df_reshape(g, in[0], 2, (int64_t[]){rows, 3}));
    return df_graph_status(g);
}

Test(errors, reshape_to_a_literal_batch_fails_at_trace)
{
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    float xv[36] = {0};
    static const int64_t literal[] = {12, 5040};
    for (int k = 0; k < 2; k++) {
        df_function *f = df_function_new_signature("rs", build_reshape_literal, (void *)&literal[k], 1, &sig);
        df_tensor in = F32(xv, 12, 3);
        char what[32];
        snprintf(what, sizeof what, "reshape to %lld rows", (long long)literal[k]);
        expect_call_fails(f, &in, 1, DF_ERR_SHAPE, what, (const char *const[]){"dynamic (None)", "reshape", NULL});
        df_function_free(f);
    }
}

/* x (None,3) reshaped to (4,-1) holds only for batches of 4k rows: a batch
 * of 3 fails when it is planned (DF_ERR_SHAPE naming the op and shapes), the
 * sizes that fit keep working before and after, first call or not. */
static df_status build_reshape_4(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, df_scale(g, df_reshape(g, in[0], 2, SHAPE(4, -1)), 2.0f));
    return df_graph_status(g);
}

static void expect_reshape_4(df_function *f, int64_t B)
{
    static int calls;                     /* new data every call: stale inputs cannot pass */
    float *xv = affine_input(B, ++calls);
    df_tensor in = F32(xv, B, 3), out;
    cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK, "B=%lld: %s", (long long)B, df_last_error());
    cr_assert_eq(out.ndim, 2);
    cr_expect_eq(out.shape[0], 4);
    cr_expect_eq(out.shape[1], 3 * B / 4);
    for (int64_t i = 0; i < 3 * B; i++) cr_expect_float_eq(((float *)out.data)[i], 2 * xv[i], 0, "B=%lld [%lld]",
                                                          (long long)B, (long long)i);
    free(xv);
}

Test(errors, size_that_fails_when_planned_leaves_other_sizes_working)
{
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    float xv[15] = {0};
    df_tensor in3 = F32(xv, 3, 3), in5 = F32(xv, 5, 3);
    const char *const msg[] = {"reshape", "(3,3)", NULL};
    df_function *f = df_function_new_signature("rs4", build_reshape_4, NULL, 1, &sig);
    expect_reshape_4(f, 4);
    expect_call_fails(f, &in3, 1, DF_ERR_SHAPE, "B=3", msg);
    expect_reshape_4(f, 4);                            /* the plan of 4 is back */
    expect_reshape_4(f, 8);
    expect_call_fails(f, &in3, 1, DF_ERR_SHAPE, "B=3 again", msg);
    expect_reshape_4(f, 8);
    expect_reshape_4(f, 4);
    cr_expect_eq(df_function_trace_count(f), 1);
    df_graph_stats st = stats_of(f);
    cr_expect_eq(st.plans, 2, "failed sizes make no plan; got %d", st.plans);
    df_function_free(f);
    /* the very first call fails at planning */
    f = df_function_new_signature("rs4", build_reshape_4, NULL, 1, &sig);
    expect_call_fails(f, &in5, 1, DF_ERR_SHAPE, "B=5 first", (const char *const[]){"reshape", "(5,3)", NULL});
    expect_reshape_4(f, 8);
    expect_reshape_4(f, 4);
    df_function_free(f);
}

/* Bad specs are refused up front, with a message. */
Test(errors, bad_signature_specs_return_null)
{
    struct { const char *what; int n; df_tensor_spec spec; const char *msg; } bad[] = {
        {"rank 5", 1, {DF_F32, 5, {1, 1, 1, 1}}, "rank 5"},
        {"rank -1", 1, {DF_F32, -1, {0}}, "rank -1"},
        {"dim -2", 1, {DF_F32, 2, {-2, 3}}, "-2"},
        {"dtype 7", 1, {(df_dtype)7, 2, {DF_DYNAMIC, 3}}, "dtype 7"},
        {"-1 inputs", -1, {DF_F32, 1, {1}}, "-1 inputs"},
    };
    for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
        df_error(DF_OK, "%s", "");                    /* clear the last message */
        df_function *f = df_function_new_signature("bad", build_affine, NULL, bad[i].n, &bad[i].spec);
        cr_expect_null(f, "%s: accepted", bad[i].what);
        cr_expect(strstr(df_last_error(), bad[i].msg) != NULL, "%s: message: %s", bad[i].what, df_last_error());
        df_function_free(f);
    }
    cr_expect_null(df_function_new_signature("bad", build_affine, NULL, 1, NULL), "null signature");
    cr_expect(strlen(df_last_error()) > 0);
}

/* ------------------------------------------------------ 6. plain graphs */

/* A df_graph with DF_DYNAMIC placeholders runs at several sizes: right values,
 * concrete output shapes; gradients of a non-scalar output (seeded with ones
 * of its run-time shape) and the zero gradient of an unused input too. */
Test(plain_graph, dynamic_placeholders_run_at_several_sizes)
{
    affine m = affine_new();
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_F32, 2, SHAPE(DF_DYNAMIC, 3), "x");
    df_node *z = df_placeholder(g, DF_F32, 2, SHAPE(DF_DYNAMIC, 2), "z");   /* its own size */
    df_node *sq = df_mul(g, x, x), *dx, *dz;
    cr_assert_eq(df_gradients(g, sq, NULL, 1, &x, &dx), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_gradients(g, df_sum(g, x, NULL, 0, false), NULL, 1, &z, &dz), DF_OK, "%s", df_last_error());
    df_graph_output(g, affine_nodes(g, &m, x));
    df_graph_output(g, df_sum(g, sq, (int[]){1}, 1, false));
    df_graph_output(g, dx);
    df_graph_output(g, dz);
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    static const int64_t xs_rows[] = {2, 5, 1, 2}, zs_rows[] = {4, 1, 3, 4};
    for (int k = 0; k < 4; k++) {
        int64_t B = xs_rows[k], Z = zs_rows[k];
        float *xv = affine_input(B, 2 * k), zv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        df_tensor in[2] = {F32(xv, B, 3), F32(zv, Z, 2)}, out[4];
        cr_assert_eq(df_graph_run(g, in, 2, out, 4), DF_OK, "B=%lld: %s", (long long)B, df_last_error());
        cr_expect(out[0].ndim == 2 && out[0].shape[0] == B && out[0].shape[1] == 2, "affine shape");
        cr_expect(out[1].ndim == 1 && out[1].shape[0] == B, "row sums shape");
        cr_expect(out[2].ndim == 2 && out[2].shape[0] == B && out[2].shape[1] == 3, "dx shape");
        cr_expect(out[3].ndim == 2 && out[3].shape[0] == Z && out[3].shape[1] == 2, "dz shape (%lld,%lld)",
                  (long long)out[3].shape[0], (long long)out[3].shape[1]);
        const float *y = out[0].data, *rs = out[1].data, *d = out[2].data, *dzv = out[3].data;
        for (int64_t i = 0; i < B; i++) {
            float row = 0;
            for (int c = 0; c < 3; c++) {
                float v = xv[i * 3 + c];
                row += v * v;
                cr_expect_float_eq(d[i * 3 + c], 2 * v, 1e-6, "dx[%lld][%d]", (long long)i, c);
            }
            cr_expect_float_eq(rs[i], row, 1e-5, "row sum %lld", (long long)i);
            for (int j = 0; j < 2; j++) {
                double zz = affine_b[j];
                for (int c = 0; c < 3; c++) zz += (double)xv[i * 3 + c] * affine_w[c * 2 + j];
                cr_expect(fabs(y[i * 2 + j] - tanh(zz)) < 1e-5, "y[%lld][%d]", (long long)i, j);
            }
        }
        for (int64_t i = 0; i < Z * 2; i++) cr_expect_float_eq(dzv[i], 0.0f, 0, "dz[%lld]", (long long)i);
        free(xv);
    }
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
    cr_expect_eq(st.plans, 3, "shapes (2|4), (5|1), (1|3), then (2|4) again from the cache; got %d", st.plans);
    df_graph_free(g);
    affine_free(&m);
}

/* ------------------------------------------------------ 7. bit identity */

/* Going 3 -> 5 -> 3 rows reuses the plan of 3 and gives bit-identical
 * outputs and gradients (dense3d: reductions, fusion, slices, pads). */
Test(bitwise, plan_reuse_does_not_change_results)
{
    df_rng rng;
    df_rng_seed(&rng, 6);
    dense3d m = {uniform_var("w", 2, SHAPE(5, 6), &rng), uniform_var("b", 1, SHAPE(6), &rng)};
    df_tensor_spec sig = {DF_F32, 3, {DF_DYNAMIC, 4, 5}};
    df_function *f = df_function_new_signature("dense3d", build_dense3d, &m, 1, &sig);
    df_tensor in3 = batch_tensor(&sig, 3, &rng, 0), in5 = batch_tensor(&sig, 5, &rng, 0);
    df_tensor out[9], first[9], again[9];
    cr_assert_eq(df_function_call(f, &in3, 1, out, 9), DF_OK, "%s", df_last_error());
    for (int o = 0; o < 9; o++) first[o] = copy_tensor(&out[o]);
    cr_assert_eq(df_function_call(f, &in5, 1, out, 9), DF_OK, "%s", df_last_error());
    cr_expect_eq(out[1].shape[0], 5);
    cr_assert_eq(df_function_call(f, &in3, 1, again, 9), DF_OK, "%s", df_last_error());
    for (int o = 0; o < 9; o++) cr_expect(bit_equal(&first[o], &again[o]), "output %d differs after 3 -> 5 -> 3", o);
    df_graph_stats st = stats_of(f);
    cr_expect_eq(st.plans, 2);
    free_tensors(first, 9);
    free(in3.data);
    free(in5.data);
    df_function_free(f);
    df_variable_free(m.w);
    df_variable_free(m.b);
}

/* A forward model without reductions, tanh(x w + b), equals the static
 * graph bit for bit at every size. */
Test(bitwise, forward_model_equals_static_bit_for_bit)
{
    affine m = affine_new();
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *dyn = df_function_new_signature("affine", build_affine, &m, 1, &sig);
    df_function *ref = df_function_new("affine_static", build_affine, &m);
    static const int64_t sizes[] = {3, 5, 3, 1, 64, 5};
    for (int k = 0; k < 6; k++) {
        df_rng rng;
        df_rng_seed(&rng, 70 + (uint64_t)k);
        df_tensor in = batch_tensor(&sig, sizes[k], &rng, 0), got, want;
        cr_assert_eq(df_function_call(dyn, &in, 1, &got, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_function_call(ref, &in, 1, &want, 1), DF_OK, "%s", df_last_error());
        cr_expect(bit_equal(&got, &want), "B=%lld: dynamic and static differ", (long long)sizes[k]);
        free(in.data);
    }
    cr_expect_eq(df_function_trace_count(dyn), 1);
    df_function_free(dyn);
    df_function_free(ref);
    affine_free(&m);
}

/* ------------------------------------------- more: independent open dims */

/* Two inputs, each (None,3): their batch sizes are independent (as None is
 * in tf.function). Equal sizes run and match a static trace. A (1,3) input
 * broadcasts against a (4,3) one exactly as in a static trace, or the call
 * fails cleanly -- never wrong numbers; sizes that cannot broadcast fail
 * with DF_ERR_SHAPE and leave the function working (the (3|3) call after
 * them must run). Outputs: a fused chain of both and the gradient to each. */
static df_status build_two_batches(df_graph *g, df_node **in, void *user)
{
    df_node *a = in[0], *b = in[1];
    df_node *y = df_add(g, df_mul(g, df_tanh(g, a), df_sigmoid(g, b)), a);
    df_node *grads[2];
    if (df_gradients(g, df_sum(g, df_square(g, y), NULL, 0, false), NULL, 2, (df_node *[]){a, b}, grads) != DF_OK)
        return df_graph_status(g);
    df_graph_output(g, y);
    df_graph_output(g, grads[0]);
    df_graph_output(g, grads[1]);
    return df_graph_status(g);
}

Test(independent_dims, inputs_with_different_batch_sizes_broadcast_or_fail_cleanly)
{
    df_tensor_spec sig[2] = {{DF_F32, 2, {DF_DYNAMIC, 3}}, {DF_F32, 2, {DF_DYNAMIC, 3}}};
    df_function *dyn = df_function_new_signature("two", build_two_batches, NULL, 2, sig);
    df_function *ref = df_function_new("two_static", build_two_batches, NULL);
    df_function_set_retrace_warning(ref, 0);
    static const int64_t rows[][2] = {{4, 4}, {4, 1}, {1, 4}, {4, 2}, {3, 3}};
    for (int k = 0; k < 5; k++) {
        df_rng rng;
        df_rng_seed(&rng, 80 + (uint64_t)k);
        df_tensor in[2] = {batch_tensor(&sig[0], rows[k][0], &rng, 0), batch_tensor(&sig[1], rows[k][1], &rng, 0)};
        df_tensor got[3], want[3];
        df_status sr = df_function_call(ref, in, 2, want, 3);
        df_status sd = df_function_call(dyn, in, 2, got, 3);
        char what[64];
        bool equal_batches = rows[k][0] == rows[k][1];
        if (equal_batches) {
            /* what the trace assumed holds: both must run, with the same numbers */
            cr_assert_eq(sr, DF_OK, "(%lld|%lld) static: %s", (long long)rows[k][0], (long long)rows[k][1],
                         df_last_error());
            cr_expect_eq(sd, DF_OK, "(%lld|%lld): equal batch sizes refused: %s", (long long)rows[k][0],
                         (long long)rows[k][1], df_last_error());
        }
        if (sr != DF_OK) {
            cr_expect_neq(sd, DF_OK, "(%lld|%lld): the static trace fails, the dynamic one runs",
                          (long long)rows[k][0], (long long)rows[k][1]);
        } else if (sd != DF_OK) {
            /* the trace took the two batches as equal (fusion, skipped reductions): a clear refusal */
            cr_expect(sd == DF_ERR_SHAPE && strstr(df_last_error(), "took them as equal"),
                      "(%lld|%lld): refused without saying why: %s", (long long)rows[k][0], (long long)rows[k][1],
                      df_last_error());
            cr_log_info("(%lld|%lld): dynamic call refused: %s", (long long)rows[k][0], (long long)rows[k][1],
                        df_last_error());
        } else {
            for (int o = 0; o < 3; o++) {
                snprintf(what, sizeof what, "(%lld|%lld) output %d", (long long)rows[k][0], (long long)rows[k][1], o);
                expect_tensor_near(&got[o], &want[o], 1e-6, what);
            }
        }
        free_tensors(in, 2);
    }
    df_function_free(dyn);
    df_function_free(ref);
}

/* Two open dims in one input, x (None,None,4) -- batch and sequence length:
 * a dense layer, a mean over time and gradients, against static traces, at
 * shapes where the two differ. */
typedef struct seq { df_variable *w, *b; } seq;

static df_status build_seq(df_graph *g, df_node **in, void *user)
{
    seq *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *w = df_var(g, m->w), *b = df_var(g, m->b);
    df_node *h = df_tanh(g, df_add(g, df_matmul(g, in[0], w, false, false), b));   /* (B,T,3) */
    df_node *pooled = df_mean(g, h, (int[]){1}, 1, false);                         /* (B,3) */
    df_node *loss = df_mean(g, df_square(g, pooled), NULL, 0, false);
    df_tape_end(tape);
    df_node *grads[3];
    if (df_tape_gradient_nodes(tape, loss, 3, (df_node *[]){w, b, in[0]}, grads) != DF_OK) return df_graph_status(g);
    df_node *outs[] = {loss, pooled, grads[0], grads[1], grads[2]};
    for (int i = 0; i < 5; i++) df_graph_output(g, outs[i]);
    return df_graph_status(g);
}

Test(independent_dims, batch_and_sequence_length_both_open)
{
    df_rng rng;
    df_rng_seed(&rng, 9);
    seq m = {uniform_var("w", 2, SHAPE(4, 3), &rng), uniform_var("b", 1, SHAPE(3), &rng)};
    df_tensor_spec sig = {DF_F32, 3, {DF_DYNAMIC, DF_DYNAMIC, 4}};
    df_function *dyn = df_function_new_signature("seq", build_seq, &m, 1, &sig);
    df_function *ref = df_function_new("seq_static", build_seq, &m);
    df_function_set_retrace_warning(ref, 0);
    static const int64_t shapes[][2] = {{2, 5}, {5, 2}, {1, 7}, {7, 1}, {3, 3}};
    for (int k = 0; k < 5; k++) {
        int64_t n = shapes[k][0] * shapes[k][1] * 4;
        float *xv = rand_buf(&rng, n, -1, 1);
        df_tensor in = F32(xv, shapes[k][0], shapes[k][1], 4), got[5], want[5];
        cr_assert_eq(df_function_call(dyn, &in, 1, got, 5), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_function_call(ref, &in, 1, want, 5), DF_OK, "%s", df_last_error());
        for (int o = 0; o < 5; o++) {
            char what[64];
            snprintf(what, sizeof what, "(%lld,%lld,4) output %d", (long long)shapes[k][0], (long long)shapes[k][1], o);
            expect_tensor_near(&got[o], &want[o], 1e-6, what);
        }
        free(xv);
    }
    cr_expect_eq(df_function_trace_count(dyn), 1);
    df_function_free(dyn);
    df_function_free(ref);
    df_variable_free(m.w);
    df_variable_free(m.b);
}
