/* OpenBLAS sgemm wrapper. */
#include "blas.h"

#include <cblas.h>
#include <omp.h>

#include "util.h"

void mg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (omp_in_parallel()) mg_panic("mg_sgemm called inside an OpenMP parallel region");
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
