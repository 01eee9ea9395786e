/* quickstart.c — fit y = 3x + 2 with a GradientTape-style train step and SGD.
 *
 * The whole step (forward, loss, tape gradients, SGD update) is one traced
 * function: it is compiled on the first call and then reused. Its input
 * signature leaves the batch dimension open (DF_DYNAMIC), so the minibatches
 * of 24, 24 and 16 points run the same trace. */
#include <stdio.h>
#include <stdlib.h>
#include "dagflow.h"

#define N_POINTS 64
#define BATCH 24          /* 64 = 24 + 24 + 16: the last batch is smaller */

typedef struct model {
    df_variable *w, *b;
    df_variable *vars[2];
    df_optimizer *opt;
} model;

/* inputs: x (None,1), y (None,1) -> output: loss () */
static df_status train_step(df_graph *g, df_node **in, void *user)
{
    model *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *pred = df_add(g, df_matmul(g, in[0], df_var(g, m->w), false, false), df_var(g, m->b));
    df_node *loss = df_mean(g, df_square(g, df_sub(g, pred, in[1])), NULL, 0, false);
    df_tape_end(tape);
    df_node *grads[2];
    if (df_tape_gradient(tape, loss, 2, m->vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 2, m->vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static int fail(const char *what)
{
    fprintf(stderr, "quickstart: %s: %s\n", what, df_last_error());
    return 1;
}

int main(void)
{
    df_rng rng;
    df_rng_seed(&rng, 7);
    float xs[N_POINTS], ys[N_POINTS];
    for (int i = 0; i < N_POINTS; i++) {         /* y = 3x + 2 plus a little noise */
        xs[i] = 2.0f * df_rng_uniform(&rng) - 1.0f;
        ys[i] = 3.0f * xs[i] + 2.0f + 0.01f * df_rng_normal(&rng);
    }
    int64_t one[2] = {1, 1};
    model m = {.w = df_variable_new("w", DF_F32, 2, one, df_init_glorot_uniform(), &rng),
               .b = df_variable_new("b", DF_F32, 1, one, df_init_zeros(), NULL),
               .opt = df_sgd_new(0.1f)};
    if (!m.w || !m.b || !m.opt) return fail("setup");
    m.vars[0] = m.w;
    m.vars[1] = m.b;
    /* tf.function(input_signature=[TensorSpec((None, 1)), TensorSpec((None, 1))]) */
    df_tensor_spec signature[2] = {{DF_F32, 2, {DF_DYNAMIC, 1}}, {DF_F32, 2, {DF_DYNAMIC, 1}}};
    df_function *step = df_function_new_signature("train_step", train_step, &m, 2, signature);
    if (!step) return fail("df_function_new_signature");

    for (int epoch = 1; epoch <= 100; epoch++) {
        float loss_sum = 0;
        for (int start = 0; start < N_POINTS; start += BATCH) {
            int64_t rows = N_POINTS - start < BATCH ? N_POINTS - start : BATCH, shape[2] = {rows, 1};
            df_tensor in[2] = {df_tensor_make(DF_F32, xs + start, 2, shape),
                               df_tensor_make(DF_F32, ys + start, 2, shape)};
            df_tensor loss;
            if (df_function_call(step, in, 2, &loss, 1) != DF_OK) return fail("train step");
            loss_sum += *(float *)loss.data * (float)rows;
        }
        if (epoch == 1 || epoch % 10 == 0) printf("epoch %3d  loss %.6f\n", epoch, loss_sum / N_POINTS);
    }
    float w = *(float *)df_variable_tensor(m.w).data, b = *(float *)df_variable_tensor(m.b).data;
    df_graph_stats stats;
    if (df_graph_get_stats(df_function_last_graph(step), &stats) != DF_OK) return fail("stats");
    printf("batch sizes %d and %d: %d plans\n", BATCH, N_POINTS % BATCH, stats.plans);
    printf("w = %.4f (true 3), b = %.4f (true 2), traces = %d\n", w, b, df_function_trace_count(step));

    df_function_free(step);
    df_optimizer_free(m.opt);
    df_variable_free(m.w);
    df_variable_free(m.b);
    return 0;
}
