/* blas.c — the one place that calls OpenBLAS, plus the thread/float environment. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xmmintrin.h>
#include <pmmintrin.h>
#include "base.h"

static void openblas_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0) return;
    if (M == 1 && K > 0) {          /* one row: y = alpha op(B)^T x + beta y, no packing */
        /* some OpenBLAS versions compute beta = 0 as 0 * y, and y may hold a
         * NaN from an earlier use of the arena */
        if (beta == 0.0f) memset(C, 0, (size_t)N * sizeof(float));
        cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, (blasint)(tb ? N : K), (blasint)(tb ? K : N),
                    alpha, B, (blasint)ldb, A, ta ? (blasint)lda : 1, beta, C, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb,
                beta, C, (blasint)ldc);
}

static df_gemm_path requested_path = DF_GEMM_AUTO;
static pthread_once_t requested_once = PTHREAD_ONCE_INIT;

static void read_requested_path(void)
{
    const char *v = getenv("DF_GEMM_ISA");
    if (!v) return;
    static const struct { const char *name; df_gemm_path path; } names[] = {
        {"auto", DF_GEMM_AUTO}, {"openblas", DF_GEMM_OPENBLAS}, {"portable", DF_GEMM_PORTABLE},
        {"avx2", DF_GEMM_AVX2}, {"avx512", DF_GEMM_AVX512},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(v, names[i].name) == 0) requested_path = names[i].path;
}

df_gemm_path df_gemm_requested_path(void)
{
    pthread_once(&requested_once, read_requested_path);
    return requested_path;
}

/* The best dagflow ISA this CPU runs, cached (cpuid once). */
static df_gemm_path best_own_path(void)
{
    static _Atomic int best = -1;
    int b = best;
    if (b < 0) {
        b = df_gemm_kernels_for(DF_GEMM_AVX512) ? DF_GEMM_AVX512
            : df_gemm_kernels_for(DF_GEMM_AVX2) ? DF_GEMM_AVX2 : DF_GEMM_PORTABLE;
        best = b;
    }
    return (df_gemm_path)b;
}

/* Does OpenBLAS run kernels as wide as dagflow's best here? On a CPU it
 * does not know it falls back to SSE kernels (Prescott: 40-53 GFLOP/s on an
 * AVX-512 Xeon whose FMA peak is 325, issue 15), or to AVX2 ones on an
 * AVX-512 CPU newer than it ("Haswell"), and dagflow's kernels are then the
 * faster ones at every shape measured (bench/bench_gemm; with Prescott on
 * the Zen 4 below: 2-8x). So the speed of a run never depends on OpenBLAS
 * knowing the CPU: it only decides whether the shapes in the table below
 * may go to OpenBLAS. */
static bool openblas_is_tuned(void)
{
    static _Atomic int tuned = -1;
    int t = tuned;
    if (t < 0) {
        static const char *avx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
        static const char *avx2[] = {"haswell", "zen"};
        const char *core = openblas_get_corename();
        bool has512 = false, has2 = false;
        for (size_t i = 0; core && i < sizeof avx512 / sizeof avx512[0]; i++) has512 |= !strcasecmp(core, avx512[i]);
        for (size_t i = 0; core && i < sizeof avx2 / sizeof avx2[0]; i++) has2 |= !strcasecmp(core, avx2[i]);
        t = best_own_path() == DF_GEMM_AVX512 ? has512 : has512 || has2;
        tuned = t;
    }
    return t == 1;
}

/* AUTO against a tuned OpenBLAS: the shape classes where dagflow's kernels
 * are at least as fast; a tie (within the machine's noise, ~5%) goes to
 * dagflow, whose bits do not depend on the thread count. Measured with
 * bench/bench_gemm on an AMD EPYC (Zen 4, AVX-512, 2 cores of a shared,
 * busy machine) against OpenBLAS 0.3.21's Cooperlake (SkylakeX) kernels:
 * GFLOP/s, dagflow avx512 vs OpenBLAS, 1 thread, medians of 7 alternating
 * rounds, several runs (figures move between runs with the load; the
 * comparisons held unless marked mixed):
 *   (64,4096,1024) the shape          72 vs 76, 69 vs 71, 66 vs 61   tie -> dagflow
 *   (64,128,1024) LSTM step chunk            106 vs 97, 93 vs 94            dagflow
 *   (6400,65,1024) dense layer                75 vs 67, 76 vs 72            dagflow (2 thr 154 vs 129)
 *   (6400,1024,65) tb, its d input            90 vs 77, 98 vs 80            dagflow
 *   (256,4096,65) ta, table's d kernel       103 vs 82                      dagflow
 *   (65,4096,256), (65,256,4096) tb           85 vs 88, 63 vs 69            tie -> dagflow
 *   (4096,1,1024) N = 1                       29 vs 6                        dagflow
 *   (1,65,1024), (1,4096,256) M = 1           36 vs 29, 40 vs 39 (2 thr 36 vs 10)  dagflow
 *   (1,4096,1024) M = 1, 16 MiB of weights    14 vs 13, 26 vs 31            mixed -> dagflow (below)
 *   (1024,65,6400) ta, N <= 128: dense dW     54 vs 53, 65 vs 65; 2 thr 98 vs 61, 109 vs 93
 *                                             (the threads share op(B) and claim row chunks)  dagflow
 *   (128,128,768), (512,128,768), (65,128,768) ta: char-gpt's dW products
 *                                             93 vs 93, 93 vs 92, 82 vs 88  tie -> dagflow;
 *     on 2 threads with the machine loaded OpenBLAS fell to 1-8 GFLOP/s
 *     where dagflow's kept 30-60 (its threads adapt to the load, src/team.c)
 *   (1024,1024,1024) nn and ta tb             61 vs 76, 94 vs 98, 55 vs 73  OpenBLAS
 *   (33,17,100), (100,100,100)                18 vs 44, 61 vs 70            OpenBLAS
 * (below ~2M multiply-adds packing and the call's fixed costs dominate). */
#define OWN_MIN_MACS (1 << 21)
#define OPENBLAS_SQUARE_DIM 512
static bool own_is_faster(bool ta, bool tb, int64_t M, int64_t N, int64_t K)
{
    (void)ta, (void)tb;
    if (!openblas_is_tuned()) return true;
    /* one row or column: OpenBLAS's GEMV was at most as fast as ours when
     * quiet (table above) and collapses when another process is busy (its
     * threads are not adapted to the load: 0.9 GFLOP/s at (1,4096,1024),
     * bench/roofline), so dagflow's always */
    if (N == 1 || M == 1) return true;
    if ((double)M * N * K < OWN_MIN_MACS) return false;
    if (M >= OPENBLAS_SQUARE_DIM && N >= OPENBLAS_SQUARE_DIM && K >= OPENBLAS_SQUARE_DIM) return false;
    return true;
}

/* The choice depends on the shape and OpenBLAS's core only, never on the
 * load: dagflow's and OpenBLAS's sums differ in the last bits. */
static df_gemm_path resolve_path(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K)
{
    if (path != DF_GEMM_AUTO) return path;
    if (best_own_path() == DF_GEMM_PORTABLE || !own_is_faster(ta, tb, M, N, K)) return DF_GEMM_OPENBLAS;
    return best_own_path();
}

df_gemm_path df_sgemm_chosen_path(bool ta, bool tb, int64_t M, int64_t N, int64_t K)
{
    df_gemm_path path = resolve_path(df_gemm_requested_path(), ta, tb, M, N, K);
    for (; path > DF_GEMM_PORTABLE && !df_gemm_kernels_for(path); path--) {
    }
    return path;
}

void df_sgemm_path(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    path = resolve_path(path, ta, tb, M, N, K);
    for (; path >= DF_GEMM_PORTABLE; path--)        /* (bf16 ->) avx512 -> avx2 -> portable */
        if (df_gemm_own(path, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    openblas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void df_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc)
{
    df_sgemm_path(df_gemm_requested_path(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void df_sgemm_prec(df_precision prec, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    /* a one-row or one-column product reads each weight once: rounding it
     * to bf16 on every call costs more than the fp32 GEMV it would save */
    const bool bf16 = prec == DF_PRECISION_BF16 && M > 1 && N > 1;
    const df_gemm_path path = bf16 ? DF_GEMM_BF16 : df_gemm_requested_path();
    df_sgemm_path(path, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ------------------------------------------------------------- precision */
/* The calling thread's precision for the graphs it runs (df_graph_run runs
 * every op's forward on the calling thread, which reads it there). */
static _Thread_local df_precision thread_precision = DF_PRECISION_FP32;

df_status df_precision_check(df_precision p)
{
    if (p == DF_PRECISION_FP32) return DF_OK;
    if (p != DF_PRECISION_BF16) return df_error(DF_ERR_ARG, "precision %d: not DF_PRECISION_FP32 or _BF16", (int)p);
    const char *missing = df_gemm_bf16_missing();
    if (missing) return df_error(DF_ERR_UNSUPPORTED, "bf16 precision needs a CPU with %s; this one lacks it", missing);
    return DF_OK;
}

df_status df_set_precision(df_precision p)
{
    df_status st = df_precision_check(p);
    if (st == DF_OK) thread_precision = p;
    return st;
}

df_precision df_get_precision(void) { return thread_precision; }

/* The team size this thread's pool has FTZ/DAZ set for: a graph run calls
 * this every time (once per generated char while sampling), and a region
 * over the whole team each time would wake every pool thread just to set a
 * register that is already set. */
static _Thread_local int ftz_team_size;

void df_enable_ftz_all_threads(void)
{
    const int team = omp_get_max_threads();
    if (team <= ftz_team_size && _MM_GET_FLUSH_ZERO_MODE() == _MM_FLUSH_ZERO_ON &&
        _MM_GET_DENORMALS_ZERO_MODE() == _MM_DENORMALS_ZERO_ON)
        return;
    /* libgomp keeps its pool threads alive, so setting MXCSR once per thread
     * sticks for later parallel regions and for OpenBLAS (same pool). */
#pragma omp parallel
    {
        _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
        _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    ftz_team_size = team;
}

int df_num_threads(void) { return omp_get_max_threads(); }

void df_set_num_threads(int n)
{
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}
