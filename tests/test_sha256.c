/* SHA-256 against the FIPS 180-4 example messages. */
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "test.h"
#include "util.h"

static void hash_hex(const void *data, size_t size, char hex[SHA256_HEX_SIZE])
{
    Sha256 ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, data, size);
    sha256_final(&ctx, digest);
    sha256_to_hex(digest, hex);
}

TEST(sha256_standard_vectors)
{
    static const struct {
        const char *message;
        const char *hex;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
         "mnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) {
        char hex[SHA256_HEX_SIZE];
        hash_hex(cases[i].message, strlen(cases[i].message), hex);
        CHECK_MSG(strcmp(hex, cases[i].hex) == 0, "message %zu: %s, expected %s", i, hex, cases[i].hex);
    }
}

TEST(sha256_million_a)
{
    size_t size = 1000000;
    char *message = mg_malloc(size);
    memset(message, 'a', size);
    char hex[SHA256_HEX_SIZE];
    hash_hex(message, size, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    free(message);
}

/* Feeding the message in pieces of every size from 1 to 130 bytes gives the one-shot digest,
 * which covers every position of a piece boundary relative to the 64-byte blocks. */
TEST(sha256_incremental_updates)
{
    uint8_t message[1000];
    for (size_t i = 0; i < sizeof message; i++) message[i] = (uint8_t)(i * 7 + 3);
    char expected[SHA256_HEX_SIZE];
    hash_hex(message, sizeof message, expected);

    for (size_t piece = 1; piece <= 130; piece++) {
        Sha256 ctx;
        sha256_init(&ctx);
        for (size_t at = 0; at < sizeof message; at += piece) {
            size_t n = sizeof message - at < piece ? sizeof message - at : piece;
            sha256_update(&ctx, message + at, n);
        }
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_final(&ctx, digest);
        sha256_to_hex(digest, hex);
        CHECK_MSG(strcmp(hex, expected) == 0, "pieces of %zu bytes: %s, expected %s", piece, hex, expected);
    }
}

TEST(sha256_file_matches_memory)
{
    const char *dir = test_temp_dir();
    char *path = mg_format("%s/message.bin", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    uint8_t data[200000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i ^ (i >> 8));
    fwrite(data, 1, sizeof data, f);
    fclose(f);

    char expected[SHA256_HEX_SIZE], hex[SHA256_HEX_SIZE];
    hash_hex(data, sizeof data, expected);
    uint8_t digest[SHA256_DIGEST_SIZE];
    CHECK(sha256_file(path, digest));
    sha256_to_hex(digest, hex);
    CHECK(strcmp(hex, expected) == 0);

    char *missing = mg_format("%s/missing.bin", dir);
    CHECK(!sha256_file(missing, digest));
    free(missing);
    free(path);
}
