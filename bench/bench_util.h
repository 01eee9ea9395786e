/* bench_util.h — small helpers shared by the benchmark programs: a monotonic
 * clock, medians, the peak RSS and an OpenBLAS sgemm reference rate measured
 * in the calling process (so it uses the same OpenBLAS kernels as the run). */
#ifndef DF_BENCH_UTIL_H
#define DF_BENCH_UTIL_H

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts v in place); v[0] is the minimum afterwards. */
static inline double bench_median(double *v, int n)
{
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set of this process so far, in MiB. */
static inline double bench_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* The OpenBLAS core type in use (e.g. "Haswell", "SkylakeX"). */
static inline const char *bench_corename(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "?";
}

/* Median GFLOP/s of row-major C(M,N) = A(M,K) @ B(K,N) through cblas_sgemm,
 * over `reps` timed calls after 3 warm-up calls. min_ms gets the fastest call. */
static inline double bench_sgemm_gflops(int M, int N, int K, int reps, double *median_ms, double *min_ms)
{
    float *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
    float *C = malloc((size_t)M * N * sizeof *C);
    double *ms = malloc((size_t)reps * sizeof *ms);
    if (!A || !B || !C || !ms) {
        free(A); free(B); free(C); free(ms);
        return 0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    for (int r = 0; r < 3; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        ms[r] = (bench_now() - t) * 1e3;
    }
    double med = bench_median(ms, reps);
    if (median_ms) *median_ms = med;
    if (min_ms) *min_ms = ms[0];
    free(A); free(B); free(C); free(ms);
    return 2.0 * M * N * K / (med * 1e-3) / 1e9;
}

#endif
