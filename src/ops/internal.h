/* Helpers shared by the op implementations; not part of the public API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tape.h"

/* out[c] += Σ_r a[r·cols + c] for a (rows, cols). The row order of the sum is fixed (blocks
 * of rows summed in order, then the block sums in order), so the result does not depend on
 * the thread count. Temporary space comes from the tape's arena. */
void sum_rows_add(Tape *tape, const float *a, size_t rows, size_t cols, float *out);

/* For a viewed as (outer, n, inner), adds the sum over the middle axis:
 * out[o·inner + k] += Σ_j a[(o·n + j)·inner + k], in the order of j. */
void sum_middle_axis_add(const float *a, size_t outer, size_t n, size_t inner, float *out);

/* y[r·cols + c] += b[c] for y (rows, cols). */
void add_row_vector(float *y, const float *b, size_t rows, size_t cols);

/* Aborts when a forward-only op receives an input that would need a gradient. */
void require_no_grad(const Tape *tape, const char *op, const Tensor *x);

/* Sum of all elements in double, in an order that does not depend on the thread count. */
double sum_all(Tape *tape, const float *a, size_t n);

/* Winograd F(2×2, 3×3) convolution with an epilogue on each output channel o:
 * y·scale[o] + shift[o] (NULL: 1 and 0), then ReLU when `relu`. See winograd.c. */
Tensor *conv2d_winograd_forward(Tape *tape, Tensor *x, Tensor *w, int pad, const float *scale, const float *shift,
                                bool relu);
