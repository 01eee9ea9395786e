/* export.c — writes char-rnn's sampling step as a saved graph: the traced
 * logits function at batch 1, one character per call, with the vocabulary
 * as metadata so that a program without this code can decode its output. */
#include <stdlib.h>
#include <string.h>
#include "export.h"
#include "runstate.h"

df_status cr_export_model_sampler(cr_model *m, const cr_vocab *vocab, const char *out_path)
{
    if (!m || !vocab || !out_path) return df_error(DF_ERR_ARG, "export: null argument");
    char *chars = malloc((size_t)vocab->size * 4 + 1);
    if (!chars) return df_error(DF_ERR_NOMEM, "export: out of memory");
    size_t len = 0;
    for (int i = 0; i < vocab->size; i++) len += (size_t)cr_utf8_encode(vocab->chars[i], chars + len);
    char model[256];
    cr_config_describe(&m->cfg, model, sizeof model);
    /* One call traces the batch-1 step (the model makes its function on
     * first use); the state it leaves is zeroed before it is written. */
    int32_t id = 0;
    df_tensor one = df_tensor_make(DF_I32, &id, 2, (int64_t[]){1, 1}), logits;
    df_status st = cr_logits(m, &one, &logits);
    cr_model_reset_states(m);
    df_tensor_spec sig = {DF_I32, 2, {1, 1}};
    df_saved_meta meta[] = {
        {CR_EXPORT_SAMPLER_KEY, "char", 4},
        {CR_EXPORT_VOCAB_KEY, chars, len},
        {"model", model, strlen(model)},
    };
    if (st == DF_OK) st = df_function_export(m->logits_fn, 1, &sig, out_path, 3, meta);
    free(chars);
    return st;
}

df_status cr_export_sampler(const char *checkpoint_dir, const char *out_path)
{
    char path[4096];
    df_status st = cr_latest_checkpoint(checkpoint_dir, path, sizeof path);
    cr_run_config rc;
    cr_vocab *vocab = malloc(sizeof *vocab);
    if (!vocab) return df_error(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK) st = cr_peek_run(path, &rc, vocab);
    cr_model m;
    bool have_model = false;
    if (st == DF_OK) have_model = (st = cr_model_init(&m, &rc.model)) == DF_OK;
    if (st == DF_OK) st = cr_load_run(path, &rc, vocab, &m, NULL, NULL);
    if (st == DF_OK) st = cr_export_model_sampler(&m, vocab, out_path);
    if (have_model) cr_model_free(&m);
    free(vocab);
    return st;
}
