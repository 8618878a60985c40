/* conv2d and conv_transpose2d through im2col and sgemm.
 *
 * Both ops process the batch in chunks of nb images. im2col lays a chunk out as a matrix
 * col (C·KH·KW, nb·P), with one column per output position of every image in the chunk,
 * so that one sgemm covers the chunk: small feature maps (P = 16 at 4×4) still give the
 * sgemm a wide N. The chunk size keeps the column buffer under COL_BUFFER_FLOATS.
 *
 * conv2d:            y = W·col(x),    dW += dy·col(x)ᵀ,  dx += col2im(Wᵀ·dy)
 * conv_transpose2d:  y = col2im(Wᵀ·x), dW += x·col(dy)ᵀ,  dx += W·col(dy)
 * where the transposed convolution reuses conv2d's im2col geometry with the roles of its
 * input and output swapped.
 */
#include <string.h>

#include "blas.h"
#include "internal.h"
#include "ops.h"
#include "util.h"

enum {
    COL_BUFFER_FLOATS = 16 << 20,  /* 64 MiB of im2col columns per chunk at most */
    MIN_GEMM_COLUMNS = 2048,       /* chunk images until the sgemm has this many columns */
};

/* An image of channels × height × width seen through a kh × kw window at out_h × out_w
 * positions with the given stride and padding. */
typedef struct Im2col {
    int channels, height, width;
    int kh, kw;
    Conv2dGeometry g;
    int out_h, out_w;
} Im2col;

static size_t im2col_rows(const Im2col *m)
{
    return (size_t)m->channels * m->kh * m->kw;
}

static size_t im2col_positions(const Im2col *m)
{
    return (size_t)m->out_h * m->out_w;
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* col (C·KH·KW, nb·P) from nb images (nb, C, H, W): row (c·KH + i)·KW + j, column
 * n·P + oh·OW + ow contains image n, channel c at (oh·sh − ph + i, ow·sw − pw + j), or 0 in the
 * padding. */
static void im2col(const Im2col *m, const float *images, int nb, float *col)
{
    size_t rows = im2col_rows(m), positions = im2col_positions(m), cols = (size_t)nb * positions;
    size_t plane = (size_t)m->height * m->width, image_size = (size_t)m->channels * plane;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        int c = (int)(r / (size_t)(m->kh * m->kw)), i = (int)(r / (size_t)m->kw) % m->kh, j = (int)(r % (size_t)m->kw);
        /* output columns whose input column is inside the image, for stride 1 */
        int lo = max_int(0, m->g.pad_w - j), hi = min_int(m->out_w, m->width + m->g.pad_w - j);
        for (int n = 0; n < nb; n++) {
            const float *src = images + (size_t)n * image_size + (size_t)c * plane;
            float *dst = col + r * cols + (size_t)n * positions;
            for (int oh = 0; oh < m->out_h; oh++) {
                int ih = oh * m->g.stride_h - m->g.pad_h + i;
                float *d = dst + (size_t)oh * m->out_w;
                if (ih < 0 || ih >= m->height) {
                    memset(d, 0, (size_t)m->out_w * sizeof(float));
                    continue;
                }
                const float *row = src + (size_t)ih * m->width;
                if (m->g.stride_w == 1) {
                    /* memcpy for long rows; a plain loop for short ones (8 to 35 floats in
                     * Inception's blocks), where the call costs more than the copy */
                    const float *shifted = row - m->g.pad_w + j;
                    for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                    if (hi - lo >= 64) {
                        memcpy(d + lo, shifted + lo, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        #pragma omp simd
                        for (int ow = lo; ow < hi; ow++) d[ow] = shifted[ow];
                    }
                    for (int ow = max_int(hi, lo); ow < m->out_w; ow++) d[ow] = 0.0f;
                } else {
                    for (int ow = 0; ow < m->out_w; ow++) {
                        int iw = ow * m->g.stride_w - m->g.pad_w + j;
                        d[ow] = (iw >= 0 && iw < m->width) ? row[iw] : 0.0f;
                    }
                }
            }
        }
    }
}

/* The adjoint of im2col: adds every column entry back onto its image pixel. Threads split
 * the channels, and each pixel receives its terms in a fixed order. */
static void col2im_add(const Im2col *m, const float *col, int nb, float *images)
{
    size_t positions = im2col_positions(m), cols = (size_t)nb * positions;
    size_t plane = (size_t)m->height * m->width, image_size = (size_t)m->channels * plane;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < m->channels; c++) {
        for (int i = 0; i < m->kh; i++) {
            for (int j = 0; j < m->kw; j++) {
                size_t r = ((size_t)c * m->kh + i) * m->kw + j;
                int lo = max_int(0, m->g.pad_w - j), hi = min_int(m->out_w, m->width + m->g.pad_w - j);
                for (int n = 0; n < nb; n++) {
                    float *dst = images + (size_t)n * image_size + (size_t)c * plane;
                    const float *src = col + r * cols + (size_t)n * positions;
                    for (int oh = 0; oh < m->out_h; oh++) {
                        int ih = oh * m->g.stride_h - m->g.pad_h + i;
                        if (ih < 0 || ih >= m->height) continue;
                        float *row = dst + (size_t)ih * m->width;
                        const float *s = src + (size_t)oh * m->out_w;
                        if (m->g.stride_w == 1) {
                            float *d = row - m->g.pad_w + j;
                            #pragma omp simd
                            for (int ow = lo; ow < hi; ow++) d[ow] += s[ow];
                        } else {
                            for (int ow = 0; ow < m->out_w; ow++) {
                                int iw = ow * m->g.stride_w - m->g.pad_w + j;
                                if (iw >= 0 && iw < m->width) row[iw] += s[ow];
                            }
                        }
                    }
                }
            }
        }
    }
}

/* dst (R, nb·P) from src (nb, R, P). */
static void batch_to_rows(const float *src, int nb, size_t rows, size_t positions, float *dst)
{
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        for (int n = 0; n < nb; n++)
            memcpy(dst + (r * nb + n) * positions, src + ((size_t)n * rows + r) * positions, positions * sizeof(float));
    }
}

/* dst (nb, R, P) = src (R, nb·P), or += when `accumulate`. */
static void rows_to_batch(const float *src, int nb, size_t rows, size_t positions, float *dst, bool accumulate)
{
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        for (int n = 0; n < nb; n++) {
            const float *s = src + (r * nb + n) * positions;
            float *d = dst + ((size_t)n * rows + r) * positions;
            if (accumulate) {
                #pragma omp simd
                for (size_t p = 0; p < positions; p++) d[p] += s[p];
            } else {
                memcpy(d, s, positions * sizeof(float));
            }
        }
    }
}

/* What a forward pass applies to each output channel o after the product:
 * y·scale[o] + shift[o], then ReLU for the channels o < relu_channels. A NULL scale is 1, a
 * NULL shift 0. */
typedef struct ConvEpilogue {
    const float *scale, *shift;
    int relu_channels;
} ConvEpilogue;

static bool epilogue_is_identity(ConvEpilogue ep)
{
    return !ep.scale && !ep.shift && ep.relu_channels == 0;
}

/* dst[p] = epilogue of channel `channel` applied to src[p], for n values. */
static inline void apply_epilogue(const float *src, float *dst, size_t n, ConvEpilogue ep, int channel)
{
    float scale = ep.scale ? ep.scale[channel] : 1.0f, shift = ep.shift ? ep.shift[channel] : 0.0f;
    if (channel < ep.relu_channels) {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float v = src[i] * scale + shift;
            dst[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) dst[i] = src[i] * scale + shift;
    }
}

/* dst (nb, O, P) = epilogue of src (O, nb·P). */
static void rows_to_batch_epilogue(const float *src, int nb, size_t rows, size_t positions, float *dst, ConvEpilogue ep)
{
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        for (int n = 0; n < nb; n++)
            apply_epilogue(src + (r * nb + n) * positions, dst + ((size_t)n * rows + r) * positions, positions, ep, (int)r);
    }
}

/* Images per chunk for an im2col of `rows` rows and `positions` columns per image. */
static int images_per_chunk(int batch, size_t rows, size_t positions)
{
    size_t wanted = (MIN_GEMM_COLUMNS + positions - 1) / positions;
    size_t fit = COL_BUFFER_FLOATS / (rows * positions);
    size_t nb = wanted < fit ? wanted : fit;
    if (nb < 1) nb = 1;
    if (nb > (size_t)batch) nb = (size_t)batch;
    return (int)nb;
}

/* y[b, o, p] += bias[o] for y (B, O, P). */
static void add_channel_bias(float *y, const float *bias, int batch, int channels, size_t positions)
{
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++) {
        for (int o = 0; o < channels; o++) {
            float *p = y + ((size_t)b * channels + o) * positions, v = bias[o];
            #pragma omp simd
            for (size_t i = 0; i < positions; i++) p[i] += v;
        }
    }
}

/* dbias[o] += Σ_b Σ_p dy[b, o, p], in the order of b then p. */
static void add_channel_sums(const float *dy, int batch, int channels, size_t positions, float *dbias)
{
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < channels; o++) {
        double acc = 0.0;
        for (int b = 0; b < batch; b++) {
            const float *p = dy + ((size_t)b * channels + o) * positions;
            for (size_t i = 0; i < positions; i++) acc += p[i];
        }
        dbias[o] += (float)acc;
    }
}

/* ---- conv2d ---------------------------------------------------------------------- */

/* The im2col geometry of conv2d on x with weight w: the input image read at every output
 * position. */
static Im2col conv2d_geometry(const Tensor *x, const Tensor *w, Conv2dGeometry g)
{
    Im2col m = {.channels = x->shape.dim[1], .height = x->shape.dim[2], .width = x->shape.dim[3],
                .kh = w->shape.dim[2], .kw = w->shape.dim[3], .g = g};
    m.out_h = (m.height + 2 * g.pad_h - m.kh) / g.stride_h + 1;
    m.out_w = (m.width + 2 * g.pad_w - m.kw) / g.stride_w + 1;
    return m;
}

static bool is_pointwise(const Im2col *m)
{
    return m->kh == 1 && m->kw == 1 && m->g.stride_h == 1 && m->g.stride_w == 1 && m->g.pad_h == 0 && m->g.pad_w == 0;
}

static void check_conv_args(const char *op, const Tensor *x, const Tensor *w, const Tensor *b, int weight_in_dim,
                            Conv2dGeometry g)
{
    shape_check_ndim(op, x, 4);
    shape_check_ndim(op, w, 4);
    if (w->shape.dim[weight_in_dim] != x->shape.dim[1]) shape_panic(op, "input channels differ from the weight's", x, w);
    int out_channels = w->shape.dim[1 - weight_in_dim];
    if (b && b->numel != (size_t)out_channels) shape_panic(op, "bias size differs from the output channels", b, w);
    if (g.stride_h < 1 || g.stride_w < 1 || g.pad_h < 0 || g.pad_w < 0)
        mg_panic("%s: invalid stride (%d, %d) or padding (%d, %d)", op, g.stride_h, g.stride_w, g.pad_h, g.pad_w);
}

static void conv2d_backward(Tape *tape, const TapeEntry *e);

/* The forward pass of conv2d with an epilogue on every output channel. */
static Tensor *conv2d_forward(Tape *tape, Tensor *x, Tensor *w, Conv2dGeometry g, ConvEpilogue ep)
{
    Im2col m = conv2d_geometry(x, w, g);
    if (m.out_h < 1 || m.out_w < 1 || m.height + 2 * g.pad_h < m.kh || m.width + 2 * g.pad_w < m.kw)
        shape_panic("conv2d", "the kernel is larger than the padded input", x, w);

    int batch = x->shape.dim[0], out_c = w->shape.dim[0];
    size_t k = im2col_rows(&m), positions = im2col_positions(&m);
    size_t in_size = (size_t)m.channels * m.height * m.width, out_size = (size_t)out_c * positions;
    Tensor *y = tensor_empty(tape, shape4(batch, out_c, m.out_h, m.out_w));

    int nb = images_per_chunk(batch, k, positions);
    float *scratch = tape_scratch(tape, (k + (size_t)out_c) * nb * positions);
    float *col = scratch, *out_rows = scratch + k * nb * positions;
    for (int b0 = 0; b0 < batch; b0 += nb) {
        int n = min_int(nb, batch - b0);
        int cols = (int)(n * positions);
        const float *xb = x->data + (size_t)b0 * in_size;
        float *yb = y->data + (size_t)b0 * out_size;
        if (n == 1) {
            /* y[b] (O, P) = W (O, K) · col (K, P), then the epilogue in place */
            const float *source = xb;
            if (!is_pointwise(&m)) {
                im2col(&m, xb, 1, col);
                source = col;
            }
            mg_sgemm(false, false, out_c, cols, (int)k, 1.0f, w->data, (int)k, source, cols, 0.0f, yb, cols);
            if (!epilogue_is_identity(ep)) {
                #pragma omp parallel for schedule(static)
                for (int o = 0; o < out_c; o++) apply_epilogue(yb + (size_t)o * positions, yb + (size_t)o * positions, positions, ep, o);
            }
        } else {
            /* out_rows (O, n·P) = W (O, K) · col (K, n·P), then back to (n, O, P) */
            im2col(&m, xb, n, col);
            mg_sgemm(false, false, out_c, cols, (int)k, 1.0f, w->data, (int)k, col, cols, 0.0f, out_rows, cols);
            rows_to_batch_epilogue(out_rows, n, (size_t)out_c, positions, yb, ep);
        }
    }
    return y;
}

Tensor *op_conv2d(Tape *tape, Tensor *x, Tensor *w, Tensor *b, Conv2dGeometry g)
{
    check_conv_args("conv2d", x, w, b, 1, g);
    Tensor *y = conv2d_forward(tape, x, w, g, (ConvEpilogue){.shift = b ? b->data : NULL, .relu_channels = 0});
    TapeEntry *e = tape_record(tape, "conv2d", conv2d_backward, y, x, w, b, NULL);
    if (e) {
        e->iarg[0] = g.stride_h;
        e->iarg[1] = g.stride_w;
        e->iarg[2] = g.pad_h;
        e->iarg[3] = g.pad_w;
    }
    return y;
}

Tensor *op_conv2d_affine_relu(Tape *tape, Tensor *x, Tensor *w, const float *scale, const float *shift,
                              int relu_channels, Conv2dGeometry g)
{
    require_no_grad(tape, "conv2d_affine_relu", x);
    check_conv_args("conv2d_affine_relu", x, w, NULL, 1, g);
    int out_c = w->shape.dim[0];
    if (relu_channels < 0 || relu_channels > out_c)
        mg_panic("conv2d_affine_relu: relu_channels %d out of range for %d channels", relu_channels, out_c);
    bool winograd = w->shape.dim[2] == 3 && w->shape.dim[3] == 3 && g.stride_h == 1 && g.stride_w == 1 &&
                    g.pad_h == g.pad_w && g.pad_h <= 1 && relu_channels == out_c;
    if (winograd) return conv2d_winograd_forward(tape, x, w, g.pad_h, scale, shift, true);
    return conv2d_forward(tape, x, w, g, (ConvEpilogue){scale, shift, relu_channels});
}

static Conv2dGeometry saved_geometry(const TapeEntry *e)
{
    return (Conv2dGeometry){e->iarg[0], e->iarg[1], e->iarg[2], e->iarg[3]};
}

static void conv2d_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *y = e->out;
    Im2col m = conv2d_geometry(x, w, saved_geometry(e));
    int batch = x->shape.dim[0], out_c = w->shape.dim[0];
    size_t k = im2col_rows(&m), positions = im2col_positions(&m);
    size_t in_size = (size_t)m.channels * m.height * m.width, out_size = (size_t)out_c * positions;
    float *dx = x->requires_grad ? tensor_grad(tape, x) : NULL;
    float *dw = w->requires_grad ? tensor_grad(tape, w) : NULL;
    if (b && b->requires_grad) add_channel_sums(y->grad, batch, out_c, positions, tensor_grad(tape, b));
    if (!dx && !dw) return;

    int nb = images_per_chunk(batch, k, positions);
    float *scratch = tape_scratch(tape, (k + (size_t)out_c) * nb * positions);
    float *col = scratch, *dy_rows = scratch + k * nb * positions;
    for (int b0 = 0; b0 < batch; b0 += nb) {
        int n = min_int(nb, batch - b0);
        int cols = (int)(n * positions);
        const float *xb = x->data + (size_t)b0 * in_size;
        const float *dyb = y->grad + (size_t)b0 * out_size;
        const float *dy = dyb;
        if (n > 1) {
            batch_to_rows(dyb, n, (size_t)out_c, positions, dy_rows);
            dy = dy_rows;
        }
        if (dw) {
            /* dW (O, K) += dy (O, n·P) · colᵀ (n·P, K) */
            const float *source = xb;
            if (n > 1 || !is_pointwise(&m)) {
                im2col(&m, xb, n, col);
                source = col;
            }
            mg_sgemm(false, true, out_c, (int)k, cols, 1.0f, dy, cols, source, cols, 1.0f, dw, (int)k);
        }
        if (dx) {
            float *dxb = dx + (size_t)b0 * in_size;
            if (n == 1 && is_pointwise(&m)) {
                /* dx[b] (C, P) += Wᵀ (C, O) · dy (O, P) */
                mg_sgemm(true, false, (int)k, cols, out_c, 1.0f, w->data, (int)k, dy, cols, 1.0f, dxb, cols);
            } else {
                /* dcol (K, n·P) = Wᵀ (K, O) · dy (O, n·P), then scattered onto the images */
                mg_sgemm(true, false, (int)k, cols, out_c, 1.0f, w->data, (int)k, dy, cols, 0.0f, col, cols);
                col2im_add(&m, col, n, dxb);
            }
        }
    }
}

/* ---- conv_transpose2d ------------------------------------------------------------ */

/* The im2col geometry of conv_transpose2d: its output image (O, Ho, Wo) read at every input
 * position (H, W), which is conv2d's geometry with input and output swapped. */
static Im2col conv_transpose2d_geometry(const Tensor *x, const Tensor *w, Conv2dGeometry g)
{
    Im2col m = {.channels = w->shape.dim[1], .kh = w->shape.dim[2], .kw = w->shape.dim[3], .g = g,
                .out_h = x->shape.dim[2], .out_w = x->shape.dim[3]};
    m.height = (m.out_h - 1) * g.stride_h - 2 * g.pad_h + m.kh;
    m.width = (m.out_w - 1) * g.stride_w - 2 * g.pad_w + m.kw;
    return m;
}

static void conv_transpose2d_backward(Tape *tape, const TapeEntry *e);

Tensor *op_conv_transpose2d(Tape *tape, Tensor *x, Tensor *w, Tensor *b, Conv2dGeometry g)
{
    check_conv_args("conv_transpose2d", x, w, b, 0, g);
    Im2col m = conv_transpose2d_geometry(x, w, g);
    if (m.height < 1 || m.width < 1) shape_panic("conv_transpose2d", "the output would be empty", x, w);

    int batch = x->shape.dim[0], in_c = x->shape.dim[1], out_c = m.channels;
    size_t k = im2col_rows(&m), positions = im2col_positions(&m);
    size_t in_size = (size_t)in_c * positions, out_size = (size_t)out_c * m.height * m.width;
    Tensor *y = tensor_zeros(tape, shape4(batch, out_c, m.height, m.width));

    int nb = images_per_chunk(batch, k + (size_t)in_c, positions);
    float *scratch = tape_scratch(tape, (k + (size_t)in_c) * nb * positions);
    float *col = scratch, *x_rows = scratch + k * nb * positions;
    for (int b0 = 0; b0 < batch; b0 += nb) {
        int n = min_int(nb, batch - b0);
        int cols = (int)(n * positions);
        const float *xb = x->data + (size_t)b0 * in_size;
        if (n > 1) {
            batch_to_rows(xb, n, (size_t)in_c, positions, x_rows);
            xb = x_rows;
        }
        /* col (K, n·P) = Wᵀ (K, C) · x (C, n·P), then scattered onto the output images */
        mg_sgemm(true, false, (int)k, cols, in_c, 1.0f, w->data, (int)k, xb, cols, 0.0f, col, cols);
        col2im_add(&m, col, n, y->data + (size_t)b0 * out_size);
    }
    if (b) add_channel_bias(y->data, b->data, batch, out_c, (size_t)m.height * m.width);

    TapeEntry *e = tape_record(tape, "conv_transpose2d", conv_transpose2d_backward, y, x, w, b, NULL);
    if (e) {
        e->iarg[0] = g.stride_h;
        e->iarg[1] = g.stride_w;
        e->iarg[2] = g.pad_h;
        e->iarg[3] = g.pad_w;
    }
    return y;
}

static void conv_transpose2d_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *y = e->out;
    Im2col m = conv_transpose2d_geometry(x, w, saved_geometry(e));
    int batch = x->shape.dim[0], in_c = x->shape.dim[1], out_c = m.channels;
    size_t k = im2col_rows(&m), positions = im2col_positions(&m);
    size_t in_size = (size_t)in_c * positions, out_size = (size_t)out_c * m.height * m.width;
    float *dx = x->requires_grad ? tensor_grad(tape, x) : NULL;
    float *dw = w->requires_grad ? tensor_grad(tape, w) : NULL;
    if (b && b->requires_grad)
        add_channel_sums(y->grad, batch, out_c, (size_t)m.height * m.width, tensor_grad(tape, b));
    if (!dx && !dw) return;

    int nb = images_per_chunk(batch, k + (size_t)in_c, positions);
    float *scratch = tape_scratch(tape, (k + (size_t)in_c) * nb * positions);
    float *col = scratch, *rows = scratch + k * nb * positions;
    for (int b0 = 0; b0 < batch; b0 += nb) {
        int n = min_int(nb, batch - b0);
        int cols = (int)(n * positions);
        /* col (K, n·P) = im2col of dy */
        im2col(&m, y->grad + (size_t)b0 * out_size, n, col);
        if (dw) {
            /* dW (C, K) += x (C, n·P) · colᵀ (n·P, K) */
            const float *xb = x->data + (size_t)b0 * in_size;
            if (n > 1) {
                batch_to_rows(xb, n, (size_t)in_c, positions, rows);
                xb = rows;
            }
            mg_sgemm(false, true, in_c, (int)k, cols, 1.0f, xb, cols, col, cols, 1.0f, dw, (int)k);
        }
        if (dx) {
            float *dxb = dx + (size_t)b0 * in_size;
            if (n == 1) {
                /* dx[b] (C, P) += W (C, K) · col (K, P) */
                mg_sgemm(false, false, in_c, cols, (int)k, 1.0f, w->data, (int)k, col, cols, 1.0f, dxb, cols);
            } else {
                mg_sgemm(false, false, in_c, cols, (int)k, 1.0f, w->data, (int)k, col, cols, 0.0f, rows, cols);
                rows_to_batch(rows, n, (size_t)in_c, positions, dxb, true);
            }
        }
    }
}
