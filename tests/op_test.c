/* Leaf tensors and seeded backward passes for the op tests. */
#include "op_test.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A leaf and the buffers it owns. An op under test may point tensor.grad at arena memory
 * (a bug the tape tests look for), so leaf_free() frees the buffer it allocated, not
 * whatever tensor.grad points to by then. */
typedef struct Leaf {
    Tensor tensor;  /* first, so that a Tensor * of a leaf is also its Leaf * */
    float *owned_grad;
} Leaf;

Tensor *leaf_new(Shape shape, bool requires_grad)
{
    Leaf *leaf = mg_calloc(1, sizeof *leaf);
    Tensor *t = &leaf->tensor;
    t->shape = shape;
    t->numel = shape_numel(shape);
    t->data = mg_calloc(t->numel, sizeof(float));
    t->requires_grad = requires_grad;
    if (requires_grad) t->grad = leaf->owned_grad = mg_calloc(t->numel, sizeof(float));
    return t;
}

Tensor *leaf_from(Shape shape, const float *data, bool requires_grad)
{
    Tensor *t = leaf_new(shape, requires_grad);
    memcpy(t->data, data, t->numel * sizeof(float));
    return t;
}

void leaf_free(Tensor *t)
{
    if (!t) return;
    Leaf *leaf = (Leaf *)t;
    free(t->data);
    free(leaf->owned_grad);
    free(leaf);
}

void leaf_zero_grad(Tensor *t)
{
    if (t->grad) memset(t->grad, 0, t->numel * sizeof(float));
}

void backward_from(Tape *tape, Tensor *y, const float *dy)
{
    float *grad = tensor_grad(tape, y);
    for (size_t i = 0; i < y->numel; i++) grad[i] += dy[i];

    bool previous = tape_set_grad_enabled(tape, false);
    for (size_t i = tape->count; i-- > 0;) {
        const TapeEntry *e = &tape->entries[i];
        if (e->out->grad) e->backward(tape, e);
    }
    tape_set_grad_enabled(tape, previous);
}
