/* plan.c — compile a graph: keep the nodes that outputs and side effects need,
 * order them, and carve one arena into tensors, reusing a buffer once its last
 * reader has run (greedy first-fit over offsets). */
#include <stdlib.h>
#include <string.h>
#include "graph.h"

/* A planned buffer: bytes, the schedule positions it is live in, and its place. */
typedef struct block { size_t size, offset; int first, last; int pos; } block;

static size_t round_up(size_t n) { return (n + DF_ALIGN - 1) / DF_ALIGN * DF_ALIGN; }

/* The node whose buffer a view ultimately shares. */
static df_node *storage_root(df_node *n)
{
    while ((n->op->flags & DF_OP_VIEW) && n->n_in > 0) n = n->in[0];
    return n;
}

/* Not views, variables, constants or kept run-constant values (graph/memo.c). */
static bool needs_arena(const df_node *n)
{
    return !(n->op->flags & (DF_OP_VIEW | DF_OP_EXTERNAL)) && !n->memo_root;
}

/* Marks live nodes (reachable backward from outputs and side effects) and
 * returns the schedule: side-effect-free work first, then side effects and
 * what depends on them, each part in creation order. */
static df_status schedule_nodes(df_graph *g)
{
    int n = g->n_nodes;
    bool *live = df_calloc((size_t)n + 1, sizeof *live);
    bool *after_effect = df_calloc((size_t)n + 1, sizeof *after_effect);
    g->schedule = df_malloc(((size_t)n + 1) * sizeof *g->schedule);
    if (!live || !after_effect || !g->schedule) {
        df_free(live);
        df_free(after_effect);
        return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory scheduling %d nodes", n);
    }
    for (int i = 0; i < g->n_outputs; i++) live[g->outputs[i]->id] = true;
    for (int id = n - 1; id >= 0; id--) {
        df_node *node = g->nodes[id];
        if (node->op->flags & (DF_OP_SIDE_EFFECT | DF_OP_INPUT)) live[id] = true;
        if (live[id])
            for (int i = 0; i < node->n_in; i++) live[node->in[i]->id] = true;
    }
    for (int id = 0; id < n; id++) {
        df_node *node = g->nodes[id];
        after_effect[id] = (node->op->flags & DF_OP_SIDE_EFFECT) != 0;
        for (int i = 0; i < node->n_in && !after_effect[id]; i++) after_effect[id] = after_effect[node->in[i]->id];
    }
    g->n_sched = 0;
    for (int phase = 0; phase < 2; phase++)
        for (int id = 0; id < n; id++)
            if (live[id] && after_effect[id] == (phase == 1)) {
                g->nodes[id]->sched_pos = g->n_sched;
                g->schedule[g->n_sched++] = g->nodes[id];
            }
    df_free(live);
    df_free(after_effect);
    return DF_OK;
}

/* last_use of each arena-owning node: the last position that reads it (or any
 * view of it); outputs stay alive to the end. */
static void compute_liveness(df_graph *g)
{
    for (int p = 0; p < g->n_sched; p++) {
        df_node *root = storage_root(g->schedule[p]);
        if (root->last_use < p) root->last_use = p;
        df_node *node = g->schedule[p];
        for (int i = 0; i < node->n_in; i++) {
            if (df_input_shape_only(node, i)) continue;      /* its buffer is never read */
            df_node *r = storage_root(node->in[i]);
            if (r->last_use < p) r->last_use = p;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) storage_root(g->outputs[i])->last_use = g->n_sched;
    for (int p = 0; p < g->n_sched; p++)
        if (g->schedule[p]->op->flags & DF_OP_INPUT) g->schedule[p]->last_use = g->n_sched;
}

static int by_size_desc(const void *a, const void *b)
{
    const block *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->first - y->first;                 /* ties: schedule order, for a stable plan */
}

static int by_offset(const void *a, const void *b)
{
    size_t x = (*(const block *const *)a)->offset, y = (*(const block *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Lowest offset where b fits between the already placed blocks whose
 * lifetimes overlap b's (those are sorted by offset in conflicts). */
static size_t lowest_fit(const block *b, block **conflicts, int n)
{
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (conflicts[i]->offset >= offset + b->size) break;
        size_t end = conflicts[i]->offset + conflicts[i]->size;
        if (end > offset) offset = end;
    }
    return offset;
}

/* Greedy by size: the largest buffers are placed first, each at the lowest
 * offset free during its lifetime, which keeps big tensors from being
 * split around small ones (what first-fit in schedule order suffers from).
 * Without DF_PASS_REUSE every buffer lives for the whole run. */
/* The node whose buffer n finally uses (n itself unless planned in place). */
static df_node *buffer_owner(df_node *n)
{
    while (n->inplace_of) n = n->inplace_of;
    return n;
}

/* An elementwise node may compute into an input of the same size that it is
 * the last reader of: it reads each element before writing the same element.
 * Returns how many nodes were planned in place. */
static int plan_in_place(df_graph *g)
{
    int count = 0;
    for (int p = 0; p < g->n_sched; p++) {
        df_node *n = g->schedule[p];
        if (!(n->op->flags & DF_OP_ELEMENTWISE) || !needs_arena(n) || n->aux_bytes) continue;
        for (int i = 0; i < n->n_in && !n->inplace_of; i++) {
            df_node *x = n->in[i];
            if (needs_arena(x) && !(x->op->flags & DF_OP_INPUT) && x->last_use == p && x->numel == n->numel &&
                x->dtype == n->dtype) {
                n->inplace_of = buffer_owner(x);
                count++;
            }
        }
    }
    return count;
}

static df_status plan_memory(df_graph *g, size_t *offsets)
{
    block *blocks = df_malloc(((size_t)g->n_sched + 1) * sizeof *blocks);
    block **conflicts = df_malloc(((size_t)g->n_sched + 1) * sizeof *conflicts);
    if (!blocks || !conflicts) {
        df_free(blocks);
        df_free(conflicts);
        return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory planning");
    }
    bool reuse = g->passes & DF_PASS_REUSE;
    int n = 0;
    size_t total = 0, peak = 0;
    for (int p = 0; p < g->n_sched; p++) {
        df_node *node = g->schedule[p];
        if (!needs_arena(node)) continue;
        size_t bytes = round_up((size_t)node->numel * df_dtype_size(node->dtype)) + round_up(node->aux_bytes);
        total += bytes;
        if (node->inplace_of) continue;          /* shares its owner's block */
        blocks[n++] = (block){bytes, 0, reuse ? p : 0, reuse ? node->last_use : g->n_sched, p};
    }
    for (int p = 0; p < g->n_sched && reuse; p++) {   /* an owner's block lives as long as its last member */
        df_node *node = g->schedule[p];
        if (!node->inplace_of) continue;
        int owner_pos = buffer_owner(node)->sched_pos;
        for (int i = 0; i < n; i++)
            if (blocks[i].pos == owner_pos && blocks[i].last < node->last_use) blocks[i].last = node->last_use;
    }
    qsort(blocks, (size_t)n, sizeof *blocks, by_size_desc);
    for (int i = 0; i < n; i++) {
        int n_conflicts = 0;
        for (int k = 0; k < i; k++)
            if (blocks[k].first <= blocks[i].last && blocks[i].first <= blocks[k].last) conflicts[n_conflicts++] = &blocks[k];
        qsort(conflicts, (size_t)n_conflicts, sizeof *conflicts, by_offset);
        blocks[i].offset = lowest_fit(&blocks[i], conflicts, n_conflicts);
        offsets[blocks[i].pos] = blocks[i].offset;
        if (blocks[i].offset + blocks[i].size > peak) peak = blocks[i].offset + blocks[i].size;
    }
    df_free(blocks);
    df_free(conflicts);
    g->arena_bytes = peak;
    g->tensor_bytes = total;
    return DF_OK;
}

df_status df_graph_place_tensors(df_graph *g)
{
    g->stats_inplace = g->passes & DF_PASS_REUSE ? plan_in_place(g) : 0;
    size_t *offsets = df_calloc((size_t)g->n_sched + 1, sizeof *offsets);
    if (!offsets) return df_graph_fail(g, DF_ERR_NOMEM, "compile: out of memory");
    df_status st = plan_memory(g, offsets);
    if (st == DF_OK) {
        g->memory = df_aligned_alloc(g->arena_bytes ? g->arena_bytes : DF_ALIGN);
        if (!g->memory)
            st = df_graph_fail(g, DF_ERR_NOMEM, "compile: cannot allocate the %zu-byte arena", g->arena_bytes);
    }
    for (int p = 0; st == DF_OK && p < g->n_sched; p++) {
        df_node *node = g->schedule[p];
        if (node->inplace_of) {
            node->data = buffer_owner(node)->data;     /* owners come earlier in the schedule */
        } else if (needs_arena(node)) {
            node->data = (char *)g->memory + offsets[p];
            node->aux = node->aux_bytes
                            ? (char *)node->data + round_up((size_t)node->numel * df_dtype_size(node->dtype))
                            : NULL;
        } else if (node->op->flags & DF_OP_VIEW) {
            node->data = storage_root(node)->data;
        }
    }
    df_free(offsets);
    return st;
}

df_status df_graph_compile(df_graph *g)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_compile: null graph");
    if (g->status != DF_OK) return df_error(g->status, "%s", g->error);
    if (g->compiled) return DF_OK;
    df_graph_run_passes(g);
    if (g->status != DF_OK) return g->status;
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i]->sched_pos = -1;
        g->nodes[i]->last_use = -1;
    }
    df_status st = schedule_nodes(g);
    if (st != DF_OK) return st;
    compute_liveness(g);
    if ((st = df_graph_plan_memo(g)) != DF_OK) return st;
    /* A dynamic graph is planned per concrete input shape, on its first run
     * at that shape (graph/dynamic.c). */
    if (!g->dynamic && (st = df_graph_place_tensors(g)) != DF_OK) return st;
    g->compiled = true;
    return DF_OK;
}

df_status df_graph_get_stats(const df_graph *g, df_graph_stats *out)
{
    if (!g || !out) return df_error(DF_ERR_ARG, "df_graph_get_stats: null argument");
    if (!g->compiled) return df_error(DF_ERR_STATE, "df_graph_get_stats: graph not compiled");
    *out = (df_graph_stats){.nodes = g->n_sched, .nodes_total = g->n_nodes,
                            .dead_nodes = g->n_nodes - g->n_sched, .cse_merged = g->stats_cse,
                            .constants_folded = g->stats_folded, .fused_chains = g->stats_fused_chains,
                            .fused_nodes = g->stats_fused_nodes, .inplace = g->stats_inplace,
                            .arena_bytes = g->arena_bytes, .plans = g->plans_made,
                            .plans_cached = g->n_instances,
                            .tensor_bytes = g->tensor_bytes};
    return DF_OK;
}
