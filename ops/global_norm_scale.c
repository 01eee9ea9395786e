/* global_norm_scale.c — the factor that clips gradients by their global
 * norm (Keras' global_clipnorm, tf.clip_by_global_norm):
 *   norm = sqrt(sum_i sum(g_i^2)),  scale = clip / max(norm, clip)
 * so multiplying every gradient by scale leaves them alone when the norm is
 * within clip and rescales them to norm clip otherwise. Summed in double in
 * a fixed order (deterministic). Not differentiable. */
/* No multiply-add contraction: every copy of the lanes loop rounds alike. */
#pragma GCC optimize ("fp-contract=off")
#include <math.h>
#include "common.h"
#include "isa_kernels.h"

DF_ATTRS_BEGIN
typedef struct { float clip; } global_norm_scale_attrs;
DF_ATTRS_END

static df_status global_norm_scale_infer(df_node *n)
{
    for (int i = 0; i < n->n_in; i++) {
        df_status st = df_require_f32(n, i);
        if (st != DF_OK) return st;
    }
    float clip = DF_ATTRS(n, global_norm_scale_attrs)->clip;
    if (!(clip > 0)) return df_op_error(n, DF_ERR_ARG, "clip norm must be positive, got %g", clip);
    n->dtype = DF_F32;
    n->ndim = 0;
    return DF_OK;
}

/* Partial sums of squares of x[0, n): lane j sums the elements i = j mod
 * DF_SUMSQ_LANES in order, in double (a float's square is exact in double),
 * so every copy of the loop gives the same bits, and the lanes run as
 * independent vector chains rather than one chain of dependent adds. */
static inline __attribute__((always_inline)) void df_sumsq_lanes_body(const float *x, int64_t n, double *lanes)
{
    double acc[DF_SUMSQ_LANES] = {0};
    int64_t i = 0;
    for (; i + DF_SUMSQ_LANES <= n; i += DF_SUMSQ_LANES) {
#pragma omp simd
        for (int j = 0; j < DF_SUMSQ_LANES; j++) acc[j] += (double)x[i + j] * x[i + j];
    }
    for (int j = 0; i + j < n; j++) acc[j] += (double)x[i + j] * x[i + j];
    for (int j = 0; j < DF_SUMSQ_LANES; j++) lanes[j] = acc[j];
}
DF_ISA_KERNEL(df_sumsq_lanes, (const float *x, int64_t n, double *lanes), (x, n, lanes))

/* Sum of squares of one tensor: fixed 64 chunks, each's lanes summed in
 * order, then the chunks in order. */
static double sum_of_squares(const float *x, int64_t N)
{
    double part[64] = {0};
    int64_t chunk = (N + 63) / 64;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int c = 0; c < 64; c++) {
        int64_t lo = c * chunk < N ? c * chunk : N, hi = lo + chunk < N ? lo + chunk : N;
        double lanes[DF_SUMSQ_LANES], acc = 0;
        df_sumsq_lanes(x + lo, hi - lo, lanes);
        for (int j = 0; j < DF_SUMSQ_LANES; j++) acc += lanes[j];
        part[c] = acc;
    }
    double total = 0;
    for (int c = 0; c < 64; c++) total += part[c];
    return total;
}

// grads g_0..g_k (any shapes) -> scale ()
static df_status global_norm_scale_forward(df_node *n)
{
    double total = 0;
    for (int i = 0; i < n->n_in; i++) total += sum_of_squares(DF_F32P(n->in[i]), n->in[i]->numel);
    double norm = sqrt(total), clip = DF_ATTRS(n, global_norm_scale_attrs)->clip;
    DF_F32P(n)[0] = (float)(clip / (norm > clip ? norm : clip));
    return DF_OK;
}

/* A multiply-add per element of every gradient, then sqrt, max and divide;
 * the gradients read, the scale written. */
static void global_norm_scale_cost(const df_node *n, df_op_cost *out)
{
    double elements = 0;
    for (int i = 0; i < n->n_in; i++) elements += (double)n->in[i]->numel;
    *out = (df_op_cost){.flops = 2 * elements + 3, .bytes = df_cost_io_bytes(n)};
}

static df_node *global_norm_scale_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_global_norm_scale(g, 2, in, (float)attrs[0]);
}

/* Two gradients: a weight matrix and its bias. */
static const df_bench_def global_norm_scale_bench = {
    .n_inputs = 2, .attrs = {"clip"}, .defaults = {"1"}, .build = global_norm_scale_bench_build,
    .shapes = {"256x1024,1024", "1024x4096,4096", "4096x4096,4096"},
};

const df_op_def df_op_global_norm_scale = {
    .name = "global_norm_scale", .infer = global_norm_scale_infer, .forward = global_norm_scale_forward,
    .attrs_size = sizeof(global_norm_scale_attrs),
    .no_gradcheck = "no gradient: the clipping factor applied to gradients (tests/test_optim.c)",
    .min_inputs = 1, .max_inputs = DF_MAX_INPUTS,
    .cost = global_norm_scale_cost, .bench = &global_norm_scale_bench,
};

df_node *df_global_norm_scale(df_graph *g, int n, df_node *const *grads, float clip)
{
    return df_node_new(g, &df_op_global_norm_scale, n, grads, &(global_norm_scale_attrs){.clip = clip});
}
