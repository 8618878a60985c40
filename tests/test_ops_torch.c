/* Every op against PyTorch.
 *
 * Runs each case stored in the .bin files of tests/fixtures, which tests/gen_op_fixtures.py
 * writes. A case builds the inputs and parameters as leaf tensors, runs the op on a tape and
 * compares the output. It then seeds the output's gradient with the case's random dy, runs the
 * backward pass and compares the gradient of every input and parameter. BatchNorm cases also
 * compare the updated running statistics. A case with several gradients runs again once per
 * input with that input frozen (requires_grad false): it must get no gradient buffer while
 * the other gradients stay as they were. A test also fails when a case is missing a tensor
 * it needs, when the C output has another shape, or when the fixture has a tensor that no
 * case used (a misspelt name).
 *
 * Tolerances. An element passes when |actual - expected| <= atol + rtol·|expected|. The
 * expected values are float64 results rounded to float32, so the error measured is the C op's
 * own float32 rounding error. It depends on how many terms the op accumulates and in which
 * order, and sgemm's order changes with the OpenBLAS kernel that the CPU selects. Each class
 * below allows at least five times the largest error observed over the committed fixtures
 * (with OpenBLAS's SkylakeX kernels), so that another summation order or CPU still passes:
 *
 *   - EXACT: data movement (layout ops, image <-> tokens, slice) and max pooling, which copy
 *     values. resize_bilinear must also be bit-identical to torch.nn.functional.interpolate on
 *     CPU float32, because the Inception preprocessing of FID has to reproduce it.
 *   - FEW_TERMS (rtol 1e-6): gradients that add a few dy values, as prepend_token's token
 *     gradient does. Largest error seen 6e-8.
 *   - ELEMENTWISE (atol 1e-6, rtol 1e-5): one rounding plus the error of the vectorised
 *     exp and erfc of vecmath.h. The gradients of tanh and sigmoid are computed from the
 *     rounded output y as 1 - y² and y·(1 - y), which cancel near saturation, so they are
 *     accurate to about 1e-7 absolute rather than relative. Largest error seen 4.8e-7.
 *   - ACCUMULATED (atol 1e-5, rtol 1e-4): products, convolutions, reductions, pooling,
 *     normalisation, and add and mul gradients of a broadcast operand, which sum over up to a
 *     few thousand float32 terms. Largest error seen 3.1e-5, and no element used more than
 *     0.06 of its tolerance.
 *   - ATTENTION_GRADIENT (atol 5e-5, rtol 5e-4): the peaked attention case has scores up to
 *     45 in magnitude, so a softmax probability carries a relative error of up to about
 *     1e-7·45 and backward compounds it. Largest error seen 3.2e-5 on gradients up to 18.6;
 *     PyTorch's own float32 result for that case is 1.7e-5 off.
 * Run with MIXGAN_TEST_VERBOSE=1 to print the largest error of each family.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "op_test.h"  /* leaf tensors, backward_from */
#include "ops.h"
#include "test.h"
#include "util.h"

typedef struct Tolerance {
    double atol, rtol;
} Tolerance;

typedef struct CaseContext CaseContext;
/* Builds the case's inputs from the fixture and runs the op. Returns the op's output, or NULL
 * after reporting a tensor that the fixture lacks. */
typedef Tensor *(*CaseRunner)(CaseContext *c);

typedef struct OpFamily {
    const char *op;          /* first component of the fixture names */
    const char *file;        /* under tests/fixtures */
    CaseRunner run;
    Tolerance output, gradient;
    bool bit_exact;          /* outputs must match bit for bit */
} OpFamily;

enum { CASE_MAX_LEAVES = 8, CASE_MAX_EXTRAS = 2, CASE_NAME_BYTES = 256 };

/* Largest error seen in one family, over all of its cases. */
typedef struct ErrorStats {
    double max_output_error, max_gradient_error;
    double max_fraction_of_tolerance;   /* max of |error| / (atol + rtol·|expected|) */
    size_t values;                      /* elements compared */
} ErrorStats;

struct CaseContext {
    const Fixture *fixture;
    bool *used;                          /* per fixture tensor: looked up by some case */
    char name[CASE_NAME_BYTES];          /* "<op>/<case>" */
    char label[CASE_NAME_BYTES + 32];    /* the name, plus the frozen input if any, for messages */
    const char *frozen;                  /* input built without requires_grad, or NULL */
    Tape *tape;
    bool missing;                        /* a required tensor or argument was missing */

    Tensor *leaves[CASE_MAX_LEAVES];     /* inputs and parameters, in lookup order, freed with the case */
    const char *leaf_names[CASE_MAX_LEAVES];
    bool leaves_required_grad[CASE_MAX_LEAVES];
    int leaf_count;

    /* results other than y and the gradients, such as BatchNorm's running statistics */
    const char *extra_names[CASE_MAX_EXTRAS];
    float *extra_data[CASE_MAX_EXTRAS];  /* malloc'd, freed with the case */
    int extra_count;
};

/* ---- fixture lookups --------------------------------------------------------------------- */

/* Returns "<case>/<tensor>" from the fixture and marks it as used, or NULL. */
static const FixtureTensor *case_tensor(CaseContext *c, const char *tensor)
{
    char full[CASE_NAME_BYTES + 64];
    snprintf(full, sizeof full, "%s/%s", c->name, tensor);
    for (size_t i = 0; i < c->fixture->count; i++) {
        if (strcmp(c->fixture->tensors[i].name, full) == 0) {
            c->used[i] = true;
            return &c->fixture->tensors[i];
        }
    }
    return NULL;
}

static const FixtureTensor *case_require(CaseContext *c, const char *tensor)
{
    const FixtureTensor *t = case_tensor(c, tensor);
    if (!t) {
        test_fail(__FILE__, __LINE__, "%s: %s has no tensor '%s'", c->label, c->fixture->path, tensor);
        c->missing = true;
    }
    return t;
}

static Tensor *add_leaf(CaseContext *c, const char *tensor, const FixtureTensor *t)
{
    if (c->leaf_count == CASE_MAX_LEAVES) {
        test_fail(__FILE__, __LINE__, "%s: more than %d inputs", c->label, CASE_MAX_LEAVES);
        c->missing = true;
        return NULL;
    }
    char grad_name[64];
    snprintf(grad_name, sizeof grad_name, "d%s", tensor);
    bool requires_grad = case_tensor(c, grad_name) != NULL && !(c->frozen && strcmp(c->frozen, tensor) == 0);
    Tensor *leaf = leaf_from(t->shape, t->data, requires_grad);
    c->leaves[c->leaf_count] = leaf;
    c->leaf_names[c->leaf_count] = tensor;
    c->leaves_required_grad[c->leaf_count] = requires_grad;
    c->leaf_count++;
    return leaf;
}

/* An input or parameter of the op, as a leaf tensor that requires a gradient exactly when the
 * fixture contains one for it ("d<tensor>"). Reports a missing tensor and returns NULL. */
static Tensor *case_input(CaseContext *c, const char *tensor)
{
    const FixtureTensor *t = case_require(c, tensor);
    return t ? add_leaf(c, tensor, t) : NULL;
}

/* Like case_input() for an argument that may be NULL, such as a bias. */
static Tensor *case_optional_input(CaseContext *c, const char *tensor)
{
    const FixtureTensor *t = case_tensor(c, tensor);
    return t ? add_leaf(c, tensor, t) : NULL;
}

/* Element `index` of the case's "args" tensor. */
static float case_arg(CaseContext *c, size_t index)
{
    const FixtureTensor *args = case_require(c, "args");
    if (!args) return 0.0f;
    if (index >= args->numel) {
        test_fail(__FILE__, __LINE__, "%s: args has %zu values, expected at least %zu", c->label, args->numel,
                  index + 1);
        c->missing = true;
        return 0.0f;
    }
    return args->data[index];
}

static int case_int_arg(CaseContext *c, size_t index)
{
    return (int)lroundf(case_arg(c, index));
}

/* A float buffer initialised from the fixture tensor `tensor`, compared after the op with the
 * fixture tensor `expected`. */
static float *case_extra(CaseContext *c, const char *tensor, const char *expected)
{
    const FixtureTensor *t = case_require(c, tensor);
    if (!t) return NULL;
    if (c->extra_count == CASE_MAX_EXTRAS) {
        test_fail(__FILE__, __LINE__, "%s: more than %d extra results", c->label, CASE_MAX_EXTRAS);
        c->missing = true;
        return NULL;
    }
    float *data = mg_malloc(t->numel * sizeof(float));
    memcpy(data, t->data, t->numel * sizeof(float));
    c->extra_names[c->extra_count] = expected;
    c->extra_data[c->extra_count] = data;
    c->extra_count++;
    return data;
}

/* ---- comparisons ------------------------------------------------------------------------- */

/* Compares `actual` with the fixture tensor and records one failure per tensor, naming the
 * first element out of tolerance and how many are. Returns the largest absolute error. */
static double compare_values(const char *label, const float *actual, const FixtureTensor *expected,
                             Tolerance tol, bool bit_exact, ErrorStats *stats)
{
    double max_error = 0.0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < expected->numel; i++) {
        double a = actual[i], e = expected->data[i];
        double error = fabs(a - e);
        double allowed = tol.atol + tol.rtol * fabs(e);
        bool ok = bit_exact ? memcmp(&actual[i], &expected->data[i], sizeof(float)) == 0 : error <= allowed;
        if (!ok && bad++ == 0) first_bad = i;
        if (error > max_error || isnan(error)) max_error = isnan(error) ? INFINITY : error;
        if (allowed > 0 && error / allowed > stats->max_fraction_of_tolerance)
            stats->max_fraction_of_tolerance = error / allowed;
    }
    stats->values += expected->numel;
    if (bad) {
        size_t i = first_bad;
        if (bit_exact)
            test_fail(__FILE__, __LINE__, "%s: %zu of %zu values differ from PyTorch in their bits; first at [%zu]: "
                      "%.9g (%a), expected %.9g (%a)", label, bad, expected->numel, i, actual[i], actual[i],
                      expected->data[i], expected->data[i]);
        else
            test_fail(__FILE__, __LINE__, "%s: %zu of %zu values outside |error| <= %g + %g*|expected|; first at [%zu]: "
                      "%.9g, expected %.9g; max |error| %.3g", label, bad, expected->numel, tol.atol, tol.rtol, i,
                      actual[i], expected->data[i], max_error);
    }
    return max_error;
}

static bool check_shape(const char *label, Shape actual, Shape expected)
{
    if (shape_equal(actual, expected)) return true;
    char a[64], e[64];
    test_fail(__FILE__, __LINE__, "%s: shape %s, expected %s", label, shape_format(actual, a), shape_format(expected, e));
    return false;
}

/* ---- one case ---------------------------------------------------------------------------- */

static void compare_gradients(const OpFamily *family, CaseContext *c, Tensor *y, const FixtureTensor *dy,
                              ErrorStats *stats)
{
    if (!y->requires_grad || c->tape->count == 0) {
        test_fail(__FILE__, __LINE__, "%s: the op recorded nothing on the tape although its inputs require gradients",
                  c->label);
        return;
    }
    backward_from(c->tape, y, dy->data);

    for (int i = 0; i < c->leaf_count; i++) {
        Tensor *leaf = c->leaves[i];
        if (c->frozen && strcmp(c->frozen, c->leaf_names[i]) == 0)
            CHECK_MSG(leaf->grad == NULL, "%s: the frozen input %s received a gradient buffer", c->label, c->frozen);
        if (!leaf->requires_grad) continue;
        char grad_name[64], label[CASE_NAME_BYTES + 32 + 72]; /* c->label, "/" and grad_name */
        snprintf(grad_name, sizeof grad_name, "d%s", c->leaf_names[i]);
        snprintf(label, sizeof label, "%s/%s", c->label, grad_name);
        const FixtureTensor *expected = case_require(c, grad_name);
        if (!expected || !check_shape(label, leaf->shape, expected->shape)) continue;
        double error = compare_values(label, leaf->grad, expected, family->gradient, false, stats);
        if (error > stats->max_gradient_error) stats->max_gradient_error = error;
    }
}

/* Runs one case. Every input that the fixture has a gradient for requires a gradient, except
 * c->frozen. */
static void run_case_once(const OpFamily *family, CaseContext *c, ErrorStats *stats)
{
    tape_reset(c->tape);
    if (c->frozen)
        snprintf(c->label, sizeof c->label, "%s (%s frozen)", c->name, c->frozen);
    else
        snprintf(c->label, sizeof c->label, "%s", c->name);
    Tensor *y = family->run(c);

    if (y && !c->missing) {
        char label[CASE_NAME_BYTES + 64];
        snprintf(label, sizeof label, "%s/y", c->label);
        const FixtureTensor *expected = case_require(c, "y");
        if (expected && check_shape(label, y->shape, expected->shape)) {
            double error = compare_values(label, y->data, expected, family->output, family->bit_exact, stats);
            if (error > stats->max_output_error) stats->max_output_error = error;
        }
        for (int i = 0; i < c->extra_count; i++) {
            snprintf(label, sizeof label, "%s/%s", c->label, c->extra_names[i]);
            const FixtureTensor *extra = case_require(c, c->extra_names[i]);
            if (extra) compare_values(label, c->extra_data[i], extra, family->output, false, stats);
        }

        const FixtureTensor *dy = case_tensor(c, "dy");
        if (dy && expected && shape_equal(y->shape, expected->shape)) compare_gradients(family, c, y, dy, stats);
    }

    for (int i = 0; i < c->leaf_count; i++) leaf_free(c->leaves[i]);
    for (int i = 0; i < c->extra_count; i++) free(c->extra_data[i]);
}

/* Runs a case, then once more per input with a gradient while that input is frozen, as a
 * discriminator's parameters are during a generator step. The frozen input must get no
 * gradient buffer and the other gradients must not change. */
static void run_case(const OpFamily *family, const CaseContext *initial, ErrorStats *stats)
{
    CaseContext c = *initial;
    run_case_once(family, &c, stats);

    const char *with_gradient[CASE_MAX_LEAVES];
    int count = 0;
    for (int i = 0; i < c.leaf_count; i++) {
        if (c.leaves_required_grad[i]) with_gradient[count++] = c.leaf_names[i];
    }
    if (count < 2) return;
    for (int i = 0; i < count; i++) {
        CaseContext frozen = *initial;
        frozen.frozen = with_gradient[i];
        run_case_once(family, &frozen, stats);
    }
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Runs every case of `family` in its fixture file. */
static void run_family(const OpFamily *family)
{
    char path[256], error[512];
    snprintf(path, sizeof path, "tests/fixtures/%s", family->file);
    Fixture fixture;
    if (!fixture_load(&fixture, path, error, sizeof error)) {
        test_fail(__FILE__, __LINE__, "%s", error);
        return;
    }

    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s/", family->op);
    size_t prefix_length = strlen(prefix);
    bool *used = mg_calloc(fixture.count ? fixture.count : 1, sizeof *used);
    Tape tape;
    tape_init(&tape);
    ErrorStats stats = {0};
    int cases = 0;

    for (size_t i = 0; i < fixture.count; i++) {
        const char *name = fixture.tensors[i].name;
        if (strncmp(name, prefix, prefix_length) != 0 || !has_suffix(name, "/y")) continue;
        CaseContext c = {.fixture = &fixture, .used = used, .tape = &tape};
        snprintf(c.name, sizeof c.name, "%.*s", (int)(strlen(name) - 2), name);
        run_case(family, &c, &stats);
        cases++;
    }
    CHECK_MSG(cases > 0, "%s has no %s cases", path, family->op);

    for (size_t i = 0; i < fixture.count; i++) {
        const char *name = fixture.tensors[i].name;
        if (strncmp(name, prefix, prefix_length) == 0 && !used[i])
            test_fail(__FILE__, __LINE__, "%s: tensor '%s' is not used by any case", path, name);
    }

    const char *verbose = getenv("MIXGAN_TEST_VERBOSE");
    if (verbose && *verbose && strcmp(verbose, "0") != 0)
        fprintf(stderr, "        %-16s %2d cases, %6zu values, max |error| output %.2e, gradients %.2e, "
                "%.2f of the tolerance\n", family->op, cases, stats.values, stats.max_output_error,
                stats.max_gradient_error, stats.max_fraction_of_tolerance);

    tape_free(&tape);
    free(used);
    fixture_free(&fixture);
}

/* ---- one runner per op ------------------------------------------------------------------- */

static Tensor *run_linear(CaseContext *c)
{
    Tensor *x = case_input(c, "x"), *w = case_input(c, "w"), *b = case_optional_input(c, "b");
    return c->missing ? NULL : op_linear(c->tape, x, w, b);
}

static Tensor *run_matmul(CaseContext *c)
{
    Tensor *a = case_input(c, "a"), *b = case_input(c, "b");
    return c->missing ? NULL : op_matmul(c->tape, a, b);
}

static Tensor *run_add(CaseContext *c)
{
    Tensor *a = case_input(c, "a"), *b = case_input(c, "b");
    return c->missing ? NULL : op_add(c->tape, a, b);
}

static Tensor *run_mul(CaseContext *c)
{
    Tensor *a = case_input(c, "a"), *b = case_input(c, "b");
    return c->missing ? NULL : op_mul(c->tape, a, b);
}

static Tensor *run_scale(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    float s = case_arg(c, 0);
    return c->missing ? NULL : op_scale(c->tape, x, s);
}

static Tensor *run_gelu(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_gelu(c->tape, x);
}

static Tensor *run_relu(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_relu(c->tape, x);
}

static Tensor *run_leaky_relu(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    float slope = case_arg(c, 0);
    return c->missing ? NULL : op_leaky_relu(c->tape, x, slope);
}

static Tensor *run_tanh(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_tanh(c->tape, x);
}

static Tensor *run_sigmoid(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_sigmoid(c->tape, x);
}

static Tensor *run_sum(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int axis = case_int_arg(c, 0);
    return c->missing ? NULL : op_sum(c->tape, x, axis);
}

static Tensor *run_mean(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int axis = case_int_arg(c, 0);
    return c->missing ? NULL : op_mean(c->tape, x, axis);
}

/* args: stride_h, stride_w, pad_h, pad_w */
static Conv2dGeometry case_geometry(CaseContext *c)
{
    return (Conv2dGeometry){.stride_h = case_int_arg(c, 0), .stride_w = case_int_arg(c, 1),
                            .pad_h = case_int_arg(c, 2), .pad_w = case_int_arg(c, 3)};
}

static Tensor *run_conv2d(CaseContext *c)
{
    Tensor *x = case_input(c, "x"), *w = case_input(c, "w"), *b = case_optional_input(c, "b");
    Conv2dGeometry g = case_geometry(c);
    return c->missing ? NULL : op_conv2d(c->tape, x, w, b, g);
}

static Tensor *run_conv_transpose2d(CaseContext *c)
{
    Tensor *x = case_input(c, "x"), *w = case_input(c, "w"), *b = case_optional_input(c, "b");
    Conv2dGeometry g = case_geometry(c);
    return c->missing ? NULL : op_conv_transpose2d(c->tape, x, w, b, g);
}

/* args: training (0 or 1), momentum, eps */
static Tensor *run_batch_norm2d(CaseContext *c)
{
    Tensor *x = case_input(c, "x"), *weight = case_input(c, "weight"), *bias = case_input(c, "bias");
    BatchNormStats stats = {
        .running_mean = case_extra(c, "running_mean", "running_mean_out"),
        .running_var = case_extra(c, "running_var", "running_var_out"),
    };
    bool training = case_int_arg(c, 0) != 0;
    float momentum = case_arg(c, 1), eps = case_arg(c, 2);
    return c->missing ? NULL : op_batch_norm2d(c->tape, x, weight, bias, stats, training, momentum, eps);
}

static Tensor *run_layer_norm(CaseContext *c)
{
    Tensor *x = case_input(c, "x"), *weight = case_input(c, "weight"), *bias = case_input(c, "bias");
    float eps = case_arg(c, 0);
    return c->missing ? NULL : op_layer_norm(c->tape, x, weight, bias, eps);
}

static Tensor *run_attention(CaseContext *c)
{
    Tensor *qkv = case_input(c, "qkv");
    int heads = case_int_arg(c, 0);
    return c->missing ? NULL : op_attention(c->tape, qkv, heads);
}

static Tensor *run_tokens_to_image(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int height = case_int_arg(c, 0), width = case_int_arg(c, 1);
    return c->missing ? NULL : op_tokens_to_image(c->tape, x, height, width);
}

static Tensor *run_image_to_tokens(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_image_to_tokens(c->tape, x);
}

static Tensor *run_pixel_shuffle(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int factor = case_int_arg(c, 0);
    return c->missing ? NULL : op_pixel_shuffle(c->tape, x, factor);
}

static Tensor *run_patch_merge(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int height = case_int_arg(c, 0), width = case_int_arg(c, 1);
    return c->missing ? NULL : op_patch_merge(c->tape, x, height, width);
}

static Tensor *run_prepend_token(CaseContext *c)
{
    Tensor *x = case_input(c, "x"), *token = case_input(c, "token");
    return c->missing ? NULL : op_prepend_token(c->tape, x, token);
}

/* Inputs x0, x1, ... in order, as many as the case has. */
static Tensor *run_concat_channels(CaseContext *c)
{
    Tensor *xs[CASE_MAX_LEAVES];
    static const char *names[CASE_MAX_LEAVES] = {"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"};
    int count = 0;
    while (count < CASE_MAX_LEAVES) {
        Tensor *x = case_optional_input(c, names[count]);
        if (!x) break;
        xs[count++] = x;
    }
    if (count == 0) case_require(c, "x0");
    return c->missing ? NULL : op_concat_channels(c->tape, xs, count);
}

static Tensor *run_slice_token(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int index = case_int_arg(c, 0);
    return c->missing ? NULL : op_slice_token(c->tape, x, index);
}

/* args: kernel, stride, pad, count_include_pad (0 or 1) */
static Tensor *run_avg_pool2d(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int kernel = case_int_arg(c, 0), stride = case_int_arg(c, 1), pad = case_int_arg(c, 2);
    bool count_include_pad = case_int_arg(c, 3) != 0;
    return c->missing ? NULL : op_avg_pool2d(c->tape, x, kernel, stride, pad, count_include_pad);
}

/* args: kernel, stride, pad */
static Tensor *run_max_pool2d(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    int kernel = case_int_arg(c, 0), stride = case_int_arg(c, 1), pad = case_int_arg(c, 2);
    return c->missing ? NULL : op_max_pool2d(c->tape, x, kernel, stride, pad);
}

static Tensor *run_global_avg_pool(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_global_avg_pool(c->tape, x);
}

/* The output size is the shape of the expected output. */
static Tensor *run_resize_bilinear(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    const FixtureTensor *y = case_require(c, "y");
    if (c->missing) return NULL;
    if (y->shape.ndim != 4) {
        test_fail(__FILE__, __LINE__, "%s: y has %d dimensions, expected 4", c->label, y->shape.ndim);
        return NULL;
    }
    return op_resize_bilinear(c->tape, x, y->shape.dim[2], y->shape.dim[3]);
}

static Tensor *run_bce_with_logits(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    float target = case_arg(c, 0);
    return c->missing ? NULL : op_bce_with_logits(c->tape, x, target);
}

/* args: real (0 or 1) */
static Tensor *run_hinge_d(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    bool real = case_int_arg(c, 0) != 0;
    return c->missing ? NULL : op_hinge_d(c->tape, x, real);
}

static Tensor *run_hinge_g(CaseContext *c)
{
    Tensor *x = case_input(c, "x");
    return c->missing ? NULL : op_hinge_g(c->tape, x);
}

/* ---- families and their tolerances ------------------------------------------------------- */

/* The classes are explained at the top of the file. */
static const Tolerance EXACT = {0.0, 0.0};
static const Tolerance FEW_TERMS = {0.0, 1e-6};
static const Tolerance ELEMENTWISE = {1e-6, 1e-5};
static const Tolerance ACCUMULATED = {1e-5, 1e-4};
static const Tolerance ATTENTION_GRADIENT = {5e-5, 5e-4};

static const OpFamily FAMILIES[] = {
    {"linear", "linear.bin", run_linear, ACCUMULATED, ACCUMULATED, false},
    {"matmul", "linear.bin", run_matmul, ACCUMULATED, ACCUMULATED, false},
    {"add", "elementwise.bin", run_add, ELEMENTWISE, ACCUMULATED, false},
    {"mul", "elementwise.bin", run_mul, ELEMENTWISE, ACCUMULATED, false},
    {"scale", "elementwise.bin", run_scale, ELEMENTWISE, ELEMENTWISE, false},
    {"gelu", "elementwise.bin", run_gelu, ELEMENTWISE, ELEMENTWISE, false},
    {"relu", "elementwise.bin", run_relu, ELEMENTWISE, ELEMENTWISE, false},
    {"leaky_relu", "elementwise.bin", run_leaky_relu, ELEMENTWISE, ELEMENTWISE, false},
    {"tanh", "elementwise.bin", run_tanh, ELEMENTWISE, ELEMENTWISE, false},
    {"sigmoid", "elementwise.bin", run_sigmoid, ELEMENTWISE, ELEMENTWISE, false},
    {"sum", "elementwise.bin", run_sum, ACCUMULATED, ACCUMULATED, false},
    {"mean", "elementwise.bin", run_mean, ACCUMULATED, ACCUMULATED, false},
    {"conv2d", "conv.bin", run_conv2d, ACCUMULATED, ACCUMULATED, false},
    {"conv_transpose2d", "conv.bin", run_conv_transpose2d, ACCUMULATED, ACCUMULATED, false},
    {"batch_norm2d", "norm.bin", run_batch_norm2d, ACCUMULATED, ACCUMULATED, false},
    {"layer_norm", "norm.bin", run_layer_norm, ACCUMULATED, ACCUMULATED, false},
    {"attention", "attention.bin", run_attention, ACCUMULATED, ATTENTION_GRADIENT, false},
    {"tokens_to_image", "layout.bin", run_tokens_to_image, EXACT, EXACT, true},
    {"image_to_tokens", "layout.bin", run_image_to_tokens, EXACT, EXACT, true},
    {"pixel_shuffle", "layout.bin", run_pixel_shuffle, EXACT, EXACT, true},
    {"patch_merge", "layout.bin", run_patch_merge, EXACT, EXACT, true},
    {"prepend_token", "layout.bin", run_prepend_token, EXACT, FEW_TERMS, true},
    {"concat_channels", "layout.bin", run_concat_channels, EXACT, EXACT, true},
    {"slice_token", "layout.bin", run_slice_token, EXACT, EXACT, true},
    {"avg_pool2d", "pool.bin", run_avg_pool2d, ACCUMULATED, ACCUMULATED, false},
    {"max_pool2d", "pool.bin", run_max_pool2d, EXACT, EXACT, true},
    {"global_avg_pool", "pool.bin", run_global_avg_pool, ACCUMULATED, ACCUMULATED, false},
    {"resize_bilinear", "resize.bin", run_resize_bilinear, EXACT, EXACT, true},
    {"bce_with_logits", "loss.bin", run_bce_with_logits, ELEMENTWISE, ELEMENTWISE, false},
    {"hinge_d", "loss.bin", run_hinge_d, ELEMENTWISE, ELEMENTWISE, false},
    {"hinge_g", "loss.bin", run_hinge_g, ELEMENTWISE, ELEMENTWISE, false},
};

static void run_named_family(const char *op)
{
    for (size_t i = 0; i < MG_ARRAY_LEN(FAMILIES); i++) {
        if (strcmp(FAMILIES[i].op, op) == 0) {
            run_family(&FAMILIES[i]);
            return;
        }
    }
    test_fail(__FILE__, __LINE__, "no op family named '%s' in FAMILIES", op);
}

#define TORCH_TEST(op) \
    TEST(torch_##op) { run_named_family(#op); }

TORCH_TEST(linear)
TORCH_TEST(matmul)
TORCH_TEST(add)
TORCH_TEST(mul)
TORCH_TEST(scale)
TORCH_TEST(gelu)
TORCH_TEST(relu)
TORCH_TEST(leaky_relu)
TORCH_TEST(tanh)
TORCH_TEST(sigmoid)
TORCH_TEST(sum)
TORCH_TEST(mean)
TORCH_TEST(conv2d)
TORCH_TEST(conv_transpose2d)
TORCH_TEST(batch_norm2d)
TORCH_TEST(layer_norm)
TORCH_TEST(attention)
TORCH_TEST(tokens_to_image)
TORCH_TEST(image_to_tokens)
TORCH_TEST(pixel_shuffle)
TORCH_TEST(patch_merge)
TORCH_TEST(prepend_token)
TORCH_TEST(concat_channels)
TORCH_TEST(slice_token)
TORCH_TEST(avg_pool2d)
TORCH_TEST(max_pool2d)
TORCH_TEST(global_avg_pool)
TORCH_TEST(resize_bilinear)
TORCH_TEST(bce_with_logits)
TORCH_TEST(hinge_d)
TORCH_TEST(hinge_g)

/* Every fixture tensor belongs to one of the families above, so none goes untested. */
TEST(torch_fixtures_have_known_ops)
{
    static const char *files[] = {"linear.bin", "elementwise.bin", "conv.bin", "norm.bin", "attention.bin",
                                  "layout.bin", "pool.bin", "resize.bin", "loss.bin"};
    for (size_t f = 0; f < MG_ARRAY_LEN(files); f++) {
        char path[256], error[512];
        snprintf(path, sizeof path, "tests/fixtures/%s", files[f]);
        Fixture fixture;
        if (!fixture_load(&fixture, path, error, sizeof error)) {
            test_fail(__FILE__, __LINE__, "%s", error);
            continue;
        }
        for (size_t i = 0; i < fixture.count; i++) {
            const char *name = fixture.tensors[i].name;
            bool known = false;
            for (size_t k = 0; k < MG_ARRAY_LEN(FAMILIES) && !known; k++) {
                size_t n = strlen(FAMILIES[k].op);
                known = strncmp(name, FAMILIES[k].op, n) == 0 && name[n] == '/' &&
                        strcmp(FAMILIES[k].file, files[f]) == 0;
            }
            CHECK_MSG(known, "%s: tensor '%s' belongs to no op family tested from this file", path, name);
        }
        fixture_free(&fixture);
    }
}
