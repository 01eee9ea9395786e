/* bench_ops.c — per-op timings at the char-rnn seed's shapes, through the
 * public API: each case is a graph of variables/constants and one op (or an
 * op and its gradient), compiled once and run with df_graph_run, so it
 * measures what users get (dispatch included). Big operands are variables,
 * which df_graph_run does not copy. One JSON line per case: median and min ms
 * over the timed runs, and GFLOP/s (compute-bound ops) or GB/s (memory-bound
 * ops: bytes = the op's minimal reads + writes of main memory).
 *
 *   bench_ops [--threads 0 (= all)] [--reps-scale 1.0] [--only SUBSTRING]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_util.h"
#include "dagflow.h"

enum { B = 64, T = 100, E = 256, H = 1024, V = 65, BT = B * T };

static df_rng rng;
static double reps_scale = 1.0;
static const char *only = NULL;
static df_variable *vars[16];
static int n_vars;

static df_node *rand_var(df_graph *g, const char *name, int ndim, const int64_t *shape, float lo, float hi)
{
    df_variable *v = df_variable_new(name, DF_F32, ndim, shape, df_init_uniform(lo, hi), &rng);
    if (!v) {
        fprintf(stderr, "bench_ops: %s\n", df_last_error());
        exit(1);
    }
    vars[n_vars++] = v;
    return df_var(g, v);
}

static df_node *rand_ids(df_graph *g, int64_t n, int limit)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)df_rng_below(&rng, (uint32_t)limit);
    df_tensor t = df_tensor_make(DF_I32, ids, 1, (int64_t[]){n});
    df_node *c = df_constant(g, &t);
    free(ids);
    return c;
}

static bool wanted(const char *op, const char *name)
{
    return !only || strstr(op, only) || strstr(name, only);
}

/* Compiles and times g (all its outputs computed); prints one JSON line.
 * work = FLOPs (gflops) or bytes (!gflops). Returns the median ms. */
static double run_case(df_graph *g, const char *op, const char *name, int reps, double work, bool gflops)
{
    if (df_graph_status(g) != DF_OK || df_graph_compile(g) != DF_OK) {
        fprintf(stderr, "bench_ops: %s %s: %s\n", op, name, df_last_error());
        exit(1);
    }
    reps = (int)(reps * reps_scale);
    if (reps < 3) reps = 3;
    double *ms = malloc((size_t)reps * sizeof *ms);
    for (int r = 0; r < 2; r++) df_graph_run(g, NULL, 0, NULL, 0);    /* warm-up (page faults, caches) */
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        if (df_graph_run(g, NULL, 0, NULL, 0) != DF_OK) {
            fprintf(stderr, "bench_ops: %s %s: %s\n", op, name, df_last_error());
            exit(1);
        }
        ms[r] = (bench_now() - t) * 1e3;
    }
    double med = bench_median(ms, reps), min = ms[0];
    printf("{\"bench\": \"ops\", \"op\": \"%s\", \"case\": \"%s\", \"threads\": %d, \"reps\": %d, "
           "\"ms\": %.3f, \"ms_min\": %.3f, \"%s\": %.1f, \"openblas_core\": \"%s\"}\n",
           op, name, df_num_threads(), reps, med, min, gflops ? "gflops_per_s" : "gb_per_s",
           work / (med * 1e-3) / 1e9, bench_corename());
    fflush(stdout);
    free(ms);
    return med;
}

static void done(df_graph *g)
{
    df_graph_free(g);
    for (int i = 0; i < n_vars; i++) df_variable_free(vars[i]);
    n_vars = 0;
}

static void bench_matmul(const char *name, int64_t M, int64_t K, int64_t N, bool ta, bool tb, int reps)
{
    if (!wanted("matmul", name)) return;
    df_graph *g = df_graph_new();
    int64_t sa[2] = {ta ? K : M, ta ? M : K}, sb[2] = {tb ? N : K, tb ? K : N};
    df_node *a = rand_var(g, "a", 2, sa, -1, 1), *b = rand_var(g, "b", 2, sb, -1, 1);
    df_graph_output(g, df_matmul(g, a, b, ta, tb));
    run_case(g, "matmul", name, reps, 2.0 * M * N * K, true);
    done(g);
}

static void bench_lstm(void)
{
    double flops_fwd = 2.0 * BT * H * 4.0 * H;           /* the recurrent GEMMs */
    double fwd = 0;
    int64_t sx[3] = {B, T, 4 * H}, sw[2] = {H, 4 * H}, ss[2] = {B, H}, sy[3] = {B, T, H};
    if (wanted("lstm", "forward")) {
        df_graph *g = df_graph_new();
        df_node *h = df_lstm(g, rand_var(g, "xproj", 3, sx, -1, 1), rand_var(g, "w_rec", 2, sw, -0.03f, 0.03f),
                             rand_var(g, "h0", 2, ss, -0.5f, 0.5f), rand_var(g, "c0", 2, ss, -0.5f, 0.5f));
        df_graph_output(g, h);
        fwd = run_case(g, "lstm", "forward B64 T100 H1024", 5, flops_fwd, true);
        done(g);
    }
    if (wanted("lstm", "forward_backward")) {
        df_graph *g = df_graph_new();
        df_node *xs[4] = {rand_var(g, "xproj", 3, sx, -1, 1), rand_var(g, "w_rec", 2, sw, -0.03f, 0.03f),
                          rand_var(g, "h0", 2, ss, -0.5f, 0.5f), rand_var(g, "c0", 2, ss, -0.5f, 0.5f)};
        df_node *h = df_lstm(g, xs[0], xs[1], xs[2], xs[3]), *grads[4];
        df_node *dy = rand_var(g, "dy", 3, sy, -1e-3f, 1e-3f);
        df_gradients(g, h, dy, 4, xs, grads);
        for (int i = 0; i < 4; i++) df_graph_output(g, grads[i]);
        double both = run_case(g, "lstm", "forward_backward B64 T100 H1024 (all 4 grads)", 3, 3 * flops_fwd, true);
        if (fwd > 0) {
            double bwd = both - fwd;
            printf("{\"bench\": \"ops\", \"op\": \"lstm\", \"case\": \"backward = forward_backward - forward\", "
                   "\"threads\": %d, \"ms\": %.3f, \"gflops_per_s\": %.1f, \"openblas_core\": \"%s\"}\n",
                   df_num_threads(), bwd, 2 * flops_fwd / (bwd * 1e-3) / 1e9, bench_corename());
        }
        done(g);
    }
}

static void bench_xent(void)
{
    double bytes = (double)BT * V * 4;
    if (wanted("sparse_softmax_xent", "forward")) {
        df_graph *g = df_graph_new();
        df_node *logits = rand_var(g, "logits", 2, (int64_t[]){BT, V}, -3, 3);
        df_graph_output(g, df_sparse_softmax_cross_entropy(g, logits, rand_ids(g, BT, V)));
        run_case(g, "sparse_softmax_xent", "forward (6400,65)", 50, bytes, false);
        done(g);
    }
    if (wanted("sparse_softmax_xent", "forward+grad")) {
        df_graph *g = df_graph_new();
        df_node *logits = rand_var(g, "logits", 2, (int64_t[]){BT, V}, -3, 3), *grad;
        df_node *loss = df_sparse_softmax_cross_entropy(g, logits, rand_ids(g, BT, V));
        df_gradients(g, loss, NULL, 1, &logits, &grad);
        df_graph_output(g, loss);
        df_graph_output(g, grad);
        run_case(g, "sparse_softmax_xent", "forward+grad (6400,65)", 50, 3 * bytes, false);
        done(g);
    }
}

static void bench_gather_scatter(void)
{
    double bytes = (double)BT * 4 * H * 4;               /* one (6400,4096) f32 tensor */
    if (wanted("gather", "(65,4096)")) {
        df_graph *g = df_graph_new();
        df_node *table = rand_var(g, "table", 2, (int64_t[]){V, 4 * H}, -1, 1);
        df_graph_output(g, df_gather(g, table, rand_ids(g, BT, V)));
        run_case(g, "gather", "6400 rows of (65,4096)", 10, bytes, false);   /* rows read from cache */
        done(g);
    }
    if (wanted("scatter_add", "(6400,4096)")) {
        df_graph *g = df_graph_new();
        df_node *x = rand_var(g, "x", 2, (int64_t[]){BT, 4 * H}, -1, 1);
        df_graph_output(g, df_scatter_add(g, x, rand_ids(g, BT, V), V));
        run_case(g, "scatter_add", "(6400,4096) into 65 rows", 10, bytes, false);
        done(g);
    }
}

static void bench_elementwise(void)
{
    int64_t s[2] = {BT, 4 * H};
    double n = (double)BT * 4 * H;
    const char *names[3] = {"add", "mul", "tanh"};
    for (int k = 0; k < 3; k++) {
        if (!wanted(names[k], "(6400,4096)")) continue;
        df_graph *g = df_graph_new();
        df_node *a = rand_var(g, "a", 2, s, -2, 2), *y;
        if (k == 2) y = df_tanh(g, a);
        else {
            df_node *b = rand_var(g, "b", 2, s, -2, 2);
            y = k == 0 ? df_add(g, a, b) : df_mul(g, a, b);
        }
        df_graph_output(g, y);
        run_case(g, names[k], "(6400,4096) = 26.2M elements", 10, n * (k == 2 ? 8 : 12), false);
        done(g);
    }
    if (wanted("add", "bias")) {
        df_graph *g = df_graph_new();
        df_node *a = rand_var(g, "a", 2, s, -2, 2), *b = rand_var(g, "b", 1, (int64_t[]){4 * H}, -2, 2);
        df_graph_output(g, df_add(g, a, b));
        run_case(g, "add", "(6400,4096) + bias (4096)", 10, n * 8, false);
        done(g);
    }
}

int main(int argc, char **argv)
{
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps-scale") && i + 1 < argc) reps_scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_ops [--threads N] [--reps-scale X] [--only SUBSTRING]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (threads > 0) df_set_num_threads(threads);
    df_rng_seed(&rng, 1);
    bench_matmul("recurrent step (64,1024)@(1024,4096)", B, H, 4 * H, false, false, 100);
    bench_matmul("recurrent backward dz@W^T (64,4096)@(1024,4096)^T", B, 4 * H, H, false, true, 100);
    bench_matmul("dense (6400,1024)@(1024,65)", BT, H, V, false, false, 20);
    bench_matmul("dW_rec hprev^T@dz (6400,1024)^T@(6400,4096)", H, BT, 4 * H, true, false, 5);
    bench_lstm();
    bench_xent();
    bench_gather_scatter();
    bench_elementwise();
    return 0;
}
