/* evaluate.c — the validation loss of a checkpoint, the figure df_fit logs
 * as val_loss after an epoch: the same split, batches and evaluation step. */
#include <stdlib.h>
#include <xxhash.h>
#include "batches.h"
#include "evaluate.h"
#include "runstate.h"
#include "sample.h"
#include "text.h"

void cr_evaluate_defaults(cr_evaluate_opts *o)
{
    *o = (cr_evaluate_opts){.checkpoint_dir = "./training_checkpoints", .data = CR_DEFAULT_DATA};
}

/* The corpus ids of the run m was trained on, refused when they are not. */
static df_status load_training_text(const char *path, const cr_config *cfg, cr_text *text)
{
    df_status st = cr_text_load(path, text);
    if (st != DF_OK) return st;
    if (XXH64(text->ids, (size_t)text->n * sizeof *text->ids, 0) != cfg->data_hash) {
        cr_text_free(text);
        return df_error(DF_ERR_ARG, "%s is not the corpus this checkpoint was trained on (its XXH64 differs): "
                        "pass that corpus with --data", path);
    }
    return DF_OK;
}

/* Mean loss of the evaluation step over one pass of val (from the state the
 * model holds); *batches counts them. */
static df_status one_pass(cr_model *m, cr_batcher *val, df_tensor *x, df_tensor *y, double *mean, int *batches)
{
    double sum = 0;
    int n = 0;
    cr_batcher_start_epoch(val);
    while (cr_batcher_next(val, x->data, y->data)) {
        float loss;
        df_status st = cr_step(m, "eval", x, y, &loss);
        if (st != DF_OK) return st;
        sum += loss;
        n++;
    }
    *mean = n ? sum / n : 0;
    *batches = n;
    return DF_OK;
}

static df_status evaluate_model(cr_model *m, const cr_text *text, bool warm, FILE *out)
{
    const cr_config *c = &m->cfg;
    cr_batcher val;
    df_status st = cr_batcher_init_val(&val, text->ids, text->n, c->val_fraction, c->seq, c->batch, c->seed);
    if (st != DF_OK) return st;
    df_tensor x = {0}, y = {0};
    const int64_t shape[2] = {val.rows, c->seq};
    st = df_tensor_alloc(DF_I32, 2, shape, &x);
    if (st == DF_OK) st = df_tensor_alloc(DF_I32, 2, shape, &y);
    double loss = 0;
    int batches = 0;
    cr_model_reset_states(m);
    if (st == DF_OK && warm) st = one_pass(m, &val, &x, &y, &loss, &batches);
    if (st == DF_OK) st = one_pass(m, &val, &x, &y, &loss, &batches);
    if (st == DF_OK)
        fprintf(out, "val_loss: %.4f (%d batches of %d x %d, the corpus's last %g%%, %s)\n", loss, batches,
                c->batch, c->seq, 100.0 * c->val_fraction,
                warm ? "scored on a second pass from the state the first carried" : "from a zero state");
    cr_model_reset_states(m);
    df_tensor_free_data(&x);
    df_tensor_free_data(&y);
    cr_batcher_free(&val);
    return st;
}

df_status cr_evaluate(const cr_evaluate_opts *o, FILE *out)
{
    char path[4096];
    df_status st = cr_checkpoint_path(o->checkpoint, o->checkpoint_dir, path, sizeof path);
    cr_vocab *vocab = malloc(sizeof *vocab);
    cr_text *text = malloc(sizeof *text);
    if (!vocab || !text) st = df_error(DF_ERR_NOMEM, "out of memory");
    cr_model m;
    bool have_model = false, have_text = false;
    if (st == DF_OK) have_model = (st = cr_model_from_checkpoint(path, vocab, &m)) == DF_OK;
    if (st == DF_OK && !(m.cfg.val_fraction > 0))
        st = df_error(DF_ERR_ARG, "%s was trained without --val: it has no validation split to evaluate", path);
    if (st == DF_OK) have_text = (st = load_training_text(o->data, &m.cfg, text)) == DF_OK;
    if (st == DF_OK) st = evaluate_model(&m, text, o->warm, out);
    if (have_text) cr_text_free(text);
    if (have_model) cr_model_free(&m);
    free(text);
    free(vocab);
    return st;
}
