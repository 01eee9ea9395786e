/* evaluate.h — `char-rnn evaluate`: the validation loss of a checkpoint, as
 * `char-rnn train --val` reports it after an epoch (Keras' model.evaluate). */
#ifndef CR_EVALUATE_H
#define CR_EVALUATE_H
#include <stdbool.h>
#include <stdio.h>
#include "dagflow.h"

typedef struct cr_evaluate_opts {
    const char *checkpoint_dir, *checkpoint, *data;
    bool warm;             /* score a second pass, from the state the first one carried */
} cr_evaluate_opts;

void cr_evaluate_defaults(cr_evaluate_opts *o);

/* Loads the checkpoint and the corpus it was trained on (checked by its
 * XXH64), runs the model's evaluation step over the run's validation split
 * (the last --val fraction, batches of its rows as training made them) from
 * a zero state, and prints the mean loss over the batches to out. */
df_status cr_evaluate(const cr_evaluate_opts *o, FILE *out);

#endif
