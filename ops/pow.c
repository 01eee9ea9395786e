/* pow.c — x^p for a scalar exponent p (powf, as torch.pow(x, p): negative x
 * with a non-integer p gives NaN). dx = dy * p * x^(p-1), itself a pow
 * node, so higher derivatives work; p = 0 gives a zero gradient. */
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { float p; } pow_attrs;
DF_ATTRS_END

// x (any) -> y (same shape)
static df_status pow_forward(df_node *n)
{
    const float *X = DF_F32P(n->in[0]);
    float *Y = DF_F32P(n), p = DF_ATTRS(n, pow_attrs)->p;
    int64_t N = n->numel;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) Y[i] = powf(X[i], p);
    return DF_OK;
}

static df_status pow_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    (void)need;
    float p = DF_ATTRS(n, pow_attrs)->p;
    dx[0] = p == 0 ? df_scale(g, dy, 0.0f) : df_mul(g, dy, df_scale(g, df_pow(g, n->in[0], p - 1), p));
    return g->status;
}

static df_node *pow_cube(df_graph *g, df_node **in) { return df_pow(g, in[0], 3.0f); }
static df_node *pow_root(df_graph *g, df_node **in) { return df_pow(g, in[0], 0.5f); }
static df_node *pow_inverse(df_graph *g, df_node **in) { return df_pow(g, in[0], -1.5f); }

/* The central difference of x^3 is off by exactly eps^2 (1e-4) times the
 * upstream weight, so that case needs an atol above it. */
static const df_gradcheck_case pow_cases[] = {
    {"x^3 (negative x too)", 1, {DF_GC_F32(2, 3)}, pow_cube, 2e-4f, 0},
    {"x^0.5", 1, {DF_GC_F32_RANGE(0.5f, 2.0f, 5)}, pow_root, 0, 0},
    {"x^-1.5", 1, {DF_GC_F32_RANGE(0.5f, 2.0f, 2, 2)}, pow_inverse, 0, 0},
    {0},
};

/* One operation per element (powf counts as one). */
static void pow_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

/* p has no default: --attr p=VALUE. */
static df_node *pow_bench_build(df_graph *g, df_node **in, const double *attrs) { return df_pow(g, in[0], (float)attrs[0]); }

static const df_bench_def pow_bench = {
    .n_inputs = 1, .lo = 0.5f, .hi = 2.0f, .attrs = {"p"}, .defaults = {NULL}, .build = pow_bench_build,
    .shapes = {"256x1024 p=3", "6400x4096 p=3", "16384x4096 p=0.5"},
};

const df_op_def df_op_pow = {
    .name = "pow", .infer = df_infer_unary, .forward = pow_forward, .backward = pow_backward,
    .gradcheck = pow_cases, .attrs_size = sizeof(pow_attrs),
    .cost = pow_cost, .bench = &pow_bench,
};

df_node *df_pow(df_graph *g, df_node *x, float p)
{
    return df_node_new(g, &df_op_pow, 1, &x, &(pow_attrs){.p = p});
}

/* min(max(x, lo), hi), composed: the gradient passes inside (lo, hi). */
df_node *df_clip(df_graph *g, df_node *x, float lo, float hi)
{
    if (g && df_graph_status(g) == DF_OK && !(lo <= hi)) {
        df_graph_fail(g, DF_ERR_ARG, "clip: lo %g must be <= hi %g", lo, hi);
        return NULL;
    }
    return df_minimum(g, df_maximum(g, x, df_scalar(g, lo)), df_scalar(g, hi));
}
