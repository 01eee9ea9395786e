/* elementwise.h — what the table of elementwise ops (elementwise.def) gives
 * every file: the DF_EW_* fusion codes, each code's arity, and each op's
 * scalar function df_ew_<name>, the one definition of its values. */
#ifndef DF_OPS_ELEMENTWISE_H
#define DF_OPS_ELEMENTWISE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Vectorisable expf and erff for the formulas: straight-line float arithmetic,
 * fused multiply-adds and selects, so `omp simd` loops vectorise them. Every
 * multiply-add is an explicit fmaf, rounded once: an AVX2+FMA or AVX-512 copy
 * runs it as one instruction and a copy for an older CPU calls libm's fmaf
 * (slower, the same bits), so a vector lane, a scalar tail and every
 * instruction set give the same result. Accuracy against glibc over dense
 * grids: tests/test_ew_math.c. */
#define DF_MADD(a, b, c) fmaf((a), (b), (c))

/* e^x: x = n ln2 + r (|r| <= ln2/2, ln2 in two parts, Cody-Waite), e^r by
 * Cephes' expf polynomial, 2^n in two halves so that subnormal results and
 * overflow to +inf come out of the multiplications. NaN stays NaN. */
static inline __attribute__((always_inline)) float df_expf(float x)
{
    float xc = x < -104.0f ? -104.0f : x;         /* e^-104 rounds to 0 */
    xc = xc > 89.0f ? 89.0f : xc;                 /* e^89 overflows to inf */
    const float round_magic = 12582912.0f;        /* 1.5 * 2^23: adding it rounds to an integer */
    float n = DF_MADD(xc, 1.44269504088896341f, round_magic) - round_magic;
    float r = DF_MADD(n, -0.693359375f, xc);
    r = DF_MADD(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = DF_MADD(p, r, 1.3981999507e-3f);
    p = DF_MADD(p, r, 8.3334519073e-3f);
    p = DF_MADD(p, r, 4.1665795894e-2f);
    p = DF_MADD(p, r, 1.6666665459e-1f);
    p = DF_MADD(p, r, 5.0000001201e-1f);
    float y = DF_MADD(p, r * r, r) + 1.0f;
    /* n is an integer in [-150, 128] unless x is NaN (then y is NaN and the
     * scale does not matter): 0 keeps the conversion and shifts defined. */
    int32_t ni = (int32_t)(n == n ? n : 0.0f), half = ni / 2;
    uint32_t b1 = (uint32_t)(half + 127) << 23, b2 = (uint32_t)(ni - half + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return y * s1 * s2;
}

/* erf(x): below |x| = 1, x + x R(x^2) (least-squares fit of erf(x)/x - 1);
 * above, 1 - e^Q(t) with Q a fit of log(erfc(t)) on [1, 4] in t - 2.5 (past
 * 4, erf rounds to 1). Both are computed and one selected, so the function
 * has no branch; the sign is x's. */
static inline __attribute__((always_inline)) float df_erff(float x)
{
    float t = fabsf(x), s = x * x;
    float p = -9.728409658e-06f;
    p = DF_MADD(p, s, 1.128817518e-04f);
    p = DF_MADD(p, s, -8.487267787e-04f);
    p = DF_MADD(p, s, 5.221261499e-03f);
    p = DF_MADD(p, s, -2.686551745e-02f);
    p = DF_MADD(p, s, 1.128378411e-01f);
    p = DF_MADD(p, s, -3.761263859e-01f);
    p = DF_MADD(p, s, 1.283791671e-01f);
    float small = DF_MADD(x, p, x);
    float u = (t < 4.0f ? t : 4.0f) - 2.5f;
    float q = -2.792212469e-07f;
    q = DF_MADD(q, u, -9.834996011e-07f);
    q = DF_MADD(q, u, 9.833034344e-07f);
    q = DF_MADD(q, u, -1.226843613e-05f);
    q = DF_MADD(q, u, 7.849813231e-05f);
    q = DF_MADD(q, u, -4.200892624e-04f);
    q = DF_MADD(q, u, 2.165334852e-03f);
    q = DF_MADD(q, u, -1.085836459e-02f);
    q = DF_MADD(q, u, -9.438938093e-01f);
    q = DF_MADD(q, u, -5.352680748e+00f);
    q = DF_MADD(q, u, -7.806815271e+00f);
    float big = copysignf(1.0f - df_expf(q), x);
    return (t < 1.0f) | (x != x) ? small : big;       /* NaN: small is NaN */
}

/* df_op_def.elementwise of each op: the instructions of a fused chain. */
enum {
    DF_EW_NONE = 0,               /* not fusable */
#define DF_EW(name, CODE, arity, ...) DF_EW_##CODE,
#include "elementwise.def"
    DF_EW_END                     /* one past the last code */
};
_Static_assert(DF_EW_END <= 256, "a df_fused_program stores codes in a byte");

/* float df_ew_<name>(float x) or (float a, float b): the formula. */
#define DF_EW_SCALAR_1(name, ...) static inline float df_ew_##name(float x) { return (__VA_ARGS__); }
#define DF_EW_SCALAR_2(name, ...) static inline float df_ew_##name(float a, float b) { return (__VA_ARGS__); }
#define DF_EW(name, CODE, arity, ...) DF_EW_SCALAR_##arity(name, __VA_ARGS__)
#include "elementwise.def"
#undef DF_EW_SCALAR_1
#undef DF_EW_SCALAR_2

/* 1 or 2 inputs; 0 for DF_EW_NONE and codes outside the table. */
static inline int df_ew_arity(int code)
{
    switch (code) {
#define DF_EW(name, CODE, arity, ...) case DF_EW_##CODE: return arity;
#include "elementwise.def"
    default: return 0;
    }
}
#define DF_EW_IS_BINARY(code) (df_ew_arity(code) == 2)

/* out[i] = code(A[i*sa], B[i*sb]) for i < len, sa and sb 0 (a scalar) or 1:
 * the one loop over each formula, vectorised, that the fused interpreter and
 * the ops' own kernels both run (ops/fused_elementwise.c). */
void df_ew_run(int code, const float *A, int64_t sa, const float *B, int64_t sb, float *out, int64_t len);

#endif
