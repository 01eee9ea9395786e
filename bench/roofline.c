/* roofline.c — the machine's limits measured in one run, and the seed train
 * step's GEMM shapes against them:
 *   - FMA peak: a loop of 12 independent FMA accumulators (AVX-512 and
 *     AVX2+FMA, whichever the CPU has), on 1 thread and on all threads;
 *   - read bandwidth from L2 (a 512 KiB buffer per thread), L3 (8 MiB in
 *     all) and DRAM (256 MiB in all), summed with vector loads, 1 and all
 *     threads;
 *   - df_sgemm (AUTO dispatch) at the shapes of the char-rnn seed step
 *     (B64 T100 E256 H1024 V65) on all threads, as GFLOP/s and % of the
 *     all-thread FMA peak of the widest ISA.
 * Each figure is the median of --rounds rounds.
 *
 *   bench/roofline [--rounds 7]
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base.h"
#include "bench_util.h"

#define FMA_ITERS 20000000L

/* 12 chains so that FMA latency (4 cycles) x throughput (2-3 per cycle) is covered. */
/* Twelve named accumulators (an array might be kept in memory). */
#define FMA12(fma)                                                                                      \
    do {                                                                                                \
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);                 \
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);                 \
        a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c);             \
    } while (0)

__attribute__((target("avx512f"), noinline)) static float fma_loop_avx512(long iters)
{
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3),
           a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7),
           a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (long it = 0; it < iters; it++) FMA12(_mm512_fmadd_ps);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) static float fma_loop_avx2(long iters)
{
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3),
           a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7),
           a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (long it = 0; it < iters; it++) FMA12(_mm256_fmadd_ps);
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[7];
}

static volatile float sink;

/* GFLOP/s of the FMA loop of `lanes` floats on nth threads (all running it). */
static double fma_peak(int avx512, int nth, int rounds)
{
    double *r = malloc(sizeof(double) * (size_t)rounds);
    const int lanes = avx512 ? 16 : 8;
    for (int k = 0; k < rounds; k++) {
        double t0 = bench_now();
#pragma omp parallel num_threads(nth)
        {
            float v = avx512 ? fma_loop_avx512(FMA_ITERS) : fma_loop_avx2(FMA_ITERS);
            if (v == 1234.5f) sink = v;
        }
        r[k] = 2.0 * 12 * lanes * FMA_ITERS * nth / (bench_now() - t0) / 1e9;
    }
    double m = bench_median(r, rounds);
    free(r);
    return m;
}

__attribute__((target("avx2"), noinline)) static float read_sum(const float *p, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return t[0] + t[3];
}

/* GB/s reading `total` bytes in all (each of nth threads its own part) `passes` times. */
static double read_bw(size_t total, int nth, int rounds)
{
    const size_t per = total / (size_t)nth / 128 * 128;
    float *buf = aligned_alloc(64, per * (size_t)nth);
    if (!buf) return 0;
#pragma omp parallel num_threads(nth)          /* first touch by the reader */
    for (size_t i = 0; i < per / sizeof(float); i++) buf[(size_t)omp_get_thread_num() * per / sizeof(float) + i] = 1.0f;
    const long passes = (long)(4e9 / (double)(per * (size_t)nth)) + 1;
    double *r = malloc(sizeof(double) * (size_t)rounds);
    for (int k = 0; k < rounds; k++) {
        double t0 = bench_now();
#pragma omp parallel num_threads(nth)
        {
            const float *p = buf + (size_t)omp_get_thread_num() * per / sizeof(float);
            float s = 0;
            for (long q = 0; q < passes; q++) {
                s += read_sum(p, per / sizeof(float));
                __asm__ volatile("" ::: "memory");      /* every pass reads again */
            }
            if (s == 1234.5f) sink = s;
        }
        r[k] = (double)per * (double)nth * (double)passes / (bench_now() - t0) / 1e9;
    }
    double m = bench_median(r, rounds);
    free(r);
    free(buf);
    return m;
}

typedef struct shape { const char *what; bool ta, tb; int64_t M, N, K; double per_step; } shape;

/* The seed step's products (per_step: how many times a train step runs it). */
static const shape seed_shapes[] = {
    {"LSTM step (recurrent, fwd)", false, false, 64, 4096, 1024, 100},
    {"LSTM step dh (bwd)", false, true, 64, 1024, 4096, 100},
    {"LSTM dW_rec = hprev^T dz", true, false, 1024, 4096, 6400, 1},
    {"dense fwd", false, false, 6400, 65, 1024, 1},
    {"dense dW", true, false, 1024, 65, 6400, 1},
    {"dense dh", false, true, 6400, 1024, 65, 1},
    {"embedding table (65,256)@(256,4096)", false, false, 65, 4096, 256, 1},
    {"generation: h @ W_rec (GEMV)", false, false, 1, 4096, 1024, 0},
};

static double gemm_gflops(const shape *s, int rounds)
{
    const int64_t arows = s->ta ? s->K : s->M, acols = s->ta ? s->M : s->K;
    const int64_t brows = s->tb ? s->N : s->K, bcols = s->tb ? s->K : s->N;
    float *A = malloc(sizeof(float) * (size_t)(arows * acols)), *B = malloc(sizeof(float) * (size_t)(brows * bcols));
    float *C = malloc(sizeof(float) * (size_t)(s->M * s->N));
    for (int64_t i = 0; i < arows * acols; i++) A[i] = (float)(i % 7) * 0.1f;
    for (int64_t i = 0; i < brows * bcols; i++) B[i] = (float)(i % 5) * 0.1f;
    const double flop = 2.0 * s->M * s->N * s->K;
    const int reps = flop > 1e9 ? 2 : (int)(2e9 / flop) + 1;
    double *r = malloc(sizeof(double) * (size_t)rounds);
    df_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, acols, B, bcols, 0.0f, C, s->N);
    for (int k = 0; k < rounds; k++) {
        double t0 = bench_now();
        for (int q = 0; q < reps; q++)
            df_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, acols, B, bcols, 0.0f, C, s->N);
        r[k] = flop * reps / (bench_now() - t0) / 1e9;
    }
    double m = bench_median(r, rounds);
    free(r);
    free(A);
    free(B);
    free(C);
    return m;
}

int main(int argc, char **argv)
{
    int rounds = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: roofline [--rounds 7]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (rounds < 1) rounds = 1;
    __builtin_cpu_init();
    const int has512 = __builtin_cpu_supports("avx512f"), has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int all = omp_get_max_threads();
    df_set_num_threads(all);
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    printf("# roofline: %d threads, OpenBLAS core %s, medians of %d rounds, load average %.2f\n", all,
           bench_corename(), rounds, load);
    double peak = 0;
    printf("%-40s %12s %12s\n", "limit", "1 thread", "all threads");
    if (has512) {
        double p1 = fma_peak(1, 1, rounds), pa = fma_peak(1, all, rounds);
        printf("%-40s %12.1f %12.1f\n", "FMA peak AVX-512 (GFLOP/s)", p1, pa);
        peak = pa;
    }
    if (has2) {
        double p1 = fma_peak(0, 1, rounds), pa = fma_peak(0, all, rounds);
        printf("%-40s %12.1f %12.1f\n", "FMA peak AVX2 (GFLOP/s)", p1, pa);
        if (pa > peak) peak = pa;
    }
    if (!has2) {
        printf("no AVX2: no FMA peak or bandwidth measured\n");
        return 0;
    }
    static const struct { const char *what; size_t bytes_per_thread, bytes_total; } levels[] = {
        {"L2 read, 512 KiB per thread (GB/s)", 512u << 10, 0},
        {"L3 read, 8 MiB in all (GB/s)", 0, 8u << 20},
        {"DRAM read, 256 MiB in all (GB/s)", 0, 256u << 20},
    };
    double l3_all = 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        size_t t1 = levels[i].bytes_total ? levels[i].bytes_total : levels[i].bytes_per_thread;
        size_t ta = levels[i].bytes_total ? levels[i].bytes_total : levels[i].bytes_per_thread * (size_t)all;
        double b1 = read_bw(t1, 1, rounds), ba = read_bw(ta, all, rounds);
        printf("%-40s %12.1f %12.1f\n", levels[i].what, b1, ba);
        if (i == 1) l3_all = ba;
    }
    printf("\n%-40s %-18s %10s %8s %10s\n", "seed-step product (df_sgemm, all threads)", "(M,N,K)", "GFLOP/s",
           "% peak", "x/step");
    for (size_t i = 0; i < sizeof seed_shapes / sizeof seed_shapes[0]; i++) {
        const shape *s = &seed_shapes[i];
        char dims[64];
        snprintf(dims, sizeof dims, "(%lld,%lld,%lld)%s%s", (long long)s->M, (long long)s->N, (long long)s->K,
                 s->ta ? " ta" : "", s->tb ? " tb" : "");
        double g = gemm_gflops(s, rounds);
        printf("%-40s %-18s %10.1f %7.0f%% %10.0f\n", s->what, dims, g, 100 * g / peak, s->per_step);
    }
    /* the GEMV reads its 16 MiB weight once per call: its bound is L3 bandwidth */
    const double w_bytes = 4.0 * 4096 * 1024;
    printf("%-40s %.3f ms per call at the L3 bandwidth (%.1f GB/s)\n", "generation weight read bound",
           w_bytes / l3_all / 1e6, l3_all);
    return 0;
}
