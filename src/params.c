/* Parameter sets, Adam and EMA. */
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static Tensor *new_tensor(const char *name, Shape shape)
{
    Tensor *t = mg_calloc(1, sizeof *t);
    t->shape = shape;
    t->numel = shape_numel(shape);
    t->name = mg_strdup(name);
    return t;
}

static void append(Tensor ***list, int *count, Tensor *t)
{
    *list = mg_realloc(*list, (size_t)(*count + 1) * sizeof **list);
    (*list)[(*count)++] = t;
}

Tensor *paramset_add(ParamSet *set, const char *name, Shape shape)
{
    if (set->values) mg_panic("paramset_add(%s) after paramset_allocate", name);
    Tensor *t = new_tensor(name, shape);
    t->requires_grad = true;
    append(&set->params, &set->param_count, t);
    set->param_total += t->numel;
    return t;
}

Tensor *paramset_add_buffer(ParamSet *set, const char *name, Shape shape)
{
    if (set->values) mg_panic("paramset_add_buffer(%s) after paramset_allocate", name);
    Tensor *t = new_tensor(name, shape);
    append(&set->buffers, &set->buffer_count, t);
    set->buffer_total += t->numel;
    return t;
}

void paramset_allocate(ParamSet *set)
{
    set->values = mg_calloc(set->param_total ? set->param_total : 1, sizeof(float));
    set->grads = mg_calloc(set->param_total ? set->param_total : 1, sizeof(float));
    set->buffer_values = mg_calloc(set->buffer_total ? set->buffer_total : 1, sizeof(float));
    size_t offset = 0;
    for (int i = 0; i < set->param_count; i++) {
        set->params[i]->data = set->values + offset;
        set->params[i]->grad = set->grads + offset;
        offset += set->params[i]->numel;
    }
    offset = 0;
    for (int i = 0; i < set->buffer_count; i++) {
        set->buffers[i]->data = set->buffer_values + offset;
        offset += set->buffers[i]->numel;
    }
}

void paramset_free(ParamSet *set)
{
    for (int i = 0; i < set->param_count; i++) {
        free((char *)set->params[i]->name);
        free(set->params[i]);
    }
    for (int i = 0; i < set->buffer_count; i++) {
        free((char *)set->buffers[i]->name);
        free(set->buffers[i]);
    }
    free(set->params);
    free(set->buffers);
    free(set->values);
    free(set->grads);
    free(set->buffer_values);
    memset(set, 0, sizeof *set);
}

void paramset_zero_grad(ParamSet *set)
{
    memset(set->grads, 0, set->param_total * sizeof(float));
}

void paramset_set_requires_grad(ParamSet *set, bool requires_grad)
{
    for (int i = 0; i < set->param_count; i++) set->params[i]->requires_grad = requires_grad;
}

void paramset_copy(ParamSet *dst, const ParamSet *src)
{
    if (dst->param_total != src->param_total || dst->buffer_total != src->buffer_total)
        mg_panic("paramset_copy between different layouts");
    memcpy(dst->values, src->values, src->param_total * sizeof(float));
    memcpy(dst->buffer_values, src->buffer_values, src->buffer_total * sizeof(float));
}

void adam_init(Adam *adam, size_t n, double lr, double beta1, double beta2, double eps)
{
    *adam = (Adam){.m = mg_calloc(n ? n : 1, sizeof(float)), .v = mg_calloc(n ? n : 1, sizeof(float)), .n = n,
                   .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps};
}

void adam_free(Adam *adam)
{
    free(adam->m);
    free(adam->v);
    memset(adam, 0, sizeof *adam);
}

void adam_update(Adam *adam, float *values, const float *grads)
{
    adam->step++;
    /* the same float operations, in the same order, as torch.optim.Adam's single-tensor path */
    float beta1 = (float)adam->beta1, beta2 = (float)adam->beta2, eps = (float)adam->eps;
    double bias_correction1 = 1.0 - pow(adam->beta1, (double)adam->step);
    double bias_correction2 = 1.0 - pow(adam->beta2, (double)adam->step);
    float step_size = (float)(adam->lr / bias_correction1);
    float correction2_sqrt = (float)sqrt(bias_correction2);
    float *m = adam->m, *v = adam->v;
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < adam->n; i++) {
        float g = grads[i];
        m[i] = m[i] * beta1 + (1.0f - beta1) * g;
        v[i] = v[i] * beta2 + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) / correction2_sqrt + eps;
        values[i] -= step_size * (m[i] / denom);
    }
}

void ema_update(ParamSet *average, const ParamSet *current, double decay)
{
    float d = (float)decay, keep = (float)(1.0 - decay);
    float *avg = average->values;
    const float *cur = current->values;
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < average->param_total; i++) avg[i] = d * avg[i] + keep * cur[i];
    memcpy(average->buffer_values, current->buffer_values, current->buffer_total * sizeof(float));
}
