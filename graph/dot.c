/* dot.c — Graphviz DOT dump of a graph: one box per node with op and shape. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "graph.h"

static void write_label(FILE *f, const df_node *n)
{
    char shape[64];
    fprintf(f, "  n%d [label=\"%s", n->id, n->op->name);
    if (n->name) {
        fputs("\\n", f);
        for (const char *c = n->name; *c; c++)
            if (*c != '"' && *c != '\\') fputc(*c, f);
    }
    fprintf(f, "\\n%s %s\"", df_dtype_name(n->dtype), df_node_shape_str(n, shape, sizeof shape));
    if (n->op->flags & DF_OP_INPUT) fputs(", style=filled, fillcolor=lightblue", f);
    else if (n->op->flags & DF_OP_SIDE_EFFECT) fputs(", style=filled, fillcolor=salmon", f);
    else if (n->op->flags & DF_OP_EXTERNAL) fputs(", style=filled, fillcolor=lightyellow", f);
    if (n->graph->compiled && n->sched_pos < 0) fputs(", color=gray, fontcolor=gray", f);
    fputs("];\n", f);
}

/* Node ids [lo, hi) shown in full; with context, nodes outside that feed a
 * shown node appear as small gray ellipses. */
typedef struct dot_range { int lo, hi; bool context; } dot_range;

static dot_range range_of(const df_graph *g, df_dot_part part)
{
    const df_tape *first = g->tapes;
    while (first && first->next) first = first->next;       /* tapes are pushed at the front */
    int end = first ? (first->end_id == INT_MAX ? g->n_nodes : first->end_id) : g->n_nodes;
    if (part == DF_DOT_FORWARD) return (dot_range){first ? first->first_id : 0, end, true};
    if (part == DF_DOT_BACKWARD) return (dot_range){end, g->n_nodes, true};
    return (dot_range){0, g->n_nodes, false};
}

static void write_context_node(FILE *f, const df_node *n)
{
    char shape[64];
    fprintf(f, "  n%d [shape=ellipse, color=gray, fontcolor=gray, label=\"%s %s\"];\n", n->id, n->op->name,
            df_node_shape_str(n, shape, sizeof shape));
}

static void write_graph(FILE *f, const df_graph *g, dot_range r)
{
    fprintf(f, "digraph dagflow {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    bool *context = df_calloc((size_t)g->n_nodes + 1, sizeof *context);
    for (int i = r.lo; i < r.hi; i++) write_label(f, g->nodes[i]);
    for (int i = r.lo; i < r.hi; i++)
        for (int k = 0; k < g->nodes[i]->n_in; k++) {
            const df_node *src = g->nodes[i]->in[k];
            bool inside = src->id >= r.lo && src->id < r.hi;
            if (!inside && !r.context) continue;
            if (!inside && context && !context[src->id]) {
                context[src->id] = true;
                write_context_node(f, src);
            }
            fprintf(f, "  n%d -> n%d;\n", src->id, g->nodes[i]->id);
        }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i]->id >= r.lo && g->outputs[i]->id < r.hi)
            fprintf(f, "  out%d [shape=ellipse, label=\"output %d\"];\n  n%d -> out%d;\n", i, i, g->outputs[i]->id, i);
    fputs("}\n", f);
    df_free(context);
}

df_status df_graph_dump_dot_part(const df_graph *g, const char *path, df_dot_part part)
{
    if (!g || !path) return df_error(DF_ERR_ARG, "df_graph_dump_dot: null argument");
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return df_error(DF_ERR_ARG, "df_graph_dump_dot: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) return df_error(DF_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    write_graph(f, g, range_of(g, part));
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return df_error(DF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return DF_OK;
}

df_status df_graph_dump_dot(const df_graph *g, const char *path)
{
    return df_graph_dump_dot_part(g, path, DF_DOT_ALL);
}
