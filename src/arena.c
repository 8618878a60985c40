/* Bump allocator for per-step activations and gradients, over a chain of blocks. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { ARENA_ALIGN = 64 };

struct ArenaBlock {
    ArenaBlock *next;
    char *memory;
    size_t capacity;
};

static size_t round_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static ArenaBlock *new_block(size_t bytes)
{
    ArenaBlock *block = mg_malloc(sizeof *block);
    block->next = NULL;
    block->capacity = round_up(bytes);
    if (posix_memalign((void **)&block->memory, ARENA_ALIGN, block->capacity) != 0)
        mg_fatal("out of memory: failed to allocate %zu bytes (%.1f MiB) for activations", block->capacity,
                 (double)block->capacity / (1024.0 * 1024.0));
    return block;
}

void arena_init(Arena *arena, size_t initial_bytes)
{
    memset(arena, 0, sizeof *arena);
    arena->first = arena->current = new_block(initial_bytes);
    arena->capacity = arena->first->capacity;
}

void arena_free(Arena *arena)
{
    ArenaBlock *block = arena->first;
    while (block) {
        ArenaBlock *next = block->next;
        free(block->memory);
        free(block);
        block = next;
    }
    memset(arena, 0, sizeof *arena);
}

void *arena_alloc(Arena *arena, size_t bytes)
{
    size_t size = round_up(bytes);
    arena->step_bytes += size;
    if (arena->step_bytes > arena->peak_bytes) arena->peak_bytes = arena->step_bytes;

    /* the rest of the current block, else the next block that is large enough */
    while (arena->used + size > arena->current->capacity) {
        if (!arena->current->next) {
            /* blocks at least as large as the chain so far keep their number logarithmic */
            size_t bytes_new = size > arena->capacity ? size : arena->capacity;
            arena->current->next = new_block(bytes_new);
            arena->capacity += arena->current->next->capacity;
        }
        arena->current = arena->current->next;
        arena->used = 0;
    }
    void *p = arena->current->memory + arena->used;
    arena->used += size;
    return p;
}

float *arena_zeros(Arena *arena, size_t count)
{
    float *p = arena_alloc(arena, mg_mul_size(count, sizeof(float), "arena allocation"));
    memset(p, 0, count * sizeof(float));
    return p;
}

ArenaMark arena_mark(const Arena *arena)
{
    return (ArenaMark){.block = arena->current, .used = arena->used, .step_bytes = arena->step_bytes};
}

void arena_release(Arena *arena, ArenaMark mark)
{
    arena->current = mark.block;
    arena->used = mark.used;
    arena->step_bytes = mark.step_bytes;
}

bool arena_below_mark(const Arena *arena, ArenaMark mark, const void *p)
{
    const char *c = p;
    for (const ArenaBlock *block = arena->first; block; block = block->next) {
        size_t limit = block == mark.block ? mark.used : block->capacity;
        if (c >= block->memory && c < block->memory + limit) return true;
        if (block == mark.block) return false;
    }
    return false;
}

void arena_reset(Arena *arena)
{
    arena->current = arena->first;
    arena->used = 0;
    arena->step_bytes = 0;
}
