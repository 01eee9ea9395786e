/* elementwise.c — the elementwise ops of elementwise.def. Their kernels and
 * constructors are generated from the table; below them, in table order,
 * each op's derivative (built from nodes, so that gradients of gradients
 * work), its gradcheck cases and its df_op_def.
 *
 * Adding an elementwise op: its line in elementwise.def, its block here, its
 * constructor's declaration in src/dagflow.h and its entry in fusable_cases
 * (tests/test_passes.c). The registry takes it from the table. */
/* The formulas' selects (df_expf, df_erff) if-convert into vector code only
 * when floating-point comparisons may be assumed not to trap; values and
 * rounding are unchanged by this. */
#pragma GCC optimize ("no-trapping-math")
/* No multiply-add contraction in the broadcast loops below either: they round
 * every operation as the formula is written, as df_ew_run does. */
#pragma GCC optimize ("fp-contract=off")

/* The contiguous cases run df_ew_run (the fused interpreter's vectorised
 * loop, cloned per instruction set) over chunks of DF_EW_CHUNK elements, a
 * multiple of the interpreter's block, in a parallel loop of chunks. */
#define DF_EW_CHUNK 4096
#include "common.h"
#include "elementwise.h"

/* Binary kernel with broadcasting, op code CODE, EXPR its formula in float
 * a, b. Same shapes, a scalar b and rows whose last axis both operands walk
 * (a bias added to each row) run df_ew_run, the cloned loop; other broadcast
 * rows run their own loop (each element depends only on its own inputs,
 * and an output may alias an input element for element). */
#define DF_BINARY_KERNEL(fname, CODE, EXPR)                                      \
    static df_status fname(df_node *n)                                          \
    {                                                                            \
        const float *A = DF_F32P(n->in[0]), *B = DF_F32P(n->in[1]);             \
        float *Y = DF_F32P(n);                                                   \
        int64_t N = n->numel, chunks = (N + DF_EW_CHUNK - 1) / DF_EW_CHUNK;      \
        bool same = n->in[0]->numel == N && n->in[1]->numel == N;                \
        if (same || n->in[1]->numel == 1) {                                      \
            DF_PAR_FOR(N > DF_PAR_MIN,                                           \
            for (int64_t c = 0; c < chunks; c++) {                               \
                int64_t i0 = c * DF_EW_CHUNK, len = N - i0 < DF_EW_CHUNK ? N - i0 : DF_EW_CHUNK; \
                df_ew_run(CODE, A + i0, 1, same ? B + i0 : B, same, Y + i0, len);  \
            });                                                                  \
            return DF_OK;                                                        \
        }                                                                        \
        int64_t sa[DF_MAX_DIMS], sb[DF_MAX_DIMS], dims[DF_MAX_DIMS];             \
        int nd = n->ndim;                                                        \
        df_broadcast_strides(n->in[0], nd, n->shape, sa);                        \
        df_broadcast_strides(n->in[1], nd, n->shape, sb);                        \
        for (int d = 0; d < nd; d++) dims[d] = n->shape[d];                      \
        int64_t inner = nd ? dims[nd - 1] : 1, rows = inner ? N / inner : 0;     \
        int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;              \
        DF_PAR_FOR(N > DF_PAR_MIN,                                               \
        for (int64_t r = 0; r < rows; r++) {                                     \
            int64_t rem = r, oa = 0, ob = 0;                                     \
            for (int d = nd - 2; d >= 0; d--) {                                  \
                int64_t idx = rem % dims[d];                                     \
                rem /= dims[d];                                                  \
                oa += idx * sa[d];                                               \
                ob += idx * sb[d];                                               \
            }                                                                    \
            if (ia == 1 && ib == 1) {                                            \
                df_ew_run(CODE, A + oa, 1, B + ob, 1, Y + r * inner, inner);     \
            } else {                                                             \
                for (int64_t j = 0; j < inner; j++) {                            \
                    float a = A[oa + j * ia], b = B[ob + j * ib];                \
                    Y[r * inner + j] = (EXPR);                                   \
                }                                                                \
            }                                                                    \
        });                                                                      \
        return DF_OK;                                                            \
    }

/* Unary kernel of op code CODE: df_ew_run over chunks. */
#define DF_UNARY_KERNEL(fname, CODE)                                             \
    static df_status fname(df_node *n)                                          \
    {                                                                            \
        const float *X = DF_F32P(n->in[0]);                                      \
        float *Y = DF_F32P(n);                                                   \
        int64_t N = n->numel, chunks = (N + DF_EW_CHUNK - 1) / DF_EW_CHUNK;      \
        DF_PAR_FOR(N > DF_PAR_MIN,                                               \
        for (int64_t c = 0; c < chunks; c++) {                                   \
            int64_t i0 = c * DF_EW_CHUNK;                                        \
            df_ew_run(CODE, X + i0, 1, NULL, 0, Y + i0, N - i0 < DF_EW_CHUNK ? N - i0 : DF_EW_CHUNK); \
        });                                                                      \
        return DF_OK;                                                            \
    }

/* ------------------------------------------------ generated from the table */

/* <name>_forward: the op's kernel around its formula df_ew_<name>. */
#define DF_EW_KERNEL_1(name, CODE) DF_UNARY_KERNEL(name##_forward, DF_EW_##CODE)
#define DF_EW_KERNEL_2(name, CODE) DF_BINARY_KERNEL(name##_forward, DF_EW_##CODE, df_ew_##name(a, b))
#define DF_EW(name, CODE, arity, ...) DF_EW_KERNEL_##arity(name, CODE)
#include "elementwise.def"

/* <name>_code: the op's fusion code, for DF_EW_OP below. */
enum {
#define DF_EW(name, CODE, arity, ...) name##_code = DF_EW_##CODE,
#include "elementwise.def"
};

/* The public constructors df_<name>. */
#define DF_EW_CONSTRUCTOR_1(name)                                                \
    df_node *df_##name(df_graph *g, df_node *x)                                  \
    {                                                                            \
        return df_node_new(g, &df_op_##name, 1, &x, NULL);                       \
    }
#define DF_EW_CONSTRUCTOR_2(name)                                                \
    df_node *df_##name(df_graph *g, df_node *a, df_node *b)                      \
    {                                                                            \
        df_node *in[2] = {a, b};                                                 \
        return df_node_new(g, &df_op_##name, 2, in, NULL);                       \
    }
#define DF_EW(name, CODE, arity, ...) DF_EW_CONSTRUCTOR_##arity(name)
#include "elementwise.def"

/* <name>_build: the constructor in the form gradcheck cases take (inline:
 * an op without cases leaves its build unused). */
#define DF_EW_BUILD_1(name) \
    static inline df_node *name##_build(df_graph *g, df_node **in) { return df_##name(g, in[0]); }
#define DF_EW_BUILD_2(name) \
    static inline df_node *name##_build(df_graph *g, df_node **in) { return df_##name(g, in[0], in[1]); }
#define DF_EW(name, CODE, arity, ...) DF_EW_BUILD_##arity(name)
#include "elementwise.def"

/* Shape inference by arity: x's shape, or the broadcast of a and b. */
static df_status elementwise_infer(df_node *n)
{
    return n->n_in == 2 ? df_infer_broadcast(n) : df_infer_unary(n);
}

/* Cost: one operation per output element (a transcendental counts as one),
 * every input read and the output written once. */
static void elementwise_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

/* <name>_bench: how dagflow-bench builds the op (inputs in [0.5, 2], where
 * log, sqrt and div are finite); binary ops also at a bias broadcast. */
#define DF_EW_BENCH_1(name)                                                      \
    static df_node *name##_bench_build(df_graph *g, df_node **in, const double *attrs) \
    { (void)attrs; return name##_build(g, in); }                                 \
    static const df_bench_def name##_bench = {                                   \
        .n_inputs = 1, .lo = 0.5f, .hi = 2.0f, .build = name##_bench_build,       \
        .shapes = {"256x1024", "6400x4096", "16384x4096"}};
#define DF_EW_BENCH_2(name)                                                      \
    static df_node *name##_bench_build(df_graph *g, df_node **in, const double *attrs) \
    { (void)attrs; return name##_build(g, in); }                                 \
    static const df_bench_def name##_bench = {                                   \
        .n_inputs = 2, .lo = 0.5f, .hi = 2.0f, .build = name##_bench_build,       \
        .shapes = {"256x1024,256x1024", "6400x4096,6400x4096", "6400x4096,4096"}};
#define DF_EW(name, CODE, arity, ...) DF_EW_BENCH_##arity(name)
#include "elementwise.def"

/* An op's df_op_def: what the table gives, then its derivative fields. */
#define DF_EW_OP(op, ...)                                                        \
    const df_op_def df_op_##op = {                                               \
        .name = #op, .flags = DF_OP_ELEMENTWISE, .infer = elementwise_infer,     \
        .forward = op##_forward, .elementwise = op##_code,                       \
        .cost = elementwise_cost, .bench = &op##_bench, __VA_ARGS__}

/* ------------------------------------------------------- the derivatives */

/* Broadcast operand shapes used by the binary ops' cases. */
#define DF_EW_BINARY_CASES(name)                                                                   \
    {"same shape", 2, {DF_GC_F32(2, 3), DF_GC_F32(2, 3)}, name##_build, 0, 0},                    \
    {"broadcast row", 2, {DF_GC_F32(2, 3), DF_GC_F32(3)}, name##_build, 0, 0},                    \
    {"broadcast column and scalar", 2, {DF_GC_F32(2, 1, 3), DF_GC_F32(4, 1)}, name##_build, 0, 0}, \
    {"scalar operand", 2, {DF_GC_SCALAR, DF_GC_F32(2, 2)}, name##_build, 0, 0}

/* a + b: da = dy, db = dy, each summed down to its operand's shape. */
static df_status add_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = need[0] ? df_unbroadcast(g, dy, n->in[0]) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, dy, n->in[1]) : NULL;
    return g->status;
}
static const df_gradcheck_case add_cases[] = {DF_EW_BINARY_CASES(add), {0}};
DF_EW_OP(add, .backward = add_backward, .gradcheck = add_cases);

/* a - b: da = dy, db = -dy. */
static df_status sub_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = need[0] ? df_unbroadcast(g, dy, n->in[0]) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, df_neg(g, dy), n->in[1]) : NULL;
    return g->status;
}
static const df_gradcheck_case sub_cases[] = {DF_EW_BINARY_CASES(sub), {0}};
DF_EW_OP(sub, .backward = sub_backward, .gradcheck = sub_cases);

/* a * b: da = dy * b, db = dy * a. */
static df_status mul_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = need[0] ? df_unbroadcast(g, df_mul(g, dy, n->in[1]), n->in[0]) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, df_mul(g, dy, n->in[0]), n->in[1]) : NULL;
    return g->status;
}
static const df_gradcheck_case mul_cases[] = {DF_EW_BINARY_CASES(mul), {0}};
DF_EW_OP(mul, .backward = mul_backward, .gradcheck = mul_cases);

/* y = a / b: da = dy / b, db = -dy * y / b. */
static df_status div_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = need[0] ? df_unbroadcast(g, df_div(g, dy, n->in[1]), n->in[0]) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, df_neg(g, df_div(g, df_mul(g, dy, n), n->in[1])), n->in[1]) : NULL;
    return g->status;
}
static const df_gradcheck_case div_cases[] = {   /* b kept away from 0 */
    {"same shape", 2, {DF_GC_F32(2, 3), DF_GC_F32_RANGE(0.5f, 2.0f, 2, 3)}, div_build, 0, 0},
    {"broadcast row", 2, {DF_GC_F32(2, 3), DF_GC_F32_RANGE(0.5f, 2.0f, 3)}, div_build, 0, 0},
    {"broadcast both", 2, {DF_GC_F32(2, 1, 3), DF_GC_F32_RANGE(-2.0f, -0.5f, 4, 1)}, div_build, 0, 0},
    {0},
};
DF_EW_OP(div, .backward = div_backward, .gradcheck = div_cases);

/* Cases of a unary op over inputs in [lo, hi]. */
#define DF_EW_UNARY_CASES(name, lo, hi)                                           \
    {"vector", 1, {DF_GC_F32_RANGE(lo, hi, 7)}, name##_build, 0, 0},              \
    {"3-D", 1, {DF_GC_F32_RANGE(lo, hi, 2, 3, 2)}, name##_build, 0, 0}

/* -x: dx = -dy. */
static df_status neg_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_neg(g, dy);
    return g->status;
}
static const df_gradcheck_case neg_cases[] = {DF_EW_UNARY_CASES(neg, -1.0f, 1.0f), {0}};
DF_EW_OP(neg, .backward = neg_backward, .gradcheck = neg_cases);

/* y = exp(x): dx = dy * y. */
static df_status exp_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_mul(g, dy, n);
    return g->status;
}
static const df_gradcheck_case exp_cases[] = {DF_EW_UNARY_CASES(exp, -1.0f, 1.0f), {0}};
DF_EW_OP(exp, .backward = exp_backward, .gradcheck = exp_cases);

/* log(x): dx = dy / x. */
static df_status log_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_div(g, dy, n->in[0]);
    return g->status;
}
static const df_gradcheck_case log_cases[] = {DF_EW_UNARY_CASES(log, 0.5f, 2.0f), {0}};
DF_EW_OP(log, .backward = log_backward, .gradcheck = log_cases);

/* y = tanh(x): dx = dy * (1 - y^2). */
static df_status tanh_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_mul(g, dy, df_sub(g, df_scalar(g, 1.0f), df_mul(g, n, n)));
    return g->status;
}
static const df_gradcheck_case tanh_cases[] = {DF_EW_UNARY_CASES(tanh, -1.5f, 1.5f), {0}};
DF_EW_OP(tanh, .backward = tanh_backward, .gradcheck = tanh_cases);

/* y = sigmoid(x): dx = dy * y * (1 - y). */
static df_status sigmoid_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_mul(g, dy, df_mul(g, n, df_sub(g, df_scalar(g, 1.0f), n)));
    return g->status;
}
static const df_gradcheck_case sigmoid_cases[] = {DF_EW_UNARY_CASES(sigmoid, -3.0f, 3.0f), {0}};
DF_EW_OP(sigmoid, .backward = sigmoid_backward, .gradcheck = sigmoid_cases);

/* relu(x): dx = dy * step(x). */
static df_status relu_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_mul(g, dy, df_step(g, n->in[0]));
    return g->status;
}
static const df_gradcheck_case relu_cases[] = {DF_EW_UNARY_CASES(relu, -1.0f, 1.0f), {0}};
DF_EW_OP(relu, .backward = relu_backward, .gradcheck = relu_cases);

/* step(x) = (x > 0) as 0/1, relu's derivative: its own is zero almost everywhere. */
DF_EW_OP(step, .no_gradcheck = "no gradient: zero almost everywhere (relu's backward uses it; "
                               "values in tests/test_ops.c)");

/* y = erf(x): dx = dy * 2/sqrt(pi) * exp(-x^2). */
static df_status erf_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *x = n->in[0];
    dx[0] = df_mul(g, dy, df_scale(g, df_exp(g, df_neg(g, df_mul(g, x, x))), 1.12837916709551257f));
    return g->status;
}
static const df_gradcheck_case erf_cases[] = {DF_EW_UNARY_CASES(erf, -2.0f, 2.0f), {0}};
DF_EW_OP(erf, .backward = erf_backward, .gradcheck = erf_cases);

/* y = sqrt(x): dx = dy * 0.5 / y. */
static df_status sqrt_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_div(g, df_scale(g, dy, 0.5f), n);
    return g->status;
}
static const df_gradcheck_case sqrt_cases[] = {DF_EW_UNARY_CASES(sqrt, 0.5f, 3.0f), {0}};
DF_EW_OP(sqrt, .backward = sqrt_backward, .gradcheck = sqrt_cases);

/* y = 1/sqrt(x): dx = dy * -0.5 * y^3. */
static df_status rsqrt_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = df_mul(g, df_scale(g, dy, -0.5f), df_mul(g, n, df_mul(g, n, n)));
    return g->status;
}
static const df_gradcheck_case rsqrt_cases[] = {DF_EW_UNARY_CASES(rsqrt, 0.5f, 3.0f), {0}};
DF_EW_OP(rsqrt, .backward = rsqrt_backward, .gradcheck = rsqrt_cases);

/* |x|: dx = dy * sign(x), sign = step(x) - step(-x) (0 at 0, as torch). */
static df_status abs_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *x = n->in[0];
    dx[0] = df_mul(g, dy, df_sub(g, df_step(g, x), df_step(g, df_neg(g, x))));
    return g->status;
}
static const df_gradcheck_case abs_cases[] = {DF_EW_UNARY_CASES(abs, -1.0f, 1.0f), {0}};
DF_EW_OP(abs, .backward = abs_backward, .gradcheck = abs_cases);

/* softplus(x): dx = dy * sigmoid(x) (1 past the threshold, where y = x). */
static df_status softplus_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *x = n->in[0], *past = df_step(g, df_sub(g, x, df_scalar(g, 20.0f)));
    df_node *slope = df_add(g, df_mul(g, past, df_sub(g, df_scalar(g, 1.0f), df_sigmoid(g, x))), df_sigmoid(g, x));
    dx[0] = df_mul(g, dy, slope);
    return g->status;
}
static const df_gradcheck_case softplus_cases[] = {
    DF_EW_UNARY_CASES(softplus, -3.0f, 3.0f),
    {"past the threshold", 1, {DF_GC_F32_RANGE(20.5f, 24.0f, 5)}, softplus_build, 0, 0},
    {0},
};
DF_EW_OP(softplus, .backward = softplus_backward, .gradcheck = softplus_cases);

/* gelu(x) = x * Phi(x): dx = dy * (Phi(x) + x * phi(x)), Phi(x) = (1 + erf(x/sqrt 2))/2,
 * phi(x) = exp(-x^2/2) / sqrt(2 pi). */
static df_status gelu_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *x = n->in[0];
    df_node *cdf = df_scale(g, df_add(g, df_scalar(g, 1.0f), df_erf(g, df_scale(g, x, 0.70710678118654752f))), 0.5f);
    df_node *pdf = df_scale(g, df_exp(g, df_scale(g, df_mul(g, x, x), -0.5f)), 0.39894228040143268f);
    dx[0] = df_mul(g, dy, df_add(g, cdf, df_mul(g, x, pdf)));
    return g->status;
}
static const df_gradcheck_case gelu_cases[] = {DF_EW_UNARY_CASES(gelu, -3.0f, 3.0f), {0}};
DF_EW_OP(gelu, .backward = gelu_backward, .gradcheck = gelu_cases);

/* gelu_tanh(x) = x (1 + t)/2, t = tanh(u), u = c (x + k x^3):
 * dx = dy * ((1 + t)/2 + x (1 - t^2) c (1 + 3 k x^2) / 2). */
static df_status gelu_tanh_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    const float c = 0.79788456080286536f, k = 0.044715f;
    df_node *x = n->in[0], *x2 = df_mul(g, x, x);
    df_node *t = df_tanh(g, df_scale(g, df_add(g, x, df_scale(g, df_mul(g, x2, x), k)), c));
    df_node *one = df_scalar(g, 1.0f);
    df_node *du = df_scale(g, df_add(g, one, df_scale(g, x2, 3.0f * k)), c);       /* du/dx */
    df_node *inner = df_mul(g, df_mul(g, x, df_sub(g, one, df_mul(g, t, t))), du);
    dx[0] = df_mul(g, dy, df_scale(g, df_add(g, df_add(g, one, t), inner), 0.5f));
    return g->status;
}
static const df_gradcheck_case gelu_tanh_cases[] = {DF_EW_UNARY_CASES(gelu_tanh, -3.0f, 3.0f), {0}};
DF_EW_OP(gelu_tanh, .backward = gelu_tanh_backward, .gradcheck = gelu_tanh_cases);

/* maximum / minimum: the gradient goes to the chosen operand, split in half
 * at a tie (as torch). wins = (a > b) + (a == b)/2 for maximum. */
static df_status pick_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx, bool max)
{
    df_node *a = n->in[0], *b = n->in[1];
    df_node *ties = df_scale(g, df_equal(g, a, b), 0.5f);
    df_node *a_wins = df_add(g, max ? df_greater(g, a, b) : df_less(g, a, b), ties);
    df_node *b_wins = df_add(g, max ? df_less(g, a, b) : df_greater(g, a, b), ties);
    dx[0] = need[0] ? df_unbroadcast(g, df_mul(g, dy, a_wins), a) : NULL;
    dx[1] = need[1] ? df_unbroadcast(g, df_mul(g, dy, b_wins), b) : NULL;
    return g->status;
}
static df_status maximum_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    return pick_backward(g, n, dy, need, dx, true);
}
static df_status minimum_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    return pick_backward(g, n, dy, need, dx, false);
}
/* b is brought within 1e-3 of 0 while |a| >= 0.05: no tie within the
 * checker's step, and each operand wins somewhere. */
static df_node *maximum_near_zero(df_graph *g, df_node **in) { return df_maximum(g, in[0], df_scale(g, in[1], 1e-3f)); }
static df_node *minimum_near_zero(df_graph *g, df_node **in) { return df_minimum(g, in[0], df_scale(g, in[1], 1e-3f)); }
#define DF_EW_PICK_CASES(build)                                                                \
    {"same shape", 2, {DF_GC_F32(2, 3), DF_GC_F32(2, 3)}, build, 0, 0},                        \
    {"broadcast row", 2, {DF_GC_F32(4, 3), DF_GC_F32(3)}, build, 0, 0}
static const df_gradcheck_case maximum_cases[] = {DF_EW_PICK_CASES(maximum_near_zero), {0}};
static const df_gradcheck_case minimum_cases[] = {DF_EW_PICK_CASES(minimum_near_zero), {0}};
DF_EW_OP(maximum, .backward = maximum_backward, .gradcheck = maximum_cases);
DF_EW_OP(minimum, .backward = minimum_backward, .gradcheck = minimum_cases);

/* Comparisons are piecewise constant: no gradient (masks for other ops' derivatives). */
DF_EW_OP(equal, .no_gradcheck = "no gradient: piecewise constant (values in tests/test_ops.c)");
DF_EW_OP(less, .no_gradcheck = "no gradient: piecewise constant (values in tests/test_ops.c)");
DF_EW_OP(greater, .no_gradcheck = "no gradient: piecewise constant (values in tests/test_ops.c)");

/* ------------------------------------------------ compositions of the above */

df_node *df_square(df_graph *g, df_node *x) { return df_mul(g, x, x); }
df_node *df_scale(df_graph *g, df_node *x, float s) { return df_mul(g, x, df_scalar(g, s)); }
