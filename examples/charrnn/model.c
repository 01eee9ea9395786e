/* model.c — variables, the forward graph and the traced step functions. */
#include <stdio.h>
#include <string.h>
#include "model.h"

static df_status make_params(cr_model *m, df_rng *rng)
{
    int V = m->cfg.vocab, E = m->cfg.embed, H = m->cfg.hidden;
    /* Keras defaults: Embedding uniform(-0.05, 0.05); LSTM and Dense kernels
     * glorot_uniform; the tutorial sets recurrent_initializer='glorot_uniform';
     * unit_forget_bias puts 1 in the forget-gate bias. */
    m->embedding = df_variable_new("embedding", DF_F32, 2, (int64_t[]){V, E}, df_init_uniform(-0.05f, 0.05f), rng);
    m->kernel = df_variable_new("lstm/kernel", DF_F32, 2, (int64_t[]){E, 4 * H}, df_init_glorot_uniform(), rng);
    m->recurrent_kernel = df_variable_new("lstm/recurrent_kernel", DF_F32, 2, (int64_t[]){H, 4 * H},
                                          df_init_glorot_uniform(), rng);
    m->bias = df_variable_new("lstm/bias", DF_F32, 1, (int64_t[]){4 * H}, df_init_zeros(), NULL);
    m->dense_kernel = df_variable_new("dense/kernel", DF_F32, 2, (int64_t[]){H, V}, df_init_glorot_uniform(), rng);
    m->dense_bias = df_variable_new("dense/bias", DF_F32, 1, (int64_t[]){V}, df_init_zeros(), NULL);
    df_variable *all[CR_N_PARAMS] = {m->embedding, m->kernel, m->recurrent_kernel, m->bias, m->dense_kernel, m->dense_bias};
    for (int i = 0; i < CR_N_PARAMS; i++) {
        if (!all[i]) return DF_ERR_NOMEM;
        m->params[i] = all[i];
    }
    float *b = df_variable_tensor(m->bias).data;
    for (int i = H; i < 2 * H; i++) b[i] = 1.0f;
    return DF_OK;
}

df_status cr_model_init(cr_model *m, const cr_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (cfg->vocab < 1 || cfg->embed < 1 || cfg->hidden < 1)
        return df_error(DF_ERR_ARG, "vocab, embed and hidden sizes must be positive");
    df_rng rng;
    df_rng_seed(&rng, cfg->seed);
    df_status st = make_params(m, &rng);
    if (st == DF_OK && !(m->opt = df_adam_new(cfg->learning_rate, 0.9f, 0.999f, 1e-7f))) st = DF_ERR_NOMEM;
    if (st != DF_OK) cr_model_free(m);
    return st;
}

void cr_model_free(cr_model *m)
{
    df_function_free(m->fit_step);
    df_function_free(m->custom_step);
    df_function_free(m->eval_step);
    df_function_free(m->logits_fn);
    for (int i = 0; i < CR_N_PARAMS; i++) df_variable_free(m->params[i]);
    for (int i = 0; i < m->n_states; i++) {
        df_variable_free(m->states[i].h);
        df_variable_free(m->states[i].c);
    }
    df_optimizer_free(m->opt);
    memset(m, 0, sizeof *m);
}

void cr_model_reset_states(cr_model *m)
{
    for (int i = 0; i < m->n_states; i++) {
        df_variable_init(m->states[i].h, df_init_zeros(), NULL);
        df_variable_init(m->states[i].c, df_init_zeros(), NULL);
    }
}

int64_t cr_model_param_count(const cr_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < CR_N_PARAMS; i++) n += df_variable_numel(m->params[i]);
    return n;
}

/* The recurrent state of batch size B for a purpose, created on first use
 * (when a new batch size is traced, or a checkpoint restores it). */
cr_state *cr_model_state(cr_model *m, int batch, int purpose)
{
    for (int i = 0; i < m->n_states; i++)
        if (m->states[i].batch == batch && m->states[i].purpose == purpose) return &m->states[i];
    if (m->n_states == CR_MAX_STATES) {
        df_error(DF_ERR_RANGE, "more than %d distinct batch sizes", CR_MAX_STATES);
        return NULL;
    }
    cr_state *s = &m->states[m->n_states];
    int64_t shape[2] = {batch, m->cfg.hidden};
    s->h = df_variable_new(purpose ? "eval_state/h" : "state/h", DF_F32, 2, shape, df_init_zeros(), NULL);
    s->c = df_variable_new(purpose ? "eval_state/c" : "state/c", DF_F32, 2, shape, df_init_zeros(), NULL);
    if (!s->h || !s->c) {
        df_variable_free(s->h);
        df_variable_free(s->c);
        return NULL;
    }
    s->batch = batch;
    s->purpose = purpose;
    m->n_states++;
    return s;
}

/* x (B,T) int -> logits (B,T,V); the final h, c are assigned to the state.
 * The LSTM input projection, chosen per trace (the two are equal row by row,
 * and autodiff routes the gradient back through either):
 *  - B*T >= V (training): the embedding and the projection fold into one
 *    lookup, gather(embedding @ kernel + bias, x): one (V,E)@(E,4H) product
 *    instead of (B*T,E)@(E,4H);
 *  - B*T < V (generation, one char at a time): gather(embedding, x) @ kernel
 *    + bias, which does not recompute the whole (V,4H) table each call. */
static df_node *forward(df_graph *g, cr_model *m, df_node *x, int purpose)
{
    int64_t B = df_node_dim(x, 0), T = df_node_dim(x, 1), H = m->cfg.hidden;
    cr_state *s = cr_model_state(m, (int)B, purpose);
    if (!s) {
        df_graph_set_error(g, m->n_states == CR_MAX_STATES ? DF_ERR_RANGE : DF_ERR_NOMEM, "%s", df_last_error());
        return NULL;
    }
    df_node *xproj;                                                                 /* (B,T,4H) */
    if (B * T >= m->cfg.vocab) {
        df_node *table = df_add(g, df_matmul(g, df_var(g, m->embedding), df_var(g, m->kernel), false, false),
                                df_var(g, m->bias));                                /* (V,4H) */
        xproj = df_gather(g, table, x);
    } else {
        df_node *emb = df_gather(g, df_var(g, m->embedding), x);                   /* (B,T,E) */
        xproj = df_add(g, df_matmul(g, emb, df_var(g, m->kernel), false, false), df_var(g, m->bias));
    }
    df_node *h = df_lstm(g, xproj, df_var(g, m->recurrent_kernel), df_var(g, s->h), df_var(g, s->c));
    df_node *logits = df_add(g, df_matmul(g, h, df_var(g, m->dense_kernel), false, false),
                             df_var(g, m->dense_bias));                             /* (B,T,V) */
    df_node *h_last = df_slice(g, h, (int64_t[]){0, T - 1, 0}, (int64_t[]){B, 1, H});
    df_assign(g, s->h, df_reshape(g, h_last, 2, (int64_t[]){B, H}));
    df_assign(g, s->c, df_lstm_final_c(g, h));
    return logits;
}

/* fit: inputs x, y (B,T) -> loss; gradients of every parameter. */
static df_status build_fit_step(df_graph *g, df_node **in, void *user)
{
    cr_model *m = user;
    df_node *loss = df_sparse_softmax_cross_entropy(g, forward(g, m, in[0], CR_STATE_MAIN), in[1]);
    df_node *param_nodes[CR_N_PARAMS], *grads[CR_N_PARAMS];
    for (int i = 0; i < CR_N_PARAMS; i++) param_nodes[i] = df_var(g, m->params[i]);
    if (df_gradients(g, loss, NULL, CR_N_PARAMS, param_nodes, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, CR_N_PARAMS, m->params, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

/* The tutorial's custom training step, GradientTape style:
 *   with tf.GradientTape() as tape:
 *       predictions = model(inp); loss = loss_fn(target, predictions)
 *   grads = tape.gradient(loss, model.trainable_variables)
 *   optimizer.apply_gradients(zip(grads, model.trainable_variables)) */
static df_status build_custom_step(df_graph *g, df_node **in, void *user)
{
    cr_model *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *predictions = forward(g, m, in[0], CR_STATE_MAIN);
    df_node *loss = df_sparse_softmax_cross_entropy(g, predictions, in[1]);
    df_tape_end(tape);
    df_node *grads[CR_N_PARAMS];
    if (df_tape_gradient(tape, loss, CR_N_PARAMS, m->params, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, CR_N_PARAMS, m->params, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

df_status cr_compile_step(cr_model *m, int batch, int seq, unsigned passes, bool custom, df_graph **out)
{
    df_graph *g = df_graph_new();
    if (!g) return DF_ERR_NOMEM;
    int64_t shape[2] = {batch, seq};
    df_node *in[2] = {df_placeholder(g, DF_I32, 2, shape, "x"), df_placeholder(g, DF_I32, 2, shape, "y")};
    df_status st = df_graph_set_passes(g, passes);
    if (st == DF_OK) st = custom ? build_custom_step(g, in, m) : build_fit_step(g, in, m);
    if (st == DF_OK) st = df_graph_compile(g);
    if (st != DF_OK) {
        df_graph_free(g);
        return st;
    }
    *out = g;
    return DF_OK;
}

static df_status build_eval_step(df_graph *g, df_node **in, void *user)
{
    cr_model *m = user;
    df_graph_output(g, df_sparse_softmax_cross_entropy(g, forward(g, m, in[0], CR_STATE_EVAL), in[1]));
    return df_graph_status(g);
}

static df_status build_logits(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, forward(g, user, in[0], CR_STATE_MAIN));
    return df_graph_status(g);
}

/* Creates the function on first use, then calls it. */
static df_status call(cr_model *m, df_function **fn, const char *name, df_build_fn build, const df_tensor *in,
                      int n_in, df_tensor *out)
{
    for (int i = 0; i < n_in; i++)
        if (in[i].dtype != DF_I32 || in[i].ndim != 2)
            return df_error(DF_ERR_ARG, "%s: inputs must be i32 (batch, seq)", name);
    if (!*fn && !(*fn = df_function_new(name, build, m))) return DF_ERR_NOMEM;
    return df_function_call(*fn, in, n_in, out, 1);
}

static df_status scalar_call(cr_model *m, df_function **fn, const char *name, df_build_fn build,
                             const df_tensor *x, const df_tensor *y, float *loss)
{
    df_tensor in[2] = {*x, *y}, out;
    df_status st = call(m, fn, name, build, in, 2, &out);
    if (st == DF_OK) *loss = *(float *)out.data;
    return st;
}

df_status cr_fit_step(cr_model *m, const df_tensor *x, const df_tensor *y, float *loss)
{
    return scalar_call(m, &m->fit_step, "fit_step", build_fit_step, x, y, loss);
}

df_status cr_custom_step(cr_model *m, const df_tensor *x, const df_tensor *y, float *loss)
{
    return scalar_call(m, &m->custom_step, "train_step", build_custom_step, x, y, loss);
}

df_status cr_eval_step(cr_model *m, const df_tensor *x, const df_tensor *y, float *loss)
{
    return scalar_call(m, &m->eval_step, "eval_step", build_eval_step, x, y, loss);
}

df_status cr_logits(cr_model *m, const df_tensor *x, df_tensor *logits)
{
    return call(m, &m->logits_fn, "logits", build_logits, x, 1, logits);
}

static df_function *function_named(const cr_model *m, const char *which)
{
    if (!strcmp(which, "fit")) return m->fit_step;
    if (!strcmp(which, "custom")) return m->custom_step;
    if (!strcmp(which, "eval")) return m->eval_step;
    if (!strcmp(which, "logits")) return m->logits_fn;
    return NULL;
}

int cr_trace_count(const cr_model *m, const char *which) { return df_function_trace_count(function_named(m, which)); }
df_graph *cr_graph(const cr_model *m, const char *which) { return df_function_last_graph(function_named(m, which)); }

/* 5330241 -> "5,330,241" */
static const char *with_commas(int64_t n, char *buf)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)n), at = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[at++] = ',';
        buf[at++] = digits[i];
    }
    buf[at] = 0;
    return buf;
}

void cr_model_summary(const cr_model *m, int batch, FILE *out)
{
    int V = m->cfg.vocab, E = m->cfg.embed, H = m->cfg.hidden;
    int64_t emb = df_variable_numel(m->embedding);
    int64_t lstm = df_variable_numel(m->kernel) + df_variable_numel(m->recurrent_kernel) + df_variable_numel(m->bias);
    int64_t dense = df_variable_numel(m->dense_kernel) + df_variable_numel(m->dense_bias);
    const char *rule = "_________________________________________________________________";
    char shape[64], count[32];
    fprintf(out, "Model: \"char_rnn\"\n%s\n %-27s %-25s %-10s\n", rule, "Layer (type)", "Output Shape", "Param #");
    fprintf(out, "=================================================================\n");
    struct { const char *name; int width; int64_t params; } rows[3] = {
        {"embedding (Embedding)", E, emb}, {"lstm (LSTM)", H, lstm}, {"dense (Dense)", V, dense}};
    for (int i = 0; i < 3; i++) {
        snprintf(shape, sizeof shape, "(%d, None, %d)", batch, rows[i].width);
        fprintf(out, " %-27s %-25s %-10s\n", rows[i].name, shape, with_commas(rows[i].params, count));
        if (i < 2) fprintf(out, "                                                                 \n");
    }
    fprintf(out, "=================================================================\n");
    fprintf(out, "Total params: %s\n", with_commas(cr_model_param_count(m), count));
    fprintf(out, "Trainable params: %s\nNon-trainable params: 0\n%s\n", count, rule);
}
