/* Parameter sets, Adam and the EMA of a generator.
 *
 * A ParamSet owns a network's trainable parameters and its buffers (BatchNorm running
 * statistics). Layers register tensors first; paramset_allocate() then places all parameter
 * values in one block, all gradients in a second and all buffers in a third, so zeroing the
 * gradients is one memset, an optimizer step one loop and a checkpoint one write per block.
 */
#pragma once

#include <stddef.h>
#include <stdio.h>

#include "tensor.h"

typedef struct ParamSet {
    Tensor **params;   /* trainable, in registration order */
    int param_count;
    Tensor **buffers;  /* not trained, never given a gradient */
    int buffer_count;
    size_t param_total;    /* elements over all params */
    size_t buffer_total;   /* elements over all buffers */
    float *values;     /* (param_total) */
    float *grads;      /* (param_total) */
    float *buffer_values;  /* (buffer_total) */
} ParamSet;

/* Registers a parameter; its data and grad pointers are set by paramset_allocate(). */
Tensor *paramset_add(ParamSet *set, const char *name, Shape shape);
/* Registers a buffer; its data pointer is set by paramset_allocate(). */
Tensor *paramset_add_buffer(ParamSet *set, const char *name, Shape shape);
void paramset_allocate(ParamSet *set);
void paramset_free(ParamSet *set);
void paramset_zero_grad(ParamSet *set);
/* Freezes (false) or unfreezes (true) every parameter: frozen ones get no gradient. */
void paramset_set_requires_grad(ParamSet *set, bool requires_grad);
/* Copies values and buffers from src, which must have the same layout. */
void paramset_copy(ParamSet *dst, const ParamSet *src);

/* Adam as in PyTorch (torch.optim.Adam, no weight decay, no amsgrad):
 * m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², θ ← θ − lr/(1 − β1^t) · m/(√v/√(1 − β2^t) + eps). */
typedef struct Adam {
    float *m, *v;  /* (n) first and second moments */
    size_t n;
    long step;     /* updates done so far */
    double lr, beta1, beta2, eps;
} Adam;

void adam_init(Adam *adam, size_t n, double lr, double beta1, double beta2, double eps);
void adam_free(Adam *adam);
void adam_update(Adam *adam, float *values, const float *grads);

/* avg ← decay·avg + (1 − decay)·θ for every parameter; buffers are copied. */
void ema_update(ParamSet *average, const ParamSet *current, double decay);
