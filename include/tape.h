/* Reverse-mode automatic differentiation on a tape.
 *
 * Each op computes its output eagerly and, when any input requires a gradient and gradients
 * are enabled, appends a TapeEntry holding its inputs, output and whatever it saved for its
 * backward function. tape_backward() walks the entries in reverse order; each backward
 * function reads out->grad and adds its contribution to the gradients of its inputs.
 * Gradients always accumulate: parameter gradients persist across steps until the optimizer
 * clears them, activation gradients come from the arena and start at zero.
 *
 * All activations, activation gradients and saved values live in the tape's arena and are
 * released together by tape_reset() at the end of a step.
 *
 * Second-order gradients (WGAN-GP, R1) are not implemented. The design leaves room for them:
 * gradients are ordinary tensors in the arena, so a later "create graph" mode can let backward
 * functions record the ops they perform instead of running raw kernels.
 */
#pragma once

#include "arena.h"
#include "tensor.h"

typedef struct Tape Tape;
typedef struct TapeEntry TapeEntry;
typedef void (*BackwardFn)(Tape *tape, const TapeEntry *entry);

enum { TAPE_MAX_INPUTS = 4 };

struct TapeEntry {
    BackwardFn backward;
    const char *op;                   /* op name, for messages */
    Tensor *out;
    Tensor *in[TAPE_MAX_INPUTS];      /* unused slots are NULL */
    void *saved;                      /* op-specific values kept for backward (arena memory) */
    int iarg[8];                      /* op-specific integer arguments */
    float farg[4];                    /* op-specific float arguments */
};

/* An activation gradient buffer whose tensor's backward has run, free for reuse. */
typedef struct FreeGradient {
    float *data;
    size_t numel;
} FreeGradient;

struct Tape {
    Arena arena;
    TapeEntry *entries;
    size_t count, capacity;
    bool grad_enabled;
    float *scratch;                   /* per-op workspace, see tape_scratch() */
    size_t scratch_floats;
    FreeGradient *free_gradients;     /* see tape_backward(); emptied by tape_reset() */
    size_t free_count, free_capacity;
};

void tape_init(Tape *tape);
void tape_free(Tape *tape);
/* Drops every entry and releases the arena: all activations of the step become invalid. */
void tape_reset(Tape *tape);
/* Enables or disables recording; returns the previous setting. */
bool tape_set_grad_enabled(Tape *tape, bool enabled);

/* Allocates an uninitialised activation tensor from the arena. */
Tensor *tensor_empty(Tape *tape, Shape shape);
Tensor *tensor_zeros(Tape *tape, Shape shape);
/* Returns a tensor of another shape with the same elements. It shares x's data and, when x
 * requires a gradient, x's gradient buffer, so it needs no tape entry. */
Tensor *tensor_reshape(Tape *tape, Tensor *x, Shape shape);
/* Releases every arena allocation made since `mark` except the tensor t, which moves to the
 * mark; returns its new location. For forward passes without gradients, which need only
 * their last output: calling it after each layer keeps memory at one layer's worth. Aborts
 * when anything was recorded on the tape since the mark. */
Tensor *tape_keep_only(Tape *tape, ArenaMark mark, size_t tape_count, Tensor *t);

/* Returns x's gradient buffer, allocating it zeroed from the arena on first use. */
float *tensor_grad(Tape *tape, Tensor *x);

/* True when an op on these inputs must be recorded (NULL inputs are ignored). */
bool tape_wants_grad(const Tape *tape, const Tensor *a, const Tensor *b, const Tensor *c,
                     const Tensor *d);
/* Records an op when tape_wants_grad() holds; returns the entry, or NULL when nothing was
 * recorded. Sets out->requires_grad accordingly. */
TapeEntry *tape_record(Tape *tape, const char *op, BackwardFn backward, Tensor *out, Tensor *a,
                       Tensor *b, Tensor *c, Tensor *d);

/* Runs the backward pass from a scalar `loss` (numel 1), seeding its gradient with 1. Once an
 * entry's backward has run, no later step reads its output's gradient, so that buffer goes to
 * a free list and later gradients of the same size reuse it: a step holds only the
 * activation gradients still needed, not all of them. Parameter gradients are kept. */
void tape_backward(Tape *tape, Tensor *loss);

/* Returns a workspace of at least `count` floats, valid until the next tape_scratch() call.
 * For temporary buffers inside one op (im2col columns and the like). */
float *tape_scratch(Tape *tape, size_t count);
