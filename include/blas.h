/* The one entry point to OpenBLAS matrix products.
 *
 * Row-major single-precision GEMM: C (M, N) = alpha · op(A) · op(B) + beta · C, where op(A) is
 * (M, K) and op(B) is (K, N); lda, ldb and ldc are the row strides of A, B and C as stored.
 * OpenBLAS runs it on the thread count set by cli_setup_threads(). Never call it from inside
 * an OpenMP parallel region.
 */
#pragma once

#include <stdbool.h>

void mg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
