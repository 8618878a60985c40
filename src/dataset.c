/* The packed dataset file: reader with full validation, and the streaming writer used by
 * `prepare`. The layout is documented in docs/data-format.md. */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Byte offsets of the header fields. */
enum {
    OFFSET_MAGIC = 0,
    OFFSET_VERSION = 4,
    OFFSET_COUNT = 8,
    OFFSET_HEIGHT = 12,
    OFFSET_WIDTH = 16,
    OFFSET_CHANNELS = 20,
    OFFSET_SOURCES_BYTES = 24, /* uint64; bytes 32-63 are reserved and written as zero */
};

static uint32_t read_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_u64(const uint8_t *p)
{
    return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32;
}

static void write_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void write_u64(uint8_t *p, uint64_t v)
{
    write_u32(p, (uint32_t)v);
    write_u32(p + 4, (uint32_t)(v >> 32));
}

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct Header {
    uint32_t count, height, width, channels;
    uint64_t sources_bytes;
} Header;

static bool check_header(const char *path, const uint8_t *bytes, Header *h, char *err,
                         size_t err_size)
{
    uint32_t magic = read_u32(bytes + OFFSET_MAGIC);
    if (magic != DATASET_MAGIC) {
        snprintf(err, err_size,
                 "%s: not a mixgan dataset (magic bytes %02x %02x %02x %02x, expected \"MGDS\"); "
                 "create one with 'mixgan prepare'",
                 path, bytes[0], bytes[1], bytes[2], bytes[3]);
        return false;
    }
    uint32_t version = read_u32(bytes + OFFSET_VERSION);
    if (version != DATASET_VERSION) {
        snprintf(err, err_size,
                 "%s: unsupported dataset version %u (this mixgan reads version %u); "
                 "re-create it with this mixgan's 'prepare'",
                 path, version, DATASET_VERSION);
        return false;
    }
    h->count = read_u32(bytes + OFFSET_COUNT);
    h->height = read_u32(bytes + OFFSET_HEIGHT);
    h->width = read_u32(bytes + OFFSET_WIDTH);
    h->channels = read_u32(bytes + OFFSET_CHANNELS);
    h->sources_bytes = read_u64(bytes + OFFSET_SOURCES_BYTES);
    if (h->count == 0) {
        snprintf(err, err_size, "%s: invalid header: image count is 0, expected at least 1",
                 path);
        return false;
    }
    if (h->height < 1 || h->height > DATASET_MAX_SIDE || h->width < 1 ||
        h->width > DATASET_MAX_SIDE) {
        snprintf(err, err_size,
                 "%s: invalid header: image size %ux%u, expected 1 to %d pixels a side", path,
                 h->width, h->height, DATASET_MAX_SIDE);
        return false;
    }
    if (h->channels != 1 && h->channels != 3 && h->channels != 4) {
        snprintf(err, err_size, "%s: invalid header: %u channels, expected 1, 3 or 4", path,
                 h->channels);
        return false;
    }
    if (h->sources_bytes == 0 || h->sources_bytes > UINT32_MAX) {
        snprintf(err, err_size,
                 "%s: invalid header: source name table of %llu bytes, expected 1 to %u", path,
                 (unsigned long long)h->sources_bytes, UINT32_MAX);
        return false;
    }
    return true;
}

static uint64_t pixel_bytes(const Header *h)
{
    return (uint64_t)h->count * h->height * h->width * h->channels;
}

static bool check_records(const char *path, Dataset *ds, const uint8_t *records,
                          const char *sources, uint64_t sources_bytes, char *err,
                          size_t err_size)
{
    if (sources[sources_bytes - 1] != '\0') {
        snprintf(err, err_size, "%s: corrupt: the source name table does not end with a NUL byte",
                 path);
        return false;
    }
    for (uint32_t i = 0; i < ds->count; i++) {
        const uint8_t *r = records + (size_t)i * DATASET_RECORD_BYTES;
        uint32_t offset = read_u32(r);
        DatasetCrop *c = &ds->crops[i];
        c->object = read_u32(r + 4);
        c->x0 = read_u32(r + 8);
        c->y0 = read_u32(r + 12);
        c->x1 = read_u32(r + 16);
        c->y1 = read_u32(r + 20);
        c->source_width = read_u32(r + 24);
        c->source_height = read_u32(r + 28);
        if (offset >= sources_bytes) {
            snprintf(err, err_size,
                     "%s: corrupt: record %u names source offset %u, expected less than %llu",
                     path, i, offset, (unsigned long long)sources_bytes);
            return false;
        }
        c->source = sources + offset;
        if (!(c->x0 < c->x1 && c->x1 <= c->source_width && c->y0 < c->y1 &&
              c->y1 <= c->source_height)) {
            snprintf(err, err_size,
                     "%s: corrupt: record %u has box (%u,%u)-(%u,%u), which is not inside its "
                     "%ux%u source image",
                     path, i, c->x0, c->y0, c->x1, c->y1, c->source_width, c->source_height);
            return false;
        }
    }
    return true;
}

bool dataset_load(const char *path, Dataset *out, char *err, size_t err_size)
{
    *out = (Dataset){0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: failed to open: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s: not a regular file", path);
        fclose(f);
        return false;
    }
    uint64_t file_size = (uint64_t)st.st_size;
    uint8_t header_bytes[DATASET_HEADER_BYTES];
    if (file_size < DATASET_HEADER_BYTES ||
        fread(header_bytes, 1, DATASET_HEADER_BYTES, f) != DATASET_HEADER_BYTES) {
        snprintf(err, err_size,
                 "%s: truncated: expected a %d-byte header, found a file of %llu bytes", path,
                 DATASET_HEADER_BYTES, (unsigned long long)file_size);
        fclose(f);
        return false;
    }
    Header h;
    if (!check_header(path, header_bytes, &h, err, err_size)) {
        fclose(f);
        return false;
    }
    uint64_t records_bytes = (uint64_t)h.count * DATASET_RECORD_BYTES;
    uint64_t expected = DATASET_HEADER_BYTES + pixel_bytes(&h) + records_bytes + h.sources_bytes;
    if (file_size != expected) {
        snprintf(err, err_size,
                 "%s: %s: expected %llu bytes for %u images of %ux%ux%u and a %llu-byte source "
                 "name table, found %llu",
                 path, file_size < expected ? "truncated" : "unexpected data after the end",
                 (unsigned long long)expected, h.count, h.width, h.height, h.channels,
                 (unsigned long long)h.sources_bytes, (unsigned long long)file_size);
        fclose(f);
        return false;
    }
    if (expected > SIZE_MAX) {
        snprintf(err, err_size, "%s: file of %llu bytes does not fit in memory", path,
                 (unsigned long long)expected);
        fclose(f);
        return false;
    }

    uint8_t *data = mg_malloc((size_t)file_size);
    memcpy(data, header_bytes, DATASET_HEADER_BYTES);
    size_t rest = (size_t)file_size - DATASET_HEADER_BYTES;
    size_t got = fread(data + DATASET_HEADER_BYTES, 1, rest, f);
    int read_error = ferror(f);
    fclose(f);
    if (got != rest) {
        snprintf(err, err_size, "%s: failed to read: %s", path,
                 read_error ? strerror(errno) : "file shrank while reading");
        free(data);
        return false;
    }

    out->count = h.count;
    out->height = h.height;
    out->width = h.width;
    out->channels = h.channels;
    out->pixels = data + DATASET_HEADER_BYTES;
    out->file_data = data;
    out->file_size = (size_t)file_size;
    out->crops = mg_calloc(h.count, sizeof *out->crops);
    const uint8_t *records = out->pixels + pixel_bytes(&h);
    const char *sources = (const char *)(records + records_bytes);
    if (!check_records(path, out, records, sources, h.sources_bytes, err, err_size)) {
        dataset_free(out);
        return false;
    }
    return true;
}

void dataset_free(Dataset *dataset)
{
    free(dataset->crops);
    free(dataset->file_data);
    *dataset = (Dataset){0};
}

/* ---- writer ------------------------------------------------------------------------------ */

bool dataset_writer_open(DatasetWriter *writer, const char *path, uint32_t height,
                         uint32_t width, uint32_t channels, char *err, size_t err_size)
{
    *writer = (DatasetWriter){0};
    if (height < 1 || height > DATASET_MAX_SIDE || width < 1 || width > DATASET_MAX_SIDE ||
        channels < 1 || channels > 4)
        mg_panic("dataset_writer_open: invalid image shape %ux%ux%u", height, width, channels);
    if (!mg_output_open(&writer->out, path)) {
        snprintf(err, err_size, "%s: failed to create: %s", path, strerror(errno));
        return false;
    }
    writer->height = height;
    writer->width = width;
    writer->channels = channels;
    /* The header is written again with the final counts at commit time. */
    uint8_t placeholder[DATASET_HEADER_BYTES] = {0};
    if (!mg_output_write(&writer->out, placeholder, sizeof placeholder)) {
        snprintf(err, err_size, "%s: failed to write: %s", path, strerror(errno));
        dataset_writer_abandon(writer);
        return false;
    }
    return true;
}

static size_t add_source(DatasetWriter *w, const char *source)
{
    if (w->count > 0 && strcmp(w->sources + w->last_source_offset, source) == 0)
        return w->last_source_offset;
    size_t length = strlen(source) + 1;
    if (w->sources_size + length > w->sources_capacity) {
        w->sources_capacity = 2 * (w->sources_size + length) + 4096;
        w->sources = mg_realloc(w->sources, w->sources_capacity);
    }
    memcpy(w->sources + w->sources_size, source, length);
    w->last_source_offset = w->sources_size;
    w->sources_size += length;
    return w->last_source_offset;
}

bool dataset_writer_add(DatasetWriter *writer, const uint8_t *pixels, const DatasetCrop *crop,
                        char *err, size_t err_size)
{
    if (writer->count == UINT32_MAX) {
        snprintf(err, err_size, "%s: too many images for one dataset file (at most %u)",
                 writer->out.path, UINT32_MAX - 1);
        return false;
    }
    size_t image_bytes = (size_t)writer->height * writer->width * writer->channels;
    if (!mg_output_write(&writer->out, pixels, image_bytes)) {
        snprintf(err, err_size, "%s: failed to write: %s", writer->out.path, strerror(errno));
        return false;
    }
    size_t offset = add_source(writer, crop->source);
    if (offset > UINT32_MAX) {
        snprintf(err, err_size, "%s: source names exceed the 4 GiB the format can index",
                 writer->out.path);
        return false;
    }
    if (writer->count == writer->records_capacity) {
        writer->records_capacity = writer->records_capacity ? 2 * writer->records_capacity : 1024;
        writer->records = mg_realloc(
            writer->records, mg_mul_size(writer->records_capacity, DATASET_RECORD_BYTES, "records"));
    }
    uint8_t *r = writer->records + (size_t)writer->count * DATASET_RECORD_BYTES;
    write_u32(r, (uint32_t)offset);
    write_u32(r + 4, crop->object);
    write_u32(r + 8, crop->x0);
    write_u32(r + 12, crop->y0);
    write_u32(r + 16, crop->x1);
    write_u32(r + 20, crop->y1);
    write_u32(r + 24, crop->source_width);
    write_u32(r + 28, crop->source_height);
    writer->count++;
    return true;
}

static void free_writer_buffers(DatasetWriter *writer)
{
    free(writer->records);
    free(writer->sources);
    writer->records = NULL;
    writer->sources = NULL;
}

bool dataset_writer_commit(DatasetWriter *writer, char *err, size_t err_size)
{
    char *path = mg_strdup(writer->out.path);
    if (writer->count == 0) mg_panic("dataset_writer_commit: %s has no images", path);

    uint8_t header[DATASET_HEADER_BYTES] = {0};
    write_u32(header + OFFSET_MAGIC, DATASET_MAGIC);
    write_u32(header + OFFSET_VERSION, DATASET_VERSION);
    write_u32(header + OFFSET_COUNT, writer->count);
    write_u32(header + OFFSET_HEIGHT, writer->height);
    write_u32(header + OFFSET_WIDTH, writer->width);
    write_u32(header + OFFSET_CHANNELS, writer->channels);
    write_u64(header + OFFSET_SOURCES_BYTES, writer->sources_size);

    bool ok = mg_output_write(&writer->out, writer->records,
                              (size_t)writer->count * DATASET_RECORD_BYTES) &&
              mg_output_write(&writer->out, writer->sources, writer->sources_size) &&
              fseek(writer->out.file, 0, SEEK_SET) == 0 &&
              mg_output_write(&writer->out, header, sizeof header);
    if (!ok) {
        snprintf(err, err_size, "%s: failed to write: %s", path, strerror(errno));
        dataset_writer_abandon(writer);
        free(path);
        return false;
    }
    free_writer_buffers(writer);
    if (!mg_output_commit(&writer->out)) {
        snprintf(err, err_size, "%s: failed to write: %s", path, strerror(errno));
        free(path);
        return false;
    }
    free(path);
    return true;
}

void dataset_writer_abandon(DatasetWriter *writer)
{
    mg_output_abandon(&writer->out);
    free_writer_buffers(writer);
}
