/* lstm_kernels_bench.c — the LSTM's packed kernels (ops/lstm_gemm.c) on one
 * thread at the seed's shapes, in CPU time of the calling thread (robust to
 * a busy machine) and GFLOP/s:
 *   fwd:  per step and thread of 2, 4 x (64 x 512 x K=1024) on w_rec's panels
 *   bwd:  per step and thread of 2, 64 x 512 x K=4096 on w_rec^T's panels
 *   dw:   thread 0 of 2 of hprev^T @ dz, 1024 x 2048 x K=6400
 *   bench/lstm_kernels_bench [peak|fwd|bwd|dw|all] [reps]
 * Built by make; run it from a build directory, or against another build
 * of the library with LD_LIBRARY_PATH (an A/B of the kernels). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../ops/lstm_kernels.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *randf(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

static double median(double *v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
    return v[n / 2];
}

#if LSTM_HAVE_AVX512_CLONE
#include <immintrin.h>

/* The FMA peak in the same CPU-time terms: 12 independent chains. */
LSTM_TARGET_AVX512 static void bench_peak(int reps)
{
    double t[64];
    const long iters = 20000000;
    float out = 0;
    for (int r = 0; r < reps; r++) {
        __m512 acc[12], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
        for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps((float)i);
        double t0 = cpu_s();
        for (long k = 0; k < iters; k++)
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        t[r] = cpu_s() - t0;
        for (int i = 0; i < 12; i++) out += _mm512_reduce_add_ps(acc[i]);
    }
    double m = median(t, reps);
    printf("peak %.1f GFLOP/s (1 thread, CPU time)  [%g]\n", 12.0 * 32 * iters / m * 1e-9, (double)out * 0);
}

enum { B = 64, T = 100, H = 1024, N = 4 * H };

static void bench_recurrent(int bwd, int reps)
{
    const int64_t K = bwd ? N : H, cols = H / 2, lda = bwd ? T * N : T * H;  /* rows of dz_t / h_{t-1} */
    float *W = randf((size_t)H * N), *A = randf((size_t)B * lda), *C = randf((size_t)B * N);
    bool cached;                                    /* the op's own scratch (huge pages where offered) */
    float *P = lstm_scratch_acquire((size_t)lstm_packed_floats(H), &cached);
    const int64_t block = lstm_packed_floats(H) / 4;
    if (bwd) lstm_pack_rows_t(W, N, N, 0, cols, P);
    else for (int k = 0; k < 4; k++) lstm_pack_cols(W, N, H, k * H, cols, P + k * block);
    double t[64];
    const int steps = 10;
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_s();
        for (int s = 0; s < steps; s++) {
            const float *a = A + (s % T) * (bwd ? N : H);
            if (bwd) lstm_gemm_packed(B, cols, K, a, lda, P, C, H);
            else for (int k = 0; k < 4; k++) lstm_gemm_packed(B, cols, K, a, lda, P + k * block, C + k * H, N);
        }
        t[r] = (cpu_s() - t0) / steps;
    }
    double m = median(t, reps), flop = 2.0 * B * K * cols * (bwd ? 1 : 4), lo = t[0];
    printf("%s  %.3f ms/step/thread  %.1f GFLOP/s (1 thread, median; best %.1f)  check %.6g\n", bwd ? "bwd" : "fwd", m * 1e3,
           flop / m * 1e-9, flop / lo * 1e-9, (double)C[123] + C[B * N - 1]);
    lstm_scratch_release(P, cached);
    free(W); free(A); free(C);
}

static void bench_dw(int reps)
{
    float *h = randf((size_t)B * T * H), *h0 = randf((size_t)B * H), *dz = randf((size_t)B * T * N);
    float *dW = calloc((size_t)H * N, sizeof(float));
    bool cached;
    float *scratch = lstm_scratch_acquire(lstm_dw_scratch_floats(N, 2), &cached);
    double t[64];
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_s();
        lstm_dw_packed(B, T, H, N, h, h0, dz, dW, 0, 2, scratch);
        t[r] = cpu_s() - t0;
    }
    double m = median(t, reps), flop = 2.0 * B * T * H * (N / 2);
    printf("dw   %.1f ms (thread 0 of 2)  %.1f GFLOP/s (1 thread)  check %.6g\n", m * 1e3, flop / m * 1e-9,
           (double)dW[5] + dW[(size_t)H * N / 2 - 1]);
    lstm_scratch_release(scratch, cached);
    free(h); free(h0); free(dz); free(dW);
}
#endif

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1 || reps > 64) reps = 5;
#if LSTM_HAVE_AVX512_CLONE
    if (!strcmp(what, "peak") || !strcmp(what, "all")) bench_peak(reps);
    if (!strcmp(what, "fwd") || !strcmp(what, "all")) bench_recurrent(0, reps);
    if (!strcmp(what, "bwd") || !strcmp(what, "all")) bench_recurrent(1, reps);
    if (!strcmp(what, "dw") || !strcmp(what, "all")) bench_dw(reps);
#else
    (void)what;
    puts("lstm_kernels_bench: no AVX-512 kernels in this build");
#endif
    return 0;
}
