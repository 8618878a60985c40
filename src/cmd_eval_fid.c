/* mixgan eval-fid: the FID between two image sets, as pytorch-fid computes it.
 *
 * Each input is a folder of images, a packed dataset, a statistics file (.npz) or a training
 * checkpoint (with --num-samples). Images go through pytorch-fid's pipeline: uint8 RGB,
 * /255, bilinear resize to 299×299, 2x − 1, the FID InceptionV3, 2048-d pool3 features,
 * float64 mean and covariance, Fréchet distance.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "dataset.h"
#include "fid_stats.h"
#include "image.h"
#include "inception.h"
#include "npz.h"
#include "util.h"

#define INCEPTION_URL \
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"

enum { DEFAULT_BATCH = 50 };

typedef enum InputKind { INPUT_FOLDER, INPUT_DATASET, INPUT_STATS, INPUT_CHECKPOINT } InputKind;

typedef struct FidOptionsCli {
    const char *inception;
    const char *save_stats;
    const char *inputs[2];
    int input_count;
    long num_samples;
    long seed;
    int batch;
    bool no_ema;
    int threads;
} FidOptionsCli;

/* The statistics of one input and how they were obtained. */
typedef struct InputStats {
    const char *path;
    InputKind kind;
    int dim;
    double *mu, *sigma;
    int64_t count;  /* images behind the statistics, 0 when read from a statistics file */
} InputStats;

static void print_usage(void)
{
    printf("usage: mixgan eval-fid [options] A [B]\n"
           "       mixgan eval-fid [options] --save-stats OUT.npz A\n\n"
           "Computes the FID between A and B as pytorch-fid does, or saves the statistics of A. Each\n"
           "input is a folder of images (JPEG or PNG, searched recursively), a dataset from 'mixgan\n"
           "prepare', a statistics file (.npz with mu and sigma, as pytorch-fid writes), or a training\n"
           "checkpoint together with --num-samples. B defaults to the bundled %s.\n\n"
           "  --inception FILE   the FID Inception weights pt_inception-2015-12-05-6726825d.pth\n"
           "                     (default: $MIXGAN_INCEPTION), published at\n"
           "                     %s\n"
           "                     'random' or 'random:SEED' builds the network with random weights,\n"
           "                     for tests and benchmarks (the numbers are then not FIDs)\n"
           "  --num-samples N    images to generate from a checkpoint input\n"
           "  --seed S           seed of the generated images' latents (default 0, as 'mixgan sample')\n"
           "  --no-ema           generate with the trained generator instead of its EMA\n"
           "  --batch N          images per Inception batch (default %d)\n"
           "  --save-stats FILE  write the statistics of A to FILE (.npz) instead of comparing\n"
           "  --threads N        threads for OpenMP and OpenBLAS (default: MIXGAN_THREADS, else all cores)\n",
           DATASET_DEFAULT_PATH, INCEPTION_URL, DEFAULT_BATCH);
}

static FidOptionsCli parse_options(int argc, char **argv)
{
    FidOptionsCli o = {.batch = DEFAULT_BATCH};
    CliArgs args;
    cli_init(&args, "eval-fid", argc, argv);
    while (cli_next(&args)) {
        if (cli_is(&args, "--help") || cli_is(&args, "-h")) {
            print_usage();
            exit(0);
        } else if (cli_is(&args, "--inception")) {
            o.inception = cli_value(&args);
        } else if (cli_is(&args, "--save-stats")) {
            o.save_stats = cli_value(&args);
        } else if (cli_is(&args, "--num-samples")) {
            o.num_samples = cli_long(&args, 2, 100000000);
        } else if (cli_is(&args, "--seed")) {
            o.seed = cli_long(&args, 0, 0x7fffffffffffffffL);
        } else if (cli_is(&args, "--no-ema")) {
            o.no_ema = true;
        } else if (cli_is(&args, "--batch")) {
            o.batch = (int)cli_long(&args, 1, 4096);
        } else if (cli_is(&args, "--threads")) {
            o.threads = (int)cli_long(&args, 1, 1024);
        } else if (args.arg[0] == '-' && args.arg[1] != '\0') {
            cli_usage_error(&args, "unknown option '%s'", args.arg);
        } else {
            if (o.input_count == 2) cli_usage_error(&args, "more than two inputs ('%s')", args.arg);
            o.inputs[o.input_count++] = args.arg;
        }
    }
    if (o.input_count == 0) cli_usage_error(&args, "no input given");
    if (o.save_stats && o.input_count != 1) cli_usage_error(&args, "--save-stats takes exactly one input");
    return o;
}

static InputKind classify_input(const char *path)
{
    if (mg_is_directory(path)) return INPUT_FOLDER;
    FILE *f = fopen(path, "rb");
    if (!f) mg_fatal("cannot open input %s: %s", path, strerror(errno));
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "MGDS", 4) == 0) return INPUT_DATASET;
    if (got == 4 && memcmp(magic, "MGCK", 4) == 0) return INPUT_CHECKPOINT;
    if (got == 4 && memcmp(magic, "PK\x03\x04", 4) == 0) return INPUT_STATS;
    mg_fatal("%s is not a folder, a mixgan dataset, a checkpoint or an .npz statistics file", path);
}

/* ---- Inception features ------------------------------------------------------------ */

/* Accumulates the Inception features of images fed one at a time, in batches. */
typedef struct FeatureRun {
    Inception *net;
    Tape tape;
    int batch;
    float *inputs;     /* (batch, 3, 299, 299) prepared images */
    float *features;   /* (batch, 2048) */
    int pending;
    FidStats stats;
    const char *label;
    int64_t total;     /* images expected, for progress; 0 when unknown */
    MgProgress progress;
} FeatureRun;

static void feature_run_init(FeatureRun *run, Inception *net, int batch, const char *label, int64_t total)
{
    memset(run, 0, sizeof *run);
    run->net = net;
    run->batch = batch;
    run->label = label;
    run->total = total;
    tape_init(&run->tape);
    tape_set_grad_enabled(&run->tape, false);
    run->inputs = mg_malloc((size_t)batch * 3 * INCEPTION_SIZE * INCEPTION_SIZE * sizeof(float));
    run->features = mg_malloc((size_t)batch * INCEPTION_FEATURES * sizeof(float));
    fid_stats_init(&run->stats, INCEPTION_FEATURES);
    mg_progress_start(&run->progress, label, "images");
}

static void flush_batch(FeatureRun *run)
{
    if (run->pending == 0) return;
    Tensor *x = tensor_empty(&run->tape, shape4(run->pending, 3, INCEPTION_SIZE, INCEPTION_SIZE));
    memcpy(x->data, run->inputs, x->numel * sizeof(float));
    inception_forward(run->net, &run->tape, x, run->features);
    tape_reset(&run->tape);
    char err[512];
    if (!fid_stats_add(&run->stats, run->features, run->pending, err, sizeof err)) mg_fatal("%s: %s", run->label, err);
    run->pending = 0;
    mg_progress_update(&run->progress, (size_t)run->stats.count, (size_t)run->total, false);
}

static void feature_run_add(FeatureRun *run, const uint8_t *rgb, int width, int height)
{
    float *slot = run->inputs + (size_t)run->pending * 3 * INCEPTION_SIZE * INCEPTION_SIZE;
    inception_prepare_image(&run->tape, rgb, width, height, slot);
    if (++run->pending == run->batch) flush_batch(run);
}

/* Finishes the run into `out`; exits when fewer than two images were seen. */
static void feature_run_finish(FeatureRun *run, InputStats *out)
{
    flush_batch(run);
    mg_progress_update(&run->progress, (size_t)run->stats.count, (size_t)run->total, true);
    if (run->stats.count < 2)
        mg_fatal("%s: %lld image%s found; FID needs at least 2 (and 2048 or more for a full-rank covariance)",
                 run->label, (long long)run->stats.count, run->stats.count == 1 ? "" : "s");
    out->dim = INCEPTION_FEATURES;
    out->count = run->stats.count;
    out->mu = mg_malloc(INCEPTION_FEATURES * sizeof(double));
    out->sigma = mg_malloc((size_t)INCEPTION_FEATURES * INCEPTION_FEATURES * sizeof(double));
    char err[512];
    if (!fid_stats_finish(&run->stats, out->mu, out->sigma, err, sizeof err)) mg_fatal("%s: %s", run->label, err);
    fid_stats_free(&run->stats);
    tape_free(&run->tape);
    free(run->inputs);
    free(run->features);
}

/* ---- inputs ------------------------------------------------------------------------ */

static void folder_features(FeatureRun *run, const char *dir)
{
    char err[512];
    size_t count, ignored;
    char **files = image_scan_files(dir, &count, &ignored, err, sizeof err);
    if (!files) mg_fatal("%s", err);
    if (ignored) mg_warn("%s: skipped %zu file%s without a .jpg, .jpeg or .png extension", dir, ignored, ignored == 1 ? "" : "s");
    run->total = (int64_t)count;
    size_t failed = 0;
    for (size_t i = 0; i < count; i++) {
        int width, height;
        uint8_t *rgb = image_load_rgb(files[i], &width, &height, err, sizeof err);
        if (!rgb) {
            if (failed++ < 20) mg_warn("skipping %s", err);
            continue;
        }
        feature_run_add(run, rgb, width, height);
        free(rgb);
    }
    if (failed) mg_warn("%s: skipped %zu file%s that could not be decoded", dir, failed, failed == 1 ? "" : "s");
    image_free_list(files, count);
}

static void dataset_features(FeatureRun *run, const char *path)
{
    Dataset data;
    char err[512];
    if (!dataset_load(path, &data, err, sizeof err)) mg_fatal("%s", err);
    if (data.channels != 3) mg_fatal("%s contains images with %u channels, but FID needs RGB", path, data.channels);
    run->total = data.count;
    for (uint32_t i = 0; i < data.count; i++) feature_run_add(run, dataset_image(&data, i), (int)data.width, (int)data.height);
    dataset_free(&data);
}

static void checkpoint_features(FeatureRun *run, const char *path, const FidOptionsCli *o)
{
    Gan gan;
    checkpoint_load_gan(path, &gan);
    const ModelConfig *c = &gan.config;
    if (c->channels != 3) mg_fatal("%s generates images with %d channels; FID needs RGB", path, c->channels);
    Network *g = gan.has_ema && !o->no_ema ? &gan.ema : &gan.generator;
    fprintf(stderr, "%s: generating %ld images with the %s generator, seed %ld\n", path, o->num_samples,
            g == &gan.ema ? "EMA" : "trained", o->seed);
    run->total = o->num_samples;
    Rng rng = rng_make((uint64_t)o->seed, STREAM_SAMPLE);
    size_t image_bytes = (size_t)3 * c->image_size * c->image_size;
    uint8_t *pixels = mg_malloc((size_t)run->batch * image_bytes);
    for (long done = 0; done < o->num_samples; done += run->batch) {
        int n = o->num_samples - done < run->batch ? (int)(o->num_samples - done) : run->batch;
        gan_generate(&gan, g, &rng, n, run->batch, pixels);
        for (int i = 0; i < n; i++) feature_run_add(run, pixels + (size_t)i * image_bytes, c->image_size, c->image_size);
    }
    free(pixels);
    gan_free(&gan);
}

static void load_stats_file(InputStats *in)
{
    char err[512];
    if (!npz_read_fid_stats(in->path, &in->dim, &in->mu, &in->sigma, err, sizeof err)) mg_fatal("%s", err);
    in->count = 0;
}

static const char *inception_path(const FidOptionsCli *o)
{
    const char *path = o->inception ? o->inception : getenv("MIXGAN_INCEPTION");
    if (!path || !*path)
        mg_fatal("no Inception weights: pass --inception FILE or set MIXGAN_INCEPTION to the file\n"
                 "pt_inception-2015-12-05-6726825d.pth, which pytorch-fid downloads from\n%s",
                 INCEPTION_URL);
    return path;
}

static void compute_input_stats(InputStats *in, Inception *net, const FidOptionsCli *o)
{
    FeatureRun run;
    feature_run_init(&run, net, o->batch, in->path, 0);
    switch (in->kind) {
    case INPUT_FOLDER:
        folder_features(&run, in->path);
        break;
    case INPUT_DATASET:
        dataset_features(&run, in->path);
        break;
    case INPUT_CHECKPOINT:
        checkpoint_features(&run, in->path, o);
        break;
    default:
        mg_panic("compute_input_stats on a statistics file");
    }
    feature_run_finish(&run, in);
}

static void describe_count(const InputStats *in, char *buf, size_t size)
{
    if (in->count)
        snprintf(buf, size, "N=%lld", (long long)in->count);
    else
        snprintf(buf, size, "statistics file, N not recorded");
}

int cmd_eval_fid(int argc, char **argv)
{
    FidOptionsCli o = parse_options(argc, argv);
    if (o.save_stats) cli_check_output_path("--save-stats", o.save_stats);
    cli_setup_threads(o.threads);

    char *default_b = NULL;
    if (!o.save_stats && o.input_count == 1) {
        default_b = cli_find_bundled_file(DATASET_DEFAULT_PATH);
        o.inputs[o.input_count++] = default_b;
    }
    InputStats inputs[2] = {{0}};
    bool needs_network = false;
    for (int i = 0; i < o.input_count; i++) {
        inputs[i].path = o.inputs[i];
        inputs[i].kind = classify_input(o.inputs[i]);
        needs_network |= inputs[i].kind != INPUT_STATS;
        /* checked here, so that a missing option stops the run before the weights load */
        if (inputs[i].kind == INPUT_CHECKPOINT && !o.num_samples)
            mg_fatal("%s is a checkpoint: pass --num-samples N to generate N images from it", inputs[i].path);
    }
    bool any_checkpoint = inputs[0].kind == INPUT_CHECKPOINT || (o.input_count > 1 && inputs[1].kind == INPUT_CHECKPOINT);
    if (!any_checkpoint && (o.num_samples || o.seed || o.no_ema))
        mg_warn("--num-samples, --seed and --no-ema apply only to checkpoint inputs; no input is a checkpoint");
    if (o.save_stats && inputs[0].kind == INPUT_STATS)
        mg_fatal("%s is already a statistics file; --save-stats needs images, a dataset or a checkpoint", inputs[0].path);

    Inception net = {0};
    if (needs_network) {
        char err[1024];
        const char *path = inception_path(&o);
        unsigned long long seed = 0;
        int end = 0;
        bool random_weights = strcmp(path, "random") == 0;
        if (!random_weights && strncmp(path, "random:", 7) == 0) {
            if (sscanf(path, "random:%llu%n", &seed, &end) != 1 || path[end] != '\0')
                mg_fatal("invalid --inception %s: expected random:SEED with SEED a non-negative integer", path);
            random_weights = true;
        }
        if (random_weights) {
            mg_warn("--inception %s: random weights, for tests and benchmarks only; the numbers are not FIDs", path);
            inception_init_random(&net, seed);
        } else if (!inception_load(&net, path, err, sizeof err)) {
            mg_fatal("%s\nThe weights file is pt_inception-2015-12-05-6726825d.pth; download it again from\n%s", err,
                     INCEPTION_URL);
        }
    }
    for (int i = 0; i < o.input_count; i++) {
        if (inputs[i].kind == INPUT_STATS)
            load_stats_file(&inputs[i]);
        else
            compute_input_stats(&inputs[i], &net, &o);
    }

    if (o.save_stats) {
        char err[512];
        if (!npz_write_fid_stats(o.save_stats, inputs[0].dim, inputs[0].mu, inputs[0].sigma, err, sizeof err))
            mg_fatal("%s", err);
        printf("saved the statistics of %s (N=%lld, %d dimensions) to %s\n", inputs[0].path, (long long)inputs[0].count,
               inputs[0].dim, o.save_stats);
        printf("protocol: bilinear resize to 299x299 (align_corners=False, as PyTorch), pytorch-fid InceptionV3 "
               "pool3, weights sha256 %s\n",
               net.sha256);
    } else {
        if (inputs[0].dim != inputs[1].dim)
            mg_fatal("%s has %d-dimensional statistics but %s has %d: both sides must use the same features",
                     inputs[0].path, inputs[0].dim, inputs[1].path, inputs[1].dim);
        FidOptions options = {.count1 = inputs[0].count, .count2 = inputs[1].count, .label1 = inputs[0].path,
                              .label2 = inputs[1].path, .offset_mode = FID_OFFSET_ON_FAILURE};
        FidDistanceInfo info;
        char err[512];
        double fid = fid_frechet_distance(inputs[0].mu, inputs[0].sigma, inputs[1].mu, inputs[1].sigma, inputs[0].dim,
                                          &options, &info, err, sizeof err);
        if (fid != fid) mg_fatal("%s", err);
        char count_a[64], count_b[64];
        describe_count(&inputs[0], count_a, sizeof count_a);
        describe_count(&inputs[1], count_b, sizeof count_b);
        /* Rounding can leave a tiny negative distance between identical statistics, which
         * would print as -0.000000. */
        printf("FID: %.6f\n", fabs(fid) < 5e-7 ? 0.0 : fid);
        printf("protocol: A=%s (%s), B=%s (%s), bilinear resize to 299x299 (align_corners=False, as PyTorch), "
               "pytorch-fid InceptionV3 pool3 (%d-d), weights sha256 %s, float64 statistics%s\n",
               inputs[0].path, count_a, inputs[1].path, count_b, inputs[0].dim, needs_network ? net.sha256 : "(not used)",
               info.offset_applied ? ", 1e-6 diagonal offset applied" : "");
    }

    for (int i = 0; i < o.input_count; i++) {
        free(inputs[i].mu);
        free(inputs[i].sigma);
    }
    if (needs_network) inception_free(&net);
    free(default_b);
    return 0;
}
