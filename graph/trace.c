/* trace.c — a builder traced once into a graph of its own, compiled but not
 * run: what a df_function would run, for looking at it (plans, passes, DOT). */
#include <stdio.h>
#include "dagflow.h"

df_status df_graph_trace(df_build_fn build, void *user, int n_inputs, const df_tensor_spec *signature,
                         const char *const *names, unsigned passes, df_graph **out)
{
    enum { MAX_INPUTS = 16 };
    if (!build || !out || n_inputs < 0 || n_inputs > MAX_INPUTS || (n_inputs && !signature))
        return df_error(DF_ERR_ARG, "df_graph_trace: null argument or %d inputs (0..%d)", n_inputs, MAX_INPUTS);
    *out = NULL;
    df_graph *g = df_graph_new();
    if (!g) return DF_ERR_NOMEM;
    df_node *in[MAX_INPUTS];
    for (int i = 0; i < n_inputs; i++) {
        char name[32];
        snprintf(name, sizeof name, "input%d", i);   /* as a df_function names them */
        in[i] = df_placeholder(g, signature[i].dtype, signature[i].ndim, signature[i].shape,
                               names && names[i] ? names[i] : name);
    }
    df_status st = df_graph_status(g);
    if (st == DF_OK) st = df_graph_set_passes(g, passes);
    if (st == DF_OK) st = build(g, in, user);
    if (st == DF_OK) st = df_graph_compile(g);   /* also the error a builder left in g */
    if (st == DF_OK) *out = g;
    else df_graph_free(g);
    return st;
}
