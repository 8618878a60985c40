/* The data loader and the GAN training iteration. */
#include "trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "ops.h"
#include "util.h"

/* ---- data loader ------------------------------------------------------------------- */

/* Fisher-Yates shuffle driven by the epoch's own counter range, so an epoch's order depends
 * only on the seed and the epoch number. */
static void shuffle_epoch(DataLoader *loader)
{
    Rng rng = rng_make(loader->seed, STREAM_SHUFFLE);
    rng.offset = (uint64_t)loader->epoch << 32;
    for (uint32_t i = 0; i < loader->images.count; i++) loader->order[i] = i;
    for (uint32_t i = loader->images.count; i > 1; i--) {
        uint32_t j = rng_below(&rng, i);
        uint32_t t = loader->order[i - 1];
        loader->order[i - 1] = loader->order[j];
        loader->order[j] = t;
    }
}

void loader_init(DataLoader *loader, ImageSet images, uint64_t seed, int64_t epoch, uint32_t position)
{
    *loader = (DataLoader){.images = images, .seed = seed, .epoch = epoch, .position = position};
    loader->order = mg_malloc((size_t)images.count * sizeof *loader->order);
    shuffle_epoch(loader);
}

void loader_free(DataLoader *loader)
{
    free(loader->order);
    loader->order = NULL;
}

void loader_next(DataLoader *loader, int batch, bool hflip, Rng *flip_rng, float *out)
{
    const ImageSet *im = &loader->images;
    size_t plane = (size_t)im->height * im->width;
    for (int b = 0; b < batch; b++) {
        if (loader->position == im->count) {
            loader->epoch++;
            loader->position = 0;
            shuffle_epoch(loader);
        }
        const uint8_t *src = im->pixels + (size_t)loader->order[loader->position++] * plane * im->channels;
        bool flip = hflip && rng_below(flip_rng, 2) == 1;
        float *dst = out + (size_t)b * im->channels * plane;
        for (uint32_t y = 0; y < im->height; y++) {
            for (uint32_t x = 0; x < im->width; x++) {
                uint32_t sx = flip ? im->width - 1 - x : x;
                for (uint32_t c = 0; c < im->channels; c++) {
                    float v = src[((size_t)y * im->width + sx) * im->channels + c];
                    dst[c * plane + (size_t)y * im->width + x] = v / 127.5f - 1.0f;
                }
            }
        }
    }
}

/* ---- training ---------------------------------------------------------------------- */

void trainer_init(Trainer *trainer, Gan *gan, ImageSet images)
{
    const TrainingSpec *t = &gan->config.training;
    memset(trainer, 0, sizeof *trainer);
    trainer->gan = gan;
    adam_init(&trainer->adam_g, gan->generator.params.param_total, t->lr, t->beta1, t->beta2, t->adam_eps);
    adam_init(&trainer->adam_d, gan->discriminator.params.param_total, t->lr, t->beta1, t->beta2, t->adam_eps);
    trainer->latent_rng = rng_make(t->seed, STREAM_LATENT);
    trainer->flip_rng = rng_make(t->seed, STREAM_FLIP);
    trainer->augment_rng = rng_make(t->seed, STREAM_AUGMENT);
    loader_init(&trainer->loader, images, t->seed, 0, 0);
    tape_init(&trainer->tape);
}

void trainer_free(Trainer *trainer)
{
    adam_free(&trainer->adam_g);
    adam_free(&trainer->adam_d);
    loader_free(&trainer->loader);
    tape_free(&trainer->tape);
}

static Tensor *sample_latents(Trainer *trainer, int batch)
{
    Tensor *z = tensor_empty(&trainer->tape, shape2(batch, trainer->gan->config.latent_dim));
    rng_fill_normal(&trainer->latent_rng, z->data, z->numel, 0.0f, 1.0f);
    return z;
}

static double mean_of(const Tensor *t)
{
    double sum = 0.0;
    for (size_t i = 0; i < t->numel; i++) sum += t->data[i];
    return sum / (double)t->numel;
}

/* One discriminator step. Returns false, before any update, when the loss is not finite. */
static bool discriminator_step(Trainer *trainer, IterationStats *stats)
{
    Gan *gan = trainer->gan;
    const TrainingSpec *t = &gan->config.training;
    const ModelConfig *c = &gan->config;
    Tape *tape = &trainer->tape;
    int batch = t->batch_size;

    tape_reset(tape);
    tape_set_grad_enabled(tape, false);
    Tensor *fake = network_forward(&gan->generator, tape, sample_latents(trainer, batch), true);
    tape_set_grad_enabled(tape, true);

    Tensor *real = tensor_empty(tape, shape4(batch, c->channels, c->image_size, c->image_size));
    loader_next(&trainer->loader, batch, t->hflip, &trainer->flip_rng, real->data);
    real = diffaugment(tape, real, t->augment, &trainer->augment_rng);
    fake = diffaugment(tape, fake, t->augment, &trainer->augment_rng);

    Tensor *d_real = network_forward(&gan->discriminator, tape, real, true);
    Tensor *d_fake = network_forward(&gan->discriminator, tape, fake, true);
    Tensor *loss;
    if (t->loss == LOSS_HINGE)
        loss = op_add(tape, op_hinge_d(tape, d_real, true), op_hinge_d(tape, d_fake, false));
    else
        loss = op_add(tape, op_bce_with_logits(tape, d_real, 1.0f), op_bce_with_logits(tape, d_fake, 0.0f));

    stats->d_loss = loss->data[0];
    stats->d_real = mean_of(d_real);
    stats->d_fake = mean_of(d_fake);
    if (!isfinite(stats->d_loss)) return false;

    paramset_zero_grad(&gan->discriminator.params);
    tape_backward(tape, loss);
    adam_update(&trainer->adam_d, gan->discriminator.params.values, gan->discriminator.params.grads);
    return true;
}

/* One generator step and the EMA update. Returns false, before any update, when the loss
 * is not finite. */
static bool generator_step(Trainer *trainer, IterationStats *stats)
{
    Gan *gan = trainer->gan;
    const TrainingSpec *t = &gan->config.training;
    Tape *tape = &trainer->tape;

    tape_reset(tape);
    Tensor *fake = network_forward(&gan->generator, tape, sample_latents(trainer, t->batch_size), true);
    fake = diffaugment(tape, fake, t->augment, &trainer->augment_rng);

    /* D's weights are not updated here, so its weight gradients are skipped */
    paramset_set_requires_grad(&gan->discriminator.params, false);
    Tensor *d_fake = network_forward(&gan->discriminator, tape, fake, true);
    Tensor *loss = t->loss == LOSS_HINGE ? op_hinge_g(tape, d_fake) : op_bce_with_logits(tape, d_fake, 1.0f);
    paramset_set_requires_grad(&gan->discriminator.params, true);

    stats->g_loss = loss->data[0];
    if (!isfinite(stats->g_loss)) return false;

    paramset_zero_grad(&gan->generator.params);
    tape_backward(tape, loss);
    adam_update(&trainer->adam_g, gan->generator.params.values, gan->generator.params.grads);
    if (gan->has_ema) ema_update(&gan->ema.params, &gan->generator.params, t->ema_decay);
    return true;
}

IterationStats trainer_iteration(Trainer *trainer)
{
    IterationStats stats = {.finite = true};
    for (int i = 0; i < trainer->gan->config.training.d_steps && stats.finite; i++)
        stats.finite = discriminator_step(trainer, &stats);
    if (stats.finite) stats.finite = generator_step(trainer, &stats);
    tape_reset(&trainer->tape);
    if (stats.finite) trainer->step++;
    return stats;
}

/* The largest activation_floats of one layer of a network. */
static double largest_layer(const Network *net)
{
    double largest = 0.0;
    for (int i = 0; i < net->count; i++) {
        if (net->layers[i].activation_floats > largest) largest = net->layers[i].activation_floats;
    }
    return largest;
}

double trainer_activation_bytes_estimate(const Gan *gan)
{
    /* Activations of a step with gradients stay until the step ends. Each activation's
     * gradient is freed once its producer's backward has run, so only about two layers' worth
     * of gradients is live at a time. The discriminator step runs G without gradients (one
     * layer's activations at a time) and D twice; the generator step runs both once. */
    double batch = gan->config.training.batch_size;
    double g = network_activation_floats(&gan->generator), d = network_activation_floats(&gan->discriminator);
    double g_layer = largest_layer(&gan->generator), d_layer = largest_layer(&gan->discriminator);
    double live_gradients = 2.0 * (g_layer > d_layer ? g_layer : d_layer);
    double d_step = g_layer + 2.0 * d + 2.0 * d_layer, g_step = g + d + live_gradients;
    return (d_step > g_step ? d_step : g_step) * batch * sizeof(float);
}
