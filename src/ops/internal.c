/* Reductions and small helpers shared by the ops. */
#include "internal.h"

#include <string.h>

#include "util.h"

/* Rows per partial sum in sum_rows_add: a constant, so the summation order never depends on
 * the number of threads. */
enum { ROW_BLOCK = 256, SUM_BLOCK = 4096 };

void sum_rows_add(Tape *tape, const float *a, size_t rows, size_t cols, float *out)
{
    size_t blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
    if (blocks <= 1) {
        for (size_t r = 0; r < rows; r++) {
            const float *row = a + r * cols;
            #pragma omp simd
            for (size_t c = 0; c < cols; c++) out[c] += row[c];
        }
        return;
    }
    float *partial = arena_zeros(&tape->arena, mg_mul_size(blocks, cols, "row sums"));
    #pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < blocks; blk++) {
        float *acc = partial + blk * cols;
        size_t end = (blk + 1) * ROW_BLOCK < rows ? (blk + 1) * ROW_BLOCK : rows;
        for (size_t r = blk * ROW_BLOCK; r < end; r++) {
            const float *row = a + r * cols;
            #pragma omp simd
            for (size_t c = 0; c < cols; c++) acc[c] += row[c];
        }
    }
    for (size_t blk = 0; blk < blocks; blk++) {
        const float *acc = partial + blk * cols;
        #pragma omp simd
        for (size_t c = 0; c < cols; c++) out[c] += acc[c];
    }
}

void sum_middle_axis_add(const float *a, size_t outer, size_t n, size_t inner, float *out)
{
    #pragma omp parallel for schedule(static) if (outer * inner > 4096)
    for (size_t o = 0; o < outer; o++) {
        float *dst = out + o * inner;
        for (size_t j = 0; j < n; j++) {
            const float *src = a + (o * n + j) * inner;
            #pragma omp simd
            for (size_t k = 0; k < inner; k++) dst[k] += src[k];
        }
    }
}

void add_row_vector(float *y, const float *b, size_t rows, size_t cols)
{
    #pragma omp parallel for schedule(static) if (rows * cols > 16384)
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        #pragma omp simd
        for (size_t c = 0; c < cols; c++) row[c] += b[c];
    }
}

void require_no_grad(const Tape *tape, const char *op, const Tensor *x)
{
    if (tape->grad_enabled && x->requires_grad)
        mg_panic("%s has no backward: call it with gradients disabled or on a constant input", op);
}

double sum_all(Tape *tape, const float *a, size_t n)
{
    size_t blocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
    double total = 0.0;
    if (blocks <= 4) {
        for (size_t i = 0; i < n; i++) total += a[i];
        return total;
    }
    double *partial = arena_alloc(&tape->arena, blocks * sizeof(double));
    #pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < blocks; blk++) {
        double acc = 0.0;
        size_t end = (blk + 1) * SUM_BLOCK < n ? (blk + 1) * SUM_BLOCK : n;
        for (size_t i = blk * SUM_BLOCK; i < end; i++) acc += a[i];
        partial[blk] = acc;
    }
    for (size_t blk = 0; blk < blocks; blk++) total += partial[blk];
    return total;
}
