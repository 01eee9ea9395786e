/* gemm.c — dagflow's own single-precision GEMM and GEMV: operand packing,
 * cache blocking, the thread split and the choice of kernel set (AVX-512,
 * AVX2+FMA or portable C, by the CPU's features at run time). src/blas.c
 * decides per call between this and OpenBLAS.
 *
 * Loops (BLIS order, per thread over its own rows or columns of C):
 *   jc: nc = DF_GEMM_NC columns     pc: kc = DF_GEMM_KC steps of k (pack B)
 *   ic: mc = DF_GEMM_MC rows (pack A)    ir: mr rows    jr: nr columns (tile)
 * The k blocks always start at 0, KC, 2KC, ..., and every tile sums its k
 * block in k order, so each element of C is computed by the same operations
 * on any number of threads (see gemm.h). */
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "base.h"
#include "gemm.h"

/* Below this many multiply-adds a call runs on the calling thread: waking
 * the pool costs more than it saves. */
#define GEMM_PAR_MACS (1 << 18)

/* GEMVs below this many multiply-adds run on the calling thread. */
#define GEMV_PAR_MACS (1 << 22)

/* Blocks of C at most this wide read A in place instead of packing it, and
 * so do all blocks when A's rows are at most this many floats apart: an
 * mr-row micro-panel then lies within mr KiB (8 KiB: L1, a few pages), so
 * reading it in place is as fast as reading a packed copy, and the copy
 * (a strided scatter per row) is saved: with K = 128, as in char-gpt's
 * forward products, packing A costs ~10% of the product. */
#define GEMM_DIRECT_A_COLS 128
#define GEMM_DIRECT_A_LDA 256

/* ------------------------------------------------------- per-thread scratch */
/* Packing buffers live per thread and are kept between calls: a fresh
 * allocation of ~0.6 MiB per call would fault its pages in every time. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

typedef struct gemm_scratch { size_t cap; float *buf; } gemm_scratch;

static void scratch_destroy(void *p)
{
    gemm_scratch *s = p;
    free(s->buf);
    free(s);
}

static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0; }

/* floats of 64-byte aligned scratch for this thread; NULL if out of memory. */
static float *thread_scratch(size_t floats)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok) return NULL;
    gemm_scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < floats) {
        free(s->buf);
        s->buf = aligned_alloc(DF_ALIGN, (floats * sizeof(float) + DF_ALIGN - 1) / DF_ALIGN * DF_ALIGN);
        s->cap = s->buf ? floats : 0;
    }
    return s->buf;
}

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ packing */
typedef struct gemm_args {
    bool ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
    const df_gemm_packed_b *pb;      /* op(B) packed already (df_gemm_pack_b), or NULL */
    const df_gemm_packed_a *pa;      /* A packed already (df_gemm_pack_a_cols), or NULL */
} gemm_args;

/* op(A) rows [i0, i0+mc), k [p0, p0+kc) into micro-panels of mr rows,
 * rows past mc zero. */
static void pack_a(const gemm_args *g, int mr, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *P)
{
    for (int64_t ir = 0; ir < mc; ir += mr, P += mr * kc) {
        const int64_t m = mc - ir < mr ? mc - ir : mr;
        if (g->ta && m == 8 && mr == 8) {   /* AVX-512's full panels: one 32-byte copy per k */
            for (int64_t k = 0; k < kc; k++) memcpy(P + k * 8, g->A + (p0 + k) * g->lda + i0 + ir, 8 * sizeof(float));
        } else if (g->ta) {              /* op(A)[i][k] = A[k][i]: rows of A are contiguous in i */
            for (int64_t k = 0; k < kc; k++) {
                const float *src = g->A + (p0 + k) * g->lda + i0 + ir;
                float *dst = P + k * mr;
                for (int64_t i = 0; i < m; i++) dst[i] = src[i];
                for (int64_t i = m; i < mr; i++) dst[i] = 0.0f;
            }
        } else {
            for (int64_t i = 0; i < m; i++) {
                const float *src = g->A + (i0 + ir + i) * g->lda + p0;
                for (int64_t k = 0; k < kc; k++) P[k * mr + i] = src[k];
            }
            for (int64_t i = m; i < mr; i++)
                for (int64_t k = 0; k < kc; k++) P[k * mr + i] = 0.0f;
        }
    }
}

/* op(B) k [p0, p0+kc), columns [j0, j0+nc) into micro-panels of nr columns,
 * columns past nc zero. */
static void pack_b(const gemm_args *g, int nr, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *P)
{
    for (int64_t jr = 0; jr < nc; jr += nr, P += nr * kc) {
        const int64_t n = nc - jr < nr ? nc - jr : nr;
        if (g->tb) {                     /* op(B)[k][j] = B[j][k] */
            for (int64_t j = 0; j < n; j++) {
                const float *src = g->B + (j0 + jr + j) * g->ldb + p0;
                for (int64_t k = 0; k < kc; k++) P[k * nr + j] = src[k];
            }
            for (int64_t j = n; j < nr; j++)
                for (int64_t k = 0; k < kc; k++) P[k * nr + j] = 0.0f;
        } else {
            for (int64_t k = 0; k < kc; k++) {
                const float *src = g->B + (p0 + k) * g->ldb + j0 + jr;
                float *dst = P + k * nr;
                memcpy(dst, src, (size_t)n * sizeof(float));
                for (int64_t j = n; j < nr; j++) dst[j] = 0.0f;
            }
        }
    }
}

/* Elements per row of a packed panel for kc steps of k. */
static int64_t k_slots(const df_gemm_kernels *ks, int64_t kc) { return (kc + ks->kpack - 1) / ks->kpack; }

/* Is op(A) packed row by row (pack_a_rowwise) rather than in micro-panels?
 * Where k runs along A's rows and the kernel set can: a packed call's own
 * choice of layout, which changes no sum. */
static bool a_rowwise(const df_gemm_kernels *ks, const gemm_args *g) { return ks->pack_a_rowwise && !g->ta; }

/* A transposed (k-major) in a kernel set that packs: the block is packed as
 * one panel round_up(mc, mr) rows wide (two whole rows of A per k pair,
 * where mr-row panels would cut them into pieces of mr floats), and the
 * tile for rows ir.. reads it at a = P + ir, ars = 1, aks = that width. */
static bool a_block_kmajor(const df_gemm_kernels *ks, const gemm_args *g) { return ks->pack && g->ta; }

/* op(A) and op(B) blocks in the kernel set's format. */
static void pack_a_for(const df_gemm_kernels *ks, const gemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                       float *P)
{
    if (!ks->pack) {
        pack_a(g, ks->mr, i0, mc, p0, kc, P);
        return;
    }
    if (a_block_kmajor(ks, g)) {
        ks->pack(false, g->A, g->lda, i0, mc, p0, kc, (int)round_up(mc, ks->mr), P);
        return;
    }
    const bool rowwise = a_rowwise(ks, g);
    for (int64_t ir = 0; ir < mc; ir += ks->mr, P += ks->mr * k_slots(ks, kc)) {
        if (rowwise) ks->pack_a_rowwise(g->A, g->lda, i0 + ir, min64(ks->mr, mc - ir), p0, kc, ks->mr, P);
        else ks->pack(!g->ta, g->A, g->lda, i0 + ir, min64(ks->mr, mc - ir), p0, kc, ks->mr, P);
    }
}

static void pack_b_for(const df_gemm_kernels *ks, const gemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                       float *P)
{
    if (!ks->pack) {
        pack_b(g, ks->nr, p0, kc, j0, nc, P);
        return;
    }
    for (int64_t jr = 0; jr < nc; jr += ks->nr, P += ks->nr * k_slots(ks, kc))
        ks->pack(g->tb, g->B, g->ldb, j0 + jr, min64(ks->nr, nc - jr), p0, kc, ks->nr, P);
}

/* --------------------------------------------------------------- the loops */

/* C rows [m0, m1) x columns [n0, n1), all of k. false if out of memory. */
/* Row and column blocks in whole micro-panels; a kc x nc block of B takes
 * the same bytes whatever the element format (bf16 pairs: twice the
 * columns), so that a product whose thread owns many columns (d w_rec:
 * 2048) packs its A blocks fewer times. */
static int64_t mc_block(const df_gemm_kernels *ks) { return DF_GEMM_MC - DF_GEMM_MC % ks->mr; }
static int64_t nc_block(const df_gemm_kernels *ks)
{
    const int64_t nc = DF_GEMM_NC * ks->kpack;
    return nc - nc % ks->nr;
}

/* Floats of packing scratch for `rows` x `cols` of C, a multiple of 16
 * (64 bytes): an A block, and a B block unless op(B) is packed already. */
static int64_t scratch_floats(const df_gemm_kernels *ks, const gemm_args *g, int64_t rows, int64_t cols)
{
    const int64_t kcmax = min64(DF_GEMM_KC, g->K);
    const int64_t mcmax = min64(mc_block(ks), round_up(rows, ks->mr));
    const int64_t ncmax = min64(nc_block(ks), round_up(cols, ks->nr));
    return round_up(kcmax * mcmax, 16) + (g->pb ? 0 : round_up(kcmax * ncmax, 16));
}

/* Packing scratch of this thread for C rows [m0, m1) x columns [n0, n1). */
static float *block_scratch(const df_gemm_kernels *ks, const gemm_args *g, int64_t m0, int64_t m1, int64_t n0,
                            int64_t n1)
{
    return thread_scratch((size_t)scratch_floats(ks, g, m1 - m0, n1 - n0));
}

/* C rows [m0, m1) x columns [n0, n1), all of k, with Ap from block_scratch. */
static void gemm_block(const df_gemm_kernels *ks, const gemm_args *g, int64_t m0, int64_t m1, int64_t n0,
                       int64_t n1, float *Ap)
{
    if (m0 >= m1 || n0 >= n1) return;
    const int mr = ks->mr, nr = ks->nr;
    /* Bp 64-byte aligned (the kernels load its panels aligned) */
    const int64_t MC = mc_block(ks), NC = nc_block(ks);
    /* Few columns: each row of A meets only a few panels of B, so packing
     * A would cost about as much as the products; the tiles read its rows in
     * place. (A transposed is packed: reading it in place strides a page per k.) */
    const bool direct_a =
        !ks->pack && !g->ta && (n1 - n0 <= GEMM_DIRECT_A_COLS || g->lda <= GEMM_DIRECT_A_LDA) && !g->pa;
    float *Bp = g->pb ? NULL : Ap + round_up(min64(DF_GEMM_KC, g->K) * min64(MC, round_up(m1 - m0, mr)), 16);
    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int64_t nc = min64(NC, n1 - jc);
        for (int64_t pc = 0; pc < g->K; pc += DF_GEMM_KC) {
            const int64_t kc = min64(DF_GEMM_KC, g->K - pc);
            const bool accumulate = pc > 0;
            const int64_t ks_kc = k_slots(ks, kc);                    /* elements per panel row */
            if (g->pb) Bp = g->pb->P + k_slots(ks, pc) * g->pb->npad + jc * ks_kc;   /* block pc, panel jc / nr */
            else pack_b_for(ks, g, pc, kc, jc, nc, Bp);
            /* A packed already: block pc, panels from row 0 */
            const float *Apc = g->pa ? g->pa->P + k_slots(ks, pc) * g->pa->mpad : NULL;
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = min64(MC, m1 - ic);
                if (!direct_a && !Apc) pack_a_for(ks, g, ic, mc, pc, kc, Ap);
                for (int64_t ir = 0; ir < mc; ir += mr) {
                    const int m = (int)min64(mr, mc - ir);
                    const float *a = Apc ? Apc + (ic + ir) * ks_kc : Ap + ir * ks_kc;
                    int64_t ars = 1, aks = mr;
                    if (!Apc && a_rowwise(ks, g)) {
                        ars = ks_kc;
                        aks = 1;
                    } else if (!Apc && a_block_kmajor(ks, g)) {
                        a = Ap + ir;
                        aks = round_up(mc, mr);
                    } else if (direct_a && m == mr) {
                        a = g->ta ? g->A + pc * g->lda + ic + ir : g->A + (ic + ir) * g->lda + pc;
                        ars = g->ta ? 1 : g->lda;
                        aks = g->ta ? g->lda : 1;
                    } else if (direct_a) {          /* a last panel short of mr rows: pack it */
                        pack_a(g, mr, ic + ir, m, pc, kc, Ap);
                        a = Ap;
                    }
                    float *crow = g->C + (ic + ir) * g->ldc + jc;
                    for (int64_t jr = 0; jr < nc; jr += nr)
                        ks->tile(kc, a, ars, aks, Bp + jr * ks_kc, crow + jr, g->ldc, m, (int)min64(nr, nc - jr),
                                 g->alpha, g->beta, accumulate);
                }
            }
        }
    }
}

/* C = beta * C (K = 0); beta == 0 writes zeros without reading C. */
static void scale_c(const gemm_args *g)
{
    for (int64_t i = 0; i < g->M; i++) {
        float *c = g->C + i * g->ldc;
        for (int64_t j = 0; j < g->N; j++) c[j] = g->beta == 0.0f ? 0.0f : g->beta * c[j];
    }
}

/* Threads for a product of this many multiply-adds: none inside a parallel
 * region (the caller already shares out the work), none for small ones. */
static int gemm_threads(double macs)
{
    if (omp_in_parallel() || macs < GEMM_PAR_MACS) return 1;
    return df_team_size(omp_get_max_threads());
}

/* Tile work of columns [n0, n1) (n0 a multiple of nr), in col_steps. */
static int64_t column_work(const df_gemm_kernels *ks, int64_t n0, int64_t n1)
{
    const int64_t full = (n1 - n0) / ks->nr, step = ks->col_step;
    return full * ((ks->nr + step - 1) / step) + ((n1 - n0) % ks->nr + step - 1) / step;
}

/* The largest tile work of one thread among nth, each taking a contiguous
 * range of whole tiles along M (split_n false) or N, as gemm_run shares. */
static int64_t split_work(const df_gemm_kernels *ks, const gemm_args *g, bool split_n, int nth)
{
    const int64_t row_tiles = (g->M + ks->mr - 1) / ks->mr, col_tiles = (g->N + ks->nr - 1) / ks->nr;
    int64_t worst = 0;
    for (int t = 0; t < nth; t++) {
        int64_t w;
        if (split_n) {
            const int64_t n0 = col_tiles * t / nth * ks->nr, n1 = min64(g->N, col_tiles * (t + 1) / nth * ks->nr);
            w = row_tiles * (n1 > n0 ? column_work(ks, n0, n1) : 0);
        } else {
            w = (row_tiles * (t + 1) / nth - row_tiles * t / nth) * column_work(ks, 0, g->N);
        }
        if (w > worst) worst = w;
    }
    return worst;
}

/* Products split along M whose packed op(B) is at most this many floats
 * (512 KiB: it stays in L2 while every row chunk sweeps it) pack it once,
 * shared, instead of once per thread; their rows go out in
 * GEMM_ROW_CHUNKS chunks per thread. */
#define GEMM_SHARED_B_FLOATS (1 << 17)
#define GEMM_ROW_CHUNKS 4

/* One turn of a wait for another thread: a pause, and after a while the
 * core itself (on a busy machine the thread waited for may need it). */
static void spin_pause(int64_t *turns)
{
    if (++*turns % 4096 == 0) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_ia32_pause();
#endif
}

/* op(B) packed once into pb by whichever threads come (panels claimed one
 * by one: a thread the machine schedules late finds them packed rather
 * than being waited for), then chunks of rows claimed the same way, so a
 * thread slowed by another process's load takes fewer of them. Each
 * element is still summed by the same operations (the chunks and panels
 * change no sum). false if out of memory, before anything is written. */
static bool gemm_run_shared_b(const df_gemm_kernels *ks, const gemm_args *g, int nth)
{
    const int64_t npad = round_up(g->N, ks->nr), panels = npad / ks->nr;
    const int64_t blocks = (g->K + DF_GEMM_KC - 1) / DF_GEMM_KC, pieces = blocks * panels;
    const int64_t chunk = round_up((g->M + nth * GEMM_ROW_CHUNKS - 1) / (nth * GEMM_ROW_CHUNKS), ks->mr);
    const int64_t chunks = (g->M + chunk - 1) / chunk;
    df_gemm_packed_b pb = {ks, g->K, g->N, npad, NULL};
    gemm_args shared = *g;
    shared.pb = &pb;
    const int64_t per_thread = scratch_floats(ks, &shared, chunk, g->N);     /* A blocks only */
    float *scratch = thread_scratch((size_t)(per_thread * nth + k_slots(ks, g->K) * npad));
    if (!scratch) return false;
    pb.P = scratch + per_thread * nth;
    atomic_llong next_piece = 0, packed = 0, next_chunk = 0;
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        float *mine = scratch + omp_get_thread_num() * per_thread;
        for (int64_t q; (q = atomic_fetch_add(&next_piece, 1)) < pieces;) {
            const int64_t pc = q / panels * DF_GEMM_KC, kc = min64(DF_GEMM_KC, g->K - pc), j0 = q % panels * ks->nr;
            pack_b_for(ks, g, pc, kc, j0, min64(ks->nr, g->N - j0), pb.P + k_slots(ks, pc) * npad + j0 * k_slots(ks, kc));
            atomic_fetch_add_explicit(&packed, 1, memory_order_release);
        }
        for (int64_t turns = 0; atomic_load_explicit(&packed, memory_order_acquire) < pieces;) spin_pause(&turns);
        for (int64_t c; (c = atomic_fetch_add(&next_chunk, 1)) < chunks;)
            gemm_block(ks, &shared, c * chunk, min64(g->M, (c + 1) * chunk), 0, g->N, mine);
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    return true;
}

/* Each thread takes a contiguous range of whole tiles along M or N: the
 * split whose busiest thread has less tile work (N = 128 in 48-column
 * panels splits 48 | 80 columns, where 768 rows split evenly), on a tie
 * along the larger dimension of C (so the operand packed again by every
 * thread is the smaller one). The ranges change nothing in the sums. */
static bool gemm_run(const df_gemm_kernels *ks, const gemm_args *g)
{
    int nth = gemm_threads((double)g->M * g->N * g->K);
    bool split_n = g->N >= g->M;
    if (nth > 1) {
        const int64_t by_m = split_work(ks, g, false, nth), by_n = split_work(ks, g, true, nth);
        if (by_m != by_n) split_n = by_n < by_m;
    }
    const int64_t unit = split_n ? ks->nr : ks->mr, extent = split_n ? g->N : g->M;
    const int64_t tiles = (extent + unit - 1) / unit;
    if (nth > tiles) nth = (int)tiles;
    if (nth > 1 && !split_n && !g->pb && !g->pa && tiles >= 2 * nth &&
        k_slots(ks, g->K) * round_up(g->N, ks->nr) <= GEMM_SHARED_B_FLOATS)
        return gemm_run_shared_b(ks, g, nth);
    if (nth <= 1) {
        float *scratch = block_scratch(ks, g, 0, g->M, 0, g->N);
        if (scratch) gemm_block(ks, g, 0, g->M, 0, g->N, scratch);
        return scratch != NULL;
    }
    /* every thread's scratch from the calling thread's, before the region:
     * out of memory, nobody writes C (the caller then computes the whole
     * product another way), and the threads start without a barrier, which
     * on a loaded machine waits for the slowest thread to be scheduled */
    const int64_t per_thread = scratch_floats(ks, g, g->M, g->N);
    float *scratch = thread_scratch((size_t)(per_thread * nth));
    if (!scratch) return false;
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        const int64_t lo = min64(extent, tiles * tid / team * unit), hi = min64(extent, tiles * (tid + 1) / team * unit);
        const int64_t m0 = split_n ? 0 : lo, m1 = split_n ? g->M : hi, n0 = split_n ? lo : 0, n1 = split_n ? hi : g->N;
        gemm_block(ks, g, m0, m1, n0, n1, scratch + tid * per_thread);
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    return true;
}

/* ------------------------------------------------------------------- GEMV */
/* One row or one column of C: y = alpha * x @ op(W) + beta * y, split over
 * outputs in multiples of 64 among threads (each output's sum is the same on
 * any split). x is gathered into contiguous scratch when strided. */
static bool gemv_run(const df_gemm_kernels *ks, const gemm_args *g)
{
    const bool row = g->M == 1;
    /* the vector x, its stride; the matrix W and whether y[j] = W[j,:] . x */
    const float *x = row ? g->A : g->B;
    const int64_t incx = row ? (g->ta ? g->lda : 1) : (g->tb ? 1 : g->ldb);
    const float *W = row ? g->B : g->A;
    const int64_t ldw = row ? g->ldb : g->lda;
    const bool dots = row ? g->tb : !g->ta;
    const int64_t n = row ? g->N : g->M, incy = row ? 1 : g->ldc, K = g->K;
    if (incx != 1 && K > 1) {
        float *xs = thread_scratch((size_t)K);
        if (!xs) return false;
        for (int64_t k = 0; k < K; k++) xs[k] = x[k * incx];
        x = xs;
    }
    enum { GRAIN = 64 };
    const int64_t grains = (n + GRAIN - 1) / GRAIN;
    /* memory-bound: a second thread pays off only on weights past ~16 MiB */
    int nth = (double)n * K >= GEMV_PAR_MACS ? gemm_threads((double)n * K) : 1;
    if (nth > grains) nth = (int)grains;
    if (nth <= 1) {       /* no region: even a one-thread one costs a team allocation and a futex wake-up */
        if (dots) ks->gemv_dots(n, K, W, ldw, x, g->alpha, g->beta, g->C, incy);
        else ks->gemv_rows(K, n, x, W, ldw, g->alpha, g->beta, g->C, incy);
        return true;
    }
    df_team_probe probe;
    df_team_begin(&probe, nth);
#pragma omp parallel num_threads(nth)
    {
        const int64_t cpu0 = df_team_enter(&probe);
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        const int64_t j0 = min64(n, grains * tid / team * GRAIN), j1 = min64(n, grains * (tid + 1) / team * GRAIN);
        if (j1 > j0) {
            if (dots) ks->gemv_dots(j1 - j0, K, W + j0 * ldw, ldw, x, g->alpha, g->beta, g->C + j0 * incy, incy);
            else ks->gemv_rows(K, j1 - j0, x, W + j0, ldw, g->alpha, g->beta, g->C + j0 * incy, incy);
        }
        df_team_leave(&probe, cpu0);
    }
    df_team_end(&probe);
    return true;
}

/* ------------------------------------------------------------ CPU support */
#if DF_GEMM_HAVE_X86
#include <cpuid.h>

/* What the CPU or OS lacks for the bf16 kernels, NULL when nothing: the
 * AVX512_BF16 bit (cpuid leaf 7 subleaf 1, EAX bit 5), AVX-512 F/BW/VL
 * (leaf 7 subleaf 0, EBX bits 16, 30, 31) and the OS saving the zmm and
 * opmask state (XCR0 bits 1, 2, 5, 6, 7), read once; and DQ (bit 17), which
 * the packing uses. */
static const char *cpu_bf16_missing(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return "OSXSAVE (the OS does not enable XSAVE)";
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0xE6) != 0xE6) return "OS support for the AVX-512 register state (XCR0)";
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "cpuid leaf 7";
    if (!(b & (1u << 16)) || !(b & (1u << 17)) || !(b & (1u << 30)) || !(b & (1u << 31)))
        return "avx512f/avx512dq/avx512bw/avx512vl";
    if (a < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5)))
        return "avx512_bf16 (cpuid leaf 7 subleaf 1, EAX bit 5)";
    return NULL;
}
#endif

static _Atomic int bf16_pretend_missing;

void df_gemm_bf16_pretend_missing(bool on) { bf16_pretend_missing = on; }

#if DF_GEMM_HAVE_X86
static const char *bf16_missing_cpu;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static void bf16_probe(void) { bf16_missing_cpu = cpu_bf16_missing(); }
#endif

const char *df_gemm_bf16_missing(void)
{
    if (bf16_pretend_missing) return "avx512_bf16 (pretended missing by a test)";
#if DF_GEMM_HAVE_X86
    pthread_once(&bf16_once, bf16_probe);
    return bf16_missing_cpu;
#else
    return "avx512_bf16 (an x86-64 build with GCC or Clang)";
#endif
}

/* ----------------------------------------------------------------- entries */
const df_gemm_kernels *df_gemm_kernels_for(df_gemm_path path)
{
    switch (path) {
#if DF_GEMM_HAVE_X86
    case DF_GEMM_AVX512:
        return __builtin_cpu_supports("avx512f") ? &df_gemm_avx512 : NULL;
    case DF_GEMM_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &df_gemm_avx2 : NULL;
    case DF_GEMM_BF16:
        return df_gemm_bf16_missing() ? NULL : &df_gemm_bf16;
#endif
    case DF_GEMM_PORTABLE:
        return &df_gemm_portable;
    default:
        return NULL;
    }
}

bool df_gemm_own(df_gemm_path path, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    const df_gemm_kernels *ks = df_gemm_kernels_for(path);
    if (!ks) return false;
    if (M <= 0 || N <= 0) return true;
    const gemm_args g = {ta, tb, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C, NULL, NULL};
    if (K <= 0) {
        scale_c(&g);
        return true;
    }
    if ((M == 1 || N == 1) && ks->gemv_rows) return gemv_run(ks, &g);
    return gemm_run(ks, &g);
}

/* ------------------------------------------------------- op(B) packed once */
/* Layout: k blocks of DF_GEMM_KC rows from k = 0; block p (kc rows) at
 * P + p*DF_GEMM_KC*npad holds every nr-column panel of those rows (panel q
 * at q*nr*kc, zero padded to npad columns): exactly what gemm_block packs
 * per call, so a product over it runs the same operations. */
size_t df_gemm_packed_b_floats(df_gemm_path path, int64_t K, int64_t N)
{
    const df_gemm_kernels *ks = df_gemm_kernels_for(path);
    if (!ks || K <= 0 || N <= 0) return 0;
    return (size_t)k_slots(ks, K) * (size_t)round_up(N, ks->nr);
}

bool df_gemm_pack_b(df_gemm_path path, df_gemm_packed_b *pb, bool tb, int64_t K, int64_t N, const float *B,
                    int64_t ldb, float *buf)
{
    const df_gemm_kernels *ks = df_gemm_kernels_for(path);
    if (!ks || !buf || K <= 0 || N <= 0) return false;
    *pb = (df_gemm_packed_b){ks, K, N, round_up(N, ks->nr), buf};
    const gemm_args g = {.tb = tb, .K = K, .N = N, .B = B, .ldb = ldb};
    const int64_t blocks = (K + DF_GEMM_KC - 1) / DF_GEMM_KC;
#pragma omp parallel for schedule(static) num_threads(df_team_size(omp_get_max_threads())) if (K * N >= GEMM_PAR_MACS)
    for (int64_t p = 0; p < blocks; p++) {
        const int64_t pc = p * DF_GEMM_KC;
        pack_b_for(ks, &g, pc, min64(DF_GEMM_KC, K - pc), 0, N, buf + k_slots(ks, pc) * pb->npad);
    }
    return true;
}

bool df_sgemm_packed(int64_t M, float alpha, const float *A, int64_t lda, const df_gemm_packed_b *pb, float beta,
                     float *C, int64_t ldc)
{
    if (M <= 0) return true;
    const gemm_args g = {false, false, M, pb->N, pb->K, alpha, beta, A, NULL, lda, 0, ldc, C, pb, NULL};
    return gemm_run(pb->ks, &g);
}

bool df_sgemm_packed_cols(int64_t M, float alpha, const float *A, int64_t lda, const df_gemm_packed_b *pb, int64_t n0,
                          int64_t n1, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || n0 >= n1) return true;
    if (n0 < 0 || n1 > pb->N || n0 % pb->ks->nr != 0) return false;
    const gemm_args g = {false, false, M, pb->N, pb->K, alpha, beta, A, NULL, lda, 0, ldc, C, pb, NULL};
    float *scratch = block_scratch(pb->ks, &g, 0, M, n0, n1);
    if (!scratch) return false;
    gemm_block(pb->ks, &g, 0, M, n0, n1, scratch);
    return true;
}

/* ------------------------------------------------------------ A packed once */
/* Layout: k blocks of DF_GEMM_KC from k = 0; block p at
 * P + k_slots(p*DF_GEMM_KC)*mpad holds the mr-row panels of all M rows
 * (panel q at q*mr*k_slots(kc)), rows past M zero: what gemm_block packs
 * per block, so a product over it runs the same operations. */
size_t df_gemm_packed_a_floats(df_gemm_path path, int64_t M, int64_t K)
{
    const df_gemm_kernels *ks = df_gemm_kernels_for(path);
    if (!ks || M <= 0 || K <= 0) return 0;
    return (size_t)k_slots(ks, K) * (size_t)round_up(M, ks->mr);
}

bool df_gemm_packed_a_init(df_gemm_path path, df_gemm_packed_a *pa, int64_t M, int64_t K, float *buf)
{
    const df_gemm_kernels *ks = df_gemm_kernels_for(path);
    if (!ks || !buf || M <= 0 || K <= 0) return false;
    *pa = (df_gemm_packed_a){ks, M, K, round_up(M, ks->mr), buf};
    return true;
}

/* Rows [0, M) x k [k0, k1) of A into the panels of k block pc (kc steps),
 * k0 .. k1 inside it and k0 - pc a multiple of kpack; element (i, k0 + k)
 * is X[i*ldx + k] when k_contig, else X[k*ldx + i]. */
static void pack_a_piece(const df_gemm_packed_a *pa, bool k_contig, const float *X, int64_t ldx, int64_t pc,
                         int64_t kc, int64_t k0, int64_t k1)
{
    const df_gemm_kernels *ks = pa->ks;
    const int mr = ks->mr;
    const gemm_args g = {.ta = !k_contig, .M = pa->M, .K = pa->K, .A = X, .lda = ldx};
    float *block = pa->P + k_slots(ks, pc) * pa->mpad;
    for (int64_t ir = 0; ir < pa->M; ir += mr) {
        float *dst = block + ir * k_slots(ks, kc) + (k0 - pc) / ks->kpack * mr;
        if (ks->pack) ks->pack(k_contig, X, ldx, ir, min64(mr, pa->M - ir), 0, k1 - k0, mr, dst);
        else pack_a(&g, mr, ir, min64(mr, pa->M - ir), 0, k1 - k0, dst);
    }
}

/* k [k0, k1) of every row into pa, block by block; X at element (0, k0). */
static bool pack_a_range(const df_gemm_packed_a *pa, bool k_contig, const float *X, int64_t ldx, int64_t k0,
                         int64_t k1)
{
    if (k0 >= k1) return true;
    const int kpack = pa->ks->kpack;
    if (k0 < 0 || k1 > pa->K || k0 % kpack != 0 || (k1 % kpack != 0 && k1 != pa->K)) return false;
    for (int64_t pc = k0 / DF_GEMM_KC * DF_GEMM_KC; pc < k1; pc += DF_GEMM_KC) {
        const int64_t kc = min64(DF_GEMM_KC, pa->K - pc), lo = k0 > pc ? k0 : pc;
        pack_a_piece(pa, k_contig, X + (lo - k0) * (k_contig ? 1 : ldx), ldx, pc, kc, lo, min64(k1, pc + kc));
    }
    return true;
}

bool df_gemm_pack_a_cols(const df_gemm_packed_a *pa, const float *A, int64_t lda, int64_t k0, int64_t k1)
{
    return pack_a_range(pa, true, A + k0, lda, k0, k1);
}

bool df_gemm_pack_a_rows(const df_gemm_packed_a *pa, const float *X, int64_t ldx, int64_t k0, int64_t k1)
{
    return pack_a_range(pa, false, X, ldx, k0, k1);
}

bool df_sgemm_packed_a(const df_gemm_packed_a *pa, bool tb, int64_t N, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc)
{
    if (N <= 0) return true;
    const gemm_args g = {false, tb, pa->M, N, pa->K, 1.0f, beta, NULL, B, 0, ldb, ldc, C, NULL, pa};
    return gemm_run(pa->ks, &g);
}

bool df_sgemm_packed_ab_cols(float alpha, const df_gemm_packed_a *pa, const df_gemm_packed_b *pb, int64_t n0,
                             int64_t n1, float beta, float *C, int64_t ldc)
{
    if (n0 >= n1) return true;
    if (pa->ks != pb->ks || pa->K != pb->K || n0 < 0 || n1 > pb->N || n0 % pb->ks->nr != 0) return false;
    const gemm_args g = {false, false, pa->M, pb->N, pb->K, alpha, beta, NULL, NULL, 0, 0, ldc, C, pb, pa};
    gemm_block(pb->ks, &g, 0, pa->M, n0, n1, NULL);
    return true;
}
