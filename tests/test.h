/* A small test harness: TEST(name) registers a test, CHECK* record failures with file:line
 * and let the test continue. run-tests prints one line per test and ends with
 * "N passed, N failed"; its exit status is non-zero when any test failed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*TestFn)(void);
void test_register(const char *name, const char *file, TestFn fn);
/* Records one failed check of the running test. */
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                                         \
    static void name(void);                                                                \
    __attribute__((constructor)) static void register_##name(void)                         \
    {                                                                                      \
        test_register(#name, __FILE__, name);                                              \
    }                                                                                      \
    static void name(void)

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                               \
    do {                                                                                   \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);                           \
    } while (0)

#define CHECK_INT_EQ(actual, expected)                                                     \
    do {                                                                                   \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                    \
        if (a_ != e_) test_fail(__FILE__, __LINE__, "%s = %lld, expected %lld", #actual, a_, e_); \
    } while (0)

#define CHECK_NEAR(actual, expected, tolerance)                                            \
    do {                                                                                   \
        double a_ = (double)(actual), e_ = (double)(expected), t_ = (double)(tolerance);   \
        if (!(a_ - e_ <= t_ && e_ - a_ <= t_))                                             \
            test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g (tolerance %g)", #actual, a_, e_, t_); \
    } while (0)

#define CHECK_STR_CONTAINS(haystack, needle)                                               \
    do {                                                                                   \
        const char *h_ = (haystack), *n_ = (needle);                                       \
        if (!h_ || !strstr(h_, n_))                                                        \
            test_fail(__FILE__, __LINE__, "%s does not contain \"%s\": \"%.400s\"", #haystack, n_, h_ ? h_ : "(null)"); \
    } while (0)

/* Output of one run of the mixgan binary. */
typedef struct CommandResult {
    int status;   /* exit status, or 128 + signal number when killed by a signal */
    char *out;    /* stdout, NUL-terminated */
    char *err;    /* stderr, NUL-terminated */
} CommandResult;

/* Runs "$MIXGAN_BIN <args>" through /bin/sh (args is a shell fragment built like printf). */
CommandResult test_run_mixgan(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void test_free_result(CommandResult *r);
/* Returns a fresh directory under $TMPDIR (or /tmp), deleted when run-tests exits. The
 * returned string stays valid until then. */
const char *test_temp_dir(void);
/* Path of a file under tests/ (the tests run from the repository root). */
const char *test_data_path(const char *relative);
/* Writes `size` bytes to `path`, replacing the file; exits the runner on failure. */
void test_write_file(const char *path, const void *data, size_t size);
/* Writes a NUL-terminated text to `path`. */
void test_write_text(const char *path, const char *text);
