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
    float dropout;                         /* training only; 0: none */
    uint64_t seed;
} cg_config;

typedef struct cg_gpt {
    cg_config cfg;
    df_model *model;                       /* owns the layers below */
    df_layer *wte, *wpe, *blocks[CG_MAX_LAYERS], *ln_f, *head;
    df_variable *dropout_seed;             /* not owned */
} cg_gpt;

/* DF_ERR_ARG naming the first bad setting (as its command-line flag). */
df_status cg_config_check(const cg_config *c);
/* Builds every layer for batches of (batch, block) and initialises the
 * weights as nanoGPT: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 L)),
 * zero biases, LayerNorm gains 1. */
df_status cg_gpt_init(cg_gpt *m, const cg_config *c, int batch);
void cg_gpt_free(cg_gpt *m);

/* Dropout (cfg.dropout > 0, training only) after the embeddings' sum and
 * after each block's two residual projections, as nanoGPT's drop and
 * resid_dropout; nanoGPT's attn_dropout on the attention matrix is not
 * applied (the fused attention never forms that matrix). The masks are drawn
 * from seed (an i32 scalar variable, e.g. the optimizer's step counter: a new
 * mask each step). Needed before tracing a training graph with dropout. */
df_status cg_gpt_set_dropout_seed(cg_gpt *m, df_variable *seed);

/* idx i32 (B,T), pos i32 (T) = 0..T-1 -> logits (B,T,V). */
df_node *cg_gpt_logits(cg_gpt *m, df_graph *g, df_node *idx, df_node *pos, bool training);

/* Every weight, for checkpoints and the optimizer (n returned, up to max). */
int cg_gpt_weights(const cg_gpt *m, df_variable **out, int max);

/* Sampling at batch 1 with a KV cache: each pushed token runs one step
 * (a trace of its own, separate from training) that writes the token's keys
 * and values into per-block cache variables (1, n_head, block, head_dim) at
 * its position (df_assign_at) and attends over the positions held, so a step costs one
 * token's work. When the cache holds block tokens, the next push first
 * rebuilds it from the last keep tokens at positions 0..keep-1 with one
 * forward over them (a second trace, which writes all their keys and values
 * and stops at the last block's writes: no logits),
 * because learned absolute positions make shifting the window impossible:
 * keep = block - 1 is nanoGPT's crop to the last block tokens at every step
 * (past the block, each char costs a keep-token forward); a smaller keep
 * crops less often (context between keep + 1 and block tokens). With
 * replay set, a rebuild instead runs the one-token step for each kept
 * token at positions 0..keep-1 (keep steps, the same results up to
 * rounding): what a program driving the exported step alone must do, so
 * that its logits equal these bit for bit. The logits after each push are
 * those of the full forward over window[0..len). */
typedef struct cg_cache {
    cg_gpt *gpt;                           /* built for batch 1 */
    int keep, len;                         /* len: positions held */
    bool replay;                           /* rebuild with a step per kept token (as an exported
                                            * step is driven: cg_export_sampler), not one prefill */
    int32_t *window;                       /* the tokens held (block) */
    df_variable *k[CG_MAX_LAYERS], *v[CG_MAX_LAYERS];
    df_function *step, *prefill;           /* one token (1,1) at pos (1); the keep tokens of a rebuild */
    int32_t *positions;                    /* 0..block-1 for the prefill */
    df_tensor logits;                      /* (1,1,V) of the last push */
} cg_cache;

/* DF_ERR_ARG unless 0 <= keep < block. */
df_status cg_cache_init(cg_cache *c, cg_gpt *m, int keep);
void cg_cache_free(cg_cache *c);
/* Forgets every position (the next push is at position 0). */
void cg_cache_reset(cg_cache *c);
/* Appends token (after a rebuild when full); *logits (V) for the next token,
 * valid until the next push. */
df_status cg_cache_push(cg_cache *c, int32_t token, const float **logits);

/* Writes the cache's one-token step as a saved graph (dagflow.h, "saved
 * graphs"): inputs the token i32 (1,1) and its position i32 (1), output its
 * logits (1,1,V); the KV caches are variables inside the file, zeros there.
 * The metadata tell a program without this code how to drive it
 * (tools/char_sampler.h): "dagflow.sampler" = "char", "vocab" (vocab_utf8,
 * the V characters in id order), "dagflow.context" (block) and
 * "dagflow.keep" (keep: the tokens replayed at positions 0..keep-1 when the
 * context is full), so that it computes what a cg_cache with this keep and
 * replay set does, bit for bit. DF_ERR_ARG unless 0 <= keep < block. */
df_status cg_export_sampler(cg_gpt *m, const char *vocab_utf8, size_t vocab_len, int keep, const char *path);

#endif
