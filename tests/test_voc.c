/* PASCAL VOC annotation parsing and box conversion. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util.h"
#include "voc.h"

static const char *real_annotation(void)
{
    return test_data_path("data/stanford-dogs/Annotation/n02085936-Maltese_dog/n02085936_2760");
}

TEST(voc_parse_real_annotation)
{
    char *xml = mg_read_file(real_annotation(), NULL);
    CHECK(xml != NULL);
    VocAnnotation a;
    char err[512];
    CHECK_MSG(voc_parse(xml, "real", &a, err, sizeof err), "%s", err);
    CHECK_INT_EQ(a.width, 350);
    CHECK_INT_EQ(a.height, 262);
    CHECK_INT_EQ(a.box_count, 2);
    if (a.box_count == 2) {
        /* as written in the file */
        CHECK_NEAR(a.boxes[0].xmin, 161, 0);
        CHECK_NEAR(a.boxes[0].ymin, 86, 0);
        CHECK_NEAR(a.boxes[0].xmax, 267, 0);
        CHECK_NEAR(a.boxes[0].ymax, 208, 0);
        CHECK_NEAR(a.boxes[1].xmin, 42, 0);
        CHECK_NEAR(a.boxes[1].ymax, 204, 0);
    }
    voc_free(&a);
    free(xml);
}

TEST(voc_parse_ignores_filename_and_spacing)
{
    /* Some files of the real dataset carry "%s" as <filename>; it must not matter. */
    const char *xml =
        "<annotation><filename>%s</filename><size><width> 40 </width>\n<height>30</height>"
        "</size><object><name>dog</name><bndbox><xmin>1</xmin><ymin>2.0</ymin>"
        "<xmax>\t30 </xmax><ymax>29</ymax></bndbox></object></annotation>";
    VocAnnotation a;
    char err[512];
    CHECK_MSG(voc_parse(xml, "x", &a, err, sizeof err), "%s", err);
    CHECK_INT_EQ(a.width, 40);
    CHECK_INT_EQ(a.box_count, 1);
    if (a.box_count == 1) {
        CHECK_NEAR(a.boxes[0].ymin, 2, 0);
        CHECK_NEAR(a.boxes[0].xmax, 30, 0);
    }
    voc_free(&a);
}

TEST(voc_parse_errors)
{
    static const struct {
        const char *xml, *message;
    } cases[] = {
        {"<annotation><size><width>9</width><height>9</height></size></annotation>",
         "f: no <object> with a <bndbox>"},
        {"<annotation><object><name>dog</name></object></annotation>",
         "f: object 1 has no <bndbox>"},
        {"<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>"
         "</bndbox></object><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
         "</bndbox></object></annotation>",
         "f: <bndbox> of object 2 has no <ymax>"},
        {"<annotation><object><bndbox><xmin>left</xmin><ymin>1</ymin><xmax>5</xmax>"
         "<ymax>5</ymax></bndbox></object></annotation>",
         "f: <xmin> in <bndbox> of object 1 is not a number: 'left'"},
        {"<annotation><object><bndbox><xmin>1</xmin>", "f: <object> 1 is not closed"},
        {"", "f: no <object> with a <bndbox>"},
        {"<annotation><size><width>wide</width><height>9</height></size></annotation>",
         "f: <width> in <size> is not a number: 'wide'"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        VocAnnotation a;
        char err[512] = "";
        CHECK_MSG(!voc_parse(cases[i].xml, "f", &a, err, sizeof err), "case %zu parsed", i);
        CHECK_MSG(strstr(err, cases[i].message), "case %zu: \"%s\", expected \"%s\"", i, err,
                  cases[i].message);
        CHECK(a.boxes == NULL);
    }
}

/* An annotation with one box and the given <size> (0 for none). */
static VocAnnotation one_box(int width, int height, double xmin, double ymin, double xmax,
                             double ymax)
{
    VocAnnotation a = {.width = width, .height = height, .box_count = 1};
    a.boxes = mg_malloc(sizeof *a.boxes);
    a.boxes[0] = (VocBox){xmin, ymin, xmax, ymax};
    return a;
}

TEST(voc_box_same_size_is_unchanged)
{
    VocAnnotation a = one_box(350, 262, 161, 86, 267, 208);
    ImageBox box;
    char err[512];
    CHECK_INT_EQ(voc_box_to_image(&a, 0, 350, 262, "f", &box, err, sizeof err), VOC_BOX_OK);
    CHECK_INT_EQ(box.x0, 161);
    CHECK_INT_EQ(box.y0, 86);
    CHECK_INT_EQ(box.x1, 267);
    CHECK_INT_EQ(box.y1, 208);
    voc_free(&a);
}

TEST(voc_box_scales_to_resized_image)
{
    /* annotated at 350x262, image stored at half size 175x131 */
    VocAnnotation a = one_box(350, 262, 161, 86, 267, 208);
    ImageBox box;
    char err[512];
    CHECK_INT_EQ(voc_box_to_image(&a, 0, 175, 131, "f", &box, err, sizeof err), VOC_BOX_OK);
    CHECK_INT_EQ(box.x0, 81); /* 80.5 rounds up */
    CHECK_INT_EQ(box.y0, 43);
    CHECK_INT_EQ(box.x1, 134); /* 133.5 */
    CHECK_INT_EQ(box.y1, 104);
    voc_free(&a);

    /* different factors per axis: 200x100 annotated, 100x300 image */
    a = one_box(200, 100, 20, 10, 180, 90);
    CHECK_INT_EQ(voc_box_to_image(&a, 0, 100, 300, "f", &box, err, sizeof err), VOC_BOX_OK);
    CHECK_INT_EQ(box.x0, 10);
    CHECK_INT_EQ(box.y0, 30);
    CHECK_INT_EQ(box.x1, 90);
    CHECK_INT_EQ(box.y1, 270);
    voc_free(&a);
}

TEST(voc_box_without_size_uses_image)
{
    VocAnnotation a = one_box(0, 0, 5, 5, 60, 40);
    ImageBox box;
    char err[512];
    CHECK_INT_EQ(voc_box_to_image(&a, 0, 60, 40, "f", &box, err, sizeof err), VOC_BOX_OK);
    CHECK_INT_EQ(box.x1, 60);
    CHECK_INT_EQ(voc_box_to_image(&a, 0, 59, 40, "f", &box, err, sizeof err), VOC_BOX_OUTSIDE);
    voc_free(&a);
}

TEST(voc_box_outside_and_empty)
{
    static const struct {
        double xmin, ymin, xmax, ymax;
        VocBoxStatus status;
        const char *message;
    } cases[] = {
        {0, 0, 100, 80, VOC_BOX_OK, ""},
        {-1, 0, 50, 50, VOC_BOX_OUTSIDE, "extends outside the annotated 100x80 image"},
        {10, 10, 101, 50, VOC_BOX_OUTSIDE, "xmax 101"},
        {10, 10, 50, 81, VOC_BOX_OUTSIDE, "ymax 81"},
        {200, 10, 300, 50, VOC_BOX_OUTSIDE, "xmin 200"},
        {10, 10, 10, 50, VOC_BOX_EMPTY, "zero area (xmin 10, xmax 10"},
        {10, 50, 20, 40, VOC_BOX_EMPTY, "zero area"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        VocAnnotation a = one_box(100, 80, cases[i].xmin, cases[i].ymin, cases[i].xmax,
                                  cases[i].ymax);
        ImageBox box;
        char err[512] = "";
        VocBoxStatus status = voc_box_to_image(&a, 0, 100, 80, "ann", &box, err, sizeof err);
        CHECK_MSG(status == cases[i].status, "case %zu: status %d, expected %d", i, status,
                  cases[i].status);
        if (cases[i].status != VOC_BOX_OK) {
            CHECK_MSG(strstr(err, cases[i].message), "case %zu: \"%s\"", i, err);
            CHECK_STR_CONTAINS(err, "ann: box of object 1");
        }
        voc_free(&a);
    }
}

TEST(voc_box_too_small_after_scaling)
{
    /* one pixel wide at 1000 pixels, the image is 10 pixels wide */
    VocAnnotation a = one_box(1000, 1000, 500, 100, 501, 900);
    ImageBox box;
    char err[512];
    CHECK_INT_EQ(voc_box_to_image(&a, 0, 10, 10, "f", &box, err, sizeof err), VOC_BOX_EMPTY);
    CHECK_STR_CONTAINS(err, "less than a pixel wide once scaled from 1000x1000 to the 10x10 image");
    voc_free(&a);
}
