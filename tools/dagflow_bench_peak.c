/* dagflow_bench_peak.c — the machine's limits for dagflow-bench: the fp32
 * FMA peak (12 independent FMA chains, so the FMA latency is hidden on
 * every x86 core with 2 FMA pipes and latency <= 6), the bf16 dot-product
 * peak (vdpbf16ps) where the CPU has avx512_bf16, and the read bandwidth of
 * L2, L3 and DRAM (a buffer of about half the level, summed by every
 * thread). Each figure is the best of several measurements, taken the first
 * time it is asked for and kept for the rest of the process. */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dagflow.h"
#include "dagflow_bench.h"

#define FMA_CHAINS 12
#define MAX_THREADS 256

/* ------------------------------------------------------------ the CPU */

static char cpu_model[128], cpu_flags[4096];

static void read_cpuinfo(void)
{
    if (cpu_model[0]) return;
    snprintf(cpu_model, sizeof cpu_model, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[4096];
    bool have_model = false, have_flags = false;
    while ((!have_model || !have_flags) && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 2 <= line + strlen(line) ? colon + 2 : colon + 1;
        v[strcspn(v, "\n")] = 0;
        if (!have_model && !strncmp(line, "model name", 10)) snprintf(cpu_model, sizeof cpu_model, "%s", v), have_model = true;
        if (!have_flags && !strncmp(line, "flags", 5)) snprintf(cpu_flags, sizeof cpu_flags, " %s ", v), have_flags = true;
    }
    fclose(f);
}

static bool has_flag(const char *flag)
{
    read_cpuinfo();
    char pat[64];
    snprintf(pat, sizeof pat, " %s ", flag);
    return strstr(cpu_flags, pat) != NULL;
}

const char *bench_cpu_model(void)
{
    read_cpuinfo();
    return cpu_model;
}

const char *bench_fma_isa(void)
{
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
    return "scalar";
}

bool bench_has_bf16(void) { return __builtin_cpu_supports("avx512f") && has_flag("avx512_bf16"); }

/* ------------------------------------------------------------ FMA loops */

/* Each returns the FLOPs it did (a sum of the chains is kept so that the
 * loop is not optimised away). */
__attribute__((target("avx512f"))) static double fma_avx512(long iters, float *sink)
{
    __m512 acc[FMA_CHAINS], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < FMA_CHAINS; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_CHAINS; k++) acc[k] = _mm512_fmadd_ps(acc[k], m, c);
    for (int k = 1; k < FMA_CHAINS; k++) acc[0] = _mm512_add_ps(acc[0], acc[k]);
    *sink += _mm512_reduce_add_ps(acc[0]);
    return (double)iters * FMA_CHAINS * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double fma_avx2(long iters, float *sink)
{
    __m256 acc[FMA_CHAINS], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < FMA_CHAINS; k++) acc[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_CHAINS; k++) acc[k] = _mm256_fmadd_ps(acc[k], m, c);
    for (int k = 1; k < FMA_CHAINS; k++) acc[0] = _mm256_add_ps(acc[0], acc[k]);
    float v[8];
    _mm256_storeu_ps(v, acc[0]);
    *sink += v[0];
    return (double)iters * FMA_CHAINS * 8 * 2;
}

static double fma_scalar(long iters, float *sink)
{
    float acc[FMA_CHAINS];
    for (int k = 0; k < FMA_CHAINS; k++) acc[k] = (float)k;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_CHAINS; k++) acc[k] = acc[k] * 0.999999f + 1e-7f;
    for (int k = 0; k < FMA_CHAINS; k++) *sink += acc[k];
    return (double)iters * FMA_CHAINS * 2;
}

/* vdpbf16ps: per fp32 lane two bf16 products added to the accumulator, 4
 * FLOPs, 16 lanes. */
__attribute__((target("avx512f,avx512bf16"))) static double bf16_avx512(long iters, float *sink)
{
    __m512 acc[FMA_CHAINS];
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3400);  /* 1.0, ~1.2e-7 */
    for (int k = 0; k < FMA_CHAINS; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < FMA_CHAINS; k++) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
    for (int k = 1; k < FMA_CHAINS; k++) acc[0] = _mm512_add_ps(acc[0], acc[k]);
    *sink += _mm512_reduce_add_ps(acc[0]);
    return (double)iters * FMA_CHAINS * 16 * 4;
}

typedef double (*flop_loop)(long iters, float *sink);

/* GFLOP/s of loop run by `threads` threads at once: the best of 5 runs of
 * about 50 ms each (on a shared machine other processes only slow it down). */
static double measure_loop(flop_loop loop, int threads)
{
    float sink = 0;
    long iters = 1000;
    double took = 0;
    while (took < 0.01 && iters < (1L << 40)) {      /* grow until a call takes 10 ms */
        iters *= 2;
        double t0 = bench_now();
        loop(iters, &sink);
        took = bench_now() - t0;
    }
    iters = (long)(iters * (0.05 / took)) + 1;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double total = 0, start = 0, end = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            float s = 0;
#pragma omp barrier
#pragma omp master
            start = bench_now();
            total += loop(iters, &s);
#pragma omp barrier
#pragma omp master
            end = bench_now();
            if (s == 12345.678f) total += 0;   /* keeps s alive */
        }
        double g = total / (end - start) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

static double fma_cache[MAX_THREADS + 1], bf16_cache[MAX_THREADS + 1];

static int clamp_threads(int threads) { return threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads; }

double bench_peak_fma_gflops(int threads)
{
    threads = clamp_threads(threads);
    if (!fma_cache[threads]) {
        const char *isa = bench_fma_isa();
        fma_cache[threads] = measure_loop(!strcmp(isa, "avx512") ? fma_avx512 : !strcmp(isa, "avx2") ? fma_avx2
                                          : fma_scalar, threads);
    }
    return fma_cache[threads];
}

double bench_peak_bf16_gflops(int threads)
{
    if (!bench_has_bf16()) return 0;
    threads = clamp_threads(threads);
    if (!bf16_cache[threads]) bf16_cache[threads] = measure_loop(bf16_avx512, threads);
    return bf16_cache[threads];
}

/* ------------------------------------------------------------ bandwidth */

static size_t cache_size(int name, size_t fallback)
{
    long v = sysconf(name);
    return v > 0 ? (size_t)v : fallback;
}

/* L3 is taken as at most 32 MiB: a VM may report its whole socket's L3 (on
 * an EPYC 256 MiB and more), of which one core sees its CCD's 32 MiB. */
size_t bench_level_bytes(int level, int threads)
{
    size_t l2 = cache_size(_SC_LEVEL2_CACHE_SIZE, 1 << 20), l3 = cache_size(_SC_LEVEL3_CACHE_SIZE, 32 << 20);
    if (l3 > (size_t)32 << 20) l3 = (size_t)32 << 20;
    switch (level) {
    case BENCH_L2: return l2 / 2 * (size_t)threads;       /* each thread its own L2 */
    case BENCH_L3: return l3 / 2;
    default: return (size_t)512 << 20;
    }
}

const char *bench_level_name(int level) { return (const char *[]){"L2", "L3", "DRAM"}[level]; }

int bench_level_for(double bytes, int threads)
{
    if (bytes <= 2.0 * bench_level_bytes(BENCH_L2, threads)) return BENCH_L2;
    if (bytes <= 2.0 * bench_level_bytes(BENCH_L3, threads)) return BENCH_L3;
    return BENCH_DRAM;
}

__attribute__((target("avx2"))) static float read_avx2(const float *p, size_t n)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++) a[k] = _mm256_add_ps(a[k], _mm256_load_ps(p + i + 8 * k));
    for (int k = 1; k < 8; k++) a[0] = _mm256_add_ps(a[0], a[k]);
    float v[8];
    _mm256_storeu_ps(v, a[0]);
    return v[0] + v[7];
}

static float read_plain(const float *p, size_t n)
{
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    return s[0] + s[7];
}

static double bw_cache[BENCH_LEVELS][MAX_THREADS + 1];

/* Every thread reads its slice of one buffer over and over (DRAM: 3 passes;
 * caches: enough passes for about 30 ms). */
static double measure_read(int level, int threads)
{
    size_t bytes = bench_level_bytes(level, threads), n = bytes / sizeof(float);
    float *buf = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!buf) return 0;
    bool avx2 = __builtin_cpu_supports("avx2");
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = 1.0f;    /* first touch by the thread that reads it */
    size_t slice = n / (size_t)threads / 64 * 64;
    int passes = level == BENCH_DRAM ? 3 : (int)(2e9 / (double)bytes) + 1;
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double start = 0, end = 0;
#pragma omp parallel num_threads(threads)
        {
            const float *mine = buf + (size_t)omp_get_thread_num() * slice;
            float s = 0;
            s += avx2 ? read_avx2(mine, slice) : read_plain(mine, slice);      /* warm */
#pragma omp barrier
#pragma omp master
            start = bench_now();
            for (int p = 0; p < passes; p++) s += avx2 ? read_avx2(mine, slice) : read_plain(mine, slice);
#pragma omp barrier
#pragma omp master
            end = bench_now();
            sink += s;
        }
        double g = (double)slice * threads * sizeof(float) * passes / (end - start) / 1e9;
        if (g > best) best = g;
    }
    free(buf);
    return best;
}

double bench_read_gbs(int level, int threads)
{
    threads = clamp_threads(threads);
    if (!bw_cache[level][threads]) bw_cache[level][threads] = measure_read(level, threads);
    return bw_cache[level][threads];
}

/* ------------------------------------------------------------ peak */

int cmd_peak(int argc, char **argv)
{
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) df_set_num_threads(atoi(argv[++i]));
        else {
            fprintf(stderr, "dagflow-bench: peak: unknown option '%s'\n", argv[i]);
            return BENCH_EXIT_USAGE;
        }
    }
    int all = df_num_threads();
    double f1 = bench_peak_fma_gflops(1), fa = bench_peak_fma_gflops(all);
    double b1 = bench_peak_bf16_gflops(1), ba = bench_peak_bf16_gflops(all);
    double bw[BENCH_LEVELS];
    for (int l = 0; l < BENCH_LEVELS; l++) bw[l] = bench_read_gbs(l, all);
    if (json) {
        printf("{\"cpu\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"fp32_fma_gflops_1\": %.1f, "
               "\"fp32_fma_gflops_all\": %.1f, \"bf16_gflops_1\": %.1f, \"bf16_gflops_all\": %.1f, "
               "\"l2_gb_per_s\": %.1f, \"l3_gb_per_s\": %.1f, \"dram_gb_per_s\": %.1f}\n",
               bench_cpu_model(), bench_fma_isa(), all, f1, fa, b1, ba, bw[0], bw[1], bw[2]);
        return 0;
    }
    printf("cpu        %s (%s used for the FMA loop, %d threads)\n", bench_cpu_model(), bench_fma_isa(), all);
    printf("fp32 FMA   %8.1f GFLOP/s on 1 thread   %8.1f GFLOP/s on %d\n", f1, fa, all);
    if (bench_has_bf16()) printf("bf16 dot   %8.1f GFLOP/s on 1 thread   %8.1f GFLOP/s on %d (vdpbf16ps)\n", b1, ba, all);
    else printf("bf16 dot   -  (no avx512_bf16)\n");
    for (int l = 0; l < BENCH_LEVELS; l++)
        printf("%-4s read  %8.1f GB/s on %d threads (%zu KiB buffer)\n", bench_level_name(l), bw[l], all,
               bench_level_bytes(l, all) >> 10);
    return 0;
}
