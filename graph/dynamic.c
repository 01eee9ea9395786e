/* dynamic.c — input dimensions left open (DF_DYNAMIC, tf.function's None):
 * the graph is traced, differentiated and compiled once, and planned once
 * per concrete input shape.
 *
 * Tracing: a dynamic dimension is traced at DF_TRACE_DIM, and each node's
 * shape inference runs a second time with the inputs at DF_TRACE_DIM_ALT.
 * A dimension is dynamic where the two results differ. The second run also
 * catches a graph that fixes a size which should follow the input (a
 * constant of the traced batch size, a reshape to a literal batch): it fails
 * at trace time, naming the op, instead of computing wrong numbers later.
 *
 * Running: the first call at new sizes re-runs shape inference over the
 * schedule at those sizes and plans the arena for them (no builder call, no
 * autodiff, no passes). Plans are cached, most recently used first. */
#include <string.h>
#include "graph.h"

#define DEFAULT_PLAN_CACHE 4

/* What a plan changes in a scheduled node. */
typedef struct instance_node {
    int64_t shape[DF_MAX_DIMS];
    int64_t numel;
    size_t aux_bytes;
    void *data, *aux;
    df_node *inplace_of;
} instance_node;

struct df_instance {
    int64_t *dims;                /* n_placeholders x DF_MAX_DIMS: the concrete input shapes */
    instance_node *nodes;         /* per schedule position */
    void *memory;
    size_t arena_bytes, tensor_bytes;
    int stats_inplace;
};

bool df_node_same_shape(const df_node *a, const df_node *b)
{
    return df_shape_equal(a->ndim, a->shape, b->ndim, b->shape) &&
           df_shape_equal(a->ndim, a->alt_shape, b->ndim, b->alt_shape);
}

void df_graph_assume_same_shape(df_graph *g, df_node *a, df_node *b)
{
    if (!a || !b || a == b || (!a->dyn && !b->dyn)) return;
    if (g->n_assumed + 2 > g->cap_assumed) {
        int cap = g->cap_assumed ? 2 * g->cap_assumed : 64;
        df_node **grown = df_realloc(g->assumed, (size_t)cap * sizeof *grown);
        if (!grown) {
            df_graph_fail(g, DF_ERR_NOMEM, "graph: out of memory recording a shape assumption");
            return;
        }
        g->assumed = grown;
        g->cap_assumed = cap;
    }
    g->assumed[g->n_assumed++] = a;
    g->assumed[g->n_assumed++] = b;
}

/* Every pair the trace took as equal must still be equal at these sizes. */
static df_status check_assumptions(df_graph *g)
{
    for (int i = 0; i < g->n_assumed; i += 2) {
        const df_node *a = g->assumed[i], *b = g->assumed[i + 1];
        if (df_shape_equal(a->ndim, a->shape, b->ndim, b->shape)) continue;
        char sa[96], sb[96];
        return df_graph_fail(g, DF_ERR_SHAPE,
                             "node %d (op '%s') has shape %s and node %d (op '%s') %s, but the trace took them as "
                             "equal: dynamic input dimensions that meet in one op (an elementwise op, a gradient) "
                             "must have the same size at each call",
                             a->id, a->op->name, df_node_shape_str(a, sa, sizeof sa), b->id, b->op->name,
                             df_node_shape_str(b, sb, sizeof sb));
    }
    return DF_OK;
}

/* ------------------------------------------------------------- tracing */

static void swap_dims(df_node *x, bool to_alt)
{
    if (!x->dyn || x->at_alt == to_alt) return;
    x->at_alt = to_alt;
    for (int d = 0; d < DF_MAX_DIMS; d++) {
        int64_t t = x->shape[d];
        x->shape[d] = x->alt_shape[d];
        x->alt_shape[d] = t;
    }
    int64_t t = x->numel;
    x->numel = x->alt_numel;
    x->alt_numel = t;
}

/* Puts the inputs, and their inputs (the gradient ops of fused cells read
 * the cell's inputs through it), at their alt shapes or back. */
static void swap_inputs(df_node *n, bool to_alt)
{
    for (int i = 0; i < n->n_in; i++) {
        swap_dims(n->in[i], to_alt);
        for (int j = 0; j < n->in[i]->n_in; j++) swap_dims(n->in[i]->in[j], to_alt);
    }
}

static bool has_dynamic_input(const df_node *n)
{
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i]->dyn) return true;
    return false;
}

/* Adds to the graph's first error why a size may not follow the input. */
static df_status explain_fixed_size(df_node *n, df_status st)
{
    df_graph *g = n->graph;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", g->error);
    g->status = DF_OK;
    return df_graph_fail(g, st,
                         "%s [an input dimension is dynamic (None); this op must hold for every size of it "
                         "(checked at %d and %d): derive shapes from the inputs (df_reshape with -1, "
                         "broadcasting ops) rather than from fixed sizes]",
                         msg, DF_TRACE_DIM, DF_TRACE_DIM_ALT);
}

static df_status check_numel(df_node *n, const int64_t *shape, int64_t *numel)
{
    if (df_shape_numel_checked(n->ndim, shape, numel)) return DF_OK;
    char s[96];
    return df_op_error(n, DF_ERR_SHAPE, "shape %s has a negative dimension or is too large",
                       df_shape_str(n->ndim, shape, s, sizeof s));
}

df_status df_node_infer_traced(df_node *n)
{
    df_graph *g = n->graph;
    bool dynamic_in = has_dynamic_input(n);
    if (n->op->infer && n->op->infer(n) != DF_OK)
        return dynamic_in ? explain_fixed_size(n, g->status) : g->status;
    df_status st = check_numel(n, n->shape, &n->numel);
    if (st != DF_OK) return st;
    if (!dynamic_in) {
        if (!n->dyn) {
            memcpy(n->alt_shape, n->shape, sizeof n->shape);
            n->alt_numel = n->numel;
        } else if ((st = check_numel(n, n->alt_shape, &n->alt_numel)) != DF_OK) {   /* a placeholder's own */
            return st;
        }
    } else {
        int64_t shape[DF_MAX_DIMS];
        int ndim = n->ndim;
        size_t aux_bytes = n->aux_bytes;
        memcpy(shape, n->shape, sizeof shape);
        swap_inputs(n, true);
        st = n->op->infer(n);
        swap_inputs(n, false);
        if (st != DF_OK) return explain_fixed_size(n, st);
        if (n->ndim != ndim)
            return explain_fixed_size(n, df_op_error(n, DF_ERR_SHAPE, "the output rank depends on a dynamic size"));
        memcpy(n->alt_shape, n->shape, sizeof shape);
        memcpy(n->shape, shape, sizeof shape);
        n->aux_bytes = aux_bytes;
        n->dyn = 0;
        for (int d = 0; d < ndim; d++)
            if (n->alt_shape[d] != n->shape[d]) n->dyn |= 1u << d;
        if ((st = check_numel(n, n->alt_shape, &n->alt_numel)) != DF_OK) return st;
    }
    for (int d = 0; d < DF_MAX_DIMS; d++) n->traced_shape[d] = (n->dyn >> d & 1) ? DF_DYNAMIC : n->shape[d];
    if (n->dyn) g->dynamic = true;
    return DF_OK;
}

/* ------------------------------------------------------------- running */

/* "(None,3)": a placeholder's shape as the signature states it. */
static const char *signature_str(const df_node *ph, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ph->ndim && used < len; i++) {
        const char *sep = i ? "," : "";
        used += ph->traced_shape[i] == DF_DYNAMIC
                    ? (size_t)snprintf(buf + used, len - used, "%sNone", sep)
                    : (size_t)snprintf(buf + used, len - used, "%s%lld", sep, (long long)ph->traced_shape[i]);
    }
    if (used < len) snprintf(buf + used, len - used, ")");
    return buf;
}

static df_status check_signature(const df_node *ph, int i, const df_tensor *t)
{
    char want[96], got[96];
    if (t->dtype != ph->dtype)
        return df_error(DF_ERR_DTYPE, "input %d ('%s'): expected %s, got %s", i, df_node_name(ph),
                        df_dtype_name(ph->dtype), df_dtype_name(t->dtype));
    bool ok = t->ndim == ph->ndim;
    for (int d = 0; ok && d < t->ndim; d++)
        ok = ph->traced_shape[d] == DF_DYNAMIC ? t->shape[d] >= 1 : t->shape[d] == ph->traced_shape[d];
    if (!ok)
        return df_error(DF_ERR_SHAPE, "input %d ('%s'): expected shape %s (None: any size >= 1), got %s", i,
                        df_node_name(ph), signature_str(ph, want, sizeof want),
                        df_shape_str(t->ndim, t->shape, got, sizeof got));
    if (!t->data && df_tensor_numel(t) > 0)
        return df_error(DF_ERR_ARG, "input %d ('%s'): null data", i, df_node_name(ph));
    return DF_OK;
}

static bool instance_matches(const df_graph *g, const struct df_instance *in, const df_tensor *inputs)
{
    for (int i = 0; i < g->n_placeholders; i++)
        for (int d = 0; d < inputs[i].ndim; d++)
            if (in->dims[i * DF_MAX_DIMS + d] != inputs[i].shape[d]) return false;
    return true;
}

/* Puts a plan's shapes and buffers into the nodes. */
static void activate(df_graph *g, const struct df_instance *in)
{
    for (int p = 0; p < g->n_sched; p++) {
        df_node *n = g->schedule[p];
        const instance_node *s = &in->nodes[p];
        memcpy(n->shape, s->shape, sizeof n->shape);
        n->numel = s->numel;
        n->aux_bytes = s->aux_bytes;
        if (!(n->op->flags & DF_OP_EXTERNAL)) n->data = s->data;
        n->aux = s->aux;
        n->inplace_of = s->inplace_of;
    }
    g->memory = in->memory;
    g->arena_bytes = in->arena_bytes;
    g->tensor_bytes = in->tensor_bytes;
    g->stats_inplace = in->stats_inplace;
}

static void instance_free(struct df_instance *in)
{
    df_free(in->dims);
    df_free(in->nodes);
    df_free(in->memory);
}

void df_graph_free_instances(df_graph *g)
{
    for (int i = 0; i < g->n_instances; i++) instance_free(&g->instances[i]);
    df_free(g->instances);
    g->instances = NULL;
    g->n_instances = 0;
    g->memory = NULL;
}

df_status df_graph_set_plan_cache(df_graph *g, int max_plans)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_set_plan_cache: null graph");
    if (max_plans < 1) return df_error(DF_ERR_ARG, "df_graph_set_plan_cache: %d plans (at least 1)", max_plans);
    if (g->n_instances > 0) return df_error(DF_ERR_STATE, "df_graph_set_plan_cache: the graph has already run");
    g->max_instances = max_plans;
    return DF_OK;
}

/* Shape inference over the schedule at the concrete input shapes. */
static df_status infer_concrete(df_graph *g, const df_tensor *inputs)
{
    for (int i = 0; i < g->n_placeholders; i++) {
        df_node *ph = g->placeholders[i];
        memcpy(ph->shape, inputs[i].shape, sizeof ph->shape);
        ph->numel = df_tensor_numel(&inputs[i]);
    }
    /* All nodes, in creation order, not just the scheduled ones: nodes that
     * passes absorbed or merged may be named by an assumption. */
    for (int p = 0; p < g->n_sched; p++) g->schedule[p]->inplace_of = NULL;
    for (int id = 0; id < g->n_nodes; id++) {
        df_node *n = g->nodes[id];
        if (n->n_in == 0 || !n->op->infer) continue;       /* leaves keep their shapes */
        if (n->op->infer(n) != DF_OK) return g->status;
        if (check_numel(n, n->shape, &n->numel) != DF_OK) return g->status;
    }
    return check_assumptions(g);
}

/* Saves the nodes' current plan as a cache entry (evicting the least
 * recently used one when full) and moves it to the front. */
static df_status remember(df_graph *g, const df_tensor *inputs)
{
    struct df_instance in = {.memory = g->memory, .arena_bytes = g->arena_bytes,
                             .tensor_bytes = g->tensor_bytes, .stats_inplace = g->stats_inplace};
    in.dims = df_calloc((size_t)g->n_placeholders * DF_MAX_DIMS + 1, sizeof *in.dims);
    in.nodes = df_malloc(((size_t)g->n_sched + 1) * sizeof *in.nodes);
    if (!in.dims || !in.nodes) {
        instance_free(&in);
        return df_error(DF_ERR_NOMEM, "out of memory saving a plan");
    }
    for (int i = 0; i < g->n_placeholders; i++)
        memcpy(&in.dims[i * DF_MAX_DIMS], inputs[i].shape, (size_t)inputs[i].ndim * sizeof *in.dims);
    for (int p = 0; p < g->n_sched; p++) {
        const df_node *n = g->schedule[p];
        instance_node *s = &in.nodes[p];
        *s = (instance_node){.numel = n->numel, .aux_bytes = n->aux_bytes, .data = n->data, .aux = n->aux,
                             .inplace_of = n->inplace_of};
        memcpy(s->shape, n->shape, sizeof s->shape);
    }
    if (!g->instances) {
        g->instances = df_calloc((size_t)g->max_instances, sizeof *g->instances);
        if (!g->instances) {
            instance_free(&in);
            return df_error(DF_ERR_NOMEM, "out of memory saving a plan");
        }
    }
    if (g->n_instances == g->max_instances) instance_free(&g->instances[--g->n_instances]);
    memmove(&g->instances[1], &g->instances[0], (size_t)g->n_instances * sizeof *g->instances);
    g->instances[0] = in;
    g->n_instances++;
    g->plans_made++;
    return DF_OK;
}

/* A failed specialisation must not break the graph for other sizes: the
 * error is returned, not kept, and the last good plan is put back. */
static df_status fail_specialize(df_graph *g, df_status st, const df_tensor *inputs, int n_inputs)
{
    char msg[512], shapes[256];
    snprintf(msg, sizeof msg, "%s", g->status != DF_OK ? g->error : df_last_error());
    size_t used = 0;
    shapes[0] = 0;
    for (int i = 0; i < n_inputs && used < sizeof shapes; i++) {
        char s[96];
        used += (size_t)snprintf(shapes + used, sizeof shapes - used, "%s%s", i ? ", " : "",
                                 df_shape_str(inputs[i].ndim, inputs[i].shape, s, sizeof s));
    }
    g->status = DF_OK;
    g->error[0] = 0;
    if (g->memory && (g->n_instances == 0 || g->memory != g->instances[0].memory)) df_free(g->memory);
    g->memory = NULL;
    if (g->n_instances > 0) activate(g, &g->instances[0]);
    return df_error(st, "at input shapes %s: %s", shapes, msg);
}

df_status df_graph_specialize(df_graph *g, const df_tensor *inputs, int n_inputs)
{
    df_status st;
    for (int i = 0; i < n_inputs; i++)
        if ((st = check_signature(g->placeholders[i], i, &inputs[i])) != DF_OK) return st;
    if (!g->max_instances) g->max_instances = DEFAULT_PLAN_CACHE;
    for (int k = 0; k < g->n_instances; k++) {
        if (!instance_matches(g, &g->instances[k], inputs)) continue;
        if (k > 0) {                                       /* most recently used first */
            struct df_instance hit = g->instances[k];
            memmove(&g->instances[1], &g->instances[0], (size_t)k * sizeof hit);
            g->instances[0] = hit;
            activate(g, &hit);
        }
        return DF_OK;
    }
    g->concrete = true;
    g->memory = NULL;
    if ((st = infer_concrete(g, inputs)) != DF_OK) return fail_specialize(g, st, inputs, n_inputs);
    if ((st = df_graph_place_tensors(g)) != DF_OK) return fail_specialize(g, st, inputs, n_inputs);
    if ((st = remember(g, inputs)) != DF_OK) return fail_specialize(g, st, inputs, n_inputs);
    return DF_OK;
}
