/* bench_bf16.c — the fused LSTM's forward + backward (lstm, lstm_grad,
 * d w_rec; all four gradients) at the seed's size, B64 T100 H1024, in fp32
 * and under DF_PRECISION_BF16, alternating round by round so that the
 * machine's drift hits both alike; medians, the load average before and
 * after. With --train, the char-rnn seed train step instead (cr_step "fit":
 * forward, backward and Adam; B64 T100 E256 H1024 on the corpus), fp32 and
 * bf16 steps alternating on one model. GEMM shapes in both precisions:
 * bench/bench_gemm (bf16 column).
 *
 *   bench/bench_bf16 [--rounds N] [--threads N] [--B b --T t --H h] [--train | --both]
 *                    [--data ../shared/data/tinyshakespeare.txt]
 *
 * --both: the LSTM's rounds, then the train step's, in one run. Minima are
 * the fastest round of each precision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow.h"
#include "bench_util.h"
#include "batches.h"
#include "model.h"
#include "text.h"

static df_rng rng;

static df_node *rand_var(df_graph *g, df_variable **keep, const char *name, int ndim, const int64_t *shape, float lo,
                         float hi)
{
    *keep = df_variable_new(name, DF_F32, ndim, shape, df_init_uniform(lo, hi), &rng);
    if (!*keep) {
        fprintf(stderr, "bench_bf16: %s\n", df_last_error());
        exit(1);
    }
    return df_var(g, *keep);
}

static double min_of(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static void print_load(const char *when)
{
    double l[3] = {0, 0, 0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3) l[0] = l[1] = l[2] = -1;
        fclose(f);
    }
    printf("# load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

/* The graph's inputs are variables it does not write, so a compiled graph
 * would keep its values from run to run (graph/memo.c) and a timed run
 * would do no work: each run gets inputs with a new version, as a training
 * step's weights have (the touch is outside the timing). */
static double run_ms(df_graph *g, df_variable *const *vars, int n_vars, df_precision p)
{
    if (df_set_precision(p) != DF_OK) {
        fprintf(stderr, "bench_bf16: %s\n", df_last_error());
        exit(1);
    }
    for (int i = 0; i < n_vars; i++) df_variable_touch(vars[i]);
    df_tensor out[4];
    const double t0 = bench_now();
    if (df_graph_run(g, NULL, 0, out, 4) != DF_OK) {
        fprintf(stderr, "bench_bf16: %s\n", df_last_error());
        exit(1);
    }
    const double ms = (bench_now() - t0) * 1e3;
    df_set_precision(DF_PRECISION_FP32);
    return ms;
}

/* The seed train step, fp32 and bf16 alternating (each step timed alone). */
static int bench_train(int rounds, int64_t B, int64_t T, int64_t H, const char *data)
{
    cr_text text;
    memset(&text, 0, sizeof text);
    if (cr_text_load(data, &text) != DF_OK) return fprintf(stderr, "bench_bf16: %s\n", df_last_error()), 1;
    cr_config cfg = {.vocab = text.vocab.size, .embed = 256, .hidden = H, .learning_rate = 1e-3f, .seed = 42};
    cr_model m;
    cr_batcher batcher;
    df_status st = cr_model_init(&m, &cfg);
    if (st == DF_OK) st = cr_batcher_init(&batcher, text.ids, text.n, T, B, CR_SHUFFLE, 10000, 42);
    if (st != DF_OK) return fprintf(stderr, "bench_bf16: %s\n", df_last_error()), 1;
    int32_t *x = malloc((size_t)(B * T) * sizeof *x), *y = malloc((size_t)(B * T) * sizeof *y);
    if (!x || !y) return 1;
    df_tensor xt = df_tensor_make(DF_I32, x, 2, (int64_t[]){B, T}), yt = df_tensor_make(DF_I32, y, 2, (int64_t[]){B, T});
    double ms[2][99];
    print_load("before");
    for (int r = -1; r < rounds && st == DF_OK; r++) {       /* round -1: warm-up */
        for (int p = 0; p < 2 && st == DF_OK; p++) {
            if (!cr_batcher_next(&batcher, x, y)) {
                cr_batcher_start_epoch(&batcher);
                cr_batcher_next(&batcher, x, y);
            }
            df_set_precision(p ? DF_PRECISION_BF16 : DF_PRECISION_FP32);
            float loss;
            const double t0 = bench_now();
            st = cr_step(&m, "fit", &xt, &yt, &loss);
            if (r >= 0) ms[p][r] = (bench_now() - t0) * 1e3;
            df_set_precision(DF_PRECISION_FP32);
        }
    }
    if (st != DF_OK) return fprintf(stderr, "bench_bf16: %s\n", df_last_error()), 1;
    const double f32_min = min_of(ms[0], rounds), b16_min = min_of(ms[1], rounds);
    const double f32 = bench_median(ms[0], rounds), b16 = bench_median(ms[1], rounds);
    printf("char-rnn train step B%ld T%ld E256 H%ld, %d threads, median of %d alternating steps\n", (long)B, (long)T,
           (long)H, df_num_threads(), rounds);
    printf("  fp32 %8.1f ms (min %.1f)\n  bf16 %8.1f ms (min %.1f)   speedup %.2fx (%.2fx on minima)\n", f32, f32_min,
           b16, b16_min, f32 / b16, f32_min / b16_min);
    print_load("after");
    cr_batcher_free(&batcher);
    cr_model_free(&m);
    cr_text_free(&text);
    free(x), free(y);
    return 0;
}

/* Mean loss of the last tenth of `steps` steps of a fresh model at p. */
static int train_loss(df_precision p, int steps, int64_t B, int64_t T, int64_t H, const cr_text *text, double *mean,
                      double *secs)
{
    cr_config cfg = {.vocab = text->vocab.size, .embed = 256, .hidden = H, .learning_rate = 1e-3f, .seed = 42};
    cr_model m;
    cr_batcher batcher;
    df_status st = cr_model_init(&m, &cfg);
    if (st == DF_OK) st = cr_batcher_init(&batcher, text->ids, text->n, T, B, CR_SHUFFLE, 10000, 42);
    if (st != DF_OK) return fprintf(stderr, "bench_bf16: %s\n", df_last_error()), 1;
    int32_t *x = malloc((size_t)(B * T) * sizeof *x), *y = malloc((size_t)(B * T) * sizeof *y);
    if (!x || !y) return 1;
    df_tensor xt = df_tensor_make(DF_I32, x, 2, (int64_t[]){B, T}), yt = df_tensor_make(DF_I32, y, 2, (int64_t[]){B, T});
    const int tail = steps / 10 > 0 ? steps / 10 : 1;
    double sum = 0;
    const double t0 = bench_now();
    df_set_precision(p);
    for (int i = 0; i < steps && st == DF_OK; i++) {
        if (!cr_batcher_next(&batcher, x, y)) {
            cr_batcher_start_epoch(&batcher);
            cr_batcher_next(&batcher, x, y);
        }
        float loss;
        st = cr_step(&m, "fit", &xt, &yt, &loss);
        if (i >= steps - tail) sum += loss;
    }
    df_set_precision(DF_PRECISION_FP32);
    *secs = bench_now() - t0;
    *mean = sum / tail;
    cr_batcher_free(&batcher);
    cr_model_free(&m);
    free(x), free(y);
    if (st != DF_OK) return fprintf(stderr, "bench_bf16: %s\n", df_last_error()), 1;
    return 0;
}

/* The fused LSTM's forward + backward, fp32 and bf16 alternating. */
static int bench_lstm(int rounds, int64_t B, int64_t T, int64_t H)
{
    df_rng_seed(&rng, 1);
    df_graph *g = df_graph_new();
    df_variable *v[5];
    const int64_t sx[3] = {B, T, 4 * H}, sw[2] = {H, 4 * H}, ss[2] = {B, H}, sy[3] = {B, T, H};
    df_node *xs[4] = {rand_var(g, &v[0], "xproj", 3, sx, -1, 1), rand_var(g, &v[1], "w_rec", 2, sw, -0.03f, 0.03f),
                      rand_var(g, &v[2], "h0", 2, ss, -0.5f, 0.5f), rand_var(g, &v[3], "c0", 2, ss, -0.5f, 0.5f)};
    df_node *h = df_lstm(g, xs[0], xs[1], xs[2], xs[3]), *grads[4];
    df_node *dy = rand_var(g, &v[4], "dy", 3, sy, -1e-3f, 1e-3f);
    if (df_gradients(g, h, dy, 4, xs, grads) != DF_OK) {
        fprintf(stderr, "bench_bf16: %s\n", df_graph_error(g));
        return 1;
    }
    for (int i = 0; i < 4; i++) df_graph_output(g, grads[i]);
    print_load("before");
    run_ms(g, v, 5, DF_PRECISION_FP32);                 /* compile, warm the scratch */
    run_ms(g, v, 5, DF_PRECISION_BF16);
    double ms[2][99];
    for (int r = 0; r < rounds; r++) {
        ms[0][r] = run_ms(g, v, 5, DF_PRECISION_FP32);
        ms[1][r] = run_ms(g, v, 5, DF_PRECISION_BF16);
    }
    int64_t reused = 0;
    int skipped = 0;
    if (df_graph_memo_stats(g, &reused, &skipped) == DF_OK && reused > 0) {
        fprintf(stderr, "bench_bf16: %lld runs skipped %d nodes as run-constant: the times would not be the op's\n",
                (long long)reused, skipped);
        return 1;
    }
    const double f32_min = min_of(ms[0], rounds), b16_min = min_of(ms[1], rounds);
    const double f32 = bench_median(ms[0], rounds), b16 = bench_median(ms[1], rounds);
    /* forward + backward recurrent products: 3 x 2*B*T*H*4H (the forward's, dh's and d w_rec's) */
    const double gflop = 3 * 2.0 * B * T * H * 4.0 * H * 1e-9;
    printf("lstm fwd+bwd B%ld T%ld H%ld, %d threads, median of %d alternating rounds\n", (long)B, (long)T, (long)H,
           df_num_threads(), rounds);
    printf("  fp32 %8.1f ms (min %.1f)  %6.1f GFLOP/s\n", f32, f32_min, gflop / f32 * 1e3);
    printf("  bf16 %8.1f ms (min %.1f)  %6.1f GFLOP/s   speedup %.2fx (%.2fx on minima)\n", b16, b16_min,
           gflop / b16 * 1e3, f32 / b16, f32_min / b16_min);
    print_load("after");
    df_graph_free(g);
    for (int i = 0; i < 5; i++) df_variable_free(v[i]);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = 7, threads = 0;
    bool train = false, both = false;
    int loss_steps = 0;
    const char *data = CR_DEFAULT_DATA;
    int64_t B = 64, T = 100, H = 1024;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--train") || !strcmp(argv[i], "--both")) {
            if (!strcmp(argv[i], "--train")) train = true;
            else both = true;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_bf16: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--loss-steps")) loss_steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--B")) B = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--T")) T = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--H")) H = atoll(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_bf16 [--rounds N] [--threads N] [--B b --T t --H h] [--train | --both] [--data F]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 99) rounds = 7;
    if (threads > 0) df_set_num_threads(threads);
    if (df_precision_check(DF_PRECISION_BF16) != DF_OK) {
        printf("# bf16 not measured: %s\n", df_last_error());
        return 0;
    }
    if (loss_steps > 0) {
        cr_text text;
        memset(&text, 0, sizeof text);
        if (cr_text_load(data, &text) != DF_OK) return fprintf(stderr, "bench_bf16: %s\n", df_last_error()), 1;
        double l32, l16, s32, s16;
        print_load("before");
        if (train_loss(DF_PRECISION_FP32, loss_steps, B, T, H, &text, &l32, &s32) ||
            train_loss(DF_PRECISION_BF16, loss_steps, B, T, H, &text, &l16, &s16))
            return 1;
        printf("char-rnn B%ld T%ld E256 H%ld, %d steps from seed 42, mean loss of the last %d steps:\n", (long)B,
               (long)T, (long)H, loss_steps, loss_steps / 10 > 0 ? loss_steps / 10 : 1);
        printf("  fp32 %.5f (%.1f s)\n  bf16 %.5f (%.1f s)   difference %+.5f\n", l32, s32, l16, s16, l16 - l32);
        print_load("after");
        cr_text_free(&text);
        return 0;
    }
    if (both && bench_lstm(rounds, B, T, H)) return 1;
    if (train || both) return bench_train(rounds, B, T, H, data);
    return bench_lstm(rounds, B, T, H);
}

