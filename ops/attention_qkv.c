/* attention_qkv.c — multi-head attention read straight out of a fused qkv
 * projection: qkv (..., T, 3C) holds q, k and v side by side, each split
 * into n_head heads of d = C / n_head columns (nanoGPT's
 *   q, k, v = qkv.split(C, -1); view(B, T, H, d).transpose(1, 2)),
 * and the output (..., T, C) has head h in columns [h d, (h + 1) d) (the
 * inverse transpose and view). It is df_attention on those heads, computed
 * by the same kernels (ops/attention.c) on strided rows, so the heads are
 * never copied out (no slice, transpose or, in the backward, pad and add),
 * and gives the same bits as that composition. The backward
 * (attention_qkv_grad) writes the gradient of qkv directly. */
#include "attention_kernels.h"

att_dims df_attention_qkv_dims(const df_node *n)
{
    const df_node *qkv = n->in[0];
    const df_attention_qkv_attrs *at = DF_ATTRS(n, df_attention_qkv_attrs);
    const int r = qkv->ndim;
    const int64_t T = qkv->shape[r - 2], C = qkv->shape[r - 1] / 3, H = at->n_head, d = C / H;
    return (att_dims){.nb = df_shape_numel(r - 2, qkv->shape) * H, .Tq = T, .Tk = T, .d = d, .dv = d,
                      .ldq = 3 * C, .ldk = 3 * C, .ldv = 3 * C, .ldo = C, .scale = at->scale, .causal = at->causal != 0};
}

att_offsets df_attention_qkv_offsets(const att_dims *a, int64_t p)
{
    const int64_t C = a->ldo, H = C / a->d, lead = p / H, head = p % H, q = lead * a->Tq * 3 * C + head * a->d;
    return (att_offsets){.q = q, .k = q + C, .v = q + 2 * C, .y = lead * a->Tq * C + head * a->d};
}

static df_status attention_qkv_infer(df_node *n)
{
    df_status st = df_require_f32(n, 0);
    if (st != DF_OK) return st;
    const df_node *qkv = n->in[0];
    const df_attention_qkv_attrs *at = DF_ATTRS(n, df_attention_qkv_attrs);
    char s[64];
    df_node_shape_str(qkv, s, sizeof s);
    const int r = qkv->ndim;
    if (r < 2) return df_op_error(n, DF_ERR_SHAPE, "qkv must have rank >= 2 (..., T, 3C), got %s", s);
    const int64_t T = qkv->shape[r - 2], C3 = qkv->shape[r - 1];
    if (at->n_head < 1) return df_op_error(n, DF_ERR_ARG, "n_head must be >= 1, got %d", at->n_head);
    if (C3 % 3 || C3 == 0 || C3 / 3 % at->n_head)
        return df_op_error(n, DF_ERR_SHAPE,
                           "qkv's last axis must be 3C with C a positive multiple of n_head = %d, got %s",
                           at->n_head, s);
    if (T == 0) return df_op_error(n, DF_ERR_SHAPE, "needs at least one position (T), got qkv %s", s);
    if (!isfinite(at->scale)) return df_op_error(n, DF_ERR_ARG, "scale must be finite, got %g", (double)at->scale);
    n->dtype = DF_F32;
    n->ndim = r;
    memcpy(n->shape, qkv->shape, sizeof n->shape);
    n->shape[r - 1] = C3 / 3;
    n->aux_bytes = (size_t)(df_shape_numel(r - 1, qkv->shape) * at->n_head) * sizeof(float);   /* lse per head row */
    return DF_OK;
}

// qkv (..., T, 3C) -> y (..., T, C); aux: logsumexp (..., H, T)
static df_status attention_qkv_forward(df_node *n)
{
    const att_dims a = df_attention_qkv_dims(n);
    const float *QKV = DF_F32P(n->in[0]);
    df_att_forward(&a, df_attention_qkv_offsets, QKV, QKV, QKV, DF_F32P(n), n->aux);
    return DF_OK;
}

static df_status attention_qkv_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    if (need[0]) dx[0] = df_attention_qkv_grad_make(g, n, dy);
    return g->status;
}

static df_node *qkv_causal(df_graph *g, df_node **in) { return df_attention_qkv(g, in[0], 2, true, 0.7f); }
static df_node *qkv_plain(df_graph *g, df_node **in) { return df_attention_qkv(g, in[0], 1, false, 1.5f); }
static df_node *qkv_three_heads(df_graph *g, df_node **in) { return df_attention_qkv(g, in[0], 3, true, 0.7f); }

static const df_gradcheck_case attention_qkv_cases[] = {
    {"(2,3,12) 2 heads of 2, causal", 1, {DF_GC_F32(2, 3, 12)}, qkv_causal, 0, 0},
    {"(4,6) one head of 2, not causal, scale 1.5", 1, {DF_GC_F32(4, 6)}, qkv_plain, 0, 0},
    {"(1,2,4,9) 3 heads of 1, causal", 1, {DF_GC_F32(1, 2, 4, 9)}, qkv_three_heads, 0, 0},
    {0},
};

/* As df_attention's: 4 d per visible query-key pair, per head. */
static void attention_qkv_cost(const df_node *n, df_op_cost *out)
{
    const att_dims a = df_attention_qkv_dims(n);
    double pairs = a.causal ? (double)a.Tq * (double)(a.Tq + 1) / 2 : (double)a.Tq * (double)a.Tk;
    *out = (df_op_cost){.flops = (double)a.nb * pairs * 4 * (double)a.d,
                        .bytes = df_cost_io_bytes(n) + (double)n->aux_bytes};
}

/* n_head, causal=0|1, scale (0: 1/sqrt(d)). */
static df_node *attention_qkv_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    int heads = (int)attrs[0];
    double d = heads > 0 ? (double)df_node_dim(in[0], -1) / 3 / heads : 1;
    double scale = attrs[2] != 0 ? attrs[2] : 1.0 / sqrt(d);
    return df_attention_qkv(g, in[0], heads, attrs[1] != 0, (float)scale);
}

static const df_bench_def attention_qkv_bench = {
    .n_inputs = 1, .attrs = {"n_head", "causal", "scale"}, .defaults = {"4", "1", "0"},
    .build = attention_qkv_bench_build,
    .shapes = {"12x64x384", "64x256x1152 n_head=6", "16x512x2304 n_head=12"},
};

const df_op_def df_op_attention_qkv = {
    .name = "attention_qkv", .infer = attention_qkv_infer, .forward = attention_qkv_forward,
    .backward = attention_qkv_backward, .gradcheck = attention_qkv_cases, .attrs_size = sizeof(df_attention_qkv_attrs),
    .cost = attention_qkv_cost, .bench = &attention_qkv_bench,
    .min_inputs = 1, .max_inputs = 1,
};

df_node *df_attention_qkv(df_graph *g, df_node *qkv, int n_head, bool causal, float scale)
{
    return df_node_new(g, &df_op_attention_qkv, 1, &qkv,
                       &(df_attention_qkv_attrs){.scale = scale, .causal = causal, .n_head = n_head});
}
