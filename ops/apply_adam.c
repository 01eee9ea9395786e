/* apply_adam.c — one fused Adam step, in place, as Keras computes it:
 *   t = iterations (already incremented), lr_t = lr sqrt(1-b2^t) / (1-b1^t)
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w -= lr_t m / (sqrt(v) + eps)
 * Inputs: grad, lr (), iterations (i32 ()), m, v (slot variables' reads). */
/* No multiply-add contraction: the vectorised update below must round as
 * the scalar one does. */
#pragma GCC optimize ("fp-contract=off")
#include <math.h>
#include <omp.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    df_update_attrs update;
    float beta1, beta2, epsilon;
    uint32_t unused;              /* 0: no padding */
} apply_adam_attrs;
DF_ATTRS_END

typedef struct adam_step { float b1, b2, eps, lr_t; } adam_step;

/* Elements [i0, i1) of one variable's update. */
static void adam_update(const adam_step *k, float *w, float *m, float *v, const float *grad, int64_t i0, int64_t i1)
{
    const float b1 = k->b1, b2 = k->b2, eps = k->eps, lr_t = k->lr_t;
    for (int64_t i = i0; i < i1; i++) {
        float gi = grad[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ADAM_HAVE_AVX512 1
/* adam_update 16 elements at a time, the same operations in the same
 * order (IEEE multiply, add, divide and square root, not contracted: the
 * same bits); the compiler does not vectorise the scalar loop, whose sqrtf
 * must keep errno. */
__attribute__((target("avx512f"))) static void adam_update_avx512(const adam_step *k, float *w, float *m, float *v,
                                                                  const float *grad, int64_t i0, int64_t i1)
{
    const __m512 b1 = _mm512_set1_ps(k->b1), b2 = _mm512_set1_ps(k->b2), eps = _mm512_set1_ps(k->eps),
                 lr_t = _mm512_set1_ps(k->lr_t), c1 = _mm512_set1_ps(1.0f - k->b1), c2 = _mm512_set1_ps(1.0f - k->b2);
    for (int64_t i = i0; i < i1; i += 16) {
        const __mmask16 mk = i1 - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (i1 - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(mk, grad + i);
        const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_maskz_loadu_ps(mk, m + i)), _mm512_mul_ps(c1, g));
        const __m512 vi =
            _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(mk, v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
        const __m512 step = _mm512_div_ps(_mm512_mul_ps(lr_t, mi), _mm512_add_ps(_mm512_sqrt_ps(vi), eps));
        _mm512_mask_storeu_ps(m + i, mk, mi);
        _mm512_mask_storeu_ps(v + i, mk, vi);
        _mm512_mask_storeu_ps(w + i, mk, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, w + i), step));
    }
}
#endif

static void adam_update_best(const adam_step *k, float *w, float *m, float *v, const float *grad, int64_t i0,
                             int64_t i1)
{
#ifdef ADAM_HAVE_AVX512
    if (__builtin_cpu_supports("avx512f")) {
        adam_update_avx512(k, w, m, v, grad, i0, i1);
        return;
    }
#endif
    adam_update(k, w, m, v, grad, i0, i1);
}

// grad, m, v (w's shape), lr (), t () -> w, m, v storage
static df_status apply_adam_forward(df_node *n)
{
    float *w = n->data, *m = DF_F32P(n->in[3]), *v = DF_F32P(n->in[4]);
    const float *grad = DF_F32P(n->in[0]);
    const apply_adam_attrs *a = DF_ATTRS(n, apply_adam_attrs);
    double t = (double)DF_I32P(n->in[2])[0];
    const adam_step k = {a->beta1, a->beta2, a->epsilon,
                         (float)(DF_F32P(n->in[1])[0] * sqrt(1.0 - pow(a->beta2, t)) / (1.0 - pow(a->beta1, t)))};
    const int64_t N = n->numel;
#pragma omp parallel if (N > DF_PAR_MIN)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        adam_update_best(&k, w, m, v, grad, N * tid / nth, N * (tid + 1) / nth);
    }
    return DF_OK;
}

/* m (3 FLOPs), v (4), w -= lr_t m / (sqrt(v) + eps) (5): 12 per element; g
 * read, m, v and w read and written. */
static void apply_adam_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 12.0 * (double)n->numel, .bytes = 7.0 * 4 * (double)n->numel};
}

static df_status apply_adam_infer(df_node *n) { return df_infer_optimizer_update(n, 3); }

const df_op_def df_op_apply_adam = {
    .name = "apply_adam", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = apply_adam_infer, .forward = apply_adam_forward, .attrs_size = sizeof(apply_adam_attrs),
    .no_gradcheck = "optimizer update, tested in tests/test_graph.c and tests/test_optim.c",
    .min_inputs = 5, .max_inputs = 5, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = apply_adam_cost,
};

df_node *df_apply_adam(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *t,
                       df_node *m, df_node *v, float beta1, float beta2, float eps)
{
    df_node *in[5] = {grad, lr, t, m, v};
    apply_adam_attrs a = {.update.var = w, .beta1 = beta1, .beta2 = beta2, .epsilon = eps};
    return df_variable_update_make(g, &df_op_apply_adam, 5, in, &a);
}
