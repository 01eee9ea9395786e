/* bench_gemm.c — GFLOP/s of each GEMM path (OpenBLAS, dagflow's AVX-512,
 * AVX2 and, with --portable, portable kernels, the AUTO choice, and bf16
 * operands with fp32 sums where the CPU has AVX512_BF16) at the
 * shapes dagflow's models use, on 1 and 2 threads. Paths alternate round by
 * round so that a drift in the machine's speed hits all of them alike; each
 * figure is the median over the rounds.
 *
 *   bench/bench_gemm [--rounds N] [--threads LIST] [--portable] [--only M,N,K]
 *                    [--match TEXT] [--cpu] [--paths LIST]
 *
 * --match keeps the shapes whose label contains TEXT ("gpt": char-gpt's);
 * --cpu times by the process's CPU time instead of the wall clock (steadier
 * on a loaded machine with --threads 1; with more threads it counts the
 * pool's spinning too); --paths keeps the named paths ("bf16,auto").
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base.h"
#include "bench_util.h"

static bool use_cpu_clock;

static double clock_now(void)
{
    if (!use_cpu_clock) return bench_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct shape { const char *what; bool ta, tb; int64_t M, N, K; } shape;

static const shape shapes[] = {
    {"issue 15: 64x1024 @ 1024x4096", false, false, 64, 4096, 1024},
    {"seed dW  x^T @ dz",  true, false, 1024, 4096, 6400},
    {"seed dh  dz @ W^T", false, true, 64, 1024, 4096},
    {"LSTM step chunk (B64 H1024, 128 cols)", false, false, 64, 128, 1024},
    {"dense fwd (6400,1024)@(1024,65)", false, false, 6400, 65, 1024},
    {"dense dW  h^T @ dy", true, false, 1024, 65, 6400},
    {"dense dh  dy @ W^T", false, true, 6400, 1024, 65},
    {"embedding table (65,256)@(256,4096)", false, false, 65, 4096, 256},
    {"table d emb  dT @ kernel^T", false, true, 65, 256, 4096},
    {"table d kernel  emb^T @ dT", true, false, 256, 4096, 65},
    {"square 1024", false, false, 1024, 1024, 1024},
    {"square 1024 ta tb", true, true, 1024, 1024, 1024},
    {"small 33x17x100", false, false, 33, 17, 100},
    {"small 100x100x100", false, false, 100, 100, 100},
    {"gemv 1x1024 @ 1024x4096", false, false, 1, 4096, 1024},
    {"gemv 1x1024 @ (4096x1024)^T", false, true, 1, 4096, 1024},
    {"gemv 1x1024 @ 1024x65 (dense)", false, false, 1, 65, 1024},
    {"gemv 1x256 @ 256x4096 (embedding)", false, false, 1, 4096, 256},
    {"gemv (4096x1024) @ 1024x1", false, false, 4096, 1, 1024},
    /* char-gpt's train step (768 tokens, C 128, 4C MLP, tied 65-char head):
     * each linear's forward x @ W, its dx = dy @ W^T and dW = x^T @ dy */
    {"gpt qkv  x @ W", false, false, 768, 384, 128},
    {"gpt qkv  dy @ W^T", false, true, 768, 128, 384},
    {"gpt qkv  x^T @ dy", true, false, 128, 384, 768},
    {"gpt proj x @ W", false, false, 768, 128, 128},
    {"gpt proj dy @ W^T", false, true, 768, 128, 128},
    {"gpt proj x^T @ dy", true, false, 128, 128, 768},
    {"gpt fc   x @ W", false, false, 768, 512, 128},
    {"gpt fc   dy @ W^T", false, true, 768, 128, 512},
    {"gpt fc   x^T @ dy", true, false, 128, 512, 768},
    {"gpt mlp proj x @ W", false, false, 768, 128, 512},
    {"gpt mlp proj dy @ W^T", false, true, 768, 512, 128},
    {"gpt mlp proj x^T @ dy", true, false, 512, 128, 768},
    {"gpt head x @ wte^T", false, true, 768, 65, 128},
    {"gpt head dy @ wte", false, false, 768, 128, 65},
    {"gpt head dy^T @ x", true, false, 65, 128, 768},
};

typedef struct path_desc { const char *name; df_gemm_path path; } path_desc;

static double time_call(const path_desc *p, const shape *s, const float *A, const float *B, float *C)
{
    const int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double flops = 2.0 * s->M * s->N * s->K, t0 = clock_now(), t;
    int reps = 0;
    do {                                         /* at least ~20 ms of calls */
        df_sgemm_path(p->path, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        reps++;
        t = clock_now() - t0;
    } while (t < 0.02);
    return flops * reps / t * 1e-9;
}

int main(int argc, char **argv)
{
    int rounds = 7, nthreads[4] = {1, 2}, nnth = 2;
    bool portable = false;
    int64_t only[3] = {0, 0, 0};
    const char *match = NULL, *keep_paths = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--portable")) portable = true;
        else if (!strcmp(argv[i], "--cpu")) use_cpu_clock = true;
        else if (!strcmp(argv[i], "--match") && i + 1 < argc) match = argv[++i];
        else if (!strcmp(argv[i], "--paths") && i + 1 < argc) keep_paths = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nnth = 0;
            for (char *t = strtok(argv[++i], ","); t && nnth < 4; t = strtok(NULL, ",")) nthreads[nnth++] = atoi(t);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            if (sscanf(argv[++i], "%ld,%ld,%ld", &only[0], &only[1], &only[2]) != 3) return 2;
        } else {
            fprintf(stderr, "usage: %s [--rounds N] [--threads 1,2] [--portable] [--only M,N,K] [--match TEXT] [--cpu] [--paths LIST]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 99) rounds = 7;
    path_desc paths[6] = {{"openblas", DF_GEMM_OPENBLAS}};
    int np = 1;
    if (df_gemm_kernels_for(DF_GEMM_AVX512)) paths[np++] = (path_desc){"avx512", DF_GEMM_AVX512};
    if (df_gemm_kernels_for(DF_GEMM_AVX2)) paths[np++] = (path_desc){"avx2", DF_GEMM_AVX2};
    if (portable) paths[np++] = (path_desc){"portable", DF_GEMM_PORTABLE};
    paths[np++] = (path_desc){"auto", DF_GEMM_AUTO};
    if (!df_gemm_bf16_missing()) paths[np++] = (path_desc){"bf16", DF_GEMM_BF16};
    else printf("# bf16 not measured: this CPU lacks %s\n", df_gemm_bf16_missing());
    if (keep_paths) {
        int kept = 0;
        for (int p = 0; p < np; p++)
            if (strstr(keep_paths, paths[p].name)) paths[kept++] = paths[p];
        np = kept;
    }
    printf("# OpenBLAS core %s; GFLOP/s, median of %d rounds\n", openblas_get_corename(), rounds);
    printf("%-40s %3s", "shape (M,N,K)", "thr");
    for (int p = 0; p < np; p++) printf(" %9s", paths[p].name);
    printf("\n");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        if (only[0] && (s->M != only[0] || s->N != only[1] || s->K != only[2])) continue;
        if (match && !strstr(s->what, match)) continue;
        float *A = malloc(sizeof(float) * s->M * s->K), *B = malloc(sizeof(float) * s->K * s->N),
              *C = malloc(sizeof(float) * s->M * s->N);
        if (!A || !B || !C) return 1;
        for (int64_t i = 0; i < s->M * s->K; i++) A[i] = (float)((i * 7 % 13) - 6) / 8;
        for (int64_t i = 0; i < s->K * s->N; i++) B[i] = (float)((i * 5 % 11) - 5) / 8;
        for (int t = 0; t < nnth; t++) {
            df_set_num_threads(nthreads[t]);
            double r[6][99];
            for (int k = 0; k < rounds; k++)
                for (int p = 0; p < np; p++) r[p][k] = time_call(&paths[p], s, A, B, C);
            char label[96];
            snprintf(label, sizeof label, "%s (%ld,%ld,%ld)%s%s", s->what, (long)s->M, (long)s->N, (long)s->K,
                     s->ta ? " ta" : "", s->tb ? " tb" : "");
            printf("%-40.60s %3d", label, nthreads[t]);
            for (int p = 0; p < np; p++) printf(" %9.1f", bench_median(r[p], rounds));
            printf("\n");
            fflush(stdout);
        }
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
