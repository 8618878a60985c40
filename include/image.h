/* Image files: decoding to 8-bit RGB, PNG output, sample grids, crop-and-resize and
 * directory listings.
 *
 * Pixels are stored row-major as (H, W, 3) uint8, red first. Functions that can fail on user
 * input return NULL or false and write a message that names the file into `err`. They do not
 * exit (except on out-of-memory), so worker threads can call them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger images are rejected before any pixel memory is allocated. */
enum { IMAGE_MAX_SIDE = 16384 };
#define IMAGE_MAX_PIXELS ((size_t)1 << 26) /* 67M pixels, 201 MB of RGB */

/* A rectangle of pixels: columns x0 <= x < x1, rows y0 <= y < y1. */
typedef struct ImageBox {
    int x0, y0, x1, y1;
} ImageBox;

/* Decodes an encoded image held in memory to RGB (H, W, 3). `name` is used in messages only.
 *
 * JPEG goes through libjpeg-turbo with its default settings (integer slow DCT, fancy
 * upsampling), which gives the same pixels as Pillow. Grayscale JPEGs are expanded to RGB and
 * CMYK/YCCK JPEGs are converted as Pillow's convert("RGB") does. Any libjpeg warning, such as
 * "Premature end of JPEG file" on a truncated file, is treated as an error. Other formats (PNG,
 * BMP, GIF, ...) go through stb_image; an alpha channel is dropped. The format is taken from
 * the data, not from the file name.
 *
 * Returns a malloc'ed buffer (free with free()) or NULL with the reason in `err`. */
uint8_t *image_decode_rgb(const void *data, size_t size, const char *name, int *width,
                          int *height, char *err, size_t err_size);

/* Reads and decodes an image file; see image_decode_rgb. */
uint8_t *image_load_rgb(const char *path, int *width, int *height, char *err, size_t err_size);

/* Writes an RGB image (H, W, 3) as PNG through a temporary file renamed into place. */
bool image_write_png(const char *path, const uint8_t *rgb, int width, int height, char *err,
                     size_t err_size);

/* Tiles `count` RGB images (count, H, W, 3) row-major into a grid of `columns` columns, with a
 * 2-pixel black border around and between the tiles, and writes it as PNG (atomically). The
 * grid has min(count, columns) columns and ceil(count / columns) rows. */
bool image_write_grid_png(const char *path, const uint8_t *images, int count, int height,
                          int width, int columns, char *err, size_t err_size);

/* Resizes the pixels inside `box` of an RGB image (width × height) to out_width × out_height
 * with an area-averaging filter (stb_image_resize's box filter, on the 8-bit values without
 * gamma conversion). When shrinking, every output pixel is the mean of the input area it
 * covers, partial pixels weighted by coverage. The box must lie inside the image. Returns
 * false only when stb_image_resize fails to allocate its buffers. */
bool image_resize_box(const uint8_t *rgb, int width, int height, ImageBox box, uint8_t *out,
                      int out_width, int out_height);

/* Returns the largest centred square of an image; an odd margin leaves the extra pixel on the
 * right or bottom. */
ImageBox image_center_square(int width, int height);

/* Grows the shorter side of `box` around its centre until the box is square, then shifts it
 * to lie inside the image. A side that would be longer than the image is cut to the image, so
 * the result is not square only when the image is narrower than the box's longer side. */
ImageBox image_square_box(ImageBox box, int width, int height);

/* Lists the image files under `dir`, recursively, in byte-wise sorted order of their paths.
 * Image files are those ending in .jpg, .jpeg or .png in any letter case. Names starting with
 * a dot are skipped, and so are files of other types. The paths returned are `dir` (without
 * trailing slashes) joined with the path relative to it by '/'.
 *
 * Returns an array of malloc'ed strings (free with image_free_list) and sets *count, which is
 * 0 when the directory contains no image file. Returns NULL with a message when `dir` is missing,
 * is not a directory or cannot be read. */
char **image_list_files(const char *dir, size_t *count, char *err, size_t err_size);

/* Same as image_list_files, and also stores in *ignored (when not NULL) the number of regular
 * files that were skipped because of their extension. */
char **image_scan_files(const char *dir, size_t *count, size_t *ignored, char *err,
                        size_t err_size);

void image_free_list(char **paths, size_t count);
