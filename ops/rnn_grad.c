/* rnn_grad.c — backpropagation through time for ops/rnn.c: the gradient da
 * (B,T,H) w.r.t. the pre-activations, which is also d xproj. Walks
 * t = T-1 .. 0 with one elementwise pass and one GEMM per step,
 *
 *   dh_t = dy_t + da_{t+1} @ w_rec^T        da_t = dh_t * (1 - h_t^2)
 *
 * reading h (the rnn's output). The carry dh (B,H) lives in this node's aux;
 * with want_dh0 the GEMM also runs at t = 0 and the carry ends as dh0 (read
 * out by rnn_grad_state). Not differentiable itself. */
#include <string.h>
#include "common.h"
#include "cell_math.h"
#include "lstm_kernels.h"     /* cell_sgemm */

static df_status rnn_grad_infer(df_node *n)
{
    const df_node *l = n->in[0], *dy = n->in[1], *w = n->in[2];
    char sa[64], sb[64];
    if (l->op != &df_op_rnn)
        return df_op_error(n, DF_ERR_ARG, "input 0 must be an rnn node, got op '%s'", l->op->name);
    df_status st;
    for (int i = 1; i < 3; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    if (!df_shape_equal(dy->ndim, dy->shape, l->ndim, l->shape))
        return df_op_error(n, DF_ERR_SHAPE, "dy must have the rnn output's shape %s, got %s",
                           df_node_shape_str(l, sa, sizeof sa), df_node_shape_str(dy, sb, sizeof sb));
    if (!df_shape_equal(w->ndim, w->shape, l->in[1]->ndim, l->in[1]->shape))
        return df_op_error(n, DF_ERR_SHAPE, "w_rec must have shape %s, got %s",
                           df_node_shape_str(l->in[1], sa, sizeof sa), df_node_shape_str(w, sb, sizeof sb));
    n->dtype = DF_F32;
    n->ndim = 3;
    memcpy(n->shape, l->shape, sizeof n->shape);
    n->aux_bytes = (size_t)(l->shape[0] * l->shape[2]) * sizeof(float);   /* carry dh (B,H) */
    return DF_OK;
}

// rnn h (B,T,H), dy (B,T,H), w_rec (H,H) -> da (B,T,H); aux: dh carry, dh0 at the end (B,H)
static df_status rnn_grad_forward(df_node *n)
{
    const df_node *l = n->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2];
    const float *Y = DF_F32P(l), *DY = DF_F32P(n->in[1]), *W = DF_F32P(n->in[2]);
    float *DA = DF_F32P(n), *DH = n->aux;
    if (n->numel == 0) return DF_OK;
    const bool want_dh0 = DF_ATTRS(n, df_bptt_attrs)->want_dh0;
    memset(DH, 0, (size_t)(B * H) * sizeof(float));         /* nothing flows in after step T-1 */
    cell_weight w;
    cell_weight_prepare(&w, B, true, H, H, W, H);
    for (int64_t t = T - 1; t >= 0; t--) {
#pragma omp parallel for schedule(static) if (B * H >= CELL_PAR_MIN)
        for (int64_t b = 0; b < B; b++) {
            const int64_t r = b * T + t;
            const float *h = Y + r * H, *dy = DY + r * H, *dh = DH + b * H;
            float *da = DA + r * H;
#pragma omp simd
            for (int64_t j = 0; j < H; j++) da[j] = (dy[j] + dh[j]) * (1.0f - h[j] * h[j]);
        }
        /* dh_{t-1} = da_t @ w_rec^T (at t = 0: dh0, if asked for) */
        if (t > 0 || want_dh0) cell_weight_gemm(&w, B, DA + t * H, T * H, 0.0f, DH, H);
    }
    cell_weight_release(&w);
    return DF_OK;
}

/* Per step the elementwise pass (add, square, subtract, multiply: 4 per
 * unit) and the GEMM da_t @ w_rec^T (B,H) @ (H,H), which at t = 0 runs only
 * for dh0. Reads h, dy and w_rec, writes da. */
static void rnn_grad_cost(const df_node *n, df_op_cost *out)
{
    const df_node *l = n->in[0];
    double B = (double)l->shape[0], T = (double)l->shape[1], H = (double)l->shape[2];
    double gemms = DF_ATTRS(n, df_bptt_attrs)->want_dh0 ? T : T - 1;
    *out = (df_op_cost){.flops = gemms * 2 * B * H * H + T * 4 * B * H, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_rnn_grad = {
    .name = "rnn_grad", .infer = rnn_grad_infer, .forward = rnn_grad_forward,
    .attrs_size = sizeof(df_bptt_attrs),
    .no_gradcheck = "gradient op: checked through rnn's cases",
    .min_inputs = 3, .max_inputs = 3, .bool_attrs = 0x1,
    .cost = rnn_grad_cost,
};
