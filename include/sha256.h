/* SHA-256 (FIPS 180-4), used to identify the Inception weights file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { SHA256_DIGEST_SIZE = 32, SHA256_HEX_SIZE = 65 /* 64 hex digits and the NUL */ };

typedef struct Sha256 {
    uint32_t state[8];
    uint64_t total_bytes;  /* bytes passed to sha256_update so far */
    uint8_t block[64];     /* bytes of the current, incomplete block */
    size_t block_used;
} Sha256;

void sha256_init(Sha256 *ctx);
void sha256_update(Sha256 *ctx, const void *data, size_t size);
/* Pads the message and writes the digest. The context must be initialised again before reuse. */
void sha256_final(Sha256 *ctx, uint8_t digest[SHA256_DIGEST_SIZE]);
/* Writes the digest as 64 lowercase hex digits and a NUL. */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char hex[SHA256_HEX_SIZE]);
/* Hashes a whole file. Returns false and sets errno when it cannot be opened or read. */
bool sha256_file(const char *path, uint8_t digest[SHA256_DIGEST_SIZE]);
