/* char-gpt — nanoGPT's shakespeare_char model in C on dagflow's layers and
 * df_fit loop.
 *   char-gpt train    [flags]   AdamW, warm-up + cosine schedule, clipping, validation, checkpoints
 *   char-gpt sample   [flags]   generate text from the latest checkpoint
 *   char-gpt export   [flags] OUT.dfg   the KV-cache sampling step as a saved graph (dagflow-run)
 *   char-gpt summary  [flags]   Keras-style parameter table
 *   char-gpt bench    [flags]   ms per training step and per sampled char, one JSON line
 *   char-gpt grads    [flags]   weights, one batch, loss and gradients to files (tests/chargpt_torch.sh) */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "char_sampler.h"
#include "cli.h"
#include "gpt.h"
#include "text.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAX_WEIGHTS (4 + 12 * CG_MAX_LAYERS)

typedef struct opts {
    const char *data, *checkpoint_dir, *start, *out_dir;
    cg_config model;
    int batch, iters, eval_interval, eval_iters, warmup_iters, length, threads, top_k, keep, warmup, rebuild;
    int precision;          /* 0 fp32, 1 bf16 */
    float lr, min_lr, weight_decay, temperature;
    bool resume, overwrite, profile;
} opts;

static opts defaults(void)
{
    return (opts){.data = CR_DEFAULT_DATA, .checkpoint_dir = "./chargpt_checkpoints", .start = "\n",
                  .model = {.block = 64, .n_layer = 4, .n_head = 4, .n_embd = 128, .seed = 1337},
                  .batch = 12, .iters = 2000, .eval_interval = 250, .eval_iters = 20, .warmup_iters = 100,
                  .length = 200, .keep = -1, .lr = 1e-3f, .min_lr = 1e-4f, .weight_decay = 0.1f, .temperature = 1.0f};
}

/* How the sampler's KV cache refills after a crop (gpt.h: cg_cache). */
enum { REBUILD_PREFILL, REBUILD_REPLAY };
static const char *const rebuild_names[] = {"prefill", "replay", NULL};
static const char *const precisions[] = {"fp32", "bf16", NULL};

#define MODEL_FLAGS(o)                                                                                 \
    {"block", CLI_INT, &(o).model.block, "context length (tokens per sequence)", 1, 4096, NULL},       \
    {"n-layer", CLI_INT, &(o).model.n_layer, "transformer blocks", 1, CG_MAX_LAYERS, NULL},            \
    {"n-head", CLI_INT, &(o).model.n_head, "attention heads per block", 1, 256, NULL},                 \
    {"n-embd", CLI_INT, &(o).model.n_embd, "embedding width (a multiple of --n-head)", 1, 8192, NULL}, \
    {"batch", CLI_INT, &(o).batch, "sequences per step", 1, 4096, NULL},                               \
    {"data", CLI_STRING, &(o).data, "the corpus (UTF-8)", 0, 0, NULL},                                 \
    {"threads", CLI_INT, &(o).threads, "kernel threads (0: OpenMP's default)", 0, 1024, NULL},        \
    {"precision", CLI_CHOICE, &(o).precision, "fp32, or bf16: matmuls and the attention's products on bf16 " \
     "operands with fp32 sums, fp32 weights and softmax (CPUs with AVX512_BF16)", 0, 0, precisions}

/* -------------------------------------------------------------- data */

/* Batches of random offsets into one split, as nanoGPT's get_batch:
 * x = ids[i : i+T], y = ids[i+1 : i+T+1]; pos = 0..T-1. */
typedef struct batches {
    const int32_t *ids;
    int64_t n;
    int B, T, steps, left;        /* steps per pass (validation: eval_iters), left in this one */
    uint64_t seed;
    bool reseed;                  /* validation: the same batches at every estimate */
    df_rng rng;
    int32_t *x, *y, *pos;
} batches;

static df_status batches_init(batches *b, const int32_t *ids, int64_t n, int B, int T, int steps, uint64_t seed,
                              bool reseed)
{
    if (n < T + 2) return df_error(DF_ERR_ARG, "a split of %lld chars is too short for --block %d", (long long)n, T);
    *b = (batches){.ids = ids, .n = n, .B = B, .T = T, .steps = steps, .left = steps, .seed = seed, .reseed = reseed};
    df_rng_seed(&b->rng, seed);
    b->x = malloc((size_t)B * T * sizeof *b->x);
    b->y = malloc((size_t)B * T * sizeof *b->y);
    b->pos = malloc((size_t)T * sizeof *b->pos);
    if (!b->x || !b->y || !b->pos) return df_error(DF_ERR_NOMEM, "out of memory for batches");
    for (int t = 0; t < T; t++) b->pos[t] = t;
    return DF_OK;
}

static void batches_free(batches *b) { free(b->x), free(b->y), free(b->pos); }

static void start_pass(void *user)
{
    batches *b = user;
    b->left = b->steps;
    if (b->reseed) df_rng_seed(&b->rng, b->seed);
}

static df_status next_batch(void *user, df_tensor *in, bool *end)
{
    batches *b = user;
    if ((*end = b->left-- <= 0)) return DF_OK;
    for (int r = 0; r < b->B; r++) {
        int64_t i = (int64_t)(df_rng_uniform(&b->rng) * (double)(b->n - b->T - 1));
        memcpy(b->x + (int64_t)r * b->T, b->ids + i, (size_t)b->T * sizeof *b->x);
        memcpy(b->y + (int64_t)r * b->T, b->ids + i + 1, (size_t)b->T * sizeof *b->y);
    }
    in[0] = df_tensor_make(DF_I32, b->x, 2, (int64_t[]){b->B, b->T});
    in[1] = df_tensor_make(DF_I32, b->y, 2, (int64_t[]){b->B, b->T});
    in[2] = df_tensor_make(DF_I32, b->pos, 1, (int64_t[]){b->T});
    return DF_OK;
}

/* The RNG and the steps left: a resumed run draws the batches it would have. */
static df_status save_batches(void *user, df_checkpoint *ck)
{
    batches *b = user;
    struct { df_rng rng; int32_t left; } rec;
    memset(&rec, 0, sizeof rec);           /* the padding too: equal runs write equal files */
    rec.rng = b->rng;
    rec.left = b->left;
    return df_checkpoint_put_blob(ck, "data/train", &rec, sizeof rec);
}

static df_status restore_batches(void *user, const df_checkpoint *ck)
{
    batches *b = user;
    const void *p;
    size_t len;
    struct { df_rng rng; int32_t left; } rec;
    df_status st = df_checkpoint_get_blob(ck, "data/train", &p, &len);
    if (st != DF_OK) return st;
    if (len != sizeof rec) return df_error(DF_ERR_FORMAT, "bad data/train record (%zu bytes)", len);
    memcpy(&rec, p, sizeof rec);
    b->rng = rec.rng;
    b->left = rec.left;
    return DF_OK;
}

/* ------------------------------------------------------------- steps */

typedef struct run {
    opts o;
    cr_text text;
    cg_gpt gpt;
    df_optimizer *opt;
    df_variable *weights[MAX_WEIGHTS];
    int n_weights;
    char resume_note[512];          /* the settings a resume changed */
} run;

// (x (B,T), y (B,T), pos (T)) -> mean cross-entropy
static df_node *loss_of(run *r, df_graph *g, df_node **in, bool training)
{
    return df_sparse_softmax_cross_entropy(g, cg_gpt_logits(&r->gpt, g, in[0], in[2], training), in[1]);
}

static df_status build_train_step(df_graph *g, df_node **in, void *user)
{
    run *r = user;
    df_tape *tape = df_tape_begin(g);
    df_node *loss = loss_of(r, g, in, true);
    df_tape_end(tape);
    df_node *grads[MAX_WEIGHTS];
    if (df_tape_gradient(tape, loss, r->n_weights, r->weights, grads) == DF_OK)
        df_optimizer_apply(g, r->opt, r->n_weights, r->weights, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static df_status build_eval_step(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, loss_of(user, g, in, false));
    return df_graph_status(g);
}

/* ------------------------------------------------------- checkpoints */

/* The "chargpt/config" record: format 1 (no format key) held the model's
 * shape alone; format 2 holds what a resume must match or may change. */
#define CG_CHECKPOINT_FORMAT 2

typedef struct saved_run {
    cg_config model;
    int batch, iters, eval_interval, eval_iters, warmup_iters;
    float lr, min_lr, weight_decay;
    uint64_t data_hash;            /* the corpus: its ids, FNV-1a */
} saved_run;

#define F(key, type, member, ...) {key, DF_CONFIG_##type, offsetof(saved_run, member), __VA_ARGS__}
/* A resume refuses a change of the model, the data or their order (batch,
 * seed, steps per epoch) and of dropout (other masks); it applies and reports
 * a changed schedule, step count, validation size or weight decay. */
static const df_config_field run_fields[] = {
    F("vocab", INT, model.vocab, .required = true),
    F("block", INT, model.block, .flag = "block", .required = true),
    F("n_layer", INT, model.n_layer, .flag = "n-layer", .required = true),
    F("n_head", INT, model.n_head, .flag = "n-head", .required = true),
    F("n_embd", INT, model.n_embd, .flag = "n-embd", .required = true),
    F("dropout", FLOAT, model.dropout, .flag = "dropout"),
    F("seed", U64, model.seed, .flag = "seed"),
    F("data_hash", U64, data_hash, .flag = NULL),
    F("batch", INT, batch, .flag = "batch"),
    F("eval_interval", INT, eval_interval, .flag = "eval-interval"),
    F("iters", INT, iters, .flag = "iters", .may_change = true),
    F("eval_iters", INT, eval_iters, .flag = "eval-iters", .may_change = true),
    F("lr", FLOAT, lr, .flag = "lr", .may_change = true),
    F("min_lr", FLOAT, min_lr, .flag = "min-lr", .may_change = true),
    F("warmup_iters", INT, warmup_iters, .flag = "warmup-iters", .may_change = true),
    F("weight_decay", FLOAT, weight_decay, .flag = "weight-decay", .may_change = true),
};
#undef F
#define N_RUN_FIELDS N(run_fields)

static uint64_t fingerprint(const cr_text *t)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < t->n; i++) h = (h ^ (uint64_t)(uint32_t)t->ids[i]) * 0x100000001b3ULL;
    return h;
}

static saved_run run_settings(const run *r)
{
    const opts *o = &r->o;
    return (saved_run){.model = o->model, .batch = o->batch, .iters = o->iters, .eval_interval = o->eval_interval,
                       .eval_iters = o->eval_iters, .warmup_iters = o->warmup_iters, .lr = o->lr,
                       .min_lr = o->min_lr, .weight_decay = o->weight_decay, .data_hash = fingerprint(&r->text)};
}

static df_status save_extra(void *user, df_checkpoint *ck)
{
    run *r = user;
    char vocab[CR_MAX_VOCAB * 4];
    size_t v = cr_vocab_to_utf8(&r->text.vocab, vocab, sizeof vocab);
    saved_run now = run_settings(r);
    df_status st = df_config_put(ck, "chargpt/config", run_fields, N_RUN_FIELDS, CG_CHECKPOINT_FORMAT, &now);
    return st == DF_OK ? df_checkpoint_put_blob(ck, "chargpt/vocab", vocab, v) : st;
}

/* The checkpoint's settings, its format (1: the model's shape alone) and,
 * when vocab is not NULL, its vocabulary. */
static df_status read_config(const df_checkpoint *ck, saved_run *saved, int *format, cr_vocab *vocab)
{
    const void *p;
    size_t len;
    if (df_checkpoint_get_blob(ck, "chargpt/config", &p, &len) != DF_OK)
        return df_error(DF_ERR_FORMAT, "not a char-gpt checkpoint (no chargpt/config)");
    df_status st = df_config_parse(run_fields, N_RUN_FIELDS, p, len, saved, format);
    if (st == DF_OK && *format == 0) *format = 1;
    if (st == DF_OK && *format > CG_CHECKPOINT_FORMAT)
        st = df_error(DF_ERR_FORMAT, "written by a newer char-gpt (checkpoint format %d, this one reads up to %d)",
                      *format, CG_CHECKPOINT_FORMAT);
    if (st == DF_OK && cg_config_check(&saved->model) != DF_OK) st = df_error(DF_ERR_FORMAT, "bad chargpt/config record");
    if (st != DF_OK || !vocab) return st;
    if ((st = df_checkpoint_get_blob(ck, "chargpt/vocab", &p, &len)) != DF_OK) return st;
    if ((st = cr_vocab_from_utf8(p, len, vocab)) == DF_OK && vocab->size != saved->model.vocab)
        st = df_error(DF_ERR_FORMAT, "the vocabulary has %d chars but chargpt/config says %d", vocab->size,
                      saved->model.vocab);
    return st;
}

/* A may-change field's value as the flag takes it (they are INT or FLOAT). */
static void field_text(const df_config_field *f, const saved_run *r, char *buf, size_t cap)
{
    const char *at = (const char *)r + f->offset;
    if (f->type == DF_CONFIG_FLOAT) snprintf(buf, cap, "%g", (double)*(const float *)at);
    else snprintf(buf, cap, "%d", *(const int *)at);
}

/* "; now --lr 0.002 (was 0.001), --iters 120 (was 80)" for the changes a resume applies. */
static void describe_changes(const saved_run *saved, const saved_run *now, const df_config_field *const *changed,
                             char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; changed[i] && at < cap; i++) {
        char was[32], is[32];
        field_text(changed[i], saved, was, sizeof was);
        field_text(changed[i], now, is, sizeof is);
        at += (size_t)snprintf(buf + at, cap - at, "%s --%s %s (was %s)", i ? "," : "; now", changed[i]->flag, is, was);
    }
}

static df_status restore_extra(void *user, const df_checkpoint *ck)
{
    run *r = user;
    saved_run saved = {0}, now = run_settings(r);
    int format = 0;
    df_status st = read_config(ck, &saved, &format, NULL);
    if (st == DF_OK && format != CG_CHECKPOINT_FORMAT)
        return df_error(DF_ERR_FORMAT, "written by an older char-gpt (checkpoint format %d, this one resumes %d): it "
                        "can still be sampled and exported, but not resumed; retrain", format, CG_CHECKPOINT_FORMAT);
    if (st == DF_OK && saved.data_hash != now.data_hash)
        return df_error(DF_ERR_STATE, "it was trained on another corpus (--data: fingerprint %016llx, this run's %016llx)",
                        (unsigned long long)saved.data_hash, (unsigned long long)now.data_hash);
    const df_config_field *changed[N_RUN_FIELDS + 1];
    if (st == DF_OK) st = df_config_compare(run_fields, N_RUN_FIELDS, &saved, &now, changed);
    if (st == DF_OK) describe_changes(&saved, &now, changed, r->resume_note, sizeof r->resume_note);
    return st;
}

static df_status on_resume(void *user, const df_fit_history *h, char *note, size_t cap)
{
    (void)h;
    snprintf(note, cap, "%s", ((run *)user)->resume_note);
    return DF_OK;
}

/* ------------------------------------------------------------- train */

/* Dropout masks from the optimizer's step counter (its first state
 * variable): a new mask each step, the same ones on a resumed run. */
static df_status seed_dropout(run *r)
{
    df_variable *counter = NULL;
    if (df_optimizer_state(r->opt, &counter, 1) < 1 || !counter)
        return df_error(DF_ERR_STATE, "the optimizer has no step counter to seed dropout");
    return cg_gpt_set_dropout_seed(&r->gpt, counter);
}

static df_status open_run(run *r, const opts *o, int batch)
{
    memset(r, 0, sizeof *r);
    r->o = *o;
    df_status st = cr_text_load(o->data, &r->text);
    if (st != DF_OK) return st;
    r->o.model.vocab = r->text.vocab.size;
    if ((st = cg_gpt_init(&r->gpt, &r->o.model, batch)) != DF_OK) return st;
    r->n_weights = cg_gpt_weights(&r->gpt, r->weights, MAX_WEIGHTS);
    return DF_OK;
}

static void close_run(run *r)
{
    cg_gpt_free(&r->gpt);
    df_optimizer_free(r->opt);
    cr_text_free(&r->text);
}

static df_status train(const opts *o)
{
    run r;
    batches tr = {0}, va = {0};
    df_status st = open_run(&r, o, o->batch);
    int64_t n_train = (int64_t)(0.9 * (double)r.text.n);
    if (st == DF_OK) st = batches_init(&tr, r.text.ids, n_train, o->batch, o->model.block, o->eval_interval, o->model.seed, false);
    if (st == DF_OK)
        st = batches_init(&va, r.text.ids + n_train, r.text.n - n_train, o->batch, o->model.block, o->eval_iters,
                          o->model.seed + 1, true);
    if (st == DF_OK && !(r.opt = df_adamw_new(o->lr, 0.9f, 0.99f, 1e-8f, o->weight_decay))) st = DF_ERR_ARG;
    if (st == DF_OK) st = df_optimizer_set_global_clipnorm(r.opt, 1.0f);
    if (st == DF_OK) st = seed_dropout(&r);
    df_function *step = NULL, *eval = NULL;
    if (st == DF_OK) {
        printf("Corpus: %lld chars, %d distinct; model: %d layers, %d heads, %d wide, block %d: %lld parameters\n",
               (long long)r.text.n, r.text.vocab.size, o->model.n_layer, o->model.n_head, o->model.n_embd,
               o->model.block, (long long)df_model_param_count(r.gpt.model));
        step = df_function_new("train_step", build_train_step, &r);
        eval = df_function_new("eval_step", build_eval_step, &r);
        if (!step || !eval) st = DF_ERR_NOMEM;
    }
    if (st == DF_OK) {
        int epochs = (o->iters + o->eval_interval - 1) / o->eval_interval;
        char csv[4096];
        snprintf(csv, sizeof csv, "%s/losses.csv", o->checkpoint_dir);
        df_fit_options f = {
            .train_step = step, .eval_step = eval, .n_inputs = 3, .optimizer = r.opt,
            .n_variables = r.n_weights, .variables = r.weights,
            .train = {.next = next_batch, .start_epoch = start_pass, .save = save_batches, .restore = restore_batches,
                      .user = &tr},
            .validation = {.next = next_batch, .start_epoch = start_pass, .user = &va},
            .epochs = epochs, .steps_per_epoch = o->eval_interval, .learning_rate = o->lr,
            .schedule = {.kind = DF_LR_COSINE, .warmup_steps = o->warmup_iters,
                         .decay_steps = o->iters > o->warmup_iters ? o->iters - o->warmup_iters : 1,
                         .min_ratio = o->min_lr / o->lr},
            .checkpoint_dir = o->checkpoint_dir, .resume = o->resume, .overwrite = o->overwrite, .csv_path = csv, .terminate_on_nan = true,
            .handle_signals = true, .save_extra = save_extra, .restore_extra = restore_extra, .on_resume = on_resume,
            .resume_flag = "--resume", .user = &r,
        };
        df_fit_history h;
        st = df_fit(&f, &h);
        if (st == DF_OK)
            printf("%lld steps; last train loss %.4f, val loss %.4f; traces: train %d, eval %d\n", (long long)h.steps,
                   h.loss, h.val_loss, df_function_trace_count(step), df_function_trace_count(eval));
    }
    df_function_free(step);
    df_function_free(eval);
    batches_free(&tr);
    batches_free(&va);
    close_run(&r);
    return st;
}

/* ------------------------------------------------------------ sample */

/* Draws as dagflow-run does from an exported step (tools/char_sampler.c),
 * so the same logits and seed give the same text. */
static int draw(const float *logits, int V, float temperature, int top_k, df_rng *rng)
{
    double p[CR_MAX_VOCAB];
    return ds_draw(logits, V, temperature, top_k, rng, p);
}

static df_status load_for_sampling(const opts *o, cg_gpt *gpt, cr_vocab *vocab, char *path, size_t cap)
{
    df_checkpoint *ck = NULL;
    df_status st = df_fit_latest_checkpoint(o->checkpoint_dir, path, cap);
    if (st == DF_OK) st = df_checkpoint_read(path, &ck);
    saved_run saved = {0};
    int format;
    if (st == DF_OK) st = read_config(ck, &saved, &format, vocab);
    saved.model.seed = o->model.seed, saved.model.dropout = 0;   /* the weights come from the file */
    if (st == DF_OK) st = cg_gpt_init(gpt, &saved.model, 1);
    df_variable *w[MAX_WEIGHTS];
    int n = st == DF_OK ? cg_gpt_weights(gpt, w, MAX_WEIGHTS) : 0;
    for (int i = 0; i < n && st == DF_OK; i++) st = df_checkpoint_restore_variable(ck, w[i]);
    df_checkpoint_free(ck);
    return st;
}

/* Writes one character and flushes, so the text streams as it is made. */
static df_status put_char(const cr_vocab *vocab, int32_t id)
{
    char utf8[4];
    fwrite(utf8, 1, (size_t)cr_utf8_encode(vocab->chars[id], utf8), stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) return df_error(DF_ERR_IO, "cannot write the sample to standard output");
    return DF_OK;
}

/* The start text goes through the KV cache (gpt.h: cg_cache), then each
 * drawn character is pushed back in for the next. */
static df_status sample(const opts *o)
{
    cg_gpt gpt;
    cg_cache cache = {0};
    cr_vocab *vocab = calloc(1, sizeof *vocab);
    char path[4096];
    if (!vocab) return df_error(DF_ERR_NOMEM, "out of memory");
    df_status st = load_for_sampling(o, &gpt, vocab, path, sizeof path);
    if (st != DF_OK) {
        free(vocab);
        return st;
    }
    int V = gpt.cfg.vocab, n_start = 0, cap = (int)strlen(o->start) + 1;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) st = df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK) st = cg_cache_init(&cache, &gpt, o->keep < 0 ? gpt.cfg.block / 2 : o->keep);
    cache.replay = o->rebuild == REBUILD_REPLAY;
    if (st == DF_OK) st = cr_vocab_encode(vocab, o->start, ids, cap, &n_start);
    if (st == DF_OK && n_start == 0) st = df_error(DF_ERR_ARG, "--start must hold at least one character");
    df_rng rng;
    df_rng_seed(&rng, o->model.seed);
    const float *logits = NULL;
    for (int i = 0; st == DF_OK && i < n_start; i++) st = cg_cache_push(&cache, ids[i], &logits);
    if (st == DF_OK) {
        fprintf(stderr, "char-gpt: sampling from %s (keep %d, the cache refilled by %s)\n", path, cache.keep,
                cache.replay ? "replaying the kept characters" : "a prefill");
        fputs(o->start, stdout);
    }
    for (int n = 0; st == DF_OK && n < o->length; n++) {
        int32_t id = draw(logits, V, o->temperature, o->top_k, &rng);
        st = put_char(vocab, id);
        if (st == DF_OK && n + 1 < o->length) st = cg_cache_push(&cache, id, &logits);
    }
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) st = df_error(DF_ERR_IO, "cannot write the sample to standard output");
    cg_cache_free(&cache);
    free(ids), free(vocab);
    cg_gpt_free(&gpt);
    return st;
}

/* ------------------------------------------------------------ export */

static df_status export_file(const opts *o, const char *out)
{
    cg_gpt gpt;
    cr_vocab *vocab = calloc(1, sizeof *vocab);
    char path[4096];
    if (!vocab) return df_error(DF_ERR_NOMEM, "out of memory");
    df_status st = load_for_sampling(o, &gpt, vocab, path, sizeof path);
    if (st == DF_OK) {
        char chars[CR_MAX_VOCAB * 4];
        size_t n_chars = cr_vocab_to_utf8(vocab, chars, sizeof chars);
        st = cg_export_sampler(&gpt, chars, n_chars, o->keep < 0 ? gpt.cfg.block / 2 : o->keep, out);
        cg_gpt_free(&gpt);
    }
    if (st == DF_OK) printf("wrote %s from %s: the KV-cache sampling step (dagflow-run %s --sample)\n", out, path, out);
    free(vocab);
    return st;
}

/* ------------------------------------------------------------- bench */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Time per op over the profiled runs of g (what: "training step"), on stderr. */
static void print_profile(const df_graph *g, const char *what)
{
    df_op_profile p[64];
    int64_t runs = 0;
    int n = g ? df_graph_profile(g, p, 64, &runs) : 0, shown = n < 64 ? n : 64;
    double total = 0;
    for (int i = 0; i < shown; i++) total += p[i].seconds;
    fprintf(stderr, "per %s, over %lld runs (op, nodes, ms, share):\n", what, (long long)runs);
    for (int i = 0; i < shown && runs > 0; i++)
        fprintf(stderr, "  %-22s %4d %8.3f %5.1f%%\n", p[i].op, p[i].nodes, p[i].seconds * 1e3 / (double)runs,
                100 * p[i].seconds / total);
}

/* o->warmup untimed steps, then o->iters timed ones (forward, backward,
 * clipping and the AdamW update: the step df_fit runs); *times (ms) each. */
static df_status time_training(run *r, const opts *o, double *times, double *loss)
{
    batches tr = {0};
    int64_t n_train = (int64_t)(0.9 * (double)r->text.n);
    df_status st = batches_init(&tr, r->text.ids, n_train, o->batch, o->model.block, o->warmup + o->iters,
                                o->model.seed, false);
    df_function *step = st == DF_OK ? df_function_new("train_step", build_train_step, r) : NULL;
    if (st == DF_OK && !step) st = df_error(DF_ERR_NOMEM, "out of memory");
    for (int i = 0; st == DF_OK && i < o->warmup + o->iters; i++) {
        df_tensor in[3], out;
        bool end;
        if ((st = next_batch(&tr, in, &end)) != DF_OK) break;
        double t0 = now_ms();
        if ((st = df_function_call(step, in, 3, &out, 1)) != DF_OK) break;
        if (i >= o->warmup) times[i - o->warmup] = now_ms() - t0;
        *loss = *(const float *)out.data;
        if (o->profile && i + 1 == o->warmup) df_graph_set_profiling(df_function_last_graph(step), true);
    }
    if (st == DF_OK && o->profile) print_profile(df_function_last_graph(step), "training step");
    df_function_free(step);
    batches_free(&tr);
    return st;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Profiles f's graph from its second run on (the first traces it); *on once done. */
static void profile_after_trace(df_function *f, bool *on)
{
    df_graph *g = df_function_last_graph(f);
    if (!*on && g) *on = df_graph_set_profiling(g, true) == DF_OK;
}

/* Mean ms per char over o->length sampled chars from "\n" (the anchor's
 * measure), through the KV cache as char-gpt sample; *cpu_per_char: the
 * process's CPU time per char (all threads: what the machine's load does
 * not inflate). With o->profile, time per op of the steps and rebuilds. */
static df_status time_sampling(run *r, const opts *o, double *ms_per_char, double *cpu_per_char)
{
    cg_cache c;
    df_status st = cg_cache_init(&c, &r->gpt, o->keep < 0 ? o->model.block / 2 : o->keep);
    int32_t id = 0;
    if (st == DF_OK && cr_vocab_encode(&r->text.vocab, "\n", &id, 1, &(int){0}) != DF_OK) id = 0;
    df_rng rng;
    df_rng_seed(&rng, o->model.seed);
    const float *logits;
    bool step_profiled = false, prefill_profiled = false;
    double t0 = now_ms(), c0 = cpu_ms();
    for (int n = 0; st == DF_OK && n < o->length; n++) {
        if ((st = cg_cache_push(&c, id, &logits)) == DF_OK) id = draw(logits, r->text.vocab.size, o->temperature, o->top_k, &rng);
        if (st == DF_OK && o->profile) profile_after_trace(c.step, &step_profiled), profile_after_trace(c.prefill, &prefill_profiled);
    }
    *ms_per_char = (now_ms() - t0) / (o->length > 0 ? o->length : 1);
    *cpu_per_char = (cpu_ms() - c0) / (o->length > 0 ? o->length : 1);
    if (st == DF_OK && o->profile) {
        print_profile(df_function_last_graph(c.step), "sampling step");
        print_profile(df_function_last_graph(c.prefill), "cache rebuild (prefill)");
    }
    if (c.step) cg_cache_free(&c);
    return st;
}

static df_status bench(const opts *o)
{
    run r;
    df_status st = open_run(&r, o, o->batch);
    double *times = calloc((size_t)o->iters, sizeof *times), loss = 0, ms_char = 0, cpu_char = 0;
    if (st == DF_OK && !times) st = df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK && !(r.opt = df_adamw_new(o->lr, 0.9f, 0.99f, 1e-8f, o->weight_decay))) st = DF_ERR_ARG;
    if (st == DF_OK) st = df_optimizer_set_global_clipnorm(r.opt, 1.0f);
    if (st == DF_OK) st = seed_dropout(&r);
    if (st == DF_OK) st = time_training(&r, o, times, &loss);
    double mean = 0;
    for (int i = 0; i < o->iters; i++) mean += times[i] / o->iters;
    if (st == DF_OK) st = time_sampling(&r, o, &ms_char, &cpu_char);
    if (st == DF_OK) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double ms = median(times, o->iters);
        printf("{\"engine\": \"dagflow\", \"threads\": %d, \"params\": %lld, \"n_layer\": %d, \"n_head\": %d, "
               "\"n_embd\": %d, \"block\": %d, \"batch\": %d, \"iters\": %d, \"ms_per_iter\": %.2f, "
               "\"ms_per_iter_mean\": %.2f, \"tokens_per_s\": %.0f, \"train_loss\": %.4f, \"ms_per_char\": %.3f, "
               "\"cpu_ms_per_char\": %.3f, \"keep\": %d, \"peak_rss_mb\": %.1f}\n",
               df_num_threads(), (long long)df_model_param_count(r.gpt.model), o->model.n_layer, o->model.n_head,
               o->model.n_embd, o->model.block, o->batch, o->iters, ms, mean,
               (double)o->batch * o->model.block * 1000.0 / ms, loss, ms_char, cpu_char,
               o->keep < 0 ? o->model.block / 2 : o->keep, ru.ru_maxrss / 1024.0);
    }
    free(times);
    close_run(&r);
    return st;
}

/* ------------------------------------------------------------- grads */

static df_status build_grads(df_graph *g, df_node **in, void *user)
{
    run *r = user;
    df_tape *tape = df_tape_begin(g);
    df_node *loss = loss_of(r, g, in, false);
    df_tape_end(tape);
    df_node *grads[MAX_WEIGHTS];
    df_graph_output(g, loss);
    if (df_tape_gradient(tape, loss, r->n_weights, r->weights, grads) == DF_OK)
        for (int i = 0; i < r->n_weights; i++) df_graph_output(g, grads[i]);
    return df_graph_status(g);
}

/* DIR/NAME.bin: the raw little-endian values; one manifest line "NAME dtype dims...". */
static df_status dump(const char *dir, FILE *manifest, const char *name, const df_tensor *t)
{
    char path[4096], file[256];
    snprintf(file, sizeof file, "%s", name);
    for (char *c = file; *c; c++)
        if (*c == '/') *c = '.';
    snprintf(path, sizeof path, "%s/%s.bin", dir, file);
    FILE *f = fopen(path, "wb");
    if (!f) return df_error(DF_ERR_IO, "cannot create %s", path);
    size_t n = (size_t)df_tensor_numel(t), wrote = fwrite(t->data, df_dtype_size(t->dtype), n, f);
    if (fclose(f) != 0 || wrote != n) return df_error(DF_ERR_IO, "cannot write %s", path);
    fprintf(manifest, "%s %s %s", name, file, df_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++) fprintf(manifest, " %lld", (long long)t->shape[d]);
    fputc('\n', manifest);
    return DF_OK;
}

/* Noise on nanoGPT's initial weights: nonzero biases, LayerNorm parameters
 * away from 1 and 0, and matrices large enough that attention is far from
 * uniform and GELU's inputs reach where its forms differ, so a reference
 * that dropped or changed any of them would differ. */
static void perturb_weights(run *r)
{
    df_rng rng;
    df_rng_seed(&rng, r->o.model.seed + 17);
    for (int i = 0; i < r->n_weights; i++) {
        df_tensor t = df_variable_tensor(r->weights[i]);
        float std = t.ndim == 1 ? 0.2f : 0.3f;
        for (int64_t j = 0; j < df_tensor_numel(&t); j++) ((float *)t.data)[j] += std * df_rng_normal(&rng);
    }
}

static df_status grads(const opts *o)
{
    run r;
    batches tr = {0};
    df_status st = open_run(&r, o, o->batch);
    int64_t n_train = (int64_t)(0.9 * (double)r.text.n);
    if (st == DF_OK) perturb_weights(&r);
    if (st == DF_OK) st = batches_init(&tr, r.text.ids, n_train, o->batch, o->model.block, 1, o->model.seed, false);
    df_tensor in[3], out[1 + MAX_WEIGHTS];
    bool end;
    if (st == DF_OK) st = next_batch(&tr, in, &end);
    df_function *f = st == DF_OK ? df_function_new("grads", build_grads, &r) : NULL;
    if (st == DF_OK && !f) st = df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK) st = df_function_call(f, in, 3, out, 1 + r.n_weights);
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.txt", o->out_dir);
    FILE *manifest = st == DF_OK ? fopen(path, "w") : NULL;
    if (st == DF_OK && !manifest) st = df_error(DF_ERR_IO, "cannot create %s (does --out exist?)", path);
    if (st == DF_OK) st = dump(o->out_dir, manifest, "x", &in[0]);
    if (st == DF_OK) st = dump(o->out_dir, manifest, "y", &in[1]);
    if (st == DF_OK) st = dump(o->out_dir, manifest, "loss", &out[0]);
    for (int i = 0; i < r.n_weights && st == DF_OK; i++) {
        df_tensor w = df_variable_tensor(r.weights[i]);
        char name[256];
        snprintf(name, sizeof name, "grad:%s", df_variable_name(r.weights[i]));
        st = dump(o->out_dir, manifest, df_variable_name(r.weights[i]), &w);
        if (st == DF_OK) st = dump(o->out_dir, manifest, name, &out[1 + i]);
    }
    if (manifest && fclose(manifest) != 0 && st == DF_OK) st = df_error(DF_ERR_IO, "cannot write %s", path);
    df_function_free(f);
    batches_free(&tr);
    close_run(&r);
    return st;
}

/* -------------------------------------------------------------- main */

static const char *const usage_text =
    "char-gpt train|sample|export|summary|bench|grads [flags]; char-gpt COMMAND --help lists each command's flags";

static int report(const char *command, df_status st)
{
    if (st == DF_OK) return 0;
    fprintf(stderr, "char-gpt %s: %s\n", command, df_last_error());
    return 1;
}

static int parse(const char *command, const char *usage, const cli_flag *flags, int n, int argc, char **argv,
                 const opts *o)
{
    int rc = cli_parse(command, usage, flags, n, argc, argv, stdout, stderr);
    if (rc == 0 && o->threads > 0) df_set_num_threads(o->threads);
    if (rc == 0 && df_set_precision(o->precision ? DF_PRECISION_BF16 : DF_PRECISION_FP32) != DF_OK) {
        fprintf(stderr, "%s: %s\n", command, df_last_error());
        rc = 2;
    }
    return rc;
}

static int cmd_train(int argc, char **argv)
{
    opts o = defaults();
    cli_flag flags[] = {
        MODEL_FLAGS(o),
        {"iters", CLI_INT, &o.iters, "optimizer steps", 1, 1e9, NULL},
        {"eval-interval", CLI_INT, &o.eval_interval, "steps per epoch: validation and a checkpoint after each", 1, 1e9, NULL},
        {"eval-iters", CLI_INT, &o.eval_iters, "validation batches per estimate (the same ones each time)", 1, 1e6, NULL},
        {"lr", CLI_FLOAT, &o.lr, "peak learning rate (AdamW, betas 0.9/0.99)", 1e-9, 10, NULL},
        {"min-lr", CLI_FLOAT, &o.min_lr, "the cosine decay's floor (below --lr)", 0, 10, NULL},
        {"warmup-iters", CLI_INT, &o.warmup_iters, "linear warm-up steps", 0, 1e9, NULL},
        {"dropout", CLI_FLOAT, &o.model.dropout,
         "dropout rate after the embeddings and each residual projection, training only (not on the attention "
         "matrix, which the fused attention never forms)", 0, 0.999, NULL},
        {"weight-decay", CLI_FLOAT, &o.weight_decay, "AdamW decay of matrices and embeddings", 0, 10, NULL},
        {"seed", CLI_U64, &o.model.seed, "initialisation and batch order", 0, 0, NULL},
        {"checkpoint-dir", CLI_STRING, &o.checkpoint_dir, "ckpt_N and losses.csv go here", 0, 0, NULL},
        {"resume", CLI_BOOL, &o.resume, "continue from the latest checkpoint in --checkpoint-dir (none yet: start)", 0, 0,
         NULL},
        {"overwrite", CLI_BOOL, &o.overwrite, "replace another run's checkpoints in --checkpoint-dir", 0, 0, NULL},
    };
    int rc = parse("char-gpt train", "char-gpt train [flags]", flags, N(flags), argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    if (o.iters % o.eval_interval) {
        fprintf(stderr, "char-gpt train: --iters (%d) must be a multiple of --eval-interval (%d)\n", o.iters,
                o.eval_interval);
        return 2;
    }
    return report("train", train(&o));
}

static int cmd_sample(int argc, char **argv)
{
    opts o = defaults();
    cli_flag flags[] = {
        {"checkpoint-dir", CLI_STRING, &o.checkpoint_dir, "sample from the latest ckpt_N here", 0, 0, NULL},
        {"length", CLI_INT, &o.length, "characters to generate", 0, 1e8, NULL},
        {"start", CLI_STRING, &o.start, "text to start from", 0, 0, NULL},
        {"temperature", CLI_FLOAT, &o.temperature, "softmax temperature (0: always the likeliest)", 0, 100, NULL},
        {"top-k", CLI_INT, &o.top_k, "draw from the k likeliest characters only (0: all)", 0, CR_MAX_VOCAB, NULL},
        {"keep", CLI_INT, &o.keep,
         "when the context fills the block, the KV cache restarts from the last KEEP characters "
         "(-1: block/2; block-1: nanoGPT's crop at every step, block steps per character)", -1, 4095, NULL},
        {"rebuild", CLI_CHOICE, &o.rebuild,
         "how the cache refills from the kept characters: prefill (one forward over them) or replay (a step "
         "each, as dagflow-run drives an exported file: the same text)", 0, 0, rebuild_names},
        {"seed", CLI_U64, &o.model.seed, "sampling seed", 0, 0, NULL},
        {"threads", CLI_INT, &o.threads, "kernel threads (0: OpenMP's default)", 0, 1024, NULL},
    };
    int rc = parse("char-gpt sample", "char-gpt sample [flags]", flags, N(flags), argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    return report("sample", sample(&o));
}

static int cmd_export(int argc, char **argv)
{
    opts o = defaults();
    const char *out = NULL, *usage = "char-gpt export [--checkpoint-dir D] [--keep K] OUT.dfg";
    cli_flag flags[] = {
        {"checkpoint-dir", CLI_STRING, &o.checkpoint_dir, "export the latest ckpt_N here", 0, 0, NULL},
        {"keep", CLI_INT, &o.keep, "as char-gpt sample: the characters replayed when the context is full (-1: block/2)", -1, 4095,
         NULL},
        {"out", CLI_STRING, &out, "the saved graph to write (or give it as the last argument)", 0, 0, NULL},
    };
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    if (!rest) return 1;
    int n = 0;
    for (int i = 0; i < argc; i++) {         /* every flag takes a value: the one other word is OUT */
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            rest[n++] = argv[i];
            if (i + 1 < argc && !strchr(argv[i], '=') && strcmp(argv[i], "--help") != 0) rest[n++] = argv[++i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "char-gpt export: unexpected argument '%s' (usage: %s)\n", argv[i], usage);
            free(rest);
            return 2;
        }
    }
    int rc = parse("char-gpt export", usage, flags, N(flags), n, rest, &o);
    free(rest);
    if (rc) return rc == 1 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "char-gpt export: the output file is required (usage: %s)\n", usage);
        return 2;
    }
    return report("export", export_file(&o, out));
}

static int cmd_summary(int argc, char **argv)
{
    opts o = defaults();
    cli_flag flags[] = {MODEL_FLAGS(o)};
    int rc = parse("char-gpt summary", "char-gpt summary [flags]", flags, N(flags), argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    run r;
    df_status st = open_run(&r, &o, o.batch);
    if (st == DF_OK) df_model_summary(r.gpt.model, stdout);
    close_run(&r);
    return report("summary", st);
}

static int cmd_bench(int argc, char **argv)
{
    opts o = defaults();
    o.iters = 20, o.warmup = 3;
    cli_flag flags[] = {
        MODEL_FLAGS(o),
        {"iters", CLI_INT, &o.iters, "timed training steps (their median is ms_per_iter)", 1, 1e6, NULL},
        {"warmup", CLI_INT, &o.warmup, "untimed steps first (tracing, first touches)", 0, 1e6, NULL},
        {"dropout", CLI_FLOAT, &o.model.dropout, "as char-gpt train", 0, 0.999, NULL},
        {"length", CLI_INT, &o.length, "characters sampled at batch 1 for ms_per_char", 0, 1e8, NULL},
        {"keep", CLI_INT, &o.keep, "as char-gpt sample", -1, 4095, NULL},
        {"profile", CLI_BOOL, &o.profile, "time per op of the timed training steps, the sampling steps and the cache rebuilds, on stderr", 0, 0, NULL},
        {"seed", CLI_U64, &o.model.seed, "initialisation, batches and sampling", 0, 0, NULL},
    };
    int rc = parse("char-gpt bench", "char-gpt bench [flags]", flags, N(flags), argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    return report("bench", bench(&o));
}

static int cmd_grads(int argc, char **argv)
{
    opts o = defaults();
    o.out_dir = ".";
    cli_flag flags[] = {
        MODEL_FLAGS(o),
        {"seed", CLI_U64, &o.model.seed, "initialisation and the batch", 0, 0, NULL},
        {"out", CLI_STRING, &o.out_dir, "an existing directory for manifest.txt and the .bin files", 0, 0, NULL},
    };
    int rc = parse("char-gpt grads", "char-gpt grads [flags]: the initial weights plus noise, one training batch, its loss and every gradient, as files",
                   flags, N(flags), argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    return report("grads", grads(&o));
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("%s\n", usage_text);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "sample")) return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(argv[1], "export")) return cmd_export(argc - 2, argv + 2);
    if (!strcmp(argv[1], "summary")) return cmd_summary(argc - 2, argv + 2);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(argv[1], "grads")) return cmd_grads(argc - 2, argv + 2);
    fprintf(stderr, "char-gpt: unknown command '%s'; %s\n", argv[1], usage_text);
    return 2;
}
