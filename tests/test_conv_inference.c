/* The inference-only convolutions against op_conv2d, which test_ops_torch.c checks against
 * PyTorch: op_conv2d_winograd (Winograd F(2×2, 3×3)) and op_conv2d_affine_relu (conv, then
 * per-channel scale and shift, then ReLU, as Inception's BasicConv2d in eval mode). */
#include <math.h>
#include <stdlib.h>

#include "ops.h"
#include "op_test.h"
#include "rng.h"
#include "test.h"
#include "util.h"

/* Winograd's transforms reorder the sums, so they differ from the direct sum by rounding: a
 * few units in the last place of the largest partial sums. Inputs and weights here are
 * N(0, 1) and N(0, 1/(9·C)), so outputs are of order 1. */
static const double WINOGRAD_ATOL = 2e-5, WINOGRAD_RTOL = 1e-4;

static Tensor *random_leaf(Shape shape, uint64_t seed, float std)
{
    Tensor *t = leaf_new(shape, false);
    Rng rng = rng_make(seed, 11);
    rng_fill_normal(&rng, t->data, t->numel, 0.0f, std);
    return t;
}

/* Largest |a − e| beyond the tolerance, scaled: ≤ 1 means every value is within tolerance. */
static double worst_ratio(const Tensor *actual, const Tensor *expected)
{
    double worst = 0.0;
    for (size_t i = 0; i < expected->numel; i++) {
        double e = expected->data[i], diff = fabs((double)actual->data[i] - e);
        double ratio = diff / (WINOGRAD_ATOL + WINOGRAD_RTOL * fabs(e));
        if (!(ratio <= worst)) worst = ratio; /* NaN counts as a failure */
    }
    return worst;
}

TEST(winograd_matches_conv2d)
{
    static const struct {
        int batch, channels, height, width, out_channels, pad;
    } cases[] = {
        {2, 5, 7, 9, 9, 1},    /* odd sizes: the last tile row and column are half outside */
        {3, 4, 6, 5, 5, 0},
        {1, 3, 3, 3, 2, 0},    /* a single output */
        {2, 32, 13, 17, 17, 1},
        {4, 16, 35, 35, 24, 1}, /* several images per chunk of tiles */
    };
    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        int c = cases[i].channels, o = cases[i].out_channels;
        Tensor *x = random_leaf(shape4(cases[i].batch, c, cases[i].height, cases[i].width), 100 + i, 1.0f);
        Tensor *w = random_leaf(shape4(o, c, 3, 3), 200 + i, 1.0f / sqrtf(9.0f * c));
        Tensor *b = random_leaf(shape1(o), 300 + i, 1.0f);
        Tensor *direct = op_conv2d(&tape, x, w, b, conv_geometry(1, cases[i].pad));
        Tensor *winograd = op_conv2d_winograd(&tape, x, w, b, cases[i].pad);
        CHECK_MSG(shape_equal(direct->shape, winograd->shape), "case %zu: shapes differ", i);
        if (shape_equal(direct->shape, winograd->shape)) {
            double worst = worst_ratio(winograd, direct);
            CHECK_MSG(worst <= 1.0, "case %zu: error %.2f times the tolerance", i, worst);
        }
        tape_reset(&tape);
        leaf_free(x);
        leaf_free(w);
        leaf_free(b);
    }
    tape_free(&tape);
}

TEST(affine_relu_matches_conv_then_affine)
{
    static const struct {
        int kh, kw, stride, pad_h, pad_w;
    } cases[] = {
        {3, 3, 1, 1, 1}, /* takes the Winograd path */
        {3, 3, 1, 0, 0}, /* Winograd without padding */
        {3, 3, 2, 0, 0}, /* im2col, stride 2 */
        {1, 7, 1, 0, 3}, /* im2col, non-square kernel */
        {1, 1, 1, 0, 0}, /* pointwise */
        {5, 5, 1, 2, 2},
    };
    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        int c = 6, o = 7;
        Tensor *x = random_leaf(shape4(3, c, 11, 10), 400 + i, 1.0f);
        Tensor *w = random_leaf(shape4(o, c, cases[i].kh, cases[i].kw), 500 + i,
                                1.0f / sqrtf((float)(c * cases[i].kh * cases[i].kw)));
        Tensor *scale = random_leaf(shape1(o), 600 + i, 1.0f), *shift = random_leaf(shape1(o), 700 + i, 0.5f);
        Conv2dGeometry g = {cases[i].stride, cases[i].stride, cases[i].pad_h, cases[i].pad_w};
        Tensor *direct = op_conv2d(&tape, x, w, NULL, g);
        Tensor *fused = op_conv2d_affine_relu(&tape, x, w, scale->data, shift->data, o, g);
        CHECK_MSG(shape_equal(direct->shape, fused->shape), "case %zu: shapes differ", i);
        if (!shape_equal(direct->shape, fused->shape)) continue;

        /* expected: relu(conv·scale + shift), channel by channel */
        size_t plane = (size_t)direct->shape.dim[2] * direct->shape.dim[3];
        int negatives = 0;
        for (size_t k = 0; k < direct->numel; k++) {
            int ch = (int)(k / plane % (size_t)o);
            float v = direct->data[k] * scale->data[ch] + shift->data[ch];
            negatives += v < 0.0f;
            direct->data[k] = v > 0.0f ? v : 0.0f;
        }
        double worst = worst_ratio(fused, direct);
        CHECK_MSG(worst <= 1.0, "case %zu: error %.2f times the tolerance", i, worst);
        CHECK_MSG(negatives > 0, "case %zu: no value was clipped by the ReLU", i);
        tape_reset(&tape);
        leaf_free(x);
        leaf_free(w);
        leaf_free(scale);
        leaf_free(shift);
    }
    tape_free(&tape);
}
