/* cell_math.h — vectorisable sigmoid and tanh for the fused recurrent cells
 * (ops/gru*.c, ops/rnn*.c): only arithmetic and bit operations, so `omp simd`
 * loops vectorise them (libm's expf/tanhf are scalar calls that would cost
 * about as much as a step's recurrent GEMM). Same algorithms as ops/lstm.c:
 * exp by a Cody-Waite range reduction and a degree-6 polynomial (relative
 * error < 3e-7), sigmoid absolute error < 1.1e-7, tanh absolute error < 1e-7. */
#ifndef DF_OPS_CELL_MATH_H
#define DF_OPS_CELL_MATH_H

#include <stdint.h>
#include <string.h>

#define CELL_INLINE static inline __attribute__((always_inline))

CELL_INLINE float cell_f32(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

CELL_INLINE int32_t cell_i32(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* c ? a : b through a bit mask (GCC does not if-convert float selects under
 * the default -ftrapping-math, which would keep the loops scalar). */
CELL_INLINE float cell_select(int c, float a, float b)
{
    int32_t m = -(int32_t)c;
    return cell_f32((m & cell_i32(a)) | (~m & cell_i32(b)));
}

/* exp(x), x clamped to [-87, 88] (NaN stays NaN): x = k ln2 + r with |r| <= ln2/2 (Cody-Waite
 * split of ln2), exp(r) by its degree-6 Taylor polynomial, 2^k through the
 * exponent bits; relative error < 3e-7. Only arithmetic and bit operations,
 * so `omp simd` loops vectorize it (libm's expf/tanhf are scalar calls that
 * would cost about as much as the recurrent GEMM). */
CELL_INLINE float cell_exp(float x)
{
    x = cell_select(x < -87.0f, -87.0f, x);
    x = cell_select(x > 88.0f, 88.0f, x);
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    k = cell_select(k != k, 0.0f, k);      /* NaN in: p is NaN already; keep the conversion defined */
    return p * cell_f32(((int32_t)k + 127) << 23);
}

/* Absolute error < 1.1e-7 against the exact sigmoid. */
CELL_INLINE float cell_sigmoid(float x) { return 1.0f / (1.0f + cell_exp(-x)); }

/* tanh: Cephes' odd polynomial for |x| < 0.625, else 1 - 2/(exp(2|x|)+1),
 * sign restored from x; absolute error < 1e-7, relative < 1.4e-7. */
CELL_INLINE float cell_tanh(float x)
{
    int32_t sign = cell_i32(x) & (int32_t)0x80000000;
    float a = cell_f32(cell_i32(x) & 0x7fffffff), z = a * a;
    float small = a + a * z * ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                                 1.33314422036e-1f) * z - 3.33332819422e-1f);
    float big = 1.0f - 2.0f / (cell_exp(2.0f * a) + 1.0f);
    return cell_f32(cell_i32(cell_select(a < 0.625f, small, big)) | sign);
}

/* Each element costs a few exp's, so elementwise passes fork earlier than
 * DF_PAR_MIN: batch rows run in parallel when B*H reaches this. */
#define CELL_PAR_MIN 4096

#endif
