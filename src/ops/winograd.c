/* 3×3 stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray,
 * "Fast Algorithms for Convolutional Neural Networks", CVPR 2016), forward only.
 *
 * Each 2×2 block of outputs (a tile) comes from a 4×4 block of inputs:
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
 * with d the input block, g the 3×3 filter and
 *   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],
 *   Aᵀ = [1 1 1 0; 0 1 -1 -1].
 * Summed over input channels, the 16 elementwise products become 16 matrix products
 * M_k (O, T) = U_k (O, C) · V_k (C, T) over all T tiles of a chunk of images, which run
 * through sgemm. That takes 16 multiplications per tile and channel pair where im2col takes
 * 36, and the transformed input is 4 values per output instead of im2col's 9.
 *
 * The transforms add and subtract, so results differ from the direct sum by rounding only
 * (a few units in the last place of float32 for Inception's activations).
 */
#include <omp.h>
#include <string.h>

#include "blas.h"
#include "internal.h"
#include "ops.h"
#include "util.h"

enum {
    TILE_GEMM_COLUMNS = 2048,     /* chunk images until the products have this many tiles */
    WINOGRAD_BUFFER_FLOATS = 24 << 20, /* transformed input and products of one chunk, at most */
};

/* U_k (O, C) for k = 4i + j: the 4×4 matrix G g Gᵀ of every filter g, stored k-major. */
static void transform_filters(const float *w, int out_c, int in_c, float *u)
{
    size_t plane = (size_t)out_c * in_c;
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < out_c; o++) {
        for (int c = 0; c < in_c; c++) {
            const float *g = w + ((size_t)o * in_c + c) * 9;
            float t[4][3]; /* G g */
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                float row[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                                t[i][2]};
                for (int j = 0; j < 4; j++) u[(size_t)(4 * i + j) * plane + (size_t)o * in_c + c] = row[j];
            }
        }
    }
}

/* The geometry of one call. */
typedef struct WinogradDims {
    int in_c, height, width, out_c, pad;
    int out_h, out_w;
    int tiles_h, tiles_w;      /* tiles per column and row of an image */
    int padded_h, padded_w;    /* the zero-padded plane that covers every tile's 4×4 inputs */
} WinogradDims;

/* V_k (C, T) for the images of a chunk: column n·tiles + ty·tiles_w + tx is tile (ty, tx) of
 * image n. `planes` is per-thread room for one padded plane. */
static void transform_inputs(const WinogradDims *d, const float *images, int nb, float *v, size_t columns,
                             float *planes)
{
    size_t tiles = (size_t)d->tiles_h * d->tiles_w, plane_size = (size_t)d->padded_h * d->padded_w;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < nb; n++) {
        for (int c = 0; c < d->in_c; c++) {
            float *p = planes + (size_t)omp_get_thread_num() * plane_size;
            memset(p, 0, plane_size * sizeof(float));
            const float *src = images + ((size_t)n * d->in_c + c) * d->height * d->width;
            for (int y = 0; y < d->height; y++)
                memcpy(p + (size_t)(y + d->pad) * d->padded_w + d->pad, src + (size_t)y * d->width,
                       (size_t)d->width * sizeof(float));

            for (int ty = 0; ty < d->tiles_h; ty++) {
                const float *r0 = p + (size_t)(2 * ty) * d->padded_w, *r1 = r0 + d->padded_w;
                const float *r2 = r1 + d->padded_w, *r3 = r2 + d->padded_w;
                size_t base = (size_t)n * tiles + (size_t)ty * d->tiles_w;
                float *out[16];
                for (int k = 0; k < 16; k++) out[k] = v + ((size_t)k * d->in_c + c) * columns + base;
                /* Bᵀ d B for every tile of the row: combine the four input rows, then the four
                 * columns of each combined row; vectorized across the tiles */
                #pragma omp simd
                for (int tx = 0; tx < d->tiles_w; tx++) {
                    float b[4][4];
                    for (int j = 0; j < 4; j++) {
                        int x = 2 * tx + j;
                        b[0][j] = r0[x] - r2[x];
                        b[1][j] = r1[x] + r2[x];
                        b[2][j] = r2[x] - r1[x];
                        b[3][j] = r1[x] - r3[x];
                    }
                    for (int i = 0; i < 4; i++) {
                        out[4 * i + 0][tx] = b[i][0] - b[i][2];
                        out[4 * i + 1][tx] = b[i][1] + b[i][2];
                        out[4 * i + 2][tx] = b[i][2] - b[i][1];
                        out[4 * i + 3][tx] = b[i][1] - b[i][3];
                    }
                }
            }
        }
    }
}

/* Y = Aᵀ M A for every tile, written into nb output images (nb, O, out_h, out_w) after the
 * epilogue: y·scale[o] + shift[o] (NULL: 1 and 0), then ReLU when `relu`. */
static void transform_outputs(const WinogradDims *d, const float *m, size_t columns, int nb, const float *scale,
                              const float *shift, bool relu, float *out)
{
    size_t tiles = (size_t)d->tiles_h * d->tiles_w;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < nb; n++) {
        for (int o = 0; o < d->out_c; o++) {
            float *dst = out + ((size_t)n * d->out_c + o) * d->out_h * d->out_w;
            float k = scale ? scale[o] : 1.0f, t = shift ? shift[o] : 0.0f;
            size_t step = (size_t)d->out_c * columns;
            int full = d->out_w / 2; /* tiles whose two output columns are both inside */
            for (int ty = 0; ty < d->tiles_h; ty++) {
                const float *mk = m + (size_t)o * columns + (size_t)n * tiles + (size_t)ty * d->tiles_w;
                float *top = dst + (size_t)(2 * ty) * d->out_w;
                float *bottom = 2 * ty + 1 < d->out_h ? top + d->out_w : NULL;
                for (int tx = 0; tx < d->tiles_w; tx++) {
                    /* M A for each of the four rows of the tile, then Aᵀ of the result */
                    float s[4][2];
                    for (int i = 0; i < 4; i++) {
                        const float *mi = mk + (size_t)(4 * i) * step + tx;
                        s[i][0] = mi[0] + mi[step] + mi[2 * step];
                        s[i][1] = mi[step] - mi[2 * step] - mi[3 * step];
                    }
                    for (int j = 0; j < 2 && (tx < full || j == 0); j++) {
                        float y0 = (s[0][j] + s[1][j] + s[2][j]) * k + t;
                        float y1 = (s[1][j] - s[2][j] - s[3][j]) * k + t;
                        if (relu) {
                            y0 = y0 > 0.0f ? y0 : 0.0f;
                            y1 = y1 > 0.0f ? y1 : 0.0f;
                        }
                        top[2 * tx + j] = y0;
                        if (bottom) bottom[2 * tx + j] = y1;
                    }
                }
            }
        }
    }
}

Tensor *conv2d_winograd_forward(Tape *tape, Tensor *x, Tensor *w, int pad, const float *scale, const float *shift,
                                bool relu)
{
    shape_check_ndim("conv2d_winograd", x, 4);
    shape_check_ndim("conv2d_winograd", w, 4);
    if (w->shape.dim[2] != 3 || w->shape.dim[3] != 3 || w->shape.dim[1] != x->shape.dim[1])
        shape_panic("conv2d_winograd", "expected a 3×3 weight (O, C, 3, 3) with the input's channels", x, w);
    if (pad < 0 || pad > 1) mg_panic("conv2d_winograd: padding %d (expected 0 or 1)", pad);

    WinogradDims d = {.in_c = x->shape.dim[1], .height = x->shape.dim[2], .width = x->shape.dim[3],
                      .out_c = w->shape.dim[0], .pad = pad};
    d.out_h = d.height + 2 * pad - 2;
    d.out_w = d.width + 2 * pad - 2;
    if (d.out_h < 1 || d.out_w < 1) shape_panic("conv2d_winograd", "the input is smaller than the kernel", x, w);
    d.tiles_h = (d.out_h + 1) / 2;
    d.tiles_w = (d.out_w + 1) / 2;
    d.padded_h = 2 * d.tiles_h + 2;
    d.padded_w = 2 * d.tiles_w + 2;

    int batch = x->shape.dim[0];
    Tensor *y = tensor_empty(tape, shape4(batch, d.out_c, d.out_h, d.out_w));
    float *u = arena_alloc(&tape->arena, 16 * (size_t)d.out_c * d.in_c * sizeof(float));
    transform_filters(w->data, d.out_c, d.in_c, u);

    /* images per chunk: enough tiles for wide products, within the buffer limit */
    size_t tiles = (size_t)d.tiles_h * d.tiles_w, per_image = 16 * tiles * (size_t)(d.in_c + d.out_c);
    size_t nb = (TILE_GEMM_COLUMNS + tiles - 1) / tiles, fit = WINOGRAD_BUFFER_FLOATS / per_image;
    if (nb > fit) nb = fit;
    if (nb < 1) nb = 1;
    if (nb > (size_t)batch) nb = (size_t)batch;
    size_t plane_size = (size_t)d.padded_h * d.padded_w;
    float *scratch = tape_scratch(tape, nb * per_image + (size_t)omp_get_max_threads() * plane_size);
    float *v = scratch, *m = v + 16 * (size_t)d.in_c * nb * tiles, *planes = m + 16 * (size_t)d.out_c * nb * tiles;

    size_t in_size = (size_t)d.in_c * d.height * d.width, out_size = (size_t)d.out_c * d.out_h * d.out_w;
    for (int b0 = 0; b0 < batch; b0 += (int)nb) {
        int n = batch - b0 < (int)nb ? batch - b0 : (int)nb;
        size_t columns = (size_t)n * tiles;
        transform_inputs(&d, x->data + (size_t)b0 * in_size, n, v, columns, planes);
        for (int k = 0; k < 16; k++) {
            /* M_k (O, T) = U_k (O, C) · V_k (C, T) */
            mg_sgemm(false, false, d.out_c, (int)columns, d.in_c, 1.0f, u + (size_t)k * d.out_c * d.in_c, d.in_c,
                     v + (size_t)k * d.in_c * columns, (int)columns, 0.0f, m + (size_t)k * d.out_c * columns,
                     (int)columns);
        }
        transform_outputs(&d, m, columns, n, scale, shift, relu, y->data + (size_t)b0 * out_size);
    }
    return y;
}

Tensor *op_conv2d_winograd(Tape *tape, Tensor *x, Tensor *w, Tensor *b, int pad)
{
    require_no_grad(tape, "conv2d_winograd", x);
    if (b && b->numel != (size_t)w->shape.dim[0]) shape_panic("conv2d_winograd", "bias size differs from O", b, w);
    return conv2d_winograd_forward(tape, x, w, pad, NULL, b ? b->data : NULL, false);
}
