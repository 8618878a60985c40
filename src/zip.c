/* ZIP archive reader and writer (see zip.h for what is and is not supported).
 *
 * The records involved, with all integers little-endian (PKWARE APPNOTE 6.3):
 *   local header      "PK\3\4", 30 bytes + name + extra, followed by the member data
 *   central header    "PK\1\2", 46 bytes + name + extra + comment, one per member
 *   end record        "PK\5\6", 22 bytes + comment, points at the central directory
 *   ZIP64 end record  "PK\6\6" and its locator "PK\6\7" just before the end record,
 *                     used when a count, size or offset does not fit the 16/32-bit fields
 */
#include "zip.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stb_image.h" /* stbi_zlib_decode_noheader_buffer: raw deflate decoder */

/* stb_image_write declares its deflater only inside its implementation section, so the
 * prototype of the function exported by libstb is repeated here. It returns a malloc'd zlib
 * stream: a 2-byte header, the raw deflate data and a 4-byte Adler-32 trailer. */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

enum {
    LOCAL_HEADER_SIGNATURE = 0x04034b50,
    CENTRAL_HEADER_SIGNATURE = 0x02014b50,
    END_RECORD_SIGNATURE = 0x06054b50,
    ZIP64_END_RECORD_SIGNATURE = 0x06064b50,
    ZIP64_LOCATOR_SIGNATURE = 0x07064b50,
    LOCAL_HEADER_SIZE = 30,
    CENTRAL_HEADER_SIZE = 46,
    END_RECORD_SIZE = 22,
    ZIP64_END_RECORD_SIZE = 56,
    ZIP64_LOCATOR_SIZE = 20,
    ZIP64_EXTRA_ID = 0x0001,
    MAX_COMMENT_SIZE = 0xffff,
    FLAG_ENCRYPTED = 1 << 0,
    /* The deflate level passed to stb's compressor, the default of its PNG writer. */
    DEFLATE_QUALITY = 8,
    /* DOS date 1980-01-01 (year 0, month 1, day 1), the earliest a ZIP timestamp can express. */
    FIXED_DOS_DATE = (1 << 5) | 1,
    INFLATE_PADDING = 8,
};

/* Deflate cannot expand data by more than a factor of 1032, so a member that claims more is
 * corrupt. The bound keeps a damaged header from requesting an absurd allocation. */
static const uint64_t MAX_DEFLATE_RATIO = 1032;

static uint16_t read16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t read32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t read64(const uint8_t *p) { return (uint64_t)read32(p) | (uint64_t)read32(p + 4) << 32; }

static void write16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void write32(uint8_t *p, uint32_t v)
{
    write16(p, (uint16_t)v);
    write16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t crc32_table[256];

static void build_crc32_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc32_table[i] = c;
    }
}

uint32_t zip_crc32(uint32_t crc, const void *data, size_t size)
{
    static pthread_once_t table_once = PTHREAD_ONCE_INIT;
    pthread_once(&table_once, build_crc32_table);
    const uint8_t *bytes = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) crc = crc32_table[(crc ^ bytes[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- reading ---- */

bool zip_reader_read_raw(const ZipReader *zip, uint64_t offset, void *out, size_t size, char *err,
                         size_t err_size)
{
    if (offset > zip->archive_size || size > zip->archive_size - offset) {
        return mg_set_error(err, err_size,
                            "%s: truncated archive: needs bytes %llu to %llu but has only %llu bytes",
                            zip->archive_name, (unsigned long long)offset,
                            (unsigned long long)(offset + size), (unsigned long long)zip->archive_size);
    }
    if (size == 0) return true;
    if (zip->memory) {
        memcpy(out, zip->memory + offset, size);
        return true;
    }
    if (fseeko(zip->file, (off_t)offset, SEEK_SET) != 0 || fread(out, 1, size, zip->file) != size) {
        return mg_set_error(err, err_size, "%s: failed to read %zu bytes at offset %llu: %s",
                            zip->archive_name, size, (unsigned long long)offset,
                            ferror(zip->file) ? strerror(errno) : "unexpected end of file");
    }
    return true;
}

/* Finds the end record in the last 64 KiB + 22 bytes and returns its offset. */
static bool find_end_record(const ZipReader *zip, uint64_t *end_offset, uint8_t record[END_RECORD_SIZE],
                            char *err, size_t err_size)
{
    uint64_t tail_size = zip->archive_size < END_RECORD_SIZE + MAX_COMMENT_SIZE
                             ? zip->archive_size
                             : END_RECORD_SIZE + MAX_COMMENT_SIZE;
    if (tail_size < END_RECORD_SIZE) {
        return mg_set_error(err, err_size,
                            "%s: not a ZIP archive, or a truncated one: %llu bytes cannot contain an end of central directory record",
                            zip->archive_name, (unsigned long long)zip->archive_size);
    }
    uint8_t *tail = mg_malloc((size_t)tail_size);
    uint64_t tail_start = zip->archive_size - tail_size;
    if (!zip_reader_read_raw(zip, tail_start, tail, (size_t)tail_size, err, err_size)) {
        free(tail);
        return false;
    }
    for (uint64_t i = tail_size - END_RECORD_SIZE + 1; i-- > 0;) {
        if (read32(tail + i) != END_RECORD_SIGNATURE) continue;
        uint16_t comment_size = read16(tail + i + 20);
        if (i + END_RECORD_SIZE + comment_size > tail_size) continue;
        memcpy(record, tail + i, END_RECORD_SIZE);
        *end_offset = tail_start + i;
        free(tail);
        return true;
    }
    free(tail);
    return mg_set_error(err, err_size,
                        "%s: not a ZIP archive, or a truncated one: no end of central directory record found",
                        zip->archive_name);
}

typedef struct CentralDirectory {
    uint64_t entry_count;
    uint64_t size;
    uint64_t offset;
} CentralDirectory;

/* Reads the central directory's location from the end record, or from the ZIP64 end record
 * when a locator precedes the end record. */
static bool locate_central_directory(const ZipReader *zip, CentralDirectory *cd, char *err, size_t err_size)
{
    uint64_t end_offset = 0;
    uint8_t end[END_RECORD_SIZE] = {0};
    if (!find_end_record(zip, &end_offset, end, err, err_size)) return false;
    if (read16(end + 4) != 0 || read16(end + 6) != 0 || read16(end + 8) != read16(end + 10)) {
        return mg_set_error(err, err_size, "%s: multi-disk ZIP archives are not supported", zip->archive_name);
    }
    cd->entry_count = read16(end + 10);
    cd->size = read32(end + 12);
    cd->offset = read32(end + 16);

    uint8_t locator[ZIP64_LOCATOR_SIZE];
    if (end_offset >= ZIP64_LOCATOR_SIZE &&
        zip_reader_read_raw(zip, end_offset - ZIP64_LOCATOR_SIZE, locator, sizeof locator, err, err_size) &&
        read32(locator) == ZIP64_LOCATOR_SIGNATURE) {
        uint64_t record_offset = read64(locator + 8);
        uint8_t record[ZIP64_END_RECORD_SIZE];
        if (!zip_reader_read_raw(zip, record_offset, record, sizeof record, err, err_size)) return false;
        if (read32(record) != ZIP64_END_RECORD_SIGNATURE) {
            return mg_set_error(err, err_size, "%s: invalid ZIP64 end of central directory record at offset %llu",
                                zip->archive_name, (unsigned long long)record_offset);
        }
        cd->entry_count = read64(record + 32);
        cd->size = read64(record + 40);
        cd->offset = read64(record + 48);
    }

    if (cd->offset > zip->archive_size || cd->size > zip->archive_size - cd->offset) {
        return mg_set_error(err, err_size,
                            "%s: invalid or truncated archive: the central directory (%llu bytes at offset %llu) lies outside the %llu-byte file",
                            zip->archive_name, (unsigned long long)cd->size, (unsigned long long)cd->offset,
                            (unsigned long long)zip->archive_size);
    }
    if (cd->entry_count > cd->size / CENTRAL_HEADER_SIZE) {
        return mg_set_error(err, err_size,
                            "%s: invalid archive: %llu members cannot fit a %llu-byte central directory",
                            zip->archive_name, (unsigned long long)cd->entry_count, (unsigned long long)cd->size);
    }
    return true;
}

/* Replaces the 32-bit fields that are 0xffffffff with the values of the ZIP64 extra field,
 * which lists them in the order uncompressed size, compressed size, local header offset. */
static bool apply_zip64_extra(const ZipReader *zip, ZipEntry *entry, const uint8_t *extra, size_t extra_size,
                              char *err, size_t err_size)
{
    bool need_usize = entry->uncompressed_size == 0xffffffffu;
    bool need_csize = entry->compressed_size == 0xffffffffu;
    bool need_offset = entry->local_header_offset == 0xffffffffu;
    if (!need_usize && !need_csize && !need_offset) return true;

    size_t at = 0;
    while (at + 4 <= extra_size) {
        uint16_t id = read16(extra + at), size = read16(extra + at + 2);
        if (at + 4 + size > extra_size) break;
        if (id == ZIP64_EXTRA_ID) {
            const uint8_t *p = extra + at + 4, *end = p + size;
            if (need_usize && p + 8 <= end) {
                entry->uncompressed_size = read64(p);
                p += 8;
                need_usize = false;
            }
            if (need_csize && p + 8 <= end) {
                entry->compressed_size = read64(p);
                p += 8;
                need_csize = false;
            }
            if (need_offset && p + 8 <= end) {
                entry->local_header_offset = read64(p);
                need_offset = false;
            }
            break;
        }
        at += 4 + (size_t)size;
    }
    if (need_usize || need_csize || need_offset) {
        return mg_set_error(err, err_size, "%s: member '%s': invalid archive: its ZIP64 extra field is missing or too short",
                            zip->archive_name, entry->name);
    }
    return true;
}

static bool parse_central_directory(ZipReader *zip, const uint8_t *cd, const CentralDirectory *info,
                                    char *err, size_t err_size)
{
    zip->entries = mg_calloc((size_t)info->entry_count, sizeof *zip->entries);
    size_t at = 0;
    for (uint64_t i = 0; i < info->entry_count; i++) {
        if (at + CENTRAL_HEADER_SIZE > info->size || read32(cd + at) != CENTRAL_HEADER_SIGNATURE) {
            return mg_set_error(err, err_size, "%s: invalid archive: central directory entry %llu is damaged",
                                zip->archive_name, (unsigned long long)i);
        }
        const uint8_t *h = cd + at;
        size_t name_size = read16(h + 28), extra_size = read16(h + 30), comment_size = read16(h + 32);
        if (at + CENTRAL_HEADER_SIZE + name_size + extra_size + comment_size > info->size) {
            return mg_set_error(err, err_size, "%s: invalid archive: central directory entry %llu runs past its end",
                                zip->archive_name, (unsigned long long)i);
        }
        const uint8_t *name = h + CENTRAL_HEADER_SIZE;
        if (memchr(name, '\0', name_size)) {
            return mg_set_error(err, err_size, "%s: invalid archive: member name %llu contains a NUL byte",
                                zip->archive_name, (unsigned long long)i);
        }

        ZipEntry *e = &zip->entries[zip->entry_count++];
        e->name = mg_malloc(name_size + 1);
        memcpy(e->name, name, name_size);
        e->name[name_size] = '\0';
        e->flags = read16(h + 8);
        e->method = read16(h + 10);
        e->crc32 = read32(h + 16);
        e->compressed_size = read32(h + 20);
        e->uncompressed_size = read32(h + 24);
        e->local_header_offset = read32(h + 42);
        if (!apply_zip64_extra(zip, e, name + name_size, extra_size, err, err_size)) return false;
        at += CENTRAL_HEADER_SIZE + name_size + extra_size + comment_size;
    }
    return true;
}

static bool open_common(ZipReader *zip, char *err, size_t err_size)
{
    CentralDirectory info;
    if (!locate_central_directory(zip, &info, err, err_size)) return false;
    uint8_t *cd = mg_malloc((size_t)info.size);
    bool ok = zip_reader_read_raw(zip, info.offset, cd, (size_t)info.size, err, err_size) &&
              parse_central_directory(zip, cd, &info, err, err_size);
    free(cd);
    return ok;
}

bool zip_reader_open_memory(ZipReader *zip, const char *archive_name, const void *data, size_t size,
                            char *err, size_t err_size)
{
    memset(zip, 0, sizeof *zip);
    zip->archive_name = mg_strdup(archive_name);
    zip->memory = data;
    zip->archive_size = size;
    if (!open_common(zip, err, err_size)) {
        zip_reader_close(zip);
        return false;
    }
    return true;
}

bool zip_reader_open_file(ZipReader *zip, const char *path, char *err, size_t err_size)
{
    memset(zip, 0, sizeof *zip);
    zip->file = fopen(path, "rb");
    if (!zip->file) return mg_set_error(err, err_size, "%s: failed to open: %s", path, strerror(errno));
    zip->archive_name = mg_strdup(path);
    if (fseeko(zip->file, 0, SEEK_END) != 0) {
        mg_set_error(err, err_size, "%s: failed to seek: %s", path, strerror(errno));
        zip_reader_close(zip);
        return false;
    }
    zip->archive_size = (uint64_t)ftello(zip->file);
    if (!open_common(zip, err, err_size)) {
        zip_reader_close(zip);
        return false;
    }
    return true;
}

void zip_reader_close(ZipReader *zip)
{
    for (size_t i = 0; i < zip->entry_count; i++) free(zip->entries[i].name);
    free(zip->entries);
    free(zip->archive_name);
    if (zip->file) fclose(zip->file);
    memset(zip, 0, sizeof *zip);
}

const ZipEntry *zip_reader_find(const ZipReader *zip, const char *name)
{
    for (size_t i = 0; i < zip->entry_count; i++) {
        if (strcmp(zip->entries[i].name, name) == 0) return &zip->entries[i];
    }
    return NULL;
}

bool zip_reader_data_offset(const ZipReader *zip, const ZipEntry *entry, uint64_t *offset, char *err,
                            size_t err_size)
{
    uint8_t header[LOCAL_HEADER_SIZE];
    char inner[256];
    if (!zip_reader_read_raw(zip, entry->local_header_offset, header, sizeof header, inner, sizeof inner)) {
        return mg_set_error(err, err_size, "%s: member '%s': local header missing: %s", zip->archive_name,
                            entry->name, inner);
    }
    if (read32(header) != LOCAL_HEADER_SIGNATURE) {
        return mg_set_error(err, err_size, "%s: member '%s': invalid archive: no local header at offset %llu",
                            zip->archive_name, entry->name, (unsigned long long)entry->local_header_offset);
    }
    uint64_t data = entry->local_header_offset + LOCAL_HEADER_SIZE + read16(header + 26) + read16(header + 28);
    if (data > zip->archive_size || entry->compressed_size > zip->archive_size - data) {
        return mg_set_error(err, err_size,
                            "%s: member '%s': truncated archive: the member's %llu bytes start at offset %llu but the archive has only %llu bytes",
                            zip->archive_name, entry->name, (unsigned long long)entry->compressed_size,
                            (unsigned long long)data, (unsigned long long)zip->archive_size);
    }
    *offset = data;
    return true;
}

/* Reads and inflates a deflate member into `out` (uncompressed_size bytes). */
static bool inflate_member(const ZipReader *zip, const ZipEntry *entry, uint64_t data_offset, uint8_t *out,
                           char *err, size_t err_size)
{
    if (entry->compressed_size > INT_MAX - INFLATE_PADDING || entry->uncompressed_size > INT_MAX) {
        return mg_set_error(err, err_size,
                            "%s: member '%s': deflate members over 2 GiB are not supported (%llu bytes)",
                            zip->archive_name, entry->name, (unsigned long long)entry->uncompressed_size);
    }
    /* stb's decoder (libstb-dev 0.0~git20220908) reports an error when it needs to look 16 bits
     * ahead for the last code and the input has ended, so the data gets zero bytes appended. */
    size_t size = (size_t)entry->compressed_size;
    uint8_t *compressed = mg_calloc(size + INFLATE_PADDING, 1);
    if (!zip_reader_read_raw(zip, data_offset, compressed, size, err, err_size)) {
        free(compressed);
        return false;
    }
    int produced = stbi_zlib_decode_noheader_buffer((char *)out, (int)entry->uncompressed_size,
                                                    (const char *)compressed, (int)(size + INFLATE_PADDING));
    free(compressed);
    if (produced != (int)entry->uncompressed_size) {
        return mg_set_error(err, err_size,
                            "%s: member '%s': invalid deflate data: expected %llu bytes after decompression%s",
                            zip->archive_name, entry->name, (unsigned long long)entry->uncompressed_size,
                            produced < 0 ? ", the stream is corrupt or longer" : ", the stream ended early");
    }
    return true;
}

bool zip_reader_extract(const ZipReader *zip, const ZipEntry *entry, uint8_t **data, size_t *size, char *err,
                        size_t err_size)
{
    *data = NULL;
    *size = 0;
    if (entry->flags & FLAG_ENCRYPTED) {
        return mg_set_error(err, err_size, "%s: member '%s' is encrypted, which is not supported",
                            zip->archive_name, entry->name);
    }
    if (entry->method != ZIP_METHOD_STORED && entry->method != ZIP_METHOD_DEFLATE) {
        return mg_set_error(err, err_size,
                            "%s: member '%s' uses compression method %u; only stored (0) and deflate (8) are supported",
                            zip->archive_name, entry->name, entry->method);
    }
    if (entry->method == ZIP_METHOD_STORED && entry->compressed_size != entry->uncompressed_size) {
        return mg_set_error(err, err_size, "%s: member '%s': invalid archive: stored member has %llu bytes but claims %llu",
                            zip->archive_name, entry->name, (unsigned long long)entry->compressed_size,
                            (unsigned long long)entry->uncompressed_size);
    }
    if (entry->method == ZIP_METHOD_DEFLATE &&
        entry->uncompressed_size / MAX_DEFLATE_RATIO > entry->compressed_size + 1) {
        return mg_set_error(err, err_size,
                            "%s: member '%s': invalid archive: %llu compressed bytes cannot expand to the %llu bytes claimed",
                            zip->archive_name, entry->name, (unsigned long long)entry->compressed_size,
                            (unsigned long long)entry->uncompressed_size);
    }
    if (entry->uncompressed_size >= SIZE_MAX) {
        return mg_set_error(err, err_size, "%s: member '%s' is too large for this machine", zip->archive_name, entry->name);
    }

    uint64_t offset;
    if (!zip_reader_data_offset(zip, entry, &offset, err, err_size)) return false;
    size_t n = (size_t)entry->uncompressed_size;
    uint8_t *out = mg_malloc(n + 1);
    bool ok = entry->method == ZIP_METHOD_STORED ? zip_reader_read_raw(zip, offset, out, n, err, err_size)
                                                 : inflate_member(zip, entry, offset, out, err, err_size);
    if (!ok) {
        free(out);
        return false;
    }
    uint32_t crc = zip_crc32(0, out, n);
    if (crc != entry->crc32) {
        free(out);
        return mg_set_error(err, err_size,
                            "%s: member '%s' is corrupt: CRC-32 is %08x but the archive records %08x",
                            zip->archive_name, entry->name, crc, entry->crc32);
    }
    out[n] = '\0';
    *data = out;
    *size = n;
    return true;
}

/* ---- writing ---- */

void zip_writer_init(ZipWriter *writer, MgOutput *out)
{
    memset(writer, 0, sizeof *writer);
    writer->out = out;
}

void zip_writer_free(ZipWriter *writer)
{
    for (size_t i = 0; i < writer->entry_count; i++) free(writer->entries[i].name);
    free(writer->entries);
    writer->entries = NULL;
    writer->entry_count = 0;
}

static bool write_bytes(ZipWriter *writer, const void *data, size_t size, char *err, size_t err_size)
{
    if (!mg_output_write(writer->out, data, size)) {
        return mg_set_error(err, err_size, "%s: write failed: %s", writer->out->path, strerror(errno));
    }
    writer->offset += size;
    return true;
}

/* Compresses with stb's deflater and strips the zlib header and Adler-32 trailer, since ZIP
 * stores raw deflate data. Returns a malloc'd buffer. */
static uint8_t *deflate_raw(const void *data, size_t size, size_t *compressed_size)
{
    if (size == 0) {
        /* stb emits an incomplete stream for empty input, so write the canonical empty one: a
         * final block with fixed Huffman codes that contains only the end-of-block code. */
        uint8_t *empty = mg_malloc(2);
        empty[0] = 0x03;
        empty[1] = 0x00;
        *compressed_size = 2;
        return empty;
    }
    int zlib_size = 0;
    uint8_t *zlib = stbi_zlib_compress((unsigned char *)data, (int)size, &zlib_size, DEFLATE_QUALITY);
    if (!zlib) mg_fatal("out of memory: deflate of %zu bytes failed", size);
    if (zlib_size < 6) mg_panic("stbi_zlib_compress returned a %d-byte stream", zlib_size);
    size_t n = (size_t)zlib_size - 6;
    uint8_t *raw = mg_malloc(n ? n : 1);
    memcpy(raw, zlib + 2, n);
    free(zlib);
    *compressed_size = n;
    return raw;
}

bool zip_writer_add(ZipWriter *writer, const char *name, const void *data, size_t size, int method,
                    char *err, size_t err_size)
{
    size_t name_size = strlen(name);
    if (method != ZIP_METHOD_STORED && method != ZIP_METHOD_DEFLATE) mg_panic("zip_writer_add: method %d", method);
    if (name_size == 0 || name_size > 0xffff) mg_panic("zip_writer_add: invalid member name length %zu", name_size);
    if (size > (method == ZIP_METHOD_DEFLATE ? (size_t)INT_MAX : (size_t)0xfffffffe)) {
        return mg_set_error(err, err_size, "%s: member '%s' has %zu bytes, more than this ZIP writer supports",
                            writer->out->path, name, size);
    }

    uint32_t crc = zip_crc32(0, data, size);
    const uint8_t *payload = data;
    uint8_t *compressed = NULL;
    size_t payload_size = size;
    if (method == ZIP_METHOD_DEFLATE) {
        compressed = deflate_raw(data, size, &payload_size);
        payload = compressed;
    }
    if (writer->offset + LOCAL_HEADER_SIZE + name_size + payload_size >= 0xffffffffu) {
        free(compressed);
        return mg_set_error(err, err_size, "%s: archive would exceed 4 GiB, which needs ZIP64 (not supported)",
                            writer->out->path);
    }

    ZipWrittenEntry entry = {mg_strdup(name), (uint16_t)method, crc, (uint32_t)payload_size, (uint32_t)size,
                             (uint32_t)writer->offset};
    uint8_t header[LOCAL_HEADER_SIZE] = {0};
    write32(header, LOCAL_HEADER_SIGNATURE);
    write16(header + 4, 20);               /* version needed to extract: 2.0 */
    write16(header + 8, entry.method);
    write16(header + 12, FIXED_DOS_DATE);  /* time at +10 stays 00:00:00 */
    write32(header + 14, crc);
    write32(header + 18, entry.compressed_size);
    write32(header + 22, entry.uncompressed_size);
    write16(header + 26, (uint16_t)name_size);
    bool ok = write_bytes(writer, header, sizeof header, err, err_size) &&
              write_bytes(writer, name, name_size, err, err_size) &&
              write_bytes(writer, payload, payload_size, err, err_size);
    free(compressed);
    if (!ok) {
        free(entry.name);
        return false;
    }
    writer->entries = mg_realloc(writer->entries, (writer->entry_count + 1) * sizeof *writer->entries);
    writer->entries[writer->entry_count++] = entry;
    return true;
}

bool zip_writer_finish(ZipWriter *writer, char *err, size_t err_size)
{
    uint64_t cd_offset = writer->offset;
    for (size_t i = 0; i < writer->entry_count; i++) {
        const ZipWrittenEntry *e = &writer->entries[i];
        size_t name_size = strlen(e->name);
        uint8_t header[CENTRAL_HEADER_SIZE] = {0};
        write32(header, CENTRAL_HEADER_SIGNATURE);
        write16(header + 4, 3 << 8 | 20);  /* made by: Unix, version 2.0 */
        write16(header + 6, 20);
        write16(header + 10, e->method);
        write16(header + 14, FIXED_DOS_DATE);
        write32(header + 16, e->crc32);
        write32(header + 20, e->compressed_size);
        write32(header + 24, e->uncompressed_size);
        write16(header + 28, (uint16_t)name_size);
        write32(header + 38, 0100644u << 16);  /* external attributes: a regular file, rw-r--r-- */
        write32(header + 42, e->local_header_offset);
        if (!write_bytes(writer, header, sizeof header, err, err_size) ||
            !write_bytes(writer, e->name, name_size, err, err_size)) {
            return false;
        }
    }
    uint64_t cd_size = writer->offset - cd_offset;
    if (writer->entry_count > 0xffff || writer->offset >= 0xffffffffu) {
        return mg_set_error(err, err_size, "%s: archive exceeds the limits of a ZIP without ZIP64", writer->out->path);
    }

    uint8_t end[END_RECORD_SIZE] = {0};
    write32(end, END_RECORD_SIGNATURE);
    write16(end + 8, (uint16_t)writer->entry_count);
    write16(end + 10, (uint16_t)writer->entry_count);
    write32(end + 12, (uint32_t)cd_size);
    write32(end + 16, (uint32_t)cd_offset);
    return write_bytes(writer, end, sizeof end, err, err_size);
}
