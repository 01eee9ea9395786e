/* test_lstm_kernels.c — ops/lstm_gemm.c directly: the packed recurrent
 * product and d w_rec against a double reference at awkward shapes (row
 * blocks, panels and k blocks with remainders, strided operands, thread
 * shares), and the op scratch (lstm_scratch_acquire): large buffers (the packed recurrent weight, d w_rec's
 * panels) are 2 MB aligned and marked for transparent huge pages, both the
 * process-wide cached buffer and the private one a second holder gets;
 * small ones are 64-byte aligned. The huge pages matter for speed only
 * (the weight is streamed through the TLB in every step), so losing them
 * would go unnoticed by every result test. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "helpers.h"
#include "../ops/lstm_kernels.h"

enum { MB2 = 2 << 20 };

/* Whether the kernel has transparent huge pages at all (else madvise has
 * nothing to mark and the flag check is skipped). */
static bool thp_configured(void)
{
    return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0;
}

/* The VmFlags line of the mapping in /proc/self/smaps that holds p ("" if
 * none was found). */
static void vm_flags_of(const void *p, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return;
    char line[512];
    bool inside = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {           /* a mapping's first line */
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, cap, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

static void expect_huge(const float *p, size_t floats, const char *what)
{
    cr_assert_not_null(p, "%s: no memory", what);
    cr_expect_eq((uintptr_t)p % MB2, 0, "%s: %p is not 2 MB aligned", what, (const void *)p);
    if (!thp_configured()) {
        cr_log_info("%s: no transparent huge pages in this kernel, flag not checked", what);
        return;
    }
    char flags[512];
    vm_flags_of(p + floats / 2, flags, sizeof flags);
    cr_expect(strstr(flags, " hg") != NULL, "%s: not marked MADV_HUGEPAGE (VmFlags:%s)", what, flags);
}

Test(lstm_scratch, large_buffers_on_huge_pages)
{
    const size_t floats = (size_t)5 << 20;                  /* 20 MB, the size of a packed weight */
    bool cached1, cached2;
    float *a = lstm_scratch_acquire(floats, &cached1);
    float *b = lstm_scratch_acquire(floats, &cached2);     /* while a is held: a private one */
    cr_assert(cached1 && !cached2, "first the cached buffer, then a private one");
    memset(a, 0, floats * sizeof(float));
    memset(b, 0, floats * sizeof(float));
    expect_huge(a, floats, "cached buffer");
    expect_huge(b, floats, "private buffer");
    lstm_scratch_release(b, cached2);
    lstm_scratch_release(a, cached1);
}

Test(lstm_scratch, small_buffers_aligned)
{
    bool cached1, cached2;
    float *a = lstm_scratch_acquire(1000, &cached1);
    float *b = lstm_scratch_acquire(1000, &cached2);
    cr_assert(a && b);
    cr_expect_eq((uintptr_t)a % 64, 0);
    cr_expect_eq((uintptr_t)b % 64, 0);
    a[999] = b[999] = 1.0f;                                 /* the whole size is usable (ASan) */
    lstm_scratch_release(b, cached2);
    lstm_scratch_release(a, cached1);
}

#if LSTM_HAVE_AVX512_CLONE
static float *filled(size_t n, uint32_t seed)
{
    float *p = malloc(n * sizeof(float));
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

/* |got - want| within a few fp32 roundings of the sum of |terms| (the
 * kernel sums in float, the reference in double). */
static void expect_sum_close(float got, double want, double abs_sum, int64_t K, const char *what, int64_t i, int64_t j)
{
    const double tol = 4 * (double)K * 6e-8 * abs_sum + 1e-30;
    cr_assert(fabs((double)got - want) <= tol, "%s [%lld, %lld]: got %.9g, want %.9g", what, (long long)i,
              (long long)j, (double)got, want);
}

/* C (M,N) = A (M,K; row stride lda) @ W (K,N) through lstm_pack_cols +
 * lstm_gemm_packed, C with row stride ldc, against double sums. */
static void check_gemm_packed(int64_t M, int64_t N, int64_t K)
{
    const int64_t lda = K + 3, ldc = N + 5, ldw = N + 7;
    float *A = filled((size_t)(M * lda), 1), *W = filled((size_t)(K * ldw), 2), *C = filled((size_t)(M * ldc), 3);
    const int64_t panels = (N + LSTM_PANEL - 1) / LSTM_PANEL;
    float *P = aligned_alloc(64, (size_t)(panels * LSTM_PANEL * K) * sizeof(float));
    cr_assert_not_null(P);
    lstm_pack_cols(W, ldw, K, 0, N, P);
    lstm_gemm_packed(M, N, K, A, lda, P, C, ldc);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double want = 0, abs_sum = 0;
            for (int64_t k = 0; k < K; k++) {
                want += (double)A[i * lda + k] * W[k * ldw + j];
                abs_sum += fabs((double)A[i * lda + k] * W[k * ldw + j]);
            }
            expect_sum_close(C[i * ldc + j], want, abs_sum, K, "gemm_packed", i, j);
        }
    free(A), free(W), free(C), free(P);
}

Test(lstm_kernels, gemm_packed_matches_a_double_reference)
{
    if (!lstm_use_avx512()) {
        cr_log_info("no AVX-512 on this CPU: the packed kernels are not used, not run");
        return;
    }
    /* rows: 1, a partial block, blocks + remainder, the seed's 64;
     * columns: partial panels; K: below, at and past the k block (512) */
    static const int64_t shapes[][3] = {{1, 1, 1},    {7, 33, 5},   {9, 31, 511}, {64, 32, 512},
                                        {17, 64, 513}, {64, 100, 1100}, {3, 17, 1025}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_gemm_packed(shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* Rows [r0, r0+n) of W (K columns, row stride ldw) through lstm_pack_rows_t:
 * every float of every panel, padding included, equal to its definition
 * P[q][k][jj] = W[r0 + 32q + jj][k] (0 past n). The buffer starts as NaN,
 * so a float the packing leaves unwritten fails too. */
static void check_pack_rows_t(int64_t rows, int64_t K, int64_t r0, int64_t n)
{
    const int64_t ldw = K + 3, panels = (n + LSTM_PANEL - 1) / LSTM_PANEL;
    float *W = filled((size_t)(rows * ldw), 8);
    const size_t floats = (size_t)(panels * LSTM_PANEL * K);
    float *P = malloc(floats * sizeof(float));
    cr_assert_not_null(P);
    for (size_t i = 0; i < floats; i++) P[i] = NAN;
    lstm_pack_rows_t(W, ldw, K, r0, n, P);
    for (int64_t q = 0; q < panels; q++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t jj = 0; jj < LSTM_PANEL; jj++) {
                const int64_t row = q * LSTM_PANEL + jj;
                const float want = row < n ? W[(r0 + row) * ldw + k] : 0.0f, got = P[(q * K + k) * LSTM_PANEL + jj];
                cr_assert(got == want || (got != got && want != want),
                          "pack_rows_t rows %lld K %lld r0 %lld n %lld: panel %lld k %lld jj %lld got %g want %g",
                          (long long)rows, (long long)K, (long long)r0, (long long)n, (long long)q, (long long)k,
                          (long long)jj, (double)got, (double)want);
            }
    free(W), free(P);
}

Test(lstm_kernels, pack_rows_t_matches_its_definition)
{
    if (!lstm_use_avx512()) {
        cr_log_info("no AVX-512 on this CPU: the packed kernels are not used, not run");
        return;
    }
    /* {rows of W, K, r0, n}: a single row and column; K below, at and past
     * the 16-wide transposes with remainders; partial and several panels,
     * a slice starting inside W */
    static const int64_t cases[][4] = {{1, 1, 0, 1},     {33, 15, 0, 33}, {32, 16, 0, 32},  {64, 17, 0, 64},
                                       {100, 400, 36, 64}, {70, 33, 5, 65}, {96, 4096, 32, 64}, {40, 100, 3, 7}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_pack_rows_t(cases[c][0], cases[c][1], cases[c][2], cases[c][3]);
}

/* dW (H,N) = hprev^T @ dz over B*T rows (hprev row b*T+t: h0[b] at t = 0,
 * else h[b*T+t-1]), each thread share of nth computed separately. */
static void check_dw(int64_t B, int64_t T, int64_t H, int64_t N, int nth)
{
    float *h = filled((size_t)(B * T * H), 4), *h0 = filled((size_t)(B * H), 5), *dz = filled((size_t)(B * T * N), 6);
    float *dW = filled((size_t)(H * N), 7);
    float *scratch = aligned_alloc(64, lstm_dw_scratch_floats(N, nth) * sizeof(float));
    cr_assert_not_null(scratch);
    for (int tid = 0; tid < nth; tid++) lstm_dw_packed(B, T, H, N, h, h0, dz, dW, tid, nth, scratch);
    for (int64_t m = 0; m < H; m++)
        for (int64_t j = 0; j < N; j++) {
            double want = 0, abs_sum = 0;
            for (int64_t r = 0; r < B * T; r++) {
                const float hp = r % T ? h[(r - 1) * H + m] : h0[(r / T) * H + m];
                want += (double)hp * dz[r * N + j];
                abs_sum += fabs((double)hp * dz[r * N + j]);
            }
            expect_sum_close(dW[m * N + j], want, abs_sum, B * T, "dw_packed", m, j);
        }
    free(h), free(h0), free(dz), free(dW), free(scratch);
}

Test(lstm_kernels, dw_packed_matches_a_double_reference)
{
    if (!lstm_use_avx512()) {
        cr_log_info("no AVX-512 on this CPU: the packed kernels are not used, not run");
        return;
    }
    check_dw(2, 3, 5, 20, 1);           /* fewer rows than a block */
    check_dw(3, 7, 20, 100, 2);         /* partial row block and panel, two shares */
    check_dw(5, 230, 270, 96, 3);       /* K = 1150 past the k block (1024), H past the m block (256) */
}
#endif
