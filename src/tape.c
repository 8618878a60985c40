/* The autograd tape: recording, backward pass and per-step memory. */
#include "tape.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Size of the arena's first block; the arena adds blocks as a step needs them. */
enum { TAPE_INITIAL_ARENA_BYTES = 64 << 20 };

void tape_init(Tape *tape)
{
    memset(tape, 0, sizeof *tape);
    arena_init(&tape->arena, TAPE_INITIAL_ARENA_BYTES);
    tape->grad_enabled = true;
}

void tape_free(Tape *tape)
{
    arena_free(&tape->arena);
    free(tape->free_gradients);
    free(tape->entries);
    free(tape->scratch);
    memset(tape, 0, sizeof *tape);
}

void tape_reset(Tape *tape)
{
    tape->count = 0;
    tape->free_count = 0;
    arena_reset(&tape->arena);
}

bool tape_set_grad_enabled(Tape *tape, bool enabled)
{
    bool previous = tape->grad_enabled;
    tape->grad_enabled = enabled;
    return previous;
}

Tensor *tensor_empty(Tape *tape, Shape shape)
{
    Tensor *t = arena_alloc(&tape->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    t->shape = shape;
    t->numel = shape_numel(shape);
    t->data = arena_alloc(&tape->arena, mg_mul_size(t->numel, sizeof(float), "tensor"));
    return t;
}

Tensor *tensor_zeros(Tape *tape, Shape shape)
{
    Tensor *t = tensor_empty(tape, shape);
    memset(t->data, 0, t->numel * sizeof(float));
    return t;
}

Tensor *tensor_reshape(Tape *tape, Tensor *x, Shape shape)
{
    if (shape_numel(shape) != x->numel) {
        char a[64], b[64];
        mg_panic("reshape: cannot view %s as %s", shape_format(x->shape, a), shape_format(shape, b));
    }
    Tensor *t = arena_alloc(&tape->arena, sizeof *t);
    *t = *x;
    t->shape = shape;
    t->name = NULL;
    t->requires_grad = x->requires_grad && tape->grad_enabled;
    if (t->requires_grad) t->grad = tensor_grad(tape, x);
    return t;
}

Tensor *tape_keep_only(Tape *tape, ArenaMark mark, size_t tape_count, Tensor *t)
{
    if (tape->count != tape_count) mg_panic("tape_keep_only: ops were recorded since the mark");
    Tensor copy = *t;
    Arena *arena = &tape->arena;
    float *data = copy.data;
    arena_release(arena, mark);
    if (!arena_below_mark(arena, mark, copy.data)) {
        /* The data lies above the mark, where the release left it readable. Its new place is
         * taken first and the struct after it, so nothing is written over the data before
         * memmove, which handles any overlap, has moved it. */
        data = arena_alloc(arena, copy.numel * sizeof(float));
        if (data != copy.data) memmove(data, copy.data, copy.numel * sizeof(float));
    }
    Tensor *kept = arena_alloc(arena, sizeof *kept);
    *kept = copy;
    kept->data = data;
    kept->grad = NULL;
    kept->requires_grad = false;
    return kept;
}

float *tensor_grad(Tape *tape, Tensor *x)
{
    if (x->grad) return x->grad;
    for (size_t i = 0; i < tape->free_count; i++) {
        if (tape->free_gradients[i].numel == x->numel) {
            x->grad = tape->free_gradients[i].data;
            tape->free_gradients[i] = tape->free_gradients[--tape->free_count];
            memset(x->grad, 0, x->numel * sizeof(float));
            return x->grad;
        }
    }
    x->grad = arena_zeros(&tape->arena, x->numel);
    return x->grad;
}

/* Puts an activation's gradient buffer on the free list. */
static void release_gradient(Tape *tape, Tensor *t)
{
    if (!t->grad || t->name) return; /* parameters keep theirs */
    if (tape->free_count == tape->free_capacity) {
        tape->free_capacity = tape->free_capacity ? 2 * tape->free_capacity : 64;
        tape->free_gradients = mg_realloc(tape->free_gradients, tape->free_capacity * sizeof *tape->free_gradients);
    }
    tape->free_gradients[tape->free_count++] = (FreeGradient){t->grad, t->numel};
    t->grad = NULL;
}

bool tape_wants_grad(const Tape *tape, const Tensor *a, const Tensor *b, const Tensor *c,
                     const Tensor *d)
{
    if (!tape->grad_enabled) return false;
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad) ||
           (d && d->requires_grad);
}

TapeEntry *tape_record(Tape *tape, const char *op, BackwardFn backward, Tensor *out, Tensor *a,
                       Tensor *b, Tensor *c, Tensor *d)
{
    out->requires_grad = tape_wants_grad(tape, a, b, c, d);
    if (!out->requires_grad) return NULL;
    if (tape->count == tape->capacity) {
        tape->capacity = tape->capacity ? 2 * tape->capacity : 256;
        tape->entries = mg_realloc(tape->entries, tape->capacity * sizeof *tape->entries);
    }
    TapeEntry *e = &tape->entries[tape->count++];
    memset(e, 0, sizeof *e);
    e->op = op;
    e->backward = backward;
    e->out = out;
    e->in[0] = a;
    e->in[1] = b;
    e->in[2] = c;
    e->in[3] = d;
    return e;
}

void tape_backward(Tape *tape, Tensor *loss)
{
    if (loss->numel != 1) shape_panic("backward", "the loss must be a scalar", loss, NULL);
    if (!loss->requires_grad) mg_panic("backward: the loss does not depend on any parameter");
    tensor_grad(tape, loss)[0] += 1.0f;
    bool previous = tape_set_grad_enabled(tape, false);
    for (size_t i = tape->count; i-- > 0;) {
        const TapeEntry *e = &tape->entries[i];
        if (!e->out->grad) continue;
        e->backward(tape, e);
        release_gradient(tape, e->out);
    }
    tape_set_grad_enabled(tape, previous);
}

float *tape_scratch(Tape *tape, size_t count)
{
    if (count > tape->scratch_floats) {
        free(tape->scratch);
        tape->scratch = NULL;
        if (posix_memalign((void **)&tape->scratch, 64, mg_mul_size(count, sizeof(float), "scratch")) != 0)
            mg_fatal("out of memory: failed to allocate %zu bytes of scratch space", count * sizeof(float));
        tape->scratch_floats = count;
    }
    return tape->scratch;
}
