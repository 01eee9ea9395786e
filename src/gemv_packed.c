/* gemv_packed.c — y = x @ W for one row x on weights packed once into
 * column panels, fp32 or bf16 (batch-1 generation), and the per-version
 * cache of the packed weights.
 *
 * Why: a batch-1 step is bound by reading its weights. Read in place, a
 * slice of columns of a row-major W is a short run per row, a new page every
 * row; packed, each block of columns is one sequential stream. bf16 also
 * halves the bytes. The weights are packed once (df_gemv_panels_pack) and
 * kept while the variable keeps its version (df_gemv_panels_cached).
 *
 * Layout: columns in blocks of 16. fp32: for each k the block's 16 values
 * (64 bytes); each column's sum is one FMA per k in k order from zero, the
 * arithmetic of gemm_kernels.c's gemv_rows_avx512, so the bits are the
 * AVX-512 GEMV's. bf16: for each k pair (2p, 2p+1) the 16 columns' two
 * values side by side (64 bytes), one vdpbf16ps per pair adding
 * x[2p] w[2p][j] + x[2p+1] w[2p+1][j] to the fp32 sum; x is rounded to bf16
 * on each call. Padding (an odd K, n not a multiple of 16) is zeros. Column
 * ranges start at a block, so threads splitting the columns never change a
 * sum. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "base.h"
#include "dagflow.h"

#define BLOCK 16                 /* columns per block */
#define GROUP 8                  /* blocks summed side by side (independent FMA chains) */

static bool is_bf16(df_precision p) { return p == DF_PRECISION_BF16; }
static int64_t pairs_of(int64_t K) { return (K + 1) / 2; }
static int64_t blocks_of(int64_t n) { return (n + BLOCK - 1) / BLOCK; }
/* 64-byte rows of a block: one per k (fp32) or per k pair (bf16) */
static int64_t rows_of(df_precision p, int64_t K) { return is_bf16(p) ? pairs_of(K) : K; }

size_t df_gemv_panels_bytes(df_precision p, int64_t K, int64_t n)
{
    return K <= 0 || n <= 0 ? 0 : (size_t)(blocks_of(n) * rows_of(p, K)) * 64;
}

/* Round to nearest even, as vcvtne2ps2bf16 does; NaNs stay quiet NaNs. */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* DF_OK when this CPU runs p's kernel: AVX-512 (F, BW, VL) for fp32, and
 * AVX512_BF16 for bf16 (df_precision_check names what is missing). */
static df_status check_cpu(df_precision p, const char *what)
{
    if (p != DF_PRECISION_FP32 && p != DF_PRECISION_BF16) return df_error(DF_ERR_ARG, "%s: unknown precision %d", what, (int)p);
    if (is_bf16(p)) {
        df_status st = df_precision_check(DF_PRECISION_BF16);
        return st == DF_OK ? DF_OK : df_error(st, "%s: %s", what, df_last_error());
    }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return DF_OK;
#endif
    return df_error(DF_ERR_UNSUPPORTED, "%s: the fp32 panels need a CPU with avx512f/avx512bw/avx512vl", what);
}

static void pack_fp32(int64_t K, int64_t n, const float *W, int64_t ldw, float *out)
{
    for (int64_t b = 0; b < blocks_of(n); b++)
        for (int64_t k = 0; k < K; k++, out += BLOCK)
            for (int64_t c = 0; c < BLOCK; c++) out[c] = b * BLOCK + c < n ? W[k * ldw + b * BLOCK + c] : 0.0f;
}

static void pack_bf16(int64_t K, int64_t n, const float *W, int64_t ldw, uint16_t *out)
{
    const int64_t P = pairs_of(K);
    for (int64_t b = 0; b < blocks_of(n); b++)
        for (int64_t p = 0; p < P; p++, out += 2 * BLOCK)
            for (int64_t c = 0; c < BLOCK; c++)
                for (int q = 0; q < 2; q++) {
                    const int64_t k = 2 * p + q, j = b * BLOCK + c;
                    out[2 * c + q] = k < K && j < n ? to_bf16(W[k * ldw + j]) : 0;
                }
}

df_status df_gemv_panels_pack(df_precision p, int64_t K, int64_t n, const float *W, int64_t ldw, void *panels)
{
    df_status st = check_cpu(p, "df_gemv_panels_pack");
    if (st != DF_OK) return st;
    if (K < 0 || n < 0 || (K > 0 && n > 0 && (!W || !panels || ldw < n)))
        return df_error(DF_ERR_ARG, "df_gemv_panels_pack: K %lld, n %lld, ldw %lld", (long long)K, (long long)n,
                        (long long)ldw);
    if (is_bf16(p)) pack_bf16(K, n, W, ldw, panels);
    else pack_fp32(K, n, W, ldw, panels);
    return DF_OK;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

static inline __mmask16 columns_left(int64_t left) { return left >= BLOCK ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

/* fp32 sums of blocks [b0, b1) into y (columns b0*16 .., stopping at j1). */
TARGET_AVX512 static void gemv_blocks_fp32(int64_t K, const float *x, const float *panels, int64_t b0, int64_t b1,
                                           int64_t j1, float *y)
{
    const int64_t stride = K * BLOCK;               /* floats per block */
    for (int64_t g = b0; g < b1; g += GROUP) {
        const int nb = b1 - g < GROUP ? (int)(b1 - g) : GROUP;
        __m512 acc[GROUP];
        for (int i = 0; i < GROUP; i++) acc[i] = _mm512_setzero_ps();
        const float *w = panels + g * stride;
        for (int64_t k = 0; k < K; k++) {
            const __m512 xk = _mm512_set1_ps(x[k]);
            for (int i = 0; i < nb; i++) acc[i] = _mm512_fmadd_ps(xk, _mm512_load_ps(w + i * stride + k * BLOCK), acc[i]);
        }
        for (int i = 0; i < nb; i++) _mm512_mask_storeu_ps(y + (g + i) * BLOCK, columns_left(j1 - (g + i) * BLOCK), acc[i]);
    }
}

/* bf16 sums of blocks [b0, b1), as gemv_blocks_fp32. */
TARGET_BF16 static void gemv_blocks_bf16(int64_t P, const uint32_t *xp, const uint16_t *panels, int64_t b0, int64_t b1,
                                    int64_t j1, float *y)
{
    const int64_t stride = P * 2 * BLOCK;           /* bf16 per block */
    for (int64_t g = b0; g < b1; g += GROUP) {
        const int nb = b1 - g < GROUP ? (int)(b1 - g) : GROUP;
        __m512 acc[GROUP];
        for (int i = 0; i < GROUP; i++) acc[i] = _mm512_setzero_ps();
        const uint16_t *w = panels + g * stride;
        for (int64_t p = 0; p < P; p++) {
            const __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xp[p]);
            for (int i = 0; i < nb; i++)
                acc[i] = _mm512_dpbf16_ps(acc[i], xv, (__m512bh)_mm512_loadu_si512(w + i * stride + p * 2 * BLOCK));
        }
        for (int i = 0; i < nb; i++) _mm512_mask_storeu_ps(y + (g + i) * BLOCK, columns_left(j1 - (g + i) * BLOCK), acc[i]);
    }
}
#define HAVE_KERNEL 1
#else
#define HAVE_KERNEL 0
#endif

/* x as bf16 pairs (x[2p] low, x[2p+1] high). */
static void pairs_of_x(int64_t K, const float *x, uint32_t *out)
{
    for (int64_t p = 0; p < pairs_of(K); p++)
        out[p] = to_bf16(x[2 * p]) | (uint32_t)(2 * p + 1 < K ? to_bf16(x[2 * p + 1]) : 0) << 16;
}

#define STACK_PAIRS 2048         /* K up to 4096 converts on the stack */

df_status df_gemv_panels(df_precision p, int64_t K, int64_t n, const float *x, const void *panels, int64_t j0, int64_t j1,
                         float *y)
{
    df_status st = check_cpu(p, "df_gemv_panels");
    if (st != DF_OK) return st;
    if (K < 0 || n < 0 || j0 < 0 || j1 > n || j0 % BLOCK != 0 || (j1 > j0 && (!x || !panels || !y)))
        return df_error(DF_ERR_ARG, "df_gemv_panels: K %lld, n %lld, columns [%lld, %lld) (the first a multiple of %d)",
                        (long long)K, (long long)n, (long long)j0, (long long)j1, BLOCK);
    if (j1 <= j0) return DF_OK;
#if HAVE_KERNEL
    if (!is_bf16(p)) {
        gemv_blocks_fp32(K, x, panels, j0 / BLOCK, blocks_of(j1), j1, y);
        return DF_OK;
    }
    uint32_t on_stack[STACK_PAIRS], *xp = pairs_of(K) <= STACK_PAIRS ? on_stack : df_malloc((size_t)pairs_of(K) * 4);
    if (!xp) return df_error(DF_ERR_NOMEM, "df_gemv_panels: out of memory for x");
    pairs_of_x(K, x, xp);
    gemv_blocks_bf16(pairs_of(K), xp, panels, j0 / BLOCK, blocks_of(j1), j1, y);
    if (xp != on_stack) df_free(xp);
    return DF_OK;
#else
    (void)panels;
    return df_error(DF_ERR_UNSUPPORTED, "df_gemv_panels: built without the AVX-512 kernels (GCC on x86-64)");
#endif
}

/* ------------------------------------------------------------- the cache */
/* Packed weights by (storage, shape, version). Versions come from one
 * process-wide counter (src/variable.c), so a hit is the same values even
 * when freed storage was reused. The least recently used entry goes when
 * the cache is full; CACHE_ENTRIES is far more than one run holds in use
 * at a time (an LSTM layer takes 4). */
#define CACHE_ENTRIES 32
typedef struct cache_entry {
    df_precision p;
    const float *W;
    int64_t K, n, ldw;
    uint64_t version, used;
    void *panels;
} cache_entry;

static cache_entry cache[CACHE_ENTRIES];
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static cache_entry *cache_find(df_precision p, const float *W, int64_t K, int64_t n, int64_t ldw, uint64_t version)
{
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        cache_entry *e = &cache[i];
        if (e->panels && e->p == p && e->W == W && e->K == K && e->n == n && e->ldw == ldw && e->version == version) return e;
    }
    return NULL;
}

static cache_entry *cache_victim(void)
{
    cache_entry *v = &cache[0];
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        if (!cache[i].panels) return &cache[i];
        if (cache[i].used < v->used) v = &cache[i];
    }
    return v;
}

const void *df_gemv_panels_cached(df_precision p, const float *W, int64_t K, int64_t n, int64_t ldw, uint64_t version)
{
    if (check_cpu(p, "df_gemv_panels_cached") != DF_OK) return NULL;
    pthread_mutex_lock(&cache_lock);
    cache_entry *e = cache_find(p, W, K, n, ldw, version);
    if (!e) {
        void *panels = df_aligned_alloc(df_gemv_panels_bytes(p, K, n) + 64);
        if (panels && df_gemv_panels_pack(p, K, n, W, ldw, panels) == DF_OK) {
            e = cache_victim();
            df_free(e->panels);
            *e = (cache_entry){.p = p, .W = W, .K = K, .n = n, .ldw = ldw, .version = version, .panels = panels};
        } else {
            df_free(panels);
            df_error(DF_ERR_NOMEM, "df_gemv_panels_cached: out of memory for %lld x %lld bf16 weights", (long long)K,
                     (long long)n);
        }
    }
    if (e) e->used = ++cache_clock;
    const void *panels = e ? e->panels : NULL;
    pthread_mutex_unlock(&cache_lock);
    return panels;
}
