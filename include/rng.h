/* Counter-based random numbers (Philox4x32-10) and parameter initialisers.
 *
 * Value i of a fill depends only on (seed, stream, offset + i), never on the order in which
 * threads compute values, so results are the same for any thread count. A fill of n values
 * advances the offset by n. Separate streams give independent sequences from one seed.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef struct Rng {
    uint64_t seed;
    uint32_t stream;
    uint64_t offset;  /* counters consumed so far */
} Rng;

Rng rng_make(uint64_t seed, uint32_t stream);
/* Four 32-bit words for one counter value: the Philox4x32-10 block function. */
void rng_philox(uint64_t seed, uint32_t stream, uint64_t counter, uint32_t out[4]);

/* Uniform in [0, 1), 24 bits of precision. */
float rng_uniform(Rng *rng);
/* Uniform integer in [0, n), n > 0. */
uint32_t rng_below(Rng *rng, uint32_t n);
void rng_fill_uniform(Rng *rng, float *out, size_t n, float low, float high);
void rng_fill_normal(Rng *rng, float *out, size_t n, float mean, float std);
/* Normal(mean, std²) restricted to [low, high] by inverting the CDF. */
void rng_fill_trunc_normal(Rng *rng, float *out, size_t n, float mean, float std, float low, float high);

/* Inverse of the standard normal CDF for p in (0, 1), accurate to about 1e-15 relative. */
double rng_normal_quantile(double p);

/* Initialisers for parameters. */
void init_zeros(Tensor *t);
void init_ones(Tensor *t);
void init_normal(Tensor *t, Rng *rng, float mean, float std);
void init_trunc_normal(Tensor *t, Rng *rng, float mean, float std, float low, float high);
void init_uniform(Tensor *t, Rng *rng, float low, float high);
