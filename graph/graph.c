/* graph.c — graph construction: nodes, sticky errors, outputs, inspection. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "graph.h"

df_graph *df_graph_new(void)
{
    df_graph *g = df_calloc(1, sizeof *g);
    if (!g) df_error(DF_ERR_NOMEM, "df_graph_new: out of memory");
    else g->passes = DF_PASS_ALL;
    return g;
}

void df_graph_free(df_graph *g)
{
    if (!g) return;
    for (df_tape *t = g->tapes, *next; t; t = next) {
        next = t->next;
        df_free(t);
    }
    df_free(g->nodes);
    df_free(g->placeholders);
    df_free(g->outputs);
    df_free(g->assumed);
    df_free(g->schedule);
    if (g->dynamic) df_graph_free_instances(g);
    else df_free(g->memory);
    df_arena_free(&g->arena);
    df_free(g);
}

df_status df_graph_set_passes(df_graph *g, unsigned passes)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_set_passes: null graph");
    if (g->compiled) return df_error(DF_ERR_STATE, "df_graph_set_passes: graph already compiled");
    g->passes = passes & DF_PASS_ALL;
    return DF_OK;
}

df_status df_graph_status(const df_graph *g) { return g ? g->status : DF_ERR_ARG; }
const char *df_graph_error(const df_graph *g) { return g ? g->error : "null graph"; }

df_status df_graph_fail(df_graph *g, df_status s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g && g->status == DF_OK) {       /* keep the first error: it is the cause */
        g->status = s;
        snprintf(g->error, sizeof g->error, "%s", msg);
    }
    return df_error(s, "%s", msg);
}

df_status df_graph_set_error(df_graph *g, df_status s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!g) return df_error(DF_ERR_ARG, "df_graph_set_error: null graph (%s)", msg);
    return df_graph_fail(g, s == DF_OK ? DF_ERR_STATE : s, "%s", msg);
}

void *df_graph_alloc(df_graph *g, size_t bytes)
{
    void *p = df_arena_alloc(&g->arena, bytes);
    if (!p) df_graph_fail(g, DF_ERR_NOMEM, "graph: out of memory (%zu bytes)", bytes);
    return p;
}

/* Appends p to a growable pointer array. */
static bool push(df_graph *g, void ***arr, int *n, int *cap, void *p)
{
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 64;
        void **grown = df_realloc(*arr, (size_t)ncap * sizeof *grown);
        if (!grown) {
            df_graph_fail(g, DF_ERR_NOMEM, "graph: out of memory growing to %d entries", ncap);
            return false;
        }
        *arr = grown;
        *cap = ncap;
    }
    (*arr)[(*n)++] = p;
    return true;
}

/* While a dynamic graph is traced its dynamic dimensions print as None (the
 * sizes they are traced at mean nothing to the user). */
const char *df_node_shape_str(const df_node *n, char *buf, size_t len)
{
    if (!n->dyn || n->graph->concrete) return df_shape_str(n->ndim, n->shape, buf, len);
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < n->ndim && used < len; i++)
        used += (n->dyn >> i & 1) ? (size_t)snprintf(buf + used, len - used, i ? ",None" : "None")
                                  : (size_t)snprintf(buf + used, len - used, i ? ",%lld" : "%lld",
                                                     (long long)n->shape[i]);
    if (used < len) snprintf(buf + used, len - used, ")");
    return buf;
}

df_status df_op_error(df_node *n, df_status s, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return df_graph_fail(n->graph, s, "op '%s' (node %d%s%s%s): %s", n->op->name, n->id,
                         n->name ? " '" : "", n->name ? n->name : "", n->name ? "'" : "", msg);
}

int df_axis(int axis, int ndim)
{
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

df_node *df_node_new(df_graph *g, const df_op_def *op, int n_in, df_node *const *in, const void *attrs)
{
    if (!g) {
        df_error(DF_ERR_ARG, "op '%s': null graph", op->name);
        return NULL;
    }
    if (g->status != DF_OK) return NULL;          /* sticky: the first error stands */
    if (g->compiled) {
        df_graph_fail(g, DF_ERR_STATE, "op '%s': graph is already compiled", op->name);
        return NULL;
    }
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            df_graph_fail(g, DF_ERR_ARG, "op '%s': input %d is NULL", op->name, i);
            return NULL;
        }
        if (in[i]->graph != g) {
            df_graph_fail(g, DF_ERR_ARG, "op '%s': input %d belongs to another graph", op->name, i);
            return NULL;
        }
    }
    df_node *n = df_graph_alloc(g, sizeof *n);
    df_node **ins = n_in ? df_graph_alloc(g, (size_t)n_in * sizeof *ins) : NULL;
    void *own_attrs = op->attrs_size ? df_graph_alloc(g, op->attrs_size) : NULL;   /* zeroed */
    if (!n || (n_in && !ins) || (op->attrs_size && !own_attrs)) return NULL;
    n->id = g->n_nodes;
    n->op = op;
    n->graph = g;
    n->n_in = n_in;
    n->in = ins;
    for (int i = 0; i < n_in; i++) ins[i] = in[i];
    if (attrs && own_attrs) memcpy(own_attrs, attrs, op->attrs_size);
    n->attrs = own_attrs;
    n->sched_pos = -1;
    if (df_node_infer_traced(n) != DF_OK) return NULL;
    if (!push(g, (void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, n)) return NULL;
    if ((op->flags & DF_OP_INPUT) &&
        !push(g, (void ***)&g->placeholders, &g->n_placeholders, &g->cap_placeholders, n))
        return NULL;
    return n;
}

df_status df_graph_output(df_graph *g, df_node *n)
{
    if (!g) return df_error(DF_ERR_ARG, "df_graph_output: null graph");
    if (g->status != DF_OK) return df_error(g->status, "%s", g->error);
    if (!n) return df_graph_fail(g, DF_ERR_ARG, "df_graph_output: null node");
    if (n->graph != g) return df_graph_fail(g, DF_ERR_ARG, "df_graph_output: node of another graph");
    if (g->compiled) return df_graph_fail(g, DF_ERR_STATE, "df_graph_output: graph already compiled");
    return push(g, (void ***)&g->outputs, &g->n_outputs, &g->cap_outputs, n) ? DF_OK : g->status;
}

df_dtype df_node_dtype(const df_node *n) { return n ? n->dtype : DF_F32; }
int df_node_ndim(const df_node *n) { return n ? n->ndim : 0; }
const int64_t *df_node_shape(const df_node *n) { return n ? n->traced_shape : NULL; }
int64_t df_node_numel(const df_node *n) { return n ? (n->dyn ? DF_DYNAMIC : n->numel) : 0; }
const char *df_node_op_name(const df_node *n) { return n ? n->op->name : "(null)"; }
int df_node_id(const df_node *n) { return n ? n->id : -1; }
const char *df_node_name(const df_node *n) { return n && n->name ? n->name : ""; }

int64_t df_node_dim(const df_node *n, int axis)
{
    if (!n) return -1;
    int a = df_axis(axis, n->ndim);
    return a < 0 ? -1 : n->traced_shape[a];
}

df_node *df_node_set_name(df_node *n, const char *name)
{
    if (!n || !name) return n;
    size_t len = strlen(name) + 1;
    char *copy = df_graph_alloc(n->graph, len);
    if (copy) {
        memcpy(copy, name, len);
        n->name = copy;
    }
    return n;
}

const char *df_version(void) { return DAGFLOW_VERSION; }

