/* make bench-ops: GFLOP/s of the matmul-bound ops at the shapes the reference networks use at
 * batch 64, forward and backward, next to this machine's sgemm figure from the same run.
 *
 * FLOP counts are those of the products each op performs (2 per multiply-add): linear
 * 2·M·N·K forward and twice that backward (input and weight gradients); convolutions the
 * same with K = C·KH·KW; attention 4·B·N²·D forward and 10·B·N²·D backward (backward
 * recomputes the scores, then forms dP, dV, dQ and dK). Each figure is the median of
 * several timed repetitions after one warm-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

enum { REPEATS = 7 };

static Tensor *make_param(Shape shape, Rng *rng)
{
    Tensor *t = mg_calloc(1, sizeof *t);
    t->shape = shape;
    t->numel = shape_numel(shape);
    t->data = mg_malloc(t->numel * sizeof(float));
    t->grad = mg_calloc(t->numel, sizeof(float));
    t->requires_grad = true;
    rng_fill_normal(rng, t->data, t->numel, 0.0f, 0.05f);
    return t;
}

static void free_param(Tensor *t)
{
    free(t->data);
    free(t->grad);
    free(t);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return v[n / 2];
}

static double sgemm_gflops(int m, int n, int k)
{
    float *a = mg_calloc((size_t)m * k, sizeof(float)), *b = mg_calloc((size_t)k * n, sizeof(float));
    float *c = mg_calloc((size_t)m * n, sizeof(float));
    double times[REPEATS];
    mg_sgemm(false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    for (int r = 0; r < REPEATS; r++) {
        double start = mg_now();
        mg_sgemm(false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        times[r] = mg_now() - start;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k / median(times, REPEATS) / 1e9;
}

/* One benchmarked op: builds its output from the inputs on a tape. */
typedef struct OpCase {
    const char *name;
    Tensor *(*run)(Tape *tape, Tensor **in, const int *args);
    int args[4];
    Shape shapes[3];
    int inputs;
    double forward_flops, backward_flops;
} OpCase;

static Tensor *run_linear(Tape *tape, Tensor **in, const int *args)
{
    return op_linear(tape, in[0], in[1], in[2]);
}

static Tensor *run_conv(Tape *tape, Tensor **in, const int *args)
{
    return op_conv2d(tape, in[0], in[1], in[2], conv_geometry(args[0], args[1]));
}

static Tensor *run_conv_transpose(Tape *tape, Tensor **in, const int *args)
{
    return op_conv_transpose2d(tape, in[0], in[1], in[2], conv_geometry(args[0], args[1]));
}

static Tensor *run_attention(Tape *tape, Tensor **in, const int *args)
{
    return op_attention(tape, in[0], args[0]);
}

static void bench_case(const OpCase *c, double sgemm)
{
    Rng rng = rng_make(1, 0);
    Tensor *in[3] = {NULL, NULL, NULL};
    for (int i = 0; i < c->inputs; i++) in[i] = make_param(c->shapes[i], &rng);
    Tape tape;
    tape_init(&tape);
    double fwd[REPEATS], bwd[REPEATS];
    for (int r = -1; r < REPEATS; r++) {
        tape_reset(&tape);
        double start = mg_now();
        Tensor *y = c->run(&tape, in, c->args);
        double mid = mg_now();
        /* seed dy = 1 and run the op's own backward only */
        float *dy = tensor_grad(&tape, y);
        for (size_t i = 0; i < y->numel; i++) dy[i] = 1.0f;
        double bstart = mg_now();
        const TapeEntry *e = &tape.entries[tape.count - 1];
        e->backward(&tape, e);
        double end = mg_now();
        if (r >= 0) {
            fwd[r] = mid - start;
            bwd[r] = end - bstart;
        }
    }
    double f = c->forward_flops / median(fwd, REPEATS) / 1e9, b = c->backward_flops / median(bwd, REPEATS) / 1e9;
    printf("%-44s %8.1f %5.0f%% %8.1f %5.0f%%\n", c->name, f, 100.0 * f / sgemm, b, 100.0 * b / sgemm);
    tape_free(&tape);
    for (int i = 0; i < c->inputs; i++) free_param(in[i]);
}

static OpCase linear_case(const char *name, int rows, int in_f, int out_f)
{
    double flops = 2.0 * rows * in_f * out_f;
    return (OpCase){name, run_linear, {0}, {shape2(rows, in_f), shape2(out_f, in_f), shape1(out_f)}, 3, flops, 2 * flops};
}

static OpCase conv_case(const char *name, int b, int c, int h, int o, int k, int stride, int pad)
{
    int oh = (h + 2 * pad - k) / stride + 1;
    double flops = 2.0 * b * o * oh * oh * c * k * k;
    return (OpCase){name, run_conv, {stride, pad}, {shape4(b, c, h, h), shape4(o, c, k, k), shape1(o)}, 3, flops,
                    2 * flops};
}

static OpCase conv_transpose_case(const char *name, int b, int c, int h, int o, int k, int stride, int pad)
{
    double flops = 2.0 * b * c * h * h * o * k * k;
    return (OpCase){name, run_conv_transpose, {stride, pad}, {shape4(b, c, h, h), shape4(c, o, k, k), shape1(o)}, 2,
                    flops, 2 * flops};
}

static OpCase attention_case(const char *name, int b, int n, int d, int heads)
{
    double unit = (double)b * n * n * d;
    return (OpCase){name, run_attention, {heads}, {shape3(b, n, 3 * d)}, 1, 4 * unit, 10 * unit};
}

int main(int argc, char **argv)
{
    int threads = cli_setup_threads(argc > 1 ? atoi(argv[1]) : 0);
    double sgemm = sgemm_gflops(1024, 1024, 1024);
    printf("threads: %d\nsgemm 1024x1024x1024 (OpenBLAS %s kernels): %.1f GFLOP/s\n\n", threads, mg_sgemm_core_name(), sgemm);
    printf("%-44s %8s %6s %8s %6s\n", "op (batch 64), GFLOP/s and % of sgemm", "fwd", "%sgemm", "bwd", "%sgemm");

    OpCase cases[] = {
        linear_case("linear 4096x256 -> 768 (qkv, 8x8 stage)", 4096, 256, 768),
        linear_case("linear 4096x256 -> 1024 (fc1, 8x8 stage)", 4096, 256, 1024),
        linear_case("linear 4096x1024 -> 256 (fc2, 8x8 stage)", 4096, 1024, 256),
        linear_case("linear 16384x64 -> 192 (qkv, 16x16 stage)", 16384, 64, 192),
        linear_case("linear 65536x16 -> 48 (qkv, 32x32 stage)", 65536, 16, 48),
        linear_case("linear 64x256 -> 16384 (latent)", 64, 256, 16384),
        conv_case("conv 3->128 k4 s2 32x32 (DCGAN D1)", 64, 3, 32, 128, 4, 2, 1),
        conv_case("conv 128->256 k4 s2 16x16 (DCGAN D2)", 64, 128, 16, 256, 4, 2, 1),
        conv_case("conv 256->512 k4 s2 8x8 (DCGAN D3)", 64, 256, 8, 512, 4, 2, 1),
        conv_case("conv 512->1 k4 s1 4x4 (DCGAN D4)", 64, 512, 4, 1, 4, 1, 0),
        conv_case("conv 3->256 k4 s4 32x32 (TransGAN D)", 64, 3, 32, 256, 4, 4, 0),
        conv_case("conv 32->3 k3 s1 32x32 (hybrid G out)", 64, 32, 32, 3, 3, 1, 1),
        conv_transpose_case("convT 256->1024 k4 1x1 (DCGAN G1)", 64, 256, 1, 1024, 4, 1, 0),
        conv_transpose_case("convT 1024->512 k4 s2 4x4 (DCGAN G2)", 64, 1024, 4, 512, 4, 2, 1),
        conv_transpose_case("convT 512->256 k4 s2 8x8 (DCGAN G3)", 64, 512, 8, 256, 4, 2, 1),
        conv_transpose_case("convT 256->3 k4 s2 16x16 (DCGAN G4)", 64, 256, 16, 3, 4, 2, 1),
        conv_transpose_case("convT 64->32 k4 s2 16x16 (hybrid G)", 64, 64, 16, 32, 4, 2, 1),
        attention_case("attention N=64 D=256 4 heads", 64, 64, 256, 4),
        attention_case("attention N=65 D=256 4 heads (D)", 64, 65, 256, 4),
        attention_case("attention N=256 D=64 4 heads", 64, 256, 64, 4),
        attention_case("attention N=1024 D=16 2 heads", 64, 1024, 16, 2),
    };
    for (size_t i = 0; i < MG_ARRAY_LEN(cases); i++) bench_case(&cases[i], sgemm);
    return 0;
}
