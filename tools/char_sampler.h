/* char_sampler.h — sampling text from a saved char model: a file whose
 * "dagflow.sampler" metadata is "char", "vocab" the V characters in id
 * order (UTF-8), and whose step takes
 *   - one input, an id i32 (1,1), carrying its state in the file's
 *     variables (char-rnn); or
 *   - two inputs, an id i32 (1,1) and its position i32 (1) (char-gpt's
 *     KV-cache step, the caches being the file's variables). Positions run
 *     0, 1, ... up to the "dagflow.context" metadata minus one (a decimal);
 *     when the context is full, the last "dagflow.keep" tokens (a decimal
 *     below the context) are run again at positions 0..keep-1 and the next
 *     token goes to position keep.
 * Output 0 is the logits, f32 (1,1,V). Uses only dagflow.h: what
 * dagflow-run, char-gpt and the tests share. */
#ifndef DS_CHAR_SAMPLER_H
#define DS_CHAR_SAMPLER_H
#include "dagflow.h"

#define DS_CONTEXT_KEY "dagflow.context"
#define DS_KEEP_KEY "dagflow.keep"

typedef void (*ds_emit_fn)(const char *utf8, int len, void *ctx);

/* DF_OK when s is such a char model; else DF_ERR_ARG saying what is missing. */
df_status ds_check_char_model(const df_saved *s, int *vocab_size);
/* Resets s's state, feeds start one character at a time, then draws length
 * characters with ds_draw (a df_rng seeded with seed), emitting each (not
 * start) and feeding it back. Draws as char-rnn's and char-gpt's sample
 * commands do, so equal logits give equal text. ds_sample_chars: top_k 0. */
df_status ds_sample_chars(df_saved *s, const char *start, int length, float temperature, uint64_t seed,
                          ds_emit_fn emit, void *ctx);
df_status ds_sample_chars_top_k(df_saved *s, const char *start, int length, float temperature, int top_k,
                                uint64_t seed, ds_emit_fn emit, void *ctx);
/* One draw from softmax(logits / temperature) over the top_k likeliest (all
 * when top_k is 0 or >= V), the argmax at temperature 0; p: room for V
 * doubles (scratch). */
int ds_draw(const float *logits, int V, float temperature, int top_k, df_rng *rng, double *p);

#endif
