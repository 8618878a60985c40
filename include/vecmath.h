/* Elementwise float functions written so that GCC vectorizes loops that call them.
 *
 * libm's expf and erff are scalar calls that block vectorization; softmax and GELU call them
 * tens of millions of times per training step. These inline versions use only arithmetic,
 * comparisons and bit casts.
 */
#pragma once

#include <stdint.h>
#include <string.h>

/* e^x with a relative error below 2e-7 for x in [-87.3, 88.3]; 0 below that range,
 * clamped to e^88.3 above it, and NaN for NaN. */
static inline float vec_expf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;      /* ln 2 split so that n·ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723e-6f;
    const float round_magic = 12582912.0f;        /* 1.5·2^23: adding it rounds to an integer */
    /* Comparisons rather than fminf/fmaxf, which GCC calls through libm instead of
     * vectorizing. NaN becomes 0 here so that the integer conversion below stays defined;
     * the result is NaN again at the end. */
    float clamped = x < -87.33f ? -87.33f : (x > 88.3f ? 88.3f : x);
    clamped = clamped == clamped ? clamped : 0.0f;

    /* e^x = 2^n · e^r with n = round(x / ln 2) and |r| <= ln(2) / 2 */
    float n = (clamped * log2e + round_magic) - round_magic;
    float r = (clamped - n * ln2_hi) - n * ln2_lo;

    /* Taylor series of e^r to degree 7: the truncation error is below 1.2e-8 for |r| <= 0.347 */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;

    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float result = x < -87.33f ? 0.0f : p * scale;
    return x != x ? x : result;
}

/* erfc(x) for x >= 0, from the Chebyshev fit in Press et al., Numerical Recipes in C, 2nd ed.,
 * section 6.2 (fractional error below 1.2e-7 in exact arithmetic; about 1e-6 in float for
 * large x, where x² loses bits). */
static inline float vec_erfc_nonnegative(float x)
{
    float t = 1.0f / (1.0f + 0.5f * x);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * vec_expf(p - x * x);
}

/* Φ(x), the standard normal CDF, as 0.5·erfc(-x/√2) so that the lower tail keeps its relative
 * accuracy. */
static inline float vec_normal_cdf(float x)
{
    const float inv_sqrt2 = 0.70710678118654752f;
    float z = x * inv_sqrt2;
    float tail = 0.5f * vec_erfc_nonnegative(z < 0.0f ? -z : z);
    return z < 0.0f ? tail : 1.0f - tail;
}
