/* gpt.h — nanoGPT's character model on dagflow's layers: token and
 * position embeddings, n_layer pre-LayerNorm transformer blocks (causal
 * self-attention with a fused qkv projection, GELU MLP), a final
 * LayerNorm and an output head tied to the token embedding. */
#ifndef CG_GPT_H
#define CG_GPT_H
#include "dagflow.h"

#define CG_MAX_LAYERS 16

typedef struct cg_config {
    int vocab, block, n_layer, n_head, n_embd;
    uint64_t seed;
} cg_config;

typedef struct cg_gpt {
    cg_config cfg;
    df_model *model;                       /* owns the layers below */
    df_layer *wte, *wpe, *blocks[CG_MAX_LAYERS], *ln_f, *head;
} cg_gpt;

/* DF_ERR_ARG naming the first bad setting (as its command-line flag). */
df_status cg_config_check(const cg_config *c);
/* Builds every layer for batches of (batch, block) and initialises the
 * weights as nanoGPT: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 L)),
 * zero biases, LayerNorm gains 1. */
df_status cg_gpt_init(cg_gpt *m, const cg_config *c, int batch);
void cg_gpt_free(cg_gpt *m);

/* idx i32 (B,T), pos i32 (T) = 0..T-1 -> logits (B,T,V). */
df_node *cg_gpt_logits(cg_gpt *m, df_graph *g, df_node *idx, df_node *pos, bool training);

/* Every weight, for checkpoints and the optimizer (n returned, up to max). */
int cg_gpt_weights(const cg_gpt *m, df_variable **out, int max);

#endif
