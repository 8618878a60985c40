/* JSON model configs: the generator and discriminator as layer lists, the initialisation and
 * the training settings.
 *
 * A config file looks like configs/hybrid.json. Loading rejects unknown keys, wrong types and
 * out-of-range values with the file name, the key's path (for example
 * "generator[3].heads") and what was expected. Whether the layers fit together (shapes,
 * heads dividing dims, the generator reaching the image size) is checked when the networks
 * are built, see network.h.
 */
#pragma once

#include <stdbool.h>

typedef enum LayerType {
    LAYER_LINEAR,          /* Linear on the last axis: out, bias */
    LAYER_TO_TOKENS,       /* vector (F) -> tokens (height·width, dim), token-major */
    LAYER_TO_IMAGE,        /* vector (F) -> image (channels, height, width) */
    LAYER_FLATTEN,         /* image or tokens -> vector */
    LAYER_POS_EMBED,       /* + learned (1, N, D) positional embedding */
    LAYER_CLASS_TOKEN,     /* prepend a learned (1, 1, D) token */
    LAYER_TRANSFORMER,     /* depth pre-norm transformer blocks: heads, mlp_ratio */
    LAYER_TOKENS_TO_IMAGE, /* (N, D) on an H×W grid -> image (D, H, W) */
    LAYER_IMAGE_TO_TOKENS, /* image (C, H, W) -> tokens (H·W, C) */
    LAYER_PIXEL_SHUFFLE,   /* image (C·r², H, W) -> (C, H·r, W·r): factor */
    LAYER_PATCH_MERGE,     /* tokens on an H×W grid -> (H/2·W/2, 4·D) */
    LAYER_SELECT_TOKEN,    /* tokens -> vector: token `index` */
    LAYER_MEAN_TOKENS,     /* tokens -> vector: mean over tokens */
    LAYER_CONV,            /* Conv2d: out, kernel, stride, padding, bias */
    LAYER_CONV_TRANSPOSE,  /* ConvTranspose2d: out, kernel, stride, padding, bias */
    LAYER_BATCH_NORM,      /* BatchNorm2d over channels: eps, momentum */
    LAYER_LAYER_NORM,      /* LayerNorm over the last axis: eps */
    LAYER_RELU,
    LAYER_LEAKY_RELU,      /* slope */
    LAYER_GELU,
    LAYER_TANH,
    LAYER_TYPE_COUNT
} LayerType;

/* One entry of a network's layer list. Only the fields of its type are meaningful. */
typedef struct LayerSpec {
    LayerType type;
    int out;                   /* output features (linear) or channels (conv) */
    int kernel_h, kernel_w;
    int stride;
    int padding_h, padding_w;
    bool bias;
    int depth, heads;          /* transformer */
    double mlp_ratio;          /* transformer: hidden features = mlp_ratio · dim */
    int height, width;         /* to_tokens, to_image */
    int dim, channels;         /* to_tokens: dim; to_image: channels */
    int factor;                /* pixel_shuffle */
    int index;                 /* select_token */
    double slope;              /* leaky_relu */
    double eps, momentum;      /* norms */
} LayerSpec;

typedef struct NetworkSpec {
    LayerSpec *layers;
    int count;
} NetworkSpec;

/* Initial weight distributions. Linear, conv and transposed-conv weights are N(0, weight_std²)
 * with zero bias; BatchNorm weights N(1, batch_norm_weight_std²) with zero bias; LayerNorm
 * weight 1, bias 0; positional embeddings and class tokens N(0, embedding_std²) truncated at
 * ±2·embedding_std. */
typedef struct InitSpec {
    double weight_std;
    double batch_norm_weight_std;
    double embedding_std;
} InitSpec;

typedef enum LossType { LOSS_NON_SATURATING, LOSS_HINGE } LossType;

enum {
    AUGMENT_COLOR = 1 << 0,
    AUGMENT_TRANSLATION = 1 << 1,
    AUGMENT_CUTOUT = 1 << 2,
};

typedef struct TrainingSpec {
    LossType loss;
    int batch_size;
    double lr, beta1, beta2, adam_eps;
    int d_steps;               /* discriminator steps per generator step */
    double ema_decay;          /* 0 disables the generator EMA */
    unsigned augment;          /* AUGMENT_* flags of DiffAugment, 0 for none */
    bool hflip;                /* random horizontal flip of real images */
    unsigned long long seed;
    long steps;                /* default length of a run, in iterations */
    int log_interval;          /* iterations between progress lines */
    int sample_interval;       /* iterations between sample grids */
    int checkpoint_interval;   /* iterations between checkpoints */
} TrainingSpec;

typedef struct ModelConfig {
    char *source;              /* file name or "<checkpoint>", for messages */
    char *text;                /* the JSON text as loaded, stored in checkpoints */
    char *name;
    int image_size, channels, latent_dim;
    NetworkSpec generator, discriminator;
    InitSpec init;
    TrainingSpec training;
} ModelConfig;

/* Loads and validates a config file; exits with a message naming the file and key on any
 * problem. */
void config_load(const char *path, ModelConfig *config);
/* Parses config text (from a checkpoint); `source` names it in messages. */
void config_parse(const char *text, const char *source, ModelConfig *config);
void config_free(ModelConfig *config);

const char *layer_type_name(LayerType type);
const char *loss_type_name(LossType loss);
/* Writes the augmentations as "color, translation, cutout" or "off". */
void augment_format(unsigned augment, char *buf, int size);
/* Prints the resolved config: every setting after defaults were applied. */
void config_print(const ModelConfig *config);

/* Compares the parts of two config texts that define a model and its optimisation: everything
 * except training.steps and the log, sample and checkpoint intervals. Returns true when they
 * match; otherwise writes the path of the first difference (such as "generator[3].heads")
 * into `difference`. Both texts must be valid configs. */
bool config_same_model(const char *a, const char *b, char *difference, int size);
