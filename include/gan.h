/* A GAN built from a config: generator, discriminator and, when the config enables it, the
 * exponential moving average (EMA) of the generator's weights. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "network.h"

/* Random streams: every use of randomness draws from its own stream of the run's seed, so
 * one use never shifts the numbers of another. */
enum RngStream {
    STREAM_INIT_GENERATOR = 1,
    STREAM_INIT_DISCRIMINATOR = 2,
    STREAM_LATENT = 3,       /* training latents */
    STREAM_SHUFFLE = 4,      /* epoch order of the dataset */
    STREAM_FLIP = 5,         /* horizontal flips of real images */
    STREAM_AUGMENT = 6,      /* DiffAugment draws */
    STREAM_FIXED_LATENT = 7, /* the latents of the sample grids written during training */
    STREAM_SAMPLE = 8,       /* latents of `mixgan sample` and of FID on a checkpoint */
};

typedef struct Gan {
    ModelConfig config;
    Network generator, discriminator;
    Network ema;    /* averaged generator, built only when has_ema */
    bool has_ema;
} Gan;

/* Builds the networks of `config` (taking ownership of it) and checks that the generator
 * maps latent_dim to an image of the config's size and that the discriminator maps that
 * image to one logit. Exits with a message naming the config on a mismatch. */
void gan_build(Gan *gan, ModelConfig *config);
/* Initialises G and D from the config's seed and copies G into the EMA. */
void gan_init_weights(Gan *gan);
void gan_free(Gan *gan);
/* Prints the resolved config, both layer tables, the totals and the generator size. */
void gan_print(const Gan *gan);
/* Generator size in MiB: trainable parameters × 4 bytes / 2^20. */
double gan_generator_mib(const Gan *gan);

/* Converts images (B, C, H, W) in [-1, 1] to uint8 (B, H, W, C) by rounding (x + 1)·127.5
 * and clamping to [0, 255]. */
void images_to_uint8(const float *images, int batch, int channels, int height, int width, uint8_t *out);

/* Generates `count` images into out (count, H, W, C) uint8 with the generator `g` in eval
 * mode, in batches of `batch`, drawing latents N(0, I) from `rng`. */
void gan_generate(Gan *gan, Network *g, Rng *rng, int count, int batch, uint8_t *out);
