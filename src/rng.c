/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) and
 * the distributions built on it. */
#include "rng.h"

#include <math.h>
#include <string.h>

Rng rng_make(uint64_t seed, uint32_t stream)
{
    return (Rng){.seed = seed, .stream = stream, .offset = 0};
}

static inline void mul_hi_lo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t product = (uint64_t)a * b;
    *hi = (uint32_t)(product >> 32);
    *lo = (uint32_t)product;
}

void rng_philox(uint64_t seed, uint32_t stream, uint64_t counter, uint32_t out[4])
{
    uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), stream, 0};
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mul_hi_lo(0xD2511F53u, c[0], &hi0, &lo0);
        mul_hi_lo(0xCD9E8D57u, c[2], &hi1, &lo1);
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    memcpy(out, c, sizeof c);
}

static inline float uniform_from_word(uint32_t w)
{
    return (float)(w >> 8) * (1.0f / 16777216.0f);
}

/* Uniform in (0, 1] with 32 bits, for logarithms. */
static inline double open_uniform_from_word(uint32_t w)
{
    return ((double)w + 1.0) * (1.0 / 4294967296.0);
}

float rng_uniform(Rng *rng)
{
    uint32_t w[4];
    rng_philox(rng->seed, rng->stream, rng->offset++, w);
    return uniform_from_word(w[0]);
}

uint32_t rng_below(Rng *rng, uint32_t n)
{
    uint32_t w[4];
    rng_philox(rng->seed, rng->stream, rng->offset++, w);
    /* 64-bit words make the modulo bias below 2^-32 for any 32-bit n */
    uint64_t x = ((uint64_t)w[1] << 32) | w[0];
    return (uint32_t)(x % n);
}

void rng_fill_uniform(Rng *rng, float *out, size_t n, float low, float high)
{
    uint64_t base = rng->offset;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        rng_philox(rng->seed, rng->stream, base + i, w);
        out[i] = low + (high - low) * uniform_from_word(w[0]);
    }
    rng->offset += n;
}

void rng_fill_normal(Rng *rng, float *out, size_t n, float mean, float std)
{
    uint64_t base = rng->offset;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        rng_philox(rng->seed, rng->stream, base + i, w);
        /* Box-Muller on two 32-bit uniforms, in double */
        double radius = sqrt(-2.0 * log(open_uniform_from_word(w[0])));
        double angle = 2.0 * M_PI * ((double)w[1] * (1.0 / 4294967296.0));
        out[i] = mean + std * (float)(radius * cos(angle));
    }
    rng->offset += n;
}

/* Standard normal CDF in double. */
static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / M_SQRT2);
}

double rng_normal_quantile(double p)
{
    /* Rational approximation by P. J. Acklam (relative error below 1.15e-9), refined by one
     * Halley step on erfc. */
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double p_low = 0.02425;
    double x;
    if (p < p_low) {
        double q = sqrt(-2.0 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else if (p <= 1.0 - p_low) {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    } else {
        double q = sqrt(-2.0 * log(1.0 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    }
    double e = normal_cdf(x) - p;
    double u = e * sqrt(2.0 * M_PI) * exp(x * x / 2.0);
    return x - u / (1.0 + x * u / 2.0);
}

void rng_fill_trunc_normal(Rng *rng, float *out, size_t n, float mean, float std, float low, float high)
{
    double cdf_low = normal_cdf(((double)low - mean) / std);
    double cdf_high = normal_cdf(((double)high - mean) / std);
    uint64_t base = rng->offset;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        rng_philox(rng->seed, rng->stream, base + i, w);
        double u = ((double)w[0] + 0.5) * (1.0 / 4294967296.0);  /* strictly inside (0, 1) */
        double p = cdf_low + u * (cdf_high - cdf_low);
        double v = mean + std * rng_normal_quantile(p);
        out[i] = (float)(v < low ? low : (v > high ? high : v));
    }
    rng->offset += n;
}

void init_zeros(Tensor *t)
{
    memset(t->data, 0, t->numel * sizeof(float));
}

void init_ones(Tensor *t)
{
    for (size_t i = 0; i < t->numel; i++) t->data[i] = 1.0f;
}

void init_normal(Tensor *t, Rng *rng, float mean, float std)
{
    rng_fill_normal(rng, t->data, t->numel, mean, std);
}

void init_trunc_normal(Tensor *t, Rng *rng, float mean, float std, float low, float high)
{
    rng_fill_trunc_normal(rng, t->data, t->numel, mean, std, low, high);
}

void init_uniform(Tensor *t, Rng *rng, float low, float high)
{
    rng_fill_uniform(rng, t->data, t->numel, low, high);
}
