/* Layout ops: tokens ↔ image, PixelShuffle, patch merge, class token, channel concat and
 * token slice. Each backward is the inverse permutation, accumulated. */
#include <string.h>

#include "internal.h"
#include "util.h"
#include "ops.h"

/* dst (B, Q, R) += or = the transpose of src (B, R, Q) in the last two axes. */
static void transpose_last_two(const float *src, int batch, int rows, int cols, float *dst, bool accumulate)
{
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)batch * rows * cols > 16384)
    for (int b = 0; b < batch; b++) {
        for (int c = 0; c < cols; c++) {
            const float *s = src + (size_t)b * rows * cols + c;
            float *d = dst + ((size_t)b * cols + c) * rows;
            if (accumulate) {
                for (int r = 0; r < rows; r++) d[r] += s[(size_t)r * cols];
            } else {
                for (int r = 0; r < rows; r++) d[r] = s[(size_t)r * cols];
            }
        }
    }
}

static void tokens_to_image_backward(Tape *tape, const TapeEntry *e);

Tensor *op_tokens_to_image(Tape *tape, Tensor *x, int height, int width)
{
    shape_check_ndim("tokens_to_image", x, 3);
    if (x->shape.dim[1] != height * width) shape_panic("tokens_to_image", "token count differs from height·width", x, NULL);
    int batch = x->shape.dim[0], tokens = x->shape.dim[1], dim = x->shape.dim[2];
    Tensor *y = tensor_empty(tape, shape4(batch, dim, height, width));
    transpose_last_two(x->data, batch, tokens, dim, y->data, false);
    tape_record(tape, "tokens_to_image", tokens_to_image_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void tokens_to_image_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    transpose_last_two(y->grad, x->shape.dim[0], x->shape.dim[2], x->shape.dim[1], tensor_grad(tape, x), true);
}

static void image_to_tokens_backward(Tape *tape, const TapeEntry *e);

Tensor *op_image_to_tokens(Tape *tape, Tensor *x)
{
    shape_check_ndim("image_to_tokens", x, 4);
    int batch = x->shape.dim[0], channels = x->shape.dim[1], tokens = x->shape.dim[2] * x->shape.dim[3];
    Tensor *y = tensor_empty(tape, shape3(batch, tokens, channels));
    transpose_last_two(x->data, batch, channels, tokens, y->data, false);
    tape_record(tape, "image_to_tokens", image_to_tokens_backward, y, x, NULL, NULL, NULL);
    return y;
}

static void image_to_tokens_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    int tokens = x->shape.dim[2] * x->shape.dim[3];
    transpose_last_two(y->grad, x->shape.dim[0], tokens, x->shape.dim[1], tensor_grad(tape, x), true);
}

/* Moves values between the input (B, C·r², H, W) and the output (B, C, H·r, W·r) of
 * PixelShuffle(r); `backward` adds output gradients onto the input gradient instead. */
static void pixel_shuffle_copy(const Tensor *x, int r, const float *src, float *dst, bool backward)
{
    int batch = x->shape.dim[0], in_c = x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    int out_c = in_c / (r * r), out_h = h * r, out_w = w * r;
    #pragma omp parallel for collapse(2) schedule(static) if (x->numel > 16384)
    for (int b = 0; b < batch; b++) {
        for (int ci = 0; ci < in_c; ci++) {
            int c = ci / (r * r), i = (ci / r) % r, j = ci % r;
            for (int y = 0; y < h; y++) {
                size_t in_row = (((size_t)b * in_c + ci) * h + y) * w;
                size_t out_row = (((size_t)b * out_c + c) * out_h + (size_t)y * r + i) * out_w + j;
                for (int xw = 0; xw < w; xw++) {
                    if (backward)
                        dst[in_row + xw] += src[out_row + (size_t)xw * r];
                    else
                        dst[out_row + (size_t)xw * r] = src[in_row + xw];
                }
            }
        }
    }
}

static void pixel_shuffle_backward(Tape *tape, const TapeEntry *e);

Tensor *op_pixel_shuffle(Tape *tape, Tensor *x, int factor)
{
    shape_check_ndim("pixel_shuffle", x, 4);
    if (factor < 1 || x->shape.dim[1] % (factor * factor) != 0)
        shape_panic("pixel_shuffle", "channels must be divisible by factor²", x, NULL);
    Tensor *y = tensor_empty(tape, shape4(x->shape.dim[0], x->shape.dim[1] / (factor * factor),
                                          x->shape.dim[2] * factor, x->shape.dim[3] * factor));
    pixel_shuffle_copy(x, factor, x->data, y->data, false);
    TapeEntry *e = tape_record(tape, "pixel_shuffle", pixel_shuffle_backward, y, x, NULL, NULL, NULL);
    if (e) e->iarg[0] = factor;
    return y;
}

static void pixel_shuffle_backward(Tape *tape, const TapeEntry *e)
{
    pixel_shuffle_copy(e->in[0], e->iarg[0], e->out->grad, tensor_grad(tape, e->in[0]), true);
}

/* Moves rows between tokens (B, H·W, D) and merged tokens (B, H/2·W/2, 4·D). */
static void patch_merge_copy(const Tensor *x, int height, int width, const float *src, float *dst, bool backward)
{
    int batch = x->shape.dim[0], dim = x->shape.dim[2], out_w = width / 2, out_tokens = (height / 2) * out_w;
    #pragma omp parallel for collapse(2) schedule(static) if (x->numel > 16384)
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < out_tokens; t++) {
            int row = t / out_w, col = t % out_w;
            for (int part = 0; part < 4; part++) {
                int in_token = (2 * row + part / 2) * width + 2 * col + part % 2;
                size_t in_offset = ((size_t)b * height * width + in_token) * dim;
                size_t out_offset = (((size_t)b * out_tokens + t) * 4 + part) * dim;
                if (backward) {
                    for (int c = 0; c < dim; c++) dst[in_offset + c] += src[out_offset + c];
                } else {
                    memcpy(dst + out_offset, src + in_offset, (size_t)dim * sizeof(float));
                }
            }
        }
    }
}

static void patch_merge_backward(Tape *tape, const TapeEntry *e);

Tensor *op_patch_merge(Tape *tape, Tensor *x, int height, int width)
{
    shape_check_ndim("patch_merge", x, 3);
    if (x->shape.dim[1] != height * width || height % 2 || width % 2)
        shape_panic("patch_merge", "tokens must form an even height × width grid", x, NULL);
    Tensor *y = tensor_empty(tape, shape3(x->shape.dim[0], (height / 2) * (width / 2), 4 * x->shape.dim[2]));
    patch_merge_copy(x, height, width, x->data, y->data, false);
    TapeEntry *e = tape_record(tape, "patch_merge", patch_merge_backward, y, x, NULL, NULL, NULL);
    if (e) {
        e->iarg[0] = height;
        e->iarg[1] = width;
    }
    return y;
}

static void patch_merge_backward(Tape *tape, const TapeEntry *e)
{
    patch_merge_copy(e->in[0], e->iarg[0], e->iarg[1], e->out->grad, tensor_grad(tape, e->in[0]), true);
}

static void prepend_token_backward(Tape *tape, const TapeEntry *e);

Tensor *op_prepend_token(Tape *tape, Tensor *x, Tensor *token)
{
    shape_check_ndim("prepend_token", x, 3);
    int batch = x->shape.dim[0], tokens = x->shape.dim[1], dim = x->shape.dim[2];
    if (token->numel != (size_t)dim) shape_panic("prepend_token", "the token must have D elements", x, token);
    Tensor *y = tensor_empty(tape, shape3(batch, tokens + 1, dim));
    for (int b = 0; b < batch; b++) {
        float *dst = y->data + (size_t)b * (tokens + 1) * dim;
        memcpy(dst, token->data, (size_t)dim * sizeof(float));
        memcpy(dst + dim, x->data + (size_t)b * tokens * dim, (size_t)tokens * dim * sizeof(float));
    }
    tape_record(tape, "prepend_token", prepend_token_backward, y, x, token, NULL, NULL);
    return y;
}

static void prepend_token_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *token = e->in[1], *y = e->out;
    int batch = x->shape.dim[0], tokens = x->shape.dim[1], dim = x->shape.dim[2];
    for (int b = 0; b < batch; b++) {
        const float *g = y->grad + (size_t)b * (tokens + 1) * dim;
        if (token->requires_grad) {
            float *dt = tensor_grad(tape, token);
            for (int c = 0; c < dim; c++) dt[c] += g[c];
        }
        if (x->requires_grad) {
            float *dx = tensor_grad(tape, x) + (size_t)b * tokens * dim;
            for (size_t i = 0; i < (size_t)tokens * dim; i++) dx[i] += g[dim + i];
        }
    }
}

static void concat_channels_backward(Tape *tape, const TapeEntry *e);

Tensor *op_concat_channels(Tape *tape, Tensor **xs, int count)
{
    if (count < 1) mg_panic("concat_channels: no inputs");
    shape_check_ndim("concat_channels", xs[0], 4);
    int batch = xs[0]->shape.dim[0], h = xs[0]->shape.dim[2], w = xs[0]->shape.dim[3], channels = 0;
    for (int i = 0; i < count; i++) {
        shape_check_ndim("concat_channels", xs[i], 4);
        if (xs[i]->shape.dim[0] != batch || xs[i]->shape.dim[2] != h || xs[i]->shape.dim[3] != w)
            shape_panic("concat_channels", "inputs differ in batch or spatial size", xs[0], xs[i]);
        channels += xs[i]->shape.dim[1];
    }
    Tensor *y = tensor_empty(tape, shape4(batch, channels, h, w));
    size_t plane = (size_t)h * w;
    #pragma omp parallel for schedule(static) if (y->numel > 16384)
    for (int b = 0; b < batch; b++) {
        float *dst = y->data + (size_t)b * channels * plane;
        for (int i = 0; i < count; i++) {
            size_t part = (size_t)xs[i]->shape.dim[1] * plane;
            memcpy(dst, xs[i]->data + (size_t)b * part, part * sizeof(float));
            dst += part;
        }
    }

    /* The tape entry holds at most four inputs, so the backward reads the full list from
     * `saved`; the entry only needs one input that requires a gradient to be recorded. */
    Tensor *needs_grad = NULL;
    for (int i = 0; i < count && !needs_grad; i++) {
        if (xs[i]->requires_grad) needs_grad = xs[i];
    }
    TapeEntry *e = tape_record(tape, "concat_channels", concat_channels_backward, y, needs_grad, NULL, NULL, NULL);
    if (e) {
        Tensor **saved = arena_alloc(&tape->arena, (size_t)count * sizeof *saved);
        memcpy(saved, xs, (size_t)count * sizeof *saved);
        e->saved = saved;
        e->iarg[0] = count;
    }
    return y;
}

static void concat_channels_backward(Tape *tape, const TapeEntry *e)
{
    Tensor **xs = e->saved, *y = e->out;
    int count = e->iarg[0];
    int batch = y->shape.dim[0], channels = y->shape.dim[1];
    size_t plane = (size_t)y->shape.dim[2] * y->shape.dim[3];
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        size_t part = (size_t)xs[i]->shape.dim[1] * plane;
        if (xs[i]->requires_grad) {
            float *dx = tensor_grad(tape, xs[i]);
            #pragma omp parallel for schedule(static) if (y->numel > 16384)
            for (int b = 0; b < batch; b++) {
                const float *g = y->grad + (size_t)b * channels * plane + offset;
                for (size_t k = 0; k < part; k++) dx[(size_t)b * part + k] += g[k];
            }
        }
        offset += part;
    }
}

static void slice_token_backward(Tape *tape, const TapeEntry *e);

Tensor *op_slice_token(Tape *tape, Tensor *x, int index)
{
    shape_check_ndim("slice_token", x, 3);
    int batch = x->shape.dim[0], tokens = x->shape.dim[1], dim = x->shape.dim[2];
    if (index < 0 || index >= tokens) shape_panic("slice_token", "token index out of range", x, NULL);
    Tensor *y = tensor_empty(tape, shape2(batch, dim));
    for (int b = 0; b < batch; b++)
        memcpy(y->data + (size_t)b * dim, x->data + ((size_t)b * tokens + index) * dim, (size_t)dim * sizeof(float));
    TapeEntry *e = tape_record(tape, "slice_token", slice_token_backward, y, x, NULL, NULL, NULL);
    if (e) e->iarg[0] = index;
    return y;
}

static void slice_token_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    int batch = x->shape.dim[0], tokens = x->shape.dim[1], dim = x->shape.dim[2], index = e->iarg[0];
    float *dx = tensor_grad(tape, x);
    for (int b = 0; b < batch; b++) {
        float *d = dx + ((size_t)b * tokens + index) * dim;
        for (int c = 0; c < dim; c++) d[c] += y->grad[(size_t)b * dim + c];
    }
}

static void slice_channels_backward(Tape *tape, const TapeEntry *e);

Tensor *op_slice_channels(Tape *tape, Tensor *x, int start, int count)
{
    shape_check_ndim("slice_channels", x, 4);
    int batch = x->shape.dim[0], channels = x->shape.dim[1];
    if (start < 0 || count < 1 || start + count > channels)
        shape_panic("slice_channels", "channel range out of bounds", x, NULL);
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3];
    Tensor *y = tensor_empty(tape, shape4(batch, count, x->shape.dim[2], x->shape.dim[3]));
    #pragma omp parallel for schedule(static) if (y->numel > 16384)
    for (int b = 0; b < batch; b++)
        memcpy(y->data + (size_t)b * count * plane, x->data + ((size_t)b * channels + start) * plane,
               (size_t)count * plane * sizeof(float));
    TapeEntry *e = tape_record(tape, "slice_channels", slice_channels_backward, y, x, NULL, NULL, NULL);
    if (e) e->iarg[0] = start;
    return y;
}

static void slice_channels_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    int batch = x->shape.dim[0], channels = x->shape.dim[1], count = y->shape.dim[1], start = e->iarg[0];
    size_t part = (size_t)count * x->shape.dim[2] * x->shape.dim[3];
    float *dx = tensor_grad(tape, x);
    for (int b = 0; b < batch; b++) {
        float *d = dx + ((size_t)b * channels + start) * (part / (size_t)count);
        const float *g = y->grad + (size_t)b * part;
        for (size_t i = 0; i < part; i++) d[i] += g[i];
    }
}
