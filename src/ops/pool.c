/* Pooling and bilinear resizing. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "internal.h"
#include "util.h"
#include "ops.h"

/* Output size of a k-window pool along one axis (floor mode, as PyTorch's default). */
static int pooled_size(int in, int kernel, int stride, int pad)
{
    return (in + 2 * pad - kernel) / stride + 1;
}

/* One window along one axis, clipped as PyTorch's avg_pool2d clips it: `padded` is the extent
 * inside the padded input, [start, end) the extent inside the image. */
typedef struct Window {
    int start, end, padded;
} Window;

static Window pool_window(int out_index, int in, int kernel, int stride, int pad)
{
    int start = out_index * stride - pad;
    int end = start + kernel < in + pad ? start + kernel : in + pad;
    Window w = {.padded = end - start};
    w.start = start > 0 ? start : 0;
    w.end = end < in ? end : in;
    return w;
}

static void check_pool_args(const char *op, const Tensor *x, int kernel, int stride, int pad)
{
    shape_check_ndim(op, x, 4);
    if (kernel < 1 || stride < 1 || pad < 0 || 2 * pad > kernel)
        mg_panic("%s: invalid kernel %d, stride %d or padding %d", op, kernel, stride, pad);
    if (pooled_size(x->shape.dim[2], kernel, stride, pad) < 1 || pooled_size(x->shape.dim[3], kernel, stride, pad) < 1)
        shape_panic(op, "the window is larger than the padded input", x, NULL);
}

/* Range [lo, hi) of output columns whose tap kx falls inside the input row. */
static void tap_columns(int kx, int w, int stride, int pad, int out_w, int *lo, int *hi)
{
    int first = pad - kx;  /* ow·stride >= first */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    int last = w - 1 + pad - kx;  /* ow·stride <= last */
    *hi = last < 0 ? 0 : last / stride + 1;
    if (*hi > out_w) *hi = out_w;
    if (*lo > *hi) *lo = *hi;
}

/* Reduces the k×k windows of one plane (h, w) into dst (out_h, out_w): their sum, or their
 * maximum with NaN winning. The window is separable: each input row is first reduced over
 * the window's columns into rows (h, out_w), then those rows over the window's rows. Both
 * passes are vectorized across output columns. Sums come out in a different order than a
 * plain loop over each window, which changes them by rounding only; maxima are exact. */
static void pool_plane(const float *src, int h, int w, int kernel, int stride, int pad, int out_h, int out_w, bool max,
                       float *rows, float *dst)
{
    float init = max ? -INFINITY : 0.0f;
    for (int y = 0; y < h; y++) {
        const float *row = src + (size_t)y * w;
        float *acc = rows + (size_t)y * out_w;
        for (int ow = 0; ow < out_w; ow++) acc[ow] = init;
        for (int kx = 0; kx < kernel; kx++) {
            int lo, hi;
            tap_columns(kx, w, stride, pad, out_w, &lo, &hi);
            const float *tap = row + kx - pad;
            if (max) {
                #pragma omp simd
                for (int ow = lo; ow < hi; ow++) {
                    float v = tap[ow * stride];
                    acc[ow] = (v > acc[ow] || v != v) ? v : acc[ow];
                }
            } else {
                #pragma omp simd
                for (int ow = lo; ow < hi; ow++) acc[ow] += tap[ow * stride];
            }
        }
    }
    for (int oh = 0; oh < out_h; oh++) {
        Window wy = pool_window(oh, h, kernel, stride, pad);
        float *out = dst + (size_t)oh * out_w;
        memcpy(out, rows + (size_t)wy.start * out_w, (size_t)out_w * sizeof(float));
        for (int iy = wy.start + 1; iy < wy.end; iy++) {
            const float *acc = rows + (size_t)iy * out_w;
            if (max) {
                #pragma omp simd
                for (int ow = 0; ow < out_w; ow++) out[ow] = (acc[ow] > out[ow] || acc[ow] != acc[ow]) ? acc[ow] : out[ow];
            } else {
                #pragma omp simd
                for (int ow = 0; ow < out_w; ow++) out[ow] += acc[ow];
            }
        }
    }
}

static void avg_pool2d_backward(Tape *tape, const TapeEntry *e);

Tensor *op_avg_pool2d(Tape *tape, Tensor *x, int kernel, int stride, int pad, bool count_include_pad)
{
    check_pool_args("avg_pool2d", x, kernel, stride, pad);
    int planes = x->shape.dim[0] * x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    int out_h = pooled_size(h, kernel, stride, pad), out_w = pooled_size(w, kernel, stride, pad);
    Tensor *y = tensor_empty(tape, shape4(x->shape.dim[0], x->shape.dim[1], out_h, out_w));

    /* the divisor of each output column's window, split into its padded and in-image widths */
    int *padded_w = arena_alloc(&tape->arena, 2 * (size_t)out_w * sizeof(int)), *inside_w = padded_w + out_w;
    for (int ow = 0; ow < out_w; ow++) {
        Window wx = pool_window(ow, w, kernel, stride, pad);
        padded_w[ow] = wx.padded;
        inside_w[ow] = wx.end - wx.start;
    }
    const float *in = x->data;
    float *out = y->data;
    float *rows = arena_alloc(&tape->arena, (size_t)omp_get_max_threads() * h * out_w * sizeof(float));
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        float *dst = out + (size_t)p * out_h * out_w;
        pool_plane(in + (size_t)p * h * w, h, w, kernel, stride, pad, out_h, out_w, false,
                   rows + (size_t)omp_get_thread_num() * h * out_w, dst);
        for (int oh = 0; oh < out_h; oh++) {
            float *row = dst + (size_t)oh * out_w;
            Window wy = pool_window(oh, h, kernel, stride, pad);
            for (int ow = 0; ow < out_w; ow++) {
                int divisor = count_include_pad ? wy.padded * padded_w[ow] : (wy.end - wy.start) * inside_w[ow];
                row[ow] = row[ow] / (float)divisor;
            }
        }
    }

    TapeEntry *e = tape_record(tape, "avg_pool2d", avg_pool2d_backward, y, x, NULL, NULL, NULL);
    if (e) {
        e->iarg[0] = kernel;
        e->iarg[1] = stride;
        e->iarg[2] = pad;
        e->iarg[3] = count_include_pad;
    }
    return y;
}

static void avg_pool2d_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    int kernel = e->iarg[0], stride = e->iarg[1], pad = e->iarg[2];
    bool count_include_pad = e->iarg[3];
    int planes = x->shape.dim[0] * x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    int out_h = y->shape.dim[2], out_w = y->shape.dim[3];
    float *dx = tensor_grad(tape, x);

    #pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        float *d = dx + (size_t)p * h * w;
        const float *g = y->grad + (size_t)p * out_h * out_w;
        for (int oh = 0; oh < out_h; oh++) {
            Window wy = pool_window(oh, h, kernel, stride, pad);
            for (int ow = 0; ow < out_w; ow++) {
                Window wx = pool_window(ow, w, kernel, stride, pad);
                int divisor = count_include_pad ? wy.padded * wx.padded : (wy.end - wy.start) * (wx.end - wx.start);
                float share = g[oh * out_w + ow] / (float)divisor;
                for (int iy = wy.start; iy < wy.end; iy++) {
                    for (int ix = wx.start; ix < wx.end; ix++) d[iy * w + ix] += share;
                }
            }
        }
    }
}

Tensor *op_max_pool2d(Tape *tape, Tensor *x, int kernel, int stride, int pad)
{
    require_no_grad(tape, "max_pool2d", x);
    check_pool_args("max_pool2d", x, kernel, stride, pad);
    int planes = x->shape.dim[0] * x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    int out_h = pooled_size(h, kernel, stride, pad), out_w = pooled_size(w, kernel, stride, pad);
    Tensor *y = tensor_empty(tape, shape4(x->shape.dim[0], x->shape.dim[1], out_h, out_w));
    const float *in = x->data;
    float *out = y->data;
    float *rows = arena_alloc(&tape->arena, (size_t)omp_get_max_threads() * h * out_w * sizeof(float));
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        pool_plane(in + (size_t)p * h * w, h, w, kernel, stride, pad, out_h, out_w, true,
                   rows + (size_t)omp_get_thread_num() * h * out_w, out + (size_t)p * out_h * out_w);
    }
    return y;
}

static void global_avg_pool_backward(Tape *tape, const TapeEntry *e);

Tensor *op_global_avg_pool(Tape *tape, Tensor *x)
{
    shape_check_ndim("global_avg_pool", x, 4);
    int planes = x->shape.dim[0] * x->shape.dim[1];
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3];
    Tensor *y = tensor_empty(tape, shape2(x->shape.dim[0], x->shape.dim[1]));
    #pragma omp parallel for schedule(static) if (x->numel > 16384)
    for (int p = 0; p < planes; p++) {
        const float *src = x->data + (size_t)p * plane;
        double sum = 0.0;
        for (size_t i = 0; i < plane; i++) sum += src[i];
        y->data[p] = (float)(sum / (double)plane);
    }
    tape_record(tape, "global_avg_pool", global_avg_pool_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void global_avg_pool_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    int planes = x->shape.dim[0] * x->shape.dim[1];
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3];
    float *dx = tensor_grad(tape, x);
    #pragma omp parallel for schedule(static) if (x->numel > 16384)
    for (int p = 0; p < planes; p++) {
        float share = y->grad[p] / (float)plane;
        for (size_t i = 0; i < plane; i++) dx[(size_t)p * plane + i] += share;
    }
}

/* Source taps and weights of one output index of a bilinear resize with align_corners=False,
 * computed the way PyTorch's CPU kernel computes them so that results match bit for bit. */
typedef struct LinearTap {
    int i0, i1;
    float l0, l1;
} LinearTap;

static LinearTap linear_tap(int dst, int in, int out)
{
    LinearTap t;
    if (in == out) {
        t = (LinearTap){dst, dst, 1.0f, 0.0f};
        return t;
    }
    float scale = (float)in / (float)out;
    double src = (double)scale * (dst + 0.5) - 0.5;
    if (src < 0.0) src = 0.0;
    t.i0 = (int)src;
    t.i1 = t.i0 + 1 < in ? t.i0 + 1 : in - 1;
    t.l1 = (float)(src - t.i0);
    t.l0 = 1.0f - t.l1;
    return t;
}

Tensor *op_resize_bilinear(Tape *tape, Tensor *x, int out_h, int out_w)
{
    require_no_grad(tape, "resize_bilinear", x);
    shape_check_ndim("resize_bilinear", x, 4);
    if (out_h < 1 || out_w < 1) mg_panic("resize_bilinear: invalid output size %d×%d", out_h, out_w);
    int planes = x->shape.dim[0] * x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    Tensor *y = tensor_empty(tape, shape4(x->shape.dim[0], x->shape.dim[1], out_h, out_w));
    LinearTap *rows = arena_alloc(&tape->arena, (size_t)out_h * sizeof *rows);
    LinearTap *cols = arena_alloc(&tape->arena, (size_t)out_w * sizeof *cols);
    for (int i = 0; i < out_h; i++) rows[i] = linear_tap(i, h, out_h);
    for (int i = 0; i < out_w; i++) cols[i] = linear_tap(i, w, out_w);

    #pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *src = x->data + (size_t)p * h * w;
        float *dst = y->data + (size_t)p * out_h * out_w;
        for (int oh = 0; oh < out_h; oh++) {
            LinearTap r = rows[oh];
            const float *top = src + (size_t)r.i0 * w, *bottom = src + (size_t)r.i1 * w;
            for (int ow = 0; ow < out_w; ow++) {
                LinearTap c = cols[ow];
                /* along the width in both rows, then along the height, with PyTorch's rounding */
                float upper = fmaf(c.l0, top[c.i0], c.l1 * top[c.i1]);
                float lower = fmaf(c.l0, bottom[c.i0], c.l1 * bottom[c.i1]);
                dst[(size_t)oh * out_w + ow] = fmaf(r.l0, upper, r.l1 * lower);
            }
        }
    }
    return y;
}
