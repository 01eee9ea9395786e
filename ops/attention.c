/* attention.c — fused scaled dot-product attention,
 * y = softmax(q k^T * scale + causal mask) v per leading index, computed the
 * FlashAttention way: per block of ATT_BQ query rows, the keys are visited in
 * blocks of ATT_BK with a running max m and sum l per row (online softmax),
 * the output rows rescaled by exp(m_old - m_new) whenever the max grows. A
 * thread holds one block of scores, never the T x T matrix; under causal
 * masking key blocks past a query block's last visible key are skipped.
 * The exps use cell_exp (vectorisable, relative error < 3e-7). Units of work
 * are (leading index, query block), each done by one thread in a fixed
 * order, so results do not depend on the thread count. The aux keeps each
 * row's logsumexp m + log(l) for the backward (ops/attention_grad.c). */
#include "attention_kernels.h"
#include "cell_math.h"

static df_status attention_infer(df_node *n)
{
    df_status st;
    for (int i = 0; i < 3; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    const df_node *q = n->in[0], *k = n->in[1], *v = n->in[2];
    char sq[64], sk[64], sv[64];
    df_node_shape_str(q, sq, sizeof sq);
    df_node_shape_str(k, sk, sizeof sk);
    df_node_shape_str(v, sv, sizeof sv);
    int r = q->ndim;
    if (r < 2 || k->ndim != r || v->ndim != r)
        return df_op_error(n, DF_ERR_SHAPE, "q, k, v must have one rank >= 2 (..., T, d), got q %s, k %s, v %s",
                           sq, sk, sv);
    if (!df_shape_equal(r - 2, q->shape, r - 2, k->shape) || !df_shape_equal(r - 2, q->shape, r - 2, v->shape))
        return df_op_error(n, DF_ERR_SHAPE, "q, k, v must share their leading axes, got q %s, k %s, v %s", sq, sk, sv);
    if (k->shape[r - 1] != q->shape[r - 1])
        return df_op_error(n, DF_ERR_SHAPE, "q and k must have the same last axis (d), got q %s, k %s", sq, sk);
    if (v->shape[r - 2] != k->shape[r - 2])
        return df_op_error(n, DF_ERR_SHAPE, "k and v must have the same number of keys, got k %s, v %s", sk, sv);
    if (k->shape[r - 2] == 0)
        return df_op_error(n, DF_ERR_SHAPE, "needs at least one key, got q %s, k %s", sq, sk);
    const df_attention_attrs *at = DF_ATTRS(n, df_attention_attrs);
    if (at->causal && k->shape[r - 2] < q->shape[r - 2])
        return df_op_error(n, DF_ERR_SHAPE,
                           "causal attention needs at least as many keys as queries (the first query would see "
                           "none), got q %s, k %s", sq, sk);
    if (!isfinite(at->scale))
        return df_op_error(n, DF_ERR_ARG, "scale must be finite, got %g", (double)at->scale);
    n->dtype = DF_F32;
    n->ndim = r;
    memcpy(n->shape, q->shape, sizeof n->shape);
    n->shape[r - 1] = v->shape[r - 1];
    n->aux_bytes = (size_t)df_shape_numel(r - 1, q->shape) * sizeof(float);   /* logsumexp per query row */
    return DF_OK;
}

/* One row's block of scores s[0, nk) (the first `seen` visible) folded into
 * its running max *m and sum *l: s becomes the row's unnormalised
 * probabilities exp(s - m_new) (0 where masked). Returns the factor
 * exp(m_old - m_new) the row's output so far must be scaled by. */
static inline __attribute__((always_inline)) float online_softmax_row(float *s, int64_t seen, int64_t nk, float *m,
                                                                        float *l)
{
    float max = *m;
#pragma omp simd reduction(max : max)
    for (int64_t j = 0; j < seen; j++) max = s[j] > max ? s[j] : max;   /* a select, not a call to fmaxf */
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < seen; j++) {
        float e = cell_exp(s[j] - max);
        s[j] = e;
        sum += e;
    }
    for (int64_t j = seen; j < nk; j++) s[j] = 0.0f;
    if (seen == 0) return 1.0f;
    float rescale = *m == -INFINITY ? 0.0f : cell_exp(*m - max);
    *l = *l * rescale + sum;
    *m = max;
    return rescale;
}

/* Every row of a block of scores S (queries [i0, i0 + nq), keys [j0, j0 +
 * nk)) through online_softmax_row, each row's output so far in O rescaled;
 * built for AVX-512 and AVX2 too (the library's baseline is SSE2, and the
 * exps cost about as much as the block's products). */
DF_TARGET_CLONES static void online_softmax_block(const att_dims *a, int64_t i0, int64_t nq, int64_t j0, int64_t nk,
                                                  float *S, float *m, float *l, float *O)
{
    for (int64_t r = 0; r < nq; r++) {
        float rescale = online_softmax_row(S + r * ATT_BK, att_visible(a, i0 + r, j0, nk), nk, &m[r], &l[r]);
        if (rescale == 1.0f) continue;
        float *o = O + r * a->ldo;
#pragma omp simd
        for (int64_t c = 0; c < a->dv; c++) o[c] *= rescale;
    }
}

/* Queries [i0, i0 + nq) of one leading index: Q, K, V point at its first q,
 * k, v rows, O and lse at the block's output rows and logsumexps; S is a
 * block of scores, Kt one of k^T for the fast tiles. */
static void query_block(const att_dims *a, att_tiles tiles, const float *Q, const float *K, const float *V, int64_t i0,
                        int64_t nq, float *O, float *lse, float *S, float *Kt)
{
    float m[ATT_BQ], l[ATT_BQ];
    for (int64_t r = 0; r < nq; r++) m[r] = -INFINITY, l[r] = 0.0f;
    for (int64_t r = 0; r < nq; r++) memset(O + r * a->ldo, 0, (size_t)a->dv * sizeof(float));
    const int64_t key_end = att_key_end(a, i0, nq);
    for (int64_t j0 = 0; j0 < key_end; j0 += ATT_BK) {
        const int64_t nk = key_end - j0 < ATT_BK ? key_end - j0 : ATT_BK;
        const int64_t reach = att_band_reach(a, i0, j0);
        if (tiles == ATT_TILES_FP32) att_fast_transpose(nk, a->d, K + j0 * a->ldk, a->ldk, Kt);
        att_product_nt(tiles, nq, nk, a->d, a->scale, Q, a->ldq, K + j0 * a->ldk, a->ldk, Kt, S, reach);
        online_softmax_block(a, i0, nq, j0, nk, S, m, l, O);
        att_product(tiles, false, nq, a->dv, nk, 1.0f, S, ATT_BK, V + j0 * a->ldv, a->ldv, 1.0f, O, a->ldo,
                    att_band_by_key(reach));
    }
    for (int64_t r = 0; r < nq; r++) {
        float inv = 1.0f / l[r], *o = O + r * a->ldo;
#pragma omp simd
        for (int64_t c = 0; c < a->dv; c++) o[c] *= inv;
        lse[r] = m[r] + logf(l[r]);
    }
}

void df_att_forward(const att_dims *a, att_offsets_fn at, const float *Q, const float *K, const float *V, float *Y,
                    float *LSE)
{
    const int64_t q_blocks = (a->Tq + ATT_BQ - 1) / ATT_BQ, units = a->nb * q_blocks;
    const att_tiles tiles = att_tiles_for(a, df_get_precision());   /* the calling thread's */
#pragma omp parallel if (units > 1)
    {
        float S[ATT_BQ * ATT_BK], Kt[ATT_BK * ATT_BK];
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < units; u++) {
            const int64_t p = u / q_blocks, i0 = u % q_blocks * ATT_BQ;
            const int64_t nq = a->Tq - i0 < ATT_BQ ? a->Tq - i0 : ATT_BQ;
            const att_offsets o = at(a, p);
            query_block(a, tiles, Q + o.q + i0 * a->ldq, K + o.k, V + o.v, i0, nq, Y + o.y + i0 * a->ldo,
                        LSE + p * a->Tq + i0, S, Kt);
        }
    }
}

// q (nb,Tq,d), k (nb,Tk,d), v (nb,Tk,dv) -> y (nb,Tq,dv); aux: logsumexp (nb,Tq)
static df_status attention_forward(df_node *n)
{
    const att_dims a = att_dims_of(n);
    df_att_forward(&a, att_dense_offsets, DF_F32P(n->in[0]), DF_F32P(n->in[1]), DF_F32P(n->in[2]), DF_F32P(n), n->aux);
    return DF_OK;
}

/* One attention_grad node computes dq (its output) and dk, dv (read out of
 * its workspace by attention_grad_kv). */
static df_status attention_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *grad = df_attention_grad_make(g, n, dy);
    if (need[0]) dx[0] = grad;
    if (need[1]) dx[1] = df_attention_grad_kv(g, grad, 0);
    if (need[2]) dx[2] = df_attention_grad_kv(g, grad, 1);
    return g->status;
}

static df_node *att_plain(df_graph *g, df_node **in) { return df_attention(g, in[0], in[1], in[2], false, 0.7f); }
static df_node *att_causal(df_graph *g, df_node **in) { return df_attention(g, in[0], in[1], in[2], true, 0.7f); }
static df_node *att_causal_wide(df_graph *g, df_node **in) { return df_attention(g, in[0], in[1], in[2], true, 1.5f); }

static const df_gradcheck_case attention_cases[] = {
    {"(2,3,2) self-attention", 3, {DF_GC_F32(2, 3, 2), DF_GC_F32(2, 3, 2), DF_GC_F32(2, 3, 2)}, att_plain, 0, 0},
    {"(1,2,3,2) causal (B,h,T,d)", 3, {DF_GC_F32(1, 2, 3, 2), DF_GC_F32(1, 2, 3, 2), DF_GC_F32(1, 2, 3, 2)}, att_causal, 0, 0},
    {"(2,1,4,3) causal, scale 1.5", 3, {DF_GC_F32(2, 1, 4, 3), DF_GC_F32(2, 1, 4, 3), DF_GC_F32(2, 1, 4, 3)}, att_causal_wide, 0, 0},
    {"(2,2,3) queries over (2,4,3) keys, dv 2", 3, {DF_GC_F32(2, 2, 3), DF_GC_F32(2, 4, 3), DF_GC_F32(2, 4, 2)}, att_plain, 0, 0},
    {"(1,2,3) causal over (1,4,3) cached keys", 3, {DF_GC_F32(1, 2, 3), DF_GC_F32(1, 4, 3), DF_GC_F32(1, 4, 3)}, att_causal, 0, 0},
    {"(3,2) T=3 d=2 rank 2, causal", 3, {DF_GC_F32(3, 2), DF_GC_F32(3, 2), DF_GC_F32(3, 2)}, att_causal, 0, 0},
    {0},
};

/* Query-key pairs a leading index computes: all Tq*Tk, or with causal the
 * keys j <= i + (Tk - Tq) of each query i (T(T+1)/2 when Tq == Tk). */
double df_attention_pairs(const df_node *attn)
{
    const df_node *q = attn->in[0], *k = attn->in[1];
    int64_t Tq = q->shape[q->ndim - 2], Tk = k->shape[k->ndim - 2];
    if (!DF_ATTRS(attn, df_attention_attrs)->causal) return (double)Tq * Tk;
    double pairs = 0;
    for (int64_t i = 0; i < Tq; i++) pairs += (double)(i + (Tk - Tq) + 1 < Tk ? i + (Tk - Tq) + 1 : Tk);
    return pairs;
}

/* q k^T (2 d per pair) and P v (2 dv per pair) per leading index: 4*T^2*d
 * for the usual self-attention, about half of it causal. */
static void attention_cost(const df_node *n, df_op_cost *out)
{
    const df_node *q = n->in[0], *v = n->in[2];
    double lead = (double)df_shape_numel(q->ndim - 2, q->shape), d = (double)q->shape[q->ndim - 1];
    double dv = (double)v->shape[v->ndim - 1];
    *out = (df_op_cost){.flops = lead * df_attention_pairs(n) * (2 * d + 2 * dv),
                        .bytes = df_cost_io_bytes(n) + (double)n->aux_bytes};
}

/* causal=0|1, scale (0: 1/sqrt(d)). */
static df_node *attention_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    double scale = attrs[1] != 0 ? attrs[1] : 1.0 / sqrt((double)df_node_dim(in[0], -1));
    return df_attention(g, in[0], in[1], in[2], attrs[0] != 0, (float)scale);
}

static const df_bench_def attention_bench = {
    .n_inputs = 3, .attrs = {"causal", "scale"}, .defaults = {"0", "0"},
    .build = attention_bench_build,
    .shapes = {"2x4x64x32,2x4x64x32,2x4x64x32 causal=1", "16x6x256x64,16x6x256x64,16x6x256x64 causal=1",
               "16x12x512x64,16x12x512x64,16x12x512x64 causal=1"},
};

const df_op_def df_op_attention = {
    .name = "attention", .infer = attention_infer, .forward = attention_forward,
    .backward = attention_backward, .gradcheck = attention_cases, .attrs_size = sizeof(df_attention_attrs),
    .cost = attention_cost, .bench = &attention_bench,
    .min_inputs = 3, .max_inputs = 3,
};

df_node *df_attention(df_graph *g, df_node *q, df_node *k, df_node *v, bool causal, float scale)
{
    df_node *in[3] = {q, k, v};
    return df_node_new(g, &df_op_attention, 3, in, &(df_attention_attrs){.scale = scale, .causal = causal});
}
