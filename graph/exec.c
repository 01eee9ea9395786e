/* exec.c — run a compiled graph: feed placeholders, run each scheduled op in
 * order (kernels parallelise inside with OpenMP; GEMMs go to OpenBLAS on the
 * same OpenMP pool), hand back output views. */
#include <string.h>
#include "graph.h"

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
    for (int i = 0; i < n_inputs; i++)
        if ((st = check_input(g, i, &inputs[i])) != DF_OK) return st;
    for (int i = 0; i < n_inputs; i++) {
        df_node *ph = g->placeholders[i];
        if (ph->numel) memcpy(ph->data, inputs[i].data, (size_t)ph->numel * df_dtype_size(ph->dtype));
    }
    df_enable_ftz_all_threads();
    for (int p = 0; p < g->n_sched; p++) {
        df_node *n = g->schedule[p];
        if (!n->op->forward) continue;
        if ((st = n->op->forward(n)) != DF_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", df_last_error());
            return df_error(st, "run: op '%s' (node %d%s%s): %s", n->op->name, n->id,
                            n->name ? " " : "", n->name ? n->name : "", msg);
        }
    }
    for (int i = 0; i < n_outputs; i++) {
        df_node *o = g->outputs[i];
        outputs[i] = df_tensor_make(o->dtype, o->data, o->ndim, o->shape);
    }
    return DF_OK;
}
