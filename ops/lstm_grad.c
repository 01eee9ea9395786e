/* lstm_grad.c — backpropagation through time for ops/lstm.c: the gradient dz
 * (B,T,4H) w.r.t. the pre-activation gates, which is also d xproj. Walks
 * t = T-1 .. 0 with one fused elementwise pass and one GEMM per step,
 *
 *   dh_t = dy_t + dz_{t+1} @ w_rec^T        dc_t = dh_t*o*(1-tanh(c_t)^2) + dc_{t+1}*f_{t+1}
 *   dz_i = dc*g*i(1-i)   dz_f = dc*c_{t-1}*f(1-f)   dz_g = dc*i*(1-g^2)   dz_o = dh*tanh(c)*o(1-o)
 *
 * reading the activated gates, c and tanh(c) that lstm saved in its aux. The
 * carries dh (B,H) and dc (B,H) live in this node's aux; after step 0 they are
 * dh0 and dc0 (read out by lstm_grad_state). ia[0] = 1 asks for dh0 (one more
 * GEMM at t = 0). Not differentiable itself. */
#include <string.h>
#include "common.h"

#define LSTM_COLS 256
#define LSTM_PAR_MIN 4096

static df_status lstm_grad_infer(df_node *n)
{
    const df_node *l = n->in[0], *dy = n->in[1], *w = n->in[2], *c0 = n->in[3];
    char sa[64], sb[64];
    if (l->op != &df_op_lstm)
        return df_op_error(n, DF_ERR_ARG, "input 0 must be an lstm node, got op '%s'", l->op->name);
    df_status st;
    for (int i = 1; i < 4; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    if (!df_shape_equal(dy->ndim, dy->shape, l->ndim, l->shape))
        return df_op_error(n, DF_ERR_SHAPE, "dy must have the lstm output's shape %s, got %s",
                           df_node_shape_str(l, sa, sizeof sa), df_node_shape_str(dy, sb, sizeof sb));
    if (!df_shape_equal(w->ndim, w->shape, l->in[1]->ndim, l->in[1]->shape))
        return df_op_error(n, DF_ERR_SHAPE, "w_rec must have shape %s, got %s",
                           df_node_shape_str(l->in[1], sa, sizeof sa), df_node_shape_str(w, sb, sizeof sb));
    if (!df_shape_equal(c0->ndim, c0->shape, l->in[3]->ndim, l->in[3]->shape))
        return df_op_error(n, DF_ERR_SHAPE, "c0 must have shape %s, got %s",
                           df_node_shape_str(l->in[3], sa, sizeof sa), df_node_shape_str(c0, sb, sizeof sb));
    n->dtype = DF_F32;
    n->ndim = 3;
    memcpy(n->shape, l->in[0]->shape, sizeof n->shape);     /* xproj's (B,T,4H) */
    n->aux_bytes = (size_t)(2 * l->shape[0] * l->shape[2]) * sizeof(float);   /* dh, dc (B,H) */
    return DF_OK;
}

// lstm (B,T,H) with aux gates/c/tanh(c), dy (B,T,H), w_rec (H,4H), c0 (B,H) -> dz (B,T,4H);
// aux: dh0 (B,H) | dc0 (B,H)
static df_status lstm_grad_forward(df_node *n)
{
    const df_node *l = n->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2], G4 = 4 * H;
    const float *G = l->aux, *C = G + B * T * G4, *TC = C + B * T * H;
    const float *DY = DF_F32P(n->in[1]), *W = DF_F32P(n->in[2]), *C0 = DF_F32P(n->in[3]);
    float *DZ = DF_F32P(n), *DH = n->aux, *DC = DH + B * H;
    const int64_t nblk = (H + LSTM_COLS - 1) / LSTM_COLS;
    if (n->numel == 0) return DF_OK;                        /* B = 0 or H = 0 */
    memset(DH, 0, (size_t)(2 * B * H) * sizeof(float));     /* nothing flows in after step T-1 */
    for (int64_t t = T - 1; t >= 0; t--) {
#pragma omp parallel for schedule(static) if (B * H >= LSTM_PAR_MIN)
        for (int64_t blk = 0; blk < B * nblk; blk++) {
            const int64_t b = blk / nblk, j0 = blk % nblk * LSTM_COLS;
            const int64_t j1 = j0 + LSTM_COLS < H ? j0 + LSTM_COLS : H, r = b * T + t;
            const float *gt = G + r * G4, *tc = TC + r * H, *dy = DY + r * H;
            const float *cp = t ? C + (r - 1) * H : C0 + b * H;
            float *dz = DZ + r * G4, *dh = DH + b * H, *dc = DC + b * H;
#pragma omp simd
            for (int64_t j = j0; j < j1; j++) {
                float ig = gt[j], fg = gt[H + j], gg = gt[2 * H + j], og = gt[3 * H + j], th = tc[j];
                float dhj = dy[j] + dh[j];
                float dcj = dhj * og * (1.0f - th * th) + dc[j];
                dz[j] = dcj * gg * ig * (1.0f - ig);
                dz[H + j] = dcj * cp[j] * fg * (1.0f - fg);
                dz[2 * H + j] = dcj * ig * (1.0f - gg * gg);
                dz[3 * H + j] = dhj * th * og * (1.0f - og);
                dc[j] = dcj * fg;
            }
        }
        /* dh_{t-1} = dz_t @ w_rec^T (at t = 0: dh0, if asked for) */
        if (t > 0 || n->ia[0])
            df_sgemm(false, true, B, H, G4, 1.0f, DZ + t * G4, T * G4, W, G4, 0.0f, DH, H);
    }
    return DF_OK;
}

const df_op_def df_op_lstm_grad = {
    .name = "lstm_grad", .infer = lstm_grad_infer, .forward = lstm_grad_forward,
};
