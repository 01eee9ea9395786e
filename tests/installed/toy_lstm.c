/* toy_lstm.c — a program outside the tree, built with `pkg-config dagflow`
 * (tests/installed.sh): Embedding -> LSTM -> Dense from the layers API,
 * trained by df_fit to predict the next symbol of 0 1 2 3 4 0 1 ... */
#include <dagflow.h>
#include <stdio.h>

static int32_t x[4 * 8], y[4 * 8];
static int batch;

static df_status next(void *user, df_tensor *in, bool *end)
{
    if ((*end = batch == 4)) return DF_OK;
    for (int i = 0; i < 32; i++) x[i] = (3 * batch + i) % 5, y[i] = (3 * batch + i + 1) % 5;
    batch++;
    in[0] = df_tensor_make(DF_I32, x, 2, (int64_t[]){4, 8});
    in[1] = df_tensor_make(DF_I32, y, 2, (int64_t[]){4, 8});
    return DF_OK;
}

static void rewind_batches(void *user) { batch = 0; }

int main(void)
{
    df_model *model = df_model_new("toy", 1);
    df_model_add(model, df_embedding_layer(5, 8));
    df_model_add(model, df_lstm_layer(16, (df_rnn_options){.return_sequences = true}));
    df_model_add(model, df_dense_layer(5, DF_ACT_NONE, true));
    df_optimizer *opt = df_adam_new(0.02f, 0.9f, 0.999f, 1e-7f);
    df_model_compile(model, opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
    df_fit_options o = {.train_step = df_model_train_step(model), .n_inputs = 2, .optimizer = opt, .epochs = 40,
                        .train = {.next = next, .start_epoch = rewind_batches}, .progress = DF_FIT_PROGRESS_NONE};
    df_fit_history h;
    if (df_fit(&o, &h) != DF_OK) return fprintf(stderr, "toy_lstm: %s\n", df_last_error()), 1;
    printf("dagflow %s: loss %.4f after %lld steps\n", df_version(), h.loss, (long long)h.steps);
    df_function_free(o.train_step);
    df_optimizer_free(opt);
    df_model_free(model);
    return h.loss < 0.1 ? 0 : 1;
}
