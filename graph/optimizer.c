/* optimizer.c — SGD and Adam as graph ops that update variables in place.
 * State (iteration counter, learning rate, slots) lives in variables, so it
 * persists across traces and can be checkpointed. */
#include <stdio.h>
#include <string.h>
#include "graph.h"
#include "../ops/registry.h"

typedef enum { OPT_SGD, OPT_ADAM } opt_kind;

typedef struct slot { const df_variable *param; df_variable *m, *v; } slot;

struct df_optimizer {
    opt_kind kind;
    float beta1, beta2, epsilon;
    df_variable *lr;            /* f32 scalar: changing it needs no retrace */
    df_variable *iterations;    /* i32 scalar, incremented once per step */
    slot *slots;
    int n_slots, cap_slots;
};

static df_optimizer *optimizer_new(opt_kind kind, float lr)
{
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

df_optimizer *df_adam_new(float learning_rate, float beta1, float beta2, float epsilon)
{
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && epsilon > 0)) {
        df_error(DF_ERR_ARG, "adam: need 0 <= beta1, beta2 < 1 and epsilon > 0 (got %g, %g, %g)",
                 beta1, beta2, epsilon);
        return NULL;
    }
    df_optimizer *o = optimizer_new(OPT_ADAM, learning_rate);
    if (o) {
        o->beta1 = beta1;
        o->beta2 = beta2;
        o->epsilon = epsilon;
    }
    return o;
}

df_optimizer *df_adam_default(void) { return df_adam_new(1e-3f, 0.9f, 0.999f, 1e-7f); }

void df_optimizer_free(df_optimizer *o)
{
    if (!o) return;
    for (int i = 0; i < o->n_slots; i++) {
        df_variable_free(o->slots[i].m);
        df_variable_free(o->slots[i].v);
    }
    df_free(o->slots);
    df_variable_free(o->lr);
    df_variable_free(o->iterations);
    df_free(o);
}

const char *df_optimizer_name(const df_optimizer *o) { return !o ? "(null)" : o->kind == OPT_ADAM ? "adam" : "sgd"; }
float df_optimizer_learning_rate(const df_optimizer *o) { return o ? *(float *)o->lr->data : 0; }
void df_optimizer_set_learning_rate(df_optimizer *o, float lr) { if (o) *(float *)o->lr->data = lr; }
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

/* The Adam slots of param, created (zeros, named "<param>/m", "<param>/v") on first use. */
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
    char name[256];
    slot s = {.param = param};
    snprintf(name, sizeof name, "%s/m", param->name);
    s.m = df_variable_new(name, DF_F32, param->ndim, param->shape, df_init_zeros(), NULL);
    snprintf(name, sizeof name, "%s/v", param->name);
    s.v = df_variable_new(name, DF_F32, param->ndim, param->shape, df_init_zeros(), NULL);
    if (!s.m || !s.v) {
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
    if (o->kind == OPT_SGD) return DF_OK;
    for (int i = 0; i < n; i++) {
        if (!vars[i]) return df_error(DF_ERR_ARG, "df_optimizer_create_slots: variable %d is NULL", i);
        if (!slot_for(o, vars[i]))
            return df_error(DF_ERR_NOMEM, "optimizer: out of memory creating slots for '%s'", vars[i]->name);
    }
    return DF_OK;
}

df_status df_optimizer_apply(df_graph *g, df_optimizer *o, int n, df_variable *const *vars,
                             df_node *const *grads)
{
    if (!g) return df_error(DF_ERR_ARG, "df_optimizer_apply: null graph");
    if (g->status != DF_OK) return df_error(g->status, "%s", g->error);
    if (!o || (n > 0 && (!vars || !grads)))
        return df_graph_fail(g, DF_ERR_ARG, "df_optimizer_apply: null optimizer, variables or gradients");
    int32_t one = 1;
    df_tensor one_t = df_tensor_make(DF_I32, &one, 0, NULL);
    /* The counter counts steps for SGD too; Adam's updates read it after the increment. */
    df_node *step = df_assign_add(g, o->iterations, df_constant(g, &one_t));
    df_node *lr = df_var(g, o->lr);
    for (int i = 0; i < n && g->status == DF_OK; i++) {
        if (!vars[i] || !grads[i])
            return df_graph_fail(g, DF_ERR_ARG, "df_optimizer_apply: variable or gradient %d is NULL", i);
        if (o->kind == OPT_SGD) {
            df_apply_sgd(g, vars[i], grads[i], lr);
            continue;
        }
        slot *s = slot_for(o, vars[i]);
        if (!s) return df_graph_fail(g, DF_ERR_NOMEM, "optimizer: out of memory creating slots for '%s'", vars[i]->name);
        df_apply_adam(g, vars[i], grads[i], lr, step, df_var(g, s->m), df_var(g, s->v), o->beta1, o->beta2,
                      o->epsilon);
    }
    return g->status;
}
