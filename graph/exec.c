/* exec.c — run a compiled graph: feed placeholders, run each scheduled op in
 * order (kernels parallelise inside with OpenMP; GEMMs go to OpenBLAS on the
 * same OpenMP pool), hand back output views. Run-constant nodes are skipped
 * while their values still hold (graph/memo.c); small ops run on one thread
 * (small_op). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"
#include "../src/base.h"

static df_status check_input(df_graph *g, int i, const df_tensor *t)
{
    df_node *ph = g->placeholders[i];
    char a[64], b[64];
    if (!t->data && df_tensor_numel(t) > 0)
        return df_error(DF_ERR_ARG, "input %d ('%s'): null data", i, df_node_name(ph));
    if (t->dtype != ph->dtype)
        return df_error(DF_ERR_DTYPE, "input %d ('%s'): expected %s, got %s", i, df_node_name(ph),
                        df_dtype_name(ph->dtype), df_dtype_name(t->dtype));
    if (!df_shape_equal(t->ndim, t->shape, ph->ndim, ph->shape))
        return df_error(DF_ERR_SHAPE, "input %d ('%s'): expected shape %s, got %s", i, df_node_name(ph),
                        df_node_shape_str(ph, a, sizeof a), df_shape_str(t->ndim, t->shape, b, sizeof b));
    return DF_OK;
}

/* An op below these does not pay for a parallel region: forking and joining
 * costs microseconds on a quiet machine and a scheduler slice (ms) when
 * another process holds a core, while such an op takes tens of microseconds
 * on one. A batch-1 step is made of them (char-gpt's sampling step: about a
 * hundred, whose per-head batch_matmul regions made 2 threads 20x slower
 * than 1 next to busy processes); the one large product of a step (an LSTM's
 * recurrent weight) stays parallel. Results do not change: every kernel
 * gives the same bits on any thread count. */
#define SMALL_OP_FLOPS (1 << 20)
#define SMALL_OP_BYTES (1 << 20)

static bool small_op(const df_node *n)
{
    df_op_cost c = {0, df_cost_io_bytes(n)};
    if (n->op->cost) n->op->cost(n, &c);
    return c.flops < SMALL_OP_FLOPS && c.bytes < SMALL_OP_BYTES;
}

/* n's forward, on one thread when it is small or while the machine is too
 * busy to give each thread a core (src/team.c's verdict, which then also
 * covers loops and OpenBLAS calls that do not ask it themselves). */
static df_status run_node(df_node *n, int threads)
{
    if (threads <= 1 || (!small_op(n) && df_team_size(threads) > 1)) return n->op->forward(n);
    omp_set_num_threads(1);
    df_status st = n->op->forward(n);
    omp_set_num_threads(threads);
    return st;
}

df_status df_graph_run(df_graph *g, const df_tensor *inputs, int n_inputs,
                       df_tensor *outputs, int n_outputs)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_run: null graph");
    df_status st = df_graph_compile(g);
    if (st != DF_OK) return st;
    if (n_inputs != g->n_placeholders)
        return df_error(DF_ERR_ARG, "df_graph_run: graph has %d inputs, %d given", g->n_placeholders, n_inputs);
    if (n_inputs > 0 && !inputs) return df_error(DF_ERR_ARG, "df_graph_run: null inputs");
    if (n_outputs > g->n_outputs)
        return df_error(DF_ERR_ARG, "df_graph_run: graph has %d outputs, %d asked for", g->n_outputs, n_outputs);
    if (n_outputs > 0 && !outputs) return df_error(DF_ERR_ARG, "df_graph_run: null outputs");
    if (g->dynamic) {                        /* checks inputs against the signature, plans their shapes */
        if ((st = df_graph_specialize(g, inputs, n_inputs)) != DF_OK) return st;
    } else {
        for (int i = 0; i < n_inputs; i++)
            if ((st = check_input(g, i, &inputs[i])) != DF_OK) return st;
    }
    for (int i = 0; i < n_inputs; i++) {
        df_node *ph = g->placeholders[i];
        if (ph->numel) memcpy(ph->data, inputs[i].data, (size_t)ph->numel * df_dtype_size(ph->dtype));
    }
    df_enable_ftz_all_threads();
    const bool reuse = df_memo_reusable(g);      /* run-constant values still hold (graph/memo.c) */
    const int threads = omp_get_max_threads();
    for (int p = 0; p < g->n_sched; p++) {
        df_node *n = g->schedule[p];
        if (!n->op->forward || (reuse && n->memo)) continue;
        double start = g->profiling ? omp_get_wtime() : 0;
        st = run_node(n, threads);
        if (g->profiling) n->profile_seconds += omp_get_wtime() - start;
        if (n->op->flags & DF_OP_SIDE_EFFECT) df_memo_node_wrote(n);
        if (st != DF_OK) {
            df_memo_forget(g);
            char msg[512];
            snprintf(msg, sizeof msg, "%s", df_last_error());
            return df_error(st, "run: op '%s' (node %d%s%s): %s", n->op->name, n->id,
                            n->name ? " " : "", n->name ? n->name : "", msg);
        }
    }
    df_memo_ran(g);
    if (g->profiling) g->profiled_runs++;
    for (int i = 0; i < n_outputs; i++) {
        df_node *o = g->outputs[i];
        outputs[i] = df_tensor_make(o->dtype, o->data, o->ndim, o->shape);
    }
    return DF_OK;
}

df_status df_graph_set_profiling(df_graph *g, bool on)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_set_profiling: null graph");
    if (on && !g->profiling) {               /* a fresh measurement */
        for (int i = 0; i < g->n_nodes; i++) g->nodes[i]->profile_seconds = 0;
        g->profiled_runs = 0;
    }
    g->profiling = on;
    return DF_OK;
}

static int by_seconds_desc(const void *a, const void *b)
{
    double x = ((const df_op_profile *)a)->seconds, y = ((const df_op_profile *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

int df_graph_profile(const df_graph *g, df_op_profile *out, int max, int64_t *runs)
{
    if (runs) *runs = g ? g->profiled_runs : 0;
    if (!g || !g->compiled) return 0;
    df_op_profile *all = df_calloc((size_t)g->n_sched + 1, sizeof *all);
    if (!all) return 0;
    int n_ops = 0;
    for (int p = 0; p < g->n_sched; p++) {       /* group by op, in first-seen order */
        const df_node *n = g->schedule[p];
        if (!n->op->forward) continue;           /* leaves and views take no time */
        int k = 0;
        while (k < n_ops && all[k].op != n->op->name) k++;
        if (k == n_ops) all[n_ops++] = (df_op_profile){.op = n->op->name};
        all[k].nodes++;
        all[k].seconds += n->profile_seconds;
    }
    qsort(all, (size_t)n_ops, sizeof *all, by_seconds_desc);
    for (int k = 0; k < n_ops && k < max && out; k++) out[k] = all[k];
    df_free(all);
    return n_ops;
}
