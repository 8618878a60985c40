/* float32 tensors of up to four dimensions, contiguous and row-major.
 *
 * Dimension letters used in shape comments across mixgan:
 *   B batch, C channels, H height, W width, N tokens, D token features (channels of a token),
 *   O output features or channels, I input features, KH/KW kernel height/width.
 * Images are (B, C, H, W); token sequences are (B, N, D) with N = H·W in raster order.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdnoreturn.h>

enum { TENSOR_MAX_DIMS = 4 };

typedef struct Shape {
    int ndim;                  /* 0 (scalar) to 4 */
    int dim[TENSOR_MAX_DIMS];  /* dims past ndim are 1 */
} Shape;

typedef struct Tensor {
    float *data;          /* numel floats */
    float *grad;          /* numel floats, or NULL until a gradient reaches this tensor */
    Shape shape;
    size_t numel;
    bool requires_grad;   /* trainable parameter, or computed from one on the tape */
    const char *name;     /* parameter name, or NULL for an activation */
} Tensor;

Shape shape_make(int ndim, const int *dims);
static inline Shape shape1(int a) { return shape_make(1, (int[]){a}); }
static inline Shape shape2(int a, int b) { return shape_make(2, (int[]){a, b}); }
static inline Shape shape3(int a, int b, int c) { return shape_make(3, (int[]){a, b, c}); }
static inline Shape shape4(int a, int b, int c, int d) { return shape_make(4, (int[]){a, b, c, d}); }
size_t shape_numel(Shape s);
bool shape_equal(Shape a, Shape b);
/* Formats a shape as "(2, 3, 4)" into buf (at least 64 bytes); returns buf. */
char *shape_format(Shape s, char *buf);

/* Aborts with a message naming the op and both shapes unless a and b are equal. */
void shape_check_equal(const char *op, const Tensor *a, const Tensor *b);
/* Aborts with a message naming the op unless x has `ndim` dimensions. */
void shape_check_ndim(const char *op, const Tensor *x, int ndim);
/* Aborts with a message naming the op and the tensor shape. */
noreturn void shape_panic(const char *op, const char *what, const Tensor *a, const Tensor *b);
