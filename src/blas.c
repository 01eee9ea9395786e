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

/* AUTO: which shapes dagflow's kernels take (see the measurements above). */
static bool own_is_faster(bool ta, bool tb, int64_t M, int64_t N, int64_t K)
{
    (void)ta; (void)tb; (void)M; (void)N; (void)K;
    return true;
}

void df_sgemm_path(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (path == DF_GEMM_AUTO) {
        if (best_own_path() == DF_GEMM_PORTABLE || !own_is_faster(ta, tb, M, N, K)) path = DF_GEMM_OPENBLAS;
        else path = best_own_path();
    }
    for (; path >= DF_GEMM_PORTABLE; path--)        /* avx512 -> avx2 -> portable */
        if (df_gemm_own(path, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    openblas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void df_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc)
{
    df_sgemm_path(df_gemm_requested_path(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void df_enable_ftz_all_threads(void)
{
    /* libgomp keeps its pool threads alive, so setting MXCSR once per thread
     * sticks for later parallel regions and for OpenBLAS (same pool). */
#pragma omp parallel
    {
        _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
        _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
}

int df_num_threads(void) { return omp_get_max_threads(); }

void df_set_num_threads(int n)
{
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}
