/* base.h — internal helpers of src/: aligned memory, a bump arena for build-time
 * objects, BLAS wrapper, float environment. Knows nothing of graphs. */
#ifndef DF_BASE_H
#define DF_BASE_H

#include "dagflow.h"

#define DF_ALIGN 64

/* Allocation hooks: every library allocation goes through these, so a test can
 * make the n-th allocation fail (df_fail_alloc_after) to exercise OOM paths. */
void *df_malloc(size_t bytes);
void *df_calloc(size_t n, size_t size);
void *df_realloc(void *p, size_t bytes);
void *df_aligned_alloc(size_t bytes);   /* DF_ALIGN-aligned, zeroed */
void df_free(void *p);
char *df_strdup(const char *s);
/* Test hook: after n more successful allocations, fail them all (n < 0: never). */
void df_fail_alloc_after(long n);

/* A chunked bump allocator; everything is freed at once. */
typedef struct df_arena_chunk df_arena_chunk;
typedef struct df_arena { df_arena_chunk *head; } df_arena;
void *df_arena_alloc(df_arena *a, size_t bytes);     /* zeroed, 16-aligned; NULL on OOM */
void df_arena_free(df_arena *a);

/* Row-major C(M,N) = alpha * op(A)(M,K) @ op(B)(K,N) + beta * C. */
void df_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc);

/* Which code computes a product. DF_GEMM_AUTO: per call, dagflow's kernels
 * for the best ISA the CPU has where they are at least as fast as OpenBLAS
 * at that shape class (src/blas.c says which), else OpenBLAS. The others
 * force one path for every shape; the environment variable DF_GEMM_ISA
 * (dagflow.h) sets it for the process. */
typedef enum df_gemm_path {
    DF_GEMM_AUTO, DF_GEMM_OPENBLAS, DF_GEMM_PORTABLE, DF_GEMM_AVX2, DF_GEMM_AVX512,
    /* bf16 operands, fp32 sums (AVX512_BF16): never chosen by AUTO or
     * DF_GEMM_ISA, only asked for by df_sgemm_prec under DF_PRECISION_BF16;
     * where it cannot run df_sgemm_path falls back to the fp32 paths */
    DF_GEMM_BF16
} df_gemm_path;
/* What the CPU (or OS, or build) lacks for DF_GEMM_BF16, named for a user
 * ("avx512_bf16 (cpuid ...)"), or NULL when it runs here. */
const char *df_gemm_bf16_missing(void);
/* Test hook: on = behave as on a CPU without AVX512_BF16. */
void df_gemm_bf16_pretend_missing(bool on);
/* df_sgemm under a precision: DF_PRECISION_BF16 on DF_GEMM_BF16 (fp32 when
 * it cannot run, and for M = 1 or N = 1, GEMVs), else exactly df_sgemm. */
void df_sgemm_prec(df_precision prec, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* df_sgemm on a given path; a dagflow path the CPU lacks falls back to the
 * next lower one (avx512 -> avx2 -> portable). */
void df_sgemm_path(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The path DF_GEMM_ISA asks for (DF_GEMM_AUTO when unset or unknown), read once. */
df_gemm_path df_gemm_requested_path(void);
/* src/gemm.c: dagflow's kernels. df_gemm_own returns false when the CPU
 * lacks that ISA (or scratch memory ran out), having written nothing. */
struct df_gemm_kernels;
const struct df_gemm_kernels *df_gemm_kernels_for(df_gemm_path path);
bool df_gemm_own(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* op(B) (K x N) packed once for many products A @ op(B) with different A:
 * the per-step products of a recurrent cell with its fixed weight. The
 * products give the same bits as df_sgemm_path(path, ...) on the unpacked B. */
typedef struct df_gemm_packed_b {
    const struct df_gemm_kernels *ks;
    int64_t K, N, npad;
    float *P;
} df_gemm_packed_b;
/* Floats of buf that df_gemm_pack_b needs for path (0 if the CPU lacks it). */
size_t df_gemm_packed_b_floats(df_gemm_path path, int64_t K, int64_t N);
/* false (nothing packed) when the CPU lacks path or buf is NULL. */
bool df_gemm_pack_b(df_gemm_path path, df_gemm_packed_b *pb, bool tb, int64_t K, int64_t N, const float *B,
                    int64_t ldb, float *buf);
/* C (M x N) = alpha * A (M x K, row stride lda) @ packed op(B) + beta * C
 * (beta == 0: C is not read). false, having written nothing, if scratch
 * memory ran out. */
bool df_sgemm_packed(int64_t M, float alpha, const float *A, int64_t lda, const df_gemm_packed_b *pb, float beta,
                     float *C, int64_t ldc);
/* Columns [n0, n1) of that product on the calling thread only (for callers
 * that share the columns among their own threads); n0 a multiple of the
 * kernel set's panel width (32 for bf16, 48 for avx512 fp32). Each element
 * gets the bits df_sgemm_packed gives it. false, having written nothing,
 * when n0 is not so aligned or scratch memory ran out. */
bool df_sgemm_packed_cols(int64_t M, float alpha, const float *A, int64_t lda, const df_gemm_packed_b *pb, int64_t n0,
                          int64_t n1, float beta, float *C, int64_t ldc);
/* A (M x K, k contiguous: A[i*lda + k]) packed once for several products
 * with packed B's: a recurrent cell's state at one step, read by all its
 * gate blocks and threads, each thread converting its own k range (the
 * units it just computed) instead of every thread packing all of A for
 * every product. Those products give the same bits as df_sgemm_packed_cols
 * on the unpacked A. */
typedef struct df_gemm_packed_a {
    const struct df_gemm_kernels *ks;
    int64_t M, K, mpad;
    float *P;
} df_gemm_packed_a;
/* Floats of buf that df_gemm_packed_a_init needs for path (0 if the CPU lacks it). */
size_t df_gemm_packed_a_floats(df_gemm_path path, int64_t M, int64_t K);
/* false (pa unusable) when the CPU lacks path or buf is NULL. */
bool df_gemm_packed_a_init(df_gemm_path path, df_gemm_packed_a *pa, int64_t M, int64_t K, float *buf);
/* Rows [0, M) x k [k0, k1) of A into pa; threads may fill disjoint ranges
 * at once. k0 and k1 must be multiples of the kernel set's k steps per
 * element (2 for bf16: a pair is never split), k1 = K excepted; false
 * (nothing written) when not. */
bool df_gemm_pack_a_cols(const df_gemm_packed_a *pa, const float *A, int64_t lda, int64_t k0, int64_t k1);
/* The same for A given as its transpose's rows: element (i, k) of A,
 * k0 <= k < k1, at X[(k - k0)*ldx + i] (X points at row k0: a caller may
 * fill row ranges from different arrays). */
bool df_gemm_pack_a_rows(const df_gemm_packed_a *pa, const float *X, int64_t ldx, int64_t k0, int64_t k1);
/* C (pa->M x N) = A @ op(B) + beta * C on dagflow's threads, B packed as it
 * goes; the bits of df_sgemm_path on the kernel set's path with A unpacked.
 * false, having written nothing, if scratch memory ran out. */
bool df_sgemm_packed_a(const df_gemm_packed_a *pa, bool tb, int64_t N, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc);
/* Columns [n0, n1) of C (pa->M x pb->N) = alpha * A @ op(B) + beta * C on
 * the calling thread, n0 as for df_sgemm_packed_cols; false (nothing
 * written) when n0 is not so aligned or pa and pb do not match (kernel
 * set, K). */
bool df_sgemm_packed_ab_cols(float alpha, const df_gemm_packed_a *pa, const df_gemm_packed_b *pb, int64_t n0,
                             int64_t n1, float beta, float *C, int64_t ldc);
/* The dagflow kernel path df_sgemm takes for this shape, or DF_GEMM_OPENBLAS. */
df_gemm_path df_sgemm_chosen_path(bool ta, bool tb, int64_t M, int64_t N, int64_t K);

/* src/team.c: the thread count of a parallel region, adapted to the load
 * (see there). df_team_size(wanted) is 1 inside a parallel region, when
 * wanted <= 1 or while the machine has lately been too busy, else wanted.
 * A region that wants its verdict to count times itself:
 *     df_team_probe p; df_team_begin(&p, nth);
 *     #pragma omp parallel num_threads(nth)
 *     { int64_t c = df_team_enter(&p); ...work...; df_team_leave(&p, c); }
 *     df_team_end(&p);
 * df_team_set_adapt(0 / 1 / -1 = from DF_TEAM_ADAPT) resets the state (for
 * tests); df_team_degradations counts the switches to one thread. */
typedef struct df_team_probe {
    bool timed;
    int64_t t0;
    _Atomic int64_t worst_deficit;
} df_team_probe;
int df_team_size(int wanted);
void df_team_begin(df_team_probe *p, int nth);
int64_t df_team_enter(const df_team_probe *p);
void df_team_leave(df_team_probe *p, int64_t cpu0);
void df_team_end(df_team_probe *p);
void df_team_set_adapt(int on);
long df_team_degradations(void);

/* Flush denormals to zero (FTZ/DAZ) on every thread of the OpenMP pool. */
void df_enable_ftz_all_threads(void);

int64_t df_shape_numel(int ndim, const int64_t *shape);
/* numel with overflow and sanity checks: false if a dim is negative or the
 * product exceeds 2^40 elements. */
bool df_shape_numel_checked(int ndim, const int64_t *shape, int64_t *numel);
bool df_shape_equal(int na, const int64_t *a, int nb, const int64_t *b);

#endif
