/* Building, describing and sampling a GAN. */
#include "gan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops.h"
#include "util.h"

static void check_shapes(const Gan *gan)
{
    const ModelConfig *c = &gan->config;
    FlowShape image = flow_image(c->channels, c->image_size, c->image_size);
    FlowShape out = gan->generator.output;
    char got[64], want[64];
    flow_format(image, want, sizeof want);
    if (out.kind != FLOW_IMAGE || out.channels != image.channels || out.height != image.height ||
        out.width != image.width) {
        flow_format(out, got, sizeof got);
        mg_fatal("%s: the generator produces %s, but image_size and channels ask for %s: adjust the upsampling "
                 "layers so that they reach the image size",
                 c->source, got, want);
    }
    out = gan->discriminator.output;
    bool one_logit = (out.kind == FLOW_VECTOR && out.channels == 1) ||
                     (out.kind == FLOW_IMAGE && out.channels == 1 && out.height == 1 && out.width == 1);
    if (!one_logit) {
        flow_format(out, got, sizeof got);
        mg_fatal("%s: the discriminator produces %s per image; it must end in one logit (vector 1)", c->source, got);
    }
}

void gan_build(Gan *gan, ModelConfig *config)
{
    memset(gan, 0, sizeof *gan);
    gan->config = *config;
    memset(config, 0, sizeof *config);
    const ModelConfig *c = &gan->config;
    FlowShape image = flow_image(c->channels, c->image_size, c->image_size);
    network_build(&gan->generator, &c->generator, flow_vector(c->latent_dim), "generator", c->source);
    network_build(&gan->discriminator, &c->discriminator, image, "discriminator", c->source);
    check_shapes(gan);
    gan->has_ema = c->training.ema_decay > 0;
    if (gan->has_ema) network_build(&gan->ema, &c->generator, flow_vector(c->latent_dim), "generator", c->source);
}

void gan_init_weights(Gan *gan)
{
    uint64_t seed = gan->config.training.seed;
    Rng g_rng = rng_make(seed, STREAM_INIT_GENERATOR), d_rng = rng_make(seed, STREAM_INIT_DISCRIMINATOR);
    network_init(&gan->generator, &gan->config.init, &g_rng);
    network_init(&gan->discriminator, &gan->config.init, &d_rng);
    if (gan->has_ema) paramset_copy(&gan->ema.params, &gan->generator.params);
}

void gan_free(Gan *gan)
{
    network_free(&gan->generator);
    network_free(&gan->discriminator);
    if (gan->has_ema) network_free(&gan->ema);
    config_free(&gan->config);
}

double gan_generator_mib(const Gan *gan)
{
    return (double)gan->generator.params.param_total * 4.0 / (1024.0 * 1024.0);
}

void gan_print(const Gan *gan)
{
    config_print(&gan->config);
    printf("\n");
    network_print(&gan->generator);
    printf("\n");
    network_print(&gan->discriminator);
    printf("\ngenerator:     %zu parameters, %.2f MiB, %.3f GFLOP per image\n", gan->generator.params.param_total,
           gan_generator_mib(gan), network_flops(&gan->generator) / 1e9);
    printf("discriminator: %zu parameters, %.2f MiB, %.3f GFLOP per image\n", gan->discriminator.params.param_total,
           (double)gan->discriminator.params.param_total * 4.0 / (1024.0 * 1024.0),
           network_flops(&gan->discriminator) / 1e9);
}

void images_to_uint8(const float *images, int batch, int channels, int height, int width, uint8_t *out)
{
    size_t plane = (size_t)height * width;
    for (int b = 0; b < batch; b++) {
        for (size_t p = 0; p < plane; p++) {
            for (int c = 0; c < channels; c++) {
                float v = roundf((images[((size_t)b * channels + c) * plane + p] + 1.0f) * 127.5f);
                v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
                if (v != v) v = 0.0f; /* NaN */
                out[((size_t)b * plane + p) * channels + c] = (uint8_t)v;
            }
        }
    }
}

void gan_generate(Gan *gan, Network *g, Rng *rng, int count, int batch, uint8_t *out)
{
    const ModelConfig *c = &gan->config;
    size_t image_bytes = (size_t)c->channels * c->image_size * c->image_size;
    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    for (int start = 0; start < count; start += batch) {
        int n = count - start < batch ? count - start : batch;
        Tensor *z = tensor_empty(&tape, shape2(n, c->latent_dim));
        rng_fill_normal(rng, z->data, z->numel, 0.0f, 1.0f);
        Tensor *images = network_forward(g, &tape, z, false);
        images_to_uint8(images->data, n, c->channels, c->image_size, c->image_size, out + (size_t)start * image_bytes);
        tape_reset(&tape);
    }
    tape_free(&tape);
}
