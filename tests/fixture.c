/* Fixture reader: parses the whole file from memory and checks every length against the bytes
 * that remain, so a damaged file yields a message instead of a crash. */
#include "fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Read position in the file contents, with the path and the error buffer for messages. */
typedef struct Reader {
    const unsigned char *data;
    size_t size, offset;
    const char *path;
    char *error;
    size_t error_size;
} Reader;

static bool fail(Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(Reader *r, const char *fmt, ...)
{
    int n = snprintf(r->error, r->error_size, "fixture %s: ", r->path);
    if (n < 0 || (size_t)n >= r->error_size) return false;
    va_list args;
    va_start(args, fmt);
    vsnprintf(r->error + n, r->error_size - (size_t)n, fmt, args);
    va_end(args);
    return false;
}

static uint32_t decode_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads one u32. `field` names it in the message when the file ends too early. */
static bool read_u32(Reader *r, uint32_t *value, const char *field)
{
    if (r->size - r->offset < 4)
        return fail(r, "file ends at byte %zu while reading %s (truncated file?)", r->offset, field);
    *value = decode_u32(r->data + r->offset);
    r->offset += 4;
    return true;
}

static bool read_tensor(Reader *r, Fixture *fixture, size_t index)
{
    FixtureTensor *t = &fixture->tensors[index];
    uint32_t name_length = 0;
    if (!read_u32(r, &name_length, "a tensor name length")) return false;
    if (name_length == 0 || name_length > FIXTURE_MAX_NAME_BYTES)
        return fail(r, "tensor %zu has a name length of %u bytes (expected 1 to %d)", index, name_length,
                    FIXTURE_MAX_NAME_BYTES);
    if (r->size - r->offset < name_length)
        return fail(r, "file ends at byte %zu inside the name of tensor %zu (truncated file?)", r->offset, index);
    t->name = mg_malloc(name_length + 1);
    memcpy(t->name, r->data + r->offset, name_length);
    t->name[name_length] = '\0';
    r->offset += name_length;
    if (memchr(t->name, '\0', name_length)) return fail(r, "tensor %zu has a NUL byte in its name", index);

    uint32_t ndim = 0;
    if (!read_u32(r, &ndim, "a tensor's number of dimensions")) return false;
    if (ndim > TENSOR_MAX_DIMS)
        return fail(r, "tensor '%s' has %u dimensions (at most %d are supported)", t->name, ndim, TENSOR_MAX_DIMS);
    int dims[TENSOR_MAX_DIMS];
    size_t numel = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        uint32_t dim = 0;
        if (!read_u32(r, &dim, "a tensor dimension")) return false;
        if (dim == 0 || dim > INT32_MAX)
            return fail(r, "tensor '%s' has dimension %u of size %u (expected 1 to %d)", t->name, i, dim, INT32_MAX);
        dims[i] = (int)dim;
        if (numel > SIZE_MAX / sizeof(float) / dim)
            return fail(r, "tensor '%s' is too large to address", t->name);
        numel *= dim;
    }
    t->shape = shape_make((int)ndim, dims);
    t->numel = numel;

    size_t bytes = numel * sizeof(float);
    if (r->size - r->offset < bytes)
        return fail(r, "tensor '%s' needs %zu bytes of data but only %zu remain (truncated file?)", t->name,
                    bytes, r->size - r->offset);
    t->data = mg_malloc(bytes ? bytes : 1);
    for (size_t i = 0; i < numel; i++) {
        uint32_t bits = decode_u32(r->data + r->offset + 4 * i);
        memcpy(&t->data[i], &bits, sizeof bits);
    }
    r->offset += bytes;

    for (size_t j = 0; j < index; j++) {
        if (strcmp(fixture->tensors[j].name, t->name) == 0)
            return fail(r, "tensor name '%s' appears twice", t->name);
    }
    return true;
}

static bool parse(Reader *r, Fixture *fixture)
{
    if (r->size < 4 || memcmp(r->data, FIXTURE_MAGIC, 4) != 0)
        return fail(r, "not a fixture file: the first 4 bytes are not \"%s\"", FIXTURE_MAGIC);
    r->offset = 4;

    uint32_t version = 0, count = 0;
    if (!read_u32(r, &version, "the version")) return false;
    if (version != FIXTURE_VERSION)
        return fail(r, "unsupported version %u (this reader handles version %d); rerun the tests/gen_*_fixtures.py script that writes it",
                    version, FIXTURE_VERSION);
    if (!read_u32(r, &count, "the tensor count")) return false;
    /* every tensor takes at least 8 bytes, which bounds the allocation below */
    if (count > (r->size - r->offset) / 8)
        return fail(r, "header claims %u tensors but the file has only %zu more bytes", count, r->size - r->offset);

    fixture->tensors = mg_calloc(count ? count : 1, sizeof *fixture->tensors);
    fixture->count = count;
    for (size_t i = 0; i < count; i++) {
        if (!read_tensor(r, fixture, i)) return false;
    }
    if (r->offset != r->size)
        return fail(r, "%zu unexpected bytes after the last of %u tensors", r->size - r->offset, count);
    return true;
}

bool fixture_load(Fixture *fixture, const char *path, char *error, size_t error_size)
{
    memset(fixture, 0, sizeof *fixture);
    Reader r = {.path = path, .error = error, .error_size = error_size};
    size_t size = 0;
    char *contents = mg_read_file(path, &size);
    if (!contents) {
        fail(&r, "cannot read the file: %s; generate it with the tests/gen_*_fixtures.py script that writes it", strerror(errno));
        return false;
    }
    r.data = (const unsigned char *)contents;
    r.size = size;
    fixture->path = mg_strdup(path);

    bool ok = parse(&r, fixture);
    free(contents);
    if (!ok) fixture_free(fixture);
    return ok;
}

void fixture_free(Fixture *fixture)
{
    for (size_t i = 0; i < fixture->count; i++) {
        free(fixture->tensors[i].name);
        free(fixture->tensors[i].data);
    }
    free(fixture->tensors);
    free(fixture->path);
    memset(fixture, 0, sizeof *fixture);
}

const FixtureTensor *fixture_find(const Fixture *fixture, const char *name)
{
    for (size_t i = 0; i < fixture->count; i++) {
        if (strcmp(fixture->tensors[i].name, name) == 0) return &fixture->tensors[i];
    }
    return NULL;
}
