/* GAN losses on discriminator logits: BCE with logits and the hinge losses. Each returns a
 * scalar mean over all logits. */
#include <math.h>

#include "internal.h"
#include "ops.h"

enum { LOSS_BCE, LOSS_HINGE_REAL, LOSS_HINGE_FAKE, LOSS_HINGE_G };

static void loss_backward(Tape *tape, const TapeEntry *e);

/* Per-logit loss and its derivative. */
static float loss_value(int kind, float x, float target)
{
    switch (kind) {
    case LOSS_BCE: /* max(x, 0) − x·t + log(1 + e^−|x|), stable for any x */
        return fmaxf(x, 0.0f) - x * target + log1pf(expf(-fabsf(x)));
    case LOSS_HINGE_REAL: /* relu written so that a NaN logit gives a NaN loss, as in PyTorch */
        return 1.0f - x < 0.0f ? 0.0f : 1.0f - x;
    case LOSS_HINGE_FAKE:
        return 1.0f + x < 0.0f ? 0.0f : 1.0f + x;
    default:
        return -x;
    }
}

static float loss_derivative(int kind, float x, float target)
{
    switch (kind) {
    case LOSS_BCE: {
        float z = expf(-fabsf(x));
        float sigmoid = x >= 0.0f ? 1.0f / (1.0f + z) : z / (1.0f + z);
        return sigmoid - target;
    }
    case LOSS_HINGE_REAL:
        return 1.0f - x > 0.0f ? -1.0f : 0.0f;
    case LOSS_HINGE_FAKE:
        return 1.0f + x > 0.0f ? 1.0f : 0.0f;
    default:
        return -1.0f;
    }
}

static Tensor *mean_loss(Tape *tape, const char *op, Tensor *logits, int kind, float target)
{
    Tensor *y = tensor_empty(tape, shape_make(0, NULL));
    double sum = 0.0;
    for (size_t i = 0; i < logits->numel; i++) sum += loss_value(kind, logits->data[i], target);
    y->data[0] = (float)(sum / (double)logits->numel);
    TapeEntry *e = tape_record(tape, op, loss_backward, y, logits, NULL, NULL, NULL);
    if (e) {
        e->iarg[0] = kind;
        e->farg[0] = target;
    }
    return y;
}

static void loss_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *y = e->out;
    float *dx = tensor_grad(tape, x);
    float scale = y->grad[0] / (float)x->numel;
    for (size_t i = 0; i < x->numel; i++) dx[i] += scale * loss_derivative(e->iarg[0], x->data[i], e->farg[0]);
}

Tensor *op_bce_with_logits(Tape *tape, Tensor *logits, float target)
{
    return mean_loss(tape, "bce_with_logits", logits, LOSS_BCE, target);
}

Tensor *op_hinge_d(Tape *tape, Tensor *logits, bool real)
{
    return mean_loss(tape, real ? "hinge_d_real" : "hinge_d_fake", logits, real ? LOSS_HINGE_REAL : LOSS_HINGE_FAKE, 0.0f);
}

Tensor *op_hinge_g(Tape *tape, Tensor *logits)
{
    return mean_loss(tape, "hinge_g", logits, LOSS_HINGE_G, 0.0f);
}
