/* lstm_final_c.c — the cell state c_T (B,H) after the last step of an lstm
 * node, read from its workspace, for stateful carry-over between batches
 * (assign it to a variable that feeds the next call's c0). The final h is
 * h[:, T-1] of the lstm output itself. Not differentiable: carried state is
 * a constant to the next step, as in Keras. */
#include <string.h>
#include "common.h"
#include "lstm_kernels.h"

static df_status lstm_final_c_infer(df_node *n)
{
    const df_node *l = n->in[0];
    if (l->op != &df_op_lstm)
        return df_op_error(n, DF_ERR_ARG, "input must be an lstm node, got op '%s'", l->op->name);
    n->dtype = DF_F32;
    n->ndim = 2;
    n->shape[0] = l->shape[0];
    n->shape[1] = l->shape[2];
    return DF_OK;
}

// lstm (B,T,H) with aux [gates] | c (B,T,H) | ... (layouts in lstm_kernels.h) -> c[:, T-1] (B,H)
static df_status lstm_final_c_forward(df_node *n)
{
    const df_node *l = n->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2];
    const float *c = (const float *)l->aux + lstm_aux_c_offset(B, T, H, DF_ATTRS(l, df_lstm_attrs)->train);
    float *y = DF_F32P(n);
    if (n->numel == 0) return DF_OK;
    for (int64_t b = 0; b < B; b++)
        memcpy(y + b * H, c + (b * T + T - 1) * H, (size_t)H * sizeof(float));
    return DF_OK;
}

/* A copy of the last step's cell state: B*H floats read from the lstm's
 * workspace and written (not the lstm's output, which it does not read). */
static void lstm_final_c_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * 4 * (double)n->numel};
}

const df_op_def df_op_lstm_final_c = {
    .name = "lstm_final_c", .infer = lstm_final_c_infer, .forward = lstm_final_c_forward,
    .no_gradcheck = "no gradient: carried state is a constant to the next step "
                    "(values in tests/test_lstm.c)",
    .min_inputs = 1, .max_inputs = 1,
    .cost = lstm_final_c_cost,
};

df_node *df_lstm_final_c(df_graph *g, df_node *lstm)
{
    return df_node_new(g, &df_op_lstm_final_c, 1, &lstm, NULL);
}
