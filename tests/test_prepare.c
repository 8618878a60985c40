/* `mixgan prepare`, run as a user runs it, on inputs made here and on one real Stanford Dogs
 * image with its annotation (tests/data/stanford-dogs, copied by
 * scripts/make-test-fixtures.sh). */
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "image.h"
#include "test.h"
#include "util.h"

#include "data/prepare_expected.h"

static const char *REAL_ROOT = "tests/data/stanford-dogs";
static const char *REAL_SOURCE = "n02085936-Maltese_dog/n02085936_2760.jpg";
static const char *BREED = "n02000001-test_dog";

/* ---- helpers ----------------------------------------------------------------------------- */

static void make_dirs(const char *path)
{
    CHECK_MSG(mg_make_dirs(path), "failed to create %s", path);
}

/* Creates ROOT/Images/BREED and ROOT/Annotation/BREED under a fresh directory. */
static char *make_root(void)
{
    char *root = mg_format("%s/dogs", test_temp_dir());
    char *images = mg_format("%s/Images/%s", root, BREED);
    char *annotations = mg_format("%s/Annotation/%s", root, BREED);
    make_dirs(images);
    make_dirs(annotations);
    free(images);
    free(annotations);
    return root;
}

/* Pixel value of the synthetic images: distinct per position, so crops can be checked. */
static uint8_t pattern(int x, int y, int channel)
{
    if (channel == 0) return (uint8_t)(x * 5);
    if (channel == 1) return (uint8_t)(y * 3);
    return 17;
}

static void write_pattern_png(const char *path, int width, int height)
{
    uint8_t *rgb = mg_malloc((size_t)width * (size_t)height * 3);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = pattern(x, y, c);
    char err[512];
    CHECK_MSG(image_write_png(path, rgb, width, height, err, sizeof err), "%s", err);
    free(rgb);
}

/* Adds ROOT/Images/BREED/ID.png of width × height. */
static void add_image(const char *root, const char *id, int width, int height)
{
    char *path = mg_format("%s/Images/%s/%s.png", root, BREED, id);
    write_pattern_png(path, width, height);
    free(path);
}

/* Returns the XML of one <object> with a box. */
static char *object_xml(int xmin, int ymin, int xmax, int ymax)
{
    return mg_format("<object><name>dog</name><bndbox><xmin>%d</xmin><ymin>%d</ymin>"
                     "<xmax>%d</xmax><ymax>%d</ymax></bndbox></object>",
                     xmin, ymin, xmax, ymax);
}

/* Adds ROOT/Annotation/BREED/ID with the given <size> and objects. */
static void add_annotation(const char *root, const char *id, int width, int height,
                           const char *objects)
{
    char *path = mg_format("%s/Annotation/%s/%s", root, BREED, id);
    char *xml = mg_format("<annotation>\n\t<folder>02000001</folder>\n\t<filename>%%s</filename>\n"
                          "\t<size><width>%d</width><height>%d</height><depth>3</depth></size>\n"
                          "\t%s\n</annotation>\n",
                          width, height, objects);
    test_write_text(path, xml);
    free(xml);
    free(path);
}

/* Adds an image with one box covering its middle. */
static void add_good_image(const char *root, const char *id)
{
    add_image(root, id, 40, 30);
    char *object = object_xml(5, 5, 35, 25);
    add_annotation(root, id, 40, 30, object);
    free(object);
}

static bool load_dataset(const char *path, Dataset *ds)
{
    char err[512];
    bool ok = dataset_load(path, ds, err, sizeof err);
    CHECK_MSG(ok, "%s", err);
    return ok;
}

/* Checks that the directory holding `out` has neither `out` nor a temporary file of it. */
static void check_no_output(const char *out)
{
    CHECK_MSG(!mg_file_exists(out), "%s exists after a failed run", out);
    char *dir = mg_strdup(out);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    DIR *handle = opendir(dir);
    if (handle) {
        struct dirent *entry;
        while ((entry = readdir(handle)))
            CHECK_MSG(!strstr(entry->d_name, ".tmp."), "temporary file %s/%s left behind", dir,
                      entry->d_name);
        closedir(handle);
    }
    free(dir);
}

/* Runs prepare on ROOT and expects success with `crops` crops. */
static CommandResult run_expecting_crops(const char *root, const char *out, uint32_t crops)
{
    CommandResult r = test_run_mixgan("prepare --stanford-dogs '%s' --out '%s'", root, out);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        CHECK_INT_EQ(ds.count, crops);
        dataset_free(&ds);
    }
    return r;
}

/* ---- the real image ---------------------------------------------------------------------- */

/* The expected crops were computed by tests/make_prepare_expected.py with Pillow for decoding
 * and exact area averaging in float64 NumPy. stb_image_resize works in float32, so a value may
 * differ by one step of rounding. */
static void check_real_crops(const Dataset *ds, const int (*boxes)[4], const uint8_t *pixels)
{
    CHECK_INT_EQ(ds->count, EXPECTED_BOXES);
    CHECK_INT_EQ(ds->height, EXPECTED_SIZE);
    CHECK_INT_EQ(ds->width, EXPECTED_SIZE);
    CHECK_INT_EQ(ds->channels, 3);
    if (ds->count != EXPECTED_BOXES) return;
    size_t crop_bytes = EXPECTED_SIZE * EXPECTED_SIZE * 3;
    for (uint32_t i = 0; i < ds->count; i++) {
        const DatasetCrop *c = &ds->crops[i];
        CHECK_MSG(!strcmp(c->source, REAL_SOURCE), "crop %u source %s", i, c->source);
        CHECK_INT_EQ(c->object, i);
        CHECK_INT_EQ(c->x0, boxes[i][0]);
        CHECK_INT_EQ(c->y0, boxes[i][1]);
        CHECK_INT_EQ(c->x1, boxes[i][2]);
        CHECK_INT_EQ(c->y1, boxes[i][3]);
        CHECK_INT_EQ(c->source_width, EXPECTED_WIDTH);
        CHECK_INT_EQ(c->source_height, EXPECTED_HEIGHT);
        int worst = 0;
        size_t worst_at = 0;
        for (size_t j = 0; j < crop_bytes; j++) {
            int d = abs((int)dataset_image(ds, i)[j] - (int)pixels[i * crop_bytes + j]);
            if (d > worst) {
                worst = d;
                worst_at = j;
            }
        }
        CHECK_MSG(worst <= 1, "crop %u: value %zu differs by %d from the expected crop", i,
                  worst_at, worst);
    }
}

TEST(prepare_real_image_squash)
{
    char *out = mg_format("%s/dogs.bin", test_temp_dir());
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s", REAL_ROOT, out);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    CHECK_STR_CONTAINS(r.out, "read 1 of 1 image");
    CHECK_STR_CONTAINS(r.out, "wrote 2 crops of 32x32");
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        check_real_crops(&ds, expected_squash_boxes, expected_squash_pixels);
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(out);
}

TEST(prepare_real_image_square)
{
    char *out = mg_format("%s/dogs.bin", test_temp_dir());
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s --crop square",
                                      REAL_ROOT, out);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        /* 106x122 box grows to 122x122 ((153,86)-(275,208)); 126x145 grows to 145x145
         * ((33,59)-(178,204)), the odd extra column on the right. */
        check_real_crops(&ds, expected_square_boxes, expected_square_pixels);
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(out);
}

TEST(prepare_preview_grid)
{
    const char *dir = test_temp_dir();
    char *out = mg_format("%s/dogs.bin", dir);
    char *preview = mg_format("%s/preview.png", dir);
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s --preview %s",
                                      REAL_ROOT, out, preview);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    CHECK_STR_CONTAINS(r.out, "wrote a preview of the first 2 crops");
    char err[512];
    int width = 0, height = 0;
    uint8_t *grid = image_load_rgb(preview, &width, &height, err, sizeof err);
    CHECK_MSG(grid != NULL, "%s", err);
    Dataset ds;
    if (grid && load_dataset(out, &ds)) {
        /* two tiles in one row, 2-pixel borders */
        CHECK_INT_EQ(width, 2 * (32 + 2) + 2);
        CHECK_INT_EQ(height, 32 + 4);
        /* second tile, first row, equals crop 1 */
        CHECK(memcmp(grid + (2 * width + 36) * 3, dataset_image(&ds, 1), 32 * 3) == 0);
        dataset_free(&ds);
    }
    free(grid);
    test_free_result(&r);
    free(preview);
    free(out);
}

/* ---- synthetic inputs -------------------------------------------------------------------- */

TEST(prepare_images_center_crop)
{
    const char *dir = test_temp_dir();
    char *images = mg_format("%s/in/nested/deeper", dir);
    make_dirs(images);
    /* 60x40 image whose pixels are constant in 10x10 blocks: the centred square is x 10..50,
     * and --size 4 averages exactly one block per output pixel. */
    uint8_t rgb[40 * 60 * 3];
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 60; x++) {
            rgb[(y * 60 + x) * 3 + 0] = (uint8_t)(40 * (x / 10));
            rgb[(y * 60 + x) * 3 + 1] = (uint8_t)(40 * (y / 10));
            rgb[(y * 60 + x) * 3 + 2] = 9;
        }
    char *path = mg_format("%s/dog.PNG", images);
    char err[512];
    CHECK(image_write_png(path, rgb, 60, 40, err, sizeof err));
    char *in = mg_format("%s/in", dir), *out = mg_format("%s/crops.bin", dir);

    CommandResult r = test_run_mixgan("prepare --images %s --out %s --size 4", in, out);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        CHECK_INT_EQ(ds.count, 1);
        CHECK_INT_EQ(ds.width, 4);
        CHECK(!strcmp(ds.crops[0].source, "nested/deeper/dog.PNG"));
        CHECK_INT_EQ(ds.crops[0].x0, 10);
        CHECK_INT_EQ(ds.crops[0].y0, 0);
        CHECK_INT_EQ(ds.crops[0].x1, 50);
        CHECK_INT_EQ(ds.crops[0].y1, 40);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) {
                const uint8_t *p = dataset_image(&ds, 0) + (y * 4 + x) * 3;
                CHECK_INT_EQ(p[0], 40 * (x + 1));
                CHECK_INT_EQ(p[1], 40 * y);
                CHECK_INT_EQ(p[2], 9);
            }
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(in);
    free(out);
    free(path);
    free(images);
}

TEST(prepare_one_crop_per_object)
{
    char *root = make_root();
    add_image(root, "a", 80, 60);
    char *o1 = object_xml(0, 0, 40, 30), *o2 = object_xml(40, 30, 80, 60),
         *o3 = object_xml(10, 20, 30, 50);
    char *objects = mg_format("%s%s%s", o1, o2, o3);
    add_annotation(root, "a", 80, 60, objects);
    char *out = mg_format("%s/out.bin", root);

    CommandResult r = run_expecting_crops(root, out, 3);
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        for (uint32_t i = 0; i < ds.count; i++) CHECK_INT_EQ(ds.crops[i].object, i);
        CHECK_INT_EQ(ds.crops[1].x0, 40);
        CHECK_INT_EQ(ds.crops[2].y1, 50);
        /* Crop 1 resizes a 40x30 box to 32x32. Its top-left output pixel covers columns
         * 40 to 41.25 (red 200 and 205, weights 1 and 0.25) and rows 30 to 30.94, all in
         * row 30 (green 90). */
        const uint8_t *p = dataset_image(&ds, 1);
        CHECK_NEAR(p[0], (200.0 + 205.0 * 0.25) / 1.25, 1);
        CHECK_NEAR(p[1], 90, 1);
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(objects);
    free(o1);
    free(o2);
    free(o3);
    free(out);
    free(root);
}

TEST(prepare_list_filters_images)
{
    char *root = make_root();
    add_good_image(root, "a");
    add_good_image(root, "b");
    add_good_image(root, "c");
    char *list = mg_format("%s/train_list.txt", root);
    char *list_text = mg_format("%s/c.png\r\n\n  %s/a.png\n%s/zz.png\n%s/a.png\n", BREED, BREED,
                                BREED, BREED);
    test_write_text(list, list_text);
    char *out = mg_format("%s/out.bin", root);

    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s --list %s", root, out,
                                      list);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    CHECK_STR_CONTAINS(r.err, "zz.png: listed in");
    CHECK_STR_CONTAINS(r.out, "skipped 1 image: 1 listed but not found");
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        CHECK_INT_EQ(ds.count, 2);
        if (ds.count == 2) {
            CHECK_STR_CONTAINS(ds.crops[0].source, "/a.png");
            CHECK_STR_CONTAINS(ds.crops[1].source, "/c.png");
        }
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(out);
    free(list_text);
    free(list);
    free(root);
}

TEST(prepare_scales_box_to_image_size)
{
    /* The annotation describes a 200x160 original; the image on disk is a 100x80 copy. */
    char *root = make_root();
    add_image(root, "small", 100, 80);
    char *object = object_xml(20, 40, 120, 140);
    add_annotation(root, "small", 200, 160, object);
    char *out = mg_format("%s/out.bin", root);

    CommandResult r = run_expecting_crops(root, out, 1);
    CHECK_STR_CONTAINS(r.out, "scaled the boxes of 1 images");
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        CHECK_INT_EQ(ds.crops[0].x0, 10);
        CHECK_INT_EQ(ds.crops[0].y0, 20);
        CHECK_INT_EQ(ds.crops[0].x1, 60);
        CHECK_INT_EQ(ds.crops[0].y1, 70);
        CHECK_INT_EQ(ds.crops[0].source_width, 100);
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(object);
    free(out);
    free(root);
}

TEST(prepare_same_output_for_any_thread_count)
{
    char *root = make_root();
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "img%02d", i);
        int width = 30 + 7 * i, height = 90 - i;
        add_image(root, id, width, height);
        char *o1 = object_xml(i % 5, 2, width - 3, height - 1);
        char *o2 = object_xml(1, 1, 20, 20 + i / 2);
        char *objects = mg_format("%s%s", o1, i % 3 ? o2 : "");
        add_annotation(root, id, width, height, objects);
        free(o1);
        free(o2);
        free(objects);
    }

    char *one = mg_format("%s/one.bin", root), *two = mg_format("%s/two.bin", root);
    CommandResult r1 = test_run_mixgan("prepare --stanford-dogs %s --out %s --threads 1 --size 16",
                                       root, one);
    CommandResult r2 = test_run_mixgan("prepare --stanford-dogs %s --out %s --threads 2 --size 16",
                                       root, two);
    CHECK_INT_EQ(r1.status, 0);
    CHECK_INT_EQ(r2.status, 0);

    size_t size1 = 0, size2 = 0;
    char *data1 = mg_read_file(one, &size1), *data2 = mg_read_file(two, &size2);
    CHECK(data1 != NULL);
    CHECK(data2 != NULL);
    CHECK_INT_EQ(size1, size2);
    if (data1 && data2 && size1 == size2) CHECK(memcmp(data1, data2, size1) == 0);

    Dataset ds;
    if (r1.status == 0 && load_dataset(one, &ds)) {
        CHECK_INT_EQ(ds.count, 40 + 26);
        CHECK_STR_CONTAINS(ds.crops[0].source, "img00.png");
        CHECK_STR_CONTAINS(ds.crops[ds.count - 1].source, "img39.png");
        dataset_free(&ds);
    }
    free(data1);
    free(data2);
    test_free_result(&r1);
    test_free_result(&r2);
    free(one);
    free(two);
    free(root);
}

/* ---- per-image problems: skipped, counted, and the run succeeds ------------------------- */

/* Runs prepare on a root holding one good image and whatever the test added, and checks the
 * message and the summary line. */
static void check_skipped(const char *root, const char *message, const char *summary)
{
    add_good_image(root, "good");
    char *out = mg_format("%s/out.bin", root);
    CommandResult r = run_expecting_crops(root, out, 1);
    CHECK_STR_CONTAINS(r.err, message);
    CHECK_STR_CONTAINS(r.out, summary);
    test_free_result(&r);
    free(out);
}

TEST(prepare_skips_truncated_jpeg)
{
    char *root = make_root();
    size_t size = 0;
    char *real = mg_format("%s/Images/%s", REAL_ROOT, REAL_SOURCE);
    char *data = mg_read_file(real, &size);
    CHECK(data != NULL);
    CHECK(size > 4000);
    if (!data || size <= 4000) return;
    char *path = mg_format("%s/Images/%s/cut.jpg", root, BREED);
    test_write_file(path, data, 4000);
    char *annotation = mg_format("%s/Annotation/%s/cut", root, BREED);
    char *object = object_xml(161, 86, 267, 208);
    char *xml = mg_format("<annotation><size><width>350</width><height>262</height></size>%s"
                          "</annotation>",
                          object);
    test_write_text(annotation, xml);

    char *message = mg_format("%s: invalid JPEG: Premature end of JPEG file", path);
    check_skipped(root, message, "skipped 1 image: 1 corrupt, truncated or not an image");
    free(message);
    free(xml);
    free(object);
    free(annotation);
    free(path);
    free(data);
    free(real);
    free(root);
}

TEST(prepare_skips_unreadable_files)
{
    char *root = make_root();
    /* An annotation path that is a directory cannot be read, even by root. */
    add_image(root, "dir", 40, 30);
    char *annotation_dir = mg_format("%s/Annotation/%s/dir", root, BREED);
    make_dirs(annotation_dir);
    int expected = 1;
    /* Permissions stop other users only. */
    if (geteuid() != 0) {
        add_good_image(root, "locked");
        char *locked = mg_format("%s/Images/%s/locked.png", root, BREED);
        CHECK(chmod(locked, 0) == 0);
        free(locked);
        expected = 2;
    }
    char *summary = mg_format("skipped %d image%s: %d unreadable", expected, expected == 1 ? "" : "s", expected);
    char *message = mg_format("%s: failed to read", annotation_dir);
    check_skipped(root, message, summary);
    free(message);
    free(summary);
    free(annotation_dir);
    free(root);
}

TEST(prepare_skips_annotation_without_bndbox)
{
    char *root = make_root();
    add_image(root, "nobox", 40, 30);
    add_annotation(root, "nobox", 40, 30, "<object><name>dog</name></object>");
    char *message = mg_format("Annotation/%s/nobox: object 1 has no <bndbox>", BREED);
    check_skipped(root, message, "skipped 1 image: 1 with an invalid annotation");
    free(message);
    free(root);
}

TEST(prepare_skips_box_outside_image)
{
    char *root = make_root();
    add_image(root, "out", 40, 30);
    char *object = object_xml(10, 10, 41, 20);
    add_annotation(root, "out", 40, 30, object);
    check_skipped(root, "extends outside the annotated 40x30 image",
                  "skipped 1 image: 1 without a valid box");
    free(object);
    free(root);
}

TEST(prepare_skips_zero_area_box)
{
    char *root = make_root();
    add_image(root, "flat", 40, 30);
    char *object = object_xml(10, 10, 30, 10);
    add_annotation(root, "flat", 40, 30, object);
    char *message = mg_format("Annotation/%s/flat: box of object 1 has zero area", BREED);
    check_skipped(root, message, "skipped 1 box: 0 extending outside the image, 1 of zero area");
    free(message);
    free(object);
    free(root);
}

TEST(prepare_skips_image_without_annotation)
{
    char *root = make_root();
    add_image(root, "lonely", 40, 30);
    char *message = mg_format("lonely.png: no annotation file (expected %s/Annotation/%s/lonely)",
                              root, BREED);
    check_skipped(root, message, "skipped 1 image: 1 without an annotation file");
    free(message);
    free(root);
}

TEST(prepare_keeps_valid_boxes_of_image)
{
    char *root = make_root();
    add_image(root, "pair", 40, 30);
    char *good = object_xml(0, 0, 20, 20), *bad = object_xml(-5, 0, 20, 20);
    char *objects = mg_format("%s%s", bad, good);
    add_annotation(root, "pair", 40, 30, objects);
    char *out = mg_format("%s/out.bin", root);
    CommandResult r = run_expecting_crops(root, out, 1);
    CHECK_STR_CONTAINS(r.err, "box of object 1 (xmin -5");
    CHECK_STR_CONTAINS(r.out, "skipped 1 box: 1 extending outside the image");
    CHECK(!strstr(r.out, "skipped 1 image"));
    Dataset ds;
    if (r.status == 0 && load_dataset(out, &ds)) {
        CHECK_INT_EQ(ds.crops[0].object, 1);
        dataset_free(&ds);
    }
    test_free_result(&r);
    free(out);
    free(objects);
    free(good);
    free(bad);
    free(root);
}

TEST(prepare_images_skips_non_image)
{
    const char *dir = test_temp_dir();
    char *in = mg_format("%s/in", dir);
    make_dirs(in);
    char *good = mg_format("%s/good.png", in), *bad = mg_format("%s/bad.jpg", in);
    write_pattern_png(good, 20, 20);
    test_write_text(bad, "<html>not found</html>");
    char *out = mg_format("%s/out.bin", dir);
    CommandResult r = test_run_mixgan("prepare --images %s --out %s", in, out);
    CHECK_MSG(r.status == 0, "exit status %d: %s", r.status, r.err);
    CHECK_STR_CONTAINS(r.err, "bad.jpg: not a JPEG or PNG image");
    CHECK_STR_CONTAINS(r.out, "read 1 of 2 images");
    CHECK_STR_CONTAINS(r.out, "skipped 1 image: 1 corrupt, truncated or not an image");
    test_free_result(&r);
    free(out);
    free(good);
    free(bad);
    free(in);
}

/* ---- problems with the whole input: exit 1 and no output -------------------------------- */

static void check_fails(CommandResult *r, const char *out, const char *message)
{
    CHECK_INT_EQ(r->status, 1);
    CHECK_STR_CONTAINS(r->err, message);
    check_no_output(out);
    test_free_result(r);
}

TEST(prepare_fails_on_breed_without_annotations)
{
    char *root = make_root();
    add_good_image(root, "a");
    char *other = mg_format("%s/Images/n02000002-other_dog", root);
    make_dirs(other);
    char *image = mg_format("%s/x.png", other);
    write_pattern_png(image, 10, 10);
    char *out = mg_format("%s/out.bin", root);
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s", root, out);
    char *message = mg_format("%s/Annotation/n02000002-other_dog: no annotations for the 1 images",
                              root);
    check_fails(&r, out, message);

    /* an empty annotation folder is the same problem */
    char *empty = mg_format("%s/Annotation/n02000002-other_dog", root);
    make_dirs(empty);
    r = test_run_mixgan("prepare --stanford-dogs %s --out %s", root, out);
    check_fails(&r, out, message);
    free(empty);
    free(message);
    free(out);
    free(image);
    free(other);
    free(root);
}

TEST(prepare_fails_on_empty_folder)
{
    const char *dir = test_temp_dir();
    char *in = mg_format("%s/empty", dir);
    make_dirs(in);
    char *out = mg_format("%s/out.bin", dir);
    CommandResult r = test_run_mixgan("prepare --images %s --out %s", in, out);
    char *message = mg_format("%s: no .jpg, .jpeg or .png files found", in);
    check_fails(&r, out, message);

    char *root = make_root();
    r = test_run_mixgan("prepare --stanford-dogs %s --out %s", root, out);
    check_fails(&r, out, "no .jpg, .jpeg or .png files found");
    free(root);
    free(message);
    free(out);
    free(in);
}

TEST(prepare_fails_on_missing_input)
{
    const char *dir = test_temp_dir();
    char *out = mg_format("%s/out.bin", dir);
    CommandResult r = test_run_mixgan("prepare --images %s/nowhere --out %s", dir, out);
    check_fails(&r, out, "nowhere: No such file or directory");

    /* a root without Annotation/ */
    char *root = mg_format("%s/root", dir);
    char *images = mg_format("%s/Images", root);
    make_dirs(images);
    r = test_run_mixgan("prepare --stanford-dogs %s --out %s", root, out);
    check_fails(&r, out, "/Annotation (the dataset's images and annotation archives");
    free(images);
    free(root);
    free(out);
}

TEST(prepare_fails_on_missing_output_directory)
{
    const char *dir = test_temp_dir();
    char *out = mg_format("%s/missing/out.bin", dir);
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s", REAL_ROOT, out);
    char *message = mg_format("--out %s: directory '%s/missing' does not exist", out, dir);
    check_fails(&r, out, message);
    free(message);

    char *out_ok = mg_format("%s/out.bin", dir);
    char *preview = mg_format("%s/missing/preview.png", dir);
    r = test_run_mixgan("prepare --stanford-dogs %s --out %s --preview %s", REAL_ROOT, out_ok,
                        preview);
    check_fails(&r, out_ok, "--preview");
    free(preview);
    free(out_ok);
    free(out);
}

TEST(prepare_fails_when_every_image_is_skipped)
{
    char *root = make_root();
    add_image(root, "nobox", 40, 30);
    add_annotation(root, "nobox", 40, 30, "");
    char *out = mg_format("%s/out.bin", root);
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s", root, out);
    CHECK_STR_CONTAINS(r.err, "no <object> with a <bndbox>");
    check_fails(&r, out, "no crops written: all 1 images were skipped");
    free(out);
    free(root);
}

TEST(prepare_fails_on_list_without_matches)
{
    char *root = make_root();
    add_good_image(root, "a");
    char *list = mg_format("%s/list.txt", root);
    char *out = mg_format("%s/out.bin", root);

    test_write_text(list, "other/x.jpg\n");
    CommandResult r = test_run_mixgan("prepare --stanford-dogs %s --out %s --list %s", root, out,
                                      list);
    check_fails(&r, out, "none of its 1 entries is an image under");

    test_write_text(list, "\n\n");
    r = test_run_mixgan("prepare --stanford-dogs %s --out %s --list %s", root, out, list);
    check_fails(&r, out, "the file names no images");
    free(out);
    free(list);
    free(root);
}

/* ---- command line ------------------------------------------------------------------------ */

TEST(prepare_help_lists_options)
{
    CommandResult r = test_run_mixgan("prepare --help");
    CHECK_INT_EQ(r.status, 0);
    const char *expected[] = {"--stanford-dogs ROOT", "--images DIR", "--out FILE",
                              "--size N", "default 32", "pixels", "--crop MODE",
                              "default squash", "--list FILE", "--preview FILE",
                              "first 64 crops", "--threads N"};
    for (size_t i = 0; i < MG_ARRAY_LEN(expected); i++) CHECK_STR_CONTAINS(r.out, expected[i]);
    test_free_result(&r);

    r = test_run_mixgan("--help");
    CHECK_STR_CONTAINS(r.out, "prepare");
    test_free_result(&r);
}

TEST(prepare_usage_errors_exit_2)
{
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"--out x.bin", "missing input"},
        {"--images a --stanford-dogs b --out x.bin", "give only one of"},
        {"--images a", "missing --out FILE"},
        {"--images a --out x.bin --crop square", "--crop applies to --stanford-dogs only"},
        {"--stanford-dogs a --out x.bin --crop round", "invalid --crop 'round'"},
        {"--images a --out x.bin --size 2", "invalid value 2 for --size: expected 4 to 1024"},
        {"--images a --out x.bin --size big", "invalid value 'big' for --size"},
        {"--images a --out x.bin extra", "unknown argument 'extra'"},
        {"--images", "option --images requires a value"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        CommandResult r = test_run_mixgan("prepare %s", cases[i].args);
        CHECK_MSG(r.status == 2, "'%s': exit status %d", cases[i].args, r.status);
        CHECK_MSG(strstr(r.err, cases[i].message), "'%s': \"%s\"", cases[i].args, r.err);
        test_free_result(&r);
    }
}
