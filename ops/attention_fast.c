/* attention_fast.c — the products of the fused attention's blocks
 * (ops/attention.c, ops/attention_grad.c) on AVX-512 register tiles. A
 * block's products are 64 x 64 x d with d = 32 or 64 in the usual models:
 * through df_sgemm each call packs its operands and dispatches, which at
 * that size costs about as much as the arithmetic (the attention ran at a
 * tenth of the FMA peak). Here C (M x N) = alpha A B (+ C) is computed
 * straight from the operands: A read by broadcasts at any two strides (so
 * A^T costs nothing), B by rows of up to 64 floats, a tile of 6 rows x 64
 * columns (24 vector accumulators) summed in k order, one tile at a time:
 * the results depend on the operands only, never on the thread count or on
 * where in a larger matrix the operands sit. The second operand of q k^T
 * needs k^T: att_fast_transpose packs a block of it, 16 x 16 at a time in
 * registers. Under DF_PRECISION_BF16, on a CPU with AVX512_BF16, the same
 * products run on the GEMM's bf16 tiles instead (att_bf16_gemm, below).
 * Without AVX-512 (or without GCC on x86-64) att_fast_usable is false and
 * the callers keep df_sgemm, in fp32 whatever the precision. */
#include "attention_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)
#include <immintrin.h>
#include <stdlib.h>
#include "base.h"
#include "gemm.h"

#define ATT_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define ATT_TILE_ROWS 6

bool att_fast_usable(const att_dims *a)
{
    static int cpu = -1;   /* every thread that finds -1 stores the same answer */
    int have = __atomic_load_n(&cpu, __ATOMIC_RELAXED);
    if (have < 0) {
        const char *off = getenv("DF_ATTENTION_NO_AVX512");
        have = __builtin_cpu_supports("avx512f") && !(off && *off && strcmp(off, "0"));
        __atomic_store_n(&cpu, have, __ATOMIC_RELAXED);
    }
    return have && a->d <= ATT_BK && a->dv <= ATT_BK;
}

/* One tile: rows [0, mr) x vectors [0, nv) of 16 columns, the last vector
 * masked by `last`; mr and nv are constants at every call, so the
 * accumulators stay in registers. */
static inline __attribute__((always_inline)) ATT_AVX512 void
tile(const int mr, const int nv, __mmask16 last, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
     const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc)
{
    __m512 c[ATT_TILE_ROWS][4];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) c[i][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 b[4];
        const float *bk = B + k * ldb;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            b[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
        const float *ak = A + k * acs;
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m512 x = _mm512_set1_ps(ak[i * ars]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) c[i][v] = _mm512_fmadd_ps(x, b[v], c[i][v]);
        }
    }
    const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            float *ci = C + i * ldc + 16 * v;
            const __mmask16 m = v == nv - 1 ? last : (__mmask16)0xffff;
            __m512 r = _mm512_mul_ps(scale, c[i][v]);
            if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, ci));
            _mm512_mask_storeu_ps(ci, m, r);
        }
}

#define ATT_TILE_NV(mr)                                                                                        \
    switch (nv) {                                                                                              \
    case 1: tile(mr, 1, last, K, alpha, A, ars, acs, B, ldb, accumulate, C, ldc); break;                      \
    case 2: tile(mr, 2, last, K, alpha, A, ars, acs, B, ldb, accumulate, C, ldc); break;                      \
    case 3: tile(mr, 3, last, K, alpha, A, ars, acs, B, ldb, accumulate, C, ldc); break;                      \
    default: tile(mr, 4, last, K, alpha, A, ars, acs, B, ldb, accumulate, C, ldc); break;                     \
    }

/* Rows [0, mr) and columns [0, nn) (nn <= 64) of the product. */
ATT_AVX512 static void tile_rows(int mr, int64_t nn, int64_t K, float alpha, const float *A, int64_t ars,
                                 int64_t acs, const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc)
{
    const int nv = (int)((nn + 15) / 16);
    const __mmask16 last = (__mmask16)(0xffffu >> (16 * nv - nn));
    switch (mr) {
    case 1: ATT_TILE_NV(1) break;
    case 2: ATT_TILE_NV(2) break;
    case 3: ATT_TILE_NV(3) break;
    case 4: ATT_TILE_NV(4) break;
    case 5: ATT_TILE_NV(5) break;
    default: ATT_TILE_NV(6) break;
    }
}

/* What a tile of rows [i, i + mr) at columns [n0, n0 + nn) of a K-term
 * product needs within band: its columns [n0, n0 + n_end) and terms
 * [k_begin, k_end); none (false) when nothing is stored or, accumulating,
 * added. */
typedef struct tile_span { int64_t n_end, k_begin, k_end; } tile_span;

static inline bool tile_span_of(att_band band, int64_t i, int mr, int64_t n0, int64_t nn, int64_t K, bool accumulate,
                                tile_span *s)
{
    const int64_t last_row = i + mr - 1;
    s->n_end = last_row + band.n_lim - n0 < nn ? last_row + band.n_lim - n0 : nn;
    s->k_end = last_row + band.k_lim < K ? last_row + band.k_lim : K;
    s->k_begin = i + band.k_from > 0 ? i + band.k_from : 0;
    return s->n_end > 0 && !(accumulate && s->k_begin >= s->k_end);
}

ATT_AVX512 void att_fast_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                              const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc, att_band band)
{
    for (int64_t n0 = 0; n0 < N; n0 += 64) {
        const int64_t nn = N - n0 < 64 ? N - n0 : 64;
        for (int64_t i = 0; i < M; i += ATT_TILE_ROWS) {
            const int mr = M - i < ATT_TILE_ROWS ? (int)(M - i) : ATT_TILE_ROWS;
            tile_span s;
            if (!tile_span_of(band, i, mr, n0, nn, K, accumulate, &s)) continue;
            tile_rows(mr, s.n_end, s.k_end > s.k_begin ? s.k_end - s.k_begin : 0, alpha, A + i * ars + s.k_begin * acs,
                      ars, acs, B + s.k_begin * ldb + n0, ldb, accumulate, C + i * ldc + n0, ldc);
        }
    }
}

/* Y (cols x rows, row stride ATT_BK) = the 16 x 16 (or smaller) X^T:
 * rows past `rows` are stored as zeros, columns past `cols` not at all. */
ATT_AVX512 static void transpose16(const float *X, int64_t ldx, int rows, int cols, float *Y)
{
    const __mmask16 col_mask = (__mmask16)(0xffffu >> (16 - cols));
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(col_mask, X + i * ldx) : _mm512_setzero_ps();
    /* pairs of rows interleaved, then each 128-bit lane L of r[4i + q]
     * holds column 4L + q of rows 4i .. 4i + 3 */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* column 4L + q: lane L of r[q], r[4 + q], r[8 + q], r[12 + q] */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        const __m512 s0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88), s1 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xdd);
        const __m512 s2 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
        const __m512 s3 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xdd);
        const __m512 col[4] = {_mm512_shuffle_f32x4(s0, s2, 0x88), _mm512_shuffle_f32x4(s1, s3, 0x88),
                               _mm512_shuffle_f32x4(s0, s2, 0xdd), _mm512_shuffle_f32x4(s1, s3, 0xdd)};
#pragma GCC unroll 4
        for (int L = 0; L < 4; L++)
            if (4 * L + q < cols) _mm512_storeu_ps(Y + (4 * L + q) * ATT_BK, col[L]);
    }
}

ATT_AVX512 void att_fast_transpose(int64_t rows, int64_t cols, const float *X, int64_t ldx, float *Xt)
{
    for (int64_t r0 = 0; r0 < rows; r0 += 16)
        for (int64_t c0 = 0; c0 < cols; c0 += 16)
            transpose16(X + r0 * ldx + c0, ldx, rows - r0 < 16 ? (int)(rows - r0) : 16,
                        cols - c0 < 16 ? (int)(cols - c0) : 16, Xt + c0 * ATT_BK + r0);
}

/* ------------------------------------------------------------ bf16 tiles */
/* The GEMM's bf16 kernel set (src/gemm_kernels.c) computes these blocks
 * too: its packings round each operand to bf16 pairs along k, its 8 x 32
 * tile sums a pair per vdpbf16ps in k order. A block's operands are packed
 * at each product into buffers on the stack, so the bits depend on the
 * operands only, as on the fp32 tiles. At char-gpt's heads (T = 64, d =
 * 32) the packing costs about as much as the bf16 products themselves, and
 * both together about 20% less than the fp32 tiles with their transposes
 * (perf, one thread). */
#define ATT_PAIRS (ATT_BK / 2)          /* bf16 pairs along k, at most */

att_tiles att_tiles_for(const att_dims *a, df_precision precision)
{
    if (!att_fast_usable(a)) return ATT_SGEMM;
    return precision == DF_PRECISION_BF16 && !df_gemm_bf16_missing() ? ATT_TILES_BF16 : ATT_TILES_FP32;
}

void att_bf16_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                   const float *B, int64_t bks, int64_t bns, bool accumulate, float *C, int64_t ldc, att_band band)
{
    const df_gemm_kernels *ks = &df_gemm_bf16;
    const int mr = ks->mr, nr = ks->nr;
    const int64_t pairs = (K + 1) / 2;
    _Alignas(64) uint32_t Ap[ATT_BK * ATT_PAIRS], Bp[ATT_BK * ATT_PAIRS];
    /* A: row i's pair p at a[i*a_rs + p*a_ps], rows past M up to a whole
     * tile zero (the tile reads all mr rows) */
    int64_t a_rs = 1, a_ps = ATT_BK;
    if (acs == 1) {
        a_rs = pairs, a_ps = 1;
        ks->pack_a_rowwise(A, ars, 0, M, 0, K, (int)((M + mr - 1) / mr * mr), (float *)Ap);
    } else {
        ks->pack(false, A, acs, 0, M, 0, K, ATT_BK, (float *)Ap);
    }
    /* B: panels of nr columns, each pairs x nr */
    for (int64_t n0 = 0; n0 < N; n0 += nr)
        ks->pack(bks == 1, B, bks == 1 ? bns : bks, n0, N - n0, 0, K, nr, (float *)(Bp + n0 * pairs));
    for (int64_t n0 = 0; n0 < N; n0 += nr) {
        const int64_t nn = N - n0 < nr ? N - n0 : nr;
        for (int64_t i = 0; i < M; i += mr) {
            const int m = M - i < mr ? (int)(M - i) : mr;
            tile_span s;
            if (!tile_span_of(band, i, m, n0, nn, K, accumulate, &s)) continue;
            /* whole pairs: the terms this adds are masked ones, zeros in A */
            const int64_t p0 = s.k_begin / 2, p1 = s.k_end > s.k_begin ? (s.k_end + 1) / 2 : p0;
            ks->tile(2 * (p1 - p0), (const float *)(Ap + i * a_rs + p0 * a_ps), a_rs, a_ps,
                     (const float *)(Bp + n0 * pairs + p0 * nr), C + i * ldc + n0, ldc, m, (int)s.n_end, alpha, 0.0f,
                     accumulate);
        }
    }
}

#else

bool att_fast_usable(const att_dims *a) { return false; }

att_tiles att_tiles_for(const att_dims *a, df_precision precision) { return ATT_SGEMM; }

void att_bf16_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                   const float *B, int64_t bks, int64_t bns, bool accumulate, float *C, int64_t ldc, att_band band)
{
}

void att_fast_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                   const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc, att_band band)
{
}

void att_fast_transpose(int64_t rows, int64_t cols, const float *X, int64_t ldx, float *Xt) {}

#endif
