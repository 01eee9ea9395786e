/* test_optim.c — SGD with momentum (plain and Nesterov), RMSprop, clipping by
 * global norm and the gradient transform hook, each against updates computed
 * by hand in double with Keras' formulas. */
#include "helpers.h"

/* Runs steps of the optimizer with gradient c and checks w against expected(). */
typedef void (*reference_step)(double *w, double *state, const float *c, int t);

static void check_steps(df_optimizer *opt, reference_step reference, int steps)
{
    linear_model m = {.w = df_variable_new("w", DF_F32, 1, SHAPE(3), df_init_constant(1.0f), NULL), .opt = opt};
    df_function *f = df_function_new("step", linear_model_step, &m);
    float c[3] = {0.5f, -1.0f, 2.0f};
    df_tensor in = F32(c, 3), loss;
    double w[3] = {1, 1, 1}, state[6] = {0};
    for (int t = 1; t <= steps; t++) {
        cr_assert_eq(df_function_call(f, &in, 1, &loss, 1), DF_OK, "%s", df_last_error());
        reference(w, state, c, t);
        const float *got = df_variable_tensor(m.w).data;
        for (int i = 0; i < 3; i++) cr_expect(fabs(got[i] - w[i]) < 1e-6, "step %d w[%d]: %.8f vs %.8f", t, i, got[i], w[i]);
    }
    cr_expect_eq(df_optimizer_iterations(opt), steps);
    df_function_free(f);
    df_optimizer_free(opt);
    df_variable_free(m.w);
}

static void momentum_reference(double *w, double *v, const float *c, int t)
{
    for (int i = 0; i < 3; i++) {
        v[i] = 0.9 * v[i] - 0.1 * c[i];
        w[i] += v[i];
    }
}

static void nesterov_reference(double *w, double *v, const float *c, int t)
{
    for (int i = 0; i < 3; i++) {
        v[i] = 0.9 * v[i] - 0.1 * c[i];
        w[i] += 0.9 * v[i] - 0.1 * c[i];
    }
}

static void rmsprop_reference(double *w, double *rms, const float *c, int t)
{
    for (int i = 0; i < 3; i++) {
        rms[i] = 0.9 * rms[i] + 0.1 * c[i] * c[i];
        w[i] -= 1e-3 * c[i] / (sqrt(rms[i]) + 1e-7);
    }
}

Test(optimizers, sgd_momentum_matches_keras)
{
    check_steps(df_sgd_momentum_new(0.1f, 0.9f, false), momentum_reference, 4);
}

Test(optimizers, sgd_nesterov_matches_keras)
{
    check_steps(df_sgd_momentum_new(0.1f, 0.9f, true), nesterov_reference, 4);
}

Test(optimizers, rmsprop_matches_keras)
{
    check_steps(df_rmsprop_new(1e-3f, 0.9f, 1e-7f), rmsprop_reference, 4);
}

/* |c| = sqrt(0.25 + 1 + 4) = 2.2913; with clipnorm 1 the step uses c / 2.2913. */
static void clipped_sgd_reference(double *w, double *unused, const float *c, int t)
{
    double norm = sqrt(0.25 + 1.0 + 4.0);
    for (int i = 0; i < 3; i++) w[i] -= 0.1 * c[i] / norm;
}

static void unclipped_sgd_reference(double *w, double *unused, const float *c, int t)
{
    for (int i = 0; i < 3; i++) w[i] -= 0.1 * c[i];
}

Test(optimizers, global_clipnorm_scales_only_large_gradients)
{
    df_optimizer *clipped = df_sgd_new(0.1f);
    cr_assert_eq(df_optimizer_set_global_clipnorm(clipped, 1.0f), DF_OK);
    check_steps(clipped, clipped_sgd_reference, 2);
    df_optimizer *loose = df_sgd_new(0.1f);
    cr_assert_eq(df_optimizer_set_global_clipnorm(loose, 10.0f), DF_OK);  /* norm 2.29 < 10: untouched */
    check_steps(loose, unclipped_sgd_reference, 2);
    cr_expect_eq(df_optimizer_set_global_clipnorm(loose, -1.0f), DF_ERR_ARG);
}

static df_node *halve(df_graph *g, df_node *grad, void *user)
{
    (*(int *)user)++;
    return df_scale(g, grad, 0.5f);
}

static void halved_sgd_reference(double *w, double *unused, const float *c, int t)
{
    for (int i = 0; i < 3; i++) w[i] -= 0.1 * 0.5 * c[i];
}

Test(optimizers, gradient_transform_sees_every_gradient)
{
    int calls = 0;
    df_optimizer *opt = df_sgd_new(0.1f);
    df_optimizer_set_gradient_transform(opt, halve, &calls);
    check_steps(opt, halved_sgd_reference, 3);
    cr_expect_eq(calls, 1, "one gradient, one trace");
}

Test(optimizers, slot_names_per_kind)
{
    df_variable *w = df_variable_new("w", DF_F32, 1, SHAPE(2), df_init_zeros(), NULL);
    struct { df_optimizer *opt; const char *name; int count; const char *slot; } cases[] = {
        {df_sgd_new(0.1f), "sgd", 2, NULL},
        {df_sgd_momentum_new(0.1f, 0.9f, false), "sgd_momentum", 3, "w/momentum"},
        {df_rmsprop_new(1e-3f, 0.9f, 1e-7f), "rmsprop", 3, "w/rms"},
        {df_adam_default(), "adam", 4, "w/m"},
    };
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(df_optimizer_create_slots(cases[k].opt, 1, &w), DF_OK);
        df_variable *state[8];
        int n = df_optimizer_state(cases[k].opt, state, 8);
        cr_expect_str_eq(df_optimizer_name(cases[k].opt), cases[k].name);
        cr_expect_eq(n, cases[k].count, "%s: %d state variables", cases[k].name, n);
        if (cases[k].slot) cr_expect_str_eq(df_variable_name(state[2]), cases[k].slot);
        df_optimizer_free(cases[k].opt);
    }
    cr_expect_null(df_sgd_momentum_new(0.1f, 1.5f, false));
    cr_expect_null(df_rmsprop_new(0.1f, 0.9f, 0.0f));
    df_variable_free(w);
}

/* ------------------------------------------------------------------ AdamW */

/* loss = sum(k * ck) + sum(b * cb): a (2,2) kernel decays, a (2) bias does
 * not; with override, the kernel's decay is turned off and the bias's on. */
typedef struct two { df_variable *vars[2]; df_optimizer *opt; } two;

static df_status build_two(df_graph *g, df_node **in, void *user)
{
    two *m = user;
    df_tape *t = df_tape_begin(g);
    df_node *loss = df_add(g, df_sum(g, df_mul(g, df_var(g, m->vars[0]), in[0]), NULL, 0, false),
                           df_sum(g, df_mul(g, df_var(g, m->vars[1]), in[1]), NULL, 0, false));
    df_tape_end(t);
    df_node *grads[2];
    if (df_tape_gradient(t, loss, 2, m->vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 2, m->vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

/* torch.optim.AdamW's update, in double: decay, then Adam with bias correction. */
static void adamw_reference(double *w, double *m, double *v, double g, int t, double lr, double wd)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    *w *= 1 - lr * wd;
    *m = b1 * *m + (1 - b1) * g;
    *v = b2 * *v + (1 - b2) * g * g;
    double denom = sqrt(*v) / sqrt(1 - pow(b2, t)) + eps;
    *w -= lr / (1 - pow(b1, t)) * *m / denom;
}

static void check_adamw(bool override)
{
    two m = {{df_variable_new("dense/kernel", DF_F32, 2, SHAPE(2, 2), df_init_constant(1.0f), NULL),
              df_variable_new("dense/bias", DF_F32, 1, SHAPE(2), df_init_constant(-0.5f), NULL)},
             df_adamw_new(0.01f, 0.9f, 0.999f, 1e-8f, 0.1f)};
    if (override) {
        cr_assert_eq(df_optimizer_set_decay(m.opt, m.vars[0], false), DF_OK);
        cr_assert_eq(df_optimizer_set_decay(m.opt, m.vars[1], true), DF_OK);
    }
    df_function *f = df_function_new("adamw_step", build_two, &m);
    float ck[4] = {0.5f, -1, 2, 0.25f}, cb[2] = {-0.75f, 1.5f};
    df_tensor in[2] = {F32(ck, 2, 2), F32(cb, 2)}, loss;
    double w[6] = {1, 1, 1, 1, -0.5, -0.5}, mm[6] = {0}, vv[6] = {0};
    for (int t = 1; t <= 4; t++) {
        cr_assert_eq(df_function_call(f, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
        for (int i = 0; i < 6; i++) {
            bool kernel = i < 4, decayed = override ? !kernel : kernel;
            adamw_reference(&w[i], &mm[i], &vv[i], kernel ? ck[i] : cb[i - 4], t, 0.01, decayed ? 0.1 : 0);
        }
        const float *k = df_variable_tensor(m.vars[0]).data, *b = df_variable_tensor(m.vars[1]).data;
        for (int i = 0; i < 6; i++) {
            float got = i < 4 ? k[i] : b[i - 4];
            cr_expect(fabs(got - w[i]) < 2e-6, "step %d entry %d: %.8f vs %.8f", t, i, got, w[i]);
        }
    }
    cr_expect_str_eq(df_optimizer_name(m.opt), "adamw");
    df_function_free(f);
    df_optimizer_free(m.opt);
    df_variable_free(m.vars[0]);
    df_variable_free(m.vars[1]);
}

Test(optimizers, adamw_matches_torch_and_decays_only_matrices) { check_adamw(false); }
Test(optimizers, adamw_decay_is_chosen_per_variable) { check_adamw(true); }

/* df_optimizer_config's rule ("finite, >= 0") holds for the constructors too. */
Test(optimizers, constructors_refuse_a_negative_or_non_finite_learning_rate)
{
    const float bad[] = {-1.0f, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        float lr = bad[i];
        df_optimizer *made[] = {df_sgd_new(lr), df_sgd_momentum_new(lr, 0.9f, false), df_rmsprop_new(lr, 0.9f, 1e-7f),
                                df_adam_new(lr, 0.9f, 0.999f, 1e-7f), df_adamw_new(lr, 0.9f, 0.999f, 1e-8f, 0.01f)};
        const char *names[] = {"sgd", "sgd", "rmsprop", "adam", "adamw"};
        for (int k = 0; k < 5; k++) {
            cr_expect_null(made[k], "%s took learning rate %g", names[k], lr);
            df_optimizer_free(made[k]);
        }
        cr_expect(strstr(df_last_error(), "adamw: learning rate must be finite and >= 0"), "%s", df_last_error());
    }
    df_optimizer *zero = df_sgd_new(0.0f);
    cr_expect_not_null(zero, "a rate of 0 is allowed: %s", df_last_error());
    df_optimizer_free(zero);
}

Test(optimizers, adamw_arguments)
{
    cr_expect_null(df_adamw_new(1e-3f, 0.9f, 0.999f, 1e-8f, -1.0f));
    cr_expect(strstr(df_last_error(), "weight_decay"), "%s", df_last_error());
    df_optimizer *adam = df_adam_default();
    df_variable *w = df_variable_new("w", DF_F32, 1, SHAPE(2), df_init_zeros(), NULL);
    cr_expect_eq(df_optimizer_set_decay(adam, w, true), DF_ERR_ARG, "Adam has no weight decay");
    df_optimizer *adamw = df_adamw_default();
    cr_expect_eq(df_optimizer_set_decay(adamw, NULL, true), DF_ERR_ARG);
    cr_expect_eq(df_optimizer_set_decay(adamw, w, false), DF_OK);
    cr_expect_eq(df_optimizer_create_slots(adamw, 1, &w), DF_OK);
    df_variable *state[8];
    cr_expect_eq(df_optimizer_state(adamw, state, 8), 4);
    cr_expect_str_eq(df_variable_name(state[3]), "w/v");
    df_optimizer_free(adam);
    df_optimizer_free(adamw);
    df_variable_free(w);
}
