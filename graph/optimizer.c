/* optimizer.c — SGD (with optional momentum), Adam and RMSprop as graph ops
 * that update variables in place, with optional clipping by global norm and
 * a gradient transform hook (e.g. an all-reduce across processes).
 * State (iteration counter, learning rate, slots) lives in variables, so it
 * persists across traces and can be checkpointed. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "graph.h"
#include "../ops/registry.h"

typedef enum { OPT_SGD, OPT_ADAM, OPT_RMSPROP, OPT_ADAMW } opt_kind;

typedef struct slot { const df_variable *param; df_variable *m, *v; } slot;

/* A variable whose weight decay was set by df_optimizer_set_decay. */
typedef struct decay_choice { const df_variable *param; bool decay; } decay_choice;

struct df_optimizer {
    opt_kind kind;
    float beta1, beta2, epsilon;  /* Adam; RMSprop uses beta1 as rho */
    float momentum;               /* SGD */
    bool nesterov;
    float clipnorm;               /* 0 = no clipping */
    float weight_decay;           /* AdamW */
    decay_choice *decay_choices;
    int n_decay_choices;
    df_gradient_transform transform;
    void *transform_user;
    df_variable *lr;            /* f32 scalar: changing it needs no retrace */
    df_variable *iterations;    /* i32 scalar, incremented once per step */
    slot *slots;
    int n_slots, cap_slots;
};

static const char *kind_name(opt_kind kind)
{
    static const char *names[] = {[OPT_SGD] = "sgd", [OPT_ADAM] = "adam", [OPT_RMSPROP] = "rmsprop",
                                  [OPT_ADAMW] = "adamw"};
    return names[kind];
}

/* Every constructor comes here: a negative or NaN rate would step uphill or
 * fill the weights with NaN without a word. */
static df_optimizer *optimizer_new(opt_kind kind, float lr)
{
    if (!(lr >= 0) || !isfinite(lr)) {
        df_error(DF_ERR_ARG, "%s: learning rate must be finite and >= 0, got %g", kind_name(kind), lr);
        return NULL;
    }
    df_optimizer *o = df_calloc(1, sizeof *o);
    if (!o) {
        df_error(DF_ERR_NOMEM, "optimizer: out of memory");
        return NULL;
    }
    o->kind = kind;
    o->lr = df_variable_new("optimizer/learning_rate", DF_F32, 0, NULL, df_init_constant(lr), NULL);
    o->iterations = df_variable_new("optimizer/iterations", DF_I32, 0, NULL, df_init_zeros(), NULL);
    if (!o->lr || !o->iterations) {
        df_optimizer_free(o);
        df_error(DF_ERR_NOMEM, "optimizer: out of memory");
        return NULL;
    }
    return o;
}

df_optimizer *df_sgd_new(float learning_rate) { return optimizer_new(OPT_SGD, learning_rate); }

df_optimizer *df_sgd_momentum_new(float learning_rate, float momentum, bool nesterov)
{
    if (!(momentum >= 0 && momentum < 1)) {
        df_error(DF_ERR_ARG, "sgd: momentum must be in [0, 1), got %g", momentum);
        return NULL;
    }
    df_optimizer *o = optimizer_new(OPT_SGD, learning_rate);
    if (o) {
        o->momentum = momentum;
        o->nesterov = nesterov;
    }
    return o;
}

df_optimizer *df_rmsprop_new(float learning_rate, float rho, float epsilon)
{
    if (!(rho >= 0 && rho < 1 && epsilon > 0)) {
        df_error(DF_ERR_ARG, "rmsprop: need 0 <= rho < 1 and epsilon > 0 (got %g, %g)", rho, epsilon);
        return NULL;
    }
    df_optimizer *o = optimizer_new(OPT_RMSPROP, learning_rate);
    if (o) {
        o->beta1 = rho;
        o->epsilon = epsilon;
    }
    return o;
}

df_status df_optimizer_set_global_clipnorm(df_optimizer *o, float clipnorm)
{
    if (!o || !(clipnorm >= 0)) return df_error(DF_ERR_ARG, "global clipnorm must be >= 0");
    o->clipnorm = clipnorm;
    return DF_OK;
}

void df_optimizer_set_gradient_transform(df_optimizer *o, df_gradient_transform fn, void *user)
{
    if (!o) return;
    o->transform = fn;
    o->transform_user = user;
}

/* Adam or AdamW. */
static df_optimizer *adam_kind_new(opt_kind kind, float learning_rate, float beta1, float beta2, float epsilon)
{
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && epsilon > 0)) {
        df_error(DF_ERR_ARG, "%s: need 0 <= beta1, beta2 < 1 and epsilon > 0 (got %g, %g, %g)", kind_name(kind),
                 beta1, beta2, epsilon);
        return NULL;
    }
    df_optimizer *o = optimizer_new(kind, learning_rate);
    if (o) {
        o->beta1 = beta1;
        o->beta2 = beta2;
        o->epsilon = epsilon;
    }
    return o;
}

df_optimizer *df_adam_new(float learning_rate, float beta1, float beta2, float epsilon)
{
    return adam_kind_new(OPT_ADAM, learning_rate, beta1, beta2, epsilon);
}

df_optimizer *df_adam_default(void) { return df_adam_new(1e-3f, 0.9f, 0.999f, 1e-7f); }

df_optimizer *df_adamw_new(float learning_rate, float beta1, float beta2, float epsilon, float weight_decay)
{
    if (!(weight_decay >= 0) || !isfinite(weight_decay)) {
        df_error(DF_ERR_ARG, "adamw: weight_decay must be finite and >= 0, got %g", weight_decay);
        return NULL;
    }
    df_optimizer *o = adam_kind_new(OPT_ADAMW, learning_rate, beta1, beta2, epsilon);
    if (o) o->weight_decay = weight_decay;
    return o;
}

df_optimizer *df_adamw_default(void) { return df_adamw_new(1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f); }

df_status df_optimizer_set_decay(df_optimizer *o, const df_variable *v, bool decay)
{
    if (!o || !v) return df_error(DF_ERR_ARG, "df_optimizer_set_decay: null %s", o ? "variable" : "optimizer");
    if (o->kind != OPT_ADAMW)
        return df_error(DF_ERR_ARG, "df_optimizer_set_decay: %s has no weight decay (use df_adamw_new)",
                        df_optimizer_name(o));
    for (int i = 0; i < o->n_decay_choices; i++)
        if (o->decay_choices[i].param == v) {
            o->decay_choices[i].decay = decay;
            return DF_OK;
        }
    decay_choice *grown = df_realloc(o->decay_choices, (size_t)(o->n_decay_choices + 1) * sizeof *grown);
    if (!grown) return df_error(DF_ERR_NOMEM, "optimizer: out of memory");
    o->decay_choices = grown;
    o->decay_choices[o->n_decay_choices++] = (decay_choice){v, decay};
    return DF_OK;
}

/* Whether AdamW decays v: as set, else nanoGPT's rule (matrices and
 * embeddings decay; biases, gains and scalars do not). */
static bool decays(const df_optimizer *o, const df_variable *v)
{
    for (int i = 0; i < o->n_decay_choices; i++)
        if (o->decay_choices[i].param == v) return o->decay_choices[i].decay;
    return v->ndim >= 2;
}

void df_optimizer_free(df_optimizer *o)
{
    if (!o) return;
    for (int i = 0; i < o->n_slots; i++) {
        df_variable_free(o->slots[i].m);
        df_variable_free(o->slots[i].v);
    }
    df_free(o->slots);
    df_free(o->decay_choices);
    df_variable_free(o->lr);
    df_variable_free(o->iterations);
    df_free(o);
}

const char *df_optimizer_name(const df_optimizer *o)
{
    if (!o) return "(null)";
    if (o->kind == OPT_ADAMW) return "adamw";
    return o->kind == OPT_ADAM ? "adam" : o->kind == OPT_RMSPROP ? "rmsprop" : o->momentum > 0 ? "sgd_momentum" : "sgd";
}
float df_optimizer_learning_rate(const df_optimizer *o) { return o ? *(float *)o->lr->data : 0; }
df_status df_optimizer_set_learning_rate(df_optimizer *o, float lr)
{
    if (!o) return df_error(DF_ERR_ARG, "df_optimizer_set_learning_rate: null optimizer");
    if (!(lr >= 0) || !isfinite(lr))
        return df_error(DF_ERR_ARG, "%s: learning rate must be finite and >= 0, got %g", kind_name(o->kind), lr);
    *(float *)o->lr->data = lr;
    return DF_OK;
}
int64_t df_optimizer_iterations(const df_optimizer *o) { return o ? *(int32_t *)o->iterations->data : 0; }

int df_optimizer_state(const df_optimizer *o, df_variable **out, int max)
{
    if (!o) return 0;
    int count = 0;
    df_variable *all[2] = {o->iterations, o->lr};
    for (int i = 0; i < 2; i++, count++)
        if (out && count < max) out[count] = all[i];
    for (int i = 0; i < o->n_slots; i++)
        for (int k = 0; k < 2; k++) {
            df_variable *s = k ? o->slots[i].v : o->slots[i].m;
            if (!s) continue;
            if (out && count < max) out[count] = s;
            count++;
        }
    return count;
}

/* Slot names per kind: Adam "<p>/m" and "<p>/v", SGD with momentum
 * "<p>/momentum", RMSprop "<p>/rms"; plain SGD has none. */
static bool needs_slots(const df_optimizer *o) { return o->kind != OPT_SGD || o->momentum > 0; }

static df_variable *new_slot(const df_variable *param, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s/%s", param->name, suffix);
    return df_variable_new(name, DF_F32, param->ndim, param->shape, df_init_zeros(), NULL);
}

/* The slots of param, created (zeros) on first use. */
static slot *slot_for(df_optimizer *o, const df_variable *param)
{
    for (int i = 0; i < o->n_slots; i++)
        if (o->slots[i].param == param) return &o->slots[i];
    if (o->n_slots == o->cap_slots) {
        int cap = o->cap_slots ? 2 * o->cap_slots : 8;
        slot *grown = df_realloc(o->slots, (size_t)cap * sizeof *grown);
        if (!grown) return NULL;
        o->slots = grown;
        o->cap_slots = cap;
    }
    slot s = {.param = param};
    bool ok;
    if (o->kind == OPT_ADAM || o->kind == OPT_ADAMW) ok = (s.m = new_slot(param, "m")) && (s.v = new_slot(param, "v"));
    else if (o->kind == OPT_RMSPROP) ok = (s.v = new_slot(param, "rms")) != NULL;
    else ok = (s.m = new_slot(param, "momentum")) != NULL;
    if (!ok) {
        df_variable_free(s.m);
        df_variable_free(s.v);
        return NULL;
    }
    o->slots[o->n_slots] = s;
    return &o->slots[o->n_slots++];
}

df_status df_optimizer_create_slots(df_optimizer *o, int n, df_variable *const *vars)
{
    if (!o || (n > 0 && !vars)) return df_error(DF_ERR_ARG, "df_optimizer_create_slots: null argument");
    if (!needs_slots(o)) return DF_OK;
    for (int i = 0; i < n; i++) {
        if (!vars[i]) return df_error(DF_ERR_ARG, "df_optimizer_create_slots: variable %d is NULL", i);
        if (vars[i]->dtype != DF_F32) continue;      /* a counter (a Dropout's): no optimizer updates it */
        if (!slot_for(o, vars[i]))
            return df_error(DF_ERR_NOMEM, "optimizer: out of memory creating slots for '%s'", vars[i]->name);
    }
    return DF_OK;
}

/* The gradients as the update sees them: transformed (e.g. all-reduced),
 * then scaled together when their global norm exceeds clipnorm. */
static df_status prepare_gradients(df_graph *g, df_optimizer *o, int n, df_node *const *grads, df_node **out)
{
    for (int i = 0; i < n; i++) {
        if (!grads[i]) return df_graph_fail(g, DF_ERR_ARG, "df_optimizer_apply: gradient %d is NULL", i);
        out[i] = o->transform ? o->transform(g, grads[i], o->transform_user) : grads[i];
        if (!out[i]) return g->status ? g->status : df_graph_fail(g, DF_ERR_STATE, "gradient transform returned NULL");
    }
    if (o->clipnorm > 0 && n > 0) {
        df_node *scale = df_global_norm_scale(g, n, out, o->clipnorm);
        for (int i = 0; i < n; i++) out[i] = df_mul(g, out[i], scale);
    }
    return g->status;
}

static df_node *update(df_graph *g, df_optimizer *o, df_variable *w, df_node *grad, df_node *lr, df_node *step)
{
    if (!needs_slots(o)) return df_apply_sgd(g, w, grad, lr);
    slot *s = slot_for(o, w);
    if (!s) {
        df_graph_fail(g, DF_ERR_NOMEM, "optimizer: out of memory creating slots for '%s'", w->name);
        return NULL;
    }
    if (o->kind == OPT_ADAMW)
        return df_apply_adamw(g, w, grad, lr, step, df_var(g, s->m), df_var(g, s->v), o->beta1, o->beta2, o->epsilon,
                              decays(o, w) ? o->weight_decay : 0.0f);
    if (o->kind == OPT_ADAM)
        return df_apply_adam(g, w, grad, lr, step, df_var(g, s->m), df_var(g, s->v), o->beta1, o->beta2, o->epsilon);
    if (o->kind == OPT_RMSPROP) return df_apply_rmsprop(g, w, grad, lr, df_var(g, s->v), o->beta1, o->epsilon);
    return df_apply_momentum(g, w, grad, lr, df_var(g, s->m), o->momentum, o->nesterov);
}

df_status df_optimizer_apply(df_graph *g, df_optimizer *o, int n, df_variable *const *vars,
                             df_node *const *grads)
{
    if (!g) return df_error(DF_ERR_ARG, "df_optimizer_apply: null graph");
    if (g->status != DF_OK) return df_error(g->status, "%s", g->error);
    if (!o || n < 0 || (n > 0 && (!vars || !grads)))
        return df_graph_fail(g, DF_ERR_ARG, "df_optimizer_apply: null optimizer, variables or gradients");
    df_node **ready = df_graph_alloc(g, ((size_t)n + 1) * sizeof *ready);
    if (!ready || prepare_gradients(g, o, n, grads, ready) != DF_OK) return g->status;
    int32_t one = 1;
    df_tensor one_t = df_tensor_make(DF_I32, &one, 0, NULL);
    /* The counter counts steps for every kind; Adam's updates read it after the increment. */
    df_node *step = df_assign_add(g, o->iterations, df_constant(g, &one_t));
    df_node *lr = df_var(g, o->lr);
    for (int i = 0; i < n && g->status == DF_OK; i++) {
        if (!vars[i]) return df_graph_fail(g, DF_ERR_ARG, "df_optimizer_apply: variable %d is NULL", i);
        update(g, o, vars[i], ready[i], lr, step);
    }
    return g->status;
}
