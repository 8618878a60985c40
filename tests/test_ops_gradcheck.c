/* Finite-difference gradient checks for every op with a backward.
 *
 * For random inputs and a random projection r (standard normal, one value per output element),
 * L = Σ r ⊙ op(inputs). The op's float32 backward, seeded with r as the output gradient,
 * gives dL/dθ for every input and parameter θ. Central differences give the same derivative
 * as (L(θ + h) - L(θ - h)) / (h₊ + h₋), where h₊ and h₋ are the steps actually taken after
 * rounding θ ± h to float32. L(θ + h) - L(θ - h) is accumulated in double as Σ r ⊙ (y₊ - y₋),
 * so the output elements that the perturbed element does not touch cancel exactly.
 *
 * Steps, chosen per op:
 *   - 0.5 for ops that are linear in each input separately (products, sums, convolutions,
 *     layout and pooling). Central differences are exact for them at any step, and a large
 *     step keeps float32 rounding of the forward small relative to the difference.
 *   - 0.02 for the piecewise-linear ReLU, LeakyReLU and hinge losses, whose inputs are drawn
 *     at least 0.05 away from the kinks so that no step crosses one.
 *   - 0.01 for smooth nonlinear ops (GELU, tanh, sigmoid, layer norm, attention, BCE): the
 *     truncation error h²·f'''/6 and the rounding error about 1e-7·|y| / h are then both
 *     near 1e-5 relative.
 *   - 0.05 for batch norm in training mode: perturbing one input moves every output of its
 *     channel through the batch statistics, so rounding noise dominates at 0.01 (a relative
 *     error of 7e-4 was seen there, 1.5e-4 at 0.05).
 *
 * An element passes when |numeric - analytic| <= rtol·|numeric| + atol·max|analytic|, with
 * max|analytic| taken over the whole gradient tensor, rtol 1e-3 and atol 1e-3 unless an op
 * says otherwise. A wrong backward formula typically misses by a factor, not by 1e-3.
 * Gradients with more than GRAD_MAX_CHECKED elements are checked on a random subset that
 * always includes the element of largest magnitude. Every gradient must have a nonzero
 * element, so a check cannot pass because the backward wrote nothing. A second backward
 * pass must double every gradient, so a backward that overwrites instead of adding fails.
 *
 * Each op runs on GRAD_TRIALS random shapes drawn with rng.h from a fixed seed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "op_test.h"  /* leaf tensors, backward_from */
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

enum { GRAD_MAX_INPUTS = 6, GRAD_MAX_CHECKED = 40, GRAD_TRIALS = 4, GRAD_LABEL_BYTES = 256 };

static const double STEP_LINEAR = 0.5, STEP_PIECEWISE = 0.02, STEP_SMOOTH = 0.01, STEP_BATCH_NORM = 0.05;
/* Distance kept between inputs and a kink; larger than STEP_PIECEWISE. */
static const float KINK_MARGIN = 0.05f;

typedef struct GradCase GradCase;
typedef Tensor *(*GradForward)(Tape *tape, GradCase *c);

struct GradCase {
    char label[GRAD_LABEL_BYTES];        /* op and shapes, for messages */
    Tensor *inputs[GRAD_MAX_INPUTS];     /* leaves; those with requires_grad are checked */
    const char *names[GRAD_MAX_INPUTS];
    int count;
    GradForward forward;
    int iarg[8];                         /* op arguments, meaning per op */
    float farg[4];
    float *running_mean, *running_var;   /* batch norm only: (C) */
    Rng draws;                           /* diffaugment only: where its random draws start */
    double step;
    double rtol, atol;                   /* atol is relative to max|analytic| of the tensor */
};

/* Largest error of one op over its trials, relative to the tolerance. */
typedef struct GradStats {
    double max_fraction_of_tolerance;
    double max_relative_error;           /* |numeric - analytic| / max|analytic| */
    size_t checked;
} GradStats;

/* ---- random shapes and inputs ------------------------------------------------------------ */

/* Uniform integer in [low, high]. */
static int rand_int(Rng *rng, int low, int high)
{
    return low + (int)rng_below(rng, (uint32_t)(high - low + 1));
}

static Tensor *add_input(GradCase *c, const char *name, Shape shape, Rng *rng, float std)
{
    Tensor *t = leaf_new(shape, true);
    rng_fill_normal(rng, t->data, t->numel, 0.0f, std);
    c->inputs[c->count] = t;
    c->names[c->count] = name;
    c->count++;
    return t;
}

/* Moves every value within KINK_MARGIN of `kink` to that distance, on the side it was on. */
static void push_away_from(Tensor *t, float kink)
{
    for (size_t i = 0; i < t->numel; i++) {
        float d = t->data[i] - kink;
        if (fabsf(d) < KINK_MARGIN) t->data[i] = kink + (d >= 0 ? KINK_MARGIN : -KINK_MARGIN);
    }
}

static Shape random_shape(Rng *rng, int min_ndim, int max_ndim, int max_dim)
{
    int ndim = rand_int(rng, min_ndim, max_ndim), dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = rand_int(rng, 1, max_dim);
    return shape_make(ndim, dims);
}

static void append_label(GradCase *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append_label(GradCase *c, const char *fmt, ...)
{
    size_t n = strlen(c->label);
    va_list args;
    va_start(args, fmt);
    vsnprintf(c->label + n, sizeof c->label - n, fmt, args);
    va_end(args);
}

/* Appends " name(d0, d1, ...)" for every input. */
static void label_inputs(GradCase *c)
{
    for (int i = 0; i < c->count; i++) {
        char s[64];
        append_label(c, " %s%s", c->names[i], shape_format(c->inputs[i]->shape, s));
    }
}

static void free_case(GradCase *c)
{
    for (int i = 0; i < c->count; i++) leaf_free(c->inputs[i]);
    free(c->running_mean);
    free(c->running_var);
}

/* ---- the check --------------------------------------------------------------------------- */

/* Indices to check: all of them for small tensors, otherwise a random subset that starts with
 * the element of largest |gradient|. Returns the count. */
static size_t choose_elements(const Tensor *x, Rng *rng, size_t *indices)
{
    if (x->numel <= GRAD_MAX_CHECKED) {
        for (size_t i = 0; i < x->numel; i++) indices[i] = i;
        return x->numel;
    }
    size_t largest = 0;
    for (size_t i = 1; i < x->numel; i++) {
        if (fabsf(x->grad[i]) > fabsf(x->grad[largest])) largest = i;
    }
    indices[0] = largest;
    for (size_t k = 1; k < GRAD_MAX_CHECKED; k++) indices[k] = rng_below(rng, (uint32_t)x->numel);
    return GRAD_MAX_CHECKED;
}

/* Σ r ⊙ (y₊ - y₋) after setting element `index` of x to `plus`, then to `minus`. */
static double projected_difference(GradCase *c, Tape *tape, Tensor *x, size_t index, float plus, float minus,
                                   const float *r, float *y_plus)
{
    float original = x->data[index];

    x->data[index] = plus;
    Tensor *y = c->forward(tape, c);
    size_t n = y->numel;
    memcpy(y_plus, y->data, n * sizeof(float));
    tape_reset(tape);

    x->data[index] = minus;
    y = c->forward(tape, c);
    double difference = 0.0;
    for (size_t j = 0; j < n; j++) difference += (double)r[j] * ((double)y_plus[j] - (double)y->data[j]);
    tape_reset(tape);

    x->data[index] = original;
    return difference;
}

static void check_input_gradient(GradCase *c, Tape *tape, int input, const float *r, float *y_plus, Rng *rng,
                                 GradStats *stats)
{
    Tensor *x = c->inputs[input];
    const char *name = c->names[input];

    double scale = 0.0;
    bool finite = true;
    for (size_t i = 0; i < x->numel; i++) {
        if (!isfinite(x->grad[i])) finite = false;
        if (fabs(x->grad[i]) > scale) scale = fabs(x->grad[i]);
    }
    CHECK_MSG(finite, "%s: gradient of %s has a NaN or an infinity", c->label, name);
    CHECK_MSG(scale > 0.0, "%s: gradient of %s is all zeros", c->label, name);
    if (!finite || scale == 0.0) return;

    size_t *indices = mg_malloc(GRAD_MAX_CHECKED * sizeof *indices);
    size_t count = choose_elements(x, rng, indices);
    size_t bad = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = indices[k];
        float plus = (float)(x->data[i] + c->step), minus = (float)(x->data[i] - c->step);
        double numeric = projected_difference(c, tape, x, i, plus, minus, r, y_plus) / ((double)plus - (double)minus);
        double analytic = x->grad[i];
        double error = fabs(numeric - analytic);
        double allowed = c->rtol * fabs(numeric) + c->atol * scale;

        if (error / allowed > stats->max_fraction_of_tolerance) stats->max_fraction_of_tolerance = error / allowed;
        if (error / scale > stats->max_relative_error) stats->max_relative_error = error / scale;
        stats->checked++;
        if (!(error <= allowed) && bad++ < 3)
            test_fail(__FILE__, __LINE__, "%s: d%s[%zu] = %.7g from backward, %.7g from central differences "
                      "(|error| %.3g > %.3g)", c->label, name, i, analytic, numeric, error, allowed);
    }
    if (bad > 3) test_fail(__FILE__, __LINE__, "%s: %zu of %zu elements of d%s out of tolerance", c->label, bad, count, name);
    free(indices);
}

/* Runs a second forward and backward pass without clearing the gradients, which must then
 * be twice the first ones because backward functions add to gradients instead of
 * overwriting them. Restores the first gradients afterwards. The tolerance allows for an
 * sgemm that adds into the existing gradient (beta = 1) and so rounds differently. */
static void check_accumulation(GradCase *c, Tape *tape, const float *r)
{
    float *first[GRAD_MAX_INPUTS] = {0};
    for (int i = 0; i < c->count; i++) {
        Tensor *x = c->inputs[i];
        if (!x->requires_grad) continue;
        first[i] = mg_malloc(x->numel * sizeof(float));
        memcpy(first[i], x->grad, x->numel * sizeof(float));
    }

    tape_reset(tape);
    backward_from(tape, c->forward(tape, c), r);
    tape_reset(tape);

    for (int i = 0; i < c->count; i++) {
        Tensor *x = c->inputs[i];
        if (!first[i]) continue;
        double scale = 0.0;
        for (size_t k = 0; k < x->numel; k++) scale = fmax(scale, fabs(first[i][k]));
        size_t bad = 0, first_bad = 0;
        for (size_t k = 0; k < x->numel; k++) {
            if (!(fabs(x->grad[k] - 2.0 * first[i][k]) <= 1e-6 * scale) && bad++ == 0) first_bad = k;
        }
        if (bad)
            test_fail(__FILE__, __LINE__, "%s: a second backward pass left d%s[%zu] = %.7g instead of twice %.7g "
                      "(%zu of %zu elements); backward must add to existing gradients", c->label, c->names[i],
                      first_bad, x->grad[first_bad], first[i][first_bad], bad, x->numel);
        memcpy(x->grad, first[i], x->numel * sizeof(float));
        free(first[i]);
    }
}

/* Runs the backward pass, checks that it accumulates, and compares every input's gradient
 * with central differences. */
static void gradcheck(GradCase *c, Rng *rng, GradStats *stats)
{
    Tape tape;
    tape_init(&tape);
    for (int i = 0; i < c->count; i++) leaf_zero_grad(c->inputs[i]);

    Tensor *y = c->forward(&tape, c);
    size_t n = y->numel;
    float *r = mg_malloc(n * sizeof(float)), *y_plus = mg_malloc(n * sizeof(float));
    rng_fill_normal(rng, r, n, 0.0f, 1.0f);
    CHECK_MSG(y->requires_grad && tape.count > 0, "%s: the op recorded nothing on the tape", c->label);
    if (y->requires_grad) {
        backward_from(&tape, y, r);
        check_accumulation(c, &tape, r);
        tape_set_grad_enabled(&tape, false);
        for (int i = 0; i < c->count; i++) {
            if (c->inputs[i]->requires_grad) check_input_gradient(c, &tape, i, r, y_plus, rng, stats);
        }
    }

    free(r);
    free(y_plus);
    tape_free(&tape);
}

typedef void (*GradSetup)(GradCase *c, Rng *rng, int trial);

static void run_gradchecks(const char *op, GradSetup setup, uint64_t seed)
{
    Rng rng = rng_make(seed, 0);
    GradStats stats = {0};
    for (int trial = 0; trial < GRAD_TRIALS; trial++) {
        GradCase c = {.step = STEP_SMOOTH, .rtol = 1e-3, .atol = 1e-3};
        snprintf(c.label, sizeof c.label, "%s (trial %d)", op, trial);
        setup(&c, &rng, trial);
        label_inputs(&c);
        gradcheck(&c, &rng, &stats);
        free_case(&c);
    }
    const char *verbose = getenv("MIXGAN_TEST_VERBOSE");
    if (verbose && *verbose && strcmp(verbose, "0") != 0)
        fprintf(stderr, "        %-16s %4zu elements, max |error| / max|gradient| %.2e, %.2f of the tolerance\n", op,
                stats.checked, stats.max_relative_error, stats.max_fraction_of_tolerance);
}

/* ---- linear algebra ---------------------------------------------------------------------- */

static Tensor *forward_linear(Tape *tape, GradCase *c)
{
    return op_linear(tape, c->inputs[0], c->inputs[1], c->count > 2 ? c->inputs[2] : NULL);
}

static void setup_linear(GradCase *c, Rng *rng, int trial)
{
    Shape x_shape = random_shape(rng, 1, 4, 4);
    int in = rand_int(rng, 1, 9), out = rand_int(rng, 1, 7);
    x_shape.dim[x_shape.ndim - 1] = in;
    c->forward = forward_linear;
    c->step = STEP_LINEAR;
    add_input(c, "x", x_shape, rng, 1.0f);
    add_input(c, "w", shape2(out, in), rng, 1.0f);
    if (trial % 2 == 0) add_input(c, "b", shape1(out), rng, 1.0f);
}

static Tensor *forward_matmul(Tape *tape, GradCase *c)
{
    return op_matmul(tape, c->inputs[0], c->inputs[1]);
}

static void setup_matmul(GradCase *c, Rng *rng, int trial)
{
    int batch = rand_int(rng, 1, 3), m = rand_int(rng, 1, 7), k = rand_int(rng, 1, 7), n = rand_int(rng, 1, 7);
    c->forward = forward_matmul;
    c->step = STEP_LINEAR;
    add_input(c, "a", shape3(batch, m, k), rng, 1.0f);
    add_input(c, "b", shape3(batch, k, n), rng, 1.0f);
}

/* ---- elementwise ------------------------------------------------------------------------- */

/* a of random shape and b of a broadcastable shape: a's trailing dims with leading 1s, or a's
 * own shape (the first trial). */
static void add_broadcast_pair(GradCase *c, Rng *rng, int trial)
{
    Shape a = random_shape(rng, 1, 4, 4);
    add_input(c, "a", a, rng, 1.0f);
    if (trial == 0) {
        add_input(c, "b", a, rng, 1.0f);
        return;
    }
    int trailing = rand_int(rng, 1, a.ndim), ones = rand_int(rng, 0, a.ndim - trailing), dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < ones; i++) dims[i] = 1;
    for (int i = 0; i < trailing; i++) dims[ones + i] = a.dim[a.ndim - trailing + i];
    add_input(c, "b", shape_make(ones + trailing, dims), rng, 1.0f);
}

static Tensor *forward_add(Tape *tape, GradCase *c)
{
    return op_add(tape, c->inputs[0], c->inputs[1]);
}

static void setup_add(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_add;
    c->step = STEP_LINEAR;
    add_broadcast_pair(c, rng, trial);
}

static Tensor *forward_mul(Tape *tape, GradCase *c)
{
    return op_mul(tape, c->inputs[0], c->inputs[1]);
}

static void setup_mul(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_mul;
    c->step = STEP_LINEAR;
    add_broadcast_pair(c, rng, trial);
}

static Tensor *forward_scale(Tape *tape, GradCase *c)
{
    return op_scale(tape, c->inputs[0], c->farg[0]);
}

static void setup_scale(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_scale;
    c->step = STEP_LINEAR;
    c->farg[0] = (trial % 2 ? -1.0f : 1.0f) * (0.25f + 2.0f * rng_uniform(rng));
    add_input(c, "x", random_shape(rng, 1, 4, 5), rng, 1.0f);
    append_label(c, " s=%g", c->farg[0]);
}

static Tensor *forward_gelu(Tape *tape, GradCase *c) { return op_gelu(tape, c->inputs[0]); }
static Tensor *forward_relu(Tape *tape, GradCase *c) { return op_relu(tape, c->inputs[0]); }
static Tensor *forward_tanh(Tape *tape, GradCase *c) { return op_tanh(tape, c->inputs[0]); }
static Tensor *forward_sigmoid(Tape *tape, GradCase *c) { return op_sigmoid(tape, c->inputs[0]); }

static Tensor *forward_leaky_relu(Tape *tape, GradCase *c)
{
    return op_leaky_relu(tape, c->inputs[0], c->farg[0]);
}

/* Inputs with standard deviation 2, so that both tails of a squashing function are reached. */
static void setup_gelu(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_gelu;
    add_input(c, "x", random_shape(rng, 1, 4, 5), rng, 2.0f);
}

static void setup_tanh(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_tanh;
    add_input(c, "x", random_shape(rng, 1, 4, 5), rng, 2.0f);
}

static void setup_sigmoid(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_sigmoid;
    add_input(c, "x", random_shape(rng, 1, 4, 5), rng, 2.0f);
}

static void setup_relu(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_relu;
    c->step = STEP_PIECEWISE;
    Tensor *x = add_input(c, "x", random_shape(rng, 1, 4, 5), rng, 1.0f);
    /* one positive input, so that the gradient cannot be all zeros */
    x->data[0] = 0.5f;
    push_away_from(x, 0.0f);
}

static void setup_leaky_relu(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_leaky_relu;
    c->step = STEP_PIECEWISE;
    c->farg[0] = trial == 0 ? 0.2f : 0.01f + 0.5f * rng_uniform(rng);
    push_away_from(add_input(c, "x", random_shape(rng, 1, 4, 5), rng, 1.0f), 0.0f);
    append_label(c, " slope=%g", c->farg[0]);
}

/* ---- reductions -------------------------------------------------------------------------- */

static Tensor *forward_sum(Tape *tape, GradCase *c) { return op_sum(tape, c->inputs[0], c->iarg[0]); }
static Tensor *forward_mean(Tape *tape, GradCase *c) { return op_mean(tape, c->inputs[0], c->iarg[0]); }

/* A random shape and an axis, -1 (everything) in the first trial. */
static void setup_reduction(GradCase *c, Rng *rng, int trial)
{
    Shape shape = random_shape(rng, 1, 4, 5);
    c->step = STEP_LINEAR;
    c->iarg[0] = trial == 0 ? -1 : rand_int(rng, 0, shape.ndim - 1);
    add_input(c, "x", shape, rng, 1.0f);
    append_label(c, " axis=%d", c->iarg[0]);
}

static void setup_sum(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_sum;
    setup_reduction(c, rng, trial);
}

static void setup_mean(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_mean;
    setup_reduction(c, rng, trial);
}

/* ---- convolutions ------------------------------------------------------------------------ */

static Conv2dGeometry case_geometry(const GradCase *c)
{
    return (Conv2dGeometry){.stride_h = c->iarg[0], .stride_w = c->iarg[1], .pad_h = c->iarg[2], .pad_w = c->iarg[3]};
}

static Tensor *forward_conv2d(Tape *tape, GradCase *c)
{
    return op_conv2d(tape, c->inputs[0], c->inputs[1], c->count > 2 ? c->inputs[2] : NULL, case_geometry(c));
}

static Tensor *forward_conv_transpose2d(Tape *tape, GradCase *c)
{
    return op_conv_transpose2d(tape, c->inputs[0], c->inputs[1], c->count > 2 ? c->inputs[2] : NULL,
                               case_geometry(c));
}

/* Kernel 1-4 by 1-4 (independently, so mostly non-square), stride 1-3 per axis, padding below
 * the kernel size per axis. */
static void random_conv_geometry(GradCase *c, Rng *rng, int *kh, int *kw)
{
    *kh = rand_int(rng, 1, 4);
    *kw = rand_int(rng, 1, 4);
    c->iarg[0] = rand_int(rng, 1, 3);
    c->iarg[1] = rand_int(rng, 1, 3);
    c->iarg[2] = rand_int(rng, 0, *kh - 1);
    c->iarg[3] = rand_int(rng, 0, *kw - 1);
}

static void setup_conv2d(GradCase *c, Rng *rng, int trial)
{
    int kh, kw;
    random_conv_geometry(c, rng, &kh, &kw);
    int batch = rand_int(rng, 1, 2), channels = rand_int(rng, 1, 3), out = rand_int(rng, 1, 3);
    /* at least one output row and column: H + 2·pad_h >= KH */
    int height = (kh - 2 * c->iarg[2] > 1 ? kh - 2 * c->iarg[2] : 1) + rand_int(rng, 0, 5);
    int width = (kw - 2 * c->iarg[3] > 1 ? kw - 2 * c->iarg[3] : 1) + rand_int(rng, 0, 5);
    c->forward = forward_conv2d;
    c->step = STEP_LINEAR;
    add_input(c, "x", shape4(batch, channels, height, width), rng, 1.0f);
    add_input(c, "w", shape4(out, channels, kh, kw), rng, 1.0f);
    if (trial % 2 == 0) add_input(c, "b", shape1(out), rng, 1.0f);
    append_label(c, " stride (%d, %d) pad (%d, %d)", c->iarg[0], c->iarg[1], c->iarg[2], c->iarg[3]);
}

static void setup_conv_transpose2d(GradCase *c, Rng *rng, int trial)
{
    int kh, kw, height, width;
    /* redraw until the output has at least one row and column: (H - 1)·stride - 2·pad + K >= 1 */
    do {
        random_conv_geometry(c, rng, &kh, &kw);
        height = rand_int(rng, 1, 5);
        width = rand_int(rng, 1, 5);
    } while ((height - 1) * c->iarg[0] - 2 * c->iarg[2] + kh < 1 || (width - 1) * c->iarg[1] - 2 * c->iarg[3] + kw < 1);
    int batch = rand_int(rng, 1, 2), channels = rand_int(rng, 1, 3), out = rand_int(rng, 1, 3);
    c->forward = forward_conv_transpose2d;
    c->step = STEP_LINEAR;
    add_input(c, "x", shape4(batch, channels, height, width), rng, 1.0f);
    add_input(c, "w", shape4(channels, out, kh, kw), rng, 1.0f);
    if (trial % 2 == 0) add_input(c, "b", shape1(out), rng, 1.0f);
    append_label(c, " stride (%d, %d) pad (%d, %d)", c->iarg[0], c->iarg[1], c->iarg[2], c->iarg[3]);
}

/* ---- normalisation ----------------------------------------------------------------------- */

static Tensor *forward_batch_norm2d(Tape *tape, GradCase *c)
{
    BatchNormStats stats = {c->running_mean, c->running_var};
    return op_batch_norm2d(tape, c->inputs[0], c->inputs[1], c->inputs[2], stats, c->iarg[0] != 0, 0.1f, 1e-5f);
}

/* Training mode in the first three trials, eval mode in the last. At least four values per
 * channel, so that the batch variance is not degenerate. */
static void setup_batch_norm2d(GradCase *c, Rng *rng, int trial)
{
    int batch = rand_int(rng, 2, 4), channels = rand_int(rng, 1, 3), height = rand_int(rng, 1, 4);
    int width = rand_int(rng, (4 + batch * height - 1) / (batch * height), 4);
    c->forward = forward_batch_norm2d;
    c->iarg[0] = trial < GRAD_TRIALS - 1;
    c->step = c->iarg[0] ? STEP_BATCH_NORM : STEP_SMOOTH;
    add_input(c, "x", shape4(batch, channels, height, width), rng, 1.5f);
    Tensor *weight = add_input(c, "weight", shape1(channels), rng, 0.3f);
    for (int i = 0; i < channels; i++) weight->data[i] += 1.0f;
    add_input(c, "bias", shape1(channels), rng, 0.5f);
    c->running_mean = mg_malloc((size_t)channels * sizeof(float));
    c->running_var = mg_malloc((size_t)channels * sizeof(float));
    rng_fill_normal(rng, c->running_mean, (size_t)channels, 0.0f, 0.5f);
    rng_fill_uniform(rng, c->running_var, (size_t)channels, 0.5f, 2.0f);
    append_label(c, c->iarg[0] ? " training" : " eval");
}

static Tensor *forward_layer_norm(Tape *tape, GradCase *c)
{
    return op_layer_norm(tape, c->inputs[0], c->inputs[1], c->inputs[2], 1e-5f);
}

static void setup_layer_norm(GradCase *c, Rng *rng, int trial)
{
    Shape shape = random_shape(rng, 1, 4, 4);
    int features = rand_int(rng, 2, 9);
    shape.dim[shape.ndim - 1] = features;
    c->forward = forward_layer_norm;
    add_input(c, "x", shape, rng, 1.5f);
    Tensor *weight = add_input(c, "weight", shape1(features), rng, 0.3f);
    for (int i = 0; i < features; i++) weight->data[i] += 1.0f;
    add_input(c, "bias", shape1(features), rng, 0.5f);
}

/* ---- attention --------------------------------------------------------------------------- */

static Tensor *forward_attention(Tape *tape, GradCase *c)
{
    return op_attention(tape, c->inputs[0], c->iarg[0]);
}

/* The last trial has 67 tokens, so that a kernel working on blocks of query rows runs more
 * than one block. */
static void setup_attention(GradCase *c, Rng *rng, int trial)
{
    int heads = rand_int(rng, 1, 3), head_size = rand_int(rng, 1, 4);
    int tokens = trial == GRAD_TRIALS - 1 ? 67 : rand_int(rng, 1, 9);
    int batch = rand_int(rng, 1, 2);
    c->forward = forward_attention;
    c->iarg[0] = heads;
    add_input(c, "qkv", shape3(batch, tokens, 3 * heads * head_size), rng, 1.0f);
    append_label(c, " heads=%d", heads);
}

/* ---- layout ------------------------------------------------------------------------------ */

static Tensor *forward_tokens_to_image(Tape *tape, GradCase *c)
{
    return op_tokens_to_image(tape, c->inputs[0], c->iarg[0], c->iarg[1]);
}

static void setup_tokens_to_image(GradCase *c, Rng *rng, int trial)
{
    int height = rand_int(rng, 1, 4), width = rand_int(rng, 1, 4);
    c->forward = forward_tokens_to_image;
    c->step = STEP_LINEAR;
    c->iarg[0] = height;
    c->iarg[1] = width;
    add_input(c, "x", shape3(rand_int(rng, 1, 2), height * width, rand_int(rng, 1, 4)), rng, 1.0f);
    append_label(c, " %dx%d", height, width);
}

static Tensor *forward_image_to_tokens(Tape *tape, GradCase *c)
{
    return op_image_to_tokens(tape, c->inputs[0]);
}

static void setup_image_to_tokens(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_image_to_tokens;
    c->step = STEP_LINEAR;
    add_input(c, "x", shape4(rand_int(rng, 1, 2), rand_int(rng, 1, 4), rand_int(rng, 1, 4), rand_int(rng, 1, 4)),
              rng, 1.0f);
}

static Tensor *forward_pixel_shuffle(Tape *tape, GradCase *c)
{
    return op_pixel_shuffle(tape, c->inputs[0], c->iarg[0]);
}

static void setup_pixel_shuffle(GradCase *c, Rng *rng, int trial)
{
    int factor = trial == GRAD_TRIALS - 1 ? 3 : 2;
    c->forward = forward_pixel_shuffle;
    c->step = STEP_LINEAR;
    c->iarg[0] = factor;
    add_input(c, "x", shape4(rand_int(rng, 1, 2), rand_int(rng, 1, 3) * factor * factor, rand_int(rng, 1, 3),
                             rand_int(rng, 1, 3)), rng, 1.0f);
    append_label(c, " factor=%d", factor);
}

static Tensor *forward_patch_merge(Tape *tape, GradCase *c)
{
    return op_patch_merge(tape, c->inputs[0], c->iarg[0], c->iarg[1]);
}

static void setup_patch_merge(GradCase *c, Rng *rng, int trial)
{
    int height = 2 * rand_int(rng, 1, 3), width = 2 * rand_int(rng, 1, 3);
    c->forward = forward_patch_merge;
    c->step = STEP_LINEAR;
    c->iarg[0] = height;
    c->iarg[1] = width;
    add_input(c, "x", shape3(rand_int(rng, 1, 2), height * width, rand_int(rng, 1, 3)), rng, 1.0f);
    append_label(c, " %dx%d", height, width);
}

static Tensor *forward_prepend_token(Tape *tape, GradCase *c)
{
    return op_prepend_token(tape, c->inputs[0], c->inputs[1]);
}

static void setup_prepend_token(GradCase *c, Rng *rng, int trial)
{
    int features = rand_int(rng, 1, 5);
    c->forward = forward_prepend_token;
    c->step = STEP_LINEAR;
    add_input(c, "x", shape3(rand_int(rng, 1, 3), rand_int(rng, 1, 6), features), rng, 1.0f);
    add_input(c, "token", shape3(1, 1, features), rng, 1.0f);
}

static Tensor *forward_concat_channels(Tape *tape, GradCase *c)
{
    return op_concat_channels(tape, c->inputs, c->count);
}

static void setup_concat_channels(GradCase *c, Rng *rng, int trial)
{
    static const char *names[] = {"x0", "x1", "x2", "x3"};
    int batch = rand_int(rng, 1, 2), height = rand_int(rng, 1, 4), width = rand_int(rng, 1, 4);
    int count = trial + 1 < 4 ? trial + 1 : 4;
    c->forward = forward_concat_channels;
    c->step = STEP_LINEAR;
    for (int i = 0; i < count; i++) add_input(c, names[i], shape4(batch, rand_int(rng, 1, 3), height, width), rng, 1.0f);
}

static Tensor *forward_slice_token(Tape *tape, GradCase *c)
{
    return op_slice_token(tape, c->inputs[0], c->iarg[0]);
}

static void setup_slice_token(GradCase *c, Rng *rng, int trial)
{
    int tokens = rand_int(rng, 1, 6);
    c->forward = forward_slice_token;
    c->step = STEP_LINEAR;
    c->iarg[0] = rand_int(rng, 0, tokens - 1);
    add_input(c, "x", shape3(rand_int(rng, 1, 3), tokens, rand_int(rng, 1, 5)), rng, 1.0f);
    append_label(c, " index=%d", c->iarg[0]);
}

/* ---- pooling ----------------------------------------------------------------------------- */

static Tensor *forward_avg_pool2d(Tape *tape, GradCase *c)
{
    return op_avg_pool2d(tape, c->inputs[0], c->iarg[0], c->iarg[1], c->iarg[2], c->iarg[3] != 0);
}

/* Padding at most half the kernel, as PyTorch requires; count_include_pad alternates. */
static void setup_avg_pool2d(GradCase *c, Rng *rng, int trial)
{
    int kernel = rand_int(rng, 1, 4), stride = rand_int(rng, 1, 3), pad = rand_int(rng, 0, kernel / 2);
    int low = kernel - 2 * pad > 1 ? kernel - 2 * pad : 1;
    c->forward = forward_avg_pool2d;
    c->step = STEP_LINEAR;
    c->iarg[0] = kernel;
    c->iarg[1] = stride;
    c->iarg[2] = pad;
    c->iarg[3] = trial % 2;
    add_input(c, "x", shape4(rand_int(rng, 1, 2), rand_int(rng, 1, 3), low + rand_int(rng, 0, 4),
                             low + rand_int(rng, 0, 4)), rng, 1.0f);
    append_label(c, " k=%d stride=%d pad=%d count_include_pad=%d", kernel, stride, pad, c->iarg[3]);
}

static Tensor *forward_global_avg_pool(Tape *tape, GradCase *c)
{
    return op_global_avg_pool(tape, c->inputs[0]);
}

static void setup_global_avg_pool(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_global_avg_pool;
    c->step = STEP_LINEAR;
    add_input(c, "x", shape4(rand_int(rng, 1, 2), rand_int(rng, 1, 3), rand_int(rng, 1, 5), rand_int(rng, 1, 5)),
              rng, 1.0f);
}

/* ---- losses ------------------------------------------------------------------------------ */

static Tensor *forward_bce_with_logits(Tape *tape, GradCase *c)
{
    return op_bce_with_logits(tape, c->inputs[0], c->farg[0]);
}

static void setup_bce_with_logits(GradCase *c, Rng *rng, int trial)
{
    static const float targets[GRAD_TRIALS] = {1.0f, 0.0f, 0.9f, 1.0f};
    c->forward = forward_bce_with_logits;
    c->farg[0] = targets[trial];
    add_input(c, "x", shape2(rand_int(rng, 1, 9), 1), rng, 3.0f);
    append_label(c, " target=%g", c->farg[0]);
}

static Tensor *forward_hinge_d(Tape *tape, GradCase *c)
{
    return op_hinge_d(tape, c->inputs[0], c->iarg[0] != 0);
}

static void setup_hinge_d(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_hinge_d;
    c->step = STEP_PIECEWISE;
    c->iarg[0] = trial % 2 == 0;
    Tensor *x = add_input(c, "x", shape2(rand_int(rng, 1, 9), 1), rng, 1.5f);
    /* make sure some logits are on the active side of the hinge: 0 is active for both */
    x->data[0] = 0.0f;
    push_away_from(x, 1.0f);
    push_away_from(x, -1.0f);
    append_label(c, c->iarg[0] ? " real" : " fake");
}

static Tensor *forward_hinge_g(Tape *tape, GradCase *c)
{
    return op_hinge_g(tape, c->inputs[0]);
}

static void setup_hinge_g(GradCase *c, Rng *rng, int trial)
{
    c->forward = forward_hinge_g;
    c->step = STEP_LINEAR;
    add_input(c, "x", shape2(rand_int(rng, 1, 9), 1), rng, 1.5f);
}

/* ---- augmentation ------------------------------------------------------------------------ */

/* Every forward pass starts from the same RNG state, so that it draws the same shifts, factors
 * and cutout squares and the augmentation is a fixed function of x. */
static Tensor *forward_diffaugment(Tape *tape, GradCase *c)
{
    Rng rng = c->draws;
    return diffaugment(tape, c->inputs[0], (unsigned)c->iarg[0], &rng);
}

/* One policy per trial: color, translation, cutout, then all three. Every one is linear in
 * x for fixed draws. */
static void setup_diffaugment(GradCase *c, Rng *rng, int trial)
{
    static const unsigned policies[GRAD_TRIALS] = {AUGMENT_COLOR, AUGMENT_TRANSLATION, AUGMENT_CUTOUT,
                                                   AUGMENT_COLOR | AUGMENT_TRANSLATION | AUGMENT_CUTOUT};
    c->forward = forward_diffaugment;
    c->step = STEP_LINEAR;
    c->iarg[0] = (int)policies[trial];
    c->draws = rng_make(rng_below(rng, 1000), 1);
    add_input(c, "x", shape4(rand_int(rng, 1, 3), rand_int(rng, 1, 3), rand_int(rng, 2, 17), rand_int(rng, 2, 17)),
              rng, 0.5f);
    append_label(c, " policy=%u", policies[trial]);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* One test per op; the seed differs per op so that shapes differ too. */
#define GRADCHECK_TEST(op, seed) \
    TEST(gradcheck_##op) { run_gradchecks(#op, setup_##op, seed); }

GRADCHECK_TEST(linear, 101)
GRADCHECK_TEST(matmul, 102)
GRADCHECK_TEST(add, 103)
GRADCHECK_TEST(mul, 104)
GRADCHECK_TEST(scale, 105)
GRADCHECK_TEST(gelu, 106)
GRADCHECK_TEST(relu, 107)
GRADCHECK_TEST(leaky_relu, 108)
GRADCHECK_TEST(tanh, 109)
GRADCHECK_TEST(sigmoid, 110)
GRADCHECK_TEST(sum, 111)
GRADCHECK_TEST(mean, 112)
GRADCHECK_TEST(conv2d, 113)
GRADCHECK_TEST(conv_transpose2d, 114)
GRADCHECK_TEST(batch_norm2d, 115)
GRADCHECK_TEST(layer_norm, 116)
GRADCHECK_TEST(attention, 117)
GRADCHECK_TEST(tokens_to_image, 118)
GRADCHECK_TEST(image_to_tokens, 119)
GRADCHECK_TEST(pixel_shuffle, 120)
GRADCHECK_TEST(patch_merge, 121)
GRADCHECK_TEST(prepend_token, 122)
GRADCHECK_TEST(concat_channels, 123)
GRADCHECK_TEST(slice_token, 124)
GRADCHECK_TEST(avg_pool2d, 125)
GRADCHECK_TEST(global_avg_pool, 126)
GRADCHECK_TEST(bce_with_logits, 127)
GRADCHECK_TEST(hinge_d, 128)
GRADCHECK_TEST(hinge_g, 129)
GRADCHECK_TEST(diffaugment, 130)
