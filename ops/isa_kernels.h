/* isa_kernels.h — the per-instruction-set copies of the loops made with
 * DF_ISA_KERNEL (ops/isa.h), declared for the tests that compare them
 * (tests/test_isa_kernels.c). The _avx512f and _avx2 copies exist on
 * x86-64 with GCC only (DF_ISA_HAVE_CLONES); call one only on a CPU that
 * has its instruction set. */
#ifndef DF_OPS_ISA_KERNELS_H
#define DF_OPS_ISA_KERNELS_H

#include <stdint.h>
#include "isa.h"

#define DF_ISA_DECLARE(name, params)                                             \
    void name##_avx512f params;                                                  \
    void name##_avx2 params;                                                     \
    void name##_default params;

/* ops/global_norm_scale.c: lanes[j] = sum of x[i]^2 over i < n, i = j mod
 * DF_SUMSQ_LANES, in order, in double. */
#define DF_SUMSQ_LANES 16
DF_ISA_DECLARE(df_sumsq_lanes, (const float *x, int64_t n, double *lanes))

/* ops/common.c (the strided case of every reduction over a middle axis:
 * sum_to, sum, mean): out[j] = scale * the sum over k < len of
 * x[k * stride + j], j < width <= DF_SUM_COLUMNS_MAX, each in double in the
 * order of k. */
#define DF_SUM_COLUMNS_MAX 64
DF_ISA_DECLARE(df_sum_columns,
               (const float *x, int64_t len, int64_t stride, int64_t width, float scale, float *out))

/* ops/fused_elementwise.c: df_ew_run (ops/elementwise.h), the loop of every
 * elementwise formula, per instruction set. */
DF_ISA_DECLARE(df_ew_run_isa,
               (int code, const float *A, int64_t sa, const float *B, int64_t sb, float *out, int64_t len))

/* ops/fused_elementwise.c: the gradient chain of gelu, s = {1, c, h, m, k}:
 * out = dy * ((1 + erf(x * c)) * h + x * (exp((x * x) * m) * k)). */
DF_ISA_DECLARE(df_gelu_grad_chain, (const float *dy, const float *x, const float *s, float *out, int64_t len))

/* ops/apply_adamw.c: one AdamW step over elements [0, len) (the formula
 * there); a scalar and an AVX-512 copy. */
typedef struct adamw_step {
    float b1, b2, eps, decay, step_size, bc2_sqrt;
} adamw_step;
void df_adamw_update_default(const adamw_step *k, float *w, float *m, float *v, const float *grad, int64_t len);
void df_adamw_update_avx512f(const adamw_step *k, float *w, float *m, float *v, const float *grad, int64_t len);

/* ops/layer_norm.c: the mean and rstd of nrows <= DF_LN_ROWS rows, each
 * summed in DF_LN_LANES lanes (the order there); a row normalised (times gain plus bias when G); dgain
 * and dbias of columns [j0, j1); a row of dx, k = {mean, rstd, a, b}. */
#define DF_LN_ROWS 4
#define DF_LN_LANES 4
DF_ISA_DECLARE(df_ln_row_stats, (const float *x, int64_t C, int64_t nrows, float eps, double *mean, double *rstd))
DF_ISA_DECLARE(df_ln_normalize_row,
               (const float *xr, int64_t C, float m, float s, const float *G, const float *B, float *yr))
DF_ISA_DECLARE(df_ln_param_grad_columns, (const float *X, const float *DY, const float *stats, int64_t rows,
                                          int64_t C, int64_t j0, int64_t j1, float *dgain, float *dbias))
DF_ISA_DECLARE(df_ln_grad_dx_row,
               (const float *xr, const float *dyr, const float *G, int64_t C, const double *k, float *dxr))

#endif
