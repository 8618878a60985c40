/* linear and batched matmul. */
#include <string.h>

#include "blas.h"
#include "internal.h"
#include "ops.h"

static void linear_backward(Tape *tape, const TapeEntry *e);

Tensor *op_linear(Tape *tape, Tensor *x, Tensor *w, Tensor *b)
{
    shape_check_ndim("linear weight", w, 2);
    int in_features = w->shape.dim[1], out_features = w->shape.dim[0];
    if (x->shape.ndim < 1 || x->shape.dim[x->shape.ndim - 1] != in_features)
        shape_panic("linear", "input features differ from the weight's columns", x, w);
    if (b && (b->numel != (size_t)out_features)) shape_panic("linear", "bias size differs from the weight's rows", b, w);

    Shape shape = x->shape;
    shape.dim[shape.ndim - 1] = out_features;
    Tensor *y = tensor_empty(tape, shape);
    int rows = (int)(x->numel / (size_t)in_features);

    /* y (rows, O) = x (rows, I) · wᵀ (I, O) */
    mg_sgemm(false, true, rows, out_features, in_features, 1.0f, x->data, in_features, w->data,
             in_features, 0.0f, y->data, out_features);
    if (b) add_row_vector(y->data, b->data, (size_t)rows, (size_t)out_features);

    tape_record(tape, "linear", linear_backward, y, x, w, b, NULL);
    return y;
}

static void linear_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *y = e->out;
    int in_features = w->shape.dim[1], out_features = w->shape.dim[0];
    int rows = (int)(x->numel / (size_t)in_features);

    if (x->requires_grad) {
        /* dx (rows, I) += dy (rows, O) · w (O, I) */
        mg_sgemm(false, false, rows, in_features, out_features, 1.0f, y->grad, out_features, w->data,
                 in_features, 1.0f, tensor_grad(tape, x), in_features);
    }
    if (w->requires_grad) {
        /* dw (O, I) += dyᵀ (O, rows) · x (rows, I) */
        mg_sgemm(true, false, out_features, in_features, rows, 1.0f, y->grad, out_features, x->data,
                 in_features, 1.0f, tensor_grad(tape, w), in_features);
    }
    if (b && b->requires_grad) sum_rows_add(tape, y->grad, (size_t)rows, (size_t)out_features, tensor_grad(tape, b));
}

static void matmul_backward(Tape *tape, const TapeEntry *e);

Tensor *op_matmul(Tape *tape, Tensor *a, Tensor *b)
{
    shape_check_ndim("matmul", a, 3);
    shape_check_ndim("matmul", b, 3);
    int batch = a->shape.dim[0], m = a->shape.dim[1], k = a->shape.dim[2], n = b->shape.dim[2];
    if (b->shape.dim[0] != batch || b->shape.dim[1] != k)
        shape_panic("matmul", "expected a (B, M, K) and b (B, K, N)", a, b);

    Tensor *c = tensor_empty(tape, shape3(batch, m, n));
    for (int i = 0; i < batch; i++) {
        mg_sgemm(false, false, m, n, k, 1.0f, a->data + (size_t)i * m * k, k, b->data + (size_t)i * k * n, n,
                 0.0f, c->data + (size_t)i * m * n, n);
    }
    tape_record(tape, "matmul", matmul_backward, c, a, b, NULL, NULL);
    return c;
}

static void matmul_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *a = e->in[0], *b = e->in[1], *c = e->out;
    int batch = a->shape.dim[0], m = a->shape.dim[1], k = a->shape.dim[2], n = b->shape.dim[2];
    for (int i = 0; i < batch; i++) {
        const float *dc = c->grad + (size_t)i * m * n;
        if (a->requires_grad) {
            /* da (M, K) += dc (M, N) · bᵀ (N, K) */
            mg_sgemm(false, true, m, k, n, 1.0f, dc, n, b->data + (size_t)i * k * n, n, 1.0f,
                     tensor_grad(tape, a) + (size_t)i * m * k, k);
        }
        if (b->requires_grad) {
            /* db (K, N) += aᵀ (K, M) · dc (M, N) */
            mg_sgemm(true, false, k, n, m, 1.0f, a->data + (size_t)i * m * k, k, dc, n, 1.0f,
                     tensor_grad(tape, b) + (size_t)i * k * n, n);
        }
    }
}
