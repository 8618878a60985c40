/* Building, initialising, running and describing networks from layer lists. */
#include "network.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

FlowShape flow_vector(int features)
{
    return (FlowShape){.kind = FLOW_VECTOR, .channels = features};
}

FlowShape flow_image(int channels, int height, int width)
{
    return (FlowShape){.kind = FLOW_IMAGE, .channels = channels, .height = height, .width = width};
}

static FlowShape flow_tokens(int tokens, int dim, int height, int width, bool has_grid)
{
    return (FlowShape){.kind = FLOW_TOKENS, .channels = dim, .tokens = tokens, .height = height, .width = width,
                       .has_grid = has_grid};
}

static double flow_size(FlowShape s)
{
    switch (s.kind) {
    case FLOW_VECTOR:
        return s.channels;
    case FLOW_TOKENS:
        return (double)s.tokens * s.channels;
    default:
        return (double)s.channels * s.height * s.width;
    }
}

void flow_format(FlowShape s, char *buf, int size)
{
    switch (s.kind) {
    case FLOW_VECTOR:
        snprintf(buf, (size_t)size, "vector %d", s.channels);
        break;
    case FLOW_TOKENS:
        if (s.has_grid)
            snprintf(buf, (size_t)size, "tokens %dx%d (%dx%d)", s.tokens, s.channels, s.height, s.width);
        else
            snprintf(buf, (size_t)size, "tokens %dx%d", s.tokens, s.channels);
        break;
    default:
        snprintf(buf, (size_t)size, "image %dx%dx%d", s.channels, s.height, s.width);
    }
}

/* ---- building ---------------------------------------------------------------------- */

/* What network_build needs to name errors and parameters. */
typedef struct BuildContext {
    const char *source;
    const char *role;
    int index;
    const LayerSpec *spec;
    ParamSet *params;
} BuildContext;

#define build_error(ctx, ...) build_fail((ctx), mg_format(__VA_ARGS__))

static noreturn void build_fail(const BuildContext *ctx, char *message)
{
    mg_fatal("%s: %s[%d] (%s): %s", ctx->source, ctx->role, ctx->index, layer_type_name(ctx->spec->type), message);
}

static void require_kind(const BuildContext *ctx, FlowShape in, FlowKind kind)
{
    static const char *const kind_names[] = {"a vector", "tokens", "an image"};
    if (in.kind == kind) return;
    char shape[64];
    flow_format(in, shape, sizeof shape);
    build_error(ctx, "expects %s as input, but the previous layer produces %s", kind_names[kind], shape);
}

static Tensor *add_param(const BuildContext *ctx, const char *suffix, Shape shape)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%d.%s", ctx->role, ctx->index, suffix);
    return paramset_add(ctx->params, name, shape);
}

static Tensor *add_buffer(const BuildContext *ctx, const char *suffix, Shape shape)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%d.%s", ctx->role, ctx->index, suffix);
    return paramset_add_buffer(ctx->params, name, shape);
}

static void build_transformer(const BuildContext *ctx, Layer *layer)
{
    int dim = layer->in.channels, heads = layer->spec.heads;
    if (dim % heads != 0) build_error(ctx, "dim %d is not divisible by heads %d", dim, heads);
    double hidden = layer->spec.mlp_ratio * dim;
    if (hidden != floor(hidden) || hidden < 1)
        build_error(ctx, "mlp_ratio %g times dim %d is not a whole number of features", layer->spec.mlp_ratio, dim);
    layer->hidden = (int)hidden;
    layer->blocks = mg_calloc((size_t)layer->spec.depth, sizeof *layer->blocks);
    for (int i = 0; i < layer->spec.depth; i++) {
        TransformerBlock *b = &layer->blocks[i];
        char suffix[64];
#define BLOCK_PARAM(field, label, shape)                      \
        snprintf(suffix, sizeof suffix, "block%d.%s", i, label); \
        b->field = add_param(ctx, suffix, shape)
        BLOCK_PARAM(norm1_weight, "norm1.weight", shape1(dim));
        BLOCK_PARAM(norm1_bias, "norm1.bias", shape1(dim));
        BLOCK_PARAM(qkv_weight, "qkv.weight", shape2(3 * dim, dim));
        BLOCK_PARAM(qkv_bias, "qkv.bias", shape1(3 * dim));
        BLOCK_PARAM(proj_weight, "proj.weight", shape2(dim, dim));
        BLOCK_PARAM(proj_bias, "proj.bias", shape1(dim));
        BLOCK_PARAM(norm2_weight, "norm2.weight", shape1(dim));
        BLOCK_PARAM(norm2_bias, "norm2.bias", shape1(dim));
        BLOCK_PARAM(fc1_weight, "fc1.weight", shape2(layer->hidden, dim));
        BLOCK_PARAM(fc1_bias, "fc1.bias", shape1(layer->hidden));
        BLOCK_PARAM(fc2_weight, "fc2.weight", shape2(dim, layer->hidden));
        BLOCK_PARAM(fc2_bias, "fc2.bias", shape1(dim));
#undef BLOCK_PARAM
    }
    double n = layer->in.tokens, d = dim, h = layer->hidden;
    layer->out = layer->in;
    layer->flops = layer->spec.depth * (n * 2.0 * (4.0 * d * d + 2.0 * d * h) + 4.0 * n * n * d);
    layer->activation_floats = layer->spec.depth * n * (10.0 * d + 2.0 * h);
}

static void build_conv(const BuildContext *ctx, Layer *layer)
{
    const LayerSpec *s = &layer->spec;
    FlowShape in = layer->in;
    int c = in.channels, o = s->out, oh, ow;
    if (s->type == LAYER_CONV) {
        oh = (in.height + 2 * s->padding_h - s->kernel_h) / s->stride + 1;
        ow = (in.width + 2 * s->padding_w - s->kernel_w) / s->stride + 1;
        if (in.height + 2 * s->padding_h < s->kernel_h || in.width + 2 * s->padding_w < s->kernel_w || oh < 1 || ow < 1)
            build_error(ctx, "kernel %dx%d does not fit the %dx%d input with padding (%d, %d)", s->kernel_h, s->kernel_w,
                        in.height, in.width, s->padding_h, s->padding_w);
        layer->weight = add_param(ctx, "weight", shape4(o, c, s->kernel_h, s->kernel_w));
        layer->flops = 2.0 * o * oh * ow * c * s->kernel_h * s->kernel_w;
    } else {
        oh = (in.height - 1) * s->stride - 2 * s->padding_h + s->kernel_h;
        ow = (in.width - 1) * s->stride - 2 * s->padding_w + s->kernel_w;
        if (oh < 1 || ow < 1) build_error(ctx, "the output would be empty (%dx%d)", oh, ow);
        layer->weight = add_param(ctx, "weight", shape4(c, o, s->kernel_h, s->kernel_w));
        layer->flops = 2.0 * c * in.height * in.width * o * s->kernel_h * s->kernel_w;
    }
    if (s->bias) layer->bias = add_param(ctx, "bias", shape1(o));
    layer->out = flow_image(o, oh, ow);
}

static void build_layer(const BuildContext *ctx, Layer *layer)
{
    const LayerSpec *s = &layer->spec;
    FlowShape in = layer->in;
    layer->out = in;
    switch (s->type) {
    case LAYER_LINEAR:
        if (in.kind == FLOW_IMAGE) require_kind(ctx, in, FLOW_TOKENS);
        layer->weight = add_param(ctx, "weight", shape2(s->out, in.channels));
        if (s->bias) layer->bias = add_param(ctx, "bias", shape1(s->out));
        layer->out.channels = s->out;
        layer->flops = 2.0 * (in.kind == FLOW_TOKENS ? in.tokens : 1) * in.channels * s->out;
        break;
    case LAYER_TO_TOKENS:
        require_kind(ctx, in, FLOW_VECTOR);
        if ((double)s->height * s->width * s->dim != in.channels)
            build_error(ctx, "%d features cannot form %dx%d tokens of dim %d", in.channels, s->height, s->width, s->dim);
        layer->out = flow_tokens(s->height * s->width, s->dim, s->height, s->width, true);
        break;
    case LAYER_TO_IMAGE:
        require_kind(ctx, in, FLOW_VECTOR);
        if ((double)s->channels * s->height * s->width != in.channels)
            build_error(ctx, "%d features cannot form a %dx%dx%d image", in.channels, s->channels, s->height, s->width);
        layer->out = flow_image(s->channels, s->height, s->width);
        break;
    case LAYER_FLATTEN:
        layer->out = flow_vector((int)flow_size(in));
        break;
    case LAYER_POS_EMBED:
        require_kind(ctx, in, FLOW_TOKENS);
        layer->embedding = add_param(ctx, "embedding", shape3(1, in.tokens, in.channels));
        break;
    case LAYER_CLASS_TOKEN:
        require_kind(ctx, in, FLOW_TOKENS);
        layer->embedding = add_param(ctx, "token", shape3(1, 1, in.channels));
        layer->out = flow_tokens(in.tokens + 1, in.channels, 0, 0, false);
        break;
    case LAYER_TRANSFORMER:
        require_kind(ctx, in, FLOW_TOKENS);
        build_transformer(ctx, layer);
        return;
    case LAYER_TOKENS_TO_IMAGE:
        require_kind(ctx, in, FLOW_TOKENS);
        if (!in.has_grid) build_error(ctx, "the tokens do not form a grid (a class token was prepended)");
        layer->out = flow_image(in.channels, in.height, in.width);
        break;
    case LAYER_IMAGE_TO_TOKENS:
        require_kind(ctx, in, FLOW_IMAGE);
        layer->out = flow_tokens(in.height * in.width, in.channels, in.height, in.width, true);
        break;
    case LAYER_PIXEL_SHUFFLE:
        require_kind(ctx, in, FLOW_IMAGE);
        if (in.channels % (s->factor * s->factor) != 0)
            build_error(ctx, "%d channels are not divisible by factor² = %d", in.channels, s->factor * s->factor);
        layer->out = flow_image(in.channels / (s->factor * s->factor), in.height * s->factor, in.width * s->factor);
        break;
    case LAYER_PATCH_MERGE:
        require_kind(ctx, in, FLOW_TOKENS);
        if (!in.has_grid || in.height % 2 || in.width % 2)
            build_error(ctx, "needs tokens on a grid of even height and width");
        layer->out = flow_tokens(in.tokens / 4, 4 * in.channels, in.height / 2, in.width / 2, true);
        break;
    case LAYER_SELECT_TOKEN:
        require_kind(ctx, in, FLOW_TOKENS);
        if (s->index >= in.tokens) build_error(ctx, "index %d is out of range for %d tokens", s->index, in.tokens);
        layer->out = flow_vector(in.channels);
        break;
    case LAYER_MEAN_TOKENS:
        require_kind(ctx, in, FLOW_TOKENS);
        layer->out = flow_vector(in.channels);
        break;
    case LAYER_CONV:
    case LAYER_CONV_TRANSPOSE:
        require_kind(ctx, in, FLOW_IMAGE);
        build_conv(ctx, layer);
        break;
    case LAYER_BATCH_NORM:
        require_kind(ctx, in, FLOW_IMAGE);
        layer->weight = add_param(ctx, "weight", shape1(in.channels));
        layer->bias = add_param(ctx, "bias", shape1(in.channels));
        layer->running_mean = add_buffer(ctx, "running_mean", shape1(in.channels));
        layer->running_var = add_buffer(ctx, "running_var", shape1(in.channels));
        break;
    case LAYER_LAYER_NORM:
        if (in.kind == FLOW_IMAGE) require_kind(ctx, in, FLOW_TOKENS);
        layer->weight = add_param(ctx, "weight", shape1(in.channels));
        layer->bias = add_param(ctx, "bias", shape1(in.channels));
        break;
    default: /* activations keep the shape */
        break;
    }
    layer->activation_floats = flow_size(layer->out);
}

void network_build(Network *net, const NetworkSpec *spec, FlowShape input, const char *role, const char *source)
{
    memset(net, 0, sizeof *net);
    net->role = role;
    net->count = spec->count;
    net->layers = mg_calloc((size_t)spec->count, sizeof *net->layers);
    net->input = input;
    FlowShape shape = input;
    for (int i = 0; i < spec->count; i++) {
        Layer *layer = &net->layers[i];
        layer->spec = spec->layers[i];
        layer->in = shape;
        snprintf(layer->name, sizeof layer->name, "%s[%d]", role, i);
        BuildContext ctx = {.source = source, .role = role, .index = i, .spec = &layer->spec, .params = &net->params};
        size_t before = net->params.param_total;
        build_layer(&ctx, layer);
        layer->param_count = net->params.param_total - before;
        shape = layer->out;
    }
    net->output = shape;
    paramset_allocate(&net->params);
}

void network_free(Network *net)
{
    for (int i = 0; i < net->count; i++) free(net->layers[i].blocks);
    free(net->layers);
    paramset_free(&net->params);
    memset(net, 0, sizeof *net);
}

/* ---- initialisation ---------------------------------------------------------------- */

static void init_linear_weight(Tensor *weight, Tensor *bias, const InitSpec *init, Rng *rng)
{
    if (init->weight_std > 0)
        init_normal(weight, rng, 0.0f, (float)init->weight_std);
    else
        init_zeros(weight);
    if (bias) init_zeros(bias);
}

void network_init(Network *net, const InitSpec *init, Rng *rng)
{
    float emb = (float)init->embedding_std;
    for (int i = 0; i < net->count; i++) {
        Layer *layer = &net->layers[i];
        switch (layer->spec.type) {
        case LAYER_LINEAR:
        case LAYER_CONV:
        case LAYER_CONV_TRANSPOSE:
            init_linear_weight(layer->weight, layer->bias, init, rng);
            break;
        case LAYER_POS_EMBED:
        case LAYER_CLASS_TOKEN:
            if (emb > 0)
                init_trunc_normal(layer->embedding, rng, 0.0f, emb, -2.0f * emb, 2.0f * emb);
            else
                init_zeros(layer->embedding);
            break;
        case LAYER_BATCH_NORM:
            if (init->batch_norm_weight_std > 0)
                init_normal(layer->weight, rng, 1.0f, (float)init->batch_norm_weight_std);
            else
                init_ones(layer->weight);
            init_zeros(layer->bias);
            init_zeros(layer->running_mean);
            init_ones(layer->running_var);
            break;
        case LAYER_LAYER_NORM:
            init_ones(layer->weight);
            init_zeros(layer->bias);
            break;
        case LAYER_TRANSFORMER:
            for (int b = 0; b < layer->spec.depth; b++) {
                TransformerBlock *blk = &layer->blocks[b];
                init_ones(blk->norm1_weight);
                init_zeros(blk->norm1_bias);
                init_linear_weight(blk->qkv_weight, blk->qkv_bias, init, rng);
                init_linear_weight(blk->proj_weight, blk->proj_bias, init, rng);
                init_ones(blk->norm2_weight);
                init_zeros(blk->norm2_bias);
                init_linear_weight(blk->fc1_weight, blk->fc1_bias, init, rng);
                init_linear_weight(blk->fc2_weight, blk->fc2_bias, init, rng);
            }
            break;
        default:
            break;
        }
    }
}

/* ---- forward ----------------------------------------------------------------------- */

/* x + Proj(Attention(LN1(x))), then x + FC2(GELU(FC1(LN2(x)))). x (B, N, D). */
static Tensor *transformer_block_forward(Tape *tape, const TransformerBlock *b, Tensor *x, int heads)
{
    const float eps = 1e-5f;
    Tensor *h = op_layer_norm(tape, x, b->norm1_weight, b->norm1_bias, eps);
    h = op_linear(tape, h, b->qkv_weight, b->qkv_bias);
    h = op_attention(tape, h, heads);
    h = op_linear(tape, h, b->proj_weight, b->proj_bias);
    x = op_add(tape, x, h);

    h = op_layer_norm(tape, x, b->norm2_weight, b->norm2_bias, eps);
    h = op_linear(tape, h, b->fc1_weight, b->fc1_bias);
    h = op_gelu(tape, h);
    h = op_linear(tape, h, b->fc2_weight, b->fc2_bias);
    return op_add(tape, x, h);
}

/* The batch tensor shape of a flow shape. */
static Shape batch_shape(int batch, FlowShape s)
{
    switch (s.kind) {
    case FLOW_VECTOR:
        return shape2(batch, s.channels);
    case FLOW_TOKENS:
        return shape3(batch, s.tokens, s.channels);
    default:
        return shape4(batch, s.channels, s.height, s.width);
    }
}

static Tensor *layer_forward(const Layer *layer, Tape *tape, Tensor *x, bool training)
{
    const LayerSpec *s = &layer->spec;
    int batch = x->shape.dim[0];
    switch (s->type) {
    case LAYER_LINEAR:
        return op_linear(tape, x, layer->weight, layer->bias);
    case LAYER_TO_TOKENS:
    case LAYER_TO_IMAGE:
    case LAYER_FLATTEN:
        return tensor_reshape(tape, x, batch_shape(batch, layer->out));
    case LAYER_POS_EMBED:
        return op_add(tape, x, layer->embedding);
    case LAYER_CLASS_TOKEN:
        return op_prepend_token(tape, x, layer->embedding);
    case LAYER_TRANSFORMER: {
        ArenaMark mark = arena_mark(&tape->arena);
        for (int i = 0; i < s->depth; i++) {
            x = transformer_block_forward(tape, &layer->blocks[i], x, s->heads);
            if (!tape->grad_enabled) x = tape_keep_only(tape, mark, tape->count, x);
        }
        return x;
    }
    case LAYER_TOKENS_TO_IMAGE:
        return op_tokens_to_image(tape, x, layer->in.height, layer->in.width);
    case LAYER_IMAGE_TO_TOKENS:
        return op_image_to_tokens(tape, x);
    case LAYER_PIXEL_SHUFFLE:
        return op_pixel_shuffle(tape, x, s->factor);
    case LAYER_PATCH_MERGE:
        return op_patch_merge(tape, x, layer->in.height, layer->in.width);
    case LAYER_SELECT_TOKEN:
        return op_slice_token(tape, x, s->index);
    case LAYER_MEAN_TOKENS:
        return op_mean(tape, x, 1);
    case LAYER_CONV:
        return op_conv2d(tape, x, layer->weight, layer->bias,
                         (Conv2dGeometry){s->stride, s->stride, s->padding_h, s->padding_w});
    case LAYER_CONV_TRANSPOSE:
        return op_conv_transpose2d(tape, x, layer->weight, layer->bias,
                                   (Conv2dGeometry){s->stride, s->stride, s->padding_h, s->padding_w});
    case LAYER_BATCH_NORM: {
        BatchNormStats stats = {layer->running_mean->data, layer->running_var->data};
        return op_batch_norm2d(tape, x, layer->weight, layer->bias, stats, training, (float)s->momentum, (float)s->eps);
    }
    case LAYER_LAYER_NORM:
        return op_layer_norm(tape, x, layer->weight, layer->bias, (float)s->eps);
    case LAYER_RELU:
        return op_relu(tape, x);
    case LAYER_LEAKY_RELU:
        return op_leaky_relu(tape, x, (float)s->slope);
    case LAYER_GELU:
        return op_gelu(tape, x);
    case LAYER_TANH:
        return op_tanh(tape, x);
    default:
        mg_panic("layer type %d has no forward", s->type);
    }
}

Tensor *network_forward(Network *net, Tape *tape, Tensor *x, bool training)
{
    Shape expected = batch_shape(x->shape.dim[0], net->input);
    if (!shape_equal(x->shape, expected)) {
        char a[64], b[64];
        mg_panic("%s: input shape %s, expected %s", net->role, shape_format(x->shape, a), shape_format(expected, b));
    }
    if (tape->grad_enabled) {
        for (int i = 0; i < net->count; i++) x = layer_forward(&net->layers[i], tape, x, training);
        return x;
    }
    /* Without gradients only the last output matters: keep one layer's activations at a time. */
    ArenaMark mark = arena_mark(&tape->arena);
    for (int i = 0; i < net->count; i++) {
        x = layer_forward(&net->layers[i], tape, x, training);
        x = tape_keep_only(tape, mark, tape->count, x);
    }
    return x;
}

/* ---- description ------------------------------------------------------------------- */

double network_flops(const Network *net)
{
    double total = 0;
    for (int i = 0; i < net->count; i++) total += net->layers[i].flops;
    return total;
}

double network_activation_floats(const Network *net)
{
    double total = 0;
    for (int i = 0; i < net->count; i++) total += net->layers[i].activation_floats;
    return total;
}

static void describe_layer(const Layer *layer, char *buf, int size)
{
    const LayerSpec *s = &layer->spec;
    switch (s->type) {
    case LAYER_LINEAR:
        snprintf(buf, (size_t)size, "linear %d->%d%s", layer->in.channels, s->out, s->bias ? "" : " no bias");
        break;
    case LAYER_TRANSFORMER:
        snprintf(buf, (size_t)size, "transformer x%d (%d heads, mlp %d)", s->depth, s->heads, layer->hidden);
        break;
    case LAYER_CONV:
    case LAYER_CONV_TRANSPOSE:
        snprintf(buf, (size_t)size, "%s %d->%d k%dx%d s%d p%d,%d%s", s->type == LAYER_CONV ? "conv" : "conv_transpose",
                 layer->in.channels, s->out, s->kernel_h, s->kernel_w, s->stride, s->padding_h, s->padding_w,
                 s->bias ? "" : " no bias");
        break;
    case LAYER_LEAKY_RELU:
        snprintf(buf, (size_t)size, "leaky_relu %g", s->slope);
        break;
    case LAYER_PIXEL_SHUFFLE:
        snprintf(buf, (size_t)size, "pixel_shuffle %d", s->factor);
        break;
    default:
        snprintf(buf, (size_t)size, "%s", layer_type_name(s->type));
    }
}

void network_print(const Network *net)
{
    char input[64];
    flow_format(net->input, input, sizeof input);
    printf("%s (input %s)\n", net->role, input);
    printf("  %-18s %-46s %-24s %10s %12s\n", "layer", "type", "output", "params", "MFLOP/image");
    for (int i = 0; i < net->count; i++) {
        const Layer *l = &net->layers[i];
        char description[64], out[64];
        describe_layer(l, description, sizeof description);
        flow_format(l->out, out, sizeof out);
        printf("  %-18s %-46s %-24s %10zu %12.1f\n", l->name, description, out, l->param_count, l->flops / 1e6);
    }
    printf("  %-18s %-46s %-24s %10zu %12.1f\n", "total", "", "", net->params.param_total, network_flops(net) / 1e6);
}
