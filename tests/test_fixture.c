/* The fixture reader: a valid file round-trips, and every kind of damage is reported with the
 * file's path and the problem. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"
#include "util.h"

/* A fixture file under construction. */
typedef struct Bytes {
    unsigned char data[512];
    size_t size;
} Bytes;

static void put_u32(Bytes *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b->data[b->size++] = (unsigned char)(v >> (8 * i));
}

static void put_name(Bytes *b, const char *name)
{
    put_u32(b, (uint32_t)strlen(name));
    memcpy(b->data + b->size, name, strlen(name));
    b->size += strlen(name);
}

static void put_floats(Bytes *b, const float *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        put_u32(b, bits);
    }
}

static void put_header(Bytes *b, uint32_t version, uint32_t count)
{
    memcpy(b->data, FIXTURE_MAGIC, 4);
    b->size = 4;
    put_u32(b, version);
    put_u32(b, count);
}

static const float VALUES[6] = {1.5f, -2.0f, 0.25f, 3e-8f, -0.0f, 1e20f};

/* Two tensors: "op/case/x" of shape (2, 3) and the scalar "op/case/y". */
static Bytes valid_file(void)
{
    Bytes b = {0};
    put_header(&b, FIXTURE_VERSION, 2);
    put_name(&b, "op/case/x");
    put_u32(&b, 2);
    put_u32(&b, 2);
    put_u32(&b, 3);
    put_floats(&b, VALUES, 6);
    put_name(&b, "op/case/y");
    put_u32(&b, 0);
    put_floats(&b, VALUES, 1);
    return b;
}

static const char *write_file(const Bytes *b)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/fixture.bin", test_temp_dir());
    test_write_file(path, b->data, b->size);
    return path;
}

/* Loads `b`, which must fail with a message that names the file and contains `expected`. */
static void check_rejected(const Bytes *b, const char *expected)
{
    const char *path = write_file(b);
    Fixture fixture;
    char error[512] = "";
    bool ok = fixture_load(&fixture, path, error, sizeof error);
    CHECK_MSG(!ok, "a damaged file loaded; expected an error containing \"%s\"", expected);
    if (ok) {
        fixture_free(&fixture);
        return;
    }
    CHECK_STR_CONTAINS(error, path);
    CHECK_STR_CONTAINS(error, expected);
    CHECK_INT_EQ(fixture.count, 0);
}

TEST(fixture_loads_valid_file)
{
    Bytes b = valid_file();
    const char *path = write_file(&b);
    Fixture fixture;
    char error[512] = "";
    CHECK_MSG(fixture_load(&fixture, path, error, sizeof error), "%s", error);
    CHECK_INT_EQ(fixture.count, 2);

    const FixtureTensor *x = fixture_find(&fixture, "op/case/x");
    CHECK(x != NULL);
    if (x) {
        CHECK(shape_equal(x->shape, shape2(2, 3)));
        CHECK_INT_EQ(x->numel, 6);
        CHECK(memcmp(x->data, VALUES, sizeof VALUES) == 0);
    }
    const FixtureTensor *y = fixture_find(&fixture, "op/case/y");
    CHECK(y != NULL);
    if (y) {
        CHECK_INT_EQ(y->shape.ndim, 0);
        CHECK_INT_EQ(y->numel, 1);
        CHECK(y->data[0] == VALUES[0]);
    }
    CHECK(fixture_find(&fixture, "op/case") == NULL);
    fixture_free(&fixture);
}

TEST(fixture_rejects_missing_file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/absent.bin", test_temp_dir());
    Fixture fixture;
    char error[512] = "";
    CHECK(!fixture_load(&fixture, path, error, sizeof error));
    CHECK_STR_CONTAINS(error, path);
    CHECK_STR_CONTAINS(error, "No such file");
    CHECK_STR_CONTAINS(error, "gen_*_fixtures.py");
}

TEST(fixture_rejects_bad_magic)
{
    Bytes b = valid_file();
    b.data[0] = 'X';
    check_rejected(&b, "not a fixture file");
}

TEST(fixture_rejects_empty_file)
{
    Bytes b = {0};
    check_rejected(&b, "not a fixture file");
}

TEST(fixture_rejects_other_version)
{
    Bytes b = valid_file();
    b.data[4] = FIXTURE_VERSION + 1;
    check_rejected(&b, "unsupported version 2");
}

TEST(fixture_rejects_truncated_data)
{
    Bytes b = valid_file();
    b.size -= 2;
    check_rejected(&b, "truncated file");
}

TEST(fixture_rejects_truncated_header)
{
    Bytes b = valid_file();
    b.size = 10;
    check_rejected(&b, "while reading the tensor count");
}

TEST(fixture_rejects_trailing_bytes)
{
    Bytes b = valid_file();
    put_u32(&b, 0);
    check_rejected(&b, "4 unexpected bytes after the last of 2 tensors");
}

TEST(fixture_rejects_too_many_dimensions)
{
    Bytes b = {0};
    put_header(&b, FIXTURE_VERSION, 1);
    put_name(&b, "op/case/x");
    put_u32(&b, 5);
    for (int i = 0; i < 5; i++) put_u32(&b, 1);
    put_floats(&b, VALUES, 1);
    check_rejected(&b, "'op/case/x' has 5 dimensions");
}

TEST(fixture_rejects_zero_dimension)
{
    Bytes b = {0};
    put_header(&b, FIXTURE_VERSION, 1);
    put_name(&b, "op/case/x");
    put_u32(&b, 2);
    put_u32(&b, 3);
    put_u32(&b, 0);
    check_rejected(&b, "dimension 1 of size 0");
}

TEST(fixture_rejects_empty_name)
{
    Bytes b = {0};
    put_header(&b, FIXTURE_VERSION, 1);
    put_u32(&b, 0);
    put_u32(&b, 0);
    put_floats(&b, VALUES, 1);
    check_rejected(&b, "name length of 0 bytes");
}

TEST(fixture_rejects_duplicate_name)
{
    Bytes b = {0};
    put_header(&b, FIXTURE_VERSION, 2);
    for (int i = 0; i < 2; i++) {
        put_name(&b, "op/case/y");
        put_u32(&b, 0);
        put_floats(&b, VALUES, 1);
    }
    check_rejected(&b, "'op/case/y' appears twice");
}

TEST(fixture_rejects_inflated_count)
{
    Bytes b = valid_file();
    b.data[8] = 0xff;
    b.data[9] = 0xff;
    check_rejected(&b, "header claims 65535 tensors");
}
