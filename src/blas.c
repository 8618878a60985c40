/* OpenBLAS sgemm wrapper. */
#include "blas.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int thread_cap;

void mg_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (omp_in_parallel()) mg_panic("mg_sgemm called inside an OpenMP parallel region");
    if (m == 0 || n == 0) return;
    /* OpenMP builds of OpenBLAS take their thread count from omp_get_max_threads() at each
     * call, so the cap lowers that for the call only. */
    int threads = omp_get_max_threads();
    bool capped = thread_cap > 0 && threads > thread_cap;
    if (capped) omp_set_num_threads(thread_cap);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (capped) omp_set_num_threads(threads);
}

void mg_sgemm_cap_threads(int n)
{
    thread_cap = n > 0 ? n : 0;
}

const char *mg_sgemm_core_name(void)
{
    return openblas_get_corename();
}

/* C (m, n) = A (m, k) · Bᵀ with B (n, k), as a linear layer computes it, filled with values
 * that depend only on the element's position. */
static float *linear_product(int m, int n, int k, int threads)
{
    float *a = mg_malloc((size_t)m * k * sizeof(float));
    float *b = mg_malloc((size_t)n * k * sizeof(float));
    float *c = mg_malloc((size_t)m * n * sizeof(float));
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7919) % 1009) / 1009.0f - 0.5f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)((i * 104729) % 997) / 997.0f - 0.5f;
    int saved_threads = omp_get_max_threads(), saved_cap = thread_cap;
    omp_set_num_threads(threads);
    thread_cap = 0;
    mg_sgemm(false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
    thread_cap = saved_cap;
    omp_set_num_threads(saved_threads);
    free(a);
    free(b);
    return c;
}

bool mg_sgemm_is_reproducible(void)
{
    static int known = -1;
    if (known >= 0) return known;
    /* (rows, columns, depth): a qkv projection, a convolution as im2col, an Inception 1×1. */
    static const int shapes[][3] = {{512, 192, 64}, {2048, 64, 288}, {600, 192, 768}};
    known = 1;
    for (size_t s = 0; s < MG_ARRAY_LEN(shapes) && known; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *single = linear_product(m, n, k, 1);
        float *threaded = linear_product(m, n, k, 2);
        float *fewer_rows = linear_product(m / 2 + 3, n, k, 1);
        if (memcmp(single, threaded, (size_t)m * n * sizeof(float)) != 0 ||
            memcmp(single, fewer_rows, (size_t)(m / 2 + 3) * n * sizeof(float)) != 0)
            known = 0;
        free(single);
        free(threaded);
        free(fewer_rows);
    }
    return known;
}
