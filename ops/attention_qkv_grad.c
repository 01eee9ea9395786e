/* attention_qkv_grad.c — the backward of attention_qkv (ops/attention_qkv.c):
 * the kernels of ops/attention_grad.c on each head's strided rows, writing
 * dq, dk and dv straight into their columns of d qkv (..., T, 3C), which the
 * heads cover exactly. Inputs: the attention_qkv node (its output, the
 * logsumexps in its aux, attributes), dy (..., T, C) and qkv (an input too
 * so the planner keeps it alive). One thread does one (leading index, head)
 * in a fixed order: the sums do not depend on the thread count. Not
 * differentiable: a second derivative is refused with "has no gradient". */
#include "attention_kernels.h"

static df_status attention_qkv_grad_infer(df_node *n)
{
    const df_node *attn = n->in[0], *dy = n->in[1], *qkv = n->in[2];
    char sa[64], sb[64];
    if (attn->op != &df_op_attention_qkv)
        return df_op_error(n, DF_ERR_ARG, "input 0 must be an attention_qkv node, got op '%s'", attn->op->name);
    if (!df_shape_equal(dy->ndim, dy->shape, attn->ndim, attn->shape) || dy->dtype != DF_F32)
        return df_op_error(n, DF_ERR_SHAPE, "output gradient %s does not match the attention output %s",
                           df_node_shape_str(dy, sa, sizeof sa), df_node_shape_str(attn, sb, sizeof sb));
    if (qkv != attn->in[0])
        return df_op_error(n, DF_ERR_ARG, "input 2 must be the attention's qkv");
    n->dtype = DF_F32;
    n->ndim = qkv->ndim;
    memcpy(n->shape, qkv->shape, sizeof n->shape);
    n->aux_bytes = (size_t)attn->aux_bytes;                /* D per head row, as the logsumexps */
    return DF_OK;
}

// attention_qkv (..., T, C) [aux lse], dy (..., T, C), qkv (..., T, 3C) -> d qkv (..., T, 3C); aux: D
static df_status attention_qkv_grad_forward(df_node *n)
{
    const df_node *attn = n->in[0];
    const att_dims a = df_attention_qkv_dims(attn);
    const float *QKV = DF_F32P(n->in[2]);
    float *dQKV = DF_F32P(n);
    const att_grad_ptrs t = {
        .Q = QKV, .K = QKV, .V = QKV, .O = DF_F32P(attn), .dO = DF_F32P(n->in[1]), .lse = attn->aux,
        .dQ = dQKV, .dK = dQKV, .dV = dQKV, .D = n->aux,
    };
    df_att_backward(&a, df_attention_qkv_offsets, &t);
    return DF_OK;
}

/* As attention_grad's: 10 d per visible query-key pair, per head. */
static void attention_qkv_grad_cost(const df_node *n, df_op_cost *out)
{
    const att_dims a = df_attention_qkv_dims(n->in[0]);
    double pairs = a.causal ? (double)a.Tq * (double)(a.Tq + 1) / 2 : (double)a.Tq * (double)a.Tk;
    *out = (df_op_cost){.flops = (double)a.nb * pairs * 10 * (double)a.d,
                        .bytes = df_cost_io_bytes(n) + (double)n->aux_bytes + (double)n->in[0]->aux_bytes};
}

const df_op_def df_op_attention_qkv_grad = {
    .name = "attention_qkv_grad", .infer = attention_qkv_grad_infer, .forward = attention_qkv_grad_forward,
    .no_gradcheck = "gradient op: checked through attention_qkv's cases",
    .cost = attention_qkv_grad_cost,
    .min_inputs = 3, .max_inputs = 3,
};

df_node *df_attention_qkv_grad_make(df_graph *g, df_node *attn, df_node *dy)
{
    df_node *in[3] = {attn, dy, attn->in[0]};
    return df_node_new(g, &df_op_attention_qkv_grad, 3, in, NULL);
}
