/* model.c — variables, the forward graph and the traced step functions. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "model.h"

const char *const cr_cell_names[] = {"lstm", "gru", "rnn", NULL};
const char *const cr_optimizer_names[] = {"adam", "rmsprop", "sgd", NULL};

int cr_config_layers(const cr_config *cfg) { return cfg->layers > 0 ? cfg->layers : 1; }

/* Gates per unit: the width of a layer's kernels is G*H. */
static int64_t gates(const cr_config *cfg) { return cfg->cell == CR_CELL_LSTM ? 4 : cfg->cell == CR_CELL_GRU ? 3 : 1; }

/* A GRU with reset_after keeps Keras' (2,3H) bias: row 0 input, row 1 recurrent. */
static bool split_bias(const cr_config *cfg) { return cfg->cell == CR_CELL_GRU && !cfg->gru_reset_before; }

df_status cr_config_check(const cr_config *cfg)
{
    if (cfg->vocab < 1 || cfg->embed < 1 || cfg->hidden < 1)
        return df_error(DF_ERR_ARG, "vocab, embed and hidden sizes must be positive");
    if ((int)cfg->cell < CR_CELL_LSTM || cfg->cell > CR_CELL_RNN)
        return df_error(DF_ERR_ARG, "--cell must be lstm, gru or rnn (got %d)", (int)cfg->cell);
    if (cfg->layers < 0 || cfg->layers > CR_MAX_LAYERS)
        return df_error(DF_ERR_ARG, "--layers must be in 1..%d, got %d", CR_MAX_LAYERS, cfg->layers);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return df_error(DF_ERR_ARG, "--dropout must be in [0, 1), got %g", cfg->dropout);
    if ((int)cfg->optimizer < CR_OPT_ADAM || cfg->optimizer > CR_OPT_SGD)
        return df_error(DF_ERR_ARG, "--optimizer must be adam, rmsprop or sgd (got %d)", (int)cfg->optimizer);
    if (!(cfg->momentum >= 0 && cfg->momentum < 1))
        return df_error(DF_ERR_ARG, "--momentum must be in [0, 1), got %g", cfg->momentum);
    if (cfg->momentum > 0 && cfg->optimizer != CR_OPT_SGD)
        return df_error(DF_ERR_ARG, "--momentum %g applies to --optimizer sgd only, not %s", cfg->momentum,
                        cr_optimizer_names[cfg->optimizer]);
    if (!(cfg->clipnorm >= 0) || isinf(cfg->clipnorm))
        return df_error(DF_ERR_ARG, "--clip must be a norm >= 0 (0 = off), got %g", cfg->clipnorm);
    if (!(cfg->learning_rate >= 0) || isinf(cfg->learning_rate))
        return df_error(DF_ERR_ARG, "--learning-rate must be >= 0, got %g", cfg->learning_rate);
    return DF_OK;
}

void cr_config_describe(const cr_config *cfg, char *buf, size_t cap)
{
    static const char *const types[] = {"LSTM", "GRU", "SimpleRNN"};
    char dropout[32] = "", opt[48], clip[32] = "";
    if (cfg->dropout > 0) snprintf(dropout, sizeof dropout, ", dropout %g", cfg->dropout);
    if (cfg->optimizer == CR_OPT_SGD && cfg->momentum > 0) snprintf(opt, sizeof opt, "sgd (momentum %g)", cfg->momentum);
    else snprintf(opt, sizeof opt, "%s", cr_optimizer_names[cfg->optimizer]);
    if (cfg->clipnorm > 0) snprintf(clip, sizeof clip, ", clip %g", cfg->clipnorm);
    snprintf(buf, cap, "%d x %s(%d%s)%s; %s%s", cr_config_layers(cfg), types[cfg->cell], cfg->hidden,
             cfg->cell == CR_CELL_GRU ? (cfg->gru_reset_before ? ", reset_after=false" : ", reset_after") : "", dropout,
             opt, clip);
}

int64_t cr_layer_param_count(const cr_config *cfg, int64_t in)
{
    int64_t H = cfg->hidden, G = gates(cfg);
    return G * H * (in + H) + (split_bias(cfg) ? 2 : 1) * G * H;
}

/* Keras layer names: "lstm", "lstm_1", ...; "gru"; "simple_rnn". */
static void layer_name(const cr_config *cfg, int k, char *buf, size_t cap)
{
    static const char *const base[] = {"lstm", "gru", "simple_rnn"};
    if (k == 0) snprintf(buf, cap, "%s", base[cfg->cell]);
    else snprintf(buf, cap, "%s_%d", base[cfg->cell], k);
}

static df_status add_param(cr_model *m, df_variable *v)
{
    if (!v) return DF_ERR_NOMEM;
    m->params[m->n_params++] = v;
    return DF_OK;
}

static df_status make_params(cr_model *m, df_rng *rng)
{
    const cr_config *c = &m->cfg;
    int64_t V = c->vocab, E = c->embed, H = c->hidden, G = gates(c);
    char name[64], full[96];
    /* Keras defaults: Embedding uniform(-0.05, 0.05); recurrent and Dense
     * kernels glorot_uniform; the tutorial sets recurrent_initializer=
     * 'glorot_uniform'; biases zero, and LSTM's unit_forget_bias puts 1 in the
     * forget-gate bias. Drawn in layer order, so a one-layer LSTM gets the
     * same weights as before stacking existed. */
    df_status st = add_param(m, m->embedding = df_variable_new("embedding", DF_F32, 2, (int64_t[]){V, E},
                                                                df_init_uniform(-0.05f, 0.05f), rng));
    for (int k = 0; k < m->n_layers && st == DF_OK; k++) {
        cr_layer *L = &m->layers[k];
        layer_name(c, k, name, sizeof name);
        snprintf(full, sizeof full, "%s/kernel", name);
        st = add_param(m, L->kernel = df_variable_new(full, DF_F32, 2, (int64_t[]){k ? H : E, G * H},
                                                      df_init_glorot_uniform(), rng));
        snprintf(full, sizeof full, "%s/recurrent_kernel", name);
        if (st == DF_OK)
            st = add_param(m, L->recurrent_kernel = df_variable_new(full, DF_F32, 2, (int64_t[]){H, G * H},
                                                                    df_init_glorot_uniform(), rng));
        snprintf(full, sizeof full, "%s/bias", name);
        if (st == DF_OK)
            st = add_param(m, L->bias = split_bias(c) ? df_variable_new(full, DF_F32, 2, (int64_t[]){2, G * H}, df_init_zeros(), NULL)
                                                      : df_variable_new(full, DF_F32, 1, (int64_t[]){G * H}, df_init_zeros(), NULL));
        if (st == DF_OK && c->cell == CR_CELL_LSTM) {
            float *b = df_variable_tensor(L->bias).data;
            for (int64_t i = H; i < 2 * H; i++) b[i] = 1.0f;
        }
    }
    if (st == DF_OK)
        st = add_param(m, m->dense_kernel = df_variable_new("dense/kernel", DF_F32, 2, (int64_t[]){H, V},
                                                            df_init_glorot_uniform(), rng));
    if (st == DF_OK)
        st = add_param(m, m->dense_bias = df_variable_new("dense/bias", DF_F32, 1, (int64_t[]){V}, df_init_zeros(), NULL));
    m->kernel = m->layers[0].kernel;
    m->recurrent_kernel = m->layers[0].recurrent_kernel;
    m->bias = m->layers[0].bias;
    return st;
}

static df_optimizer *make_optimizer(const cr_config *c)
{
    df_optimizer *o;
    switch (c->optimizer) {
    case CR_OPT_RMSPROP: o = df_rmsprop_new(c->learning_rate, 0.9f, 1e-7f); break;   /* Keras defaults */
    case CR_OPT_SGD: o = c->momentum > 0 ? df_sgd_momentum_new(c->learning_rate, c->momentum, false)
                                         : df_sgd_new(c->learning_rate); break;
    default: o = df_adam_new(c->learning_rate, 0.9f, 0.999f, 1e-7f); break;
    }
    if (o && c->clipnorm > 0 && df_optimizer_set_global_clipnorm(o, c->clipnorm) != DF_OK) {
        df_optimizer_free(o);
        return NULL;
    }
    return o;
}

df_status cr_model_init(cr_model *m, const cr_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    df_status st = cr_config_check(cfg);
    if (st != DF_OK) return st;
    m->cfg.layers = m->n_layers = cr_config_layers(cfg);
    df_rng rng;
    df_rng_seed(&rng, cfg->seed);
    st = make_params(m, &rng);
    if (st == DF_OK && !(m->opt = make_optimizer(cfg))) st = df_error(DF_ERR_NOMEM, "out of memory for the optimizer");
    if (st == DF_OK) {
        /* the optimizer's iteration counter (first state variable) seeds dropout */
        df_variable *counter = NULL;
        df_optimizer_state(m->opt, &counter, 1);
        m->step_counter = counter;
    }
    if (st != DF_OK) cr_model_free(m);
    return st;
}

void cr_model_free(cr_model *m)
{
    df_function_free(m->fit_step);
    df_function_free(m->custom_step);
    df_function_free(m->eval_step);
    df_function_free(m->logits_fn);
    for (int i = 0; i < m->n_params; i++) df_variable_free(m->params[i]);
    for (int i = 0; i < m->n_states; i++)
        for (int k = 0; k < CR_MAX_LAYERS; k++) {
            df_variable_free(m->states[i].h[k]);
            df_variable_free(m->states[i].c[k]);
        }
    df_optimizer_free(m->opt);
    memset(m, 0, sizeof *m);
}

void cr_model_reset_states(cr_model *m)
{
    for (int i = 0; i < m->n_states; i++)
        for (int k = 0; k < m->n_layers; k++) {
            df_variable_init(m->states[i].h[k], df_init_zeros(), NULL);
            if (m->states[i].c[k]) df_variable_init(m->states[i].c[k], df_init_zeros(), NULL);
        }
}

int64_t cr_model_param_count(const cr_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += df_variable_numel(m->params[i]);
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
    memset(s, 0, sizeof *s);
    int64_t shape[2] = {batch, m->cfg.hidden};
    bool ok = true;
    /* layer 0: "state/h", "state/c"; layer k: "state/h_k", "state/c_k" */
    for (int k = 0; k < m->n_layers && ok; k++) {
        char hname[32], cname[32];
        const char *prefix = purpose ? "eval_state" : "state";
        snprintf(hname, sizeof hname, k ? "%s/h_%d" : "%s/h", prefix, k);
        snprintf(cname, sizeof cname, k ? "%s/c_%d" : "%s/c", prefix, k);
        ok = (s->h[k] = df_variable_new(hname, DF_F32, 2, shape, df_init_zeros(), NULL)) != NULL;
        if (ok && m->cfg.cell == CR_CELL_LSTM)
            ok = (s->c[k] = df_variable_new(cname, DF_F32, 2, shape, df_init_zeros(), NULL)) != NULL;
    }
    if (!ok) {
        for (int k = 0; k < CR_MAX_LAYERS; k++) {
            df_variable_free(s->h[k]);
            df_variable_free(s->c[k]);
        }
        memset(s, 0, sizeof *s);
        return NULL;
    }
    s->batch = batch;
    s->purpose = purpose;
    m->n_states++;
    return s;
}

/* Row `row` (width G*H) of a GRU's (2,3H) bias: 0 the input bias, 1 the recurrent one. */
static df_node *bias_row(df_graph *g, df_variable *bias, int64_t row, int64_t width)
{
    return df_reshape(g, df_slice(g, df_var(g, bias), (int64_t[]){row, 0}, (int64_t[]){1, width}), 1,
                      (int64_t[]){width});
}

/* A layer's input bias (G*H) as a node. */
static df_node *input_bias(df_graph *g, const cr_model *m, const cr_layer *L)
{
    return split_bias(&m->cfg) ? bias_row(g, L->bias, 0, 3 * (int64_t)m->cfg.hidden) : df_var(g, L->bias);
}

/* The first layer's input projection when its bias is Keras' (2,3H) GRU bias:
 * the same two forms as in forward() below, with the bias's input row. */
static df_node *split_bias_projection(df_graph *g, cr_model *m, df_node *x, int64_t B, int64_t T)
{
    df_node *b = input_bias(g, m, &m->layers[0]);
    if (B * T >= m->cfg.vocab)
        return df_gather(g, df_add(g, df_matmul(g, df_var(g, m->embedding), df_var(g, m->kernel), false, false), b), x);
    df_node *emb = df_gather(g, df_var(g, m->embedding), x);                       /* (B,T,E) */
    return df_add(g, df_matmul(g, emb, df_var(g, m->kernel), false, false), b);
}

/* Recurrent layer k on its input projection xproj (B,T,G*H) -> h (B,T,H);
 * the final h (and LSTM c) are assigned to the layer's state. */
static df_node *recurrent_layer(df_graph *g, cr_model *m, cr_state *s, int k, df_node *xproj, int64_t B, int64_t T)
{
    const int64_t H = m->cfg.hidden;
    cr_layer *L = &m->layers[k];
    df_node *w = df_var(g, L->recurrent_kernel), *h0 = df_var(g, s->h[k]), *h;
    if (m->cfg.cell == CR_CELL_GRU)
        h = df_gru(g, xproj, w, split_bias(&m->cfg) ? bias_row(g, L->bias, 1, 3 * H) : NULL, h0, !m->cfg.gru_reset_before);
    else if (m->cfg.cell == CR_CELL_RNN)
        h = df_simple_rnn(g, xproj, w, h0);
    else
        h = df_lstm(g, xproj, w, h0, df_var(g, s->c[k]));
    df_node *h_last = df_slice(g, h, (int64_t[]){0, T - 1, 0}, (int64_t[]){B, 1, H});
    df_assign(g, s->h[k], df_reshape(g, h_last, 2, (int64_t[]){B, H}));
    if (m->cfg.cell == CR_CELL_LSTM) df_assign(g, s->c[k], df_lstm_final_c(g, h));
    return h;
}

/* x (B,T) int -> logits (B,T,V): embedding, the recurrent layers (each
 * followed by dropout when training with --dropout; the mask is drawn from
 * the optimizer's step counter and the layer, so steps differ and reruns
 * repeat), dense. The final states are assigned to the state variables.
 * The first layer's input projection, chosen per trace (the two are equal row by row,
 * and autodiff routes the gradient back through either):
 *  - B*T >= V (training): the embedding and the projection fold into one
 *    lookup, gather(embedding @ kernel + bias, x): one (V,E)@(E,4H) product
 *    instead of (B*T,E)@(E,4H);
 *  - B*T < V (generation, one char at a time): gather(embedding, x) @ kernel
 *    + bias, which does not recompute the whole (V,4H) table each call. */
static df_node *forward(df_graph *g, cr_model *m, df_node *x, int purpose, bool training)
{
    int64_t B = df_node_dim(x, 0), T = df_node_dim(x, 1);
    cr_state *s = cr_model_state(m, (int)B, purpose);
    if (!s) {
        df_graph_set_error(g, m->n_states == CR_MAX_STATES ? DF_ERR_RANGE : DF_ERR_NOMEM, "%s", df_last_error());
        return NULL;
    }
    df_node *xproj;                                                                 /* (B,T,4H) */
    if (split_bias(&m->cfg))
        xproj = split_bias_projection(g, m, x, B, T);
    else
    if (B * T >= m->cfg.vocab) {
        df_node *table = df_add(g, df_matmul(g, df_var(g, m->embedding), df_var(g, m->kernel), false, false),
                                df_var(g, m->bias));                                /* (V,4H) */
        xproj = df_gather(g, table, x);
    } else {
        df_node *emb = df_gather(g, df_var(g, m->embedding), x);                   /* (B,T,E) */
        xproj = df_add(g, df_matmul(g, emb, df_var(g, m->kernel), false, false), df_var(g, m->bias));
    }
    df_node *h = NULL;
    for (int k = 0; k < m->n_layers; k++) {
        if (k > 0)
            xproj = df_add(g, df_matmul(g, h, df_var(g, m->layers[k].kernel), false, false),
                           input_bias(g, m, &m->layers[k]));
        h = recurrent_layer(g, m, s, k, xproj, B, T);
        if (training && m->cfg.dropout > 0)
            h = df_dropout_rows(g, h, m->cfg.dropout, df_var(g, m->step_counter),
                                m->cfg.seed * 0x9E3779B97F4A7C15ull + (uint64_t)k + 1, m->dropout_row0);
    }
    df_node *logits = df_add(g, df_matmul(g, h, df_var(g, m->dense_kernel), false, false),
                             df_var(g, m->dense_bias));                             /* (B,T,V) */
    return logits;
}

/* fit: inputs x, y (B,T) -> loss; gradients of every parameter. */
static df_status build_fit_step(df_graph *g, df_node **in, void *user)
{
    cr_model *m = user;
    df_node *loss = df_sparse_softmax_cross_entropy(g, forward(g, m, in[0], CR_STATE_MAIN, true), in[1]);
    df_node *param_nodes[CR_MAX_PARAMS], *grads[CR_MAX_PARAMS];
    for (int i = 0; i < m->n_params; i++) param_nodes[i] = df_var(g, m->params[i]);
    if (df_gradients(g, loss, NULL, m->n_params, param_nodes, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, m->n_params, m->params, grads);
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
    df_node *predictions = forward(g, m, in[0], CR_STATE_MAIN, true);
    df_node *loss = df_sparse_softmax_cross_entropy(g, predictions, in[1]);
    df_tape_end(tape);
    df_node *grads[CR_MAX_PARAMS];
    if (df_tape_gradient(tape, loss, m->n_params, m->params, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, m->n_params, m->params, grads);
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
    df_graph_output(g, df_sparse_softmax_cross_entropy(g, forward(g, m, in[0], CR_STATE_EVAL, false), in[1]));
    return df_graph_status(g);
}

static df_status build_logits(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, forward(g, user, in[0], CR_STATE_MAIN, false));
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
    static const char *const types[] = {"LSTM", "GRU", "SimpleRNN"};
    int V = m->cfg.vocab, E = m->cfg.embed, H = m->cfg.hidden;
    const char *rule = "_________________________________________________________________";
    char shape[64], count[32];
    struct { char name[64]; int width; int64_t params; } rows[2 + 2 * CR_MAX_LAYERS];
    int n = 0;
    snprintf(rows[n].name, sizeof rows[n].name, "embedding (Embedding)");
    rows[n].width = E;
    rows[n++].params = df_variable_numel(m->embedding);
    for (int k = 0; k < m->n_layers; k++) {
        const cr_layer *L = &m->layers[k];
        char name[40];
        layer_name(&m->cfg, k, name, sizeof name);
        snprintf(rows[n].name, sizeof rows[n].name, "%s (%s)", name, types[m->cfg.cell]);
        rows[n].width = H;
        rows[n++].params = df_variable_numel(L->kernel) + df_variable_numel(L->recurrent_kernel) +
                           df_variable_numel(L->bias);
        if (m->cfg.dropout > 0) {
            snprintf(rows[n].name, sizeof rows[n].name, k ? "dropout_%d (Dropout)" : "dropout (Dropout)", k);
            rows[n].width = H;
            rows[n++].params = 0;
        }
    }
    snprintf(rows[n].name, sizeof rows[n].name, "dense (Dense)");
    rows[n].width = V;
    rows[n++].params = df_variable_numel(m->dense_kernel) + df_variable_numel(m->dense_bias);
    fprintf(out, "Model: \"char_rnn\"\n%s\n %-27s %-25s %-10s\n", rule, "Layer (type)", "Output Shape", "Param #");
    fprintf(out, "=================================================================\n");
    for (int i = 0; i < n; i++) {
        snprintf(shape, sizeof shape, "(%d, None, %d)", batch, rows[i].width);
        fprintf(out, " %-27s %-25s %-10s\n", rows[i].name, shape, with_commas(rows[i].params, count));
        if (i < n - 1) fprintf(out, "                                                                 \n");
    }
    fprintf(out, "=================================================================\n");
    fprintf(out, "Total params: %s\n", with_commas(cr_model_param_count(m), count));
    fprintf(out, "Trainable params: %s\nNon-trainable params: 0\n%s\n", count, rule);
}
