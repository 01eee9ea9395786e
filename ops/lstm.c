/* lstm.c — fused LSTM over a whole sequence, Keras gate order (i, f, c, o):
 *
 *   z_t = xproj[:, t] + h_{t-1} @ w_rec      (B,4H), columns [i | f | g | o]
 *   i, f, o = sigmoid(z);  g = tanh(z);  c_t = f*c_{t-1} + i*g;  h_t = o*tanh(c_t)
 *
 * The input projection x @ W + b of all steps is one GEMM done by the caller;
 * here each step is one recurrent GEMM (B,H) @ (H,4H) written straight into
 * the step's rows of a (B,T,4H) gates buffer (leading dimension T*4H), then
 * one OpenMP pass doing every nonlinearity and the cell update. The activated
 * gates, c and tanh(c) stay in aux for the backward (ops/lstm_grad.c), which
 * builds: dz = lstm_grad (BPTT, = d xproj), dw_rec = lstm_hprev^T @ dz as one
 * matmul over all steps, and dh0/dc0 via lstm_grad_state. */
#include <string.h>
#include "common.h"

/* The fused passes work on blocks of one batch row x LSTM_COLS units. */
#define LSTM_COLS 256
/* Each element costs a few exp's, so fork earlier than DF_PAR_MIN. */
#define LSTM_PAR_MIN 4096

static inline float lstm_f32(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t lstm_i32(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* c ? a : b through a bit mask: GCC does not if-convert float selects under
 * the default -ftrapping-math, which would keep the loops below scalar. */
static inline float lstm_select(int c, float a, float b)
{
    int32_t m = -(int32_t)c;
    return lstm_f32((m & lstm_i32(a)) | (~m & lstm_i32(b)));
}

/* exp(x), x clamped to [-87, 88]: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite
 * split of ln2), exp(r) by its degree-6 Taylor polynomial, 2^k through the
 * exponent bits; relative error < 3e-7. Only arithmetic and bit operations,
 * so `omp simd` loops vectorize it (libm's expf/tanhf are scalar calls that
 * would cost about as much as the recurrent GEMM). */
static inline float lstm_exp(float x)
{
    x = lstm_select(x < -87.0f, -87.0f, x);
    x = lstm_select(x > 88.0f, 88.0f, x);
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    return p * lstm_f32(((int32_t)k + 127) << 23);
}

/* Absolute error < 1.1e-7 against the exact sigmoid. */
static inline float lstm_sigmoid(float x) { return 1.0f / (1.0f + lstm_exp(-x)); }

/* tanh: Cephes' odd polynomial for |x| < 0.625, else 1 - 2/(exp(2|x|)+1),
 * sign restored from x; absolute error < 1e-7, relative < 1.4e-7. */
static inline float lstm_tanh(float x)
{
    int32_t sign = lstm_i32(x) & (int32_t)0x80000000;
    float a = lstm_f32(lstm_i32(x) & 0x7fffffff), z = a * a;
    float small = a + a * z * ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                                 1.33314422036e-1f) * z - 3.33332819422e-1f);
    float big = 1.0f - 2.0f / (lstm_exp(2.0f * a) + 1.0f);
    return lstm_f32(lstm_i32(lstm_select(a < 0.625f, small, big)) | sign);
}

static df_status lstm_infer(df_node *n)
{
    df_status st;
    for (int i = 0; i < 4; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    const df_node *x = n->in[0], *w = n->in[1], *h0 = n->in[2], *c0 = n->in[3];
    char sx[64], so[64];
    if (x->ndim != 3 || x->shape[2] % 4 != 0)
        return df_op_error(n, DF_ERR_SHAPE, "xproj must be (B,T,4H), got %s", df_node_shape_str(x, sx, sizeof sx));
    if (x->shape[1] < 1)
        return df_op_error(n, DF_ERR_SHAPE, "xproj %s has no time steps", df_node_shape_str(x, sx, sizeof sx));
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2] / 4;
    if (w->ndim != 2 || w->shape[0] != H || w->shape[1] != 4 * H)
        return df_op_error(n, DF_ERR_SHAPE, "w_rec must be (H,4H) = (%lld,%lld) for xproj %s, got %s",
                           (long long)H, (long long)(4 * H), df_node_shape_str(x, sx, sizeof sx),
                           df_node_shape_str(w, so, sizeof so));
    const df_node *st_in[2] = {h0, c0};
    for (int k = 0; k < 2; k++) {
        const df_node *s = st_in[k];
        if (s->ndim != 2 || s->shape[0] != B || s->shape[1] != H)
            return df_op_error(n, DF_ERR_SHAPE, "%s must be (B,H) = (%lld,%lld) for xproj %s, got %s",
                               k ? "c0" : "h0", (long long)B, (long long)H, df_node_shape_str(x, sx, sizeof sx),
                               df_node_shape_str(s, so, sizeof so));
    }
    n->dtype = DF_F32;
    n->ndim = 3;
    n->shape[0] = B;
    n->shape[1] = T;
    n->shape[2] = H;
    /* gates (B,T,4H) | c (B,T,H) | tanh(c) (B,T,H) */
    n->aux_bytes = (size_t)(B * T * 6 * H) * sizeof(float);
    return DF_OK;
}

// xproj (B,T,4H), w_rec (H,4H), h0/c0 (B,H) -> h (B,T,H);
// aux: activated gates (B,T,4H) [i f g o] | c (B,T,H) | tanh(c) (B,T,H)
static df_status lstm_forward(df_node *n)
{
    const int64_t B = n->shape[0], T = n->shape[1], H = n->shape[2], G4 = 4 * H;
    const float *X = DF_F32P(n->in[0]), *W = DF_F32P(n->in[1]);
    const float *H0 = DF_F32P(n->in[2]), *C0 = DF_F32P(n->in[3]);
    float *Y = DF_F32P(n), *G = n->aux, *C = G + B * T * G4, *TC = C + B * T * H;
    const int64_t nblk = (H + LSTM_COLS - 1) / LSTM_COLS;
    if (n->numel == 0) return DF_OK;                        /* B = 0 or H = 0 */
    for (int64_t t = 0; t < T; t++) {
        /* h_{t-1} @ w_rec into the step's gate rows; h_{t-1} is h0 or rows of the output */
        const float *hp = t ? Y + (t - 1) * H : H0;
        df_sgemm(false, false, B, G4, H, 1.0f, hp, t ? T * H : H, W, G4, 0.0f, G + t * G4, T * G4);
#pragma omp parallel for schedule(static) if (B * H >= LSTM_PAR_MIN)
        for (int64_t blk = 0; blk < B * nblk; blk++) {
            const int64_t b = blk / nblk, j0 = blk % nblk * LSTM_COLS;
            const int64_t j1 = j0 + LSTM_COLS < H ? j0 + LSTM_COLS : H, r = b * T + t;
            const float *x = X + r * G4, *cp = t ? C + (r - 1) * H : C0 + b * H;
            float *z = G + r * G4, *c = C + r * H, *tc = TC + r * H, *h = Y + r * H;
#pragma omp simd
            for (int64_t j = j0; j < j1; j++) {
                float ig = lstm_sigmoid(z[j] + x[j]);
                float fg = lstm_sigmoid(z[H + j] + x[H + j]);
                float gg = lstm_tanh(z[2 * H + j] + x[2 * H + j]);
                float og = lstm_sigmoid(z[3 * H + j] + x[3 * H + j]);
                float cn = fg * cp[j] + ig * gg, th = lstm_tanh(cn);
                z[j] = ig;
                z[H + j] = fg;
                z[2 * H + j] = gg;
                z[3 * H + j] = og;
                c[j] = cn;
                tc[j] = th;
                h[j] = og * th;
            }
        }
    }
    return DF_OK;
}

/* dz = lstm_grad (BPTT over the saved gates) is d xproj; d w_rec is one GEMM
 * over all steps, Hprev^T @ dz with Hprev = [h0, h_0 .. h_{T-2}]; dh0 and dc0
 * are read out of lstm_grad's workspace. */
static df_status lstm_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *gin[4] = {n, dy, n->in[1], n->in[3]};
    int64_t want_dh0 = need[2];
    df_node *dz = df_node_make(g, &df_op_lstm_grad, 4, gin, &want_dh0, 1, NULL, 0, NULL);
    if (need[0]) dx[0] = dz;
    if (need[1]) {
        df_node *hin[2] = {n, n->in[2]};
        df_node *hprev = df_node_make(g, &df_op_lstm_hprev, 2, hin, NULL, 0, NULL, 0, NULL);
        dx[1] = df_matmul(g, hprev, dz, true, false);
    }
    for (int k = 0; k < 2; k++)
        if (need[2 + k]) {
            int64_t which = k;
            dx[2 + k] = df_node_make(g, &df_op_lstm_grad_state, 1, &dz, &which, 1, NULL, 0, NULL);
        }
    return g->status;
}

static df_node *lstm_build(df_graph *g, df_node **in) { return df_lstm(g, in[0], in[1], in[2], in[3]); }

static const df_gradcheck_case lstm_cases[] = {
    {"B=2 T=3 H=2", 4, {DF_GC_F32(2, 3, 8), DF_GC_F32(2, 8), DF_GC_F32(2, 2), DF_GC_F32(2, 2)}, lstm_build, 0, 0},
    {"B=1 T=4 H=3", 4, {DF_GC_F32(1, 4, 12), DF_GC_F32(3, 12), DF_GC_F32(1, 3), DF_GC_F32(1, 3)}, lstm_build, 0, 0},
    {"B=3 T=1 H=1", 4, {DF_GC_F32(3, 1, 4), DF_GC_F32(1, 4), DF_GC_F32(3, 1), DF_GC_F32(3, 1)}, lstm_build, 0, 0},
    {0},
};

const df_op_def df_op_lstm = {
    .name = "lstm", .infer = lstm_infer, .forward = lstm_forward,
    .backward = lstm_backward, .gradcheck = lstm_cases,
};

df_node *df_lstm(df_graph *g, df_node *xproj, df_node *w_rec, df_node *h0, df_node *c0)
{
    df_node *in[4] = {xproj, w_rec, h0, c0};
    return df_node_make(g, &df_op_lstm, 4, in, NULL, 0, NULL, 0, NULL);
}
