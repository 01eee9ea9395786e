/* dagflow_bench_model.c — `dagflow-bench model charrnn|chargpt`: the
 * flagship training steps. charrnn is char-rnn's training step (cr_step
 * "fit": forward, backward and Adam in one compiled graph; by default the
 * seed's B64 T100 E256 H1024) and its generation at batch 1 (cr_generate),
 * with an OpenBLAS sgemm rate at the recurrent step's shape measured in the
 * same process as a reference; --json prints the one line bench/compare
 * reads (the PyTorch anchor's keys where they overlap, as bench/bench_train,
 * a wrapper of this, always printed). chargpt is char-gpt's default training
 * step (examples/chargpt/gpt.c's model through the public API: B12, block 64,
 * 4 layers, 4 heads, 128 wide; AdamW with global-norm clipping, as char-gpt
 * train), counted as nanoGPT's estimate_mfu does, 6N + 12 L T C FLOPs per
 * token. Each figure is also given as a share of its limit: a step's FLOPs
 * against the fp32 FMA peak, a generated char against the time to read the
 * weights it reads once per char from the cache level they fit in. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "dagflow.h"
#include "dagflow_bench.h"
#include "gpt.h"
#include "batches.h"
#include "model.h"
#include "sample.h"
#include "text.h"

typedef struct model_opts {
    int steps, warmup, threads, batch, seq, embed, hidden, gen, sgemm_reps;
    const char *data;                /* NULL: random ids over 65 symbols */
    bool json;
} model_opts;

static void fill_ids(int32_t *ids, size_t n, int vocab, df_rng *rng)
{
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)df_rng_below(rng, (uint32_t)vocab);
}

static int cmp_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of ms[0..n) (sorts it: ms[0] is the minimum afterwards). */
static double median_ms(double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof *ms, cmp_ms);
    return bench_median_sorted(ms, n);
}

static void report(const model_opts *o, const char *name, const char *config, double *ms, int n, double flops,
                   double loss)
{
    double med = median_ms(ms, n), gflops = flops / (med * 1e-3) / 1e9;
    double peak = bench_peak_fma_gflops(df_num_threads());
    if (o->json) {
        printf("{\"model\": \"%s\", \"threads\": %d, \"steps\": %d, \"ms_per_step\": %.2f, \"ms_per_step_min\": %.2f, "
               "\"gflops_per_s\": %.1f, \"fma_peak_gflops_per_s\": %.1f, \"pct_of_fma_peak\": %.1f, \"loss\": %.4f}\n",
               name, df_num_threads(), n, med, ms[0], gflops, peak, 100 * gflops / peak, loss);
        return;
    }
    printf("model %s  %s  threads %d  steps %d\n", name, config, df_num_threads(), n);
    printf("  step    median %.2f ms   min %.2f ms\n", med, ms[0]);
    printf("  rate    %.1f GFLOP/s (%.3g GFLOP per step), %.1f%% of the fp32 FMA peak %.1f GFLOP/s (%s)\n",
           gflops, flops / 1e9, 100 * gflops / peak, peak, bench_fma_isa());
    printf("  loss    %.4f (random ids)\n", loss);
}

/* ------------------------------------------------------------ charrnn */

/* Median GFLOP/s of cblas_sgemm at (64,1024) @ (1024,4096), the recurrent
 * step's product, over reps calls after 3 warm-up calls. */
static double sgemm_gflops(int reps)
{
    enum { M = 64, K = 1024, N = 4096 };
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
    double *ms = malloc(sizeof(double) * (size_t)reps), rate = 0;
    if (A && B && C && ms) {
        for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
        for (int r = 0; r < 3 + reps; r++) {
            double t0 = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
            if (r >= 3) ms[r - 3] = (bench_now() - t0) * 1e3;
        }
        rate = 2.0 * M * N * K / (median_ms(ms, reps) * 1e-3) / 1e9;
    }
    free(A), free(B), free(C), free(ms);
    return rate;
}

/* The corpus at o->data, or (none given, or unreadable) random ids over 65
 * symbols, enough for a few batches. */
static bool load_text(const model_opts *o, cr_text *text)
{
    memset(text, 0, sizeof *text);
    if (o->data && cr_text_load(o->data, text) == DF_OK) return true;
    if (o->data) fprintf(stderr, "dagflow-bench: %s; using random ids over 65 symbols\n", df_last_error());
    memset(text, 0, sizeof *text);
    text->n = (int64_t)o->batch * (o->seq + 1) * 4;
    text->ids = malloc((size_t)text->n * sizeof *text->ids);
    text->vocab.size = 65;
    for (int i = 0; i < 65; i++) text->vocab.chars[i] = (uint32_t)(' ' + i);   /* ' ' .. '`' */
    df_rng rng;
    df_rng_seed(&rng, 7);
    if (text->ids) fill_ids(text->ids, (size_t)text->n, 65, &rng);
    return false;
}

/* The time between two generated chars: one batch-1 forward call and a draw. */
typedef struct gen_clock { double *t; int calls, cap; } gen_clock;

static void on_char(const char *utf8, int len, void *ctx)
{
    (void)utf8, (void)len;
    gen_clock *c = ctx;
    if (c->calls < c->cap) c->t[c->calls] = bench_now();
    c->calls++;
}

/* Median and mean ms per char over o->gen chars after a 20-char warm-up. */
static df_status time_generation(cr_model *m, const cr_text *text, bool have_text, int gen, double *median,
                                 double *mean)
{
    char start[8] = "ROMEO: ";
    int32_t probe[8];
    int n_probe;
    if (!have_text || cr_vocab_encode(&text->vocab, start, probe, 8, &n_probe) != DF_OK)
        start[cr_utf8_encode(text->vocab.chars[0], start)] = 0;
    gen_clock warm = {0}, clk = {malloc(((size_t)gen + 1) * sizeof(double)), 0, gen + 1};
    if (!clk.t) return DF_ERR_NOMEM;
    df_status st = cr_generate(m, &text->vocab, start, 20, 1.0f, 1, on_char, &warm);
    if (st == DF_OK) st = cr_generate(m, &text->vocab, start, gen, 1.0f, 2, on_char, &clk);
    clk.t[gen] = bench_now();                    /* after the last char's forward call */
    if (st == DF_OK) {
        *mean = (clk.t[gen] - clk.t[0]) * 1e3 / gen;
        for (int i = 0; i < gen; i++) clk.t[i] = (clk.t[i + 1] - clk.t[i]) * 1e3;
        *median = median_ms(clk.t, gen);
    }
    free(clk.t);
    return st;
}

typedef struct charrnn_figures {
    double ms, ms_min, ms_mean, loss, sgemm, rss_mb, arena_mb, char_ms, char_mean;
    double flops_anchor, flops_work, peak, char_bytes, char_bound_ms;
    const char *char_level;
    long long params;
    int vocab;
    bool corpus;
} charrnn_figures;

static void charrnn_print(const model_opts *o, const charrnn_figures *f)
{
    double gflops = f->flops_work / (f->ms * 1e-3) / 1e9;
    printf("model charrnn  B%d T%d E%d H%d V%d, LSTM, Adam  threads %d  steps %d  data %s\n", o->batch, o->seq,
           o->embed, o->hidden, f->vocab, df_num_threads(), o->steps, f->corpus ? o->data : "random ids");
    printf("  step    median %.2f ms   min %.2f ms   mean %.2f ms   loss %.4f\n", f->ms, f->ms_min, f->ms_mean,
           f->loss);
    printf("  rate    %.1f GFLOP/s (%.3g GFLOP per step), %.1f%% of the fp32 FMA peak %.1f GFLOP/s (%s)\n", gflops,
           f->flops_work / 1e9, 100 * gflops / f->peak, f->peak, bench_fma_isa());
    printf("  sgemm   %.1f GFLOP/s at 64x1024@1024x4096 (OpenBLAS %s): the step is %.2fx that\n", f->sgemm,
           openblas_get_corename(), gflops / f->sgemm);
    if (o->gen > 0)
        printf("  sample  median %.3f ms/char (mean %.3f); reading its %.1f MB of weights from %s takes %.3f ms: "
               "%.0f%% of that limit\n", f->char_ms, f->char_mean, f->char_bytes / 1e6, f->char_level,
               f->char_bound_ms, 100 * f->char_bound_ms / f->char_ms);
    printf("  memory  peak RSS %.1f MB, arena %.1f MB\n", f->rss_mb, f->arena_mb);
}

/* bench/bench_train's line: the anchor's keys (shared/anchors/torch_charrnn.py)
 * where they overlap, then the shares of the limits. */
static void charrnn_json(const model_opts *o, const charrnn_figures *f)
{
    double gflops = f->flops_anchor / (f->ms * 1e-3) / 1e9, work = f->flops_work / (f->ms * 1e-3) / 1e9;
    printf("{\"engine\": \"dagflow\", \"threads\": %d, \"batch\": %d, \"seq\": %d, \"embed\": %d, \"hidden\": %d, "
           "\"vocab\": %d, \"params\": %lld, \"ms_per_step\": %.1f, \"gflops_per_s\": %.1f, \"ms_per_char\": %.3f, "
           "\"sgemm_gflops_per_s\": %.1f, \"ratio_to_sgemm\": %.3f, \"peak_rss_mb\": %.1f, "
           "\"work_gflops_per_s\": %.1f, \"work_ratio_to_sgemm\": %.3f, "
           "\"ms_per_step_min\": %.1f, \"ms_per_step_mean\": %.1f, \"ms_per_char_mean\": %.3f, \"steps\": %d, "
           "\"warmup\": %d, \"gen\": %d, \"loss\": %.4f, \"arena_mb\": %.1f, \"data\": \"%s\", "
           "\"openblas_core\": \"%s\", \"sgemm_shape\": \"64x1024@1024x4096\", "
           "\"fma_peak_gflops_per_s\": %.1f, \"pct_of_fma_peak\": %.1f, \"ms_per_char_limit\": %.3f, "
           "\"char_limit\": \"%s read bandwidth\", \"pct_of_char_limit\": %.1f, \"cpu\": \"%s\"}\n",
           df_num_threads(), o->batch, o->seq, o->embed, o->hidden, f->vocab, f->params, f->ms, gflops, f->char_ms,
           f->sgemm, gflops / f->sgemm, f->rss_mb, work, work / f->sgemm, f->ms_min, f->ms_mean, f->char_mean,
           o->steps, o->warmup, o->gen, f->loss, f->arena_mb, f->corpus ? "corpus" : "random",
           openblas_get_corename(), f->peak, 100 * work / f->peak, f->char_bound_ms, f->char_level,
           f->char_ms > 0 ? 100 * f->char_bound_ms / f->char_ms : 0, bench_cpu_model());
    fflush(stdout);
}

/* The step's FLOPs: the anchor's count, 3 * 2*B*T*(4H(E+H) + H*V), and the
 * GEMMs dagflow really does, whose input projection is the (V,E)@(E,4H)
 * table when B*T >= V (forward() in examples/charrnn/model.c). Generation
 * reads the recurrent weight (H,4H) and the output layer (H,V) once a char. */
static void charrnn_counts(const model_opts *o, charrnn_figures *f)
{
    double B = o->batch, T = o->seq, E = o->embed, H = o->hidden, V = f->vocab;
    f->flops_anchor = 3 * 2 * B * T * (4 * H * (E + H) + H * V);
    double proj = B * T >= V ? V * E * 4 * H : B * T * E * 4 * H;
    f->flops_work = 3 * 2 * (B * T * (4 * H * H + H * V) + proj);
    f->peak = bench_peak_fma_gflops(df_num_threads());
    f->char_bytes = 4 * (H * 4 * H + H * V);
    int level = bench_level_for(f->char_bytes, df_num_threads());
    f->char_level = bench_level_name(level);
    f->char_bound_ms = f->char_bytes / (bench_read_gbs(level, df_num_threads()) * 1e9) * 1e3;
}

static df_status charrnn_steps(const model_opts *o, cr_model *m, cr_batcher *batcher, charrnn_figures *f)
{
    size_t cells = (size_t)o->batch * (size_t)o->seq;
    int32_t *x = malloc(cells * sizeof *x), *y = malloc(cells * sizeof *y);
    double *ms = malloc((size_t)o->steps * sizeof *ms);
    df_tensor xt = df_tensor_make(DF_I32, x, 2, (int64_t[]){o->batch, o->seq});
    df_tensor yt = df_tensor_make(DF_I32, y, 2, (int64_t[]){o->batch, o->seq});
    df_status st = x && y && ms ? DF_OK : DF_ERR_NOMEM;
    double loss_sum = 0;
    for (int i = 0; i < o->warmup + o->steps && st == DF_OK; i++) {
        if (!cr_batcher_next(batcher, x, y)) {
            cr_batcher_start_epoch(batcher);
            cr_batcher_next(batcher, x, y);
        }
        float loss;
        double t0 = bench_now();
        st = cr_step(m, "fit", &xt, &yt, &loss);
        if (i >= o->warmup) ms[i - o->warmup] = (bench_now() - t0) * 1e3, loss_sum += loss;
    }
    if (st == DF_OK) {
        f->ms_mean = 0;
        for (int i = 0; i < o->steps; i++) f->ms_mean += ms[i] / o->steps;
        f->ms = median_ms(ms, o->steps);
        f->ms_min = ms[0];
        f->loss = loss_sum / o->steps;
    }
    free(x), free(y), free(ms);
    return st;
}

static int model_charrnn(const model_opts *o)
{
    cr_text text;
    charrnn_figures f = {0};
    f.corpus = load_text(o, &text);
    if (!text.ids) return fprintf(stderr, "dagflow-bench: out of memory\n"), 1;
    f.vocab = text.vocab.size;
    cr_config cfg = {.vocab = f.vocab, .embed = o->embed, .hidden = o->hidden, .learning_rate = 1e-3f, .seed = 42};
    cr_model m;
    cr_batcher batcher;
    df_status st = cr_model_init(&m, &cfg);
    if (st == DF_OK) {
        st = cr_batcher_init(&batcher, text.ids, text.n, o->seq, o->batch, CR_SHUFFLE, 10000, 42);
        if (st != DF_OK) cr_model_free(&m);
    }
    if (st != DF_OK) {
        cr_text_free(&text);
        return fprintf(stderr, "dagflow-bench: charrnn: %s\n", df_last_error()), 1;
    }
    double sgemm_before = sgemm_gflops(o->sgemm_reps);
    st = charrnn_steps(o, &m, &batcher, &f);
    if (st == DF_OK) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        f.rss_mb = ru.ru_maxrss / 1024.0;
        df_graph_stats gs = {0};
        df_graph_get_stats(cr_graph(&m, "fit"), &gs);
        f.arena_mb = gs.arena_bytes / 1048576.0;
        f.params = (long long)cr_model_param_count(&m);
        double sgemm_after = sgemm_gflops(o->sgemm_reps);
        f.sgemm = sgemm_before > sgemm_after ? sgemm_before : sgemm_after;   /* the conservative ratio */
        if (o->gen > 0) st = time_generation(&m, &text, f.corpus, o->gen, &f.char_ms, &f.char_mean);
    }
    if (st == DF_OK) {
        charrnn_counts(o, &f);
        if (o->json) charrnn_json(o, &f);
        else charrnn_print(o, &f);
    } else {
        fprintf(stderr, "dagflow-bench: charrnn: %s\n", df_last_error());
    }
    cr_batcher_free(&batcher);
    cr_model_free(&m);
    cr_text_free(&text);
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
        report(o, "chargpt", "B12 block64 4 layers 4 heads 128 wide V65, AdamW", ms, o->steps, per_token * B * T,
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

/* "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past it. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, len)) return NULL;
    if (a[len] == '=') return a + len + 1;
    if (a[len] || *i + 1 >= argc) return NULL;
    return argv[++*i];
}

static int parse_model_opts(int argc, char **argv, model_opts *o)
{
    struct { const char *name; int *dst; int min; } ints[] = {
        {"--steps", &o->steps, 1}, {"--warmup", &o->warmup, 0}, {"--threads", &o->threads, 0},
        {"--batch", &o->batch, 1}, {"--seq", &o->seq, 1}, {"--embed", &o->embed, 1},
        {"--hidden", &o->hidden, 1}, {"--gen", &o->gen, 0}, {"--sgemm-reps", &o->sgemm_reps, 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--json")) { o->json = true; continue; }
        if ((v = option_value(argc, argv, &i, "--data"))) { o->data = v; continue; }
        size_t k = 0;
        for (; k < sizeof ints / sizeof *ints; k++) {
            int at = i;
            if (!(v = option_value(argc, argv, &at, ints[k].name))) continue;
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || !*v || x < ints[k].min || x > 1 << 20) {
                fprintf(stderr, "dagflow-bench: model: %s '%s' is not a whole number from %d to %d\n", ints[k].name,
                        v, ints[k].min, 1 << 20);
                return BENCH_EXIT_USAGE;
            }
            *ints[k].dst = (int)x;
            i = at;
            break;
        }
        if (k == sizeof ints / sizeof *ints) {
            fprintf(stderr, "dagflow-bench: model: unknown option '%s' (or it lacks its value)\n", argv[i]);
            return BENCH_EXIT_USAGE;
        }
    }
    return 0;
}

int cmd_model(int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "charrnn") && strcmp(argv[0], "chargpt"))) {
        fprintf(stderr, "dagflow-bench: model needs charrnn or chargpt%s%s\n", argc ? ", not " : "", argc ? argv[0] : "");
        return BENCH_EXIT_USAGE;
    }
    model_opts o = {.steps = 10, .warmup = 2, .batch = 64, .seq = 100, .embed = 256, .hidden = 1024, .gen = 200,
                    .sgemm_reps = 60};
    int rc = parse_model_opts(argc, argv, &o);
    if (rc) return rc;
    if (o.threads > 0) df_set_num_threads(o.threads);
    return !strcmp(argv[0], "charrnn") ? model_charrnn(&o) : model_chargpt(&o);
}
