/* layers_rnn.c — the recurrent layers LSTM, GRU and SimpleRNN, written as
 * custom layers (df_layer_def) on the fused cell ops. Variables, their
 * initialisers, the bias layouts and the carried state are the ones
 * examples/charrnn/model.c builds by hand, so a model made of these layers
 * computes the same numbers from the same seed. */
#include <string.h>
#include "../src/base.h"

typedef enum cell_kind { CELL_LSTM, CELL_GRU, CELL_RNN } cell_kind;

#define MAX_STATES 8

/* A stateful layer's carried state for one batch size. */
typedef struct rnn_state {
    int64_t batch;
    df_variable *h, *c;           /* c: LSTM only */
} rnn_state;

typedef struct rnn_config {
    cell_kind cell;
    int64_t units;
    bool reset_after;             /* GRU */
    df_rnn_options options;
    rnn_state states[MAX_STATES];
    int n_states;
} rnn_config;

/* Gates per unit: a kernel is (E, G*H). */
static int64_t gates(const rnn_config *c) { return c->cell == CELL_LSTM ? 4 : c->cell == CELL_GRU ? 3 : 1; }

static df_status rnn_build(df_layer *l, int ndim, const int64_t *in, void *user)
{
    rnn_config *c = user;
    if (ndim != 3 || in[2] == DF_DYNAMIC) {
        char s[96];
        return df_error(DF_ERR_SHAPE, "layer '%s' (%s) takes (batch, time, features) inputs with known features, not %s",
                        df_layer_name(l), df_layer_type(l), df_shape_str(ndim, in, s, sizeof s));
    }
    int64_t H = c->units, GH = gates(c) * H;
    df_init recurrent = c->options.recurrent_glorot ? df_init_glorot_uniform() : df_init_orthogonal(1.0f);
    if (!df_layer_add_weight(l, "kernel", DF_F32, 2, (int64_t[]){in[2], GH}, df_init_glorot_uniform(), true) ||
        !df_layer_add_weight(l, "recurrent_kernel", DF_F32, 2, (int64_t[]){H, GH}, recurrent, true))
        return DF_ERR_NOMEM;
    bool two_rows = c->cell == CELL_GRU && c->reset_after;    /* Keras' (2,3H): input row, recurrent row */
    df_variable *bias = two_rows ? df_layer_add_weight(l, "bias", DF_F32, 2, (int64_t[]){2, GH}, df_init_zeros(), true)
                                 : df_layer_add_weight(l, "bias", DF_F32, 1, &GH, df_init_zeros(), true);
    if (!bias) return DF_ERR_NOMEM;
    if (c->cell == CELL_LSTM) {                                /* unit_forget_bias: gates (i, f, c, o) */
        float *b = df_variable_tensor(bias).data;
        for (int64_t i = H; i < 2 * H; i++) b[i] = 1.0f;
    }
    return DF_OK;
}

static int rnn_output_shape(const df_layer *l, int ndim, const int64_t *in, int64_t *out, void *user)
{
    (void)l;
    const rnn_config *c = user;
    if (ndim != 3) return -1;
    out[0] = in[0];
    if (!c->options.return_sequences) {
        out[1] = c->units;
        return 2;
    }
    out[1] = in[1];
    out[2] = c->units;
    return 3;
}

/* The state for batch size B, created (zero) on first use. */
static rnn_state *state_for(df_layer *l, rnn_config *c, int64_t B)
{
    for (int i = 0; i < c->n_states; i++)
        if (c->states[i].batch == B) return &c->states[i];
    if (c->n_states == MAX_STATES) {
        df_error(DF_ERR_RANGE, "layer '%s': stateful with more than %d batch sizes", df_layer_name(l), MAX_STATES);
        return NULL;
    }
    rnn_state *s = &c->states[c->n_states];
    char h[160], cn[160];
    snprintf(h, sizeof h, "%s/state_h", df_layer_name(l));
    snprintf(cn, sizeof cn, "%s/state_c", df_layer_name(l));
    const int64_t shape[2] = {B, c->units};
    s->h = df_variable_new(h, DF_F32, 2, shape, df_init_zeros(), NULL);
    s->c = c->cell == CELL_LSTM ? df_variable_new(cn, DF_F32, 2, shape, df_init_zeros(), NULL) : NULL;
    if (!s->h || (c->cell == CELL_LSTM && !s->c)) {
        df_variable_free(s->h);
        df_variable_free(s->c);
        memset(s, 0, sizeof *s);
        return NULL;
    }
    s->batch = B;
    c->n_states++;
    return s;
}

/* Row `row` of a GRU's (2,3H) bias as a (3H) node. */
static df_node *bias_row(df_graph *g, df_variable *bias, int64_t row, int64_t width)
{
    return df_reshape(g, df_slice(g, df_var(g, bias), (int64_t[]){row, 0}, (int64_t[]){1, width}), 1,
                      (int64_t[]){width});
}

static df_node *rnn_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)training;
    rnn_config *c = user;
    const int64_t H = c->units, B = df_node_dim(x, 0), T = df_node_dim(x, 1);
    bool two_rows = c->cell == CELL_GRU && c->reset_after, need_last = c->options.stateful || !c->options.return_sequences;
    if (df_node_ndim(x) != 3 || (need_last && T == DF_DYNAMIC) || (c->options.stateful && B == DF_DYNAMIC)) {
        df_graph_set_error(g, DF_ERR_SHAPE, "layer '%s' (%s): input of rank %d; %s", df_layer_name(l), df_layer_type(l),
                           df_node_ndim(x),
                           c->options.stateful && B == DF_DYNAMIC
                               ? "a stateful layer needs a fixed batch size (its state is per batch size)"
                               : "the last step (stateful or not return_sequences) needs a fixed sequence length");
        return NULL;
    }
    df_variable *bias = df_layer_weight(l, "bias");
    df_node *b_in = two_rows ? bias_row(g, bias, 0, 3 * H) : df_var(g, bias);
    df_node *xproj = df_add(g, df_matmul(g, x, df_var(g, df_layer_weight(l, "kernel")), false, false), b_in);
    df_node *w_rec = df_var(g, df_layer_weight(l, "recurrent_kernel"));
    rnn_state *s = NULL;
    if (c->options.stateful && !(s = state_for(l, c, B))) {
        df_graph_set_error(g, DF_ERR_NOMEM, "%s", df_last_error());
        return NULL;
    }
    /* without carried state: zeros of x's batch size, whatever it is at run time */
    df_node *h0 = s ? df_var(g, s->h) : df_fill_like_dims(g, x, 0.0f, DF_F32, 2, (int64_t[]){DF_DYNAMIC, H}), *h;
    if (c->cell == CELL_LSTM)
        h = df_lstm(g, xproj, w_rec, h0, s ? df_var(g, s->c) : df_fill_like_dims(g, x, 0.0f, DF_F32, 2,
                                                                                (int64_t[]){DF_DYNAMIC, H}));
    else if (c->cell == CELL_GRU)
        h = df_gru(g, xproj, w_rec, two_rows ? bias_row(g, bias, 1, 3 * H) : NULL, h0, c->reset_after);
    else
        h = df_simple_rnn(g, xproj, w_rec, h0);
    if (!need_last) return h;
    df_node *h_last = df_reshape(g, df_slice(g, h, (int64_t[]){0, T - 1, 0}, (int64_t[]){-1, 1, -1}), 2,
                                 (int64_t[]){-1, H});
    if (s) {
        df_assign(g, s->h, h_last);
        if (c->cell == CELL_LSTM) df_assign(g, s->c, df_lstm_final_c(g, h));
    }
    return c->options.return_sequences ? h : h_last;
}

static void rnn_reset(df_layer *l, void *user)
{
    (void)l;
    rnn_config *c = user;
    for (int i = 0; i < c->n_states; i++) {
        df_variable_init(c->states[i].h, df_init_zeros(), NULL);
        if (c->states[i].c) df_variable_init(c->states[i].c, df_init_zeros(), NULL);
    }
}

static void rnn_free(void *user)
{
    rnn_config *c = user;
    for (int i = 0; i < c->n_states; i++) {
        df_variable_free(c->states[i].h);
        df_variable_free(c->states[i].c);
    }
    df_free(c);
}

static const df_layer_def lstm_def = {"LSTM", "lstm", rnn_build, rnn_call, rnn_output_shape, rnn_reset, rnn_free};
static const df_layer_def gru_def = {"GRU", "gru", rnn_build, rnn_call, rnn_output_shape, rnn_reset, rnn_free};
static const df_layer_def rnn_def = {"SimpleRNN", "simple_rnn", rnn_build, rnn_call, rnn_output_shape, rnn_reset,
                                     rnn_free};

static df_layer *rnn_layer(const df_layer_def *def, cell_kind cell, int64_t units, bool reset_after,
                           df_rnn_options options)
{
    if (units < 1) {
        df_error(DF_ERR_ARG, "%s: units %lld must be >= 1", def->type, (long long)units);
        return NULL;
    }
    rnn_config *c = df_calloc(1, sizeof *c);
    if (!c) {
        df_error(DF_ERR_NOMEM, "%s: out of memory", def->type);
        return NULL;
    }
    *c = (rnn_config){.cell = cell, .units = units, .reset_after = reset_after, .options = options};
    df_layer *l = df_custom_layer(def, c);
    if (!l) df_free(c);
    return l;
}

df_layer *df_lstm_layer(int64_t units, df_rnn_options options)
{
    return rnn_layer(&lstm_def, CELL_LSTM, units, false, options);
}

df_layer *df_gru_layer(int64_t units, bool reset_after, df_rnn_options options)
{
    return rnn_layer(&gru_def, CELL_GRU, units, reset_after, options);
}

df_layer *df_simple_rnn_layer(int64_t units, df_rnn_options options)
{
    return rnn_layer(&rnn_def, CELL_RNN, units, false, options);
}
