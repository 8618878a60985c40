/* Times fid_frechet_distance at pool3 size (D = 2048) on random inputs, and the accumulation of
 * statistics from features.
 *
 * `make bench` runs it; by hand: build/release/bench-frechet [THREADS [RUNS]]
 * (defaults: 2 threads, 3 runs). The last line gives the median of the full-rank case.
 *
 * Cases: two full-rank covariances from 10,000 random feature vectors each, and a singular one
 * from 500 vectors (fewer images than dimensions) against a full-rank one.
 */
#include <stdio.h>
#include <stdlib.h>

/* rng.h comes before the headers that include <stdnoreturn.h>, whose noreturn macro would
 * break the __attribute__((noreturn)) in tensor.h. */
#include "rng.h"

#include "cli.h"
#include "fid_stats.h"
#include "util.h"

enum { DIM = 2048 };

/* Fills mu and sigma with the statistics of `count` random vectors: rectified correlated
 * Gaussians, like Inception pool3 features. Returns the accumulation time in seconds. */
static double make_statistics(int64_t count, uint64_t seed, double *mu, double *sigma)
{
    enum { BATCH = 500 };
    float *batch = mg_malloc((size_t)BATCH * DIM * sizeof *batch);
    Rng rng = rng_make(seed, 0);
    FidStats stats;
    char err[512];
    fid_stats_init(&stats, DIM);
    double seconds = 0.0;
    for (int64_t done = 0; done < count; done += BATCH) {
        int64_t rows = count - done < BATCH ? count - done : BATCH;
        rng_fill_normal(&rng, batch, (size_t)rows * DIM, 0.2f, 1.0f);
        /* correlate neighbouring dimensions, then rectify */
        for (int64_t r = 0; r < rows; r++) {
            float *x = batch + r * DIM;
            for (int j = DIM - 1; j > 0; j--) x[j] = x[j] > -x[j - 1] ? 0.5f * (x[j] + x[j - 1]) : 0.0f;
            x[0] = x[0] > 0.0f ? x[0] : 0.0f;
        }
        double start = mg_now();
        if (!fid_stats_add(&stats, batch, rows, err, sizeof err)) mg_fatal("%s", err);
        seconds += mg_now() - start;
    }
    double start = mg_now();
    if (!fid_stats_finish(&stats, mu, sigma, err, sizeof err)) mg_fatal("%s", err);
    seconds += mg_now() - start;
    fid_stats_free(&stats);
    free(batch);
    return seconds;
}

/* Prints the runs and returns the median time in seconds. */
static double time_distance(const char *name, const double *mu1, const double *sigma1, const double *mu2,
                          const double *sigma2, int runs)
{
    FidOptions options = {.quiet = true};
    char err[512];
    printf("%s:", name);
    double best = 1e30, times[16];
    if (runs > 16) runs = 16;
    for (int r = 0; r < runs; r++) {
        FidDistanceInfo info;
        double start = mg_now();
        double d = fid_frechet_distance(mu1, sigma1, mu2, sigma2, DIM, &options, &info, err, sizeof err);
        double seconds = mg_now() - start;
        if (d != d) mg_fatal("%s", err);
        if (seconds < best) best = seconds;
        times[r] = seconds;
        printf(" %.2f s", seconds);
        if (r == runs - 1) printf("  (best %.2f s, FID %.4f, ranks %d and %d)\n", best, d, info.rank1, info.rank2);
    }
    for (int i = 1; i < runs; i++) {
        for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
            double t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    }
    return times[runs / 2];
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (threads < 1 || runs < 1) mg_fatal("usage: bench-frechet [THREADS [RUNS]]");
    threads = cli_setup_threads(threads);
    printf("fid_frechet_distance at D = %d on %d threads\n", DIM, threads);

    size_t d = DIM;
    double *mu1 = mg_malloc(d * sizeof(double)), *mu2 = mg_malloc(d * sizeof(double));
    double *mu3 = mg_malloc(d * sizeof(double));
    double *sigma1 = mg_malloc(d * d * sizeof(double)), *sigma2 = mg_malloc(d * d * sizeof(double));
    double *sigma3 = mg_malloc(d * d * sizeof(double));
    double seconds = make_statistics(10000, 1, mu1, sigma1);
    printf("statistics of 10,000 vectors: %.2f s\n", seconds);
    make_statistics(10000, 2, mu2, sigma2);
    make_statistics(500, 3, mu3, sigma3);

    double median = time_distance("full rank vs full rank", mu1, sigma1, mu2, sigma2, runs);
    time_distance("500 images vs full rank", mu3, sigma3, mu2, sigma2, runs);
    printf("RESULT frechet_seconds=%.3f threads=%d\n", median, threads);
    free(mu1);
    free(mu2);
    free(mu3);
    free(sigma1);
    free(sigma2);
    free(sigma3);
    return 0;
}
