/* Saving and loading training checkpoints. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

_Static_assert(sizeof(CheckpointHeader) <= CHECKPOINT_HEADER_BYTES, "checkpoint header too large");

/* The float blocks of a checkpoint in file order. */
typedef struct Block {
    float *data;
    size_t count;
} Block;

enum { MAX_BLOCKS = 10 };

static int collect_blocks(const Gan *gan, const Trainer *trainer, Block *blocks)
{
    int n = 0;
    blocks[n++] = (Block){gan->generator.params.values, gan->generator.params.param_total};
    blocks[n++] = (Block){gan->generator.params.buffer_values, gan->generator.params.buffer_total};
    blocks[n++] = (Block){gan->discriminator.params.values, gan->discriminator.params.param_total};
    blocks[n++] = (Block){gan->discriminator.params.buffer_values, gan->discriminator.params.buffer_total};
    if (gan->has_ema) {
        blocks[n++] = (Block){gan->ema.params.values, gan->ema.params.param_total};
        blocks[n++] = (Block){gan->ema.params.buffer_values, gan->ema.params.buffer_total};
    }
    if (trainer) {
        blocks[n++] = (Block){trainer->adam_g.m, trainer->adam_g.n};
        blocks[n++] = (Block){trainer->adam_g.v, trainer->adam_g.n};
        blocks[n++] = (Block){trainer->adam_d.m, trainer->adam_d.n};
        blocks[n++] = (Block){trainer->adam_d.v, trainer->adam_d.n};
    }
    return n;
}

static uint64_t expected_file_bytes(const CheckpointHeader *h)
{
    uint64_t floats = h->generator_params + h->generator_buffers + h->discriminator_params + h->discriminator_buffers;
    if (h->has_ema) floats += h->generator_params + h->generator_buffers;
    floats += 2 * (h->generator_params + h->discriminator_params);
    return CHECKPOINT_HEADER_BYTES + h->config_bytes + floats * sizeof(float);
}

void checkpoint_save(const Trainer *trainer, const char *path)
{
    const Gan *gan = trainer->gan;
    CheckpointHeader h = {
        .magic = CHECKPOINT_MAGIC,
        .version = CHECKPOINT_VERSION,
        .header_bytes = CHECKPOINT_HEADER_BYTES,
        .has_ema = gan->has_ema,
        .config_bytes = strlen(gan->config.text),
        .generator_params = gan->generator.params.param_total,
        .generator_buffers = gan->generator.params.buffer_total,
        .discriminator_params = gan->discriminator.params.param_total,
        .discriminator_buffers = gan->discriminator.params.buffer_total,
        .step = trainer->step,
        .latent_offset = trainer->latent_rng.offset,
        .flip_offset = trainer->flip_rng.offset,
        .augment_offset = trainer->augment_rng.offset,
        .epoch = trainer->loader.epoch,
        .position = trainer->loader.position,
        .dataset_count = trainer->loader.images.count,
        .adam_g_step = trainer->adam_g.step,
        .adam_d_step = trainer->adam_d.step,
    };
    h.file_bytes = expected_file_bytes(&h);

    unsigned char header[CHECKPOINT_HEADER_BYTES] = {0};
    memcpy(header, &h, sizeof h);
    MgOutput out;
    if (!mg_output_open(&out, path)) mg_fatal("cannot write checkpoint %s: %s", path, strerror(errno));
    bool ok = mg_output_write(&out, header, sizeof header) &&
              mg_output_write(&out, gan->config.text, (size_t)h.config_bytes);
    Block blocks[MAX_BLOCKS];
    int count = collect_blocks(gan, trainer, blocks);
    for (int i = 0; i < count && ok; i++) ok = mg_output_write(&out, blocks[i].data, blocks[i].count * sizeof(float));
    if (!ok) {
        int saved = errno;
        mg_output_abandon(&out);
        mg_fatal("failed to write checkpoint %s: %s", path, strerror(saved));
    }
    if (!mg_output_commit(&out)) mg_fatal("failed to write checkpoint %s: %s", path, strerror(errno));
}

/* Opens a checkpoint and validates its header against the file size. */
static FILE *open_checked(const char *path, CheckpointHeader *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) mg_fatal("cannot open checkpoint %s: %s", path, strerror(errno));
    unsigned char header[CHECKPOINT_HEADER_BYTES];
    size_t got = fread(header, 1, sizeof header, f);
    memcpy(h, header, sizeof *h);
    if (got < sizeof(uint32_t) || h->magic != CHECKPOINT_MAGIC)
        mg_fatal("%s is not a mixgan checkpoint (expected the file to start with \"MGCK\")", path);
    if (h->version != CHECKPOINT_VERSION)
        mg_fatal("%s is a checkpoint of format version %u; this mixgan reads version %d", path, h->version,
                 CHECKPOINT_VERSION);
    if (got < sizeof header || h->header_bytes != CHECKPOINT_HEADER_BYTES)
        mg_fatal("%s: truncated or corrupt checkpoint header", path);
    if (fseek(f, 0, SEEK_END) != 0) mg_fatal("cannot read checkpoint %s: %s", path, strerror(errno));
    long size = ftell(f);
    uint64_t expected = expected_file_bytes(h);
    if (h->file_bytes != expected)
        mg_fatal("%s: corrupt checkpoint header (sizes do not add up)", path);
    if ((uint64_t)size != expected)
        mg_fatal("%s: checkpoint is %s: expected %llu bytes, found %ld", path,
                 (uint64_t)size < expected ? "truncated" : "longer than its header says",
                 (unsigned long long)expected, size);
    if (fseek(f, CHECKPOINT_HEADER_BYTES, SEEK_SET) != 0) mg_fatal("cannot read checkpoint %s: %s", path, strerror(errno));
    return f;
}

char *checkpoint_read_config(const char *path, CheckpointHeader *header)
{
    FILE *f = open_checked(path, header);
    char *text = mg_malloc((size_t)header->config_bytes + 1);
    if (fread(text, 1, (size_t)header->config_bytes, f) != header->config_bytes)
        mg_fatal("%s: failed to read the config: %s", path, strerror(errno));
    text[header->config_bytes] = '\0';
    fclose(f);
    return text;
}

/* Reads `count` blocks after the config, checking that their sizes match the networks. */
static void read_blocks(const char *path, const Gan *gan, const Trainer *trainer)
{
    CheckpointHeader h;
    FILE *f = open_checked(path, &h);
    if (h.generator_params != gan->generator.params.param_total ||
        h.discriminator_params != gan->discriminator.params.param_total ||
        h.generator_buffers != gan->generator.params.buffer_total ||
        h.discriminator_buffers != gan->discriminator.params.buffer_total || (bool)h.has_ema != gan->has_ema)
        mg_fatal("%s: the checkpoint's networks differ from its config (generator %llu parameters, discriminator "
                 "%llu); the file is corrupt",
                 path, (unsigned long long)h.generator_params, (unsigned long long)h.discriminator_params);
    if (fseek(f, (long)(CHECKPOINT_HEADER_BYTES + h.config_bytes), SEEK_SET) != 0)
        mg_fatal("cannot read checkpoint %s: %s", path, strerror(errno));
    Block blocks[MAX_BLOCKS];
    int count = collect_blocks(gan, trainer, blocks);
    for (int i = 0; i < count; i++) {
        if (fread(blocks[i].data, sizeof(float), blocks[i].count, f) != blocks[i].count)
            mg_fatal("%s: failed to read the weights: %s", path, ferror(f) ? strerror(errno) : "unexpected end of file");
    }
    fclose(f);
}

void checkpoint_load_weights(const char *path, Gan *gan)
{
    read_blocks(path, gan, NULL);
}

void checkpoint_load_gan(const char *path, Gan *gan)
{
    CheckpointHeader header;
    char *text = checkpoint_read_config(path, &header);
    ModelConfig config;
    config_parse(text, path, &config);
    free(text);
    gan_build(gan, &config);
    checkpoint_load_weights(path, gan);
}

void checkpoint_load_trainer(const char *path, Trainer *trainer)
{
    CheckpointHeader h;
    fclose(open_checked(path, &h));
    read_blocks(path, trainer->gan, trainer);
    trainer->step = h.step;
    trainer->latent_rng.offset = h.latent_offset;
    trainer->flip_rng.offset = h.flip_offset;
    trainer->augment_rng.offset = h.augment_offset;
    trainer->adam_g.step = h.adam_g_step;
    trainer->adam_d.step = h.adam_d_step;
    if (h.dataset_count != trainer->loader.images.count)
        mg_fatal("%s: the run was trained on a dataset of %llu images, but the dataset given has %u: resume with "
                 "the dataset the run started with",
                 path, (unsigned long long)h.dataset_count, trainer->loader.images.count);
    ImageSet images = trainer->loader.images;
    uint64_t seed = trainer->loader.seed;
    loader_free(&trainer->loader);
    loader_init(&trainer->loader, images, seed, h.epoch, (uint32_t)h.position);
}

/* Returns the steps of the "step_N.ckpt" files in `dir`, highest first. */
static long *list_checkpoint_steps(const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    long *steps = NULL;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        long step;
        int end = 0;
        if (sscanf(entry->d_name, "step_%ld.ckpt%n", &step, &end) == 1 && end > 0 && entry->d_name[end] == '\0') {
            steps = mg_realloc(steps, (*count + 1) * sizeof *steps);
            steps[(*count)++] = step;
        }
    }
    closedir(d);
    for (size_t i = 1; i < *count; i++) {
        for (size_t j = i; j > 0 && steps[j - 1] < steps[j]; j--) {
            long tmp = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = tmp;
        }
    }
    return steps;
}

char *checkpoint_find_latest(const char *dir)
{
    size_t count;
    long *steps = list_checkpoint_steps(dir, &count);
    char *path = count ? mg_format("%s/step_%08ld.ckpt", dir, steps[0]) : NULL;
    free(steps);
    return path;
}

void checkpoint_prune(const char *dir, int keep)
{
    size_t count;
    long *steps = list_checkpoint_steps(dir, &count);
    for (size_t i = (size_t)keep; i < count; i++) {
        char *path = mg_format("%s/step_%08ld.ckpt", dir, steps[i]);
        if (unlink(path) != 0) mg_warn("failed to delete old checkpoint %s: %s", path, strerror(errno));
        free(path);
    }
    free(steps);
}
