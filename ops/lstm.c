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
 * matmul over all steps, and dh0/dc0 via lstm_grad_state.
 *
 * The ids form (df_lstm_ids, a 5th input): xproj[b, t] is row ids[b, t] of
 * a table (V,4H), read there by the gate pass, so the (B,T,4H) rows are
 * never gathered; lstm_grad then also sums d table (see lstm_backward). */
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common.h"
#include "lstm_kernels.h"
#include "cell_math.h"     /* vectorizable exp, sigmoid, tanh shared with the GRU and SimpleRNN */

bool lstm_has_ids(const df_node *n) { return n->n_in > LSTM_IDS_INPUT; }

const int32_t *lstm_ids(const df_node *n) { return lstm_has_ids(n) ? DF_I32P(n->in[LSTM_IDS_INPUT]) : NULL; }

/* DF_ERR_RANGE for an id outside [0, V), checked before any step reads one. */
static df_status lstm_check_ids(const df_node *n)
{
    if (!lstm_has_ids(n)) return DF_OK;
    const df_node *ids = n->in[LSTM_IDS_INPUT];
    return df_check_indices(DF_I32P(ids), ids->numel, n->in[0]->shape[0]);
}

/* B, T and H of the projected input: xproj (B,T,4H), or in the ids form a
 * table (V,4H) and ids (B,T). */
static df_status lstm_input_dims(df_node *n, int64_t *B, int64_t *T, int64_t *H)
{
    const df_node *x = n->in[0];
    char sx[64], si[64];
    if (!lstm_has_ids(n)) {
        if (x->ndim != 3 || x->shape[2] % 4 != 0)
            return df_op_error(n, DF_ERR_SHAPE, "xproj must be (B,T,4H), got %s", df_node_shape_str(x, sx, sizeof sx));
        if (x->shape[1] < 1)
            return df_op_error(n, DF_ERR_SHAPE, "xproj %s has no time steps", df_node_shape_str(x, sx, sizeof sx));
        *B = x->shape[0], *T = x->shape[1], *H = x->shape[2] / 4;
        return DF_OK;
    }
    const df_node *ids = n->in[LSTM_IDS_INPUT];
    if (ids->dtype != DF_I32)
        return df_op_error(n, DF_ERR_DTYPE, "ids must be i32, got %s", df_dtype_name(ids->dtype));
    if (x->ndim != 2 || x->shape[1] % 4 != 0 || ids->ndim != 2 || ids->shape[1] < 1)
        return df_op_error(n, DF_ERR_SHAPE, "the ids form takes a table (V,4H) and ids (B,T) with T >= 1, got %s and %s",
                           df_node_shape_str(x, sx, sizeof sx), df_node_shape_str(ids, si, sizeof si));
    *B = ids->shape[0], *T = ids->shape[1], *H = x->shape[1] / 4;
    return DF_OK;
}

static df_status lstm_infer(df_node *n)
{
    df_status st;
    for (int i = 0; i < 4; i++)
        if ((st = df_require_f32(n, i)) != DF_OK) return st;
    const df_node *x = n->in[0], *w = n->in[1], *h0 = n->in[2], *c0 = n->in[3];
    char sx[64], so[64];
    int64_t B = 0, T = 0, H = 0;
    if ((st = lstm_input_dims(n, &B, &T, &H)) != DF_OK) return st;
    if (w->ndim != 2 || w->shape[0] != H || w->shape[1] != 4 * H)
        return df_op_error(n, DF_ERR_SHAPE, "w_rec must be (H,4H) = (%lld,%lld) for input 0 %s, got %s",
                           (long long)H, (long long)(4 * H), df_node_shape_str(x, sx, sizeof sx),
                           df_node_shape_str(w, so, sizeof so));
    const df_node *st_in[2] = {h0, c0};
    for (int k = 0; k < 2; k++) {
        const df_node *s = st_in[k];
        if (s->ndim != 2 || s->shape[0] != B || s->shape[1] != H)
            return df_op_error(n, DF_ERR_SHAPE, "%s must be (B,H) = (%lld,%lld) for input 0 %s, got %s",
                               k ? "c0" : "h0", (long long)B, (long long)H, df_node_shape_str(x, sx, sizeof sx),
                               df_node_shape_str(s, so, sizeof so));
    }
    n->dtype = DF_F32;
    n->ndim = 3;
    n->shape[0] = B;
    n->shape[1] = T;
    n->shape[2] = H;
    /* the inference layout; lstm_backward switches to the training one */
    n->aux_bytes = lstm_aux_floats(B, T, H, DF_ATTRS(n, df_lstm_attrs)->train) * sizeof(float);
    return DF_OK;
}

/* One step's gates for batch rows [0,B) and units [j0,j1): z (the recurrent
 * part, written by the step's GEMM) + x, the nonlinearities and the cell
 * update; the activated gates replace z. x is row b*T+t of xproj X, or
 * with ids (the ids form) row ids[b*T+t] of the table X. */
LSTM_INLINE void lstm_gate_body(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1,
                                const float *X, const int32_t *ids, const float *C0, float *G, float *C, float *TC,
                                float *Y, int train)
{
    const int64_t G4 = 4 * H;
    for (int64_t b = 0; b < B; b++) {
        const int64_t r = b * T + t;
        const float *x = X + (ids ? (int64_t)ids[r] : r) * G4, *cp = t ? C + (r - 1) * H : C0 + b * H;
        /* training layout: gates and tanh(c) of every step; inference: of this step only */
        float *z = G + (train ? r : b) * G4, *c = C + r * H, *tc = TC + (train ? r : b) * H, *h = Y + r * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
            float ig = cell_sigmoid(z[j] + x[j]);
            float fg = cell_sigmoid(z[H + j] + x[H + j]);
            float gg = cell_tanh(z[2 * H + j] + x[2 * H + j]);
            float og = cell_sigmoid(z[3 * H + j] + x[3 * H + j]);
            float cn = fg * cp[j] + ig * gg, th = cell_tanh(cn);
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

static void lstm_gate_base(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1, const float *X,
                           const int32_t *ids, const float *C0, float *G, float *C, float *TC, float *Y, int train)
{
    if (train) lstm_gate_body(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, 1);
    else lstm_gate_body(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, 0);
}

#if LSTM_HAVE_AVX512_CLONE
LSTM_TARGET_AVX512
static void lstm_gate_avx512(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1, const float *X,
                             const int32_t *ids, const float *C0, float *G, float *C, float *TC, float *Y, int train)
{
    if (train) lstm_gate_body(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, 1);
    else lstm_gate_body(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, 0);
}
#endif

static void lstm_gate_block(int64_t B, int64_t T, int64_t H, int64_t t, int64_t j0, int64_t j1, const float *X,
                            const int32_t *ids, const float *C0, float *G, float *C, float *TC, float *Y, int train)
{
#if LSTM_HAVE_AVX512_CLONE
    if (lstm_use_avx512()) {
        lstm_gate_avx512(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, train);
        return;
    }
#endif
    lstm_gate_base(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, train);
}

/* z[:, c0:c1] = hp (B,H) @ w_rec[:, c0:c1] through dagflow's dispatch (a
 * GEMV at B = 1). One call per LSTM_BLAS_CHUNK columns from c0, a gate
 * block's start plus a multiple of LSTM_BLAS_CHUNK, so the calls do not
 * depend on the thread count. */
static inline void lstm_step_gemm(int64_t B, int64_t H, const float *hp, int64_t ldh, const float *W, float *z,
                                  int64_t ldz, int64_t c0, int64_t c1)
{
    for (int64_t a = c0; a < c1; a += LSTM_BLAS_CHUNK) {
        const int64_t n = c1 - a < LSTM_BLAS_CHUNK ? c1 - a : LSTM_BLAS_CHUNK;
        df_sgemm(false, false, B, n, H, 1.0f, hp, ldh, W + a, 4 * H, 0.0f, z + a, ldz);
    }
}

/* z (B,4H) = hp @ w_rec on the calling thread's path: the same calls as the
 * threads' slices below make, shared among the threads in an active
 * parallel region, so OpenBLAS runs each on one thread (outside one it
 * would split them by the thread count, which changes the sums). */
static void lstm_step_gemm_all(int64_t B, int64_t H, const float *hp, int64_t ldh, const float *W, float *z,
                               int64_t ldz)
{
    const int64_t per_block = (H + LSTM_BLAS_CHUNK - 1) / LSTM_BLAS_CHUNK;
#pragma omp parallel for schedule(static) num_threads(cell_chunk_threads(false, B, H))
    for (int64_t q = 0; q < 4 * per_block; q++) {
        const int64_t block = q / per_block * H, c0 = block + q % per_block * LSTM_BLAS_CHUNK;
        lstm_step_gemm(B, H, hp, ldh, W, z, ldz, c0, c0 + LSTM_BLAS_CHUNK < block + H ? c0 + LSTM_BLAS_CHUNK : block + H);
    }
}

/* lstm_forward under DF_PRECISION_BF16 (bw prepared, B >= 2): the threads'
 * unit slices as below; every product reads h_{t-1} from bf16 panels
 * (bw->state) that each thread fills with its own units of h_t right after
 * its gate pass, so a state is converted once, by the core that computed
 * it, instead of by every thread for each of its four gate blocks. Step t
 * reads state[t % 2] and writes state[(t + 1) % 2]: a thread still in
 * step t's products reads the buffer no one writes before the next barrier. */
static df_status lstm_forward_bf16(df_node *n, lstm_bf16_weight *bw)
{
    const int64_t B = n->shape[0], T = n->shape[1], H = n->shape[2], G4 = 4 * H;
    const float *X = DF_F32P(n->in[0]), *H0 = DF_F32P(n->in[2]), *C0 = DF_F32P(n->in[3]);
    const int32_t *ids = lstm_ids(n);
    const int train = DF_ATTRS(n, df_lstm_attrs)->train;
    float *Y = DF_F32P(n), *G = n->aux, *C = G + lstm_aux_c_offset(B, T, H, train), *TC = C + B * T * H;
    const int64_t gt = train ? G4 : 0, ldz = train ? T * G4 : G4;   /* step offset, row stride of gates */
    const int nth = lstm_threads(H, LSTM_ALIGN, B * H * G4 >= LSTM_PAR_MACS ? df_team_size(omp_get_max_threads()) : 1);
    int failed = 0;                                         /* misaligned operands: a bug, reported */
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        int64_t j0, j1;
        lstm_unit_slice(H, LSTM_ALIGN, omp_get_thread_num(), omp_get_num_threads(), &j0, &j1);
        bool ok = df_gemm_pack_a_cols(&bw->state[0], H0, H, j0, j1);
#pragma omp barrier
        for (int64_t t = 0; t < T; t++) {
            const df_gemm_packed_a *hp = &bw->state[t % 2];
            float *z = G + t * gt;
            for (int k = 0; k < 4; k++) ok &= df_sgemm_packed_ab_cols(1.0f, hp, &bw->pb[k], j0, j1, 0.0f, z + k * H, ldz);
            lstm_gate_block(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, train);
            if (t + 1 < T) ok &= df_gemm_pack_a_cols(&bw->state[(t + 1) % 2], Y + t * H, T * H, j0, j1);
#pragma omp barrier
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    lstm_bf16_release(bw);
    return failed ? df_op_error(n, DF_ERR_STATE, "bf16 state panels misaligned with the unit slices") : DF_OK;
}

/* ------------------------------------------ batch 1 on packed weights
 * At B = 1 (generation) a step is bound by reading w_rec. Read in place,
 * each thread's slice of a gate is a short run per row of w_rec; packed into
 * column panels (src/gemv_packed.c) it is one stream. The panels come from
 * the cache at w_rec's variable version, so a sampling session packs them
 * once. fp32 panels give the bits of dagflow's AVX-512 GEMV, so they are
 * used only where that is the product's path (and packing is not switched
 * off, lstm_force_paths / DF_LSTM_NO_PACK); under DF_PRECISION_BF16 the
 * panels are bf16 (half the bytes; h_{t-1} rounded to bf16 per product).
 * Applies when w_rec is a variable read: anything else has no version to
 * key the cache. */
#define LSTM_PANEL_ALIGN 16              /* df_gemv_panels' column blocks */

static bool lstm_b1_panels(const df_node *n, df_precision *p, const void *panels[4])
{
    const df_node *w = n->in[1];
    const int64_t H = n->shape[2];
    if (n->shape[0] != 1 || !(w->op->flags & DF_OP_LEAF) || w->op->attrs_kind != DF_ATTRS_VARIABLE) return false;
    if (df_get_precision() == DF_PRECISION_BF16) *p = DF_PRECISION_BF16;
    else if (lstm_use_packed(2) && df_sgemm_chosen_path(false, false, 1, LSTM_BLAS_CHUNK, H) == DF_GEMM_AVX512)
        *p = DF_PRECISION_FP32;
    else return false;
    const uint64_t version = df_variable_version(DF_ATTRS(w, df_update_attrs)->var);
    for (int k = 0; k < 4; k++)
        if (!(panels[k] = df_gemv_panels_cached(*p, DF_F32P(w) + k * H, H, H, 4 * H, version))) return false;
    return true;
}

/* One region for the sequence: each thread owns units [j0, j1) of every
 * gate, its four products and then their gates; one barrier per step. */
static df_status lstm_forward_b1_panels(df_node *n, df_precision p, const void *const panels[4])
{
    const int64_t T = n->shape[1], H = n->shape[2], G4 = 4 * H;
    const float *X = DF_F32P(n->in[0]), *H0 = DF_F32P(n->in[2]), *C0 = DF_F32P(n->in[3]);
    const int32_t *ids = lstm_ids(n);
    const int train = DF_ATTRS(n, df_lstm_attrs)->train;
    float *Y = DF_F32P(n), *G = n->aux, *C = G + lstm_aux_c_offset(1, T, H, train), *TC = C + T * H;
    const int64_t gt = train ? G4 : 0;
    const int nth = lstm_threads(H, LSTM_PANEL_ALIGN, H * G4 >= LSTM_PAR_MACS ? df_team_size(omp_get_max_threads()) : 1);
    int failed = 0;
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        int64_t j0, j1;
        lstm_unit_slice(H, LSTM_PANEL_ALIGN, omp_get_thread_num(), omp_get_num_threads(), &j0, &j1);
        for (int64_t t = 0; t < T; t++) {
            const float *hp = t ? Y + (t - 1) * H : H0;
            float *z = G + t * gt;
            for (int k = 0; k < 4 && j1 > j0; k++)
                if (df_gemv_panels(p, H, H, hp, panels[k], j0, j1, z + k * H) != DF_OK) {
#pragma omp atomic write
                    failed = 1;
                }
            lstm_gate_block(1, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, train);
#pragma omp barrier
        }
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    return failed ? df_op_error(n, DF_ERR_UNSUPPORTED, "the batch-1 products on packed weights failed") : DF_OK;
}

// xproj (B,T,4H) [or table (V,4H) with ids (B,T) as input 4], w_rec (H,4H), h0/c0 (B,H) -> h (B,T,H);
// aux, training layout (train, set by lstm_backward): activated gates
// (B,T,4H) [i f g o] | c (B,T,H) | tanh(c) (B,T,H), all kept for lstm_grad;
// inference layout (not train: no gradient taken): gates (B,4H) and tanh(c)
// (B,H) of the current step only, c (B,T,H) (for lstm_final_c) — 157 MB
// less at the seed's size for eval and sampling graphs.
//
// Large sizes run the whole sequence in one OpenMP region: each thread owns
// a slice of the H units, computes the four gate column blocks of its units
// and then their nonlinearities, so the gate pass reads what the same core
// just wrote, and the only synchronisation is one barrier per step (h_t
// complete before the next step's products read it). The products use the
// packed AVX-512 kernel (ops/lstm_gemm.c; each thread packs its own columns
// of w_rec once per call into scratch outside the planned arena, see
// lstm_scratch_acquire) or else single-threaded
// OpenBLAS calls (OpenBLAS runs single-threaded inside a parallel region);
// under DF_PRECISION_BF16 (B >= 2) on bf16 panels of w_rec packed once per
// call (lstm_bf16_prepare, lstm_forward_bf16).
static df_status lstm_forward(df_node *n)
{
    const int64_t B = n->shape[0], T = n->shape[1], H = n->shape[2], G4 = 4 * H;
    const float *X = DF_F32P(n->in[0]), *W = DF_F32P(n->in[1]);
    const int32_t *ids = lstm_ids(n);
    const float *H0 = DF_F32P(n->in[2]), *C0 = DF_F32P(n->in[3]);
    const int train = DF_ATTRS(n, df_lstm_attrs)->train;
    float *Y = DF_F32P(n), *G = n->aux, *C = G + lstm_aux_c_offset(B, T, H, train), *TC = C + B * T * H;
    const int64_t gt = train ? G4 : 0, ldz = train ? T * G4 : G4;   /* step offset, row stride of gates */
    if (n->numel == 0) return DF_OK;                        /* B = 0 or H = 0 */
    df_status st = lstm_check_ids(n);
    if (st != DF_OK) return st;
    const void *b1_panels[4];
    df_precision b1_precision;
    if (lstm_b1_panels(n, &b1_precision, b1_panels)) return lstm_forward_b1_panels(n, b1_precision, b1_panels);
    lstm_bf16_weight bw;
    if (lstm_bf16_prepare(&bw, false, B, H, W)) return lstm_forward_bf16(n, &bw);   /* DF_PRECISION_BF16 */
    bool cached = false;
    float *PW = lstm_use_packed(B) ? lstm_scratch_acquire((size_t)lstm_packed_floats(H), &cached) : NULL;
    const bool packed = PW != NULL;                         /* else OpenBLAS */
    const int64_t align = packed ? LSTM_ALIGN : LSTM_BLAS_CHUNK;
    const int nth = lstm_threads(H, align, B * H * G4 >= LSTM_PAR_MACS ? df_team_size(omp_get_max_threads()) : 1);
    if (nth <= 1 && !packed) {
        /* small or one thread: the products, then one pass over the gates */
        for (int64_t t = 0; t < T; t++) {
            const float *hp = t ? Y + (t - 1) * H : H0;
            lstm_step_gemm_all(B, H, hp, t ? T * H : H, W, G + t * gt, ldz);
            lstm_gate_block(B, T, H, t, 0, H, X, ids, C0, G, C, TC, Y, train);
        }
        return DF_OK;
    }
    /* packed gate block k: panels of columns k*H .. k*H+H-1 */
    const int64_t block = lstm_packed_floats(H) / 4;
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        int64_t j0, j1;
        lstm_unit_slice(H, align, omp_get_thread_num(), omp_get_num_threads(), &j0, &j1);
#if LSTM_HAVE_AVX512_CLONE
        if (packed && j1 > j0)
            for (int k = 0; k < 4; k++) lstm_pack_cols(W, G4, H, k * H + j0, j1 - j0, PW + k * block + j0 * H);
#endif
        for (int64_t t = 0; t < T; t++) {
            const float *hp = t ? Y + (t - 1) * H : H0;
            const int64_t ldh = t ? T * H : H;
            float *z = G + t * gt;
            for (int k = 0; k < 4; k++) {
#if LSTM_HAVE_AVX512_CLONE
                if (packed) {
                    if (j1 > j0) lstm_gemm_packed(B, j1 - j0, H, hp, ldh, PW + k * block + j0 * H, z + k * H + j0, ldz);
                    continue;
                }
#endif
                lstm_step_gemm(B, H, hp, ldh, W, z, ldz, k * H + j0, k * H + j1);
            }
            lstm_gate_block(B, T, H, t, j0, j1, X, ids, C0, G, C, TC, Y, train);
#pragma omp barrier
        }
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    lstm_scratch_release(PW, cached);
    return DF_OK;
}

/* ---------------------------------------------------------- kernel paths */

/* Forced switches (-1: from the environment / OpenBLAS's core) and the
 * decisions taken from them (-1: not taken yet). Atomic because the
 * decisions are taken lazily by whichever thread first asks. */
static atomic_int forced_no_pack = -1, forced_no_avx512 = -1, forced_packed_dw = -1;
static atomic_int use_avx512 = -1, no_pack = -1, packed_dw = -1;

static int env_is_1(const char *name)
{
    const char *e = getenv(name);
    return e && e[0] == '1';
}

static int get_relaxed(atomic_int *a) { return atomic_load_explicit(a, memory_order_relaxed); }
static void set_relaxed(atomic_int *a, int v) { atomic_store_explicit(a, v, memory_order_relaxed); }

void lstm_force_paths(int no_pack_, int no_avx512_, int packed_dw_)
{
    set_relaxed(&forced_no_pack, no_pack_ < 0 ? -1 : no_pack_ != 0);
    set_relaxed(&forced_no_avx512, no_avx512_ < 0 ? -1 : no_avx512_ != 0);
    set_relaxed(&forced_packed_dw, packed_dw_ < 0 ? -1 : packed_dw_ != 0);
    set_relaxed(&use_avx512, -1);
    set_relaxed(&no_pack, -1);
    set_relaxed(&packed_dw, -1);
}

int lstm_use_avx512(void)
{
#if LSTM_HAVE_AVX512_CLONE
    int use = get_relaxed(&use_avx512);
    if (use < 0) {
        int forced = get_relaxed(&forced_no_avx512);
        int off = forced >= 0 ? forced : env_is_1("DF_LSTM_NO_AVX512");
        __builtin_cpu_init();
        use = !off && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
              __builtin_cpu_supports("fma");
        set_relaxed(&use_avx512, use);
    }
    return use;
#else
    return 0;
#endif
}

int lstm_use_packed(int64_t B)
{
#if LSTM_HAVE_AVX512_CLONE
    int off = get_relaxed(&no_pack);
    if (off < 0) {
        int forced = get_relaxed(&forced_no_pack);
        off = forced >= 0 ? forced : env_is_1("DF_LSTM_NO_PACK");
        set_relaxed(&no_pack, off);
    }
    return B >= 2 && !off && lstm_use_avx512();
#else
    (void)B;
    return 0;
#endif
}

int lstm_use_packed_dw(void)
{
    int use = get_relaxed(&packed_dw);
    if (use < 0) {
        int forced = get_relaxed(&forced_packed_dw);
        use = lstm_use_packed(2) && forced != 0;
        set_relaxed(&packed_dw, use);
    }
    return use;
}

/* dz = lstm_grad (BPTT over the saved gates) is d xproj; d w_rec is one GEMM
 * over all steps, Hprev^T @ dz with Hprev = [h0, h_0 .. h_{T-2}] (one
 * lstm_hprev node on AVX-512, else lstm_hprev then matmul); dh0 and dc0 are
 * read out of lstm_grad's workspace. In the ids form lstm_grad also sums d
 * table there (its ids as a 5th input), while each step's dz is in cache,
 * in place of a scatter_add reading all of dz back. */
static df_status lstm_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    /* BPTT reads every step's gates: keep them (the graph is not compiled yet) */
    DF_ATTRS(n, df_lstm_attrs)->train = true;
    n->aux_bytes = lstm_aux_floats(n->shape[0], n->shape[1], n->shape[2], true) * sizeof(float);
    const bool table = lstm_has_ids(n) && need[0];
    df_node *gin[5] = {n, dy, n->in[1], n->in[3], table ? n->in[LSTM_IDS_INPUT] : NULL};
    df_node *dz = df_node_new(g, &df_op_lstm_grad, table ? 5 : 4, gin, &(df_bptt_attrs){.want_dh0 = need[2]});
    if (table) dx[0] = df_node_new(g, &df_op_lstm_grad_state, 1, &dz, &(df_lstm_state_attrs){.which = 2});
    else if (need[0]) dx[0] = dz;
    if (need[1] && lstm_use_packed_dw()) {                 /* hprev^T @ dz in one AVX-512 node */
        df_node *hin[3] = {n, n->in[2], dz};
        dx[1] = df_node_new(g, &df_op_lstm_hprev, 3, hin, &(df_lstm_hprev_attrs){.form = 1});
    } else if (need[1]) {
        df_node *hin[2] = {n, n->in[2]};
        df_node *hprev = df_node_new(g, &df_op_lstm_hprev, 2, hin, &(df_lstm_hprev_attrs){.form = 0});
        dx[1] = df_matmul(g, hprev, dz, true, false);
    }
    for (int k = 0; k < 2; k++)
        if (need[2 + k]) dx[2 + k] = df_node_new(g, &df_op_lstm_grad_state, 1, &dz, &(df_lstm_state_attrs){.which = k});
    return g->status;
}

static df_node *lstm_build(df_graph *g, df_node **in) { return df_lstm(g, in[0], in[1], in[2], in[3]); }
/* The ids form, in = table, ids, w_rec and h0 (c0 a constant 0.5) or c0
 * (h0 a constant 0.25): a case holds at most 4 inputs. */
static df_node *lstm_ids_build_h0(df_graph *g, df_node **in)
{
    return df_lstm_ids(g, in[0], in[1], in[2], in[3], df_fill_like(g, in[3], 0.5f));
}
static df_node *lstm_ids_build_c0(df_graph *g, df_node **in)
{
    return df_lstm_ids(g, in[0], in[1], in[2], df_fill_like(g, in[3], 0.25f), in[3]);
}

static const df_gradcheck_case lstm_cases[] = {
    {"B=2 T=3 H=2", 4, {DF_GC_F32(2, 3, 8), DF_GC_F32(2, 8), DF_GC_F32(2, 2), DF_GC_F32(2, 2)}, lstm_build, 0, 0},
    {"B=1 T=4 H=3", 4, {DF_GC_F32(1, 4, 12), DF_GC_F32(3, 12), DF_GC_F32(1, 3), DF_GC_F32(1, 3)}, lstm_build, 0, 0},
    {"B=3 T=1 H=1", 4, {DF_GC_F32(3, 1, 4), DF_GC_F32(1, 4), DF_GC_F32(3, 1), DF_GC_F32(3, 1)}, lstm_build, 0, 0},
    /* the ids form: ids repeat (B*T > V), so rows of d table sum several steps */
    {"ids V=3 B=2 T=4 H=2, h0", 4, {DF_GC_F32(3, 8), DF_GC_I32(3, 2, 4), DF_GC_F32(2, 8), DF_GC_F32(2, 2)},
     lstm_ids_build_h0, 0, 0},
    {"ids V=5 B=1 T=3 H=3, c0", 4, {DF_GC_F32(5, 12), DF_GC_I32(5, 1, 3), DF_GC_F32(3, 12), DF_GC_F32(1, 3)},
     lstm_ids_build_c0, 0, 0},
    {0},
};

/* Per step the recurrent GEMM (B,H) @ (H,4H), 2*B*H*4H, and the gates:
 * per unit 4 adds of xproj, 3 sigmoids, 2 tanh, c = f*c + i*g (3) and
 * h = o*tanh(c) (1) = LSTM_GATE_FLOPS. Bytes: inputs, h and the saved gates. */
#define LSTM_GATE_FLOPS 13
static void lstm_cost(const df_node *n, df_op_cost *out)
{
    double B = (double)n->shape[0], T = (double)n->shape[1], H = (double)n->shape[2];
    *out = (df_op_cost){.flops = T * (2 * B * H * 4 * H + LSTM_GATE_FLOPS * B * H),
                        .bytes = df_cost_io_bytes(n) + (double)n->aux_bytes};
}

static df_node *lstm_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    (void)attrs;
    return df_lstm(g, in[0], in[1], in[2], in[3]);
}

/* xproj (B,T,4H), w_rec (H,4H), h0, c0 (B,H); the seed's is B64 T100 H1024. */
static const df_bench_def lstm_bench = {
    .n_inputs = 4, .lo = -0.5f, .hi = 0.5f, .build = lstm_bench_build,
    .shapes = {"8x16x512,128x512,8x128,8x128", "64x100x4096,1024x4096,64x1024,64x1024",
               "128x100x4096,1024x4096,128x1024,128x1024"},
};

const df_op_def df_op_lstm = {
    .name = "lstm", .infer = lstm_infer, .forward = lstm_forward,
    .backward = lstm_backward, .gradcheck = lstm_cases, .attrs_size = sizeof(df_lstm_attrs),
    .cost = lstm_cost, .bench = &lstm_bench,
    .min_inputs = 4, .max_inputs = 5, .bool_attrs = 0x1,
};

df_node *df_lstm(df_graph *g, df_node *xproj, df_node *w_rec, df_node *h0, df_node *c0)
{
    df_node *in[4] = {xproj, w_rec, h0, c0};
    return df_node_new(g, &df_op_lstm, 4, in, NULL);
}

df_node *df_lstm_ids(df_graph *g, df_node *table, df_node *ids, df_node *w_rec, df_node *h0, df_node *c0)
{
    df_node *in[5] = {table, w_rec, h0, c0, ids};
    return df_node_new(g, &df_op_lstm, 5, in, NULL);
}
