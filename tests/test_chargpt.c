/* test_chargpt.c — char-gpt's KV-cache sampler (examples/chargpt/gpt.c)
 * against the full-context forward, and its dropout placement. */
#include "helpers.h"
#include <unistd.h>
#include "char_sampler.h"
#include "gpt.h"

#define VOCAB 11
#define BLOCK 8

/* A small model whose every weight (biases and LayerNorm gains too) is
 * random, so a cache step that dropped a bias or a gain would differ. */
static void small_gpt(cg_gpt *m, float dropout)
{
    cg_config c = {.vocab = VOCAB, .block = BLOCK, .n_layer = 2, .n_head = 2, .n_embd = 16, .dropout = dropout,
                   .seed = 7};
    cr_assert_eq(cg_gpt_init(m, &c, 1), DF_OK, "%s", df_last_error());
    df_variable *w[64];
    int n = cg_gpt_weights(m, w, 64);
    df_rng rng;
    df_rng_seed(&rng, 99);
    for (int i = 0; i < n; i++)
        cr_assert_eq(df_variable_init(w[i], df_init_uniform(-0.5f, 0.5f), &rng), DF_OK);
}

/* small_gpt's model and a KV cache over it keeping keep tokens. */
static void small_cache(cg_gpt *m, cg_cache *c, int keep)
{
    small_gpt(m, 0);
    cr_assert_eq(cg_cache_init(c, m, keep), DF_OK, "%s", df_last_error());
}

// idx (1,T), pos (T) -> logits (1,T,V)
static df_status build_full(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, cg_gpt_logits(user, g, in[0], in[1], false));
    return df_graph_status(g);
}

/* Last-position logits of the full forward over tokens[0..n). */
static const float *full_logits(df_function *f, const int32_t *tokens, int n)
{
    static int32_t idx[BLOCK], pos[BLOCK];
    memcpy(idx, tokens, (size_t)n * sizeof *idx);
    for (int t = 0; t < n; t++) pos[t] = t;
    df_tensor in[2] = {I32(idx, 1, n), df_tensor_make(DF_I32, pos, 1, (int64_t[]){n})}, out;
    cr_assert_eq(df_function_call(f, in, 2, &out, 1), DF_OK, "%s", df_last_error());
    return (const float *)out.data + (int64_t)(n - 1) * VOCAB;
}

/* Pushes 3 blocks' worth of tokens with the given keep and compares the
 * logits after each push with the full forward over the window the cache
 * holds, which must be the last tokens pushed (the cropping rule). */
static void cache_matches_full_forward(int keep, bool replay)
{
    cg_gpt m;
    small_gpt(&m, 0);
    cg_cache c;
    cr_assert_eq(cg_cache_init(&c, &m, keep), DF_OK, "%s", df_last_error());
    c.replay = replay;
    df_function *full = df_function_new("full", build_full, &m);
    df_function_set_retrace_warning(full, 0);
    int32_t pushed[3 * BLOCK + 5];
    int n_pushed = (int)(sizeof pushed / sizeof pushed[0]), crops = 0;
    df_rng rng;
    df_rng_seed(&rng, 3);
    double worst = 0;
    for (int i = 0; i < n_pushed; i++) {
        pushed[i] = (int32_t)df_rng_below(&rng, VOCAB);
        int before = c.len;
        const float *got;
        cr_assert_eq(cg_cache_push(&c, pushed[i], &got), DF_OK, "%s", df_last_error());
        crops += c.len <= before;
        cr_assert(c.len >= 1 && c.len <= BLOCK);
        cr_assert(memcmp(c.window, pushed + i + 1 - c.len, (size_t)c.len * sizeof *pushed) == 0,
                  "push %d: the window is not the last %d tokens", i, c.len);
        const float *want = full_logits(full, c.window, c.len);
        double scale = 0;                  /* relative to the row's largest logit: near-zero ones round alike */
        for (int v = 0; v < VOCAB; v++) scale = fmax(scale, fabs(want[v]));
        for (int v = 0; v < VOCAB; v++) {
            double err = fabs((double)got[v] - want[v]) / scale;
            if (err > worst) worst = err;
            cr_expect(err <= 1e-5, "keep %d, push %d (window %d), logit %d: cached %.8g, full %.8g", keep, i, c.len,
                      v, got[v], want[v]);
        }
    }
    cr_expect(crops >= 2, "the cache was cropped %d times over %d pushes", crops, n_pushed);
    if (keep == BLOCK - 1) cr_expect_eq(c.len, BLOCK, "nanoGPT's crop keeps the window full");
    cr_log_info("keep %d: largest relative difference %.3g over %d pushes, %d crops", keep, worst, n_pushed, crops);
    df_function_free(full);
    cg_cache_free(&c);
    cg_gpt_free(&m);
}

Test(kv_cache, logits_equal_the_full_forward_with_nanogpt_crop) { cache_matches_full_forward(BLOCK - 1, false); }
Test(kv_cache, logits_equal_the_full_forward_keeping_half) { cache_matches_full_forward(BLOCK / 2, false); }
Test(kv_cache, logits_equal_the_full_forward_keeping_none) { cache_matches_full_forward(0, false); }
Test(kv_cache, replayed_rebuilds_equal_the_full_forward_too) { cache_matches_full_forward(BLOCK / 2, true); }

Test(kv_cache, reset_starts_again_at_position_zero)
{
    cg_gpt m;
    cg_cache c;
    small_cache(&m, &c, 2);
    const float *p;
    float first[VOCAB];
    cr_assert_eq(cg_cache_push(&c, 4, &p), DF_OK);
    memcpy(first, p, sizeof first);
    for (int i = 0; i < 5; i++) cr_assert_eq(cg_cache_push(&c, (int32_t)i, &p), DF_OK);
    cg_cache_reset(&c);
    cr_assert_eq(cg_cache_push(&c, 4, &p), DF_OK);
    cr_expect(memcmp(first, p, sizeof first) == 0, "the same first token after a reset gives the same logits");
    cr_expect_eq(df_function_trace_count(c.step), 1, "one trace serves every step");
    cg_cache_free(&c);
    cg_gpt_free(&m);
}

/* Scheduled nodes of op that run a kernel in a compiled graph. */
static int nodes_of(const df_graph *g, const char *op)
{
    df_op_profile p[64];
    int n = df_graph_profile(g, p, 64, NULL);
    for (int i = 0; i < n && i < 64; i++)
        if (!strcmp(p[i].op, op)) return p[i].nodes;
    return 0;
}

/* A one-token step's time goes mostly to its node count (a kernel call and
 * a parallel region each): its heads are split and merged by reshapes alone
 * (views), and in each block the fusion pass merges the scores' scaling and
 * mask, and each bias add with the GELU or residual add after it. A
 * rebuild's prefill stops at the last block's cache writes, since a rebuild
 * reads no logits. */
Test(kv_cache, the_step_copies_no_heads_and_fuses_its_adds_the_prefill_stops_at_the_last_writes)
{
    cg_gpt m;
    cg_cache c;
    small_cache(&m, &c, 2);
    const float *p;
    for (int i = 0; i <= BLOCK; i++) cr_assert_eq(cg_cache_push(&c, (int32_t)(i % VOCAB), &p), DF_OK, "%s", df_last_error());
    const df_graph *step = df_function_last_graph(c.step), *prefill = df_function_last_graph(c.prefill);
    cr_assert(step && prefill, "a push past the block ran both the step and a prefill");
    const int layers = m.cfg.n_layer;
    cr_expect_eq(nodes_of(step, "transpose"), 0, "the step transposes nothing (%d transposes)", nodes_of(step, "transpose"));
    cr_expect_eq(nodes_of(step, "fused_elementwise"), 4 * layers, "%d fused chains in %d blocks",
                 nodes_of(step, "fused_elementwise"), layers);
    cr_expect_eq(nodes_of(step, "gelu"), 0, "each GELU is fused with its bias add");
    cr_expect_eq(nodes_of(prefill, "attention"), layers - 1, "%d attention nodes: the last block only writes its cache",
                 nodes_of(prefill, "attention"));
    cr_expect_eq(nodes_of(prefill, "assign_at"), 2 * layers, "every block writes its keys and values");
    cr_expect_eq(nodes_of(prefill, "layer_norm"), 2 * layers - 1, "no second LayerNorm in the last block, no final one");
    cg_cache_free(&c);
    cg_gpt_free(&m);
}

Test(kv_cache, bad_keep_and_tokens_are_refused)
{
    cg_gpt m;
    small_gpt(&m, 0);
    cg_cache c;
    cr_expect_eq(cg_cache_init(&c, &m, BLOCK), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "--keep") != NULL, "%s", df_last_error());
    cr_expect_eq(cg_cache_init(&c, &m, -1), DF_ERR_ARG);
    cr_assert_eq(cg_cache_init(&c, &m, 1), DF_OK);
    cr_expect_eq(cg_cache_push(&c, VOCAB, NULL), DF_ERR_RANGE);
    cr_expect_eq(c.len, 0, "a refused token is not held");
    cg_cache_free(&c);
    cg_gpt_free(&m);
}

/* ------------------------------------------------------------- export */

static const char export_vocab[] = "abcdefghijk";   /* VOCAB characters */

/* The small model's step exported with keep, loaded back; path is removed. */
static df_saved *exported(cg_gpt *m, int keep)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_chargpt_%d.dfg", (int)getpid());
    cr_assert_eq(cg_export_sampler(m, export_vocab, VOCAB, keep, path), DF_OK, "%s", df_last_error());
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    unlink(path);
    return s;
}

/* Drives the loaded step as tools/char_sampler.h says: positions 0, 1, ...;
 * at a full context the last keep tokens again at 0..keep-1. */
typedef struct saved_driver { df_saved *s; int keep, len; int32_t window[BLOCK]; } saved_driver;

static const float *saved_step(saved_driver *d, int32_t token)
{
    int32_t pos = d->len;
    df_tensor in[2] = {I32(&token, 1, 1), df_tensor_make(DF_I32, &pos, 1, (int64_t[]){1})}, out;
    cr_assert_eq(df_saved_run(d->s, in, 2, &out, 1), DF_OK, "%s", df_last_error());
    cr_assert(out.ndim == 3 && out.shape[2] == VOCAB);
    d->window[d->len++] = token;
    return out.data;
}

static const float *saved_push(saved_driver *d, int32_t token)
{
    if (d->len == BLOCK) {
        memmove(d->window, d->window + BLOCK - d->keep, (size_t)d->keep * sizeof *d->window);
        d->len = 0;
        for (int t = 0; t < d->keep; t++) saved_step(d, d->window[t]);
    }
    return saved_step(d, token);
}

Test(export, the_saved_step_gives_the_replaying_caches_logits_bit_for_bit)
{
    cg_gpt m;
    small_gpt(&m, 0);
    int keep = BLOCK / 2;
    saved_driver d = {.s = exported(&m, keep), .keep = keep};
    cg_cache c;
    cr_assert_eq(cg_cache_init(&c, &m, keep), DF_OK, "%s", df_last_error());
    c.replay = true;
    df_rng rng;
    df_rng_seed(&rng, 11);
    int crops = 0;
    for (int i = 0; i < 200; i++) {
        int32_t token = (int32_t)df_rng_below(&rng, VOCAB);
        const float *live;
        crops += c.len == BLOCK;
        cr_assert_eq(cg_cache_push(&c, token, &live), DF_OK, "%s", df_last_error());
        const float *saved = saved_push(&d, token);
        for (int v = 0; v < VOCAB; v++)
            cr_assert(memcmp(&live[v], &saved[v], sizeof *live) == 0, "step %d (position %d), logit %d: live %.9g, "
                      "saved %.9g", i, c.len - 1, v, live[v], saved[v]);
    }
    cr_expect_gt(crops, 20, "the context was full %d times", crops);
    cr_expect_eq(df_saved_reset(d.s), DF_OK);
    cg_cache_reset(&c);
    const float *live, *saved;
    cr_assert_eq(cg_cache_push(&c, 3, &live), DF_OK);
    d.len = 0;
    saved = saved_push(&d, 3);
    cr_expect(memcmp(live, saved, VOCAB * sizeof *live) == 0, "after a reset both start again at position 0");
    cg_cache_free(&c);
    df_saved_free(d.s);
    cg_gpt_free(&m);
}

static void append(const char *utf8, int len, void *ctx)
{
    char *text = ctx;
    strncat(text, utf8, (size_t)len);
}

/* The live sampler's text: start through the replaying cache, then ds_draw
 * as char-gpt sample does. */
static void live_text(cg_gpt *m, int keep, const char *start, int length, int top_k, uint64_t seed, char *text)
{
    cg_cache c;
    cr_assert_eq(cg_cache_init(&c, m, keep), DF_OK);
    c.replay = true;
    const float *logits = NULL;
    for (const char *p = start; *p; p++) cr_assert_eq(cg_cache_push(&c, (int32_t)(strchr(export_vocab, *p) - export_vocab), &logits), DF_OK);
    df_rng rng;
    df_rng_seed(&rng, seed);
    double scratch[VOCAB];
    for (int n = 0; n < length; n++) {
        int id = ds_draw(logits, VOCAB, 1.0f, top_k, &rng, scratch);
        text[n] = export_vocab[id];
        if (n + 1 < length) cr_assert_eq(cg_cache_push(&c, id, &logits), DF_OK);
    }
    text[length] = '\0';
    cg_cache_free(&c);
}

Test(export, dagflow_runs_sampler_writes_the_live_samplers_text_for_a_seed)
{
    cg_gpt m;
    small_gpt(&m, 0);
    int keep = 3;
    df_saved *s = exported(&m, keep);
    static char want[201], got[201], other[201];
    for (int top_k = 0; top_k <= 4; top_k += 4) {
        live_text(&m, keep, "abc", 200, top_k, 5, want);
        got[0] = other[0] = '\0';
        cr_assert_eq(ds_sample_chars_top_k(s, "abc", 200, 1.0f, top_k, 5, append, got), DF_OK, "%s", df_last_error());
        cr_expect_str_eq(got, want, "top-k %d", top_k);
        cr_assert_eq(ds_sample_chars_top_k(s, "abc", 200, 1.0f, top_k, 6, append, other), DF_OK);
        cr_expect_str_neq(got, other, "another seed gives other text");
    }
    cr_expect_eq(ds_sample_chars_top_k(s, "abz", 10, 1.0f, 0, 5, append, got), DF_ERR_ARG, "z is not in the vocabulary");
    df_saved_free(s);
    cg_gpt_free(&m);
}

Test(export, a_keep_outside_the_block_is_refused)
{
    cg_gpt m;
    small_gpt(&m, 0);
    cr_expect_eq(cg_export_sampler(&m, export_vocab, VOCAB, BLOCK, "/tmp/never.dfg"), DF_ERR_ARG);
    cr_expect_eq(access("/tmp/never.dfg", F_OK), -1, "nothing written");
    cg_gpt_free(&m);
}

/* ------------------------------------------------------------ dropout */

typedef struct dropout_run { cg_gpt *m; bool training; } dropout_run;

static df_status build_dropout(df_graph *g, df_node **in, void *user)
{
    dropout_run *r = user;
    df_graph_output(g, cg_gpt_logits(r->m, g, in[0], in[1], r->training));
    return df_graph_status(g);
}

/* Logits (1,BLOCK,V) of a fixed sequence, training or not, at seed value s. */
static void logits_at(cg_gpt *m, df_variable *seed, int32_t s, bool training, float *out)
{
    int32_t idx[BLOCK], pos[BLOCK];
    for (int t = 0; t < BLOCK; t++) idx[t] = (int32_t)(t * 3 % VOCAB), pos[t] = t;
    df_tensor st = df_tensor_make(DF_I32, &s, 0, NULL);
    cr_assert_eq(df_variable_assign(seed, &st), DF_OK, "%s", df_last_error());
    dropout_run r = {m, training};
    df_function *f = df_function_new("dropout", build_dropout, &r);
    df_tensor in[2] = {I32(idx, 1, BLOCK), I32(pos, BLOCK)}, y;
    cr_assert_eq(df_function_call(f, in, 2, &y, 1), DF_OK, "%s", df_last_error());
    memcpy(out, y.data, sizeof(float) * BLOCK * VOCAB);
    df_function_free(f);
}

Test(dropout, active_in_training_only_and_new_masks_with_a_new_seed)
{
    cg_gpt m, plain;
    small_gpt(&m, 0.3f);
    small_gpt(&plain, 0);
    df_variable *seed = df_variable_new("seed", DF_I32, 0, NULL, df_init_zeros(), NULL);
    cr_assert_eq(cg_gpt_set_dropout_seed(&m, seed), DF_OK);
    static float eval[BLOCK * VOCAB], train1[BLOCK * VOCAB], train1b[BLOCK * VOCAB], train2[BLOCK * VOCAB],
        reference[BLOCK * VOCAB];
    logits_at(&m, seed, 1, false, eval);
    logits_at(&plain, seed, 1, false, reference);
    logits_at(&m, seed, 1, true, train1);
    logits_at(&m, seed, 1, true, train1b);
    logits_at(&m, seed, 2, true, train2);
    cr_expect(memcmp(eval, reference, sizeof eval) == 0, "evaluation applies no dropout");
    cr_expect(memcmp(eval, train1, sizeof eval) != 0, "training applies dropout");
    cr_expect(memcmp(train1, train1b, sizeof eval) == 0, "the same seed repeats the masks");
    cr_expect(memcmp(train1, train2, sizeof eval) != 0, "another seed draws other masks");
    df_variable_free(seed);
    cg_gpt_free(&m);
    cg_gpt_free(&plain);
}

Test(dropout, without_a_seed_the_graph_says_so)
{
    cg_gpt m;
    small_gpt(&m, 0.3f);
    int32_t idx[BLOCK] = {0}, pos[BLOCK];
    for (int t = 0; t < BLOCK; t++) pos[t] = t;
    dropout_run r = {&m, true};
    df_function *f = df_function_new("dropout", build_dropout, &r);
    df_tensor in[2] = {I32(idx, 1, BLOCK), I32(pos, BLOCK)}, y;
    cr_expect_eq(df_function_call(f, in, 2, &y, 1), DF_ERR_STATE);
    cr_expect(strstr(df_last_error(), "seed") != NULL, "%s", df_last_error());
    df_function_free(f);
    cg_gpt_free(&m);
}

Test(dropout, a_rate_outside_0_1_is_refused)
{
    cg_gpt m;
    cg_config c = {.vocab = VOCAB, .block = BLOCK, .n_layer = 1, .n_head = 1, .n_embd = 4, .dropout = 1.0f};
    cr_expect_eq(cg_gpt_init(&m, &c, 1), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "--dropout") != NULL, "%s", df_last_error());
}

/* ---------------------------------------------------------- assign_at */

/* v (2,3,2) = 0..11; writes value (2,1,2) at pos along axis 1 and returns
 * the node's value (the variable after the write) through the graph. */
static df_status write_at(df_variable *v, int32_t pos, float *out)
{
    df_graph *g = df_graph_new();
    df_node *value = PH(g, 2, 1, 2), *p = PHI(g, 1);
    df_node *y = df_scale(g, df_assign_at(g, v, value, p, -2), 1.0f);
    df_graph_output(g, y);
    float val[4] = {100, 101, 102, 103};
    df_tensor in[2] = {F32(val, 2, 1, 2), I32(&pos, 1)}, o;
    df_status st = df_graph_run(g, in, 2, &o, 1);
    if (st == DF_OK) memcpy(out, o.data, 12 * sizeof *out);
    df_graph_free(g);
    return st;
}

Test(assign_at, writes_one_slab_in_place_and_the_node_reads_it)
{
    float init[12], out[12];
    for (int i = 0; i < 12; i++) init[i] = (float)i;
    df_variable *v = df_variable_new("cache", DF_F32, 3, SHAPE(2, 3, 2), df_init_zeros(), NULL);
    df_tensor t = F32(init, 2, 3, 2);
    cr_assert_eq(df_variable_assign(v, &t), DF_OK);
    cr_assert_eq(write_at(v, 2, out), DF_OK, "%s", df_last_error());
    float want[12] = {0, 1, 2, 3, 100, 101, 6, 7, 8, 9, 102, 103};
    expect_close(out, want, 12, 0);
    expect_close(df_variable_tensor(v).data, want, 12, 0);
    cr_assert_eq(write_at(v, 0, out), DF_OK);
    float want0[12] = {100, 101, 2, 3, 100, 101, 102, 103, 8, 9, 102, 103};
    expect_close(df_variable_tensor(v).data, want0, 12, 0);
    df_variable_free(v);
}

Test(assign_at, writes_several_rows_from_the_position_on)
{
    df_variable *v = df_variable_new("cache", DF_F32, 3, SHAPE(2, 3, 2), df_init_zeros(), NULL);
    df_graph *g = df_graph_new();
    df_node *value = PH(g, 2, 2, 2), *p = PHI(g, 1);   /* inputs in this order */
    df_node *y = df_assign_at(g, v, value, p, 1);
    df_graph_output(g, df_scale(g, y, 1.0f));
    float val[8] = {1, 2, 3, 4, 5, 6, 7, 8}, want[12] = {0, 0, 1, 2, 3, 4, 0, 0, 5, 6, 7, 8};
    int32_t pos = 1;
    df_tensor in[2] = {F32(val, 2, 2, 2), I32(&pos, 1)}, o;
    cr_assert_eq(df_graph_run(g, in, 2, &o, 1), DF_OK, "%s", df_last_error());
    expect_close(o.data, want, 12, 0);
    pos = 2;
    cr_expect_eq(df_graph_run(g, in, 2, &o, 1), DF_ERR_RANGE, "rows 2..3 do not fit in 3");
    df_graph_free(g);
    df_variable_free(v);
}

Test(assign_at, a_position_outside_the_axis_fails_the_run)
{
    float out[12];
    df_variable *v = df_variable_new("cache", DF_F32, 3, SHAPE(2, 3, 2), df_init_zeros(), NULL);
    cr_expect_eq(write_at(v, 3, out), DF_ERR_RANGE);
    cr_expect(strstr(df_last_error(), "position 3 of 1 rows outside [0, 3)") != NULL, "%s", df_last_error());
    cr_expect_eq(write_at(v, -1, out), DF_ERR_RANGE);
    df_variable_free(v);
}

Test(assign_at, shapes_dtypes_and_axes_are_checked)
{
    df_variable *v = df_variable_new("cache", DF_F32, 3, SHAPE(2, 3, 2), df_init_zeros(), NULL);
    df_graph *g = df_graph_new();
    df_node *p = PHI(g, 1);
    cr_expect_null(df_assign_at(g, v, PH(g, 2, 4, 2), p, 1));
    cr_expect(strstr(df_graph_error(g), "at most as long at axis 1") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_assign_at(g, v, PH(g, 2, 1, 3), PHI(g, 1), 1));
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_assign_at(g, v, PH(g, 2, 1, 2), PH(g, 1), 1));
    cr_expect(strstr(df_graph_error(g), "pos must be an i32") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_assign_at(g, v, PH(g, 2, 1, 2), PHI(g, 1), 3));
    cr_expect(strstr(df_graph_error(g), "axis out of range") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_assign_at(g, v, PHI(g, 2, 1, 2), PHI(g, 1), 1));
    cr_expect(strstr(df_graph_error(g), "is f32") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);
    df_variable_free(v);
}
