/* gemm_kernels.c — register-blocked GEMM tiles and GEMV kernels, once in
 * portable C and, on x86-64, for AVX2+FMA and AVX-512 through target
 * attributes (the library is compiled without -march; src/gemm.c picks a set
 * at run time from the CPU's features). Every kernel sums over k in plain k
 * order in one accumulator per output, and a full tile computes an element
 * exactly as an edge tile does, so where an element falls never changes it. */
#include <string.h>
#include "gemm.h"

#define UNROLL _Pragma("GCC unroll 16")

/* ------------------------------------------------------------- portable C */
#define PORT_MR 4
#define PORT_NR 16

static void tile_portable(int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
                          int64_t ldc, int m, int n, float alpha, float beta, bool accumulate)
{
    float acc[PORT_MR][PORT_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, a += aks, b += PORT_NR)
        for (int i = 0; i < PORT_MR; i++)
            for (int j = 0; j < PORT_NR; j++) acc[i][j] += a[i * ars] * b[j];
    for (int i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        for (int j = 0; j < n; j++) {
            float r = alpha * acc[i][j];
            if (accumulate) ci[j] = ci[j] + r;
            else ci[j] = beta == 0.0f ? r : beta * ci[j] + r;
        }
    }
}

static inline void store_scaled(float *y, float acc, float alpha, float beta)
{
    float r = alpha * acc;
    *y = beta == 0.0f ? r : beta * *y + r;
}

static void gemv_rows_portable(int64_t K, int64_t n, const float *x, const float *W, int64_t ldw, float alpha,
                               float beta, float *y, int64_t incy)
{
    enum { BLOCK = 64 };
    for (int64_t j0 = 0; j0 < n; j0 += BLOCK) {
        const int64_t nb = n - j0 < BLOCK ? n - j0 : BLOCK;
        float acc[BLOCK] = {0};
        for (int64_t k = 0; k < K; k++) {
            const float xk = x[k], *w = W + k * ldw + j0;
            for (int64_t j = 0; j < nb; j++) acc[j] += xk * w[j];
        }
        for (int64_t j = 0; j < nb; j++) store_scaled(y + (j0 + j) * incy, acc[j], alpha, beta);
    }
}

static void gemv_dots_portable(int64_t n, int64_t K, const float *W, int64_t ldw, const float *x, float alpha,
                               float beta, float *y, int64_t incy)
{
    for (int64_t j = 0; j < n; j++) {
        const float *w = W + j * ldw;
        float acc = 0.0f;
        for (int64_t k = 0; k < K; k++) acc += w[k] * x[k];
        store_scaled(y + j * incy, acc, alpha, beta);
    }
}

const df_gemm_kernels df_gemm_portable = {
    "portable", PORT_MR, PORT_NR, tile_portable, gemv_rows_portable, gemv_dots_portable, 1, NULL, NULL, PORT_NR,
};

#if DF_GEMM_HAVE_X86
#include <immintrin.h>

/* ---------------------------------------------------------------- AVX-512 */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define A512_MR 8
#define A512_NR 48

TARGET_AVX512 static inline __mmask16 mask16(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* r = alpha*acc combined with C's row under mask mk. */
TARGET_AVX512 static inline void store_row512(float *ci, __mmask16 mk, __m512 acc, __m512 valpha, __m512 vbeta,
                                              float beta, bool accumulate)
{
    __m512 r = _mm512_mul_ps(valpha, acc);
    if (accumulate) r = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, ci), r);
    else if (beta != 0.0f) r = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(mk, ci), r);
    _mm512_mask_storeu_ps(ci, mk, r);
}

/* The tile's k loop for `vecs` (1 to 3) 16-float vectors per row: a last
 * panel of at most 16 or 32 columns does a third or two thirds of the work.
 * An element's FMA chain is the same either way. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
tile_avx512_body(int vecs, int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
                 int64_t ldc, int m, int n, float alpha, float beta, bool accumulate)
{
    __m512 acc[3][A512_MR];
    UNROLL for (int i = 0; i < A512_MR; i++) acc[0][i] = acc[1][i] = acc[2][i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += aks, b += A512_NR) {
        const __m512 b0 = _mm512_load_ps(b), b1 = vecs > 1 ? _mm512_load_ps(b + 16) : b0,
                     b2 = vecs > 2 ? _mm512_load_ps(b + 32) : b0;
        UNROLL for (int i = 0; i < A512_MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * ars]);
            acc[0][i] = _mm512_fmadd_ps(ai, b0, acc[0][i]);
            if (vecs > 1) acc[1][i] = _mm512_fmadd_ps(ai, b1, acc[1][i]);
            if (vecs > 2) acc[2][i] = _mm512_fmadd_ps(ai, b2, acc[2][i]);
        }
    }
    const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
    const __mmask16 mk[3] = {mask16(n), mask16(n - 16), mask16(n - 32)};
    UNROLL for (int i = 0; i < A512_MR; i++) {
        if (i >= m) break;
        UNROLL for (int v = 0; v < 3; v++)
            if (v < vecs && mk[v]) store_row512(c + i * ldc + 16 * v, mk[v], acc[v][i], valpha, vbeta, beta, accumulate);
    }
}

TARGET_AVX512 static void tile_avx512(int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
                                      int64_t ldc, int m, int n, float alpha, float beta, bool accumulate)
{
    if (n > 32) tile_avx512_body(3, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
    else if (n > 16) tile_avx512_body(2, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
    else tile_avx512_body(1, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
}

TARGET_AVX512 static inline void store_vec512(float *y, int64_t incy, __mmask16 mk, __m512 acc, float alpha,
                                              float beta)
{
    if (incy == 1) {
        store_row512(y, mk, acc, _mm512_set1_ps(alpha), _mm512_set1_ps(beta), beta, false);
        return;
    }
    float t[16];
    _mm512_storeu_ps(t, acc);
    for (int j = 0; j < 16 && (mk >> j & 1); j++) {
        float r = alpha * t[j];
        y[j * incy] = beta == 0.0f ? r : __builtin_fmaf(beta, y[j * incy], r);
    }
}

/* y = x @ W row by row: each W row segment of GEMV_COLS floats is read
 * contiguously (a block of a few columns down all K rows would touch a new
 * page per row), into sums kept in L1; four rows per pass over the sums,
 * one FMA after another, so each sum still runs in k order. */
#define GEMV_COLS 1024
TARGET_AVX512 static void gemv_rows_avx512(int64_t K, int64_t n, const float *x, const float *W, int64_t ldw,
                                           float alpha, float beta, float *y, int64_t incy)
{
    __attribute__((aligned(64))) float acc[GEMV_COLS];
    for (int64_t j0 = 0; j0 < n; j0 += GEMV_COLS) {
        const int64_t nb = n - j0 < GEMV_COLS ? n - j0 : GEMV_COLS, full = nb / 16 * 16;
        const __mmask16 tail = mask16(nb - full);
        memset(acc, 0, sizeof acc);
        const float *w = W + j0;
        int64_t k = 0;
        for (; k + 4 <= K; k += 4, w += 4 * ldw) {
            const __m512 x0 = _mm512_set1_ps(x[k]), x1 = _mm512_set1_ps(x[k + 1]), x2 = _mm512_set1_ps(x[k + 2]),
                         x3 = _mm512_set1_ps(x[k + 3]);
            for (int64_t j = 0; j < nb; j += 16) {
                const __mmask16 mk = j < full ? (__mmask16)0xFFFF : tail;
                __m512 s = _mm512_load_ps(acc + j);
                s = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mk, w + j), s);
                s = _mm512_fmadd_ps(x1, _mm512_maskz_loadu_ps(mk, w + ldw + j), s);
                s = _mm512_fmadd_ps(x2, _mm512_maskz_loadu_ps(mk, w + 2 * ldw + j), s);
                s = _mm512_fmadd_ps(x3, _mm512_maskz_loadu_ps(mk, w + 3 * ldw + j), s);
                _mm512_store_ps(acc + j, s);
            }
        }
        for (; k < K; k++, w += ldw) {
            const __m512 xk = _mm512_set1_ps(x[k]);
            for (int64_t j = 0; j < nb; j += 16) {
                const __mmask16 mk = j < full ? (__mmask16)0xFFFF : tail;
                _mm512_store_ps(acc + j, _mm512_fmadd_ps(xk, _mm512_maskz_loadu_ps(mk, w + j), _mm512_load_ps(acc + j)));
            }
        }
        for (int64_t j = 0; j < nb; j += 16)
            store_vec512(y + (j0 + j) * incy, incy, j < full ? (__mmask16)0xFFFF : tail, _mm512_load_ps(acc + j),
                         alpha, beta);
    }
}

/* One row's dot product: 16-wide partial sums in k order, the tail masked,
 * then _mm512_reduce_add_ps (a fixed tree). */
TARGET_AVX512 static inline float dot_avx512(int64_t K, const float *w, const float *x)
{
    __m512 acc = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), acc);
    const __mmask16 mk = mask16(K - k);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w + k), _mm512_maskz_loadu_ps(mk, x + k), acc);
    return _mm512_reduce_add_ps(acc);
}

/* Four rows at a time share each load of x; each row's arithmetic is
 * dot_avx512's exactly, so the grouping never changes a result. */
TARGET_AVX512 static void gemv_dots_avx512(int64_t n, int64_t K, const float *W, int64_t ldw, const float *x,
                                           float alpha, float beta, float *y, int64_t incy)
{
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *w0 = W + j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
            const __m512 xv = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + k), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + k), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + k), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + k), xv, a3);
        }
        const __mmask16 mk = mask16(K - k);
        const __m512 xv = _mm512_maskz_loadu_ps(mk, x + k);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w0 + k), xv, a0);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w1 + k), xv, a1);
        a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w2 + k), xv, a2);
        a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w3 + k), xv, a3);
        store_scaled(y + j * incy, _mm512_reduce_add_ps(a0), alpha, beta);
        store_scaled(y + (j + 1) * incy, _mm512_reduce_add_ps(a1), alpha, beta);
        store_scaled(y + (j + 2) * incy, _mm512_reduce_add_ps(a2), alpha, beta);
        store_scaled(y + (j + 3) * incy, _mm512_reduce_add_ps(a3), alpha, beta);
    }
    for (; j < n; j++) store_scaled(y + j * incy, dot_avx512(K, W + j * ldw, x), alpha, beta);
}

const df_gemm_kernels df_gemm_avx512 = {
    "avx512", A512_MR, A512_NR, tile_avx512, gemv_rows_avx512, gemv_dots_avx512, 1, NULL, NULL, 16,
};

/* --------------------------------------------------------------- AVX2+FMA */
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define A2_MR 6
#define A2_NR 16

TARGET_AVX2 static inline __m256i mask8(int64_t n)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int c = n >= 8 ? 8 : n <= 0 ? 0 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), lanes);
}

TARGET_AVX2 static inline void store_row256(float *ci, int64_t n, __m256 acc, __m256 valpha, __m256 vbeta,
                                            float beta, bool accumulate)
{
    __m256 r = _mm256_mul_ps(valpha, acc);
    if (n >= 8) {
        if (accumulate) r = _mm256_add_ps(_mm256_loadu_ps(ci), r);
        else if (beta != 0.0f) r = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci), r);
        _mm256_storeu_ps(ci, r);
        return;
    }
    const __m256i mk = mask8(n);
    if (accumulate) r = _mm256_add_ps(_mm256_maskload_ps(ci, mk), r);
    else if (beta != 0.0f) r = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(ci, mk), r);
    _mm256_maskstore_ps(ci, mk, r);
}

TARGET_AVX2 static inline __attribute__((always_inline)) void
tile_avx2_body(int vecs, int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c, int64_t ldc, int m, int n,
               float alpha, float beta, bool accumulate)
{
    __m256 acc0[A2_MR], acc1[A2_MR];
    UNROLL for (int i = 0; i < A2_MR; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += aks, b += A2_NR) {
        const __m256 b0 = _mm256_load_ps(b), b1 = vecs > 1 ? _mm256_load_ps(b + 8) : b0;
        UNROLL for (int i = 0; i < A2_MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i * ars);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            if (vecs > 1) acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
    UNROLL for (int i = 0; i < A2_MR; i++) {
        if (i >= m) break;
        store_row256(c + i * ldc, n, acc0[i], valpha, vbeta, beta, accumulate);
        if (vecs > 1 && n > 8) store_row256(c + i * ldc + 8, n - 8, acc1[i], valpha, vbeta, beta, accumulate);
    }
}

/* As tile_avx512: half the work for a last panel of at most 8 columns. */
TARGET_AVX2 static void tile_avx2(int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
                                  int64_t ldc, int m, int n, float alpha, float beta, bool accumulate)
{
    if (n > 8) tile_avx2_body(2, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
    else tile_avx2_body(1, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
}

/* Fixed-order horizontal sum: (lo + hi) halves, then pairs. */
TARGET_AVX2 static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* As gemv_rows_avx512. */
TARGET_AVX2 static void gemv_rows_avx2(int64_t K, int64_t n, const float *x, const float *W, int64_t ldw,
                                       float alpha, float beta, float *y, int64_t incy)
{
    __attribute__((aligned(64))) float acc[GEMV_COLS];
    for (int64_t j0 = 0; j0 < n; j0 += GEMV_COLS) {
        const int64_t nb = n - j0 < GEMV_COLS ? n - j0 : GEMV_COLS, full = nb / 8 * 8;
        const __m256i tail = mask8(nb - full), all = _mm256_set1_epi32(-1);
        memset(acc, 0, sizeof acc);
        const float *w = W + j0;
        int64_t k = 0;
        for (; k + 4 <= K; k += 4, w += 4 * ldw) {
            const __m256 x0 = _mm256_broadcast_ss(x + k), x1 = _mm256_broadcast_ss(x + k + 1),
                         x2 = _mm256_broadcast_ss(x + k + 2), x3 = _mm256_broadcast_ss(x + k + 3);
            for (int64_t j = 0; j < full; j += 8) {
                __m256 s = _mm256_load_ps(acc + j);
                s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w + j), s);
                s = _mm256_fmadd_ps(x1, _mm256_loadu_ps(w + ldw + j), s);
                s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(w + 2 * ldw + j), s);
                s = _mm256_fmadd_ps(x3, _mm256_loadu_ps(w + 3 * ldw + j), s);
                _mm256_store_ps(acc + j, s);
            }
            if (full < nb) {
                __m256 s = _mm256_load_ps(acc + full);
                s = _mm256_fmadd_ps(x0, _mm256_maskload_ps(w + full, tail), s);
                s = _mm256_fmadd_ps(x1, _mm256_maskload_ps(w + ldw + full, tail), s);
                s = _mm256_fmadd_ps(x2, _mm256_maskload_ps(w + 2 * ldw + full, tail), s);
                s = _mm256_fmadd_ps(x3, _mm256_maskload_ps(w + 3 * ldw + full, tail), s);
                _mm256_store_ps(acc + full, s);
            }
        }
        for (; k < K; k++, w += ldw) {
            const __m256 xk = _mm256_broadcast_ss(x + k);
            for (int64_t j = 0; j < nb; j += 8)
                _mm256_store_ps(acc + j, _mm256_fmadd_ps(xk, _mm256_maskload_ps(w + j, j < full ? all : tail),
                                                         _mm256_load_ps(acc + j)));
        }
        for (int64_t j = 0; j < nb; j++) {
            float r = alpha * acc[j], *yj = y + (j0 + j) * incy;
            *yj = beta == 0.0f ? r : __builtin_fmaf(beta, *yj, r);
        }
    }
}

TARGET_AVX2 static inline float dot_avx2(int64_t K, const float *w, const float *x)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), acc);
    const __m256i mk = mask8(K - k);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(w + k, mk), _mm256_maskload_ps(x + k, mk), acc);
    return hsum256(acc);
}

TARGET_AVX2 static void gemv_dots_avx2(int64_t n, int64_t K, const float *W, int64_t ldw, const float *x,
                                       float alpha, float beta, float *y, int64_t incy)
{
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *w0 = W + j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) {
            const __m256 xv = _mm256_loadu_ps(x + k);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), xv, a3);
        }
        const __m256i mk = mask8(K - k);
        const __m256 xv = _mm256_maskload_ps(x + k, mk);
        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(w0 + k, mk), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_maskload_ps(w1 + k, mk), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_maskload_ps(w2 + k, mk), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_maskload_ps(w3 + k, mk), xv, a3);
        store_scaled(y + j * incy, hsum256(a0), alpha, beta);
        store_scaled(y + (j + 1) * incy, hsum256(a1), alpha, beta);
        store_scaled(y + (j + 2) * incy, hsum256(a2), alpha, beta);
        store_scaled(y + (j + 3) * incy, hsum256(a3), alpha, beta);
    }
    for (; j < n; j++) store_scaled(y + j * incy, dot_avx2(K, W + j * ldw, x), alpha, beta);
}

const df_gemm_kernels df_gemm_avx2 = {
    "avx2", A2_MR, A2_NR, tile_avx2, gemv_rows_avx2, gemv_dots_avx2, 1, NULL, NULL, 8,
};

/* ------------------------------------------------------------ AVX512_BF16 */
/* fma and avx2 as in TARGET_AVX512, so that its row stores inline here */
#define TARGET_BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
/* 8 rows: a batch of 64 (the seed's per-step products) fills whole tiles,
 * where 12 rows computed 72; 16 accumulators already keep vdpbf16ps at one
 * a cycle (Zen 4: the same 232 GFLOP/s a core as 12 rows, in L1/L2) */
#define BF_MR 8
#define BF_NR 32

/* 16 bf16 pairs from two rows of 16 floats: pair r = (lo[r], hi[r]), each
 * rounded to nearest even by vcvtne2ps2bf16 (which also treats denormals
 * as zero, as the library's FTZ/DAZ do). */
TARGET_BF16 static inline __m512i bf16_pairs(__m512 lo, __m512 hi)
{
    /* cvtne2ps gives bf16(lo) in words 0..15 and bf16(hi) in 16..31 */
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* The 16 pairs (x[k], x[k+1]), ..., (x[k+30], x[k+31]) of a k-contiguous row
 * (k even), zero past kc: one vcvtne2ps2bf16 puts bf16(x[k + i]) in word i,
 * so words 2p and 2p+1 are pair p. Both k-contiguous packings convert
 * through it, and so hold the same bf16 values. */
TARGET_BF16 static inline __m512i bf16_row_pairs(const float *x, int64_t k, int64_t kc)
{
    const __m512 lo = _mm512_maskz_loadu_ps(mask16(kc - k), x + k);
    const __m512 hi = _mm512_maskz_loadu_ps(mask16(kc - k - 16), x + k + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* k-major rows (X[k*ldx + r]): two rows of k give 16 pairs at once. */
TARGET_BF16 static void pack_bf16_kmajor(const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t p0,
                                         int64_t kc, int w, uint32_t *P)
{
    for (int64_t kp = 0; 2 * kp < kc; kp++) {
        const float *x0 = X + (p0 + 2 * kp) * ldx + r0;
        const float *x1 = 2 * kp + 1 < kc ? x0 + ldx : NULL;      /* an odd last k pairs with zero */
        uint32_t *dst = P + kp * w;
        /* the rows 8 k ahead: a panel walks down X's columns, ldx floats a
         * step, and the hardware prefetchers lose that stream at each page,
         * so a cold operand's packing would wait on memory */
        if (2 * kp + 10 < kc)
            for (int64_t r = 0; r < (rows < w ? rows : w); r += 16) {
                _mm_prefetch((const char *)(x0 + 8 * ldx + r), _MM_HINT_T0);
                _mm_prefetch((const char *)(x0 + 9 * ldx + r), _MM_HINT_T0);
            }
        for (int64_t r = 0; r < w; r += 16) {
            const int64_t left = (rows < w ? rows : w) - r;      /* never read past the panel's rows */
            const __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
            const __m512 lo = _mm512_maskz_loadu_ps(mk, x0 + r);
            const __m512 hi = x1 ? _mm512_maskz_loadu_ps(mk, x1 + r) : _mm512_setzero_ps();
            const __m512i pairs = bf16_pairs(lo, hi);
            if (r + 16 <= w) _mm512_storeu_si512(dst + r, pairs);
            else _mm512_mask_storeu_epi32(dst + r, (__mmask16)((1u << (w - r)) - 1), pairs);
        }
    }
}

/* r[i] (16 dwords each) -> r[j] = what was column j: 16 x 16 transpose in
 * four rounds of shuffles. */
TARGET_BF16 static inline __attribute__((always_inline)) void transpose16x16(__m512i r[16])
{
    __m512i t[16];
    UNROLL for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    UNROLL for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    UNROLL for (int h = 0; h < 16; h += 8)
        UNROLL for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    UNROLL for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    }
}

/* k contiguous (X[r*ldx + k]): 16 rows at a time, each row's 32 floats
 * converted in place to its 16 pairs (bf16_row_pairs), then the 16 x 16 pairs transposed so that each k pair's
 * 16 rows are one store (gathers of 8 rows' pairs cost ~4x as much on
 * Zen 4). Rows past `rows` and k past kc (an odd last k's partner) zero. */
TARGET_BF16 static void pack_bf16_kcontig(const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t p0,
                                          int64_t kc, int w, uint32_t *P)
{
    const int64_t valid = rows < w ? rows : w, pairs = (kc + 1) / 2;
    for (int64_t g = 0; g < w; g += 16) {
        const int64_t left = valid - g;
        const __mmask16 store = mask16(w - g);
        const float *x = X + (r0 + g) * ldx + p0;
        for (int64_t k = 0; k < kc; k += 32) {
            __m512i r[16];
            UNROLL for (int i = 0; i < 16; i++)
                r[i] = i < left ? bf16_row_pairs(x + i * ldx, k, kc) : _mm512_setzero_si512();
            transpose16x16(r);
            const int64_t np = pairs - k / 2 < 16 ? pairs - k / 2 : 16;
            uint32_t *dst = P + (k / 2) * w + g;
            for (int64_t j = 0; j < np; j++) _mm512_mask_storeu_epi32(dst + j * w, store, r[j]);
        }
    }
}

TARGET_BF16 static void pack_bf16(bool k_contig, const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t p0,
                                  int64_t kc, int w, float *P)
{
    if (k_contig) pack_bf16_kcontig(X, ldx, r0, rows, p0, kc, w, (uint32_t *)P);
    else pack_bf16_kmajor(X, ldx, r0, rows, p0, kc, w, (uint32_t *)P);
}

/* Row by row (pack_a_rowwise of gemm.h): each 32 floats of a row become its
 * 16 pairs in k order (bf16_row_pairs, as in pack_bf16_kcontig's panels);
 * past kc zeros, so an odd last k pairs with zero. */
TARGET_BF16 static void pack_bf16_rowwise(const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t p0,
                                          int64_t kc, int w, float *P)
{
    const int64_t pairs = (kc + 1) / 2;
    uint32_t *dst = (uint32_t *)P;
    for (int64_t r = 0; r < w; r++, dst += pairs) {
        if (r >= rows) {
            memset(dst, 0, (size_t)pairs * sizeof *dst);
            continue;
        }
        const float *x = X + (r0 + r) * ldx + p0;
        for (int64_t k = 0; k < kc; k += 32) {
            const __m512i p = bf16_row_pairs(x, k, kc);
            const int64_t left = pairs - k / 2;
            if (left >= 16) _mm512_storeu_si512(dst + k / 2, p);
            else _mm512_mask_storeu_epi32(dst + k / 2, mask16(left), p);
        }
    }
}

/* As tile_avx512 with bf16 pairs: a and b hold ceil(kc/2) pairs per row,
 * row i's pair kp at a[i*ars + kp*aks] (a micro-panel: ars = 1, aks = BF_MR;
 * rows: ars = ceil(kc/2), aks = 1); one vdpbf16ps per pair and accumulator. */
TARGET_BF16 static inline __attribute__((always_inline)) void
tile_bf16_body(int vecs, int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
               int64_t ldc, int m, int n, float alpha, float beta, bool accumulate)
{
    __m512 acc[2][BF_MR];
    UNROLL for (int i = 0; i < BF_MR; i++) acc[0][i] = acc[1][i] = _mm512_setzero_ps();
    const int32_t *ap = (const int32_t *)a;
    for (int64_t kp = 0; 2 * kp < kc; kp++, ap += aks, b += BF_NR) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = vecs > 1 ? (__m512bh)_mm512_load_si512(b + 16) : b0;
        UNROLL for (int i = 0; i < BF_MR; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(ap[i * ars]);
            acc[0][i] = _mm512_dpbf16_ps(acc[0][i], ai, b0);
            if (vecs > 1) acc[1][i] = _mm512_dpbf16_ps(acc[1][i], ai, b1);
        }
    }
    const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
    const __mmask16 mk[2] = {mask16(n), mask16(n - 16)};
    UNROLL for (int i = 0; i < BF_MR; i++) {
        if (i >= m) break;
        UNROLL for (int v = 0; v < 2; v++)
            if (v < vecs && mk[v]) store_row512(c + i * ldc + 16 * v, mk[v], acc[v][i], valpha, vbeta, beta, accumulate);
    }
}

TARGET_BF16 static void tile_bf16(int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
                                  int64_t ldc, int m, int n, float alpha, float beta, bool accumulate)
{
    if (n > 16) tile_bf16_body(2, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
    else tile_bf16_body(1, kc, a, ars, aks, b, c, ldc, m, n, alpha, beta, accumulate);
}

const df_gemm_kernels df_gemm_bf16 = {
    "bf16", BF_MR, BF_NR, tile_bf16, NULL, NULL, 2, pack_bf16, pack_bf16_rowwise, 16,
};
#endif
