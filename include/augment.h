/* DiffAugment: differentiable color, translation and cutout augmentations for GAN training. */
#pragma once

#include "config.h"
#include "rng.h"
#include "tape.h"

/* Applies the augmentations in `policy` (AUGMENT_* flags, applied in the order color,
 * translation, cutout) to images x (B, C, H, W), with per-image random values drawn from
 * `rng`. Gradients flow back to x. Returns x itself when policy is 0. */
Tensor *diffaugment(Tape *tape, Tensor *x, unsigned policy, Rng *rng);
