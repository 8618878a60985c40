/* Training checkpoints.
 *
 * A checkpoint holds everything a run needs to continue exactly: the config text, the
 * weights and buffers of G, D and the EMA generator, both Adam states, the iteration count,
 * the random-stream offsets and the data loader's position. Layout (all little-endian):
 *
 *   CheckpointHeader (256 bytes; magic "MGCK", version, sizes below)
 *   config text (config_bytes, not NUL-terminated)
 *   float32 blocks: G values, G buffers, D values, D buffers,
 *                   [EMA values, EMA buffers when has_ema],
 *                   Adam G m, Adam G v, Adam D m, Adam D v
 *
 * Files are written to a temporary name and renamed, so a checkpoint that exists is whole.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "trainer.h"

enum {
    CHECKPOINT_MAGIC = 0x4B43474D, /* "MGCK" read as little-endian uint32 */
    CHECKPOINT_VERSION = 1,
    CHECKPOINT_HEADER_BYTES = 256,
};

typedef struct CheckpointHeader {
    uint32_t magic, version, header_bytes, has_ema;
    uint64_t config_bytes;
    uint64_t generator_params, generator_buffers, discriminator_params, discriminator_buffers;
    int64_t step;
    uint64_t latent_offset, flip_offset, augment_offset;
    int64_t epoch;
    uint64_t position;
    uint64_t dataset_count;  /* images in the training set, to detect a resume on other data */
    int64_t adam_g_step, adam_d_step;
    uint64_t file_bytes;
} CheckpointHeader;

/* Writes the trainer's state to `path` atomically. Exits with a message on I/O failure,
 * leaving any existing file at `path` untouched. */
void checkpoint_save(const Trainer *trainer, const char *path);

/* Reads and checks a checkpoint's header and config; exits with a message naming the file
 * and the problem (not a checkpoint, other version, truncated). The returned config text
 * must be freed. */
char *checkpoint_read_config(const char *path, CheckpointHeader *header);

/* Loads the weights of a checkpoint into a GAN built from its config. */
void checkpoint_load_weights(const char *path, Gan *gan);

/* Builds the GAN described by a checkpoint's config and loads its weights. */
void checkpoint_load_gan(const char *path, Gan *gan);

/* Restores a trainer created by trainer_init() on the same GAN. */
void checkpoint_load_trainer(const char *path, Trainer *trainer);

/* Deletes all but the `keep` checkpoints with the highest steps in `dir`; warns on failure. */
void checkpoint_prune(const char *dir, int keep);

/* Returns the path of the checkpoint with the highest step in `dir` ("step_NNNNNNNN.ckpt"),
 * or NULL when there is none. */
char *checkpoint_find_latest(const char *dir);
