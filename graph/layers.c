/* layers.c — Keras-style layers and models: a layer owns its variables
 * (named "<layer>/<weight>"), builds them on its first call (or eagerly) and
 * adds its nodes to a graph being traced; a model names its layers uniquely,
 * seeds their initialisers, lists their variables, prints the summary and
 * saves/restores the weights by name. Dense, Embedding and Dropout are here;
 * the recurrent layers are in layers_rnn.c, written against the public
 * custom-layer interface. */
#include <string.h>
#include "graph.h"

#define MAX_WEIGHTS DF_LAYER_MAX_WEIGHTS
#define NAME_CAP 96

struct df_layer {
    const df_layer_def *def;
    void *user;
    char name[NAME_CAP];
    bool named;                   /* chosen with df_layer_set_name */
    df_model *model;
    df_rng *rng;
    bool built;
    int in_ndim, out_ndim;        /* shapes at build, DF_DYNAMIC where open */
    int64_t in_shape[DF_MAX_DIMS], out_shape[DF_MAX_DIMS];
    df_variable *weights[MAX_WEIGHTS];
    char weight_names[MAX_WEIGHTS][NAME_CAP];    /* the short names ("kernel") */
    bool trainable[MAX_WEIGHTS];
    int n_weights;
    struct { char weight[NAME_CAP], full[2 * NAME_CAP]; } renames[MAX_WEIGHTS];   /* df_layer_set_weight_name */
    int n_renames;
    int state_slot;               /* of the call being traced */
};

struct df_model {
    char *name;
    df_rng rng;
    df_layer **layers;
    int n_layers, cap_layers;
    df_optimizer *opt;        /* df_model_compile's; not owned */
    df_loss loss;             /* 0 until compiled */
    bool has_steps;           /* steps read opt and loss when they trace: no recompiling then */
};

/* ------------------------------------------------------------ the layer */

static const char *keras_shape(int ndim, const int64_t *shape, char *buf, size_t cap);

df_layer *df_custom_layer(const df_layer_def *def, void *user)
{
    if (!def || !def->call || !def->type || !def->base_name) {
        df_error(DF_ERR_ARG, "df_custom_layer: the definition needs a type, a base name and a call");
        return NULL;
    }
    df_layer *l = df_calloc(1, sizeof *l);
    if (!l) {
        df_error(DF_ERR_NOMEM, "layer '%s': out of memory", def->base_name);
        return NULL;
    }
    l->def = def;
    l->user = user;
    snprintf(l->name, sizeof l->name, "%s", def->base_name);
    return l;
}

void df_layer_free(df_layer *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_weights; i++) df_variable_free(l->weights[i]);
    if (l->def->free_user) l->def->free_user(l->user);
    df_free(l);
}

const char *df_layer_name(const df_layer *l) { return l ? l->name : "(null)"; }
const df_layer_def *df_layer_definition(const df_layer *l) { return l ? l->def : NULL; }
void *df_layer_user(const df_layer *l) { return l ? l->user : NULL; }
int df_layer_state_slot(const df_layer *l) { return l ? l->state_slot : 0; }
const char *df_layer_type(const df_layer *l) { return l ? l->def->type : "(null)"; }
bool df_layer_built(const df_layer *l) { return l && l->built; }
void df_layer_set_rng(df_layer *l, df_rng *rng) { if (l) l->rng = rng; }

df_status df_layer_set_name(df_layer *l, const char *name)
{
    if (!l || !name || !*name || strlen(name) >= NAME_CAP)
        return df_error(DF_ERR_ARG, "df_layer_set_name: a name of 1..%d characters", NAME_CAP - 1);
    if (l->model || l->built)
        return df_error(DF_ERR_STATE, "layer '%s': name it before adding it to a model or building it", l->name);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->named = true;
    return DF_OK;
}

df_status df_layer_set_weight_name(df_layer *l, const char *name, const char *full_name)
{
    if (!l || !name || !*name || !full_name || !*full_name || strlen(name) >= NAME_CAP ||
        strlen(full_name) >= 2 * NAME_CAP)
        return df_error(DF_ERR_ARG, "df_layer_set_weight_name: a weight name of 1..%d characters and a full name of "
                        "1..%d", NAME_CAP - 1, 2 * NAME_CAP - 1);
    if (l->built)
        return df_error(DF_ERR_STATE, "layer '%s' is built: name its weight '%s' before building it", l->name, name);
    int i = 0;
    while (i < l->n_renames && strcmp(l->renames[i].weight, name) != 0) i++;
    if (i == MAX_WEIGHTS) return df_error(DF_ERR_RANGE, "layer '%s': more than %d weight names", l->name, MAX_WEIGHTS);
    if (i == l->n_renames) l->n_renames++;
    snprintf(l->renames[i].weight, NAME_CAP, "%s", name);
    snprintf(l->renames[i].full, 2 * NAME_CAP, "%s", full_name);
    return DF_OK;
}

/* The variable name of weight `name`: "<layer>/<name>" unless renamed. */
static void weight_variable_name(const df_layer *l, const char *name, char *buf, size_t cap)
{
    for (int i = 0; i < l->n_renames; i++)
        if (strcmp(l->renames[i].weight, name) == 0) {
            snprintf(buf, cap, "%s", l->renames[i].full);
            return;
        }
    snprintf(buf, cap, "%s/%s", l->name, name);
}

df_variable *df_layer_add_weight(df_layer *l, const char *name, df_dtype dtype, int ndim, const int64_t *shape,
                                 df_init init, bool trainable)
{
    if (!l || !name) {
        df_error(DF_ERR_ARG, "df_layer_add_weight: null layer or name");
        return NULL;
    }
    if (l->n_weights == MAX_WEIGHTS) {
        df_error(DF_ERR_RANGE, "layer '%s': more than %d weights", l->name, MAX_WEIGHTS);
        return NULL;
    }
    if (strlen(name) >= NAME_CAP) {
        df_error(DF_ERR_ARG, "layer '%s': a weight name of at most %d characters", l->name, NAME_CAP - 1);
        return NULL;
    }
    if (df_layer_weight(l, name)) {
        df_error(DF_ERR_ARG, "layer '%s' already has a weight '%s'", l->name, name);
        return NULL;
    }
    char full[2 * NAME_CAP];
    weight_variable_name(l, name, full, sizeof full);
    df_variable *v = df_variable_new(full, dtype, ndim, shape, init, l->rng);
    if (!v) return NULL;             /* df_variable_new's message names the variable */
    snprintf(l->weight_names[l->n_weights], NAME_CAP, "%s", name);
    l->trainable[l->n_weights] = trainable;
    l->weights[l->n_weights++] = v;
    return v;
}

df_variable *df_layer_weight(const df_layer *l, const char *name)
{
    if (!l || !name) return NULL;
    for (int i = 0; i < l->n_weights; i++)
        if (strcmp(l->weight_names[i], name) == 0) return l->weights[i];
    return NULL;
}

int df_layer_weights(const df_layer *l, df_variable **out, int max)
{
    if (!l) return 0;
    for (int i = 0; i < l->n_weights && i < max && out; i++) out[i] = l->weights[i];
    return l->n_weights;
}

int64_t df_layer_param_count(const df_layer *l)
{
    int64_t n = 0;
    for (int i = 0; l && i < l->n_weights; i++) n += df_variable_numel(l->weights[i]);
    return n;
}

void df_layer_reset_states(df_layer *l)
{
    if (l && l->def->reset_states) l->def->reset_states(l, l->user);
}

static df_status layer_output_shape(const df_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out)
{
    if (!l->def->output_shape) {
        memcpy(out, in, (size_t)ndim * sizeof *out);
        *out_ndim = ndim;
        return DF_OK;
    }
    int nd = l->def->output_shape(l, ndim, in, out, l->user);
    if (nd < 0 || nd > DF_MAX_DIMS)
        return df_error(DF_ERR_SHAPE, "layer '%s' (%s): no output shape for this input", l->name, l->def->type);
    *out_ndim = nd;
    return DF_OK;
}

df_status df_layer_build(df_layer *l, int ndim, const int64_t *input_shape)
{
    if (!l || ndim < 1 || ndim > DF_MAX_DIMS || !input_shape)
        return df_error(DF_ERR_ARG, "df_layer_build: a layer and an input shape of rank 1..%d", DF_MAX_DIMS);
    if (l->built) return df_error(DF_ERR_STATE, "layer '%s' is already built", l->name);
    char s[96];
    if (!l->rng)
        return df_error(DF_ERR_STATE, "layer '%s' has no RNG for its initialisers: add it to a model or call "
                        "df_layer_set_rng", l->name);
    df_status st = l->def->build ? l->def->build(l, ndim, input_shape, l->user) : DF_OK;
    if (st == DF_OK) st = layer_output_shape(l, ndim, input_shape, &l->out_ndim, l->out_shape);
    if (st != DF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        for (int i = 0; i < l->n_weights; i++) df_variable_free(l->weights[i]);
        l->n_weights = 0;
        return df_error(st, "building layer '%s' (%s) for input %s: %s", l->name, l->def->type,
                        df_shape_str(ndim, input_shape, s, sizeof s), msg);
    }
    l->in_ndim = ndim;
    memcpy(l->in_shape, input_shape, (size_t)ndim * sizeof *input_shape);
    l->built = true;
    return DF_OK;
}

/* Builds l for an input of this shape, or checks that it was built for
 * one of this rank and last dimension; false (the graph failed) if not. */
static bool ready_for(df_layer *l, df_graph *g, int nd, const int64_t *shape)
{
    char sx[96], sb[96];
    if (!l->built) {
        df_status st = nd < 1 ? df_error(DF_ERR_SHAPE, "layer '%s' (%s): a scalar input", l->name, l->def->type)
                              : df_layer_build(l, nd, shape);
        if (st != DF_OK) df_graph_fail(g, st, "%s", df_last_error());
        return st == DF_OK;
    }
    /* An open last dimension at build (an Embedding's sequence length) takes
     * any size; a layer whose weights depend on it cannot be built open. */
    if (nd == l->in_ndim && (l->in_shape[nd - 1] == DF_DYNAMIC || shape[nd - 1] == l->in_shape[nd - 1])) return true;
    df_graph_fail(g, DF_ERR_SHAPE, "layer '%s' (%s) was built for input %s, called on %s", l->name, l->def->type,
                  keras_shape(l->in_ndim, l->in_shape, sb, sizeof sb), keras_shape(nd, shape, sx, sizeof sx));
    return false;
}

/* The arguments every call checks; false when there is nothing to do (an
 * earlier error, a NULL input) or the call is wrong (then the graph failed). */
static bool call_ok(const df_layer *l, df_graph *g, const df_node *x, int slot)
{
    if (!g) {
        df_error(DF_ERR_ARG, "df_layer_call: null graph");
        return false;
    }
    if (!l) {
        df_graph_fail(g, DF_ERR_ARG, "df_layer_call: null layer");
        return false;
    }
    if (slot < 0 || slot >= DF_MAX_STATE_SLOTS) {
        df_graph_fail(g, DF_ERR_ARG, "layer '%s': state slot %d not in 0..%d", l->name, slot, DF_MAX_STATE_SLOTS - 1);
        return false;
    }
    return x && g->status == DF_OK;
}

/* Runs one of l's call callbacks with the slot set for the trace. */
static df_node *traced_call(df_layer *l, df_graph *g, df_node *x, bool training, int slot, bool projected)
{
    l->state_slot = slot;
    df_node *y = projected ? l->def->call_projected(l, g, x, training, l->user) : l->def->call(l, g, x, training, l->user);
    l->state_slot = DF_STATE_MAIN;
    if (!y && g->status == DF_OK)
        df_graph_fail(g, DF_ERR_STATE, "layer '%s' (%s): its call returned no node", l->name, l->def->type);
    return y;
}

df_node *df_layer_call_slot(df_layer *l, df_graph *g, df_node *x, bool training, int slot)
{
    if (!call_ok(l, g, x, slot) || !ready_for(l, g, df_node_ndim(x), df_node_shape(x))) return NULL;
    return traced_call(l, g, x, training, slot, false);
}

df_node *df_layer_call(df_layer *l, df_graph *g, df_node *x, bool training)
{
    return df_layer_call_slot(l, g, x, training, DF_STATE_MAIN);
}

int df_layer_state_variables(df_layer *l, int64_t batch, int slot, df_variable **out, int max)
{
    if (!l) {
        df_error(DF_ERR_ARG, "df_layer_state_variables: null layer");
        return -1;
    }
    return l->def->state_variables ? l->def->state_variables(l, batch, slot, out, max, l->user) : 0;
}

/* --------------------------------------------------------------- Dense */

typedef struct dense_config {
    int64_t units;
    df_activation activation;
    bool use_bias;
} dense_config;

/* Dense and the recurrent layers size their kernels by the input's last dimension. */
static df_status require_last_dim(const df_layer *l, int ndim, const int64_t *in)
{
    if (in[ndim - 1] != DF_DYNAMIC) return DF_OK;
    char s[96];
    return df_error(DF_ERR_SHAPE, "layer '%s' (%s): the input's last dimension must be known to build it, got %s",
                    l->name, l->def->type, df_shape_str(ndim, in, s, sizeof s));
}

static df_status dense_build(df_layer *l, int ndim, const int64_t *in, void *user)
{
    dense_config *c = user;
    df_status st = require_last_dim(l, ndim, in);
    if (st != DF_OK) return st;
    if (!df_layer_add_weight(l, "kernel", DF_F32, 2, (int64_t[]){in[ndim - 1], c->units}, df_init_glorot_uniform(),
                             true))
        return DF_ERR_NOMEM;
    if (c->use_bias && !df_layer_add_weight(l, "bias", DF_F32, 1, &c->units, df_init_zeros(), true))
        return DF_ERR_NOMEM;
    return DF_OK;
}

static df_node *activate(df_graph *g, df_node *x, df_activation a)
{
    switch (a) {
    case DF_ACT_RELU: return df_relu(g, x);
    case DF_ACT_TANH: return df_tanh(g, x);
    case DF_ACT_SIGMOID: return df_sigmoid(g, x);
    case DF_ACT_GELU: return df_gelu(g, x);
    case DF_ACT_GELU_TANH: return df_gelu_tanh(g, x);
    default: return x;
    }
}

static df_node *dense_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)training;
    dense_config *c = user;
    df_node *y = df_matmul(g, x, df_var(g, df_layer_weight(l, "kernel")), false, false);
    if (c->use_bias) y = df_add(g, y, df_var(g, df_layer_weight(l, "bias")));
    return activate(g, y, c->activation);
}

static int dense_output_shape(const df_layer *l, int ndim, const int64_t *in, int64_t *out, void *user)
{
    (void)l;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    out[ndim - 1] = ((dense_config *)user)->units;
    return ndim;
}

static const df_layer_def dense_def = {
    .type = "Dense", .base_name = "dense", .build = dense_build, .call = dense_call,
    .output_shape = dense_output_shape, .free_user = df_free,
};

/* A built-in layer with a copy of its config. */
static df_layer *layer_with_config(const df_layer_def *def, const void *config, size_t bytes)
{
    void *copy = df_malloc(bytes);
    if (!copy) {
        df_error(DF_ERR_NOMEM, "layer '%s': out of memory", def->base_name);
        return NULL;
    }
    memcpy(copy, config, bytes);
    df_layer *l = df_custom_layer(def, copy);
    if (!l) df_free(copy);
    return l;
}

df_layer *df_dense_layer(int64_t units, df_activation activation, bool use_bias)
{
    if (units < 1) {
        df_error(DF_ERR_ARG, "Dense: units must be >= 1, got %lld", (long long)units);
        return NULL;
    }
    if ((int)activation < DF_ACT_NONE || activation > DF_ACT_GELU_TANH) {
        df_error(DF_ERR_ARG, "Dense: activation %d is not a DF_ACT_* value", (int)activation);
        return NULL;
    }
    dense_config c = {units, activation, use_bias};
    return layer_with_config(&dense_def, &c, sizeof c);
}

/* ------------------------------------------------------ LayerNormalization */

typedef struct layer_norm_config { float epsilon; } layer_norm_config;

static df_status layer_norm_build(df_layer *l, int ndim, const int64_t *in, void *user)
{
    (void)user;
    df_status st = require_last_dim(l, ndim, in);
    if (st != DF_OK) return st;
    const int64_t *C = &in[ndim - 1];
    return df_layer_add_weight(l, "gamma", DF_F32, 1, C, df_init_ones(), true) &&
                   df_layer_add_weight(l, "beta", DF_F32, 1, C, df_init_zeros(), true)
               ? DF_OK
               : DF_ERR_NOMEM;
}

static df_node *layer_norm_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)training;
    return df_layer_norm(g, x, df_var(g, df_layer_weight(l, "gamma")), df_var(g, df_layer_weight(l, "beta")),
                         ((layer_norm_config *)user)->epsilon);
}

static int same_shape(const df_layer *l, int ndim, const int64_t *in, int64_t *out, void *user)
{
    (void)l, (void)user;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    return ndim;
}

static const df_layer_def layer_norm_def = {
    .type = "LayerNormalization", .base_name = "layer_normalization", .build = layer_norm_build,
    .call = layer_norm_call, .output_shape = same_shape, .free_user = df_free,
};

df_layer *df_layer_norm_layer(float epsilon)
{
    if (!(epsilon > 0)) {
        df_error(DF_ERR_ARG, "LayerNormalization: epsilon must be > 0, got %g", epsilon);
        return NULL;
    }
    layer_norm_config c = {epsilon};
    return layer_with_config(&layer_norm_def, &c, sizeof c);
}

/* ----------------------------------------------------------- Embedding */

typedef struct embedding_config { int64_t input_dim, output_dim; } embedding_config;

static df_status embedding_build(df_layer *l, int ndim, const int64_t *in, void *user)
{
    (void)ndim, (void)in;
    embedding_config *c = user;
    return df_layer_add_weight(l, "embeddings", DF_F32, 2, (int64_t[]){c->input_dim, c->output_dim},
                               df_init_uniform(-0.05f, 0.05f), true)
               ? DF_OK
               : DF_ERR_NOMEM;
}

static df_node *embedding_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)training, (void)user;
    return df_gather(g, df_var(g, df_layer_weight(l, "embeddings")), x);
}

static int embedding_output_shape(const df_layer *l, int ndim, const int64_t *in, int64_t *out, void *user)
{
    (void)l;
    if (ndim + 1 > DF_MAX_DIMS) return -1;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    out[ndim] = ((embedding_config *)user)->output_dim;
    return ndim + 1;
}

static const df_layer_def embedding_def = {
    .type = "Embedding", .base_name = "embedding", .build = embedding_build, .call = embedding_call,
    .output_shape = embedding_output_shape, .free_user = df_free,
};

df_layer *df_embedding_layer(int64_t input_dim, int64_t output_dim)
{
    if (input_dim < 1 || output_dim < 1) {
        df_error(DF_ERR_ARG, "Embedding: input_dim %lld and output_dim %lld must be >= 1", (long long)input_dim,
                 (long long)output_dim);
        return NULL;
    }
    embedding_config c = {input_dim, output_dim};
    return layer_with_config(&embedding_def, &c, sizeof c);
}

/* ------------------------------------------------- tied output (x @ E^T) */

/* The output head of a language model that reads the token embedding
 * transposed (GPT-2, nanoGPT): logits = x @ embeddings^T (+ bias). It owns
 * only its bias, so the shared matrix is listed, saved and counted once. */
typedef struct tied_config { df_layer *embedding; bool use_bias; } tied_config;

static df_variable *tied_matrix(const df_layer *l)
{
    return df_layer_weight(((tied_config *)l->user)->embedding, "embeddings");
}

static const char *model_name(const df_model *m) { return m ? m->name : "(none)"; }

/* The head l of model m (NULL: of none) refused for an embedding of another
 * model: it would read the matrix after that model freed it. */
static df_status foreign_embedding(const df_layer *l, const df_model *m)
{
    const df_layer *e = ((const tied_config *)l->user)->embedding;
    return df_error(DF_ERR_ARG, "layer '%s' (TiedOutput) of model '%s' ties embedding '%s' of model '%s': the "
                    "embedding must be added to the same model first", l->name, model_name(m), e->name,
                    model_name(e->model));
}

static df_status tied_build(df_layer *l, int ndim, const int64_t *in, void *user)
{
    tied_config *c = user;
    df_status st = require_last_dim(l, ndim, in);
    if (st != DF_OK) return st;
    if (c->embedding->model != l->model) return foreign_embedding(l, l->model);
    df_variable *e = tied_matrix(l);
    if (!e) return df_error(DF_ERR_STATE, "layer '%s': its embedding '%s' is not built yet (call or build it first)",
                            l->name, c->embedding->name);
    if (e->shape[1] != in[ndim - 1])
        return df_error(DF_ERR_SHAPE, "layer '%s': input width %lld differs from embedding '%s' width %lld", l->name,
                        (long long)in[ndim - 1], c->embedding->name, (long long)e->shape[1]);
    if (c->use_bias && !df_layer_add_weight(l, "bias", DF_F32, 1, &e->shape[0], df_init_zeros(), true))
        return DF_ERR_NOMEM;
    return DF_OK;
}

// x (..., E) @ embeddings (V, E)^T -> logits (..., V)
static df_node *tied_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)training;
    df_node *y = df_matmul(g, x, df_var(g, tied_matrix(l)), false, true);
    if (((tied_config *)user)->use_bias) y = df_add(g, y, df_var(g, df_layer_weight(l, "bias")));
    return y;
}

static int tied_output_shape(const df_layer *l, int ndim, const int64_t *in, int64_t *out, void *user)
{
    memcpy(out, in, (size_t)ndim * sizeof *in);
    out[ndim - 1] = ((embedding_config *)((tied_config *)user)->embedding->user)->input_dim;
    (void)l;
    return ndim;
}

static const df_layer_def tied_def = {
    .type = "TiedOutput", .base_name = "tied_output", .build = tied_build, .call = tied_call,
    .output_shape = tied_output_shape, .free_user = df_free,
};

df_layer *df_tied_output_layer(df_layer *embedding, bool use_bias)
{
    if (!embedding || embedding->def != &embedding_def) {
        df_error(DF_ERR_ARG, "TiedOutput: needs an Embedding layer, got %s", embedding ? embedding->def->type : "NULL");
        return NULL;
    }
    tied_config c = {embedding, use_bias};
    return layer_with_config(&tied_def, &c, sizeof c);
}

/* ------------------------------------------------------------- Dropout */

typedef struct dropout_config {
    float rate;
    df_variable *seed;            /* an i32 scalar; NULL until the first training call made own_counter */
    df_variable *own_counter;     /* the layer's step counter, advanced by each training call */
    uint64_t salt;
    bool salted;
    int64_t first_row;
} dropout_config;

static void dropout_free(void *user)
{
    dropout_config *c = user;
    df_variable_free(c->own_counter);
    df_free(c);
}

/* FNV-1a of the layer's name: distinct dropout layers draw distinct masks. */
static uint64_t name_salt(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return h;
}

/* The layer's own step counter "<layer>/seed", made on first use unless
 * df_dropout_layer_set_seed gave it another seed. */
static df_status dropout_seed(df_layer *l, dropout_config *c)
{
    if (c->seed) return DF_OK;
    char name[2 * NAME_CAP];
    snprintf(name, sizeof name, "%s/seed", l->name);
    c->seed = c->own_counter = df_variable_new(name, DF_I32, 0, NULL, df_init_zeros(), NULL);
    if (c->seed) return DF_OK;
    char prefix[2 * NAME_CAP];
    snprintf(prefix, sizeof prefix, "layer '%s'", l->name);
    return df_error_prefix(DF_ERR_NOMEM, prefix);
}

/* Its own counter carries from step to step, like a recurrent state. */
static int dropout_state_variables(df_layer *l, int64_t batch, int slot, df_variable **out, int max, void *user)
{
    (void)batch, (void)slot;
    dropout_config *c = user;
    if (c->seed && !c->own_counter) return 0;     /* someone else's variable, e.g. the optimizer's counter */
    if (dropout_seed(l, c) != DF_OK) return -1;
    if (out && max > 0) out[0] = c->own_counter;
    return 1;
}

static df_node *dropout_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    dropout_config *c = user;
    if (!training || c->rate == 0) return x;
    if (dropout_seed(l, c) != DF_OK) {
        df_graph_fail(g, DF_ERR_NOMEM, "%s", df_last_error());
        return NULL;
    }
    df_node *seed = df_var(g, c->seed);
    df_node *y = df_dropout_rows(g, x, c->rate, seed, c->salted ? c->salt : name_salt(l->name), c->first_row);
    if (c->own_counter) {
        int32_t one = 1;
        df_tensor t = df_tensor_make(DF_I32, &one, 0, NULL);
        df_assign_add(g, c->own_counter, df_constant(g, &t));   /* runs after every read of the seed */
    }
    return y;
}

/* No reset_states: the counter is no recurrent state but the position in
 * the layer's stream of masks, and zeroing it at each epoch (df_fit resets
 * states there) would draw every epoch's masks again. */
static const df_layer_def dropout_def = {
    .type = "Dropout", .base_name = "dropout", .call = dropout_call,
    .free_user = dropout_free, .state_variables = dropout_state_variables,
};

df_layer *df_dropout_layer(float rate)
{
    if (!(rate >= 0 && rate < 1)) {
        df_error(DF_ERR_ARG, "Dropout: rate %g not in [0, 1)", rate);
        return NULL;
    }
    dropout_config c = {.rate = rate};
    return layer_with_config(&dropout_def, &c, sizeof c);
}

df_status df_dropout_layer_set_seed(df_layer *l, df_variable *seed, uint64_t salt, int64_t first_row)
{
    if (!l || l->def != &dropout_def) return df_error(DF_ERR_ARG, "df_dropout_layer_set_seed: not a Dropout layer");
    df_tensor t = seed ? df_variable_tensor(seed) : (df_tensor){0};
    if (!seed || t.dtype != DF_I32 || df_tensor_numel(&t) != 1 || first_row < 0)
        return df_error(DF_ERR_ARG, "layer '%s': the seed must be an i32 variable of one element, first_row >= 0",
                        l->name);
    dropout_config *c = l->user;
    df_variable_free(c->own_counter);
    c->own_counter = NULL;
    c->seed = seed;
    c->salt = salt;
    c->salted = true;
    c->first_row = first_row;
    return DF_OK;
}

/* --------------------------------------------------------------- model */

df_model *df_model_new(const char *name, uint64_t seed)
{
    df_model *m = df_calloc(1, sizeof *m);
    if (m) m->name = df_strdup(name ? name : "model");
    if (!m || !m->name) {
        df_free(m);
        df_error(DF_ERR_NOMEM, "df_model_new: out of memory");
        return NULL;
    }
    df_rng_seed(&m->rng, seed);
    return m;
}

void df_model_free(df_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_layers; i++) df_layer_free(m->layers[i]);
    df_free(m->layers);
    df_free(m->name);
    df_free(m);
}

static bool name_taken(const df_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0) return true;
    return false;
}

/* Keras: the first layer of a kind is "dense", later ones "dense_1", "dense_2", ... */
static void choose_name(const df_model *m, df_layer *l)
{
    const char *base = l->def->base_name;
    snprintf(l->name, sizeof l->name, "%s", base);
    for (int k = 1; name_taken(m, l->name); k++) snprintf(l->name, sizeof l->name, "%s_%d", base, k);
}

df_status df_model_add(df_model *m, df_layer *l)
{
    df_status st = DF_OK;
    /* a NULL layer is mostly a constructor's refusal: keep its reason */
    if (!m || !l)
        st = l ? df_error(DF_ERR_ARG, "df_model_add: null model")
               : df_error_prefix(DF_ERR_ARG, m ? "df_model_add: null layer" : "df_model_add: null model and layer");
    else if (m->loss)       /* its steps trace lazily: one traced later would take the new layer untrained */
        st = df_error(DF_ERR_STATE, "model '%s' is compiled: add its layers before df_model_compile", m->name);
    else if (l->model) st = df_error(DF_ERR_STATE, "layer '%s' already belongs to a model", l->name);
    else if (l->built && !l->named) st = df_error(DF_ERR_STATE, "layer '%s' was built before it was added: "
                                                  "add layers before building them", l->name);
    else if (l->named && name_taken(m, l->name))
        st = df_error(DF_ERR_ARG, "model '%s' already has a layer named '%s'", m->name, l->name);
    else if (l->def == &tied_def && ((tied_config *)l->user)->embedding->model != m)
        st = foreign_embedding(l, m);
    if (st == DF_OK && m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 8;
        df_layer **grown = df_realloc(m->layers, (size_t)cap * sizeof *grown);
        if (!grown) st = df_error(DF_ERR_NOMEM, "model '%s': out of memory", m->name);
        else {
            m->layers = grown;
            m->cap_layers = cap;
        }
    }
    if (st != DF_OK) {
        if (l && !l->model) df_layer_free(l);
        return st;
    }
    if (!l->named) choose_name(m, l);
    l->model = m;
    l->rng = &m->rng;
    m->layers[m->n_layers++] = l;
    return DF_OK;
}

/* An Embedding folds into the next layer when that one offers an input
 * projection and the ids' fixed shape holds at least input_dim ids: then
 * projecting the whole table costs less than projecting each looked-up row. */
static bool folds(const df_layer *emb, const df_layer *next, const df_node *ids)
{
    if (emb->def != &embedding_def || !next->def->project || !next->def->call_projected) return false;
    int64_t n = 1;
    for (int d = 0; d < df_node_ndim(ids); d++) {
        if (df_node_dim(ids, d) == DF_DYNAMIC) return false;
        n *= df_node_dim(ids, d);
    }
    return n >= ((const embedding_config *)emb->user)->input_dim;
}

/* next(emb(ids)) as gather(project(embeddings), ids), then the rest of next's call. */
static df_node *call_folded(df_layer *emb, df_layer *next, df_graph *g, df_node *ids, bool training, int slot)
{
    int nd = df_node_ndim(ids), emb_nd = 0;
    int64_t emb_shape[DF_MAX_DIMS];
    if (!ready_for(emb, g, nd, df_node_shape(ids))) return NULL;
    df_status st = layer_output_shape(emb, nd, df_node_shape(ids), &emb_nd, emb_shape);
    if (st != DF_OK) {
        df_graph_fail(g, st, "%s", df_last_error());
        return NULL;
    }
    if (!ready_for(next, g, emb_nd, emb_shape)) return NULL;
    next->state_slot = slot;
    df_node *table = next->def->project(next, g, df_var(g, df_layer_weight(emb, "embeddings")), next->user);
    next->state_slot = DF_STATE_MAIN;
    return traced_call(next, g, df_gather(g, table, ids), training, slot, true);
}

df_node *df_model_call_slot(df_model *m, df_graph *g, df_node *x, bool training, int slot)
{
    if (!m) {
        if (g) df_graph_fail(g, DF_ERR_ARG, "df_model_call: null model");
        return NULL;
    }
    for (int i = 0; i < m->n_layers && x; i++) {
        df_layer *l = m->layers[i], *next = i + 1 < m->n_layers ? m->layers[i + 1] : NULL;
        if (!call_ok(l, g, x, slot)) return NULL;
        if (next && folds(l, next, x)) x = call_folded(l, m->layers[++i], g, x, training, slot);
        else x = df_layer_call_slot(l, g, x, training, slot);
    }
    return x;
}

df_node *df_model_call(df_model *m, df_graph *g, df_node *x, bool training)
{
    return df_model_call_slot(m, g, x, training, DF_STATE_MAIN);
}

df_status df_model_build(df_model *m, int ndim, const int64_t *input_shape)
{
    if (!m || ndim < 1 || ndim > DF_MAX_DIMS || !input_shape)
        return df_error(DF_ERR_ARG, "df_model_build: a model and an input shape of rank 1..%d", DF_MAX_DIMS);
    int64_t shape[DF_MAX_DIMS];
    memcpy(shape, input_shape, (size_t)ndim * sizeof *shape);
    for (int i = 0; i < m->n_layers; i++) {
        df_layer *l = m->layers[i];
        char a[96], b[96];
        if (!l->built) {
            df_status st = df_layer_build(l, ndim, shape);
            if (st != DF_OK) return st;
        } else if (l->in_ndim != ndim || l->in_shape[ndim - 1] != shape[ndim - 1]) {
            return df_error(DF_ERR_SHAPE, "layer '%s' (%s) was built for input %s, the model gives it %s", l->name,
                            l->def->type, keras_shape(l->in_ndim, l->in_shape, a, sizeof a),
                            keras_shape(ndim, shape, b, sizeof b));
        }
        ndim = l->out_ndim;
        memcpy(shape, l->out_shape, (size_t)ndim * sizeof *shape);
    }
    return DF_OK;
}

int df_model_layer_count(const df_model *m) { return m ? m->n_layers : 0; }
df_layer *df_model_layer(const df_model *m, int i) { return m && i >= 0 && i < m->n_layers ? m->layers[i] : NULL; }

int df_model_variables(const df_model *m, df_variable **out, int max)
{
    int n = 0;
    for (int i = 0; m && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_weights; k++)
            if (m->layers[i]->trainable[k]) {
                if (out && n < max) out[n] = m->layers[i]->weights[k];
                n++;
            }
    return n;
}

int df_model_weights(const df_model *m, df_variable **out, int max)
{
    int n = 0;
    for (int i = 0; m && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_weights; k++, n++)
            if (out && n < max) out[n] = m->layers[i]->weights[k];
    return n;
}

int df_model_state_variables(df_model *m, int64_t batch, int slot, df_variable **out, int max)
{
    if (!m) {
        df_error(DF_ERR_ARG, "df_model_state_variables: null model");
        return -1;
    }
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        bool room = out && n < max;
        int k = df_layer_state_variables(m->layers[i], batch, slot, room ? out + n : NULL, room ? max - n : 0);
        if (k < 0) return -1;
        n += k;
    }
    return n;
}

int64_t df_model_param_count(const df_model *m)
{
    int64_t n = 0;
    for (int i = 0; m && i < m->n_layers; i++) n += df_layer_param_count(m->layers[i]);
    return n;
}

void df_model_reset_states(df_model *m)
{
    for (int i = 0; m && i < m->n_layers; i++) df_layer_reset_states(m->layers[i]);
}

/* 5330241 -> "5,330,241" */
static const char *with_commas(int64_t n, char *buf)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)n), at = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && digits[i - 1] != '-' && (len - i) % 3 == 0) buf[at++] = ',';
        buf[at++] = digits[i];
    }
    buf[at] = 0;
    return buf;
}

/* "(64, None, 256)", Keras' way of printing a shape. */
static const char *keras_shape(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && used < cap; d++) {
        const char *sep = d ? ", " : "";
        used += shape[d] == DF_DYNAMIC ? (size_t)snprintf(buf + used, cap - used, "%sNone", sep)
                                       : (size_t)snprintf(buf + used, cap - used, "%s%lld", sep, (long long)shape[d]);
    }
    if (used < cap) snprintf(buf + used, cap - used, ")");
    return buf;
}

void df_model_summary(const df_model *m, FILE *out) { df_model_summary_batch(m, 0, out); }

/* "name (Type)" of layer l, and its length. */
static int name_and_type(const df_layer *l, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%s (%s)", l->name, l->def->type);
}

/* A line of n copies of c. */
static void rule_line(FILE *out, char c, int n)
{
    for (int i = 0; i < n; i++) fputc(c, out);
    fputc('\n', out);
}

void df_model_summary_batch(const df_model *m, int64_t batch, FILE *out)
{
    if (!m || !out) return;
    char name[2 * NAME_CAP + 64], shape[96], count[32];
    int64_t trainable = 0, total = 0;
    int name_width = 27;          /* Keras' column, widened for a longer name so that the columns stay aligned */
    for (int i = 0; i < m->n_layers; i++) {
        int len = name_and_type(m->layers[i], name, sizeof name);
        if (len > name_width) name_width = len;
    }
    int width = name_width + 38;
    fprintf(out, "Model: \"%s\"\n", m->name);
    rule_line(out, '_', width);
    fprintf(out, " %-*s %-25s %-10s\n", name_width, "Layer (type)", "Output Shape", "Param #");
    rule_line(out, '=', width);
    for (int i = 0; i < m->n_layers; i++) {
        const df_layer *l = m->layers[i];
        name_and_type(l, name, sizeof name);
        int64_t dims[DF_MAX_DIMS];
        memcpy(dims, l->out_shape, sizeof dims);
        if (batch > 0 && l->out_ndim > 0) dims[0] = batch;
        if (l->built) keras_shape(l->out_ndim, dims, shape, sizeof shape);
        else snprintf(shape, sizeof shape, "?");
        fprintf(out, " %-*s %-25s %-10s\n", name_width, name, shape, with_commas(df_layer_param_count(l), count));
        if (i < m->n_layers - 1) rule_line(out, ' ', width);
        for (int k = 0; k < l->n_weights; k++) {
            total += df_variable_numel(l->weights[k]);
            if (l->trainable[k]) trainable += df_variable_numel(l->weights[k]);
        }
    }
    rule_line(out, '=', width);
    fprintf(out, "Total params: %s\n", with_commas(total, count));
    fprintf(out, "Trainable params: %s\n", with_commas(trainable, count));
    fprintf(out, "Non-trainable params: %s\n", with_commas(total - trainable, count));
    rule_line(out, '_', width);
}

/* ------------------------------------------------------ save / restore */

/* Every layer variable, then (with opt) the optimizer's state. Returns the
 * count (which may exceed max). */
static int saved_variables(const df_model *m, const df_optimizer *opt, df_variable **out, int max)
{
    int n = df_model_weights(m, out, max);
    if (opt) n += df_optimizer_state(opt, n < max ? out + n : NULL, n < max ? max - n : 0);
    return n;
}

static df_status check_built(const df_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (!m->layers[i]->built)
            return df_error(DF_ERR_STATE, "model '%s': layer '%s' is not built yet (call the model or df_model_build "
                            "first)", m->name, m->layers[i]->name);
    return DF_OK;
}

/* The model's variables (and the optimizer's) in a malloc'd array. */
static df_status collect(const df_model *m, const df_optimizer *opt, df_variable ***vars, int *n)
{
    *n = saved_variables(m, opt, NULL, 0);
    *vars = df_malloc((size_t)(*n ? *n : 1) * sizeof **vars);
    if (!*vars) return df_error(DF_ERR_NOMEM, "model '%s': out of memory", m->name);
    saved_variables(m, opt, *vars, *n);
    return DF_OK;
}

df_status df_model_save(const df_model *m, const df_optimizer *opt, df_checkpoint *ck)
{
    if (!m || !ck) return df_error(DF_ERR_ARG, "df_model_save: null model or checkpoint");
    df_status st = check_built(m);
    df_variable **vars = NULL;
    int n = 0;
    if (st == DF_OK) st = collect(m, opt, &vars, &n);
    for (int i = 0; i < n && st == DF_OK; i++) {
        st = df_checkpoint_put_variable(ck, vars[i]);
        if (st != DF_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", df_last_error());
            st = df_error(st, "model '%s': saving '%s': %s", m->name, df_variable_name(vars[i]), msg);
        }
    }
    df_free(vars);
    return st;
}

/* Restores into copies first, so that a bad entry leaves the model unchanged. */
df_status df_model_restore(df_model *m, df_optimizer *opt, const df_checkpoint *ck)
{
    if (!m || !ck) return df_error(DF_ERR_ARG, "df_model_restore: null model or checkpoint");
    df_status st = check_built(m);
    if (st != DF_OK) return st;
    if (opt) {
        df_variable *trainable[256];
        int n = df_model_variables(m, trainable, 256);
        if (n > 256) return df_error(DF_ERR_RANGE, "model '%s': more than 256 trainable variables", m->name);
        if ((st = df_optimizer_create_slots(opt, n, trainable)) != DF_OK) return st;
    }
    df_variable **vars, **copies = NULL;
    int n;
    if ((st = collect(m, opt, &vars, &n)) != DF_OK) return st;
    if (!(copies = df_calloc((size_t)(n ? n : 1), sizeof *copies))) st = df_error(DF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && st == DF_OK; i++) {
        df_tensor t = df_variable_tensor(vars[i]);
        copies[i] = df_variable_new(df_variable_name(vars[i]), t.dtype, t.ndim, t.shape, df_init_zeros(), NULL);
        st = copies[i] ? df_checkpoint_restore_variable(ck, copies[i]) : DF_ERR_NOMEM;
        if (st != DF_OK) {      /* both messages name the variable */
            char prefix[256];
            snprintf(prefix, sizeof prefix, "model '%s'", m->name);
            st = df_error_prefix(st, prefix);
        }
    }
    for (int i = 0; i < n && st == DF_OK; i++) {
        df_tensor t = df_variable_tensor(copies[i]);
        st = df_variable_assign(vars[i], &t);
    }
    for (int i = 0; copies && i < n; i++) df_variable_free(copies[i]);
    df_free(copies);
    df_free(vars);
    return st;
}

/* -------------------------------------------------------- compiled steps */

df_status df_model_compile(df_model *m, df_optimizer *opt, df_loss loss)
{
    if (!m || !opt) return df_error(DF_ERR_ARG, "df_model_compile: NULL %s", m ? "optimizer" : "model");
    if (loss != DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY && loss != DF_LOSS_MEAN_SQUARED_ERROR)
        return df_error(DF_ERR_ARG, "df_model_compile: model '%s': unknown loss %d", m->name, (int)loss);
    if (m->has_steps)
        return df_error(DF_ERR_STATE, "df_model_compile: model '%s' already made train/eval steps; compile it once",
                        m->name);
    m->opt = opt;
    m->loss = loss;
    return DF_OK;
}

/* Mean squared error of targets of the predictions' shape: pred - y would
 * broadcast (4,1) against (4) to a (4,4) loss. */
static df_node *mean_squared_error(df_model *m, df_graph *g, df_node *pred, df_node *y)
{
    if (!pred || !y) return NULL;
    if (!df_shape_equal(df_node_ndim(pred), df_node_shape(pred), df_node_ndim(y), df_node_shape(y))) {
        char sp[96], sy[96];
        df_graph_fail(g, DF_ERR_SHAPE, "model '%s': mean squared error needs targets of the predictions' shape %s, "
                      "got %s", m->name, df_node_shape_str(pred, sp, sizeof sp), df_node_shape_str(y, sy, sizeof sy));
        return NULL;
    }
    return df_mean(g, df_square(g, df_sub(g, pred, y)), NULL, 0, false);
}

// x -> model -> y_pred; (y_pred, y) -> scalar loss
static df_node *compiled_loss(df_model *m, df_graph *g, df_node **in, bool training)
{
    df_node *pred = df_model_call_slot(m, g, in[0], training, training ? DF_STATE_MAIN : DF_STATE_EVAL);
    if (m->loss == DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) return df_sparse_softmax_cross_entropy(g, pred, in[1]);
    return mean_squared_error(m, g, pred, in[1]);
}

static df_status build_train_step(df_graph *g, df_node **in, void *user)
{
    df_model *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *loss = compiled_loss(m, g, in, true);
    df_tape_end(tape);
    if (!loss) return df_graph_status(g);
    int n = df_model_variables(m, NULL, 0);
    df_variable **vars = df_graph_alloc(g, (size_t)(n ? n : 1) * sizeof *vars);
    df_node **grads = df_graph_alloc(g, (size_t)(n ? n : 1) * sizeof *grads);
    if (!vars || !grads) return df_graph_status(g);
    if (n == 0) return df_graph_set_error(g, DF_ERR_STATE, "model '%s' has no trainable variables", m->name);
    df_model_variables(m, vars, n);
    if (df_tape_gradient(tape, loss, n, vars, grads) == DF_OK) df_optimizer_apply(g, m->opt, n, vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static df_status build_eval_step(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, compiled_loss(user, g, in, false));
    return df_graph_status(g);
}

static df_function *compiled_step(df_model *m, const char *kind, df_build_fn build)
{
    if (!m) {
        df_error(DF_ERR_ARG, "df_model_%s_step: null model", kind);
        return NULL;
    }
    if (!m->loss) {
        df_error(DF_ERR_STATE, "df_model_%s_step: model '%s' is not compiled (df_model_compile)", kind, m->name);
        return NULL;
    }
    char name[256];
    snprintf(name, sizeof name, "%s_%s_step", m->name, kind);
    df_function *f = df_function_new(name, build, m);
    if (f) m->has_steps = true;
    return f;
}

df_function *df_model_train_step(df_model *m) { return compiled_step(m, "train", build_train_step); }
df_function *df_model_eval_step(df_model *m) { return compiled_step(m, "eval", build_eval_step); }
