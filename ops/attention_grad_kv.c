/* attention_grad_kv.c — dk (which = 0) or dv (which = 1) of a fused
 * attention, read out of the attention_grad node's workspace where its
 * backward left them (ops/attention_grad.c). Not differentiable. */
#include "attention_kernels.h"

DF_ATTRS_BEGIN
typedef struct { int32_t which; } attention_kv_attrs;
DF_ATTRS_END

static df_status attention_grad_kv_infer(df_node *n)
{
    const df_node *grad = n->in[0];
    if (grad->op != &df_op_attention_grad)
        return df_op_error(n, DF_ERR_ARG, "input must be an attention_grad node, got op '%s'", grad->op->name);
    int which = DF_ATTRS(n, attention_kv_attrs)->which;
    if (which != 0 && which != 1)
        return df_op_error(n, DF_ERR_ARG, "which must be 0 (dk) or 1 (dv), got %d", which);
    const df_node *like = grad->in[3 + which];            /* k or v */
    n->dtype = DF_F32;
    n->ndim = like->ndim;
    memcpy(n->shape, like->shape, sizeof n->shape);
    return DF_OK;
}

// attention_grad with aux dk | dv | ... -> dk or dv
static df_status attention_grad_kv_forward(df_node *n)
{
    const df_node *grad = n->in[0];
    const float *from = (const float *)grad->aux + (DF_ATTRS(n, attention_kv_attrs)->which ? grad->in[3]->numel : 0);
    if (n->numel) memcpy(n->data, from, (size_t)n->numel * sizeof(float));
    return DF_OK;
}

/* A copy of dk or dv out of attention_grad's workspace. */
static void attention_grad_kv_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
}

const df_op_def df_op_attention_grad_kv = {
    .name = "attention_grad_kv", .infer = attention_grad_kv_infer, .forward = attention_grad_kv_forward,
    .attrs_size = sizeof(attention_kv_attrs),
    .no_gradcheck = "gradient op: checked through attention's cases",
    .cost = attention_grad_kv_cost,
};

df_node *df_attention_grad_kv(df_graph *g, df_node *grad, int which)
{
    return df_node_new(g, &df_op_attention_grad_kv, 1, &grad, &(attention_kv_attrs){.which = which});
}
