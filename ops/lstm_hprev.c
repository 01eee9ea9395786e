/* lstm_hprev.c — the hidden state entering each step of an lstm:
 * hprev[:, 0] = h0, hprev[:, t] = h[:, t-1]. With it the recurrent weight
 * gradient is one matmul over all steps, hprev^T @ dz. Not differentiable. */
#include <string.h>
#include "common.h"

static df_status lstm_hprev_infer(df_node *n)
{
    df_status st;
    if ((st = df_require_f32(n, 0)) != DF_OK || (st = df_require_f32(n, 1)) != DF_OK) return st;
    const df_node *h = n->in[0], *h0 = n->in[1];
    char sa[64], sb[64];
    if (h->ndim != 3 || h0->ndim != 2 || h0->shape[0] != h->shape[0] || h0->shape[1] != h->shape[2])
        return df_op_error(n, DF_ERR_SHAPE, "needs h (B,T,H) and h0 (B,H), got %s and %s",
                           df_node_shape_str(h, sa, sizeof sa), df_node_shape_str(h0, sb, sizeof sb));
    n->dtype = DF_F32;
    n->ndim = 3;
    memcpy(n->shape, h->shape, sizeof n->shape);
    return DF_OK;
}

// h (B,T,H), h0 (B,H) -> hprev (B,T,H) = [h0, h_0 .. h_{T-2}] along T
static df_status lstm_hprev_forward(df_node *n)
{
    const int64_t B = n->shape[0], T = n->shape[1], H = n->shape[2];
    const float *h = DF_F32P(n->in[0]), *h0 = DF_F32P(n->in[1]);
    float *y = DF_F32P(n);
    if (T == 0 || H == 0) return DF_OK;
#pragma omp parallel for schedule(static) if (n->numel > DF_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        memcpy(y + b * T * H, h0 + b * H, (size_t)H * sizeof(float));
        memcpy(y + b * T * H + H, h + b * T * H, (size_t)((T - 1) * H) * sizeof(float));
    }
    return DF_OK;
}

const df_op_def df_op_lstm_hprev = {
    .name = "lstm_hprev", .infer = lstm_hprev_infer, .forward = lstm_hprev_forward,
};
