/* Image decoding (libjpeg-turbo for JPEG, stb_image for the rest), PNG output through
 * stb_image_write, area-averaging resize through stb_image_resize, and directory listings.
 *
 * Decoding matches Pillow's Image.open(path).convert("RGB") for JPEG so that FID statistics
 * computed here agree with the usual Python tools; EXIF orientation is ignored, as Pillow
 * does without ImageOps.exif_transpose.
 */
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jpeglib.h>         /* jpeg_* decompression, struct jpeg_error_mgr */
#include <stb_image.h>       /* stbi_load_from_memory, stbi_info_from_memory */
#include <stb_image_resize.h> /* stbir_resize_uint8_generic */
#include <stb_image_write.h> /* stbi_write_png_to_func */

#include "util.h"

/* ---- decoding ---------------------------------------------------------------------------- */

static bool check_dimensions(const char *name, long width, long height, char *err,
                             size_t err_size)
{
    if (width <= 0 || height <= 0) {
        snprintf(err, err_size, "%s: invalid image size %ldx%ld", name, width, height);
        return false;
    }
    if (width > IMAGE_MAX_SIDE || height > IMAGE_MAX_SIDE ||
        (size_t)width * (size_t)height > IMAGE_MAX_PIXELS) {
        snprintf(err, err_size,
                 "%s: image of %ldx%ld pixels is too large (at most %d pixels a side and "
                 "%zu pixels in total)",
                 name, width, height, IMAGE_MAX_SIDE, (size_t)IMAGE_MAX_PIXELS);
        return false;
    }
    return true;
}

typedef struct JpegErrorManager {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} JpegErrorManager;

static void jpeg_raise_error(j_common_ptr cinfo)
{
    JpegErrorManager *manager = (JpegErrorManager *)cinfo->err;
    manager->base.format_message(cinfo, manager->message);
    longjmp(manager->jump, 1);
}

/* libjpeg reports recoverable damage (truncated data, bytes before a marker) as a warning,
 * message level -1, and carries on with grey or repeated blocks. Such pixels would enter the
 * training set unnoticed, so a warning fails the decode. Levels >= 0 are trace output. */
static void jpeg_handle_message(j_common_ptr cinfo, int level)
{
    if (level < 0) jpeg_raise_error(cinfo);
}

/* Pillow's MULDIV255: a * b / 255 rounded, with integer arithmetic. */
static int muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* Converts one row of CMYK as libjpeg returns it to RGB the way Pillow 9 does. Pillow assumes
 * Adobe's inverted CMYK (raw mode "CMYK;I" in JpegImagePlugin.py). Its convert("RGB") then
 * computes each channel as (255 - k) - (255 - k) * c / 255. */
static void cmyk_row_to_rgb(const uint8_t *cmyk, uint8_t *rgb, int width)
{
    for (int x = 0; x < width; x++) {
        int not_k = cmyk[4 * x + 3]; /* 255 - k after inversion */
        for (int ch = 0; ch < 3; ch++) {
            int c = 255 - cmyk[4 * x + ch];
            int v = not_k - muldiv255(c, not_k);
            if (v < 0) v = 0;
            rgb[3 * x + ch] = (uint8_t)v;
        }
    }
}

static uint8_t *decode_jpeg(const uint8_t *data, size_t size, const char *name, int *width_out,
                            int *height_out, char *err, size_t err_size)
{
    struct jpeg_decompress_struct cinfo;
    JpegErrorManager manager;
    /* volatile: these change after setjmp and are read after longjmp */
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile cmyk_row = NULL;

    cinfo.err = jpeg_std_error(&manager.base);
    manager.base.error_exit = jpeg_raise_error;
    manager.base.emit_message = jpeg_handle_message;
    if (setjmp(manager.jump)) {
        snprintf(err, err_size, "%s: invalid JPEG: %s", name, manager.message);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(cmyk_row);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    if (!check_dimensions(name, (long)cinfo.image_width, (long)cinfo.image_height, err,
                          err_size)) {
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    bool is_cmyk = false;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        is_cmyk = true;
        break;
    default:
        snprintf(err, err_size, "%s: unsupported JPEG color space (%d components)", name,
                 cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }

    jpeg_start_decompress(&cinfo);
    int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
    size_t row_bytes = (size_t)width * 3;
    pixels = malloc(row_bytes * (size_t)height);
    if (is_cmyk) cmyk_row = malloc((size_t)width * 4);
    if (!pixels || (is_cmyk && !cmyk_row)) {
        snprintf(err, err_size, "%s: out of memory decoding a %dx%d image", name, width, height);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(cmyk_row);
        return NULL;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *rgb_row = pixels + row_bytes * cinfo.output_scanline;
        JSAMPROW row = is_cmyk ? cmyk_row : rgb_row;
        jpeg_read_scanlines(&cinfo, &row, 1);
        if (is_cmyk) cmyk_row_to_rgb(cmyk_row, rgb_row, width);
    }
    /* Reads up to the end-of-image marker, so damage after the last row is reported too. */
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);

    *width_out = width;
    *height_out = height;
    return pixels;
}

static uint8_t *decode_with_stb(const uint8_t *data, size_t size, const char *name,
                                int *width_out, int *height_out, char *err, size_t err_size)
{
    if (size > INT_MAX) {
        snprintf(err, err_size, "%s: file of %zu bytes is too large to decode", name, size);
        return NULL;
    }
    int width, height, channels;
    if (!stbi_info_from_memory(data, (int)size, &width, &height, &channels)) {
        snprintf(err, err_size, "%s: not a JPEG or PNG image, or corrupt (stb_image: %s)", name,
                 stbi_failure_reason());
        return NULL;
    }
    if (!check_dimensions(name, width, height, err, err_size)) return NULL;
    uint8_t *pixels = stbi_load_from_memory(data, (int)size, &width, &height, &channels, 3);
    if (!pixels) {
        snprintf(err, err_size, "%s: invalid image data (stb_image: %s)", name,
                 stbi_failure_reason());
        return NULL;
    }
    /* stb_image allocates with malloc unless STBI_MALLOC is overridden, so free() applies. */
    *width_out = width;
    *height_out = height;
    return pixels;
}

uint8_t *image_decode_rgb(const void *data, size_t size, const char *name, int *width,
                          int *height, char *err, size_t err_size)
{
    const uint8_t *bytes = data;
    if (size == 0) {
        snprintf(err, err_size, "%s: empty file", name);
        return NULL;
    }
    if (size >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8)
        return decode_jpeg(bytes, size, name, width, height, err, err_size);
    return decode_with_stb(bytes, size, name, width, height, err, err_size);
}

uint8_t *image_load_rgb(const char *path, int *width, int *height, char *err, size_t err_size)
{
    size_t size;
    char *data = mg_read_file(path, &size);
    if (!data) {
        snprintf(err, err_size, "%s: failed to read: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t *pixels = image_decode_rgb(data, size, path, width, height, err, err_size);
    free(data);
    return pixels;
}

/* ---- PNG output -------------------------------------------------------------------------- */

typedef struct PngSink {
    MgOutput *out;
    bool failed;
} PngSink;

static void png_sink_write(void *context, void *data, int size)
{
    PngSink *sink = context;
    if (!sink->failed && !mg_output_write(sink->out, data, (size_t)size)) sink->failed = true;
}

bool image_write_png(const char *path, const uint8_t *rgb, int width, int height, char *err,
                     size_t err_size)
{
    MgOutput out;
    if (!mg_output_open(&out, path)) {
        snprintf(err, err_size, "%s: failed to create: %s", path, strerror(errno));
        return false;
    }
    PngSink sink = {&out, false};
    int encoded = stbi_write_png_to_func(png_sink_write, &sink, width, height, 3, rgb, width * 3);
    if (!encoded || sink.failed) {
        int saved = errno;
        mg_output_abandon(&out);
        if (!encoded)
            snprintf(err, err_size, "%s: failed to encode a %dx%d PNG", path, width, height);
        else
            snprintf(err, err_size, "%s: failed to write: %s", path, strerror(saved));
        return false;
    }
    if (!mg_output_commit(&out)) {
        snprintf(err, err_size, "%s: failed to write: %s", path, strerror(errno));
        return false;
    }
    return true;
}

enum { GRID_BORDER = 2 };

bool image_write_grid_png(const char *path, const uint8_t *images, int count, int height,
                          int width, int columns, char *err, size_t err_size)
{
    if (count <= 0 || height <= 0 || width <= 0 || columns <= 0) {
        snprintf(err, err_size, "%s: nothing to write (%d images of %dx%d in %d columns)", path,
                 count, height, width, columns);
        return false;
    }
    if (columns > count) columns = count;
    int rows = (count + columns - 1) / columns;
    int grid_width = columns * (width + GRID_BORDER) + GRID_BORDER;
    int grid_height = rows * (height + GRID_BORDER) + GRID_BORDER;
    size_t tile_row_bytes = (size_t)width * 3;
    size_t grid_row_bytes = (size_t)grid_width * 3;
    uint8_t *grid = mg_calloc(grid_row_bytes, (size_t)grid_height);

    for (int i = 0; i < count; i++) {
        const uint8_t *tile = images + (size_t)i * tile_row_bytes * (size_t)height;
        int left = GRID_BORDER + (i % columns) * (width + GRID_BORDER);
        int top = GRID_BORDER + (i / columns) * (height + GRID_BORDER);
        for (int y = 0; y < height; y++) {
            memcpy(grid + (size_t)(top + y) * grid_row_bytes + (size_t)left * 3,
                   tile + (size_t)y * tile_row_bytes, tile_row_bytes);
        }
    }
    bool ok = image_write_png(path, grid, grid_width, grid_height, err, err_size);
    free(grid);
    return ok;
}

/* ---- crop geometry and resizing ---------------------------------------------------------- */

bool image_resize_box(const uint8_t *rgb, int width, int height, ImageBox box, uint8_t *out,
                      int out_width, int out_height)
{
    if (box.x0 < 0 || box.y0 < 0 || box.x1 > width || box.y1 > height || box.x1 <= box.x0 ||
        box.y1 <= box.y0)
        mg_panic("image_resize_box: box (%d,%d)-(%d,%d) is not inside a %dx%d image", box.x0,
                 box.y0, box.x1, box.y1, width, height);
    const uint8_t *origin = rgb + ((size_t)box.y0 * (size_t)width + (size_t)box.x0) * 3;
    return stbir_resize_uint8_generic(origin, box.x1 - box.x0, box.y1 - box.y0, width * 3, out,
                                      out_width, out_height, out_width * 3, 3,
                                      STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                      STBIR_FILTER_BOX, STBIR_COLORSPACE_LINEAR, NULL) != 0;
}

ImageBox image_center_square(int width, int height)
{
    int side = width < height ? width : height;
    int x0 = (width - side) / 2, y0 = (height - side) / 2;
    return (ImageBox){x0, y0, x0 + side, y0 + side};
}

/* Places an interval of `length` centred on [lo, hi) inside [0, limit). */
static void center_interval(int lo, int hi, int length, int limit, int *out_lo, int *out_hi)
{
    if (length >= limit) {
        *out_lo = 0;
        *out_hi = limit;
        return;
    }
    int start = lo - (length - (hi - lo)) / 2;
    if (start < 0) start = 0;
    if (start + length > limit) start = limit - length;
    *out_lo = start;
    *out_hi = start + length;
}

ImageBox image_square_box(ImageBox box, int width, int height)
{
    int box_width = box.x1 - box.x0, box_height = box.y1 - box.y0;
    int side = box_width > box_height ? box_width : box_height;
    ImageBox square = box;
    if (box_width < side) center_interval(box.x0, box.x1, side, width, &square.x0, &square.x1);
    if (box_height < side) center_interval(box.y0, box.y1, side, height, &square.y0, &square.y1);
    return square;
}

/* ---- directory listing ------------------------------------------------------------------- */

typedef struct PathList {
    char **paths;
    size_t count, capacity;
    size_t ignored;
} PathList;

static bool has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

static void path_list_push(PathList *list, char *path)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 256;
        list->paths = mg_realloc(list->paths, list->capacity * sizeof *list->paths);
    }
    list->paths[list->count++] = path;
}

/* Symbolic links are followed; the depth limit stops a link that points at its own parent. */
enum { MAX_DIRECTORY_DEPTH = 64 };

static bool scan_directory(const char *dir, int depth, PathList *list, char *err,
                           size_t err_size)
{
    if (depth > MAX_DIRECTORY_DEPTH) {
        snprintf(err, err_size, "%s: directories nested more than %d deep (a symbolic link loop?)",
                 dir, MAX_DIRECTORY_DEPTH);
        return false;
    }
    DIR *handle = opendir(dir);
    if (!handle) {
        snprintf(err, err_size, "%s: failed to open directory: %s", dir, strerror(errno));
        return false;
    }
    bool ok = true;
    struct dirent *entry;
    while (ok && (entry = readdir(handle))) {
        if (entry->d_name[0] == '.') continue;
        char *path = mg_format("%s/%s", dir, entry->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            /* a dangling symbolic link: nothing to read */
            list->ignored++;
            free(path);
        } else if (S_ISDIR(st.st_mode)) {
            ok = scan_directory(path, depth + 1, list, err, err_size);
            free(path);
        } else if (S_ISREG(st.st_mode) && has_image_extension(entry->d_name)) {
            path_list_push(list, path);
        } else {
            list->ignored++;
            free(path);
        }
    }
    closedir(handle);
    return ok;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **image_scan_files(const char *dir, size_t *count, size_t *ignored, char *err,
                        size_t err_size)
{
    /* "a/b/" and "a/b" give the same paths */
    char *root = mg_strdup(dir);
    size_t length = strlen(root);
    while (length > 1 && root[length - 1] == '/') root[--length] = '\0';

    struct stat st;
    if (stat(root, &st) != 0) {
        snprintf(err, err_size, "%s: %s", dir, strerror(errno));
        free(root);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_size, "%s: not a directory", dir);
        free(root);
        return NULL;
    }
    PathList list = {0};
    bool ok = scan_directory(root, 0, &list, err, err_size);
    free(root);
    if (!ok) {
        image_free_list(list.paths, list.count);
        return NULL;
    }
    if (list.count > 1) qsort(list.paths, list.count, sizeof *list.paths, compare_paths);
    *count = list.count;
    if (ignored) *ignored = list.ignored;
    /* a non-NULL result even when empty, so NULL always means an error */
    return list.paths ? list.paths : mg_calloc(1, sizeof(char *));
}

char **image_list_files(const char *dir, size_t *count, char *err, size_t err_size)
{
    return image_scan_files(dir, count, NULL, err, err_size);
}

void image_free_list(char **paths, size_t count)
{
    if (!paths) return;
    for (size_t i = 0; i < count; i++) free(paths[i]);
    free(paths);
}
