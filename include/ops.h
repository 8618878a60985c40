/* The differentiable ops of the tensor core.
 *
 * Every op computes its output eagerly into a new arena tensor and records itself on the
 * tape when an input requires a gradient (see tape.h). Weight layouts follow PyTorch, so
 * state dicts map one to one: Linear (O, I), Conv2d (O, C, KH, KW), ConvTranspose2d
 * (C, O, KH, KW). Shape letters are listed in tensor.h. A shape mismatch between an op's
 * inputs is a programming error: the op aborts with a message naming itself and both shapes.
 * Ops marked "forward only" record nothing and abort if an input requires a gradient while
 * gradients are enabled.
 */
#pragma once

#include <stdbool.h>

#include "tape.h"

/* ---- linear algebra ---------------------------------------------------------------- */

/* y = x·wᵀ + b. x (..., I) with any leading dims, w (O, I), b (O) or NULL -> y (..., O). */
Tensor *op_linear(Tape *tape, Tensor *x, Tensor *w, Tensor *b);
/* Batched product: a (B, M, K) · b (B, K, N) -> (B, M, N). */
Tensor *op_matmul(Tape *tape, Tensor *a, Tensor *b);

/* ---- elementwise ------------------------------------------------------------------- */

/* a + b. b has a's shape, or the shape of a's trailing dims with leading 1s allowed
 * (for example a (B, N, D) plus a positional embedding (1, N, D)), and is broadcast. */
Tensor *op_add(Tape *tape, Tensor *a, Tensor *b);
/* a ⊙ b with the same broadcasting rule as op_add. */
Tensor *op_mul(Tape *tape, Tensor *a, Tensor *b);
/* s · x. */
Tensor *op_scale(Tape *tape, Tensor *x, float s);
/* GELU, exact erf form: x · Φ(x). */
Tensor *op_gelu(Tape *tape, Tensor *x);
Tensor *op_relu(Tape *tape, Tensor *x);
/* x for x >= 0, slope · x otherwise. */
Tensor *op_leaky_relu(Tape *tape, Tensor *x, float slope);
Tensor *op_tanh(Tape *tape, Tensor *x);
Tensor *op_sigmoid(Tape *tape, Tensor *x);

/* ---- reductions -------------------------------------------------------------------- */

/* Sum over one axis, which is removed from the shape; axis -1 sums everything to a scalar. */
Tensor *op_sum(Tape *tape, Tensor *x, int axis);
/* Mean over one axis, removed from the shape; axis -1 averages everything to a scalar. */
Tensor *op_mean(Tape *tape, Tensor *x, int axis);

/* ---- convolutions ------------------------------------------------------------------ */

typedef struct Conv2dGeometry {
    int stride_h, stride_w;
    int pad_h, pad_w;   /* zero padding on each side */
} Conv2dGeometry;

static inline Conv2dGeometry conv_geometry(int stride, int pad)
{
    return (Conv2dGeometry){stride, stride, pad, pad};
}

/* x (B, C, H, W), w (O, C, KH, KW), b (O) or NULL -> (B, O, Ho, Wo) with
 * Ho = (H + 2·pad_h - KH) / stride_h + 1, likewise Wo. */
Tensor *op_conv2d(Tape *tape, Tensor *x, Tensor *w, Tensor *b, Conv2dGeometry g);
/* x (B, C, H, W), w (C, O, KH, KW), b (O) or NULL -> (B, O, Ho, Wo) with
 * Ho = (H - 1)·stride_h - 2·pad_h + KH, likewise Wo. The gradient of op_conv2d with
 * respect to its input. */
Tensor *op_conv_transpose2d(Tape *tape, Tensor *x, Tensor *w, Tensor *b, Conv2dGeometry g);

/* 3×3 convolution with stride 1 and padding 0 or 1 by Winograd's F(2×2, 3×3): the same
 * result as op_conv2d up to rounding, with fewer multiplications. Forward only.
 * x (B, C, H, W), w (O, C, 3, 3), b (O) or NULL -> (B, O, H + 2·pad − 2, W + 2·pad − 2). */
Tensor *op_conv2d_winograd(Tape *tape, Tensor *x, Tensor *w, Tensor *b, int pad);

/* conv2d(x, w)·scale[o] + shift[o] for every output channel o, then ReLU for the channels
 * o < relu_channels: a convolution without bias followed by BatchNorm in inference mode and
 * ReLU, in one pass over the output. scale and shift (O) may be NULL (1 and 0). 3×3
 * convolutions with stride 1 and padding 0 or 1 and ReLU on every channel go through
 * op_conv2d_winograd's algorithm. Forward only. */
Tensor *op_conv2d_affine_relu(Tape *tape, Tensor *x, Tensor *w, const float *scale, const float *shift,
                              int relu_channels, Conv2dGeometry g);

/* ---- normalisation ----------------------------------------------------------------- */

/* Running statistics of a BatchNorm layer: buffers, not parameters. */
typedef struct BatchNormStats {
    float *running_mean;  /* (C) */
    float *running_var;   /* (C), unbiased batch variance */
} BatchNormStats;

/* x (B, C, H, W), weight and bias (C) -> (B, C, H, W). In training mode normalises with the
 * batch statistics (biased variance) and updates the running statistics with `momentum`
 * (running = (1 - momentum)·running + momentum·batch, unbiased variance), as PyTorch does.
 * In eval mode normalises with the running statistics. */
Tensor *op_batch_norm2d(Tape *tape, Tensor *x, Tensor *weight, Tensor *bias, BatchNormStats stats,
                        bool training, float momentum, float eps);
/* LayerNorm over the last axis: x (..., D), weight and bias (D) -> (..., D). */
Tensor *op_layer_norm(Tape *tape, Tensor *x, Tensor *weight, Tensor *bias, float eps);

/* ---- attention --------------------------------------------------------------------- */

/* Multi-head self-attention. qkv (B, N, 3·D) contains q, k and v in that order along the last
 * axis, each split into `heads` contiguous heads of D / heads features. Returns (B, N, D) with
 * head h in features [h·D/heads, (h+1)·D/heads): softmax(q·kᵀ / sqrt(D/heads))·v. Works on
 * blocks of query rows, so it never holds more than one row block of the score matrix per
 * thread; backward recomputes the scores from q and k and the saved log-sum-exp per row. */
Tensor *op_attention(Tape *tape, Tensor *qkv, int heads);

/* ---- layout ------------------------------------------------------------------------ */

/* (B, H·W, D) -> (B, D, H, W). */
Tensor *op_tokens_to_image(Tape *tape, Tensor *x, int height, int width);
/* (B, C, H, W) -> (B, H·W, C). */
Tensor *op_image_to_tokens(Tape *tape, Tensor *x);
/* PixelShuffle(r): (B, C·r², H, W) -> (B, C, H·r, W·r); input channel c·r² + i·r + j goes to
 * output channel c, row h·r + i, column w·r + j (PyTorch's order). */
Tensor *op_pixel_shuffle(Tape *tape, Tensor *x, int factor);
/* 2×2 patch merge of a token grid: (B, H·W, D) -> (B, (H/2)·(W/2), 4·D). The four tokens of
 * each neighbourhood are concatenated in the order (0,0), (0,1), (1,0), (1,1) as (row, column). */
Tensor *op_patch_merge(Tape *tape, Tensor *x, int height, int width);
/* Prepends one learned token: x (B, N, D), token (1, 1, D) -> (B, N + 1, D). */
Tensor *op_prepend_token(Tape *tape, Tensor *x, Tensor *token);
/* Concatenates images along channels: each xs[i] (B, Ci, H, W) -> (B, ΣCi, H, W). */
Tensor *op_concat_channels(Tape *tape, Tensor **xs, int count);
/* Channels [start, start + count) of x (B, C, H, W) -> (B, count, H, W). */
Tensor *op_slice_channels(Tape *tape, Tensor *x, int start, int count);
/* Token `index` of x (B, N, D) -> (B, D). */
Tensor *op_slice_token(Tape *tape, Tensor *x, int index);

/* ---- pooling and resizing ---------------------------------------------------------- */

/* Average pooling with a k×k window: x (B, C, H, W) -> (B, C, Ho, Wo), Ho = (H + 2·pad - k)
 * / stride + 1. With count_include_pad the divisor is always k²; without it, the number of
 * window taps inside the image. */
Tensor *op_avg_pool2d(Tape *tape, Tensor *x, int kernel, int stride, int pad, bool count_include_pad);
/* Max pooling with a k×k window, padding that never wins (as if -inf). Forward only. */
Tensor *op_max_pool2d(Tape *tape, Tensor *x, int kernel, int stride, int pad);
/* Mean over H and W: (B, C, H, W) -> (B, C). */
Tensor *op_global_avg_pool(Tape *tape, Tensor *x);
/* Bilinear resize with align_corners=False, bit-identical to PyTorch's CPU kernel:
 * (B, C, H, W) -> (B, C, out_h, out_w). Forward only. */
Tensor *op_resize_bilinear(Tape *tape, Tensor *x, int out_h, int out_w);

/* ---- losses ------------------------------------------------------------------------ */

/* Mean binary cross-entropy with logits against a constant target in [0, 1]: scalar. */
Tensor *op_bce_with_logits(Tape *tape, Tensor *logits, float target);
/* Hinge loss of the discriminator: mean(relu(1 - x)) for real, mean(relu(1 + x)) for fake. */
Tensor *op_hinge_d(Tape *tape, Tensor *logits, bool real);
/* Hinge loss of the generator: -mean(x). */
Tensor *op_hinge_g(Tape *tape, Tensor *logits);
