/* blas.c — the one place that calls OpenBLAS, plus the thread/float environment. */
#include <cblas.h>
#include <omp.h>
#include <xmmintrin.h>
#include <pmmintrin.h>
#include "base.h"

void df_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc)
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
