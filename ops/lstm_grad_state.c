/* lstm_grad_state.c — dh0 (which = 0) or dc0 (which = 1), the gradients an
 * lstm passes back to its initial state, or d table (which = 2) of an lstm
 * in the ids form, read out of an lstm_grad node's workspace (where BPTT
 * leaves them after step 0). Not differentiable. */
#include <string.h>
#include "common.h"
#include "lstm_kernels.h"

static df_status lstm_grad_state_infer(df_node *n)
{
    const df_node *gr = n->in[0];
    if (gr->op != &df_op_lstm_grad)
        return df_op_error(n, DF_ERR_ARG, "input must be an lstm_grad node, got op '%s'", gr->op->name);
    int which = DF_ATTRS(n, df_lstm_state_attrs)->which;
    if (which < 0 || which > 2)
        return df_op_error(n, DF_ERR_ARG, "state index must be 0 (dh0), 1 (dc0) or 2 (d table), got %d", which);
    if (which == 0 && !DF_ATTRS(gr, df_bptt_attrs)->want_dh0)
        return df_op_error(n, DF_ERR_STATE, "lstm_grad node %d was built without dh0", gr->id);
    if (which == 2 && gr->n_in <= LSTM_IDS_INPUT)
        return df_op_error(n, DF_ERR_STATE, "lstm_grad node %d sums no d table (not an ids form lstm's)", gr->id);
    const df_node *l = gr->in[0];
    n->dtype = DF_F32;
    n->ndim = 2;
    n->shape[0] = which == 2 ? l->in[0]->shape[0] : l->shape[0];
    n->shape[1] = which == 2 ? 4 * l->shape[2] : l->shape[2];
    return DF_OK;
}

// lstm_grad (B,T,4H) with aux dh0 | dc0 (B,H each) [| d table (V,4H)]
// -> dh0, dc0 (B,H) or d table (V,4H)
static df_status lstm_grad_state_forward(df_node *n)
{
    const df_node *l = n->in[0]->in[0];
    const size_t state = (size_t)(l->shape[0] * l->shape[2]) * sizeof(float), bytes = (size_t)n->numel * sizeof(float);
    if (bytes) memcpy(n->data, (const char *)n->in[0]->aux + (size_t)DF_ATTRS(n, df_lstm_state_attrs)->which * state, bytes);
    return DF_OK;
}

/* A copy of (B,H) or (V,4H) out of lstm_grad's workspace. */
static void lstm_grad_state_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
}

const df_op_def df_op_lstm_grad_state = {
    .name = "lstm_grad_state", .infer = lstm_grad_state_infer, .forward = lstm_grad_state_forward,
    .attrs_size = sizeof(df_lstm_state_attrs),
    .no_gradcheck = "gradient op: checked through lstm's cases",
    .cost = lstm_grad_state_cost,
    .min_inputs = 1, .max_inputs = 1,
};
