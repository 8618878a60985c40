/* mixgan: trains GANs on small images, samples them to PNG and scores them with FID. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "util.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"prepare", cmd_prepare, "crop and pack dog images into a dataset file"},
    {"train", cmd_train, "train a GAN from a JSON config"},
    {"sample", cmd_sample, "generate images from a checkpoint as PNG files"},
    {"eval-fid", cmd_eval_fid, "compute the FID between two image sets, datasets, statistics or checkpoints"},
    {"info", cmd_info, "print a model's config, layers, parameter counts and FLOPs"},
};

static void print_help(FILE *out)
{
    fprintf(out, "usage: mixgan <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < MG_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nRun 'mixgan <command> --help' for the options of one command.\n"
            "Every command takes --threads N (default: MIXGAN_THREADS, else all cores).\n");
}

int main(int argc, char **argv)
{
    mg_set_program_name(argv[0]);
    if (argc < 2) {
        print_help(stderr);
        return MG_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_help(stdout);
        return 0;
    }
    for (size_t i = 0; i < MG_ARRAY_LEN(commands); i++) {
        if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    }
    fprintf(stderr, "mixgan: unknown command '%s'\n\n", name);
    print_help(stderr);
    return MG_EXIT_USAGE;
}
