/* The FID variant of InceptionV3 (the network pytorch-fid uses), forward only, built from the
 * tensor core's ops.
 *
 * Weights come from pt_inception-2015-12-05-6726825d.pth, the file pytorch-fid downloads
 * (https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/
 * pt_inception-2015-12-05-6726825d.pth), read directly from its PyTorch serialization.
 * Every conv is Conv2d without bias, BatchNorm (eps 0.001, running statistics) and ReLU. The
 * FID variant differs from torchvision's InceptionV3 in four places: the average pools of
 * Mixed_5b-5d, 6b-6e and 7b do not count padding, and Mixed_7c's pool branch uses max pooling.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

enum {
    INCEPTION_SIZE = 299,         /* input height and width */
    INCEPTION_FEATURES = 2048,    /* dimension of the pool3 features */
    INCEPTION_CONVS = 94,
};

/* Expected prefix of the SHA-256 of the weights file. */
#define INCEPTION_SHA256_PREFIX "6726825d"

/* One BasicConv2d: conv, then BatchNorm folded into a per-channel scale and shift, then ReLU. */
typedef struct InceptionConv {
    char name[40];        /* state dict prefix, e.g. "Mixed_6b.branch7x7_2" */
    int in, out, kh, kw;
    Conv2dGeometry geometry;
    Tensor weight;        /* (out, in, kh, kw) */
    float *scale;         /* (out) BatchNorm weight / sqrt(running_var + 0.001) */
    float *shift;         /* (out) BatchNorm bias − running_mean · scale */
    int relu_channels;    /* merged convs only: ReLU applies to channels below this */
} InceptionConv;

enum { INCEPTION_MAX_FUSED = 16 };

typedef struct Inception {
    InceptionConv convs[INCEPTION_CONVS];
    int count;
    /* 1×1 convs of one block that read the same input, merged into one conv per block (named
     * "<block>.fused_1x1") so that they run as one wider product; built after loading. */
    InceptionConv fused[INCEPTION_MAX_FUSED];
    int fused_count;
    char sha256[65];      /* of the weights file, lowercase hex */
} Inception;

typedef enum InceptionBlockType {
    INCEPTION_BLOCK_A,          /* Mixed_5b-5d: average pool without padding in the count */
    INCEPTION_BLOCK_B,          /* Mixed_6a: grid reduction */
    INCEPTION_BLOCK_C,          /* Mixed_6b-6e: 1×7 and 7×1 factorised convs */
    INCEPTION_BLOCK_D,          /* Mixed_7a: grid reduction */
    INCEPTION_BLOCK_E_AVG_POOL, /* Mixed_7b */
    INCEPTION_BLOCK_E_MAX_POOL, /* Mixed_7c: 3×3 max pool in the pool branch */
} InceptionBlockType;

/* Builders of the layer table. The full network uses the widths of pytorch-fid's model;
 * tests build single blocks with small widths. Each conv is named "<block>.<branch>". */
void inception_define_stem(Inception *net, int c1a, int c2a, int c2b, int c3b, int c4a);
void inception_define_a(Inception *net, const char *block, int in, int c1x1, int c5x5_1, int c5x5_2, int c3dbl_1,
                        int c3dbl_2, int pool);
void inception_define_b(Inception *net, const char *block, int in, int c3x3, int c3dbl_1, int c3dbl_2);
/* `out` is the width of all four branches; c7 the width inside the 7×1 and 1×7 convs. */
void inception_define_c(Inception *net, const char *block, int in, int out, int c7);
void inception_define_d(Inception *net, const char *block, int in, int c3x3_1, int c3x3_2, int c7x7x3);
/* c3x3 is the width of both 3×3 branches after their first conv; c3dbl_1 that first conv's. */
void inception_define_e(Inception *net, const char *block, int in, int c1x1, int c3x3, int c3dbl_1, int pool);

/* Loads every defined conv from a state dict file (keys "<name>.conv.weight" and
 * "<name>.bn.{weight,bias,running_mean,running_var}"), checking shapes. */
bool inception_load_weights(Inception *net, const char *path, char *err, size_t err_size);

/* Loads the weights, checking every expected key and shape. Returns false with a message
 * naming the file and the problem. Warns on stderr when the file's SHA-256 does not start
 * with INCEPTION_SHA256_PREFIX. */
bool inception_load(Inception *net, const char *path, char *err, size_t err_size);
void inception_free(Inception *net);
/* Builds the full network with random weights (He normal, BatchNorm as identity), for
 * benchmarks: the speed of the network does not depend on its weights. */
void inception_init_random(Inception *net, uint64_t seed);

/* The stem: convs and max pools from (B, 3, 299, 299) to (B, 192, 35, 35). */
Tensor *inception_stem_forward(Inception *net, Tape *tape, Tensor *x);
Tensor *inception_block_forward(Inception *net, Tape *tape, InceptionBlockType type, const char *block, Tensor *x);

/* Runs the network on x (B, 3, 299, 299) scaled to [-1, 1] and writes the pool3 features
 * (B, 2048) to `features`. The tape must have gradients disabled. */
void inception_forward(Inception *net, Tape *tape, Tensor *x, float *features);

/* Prepares one uint8 RGB image (H, W, 3) as pytorch-fid does: /255, bilinear resize to
 * 299×299 with align_corners=False, then 2x − 1, into out (3, 299, 299). */
void inception_prepare_image(Tape *tape, const uint8_t *rgb, int width, int height, float *out);
