/* GAN training: the data loader and one training iteration.
 *
 * One iteration is `d_steps` discriminator steps, each on a real batch and a generated batch,
 * then one generator step, then the EMA update. Every random draw comes from a stream of the
 * config's seed (see gan.h), and the loader's position is part of the state, so a run
 * resumed from a checkpoint continues exactly as an uninterrupted run would.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gan.h"
#include "params.h"

/* Training images in memory: (count, height, width, channels) uint8. */
typedef struct ImageSet {
    const uint8_t *pixels;
    uint32_t count, height, width, channels;
} ImageSet;

/* Walks the images in a new random order every epoch. */
typedef struct DataLoader {
    ImageSet images;
    uint64_t seed;
    int64_t epoch;      /* current epoch, from 0 */
    uint32_t position;  /* next index into `order` */
    uint32_t *order;    /* (count) permutation of the current epoch */
} DataLoader;

void loader_init(DataLoader *loader, ImageSet images, uint64_t seed, int64_t epoch, uint32_t position);
void loader_free(DataLoader *loader);
/* Fills out (batch, C, H, W) with the next images scaled to [-1, 1], each flipped
 * horizontally with probability 1/2 when `hflip`. Starts a new epoch when one runs out. */
void loader_next(DataLoader *loader, int batch, bool hflip, Rng *flip_rng, float *out);

typedef struct Trainer {
    Gan *gan;
    Adam adam_g, adam_d;
    int64_t step;        /* iterations completed */
    Rng latent_rng, flip_rng, augment_rng;
    DataLoader loader;
    Tape tape;
} Trainer;

/* Losses and mean logits of one iteration (of its last discriminator step). */
typedef struct IterationStats {
    double d_loss, g_loss;
    double d_real, d_fake;  /* mean discriminator logits on real and generated images */
    bool finite;            /* false when a loss was NaN or infinite: nothing was updated */
} IterationStats;

/* Prepares a fresh run on `images` for an initialised GAN. */
void trainer_init(Trainer *trainer, Gan *gan, ImageSet images);
void trainer_free(Trainer *trainer);
IterationStats trainer_iteration(Trainer *trainer);
/* Estimated bytes of activations, gradients and saved values per iteration, from the layer
 * tables (the larger of the discriminator and the generator step). */
double trainer_activation_bytes_estimate(const Gan *gan);
