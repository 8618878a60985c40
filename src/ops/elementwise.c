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
    const float *pb = b->data;
    #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
    for (size_t o = 0; o < outer; o++) {
        const float *pa = a->data + o * inner;
        float *py = y->data + o * inner;
        #pragma omp simd
        for (size_t i = 0; i < inner; i++) py[i] = pa[i] + pb[i];
    }
    tape_record(tape, "add", add_backward, y, a, b, NULL, NULL);
    return y;
}

static void add_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *a = e->in[0], *b = e->in[1], *y = e->out;
    if (a->requires_grad) {
        float *da = tensor_grad(tape, a);
        const float *dy = y->grad;
        size_t n = a->numel;
        #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) da[i] += dy[i];
    }
    if (b->requires_grad) sum_rows_add(tape, y->grad, a->numel / b->numel, b->numel, tensor_grad(tape, b));
}

static void mul_backward(Tape *tape, const TapeEntry *e);

Tensor *op_mul(Tape *tape, Tensor *a, Tensor *b)
{
    size_t inner = broadcast_size("mul", a, b), outer = a->numel / inner;
    Tensor *y = tensor_empty(tape, a->shape);
    const float *pb = b->data;
    #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
    for (size_t o = 0; o < outer; o++) {
        const float *pa = a->data + o * inner;
        float *py = y->data + o * inner;
        #pragma omp simd
        for (size_t i = 0; i < inner; i++) py[i] = pa[i] * pb[i];
    }
    tape_record(tape, "mul", mul_backward, y, a, b, NULL, NULL);
    return y;
}

static void mul_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *a = e->in[0], *b = e->in[1], *y = e->out;
    size_t inner = b->numel, outer = a->numel / inner;
    const float *dy = y->grad, *pa = a->data, *pb = b->data;
    if (a->requires_grad) {
        float *da = tensor_grad(tape, a);
        #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
        for (size_t o = 0; o < outer; o++) {
            #pragma omp simd
            for (size_t i = 0; i < inner; i++) da[o * inner + i] += dy[o * inner + i] * pb[i];
        }
    }
    if (b->requires_grad) {
        /* db[i] = Σ_o dy[o, i]·a[o, i], summed over o in order for every i */
        float *db = tensor_grad(tape, b);
        #pragma omp parallel for schedule(static) if (a->numel > PARALLEL_MIN)
        for (size_t i = 0; i < inner; i++) {
            float acc = 0.0f;
            for (size_t o = 0; o < outer; o++) acc += dy[o * inner + i] * pa[o * inner + i];
            db[i] += acc;
        }
    }
}

static void scale_backward(Tape *tape, const TapeEntry *e);

Tensor *op_scale(Tape *tape, Tensor *x, float s)
{
    Tensor *y = tensor_empty(tape, x->shape);
    const float *in = x->data;
    float *out = y->data;
    size_t n = x->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = s * in[i];
    TapeEntry *e = tape_record(tape, "scale", scale_backward, y, x, NULL, NULL, NULL);
    if (e) e->farg[0] = s;
    return y;
}

static void scale_backward(Tape *tape, const TapeEntry *e)
{
    float s = e->farg[0], *dx = tensor_grad(tape, e->in[0]);
    const float *dy = e->out->grad;
    size_t n = e->in[0]->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += s * dy[i];
}

/* ---- activations: each backward reads the saved input or output ----------------------
 * The loops read through local pointers: with the tensor fields in the loop, GCC cannot
 * rule out that a store changes them and falls back to gathers and scatters. */

static void gelu_backward(Tape *tape, const TapeEntry *e);

Tensor *op_gelu(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    const float *in = x->data;
    float *out = y->data;
    size_t n = x->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = in[i] * vec_normal_cdf(in[i]);
    tape_record(tape, "gelu", gelu_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void gelu_backward(Tape *tape, const TapeEntry *e)
{
    const float *in = e->in[0]->data, *dy = e->out->grad;
    float *dx = tensor_grad(tape, e->in[0]);
    size_t n = e->in[0]->numel;
    const float inv_sqrt_2pi = 0.39894228040143268f;
    /* d/dx x·Φ(x) = Φ(x) + x·φ(x) */
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = in[i];
        float pdf = inv_sqrt_2pi * vec_expf(-0.5f * v * v);
        dx[i] += dy[i] * (vec_normal_cdf(v) + v * pdf);
    }
}

static void relu_backward(Tape *tape, const TapeEntry *e);

Tensor *op_relu(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    const float *in = x->data;
    float *out = y->data;
    size_t n = x->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i]; /* NaN stays NaN */
    tape_record(tape, "relu", relu_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void relu_backward(Tape *tape, const TapeEntry *e)
{
    const float *in = e->in[0]->data, *dy = e->out->grad;
    float *dx = tensor_grad(tape, e->in[0]);
    size_t n = e->in[0]->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += in[i] <= 0.0f ? 0.0f : dy[i];
}

static void leaky_relu_backward(Tape *tape, const TapeEntry *e);

Tensor *op_leaky_relu(Tape *tape, Tensor *x, float slope)
{
    Tensor *y = tensor_empty(tape, x->shape);
    const float *in = x->data;
    float *out = y->data;
    size_t n = x->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : slope * in[i];
    TapeEntry *e = tape_record(tape, "leaky_relu", leaky_relu_backward, y, x, NULL, NULL, NULL);
    if (e) e->farg[0] = slope;
    return y;
}

static void leaky_relu_backward(Tape *tape, const TapeEntry *e)
{
    const float *in = e->in[0]->data, *dy = e->out->grad;
    float slope = e->farg[0], *dx = tensor_grad(tape, e->in[0]);
    size_t n = e->in[0]->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += in[i] > 0.0f ? dy[i] : slope * dy[i];
}

static void tanh_backward(Tape *tape, const TapeEntry *e);

Tensor *op_tanh(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    const float *in = x->data;
    float *out = y->data;
    size_t n = x->numel;
    #pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
    tape_record(tape, "tanh", tanh_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void tanh_backward(Tape *tape, const TapeEntry *e)
{
    const float *out = e->out->data, *dy = e->out->grad;
    float *dx = tensor_grad(tape, e->in[0]);
    size_t n = e->in[0]->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - out[i] * out[i]);
}

static void sigmoid_backward(Tape *tape, const TapeEntry *e);

Tensor *op_sigmoid(Tape *tape, Tensor *x)
{
    Tensor *y = tensor_empty(tape, x->shape);
    const float *in = x->data;
    float *out = y->data;
    size_t n = x->numel;
    #pragma omp parallel for schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        /* the exponent is never positive, so neither branch overflows */
        float z = expf(-fabsf(in[i]));
        out[i] = in[i] >= 0.0f ? 1.0f / (1.0f + z) : z / (1.0f + z);
    }
    tape_record(tape, "sigmoid", sigmoid_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void sigmoid_backward(Tape *tape, const TapeEntry *e)
{
    const float *out = e->out->data, *dy = e->out->grad;
    float *dx = tensor_grad(tape, e->in[0]);
    size_t n = e->in[0]->numel;
    #pragma omp parallel for simd schedule(static) if (n > PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * out[i] * (1.0f - out[i]);
}
