/* Error reporting, checked allocation, small file helpers and atomic output files. */
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Temporary output files that mg_fatal() must delete. A process writes a handful at most. */
enum { MAX_PENDING_OUTPUTS = 16 };
static MgOutput *pending_outputs[MAX_PENDING_OUTPUTS];

static void delete_pending_outputs(void)
{
    for (int i = 0; i < MAX_PENDING_OUTPUTS; i++) {
        if (pending_outputs[i]) {
            if (pending_outputs[i]->file) fclose(pending_outputs[i]->file);
            unlink(pending_outputs[i]->temp_path);
            pending_outputs[i] = NULL;
        }
    }
}

noreturn void mg_fatal(const char *fmt, ...)
{
    va_list args;
    fflush(stdout);
    fputs("mixgan: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    delete_pending_outputs();
    exit(MG_EXIT_FAILURE);
}

noreturn void mg_panic(const char *fmt, ...)
{
    va_list args;
    fflush(stdout);
    fputs("mixgan: internal error: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    delete_pending_outputs();
    abort();
}

void mg_warn(const char *fmt, ...)
{
    va_list args;
    fflush(stdout);
    fputs("mixgan: warning: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}

static noreturn void out_of_memory(size_t bytes)
{
    mg_fatal("out of memory: failed to allocate %zu bytes (%.1f MiB)", bytes,
             (double)bytes / (1024.0 * 1024.0));
}

void *mg_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) out_of_memory(bytes);
    return p;
}

void *mg_calloc(size_t count, size_t size)
{
    size_t bytes = mg_mul_size(count, size, "calloc");
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) out_of_memory(bytes);
    return p;
}

void *mg_realloc(void *ptr, size_t bytes)
{
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) out_of_memory(bytes);
    return p;
}

char *mg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = mg_malloc(n);
    memcpy(copy, s, n);
    return copy;
}

size_t mg_mul_size(size_t a, size_t b, const char *what)
{
    if (a != 0 && b > SIZE_MAX / a) mg_fatal("size overflow computing %s (%zu x %zu)", what, a, b);
    return a * b;
}

char *mg_format(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0) mg_panic("mg_format: invalid format \"%s\"", fmt);
    char *s = mg_malloc((size_t)n + 1);
    va_start(args, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, args);
    va_end(args);
    return s;
}

static const char *program_name = "mixgan";

void mg_set_program_name(const char *name)
{
    program_name = name;
}

const char *mg_program_name(void)
{
    return program_name;
}

double mg_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

size_t mg_peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %zu kB", &kib) == 1) break;
    }
    fclose(f);
    return kib * 1024;
}

char *mg_read_file(const char *path, size_t *size_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, size = 0;
    char *buf = mg_malloc(cap);
    for (;;) {
        if (size + 1 >= cap) buf = mg_realloc(buf, cap *= 2);
        size_t n = fread(buf + size, 1, cap - size - 1, f);
        size += n;
        if (n == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[size] = '\0';
    if (size_out) *size_out = size;
    return buf;
}

bool mg_is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool mg_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool mg_make_dirs(const char *path)
{
    char *copy = mg_strdup(path);
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
                free(copy);
                return false;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    free(copy);
    if (!mg_is_directory(path)) {
        errno = ENOTDIR;
        return false;
    }
    return true;
}

static void register_output(MgOutput *out)
{
    for (int i = 0; i < MAX_PENDING_OUTPUTS; i++) {
        if (!pending_outputs[i]) {
            pending_outputs[i] = out;
            return;
        }
    }
    mg_panic("more than %d output files open at once", MAX_PENDING_OUTPUTS);
}

static void unregister_output(MgOutput *out)
{
    for (int i = 0; i < MAX_PENDING_OUTPUTS; i++) {
        if (pending_outputs[i] == out) pending_outputs[i] = NULL;
    }
}

bool mg_output_open(MgOutput *out, const char *path)
{
    out->path = mg_strdup(path);
    out->temp_path = mg_format("%s.tmp.%ld", path, (long)getpid());
    out->file = fopen(out->temp_path, "wb");
    if (!out->file) {
        int saved = errno;
        free(out->path);
        free(out->temp_path);
        out->path = out->temp_path = NULL;
        errno = saved;
        return false;
    }
    register_output(out);
    return true;
}

bool mg_output_write(MgOutput *out, const void *data, size_t bytes)
{
    return fwrite(data, 1, bytes, out->file) == bytes;
}

static void release_output(MgOutput *out)
{
    unregister_output(out);
    free(out->path);
    free(out->temp_path);
    out->path = out->temp_path = NULL;
    out->file = NULL;
}

bool mg_output_commit(MgOutput *out)
{
    bool ok = fflush(out->file) == 0 && !ferror(out->file) && fsync(fileno(out->file)) == 0;
    int saved = errno;
    if (fclose(out->file) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    out->file = NULL;
    if (ok && rename(out->temp_path, out->path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) unlink(out->temp_path);
    release_output(out);
    errno = saved;
    return ok;
}

void mg_output_abandon(MgOutput *out)
{
    if (!out->temp_path) return;
    if (out->file) fclose(out->file);
    unlink(out->temp_path);
    release_output(out);
}

bool mg_set_error(char *err, size_t err_size, const char *fmt, ...)
{
    if (err && err_size > 0) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err, err_size, fmt, args);
        va_end(args);
    }
    return false;
}

void mg_progress_start(MgProgress *p, const char *label, const char *unit)
{
    p->label = label;
    p->unit = unit;
    p->start = p->last_print = mg_now();
    p->terminal = isatty(STDERR_FILENO);
}

void mg_progress_update(MgProgress *p, size_t done, size_t total, bool last)
{
    double now = mg_now();
    double interval = p->terminal ? 0.25 : 10.0;
    if (!last && now - p->last_print < interval) return;
    if (!p->terminal && last) return;
    p->last_print = now;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    const char *start = p->terminal ? "\r" : "";
    const char *end = p->terminal && !last ? "" : "\n";
    if (total)
        fprintf(stderr, "%s%s: %zu/%zu %s (%.0f%%), %.1f %s/s%s", start, p->label, done, total, p->unit,
                100.0 * (double)done / (double)total, rate, p->unit, end);
    else
        fprintf(stderr, "%s%s: %zu %s, %.1f %s/s%s", start, p->label, done, p->unit, rate, p->unit, end);
    fflush(stderr);
}
