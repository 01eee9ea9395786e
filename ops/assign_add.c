/* assign_add.c — adds a value to a variable in place (f32, or i32 wrapping
 * around on overflow). */
#include "common.h"

// value (variable's shape) -> variable storage += value
static df_status assign_add_forward(df_node *n)
{
    int64_t N = n->numel;
    if (n->dtype == DF_I32) {
        int32_t *w = n->data;
        const int32_t *x = n->in[0]->data;
        /* two's-complement wrap-around (as TensorFlow's int32 add), not
         * signed overflow: a step counter or a saved graph may reach it */
        for (int64_t i = 0; i < N; i++) w[i] = (int32_t)((uint32_t)w[i] + (uint32_t)x[i]);
        return DF_OK;
    }
    float *w = n->data;
    const float *x = n->in[0]->data;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) w[i] += x[i];
    return DF_OK;
}

/* One add per element; the value read, the variable read and written. */
static void assign_add_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = 3.0 * (double)df_dtype_size(n->dtype) * (double)n->numel};
}

const df_op_def df_op_assign_add = {
    .name = "assign_add", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = df_infer_variable_update, .forward = assign_add_forward, .attrs_size = sizeof(df_update_attrs),
    .no_gradcheck = "no gradient: writes a variable (tests/test_graph.c)",
    .min_inputs = 1, .max_inputs = 1, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = assign_add_cost,
};

df_node *df_assign_add(df_graph *g, df_variable *v, df_node *value)
{
    return df_variable_update_make(g, &df_op_assign_add, 1, &value, &(df_update_attrs){.var = v});
}
