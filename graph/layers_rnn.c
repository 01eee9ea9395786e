/* layers_rnn.c — the recurrent layers LSTM, GRU and SimpleRNN, written as
 * custom layers (df_layer_def) on the fused cell ops. Variables, their
 * initialisers, the bias layouts and the carried state are the ones
 * examples/charrnn/model.c builds by hand, so a model made of these layers
 * computes the same numbers from the same seed. */
#include <string.h>
#include "../src/base.h"
#include "graph.h"                 /* a gathered input's op and inputs (gathered_ids) */
#include "../ops/registry.h"

typedef enum cell_kind { CELL_LSTM, CELL_GRU, CELL_RNN } cell_kind;

#define MAX_STATES DF_MAX_LAYER_STATES   /* (batch size, slot) pairs per layer */
#define STATE_NAME_CAP 160

/* A stateful layer's carried state for one batch size in one slot. */
typedef struct rnn_state {
    int64_t batch;
    int slot;
    df_variable *h, *c;           /* c: LSTM only */
} rnn_state;

typedef struct rnn_config {
    cell_kind cell;
    int64_t units;
    bool reset_after;             /* GRU */
    df_rnn_options options;
    rnn_state states[MAX_STATES];
    int n_states;
    char h_name[DF_MAX_STATE_SLOTS][STATE_NAME_CAP], c_name[DF_MAX_STATE_SLOTS][STATE_NAME_CAP]; /* "": default */
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

/* A state variable's name: the one set for the slot, else "<layer>/state_h"
 * in slot 0 and "<layer>/state_h_slot<s>" in slot s. */
static void state_name(const df_layer *l, const char *set, const char *which, int slot, char *buf, size_t cap)
{
    if (*set) snprintf(buf, cap, "%s", set);
    else if (slot == 0) snprintf(buf, cap, "%s/state_%s", df_layer_name(l), which);
    else snprintf(buf, cap, "%s/state_%s_slot%d", df_layer_name(l), which, slot);
}

/* The state for batch size B in a slot, created (zero) on first use. */
static rnn_state *state_for(df_layer *l, rnn_config *c, int64_t B, int slot)
{
    for (int i = 0; i < c->n_states; i++)
        if (c->states[i].batch == B && c->states[i].slot == slot) return &c->states[i];
    if (c->n_states == MAX_STATES) {
        df_error(DF_ERR_RANGE, "layer '%s': stateful with more than %d batch sizes (each state slot counts apart)",
                 df_layer_name(l), MAX_STATES);
        return NULL;
    }
    rnn_state *s = &c->states[c->n_states];
    char h[STATE_NAME_CAP + 32], cn[STATE_NAME_CAP + 32];
    state_name(l, c->h_name[slot], "h", slot, h, sizeof h);
    state_name(l, c->c_name[slot], "c", slot, cn, sizeof cn);
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
    s->slot = slot;
    c->n_states++;
    return s;
}

static int rnn_state_variables(df_layer *l, int64_t batch, int slot, df_variable **out, int max, void *user)
{
    rnn_config *c = user;
    if (!c->options.stateful) return 0;
    if (batch < 1 || slot < 0 || slot >= DF_MAX_STATE_SLOTS) {
        df_error(DF_ERR_ARG, "layer '%s': state of batch %lld, slot %d (batch >= 1, slot 0..%d)", df_layer_name(l),
                 (long long)batch, slot, DF_MAX_STATE_SLOTS - 1);
        return -1;
    }
    rnn_state *s = state_for(l, c, batch, slot);
    if (!s) return -1;
    if (out && max > 0) out[0] = s->h;
    if (s->c && out && max > 1) out[1] = s->c;
    return s->c ? 2 : 1;
}

/* Row `row` of a GRU's (2,3H) bias as a (3H) node. */
static df_node *bias_row(df_graph *g, df_variable *bias, int64_t row, int64_t width)
{
    return df_reshape(g, df_slice(g, df_var(g, bias), (int64_t[]){row, 0}, (int64_t[]){1, width}), 1,
                      (int64_t[]){width});
}

static bool two_row_bias(const rnn_config *c) { return c->cell == CELL_GRU && c->reset_after; }

/* x (..., E) -> x @ kernel + input bias (..., G*H): the part of the call a
 * model may fold into an Embedding before the layer. */
static df_node *rnn_project(df_layer *l, df_graph *g, df_node *x, void *user)
{
    rnn_config *c = user;
    df_variable *bias = df_layer_weight(l, "bias");
    df_node *product = df_matmul(g, x, df_var(g, df_layer_weight(l, "kernel")), false, false);
    return df_add(g, product, two_row_bias(c) ? bias_row(g, bias, 0, 3 * c->units) : df_var(g, bias));
}

/* The projected input as a gather of a table's rows (an Embedding folded
 * into the layer, graph/layers.c): its ids node (the table is its input 0),
 * else NULL. */
static df_node *gathered_ids(df_node *xproj) { return xproj->op == &df_op_gather ? xproj->in[1] : NULL; }

/* The recurrence on the projected input xproj (B,T,G*H). An LSTM on a
 * gather of the table reads the table's rows by id (df_lstm_ids): the
 * gathered (B,T,4H) rows are then never written, nor their gradient summed
 * back by a scatter_add; the gather is left with no reader. */
static df_node *rnn_call_projected(df_layer *l, df_graph *g, df_node *xproj, bool training, void *user)
{
    (void)training;
    rnn_config *c = user;
    if (!xproj) return NULL;
    const int64_t H = c->units, B = df_node_dim(xproj, 0), T = df_node_dim(xproj, 1);
    bool need_last = c->options.stateful || !c->options.return_sequences;
    if (df_node_ndim(xproj) != 3 || (need_last && T == DF_DYNAMIC) || (c->options.stateful && B == DF_DYNAMIC)) {
        df_graph_set_error(g, DF_ERR_SHAPE, "layer '%s' (%s): input of rank %d; %s", df_layer_name(l), df_layer_type(l),
                           df_node_ndim(xproj),
                           c->options.stateful && B == DF_DYNAMIC
                               ? "a stateful layer needs a fixed batch size (its state is per batch size)"
                               : "the last step (stateful or not return_sequences) needs a fixed sequence length");
        return NULL;
    }
    df_variable *bias = df_layer_weight(l, "bias");
    df_node *w_rec = df_var(g, df_layer_weight(l, "recurrent_kernel"));
    rnn_state *s = NULL;
    if (c->options.stateful && !(s = state_for(l, c, B, df_layer_state_slot(l)))) {
        df_graph_set_error(g, c->n_states == MAX_STATES ? DF_ERR_RANGE : DF_ERR_NOMEM, "%s", df_last_error());
        return NULL;
    }
    df_node *ids = c->cell == CELL_LSTM ? gathered_ids(xproj) : NULL, *batch_like = ids ? ids : xproj;
    /* without carried state: zeros of x's batch size, whatever it is at run time */
    df_node *h0 = s ? df_var(g, s->h) : df_fill_like_dims(g, batch_like, 0.0f, DF_F32, 2, (int64_t[]){DF_DYNAMIC, H}), *h;
    df_node *c0 = c->cell != CELL_LSTM ? NULL
                  : s                  ? df_var(g, s->c)
                                       : df_fill_like_dims(g, batch_like, 0.0f, DF_F32, 2, (int64_t[]){DF_DYNAMIC, H});
    if (ids)
        h = df_lstm_ids(g, xproj->in[0], ids, w_rec, h0, c0);
    else if (c->cell == CELL_LSTM)
        h = df_lstm(g, xproj, w_rec, h0, c0);
    else if (c->cell == CELL_GRU)
        h = df_gru(g, xproj, w_rec, two_row_bias(c) ? bias_row(g, bias, 1, 3 * H) : NULL, h0, c->reset_after);
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

static df_node *rnn_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    if (df_node_ndim(x) != 3) {
        df_graph_set_error(g, DF_ERR_SHAPE, "layer '%s' (%s) takes (batch, time, features) inputs, not rank %d",
                           df_layer_name(l), df_layer_type(l), df_node_ndim(x));
        return NULL;
    }
    return rnn_call_projected(l, g, rnn_project(l, g, x, user), training, user);
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

#define RNN_DEF(type_, base_)                                                                               \
    {.type = type_, .base_name = base_, .build = rnn_build, .call = rnn_call, .output_shape = rnn_output_shape, \
     .reset_states = rnn_reset, .free_user = rnn_free, .project = rnn_project,                                 \
     .call_projected = rnn_call_projected, .state_variables = rnn_state_variables}
static const df_layer_def lstm_def = RNN_DEF("LSTM", "lstm");
static const df_layer_def gru_def = RNN_DEF("GRU", "gru");
static const df_layer_def rnn_def = RNN_DEF("SimpleRNN", "simple_rnn");

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

df_status df_rnn_layer_set_state_names(df_layer *l, int slot, const char *h_name, const char *c_name)
{
    const df_layer_def *def = df_layer_definition(l);
    if (def != &lstm_def && def != &gru_def && def != &rnn_def)
        return df_error(DF_ERR_ARG, "df_rnn_layer_set_state_names: '%s' is not a recurrent layer", df_layer_name(l));
    rnn_config *c = df_layer_user(l);
    bool needs_c = c->cell == CELL_LSTM;
    if (slot < 0 || slot >= DF_MAX_STATE_SLOTS || !h_name || !*h_name || strlen(h_name) >= STATE_NAME_CAP ||
        (needs_c && (!c_name || !*c_name || strlen(c_name) >= STATE_NAME_CAP)))
        return df_error(DF_ERR_ARG, "layer '%s': state names of 1..%d characters (c too for an LSTM), slot 0..%d",
                        df_layer_name(l), STATE_NAME_CAP - 1, DF_MAX_STATE_SLOTS - 1);
    for (int i = 0; i < c->n_states; i++)
        if (c->states[i].slot == slot)
            return df_error(DF_ERR_STATE, "layer '%s': the state of slot %d already exists as '%s'; name it before "
                            "its first use", df_layer_name(l), slot, df_variable_name(c->states[i].h));
    snprintf(c->h_name[slot], STATE_NAME_CAP, "%s", h_name);
    if (needs_c) snprintf(c->c_name[slot], STATE_NAME_CAP, "%s", c_name);
    return DF_OK;
}
