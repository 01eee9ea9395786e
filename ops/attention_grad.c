/* attention_grad.c — the backward of the fused attention (ops/attention.c),
 * FlashAttention-style: the probabilities are recomputed block by block from
 * q, k and the saved logsumexp, P = exp(q k^T * scale - lse) (0 where
 * masked), never stored whole. With dO the output gradient and
 * D_i = rowsum(dO_i * O_i):
 *     dv = P^T dO,   dS = P * (dO v^T - D),   dq = scale dS k,   dk = scale dS^T q.
 * Inputs: the attention node (its output O, logsumexp in its aux,
 * attributes), dO, q, k, v (inputs too so the planner keeps them alive).
 * Output dq; dk and dv stay in the workspace for attention_grad_kv. One
 * thread does one leading index, key blocks outer and query blocks inner, in
 * a fixed order, so the sums do not depend on the thread count. Not
 * differentiable (no backward): a second derivative through attention is
 * refused with "has no gradient". */
#include "attention_kernels.h"
#include "cell_math.h"

static df_status attention_grad_infer(df_node *n)
{
    const df_node *attn = n->in[0], *dy = n->in[1];
    char sa[64], sb[64];
    if (attn->op != &df_op_attention)
        return df_op_error(n, DF_ERR_ARG, "input 0 must be an attention node, got op '%s'", attn->op->name);
    if (!df_shape_equal(dy->ndim, dy->shape, attn->ndim, attn->shape) || dy->dtype != DF_F32)
        return df_op_error(n, DF_ERR_SHAPE, "output gradient %s does not match the attention output %s",
                           df_node_shape_str(dy, sa, sizeof sa), df_node_shape_str(attn, sb, sizeof sb));
    for (int i = 0; i < 3; i++) {
        const df_node *x = n->in[2 + i], *want = attn->in[i];
        if (!df_shape_equal(x->ndim, x->shape, want->ndim, want->shape))
            return df_op_error(n, DF_ERR_SHAPE, "input %d has shape %s, the attention's has %s", 2 + i,
                               df_node_shape_str(x, sa, sizeof sa), df_node_shape_str(want, sb, sizeof sb));
    }
    const df_node *q = n->in[2], *k = n->in[3], *v = n->in[4];
    n->dtype = DF_F32;
    n->ndim = q->ndim;
    memcpy(n->shape, q->shape, sizeof n->shape);
    const int64_t rows = df_shape_numel(q->ndim - 1, q->shape);        /* D per query row */
    n->aux_bytes = (size_t)(k->numel + v->numel + rows) * sizeof(float);
    return DF_OK;
}

/* P (nq x nk, row stride ATT_BK) from the scores in S: exp(s - lse), 0
 * where masked; built for AVX-512 and AVX2 too, as the forward's softmax. */
DF_TARGET_CLONES static void probabilities(const att_dims *a, const float *lse, int64_t i0, int64_t nq, int64_t j0,
                                           int64_t nk, float *S)
{
    for (int64_t r = 0; r < nq; r++) {
        float *s = S + r * ATT_BK, lse_r = lse[i0 + r];
        const int64_t seen = att_visible(a, i0 + r, j0, nk);
#pragma omp simd
        for (int64_t j = 0; j < seen; j++) s[j] = cell_exp(s[j] - lse_r);
        for (int64_t j = seen; j < nk; j++) s[j] = 0.0f;
    }
}

/* dS = P * (dP - D) in place of dP, row by row, 0 where masked (the fast
 * tiles leave masked entries of dP unwritten). */
DF_TARGET_CLONES static void score_gradients(const att_dims *a, const float *D, int64_t i0, int64_t nq, int64_t j0,
                                             int64_t nk, const float *S, float *dS)
{
    for (int64_t r = 0; r < nq; r++) {
        const float *p = S + r * ATT_BK, Di = D[i0 + r];
        float *ds = dS + r * ATT_BK;
        const int64_t seen = att_visible(a, i0 + r, j0, nk);
#pragma omp simd
        for (int64_t j = 0; j < seen; j++) ds[j] = p[j] * (ds[j] - Di);
        for (int64_t j = seen; j < nk; j++) ds[j] = 0.0f;
    }
}

/* A thread's blocks: scores and their gradients, k^T and v^T of the key
 * block for the fast tiles. */
typedef struct grad_scratch { float S[ATT_BQ * ATT_BK], dS[ATT_BQ * ATT_BK], Kt[ATT_BK * ATT_BK], Vt[ATT_BK * ATT_BK]; } grad_scratch;

/* Adds the contributions of queries [i0, i0 + nq) and keys [j0, j0 + nk);
 * w->Kt and w->Vt hold the key block's k^T and v^T when fast. */
static void grad_block(const att_dims *a, att_tiles tiles, const att_grad_ptrs *t, int64_t i0, int64_t nq, int64_t j0,
                       int64_t nk, grad_scratch *w)
{
    const int64_t d = a->d, dv = a->dv, ldq = a->ldq, ldk = a->ldk, ldv = a->ldv, ldo = a->ldo;
    const float *Qi = t->Q + i0 * ldq, *dOi = t->dO + i0 * ldo, *Kj = t->K + j0 * ldk, *Vj = t->V + j0 * ldv;
    const int64_t reach = att_band_reach(a, i0, j0);
    const att_band by_query = att_band_by_query(reach), by_key = att_band_by_key(reach);
    att_product_nt(tiles, nq, nk, d, a->scale, Qi, ldq, Kj, ldk, w->Kt, w->S, reach);
    probabilities(a, t->lse, i0, nq, j0, nk, w->S);
    att_product(tiles, true, nk, dv, nq, 1.0f, w->S, ATT_BK, dOi, ldo, 1.0f, t->dV + j0 * ldv, ldv, by_query);
    att_product_nt(tiles, nq, nk, dv, 1.0f, dOi, ldo, Vj, ldv, w->Vt, w->dS, reach);
    score_gradients(a, t->D, i0, nq, j0, nk, w->S, w->dS);
    att_product(tiles, true, nk, d, nq, a->scale, w->dS, ATT_BK, Qi, ldq, 1.0f, t->dK + j0 * ldk, ldk, by_query);
    att_product(tiles, false, nq, d, nk, a->scale, w->dS, ATT_BK, Kj, ldk, 1.0f, t->dQ + i0 * ldq, ldq, by_key);
}

/* Rows [0, rows) of width cols, stride ld, to zero. */
static void zero_rows(float *x, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++) memset(x + r * ld, 0, (size_t)cols * sizeof(float));
}

/* All gradients of one leading index (t points at its rows). */
static void grad_one(const att_dims *a, att_tiles tiles, const att_grad_ptrs *t, grad_scratch *w)
{
    for (int64_t i = 0; i < a->Tq; i++) {
        const float *o = t->O + i * a->ldo, *g = t->dO + i * a->ldo;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t c = 0; c < a->dv; c++) dot += o[c] * g[c];
        t->D[i] = dot;
    }
    zero_rows(t->dQ, a->Tq, a->d, a->ldq);
    zero_rows(t->dK, a->Tk, a->d, a->ldk);
    zero_rows(t->dV, a->Tk, a->dv, a->ldv);
    for (int64_t j0 = 0; j0 < a->Tk; j0 += ATT_BK) {
        const int64_t nk = a->Tk - j0 < ATT_BK ? a->Tk - j0 : ATT_BK;
        if (tiles == ATT_TILES_FP32) {
            att_fast_transpose(nk, a->d, t->K + j0 * a->ldk, a->ldk, w->Kt);
            att_fast_transpose(nk, a->dv, t->V + j0 * a->ldv, a->ldv, w->Vt);
        }
        int64_t first = a->causal ? j0 - a->offset : 0;      /* the first query that sees key j0 */
        first = first < 0 ? 0 : first / ATT_BQ * ATT_BQ;
        for (int64_t i0 = first; i0 < a->Tq; i0 += ATT_BQ)
            grad_block(a, tiles, t, i0, a->Tq - i0 < ATT_BQ ? a->Tq - i0 : ATT_BQ, j0, nk, w);
    }
}

void df_att_backward(const att_dims *a, att_offsets_fn at, const att_grad_ptrs *t)
{
    const att_tiles tiles = att_tiles_for(a, df_get_precision());   /* the calling thread's */
#pragma omp parallel if (a->nb > 1)
    {
        grad_scratch w;
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < a->nb; p++) {
            const att_offsets o = at(a, p);
            const att_grad_ptrs u = {
                .Q = t->Q + o.q, .K = t->K + o.k, .V = t->V + o.v, .O = t->O + o.y, .dO = t->dO + o.y,
                .lse = t->lse + p * a->Tq, .dQ = t->dQ + o.q, .dK = t->dK + o.k, .dV = t->dV + o.v,
                .D = t->D + p * a->Tq,
            };
            grad_one(a, tiles, &u, &w);
        }
    }
}

// attention (nb,Tq,dv) [aux lse], dO (nb,Tq,dv), q, k, v -> dq (nb,Tq,d);
// aux: dk (nb,Tk,d) | dv (nb,Tk,dv) | D (nb,Tq)
static df_status attention_grad_forward(df_node *n)
{
    const df_node *attn = n->in[0];
    const att_dims a = att_dims_of(attn);
    float *dK = n->aux, *dV = dK + a.nb * a.Tk * a.d, *D = dV + a.nb * a.Tk * a.dv;
    const att_grad_ptrs t = {
        .Q = DF_F32P(n->in[2]), .K = DF_F32P(n->in[3]), .V = DF_F32P(n->in[4]), .O = DF_F32P(attn),
        .dO = DF_F32P(n->in[1]), .lse = attn->aux, .dQ = DF_F32P(n), .dK = dK, .dV = dV, .D = D,
    };
    df_att_backward(&a, att_dense_offsets, &t);
    return DF_OK;
}

/* Per pair: the scores again (2 d), dO v^T (2 dv), P^T dO (2 dv), dS k and
 * dS^T q (2 d each): 2.5 times the forward when dv == d. */
static void attention_grad_cost(const df_node *n, df_op_cost *out)
{
    const df_node *attn = n->in[0], *q = n->in[2], *v = n->in[4];
    double lead = (double)df_shape_numel(q->ndim - 2, q->shape), d = (double)q->shape[q->ndim - 1];
    double dv = (double)v->shape[v->ndim - 1];
    *out = (df_op_cost){.flops = lead * df_attention_pairs(attn) * (6 * d + 4 * dv),
                        .bytes = df_cost_io_bytes(n) + (double)n->aux_bytes + (double)attn->aux_bytes};
}

const df_op_def df_op_attention_grad = {
    .name = "attention_grad", .infer = attention_grad_infer, .forward = attention_grad_forward,
    .no_gradcheck = "gradient op: checked through attention's cases",
    .cost = attention_grad_cost,
    .min_inputs = 5, .max_inputs = 5,
};

df_node *df_attention_grad_make(df_graph *g, df_node *attn, df_node *dy)
{
    df_node *in[5] = {attn, dy, attn->in[0], attn->in[1], attn->in[2]};
    return df_node_new(g, &df_op_attention_grad, 5, in, NULL);
}
