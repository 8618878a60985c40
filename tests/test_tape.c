/* The autograd tape: gradient accumulation, no-grad mode, frozen parameters, reshaped views,
 * arena reuse across steps, and forward-only ops rejecting inputs that need a gradient.
 *
 * The ops used here (scale, add, mul, sum, linear) mostly multiply by powers of two or add
 * equal values, so most expected gradients are exact in float32 and are compared exactly.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "arena.h"
#include "op_test.h"  /* leaf tensors, backward_from, run_in_child */
#include "ops.h"
#include "rng.h"
#include "tape.h"
#include "test.h"
#include "util.h"

static Tensor *random_leaf(Shape shape, bool requires_grad, uint32_t stream)
{
    Tensor *t = leaf_new(shape, requires_grad);
    Rng rng = rng_make(7, stream);
    rng_fill_normal(&rng, t->data, t->numel, 0.0f, 1.0f);
    return t;
}

static bool all_zero(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != 0.0f) return false;
    }
    return true;
}

TEST(tape_backward_seeds_scalar_loss)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(3, 4), true, 1), *r = random_leaf(shape2(3, 4), false, 2);

    /* loss = Σ x ⊙ r, so dloss/dx = r exactly */
    Tensor *loss = op_sum(&tape, op_mul(&tape, x, r), -1);
    CHECK_INT_EQ(loss->numel, 1);
    tape_backward(&tape, loss);
    CHECK(memcmp(x->grad, r->data, x->numel * sizeof(float)) == 0);
    CHECK_MSG(r->grad == NULL, "a constant input received a gradient buffer");

    leaf_free(x);
    leaf_free(r);
    tape_free(&tape);
}

TEST(tape_accumulates_two_uses)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(2, 3), true, 3);
    float dy[6];
    Rng rng = rng_make(7, 4);
    rng_fill_normal(&rng, dy, 6, 0.0f, 1.0f);

    /* y = 2x + 4x: both branches add into x->grad, 2·dy + 4·dy = 6·dy with one rounding */
    Tensor *y = op_add(&tape, op_scale(&tape, x, 2.0f), op_scale(&tape, x, 4.0f));
    backward_from(&tape, y, dy);
    for (int i = 0; i < 6; i++) CHECK_NEAR(x->grad[i], 6.0f * dy[i], 0.0);

    leaf_free(x);
    tape_free(&tape);
}

TEST(tape_accumulates_same_tensor_twice_in_one_op)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape1(7), true, 5);
    float dy[7];
    Rng rng = rng_make(7, 6);
    rng_fill_normal(&rng, dy, 7, 0.0f, 1.0f);

    /* y = x ⊙ x: d/dx = 2·x·dy, from two contributions of x·dy each */
    Tensor *y = op_mul(&tape, x, x);
    backward_from(&tape, y, dy);
    for (int i = 0; i < 7; i++) CHECK_NEAR(x->grad[i], 2.0f * (x->data[i] * dy[i]), 0.0);

    leaf_free(x);
    tape_free(&tape);
}

TEST(tape_accumulates_across_steps)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(4, 5), false, 7), *w = random_leaf(shape2(3, 5), true, 8);
    float dy[12];
    Rng rng = rng_make(7, 9);
    rng_fill_normal(&rng, dy, 12, 0.0f, 1.0f);

    backward_from(&tape, op_linear(&tape, x, w, NULL), dy);
    float first[15];
    memcpy(first, w->grad, sizeof first);
    CHECK(!all_zero(first, 15));
    tape_reset(&tape);

    /* parameter gradients persist until cleared: a second identical step doubles them, up to
     * the rounding of an sgemm that adds into the existing gradient */
    backward_from(&tape, op_linear(&tape, x, w, NULL), dy);
    for (int i = 0; i < 15; i++) CHECK_NEAR(w->grad[i], 2.0f * first[i], 1e-6 * fabsf(first[i]));

    leaf_free(x);
    leaf_free(w);
    tape_free(&tape);
}

TEST(tape_no_grad_records_nothing)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(4, 5), true, 10), *w = random_leaf(shape2(3, 5), true, 11);
    Tensor *b = random_leaf(shape1(3), true, 12);

    bool previous = tape_set_grad_enabled(&tape, false);
    CHECK(previous);
    Tensor *y = op_gelu(&tape, op_linear(&tape, x, w, b));
    Tensor *loss = op_sum(&tape, op_scale(&tape, y, 0.5f), -1);
    CHECK_INT_EQ(tape.count, 0);
    CHECK(!y->requires_grad);
    CHECK(!loss->requires_grad);
    Tensor *view = tensor_reshape(&tape, x, shape2(5, 4));
    CHECK_MSG(!view->requires_grad, "a view made with gradients disabled requires a gradient");

    CHECK(!tape_set_grad_enabled(&tape, true));
    Tensor *recorded = op_linear(&tape, x, w, b);
    CHECK(recorded->requires_grad);
    CHECK_INT_EQ(tape.count, 1);

    leaf_free(x);
    leaf_free(w);
    leaf_free(b);
    tape_free(&tape);
}

TEST(tape_frozen_parameter_gets_no_gradient)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(4, 5), true, 13), *w = random_leaf(shape2(3, 5), false, 14);
    Tensor *b = random_leaf(shape1(3), true, 15);
    float dy[12];
    Rng rng = rng_make(7, 16);
    rng_fill_normal(&rng, dy, 12, 0.0f, 1.0f);

    Tensor *y = op_linear(&tape, x, w, b);
    CHECK(y->requires_grad);
    backward_from(&tape, y, dy);
    CHECK_MSG(w->grad == NULL, "the frozen weight received a gradient buffer");
    CHECK_MSG(!all_zero(x->grad, x->numel), "the input's gradient is all zeros");
    CHECK_MSG(!all_zero(b->grad, b->numel), "the bias gradient is all zeros");

    /* with the input constant as well, only the bias is left on the tape */
    tape_reset(&tape);
    x->requires_grad = false;
    leaf_zero_grad(x);
    backward_from(&tape, op_linear(&tape, x, w, b), dy);
    CHECK(all_zero(x->grad, x->numel));
    CHECK(w->grad == NULL);

    leaf_free(x);
    leaf_free(w);
    leaf_free(b);
    tape_free(&tape);
}

TEST(tape_frozen_inputs_record_nothing)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(4, 5), false, 17), *w = random_leaf(shape2(3, 5), false, 18);

    Tensor *y = op_tanh(&tape, op_linear(&tape, x, w, NULL));
    CHECK(!y->requires_grad);
    CHECK_INT_EQ(tape.count, 0);

    leaf_free(x);
    leaf_free(w);
    tape_free(&tape);
}

TEST(tape_reshape_shares_gradient)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape2(2, 6), true, 19);
    float dy[12];
    Rng rng = rng_make(7, 20);
    rng_fill_normal(&rng, dy, 12, 0.0f, 1.0f);

    /* a view of a leaf: same data, same gradient buffer */
    Tensor *view = tensor_reshape(&tape, x, shape3(3, 2, 2));
    CHECK(view->data == x->data);
    CHECK(view->grad == x->grad);
    CHECK(view->requires_grad);
    CHECK_INT_EQ(tape.count, 0);
    backward_from(&tape, op_scale(&tape, view, 2.0f), dy);
    for (int i = 0; i < 12; i++) CHECK_NEAR(x->grad[i], 2.0f * dy[i], 0.0);

    /* a view of an activation: its gradient flows back through the op that made it */
    tape_reset(&tape);
    leaf_zero_grad(x);
    Tensor *activation = op_scale(&tape, x, 4.0f);
    Tensor *flat = tensor_reshape(&tape, activation, shape1(12));
    CHECK(flat->grad != NULL);
    CHECK(flat->grad == activation->grad);
    backward_from(&tape, op_scale(&tape, flat, 0.5f), dy);
    for (int i = 0; i < 12; i++) CHECK_NEAR(x->grad[i], 2.0f * dy[i], 0.0);

    leaf_free(x);
    tape_free(&tape);
}

/* One training-like step of fixed shapes; returns the arena bytes handed out. */
static size_t arena_step(Tape *tape, Tensor *x, Tensor *w, Tensor *b, const float *dy)
{
    tape_reset(tape);
    Tensor *h = op_gelu(tape, op_linear(tape, x, w, b));
    Tensor *y = op_linear(tape, h, w, b);
    backward_from(tape, op_scale(tape, op_add(tape, y, h), 0.5f), dy);
    return tape->arena.step_bytes;
}

TEST(tape_arena_reuse_does_not_grow)
{
    Tape tape;
    tape_init(&tape);
    /* a small first block, so that the first step has to add blocks */
    arena_free(&tape.arena);
    arena_init(&tape.arena, 1024);

    Tensor *x = random_leaf(shape3(4, 33, 16), true, 21), *w = random_leaf(shape2(16, 16), true, 22);
    Tensor *b = random_leaf(shape1(16), true, 23);
    float *dy = mg_malloc(4 * 33 * 16 * sizeof(float));
    Rng rng = rng_make(7, 24);
    rng_fill_normal(&rng, dy, 4 * 33 * 16, 0.0f, 1.0f);

    size_t first_bytes = arena_step(&tape, x, w, b, dy);
    CHECK_MSG(tape.arena.capacity > 1024, "the first step fit the 1 KiB block; the test needs a bigger step");
    tape_reset(&tape);
    CHECK_INT_EQ(tape.count, 0);
    size_t capacity = tape.arena.capacity, peak = tape.arena.peak_bytes;
    CHECK(capacity >= first_bytes);

    for (int step = 2; step <= 3; step++) {
        size_t bytes = arena_step(&tape, x, w, b, dy);
        CHECK_INT_EQ(bytes, first_bytes);
        tape_reset(&tape);
        CHECK_INT_EQ(tape.arena.capacity, capacity);
        CHECK_INT_EQ(tape.arena.peak_bytes, peak);
    }

    leaf_free(x);
    leaf_free(w);
    leaf_free(b);
    free(dy);
    tape_free(&tape);
}

/* A forward-only op called on an input that requires a gradient, with gradients enabled. */
typedef struct ForwardOnlyCall {
    const char *op;
    Tape *tape;
    Tensor *x;
} ForwardOnlyCall;

static void call_forward_only(void *context)
{
    const ForwardOnlyCall *call = context;
    if (strcmp(call->op, "max_pool2d") == 0)
        op_max_pool2d(call->tape, call->x, 3, 2, 1);
    else
        op_resize_bilinear(call->tape, call->x, 9, 7);
}

/* Runs fn(context) in a child process; returns true when it aborted, with its stderr in
 * `message` (malloc'd). */
static bool aborts_in_child(void (*fn)(void *), void *context, char **message)
{
    int status = run_in_child(fn, context, message);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST(tape_forward_only_ops_reject_gradients)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = random_leaf(shape4(1, 2, 5, 4), true, 25);
    static const char *ops[] = {"max_pool2d", "resize_bilinear"};

    for (size_t i = 0; i < MG_ARRAY_LEN(ops); i++) {
        ForwardOnlyCall call = {ops[i], &tape, x};
        char *message = NULL;
        CHECK_MSG(aborts_in_child(call_forward_only, &call, &message),
                  "%s did not abort on an input that requires a gradient", ops[i]);
        CHECK_STR_CONTAINS(message, ops[i]);
        free(message);

        /* with gradients disabled the same call is fine and records nothing */
        tape_set_grad_enabled(&tape, false);
        call_forward_only(&call);
        CHECK_INT_EQ(tape.count, 0);
        tape_set_grad_enabled(&tape, true);
        tape_reset(&tape);
    }

    leaf_free(x);
    tape_free(&tape);
}

/* One layer of a forward pass without gradients: (B, 16) -> (B, 16). */
static Tensor *no_grad_layer(Tape *tape, Tensor *x, Tensor *w, Tensor *b)
{
    return op_gelu(tape, op_linear(tape, x, w, b));
}

/* Runs `layers` layers, keeping only the last output after each one when `keep_only` is
 * set. Returns the output, and the arena bytes of the step in *step_bytes. */
static Tensor *no_grad_chain(Tape *tape, Tensor *x, Tensor *w, Tensor *b, int layers, bool keep_only,
                             size_t *step_bytes)
{
    ArenaMark mark = arena_mark(&tape->arena);
    for (int i = 0; i < layers; i++) {
        x = no_grad_layer(tape, x, w, b);
        if (keep_only) x = tape_keep_only(tape, mark, tape->count, x);
    }
    *step_bytes = tape->arena.step_bytes;
    return x;
}

/* Checks tape_keep_only() on an arena whose main block holds a step, and on one so small that
 * every allocation overflows into a block of its own. */
static void check_keep_only(size_t initial_bytes)
{
    Tape tape, reference;
    tape_init(&tape);
    tape_init(&reference);
    arena_free(&tape.arena);
    arena_init(&tape.arena, initial_bytes);
    tape_set_grad_enabled(&tape, false);
    tape_set_grad_enabled(&reference, false);
    Tensor *x = random_leaf(shape2(8, 16), false, 26), *w = random_leaf(shape2(16, 16), false, 27);
    Tensor *b = random_leaf(shape1(16), false, 28);

    /* the same values as without tape_keep_only(), in memory that does not grow with depth */
    size_t bytes_one, bytes_five, bytes_reference;
    Tensor *expected = no_grad_chain(&reference, x, w, b, 5, false, &bytes_reference);
    no_grad_chain(&tape, x, w, b, 1, true, &bytes_one);
    tape_reset(&tape);
    Tensor *kept = no_grad_chain(&tape, x, w, b, 5, true, &bytes_five);
    CHECK(shape_equal(kept->shape, expected->shape));
    CHECK(memcmp(kept->data, expected->data, expected->numel * sizeof(float)) == 0);
    CHECK(!kept->requires_grad);
    CHECK_INT_EQ(bytes_five, bytes_one);
    CHECK(bytes_five < bytes_reference);

    leaf_free(x);
    leaf_free(w);
    leaf_free(b);
    tape_free(&tape);
    tape_free(&reference);
}

TEST(tape_keep_only_main_block)
{
    check_keep_only(1 << 20);
}

TEST(tape_keep_only_overflow_blocks)
{
    check_keep_only(64);
}

TEST(tape_keep_only_view_of_older_memory)
{
    Tape tape;
    tape_init(&tape);
    tape_set_grad_enabled(&tape, false);
    Tensor *older = tensor_zeros(&tape, shape2(4, 6));
    for (size_t i = 0; i < older->numel; i++) older->data[i] = (float)i;

    /* a view made after the mark of data from before it: only the tensor struct moves */
    ArenaMark mark = arena_mark(&tape.arena);
    Tensor *view = tensor_reshape(&tape, older, shape3(2, 3, 4));
    op_scale(&tape, older, 2.0f);
    Tensor *kept = tape_keep_only(&tape, mark, tape.count, view);
    CHECK(kept->data == older->data);
    CHECK(shape_equal(kept->shape, shape3(2, 3, 4)));
    CHECK_NEAR(kept->data[23], 23.0f, 0.0);

    tape_free(&tape);
}

/* tape_keep_only() after an op was recorded: must abort. */
static void keep_only_after_recording(void *context)
{
    Tape *tape = context;
    Tensor *x = random_leaf(shape2(2, 3), true, 29);
    ArenaMark mark = arena_mark(&tape->arena);
    size_t count = tape->count;
    Tensor *y = op_scale(tape, x, 2.0f);
    tape_keep_only(tape, mark, count, y);
}

TEST(tape_keep_only_rejects_recorded_ops)
{
    Tape tape;
    tape_init(&tape);
    char *message = NULL;
    CHECK_MSG(aborts_in_child(keep_only_after_recording, &tape, &message),
              "tape_keep_only() did not abort after an op was recorded since the mark");
    CHECK_STR_CONTAINS(message, "tape_keep_only");
    free(message);
    tape_free(&tape);
}
