/* Bump allocator for per-step activations and gradients. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { ARENA_ALIGN = 64 };

struct ArenaBlock {
    ArenaBlock *next;
    char *memory;
};

static size_t round_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static char *aligned_block(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, ARENA_ALIGN, bytes ? bytes : ARENA_ALIGN) != 0)
        mg_fatal("out of memory: failed to allocate %zu bytes (%.1f MiB) for activations", bytes,
                 (double)bytes / (1024.0 * 1024.0));
    return p;
}

void arena_init(Arena *arena, size_t initial_bytes)
{
    memset(arena, 0, sizeof *arena);
    arena->capacity = round_up(initial_bytes);
    arena->base = aligned_block(arena->capacity);
}

static void free_overflow(Arena *arena)
{
    while (arena->overflow) {
        ArenaBlock *next = arena->overflow->next;
        free(arena->overflow->memory);
        free(arena->overflow);
        arena->overflow = next;
    }
}

void arena_free(Arena *arena)
{
    free_overflow(arena);
    free(arena->base);
    memset(arena, 0, sizeof *arena);
}

void *arena_alloc(Arena *arena, size_t bytes)
{
    size_t size = round_up(bytes);
    arena->step_bytes += size;
    if (arena->step_bytes > arena->peak_bytes) arena->peak_bytes = arena->step_bytes;
    if (arena->used + size <= arena->capacity) {
        void *p = arena->base + arena->used;
        arena->used += size;
        return p;
    }
    /* One block per overflowing request keeps the bookkeeping trivial; it happens only in
     * the first steps, until arena_reset() has grown the main block. */
    ArenaBlock *block = mg_malloc(sizeof *block);
    block->memory = aligned_block(size);
    block->next = arena->overflow;
    arena->overflow = block;
    return block->memory;
}

float *arena_zeros(Arena *arena, size_t count)
{
    float *p = arena_alloc(arena, mg_mul_size(count, sizeof(float), "arena allocation"));
    memset(p, 0, count * sizeof(float));
    return p;
}

ArenaMark arena_mark(const Arena *arena)
{
    return (ArenaMark){.used = arena->used, .overflow = arena->overflow, .step_bytes = arena->step_bytes};
}

void arena_release(Arena *arena, ArenaMark mark)
{
    while (arena->overflow && arena->overflow != mark.overflow) {
        ArenaBlock *next = arena->overflow->next;
        free(arena->overflow->memory);
        free(arena->overflow);
        arena->overflow = next;
    }
    arena->used = mark.used;
    arena->step_bytes = mark.step_bytes;
}

bool arena_below_mark(const Arena *arena, ArenaMark mark, const void *p)
{
    const char *c = p;
    return c >= arena->base && c < arena->base + mark.used;
}

void arena_reset(Arena *arena)
{
    if (arena->overflow) {
        free_overflow(arena);
        free(arena->base);
        arena->capacity = round_up(arena->peak_bytes);
        arena->base = aligned_block(arena->capacity);
    }
    arena->used = 0;
    arena->step_bytes = 0;
}
