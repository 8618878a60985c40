/* PyTorch state dict reader (see torch_weights.h for the two file formats). */
#include "torch_weights.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pickle.h"
#include "util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "torch_weights.c assumes a little-endian host");

/* The legacy format's first pickle is the integer 0x1950a86a20f9469cfc6c, stored by LONG1 as
 * these 10 little-endian bytes. */
static const uint8_t LEGACY_MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
enum { LEGACY_PROTOCOL_VERSION = 1001 };

enum { TAG_STORAGE = 1, TAG_TENSOR = 2 };

/* What a persistent id resolves to: a storage, or (legacy format) a slice of one. */
typedef struct StorageRef {
    size_t index;     /* into TorchWeights.storages */
    int64_t offset;   /* first element of the slice */
    int64_t size;     /* elements in the slice */
} StorageRef;

typedef struct TensorInfo {
    StorageRef storage;
    int64_t offset;   /* from the start of the slice */
    int ndim;
    int64_t shape[TORCH_MAX_DIMS];
    int64_t stride[TORCH_MAX_DIMS];
} TensorInfo;

static const struct StorageType {
    const char *name;
    const char *dtype;
    int element_size;
} STORAGE_TYPES[] = {
    {"FloatStorage", "float32", 4},   {"DoubleStorage", "float64", 8},
    {"HalfStorage", "float16", 2},    {"BFloat16Storage", "bfloat16", 2},
    {"LongStorage", "int64", 8},      {"IntStorage", "int32", 4},
    {"ShortStorage", "int16", 2},     {"CharStorage", "int8", 1},
    {"ByteStorage", "uint8", 1},      {"BoolStorage", "bool", 1},
    {"ComplexFloatStorage", "complex64", 8}, {"ComplexDoubleStorage", "complex128", 16},
};

/* ---- pickle callbacks: storages and tensors ---- */

static PickleObject *new_opaque(Pickle *pickle, int tag, size_t size)
{
    PickleObject *obj = pickle_new_object(pickle, PICKLE_OPAQUE);
    obj->opaque.tag = tag;
    obj->opaque.payload = pickle_alloc(pickle, size);
    return obj;
}

static bool is_tuple_item(const PickleObject *tuple, size_t i, PickleKind kind)
{
    return i < tuple->sequence.count && tuple->sequence.items[i]->kind == kind;
}

static int64_t tuple_int(const PickleObject *tuple, size_t i) { return tuple->sequence.items[i]->integer; }

/* Returns the index of the storage with this key, adding it when new. A key seen before must
 * come with the same type and size. */
static bool register_storage(Pickle *pickle, TorchWeights *w, const char *key, const struct StorageType *type,
                             int64_t element_count, size_t *index)
{
    for (size_t i = 0; i < w->storage_count; i++) {
        TorchStorage *s = &w->storages[i];
        if (strcmp(s->key, key) != 0) continue;
        if (strcmp(s->dtype, type->dtype) != 0 || s->element_count != element_count) {
            return pickle_fail(pickle, "storage '%s' appears as %s with %lld elements and as %s with %lld", key,
                               s->dtype, (long long)s->element_count, type->dtype, (long long)element_count);
        }
        *index = i;
        return true;
    }
    w->storages = mg_realloc(w->storages, (w->storage_count + 1) * sizeof *w->storages);
    TorchStorage *s = &w->storages[w->storage_count];
    memset(s, 0, sizeof *s);
    s->key = mg_strdup(key);
    snprintf(s->dtype, sizeof s->dtype, "%s", type->dtype);
    s->element_size = type->element_size;
    s->element_count = element_count;
    *index = w->storage_count++;
    return true;
}

/* Resolves ('storage', torch.<Type>Storage, key, location, numel[, view_metadata]), where
 * view_metadata is None or (view_key, offset, size) in the legacy format. */
static PickleObject *load_storage(Pickle *pickle, PickleObject *pid, void *context)
{
    TorchWeights *w = context;
    if (pid->kind != PICKLE_TUPLE || pid->sequence.count < 5 || pid->sequence.count > 6 ||
        !is_tuple_item(pid, 0, PICKLE_STRING) || strcmp(pid->sequence.items[0]->text.data, "storage") != 0 ||
        !is_tuple_item(pid, 1, PICKLE_GLOBAL) || !is_tuple_item(pid, 2, PICKLE_STRING) ||
        !is_tuple_item(pid, 4, PICKLE_INT)) {
        pickle_fail(pickle, "persistent id is not ('storage', type, key, location, size)");
        return NULL;
    }
    const PickleObject *type_global = pid->sequence.items[1];
    const struct StorageType *type = NULL;
    for (size_t i = 0; i < MG_ARRAY_LEN(STORAGE_TYPES); i++) {
        if (pickle_is_global(type_global, "torch", STORAGE_TYPES[i].name)) type = &STORAGE_TYPES[i];
    }
    if (!type) {
        pickle_fail(pickle, "unsupported storage type %s.%s", type_global->global.module, type_global->global.name);
        return NULL;
    }
    int64_t element_count = tuple_int(pid, 4);
    if (element_count < 0 || element_count > INT64_MAX / type->element_size) {
        pickle_fail(pickle, "invalid storage size %lld", (long long)element_count);
        return NULL;
    }

    StorageRef ref = {0, 0, element_count};
    if (!register_storage(pickle, w, pid->sequence.items[2]->text.data, type, element_count, &ref.index)) return NULL;

    if (pid->sequence.count == 6 && pid->sequence.items[5]->kind != PICKLE_NONE) {
        const PickleObject *view = pid->sequence.items[5];
        if (view->kind != PICKLE_TUPLE || view->sequence.count != 3 || !is_tuple_item(view, 1, PICKLE_INT) ||
            !is_tuple_item(view, 2, PICKLE_INT)) {
            pickle_fail(pickle, "storage view is not (key, offset, size)");
            return NULL;
        }
        ref.offset = tuple_int(view, 1);
        ref.size = tuple_int(view, 2);
        if (ref.offset < 0 || ref.size < 0 || ref.offset > element_count || ref.size > element_count - ref.offset) {
            pickle_fail(pickle, "storage view [%lld, +%lld) lies outside its %lld-element storage",
                        (long long)ref.offset, (long long)ref.size, (long long)element_count);
            return NULL;
        }
    }
    PickleObject *obj = new_opaque(pickle, TAG_STORAGE, sizeof(StorageRef));
    *(StorageRef *)obj->opaque.payload = ref;
    return obj;
}

static bool parse_int_tuple(Pickle *pickle, const PickleObject *tuple, const char *what, int *ndim, int64_t *values)
{
    if (tuple->kind != PICKLE_TUPLE) return pickle_fail(pickle, "tensor %s is a %s, not a tuple", what, pickle_kind_name(tuple->kind));
    if (tuple->sequence.count > TORCH_MAX_DIMS) {
        return pickle_fail(pickle, "tensor has %zu dimensions; at most %d are supported", tuple->sequence.count, TORCH_MAX_DIMS);
    }
    for (size_t i = 0; i < tuple->sequence.count; i++) {
        if (!is_tuple_item(tuple, i, PICKLE_INT) || tuple_int(tuple, i) < 0) {
            return pickle_fail(pickle, "tensor %s entry %zu is not a non-negative integer", what, i);
        }
        values[i] = tuple_int(tuple, i);
    }
    *ndim = (int)tuple->sequence.count;
    return true;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
 * metadata]) or the older _rebuild_tensor(storage, storage_offset, size, stride). The hooks
 * argument is None in the Inception weights file and an empty OrderedDict in files written by
 * PyTorch 1.13. */
static PickleObject *rebuild_tensor(Pickle *pickle, PickleObject *args, bool v2)
{
    size_t count = args->sequence.count;
    if ((v2 && count != 6 && count != 7) || (!v2 && count != 4)) {
        pickle_fail(pickle, "%s called with %zu arguments", v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor", count);
        return NULL;
    }
    const PickleObject *storage = args->sequence.items[0];
    if (storage->kind != PICKLE_OPAQUE || storage->opaque.tag != TAG_STORAGE) {
        pickle_fail(pickle, "tensor storage argument is a %s, not a storage", pickle_kind_name(storage->kind));
        return NULL;
    }
    if (!is_tuple_item(args, 1, PICKLE_INT) || tuple_int(args, 1) < 0) {
        pickle_fail(pickle, "tensor storage offset is not a non-negative integer");
        return NULL;
    }
    if (v2 && args->sequence.items[5]->kind != PICKLE_NONE && args->sequence.items[5]->kind != PICKLE_DICT) {
        pickle_fail(pickle, "tensor backward hooks argument is a %s; expected None or an OrderedDict",
                    pickle_kind_name(args->sequence.items[5]->kind));
        return NULL;
    }

    PickleObject *obj = new_opaque(pickle, TAG_TENSOR, sizeof(TensorInfo));
    TensorInfo *t = obj->opaque.payload;
    t->storage = *(const StorageRef *)storage->opaque.payload;
    t->offset = tuple_int(args, 1);
    int stride_ndim;
    if (!parse_int_tuple(pickle, args->sequence.items[2], "size", &t->ndim, t->shape) ||
        !parse_int_tuple(pickle, args->sequence.items[3], "stride", &stride_ndim, t->stride)) {
        return NULL;
    }
    if (stride_ndim != t->ndim) {
        pickle_fail(pickle, "tensor has %d sizes but %d strides", t->ndim, stride_ndim);
        return NULL;
    }
    return obj;
}

static PickleObject *call_global(Pickle *pickle, const PickleObject *callable, PickleObject *args, void *context)
{
    if (pickle_is_global(callable, "torch._utils", "_rebuild_tensor_v2")) return rebuild_tensor(pickle, args, true);
    if (pickle_is_global(callable, "torch._utils", "_rebuild_tensor")) return rebuild_tensor(pickle, args, false);
    if (pickle_is_global(callable, "torch._utils", "_rebuild_parameter") ||
        pickle_is_global(callable, "torch._utils", "_rebuild_parameter_with_state")) {
        /* A parameter is its data tensor plus requires_grad, hooks and maybe state. */
        if (args->sequence.count < 1 || args->sequence.items[0]->kind != PICKLE_OPAQUE ||
            args->sequence.items[0]->opaque.tag != TAG_TENSOR) {
            pickle_fail(pickle, "%s called without a tensor", callable->global.name);
            return NULL;
        }
        return args->sequence.items[0];
    }
    pickle_fail(pickle, "unsupported call of %s.%s; expected a state dict of tensors", callable->global.module,
                callable->global.name);
    return NULL;
}

/* ---- records ---- */

static int compare_names(const void *a, const void *b)
{
    return strcmp((*(const TorchRecord *const *)a)->name, (*(const TorchRecord *const *)b)->name);
}

/* Fills in one record from a tensor and checks that its view stays inside its storage. */
static bool make_record(TorchWeights *w, const char *name, const TensorInfo *t, char *err, size_t err_size)
{
    TorchRecord *r = &w->records[w->count];
    memset(r, 0, sizeof *r);
    r->name = mg_strdup(name);
    w->count++;

    TorchStorage *s = &w->storages[t->storage.index];
    snprintf(r->dtype, sizeof r->dtype, "%s", s->dtype);
    r->ndim = t->ndim;
    memcpy(r->shape, t->shape, sizeof r->shape);
    memcpy(r->stride, t->stride, sizeof r->stride);
    r->storage_index = t->storage.index;
    if (!s->first_record) s->first_record = mg_strdup(name);

    /* The last element a view touches is offset + sum((shape[d] - 1) * stride[d]). */
    int64_t count = 1, last = t->offset;
    bool overflow = __builtin_add_overflow(t->storage.offset, t->offset, &r->storage_offset);
    for (int d = 0; d < t->ndim; d++) {
        int64_t reach;
        overflow |= __builtin_mul_overflow(count, t->shape[d], &count);
        if (t->shape[d] > 0) {
            overflow |= __builtin_mul_overflow(t->shape[d] - 1, t->stride[d], &reach);
            overflow |= __builtin_add_overflow(last, reach, &last);
        }
    }
    r->element_count = count;
    if (overflow) {
        return mg_set_error(err, err_size, "%s: record '%s': shape and strides overflow 64-bit indices", w->path, name);
    }
    if (count > 0 && last >= t->storage.size) {
        return mg_set_error(err, err_size,
                            "%s: record '%s': its view reaches element %lld, but storage '%s' has %lld elements",
                            w->path, name, (long long)last, s->key, (long long)t->storage.size);
    }
    return true;
}

static bool build_records(TorchWeights *w, const PickleObject *state, char *err, size_t err_size)
{
    if (state->kind != PICKLE_DICT) {
        return mg_set_error(err, err_size, "%s: the file contains a %s; expected a state dict (a dict of tensors)",
                            w->path, pickle_kind_name(state->kind));
    }
    w->records = mg_calloc(state->dict.count ? state->dict.count : 1, sizeof *w->records);
    for (size_t i = 0; i < state->dict.count; i++) {
        const PickleObject *key = state->dict.keys[i], *value = state->dict.values[i];
        if (key->kind != PICKLE_STRING) {
            return mg_set_error(err, err_size, "%s: state dict key %zu is a %s, not a string", w->path, i,
                                pickle_kind_name(key->kind));
        }
        if (value->kind != PICKLE_OPAQUE || value->opaque.tag != TAG_TENSOR) {
            return mg_set_error(err, err_size,
                                "%s: state dict entry '%s' is a %s, not a tensor; save weights with torch.save(model.state_dict(), path)",
                                w->path, key->text.data, value->kind == PICKLE_OPAQUE ? "storage" : pickle_kind_name(value->kind));
        }
        if (!make_record(w, key->text.data, value->opaque.payload, err, err_size)) return false;
    }

    /* Python would keep the last of two equal keys; a state dict never has them. */
    const TorchRecord **sorted = mg_malloc((w->count ? w->count : 1) * sizeof *sorted);
    for (size_t i = 0; i < w->count; i++) sorted[i] = &w->records[i];
    qsort(sorted, w->count, sizeof *sorted, compare_names);
    bool ok = true;
    for (size_t i = 1; i < w->count && ok; i++) {
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            ok = mg_set_error(err, err_size, "%s: record '%s' appears twice", w->path, sorted[i]->name);
        }
    }
    free(sorted);
    return ok;
}

static bool pickle_failed(const Pickle *pickle, char *err, size_t err_size)
{
    return mg_set_error(err, err_size, "%s", pickle_error(pickle));
}

/* ---- legacy format ---- */

static TorchStorage *find_storage(TorchWeights *w, const char *key)
{
    for (size_t i = 0; i < w->storage_count; i++) {
        if (strcmp(w->storages[i].key, key) == 0) return &w->storages[i];
    }
    return NULL;
}

static uint64_t storage_bytes(const TorchStorage *s) { return (uint64_t)s->element_count * (uint64_t)s->element_size; }

/* Reads the storage key list and locates each storage's data after it: an int64 element
 * count followed by the elements, storage after storage in the order of the list. */
static bool locate_legacy_data(TorchWeights *w, const PickleObject *keys, size_t offset, char *err, size_t err_size)
{
    if (keys->kind != PICKLE_LIST) {
        return mg_set_error(err, err_size, "%s: the storage key list is a %s, not a list", w->path, pickle_kind_name(keys->kind));
    }
    TorchStorage **order = mg_calloc(keys->sequence.count ? keys->sequence.count : 1, sizeof *order);
    uint64_t expected_size = offset;
    bool ok = true;
    for (size_t i = 0; i < keys->sequence.count && ok; i++) {
        const PickleObject *key = keys->sequence.items[i];
        if (key->kind != PICKLE_STRING) {
            ok = mg_set_error(err, err_size, "%s: storage key %zu is a %s, not a string", w->path, i, pickle_kind_name(key->kind));
        } else if (!(order[i] = find_storage(w, key->text.data))) {
            ok = mg_set_error(err, err_size, "%s: storage '%s' is listed but no record uses it", w->path, key->text.data);
        } else {
            expected_size += 8 + storage_bytes(order[i]);
        }
    }
    for (size_t i = 0; i < w->storage_count && ok; i++) {
        bool listed = false;
        for (size_t k = 0; k < keys->sequence.count && !listed; k++) listed = order[k] == &w->storages[i];
        if (!listed) {
            ok = mg_set_error(err, err_size, "%s: storage '%s' of record '%s' is missing from the storage key list", w->path,
                              w->storages[i].key, w->storages[i].first_record);
        }
    }

    for (size_t i = 0; i < keys->sequence.count && ok; i++) {
        TorchStorage *s = order[i];
        uint64_t needed = 8 + storage_bytes(s);
        uint64_t available = offset < w->file_size ? w->file_size - offset : 0;
        if (needed > available) {
            ok = mg_set_error(err, err_size,
                              "%s: the file is truncated: expected %llu bytes, found %zu. Storage '%s' (%lld %s elements, "
                              "first used by record '%s') needs %llu bytes at offset %zu, but only %llu are present",
                              w->path, (unsigned long long)expected_size, w->file_size, s->key, (long long)s->element_count,
                              s->dtype, s->first_record, (unsigned long long)needed, offset, (unsigned long long)available);
            break;
        }
        int64_t count;
        memcpy(&count, w->file_data + offset, 8);
        if (count != s->element_count) {
            ok = mg_set_error(err, err_size,
                              "%s: storage '%s' at offset %zu has %lld elements, but its records expect %lld; the file is damaged",
                              w->path, s->key, offset, (long long)count, (long long)s->element_count);
            break;
        }
        s->data_offset = offset + 8;
        s->data_present = true;
        offset += (size_t)needed;
    }
    free(order);
    return ok;
}

static bool load_legacy(TorchWeights *w, Pickle *pickle, char *err, size_t err_size)
{
    const PickleCallbacks callbacks = {w, load_storage, call_global};
    size_t pos = 0;
    PickleObject *magic, *protocol, *sys_info, *state, *keys;

    if (!pickle_load(pickle, w->file_data, w->file_size, &pos, NULL, &magic)) return pickle_failed(pickle, err, err_size);
    if (magic->kind != PICKLE_BIG_INT || magic->text.size != sizeof LEGACY_MAGIC ||
        memcmp(magic->text.data, LEGACY_MAGIC, sizeof LEGACY_MAGIC) != 0) {
        return mg_set_error(err, err_size,
                            "%s: not a PyTorch weights file: it starts with a pickle, but not with the magic number of torch.save's legacy format",
                            w->path);
    }
    if (!pickle_load(pickle, w->file_data, w->file_size, &pos, NULL, &protocol)) return pickle_failed(pickle, err, err_size);
    if (protocol->kind != PICKLE_INT || protocol->integer != LEGACY_PROTOCOL_VERSION) {
        return mg_set_error(err, err_size, "%s: unsupported legacy format version; expected %d", w->path, LEGACY_PROTOCOL_VERSION);
    }
    if (!pickle_load(pickle, w->file_data, w->file_size, &pos, NULL, &sys_info)) return pickle_failed(pickle, err, err_size);
    if (sys_info->kind == PICKLE_DICT) {
        for (size_t i = 0; i < sys_info->dict.count; i++) {
            const PickleObject *k = sys_info->dict.keys[i], *v = sys_info->dict.values[i];
            if (k->kind == PICKLE_STRING && strcmp(k->text.data, "little_endian") == 0 && v->kind == PICKLE_BOOL &&
                !v->boolean) {
                return mg_set_error(err, err_size, "%s: the file was saved on a big-endian machine, which is not supported", w->path);
            }
        }
    }

    if (!pickle_load(pickle, w->file_data, w->file_size, &pos, &callbacks, &state)) return pickle_failed(pickle, err, err_size);
    if (!build_records(w, state, err, err_size)) return false;
    if (!pickle_load(pickle, w->file_data, w->file_size, &pos, NULL, &keys)) return pickle_failed(pickle, err, err_size);
    return locate_legacy_data(w, keys, pos, err, err_size);
}

/* ---- zip format ---- */

static bool load_zip(TorchWeights *w, Pickle *pickle, char *err, size_t err_size)
{
    if (!zip_reader_open_memory(&w->zip, w->path, w->file_data, w->file_size, err, err_size)) return false;

    /* torch.save names every member <prefix>/..., where the prefix is the file's base name. */
    const ZipEntry *pkl = NULL;
    for (size_t i = 0; i < w->zip.entry_count && !pkl; i++) {
        const char *name = w->zip.entries[i].name;
        size_t n = strlen(name);
        if (strcmp(name, "data.pkl") == 0 || (n > 9 && strcmp(name + n - 9, "/data.pkl") == 0)) pkl = &w->zip.entries[i];
    }
    if (!pkl) return mg_set_error(err, err_size, "%s: a ZIP archive without data.pkl, so not a torch.save file", w->path);
    char *prefix = mg_strdup(pkl->name);
    prefix[strlen(prefix) - strlen("data.pkl")] = '\0';

    uint8_t *bytes;
    size_t size, pos = 0;
    bool ok = zip_reader_extract(&w->zip, pkl, &bytes, &size, err, err_size);
    if (ok) {
        const PickleCallbacks callbacks = {w, load_storage, call_global};
        PickleObject *state;
        ok = pickle_load(pickle, bytes, size, &pos, &callbacks, &state) ? build_records(w, state, err, err_size)
                                                                         : pickle_failed(pickle, err, err_size);
        free(bytes);
    }

    /* Newer PyTorch releases record the byte order of the data in a "byteorder" member. */
    char *byteorder_name = mg_format("%sbyteorder", prefix);
    const ZipEntry *byteorder = zip_reader_find(&w->zip, byteorder_name);
    free(byteorder_name);
    if (ok && byteorder) {
        ok = zip_reader_extract(&w->zip, byteorder, &bytes, &size, err, err_size);
        if (ok) {
            bool little = strcmp((char *)bytes, "little") == 0;
            free(bytes);
            if (!little) ok = mg_set_error(err, err_size, "%s: the data is big-endian, which is not supported", w->path);
        }
    }

    for (size_t i = 0; i < w->storage_count && ok; i++) {
        TorchStorage *s = &w->storages[i];
        char *name = mg_format("%sdata/%s", prefix, s->key);
        s->entry = zip_reader_find(&w->zip, name);
        if (!s->entry) {
            ok = mg_set_error(err, err_size, "%s: member '%s' with the data of record '%s' is missing", w->path, name,
                              s->first_record);
        } else if (s->entry->uncompressed_size != storage_bytes(s)) {
            ok = mg_set_error(err, err_size, "%s: member '%s' has %llu bytes, but %lld %s elements need %llu", w->path, name,
                              (unsigned long long)s->entry->uncompressed_size, (long long)s->element_count, s->dtype,
                              (unsigned long long)storage_bytes(s));
        } else if (s->entry->method == ZIP_METHOD_STORED) {
            ok = zip_reader_data_offset(&w->zip, s->entry, &s->data_offset, err, err_size);
            s->data_present = ok;
        } else {
            s->data_present = true; /* compressed members are extracted when read */
        }
        free(name);
    }
    free(prefix);
    return ok;
}

/* ---- opening and closing ---- */

static bool map_file(TorchWeights *w, char *err, size_t err_size)
{
    int fd = open(w->path, O_RDONLY);
    if (fd < 0) return mg_set_error(err, err_size, "%s: failed to open: %s", w->path, strerror(errno));
    struct stat st;
    bool ok = true;
    if (fstat(fd, &st) != 0) {
        ok = mg_set_error(err, err_size, "%s: failed to read: %s", w->path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        ok = mg_set_error(err, err_size, "%s: not a regular file; expected PyTorch weights (.pth)", w->path);
    } else if (st.st_size == 0) {
        ok = mg_set_error(err, err_size, "%s: the file is empty; expected PyTorch weights (.pth)", w->path);
    } else {
        void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            ok = mg_set_error(err, err_size, "%s: failed to map into memory: %s", w->path, strerror(errno));
        } else {
            w->file_data = data;
            w->file_size = (size_t)st.st_size;
        }
    }
    close(fd);
    return ok;
}

bool torch_weights_open(const char *path, TorchWeights *w, char *err, size_t err_size)
{
    memset(w, 0, sizeof *w);
    w->path = mg_strdup(path);
    if (!map_file(w, err, err_size)) return false;

    Sha256 hash;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&hash);
    sha256_update(&hash, w->file_data, w->file_size);
    sha256_final(&hash, digest);
    sha256_to_hex(digest, w->sha256);

    /* A zip archive starts with a local header, or with the end record when it is empty. A
     * file shorter than that signature is taken for a cut-off archive. */
    static const uint8_t local_header[4] = {'P', 'K', 3, 4}, end_record[4] = {'P', 'K', 5, 6};
    size_t signature_size = w->file_size < 4 ? w->file_size : 4;
    bool zip = memcmp(w->file_data, local_header, signature_size) == 0 ||
               memcmp(w->file_data, end_record, signature_size) == 0;
    const uint8_t *d = w->file_data;
    if (!zip && d[0] != 0x80) {
        return mg_set_error(err, err_size,
                            "%s: not a PyTorch weights file: expected a ZIP archive (torch.save since PyTorch 1.6) or a pickle (the legacy format)",
                            path);
    }
    w->format = zip ? TORCH_FORMAT_ZIP : TORCH_FORMAT_LEGACY;
    Pickle *pickle = pickle_new(path);
    bool ok = zip ? load_zip(w, pickle, err, err_size) : load_legacy(w, pickle, err, err_size);
    pickle_free(pickle);
    return ok;
}

void torch_weights_close(TorchWeights *w)
{
    for (size_t i = 0; i < w->count; i++) free(w->records[i].name);
    free(w->records);
    for (size_t i = 0; i < w->storage_count; i++) {
        free(w->storages[i].key);
        free(w->storages[i].first_record);
    }
    free(w->storages);
    if (w->zip.archive_name) zip_reader_close(&w->zip);
    if (w->file_data) munmap((void *)w->file_data, w->file_size);
    free(w->path);
    memset(w, 0, sizeof *w);
}

/* ---- lookup and reading ---- */

const TorchRecord *torch_weights_find(const TorchWeights *w, const char *name)
{
    for (size_t i = 0; i < w->count; i++) {
        if (strcmp(w->records[i].name, name) == 0) return &w->records[i];
    }
    return NULL;
}

static void format_shape(int ndim, const int64_t *shape, char *out, size_t out_size)
{
    size_t n = (size_t)snprintf(out, out_size, "[");
    for (int d = 0; d < ndim && n < out_size; d++) {
        n += (size_t)snprintf(out + n, out_size - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    }
    if (n < out_size) snprintf(out + n, out_size - n, "]");
}

const TorchRecord *torch_weights_require(const TorchWeights *w, const char *name, const char *dtype, int ndim,
                                         const int64_t *shape, char *err, size_t err_size)
{
    const TorchRecord *r = torch_weights_find(w, name);
    if (!r) {
        mg_set_error(err, err_size, "%s: record '%s' is missing; is this the right weights file?", w->path, name);
        return NULL;
    }
    if (dtype && strcmp(r->dtype, dtype) != 0) {
        mg_set_error(err, err_size, "%s: record '%s' has dtype %s; expected %s", w->path, name, r->dtype, dtype);
        return NULL;
    }
    bool same = r->ndim == ndim;
    for (int d = 0; d < ndim && same; d++) same = r->shape[d] == shape[d];
    if (!same) {
        char actual[200], expected[200];
        format_shape(r->ndim, r->shape, actual, sizeof actual);
        format_shape(ndim, shape, expected, sizeof expected);
        mg_set_error(err, err_size, "%s: record '%s' has shape %s; expected %s", w->path, name, actual, expected);
        return NULL;
    }
    return r;
}

/* IEEE 754 binary16 to binary32; every half value is exact in float. */
static float half_to_float(uint16_t h)
{
    int exponent = (h >> 10) & 0x1f;
    int mantissa = h & 0x3ff;
    float v;
    if (exponent == 0) {
        v = ldexpf((float)mantissa, -24);
    } else if (exponent == 31) {
        v = mantissa ? NAN : INFINITY;
    } else {
        v = ldexpf((float)(mantissa | 0x400), exponent - 25);
    }
    return (h & 0x8000) ? -v : v;
}

/* Returns the element_to_float code of a floating-point dtype, or 0 for other dtypes. */
static char float_kind(const char *dtype)
{
    if (strcmp(dtype, "float32") == 0) return 'f';
    if (strcmp(dtype, "float64") == 0) return 'd';
    if (strcmp(dtype, "float16") == 0) return 'h';
    if (strcmp(dtype, "bfloat16") == 0) return 'b';
    return 0;
}

static float element_to_float(const uint8_t *p, char kind)
{
    switch (kind) {
    case 'f': {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case 'd': {
        double v;
        memcpy(&v, p, 8);
        return (float)v;
    }
    case 'h': {
        uint16_t h;
        memcpy(&h, p, 2);
        return half_to_float(h);
    }
    default: { /* 'b': bfloat16 is the upper half of a float32 */
        uint16_t h;
        memcpy(&h, p, 2);
        uint32_t bits = (uint32_t)h << 16;
        float v;
        memcpy(&v, &bits, 4);
        return v;
    }
    }
}

bool torch_weights_read_float(const TorchWeights *w, const TorchRecord *r, float *out, char *err, size_t err_size)
{
    const TorchStorage *s = &w->storages[r->storage_index];
    char kind = float_kind(r->dtype);
    if (!kind) {
        return mg_set_error(err, err_size, "%s: record '%s' has dtype %s; expected a floating-point dtype", w->path,
                            r->name, r->dtype);
    }
    if (!s->data_present) {
        return mg_set_error(err, err_size, "%s: record '%s': the data of storage '%s' is missing because the file is truncated",
                            w->path, r->name, s->key);
    }
    if (r->element_count == 0) return true;

    const uint8_t *base;
    uint8_t *extracted = NULL;
    if (w->format == TORCH_FORMAT_ZIP && s->entry->method != ZIP_METHOD_STORED) {
        size_t size;
        if (!zip_reader_extract(&w->zip, s->entry, &extracted, &size, err, err_size)) return false;
        base = extracted;
    } else {
        base = w->file_data + s->data_offset;
        if (w->format == TORCH_FORMAT_ZIP && zip_crc32(0, base, (size_t)storage_bytes(s)) != s->entry->crc32) {
            return mg_set_error(err, err_size, "%s: member '%s' with the data of record '%s' is corrupt: CRC-32 mismatch",
                                w->path, s->entry->name, r->name);
        }
    }

    /* Walk the logical indices in row-major order, keeping the storage index in step. */
    int64_t index[TORCH_MAX_DIMS] = {0};
    int64_t source = r->storage_offset;
    for (int64_t e = 0; e < r->element_count; e++) {
        out[e] = element_to_float(base + (size_t)source * (size_t)s->element_size, kind);
        for (int d = r->ndim - 1; d >= 0; d--) {
            if (++index[d] < r->shape[d]) {
                source += r->stride[d];
                break;
            }
            source -= (r->shape[d] - 1) * r->stride[d];
            index[d] = 0;
        }
    }
    free(extracted);
    return true;
}
