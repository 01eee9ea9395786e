/* lstm_gemm.c — the recurrent products of ops/lstm.c and ops/lstm_grad.c on
 * AVX-512 with the weight packed once per call; and cell_sgemm, the GRU's and
 * SimpleRNN's OpenBLAS products in calls that do not depend on the thread
 * count.
 *
 * Each of the T steps multiplies a (B,H) or (B,4H) block by the same
 * recurrent weight (H,4H). OpenBLAS packs the whole weight (16 MB at H=1024)
 * again in every call, i.e. 2*T times per training step, which costs about a
 * fifth of the step. Here each thread packs its own columns of the weight
 * once (panels of 32 columns, k-major, zero padded), then every step runs an
 * 8x32 register-blocked FMA kernel over them. The sum over k for one output
 * runs in plain k order (no split), so results do not depend on the number
 * of threads. */
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "common.h"
#include "lstm_kernels.h"

/* One OpenBLAS call per LSTM_BLAS_CHUNK columns of C, inside an active
 * parallel region whenever there are threads: OpenBLAS then runs each call
 * on one thread (it does not thread inside a parallel region), and which
 * calls are made does not depend on the thread count, nor then the bits. */
void cell_sgemm(bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *Bm,
                int64_t ldb, float beta, float *C, int64_t ldc)
{
    const int64_t chunks = (N + LSTM_BLAS_CHUNK - 1) / LSTM_BLAS_CHUNK;
    if (M == 0 || chunks == 0) return;
#pragma omp parallel for schedule(static) num_threads(cell_chunk_threads(tb, M, K))
    for (int64_t q = 0; q < chunks; q++) {
        const int64_t c = q * LSTM_BLAS_CHUNK, n = N - c < LSTM_BLAS_CHUNK ? N - c : LSTM_BLAS_CHUNK;
        df_sgemm(false, tb, M, n, K, alpha, A, lda, tb ? Bm + c * ldb : Bm + c, ldb, beta, C + c, ldc);
    }
}

void cell_weight_prepare(cell_weight *cw, int64_t M, bool tb, int64_t K, int64_t N, const float *W, int64_t ldw)
{
    *cw = (cell_weight){.tb = tb, .K = K, .N = N, .ldw = ldw, .W = W};
    if (M < 2 || K <= 0 || N <= 0) return;
    const bool bf16 = df_get_precision() == DF_PRECISION_BF16 && df_gemm_kernels_for(DF_GEMM_BF16);
    const df_gemm_path path = bf16 ? DF_GEMM_BF16 : df_sgemm_chosen_path(false, tb, M, N, K);
    if (path == DF_GEMM_OPENBLAS) return;
    /* the struct and the panels in one buffer */
    const size_t head = (sizeof(df_gemm_packed_b) + 63) / 64 * 16;
    cw->buf = lstm_scratch_acquire(head + df_gemm_packed_b_floats(path, K, N), &cw->cached);
    if (!cw->buf) return;
    cw->pb = (df_gemm_packed_b *)cw->buf;
    cw->packed = df_gemm_pack_b(path, cw->pb, tb, K, N, W, ldw, cw->buf + head);
}

void cell_weight_gemm(const cell_weight *cw, int64_t M, const float *A, int64_t lda, float beta, float *C,
                      int64_t ldc)
{
    if (cw->packed && df_sgemm_packed(M, 1.0f, A, lda, cw->pb, beta, C, ldc)) return;
    cell_sgemm(cw->tb, M, cw->N, cw->K, 1.0f, A, lda, cw->W, cw->ldw, beta, C, ldc);
}

void cell_weight_release(cell_weight *cw)
{
    if (cw->buf) lstm_scratch_release(cw->buf, cw->cached);
    cw->buf = NULL;
    cw->packed = false;
}

bool lstm_bf16_prepare(lstm_bf16_weight *w, bool transposed, int64_t B, int64_t H, const float *W)
{
    *w = (lstm_bf16_weight){.n = transposed ? 1 : 4};
    if (df_get_precision() != DF_PRECISION_BF16 || B < 2 || H <= 0 || !df_gemm_kernels_for(DF_GEMM_BF16)) return false;
    /* forward: K = H, N = H per gate; backward: K = 4H, N = H */
    const int64_t K = transposed ? 4 * H : H;
    const size_t each = (df_gemm_packed_b_floats(DF_GEMM_BF16, K, H) + 15) / 16 * 16;   /* 64-byte aligned */
    const size_t state = (df_gemm_packed_a_floats(DF_GEMM_BF16, B, K) + 15) / 16 * 16;
    w->buf = lstm_scratch_acquire(each * (size_t)w->n + 2 * state, &w->cached);
    if (!w->buf) return false;
    bool ok = true;
    for (int k = 0; k < w->n && ok; k++) {
        const float *src = transposed ? W : W + k * H;
        ok = df_gemm_pack_b(DF_GEMM_BF16, &w->pb[k], transposed, K, H, src, 4 * H, w->buf + each * (size_t)k);
    }
    for (int s = 0; s < 2 && ok; s++)
        ok = df_gemm_packed_a_init(DF_GEMM_BF16, &w->state[s], B, K, w->buf + each * (size_t)w->n + state * (size_t)s);
    if (!ok) lstm_bf16_release(w);
    return ok;
}

void lstm_bf16_release(lstm_bf16_weight *w)
{
    if (w->buf) lstm_scratch_release(w->buf, w->cached);
    w->buf = NULL;
}

/* One process-wide scratch buffer, kept between calls: the packed weights
 * (16 MB at H=1024) and the d w_rec scratch are needed only while one op
 * runs, and allocating them per call either faults fresh pages in every
 * time (mmap) or fragments the heap. A second op running at the same time
 * (graphs run from several threads) gets a private buffer instead. */
static atomic_flag scratch_busy = ATOMIC_FLAG_INIT;
static float *scratch_buf;          /* owned by whoever holds scratch_busy */
static size_t scratch_cap;          /* floats */

/* At least 4 MB: 2 MB aligned and backed by transparent huge pages where
 * the kernel offers them (THP "madvise", Debian's default). The packed
 * weight is streamed from L3 in every step; on 4 KB pages its 16 MB are
 * 4096 pages, far more than the TLB holds, and the page walks cost ~6% of
 * the products' speed (measured on a Zen 4). Bits are not affected. */
enum { HUGE_MIN = 4 << 20, HUGE_PAGE = 2 << 20 };

static float *scratch_alloc(size_t bytes)
{
    if (bytes < HUGE_MIN) return aligned_alloc(64, bytes);
    bytes = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    float *p = aligned_alloc(HUGE_PAGE, bytes);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes, MADV_HUGEPAGE);   /* a hint: without it, 4 KB pages */
#endif
    return p;
}

float *lstm_scratch_acquire(size_t floats, bool *cached)
{
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    *cached = false;
    if (!atomic_flag_test_and_set_explicit(&scratch_busy, memory_order_acquire)) {
        if (scratch_cap < floats) {
            free(scratch_buf);
            scratch_buf = scratch_alloc(bytes);
            scratch_cap = scratch_buf ? floats : 0;
        }
        if (scratch_buf) {
            *cached = true;
            return scratch_buf;
        }
        atomic_flag_clear_explicit(&scratch_busy, memory_order_release);
    }
    return scratch_alloc(bytes);
}

void lstm_scratch_release(float *p, bool cached)
{
    if (cached) atomic_flag_clear_explicit(&scratch_busy, memory_order_release);
    else free(p);
}

#if LSTM_HAVE_AVX512_CLONE
#include <immintrin.h>

enum { NR = LSTM_PANEL, MR = 8, KC = 512 };   /* 512: ~3% faster than 256 at M = 64 (half the C passes) */

/* Software prefetch of the next block of B panels (kc rows of 32 floats,
 * the same size as the one in use: B is read in order): the microkernels
 * over one block each fetch one cache line of it per k into L2, the first
 * PF_BLOCKS of them covering it (a kc-deep call fetches kc lines, a
 * block is 2*kc). The weight comes from L3 in every step and the hardware
 * prefetcher alone left the first pass over each block waiting for it. */
enum { PF_BLOCKS = 2 };

/* Where the row block ib's microkernel prefetches from, for the block of
 * panel rows after b (kc deep). */
static inline const float *prefetch_from(const float *b, int64_t kc, int64_t ib)
{
    return b + kc * NR + ib % PF_BLOCKS * kc * 16;
}

/* Columns [c0, c0+n) of W (rows k = 0..K-1, row stride ldw) into panels:
 * P[q][k][jj] = W[k][c0 + 32q + jj], zero where 32q + jj >= n. */
void lstm_pack_cols(const float *W, int64_t ldw, int64_t K, int64_t c0, int64_t n, float *P)
{
    for (int64_t q = 0; q * NR < n; q++) {
        int64_t w = n - q * NR < NR ? n - q * NR : NR;
        float *p = P + q * K * NR;
        for (int64_t k = 0; k < K; k++) {
            memcpy(p + k * NR, W + k * ldw + c0 + q * NR, (size_t)w * sizeof(float));
            if (w < NR) memset(p + k * NR + w, 0, (size_t)(NR - w) * sizeof(float));
        }
    }
}

/* The 16x16 block at src (row stride lds) transposed to dst (row stride
 * ldd): dst[k][i] = src[i][k]. Interleaves pairs, then quadruples of rows,
 * then 128-bit lanes; only moves floats. */
LSTM_TARGET_AVX512 static void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 16; i += 2) {          /* t[i]: rows i, i+1 interleaved by element pairs */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {          /* r[i..i+3]: 4 rows' elements in each 128-bit lane */
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {              /* 128-bit lanes of row groups 0|1 and 2|3 */
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
    for (int k = 0; k < 16; k++) _mm512_storeu_ps(dst + k * ldd, r[k]);   /* r[k]: column k of the rows */
}

/* Rows [r0, r0+n) of W (K columns, row stride ldw), transposed into panels:
 * P[q][k][jj] = W[r0 + 32q + jj][k], zero where 32q + jj >= n. Full
 * panels go through 16x16 register transposes (the element-by-element
 * copy was ~5 ms of every backward at H=1024: 16M scattered stores); the
 * remainders of k and of a partial panel are copied one by one. */
LSTM_TARGET_AVX512 void lstm_pack_rows_t(const float *W, int64_t ldw, int64_t K, int64_t r0, int64_t n, float *P)
{
    const int64_t K16 = K / 16 * 16;
    for (int64_t q = 0; q * NR < n; q++) {
        int64_t w = n - q * NR < NR ? n - q * NR : NR;
        float *p = P + q * K * NR;
        const float *rows = W + (r0 + q * NR) * ldw;
        const int64_t k_fast = w == NR ? K16 : 0;
        for (int64_t k0 = 0; k0 < k_fast; k0 += 16)
            for (int64_t half = 0; half < NR; half += 16)
                transpose16(rows + half * ldw + k0, ldw, p + k0 * NR + half, NR);
        for (int64_t jj = 0; jj < NR; jj++) {
            const float *row = rows + jj * ldw;
            for (int64_t k = k_fast; k < K; k++) p[k * NR + jj] = jj < w ? row[k] : 0.0f;
        }
    }
}

/* C[0:mr, 0:32] (masked to m0|m1) = (accumulate ? C : 0) + A[0:mr, 0:kc] @ p[0:kc, 0:32],
 * with A[i, k] at A[i*sa + k*sk]; prefetching pf[0 : 16*kc] unless pf is
 * NULL. mr (and sk) are constants in every call below, so the accumulators
 * stay in registers. */
LSTM_TARGET_AVX512 static inline __attribute__((always_inline)) void
micro_s(int mr, int64_t kc, const float *A, int64_t sa, int64_t sk, const float *p, float *C, int64_t ldc,
        __mmask16 m0, __mmask16 m1, int accumulate, const float *pf)
{
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        c0[i] = accumulate ? _mm512_maskz_loadu_ps(m0, C + i * ldc) : _mm512_setzero_ps();
        c1[i] = accumulate ? _mm512_maskz_loadu_ps(m1, C + i * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(p + k * NR), b1 = _mm512_loadu_ps(p + k * NR + 16);
        if (pf) _mm_prefetch((const char *)(pf + k * 16), _MM_HINT_T1);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 a = _mm512_set1_ps(A[i * sa + k * sk]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
    }
}

#define micro(mr, kc, A, lda, p, C, ldc, m0, m1, acc) micro_s(mr, kc, A, lda, 1, p, C, ldc, m0, m1, acc, NULL)

LSTM_TARGET_AVX512 static void micro_any(int mr, int64_t kc, const float *A, int64_t lda, const float *p, float *C,
                                         int64_t ldc, __mmask16 m0, __mmask16 m1, int accumulate)
{
    switch (mr) {
    case 8: micro(8, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    case 7: micro(7, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    case 6: micro(6, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    case 5: micro(5, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    case 4: micro(4, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    case 3: micro(3, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    case 2: micro(2, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    default: micro(1, kc, A, lda, p, C, ldc, m0, m1, accumulate); break;
    }
}

/* C (M,N) = A (M,K) @ Bp, where Bp holds the N columns in panels as packed
 * above (panel q at Bp + q*K*32). Row strides lda, ldc. Single-threaded. */
LSTM_TARGET_AVX512 void lstm_gemm_packed(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                                         const float *Bp, float *C, int64_t ldc)
{
    for (int64_t q = 0; q * NR < N; q++) {
        int64_t w = N - q * NR < NR ? N - q * NR : NR;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xffff : w > 16 ? (1u << (w - 16)) - 1 : 0);
        const float *panel = Bp + q * K * NR;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            for (int64_t i0 = 0; i0 < M; i0 += MR) {
                int mr = M - i0 < MR ? (int)(M - i0) : MR;
                if (mr == MR)
                    micro_s(MR, kc, A + i0 * lda + k0, lda, 1, panel + k0 * NR, C + i0 * ldc + q * NR, ldc, m0, m1,
                            k0 > 0, prefetch_from(panel + k0 * NR, kc, i0 / MR));
                else
                    micro_any(mr, kc, A + i0 * lda + k0, lda, panel + k0 * NR, C + i0 * ldc + q * NR, ldc, m0, m1,
                              k0 > 0);
            }
        }
    }
}

/* Packed A^T for micro_s(sa = 1, sk = MR): rows m0 .. m0+mc of A^T are
 * columns m0.. of the row-major A rows given by rows[k]; blocks of MR
 * rows, each k-major with MR floats per k (zero padded past mc). Walks one
 * source row at a time (k outer): taking MR floats from each of kc rows in
 * turn touched kc pages and cache lines per block, and made this copy ~5%
 * of the d w_rec product. */
LSTM_TARGET_AVX512 static void pack_at(const float *const *rows, int64_t kc, int64_t m0, int64_t mc, float *Ap)
{
    const int64_t full = mc / MR * MR;
    for (int64_t k = 0; k < kc; k++) {
        const float *src = rows[k] + m0;
        for (int64_t mb = 0; mb < full; mb += MR) _mm256_storeu_ps(Ap + mb * kc + k * MR, _mm256_loadu_ps(src + mb));
        if (full < mc) {
            float *a = Ap + full * kc + k * MR;
            for (int64_t i = 0; i < MR; i++) a[i] = full + i < mc ? src[full + i] : 0.0f;
        }
    }
}

LSTM_TARGET_AVX512 static void micro_t_any(int mr, int64_t kc, const float *A, const float *p, float *C, int64_t ldc,
                                           __mmask16 m0, __mmask16 m1, int accumulate)
{
    switch (mr) {
    case 8: micro_s(8, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    case 7: micro_s(7, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    case 6: micro_s(6, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    case 5: micro_s(5, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    case 4: micro_s(4, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    case 3: micro_s(3, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    case 2: micro_s(2, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    default: micro_s(1, kc, A, 1, MR, p, C, ldc, m0, m1, accumulate, NULL); break;
    }
}

#ifndef KC_DW
#define KC_DW 1024
#endif
#ifndef MC_DW
#define MC_DW 256
#endif

/* One thread's columns [c0, c1) (c0 a multiple of 32) of
 * dW (H, N) = hprev^T @ dz, hprev row k = b*T + t being h0[b] at t = 0 and
 * h[k-1] after; dz (B*T, N). Bp: KC_DW*(c1-c0 rounded up to 32) floats,
 * Ap: MC_DW*KC_DW floats, rows: KC_DW pointers (scratch of this thread). */
LSTM_TARGET_AVX512 static void dw_columns(int64_t B, int64_t T, int64_t H, int64_t N, const float *h,
                                          const float *h0, const float *dz, float *dW, int64_t c0, int64_t c1,
                                          float *Bp, float *Ap, const float **rows)
{
    const int64_t K = B * T;
    for (int64_t k0 = 0; k0 < K; k0 += KC_DW) {
        int64_t kc = K - k0 < KC_DW ? K - k0 : KC_DW;
        for (int64_t k = 0; k < kc; k++) {
            int64_t r = k0 + k;
            rows[k] = r % T ? h + (r - 1) * H : h0 + (r / T) * H;
        }
        for (int64_t q = 0; c0 + q * NR < c1; q++) {          /* dz's rows k0.. into 32-column panels */
            int64_t w = c1 - c0 - q * NR < NR ? c1 - c0 - q * NR : NR;
            float *p = Bp + q * kc * NR;
            for (int64_t k = 0; k < kc; k++) {
                memcpy(p + k * NR, dz + (k0 + k) * N + c0 + q * NR, (size_t)w * sizeof(float));
                if (w < NR) memset(p + k * NR + w, 0, (size_t)(NR - w) * sizeof(float));
            }
        }
        for (int64_t m0 = 0; m0 < H; m0 += MC_DW) {
            int64_t mc = H - m0 < MC_DW ? H - m0 : MC_DW;
            pack_at(rows, kc, m0, mc, Ap);
            for (int64_t q = 0; c0 + q * NR < c1; q++) {
                int64_t w = c1 - c0 - q * NR < NR ? c1 - c0 - q * NR : NR;
                __mmask16 mk0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
                __mmask16 mk1 = (__mmask16)(w >= 32 ? 0xffff : w > 16 ? (1u << (w - 16)) - 1 : 0);
                const float *p = Bp + q * kc * NR;
                for (int64_t mb = 0; mb < mc; mb += MR) {
                    int mr = mc - mb < MR ? (int)(mc - mb) : MR;
                    float *c = dW + (m0 + mb) * N + c0 + q * NR;
                    if (mr == MR)
                        micro_s(MR, kc, Ap + mb * kc, 1, MR, p, c, N, mk0, mk1, k0 > 0, prefetch_from(p, kc, mb / MR));
                    else
                        micro_t_any(mr, kc, Ap + mb * kc, p, c, N, mk0, mk1, k0 > 0);
                }
            }
        }
    }
}

/* Columns of dW that one of nth threads owns at most (whole panels). */
static int64_t dw_share(int64_t N, int nth)
{
    int64_t panels = (N + NR - 1) / NR;
    return (panels + nth - 1) / nth * NR;
}

size_t lstm_dw_scratch_floats(int64_t N, int nth)
{
    return (size_t)KC_DW * (size_t)dw_share(N, nth) + (size_t)MC_DW * KC_DW + KC_DW * 2 /* rows */;
}

/* dW (H, N) = hprev^T @ dz for thread tid of nth (columns split by panels);
 * scratch: lstm_dw_scratch_floats(N) floats for this thread. */
void lstm_dw_packed(int64_t B, int64_t T, int64_t H, int64_t N, const float *h, const float *h0, const float *dz,
                    float *dW, int tid, int nth, float *scratch)
{
    int64_t panels = (N + NR - 1) / NR;
    int64_t c0 = panels * tid / nth * NR, c1 = panels * (tid + 1) / nth * NR;
    if (c1 > N) c1 = N;
    if (c0 >= c1) return;
    float *Bp = scratch, *Ap = Bp + (size_t)KC_DW * (size_t)dw_share(N, nth);
    const float **rows = (const float **)(Ap + MC_DW * KC_DW);
    dw_columns(B, T, H, N, h, h0, dz, dW, c0, c1, Bp, Ap, rows);
}

#endif
