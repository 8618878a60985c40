/* Times the FID InceptionV3 at batch 50 on 32×32 images, including pytorch-fid's input
 * preparation (/255, bilinear resize to 299×299, 2x − 1), as bench/torch_fid.py times
 * PyTorch. Weights are random: the speed of the network does not depend on them.
 *
 * usage: bench-fid [BATCHES] [THREADS]     (defaults: 6 batches after one warm-up, all cores)
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "inception.h"
#include "rng.h"
#include "util.h"

enum { BATCH = 50, SIZE = 32 };

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int batches = argc > 1 ? atoi(argv[1]) : 6;
    int threads = cli_setup_threads(argc > 2 ? atoi(argv[2]) : 0);
    Inception net;
    inception_init_random(&net, 1);

    uint8_t *pixels = mg_malloc((size_t)BATCH * SIZE * SIZE * 3);
    Rng rng = rng_make(2, 0);
    for (size_t i = 0; i < (size_t)BATCH * SIZE * SIZE * 3; i++) pixels[i] = (uint8_t)rng_below(&rng, 256);
    float *features = mg_malloc((size_t)BATCH * INCEPTION_FEATURES * sizeof(float));
    double *seconds = mg_malloc((size_t)batches * sizeof *seconds);

    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    for (int b = -1; b < batches; b++) {
        double start = mg_now();
        Tensor *x = tensor_empty(&tape, shape4(BATCH, 3, INCEPTION_SIZE, INCEPTION_SIZE));
        size_t image = (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE;
        for (int i = 0; i < BATCH; i++)
            inception_prepare_image(&tape, pixels + (size_t)i * SIZE * SIZE * 3, SIZE, SIZE, x->data + i * image);
        inception_forward(&net, &tape, x, features);
        tape_reset(&tape);
        if (b >= 0) seconds[b] = mg_now() - start;
    }
    qsort(seconds, (size_t)batches, sizeof *seconds, compare_doubles);
    double median = seconds[batches / 2];
    printf("inception  batch %d, %d threads: %.2f images/s (median of %d batches), peak RSS %.2f GB (mixgan)\n", BATCH,
           threads, BATCH / median, batches, (double)mg_peak_rss_bytes() / 1e9);
    printf("RESULT inception_images_per_second=%.3f rss_gb=%.3f batch=%d threads=%d\n", BATCH / median,
           (double)mg_peak_rss_bytes() / 1e9, BATCH, threads);
    tape_free(&tape);
    inception_free(&net);
    free(pixels);
    free(features);
    free(seconds);
    return 0;
}
