/* lstm_hprev.c — the hidden state entering each step of an lstm:
 * hprev[:, 0] = h0, hprev[:, t] = h[:, t-1], with which the recurrent weight
 * gradient is one product over all steps, hprev^T @ dz. Two forms:
 *   form 0: inputs h (B,T,H), h0 (B,H) -> hprev (B,T,H); the backward of
 *              lstm then takes matmul(hprev, dz, transpose_a) (OpenBLAS).
 *   form 1: inputs h, h0 and dz (B,T,4H) -> hprev^T @ dz (H,4H) directly
 *              with the AVX-512 kernel of ops/lstm_gemm.c (hprev is never
 *              stored; used where that kernel runs, see lstm_backward);
 *              under DF_PRECISION_BF16 hprev^T is converted once into
 *              bf16 panels and the product is one bf16 GEMM.
 * Not differentiable. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "lstm_kernels.h"

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
    int form = DF_ATTRS(n, df_lstm_hprev_attrs)->form;
    if (form == 0) {
        if (n->n_in != 2) return df_op_error(n, DF_ERR_ARG, "hprev form takes 2 inputs, got %d", n->n_in);
        n->ndim = 3;
        memcpy(n->shape, h->shape, sizeof n->shape);
        return DF_OK;
    }
    if (form != 1 || n->n_in != 3 || !LSTM_HAVE_AVX512_CLONE)
        return df_op_error(n, DF_ERR_ARG, "form %d with %d inputs is not available", form, n->n_in);
    if ((st = df_require_f32(n, 2)) != DF_OK) return st;
    const df_node *dz = n->in[2];
    if (dz->ndim != 3 || dz->shape[0] != h->shape[0] || dz->shape[1] != h->shape[1] || dz->shape[2] != 4 * h->shape[2])
        return df_op_error(n, DF_ERR_SHAPE, "dz must be (B,T,4H) for h %s, got %s",
                           df_node_shape_str(h, sa, sizeof sa), df_node_shape_str(dz, sb, sizeof sb));
    n->ndim = 2;
    n->shape[0] = h->shape[2];
    n->shape[1] = 4 * h->shape[2];
    return DF_OK;
}

/* hprev (B,T,H) = [h0, h_0 .. h_{T-2}] along T into y. */
static void hprev_fill(int64_t B, int64_t T, int64_t H, const float *h, const float *h0, float *y)
{
#pragma omp parallel for schedule(static) if (B * T * H > DF_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        memcpy(y + b * T * H, h0 + b * H, (size_t)H * sizeof(float));
        memcpy(y + b * T * H + H, h + b * T * H, (size_t)((T - 1) * H) * sizeof(float));
    }
}

/* hprev^T (H, B*T) into the bf16 panels pa (all threads): sequence b's rows
 * of hprev are h0[b], then h[b, 0 .. T-2]. With T even a bf16 pair never
 * spans two sequences: b's first pair (h0[b], h[b, 0]) comes from a 2-row
 * copy in pair_rows (2H floats per sequence), the rest straight from h, so
 * hprev is never stored. An odd T puts pairs across sequences: then hprev
 * is stored in copy (B*T*H floats) and converted from there. */
static bool hprev_pack_bf16(const df_gemm_packed_a *pa, int64_t B, int64_t T, int64_t H, const float *h,
                            const float *h0, float *pair_rows, float *copy)
{
    int ok = 1;
    if (T % 2) {
        hprev_fill(B, T, H, h, h0, copy);
        enum { ROWS = 256 };                                /* even: a pair in one chunk */
        const int64_t K = B * T, blocks = (K + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (K * H > DF_PAR_MIN)
        for (int64_t q = 0; q < blocks; q++) {
            const int64_t k0 = q * ROWS, k1 = k0 + ROWS < K ? k0 + ROWS : K;
            ok = df_gemm_pack_a_rows(pa, copy + k0 * H, H, k0, k1) && ok;
        }
        return ok;
    }
#pragma omp parallel for schedule(static) reduction(&& : ok) if (B * T * H > DF_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        float *first = pair_rows + b * 2 * H;
        memcpy(first, h0 + b * H, (size_t)H * sizeof(float));
        memcpy(first + H, h + b * T * H, (size_t)H * sizeof(float));
        ok = df_gemm_pack_a_rows(pa, first, H, b * T, b * T + 2) &&
             df_gemm_pack_a_rows(pa, h + (b * T + 1) * H, H, b * T + 2, (b + 1) * T) && ok;
    }
    return ok;
}

/* Form 1 under DF_PRECISION_BF16: hprev^T packed once into bf16 panels
 * (hprev_pack_bf16), then one bf16 GEMM with dz on dagflow's threads: the
 * bits of a bf16 product over a stored hprev, each element of hprev
 * converted once instead of once per column block of every thread. */
static df_status hprev_dw_bf16(df_node *n, int64_t B, int64_t T, int64_t H, const float *h, const float *h0, float *y)
{
    const int64_t K = B * T;
    const size_t panels = (df_gemm_packed_a_floats(DF_GEMM_BF16, H, K) + 15) / 16 * 16;
    const size_t extra = (size_t)(T % 2 ? K * H : 2 * B * H);
    bool cached;
    float *buf = lstm_scratch_acquire(panels + extra, &cached);
    if (!buf) return df_error(DF_ERR_NOMEM, "out of memory for hprev's bf16 panels (%zu floats)", panels + extra);
    df_gemm_packed_a pa;
    bool ok = df_gemm_packed_a_init(DF_GEMM_BF16, &pa, H, K, buf) &&
              hprev_pack_bf16(&pa, B, T, H, h, h0, buf + panels, buf + panels);
    const bool packed = ok;
    ok = ok && df_sgemm_packed_a(&pa, false, 4 * H, DF_F32P(n->in[2]), 4 * H, 0.0f, y, 4 * H);
    lstm_scratch_release(buf, cached);
    if (ok) return DF_OK;
    return packed ? df_error(DF_ERR_NOMEM, "out of memory for the bf16 product's scratch")
                  : df_op_error(n, DF_ERR_STATE, "hprev's bf16 panels misaligned");
}

// form 0: h (B,T,H), h0 (B,H) -> hprev (B,T,H) = [h0, h_0 .. h_{T-2}] along T
// form 1: h, h0, dz (B,T,4H) -> hprev^T @ dz (H,4H)
static df_status lstm_hprev_forward(df_node *n)
{
    const df_node *hn = n->in[0];
    const int64_t B = hn->shape[0], T = hn->shape[1], H = hn->shape[2];
    const float *h = DF_F32P(hn), *h0 = DF_F32P(n->in[1]);
    float *y = DF_F32P(n);
    if (DF_ATTRS(n, df_lstm_hprev_attrs)->form == 1) {
#if LSTM_HAVE_AVX512_CLONE
        if (n->numel == 0) return DF_OK;
        if (B * T == 0) {                                   /* an empty sum */
            memset(y, 0, (size_t)n->numel * sizeof *y);
            return DF_OK;
        }
        const int64_t N = 4 * H;
        if (df_get_precision() == DF_PRECISION_BF16 && df_gemm_kernels_for(DF_GEMM_BF16))
            return hprev_dw_bf16(n, B, T, H, h, h0, y);
        int nth = B * T * H * N >= (int64_t)LSTM_PAR_MACS * 16 ? omp_get_max_threads() : 1;
        size_t per = lstm_dw_scratch_floats(N, nth);
        bool cached;
        float *scratch = lstm_scratch_acquire((size_t)nth * per, &cached);
        if (!scratch) return df_error(DF_ERR_NOMEM, "out of memory for %d x %zu floats of scratch", nth, per);
        /* nth shares of columns; a smaller team than asked for takes several each */
#pragma omp parallel num_threads(nth)
        for (int v = omp_get_thread_num(); v < nth; v += omp_get_num_threads())
            lstm_dw_packed(B, T, H, N, h, h0, DF_F32P(n->in[2]), y, v, nth, scratch + (size_t)omp_get_thread_num() * per);
        lstm_scratch_release(scratch, cached);
        return DF_OK;
#else
        return df_error(DF_ERR_UNSUPPORTED, "lstm_hprev form 1 needs the AVX-512 kernels");
#endif
    }
    if (T == 0 || H == 0) return DF_OK;
    hprev_fill(B, T, H, h, h0, y);
    return DF_OK;
}

/* Form 0 copies h shifted by a step; form 1 is the product hprev^T @ dz,
 * (H, B*T) @ (B*T, 4H). */
static void lstm_hprev_cost(const df_node *n, df_op_cost *out)
{
    const df_node *h = n->in[0];
    double BT = (double)h->shape[0] * h->shape[1], H = (double)h->shape[2];
    if (n->n_in == 2) *out = (df_op_cost){.flops = 0, .bytes = 2.0 * (double)n->numel * 4};
    else *out = (df_op_cost){.flops = 2 * BT * H * 4 * H, .bytes = df_cost_io_bytes(n)};
}

const df_op_def df_op_lstm_hprev = {
    .name = "lstm_hprev", .infer = lstm_hprev_infer, .forward = lstm_hprev_forward,
    .attrs_size = sizeof(df_lstm_hprev_attrs),
    .no_gradcheck = "gradient op: checked through lstm's, gru's and rnn's cases",
    .cost = lstm_hprev_cost,
    .min_inputs = 2, .max_inputs = 3,
};
