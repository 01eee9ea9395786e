/* memo.c — values a graph can keep from one run to the next.
 *
 * A node is run-constant when its value depends only on variables the graph
 * does not write itself (and on constants): an Embedding's table projected
 * by the next layer's kernel, a transposed weight. Such values are the same
 * on every run until one of those variables changes, which its version says
 * (src/variable.c bumps it on every write the library makes). So:
 *
 *   - df_graph_hoist_gathers (a rewrite pass, with DF_PASS_FOLD) turns
 *     matmul(gather(E, ids), W) [+ b] into gather(E @ W [+ b], ids) when E,
 *     W and b are run-constant reads. Each row of the table is the same dot
 *     products in the same k order as the row it replaces, so the bits do
 *     not change; at batch 1 the step then reads 4H floats per id instead of
 *     the E x 4H kernel.
 *   - df_graph_plan_memo (at compile) marks the run-constant nodes, gives the
 *     ones the rest of the graph reads (the roots) buffers of their own
 *     outside the reused arena, and records the variables they read.
 *   - df_memo_reusable / df_memo_ran (graph/exec.c) skip the run-constant
 *     nodes on a run when every one of those variables has the version it
 *     had at the end of the last complete run.
 *
 * The writes a graph makes to variables count too: exec bumps the version of
 * what a side-effect node writes, so a train step in another graph
 * invalidates the table of the sampling graph. */
#include <stdatomic.h>
#include <string.h>
#include "graph.h"
#include "../ops/registry.h"
#include "../ops/elementwise.h"

struct df_memo {
    int n_vars;
    const df_variable **vars;     /* what the run-constant nodes read */
    uint64_t *versions;           /* at the end of the last complete run */
    bool have_versions;
    int n_nodes;                  /* run-constant nodes with work, skipped on reuse */
    int64_t runs_reused;
};

static bool is_variable_read(const df_node *n)
{
    return (n->op->flags & DF_OP_LEAF) && n->op->attrs_kind == DF_ATTRS_VARIABLE;
}

static const df_variable *variable_of(const df_node *n) { return DF_ATTRS(n, df_update_attrs)->var; }

/* Whether some side-effect node of g writes v: as its target, or as a
 * variable it reads and updates in place (an optimizer's slots). */
static bool written_in(const df_graph *g, const df_variable *v)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const df_node *n = g->nodes[i];
        if (!(n->op->flags & DF_OP_SIDE_EFFECT)) continue;
        if (n->op->attrs_kind == DF_ATTRS_VARIABLE && variable_of(n) == v) return true;
        for (int k = 0; k < n->n_in; k++)
            if (is_variable_read(n->in[k]) && variable_of(n->in[k]) == v) return true;
    }
    return false;
}

/* Run-constant: a read of a variable g does not write, a constant, or a pure
 * op (not an input, side effect or random draw) of run-constant inputs only.
 * Nodes come in topological order, so inputs are decided first. */
static void mark_run_constant(df_graph *g, bool *rc)
{
    for (int id = 0; id < g->n_nodes; id++) {
        const df_node *n = g->nodes[id];
        const unsigned flags = n->op->flags;
        if (is_variable_read(n)) rc[id] = !written_in(g, variable_of(n));
        else if (flags & DF_OP_CONSTANT) rc[id] = true;
        else if (flags & (DF_OP_INPUT | DF_OP_SIDE_EFFECT | DF_OP_NO_CSE | DF_OP_LEAF) || n->n_in == 0) rc[id] = false;
        else {
            rc[id] = true;
            for (int k = 0; k < n->n_in && rc[id]; k++) rc[id] = rc[n->in[k]->id];
        }
    }
}

/* ------------------------------------------------------- gather hoisting */

/* Replaces every read of old (and old as an output) with new_. */
static void replace_uses(df_graph *g, df_node *old, df_node *new_)
{
    for (int i = 0; i < g->n_nodes; i++) {
        df_node *n = g->nodes[i];
        if (n == new_) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == old) n->in[k] = new_;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == old) g->outputs[i] = new_;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* matmul(gather(E, ids), W) with neither operand transposed (matmul's
 * attributes all zero) and W a matrix: its gather, else NULL. */
static df_node *gathered_matmul(const df_node *m, const bool *rc)
{
    if (m->op != &df_op_matmul || !all_zero(m->attrs, m->op->attrs_size)) return NULL;
    df_node *x = m->in[0], *w = m->in[1];
    if (x->op != &df_op_gather || w->ndim != 2 || !rc[x->in[0]->id] || !rc[w->id]) return NULL;
    return x;
}

/* add(rows, b) or add(b, rows), rows the gather of a hoisted table and b
 * a run-constant vector of its row width (a bias): which operand is rows,
 * else -1. */
static int gathered_bias_add(const df_node *a, const df_node *rows, const bool *rc)
{
    if (a->op->elementwise != DF_EW_ADD || a->n_in != 2 || a->numel != rows->numel) return -1;
    for (int k = 0; k < 2; k++) {
        const df_node *b = a->in[1 - k];
        if (a->in[k] == rows && b->id < (int)(rows->id) && rc[b->id] && b->ndim == 1 &&
            b->shape[0] == rows->shape[rows->ndim - 1])
            return k;
    }
    return -1;
}

/* Puts g's nodes back into a topological order (inputs before readers,
 * otherwise as created) after rewrites appended nodes that earlier ones
 * now read. */
static df_status renumber(df_graph *g)
{
    const int n = g->n_nodes;
    df_node **order = df_malloc(((size_t)n + 1) * sizeof *order), **stack = df_malloc(((size_t)n + 1) * sizeof *stack);
    int *next_in = df_calloc((size_t)n + 1, sizeof *next_in);
    bool *done = df_calloc((size_t)n + 1, sizeof *done);
    if (!order || !stack || !next_in || !done) {
        df_free(order), df_free(stack), df_free(next_in), df_free(done);
        return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory reordering %d nodes", n);
    }
    int emitted = 0;
    for (int id = 0; id < n; id++) {
        if (done[id]) continue;
        int top = 0;
        stack[top++] = g->nodes[id];
        while (top > 0) {
            df_node *x = stack[top - 1];
            if (next_in[x->id] < x->n_in) {
                df_node *in = x->in[next_in[x->id]++];
                if (!done[in->id]) stack[top++] = in;   /* acyclic: never already on the stack */
                continue;
            }
            top--;
            if (!done[x->id]) {
                done[x->id] = true;
                order[emitted++] = x;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        g->nodes[i] = order[i];
        order[i]->id = i;
    }
    df_free(order), df_free(stack), df_free(next_in), df_free(done);
    return DF_OK;
}

int df_graph_hoist_gathers(df_graph *g)
{
    bool *rc = df_calloc((size_t)g->n_nodes + 1, sizeof *rc);
    if (!rc) {
        df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory");
        return 0;
    }
    mark_run_constant(g, rc);
    int rewrites = 0;
    const int n_before = g->n_nodes;
    for (int id = 0; id < n_before && g->status == DF_OK; id++) {
        df_node *m = g->nodes[id], *x = gathered_matmul(m, rc);
        if (!x) continue;
        df_node *table = df_matmul(g, x->in[0], m->in[1], false, false);
        df_node *rows = df_gather(g, table, x->in[1]);
        if (!rows) break;
        replace_uses(g, m, rows);
        rewrites++;
        /* a bias added to the rows joins the table */
        for (int r = 0; r < n_before; r++) {
            df_node *a = g->nodes[r];
            const int k = gathered_bias_add(a, rows, rc);
            if (k < 0) continue;
            df_node *bias = a->in[1 - k];
            df_node *biased = k == 0 ? df_add(g, table, bias) : df_add(g, bias, table);
            df_node *biased_rows = df_gather(g, biased, x->in[1]);
            if (!biased_rows) break;
            replace_uses(g, a, biased_rows);
            break;
        }
    }
    df_free(rc);
    if (rewrites && g->status == DF_OK) renumber(g);
    return rewrites;
}

/* ---------------------------------------------------- planning and runs */

static size_t round_up(size_t n) { return (n + DF_ALIGN - 1) / DF_ALIGN * DF_ALIGN; }

static df_node *storage_root(df_node *n)
{
    while ((n->op->flags & DF_OP_VIEW) && n->n_in > 0) n = n->in[0];
    return n;
}

static bool has_work(const df_node *n) { return n->op->forward && !(n->op->flags & (DF_OP_VIEW | DF_OP_EXTERNAL)); }

/* A root: a run-constant node with work that a node outside the set (or an
 * output) reads, directly or through views. */
static void mark_roots(df_graph *g, const bool *rc)
{
    for (int p = 0; p < g->n_sched; p++) {
        df_node *n = g->schedule[p];
        if (rc[n->id]) continue;
        for (int k = 0; k < n->n_in; k++) {
            df_node *r = storage_root(n->in[k]);
            if (rc[r->id] && has_work(r)) r->memo_root = true;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        df_node *r = storage_root(g->outputs[i]);
        if (rc[r->id] && has_work(r)) r->memo_root = true;
    }
}

/* Roots get their own buffer in the graph's memory, so the arena's reuse
 * never overwrites a kept value. */
static df_status place_roots(df_graph *g)
{
    for (int p = 0; p < g->n_sched; p++) {
        df_node *n = g->schedule[p];
        if (!n->memo_root) continue;
        const size_t bytes = round_up((size_t)n->numel * df_dtype_size(n->dtype));
        char *raw = df_arena_alloc(&g->arena, bytes + round_up(n->aux_bytes) + DF_ALIGN);
        if (!raw) return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory for a kept value");
        n->data = raw + (DF_ALIGN - (uintptr_t)raw % DF_ALIGN) % DF_ALIGN;
        n->aux = n->aux_bytes ? (char *)n->data + bytes : NULL;
    }
    return DF_OK;
}

static df_status record_variables(df_graph *g, struct df_memo *m, const bool *rc)
{
    m->vars = df_arena_alloc(&g->arena, ((size_t)g->n_sched + 1) * sizeof *m->vars);
    if (!m->vars) return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory");
    for (int p = 0; p < g->n_sched; p++) {
        const df_node *n = g->schedule[p];
        if (rc[n->id] && is_variable_read(n)) m->vars[m->n_vars++] = variable_of(n);
        if (rc[n->id] && has_work(n)) {
            g->schedule[p]->memo = true;
            m->n_nodes++;
        }
    }
    m->versions = df_arena_alloc(&g->arena, ((size_t)m->n_vars + 1) * sizeof *m->versions);
    return m->versions ? DF_OK : df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory");
}

df_status df_graph_plan_memo(df_graph *g)
{
    g->memo = NULL;
    if (!(g->passes & DF_PASS_FOLD)) return DF_OK;
    bool *rc = df_calloc((size_t)g->n_nodes + 1, sizeof *rc);
    if (!rc) return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory");
    mark_run_constant(g, rc);
    mark_roots(g, rc);
    bool any = false;
    for (int p = 0; p < g->n_sched; p++) any |= g->schedule[p]->memo_root;
    df_status st = DF_OK;
    if (any) {
        struct df_memo *m = df_arena_alloc(&g->arena, sizeof *m);
        st = !m ? df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory") : record_variables(g, m, rc);
        if (st == DF_OK) st = place_roots(g);
        if (st == DF_OK) g->memo = m;
    }
    df_free(rc);
    return st;
}

bool df_memo_reusable(df_graph *g)
{
    struct df_memo *m = g->memo;
    if (!m || !m->have_versions) return false;
    for (int i = 0; i < m->n_vars; i++)
        if (df_variable_version(m->vars[i]) != m->versions[i]) return false;
    m->runs_reused++;
    return true;
}

void df_memo_ran(df_graph *g)
{
    struct df_memo *m = g->memo;
    if (!m) return;
    for (int i = 0; i < m->n_vars; i++) m->versions[i] = df_variable_version(m->vars[i]);
    m->have_versions = true;
}

void df_memo_forget(df_graph *g)
{
    if (g->memo) g->memo->have_versions = false;
}

/* What a side-effect node writes gets a new version. */
void df_memo_node_wrote(const df_node *n)
{
    if (n->op->attrs_kind == DF_ATTRS_VARIABLE) df_variable_touch(variable_of(n));
    for (int k = 0; k < n->n_in; k++)
        if (is_variable_read(n->in[k])) df_variable_touch(variable_of(n->in[k]));
}

df_status df_graph_memo_stats(const df_graph *g, int64_t *runs_reused, int *nodes)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_memo_stats: null graph");
    if (runs_reused) *runs_reused = g->memo ? g->memo->runs_reused : 0;
    if (nodes) *nodes = g->memo ? g->memo->n_nodes : 0;
    return DF_OK;
}
