/* Leaf tensors, seeded backward passes and child processes for the op tests. */
#include "op_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"   /* cli_setup_threads */
#include "test.h"  /* test_temp_dir */
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

int run_in_child(void (*fn)(void *), void *context, char **stderr_text)
{
    char *path = mg_format("%s/stderr.txt", test_temp_dir());
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) mg_fatal("fork failed: %s", strerror(errno));
    if (pid == 0) {
        /* dup2 keeps stderr unbuffered, so a message reaches the file before abort() */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(100);
        alarm(10);
        cli_setup_threads(1);
        fn(context);
        /* _exit, not exit: the runner's atexit handler would delete the parent's temporary
         * directory */
        fflush(NULL);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    *stderr_text = mg_read_file(path, NULL);
    if (!*stderr_text) *stderr_text = mg_strdup("");
    free(path);
    return status;
}
