/* ZIP reader on archives written by Python's zipfile, and the writer by round trip. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util.h"
#include "zip.h"

/* Rebuilds the byte pattern (i*a + b) mod 251 that tests/gen_zip_fixtures.py writes. */
static uint8_t *make_pattern(size_t n, unsigned a, unsigned b)
{
    uint8_t *p = mg_malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * a + b) % 251);
    return p;
}

static bool member_equals(const ZipReader *zip, const char *name, const void *expected, size_t expected_size)
{
    const ZipEntry *e = zip_reader_find(zip, name);
    if (!e) {
        test_fail(__FILE__, __LINE__, "member '%s' not found", name);
        return false;
    }
    uint8_t *data;
    size_t size;
    char err[512];
    if (!zip_reader_extract(zip, e, &data, &size, err, sizeof err)) {
        test_fail(__FILE__, __LINE__, "extracting '%s': %s", name, err);
        return false;
    }
    bool same = size == expected_size && memcmp(data, expected, size) == 0;
    free(data);
    return same;
}

TEST(zip_reads_python_archive)
{
    ZipReader zip;
    char err[512];
    bool opened = zip_reader_open_file(&zip, test_data_path("data/zip/python_mixed.zip"), err, sizeof err);
    CHECK_MSG(opened, "%s", err);
    if (!opened) return;
    CHECK_INT_EQ(zip.entry_count, 3);

    const ZipEntry *stored = zip_reader_find(&zip, "stored.txt");
    const ZipEntry *deflated = zip_reader_find(&zip, "deflated.bin");
    CHECK(stored != NULL);
    CHECK(deflated != NULL);
    if (stored) CHECK_INT_EQ(stored->method, ZIP_METHOD_STORED);
    if (deflated) CHECK_INT_EQ(deflated->method, ZIP_METHOD_DEFLATE);
    CHECK(zip_reader_find(&zip, "missing") == NULL);

    uint8_t *pattern = make_pattern(5000, 31, 7);
    CHECK(member_equals(&zip, "stored.txt", "stored member\n", 14));
    CHECK(member_equals(&zip, "deflated.bin", pattern, 5000));
    CHECK(member_equals(&zip, "empty", "", 0));
    free(pattern);
    zip_reader_close(&zip);
}

TEST(zip_reads_zip64_extra_fields)
{
    char err[512];
    ZipReader zip;
    bool opened = zip_reader_open_file(&zip, test_data_path("data/zip/force_zip64.zip"), err, sizeof err);
    CHECK_MSG(opened, "%s", err);
    if (opened) {
        uint8_t *pattern = make_pattern(3000, 17, 5);
        CHECK(member_equals(&zip, "member.bin", pattern, 3000));
        free(pattern);
        zip_reader_close(&zip);
    }

    opened = zip_reader_open_file(&zip, test_data_path("data/zip/zip64_handmade.zip"), err, sizeof err);
    CHECK_MSG(opened, "%s", err);
    if (opened) {
        CHECK_INT_EQ(zip.entry_count, 1);
        CHECK_INT_EQ(zip.entries[0].uncompressed_size, 1000);
        CHECK_INT_EQ(zip.entries[0].compressed_size, 1000);
        CHECK_INT_EQ(zip.entries[0].local_header_offset, 0);
        uint8_t *pattern = make_pattern(1000, 13, 1);
        CHECK(member_equals(&zip, "payload.bin", pattern, 1000));
        free(pattern);
        zip_reader_close(&zip);
    }
}

TEST(zip_detects_crc_mismatch)
{
    size_t size;
    char *bytes = mg_read_file(test_data_path("data/zip/python_mixed.zip"), &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    /* The stored member's text starts right after its 30-byte local header and 10-byte name. */
    CHECK(memcmp(bytes + 40, "stored", 6) == 0);
    bytes[40] = 'S';

    ZipReader zip;
    char err[512];
    CHECK(zip_reader_open_memory(&zip, "damaged.zip", bytes, size, err, sizeof err));
    uint8_t *data;
    size_t data_size;
    CHECK(!zip_reader_extract(&zip, zip_reader_find(&zip, "stored.txt"), &data, &data_size, err, sizeof err));
    CHECK_STR_CONTAINS(err, "damaged.zip: member 'stored.txt' is corrupt: CRC-32");
    zip_reader_close(&zip);
    free(bytes);
}

/* Every prefix of an archive lacks the end record, so opening must fail with a message, and
 * nothing may read past the buffer (the sanitizer build checks that). */
TEST(zip_rejects_every_truncation)
{
    size_t size;
    char *bytes = mg_read_file(test_data_path("data/zip/python_mixed.zip"), &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    for (size_t n = 0; n < size; n++) {
        uint8_t *prefix = mg_malloc(n ? n : 1);
        memcpy(prefix, bytes, n);
        ZipReader zip;
        char err[512] = "";
        bool opened = zip_reader_open_memory(&zip, "cut.zip", prefix, n, err, sizeof err);
        CHECK_MSG(!opened, "prefix of %zu bytes opened", n);
        if (opened) zip_reader_close(&zip);
        CHECK_MSG(strncmp(err, "cut.zip: ", 9) == 0, "prefix of %zu bytes: message \"%s\"", n, err);
        free(prefix);
    }
    free(bytes);
}

/* Flipping any single byte must give either the right content or an error, never a crash. */
TEST(zip_survives_corrupted_bytes)
{
    size_t size;
    char *bytes = mg_read_file(test_data_path("data/zip/python_mixed.zip"), &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    for (size_t at = 0; at < size; at++) {
        for (int variant = 0; variant < 2; variant++) {
            uint8_t *copy = mg_malloc(size);
            memcpy(copy, bytes, size);
            copy[at] = variant ? (uint8_t)~copy[at] : 0xff;
            ZipReader zip;
            char err[512];
            if (zip_reader_open_memory(&zip, "flip.zip", copy, size, err, sizeof err)) {
                for (size_t i = 0; i < zip.entry_count; i++) {
                    uint8_t *data;
                    size_t data_size;
                    if (zip_reader_extract(&zip, &zip.entries[i], &data, &data_size, err, sizeof err)) free(data);
                }
                zip_reader_close(&zip);
            }
            free(copy);
        }
    }
    free(bytes);
}

TEST(zip_writer_round_trip)
{
    const char *dir = test_temp_dir();
    char *path = mg_format("%s/round_trip.zip", dir);
    size_t big_size = 1 << 20;
    uint8_t *compressible = mg_malloc(big_size);
    for (size_t i = 0; i < big_size; i++) compressible[i] = (uint8_t)(i / 1000);
    uint8_t *noisy = make_pattern(70000, 2654435761u, 12345);

    MgOutput out;
    CHECK(mg_output_open(&out, path));
    ZipWriter writer;
    zip_writer_init(&writer, &out);
    char err[512];
    CHECK(zip_writer_add(&writer, "a/stored.bin", noisy, 70000, ZIP_METHOD_STORED, err, sizeof err));
    CHECK(zip_writer_add(&writer, "compressible.bin", compressible, big_size, ZIP_METHOD_DEFLATE, err, sizeof err));
    CHECK(zip_writer_add(&writer, "noisy.bin", noisy, 70000, ZIP_METHOD_DEFLATE, err, sizeof err));
    CHECK(zip_writer_add(&writer, "empty_deflate", "", 0, ZIP_METHOD_DEFLATE, err, sizeof err));
    CHECK(zip_writer_add(&writer, "empty_stored", "", 0, ZIP_METHOD_STORED, err, sizeof err));
    CHECK(zip_writer_finish(&writer, err, sizeof err));
    zip_writer_free(&writer);
    CHECK(mg_output_commit(&out));

    ZipReader zip;
    bool opened = zip_reader_open_file(&zip, path, err, sizeof err);
    CHECK_MSG(opened, "%s", err);
    if (opened) {
        CHECK_INT_EQ(zip.entry_count, 5);
        const ZipEntry *c = zip_reader_find(&zip, "compressible.bin");
        CHECK(c != NULL);
        if (c) {
            CHECK_INT_EQ(c->method, ZIP_METHOD_DEFLATE);
            CHECK_MSG(c->compressed_size < big_size / 20, "compressed to %llu bytes", (unsigned long long)c->compressed_size);
        }
        CHECK(member_equals(&zip, "a/stored.bin", noisy, 70000));
        CHECK(member_equals(&zip, "compressible.bin", compressible, big_size));
        CHECK(member_equals(&zip, "noisy.bin", noisy, 70000));
        CHECK(member_equals(&zip, "empty_deflate", "", 0));
        CHECK(member_equals(&zip, "empty_stored", "", 0));
        zip_reader_close(&zip);
    }
    free(compressible);
    free(noisy);
    free(path);
}

TEST(zip_open_errors_name_file)
{
    const char *dir = test_temp_dir();
    char *missing = mg_format("%s/missing.zip", dir);
    ZipReader zip;
    char err[512];
    CHECK(!zip_reader_open_file(&zip, missing, err, sizeof err));
    CHECK_STR_CONTAINS(err, missing);
    CHECK_STR_CONTAINS(err, "failed to open");

    const char text[] = "this is plain text, long enough to hold an end record if it were a zip file";
    CHECK(!zip_reader_open_memory(&zip, "text.zip", text, sizeof text - 1, err, sizeof err));
    CHECK_STR_CONTAINS(err, "text.zip: not a ZIP archive");
    free(missing);
}

TEST(zip_crc32_check_value)
{
    /* The standard check value of CRC-32 is that of the ASCII string "123456789". */
    CHECK_INT_EQ(zip_crc32(0, "123456789", 9), 0xcbf43926);
    CHECK_INT_EQ(zip_crc32(zip_crc32(0, "1234", 4), "56789", 5), 0xcbf43926);
}
