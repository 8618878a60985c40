/* Times training iterations of one config: median milliseconds per iteration, achieved
 * GFLOP/s and peak RSS. Run by `make bench` (bench/run.sh) once per config, in its own
 * process so that peak RSS is per config.
 *
 * usage: bench-train CONFIG [ITERATIONS] [THREADS]
 *
 * Real images are random pixels: the timing does not depend on their content. An iteration
 * includes fetching the batch, augmentation and the EMA update. FLOPs per iteration count
 * the products of linear, conv and attention layers: the discriminator step runs G forward
 * once and D forward and backward on two batches, the generator step G forward and
 * backward and D forward and input-gradient backward, so B·(4·G + 8·D) with backward
 * counted as twice the forward.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "trainer.h"
#include "util.h"

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-train CONFIG [ITERATIONS] [THREADS]\n");
        return 2;
    }
    int iterations = argc > 2 ? atoi(argv[2]) : 20;
    int threads = cli_setup_threads(argc > 3 ? atoi(argv[3]) : 0);
    ModelConfig config;
    config_load(argv[1], &config);
    Gan gan;
    gan_build(&gan, &config);
    gan_init_weights(&gan);
    const ModelConfig *c = &gan.config;

    uint32_t count = 1024;
    size_t image_bytes = (size_t)c->channels * c->image_size * c->image_size;
    uint8_t *pixels = mg_malloc(count * image_bytes);
    Rng rng = rng_make(7, 0);
    for (size_t i = 0; i < count * image_bytes; i++) pixels[i] = (uint8_t)rng_below(&rng, 256);
    ImageSet images = {pixels, count, (uint32_t)c->image_size, (uint32_t)c->image_size, (uint32_t)c->channels};

    Trainer trainer;
    trainer_init(&trainer, &gan, images);
    double *ms = mg_malloc((size_t)iterations * sizeof *ms);
    for (int i = -2; i < iterations; i++) {
        double start = mg_now();
        IterationStats stats = trainer_iteration(&trainer);
        if (!stats.finite) mg_fatal("loss became NaN or infinite at iteration %d", i);
        if (i >= 0) ms[i] = (mg_now() - start) * 1e3;
    }
    qsort(ms, (size_t)iterations, sizeof *ms, compare_doubles);
    double median = ms[iterations / 2];
    double flops = c->training.batch_size *
                   (4.0 * network_flops(&gan.generator) + 8.0 * network_flops(&gan.discriminator));
    printf("%-10s batch %d, %d threads: %8.1f ms/iteration (median of %d), %6.1f GFLOP/s, peak RSS %.2f GB (mixgan)\n",
           c->name, c->training.batch_size, threads, median, iterations, flops / (median * 1e-3) / 1e9,
           (double)mg_peak_rss_bytes() / 1e9);
    printf("RESULT config=%s ms=%.1f rss_gb=%.3f batch=%d threads=%d gflops=%.1f\n", c->name, median,
           (double)mg_peak_rss_bytes() / 1e9, c->training.batch_size, threads, flops / (median * 1e-3) / 1e9);
    trainer_free(&trainer);
    gan_free(&gan);
    free(pixels);
    free(ms);
    return 0;
}
