/* Reader of the reference fixtures that tests/gen_op_fixtures.py writes from PyTorch.
 *
 * File format, version 1. Every integer is an unsigned 32-bit little-endian value and every
 * float an IEEE-754 float32 stored little-endian:
 *
 *   magic          4 bytes "MGFX"
 *   version        u32, FIXTURE_VERSION
 *   tensor count   u32
 *   then, once per tensor:
 *     name length  u32, 1 to FIXTURE_MAX_NAME_BYTES
 *     name         that many bytes of UTF-8, no terminating NUL, unique within the file
 *     ndim         u32, 0 (a scalar) to TENSOR_MAX_DIMS
 *     dims         ndim u32 values, each at least 1
 *     data         numel float32 values in row-major order
 *
 * The file ends right after the last tensor. Names are "<op>/<case>/<tensor>"; the generator
 * script documents what each tensor of a case holds.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

#define FIXTURE_MAGIC "MGFX"
enum { FIXTURE_VERSION = 1, FIXTURE_MAX_NAME_BYTES = 255 };

typedef struct FixtureTensor {
    char *name;     /* NUL-terminated */
    Shape shape;
    size_t numel;
    float *data;    /* numel floats */
} FixtureTensor;

typedef struct Fixture {
    char *path;
    FixtureTensor *tensors;  /* in file order */
    size_t count;
} Fixture;

/* Reads and validates a whole fixture file. On failure returns false, leaves *fixture empty
 * and writes a message naming the file and the problem (for example a wrong magic number, an
 * unsupported version or a file cut short) into error. */
bool fixture_load(Fixture *fixture, const char *path, char *error, size_t error_size);
void fixture_free(Fixture *fixture);
/* Returns the tensor called `name`, or NULL when the file has none. */
const FixtureTensor *fixture_find(const Fixture *fixture, const char *name);
