/* dagflow_bench.c — dagflow-bench: any registered op at any shape, forward
 * or with its gradient, timed through the public graph API and set against
 * the machine's measured limits; a suite of every op at standard shapes with
 * a saved baseline to compare with; the correctness mode (check) and the
 * flagship models' steps (model). `dagflow-bench --help` is the manual.
 *
 * How an op is built comes from the registry: each op that can be
 * benchmarked on its own has a df_bench_def (its inputs, named attributes
 * with defaults, a build function calling its public constructor, standard
 * shapes), and each op's cost callback gives its FLOPs and bytes; a case's
 * work is the sum over every node that runs, so a backward counts the
 * gradient's nodes as they are. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dagflow.h"
#include "dagflow_bench.h"

static const char usage_text[] =
    "NAME\n"
    "    dagflow-bench - time dagflow's ops against the machine's limits\n"
    "\n"
    "SYNOPSIS\n"
    "    dagflow-bench op NAME --shape SHAPES [--attr K=V ...] [--backward] [--threads N]\n"
    "                         [--reps N | --seconds S] [--json]\n"
    "    dagflow-bench peak [--json]\n"
    "    dagflow-bench suite [--filter SUBSTRING] [--size small|seed|large] [--threads N]\n"
    "                        [--seconds S] [--save FILE]\n"
    "                        [--compare FILE [--stat min|median] [--threshold 0.10]]\n"
    "    dagflow-bench check [--filter SUBSTRING] [--seeds N]\n"
    "    dagflow-bench model charrnn|chargpt [--steps N] [--warmup N] [--threads N] [--json]\n"
    "                        [--batch 64 --seq 100 --embed 256 --hidden 1024 --gen 200 --data PATH\n"
    "                         --sgemm-reps 60: charrnn's]\n"
    "    dagflow-bench list\n"
    "\n"
    "DESCRIPTION\n"
    "    op      Builds a graph of one op through the public API on random inputs (variables,\n"
    "            so runs copy nothing), compiles it, warms it up and times df_graph_run.\n"
    "            SHAPES is one shape per input, comma-separated, dimensions joined by 'x':\n"
    "            --shape 64x1024,1024x4096. --attr sets a named attribute of the op (list\n"
    "            shows them and their defaults). --backward also builds the gradient with\n"
    "            respect to every f32 input (for a random output gradient) and times both.\n"
    "            Prints the median, min and 90th percentile ms, GFLOP/s and GB/s from the\n"
    "            cost model of every op that ran (\"-\" when one has none), and the share\n"
    "            of the limit that applies: the fp32 FMA peak when the case's FLOPs per\n"
    "            byte exceed the machine's (compute-bound), else the read bandwidth of\n"
    "            the cache level its bytes fit in (memory-bound); it says which.\n"
    "    peak    The fp32 FMA peak (12 independent FMA chains, AVX-512 or AVX2 as the CPU\n"
    "            has) on 1 thread and all threads, bf16 (vdpbf16ps) where the CPU has\n"
    "            avx512_bf16, and L2, L3 and DRAM read bandwidth, with the CPU model and\n"
    "            ISA. Each figure is measured once per run of the program.\n"
    "    suite   Every op with a cost model and a bench definition at its small, seed-sized\n"
    "            and large shapes, forward and backward, as a table. --save writes one JSON\n"
    "            line per case (its median and min ms); --compare reads such a file and\n"
    "            prints each case's time over the baseline's: a case slower by more than\n"
    "            --threshold (default 0.10) is measured twice more and, still slower, fails\n"
    "            the run (exit 1). --stat picks the time compared: min (the default), the\n"
    "            fastest of a case's runs, or median. The minimum is the least noisy\n"
    "            estimate of the case's own cost (Python's timeit advises it): other\n"
    "            processes and a descheduled thread only ever add time, and on a busy\n"
    "            machine they move the median of a sub-millisecond case by far more than\n"
    "            10%. median also sees a change in the spread (e.g. a kernel that waits).\n"
    "            A file saved before the min was recorded compares only with --stat median.\n"
    "            On a machine whose other cores are busy, a 2-thread parallel region can\n"
    "            wait a scheduler tick for its second thread on every run, minimum and\n"
    "            all: compare at --threads 1 there.\n"
    "    check   Each op's backward against finite differences of its forward (the\n"
    "            registry's gradcheck cases, several seeds), and matmul, batch_matmul,\n"
    "            the elementwise table, softmax, layer_norm and attention against naive\n"
    "            references at random shapes, once per GEMM path the CPU has (openblas,\n"
    "            portable, avx2, avx512; each in a child process with DF_GEMM_ISA set).\n"
    "    model   The flagship training steps, median ms per step and its share of the fp32\n"
    "            FMA peak: char-rnn's seed step (B64 T100 E256 H1024, on --data or random\n"
    "            ids), with its generation at batch 1 (ms per char against the time to read\n"
    "            its weights from the cache level they fit in) and an OpenBLAS sgemm\n"
    "            reference at the recurrent step's shape; --json is bench/bench_train's\n"
    "            line, which bench/compare reads. chargpt: char-gpt's default step (B12,\n"
    "            block 64, 4 layers, 4 heads, 128 wide, AdamW).\n"
    "    list    The ops that can be built, their inputs, attributes and standard shapes.\n"
    "\n"
    "OPTIONS\n"
    "    --threads N     threads for the kernels (default: all)\n"
    "    --reps N        exactly N timed runs          --seconds S   time budget (default 1; suite 0.3)\n"
    "    --json          one JSON line per case instead of the text report\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 a failed run, check or compare; 2 a usage error (unknown op or\n"
    "    attribute, bad shape, missing attribute).\n"
    "\n"
    "EXAMPLES\n"
    "    dagflow-bench op matmul --shape 64x1024,1024x4096\n"
    "    dagflow-bench op attention --shape 16x6x256x64,16x6x256x64,16x6x256x64 --attr causal=1 --backward\n"
    "    dagflow-bench suite --filter lstm --save base.jsonl; dagflow-bench suite --filter lstm --compare base.jsonl\n";

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median_sorted(const double *v, int n)
{
    if (n <= 0) return 0;
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Prints "dagflow-bench: <message>" and the pointer to --help; returns 2. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dagflow-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(dagflow-bench --help for the usage)\n");
    va_end(ap);
    return BENCH_EXIT_USAGE;
}

/* ------------------------------------------------------------ parsing */

/* Formats a usage error into err; returns 2. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return BENCH_EXIT_USAGE;
}

static bool parse_int64(const char *s, const char *end, int64_t *out)
{
    if (s == end) return false;
    int64_t v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9' || v > (int64_t)1 << 40) return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

/* "64x1024,1024x4096"; "s" is a scalar input. */
static int parse_shapes(bench_case *c, const char *text, char *err, size_t len)
{
    const df_bench_def *bd = c->op->bench;
    int n = 0;
    const char *p = text;
    while (true) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (n == 4) return fail(err, len, "--shape '%s': more than 4 inputs", text);
        int nd = 0;
        if (!(end - p == 1 && *p == 's')) {
            for (const char *d = p; d <= end;) {
                const char *x = d;
                while (x < end && *x != 'x') x++;
                int64_t v;
                if (nd == DF_MAX_DIMS || !parse_int64(d, x, &v) || v < 1) {
                    snprintf(err, len, "--shape '%s': input %d is not a shape like 64x1024 (1 to 4 dimensions "
                             ">= 1 joined by 'x', or 's' for a scalar)", text, n + 1);
                    return BENCH_EXIT_USAGE;
                }
                c->shape[n][nd++] = v;
                d = x + 1;
            }
        }
        c->ndim[n++] = nd;
        if (!*end) break;
        p = end + 1;
    }
    if (n != bd->n_inputs) {
        snprintf(err, len, "op '%s' takes %d input shape%s (comma-separated), --shape '%s' gives %d", c->op->name,
                 bd->n_inputs, bd->n_inputs == 1 ? "" : "s", text, n);
        return BENCH_EXIT_USAGE;
    }
    c->n_in = n;
    snprintf(c->shapes_text, sizeof c->shapes_text, "%s", text);
    return 0;
}

static bool parse_value(const char *s, double *out)
{
    if (!strcmp(s, "true")) return *out = 1, true;
    if (!strcmp(s, "false")) return *out = 0, true;
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *s && !*end && errno == 0 && isfinite(*out);
}

static int attr_index(const df_bench_def *bd, const char *name, size_t name_len)
{
    for (int i = 0; i < DF_BENCH_MAX_ATTRS && bd->attrs[i]; i++)
        if (strlen(bd->attrs[i]) == name_len && !strncmp(bd->attrs[i], name, name_len)) return i;
    return -1;
}

static void attr_names(const df_bench_def *bd, char *buf, size_t len)
{
    buf[0] = 0;
    for (int i = 0; i < DF_BENCH_MAX_ATTRS && bd->attrs[i]; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "", bd->attrs[i]);
    if (!buf[0]) snprintf(buf, len, "none");
}

static int parse_attrs(bench_case *c, int n, const char *const *kv, char *err, size_t len)
{
    const df_bench_def *bd = c->op->bench;
    bool set[DF_BENCH_MAX_ATTRS] = {false};
    char names[128];
    attr_names(bd, names, sizeof names);
    c->attrs_text[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        if (!eq) return fail(err, len, "--attr '%s' is not NAME=VALUE", kv[i]);
        int k = attr_index(bd, kv[i], (size_t)(eq - kv[i]));
        if (k < 0) {
            snprintf(err, len, "op '%s' has no attribute '%.*s' (its attributes: %s)", c->op->name,
                     (int)(eq - kv[i]), kv[i], names);
            return BENCH_EXIT_USAGE;
        }
        if (!parse_value(eq + 1, &c->attrs[k]))
            return fail(err, len, "--attr '%s': '%s' is not a number (or true/false)", kv[i], eq + 1);
        set[k] = true;
        snprintf(c->attrs_text + strlen(c->attrs_text), sizeof c->attrs_text - strlen(c->attrs_text), "%s%s",
                 c->attrs_text[0] ? " " : "", kv[i]);
    }
    for (int k = 0; k < DF_BENCH_MAX_ATTRS && bd->attrs[k]; k++) {
        if (set[k]) continue;
        if (!bd->defaults[k]) {
            snprintf(err, len, "op '%s' needs --attr %s=VALUE (it has no default)", c->op->name, bd->attrs[k]);
            return BENCH_EXIT_USAGE;
        }
        parse_value(bd->defaults[k], &c->attrs[k]);
    }
    return 0;
}

int bench_case_parse(bench_case *c, const char *op_name, const char *shapes, int n_attrs,
                     const char *const *attrs, bool backward, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    c->op = df_op_find(op_name);
    if (!c->op) return fail(err, err_len, "unknown op '%s' (dagflow-bench list shows the ops it can build)", op_name);
    if (!c->op->bench)
        return fail(err, err_len, "op '%s' cannot be built on its own (no bench definition; it may be "
                    "a gradient op, timed with --backward of the op it belongs to)", op_name);
    if (!shapes) return fail(err, err_len, "op '%s' needs --shape (one shape per input, e.g. 64x1024,1024x4096)",
                             op_name);
    if (backward && !c->op->backward) return fail(err, err_len, "op '%s' has no gradient: no --backward", op_name);
    c->backward = backward;
    int rc = parse_shapes(c, shapes, err, err_len);
    return rc ? rc : parse_attrs(c, n_attrs, attrs, err, err_len);
}

int bench_case_parse_entry(bench_case *c, const df_op_def *op, const char *entry, bool backward, char *err,
                           size_t err_len)
{
    char buf[256], *words[1 + DF_BENCH_MAX_ATTRS];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", entry);
    for (char *w = strtok(buf, " "); w && n < 1 + DF_BENCH_MAX_ATTRS; w = strtok(NULL, " ")) words[n++] = w;
    return bench_case_parse(c, op->name, n ? words[0] : "", n - 1, (const char *const *)words + 1, backward, err,
                            err_len);
}

/* ------------------------------------------------------------ running */

typedef struct built_case {
    df_graph *g;
    df_variable *vars[16];
    int n_vars;
} built_case;

static void built_free(built_case *b)
{
    df_graph_free(b->g);
    for (int i = 0; i < b->n_vars; i++) df_variable_free(b->vars[i]);
}

static df_node *random_var(built_case *b, df_rng *rng, int ndim, const int64_t *shape, float lo, float hi)
{
    df_variable *v = df_variable_new("input", DF_F32, ndim, shape, df_init_uniform(lo, hi), rng);
    if (!v) {
        char dims[96];
        df_graph_set_error(b->g, DF_ERR_NOMEM, "no input of shape %s: %s", df_shape_str(ndim, shape, dims, sizeof dims),
                           df_last_error());
        return NULL;
    }
    b->vars[b->n_vars++] = v;
    return df_var(b->g, v);
}

/* Ids in [0, bound) as a constant (ids are never differentiated). */
static df_node *random_ids(df_graph *g, df_rng *rng, int ndim, const int64_t *shape, int64_t bound)
{
    int64_t n = df_shape_numel(ndim, shape);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return NULL;
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)df_rng_below(rng, (uint32_t)(bound > 0 ? bound : 1));
    df_tensor t = df_tensor_make(DF_I32, ids, ndim, shape);
    df_node *c = df_constant(g, &t);
    free(ids);
    return c;
}

static df_status build_case(const bench_case *c, built_case *b)
{
    const df_bench_def *bd = c->op->bench;
    df_rng rng;
    df_rng_seed(&rng, 1);
    float lo = bd->lo || bd->hi ? bd->lo : -1.0f, hi = bd->lo || bd->hi ? bd->hi : 1.0f;
    df_node *in[4], *xs[4];
    int n_xs = 0;
    for (int i = 0; i < c->n_in; i++) {
        if (bd->dtypes[i] == DF_I32) {
            int axis = bd->ids_axis < 0 ? c->ndim[0] + bd->ids_axis : bd->ids_axis;
            in[i] = random_ids(b->g, &rng, c->ndim[i], c->shape[i], axis >= 0 && axis < c->ndim[0] ? c->shape[0][axis] : 1);
        } else {
            in[i] = xs[n_xs++] = random_var(b, &rng, c->ndim[i], c->shape[i], lo, hi);
        }
    }
    df_node *y = bd->build(b->g, in, c->attrs);
    if (!y) return df_graph_status(b->g) != DF_OK ? df_graph_status(b->g) : DF_ERR_NOMEM;
    df_graph_output(b->g, y);
    if (c->backward) {
        df_node *dy = NULL, *grads[4];
        if (df_node_numel(y) > 1) dy = random_var(b, &rng, df_node_ndim(y), df_node_shape(y), -1e-2f, 1e-2f);
        if (df_gradients(b->g, y, dy, n_xs, xs, grads) == DF_OK)
            for (int i = 0; i < n_xs; i++) df_graph_output(b->g, grads[i]);
    }
    if (df_graph_status(b->g) != DF_OK) return df_graph_status(b->g);
    return df_graph_compile(b->g);
}

/* The FLOPs and bytes of every node that runs a kernel. */
static void sum_costs(const df_graph *g, bench_result *r)
{
    r->flops = r->bytes = 0;
    r->costed = true;
    r->uncosted[0] = 0;
    for (int i = 0; i < g->n_sched; i++) {
        const df_node *n = g->schedule[i];
        /* leaves and views move no data; an update of a variable (EXTERNAL
         * too) runs a kernel and counts */
        if (n->op->flags & (DF_OP_VIEW | DF_OP_LEAF | DF_OP_INPUT | DF_OP_CONSTANT)) continue;
        if (!n->op->cost) {
            r->costed = false;
            if (!strstr(r->uncosted, n->op->name))
                snprintf(r->uncosted + strlen(r->uncosted), sizeof r->uncosted - strlen(r->uncosted), "%s%s",
                         r->uncosted[0] ? "," : "", n->op->name);
            continue;
        }
        df_op_cost c = {0, 0};
        n->op->cost(n, &c);
        r->flops += c.flops;
        r->bytes += c.bytes;
    }
}

/* Compute-bound when the case does more FLOPs per byte than the machine's
 * peak over the bandwidth of the level its bytes fit in. */
static void place_on_roofline(bench_result *r)
{
    r->bound = "-";
    r->limit_name[0] = 0;
    r->limit_value = r->pct_of_limit = 0;
    if (!r->costed || r->ms_median <= 0 || r->bytes <= 0) return;
    int level = bench_level_for(r->bytes, r->threads);
    double peak = bench_peak_fma_gflops(r->threads), bw = bench_read_gbs(level, r->threads);
    double secs = r->ms_median * 1e-3;
    if (r->flops / r->bytes >= peak / bw) {
        r->bound = "compute";
        snprintf(r->limit_name, sizeof r->limit_name, "fp32 FMA peak (%s)", bench_fma_isa());
        r->limit_value = peak;
        r->pct_of_limit = 100 * r->flops / secs / 1e9 / peak;
    } else {
        r->bound = "memory";
        snprintf(r->limit_name, sizeof r->limit_name, "%s read bandwidth", bench_level_name(level));
        r->limit_value = bw;
        r->pct_of_limit = 100 * r->bytes / secs / 1e9 / bw;
    }
}

/* The inputs are variables the graph does not write, so a compiled graph
 * would keep its values from run to run (graph/memo.c) and a timed run
 * would do no work: each run gets inputs with a new version, as a training
 * step's weights have. */
static df_status run_fresh(const built_case *b)
{
    for (int i = 0; i < b->n_vars; i++) df_variable_touch(b->vars[i]);
    return df_graph_run(b->g, NULL, 0, NULL, 0);
}

static int time_graph(const built_case *b, const bench_timing *t, bench_result *r, char *err, size_t len)
{
    double warm_until = bench_now() + (t->seconds > 0 ? t->seconds * 0.1 : 0);
    for (int i = 0; i < 2 || bench_now() < warm_until; i++)      /* page faults, caches, the thread pool */
        if (run_fresh(b) != DF_OK) return snprintf(err, len, "run: %s", df_last_error()), 1;
    int cap = t->reps > 0 ? t->reps : 1024, n = 0;
    double *ms = malloc((size_t)cap * sizeof *ms), end = bench_now() + t->seconds;
    if (!ms) return snprintf(err, len, "out of memory"), 1;
    while (t->reps > 0 ? n < t->reps : (n < 3 || bench_now() < end)) {
        if (n == cap) {
            double *more = realloc(ms, (size_t)(cap *= 2) * sizeof *ms);
            if (!more) break;
            ms = more;
        }
        double t0 = bench_now();
        if (run_fresh(b) != DF_OK) {
            free(ms);
            return snprintf(err, len, "run: %s", df_last_error()), 1;
        }
        ms[n++] = (bench_now() - t0) * 1e3;
    }
    int64_t reused = 0;
    int skipped = 0;
    if (df_graph_memo_stats(b->g, &reused, &skipped) == DF_OK && reused > 0) {
        free(ms);
        return snprintf(err, len, "%lld runs skipped %d nodes as run-constant: the times would not be the op's",
                        (long long)reused, skipped), 1;
    }
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    r->reps = n;
    r->ms_median = bench_median_sorted(ms, n);
    r->ms_min = ms[0];
    r->ms_p90 = ms[(int)(0.9 * (n - 1) + 0.5)];
    free(ms);
    return 0;
}

int bench_case_run(const bench_case *c, const bench_timing *t, bench_result *r, char *err, size_t err_len)
{
    memset(r, 0, sizeof *r);
    built_case b = {.g = df_graph_new()};
    if (!b.g) return snprintf(err, err_len, "out of memory"), BENCH_EXIT_FAIL;
    if (build_case(c, &b) != DF_OK) {
        snprintf(err, err_len, "op '%s' at %s: %s", c->op->name, c->shapes_text,
                 df_graph_error(b.g)[0] ? df_graph_error(b.g) : df_last_error());
        built_free(&b);
        return BENCH_EXIT_USAGE;             /* the shapes or attributes do not fit the op */
    }
    sum_costs(b.g, r);
    r->threads = df_num_threads();
    int rc = time_graph(&b, t, r, err, err_len);
    built_free(&b);
    if (rc) return BENCH_EXIT_FAIL;
    place_on_roofline(r);
    return 0;
}

/* ------------------------------------------------------------ reports */

static double gflops_of(const bench_result *r) { return r->flops / (r->ms_median * 1e-3) / 1e9; }
static double gbs_of(const bench_result *r) { return r->bytes / (r->ms_median * 1e-3) / 1e9; }

void bench_result_print(FILE *out, const bench_case *c, const bench_result *r)
{
    fprintf(out, "op %s  shapes %s%s%s  %s  threads %d  reps %d\n", c->op->name, c->shapes_text,
            c->attrs_text[0] ? "  attrs " : "", c->attrs_text, c->backward ? "forward+backward" : "forward",
            r->threads, r->reps);
    fprintf(out, "  time    median %.3f ms   min %.3f ms   p90 %.3f ms\n", r->ms_median, r->ms_min, r->ms_p90);
    if (!r->costed) {
        fprintf(out, "  rate    -  (no cost model for: %s)\n", r->uncosted);
        return;
    }
    fprintf(out, "  work    %.4g GFLOP   %.4g MB   (%.2f FLOP/byte)\n", r->flops / 1e9, r->bytes / 1e6,
            r->bytes > 0 ? r->flops / r->bytes : 0);
    fprintf(out, "  rate    %.1f GFLOP/s   %.1f GB/s\n", gflops_of(r), gbs_of(r));
    fprintf(out, "  limit   %s-bound: %.1f%% of the %s, %.1f %s on %d thread%s\n", r->bound, r->pct_of_limit,
            r->limit_name, r->limit_value, strcmp(r->bound, "compute") ? "GB/s" : "GFLOP/s", r->threads,
            r->threads == 1 ? "" : "s");
}

void bench_result_json(FILE *out, const bench_case *c, const bench_result *r)
{
    fprintf(out, "{\"op\": \"%s\", \"shapes\": \"%s\", \"attrs\": \"%s\", \"dir\": \"%s\", \"threads\": %d, "
            "\"reps\": %d, \"ms\": %.4f, \"ms_min\": %.4f, \"ms_p90\": %.4f, ",
            c->op->name, c->shapes_text, c->attrs_text, c->backward ? "backward" : "forward", r->threads, r->reps,
            r->ms_median, r->ms_min, r->ms_p90);
    if (r->costed)
        fprintf(out, "\"gflop\": %.6g, \"mb\": %.6g, \"gflops_per_s\": %.2f, \"gb_per_s\": %.2f, \"bound\": \"%s\", "
                "\"limit\": \"%s\", \"limit_value\": %.1f, \"pct_of_limit\": %.1f}\n",
                r->flops / 1e9, r->bytes / 1e6, gflops_of(r), gbs_of(r), r->bound, r->limit_name, r->limit_value,
                r->pct_of_limit);
    else
        fprintf(out, "\"gflops_per_s\": null, \"gb_per_s\": null, \"uncosted\": \"%s\"}\n", r->uncosted);
    fflush(out);
}

/* ------------------------------------------------------------ commands */

static int set_threads(const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > 1024) return usage_error("--threads '%s' is not a thread count >= 1", v);
    df_set_num_threads((int)n);
    return 0;
}

static int parse_timing(const char *flag, const char *v, bench_timing *t)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || !(x > 0) || x > 1e6) return usage_error("%s needs a positive number", flag);
    if (!strcmp(flag, "--reps")) t->reps = (int)x, t->seconds = 0;
    else t->seconds = x, t->reps = 0;
    return 0;
}

static int cmd_op(int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-') return usage_error("op needs a NAME (dagflow-bench list shows them)");
    const char *name = argv[0], *shapes = NULL, *attrs[16];
    int n_attrs = 0, rc;
    bool backward = false, json = false;
    bench_timing t = {.seconds = 1.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--shape") || !strcmp(a, "--attr") || !strcmp(a, "--threads") ||
                     !strcmp(a, "--reps") || !strcmp(a, "--seconds");
        if (takes && !v) return usage_error("%s needs a value", a);
        if (!strcmp(a, "--shape")) shapes = v;
        else if (!strcmp(a, "--attr") && n_attrs < 16) attrs[n_attrs++] = v;
        else if (!strcmp(a, "--threads")) { if ((rc = set_threads(v))) return rc; }
        else if (!strcmp(a, "--reps") || !strcmp(a, "--seconds")) { if ((rc = parse_timing(a, v, &t))) return rc; }
        else if (!strcmp(a, "--backward")) backward = true;
        else if (!strcmp(a, "--json")) json = true;
        else return usage_error("op: unknown option '%s'", a);
        if (takes) i++;
    }
    bench_case c;
    char err[512];
    if ((rc = bench_case_parse(&c, name, shapes, n_attrs, attrs, backward, err, sizeof err)))
        return usage_error("%s", err);
    bench_result r;
    if ((rc = bench_case_run(&c, &t, &r, err, sizeof err))) {
        fprintf(stderr, "dagflow-bench: %s\n", err);
        return rc;
    }
    if (json) bench_result_json(stdout, &c, &r);
    else bench_result_print(stdout, &c, &r);
    return 0;
}

/* The ops that cannot be built on their own (gradient ops, updates,
 * leaves), with whether each has a cost model. */
static void list_unbuilt(void)
{
    printf("\nnot built on their own (their cost counts in the case that runs them):\n");
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (op->bench || (op->flags & (DF_OP_LEAF | DF_OP_VIEW))) continue;
        printf("%-20s %s\n", op->name, op->cost ? "cost model" : "no cost model");
    }
}

static int cmd_list(void)
{
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (!op->bench) continue;
        const df_bench_def *bd = op->bench;
        printf("%-20s %d input%s%s", op->name, bd->n_inputs, bd->n_inputs == 1 ? " " : "s",
               op->backward ? ", backward" : "");
        printf("%s", op->cost ? ", cost model" : ", no cost model");
        for (int k = 0; k < DF_BENCH_MAX_ATTRS && bd->attrs[k]; k++)
            printf("%s%s=%s", k ? " " : "; attrs ", bd->attrs[k], bd->defaults[k] ? bd->defaults[k] : "(required)");
        printf("\n");
        for (int s = 0; s < 3; s++)
            if (bd->shapes[s]) printf("    %-6s %s\n", (const char *[]){"small", "seed", "large"}[s], bd->shapes[s]);
    }
    list_unbuilt();
    return 0;
}

/* ------------------------------------------------------------ suite */

/* A saved case: its median ("ms") and min ("ms_min"; NAN in a file written
 * before the min was saved). */
typedef struct baseline_entry { char key[400]; double ms_median, ms_min; } baseline_entry;

typedef enum compare_stat { STAT_MIN, STAT_MEDIAN } compare_stat;
static const char *const stat_names[] = {"min", "median"};

static double entry_ms(const baseline_entry *e, compare_stat stat) { return stat == STAT_MIN ? e->ms_min : e->ms_median; }
static double result_ms(const bench_result *r, compare_stat stat) { return stat == STAT_MIN ? r->ms_min : r->ms_median; }
typedef struct baseline { baseline_entry *e; int n; } baseline;

static void case_key(const bench_case *c, char *key, size_t len)
{
    snprintf(key, len, "%s|%s|%s|%s", c->op->name, c->shapes_text, c->attrs_text, c->backward ? "backward" : "forward");
}

/* The string value of "name": "..." in a JSON line written by bench_result_json. */
static bool json_string(const char *line, const char *name, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", name);
    const char *p = strstr(line, pat);
    if (!p) return false;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q) return false;
    snprintf(out, len, "%.*s", (int)(q - p), p);
    return true;
}

static bool json_number(const char *line, const char *name, double *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", name);
    const char *p = strstr(line, pat);
    if (!p) return false;
    char *end;
    *out = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

static int baseline_load(baseline *b, const char *path, compare_stat stat)
{
    FILE *f = fopen(path, "r");
    if (!f) return usage_error("--compare: cannot read '%s'", path);
    char line[2048];
    int cap = 0, without_min = 0;
    while (fgets(line, sizeof line, f)) {
        char op[64], shapes[160], attrs[160], dir[16];
        double ms, ms_min;
        if (!json_string(line, "op", op, sizeof op) || !json_string(line, "shapes", shapes, sizeof shapes) ||
            !json_string(line, "attrs", attrs, sizeof attrs) || !json_string(line, "dir", dir, sizeof dir) ||
            !json_number(line, "ms", &ms))
            continue;
        if (b->n == cap) {
            baseline_entry *more = realloc(b->e, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *more);
            if (!more) break;
            b->e = more;
        }
        if (!json_number(line, "ms_min", &ms_min)) ms_min = NAN, without_min++;
        snprintf(b->e[b->n].key, sizeof b->e[b->n].key, "%s|%s|%s|%s", op, shapes, attrs, dir);
        b->e[b->n].ms_median = ms;
        b->e[b->n++].ms_min = ms_min;
    }
    fclose(f);
    if (b->n == 0) return usage_error("--compare: '%s' holds no results (write one with --save)", path);
    if (stat == STAT_MIN && without_min) {
        const int n = b->n;
        free(b->e);
        *b = (baseline){0};
        return usage_error("--compare: %d of the %d cases in '%s' have no min time (\"ms_min\"; a file from an "
                           "older dagflow-bench): compare with --stat median, or save a new baseline",
                           without_min, n, path);
    }
    return 0;
}

static const baseline_entry *baseline_find(const baseline *b, const bench_case *c)
{
    char key[400];
    case_key(c, key, sizeof key);
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->e[i].key, key)) return &b->e[i];
    return NULL;
}

static bool size_wanted(const char *size, int s)
{
    static const char *names[3] = {"small", "seed", "large"};
    return !size || !strcmp(size, names[s]);
}

static int cmd_suite(int argc, char **argv)
{
    const char *filter = NULL, *size = NULL, *save = NULL, *compare = NULL;
    double threshold = 0.10;
    compare_stat stat = STAT_MIN;
    bench_timing t = {.seconds = 0.3};
    int rc;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) continue;
        if (!v) return usage_error("suite: %s needs a value (or is unknown)", a);
        if (!strcmp(a, "--filter")) filter = v;
        else if (!strcmp(a, "--size")) {
            if (strcmp(v, "small") && strcmp(v, "seed") && strcmp(v, "large"))
                return usage_error("--size '%s': small, seed or large", v);
            size = v;
        } else if (!strcmp(a, "--save")) save = v;
        else if (!strcmp(a, "--compare")) compare = v;
        else if (!strcmp(a, "--stat")) {
            if (strcmp(v, "min") && strcmp(v, "median")) return usage_error("--stat '%s': min or median", v);
            stat = strcmp(v, "min") ? STAT_MEDIAN : STAT_MIN;
        } else if (!strcmp(a, "--threshold")) {
            char *end;
            threshold = strtod(v, &end);
            if (*end || !(threshold >= 0)) return usage_error("--threshold '%s' is not a fraction >= 0", v);
        } else if (!strcmp(a, "--threads")) { if ((rc = set_threads(v))) return rc; }
        else if (!strcmp(a, "--seconds") || !strcmp(a, "--reps")) { if ((rc = parse_timing(a, v, &t))) return rc; }
        else return usage_error("suite: unknown option '%s'", a);
        i++;
    }
    baseline base = {0};
    if (compare && (rc = baseline_load(&base, compare, stat))) return rc;
    FILE *saved = NULL;
    if (save && !(saved = fopen(save, "w"))) {
        free(base.e);
        return usage_error("--save: cannot write '%s'", save);
    }
    char vs[32] = "";
    if (compare) snprintf(vs, sizeof vs, "vs baseline (%s)", stat_names[stat]);
    printf("%-20s %-54s %-8s %9s %9s %9s %8s %8s  %s\n", "op", "shapes / attrs", "dir", "median", "min", "GFLOP/s",
           "GB/s", "% limit", vs);
    int cases = 0, slower = 0, failed = 0;
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (!op->bench || !op->cost || (filter && !strstr(op->name, filter))) continue;
        for (int s = 0; s < 3; s++) {
            if (!op->bench->shapes[s] || !size_wanted(size, s)) continue;
            for (int dir = 0; dir < (op->backward ? 2 : 1); dir++) {
                bench_case c;
                bench_result r;
                char err[512], label[400];
                if (bench_case_parse_entry(&c, op, op->bench->shapes[s], dir == 1, err, sizeof err) ||
                    bench_case_run(&c, &t, &r, err, sizeof err)) {
                    printf("%-20s %-54s FAILED: %s\n", op->name, op->bench->shapes[s], err);
                    failed++;
                    continue;
                }
                cases++;
                snprintf(label, sizeof label, "%s%s%s", c.shapes_text, c.attrs_text[0] ? " " : "", c.attrs_text);
                char ratio[96] = "";
                const baseline_entry *be = compare ? baseline_find(&base, &c) : NULL;
                if (compare && !be) snprintf(ratio, sizeof ratio, "new");
                if (be) {
                    double best = result_ms(&r, stat), base_ms = entry_ms(be, stat);
                    /* a slow result is measured twice more: noise passes, a regression stays */
                    for (int k = 0; k < 2 && best > base_ms * (1 + threshold); k++) {
                        bench_result again;
                        if (bench_case_run(&c, &t, &again, err, sizeof err) == 0 && result_ms(&again, stat) < best)
                            r = again, best = result_ms(&again, stat);
                    }
                    bool slow = best > base_ms * (1 + threshold);
                    slower += slow;
                    snprintf(ratio, sizeof ratio, "%.3fx of %.3f ms%s", best / base_ms, base_ms, slow ? "  SLOWER" : "");
                }
                char gf[32] = "-", gb[32] = "-", pct[32] = "-";
                if (r.costed) {
                    snprintf(gf, sizeof gf, "%.1f", gflops_of(&r));
                    snprintf(gb, sizeof gb, "%.1f", gbs_of(&r));
                    snprintf(pct, sizeof pct, "%.0f%% %c", r.pct_of_limit, r.bound[0]);
                }
                printf("%-20s %-54.54s %-8s %9.3f %9.3f %9s %8s %8s  %s\n", op->name, label,
                       dir ? "fwd+bwd" : "forward", r.ms_median, r.ms_min, gf, gb, pct, ratio);
                fflush(stdout);
                if (saved) bench_result_json(saved, &c, &r);
            }
        }
    }
    if (saved) fclose(saved);
    free(base.e);
    printf("%d cases%s", cases, compare ? "" : "\n");
    if (compare)
        printf(", %d slower than the baseline by more than %.0f%% (%s ms)\n", slower, threshold * 100, stat_names[stat]);
    if (failed) fprintf(stderr, "dagflow-bench: %d cases failed to run\n", failed);
    if (cases == 0 && !failed) return usage_error("suite: no op matches --filter '%s'", filter ? filter : "");
    return slower || failed ? BENCH_EXIT_FAIL : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage_error("a subcommand is needed: op, peak, suite, check, model or list");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    if (!strcmp(cmd, "op")) return cmd_op(argc - 2, argv + 2);
    if (!strcmp(cmd, "peak")) return cmd_peak(argc - 2, argv + 2);
    if (!strcmp(cmd, "suite")) return cmd_suite(argc - 2, argv + 2);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "model")) return cmd_model(argc - 2, argv + 2);
    if (!strcmp(cmd, "list")) return cmd_list();
    return usage_error("unknown subcommand '%s' (op, peak, suite, check, model or list)", cmd);
}
