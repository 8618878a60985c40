/* The packed dataset file that `prepare` writes and `train` and `eval-fid` read: a header,
 * uint8 pixels (count, H, W, C), one record per crop naming its source image and box, and a
 * table of source names. docs/data-format.md gives the byte layout; all integers are
 * little-endian.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The first four bytes of the file are "MGDS"; read as a little-endian uint32 they are this. */
#define DATASET_MAGIC 0x5344474Du
#define DATASET_VERSION 1u
enum {
    DATASET_HEADER_BYTES = 64,
    DATASET_RECORD_BYTES = 32,
    DATASET_MAX_SIDE = 4096,
};

/* The bundled sample set, relative to the repository root. */
#define DATASET_DEFAULT_PATH "data/dogs32.bin"

/* Where one crop came from. The box is in pixels of the decoded source image: columns
 * x0 <= x < x1 and rows y0 <= y < y1. */
typedef struct DatasetCrop {
    const char *source;      /* image path relative to the input folder, e.g.
                                "n02085620-Chihuahua/n02085620_10074.jpg" */
    uint32_t object;         /* index of the <object> in the annotation; 0 for --images */
    uint32_t x0, y0, x1, y1;
    uint32_t source_width, source_height;
} DatasetCrop;

typedef struct Dataset {
    uint32_t count, height, width, channels;
    uint8_t *pixels;     /* (count, H, W, C) */
    DatasetCrop *crops;  /* (count) */
    void *file_data;     /* the whole file; pixels and crop sources point into it */
    size_t file_size;
} Dataset;

/* Reads a dataset file and checks it: magic, version, header fields, the exact file size, and
 * that every record names a source and has a box inside its source image. On failure
 * returns false with a message that names the file, the problem and the expected value, and
 * leaves `out` empty. Free with dataset_free. */
bool dataset_load(const char *path, Dataset *out, char *err, size_t err_size);
void dataset_free(Dataset *dataset);

/* Returns the pixels of image `index`, (H, W, C). */
static inline const uint8_t *dataset_image(const Dataset *dataset, size_t index)
{
    return dataset->pixels +
           index * (size_t)dataset->height * dataset->width * dataset->channels;
}

/* Writes a dataset crop by crop: pixels go to a temporary file as they arrive, records and
 * source names stay in memory until dataset_writer_commit writes them, fills in the header and
 * renames the file into place. A run that stops before the commit leaves no file at `path`. */
typedef struct DatasetWriter {
    MgOutput out;
    uint32_t count, height, width, channels;
    uint8_t *records;       /* (count, DATASET_RECORD_BYTES) */
    size_t records_capacity;
    char *sources;          /* NUL-terminated names, back to back */
    size_t sources_size, sources_capacity;
    size_t last_source_offset;
} DatasetWriter;

/* Creates the temporary file. Returns false with a message naming `path` on failure. */
bool dataset_writer_open(DatasetWriter *writer, const char *path, uint32_t height,
                         uint32_t width, uint32_t channels, char *err, size_t err_size);
/* Appends one image (H, W, C) and its record. Consecutive crops of the same source share one
 * copy of the name. */
bool dataset_writer_add(DatasetWriter *writer, const uint8_t *pixels, const DatasetCrop *crop,
                        char *err, size_t err_size);
bool dataset_writer_commit(DatasetWriter *writer, char *err, size_t err_size);
/* Deletes the temporary file and frees the writer. */
void dataset_writer_abandon(DatasetWriter *writer);
