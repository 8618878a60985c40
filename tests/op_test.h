/* Helpers shared by the op tests: leaf tensors that live outside the tape's arena, a
 * backward pass seeded with an arbitrary upstream gradient, and running code in a child
 * process. */
#pragma once

#include <stdbool.h>

#include "tape.h"

/* Returns a malloc'd tensor with zeroed data. When requires_grad is set it also gets a zeroed
 * gradient buffer of its own, as a model parameter has, so the gradient survives
 * tape_reset(). Free it with leaf_free(). */
Tensor *leaf_new(Shape shape, bool requires_grad);
/* leaf_new() with the data copied from `data` (numel floats). */
Tensor *leaf_from(Shape shape, const float *data, bool requires_grad);
void leaf_free(Tensor *t);
void leaf_zero_grad(Tensor *t);

/* Runs the backward pass of everything recorded on the tape with `dy` (y->numel floats) as
 * the gradient of y. Like tape_backward(), it walks the entries newest first with recording
 * disabled and skips entries whose output received no gradient. The op tests use it instead
 * of building sum(y ⊙ dy) from op_mul and op_sum, so that a bug in those two ops cannot
 * make every other op's test fail. */
void backward_from(Tape *tape, Tensor *y, const float *dy);

/* Runs fn(context) in a forked child process and returns its wait status (see waitpid), with
 * what it wrote to stderr in *stderr_text (malloc'd). For code that is expected to abort, or
 * that a sanitizer may stop. The child runs single-threaded, because OpenMP loops can deadlock
 * in a forked child of a multithreaded process, and an alarm ends it after ten seconds. It
 * exits with status 0 when fn returns. */
int run_in_child(void (*fn)(void *), void *context, char **stderr_text);
