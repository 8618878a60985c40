/* Command-line helpers shared by the subcommands. */
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void cli_init(CliArgs *args, const char *command, int argc, char **argv)
{
    args->command = command;
    args->argc = argc;
    args->argv = argv;
    args->index = 0;
    args->arg = NULL;
}

bool cli_next(CliArgs *args)
{
    if (args->index >= args->argc) return false;
    args->arg = args->argv[args->index++];
    return true;
}

bool cli_is(const CliArgs *args, const char *name)
{
    size_t n = strlen(name);
    return strncmp(args->arg, name, n) == 0 && (args->arg[n] == '\0' || args->arg[n] == '=');
}

noreturn void cli_usage_error(const CliArgs *args, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mixgan %s: ", args->command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'mixgan %s --help' for the options.\n", args->command);
    exit(MG_EXIT_USAGE);
}

const char *cli_value(CliArgs *args)
{
    const char *eq = strchr(args->arg, '=');
    if (eq && strncmp(args->arg, "--", 2) == 0) return eq + 1;
    if (args->index >= args->argc) cli_usage_error(args, "option %s requires a value", args->arg);
    return args->argv[args->index++];
}

long cli_long(CliArgs *args, long min, long max)
{
    const char *name = args->arg;
    const char *text = cli_value(args);
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0')
        cli_usage_error(args, "invalid value '%s' for %s: expected an integer", text, name);
    if (v < min || v > max)
        cli_usage_error(args, "invalid value %ld for %s: expected %ld to %ld", v, name, min, max);
    return v;
}

double cli_double(CliArgs *args, double min, double max)
{
    const char *name = args->arg;
    const char *text = cli_value(args);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0')
        cli_usage_error(args, "invalid value '%s' for %s: expected a number", text, name);
    if (!(v >= min && v <= max))
        cli_usage_error(args, "invalid value %g for %s: expected %g to %g", v, name, min, max);
    return v;
}

int cli_setup_threads(int requested)
{
    int n = requested;
    if (n <= 0) {
        const char *env = getenv("MIXGAN_THREADS");
        if (env && *env) {
            char *end;
            long v = strtol(env, &end, 10);
            if (*end != '\0' || v < 1 || v > 1024)
                mg_fatal("invalid MIXGAN_THREADS='%s': expected an integer from 1 to 1024", env);
            n = (int)v;
        }
    }
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}

char *cli_find_bundled_file(const char *relative)
{
    if (mg_file_exists(relative)) return mg_strdup(relative);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            /* the binary sits at the repository root, or two levels down in build/<kind>/ */
            const char *prefixes[] = {"", "/../.."};
            for (size_t i = 0; i < MG_ARRAY_LEN(prefixes); i++) {
                char *candidate = mg_format("%s%s/%s", exe, prefixes[i], relative);
                if (mg_file_exists(candidate)) return candidate;
                free(candidate);
            }
        }
    }
    return mg_strdup(relative);
}

void cli_check_output_path(const char *option, const char *path)
{
    if (mg_is_directory(path)) mg_fatal("%s %s: is a directory, expected a file name", option, path);
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? mg_strdup(".") : slash == path ? mg_strdup("/") : mg_format("%.*s", (int)(slash - path), path);
    if (!mg_is_directory(dir))
        mg_fatal("%s %s: directory '%s' does not exist; create it first", option, path, dir);
    if (access(dir, W_OK) != 0)
        mg_fatal("%s %s: directory '%s' is not writable: %s", option, path, dir, strerror(errno));
    free(dir);
}
