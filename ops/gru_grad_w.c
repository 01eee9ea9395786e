/* gru_grad_w.c — d w_rec (H,3H) of a gru, as GEMMs over all steps at once
 * (rows b*T + t), from gru_grad's output and workspace:
 *   reset_after:  hprev^T @ du                        (du kept by gru_grad)
 *   reset_before: [hprev^T @ d xproj[:, :, :2H] | (r*hprev)^T @ d xproj[:, :, 2H:]]
 * with hprev = lstm_hprev(h, h0) and r*hprev saved by the gru. Inputs
 * (gru_grad, gru, hprev). Not differentiable. */
#include <string.h>
#include "common.h"

static df_status gru_grad_w_infer(df_node *n)
{
    const df_node *gr = n->in[0], *l = n->in[1], *hp = n->in[2];
    char sa[64], sb[64];
    if (gr->op != &df_op_gru_grad || l->op != &df_op_gru || gr->in[0] != l)
        return df_op_error(n, DF_ERR_ARG, "inputs must be a gru_grad node and its gru, got ops '%s' and '%s'",
                           gr->op->name, l->op->name);
    if (hp->dtype != DF_F32 || !df_shape_equal(hp->ndim, hp->shape, l->ndim, l->shape))
        return df_op_error(n, DF_ERR_SHAPE, "hprev must be f32 of the gru output's shape %s, got %s",
                           df_node_shape_str(l, sa, sizeof sa), df_node_shape_str(hp, sb, sizeof sb));
    n->dtype = DF_F32;
    n->ndim = 2;
    memcpy(n->shape, l->in[1]->shape, sizeof n->shape);     /* w_rec's (H,3H) */
    return DF_OK;
}

// gru_grad (B,T,3H) [aux du], gru (B,T,H) [aux r*hprev], hprev (B,T,H) -> d w_rec (H,3H)
static df_status gru_grad_w_forward(df_node *n)
{
    const df_node *gr = n->in[0], *l = n->in[1];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2], G3 = 3 * H, R = B * T;
    const float *HP = DF_F32P(n->in[2]), *DX = DF_F32P(gr);
    float *DW = DF_F32P(n);
    if (n->numel == 0) return DF_OK;
    if (DF_ATTRS(l, df_gru_attrs)->reset_after) {
        const float *DU = (const float *)gr->aux + 2 * B * H;
        df_sgemm(true, false, H, G3, R, 1.0f, HP, H, DU, G3, 0.0f, DW, G3);
        return DF_OK;
    }
    const float *RHP = (const float *)l->aux + R * G3;
    df_sgemm(true, false, H, 2 * H, R, 1.0f, HP, H, DX, G3, 0.0f, DW, G3);
    df_sgemm(true, false, H, H, R, 1.0f, RHP, H, DX + 2 * H, G3, 0.0f, DW + 2 * H, G3);
    return DF_OK;
}

/* hprev^T @ du over all B*T rows, (H,R) @ (R,3H), in one product or (reset_before)
 * two of 2H and H columns: 2*R*H*3H either way. Reads hprev and du (or d xproj
 * and r*hprev), writes (H,3H). */
static void gru_grad_w_cost(const df_node *n, df_op_cost *out)
{
    const df_node *l = n->in[1];
    double R = (double)l->shape[0] * l->shape[1], H = (double)l->shape[2];
    double reads = R * H + R * 3 * H + (DF_ATTRS(l, df_gru_attrs)->reset_after ? 0 : R * H);
    *out = (df_op_cost){.flops = 2 * R * H * 3 * H, .bytes = 4 * (reads + 3 * H * H)};
}

const df_op_def df_op_gru_grad_w = {
    .name = "gru_grad_w", .infer = gru_grad_w_infer, .forward = gru_grad_w_forward,
    .no_gradcheck = "gradient op: checked through gru's cases",
    .min_inputs = 3, .max_inputs = 3,
    .cost = gru_grad_w_cost,
};
