/* A bump allocator for the activations and gradients of one training step.
 *
 * Every allocation is 64-byte aligned and lives until arena_reset(). When a step needs more
 * than the current block, the arena takes extra blocks from malloc for the rest of that step;
 * the next arena_reset() frees them and grows the main block to the step's peak, so from the
 * second identical step on an arena does no malloc at all.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;

typedef struct Arena {
    char *base;            /* main block */
    size_t capacity;       /* bytes in the main block */
    size_t used;           /* bytes handed out from the main block since the last reset */
    ArenaBlock *overflow;  /* extra blocks taken during this step, newest first */
    size_t step_bytes;     /* bytes handed out since the last reset, main block and overflow */
    size_t peak_bytes;     /* largest step_bytes seen */
} Arena;

void arena_init(Arena *arena, size_t initial_bytes);
void arena_free(Arena *arena);
/* Returns `bytes` bytes of uninitialised memory, 64-byte aligned. */
void *arena_alloc(Arena *arena, size_t bytes);
/* Returns `count` zeroed floats. */
float *arena_zeros(Arena *arena, size_t count);
/* A position in an arena, to release everything allocated after it. */
typedef struct ArenaMark {
    size_t used;
    ArenaBlock *overflow;
    size_t step_bytes;
} ArenaMark;

ArenaMark arena_mark(const Arena *arena);
/* Releases everything allocated since `mark` (which must not be older than the last reset). */
void arena_release(Arena *arena, ArenaMark mark);
/* True when p points into the arena's main block below `mark`. */
bool arena_below_mark(const Arena *arena, ArenaMark mark, const void *p);

/* Releases everything allocated since the last reset. */
void arena_reset(Arena *arena);
