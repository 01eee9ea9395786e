/* gru_grad_state.c — dh0 (B,H), the gradient a gru passes back to its initial
 * state, read out of a gru_grad node's workspace (where BPTT leaves it after
 * step 0; the gru_grad must have been built with want_dh0). Not
 * differentiable. */
#include <string.h>
#include "common.h"

static df_status gru_grad_state_infer(df_node *n)
{
    const df_node *gr = n->in[0];
    if (gr->op != &df_op_gru_grad)
        return df_op_error(n, DF_ERR_ARG, "input must be a gru_grad node, got op '%s'", gr->op->name);
    if (!DF_ATTRS(gr, df_bptt_attrs)->want_dh0) return df_op_error(n, DF_ERR_STATE, "gru_grad node %d was built without dh0", gr->id);
    n->dtype = DF_F32;
    n->ndim = 2;
    n->shape[0] = gr->shape[0];
    n->shape[1] = gr->shape[2] / 3;
    return DF_OK;
}

// gru_grad (B,T,3H) with aux dh0 (B,H) | ... -> dh0 (B,H)
static df_status gru_grad_state_forward(df_node *n)
{
    size_t bytes = (size_t)n->numel * sizeof(float);
    if (bytes) memcpy(n->data, n->in[0]->aux, bytes);
    return DF_OK;
}

/* A copy of (B,H) out of gru_grad's workspace. */
static void gru_grad_state_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
}

const df_op_def df_op_gru_grad_state = {
    .name = "gru_grad_state", .infer = gru_grad_state_infer, .forward = gru_grad_state_forward,
    .no_gradcheck = "gradient op: checked through gru's cases",
    .min_inputs = 1, .max_inputs = 1,
    .cost = gru_grad_state_cost,
};
