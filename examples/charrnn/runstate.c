/* runstate.c — a run as a df_checkpoint: blobs "config", "vocab",
 * "progress", "rng"; the variables of the model and of the optimizer. */
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
    return snprintf(buf, cap, "vocab=%d\nembed=%d\nhidden=%d\nseq=%d\nbatch=%d\nbatching=%s\nlearning_rate=%.9g\nseed=%" PRIu64 "\n"
                    "cell=%s\nlayers=%d\ndropout=%.9g\nreset_after=%d\noptimizer=%s\nmomentum=%.9g\nclipnorm=%.9g\n"
                    "lr_schedule=%s\nwarmup_steps=%d\ndecay_steps=%d\ndecay_rate=%.9g\n",
                    m->vocab, m->embed, m->hidden, rc->seq, rc->batch, batching_name(rc->batching), m->learning_rate,
                    m->seed, cr_cell_names[m->cell], cr_config_layers(m), m->dropout, !m->gru_reset_before,
                    cr_optimizer_names[m->optimizer], m->momentum, m->clipnorm, cr_schedule_names[s->kind],
                    s->warmup_steps, s->decay_steps, s->decay_rate);
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

/* Parses "key=value" lines written by format_config. */
static df_status parse_config(const char *text, size_t len, cr_run_config *rc)
{
    char buf[1024];
    if (len >= sizeof buf) return df_error(DF_ERR_FORMAT, "checkpoint config is too long");
    memcpy(buf, text, len);
    buf[len] = 0;
    memset(rc, 0, sizeof *rc);
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

df_status cr_make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return df_error(DF_ERR_ARG, "path too long: %s", dir);
    for (char *p = path + 1;; p++) {            /* like mkdir -p: each parent in turn */
        bool last = *p == 0;
        if (*p != '/' && !last) continue;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return df_error(DF_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
        if (last) break;
        *p = '/';
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return df_error(DF_ERR_IO, "%s is not a directory", dir);
    return DF_OK;
}

static df_status put_model(df_checkpoint *ck, cr_model *m)
{
    df_status st = DF_OK;
    for (int i = 0; i < m->n_params && st == DF_OK; i++) st = df_checkpoint_put_variable(ck, m->params[i]);
    df_variable *opt_state[2 + 2 * CR_MAX_PARAMS];
    int n = df_optimizer_state(m->opt, opt_state, 2 + 2 * CR_MAX_PARAMS);
    for (int i = 0; i < n && st == DF_OK; i++) st = df_checkpoint_put_variable(ck, opt_state[i]);
    return st;
}

/* Mid-epoch: the batcher's place in the epoch (step, shuffle buffer) and the
 * training batch's recurrent state. *position must outlive the write. */
static df_status put_mid_epoch(df_checkpoint *ck, cr_model *m, const cr_batcher *b, int64_t **position)
{
    int64_t n = 3 + b->fill;
    int64_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) return df_error(DF_ERR_NOMEM, "out of memory");
    pos[0] = b->step;
    pos[1] = b->fill;
    pos[2] = b->next_chunk;
    for (int64_t i = 0; i < b->fill; i++) pos[3 + i] = b->buffer[i];
    *position = pos;
    cr_state *state = cr_model_state(m, b->batch, CR_STATE_MAIN);
    df_status st = state ? df_checkpoint_put_blob(ck, "batcher", pos, (size_t)n * sizeof *pos) : DF_ERR_NOMEM;
    for (int k = 0; k < m->n_layers && st == DF_OK; k++) {
        st = df_checkpoint_put_variable(ck, state->h[k]);
        if (st == DF_OK && state->c[k]) st = df_checkpoint_put_variable(ck, state->c[k]);
    }
    return st;
}

/* Restores what put_mid_epoch saved, checking the record against b. */
static df_status restore_mid_epoch(const df_checkpoint *ck, cr_model *m, cr_batcher *b)
{
    const void *data;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "batcher", &data, &len);
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
    if (!ok) {
        free(pos);
        return df_error(DF_ERR_FORMAT, "bad batcher record");
    }
    b->step = pos[0];
    b->fill = pos[1];
    b->next_chunk = pos[2];
    for (int64_t i = 0; i < b->fill; i++) b->buffer[i] = pos[3 + i];
    free(pos);
    cr_state *state = cr_model_state(m, b->batch, CR_STATE_MAIN);
    if (!state) return DF_ERR_NOMEM;
    for (int k = 0; k < m->n_layers && st == DF_OK; k++) {
        st = df_checkpoint_restore_variable(ck, state->h[k]);
        if (st == DF_OK && state->c[k]) st = df_checkpoint_restore_variable(ck, state->c[k]);
    }
    return st;
}

df_status cr_save_run(const char *dir, const cr_run_config *rc, const cr_vocab *vocab, cr_model *m,
                      const cr_batcher *b, const cr_progress *p, char *path_out, size_t path_cap)
{
    df_status st = cr_make_dirs(dir);
    if (st != DF_OK) return st;
    int number = p->epoch_step > 0 ? p->epoch + 1 : p->epoch;
    if (snprintf(path_out, path_cap, "%s/ckpt_%d", dir, number) >= (int)path_cap)
        return df_error(DF_ERR_ARG, "checkpoint path too long");
    df_checkpoint *ck = df_checkpoint_new();
    if (!ck) return DF_ERR_NOMEM;
    char config[1024], progress[128], vocab_utf8[CR_MAX_VOCAB * 4];
    int clen = format_config(rc, config, sizeof config);
    int plen = snprintf(progress, sizeof progress, "epoch=%d\nstep=%" PRId64 "\nepoch_step=%" PRId64 "\n", p->epoch,
                        p->step, p->epoch_step);
    size_t vlen = cr_vocab_to_utf8(vocab, vocab_utf8, sizeof vocab_utf8);
    /* Optimizer slots exist only after the first step; create them so every
     * checkpoint has the same entries. */
    st = df_optimizer_create_slots(m->opt, m->n_params, m->params);
    if (st == DF_OK) st = df_checkpoint_put_blob(ck, "config", config, (size_t)clen);
    if (st == DF_OK) st = df_checkpoint_put_blob(ck, "vocab", vocab_utf8, vlen);
    if (st == DF_OK) st = df_checkpoint_put_blob(ck, "progress", progress, (size_t)plen);
    if (st == DF_OK && b) st = df_checkpoint_put_blob(ck, "rng", &b->rng, sizeof b->rng);
    if (st == DF_OK) st = put_model(ck, m);
    int64_t *position = NULL;
    if (st == DF_OK && b && p->epoch_step > 0) st = put_mid_epoch(ck, m, b, &position);
    if (st == DF_OK) st = df_checkpoint_write(ck, path_out);
    df_checkpoint_free(ck);
    free(position);
    return st;
}

df_status cr_latest_checkpoint(const char *dir, char *path, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return df_error(DF_ERR_IO, "no checkpoint directory %s (%s): train first", dir, strerror(errno));
    int best = -1;
    for (struct dirent *e; (e = readdir(d));) {
        const char *num = e->d_name + 5;          /* exactly ckpt_<digits>, no sign, no leading zero */
        if (strncmp(e->d_name, "ckpt_", 5) != 0 || !isdigit((unsigned char)num[0]) || (num[0] == '0' && num[1]))
            continue;
        char *end;
        long epoch = strtol(num, &end, 10);
        char full[4096];
        struct stat st;
        if (*end || epoch > INT_MAX || snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= (int)sizeof full ||
            stat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (epoch > best) best = (int)epoch;
    }
    closedir(d);
    if (best < 0) return df_error(DF_ERR_IO, "no checkpoint (ckpt_N) in %s: train first", dir);
    if (snprintf(path, cap, "%s/ckpt_%d", dir, best) >= (int)cap) return df_error(DF_ERR_ARG, "checkpoint path too long");
    return DF_OK;
}

static df_status read_meta(const df_checkpoint *ck, const char *path, cr_run_config *rc, cr_vocab *vocab)
{
    const void *data;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "config", &data, &len);
    if (st == DF_OK) st = parse_config(data, len, rc);
    if (st == DF_OK) st = df_checkpoint_get_blob(ck, "vocab", &data, &len);
    if (st == DF_OK) st = cr_vocab_from_utf8(data, len, vocab);
    if (st == DF_OK && vocab->size != rc->model.vocab)
        st = df_error(DF_ERR_FORMAT, "vocabulary has %d chars but config says %d", vocab->size, rc->model.vocab);
    if (st != DF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        return df_error(st, "%s: %s", path, msg);
    }
    return DF_OK;
}

df_status cr_peek_run(const char *path, cr_run_config *rc, cr_vocab *vocab)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    st = read_meta(ck, path, rc, vocab);
    df_checkpoint_free(ck);
    return st;
}

/* Names the first setting that differs between the checkpoint and this run. */
static df_status compare_configs(const char *path, const cr_run_config *saved, const cr_run_config *now)
{
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
        {"learning-rate", a->learning_rate, b->learning_rate, cr_schedule_active(sa)}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (nums[i].used && nums[i].was != nums[i].is)
            return df_error(DF_ERR_STATE, "%s was trained with --%s %g, this run has --%s %g", path, nums[i].flag,
                            nums[i].was, nums[i].flag, nums[i].is);
    return DF_OK;
}

static df_status compare_vocab(const char *path, const cr_vocab *saved, const cr_vocab *now)
{
    if (saved->size != now->size)
        return df_error(DF_ERR_STATE, "%s: vocabulary has %d chars, the corpus has %d", path, saved->size, now->size);
    for (int i = 0; i < saved->size; i++)
        if (saved->chars[i] != now->chars[i])
            return df_error(DF_ERR_STATE, "%s: vocabulary differs from the corpus's at index %d (U+%04X vs U+%04X)",
                            path, i, saved->chars[i], now->chars[i]);
    return DF_OK;
}

static df_status restore_all(const df_checkpoint *ck, cr_model *m, cr_batcher *b, cr_progress *p)
{
    /* Optimizer state only when training resumes (b given): sampling needs
     * the weights alone, not twice their size in Adam slots. */
    df_status st = b ? df_optimizer_create_slots(m->opt, m->n_params, m->params) : DF_OK;
    for (int i = 0; i < m->n_params && st == DF_OK; i++) st = df_checkpoint_restore_variable(ck, m->params[i]);
    df_variable *opt_state[2 + 2 * CR_MAX_PARAMS];
    int n = df_optimizer_state(m->opt, opt_state, 2 + 2 * CR_MAX_PARAMS);
    for (int i = 0; i < n && st == DF_OK && b; i++) st = df_checkpoint_restore_variable(ck, opt_state[i]);
    const void *data;
    size_t len;
    if (st == DF_OK && p && (st = df_checkpoint_get_blob(ck, "progress", &data, &len)) == DF_OK) {
        char buf[128] = {0};
        memcpy(buf, data, len < sizeof buf - 1 ? len : sizeof buf - 1);
        p->epoch_step = 0;
        if (sscanf(buf, "epoch=%d\nstep=%" SCNd64 "\nepoch_step=%" SCNd64, &p->epoch, &p->step, &p->epoch_step) != 3 ||
            p->epoch < 0 || p->step < 0 || p->epoch_step < 0)
            st = df_error(DF_ERR_FORMAT, "bad progress record");
    }
    if (st == DF_OK && b && (st = df_checkpoint_get_blob(ck, "rng", &data, &len)) == DF_OK) {
        if (len != sizeof b->rng) st = df_error(DF_ERR_FORMAT, "bad RNG record (%zu bytes)", len);
        else memcpy(&b->rng, data, len);
    }
    if (st == DF_OK && b && p && p->epoch_step > 0) st = restore_mid_epoch(ck, m, b);
    return st;
}

df_status cr_load_run(const char *path, const cr_run_config *rc, const cr_vocab *vocab, cr_model *m,
                      cr_batcher *b, cr_progress *p)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    if (st != DF_OK) return st;
    st = cr_load_run_from(ck, path, rc, vocab, m, b, p);
    df_checkpoint_free(ck);
    return st;
}

df_status cr_load_run_from(const df_checkpoint *ck, const char *path, const cr_run_config *rc, const cr_vocab *vocab,
                           cr_model *m, cr_batcher *b, cr_progress *p)
{
    df_status st = DF_OK;
    cr_run_config saved;
    cr_vocab *saved_vocab = malloc(sizeof *saved_vocab);
    if (!saved_vocab) st = df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK) st = read_meta(ck, path, &saved, saved_vocab);
    if (st == DF_OK && b) st = compare_configs(path, &saved, rc);
    if (st == DF_OK) st = compare_vocab(path, saved_vocab, vocab);
    if (st == DF_OK) {
        st = restore_all(ck, m, b, p);
        if (st != DF_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", df_last_error());
            st = df_error(st, "%s: %s", path, msg);
        }
    }
    free(saved_vocab);
    return st;
}
