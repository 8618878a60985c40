/* mixgan info: the resolved config and the layer tables of a model, without training. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "gan.h"

static void print_usage(void)
{
    printf("usage: mixgan info --config FILE\n\n"
           "Prints the resolved config, one line per layer (output shape, parameters, forward FLOPs\n"
           "per image), the totals and the generator size, as 'mixgan train' does before training.\n\n"
           "  --config FILE   model config (JSON), for example configs/hybrid.json\n"
           "  --threads N     accepted for symmetry with the other commands; info does no computation\n");
}

int cmd_info(int argc, char **argv)
{
    CliArgs args;
    cli_init(&args, "info", argc, argv);
    const char *config_path = NULL;
    while (cli_next(&args)) {
        if (cli_is(&args, "--help") || cli_is(&args, "-h")) {
            print_usage();
            return 0;
        } else if (cli_is(&args, "--config")) {
            config_path = cli_value(&args);
        } else if (cli_is(&args, "--threads")) {
            cli_long(&args, 1, 1024);
        } else {
            cli_usage_error(&args, "unknown option '%s'", args.arg);
        }
    }
    if (!config_path) cli_usage_error(&args, "--config is required");

    ModelConfig config;
    config_load(config_path, &config);
    Gan gan;
    gan_build(&gan, &config);
    gan_print(&gan);
    gan_free(&gan);
    return 0;
}
