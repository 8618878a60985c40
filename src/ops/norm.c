/* batch_norm2d and layer_norm. Statistics are accumulated in double. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "ops.h"

/* Values batch_norm2d keeps for its backward pass. */
typedef struct BatchNormSaved {
    float *mean;  /* (C) mean used to normalise: the batch's in training, the running one in eval */
    float *rstd;  /* (C) 1 / sqrt(var + eps) for the same variance */
} BatchNormSaved;

static void batch_norm2d_backward(Tape *tape, const TapeEntry *e);

Tensor *op_batch_norm2d(Tape *tape, Tensor *x, Tensor *weight, Tensor *bias, BatchNormStats stats,
                        bool training, float momentum, float eps)
{
    shape_check_ndim("batch_norm2d", x, 4);
    int batch = x->shape.dim[0], channels = x->shape.dim[1];
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3], count = (size_t)batch * plane;
    if (weight && weight->numel != (size_t)channels) shape_panic("batch_norm2d", "weight size differs from channels", x, weight);
    if (bias && bias->numel != (size_t)channels) shape_panic("batch_norm2d", "bias size differs from channels", x, bias);
    if (training && count < 2) shape_panic("batch_norm2d", "training needs more than one value per channel", x, NULL);

    Tensor *y = tensor_empty(tape, x->shape);
    float *mean = arena_alloc(&tape->arena, (size_t)channels * sizeof(float));
    float *rstd = arena_alloc(&tape->arena, (size_t)channels * sizeof(float));

    #pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; c++) {
        double mu, var;
        if (training) {
            /* two passes over the channel: the mean, then the biased variance */
            double sum = 0.0;
            for (int b = 0; b < batch; b++) {
                const float *p = x->data + ((size_t)b * channels + c) * plane;
                for (size_t i = 0; i < plane; i++) sum += p[i];
            }
            mu = sum / (double)count;
            double sq = 0.0;
            for (int b = 0; b < batch; b++) {
                const float *p = x->data + ((size_t)b * channels + c) * plane;
                for (size_t i = 0; i < plane; i++) sq += (p[i] - mu) * (p[i] - mu);
            }
            var = sq / (double)count;
            double unbiased = sq / (double)(count - 1);
            stats.running_mean[c] = (float)((1.0 - momentum) * stats.running_mean[c] + momentum * mu);
            stats.running_var[c] = (float)((1.0 - momentum) * stats.running_var[c] + momentum * unbiased);
        } else {
            mu = stats.running_mean[c];
            var = stats.running_var[c];
        }
        mean[c] = (float)mu;
        rstd[c] = (float)(1.0 / sqrt(var + eps));
        float scale = rstd[c] * (weight ? weight->data[c] : 1.0f);
        float shift = (bias ? bias->data[c] : 0.0f) - mean[c] * scale;
        for (int b = 0; b < batch; b++) {
            const float *p = x->data + ((size_t)b * channels + c) * plane;
            float *q = y->data + ((size_t)b * channels + c) * plane;
            #pragma omp simd
            for (size_t i = 0; i < plane; i++) q[i] = p[i] * scale + shift;
        }
    }

    TapeEntry *e = tape_record(tape, "batch_norm2d", batch_norm2d_backward, y, x, weight, bias, NULL);
    if (e) {
        BatchNormSaved *saved = arena_alloc(&tape->arena, sizeof *saved);
        saved->mean = mean;
        saved->rstd = rstd;
        e->saved = saved;
        e->iarg[0] = training;
    }
    return y;
}

static void batch_norm2d_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *weight = e->in[1], *bias = e->in[2], *y = e->out;
    const BatchNormSaved *saved = e->saved;
    bool training = e->iarg[0];
    int batch = x->shape.dim[0], channels = x->shape.dim[1];
    size_t plane = (size_t)x->shape.dim[2] * x->shape.dim[3], count = (size_t)batch * plane;
    float *dx = x->requires_grad ? tensor_grad(tape, x) : NULL;
    float *dweight = weight && weight->requires_grad ? tensor_grad(tape, weight) : NULL;
    float *dbias = bias && bias->requires_grad ? tensor_grad(tape, bias) : NULL;

    #pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; c++) {
        float mu = saved->mean[c], rstd = saved->rstd[c];
        /* Σ dy and Σ dy·x̂ over the channel */
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < batch; b++) {
            const float *p = x->data + ((size_t)b * channels + c) * plane;
            const float *g = y->grad + ((size_t)b * channels + c) * plane;
            for (size_t i = 0; i < plane; i++) {
                sum_dy += g[i];
                sum_dy_xhat += g[i] * ((p[i] - mu) * rstd);
            }
        }
        if (dweight) dweight[c] += (float)sum_dy_xhat;
        if (dbias) dbias[c] += (float)sum_dy;
        if (!dx) continue;

        float gamma = weight ? weight->data[c] : 1.0f;
        /* training: dx = γ·rstd·(dy − mean(dy) − x̂·mean(dy·x̂)); eval: dx = γ·rstd·dy */
        float mean_dy = training ? (float)(sum_dy / (double)count) : 0.0f;
        float mean_dy_xhat = training ? (float)(sum_dy_xhat / (double)count) : 0.0f;
        float k = gamma * rstd;
        for (int b = 0; b < batch; b++) {
            const float *p = x->data + ((size_t)b * channels + c) * plane;
            const float *g = y->grad + ((size_t)b * channels + c) * plane;
            float *d = dx + ((size_t)b * channels + c) * plane;
            #pragma omp simd
            for (size_t i = 0; i < plane; i++) {
                float xhat = (p[i] - mu) * rstd;
                d[i] += k * (g[i] - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
}

/* Values layer_norm keeps for its backward pass. */
typedef struct LayerNormSaved {
    float *mean;  /* (rows) */
    float *rstd;  /* (rows) */
} LayerNormSaved;

static void layer_norm_backward(Tape *tape, const TapeEntry *e);

Tensor *op_layer_norm(Tape *tape, Tensor *x, Tensor *weight, Tensor *bias, float eps)
{
    int dim = x->shape.dim[x->shape.ndim - 1];
    if (weight && weight->numel != (size_t)dim) shape_panic("layer_norm", "weight size differs from the last axis", x, weight);
    if (bias && bias->numel != (size_t)dim) shape_panic("layer_norm", "bias size differs from the last axis", x, bias);
    size_t rows = x->numel / (size_t)dim;
    Tensor *y = tensor_empty(tape, x->shape);
    float *mean = arena_alloc(&tape->arena, rows * sizeof(float));
    float *rstd = arena_alloc(&tape->arena, rows * sizeof(float));
    const float *in = x->data, *gamma = weight ? weight->data : NULL, *beta = bias ? bias->data : NULL;
    float *out = y->data;

    #pragma omp parallel for schedule(static) if (rows * (size_t)dim > 8192)
    for (size_t r = 0; r < rows; r++) {
        const float *p = in + r * dim;
        float *q = out + r * dim;
        double sum = 0.0, sq = 0.0;
        for (int i = 0; i < dim; i++) sum += p[i];
        double mu = sum / dim;
        for (int i = 0; i < dim; i++) sq += (p[i] - mu) * (p[i] - mu);
        mean[r] = (float)mu;
        rstd[r] = (float)(1.0 / sqrt(sq / dim + eps));
        float m = mean[r], s = rstd[r];
        #pragma omp simd
        for (int i = 0; i < dim; i++) q[i] = (p[i] - m) * s;
        if (gamma) {
            #pragma omp simd
            for (int i = 0; i < dim; i++) q[i] *= gamma[i];
        }
        if (beta) {
            #pragma omp simd
            for (int i = 0; i < dim; i++) q[i] += beta[i];
        }
    }

    TapeEntry *e = tape_record(tape, "layer_norm", layer_norm_backward, y, x, weight, bias, NULL);
    if (e) {
        LayerNormSaved *saved = arena_alloc(&tape->arena, sizeof *saved);
        saved->mean = mean;
        saved->rstd = rstd;
        e->saved = saved;
    }
    return y;
}

static void layer_norm_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *x = e->in[0], *weight = e->in[1], *bias = e->in[2], *y = e->out;
    const LayerNormSaved *saved = e->saved;
    int dim = x->shape.dim[x->shape.ndim - 1];
    size_t rows = x->numel / (size_t)dim;

    const float *in = x->data, *grad_out = y->grad, *mean = saved->mean, *rstd = saved->rstd;
    const float *gamma = weight ? weight->data : NULL;
    if (bias && bias->requires_grad) sum_rows_add(tape, grad_out, rows, (size_t)dim, tensor_grad(tape, bias));
    if (weight && weight->requires_grad) {
        /* dγ[i] = Σ_r dy[r, i]·x̂[r, i]: form dy·x̂ in the arena, then sum its rows */
        float *product = arena_alloc(&tape->arena, x->numel * sizeof(float));
        #pragma omp parallel for schedule(static) if (x->numel > 8192)
        for (size_t r = 0; r < rows; r++) {
            const float *p = in + r * dim, *g = grad_out + r * dim;
            float m = mean[r], s = rstd[r];
            #pragma omp simd
            for (int i = 0; i < dim; i++) product[r * dim + i] = g[i] * ((p[i] - m) * s);
        }
        sum_rows_add(tape, product, rows, (size_t)dim, tensor_grad(tape, weight));
    }
    if (!x->requires_grad) return;

    float *dx = tensor_grad(tape, x);
    /* dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ, formed row by row in the arena */
    float *scaled = arena_alloc(&tape->arena, x->numel * sizeof(float));
    #pragma omp parallel for schedule(static) if (x->numel > 8192)
    for (size_t r = 0; r < rows; r++) {
        const float *p = in + r * dim, *dy = grad_out + r * dim;
        float *g = scaled + r * dim, *d = dx + r * dim;
        float m = mean[r], s = rstd[r];
        if (gamma) {
            #pragma omp simd
            for (int i = 0; i < dim; i++) g[i] = dy[i] * gamma[i];
        } else {
            memcpy(g, dy, (size_t)dim * sizeof(float));
        }
        double sum_g = 0.0, sum_g_xhat = 0.0;
        for (int i = 0; i < dim; i++) {
            sum_g += g[i];
            sum_g_xhat += g[i] * ((p[i] - m) * s);
        }
        float mean_g = (float)(sum_g / dim), mean_g_xhat = (float)(sum_g_xhat / dim);
        #pragma omp simd
        for (int i = 0; i < dim; i++) d[i] += s * (g[i] - mean_g - ((p[i] - m) * s) * mean_g_xhat);
    }
}
