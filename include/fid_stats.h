/* FID statistics and the Fréchet distance between two Gaussians, in float64.
 *
 * Statistics are what pytorch-fid computes from Inception features: the mean mu (D) and the
 * covariance sigma (D, D) with divisor N - 1, rows being images (np.cov(features,
 * rowvar=False)). The Fréchet distance is
 *     d² = ‖mu1 − mu2‖² + Tr(sigma1) + Tr(sigma2) − 2 Tr √(sigma1 sigma2),
 * pytorch-fid's FID. Tr √(sigma1 sigma2) comes from symmetric eigendecompositions (LAPACK
 * dsyevd) instead of scipy.linalg.sqrtm: with sigma1 = V diag(λ) Vᵀ and A = diag(√λ) Vᵀ, the
 * matrix A sigma2 Aᵀ is symmetric positive semidefinite with the eigenvalues of sigma1 sigma2,
 * so the trace is the sum of the square roots of its eigenvalues.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rows buffered before they are accumulated, so results do not depend on how the caller
 * splits the rows into batches. */
enum { FID_STATS_BLOCK_ROWS = 256 };
/* The README of TTUR, the reference FID implementation, says that the number of images should
 * exceed the feature dimension (2048 for pool3), or the covariance is not full rank. It
 * recommends at least 10,000, since the FID of fewer images is biased. */
enum { FID_RECOMMENDED_MIN_IMAGES = 2048 };
/* The largest feature dimension fid_frechet_distance accepts, so LAPACK's 32-bit workspace
 * sizes (about 2·D² doubles) cannot overflow. */
enum { FID_MAX_DIM = 16384 };
/* The diagonal offset pytorch-fid adds to both covariances when its square root fails. */
#define FID_OFFSET_EPSILON 1e-6

/* Running mean and covariance of feature vectors.
 *
 * Rows are accumulated in blocks of FID_STATS_BLOCK_ROWS after subtracting a shift, the mean of
 * the first block, which keeps the sum of products from cancelling catastrophically when the
 * features' mean is large against their spread. The block products run through OpenBLAS
 * dsyrk. */
typedef struct FidStats {
    int dim;             /* D */
    int64_t count;       /* rows added */
    double *shift;       /* (D) mean of the first block */
    double *sum;         /* (D) sum of (x − shift) over accumulated rows */
    double *gram;        /* (D, D) upper triangle of the sum of (x − shift)(x − shift)ᵀ */
    double *block;       /* (FID_STATS_BLOCK_ROWS, D) rows not yet accumulated */
    int block_rows;
    bool shift_ready;
    bool finished;
} FidStats;

void fid_stats_init(FidStats *stats, int dim);
void fid_stats_free(FidStats *stats);
/* Adds `rows` feature vectors (rows, D) in row-major order. Rejects non-finite values with a
 * message naming the row (counted over all rows added) and column. */
bool fid_stats_add(FidStats *stats, const float *features, int64_t rows, char *err, size_t err_size);
/* Writes mu (D) and sigma (D, D). Needs at least 2 rows. No rows may be added afterwards. */
bool fid_stats_finish(FidStats *stats, double *mu, double *sigma, char *err, size_t err_size);

typedef enum FidOffsetMode {
    /* Add FID_OFFSET_EPSILON·I to both covariances only when the eigensolver fails to converge
     * on the original matrices, mirroring pytorch-fid's retry when sqrtm returns non-finite
     * values. */
    FID_OFFSET_ON_FAILURE,
    /* Always add it, which reproduces the number pytorch-fid prints after its warning
     * "fid calculation produces singular product". */
    FID_OFFSET_ALWAYS,
} FidOffsetMode;

typedef struct FidOptions {
    int64_t count1, count2;      /* images behind each statistic, or 0 when unknown */
    const char *label1, *label2; /* names used in warnings, e.g. the input paths */
    FidOffsetMode offset_mode;
    bool quiet;                  /* report warnings only through FidDistanceInfo */
} FidOptions;

/* Everything fid_frechet_distance found, including the conditions it warns about. */
typedef struct FidDistanceInfo {
    double distance;
    double mean_term;           /* ‖mu1 − mu2‖² */
    double trace1, trace2;      /* Tr sigma1, Tr sigma2 */
    double trace_sqrt;          /* Tr √((sigma1 + e·I)(sigma2 + e·I)), e = 0 unless offset_applied */
    int rank1, rank2;           /* numerical ranks: eigenvalues above λmax·D·DBL_EPSILON, as numpy's matrix_rank */
    double min_eigenvalue1, min_eigenvalue2;
    double max_eigenvalue1, max_eigenvalue2;
    bool offset_applied;
    bool few_images1, few_images2;   /* count below FID_RECOMMENDED_MIN_IMAGES */
    bool not_semidefinite1, not_semidefinite2; /* negative eigenvalues beyond rounding */
} FidDistanceInfo;

/* Computes the Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), all float64 with
 * sigma (dim, dim) row-major. options and info may be NULL. Unless options->quiet, prints a
 * warning (mg_warn) for few images, singular or indefinite covariances and an applied offset.
 * Returns NAN with a message in err for invalid input (non-finite values, a covariance that is
 * not symmetric) or when the eigensolver fails even with the offset.
 *
 * Singular covariances (fewer images than dimensions, a collapsed generator) need no offset:
 * the eigen route computes the exact trace for them. On such inputs scipy's sqrtm usually
 * stays finite too, and pytorch-fid's result equals ours within 1e-3 on the test fixtures.
 * NOTE: where sqrtm does return non-finite values, pytorch-fid adds the offset and its number
 * then differs from ours by about 2·Σ√(1e-6·λ) over the null directions; FID_OFFSET_ALWAYS
 * reproduces that number. */
double fid_frechet_distance(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int dim,
                            const FidOptions *options, FidDistanceInfo *info, char *err, size_t err_size);
