/* export.h — `char-rnn export`: the batch-1 sampling step as a saved graph
 * (dagflow.h, "saved graphs") that dagflow-run, or any program linking only
 * libdagflow, loads and samples from. */
#ifndef CR_EXPORT_H
#define CR_EXPORT_H
#include "dagflow.h"
#include "model.h"

/* What the file says about how to drive it (metadata entries):
 *   "dagflow.sampler" = "char"   input 0 is one id, i32 (1,1); output 0 is
 *                                its logits, f32 (1,1,V); the recurrent
 *                                state lives in the file's variables
 *   "vocab"                      the V characters in id order, UTF-8
 *   "model"                      the config, as char-rnn describes it */
#define CR_EXPORT_SAMPLER_KEY "dagflow.sampler"
#define CR_EXPORT_VOCAB_KEY "vocab"

/* Writes m's batch-1 step (ids (1,1) -> logits (1,1,V), state carried in its
 * variables, zeroed in the file) to out_path. m's states are reset. */
df_status cr_export_model_sampler(cr_model *m, const cr_vocab *vocab, const char *out_path);
/* The same for the newest checkpoint in checkpoint_dir, the file's state
 * the one char-rnn sample starts from: row 0 of the training state the
 * checkpoint holds (cr_start_from_trained_state), or zero. */
df_status cr_export_sampler(const char *checkpoint_dir, const char *out_path, bool zero_state);
/* `char-rnn export [--checkpoint-dir D] [--state trained|zero] OUT.dfg`
 * (argv without "char-rnn export"): 0 on success, 1 on an error (printed),
 * 2 on bad usage. */
int cr_export_command(int argc, char **argv);

#endif
