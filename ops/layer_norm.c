/* layer_norm.c — layer normalisation over the last axis, PyTorch's
 * nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * gain + bias, with the
 * biased variance of each row; gain and bias (C) are optional (both or
 * neither). Forward and backward are fused loops over rows with the row
 * sums in double. One layer_norm_grad node gives
 *   dx = rstd * (gdy - mean(gdy) - xhat * mean(gdy * xhat)),  gdy = gain * dy,
 * and, with a gain, dgain = sum_rows(dy * xhat) and dbias = sum_rows(dy) in
 * its workspace (xhat = (x - mean) * rstd in float, as layer_norm without
 * the affine computes it; each column summed in double over the rows in
 * order, as sum_to does), read out by layer_norm_param_grad nodes: the same
 * bits as those ops composed, in one pass over x and dy. */
/* No multiply-add contraction: the per-instruction-set copies of the loops
 * below (ops/isa.h) round every operation as the baseline does. The sums
 * of layer_norm_grad's rows stay baseline code: their `omp simd` reductions
 * sum in an order that depends on the vector width. */
#pragma GCC optimize ("fp-contract=off")
#include <omp.h>
#include <string.h>
#include "common.h"
#include "isa_kernels.h"

DF_ATTRS_BEGIN
typedef struct { float eps; } layer_norm_attrs;
DF_ATTRS_END

static df_node *layer_norm_grad(df_graph *g, df_node *x, df_node *gain, df_node *dy, float eps);
static df_node *layer_norm_param_grad(df_graph *g, df_node *grad, int which);

/* Mean and 1/sqrt(var + eps) of rows x[r * C ...], r < nrows <= DF_LN_ROWS,
 * two passes in double, the rows side by side so that their chains of
 * dependent adds overlap. Each row is summed as the `omp simd` reductions
 * of this file's baseline build did it (and so with the same bits): lane l
 * of DF_LN_LANES sums the elements j = l mod DF_LN_LANES of the whole
 * groups in order, lane 0 then the leftover ones, and the row's sum is
 * (((0 + lane 0) + lane 1) + lane 2) + lane 3. */
typedef double ln_lanes __attribute__((vector_size(DF_LN_LANES * sizeof(double))));
typedef float ln_lanes_f __attribute__((vector_size(DF_LN_LANES * sizeof(float))));

/* x[0 .. DF_LN_LANES) as doubles (vectors by pointer: no vector ABI). */
static inline __attribute__((always_inline)) void ln_load(const float *x, ln_lanes *out)
{
    ln_lanes_f f;
    memcpy(&f, x, sizeof f);
    *out = __builtin_convertvector(f, ln_lanes);
}

static inline __attribute__((always_inline)) double ln_lanes_sum(const ln_lanes *v)
{
    double sum = 0;
    for (int l = 0; l < DF_LN_LANES; l++) sum += (*v)[l];
    return sum;
}

static inline __attribute__((always_inline)) void df_ln_row_stats_body(const float *x, int64_t C, int64_t nrows,
                                                                       float eps, double *mean, double *rstd)
{
    const float *row[DF_LN_ROWS];
    for (int r = 0; r < DF_LN_ROWS; r++) row[r] = x + (r < nrows ? r : nrows - 1) * C;  /* spare rows: a copy */
    const int64_t body = C / DF_LN_LANES * DF_LN_LANES;
    ln_lanes acc[DF_LN_ROWS] = {{0}}, sq[DF_LN_ROWS] = {{0}};
    double m[DF_LN_ROWS];
    for (int64_t j = 0; j < body; j += DF_LN_LANES)
        for (int r = 0; r < DF_LN_ROWS; r++) {
            ln_lanes v;
            ln_load(row[r] + j, &v);
            acc[r] += v;
        }
    for (int r = 0; r < DF_LN_ROWS; r++) {
        for (int64_t j = body; j < C; j++) acc[r][0] += (double)row[r][j];
        m[r] = C ? ln_lanes_sum(&acc[r]) / (double)C : 0;
    }
    for (int64_t j = 0; j < body; j += DF_LN_LANES)
        for (int r = 0; r < DF_LN_ROWS; r++) {
            ln_lanes d;
            ln_load(row[r] + j, &d);
            d -= m[r];
            sq[r] += d * d;
        }
    for (int r = 0; r < nrows; r++) {
        for (int64_t j = body; j < C; j++) {
            double d = (double)row[r][j] - m[r];
            sq[r][0] += d * d;
        }
        mean[r] = m[r];
        rstd[r] = 1.0 / sqrt((C ? ln_lanes_sum(&sq[r]) / (double)C : 0) + (double)eps);
    }
}
DF_ISA_KERNEL(df_ln_row_stats, (const float *x, int64_t C, int64_t nrows, float eps, double *mean, double *rstd),
              (x, C, nrows, eps, mean, rstd))

/* y = (x - m) * s, times gain plus bias when G (then B too). */
static inline __attribute__((always_inline)) void df_ln_normalize_row_body(const float *xr, int64_t C, float m, float s,
                                                                           const float *G, const float *B, float *yr)
{
    if (G) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - m) * s * G[j] + B[j];
    } else {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - m) * s;
    }
}
DF_ISA_KERNEL(df_ln_normalize_row, (const float *xr, int64_t C, float m, float s, const float *G, const float *B, float *yr),
              (xr, C, m, s, G, B, yr))

/* x (..., C), and with affine gain (C), bias (C). */
static df_status layer_norm_infer(df_node *n)
{
    df_status st = df_infer_unary(n);
    if (st != DF_OK) return st;
    const df_node *x = n->in[0];
    char sx[64], sg[64];
    if (x->ndim < 1) return df_op_error(n, DF_ERR_SHAPE, "input must have a last axis, got a scalar");
    int64_t C = x->shape[x->ndim - 1];
    if (n->n_in == 2) return df_op_error(n, DF_ERR_ARG, "takes a gain and a bias together, or neither");
    for (int i = 1; i < n->n_in; i++) {
        const df_node *p = n->in[i];
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
        if (p->ndim != 1 || p->shape[0] != C)
            return df_op_error(n, DF_ERR_SHAPE, "%s must have shape (%lld) for input %s, got %s",
                               i == 1 ? "gain" : "bias", (long long)C, df_node_shape_str(x, sx, sizeof sx),
                               df_node_shape_str(p, sg, sizeof sg));
    }
    if (!(DF_ATTRS(n, layer_norm_attrs)->eps > 0))
        return df_op_error(n, DF_ERR_ARG, "eps must be > 0, got %g", DF_ATTRS(n, layer_norm_attrs)->eps);
    return DF_OK;
}

// x (rows, C), gain (C), bias (C) -> y (rows, C)
static df_status layer_norm_forward(df_node *n)
{
    const df_node *x = n->in[0];
    int64_t C = x->shape[x->ndim - 1], rows = C ? x->numel / C : 0;
    const float *X = DF_F32P(x), *G = n->n_in > 1 ? DF_F32P(n->in[1]) : NULL, *B = n->n_in > 1 ? DF_F32P(n->in[2]) : NULL;
    float *Y = DF_F32P(n), eps = DF_ATTRS(n, layer_norm_attrs)->eps;
    const int64_t blocks = (rows + DF_LN_ROWS - 1) / DF_LN_ROWS;
    DF_PAR_FOR(x->numel > DF_PAR_MIN,
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t r0 = blk * DF_LN_ROWS, nr = rows - r0 < DF_LN_ROWS ? rows - r0 : DF_LN_ROWS;
        double mean[DF_LN_ROWS], rstd[DF_LN_ROWS];
        df_ln_row_stats(X + r0 * C, C, nr, eps, mean, rstd);
        for (int64_t i = 0; i < nr; i++)
            df_ln_normalize_row(X + (r0 + i) * C, C, (float)mean[i], (float)rstd[i], G, B, Y + (r0 + i) * C);
    });
    return DF_OK;
}

static df_status layer_norm_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *x = n->in[0];
    float eps = DF_ATTRS(n, layer_norm_attrs)->eps;
    bool affine = n->n_in > 1;
    df_node *grad = layer_norm_grad(g, x, affine ? n->in[1] : NULL, dy, eps);
    if (need[0]) dx[0] = grad;
    if (affine && need[1]) dx[1] = layer_norm_param_grad(g, grad, 0);
    if (affine && need[2]) dx[2] = layer_norm_param_grad(g, grad, 1);
    return g->status;
}

static df_node *ln_affine(df_graph *g, df_node **in) { return df_layer_norm(g, in[0], in[1], in[2], 1e-5f); }
static df_node *ln_plain(df_graph *g, df_node **in) { return df_layer_norm(g, in[0], NULL, NULL, 1e-5f); }

/* Rows drawn from [-3, 3]: the derivatives scale with powers of 1/std, so
 * rows of nearly equal values would measure the finite difference's own
 * error rather than the backward. */
static const df_gradcheck_case layer_norm_cases[] = {
    {"(3,5) with gain and bias", 3, {DF_GC_F32_RANGE(-3.0f, 3.0f, 3, 5), DF_GC_F32_RANGE(0.5f, 1.5f, 5), DF_GC_F32(5)},
     ln_affine, 0, 0},
    {"(2,2,4) with gain and bias", 3, {DF_GC_F32_RANGE(-3.0f, 3.0f, 2, 2, 4), DF_GC_F32(4), DF_GC_F32(4)}, ln_affine, 0, 0},
    {"(4,6) without", 1, {DF_GC_F32_RANGE(-3.0f, 3.0f, 4, 6)}, ln_plain, 0, 0},
    {0},
};

/* Per element: the mean (1), the variance (3), normalising (2) and with
 * gain and bias 2 more; one pass over x and y. */
static void layer_norm_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel * (n->n_in == 3 ? 8 : 6), .bytes = df_cost_io_bytes(n)};
}

/* eps (default 1e-5); x (rows, C), gain and bias (C). */
static df_node *layer_norm_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_layer_norm(g, in[0], in[1], in[2], (float)attrs[0]);
}

static const df_bench_def layer_norm_bench = {
    .n_inputs = 3, .attrs = {"eps"}, .defaults = {"1e-5"}, .build = layer_norm_bench_build,
    .shapes = {"256x384,384,384", "4096x384,384,384", "16384x768,768,768"},
};

const df_op_def df_op_layer_norm = {
    .name = "layer_norm", .infer = layer_norm_infer, .forward = layer_norm_forward,
    .backward = layer_norm_backward, .gradcheck = layer_norm_cases, .attrs_size = sizeof(layer_norm_attrs),
    .cost = layer_norm_cost, .bench = &layer_norm_bench,
    .min_inputs = 1, .max_inputs = 3,
};

df_node *df_layer_norm(df_graph *g, df_node *x, df_node *gain, df_node *bias, float eps)
{
    if (g && df_graph_status(g) == DF_OK && !gain != !bias) {
        df_graph_fail(g, DF_ERR_ARG, "op 'layer_norm': gain and bias go together (one of them is NULL)");
        return NULL;
    }
    df_node *in[3] = {x, gain, bias};
    return df_node_new(g, &df_op_layer_norm, gain ? 3 : 1, in, &(layer_norm_attrs){.eps = eps});
}

/* ------------------------------------------------------- the input gradient */

/* The workspace of an affine layer_norm_grad: dgain (C), dbias (C), then
 * each row's mean and rstd as the forward rounds them to float (rows, 2). */
static size_t param_grad_floats(int64_t rows, int64_t C) { return (size_t)(2 * C + 2 * rows); }

/* dgain and dbias columns [j0, j1) summed over the rows in order; every
 * vector lane is one column's sums. */
static inline __attribute__((always_inline)) void df_ln_param_grad_columns_body(const float *X, const float *DY,
                                                                                const float *stats, int64_t rows,
                                                                                int64_t C, int64_t j0, int64_t j1,
                                                                                float *dgain, float *dbias)
{
    enum { W = 64 };
    for (int64_t c0 = j0; c0 < j1; c0 += W) {
        const int64_t w = j1 - c0 < W ? j1 - c0 : W;
        double sg[W] = {0}, sb[W] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = X + r * C + c0, *dyr = DY + r * C + c0, m = stats[2 * r], s = stats[2 * r + 1];
#pragma omp simd
            for (int64_t j = 0; j < w; j++) {
                float xhat = (xr[j] - m) * s, prod = dyr[j] * xhat;
                sg[j] += prod;
                sb[j] += dyr[j];
            }
        }
        for (int64_t j = 0; j < w; j++) dgain[c0 + j] = (float)sg[j], dbias[c0 + j] = (float)sb[j];
    }
}
DF_ISA_KERNEL(df_ln_param_grad_columns,
              (const float *X, const float *DY, const float *stats, int64_t rows, int64_t C, int64_t j0, int64_t j1,
               float *dgain, float *dbias),
              (X, DY, stats, rows, C, j0, j1, dgain, dbias))

/* One row of dx = rstd * (gdy - a - xhat * b), in double; G NULL: gain 1. */
static inline __attribute__((always_inline)) void df_ln_grad_dx_row_body(const float *xr, const float *dyr,
                                                                         const float *G, int64_t C, const double *k,
                                                                         float *dxr)
{
    const double mean = k[0], rstd = k[1], a = k[2], b = k[3];
#pragma omp simd
    for (int64_t j = 0; j < C; j++) {
        double gdy = (double)dyr[j] * (G ? G[j] : 1.0f), xhat = ((double)xr[j] - mean) * rstd;
        dxr[j] = (float)(rstd * (gdy - a - xhat * b));
    }
}
DF_ISA_KERNEL(df_ln_grad_dx_row, (const float *xr, const float *dyr, const float *G, int64_t C, const double *k, float *dxr),
              (xr, dyr, G, C, k, dxr))

// x (rows, C), [gain (C)], dy (rows, C) -> dx (rows, C); aux (affine): dgain, dbias, row stats
static df_status layer_norm_grad_forward(df_node *n)
{
    const df_node *x = n->in[0];
    bool affine = n->n_in == 3;
    const float *X = DF_F32P(x), *G = affine ? DF_F32P(n->in[1]) : NULL, *DY = DF_F32P(n->in[affine ? 2 : 1]);
    int64_t C = x->shape[x->ndim - 1], rows = C ? x->numel / C : 0;
    float *DX = DF_F32P(n), eps = DF_ATTRS(n, layer_norm_attrs)->eps;
    float *dgain = affine ? n->aux : NULL, *dbias = affine ? dgain + C : NULL, *stats = affine ? dbias + C : NULL;
#pragma omp parallel if (x->numel > DF_PAR_MIN)
    {
    const int64_t blocks = (rows + DF_LN_ROWS - 1) / DF_LN_ROWS;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t r0 = blk * DF_LN_ROWS, nr = rows - r0 < DF_LN_ROWS ? rows - r0 : DF_LN_ROWS;
        double means[DF_LN_ROWS], rstds[DF_LN_ROWS];
        df_ln_row_stats(X + r0 * C, C, nr, eps, means, rstds);
        for (int64_t r = r0; r < r0 + nr; r++) {
            const float *xr = X + r * C, *dyr = DY + r * C;
            const double mean = means[r - r0], rstd = rstds[r - r0];
            double sum_gdy = 0, sum_gdy_xhat = 0;
            if (stats) stats[2 * r] = (float)mean, stats[2 * r + 1] = (float)rstd;
#pragma omp simd reduction(+:sum_gdy, sum_gdy_xhat)
            for (int64_t j = 0; j < C; j++) {
                double gdy = (double)dyr[j] * (G ? G[j] : 1.0f), xhat = ((double)xr[j] - mean) * rstd;
                sum_gdy += gdy;
                sum_gdy_xhat += gdy * xhat;
            }
            const double k[4] = {mean, rstd, sum_gdy / (double)C, sum_gdy_xhat / (double)C};
            df_ln_grad_dx_row(xr, dyr, G, C, k, DX + r * C);
        }
    }
    if (affine) {             /* after the loop's barrier: every row's stats are in */
        const int nth = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t per = (C + nth - 1) / nth, j0 = t * per < C ? t * per : C, j1 = j0 + per < C ? j0 + per : C;
        df_ln_param_grad_columns(X, DY, stats, rows, C, j0, j1, dgain, dbias);
    }
    }
    return DF_OK;
}

static df_status layer_norm_grad_infer(df_node *n)
{
    const df_node *x = n->in[0], *dy = n->in[n->n_in - 1];
    if (!df_shape_equal(x->ndim, x->shape, dy->ndim, dy->shape)) {
        char sx[64], sd[64];
        return df_op_error(n, DF_ERR_SHAPE, "dy %s must have x's shape %s", df_node_shape_str(dy, sd, sizeof sd),
                           df_node_shape_str(x, sx, sizeof sx));
    }
    df_status st = df_infer_unary(n);
    if (st == DF_OK && n->n_in == 3) {
        int64_t C = x->shape[x->ndim - 1];
        n->aux_bytes = param_grad_floats(C ? x->numel / C : 0, C) * sizeof(float);
    }
    return st;
}

/* Per element: the row statistics again (4), two sums (4) and dx (4); with
 * a gain, xhat and the two column sums (5). */
static void layer_norm_grad_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel * (n->n_in == 3 ? 17 : 12), .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_layer_norm_grad = {
    .name = "layer_norm_grad", .infer = layer_norm_grad_infer, .forward = layer_norm_grad_forward,
    .no_gradcheck = "gradient op: checked through layer_norm's cases", .attrs_size = sizeof(layer_norm_attrs),
    .cost = layer_norm_grad_cost,
    .min_inputs = 2, .max_inputs = 3,
};

static df_node *layer_norm_grad(df_graph *g, df_node *x, df_node *gain, df_node *dy, float eps)
{
    df_node *in[3] = {x, gain ? gain : dy, dy};
    return df_node_new(g, &df_op_layer_norm_grad, gain ? 3 : 2, in, &(layer_norm_attrs){.eps = eps});
}

/* ------------------------------------------- the gain and bias gradients */

DF_ATTRS_BEGIN
typedef struct { int32_t which; } param_grad_attrs;
DF_ATTRS_END

static df_status layer_norm_param_grad_infer(df_node *n)
{
    const df_node *grad = n->in[0];
    if (grad->op != &df_op_layer_norm_grad || grad->n_in != 3)
        return df_op_error(n, DF_ERR_ARG, "input must be a layer_norm_grad node with a gain, got op '%s'",
                           grad->op->name);
    int which = DF_ATTRS(n, param_grad_attrs)->which;
    if (which != 0 && which != 1) return df_op_error(n, DF_ERR_ARG, "which must be 0 (gain) or 1 (bias), got %d", which);
    const df_node *gain = grad->in[1];
    n->dtype = DF_F32;
    n->ndim = gain->ndim;
    memcpy(n->shape, gain->shape, sizeof n->shape);
    return DF_OK;
}

// layer_norm_grad [aux dgain | dbias | ...] -> dgain or dbias (C)
static df_status layer_norm_param_grad_forward(df_node *n)
{
    const float *from = (const float *)n->in[0]->aux + (DF_ATTRS(n, param_grad_attrs)->which ? n->numel : 0);
    if (n->numel) memcpy(n->data, from, (size_t)n->numel * sizeof(float));
    return DF_OK;
}

static void layer_norm_param_grad_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
}

const df_op_def df_op_layer_norm_param_grad = {
    .name = "layer_norm_param_grad", .infer = layer_norm_param_grad_infer, .forward = layer_norm_param_grad_forward,
    .attrs_size = sizeof(param_grad_attrs),
    .no_gradcheck = "gradient op: checked through layer_norm's cases",
    .cost = layer_norm_param_grad_cost,
    .min_inputs = 1, .max_inputs = 1,
};

static df_node *layer_norm_param_grad(df_graph *g, df_node *grad, int which)
{
    return df_node_new(g, &df_op_layer_norm_param_grad, 1, &grad, &(param_grad_attrs){.which = which});
}
