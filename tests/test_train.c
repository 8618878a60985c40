/* mixgan train, sample and info, run as a user runs them, on the bundled dataset and the tiny
 * config in tests/configs/tiny-hybrid.json (a few milliseconds per iteration). */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "gan.h"
#include "test.h"
#include "util.h"

#define TINY "tests/configs/tiny-hybrid.json"

static char *read_whole(const char *path, size_t *size)
{
    char *data = mg_read_file(path, size);
    CHECK_MSG(data != NULL, "cannot read %s", path);
    return data;
}

static bool files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *da = mg_read_file(a, &na), *db = mg_read_file(b, &nb);
    bool equal = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return equal;
}

/* Writes a copy of the tiny config with one text replacement. */
static char *tiny_variant(const char *dir, const char *name, const char *from, const char *to)
{
    size_t size;
    char *text = read_whole(TINY, &size);
    char *at = strstr(text, from);
    CHECK_MSG(at != NULL, "\"%s\" not found in the tiny config", from);
    char *path = mg_format("%s/%s", dir, name);
    char *edited = mg_format("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    test_write_text(path, edited);
    free(edited);
    free(text);
    return path;
}

TEST(reference_parameter_counts)
{
    static const struct {
        const char *config;
        size_t generator, discriminator;
        const char *mib;
    } cases[] = {
        {"configs/dcgan.json", 14695936, 2637312, "56.06 MiB"},
        {"configs/transgan.json", 8415187, 3189249, "32.10 MiB"},
        {"configs/hybrid.json", 7636131, 1781953, "29.13 MiB"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        ModelConfig config;
        config_load(cases[i].config, &config);
        Gan gan;
        gan_build(&gan, &config);
        CHECK_INT_EQ(gan.generator.params.param_total, cases[i].generator);
        CHECK_INT_EQ(gan.discriminator.params.param_total, cases[i].discriminator);
        gan_free(&gan);

        CommandResult r = test_run_mixgan("info --config %s", cases[i].config);
        CHECK_INT_EQ(r.status, 0);
        CHECK_STR_CONTAINS(r.out, cases[i].mib);
        test_free_result(&r);
    }
}

TEST(train_writes_run_outputs)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/run --threads 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    CHECK_STR_CONTAINS(r.out, "step 4/4");
    CHECK_STR_CONTAINS(r.out, "ms/it");
    CHECK_STR_CONTAINS(r.out, "img/s");
    CHECK_STR_CONTAINS(r.out, "ETA");
    CHECK_STR_CONTAINS(r.out, "estimated activation memory");
    CHECK_STR_CONTAINS(r.out, "generator[3]");
    test_free_result(&r);

    char *path = mg_format("%s/run/metrics.csv", dir);
    char *csv = read_whole(path, NULL);
    CHECK_STR_CONTAINS(csv, "step,d_loss,g_loss,d_real,d_fake,ms_per_iteration,images_per_second\n");
    CHECK_STR_CONTAINS(csv, "\n4,");
    free(csv);
    free(path);
    path = mg_format("%s/run/samples/step_00000002.png", dir);
    CHECK(mg_file_exists(path));
    free(path);
    path = mg_format("%s/run/checkpoints/step_00000004.ckpt", dir);
    CHECK(mg_file_exists(path));
    free(path);
}

TEST(resumed_run_matches_uninterrupted)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/full --steps 6 --threads 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    r = test_run_mixgan("train --config %s --out %s/split --steps 3 --threads 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    r = test_run_mixgan("train --config %s --out %s/split --steps 6 --resume --threads 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    CHECK_STR_CONTAINS(r.out, "resuming from");
    test_free_result(&r);

    char *a = mg_format("%s/full/checkpoints/step_00000006.ckpt", dir);
    char *b = mg_format("%s/split/checkpoints/step_00000006.ckpt", dir);
    CHECK_MSG(files_equal(a, b), "%s and %s differ", a, b);
    free(a);
    free(b);
}

TEST(sample_is_deterministic)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/run --steps 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    const char *ckpt = "run/checkpoints/step_00000002.ckpt";
    r = test_run_mixgan("sample --checkpoint %s/%s --num 5 --seed 3 --out %s/a --grid %s/a.png", dir, ckpt, dir, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    r = test_run_mixgan("sample --checkpoint %s/%s --num 5 --seed 3 --out %s/b", dir, ckpt, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    r = test_run_mixgan("sample --checkpoint %s/%s --num 5 --seed 4 --out %s/c", dir, ckpt, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);

    for (int i = 0; i < 5; i++) {
        char *a = mg_format("%s/a/sample_%06d.png", dir, i), *b = mg_format("%s/b/sample_%06d.png", dir, i);
        char *c = mg_format("%s/c/sample_%06d.png", dir, i);
        CHECK_MSG(files_equal(a, b), "same seed, different image: %s", a);
        CHECK_MSG(!files_equal(a, c), "different seeds, same image: %s", a);
        free(a);
        free(b);
        free(c);
    }
    char *grid = mg_format("%s/a.png", dir);
    CHECK(mg_file_exists(grid));
    free(grid);
}

TEST(config_errors_name_file_and_key)
{
    const char *dir = test_temp_dir();
    static const struct {
        const char *from, *to, *message;
    } cases[] = {
        {"\"heads\": 2}", "\"hedas\": 2}", "generator[3].hedas: unknown key"},
        {"\"depth\": 1, \"heads\": 2}", "\"depth\": 1, \"heads\": 3}", "dim 32 is not divisible by heads 3"},
        {"\"depth\": 1, \"heads\": 2}", "\"depth\": \"one\", \"heads\": 2}", "generator[3].depth: expected an integer"},
        {"\"padding\": 1, \"bias\": true}", "\"padding\": 0, \"bias\": true}", "adjust the upsampling layers"},
        {"\"loss\": \"hinge\"", "\"loss\": \"wasserstein\"", "training.loss: unknown loss"},
        {"\"batch_size\": 8,", "\"batch_size\": 8,,", "invalid JSON at line"},
        {"\"type\": \"pos_embed\"", "\"type\": \"positional\"", "unknown layer type \"positional\""},
        {"\"lr\": 0.0002,", "", "training.lr: missing"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.json", i);
        char *path = tiny_variant(dir, name, cases[i].from, cases[i].to);
        CommandResult r = test_run_mixgan("train --config %s --out %s/run%zu", path, dir, i);
        CHECK_INT_EQ(r.status, 1);
        CHECK_STR_CONTAINS(r.err, path);
        CHECK_STR_CONTAINS(r.err, cases[i].message);
        test_free_result(&r);
        free(path);
    }
    CommandResult r = test_run_mixgan("info --config %s/missing.json", dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "cannot read config");
    test_free_result(&r);
}

TEST(train_rejects_bad_data_and_dirs)
{
    const char *dir = test_temp_dir();
    char *text = mg_format("%s/notdata.bin", dir);
    test_write_text(text, "hello, this is not a dataset");
    CommandResult r = test_run_mixgan("train --config %s --data %s --out %s/run", TINY, text, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, text);
    test_free_result(&r);
    free(text);

    /* a dataset of 16×16 crops for a 32×32 config */
    r = test_run_mixgan("prepare --images tests/data/stanford-dogs/Images --size 16 --out %s/small.bin", dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    r = test_run_mixgan("train --config %s --data %s/small.bin --out %s/run", TINY, dir, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "prepare the data with --size 32");
    test_free_result(&r);

    /* a run directory below a regular file cannot be created */
    char *file = mg_format("%s/file", dir);
    test_write_text(file, "x");
    r = test_run_mixgan("train --config %s --out %s/run", TINY, file);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "cannot create run directory");
    test_free_result(&r);
    free(file);

    r = test_run_mixgan("train --config %s --out %s/empty --resume", TINY, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "no checkpoint");
    test_free_result(&r);
}

TEST(train_never_overwrites_a_run)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/run --steps 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    char *ckpt = mg_format("%s/run/checkpoints/step_00000002.ckpt", dir);
    size_t before_size;
    char *before = read_whole(ckpt, &before_size);

    r = test_run_mixgan("train --config %s --out %s/run --steps 4", TINY, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "pass --resume");
    test_free_result(&r);

    /* resuming with another model is refused and names the first difference */
    char *other = tiny_variant(dir, "other.json", "\"depth\": 1, \"heads\": 2}", "\"depth\": 2, \"heads\": 2}");
    r = test_run_mixgan("train --config %s --out %s/run --steps 4 --resume", other, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "different config");
    CHECK_STR_CONTAINS(r.err, "generator[3].depth");
    test_free_result(&r);

    size_t after_size;
    char *after = read_whole(ckpt, &after_size);
    CHECK(before_size == after_size && memcmp(before, after, before_size) == 0);
    free(before);
    free(after);
    free(ckpt);
    free(other);
}

TEST(truncated_checkpoint_is_reported)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/run --steps 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    char *ckpt = mg_format("%s/run/checkpoints/step_00000002.ckpt", dir);
    size_t size;
    char *data = read_whole(ckpt, &size);
    char *cut = mg_format("%s/cut.ckpt", dir);
    test_write_file(cut, data, size - 100);
    r = test_run_mixgan("sample --checkpoint %s --out %s/s", cut, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "truncated");
    CHECK_STR_CONTAINS(r.err, cut);
    test_free_result(&r);

    data[0] = 'X';
    test_write_file(cut, data, size);
    r = test_run_mixgan("sample --checkpoint %s --out %s/s", cut, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "not a mixgan checkpoint");
    test_free_result(&r);
    free(data);
    free(ckpt);
    free(cut);
}

TEST(nan_loss_stops_and_keeps_checkpoint)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/run --steps 2", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);

    /* poison the discriminator's weights so that the next loss is NaN */
    char *ckpt = mg_format("%s/run/checkpoints/step_00000002.ckpt", dir);
    size_t size;
    char *data = read_whole(ckpt, &size);
    CheckpointHeader h;
    memcpy(&h, data, sizeof h);
    size_t d_offset = CHECKPOINT_HEADER_BYTES + h.config_bytes + (h.generator_params + h.generator_buffers) * 4;
    float nan_value = __builtin_nanf("");
    for (size_t i = 0; i < h.discriminator_params; i++) memcpy(data + d_offset + i * 4, &nan_value, 4);
    test_write_file(ckpt, data, size);

    r = test_run_mixgan("train --config %s --out %s/run --steps 4 --resume", TINY, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "NaN or infinite at step 3");
    CHECK_STR_CONTAINS(r.err, "step_00000002.ckpt");
    test_free_result(&r);

    size_t after_size;
    char *after = read_whole(ckpt, &after_size);
    CHECK(after_size == size && memcmp(after, data, size) == 0);
    char *next = mg_format("%s/run/checkpoints/step_00000003.ckpt", dir);
    CHECK(!mg_file_exists(next));
    free(next);
    free(after);
    free(data);
    free(ckpt);
}

TEST(sigint_checkpoints_and_exits_zero)
{
    const char *dir = test_temp_dir();
    /* start a long run, wait for its first metrics row, then interrupt it */
    CommandResult r = test_run_mixgan(
        "train --config %s --out %s/run --steps 1000000 >%s/log 2>&1 & pid=$!; "
        "for i in $(seq 200); do grep -qs '^2,' %s/run/metrics.csv && break; sleep 0.05; done; "
        "kill -INT $pid; wait $pid",
        TINY, dir, dir, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    char *log_path = mg_format("%s/log", dir);
    char *log = read_whole(log_path, NULL);
    CHECK_STR_CONTAINS(log, "stopped by SIGINT");
    CHECK_STR_CONTAINS(log, "--steps 1000000 --resume");
    free(log);
    free(log_path);
    char *checkpoints = mg_format("%s/run/checkpoints", dir);
    char *latest = checkpoint_find_latest(checkpoints);
    CHECK(latest != NULL);
    free(latest);
    free(checkpoints);
}

TEST(sample_bad_grid_path_writes_nothing)
{
    const char *dir = test_temp_dir();
    CommandResult r = test_run_mixgan("train --config %s --out %s/run --steps 1", TINY, dir);
    CHECK_INT_EQ(r.status, 0);
    test_free_result(&r);
    r = test_run_mixgan("sample --checkpoint %s/run/checkpoints/step_00000001.ckpt --num 3 --out %s/s --grid %s/missing/g.png",
                        dir, dir, dir);
    CHECK_INT_EQ(r.status, 1);
    CHECK_STR_CONTAINS(r.err, "does not exist");
    char *png = mg_format("%s/s/sample_000000.png", dir);
    CHECK_MSG(!mg_file_exists(png), "%s was written although the grid path is invalid", png);
    free(png);
    test_free_result(&r);
}
