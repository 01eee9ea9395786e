/* gemm.h — internals of dagflow's own GEMM/GEMV (src/gemm.c drives,
 * src/gemm_kernels.c holds the per-ISA kernels). The entry points used by the
 * rest of the library are df_sgemm and df_sgemm_path in base.h.
 *
 * A kernel set works on packed operands: A in micro-panels of mr rows
 * (k-major: panel[k*mr + i]), B in micro-panels of nr columns
 * (panel[k*nr + j]), both zero padded to full panels. The sum over k for an
 * output element always runs k = 0, 1, ... K-1 in one accumulator, in blocks
 * of DF_GEMM_KC that start at multiples of DF_GEMM_KC, whatever the tile,
 * the thread or the thread count: so results are the same bits on any
 * number of threads and at any position in C. */
#ifndef DF_GEMM_H
#define DF_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* Cache blocking (floats; MC and NC are rounded down to whole panels). A
 * kc x nc block of packed B (256 x 480 x 4 B = 480 KiB with 48-column
 * panels) stays in the 1-2 MiB L2 while every mr-row micro-panel of A
 * (8 x 256 x 4 B = 8 KiB) sits in the 32 KiB L1 and sweeps it. */
#define DF_GEMM_KC 256
#define DF_GEMM_MC 128
#define DF_GEMM_NC 512

/* C tile (m <= mr rows, n <= nr columns, row stride ldc) from kc steps of
 * a and packed b: C = alpha*acc + beta*C when !accumulate (beta == 0: C is
 * not read), C = C + alpha*acc when accumulate (the later k blocks). Row i
 * of A at step k is a[i*ars + k*aks]: (1, mr) for a packed micro-panel, or
 * A in place (all mr rows must exist then). */
typedef void df_gemm_tile_fn(int64_t kc, const float *a, int64_t ars, int64_t aks, const float *b, float *c,
                             int64_t ldc, int m, int n, float alpha, float beta, bool accumulate);
/* y[j*incy] = alpha * sum_k x[k] W[k*ldw + j] + beta * y[j*incy], j < n. */
typedef void df_gemv_rows_fn(int64_t K, int64_t n, const float *x, const float *W, int64_t ldw, float alpha,
                             float beta, float *y, int64_t incy);
/* y[j*incy] = alpha * sum_k W[j*ldw + k] x[k] + beta * y[j*incy], j < n. */
typedef void df_gemv_dots_fn(int64_t n, int64_t K, const float *W, int64_t ldw, const float *x, float alpha,
                             float beta, float *y, int64_t incy);

/* Packs rows [r0, r0+rows) x k [p0, p0+kc) of an operand into micro-panels
 * of w rows (A: rows of op(A), w = mr; B: columns of op(B), w = nr), in the
 * kernel set's element format, rows past `rows` and a last odd k zero.
 * Element (r, k) is X[r*ldx + k] when k_contig, else X[k*ldx + r]. */
typedef void df_gemm_pack_fn(bool k_contig, const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t p0,
                             int64_t kc, int w, float *P);

typedef struct df_gemm_kernels {
    const char *name;
    int mr, nr;
    df_gemm_tile_fn *tile;
    df_gemv_rows_fn *gemv_rows;     /* NULL: one-row products run as tiles too */
    df_gemv_dots_fn *gemv_dots;
    /* k steps per 32-bit packed element: 1 (fp32), 2 (a bf16 pair, k even
     * in the low half); the panels then hold ceil(kc / kpack) elements per
     * row, and A is always packed (pack != NULL) */
    int kpack;
    df_gemm_pack_fn *pack;          /* NULL: plain fp32 copies (gemm.c) */
    /* Rows [r0, r0+rows) x k [p0, p0+kc) of a k-contiguous A (X[r*ldx + k])
     * row by row: row r's ceil(kc/kpack) elements at P[r*ceil(kc/kpack)],
     * rows past `rows` up to w zero; the tile then reads row i at step k as
     * a[i*ars + k] (ars = ceil(kc/kpack), aks = 1). Converting a row where
     * it lies needs no transpose (pack's k-contiguous panels gather). NULL:
     * A is packed by `pack` into micro-panels. */
    void (*pack_a_rowwise)(const float *X, int64_t ldx, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int w,
                           float *P);
    /* The tile's cost grows in steps of this many columns (its vector
     * width: a panel's last columns cost a whole vector; portable: nr),
     * and a tile costs the same for any m <= mr: the thread split
     * (gemm.c) weighs its options by these. */
    int col_step;
} df_gemm_kernels;

extern const df_gemm_kernels df_gemm_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DF_GEMM_HAVE_X86 1
extern const df_gemm_kernels df_gemm_avx2;
extern const df_gemm_kernels df_gemm_avx512;
/* AVX512_BF16 (vdpbf16ps): operands rounded to bf16 (nearest even) as they
 * are packed, products summed in fp32, C fp32. k order per output: pairs
 * (0,1), (2,3), ... in order, each pair added by one vdpbf16ps. */
extern const df_gemm_kernels df_gemm_bf16;
#endif

#endif
