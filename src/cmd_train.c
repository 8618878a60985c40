/* mixgan train: trains a GAN from a config, with progress lines, metrics, sample grids,
 * checkpoints and resume. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "dataset.h"
#include "image.h"
#include "trainer.h"
#include "util.h"

enum { DEFAULT_KEEP_CHECKPOINTS = 3, SAMPLE_GRID_IMAGES = 64, SAMPLE_GRID_COLUMNS = 8 };

typedef struct TrainOptions {
    const char *config_path;
    const char *data_path;
    const char *out_dir;
    long steps;            /* 0: the config's */
    bool resume;
    int threads;
    int keep_checkpoints;
} TrainOptions;

/* Set by SIGINT/SIGTERM; the loop finishes the current iteration and checkpoints. */
static volatile sig_atomic_t stop_signal;

static void request_stop(int signal_number)
{
    static const char first[] = "\nmixgan: stopping after the current iteration; interrupt again to quit at once\n";
    static const char second[] = "\nmixgan: stopped without a checkpoint\n";
    if (stop_signal) {
        /* only async-signal-safe calls here */
        ssize_t ignored = write(STDERR_FILENO, second, sizeof second - 1);
        (void)ignored;
        _exit(130);
    }
    stop_signal = signal_number;
    ssize_t ignored = write(STDERR_FILENO, first, sizeof first - 1);
    (void)ignored;
}

static void print_usage(void)
{
    printf("usage: mixgan train --config FILE [options]\n\n"
           "Trains the GAN described by a config on a packed dataset. Progress goes to stdout; the run\n"
           "directory receives metrics.csv, samples/step_NNNNNNNN.png and checkpoints/step_NNNNNNNN.ckpt.\n\n"
           "  --config FILE         model config (JSON), for example configs/hybrid.json\n"
           "  --data FILE           packed dataset from 'mixgan prepare' (default: the bundled %s)\n"
           "  --out DIR             run directory (default: runs/<config name>)\n"
           "  --steps N             train until N iterations are done (default: the config's training.steps)\n"
           "  --resume              continue from the newest checkpoint in DIR/checkpoints\n"
           "  --keep-checkpoints N  keep the newest N checkpoints and delete older ones (default %d)\n"
           "  --threads N           threads for OpenMP and OpenBLAS (default: MIXGAN_THREADS, else all cores)\n\n"
           "SIGINT or SIGTERM finishes the current iteration, writes a checkpoint and exits with status 0;\n"
           "a second one quits at once without a checkpoint (status 130).\n",
           DATASET_DEFAULT_PATH, DEFAULT_KEEP_CHECKPOINTS);
}

static TrainOptions parse_options(int argc, char **argv)
{
    TrainOptions o = {.keep_checkpoints = DEFAULT_KEEP_CHECKPOINTS};
    CliArgs args;
    cli_init(&args, "train", argc, argv);
    while (cli_next(&args)) {
        if (cli_is(&args, "--help") || cli_is(&args, "-h")) {
            print_usage();
            exit(0);
        } else if (cli_is(&args, "--config")) {
            o.config_path = cli_value(&args);
        } else if (cli_is(&args, "--data")) {
            o.data_path = cli_value(&args);
        } else if (cli_is(&args, "--out")) {
            o.out_dir = cli_value(&args);
        } else if (cli_is(&args, "--steps")) {
            o.steps = cli_long(&args, 1, 1000000000000L);
        } else if (cli_is(&args, "--resume")) {
            o.resume = true;
        } else if (cli_is(&args, "--keep-checkpoints")) {
            o.keep_checkpoints = (int)cli_long(&args, 1, 1000000);
        } else if (cli_is(&args, "--threads")) {
            o.threads = (int)cli_long(&args, 1, 1024);
        } else {
            cli_usage_error(&args, "unknown option '%s'", args.arg);
        }
    }
    if (!o.config_path) cli_usage_error(&args, "--config is required");
    return o;
}

static void make_dir(const char *path, const char *description)
{
    if (!mg_make_dirs(path)) mg_fatal("cannot create %s %s: %s", description, path, strerror(errno));
    if (access(path, W_OK) != 0) mg_fatal("%s %s is not writable: %s", description, path, strerror(errno));
}

static Dataset load_training_data(const char *path, const ModelConfig *c)
{
    Dataset data;
    char err[512];
    if (!dataset_load(path, &data, err, sizeof err))
        mg_fatal("cannot load the training data: %s\n--data takes a dataset file written by 'mixgan prepare'", err);
    if (data.height != (uint32_t)c->image_size || data.width != (uint32_t)c->image_size ||
        data.channels != (uint32_t)c->channels)
        mg_fatal("%s contains %ux%u images with %u channels, but %s expects %dx%d with %d: prepare the data with "
                 "--size %d",
                 path, data.height, data.width, data.channels, c->source, c->image_size, c->image_size, c->channels,
                 c->image_size);
    if (data.count < (uint32_t)c->training.batch_size)
        mg_fatal("%s contains %u images, fewer than the batch size %d: use a larger dataset or lower "
                 "training.batch_size in %s",
                 path, data.count, c->training.batch_size, c->source);
    return data;
}

/* Checks that a checkpoint was written for the same model as the config. */
static void check_resume_config(const char *checkpoint, const ModelConfig *config)
{
    CheckpointHeader header;
    char *text = checkpoint_read_config(checkpoint, &header);
    ModelConfig stored;
    config_parse(text, checkpoint, &stored);
    config_free(&stored);
    char difference[160];
    if (!config_same_model(text, config->text, difference, sizeof difference))
        mg_fatal("%s was trained with a different config than %s (first difference at %s): resume with the "
                 "config the run started with, or train into another --out directory",
                 checkpoint, config->source, difference);
    free(text);
}

/* ---- outputs during training --------------------------------------------------------- */

typedef struct RunFiles {
    char *dir, *samples_dir, *checkpoints_dir, *metrics_path;
    FILE *metrics;
    char *last_checkpoint;
} RunFiles;

static const char metrics_header[] = "step,d_loss,g_loss,d_real,d_fake,ms_per_iteration,images_per_second\n";

/* Opens metrics.csv for appending. A fresh run starts the file. A resumed run keeps the rows
 * up to the checkpoint's step and drops the rows of later iterations, which the checkpoint
 * does not contain and which the run repeats. */
static FILE *open_metrics(const char *path, int64_t resume_step)
{
    MgOutput out;
    if (!mg_output_open(&out, path)) mg_fatal("cannot write %s: %s", path, strerror(errno));
    bool ok = mg_output_write(&out, metrics_header, strlen(metrics_header));
    char *old = resume_step > 0 ? mg_read_file(path, NULL) : NULL;
    for (char *line = old ? strchr(old, '\n') : NULL; ok && line && line[1]; line = strchr(line + 1, '\n')) {
        long long step;
        char *end = strchr(line + 1, '\n');
        if (sscanf(line + 1, "%lld,", &step) == 1 && step <= resume_step)
            ok = mg_output_write(&out, line + 1, end ? (size_t)(end - line) : strlen(line + 1));
    }
    free(old);
    if (!ok || !mg_output_commit(&out)) mg_fatal("failed to write %s: %s", path, strerror(errno));
    FILE *f = fopen(path, "a");
    if (!f) mg_fatal("cannot append to %s: %s", path, strerror(errno));
    return f;
}

static void write_sample_grid(Gan *gan, const RunFiles *files, int64_t step)
{
    const ModelConfig *c = &gan->config;
    Rng fixed = rng_make(c->training.seed, STREAM_FIXED_LATENT);
    size_t image_bytes = (size_t)c->channels * c->image_size * c->image_size;
    uint8_t *pixels = mg_malloc(SAMPLE_GRID_IMAGES * image_bytes);
    gan_generate(gan, gan->has_ema ? &gan->ema : &gan->generator, &fixed, SAMPLE_GRID_IMAGES,
                 c->training.batch_size, pixels);
    char *path = mg_format("%s/step_%08lld.png", files->samples_dir, (long long)step);
    char err[512];
    if (!image_write_grid_png(path, pixels, SAMPLE_GRID_IMAGES, c->image_size, c->image_size, SAMPLE_GRID_COLUMNS,
                              err, sizeof err))
        mg_fatal("%s", err);
    free(path);
    free(pixels);
}

static void save_checkpoint(const Trainer *trainer, RunFiles *files, int keep)
{
    char *path = mg_format("%s/step_%08lld.ckpt", files->checkpoints_dir, (long long)trainer->step);
    checkpoint_save(trainer, path);
    free(files->last_checkpoint);
    files->last_checkpoint = path;
    checkpoint_prune(files->checkpoints_dir, keep);
}

static void format_duration(double seconds, char *buf, size_t size)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
}

/* ---- the command --------------------------------------------------------------------- */

int cmd_train(int argc, char **argv)
{
    TrainOptions o = parse_options(argc, argv);
    int threads = cli_setup_threads(o.threads);

    ModelConfig config;
    config_load(o.config_path, &config);
    char *default_out = mg_format("runs/%s", config.name);
    RunFiles files = {.dir = mg_strdup(o.out_dir ? o.out_dir : default_out)};
    free(default_out);
    Gan gan;
    gan_build(&gan, &config);
    if (o.steps) gan.config.training.steps = o.steps; /* so that the printed config shows the target */
    const TrainingSpec *t = &gan.config.training;
    long total_steps = t->steps;

    char *data_path = o.data_path ? mg_strdup(o.data_path) : cli_find_bundled_file(DATASET_DEFAULT_PATH);
    Dataset data = load_training_data(data_path, &gan.config);
    ImageSet images = {data.pixels, data.count, data.height, data.width, data.channels};

    files.samples_dir = mg_format("%s/samples", files.dir);
    files.checkpoints_dir = mg_format("%s/checkpoints", files.dir);
    files.metrics_path = mg_format("%s/metrics.csv", files.dir);
    make_dir(files.dir, "run directory");
    make_dir(files.samples_dir, "samples directory");
    make_dir(files.checkpoints_dir, "checkpoints directory");

    Trainer trainer;
    char *latest = checkpoint_find_latest(files.checkpoints_dir);
    if (o.resume) {
        if (!latest)
            mg_fatal("--resume: no checkpoint in %s to resume from; start without --resume", files.checkpoints_dir);
        check_resume_config(latest, &gan.config);
        trainer_init(&trainer, &gan, images);
        checkpoint_load_trainer(latest, &trainer);
        files.last_checkpoint = mg_strdup(latest);
    } else {
        if (latest)
            mg_fatal("%s already contains checkpoints (%s): pass --resume to continue that run, or choose another --out",
                     files.checkpoints_dir, latest);
        gan_init_weights(&gan);
        trainer_init(&trainer, &gan, images);
    }
    free(latest);

    gan_print(&gan);
    printf("\ndata: %s (%u images)\nrun directory: %s\nthreads: %d (OpenBLAS %s kernels)\n", data_path, data.count,
           files.dir, threads, mg_sgemm_core_name());
    printf("estimated activation memory per iteration: %.0f MiB\n", trainer_activation_bytes_estimate(&gan) / (1024.0 * 1024.0));
    if (o.resume) printf("resuming from %s at step %lld\n", files.last_checkpoint, (long long)trainer.step);
    if (trainer.step >= total_steps) printf("nothing to do: %lld of %ld steps already done\n", (long long)trainer.step, total_steps);
    printf("\n");
    fflush(stdout);

    files.metrics = open_metrics(files.metrics_path, trainer.step);
    struct sigaction action = {.sa_handler = request_stop};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    double window_ms = 0.0;
    int window_count = 0;
    bool first = true;
    int64_t saved_step = o.resume ? trainer.step : -1;
    while (trainer.step < total_steps && !stop_signal) {
        double start = mg_now();
        IterationStats s = trainer_iteration(&trainer);
        double ms = (mg_now() - start) * 1e3;
        if (!s.finite) {
            fclose(files.metrics);
            mg_fatal("a loss became NaN or infinite at step %lld (D loss %g, G loss %g); training stopped. Last good "
                     "checkpoint: %s",
                     (long long)trainer.step + 1, s.d_loss, s.g_loss,
                     files.last_checkpoint ? files.last_checkpoint : "none yet");
        }
        fprintf(files.metrics, "%lld,%.6f,%.6f,%.6f,%.6f,%.2f,%.2f\n", (long long)trainer.step, s.d_loss, s.g_loss,
                s.d_real, s.d_fake, ms, t->batch_size * 1000.0 / ms);

        /* the first iteration of a process pays for warm-up; keep it out of the rates */
        if (!first) {
            window_ms += ms;
            window_count++;
        } else {
            printf("activation memory of the first iteration: %.0f MiB (measured)\n",
                   (double)trainer.tape.arena.peak_bytes / (1024.0 * 1024.0));
        }
        first = false;
        if (trainer.step % t->log_interval == 0 || trainer.step == total_steps) {
            double mean_ms = window_count ? window_ms / window_count : ms;
            char eta[32];
            format_duration((double)(total_steps - trainer.step) * mean_ms / 1e3, eta, sizeof eta);
            printf("step %lld/%ld  D loss %.4f  G loss %.4f  D(real) %+.3f  D(fake) %+.3f  %.1f ms/it  %.1f img/s  "
                   "ETA %s\n",
                   (long long)trainer.step, total_steps, s.d_loss, s.g_loss, s.d_real, s.d_fake, mean_ms,
                   t->batch_size * 1000.0 / mean_ms, eta);
            fflush(stdout);
            fflush(files.metrics);
            window_ms = 0.0;
            window_count = 0;
        }
        if (trainer.step % t->sample_interval == 0) write_sample_grid(&gan, &files, trainer.step);
        if (trainer.step % t->checkpoint_interval == 0) {
            save_checkpoint(&trainer, &files, o.keep_checkpoints);
            saved_step = trainer.step;
        }
    }
    fclose(files.metrics);

    if (saved_step != trainer.step) {
        if (trainer.step % t->sample_interval != 0) write_sample_grid(&gan, &files, trainer.step);
        save_checkpoint(&trainer, &files, o.keep_checkpoints);
    }
    if (stop_signal) {
        printf("stopped by %s at step %lld; checkpoint: %s\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
               (long long)trainer.step, files.last_checkpoint);
        printf("resume with: %s train --config %s --out %s --steps %ld%s%s --resume\n", mg_program_name(), o.config_path,
               files.dir, total_steps, o.data_path ? " --data " : "", o.data_path ? o.data_path : "");
    } else {
        printf("done: %lld step%s; checkpoint: %s\n", (long long)trainer.step, trainer.step == 1 ? "" : "s",
               files.last_checkpoint);
    }

    trainer_free(&trainer);
    gan_free(&gan);
    dataset_free(&data);
    free(data_path);
    free(files.dir);
    free(files.samples_dir);
    free(files.checkpoints_dir);
    free(files.metrics_path);
    free(files.last_checkpoint);
    return 0;
}
