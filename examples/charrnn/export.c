/* export.c — writes char-rnn's sampling step as a saved graph: the traced
 * logits function at batch 1, one character per call, with the vocabulary
 * as metadata so that a program without this code can decode its output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"
#include "cli.h"
#include "runstate.h"
#include "sample.h"

/* cr_export_model_sampler with the file's state row 0 of the training
 * state in ck, read from path (ck NULL: zero). */
static df_status export_sampler(cr_model *m, const cr_vocab *vocab, const char *out_path, const df_checkpoint *ck,
                                const char *path)
{
    if (!m || !vocab || !out_path) return df_error(DF_ERR_ARG, "export: null argument");
    char *chars = malloc((size_t)vocab->size * 4 + 1);
    if (!chars) return df_error(DF_ERR_NOMEM, "export: out of memory");
    size_t len = 0;
    for (int i = 0; i < vocab->size; i++) len += (size_t)cr_utf8_encode(vocab->chars[i], chars + len);
    char model[256];
    cr_config_describe(&m->cfg, model, sizeof model);
    /* One call traces the batch-1 step (the model makes its function on
     * first use); the state it leaves is zeroed, or replaced by the
     * training state, before it is written. */
    int32_t id = 0;
    df_tensor one = df_tensor_make(DF_I32, &id, 2, (int64_t[]){1, 1}), logits;
    df_status st = cr_logits(m, &one, &logits);
    cr_model_reset_states(m);
    if (st == DF_OK && ck) st = cr_start_from_trained_state(m, ck, path, "char-rnn export");
    df_tensor_spec sig = {DF_I32, 2, {1, 1}};
    df_saved_meta meta[] = {
        {CR_EXPORT_SAMPLER_KEY, "char", 4},
        {CR_EXPORT_VOCAB_KEY, chars, len},
        {"model", model, strlen(model)},
    };
    if (st == DF_OK) st = df_function_export(m->logits_fn, 1, &sig, out_path, 3, meta);
    cr_model_reset_states(m);
    free(chars);
    return st;
}

df_status cr_export_model_sampler(cr_model *m, const cr_vocab *vocab, const char *out_path)
{
    return export_sampler(m, vocab, out_path, NULL, NULL);
}

df_status cr_export_sampler(const char *checkpoint_dir, const char *out_path, bool zero_state)
{
    char path[4096];
    df_status st = cr_latest_checkpoint(checkpoint_dir, path, sizeof path);
    cr_vocab *vocab = malloc(sizeof *vocab);
    if (!vocab) return df_error(DF_ERR_NOMEM, "out of memory");
    cr_model m;
    bool have_model = false;
    df_checkpoint *ck = NULL;           /* read once: the weights and the state from the same file */
    if (st == DF_OK) st = df_checkpoint_read(path, &ck);
    if (st == DF_OK) have_model = (st = df_error_prefix(cr_model_from_open_checkpoint(ck, vocab, &m), path)) == DF_OK;
    if (st == DF_OK) st = export_sampler(&m, vocab, out_path, zero_state ? NULL : ck, path);
    df_checkpoint_free(ck);
    if (have_model) cr_model_free(&m);
    free(vocab);
    return st;
}

int cr_export_command(int argc, char **argv)
{
    const char *dir = "./training_checkpoints", *out = NULL;
    int start_state = 0;
    cli_flag flags[] = {
        {"checkpoint-dir", CLI_STRING, &dir, "export the latest ckpt_N here", 0, 0, NULL},
        {"state", CLI_CHOICE, &start_state, "the state the file starts (and dagflow-run resets) to: trained or zero, "
                                            "as char-rnn sample --state", 0, 0, cr_start_states},
        {"out", CLI_STRING, &out, "the saved graph to write (or give it as the last argument)", 0, 0, NULL},
    };
    const char *usage = "char-rnn export [--checkpoint-dir D] [--state trained|zero] OUT.dfg";
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    if (!rest) return 1;
    int n = 0;
    for (int i = 0; i < argc; i++) {         /* every flag takes a value: the one other word is OUT */
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            rest[n++] = argv[i];
            if (i + 1 < argc && strchr(argv[i], '=') == NULL && strcmp(argv[i], "--help") != 0) rest[n++] = argv[++i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "char-rnn export: unexpected argument '%s' (usage: %s)\n", argv[i], usage);
            free(rest);
            return 2;
        }
    }
    int rc = cli_parse("char-rnn export", usage, flags, (int)(sizeof flags / sizeof flags[0]), n, rest, stdout, stderr);
    free(rest);
    if (rc) return rc == 1 ? 0 : rc;
    if (!out) {
        fprintf(stderr, "char-rnn export: the output file is required (usage: %s)\n", usage);
        return 2;
    }
    df_status st = cr_export_sampler(dir, out, start_state == 1);
    if (st != DF_OK) {
        fprintf(stderr, "char-rnn export: %s\n", df_last_error());
        return 1;
    }
    printf("wrote %s: the batch-1 sampling step (run it with dagflow-run %s --sample)\n", out, out);
    return 0;
}
