/* lstm_kernels.h — work split, ISA dispatch and the packed recurrent GEMM
 * (ops/lstm_gemm.c) shared by ops/lstm.c and ops/lstm_grad.c. */
#ifndef DF_OPS_LSTM_KERNELS_H
#define DF_OPS_LSTM_KERNELS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Below this many multiply-adds per step (B*H*4H) a sequence runs on the
 * calling thread (OpenBLAS may still thread its GEMMs). */
#define LSTM_PAR_MACS (1 << 18)
/* Columns per panel of the packed recurrent weight (two AVX-512 vectors). */
#define LSTM_PANEL 32
/* Threads own slices of the H units in multiples of this, so each slice
 * starts at a panel boundary. */
#define LSTM_ALIGN LSTM_PANEL

/* Units [j0, j1) of thread tid out of nth: contiguous, multiples of
 * LSTM_ALIGN, as even as that allows (trailing threads may get none). */
static inline void lstm_unit_slice(int64_t H, int tid, int nth, int64_t *j0, int64_t *j1)
{
    int64_t blocks = (H + LSTM_ALIGN - 1) / LSTM_ALIGN;
    int64_t b0 = blocks * tid / nth, b1 = blocks * (tid + 1) / nth;
    *j0 = b0 * LSTM_ALIGN < H ? b0 * LSTM_ALIGN : H;
    *j1 = b1 * LSTM_ALIGN < H ? b1 * LSTM_ALIGN : H;
}

/* The lstm node's aux: training layout (its ia[0] = 1, set when a gradient
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
/* 1 when the CPU runs the AVX-512 clones (checked once per translation unit;
 * DF_LSTM_NO_AVX512=1 in the environment forces the baseline, for testing). */
static inline int lstm_use_avx512(void)
{
    static int use = -1;
    if (use < 0) {
        const char *off = getenv("DF_LSTM_NO_AVX512");
        __builtin_cpu_init();
        use = !(off && off[0] == '1') && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
              __builtin_cpu_supports("fma");
    }
    return use;
}

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

/* Whether an lstm (and its lstm_grad) with batch B runs its recurrent
 * products on the packed AVX-512 kernel (else OpenBLAS, and a
 * matrix-vector product at B = 1). Fixed per process, so the aux sizes
 * chosen at trace time hold at run time. DF_LSTM_NO_PACK=1 turns it off. */
static inline int lstm_use_packed(int64_t B)
{
#if LSTM_HAVE_AVX512_CLONE
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("DF_LSTM_NO_PACK");
        off = e && e[0] == '1';
    }
    return B >= 2 && !off && lstm_use_avx512();
#else
    (void)B;
    return 0;
#endif
}

/* Whether lstm's backward computes d w_rec = hprev^T @ dz with the AVX-512
 * kernel (lstm_hprev form 1) instead of lstm_hprev + matmul (OpenBLAS):
 * only when OpenBLAS itself runs without AVX-512 kernels (e.g. its Haswell
 * kernels, chosen by OPENBLAS_CORETYPE=Haswell or for a CPU it does not
 * know). This big, square product (K = B*T) is where OpenBLAS's AVX-512
 * kernels are ~15% faster than ours and its AVX2 ones ~1.7x slower.
 * Decided when the gradient is built; DF_LSTM_NO_PACK=1 turns it off. */
int lstm_use_packed_dw(void);

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
