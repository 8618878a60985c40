/* Results do not depend on the thread count.
 *
 * A small generator/discriminator-like network of most op families (conv, batch norm,
 * LeakyReLU, a pre-norm transformer block with attention, GELU, PixelShuffle, transposed conv,
 * class token, hinge loss) runs forward and backward with one thread and with two. The
 * output, the loss, the updated BatchNorm running statistics and every gradient must be
 * bit-identical across the runs. The one exception is OpenBLAS's own threading on CPUs where
 * it is not reproducible (see mg_sgemm_is_reproducible()). There the run with two OpenBLAS
 * threads is compared within a tolerance. The runs with OpenBLAS capped at one thread still
 * check mixgan's loops bit for bit.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"     /* mg_sgemm_cap_threads */
#include "cli.h"      /* cli_setup_threads */
#include "op_test.h"  /* leaf tensors */
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "util.h"

/* Large enough that the ops' parallel loops, most of which run serially below 8192 to 32768
 * elements, do split the work between two threads. */
enum { NET_BATCH = 8, NET_CHANNELS = 32, NET_DIM = 64, NET_SIDE = 16, NET_TOKENS = 64, NET_HEADS = 4 };

typedef struct Network {
    Tensor *x;                                /* (B, 3, 16, 16), requires a gradient too */
    Tensor *r;                                /* (B, 3, 32, 32), projection of the image output */
    Tensor *conv1_w, *conv1_b;                /* (32, 3, 3, 3), (32) */
    Tensor *bn_w, *bn_b;                      /* (32) */
    float running_mean[NET_CHANNELS], running_var[NET_CHANNELS];
    Tensor *conv2_w;                          /* (64, 32, 4, 4) */
    Tensor *pos;                              /* (1, 64, 64) */
    Tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;    /* (64) */
    Tensor *qkv_w, *qkv_b;                    /* (192, 64), (192) */
    Tensor *proj_w, *proj_b;                  /* (64, 64), (64) */
    Tensor *fc1_w, *fc1_b;                    /* (256, 64), (256) */
    Tensor *fc2_w, *fc2_b;                    /* (64, 256), (64) */
    Tensor *cls;                              /* (1, 1, 64) */
    Tensor *head_w, *head_b;                  /* (1, 64), (1) */
    Tensor *convt_w, *convt_b;                /* (16, 3, 4, 4), (3) */
} Network;

/* Every tensor whose gradient the test compares, with its name for messages. */
typedef struct NamedTensor {
    const char *name;
    Tensor *tensor;
} NamedTensor;

static Tensor *random_parameter(Shape shape, Rng *rng, float mean, float std, bool requires_grad)
{
    Tensor *t = leaf_new(shape, requires_grad);
    rng_fill_normal(rng, t->data, t->numel, mean, std);
    return t;
}

static void network_init(Network *n)
{
    Rng rng = rng_make(2024, 0);
    n->x = random_parameter(shape4(NET_BATCH, 3, NET_SIDE, NET_SIDE), &rng, 0.0f, 1.0f, true);
    n->r = random_parameter(shape4(NET_BATCH, 3, 2 * NET_SIDE, 2 * NET_SIDE), &rng, 0.0f, 1.0f, false);
    n->conv1_w = random_parameter(shape4(NET_CHANNELS, 3, 3, 3), &rng, 0.0f, 0.2f, true);
    n->conv1_b = random_parameter(shape1(NET_CHANNELS), &rng, 0.0f, 0.1f, true);
    n->bn_w = random_parameter(shape1(NET_CHANNELS), &rng, 1.0f, 0.1f, true);
    n->bn_b = random_parameter(shape1(NET_CHANNELS), &rng, 0.0f, 0.1f, true);
    n->conv2_w = random_parameter(shape4(NET_DIM, NET_CHANNELS, 4, 4), &rng, 0.0f, 0.05f, true);
    n->pos = random_parameter(shape3(1, NET_TOKENS, NET_DIM), &rng, 0.0f, 0.02f, true);
    n->ln1_w = random_parameter(shape1(NET_DIM), &rng, 1.0f, 0.1f, true);
    n->ln1_b = random_parameter(shape1(NET_DIM), &rng, 0.0f, 0.1f, true);
    n->qkv_w = random_parameter(shape2(3 * NET_DIM, NET_DIM), &rng, 0.0f, 0.2f, true);
    n->qkv_b = random_parameter(shape1(3 * NET_DIM), &rng, 0.0f, 0.1f, true);
    n->proj_w = random_parameter(shape2(NET_DIM, NET_DIM), &rng, 0.0f, 0.2f, true);
    n->proj_b = random_parameter(shape1(NET_DIM), &rng, 0.0f, 0.1f, true);
    n->ln2_w = random_parameter(shape1(NET_DIM), &rng, 1.0f, 0.1f, true);
    n->ln2_b = random_parameter(shape1(NET_DIM), &rng, 0.0f, 0.1f, true);
    n->fc1_w = random_parameter(shape2(4 * NET_DIM, NET_DIM), &rng, 0.0f, 0.2f, true);
    n->fc1_b = random_parameter(shape1(4 * NET_DIM), &rng, 0.0f, 0.1f, true);
    n->fc2_w = random_parameter(shape2(NET_DIM, 4 * NET_DIM), &rng, 0.0f, 0.1f, true);
    n->fc2_b = random_parameter(shape1(NET_DIM), &rng, 0.0f, 0.1f, true);
    n->cls = random_parameter(shape3(1, 1, NET_DIM), &rng, 0.0f, 0.02f, true);
    n->head_w = random_parameter(shape2(1, NET_DIM), &rng, 0.0f, 0.2f, true);
    n->head_b = random_parameter(shape1(1), &rng, 0.0f, 0.1f, true);
    n->convt_w = random_parameter(shape4(NET_DIM / 4, 3, 4, 4), &rng, 0.0f, 0.1f, true);
    n->convt_b = random_parameter(shape1(3), &rng, 0.0f, 0.1f, true);
}

/* Fills `out` with the tensors whose gradients are compared; returns their count. */
static int network_tensors(Network *n, NamedTensor *out)
{
    NamedTensor all[] = {
        {"x", n->x},           {"conv1_w", n->conv1_w}, {"conv1_b", n->conv1_b}, {"bn_w", n->bn_w},
        {"bn_b", n->bn_b},     {"conv2_w", n->conv2_w}, {"pos", n->pos},         {"ln1_w", n->ln1_w},
        {"ln1_b", n->ln1_b},   {"qkv_w", n->qkv_w},     {"qkv_b", n->qkv_b},     {"proj_w", n->proj_w},
        {"proj_b", n->proj_b}, {"ln2_w", n->ln2_w},     {"ln2_b", n->ln2_b},     {"fc1_w", n->fc1_w},
        {"fc1_b", n->fc1_b},   {"fc2_w", n->fc2_w},     {"fc2_b", n->fc2_b},     {"cls", n->cls},
        {"head_w", n->head_w}, {"head_b", n->head_b},   {"convt_w", n->convt_w}, {"convt_b", n->convt_b},
    };
    memcpy(out, all, sizeof all);
    return (int)MG_ARRAY_LEN(all);
}

/* The forward pass; returns the scalar loss and stores the image and logits. */
static Tensor *network_forward(Tape *tape, Network *n, Tensor **image, Tensor **logits)
{
    /* conv, batch norm, LeakyReLU, strided conv: (B, 3, 16, 16) -> (B, 64, 8, 8) */
    BatchNormStats stats = {n->running_mean, n->running_var};
    Tensor *h = op_conv2d(tape, n->x, n->conv1_w, n->conv1_b, conv_geometry(1, 1));
    h = op_batch_norm2d(tape, h, n->bn_w, n->bn_b, stats, true, 0.1f, 1e-5f);
    h = op_leaky_relu(tape, h, 0.2f);
    h = op_conv2d(tape, h, n->conv2_w, NULL, conv_geometry(2, 1));

    /* one pre-norm transformer block over the 64 tokens */
    Tensor *t = op_add(tape, op_image_to_tokens(tape, h), n->pos);
    Tensor *a = op_layer_norm(tape, t, n->ln1_w, n->ln1_b, 1e-5f);
    a = op_attention(tape, op_linear(tape, a, n->qkv_w, n->qkv_b), NET_HEADS);
    t = op_add(tape, t, op_linear(tape, a, n->proj_w, n->proj_b));
    Tensor *m = op_layer_norm(tape, t, n->ln2_w, n->ln2_b, 1e-5f);
    m = op_linear(tape, op_gelu(tape, op_linear(tape, m, n->fc1_w, n->fc1_b)), n->fc2_w, n->fc2_b);
    t = op_add(tape, t, m);

    /* image head: (B, 64, 8, 8) -> PixelShuffle (B, 16, 16, 16) -> (B, 3, 32, 32) */
    Tensor *img = op_tokens_to_image(tape, t, 8, 8);
    img = op_pixel_shuffle(tape, img, 2);
    img = op_tanh(tape, op_conv_transpose2d(tape, img, n->convt_w, n->convt_b, conv_geometry(2, 1)));

    /* logit head on a prepended class token */
    Tensor *cls = op_slice_token(tape, op_prepend_token(tape, t, n->cls), 0);
    Tensor *logit = op_linear(tape, cls, n->head_w, n->head_b);

    *image = img;
    *logits = logit;
    return op_add(tape, op_sum(tape, op_mul(tape, img, n->r), -1), op_hinge_d(tape, logit, true));
}

/* Appends n floats to a growing buffer. */
static void append(float **buffer, size_t *count, const float *data, size_t n)
{
    *buffer = mg_realloc(*buffer, (*count + n) * sizeof(float));
    memcpy(*buffer + *count, data, n * sizeof(float));
    *count += n;
}

/* One forward and backward pass with `threads` threads from the same initial state. Returns
 * the outputs, running statistics and gradients concatenated, in a malloc'd buffer. */
static float *network_run(Network *n, int threads, size_t *count)
{
    CHECK_INT_EQ(cli_setup_threads(threads), threads);
    NamedTensor tensors[32];
    int tensor_count = network_tensors(n, tensors);
    for (int i = 0; i < tensor_count; i++) leaf_zero_grad(tensors[i].tensor);
    for (int c = 0; c < NET_CHANNELS; c++) {
        n->running_mean[c] = 0.0f;
        n->running_var[c] = 1.0f;
    }

    Tape tape;
    tape_init(&tape);
    Tensor *image, *logits;
    Tensor *loss = network_forward(&tape, n, &image, &logits);
    tape_backward(&tape, loss);

    float *snapshot = NULL;
    *count = 0;
    append(&snapshot, count, image->data, image->numel);
    append(&snapshot, count, logits->data, logits->numel);
    append(&snapshot, count, loss->data, 1);
    append(&snapshot, count, n->running_mean, NET_CHANNELS);
    append(&snapshot, count, n->running_var, NET_CHANNELS);
    for (int i = 0; i < tensor_count; i++) append(&snapshot, count, tensors[i].tensor->grad, tensors[i].tensor->numel);
    tape_free(&tape);
    return snapshot;
}

/* Names the part of a snapshot that element `index` belongs to. */
static const char *snapshot_part(Network *n, size_t index)
{
    static char name[64];
    size_t image = (size_t)NET_BATCH * 3 * 4 * NET_SIDE * NET_SIDE, start = 0;
    const char *fixed[] = {"image", "logits", "loss", "running_mean", "running_var"};
    size_t sizes[] = {image, NET_BATCH, 1, NET_CHANNELS, NET_CHANNELS};
    for (size_t i = 0; i < MG_ARRAY_LEN(sizes); i++) {
        if (index < start + sizes[i]) return fixed[i];
        start += sizes[i];
    }
    NamedTensor tensors[32];
    int tensor_count = network_tensors(n, tensors);
    for (int i = 0; i < tensor_count; i++) {
        if (index < start + tensors[i].tensor->numel) {
            snprintf(name, sizeof name, "gradient of %s", tensors[i].name);
            return name;
        }
        start += tensors[i].tensor->numel;
    }
    return "past the end";
}

/* Compares a run's snapshot with the reference element by element: bit for bit when
 * `tolerance` is 0, else within tolerance · max(1, |reference|). Names the first element
 * out of bounds and counts them. */
static void check_snapshot(Network *n, const char *run, const float *snapshot, const float *reference,
                           size_t count, double tolerance)
{
    size_t first = 0, differing = 0;
    double largest = 0.0;
    for (size_t k = count; k-- > 0;) {
        double diff = fabs((double)snapshot[k] - reference[k]);
        bool same = tolerance == 0.0 ? memcmp(&snapshot[k], &reference[k], sizeof(float)) == 0
                                     : diff <= tolerance * fmax(1.0, fabs(reference[k]));
        if (!same) {
            first = k;
            differing++;
        }
        largest = fmax(largest, diff);
    }
    if (differing > 0)
        test_fail(__FILE__, __LINE__, "%s differs from the run with one thread in %zu values (largest "
                  "difference %.3g, tolerance %g); first in %s: %.9g vs %.9g", run, differing, largest,
                  tolerance, snapshot_part(n, first), snapshot[first], reference[first]);
}

TEST(determinism_one_vs_two_threads)
{
    Network n;
    network_init(&n);
    /* The runs capped at one OpenBLAS thread check mixgan's own loops. The last run adds
     * OpenBLAS's threading, which some of its kernels do not keep bit for bit. */
    static const struct { int threads, blas_cap; const char *name; } runs[] = {
        {1, 0, "a second run with one thread"},
        {2, 1, "a run with two threads (OpenBLAS on one)"},
        {2, 1, "a second run with two threads (OpenBLAS on one)"},
        {2, 0, "a run with two threads"},
    };
    size_t reference_count;
    float *reference = network_run(&n, 1, &reference_count);
    bool blas_reproducible = mg_sgemm_is_reproducible();
    for (size_t r = 0; r < MG_ARRAY_LEN(runs); r++) {
        mg_sgemm_cap_threads(runs[r].blas_cap);
        size_t count;
        float *snapshot = network_run(&n, runs[r].threads, &count);
        mg_sgemm_cap_threads(0);
        CHECK_INT_EQ(count, reference_count);
        bool bit_exact = runs[r].threads == 1 || runs[r].blas_cap == 1 || blas_reproducible;
        /* The tolerance covers float32 rounding carried through the network. The largest
         * difference seen with the Zen kernels was 2.3e-4, in the first layer's weight
         * gradient, a sum of 2048 terms that largely cancel. */
        if (count == reference_count)
            check_snapshot(&n, runs[r].name, snapshot, reference, count, bit_exact ? 0.0 : 2e-3);
        free(snapshot);
    }
    if (!blas_reproducible)
        fprintf(stderr, "    note: OpenBLAS's %s kernels round differently with two threads, so the run "
                "with two OpenBLAS threads was compared within a tolerance\n", mg_sgemm_core_name());

    NamedTensor tensors[32];
    int tensor_count = network_tensors(&n, tensors);
    for (int i = 0; i < tensor_count; i++) leaf_free(tensors[i].tensor);
    leaf_free(n.r);
    free(reference);
    cli_setup_threads(0);
}
