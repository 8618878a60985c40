/* NaN inputs propagate through the ops as they do in PyTorch.
 *
 * Training stops with a message when the loss becomes NaN or infinite, so a NaN produced
 * anywhere in a network has to reach the loss. The expected behaviour is PyTorch 1.13's on
 * CPU, checked with Debian's python3-torch. relu, leaky_relu, gelu, tanh and sigmoid return
 * NaN for a NaN input. Attention, layer norm, max and average pooling return NaN for every
 * output that depends on a NaN input. The BCE and hinge losses are NaN when a logit is,
 * because relu(1 - NaN) is NaN in PyTorch.
 *
 * Each check runs in a child process (see run_in_child), so that an undefined-behaviour
 * report from the sanitizer build fails one test instead of stopping the runner. The child
 * prints one line per violation to stderr and exits with the number of violations.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "op_test.h"  /* leaf tensors, backward_from, run_in_child */
#include "ops.h"
#include "test.h"

static int violations;

/* Records a violation unless values[i] is NaN exactly for the indices in [nan_from, nan_to). */
static void expect_nan_range(const char *what, const float *values, size_t n, size_t nan_from, size_t nan_to)
{
    for (size_t i = 0; i < n; i++) {
        bool should_be_nan = i >= nan_from && i < nan_to;
        if (should_be_nan && !isnan(values[i])) {
            fprintf(stderr, "%s[%zu] = %g, expected NaN.\n", what, i, values[i]);
            violations++;
        } else if (!should_be_nan && !isfinite(values[i])) {
            fprintf(stderr, "%s[%zu] = %g, expected a finite value.\n", what, i, values[i]);
            violations++;
        }
    }
}

/* Ends the child with the number of violations. _exit skips the runner's atexit handlers,
 * one of which deletes the temporary directory that the parent still uses. */
static void finish_child(void)
{
    fflush(stderr);
    _exit(violations < 100 ? violations : 100);
}

/* Runs `check` in a child process and fails the test with the child's report, on one line.
 * A nonzero exit status is the number of violations, or 1 from a sanitizer. */
static void run_nan_check(const char *name, void (*check)(void *))
{
    char *report = NULL;
    int status = run_in_child(check, NULL, &report);
    for (char *p = report; *p; p++) {
        if (*p == '\n') *p = ' ';
    }
    if (WIFSIGNALED(status))
        test_fail(__FILE__, __LINE__, "%s: the child process died from signal %d: %.900s", name, WTERMSIG(status), report);
    else if (WEXITSTATUS(status) != 0)
        test_fail(__FILE__, __LINE__, "%s: the child process exited with status %d: %.900s", name, WEXITSTATUS(status),
                  report);
    free(report);
}

/* x = [NaN, 1, -1, 0.5]: the first output must be NaN, the others finite. */
static Tensor *nan_vector(void)
{
    static const float values[4] = {NAN, 1.0f, -1.0f, 0.5f};
    return leaf_from(shape1(4), values, true);
}

static void check_activations(void *unused)
{
    static const char *names[] = {"relu", "leaky_relu", "gelu", "tanh", "sigmoid"};
    for (size_t k = 0; k < 5; k++) {
        Tape tape;
        tape_init(&tape);
        Tensor *x = nan_vector(), *y;
        if (k == 0) y = op_relu(&tape, x);
        else if (k == 1) y = op_leaky_relu(&tape, x, 0.2f);
        else if (k == 2) y = op_gelu(&tape, x);
        else if (k == 3) y = op_tanh(&tape, x);
        else y = op_sigmoid(&tape, x);
        expect_nan_range(names[k], y->data, 4, 0, 1);
        leaf_free(x);
        tape_free(&tape);
    }
    finish_child();
}

static void check_gelu_backward(void *unused)
{
    Tape tape;
    tape_init(&tape);
    Tensor *x = nan_vector();
    static const float dy[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    backward_from(&tape, op_gelu(&tape, x), dy);
    expect_nan_range("gelu dx", x->grad, 4, 0, 1);
    leaf_free(x);
    tape_free(&tape);
    finish_child();
}

/* qkv (1, 3, 6), one head of size 2, with a NaN in the query of token 1: output row 1 is NaN,
 * rows 0 and 2 do not read that query and stay finite. */
static void check_attention(void *unused)
{
    Tape tape;
    tape_init(&tape);
    Tensor *qkv = leaf_new(shape3(1, 3, 6), true);
    for (size_t i = 0; i < qkv->numel; i++) qkv->data[i] = 0.1f * (float)i - 0.5f;
    qkv->data[1 * 6 + 0] = NAN;

    Tensor *y = op_attention(&tape, qkv, 1);
    expect_nan_range("attention y", y->data, 6, 2, 4);
    static const float dy[6] = {1.0f, -1.0f, 0.5f, 0.25f, -0.5f, 1.0f};
    backward_from(&tape, y, dy);
    bool any_nan = false;
    for (size_t i = 0; i < qkv->numel; i++) any_nan = any_nan || isnan(qkv->grad[i]);
    if (!any_nan) {
        fprintf(stderr, "attention dqkv has no NaN\n");
        violations++;
    }
    leaf_free(qkv);
    tape_free(&tape);
    finish_child();
}

/* x (2, 4) with a NaN in row 0: layer norm makes row 0 all NaN and leaves row 1 finite. */
static void check_layer_norm(void *unused)
{
    Tape tape;
    tape_init(&tape);
    static const float values[8] = {NAN, 1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 2.0f, 0.0f};
    static const float ones[4] = {1.0f, 1.0f, 1.0f, 1.0f}, zeros[4] = {0};
    Tensor *x = leaf_from(shape2(2, 4), values, false), *w = leaf_from(shape1(4), ones, false);
    Tensor *b = leaf_from(shape1(4), zeros, false);
    Tensor *y = op_layer_norm(&tape, x, w, b, 1e-5f);
    expect_nan_range("layer_norm y", y->data, 8, 0, 4);
    leaf_free(x);
    leaf_free(w);
    leaf_free(b);
    tape_free(&tape);
    finish_child();
}

/* A 2×2 image with one NaN pixel, pooled by one 2×2 window. */
static void check_pooling(void *unused)
{
    Tape tape;
    tape_init(&tape);
    static const float values[4] = {1.0f, NAN, 2.0f, 3.0f};
    Tensor *x = leaf_from(shape4(1, 1, 2, 2), values, false);
    expect_nan_range("max_pool2d y", op_max_pool2d(&tape, x, 2, 2, 0)->data, 1, 0, 1);
    expect_nan_range("avg_pool2d y", op_avg_pool2d(&tape, x, 2, 2, 0, true)->data, 1, 0, 1);
    expect_nan_range("global_avg_pool y", op_global_avg_pool(&tape, x)->data, 1, 0, 1);
    leaf_free(x);
    tape_free(&tape);
    finish_child();
}

/* Logits [NaN, 0.5, -2]: every loss is NaN. */
static void check_losses(void *unused)
{
    Tape tape;
    tape_init(&tape);
    static const float values[3] = {NAN, 0.5f, -2.0f};
    Tensor *x = leaf_from(shape1(3), values, false);
    expect_nan_range("bce_with_logits target 1", op_bce_with_logits(&tape, x, 1.0f)->data, 1, 0, 1);
    expect_nan_range("bce_with_logits target 0", op_bce_with_logits(&tape, x, 0.0f)->data, 1, 0, 1);
    expect_nan_range("hinge_d real", op_hinge_d(&tape, x, true)->data, 1, 0, 1);
    expect_nan_range("hinge_d fake", op_hinge_d(&tape, x, false)->data, 1, 0, 1);
    expect_nan_range("hinge_g", op_hinge_g(&tape, x)->data, 1, 0, 1);
    leaf_free(x);
    tape_free(&tape);
    finish_child();
}

TEST(nan_activations)
{
    run_nan_check("activations", check_activations);
}

TEST(nan_gelu_backward)
{
    run_nan_check("gelu backward", check_gelu_backward);
}

TEST(nan_attention)
{
    run_nan_check("attention", check_attention);
}

TEST(nan_layer_norm)
{
    run_nan_check("layer_norm", check_layer_norm);
}

TEST(nan_pooling)
{
    run_nan_check("pooling", check_pooling);
}

TEST(nan_losses)
{
    run_nan_check("losses", check_losses);
}
