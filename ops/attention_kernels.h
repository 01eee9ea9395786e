/* attention_kernels.h — what the fused attention forward (ops/attention.c)
 * and its backward (ops/attention_grad.c) share: the attributes, the
 * operand sizes, the block sizes and the causal mask. q (nb, Tq, d), k (nb,
 * Tk, d), v (nb, Tk, dv) and the output (nb, Tq, dv) are row-major with nb
 * the product of the leading axes; the forward's aux keeps each query row's
 * logsumexp (nb, Tq) of the scaled, masked scores. */
#ifndef DF_OPS_ATTENTION_KERNELS_H
#define DF_OPS_ATTENTION_KERNELS_H

#include <string.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct { float scale; int32_t causal; } df_attention_attrs;
typedef struct { float scale; int32_t causal, n_head; } df_attention_qkv_attrs;
DF_ATTRS_END

/* Queries x keys per block: a block of scores (64 x 64 floats, 16 KB) is all
 * of the T x T matrix a thread holds, and stays in L1/L2 with its q, k rows
 * (128-row blocks measured no faster at T = 256, d = 64). */
#define ATT_BQ 64
#define ATT_BK 64

typedef struct att_dims {
    int64_t nb, Tq, Tk, d, dv;
    int64_t offset;               /* Tk - Tq: causal query i sees keys j <= i + offset */
    int64_t ldq, ldk, ldv, ldo;   /* row strides of q, k, v and the output (and of their gradients) */
    float scale;
    bool causal;
} att_dims;

/* Sizes of an attention node (the forward op): q, k, v and y each dense. */
static inline att_dims att_dims_of(const df_node *attn)
{
    const df_node *q = attn->in[0], *k = attn->in[1], *v = attn->in[2];
    const df_attention_attrs *at = DF_ATTRS(attn, df_attention_attrs);
    int r = q->ndim;
    att_dims a = {.Tq = q->shape[r - 2], .Tk = k->shape[r - 2], .d = q->shape[r - 1], .dv = v->shape[r - 1],
                  .scale = at->scale, .causal = at->causal != 0};
    a.ldq = a.ldk = a.d;
    a.ldv = a.ldo = a.dv;
    a.nb = df_shape_numel(r - 2, q->shape);
    a.offset = a.Tk - a.Tq;
    return a;
}

/* Keys [j0, j0 + nk) that query i sees: the first att_visible of them. */
static inline int64_t att_visible(const att_dims *a, int64_t i, int64_t j0, int64_t nk)
{
    if (!a->causal) return nk;
    int64_t seen = i + a->offset + 1 - j0;
    return seen < 0 ? 0 : seen < nk ? seen : nk;
}

/* End of the keys any of the queries [i0, i0 + nq) sees. */
static inline int64_t att_key_end(const att_dims *a, int64_t i0, int64_t nq)
{
    if (!a->causal) return a->Tk;
    int64_t end = i0 + nq + a->offset;
    return end < a->Tk ? end : a->Tk;
}

/* df_sgemm, with K == 0 (d or dv of 0) giving C = beta C without asking BLAS
 * about a zero leading dimension. */
static inline void att_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                            int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (K > 0) {
        df_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (beta == 0.0f)
        for (int64_t r = 0; r < M; r++) memset(C + r * ldc, 0, (size_t)N * sizeof(float));
}

/* Which products of a causal block can be skipped: row i of C needs only
 * columns n < i + n_lim and terms k with i + k_from <= k < i + k_lim (the
 * others are masked scores, or zero probabilities whose terms add nothing).
 * The fast tiles skip what a whole tile of rows does not need, so C's
 * entries past n_lim are left unwritten; df_sgemm computes everything. */
typedef struct att_band { int64_t n_lim, k_lim, k_from; } att_band;
#define ATT_UNBOUNDED (INT64_MAX / 4)

/* Queries [i0, ...) over keys [j0, ...) of a block: local query r sees local
 * keys below r + att_band_reach (a huge number when not causal). */
static inline int64_t att_band_reach(const att_dims *a, int64_t i0, int64_t j0)
{
    return a->causal ? i0 + a->offset + 1 - j0 : ATT_UNBOUNDED;
}
/* Rows are queries, columns keys (q k^T, dO v^T). */
static inline att_band att_band_scores(int64_t reach) { return (att_band){reach, ATT_UNBOUNDED, -ATT_UNBOUNDED}; }
/* Rows are queries, terms keys (P v, dS k). */
static inline att_band att_band_by_key(int64_t reach) { return (att_band){ATT_UNBOUNDED, reach, -ATT_UNBOUNDED}; }
/* Rows are keys, terms queries (P^T dO, dS^T q): key j is seen from query j - reach + 1 on. */
static inline att_band att_band_by_query(int64_t reach) { return (att_band){ATT_UNBOUNDED, ATT_UNBOUNDED, 1 - reach}; }

/* ops/attention_fast.c: AVX-512 tiles for the blocks' products. Usable
 * when the CPU has AVX-512F, d <= ATT_BK and dv <= ATT_BK (a block of k^T
 * or v^T fits ATT_BK x ATT_BK) and DF_ATTENTION_NO_AVX512 is unset or 0. */
bool att_fast_usable(const att_dims *a);
/* C (M x N, row stride ldc) = alpha A B, plus C if accumulate; A (i, k) at
 * A[i*ars + k*acs], B (k, n) at B[k*ldb + n]; within band. */
void att_fast_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                   const float *B, int64_t ldb, bool accumulate, float *C, int64_t ldc, att_band band);
/* Xt (cols x rows, row stride ATT_BK) = X (rows x cols, stride ldx)^T. */
void att_fast_transpose(int64_t rows, int64_t cols, const float *X, int64_t ldx, float *Xt);

/* The same product on AVX512_BF16 tiles (the GEMM's, src/gemm_kernels.c):
 * A and B rounded to bf16 (nearest even) as they are packed, the sums in
 * fp32; B (k, n) at B[k*bks + n*bns], one of the strides 1. M, N, K <=
 * ATT_BK. */
void att_bf16_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t ars, int64_t acs,
                   const float *B, int64_t bks, int64_t bns, bool accumulate, float *C, int64_t ldc, att_band band);

/* How a block's products run: df_sgemm, the fp32 tiles, or under
 * DF_PRECISION_BF16 the bf16 tiles (where the fp32 ones are usable and the
 * CPU has AVX512_BF16, as the GEMM probes it). */
typedef enum att_tiles { ATT_SGEMM, ATT_TILES_FP32, ATT_TILES_BF16 } att_tiles;
att_tiles att_tiles_for(const att_dims *a, df_precision precision);

/* C = alpha op(A) B + beta C (beta 0 or 1) on the tiles (within band) or
 * df_sgemm. */
static inline void att_product(att_tiles tiles, bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                               att_band band)
{
    if (tiles == ATT_TILES_FP32)
        att_fast_gemm(M, N, K, alpha, A, ta ? 1 : lda, ta ? lda : 1, B, ldb, beta != 0.0f, C, ldc, band);
    else if (tiles == ATT_TILES_BF16)
        att_bf16_gemm(M, N, K, alpha, A, ta ? 1 : lda, ta ? lda : 1, B, ldb, 1, beta != 0.0f, C, ldc, band);
    else
        att_gemm(ta, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* S (nq x nk, row stride ATT_BK) = alpha X Y^T for X (nq x K, stride ldx)
 * and Y (nk x K, stride ldy), rows queries and columns keys of a block whose
 * att_band_reach is reach; on the fp32 tiles Yt must hold Y^T
 * (att_fast_transpose), else Yt is unused. */
static inline void att_product_nt(att_tiles tiles, int64_t nq, int64_t nk, int64_t K, float alpha, const float *X,
                                  int64_t ldx, const float *Y, int64_t ldy, const float *Yt, float *S, int64_t reach)
{
    if (tiles == ATT_TILES_FP32)
        att_fast_gemm(nq, nk, K, alpha, X, ldx, 1, Yt, ATT_BK, false, S, ATT_BK, att_band_scores(reach));
    else if (tiles == ATT_TILES_BF16)
        att_bf16_gemm(nq, nk, K, alpha, X, ldx, 1, Y, 1, ldy, false, S, ATT_BK, att_band_scores(reach));
    else
        att_gemm(false, true, nq, nk, K, alpha, X, ldx, Y, ldy, 0.0f, S, ATT_BK);
}

/* Where leading index p's rows start in q, k, v (and in their gradients)
 * and in the output (and its gradient), in floats from each tensor's start;
 * the logsumexps and D of p start at p * Tq. */
typedef struct att_offsets { int64_t q, k, v, y; } att_offsets;
typedef att_offsets (*att_offsets_fn)(const att_dims *a, int64_t p);

/* Dense q, k, v and y (df_attention): p's rows right after p - 1's. */
static inline att_offsets att_dense_offsets(const att_dims *a, int64_t p)
{
    return (att_offsets){.q = p * a->Tq * a->d, .k = p * a->Tk * a->d, .v = p * a->Tk * a->dv, .y = p * a->Tq * a->dv};
}

/* The forward over every (leading index, query block) (ops/attention.c):
 * Y and LSE (nb, Tq) from Q, K, V, where `at` says. */
void df_att_forward(const att_dims *a, att_offsets_fn at, const float *Q, const float *K, const float *V, float *Y,
                    float *LSE);

/* One leading index's rows for the backward (ops/attention_grad.c). */
typedef struct att_grad_ptrs {
    const float *Q, *K, *V, *O, *dO, *lse;
    float *dQ, *dK, *dV, *D;      /* dQ, dK, dV with q's, k's and v's strides; D (Tq) */
} att_grad_ptrs;

/* The backward over every leading index: dQ, dK, dV (at q's, k's and v's
 * offsets) overwritten, D (nb, Tq) a workspace; t holds the tensors' starts. */
void df_att_backward(const att_dims *a, att_offsets_fn at, const att_grad_ptrs *t);

/* The backward of attention node attn for output gradient dy: dq, its
 * workspace holding dk and dv (ops/attention_grad.c); and dk (which = 0) or
 * dv (which = 1) read out of it (ops/attention_grad_kv.c). */
df_node *df_attention_grad_make(df_graph *g, df_node *attn, df_node *dy);
df_node *df_attention_grad_kv(df_graph *g, df_node *grad, int which);
/* Sizes of an attention_qkv node (ops/attention_qkv.c): nb = leading
 * indices x heads, rows strided by 3C (q, k, v) and C (the output). */
att_dims df_attention_qkv_dims(const df_node *attn);
/* Unit p = (leading index, head) of such a node: q's columns at head h of
 * qkv (k and v follow C and 2C columns later), the output's at head h. */
att_offsets df_attention_qkv_offsets(const att_dims *a, int64_t p);
/* The backward of attention_qkv node attn for dy: the gradient of qkv
 * (ops/attention_qkv_grad.c). */
df_node *df_attention_qkv_grad_make(df_graph *g, df_node *attn, df_node *dy);

/* Query-key pairs per leading index an attention node computes (causal: the visible ones). */
double df_attention_pairs(const df_node *attn);

#endif
