/* .npy/.npz reading on files written by NumPy (tests/gen_npz_fixtures.py) and writing by round
 * trip. tests/check_npz_with_numpy.py loads the files written here with NumPy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npz.h"
#include "test.h"
#include "util.h"

enum { FIXTURE_DIM = 6 };

static double fixture_mu(int i) { return 0.25 * i - 1.0; }
static double fixture_sigma(int i, int j) { return 1.0 / (1.0 + i + j); }

TEST(npz_reads_numpy_stats)
{
    static const struct {
        const char *file;
        bool float32;
    } cases[] = {
        {"data/npz/stats_stored.npz", false},
        {"data/npz/stats_deflate.npz", false},
        {"data/npz/stats_float32.npz", true},
        {"data/npz/stats_mean_cov.npz", false},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        int dim;
        double *mu, *sigma;
        char err[512];
        bool ok = npz_read_fid_stats(test_data_path(cases[c].file), &dim, &mu, &sigma, err, sizeof err);
        CHECK_MSG(ok, "%s: %s", cases[c].file, err);
        if (!ok) continue;
        CHECK_INT_EQ(dim, FIXTURE_DIM);
        int mismatches = 0;
        for (int i = 0; i < FIXTURE_DIM; i++) {
            double m = cases[c].float32 ? (double)(float)fixture_mu(i) : fixture_mu(i);
            if (mu[i] != m) mismatches++;
            for (int j = 0; j < FIXTURE_DIM; j++) {
                double s = fixture_sigma(i, j);
                if (cases[c].float32) s = (double)(float)s;
                if (sigma[i * FIXTURE_DIM + j] != s) mismatches++;
            }
        }
        CHECK_MSG(mismatches == 0, "%s: %d values differ from what NumPy saved", cases[c].file, mismatches);
        free(mu);
        free(sigma);
    }
}

TEST(npz_rejects_invalid_stats)
{
    static const struct {
        const char *file;
        const char *message;
    } cases[] = {
        {"data/npz/stats_other_keys.npz", "missing array 'mu'; FID statistics need 'mu' and 'sigma' (members found: features.npy, labels.npy)"},
        {"data/npz/stats_no_sigma.npz", "missing array 'sigma'"},
        {"data/npz/stats_bad_shapes.npz", "'sigma' has shape (5, 5); expected (6, 6) to match 'mu' of shape (6,)"},
        {"data/npz/stats_sigma_vector.npz", "'sigma' has shape (36,); expected (6, 6)"},
        {"data/npz/stats_nan.npz", "'sigma' contains nan at (2, 3); statistics must be finite"},
        {"data/npz/stats_int.npz", "member 'mu.npy': dtype '<i8' is not supported; expected float64 ('<f8') or float32 ('<f4')"},
        {"data/zip/python_mixed.zip", "missing array 'mu'"},
        {"data/npz/missing.npz", "failed to open"},
        {"test_npz.c", "not a ZIP archive"},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        int dim = -1;
        double *mu = (double *)1, *sigma = (double *)1;
        char err[512] = "";
        const char *path = test_data_path(cases[c].file);
        char *path_copy = mg_strdup(path);
        CHECK_MSG(!npz_read_fid_stats(path_copy, &dim, &mu, &sigma, err, sizeof err), "%s was accepted", cases[c].file);
        CHECK_STR_CONTAINS(err, path_copy);
        CHECK_STR_CONTAINS(err, cases[c].message);
        CHECK(mu == NULL);
        CHECK(sigma == NULL);
        CHECK_INT_EQ(dim, 0);
        free(path_copy);
    }
}

TEST(npz_reads_array_layouts)
{
    NpzFile npz;
    char err[512];
    bool opened = npz_open(&npz, test_data_path("data/npz/arrays.npz"), err, sizeof err);
    CHECK_MSG(opened, "%s", err);
    if (!opened) return;

    NpyArray a;
    CHECK(npz_read_array(&npz, "fortran", &a, err, sizeof err));
    CHECK_INT_EQ(a.ndim, 2);
    CHECK_INT_EQ(a.shape[0], 3);
    CHECK_INT_EQ(a.shape[1], 4);
    for (size_t i = 0; i < a.count; i++) CHECK_MSG(a.data[i] == (double)i, "fortran[%zu] = %g", i, a.data[i]);
    npy_array_free(&a);

    CHECK(npz_read_array(&npz, "big_endian", &a, err, sizeof err));
    CHECK(strcmp(a.dtype, ">f8") == 0);
    CHECK_INT_EQ(a.count, 5);
    for (size_t i = 0; i < a.count; i++) CHECK_MSG(a.data[i] == 1.5 * (double)i, "big_endian[%zu] = %g", i, a.data[i]);
    npy_array_free(&a);

    CHECK(npz_read_array(&npz, "scalar", &a, err, sizeof err));
    CHECK_INT_EQ(a.ndim, 0);
    CHECK_INT_EQ(a.count, 1);
    CHECK(a.data[0] == 2.5);
    npy_array_free(&a);

    CHECK(npz_read_array(&npz, "three_d", &a, err, sizeof err));
    CHECK(strcmp(a.dtype, "<f4") == 0);
    CHECK_INT_EQ(a.ndim, 3);
    CHECK_INT_EQ(a.count, 24);
    for (size_t i = 0; i < a.count; i++) CHECK_MSG(a.data[i] == (double)i - 0.5, "three_d[%zu] = %g", i, a.data[i]);
    npy_array_free(&a);

    CHECK(npz_read_array(&npz, "empty", &a, err, sizeof err));
    CHECK_INT_EQ(a.ndim, 2);
    CHECK_INT_EQ(a.count, 0);
    npy_array_free(&a);

    CHECK(!npz_read_array(&npz, "absent", &a, err, sizeof err));
    CHECK_STR_CONTAINS(err, "no array 'absent'");
    npz_close(&npz);
}

/* Writes statistics whose values NumPy can recompute exactly (see check_npz_with_numpy.py),
 * reads them back, and copies the files to $MIXGAN_NPZ_EXPORT_DIR when it is set. */
TEST(npz_write_round_trip)
{
    enum { DIM = 300 };
    double *mu = mg_malloc(DIM * sizeof *mu), *sigma = mg_malloc(DIM * DIM * sizeof *sigma);
    for (int i = 0; i < DIM; i++) {
        mu[i] = i / 7.0;
        for (int j = 0; j < DIM; j++) sigma[i * DIM + j] = (i + 1) / (j + 3.0);
    }
    const char *export_dir = getenv("MIXGAN_NPZ_EXPORT_DIR");
    const char *dir = export_dir && *export_dir ? export_dir : test_temp_dir();
    char *compressed_path = mg_format("%s/stats_compressed.npz", dir);
    char *stored_path = mg_format("%s/stats_stored.npz", dir);
    char err[512];

    CHECK_MSG(npz_write_fid_stats(compressed_path, DIM, mu, sigma, err, sizeof err), "%s", err);
    int64_t mu_shape[1] = {DIM}, sigma_shape[2] = {DIM, DIM}, scalar_shape[1] = {0};
    double scalar = -0.125;
    NpzWriteArray arrays[] = {{"mu", 1, mu_shape, mu}, {"sigma", 2, sigma_shape, sigma}, {"scalar", 0, scalar_shape, &scalar}};
    CHECK_MSG(npz_write(stored_path, arrays, MG_ARRAY_LEN(arrays), false, err, sizeof err), "%s", err);

    const char *paths[] = {compressed_path, stored_path};
    for (size_t p = 0; p < MG_ARRAY_LEN(paths); p++) {
        int dim;
        double *mu_read, *sigma_read;
        bool ok = npz_read_fid_stats(paths[p], &dim, &mu_read, &sigma_read, err, sizeof err);
        CHECK_MSG(ok, "%s", err);
        if (!ok) continue;
        CHECK_INT_EQ(dim, DIM);
        CHECK(memcmp(mu_read, mu, DIM * sizeof *mu) == 0);
        CHECK(memcmp(sigma_read, sigma, DIM * DIM * sizeof *sigma) == 0);
        free(mu_read);
        free(sigma_read);
    }

    NpzFile npz;
    CHECK(npz_open(&npz, compressed_path, err, sizeof err));
    CHECK_INT_EQ(npz.zip.entry_count, 2);
    CHECK_INT_EQ(npz.zip.entries[1].method, ZIP_METHOD_DEFLATE);
    npz_close(&npz);
    CHECK(npz_open(&npz, stored_path, err, sizeof err));
    NpyArray a;
    CHECK(npz_read_array(&npz, "scalar", &a, err, sizeof err));
    CHECK_INT_EQ(a.ndim, 0);
    CHECK_INT_EQ(a.count, 1);
    CHECK(a.data[0] == -0.125);
    npy_array_free(&a);
    npz_close(&npz);

    free(compressed_path);
    free(stored_path);
    free(mu);
    free(sigma);
}

TEST(npz_write_failure_leaves_nothing)
{
    const char *dir = test_temp_dir();
    char *path = mg_format("%s/no/such/dir/stats.npz", dir);
    double mu[2] = {0, 1}, sigma[4] = {1, 0, 0, 1};
    char err[512];
    CHECK(!npz_write_fid_stats(path, 2, mu, sigma, err, sizeof err));
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "failed to create");
    CHECK(!mg_file_exists(path));
    free(path);
}

/* Extracts one .npy member of a fixture for the header tests below. */
static uint8_t *fixture_npy(const char *key, size_t *size)
{
    NpzFile npz;
    char err[512];
    if (!npz_open(&npz, test_data_path("data/npz/stats_stored.npz"), err, sizeof err)) return NULL;
    char *name = mg_format("%s.npy", key);
    uint8_t *bytes = NULL;
    const ZipEntry *e = zip_reader_find(&npz.zip, name);
    if (e && !zip_reader_extract(&npz.zip, e, &bytes, size, err, sizeof err)) bytes = NULL;
    free(name);
    npz_close(&npz);
    return bytes;
}

TEST(npy_rejects_every_truncation)
{
    size_t size;
    uint8_t *bytes = fixture_npy("mu", &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    for (size_t n = 0; n < size; n++) {
        uint8_t *prefix = mg_malloc(n ? n : 1);
        memcpy(prefix, bytes, n);
        NpyArray a;
        char err[512] = "";
        bool ok = npy_parse("cut.npy", prefix, n, &a, err, sizeof err);
        CHECK_MSG(!ok, "prefix of %zu bytes parsed", n);
        if (ok) npy_array_free(&a);
        CHECK_MSG(strncmp(err, "cut.npy: ", 9) == 0, "prefix of %zu bytes: message \"%s\"", n, err);
        free(prefix);
    }
    free(bytes);
}

/* Replaces the header dict of a valid .npy with `dict` (same length, space padded). */
static bool parse_with_dict(const uint8_t *bytes, size_t size, const char *dict, char *err, size_t err_size)
{
    uint8_t *copy = mg_malloc(size);
    memcpy(copy, bytes, size);
    size_t header_size = (size_t)copy[8] | (size_t)copy[9] << 8;
    memset(copy + 10, ' ', header_size - 1);
    memcpy(copy + 10, dict, strlen(dict));
    NpyArray a;
    bool ok = npy_parse("edited.npy", copy, size, &a, err, err_size);
    if (ok) npy_array_free(&a);
    free(copy);
    return ok;
}

TEST(npy_rejects_invalid_headers)
{
    size_t size;
    uint8_t *bytes = fixture_npy("mu", &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    static const struct {
        const char *dict;
        const char *message;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", NULL},
        {"{\"descr\": \"<f8\", \"shape\": (6L,), \"fortran_order\": False}", NULL},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (7,), }", "truncated array data: expected 56 bytes"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", "invalid array data: expected 40 bytes"},
        {"{'descr': '<f8', 'fortran_order': False, }", "missing key 'shape'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'extra': 1}", "unexpected key 'extra'"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (6,), }", "structured dtypes are not supported"},
        {"{'descr': '<f8', 'fortran_order': maybe, 'shape': (6,), }", "expected True or False"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (6; }", "expected ',' or ')' in the shape"},
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (3,), }", "dtype '<c16' is not supported"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", "dimension size too large"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6), }", "more than 8 dimensions"},
        {"['descr', '<f8']", "expected '{'"},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        char err[512] = "";
        bool ok = parse_with_dict(bytes, size, cases[c].dict, err, sizeof err);
        if (!cases[c].message) {
            CHECK_MSG(ok, "case %zu: %s", c, err);
            continue;
        }
        CHECK_MSG(!ok, "case %zu was accepted", c);
        CHECK_STR_CONTAINS(err, cases[c].message);
        CHECK_STR_CONTAINS(err, "edited.npy: ");
    }

    uint8_t *copy = mg_malloc(size);
    memcpy(copy, bytes, size);
    copy[6] = 4;
    char err[512];
    NpyArray a;
    CHECK(!npy_parse("v4.npy", copy, size, &a, err, sizeof err));
    CHECK_STR_CONTAINS(err, "unsupported .npy format version 4.0");
    free(copy);
    free(bytes);
}
