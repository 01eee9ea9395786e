/* dot.c — Graphviz DOT dump of a graph: one box per node with op and shape. */
#include <errno.h>
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

df_status df_graph_dump_dot(const df_graph *g, const char *path)
{
    if (!g || !path) return df_error(DF_ERR_ARG, "df_graph_dump_dot: null argument");
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return df_error(DF_ERR_ARG, "df_graph_dump_dot: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) return df_error(DF_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "digraph dagflow {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    for (int i = 0; i < g->n_nodes; i++) write_label(f, g->nodes[i]);
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i]->n_in; k++)
            fprintf(f, "  n%d -> n%d;\n", g->nodes[i]->in[k]->id, g->nodes[i]->id);
    for (int i = 0; i < g->n_outputs; i++)
        fprintf(f, "  out%d [shape=ellipse, label=\"output %d\"];\n  n%d -> out%d;\n", i, i, g->outputs[i]->id, i);
    fputs("}\n", f);
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return df_error(DF_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return DF_OK;
}
