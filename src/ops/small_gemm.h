/* A register-tiled matrix product for the small per-(image, head) products of attention,
 * which run inside OpenMP loops where sgemm must not be called.
 *
 * C (m, n) = alpha · A (m, k) · B (k, n), added to C when `accumulate`. A is read one element
 * at a time and may have any strides (so it can be a transposed view); B and C are row-major
 * with contiguous rows. Every element of C receives its k terms in order, so the result does
 * not depend on the tiling of the threads around it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef float small_gemm_vec __attribute__((vector_size(32)));  /* 8 floats */
typedef float small_gemm_wide __attribute__((vector_size(64)));  /* 16 floats */

/* The 4×32 tile keeps eight 16-float accumulators in registers, which takes AVX-512. Without
 * it GCC keeps the halves of each 16-float vector on the stack. On an AMD EPYC with AVX2,
 * attention ran at 4.3 GFLOP/s with this tile and at 38 with the 4×16 one alone. */
#ifdef __AVX512F__
enum { SMALL_GEMM_WIDE_TILES = 1 };
#else
enum { SMALL_GEMM_WIDE_TILES = 0 };
#endif

static inline small_gemm_wide small_gemm_load_wide(const float *p)
{
    small_gemm_wide v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void small_gemm_store_wide(float *p, small_gemm_wide v, float alpha, bool accumulate)
{
    v *= alpha;
    if (accumulate) {
        small_gemm_wide old;
        memcpy(&old, p, sizeof old);
        v += old;
    }
    memcpy(p, &v, sizeof v);
}

/* Rows [i, i + 4) and columns [j, j + 32) of C. */
static inline void small_gemm_tile_4x32(int k, const float *a, ptrdiff_t a_row, ptrdiff_t a_col, const float *b,
                                        int ldb, float *c, int ldc, float alpha, bool accumulate)
{
    small_gemm_wide acc[4][2] = {{{0}}};
    for (int p = 0; p < k; p++) {
        small_gemm_wide b0 = small_gemm_load_wide(b + (size_t)p * ldb), b1 = small_gemm_load_wide(b + (size_t)p * ldb + 16);
        for (int r = 0; r < 4; r++) {
            float s = a[r * a_row + p * a_col];
            acc[r][0] += s * b0;
            acc[r][1] += s * b1;
        }
    }
    for (int r = 0; r < 4; r++) {
        small_gemm_store_wide(c + (size_t)r * ldc, acc[r][0], alpha, accumulate);
        small_gemm_store_wide(c + (size_t)r * ldc + 16, acc[r][1], alpha, accumulate);
    }
}

static inline small_gemm_vec small_gemm_load(const float *p)
{
    small_gemm_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void small_gemm_store(float *p, small_gemm_vec v, float alpha, bool accumulate)
{
    v *= alpha;
    if (accumulate) {
        small_gemm_vec old;
        memcpy(&old, p, sizeof old);
        v += old;
    }
    memcpy(p, &v, sizeof v);
}

/* Rows [i, i + 4) and columns [j, j + 16) of C. */
static inline void small_gemm_tile_4x16(int k, const float *a, ptrdiff_t a_row, ptrdiff_t a_col, const float *b,
                                        int ldb, float *c, int ldc, float alpha, bool accumulate)
{
    small_gemm_vec acc[4][2] = {{{0}}};
    for (int p = 0; p < k; p++) {
        small_gemm_vec b0 = small_gemm_load(b + (size_t)p * ldb), b1 = small_gemm_load(b + (size_t)p * ldb + 8);
        for (int r = 0; r < 4; r++) {
            float s = a[r * a_row + p * a_col];
            acc[r][0] += s * b0;
            acc[r][1] += s * b1;
        }
    }
    for (int r = 0; r < 4; r++) {
        small_gemm_store(c + (size_t)r * ldc, acc[r][0], alpha, accumulate);
        small_gemm_store(c + (size_t)r * ldc + 8, acc[r][1], alpha, accumulate);
    }
}

/* Rows [i, i + rows) (rows <= 4) and columns [j, j + 8) of C. */
static inline void small_gemm_tile_rows_x8(int rows, int k, const float *a, ptrdiff_t a_row, ptrdiff_t a_col,
                                           const float *b, int ldb, float *c, int ldc, float alpha, bool accumulate)
{
    small_gemm_vec acc[4] = {{0}};
    for (int p = 0; p < k; p++) {
        small_gemm_vec b0 = small_gemm_load(b + (size_t)p * ldb);
        for (int r = 0; r < rows; r++) acc[r] += a[r * a_row + p * a_col] * b0;
    }
    for (int r = 0; r < rows; r++) small_gemm_store(c + (size_t)r * ldc, acc[r], alpha, accumulate);
}

static inline void small_gemm(int m, int n, int k, float alpha, const float *a, ptrdiff_t a_row, ptrdiff_t a_col,
                              const float *b, int ldb, bool accumulate, float *c, int ldc)
{
    for (int i = 0; i < m; i += 4) {
        int rows = m - i < 4 ? m - i : 4;
        const float *ai = a + i * a_row;
        float *ci = c + (size_t)i * ldc;
        int j = 0;
        if (rows == 4) {
            for (; SMALL_GEMM_WIDE_TILES && j + 32 <= n; j += 32)
                small_gemm_tile_4x32(k, ai, a_row, a_col, b + j, ldb, ci + j, ldc, alpha, accumulate);
            for (; j + 16 <= n; j += 16)
                small_gemm_tile_4x16(k, ai, a_row, a_col, b + j, ldb, ci + j, ldc, alpha, accumulate);
        }
        for (; j + 8 <= n; j += 8)
            small_gemm_tile_rows_x8(rows, k, ai, a_row, a_col, b + j, ldb, ci + j, ldc, alpha, accumulate);
        /* the last n mod 8 columns */
        for (int r = 0; r < rows; r++) {
            for (int jj = j; jj < n; jj++) {
                float acc = 0.0f;
                for (int p = 0; p < k; p++) acc += ai[r * a_row + p * a_col] * b[(size_t)p * ldb + jj];
                float *out = &ci[(size_t)r * ldc + jj];
                *out = accumulate ? *out + alpha * acc : alpha * acc;
            }
        }
    }
}
