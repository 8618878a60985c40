/* Command-line helpers shared by the subcommands.
 *
 * Options take the forms "--name VALUE" and "--name=VALUE". A usage error prints
 * "mixgan <command>: <message>" and a pointer to --help, and exits with status 2.
 */
#pragma once

#include <stdbool.h>
#include <stdnoreturn.h>

typedef struct CliArgs {
    const char *command; /* subcommand name, for messages */
    int argc;
    char **argv;
    int index;           /* next argument to read */
    const char *arg;     /* current argument */
} CliArgs;

void cli_init(CliArgs *args, const char *command, int argc, char **argv);
/* Advances to the next argument; returns false at the end. */
bool cli_next(CliArgs *args);
/* True when the current argument is the option `name` (with or without "=VALUE"). */
bool cli_is(const CliArgs *args, const char *name);
/* Returns the value of the current option, taking the next argument when there is no "=". */
const char *cli_value(CliArgs *args);
long cli_long(CliArgs *args, long min, long max);
double cli_double(CliArgs *args, double min, double max);
noreturn void cli_usage_error(const CliArgs *args, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns the path of a file shipped with mixgan, such as the bundled dataset: `relative` as
 * given when it exists from the current directory, otherwise relative to the directory of the
 * mixgan executable. Returns a newly allocated string. */
char *cli_find_bundled_file(const char *relative);

/* Sets the number of threads for OpenMP and OpenBLAS. `requested` <= 0 means: the value of
 * MIXGAN_THREADS when set, otherwise every online core. Returns the count in use. */
int cli_setup_threads(int requested);

/* Stops with a message when `path`, the value of `option`, cannot be created because of its
 * folder: it is a directory, or its parent directory does not exist or is not writable.
 * Commands call it before long work, so that a mistyped output path does not discard the
 * result. */
void cli_check_output_path(const char *option, const char *path);
