/* mixgan sample: generates images from a training checkpoint and writes them as PNG. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "gan.h"
#include "image.h"
#include "util.h"

enum { GRID_MAX_IMAGES = 64, GRID_COLUMNS = 8, SAMPLE_BATCH = 64 };

static void print_usage(void)
{
    printf("usage: mixgan sample --checkpoint FILE [options]\n\n"
           "Generates images with the generator of a training checkpoint (its EMA weights when the run\n"
           "kept an EMA) and writes them as PNG files, quantised as round((x + 1) * 127.5) clamped to\n"
           "0..255. The same checkpoint and seed give the same images.\n\n"
           "  --checkpoint FILE  checkpoint written by 'mixgan train'\n"
           "  --num N            number of images (default 64)\n"
           "  --out DIR          write sample_NNNNNN.png files into DIR (default: samples)\n"
           "  --grid FILE.png    also write a grid of the first %d images, %d per row\n"
           "  --seed S           seed of the latent vectors (default 0)\n"
           "  --no-ema           use the trained generator instead of its EMA\n"
           "  --threads N        threads for OpenMP and OpenBLAS (default: MIXGAN_THREADS, else all cores)\n",
           GRID_MAX_IMAGES, GRID_COLUMNS);
}

int cmd_sample(int argc, char **argv)
{
    const char *checkpoint = NULL, *out_dir = NULL, *grid_path = NULL;
    long count = 64, seed = 0;
    bool no_ema = false;
    int threads = 0;
    CliArgs args;
    cli_init(&args, "sample", argc, argv);
    while (cli_next(&args)) {
        if (cli_is(&args, "--help") || cli_is(&args, "-h")) {
            print_usage();
            return 0;
        } else if (cli_is(&args, "--checkpoint")) {
            checkpoint = cli_value(&args);
        } else if (cli_is(&args, "--num")) {
            count = cli_long(&args, 1, 10000000);
        } else if (cli_is(&args, "--out")) {
            out_dir = cli_value(&args);
        } else if (cli_is(&args, "--grid")) {
            grid_path = cli_value(&args);
        } else if (cli_is(&args, "--seed")) {
            seed = cli_long(&args, 0, 0x7fffffffffffffffL);
        } else if (cli_is(&args, "--no-ema")) {
            no_ema = true;
        } else if (cli_is(&args, "--threads")) {
            threads = (int)cli_long(&args, 1, 1024);
        } else {
            cli_usage_error(&args, "unknown option '%s'", args.arg);
        }
    }
    if (!checkpoint) cli_usage_error(&args, "--checkpoint is required");
    if (!out_dir) out_dir = "samples";
    if (grid_path) cli_check_output_path("--grid", grid_path);
    cli_setup_threads(threads);

    Gan gan;
    checkpoint_load_gan(checkpoint, &gan);
    if (!mg_make_dirs(out_dir)) mg_fatal("cannot create output directory %s: %s", out_dir, strerror(errno));
    if (access(out_dir, W_OK) != 0) mg_fatal("output directory %s is not writable: %s", out_dir, strerror(errno));
    Network *g = gan.has_ema && !no_ema ? &gan.ema : &gan.generator;

    const ModelConfig *c = &gan.config;
    size_t image_bytes = (size_t)c->channels * c->image_size * c->image_size;
    uint8_t *pixels = mg_malloc((size_t)count * image_bytes);
    Rng rng = rng_make((uint64_t)seed, STREAM_SAMPLE);
    gan_generate(&gan, g, &rng, (int)count, SAMPLE_BATCH, pixels);

    char err[512];
    for (long i = 0; i < count; i++) {
        char *path = mg_format("%s/sample_%06ld.png", out_dir, i);
        if (!image_write_png(path, pixels + (size_t)i * image_bytes, c->image_size, c->image_size, err, sizeof err))
            mg_fatal("%s", err);
        free(path);
    }
    if (grid_path) {
        int n = count < GRID_MAX_IMAGES ? (int)count : GRID_MAX_IMAGES;
        if (!image_write_grid_png(grid_path, pixels, n, c->image_size, c->image_size, GRID_COLUMNS, err, sizeof err))
            mg_fatal("%s", err);
    }
    printf("wrote %ld images to %s%s%s (%s generator, seed %ld)\n", count, out_dir, grid_path ? " and a grid to " : "",
           grid_path ? grid_path : "", g == &gan.ema ? "EMA" : "trained", seed);
    free(pixels);
    gan_free(&gan);
    return 0;
}
