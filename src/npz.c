/* .npy parsing and writing, .npz archives and FID statistics files.
 *
 * A .npy file (NumPy format versions 1.0 to 3.0) starts with the magic "\x93NUMPY" and a major
 * and minor version byte. The header length follows, 2 bytes little-endian in version 1 and 4
 * bytes in versions 2 and 3. The header is a Python dict literal such as
 *     {'descr': '<f8', 'fortran_order': False, 'shape': (2048, 2048), }
 * padded with spaces and a newline, then the raw array data.
 */
#include "npz.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npz.c assumes a little-endian host");

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
/* numpy pads headers so that the data starts at a multiple of 64 bytes. */
enum { NPY_HEADER_ALIGNMENT = 64 };

void npy_array_free(NpyArray *array)
{
    free(array->data);
    memset(array, 0, sizeof *array);
}

/* ---- header dict parsing ---- */

typedef struct HeaderParser {
    const char *start, *at, *end;
    const char *label;
    char *err;
    size_t err_size;
} HeaderParser;

static void skip_spaces(HeaderParser *p)
{
    while (p->at < p->end && (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r')) p->at++;
}

static bool header_error(HeaderParser *p, const char *what)
{
    return mg_set_error(p->err, p->err_size, "%s: invalid .npy header: %s at byte %td of the header dict",
                        p->label, what, p->at - p->start);
}

static bool expect_char(HeaderParser *p, char c)
{
    skip_spaces(p);
    if (p->at >= p->end || *p->at != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return header_error(p, what);
    }
    p->at++;
    return true;
}

/* Parses a quoted string into out (truncating at out_size - 1 characters is an error). */
static bool parse_string(HeaderParser *p, char *out, size_t out_size)
{
    skip_spaces(p);
    if (p->at >= p->end || (*p->at != '\'' && *p->at != '"')) return header_error(p, "expected a quoted string");
    char quote = *p->at++;
    size_t n = 0;
    while (p->at < p->end && *p->at != quote) {
        if (n + 1 >= out_size) return header_error(p, "string too long");
        out[n++] = *p->at++;
    }
    if (p->at >= p->end) return header_error(p, "unterminated string");
    p->at++;
    out[n] = '\0';
    return true;
}

static bool parse_bool(HeaderParser *p, bool *value)
{
    skip_spaces(p);
    size_t left = (size_t)(p->end - p->at);
    if (left >= 4 && memcmp(p->at, "True", 4) == 0) {
        *value = true;
        p->at += 4;
        return true;
    }
    if (left >= 5 && memcmp(p->at, "False", 5) == 0) {
        *value = false;
        p->at += 5;
        return true;
    }
    return header_error(p, "expected True or False");
}

/* Parses a shape tuple such as (), (5,) or (3, 4); Python 2 writers may add an L suffix. */
static bool parse_shape(HeaderParser *p, int *ndim, int64_t shape[NPY_MAX_DIMS])
{
    if (!expect_char(p, '(')) return false;
    *ndim = 0;
    for (;;) {
        skip_spaces(p);
        if (p->at < p->end && *p->at == ')') {
            p->at++;
            return true;
        }
        if (p->at >= p->end || *p->at < '0' || *p->at > '9') return header_error(p, "expected a dimension size");
        int64_t v = 0;
        while (p->at < p->end && *p->at >= '0' && *p->at <= '9') {
            if (v > (INT64_MAX - 9) / 10) return header_error(p, "dimension size too large");
            v = v * 10 + (*p->at++ - '0');
        }
        if (p->at < p->end && *p->at == 'L') p->at++;
        if (*ndim == NPY_MAX_DIMS) return header_error(p, "more than 8 dimensions");
        shape[(*ndim)++] = v;
        skip_spaces(p);
        if (p->at < p->end && *p->at == ',') {
            p->at++;
        } else if (p->at >= p->end || *p->at != ')') {
            return header_error(p, "expected ',' or ')' in the shape");
        }
    }
}

typedef struct NpyHeader {
    char descr[8];
    bool fortran_order;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
} NpyHeader;

/* Parses the header dict. Like numpy, requires exactly the keys descr, fortran_order, shape. */
static bool parse_header_dict(HeaderParser *p, NpyHeader *h)
{
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!expect_char(p, '{')) return false;
    for (;;) {
        skip_spaces(p);
        if (p->at < p->end && *p->at == '}') {
            p->at++;
            break;
        }
        char key[32];
        if (!parse_string(p, key, sizeof key) || !expect_char(p, ':')) return false;
        skip_spaces(p);
        if (strcmp(key, "descr") == 0) {
            if (p->at < p->end && *p->at == '[') {
                return mg_set_error(p->err, p->err_size, "%s: structured dtypes are not supported; expected '<f8' or '<f4'",
                                    p->label);
            }
            if (!parse_string(p, h->descr, sizeof h->descr)) return false;
            seen_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (!parse_bool(p, &h->fortran_order)) return false;
            seen_order = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!parse_shape(p, &h->ndim, h->shape)) return false;
            seen_shape = true;
        } else {
            return mg_set_error(p->err, p->err_size, "%s: invalid .npy header: unexpected key '%s'", p->label, key);
        }
        skip_spaces(p);
        if (p->at < p->end && *p->at == ',') p->at++;
    }
    const char *missing = NULL;
    if (!seen_shape) missing = "shape";
    if (!seen_order) missing = "fortran_order";
    if (!seen_descr) missing = "descr";
    if (missing) return mg_set_error(p->err, p->err_size, "%s: invalid .npy header: missing key '%s'", p->label, missing);
    return true;
}

/* ---- data conversion ---- */

static uint64_t byte_swap64(uint64_t v) { return __builtin_bswap64(v); }
static uint32_t byte_swap32(uint32_t v) { return __builtin_bswap32(v); }

/* Converts `count` stored elements to float64. Returns false for an unsupported dtype. */
static bool convert_values(const char *descr, const uint8_t *src, size_t count, double *dst)
{
    char order = descr[0];
    bool swap = order == '>';
    if (order != '<' && order != '>' && order != '=') return false;
    if (strcmp(descr + 1, "f8") == 0) {
        for (size_t i = 0; i < count; i++) {
            uint64_t bits;
            memcpy(&bits, src + 8 * i, 8);
            if (swap) bits = byte_swap64(bits);
            memcpy(&dst[i], &bits, 8);
        }
        return true;
    }
    if (strcmp(descr + 1, "f4") == 0) {
        for (size_t i = 0; i < count; i++) {
            uint32_t bits;
            float f;
            memcpy(&bits, src + 4 * i, 4);
            if (swap) bits = byte_swap32(bits);
            memcpy(&f, &bits, 4);
            dst[i] = f;
        }
        return true;
    }
    return false;
}

static size_t item_size(const char *descr)
{
    if (strlen(descr) == 3 && descr[1] == 'f' && (descr[2] == '8' || descr[2] == '4')) return (size_t)(descr[2] - '0');
    return 0;
}

/* Reorders Fortran-order (column-major) data into C order in place. */
static void fortran_to_c_order(double *data, int ndim, const int64_t *shape, size_t count)
{
    if (ndim < 2 || count == 0) return;
    double *copy = mg_malloc(count * sizeof *copy);
    memcpy(copy, data, count * sizeof *copy);
    int64_t index[NPY_MAX_DIMS] = {0};
    for (size_t c = 0; c < count; c++) {
        /* The Fortran offset of index (i0, ..., i_{n-1}) is i0 + shape0 * (i1 + shape1 * (...)). */
        size_t f = 0;
        for (int d = ndim - 1; d >= 0; d--) f = f * (size_t)shape[d] + (size_t)index[d];
        data[c] = copy[f];
        for (int d = ndim - 1; d >= 0; d--) {
            if (++index[d] < shape[d]) break;
            index[d] = 0;
        }
    }
    free(copy);
}

bool npy_parse(const char *label, const uint8_t *bytes, size_t size, NpyArray *array, char *err, size_t err_size)
{
    memset(array, 0, sizeof *array);
    if (size < 10 || memcmp(bytes, NPY_MAGIC, sizeof NPY_MAGIC) != 0) {
        return mg_set_error(err, err_size, "%s: not a .npy array (missing the \\x93NUMPY magic)", label);
    }
    int major = bytes[6];
    size_t header_size, header_start;
    if (major == 1) {
        header_size = (size_t)bytes[8] | (size_t)bytes[9] << 8;
        header_start = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return mg_set_error(err, err_size, "%s: truncated .npy header", label);
        header_size = (size_t)bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24;
        header_start = 12;
    } else {
        return mg_set_error(err, err_size, "%s: unsupported .npy format version %d.%d; expected 1.0 to 3.0", label,
                            major, bytes[7]);
    }
    if (header_size > size - header_start) {
        return mg_set_error(err, err_size, "%s: truncated .npy header: %zu bytes announced, %zu present", label,
                            header_size, size - header_start);
    }

    NpyHeader h = {0};
    const char *header = (const char *)bytes + header_start;
    HeaderParser p = {header, header, header + header_size, label, err, err_size};
    if (!parse_header_dict(&p, &h)) return false;

    size_t item = item_size(h.descr);
    if (item == 0 || (h.descr[0] != '<' && h.descr[0] != '>' && h.descr[0] != '=')) {
        return mg_set_error(err, err_size, "%s: dtype '%s' is not supported; expected float64 ('<f8') or float32 ('<f4')",
                            label, h.descr);
    }
    size_t count = 1;
    for (int d = 0; d < h.ndim; d++) {
        if ((uint64_t)h.shape[d] > SIZE_MAX || (h.shape[d] != 0 && count > SIZE_MAX / item / (size_t)h.shape[d])) {
            return mg_set_error(err, err_size, "%s: array shape too large", label);
        }
        count *= (size_t)h.shape[d];
    }
    size_t data_start = header_start + header_size;
    size_t data_size = size - data_start;
    if (data_size != count * item) {
        return mg_set_error(err, err_size, "%s: %s array data: expected %zu bytes for %zu elements of '%s', found %zu",
                            label, data_size < count * item ? "truncated" : "invalid", count * item, count, h.descr,
                            data_size);
    }

    array->data = mg_malloc((count ? count : 1) * sizeof(double));
    convert_values(h.descr, bytes + data_start, count, array->data);
    if (h.fortran_order) fortran_to_c_order(array->data, h.ndim, h.shape, count);
    snprintf(array->dtype, sizeof array->dtype, "%s", h.descr);
    array->ndim = h.ndim;
    memcpy(array->shape, h.shape, sizeof h.shape);
    array->count = count;
    return true;
}

/* ---- .npz archives ---- */

bool npz_open(NpzFile *npz, const char *path, char *err, size_t err_size)
{
    memset(npz, 0, sizeof *npz);
    if (!zip_reader_open_file(&npz->zip, path, err, err_size)) return false;
    npz->path = mg_strdup(path);
    return true;
}

void npz_close(NpzFile *npz)
{
    zip_reader_close(&npz->zip);
    free(npz->path);
    npz->path = NULL;
}

static const ZipEntry *find_array_member(const NpzFile *npz, const char *key)
{
    char *name = mg_format("%s.npy", key);
    const ZipEntry *e = zip_reader_find(&npz->zip, name);
    free(name);
    return e ? e : zip_reader_find(&npz->zip, key);
}

bool npz_contains(const NpzFile *npz, const char *key) { return find_array_member(npz, key) != NULL; }

bool npz_read_array(const NpzFile *npz, const char *key, NpyArray *array, char *err, size_t err_size)
{
    memset(array, 0, sizeof *array);
    const ZipEntry *e = find_array_member(npz, key);
    if (!e) return mg_set_error(err, err_size, "%s: no array '%s' (member '%s.npy' not found)", npz->path, key, key);
    uint8_t *bytes;
    size_t size;
    if (!zip_reader_extract(&npz->zip, e, &bytes, &size, err, err_size)) return false;
    char *label = mg_format("%s: member '%s'", npz->path, e->name);
    bool ok = npy_parse(label, bytes, size, array, err, err_size);
    free(label);
    free(bytes);
    return ok;
}

/* ---- writing ---- */

/* Builds a version 1.0 .npy file of float64 values in C order. */
static uint8_t *build_npy(const NpzWriteArray *a, size_t *size_out)
{
    char shape[NPY_MAX_DIMS * 24 + 8];
    size_t n = 0, count = 1;
    n += (size_t)snprintf(shape + n, sizeof shape - n, "(");
    for (int d = 0; d < a->ndim; d++) {
        n += (size_t)snprintf(shape + n, sizeof shape - n, d ? ", %lld" : "%lld", (long long)a->shape[d]);
        count = mg_mul_size(count, (size_t)a->shape[d], "npy array size");
    }
    snprintf(shape + n, sizeof shape - n, a->ndim == 1 ? ",)" : ")");

    char *dict = mg_format("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }", shape);
    size_t dict_size = strlen(dict);
    /* The header is the dict, spaces and a final newline, padded so that the data is aligned. */
    size_t header_size = dict_size + 1;
    header_size += (NPY_HEADER_ALIGNMENT - (10 + header_size) % NPY_HEADER_ALIGNMENT) % NPY_HEADER_ALIGNMENT;
    if (header_size > 0xffff) mg_panic("npy header of %zu bytes for %d dimensions", header_size, a->ndim);

    size_t data_size = mg_mul_size(count, sizeof(double), "npy data size");
    size_t size = 10 + header_size + data_size;
    uint8_t *out = mg_malloc(size);
    memcpy(out, NPY_MAGIC, sizeof NPY_MAGIC);
    out[6] = 1;
    out[7] = 0;
    out[8] = (uint8_t)header_size;
    out[9] = (uint8_t)(header_size >> 8);
    memset(out + 10, ' ', header_size);
    memcpy(out + 10, dict, dict_size);
    out[10 + header_size - 1] = '\n';
    if (data_size) memcpy(out + 10 + header_size, a->data, data_size);
    free(dict);
    *size_out = size;
    return out;
}

bool npz_write(const char *path, const NpzWriteArray *arrays, size_t count, bool compress, char *err, size_t err_size)
{
    MgOutput out;
    if (!mg_output_open(&out, path)) {
        return mg_set_error(err, err_size, "%s: failed to create: %s", path, strerror(errno));
    }
    ZipWriter writer;
    zip_writer_init(&writer, &out);
    bool ok = true;
    for (size_t i = 0; i < count && ok; i++) {
        size_t size;
        uint8_t *npy = build_npy(&arrays[i], &size);
        char *name = mg_format("%s.npy", arrays[i].key);
        ok = zip_writer_add(&writer, name, npy, size, compress ? ZIP_METHOD_DEFLATE : ZIP_METHOD_STORED, err, err_size);
        free(name);
        free(npy);
    }
    ok = ok && zip_writer_finish(&writer, err, err_size);
    zip_writer_free(&writer);
    if (!ok) {
        mg_output_abandon(&out);
        return false;
    }
    if (!mg_output_commit(&out)) return mg_set_error(err, err_size, "%s: failed to write: %s", path, strerror(errno));
    return true;
}

/* ---- FID statistics ---- */

static char *list_members(const NpzFile *npz)
{
    size_t cap = 256, n = 0;
    char *text = mg_malloc(cap);
    text[0] = '\0';
    for (size_t i = 0; i < npz->zip.entry_count; i++) {
        const char *name = npz->zip.entries[i].name;
        size_t need = strlen(name) + 3;
        if (n + need + 1 > cap) text = mg_realloc(text, cap = 2 * (n + need + 1));
        n += (size_t)sprintf(text + n, "%s%s", i ? ", " : "", name);
    }
    if (npz->zip.entry_count == 0) snprintf(text, cap, "none");
    return text;
}

static bool check_finite(const char *path, const char *key, const NpyArray *a, char *err, size_t err_size)
{
    for (size_t i = 0; i < a->count; i++) {
        if (isfinite(a->data[i])) continue;
        if (a->ndim == 2) {
            return mg_set_error(err, err_size, "%s: '%s' contains %g at (%zu, %zu); statistics must be finite", path,
                                key, a->data[i], i / (size_t)a->shape[1], i % (size_t)a->shape[1]);
        }
        return mg_set_error(err, err_size, "%s: '%s' contains %g at index %zu; statistics must be finite", path, key,
                            a->data[i], i);
    }
    return true;
}

static void format_shape(const NpyArray *a, char *out, size_t out_size)
{
    size_t n = (size_t)snprintf(out, out_size, "(");
    for (int d = 0; d < a->ndim && n < out_size; d++) {
        n += (size_t)snprintf(out + n, out_size - n, d ? ", %lld" : "%lld", (long long)a->shape[d]);
    }
    if (n < out_size) snprintf(out + n, out_size - n, a->ndim == 1 ? ",)" : ")");
}

static bool check_stats_shapes(const char *path, const char *mu_key, const NpyArray *mu, const char *sigma_key,
                               const NpyArray *sigma, char *err, size_t err_size)
{
    char mu_shape[200], sigma_shape[200];
    format_shape(mu, mu_shape, sizeof mu_shape);
    format_shape(sigma, sigma_shape, sizeof sigma_shape);
    if (mu->ndim != 1 || mu->shape[0] < 1 || mu->shape[0] > 1 << 20) {
        return mg_set_error(err, err_size, "%s: '%s' has shape %s; expected a vector (D,) with 1 <= D <= %d", path,
                            mu_key, mu_shape, 1 << 20);
    }
    int64_t d = mu->shape[0];
    if (sigma->ndim != 2 || sigma->shape[0] != d || sigma->shape[1] != d) {
        return mg_set_error(err, err_size, "%s: '%s' has shape %s; expected (%lld, %lld) to match '%s' of shape %s",
                            path, sigma_key, sigma_shape, (long long)d, (long long)d, mu_key, mu_shape);
    }
    return true;
}

bool npz_read_fid_stats(const char *path, int *dim, double **mu, double **sigma, char *err, size_t err_size)
{
    *dim = 0;
    *mu = *sigma = NULL;
    NpzFile npz;
    if (!npz_open(&npz, path, err, err_size)) return false;

    const char *mu_key = "mu", *sigma_key = "sigma";
    if (!npz_contains(&npz, "mu") && !npz_contains(&npz, "sigma") && npz_contains(&npz, "mean") &&
        npz_contains(&npz, "cov")) {
        mu_key = "mean";
        sigma_key = "cov";
    }
    if (!npz_contains(&npz, mu_key) || !npz_contains(&npz, sigma_key)) {
        char *members = list_members(&npz);
        mg_set_error(err, err_size,
                     "%s: missing array '%s'; FID statistics need 'mu' and 'sigma' (members found: %s)", path,
                     npz_contains(&npz, mu_key) ? sigma_key : mu_key, members);
        free(members);
        npz_close(&npz);
        return false;
    }

    NpyArray m = {0}, s = {0};
    bool ok = npz_read_array(&npz, mu_key, &m, err, err_size) && npz_read_array(&npz, sigma_key, &s, err, err_size) &&
              check_stats_shapes(path, mu_key, &m, sigma_key, &s, err, err_size) &&
              check_finite(path, mu_key, &m, err, err_size) && check_finite(path, sigma_key, &s, err, err_size);
    npz_close(&npz);
    if (!ok) {
        npy_array_free(&m);
        npy_array_free(&s);
        return false;
    }
    *dim = (int)m.shape[0];
    *mu = m.data;
    *sigma = s.data;
    return true;
}

bool npz_write_fid_stats(const char *path, int dim, const double *mu, const double *sigma, char *err, size_t err_size)
{
    int64_t mu_shape[1] = {dim}, sigma_shape[2] = {dim, dim};
    NpzWriteArray arrays[2] = {{"mu", 1, mu_shape, mu}, {"sigma", 2, sigma_shape, sigma}};
    return npz_write(path, arrays, 2, true, err, err_size);
}
