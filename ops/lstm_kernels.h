/* lstm_kernels.h — work split, ISA dispatch and the packed recurrent GEMM
 * (ops/lstm_gemm.c) shared by ops/lstm.c and ops/lstm_grad.c, and the
 * thread-count-independent OpenBLAS product of the GRU and SimpleRNN. */
#ifndef DF_OPS_LSTM_KERNELS_H
#define DF_OPS_LSTM_KERNELS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <omp.h>
#include "base.h"                 /* df_sgemm_chosen_path, df_team_size */

/* Below this many multiply-adds per step (B*H*4H) a sequence runs on the
 * calling thread (OpenBLAS may still thread its GEMMs). */
#define LSTM_PAR_MACS (1 << 18)
/* Columns per panel of the packed recurrent weight (two AVX-512 vectors). */
#define LSTM_PANEL 32
/* Threads own slices of the H units in multiples of this, so each slice
 * starts at a panel boundary. */
#define LSTM_ALIGN LSTM_PANEL
/* Where the products go to OpenBLAS, one call per this many units (and the
 * threads' slices in multiples of it): OpenBLAS's sum for a column depends
 * on the call's shape and where the column falls in it, so fixed calls
 * keep the bits independent of the thread count. 128 keeps OpenBLAS's
 * speed (32-unit calls made the B=64, H=1024 forward ~1.5x slower). */
#define LSTM_BLAS_CHUNK 128

/* C (M,N) = alpha * A (M,K) @ op(Bm) + beta * C, op(Bm) = Bm^T if tb (row
 * strides lda, ldb, ldc), as OpenBLAS calls of LSTM_BLAS_CHUNK columns each
 * shared among the threads: the same bits on any thread count (a single
 * df_sgemm lets OpenBLAS split the work by the thread count, which changes
 * the sums). For the GRU's and SimpleRNN's per-step products. */
void cell_sgemm(bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *Bm,
                int64_t ldb, float beta, float *C, int64_t ldc);

/* Threads for a region sharing out LSTM_BLAS_CHUNK-column products of
 * shape (M, chunk, K): the load-adapted count (src/team.c) when they run on
 * dagflow's kernels, whose bits do not depend on it; else all threads, so
 * that the region is active and OpenBLAS runs each call on one thread. */
static inline int cell_chunk_threads(bool tb, int64_t M, int64_t K)
{
    const int all = omp_get_max_threads();
    return df_sgemm_chosen_path(false, tb, M, LSTM_BLAS_CHUNK, K) == DF_GEMM_OPENBLAS ? all : df_team_size(all);
}

/* A cell's recurrent weight op(W) (K x N) for the T per-step products
 * A (M rows) @ op(W) of one op call: packed once (df_gemm_pack_b) when the
 * products run on dagflow's kernels and M >= 2, else each product is a
 * cell_sgemm (a GEMV at M = 1, where packing buys nothing). */
typedef struct cell_weight {
    bool tb, packed, cached;
    int64_t K, N, ldw;
    const float *W;
    float *buf;
    struct df_gemm_packed_b *pb;
} cell_weight;
void cell_weight_prepare(cell_weight *cw, int64_t M, bool tb, int64_t K, int64_t N, const float *W, int64_t ldw);
/* C (M,N) = A (M,K) @ op(W) + beta * C. */
void cell_weight_gemm(const cell_weight *cw, int64_t M, const float *A, int64_t lda, float beta, float *C,
                      int64_t ldc);
void cell_weight_release(cell_weight *cw);

/* The LSTM's recurrent weight as bf16 panels for one op call, under
 * DF_PRECISION_BF16 with batch B >= 2 on a CPU with AVX512_BF16: the four
 * gate blocks w_rec[:, kH:(k+1)H] (forward, n = 4) or w_rec^T (backward,
 * n = 1), each a df_gemm_packed_b whose columns the threads share out in
 * their unit slices (multiples of LSTM_ALIGN, a multiple of the bf16
 * panel width). And two bf16 panel buffers for the products' left operand
 * (h_{t-1} (B,H) forward, dz_t (B,4H) backward), steps alternating between
 * them: each thread converts its own units of the state right after its
 * gate pass, and after the step's barrier every thread's products read the
 * whole state from there (df_sgemm_packed_ab_cols). prepare returns false
 * (nothing held) when the op should run in fp32: another precision, B < 2,
 * no AVX512_BF16, or no memory for the panels. */
typedef struct lstm_bf16_weight {
    int n;
    struct df_gemm_packed_b pb[4];
    struct df_gemm_packed_a state[2];
    float *buf;
    bool cached;
} lstm_bf16_weight;
bool lstm_bf16_prepare(lstm_bf16_weight *w, bool transposed, int64_t B, int64_t H, const float *W);
void lstm_bf16_release(lstm_bf16_weight *w);

/* The ids form of an lstm node (df_lstm_ids): input 0 is a table (V,4H),
 * input LSTM_IDS_INPUT ids (B,T) i32, and the gate pass of step t reads row
 * ids[b,t] of the table where the xproj form reads xproj[b,t] (the lstm's
 * forward fails the run on an id outside [0, V), before lstm_grad reads
 * them). lstm_ids is NULL in the xproj form. */
#define LSTM_IDS_INPUT 4
bool lstm_has_ids(const df_node *n);
const int32_t *lstm_ids(const df_node *n);

/* Units [j0, j1) of thread tid out of nth: contiguous, multiples of align,
 * as even as that allows (trailing threads may get none). */
static inline void lstm_unit_slice(int64_t H, int64_t align, int tid, int nth, int64_t *j0, int64_t *j1)
{
    int64_t blocks = (H + align - 1) / align;
    int64_t b0 = blocks * tid / nth, b1 = blocks * (tid + 1) / nth;
    *j0 = b0 * align < H ? b0 * align : H;
    *j1 = b1 * align < H ? b1 * align : H;
}

/* Threads worth starting for H units in slices of align: at most one per slice. */
static inline int lstm_threads(int64_t H, int64_t align, int nth)
{
    int64_t slices = (H + align - 1) / align;
    return nth > slices ? (int)slices : nth;
}

/* The lstm node's aux: training layout (its train attribute, set when a gradient
 * is built) gates (B,T,4H) | c (B,T,H) | tanh(c) (B,T,H); inference layout
 * gates (B,4H) | c (B,T,H) | tanh(c) (B,H), the current step's only. */
static inline size_t lstm_aux_floats(int64_t B, int64_t T, int64_t H, bool train)
{
    return (size_t)(train ? B * T * 6 * H : B * 4 * H + B * T * H + B * H);
}
static inline int64_t lstm_aux_c_offset(int64_t B, int64_t T, int64_t H, bool train)
{
    return train ? B * T * 4 * H : B * 4 * H;
}

/* The elementwise passes are built twice: for the baseline ISA of the build
 * and, on x86-64, for AVX-512 (16 floats a vector, FMA), picked at run time.
 * The library is compiled without -march flags, so without this the passes
 * would use SSE2 (4 floats a vector) even on AVX-512 machines. */
#define LSTM_INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LSTM_HAVE_AVX512_CLONE 1
#define LSTM_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")))
/* ops/lstm_gemm.c (AVX-512 only). Panels of 32 columns, k-major, zero padded;
 * panel q of a packing starts at P + q*K*32. */
void lstm_pack_cols(const float *W, int64_t ldw, int64_t K, int64_t c0, int64_t n, float *P);
void lstm_pack_rows_t(const float *W, int64_t ldw, int64_t K, int64_t r0, int64_t n, float *P);
void lstm_gemm_packed(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *Bp, float *C,
                      int64_t ldc);
/* dW (H,N) = hprev^T @ dz over all B*T rows (hprev row b*T+t is h0[b] at
 * t = 0, else h[b*T+t-1]); thread tid of nth computes its share of columns
 * with lstm_dw_scratch_floats(N, nth) floats of private scratch. */
size_t lstm_dw_scratch_floats(int64_t N, int nth);
void lstm_dw_packed(int64_t B, int64_t T, int64_t H, int64_t N, const float *h, const float *h0, const float *dz,
                    float *dW, int tid, int nth, float *scratch);
#else
#define LSTM_HAVE_AVX512_CLONE 0
#endif

/* Kernel paths (ops/lstm.c). Each is decided on first use from the CPU,
 * OpenBLAS's core and the environment, then kept, so the aux sizes and
 * graph structure chosen at trace time hold at run time;
 * lstm_force_paths overrides the environment for tests.
 *
 * lstm_use_avx512: the elementwise passes run their AVX-512 clones (else the
 * baseline ISA); needs a CPU with AVX-512 F/DQ/BW/VL and FMA;
 * DF_LSTM_NO_AVX512=1 forces the baseline.
 *
 * lstm_use_packed: an lstm (and its lstm_grad) with batch B runs its
 * recurrent products on the packed AVX-512 kernel (else OpenBLAS, and a
 * matrix-vector product at B = 1); needs B >= 2 and lstm_use_avx512();
 * DF_LSTM_NO_PACK=1 turns it off.
 *
 * lstm_use_packed_dw: lstm's backward computes d w_rec = hprev^T @ dz with
 * the AVX-512 kernel (lstm_hprev form 1) instead of lstm_hprev + matmul
 * (df_sgemm); needs lstm_use_packed(2). Not by what OpenBLAS detects: its
 * AVX-512 kernels were ~15% faster at this big, square product (K = B*T) on
 * a quiet machine, its AVX2 ones ~1.7x slower, its SSE3 ones (a CPU it does
 * not know) ~2.5x, and its threads do not adapt to a busy machine, so the
 * step's speed would depend on OpenBLAS knowing the CPU. Decided when the
 * gradient is built. */
int lstm_use_avx512(void);
int lstm_use_packed(int64_t B);
int lstm_use_packed_dw(void);

/* Internal, for tests (not part of dagflow.h): forces the switches above and
 * forgets the decisions made so far. no_pack and no_avx512 stand for
 * DF_LSTM_NO_PACK and DF_LSTM_NO_AVX512 (0 or 1; -1 reads the environment
 * again); packed_dw 0 or 1 forces lstm_use_packed_dw's OpenBLAS-core
 * condition (-1 restores it). A path the CPU lacks stays off whatever is
 * asked: read lstm_use_* afterwards to see what runs. Affects graphs whose
 * gradient is built, and ops that run, afterwards; call it only while no
 * graph runs. */
void lstm_force_paths(int no_pack, int no_avx512, int packed_dw);

/* Floats of one packed copy of the (H,4H) weight: 4 gate blocks (forward)
 * or 4H columns of W^T (backward), each over panels covering H. */
static inline int64_t lstm_packed_floats(int64_t H)
{
    return 4 * H * ((H + LSTM_PANEL - 1) / LSTM_PANEL * LSTM_PANEL);
}

/* Scratch of at least `floats` floats, 64-byte aligned, for the duration of
 * one op's run (not from the planned arena: nothing else needs it alive):
 * the process-wide buffer kept between calls (*cached = true) or, while
 * another op holds that one, a private allocation. NULL when out of memory
 * (callers then fall back to OpenBLAS or fail cleanly). Give it back with
 * lstm_scratch_release(p, *cached). */
float *lstm_scratch_acquire(size_t floats, bool *cached);
void lstm_scratch_release(float *p, bool cached);

#endif
