/* NumPy .npy arrays and .npz archives, and the FID statistics files built on them.
 *
 * A statistics file is what pytorch-fid's --save-stats and np.savez(path, mu=mu, sigma=sigma)
 * write: an .npz archive with a float64 array mu of shape (D,) and sigma of shape (D, D).
 * The reader accepts float64 and float32 arrays in either byte order and in C or Fortran
 * order, from stored (np.savez) or deflate (np.savez_compressed) archives. When an archive has
 * neither mu nor sigma, it reads the keys mean and cov instead, which TransGAN's
 * utils/torch_fid_score.py also loads. The writer produces deflate members like
 * np.savez_compressed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zip.h"

enum { NPY_MAX_DIMS = 8 };

/* An array read from a .npy file, converted to float64 in C (row-major) order. */
typedef struct NpyArray {
    char dtype[8];                /* the stored dtype, e.g. "<f8" */
    int ndim;                     /* 0 for a scalar */
    int64_t shape[NPY_MAX_DIMS];
    size_t count;                 /* product of the shape */
    double *data;                 /* count values */
} NpyArray;

void npy_array_free(NpyArray *array);

/* Parses a whole .npy file held in memory. `label` names the file in messages. */
bool npy_parse(const char *label, const uint8_t *bytes, size_t size, NpyArray *array, char *err,
               size_t err_size);

typedef struct NpzFile {
    char *path;
    ZipReader zip;
} NpzFile;

bool npz_open(NpzFile *npz, const char *path, char *err, size_t err_size);
void npz_close(NpzFile *npz);
/* True when the archive has the array `key`, stored as member "<key>.npy" or "<key>". */
bool npz_contains(const NpzFile *npz, const char *key);
bool npz_read_array(const NpzFile *npz, const char *key, NpyArray *array, char *err, size_t err_size);

/* One float64 array to write. */
typedef struct NpzWriteArray {
    const char *key;              /* the member is "<key>.npy" */
    int ndim;
    const int64_t *shape;         /* ndim sizes */
    const double *data;           /* product of the shape values, C order */
} NpzWriteArray;

/* Writes arrays as '<f8' .npy members of an .npz archive, compressed with deflate when
 * `compress` is true. The file appears under `path` only once complete (see MgOutput). */
bool npz_write(const char *path, const NpzWriteArray *arrays, size_t count, bool compress, char *err,
               size_t err_size);

/* Reads FID statistics: *dim = D, *mu (D) and *sigma (D, D) newly malloc'd float64 arrays.
 * Checks the keys, that the shapes agree and that every value is finite. */
bool npz_read_fid_stats(const char *path, int *dim, double **mu, double **sigma, char *err, size_t err_size);
/* Writes FID statistics with keys mu and sigma, compressed like np.savez_compressed. */
bool npz_write_fid_stats(const char *path, int dim, const double *mu, const double *sigma, char *err,
                         size_t err_size);
