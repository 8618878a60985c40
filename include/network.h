/* Networks assembled from a config's layer list.
 *
 * network_build() walks the layer list once, inferring every layer's input and output shape
 * and registering its parameters. Any layer that cannot take its input (a conv on tokens, a
 * transformer whose dim is not divisible by its heads, a pixel shuffle on too few channels)
 * stops the program with the config file, the layer's position and the problem.
 */
#pragma once

#include <stdbool.h>

#include "config.h"
#include "params.h"
#include "rng.h"
#include "tape.h"

/* The per-image shape of the values flowing between layers. */
typedef enum FlowKind { FLOW_VECTOR, FLOW_TOKENS, FLOW_IMAGE } FlowKind;

typedef struct FlowShape {
    FlowKind kind;
    int channels;        /* vector: features; tokens: D; image: C */
    int tokens;          /* tokens: N */
    int height, width;   /* image: H, W; tokens: the grid when has_grid */
    bool has_grid;       /* tokens: N == height·width in raster order */
} FlowShape;

/* Parameters of one pre-norm transformer block. */
typedef struct TransformerBlock {
    Tensor *norm1_weight, *norm1_bias;  /* (D) */
    Tensor *qkv_weight, *qkv_bias;      /* (3·D, D), (3·D) */
    Tensor *proj_weight, *proj_bias;    /* (D, D), (D) */
    Tensor *norm2_weight, *norm2_bias;  /* (D) */
    Tensor *fc1_weight, *fc1_bias;      /* (hidden, D), (hidden) */
    Tensor *fc2_weight, *fc2_bias;      /* (D, hidden), (D) */
} TransformerBlock;

typedef struct Layer {
    LayerSpec spec;
    char name[32];          /* "generator[3]" style position, for the layer table */
    FlowShape in, out;
    Tensor *weight, *bias;  /* linear, conv, conv_transpose, batch_norm, layer_norm */
    Tensor *embedding;      /* pos_embed (1, N, D), class_token (1, 1, D) */
    Tensor *running_mean, *running_var;  /* batch_norm buffers (C) */
    TransformerBlock *blocks;            /* transformer: spec.depth blocks */
    int hidden;             /* transformer MLP features */
    size_t param_count;
    double flops;           /* forward FLOPs per image of its products (2 per multiply-add) */
    double activation_floats;  /* floats per image of the tensors its forward creates */
} Layer;

typedef struct Network {
    const char *role;       /* "generator" or "discriminator" */
    Layer *layers;
    int count;
    ParamSet params;
    FlowShape input, output;
} Network;

/* Builds a network from its spec for inputs of shape `input`; `source` (the config file)
 * names errors. Parameters are allocated but not initialised. */
void network_build(Network *net, const NetworkSpec *spec, FlowShape input, const char *role, const char *source);
void network_free(Network *net);
/* Initialises every parameter and buffer as the InitSpec says, layer by layer. */
void network_init(Network *net, const InitSpec *init, Rng *rng);
/* Runs the network on a batch x whose per-image shape is net->input. `training` selects
 * batch statistics (and running-statistics updates) in BatchNorm layers. */
Tensor *network_forward(Network *net, Tape *tape, Tensor *x, bool training);
/* Prints one line per layer: name, output shape, parameters, forward FLOPs per image, then
 * the totals. */
void network_print(const Network *net);
double network_flops(const Network *net);
double network_activation_floats(const Network *net);

/* Formats a flow shape as "tokens 64×256 (8×8)", "image 3×32×32" or "vector 256". */
void flow_format(FlowShape s, char *buf, int size);
FlowShape flow_vector(int features);
FlowShape flow_image(int channels, int height, int width);
