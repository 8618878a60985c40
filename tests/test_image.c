/* Image decoding, PNG output, grids, crop geometry, resizing and directory listings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>

#include "image.h"
#include "test.h"
#include "util.h"

#include "data/prepare_expected.h"

static const char *real_jpeg(void)
{
    return test_data_path("data/stanford-dogs/Images/n02085936-Maltese_dog/n02085936_2760.jpg");
}

/* Encodes a flat image of one color as a baseline JPEG at quality 100. `components` is 1
 * (grayscale) or 4 (CMYK, written as given, which libjpeg marks with an Adobe segment). */
static void write_flat_jpeg(const char *path, int width, int height, int components,
                            const uint8_t *color)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 100, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    uint8_t *row = mg_malloc((size_t)width * (size_t)components);
    for (int x = 0; x < width; x++) memcpy(row + x * components, color, (size_t)components);
    while (cinfo.next_scanline < cinfo.image_height) jpeg_write_scanlines(&cinfo, &row, 1);
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fclose(f);
    free(row);
}

/* ---- decoding ---------------------------------------------------------------------------- */

TEST(load_real_jpeg_matches_pillow)
{
    char err[512];
    int width = 0, height = 0;
    uint8_t *rgb = image_load_rgb(real_jpeg(), &width, &height, err, sizeof err);
    CHECK_MSG(rgb != NULL, "%s", err);
    if (!rgb) return;
    CHECK_INT_EQ(width, EXPECTED_WIDTH);
    CHECK_INT_EQ(height, EXPECTED_HEIGHT);
    /* Values from Pillow's Image.open(...).convert("RGB"), see make_prepare_expected.py;
     * libjpeg-turbo with default settings must give them exactly. */
    for (size_t i = 0; i < MG_ARRAY_LEN(expected_source_pixels); i++) {
        const int *p = expected_source_pixels[i];
        const uint8_t *got = rgb + ((size_t)p[1] * (size_t)width + (size_t)p[0]) * 3;
        for (int ch = 0; ch < 3; ch++) CHECK_INT_EQ(got[ch], p[2 + ch]);
    }
    free(rgb);
}

TEST(load_truncated_jpeg_fails)
{
    size_t size = 0;
    char *data = mg_read_file(real_jpeg(), &size);
    CHECK(data != NULL);
    CHECK(size > 5000);
    if (!data || size <= 5000) return;
    char *path = mg_format("%s/truncated.jpg", test_temp_dir());
    test_write_file(path, data, 5000);

    char err[512];
    int width, height;
    uint8_t *rgb = image_load_rgb(path, &width, &height, err, sizeof err);
    CHECK(rgb == NULL);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "Premature end of JPEG file");
    free(rgb);
    free(path);
    free(data);
}

TEST(load_corrupt_jpeg_fails)
{
    size_t size = 0;
    char *data = mg_read_file(real_jpeg(), &size);
    CHECK(data != NULL);
    CHECK(size > 5000);
    if (!data || size <= 5000) return;
    /* A restart marker in the middle of the entropy-coded data of a file without restart
     * intervals. */
    data[3000] = (char)0xFF;
    data[3001] = (char)0xD0;
    char *path = mg_format("%s/corrupt.jpg", test_temp_dir());
    test_write_file(path, data, size);

    char err[512];
    int width, height;
    uint8_t *rgb = image_load_rgb(path, &width, &height, err, sizeof err);
    CHECK(rgb == NULL);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "Corrupt JPEG data");
    free(rgb);
    free(path);
    free(data);
}

TEST(load_non_image_fails)
{
    const char *dir = test_temp_dir();
    char *text_path = mg_format("%s/notes.jpg", dir);
    char *empty_path = mg_format("%s/empty.png", dir);
    char *missing_path = mg_format("%s/missing.jpg", dir);
    test_write_text(text_path, "not an image\n");
    test_write_text(empty_path, "");

    char err[512];
    int width, height;
    CHECK(image_load_rgb(text_path, &width, &height, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "notes.jpg: not a JPEG or PNG image");
    CHECK(image_load_rgb(empty_path, &width, &height, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "empty.png: empty file");
    CHECK(image_load_rgb(missing_path, &width, &height, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "missing.jpg: failed to read: No such file or directory");
    free(text_path);
    free(empty_path);
    free(missing_path);
}

TEST(load_grayscale_jpeg_as_rgb)
{
    char *path = mg_format("%s/gray.jpg", test_temp_dir());
    const uint8_t gray = 77;
    write_flat_jpeg(path, 24, 16, 1, &gray);

    char err[512];
    int width, height;
    uint8_t *rgb = image_load_rgb(path, &width, &height, err, sizeof err);
    CHECK_MSG(rgb != NULL, "%s", err);
    if (rgb) {
        CHECK_INT_EQ(width, 24);
        CHECK_INT_EQ(height, 16);
        for (int i = 0; i < 3; i++) CHECK_NEAR(rgb[(5 * 24 + 7) * 3 + i], 77, 1);
    }
    free(rgb);
    free(path);
}

TEST(load_cmyk_jpeg_like_pillow)
{
    /* Stored CMYK bytes are Adobe-inverted (255 means no ink). Pillow converts inverted
     * (c, m, y, k) to R = (255 - k) - (255 - k) * c / 255 with c = 255 - stored, so stored
     * (255, 0, 255, 255) is magenta and stored k = 128 with no ink is grey 128. */
    static const struct {
        uint8_t cmyk[4];
        int rgb[3];
    } cases[] = {
        {{255, 0, 255, 255}, {255, 0, 255}},
        {{255, 255, 255, 128}, {128, 128, 128}},
        {{0, 255, 255, 255}, {0, 255, 255}},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        char *path = mg_format("%s/cmyk%zu.jpg", test_temp_dir(), c);
        write_flat_jpeg(path, 16, 16, 4, cases[c].cmyk);
        char err[512];
        int width, height;
        uint8_t *rgb = image_load_rgb(path, &width, &height, err, sizeof err);
        CHECK_MSG(rgb != NULL, "%s", err);
        if (rgb) {
            for (int i = 0; i < 3; i++) CHECK_NEAR(rgb[(8 * 16 + 8) * 3 + i], cases[c].rgb[i], 1);
        }
        free(rgb);
        free(path);
    }
}

TEST(load_oversized_png_is_rejected)
{
    /* A valid PNG header claiming 20000x10 pixels is enough: the size check comes first. */
    char *path = mg_format("%s/wide.png", test_temp_dir());
    uint8_t *row = mg_calloc(20000 * 3, 1);
    char err[512];
    CHECK(image_write_png(path, row, 20000, 1, err, sizeof err));
    int width, height;
    uint8_t *rgb = image_load_rgb(path, &width, &height, err, sizeof err);
    CHECK(rgb == NULL);
    CHECK_STR_CONTAINS(err, "20000x1 pixels is too large");
    free(rgb);
    free(row);
    free(path);
}

/* ---- PNG output -------------------------------------------------------------------------- */

TEST(png_round_trip)
{
    enum { W = 7, H = 5 };
    uint8_t rgb[H * W * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    char *path = mg_format("%s/out.png", test_temp_dir());
    char err[512];
    CHECK_MSG(image_write_png(path, rgb, W, H, err, sizeof err), "%s", err);

    int width, height;
    uint8_t *back = image_load_rgb(path, &width, &height, err, sizeof err);
    CHECK_MSG(back != NULL, "%s", err);
    if (back) {
        CHECK_INT_EQ(width, W);
        CHECK_INT_EQ(height, H);
        CHECK(memcmp(back, rgb, sizeof rgb) == 0);
    }
    free(back);
    free(path);
}

TEST(png_in_missing_directory_fails)
{
    char *path = mg_format("%s/no/such/dir/out.png", test_temp_dir());
    uint8_t rgb[3] = {1, 2, 3};
    char err[512];
    CHECK(!image_write_png(path, rgb, 1, 1, err, sizeof err));
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "No such file or directory");
    free(path);
}

TEST(grid_layout_and_border)
{
    /* three 2x3 (H x W) tiles in two columns: 2 rows of tiles */
    enum { H = 2, W = 3, COUNT = 3 };
    uint8_t tiles[COUNT * H * W * 3];
    for (int t = 0; t < COUNT; t++)
        memset(tiles + t * H * W * 3, 100 + 50 * t, H * W * 3);
    char *path = mg_format("%s/grid.png", test_temp_dir());
    char err[512];
    CHECK_MSG(image_write_grid_png(path, tiles, COUNT, H, W, 2, err, sizeof err), "%s", err);

    int width, height;
    uint8_t *grid = image_load_rgb(path, &width, &height, err, sizeof err);
    CHECK_MSG(grid != NULL, "%s", err);
    if (!grid) return;
    CHECK_INT_EQ(width, 2 * (W + 2) + 2);
    CHECK_INT_EQ(height, 2 * (H + 2) + 2);
    /* pixel (x, y) of the grid, red channel */
#define GRID_AT(x, y) grid[((y) * width + (x)) * 3]
    CHECK_INT_EQ(GRID_AT(0, 0), 0);
    CHECK_INT_EQ(GRID_AT(1, 1), 0);
    CHECK_INT_EQ(GRID_AT(2, 2), 100);         /* tile 0, top-left */
    CHECK_INT_EQ(GRID_AT(2 + W - 1, 3), 100); /* tile 0, bottom-right */
    CHECK_INT_EQ(GRID_AT(2 + W, 2), 0);       /* gap between columns */
    CHECK_INT_EQ(GRID_AT(2 + W + 2, 2), 150); /* tile 1 */
    CHECK_INT_EQ(GRID_AT(2, 2 + H + 2), 200); /* tile 2, second row */
    CHECK_INT_EQ(GRID_AT(2 + W + 2, 2 + H + 2), 0); /* empty cell after the last tile */
    CHECK_INT_EQ(GRID_AT(width - 1, height - 1), 0);
#undef GRID_AT
    free(grid);
    free(path);
}

/* ---- geometry and resizing --------------------------------------------------------------- */

static bool box_equals(ImageBox box, int x0, int y0, int x1, int y1)
{
    return box.x0 == x0 && box.y0 == y0 && box.x1 == x1 && box.y1 == y1;
}

TEST(center_square_of_wide_and_tall)
{
    CHECK(box_equals(image_center_square(60, 40), 10, 0, 50, 40));
    CHECK(box_equals(image_center_square(40, 61), 0, 10, 40, 50));
    CHECK(box_equals(image_center_square(32, 32), 0, 0, 32, 32));
    /* odd margin: the extra pixel stays on the right */
    CHECK(box_equals(image_center_square(5, 2), 1, 0, 3, 2));
}

TEST(square_box_grows_and_shifts)
{
    /* 106x122 box in a 350x262 image: width grows by 16, 8 on each side */
    CHECK(box_equals(image_square_box((ImageBox){161, 86, 267, 208}, 350, 262), 153, 86, 275, 208));
    /* odd growth of 19: 9 to the left, 10 to the right */
    CHECK(box_equals(image_square_box((ImageBox){42, 59, 168, 204}, 350, 262), 33, 59, 178, 204));
    /* near the left edge the square shifts right instead of leaving the image */
    CHECK(box_equals(image_square_box((ImageBox){0, 0, 10, 40}, 100, 100), 0, 0, 40, 40));
    /* near the bottom edge it shifts up */
    CHECK(box_equals(image_square_box((ImageBox){10, 95, 50, 100}, 100, 100), 10, 60, 50, 100));
    /* a square box stays as it is */
    CHECK(box_equals(image_square_box((ImageBox){5, 5, 25, 25}, 100, 100), 5, 5, 25, 25));
    /* the image is too short for the square: cut to the image height */
    CHECK(box_equals(image_square_box((ImageBox){0, 10, 80, 20}, 100, 30), 0, 0, 80, 30));
}

TEST(resize_box_averages_areas)
{
    /* 3x3 single-channel pattern in every channel, shrunk to 2x2: output pixel 0 covers input
     * [0, 1.5), so it weighs pixel 0 by 2/3 and pixel 1 by 1/3 in each direction. */
    static const uint8_t values[3][3] = {{0, 90, 180}, {30, 120, 210}, {60, 150, 240}};
    uint8_t rgb[3 * 3 * 3];
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++) rgb[(y * 3 + x) * 3 + c] = values[y][x];
    uint8_t out[2 * 2 * 3];
    CHECK(image_resize_box(rgb, 3, 3, (ImageBox){0, 0, 3, 3}, out, 2, 2));
    /* top-left: rows weighted (2/3, 1/3), columns weighted (2/3, 1/3):
     * 4/9*0 + 2/9*90 + 2/9*30 + 1/9*120 = 40 */
    CHECK_NEAR(out[0], 40, 1);
    /* top-right: 4/9*180 + 2/9*90 + 2/9*210 + 1/9*120 = 160 */
    CHECK_NEAR(out[3], 160, 1);
    /* bottom-left: 4/9*60 + 2/9*30 + 2/9*150 + 1/9*120 = 80 */
    CHECK_NEAR(out[6], 80, 1);
    /* bottom-right: 4/9*240 + 2/9*210 + 2/9*150 + 1/9*120 = 200 */
    CHECK_NEAR(out[9], 200, 1);
}

TEST(resize_box_uses_only_the_box)
{
    /* A 4x2 image, left half 0, right half 200; the box is the right half only. */
    uint8_t rgb[2 * 4 * 3];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) memset(rgb + (y * 4 + x) * 3, x < 2 ? 0 : 200, 3);
    uint8_t out[1 * 1 * 3];
    CHECK(image_resize_box(rgb, 4, 2, (ImageBox){2, 0, 4, 2}, out, 1, 1));
    CHECK_INT_EQ(out[0], 200);
}

/* ---- listing ----------------------------------------------------------------------------- */

TEST(list_files_sorted_and_filtered)
{
    const char *dir = test_temp_dir();
    const char *files[] = {"b/z.JPG", "b/a.png", "a.jpeg", "c/d/e.jpg", ".hidden.jpg",
                           "notes.txt", "b/y.gif", ".cache/x.jpg"};
    for (size_t i = 0; i < MG_ARRAY_LEN(files); i++) {
        char *path = mg_format("%s/%s", dir, files[i]);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        CHECK(mg_make_dirs(path));
        *slash = '/';
        test_write_text(path, "x");
        free(path);
    }
    char *with_slash = mg_format("%s/", dir);
    char err[512];
    size_t count = 0, ignored = 0;
    char **paths = image_scan_files(with_slash, &count, &ignored, err, sizeof err);
    CHECK_MSG(paths != NULL, "%s", err);
    CHECK_INT_EQ(count, 4);
    CHECK_INT_EQ(ignored, 2); /* notes.txt and b/y.gif; hidden names are not counted */
    const char *expected[] = {"a.jpeg", "b/a.png", "b/z.JPG", "c/d/e.jpg"};
    for (size_t i = 0; paths && i < count && i < MG_ARRAY_LEN(expected); i++) {
        char *want = mg_format("%s/%s", dir, expected[i]);
        CHECK_MSG(!strcmp(paths[i], want), "paths[%zu] = %s, expected %s", i, paths[i], want);
        free(want);
    }
    image_free_list(paths, count);
    free(with_slash);
}

TEST(list_files_of_empty_and_missing_dirs)
{
    const char *dir = test_temp_dir();
    char err[512];
    size_t count = 99;
    char **paths = image_list_files(dir, &count, err, sizeof err);
    CHECK(paths != NULL);
    CHECK_INT_EQ(count, 0);
    image_free_list(paths, count);

    char *missing = mg_format("%s/missing", dir);
    CHECK(image_list_files(missing, &count, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "missing: No such file or directory");
    free(missing);

    char *file = mg_format("%s/file.jpg", dir);
    test_write_text(file, "x");
    CHECK(image_list_files(file, &count, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "file.jpg: not a directory");
    free(file);
}
