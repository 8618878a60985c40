/* `mixgan eval-fid` run as a user runs it, on folders, statistics files and checkpoints made
 * here.
 *
 * Most runs use --inception random, the full network with random weights: its numbers are
 * not FIDs, but every step of the pipeline runs. In a release build, drawing its 21.8M conv
 * weights takes 0.4 to 1 s and each image about 70 ms, and saving 2048-d statistics about
 * 1.5 s. The folders therefore hold two to four images, and the statistics that several
 * tests need are computed once (see cached_stats). Statistics files written by NumPy
 * (tests/gen_inception_fixtures.py) check the Fréchet distance against SciPy's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "dataset.h"
#include "image.h"
#include "npz.h"
#include "test.h"
#include "util.h"

#define TRUNCATED_WEIGHTS "tests/data/inception/pt_inception-2015-12-05-6726825d.truncated.pth"
#define DOG_JPEG "tests/data/stanford-dogs/Images/n02085936-Maltese_dog/n02085936_2760.jpg"
#define STATS_A "tests/data/eval_fid/stats_a.npz"
#define STATS_B "tests/data/eval_fid/stats_b.npz"
#define WEIGHTS_URL \
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"

/* ---- inputs -------------------------------------------------------------------------- */

/* The bundled 32×32 dog dataset, loaded on first use and kept until the runner exits. */
static const Dataset *dogs(void)
{
    static Dataset data;
    static bool loaded;
    if (!loaded) {
        char err[512];
        if (!dataset_load(DATASET_DEFAULT_PATH, &data, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
        loaded = true;
    }
    return &data;
}

/* Writes dog `index` of the bundled dataset as a PNG, resized to width × height. */
static void write_dog_png(const char *dir, const char *name, int index, int width, int height)
{
    const Dataset *d = dogs();
    const uint8_t *pixels = dataset_image(d, (size_t)index);
    uint8_t *resized = mg_malloc((size_t)width * height * 3);
    ImageBox all = {0, 0, (int)d->width, (int)d->height};
    if (!image_resize_box(pixels, (int)d->width, (int)d->height, all, resized, width, height)) exit(1);
    char *path = mg_format("%s/%s", dir, name);
    char err[512];
    if (!image_write_png(path, resized, width, height, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    free(path);
    free(resized);
}

/* Writes the first `size` bytes of `source` (all of it when size is 0) to dir/name. */
static void copy_file(const char *source, const char *dir, const char *name, size_t size)
{
    size_t full;
    char *bytes = mg_read_file(source, &full);
    if (!bytes) {
        perror(source);
        exit(1);
    }
    char *path = mg_format("%s/%s", dir, name);
    test_write_file(path, bytes, size ? size : full);
    free(path);
    free(bytes);
}

static void write_text_file(const char *dir, const char *name, const char *text)
{
    char *path = mg_format("%s/%s", dir, name);
    test_write_text(path, text);
    free(path);
}

/* A new folder holding dogs first .. first + count - 1 as 32×32 PNGs. */
static const char *dog_folder(int first, int count)
{
    const char *dir = test_temp_dir();
    for (int i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "dog_%d.png", first + i);
        write_dog_png(dir, name, first + i, 32, 32);
    }
    return dir;
}

/* ---- outputs ------------------------------------------------------------------------- */

/* The number after "FID: " in the output, or NAN when there is none. */
static double parse_fid(const char *out)
{
    const char *at = strstr(out, "FID: ");
    return at ? strtod(at + 5, NULL) : NAN;
}

typedef struct Stats {
    int dim;
    double *mu, *sigma;
} Stats;

static bool read_stats(const char *path, Stats *s)
{
    char err[512];
    memset(s, 0, sizeof *s);
    bool ok = npz_read_fid_stats(path, &s->dim, &s->mu, &s->sigma, err, sizeof err);
    CHECK_MSG(ok, "%s", err);
    return ok;
}

static void free_stats(Stats *s)
{
    free(s->mu);
    free(s->sigma);
}

/* Checks that two statistics files hold the same mu and sigma, within `tolerance` (0 for bit
 * equality), and names the largest difference otherwise. */
static void check_same_stats(const char *path_a, const char *path_b, double tolerance)
{
    Stats a, b;
    bool read_a = read_stats(path_a, &a), read_b = read_stats(path_b, &b);
    if (read_a && read_b) {
        CHECK_INT_EQ(a.dim, b.dim);
        if (a.dim == b.dim) {
            size_t d = (size_t)a.dim;
            double mu_diff = 0.0, sigma_diff = 0.0;
            for (size_t i = 0; i < d; i++) mu_diff = fmax(mu_diff, fabs(a.mu[i] - b.mu[i]));
            for (size_t i = 0; i < d * d; i++) sigma_diff = fmax(sigma_diff, fabs(a.sigma[i] - b.sigma[i]));
            CHECK_MSG(mu_diff <= tolerance, "mu of %s and %s differ by up to %.3g", path_a, path_b, mu_diff);
            CHECK_MSG(sigma_diff <= tolerance, "sigma of %s and %s differ by up to %.3g", path_a, path_b, sigma_diff);
        }
    }
    if (read_a) free_stats(&a);
    if (read_b) free_stats(&b);
}

/* ---- shared runs --------------------------------------------------------------------- */

/* Dogs 0 to 3 of the bundled dataset as PNGs, made once. */
static const char *shared_dog_folder(void)
{
    static const char *dir;
    if (!dir) dir = dog_folder(0, 4);
    return dir;
}

/* A checkpoint of tests/configs/tiny-hybrid.json after one training step, made once. */
static const char *tiny_checkpoint(void)
{
    static char *path;
    if (!path) {
        const char *dir = test_temp_dir();
        CommandResult r = test_run_mixgan("train --config tests/configs/tiny-hybrid.json --steps 1 --out %s/run", dir);
        CHECK_MSG(r.status == 0, "train failed: %s", r.err);
        if (r.status == 0) path = mg_format("%s/run/checkpoints/step_00000001.ckpt", dir);
        test_free_result(&r);
    }
    return path;
}

/* The folder of the 4 PNGs that `mixgan sample` writes from tiny_checkpoint() with seed 0,
 * made once. */
static const char *sample_folder(void)
{
    static char *dir;
    const char *checkpoint = tiny_checkpoint();
    if (!dir && checkpoint) {
        const char *out = test_temp_dir();
        CommandResult r = test_run_mixgan("sample --checkpoint %s --num 4 --seed 0 --out %s", checkpoint, out);
        CHECK_MSG(r.status == 0, "sample failed: %s", r.err);
        if (r.status == 0) dir = mg_strdup(out);
        test_free_result(&r);
    }
    return dir;
}

enum { CACHED_STATS_MAX = 8 };

/* Runs `eval-fid --inception random --save-stats FILE <args>` once per distinct args and
 * returns FILE, or NULL after recording the failure. */
static const char *cached_stats(const char *args)
{
    static struct {
        char *args, *path;
    } cache[CACHED_STATS_MAX];
    static int count;
    for (int i = 0; i < count; i++) {
        if (strcmp(cache[i].args, args) == 0) return cache[i].path;
    }
    if (count == CACHED_STATS_MAX) {
        test_fail(__FILE__, __LINE__, "more than %d distinct cached runs: raise CACHED_STATS_MAX", CACHED_STATS_MAX);
        return NULL;
    }
    char *path = mg_format("%s/stats.npz", test_temp_dir());
    CommandResult r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", path, args);
    CHECK_MSG(r.status == 0, "eval-fid %s failed: %s", args, r.err);
    bool ok = r.status == 0;
    test_free_result(&r);
    if (!ok) {
        free(path);
        return NULL;
    }
    cache[count].args = mg_strdup(args);
    cache[count].path = path;
    return cache[count++].path;
}

/* ---- weights ------------------------------------------------------------------------- */

TEST(eval_fid_missing_weights_file)
{
    const char *folder = dog_folder(0, 2);
    char *weights = mg_format("%s/missing.pth", test_temp_dir());
    CommandResult r = test_run_mixgan("eval-fid --inception %s %s %s", weights, folder, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, weights);
    CHECK_STR_CONTAINS(r.err, "No such file or directory");
    test_free_result(&r);
    free(weights);
}

TEST(eval_fid_without_weights_names_url)
{
    const char *folder = dog_folder(0, 2);
    char *saved = getenv("MIXGAN_INCEPTION") ? mg_strdup(getenv("MIXGAN_INCEPTION")) : NULL;

    unsetenv("MIXGAN_INCEPTION");
    CommandResult r = test_run_mixgan("eval-fid %s %s", folder, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "no Inception weights: pass --inception FILE or set MIXGAN_INCEPTION");
    CHECK_STR_CONTAINS(r.err, WEIGHTS_URL);
    test_free_result(&r);

    setenv("MIXGAN_INCEPTION", "", 1);
    r = test_run_mixgan("eval-fid %s %s", folder, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, WEIGHTS_URL);
    test_free_result(&r);

    /* the variable is used when --inception is absent */
    setenv("MIXGAN_INCEPTION", TRUNCATED_WEIGHTS, 1);
    r = test_run_mixgan("eval-fid %s %s", folder, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, TRUNCATED_WEIGHTS);
    test_free_result(&r);

    if (saved)
        setenv("MIXGAN_INCEPTION", saved, 1);
    else
        unsetenv("MIXGAN_INCEPTION");
    free(saved);
}

TEST(eval_fid_truncated_weights)
{
    const char *folder = dog_folder(0, 2);
    CommandResult r = test_run_mixgan("eval-fid --inception %s %s %s", TRUNCATED_WEIGHTS, folder, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, TRUNCATED_WEIGHTS);
    CHECK_STR_CONTAINS(r.err, "the file is truncated: expected 95628359 bytes, found 818371");
    test_free_result(&r);
}

/* ---- statistics files ---------------------------------------------------------------- */

TEST(eval_fid_rejects_bad_stats_files)
{
    static const struct {
        const char *file, *message;
    } cases[] = {
        {"tests/data/npz/stats_other_keys.npz", "missing array 'mu'; FID statistics need 'mu' and 'sigma'"},
        {"tests/data/npz/stats_bad_shapes.npz", "'sigma' has shape (5, 5); expected (6, 6) to match 'mu' of shape (6,)"},
        {"tests/data/npz/stats_deflate.npz", "has 6-dimensional statistics but " STATS_A " has 64"},
        {"tests/test_eval_fid.c", "is not a folder, a mixgan dataset, a checkpoint or an .npz statistics file"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        CommandResult r = test_run_mixgan("eval-fid %s %s", cases[i].file, STATS_A);
        CHECK_MSG(r.status == 1, "%s: exit status %d", cases[i].file, r.status);
        CHECK_STR_CONTAINS(r.err, cases[i].file);
        CHECK_STR_CONTAINS(r.err, cases[i].message);
        CHECK_MSG(strstr(r.out, "FID") == NULL, "%s: printed a FID: %s", cases[i].file, r.out);
        test_free_result(&r);
    }
}

/* NumPy's statistics files need no network, and the distance matches pytorch-fid's formula
 * evaluated with SciPy's sqrtm. The two agree to the 6 decimals that eval-fid prints; the
 * tolerance leaves room for another LAPACK. */
TEST(eval_fid_numpy_stats_match_scipy)
{
    size_t size;
    char *text = mg_read_file("tests/data/eval_fid/expected_fid.txt", &size);
    CHECK(text != NULL);
    if (!text) return;
    double expected = strtod(text, NULL);
    free(text);

    CommandResult r = test_run_mixgan("eval-fid --inception %s/missing.pth %s %s", test_temp_dir(), STATS_A, STATS_B);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    CHECK_NEAR(parse_fid(r.out), expected, 1e-5);
    CHECK_STR_CONTAINS(r.out, "A=" STATS_A " (statistics file, N not recorded)");
    CHECK_STR_CONTAINS(r.out, "B=" STATS_B " (statistics file, N not recorded)");
    CHECK_STR_CONTAINS(r.out, "weights sha256 (not used)");
    test_free_result(&r);

    /* the distance is symmetric */
    r = test_run_mixgan("eval-fid %s %s", STATS_B, STATS_A);
    CHECK_INT_EQ(r.status, 0);
    CHECK_NEAR(parse_fid(r.out), expected, 1e-5);
    test_free_result(&r);
}

/* ---- folders ------------------------------------------------------------------------- */

TEST(eval_fid_folder_without_images)
{
    const char *folder = test_temp_dir();
    write_text_file(folder, "notes.txt", "not an image\n");
    char *stats = mg_format("%s/stats.npz", test_temp_dir());
    CommandResult r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", stats, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "skipped 1 file without a .jpg, .jpeg or .png extension");
    CHECK_STR_CONTAINS(r.err, "0 images found; FID needs at least 2");
    CHECK(!mg_file_exists(stats));
    test_free_result(&r);
    free(stats);
}

TEST(eval_fid_needs_two_images)
{
    const char *folder = dog_folder(0, 1);
    char *stats = mg_format("%s/stats.npz", test_temp_dir());
    CommandResult r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", stats, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, folder);
    CHECK_STR_CONTAINS(r.err, "1 image found; FID needs at least 2");
    CHECK(!mg_file_exists(stats));
    test_free_result(&r);
    free(stats);
}

TEST(eval_fid_skips_undecodable_files)
{
    const char *folder = dog_folder(0, 2);
    write_text_file(folder, "notes.txt", "not an image\n");
    write_text_file(folder, "broken.png", "not a PNG either\n");
    copy_file(DOG_JPEG, folder, "cut.jpg", 600);
    char *stats = mg_format("%s/stats.npz", test_temp_dir());
    CommandResult r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", stats, folder);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    CHECK_STR_CONTAINS(r.err, "skipped 1 file without a .jpg, .jpeg or .png extension");
    CHECK_STR_CONTAINS(r.err, "broken.png");
    CHECK_STR_CONTAINS(r.err, "cut.jpg");
    CHECK_STR_CONTAINS(r.err, "skipped 2 files that could not be decoded");
    CHECK_STR_CONTAINS(r.out, "(N=2, 2048 dimensions)");
    CHECK(mg_file_exists(stats));
    test_free_result(&r);
    free(stats);
}

/* A --save-stats path that cannot be written stops the run before any image is read. */
TEST(eval_fid_save_stats_bad_path)
{
    const char *folder = dog_folder(0, 2);
    char *missing = mg_format("%s/missing/stats.npz", test_temp_dir());
    CommandResult r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", missing, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, missing);
    CHECK_STR_CONTAINS(r.err, "does not exist; create it first");
    CHECK_MSG(strstr(r.err, "random weights") == NULL, "the network was built first: %s", r.err);
    test_free_result(&r);
    free(missing);

    r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", folder, folder);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "is a directory, expected a file name");
    CHECK_MSG(strstr(r.err, "random weights") == NULL, "the network was built first: %s", r.err);
    test_free_result(&r);
}

/* Images of any size are resized to 299×299, and the protocol line reports both counts and
 * the weights. */
TEST(eval_fid_compares_mixed_size_folders)
{
    const char *mixed = test_temp_dir();
    write_dog_png(mixed, "small.png", 4, 32, 32);
    write_dog_png(mixed, "wide.png", 5, 45, 27);
    copy_file(DOG_JPEG, mixed, "large.jpg", 0);
    const char *other = dog_folder(6, 2);

    CommandResult r = test_run_mixgan("eval-fid --inception random:7 %s %s", mixed, other);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    double fid = parse_fid(r.out);
    CHECK_MSG(isfinite(fid) && fid > 0.0, "FID %g", fid);
    char *side_a = mg_format("A=%s (N=3)", mixed), *side_b = mg_format("B=%s (N=2)", other);
    CHECK_STR_CONTAINS(r.out, side_a);
    CHECK_STR_CONTAINS(r.out, side_b);
    CHECK_STR_CONTAINS(r.out, "weights sha256 random weights, seed 7");
    CHECK_STR_CONTAINS(r.err, "random weights, for tests and benchmarks only");
    CHECK_MSG(strstr(r.err, "skipping") == NULL, "an image was skipped: %s", r.err);
    test_free_result(&r);
    free(side_a);
    free(side_b);
}

/* Statistics saved from a folder and compared with the same folder give a distance of zero up
 * to rounding. */
TEST(eval_fid_saved_stats_match_folder)
{
    const char *dogs = shared_dog_folder();
    const char *stats = cached_stats(dogs);
    if (!stats) return;
    /* With random weights, Tr sigma is about 11 for these dogs and two folders of different dogs
     * score about 30, so a distance of 0 is not an artefact of tiny features. */
    Stats saved;
    if (read_stats(stats, &saved)) {
        double trace = 0.0;
        for (int i = 0; i < saved.dim; i++) trace += saved.sigma[(size_t)i * saved.dim + i];
        CHECK_MSG(trace > 1.0, "Tr sigma = %g", trace);
        free_stats(&saved);
    }

    CommandResult r = test_run_mixgan("eval-fid --inception random %s %s", stats, dogs);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    /* N = 4 leaves 2044 eigenvalues of sigma at rounding noise around 0, and each adds up to
     * about 1e-8 of square root to Tr √(sigma·sigma), so a few 1e-5 are float64's floor here. */
    CHECK_NEAR(parse_fid(r.out), 0.0, 1e-4);
    char *side_a = mg_format("A=%s (statistics file, N not recorded)", stats), *side_b = mg_format("B=%s (N=4)", dogs);
    CHECK_STR_CONTAINS(r.out, side_a);
    CHECK_STR_CONTAINS(r.out, side_b);
    CHECK_STR_CONTAINS(r.out, "weights sha256 random weights, seed 0");
    test_free_result(&r);
    free(side_a);
    free(side_b);
}

/* ---- checkpoints and batches --------------------------------------------------------- */

TEST(eval_fid_checkpoint_needs_num_samples)
{
    const char *checkpoint = tiny_checkpoint();
    if (!checkpoint) return;
    CommandResult r = test_run_mixgan("eval-fid --inception random %s %s", checkpoint, STATS_A);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, checkpoint);
    CHECK_STR_CONTAINS(r.err, "pass --num-samples N");
    /* the option is checked before the network is built */
    CHECK_MSG(strstr(r.err, "random weights") == NULL, "the network was built first: %s", r.err);
    test_free_result(&r);

    char *stats = mg_format("%s/stats.npz", test_temp_dir());
    r = test_run_mixgan("eval-fid --inception random --save-stats %s %s", stats, checkpoint);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "pass --num-samples N");
    CHECK(!mg_file_exists(stats));
    test_free_result(&r);
    free(stats);
}

/* `eval-fid --num-samples 4` on a checkpoint generates the images that `mixgan sample` writes
 * with the same seed, quantised the same way, so the statistics are identical. */
TEST(eval_fid_checkpoint_matches_sample_pngs)
{
    const char *checkpoint = tiny_checkpoint(), *samples = sample_folder();
    if (!checkpoint || !samples) return;
    char *args = mg_format("--num-samples 4 %s", checkpoint);
    const char *from_checkpoint = cached_stats(args), *from_pngs = cached_stats(samples);
    if (from_checkpoint && from_pngs) check_same_stats(from_checkpoint, from_pngs, 0.0);
    free(args);
}

/* How far statistics from differently batched runs may differ: nothing where OpenBLAS's
 * products do not depend on the number of rows in a call, else a little float32 rounding
 * (about 2e-7 seen with its Zen kernels). */
static double batching_tolerance(void)
{
    return mg_sgemm_is_reproducible() ? 0.0 : 1e-5;
}

/* The statistics must not depend on how the images are split into batches: 4 dogs in one
 * batch, in batches of 1 and in batches of 3 and 1. */
TEST(eval_fid_batch_size_independent)
{
    const char *dogs = shared_dog_folder();
    char *batch_1 = mg_format("--batch 1 %s", dogs), *batch_3 = mg_format("--batch 3 %s", dogs);
    const char *whole = cached_stats(dogs), *single = cached_stats(batch_1), *split = cached_stats(batch_3);
    if (whole && single) check_same_stats(whole, single, batching_tolerance());
    if (whole && split) check_same_stats(whole, split, batching_tolerance());
    free(batch_1);
    free(batch_3);
}

/* The same for a checkpoint, whose generator then also runs in batches of 3 and 1. */
TEST(eval_fid_checkpoint_batch_size_independent)
{
    const char *checkpoint = tiny_checkpoint();
    if (!checkpoint) return;
    char *whole_args = mg_format("--num-samples 4 %s", checkpoint);
    char *split_args = mg_format("--batch 3 --num-samples 4 %s", checkpoint);
    const char *whole = cached_stats(whole_args), *split = cached_stats(split_args);
    if (whole && split) check_same_stats(whole, split, batching_tolerance());
    free(whole_args);
    free(split_args);
}
