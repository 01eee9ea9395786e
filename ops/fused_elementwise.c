/* fused_elementwise.c — a chain of elementwise ops merged by the fusion pass
 * (graph/passes.c) into one parallel loop. The program runs block by block:
 * intermediates live in small per-thread registers (in L1), so only the
 * chain's inputs and its output cross memory. Each instruction calls its
 * op's formula df_ew_<name> (ops/elementwise.def), the function the op's own
 * kernel calls, so fused results are bit-identical to unfused ones. */
#include <string.h>
/* The formulas' selects (df_expf, df_erff) if-convert into vector code only
 * when floating-point comparisons may be assumed not to trap; values and
 * rounding are unchanged by this. */
#pragma GCC optimize ("no-trapping-math")
/* No multiply-add contraction: each clone below (and the scalar tail) rounds
 * every operation as the formula is written, so results do not depend on the
 * instruction set the CPU has. */
#pragma GCC optimize ("fp-contract=off")
#include "common.h"
#include "elementwise.h"

#define BLOCK 256

/* out[i] = code(A[i*sa], B[i*sb]) for i < len; sa/sb are 0 for scalars.
 * Each stride case has its own `omp simd` loop (a stride known to be 0 or 1
 * lets the formulas vectorise); every case calls the same df_ew_<name>.
 * Cloned per instruction set (picked when the library loads): wider vectors
 * run the formulas' long polynomials in fewer instructions. The ops' own
 * kernels (ops/elementwise.c) run their contiguous loops through this same
 * function, so fused and unfused results are the same bits also where two
 * instruction sequences could legitimately differ (a select against a
 * denormal under FTZ/DAZ: a blend keeps it, a scalar maxss flushes it). */
DF_TARGET_CLONES
void df_ew_run(int code, const float *A, int64_t sa, const float *B, int64_t sb, float *out, int64_t len)
{
#define DF_EW_SIMD(body) _Pragma("omp simd") for (int64_t i = 0; i < len; i++) body
#define DF_EW_LOOP_1(name)                                                       \
    if (sa) DF_EW_SIMD(out[i] = df_ew_##name(A[i]);)                             \
    else { float a0 = A[0]; DF_EW_SIMD(out[i] = df_ew_##name(a0);) }
#define DF_EW_LOOP_2(name)                                                       \
    if (sa && sb) DF_EW_SIMD(out[i] = df_ew_##name(A[i], B[i]);)                 \
    else if (sa) { float b0 = B[0]; DF_EW_SIMD(out[i] = df_ew_##name(A[i], b0);) } \
    else if (sb) { float a0 = A[0]; DF_EW_SIMD(out[i] = df_ew_##name(a0, B[i]);) } \
    else { float v = df_ew_##name(A[0], B[0]); DF_EW_SIMD(out[i] = v;) }
    switch (code) {
#define DF_EW(name, CODE, arity, ...) case DF_EW_##CODE: { DF_EW_LOOP_##arity(name) } break;
#include "elementwise.def"
    }
#undef DF_EW_SIMD
#undef DF_EW_LOOP_1
#undef DF_EW_LOOP_2
}

// inputs (S) or scalars -> y (S)
static df_status fused_elementwise_forward(df_node *n)
{
    const df_fused_program *p = DF_ATTRS(n, df_fused_program);
    int64_t N = n->numel, blocks = (N + BLOCK - 1) / BLOCK;
    float *Y = DF_F32P(n);
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t blk = 0; blk < blocks; blk++) {
        float regs[DF_FUSE_MAX][BLOCK];
        int64_t start = blk * BLOCK, len = N - start < BLOCK ? N - start : BLOCK;
        for (int k = 0; k < p->n; k++) {
            const float *src[2];
            int64_t stride[2];
            int operands[2] = {p->ins[k].a, p->ins[k].b};
            for (int j = 0; j < 2; j++) {
                int o = operands[j];
                if (o < 0) { src[j] = regs[-o - 1]; stride[j] = 1; continue; }
                const df_node *x = n->in[o];
                stride[j] = x->numel == 1 ? 0 : 1;
                src[j] = DF_F32P(x) + start * stride[j];
            }
            float *out = k == p->n - 1 ? Y + start : regs[k];
            df_ew_run(p->ins[k].code, src[0], stride[0], src[1], stride[1], out, len);
        }
    }
    return DF_OK;
}

/* The chain's shape is that of its inputs that are not scalars (the fusion
 * pass takes only those and scalars). Run when a dynamic graph is planned
 * for new input sizes; the pass itself sets the shape when it fuses. */
static df_status fused_elementwise_infer(df_node *n)
{
    n->dtype = DF_F32;
    for (int i = 0; i < n->n_in; i++) {
        const df_node *x = n->in[i];
        if (x->numel == 1 && !x->dyn) continue;
        n->ndim = x->ndim;
        memcpy(n->shape, x->shape, sizeof n->shape);
        return DF_OK;
    }
    return DF_OK;                           /* scalars only: the shape set by the pass stands */
}

/* One operation per instruction and element; inputs read, output written once. */
static void fused_elementwise_cost(const df_node *n, df_op_cost *out)
{
    const df_fused_program *p = DF_ATTRS(n, df_fused_program);
    *out = (df_op_cost){.flops = (double)p->n * n->numel, .bytes = df_cost_io_bytes(n)};
}

/* Created by the fusion pass, which sets shape, inputs and program. */
const df_op_def df_op_fused_elementwise = {
    .name = "fused_elementwise", .flags = DF_OP_FUSED | DF_OP_ELEMENTWISE,
    .infer = fused_elementwise_infer, .forward = fused_elementwise_forward,
    .attrs_size = sizeof(df_fused_program),
    .no_gradcheck = "built by the fusion pass after autodiff; bit-identical to the ops it merges "
                    "(tests/test_passes.c)",
    .cost = fused_elementwise_cost,
    .min_inputs = 1, .max_inputs = 2*DF_FUSE_MAX, .attrs_kind = DF_ATTRS_FUSED,
};
