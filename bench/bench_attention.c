/* bench_attention.c — the fused df_attention against the same attention
 * composed from ops (batch_matmul, scale, a -inf mask, softmax, batch_matmul)
 * at (B,h,T,d) = (16,6,256,64), forward and forward + backward, causal and
 * not. The two run alternately, round by round; each figure is a median,
 * and the fused op's GFLOP/s is by the op's cost model (4 d per visible
 * query-key pair forward, 10 d more backward: causal counts the T(T+1)/2
 * visible pairs, not the masked ones the blocks compute too). --cpu times
 * by the process's CPU time instead of the wall clock (on a busy machine,
 * with --threads 1, it leaves out the time other processes held the core;
 * GFLOP/s are then per core-second).
 *
 *   bench/bench_attention [--rounds N] [--threads N] [--cpu] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dagflow.h"

enum { B = 16, H = 6, T = 256, D = 64 };

static clockid_t timer = CLOCK_MONOTONIC;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(timer, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float causal_mask[T * T];

// q, k, v (B,h,T,d) -> softmax(q k^T / sqrt(d) [+ mask]) v, and with backward the three gradients
static df_graph *build(bool fused, bool backward, bool causal)
{
    df_graph *g = df_graph_new();
    int64_t shape[4] = {B, H, T, D};
    df_node *in[3];
    for (int i = 0; i < 3; i++) in[i] = df_placeholder(g, DF_F32, 4, shape, NULL);
    float scale = 1.0f / sqrtf((float)D);
    df_node *y;
    if (fused) {
        y = df_attention(g, in[0], in[1], in[2], causal, scale);
    } else {
        df_node *scores = df_scale(g, df_batch_matmul(g, in[0], in[1], false, true), scale);
        if (causal) {
            df_tensor m = df_tensor_make(DF_F32, causal_mask, 2, (int64_t[]){T, T});
            scores = df_add(g, scores, df_constant(g, &m));
        }
        y = df_batch_matmul(g, df_softmax(g, scores, -1), in[2], false, false);
    }
    if (backward) {
        df_node *grads[3];
        df_gradients(g, df_sum(g, df_square(g, y), NULL, 0, false), NULL, 3, in, grads);
        for (int i = 0; i < 3; i++) df_graph_output(g, grads[i]);
    } else {
        df_graph_output(g, y);
    }
    if (df_graph_compile(g) != DF_OK) {
        fprintf(stderr, "bench_attention: %s\n", df_last_error());
        exit(1);
    }
    return g;
}

int main(int argc, char **argv)
{
    int rounds = 9;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu")) timer = CLOCK_PROCESS_CPUTIME_ID;
        else if (i + 1 < argc && !strcmp(argv[i], "--rounds")) rounds = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) df_set_num_threads(atoi(argv[++i]));
    }
    if (rounds < 1 || rounds > 1000) rounds = 9;
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) causal_mask[i * T + j] = j > i ? -INFINITY : 0.0f;
    size_t n = (size_t)B * H * T * D;
    df_rng rng;
    df_rng_seed(&rng, 1);
    df_tensor in[3];
    for (int i = 0; i < 3; i++) {
        float *p = malloc(n * sizeof *p);
        if (!p) return 1;
        for (size_t j = 0; j < n; j++) p[j] = 2 * df_rng_uniform(&rng) - 1;
        in[i] = df_tensor_make(DF_F32, p, 4, (int64_t[]){B, H, T, D});
    }
    printf("(B,h,T,d) = (%d,%d,%d,%d), %d threads, medians of %d alternating rounds, %s\n", B, H, T, D,
           df_num_threads(), rounds, timer == CLOCK_MONOTONIC ? "wall clock" : "process CPU time");
    printf("%-26s %10s %10s %7s %8s\n", "", "fused ms", "composed", "ratio", "GFLOP/s");
    for (int causal = 1; causal >= 0; causal--)
        for (int backward = 0; backward < 2; backward++) {
            df_graph *g[2] = {build(true, backward, causal), build(false, backward, causal)};
            double *ms = malloc(2 * (size_t)rounds * sizeof *ms), med[2];
            df_tensor out[3];
            for (int k = 0; k < 2; k++) df_graph_run(g[k], in, 3, out, backward ? 3 : 1);   /* warm-up */
            for (int r = 0; r < rounds; r++)
                for (int k = 0; k < 2; k++) {
                    double start = now_seconds();
                    df_graph_run(g[k], in, 3, out, backward ? 3 : 1);
                    ms[k * rounds + r] = 1e3 * (now_seconds() - start);
                }
            for (int k = 0; k < 2; k++) {
                qsort(ms + k * rounds, (size_t)rounds, sizeof *ms, by_value);
                med[k] = ms[k * rounds + rounds / 2];
                df_graph_free(g[k]);
            }
            const double pairs = causal ? (double)T * (T + 1) / 2 : (double)T * T;
            const double flops = (double)B * H * pairs * (backward ? 14 : 4) * D;
            printf("%-26s %10.1f %10.1f %6.2fx %8.1f\n", causal ? (backward ? "causal, fwd + bwd" : "causal, forward")
                                                               : (backward ? "full, fwd + bwd" : "full, forward"),
                   med[0], med[1], med[1] / med[0], flops / (med[0] * 1e6));
            free(ms);
        }
    for (int i = 0; i < 3; i++) free(in[i].data);
    return 0;
}
