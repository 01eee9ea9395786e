/* char_sampler.h — sampling text from a saved char model (a file whose
 * "dagflow.sampler" metadata is "char": input 0 one id, i32 (1,1); output 0
 * its logits, f32 (1,1,V); "vocab" the V characters in id order, UTF-8).
 * Uses only dagflow.h: what dagflow-run and the tests share. */
#ifndef DS_CHAR_SAMPLER_H
#define DS_CHAR_SAMPLER_H
#include "dagflow.h"

typedef void (*ds_emit_fn)(const char *utf8, int len, void *ctx);

/* DF_OK when s is such a char model; else DF_ERR_ARG saying what is missing. */
df_status ds_check_char_model(const df_saved *s, int *vocab_size);
/* Resets s's state, feeds start one character at a time, then draws length
 * characters from softmax(logits / temperature) (0: argmax) with a df_rng
 * seeded with seed, emitting each (not start) and feeding it back. Draws as
 * char-rnn's sample command does, so equal logits give equal text. */
df_status ds_sample_chars(df_saved *s, const char *start, int length, float temperature, uint64_t seed,
                          ds_emit_fn emit, void *ctx);

#endif
