/* test_bf16.c — the bf16 GEMM path (src/gemm_kernels.c, AVX512_BF16) and
 * the DF_PRECISION_BF16 setting of matmul and the fused LSTM.
 *
 * Tolerance of a bf16 product against the double reference of the fp32
 * operands: bf16 keeps 8 significant bits, so rounding to nearest changes
 * an operand by at most u = 2^-8 of itself and a product a*b by at most
 * 2u + u^2 < 2^-7 + 2^-16; the product of two bf16 is exact in fp32, and
 * the K-term fp32 sum adds at most (K + 2) 2^-24 of sum |a b| (plus alpha
 * and beta's roundings). So every element obeys
 *     |c - ref| <= (2^-7 + 2^-16 + (K + 2) 2^-24) (|alpha| sum_k |a b| + |beta c0|),
 * a bound that holds for any data (not a statistical one). On random data
 * the errors of the K terms cancel in part, and the whole matrix's relative
 * (Frobenius) error stays near 2^-8 / sqrt(3) per term's share; the test
 * also asks it to be at most 2^-8 (a biased rounding, such as truncation,
 * is about 2^-8 and fails it at the sizes below), and at least 2^-12 (an
 * fp32 product is ~2^-22: bf16 must really be used).
 *
 * The fused attention op's bf16 products are checked against its fp32 op
 * (the attention section below).
 *
 * On a CPU without AVX512_BF16 the kernel and op tests skip with a message
 * naming the missing feature; the refusal tests run everywhere. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base.h"
#include "gemm.h"
#include "helpers.h"

/* Skips the test, saying why, where the bf16 kernels cannot run
 * (DF_TEST_NO_BF16=1 acts out such a CPU, to see the skips). */
#define REQUIRE_BF16()                                                                               \
    do {                                                                                             \
        if (getenv("DF_TEST_NO_BF16")) df_gemm_bf16_pretend_missing(true);                           \
        const char *missing_ = df_gemm_bf16_missing();                                               \
        if (missing_) cr_skip_test("bf16 not checked: this CPU lacks %s", missing_);                 \
    } while (0)

#define GEMM_PROBLEM_SEED 0x2545F4914F6CDD1Du
#include "gemm_problem.h"

static void run_bf16(problem *p)
{
    memcpy(p->C, p->C0, sizeof(float) * (size_t)(p->M * p->ldc));
    df_sgemm_path(DF_GEMM_BF16, p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta, p->C,
                  p->ldc);
}

/* The elementwise bound of the header, the sentinel past column N, and the
 * matrix's relative error in [2^-12, 2^-8] when it has enough terms for
 * that statistic (M*N*K >= 4096). */
static void check_bf16(const problem *p)
{
    const double rel = pow(2, -7) + pow(2, -16) + (p->K + 2) * pow(2, -24);
    double err2 = 0, ref2 = 0;
    for (int64_t i = 0; i < p->M; i++) {
        for (int64_t j = 0; j < p->ldc; j++) {
            const float got = p->C[i * p->ldc + j];
            if (j >= p->N) {
                cr_assert(got == SENTINEL, "M=%ld N=%ld K=%ld: wrote C[%ld][%ld] past column N", (long)p->M,
                          (long)p->N, (long)p->K, (long)i, (long)j);
                continue;
            }
            double s = 0, mag = 0;
            for (int64_t k = 0; k < p->K; k++) {
                const double t = (double)a_at(p, i, k) * b_at(p, k, j);
                s += t;
                mag += fabs(t);
            }
            const double c0 = p->beta == 0.0f ? 0.0 : p->C0[i * p->ldc + j];
            const double want = p->alpha * s + p->beta * c0;
            const double tol = rel * (fabs(p->alpha) * mag + fabs(p->beta * c0)) + 1e-30;
            if (!(fabs(got - want) <= tol))
                cr_assert_fail("bf16 %s%sM=%ld N=%ld K=%ld alpha=%g beta=%g: C[%ld][%ld] = %.9g, want %.9g (tol %.3g)",
                               p->ta ? "ta " : "", p->tb ? "tb " : "", (long)p->M, (long)p->N, (long)p->K, p->alpha,
                               p->beta, (long)i, (long)j, got, want, tol);
            err2 += (got - want) * (got - want);
            ref2 += (p->alpha * s) * (p->alpha * s);
        }
    }
    if (p->M * p->N * p->K >= 4096 && p->beta == 0.0f) {
        const double frob = sqrt(err2 / ref2);
        if (getenv("BF16_VERBOSE")) cr_log_info("K=%ld frob %.3g = 2^%.2f", (long)p->K, frob, log2(frob));
        cr_assert(frob <= pow(2, -8) && frob >= pow(2, -12),
                  "bf16 %s%sM=%ld N=%ld K=%ld: relative error %.3g outside [2^-12, 2^-8] = [%.3g, %.3g]",
                  p->ta ? "ta " : "", p->tb ? "tb " : "", (long)p->M, (long)p->N, (long)p->K, frob, pow(2, -12),
                  pow(2, -8));
    }
}

/* Edge shapes: M, N, K around the 8 x 32 tile and the 256-step k block,
 * K odd (a pair with one zero), one row or column, all four transposes;
 * past 128 rows (a second block of A, packed row by row or, transposed,
 * k-major 16 rows wide for 9 rows) and K around 32-float conversions. */
Test(bf16_gemm, edge_shapes_and_transposes)
{
    REQUIRE_BF16();
    static const int64_t shapes[][3] = {
        {1, 1, 1}, {1, 33, 7}, {13, 1, 17}, {7, 17, 33}, {8, 32, 256}, {9, 31, 255}, {12, 32, 256}, {13, 33, 257},
        {25, 65, 513}, {24, 31, 2}, {11, 97, 301}, {40, 48, 1000}, {137, 45, 301}, {130, 33, 31}, {129, 20, 65},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            problem p = make_problem(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 3);
            run_bf16(&p);
            check_bf16(&p);
            free_problem(&p);
        }
}

/* NaN in every operand row's padding (past the row's last element): a
 * packing that reads one float past K, or past the last row of a panel,
 * pairs it with a zero of the other operand, where only NaN (0 * NaN)
 * shows it. K odd or around the 16- and 32-float conversions. */
static void poison_padding(float *X, int64_t rows, int64_t len, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = len; j < ld; j++) X[r * ld + j] = NAN;
}

Test(bf16_gemm, never_reads_past_a_row)
{
    REQUIRE_BF16();
    static const int64_t shapes[][3] = {{9, 33, 7}, {17, 40, 17}, {13, 20, 31}, {11, 35, 33}, {24, 64, 301}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            problem p = make_problem(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 5);
            poison_padding(p.A, p.ta ? p.K : p.M, p.ta ? p.M : p.K, p.lda);
            poison_padding(p.B, p.tb ? p.N : p.K, p.tb ? p.K : p.N, p.ldb);
            run_bf16(&p);
            check_bf16(&p);
            free_problem(&p);
        }
}

Test(bf16_gemm, alpha_and_beta)
{
    REQUIRE_BF16();
    static const float ab[][2] = {{1, 1}, {-0.5f, 2}, {2, 0}};
    for (size_t s = 0; s < 3; s++)
        for (int t = 0; t < 4; t++) {
            problem p = make_problem(t & 1, t & 2, 19, 45, 299, ab[s][0], ab[s][1], 3);
            run_bf16(&p);
            check_bf16(&p);
            free_problem(&p);
        }
}

/* The operands are rounded to nearest even, not truncated: 1 + 2^-8 + 2^-12
 * is past half an ulp (2^-8) of 1 in bf16, so it becomes 1 + 2^-7; exactly
 * half (1 + 2^-8) rounds to the even 1. Through both packings (k-major and
 * k-contiguous) of both operands. */
Test(bf16_gemm, rounds_to_nearest_even)
{
    REQUIRE_BF16();
    const float up = 1.0f + 0x1p-8f + 0x1p-12f, tie = 1.0f + 0x1p-8f;
    for (int t = 0; t < 4; t++) {
        float A[2] = {up, tie}, B[2] = {1.0f, 1.0f}, C = 0;
        df_sgemm_path(DF_GEMM_BF16, t & 1, t & 2, 1, 1, 2, 1.0f, A, (t & 1) ? 1 : 2, B, (t & 2) ? 2 : 1, 0.0f, &C, 1);
        cr_assert(C == 2.0f + 0x1p-7f, "transposes %d: (1+2^-8+2^-12) + (1+2^-8) in bf16 = %.9g, want %.9g", t, C,
                  2.0f + 0x1p-7f);
        float A2[2] = {1.0f, 1.0f}, B2[2] = {up, tie};
        df_sgemm_path(DF_GEMM_BF16, t & 1, t & 2, 1, 1, 2, 1.0f, A2, (t & 1) ? 1 : 2, B2, (t & 2) ? 2 : 1, 0.0f, &C, 1);
        cr_assert(C == 2.0f + 0x1p-7f, "transposes %d, rounded B: %.9g, want %.9g", t, C, 2.0f + 0x1p-7f);
    }
}

/* Big enough to be split among threads: the same bits on 1, 2 and 3. */
Test(bf16_gemm, same_bits_on_any_thread_count)
{
    REQUIRE_BF16();
    df_team_set_adapt(0);
    for (int t = 0; t < 4; t++) {
        problem p = make_problem(t & 1, t & 2, 150, 230, 517, 1.0f, 0.0f, 3);
        float *first = malloc(sizeof(float) * (size_t)(p.M * p.ldc));
        cr_assert(first);
        for (int nth = 1; nth <= 3; nth++) {
            df_set_num_threads(nth);
            run_bf16(&p);
            if (nth == 1) {
                check_bf16(&p);
                memcpy(first, p.C, sizeof(float) * (size_t)(p.M * p.ldc));
            } else {
                cr_assert(memcmp(first, p.C, sizeof(float) * (size_t)(p.M * p.ldc)) == 0,
                          "transposes %d: bits on %d threads differ from 1 thread", t, nth);
            }
        }
        free(first);
        free_problem(&p);
    }
    df_set_num_threads(2);
    df_team_set_adapt(-1);
}

/* B packed once (df_gemm_pack_b) gives the bits of the unpacked product. */
Test(bf16_gemm, packed_b_same_bits)
{
    REQUIRE_BF16();
    for (int tb = 0; tb < 2; tb++) {
        problem p = make_problem(false, tb, 70, 100, 515, 1.0f, 0.0f, 3);
        run_bf16(&p);
        check_bf16(&p);
        float *C2 = malloc(sizeof(float) * (size_t)(p.M * p.ldc));
        float *buf = aligned_alloc(64, (df_gemm_packed_b_floats(DF_GEMM_BF16, p.K, p.N) * sizeof(float) + 63) / 64 * 64);
        cr_assert(C2 && buf);
        memcpy(C2, p.C0, sizeof(float) * (size_t)(p.M * p.ldc));
        df_gemm_packed_b pb;
        cr_assert(df_gemm_pack_b(DF_GEMM_BF16, &pb, tb, p.K, p.N, p.B, p.ldb, buf));
        cr_assert(df_sgemm_packed(p.M, 1.0f, p.A, p.lda, &pb, 0.0f, C2, p.ldc));
        cr_assert(memcmp(C2, p.C, sizeof(float) * (size_t)(p.M * p.ldc)) == 0, "tb %d: packed B bits differ", tb);
        free(buf);
        free(C2);
        free_problem(&p);
    }
}

/* A packed once (df_gemm_packed_a), filled in pieces as the LSTM's threads
 * fill it (k ranges in any order, one crossing the 256-step k block, the
 * last ending at an odd K), gives the bits of packing A in the product
 * (df_sgemm_packed_cols), on every kernel set the CPU has, in two column
 * ranges; pieces that split a bf16 pair and mismatched operands are refused. */
static void check_packed_a(df_gemm_path path, bool tb)
{
    const df_gemm_kernels *ks = df_gemm_kernels_for(path);
    problem p = make_problem(false, tb, 13, 100, 515, 1.0f, 0.0f, 3);
    const size_t fb = df_gemm_packed_b_floats(path, p.K, p.N), fa = df_gemm_packed_a_floats(path, p.M, p.K);
    float *bufb = aligned_alloc(64, (fb * sizeof(float) + 63) / 64 * 64);
    float *bufa = aligned_alloc(64, (fa * sizeof(float) + 63) / 64 * 64);
    float *C2 = malloc(sizeof(float) * (size_t)(p.M * p.ldc));
    cr_assert(bufb && bufa && C2 && fa > 0);
    df_gemm_packed_b pb;
    df_gemm_packed_a pa;
    cr_assert(df_gemm_pack_b(path, &pb, tb, p.K, p.N, p.B, p.ldb, bufb));
    cr_assert(df_gemm_packed_a_init(path, &pa, p.M, p.K, bufa));
    memcpy(p.C, p.C0, sizeof(float) * (size_t)(p.M * p.ldc));
    memcpy(C2, p.C0, sizeof(float) * (size_t)(p.M * p.ldc));
    cr_assert(df_sgemm_packed_cols(p.M, 1.0f, p.A, p.lda, &pb, 0, p.N, 0.0f, p.C, p.ldc));
    static const int64_t pieces[][2] = {{300, 515}, {0, 100}, {100, 300}};
    for (int i = 0; i < 3; i++) cr_assert(df_gemm_pack_a_cols(&pa, p.A, p.lda, pieces[i][0], pieces[i][1]));
    const int64_t split = 2 * ks->nr;
    cr_assert(df_sgemm_packed_ab_cols(1.0f, &pa, &pb, split, p.N, 0.0f, C2, p.ldc));
    cr_assert(df_sgemm_packed_ab_cols(1.0f, &pa, &pb, 0, split, 0.0f, C2, p.ldc));
    cr_assert(memcmp(C2, p.C, sizeof(float) * (size_t)(p.M * p.ldc)) == 0, "%s tb %d: packed A bits differ", ks->name,
              tb);
    cr_expect_not(df_sgemm_packed_ab_cols(1.0f, &pa, &pb, 1, p.N, 0.0f, C2, p.ldc), "%s: n0 inside a panel", ks->name);
    pa.K--;
    cr_expect_not(df_sgemm_packed_ab_cols(1.0f, &pa, &pb, 0, p.N, 0.0f, C2, p.ldc), "%s: K differs", ks->name);
    pa.K++;
    if (ks->kpack == 2) {
        cr_expect_not(df_gemm_pack_a_cols(&pa, p.A, p.lda, 1, 10), "%s: k0 odd", ks->name);
        cr_expect_not(df_gemm_pack_a_cols(&pa, p.A, p.lda, 0, 9), "%s: k1 odd before K", ks->name);
    }
    free(bufa), free(bufb), free(C2);
    free_problem(&p);
}

Test(bf16_gemm, packed_a_same_bits)
{
    static const df_gemm_path paths[] = {DF_GEMM_BF16, DF_GEMM_AVX512, DF_GEMM_AVX2, DF_GEMM_PORTABLE};
    int ran = 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!df_gemm_kernels_for(paths[i])) continue;
        for (int tb = 0; tb < 2; tb++) check_packed_a(paths[i], tb);
        ran++;
    }
    cr_assert(ran >= 1, "no kernel set ran");
    if (df_gemm_bf16_missing()) cr_log_info("packed A: bf16 not checked, this CPU lacks %s", df_gemm_bf16_missing());
}

/* ------------------------------------------------------ the precision setting */

/* sqrt(sum (a-b)^2 / sum b^2) */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

static df_status build_matmul(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_graph_output(g, df_matmul(g, in[0], in[1], false, true));
    return df_graph_status(g);
}

/* df_function_set_precision: that function's calls take bf16 operands
 * (about 2^-9 off fp32 here, far more than fp32's own ~2^-22), another
 * function's stay fp32 bit for bit, and the thread's setting is untouched. */
Test(bf16_precision, function_setting_reaches_matmul)
{
    REQUIRE_BF16();
    enum { M = 40, N = 70, K = 300 };
    df_rng rng;
    df_rng_seed(&rng, 3);
    float *a = rand_buf(&rng, M * K, -1, 1), *b = rand_buf(&rng, N * K, -1, 1), *ref = malloc(sizeof(float) * M * N);
    cr_assert(ref);
    df_sgemm(false, true, M, N, K, 1.0f, a, K, b, K, 0.0f, ref, N);
    df_tensor in[2] = {F32(a, M, K), F32(b, N, K)}, out;
    df_function *f32 = df_function_new("fp32", build_matmul, NULL), *f16 = df_function_new("bf16", build_matmul, NULL);
    cr_assert_eq(df_function_set_precision(f16, DF_PRECISION_BF16), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_function_call(f32, in, 2, &out, 1), DF_OK, "%s", df_last_error());
    cr_assert(memcmp(out.data, ref, sizeof(float) * M * N) == 0, "an fp32 function's matmul is not df_sgemm's bits");
    cr_assert_eq(df_function_call(f16, in, 2, &out, 1), DF_OK, "%s", df_last_error());
    const double d = rel_diff(out.data, ref, M * N);
    cr_assert(d <= 0x1p-8 && d >= 0x1p-12, "bf16 matmul vs fp32: relative difference %.3g not in [2^-12, 2^-8]", d);
    cr_assert_eq(df_get_precision(), DF_PRECISION_FP32, "the function's precision leaked into the thread's");
    df_function_free(f32);
    df_function_free(f16);
    free(a), free(b), free(ref);
}

static df_status build_batch_matmul(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_graph_output(g, df_batch_matmul(g, in[0], in[1], false, true));
    return df_graph_status(g);
}

/* batch_matmul in both of its forms: one shared b (a dense layer over
 * (B,T,C): one GEMM) and a b per batch (attention's products, whose loop
 * runs on the pool's threads, which must use the caller's setting). */
Test(bf16_precision, function_setting_reaches_batch_matmul)
{
    REQUIRE_BF16();
    enum { B = 3, M = 20, N = 70, K = 300 };
    df_rng rng;
    df_rng_seed(&rng, 4);
    float *a = rand_buf(&rng, B * M * K, -1, 1), *b = rand_buf(&rng, B * N * K, -1, 1);
    float *ref = malloc(sizeof(float) * B * M * N);
    cr_assert(ref);
    for (int shared = 1; shared >= 0; shared--) {
        for (int p = 0; p < B; p++)
            df_sgemm(false, true, M, N, K, 1.0f, a + p * M * K, K, b + (shared ? 0 : p * N * K), K, 0.0f,
                     ref + p * M * N, N);
        df_tensor in[2] = {df_tensor_make(DF_F32, a, 3, (int64_t[]){B, M, K}),
                           shared ? F32(b, N, K) : df_tensor_make(DF_F32, b, 3, (int64_t[]){B, N, K})}, out;
        df_function *f32 = df_function_new("fp32", build_batch_matmul, NULL);
        df_function *f16 = df_function_new("bf16", build_batch_matmul, NULL);
        cr_assert_eq(df_function_set_precision(f16, DF_PRECISION_BF16), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_function_call(f32, in, 2, &out, 1), DF_OK, "%s", df_last_error());
        cr_assert(rel_diff(out.data, ref, B * M * N) < 0x1p-20, "shared %d: fp32 batch_matmul is not fp32", shared);
        cr_assert_eq(df_function_call(f16, in, 2, &out, 1), DF_OK, "%s", df_last_error());
        const double d = rel_diff(out.data, ref, B * M * N);
        cr_assert(d <= 0x1p-8 && d >= 0x1p-12, "shared %d: bf16 batch_matmul vs fp32: relative difference %.3g not in "
                  "[2^-12, 2^-8]", shared, d);
        df_function_free(f32);
        df_function_free(f16);
    }
    free(a), free(b), free(ref);
}

/* The fused LSTM forward and backward (lstm, lstm_grad, d w_rec) in bf16
 * against fp32, at a size that runs the threaded packed path with a last
 * unit slice short of a panel (H = 300). */
enum { LB = 16, LT = 6, LH = 300 };

static df_graph *build_lstm(void)
{
    df_graph *g = df_graph_new();
    df_node *in[5] = {PH(g, LB, LT, 4 * LH), PH(g, LH, 4 * LH), PH(g, LB, LH), PH(g, LB, LH), PH(g, LB, LT, LH)};
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]), *grads[4];
    df_node *loss = df_sum(g, df_mul(g, h, in[4]), NULL, 0, false);
    cr_assert_eq(df_gradients(g, loss, NULL, 4, in, grads), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, h);
    df_graph_output(g, df_lstm_final_c(g, h));
    for (int i = 0; i < 4; i++) df_graph_output(g, grads[i]);
    return g;
}

static const int64_t lstm_numel[6] = {LB * LT * LH, LB * LH, LB * LT * 4 * LH, LH * 4 * LH, LB * LH, LB * LH};
static const char *lstm_out_name[6] = {"h", "final c", "d xproj", "d w_rec", "d h0", "d c0"};

typedef struct lstm_data { float *x, *w, *h0, *c0, *r; df_tensor in[5]; } lstm_data;

static lstm_data lstm_inputs(void)
{
    df_rng rng;
    df_rng_seed(&rng, 17);
    lstm_data d;
    d.x = rand_buf(&rng, LB * LT * 4 * LH, -2, 2);
    d.w = rand_buf(&rng, LH * 4 * LH, -0.1f, 0.1f);
    d.h0 = rand_buf(&rng, LB * LH, -1, 1);
    d.c0 = rand_buf(&rng, LB * LH, -1, 1);
    d.r = rand_buf(&rng, LB * LT * LH, -1, 1);
    d.in[0] = F32(d.x, LB, LT, 4 * LH);
    d.in[1] = F32(d.w, LH, 4 * LH);
    d.in[2] = F32(d.h0, LB, LH);
    d.in[3] = F32(d.c0, LB, LH);
    d.in[4] = F32(d.r, LB, LT, LH);
    return d;
}

static void lstm_free(lstm_data *d) { free(d->x), free(d->w), free(d->h0), free(d->c0), free(d->r); }

static void run_lstm(df_graph *g, const df_tensor *in, df_precision p, float **copy)
{
    cr_assert_eq(df_set_precision(p), DF_OK, "%s", df_last_error());
    df_tensor o[6];
    cr_assert_eq(df_graph_run(g, in, 5, o, 6), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_set_precision(DF_PRECISION_FP32), DF_OK);
    for (int i = 0; i < 6; i++) {
        copy[i] = malloc((size_t)lstm_numel[i] * sizeof(float));
        cr_assert(copy[i]);
        memcpy(copy[i], o[i].data, (size_t)lstm_numel[i] * sizeof(float));
    }
}

/* Each output within 2^-7 (relative, whole array) of fp32's: the products'
 * ~2^-9 compounded through 6 steps and the backward (measured 2^-8.5 to
 * 2^-11); and at least 2^-16
 * off, or bf16 was not used (fp32 runs agree to the bit). */
Test(bf16_precision, lstm_forward_backward_near_fp32)
{
    REQUIRE_BF16();
    lstm_data d = lstm_inputs();
    df_graph *g = build_lstm();
    float *f32[6], *b16[6];
    run_lstm(g, d.in, DF_PRECISION_FP32, f32);
    run_lstm(g, d.in, DF_PRECISION_BF16, b16);
    for (int i = 0; i < 6; i++) {
        const double r = rel_diff(b16[i], f32[i], lstm_numel[i]);
        if (getenv("BF16_VERBOSE")) cr_log_info("%s: bf16 vs fp32 %.3g = 2^%.2f", lstm_out_name[i], r, log2(r));
        cr_expect(r <= 0x1p-7 && r >= 0x1p-16, "%s: bf16 vs fp32 relative difference %.3g not in [2^-16, 2^-7]",
                  lstm_out_name[i], r);
        free(f32[i]), free(b16[i]);
    }
    df_graph_free(g);
    lstm_free(&d);
}

/* bf16 is deterministic: the same bits run after run, graph after graph,
 * and on 1, 2 and 3 threads. */
Test(bf16_precision, lstm_same_bits_any_run_and_thread_count)
{
    REQUIRE_BF16();
    df_team_set_adapt(0);
    lstm_data d = lstm_inputs();
    df_graph *g1 = build_lstm(), *g2 = build_lstm();
    float *first[6], *again[6];
    df_set_num_threads(1);
    run_lstm(g1, d.in, DF_PRECISION_BF16, first);
    for (int pass = 0; pass < 4; pass++) {
        const int nth = pass < 2 ? 2 : 3;
        df_set_num_threads(nth);
        run_lstm(pass == 1 ? g2 : g1, d.in, DF_PRECISION_BF16, again);
        for (int i = 0; i < 6; i++) {
            cr_expect(memcmp(first[i], again[i], (size_t)lstm_numel[i] * sizeof(float)) == 0,
                      "%s: bf16 bits differ on %d threads (%s graph) from 1 thread", lstm_out_name[i], nth,
                      pass == 1 ? "a fresh" : "the same");
            free(again[i]);
        }
    }
    for (int i = 0; i < 6; i++) free(first[i]);
    df_set_num_threads(2);
    df_team_set_adapt(-1);
    df_graph_free(g1);
    df_graph_free(g2);
    lstm_free(&d);
}

/* The GRU's and SimpleRNN's recurrent products (cell_weight) in bf16:
 * h and the gradients of the inputs near fp32's and not equal to them. */
static df_graph *build_cell(bool gru, int64_t B, int64_t T, int64_t H, int *n_in)
{
    df_graph *g = df_graph_new();
    const int64_t G = gru ? 3 * H : H;
    df_node *in[4] = {PH(g, B, T, G), PH(g, H, G), PH(g, B, H), PH(g, B, T, H)};
    df_node *h = gru ? df_gru(g, in[0], in[1], NULL, in[2], true) : df_simple_rnn(g, in[0], in[1], in[2]), *grads[3];
    df_node *loss = df_sum(g, df_mul(g, h, in[3]), NULL, 0, false);
    cr_assert_eq(df_gradients(g, loss, NULL, 3, in, grads), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, h);
    for (int i = 0; i < 3; i++) df_graph_output(g, grads[i]);
    *n_in = 4;
    return g;
}

Test(bf16_precision, gru_and_simple_rnn_near_fp32)
{
    REQUIRE_BF16();
    enum { B = 8, T = 5, H = 96 };
    for (int gru = 0; gru < 2; gru++) {
        const int64_t G = gru ? 3 * H : H, numel[4] = {B * T * H, B * T * G, H * G, B * H};
        df_rng rng;
        df_rng_seed(&rng, 5);
        float *x = rand_buf(&rng, B * T * G, -1, 1), *w = rand_buf(&rng, H * G, -0.1f, 0.1f);
        float *h0 = rand_buf(&rng, B * H, -1, 1), *r = rand_buf(&rng, B * T * H, -1, 1);
        df_tensor in[4] = {F32(x, B, T, G), F32(w, H, G), F32(h0, B, H), F32(r, B, T, H)}, o[4];
        int n_in;
        df_graph *g = build_cell(gru, B, T, H, &n_in);
        float *f32[4];
        cr_assert_eq(df_graph_run(g, in, n_in, o, 4), DF_OK, "%s", df_last_error());
        for (int i = 0; i < 4; i++) {
            f32[i] = malloc((size_t)numel[i] * sizeof(float));
            memcpy(f32[i], o[i].data, (size_t)numel[i] * sizeof(float));
        }
        cr_assert_eq(df_set_precision(DF_PRECISION_BF16), DF_OK);
        cr_assert_eq(df_graph_run(g, in, n_in, o, 4), DF_OK, "%s", df_last_error());
        df_set_precision(DF_PRECISION_FP32);
        static const char *what[4] = {"h", "d xproj", "d w_rec", "d h0"};
        for (int i = 0; i < 4; i++) {
            const double d = rel_diff(o[i].data, f32[i], numel[i]);
            if (getenv("BF16_VERBOSE")) cr_log_info("%s %s: %.3g = 2^%.2f", gru ? "gru" : "rnn", what[i], d, log2(d));
            cr_expect(d <= 0x1p-7 && d >= 0x1p-16, "%s %s: bf16 vs fp32 relative difference %.3g not in [2^-16, 2^-7]",
                      gru ? "gru" : "simple_rnn", what[i], d);
            free(f32[i]);
        }
        df_graph_free(g);
        free(x), free(w), free(h0), free(r);
    }
}

/* With T = 1 and h0 = 0 the forward's recurrent product is exactly 0 in
 * either precision, so h, c and d xproj (the gate math, fp32 in both) must
 * match fp32 to the bit, while d h0 = dz @ w_rec^T is lstm_grad's bf16
 * product: near fp32's and not equal to it. */
Test(bf16_precision, lstm_gates_fp32_backward_product_bf16)
{
    REQUIRE_BF16();
    enum { B = 16, H = 256 };
    df_rng rng;
    df_rng_seed(&rng, 23);
    float *x = rand_buf(&rng, B * 4 * H, -2, 2), *w = rand_buf(&rng, H * 4 * H, -0.1f, 0.1f);
    float *h0 = calloc(B * H, sizeof(float)), *c0 = rand_buf(&rng, B * H, -1, 1), *r = rand_buf(&rng, B * H, -1, 1);
    cr_assert(h0);
    df_graph *g = df_graph_new();
    df_node *in[5] = {PH(g, B, 1, 4 * H), PH(g, H, 4 * H), PH(g, B, H), PH(g, B, H), PH(g, B, 1, H)};
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]), *grads[3];
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, h, in[4]), NULL, 0, false), NULL, 3, in, grads), DF_OK);
    df_graph_output(g, h);
    df_graph_output(g, grads[0]);
    df_graph_output(g, grads[2]);
    df_tensor t[5] = {F32(x, B, 1, 4 * H), F32(w, H, 4 * H), F32(h0, B, H), F32(c0, B, H), F32(r, B, 1, H)}, o[3];
    const int64_t numel[3] = {B * H, B * 4 * H, B * H};
    float *f32[3];
    cr_assert_eq(df_graph_run(g, t, 5, o, 3), DF_OK, "%s", df_last_error());
    for (int i = 0; i < 3; i++) {
        f32[i] = malloc((size_t)numel[i] * sizeof(float));
        memcpy(f32[i], o[i].data, (size_t)numel[i] * sizeof(float));
    }
    cr_assert_eq(df_set_precision(DF_PRECISION_BF16), DF_OK);
    cr_assert_eq(df_graph_run(g, t, 5, o, 3), DF_OK, "%s", df_last_error());
    df_set_precision(DF_PRECISION_FP32);
    cr_expect(memcmp(o[0].data, f32[0], (size_t)numel[0] * sizeof(float)) == 0, "h differs from fp32's");
    cr_expect(memcmp(o[1].data, f32[1], (size_t)numel[1] * sizeof(float)) == 0, "d xproj differs from fp32's");
    const double d = rel_diff(o[2].data, f32[2], numel[2]);
    cr_expect(d <= 0x1p-7 && d >= 0x1p-16, "d h0: bf16 vs fp32 relative difference %.3g not in [2^-16, 2^-7]", d);
    for (int i = 0; i < 3; i++) free(f32[i]);
    df_graph_free(g);
    free(x), free(w), free(h0), free(c0), free(r);
}

/* An odd H (45: unit slices of 32 and 13 on 2 threads; B*H*4H is past the
 * threaded size) puts the backward's gate block edges inside bf16 pairs,
 * where each thread packs dz_t in its own product: that path, too, near
 * fp32 and not equal to it, and the same bits on 1 and 2 threads. */
Test(bf16_precision, lstm_odd_units_near_fp32_same_bits)
{
    REQUIRE_BF16();
    enum { B = 40, T = 3, H = 45, OUTS = 5 };
    df_team_set_adapt(0);
    df_rng rng;
    df_rng_seed(&rng, 31);
    float *buf[5] = {rand_buf(&rng, B * T * 4 * H, -2, 2), rand_buf(&rng, H * 4 * H, -0.1f, 0.1f),
                     rand_buf(&rng, B * H, -1, 1), rand_buf(&rng, B * H, -1, 1), rand_buf(&rng, B * T * H, -1, 1)};
    df_tensor in[5] = {F32(buf[0], B, T, 4 * H), F32(buf[1], H, 4 * H), F32(buf[2], B, H), F32(buf[3], B, H),
                       F32(buf[4], B, T, H)};
    df_graph *g = df_graph_new();
    df_node *x[5] = {PH(g, B, T, 4 * H), PH(g, H, 4 * H), PH(g, B, H), PH(g, B, H), PH(g, B, T, H)}, *grads[4];
    df_node *h = df_lstm(g, x[0], x[1], x[2], x[3]);
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, h, x[4]), NULL, 0, false), NULL, 4, x, grads), DF_OK);
    df_graph_output(g, h);
    for (int i = 0; i < 4; i++) df_graph_output(g, grads[i]);
    static const char *what[OUTS] = {"h", "d xproj", "d w_rec", "d h0", "d c0"};
    const int64_t numel[OUTS] = {B * T * H, B * T * 4 * H, H * 4 * H, B * H, B * H};
    float *ref[3][OUTS];                                   /* fp32 2 threads, bf16 1 thread, bf16 2 threads */
    for (int run = 0; run < 3; run++) {
        df_set_num_threads(run == 1 ? 1 : 2);
        cr_assert_eq(df_set_precision(run ? DF_PRECISION_BF16 : DF_PRECISION_FP32), DF_OK);
        df_tensor o[OUTS];
        cr_assert_eq(df_graph_run(g, in, 5, o, OUTS), DF_OK, "run %d: %s", run, df_last_error());
        df_set_precision(DF_PRECISION_FP32);
        for (int i = 0; i < OUTS; i++) {
            ref[run][i] = malloc((size_t)numel[i] * sizeof(float));
            cr_assert(ref[run][i]);
            memcpy(ref[run][i], o[i].data, (size_t)numel[i] * sizeof(float));
        }
    }
    for (int i = 0; i < OUTS; i++) {
        const double d = rel_diff(ref[1][i], ref[0][i], numel[i]);
        cr_expect(d <= 0x1p-7 && d >= 0x1p-16, "H=45 %s: bf16 vs fp32 relative difference %.3g not in [2^-16, 2^-7]",
                  what[i], d);
        cr_expect(memcmp(ref[1][i], ref[2][i], (size_t)numel[i] * sizeof(float)) == 0,
                  "H=45 %s: bf16 bits differ on 2 threads from 1", what[i]);
        for (int run = 0; run < 3; run++) free(ref[run][i]);
    }
    df_set_num_threads(2);
    df_team_set_adapt(-1);
    df_graph_free(g);
    for (int i = 0; i < 5; i++) free(buf[i]);
}

/* ------------------------------------------------ the fused attention op */
/* attention and attention_qkv (forward and gradients) take bf16 q k^T, P v
 * and the backward's products under bf16, the softmax staying fp32: each
 * output against the fp32 op within 2^-7 relative (Frobenius) and at least
 * 2^-16 from it (fp32's tiles and df_sgemm agree to ~2^-22: bf16 must
 * really be used), and the same bits on 1 and 2 threads. Inputs in [-1, 1]
 * and the models' scale 1/sqrt(d) keep the scores near 1, so their
 * rounding (2^-9 of a score) moves the probabilities by about as much. */
static float *copy_out(const df_tensor *o, int64_t n)
{
    float *c = malloc((size_t)n * sizeof(float));
    cr_assert(c);
    memcpy(c, o->data, (size_t)n * sizeof(float));
    return c;
}

/* Runs g (inputs in[0, n_in), outputs what[0, n_out) of numel[i]) in fp32
 * on 2 threads and in bf16 on 1 and 2 threads, and checks the three runs as
 * the section says. */
static void check_bf16_against_fp32(const char *name, df_graph *g, const df_tensor *in, int n_in, int n_out,
                                    const char *const *what, const int64_t *numel)
{
    df_team_set_adapt(0);
    float *got[3][4];
    for (int run = 0; run < 3; run++) {
        df_set_num_threads(run == 1 ? 1 : 2);
        cr_assert_eq(df_set_precision(run ? DF_PRECISION_BF16 : DF_PRECISION_FP32), DF_OK);
        df_tensor o[4];
        cr_assert_eq(df_graph_run(g, in, n_in, o, n_out), DF_OK, "%s run %d: %s", name, run, df_last_error());
        df_set_precision(DF_PRECISION_FP32);
        for (int i = 0; i < n_out; i++) got[run][i] = copy_out(&o[i], numel[i]);
    }
    for (int i = 0; i < n_out; i++) {
        const double d = rel_diff(got[1][i], got[0][i], numel[i]);
        if (getenv("BF16_VERBOSE")) cr_log_info("%s %s: bf16 vs fp32 %.3g = 2^%.2f", name, what[i], d, log2(d));
        cr_expect(d <= 0x1p-7 && d >= 0x1p-16, "%s %s: bf16 vs fp32 relative difference %.3g not in [2^-16, 2^-7]",
                  name, what[i], d);
        cr_expect(memcmp(got[1][i], got[2][i], (size_t)numel[i] * sizeof(float)) == 0,
                  "%s %s: bf16 bits differ on 2 threads from 1", name, what[i]);
        for (int run = 0; run < 3; run++) free(got[run][i]);
    }
    df_set_num_threads(2);
    df_team_set_adapt(-1);
}

/* attention_qkv as char-gpt runs it, (B, T, 3C) with H heads, its output
 * and d qkv (for the gradient of sum(y * r), r random). */
static void check_attention_qkv(int64_t B, int64_t T, int64_t C, int H, bool causal)
{
    df_rng rng;
    df_rng_seed(&rng, (uint64_t)(B * 1000003 + T * 1009 + C * 7 + H + causal));
    float *x = rand_buf(&rng, B * T * 3 * C, -1, 1), *r = rand_buf(&rng, B * T * C, -1, 1);
    df_graph *g = df_graph_new();
    df_node *qkv = PH(g, B, T, 3 * C), *w = PH(g, B, T, C), *dqkv;
    df_node *y = df_attention_qkv(g, qkv, H, causal, 1.0f / sqrtf((float)(C / H)));
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, y, w), NULL, 0, false), NULL, 1, &qkv, &dqkv), DF_OK);
    df_graph_output(g, y);
    df_graph_output(g, dqkv);
    char name[96];
    snprintf(name, sizeof name, "attention_qkv B=%ld T=%ld C=%ld H=%d%s", (long)B, (long)T, (long)C, H,
             causal ? " causal" : "");
    df_tensor in[2] = {F32(x, B, T, 3 * C), F32(r, B, T, C)};
    static const char *const what[2] = {"y", "d qkv"};
    check_bf16_against_fp32(name, g, in, 2, 2, what, (const int64_t[]){B * T * C, B * T * 3 * C});
    df_graph_free(g);
    free(x), free(r);
}

/* char-gpt's heads (d = 32, T = 64: one block), several blocks with a
 * last short one (T = 100), d odd (an odd last k pairs with zero) and not
 * a multiple of 16, not causal. */
Test(bf16_precision, attention_qkv_near_fp32_same_bits)
{
    REQUIRE_BF16();
    check_attention_qkv(3, 64, 128, 4, true);
    check_attention_qkv(2, 100, 60, 4, true);
    check_attention_qkv(2, 37, 21, 3, false);
    check_attention_qkv(1, 130, 128, 2, true);
}

/* df_attention on dense q, k, v: fewer queries than keys, by an odd
 * offset (causal blocks whose first or last visible term is odd, inside a
 * bf16 pair), and dv != d; y, dq, dk and dv. */
Test(bf16_precision, attention_near_fp32_same_bits)
{
    REQUIRE_BF16();
    enum { N = 3, TQ = 70, TK = 91, D = 24, DV = 40 };
    df_rng rng;
    df_rng_seed(&rng, 17);
    float *q = rand_buf(&rng, N * TQ * D, -1, 1), *k = rand_buf(&rng, N * TK * D, -1, 1);
    float *v = rand_buf(&rng, N * TK * DV, -1, 1), *r = rand_buf(&rng, N * TQ * DV, -1, 1);
    for (int causal = 0; causal < 2; causal++) {
        df_graph *g = df_graph_new();
        df_node *x[3] = {PH(g, N, TQ, D), PH(g, N, TK, D), PH(g, N, TK, DV)}, *w = PH(g, N, TQ, DV), *grads[3];
        df_node *y = df_attention(g, x[0], x[1], x[2], causal, 1.0f / sqrtf((float)D));
        cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, y, w), NULL, 0, false), NULL, 3, x, grads), DF_OK);
        df_graph_output(g, y);
        for (int i = 0; i < 3; i++) df_graph_output(g, grads[i]);
        df_tensor in[4] = {F32(q, N, TQ, D), F32(k, N, TK, D), F32(v, N, TK, DV), F32(r, N, TQ, DV)};
        static const char *const what[4] = {"y", "dq", "dk", "dv"};
        check_bf16_against_fp32(causal ? "attention causal" : "attention", g, in, 4, 4, what,
                                (const int64_t[]){N * TQ * DV, N * TQ * D, N * TK * D, N * TK * DV});
        df_graph_free(g);
    }
    free(q), free(k), free(v), free(r);
}

/* x rounded to bf16, nearest even (finite x). */
static double to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* One head of attention and its gradients in double, every product's
 * operands rounded to bf16 as the op's bf16 tiles round them, the softmax
 * unrounded: with Tk <= ATT_BK (one key block) the forward's probabilities
 * are exp(s - row max), normalised after P v. q (Tq, d), k (Tk, d), v (Tk,
 * dv), dO (Tq, dv) -> y (Tq, dv), dq, dk, dv. */
typedef struct att_ref_case { int64_t Tq, Tk, d, dv; bool causal; float scale; } att_ref_case;

static void attention_bf16_reference(const att_ref_case *c, const float *q, const float *k, const float *v,
                                     const float *dO, double *y, double *dq, double *dk, double *dv)
{
    const int64_t Tq = c->Tq, Tk = c->Tk, d = c->d, nv = c->dv, offset = Tk - Tq;
    double *P = calloc((size_t)(Tq * Tk), sizeof(double)), *E = calloc((size_t)(Tq * Tk), sizeof(double));
    cr_assert(P && E);
    memset(dk, 0, sizeof(double) * (size_t)(Tk * d));
    memset(dv, 0, sizeof(double) * (size_t)(Tk * nv));
    for (int64_t i = 0; i < Tq; i++) {
        const int64_t seen = c->causal && i + offset + 1 < Tk ? i + offset + 1 : Tk;
        double s[256], max = -INFINITY, l = 0;
        for (int64_t j = 0; j < seen; j++) {
            double dot = 0;
            for (int64_t x = 0; x < d; x++) dot += to_bf16(q[i * d + x]) * to_bf16(k[j * d + x]);
            s[j] = c->scale * dot;
            max = s[j] > max ? s[j] : max;
        }
        for (int64_t j = 0; j < seen; j++) l += (E[i * Tk + j] = exp(s[j] - max));
        for (int64_t j = 0; j < seen; j++) P[i * Tk + j] = E[i * Tk + j] / l;
        double D = 0;
        for (int64_t x = 0; x < nv; x++) {
            double o = 0;
            for (int64_t j = 0; j < seen; j++) o += to_bf16((float)E[i * Tk + j]) * to_bf16(v[j * nv + x]);
            y[i * nv + x] = o / l;
            D += dO[i * nv + x] * (o / l);
        }
        for (int64_t x = 0; x < d; x++) dq[i * d + x] = 0;
        for (int64_t j = 0; j < seen; j++) {
            double dp = 0;
            for (int64_t x = 0; x < nv; x++) dp += to_bf16(dO[i * nv + x]) * to_bf16(v[j * nv + x]);
            const double p = to_bf16((float)P[i * Tk + j]), ds = to_bf16((float)(P[i * Tk + j] * (dp - D)));
            for (int64_t x = 0; x < nv; x++) dv[j * nv + x] += p * to_bf16(dO[i * nv + x]);
            for (int64_t x = 0; x < d; x++) {
                dq[i * d + x] += c->scale * ds * to_bf16(k[j * d + x]);
                dk[j * d + x] += c->scale * ds * to_bf16(q[i * d + x]);
            }
        }
    }
    free(P), free(E);
}

static double rel_diff_double(const float *a, const double *b, int64_t n)
{
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) e += (a[i] - b[i]) * (a[i] - b[i]), r += b[i] * b[i];
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

/* Each product of the op rounds its own operands to bf16: the op's outputs
 * agree with the reference above to 2^-18 (fp32 sums and exps: ~2^-23), where an
 * fp32 product anywhere leaves its output ~2^-9 off it (the fp32 op, which
 * the test also checks that far off, shows the size: the reference is not
 * fp32 in disguise). One key block, causal with an odd offset and not. */
Test(bf16_precision, attention_rounds_each_product_operand)
{
    REQUIRE_BF16();
    enum { N = 2 };
    const att_ref_case cases[] = {{40, 61, 24, 40, true, 0.2f}, {33, 50, 20, 17, false, 0.3f}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const att_ref_case *c = &cases[ci];
        df_rng rng;
        df_rng_seed(&rng, 23 + ci);
        const int64_t nq = N * c->Tq * c->d, nk = N * c->Tk * c->d, nvv = N * c->Tk * c->dv, ny = N * c->Tq * c->dv;
        float *q = rand_buf(&rng, nq, -1, 1), *k = rand_buf(&rng, nk, -1, 1), *v = rand_buf(&rng, nvv, -1, 1);
        float *r = rand_buf(&rng, ny, -1, 1);
        double *ref[4] = {malloc(sizeof(double) * ny), malloc(sizeof(double) * nq), malloc(sizeof(double) * nk),
                          malloc(sizeof(double) * nvv)};
        for (int i = 0; i < 4; i++) cr_assert(ref[i]);
        for (int64_t p = 0; p < N; p++)
            attention_bf16_reference(c, q + p * c->Tq * c->d, k + p * c->Tk * c->d, v + p * c->Tk * c->dv,
                                     r + p * c->Tq * c->dv, ref[0] + p * c->Tq * c->dv, ref[1] + p * c->Tq * c->d,
                                     ref[2] + p * c->Tk * c->d, ref[3] + p * c->Tk * c->dv);
        df_graph *g = df_graph_new();
        df_node *x[3] = {PH(g, N, c->Tq, c->d), PH(g, N, c->Tk, c->d), PH(g, N, c->Tk, c->dv)}, *grads[3];
        df_node *w = PH(g, N, c->Tq, c->dv), *y = df_attention(g, x[0], x[1], x[2], c->causal, c->scale);
        cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, y, w), NULL, 0, false), NULL, 3, x, grads), DF_OK);
        df_graph_output(g, y);
        for (int i = 0; i < 3; i++) df_graph_output(g, grads[i]);
        df_tensor in[4] = {F32(q, N, c->Tq, c->d), F32(k, N, c->Tk, c->d), F32(v, N, c->Tk, c->dv),
                           F32(r, N, c->Tq, c->dv)}, o[4];
        static const char *const what[4] = {"y", "dq", "dk", "dv"};
        const int64_t numel[4] = {ny, nq, nk, nvv};
        for (int bf16 = 0; bf16 < 2; bf16++) {
            cr_assert_eq(df_set_precision(bf16 ? DF_PRECISION_BF16 : DF_PRECISION_FP32), DF_OK);
            cr_assert_eq(df_graph_run(g, in, 4, o, 4), DF_OK, "%s", df_last_error());
            df_set_precision(DF_PRECISION_FP32);
            for (int i = 0; i < 4; i++) {
                const double dd = rel_diff_double(o[i].data, ref[i], numel[i]);
                if (getenv("BF16_VERBOSE"))
                    cr_log_info("case %zu %s %s vs the bf16 reference: %.3g = 2^%.2f", ci, bf16 ? "bf16" : "fp32",
                                what[i], dd, log2(dd));
                if (bf16)
                    cr_expect(dd <= 0x1p-18, "case %zu %s: bf16 op vs its bf16-rounded reference %.3g > 2^-18", ci,
                              what[i], dd);
                else
                    cr_expect(dd >= 0x1p-11, "case %zu %s: the fp32 op is within %.3g < 2^-11 of the bf16 reference",
                              ci, what[i], dd);
            }
        }
        df_graph_free(g);
        free(q), free(k), free(v), free(r);
        for (int i = 0; i < 4; i++) free(ref[i]);
    }
}

/* ---------------------------------------------- the fp32 parts of the step */
/* Adam's update (vectorised, with a tail, on the pool's threads) is the
 * op's Keras formula to the bit, evaluated here in its order, 3 steps. */
__attribute__((optimize("fp-contract=off"))) static void adam_reference(float *w, float *m, float *v, const float *g,
                                                                        int64_t n, int t)
{
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
    const float lr_t = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        w[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

Test(bf16_step_fp32_parts, adam_update_is_the_formula_to_the_bit)
{
    enum { N = 70001 };
    df_rng rng;
    df_rng_seed(&rng, 41);
    linear_model am = {df_variable_new("w", DF_F32, 1, SHAPE(N), df_init_uniform(-1, 1), &rng),
                       df_adam_new(1e-3f, 0.9f, 0.999f, 1e-7f)};
    cr_assert(am.w && am.opt);
    float *c = rand_buf(&rng, N, -0.01f, 0.01f), *w = malloc(N * sizeof(float));
    float *m = calloc(N, sizeof(float)), *v = calloc(N, sizeof(float));
    cr_assert(w && m && v);
    memcpy(w, df_variable_tensor(am.w).data, N * sizeof(float));
    df_function *f = df_function_new("adam_step", linear_model_step, &am);
    df_tensor in = F32(c, N), loss;
    for (int t = 1; t <= 3; t++) {
        cr_assert_eq(df_function_call(f, &in, 1, &loss, 1), DF_OK, "%s", df_last_error());
        adam_reference(w, m, v, c, N, t);
        const float *got = df_variable_tensor(am.w).data;
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < N; i++)
            if (memcmp(&got[i], &w[i], sizeof(float)) != 0 && bad++ == 0) first = i;
        cr_assert_eq(bad, 0, "step %d: %ld of %d weights differ from the formula, first [%ld] %a vs %a", t, (long)bad, N,
                     (long)first, first >= 0 ? got[first] : 0.0f, first >= 0 ? w[first] : 0.0f);
    }
    df_function_free(f);
    df_optimizer_free(am.opt);
    df_variable_free(am.w);
    free(c), free(w), free(m), free(v);
}

/* ------------------------------------------------------- refusal, anywhere */
Test(bf16_refusal, missing_feature_is_named)
{
    df_gemm_bf16_pretend_missing(true);
    cr_assert_null(df_gemm_kernels_for(DF_GEMM_BF16));
    df_status st = df_set_precision(DF_PRECISION_BF16);
    cr_assert_eq(st, DF_ERR_UNSUPPORTED, "df_set_precision(bf16) without the feature: status %d", st);
    cr_assert(strstr(df_last_error(), "avx512_bf16"), "message does not name the feature: %s", df_last_error());
    cr_assert_eq(df_get_precision(), DF_PRECISION_FP32, "a refused precision was kept");
    df_function *f = df_function_new("f", build_matmul, NULL);
    st = df_function_set_precision(f, DF_PRECISION_BF16);
    cr_assert_eq(st, DF_ERR_UNSUPPORTED, "df_function_set_precision(bf16) without the feature: status %d", st);
    cr_assert(strstr(df_last_error(), "avx512_bf16"), "message does not name the feature: %s", df_last_error());
    df_function_free(f);
    cr_assert_eq(df_precision_check((df_precision)7), DF_ERR_ARG);
    df_gemm_bf16_pretend_missing(false);
    if (!df_gemm_bf16_missing()) cr_assert_eq(df_set_precision(DF_PRECISION_BF16), DF_OK, "%s", df_last_error());
    df_set_precision(DF_PRECISION_FP32);
}
