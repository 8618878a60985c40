/* Multi-head self-attention as one op, one query row at a time.
 *
 * For each (image, head) pair a thread gathers kᵀ and vᵀ (head_dim, N) into its workspace,
 * then for every query row i computes the scores s = q_i·kᵀ·scale, p = softmax(s) and
 * out_i = p·v. Only one row of the N×N score matrix exists at a time per thread. Forward
 * saves the log-sum-exp of every row; backward recomputes p from it:
 *   dv += pᵀ·dout_i,  dp = dout_i·vᵀ,  ds = p ⊙ (dp − dout_i·out_i),
 *   dq_i = scale·ds·k,  dk += scale·dsᵀ·q_i.
 * The (image, head) pairs are independent, so threads never share an accumulator and the
 * result does not depend on the thread count. The loops run in plain C rather than sgemm
 * because the per-pair products are small and sgemm must not run inside a parallel loop.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "internal.h"
#include "ops.h"
#include "vecmath.h"

typedef struct AttentionDims {
    int batch, tokens, dim, heads, head_dim;
    float scale;  /* 1 / sqrt(head_dim) */
} AttentionDims;

static AttentionDims attention_dims(const Tensor *qkv, int heads)
{
    AttentionDims d = {.batch = qkv->shape.dim[0], .tokens = qkv->shape.dim[1], .dim = qkv->shape.dim[2] / 3,
                       .heads = heads};
    d.head_dim = d.dim / heads;
    d.scale = 1.0f / sqrtf((float)d.head_dim);
    return d;
}

/* kT[t·N + j] = k[j, t] and vT[t·N + j] = v[j, t] for one image and head. */
static void gather_keys_values(const AttentionDims *d, const float *qkv_image, int head, float *kT, float *vT)
{
    int n = d->tokens, hd = d->head_dim;
    for (int j = 0; j < n; j++) {
        const float *row = qkv_image + (size_t)j * 3 * d->dim + (size_t)head * hd;
        for (int t = 0; t < hd; t++) {
            kT[(size_t)t * n + j] = row[d->dim + t];
            vT[(size_t)t * n + j] = row[2 * d->dim + t];
        }
    }
}

/* s[j] = scale · Σ_t q[t]·kT[t, j] */
static void score_row(const AttentionDims *d, const float *q, const float *kT, float *s)
{
    int n = d->tokens;
    memset(s, 0, (size_t)n * sizeof(float));
    for (int t = 0; t < d->head_dim; t++) {
        float a = q[t] * d->scale;
        const float *k = kT + (size_t)t * n;
        #pragma omp simd
        for (int j = 0; j < n; j++) s[j] += a * k[j];
    }
}

static float dot(const float *a, const float *b, int n)
{
    float acc = 0.0f;
    #pragma omp simd reduction(+ : acc)
    for (int j = 0; j < n; j++) acc += a[j] * b[j];
    return acc;
}

static void attention_backward(Tape *tape, const TapeEntry *e);

Tensor *op_attention(Tape *tape, Tensor *qkv, int heads)
{
    shape_check_ndim("attention", qkv, 3);
    if (qkv->shape.dim[2] % 3 != 0) shape_panic("attention", "the last axis must hold q, k and v (3·D)", qkv, NULL);
    if (heads < 1 || (qkv->shape.dim[2] / 3) % heads != 0)
        shape_panic("attention", "D must be divisible by the number of heads", qkv, NULL);
    AttentionDims d = attention_dims(qkv, heads);
    int n = d.tokens, hd = d.head_dim;
    Tensor *y = tensor_empty(tape, shape3(d.batch, n, d.dim));
    float *lse = arena_alloc(&tape->arena, (size_t)d.batch * heads * n * sizeof(float));

    int threads = omp_get_max_threads();
    size_t workspace = (size_t)(2 * hd + 1) * n;
    float *buffers = arena_alloc(&tape->arena, (size_t)threads * workspace * sizeof(float));

    #pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < d.batch * heads; pair++) {
        int b = pair / heads, h = pair % heads;
        float *kT = buffers + (size_t)omp_get_thread_num() * workspace, *vT = kT + (size_t)hd * n, *s = vT + (size_t)hd * n;
        const float *image = qkv->data + (size_t)b * n * 3 * d.dim;
        gather_keys_values(&d, image, h, kT, vT);
        for (int i = 0; i < n; i++) {
            score_row(&d, image + (size_t)i * 3 * d.dim + (size_t)h * hd, kT, s);
            float max = s[0];
            for (int j = 1; j < n; j++) max = s[j] > max ? s[j] : max;
            float sum = 0.0f;
            #pragma omp simd reduction(+ : sum)
            for (int j = 0; j < n; j++) {
                s[j] = vec_expf(s[j] - max);
                sum += s[j];
            }
            lse[(size_t)pair * n + i] = max + logf(sum);
            float inv = 1.0f / sum;
            float *out = y->data + ((size_t)b * n + i) * d.dim + (size_t)h * hd;
            for (int t = 0; t < hd; t++) out[t] = inv * dot(s, vT + (size_t)t * n, n);
        }
    }

    TapeEntry *e = tape_record(tape, "attention", attention_backward, y, qkv, NULL, NULL, NULL);
    if (e) {
        e->saved = lse;
        e->iarg[0] = heads;
    }
    return y;
}

static void attention_backward(Tape *tape, const TapeEntry *e)
{
    Tensor *qkv = e->in[0], *y = e->out;
    const float *lse = e->saved;
    int heads = e->iarg[0];
    AttentionDims d = attention_dims(qkv, heads);
    int n = d.tokens, hd = d.head_dim;
    float *dqkv = tensor_grad(tape, qkv);

    int threads = omp_get_max_threads();
    size_t workspace = (size_t)(4 * hd + 2) * n;
    float *buffers = arena_alloc(&tape->arena, (size_t)threads * workspace * sizeof(float));

    #pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < d.batch * heads; pair++) {
        int b = pair / heads, h = pair % heads;
        float *kT = buffers + (size_t)omp_get_thread_num() * workspace;
        float *vT = kT + (size_t)hd * n, *dkT = vT + (size_t)hd * n, *dvT = dkT + (size_t)hd * n;
        float *p = dvT + (size_t)hd * n, *dp = p + n;
        const float *image = qkv->data + (size_t)b * n * 3 * d.dim;
        float *dimage = dqkv + (size_t)b * n * 3 * d.dim;
        gather_keys_values(&d, image, h, kT, vT);
        memset(dkT, 0, 2 * (size_t)hd * n * sizeof(float));

        for (int i = 0; i < n; i++) {
            const float *q = image + (size_t)i * 3 * d.dim + (size_t)h * hd;
            const float *dout = y->grad + ((size_t)b * n + i) * d.dim + (size_t)h * hd;
            const float *out = y->data + ((size_t)b * n + i) * d.dim + (size_t)h * hd;

            /* p = exp(s − lse), the softmax row of the forward pass */
            score_row(&d, q, kT, p);
            float row_lse = lse[(size_t)pair * n + i];
            #pragma omp simd
            for (int j = 0; j < n; j++) p[j] = vec_expf(p[j] - row_lse);

            /* dp = dout·vᵀ and dvᵀ += dout ⊗ p */
            memset(dp, 0, (size_t)n * sizeof(float));
            float dout_dot_out = 0.0f;
            for (int t = 0; t < hd; t++) {
                float g = dout[t];
                const float *v = vT + (size_t)t * n;
                float *dv = dvT + (size_t)t * n;
                #pragma omp simd
                for (int j = 0; j < n; j++) {
                    dp[j] += g * v[j];
                    dv[j] += g * p[j];
                }
                dout_dot_out += g * out[t];
            }

            /* ds = p ⊙ (dp − dout·out), kept in dp */
            #pragma omp simd
            for (int j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - dout_dot_out);

            /* dq = scale·ds·k and dkᵀ += scale·q ⊗ ds */
            float *dq = dimage + (size_t)i * 3 * d.dim + (size_t)h * hd;
            for (int t = 0; t < hd; t++) {
                dq[t] += d.scale * dot(dp, kT + (size_t)t * n, n);
                float a = d.scale * q[t];
                float *dk = dkT + (size_t)t * n;
                #pragma omp simd
                for (int j = 0; j < n; j++) dk[j] += a * dp[j];
            }
        }

        for (int j = 0; j < n; j++) {
            float *row = dimage + (size_t)j * 3 * d.dim + (size_t)h * hd;
            for (int t = 0; t < hd; t++) {
                row[d.dim + t] += dkT[(size_t)t * n + j];
                row[2 * d.dim + t] += dvT[(size_t)t * n + j];
            }
        }
    }
}
