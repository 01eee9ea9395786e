/* apply_adamw.c — one fused AdamW step, in place, as torch.optim.AdamW
 * computes it (decoupled weight decay, then Adam with bias correction):
 *   w *= 1 - lr wd;  m += (1-b1) (g - m);  v = b2 v + (1-b2) g^2
 *   w -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * with t = iterations (already incremented). Inputs: grad, lr (), t (i32
 * ()), m, v (slot variables' reads). wd is 0 for a variable without decay. */
/* sqrtf without errno (its argument, v, is never negative) so that the update
 * vectorises; no multiply-add contraction, so every clone below rounds as
 * the scalar code does. */
#pragma GCC optimize ("no-math-errno", "fp-contract=off")
#include <math.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    df_update_attrs update;
    float beta1, beta2, epsilon, weight_decay;
} apply_adamw_attrs;
DF_ATTRS_END

typedef struct {
    float b1, b2, eps, decay, step_size, bc2_sqrt;
} adamw_step;

/* Elements [0, len) of one variable's update; cloned per instruction set. */
DF_TARGET_CLONES
static void adamw_update(const adamw_step *k, float *w, float *m, float *v,
                         const float *grad, int64_t len)
{
    const float b1 = k->b1, b2 = k->b2, eps = k->eps, decay = k->decay, step_size = k->step_size,
                bc2_sqrt = k->bc2_sqrt;
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        float gi = grad[i];
        w[i] *= decay;
        m[i] += (1.0f - b1) * (gi - m[i]);
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
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
