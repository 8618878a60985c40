/* A bump allocator for the activations and gradients of one training step.
 *
 * The arena is a chain of blocks that it keeps across resets. Allocations fill the blocks in
 * order, each 64-byte aligned; a request that does not fit in the rest of a block moves on
 * to the next, and a new block is added at the end of the chain only when none is left. So
 * from the second identical step on, an arena does no malloc at all, and its memory is the
 * largest step's, never the sum of two different steps.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;

typedef struct Arena {
    ArenaBlock *first;     /* the chain of blocks */
    ArenaBlock *current;   /* the block being filled */
    size_t used;           /* bytes handed out from `current` */
    size_t step_bytes;     /* bytes handed out since the last reset, over all blocks */
    size_t peak_bytes;     /* largest step_bytes seen */
    size_t capacity;       /* bytes in all blocks */
} Arena;

void arena_init(Arena *arena, size_t initial_bytes);
void arena_free(Arena *arena);
/* Returns `bytes` bytes of uninitialised memory, 64-byte aligned. */
void *arena_alloc(Arena *arena, size_t bytes);
/* Returns `count` zeroed floats. */
float *arena_zeros(Arena *arena, size_t count);

/* A position in an arena, to release everything allocated after it. */
typedef struct ArenaMark {
    ArenaBlock *block;
    size_t used;
    size_t step_bytes;
} ArenaMark;

ArenaMark arena_mark(const Arena *arena);
/* Releases everything allocated since `mark` (which must not be older than the last reset).
 * The memory stays mapped, so data above the mark can still be read until it is reused. */
void arena_release(Arena *arena, ArenaMark mark);
/* True when p points into memory that was allocated before `mark`. */
bool arena_below_mark(const Arena *arena, ArenaMark mark, const void *p);

/* Releases everything allocated since the last reset. */
void arena_reset(Arena *arena);
