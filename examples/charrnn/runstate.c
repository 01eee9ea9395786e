/* runstate.c — char-rnn's part of a df_fit checkpoint: blobs "config",
 * "vocab", "rng" and "batcher" (df_fit adds "fit/progress", the weights,
 * the optimizer's slots and the recurrent state). */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "runstate.h"

static const char *batching_name(cr_batching b) { return b == CR_STREAMS ? "streams" : "shuffle"; }

static int format_config(const cr_run_config *rc, char *buf, size_t cap)
{
    const cr_config *m = &rc->model;
    const cr_schedule *s = &rc->schedule;
    return snprintf(buf, cap, "format=%d\nvocab=%d\nembed=%d\nhidden=%d\nseq=%d\nbatch=%d\nbatching=%s\nlearning_rate=%.9g\n"
                    "seed=%" PRIu64 "\ncell=%s\nlayers=%d\ndropout=%.9g\nreset_after=%d\noptimizer=%s\nmomentum=%.9g\n"
                    "clipnorm=%.9g\nlr_schedule=%s\nwarmup_steps=%d\ndecay_steps=%d\ndecay_rate=%.9g\nval=%.9g\n"
                    "shuffle_buffer=%d\nsteps_per_epoch=%d\n",
                    CR_CHECKPOINT_FORMAT, m->vocab, m->embed, m->hidden, rc->seq, rc->batch, batching_name(rc->batching),
                    m->learning_rate, m->seed, cr_cell_names[m->cell], cr_config_layers(m), m->dropout,
                    !m->gru_reset_before, cr_optimizer_names[m->optimizer], m->momentum, m->clipnorm,
                    cr_schedule_names[s->kind], s->warmup_steps, s->decay_steps, s->decay_rate, rc->val_fraction,
                    rc->shuffle_buffer, rc->steps_per_epoch);
}

/* Index of v in a NULL-terminated name list, or -1. */
static int name_index(const char *const *names, const char *v)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], v)) return i;
    return -1;
}

/* Strict numbers for the settings added with the cell and optimizer options
 * (a corrupt value is a format error, not a silent 0). */
static bool parse_int(const char *v, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < INT_MIN || x > INT_MAX) return false;
    *out = (int)x;
    return true;
}

static bool parse_float(const char *v, float *out)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (!*v || *end || errno || !isfinite(x)) return false;
    *out = x;
    return true;
}

/* Parses "key=value" lines written by format_config; *format is 1 for
 * files without the key. */
static df_status parse_config(const char *text, size_t len, cr_run_config *rc, int *format)
{
    char buf[1024];
    if (len >= sizeof buf) return df_error(DF_ERR_FORMAT, "checkpoint config is too long");
    memcpy(buf, text, len);
    buf[len] = 0;
    memset(rc, 0, sizeof *rc);
    *format = 1;
    int found = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq) return df_error(DF_ERR_FORMAT, "checkpoint config line \"%s\" has no '='", line);
        *eq = 0;
        const char *k = line, *v = eq + 1;
        found++;
        if (!strcmp(k, "vocab")) rc->model.vocab = atoi(v);
        else if (!strcmp(k, "embed")) rc->model.embed = atoi(v);
        else if (!strcmp(k, "hidden")) rc->model.hidden = atoi(v);
        else if (!strcmp(k, "seq")) rc->seq = atoi(v);
        else if (!strcmp(k, "batch")) rc->batch = atoi(v);
        else if (!strcmp(k, "batching")) rc->batching = strcmp(v, "streams") ? CR_SHUFFLE : CR_STREAMS;
        else if (!strcmp(k, "learning_rate")) rc->model.learning_rate = strtof(v, NULL);
        else if (!strcmp(k, "seed")) rc->model.seed = strtoull(v, NULL, 10);
        else {
            found--;
            int i = 0, reset_after = 1;
            bool ok = true;
            if (!strcmp(k, "cell")) ok = (i = name_index(cr_cell_names, v)) >= 0, rc->model.cell = (cr_cell)i;
            else if (!strcmp(k, "optimizer")) ok = (i = name_index(cr_optimizer_names, v)) >= 0, rc->model.optimizer = (cr_opt_kind)i;
            else if (!strcmp(k, "lr_schedule")) ok = (i = name_index(cr_schedule_names, v)) >= 0, rc->schedule.kind = (cr_lr_kind)i;
            else if (!strcmp(k, "layers")) ok = parse_int(v, &rc->model.layers);
            else if (!strcmp(k, "reset_after")) ok = parse_int(v, &reset_after) && (reset_after == 0 || reset_after == 1),
                                                rc->model.gru_reset_before = !reset_after;
            else if (!strcmp(k, "dropout")) ok = parse_float(v, &rc->model.dropout);
            else if (!strcmp(k, "momentum")) ok = parse_float(v, &rc->model.momentum);
            else if (!strcmp(k, "clipnorm")) ok = parse_float(v, &rc->model.clipnorm);
            else if (!strcmp(k, "warmup_steps")) ok = parse_int(v, &rc->schedule.warmup_steps);
            else if (!strcmp(k, "decay_steps")) ok = parse_int(v, &rc->schedule.decay_steps);
            else if (!strcmp(k, "decay_rate")) ok = parse_float(v, &rc->schedule.decay_rate);
            else if (!strcmp(k, "format")) ok = parse_int(v, format);
            else if (!strcmp(k, "val")) ok = parse_float(v, &rc->val_fraction);
            else if (!strcmp(k, "shuffle_buffer")) ok = parse_int(v, &rc->shuffle_buffer);
            else if (!strcmp(k, "steps_per_epoch")) ok = parse_int(v, &rc->steps_per_epoch);
            if (!ok) return df_error(DF_ERR_FORMAT, "checkpoint config has a bad %s: \"%.40s\"", k, v);
        }
    }
    if (found < 8 || rc->model.vocab < 1 || rc->model.embed < 1 || rc->model.hidden < 1)
        return df_error(DF_ERR_FORMAT, "checkpoint config is incomplete");
    if (rc->model.layers == 0) rc->model.layers = 1;
    if (cr_config_check(&rc->model) != DF_OK || cr_schedule_check(&rc->schedule) != DF_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        return df_error(DF_ERR_FORMAT, "checkpoint config is invalid: %s", msg);
    }
    return DF_OK;
}

static df_status read_meta(const df_checkpoint *ck, const char *path, cr_run_config *rc, cr_vocab *vocab, int *format)
{
    const void *data;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "config", &data, &len);
    if (st == DF_OK) st = parse_config(data, len, rc, format);
    if (st == DF_OK) st = df_checkpoint_get_blob(ck, "vocab", &data, &len);
    if (st == DF_OK) st = cr_vocab_from_utf8(data, len, vocab);
    if (st == DF_OK && vocab->size != rc->model.vocab)
        st = df_error(DF_ERR_FORMAT, "vocabulary has %d chars but config says %d", vocab->size, rc->model.vocab);
    if (st != DF_OK && path) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        return df_error(st, "%s: %s", path, msg);
    }
    return st;
}

df_status cr_peek_run(const char *path, cr_run_config *rc, cr_vocab *vocab)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    int format;
    st = read_meta(ck, path, rc, vocab, &format);
    df_checkpoint_free(ck);
    return st;
}

/* Names the first setting that differs between the checkpoint and this run. */
static df_status compare_configs(const cr_run_config *saved, const cr_run_config *now)
{
    const char *path = "it";
    struct { const char *name; long a, b; } ints[] = {
        {"vocab", saved->model.vocab, now->model.vocab}, {"embed", saved->model.embed, now->model.embed},
        {"hidden", saved->model.hidden, now->model.hidden}, {"seq", saved->seq, now->seq},
        {"batch", saved->batch, now->batch}, {"batching", saved->batching, now->batching}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].a != ints[i].b) {
            if (!strcmp(ints[i].name, "batching"))
                return df_error(DF_ERR_STATE, "%s was trained with --batching %s, this run has %s", path,
                                batching_name(saved->batching), batching_name(now->batching));
            return df_error(DF_ERR_STATE, "%s has %s=%ld, this run has %s=%ld", path, ints[i].name, ints[i].a,
                            ints[i].name, ints[i].b);
        }
    /* the model and training settings, named by their flags */
    const cr_config *a = &saved->model, *b = &now->model;
    const cr_schedule *sa = &saved->schedule, *sb = &now->schedule;
    struct { const char *flag, *was, *is; } names[] = {
        {"cell", cr_cell_names[a->cell], cr_cell_names[b->cell]},
        {"reset-after", a->cell == CR_CELL_GRU && a->gru_reset_before ? "false" : "true",
         b->cell == CR_CELL_GRU && b->gru_reset_before ? "false" : "true"},
        {"optimizer", cr_optimizer_names[a->optimizer], cr_optimizer_names[b->optimizer]},
        {"lr-schedule", cr_schedule_names[sa->kind], cr_schedule_names[sb->kind]}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].was, names[i].is))
            return df_error(DF_ERR_STATE, "%s was trained with --%s %s, this run has --%s %s", path, names[i].flag,
                            names[i].was, names[i].flag, names[i].is);
    /* numbers: only those that take part in this run (e.g. --decay-rate only
     * with --lr-schedule step); the learning rate is the checkpoint's with a
     * constant rate, but a schedule is computed from it */
    struct { const char *flag; double was, is; bool used; } nums[] = {
        {"layers", cr_config_layers(a), cr_config_layers(b), true},
        {"dropout", a->dropout, b->dropout, true},
        {"momentum", a->momentum, b->momentum, true},
        {"clip", a->clipnorm, b->clipnorm, true},
        {"warmup-steps", sa->warmup_steps, sb->warmup_steps, true},
        {"decay-steps", sa->decay_steps, sb->decay_steps, sa->kind != CR_LR_CONSTANT},
        {"decay-rate", sa->decay_rate, sb->decay_rate, sa->kind == CR_LR_STEP},
        {"learning-rate", a->learning_rate, b->learning_rate, cr_schedule_active(sa)},
        {"val", saved->val_fraction, now->val_fraction, true},
        {"shuffle-buffer", saved->shuffle_buffer, now->shuffle_buffer, saved->batching == CR_SHUFFLE},
        {"steps-per-epoch", saved->steps_per_epoch, now->steps_per_epoch, true}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (nums[i].used && nums[i].was != nums[i].is)
            return df_error(DF_ERR_STATE, "%s was trained with --%s %g, this run has --%s %g", path, nums[i].flag,
                            nums[i].was, nums[i].flag, nums[i].is);
    if (a->seed != b->seed)
        return df_error(DF_ERR_STATE, "it was trained with --seed %" PRIu64 ", this run has --seed %" PRIu64, a->seed,
                        b->seed);
    return DF_OK;
}

static df_status compare_vocab(const cr_vocab *saved, const cr_vocab *now)
{
    if (saved->size != now->size)
        return df_error(DF_ERR_STATE, "its vocabulary has %d chars, the corpus has %d", saved->size, now->size);
    for (int i = 0; i < saved->size; i++)
        if (saved->chars[i] != now->chars[i])
            return df_error(DF_ERR_STATE, "its vocabulary differs from the corpus's at index %d (U+%04X vs U+%04X)",
                            i, saved->chars[i], now->chars[i]);
    return DF_OK;
}

df_status cr_put_meta(df_checkpoint *ck, const cr_run_config *rc, const cr_vocab *vocab)
{
    char config[1024], vocab_utf8[CR_MAX_VOCAB * 4];
    int clen = format_config(rc, config, sizeof config);
    size_t vlen = cr_vocab_to_utf8(vocab, vocab_utf8, sizeof vocab_utf8);
    df_status st = df_checkpoint_put_blob(ck, "config", config, (size_t)clen);
    return st == DF_OK ? df_checkpoint_put_blob(ck, "vocab", vocab_utf8, vlen) : st;
}

/* The saved config and vocabulary, and which of them this run's are. */
static df_status check_meta(const df_checkpoint *ck, const cr_run_config *rc, const cr_vocab *vocab, bool resuming)
{
    cr_run_config saved;
    cr_vocab *saved_vocab = malloc(sizeof *saved_vocab);
    int format = 0;
    df_status st = saved_vocab ? read_meta(ck, NULL, &saved, saved_vocab, &format) : DF_ERR_NOMEM;
    if (st == DF_OK && resuming && format != CR_CHECKPOINT_FORMAT)
        st = df_error(DF_ERR_FORMAT, "written by %s char-rnn (checkpoint format %d, this one reads %d): retrain, or "
                      "resume it with the char-rnn of dagflow 0.1.0 up to commit 8070f2b", format < CR_CHECKPOINT_FORMAT
                      ? "an older" : "a newer", format, CR_CHECKPOINT_FORMAT);
    if (st == DF_OK && resuming) st = compare_configs(&saved, rc);
    if (st == DF_OK) st = compare_vocab(saved_vocab, vocab);
    free(saved_vocab);
    return st;
}

df_status cr_check_meta(const df_checkpoint *ck, const cr_run_config *rc, const cr_vocab *vocab)
{
    return check_meta(ck, rc, vocab, true);
}

/* The batcher's RNG, and its place in the epoch: step, fill, next chunk,
 * the shuffle buffer. */
df_status cr_put_batcher(df_checkpoint *ck, const cr_batcher *b)
{
    int64_t n = 3 + b->fill;
    int64_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) return df_error(DF_ERR_NOMEM, "out of memory");
    pos[0] = b->step;
    pos[1] = b->fill;
    pos[2] = b->next_chunk;
    for (int64_t i = 0; i < b->fill; i++) pos[3 + i] = b->buffer[i];
    df_status st = df_checkpoint_put_blob(ck, "rng", &b->rng, sizeof b->rng);
    if (st == DF_OK) st = df_checkpoint_put_blob(ck, "batcher", pos, (size_t)n * sizeof *pos);
    free(pos);
    return st;
}

df_status cr_restore_batcher(const df_checkpoint *ck, cr_batcher *b)
{
    const void *data;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "rng", &data, &len);
    if (st == DF_OK && len != sizeof b->rng) return df_error(DF_ERR_FORMAT, "bad RNG record (%zu bytes)", len);
    if (st == DF_OK) memcpy(&b->rng, data, len);
    if (st == DF_OK) st = df_checkpoint_get_blob(ck, "batcher", &data, &len);
    if (st != DF_OK) return st;
    /* Blob data sits at any offset of the file: read it through an aligned copy. */
    if (len < 3 * sizeof(int64_t) || len % sizeof(int64_t)) return df_error(DF_ERR_FORMAT, "bad batcher record");
    int64_t *pos = malloc(len);
    if (!pos) return df_error(DF_ERR_NOMEM, "out of memory reading the batcher record");
    memcpy(pos, data, len);
    bool ok = !(pos[0] < 0 || pos[0] > b->steps_per_epoch || pos[1] < 0 || pos[1] > b->buffer_size ||
                (size_t)(3 + pos[1]) * sizeof *pos != len || pos[2] < 0 || pos[2] > b->n_chunks);
    for (int64_t i = 0; ok && i < pos[1]; i++)
        if (pos[3 + i] < 0 || pos[3 + i] >= b->n_chunks) ok = false;
    if (ok) {
        b->step = pos[0];
        b->fill = pos[1];
        b->next_chunk = pos[2];
        for (int64_t i = 0; i < b->fill; i++) b->buffer[i] = pos[3 + i];
    }
    free(pos);
    return ok ? DF_OK : df_error(DF_ERR_FORMAT, "bad batcher record");
}

/* The variables of a run in df_fit's order: weights, the recurrent state
 * of the training batch (with b), the optimizer's. */
static int run_variables(cr_model *m, const cr_batcher *b, df_variable **vars, int cap)
{
    int n = 0;
    for (int i = 0; i < m->n_params; i++) vars[n++] = m->params[i];
    cr_state *state = b ? cr_model_state(m, b->batch, CR_STATE_MAIN) : NULL;
    for (int k = 0; state && k < m->n_layers; k++) {
        vars[n++] = state->h[k];
        if (state->c[k]) vars[n++] = state->c[k];
    }
    return n + df_optimizer_state(m->opt, vars + n, cap - n);
}

enum { MAX_RUN_VARIABLES = 3 * CR_MAX_PARAMS + 2 * CR_MAX_LAYERS + 2 };

df_status cr_save_run(const char *dir, const cr_run_config *rc, const cr_vocab *vocab, cr_model *m,
                      const cr_batcher *b, const cr_progress *p, char *path_out, size_t path_cap)
{
    if (snprintf(path_out, path_cap, "%s/ckpt_%d", dir, p->epoch_step > 0 ? p->epoch + 1 : p->epoch) >= (int)path_cap)
        return df_error(DF_ERR_ARG, "checkpoint path too long");
    df_checkpoint *ck = df_checkpoint_new();
    if (!ck) return DF_ERR_NOMEM;
    char progress[160];      /* df_fit's record */
    int plen = snprintf(progress, sizeof progress, "epoch=%d\nstep=%" PRId64 "\nepoch_step=%" PRId64 "\nbest=inf\nwait=0\n",
                        p->epoch, p->step, p->epoch_step);
    df_status st = df_optimizer_create_slots(m->opt, m->n_params, m->params);
    if (st == DF_OK) st = cr_put_meta(ck, rc, vocab);
    if (st == DF_OK) st = df_checkpoint_put_blob(ck, "fit/progress", progress, (size_t)plen);
    df_variable *vars[MAX_RUN_VARIABLES];
    int n = run_variables(m, b, vars, MAX_RUN_VARIABLES);
    for (int i = 0; i < n && st == DF_OK; i++) st = df_checkpoint_put_variable(ck, vars[i]);
    if (st == DF_OK) st = cr_put_batcher(ck, b);
    if (st == DF_OK) st = df_checkpoint_write(ck, path_out);
    df_checkpoint_free(ck);
    return st;
}

/* Weights; with b also the optimizer, batcher, progress and, inside an
 * epoch, the recurrent state (at an epoch's start it is reset anyway). */
static df_status restore_all(const df_checkpoint *ck, cr_model *m, cr_batcher *b, cr_progress *p)
{
    cr_progress progress = {0};
    const void *data;
    size_t len;
    df_status st = b ? df_checkpoint_get_blob(ck, "fit/progress", &data, &len) : DF_OK;
    if (st == DF_OK && b) {
        char buf[160] = {0};
        memcpy(buf, data, len < sizeof buf - 1 ? len : sizeof buf - 1);
        if (sscanf(buf, "epoch=%d\nstep=%" SCNd64 "\nepoch_step=%" SCNd64, &progress.epoch, &progress.step,
                   &progress.epoch_step) != 3 || progress.epoch < 0 || progress.step < 0 || progress.epoch_step < 0)
            st = df_error(DF_ERR_FORMAT, "bad progress record");
    }
    /* Optimizer state only when training resumes (b given): sampling needs
     * the weights alone, not twice their size in Adam slots. */
    if (st == DF_OK && b) st = df_optimizer_create_slots(m->opt, m->n_params, m->params);
    df_variable *vars[MAX_RUN_VARIABLES];
    int n = b ? run_variables(m, progress.epoch_step > 0 ? b : NULL, vars, MAX_RUN_VARIABLES) : m->n_params;
    for (int i = 0; i < n && st == DF_OK; i++) st = df_checkpoint_restore_variable(ck, b ? vars[i] : m->params[i]);
    if (st == DF_OK && b) st = cr_restore_batcher(ck, b);
    if (st == DF_OK && p) *p = progress;
    return st;
}

df_status cr_load_run(const char *path, const cr_run_config *rc, const cr_vocab *vocab, cr_model *m,
                      cr_batcher *b, cr_progress *p)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    st = check_meta(ck, rc, vocab, b != NULL);
    if (st == DF_OK) st = restore_all(ck, m, b, p);
    df_checkpoint_free(ck);
    if (st != DF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        st = df_error(st, "%s: %s", path, msg);
    }
    return st;
}
