/* Sum and mean over one axis or over everything. */
#include "internal.h"
#include "ops.h"
#include "util.h"

/* Splits x's shape around `axis` into (outer, n, inner) and returns the reduced shape. */
static Shape split_axis(const char *op, const Tensor *x, int axis, size_t *outer, size_t *n, size_t *inner)
{
    if (axis < 0 || axis >= x->shape.ndim) {
        char buf[64];
        mg_panic("%s: axis %d out of range for shape %s", op, axis, shape_format(x->shape, buf));
    }
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= (size_t)x->shape.dim[i];
    for (int i = axis + 1; i < x->shape.ndim; i++) *inner *= (size_t)x->shape.dim[i];
    *n = (size_t)x->shape.dim[axis];
    Shape s = {.ndim = x->shape.ndim - 1, .dim = {1, 1, 1, 1}};
    for (int i = 0, j = 0; i < x->shape.ndim; i++) {
        if (i != axis) s.dim[j++] = x->shape.dim[i];
    }
    return s;
}

static void reduce_backward(Tape *tape, const TapeEntry *e);

/* Shared by sum and mean: y = scale · Σ over the axis. iarg[0] is the axis (-1 for all). */
static Tensor *reduce(Tape *tape, const char *op, Tensor *x, int axis, bool mean)
{
    Tensor *y;
    float scale;
    if (axis == -1) {
        y = tensor_empty(tape, shape_make(0, NULL));
        scale = mean ? 1.0f / (float)x->numel : 1.0f;
        y->data[0] = (float)(sum_all(tape, x->data, x->numel) * (mean ? 1.0 / (double)x->numel : 1.0));
    } else {
        size_t outer, n, inner;
        y = tensor_zeros(tape, split_axis(op, x, axis, &outer, &n, &inner));
        sum_middle_axis_add(x->data, outer, n, inner, y->data);
        scale = mean ? 1.0f / (float)n : 1.0f;
        if (mean) {
            for (size_t i = 0; i < y->numel; i++) y->data[i] /= (float)n;
        }
    }
    TapeEntry *e = tape_record(tape, op, reduce_backward, y, x, NULL, NULL, NULL);
    if (e) {
        e->iarg[0] = axis;
        e->farg[0] = scale;
    }
    return y;
}

Tensor *op_sum(Tape *tape, Tensor *x, int axis)
{
    return reduce(tape, "sum", x, axis, false);
}

Tensor *op_mean(Tape *tape, Tensor *x, int axis)
{
    return reduce(tape, "mean", x, axis, true);
}

static void reduce_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    int axis = e->iarg[0];
    float scale = e->farg[0], *dx = tensor_grad(tape, x);
    if (axis == -1) {
        float g = scale * y->grad[0];
        #pragma omp parallel for simd schedule(static) if (x->numel > (1 << 15))
        for (size_t i = 0; i < x->numel; i++) dx[i] += g;
        return;
    }
    size_t outer, n, inner;
    split_axis(e->op, x, axis, &outer, &n, &inner);
    #pragma omp parallel for schedule(static) if (x->numel > (1 << 15))
    for (size_t o = 0; o < outer; o++) {
        for (size_t j = 0; j < n; j++) {
            float *d = dx + (o * n + j) * inner;
            const float *g = y->grad + o * inner;
            #pragma omp simd
            for (size_t k = 0; k < inner; k++) d[k] += scale * g[k];
        }
    }
}
