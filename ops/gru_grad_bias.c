/* gru_grad_bias.c — d b_rec (3H) of a reset_after gru: the recurrent
 * pre-activation gradients du that gru_grad keeps in its workspace, summed
 * over batch and time (each column by one thread, in order: deterministic).
 * Not differentiable. */
#include "common.h"

static df_status gru_grad_bias_infer(df_node *n)
{
    const df_node *gr = n->in[0];
    if (gr->op != &df_op_gru_grad)
        return df_op_error(n, DF_ERR_ARG, "input must be a gru_grad node, got op '%s'", gr->op->name);
    const df_node *l = gr->in[0];
    if (!DF_ATTRS(l, df_gru_attrs)->reset_after || l->n_in != 4)
        return df_op_error(n, DF_ERR_STATE, "gru node %d has no recurrent bias (needs reset_after and b_rec)", l->id);
    n->dtype = DF_F32;
    n->ndim = 1;
    n->shape[0] = 3 * l->shape[2];
    return DF_OK;
}

// gru_grad (B,T,3H) with aux du (B,T,3H) -> d b_rec (3H)
static df_status gru_grad_bias_forward(df_node *n)
{
    const df_node *gr = n->in[0], *l = gr->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2];
    const float *DU = (const float *)gr->aux + 2 * B * H;
    df_reduce_middle(DU, DF_F32P(n), 1, B * T, 3 * H, 1.0f);
    return DF_OK;
}

/* One add per element of du (B,T,3H); du read, (3H) written. */
static void gru_grad_bias_cost(const df_node *n, df_op_cost *out)
{
    double du = (double)n->in[0]->numel;
    *out = (df_op_cost){.flops = du, .bytes = 4 * (du + (double)n->numel)};
}

const df_op_def df_op_gru_grad_bias = {
    .name = "gru_grad_bias", .infer = gru_grad_bias_infer, .forward = gru_grad_bias_forward,
    .no_gradcheck = "gradient op: checked through gru's cases",
    .min_inputs = 1, .max_inputs = 1,
    .cost = gru_grad_bias_cost,
};
