/* test_errors.c — every user mistake returns a status and a message; nothing
 * aborts. Includes simulated out-of-memory at every allocation. */
#include "helpers.h"
#include "../src/base.h"
#include "../ops/registry.h"

#define EXPECT_MSG(haystack, needle) \
    cr_expect(strstr((haystack), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (haystack), (needle))

Test(errors, matmul_inner_dims_name_op_node_and_shapes)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 4, 3), *b = PH(g, 5, 2);
    cr_expect_null(df_matmul(g, a, b, false, false));
    cr_expect_eq(df_graph_status(g), DF_ERR_SHAPE);
    const char *msg = df_graph_error(g);
    EXPECT_MSG(msg, "matmul");
    EXPECT_MSG(msg, "node 2");
    EXPECT_MSG(msg, "(4,3)");
    EXPECT_MSG(msg, "(5,2)");
    cr_expect_str_eq(df_last_error(), msg);
    df_graph_free(g);
}

Test(errors, first_error_is_sticky_and_later_constructors_return_null)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 2, 3), *b = PH(g, 4);
    cr_expect_null(df_add(g, a, b));
    char first[512];
    snprintf(first, sizeof first, "%s", df_graph_error(g));
    EXPECT_MSG(first, "add");
    EXPECT_MSG(first, "cannot broadcast");
    cr_expect_null(df_tanh(g, a), "a graph in error builds nothing more");
    cr_expect_null(df_tanh(g, NULL));
    cr_expect_str_eq(df_graph_error(g), first);
    cr_expect_eq(df_graph_compile(g), DF_ERR_SHAPE);
    cr_expect_eq(df_graph_run(g, NULL, 0, NULL, 0), DF_ERR_SHAPE);
    df_graph_free(g);
}

Test(errors, null_arguments)
{
    cr_expect_null(df_add(NULL, NULL, NULL));
    cr_expect_eq(df_graph_compile(NULL), DF_ERR_ARG);
    cr_expect_eq(df_graph_run(NULL, NULL, 0, NULL, 0), DF_ERR_ARG);
    cr_expect_eq(df_graph_output(NULL, NULL), DF_ERR_ARG);
    cr_expect_eq(df_graph_status(NULL), DF_ERR_ARG);
    cr_expect_null(df_function_new("f", NULL, NULL));
    cr_expect_eq(df_function_call(NULL, NULL, 0, NULL, 0), DF_ERR_ARG);
    cr_expect_eq(df_gradients(NULL, NULL, NULL, 0, NULL, NULL), DF_ERR_ARG);
    cr_expect_eq(df_tape_gradient(NULL, NULL, 0, NULL, NULL), DF_ERR_ARG);
    cr_expect_eq(df_variable_assign(NULL, NULL), DF_ERR_ARG);
    cr_expect_eq(df_variable_init(NULL, df_init_zeros(), NULL), DF_ERR_ARG);
    cr_expect_null(df_variable_new(NULL, DF_F32, 0, NULL, df_init_zeros(), NULL));
    EXPECT_MSG(df_last_error(), "df_variable_new: null name");
    cr_expect_eq(df_graph_dump_dot(NULL, "x"), DF_ERR_ARG);
    cr_expect_eq(df_optimizer_apply(NULL, NULL, 0, NULL, NULL), DF_ERR_ARG);
    df_graph *g = df_graph_new();
    cr_expect_null(df_var(g, NULL));
    cr_expect_eq(df_graph_status(g), DF_ERR_ARG);
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_mul(g, PH(g, 2), NULL));
    EXPECT_MSG(df_graph_error(g), "input 1 is NULL");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_eq(df_optimizer_apply(g, NULL, 1, NULL, NULL), DF_ERR_ARG);
    df_graph_free(g);
}

Test(errors, nodes_of_another_graph_are_refused)
{
    df_graph *g1 = df_graph_new(), *g2 = df_graph_new();
    df_node *a = PH(g1, 2), *b = PH(g2, 2);
    cr_expect_null(df_add(g1, a, b));
    EXPECT_MSG(df_graph_error(g1), "another graph");
    df_graph_free(g1);
    df_graph_free(g2);
}

Test(errors, bad_shapes_in_shape_ops)
{
    df_graph *g = df_graph_new();
    cr_expect_null(df_reshape(g, PH(g, 2, 3), 2, SHAPE(4, 2)));
    EXPECT_MSG(df_graph_error(g), "reshape");
    EXPECT_MSG(df_graph_error(g), "(2,3)");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_sum(g, PH(g, 2, 3), (int[]){2}, 1, false));
    EXPECT_MSG(df_graph_error(g), "axis 2 out of range");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_broadcast_to(g, PH(g, 3), 2, SHAPE(2, 4)));
    EXPECT_MSG(df_graph_error(g), "broadcast_to");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_sum_to(g, PH(g, 2, 3), 1, SHAPE(2)));
    EXPECT_MSG(df_graph_error(g), "sum_to");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_placeholder(g, DF_F32, 5, SHAPE(1, 1, 1, 1, 1), "x"));
    cr_expect_eq(df_graph_status(g), DF_ERR_SHAPE);
    df_graph_free(g);
}

Test(errors, dtype_mismatch)
{
    df_graph *g = df_graph_new();
    cr_expect_null(df_tanh(g, PHI(g, 3)));
    cr_expect_eq(df_graph_status(g), DF_ERR_DTYPE);
    EXPECT_MSG(df_graph_error(g), "must be f32");
    df_graph_free(g);
    df_variable *v = df_variable_new("v", DF_F32, 1, SHAPE(3), df_init_zeros(), NULL);
    g = df_graph_new();
    cr_expect_null(df_assign(g, v, PHI(g, 3)));
    cr_expect_eq(df_graph_status(g), DF_ERR_DTYPE);
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_assign(g, v, PH(g, 4)));
    EXPECT_MSG(df_graph_error(g), "variable 'v' has shape (3)");
    df_graph_free(g);
    df_variable_free(v);
}

Test(errors, run_checks_inputs)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 2);
    df_graph_output(g, df_neg(g, x));
    float d[4] = {0};
    int32_t di[4] = {0};
    df_tensor wrong_shape = F32(d, 4), wrong_type = I32(di, 2, 2), ok = F32(d, 2, 2), out;
    cr_expect_eq(df_graph_run(g, &wrong_shape, 1, &out, 1), DF_ERR_SHAPE);
    EXPECT_MSG(df_last_error(), "expected shape (2,2), got (4)");
    cr_expect_eq(df_graph_run(g, &wrong_type, 1, &out, 1), DF_ERR_DTYPE);
    cr_expect_eq(df_graph_run(g, &ok, 0, &out, 1), DF_ERR_ARG);
    cr_expect_eq(df_graph_run(g, &ok, 1, &out, 2), DF_ERR_ARG);
    cr_expect_eq(df_graph_run(g, &ok, 1, &out, 1), DF_OK);
    cr_expect_null(df_neg(g, x), "a compiled graph takes no new nodes");
    df_graph_free(g);
}

Test(errors, gradient_through_a_non_differentiable_op)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3), *dx;
    df_node *y = df_sum(g, df_step(g, x), NULL, 0, false);
    cr_expect_eq(df_gradients(g, y, NULL, 1, &x, &dx), DF_ERR_UNSUPPORTED);
    EXPECT_MSG(df_last_error(), "op 'step'");
    df_graph_free(g);
}

Test(errors, variable_arguments)
{
    cr_expect_null(df_variable_new("v", DF_F32, 5, SHAPE(1, 1, 1, 1, 1), df_init_zeros(), NULL));
    cr_expect_null(df_variable_new("v", DF_F32, 1, SHAPE(-3), df_init_zeros(), NULL));
    cr_expect_null(df_variable_new("v", DF_F32, 3, SHAPE(1 << 30, 1 << 30, 1 << 30), df_init_zeros(), NULL));
    EXPECT_MSG(df_last_error(), "too large");
    df_graph *g = df_graph_new();
    cr_expect_null(df_placeholder(g, DF_F32, 4, SHAPE(1 << 20, 1 << 20, 1 << 20, 1 << 20), "huge"));
    EXPECT_MSG(df_graph_error(g), "too large");
    df_graph_free(g);
    cr_expect_null(df_variable_new("v", DF_F32, 1, SHAPE(3), df_init_glorot_uniform(), NULL));
    EXPECT_MSG(df_last_error(), "needs an rng");
    cr_expect_null(df_adam_new(1e-3f, 1.5f, 0.999f, 1e-7f));
}

/* A train step under out-of-memory at every allocation point: each attempt
 * fails cleanly with DF_ERR_NOMEM or succeeds; nothing crashes or leaks state
 * into the next attempt. */
static df_status build_step(df_graph *g, df_node **in, void *user)
{
    df_variable **vars = user;
    df_tape *t = df_tape_begin(g);
    df_node *h = df_tanh(g, df_matmul(g, in[0], df_var(g, vars[0]), false, false));
    df_node *loss = df_mean(g, df_square(g, h), NULL, 0, false);
    df_tape_end(t);
    df_node *grad;
    if (df_tape_gradient(t, loss, 1, vars, &grad) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, (df_optimizer *)vars[1], 1, vars, &grad);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

Test(errors, out_of_memory_at_every_allocation)
{
    float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    df_tensor in = F32(x, 4, 3), loss;
    int failures = 0, successes = 0;
    for (long k = 0; k < 400 && successes == 0; k++) {
        df_variable *w = df_variable_new("w", DF_F32, 2, SHAPE(3, 2), df_init_constant(0.1f), NULL);
        df_optimizer *opt = df_adam_default();
        void *user[2] = {w, opt};
        df_function *f = df_function_new("step", build_step, user);
        cr_assert(w && opt && f);
        df_fail_alloc_after(k);
        df_status st = df_function_call(f, &in, 1, &loss, 1);
        df_fail_alloc_after(-1);
        if (st == DF_OK) successes++;
        else {
            cr_expect_eq(st, DF_ERR_NOMEM, "allocation %ld: %s (%s)", k, df_status_name(st), df_last_error());
            failures++;
        }
        df_function_free(f);
        df_optimizer_free(opt);
        df_variable_free(w);
    }
    cr_expect_gt(failures, 10);
    cr_expect_eq(successes, 1, "no allocation budget let the step succeed");
}

/* An optimizer update whose slots or scalars do not fit its variable (a
 * saved file can say anything) is refused at construction, before its
 * forward reads the slots by the variable's size (fuzz_saved found Adam
 * reading past a shorter slot). */
Test(errors, optimizer_updates_check_their_slots_and_scalars)
{
    df_rng rng;
    df_rng_seed(&rng, 1);
    df_variable *w = df_variable_new("w", DF_F32, 2, SHAPE(4, 8), df_init_zeros(), &rng);
    cr_assert_not_null(w, "%s", df_last_error());
    struct { const char *what, *expect; } cases[] = {   /* built in the switch below, in this order */
        {"adam, m shorter", "slot input 3"}, {"adam, v transposed", "slot input 4"},
        {"adam, step of two", "input 2"}, {"rmsprop, rms shorter", "slot input 2"},
        {"sgd, learning rate of four", "input 1"}, {"adamw, v of i32", "slot input 4"},
    };
    for (int i = 0; i < 6; i++) {
        df_graph *g = df_graph_new();
        df_node *grad = PH(g, 4, 8), *good = PH(g, 4, 8), *lr = df_placeholder(g, DF_F32, 0, NULL, NULL);
        df_node *t = df_placeholder(g, DF_I32, 0, NULL, NULL), *n = NULL;
        switch (i) {
        case 0: n = df_apply_adam(g, w, grad, lr, t, PH(g, 4, 4), good, 0.9f, 0.999f, 1e-7f); break;
        case 1: n = df_apply_adam(g, w, grad, lr, t, good, PH(g, 8, 4), 0.9f, 0.999f, 1e-7f); break;
        case 2: n = df_apply_adam(g, w, grad, lr, df_placeholder(g, DF_I32, 1, SHAPE(2), NULL), good, good, 0.9f,
                                  0.999f, 1e-7f); break;
        case 3: n = df_apply_rmsprop(g, w, grad, lr, PH(g, 31), 0.9f, 1e-7f); break;
        case 4: n = df_apply_sgd(g, w, grad, PH(g, 4)); break;
        case 5: n = df_apply_adamw(g, w, grad, lr, t, good, df_placeholder(g, DF_I32, 2, SHAPE(4, 8), NULL), 0.9f,
                                   0.999f, 1e-8f, 0.1f); break;
        }
        cr_expect_null(n, "%s: accepted", cases[i].what);
        cr_expect_eq(df_graph_status(g), DF_ERR_SHAPE, "%s: status %d", cases[i].what, df_graph_status(g));
        EXPECT_MSG(df_graph_error(g), cases[i].expect);
        EXPECT_MSG(df_graph_error(g), "'w'");
        df_graph_free(g);
    }
    df_graph *g = df_graph_new();   /* and the well-formed update still builds */
    df_node *ok = df_apply_adam(g, w, PH(g, 4, 8), df_placeholder(g, DF_F32, 0, NULL, NULL),
                                df_placeholder(g, DF_I32, 0, NULL, NULL), PH(g, 4, 8), PH(g, 4, 8), 0.9f, 0.999f, 1e-7f);
    cr_expect_not_null(ok, "%s", df_graph_error(g));
    df_graph_free(g);
    df_variable_free(w);
}

/* A builder that reads two inputs, called with one: in[1] must be NULL (the
 * op then refuses it), never stack garbage. */
static df_status build_two_inputs(df_graph *g, df_node **in, void *user)
{
    *(bool *)user = in[1] == NULL;
    df_graph_output(g, df_add(g, in[0], in[1]));
    return df_graph_status(g);
}

Test(errors, a_builder_reading_more_inputs_than_given_gets_null_and_an_error)
{
    bool second_null = false;
    df_function *f = df_function_new("two", build_two_inputs, &second_null);
    float x[3] = {1, 2, 3};
    df_tensor in = df_tensor_make(DF_F32, x, 1, (int64_t[]){3}), out;
    cr_expect_neq(df_function_call(f, &in, 1, &out, 1), DF_OK);
    cr_expect(second_null, "in[1] past the given inputs is NULL");
    cr_expect_not_null(strstr(df_last_error(), "NULL"), "%s", df_last_error());
    df_function_free(f);
}
