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
#include "isa_kernels.h"

#define BLOCK 256
#define CHAIN_CHUNK 4096          /* elements per task of a chain run by its own loop */

/* out[i] = code(A[i*sa], B[i*sb]) for i < len; sa/sb are 0 for scalars.
 * Each stride case has its own `omp simd` loop (a stride known to be 0 or 1
 * lets the formulas vectorise); every case calls the same df_ew_<name>.
 * Compiled per instruction set (ops/isa.h): wider vectors and FMA run the
 * formulas' long polynomials in fewer instructions. The ops' own
 * kernels (ops/elementwise.c) run their contiguous loops through this same
 * function, so fused and unfused results are the same bits also where two
 * instruction sequences could legitimately differ (a select against a
 * denormal under FTZ/DAZ: a blend keeps it, a scalar maxss flushes it). */
static inline __attribute__((always_inline)) void df_ew_run_isa_body(int code, const float *A, int64_t sa,
                                                                     const float *B, int64_t sb, float *out,
                                                                     int64_t len)
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
DF_ISA_KERNEL(df_ew_run_isa, (int code, const float *A, int64_t sa, const float *B, int64_t sb, float *out, int64_t len),
              (code, A, sa, B, sb, out, len))

void df_ew_run(int code, const float *A, int64_t sa, const float *B, int64_t sb, float *out, int64_t len)
{
    df_ew_run_isa(code, A, sa, B, sb, out, len);
}

/* ------------------------------------------- chains run as one loop
 * A chain the interpreter runs often is matched against a template and run
 * by a loop written for it: its instructions composed in one expression of
 * the same df_ew_<name> calls in the same order (the same bits), with no
 * trip of each intermediate through a register block and with the chain's
 * independent parts (erf and exp below) overlapping in the pipeline. */

/* dy * ((1 + erf(x * c)) * h + x * (exp((x * x) * m) * k)): the gradient of
 * gelu (ops/elementwise.c) as the fusion pass makes it; s = {1, c, h, m, k}
 * (1, 1/sqrt 2, 1/2, -1/2, 1/sqrt(2 pi) there). */
static inline __attribute__((always_inline)) void df_gelu_grad_chain_body(const float *dy, const float *x,
                                                                          const float *s, float *out, int64_t len)
{
    const float one = s[0], c = s[1], h = s[2], m = s[3], k = s[4];
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        float xi = x[i];
        float cdf = df_ew_mul(df_ew_add(one, df_ew_erf(df_ew_mul(xi, c))), h);
        float pdf = df_ew_mul(df_ew_exp(df_ew_mul(df_ew_mul(xi, xi), m)), k);
        out[i] = df_ew_mul(dy[i], df_ew_add(cdf, df_ew_mul(xi, pdf)));
    }
}
DF_ISA_KERNEL(df_gelu_grad_chain, (const float *dy, const float *x, const float *s, float *out, int64_t len),
              (dy, x, s, out, len))

/* The template of that chain, in the interpreter's encoding: an operand
 * >= 0 is a slot (0 dy, 1 the scalar 1, 2 x, 3..6 the scalars c, h, m, k),
 * < 0 the register of an earlier instruction. */
static const df_fused_program gelu_grad_template = {
    .n = 11,
    .ins = {{DF_EW_MUL, 2, 3},   {DF_EW_ERF, -1, 0},  {DF_EW_ADD, 1, -2}, {DF_EW_MUL, -3, 4},
            {DF_EW_MUL, 2, 2},   {DF_EW_MUL, -5, 5},  {DF_EW_EXP, -6, 0}, {DF_EW_MUL, -7, 6},
            {DF_EW_MUL, 2, -8},  {DF_EW_ADD, -4, -9}, {DF_EW_MUL, 0, -10}},
};
enum { GELU_GRAD_SLOTS = 7 };
static const bool gelu_grad_slot_is_scalar[GELU_GRAD_SLOTS] = {false, true, false, true, true, true, true};

/* Whether n's program is the template's, its slots bound to n's inputs
 * consistently (slot[s] the input index), tensors to tensors of n's size
 * and scalars to scalars. */
static bool match_template(const df_node *n, const df_fused_program *t, const bool *slot_is_scalar, int slots,
                           int *slot)
{
    const df_fused_program *p = DF_ATTRS(n, df_fused_program);
    if (p->n != t->n) return false;
    for (int s = 0; s < slots; s++) slot[s] = -1;
    for (int k = 0; k < p->n; k++) {
        if (p->ins[k].code != t->ins[k].code) return false;
        int pa[2] = {p->ins[k].a, p->ins[k].b}, ta[2] = {t->ins[k].a, t->ins[k].b};
        for (int j = 0; j < df_ew_arity(t->ins[k].code); j++) {
            if (ta[j] < 0 || pa[j] < 0) {
                if (ta[j] != pa[j]) return false;
                continue;
            }
            if (pa[j] >= n->n_in) return false;
            const df_node *x = n->in[pa[j]];
            if (x->dtype != DF_F32 || (slot_is_scalar[ta[j]] ? x->numel != 1 : x->numel != n->numel)) return false;
            if (slot[ta[j]] >= 0 && slot[ta[j]] != pa[j]) return false;
            slot[ta[j]] = pa[j];
        }
    }
    return true;
}

/* Runs n's chain by its own loop when it has one; false otherwise. */
static bool run_known_chain(df_node *n)
{
    int slot[GELU_GRAD_SLOTS];
    if (!match_template(n, &gelu_grad_template, gelu_grad_slot_is_scalar, GELU_GRAD_SLOTS, slot)) return false;
    const float *dy = DF_F32P(n->in[slot[0]]), *x = DF_F32P(n->in[slot[2]]);
    const float s[5] = {DF_F32P(n->in[slot[1]])[0], DF_F32P(n->in[slot[3]])[0], DF_F32P(n->in[slot[4]])[0],
                        DF_F32P(n->in[slot[5]])[0], DF_F32P(n->in[slot[6]])[0]};
    float *Y = DF_F32P(n);
    int64_t N = n->numel, chunks = (N + CHAIN_CHUNK - 1) / CHAIN_CHUNK;
    DF_PAR_FOR(N > DF_PAR_MIN,
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i0 = c * CHAIN_CHUNK, len = N - i0 < CHAIN_CHUNK ? N - i0 : CHAIN_CHUNK;
        df_gelu_grad_chain(dy + i0, x + i0, s, Y + i0, len);
    });
    return true;
}

// inputs (S) or scalars -> y (S)
static df_status fused_elementwise_forward(df_node *n)
{
    if (run_known_chain(n)) return DF_OK;
    const df_fused_program *p = DF_ATTRS(n, df_fused_program);
    int64_t N = n->numel, blocks = (N + BLOCK - 1) / BLOCK;
    float *Y = DF_F32P(n);
    DF_PAR_FOR(N > DF_PAR_MIN,
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
    });
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
