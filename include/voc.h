/* PASCAL VOC annotations as the Stanford Dogs dataset ships them: one XML file per image with
 * a <size> and one <object> per dog, each with a <bndbox>.
 *
 * Box convention: xmin, ymin, xmax, ymax are pixel coordinates of the annotated image and the
 * box covers columns xmin <= x < xmax and rows ymin <= y < ymax, the convention of Pillow's
 * Image.crop((xmin, ymin, xmax, ymax)) that Stanford Dogs loaders commonly use. In the dataset
 * xmin reaches 0 and xmax reaches width - 1 but never width, so the last row and column of an
 * image are never inside a box under this reading.
 *
 * The parser reads the few elements it needs by tag name and ignores everything else,
 * including <filename>, which contains placeholders in some files of the real dataset.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "image.h"

typedef struct VocBox {
    double xmin, ymin, xmax, ymax;
} VocBox;

typedef struct VocAnnotation {
    int width, height; /* from <size>; 0 when the file has no usable <size> */
    int box_count;
    VocBox *boxes;     /* (box_count), one per <object>, in file order */
} VocAnnotation;

/* Parses the text of a VOC annotation. Fails, with a message that starts with `name`, when an
 * <object> has no <bndbox>, a coordinate is missing or not a number, or there is no <object>
 * with a <bndbox> at all. Free the result with voc_free. */
bool voc_parse(const char *xml, const char *name, VocAnnotation *out, char *err,
               size_t err_size);
void voc_free(VocAnnotation *annotation);

typedef enum VocBoxStatus {
    VOC_BOX_OK,
    VOC_BOX_OUTSIDE, /* a coordinate lies outside the annotated image */
    VOC_BOX_EMPTY,   /* xmax <= xmin or ymax <= ymin, before or after scaling */
} VocBoxStatus;

/* Converts box `index` of `annotation` to pixels of the decoded image (width × height).
 *
 * The box is checked against the annotation's <size> (or the image size when <size> is
 * missing). When <size> differs from the image, as in a resized copy of the dataset, each
 * coordinate is scaled by image size / annotated size and rounded to the nearest pixel.
 * On failure the message in `err` starts with `name`. */
VocBoxStatus voc_box_to_image(const VocAnnotation *annotation, int index, int width, int height,
                              const char *name, ImageBox *out, char *err, size_t err_size);
