/* mlp.c — an MLP classifier built from dagflow's layers: two interleaved
 * spirals (generated here), Dense(32, relu) -> Dense(32, relu) -> Dense(2),
 * trained with Adam on the full batch; prints loss and accuracy. */
#include <math.h>
#include <stdio.h>
#include "dagflow.h"

enum { N = 400, STEPS = 600 };

typedef struct trainer {
    df_model *model;
    df_optimizer *opt;
} trainer;

/* x (N,2), y (N) -> loss, logits; one Adam step per call. */
static df_status train_step(df_graph *g, df_node **in, void *user)
{
    trainer *t = user;
    df_tape *tape = df_tape_begin(g);
    df_node *logits = df_model_call(t->model, g, in[0], true);
    df_node *loss = df_sparse_softmax_cross_entropy(g, logits, in[1]);
    df_tape_end(tape);
    df_variable *vars[16];
    df_node *grads[16];
    int n = df_model_variables(t->model, vars, 16);
    if (df_tape_gradient(tape, loss, n, vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, t->opt, n, vars, grads);
    df_graph_output(g, loss);
    df_graph_output(g, logits);
    return df_graph_status(g);
}

/* Two spirals of N/2 points each, with a little noise; label = arm. */
static void make_spirals(float *x, int32_t *y, df_rng *rng)
{
    for (int i = 0; i < N; i++) {
        int arm = i % 2;
        float r = (float)(i / 2) / (N / 2), angle = 3.0f * 3.14159265f * r + (float)arm * 3.14159265f;
        x[2 * i] = r * cosf(angle) + 0.02f * df_rng_normal(rng);
        x[2 * i + 1] = r * sinf(angle) + 0.02f * df_rng_normal(rng);
        y[i] = arm;
    }
}

static float accuracy(const float *logits, const int32_t *y)
{
    int right = 0;
    for (int i = 0; i < N; i++) right += (logits[2 * i + 1] > logits[2 * i]) == (y[i] == 1);
    return (float)right / N;
}

int main(void)
{
    static float x[N * 2];
    static int32_t y[N];
    df_rng rng;
    df_rng_seed(&rng, 7);
    make_spirals(x, y, &rng);

    trainer t = {df_model_new("mlp", 42), df_adam_new(0.01f, 0.9f, 0.999f, 1e-7f)};
    if (!t.model || !t.opt ||
        df_model_add(t.model, df_dense_layer(32, DF_ACT_RELU, true)) != DF_OK ||
        df_model_add(t.model, df_dense_layer(32, DF_ACT_RELU, true)) != DF_OK ||
        df_model_add(t.model, df_dense_layer(2, DF_ACT_NONE, true)) != DF_OK ||
        df_model_build(t.model, 2, (int64_t[]){DF_DYNAMIC, 2}) != DF_OK) {
        fprintf(stderr, "mlp: %s\n", df_last_error());
        return 1;
    }
    printf("dagflow %s\n", df_version());
    df_model_summary(t.model, stdout);

    df_function *step = df_function_new("train_step", train_step, &t);
    df_tensor in[2] = {df_tensor_make(DF_F32, x, 2, (int64_t[]){N, 2}),
                       df_tensor_make(DF_I32, y, 1, (int64_t[]){N})};
    df_tensor out[2];
    int status = 0;
    for (int s = 1; s <= STEPS; s++) {
        if (df_function_call(step, in, 2, out, 2) != DF_OK) {
            fprintf(stderr, "mlp: %s\n", df_last_error());
            status = 1;
            break;
        }
        if (s == 1 || s % 100 == 0)   /* logits are from before this step's update */
            printf("step %4d  loss %.4f  accuracy %.3f\n", s, *(float *)out[0].data, accuracy(out[1].data, y));
    }
    df_function_free(step);
    df_optimizer_free(t.opt);
    df_model_free(t.model);
    return status;
}
