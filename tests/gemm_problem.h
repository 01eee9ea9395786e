/* gemm_problem.h — one GEMM problem with padded strides and random operands,
 * for the GEMM tests (test_gemm.c, test_bf16.c). Include once per test file,
 * after defining GEMM_PROBLEM_SEED (each file its own data). */
#ifndef DF_TEST_GEMM_PROBLEM_H
#define DF_TEST_GEMM_PROBLEM_H
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <criterion/criterion.h>

static uint64_t rng_state = GEMM_PROBLEM_SEED;
static float uniform(void)                       /* in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* One product's operands: op(A) is M x K, op(B) K x N, every row stride
 * `pad` wider than its row; C's padding holds a sentinel that must survive. */
typedef struct problem {
    bool ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0, *C;
} problem;

#define SENTINEL 12345.0f

static problem make_problem(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad)
{
    problem p = {ta, tb, M, N, K, (ta ? M : K) + pad, (tb ? K : N) + pad, N + pad, alpha, beta, NULL, NULL, NULL, NULL};
    const int64_t arows = ta ? K : M, brows = tb ? N : K;
    p.A = malloc(sizeof(float) * (size_t)(arows * p.lda + 1));
    p.B = malloc(sizeof(float) * (size_t)(brows * p.ldb + 1));
    p.C0 = malloc(sizeof(float) * (size_t)(M * p.ldc + 1));
    p.C = malloc(sizeof(float) * (size_t)(M * p.ldc + 1));
    cr_assert(p.A && p.B && p.C0 && p.C);
    for (int64_t i = 0; i < arows * p.lda; i++) p.A[i] = uniform();
    for (int64_t i = 0; i < brows * p.ldb; i++) p.B[i] = uniform();
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < p.ldc; j++)
            /* beta = 0 must not read C: NaN there would show */
            p.C0[i * p.ldc + j] = j >= N ? SENTINEL : beta == 0.0f ? NAN : uniform();
    return p;
}

static void free_problem(problem *p)
{
    free(p->A);
    free(p->B);
    free(p->C0);
    free(p->C);
}

static float a_at(const problem *p, int64_t i, int64_t k) { return p->ta ? p->A[k * p->lda + i] : p->A[i * p->lda + k]; }
static float b_at(const problem *p, int64_t k, int64_t j) { return p->tb ? p->B[j * p->ldb + k] : p->B[k * p->ldb + j]; }

#endif
