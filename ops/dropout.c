/* dropout.c — inverted dropout with a counter-based mask:
 *
 *   y[i] = keep(i) ? x[i] / (1 - rate) : 0,   keep(i) = u(seed, salt, i) >= rate
 *
 * where u is a 24-bit uniform in [0,1) from a splitmix64-style hash of the
 * seed's value (input 1, an i32 with one element, e.g. a step counter), the
 * salt and the flat index i. The mask is a pure function of those, so
 * it is never stored: the backward is another dropout node on dy with the
 * same seed, salt and rate, which redraws the same mask (and is itself
 * differentiable). A new seed value gives a new mask; the same value repeats
 * it exactly, whatever the thread count.
 *
 * first_row = the row (index along axis 0) x starts at in a larger batch: the
 * flat index is counted from there, so a data-parallel process that holds
 * rows [r0, r0 + b) of a batch draws exactly those rows' mask.
 *
 * Two dropout layers on the same input must not share a mask, so the op is
 * flagged DF_OP_NO_CSE: the CSE pass never merges dropout nodes (callers give
 * each layer its own salt as well). */
#include <math.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    uint64_t salt;
    int64_t first_row;
    float rate;                   /* in [0, 1) */
    uint32_t unused;              /* 0: no padding */
} dropout_attrs;
DF_ATTRS_END

static df_status dropout_infer(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    const df_node *seed = n->in[1];
    char s[64];
    if (seed->dtype != DF_I32 || seed->numel != 1)
        return df_op_error(n, DF_ERR_ARG, "seed must be an i32 with one element, got %s %s",
                           df_dtype_name(seed->dtype), df_node_shape_str(seed, s, sizeof s));
    float rate = DF_ATTRS(n, dropout_attrs)->rate;
    if (!(rate >= 0.0f && rate < 1.0f)) return df_op_error(n, DF_ERR_ARG, "rate must be in [0, 1), got %g", rate);
    return df_infer_unary(n);
}

static inline uint64_t dropout_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// x (any), seed i32 (one element) -> y (x's shape)
static df_status dropout_forward(df_node *n)
{
    const float *X = DF_F32P(n->in[0]);
    float *Y = DF_F32P(n);
    const int64_t N = n->numel;
    const dropout_attrs *a = DF_ATTRS(n, dropout_attrs);
    const float rate = a->rate, scale = 1.0f / (1.0f - rate);
    const uint64_t base = dropout_mix(dropout_mix(a->salt) ^ (uint64_t)(uint32_t)DF_I32P(n->in[1])[0]);
    const uint64_t first = n->ndim && n->shape[0] ? (uint64_t)a->first_row * (uint64_t)(N / n->shape[0]) : 0;
    /* threshold on 24-bit draws: keep iff draw >= rate * 2^24 */
    const uint64_t cut = (uint64_t)ceil((double)rate * 16777216.0);
#pragma omp parallel for simd schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        uint64_t u = dropout_mix(base + (first + (uint64_t)i) * 0x9E3779B97F4A7C15ull) >> 40;
        Y[i] = u >= cut ? X[i] * scale : 0.0f;
    }
    return DF_OK;
}

static df_status dropout_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    const dropout_attrs *a = DF_ATTRS(n, dropout_attrs);
    if (need[0]) dx[0] = df_dropout_rows(g, dy, a->rate, n->in[1], a->salt, a->first_row);
    return g->status;
}

/* One multiply by 1/(1-rate) per element (the mask's hash is integer work);
 * x and the seed read, y written. */
static void dropout_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

static df_node *dropout_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_dropout(g, in[0], (float)attrs[0], in[1], 1);
}

/* The seed is an i32 with one element: ids in [0, x's dim 0). */
static const df_bench_def dropout_bench = {
    .n_inputs = 2, .dtypes = {DF_F32, DF_I32}, .attrs = {"rate"}, .defaults = {"0.1"},
    .build = dropout_bench_build, .shapes = {"256x1024,1", "6400x4096,1", "16384x4096,1"},
};

static df_node *dropout_build(df_graph *g, df_node **in) { return df_dropout(g, in[0], 0.3f, in[1], 7); }
static df_node *dropout_build_half(df_graph *g, df_node **in) { return df_dropout(g, in[0], 0.5f, in[1], 1); }

static const df_gradcheck_case dropout_cases[] = {
    {"rate 0.3 (2,3,4)", 2, {DF_GC_F32(2, 3, 4), {DF_I32, 1, {1}, 0.0f, 1000.0f}}, dropout_build, 0, 0},
    {"rate 0.5 (17)", 2, {DF_GC_F32(17), {DF_I32, 0, {0}, 0.0f, 1000.0f}}, dropout_build_half, 0, 0},
    {0},
};

const df_op_def df_op_dropout = {
    .name = "dropout", .flags = DF_OP_NO_CSE, .infer = dropout_infer, .forward = dropout_forward,
    .backward = dropout_backward, .gradcheck = dropout_cases, .attrs_size = sizeof(dropout_attrs),
    .min_inputs = 2, .max_inputs = 2,
    .cost = dropout_cost, .bench = &dropout_bench,
};

df_node *df_dropout(df_graph *g, df_node *x, float rate, df_node *seed, uint64_t salt)
{
    return df_dropout_rows(g, x, rate, seed, salt, 0);
}

df_node *df_dropout_rows(df_graph *g, df_node *x, float rate, df_node *seed, uint64_t salt, int64_t first_row)
{
    if (first_row < 0) {
        if (g) df_graph_fail(g, DF_ERR_ARG, "op 'dropout': first row %lld is negative", (long long)first_row);
        return NULL;
    }
    df_node *in[2] = {x, seed};
    dropout_attrs a = {.salt = salt, .first_row = first_row, .rate = rate};
    return df_node_new(g, &df_op_dropout, 2, in, &a);
}
