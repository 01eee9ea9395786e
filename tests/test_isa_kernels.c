/* test_isa_kernels.c — the loops compiled once per instruction set
 * (ops/isa_kernels.h): every copy this CPU runs gives the baseline copy's
 * bits, the baseline computes what its comment says (reference values), and
 * the ops built on them (sum_to, global_norm_scale, the fused gradient of
 * gelu) agree with a reference on 1, 2 and 3 threads. */
#include "helpers.h"
#include "../ops/elementwise.h"
#include "../ops/isa_kernels.h"
#include "../ops/registry.h"

/* Lengths around the vector widths (8 and 16 floats) and a chunk. */
static const int64_t lengths[] = {0, 1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 1000, 4099};
enum { N_LENGTHS = sizeof lengths / sizeof lengths[0], MAX_LEN = 4099 };

/* Inputs of a bitwise comparison: uniform in [lo, hi), with every 37th value
 * a special one (zeros, a denormal, tiny and huge values) when specials. */
static float *test_input(uint64_t seed, int64_t n, float lo, float hi, bool specials)
{
    static const float special[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f, 3.5f, -3.5f, 1e20f, -1e20f, 1.0f, -1.0f};
    df_rng rng;
    df_rng_seed(&rng, seed);
    float *p = rand_buf(&rng, n, lo, hi);
    if (specials)
        for (int64_t i = 0; i < n; i += 37) p[i] = special[(i / 37) % (sizeof special / sizeof special[0])];
    return p;
}

/* The copies besides the baseline that this CPU can run, by name. */
typedef struct { const char *name; bool runs; } isa_copy;
static void available_copies(isa_copy out[2])
{
    out[0] = (isa_copy){"avx512f", false};
    out[1] = (isa_copy){"avx2", false};
#if DF_ISA_HAVE_CLONES
    out[0].runs = __builtin_cpu_supports("avx512f");
    out[1].runs = df_cpu_has_avx2_fma();
#endif
    if (!out[0].runs && !out[1].runs) cr_log_info("this CPU (or compiler) has no vector copies: the baseline only");
}

#if DF_ISA_HAVE_CLONES
#define PICK(name, copy) ((copy) == 0 ? name##_avx512f : name##_avx2)
#else
#define PICK(name, copy) name##_default
#endif

/* ----------------------------------------------- every copy, bit for bit */

Test(isa_kernels, sumsq_lanes_copies_match_the_baseline_bitwise)
{
    isa_copy copies[2];
    available_copies(copies);
    for (int c = 0; c < 2; c++) {
        if (!copies[c].runs) continue;
        for (int l = 0; l < N_LENGTHS; l++) {
            float *x = test_input(11 + l, lengths[l], -3.0f, 3.0f, true);
            double want[DF_SUMSQ_LANES], got[DF_SUMSQ_LANES];
            df_sumsq_lanes_default(x, lengths[l], want);
            PICK(df_sumsq_lanes, c)(x, lengths[l], got);
            cr_expect(memcmp(got, want, sizeof want) == 0, "df_sumsq_lanes_%s, length %lld: lanes differ",
                      copies[c].name, (long long)lengths[l]);
            free(x);
        }
    }
}

Test(isa_kernels, sum_columns_copies_match_the_baseline_bitwise)
{
    isa_copy copies[2];
    available_copies(copies);
    const int64_t stride = 70, len = 59;
    float *x = test_input(5, stride * len, -2.0f, 2.0f, true);
    for (int c = 0; c < 2; c++) {
        if (!copies[c].runs) continue;
        for (int64_t width = 0; width <= DF_SUM_COLUMNS_MAX; width += 7)
            for (int k = 0; k < 2; k++) {            /* a sum, and a mean's scaled sum */
                const float scale = k ? 1.0f / 59 : 1.0f;
                float want[DF_SUM_COLUMNS_MAX], got[DF_SUM_COLUMNS_MAX];
                df_sum_columns_default(x + 3, len, stride, width, scale, want);
                PICK(df_sum_columns, c)(x + 3, len, stride, width, scale, got);
                char what[80];
                snprintf(what, sizeof what, "df_sum_columns_%s, width %lld, scale %g", copies[c].name,
                         (long long)width, scale);
                expect_bitwise(got, want, width, what);
            }
    }
    free(x);
}

static const float gelu_grad_scalars[5] = {1.0f, 0.70710678118654752f, 0.5f, -0.5f, 0.39894228040143268f};

Test(isa_kernels, gelu_grad_chain_copies_match_the_baseline_bitwise)
{
    isa_copy copies[2];
    available_copies(copies);
    for (int c = 0; c < 2; c++) {
        if (!copies[c].runs) continue;
        for (int l = 0; l < N_LENGTHS; l++) {
            int64_t n = lengths[l];
            float *x = test_input(21 + l, n, -6.0f, 6.0f, true), *dy = test_input(41 + l, n, -1.0f, 1.0f, false);
            float *want = malloc((size_t)(n + 1) * sizeof *want), *got = malloc((size_t)(n + 1) * sizeof *got);
            df_gelu_grad_chain_default(dy, x, gelu_grad_scalars, want, n);
            PICK(df_gelu_grad_chain, c)(dy, x, gelu_grad_scalars, got, n);
            char what[64];
            snprintf(what, sizeof what, "df_gelu_grad_chain_%s, length %lld", copies[c].name, (long long)n);
            expect_bitwise(got, want, n, what);
            free(x), free(dy), free(want), free(got);
        }
    }
}

/* Every formula of the table on every copy of its loop: the polynomials of
 * exp, erf, gelu and sigmoid are multiply-adds, one instruction in a vector
 * copy and libm's fmaf in the baseline, rounded the same. */
Test(isa_kernels, elementwise_formula_copies_match_the_baseline_bitwise)
{
    isa_copy copies[2];
    available_copies(copies);
    for (int c = 0; c < 2; c++) {
        if (!copies[c].runs) continue;
        for (int code = 1; code < DF_EW_END; code++)
            for (int l = 0; l < N_LENGTHS; l++) {
                int64_t n = lengths[l];
                float *a = test_input(61 + l, n, -12.0f, 12.0f, true), *b = test_input(81 + l, n, 0.1f, 4.0f, false);
                float *want = malloc((size_t)(n + 1) * sizeof *want), *got = malloc((size_t)(n + 1) * sizeof *got);
                df_ew_run_isa_default(code, a, 1, b, 1, want, n);
                PICK(df_ew_run_isa, c)(code, a, 1, b, 1, got, n);
                char what[80];
                snprintf(what, sizeof what, "df_ew_run_isa_%s, code %d, length %lld", copies[c].name, code,
                         (long long)n);
                expect_bitwise(got, want, n, what);
                free(a), free(b), free(want), free(got);
            }
    }
}

Test(isa_kernels, adamw_update_copies_match_the_baseline_bitwise)
{
#if DF_ISA_HAVE_CLONES
    if (!__builtin_cpu_supports("avx512f")) {
        cr_log_info("no AVX-512: the baseline AdamW update only");
        return;
    }
    const adamw_step k = {.b1 = 0.9f, .b2 = 0.99f, .eps = 1e-8f, .decay = 1.0f - 1e-3f * 0.1f,
                          .step_size = 1e-3f / (1.0f - 0.9f * 0.9f * 0.9f), .bc2_sqrt = sqrtf(1.0f - 0.99f * 0.99f * 0.99f)};
    for (int l = 0; l < N_LENGTHS; l++) {
        int64_t n = lengths[l];
        float *g = test_input(61 + l, n, -1.0f, 1.0f, true), *w = test_input(62 + l, n, -0.5f, 0.5f, false);
        float *m = test_input(63 + l, n, -0.1f, 0.1f, false), *v = test_input(64 + l, n, 0.0f, 0.01f, false);
        float *state[2][3];
        for (int s = 0; s < 2; s++) {
            state[s][0] = malloc((size_t)(n + 1) * sizeof(float)), state[s][1] = malloc((size_t)(n + 1) * sizeof(float));
            state[s][2] = malloc((size_t)(n + 1) * sizeof(float));
            memcpy(state[s][0], w, (size_t)n * sizeof(float)), memcpy(state[s][1], m, (size_t)n * sizeof(float));
            memcpy(state[s][2], v, (size_t)n * sizeof(float));
        }
        if (n > 2) state[0][2][2] = state[1][2][2] = 0.0f;   /* v = 0: the denominator is eps */
        df_adamw_update_default(&k, state[0][0], state[0][1], state[0][2], g, n);
        df_adamw_update_avx512f(&k, state[1][0], state[1][1], state[1][2], g, n);
        static const char *const names[3] = {"w", "m", "v"};
        for (int s = 0; s < 3; s++) {
            char what[64];
            snprintf(what, sizeof what, "AdamW %s, length %lld", names[s], (long long)n);
            expect_bitwise(state[1][s], state[0][s], n, what);
        }
        for (int s = 0; s < 2; s++) free(state[s][0]), free(state[s][1]), free(state[s][2]);
        free(g), free(w), free(m), free(v);
    }
#else
    cr_log_info("no vector copy of the AdamW update on this compiler");
#endif
}

/* ----------------------------------------------- the baseline's values */

Test(isa_kernels, sumsq_lanes_are_each_lanes_squares_summed_in_order)
{
    const int64_t n = 1003;
    float *x = test_input(3, n, -3.0f, 3.0f, false);
    double want[DF_SUMSQ_LANES] = {0}, got[DF_SUMSQ_LANES];
    for (int64_t i = 0; i < n; i++) want[i % DF_SUMSQ_LANES] += (double)x[i] * (double)x[i];
    df_sumsq_lanes_default(x, n, got);
    for (int j = 0; j < DF_SUMSQ_LANES; j++) cr_expect_eq(got[j], want[j], "lane %d: %.17g, want %.17g", j, got[j], want[j]);
    free(x);
}

/* The chain as the fused interpreter runs it, one instruction at a time. */
static float gelu_grad_by_instructions(float dy, float x, const float *s)
{
    float r0 = df_ew_mul(x, s[1]), r1 = df_ew_erf(r0), r2 = df_ew_add(s[0], r1), r3 = df_ew_mul(r2, s[2]);
    float r4 = df_ew_mul(x, x), r5 = df_ew_mul(r4, s[3]), r6 = df_ew_exp(r5), r7 = df_ew_mul(r6, s[4]);
    float r8 = df_ew_mul(x, r7), r9 = df_ew_add(r3, r8);
    return df_ew_mul(dy, r9);
}

Test(isa_kernels, gelu_grad_chain_is_the_chain_instruction_by_instruction_and_gelus_derivative)
{
    const int64_t n = 2001;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy), *got = malloc(n * sizeof *got);
    for (int64_t i = 0; i < n; i++) x[i] = -8.0f + 16.0f * (float)i / (float)(n - 1), dy[i] = 1.0f - (float)(i % 5) * 0.25f;
    df_gelu_grad_chain_default(dy, x, gelu_grad_scalars, got, n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = gelu_grad_by_instructions(dy[i], x[i], gelu_grad_scalars);
        cr_expect(memcmp(&got[i], &want, sizeof want) == 0, "x = %a: %a, instruction by instruction %a", x[i], got[i], want);
        double xd = x[i], exact = dy[i] * (0.5 * (1 + erf(xd / sqrt(2.0))) + xd * exp(-xd * xd / 2) / sqrt(2 * M_PI));
        worst = fmax(worst, fabs(got[i] - exact));
    }
    cr_expect_lt(worst, 2e-6, "against gelu's derivative in double: max abs error %.3g", worst);
    free(x), free(dy), free(got);
}

/* ----------------------------------------------- the ops on 1, 2, 3 threads */

/* sum_to of x (shape) to target against each column summed in double in
 * order, on 1, 2 and 3 threads: the same bits. (Reduced axes in one run
 * only: with two, the first run's sums are rounded to float in between.) */
static void expect_sum_to_exact(int ndim, const int64_t *shape, int tdim, const int64_t *target)
{
    int64_t numel = 1, out_numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    for (int d = 0; d < tdim; d++) out_numel *= target[d];
    float *x = test_input(7, numel, -2.0f, 2.0f, false);
    /* Reference: index arithmetic over x, each output summed in x's order. */
    double *acc = calloc((size_t)out_numel, sizeof *acc);
    float *want = malloc((size_t)out_numel * sizeof *want);
    for (int64_t i = 0; i < numel; i++) {
        int64_t rem = i, o = 0, ostride = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            int64_t idx = rem % shape[d];
            rem /= shape[d];
            int td = d - (ndim - tdim);
            if (td >= 0) {
                if (target[td] != 1) o += idx * ostride;
                ostride *= target[td];
            }
        }
        acc[o] += x[i];
    }
    for (int64_t o = 0; o < out_numel; o++) want[o] = (float)acc[o];
    df_graph *g = df_graph_new();
    df_graph_output(g, df_sum_to(g, df_placeholder(g, DF_F32, ndim, shape, "x"), tdim, target));
    df_tensor in = df_tensor_make(DF_F32, x, ndim, shape);
    const int saved = df_num_threads();
    for (int nth = 1; nth <= 3; nth++) {
        df_set_num_threads(nth);
        df_tensor out = run1(g, &in, 1);
        char what[80];
        snprintf(what, sizeof what, "sum_to of %lld elements to %lld, %d threads", (long long)numel,
                 (long long)out_numel, nth);
        cr_assert_eq(df_tensor_numel(&out), out_numel);
        expect_bitwise(out.data, want, out_numel, what);
    }
    df_set_num_threads(saved);
    df_graph_free(g);
    free(x), free(acc), free(want);
}

Test(isa_kernels, sum_to_sums_each_column_in_order)
{
    expect_sum_to_exact(2, SHAPE(768, 130), 1, SHAPE(130));          /* a bias gradient; 130 = 2 blocks + 2 */
    expect_sum_to_exact(3, SHAPE(12, 64, 384), 1, SHAPE(384));       /* two leading axes, one run */
    expect_sum_to_exact(3, SHAPE(3, 50, 70), 3, SHAPE(3, 1, 70));    /* several rows */
    expect_sum_to_exact(3, SHAPE(4, 300, 1), 3, SHAPE(4, 1, 1));     /* inner 1: the contiguous path */
}

Test(isa_kernels, global_norm_scale_is_clip_over_the_norm_on_every_thread_count)
{
    const int64_t n0 = 70001, n1 = 129;
    float *a = test_input(9, n0, -0.02f, 0.02f, false), *b = test_input(10, n1, -1.0f, 1.0f, false);
    double total = 0;
    for (int64_t i = 0; i < n0; i++) total += (double)a[i] * a[i];
    for (int64_t i = 0; i < n1; i++) total += (double)b[i] * b[i];
    const float clip = 0.5f;
    const double want = clip / sqrt(total);
    cr_assert_gt(sqrt(total), clip, "the case must clip");
    df_graph *g = df_graph_new();
    df_node *in[2] = {df_placeholder(g, DF_F32, 1, SHAPE(n0), "a"), df_placeholder(g, DF_F32, 1, SHAPE(n1), "b")};
    df_graph_output(g, df_global_norm_scale(g, 2, in, clip));
    df_tensor t[2] = {df_tensor_make(DF_F32, a, 1, SHAPE(n0)), df_tensor_make(DF_F32, b, 1, SHAPE(n1))};
    const int saved = df_num_threads();
    float first = 0;
    for (int nth = 1; nth <= 3; nth++) {
        df_set_num_threads(nth);
        df_tensor out = {0};
        cr_assert_eq(df_graph_run(g, t, 2, &out, 1), DF_OK, "%s", df_last_error());
        float got = ((const float *)out.data)[0];
        cr_expect(fabs(got - want) <= 1e-7 * want, "%d threads: scale %.9g, want %.9g", nth, got, want);
        if (nth == 1) first = got;
        else cr_expect(memcmp(&got, &first, sizeof got) == 0, "%d threads: %a, 1 thread %a", nth, got, first);
    }
    df_set_num_threads(saved);
    df_graph_free(g);
    free(a), free(b);
}

/* y = gelu(x), its gradient for the output gradient dy: the fusion pass makes
 * the gradient one chain, which the fused op runs by its own loop. */
Test(isa_kernels, fused_gelu_gradient_is_bit_identical_to_the_unfused_ops)
{
    const int64_t rows = 48, cols = 517;
    float *x = test_input(31, rows * cols, -5.0f, 5.0f, true), *dy = test_input(32, rows * cols, -1.0f, 1.0f, false);
    df_tensor in[2] = {df_tensor_make(DF_F32, x, 2, SHAPE(rows, cols)), df_tensor_make(DF_F32, dy, 2, SHAPE(rows, cols))};
    float *result[2] = {0};
    int fused_nodes = 0;
    for (int k = 0; k < 2; k++) {
        df_graph *g = df_graph_new();
        df_graph_set_passes(g, k == 0 ? DF_PASS_ALL : 0);
        df_node *xn = df_placeholder(g, DF_F32, 2, SHAPE(rows, cols), "x");
        df_node *dyn = df_placeholder(g, DF_F32, 2, SHAPE(rows, cols), "dy"), *dx = NULL;
        cr_assert_eq(df_gradients(g, df_gelu(g, xn), dyn, 1, &xn, &dx), DF_OK, "%s", df_last_error());
        df_graph_output(g, dx);
        df_tensor out = {0};
        cr_assert_eq(df_graph_run(g, in, 2, &out, 1), DF_OK, "%s", df_last_error());
        result[k] = malloc((size_t)(rows * cols) * sizeof(float));
        memcpy(result[k], out.data, (size_t)(rows * cols) * sizeof(float));
        if (k == 0) {
            df_graph_stats st;
            cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
            fused_nodes = st.fused_nodes;
        }
        df_graph_free(g);
    }
    cr_expect_eq(fused_nodes, 11, "the gradient's 11 elementwise nodes fuse into one chain; got %d", fused_nodes);
    expect_bitwise(result[0], result[1], rows * cols, "gelu gradient, fused vs unfused");
    free(result[0]), free(result[1]), free(x), free(dy);
}

/* Fused programs with the codes of gelu's gradient but x * z where the
 * template has x * x, or a tensor c where it has a scalar: not that chain,
 * so the interpreter runs them. Also the template's own program over the
 * same inputs, which its loop runs. */
Test(isa_kernels, a_chain_like_gelus_gradient_with_other_operands_runs_as_written)
{
    const int64_t n = 1000;
    float *x = test_input(51, n, -3.0f, 3.0f, false), *z = test_input(52, n, -3.0f, 3.0f, false);
    float *dy = test_input(53, n, -1.0f, 1.0f, false);
    const float *s = gelu_grad_scalars;
    df_fused_program prog = {
        .n = 11,
        .ins = {{DF_EW_MUL, 2, 3},  {DF_EW_ERF, -1, 0}, {DF_EW_ADD, 1, -2}, {DF_EW_MUL, -3, 4},
                {DF_EW_MUL, 2, 7},  {DF_EW_MUL, -5, 5}, {DF_EW_EXP, -6, 0}, {DF_EW_MUL, -7, 6},
                {DF_EW_MUL, 2, -8}, {DF_EW_ADD, -4, -9}, {DF_EW_MUL, 0, -10}},
    };
    df_fused_program same = prog, tensor_c = prog;
    same.ins[4].b = 2;                                  /* x * x: gelu's gradient */
    tensor_c.ins[4].b = 2;
    tensor_c.ins[0].b = 8;                              /* x * c[i] */
    float *c = test_input(54, n, 0.5f, 1.0f, false);
    df_graph *g = df_graph_new();
    df_graph_set_passes(g, 0);
    df_node *in[9] = {PH(g, n), df_scalar(g, s[0]), PH(g, n), df_scalar(g, s[1]), df_scalar(g, s[2]),
                      df_scalar(g, s[3]), df_scalar(g, s[4]), PH(g, n), PH(g, n)};
    df_graph_output(g, df_node_new(g, &df_op_fused_elementwise, 9, in, &prog));
    df_graph_output(g, df_node_new(g, &df_op_fused_elementwise, 9, in, &same));
    df_graph_output(g, df_node_new(g, &df_op_fused_elementwise, 9, in, &tensor_c));
    df_tensor feeds[4] = {F32(dy, n), F32(x, n), F32(z, n), F32(c, n)}, out[3];
    cr_assert_eq(df_graph_run(g, feeds, 4, out, 3), DF_OK, "%s", df_last_error());
    float *want = malloc(n * sizeof *want), *want_same = malloc(n * sizeof *want_same);
    float *want_c = malloc(n * sizeof *want_c);
    for (int64_t i = 0; i < n; i++) {
        float r0 = df_ew_mul(x[i], s[1]), r3 = df_ew_mul(df_ew_add(s[0], df_ew_erf(r0)), s[2]);
        float r7 = df_ew_mul(df_ew_exp(df_ew_mul(df_ew_mul(x[i], z[i]), s[3])), s[4]);
        want[i] = df_ew_mul(dy[i], df_ew_add(r3, df_ew_mul(x[i], r7)));
        want_same[i] = gelu_grad_by_instructions(dy[i], x[i], s);
        const float sc[5] = {s[0], c[i], s[2], s[3], s[4]};
        want_c[i] = gelu_grad_by_instructions(dy[i], x[i], sc);
    }
    expect_bitwise(out[0].data, want, n, "the chain with x * z");
    expect_bitwise(out[1].data, want_same, n, "gelu's gradient chain");
    expect_bitwise(out[2].data, want_c, n, "the chain with a tensor c");
    df_graph_free(g);
    free(x), free(z), free(dy), free(c), free(want), free(want_same), free(want_c);
}

/* The three loops of layer_norm and its gradient, with and without a gain,
 * over rows of awkward widths: each copy gives the baseline's bits. */
Test(isa_kernels, layer_norm_loop_copies_match_the_baseline_bitwise)
{
    isa_copy copies[2];
    available_copies(copies);
    const int64_t rows = 9, widths[] = {1, 7, 16, 33, 130};
    for (int c = 0; c < 2; c++) {
        if (!copies[c].runs) continue;
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int64_t C = widths[wi], n = rows * C;
            float *x = test_input(71 + wi, n, -3.0f, 3.0f, true), *dy = test_input(72 + wi, n, -1.0f, 1.0f, true);
            float *g = test_input(73 + wi, C, 0.5f, 1.5f, false), *b = test_input(74 + wi, C, -0.5f, 0.5f, false);
            float *stats = test_input(75 + wi, 2 * rows, 0.5f, 2.0f, false);
            float *want = malloc((size_t)(2 * n + 2 * C) * sizeof *want), *got = malloc((size_t)(2 * n + 2 * C) * sizeof *got);
            const double k[4] = {0.25, 1.75, -0.125, 0.375};
            char what[96];
            for (int affine = 0; affine < 2; affine++) {
                const float *G = affine ? g : NULL, *B = affine ? b : NULL;
                df_ln_normalize_row_default(x, C, 0.25f, 1.5f, G, B, want);
                PICK(df_ln_normalize_row, c)(x, C, 0.25f, 1.5f, G, B, got);
                snprintf(what, sizeof what, "df_ln_normalize_row_%s, C %lld, affine %d", copies[c].name, (long long)C, affine);
                expect_bitwise(got, want, C, what);
                df_ln_grad_dx_row_default(x, dy, G, C, k, want);
                PICK(df_ln_grad_dx_row, c)(x, dy, G, C, k, got);
                snprintf(what, sizeof what, "df_ln_grad_dx_row_%s, C %lld, affine %d", copies[c].name, (long long)C, affine);
                expect_bitwise(got, want, C, what);
            }
            df_ln_param_grad_columns_default(x, dy, stats, rows, C, 0, C, want, want + C);
            PICK(df_ln_param_grad_columns, c)(x, dy, stats, rows, C, 0, C, got, got + C);
            snprintf(what, sizeof what, "df_ln_param_grad_columns_%s, C %lld", copies[c].name, (long long)C);
            expect_bitwise(got, want, 2 * C, what);
            free(x), free(dy), free(g), free(b), free(stats), free(want), free(got);
        }
    }
}

/* The baseline loops against their formulas in double. */
Test(isa_kernels, layer_norm_loops_compute_their_formulas)
{
    const int64_t rows = 5, C = 70;
    float *x = test_input(81, rows * C, -3.0f, 3.0f, false), *dy = test_input(82, rows * C, -1.0f, 1.0f, false);
    float *g = test_input(83, C, 0.5f, 1.5f, false), *b = test_input(84, C, -0.5f, 0.5f, false);
    float *stats = test_input(85, 2 * rows, 0.5f, 2.0f, false), out[2 * C];
    const double k[4] = {0.25, 1.75, -0.125, 0.375};
    df_ln_normalize_row_default(x, C, 0.25f, 1.5f, g, b, out);
    for (int64_t j = 0; j < C; j++)
        cr_expect(fabs(out[j] - ((x[j] - 0.25) * 1.5 * g[j] + b[j])) <= 1e-6, "normalize [%lld]: %.8g", (long long)j, out[j]);
    df_ln_grad_dx_row_default(x, dy, g, C, k, out);
    for (int64_t j = 0; j < C; j++) {
        double want = k[1] * ((double)dy[j] * g[j] - k[2] - ((double)x[j] - k[0]) * k[1] * k[3]);
        cr_expect(fabs(out[j] - want) <= 1e-6 * fmax(1, fabs(want)), "dx [%lld]: %.8g, want %.8g", (long long)j, out[j], want);
    }
    df_ln_param_grad_columns_default(x, dy, stats, rows, C, 3, C, out, out + C);
    for (int64_t j = 3; j < C; j++) {
        double sg = 0, sb = 0;
        for (int64_t r = 0; r < rows; r++) {
            sg += (double)dy[r * C + j] * ((x[r * C + j] - stats[2 * r]) * stats[2 * r + 1]);
            sb += dy[r * C + j];
        }
        cr_expect(fabs(out[j] - sg) <= 1e-5, "dgain [%lld]: %.8g, want %.8g", (long long)j, out[j], sg);
        cr_expect(fabs(out[C + j] - sb) <= 1e-5, "dbias [%lld]: %.8g, want %.8g", (long long)j, out[C + j], sb);
    }
    free(x), free(dy), free(g), free(b), free(stats);
}

/* The row statistics as documented in ops/layer_norm.c, one row at a time:
 * DF_LN_LANES lanes over the whole groups, the rest into lane 0, the lanes
 * summed from 0 in order; then the same for the squared deviations. */
static void row_stats_reference(const float *x, int64_t C, float eps, double *mean, double *rstd)
{
    double lane[DF_LN_LANES] = {0}, sum = 0, sq = 0;
    const int64_t body = C / DF_LN_LANES * DF_LN_LANES;
    for (int64_t j = 0; j < C; j++) lane[j < body ? j % DF_LN_LANES : 0] += (double)x[j];
    for (int l = 0; l < DF_LN_LANES; l++) sum += lane[l];
    const double m = C ? sum / (double)C : 0;
    memset(lane, 0, sizeof lane);
    for (int64_t j = 0; j < C; j++) lane[j < body ? j % DF_LN_LANES : 0] += ((double)x[j] - m) * ((double)x[j] - m);
    for (int l = 0; l < DF_LN_LANES; l++) sq += lane[l];
    *mean = m;
    *rstd = 1.0 / sqrt((C ? sq / (double)C : 0) + (double)eps);
}

Test(isa_kernels, layer_norm_row_stats_sum_each_row_in_its_lanes_in_every_copy)
{
    isa_copy copies[2];
    available_copies(copies);
    const int64_t widths[] = {1, 2, 3, 4, 5, 7, 64, 129, 131};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const int64_t C = widths[wi];
        float *x = test_input(91 + wi, DF_LN_ROWS * C, -3.0f, 5.0f, false);
        for (int64_t i = 0; i < DF_LN_ROWS * C; i++) x[i] *= powf(10.0f, (float)((i * 7) % 17 - 8));  /* sums round */
        for (int64_t nr = 1; nr <= DF_LN_ROWS; nr++) {
            double mean[DF_LN_ROWS], rstd[DF_LN_ROWS];
            df_ln_row_stats_default(x, C, nr, 1e-5f, mean, rstd);
            for (int64_t r = 0; r < nr; r++) {
                double m, s;
                row_stats_reference(x + r * C, C, 1e-5f, &m, &s);
                cr_expect(mean[r] == m && rstd[r] == s, "C %lld, %lld rows, row %lld: mean %.17g rstd %.17g, want %.17g %.17g",
                          (long long)C, (long long)nr, (long long)r, mean[r], rstd[r], m, s);
            }
            for (int c = 0; c < 2; c++) {
                if (!copies[c].runs) continue;
                double mc[DF_LN_ROWS], sc[DF_LN_ROWS];
                PICK(df_ln_row_stats, c)(x, C, nr, 1e-5f, mc, sc);
                cr_expect(!memcmp(mc, mean, (size_t)nr * sizeof *mc) && !memcmp(sc, rstd, (size_t)nr * sizeof *sc),
                          "df_ln_row_stats_%s, C %lld, %lld rows: not the baseline's bits", copies[c].name, (long long)C,
                          (long long)nr);
            }
        }
        free(x);
    }
}
