/* The packed dataset format: writer/reader round trip and the reader's checks. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "test.h"
#include "util.h"

enum { SIDE = 4, CHANNELS = 3, IMAGE_BYTES = SIDE * SIDE * CHANNELS };

/* Writes three 4x4 images: two crops of "a/one.jpg" and one of "b/two.png". */
static char *write_sample(void)
{
    char *path = mg_format("%s/sample.bin", test_temp_dir());
    char err[512];
    DatasetWriter writer;
    CHECK_MSG(dataset_writer_open(&writer, path, SIDE, SIDE, CHANNELS, err, sizeof err), "%s", err);
    const DatasetCrop crops[3] = {
        {.source = "a/one.jpg", .object = 0, .x0 = 1, .y0 = 2, .x1 = 11, .y1 = 22,
         .source_width = 40, .source_height = 30},
        {.source = "a/one.jpg", .object = 1, .x0 = 0, .y0 = 0, .x1 = 40, .y1 = 30,
         .source_width = 40, .source_height = 30},
        {.source = "b/two.png", .object = 0, .x0 = 3, .y0 = 0, .x1 = 13, .y1 = 10,
         .source_width = 16, .source_height = 10},
    };
    for (int i = 0; i < 3; i++) {
        uint8_t pixels[IMAGE_BYTES];
        for (int j = 0; j < IMAGE_BYTES; j++) pixels[j] = (uint8_t)(i * 100 + j);
        CHECK_MSG(dataset_writer_add(&writer, pixels, &crops[i], err, sizeof err), "%s", err);
    }
    CHECK_MSG(dataset_writer_commit(&writer, err, sizeof err), "%s", err);
    return path;
}

/* Size of the sample: header, pixels, records, then "a/one.jpg\0b/two.png\0". */
static const size_t SAMPLE_BYTES = 64 + 3 * IMAGE_BYTES + 3 * 32 + 20;

static char *read_bytes(const char *path, size_t *size)
{
    char *data = mg_read_file(path, size);
    CHECK(data != NULL);
    return data;
}

TEST(dataset_round_trip)
{
    char *path = write_sample();
    size_t size = 0;
    free(read_bytes(path, &size));
    CHECK_INT_EQ(size, SAMPLE_BYTES);

    Dataset ds;
    char err[512];
    CHECK_MSG(dataset_load(path, &ds, err, sizeof err), "%s", err);
    CHECK_INT_EQ(ds.count, 3);
    CHECK_INT_EQ(ds.height, SIDE);
    CHECK_INT_EQ(ds.width, SIDE);
    CHECK_INT_EQ(ds.channels, CHANNELS);
    if (ds.count == 3) {
        CHECK_INT_EQ(dataset_image(&ds, 2)[5], 205);
        CHECK_INT_EQ(dataset_image(&ds, 0)[0], 0);
        CHECK(!strcmp(ds.crops[0].source, "a/one.jpg"));
        CHECK(ds.crops[1].source == ds.crops[0].source); /* stored once */
        CHECK(!strcmp(ds.crops[2].source, "b/two.png"));
        CHECK_INT_EQ(ds.crops[1].object, 1);
        CHECK_INT_EQ(ds.crops[0].x0, 1);
        CHECK_INT_EQ(ds.crops[0].y0, 2);
        CHECK_INT_EQ(ds.crops[0].x1, 11);
        CHECK_INT_EQ(ds.crops[0].y1, 22);
        CHECK_INT_EQ(ds.crops[2].source_width, 16);
        CHECK_INT_EQ(ds.crops[2].source_height, 10);
    }
    dataset_free(&ds);
    free(path);
}

TEST(dataset_header_starts_with_magic)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);
    CHECK(memcmp(data, "MGDS", 4) == 0);
    CHECK_INT_EQ(data[4], 1); /* version, little-endian */
    CHECK_INT_EQ(data[8], 3); /* count */
    free(data);
    free(path);
}

/* Loads `path` after writing `data` of `size` bytes there; returns the error message. */
static char *load_error(const char *path, const char *data, size_t size)
{
    test_write_file(path, data, size);
    Dataset ds;
    static char err[512];
    err[0] = '\0';
    CHECK(!dataset_load(path, &ds, err, sizeof err));
    CHECK(ds.pixels == NULL);
    CHECK_INT_EQ(ds.count, 0);
    return err;
}

TEST(dataset_truncated_file)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);
    char *expected = mg_format("truncated: expected %zu bytes", size);
    char *found = mg_format("found %zu", size - 1);
    const char *err = load_error(path, data, size - 1);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, expected);
    CHECK_STR_CONTAINS(err, found);

    err = load_error(path, data, 10);
    CHECK_STR_CONTAINS(err, "truncated: expected a 64-byte header, found a file of 10 bytes");
    free(expected);
    free(found);
    free(data);
    free(path);
}

TEST(dataset_trailing_bytes)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);
    data = mg_realloc(data, size + 1);
    data[size] = 0;
    const char *err = load_error(path, data, size + 1);
    CHECK_STR_CONTAINS(err, "unexpected data after the end");
    free(data);
    free(path);
}

TEST(dataset_wrong_magic)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);
    memcpy(data, "\x89PNG", 4);
    const char *err = load_error(path, data, size);
    CHECK_STR_CONTAINS(err, "not a mixgan dataset (magic bytes 89 50 4e 47, expected \"MGDS\")");
    free(data);
    free(path);
}

TEST(dataset_wrong_version)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);
    data[4] = 2;
    const char *err = load_error(path, data, size);
    CHECK_STR_CONTAINS(err, "unsupported dataset version 2 (this mixgan reads version 1)");
    free(data);
    free(path);
}

TEST(dataset_invalid_header_fields)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);

    char *copy = mg_malloc(size);
    memcpy(copy, data, size);
    memset(copy + 8, 0, 4); /* count */
    CHECK_STR_CONTAINS(load_error(path, copy, size), "image count is 0");

    memcpy(copy, data, size);
    copy[20] = 2; /* channels */
    CHECK_STR_CONTAINS(load_error(path, copy, size), "2 channels, expected 1, 3 or 4");

    memcpy(copy, data, size);
    copy[14] = 1; /* height 65540 */
    CHECK_STR_CONTAINS(load_error(path, copy, size), "expected 1 to 4096 pixels a side");
    free(copy);
    free(data);
    free(path);
}

TEST(dataset_corrupt_record)
{
    char *path = write_sample();
    size_t size;
    char *data = read_bytes(path, &size);
    char *copy = mg_malloc(size);
    size_t record1 = 64 + 3 * IMAGE_BYTES + 32;

    memcpy(copy, data, size);
    copy[record1 + 16] = 41; /* x1 of record 1 past its 40-pixel-wide source */
    CHECK_STR_CONTAINS(load_error(path, copy, size), "record 1 has box (0,0)-(41,30)");

    memcpy(copy, data, size);
    copy[record1] = 100; /* source offset past the 20-byte name table */
    CHECK_STR_CONTAINS(load_error(path, copy, size), "record 1 names source offset 100");

    memcpy(copy, data, size);
    copy[size - 1] = 'x'; /* the name table must end with NUL */
    CHECK_STR_CONTAINS(load_error(path, copy, size), "does not end with a NUL byte");
    free(copy);
    free(data);
    free(path);
}

TEST(dataset_missing_file)
{
    char *path = mg_format("%s/none.bin", test_temp_dir());
    Dataset ds;
    char err[512];
    CHECK(!dataset_load(path, &ds, err, sizeof err));
    CHECK_STR_CONTAINS(err, "none.bin: failed to open: No such file or directory");
    free(path);
}

TEST(dataset_abandoned_writer_leaves_nothing)
{
    const char *dir = test_temp_dir();
    char *path = mg_format("%s/partial.bin", dir);
    char err[512];
    DatasetWriter writer;
    CHECK(dataset_writer_open(&writer, path, SIDE, SIDE, CHANNELS, err, sizeof err));
    uint8_t pixels[IMAGE_BYTES] = {0};
    DatasetCrop crop = {.source = "x.png", .x1 = 1, .y1 = 1, .source_width = 1,
                        .source_height = 1};
    CHECK(dataset_writer_add(&writer, pixels, &crop, err, sizeof err));
    CHECK(!mg_file_exists(path)); /* only the temporary file exists before the commit */
    dataset_writer_abandon(&writer);
    CHECK(!mg_file_exists(path));
    char *listing = mg_format("ls -A '%s' | wc -l", dir);
    FILE *p = popen(listing, "r");
    int files = -1;
    CHECK(p != NULL);
    if (p) {
        CHECK(fscanf(p, "%d", &files) == 1);
        pclose(p);
    }
    CHECK_INT_EQ(files, 0);
    free(listing);
    free(path);
}

TEST(bundled_sample_is_valid)
{
    Dataset ds;
    char err[512];
    CHECK_MSG(dataset_load(DATASET_DEFAULT_PATH, &ds, err, sizeof err), "%s", err);
    CHECK_INT_EQ(ds.count, 2400);
    CHECK_INT_EQ(ds.height, 32);
    CHECK_INT_EQ(ds.width, 32);
    CHECK_INT_EQ(ds.channels, 3);

    /* 20 crops from each of 120 breed folders, in sorted order */
    int breeds = 0, run = 0;
    const char *breed = NULL;
    size_t breed_length = 0;
    for (uint32_t i = 0; i < ds.count; i++) {
        const char *source = ds.crops[i].source;
        size_t length = strcspn(source, "/");
        bool same = breed && length == breed_length && strncmp(source, breed, length) == 0;
        if (!same) {
            if (breed) CHECK_MSG(run == 20, "breed %.*s has %d crops", (int)breed_length, breed, run);
            breeds++;
            run = 0;
            breed = source;
            breed_length = length;
        }
        run++;
        if (i > 0)
            CHECK_MSG(strcmp(ds.crops[i - 1].source, source) < 0, "crop %u out of order: %s", i,
                      source);
    }
    CHECK_INT_EQ(run, 20);

    CHECK_INT_EQ(breeds, 120);
    if (ds.count > 0) CHECK_STR_CONTAINS(ds.crops[0].source, "n02085620-Chihuahua/");
    dataset_free(&ds);
}
