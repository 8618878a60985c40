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

/* Runs later mg_sgemm() calls on at most `n` threads (0, the default: no cap), while mixgan's
 * own loops keep the full count. The determinism test uses it to check those loops apart
 * from OpenBLAS, because some of its kernels (Haswell, Zen) round differently with more
 * threads. */
void mg_sgemm_cap_threads(int n);

/* Whether OpenBLAS gives bit-identical products on this CPU whatever the thread count and
 * the number of rows in a call, measured once on a few GEMMs of the reference networks'
 * shapes. True of its SkylakeX kernels, false of its Haswell and Zen ones. */
bool mg_sgemm_is_reproducible(void);

/* OpenBLAS's name for the kernels it picked on this CPU, such as "SkylakeX" or "Zen". */
const char *mg_sgemm_core_name(void);
