/* PASCAL VOC annotation parsing and conversion of boxes to image pixels.
 *
 * This is not a general XML parser: it looks elements up by tag name inside the text of their
 * parent, which is enough for the flat files that annotation tools write. Comments, CDATA and
 * entities are not interpreted.
 */
#include "voc.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct Span {
    const char *begin, *end;
} Span;

typedef enum FindResult { FOUND, NOT_FOUND, UNCLOSED } FindResult;

/* Finds the first element <tag>...</tag> in `within` and stores its content. An opening tag
 * may carry attributes; a self-closing <tag/> has empty content. */
static FindResult find_element(Span within, const char *tag, Span *content)
{
    size_t tag_length = strlen(tag);
    const char *p = within.begin;
    while (p < within.end) {
        const char *open = memchr(p, '<', (size_t)(within.end - p));
        if (!open) return NOT_FOUND;
        const char *after = open + 1 + tag_length;
        if (after < within.end && strncmp(open + 1, tag, tag_length) == 0 &&
            (*after == '>' || *after == '/' || isspace((unsigned char)*after))) {
            const char *close_bracket = memchr(after, '>', (size_t)(within.end - after));
            if (!close_bracket) return UNCLOSED;
            if (close_bracket[-1] == '/') {
                *content = (Span){close_bracket + 1, close_bracket + 1};
                return FOUND;
            }
            const char *start = close_bracket + 1;
            for (const char *q = start; q < within.end; q++) {
                q = memchr(q, '<', (size_t)(within.end - q));
                if (!q) break;
                if (q + 2 + tag_length < within.end && q[1] == '/' &&
                    strncmp(q + 2, tag, tag_length) == 0 && q[2 + tag_length] == '>') {
                    *content = (Span){start, q};
                    return FOUND;
                }
            }
            return UNCLOSED;
        }
        p = open + 1;
    }
    return NOT_FOUND;
}

/* Parses the content of a numeric element such as <xmin> 12 </xmin>. */
static bool parse_number(Span content, double *value)
{
    char text[64];
    while (content.begin < content.end && isspace((unsigned char)*content.begin)) content.begin++;
    while (content.end > content.begin && isspace((unsigned char)content.end[-1])) content.end--;
    size_t length = (size_t)(content.end - content.begin);
    if (length == 0 || length >= sizeof text) return false;
    memcpy(text, content.begin, length);
    text[length] = '\0';
    char *end;
    *value = strtod(text, &end);
    return *end == '\0' && isfinite(*value);
}

static void quote_content(Span content, char *out, size_t out_size)
{
    size_t length = (size_t)(content.end - content.begin);
    if (length > 20) length = 20;
    snprintf(out, out_size, "%.*s", (int)length, content.begin);
}

/* Reads the number in <tag> inside `within`. */
static bool read_number(Span within, const char *tag, const char *context, const char *name,
                        double *value, char *err, size_t err_size)
{
    Span content;
    FindResult found = find_element(within, tag, &content);
    if (found == NOT_FOUND) {
        snprintf(err, err_size, "%s: %s has no <%s>", name, context, tag);
        return false;
    }
    if (found == UNCLOSED) {
        snprintf(err, err_size, "%s: <%s> in %s is not closed", name, tag, context);
        return false;
    }
    if (!parse_number(content, value)) {
        char quoted[32];
        quote_content(content, quoted, sizeof quoted);
        snprintf(err, err_size, "%s: <%s> in %s is not a number: '%s'", name, tag, context,
                 quoted);
        return false;
    }
    return true;
}

static bool parse_size(Span document, const char *name, VocAnnotation *out, char *err,
                       size_t err_size)
{
    Span size;
    FindResult found = find_element(document, "size", &size);
    if (found == NOT_FOUND) return true;
    if (found == UNCLOSED) {
        snprintf(err, err_size, "%s: <size> is not closed", name);
        return false;
    }
    double width, height;
    if (!read_number(size, "width", "<size>", name, &width, err, err_size)) return false;
    if (!read_number(size, "height", "<size>", name, &height, err, err_size)) return false;
    /* Some annotation tools write a zero size; the image's own size is used then. */
    if (width >= 1 && height >= 1 && width <= IMAGE_MAX_SIDE && height <= IMAGE_MAX_SIDE) {
        out->width = (int)width;
        out->height = (int)height;
    }
    return true;
}

bool voc_parse(const char *xml, const char *name, VocAnnotation *out, char *err,
               size_t err_size)
{
    *out = (VocAnnotation){0};
    Span document = {xml, xml + strlen(xml)};
    if (!parse_size(document, name, out, err, err_size)) return false;

    int capacity = 0, object_index = 0;
    Span rest = document, object;
    FindResult found;
    while ((found = find_element(rest, "object", &object)) == FOUND) {
        object_index++;
        char context[48];
        snprintf(context, sizeof context, "<bndbox> of object %d", object_index);
        Span bndbox;
        FindResult box_found = find_element(object, "bndbox", &bndbox);
        if (box_found != FOUND) {
            snprintf(err, err_size, "%s: object %d has %s", name, object_index,
                     box_found == NOT_FOUND ? "no <bndbox>" : "an unclosed <bndbox>");
            voc_free(out);
            return false;
        }
        VocBox box;
        if (!read_number(bndbox, "xmin", context, name, &box.xmin, err, err_size) ||
            !read_number(bndbox, "ymin", context, name, &box.ymin, err, err_size) ||
            !read_number(bndbox, "xmax", context, name, &box.xmax, err, err_size) ||
            !read_number(bndbox, "ymax", context, name, &box.ymax, err, err_size)) {
            voc_free(out);
            return false;
        }
        if (out->box_count == capacity) {
            capacity = capacity ? 2 * capacity : 4;
            out->boxes = mg_realloc(out->boxes, (size_t)capacity * sizeof *out->boxes);
        }
        out->boxes[out->box_count++] = box;
        rest.begin = object.end;
    }
    if (found == UNCLOSED) {
        snprintf(err, err_size, "%s: <object> %d is not closed", name, object_index + 1);
        voc_free(out);
        return false;
    }
    if (out->box_count == 0) {
        snprintf(err, err_size, "%s: no <object> with a <bndbox>", name);
        voc_free(out);
        return false;
    }
    return true;
}

void voc_free(VocAnnotation *annotation)
{
    free(annotation->boxes);
    *annotation = (VocAnnotation){0};
}

/* Scales a coordinate from an axis of `from` pixels to one of `to` pixels, rounded. */
static int scale_coordinate(double value, int from, int to)
{
    double scaled = from == to ? value : value * to / from;
    double rounded = floor(scaled + 0.5);
    if (rounded < 0) return 0;
    if (rounded > to) return to;
    return (int)rounded;
}

VocBoxStatus voc_box_to_image(const VocAnnotation *annotation, int index, int width, int height,
                              const char *name, ImageBox *out, char *err, size_t err_size)
{
    const VocBox *b = &annotation->boxes[index];
    bool has_size = annotation->width > 0 && annotation->height > 0;
    int ref_width = has_size ? annotation->width : width;
    int ref_height = has_size ? annotation->height : height;

    if (!(b->xmax > b->xmin && b->ymax > b->ymin)) {
        snprintf(err, err_size,
                 "%s: box of object %d has zero area (xmin %g, xmax %g, ymin %g, ymax %g)", name,
                 index + 1, b->xmin, b->xmax, b->ymin, b->ymax);
        return VOC_BOX_EMPTY;
    }
    if (b->xmin < 0 || b->ymin < 0 || b->xmax > ref_width || b->ymax > ref_height) {
        snprintf(err, err_size,
                 "%s: box of object %d (xmin %g, ymin %g, xmax %g, ymax %g) extends outside the "
                 "%s%dx%d image",
                 name, index + 1, b->xmin, b->ymin, b->xmax, b->ymax,
                 has_size ? "annotated " : "", ref_width, ref_height);
        return VOC_BOX_OUTSIDE;
    }
    ImageBox box = {
        scale_coordinate(b->xmin, ref_width, width),
        scale_coordinate(b->ymin, ref_height, height),
        scale_coordinate(b->xmax, ref_width, width),
        scale_coordinate(b->ymax, ref_height, height),
    };
    if (box.x1 <= box.x0 || box.y1 <= box.y0) {
        snprintf(err, err_size,
                 "%s: box of object %d is less than a pixel wide once scaled from %dx%d to the "
                 "%dx%d image",
                 name, index + 1, ref_width, ref_height, width, height);
        return VOC_BOX_EMPTY;
    }
    *out = box;
    return VOC_BOX_OK;
}
