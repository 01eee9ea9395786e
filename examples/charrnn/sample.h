/* sample.h — `char-rnn sample`: generate text one character at a time with the
 * model rebuilt at batch 1 (a new trace of the same variables). */
#ifndef CR_SAMPLE_H
#define CR_SAMPLE_H
#include <stdio.h>
#include "model.h"

typedef struct cr_sample_opts {
    const char *checkpoint_dir, *checkpoint, *start;
    int length;
    float temperature;     /* 0 = argmax */
    uint64_t seed;
} cr_sample_opts;

void cr_sample_defaults(cr_sample_opts *o);

/* Called with each generated character (UTF-8) as soon as it exists. */
typedef void (*cr_emit_fn)(const char *utf8, int len, void *ctx);

/* Feeds start, then generates length chars; the model's batch-1 state is
 * reset first. */
df_status cr_generate(cr_model *m, const cr_vocab *vocab, const char *start, int length, float temperature,
                      uint64_t seed, cr_emit_fn emit, void *ctx);
/* The model of a checkpoint, its weights loaded, and its vocabulary (for
 * sampling: no optimizer slots); on an error nothing is left to free. */
df_status cr_model_from_checkpoint(const char *path, cr_vocab *vocab, cr_model *m);
/* Loads the checkpoint and streams start + generated text to out. */
df_status cr_sample(const cr_sample_opts *o, FILE *out);

#endif
