/* DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
 * NeurIPS 2020) as differentiable ops on images (B, C, H, W) in [-1, 1].
 *
 * color:       brightness x + U[-0.5, 0.5), then saturation (x − mean over channels)·U[0, 2)
 *              + that mean, then contrast (x − mean over C, H, W)·U[0.5, 1.5) + that mean;
 * translation: an integer shift of up to ±round(size/8) pixels per axis, zero fill;
 * cutout:      one square of half the image size with a random centre, clipped at the
 *              border, zero fill.
 * Each image draws its own values; the draws come from the caller's RNG stream.
 */
#include <string.h>

#include "augment.h"
#include "internal.h"
#include "ops.h"
#include "util.h"

/* ---- brightness, saturation and contrast: y = (x − m)·s + m + shift ----------------- */

/* Which mean an affine augmentation subtracts. */
typedef enum MeanGroup { MEAN_NONE, MEAN_CHANNELS, MEAN_IMAGE } MeanGroup;

/* Per-image factors kept for backward. */
typedef struct AffineSaved {
    float *scale;  /* (B) */
} AffineSaved;

static void affine_backward(Tape *tape, const TapeEntry *e);

/* y = (x − m)·scale[b] + m + shift[b], where m is 0, the mean over channels at each pixel, or
 * the mean over the whole image. */
static Tensor *affine_augment(Tape *tape, Tensor *x, MeanGroup group, const float *scale, const float *shift)
{
    int batch = x->shape.dim[0], channels = x->shape.dim[1];
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3], image = (size_t)channels * plane;
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; b++) {
        const float *src = x->data + (size_t)b * image;
        float *dst = y->data + (size_t)b * image;
        float s = scale ? scale[b] : 1.0f, t = shift ? shift[b] : 0.0f;
        if (group == MEAN_CHANNELS) {
            for (size_t p = 0; p < plane; p++) {
                float m = 0.0f;
                for (int c = 0; c < channels; c++) m += src[(size_t)c * plane + p];
                m /= (float)channels;
                for (int c = 0; c < channels; c++) dst[(size_t)c * plane + p] = (src[(size_t)c * plane + p] - m) * s + m + t;
            }
        } else {
            float m = 0.0f;
            if (group == MEAN_IMAGE) {
                double sum = 0.0;
                for (size_t i = 0; i < image; i++) sum += src[i];
                m = (float)(sum / (double)image);
            }
            for (size_t i = 0; i < image; i++) dst[i] = (src[i] - m) * s + m + t;
        }
    }
    TapeEntry *e = tape_record(tape, "diffaugment_color", affine_backward, y, x, NULL, NULL, NULL);
    if (e) {
        AffineSaved *saved = arena_alloc(&tape->arena, sizeof *saved);
        saved->scale = NULL;
        if (scale) {
            saved->scale = arena_alloc(&tape->arena, (size_t)batch * sizeof(float));
            memcpy(saved->scale, scale, (size_t)batch * sizeof(float));
        }
        e->saved = saved;
        e->iarg[0] = group;
    }
    return y;
}

/* dx = s·dy + (1 − s)·mean(dy) over the group, because ∂m/∂x is 1/(group size). */
static void affine_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    const AffineSaved *saved = e->saved;
    MeanGroup group = (MeanGroup)e->iarg[0];
    int batch = x->shape.dim[0], channels = x->shape.dim[1];
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3], image = (size_t)channels * plane;
    float *dx = tensor_grad(tape, x);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; b++) {
        const float *g = y->grad + (size_t)b * image;
        float *d = dx + (size_t)b * image;
        float s = saved->scale ? saved->scale[b] : 1.0f;
        if (group == MEAN_CHANNELS) {
            for (size_t p = 0; p < plane; p++) {
                float mean = 0.0f;
                for (int c = 0; c < channels; c++) mean += g[(size_t)c * plane + p];
                mean /= (float)channels;
                for (int c = 0; c < channels; c++) d[(size_t)c * plane + p] += s * g[(size_t)c * plane + p] + (1.0f - s) * mean;
            }
        } else {
            float mean = 0.0f;
            if (group == MEAN_IMAGE) {
                double sum = 0.0;
                for (size_t i = 0; i < image; i++) sum += g[i];
                mean = (float)(sum / (double)image);
            }
            for (size_t i = 0; i < image; i++) d[i] += s * g[i] + (1.0f - s) * mean;
        }
    }
}

/* ---- translation and cutout: y = x moved by (dy, dx) per image, times a mask --------- */

/* Per-image geometry kept for backward. */
typedef struct ShiftSaved {
    int *shift_y, *shift_x;          /* (B) translation: y[i, j] = x[i − shift_y, j − shift_x] */
    int *cut_y0, *cut_y1, *cut_x0, *cut_x1;  /* (B) cutout rows and columns [start, end) zeroed */
} ShiftSaved;

static void shift_backward(Tape *tape, const TapeEntry *e);

static bool in_cut(const ShiftSaved *s, int b, int i, int j)
{
    return s->cut_y0 && i >= s->cut_y0[b] && i < s->cut_y1[b] && j >= s->cut_x0[b] && j < s->cut_x1[b];
}

static Tensor *shift_and_cut(Tape *tape, Tensor *x, ShiftSaved *s)
{
    int batch = x->shape.dim[0], channels = x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    Tensor *y = tensor_empty(tape, x->shape);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++) {
        for (int c = 0; c < channels; c++) {
            const float *src = x->data + ((size_t)b * channels + c) * h * w;
            float *dst = y->data + ((size_t)b * channels + c) * h * w;
            int sy = s->shift_y ? s->shift_y[b] : 0, sx = s->shift_x ? s->shift_x[b] : 0;
            for (int i = 0; i < h; i++) {
                for (int j = 0; j < w; j++) {
                    int si = i - sy, sj = j - sx;
                    bool inside = si >= 0 && si < h && sj >= 0 && sj < w && !in_cut(s, b, i, j);
                    dst[i * w + j] = inside ? src[si * w + sj] : 0.0f;
                }
            }
        }
    }
    TapeEntry *e = tape_record(tape, "diffaugment_shift", shift_backward, y, x, NULL, NULL, NULL);
    if (e) e->saved = s;
    return y;
}

static void shift_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    const ShiftSaved *s = e->saved;
    int batch = x->shape.dim[0], channels = x->shape.dim[1], h = x->shape.dim[2], w = x->shape.dim[3];
    float *dx = tensor_grad(tape, x);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++) {
        for (int c = 0; c < channels; c++) {
            const float *g = y->grad + ((size_t)b * channels + c) * h * w;
            float *d = dx + ((size_t)b * channels + c) * h * w;
            int sy = s->shift_y ? s->shift_y[b] : 0, sx = s->shift_x ? s->shift_x[b] : 0;
            for (int i = 0; i < h; i++) {
                for (int j = 0; j < w; j++) {
                    int si = i - sy, sj = j - sx;
                    if (si >= 0 && si < h && sj >= 0 && sj < w && !in_cut(s, b, i, j)) d[si * w + sj] += g[i * w + j];
                }
            }
        }
    }
}

/* ---- the policy -------------------------------------------------------------------- */

static int *draw_ints(Tape *tape, Rng *rng, int batch, int low, int high)
{
    int *v = arena_alloc(&tape->arena, (size_t)batch * sizeof(int));
    for (int b = 0; b < batch; b++) v[b] = low + (int)rng_below(rng, (uint32_t)(high - low + 1));
    return v;
}

static float *draw_uniform(Tape *tape, Rng *rng, int batch, float low, float high)
{
    float *v = arena_alloc(&tape->arena, (size_t)batch * sizeof(float));
    rng_fill_uniform(rng, v, (size_t)batch, low, high);
    return v;
}

Tensor *diffaugment(Tape *tape, Tensor *x, unsigned policy, Rng *rng)
{
    shape_check_ndim("diffaugment", x, 4);
    int batch = x->shape.dim[0], h = x->shape.dim[2], w = x->shape.dim[3];
    if (policy & AUGMENT_COLOR) {
        x = affine_augment(tape, x, MEAN_NONE, NULL, draw_uniform(tape, rng, batch, -0.5f, 0.5f));
        x = affine_augment(tape, x, MEAN_CHANNELS, draw_uniform(tape, rng, batch, 0.0f, 2.0f), NULL);
        x = affine_augment(tape, x, MEAN_IMAGE, draw_uniform(tape, rng, batch, 0.5f, 1.5f), NULL);
    }
    if (!(policy & (AUGMENT_TRANSLATION | AUGMENT_CUTOUT))) return x;

    ShiftSaved *s = arena_alloc(&tape->arena, sizeof *s);
    memset(s, 0, sizeof *s);
    if (policy & AUGMENT_TRANSLATION) {
        /* shifts of up to 1/8 of the size, rounded, in each direction */
        int max_y = (int)(h * 0.125 + 0.5), max_x = (int)(w * 0.125 + 0.5);
        s->shift_y = draw_ints(tape, rng, batch, -max_y, max_y);
        s->shift_x = draw_ints(tape, rng, batch, -max_x, max_x);
    }
    if (policy & AUGMENT_CUTOUT) {
        /* a square of half the size, rounded; its centre is uniform over [0, size] */
        int cut_h = (int)(h * 0.5 + 0.5), cut_w = (int)(w * 0.5 + 0.5);
        int *cy = draw_ints(tape, rng, batch, 0, h + (1 - cut_h % 2) - 1);
        int *cx = draw_ints(tape, rng, batch, 0, w + (1 - cut_w % 2) - 1);
        s->cut_y0 = arena_alloc(&tape->arena, 4 * (size_t)batch * sizeof(int));
        s->cut_y1 = s->cut_y0 + batch;
        s->cut_x0 = s->cut_y1 + batch;
        s->cut_x1 = s->cut_x0 + batch;
        for (int b = 0; b < batch; b++) {
            s->cut_y0[b] = cy[b] - cut_h / 2 < 0 ? 0 : cy[b] - cut_h / 2;
            s->cut_y1[b] = cy[b] - cut_h / 2 + cut_h > h ? h : cy[b] - cut_h / 2 + cut_h;
            s->cut_x0[b] = cx[b] - cut_w / 2 < 0 ? 0 : cx[b] - cut_w / 2;
            s->cut_x1[b] = cx[b] - cut_w / 2 + cut_w > w ? w : cx[b] - cut_w / 2 + cut_w;
        }
    }
    return shift_and_cut(tape, x, s);
}
