/* runstate.h — saving and restoring a whole training run in one checkpoint:
 * config, vocabulary, weights, optimizer slots, epoch/step and the data RNG. */
#ifndef CR_RUNSTATE_H
#define CR_RUNSTATE_H
#include "batches.h"
#include "model.h"
#include "schedule.h"

/* Everything about a run that must match to resume it. */
typedef struct cr_run_config {
    cr_config model;
    int seq, batch;
    cr_batching batching;
    cr_schedule schedule;
} cr_run_config;

typedef struct cr_progress {
    int epoch;            /* epochs completed */
    int64_t step;         /* optimizer steps taken */
    int64_t epoch_step;   /* steps into the next epoch when interrupted (0: at an epoch boundary) */
} cr_progress;

/* Writes <dir>/ckpt_<N> atomically (creating dir if needed), N = epochs
 * completed, or the epoch in progress when interrupted mid-epoch; then the
 * batcher's position and the recurrent state are saved too, so a resume
 * continues exactly where it stopped. */
df_status cr_save_run(const char *dir, const cr_run_config *rc, const cr_vocab *vocab, cr_model *m,
                      const cr_batcher *b, const cr_progress *p, char *path_out, size_t path_cap);
/* mkdir -p. */
df_status cr_make_dirs(const char *dir);
/* Path of the checkpoint with the highest epoch in dir; DF_ERR_IO if none. */
df_status cr_latest_checkpoint(const char *dir, char *path, size_t cap);
/* Reads config and vocabulary only (to build a model for sampling). Settings
 * added after the first checkpoints (cell, layers, dropout, optimizer,
 * schedule ...) default to the tutorial's when absent. */
df_status cr_peek_run(const char *path, cr_run_config *rc, cr_vocab *vocab);
/* Restores weights, optimizer state, progress and RNG into a model built with
 * the same config; every difference (config, vocabulary, shapes) is an error
 * naming it. b may be NULL (sampling). */
df_status cr_load_run(const char *path, const cr_run_config *rc, const cr_vocab *vocab, cr_model *m,
                      cr_batcher *b, cr_progress *p);
/* The same from a checkpoint already read (path names it in messages). */
df_status cr_load_run_from(const df_checkpoint *ck, const char *path, const cr_run_config *rc, const cr_vocab *vocab,
                           cr_model *m, cr_batcher *b, cr_progress *p);

#endif
