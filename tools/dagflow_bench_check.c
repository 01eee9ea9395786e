/* dagflow_bench_check.c — `dagflow-bench check`: the correctness mode. Per
 * GEMM path the CPU has (a child process each, DF_GEMM_ISA set before its
 * first product), every op's backward against central differences of its
 * forward (the registry's gradcheck cases, graph/gradcheck.c, at several
 * seeds) and the forward of matmul, batch_matmul, the elementwise table,
 * softmax, layer_norm and attention against naive double-precision loops at
 * random shapes (random transposes, broadcasts, axes and masks). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "dagflow.h"
#include "dagflow_bench.h"
#include "../graph/gradcheck.h"

typedef struct check_tally { int passed, failed; } check_tally;

static const char *filter;
static df_rng rng;

static bool wanted(const char *op) { return !filter || strstr(op, filter); }

static int64_t rand_dim(int64_t lo, int64_t hi) { return lo + (int64_t)df_rng_below(&rng, (uint32_t)(hi - lo + 1)); }

static void record(check_tally *t, bool ok, const char *op, const char *what)
{
    if (ok) t->passed++;
    else {
        t->failed++;
        printf("    FAIL %s: %s\n", op, what);
    }
}

/* ------------------------------------------------------------ gradcheck */

static void check_gradients(check_tally *t, int seeds)
{
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (!op->gradcheck || !wanted(op->name)) continue;
        for (const df_gradcheck_case *c = op->gradcheck; c->build; c++)
            for (int s = 1; s <= seeds; s++) {
                df_gradcheck_result r;
                df_status st = df_gradcheck_case_run(c, (uint64_t)s, &r);
                char what[256];
                snprintf(what, sizeof what, "gradcheck '%s' seed %d: %s, %d of %d entries off (max error %.3g)",
                         c->desc, s, st == DF_OK ? "ran" : df_last_error(), r.failed, r.checked, r.max_abs_err);
                record(t, st == DF_OK && r.failed == 0, op->name, what);
            }
    }
}

/* ------------------------------------------------------------ references */

typedef struct ref_input { int ndim; int64_t shape[DF_MAX_DIMS]; float *data; } ref_input;

static float *random_data(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; p && i < n; i++) p[i] = lo + (hi - lo) * df_rng_uniform(&rng);
    return p;
}

static void make_input(ref_input *x, int ndim, const int64_t *shape, float lo, float hi)
{
    x->ndim = ndim;
    memcpy(x->shape, shape, sizeof(int64_t) * (size_t)ndim);
    x->data = random_data(df_shape_numel(ndim, shape), lo, hi);
}

typedef df_node *(*build_fn)(df_graph *g, df_node **in, const void *p);

/* Runs build on placeholders fed with ins; copies the output (numel
 * elements expected) into a new buffer, NULL on any error (printed). */
static float *evaluate(int n, const ref_input *ins, build_fn build, const void *p, int64_t expect)
{
    df_graph *g = df_graph_new();
    df_node *ph[4];
    df_tensor t[4];
    for (int i = 0; i < n; i++) {
        ph[i] = df_placeholder(g, DF_F32, ins[i].ndim, ins[i].shape, NULL);
        t[i] = df_tensor_make(DF_F32, ins[i].data, ins[i].ndim, ins[i].shape);
    }
    df_node *y = build(g, ph, p);
    df_tensor out;
    float *copy = NULL;
    if (y && df_graph_output(g, y) == DF_OK && df_graph_compile(g) == DF_OK && df_graph_run(g, t, n, &out, 1) == DF_OK &&
        df_tensor_numel(&out) == expect && (copy = malloc((size_t)(expect ? expect : 1) * sizeof *copy)))
        memcpy(copy, out.data, (size_t)expect * sizeof *copy);
    if (!copy) printf("    (graph: %s)\n", df_graph_error(g)[0] ? df_graph_error(g) : df_last_error());
    df_graph_free(g);
    return copy;
}

static bool close_to(const float *got, const double *want, int64_t n, double atol, double rtol, char *why, size_t len)
{
    if (!got) return snprintf(why, len, "did not run"), false;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i]))) {
            snprintf(why, len, "element %lld: %.9g, reference %.9g", (long long)i, got[i], want[i]);
            return false;
        }
    return true;
}

static void free_inputs(ref_input *x, int n)
{
    for (int i = 0; i < n; i++) free(x[i].data);
}

/* matmul / batch_matmul: op(a) @ op(b) per batch (b shared when its batch is 1) */
typedef struct mm_params { bool batched, ta, tb; } mm_params;

static df_node *build_mm(df_graph *g, df_node **in, const void *p)
{
    const mm_params *m = p;
    return m->batched ? df_batch_matmul(g, in[0], in[1], m->ta, m->tb) : df_matmul(g, in[0], in[1], m->ta, m->tb);
}

static void check_matmul(check_tally *t, bool batched, int cases)
{
    const char *name = batched ? "batch_matmul" : "matmul";
    if (!wanted(name)) return;
    for (int c = 0; c < cases; c++) {
        mm_params m = {batched, df_rng_below(&rng, 2), df_rng_below(&rng, 2)};
        int64_t M = rand_dim(1, 70), N = rand_dim(1, 70), K = rand_dim(1, 300);
        int64_t batch = batched ? rand_dim(1, 3) : 1, bb = batched && df_rng_below(&rng, 2) ? 1 : batch;
        ref_input in[2];
        int64_t sa[3] = {batch, m.ta ? K : M, m.ta ? M : K}, sb[3] = {bb, m.tb ? N : K, m.tb ? K : N};
        make_input(&in[0], batched ? 3 : 2, batched ? sa : sa + 1, -1, 1);
        make_input(&in[1], batched ? 3 : 2, batched ? sb : sb + 1, -1, 1);
        double *want = malloc((size_t)(batch * M * N) * sizeof *want);
        for (int64_t p = 0; p < batch; p++) {
            const float *A = in[0].data + p * M * K, *B = in[1].data + (bb == 1 ? 0 : p) * K * N;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++)
                        s += (double)(m.ta ? A[k * M + i] : A[i * K + k]) * (m.tb ? B[j * K + k] : B[k * N + j]);
                    want[p * M * N + i * N + j] = s;
                }
        }
        float *got = evaluate(2, in, build_mm, &m, batch * M * N);
        char why[160], what[256];
        bool ok = close_to(got, want, batch * M * N, 1e-4 * sqrt((double)K), 1e-4, why, sizeof why);
        snprintf(what, sizeof what, "batch %lld (%lld,%lld,%lld)%s%s: %s", (long long)batch, (long long)M,
                 (long long)N, (long long)K, m.ta ? " ta" : "", m.tb ? " tb" : "", why);
        record(t, ok, name, what);
        free(got), free(want), free_inputs(in, 2);
    }
}

/* The elementwise table against its own scalar formulas (df_ew_<name>):
 * this checks the kernels' loops, broadcasting and vector code. */
typedef struct ew_params { const df_op_def *op; int arity; } ew_params;

static df_node *build_ew(df_graph *g, df_node **in, const void *p)
{
    const ew_params *e = p;
    return e->op->bench->build(g, in, NULL);
}

static double ew_reference(const char *name, float a, float b)
{
#define DF_EW(op, CODE, arity, ...) if (!strcmp(name, #op)) return DF_EW_REF_##arity(op);
#define DF_EW_REF_1(op) (double)df_ew_##op(a)
#define DF_EW_REF_2(op) (double)df_ew_##op(a, b)
#include "../ops/elementwise.def"
#undef DF_EW_REF_1
#undef DF_EW_REF_2
    return NAN;
}

static void check_elementwise(check_tally *t, int cases)
{
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (!(op->flags & DF_OP_ELEMENTWISE) || !op->bench || !wanted(op->name)) continue;
        ew_params e = {op, op->bench->n_inputs};
        for (int c = 0; c < cases; c++) {
            int nd = (int)rand_dim(1, 3);
            int64_t sa[3], sb[3];
            for (int d = 0; d < nd; d++) {
                sa[d] = rand_dim(1, 40);
                sb[d] = df_rng_below(&rng, 3) == 0 ? 1 : sa[d];      /* broadcast b along some axes */
            }
            ref_input in[2];
            make_input(&in[0], nd, sa, 0.5f, 2.0f);
            make_input(&in[1], nd, sb, 0.5f, 2.0f);
            int64_t n = df_shape_numel(nd, sa);
            double *want = malloc((size_t)n * sizeof *want);
            for (int64_t k = 0; k < n; k++) {
                int64_t rem = k, kb = 0, stride = 1;
                for (int d = nd - 1; d >= 0; d--) {         /* index into b: 0 along its broadcast axes */
                    int64_t idx = rem % sa[d];
                    rem /= sa[d];
                    kb += (sb[d] == 1 ? 0 : idx) * stride;
                    stride *= sb[d];
                }
                want[k] = ew_reference(op->name, in[0].data[k], e.arity == 2 ? in[1].data[kb] : 0);
            }
            float *got = evaluate(e.arity, in, build_ew, &e, n);
            char why[160], what[256];
            bool ok = close_to(got, want, n, 1e-6, 1e-5, why, sizeof why);
            snprintf(what, sizeof what, "%d-d %lld elements: %s", nd, (long long)n, why);
            record(t, ok, op->name, what);
            free(got), free(want), free_inputs(in, 2);
        }
    }
}

/* softmax along a random axis */
static df_node *build_softmax(df_graph *g, df_node **in, const void *p) { return df_softmax(g, in[0], *(const int *)p); }

static void check_softmax(check_tally *t, int cases)
{
    if (!wanted("softmax")) return;
    for (int c = 0; c < cases; c++) {
        int nd = (int)rand_dim(1, 3), axis = (int)df_rng_below(&rng, (uint32_t)nd);
        int64_t s[3];
        for (int d = 0; d < nd; d++) s[d] = rand_dim(1, 30);
        ref_input in;
        make_input(&in, nd, s, -4, 4);
        int64_t n = df_shape_numel(nd, s), len = s[axis], inner = 1;
        for (int d = axis + 1; d < nd; d++) inner *= s[d];
        double *want = malloc((size_t)n * sizeof *want);
        for (int64_t o = 0; o < n / (len * inner); o++)
            for (int64_t j = 0; j < inner; j++) {
                const float *x = in.data + o * len * inner + j;
                double sum = 0;
                for (int64_t k = 0; k < len; k++) sum += exp(x[k * inner]);
                for (int64_t k = 0; k < len; k++) want[o * len * inner + j + k * inner] = exp(x[k * inner]) / sum;
            }
        float *got = evaluate(1, &in, build_softmax, &axis, n);
        char why[160], what[256];
        bool ok = close_to(got, want, n, 1e-6, 1e-5, why, sizeof why);
        snprintf(what, sizeof what, "%d-d axis %d: %s", nd, axis, why);
        record(t, ok, "softmax", what);
        free(got), free(want), free_inputs(&in, 1);
    }
}

/* layer_norm over the last axis with gain and bias */
static df_node *build_ln(df_graph *g, df_node **in, const void *p) { return df_layer_norm(g, in[0], in[1], in[2], 1e-5f); }

static void check_layer_norm(check_tally *t, int cases)
{
    if (!wanted("layer_norm")) return;
    for (int c = 0; c < cases; c++) {
        int64_t rows = rand_dim(1, 50), C = rand_dim(1, 200);
        ref_input in[3];
        make_input(&in[0], 2, (int64_t[]){rows, C}, -3, 3);
        make_input(&in[1], 1, &C, 0.5f, 1.5f);
        make_input(&in[2], 1, &C, -1, 1);
        double *want = malloc((size_t)(rows * C) * sizeof *want);
        for (int64_t r = 0; r < rows; r++) {
            const float *x = in[0].data + r * C;
            double mean = 0, var = 0;
            for (int64_t j = 0; j < C; j++) mean += x[j] / (double)C;
            for (int64_t j = 0; j < C; j++) var += (x[j] - mean) * (x[j] - mean) / (double)C;
            for (int64_t j = 0; j < C; j++)
                want[r * C + j] = (x[j] - mean) / sqrt(var + 1e-5) * in[1].data[j] + in[2].data[j];
        }
        float *got = evaluate(3, in, build_ln, NULL, rows * C);
        char why[160], what[256];
        bool ok = close_to(got, want, rows * C, 1e-5, 1e-5, why, sizeof why);
        snprintf(what, sizeof what, "(%lld,%lld): %s", (long long)rows, (long long)C, why);
        record(t, ok, "layer_norm", what);
        free(got), free(want), free_inputs(in, 3);
    }
}

/* attention: softmax(q k^T scale, causal mask aligned to the last key) v */
typedef struct att_params { bool causal; float scale; } att_params;

static df_node *build_att(df_graph *g, df_node **in, const void *p)
{
    const att_params *a = p;
    return df_attention(g, in[0], in[1], in[2], a->causal, a->scale);
}

static void check_attention(check_tally *t, int cases)
{
    if (!wanted("attention")) return;
    for (int c = 0; c < cases; c++) {
        int64_t L = rand_dim(1, 4), Tq = rand_dim(1, 70), Tk = Tq + (df_rng_below(&rng, 2) ? rand_dim(0, 40) : 0);
        int64_t d = rand_dim(1, 70), dv = rand_dim(1, 70);
        att_params a = {df_rng_below(&rng, 2), (float)(1.0 / sqrt((double)d))};
        ref_input in[3];
        make_input(&in[0], 3, (int64_t[]){L, Tq, d}, -1, 1);
        make_input(&in[1], 3, (int64_t[]){L, Tk, d}, -1, 1);
        make_input(&in[2], 3, (int64_t[]){L, Tk, dv}, -1, 1);
        double *want = calloc((size_t)(L * Tq * dv), sizeof *want), *s = malloc((size_t)Tk * sizeof *s);
        for (int64_t p = 0; p < L; p++)
            for (int64_t i = 0; i < Tq; i++) {
                const float *q = in[0].data + (p * Tq + i) * d;
                double max = -INFINITY, sum = 0;
                int64_t visible = a.causal ? i + (Tk - Tq) + 1 : Tk;
                for (int64_t j = 0; j < visible; j++) {
                    const float *k = in[1].data + (p * Tk + j) * d;
                    double dot = 0;
                    for (int64_t e = 0; e < d; e++) dot += (double)q[e] * k[e];
                    s[j] = dot * a.scale;
                    if (s[j] > max) max = s[j];
                }
                for (int64_t j = 0; j < visible; j++) sum += (s[j] = exp(s[j] - max));
                for (int64_t j = 0; j < visible; j++)
                    for (int64_t e = 0; e < dv; e++)
                        want[(p * Tq + i) * dv + e] += s[j] / sum * in[2].data[(p * Tk + j) * dv + e];
            }
        float *got = evaluate(3, in, build_att, &a, L * Tq * dv);
        char why[160], what[256];
        bool ok = close_to(got, want, L * Tq * dv, 1e-5, 1e-4, why, sizeof why);
        snprintf(what, sizeof what, "%lld x q (%lld,%lld) k (%lld) dv %lld%s: %s", (long long)L, (long long)Tq,
                 (long long)d, (long long)Tk, (long long)dv, a.causal ? " causal" : "", why);
        record(t, ok, "attention", what);
        free(got), free(want), free(s), free_inputs(in, 3);
    }
}

/* ------------------------------------------------------------ per path */

static int run_checks(const char *path, int seeds)
{
    setenv("DF_GEMM_ISA", path, 1);
    df_rng_seed(&rng, 2026);
    check_tally t = {0, 0};
    check_gradients(&t, seeds);
    check_matmul(&t, false, 30);
    check_matmul(&t, true, 15);
    check_elementwise(&t, 4);
    check_softmax(&t, 10);
    check_layer_norm(&t, 10);
    check_attention(&t, 10);
    printf("%-9s %5d passed %5d failed\n", path, t.passed, t.failed);
    fflush(stdout);
    return t.failed ? BENCH_EXIT_FAIL : (t.passed ? 0 : BENCH_EXIT_USAGE);
}

int cmd_check(int argc, char **argv)
{
    int seeds = 3;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) seeds = atoi(argv[++i]);
        else {
            fprintf(stderr, "dagflow-bench: check: unknown option '%s'\n", argv[i]);
            return BENCH_EXIT_USAGE;
        }
    }
    if (seeds < 1 || seeds > 1000) {
        fprintf(stderr, "dagflow-bench: check: --seeds takes 1 to 1000\n");
        return BENCH_EXIT_USAGE;
    }
    const char *paths[4] = {"openblas", "portable"};
    int n = 2;
    if (df_gemm_kernels_for(DF_GEMM_AVX2)) paths[n++] = "avx2";
    if (df_gemm_kernels_for(DF_GEMM_AVX512)) paths[n++] = "avx512";
    printf("GEMM path  cases (gradcheck x %d seeds, naive references)%s%s\n", seeds, filter ? ", ops matching " : "",
           filter ? filter : "");
    fflush(stdout);
    int worst = 0;
    for (int p = 0; p < n; p++) {
        /* DF_GEMM_ISA is read once, at a process's first product: one child per path */
        pid_t pid = fork();
        if (pid == 0) _exit(run_checks(paths[p], seeds));
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0) {
            perror("dagflow-bench: check");
            return BENCH_EXIT_FAIL;
        }
        int rc = WIFEXITED(status) ? WEXITSTATUS(status) : BENCH_EXIT_FAIL;
        if (!WIFEXITED(status)) printf("%-9s crashed (signal %d)\n", paths[p], WTERMSIG(status));
        if (rc == BENCH_EXIT_USAGE) {
            fprintf(stderr, "dagflow-bench: check: no op matches --filter '%s'\n", filter ? filter : "");
            return BENCH_EXIT_USAGE;
        }
        if (rc > worst) worst = rc;
    }
    return worst;
}
