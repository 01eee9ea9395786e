/* rnn_grad_state.c — dh0 (B,H), the gradient an rnn passes back to its
 * initial state, read out of an rnn_grad node's workspace (where BPTT leaves
 * it after step 0; the rnn_grad must have been built with want_dh0). Not
 * differentiable. */
#include <string.h>
#include "common.h"

static df_status rnn_grad_state_infer(df_node *n)
{
    const df_node *gr = n->in[0];
    if (gr->op != &df_op_rnn_grad)
        return df_op_error(n, DF_ERR_ARG, "input must be an rnn_grad node, got op '%s'", gr->op->name);
    if (!DF_ATTRS(gr, df_bptt_attrs)->want_dh0) return df_op_error(n, DF_ERR_STATE, "rnn_grad node %d was built without dh0", gr->id);
    n->dtype = DF_F32;
    n->ndim = 2;
    n->shape[0] = gr->shape[0];
    n->shape[1] = gr->shape[2];
    return DF_OK;
}

// rnn_grad (B,T,H) with aux dh0 (B,H) -> dh0 (B,H)
static df_status rnn_grad_state_forward(df_node *n)
{
    size_t bytes = (size_t)n->numel * sizeof(float);
    if (bytes) memcpy(n->data, n->in[0]->aux, bytes);
    return DF_OK;
}

/* A copy of (B,H) out of rnn_grad's workspace. */
static void rnn_grad_state_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
}

const df_op_def df_op_rnn_grad_state = {
    .name = "rnn_grad_state", .infer = rnn_grad_state_infer, .forward = rnn_grad_state_forward,
    .no_gradcheck = "gradient op: checked through rnn's cases",
    .min_inputs = 1, .max_inputs = 1,
    .cost = rnn_grad_state_cost,
};
