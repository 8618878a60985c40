/* FID statistics and the Fréchet distance against NumPy/SciPy (tests/gen_fid_fixtures.py) and
 * closed forms. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* rng.h comes first: tensor.h, which it includes, spells __attribute__((noreturn)), and the
 * noreturn macro of <stdnoreturn.h> (from util.h) would turn that into an ignored attribute. */
#include "rng.h"

#include "cli.h"
#include "fid_stats.h"
#include "npz.h"
#include "test.h"
#include "util.h"

/* One fixture case as written by tests/gen_fid_fixtures.py. */
typedef struct FidCase {
    int dim;
    int64_t count_a, count_b;
    float *features_a, *features_b;   /* (count, dim) */
    double *mu_a, *sigma_a, *mu_b, *sigma_b;
    double fid, fid_offset, sqrtm_retried;
} FidCase;

static double *take_array(NpyArray *a)
{
    double *data = a->data;
    a->data = NULL;
    return data;
}

static float *to_float(const NpyArray *a)
{
    float *out = mg_malloc(a->count * sizeof *out);
    for (size_t i = 0; i < a->count; i++) out[i] = (float)a->data[i];
    return out;
}

static bool load_case(const char *name, FidCase *c)
{
    memset(c, 0, sizeof *c);
    char *path = mg_format("tests/data/fid/%s.npz", name);
    NpzFile npz;
    char err[512];
    bool ok = npz_open(&npz, path, err, sizeof err);
    CHECK_MSG(ok, "%s", err);
    free(path);
    if (!ok) return false;

    const char *keys[] = {"features_a", "features_b", "mu_a", "sigma_a", "mu_b", "sigma_b", "fid", "fid_offset", "sqrtm_retried"};
    NpyArray arrays[MG_ARRAY_LEN(keys)];
    for (size_t k = 0; k < MG_ARRAY_LEN(keys); k++) {
        bool read = npz_read_array(&npz, keys[k], &arrays[k], err, sizeof err);
        CHECK_MSG(read, "%s", err);
        ok = ok && read;
    }
    npz_close(&npz);
    if (!ok) return false;

    c->dim = (int)arrays[0].shape[1];
    c->count_a = arrays[0].shape[0];
    c->count_b = arrays[1].shape[0];
    c->features_a = to_float(&arrays[0]);
    c->features_b = to_float(&arrays[1]);
    c->mu_a = take_array(&arrays[2]);
    c->sigma_a = take_array(&arrays[3]);
    c->mu_b = take_array(&arrays[4]);
    c->sigma_b = take_array(&arrays[5]);
    c->fid = arrays[6].data[0];
    c->fid_offset = arrays[7].data[0];
    c->sqrtm_retried = arrays[8].data[0];
    for (size_t k = 0; k < MG_ARRAY_LEN(keys); k++) npy_array_free(&arrays[k]);
    return true;
}

static void free_case(FidCase *c)
{
    free(c->features_a);
    free(c->features_b);
    free(c->mu_a);
    free(c->sigma_a);
    free(c->mu_b);
    free(c->sigma_b);
}

static const char *const CASES[] = {"well_conditioned", "relu_features", "singular", "both_singular", "collapsed", "offset_mean"};

/* Largest |a - b| over n values. */
static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst;
}

static double max_abs(const double *a, size_t n)
{
    double largest = 0.0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(a[i]));
    return largest;
}

/* Runs the accumulator over `count` rows, adding them in batches of `batch` rows. */
static bool compute_stats(const float *features, int64_t count, int dim, int64_t batch, double *mu, double *sigma)
{
    FidStats stats;
    char err[512];
    fid_stats_init(&stats, dim);
    bool ok = true;
    for (int64_t at = 0; at < count && ok; at += batch) {
        int64_t rows = count - at < batch ? count - at : batch;
        ok = fid_stats_add(&stats, features + at * dim, rows, err, sizeof err);
    }
    ok = ok && fid_stats_finish(&stats, mu, sigma, err, sizeof err);
    CHECK_MSG(ok, "%s", err);
    fid_stats_free(&stats);
    return ok;
}

TEST(fid_stats_match_numpy_cov)
{
    for (size_t k = 0; k < MG_ARRAY_LEN(CASES); k++) {
        FidCase c;
        if (!load_case(CASES[k], &c)) continue;
        size_t d = (size_t)c.dim;
        double *mu = mg_malloc(d * sizeof *mu), *sigma = mg_malloc(d * d * sizeof *sigma);
        for (int set = 0; set < 2; set++) {
            const float *features = set ? c.features_b : c.features_a;
            const double *mu_ref = set ? c.mu_b : c.mu_a, *sigma_ref = set ? c.sigma_b : c.sigma_a;
            if (!compute_stats(features, set ? c.count_b : c.count_a, c.dim, 37, mu, sigma)) continue;
            /* Both sides compute in float64 from the same float32 features; the tolerances allow
             * for different summation orders, relative to the values' magnitudes. */
            double mu_error = max_abs_diff(mu, mu_ref, d), sigma_error = max_abs_diff(sigma, sigma_ref, d * d);
            double mu_scale = fmax(max_abs(mu_ref, d), 1e-300), sigma_scale = fmax(max_abs(sigma_ref, d * d), 1e-300);
            CHECK_MSG(mu_error <= 1e-13 * mu_scale, "%s set %d: mu differs by %g (scale %g)", CASES[k], set, mu_error, mu_scale);
            CHECK_MSG(sigma_error <= 1e-11 * sigma_scale, "%s set %d: sigma differs by %g (scale %g)", CASES[k], set,
                      sigma_error, sigma_scale);
        }
        free(mu);
        free(sigma);
        free_case(&c);
    }
}

/* Features with mean 1000 and spread 0.01: a single-pass sum of squares would lose about
 * 10 digits to cancellation, the shifted accumulation must not. */
TEST(fid_stats_survive_large_mean)
{
    FidCase c;
    if (!load_case("offset_mean", &c)) return;
    size_t d = (size_t)c.dim;
    double *mu = mg_malloc(d * sizeof *mu), *sigma = mg_malloc(d * d * sizeof *sigma);
    if (compute_stats(c.features_a, c.count_a, c.dim, 300, mu, sigma)) {
        double error = max_abs_diff(sigma, c.sigma_a, d * d), scale = max_abs(c.sigma_a, d * d);
        CHECK_MSG(error <= 1e-9 * scale, "sigma differs by %g, %g of its scale", error, error / scale);
    }
    free(mu);
    free(sigma);
    free_case(&c);
}

/* Rows are samples: for the rows (1, 2), (3, 5), (5, 11) the means are 3 and 6, and
 * deviations (-2, 0, 2) and (-4, -1, 5) give variances 8/2 and 42/2 and covariance 18/2. */
TEST(fid_stats_hand_example)
{
    const float features[6] = {1, 2, 3, 5, 5, 11};
    double mu[2], sigma[4];
    if (!compute_stats(features, 3, 2, 3, mu, sigma)) return;
    CHECK_NEAR(mu[0], 3.0, 1e-15);
    CHECK_NEAR(mu[1], 6.0, 1e-15);
    CHECK_NEAR(sigma[0], 4.0, 1e-14);
    CHECK_NEAR(sigma[1], 9.0, 1e-14);
    CHECK_NEAR(sigma[2], 9.0, 1e-14);
    CHECK_NEAR(sigma[3], 21.0, 1e-14);
}

/* The rows are buffered into fixed blocks, so any batching of the same rows and any thread
 * count give bit-identical statistics. */
TEST(fid_stats_deterministic)
{
    enum { COUNT = 1000, DIM = 200 };
    float *features = mg_malloc(COUNT * DIM * sizeof *features);
    Rng rng = rng_make(7, 0);
    rng_fill_normal(&rng, features, COUNT * DIM, 0.5f, 2.0f);
    size_t d = DIM;
    double *mu_ref = mg_malloc(d * sizeof(double)), *sigma_ref = mg_malloc(d * d * sizeof(double));
    double *mu = mg_malloc(d * sizeof(double)), *sigma = mg_malloc(d * d * sizeof(double));

    cli_setup_threads(1);
    compute_stats(features, COUNT, DIM, COUNT, mu_ref, sigma_ref);
    static const int64_t batches[] = {1, 7, 256, 300, 999};
    for (size_t b = 0; b < MG_ARRAY_LEN(batches); b++) {
        compute_stats(features, COUNT, DIM, batches[b], mu, sigma);
        CHECK_MSG(memcmp(mu, mu_ref, d * sizeof(double)) == 0, "batches of %lld change mu", (long long)batches[b]);
        CHECK_MSG(memcmp(sigma, sigma_ref, d * d * sizeof(double)) == 0, "batches of %lld change sigma", (long long)batches[b]);
    }
    static const int threads[] = {2, 3, 4};
    for (size_t t = 0; t < MG_ARRAY_LEN(threads); t++) {
        cli_setup_threads(threads[t]);
        compute_stats(features, COUNT, DIM, 50, mu, sigma);
        CHECK_MSG(memcmp(mu, mu_ref, d * sizeof(double)) == 0, "%d threads change mu", threads[t]);
        CHECK_MSG(memcmp(sigma, sigma_ref, d * d * sizeof(double)) == 0, "%d threads change sigma", threads[t]);
    }
    cli_setup_threads(0);
    free(features);
    free(mu_ref);
    free(sigma_ref);
    free(mu);
    free(sigma);
}

TEST(fid_stats_reject_bad_input)
{
    FidStats stats;
    char err[512];
    double mu[3], sigma[9];
    fid_stats_init(&stats, 3);
    const float one_row[3] = {1, 2, 3};
    CHECK(fid_stats_add(&stats, one_row, 1, err, sizeof err));
    CHECK(!fid_stats_finish(&stats, mu, sigma, err, sizeof err));
    CHECK_STR_CONTAINS(err, "FID statistics need at least 2 images, got 1");
    const float bad_rows[6] = {1, 2, 3, 4, NAN, 6};
    CHECK(!fid_stats_add(&stats, bad_rows, 2, err, sizeof err));
    CHECK_STR_CONTAINS(err, "feature vector 2 has nan in column 1; features must be finite");
    fid_stats_free(&stats);
}

TEST(frechet_matches_scipy)
{
    for (size_t k = 0; k < MG_ARRAY_LEN(CASES); k++) {
        FidCase c;
        if (!load_case(CASES[k], &c)) continue;
        CHECK_MSG(c.sqrtm_retried == 0.0, "%s: the fixture took pytorch-fid's offset retry; the test expects none", CASES[k]);
        FidOptions options = {.count1 = c.count_a, .count2 = c.count_b, .quiet = true};
        FidDistanceInfo info;
        char err[512];
        double fid = fid_frechet_distance(c.mu_a, c.sigma_a, c.mu_b, c.sigma_b, c.dim, &options, &info, err, sizeof err);
        CHECK_MSG(isfinite(fid), "%s: %s", CASES[k], err);
        CHECK_MSG(fabs(fid - c.fid) <= 1e-3, "%s: FID %.9f, pytorch-fid %.9f", CASES[k], fid, c.fid);
        CHECK(!info.offset_applied);
        CHECK(info.few_images1);
        CHECK(info.few_images2);

        options.offset_mode = FID_OFFSET_ALWAYS;
        double with_offset = fid_frechet_distance(c.mu_a, c.sigma_a, c.mu_b, c.sigma_b, c.dim, &options, &info, err, sizeof err);
        CHECK_MSG(fabs(with_offset - c.fid_offset) <= 1e-3, "%s: FID with offset %.9f, pytorch-fid %.9f", CASES[k],
                  with_offset, c.fid_offset);
        CHECK(info.offset_applied);
        free_case(&c);
    }
}

TEST(frechet_reports_singular_covariance)
{
    static const struct {
        const char *name;
        int rank_a, rank_b;
    } cases[] = {
        {"well_conditioned", 64, 64},
        {"singular", 39, 64},
        {"both_singular", 29, 29},
        {"collapsed", 32, 0},
    };
    for (size_t k = 0; k < MG_ARRAY_LEN(cases); k++) {
        FidCase c;
        if (!load_case(cases[k].name, &c)) continue;
        FidOptions options = {.quiet = true};
        FidDistanceInfo info;
        char err[512];
        double fid = fid_frechet_distance(c.mu_a, c.sigma_a, c.mu_b, c.sigma_b, c.dim, &options, &info, err, sizeof err);
        CHECK_MSG(isfinite(fid), "%s: %s", cases[k].name, err);
        CHECK_MSG(info.rank1 == cases[k].rank_a, "%s: rank of sigma_a %d, expected %d", cases[k].name, info.rank1, cases[k].rank_a);
        CHECK_MSG(info.rank2 == cases[k].rank_b, "%s: rank of sigma_b %d, expected %d", cases[k].name, info.rank2, cases[k].rank_b);
        CHECK(!info.not_semidefinite1);
        CHECK(!info.not_semidefinite2);
        CHECK(!info.few_images1); /* counts unknown */
        free_case(&c);
    }
}

/* A random symmetric positive definite matrix x xᵀ / n + shift·I with x (n, n) standard normal,
 * so its eigenvalues lie in about [shift, shift + 4]. */
static double *random_spd(int n, uint64_t seed, double shift)
{
    size_t d = (size_t)n;
    float *noise = mg_malloc(d * d * sizeof *noise);
    Rng rng = rng_make(seed, 0);
    rng_fill_normal(&rng, noise, d * d, 0.0f, 1.0f);
    double *x = mg_malloc(d * d * sizeof *x), *spd = mg_malloc(d * d * sizeof *spd);
    for (size_t i = 0; i < d * d; i++) x[i] = noise[i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, n, 1.0 / n, x, n, 0.0, spd, n);
    for (size_t i = 0; i < d; i++) {
        spd[i * d + i] += shift;
        for (size_t j = 0; j < i; j++) spd[i * d + j] = spd[j * d + i];
    }
    free(noise);
    free(x);
    return spd;
}

/* With sigma2 = sigma1, Tr √(sigma1²) = Tr sigma1, so the distance is ‖mu1 − mu2‖². */
TEST(frechet_equal_covariances)
{
    enum { DIM = 300 };
    double *sigma = random_spd(DIM, 11, 0.01);
    double mu1[DIM], mu2[DIM], expected = 0.0;
    for (int i = 0; i < DIM; i++) {
        mu1[i] = 0.01 * i;
        mu2[i] = 0.01 * i + (i % 3 == 0 ? 0.5 : 0.0);
        expected += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    FidOptions options = {.quiet = true};
    FidDistanceInfo info;
    char err[512];
    double fid = fid_frechet_distance(mu1, sigma, mu2, sigma, DIM, &options, &info, err, sizeof err);
    CHECK_NEAR(fid, expected, 1e-9 * info.trace1);
    CHECK_NEAR(info.trace_sqrt, info.trace1, 1e-10 * info.trace1);
    CHECK_INT_EQ(info.rank1, DIM);
    free(sigma);
}

/* For diagonal covariances Tr √(sigma1 sigma2) = Σ √(a_i b_i), including zero variances. */
TEST(frechet_diagonal_closed_form)
{
    enum { DIM = 50 };
    double *sigma1 = mg_calloc(DIM * DIM, sizeof(double)), *sigma2 = mg_calloc(DIM * DIM, sizeof(double));
    double mu[DIM] = {0}, expected = 0.0;
    for (int i = 0; i < DIM; i++) {
        double a = i % 7 == 0 ? 0.0 : 0.5 + i, b = 2.0 + 0.1 * i;
        sigma1[i * DIM + i] = a;
        sigma2[i * DIM + i] = b;
        expected += a + b - 2.0 * sqrt(a * b);
    }
    FidOptions options = {.quiet = true};
    FidDistanceInfo info;
    char err[512];
    double fid = fid_frechet_distance(mu, sigma1, mu, sigma2, DIM, &options, &info, err, sizeof err);
    CHECK_NEAR(fid, expected, 1e-10 * info.trace1);
    CHECK_INT_EQ(info.rank1, DIM - 8);
    CHECK_INT_EQ(info.rank2, DIM);
    free(sigma1);
    free(sigma2);
}

TEST(frechet_symmetric_in_arguments)
{
    enum { DIM = 120 };
    double *sigma1 = random_spd(DIM, 21, 0.001), *sigma2 = random_spd(DIM, 22, 0.5);
    double mu1[DIM], mu2[DIM];
    for (int i = 0; i < DIM; i++) {
        mu1[i] = sin(i);
        mu2[i] = cos(i);
    }
    FidOptions options = {.quiet = true};
    char err[512];
    double forward = fid_frechet_distance(mu1, sigma1, mu2, sigma2, DIM, &options, NULL, err, sizeof err);
    double backward = fid_frechet_distance(mu2, sigma2, mu1, sigma1, DIM, &options, NULL, err, sizeof err);
    CHECK(isfinite(forward));
    CHECK_NEAR(forward, backward, 1e-9 * forward);
    free(sigma1);
    free(sigma2);
}

TEST(frechet_rejects_invalid_statistics)
{
    enum { DIM = 3 };
    double mu[DIM] = {0, 1, 2}, identity[DIM * DIM] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    double asymmetric[DIM * DIM] = {1, 0.5, 0, 0.4, 1, 0, 0, 0, 1}, with_nan[DIM * DIM] = {1, 0, 0, 0, NAN, 0, 0, 0, 1};
    double mu_inf[DIM] = {0, INFINITY, 0};
    FidOptions options = {.label1 = "real.npz", .label2 = "fake.npz", .quiet = true};
    char err[512];

    CHECK(isnan(fid_frechet_distance(mu, identity, mu, asymmetric, DIM, &options, NULL, err, sizeof err)));
    CHECK_STR_CONTAINS(err, "fake.npz: sigma is not symmetric: sigma[0, 1] = 0.5 but sigma[1, 0] = 0.40000000000000002");
    CHECK(isnan(fid_frechet_distance(mu, with_nan, mu, identity, DIM, &options, NULL, err, sizeof err)));
    CHECK_STR_CONTAINS(err, "real.npz: sigma[1, 1] is nan; statistics must be finite");
    CHECK(isnan(fid_frechet_distance(mu_inf, identity, mu, identity, DIM, &options, NULL, err, sizeof err)));
    CHECK_STR_CONTAINS(err, "real.npz: mu[1] is inf");
    CHECK(isnan(fid_frechet_distance(mu, identity, mu, identity, 0, &options, NULL, err, sizeof err)));
    CHECK_STR_CONTAINS(err, "feature dimension 0 is out of range");
}

/* A covariance rounded to float32, as some tools store it, has slightly negative eigenvalues:
 * they are flagged and treated as zero rather than producing a NaN. */
TEST(frechet_flags_indefinite_covariance)
{
    enum { DIM = 3 };
    double mu[DIM] = {0, 0, 0};
    /* Eigenvalues 2, 1 and -1e-4. */
    double indefinite[DIM * DIM] = {2, 0, 0, 0, 1, 0, 0, 0, -1e-4}, identity[DIM * DIM] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    FidOptions options = {.quiet = true};
    FidDistanceInfo info;
    char err[512];
    double fid = fid_frechet_distance(mu, indefinite, mu, identity, DIM, &options, &info, err, sizeof err);
    CHECK(info.not_semidefinite1);
    CHECK(!info.not_semidefinite2);
    CHECK_NEAR(info.min_eigenvalue1, -1e-4, 1e-15);
    CHECK_NEAR(fid, (2 + 1 - 1e-4) + 3 - 2 * (sqrt(2.0) + 1.0), 1e-12);
}

/* Runs fid_frechet_distance with warnings on and returns what it printed to stderr. */
static char *capture_warnings(const FidCase *c, const FidOptions *options)
{
    char *path = mg_format("%s/stderr.txt", test_temp_dir());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *capture = fopen(path, "w");
    if (!capture || saved < 0) return mg_strdup("");
    dup2(fileno(capture), STDERR_FILENO);
    char err[512];
    fid_frechet_distance(c->mu_a, c->sigma_a, c->mu_b, c->sigma_b, c->dim, options, NULL, err, sizeof err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(capture);
    char *text = mg_read_file(path, NULL);
    free(path);
    return text ? text : mg_strdup("");
}

TEST(frechet_prints_warnings)
{
    FidCase c;
    if (!load_case("singular", &c)) return;
    FidOptions options = {.count1 = c.count_a, .count2 = 5000, .label1 = "fake", .label2 = "real"};
    char *text = capture_warnings(&c, &options);
    CHECK_STR_CONTAINS(text, "mixgan: warning: fake: 40 images, fewer than the 2048 recommended");
    CHECK_STR_CONTAINS(text, "mixgan: warning: fake: the covariance is singular (rank 39 of 64)");
    CHECK(strstr(text, "real:") == NULL);
    free(text);

    options.quiet = true;
    text = capture_warnings(&c, &options);
    CHECK_MSG(text[0] == '\0', "quiet run printed \"%s\"", text);
    free(text);
    free_case(&c);
}

/* A large dimension: with sigma2 = sigma1 the distance is ‖mu1 − mu2‖². bench/bench_frechet.c
 * times the full pool3 size, D = 2048, which would add seconds to every test run. */
TEST(frechet_large_dimension)
{
    enum { DIM = 1024 };
    double *sigma = random_spd(DIM, 31, 1e-3);
    double *mu1 = mg_calloc(DIM, sizeof(double)), *mu2 = mg_calloc(DIM, sizeof(double));
    for (int i = 0; i < DIM; i += 5) mu2[i] = 0.1;
    FidOptions options = {.quiet = true};
    FidDistanceInfo info;
    char err[512];
    double fid = fid_frechet_distance(mu1, sigma, mu2, sigma, DIM, &options, &info, err, sizeof err);
    CHECK_MSG(isfinite(fid), "%s", err);
    CHECK_NEAR(fid, 205 * 0.01, 1e-8 * info.trace1);
    CHECK_INT_EQ(info.rank1, DIM);
    free(sigma);
    free(mu1);
    free(mu2);
}
