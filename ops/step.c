/* step.c — (x > 0) as 0/1 floats: relu's derivative. Not differentiable
 * (its derivative is zero almost everywhere), so it has no backward. */
#include "common.h"

// x (any) -> y (same shape), values 0 or 1
DF_UNARY_KERNEL(step_forward, x > 0 ? 1.0f : 0.0f)

const df_op_def df_op_step = {
    .name = "step", .infer = df_infer_unary, .forward = step_forward,
    .elementwise = DF_EW_STEP,
    .no_gradcheck = "no gradient: zero almost everywhere (relu's backward uses it; "
                    "values in tests/test_ops.c)",
};

df_node *df_step(df_graph *g, df_node *x)
{
    return df_node_make(g, &df_op_step, 1, &x, NULL, 0, NULL, 0, NULL);
}

df_node *df_square(df_graph *g, df_node *x) { return df_mul(g, x, x); }
df_node *df_scale(df_graph *g, df_node *x, float s) { return df_mul(g, x, df_scalar(g, s)); }
