/* train.h — `char-rnn train`: the fit way and the custom train_step way. */
#ifndef CR_TRAIN_H
#define CR_TRAIN_H
#include <stdbool.h>
#include "batches.h"
#include "model.h"
#include "schedule.h"

/* Sets the tutorial's defaults. */
void cr_train_defaults(cr_config *o);
df_status cr_train(const cr_config *o);
/* Set before or during a run: stop after the next step with a checkpoint
 * (df_fit_request_stop; signals reach df_fit directly). */
extern volatile int cr_stop_requested;

#endif
