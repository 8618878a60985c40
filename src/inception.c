/* The FID InceptionV3: layer table, weight loading and forward pass. */
#include "inception.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "torch_weights.h"
#include "util.h"

static const float BATCH_NORM_EPS = 0.001f;

/* ---- layer table ------------------------------------------------------------------- */

static void define_conv(Inception *net, const char *block, const char *name, int in, int out, int kh, int kw,
                        int stride, int pad_h, int pad_w)
{
    if (net->count == INCEPTION_CONVS) mg_panic("more than %d Inception convs defined", INCEPTION_CONVS);
    InceptionConv *c = &net->convs[net->count++];
    memset(c, 0, sizeof *c);
    if (block)
        snprintf(c->name, sizeof c->name, "%s.%s", block, name);
    else
        snprintf(c->name, sizeof c->name, "%s", name);
    c->in = in;
    c->out = out;
    c->kh = kh;
    c->kw = kw;
    c->geometry = (Conv2dGeometry){stride, stride, pad_h, pad_w};
}

void inception_define_stem(Inception *net, int c1a, int c2a, int c2b, int c3b, int c4a)
{
    define_conv(net, NULL, "Conv2d_1a_3x3", 3, c1a, 3, 3, 2, 0, 0);
    define_conv(net, NULL, "Conv2d_2a_3x3", c1a, c2a, 3, 3, 1, 0, 0);
    define_conv(net, NULL, "Conv2d_2b_3x3", c2a, c2b, 3, 3, 1, 1, 1);
    define_conv(net, NULL, "Conv2d_3b_1x1", c2b, c3b, 1, 1, 1, 0, 0);
    define_conv(net, NULL, "Conv2d_4a_3x3", c3b, c4a, 3, 3, 1, 0, 0);
}

void inception_define_a(Inception *net, const char *block, int in, int c1x1, int c5x5_1, int c5x5_2, int c3dbl_1,
                        int c3dbl_2, int pool)
{
    define_conv(net, block, "branch1x1", in, c1x1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch5x5_1", in, c5x5_1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch5x5_2", c5x5_1, c5x5_2, 5, 5, 1, 2, 2);
    define_conv(net, block, "branch3x3dbl_1", in, c3dbl_1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch3x3dbl_2", c3dbl_1, c3dbl_2, 3, 3, 1, 1, 1);
    define_conv(net, block, "branch3x3dbl_3", c3dbl_2, c3dbl_2, 3, 3, 1, 1, 1);
    define_conv(net, block, "branch_pool", in, pool, 1, 1, 1, 0, 0);
}

void inception_define_b(Inception *net, const char *block, int in, int c3x3, int c3dbl_1, int c3dbl_2)
{
    define_conv(net, block, "branch3x3", in, c3x3, 3, 3, 2, 0, 0);
    define_conv(net, block, "branch3x3dbl_1", in, c3dbl_1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch3x3dbl_2", c3dbl_1, c3dbl_2, 3, 3, 1, 1, 1);
    define_conv(net, block, "branch3x3dbl_3", c3dbl_2, c3dbl_2, 3, 3, 2, 0, 0);
}

void inception_define_c(Inception *net, const char *block, int in, int out, int c7)
{
    define_conv(net, block, "branch1x1", in, out, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch7x7_1", in, c7, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    define_conv(net, block, "branch7x7_3", c7, out, 7, 1, 1, 3, 0);
    define_conv(net, block, "branch7x7dbl_1", in, c7, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    define_conv(net, block, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    define_conv(net, block, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    define_conv(net, block, "branch7x7dbl_5", c7, out, 1, 7, 1, 0, 3);
    define_conv(net, block, "branch_pool", in, out, 1, 1, 1, 0, 0);
}

void inception_define_d(Inception *net, const char *block, int in, int c3x3_1, int c3x3_2, int c7x7x3)
{
    define_conv(net, block, "branch3x3_1", in, c3x3_1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch3x3_2", c3x3_1, c3x3_2, 3, 3, 2, 0, 0);
    define_conv(net, block, "branch7x7x3_1", in, c7x7x3, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch7x7x3_2", c7x7x3, c7x7x3, 1, 7, 1, 0, 3);
    define_conv(net, block, "branch7x7x3_3", c7x7x3, c7x7x3, 7, 1, 1, 3, 0);
    define_conv(net, block, "branch7x7x3_4", c7x7x3, c7x7x3, 3, 3, 2, 0, 0);
}

void inception_define_e(Inception *net, const char *block, int in, int c1x1, int c3x3, int c3dbl_1, int pool)
{
    define_conv(net, block, "branch1x1", in, c1x1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch3x3_1", in, c3x3, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch3x3_2a", c3x3, c3x3, 1, 3, 1, 0, 1);
    define_conv(net, block, "branch3x3_2b", c3x3, c3x3, 3, 1, 1, 1, 0);
    define_conv(net, block, "branch3x3dbl_1", in, c3dbl_1, 1, 1, 1, 0, 0);
    define_conv(net, block, "branch3x3dbl_2", c3dbl_1, c3x3, 3, 3, 1, 1, 1);
    define_conv(net, block, "branch3x3dbl_3a", c3x3, c3x3, 1, 3, 1, 0, 1);
    define_conv(net, block, "branch3x3dbl_3b", c3x3, c3x3, 3, 1, 1, 1, 0);
    define_conv(net, block, "branch_pool", in, pool, 1, 1, 1, 0, 0);
}

/* The layout of pytorch-fid's FIDInceptionV3. */
static void define_network(Inception *net)
{
    net->count = 0;
    inception_define_stem(net, 32, 32, 64, 80, 192);
    inception_define_a(net, "Mixed_5b", 192, 64, 48, 64, 64, 96, 32);
    inception_define_a(net, "Mixed_5c", 256, 64, 48, 64, 64, 96, 64);
    inception_define_a(net, "Mixed_5d", 288, 64, 48, 64, 64, 96, 64);
    inception_define_b(net, "Mixed_6a", 288, 384, 64, 96);
    inception_define_c(net, "Mixed_6b", 768, 192, 128);
    inception_define_c(net, "Mixed_6c", 768, 192, 160);
    inception_define_c(net, "Mixed_6d", 768, 192, 160);
    inception_define_c(net, "Mixed_6e", 768, 192, 192);
    inception_define_d(net, "Mixed_7a", 768, 192, 320, 192);
    inception_define_e(net, "Mixed_7b", 1280, 320, 384, 448, 192);
    inception_define_e(net, "Mixed_7c", 2048, 320, 384, 448, 192);
    if (net->count != INCEPTION_CONVS) mg_panic("Inception defines %d convs, expected %d", net->count, INCEPTION_CONVS);
}

/* ---- loading ----------------------------------------------------------------------- */

/* Reads record "<conv>.<suffix>" of the given shape into a new buffer. */
static float *read_record(const TorchWeights *w, const InceptionConv *c, const char *suffix, int ndim,
                          const int64_t *shape, char *err, size_t err_size)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", c->name, suffix);
    const TorchRecord *r = torch_weights_require(w, name, NULL, ndim, shape, err, err_size);
    if (!r) return NULL;
    float *data = mg_malloc((size_t)r->element_count * sizeof(float));
    if (!torch_weights_read_float(w, r, data, err, err_size)) {
        free(data);
        return NULL;
    }
    return data;
}

static bool load_conv(const TorchWeights *w, InceptionConv *c, char *err, size_t err_size)
{
    int64_t weight_shape[4] = {c->out, c->in, c->kh, c->kw}, channels[1] = {c->out};
    float *weight = read_record(w, c, "conv.weight", 4, weight_shape, err, err_size);
    float *gamma = weight ? read_record(w, c, "bn.weight", 1, channels, err, err_size) : NULL;
    float *beta = gamma ? read_record(w, c, "bn.bias", 1, channels, err, err_size) : NULL;
    float *mean = beta ? read_record(w, c, "bn.running_mean", 1, channels, err, err_size) : NULL;
    float *var = mean ? read_record(w, c, "bn.running_var", 1, channels, err, err_size) : NULL;
    bool ok = var != NULL;
    if (ok) {
        c->weight.shape = shape4(c->out, c->in, c->kh, c->kw);
        c->weight.numel = shape_numel(c->weight.shape);
        c->weight.data = weight;
        c->weight.name = c->name;
        c->scale = mg_malloc((size_t)c->out * sizeof(float));
        c->shift = mg_malloc((size_t)c->out * sizeof(float));
        /* the same terms as PyTorch's BatchNorm inference: y = x·α + β */
        for (int o = 0; o < c->out; o++) {
            c->scale[o] = gamma[o] / sqrtf(var[o] + BATCH_NORM_EPS);
            c->shift[o] = beta[o] - mean[o] * c->scale[o];
        }
    } else {
        free(weight);
    }
    free(gamma);
    free(beta);
    free(mean);
    free(var);
    return ok;
}

/* The 1×1 convs that read a block's input, by block type; NULL-terminated. A branch_pool
 * listed last runs on the unpooled input: a 1×1 conv and an average pool commute, and pooling
 * the conv's fewer output channels costs less. Its BatchNorm and ReLU come after the pool. */
enum { SIBLINGS_A, SIBLINGS_C, SIBLINGS_D, SIBLINGS_E_AVG_POOL, SIBLINGS_E_MAX_POOL };
static const char *const sibling_names[][5] = {
    [SIBLINGS_A] = {"branch1x1", "branch5x5_1", "branch3x3dbl_1", "branch_pool", NULL},
    [SIBLINGS_C] = {"branch1x1", "branch7x7_1", "branch7x7dbl_1", "branch_pool", NULL},
    [SIBLINGS_D] = {"branch3x3_1", "branch7x7x3_1", NULL},
    [SIBLINGS_E_AVG_POOL] = {"branch1x1", "branch3x3_1", "branch3x3dbl_1", "branch_pool", NULL},
    [SIBLINGS_E_MAX_POOL] = {"branch1x1", "branch3x3_1", "branch3x3dbl_1", NULL},
};

static bool is_pool_branch(const char *name)
{
    return strcmp(name, "branch_pool") == 0;
}

static InceptionConv *find_defined(Inception *net, const char *block, const char *name)
{
    char full[64];
    snprintf(full, sizeof full, "%s.%s", block, name);
    for (int i = 0; i < net->count; i++) {
        if (!strcmp(net->convs[i].name, full)) return &net->convs[i];
    }
    return NULL;
}

/* Merges the 1×1 convs in `names` of `block` into one conv whose output channels are theirs
 * in order. Does nothing unless all of them exist and have weights. */
static void fuse_siblings(Inception *net, const char *block, const char *const *names)
{
    InceptionConv *parts[5];
    int n = 0, out = 0;
    for (; names[n]; n++) {
        parts[n] = find_defined(net, block, names[n]);
        if (!parts[n] || !parts[n]->weight.data || parts[n]->kh != 1 || parts[n]->kw != 1) return;
        if (parts[n]->in != parts[0]->in) return;
        out += parts[n]->out;
    }
    if (n < 2 || net->fused_count == INCEPTION_MAX_FUSED) return;
    InceptionConv *f = &net->fused[net->fused_count++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s.%s", block, is_pool_branch(names[n - 1]) ? "fused_1x1_pool" : "fused_1x1");
    f->in = parts[0]->in;
    f->out = out;
    f->kh = f->kw = 1;
    f->geometry = parts[0]->geometry;
    f->weight.shape = shape4(out, f->in, 1, 1);
    f->weight.numel = shape_numel(f->weight.shape);
    f->weight.data = mg_malloc(f->weight.numel * sizeof(float));
    f->weight.name = f->name;
    f->scale = mg_malloc((size_t)out * sizeof(float));
    f->shift = mg_malloc((size_t)out * sizeof(float));
    int offset = 0;
    f->relu_channels = out;
    for (int i = 0; i < n; i++) {
        int c = parts[i]->out;
        memcpy(f->weight.data + (size_t)offset * f->in, parts[i]->weight.data, parts[i]->weight.numel * sizeof(float));
        if (is_pool_branch(names[i])) {
            /* the raw conv output: BatchNorm and ReLU follow the pool */
            for (int o = 0; o < c; o++) {
                f->scale[offset + o] = 1.0f;
                f->shift[offset + o] = 0.0f;
            }
            f->relu_channels = offset;
        } else {
            memcpy(f->scale + offset, parts[i]->scale, (size_t)c * sizeof(float));
            memcpy(f->shift + offset, parts[i]->shift, (size_t)c * sizeof(float));
        }
        offset += c;
    }
}

/* Builds the merged 1×1 convs of every block found in the layer table. */
static void fuse_all_siblings(Inception *net)
{
    for (int i = 0; i < net->count; i++) {
        const char *dot = strchr(net->convs[i].name, '.');
        if (!dot) continue;
        char block[32];
        snprintf(block, sizeof block, "%.*s", (int)(dot - net->convs[i].name), net->convs[i].name);
        bool done = false;
        for (int f = 0; f < net->fused_count; f++) {
            if (!strncmp(net->fused[f].name, block, strlen(block)) && net->fused[f].name[strlen(block)] == '.') done = true;
        }
        for (size_t t = 0; t < MG_ARRAY_LEN(sibling_names) && !done; t++) {
            if (t == SIBLINGS_E_AVG_POOL || t == SIBLINGS_E_MAX_POOL) continue; /* chosen per call: see below */
            int before = net->fused_count;
            fuse_siblings(net, block, sibling_names[t]);
            done = net->fused_count > before;
        }
        if (!done && find_defined(net, block, "branch3x3_2a")) {
            /* An E block: 7b pools by average and 7c by maximum, and only an average pool can
             * move behind its conv. Both merged sets are built, and the block picks one. */
            fuse_siblings(net, block, sibling_names[SIBLINGS_E_AVG_POOL]);
            fuse_siblings(net, block, sibling_names[SIBLINGS_E_MAX_POOL]);
        }
    }
}

bool inception_load_weights(Inception *net, const char *path, char *err, size_t err_size)
{
    TorchWeights w;
    bool ok = torch_weights_open(path, &w, err, err_size);
    if (ok) {
        snprintf(net->sha256, sizeof net->sha256, "%s", w.sha256);
        for (int i = 0; i < net->count && ok; i++) ok = load_conv(&w, &net->convs[i], err, err_size);
    }
    torch_weights_close(&w);
    if (ok) fuse_all_siblings(net);
    return ok;
}

bool inception_load(Inception *net, const char *path, char *err, size_t err_size)
{
    memset(net, 0, sizeof *net);
    define_network(net);
    bool ok = inception_load_weights(net, path, err, err_size);
    if (ok && strncmp(net->sha256, INCEPTION_SHA256_PREFIX, strlen(INCEPTION_SHA256_PREFIX)) != 0)
        mg_warn("%s has SHA-256 %.16s..., not the expected %s...: FID values will not be comparable with "
                "pytorch-fid's",
                path, net->sha256, INCEPTION_SHA256_PREFIX);
    if (!ok) inception_free(net);
    return ok;
}

void inception_init_random(Inception *net, uint64_t seed)
{
    memset(net, 0, sizeof *net);
    define_network(net);
    Rng rng = rng_make(seed, 0);
    for (int i = 0; i < net->count; i++) {
        InceptionConv *c = &net->convs[i];
        c->weight.shape = shape4(c->out, c->in, c->kh, c->kw);
        c->weight.numel = shape_numel(c->weight.shape);
        c->weight.data = mg_malloc(c->weight.numel * sizeof(float));
        c->weight.name = c->name;
        /* He initialisation keeps activations at a steady scale through the ReLUs */
        rng_fill_normal(&rng, c->weight.data, c->weight.numel, 0.0f, sqrtf(2.0f / (float)(c->in * c->kh * c->kw)));
        c->scale = mg_malloc((size_t)c->out * sizeof(float));
        c->shift = mg_malloc((size_t)c->out * sizeof(float));
        for (int o = 0; o < c->out; o++) {
            c->scale[o] = 1.0f;
            c->shift[o] = 0.0f;
        }
    }
    fuse_all_siblings(net);
    snprintf(net->sha256, sizeof net->sha256, "random weights, seed %llu", (unsigned long long)seed);
}

void inception_free(Inception *net)
{
    for (int i = 0; i < net->count; i++) {
        free(net->convs[i].weight.data);
        free(net->convs[i].scale);
        free(net->convs[i].shift);
    }
    for (int i = 0; i < net->fused_count; i++) {
        free(net->fused[i].weight.data);
        free(net->fused[i].scale);
        free(net->fused[i].shift);
    }
    memset(net, 0, sizeof *net);
}

/* ---- forward ----------------------------------------------------------------------- */

static const InceptionConv *find_conv(const Inception *net, const char *block, const char *name)
{
    char full[64];
    snprintf(full, sizeof full, "%s%s%s", block ? block : "", block ? "." : "", name);
    for (int i = 0; i < net->count; i++) {
        if (!strcmp(net->convs[i].name, full)) return &net->convs[i];
    }
    mg_panic("Inception has no conv %s", full);
}

/* BasicConv2d: conv, BatchNorm with running statistics, ReLU. */
static Tensor *basic_conv(Inception *net, Tape *tape, Tensor *x, const char *block, const char *name)
{
    const InceptionConv *c = find_conv(net, block, name);
    return op_conv2d_affine_relu(tape, x, (Tensor *)&c->weight, c->scale, c->shift, c->out, c->geometry);
}

/* y·scale[o] + shift[o], then ReLU, in place on a fresh activation y (B, O, H, W). */
static void affine_relu_in_place(Tensor *y, const float *scale, const float *shift)
{
    int batch = y->shape.dim[0], channels = y->shape.dim[1];
    size_t plane = (size_t)y->shape.dim[2] * y->shape.dim[3];
    float *data = y->data;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++) {
        for (int o = 0; o < channels; o++) {
            float *p = data + ((size_t)b * channels + o) * plane, k = scale[o], t = shift[o];
            #pragma omp simd
            for (size_t i = 0; i < plane; i++) {
                float v = p[i] * k + t;
                p[i] = v > 0.0f ? v : 0.0f;
            }
        }
    }
}

/* Runs the 1×1 convs `names` of `block` on x into outs[]: as one merged conv followed by
 * channel slices when fuse_all_siblings() built it, otherwise one by one. A branch_pool entry
 * yields that branch's output: the 3×3 average pool (padding not counted), its conv, BatchNorm
 * and ReLU. */
static void sibling_convs(Inception *net, Tape *tape, Tensor *x, const char *block, const char *const *names,
                          Tensor **outs)
{
    int count = 0;
    while (names[count]) count++;
    bool with_pool = is_pool_branch(names[count - 1]);
    char fused_name[64];
    snprintf(fused_name, sizeof fused_name, "%s.%s", block, with_pool ? "fused_1x1_pool" : "fused_1x1");
    const InceptionConv *f = NULL;
    for (int i = 0; i < net->fused_count; i++) {
        if (!strcmp(net->fused[i].name, fused_name)) f = &net->fused[i];
    }
    if (!f) {
        for (int i = 0; i < count; i++) {
            Tensor *input = is_pool_branch(names[i]) ? op_avg_pool2d(tape, x, 3, 1, 1, false) : x;
            outs[i] = basic_conv(net, tape, input, block, names[i]);
        }
        return;
    }
    Tensor *y = op_conv2d_affine_relu(tape, x, (Tensor *)&f->weight, f->scale, f->shift, f->relu_channels, f->geometry);
    int offset = 0;
    for (int i = 0; i < count; i++) {
        const InceptionConv *c = find_conv(net, block, names[i]);
        outs[i] = op_slice_channels(tape, y, offset, c->out);
        if (is_pool_branch(names[i])) {
            outs[i] = op_avg_pool2d(tape, outs[i], 3, 1, 1, false);
            affine_relu_in_place(outs[i], c->scale, c->shift);
        }
        offset += c->out;
    }
}

#define CONV(x, name) basic_conv(net, tape, (x), block, (name))

static Tensor *concat(Tape *tape, Tensor **parts, int count)
{
    return op_concat_channels(tape, parts, count);
}

static Tensor *block_a(Inception *net, Tape *tape, Tensor *x, const char *block)
{
    Tensor *parts[4], *first[4];
    sibling_convs(net, tape, x, block, sibling_names[SIBLINGS_A], first);
    parts[0] = first[0];
    parts[1] = CONV(first[1], "branch5x5_2");
    parts[2] = CONV(CONV(first[2], "branch3x3dbl_2"), "branch3x3dbl_3");
    parts[3] = first[3];
    return concat(tape, parts, 4);
}

static Tensor *block_b(Inception *net, Tape *tape, Tensor *x, const char *block)
{
    Tensor *parts[3];
    parts[0] = CONV(x, "branch3x3");
    parts[1] = CONV(CONV(CONV(x, "branch3x3dbl_1"), "branch3x3dbl_2"), "branch3x3dbl_3");
    parts[2] = op_max_pool2d(tape, x, 3, 2, 0);
    return concat(tape, parts, 3);
}

static Tensor *block_c(Inception *net, Tape *tape, Tensor *x, const char *block)
{
    Tensor *parts[4], *first[4];
    sibling_convs(net, tape, x, block, sibling_names[SIBLINGS_C], first);
    parts[0] = first[0];
    parts[1] = CONV(CONV(first[1], "branch7x7_2"), "branch7x7_3");
    Tensor *d = CONV(first[2], "branch7x7dbl_2");
    parts[2] = CONV(CONV(CONV(d, "branch7x7dbl_3"), "branch7x7dbl_4"), "branch7x7dbl_5");
    parts[3] = first[3];
    return concat(tape, parts, 4);
}

static Tensor *block_d(Inception *net, Tape *tape, Tensor *x, const char *block)
{
    Tensor *parts[3], *first[2];
    sibling_convs(net, tape, x, block, sibling_names[SIBLINGS_D], first);
    parts[0] = CONV(first[0], "branch3x3_2");
    Tensor *t = CONV(first[1], "branch7x7x3_2");
    parts[1] = CONV(CONV(t, "branch7x7x3_3"), "branch7x7x3_4");
    parts[2] = op_max_pool2d(tape, x, 3, 2, 0);
    return concat(tape, parts, 3);
}

/* `max_pool` selects Mixed_7c's pool branch, a 3×3 max pool where 7b has the average pool. */
static Tensor *block_e(Inception *net, Tape *tape, Tensor *x, const char *block, bool max_pool)
{
    Tensor *parts[6], *first[4];
    sibling_convs(net, tape, x, block, sibling_names[max_pool ? SIBLINGS_E_MAX_POOL : SIBLINGS_E_AVG_POOL], first);
    parts[0] = first[0];
    Tensor *t = first[1];
    parts[1] = CONV(t, "branch3x3_2a");
    parts[2] = CONV(t, "branch3x3_2b");
    Tensor *u = CONV(first[2], "branch3x3dbl_2");
    parts[3] = CONV(u, "branch3x3dbl_3a");
    parts[4] = CONV(u, "branch3x3dbl_3b");
    parts[5] = max_pool ? CONV(op_max_pool2d(tape, x, 3, 1, 1), "branch_pool") : first[3];
    return concat(tape, parts, 6);
}

#undef CONV

/* inception_forward runs the same layers one at a time from a table, where NULL stands for
 * the max pools. */
Tensor *inception_stem_forward(Inception *net, Tape *tape, Tensor *x)
{
    const char *block = NULL;
    x = basic_conv(net, tape, x, block, "Conv2d_1a_3x3");
    x = basic_conv(net, tape, x, block, "Conv2d_2a_3x3");
    x = basic_conv(net, tape, x, block, "Conv2d_2b_3x3");
    x = op_max_pool2d(tape, x, 3, 2, 0);
    x = basic_conv(net, tape, x, block, "Conv2d_3b_1x1");
    x = basic_conv(net, tape, x, block, "Conv2d_4a_3x3");
    return op_max_pool2d(tape, x, 3, 2, 0);
}

Tensor *inception_block_forward(Inception *net, Tape *tape, InceptionBlockType type, const char *block, Tensor *x)
{
    switch (type) {
    case INCEPTION_BLOCK_A:
        return block_a(net, tape, x, block);
    case INCEPTION_BLOCK_B:
        return block_b(net, tape, x, block);
    case INCEPTION_BLOCK_C:
        return block_c(net, tape, x, block);
    case INCEPTION_BLOCK_D:
        return block_d(net, tape, x, block);
    case INCEPTION_BLOCK_E_AVG_POOL:
        return block_e(net, tape, x, block, false);
    case INCEPTION_BLOCK_E_MAX_POOL:
        return block_e(net, tape, x, block, true);
    }
    mg_panic("unknown Inception block type %d", type);
}

void inception_forward(Inception *net, Tape *tape, Tensor *x, float *features)
{
    if (tape->grad_enabled) mg_panic("inception_forward needs gradients disabled");
    if (x->shape.ndim != 4 || x->shape.dim[1] != 3 || x->shape.dim[2] != INCEPTION_SIZE ||
        x->shape.dim[3] != INCEPTION_SIZE)
        shape_panic("inception_forward", "expected (B, 3, 299, 299)", x, NULL);

    static const struct {
        InceptionBlockType type;
        const char *name;
    } blocks[] = {
        {INCEPTION_BLOCK_A, "Mixed_5b"}, {INCEPTION_BLOCK_A, "Mixed_5c"}, {INCEPTION_BLOCK_A, "Mixed_5d"},
        {INCEPTION_BLOCK_B, "Mixed_6a"}, {INCEPTION_BLOCK_C, "Mixed_6b"}, {INCEPTION_BLOCK_C, "Mixed_6c"},
        {INCEPTION_BLOCK_C, "Mixed_6d"}, {INCEPTION_BLOCK_C, "Mixed_6e"}, {INCEPTION_BLOCK_D, "Mixed_7a"},
        {INCEPTION_BLOCK_E_AVG_POOL, "Mixed_7b"}, {INCEPTION_BLOCK_E_MAX_POOL, "Mixed_7c"},
    };
    /* After each stem layer and each block only its output is kept, so memory stays at one
     * layer's input and output, or one block's activations. The stem's layers are those of
     * inception_stem_forward. */
    ArenaMark mark = arena_mark(&tape->arena);
    static const char *const stem[] = {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", NULL, "Conv2d_3b_1x1",
                                       "Conv2d_4a_3x3", NULL};
    for (size_t i = 0; i < MG_ARRAY_LEN(stem); i++) {
        Tensor *y = stem[i] ? basic_conv(net, tape, x, NULL, stem[i]) : op_max_pool2d(tape, x, 3, 2, 0);
        x = tape_keep_only(tape, mark, tape->count, y);
    }
    for (size_t i = 0; i < MG_ARRAY_LEN(blocks); i++)
        x = tape_keep_only(tape, mark, tape->count, inception_block_forward(net, tape, blocks[i].type, blocks[i].name, x));
    Tensor *pooled = op_global_avg_pool(tape, x);
    memcpy(features, pooled->data, pooled->numel * sizeof(float));
}

void inception_prepare_image(Tape *tape, const uint8_t *rgb, int width, int height, float *out)
{
    ArenaMark mark = arena_mark(&tape->arena);
    Tensor *image = tensor_empty(tape, shape4(1, 3, height, width));
    size_t plane = (size_t)width * height;
    for (size_t p = 0; p < plane; p++) {
        for (int c = 0; c < 3; c++) image->data[(size_t)c * plane + p] = (float)rgb[p * 3 + c] / 255.0f;
    }
    Tensor *resized = op_resize_bilinear(tape, image, INCEPTION_SIZE, INCEPTION_SIZE);
    for (size_t i = 0; i < resized->numel; i++) out[i] = 2.0f * resized->data[i] - 1.0f;
    arena_release(&tape->arena, mark);
}
