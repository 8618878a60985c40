/* Elementwise ops: add, mul, scale and the activations. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "ops.h"
#include "vecmath.h"

/* Loops over more elements than this run on all threads. */
enum { PARALLEL_MIN = 1 << 15 };

/* Checks the broadcast rule of op_add/op_mul and returns b's element count: b's shape with
 * leading 1s removed must equal a's trailing dims. */
static size_t broadcast_size(const char *op, const Tensor *a, const Tensor *b)
{
    int skip = 0;
    while (skip < b->shape.ndim && b->shape.dim[skip] == 1) skip++;
    int kept = b->shape.ndim - skip;
    if (kept > a->shape.ndim) shape_panic(op, "cannot broadcast the second operand", a, b);
    for (int i = 0; i < kept; i++) {
        if (b->shape.dim[skip + i] != a->shape.dim[a->shape.ndim - kept + i])
            shape_panic(op, "cannot broadcast the second operand", a, b);
    }
    return b->numel;
}

static void add_backward(Tape *tape, const TapeEntry *e);

Tensor *op_add(Tape *tape, Tensor *a, Tensor *b)
{
    size_t inner = broadcast_size("add", a, b), outer = a->numel / inner;
    Tensor *y = tensor_empty(tape, a->shape);
    #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
    for (size_t o = 0; o < outer; o++) {
        const float *pa = a->data + o * inner;
        float *py = y->data + o * inner;
        #pragma omp simd
        for (size_t i = 0; i < inner; i++) py[i] = pa[i] + b->data[i];
    }
    tape_record(tape, "add", add_backward, y, a, b, NULL, NULL);
    return y;
}

static void add_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *a = e->in[0], *b = e->in[1], *y = e->out;
    if (a->requires_grad) {
        float *da = tensor_grad(tape, a);
        #pragma omp parallel for simd schedule(static) if (a->numel > PARALLEL_MIN)
        for (size_t i = 0; i < a->numel; i++) da[i] += y->grad[i];
    }
    if (b->requires_grad) sum_rows_add(tape, y->grad, a->numel / b->numel, b->numel, tensor_grad(tape, b));
}

static void mul_backward(Tape *tape, const TapeEntry *e);

Tensor *op_mul(Tape *tape, Tensor *a, Tensor *b)
{
    size_t inner = broadcast_size("mul", a, b), outer = a->numel / inner;
    Tensor *y = tensor_empty(tape, a->shape);
    #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
    for (size_t o = 0; o < outer; o++) {
        const float *pa = a->data + o * inner;
        float *py = y->data + o * inner;
        #pragma omp simd
        for (size_t i = 0; i < inner; i++) py[i] = pa[i] * b->data[i];
    }
    tape_record(tape, "mul", mul_backward, y, a, b, NULL, NULL);
    return y;
}

static void mul_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *a = e->in[0], *b = e->in[1], *y = e->out;
    size_t inner = b->numel, outer = a->numel / inner;
    if (a->requires_grad) {
        float *da = tensor_grad(tape, a);
        #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
        for (size_t o = 0; o < outer; o++) {
            #pragma omp simd
            for (size_t i = 0; i < inner; i++) da[o * inner + i] += y->grad[o * inner + i] * b->data[i];
        }
    }
    if (b->requires_grad) {
        /* db[i] = Σ_o dy[o, i]·a[o, i], summed over o in order for every i */
        float *db = tensor_grad(tape, b);
        #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
        for (size_t i = 0; i < inner; i++) {
            float acc = 0.0f;
            for (size_t o = 0; o < outer; o++) acc += y->grad[o * inner + i] * a->data[o * inner + i];
            db[i] += acc;
        }
    }
}

static void scale_backward(Tape *tape, const TapeEntry *e);

Tensor *op_scale(Tape *tape, Tensor *x, float s)
{
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) y->data[i] = s * x->data[i];
    TapeEntry *e = tape_record(tape, "scale", scale_backward, y, x, NULL, NULL, NULL);
    if (e) e->farg[0] = s;
    return y;
}

static void scale_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float s = e->farg[0], *dx = tensor_grad(tape, x);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) dx[i] += s * y->grad[i];
}

/* ---- activations: each backward reads the saved input or output ---- */

static void gelu_backward(Tape *tape, const TapeEntry *e);

Tensor *op_gelu(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * vec_normal_cdf(x->data[i]);
    tape_record(tape, "gelu", gelu_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void gelu_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float *dx = tensor_grad(tape, x);
    const float inv_sqrt_2pi = 0.39894228040143268f;
    /* d/dx x·Φ(x) = Φ(x) + x·φ(x) */
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) {
        float v = x->data[i];
        float pdf = inv_sqrt_2pi * vec_expf(-0.5f * v * v);
        dx[i] += y->grad[i] * (vec_normal_cdf(v) + v * pdf);
    }
}

static void relu_backward(Tape *tape, const TapeEntry *e);

Tensor *op_relu(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] > 0.0f ? x->data[i] : 0.0f;
    tape_record(tape, "relu", relu_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void relu_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float *dx = tensor_grad(tape, x);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) dx[i] += x->data[i] > 0.0f ? y->grad[i] : 0.0f;
}

static void leaky_relu_backward(Tape *tape, const TapeEntry *e);

Tensor *op_leaky_relu(Tape *tape, Tensor *x, float slope)
{
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] > 0.0f ? x->data[i] : slope * x->data[i];
    TapeEntry *e = tape_record(tape, "leaky_relu", leaky_relu_backward, y, x, NULL, NULL, NULL);
    if (e) e->farg[0] = slope;
    return y;
}

static void leaky_relu_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float slope = e->farg[0], *dx = tensor_grad(tape, x);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) dx[i] += x->data[i] > 0.0f ? y->grad[i] : slope * y->grad[i];
}

static void tanh_backward(Tape *tape, const TapeEntry *e);

Tensor *op_tanh(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) y->data[i] = tanhf(x->data[i]);
    tape_record(tape, "tanh", tanh_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void tanh_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float *dx = tensor_grad(tape, x);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) dx[i] += y->grad[i] * (1.0f - y->data[i] * y->data[i]);
}

static void sigmoid_backward(Tape *tape, const TapeEntry *e);

Tensor *op_sigmoid(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) {
        /* the exponent is never positive, so neither branch overflows */
        float v = x->data[i];
        float z = expf(-fabsf(v));
        y->data[i] = v >= 0.0f ? 1.0f / (1.0f + z) : z / (1.0f + z);
    }
    tape_record(tape, "sigmoid", sigmoid_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void sigmoid_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float *dx = tensor_grad(tape, x);
    #pragma omp parallel for simd schedule(static) if (x->numel > PARALLEL_MIN)
    for (size_t i = 0; i < x->numel; i++) dx[i] += y->grad[i] * y->data[i] * (1.0f - y->data[i]);
}
