/* autodiff.c — reverse mode, graph to graph: gradient nodes are appended to the
 * same graph by each op's backward, walking the forward nodes in reverse. */
#include <limits.h>
#include <string.h>
#include "graph.h"
#include "../ops/registry.h"

/* Marks nodes on a path from some x to y, considering only nodes with ids in
 * [first, end) as differentiable (the tape); others are leaves. */
static void mark_path(df_graph *g, df_node *y, int n, df_node *const *xs, int first, int end,
                      bool *on_path)
{
    int count = y->id + 1;
    bool *from_x = df_calloc((size_t)count, sizeof *from_x);
    bool *to_y = df_calloc((size_t)count, sizeof *to_y);
    if (!from_x || !to_y) goto done;
    for (int i = 0; i < n; i++)
        if (xs[i]->id < count) from_x[xs[i]->id] = true;
    for (int id = 0; id < count; id++) {
        df_node *node = g->nodes[id];
        if (from_x[id] || id < first || id >= end || node->dtype != DF_F32) continue;
        for (int i = 0; i < node->n_in; i++)
            if (from_x[node->in[i]->id]) { from_x[id] = true; break; }
    }
    to_y[y->id] = true;
    for (int id = y->id; id >= 0; id--) {
        df_node *node = g->nodes[id];
        if (!to_y[id] || id < first || id >= end) continue;
        for (int i = 0; i < node->n_in; i++) to_y[node->in[i]->id] = true;
    }
    for (int id = 0; id < count; id++) on_path[id] = from_x[id] && to_y[id];
done:
    df_free(from_x);
    df_free(to_y);
}

/* value in x's shape; a shape with dynamic dimensions follows x at run time. */
static df_node *filled_like(df_graph *g, float value, df_node *x)
{
    if (!x->dyn) return df_fill(g, value, x->ndim, x->shape);
    return df_broadcast_like(g, df_scalar(g, value), x, false);
}

/* Checks an op's gradient against its input, so a buggy backward is caught here. */
static df_status check_grad_shape(df_graph *g, df_node *node, int i, df_node *dx)
{
    df_node *x = node->in[i];
    if (df_node_same_shape(x, dx) && dx->dtype == x->dtype) {
        df_graph_assume_same_shape(g, x, dx);
        return DF_OK;
    }
    char a[64], b[64];
    return df_graph_fail(g, DF_ERR_SHAPE, "gradient of op '%s' (node %d) for input %d has shape %s, input has %s",
                         node->op->name, node->id, i, df_node_shape_str(dx, a, sizeof a),
                         df_node_shape_str(x, b, sizeof b));
}

/* Calls node's backward and adds each input's gradient to its accumulator. */
static df_status backprop_inputs(df_graph *g, df_node *node, df_node **grad, const bool *on_path, bool *need,
                                 df_node **dx)
{
    bool any = false;
    /* An input read only for its shape (shape_only) has no influence on the
     * values, so it gets no gradient, whatever the op. */
    for (int i = 0; i < node->n_in; i++) any |= need[i] = on_path[node->in[i]->id] && !df_input_shape_only(node, i);
    if (!any) return DF_OK;
    if (!node->op->backward)
        return df_graph_fail(g, DF_ERR_UNSUPPORTED, "op '%s' (node %d) has no gradient",
                             node->op->name, node->id);
    df_status st = node->op->backward(g, node, grad[node->id], need, dx);
    if (st != DF_OK) return st;
    if (g->status != DF_OK) return g->status;
    for (int i = 0; i < node->n_in; i++) {
        if (!need[i] || !dx[i]) continue;
        if ((st = check_grad_shape(g, node, i, dx[i])) != DF_OK) return st;
        int in_id = node->in[i]->id;
        grad[in_id] = grad[in_id] ? df_add(g, grad[in_id], dx[i]) : dx[i];   /* fan-out sums */
        if (!grad[in_id]) return g->status;
    }
    return DF_OK;
}

static df_status backprop_node(df_graph *g, df_node *node, df_node **grad, const bool *on_path)
{
    bool need_small[16] = {0}, *need = need_small;
    df_node *dx_small[16] = {0}, **dx = dx_small;
    if (node->n_in > 16) {                 /* e.g. a concat of many inputs */
        need = df_calloc((size_t)node->n_in, sizeof *need);
        dx = df_calloc((size_t)node->n_in, sizeof *dx);
        if (!need || !dx) {
            if (need != need_small) df_free(need);
            if (dx != dx_small) df_free(dx);
            return df_graph_fail(g, DF_ERR_NOMEM, "gradients: out of memory");
        }
    }
    df_status st = backprop_inputs(g, node, grad, on_path, need, dx);
    if (need != need_small) df_free(need);
    if (dx != dx_small) df_free(dx);
    return st;
}

static df_status gradients_in_range(df_graph *g, df_node *y, df_node *dy, int n,
                                    df_node *const *xs, df_node **grads, int first, int end)
{
    if (!g) return df_error(DF_ERR_ARG, "gradients: null graph");
    if (g->status != DF_OK) return df_error(g->status, "%s", g->error);
    if (!y || (n > 0 && (!xs || !grads)))
        return df_graph_fail(g, DF_ERR_ARG, "gradients: null target or output array");
    for (int i = 0; i < n; i++)
        if (!xs[i] || xs[i]->graph != g)
            return df_graph_fail(g, DF_ERR_ARG, "gradients: source %d is null or of another graph", i);
    if (y->dtype != DF_F32) return df_graph_fail(g, DF_ERR_DTYPE, "gradients: target must be f32");
    if (dy && !df_shape_equal(dy->ndim, dy->shape, y->ndim, y->shape))
        return df_graph_fail(g, DF_ERR_SHAPE, "gradients: seed shape differs from target shape");

    int count = y->id + 1;
    bool *on_path = df_calloc((size_t)count, sizeof *on_path);
    df_node **grad = df_calloc((size_t)count, sizeof *grad);
    df_status st = DF_OK;
    if (!on_path || !grad) {
        st = df_graph_fail(g, DF_ERR_NOMEM, "gradients: out of memory");
        goto done;
    }
    mark_path(g, y, n, xs, first, end, on_path);
    grad[y->id] = dy ? dy : filled_like(g, 1.0f, y);
    for (int id = y->id; id >= 0 && st == DF_OK; id--) {
        df_node *node = g->nodes[id];
        if (on_path[id] && grad[id] && id >= first && id < end) st = backprop_node(g, node, grad, on_path);
    }
    for (int i = 0; i < n && st == DF_OK; i++) {
        df_node *x = xs[i];
        grads[i] = x->id < count && grad[x->id] ? grad[x->id] : filled_like(g, 0.0f, x);
        if (!grads[i]) st = g->status;
    }
done:
    df_free(on_path);
    df_free(grad);
    return st;
}

df_status df_gradients(df_graph *g, df_node *y, df_node *dy, int n, df_node *const *xs,
                       df_node **grads)
{
    return gradients_in_range(g, y, dy, n, xs, grads, 0, INT_MAX);
}

df_tape *df_tape_begin(df_graph *g)
{
    if (!g) {
        df_error(DF_ERR_ARG, "df_tape_begin: null graph");
        return NULL;
    }
    df_tape *t = df_calloc(1, sizeof *t);
    if (!t) {
        df_graph_fail(g, DF_ERR_NOMEM, "df_tape_begin: out of memory");
        return NULL;
    }
    t->graph = g;
    t->first_id = g->n_nodes;
    t->end_id = INT_MAX;
    t->next = g->tapes;
    g->tapes = t;
    return t;
}

void df_tape_end(df_tape *t)
{
    if (t && t->end_id == INT_MAX) t->end_id = t->graph->n_nodes;
}

df_status df_tape_gradient_nodes(df_tape *t, df_node *loss, int n, df_node *const *xs,
                                 df_node **grads)
{
    if (!t) return df_error(DF_ERR_ARG, "df_tape_gradient: null tape");
    int end = t->end_id == INT_MAX ? t->graph->n_nodes : t->end_id;
    return gradients_in_range(t->graph, loss, NULL, n, xs, grads, t->first_id, end);
}

df_status df_tape_gradient(df_tape *t, df_node *loss, int n, df_variable *const *vars,
                           df_node **grads)
{
    if (!t) return df_error(DF_ERR_ARG, "df_tape_gradient: null tape");
    if (n > 0 && (!vars || !grads)) return df_graph_fail(t->graph, DF_ERR_ARG, "df_tape_gradient: null array");
    df_node *stack_nodes[64];
    df_node **xs = n <= 64 ? stack_nodes : df_malloc((size_t)n * sizeof *xs);
    if (!xs) return df_graph_fail(t->graph, DF_ERR_NOMEM, "df_tape_gradient: out of memory");
    df_status st = DF_OK;
    for (int i = 0; i < n && st == DF_OK; i++) {
        xs[i] = vars[i] ? df_var(t->graph, vars[i]) : NULL;   /* the graph's one read node */
        if (!xs[i]) st = t->graph->status ? t->graph->status
                                          : df_graph_fail(t->graph, DF_ERR_ARG, "df_tape_gradient: variable %d is NULL", i);
    }
    if (st == DF_OK) st = df_tape_gradient_nodes(t, loss, n, xs, grads);
    if (xs != stack_nodes) df_free(xs);
    return st;
}
