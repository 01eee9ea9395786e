/* dagflow_bench_model.c — `dagflow-bench model charrnn|chargpt`: the
 * flagship training steps. charrnn is the char-rnn seed step of
 * bench/bench_train (examples/charrnn's cr_step "fit": forward, backward and
 * Adam in one compiled graph, B64 T100 E256 H1024, 65 symbols), counted with
 * bench_train's FLOP formulas. chargpt is char-gpt's default training step
 * (examples/chargpt/gpt.c's model through the public API: B12, block 64,
 * 4 layers, 4 heads, 128 wide; AdamW with global-norm clipping, as
 * char-gpt train), counted as nanoGPT's estimate_mfu does, 6N + 12 L T C
 * FLOPs per token. Random ids: the figures do not depend on the text. */
#include <stdlib.h>
#include <string.h>
#include "dagflow.h"
#include "dagflow_bench.h"
#include "gpt.h"
#include "model.h"

typedef struct model_opts { int steps, warmup; } model_opts;

static void fill_ids(int32_t *ids, size_t n, int vocab, df_rng *rng)
{
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)df_rng_below(rng, (uint32_t)vocab);
}

/* Median and min of ms[0..n) (sorts it). */
static int cmp_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, const char *config, double *ms, int n, double flops, double loss)
{
    qsort(ms, (size_t)n, sizeof *ms, cmp_ms);
    double med = bench_median_sorted(ms, n), gflops = flops / (med * 1e-3) / 1e9;
    double peak = bench_peak_fma_gflops(df_num_threads());
    printf("model %s  %s  threads %d  steps %d\n", name, config, df_num_threads(), n);
    printf("  step    median %.2f ms   min %.2f ms\n", med, ms[0]);
    printf("  rate    %.1f GFLOP/s (%.3g GFLOP per step), %.1f%% of the fp32 FMA peak %.1f GFLOP/s (%s)\n",
           gflops, flops / 1e9, 100 * gflops / peak, peak, bench_fma_isa());
    printf("  loss    %.4f (random ids)\n", loss);
}

static int model_charrnn(const model_opts *o)
{
    enum { B = 64, T = 100, E = 256, H = 1024, V = 65 };
    cr_config cfg = {.vocab = V, .embed = E, .hidden = H, .learning_rate = 1e-3f, .seed = 42};
    cr_model m;
    if (cr_model_init(&m, &cfg) != DF_OK) return fprintf(stderr, "dagflow-bench: %s\n", df_last_error()), 1;
    int32_t *x = malloc(sizeof(int32_t) * B * T), *y = malloc(sizeof(int32_t) * B * T);
    double *ms = malloc(sizeof(double) * (size_t)o->steps);
    df_rng rng;
    df_rng_seed(&rng, 7);
    df_tensor xt = df_tensor_make(DF_I32, x, 2, (int64_t[]){B, T}), yt = df_tensor_make(DF_I32, y, 2, (int64_t[]){B, T});
    float loss = 0;
    df_status st = x && y && ms ? DF_OK : DF_ERR_NOMEM;
    for (int i = 0; i < o->warmup + o->steps && st == DF_OK; i++) {
        fill_ids(x, (size_t)B * T, V, &rng);
        fill_ids(y, (size_t)B * T, V, &rng);
        double t0 = bench_now();
        st = cr_step(&m, "fit", &xt, &yt, &loss);
        if (i >= o->warmup) ms[i - o->warmup] = (bench_now() - t0) * 1e3;
    }
    if (st == DF_OK) {
        /* bench_train's work_gflops_per_s: the GEMMs dagflow does, with the
         * input projection as the (V,E)@(E,4H) table */
        double work = 3.0 * 2 * ((double)B * T * (4.0 * H * H + (double)H * V) + (double)V * E * 4 * H);
        report("charrnn", "B64 T100 E256 H1024 V65, LSTM, Adam", ms, o->steps, work, loss);
    } else {
        fprintf(stderr, "dagflow-bench: charrnn step: %s\n", df_last_error());
    }
    cr_model_free(&m);
    free(x), free(y), free(ms);
    return st == DF_OK ? 0 : 1;
}

#define GPT_MAX_WEIGHTS 256

typedef struct gpt_run {
    cg_gpt gpt;
    df_optimizer *opt;
    df_variable *weights[GPT_MAX_WEIGHTS];
    int n_weights;
} gpt_run;

// (x (B,T), y (B,T), pos (T)) -> the mean cross-entropy, after one AdamW update
static df_status build_gpt_step(df_graph *g, df_node **in, void *user)
{
    gpt_run *r = user;
    df_tape *tape = df_tape_begin(g);
    df_node *loss = df_sparse_softmax_cross_entropy(g, cg_gpt_logits(&r->gpt, g, in[0], in[2], true), in[1]);
    df_tape_end(tape);
    df_node *grads[GPT_MAX_WEIGHTS];
    if (df_tape_gradient(tape, loss, r->n_weights, r->weights, grads) == DF_OK)
        df_optimizer_apply(g, r->opt, r->n_weights, r->weights, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static int model_chargpt(const model_opts *o)
{
    enum { B = 12 };
    cg_config cfg = {.vocab = 65, .block = 64, .n_layer = 4, .n_head = 4, .n_embd = 128, .seed = 1337};
    const int T = cfg.block;
    gpt_run r = {0};
    df_status st = cg_gpt_init(&r.gpt, &cfg, B);
    if (st == DF_OK) {
        r.n_weights = cg_gpt_weights(&r.gpt, r.weights, GPT_MAX_WEIGHTS);
        r.opt = df_adamw_new(1e-3f, 0.9f, 0.99f, 1e-8f, 0.1f);
        st = r.opt ? df_optimizer_set_global_clipnorm(r.opt, 1.0f) : DF_ERR_NOMEM;
    }
    df_function *step = st == DF_OK ? df_function_new("train_step", build_gpt_step, &r) : NULL;
    int32_t *x = malloc(sizeof(int32_t) * B * T), *y = malloc(sizeof(int32_t) * B * T), *pos = malloc(sizeof(int32_t) * T);
    double *ms = malloc(sizeof(double) * (size_t)o->steps);
    if (st == DF_OK && (!step || !x || !y || !pos || !ms)) st = DF_ERR_NOMEM;
    df_rng rng;
    df_rng_seed(&rng, 7);
    for (int t = 0; pos && t < T; t++) pos[t] = t;
    df_tensor in[3] = {df_tensor_make(DF_I32, x, 2, (int64_t[]){B, T}), df_tensor_make(DF_I32, y, 2, (int64_t[]){B, T}),
                       df_tensor_make(DF_I32, pos, 1, (int64_t[]){T})};
    df_tensor out;
    for (int i = 0; i < o->warmup + o->steps && st == DF_OK; i++) {
        fill_ids(x, (size_t)B * T, cfg.vocab, &rng);
        fill_ids(y, (size_t)B * T, cfg.vocab, &rng);
        double t0 = bench_now();
        st = df_function_call(step, in, 3, &out, 1);
        if (i >= o->warmup) ms[i - o->warmup] = (bench_now() - t0) * 1e3;
    }
    if (st == DF_OK) {
        int64_t params = 0;
        for (int i = 0; i < r.n_weights; i++) params += df_variable_numel(r.weights[i]);
        double per_token = 6.0 * (double)params + 12.0 * cfg.n_layer * T * cfg.n_embd;
        report("chargpt", "B12 block64 4 layers 4 heads 128 wide V65, AdamW", ms, o->steps, per_token * B * T,
               *(float *)out.data);
    } else {
        fprintf(stderr, "dagflow-bench: chargpt step: %s\n", df_last_error());
    }
    df_function_free(step);
    if (r.opt) df_optimizer_free(r.opt);
    cg_gpt_free(&r.gpt);
    free(x), free(y), free(pos), free(ms);
    return st == DF_OK ? 0 : 1;
}

int cmd_model(int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "charrnn") && strcmp(argv[0], "chargpt"))) {
        fprintf(stderr, "dagflow-bench: model needs charrnn or chargpt%s%s\n", argc ? ", not " : "", argc ? argv[0] : "");
        return BENCH_EXIT_USAGE;
    }
    model_opts o = {.steps = 10, .warmup = 2};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) o.steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) o.warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) df_set_num_threads(atoi(argv[++i]));
        else {
            fprintf(stderr, "dagflow-bench: model: unknown option '%s'\n", argv[i]);
            return BENCH_EXIT_USAGE;
        }
    }
    if (o.steps < 1 || o.steps > 100000 || o.warmup < 0) {
        fprintf(stderr, "dagflow-bench: model: --steps takes 1 to 100000, --warmup >= 0\n");
        return BENCH_EXIT_USAGE;
    }
    return !strcmp(argv[0], "charrnn") ? model_charrnn(&o) : model_chargpt(&o);
}
