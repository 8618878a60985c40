/* Reading and writing ZIP archives: the container of NumPy's .npz files and of the PyTorch
 * checkpoints written by torch.save since PyTorch 1.6.
 *
 * The reader locates members through the central directory, understands ZIP64 sizes and
 * offsets, extracts stored (method 0) and deflate (method 8) members, and checks each
 * extracted member's CRC-32. It rejects encrypted members, multi-disk archives and other
 * compression methods. The writer emits stored or deflate members without ZIP64, so every
 * member and the whole archive must stay below 4 GiB. Deflate members, read or written, are
 * limited to 2 GiB because stb's zlib functions take int sizes.
 *
 * Errors are returned as messages that name the archive and, where one is involved, the member.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

enum { ZIP_METHOD_STORED = 0, ZIP_METHOD_DEFLATE = 8 };

/* One member as listed in the central directory. */
typedef struct ZipEntry {
    char *name;
    uint16_t method;              /* ZIP_METHOD_STORED or ZIP_METHOD_DEFLATE */
    uint16_t flags;               /* general-purpose bit flags */
    uint32_t crc32;
    uint64_t compressed_size;     /* bytes stored in the archive */
    uint64_t uncompressed_size;   /* bytes after extraction */
    uint64_t local_header_offset; /* from the start of the archive */
} ZipEntry;

/* An archive opened for reading, backed by a caller's memory buffer or by an open file. */
typedef struct ZipReader {
    char *archive_name;       /* path or label used in messages */
    const uint8_t *memory;    /* the archive bytes in memory mode, otherwise NULL */
    FILE *file;               /* the archive in file mode, otherwise NULL */
    uint64_t archive_size;    /* bytes */
    ZipEntry *entries;
    size_t entry_count;
} ZipReader;

/* Opens an archive held in memory. `data` must stay valid until zip_reader_close().
 * `archive_name` is only used in messages. On failure the reader needs no close. */
bool zip_reader_open_memory(ZipReader *zip, const char *archive_name, const void *data, size_t size,
                            char *err, size_t err_size);
/* Opens an archive file and reads its central directory. Member data is read on demand. */
bool zip_reader_open_file(ZipReader *zip, const char *path, char *err, size_t err_size);
void zip_reader_close(ZipReader *zip);

/* Returns the member with exactly this name, or NULL. */
const ZipEntry *zip_reader_find(const ZipReader *zip, const char *name);
/* Finds where a member's data starts by reading its local header, and checks that the
 * compressed data lies inside the archive. The offset is from the start of the archive. */
bool zip_reader_data_offset(const ZipReader *zip, const ZipEntry *entry, uint64_t *offset,
                            char *err, size_t err_size);
/* Reads `size` raw archive bytes starting at `offset`. */
bool zip_reader_read_raw(const ZipReader *zip, uint64_t offset, void *out, size_t size, char *err,
                         size_t err_size);
/* Extracts a member into a new malloc'd buffer (one spare NUL byte past the end) and checks
 * its size and CRC-32. The caller frees *data. */
bool zip_reader_extract(const ZipReader *zip, const ZipEntry *entry, uint8_t **data, size_t *size,
                        char *err, size_t err_size);

/* Updates a CRC-32 (the ZIP and PNG polynomial) with more bytes; start with crc = 0. */
uint32_t zip_crc32(uint32_t crc, const void *data, size_t size);

/* Central-directory record of a member already written. */
typedef struct ZipWrittenEntry {
    char *name;
    uint16_t method;
    uint32_t crc32;
    uint32_t compressed_size;
    uint32_t uncompressed_size;
    uint32_t local_header_offset;
} ZipWrittenEntry;

/* An archive being written through an MgOutput, so it only appears under its final name once
 * complete. Every member gets the timestamp 1980-01-01 00:00, which keeps output reproducible. */
typedef struct ZipWriter {
    MgOutput *out;
    uint64_t offset;           /* bytes written so far */
    ZipWrittenEntry *entries;
    size_t entry_count;
} ZipWriter;

void zip_writer_init(ZipWriter *writer, MgOutput *out);
/* Appends a member, compressing it first when method is ZIP_METHOD_DEFLATE. */
bool zip_writer_add(ZipWriter *writer, const char *name, const void *data, size_t size, int method,
                    char *err, size_t err_size);
/* Writes the central directory and the end record. The caller then commits the MgOutput. */
bool zip_writer_finish(ZipWriter *writer, char *err, size_t err_size);
void zip_writer_free(ZipWriter *writer);
