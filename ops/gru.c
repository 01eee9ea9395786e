/* gru.c — fused GRU over a whole sequence, Keras gate layout (z, r, h):
 * xproj (B,T,3H) = x @ kernel + input_bias of all steps (one GEMM done by the
 * caller), w_rec (H,3H) = recurrent_kernel, h0 (B,H); columns [z | r | h].
 *
 * reset_after = 1 (Keras' default, the cuDNN form), with the recurrent bias
 * b_rec (3H) = row 1 of Keras' (2,3H) bias (NULL = zeros):
 *   u = h_{t-1} @ w_rec + b_rec                        one GEMM per step
 *   z = sigmoid(x_z + u_z);  r = sigmoid(x_r + u_r);  hh = tanh(x_h + r * u_h)
 * reset_after = 0 (the original GRU; no recurrent bias):
 *   z = sigmoid(x_z + h_{t-1} @ w_z);  r = sigmoid(x_r + h_{t-1} @ w_r)
 *   hh = tanh(x_h + (r * h_{t-1}) @ w_h)              two GEMMs per step
 * then h_t = z * h_{t-1} + (1 - z) * hh.
 *
 * Each step's recurrent product goes straight into the step's rows of a
 * (B,T,3H) gates buffer (leading dimension T*3H); one OpenMP pass per step
 * does the nonlinearities and the update. The activated gates [z, r, hh] and
 * u_h (reset_after) or r * h_{t-1} (reset_before) stay in aux for the
 * backward (ops/gru_grad.c), which builds d xproj = gru_grad (BPTT), d w_rec
 * = gru_grad_w (one GEMM over all steps, two for reset_before), d b_rec =
 * gru_grad_bias and dh0 = gru_grad_state. Node layout: inputs (xproj, w_rec,
 * h0[, b_rec]). */
#include <string.h>
#include "common.h"
#include "cell_math.h"
#include "lstm_kernels.h"     /* cell_sgemm */

static df_status gru_infer(df_node *n)
{
    df_status st;
    for (int i = 0; i < n->n_in; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    const df_node *x = n->in[0], *w = n->in[1], *h0 = n->in[2];
    char sx[64], so[64];
    if (x->ndim != 3 || x->shape[2] % 3 != 0)
        return df_op_error(n, DF_ERR_SHAPE, "xproj must be (B,T,3H), got %s", df_node_shape_str(x, sx, sizeof sx));
    if (x->shape[1] < 1)
        return df_op_error(n, DF_ERR_SHAPE, "xproj %s has no time steps", df_node_shape_str(x, sx, sizeof sx));
    int64_t B = x->shape[0], H = x->shape[2] / 3;
    if (w->ndim != 2 || w->shape[0] != H || w->shape[1] != 3 * H)
        return df_op_error(n, DF_ERR_SHAPE, "w_rec must be (H,3H) = (%lld,%lld) for xproj %s, got %s",
                           (long long)H, (long long)(3 * H), df_node_shape_str(x, sx, sizeof sx),
                           df_node_shape_str(w, so, sizeof so));
    if (h0->ndim != 2 || h0->shape[0] != B || h0->shape[1] != H)
        return df_op_error(n, DF_ERR_SHAPE, "h0 must be (B,H) = (%lld,%lld) for xproj %s, got %s", (long long)B,
                           (long long)H, df_node_shape_str(x, sx, sizeof sx), df_node_shape_str(h0, so, sizeof so));
    if (n->n_in == 4) {
        const df_node *b = n->in[3];
        if (!DF_ATTRS(n, df_gru_attrs)->reset_after)
            return df_op_error(n, DF_ERR_ARG, "a recurrent bias needs reset_after (with reset_after=false the "
                                              "bias is only the input bias, part of xproj)");
        if (b->ndim != 1 || b->shape[0] != 3 * H)
            return df_op_error(n, DF_ERR_SHAPE, "b_rec must be (3H) = (%lld) for xproj %s, got %s", (long long)(3 * H),
                               df_node_shape_str(x, sx, sizeof sx), df_node_shape_str(b, so, sizeof so));
    }
    n->dtype = DF_F32;
    n->ndim = 3;
    n->shape[0] = B;
    n->shape[1] = x->shape[1];
    n->shape[2] = H;
    /* gates (B,T,3H) [z r hh] | u_h or r*h_{t-1} (B,T,H) [| zero b_rec (3H)] */
    n->aux_bytes = (size_t)(B * x->shape[1] * 4 * H + (DF_ATTRS(n, df_gru_attrs)->reset_after && n->n_in == 3 ? 3 * H : 0)) * sizeof(float);
    return DF_OK;
}

// xproj (B,T,3H), w_rec (H,3H), h0 (B,H) [, b_rec (3H)] -> h (B,T,H);
// aux: activated gates (B,T,3H) [z r hh] | u_h = (h_{t-1} @ w_h + b_h) or r * h_{t-1} (B,T,H)
//      [| zeros (3H) standing in for a missing b_rec]
static df_status gru_forward(df_node *n)
{
    const int64_t B = n->shape[0], T = n->shape[1], H = n->shape[2], G3 = 3 * H;
    const float *X = DF_F32P(n->in[0]), *W = DF_F32P(n->in[1]), *H0 = DF_F32P(n->in[2]);
    const bool reset_after = DF_ATTRS(n, df_gru_attrs)->reset_after;
    float *Y = DF_F32P(n), *G = n->aux, *E = G + B * T * G3;
    if (n->numel == 0) return DF_OK;                        /* B = 0 or H = 0 */
    const float *BR = n->n_in == 4 ? DF_F32P(n->in[3]) : E + B * T * H;
    if (reset_after && n->n_in == 3) memset(E + B * T * H, 0, (size_t)G3 * sizeof(float));
    /* reset_after: all of w_rec per step; reset_before: w_zr, then w_h */
    cell_weight wa, wh;
    cell_weight_prepare(&wa, B, false, H, reset_after ? G3 : 2 * H, W, G3);
    if (!reset_after) cell_weight_prepare(&wh, B, false, H, H, W + 2 * H, G3);
    for (int64_t t = 0; t < T; t++) {
        const float *hp = t ? Y + (t - 1) * H : H0;       /* h_{t-1}: h0 or rows of the output */
        const int64_t ldh = t ? T * H : H;
        float *Z = G + t * G3;
        if (reset_after) {
            cell_weight_gemm(&wa, B, hp, ldh, 0.0f, Z, T * G3);
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
            for (int64_t b = 0; b < B; b++) {
                const int64_t r = b * T + t;
                const float *x = X + r * G3, *h_1 = hp + b * ldh;
                float *z = G + r * G3, *uh = E + r * H, *h = Y + r * H;
#pragma omp simd
                for (int64_t j = 0; j < H; j++) {
                    float zg = cell_sigmoid(x[j] + z[j] + BR[j]);
                    float rg = cell_sigmoid(x[H + j] + z[H + j] + BR[H + j]);
                    float u = z[2 * H + j] + BR[2 * H + j];
                    float hh = cell_tanh(x[2 * H + j] + rg * u);
                    z[j] = zg;
                    z[H + j] = rg;
                    z[2 * H + j] = hh;
                    uh[j] = u;
                    h[j] = zg * h_1[j] + (1.0f - zg) * hh;
                }
            }
            continue;
        }
        /* reset_before: z and r from h_{t-1}, then the candidate from r * h_{t-1} */
        cell_weight_gemm(&wa, B, hp, ldh, 0.0f, Z, T * G3);
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
        for (int64_t b = 0; b < B; b++) {
            const int64_t r = b * T + t;
            const float *x = X + r * G3, *h_1 = hp + b * ldh;
            float *z = G + r * G3, *rh = E + r * H;
#pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float zg = cell_sigmoid(x[j] + z[j]), rg = cell_sigmoid(x[H + j] + z[H + j]);
                z[j] = zg;
                z[H + j] = rg;
                rh[j] = rg * h_1[j];
            }
        }
        cell_weight_gemm(&wh, B, E + t * H, T * H, 0.0f, Z + 2 * H, T * G3);
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
        for (int64_t b = 0; b < B; b++) {
            const int64_t r = b * T + t;
            const float *x = X + r * G3, *h_1 = hp + b * ldh;
            float *z = G + r * G3, *h = Y + r * H;
#pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float zg = z[j], hh = cell_tanh(x[2 * H + j] + z[2 * H + j]);
                z[2 * H + j] = hh;
                h[j] = zg * h_1[j] + (1.0f - zg) * hh;
            }
        }
    }
    cell_weight_release(&wa);
    if (!reset_after) cell_weight_release(&wh);
    return DF_OK;
}

static df_status gru_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *gin[4] = {n, dy, n->in[1], n->in[2]};
    df_node *dxp = df_node_new(g, &df_op_gru_grad, 4, gin, &(df_bptt_attrs){.want_dh0 = need[2]});
    if (need[0]) dx[0] = dxp;
    if (need[1]) {
        df_node *hin[2] = {n, n->in[2]};
        df_node *hprev = df_node_new(g, &df_op_lstm_hprev, 2, hin, &(df_lstm_hprev_attrs){.form = 0});
        df_node *win[3] = {dxp, n, hprev};
        dx[1] = df_node_new(g, &df_op_gru_grad_w, 3, win, NULL);
    }
    if (need[2]) dx[2] = df_node_new(g, &df_op_gru_grad_state, 1, &dxp, NULL);
    if (n->n_in == 4 && need[3]) dx[3] = df_node_new(g, &df_op_gru_grad_bias, 1, &dxp, NULL);
    return g->status;
}

static df_node *gru_build_after(df_graph *g, df_node **in) { return df_gru(g, in[0], in[1], in[3], in[2], true); }
static df_node *gru_build_after_nobias(df_graph *g, df_node **in) { return df_gru(g, in[0], in[1], NULL, in[2], true); }
static df_node *gru_build_before(df_graph *g, df_node **in) { return df_gru(g, in[0], in[1], NULL, in[2], false); }

static const df_gradcheck_case gru_cases[] = {
    {"reset_after B=2 T=3 H=2", 4, {DF_GC_F32(2, 3, 6), DF_GC_F32(2, 6), DF_GC_F32(2, 2), DF_GC_F32(6)},
     gru_build_after, 0, 0},
    {"reset_after B=1 T=4 H=3", 4, {DF_GC_F32(1, 4, 9), DF_GC_F32(3, 9), DF_GC_F32(1, 3), DF_GC_F32(9)},
     gru_build_after, 0, 0},
    {"reset_after no b_rec B=3 T=1 H=1", 3, {DF_GC_F32(3, 1, 3), DF_GC_F32(1, 3), DF_GC_F32(3, 1)},
     gru_build_after_nobias, 0, 0},
    {"reset_before B=2 T=3 H=2", 3, {DF_GC_F32(2, 3, 6), DF_GC_F32(2, 6), DF_GC_F32(2, 2)}, gru_build_before, 0, 0},
    {"reset_before B=1 T=4 H=3", 3, {DF_GC_F32(1, 4, 9), DF_GC_F32(3, 9), DF_GC_F32(1, 3)}, gru_build_before, 0, 0},
    {0},
};

/* Per step the recurrent GEMM (B,H) @ (H,3H), 2*B*H*3H (reset_before: the
 * same FLOPs, split in two products), and the gates: per unit adds of
 * xproj and the bias (6), 2 sigmoids, r * u_h, the add and the tanh (3),
 * h = z*h + (1-z)*hh (4) = GRU_GATE_FLOPS. Bytes: inputs, h and the saved
 * gates. */
#define GRU_GATE_FLOPS 15
static void gru_cost(const df_node *n, df_op_cost *out)
{
    double B = (double)n->shape[0], T = (double)n->shape[1], H = (double)n->shape[2];
    *out = (df_op_cost){.flops = T * (2 * B * H * 3 * H + GRU_GATE_FLOPS * B * H),
                        .bytes = df_cost_io_bytes(n) + (double)n->aux_bytes};
}

/* xproj (B,T,3H), w_rec (H,3H), h0 (B,H); reset_after=1 (Keras' default)
 * without a recurrent bias. */
static df_node *gru_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    return df_gru(g, in[0], in[1], NULL, in[2], attrs[0] != 0);
}

static const df_bench_def gru_bench = {
    .n_inputs = 3, .lo = -0.5f, .hi = 0.5f, .attrs = {"reset_after"}, .defaults = {"1"}, .build = gru_bench_build,
    .shapes = {"8x16x384,128x384,8x128", "64x100x3072,1024x3072,64x1024", "128x100x3072,1024x3072,128x1024"},
};

const df_op_def df_op_gru = {
    .name = "gru", .infer = gru_infer, .forward = gru_forward,
    .attrs_size = sizeof(df_gru_attrs),
    .backward = gru_backward, .gradcheck = gru_cases,
    .cost = gru_cost, .bench = &gru_bench,
};

df_node *df_gru(df_graph *g, df_node *xproj, df_node *w_rec, df_node *b_rec, df_node *h0, bool reset_after)
{
    df_node *in[4] = {xproj, w_rec, h0, b_rec};
    return df_node_new(g, &df_op_gru, b_rec ? 4 : 3, in, &(df_gru_attrs){.reset_after = reset_after});
}
