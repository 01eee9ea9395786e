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
    return DF_OK;
}

/* ------------------------------------------------------------ the block */

typedef struct block_config { int n_head, n_layer; } block_config;

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

// x (B,T,C) -> x @ kernel + bias (B,T,N)
static df_node *linear(df_layer *l, df_graph *g, df_node *x, const char *kernel, const char *bias)
{
    return df_add(g, df_matmul(g, x, weight(l, g, kernel), false, false), weight(l, g, bias));
}

// (B,T,C) columns [part*C, (part+1)*C) of qkv (B,T,3C) -> (B,h,T,d)
static df_node *heads(df_graph *g, df_node *qkv, int part, int64_t B, int64_t T, int64_t C, int h)
{
    df_node *x = df_slice(g, qkv, (int64_t[]){0, 0, part * C}, (int64_t[]){B, T, C});
    x = df_reshape(g, x, 4, (int64_t[]){B, T, h, C / h});
    return df_transpose(g, x, (int[]){0, 2, 1, 3});
}

// x (B,T,C) -> causal multi-head self-attention (B,T,C)
static df_node *attention(df_layer *l, df_graph *g, df_node *x, int n_head)
{
    int64_t B = df_node_dim(x, 0), T = df_node_dim(x, 1), C = df_node_dim(x, 2);
    df_node *qkv = linear(l, g, x, "attn/c_attn/kernel", "attn/c_attn/bias");
    df_node *q = heads(g, qkv, 0, B, T, C, n_head), *k = heads(g, qkv, 1, B, T, C, n_head);
    df_node *v = heads(g, qkv, 2, B, T, C, n_head);
    df_node *y = df_attention(g, q, k, v, true, 1.0f / sqrtf((float)(C / n_head)));   /* (B,h,T,d) */
    y = df_reshape(g, df_transpose(g, y, (int[]){0, 2, 1, 3}), 3, (int64_t[]){B, T, C});
    return linear(l, g, y, "attn/c_proj/kernel", "attn/c_proj/bias");
}

// x (B,T,C) -> x + attn(ln_1(x)); then + mlp(ln_2(x))
static df_node *block_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    (void)training;
    const block_config *c = user;
    df_node *h = df_layer_norm(g, x, weight(l, g, "ln_1/gamma"), weight(l, g, "ln_1/beta"), 1e-5f);
    x = df_add(g, x, attention(l, g, h, c->n_head));
    h = df_layer_norm(g, x, weight(l, g, "ln_2/gamma"), weight(l, g, "ln_2/beta"), 1e-5f);
    h = df_gelu(g, linear(l, g, h, "mlp/c_fc/kernel", "mlp/c_fc/bias"));
    return df_add(g, x, linear(l, g, h, "mlp/c_proj/kernel", "mlp/c_proj/bias"));
}

static const df_layer_def block_def = {
    .type = "Block", .base_name = "h", .build = block_build, .call = block_call, .free_user = free,
};

static df_layer *block_layer(int n_head, int n_layer)
{
    block_config *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = (block_config){n_head, n_layer};
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
        st = add_named(m, m->blocks[i] = block_layer(c->n_head, c->n_layer), name);
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

df_node *cg_gpt_logits(cg_gpt *m, df_graph *g, df_node *idx, df_node *pos, bool training)
{
    df_node *x = df_add(g, df_layer_call(m->wte, g, idx, training), df_layer_call(m->wpe, g, pos, training));
    for (int i = 0; i < m->cfg.n_layer; i++) x = df_layer_call(m->blocks[i], g, x, training);
    return df_layer_call(m->head, g, df_layer_call(m->ln_f, g, x, training), training);
}

int cg_gpt_weights(const cg_gpt *m, df_variable **out, int max) { return df_model_weights(m->model, out, max); }
