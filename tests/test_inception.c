/* The FID InceptionV3 of src/inception.c against the PyTorch references that
 * tests/gen_inception_fixtures.py writes. The tests cover every block type on random weights
 * and inputs, the image preparation bit for bit, the layer table of the whole network and the
 * errors of loading its weights.
 *
 * Block tolerance. An element passes when |actual - expected| <= atol + rtol·|expected| with
 * atol 2e-5 and rtol 1e-4. The expected values are float64 results rounded to float32, so the
 * error measured is the C code's own float32 rounding. A block runs up to five convs in a row,
 * each summing at most 150 products, with BatchNorm folded into a scale and shift. Largest
 * errors observed with OpenBLAS 0.3.21 and its SkylakeX kernels, on outputs up to 20.9 in
 * magnitude, none above 0.05 of the tolerance:
 *   stem 1.9e-6, A 3.8e-6, B 6.7e-6, C 1.9e-6, D 3.3e-6, E with average pool 2.9e-6,
 *   E with max pool 4.8e-6.
 * PyTorch's own float32 forward is off by 1.5e-6 to 4.8e-6 on the same cases. Run with
 * MIXGAN_TEST_VERBOSE=1 to print the largest error of each block.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "inception.h"
#include "sha256.h"
#include "test.h"
#include "torch_weights.h"
#include "util.h"

static const double BLOCK_ATOL = 2e-5, BLOCK_RTOL = 1e-4;

static const char *const FIXTURE_PATH = "tests/fixtures/inception.bin";
static const char *const TRUNCATED_WEIGHTS = "tests/data/inception/pt_inception-2015-12-05-6726825d.truncated.pth";

/* One block case of the fixture, "block/<file>", with its weights in
 * tests/data/inception/blocks/<file>.pth. */
typedef struct BlockCase {
    const char *file;
    const char *block;         /* state dict prefix, NULL for the stem */
    InceptionBlockType type;   /* unused for the stem */
    int width_count;           /* arguments of the inception_define_* builder after the name */
} BlockCase;

static const BlockCase STEM = {"stem", NULL, 0, 5};
static const BlockCase BLOCK_A = {"a", "Mixed_5b", INCEPTION_BLOCK_A, 7};
static const BlockCase BLOCK_B = {"b", "Mixed_6a", INCEPTION_BLOCK_B, 4};
static const BlockCase BLOCK_C = {"c", "Mixed_6b", INCEPTION_BLOCK_C, 3};
static const BlockCase BLOCK_D = {"d", "Mixed_7a", INCEPTION_BLOCK_D, 4};
static const BlockCase BLOCK_E_AVG_POOL = {"e_avg_pool", "Mixed_7b", INCEPTION_BLOCK_E_AVG_POOL, 5};
static const BlockCase BLOCK_E_MAX_POOL = {"e_max_pool", "Mixed_7c", INCEPTION_BLOCK_E_MAX_POOL, 5};

static bool test_verbose(void)
{
    const char *verbose = getenv("MIXGAN_TEST_VERBOSE");
    return verbose && *verbose && strcmp(verbose, "0") != 0;
}

/* Returns fixture tensor "<prefix>/<name>", or NULL after recording a failure. */
static const FixtureTensor *require_tensor(const Fixture *fixture, const char *prefix, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", prefix, name);
    const FixtureTensor *t = fixture_find(fixture, full);
    if (!t) test_fail(__FILE__, __LINE__, "%s has no tensor %s", fixture->path, full);
    return t;
}

static void define_block(Inception *net, const BlockCase *c, const int *w)
{
    if (!c->block) {
        inception_define_stem(net, w[0], w[1], w[2], w[3], w[4]);
        return;
    }
    switch (c->type) {
    case INCEPTION_BLOCK_A:
        inception_define_a(net, c->block, w[0], w[1], w[2], w[3], w[4], w[5], w[6]);
        break;
    case INCEPTION_BLOCK_B:
        inception_define_b(net, c->block, w[0], w[1], w[2], w[3]);
        break;
    case INCEPTION_BLOCK_C:
        inception_define_c(net, c->block, w[0], w[1], w[2]);
        break;
    case INCEPTION_BLOCK_D:
        inception_define_d(net, c->block, w[0], w[1], w[2], w[3]);
        break;
    case INCEPTION_BLOCK_E_AVG_POOL:
    case INCEPTION_BLOCK_E_MAX_POOL:
        inception_define_e(net, c->block, w[0], w[1], w[2], w[3], w[4]);
        break;
    }
}

/* Defines the block with the fixture's widths in a fresh network, loads its weights, runs it
 * on the fixture's input and compares the output with PyTorch's. */
static void check_block(const BlockCase *c)
{
    Fixture fixture;
    char err[1024];
    bool loaded = fixture_load(&fixture, FIXTURE_PATH, err, sizeof err);
    CHECK_MSG(loaded, "%s", err);
    if (!loaded) return;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "block/%s", c->file);
    const FixtureTensor *widths = require_tensor(&fixture, prefix, "widths");
    const FixtureTensor *fx = require_tensor(&fixture, prefix, "x");
    const FixtureTensor *fy = require_tensor(&fixture, prefix, "y");
    if (!widths || !fx || !fy) {
        fixture_free(&fixture);
        return;
    }
    CHECK_INT_EQ(widths->numel, c->width_count);
    if (widths->numel != (size_t)c->width_count) {
        fixture_free(&fixture);
        return;
    }
    int w[8];
    for (int i = 0; i < c->width_count; i++) w[i] = (int)widths->data[i];

    Inception net;
    memset(&net, 0, sizeof net);
    define_block(&net, c, w);
    char *weights = mg_format("tests/data/inception/blocks/%s.pth", c->file);
    loaded = inception_load_weights(&net, weights, err, sizeof err);
    CHECK_MSG(loaded, "%s", err);
    if (loaded) {
        Tape tape;
        tape_init(&tape);
        tape_set_grad_enabled(&tape, false);
        Tensor *x = tensor_empty(&tape, fx->shape);
        memcpy(x->data, fx->data, fx->numel * sizeof(float));
        Tensor *y = c->block ? inception_block_forward(&net, &tape, c->type, c->block, x)
                             : inception_stem_forward(&net, &tape, x);

        char actual_shape[64], expected_shape[64];
        CHECK_MSG(shape_equal(y->shape, fy->shape), "%s: output %s, PyTorch's %s", prefix,
                  shape_format(y->shape, actual_shape), shape_format(fy->shape, expected_shape));
        if (shape_equal(y->shape, fy->shape)) {
            double max_error = 0.0, max_fraction = 0.0;
            size_t bad = 0, first_bad = 0;
            for (size_t i = 0; i < y->numel; i++) {
                double expected = fy->data[i], error = fabs((double)y->data[i] - expected);
                double allowed = BLOCK_ATOL + BLOCK_RTOL * fabs(expected);
                if (!(error <= allowed) && bad++ == 0) first_bad = i;
                if (error > max_error) max_error = error;
                if (error / allowed > max_fraction) max_fraction = error / allowed;
            }
            CHECK_MSG(bad == 0, "%s: %zu of %zu values out of tolerance, first at index %zu: %.9g, PyTorch %.9g", prefix,
                      bad, y->numel, first_bad, y->data[first_bad], fy->data[first_bad]);
            if (test_verbose())
                fprintf(stderr, "        %-16s %6zu values, max |error| %.2e, %.2f of the tolerance\n", prefix, y->numel,
                        max_error, max_fraction);
        }
        tape_free(&tape);
    }
    inception_free(&net);
    free(weights);
    fixture_free(&fixture);
}

TEST(inception_stem_matches_torch)
{
    check_block(&STEM);
}

TEST(inception_block_a_matches_torch)
{
    check_block(&BLOCK_A);
}

TEST(inception_block_b_matches_torch)
{
    check_block(&BLOCK_B);
}

TEST(inception_block_c_matches_torch)
{
    check_block(&BLOCK_C);
}

TEST(inception_block_d_matches_torch)
{
    check_block(&BLOCK_D);
}

TEST(inception_block_e_avg_pool_matches_torch)
{
    check_block(&BLOCK_E_AVG_POOL);
}

TEST(inception_block_e_max_pool_matches_torch)
{
    check_block(&BLOCK_E_MAX_POOL);
}

/* Byte `index` of a test image, the 32-bit hash of test_image_byte() in
 * tests/gen_inception_fixtures.py. */
static uint8_t test_image_byte(uint32_t index, uint32_t salt)
{
    uint32_t h = (index + salt) * 0x9E3779B1u;
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    return (uint8_t)(h >> 24);
}

static uint8_t *make_test_image(int width, int height, uint32_t salt)
{
    size_t bytes = (size_t)width * height * 3;
    uint8_t *rgb = mg_malloc(bytes);
    for (size_t i = 0; i < bytes; i++) rgb[i] = test_image_byte((uint32_t)i, salt);
    return rgb;
}

/* The whole (3, 299, 299) output must hash to the SHA-256 of PyTorch's float32 output. The
 * sampled rows and columns locate a difference when there is one. */
TEST(inception_prepare_matches_torch)
{
    static const char *const cases[] = {"prepare/32x32", "prepare/17x23", "prepare/300x200", "prepare/299x299"};
    Fixture fixture;
    char err[1024];
    bool loaded = fixture_load(&fixture, FIXTURE_PATH, err, sizeof err);
    CHECK_MSG(loaded, "%s", err);
    if (!loaded) return;
    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    size_t plane = (size_t)INCEPTION_SIZE * INCEPTION_SIZE;
    float *out = mg_malloc(3 * plane * sizeof(float));

    for (size_t k = 0; k < MG_ARRAY_LEN(cases); k++) {
        const FixtureTensor *size = require_tensor(&fixture, cases[k], "size");
        const FixtureTensor *digest = require_tensor(&fixture, cases[k], "sha256");
        const FixtureTensor *index = require_tensor(&fixture, cases[k], "index");
        const FixtureTensor *sample = require_tensor(&fixture, cases[k], "sample");
        if (!size || !digest || !index || !sample) continue;
        int width = (int)size->data[0], height = (int)size->data[1];
        uint8_t *rgb = make_test_image(width, height, (uint32_t)size->data[2]);
        inception_prepare_image(&tape, rgb, width, height, out);

        uint8_t actual[SHA256_DIGEST_SIZE];
        Sha256 sha;
        sha256_init(&sha);
        sha256_update(&sha, out, 3 * plane * sizeof(float));
        sha256_final(&sha, actual);
        int digest_differs = 0;
        CHECK_INT_EQ(digest->numel, SHA256_DIGEST_SIZE);
        for (size_t i = 0; i < SHA256_DIGEST_SIZE && i < digest->numel; i++)
            digest_differs |= actual[i] != (uint8_t)digest->data[i];
        CHECK_MSG(!digest_differs, "%s: the output differs from PyTorch's somewhere", cases[k]);

        size_t n = index->numel, differing = 0;
        CHECK_INT_EQ(sample->numel, 3 * n * n);
        for (size_t c = 0; c < 3 && sample->numel == 3 * n * n; c++) {
            for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < n; j++) {
                    size_t row = (size_t)index->data[i], column = (size_t)index->data[j];
                    float value = out[c * plane + row * INCEPTION_SIZE + column];
                    float expected = sample->data[(c * n + i) * n + j];
                    if (value != expected && differing++ < 3)
                        test_fail(__FILE__, __LINE__, "%s: channel %zu, row %zu, column %zu is %.9g, PyTorch %.9g", cases[k],
                                  c, row, column, value, expected);
                }
            }
        }
        CHECK_INT_EQ(differing, 0);
        free(rgb);
    }
    free(out);
    tape_free(&tape);
    fixture_free(&fixture);
}

/* The whole network with random weights: its layer table against the records of pytorch-fid's
 * weights file (the truncated copy lacks most of the data, but every record's name and shape
 * are in it), then a forward pass on one image. */
TEST(inception_random_network)
{
    Inception net;
    inception_init_random(&net, 5);
    CHECK_INT_EQ(net.count, 94);
    CHECK_INT_EQ(INCEPTION_CONVS, 94);

    TorchWeights w;
    char err[1024];
    CHECK(!torch_weights_open(TRUNCATED_WEIGHTS, &w, err, sizeof err));
    CHECK_INT_EQ(w.count, 566);
    int64_t weight_elements = 0, channels = 0;
    for (int i = 0; i < net.count; i++) {
        const InceptionConv *c = &net.convs[i];
        char name[64];
        snprintf(name, sizeof name, "%s.conv.weight", c->name);
        int64_t shape[4] = {c->out, c->in, c->kh, c->kw}, out[1] = {c->out};
        CHECK_MSG(torch_weights_require(&w, name, "float32", 4, shape, err, sizeof err) != NULL, "%s", err);
        snprintf(name, sizeof name, "%s.bn.running_var", c->name);
        CHECK_MSG(torch_weights_require(&w, name, "float32", 1, out, err, sizeof err) != NULL, "%s", err);
        weight_elements += (int64_t)c->weight.numel;
        channels += c->out;
    }
    /* The file's 23,885,486 elements: the conv weights, 4 BatchNorm vectors per conv, the 94
     * num_batches_tracked scalars and fc (1008 × 2048 weights and 1008 biases). */
    CHECK_INT_EQ(weight_elements + 4 * channels + 94 + 1008 * 2048 + 1008, 23885486);
    torch_weights_close(&w);

    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    Tensor *x = tensor_empty(&tape, shape4(1, 3, INCEPTION_SIZE, INCEPTION_SIZE));
    uint8_t *rgb = make_test_image(32, 32, 9);
    inception_prepare_image(&tape, rgb, 32, 32, x->data);
    float *features = mg_malloc(INCEPTION_FEATURES * sizeof(float));
    inception_forward(&net, &tape, x, features);
    int non_finite = 0, negative = 0, positive = 0;
    for (int i = 0; i < INCEPTION_FEATURES; i++) {
        non_finite += !isfinite(features[i]);
        negative += features[i] < 0.0f;
        positive += features[i] > 0.0f;
    }
    CHECK_INT_EQ(non_finite, 0);
    /* pool3 averages ReLU outputs */
    CHECK_INT_EQ(negative, 0);
    CHECK_MSG(positive > INCEPTION_FEATURES / 4, "only %d of %d features are positive", positive, INCEPTION_FEATURES);

    /* inception_forward must run the very layers that the stem and block tests check, in
     * pytorch-fid's order, then average over the 8×8 positions. */
    static const struct {
        InceptionBlockType type;
        const char *name;
    } blocks[] = {
        {INCEPTION_BLOCK_A, "Mixed_5b"}, {INCEPTION_BLOCK_A, "Mixed_5c"},
        {INCEPTION_BLOCK_A, "Mixed_5d"}, {INCEPTION_BLOCK_B, "Mixed_6a"},
        {INCEPTION_BLOCK_C, "Mixed_6b"}, {INCEPTION_BLOCK_C, "Mixed_6c"},
        {INCEPTION_BLOCK_C, "Mixed_6d"}, {INCEPTION_BLOCK_C, "Mixed_6e"},
        {INCEPTION_BLOCK_D, "Mixed_7a"}, {INCEPTION_BLOCK_E_AVG_POOL, "Mixed_7b"},
        {INCEPTION_BLOCK_E_MAX_POOL, "Mixed_7c"},
    };
    Tensor *h = inception_stem_forward(&net, &tape, x);
    for (size_t i = 0; i < MG_ARRAY_LEN(blocks); i++)
        h = inception_block_forward(&net, &tape, blocks[i].type, blocks[i].name, h);
    Tensor *pooled = op_global_avg_pool(&tape, h);
    CHECK_INT_EQ(pooled->numel, INCEPTION_FEATURES);
    if (pooled->numel == INCEPTION_FEATURES)
        CHECK_MSG(memcmp(pooled->data, features, INCEPTION_FEATURES * sizeof(float)) == 0,
                  "inception_forward differs from the stem and the 11 blocks run one after another");
    free(features);
    free(rgb);
    tape_free(&tape);
    inception_free(&net);
}

TEST(inception_load_truncated_weights)
{
    Inception net;
    char err[1024] = "";
    CHECK(!inception_load(&net, TRUNCATED_WEIGHTS, err, sizeof err));
    CHECK_STR_CONTAINS(err, TRUNCATED_WEIGHTS);
    CHECK_STR_CONTAINS(err, "the file is truncated: expected 95628359 bytes, found 818371");
    /* a failed load leaves nothing to free */
    CHECK_INT_EQ(net.count, 0);
    inception_free(&net);
}

TEST(inception_load_rejects_other_widths)
{
    char err[1024] = "";
    Inception net;
    memset(&net, 0, sizeof net);
    inception_define_a(&net, "Mixed_5b", 16, 8, 6, 8, 8, 12, 5);
    CHECK(!inception_load_weights(&net, "tests/data/inception/blocks/a.pth", err, sizeof err));
    CHECK_STR_CONTAINS(err, "a.pth: record 'Mixed_5b.branch_pool.conv.weight' has shape [4, 16, 1, 1]; expected [5, 16, 1, 1]");
    inception_free(&net);

    memset(&net, 0, sizeof net);
    inception_define_a(&net, "Mixed_5c", 16, 8, 6, 8, 8, 12, 4);
    CHECK(!inception_load_weights(&net, "tests/data/inception/blocks/a.pth", err, sizeof err));
    CHECK_STR_CONTAINS(err, "record 'Mixed_5c.branch1x1.conv.weight' is missing");
    inception_free(&net);
}
