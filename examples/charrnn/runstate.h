/* runstate.h — what char-rnn adds to the checkpoints df_fit writes: the
 * run's config and vocabulary (checked on resume, flag by flag) and the
 * batcher's place (its RNG, step and shuffle buffer); and reading a
 * checkpoint outside df_fit, to sample or inspect it. */
#ifndef CR_RUNSTATE_H
#define CR_RUNSTATE_H
#include <stdio.h>
#include "batches.h"
#include "model.h"
#include "schedule.h"

/* Checkpoints before char-rnn trained on df_fit were format 1. */
#define CR_CHECKPOINT_FORMAT 2

typedef struct cr_progress {
    int epoch;            /* epochs completed */
    int64_t step;         /* optimizer steps taken */
    int64_t epoch_step;   /* steps into the next epoch when interrupted (0: at an epoch boundary) */
} cr_progress;

/* What char-rnn gives df_fit for its checkpoints: the config and
 * vocabulary (checked on resume: an older format, or a run whose data order
 * or model differs, is refused naming the flag), the batcher's place and
 * the recurrent state of its batch. First member of the struct a caller
 * gives df_fit as user, so that the hooks find it. */
typedef struct cr_run_parts {
    const cr_config *rc;
    const cr_vocab *vocab;
    cr_batcher *b;
    cr_config settings;          /* *rc as saved: the record's values */
    df_config_record record;
} cr_run_parts;

/* Sets o's checkpoint fields for m and p (config, model and model_batch,
 * optimizer, save_extra, restore_extra, user = p), others untouched. */
df_status cr_run_options(cr_run_parts *p, cr_model *m, df_fit_options *o);

static inline df_status cr_latest_checkpoint(const char *dir, char *path, size_t cap)
{
    return df_fit_latest_checkpoint(dir, path, cap);
}
/* The checkpoint a command reads: file (--checkpoint) when given, else the
 * latest ckpt_N in dir (--checkpoint-dir). */
static inline df_status cr_checkpoint_path(const char *file, const char *dir, char *path, size_t cap)
{
    if (!file) return cr_latest_checkpoint(dir, path, cap);
    snprintf(path, cap, "%s", file);
    return DF_OK;
}
/* Reads config and vocabulary only (to build a model for sampling). Settings
 * added after the first checkpoints (cell, layers, dropout, optimizer,
 * schedule ...) default to the tutorial's when absent. */
df_status cr_peek_run(const char *path, cr_config *rc, cr_vocab *vocab);
/* The same from a checkpoint read already (errors without its path). */
df_status cr_peek_checkpoint(const df_checkpoint *ck, cr_config *rc, cr_vocab *vocab);
/* Restores the weights into a model built with the same config; with b
 * (resuming a run) also the optimizer, progress, batcher and recurrent state,
 * after checking the config as a resume does. Every difference is an error
 * naming it. */
df_status cr_load_run(const char *path, const cr_config *rc, const cr_vocab *vocab, cr_model *m,
                      cr_batcher *b, cr_progress *p);
/* The same from a checkpoint read already (errors without its path). */
df_status cr_load_checkpoint(const df_checkpoint *ck, const cr_config *rc, const cr_vocab *vocab, cr_model *m,
                             cr_batcher *b, cr_progress *p);

#endif
