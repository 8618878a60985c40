/* `mixgan prepare`: turns Stanford Dogs (images plus VOC boxes) or a folder of dog pictures
 * into a packed dataset file (see dataset.h).
 *
 * Images are processed in chunks: the images of a chunk are decoded, cropped and resized in
 * parallel, then their crops are written in input order, so the output does not depend on the
 * thread count. Problems with one image or box are reported, counted and skipped. Problems
 * with the input as a whole stop the run before the output file is renamed into place.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "dataset.h"
#include "image.h"
#include "util.h"
#include "voc.h"

enum {
    DEFAULT_SIZE = 32,
    MIN_SIZE = 4,
    MAX_SIZE = 1024,
    PREVIEW_COUNT = 64,
    PREVIEW_COLUMNS = 8,
    MAX_WARNINGS = 100, /* further problems are counted in the summary only */
    MAX_LIST_WARNINGS = 5, /* list entries without an image, named one by one */
    ERROR_BYTES = 1024,
};

/* The plural ending for a count of n. */
static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

typedef enum InputKind { INPUT_IMAGES, INPUT_STANFORD_DOGS } InputKind;
typedef enum CropMode { CROP_SQUASH, CROP_SQUARE } CropMode;

typedef struct PrepareOptions {
    InputKind kind;
    const char *input; /* DIR or ROOT as given */
    const char *out, *list, *preview;
    int size;
    CropMode crop;
    bool crop_given;
    int threads;
} PrepareOptions;

/* Why an image produced no crop. */
typedef enum Problem {
    PROBLEM_NONE,
    PROBLEM_UNREADABLE,
    PROBLEM_BAD_IMAGE,
    PROBLEM_NO_ANNOTATION,
    PROBLEM_BAD_ANNOTATION,
    PROBLEM_NO_VALID_BOX,
    PROBLEM_NOT_FOUND,
    PROBLEM_COUNT,
} Problem;

static const char *const problem_names[PROBLEM_COUNT] = {
    [PROBLEM_UNREADABLE] = "unreadable",
    [PROBLEM_BAD_IMAGE] = "corrupt, truncated or not an image",
    [PROBLEM_NO_ANNOTATION] = "without an annotation file",
    [PROBLEM_BAD_ANNOTATION] = "with an invalid annotation",
    [PROBLEM_NO_VALID_BOX] = "without a valid box",
    [PROBLEM_NOT_FOUND] = "listed but not found",
};

typedef struct Job {
    char *image_path;      /* as found on disk */
    const char *source;    /* image_path relative to the images folder */
    char *annotation_path; /* --stanford-dogs only */
} Job;

/* What processing one image produced. */
typedef struct JobResult {
    Problem problem;
    char *message;        /* image-level problem */
    char **box_messages;  /* rejected boxes of an image that was read */
    int box_message_count;
    int boxes_outside, boxes_empty;
    bool scaled;          /* the annotated <size> differs from the image */
    int crop_count;
    uint8_t *pixels;      /* (crop_count, size, size, 3) */
    DatasetCrop *crops;   /* (crop_count) */
} JobResult;

typedef struct Summary {
    size_t images_total, images_read, crops;
    size_t skipped[PROBLEM_COUNT];
    size_t boxes_outside, boxes_empty;
    size_t images_scaled;
    size_t warnings_shown, warnings_hidden;
} Summary;

/* ---- options ----------------------------------------------------------------------------- */

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: mixgan prepare (--stanford-dogs ROOT | --images DIR) --out FILE [options]\n"
            "\n"
            "Crops dogs from images, resizes the crops to SIZE x SIZE pixels with an\n"
            "area-averaging filter and packs them into a dataset file for 'train' and\n"
            "'eval-fid'.\n"
            "\n"
            "input (exactly one):\n"
            "  --stanford-dogs ROOT  the Stanford Dogs dataset as distributed:\n"
            "                        ROOT/Images/<synset>-<breed>/<id>.jpg and\n"
            "                        ROOT/Annotation/<synset>-<breed>/<id> (PASCAL VOC XML);\n"
            "                        one crop per annotated box\n"
            "  --images DIR          every .jpg, .jpeg and .png file under DIR, recursively;\n"
            "                        one crop per image: its largest centred square\n"
            "\n"
            "options:\n"
            "  --out FILE            dataset file to write (required); it appears only when\n"
            "                        the run succeeds\n"
            "  --size N              side of the crops in pixels (default %d, %d to %d)\n"
            "  --crop MODE           how a box becomes square, with --stanford-dogs only\n"
            "                        (default squash):\n"
            "                          squash  resize the box as it is\n"
            "                          square  grow the box's shorter side around its centre,\n"
            "                                  keeping the box inside the image\n"
            "  --list FILE           use only the images named in FILE, one path per line\n"
            "                        relative to ROOT/Images or DIR, as in the dataset's split\n"
            "                        lists (n02085620-Chihuahua/n02085620_10074.jpg)\n"
            "  --preview FILE        also write a PNG grid of the first %d crops\n"
            "  --threads N           threads (default: MIXGAN_THREADS, else all cores)\n"
            "  -h, --help            print this help\n",
            DEFAULT_SIZE, MIN_SIZE, MAX_SIZE, PREVIEW_COUNT);
}

static void parse_options(int argc, char **argv, PrepareOptions *o)
{
    *o = (PrepareOptions){.size = DEFAULT_SIZE, .crop = CROP_SQUASH};
    CliArgs args;
    cli_init(&args, "prepare", argc, argv);
    int inputs = 0;
    while (cli_next(&args)) {
        if (cli_is(&args, "--help") || !strcmp(args.arg, "-h")) {
            print_usage(stdout);
            exit(0);
        } else if (cli_is(&args, "--stanford-dogs")) {
            o->kind = INPUT_STANFORD_DOGS;
            o->input = cli_value(&args);
            inputs++;
        } else if (cli_is(&args, "--images")) {
            o->kind = INPUT_IMAGES;
            o->input = cli_value(&args);
            inputs++;
        } else if (cli_is(&args, "--out")) {
            o->out = cli_value(&args);
        } else if (cli_is(&args, "--size")) {
            o->size = (int)cli_long(&args, MIN_SIZE, MAX_SIZE);
        } else if (cli_is(&args, "--crop")) {
            const char *mode = cli_value(&args);
            if (!strcmp(mode, "squash")) o->crop = CROP_SQUASH;
            else if (!strcmp(mode, "square")) o->crop = CROP_SQUARE;
            else cli_usage_error(&args, "invalid --crop '%s': expected squash or square", mode);
            o->crop_given = true;
        } else if (cli_is(&args, "--list")) {
            o->list = cli_value(&args);
        } else if (cli_is(&args, "--preview")) {
            o->preview = cli_value(&args);
        } else if (cli_is(&args, "--threads")) {
            o->threads = (int)cli_long(&args, 1, 1024);
        } else {
            cli_usage_error(&args, "unknown argument '%s'", args.arg);
        }
    }
    if (inputs != 1)
        cli_usage_error(&args, inputs ? "give only one of --stanford-dogs and --images"
                                       : "missing input: give --stanford-dogs ROOT or --images DIR");
    if (!o->out) cli_usage_error(&args, "missing --out FILE");
    if (o->crop_given && o->kind == INPUT_IMAGES)
        cli_usage_error(&args, "--crop applies to --stanford-dogs only; --images always takes "
                               "the centred square");
}

/* ---- input listing ----------------------------------------------------------------------- */

/* Returns `path` without trailing slashes, as image_scan_files joins paths. */
static char *strip_trailing_slashes(const char *path)
{
    char *copy = mg_strdup(path);
    size_t length = strlen(copy);
    while (length > 1 && copy[length - 1] == '/') copy[--length] = '\0';
    return copy;
}

static Job *list_images(const char *dir, size_t *count)
{
    char err[ERROR_BYTES];
    size_t ignored = 0;
    char **paths = image_scan_files(dir, count, &ignored, err, sizeof err);
    if (!paths) mg_fatal("%s", err);
    if (*count == 0)
        mg_fatal("%s: no .jpg, .jpeg or .png files found (%zu other files)", dir, ignored);
    fprintf(stderr, "prepare: found %zu image%s under %s", *count, plural(*count), dir);
    if (ignored > 0) fprintf(stderr, " and ignored %zu file%s of other types", ignored, plural(ignored));
    fputc('\n', stderr);

    char *root = strip_trailing_slashes(dir);
    size_t prefix = strlen(root) + 1;
    free(root);
    Job *jobs = mg_calloc(*count, sizeof *jobs);
    for (size_t i = 0; i < *count; i++) {
        jobs[i].image_path = paths[i];
        jobs[i].source = paths[i] + prefix;
    }
    free(paths); /* the strings now belong to the jobs */
    return jobs;
}

static void free_jobs(Job *jobs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(jobs[i].image_path);
        free(jobs[i].annotation_path);
    }
    free(jobs);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a list file into a sorted array of unique, trimmed, non-empty lines. */
static char **read_list(const char *path, size_t *count)
{
    size_t size;
    char *text = mg_read_file(path, &size);
    if (!text) mg_fatal("--list %s: failed to read: %s", path, strerror(errno));
    /* Stanford Dogs ships its splits as MATLAB files (train_list.mat); say how to convert one */
    if (strncmp(text, "MATLAB", 6) == 0 || memchr(text, '\0', size))
        mg_fatal("--list %s: not a text file%s; --list needs one image path per line. To convert the "
                 "dataset's train_list.mat:\n  python3 -c \"import scipy.io; [print(f[0][0]) for f in "
                 "scipy.io.loadmat('train_list.mat')['file_list']]\" > train_list.txt",
                 path, strncmp(text, "MATLAB", 6) == 0 ? " (it is a MATLAB .mat file)" : "");
    size_t n = 0, capacity = 0;
    char **lines = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ' || *line == '\t') line++;
        size_t length = strlen(line);
        while (length > 0 && (line[length - 1] == '\r' || line[length - 1] == ' ' ||
                              line[length - 1] == '\t'))
            line[--length] = '\0';
        if (strncmp(line, "./", 2) == 0) line += 2;
        if (*line == '\0') continue;
        if (n == capacity) {
            capacity = capacity ? 2 * capacity : 1024;
            lines = mg_realloc(lines, capacity * sizeof *lines);
        }
        lines[n++] = mg_strdup(line);
    }
    free(text);
    if (n == 0) mg_fatal("--list %s: the file names no images", path);
    qsort(lines, n, sizeof *lines, compare_strings);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        if (unique > 0 && !strcmp(lines[unique - 1], lines[i])) {
            free(lines[i]);
            continue;
        }
        lines[unique++] = lines[i];
    }
    *count = unique;
    return lines;
}

/* Keeps the jobs whose source is in the list, and counts and reports list entries that
 * match no image. Both arrays are sorted by the same byte-wise order. */
static size_t filter_by_list(Job *jobs, size_t count, const char *list_path, const char *dir,
                             Summary *summary)
{
    size_t listed_count;
    char **listed = read_list(list_path, &listed_count);
    size_t kept = 0, j = 0, missing = 0;
    for (size_t i = 0; i < listed_count; i++) {
        while (j < count && strcmp(jobs[j].source, listed[i]) < 0) {
            free(jobs[j].image_path);
            j++;
        }
        if (j < count && !strcmp(jobs[j].source, listed[i])) {
            jobs[kept++] = jobs[j++];
        } else {
            if (missing < MAX_LIST_WARNINGS)
                mg_warn("skipped %s: listed in %s but not found under %s", listed[i], list_path,
                        dir);
            missing++;
        }
        free(listed[i]);
    }
    for (; j < count; j++) free(jobs[j].image_path);
    free(listed);
    if (missing > MAX_LIST_WARNINGS)
        mg_warn("%zu more images listed in %s were not found", missing - MAX_LIST_WARNINGS,
                list_path);
    summary->skipped[PROBLEM_NOT_FOUND] = missing;
    if (kept == 0)
        mg_fatal("--list %s: none of its %zu entries is an image under %s", list_path,
                 listed_count, dir);
    return kept;
}

static bool directory_has_entries(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) return false;
    bool found = false;
    struct dirent *entry;
    while (!found && (entry = readdir(dir))) found = entry->d_name[0] != '.';
    closedir(dir);
    return found;
}

/* Returns the length of the breed folder name at the start of `source`, 0 for none. */
static int breed_length(const char *source)
{
    const char *slash = strchr(source, '/');
    return slash ? (int)(slash - source) : 0;
}

static bool same_breed(const char *a, const char *b)
{
    int length = breed_length(a);
    return length == breed_length(b) && strncmp(a, b, (size_t)length) == 0;
}

/* Sets the annotation path of every job: ROOT/Annotation/<breed>/<id> for
 * ROOT/Images/<breed>/<id>.jpg. Stops when a breed folder that contains selected images has no
 * annotation folder, or an empty one: that means an incomplete download rather than a few bad
 * files. The jobs are sorted, so the images of one breed are consecutive. */
static void attach_annotations(Job *jobs, size_t count, const char *root)
{
    for (size_t start = 0, end; start < count; start = end) {
        end = start + 1;
        while (end < count && same_breed(jobs[start].source, jobs[end].source)) end++;
        int length = breed_length(jobs[start].source);
        char *folder = mg_format("%s/Annotation/%.*s", root, length, jobs[start].source);
        if (!directory_has_entries(folder))
            mg_fatal("%s: no annotations for the %zu images in %s/Images/%.*s (the folder is "
                     "missing or empty); extract the dataset's annotation archive next to Images",
                     folder, end - start, root, length, jobs[start].source);
        free(folder);
    }
    for (size_t i = 0; i < count; i++) {
        const char *source = jobs[i].source;
        const char *dot = strrchr(source, '.');
        int stem_length = (int)(dot && dot > source + breed_length(source) ? dot - source
                                                                           : (long)strlen(source));
        jobs[i].annotation_path = mg_format("%s/Annotation/%.*s", root, stem_length, source);
    }
}

static Job *list_jobs(const PrepareOptions *o, size_t *count, Summary *summary)
{
    char *root = strip_trailing_slashes(o->input);
    char *images_dir = NULL;
    if (o->kind == INPUT_STANFORD_DOGS) {
        images_dir = mg_format("%s/Images", root);
        char *annotation_dir = mg_format("%s/Annotation", root);
        if (!mg_is_directory(images_dir) || !mg_is_directory(annotation_dir))
            mg_fatal("--stanford-dogs %s: expected the folders %s and %s (the dataset's "
                     "images and annotation archives extracted side by side)",
                     o->input, images_dir, annotation_dir);
        free(annotation_dir);
    } else {
        images_dir = mg_strdup(root);
    }
    Job *jobs = list_images(images_dir, count);
    if (o->list) *count = filter_by_list(jobs, *count, o->list, images_dir, summary);
    if (o->kind == INPUT_STANFORD_DOGS) attach_annotations(jobs, *count, root);
    free(images_dir);
    free(root);
    return jobs;
}

/* ---- processing one image ---------------------------------------------------------------- */

static void fail_job(JobResult *r, Problem problem, const char *message)
{
    r->problem = problem;
    r->message = mg_strdup(message);
}

/* Reads and parses the annotation of a job, trying "<id>.xml" when "<id>" does not exist. */
static bool load_annotation(const Job *job, VocAnnotation *annotation, JobResult *r)
{
    char err[ERROR_BYTES];
    const char *path = job->annotation_path;
    char *xml = mg_read_file(path, NULL);
    char *xml_path = NULL;
    if (!xml && errno == ENOENT) {
        xml_path = mg_format("%s.xml", path);
        xml = mg_read_file(xml_path, NULL);
        if (xml) path = xml_path;
        else errno = ENOENT;
    }
    if (!xml) {
        if (errno == ENOENT) {
            snprintf(err, sizeof err, "%s: no annotation file (expected %s)", job->image_path,
                     job->annotation_path);
            fail_job(r, PROBLEM_NO_ANNOTATION, err);
        } else {
            snprintf(err, sizeof err, "%s: failed to read: %s", path,
                     mg_is_directory(path) ? "is a directory, expected an XML file"
                                           : strerror(errno));
            fail_job(r, PROBLEM_UNREADABLE, err);
        }
        free(xml_path);
        return false;
    }
    bool ok = voc_parse(xml, path, annotation, err, sizeof err);
    if (!ok) fail_job(r, PROBLEM_BAD_ANNOTATION, err);
    free(xml);
    free(xml_path);
    return ok;
}

static void add_box_message(JobResult *r, const char *message)
{
    r->box_messages = mg_realloc(r->box_messages,
                                 (size_t)(r->box_message_count + 1) * sizeof *r->box_messages);
    r->box_messages[r->box_message_count++] = mg_strdup(message);
}

/* Finds the boxes to crop. Returns their number; rejected boxes are counted in `r`. */
static int find_boxes(const PrepareOptions *o, const Job *job, const VocAnnotation *annotation,
                      int width, int height, ImageBox *boxes, uint32_t *objects, JobResult *r)
{
    if (o->kind == INPUT_IMAGES) {
        boxes[0] = image_center_square(width, height);
        objects[0] = 0;
        return 1;
    }
    r->scaled = annotation->width > 0 &&
                (annotation->width != width || annotation->height != height);
    int n = 0;
    for (int i = 0; i < annotation->box_count; i++) {
        char err[ERROR_BYTES];
        ImageBox box;
        VocBoxStatus status = voc_box_to_image(annotation, i, width, height,
                                               job->annotation_path, &box, err, sizeof err);
        if (status != VOC_BOX_OK) {
            if (status == VOC_BOX_OUTSIDE) r->boxes_outside++;
            else r->boxes_empty++;
            add_box_message(r, err);
            continue;
        }
        boxes[n] = o->crop == CROP_SQUARE ? image_square_box(box, width, height) : box;
        objects[n] = (uint32_t)i;
        n++;
    }
    return n;
}

static void process_job(const PrepareOptions *o, const Job *job, JobResult *r)
{
    char err[ERROR_BYTES];
    VocAnnotation annotation = {0};
    if (o->kind == INPUT_STANFORD_DOGS && !load_annotation(job, &annotation, r)) return;

    size_t file_size;
    char *data = mg_read_file(job->image_path, &file_size);
    if (!data) {
        snprintf(err, sizeof err, "%s: failed to read: %s", job->image_path, strerror(errno));
        fail_job(r, PROBLEM_UNREADABLE, err);
        voc_free(&annotation);
        return;
    }
    int width, height;
    uint8_t *rgb = image_decode_rgb(data, file_size, job->image_path, &width, &height, err,
                                    sizeof err);
    free(data);
    if (!rgb) {
        fail_job(r, PROBLEM_BAD_IMAGE, err);
        voc_free(&annotation);
        return;
    }

    int capacity = o->kind == INPUT_IMAGES ? 1 : annotation.box_count;
    ImageBox *boxes = mg_malloc((size_t)capacity * sizeof *boxes);
    uint32_t *objects = mg_malloc((size_t)capacity * sizeof *objects);
    int n = find_boxes(o, job, &annotation, width, height, boxes, objects, r);
    if (n == 0) {
        snprintf(err, sizeof err, "%s: none of its %d boxes is usable", job->image_path,
                 annotation.box_count);
        fail_job(r, PROBLEM_NO_VALID_BOX, err);
    }

    size_t crop_bytes = (size_t)o->size * (size_t)o->size * 3;
    r->pixels = mg_malloc((size_t)n * crop_bytes);
    r->crops = mg_calloc((size_t)n, sizeof *r->crops);
    for (int i = 0; i < n; i++) {
        if (!image_resize_box(rgb, width, height, boxes[i], r->pixels + (size_t)i * crop_bytes,
                              o->size, o->size))
            mg_fatal("out of memory resizing %s", job->image_path);
        r->crops[i] = (DatasetCrop){
            .source = job->source,
            .object = objects[i],
            .x0 = (uint32_t)boxes[i].x0,
            .y0 = (uint32_t)boxes[i].y0,
            .x1 = (uint32_t)boxes[i].x1,
            .y1 = (uint32_t)boxes[i].y1,
            .source_width = (uint32_t)width,
            .source_height = (uint32_t)height,
        };
    }
    r->crop_count = n;
    free(boxes);
    free(objects);
    free(rgb);
    voc_free(&annotation);
}

static void free_result(JobResult *r)
{
    free(r->message);
    for (int i = 0; i < r->box_message_count; i++) free(r->box_messages[i]);
    free(r->box_messages);
    free(r->pixels);
    free(r->crops);
    *r = (JobResult){0};
}

/* ---- reporting --------------------------------------------------------------------------- */

static void warn_limited(Summary *s, const char *message)
{
    if (s->warnings_shown < MAX_WARNINGS) {
        mg_warn("skipped %s", message);
        s->warnings_shown++;
    } else {
        s->warnings_hidden++;
    }
}

static void print_summary(const PrepareOptions *o, const Summary *s, double seconds,
                          int threads)
{
    printf("prepare: read %zu of %zu image%s in %.1f s (%.0f images/s, %d threads)\n",
           s->images_read, s->images_total, plural(s->images_total), seconds,
           seconds > 0 ? (double)s->images_read / seconds : 0.0, threads);
    printf("prepare: wrote %zu crop%s of %dx%d to %s\n", s->crops, plural(s->crops), o->size, o->size, o->out);

    size_t skipped = 0;
    for (int p = PROBLEM_NONE + 1; p < PROBLEM_COUNT; p++) skipped += s->skipped[p];
    if (skipped > 0) {
        printf("prepare: skipped %zu image%s:", skipped, plural(skipped));
        const char *separator = " ";
        for (int p = PROBLEM_NONE + 1; p < PROBLEM_COUNT; p++) {
            if (!s->skipped[p]) continue;
            printf("%s%zu %s", separator, s->skipped[p], problem_names[p]);
            separator = ", ";
        }
        printf("\n");
    }
    if (s->boxes_outside + s->boxes_empty > 0)
        printf("prepare: skipped %zu box%s: %zu extending outside the image, %zu of zero area\n",
               s->boxes_outside + s->boxes_empty, s->boxes_outside + s->boxes_empty == 1 ? "" : "es",
               s->boxes_outside, s->boxes_empty);
    if (s->images_scaled > 0)
        printf("prepare: scaled the boxes of %zu images whose annotated <size> differs from the "
               "image\n",
               s->images_scaled);
    if (s->warnings_hidden > 0)
        printf("prepare: %zu further problems were counted but not printed\n", s->warnings_hidden);
    if (o->preview)
        printf("prepare: wrote a preview of the first %zu crops to %s\n",
               s->crops < PREVIEW_COUNT ? s->crops : (size_t)PREVIEW_COUNT, o->preview);
}

/* ---- main loop --------------------------------------------------------------------------- */

/* Reports one processed image and appends its crops to the output and the preview. */
static void collect_result(JobResult *r, DatasetWriter *writer, uint8_t *preview,
                           size_t crop_bytes, Summary *s)
{
    char err[ERROR_BYTES];
    if (r->problem == PROBLEM_NONE || r->problem == PROBLEM_NO_VALID_BOX) s->images_read++;
    for (int i = 0; i < r->box_message_count; i++) warn_limited(s, r->box_messages[i]);
    s->boxes_outside += (size_t)r->boxes_outside;
    s->boxes_empty += (size_t)r->boxes_empty;
    if (r->scaled) s->images_scaled++;
    if (r->problem != PROBLEM_NONE) {
        s->skipped[r->problem]++;
        warn_limited(s, r->message);
    }
    for (int i = 0; i < r->crop_count; i++) {
        const uint8_t *pixels = r->pixels + (size_t)i * crop_bytes;
        if (!dataset_writer_add(writer, pixels, &r->crops[i], err, sizeof err)) mg_fatal("%s", err);
        if (s->crops < PREVIEW_COUNT && preview)
            memcpy(preview + s->crops * crop_bytes, pixels, crop_bytes);
        s->crops++;
    }
}

int cmd_prepare(int argc, char **argv)
{
    PrepareOptions o;
    parse_options(argc, argv, &o);
    int threads = cli_setup_threads(o.threads);
    cli_check_output_path("--out", o.out);
    if (o.preview) cli_check_output_path("--preview", o.preview);

    Summary summary = {0};
    size_t job_count;
    Job *jobs = list_jobs(&o, &job_count, &summary);
    summary.images_total = job_count + summary.skipped[PROBLEM_NOT_FOUND];

    char err[ERROR_BYTES];
    DatasetWriter writer;
    if (!dataset_writer_open(&writer, o.out, (uint32_t)o.size, (uint32_t)o.size, 3, err,
                             sizeof err))
        mg_fatal("%s", err);

    size_t crop_bytes = (size_t)o.size * (size_t)o.size * 3;
    uint8_t *preview = o.preview ? mg_malloc(PREVIEW_COUNT * crop_bytes) : NULL;
    size_t chunk = (size_t)(threads * 64 > 256 ? threads * 64 : 256);
    JobResult *results = mg_calloc(chunk, sizeof *results);
    double started = mg_now();
    MgProgress progress;
    mg_progress_start(&progress, "prepare", "images");
    progress.start = progress.last_print = started;

    for (size_t start = 0; start < job_count; start += chunk) {
        long n = (long)(job_count - start < chunk ? job_count - start : chunk);
        #pragma omp parallel for schedule(dynamic, 1)
        for (long i = 0; i < n; i++) process_job(&o, &jobs[start + (size_t)i], &results[i]);

        for (long i = 0; i < n; i++) {
            collect_result(&results[i], &writer, preview, crop_bytes, &summary);
            free_result(&results[i]);
        }
        mg_progress_update(&progress, start + (size_t)n, job_count,
                       start + (size_t)n == job_count);
    }
    free(results);

    if (summary.crops == 0)
        mg_fatal("no crops written: all %zu images were skipped (see the messages above); "
                 "%s was not created",
                 summary.images_total, o.out);
    if (o.preview) {
        int count = summary.crops < PREVIEW_COUNT ? (int)summary.crops : PREVIEW_COUNT;
        if (!image_write_grid_png(o.preview, preview, count, o.size, o.size, PREVIEW_COLUMNS, err,
                                  sizeof err))
            mg_fatal("%s", err);
    }
    if (!dataset_writer_commit(&writer, err, sizeof err)) mg_fatal("%s", err);

    print_summary(&o, &summary, mg_now() - progress.start, threads);
    free(preview);
    free_jobs(jobs, job_count);
    return 0;
}
