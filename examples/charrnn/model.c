/* model.c — char-rnn's model made of the library's layers and compiled
 * (df_model_compile) for its fit and eval steps; the GradientTape-style
 * train_step and the sampling forward are written here. */
#include <stdio.h>
#include <string.h>
#include "model.h"

const char *const cr_cell_names[] = {"lstm", "gru", "rnn", NULL};
const char *const cr_optimizer_names[] = {"adam", "rmsprop", "sgd", NULL};

int cr_config_layers(const cr_config *cfg) { return cfg->layers > 0 ? cfg->layers : 1; }

/* The optimizer its flags pick (cr_optimizer_names are the library's names). */
static df_optimizer_config optimizer_config(const cr_config *c)
{
    return (df_optimizer_config){.name = cr_optimizer_names[c->optimizer], .learning_rate = c->learning_rate,
                                 .momentum = c->momentum, .clipnorm = c->clipnorm};
}

void cr_config_describe(const cr_config *cfg, char *buf, size_t cap)
{
    static const char *const types[] = {"LSTM", "GRU", "SimpleRNN"};
    char dropout[32] = "", opt[64];
    if (cfg->dropout > 0) snprintf(dropout, sizeof dropout, ", dropout %g", cfg->dropout);
    df_optimizer_config oc = optimizer_config(cfg);
    df_optimizer_config_describe(&oc, opt, sizeof opt);
    snprintf(buf, cap, "%d x %s(%d%s)%s; %s", cr_config_layers(cfg), types[cfg->cell], cfg->hidden,
             cfg->cell == CR_CELL_GRU ? (cfg->gru_reset_before ? ", reset_after=false" : ", reset_after") : "", dropout,
             opt);
}

static df_layer *recurrent_layer(const cr_config *c)
{
    /* the tutorial sets recurrent_initializer='glorot_uniform' */
    df_rnn_options o = {.return_sequences = true, .stateful = true, .recurrent_glorot = true};
    if (c->cell == CR_CELL_GRU) return df_gru_layer(c->hidden, !c->gru_reset_before, o);
    if (c->cell == CR_CELL_RNN) return df_simple_rnn_layer(c->hidden, o);
    return df_lstm_layer(c->hidden, o);
}

/* Char-rnn's own variable names, older than the layers' and kept so that
 * its checkpoints stay readable: "embedding" for the table and the state as
 * "state/h", "state/c", "state/h_1", ... and "eval_state/...". */
static df_status name_state(df_layer *l, int k)
{
    df_status st = DF_OK;
    for (int slot = CR_STATE_MAIN; slot <= CR_STATE_EVAL && st == DF_OK; slot++) {
        const char *prefix = slot == CR_STATE_EVAL ? "eval_state" : "state";
        char h[32], c[32];
        snprintf(h, sizeof h, k ? "%s/h_%d" : "%s/h", prefix, k);
        snprintf(c, sizeof c, k ? "%s/c_%d" : "%s/c", prefix, k);
        st = df_rnn_layer_set_state_names(l, slot, h, c);
    }
    return st;
}

static df_status add_layer(cr_model *m, df_layer *l, df_layer **slot)
{
    if (slot) *slot = l;
    return l ? df_model_add(m->net, l) : df_error(DF_ERR_NOMEM, "out of memory for a layer");
}

/* Embedding(V,E) -> n x (recurrent(H) [-> Dropout]) -> Dense(V), built for
 * ids (B,T) of any B and T: the weights are drawn from the seed in layer order. */
static df_status make_layers(cr_model *m)
{
    const cr_config *c = &m->cfg;
    if (!(m->net = df_model_new("char_rnn", c->seed))) return df_error(DF_ERR_NOMEM, "out of memory for the model");
    df_status st = add_layer(m, df_embedding_layer(c->vocab, c->embed), &m->embedding_layer);
    if (st == DF_OK) st = df_layer_set_weight_name(m->embedding_layer, "embeddings", "embedding");
    for (int k = 0; k < m->n_layers && st == DF_OK; k++) {
        st = add_layer(m, recurrent_layer(c), &m->rnn[k]);
        if (st == DF_OK) st = name_state(m->rnn[k], k);
        if (st == DF_OK && c->dropout > 0) st = add_layer(m, df_dropout_layer(c->dropout), &m->dropout[k]);
    }
    if (st == DF_OK) st = add_layer(m, df_dense_layer(c->vocab, DF_ACT_NONE, true), &m->dense);
    if (st == DF_OK) st = df_model_build(m->net, 2, (int64_t[]){DF_DYNAMIC, DF_DYNAMIC});
    return st;
}

/* Dropout masks as char-rnn draws them: from the optimizer's step counter
 * (steps differ, reruns repeat), salted by the run's seed and the layer,
 * for this process's rows of the batch (data parallel). */
static df_status seed_dropout(cr_model *m)
{
    df_status st = DF_OK;
    for (int k = 0; k < m->n_layers && m->dropout[k] && st == DF_OK; k++)
        st = df_dropout_layer_set_seed(m->dropout[k], m->step_counter,
                                       m->cfg.seed * 0x9E3779B97F4A7C15ull + (uint64_t)k + 1, m->dropout_row0);
    return st;
}

df_status cr_model_init(cr_model *m, const cr_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    df_status st = cr_config_check(cfg);
    if (st != DF_OK) return st;
    m->cfg.layers = m->n_layers = cr_config_layers(cfg);
    st = make_layers(m);
    if (st == DF_OK) m->n_params = df_model_weights(m->net, m->params, CR_MAX_PARAMS);
    df_optimizer_config oc = optimizer_config(cfg);
    if (st == DF_OK) st = df_optimizer_from_config(&oc, &m->opt);
    if (st == DF_OK) st = df_model_compile(m->net, m->opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
    /* the optimizer's iteration counter (its first state variable) seeds dropout */
    if (st == DF_OK) df_optimizer_state(m->opt, &m->step_counter, 1);
    if (st == DF_OK) st = seed_dropout(m);    /* before anything lists the state: no counter of its own */
    if (st != DF_OK) cr_model_free(m);
    return st;
}

void cr_model_free(cr_model *m)
{
    df_function_free(m->fit_step);
    df_function_free(m->custom_step);
    df_function_free(m->eval_step);
    df_function_free(m->logits_fn);
    df_model_free(m->net);      /* its layers own the parameters and the states */
    df_optimizer_free(m->opt);
    memset(m, 0, sizeof *m);
}

void cr_model_reset_states(cr_model *m) { df_model_reset_states(m->net); }

int64_t cr_model_param_count(const cr_model *m) { return df_model_param_count(m->net); }

/* The tutorial's custom training step, GradientTape style:
 *   with tf.GradientTape() as tape:
 *       predictions = model(inp); loss = loss_fn(target, predictions)
 *   grads = tape.gradient(loss, model.trainable_variables)
 *   optimizer.apply_gradients(zip(grads, model.trainable_variables)) */
static df_status build_custom_step(df_graph *g, df_node **in, void *user)
{
    cr_model *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *predictions = df_model_call(m->net, g, in[0], true);
    df_node *loss = df_sparse_softmax_cross_entropy(g, predictions, in[1]);
    df_tape_end(tape);
    df_node *grads[CR_MAX_PARAMS];
    if (df_tape_gradient(tape, loss, m->n_params, m->params, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, m->n_params, m->params, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

/* Sampling: x (B,T) -> logits (B,T,V), carrying the main state of batch size B. */
static df_status build_logits(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, df_model_call(((cr_model *)user)->net, g, in[0], false));
    return df_graph_status(g);
}

df_status cr_compile_step(cr_model *m, int batch, int seq, unsigned passes, df_graph **out)
{
    df_tensor_spec ids = {DF_I32, 2, {batch, seq}};
    df_status st = seed_dropout(m);
    return st == DF_OK ? df_graph_trace(build_custom_step, m, 2, (df_tensor_spec[]){ids, ids},
                                        (const char *[]){"x", "y"}, passes, out) : st;
}

static df_function *const unknown = NULL;   /* what a name other than the four finds */

static df_function *const *function_slot(const cr_model *m, const char *which)
{
    return !strcmp(which, "fit") ? &m->fit_step : !strcmp(which, "custom") ? &m->custom_step
         : !strcmp(which, "eval") ? &m->eval_step : !strcmp(which, "logits") ? &m->logits_fn : &unknown;
}

/* Made on first use, with dropout seeded for this process's rows first. */
df_function *cr_model_function(cr_model *m, const char *which)
{
    df_function **fn = (df_function **)function_slot(m, which);
    if (fn == (df_function **)&unknown) {
        df_error(DF_ERR_ARG, "char-rnn: no function '%s' (fit, custom, eval, logits)", which);
        return NULL;
    }
    if (*fn || seed_dropout(m) != DF_OK) return *fn;
    if (!strcmp(which, "fit")) return *fn = df_model_train_step(m->net);
    if (!strcmp(which, "eval")) return *fn = df_model_eval_step(m->net);
    bool custom = !strcmp(which, "custom");
    return *fn = df_function_new(custom ? "train_step" : "logits", custom ? build_custom_step : build_logits, m);
}

/* Calls a function on i32 (batch, seq) inputs; its first output. */
static df_status call(cr_model *m, const char *which, const df_tensor *in, int n_in, df_tensor *out)
{
    for (int i = 0; i < n_in; i++)
        if (in[i].dtype != DF_I32 || in[i].ndim != 2)
            return df_error(DF_ERR_ARG, "char-rnn %s step: inputs must be i32 (batch, seq)", which);
    df_function *fn = cr_model_function(m, which);
    if (!fn) return function_slot(m, which) == &unknown ? DF_ERR_ARG : DF_ERR_NOMEM;
    return df_function_call(fn, in, n_in, out, 1);
}

df_status cr_step(cr_model *m, const char *which, const df_tensor *x, const df_tensor *y, float *loss)
{
    df_tensor in[2] = {*x, *y}, out;
    df_status st = call(m, which, in, 2, &out);
    if (st == DF_OK) *loss = *(float *)out.data;
    return st;
}

df_status cr_logits(cr_model *m, const df_tensor *x, df_tensor *logits) { return call(m, "logits", x, 1, logits); }
int cr_trace_count(const cr_model *m, const char *which) { return df_function_trace_count(*function_slot(m, which)); }
df_graph *cr_graph(const cr_model *m, const char *which) { return df_function_last_graph(*function_slot(m, which)); }

void cr_model_summary(const cr_model *m, int batch, FILE *out) { df_model_summary_batch(m->net, batch, out); }
