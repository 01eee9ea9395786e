/* apply_adamw.c — one fused AdamW step, in place, as torch.optim.AdamW
 * computes it (decoupled weight decay, then Adam with bias correction):
 *   w *= 1 - lr wd;  m += (1-b1) (g - m);  v = b2 v + (1-b2) g^2
 *   w -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * with t = iterations (already incremented). Inputs: grad, lr (), t (i32
 * ()), m, v (slot variables' reads). wd is 0 for a variable without decay. */
/* No multiply-add contraction, so the vector copy below rounds as the
 * scalar code does. */
#pragma GCC optimize ("fp-contract=off")
#include <math.h>
#include "common.h"
#include "isa_kernels.h"

DF_ATTRS_BEGIN
typedef struct {
    df_update_attrs update;
    float beta1, beta2, epsilon, weight_decay;
} apply_adamw_attrs;
DF_ATTRS_END


/* Elements [0, len) of one variable's update. The compiler does not
 * vectorise this loop (its sqrtf keeps errno), hence the copy below. */
void df_adamw_update_default(const adamw_step *k, float *w, float *m, float *v, const float *grad, int64_t len)
{
    const float b1 = k->b1, b2 = k->b2, eps = k->eps, decay = k->decay, step_size = k->step_size,
                bc2_sqrt = k->bc2_sqrt;
    for (int64_t i = 0; i < len; i++) {
        float gi = grad[i];
        w[i] *= decay;
        m[i] += (1.0f - b1) * (gi - m[i]);
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

#if DF_ISA_HAVE_CLONES
#include <immintrin.h>
/* df_adamw_update_default 16 elements at a time, the same IEEE operations
 * in the same order (a vector square root rounds as sqrtf does): the same
 * bits. The last partial vector is masked. */
__attribute__((target("avx512f"))) void df_adamw_update_avx512f(const adamw_step *k, float *w, float *m, float *v,
                                                                const float *grad, int64_t len)
{
    const __m512 b2 = _mm512_set1_ps(k->b2), eps = _mm512_set1_ps(k->eps),
                 decay = _mm512_set1_ps(k->decay), step_size = _mm512_set1_ps(k->step_size),
                 bc2_sqrt = _mm512_set1_ps(k->bc2_sqrt), c1 = _mm512_set1_ps(1.0f - k->b1),
                 c2 = _mm512_set1_ps(1.0f - k->b2);
    for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 mk = len - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(mk, grad + i), mi = _mm512_maskz_loadu_ps(mk, m + i);
        const __m512 wd = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, w + i), decay);
        const __m512 m1 = _mm512_add_ps(mi, _mm512_mul_ps(c1, _mm512_sub_ps(g, mi)));
        const __m512 v1 =
            _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(mk, v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, g), g));
        const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v1), bc2_sqrt), eps);
        _mm512_mask_storeu_ps(m + i, mk, m1);
        _mm512_mask_storeu_ps(v + i, mk, v1);
        _mm512_mask_storeu_ps(w + i, mk, _mm512_sub_ps(wd, _mm512_div_ps(_mm512_mul_ps(step_size, m1), denom)));
    }
}
#endif

static void adamw_update(const adamw_step *k, float *w, float *m, float *v, const float *grad, int64_t len)
{
#if DF_ISA_HAVE_CLONES
    if (__builtin_cpu_supports("avx512f")) {
        df_adamw_update_avx512f(k, w, m, v, grad, len);
        return;
    }
#endif
    df_adamw_update_default(k, w, m, v, grad, len);
}

#define ADAMW_CHUNK 4096

// grad, m, v (w's shape), lr (), t () -> w, m, v storage
static df_status apply_adamw_forward(df_node *n)
{
    float *w = n->data, *m = DF_F32P(n->in[3]), *v = DF_F32P(n->in[4]);
    const float *grad = DF_F32P(n->in[0]);
    const apply_adamw_attrs *a = DF_ATTRS(n, apply_adamw_attrs);
    float lr = DF_F32P(n->in[1])[0];
    double t = (double)DF_I32P(n->in[2])[0];
    adamw_step k = {.b1 = a->beta1, .b2 = a->beta2, .eps = a->epsilon, .decay = 1.0f - lr * a->weight_decay,
                    .step_size = (float)(lr / (1.0 - pow(a->beta1, t))),
                    .bc2_sqrt = (float)sqrt(1.0 - pow(a->beta2, t))};
    int64_t N = n->numel, chunks = (N + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i0 = c * ADAMW_CHUNK, len = N - i0 < ADAMW_CHUNK ? N - i0 : ADAMW_CHUNK;
        adamw_update(&k, w + i0, m + i0, v + i0, grad + i0, len);
    }
    return DF_OK;
}

/* The decay (1 FLOP), m (3), v (4), w -= step m / (sqrt(v) / bc2 + eps) (6):
 * 14 per element; g read, m, v and w read and written. */
static void apply_adamw_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 14.0 * (double)n->numel, .bytes = 7.0 * 4 * (double)n->numel};
}

static df_status apply_adamw_infer(df_node *n) { return df_infer_optimizer_update(n, 3); }

const df_op_def df_op_apply_adamw = {
    .name = "apply_adamw", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = apply_adamw_infer, .forward = apply_adamw_forward, .attrs_size = sizeof(apply_adamw_attrs),
    .no_gradcheck = "optimizer update, tested in tests/test_optim.c",
    .min_inputs = 5, .max_inputs = 5, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = apply_adamw_cost,
};

df_node *df_apply_adamw(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *t, df_node *m,
                        df_node *v, float beta1, float beta2, float eps, float weight_decay)
{
    df_node *in[5] = {grad, lr, t, m, v};
    apply_adamw_attrs a = {.update.var = w, .beta1 = beta1, .beta2 = beta2, .epsilon = eps, .weight_decay = weight_decay};
    return df_variable_update_make(g, &df_op_apply_adamw, 5, in, &a);
}
