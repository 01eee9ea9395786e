/* lstm_grad.c — backpropagation through time for ops/lstm.c: the gradient dz
 * (B,T,4H) w.r.t. the pre-activation gates, which is also d xproj. Walks
 * t = T-1 .. 0 with one fused elementwise pass and one GEMM per step,
 *
 *   dh_t = dy_t + dz_{t+1} @ w_rec^T        dc_t = dh_t*o*(1-tanh(c_t)^2) + dc_{t+1}*f_{t+1}
 *   dz_i = dc*g*i(1-i)   dz_f = dc*c_{t-1}*f(1-f)   dz_g = dc*i*(1-g^2)   dz_o = dh*tanh(c)*o(1-o)
 *
 * reading the activated gates, c and tanh(c) that lstm saved in its aux. The
 * carries dh (B,H) and dc (B,H) live in this node's aux; after step 0 they are
 * dh0 and dc0 (read out by lstm_grad_state). want_dh0 asks for dh0 (one more
 * GEMM at t = 0). For an lstm in the ids form (df_lstm_ids) with its ids as
 * a 5th input, the gate pass also sums d table (V,4H) += dz_t row by row
 * into the aux, while dz_t is in cache: each thread owns the table's columns
 * of its units, and every element sums its terms in the order t = T-1 .. 0,
 * b = 0 .. B-1 whatever the thread count (scatter_add sums in the order
 * b, then t = 0 .. T-1: the same terms, other roundings). Not
 * differentiable itself. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"
#include "lstm_kernels.h"

/* The lstm's ids when this node sums d table, else NULL. */
static const int32_t *lstm_grad_ids(const df_node *n)
{
    return n->n_in > LSTM_IDS_INPUT ? DF_I32P(n->in[LSTM_IDS_INPUT]) : NULL;
}

static df_status lstm_grad_infer(df_node *n)
{
    const df_node *l = n->in[0], *dy = n->in[1], *w = n->in[2], *c0 = n->in[3];
    char sa[64], sb[64];
    if (l->op != &df_op_lstm)
        return df_op_error(n, DF_ERR_ARG, "input 0 must be an lstm node, got op '%s'", l->op->name);
    if (!DF_ATTRS(l, df_lstm_attrs)->train)
        return df_op_error(n, DF_ERR_STATE, "lstm node %d keeps no gates for BPTT (build its gradient with "
                           "df_gradients, which switches it to the training layout)", l->id);
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
    const bool table = n->n_in > LSTM_IDS_INPUT;
    if (table && (!lstm_has_ids(l) || n->in[LSTM_IDS_INPUT] != l->in[LSTM_IDS_INPUT]))
        return df_op_error(n, DF_ERR_ARG, "input %d must be the ids of lstm node %d (its ids form)", LSTM_IDS_INPUT, l->id);
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2];
    n->dtype = DF_F32;
    n->ndim = 3;
    n->shape[0] = B, n->shape[1] = T, n->shape[2] = 4 * H;   /* xproj's (B,T,4H) */
    /* dh, dc (B,H) | d table (V,4H) */
    n->aux_bytes = (size_t)(2 * B * H + (table ? l->in[0]->shape[0] * 4 * H : 0)) * sizeof(float);
    return DF_OK;
}

/* One step's gate gradients for batch rows [0,B) and units [j0,j1): reads
 * dy_t, the carries dh (= dz_{t+1} @ w_rec^T) and dc, writes dz_t and the new
 * dc carry; with a d table DT, adds each row of dz_t into row ids[b*T+t]. */
LSTM_INLINE void lstm_grad_body(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1,
                                const float *G, const float *C, const float *TC, const float *DY,
                                const float *C0, float *DZ, const float *DH, float *DC, float *DT,
                                const int32_t *ids)
{
    const int64_t G4 = 4 * H;
    for (int64_t b = 0; b < B; b++) {
        const int64_t r = b * T + t;
        const float *gt = G + r * G4, *tc = TC + r * H, *dy = DY + r * H;
        const float *cp = t ? C + (r - 1) * H : C0 + b * H, *dh = DH + b * H;
        float *dz = DZ + r * G4, *dc = DC + b * H;
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
        if (!DT) continue;
        float *dt = DT + (int64_t)ids[r] * G4;
        for (int64_t k = 0; k < G4; k += H)
#pragma omp simd
            for (int64_t j = k + j0; j < k + j1; j++) dt[j] += dz[j];
    }
}

static void lstm_grad_base(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1, const float *G,
                           const float *C, const float *TC, const float *DY, const float *C0, float *DZ,
                           const float *DH, float *DC, float *DT, const int32_t *ids)
{
    lstm_grad_body(B, T, H, t, j0, j1, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
}

#if LSTM_HAVE_AVX512_CLONE
LSTM_TARGET_AVX512
static void lstm_grad_avx512(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1, const float *G,
                             const float *C, const float *TC, const float *DY, const float *C0, float *DZ,
                             const float *DH, float *DC, float *DT, const int32_t *ids)
{
    lstm_grad_body(B, T, H, t, j0, j1, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
}
#endif

static void lstm_grad_block(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1, const float *G,
                            const float *C, const float *TC, const float *DY, const float *C0, float *DZ,
                            const float *DH, float *DC, float *DT, const int32_t *ids)
{
#if LSTM_HAVE_AVX512_CLONE
    if (lstm_use_avx512()) {
        lstm_grad_avx512(B, T, H, t, j0, j1, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
        return;
    }
#endif
    lstm_grad_base(B, T, H, t, j0, j1, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
}

/* dh[:, j0:j1] = dz_t (B,4H) @ w_rec[j0:j1, :]^T through dagflow's dispatch
 * (a GEMV at B = 1). One call per LSTM_BLAS_CHUNK units from j0 (a multiple
 * of it), so the bits do not depend on the thread count. */
static inline void lstm_grad_gemm(int64_t B, int64_t T, int64_t H, const float *dz, const float *W, float *DH,
                                  int64_t j0, int64_t j1)
{
    const int64_t G4 = 4 * H;
    for (int64_t a = j0; a < j1; a += LSTM_BLAS_CHUNK) {
        const int64_t n = j1 - a < LSTM_BLAS_CHUNK ? j1 - a : LSTM_BLAS_CHUNK;
        df_sgemm(false, true, B, n, G4, 1.0f, dz, T * G4, W + a * G4, G4, 0.0f, DH + a, H);
    }
}

/* dh = dz_t @ w_rec^T on the calling thread's path, in the calls the
 * threads' slices make, shared in an active parallel region (see
 * lstm_step_gemm_all in lstm.c). */
static void lstm_grad_gemm_all(int64_t B, int64_t T, int64_t H, const float *dz, const float *W, float *DH)
{
    const int64_t chunks = (H + LSTM_BLAS_CHUNK - 1) / LSTM_BLAS_CHUNK;
#pragma omp parallel for schedule(static) num_threads(cell_chunk_threads(true, B, 4 * H))
    for (int64_t q = 0; q < chunks; q++) {
        const int64_t j0 = q * LSTM_BLAS_CHUNK;
        lstm_grad_gemm(B, T, H, dz, W, DH, j0, j0 + LSTM_BLAS_CHUNK < H ? j0 + LSTM_BLAS_CHUNK : H);
    }
}

/* Units [j0, j1) of the carries dh and dc (nothing flows in after step
 * T-1) and their four gate columns of the V rows of d table DT (if any). */
static void zero_sums(int64_t B, int64_t H, int64_t V, int64_t j0, int64_t j1, float *DH, float *DC, float *DT)
{
    const size_t bytes = (size_t)(j1 > j0 ? j1 - j0 : 0) * sizeof(float);
    if (!bytes) return;
    for (int64_t b = 0; b < B; b++) {
        memset(DH + b * H + j0, 0, bytes);
        memset(DC + b * H + j0, 0, bytes);
    }
    for (int64_t v = 0; v < V && DT; v++)
        for (int64_t k = 0; k < 4; k++) memset(DT + (v * 4 + k) * H + j0, 0, bytes);
}

/* lstm_grad_forward under DF_PRECISION_BF16 (bw prepared, B >= 2): the unit
 * slices as below; each thread converts its units' four gate columns of dz_t
 * into the bf16 panels bw->state[t % 2] right after its gate pass, and
 * after the barrier every thread's product dz_t @ w_rec^T reads the whole of
 * dz_t from there (see lstm_forward_bf16 for the alternation). An odd H
 * puts a gate block's edge inside a bf16 pair (k = 4H runs across the
 * blocks): then each thread packs dz_t itself in its product. */
static df_status lstm_grad_bf16(df_node *n, lstm_bf16_weight *bw)
{
    const df_node *l = n->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2], G4 = 4 * H;
    const float *G = l->aux, *C = G + B * T * G4, *TC = C + B * T * H;
    const float *DY = DF_F32P(n->in[1]), *C0 = DF_F32P(n->in[3]);
    float *DZ = DF_F32P(n), *DH = n->aux, *DC = DH + B * H;
    const int32_t *ids = lstm_grad_ids(n);
    const int64_t V = ids ? l->in[0]->shape[0] : 0;
    float *DT = ids ? DC + B * H : NULL;                    /* d table (V,4H) */
    const bool want_dh0 = DF_ATTRS(n, df_bptt_attrs)->want_dh0, shared = H % 2 == 0;
    const int nth = lstm_threads(H, LSTM_ALIGN, B * H * G4 >= LSTM_PAR_MACS ? df_team_size(omp_get_max_threads()) : 1);
    int failed = 0;                                         /* misaligned panels, or scratch ran out */
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        int64_t j0, j1;
        lstm_unit_slice(H, LSTM_ALIGN, omp_get_thread_num(), omp_get_num_threads(), &j0, &j1);
        zero_sums(B, H, V, j0, j1, DH, DC, DT);
        bool ok = true;
        for (int64_t t = T - 1; t >= 0; t--) {
            const bool product = t > 0 || want_dh0;
            const df_gemm_packed_a *dz = &bw->state[t % 2];
            lstm_grad_block(B, T, H, t, j0, j1, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
            for (int k = 0; k < 4 && shared && product; k++)
                ok &= df_gemm_pack_a_cols(dz, DZ + t * G4, T * G4, k * H + j0, k * H + j1);
#pragma omp barrier
            if (!product) continue;
            ok &= shared ? df_sgemm_packed_ab_cols(1.0f, dz, &bw->pb[0], j0, j1, 0.0f, DH, H)
                         : df_sgemm_packed_cols(B, 1.0f, DZ + t * G4, T * G4, &bw->pb[0], j0, j1, 0.0f, DH, H);
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    lstm_bf16_release(bw);
    if (!failed) return DF_OK;
    return shared ? df_op_error(n, DF_ERR_STATE, "bf16 state panels misaligned with the unit slices")
                  : df_op_error(n, DF_ERR_NOMEM, "out of memory for the bf16 products' scratch");
}

// lstm (B,T,H) with aux gates/c/tanh(c), dy (B,T,H), w_rec (H,4H), c0 (B,H) -> dz (B,T,4H);
// aux: dh0 (B,H) | dc0 (B,H)
//
// Large sizes run in one OpenMP region where each thread owns a slice of the
// units: its part of the gate pass (dz_t for its units), a barrier (dz_t
// complete), then its columns of dh_{t-1} = dz_t @ w_rec^T (packed AVX-512
// kernel over its rows of w_rec, packed once per call into scratch outside
// the planned arena, or a single-threaded
// OpenBLAS call). The next gate pass reads only the thread's own dh and dc
// columns, so one barrier per step suffices.
static df_status lstm_grad_forward(df_node *n)
{
    const df_node *l = n->in[0];
    const int64_t B = l->shape[0], T = l->shape[1], H = l->shape[2], G4 = 4 * H;
    const float *G = l->aux, *C = G + B * T * G4, *TC = C + B * T * H;
    const float *DY = DF_F32P(n->in[1]), *W = DF_F32P(n->in[2]), *C0 = DF_F32P(n->in[3]);
    float *DZ = DF_F32P(n), *DH = n->aux, *DC = DH + B * H;
    const int32_t *ids = lstm_grad_ids(n);
    const int64_t V = ids ? l->in[0]->shape[0] : 0;
    float *DT = ids ? DC + B * H : NULL;                    /* d table (V,4H) */
    const bool want_dh0 = DF_ATTRS(n, df_bptt_attrs)->want_dh0;
    if (n->numel == 0) {                                    /* B = 0 or H = 0: no terms */
        if (DT) memset(DT, 0, (size_t)(V * G4) * sizeof(float));
        return DF_OK;
    }
    lstm_bf16_weight bw;
    if (lstm_bf16_prepare(&bw, true, B, H, W)) return lstm_grad_bf16(n, &bw);   /* DF_PRECISION_BF16 */
    bool cached = false;
    float *PW = lstm_use_packed(B) ? lstm_scratch_acquire((size_t)lstm_packed_floats(H), &cached) : NULL;
    const bool packed = PW != NULL;                         /* else OpenBLAS */
    const int64_t align = packed ? LSTM_ALIGN : LSTM_BLAS_CHUNK;
    const int nth = lstm_threads(H, align, B * H * G4 >= LSTM_PAR_MACS ? df_team_size(omp_get_max_threads()) : 1);
    if (nth <= 1 && !packed) {
        zero_sums(B, H, V, 0, H, DH, DC, DT);
        for (int64_t t = T - 1; t >= 0; t--) {
            lstm_grad_block(B, T, H, t, 0, H, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
            if (t > 0 || want_dh0) lstm_grad_gemm_all(B, T, H, DZ + t * G4, W, DH);
        }
        return DF_OK;
    }
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        int64_t j0, j1;
        lstm_unit_slice(H, align, omp_get_thread_num(), omp_get_num_threads(), &j0, &j1);
        zero_sums(B, H, V, j0, j1, DH, DC, DT);
#if LSTM_HAVE_AVX512_CLONE
        if (packed && j1 > j0) lstm_pack_rows_t(W, G4, G4, j0, j1 - j0, PW + j0 * G4);
#endif
        for (int64_t t = T - 1; t >= 0; t--) {
            lstm_grad_block(B, T, H, t, j0, j1, G, C, TC, DY, C0, DZ, DH, DC, DT, ids);
#pragma omp barrier
            if (t == 0 && !want_dh0) continue;
#if LSTM_HAVE_AVX512_CLONE
            if (packed) {
                if (j1 > j0) lstm_gemm_packed(B, j1 - j0, G4, DZ + t * G4, T * G4, PW + j0 * G4, DH + j0, H);
                continue;
            }
#endif
            lstm_grad_gemm(B, T, H, DZ + t * G4, W, DH, j0, j1);
        }
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    lstm_scratch_release(PW, cached);
    return DF_OK;
}

/* Per step dz_{t+1} @ w_rec^T (B,4H) @ (4H,H) and about 20 operations per
 * unit for the gate gradients; reads the lstm's saved gates. */
static void lstm_grad_cost(const df_node *n, df_op_cost *out)
{
    const df_node *l = n->in[0];
    double B = (double)l->shape[0], T = (double)l->shape[1], H = (double)l->shape[2];
    *out = (df_op_cost){.flops = T * (2 * B * 4 * H * H + 20 * B * H),
                        .bytes = df_cost_io_bytes(n) - (double)l->numel * 4 + (double)l->aux_bytes};
}

const df_op_def df_op_lstm_grad = {
    .name = "lstm_grad", .infer = lstm_grad_infer, .forward = lstm_grad_forward,
    .attrs_size = sizeof(df_bptt_attrs),
    .no_gradcheck = "gradient op: checked through lstm's cases",
    .cost = lstm_grad_cost,
    .min_inputs = 4, .max_inputs = 5, .bool_attrs = 0x1,
};
