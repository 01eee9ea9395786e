/* passes.c — graph rewrites run by df_graph_compile before scheduling, each
 * counted in the graph's stats and each switchable (df_graph_set_passes):
 *   CSE   nodes with the same op, inputs and attributes are computed once;
 *   fold  nodes whose inputs are all constants become constants;
 *   fuse  chains of elementwise ops become one fused loop.
 * Dead-node removal happens in scheduling (plan.c). Rewrites redirect input
 * pointers; nodes left without readers are then simply not scheduled. The
 * passes know ops only by their flags and fusion codes; the ops they turn
 * nodes into (DF_OP_CONSTANT, DF_OP_FUSED) come from the registry. */
#include <string.h>
#include "graph.h"
#include "../ops/registry.h"

/* Nodes the passes may merge and fold: not side effects or inputs, and not
 * DF_OP_NO_CSE ops, whose value is more than a function of their inputs and
 * attributes (a variable read) or must stay distinct (two dropout layers
 * never share a mask). */
static bool is_pure(const df_node *n)
{
    return !(n->op->flags & (DF_OP_SIDE_EFFECT | DF_OP_INPUT | DF_OP_NO_CSE));
}

static bool is_constant(const df_node *n) { return (n->op->flags & DF_OP_CONSTANT) != 0; }

static bool same_constant(const df_node *a, const df_node *b)
{
    return is_constant(a) && is_constant(b) && a->dtype == b->dtype &&
           df_shape_equal(a->ndim, a->shape, b->ndim, b->shape) && a->numel <= 64 &&
           memcmp(a->data, b->data, (size_t)a->numel * df_dtype_size(a->dtype)) == 0;
}

static bool same_computation(const df_node *a, const df_node *b)
{
    if (is_constant(a)) return same_constant(a, b);
    if (a->op != b->op || a->n_in != b->n_in || a->dtype != b->dtype ||
        !df_shape_equal(a->ndim, a->shape, b->ndim, b->shape) ||
        (a->op->attrs_size && memcmp(a->attrs, b->attrs, a->op->attrs_size) != 0))
        return false;
    for (int i = 0; i < a->n_in; i++)
        if (a->in[i] != b->in[i]) return false;
    return true;
}

static uint64_t computation_key(const df_node *n)
{
    uint64_t h = (uint64_t)(uintptr_t)n->op * 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n->n_in; i++) h = (h ^ (uint64_t)n->in[i]->id) * 0x100000001B3ull;
    const unsigned char *attr = n->attrs;
    for (size_t i = 0; i < n->op->attrs_size; i++) h = (h ^ attr[i]) * 0x100000001B3ull;
    if (is_constant(n) && n->numel == 1) h ^= (uint64_t)*(const uint32_t *)n->data;
    return h;
}

/* Redirects every input and output through repl (already-final targets). */
static void redirect(df_graph *g, df_node **repl)
{
    for (int id = 0; id < g->n_nodes; id++) {
        df_node *n = g->nodes[id];
        for (int i = 0; i < n->n_in; i++)
            if (repl[n->in[i]->id]) n->in[i] = repl[n->in[i]->id];
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (repl[g->outputs[i]->id]) g->outputs[i] = repl[g->outputs[i]->id];
}

/* Open-addressed table of earlier pure nodes by key; a duplicate maps to the
 * first node computing the same thing. Inputs are redirected as we go, so
 * chains of duplicates collapse in one pass. */
static int eliminate_common_subexpressions(df_graph *g)
{
    int cap = 1;
    while (cap < 2 * g->n_nodes + 2) cap <<= 1;
    df_node **table = df_calloc((size_t)cap, sizeof *table);
    df_node **repl = df_calloc((size_t)g->n_nodes + 1, sizeof *repl);
    int merged = 0;
    for (int id = 0; table && repl && id < g->n_nodes; id++) {
        df_node *n = g->nodes[id];
        for (int i = 0; i < n->n_in; i++)
            if (repl[n->in[i]->id]) n->in[i] = repl[n->in[i]->id];
        if (!is_pure(n) || (is_constant(n) && n->numel > 64)) continue;
        uint64_t slot = computation_key(n) & (uint64_t)(cap - 1);
        while (table[slot] && !same_computation(table[slot], n)) slot = (slot + 1) & (uint64_t)(cap - 1);
        if (!table[slot]) table[slot] = n;
        else {
            repl[id] = table[slot];
            merged++;
        }
    }
    if (repl) redirect(g, repl);
    df_free(table);
    df_free(repl);
    return merged;
}

/* Evaluates a node whose inputs are all constants and makes it a node of
 * op constant (a DF_OP_CONSTANT op: its value is its data). */
static bool fold_node(df_graph *g, df_node *n, const df_op_def *constant)
{
    size_t bytes = (size_t)n->numel * df_dtype_size(n->dtype);
    void *data = df_graph_alloc(g, bytes ? bytes : 1);
    /* a constant's attributes are all zero once it is built (its source is gone) */
    void *attrs = constant->attrs_size ? df_graph_alloc(g, constant->attrs_size) : NULL;
    void *aux = n->aux_bytes ? df_aligned_alloc(n->aux_bytes) : NULL;
    if (!data || (constant->attrs_size && !attrs) || (n->aux_bytes && !aux)) {
        df_free(aux);
        return false;
    }
    n->data = data;
    n->aux = aux;
    df_status st = n->op->forward(n);
    df_free(aux);
    n->aux = NULL;
    if (st != DF_OK) {                    /* e.g. an out-of-range constant index: keep it for the run to report */
        n->data = NULL;
        return false;
    }
    n->op = constant;
    n->attrs = attrs;
    n->n_in = 0;
    n->aux_bytes = 0;
    return true;
}

static int fold_constants(df_graph *g)
{
    const df_op_def *constant = df_op_with_flags(DF_OP_CONSTANT);
    int folded = 0;
    for (int id = 0; constant && id < g->n_nodes; id++) {
        df_node *n = g->nodes[id];
        if (!is_pure(n) || n->n_in == 0 || !n->op->forward || (n->op->flags & (DF_OP_VIEW | DF_OP_EXTERNAL)) ||
            n->numel > (1 << 20))
            continue;
        bool all_constant = true;
        for (int i = 0; i < n->n_in && all_constant; i++) all_constant = is_constant(n->in[i]);
        if (all_constant && fold_node(g, n, constant)) folded++;
    }
    return folded;
}

/* ----------------------------------------------------------------- fusion */

typedef struct fuse_ctx {
    df_graph *g;
    const df_op_def *fused;       /* the op running a df_fused_program */
    int *readers;                 /* per node id: scheduled readers + output uses */
    df_fused_program prog;
    df_node *inputs[DF_FUSE_MAX * 2];
    int n_inputs;
    int absorbed;
} fuse_ctx;

/* An instruction has two operands. */
static bool fusable(const df_node *n)
{
    return n->op->elementwise != 0 && n->n_in <= 2 && n->dtype == DF_F32;
}

/* Operand index of an external input (deduplicated), or -1 when full. */
static int external_operand(fuse_ctx *c, df_node *x)
{
    for (int i = 0; i < c->n_inputs; i++)
        if (c->inputs[i] == x) return i;
    if (c->n_inputs == DF_FUSE_MAX * 2) return -1;
    c->inputs[c->n_inputs] = x;
    return c->n_inputs++;
}

/* Emits instructions computing n (whose shape is the chain's shape) and
 * returns the operand that holds it; -128 when the chain cannot take it. */
static int emit(fuse_ctx *c, df_node *n, const df_node *root, bool is_root)
{
    bool inline_it = is_root || (fusable(n) && c->readers[n->id] == 1 &&
                                 df_node_same_shape(n, root));
    if (!inline_it) {
        bool fits = n->dtype == DF_F32 &&
                    (n->numel == 1 || df_node_same_shape(n, root));
        int k = fits ? external_operand(c, n) : -1;
        return k < 0 ? -128 : k;
    }
    int operand[2] = {0, 0};                    /* a one-input code ignores b */
    for (int i = 0; i < n->n_in; i++)
        if ((operand[i] = emit(c, n->in[i], root, false)) == -128) return -128;
    if (c->prog.n == DF_FUSE_MAX) return -128;
    c->prog.ins[c->prog.n].code = (uint8_t)n->op->elementwise;
    c->prog.ins[c->prog.n].a = (int8_t)operand[0];
    c->prog.ins[c->prog.n].b = (int8_t)operand[1];
    if (!is_root) c->absorbed++;
    return -(++c->prog.n);
}

/* Replaces root (in place) by one fused node when it absorbs a producer. */
static bool fuse_chain(fuse_ctx *c, df_node *root)
{
    c->prog = (df_fused_program){0};          /* unused instructions zero: equal programs, equal bytes */
    c->n_inputs = 0;
    c->absorbed = 0;
    if (emit(c, root, root, true) == -128 || c->absorbed == 0) return false;
    df_fused_program *prog = df_graph_alloc(c->g, sizeof *prog);
    df_node **ins = df_graph_alloc(c->g, (size_t)c->n_inputs * sizeof *ins);
    if (!prog || !ins) return false;
    *prog = c->prog;
    memcpy(ins, c->inputs, (size_t)c->n_inputs * sizeof *ins);
    for (int i = 0; i < c->n_inputs; i++)       /* one loop over root's shape: checked at each plan */
        if (c->inputs[i]->numel != 1 || c->inputs[i]->dyn) df_graph_assume_same_shape(c->g, c->inputs[i], root);
    root->op = c->fused;
    root->in = ins;
    root->n_in = c->n_inputs;
    root->attrs = prog;
    return true;
}

/* Readers of each node among the nodes still needed (by outputs and side
 * effects); absorbed producers and other dead nodes do not count. */
static void count_live_readers(df_graph *g, bool *live, int *readers)
{
    memset(live, 0, (size_t)g->n_nodes * sizeof *live);
    memset(readers, 0, (size_t)g->n_nodes * sizeof *readers);
    for (int i = 0; i < g->n_outputs; i++) {
        live[g->outputs[i]->id] = true;
        readers[g->outputs[i]->id] += 2;         /* outputs stay materialised */
    }
    for (int id = g->n_nodes - 1; id >= 0; id--) {
        df_node *n = g->nodes[id];
        if (n->op->flags & (DF_OP_SIDE_EFFECT | DF_OP_INPUT)) live[id] = true;
        if (!live[id]) continue;
        for (int i = 0; i < n->n_in; i++) {
            live[n->in[i]->id] = true;
            readers[n->in[i]->id]++;
        }
    }
}

/* Walks roots from the last node back, so each chain is taken whole by its
 * final consumer. Returns the number of chains; *nodes gets the nodes merged. */
static int fuse_elementwise_chains(df_graph *g, int *nodes)
{
    fuse_ctx c = {.g = g, .fused = df_op_with_flags(DF_OP_FUSED),
                  .readers = df_calloc((size_t)g->n_nodes + 1, sizeof(int))};
    bool *live = df_calloc((size_t)g->n_nodes + 1, sizeof *live);
    int chains = 0;
    *nodes = 0;
    if (c.fused && c.readers && live) {
        count_live_readers(g, live, c.readers);
        for (int id = g->n_nodes - 1; id >= 0; id--) {
            df_node *n = g->nodes[id];
            if (!live[id] || !fusable(n) || !fuse_chain(&c, n)) continue;
            chains++;
            *nodes += c.absorbed + 1;
            count_live_readers(g, live, c.readers);   /* its producers are no longer needed */
        }
    }
    df_free(c.readers);
    df_free(live);
    return chains;
}

void df_graph_run_passes(df_graph *g)
{
    if (g->passes & DF_PASS_FOLD) df_graph_hoist_gathers(g);     /* graph/memo.c; before CSE merges */
    if (g->passes & DF_PASS_CSE) g->stats_cse = eliminate_common_subexpressions(g);
    if (g->passes & DF_PASS_FOLD) g->stats_folded = fold_constants(g);
    if (g->passes & DF_PASS_FUSE) g->stats_fused_chains = fuse_elementwise_chains(g, &g->stats_fused_nodes);
}
