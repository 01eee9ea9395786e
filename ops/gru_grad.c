/* gru_grad.c — backpropagation through time for ops/gru.c: d xproj (B,T,3H),
 * the gradient w.r.t. the input pre-activations [a_z | a_r | a_h]. Walks
 * t = T-1 .. 0 reading the saved gates [z, r, hh] and u_h / r*h_{t-1}:
 *
 *   dh = dy_t + carry;  dz = dh (h_{t-1} - hh);  da_h = dh (1-z) (1-hh^2)
 *   da_z = dz z (1-z);  da_r = dr r (1-r)
 *   reset_after:  dr = da_h u_h; the recurrent pre-activations get
 *                 du = [da_z, da_r, da_h r] (kept in aux: d w_rec and d b_rec
 *                 read it) and carry = dh z + du @ w_rec^T   (one GEMM)
 *   reset_before: d(r h_{t-1}) = da_h @ w_h^T                 (GEMM 1)
 *                 dr = d(r h_{t-1}) h_{t-1};
 *                 carry = dh z + d(r h_{t-1}) r + [da_z, da_r] @ w_zr^T  (GEMM 2)
 *
 * After step 0 the carry is dh0 (read out by gru_grad_state) when want_dh0
 * asks for it (the last GEMM also runs at t = 0). Inputs (gru, dy, w_rec, h0).
 * Not differentiable itself. */
#include <string.h>
#include "common.h"
#include "cell_math.h"
#include "lstm_kernels.h"     /* cell_sgemm */

static df_status gru_grad_infer(df_node *n)
{
    const df_node *l = n->in[0], *dy = n->in[1], *w = n->in[2], *h0 = n->in[3];
    char sa[64], sb[64];
    if (l->op != &df_op_gru)
        return df_op_error(n, DF_ERR_ARG, "input 0 must be a gru node, got op '%s'", l->op->name);
    df_status st;
    for (int i = 1; i < 4; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    const df_node *want[3] = {l, l->in[1], l->in[2]}, *got[3] = {dy, w, h0};
    static const char *const what[3] = {"dy", "w_rec", "h0"};
    for (int k = 0; k < 3; k++)
        if (!df_shape_equal(got[k]->ndim, got[k]->shape, want[k]->ndim, want[k]->shape))
            return df_op_error(n, DF_ERR_SHAPE, "%s must have shape %s, got %s", what[k],
                               df_node_shape_str(want[k], sa, sizeof sa), df_node_shape_str(got[k], sb, sizeof sb));
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2];
    n->dtype = DF_F32;
    n->ndim = 3;
    memcpy(n->shape, l->in[0]->shape, sizeof n->shape);     /* xproj's (B,T,3H) */
    /* carry dh (B,H) | scratch (B,H) | reset_after: du (B,T,3H) */
    n->aux_bytes = (size_t)(2 * B * H + (DF_ATTRS(l, df_gru_attrs)->reset_after ? B * T * 3 * H : 0)) * sizeof(float);
    return DF_OK;
}

// gru (B,T,H) with aux gates/u_h, dy (B,T,H), w_rec (H,3H), h0 (B,H) -> d xproj (B,T,3H);
// aux: carry dh (B,H) (dh0 at the end) | scratch (B,H) | reset_after: du (B,T,3H)
static df_status gru_grad_forward(df_node *n)
{
    const df_node *l = n->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2], G3 = 3 * H;
    const float *G = l->aux, *E = G + B * T * G3, *Y = DF_F32P(l);
    const float *DY = DF_F32P(n->in[1]), *W = DF_F32P(n->in[2]), *H0 = DF_F32P(n->in[3]);
    float *DX = DF_F32P(n), *DH = n->aux, *S = DH + B * H, *DU = S + B * H;
    const bool reset_after = DF_ATTRS(l, df_gru_attrs)->reset_after;
    const bool want_dh0 = DF_ATTRS(n, df_bptt_attrs)->want_dh0;
    if (n->numel == 0) return DF_OK;
    memset(DH, 0, (size_t)(B * H) * sizeof(float));         /* nothing flows in after step T-1 */
    /* reset_after: w_rec^T per step; reset_before: w_h^T, then w_zr^T */
    cell_weight wa, wh;
    cell_weight_prepare(&wa, B, true, reset_after ? G3 : 2 * H, H, W, G3);
    if (!reset_after) cell_weight_prepare(&wh, B, true, H, H, W + 2 * H, G3);
    for (int64_t t = T - 1; t >= 0; t--) {
        const float *hp = t ? Y + (t - 1) * H : H0;
        const int64_t ldh = t ? T * H : H;
        if (reset_after) {
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
            for (int64_t b = 0; b < B; b++) {
                const int64_t r = b * T + t;
                const float *gt = G + r * G3, *uh = E + r * H, *dy = DY + r * H, *h_1 = hp + b * ldh;
                float *dx = DX + r * G3, *du = DU + r * G3, *dh = DH + b * H;
#pragma omp simd
                for (int64_t j = 0; j < H; j++) {
                    float zg = gt[j], rg = gt[H + j], hh = gt[2 * H + j];
                    float dhj = dy[j] + dh[j];
                    float dah = dhj * (1.0f - zg) * (1.0f - hh * hh);
                    float daz = dhj * (h_1[j] - hh) * zg * (1.0f - zg);
                    float dar = dah * uh[j] * rg * (1.0f - rg);
                    dx[j] = daz;
                    dx[H + j] = dar;
                    dx[2 * H + j] = dah;
                    du[j] = daz;
                    du[H + j] = dar;
                    du[2 * H + j] = dah * rg;
                    dh[j] = dhj * zg;
                }
            }
            /* carry += du_t @ w_rec^T (at t = 0: dh0, if asked for) */
            if (t > 0 || want_dh0)
                cell_weight_gemm(&wa, B, DU + t * G3, T * G3, 1.0f, DH, H);
            continue;
        }
        /* reset_before, pass 1: da_h, and the total dh kept in the carry */
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
        for (int64_t b = 0; b < B; b++) {
            const int64_t r = b * T + t;
            const float *gt = G + r * G3, *dy = DY + r * H;
            float *dx = DX + r * G3, *dh = DH + b * H;
#pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float zg = gt[j], hh = gt[2 * H + j], dhj = dy[j] + dh[j];
                dx[2 * H + j] = dhj * (1.0f - zg) * (1.0f - hh * hh);
                dh[j] = dhj;
            }
        }
        /* d(r h_{t-1}) = da_h @ w_h^T */
        cell_weight_gemm(&wh, B, DX + t * G3 + 2 * H, T * G3, 0.0f, S, H);
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
        for (int64_t b = 0; b < B; b++) {
            const int64_t r = b * T + t;
            const float *gt = G + r * G3, *h_1 = hp + b * ldh, *drh = S + b * H;
            float *dx = DX + r * G3, *dh = DH + b * H;
#pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float zg = gt[j], rg = gt[H + j], hh = gt[2 * H + j], dhj = dh[j];
                dx[j] = dhj * (h_1[j] - hh) * zg * (1.0f - zg);
                dx[H + j] = drh[j] * h_1[j] * rg * (1.0f - rg);
                dh[j] = dhj * zg + drh[j] * rg;
            }
        }
        /* carry += [da_z, da_r] @ w_zr^T (at t = 0: dh0, if asked for) */
        if (t > 0 || want_dh0) cell_weight_gemm(&wa, B, DX + t * G3, T * G3, 1.0f, DH, H);
    }
    cell_weight_release(&wa);
    if (!reset_after) cell_weight_release(&wh);
    return DF_OK;
}

/* Per step the GEMMs back through w_rec, 2*B*3H*H in all: reset_after one
 * du @ w_rec^T (B,3H) @ (3H,H); reset_before da_h @ w_h^T (B,H) @ (H,H) and
 * [da_z, da_r] @ w_zr^T (B,2H) @ (2H,H). The GEMM into the carry runs at t = 0
 * only for dh0 (reset_before's da_h product runs every step). The gate
 * gradients are about 16 FLOPs per unit. Bytes: the inputs, the gru's saved
 * gates, d xproj and the workspace (du). */
#define GRU_GRAD_GATE_FLOPS 16
static void gru_grad_cost(const df_node *n, df_op_cost *out)
{
    const df_node *l = n->in[0];
    double B = (double)l->shape[0], T = (double)l->shape[1], H = (double)l->shape[2];
    double steps = DF_ATTRS(n, df_bptt_attrs)->want_dh0 ? T : T - 1;
    double gemm = DF_ATTRS(l, df_gru_attrs)->reset_after ? steps * 2 * B * 3 * H * H
                                                         : T * 2 * B * H * H + steps * 2 * B * 2 * H * H;
    *out = (df_op_cost){.flops = gemm + T * GRU_GRAD_GATE_FLOPS * B * H,
                        .bytes = df_cost_io_bytes(n) + (double)l->aux_bytes + (double)n->aux_bytes};
}

const df_op_def df_op_gru_grad = {
    .name = "gru_grad", .infer = gru_grad_infer, .forward = gru_grad_forward,
    .attrs_size = sizeof(df_bptt_attrs),
    .no_gradcheck = "gradient op: checked through gru's cases",
    .min_inputs = 4, .max_inputs = 4, .bool_attrs = 0x1,
    .cost = gru_grad_cost,
};
