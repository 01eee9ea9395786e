/* test_gemm.c — dagflow's GEMM/GEMV (src/gemm.c, src/gemm_kernels.c) on every
 * kernel path this CPU has, and OpenBLAS and the AUTO choice, against a naive
 * double-precision reference at awkward shapes, both transposes, row strides
 * wider than the rows, alpha and beta; the bits must not depend on the thread
 * count; DF_GEMM_ISA must route df_sgemm. A path the CPU lacks is logged and
 * its tests pass without checking anything. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base.h"

static const char *path_name(df_gemm_path p)
{
    static const char *names[] = {"auto", "openblas", "portable", "avx2", "avx512", "bf16"};
    return names[p];
}

/* false (and logged) when the CPU cannot run path p. */
static bool path_runs_here(df_gemm_path p)
{
    if (p == DF_GEMM_AUTO || p == DF_GEMM_OPENBLAS || df_gemm_kernels_for(p)) return true;
    cr_log_info("%s kernels: this CPU lacks the ISA, nothing checked", path_name(p));
    return false;
}

#define GEMM_PROBLEM_SEED 0x9E3779B97F4A7C15u
#include "gemm_problem.h"

static void run(df_gemm_path path, problem *p)
{
    memcpy(p->C, p->C0, sizeof(float) * (size_t)(p->M * p->ldc));
    df_sgemm_path(path, p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta, p->C, p->ldc);
}

/* C against the double reference, with the bound of a K-term float sum:
 * (K + 2) eps * (|alpha| sum |a b| + |beta c|). */
static void check(df_gemm_path path, const problem *p)
{
    const double gamma = (p->K + 2) * (double)FLT_EPSILON;
    for (int64_t i = 0; i < p->M; i++) {
        for (int64_t j = 0; j < p->ldc; j++) {
            const float got = p->C[i * p->ldc + j];
            if (j >= p->N) {
                if (got != SENTINEL)
                    cr_assert_fail("%s %s%s M=%ld N=%ld K=%ld: wrote C[%ld][%ld] past column N", path_name(path),
                                   p->ta ? "ta " : "", p->tb ? "tb" : "", (long)p->M, (long)p->N, (long)p->K,
                                   (long)i, (long)j);
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
            const double tol = gamma * (fabs(p->alpha) * mag + fabs(p->beta * c0)) + 1e-30;
            if (!(fabs(got - want) <= tol))
                cr_assert_fail("%s %s%s M=%ld N=%ld K=%ld alpha=%g beta=%g: C[%ld][%ld] = %.9g, want %.9g (tol %.3g)",
                               path_name(path), p->ta ? "ta " : "", p->tb ? "tb" : "", (long)p->M, (long)p->N,
                               (long)p->K, p->alpha, p->beta, (long)i, (long)j, got, want, tol);
        }
    }
}

static void check_product(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                          float beta, int64_t pad)
{
    problem p = make_problem(ta, tb, M, N, K, alpha, beta, pad);
    run(path, &p);
    check(path, &p);
    free_problem(&p);
}

/* Every combination of {1, 7, 17, 33} rows, columns and depth, with all four
 * transposes, beta 0 and 1, strides wider than the rows (all on one thread:
 * they are below the size worth splitting). */
static void small_shapes(df_gemm_path path)
{
    if (!path_runs_here(path)) return;
    static const int64_t dims[] = {1, 7, 17, 33};
    for (int mi = 0; mi < 4; mi++)
        for (int ni = 0; ni < 4; ni++)
            for (int ki = 0; ki < 4; ki++)
                for (int t = 0; t < 4; t++) {
                    check_product(path, t & 1, t & 2, dims[mi], dims[ni], dims[ki], 1.0f, 0.0f, 3);
                    check_product(path, t & 1, t & 2, dims[mi], dims[ni], dims[ki], -0.75f, 1.0f, 5);
                }
}

/* Shapes that cross the cache blocks (KC = 256, MC = 128, NC = 512) and
 * leave edge tiles in both dimensions, the one-row and one-column GEMVs at
 * 1000, and K = 0 (C = beta C). Threads on (the big ones split). */
static void large_shapes(df_gemm_path path)
{
    if (!path_runs_here(path)) return;
    static const int64_t shapes[][3] = {
        {1000, 33, 17}, {33, 1000, 7}, {100, 100, 1000}, {137, 531, 600}, {7, 17, 1000},
        {1, 1000, 33}, {1, 33, 1000}, {1000, 1, 100}, {100, 1, 1000}, {1, 1, 1000}, {1, 1000, 1000},
        {1000, 1000, 1}, {17, 33, 0}, {1, 33, 0},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            check_product(path, t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 0);
            check_product(path, t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 0.5f, 1.0f, 9);
        }
}

/* The same product on 1, 2 and 3 threads: identical bits (and correct).
 * Each shape is big enough to be split among threads (the GEMVs from 2^22
 * multiply-adds, src/gemm.c). */
static void thread_count_invariance(df_gemm_path path)
{
    if (!path_runs_here(path)) return;
    static const int64_t shapes[][3] = {
        {300, 700, 600}, {700, 300, 600}, {64, 4096, 300}, {1, 4100, 1100}, {4100, 1, 1100}, {1, 2900, 1500},
        /* char-gpt-like: 128 columns (48-column panels split unevenly, so
         * the rows are split), 65 rows, and K = 128 with 400 columns (A
         * read in place, src/gemm.c) */
        {131, 128, 770}, {65, 130, 700}, {770, 400, 128},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            problem p = make_problem(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 1.0f, 1);
            const size_t bytes = sizeof(float) * (size_t)(p.M * p.ldc);
            float *first = malloc(bytes);
            cr_assert(first);
            for (int nth = 1; nth <= 3; nth++) {
                df_set_num_threads(nth);
                run(path, &p);
                if (nth == 1) {
                    check(path, &p);
                    memcpy(first, p.C, bytes);
                } else if (memcmp(first, p.C, bytes) != 0) {
                    int64_t at = 0;
                    while (first[at] == p.C[at]) at++;
                    cr_assert_fail("%s %s%s M=%ld N=%ld K=%ld: %d threads give C[%ld][%ld] = %.9g, 1 thread %.9g",
                                   path_name(path), p.ta ? "ta " : "", p.tb ? "tb" : "", (long)p.M, (long)p.N,
                                   (long)p.K, nth, (long)(at / p.ldc), (long)(at % p.ldc), p.C[at], first[at]);
                }
            }
            free(first);
            free_problem(&p);
        }
}

/* op(B) packed once (df_gemm_pack_b) and multiplied on nth threads: correct
 * against the reference, C's padding untouched, and (M, N > 1) the same bits
 * as df_sgemm_path on the unpacked B. */
static void check_packed(df_gemm_path path, bool tb, int64_t M, int64_t N, int64_t K, float beta, int nth)
{
    problem p = make_problem(false, tb, M, N, K, 1.0f, beta, 3);
    run(path, &p);
    check(path, &p);
    const size_t bytes = sizeof(float) * (size_t)(p.M * p.ldc);
    float *want = malloc(bytes), *buf = aligned_alloc(64, (df_gemm_packed_b_floats(path, K, N) * 4 + 63) / 64 * 64);
    cr_assert(want && buf);
    memcpy(want, p.C, bytes);
    df_gemm_packed_b pb;
    cr_assert(df_gemm_pack_b(path, &pb, tb, K, N, p.B, p.ldb, buf), "%s: pack refused", path_name(path));
    memcpy(p.C, p.C0, bytes);
    df_set_num_threads(nth);
    cr_assert(df_sgemm_packed(M, 1.0f, p.A, p.lda, &pb, beta, p.C, p.ldc));
    df_set_num_threads(2);
    check(path, &p);
    /* one row or column: df_sgemm takes its GEMV kernels, other sums */
    if (M > 1 && N > 1 && memcmp(want, p.C, bytes) != 0) {
        int64_t at = 0;
        while (want[at] == p.C[at] || (want[at] != want[at] && p.C[at] != p.C[at])) at++;
        cr_assert_fail("%s packed%s M=%ld N=%ld K=%ld beta=%g, %d threads: C[%ld][%ld] = %.9g, unpacked %.9g",
                       path_name(path), tb ? " tb" : "", (long)M, (long)N, (long)K, beta, nth, (long)(at / p.ldc),
                       (long)(at % p.ldc), p.C[at], want[at]);
    }
    free(want);
    free(buf);
    free_problem(&p);
}

/* Awkward sizes around the tile (mr, nr) and the k block (KC = 256), and
 * the recurrent cells' shapes, split among 1 to 3 threads. */
static void packed_shapes(df_gemm_path path)
{
    if (!path_runs_here(path)) return;
    cr_assert_eq(df_gemm_pack_b(DF_GEMM_OPENBLAS, &(df_gemm_packed_b){0}, false, 8, 8, NULL, 8, NULL), false);
    static const int64_t dims[] = {1, 7, 17, 33, 300};
    for (int mi = 0; mi < 5; mi++)
        for (int ni = 0; ni < 5; ni++)
            for (int ki = 0; ki < 5; ki++)
                for (int tb = 0; tb < 2; tb++)
                    check_packed(path, tb, dims[mi], dims[ni], dims[ki], tb ? 1.0f : 0.0f, 1);
    static const int64_t big[][3] = {{64, 1000, 600}, {1000, 33, 300}, {64, 768, 256}};
    for (size_t s = 0; s < sizeof big / sizeof big[0]; s++)
        for (int nth = 1; nth <= 3; nth++)
            for (int tb = 0; tb < 2; tb++) check_packed(path, tb, big[s][0], big[s][1], big[s][2], 1.0f, nth);
}

#define PATH_TESTS(suffix, path)                                                   \
    Test(gemm_##suffix, small_shapes) { small_shapes(path); }                      \
    Test(gemm_##suffix, large_shapes, .timeout = 120) { large_shapes(path); }      \
    Test(gemm_##suffix, packed_b, .timeout = 120) { packed_shapes(path); }         \
    Test(gemm_##suffix, thread_count_invariance, .timeout = 120) { thread_count_invariance(path); }

PATH_TESTS(avx512, DF_GEMM_AVX512)
PATH_TESTS(avx2, DF_GEMM_AVX2)
PATH_TESTS(portable, DF_GEMM_PORTABLE)

/* OpenBLAS and the AUTO dispatch: correct at every shape class (OpenBLAS's
 * own bits may depend on its thread count, so no invariance test). */
Test(gemm_openblas, small_shapes) { small_shapes(DF_GEMM_OPENBLAS); }
Test(gemm_openblas, large_shapes, .timeout = 120) { large_shapes(DF_GEMM_OPENBLAS); }
Test(gemm_auto, small_shapes) { small_shapes(DF_GEMM_AUTO); }
Test(gemm_auto, large_shapes, .timeout = 120) { large_shapes(DF_GEMM_AUTO); }

/* One-row and one-column products never go to OpenBLAS (its GEMV collapses
 * when the machine is busy), whatever OpenBLAS's core. */
Test(gemm_auto, gemv_shapes_on_dagflows_kernels)
{
    static const int64_t shapes[][3] = {{1, 4096, 1024}, {1, 65, 1024}, {1, 4096, 256}, {4096, 1, 1024}, {1, 8192, 8192}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tb = 0; tb < 2; tb++)
            cr_assert_neq(df_sgemm_chosen_path(false, tb, shapes[s][0], shapes[s][1], shapes[s][2]), DF_GEMM_OPENBLAS,
                          "(%ld,%ld,%ld)%s goes to OpenBLAS", (long)shapes[s][0], (long)shapes[s][1],
                          (long)shapes[s][2], tb ? " tb" : "");
}

/* Weight gradients x^T @ dy with few columns (char-gpt's, K = 768 tokens;
 * the char-rnn dense layer's, K = 6400) run on dagflow's kernels wherever it
 * has vector ones: a tie with a tuned OpenBLAS on one thread, ahead on two
 * (the threads share op(B)), and OpenBLAS's threads collapse on a loaded
 * machine. */
Test(gemm_auto, short_k_transposed_a_on_dagflows_kernels)
{
    if (!df_gemm_kernels_for(DF_GEMM_AVX2)) {
        cr_log_info("no AVX2: AUTO may send every product to OpenBLAS, nothing checked");
        return;
    }
    static const int64_t shapes[][3] = {{128, 128, 768}, {512, 128, 768}, {65, 128, 768}, {128, 65, 1024}, {1024, 65, 6400}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        cr_assert_neq(df_sgemm_chosen_path(true, false, shapes[s][0], shapes[s][1], shapes[s][2]), DF_GEMM_OPENBLAS,
                      "(%ld,%ld,%ld) ta goes to OpenBLAS", (long)shapes[s][0], (long)shapes[s][1], (long)shapes[s][2]);
}

/* DF_GEMM_ISA routes df_sgemm (each Criterion test runs in its own process,
 * so the variable is read here for the first time). */
static void env_routes(const char *value, df_gemm_path want)
{
    cr_assert_eq(setenv("DF_GEMM_ISA", value, 1), 0);
    cr_assert_eq(df_gemm_requested_path(), want, "DF_GEMM_ISA=%s gave path %s, want %s", value,
                 path_name(df_gemm_requested_path()), path_name(want));
    if (!path_runs_here(want)) return;
    /* and df_sgemm gives that path's bits */
    problem p = make_problem(false, true, 70, 90, 300, 1.0f, 0.0f, 0);
    const size_t bytes = sizeof(float) * (size_t)(p.M * p.ldc);
    float *direct = malloc(bytes);
    cr_assert(direct);
    run(want, &p);
    memcpy(direct, p.C, bytes);
    df_sgemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A, p.lda, p.B, p.ldb, p.beta, p.C, p.ldc);
    cr_assert(memcmp(direct, p.C, bytes) == 0, "df_sgemm under DF_GEMM_ISA=%s differs from the %s path", value,
              path_name(want));
    free(direct);
    free_problem(&p);
}

Test(gemm_env, portable) { env_routes("portable", DF_GEMM_PORTABLE); }
Test(gemm_env, avx2) { env_routes("avx2", DF_GEMM_AVX2); }
Test(gemm_env, avx512) { env_routes("AVX512", DF_GEMM_AVX512); }
Test(gemm_env, openblas) { env_routes("openblas", DF_GEMM_OPENBLAS); }
Test(gemm_env, unknown_is_auto)
{
    cr_assert_eq(setenv("DF_GEMM_ISA", "sse9", 1), 0);
    cr_assert_eq(df_gemm_requested_path(), DF_GEMM_AUTO);
}

/* Kernel paths give results of the same quality, not the same bits: a sanity
 * check that the paths really differ in code (else the per-path tests would
 * test one kernel three times). */
Test(gemm_paths, distinct_kernel_sets)
{
    const void *p = df_gemm_kernels_for(DF_GEMM_PORTABLE), *a2 = df_gemm_kernels_for(DF_GEMM_AVX2),
               *a5 = df_gemm_kernels_for(DF_GEMM_AVX512);
    cr_assert(p != NULL);
    cr_assert(p != a2 && p != a5);
    cr_assert(a2 == NULL || a5 == NULL || a2 != a5);
    cr_log_info("kernel sets on this CPU: portable%s%s", a2 ? " avx2" : "", a5 ? " avx512" : "");
}
