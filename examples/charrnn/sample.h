/* sample.h — `char-rnn sample`: generate text one character at a time with the
 * model rebuilt at batch 1 (a new trace of the same variables). */
#ifndef CR_SAMPLE_H
#define CR_SAMPLE_H
#include <stdio.h>
#include "model.h"

/* --state's choices: "trained", "zero" (cr_sample_opts.zero_state). */
extern const char *const cr_start_states[];

typedef struct cr_sample_opts {
    const char *checkpoint_dir, *checkpoint, *start;
    int length;
    float temperature;     /* 0 = argmax */
    uint64_t seed;
    /* start from a zero state (the tutorial's), not from the state the
     * training batch's first row carried when the checkpoint was written */
    bool zero_state;
} cr_sample_opts;

void cr_sample_defaults(cr_sample_opts *o);

/* Called with each generated character (UTF-8) as soon as it exists. */
typedef void (*cr_emit_fn)(const char *utf8, int len, void *ctx);

/* Feeds start, then generates length chars; the model's batch-1 state is
 * reset first, and after. */
df_status cr_generate(cr_model *m, const cr_vocab *vocab, const char *start, int length, float temperature,
                      uint64_t seed, cr_emit_fn emit, void *ctx);
/* The same from the batch-1 state the model holds now (reset after). */
df_status cr_generate_from_current_state(cr_model *m, const cr_vocab *vocab, const char *start, int length,
                                         float temperature, uint64_t seed, cr_emit_fn emit, void *ctx);
/* The model of a checkpoint, its weights loaded, and its vocabulary (for
 * sampling: no optimizer slots); on an error nothing is left to free. */
df_status cr_model_from_checkpoint(const char *path, cr_vocab *vocab, cr_model *m);
/* The batch-1 state generation starts from: row `row` of the state the
 * training batch carried when ck was written (its state/h, state/c ...).
 * A model trained on shuffled chunks with its state carried from one step
 * to the next has started from such a state at every step but an epoch's
 * first, and may not recover from a zero state. *what says whether ck held
 * that state (ABSENT: a checkpoint of a char-rnn before df_fit, whose state
 * stays zero), and whether it was all zero (an older `--val` run's, whose
 * validation left it so). Part of a state, or one of another shape, is
 * DF_ERR_FORMAT saying so. */
typedef enum cr_trained_state {
    CR_TRAINED_STATE_LOADED, CR_TRAINED_STATE_ABSENT, CR_TRAINED_STATE_ZERO
} cr_trained_state;
df_status cr_load_trained_state(cr_model *m, const df_checkpoint *ck, int64_t row, cr_trained_state *what);
/* Row 0 of it, with a note on stderr (prefixed by who) when ck holds no
 * training state or a zero one; errors name path. */
df_status cr_start_from_trained_state(cr_model *m, const df_checkpoint *ck, const char *path, const char *who);
/* cr_model_from_checkpoint from a checkpoint read already. */
df_status cr_model_from_open_checkpoint(const df_checkpoint *ck, cr_vocab *vocab, cr_model *m);
/* Loads the checkpoint (the weights, and the training state unless
 * o->zero_state) and streams start + generated text to out. */
df_status cr_sample(const cr_sample_opts *o, FILE *out);

#endif
