/* train.h — `char-rnn train`: the fit way and the custom train_step way. */
#ifndef CR_TRAIN_H
#define CR_TRAIN_H
#include <stdbool.h>
#include "batches.h"
#include "model.h"
#include "schedule.h"

typedef struct cr_train_opts {
    const char *data, *checkpoint_dir, *csv, *plot;
    int epochs, seq, batch, embed, hidden, shuffle_buffer, steps_per_epoch, checkpoint_every;
    float learning_rate, val_fraction;
    uint64_t seed;
    cr_batching batching;
    bool resume, overwrite, custom_loop, profile;
    /* cell, layers, dropout, optimizer and schedule (zero: the tutorial's) */
    cr_cell cell;
    int layers;
    float dropout, momentum, clipnorm;
    bool gru_reset_before;
    cr_opt_kind optimizer;
    cr_schedule schedule;
} cr_train_opts;

/* Sets the tutorial's defaults. */
void cr_train_defaults(cr_train_opts *o);
df_status cr_train(const cr_train_opts *o);
/* Set before or during a run: stop after the next step with a checkpoint
 * (df_fit_request_stop; signals reach df_fit directly). */
extern volatile int cr_stop_requested;

#endif
