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
 * needs k^T: att_fast_transpose packs a block of it. Without AVX-512 (or
 * without GCC on x86-64) att_fast_usable is false and the callers keep
 * df_sgemm. */
#include "attention_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)
#include <immintrin.h>
#include <stdlib.h>

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

ATT_AVX512 void att_fast_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                              const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc)
{
    for (int64_t n0 = 0; n0 < N; n0 += 64) {
        const int64_t nn = N - n0 < 64 ? N - n0 : 64;
        for (int64_t i = 0; i < M; i += ATT_TILE_ROWS) {
            const int mr = M - i < ATT_TILE_ROWS ? (int)(M - i) : ATT_TILE_ROWS;
            tile_rows(mr, nn, K, alpha, A + i * ars, ars, acs, B + n0, ldb, accumulate, C + i * ldc + n0, ldc);
        }
    }
}

#else

bool att_fast_usable(const att_dims *a) { return false; }

void att_fast_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                   const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc)
{
}

#endif

void att_fast_transpose(int64_t rows, int64_t cols, const float *X, int64_t ldx, float *Xt)
{
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) Xt[c * ATT_BK + r] = X[r * ldx + c];
}
