/* PyTorch weights reader on state dicts written by torch.save (tests/gen_torch_fixtures.py)
 * and on the first 818,371 bytes of pytorch-fid's Inception weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "torch_weights.h"
#include "util.h"

static const char *const TINY_FILES[] = {
    "data/torch/tiny_zip.pth",
    "data/torch/tiny_zip_protocol4.pth",
    "data/torch/tiny_zip_deflated.pth",
    "data/torch/tiny_legacy.pth",
    "data/torch/tiny_legacy_none_hooks.pth",
};

static const char *INCEPTION_TRUNCATED = "data/inception/pt_inception-2015-12-05-6726825d.truncated.pth";

/* The expected value of element `index` (row-major) of each tiny record, as documented in
 * tests/gen_torch_fixtures.py. */
static float tiny_value(const char *name, int64_t index)
{
    if (strcmp(name, "conv.weight") == 0) {
        int64_t o = index / 27, i = index / 9 % 3, h = index / 3 % 3, w = index % 3;
        return (float)(o * 1000 + i * 100 + h * 10 + w);
    }
    if (strcmp(name, "bn.weight") == 0) return (float)index + 0.5f;
    if (strcmp(name, "bn.bias") == 0) return -(float)index;
    if (strcmp(name, "bn.running_mean") == 0) return 1.0f + (float)index;
    if (strcmp(name, "bn.running_var") == 0) return 5.0f + (float)index;
    if (strcmp(name, "fc.weight") == 0) return (float)(index % 6 * 5 + index / 6);
    if (strcmp(name, "fc.bias") == 0) return 0.25f * (float)index;
    if (strcmp(name, "half") == 0) return (float)index - 2.0f;
    if (strcmp(name, "bfloat") == 0) return 2.0f * (float)index;
    if (strcmp(name, "scalar") == 0) return 3.25f;
    return NAN;
}

TEST(torch_reads_tiny_state_dicts)
{
    static const struct {
        const char *name, *dtype;
        int ndim;
        int64_t shape[4], stride[4], offset;
    } expected[] = {
        {"conv.weight", "float32", 4, {4, 3, 3, 3}, {1, 4, 36, 12}, 0},
        {"bn.weight", "float32", 1, {4}, {1}, 0},
        {"bn.bias", "float32", 1, {4}, {1}, 0},
        {"bn.running_mean", "float32", 1, {4}, {1}, 1},
        {"bn.running_var", "float32", 1, {4}, {1}, 5},
        {"bn.num_batches_tracked", "int64", 0, {0}, {0}, 0},
        {"fc.weight", "float32", 2, {5, 6}, {1, 5}, 0},
        {"fc.bias", "float64", 1, {5}, {1}, 0},
        {"half", "float16", 1, {4}, {1}, 0},
        {"bfloat", "bfloat16", 1, {3}, {1}, 0},
        {"scalar", "float32", 0, {0}, {0}, 0},
        {"empty", "float32", 2, {0, 3}, {3, 1}, 0},
    };
    for (size_t f = 0; f < MG_ARRAY_LEN(TINY_FILES); f++) {
        TorchWeights w;
        char err[1024];
        bool opened = torch_weights_open(test_data_path(TINY_FILES[f]), &w, err, sizeof err);
        CHECK_MSG(opened, "%s", err);
        if (!opened) {
            torch_weights_close(&w);
            continue;
        }
        CHECK_INT_EQ(w.count, MG_ARRAY_LEN(expected));
        CHECK_INT_EQ(w.format, strstr(TINY_FILES[f], "legacy") ? TORCH_FORMAT_LEGACY : TORCH_FORMAT_ZIP);
        /* running_mean and running_var share one storage. */
        CHECK_INT_EQ(w.storage_count, MG_ARRAY_LEN(expected) - 1);

        for (size_t k = 0; k < MG_ARRAY_LEN(expected); k++) {
            const TorchRecord *r = torch_weights_find(&w, expected[k].name);
            CHECK_MSG(r != NULL, "%s: record %s missing", TINY_FILES[f], expected[k].name);
            if (!r) continue;
            CHECK_MSG(strcmp(r->dtype, expected[k].dtype) == 0, "%s: %s has dtype %s", TINY_FILES[f], r->name, r->dtype);
            CHECK_INT_EQ(r->ndim, expected[k].ndim);
            for (int d = 0; d < r->ndim; d++) {
                CHECK_MSG(r->shape[d] == expected[k].shape[d], "%s: %s shape[%d] = %lld", TINY_FILES[f], r->name, d,
                          (long long)r->shape[d]);
                CHECK_MSG(r->stride[d] == expected[k].stride[d], "%s: %s stride[%d] = %lld", TINY_FILES[f], r->name, d,
                          (long long)r->stride[d]);
            }
            CHECK_INT_EQ(r->storage_offset, expected[k].offset);

            if (strcmp(r->dtype, "int64") == 0) {
                float unused;
                CHECK(!torch_weights_read_float(&w, r, &unused, err, sizeof err));
                CHECK_STR_CONTAINS(err, "has dtype int64; expected a floating-point dtype");
                continue;
            }
            float *values = mg_malloc((size_t)(r->element_count ? r->element_count : 1) * sizeof(float));
            bool read = torch_weights_read_float(&w, r, values, err, sizeof err);
            CHECK_MSG(read, "%s: %s", TINY_FILES[f], err);
            int64_t wrong = 0;
            for (int64_t i = 0; read && i < r->element_count; i++) wrong += values[i] != tiny_value(r->name, i);
            CHECK_MSG(wrong == 0, "%s: %lld values of %s differ from what torch saved", TINY_FILES[f], (long long)wrong,
                      r->name);
            free(values);
        }
        torch_weights_close(&w);
    }
}

TEST(torch_open_hashes_file)
{
    const char *path = test_data_path("data/torch/tiny_legacy.pth");
    char *copy = mg_strdup(path);
    TorchWeights w;
    char err[1024];
    CHECK(torch_weights_open(copy, &w, err, sizeof err));
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];
    CHECK(sha256_file(copy, digest));
    sha256_to_hex(digest, hex);
    CHECK(strcmp(w.sha256, hex) == 0);
    torch_weights_close(&w);
    free(copy);
}

TEST(torch_require_checks_shapes)
{
    TorchWeights w;
    char err[1024];
    CHECK(torch_weights_open(test_data_path("data/torch/tiny_zip.pth"), &w, err, sizeof err));
    int64_t conv_shape[4] = {4, 3, 3, 3}, wrong_shape[4] = {4, 3, 1, 7};
    CHECK(torch_weights_require(&w, "conv.weight", "float32", 4, conv_shape, err, sizeof err) != NULL);
    CHECK(torch_weights_require(&w, "conv.weight", NULL, 4, conv_shape, err, sizeof err) != NULL);

    CHECK(torch_weights_require(&w, "conv.weight", "float32", 4, wrong_shape, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "tiny_zip.pth: record 'conv.weight' has shape [4, 3, 3, 3]; expected [4, 3, 1, 7]");
    CHECK(torch_weights_require(&w, "conv.weight", "float16", 4, conv_shape, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "record 'conv.weight' has dtype float32; expected float16");
    CHECK(torch_weights_require(&w, "Mixed_5b.branch1x1.conv.weight", "float32", 4, conv_shape, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "record 'Mixed_5b.branch1x1.conv.weight' is missing");
    torch_weights_close(&w);
}

/* Reads tests/data/inception/records.txt: "name dtype shape stride offset" per record, with
 * comma-separated dimensions and "-" for none. */
static size_t check_against_record_list(const TorchWeights *w)
{
    size_t size, checked = 0;
    char *text = mg_read_file(test_data_path("data/inception/records.txt"), &size);
    CHECK(text != NULL);
    if (!text) return 0;
    char *save = NULL;
    size_t index = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char name[256], dtype[16], shape[128], stride[128];
        long long offset;
        if (sscanf(line, "%255s %15s %127s %127s %lld", name, dtype, shape, stride, &offset) != 5) {
            test_fail(__FILE__, __LINE__, "unreadable line in records.txt: %s", line);
            continue;
        }
        if (index >= w->count) break;
        const TorchRecord *r = &w->records[index++];
        char actual_shape[128] = "", actual_stride[128] = "";
        size_t n = 0, m = 0;
        for (int d = 0; d < r->ndim; d++) {
            n += (size_t)snprintf(actual_shape + n, sizeof actual_shape - n, d ? ",%lld" : "%lld", (long long)r->shape[d]);
            m += (size_t)snprintf(actual_stride + m, sizeof actual_stride - m, d ? ",%lld" : "%lld", (long long)r->stride[d]);
        }
        if (r->ndim == 0) {
            strcpy(actual_shape, "-");
            strcpy(actual_stride, "-");
        }
        CHECK_MSG(strcmp(r->name, name) == 0, "record %zu is %s, expected %s", index - 1, r->name, name);
        CHECK_MSG(strcmp(r->dtype, dtype) == 0, "%s: dtype %s, expected %s", name, r->dtype, dtype);
        CHECK_MSG(strcmp(actual_shape, shape) == 0, "%s: shape %s, expected %s", name, actual_shape, shape);
        CHECK_MSG(strcmp(actual_stride, stride) == 0, "%s: stride %s, expected %s", name, actual_stride, stride);
        CHECK_MSG(r->storage_offset == offset, "%s: offset %lld, expected %lld", name, (long long)r->storage_offset, offset);
        checked++;
    }
    free(text);
    return checked;
}

TEST(torch_truncated_inception_records)
{
    char *path = mg_strdup(test_data_path(INCEPTION_TRUNCATED));
    TorchWeights w;
    char err[1024];
    CHECK(!torch_weights_open(path, &w, err, sizeof err));
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "the file is truncated: expected 95628359 bytes, found 818371");
    CHECK_STR_CONTAINS(err, "Storage '93945537654416' (82944 float32 elements, first used by record 'Mixed_6a.branch3x3dbl_3.conv.weight') needs 331784 bytes at offset 697999, but only 120372 are present");
    CHECK_INT_EQ(w.format, TORCH_FORMAT_LEGACY);
    CHECK_INT_EQ(w.count, 566);
    CHECK_INT_EQ(w.storage_count, 566);
    CHECK_INT_EQ(check_against_record_list(&w), 566);

    /* The counts and shapes that pytorch-fid's FID Inception network has. */
    int float_records = 0, int_records = 0;
    int64_t elements = 0;
    for (size_t i = 0; i < w.count; i++) {
        float_records += strcmp(w.records[i].dtype, "float32") == 0;
        int_records += strcmp(w.records[i].dtype, "int64") == 0;
        elements += w.records[i].element_count;
    }
    CHECK_INT_EQ(float_records, 472);
    CHECK_INT_EQ(int_records, 94);
    CHECK_INT_EQ(elements, 23885486);

    int64_t conv1a[4] = {32, 3, 3, 3}, mixed_7c_pool[4] = {192, 2048, 1, 1}, fc[2] = {1008, 2048}, branch7x7[4] = {128, 128, 1, 7};
    const TorchRecord *r = torch_weights_require(&w, "Conv2d_1a_3x3.conv.weight", "float32", 4, conv1a, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    /* The bytes are in TensorFlow's (H, W, I, O) order: strides (1, O, W*I*O, I*O). */
    if (r) {
        CHECK_INT_EQ(r->stride[0], 1);
        CHECK_INT_EQ(r->stride[1], 32);
        CHECK_INT_EQ(r->stride[2], 288);
        CHECK_INT_EQ(r->stride[3], 96);
    }
    CHECK(torch_weights_require(&w, "Mixed_7c.branch_pool.conv.weight", "float32", 4, mixed_7c_pool, err, sizeof err) != NULL);
    CHECK(torch_weights_require(&w, "Mixed_6b.branch7x7_2.conv.weight", "float32", 4, branch7x7, err, sizeof err) != NULL);
    const TorchRecord *fc_weight = torch_weights_require(&w, "fc.weight", "float32", 2, fc, err, sizeof err);
    CHECK(fc_weight != NULL);
    if (fc_weight) {
        CHECK_INT_EQ(fc_weight->stride[0], 1);
        CHECK_INT_EQ(fc_weight->stride[1], 1008);
        float unused;
        CHECK(!torch_weights_read_float(&w, fc_weight, &unused, err, sizeof err));
        CHECK_STR_CONTAINS(err, "record 'fc.weight': the data of storage");
        CHECK_STR_CONTAINS(err, "is missing because the file is truncated");
    }
    const TorchRecord *steps = torch_weights_find(&w, "Mixed_7c.branch_pool.bn.num_batches_tracked");
    CHECK(steps != NULL);
    if (steps) CHECK_INT_EQ(steps->ndim, 0);
    torch_weights_close(&w);
    free(path);
}

/* The data of the first storages is inside the truncated file, so a strided record read there
 * can be compared with the values NumPy gathered from the same bytes. */
TEST(torch_inception_strided_values)
{
    TorchWeights w;
    char err[1024];
    CHECK(!torch_weights_open(test_data_path(INCEPTION_TRUNCATED), &w, err, sizeof err));
    const TorchRecord *r = torch_weights_find(&w, "Conv2d_1a_3x3.conv.weight");
    CHECK(r != NULL);
    size_t size;
    char *text = mg_read_file(test_data_path("data/inception/conv1a_weight.txt"), &size);
    CHECK(text != NULL);
    if (r && text) {
        float values[864];
        CHECK_INT_EQ(r->element_count, 864);
        bool read = torch_weights_read_float(&w, r, values, err, sizeof err);
        CHECK_MSG(read, "%s", err);
        char *line = strchr(text, '\n') + 1; /* skip the comment line */
        int wrong = 0;
        for (int i = 0; read && i < 864; i++) {
            char *end;
            float expected = strtof(line, &end);
            line = end + 1;
            if (values[i] != expected && wrong++ < 5) test_fail(__FILE__, __LINE__, "value %d = %.9g, expected %.9g", i, values[i], expected);
        }
        CHECK_INT_EQ(wrong, 0);
    }
    free(text);
    torch_weights_close(&w);
}

/* Writes `size` bytes to a new file, opens it as weights and reads every floating-point record.
 * Returns whether it opened, with the message in err when not. */
static bool open_bytes(const char *path, const void *bytes, size_t size, char *err, size_t err_size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, size, f) != size) {
        if (f) fclose(f);
        return mg_set_error(err, err_size, "cannot write %s", path);
    }
    fclose(f);
    TorchWeights w;
    bool ok = torch_weights_open(path, &w, err, err_size);
    for (size_t i = 0; ok && i < w.count; i++) {
        const TorchRecord *r = &w.records[i];
        if (strcmp(r->dtype, "int64") == 0) continue;
        float *values = mg_malloc((size_t)(r->element_count ? r->element_count : 1) * sizeof(float));
        char read_err[1024];
        torch_weights_read_float(&w, r, values, read_err, sizeof read_err);
        free(values);
    }
    torch_weights_close(&w);
    return ok;
}

/* Every prefix of a weights file must fail to open with a message about truncation, and the
 * sanitizer build checks that nothing reads outside the file. */
TEST(torch_rejects_every_truncation)
{
    const char *dir = test_temp_dir();
    char *path = mg_format("%s/cut.pth", dir);
    for (size_t f = 0; f < MG_ARRAY_LEN(TINY_FILES); f++) {
        size_t size;
        char *bytes = mg_read_file(test_data_path(TINY_FILES[f]), &size);
        CHECK(bytes != NULL);
        if (!bytes) continue;
        int accepted = 0, unclear = 0;
        for (size_t n = 0; n < size; n++) {
            char err[1024] = "";
            if (open_bytes(path, bytes, n, err, sizeof err)) {
                accepted++;
                continue;
            }
            bool clear = strncmp(err, path, strlen(path)) == 0 &&
                         (n == 0 ? strstr(err, "the file is empty") != NULL : strstr(err, "truncated") != NULL);
            if (!clear && unclear++ < 3) test_fail(__FILE__, __LINE__, "%s cut to %zu bytes: \"%s\"", TINY_FILES[f], n, err);
        }
        CHECK_MSG(accepted == 0, "%s: %d prefixes were accepted", TINY_FILES[f], accepted);
        CHECK_INT_EQ(unclear, 0);
        free(bytes);
    }
    free(path);
}

/* Damaging any single byte must give a clean error or a readable file, never a crash. */
TEST(torch_survives_corrupted_bytes)
{
    const char *dir = test_temp_dir();
    char *path = mg_format("%s/damaged.pth", dir);
    static const char *const files[] = {"data/torch/tiny_legacy.pth", "data/torch/tiny_zip_protocol4.pth"};
    for (size_t f = 0; f < MG_ARRAY_LEN(files); f++) {
        size_t size;
        char *bytes = mg_read_file(test_data_path(files[f]), &size);
        CHECK(bytes != NULL);
        if (!bytes) continue;
        int messages_without_path = 0;
        for (size_t at = 0; at < size; at++) {
            char saved = bytes[at];
            /* Every bit flipped, then zero (which shortens lengths and counts). */
            const char replacements[2] = {(char)~saved, 0};
            for (size_t v = 0; v < 2; v++) {
                if (v == 1 && saved == 0) continue;
                bytes[at] = replacements[v];
                char err[1024] = "";
                if (!open_bytes(path, bytes, size, err, sizeof err) && strncmp(err, path, strlen(path)) != 0) {
                    if (messages_without_path++ < 3) test_fail(__FILE__, __LINE__, "byte %zu: \"%s\"", at, err);
                }
            }
            bytes[at] = saved;
        }
        CHECK_INT_EQ(messages_without_path, 0);
        free(bytes);
    }
    free(path);
}

TEST(torch_rejects_other_files)
{
    const char *dir = test_temp_dir();
    char *missing = mg_format("%s/missing.pth", dir);
    char *empty = mg_format("%s/empty.pth", dir);
    FILE *f = fopen(empty, "wb");
    if (f) fclose(f);

    const struct {
        const char *path;
        const char *message;
    } cases[] = {
        {missing, "failed to open: No such file or directory"},
        {dir, "not a regular file"},
        {empty, "the file is empty"},
        {"tests/test_torch_weights.c", "not a PyTorch weights file: expected a ZIP archive"},
        {"tests/data/npz/stats_stored.npz", "a ZIP archive without data.pkl"},
        {"tests/data/torch/list.pth", "the file contains a list; expected a state dict"},
        {"tests/data/torch/nested.pth", "state dict entry 'state_dict' is a dict, not a tensor"},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        TorchWeights w;
        char err[1024] = "";
        CHECK_MSG(!torch_weights_open(cases[c].path, &w, err, sizeof err), "%s was accepted", cases[c].path);
        CHECK_STR_CONTAINS(err, cases[c].path);
        CHECK_STR_CONTAINS(err, cases[c].message);
        torch_weights_close(&w);
    }
    free(missing);
    free(empty);
}
