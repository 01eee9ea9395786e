/* gpt.c — the model of gpt.h: a transformer block as a custom layer, the
 * rest from the library's layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpt.h"

df_status cg_config_check(const cg_config *c)
{
    if (c->vocab < 1) return df_error(DF_ERR_ARG, "vocabulary size %d", c->vocab);
    if (c->block < 1) return df_error(DF_ERR_ARG, "--block must be >= 1, got %d", c->block);
    if (c->n_layer < 1 || c->n_layer > CG_MAX_LAYERS)
        return df_error(DF_ERR_ARG, "--n-layer must be 1..%d, got %d", CG_MAX_LAYERS, c->n_layer);
    if (c->n_head < 1 || c->n_embd < 1 || c->n_embd % c->n_head)
        return df_error(DF_ERR_ARG, "--n-embd (%d) must be a positive multiple of --n-head (%d)", c->n_embd, c->n_head);
    if (!(c->dropout >= 0 && c->dropout < 1)) return df_error(DF_ERR_ARG, "--dropout must be in [0, 1), got %g", c->dropout);
    return DF_OK;
}

/* ------------------------------------------------------------ the block */

typedef struct block_config {
    int n_head, n_layer, index;
    float dropout;
    df_variable *seed;            /* i32 scalar drawing the dropout masks (cg_gpt_set_dropout_seed) */
} block_config;

static df_status block_build(df_layer *l, int ndim, const int64_t *in, void *user)
{
    const block_config *c = user;
    int64_t C = in[ndim - 1], C3 = 3 * C, C4 = 4 * C;
    float std = 0.02f, resid = 0.02f / sqrtf(2.0f * (float)c->n_layer);   /* GPT-2's scaled residual init */
    struct { const char *name; int ndim; int64_t shape[2]; df_init init; } w[] = {
        {"ln_1/gamma", 1, {C}, df_init_ones()},           {"ln_1/beta", 1, {C}, df_init_zeros()},
        {"attn/c_attn/kernel", 2, {C, C3}, df_init_normal(0, std)}, {"attn/c_attn/bias", 1, {C3}, df_init_zeros()},
        {"attn/c_proj/kernel", 2, {C, C}, df_init_normal(0, resid)}, {"attn/c_proj/bias", 1, {C}, df_init_zeros()},
        {"ln_2/gamma", 1, {C}, df_init_ones()},           {"ln_2/beta", 1, {C}, df_init_zeros()},
        {"mlp/c_fc/kernel", 2, {C, C4}, df_init_normal(0, std)}, {"mlp/c_fc/bias", 1, {C4}, df_init_zeros()},
        {"mlp/c_proj/kernel", 2, {C4, C}, df_init_normal(0, resid)}, {"mlp/c_proj/bias", 1, {C}, df_init_zeros()},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (!df_layer_add_weight(l, w[i].name, DF_F32, w[i].ndim, w[i].shape, w[i].init, true)) return DF_ERR_NOMEM;
    return DF_OK;
}

static df_node *weight(df_layer *l, df_graph *g, const char *name) { return df_var(g, df_layer_weight(l, name)); }

/* x (B,T,C) -> x @ kernel + bias (B,T,N). In a one-token sampling step
 * the bias is viewed as (1,1,N), the product's shape: the fusion pass (it
 * fuses operands of the chain's own shape) then merges its add with the
 * elementwise ops after it (GELU, the residual add), the same bits in fewer
 * nodes, which is what such a step's time goes to. */
static df_node *linear(df_layer *l, df_graph *g, df_node *x, const char *kernel, const char *bias, bool step)
{
    df_node *b = weight(l, g, bias);
    if (step) b = df_reshape(g, b, 3, (int64_t[]){1, 1, df_node_dim(b, 0)});
    return df_add(g, df_matmul(g, x, weight(l, g, kernel), false, false), b);
}

// (B,T,C) columns [part*C, (part+1)*C) of qkv (B,T,3C) -> (B,h,T,d)
static df_node *heads(df_graph *g, df_node *qkv, int part, int64_t B, int64_t T, int64_t C, int h)
{
    df_node *x = df_slice(g, qkv, (int64_t[]){0, 0, part * C}, (int64_t[]){B, T, C});
    if (T == 1) return df_reshape(g, x, 4, (int64_t[]){B, h, 1, C / h});  /* (B,1,h,d) lies as (B,h,1,d): no copy */
    x = df_reshape(g, x, 4, (int64_t[]){B, T, h, C / h});
    return df_transpose(g, x, (int[]){0, 2, 1, 3});
}

// y (B,h,T,d) -> (B,T,C), the heads side by side again
static df_node *merge_heads(df_graph *g, df_node *y, int64_t B, int64_t T, int64_t C)
{
    if (T != 1) y = df_transpose(g, y, (int[]){0, 2, 1, 3});              /* at T = 1 a reshape alone */
    return df_reshape(g, y, 3, (int64_t[]){B, T, C});
}

/* Dropout of x when training with a rate, salted by the block and place. */
static df_node *resid_dropout(df_graph *g, df_node *x, const block_config *c, int place, bool training)
{
    if (!training || c->dropout <= 0 || !x) return x;
    if (!c->seed) {
        df_graph_set_error(g, DF_ERR_STATE, "char-gpt: dropout needs a seed variable (cg_gpt_set_dropout_seed)");
        return NULL;
    }
    return df_dropout(g, x, c->dropout, df_var(g, c->seed), 0x6b10c000ULL + 2 * (uint64_t)c->index + (uint64_t)place);
}

/* The sampler's cache for one block: K and V (1,h,block,d), the position
 * this call writes at (an i32 with one element) and, for a one-token step,
 * the additive mask hiding the positions not held yet (block); a prefill
 * (read_mask NULL) writes its T tokens' keys and values from that position
 * on and attends causally among them. */
typedef struct kv_step {
    df_variable *k, *v;
    df_node *pos, *read_mask;
} kv_step;

// k, v (1,h,T,d) written into the caches from kv->pos on; *keys, *values: the caches after the writes
static void write_kv(df_graph *g, df_node *k, df_node *v, const kv_step *kv, df_node **keys, df_node **values)
{
    *keys = df_assign_at(g, kv->k, k, kv->pos, 2);
    *values = df_assign_at(g, kv->v, v, kv->pos, 2);
}

/* q, k, v (1,h,T,d): k and v written into the cache at the position; a step
 * (T = 1) attends to every held position (the others get -inf), a prefill
 * among its own tokens as training does. */
static df_node *cached_attention(df_graph *g, df_node *q, df_node *k, df_node *v, const kv_step *kv, float scale)
{
    df_node *keys, *values;
    write_kv(g, k, v, kv, &keys, &values);
    if (!kv->read_mask) return df_attention(g, q, k, v, true, scale);   /* the writes are side effects */
    df_node *scores = df_add(g, df_scale(g, df_batch_matmul(g, q, keys, false, true), scale), kv->read_mask);
    return df_batch_matmul(g, df_softmax(g, scores, -1), values, false, false);
}

// x (B,T,C) -> causal multi-head self-attention (B,T,C), over the cache when kv is given
static df_node *attention(df_layer *l, df_graph *g, df_node *x, int n_head, const kv_step *kv)
{
    int64_t B = df_node_dim(x, 0), T = df_node_dim(x, 1), C = df_node_dim(x, 2);
    const bool step = kv && kv->read_mask;
    df_node *qkv = linear(l, g, x, "attn/c_attn/kernel", "attn/c_attn/bias", step);
    float scale = 1.0f / sqrtf((float)(C / n_head));
    if (!kv)                      /* the heads read in place: the same bits as the split below */
        return linear(l, g, df_attention_qkv(g, qkv, n_head, true, scale), "attn/c_proj/kernel", "attn/c_proj/bias", false);
    df_node *q = heads(g, qkv, 0, B, T, C, n_head), *k = heads(g, qkv, 1, B, T, C, n_head);
    df_node *v = heads(g, qkv, 2, B, T, C, n_head);
    df_node *y = cached_attention(g, q, k, v, kv, scale); /* (B,h,T,d) */
    return linear(l, g, merge_heads(g, y, B, T, C), "attn/c_proj/kernel", "attn/c_proj/bias", step);
}

// x (B,T,C) -> x + drop(attn(ln_1(x))); then + drop(mlp(ln_2(x)))
static df_node *block_apply(df_layer *l, df_graph *g, df_node *x, bool training, const kv_step *kv)
{
    const block_config *c = df_layer_user(l);
    const bool step = kv && kv->read_mask;
    df_node *h = df_layer_norm(g, x, weight(l, g, "ln_1/gamma"), weight(l, g, "ln_1/beta"), 1e-5f);
    x = df_add(g, x, resid_dropout(g, attention(l, g, h, c->n_head, kv), c, 0, training));
    h = df_layer_norm(g, x, weight(l, g, "ln_2/gamma"), weight(l, g, "ln_2/beta"), 1e-5f);
    h = df_gelu(g, linear(l, g, h, "mlp/c_fc/kernel", "mlp/c_fc/bias", step));
    return df_add(g, x, resid_dropout(g, linear(l, g, h, "mlp/c_proj/kernel", "mlp/c_proj/bias", step), c, 1, training));
}

/* Only the caches' writes of a block (x (1,T,C)): all that a prefill needs
 * of its last block, whose output only the logits read, and a rebuild
 * reads no logits. Returns the values' write (the cache after it). */
static df_node *block_write_kv(df_layer *l, df_graph *g, df_node *x, const kv_step *kv)
{
    const block_config *c = df_layer_user(l);
    int64_t B = df_node_dim(x, 0), T = df_node_dim(x, 1), C = df_node_dim(x, 2);
    df_node *h = df_layer_norm(g, x, weight(l, g, "ln_1/gamma"), weight(l, g, "ln_1/beta"), 1e-5f);
    df_node *qkv = linear(l, g, h, "attn/c_attn/kernel", "attn/c_attn/bias", false), *keys, *values;
    write_kv(g, heads(g, qkv, 1, B, T, C, c->n_head), heads(g, qkv, 2, B, T, C, c->n_head), kv, &keys, &values);
    return values;
}

static df_node *block_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)user;
    return block_apply(l, g, x, training, NULL);
}

static const df_layer_def block_def = {
    .type = "Block", .base_name = "h", .build = block_build, .call = block_call, .free_user = free,
};

static df_layer *block_layer(int n_head, int n_layer, int index, float dropout)
{
    block_config *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = (block_config){.n_head = n_head, .n_layer = n_layer, .index = index, .dropout = dropout};
    df_layer *l = df_custom_layer(&block_def, c);
    if (!l) free(c);
    return l;
}

/* ------------------------------------------------------------ the model */

static df_status add_named(cg_gpt *m, df_layer *l, const char *name)
{
    if (!l) return DF_ERR_NOMEM;
    df_status st = name ? df_layer_set_name(l, name) : DF_OK;
    if (st == DF_OK) st = df_model_add(m->model, l);
    if (st != DF_OK) df_layer_free(l);
    return st;
}

static df_status add_layers(cg_gpt *m)
{
    const cg_config *c = &m->cfg;
    df_status st = add_named(m, m->wte = df_embedding_layer(c->vocab, c->n_embd), "wte");
    if (st == DF_OK) st = add_named(m, m->wpe = df_embedding_layer(c->block, c->n_embd), "wpe");
    for (int i = 0; i < c->n_layer && st == DF_OK; i++) {
        char name[16];
        snprintf(name, sizeof name, "h_%d", i);
        st = add_named(m, m->blocks[i] = block_layer(c->n_head, c->n_layer, i, c->dropout), name);
    }
    if (st == DF_OK) st = add_named(m, m->ln_f = df_layer_norm_layer(1e-5f), "ln_f");
    if (st == DF_OK) st = add_named(m, m->head = df_tied_output_layer(m->wte, false), "lm_head");
    return st;
}

/* Builds for (batch, block) and gives the embeddings nanoGPT's N(0, 0.02). */
static df_status build_layers(cg_gpt *m, int batch)
{
    const cg_config *c = &m->cfg;
    int64_t ids[2] = {batch, c->block}, pos[1] = {c->block}, acts[3] = {batch, c->block, c->n_embd};
    df_status st = df_layer_build(m->wte, 2, ids);
    if (st == DF_OK) st = df_layer_build(m->wpe, 1, pos);
    for (int i = 0; i < c->n_layer && st == DF_OK; i++) st = df_layer_build(m->blocks[i], 3, acts);
    if (st == DF_OK) st = df_layer_build(m->ln_f, 3, acts);
    if (st == DF_OK) st = df_layer_build(m->head, 3, acts);
    df_rng rng;
    df_rng_seed(&rng, c->seed ^ 0x5eedULL);
    if (st == DF_OK) st = df_variable_init(df_layer_weight(m->wte, "embeddings"), df_init_normal(0, 0.02f), &rng);
    if (st == DF_OK) st = df_variable_init(df_layer_weight(m->wpe, "embeddings"), df_init_normal(0, 0.02f), &rng);
    return st;
}

df_status cg_gpt_init(cg_gpt *m, const cg_config *c, int batch)
{
    memset(m, 0, sizeof *m);
    df_status st = cg_config_check(c);
    if (st != DF_OK) return st;
    m->cfg = *c;
    m->model = df_model_new("gpt", c->seed);
    if (!m->model) return DF_ERR_NOMEM;
    if ((st = add_layers(m)) == DF_OK) st = build_layers(m, batch);
    if (st != DF_OK) cg_gpt_free(m);
    return st;
}

void cg_gpt_free(cg_gpt *m)
{
    df_model_free(m->model);
    m->model = NULL;
}

df_status cg_gpt_set_dropout_seed(cg_gpt *m, df_variable *seed)
{
    if (seed && (df_variable_tensor(seed).dtype != DF_I32 || df_variable_numel(seed) != 1))
        return df_error(DF_ERR_ARG, "the dropout seed must be an i32 variable with one element");
    m->dropout_seed = seed;
    for (int i = 0; i < m->cfg.n_layer; i++) ((block_config *)df_layer_user(m->blocks[i]))->seed = seed;
    return DF_OK;
}

// idx (B,T), pos (T) -> the embeddings' sum (B,T,C), dropped out when training
static df_node *embed(cg_gpt *m, df_graph *g, df_node *idx, df_node *pos, bool training)
{
    /* lookups by hand: the layers are built for block positions, a sampling step reads one */
    df_node *tok = df_gather(g, df_var(g, df_layer_weight(m->wte, "embeddings")), idx);
    df_node *x = df_add(g, tok, df_gather(g, df_var(g, df_layer_weight(m->wpe, "embeddings")), pos));
    if (!training || m->cfg.dropout <= 0) return x;
    if (!m->dropout_seed) {
        df_graph_set_error(g, DF_ERR_STATE, "char-gpt: dropout needs a seed variable (cg_gpt_set_dropout_seed)");
        return NULL;
    }
    return df_dropout(g, x, m->cfg.dropout, df_var(g, m->dropout_seed), 0x6b10bfffULL);
}

df_node *cg_gpt_logits(cg_gpt *m, df_graph *g, df_node *idx, df_node *pos, bool training)
{
    df_node *x = embed(m, g, idx, pos, training);
    for (int i = 0; i < m->cfg.n_layer; i++) x = df_layer_call(m->blocks[i], g, x, training);
    return df_layer_call(m->head, g, df_layer_call(m->ln_f, g, x, training), training);
}

int cg_gpt_weights(const cg_gpt *m, df_variable **out, int max) { return df_model_weights(m->model, out, max); }

/* ------------------------------------------------------- the KV cache */

/* The additive mask of the positions a step at pos reads: 0 at 0..pos,
 * -inf beyond, (1,h,1,block) as the scores it is added to, so that the
 * fusion pass merges the add with the scaling before it. Made in the graph
 * from pos, so the step's inputs are the token and its position alone (what
 * an exported step takes). */
static df_node *read_mask(df_graph *g, df_node *pos, int block, int n_head)
{
    const int64_t shape[4] = {1, n_head, 1, block}, n = (int64_t)n_head * block;
    float *index = malloc((size_t)n * sizeof *index), zero = 0.0f, minus_inf = -INFINITY;
    if (!index) {
        df_graph_set_error(g, DF_ERR_NOMEM, "out of memory for the read mask");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) index[i] = (float)(i % block);
    df_tensor t = df_tensor_make(DF_F32, index, 4, shape);
    df_node *positions = df_constant(g, &t);
    free(index);
    df_tensor z = df_tensor_make(DF_F32, &zero, 1, (int64_t[]){1}), m = df_tensor_make(DF_F32, &minus_inf, 1, (int64_t[]){1});
    df_node *beyond = df_greater(g, positions, df_cast(g, pos, DF_F32));
    /* full-size operands (constants once folded): where's plain loop, not its broadcasting one */
    df_node *hidden = df_broadcast_to(g, df_constant(g, &m), 4, shape), *seen = df_broadcast_to(g, df_constant(g, &z), 4, shape);
    return df_where(g, beyond, hidden, seen);
}

// (token (1,1), pos (1)) -> logits (1,1,V); writes the caches at pos
static df_status build_cached_step(df_graph *g, df_node **in, void *user)
{
    cg_cache *c = user;
    cg_gpt *m = c->gpt;
    df_node *mask = read_mask(g, in[1], m->cfg.block, m->cfg.n_head);
    df_node *x = embed(m, g, in[0], in[1], false);
    for (int i = 0; i < m->cfg.n_layer; i++) {
        kv_step kv = {c->k[i], c->v[i], in[1], mask};
        x = block_apply(m->blocks[i], g, x, false, &kv);
    }
    df_graph_output(g, df_layer_call(m->head, g, df_layer_call(m->ln_f, g, x, false), false));
    return df_graph_status(g);
}

// (tokens (1,T), pos (T) = 0..T-1) -> the last cache written; writes the caches at positions 0..T-1
static df_status build_prefill(df_graph *g, df_node **in, void *user)
{
    cg_cache *c = user;
    cg_gpt *m = c->gpt;
    int32_t zero = 0;
    df_tensor z = df_tensor_make(DF_I32, &zero, 1, (int64_t[]){1});
    df_node *start = df_constant(g, &z);
    df_node *x = embed(m, g, in[0], in[1], false);
    const int last = m->cfg.n_layer - 1;
    for (int i = 0; i < last; i++) {
        kv_step kv = {c->k[i], c->v[i], start, NULL};
        x = block_apply(m->blocks[i], g, x, false, &kv);
    }
    kv_step kv = {c->k[last], c->v[last], start, NULL};
    df_graph_output(g, block_write_kv(m->blocks[last], g, x, &kv));
    return df_graph_status(g);
}

df_status cg_cache_init(cg_cache *c, cg_gpt *m, int keep)
{
    memset(c, 0, sizeof *c);
    const cg_config *cfg = &m->cfg;
    if (keep < 0 || keep >= cfg->block)
        return df_error(DF_ERR_ARG, "--keep must be in [0, --block) = [0, %d), got %d", cfg->block, keep);
    c->gpt = m;
    c->keep = keep;
    int64_t shape[4] = {1, cfg->n_head, cfg->block, cfg->n_embd / cfg->n_head};
    for (int i = 0; i < cfg->n_layer; i++) {
        char name[48];
        snprintf(name, sizeof name, "cache/h_%d/k", i);
        c->k[i] = df_variable_new(name, DF_F32, 4, shape, df_init_zeros(), NULL);
        snprintf(name, sizeof name, "cache/h_%d/v", i);
        c->v[i] = df_variable_new(name, DF_F32, 4, shape, df_init_zeros(), NULL);
        if (!c->k[i] || !c->v[i]) break;
    }
    c->window = malloc((size_t)cfg->block * sizeof *c->window);
    c->step = df_function_new("cached_step", build_cached_step, c);
    c->prefill = df_function_new("prefill", build_prefill, c);
    c->positions = malloc((size_t)cfg->block * sizeof *c->positions);
    if (!c->prefill || !c->positions || !c->window || !c->step || (cfg->n_layer && !c->v[cfg->n_layer - 1])) {
        cg_cache_free(c);
        return df_error(DF_ERR_NOMEM, "out of memory for the KV cache");
    }
    cg_cache_reset(c);
    return DF_OK;
}

void cg_cache_free(cg_cache *c)
{
    df_function_free(c->step);
    df_function_free(c->prefill);
    free(c->positions);
    for (int i = 0; i < CG_MAX_LAYERS; i++) df_variable_free(c->k[i]), df_variable_free(c->v[i]);
    free(c->window);
    memset(c, 0, sizeof *c);
}

/* Positions beyond len are hidden by the read mask, so the stale keys and
 * values there (finite: zeros or an earlier window's) never count. */
void cg_cache_reset(cg_cache *c) { c->len = 0; }

/* Runs the step for token at position c->len and holds it. */
static df_status step_at_end(cg_cache *c, int32_t token)
{
    int32_t tok = token, pos = c->len;
    df_tensor in[2] = {
        df_tensor_make(DF_I32, &tok, 2, (int64_t[]){1, 1}),
        df_tensor_make(DF_I32, &pos, 1, (int64_t[]){1}),
    };
    df_status st = df_function_call(c->step, in, 2, &c->logits, 1);
    if (st != DF_OK) return st;
    c->window[c->len++] = token;
    return DF_OK;
}

/* Full: the last keep tokens go to positions 0..keep-1, their keys and
 * values written by one forward over them (prefill) or by a step each (replay). */
static df_status rebuild(cg_cache *c)
{
    int keep = c->keep;
    memmove(c->window, c->window + c->len - keep, (size_t)keep * sizeof *c->window);
    c->len = 0;
    if (c->replay) {
        df_status st = DF_OK;
        for (int t = 0; t < keep && st == DF_OK; t++) st = step_at_end(c, c->window[t]);
        return st;
    }
    if (keep == 0) return DF_OK;
    for (int t = 0; t < keep; t++) c->positions[t] = t;
    df_tensor in[2] = {df_tensor_make(DF_I32, c->window, 2, (int64_t[]){1, keep}),
                       df_tensor_make(DF_I32, c->positions, 1, (int64_t[]){keep})}, out;
    df_status st = df_function_call(c->prefill, in, 2, &out, 1);
    if (st == DF_OK) c->len = keep;
    return st;
}

df_status cg_cache_push(cg_cache *c, int32_t token, const float **logits)
{
    if (token < 0 || token >= c->gpt->cfg.vocab)
        return df_error(DF_ERR_RANGE, "token %d outside the vocabulary [0, %d)", (int)token, c->gpt->cfg.vocab);
    df_status st = c->len == c->gpt->cfg.block ? rebuild(c) : DF_OK;
    if (st == DF_OK) st = step_at_end(c, token);
    if (st == DF_OK && logits) *logits = (const float *)c->logits.data;
    return st;
}

/* ------------------------------------------------------------ export */

df_status cg_export_sampler(cg_gpt *m, const char *vocab_utf8, size_t vocab_len, int keep, const char *path)
{
    cg_cache cache;
    df_status st = cg_cache_init(&cache, m, keep);
    if (st != DF_OK) return st;
    char model[160], context[16], kept[16];
    const cg_config *c = &m->cfg;
    snprintf(model, sizeof model, "char-gpt --n-layer %d --n-head %d --n-embd %d --block %d, vocabulary %d, keep %d",
             c->n_layer, c->n_head, c->n_embd, c->block, c->vocab, keep);
    snprintf(context, sizeof context, "%d", c->block);
    snprintf(kept, sizeof kept, "%d", keep);
    /* The keys of tools/char_sampler.h. */
    df_saved_meta meta[] = {
        {"dagflow.sampler", "char", 4}, {"vocab", vocab_utf8, vocab_len}, {"model", model, strlen(model)},
        {"dagflow.context", context, strlen(context)}, {"dagflow.keep", kept, strlen(kept)},
    };
    df_tensor_spec sig[2] = {{DF_I32, 2, {1, 1}}, {DF_I32, 1, {1}}};
    st = df_function_export(cache.step, 2, sig, path, (int)(sizeof meta / sizeof meta[0]), meta);
    cg_cache_free(&cache);
    return st;
}
