/* Reading PyTorch state dicts saved by torch.save, without Python.
 *
 * Two serializations are supported:
 * - the legacy format (PyTorch before 1.6, or _use_new_zipfile_serialization=False): five
 *   pickles in a row (magic number, protocol version 1001, sys_info, the state dict, the list
 *   of storage keys), then each storage's element count as an int64 and its raw data, in the
 *   order of the key list. pt_inception-2015-12-05-6726825d.pth, the Inception weights that
 *   pytorch-fid downloads, is in this format.
 * - the zip format (the default since PyTorch 1.6): an archive holding <prefix>/data.pkl and
 *   one member <prefix>/data/<key> per storage.
 * A state dict is a dict or OrderedDict mapping names to tensors pickled as calls of
 * torch._utils._rebuild_tensor_v2 (or _rebuild_tensor, or a _rebuild_parameter wrapper).
 * Each tensor is a strided view of a storage: element (i0, i1, ...) of a record is storage
 * element storage_offset + i0*stride[0] + i1*stride[1] + ...
 *
 * Data is little-endian. The whole file is memory-mapped while open.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"
#include "zip.h"

enum { TORCH_MAX_DIMS = 8, TORCH_DTYPE_SIZE = 16 };

typedef enum TorchFormat { TORCH_FORMAT_LEGACY, TORCH_FORMAT_ZIP } TorchFormat;

/* One storage: a flat typed buffer that records view. */
typedef struct TorchStorage {
    char *key;                    /* the key from the persistent id, e.g. "93945540982624" or "0" */
    char dtype[TORCH_DTYPE_SIZE]; /* "float32", "int64", ... */
    int element_size;             /* bytes */
    int64_t element_count;
    char *first_record;           /* name of the first record that uses it, for messages */
    bool data_present;            /* false when the file ends before this storage's data */
    uint64_t data_offset;         /* of the first element in the file (legacy and stored zip members) */
    const ZipEntry *entry;        /* zip format: the member holding the data */
} TorchStorage;

typedef struct TorchRecord {
    char *name;                     /* state dict key, e.g. "Conv2d_1a_3x3.conv.weight" */
    char dtype[TORCH_DTYPE_SIZE];
    int ndim;                       /* 0 for a scalar */
    int64_t shape[TORCH_MAX_DIMS];
    int64_t stride[TORCH_MAX_DIMS]; /* in elements */
    int64_t storage_offset;         /* in elements, from the start of the storage */
    int64_t element_count;          /* product of the shape */
    size_t storage_index;           /* into TorchWeights.storages */
} TorchRecord;

typedef struct TorchWeights {
    char *path;
    TorchFormat format;
    char sha256[SHA256_HEX_SIZE];   /* of the whole file, lowercase hex */
    TorchRecord *records;           /* in the order of the pickled dict */
    size_t count;
    TorchStorage *storages;
    size_t storage_count;
    const uint8_t *file_data;       /* the memory-mapped file */
    size_t file_size;
    ZipReader zip;                  /* zip format only */
} TorchWeights;

/* Opens a weights file: hashes it, parses every record, and then checks that every storage's
 * data is present and matches the record views. Returns false with a message naming the file
 * on any problem. A truncated file reports the first storage whose data is missing with the
 * bytes expected and found; its records stay in w for inspection. In every case, success or
 * not, release w with torch_weights_close(). */
bool torch_weights_open(const char *path, TorchWeights *w, char *err, size_t err_size);
void torch_weights_close(TorchWeights *w);

/* Returns the record with this name, or NULL. */
const TorchRecord *torch_weights_find(const TorchWeights *w, const char *name);
/* Returns the record `name` after checking its dtype (unless NULL) and shape, or NULL with a
 * message naming the file, the record and the expected and actual values. */
const TorchRecord *torch_weights_require(const TorchWeights *w, const char *name, const char *dtype, int ndim,
                                         const int64_t *shape, char *err, size_t err_size);
/* Copies a floating-point record (float32, float64, float16 or bfloat16) into out as float32,
 * contiguous and row-major in the record's logical shape, following its strides and offset.
 * out must have room for r->element_count floats. */
bool torch_weights_read_float(const TorchWeights *w, const TorchRecord *r, float *out, char *err, size_t err_size);
