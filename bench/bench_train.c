/* bench_train.c — times the char-rnn seed training step (cr_step "fit": forward,
 * backward and Adam in one compiled graph) and generation at batch 1
 * (cr_generate), and measures in the same process an OpenBLAS sgemm rate at
 * the recurrent step's shape (64x1024 @ 1024x4096) as the reference the step
 * is compared with. Prints one JSON line with the same keys as the PyTorch
 * anchor (shared/anchors/torch_charrnn.py) where they overlap.
 *
 *   bench_train [--batch 64] [--seq 100] [--embed 256] [--hidden 1024]
 *               [--steps 10] [--warmup 2] [--gen 200] [--threads 0 (= all)]
 *               [--data ../shared/data/tinyshakespeare.txt] [--sgemm-reps 60]
 *
 * ms_per_step is the median over --steps timed steps after --warmup steps
 * (each step timed alone; min and mean are printed too); ms_per_char is the
 * median time from one generated char to the next (one batch-1 forward call
 * and a draw) over --gen chars after a 20-char warm-up, and ms_per_char_mean
 * the mean, which is what the anchor reports. The machine is shared, so
 * medians are the robust figure. peak_rss_mb is ru_maxrss after the train
 * steps; sgemm_gflops_per_s is the faster of two medians of --sgemm-reps
 * cblas_sgemm calls, one before and one after the steps, in this process
 * (the same OpenBLAS kernels as the step); ratio_to_sgemm = step GFLOP/s over
 * that rate.
 *
 * GFLOP/s uses the anchor's count, 3 * 2*B*T*(4H(E+H) + H*V) per step, so the
 * two are comparable. dagflow does fewer FLOPs than that formula counts (its
 * input projection is a (V,E)@(E,4H) table, not (B*T,E)@(E,4H): see forward()
 * in examples/charrnn/model.c), so ratio_to_sgemm can exceed 1;
 * work_gflops_per_s and work_ratio_to_sgemm count only the GEMM FLOPs it
 * really does, 3 * 2*(B*T*(4H*H + H*V) + V*E*4H). When the
 * corpus cannot be read the batches are random ids over 65 symbols
 * ("data": "random" instead of "corpus"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_util.h"
#include "batches.h"
#include "model.h"
#include "sample.h"
#include "text.h"

typedef struct opts {
    int batch, seq, embed, hidden, steps, warmup, gen, threads, sgemm_reps;
    const char *data;
} opts;

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_train [--batch 64] [--seq 100] [--embed 256] [--hidden 1024] [--steps 10]\n"
                 "                   [--warmup 2] [--gen 200] [--threads 0] [--data PATH] [--sgemm-reps 60]\n");
}

static int parse(int argc, char **argv, opts *o)
{
    struct { const char *name; int *dst; } ints[] = {
        {"batch", &o->batch}, {"seq", &o->seq}, {"embed", &o->embed}, {"hidden", &o->hidden},
        {"steps", &o->steps}, {"warmup", &o->warmup}, {"gen", &o->gen}, {"threads", &o->threads},
        {"sgemm-reps", &o->sgemm_reps},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) goto bad;
        a += 2;
        const char *eq = strchr(a, '='), *val;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else goto bad;
        if (len == 4 && !strncmp(a, "data", 4)) {
            o->data = val;
            continue;
        }
        int found = 0;
        for (size_t k = 0; k < sizeof ints / sizeof *ints; k++)
            if (strlen(ints[k].name) == len && !strncmp(a, ints[k].name, len)) {
                char *end;
                long v = strtol(val, &end, 10);
                if (*end || v < 0 || v > 1 << 20) goto bad;
                *ints[k].dst = (int)v;
                found = 1;
            }
        if (!found) goto bad;
    }
    if (o->batch < 1 || o->seq < 1 || o->embed < 1 || o->hidden < 1 || o->sgemm_reps < 1) goto bad;
    return 0;
bad:
    fprintf(stderr, "bench_train: bad argument '%s'\n", argv[argc > 1 ? argc - 1 : 0]);
    usage(stderr);
    return 2;
}

/* Emit times of the generated chars: between two emits lies one batch-1
 * forward call (cr_logits) and one draw. */
typedef struct gen_clock { double *t; int calls, cap; } gen_clock;

static void on_char(const char *utf8, int len, void *ctx)
{
    gen_clock *c = ctx;
    if (c->calls < c->cap) c->t[c->calls] = bench_now();
    c->calls++;
}

int main(int argc, char **argv)
{
    opts o = {.batch = 64, .seq = 100, .embed = 256, .hidden = 1024, .steps = 10, .warmup = 2, .gen = 200,
              .threads = 0, .sgemm_reps = 60, .data = CR_DEFAULT_DATA};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    if (o.threads > 0) df_set_num_threads(o.threads);

    /* the corpus, or random ids over 65 symbols */
    cr_text text;
    memset(&text, 0, sizeof text);
    int have_text = cr_text_load(o.data, &text) == DF_OK;
    int64_t n_random = (int64_t)(o.batch) * (o.seq + 1) * 4;
    if (!have_text) {
        fprintf(stderr, "bench_train: %s; using random ids over 65 symbols\n", df_last_error());
        text.n = n_random;
        text.ids = malloc((size_t)n_random * sizeof *text.ids);
        text.vocab.size = 65;
        for (int i = 0; i < 65; i++) text.vocab.chars[i] = (uint32_t)(' ' + i);   /* ' ' .. '`' */
        df_rng rng;
        df_rng_seed(&rng, 7);
        for (int64_t i = 0; text.ids && i < n_random; i++) text.ids[i] = (int32_t)df_rng_below(&rng, 65);
        if (!text.ids) return fprintf(stderr, "bench_train: out of memory\n"), 1;
    }
    cr_config cfg = {.vocab = text.vocab.size, .embed = o.embed, .hidden = o.hidden, .learning_rate = 1e-3f,
                     .seed = 42};
    cr_model m;
    cr_batcher batcher;
    df_status st = cr_model_init(&m, &cfg);
    if (st == DF_OK)
        st = cr_batcher_init(&batcher, text.ids, text.n, o.seq, o.batch, CR_SHUFFLE, 10000, 42);
    if (st != DF_OK) return fprintf(stderr, "bench_train: %s\n", df_last_error()), 1;
    size_t cells = (size_t)o.batch * (size_t)o.seq;
    int32_t *x = malloc(cells * sizeof *x), *y = malloc(cells * sizeof *y);
    double *ms = malloc(((size_t)o.steps + 1) * sizeof *ms);
    if (!x || !y || !ms) return fprintf(stderr, "bench_train: out of memory\n"), 1;
    df_tensor xt = df_tensor_make(DF_I32, x, 2, (int64_t[]){o.batch, o.seq});
    df_tensor yt = df_tensor_make(DF_I32, y, 2, (int64_t[]){o.batch, o.seq});

    double sgemm_ms_a, sgemm_ms_b;
    double sgemm_a = bench_sgemm_gflops(64, 4096, 1024, o.sgemm_reps, &sgemm_ms_a, NULL);

    double loss_sum = 0;
    for (int i = 0; i < o.warmup + o.steps && st == DF_OK; i++) {
        if (!cr_batcher_next(&batcher, x, y)) {
            cr_batcher_start_epoch(&batcher);
            cr_batcher_next(&batcher, x, y);
        }
        float loss;
        double t = bench_now();
        st = cr_step(&m, "fit", &xt, &yt, &loss);
        double dt = (bench_now() - t) * 1e3;
        if (i >= o.warmup) {
            ms[i - o.warmup] = dt;
            loss_sum += loss;
        }
    }
    if (st != DF_OK) return fprintf(stderr, "bench_train: %s\n", df_last_error()), 1;
    double rss_mb = bench_peak_rss_mb();
    df_graph_stats gs = {0};
    df_graph_get_stats(cr_graph(&m, "fit"), &gs);
    double sgemm_b = bench_sgemm_gflops(64, 4096, 1024, o.sgemm_reps, &sgemm_ms_b, NULL);
    /* the faster of the two reference measurements: the conservative ratio */
    double sgemm = sgemm_a > sgemm_b ? sgemm_a : sgemm_b;

    double mean = 0;
    for (int i = 0; i < o.steps; i++) mean += ms[i] / o.steps;
    double med = bench_median(ms, o.steps), min = o.steps ? ms[0] : 0;
    int V = cfg.vocab;
    double B = o.batch, T = o.seq, E = o.embed, H = o.hidden;
    double flops = 3 * 2 * B * T * (4 * H * (E + H) + H * V);
    double gflops = med > 0 ? flops / (med * 1e-3) / 1e9 : 0;
    /* the GEMM FLOPs dagflow actually does: the input projection is the
     * (V,E)@(E,4H) table when B*T >= V (see forward() in model.c) */
    double proj = B * T >= V ? (double)V * E * 4 * H : B * T * E * 4 * H;
    double work = 3 * 2 * (B * T * (4 * H * H + H * V) + proj);
    double work_gflops = med > 0 ? work / (med * 1e-3) / 1e9 : 0;

    /* generation at batch 1: warm up (traces), then time o.gen characters */
    double ms_char = 0, ms_char_mean = 0;
    if (o.gen > 0) {
        char start[8] = "ROMEO: ";
        int32_t probe[8];
        int n_probe;
        if (!have_text || cr_vocab_encode(&text.vocab, start, probe, 8, &n_probe) != DF_OK) {
            int len = cr_utf8_encode(text.vocab.chars[0], start);
            start[len] = 0;
        }
        gen_clock warm = {0}, clk = {malloc(((size_t)o.gen + 1) * sizeof(double)), 0, o.gen + 1};
        if (!clk.t) return fprintf(stderr, "bench_train: out of memory\n"), 1;
        st = cr_generate(&m, &text.vocab, start, 20, 1.0f, 1, on_char, &warm);
        if (st == DF_OK) st = cr_generate(&m, &text.vocab, start, o.gen, 1.0f, 2, on_char, &clk);
        clk.t[o.gen] = bench_now();          /* after the last char's forward call */
        if (st != DF_OK) return fprintf(stderr, "bench_train: generate: %s\n", df_last_error()), 1;
        ms_char_mean = (clk.t[o.gen] - clk.t[0]) * 1e3 / o.gen;
        for (int i = 0; i < o.gen; i++) clk.t[i] = (clk.t[i + 1] - clk.t[i]) * 1e3;
        ms_char = bench_median(clk.t, o.gen);
        free(clk.t);
    }

    printf("{\"engine\": \"dagflow\", \"threads\": %d, \"batch\": %d, \"seq\": %d, \"embed\": %d, \"hidden\": %d, "
           "\"vocab\": %d, \"params\": %lld, \"ms_per_step\": %.1f, \"gflops_per_s\": %.1f, \"ms_per_char\": %.3f, "
           "\"sgemm_gflops_per_s\": %.1f, \"ratio_to_sgemm\": %.3f, \"peak_rss_mb\": %.1f, "
           "\"work_gflops_per_s\": %.1f, \"work_ratio_to_sgemm\": %.3f, "
           "\"ms_per_step_min\": %.1f, \"ms_per_step_mean\": %.1f, \"ms_per_char_mean\": %.3f, \"steps\": %d, \"warmup\": %d, \"gen\": %d, "
           "\"loss\": %.4f, \"arena_mb\": %.1f, \"data\": \"%s\", \"openblas_core\": \"%s\", "
           "\"sgemm_shape\": \"64x1024@1024x4096\"}\n",
           df_num_threads(), o.batch, o.seq, o.embed, o.hidden, V, (long long)cr_model_param_count(&m), med, gflops,
           ms_char, sgemm, gflops / sgemm, rss_mb, work_gflops, work_gflops / sgemm, min, mean, ms_char_mean, o.steps,
           o.warmup, o.gen,
           o.steps ? loss_sum / o.steps : 0,
           gs.arena_bytes / 1048576.0, have_text ? "corpus" : "random", openblas_get_corename());
    fflush(stdout);
    cr_batcher_free(&batcher);
    cr_model_free(&m);
    cr_text_free(&text);
    free(x);
    free(y);
    free(ms);
    return 0;
}
