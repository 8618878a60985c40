/* Shapes and shape checks. */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

Shape shape_make(int ndim, const int *dims)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) mg_panic("shape with %d dimensions (max %d)", ndim, TENSOR_MAX_DIMS);
    Shape s = {.ndim = ndim, .dim = {1, 1, 1, 1}};
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0) mg_panic("shape dimension %d is %d (must be positive)", i, dims[i]);
        s.dim[i] = dims[i];
    }
    return s;
}

size_t shape_numel(Shape s)
{
    size_t n = 1;
    for (int i = 0; i < s.ndim; i++) n = mg_mul_size(n, (size_t)s.dim[i], "tensor size");
    return n;
}

bool shape_equal(Shape a, Shape b)
{
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++) {
        if (a.dim[i] != b.dim[i]) return false;
    }
    return true;
}

char *shape_format(Shape s, char *buf)
{
    int n = sprintf(buf, "(");
    for (int i = 0; i < s.ndim; i++) n += sprintf(buf + n, i ? ", %d" : "%d", s.dim[i]);
    sprintf(buf + n, ")");
    return buf;
}

void shape_panic(const char *op, const char *what, const Tensor *a, const Tensor *b)
{
    char sa[64], sb[64];
    if (b)
        mg_panic("%s: %s: shapes %s and %s", op, what, shape_format(a->shape, sa), shape_format(b->shape, sb));
    mg_panic("%s: %s: shape %s", op, what, shape_format(a->shape, sa));
}

void shape_check_equal(const char *op, const Tensor *a, const Tensor *b)
{
    if (!shape_equal(a->shape, b->shape)) shape_panic(op, "shapes differ", a, b);
}

void shape_check_ndim(const char *op, const Tensor *x, int ndim)
{
    if (x->shape.ndim != ndim) {
        char what[64];
        snprintf(what, sizeof what, "expected %d dimensions", ndim);
        shape_panic(op, what, x, NULL);
    }
}
