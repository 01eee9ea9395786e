/* runstate.c — char-rnn's part of a df_fit checkpoint: the "config" record
 * (df_fit writes and checks it), blobs "vocab", "rng" and "batcher" (df_fit
 * adds "fit/progress", the weights, the optimizer's slots and the recurrent
 * state). */
#include <math.h>
#include <stddef.h>
#include "runstate.h"

static const char *const batchings[] = {"shuffle", "streams", NULL};

/* Which settings take part in a run, so that a resume compares only those:
 * a constant learning rate is the optimizer's (--learning-rate replaces it on
 * resume: df_fit's learning_rate_flag), a schedule is computed from it. */
static bool scheduled(const void *c) { return cr_schedule_active(&((const cr_config *)c)->schedule); }
static bool decays(const void *c) { return ((const cr_config *)c)->schedule.kind != CR_LR_CONSTANT; }
static bool steps_down(const void *c) { return ((const cr_config *)c)->schedule.kind == CR_LR_STEP; }
static bool shuffled(const void *c) { return ((const cr_config *)c)->batching == CR_SHUFFLE; }

#define F(key, type, member, ...) {key, DF_CONFIG_##type, offsetof(cr_config, member), __VA_ARGS__}
/* The checkpoint's "config" record, in its order (the first eight were there from the start),
 * and the ranges cr_config_check enforces. */
static const df_config_field fields[] = {
    F("vocab", INT, vocab, .required = true), F("embed", INT, embed, .required = true),
    F("hidden", INT, hidden, .required = true), F("seq", INT, seq, .required = true),
    F("batch", INT, batch, .required = true),
    F("batching", ENUM, batching, .flag = "batching", .names = batchings, .required = true),
    F("learning_rate", FLOAT, learning_rate, .flag = "learning-rate", .required = true, .applies = scheduled,
      .max = INFINITY),
    F("seed", U64, seed, .flag = "seed", .required = true),
    F("cell", ENUM, cell, .flag = "cell", .names = cr_cell_names),
    F("layers", INT, layers, .flag = "layers", .max = CR_MAX_LAYERS),
    F("dropout", FLOAT, dropout, .flag = "dropout", .max = 1, .below_max = true),
    F("reset_after", BOOL, gru_reset_before, .flag = "reset-after", .negate = true),
    F("optimizer", ENUM, optimizer, .flag = "optimizer", .names = cr_optimizer_names),
    F("momentum", FLOAT, momentum, .flag = "momentum", .max = 1, .below_max = true),
    F("clipnorm", FLOAT, clipnorm, .flag = "clip", .max = INFINITY),
    F("lr_schedule", ENUM, schedule.kind, .flag = "lr-schedule", .names = cr_schedule_names),
    F("warmup_steps", INT, schedule.warmup_steps, .flag = "warmup-steps"),
    F("decay_steps", INT, schedule.decay_steps, .flag = "decay-steps", .applies = decays),
    F("decay_rate", FLOAT, schedule.decay_rate, .flag = "decay-rate", .applies = steps_down),
    F("val", FLOAT, val_fraction, .flag = "val"),
    F("shuffle_buffer", INT, shuffle_buffer, .flag = "shuffle-buffer", .applies = shuffled),
    F("steps_per_epoch", INT, steps_per_epoch, .flag = "steps-per-epoch"),
    F("data_hash", U64, data_hash, .flag = "data", .about = "the corpus's XXH64")};
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

df_status cr_config_check(const cr_config *cfg)
{
    if (cfg->vocab < 1 || cfg->embed < 1 || cfg->hidden < 1)
        return df_error(DF_ERR_ARG, "vocab, embed and hidden sizes must be positive");
    df_status st = df_config_check(fields, N_FIELDS, cfg);
    if (st == DF_OK) st = cr_schedule_check(&cfg->schedule);   /* naming the flags, as the table's checks */
    if (st == DF_OK && cfg->momentum > 0 && cfg->optimizer != CR_OPT_SGD)
        st = df_error(DF_ERR_ARG, "--momentum %g applies to --optimizer sgd only, not %s", cfg->momentum,
                      cr_optimizer_names[cfg->optimizer]);
    return st;
}

static df_status read_vocab(const df_checkpoint *ck, cr_vocab *vocab)
{
    const void *data;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "vocab", &data, &len);
    return st == DF_OK ? cr_vocab_from_utf8(data, len, vocab) : st;
}

/* Settings absent from older files are the tutorial's (all zero). */
df_status cr_peek_run(const char *path, cr_config *rc, cr_vocab *vocab)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    st = cr_peek_checkpoint(ck, rc, vocab);
    df_checkpoint_free(ck);
    return df_error_prefix(st, path);
}

df_status cr_peek_checkpoint(const df_checkpoint *ck, cr_config *rc, cr_vocab *vocab)
{
    *rc = (cr_config){0};
    df_status st = df_config_get(ck, "config", fields, N_FIELDS, rc, &(int){0});
    if (st == DF_OK && rc->layers == 0) rc->layers = 1;
    if (st == DF_OK && cr_config_check(rc) != DF_OK)
        st = df_error_prefix(DF_ERR_FORMAT, "checkpoint config is invalid");
    if (st == DF_OK) st = read_vocab(ck, vocab);
    if (st == DF_OK && vocab->size != rc->vocab)
        st = df_error(DF_ERR_FORMAT, "vocabulary has %d chars but config says %d", vocab->size, rc->vocab);
    return st;
}

/* The checkpoint's vocabulary must be this run's (df_fit checks the config). */
static df_status check_vocab(const df_checkpoint *ck, const cr_vocab *now)
{
    cr_vocab saved;
    df_status st = read_vocab(ck, &saved);
    if (st == DF_OK && saved.size != now->size)
        return df_error(DF_ERR_STATE, "its vocabulary has %d chars, the corpus has %d", saved.size, now->size);
    for (int i = 0; st == DF_OK && i < saved.size; i++)
        if (saved.chars[i] != now->chars[i])
            return df_error(DF_ERR_STATE, "its vocabulary differs from the corpus's at index %d (U+%04X vs U+%04X)",
                            i, saved.chars[i], now->chars[i]);
    return st;
}

static df_status save_extra(void *user, df_checkpoint *ck)
{
    const cr_run_parts *p = user;
    char vocab[CR_MAX_VOCAB * 4];
    size_t len = cr_vocab_to_utf8(p->vocab, vocab, sizeof vocab);
    df_status st = df_checkpoint_put_blob(ck, "vocab", vocab, len);
    /* the batcher's RNG, then its place: step, the shuffle buffer's fill, next chunk and chunks */
    return st == DF_OK ? df_shuffle_buffer_put(&p->b->order, ck, "rng", "batcher", &p->b->step, 1) : st;
}

static df_status restore_extra(void *user, const df_checkpoint *ck)
{
    const cr_run_parts *p = user;
    df_status st = check_vocab(ck, p->vocab);
    if (st == DF_OK)
        st = df_shuffle_buffer_restore(&p->b->order, ck, "rng", "batcher", &p->b->step, &p->b->steps_per_epoch, 1);
    return st;
}

df_status cr_run_options(cr_run_parts *p, cr_model *m, df_fit_options *o)
{
    p->settings = *p->rc;    /* saved with layers 0 as 1 */
    p->settings.layers = cr_config_layers(p->rc);
    p->record = (df_config_record){"config", fields, N_FIELDS, CR_CHECKPOINT_FORMAT, &p->settings, sizeof p->settings,
                                   "char-rnn", "retrain, or resume it with the char-rnn of dagflow 0.1.0 up to commit "
                                   "8070f2b"};
    o->config = &p->record;
    o->model = m->net;             /* its weights, and the recurrent state of the training batch */
    o->model_batch = p->b->rows;
    o->optimizer = m->opt;
    o->save_extra = save_extra;
    o->restore_extra = restore_extra;
    o->user = p;
    return DF_OK;
}

/* With b (a resume) everything df_fit restores, else the weights alone
 * (sampling needs no optimizer slots, twice their size with Adam). */
df_status cr_load_run(const char *path, const cr_config *rc, const cr_vocab *vocab, cr_model *m,
                      cr_batcher *b, cr_progress *p)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    st = cr_load_checkpoint(ck, rc, vocab, m, b, p);
    df_checkpoint_free(ck);
    return df_error_prefix(st, path);
}

df_status cr_load_checkpoint(const df_checkpoint *ck, const cr_config *rc, const cr_vocab *vocab, cr_model *m,
                             cr_batcher *b, cr_progress *p)
{
    df_status st = DF_OK;
    cr_run_parts parts = {.rc = rc, .vocab = vocab, .b = b};
    df_fit_options o = {0};
    df_fit_history h;
    if (b && (st = cr_run_options(&parts, m, &o)) == DF_OK) st = df_fit_restore_checkpoint(&o, ck, &h);
    if (b && st == DF_OK && h.epoch_step == 0) cr_model_reset_states(m);   /* as df_fit does at an epoch's start */
    if (b && st == DF_OK && p) *p = (cr_progress){h.epochs_done, h.steps, h.epoch_step};
    if (!b && (st = check_vocab(ck, vocab)) == DF_OK) st = df_model_restore(m->net, NULL, ck);
    return st;
}
