/* Multi-head self-attention as one op, on blocks of query rows.
 *
 * Each (image, head) pair is one task for one thread. The thread copies the pair's keys and
 * values into its workspace (k and v as (N, hd), kᵀ and vᵀ as (hd, N)) and then walks the
 * queries in blocks of QUERY_BLOCK rows:
 *   forward:  S = scale·Q·Kᵀ, P = softmax(S) row by row, O = P·V, saving each row's
 *             log-sum-exp;
 *   backward: P recomputed from S and the saved log-sum-exp, dP = dO·Vᵀ, dVᵀ += dOᵀ·P,
 *             dS = scale·P ⊙ (dP − rowsum(dO ⊙ O)), dQ = dS·K, dKᵀ += Qᵀ·dS.
 * Only one QUERY_BLOCK × N block of scores exists per thread at a time. The products run in
 * small_gemm because sgemm must not be called inside the parallel loop. Pairs never share
 * an accumulator, so the result does not depend on the thread count.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "internal.h"
#include "ops.h"
#include "small_gemm.h"
#include "vecmath.h"

enum { QUERY_BLOCK = 32 };

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

/* Per-thread buffers of one (image, head) pair. */
typedef struct Workspace {
    float *k, *v;      /* (N, hd) */
    float *kT, *vT;    /* (hd, N) */
    float *scores;     /* (QUERY_BLOCK, N): S, then P */
    float *dscores;    /* (QUERY_BLOCK, N): dP, then dS (backward only) */
    float *dkT, *dvT;  /* (hd, N) gradient accumulators (backward only) */
} Workspace;

static size_t workspace_floats(const AttentionDims *d, bool backward)
{
    size_t n = (size_t)d->tokens, hd = (size_t)d->head_dim;
    return 4 * hd * n + QUERY_BLOCK * n + (backward ? QUERY_BLOCK * n + 2 * hd * n : 0);
}

static Workspace carve_workspace(float *base, const AttentionDims *d, bool backward)
{
    size_t n = (size_t)d->tokens, hd = (size_t)d->head_dim;
    Workspace w = {.k = base};
    w.v = w.k + hd * n;
    w.kT = w.v + hd * n;
    w.vT = w.kT + hd * n;
    w.scores = w.vT + hd * n;
    if (backward) {
        w.dscores = w.scores + QUERY_BLOCK * n;
        w.dkT = w.dscores + QUERY_BLOCK * n;
        w.dvT = w.dkT + hd * n;
    }
    return w;
}

/* Copies the keys and values of one pair into the workspace: kᵀ and v, which the forward
 * pass needs, and for the backward pass k and vᵀ as well. */
static void gather_keys_values(const AttentionDims *d, const float *qkv_image, int head, Workspace *w, bool backward)
{
    int n = d->tokens, hd = d->head_dim;
    for (int j = 0; j < n; j++) {
        const float *k = qkv_image + (size_t)j * 3 * d->dim + d->dim + (size_t)head * hd, *v = k + d->dim;
        memcpy(w->v + (size_t)j * hd, v, (size_t)hd * sizeof(float));
        for (int t = 0; t < hd; t++) w->kT[(size_t)t * n + j] = k[t];
        if (!backward) continue;
        memcpy(w->k + (size_t)j * hd, k, (size_t)hd * sizeof(float));
        for (int t = 0; t < hd; t++) w->vT[(size_t)t * n + j] = v[t];
    }
}

/* scores (rows, N) = scale · Q (rows, hd) · Kᵀ; q points at the first row's query. */
static void compute_scores(const AttentionDims *d, const float *q, int rows, const Workspace *w)
{
    small_gemm(rows, d->tokens, d->head_dim, d->scale, q, 3 * d->dim, 1, w->kT, d->tokens, false, w->scores,
               d->tokens);
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
    size_t per_thread = workspace_floats(&d, false);
    float *buffers = arena_alloc(&tape->arena, (size_t)omp_get_max_threads() * per_thread * sizeof(float));

    #pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < d.batch * heads; pair++) {
        int b = pair / heads, h = pair % heads;
        Workspace w = carve_workspace(buffers + (size_t)omp_get_thread_num() * per_thread, &d, false);
        const float *image = qkv->data + (size_t)b * n * 3 * d.dim;
        gather_keys_values(&d, image, h, &w, false);
        for (int i0 = 0; i0 < n; i0 += QUERY_BLOCK) {
            int rows = n - i0 < QUERY_BLOCK ? n - i0 : QUERY_BLOCK;
            compute_scores(&d, image + (size_t)i0 * 3 * d.dim + (size_t)h * hd, rows, &w);

            /* exp(S − row max) and the row sums; the sums normalise O below */
            float inv_sum[QUERY_BLOCK];
            for (int r = 0; r < rows; r++) {
                float *s = w.scores + (size_t)r * n;
                float max = s[0];
                for (int j = 1; j < n; j++) max = s[j] > max ? s[j] : max;
                float sum = 0.0f;
                #pragma omp simd reduction(+ : sum)
                for (int j = 0; j < n; j++) {
                    s[j] = vec_expf(s[j] - max);
                    sum += s[j];
                }
                lse[(size_t)pair * n + i0 + r] = max + logf(sum);
                inv_sum[r] = 1.0f / sum;
            }

            /* O (rows, hd) = exp(S − max) (rows, N) · V (N, hd), then each row divided by its sum */
            float *out = y->data + ((size_t)b * n + i0) * d.dim + (size_t)h * hd;
            small_gemm(rows, hd, n, 1.0f, w.scores, n, 1, w.v, hd, false, out, d.dim);
            for (int r = 0; r < rows; r++) {
                for (int t = 0; t < hd; t++) out[(size_t)r * d.dim + t] *= inv_sum[r];
            }
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
    AttentionDims d = attention_dims(qkv, e->iarg[0]);
    int n = d.tokens, hd = d.head_dim, stride = 3 * d.dim;
    float *dqkv = tensor_grad(tape, qkv);
    size_t per_thread = workspace_floats(&d, true);
    float *buffers = arena_alloc(&tape->arena, (size_t)omp_get_max_threads() * per_thread * sizeof(float));

    #pragma omp parallel for schedule(dynamic, 1)
    for (int pair = 0; pair < d.batch * d.heads; pair++) {
        int b = pair / d.heads, h = pair % d.heads;
        Workspace w = carve_workspace(buffers + (size_t)omp_get_thread_num() * per_thread, &d, true);
        const float *image = qkv->data + (size_t)b * n * stride;
        float *dimage = dqkv + (size_t)b * n * stride;
        gather_keys_values(&d, image, h, &w, true);
        memset(w.dkT, 0, 2 * (size_t)hd * n * sizeof(float));

        for (int i0 = 0; i0 < n; i0 += QUERY_BLOCK) {
            int rows = n - i0 < QUERY_BLOCK ? n - i0 : QUERY_BLOCK;
            const float *q = image + (size_t)i0 * stride + (size_t)h * hd;
            const float *dout = y->grad + ((size_t)b * n + i0) * d.dim + (size_t)h * hd;
            const float *out = y->data + ((size_t)b * n + i0) * d.dim + (size_t)h * hd;

            /* P = exp(S − lse), the softmax rows of the forward pass */
            compute_scores(&d, q, rows, &w);
            for (int r = 0; r < rows; r++) {
                float *s = w.scores + (size_t)r * n, row_lse = lse[(size_t)pair * n + i0 + r];
                #pragma omp simd
                for (int j = 0; j < n; j++) s[j] = vec_expf(s[j] - row_lse);
            }

            /* dP (rows, N) = dO (rows, hd) · Vᵀ and dVᵀ (hd, N) += dOᵀ · P */
            small_gemm(rows, n, hd, 1.0f, dout, d.dim, 1, w.vT, n, false, w.dscores, n);
            small_gemm(hd, n, rows, 1.0f, dout, 1, d.dim, w.scores, n, true, w.dvT, n);

            /* dS = scale · P ⊙ (dP − dO·O), row by row; the scale comes in the products below */
            for (int r = 0; r < rows; r++) {
                const float *go = dout + (size_t)r * d.dim, *o = out + (size_t)r * d.dim;
                float dot = 0.0f;
                for (int t = 0; t < hd; t++) dot += go[t] * o[t];
                float *ds = w.dscores + (size_t)r * n;
                const float *p = w.scores + (size_t)r * n;
                #pragma omp simd
                for (int j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - dot);
            }

            /* dQ (rows, hd) += scale · dS · K and dKᵀ (hd, N) += scale · Qᵀ · dS */
            small_gemm(rows, hd, n, d.scale, w.dscores, n, 1, w.k, hd, true, dimage + (size_t)i0 * stride + (size_t)h * hd,
                       stride);
            small_gemm(hd, n, rows, d.scale, q, 1, stride, w.dscores, n, true, w.dkT, n);
        }

        for (int j = 0; j < n; j++) {
            float *row = dimage + (size_t)j * stride + (size_t)h * hd;
            for (int t = 0; t < hd; t++) {
                row[d.dim + t] += w.dkT[(size_t)t * n + j];
                row[2 * d.dim + t] += w.dvT[(size_t)t * n + j];
            }
        }
    }
}
