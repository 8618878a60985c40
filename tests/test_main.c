/* Test runner: runs every registered test, or those whose name contains one of the
 * command-line arguments. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

typedef struct Test {
    const char *name;
    const char *file;
    TestFn fn;
} Test;

enum { MAX_TESTS = 1024 };
static Test tests[MAX_TESTS];
static int test_count;
static int current_failures;
static const char *current_name;

void test_register(const char *name, const char *file, TestFn fn)
{
    if (test_count == MAX_TESTS) {
        fprintf(stderr, "too many tests: raise MAX_TESTS in %s\n", __FILE__);
        exit(1);
    }
    tests[test_count++] = (Test){name, file, fn};
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    current_failures++;
    if (current_failures > 20) return; /* one broken loop should not flood the log */
    if (current_failures == 1) fprintf(stderr, "  %s:\n", current_name);
    va_list args;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}

static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = mg_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = mg_realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    return buf;
}

CommandResult test_run_mixgan(const char *fmt, ...)
{
    const char *bin = getenv("MIXGAN_BIN");
    if (!bin) bin = "./mixgan";
    va_list args;
    va_start(args, fmt);
    char args_text[4096];
    vsnprintf(args_text, sizeof args_text, fmt, args);
    va_end(args);

    const char *dir = test_temp_dir();
    char *out_path = mg_format("%s/cmd.out", dir), *err_path = mg_format("%s/cmd.err", dir);
    char *cmd = mg_format("%s %s >%s 2>%s", bin, args_text, out_path, err_path);
    int raw = system(cmd);
    CommandResult r = {0};
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    FILE *f = fopen(out_path, "r");
    r.out = f ? read_all(f) : mg_strdup("");
    if (f) fclose(f);
    f = fopen(err_path, "r");
    r.err = f ? read_all(f) : mg_strdup("");
    if (f) fclose(f);
    free(cmd);
    free(out_path);
    free(err_path);
    return r;
}

void test_free_result(CommandResult *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static char *temp_root;

static void remove_temp_root(void)
{
    if (!temp_root) return;
    char *cmd = mg_format("rm -rf '%s'", temp_root);
    if (system(cmd) != 0) fprintf(stderr, "warning: failed to remove %s\n", temp_root);
    free(cmd);
}

const char *test_temp_dir(void)
{
    static char *current;
    static int counter;
    if (!temp_root) {
        const char *base = getenv("TMPDIR");
        temp_root = mg_format("%s/mixgan-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(temp_root)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(remove_temp_root);
    }
    /* Earlier names stay allocated so that a test may keep one across test_run_mixgan(),
     * which takes a directory of its own. */
    static char **all;
    all = mg_realloc(all, (size_t)(counter + 1) * sizeof *all);
    current = mg_format("%s/%d", temp_root, counter);
    all[counter++] = current;
    if (!mg_make_dirs(current)) {
        perror(current);
        exit(1);
    }
    return current;
}

const char *test_data_path(const char *relative)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "tests/%s", relative);
    return buf;
}

void test_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

void test_write_text(const char *path, const char *text)
{
    test_write_file(path, text, strlen(text));
}

static bool selected(const Test *t, int argc, char **argv)
{
    if (argc < 2) return true;
    for (int i = 1; i < argc; i++) {
        if (strstr(t->name, argv[i]) || strstr(t->file, argv[i])) return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        if (!selected(&tests[i], argc, argv)) continue;
        current_failures = 0;
        current_name = tests[i].name;
        double start = mg_now();
        tests[i].fn();
        double ms = (mg_now() - start) * 1e3;
        if (current_failures == 0) {
            passed++;
            fprintf(stderr, "  ok    %s (%.0f ms)\n", tests[i].name, ms);
        } else {
            failed++;
            fprintf(stderr, "  FAIL  %s (%d failed checks)\n", tests[i].name, current_failures);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
