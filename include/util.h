/* Error reporting, checked allocation, file helpers and atomic output files.
 *
 * Conventions used across mixgan:
 * - mg_fatal() is for bad user input and failed I/O: it prints "mixgan: <message>" to stderr,
 *   deletes any output file still being written, and exits with status 1.
 * - mg_panic() is for programming errors such as mismatched shapes between ops: it prints the
 *   message and calls abort(), so a debugger or core dump shows the stack.
 * - Allocation failures print the number of bytes requested and exit with status 1.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdnoreturn.h>

#define MG_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#define MG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum { MG_EXIT_FAILURE = 1, MG_EXIT_USAGE = 2 };

noreturn void mg_fatal(const char *fmt, ...) MG_PRINTF(1, 2);
noreturn void mg_panic(const char *fmt, ...) MG_PRINTF(1, 2);
void mg_warn(const char *fmt, ...) MG_PRINTF(1, 2);

void *mg_malloc(size_t bytes);
void *mg_calloc(size_t count, size_t size);
void *mg_realloc(void *ptr, size_t bytes);
char *mg_strdup(const char *s);
/* Returns a * b, or exits with a message naming `what` when the product overflows size_t. */
size_t mg_mul_size(size_t a, size_t b, const char *what);
/* Returns a newly allocated string built like printf. */
char *mg_format(const char *fmt, ...) MG_PRINTF(1, 2);

/* The name mixgan was started as (argv[0]), for hints that show a command to run. */
void mg_set_program_name(const char *name);
const char *mg_program_name(void);

/* Seconds on a monotonic clock. */
double mg_now(void);
/* Peak resident set size of this process in bytes (VmHWM), or 0 when it cannot be read. */
size_t mg_peak_rss_bytes(void);

/* Reads a whole file into a NUL-terminated buffer. Returns NULL and sets errno on failure. */
char *mg_read_file(const char *path, size_t *size_out);
bool mg_is_directory(const char *path);
bool mg_file_exists(const char *path);
/* Creates a directory and its missing parents (like mkdir -p); returns false and sets errno. */
bool mg_make_dirs(const char *path);

/* An output file written under a temporary name in the same directory and renamed into place
 * by mg_output_commit(), so an interrupted run never leaves a file that looks complete.
 * While open, the temporary file is registered so that mg_fatal() deletes it. */
typedef struct MgOutput {
    FILE *file;
    char *path;      /* final path */
    char *temp_path; /* "<path>.tmp.<pid>" */
} MgOutput;

/* Opens `path` for writing through a temporary file. On failure returns false with errno set
 * and the reason in a message that names the path (see mg_output_error). */
bool mg_output_open(MgOutput *out, const char *path);
/* Flushes, syncs, closes and renames the temporary file onto the final path. Returns false
 * with errno set on failure, in which case the temporary file is deleted. */
bool mg_output_commit(MgOutput *out);
/* Closes and deletes the temporary file without touching the final path. */
void mg_output_abandon(MgOutput *out);
/* Writes exactly `bytes` bytes or returns false. */
bool mg_output_write(MgOutput *out, const void *data, size_t bytes);

/* Formats a message into err (at most err_size bytes, always NUL-terminated when err_size > 0)
 * and returns false, so that a function reporting errors through a caller's buffer can write
 * `return mg_set_error(err, err_size, ...);`. */
bool mg_set_error(char *err, size_t err_size, const char *fmt, ...) MG_PRINTF(3, 4);

/* Progress of a long loop on stderr: on a terminal a line redrawn in place several times a
 * second, in a log a new line every 10 seconds. */
typedef struct MgProgress {
    const char *label;   /* e.g. "prepare" */
    const char *unit;    /* e.g. "images" */
    double start, last_print;
    bool terminal;
} MgProgress;

void mg_progress_start(MgProgress *p, const char *label, const char *unit);
/* Reports `done` of `total` items (total 0 when unknown); `last` ends the line. */
void mg_progress_update(MgProgress *p, size_t done, size_t total, bool last);
