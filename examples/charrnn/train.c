/* train.c — `char-rnn train` on the library's loop, df_fit: the batch
 * sources and the checkpoint extras (runstate.h). df_fit does the rest:
 * progress bar (or the tutorial's custom-loop lines), validation,
 * checkpoints and resume, CSV, SVG, signals, the directory lock, the ranks
 * of a data-parallel run, the op profile. */
#include <math.h>
#include <stdio.h>
#include <xxhash.h>
#include <string.h>
#include "dist.h"
#include "runstate.h"
#include "text.h"
#include "train.h"

volatile int cr_stop_requested = 0;

void cr_train_defaults(cr_config *o)
{
    *o = (cr_config){.data = CR_DEFAULT_DATA, .checkpoint_dir = "./training_checkpoints",
                         .epochs = 10, .seq = 100, .batch = 64, .embed = 256, .hidden = 1024,
                         .shuffle_buffer = 10000, .checkpoint_every = 5, .learning_rate = 1e-3f,
                         .seed = 42, .batching = CR_SHUFFLE, .layers = 1,
                         .schedule = {.decay_steps = 1000, .decay_rate = 0.5f}};
}

/* Everything one training run holds. */
typedef struct run {
    cr_run_parts parts;                      /* first: df_fit's user is both */
    const cr_config *o;
    cr_text text;
    cr_config rc;                            /* *o with the corpus's vocabulary */
    cr_model model;
    cr_batcher train, val;
    bool has_val;
    df_tensor in[2];                         /* x, y: this rank's rows of a batch */
} run;

static df_status open_run(run *r, const cr_config *o)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    df_status st = cr_text_load(o->data, &r->text);
    if (st != DF_OK) return st;
    int64_t n_val = cr_val_chars(r->text.n, o->val_fraction), n_train = r->text.n - n_val;
    r->rc = *o;
    r->rc.vocab = r->text.vocab.size;
    r->rc.data_hash = XXH64(r->text.ids, (size_t)r->text.n * sizeof *r->text.ids, 0);
    if ((st = cr_model_init(&r->model, &r->rc)) != DF_OK) return st;
    if ((st = cr_dist_setup_model(&r->model)) != DF_OK) return st;     /* gradient all-reduce (mpirun) */
    st = cr_batcher_init(&r->train, r->text.ids, n_train, o->seq, o->batch, o->batching, o->shuffle_buffer, o->seed);
    if (st == DF_OK) st = cr_dist_shard(&r->train);                   /* this rank's rows of each batch */
    if (st != DF_OK) return st;
    r->model.dropout_row0 = r->train.row0;            /* its part of each batch's dropout masks */
    if (n_val > 0) {
        st = cr_batcher_init_val(&r->val, r->text.ids, r->text.n, o->val_fraction, o->seq, o->batch, o->seed);
        if (st == DF_OK) st = cr_dist_shard(&r->val);
        if (st != DF_OK) return st;
        r->has_val = true;
    }
    r->parts = (cr_run_parts){.rc = &r->rc, .vocab = &r->text.vocab, .b = &r->train};
    int64_t shape[2] = {r->train.rows, o->seq};
    st = df_tensor_alloc(DF_I32, 2, shape, &r->in[0]);
    return st == DF_OK ? df_tensor_alloc(DF_I32, 2, shape, &r->in[1]) : st;
}

static void close_run(run *r)
{
    df_tensor_free_data(&r->in[0]);
    df_tensor_free_data(&r->in[1]);
    cr_batcher_free(&r->train);
    cr_batcher_free(&r->val);
    cr_model_free(&r->model);
    cr_text_free(&r->text);
}

/* ------------------------------------------------- df_fit's callbacks */

static df_status next_of(run *r, cr_batcher *b, df_tensor *in, bool *end)
{
    *end = !cr_batcher_next(b, r->in[0].data, r->in[1].data);
    memcpy(in, r->in, sizeof r->in);
    return DF_OK;
}

static df_status train_next(void *user, df_tensor *in, bool *end)
{
    run *r = user;
    if (cr_stop_requested) df_fit_request_stop();    /* as a signal during this step would */
    return next_of(r, &r->train, in, end);
}

static df_status val_next(void *user, df_tensor *in, bool *end) { return next_of(user, &((run *)user)->val, in, end); }
static void train_start(void *user) { cr_batcher_start_epoch(&((run *)user)->train); }
static void val_start(void *user) { cr_batcher_start_epoch(&((run *)user)->val); }

/* ---------------------------------------------------------------- run */

/* The loss before training on the text's first batch-worth of chunks, as
 * the tutorial prints it (about ln V for a fresh model). */
static df_status untrained_loss(run *r)
{
    cr_batcher_first_batch(&r->train, r->in[0].data, r->in[1].data);
    float loss;
    df_status st = cr_dist_agree(cr_step(&r->model, "eval", &r->in[0], &r->in[1], &loss));
    if (st == DF_OK)
        printf("Untrained loss: %.4f (a uniform guess over %d chars gives ln %d = %.4f)\n", (float)cr_dist_mean(loss),
               r->text.vocab.size, r->text.vocab.size, log((double)r->text.vocab.size));
    cr_model_reset_states(&r->model);
    return st;
}

static void print_header(const run *r)
{
    const cr_config *o = r->o;
    printf("Corpus: %lld chars, %d distinct; %lld steps per epoch (batch %d, seq %d, %s batching)\n",
           (long long)r->text.n, r->text.vocab.size, (long long)r->train.steps_per_epoch, o->batch, o->seq,
           o->batching == CR_SHUFFLE ? "shuffle" : "streams");
    char model[160];
    cr_config_describe(&r->rc, model, sizeof model);
    printf("Model: %s; %s\n", model, cr_schedule_describe(&r->rc.schedule, r->rc.learning_rate).text);
    if (cr_dist_size() > 1)
        printf("Data parallel: %d processes x %d rows per batch; gradients averaged by one %.3g MB all-reduce per step\n",
               cr_dist_size(), r->train.rows, 4e-6 * (double)cr_model_param_count(&r->model));
}

static const char *train_step(const cr_config *o) { return o->custom_loop ? "custom" : "fit"; }
static const char *given(const char *path) { return path && *path ? path : NULL; }

static df_status fit(run *r)
{
    const cr_config *o = r->o;
    int64_t steps = r->train.steps_per_epoch;
    if (o->steps_per_epoch > 0 && o->steps_per_epoch < steps) steps = o->steps_per_epoch;
    df_fit_options f = {
        .train_step = cr_model_function(&r->model, train_step(o)),
        .eval_step = cr_model_function(&r->model, "eval"), .n_inputs = 2,
        .train = {.next = train_next, .start_epoch = train_start, .user = r},
        .validation = {.next = r->has_val ? val_next : NULL, .start_epoch = val_start, .user = r},
        .epochs = o->epochs, .steps_per_epoch = steps, .schedule = r->rc.schedule,
        .learning_rate = r->rc.learning_rate, .checkpoint_dir = o->checkpoint_dir,
        .checkpoint_every = o->custom_loop ? o->checkpoint_every : 1, .resume = o->resume, .resume_flag = "--resume",
        .overwrite = o->overwrite, .learning_rate_flag = "--learning-rate",   /* replaces a constant rate on resume */
        .csv_path = given(o->csv), .plot_path = given(o->csv) ? given(o->plot) : NULL, .handle_signals = true,
        .profile = o->profile, .progress = o->custom_loop ? DF_FIT_PROGRESS_STEPS : DF_FIT_PROGRESS_AUTO,
        .comm = cr_dist_comm(), .check_weights = cr_dist_size() > 1};
    df_status st = cr_run_options(&r->parts, &r->model, &f);   /* the checkpoints' contents; user = r */
    if (st != DF_OK) return st;
    if (!f.train_step || !f.eval_step) return DF_ERR_NOMEM;
    if (cr_dist_size() > 1 && !f.comm) return DF_ERR_STATE;   /* df_fit_mpi_comm failed: its message */
    return df_fit(&f, NULL);
}

df_status cr_train(const cr_config *o)
{
    run r;
    df_status st = cr_dist_agree(open_run(&r, o));  /* collective: every rank passes or all stop with one message */
    if (st == DF_OK) st = cr_dist_check_same(r.text.ids, (size_t)r.text.n * sizeof *r.text.ids, "corpora (--data)");
    if (st == DF_OK) {
        print_header(&r);
        if (!o->resume) st = untrained_loss(&r);
    }
    if (st == DF_OK) st = fit(&r);
    if (st == DF_OK && o->custom_loop) printf("train_step traces: %d\n", cr_trace_count(&r.model, "custom"));
    if (st == DF_OK && o->profile) st = df_function_print_profile(cr_model_function(&r.model, train_step(o)), stdout);
    if (st == DF_OK && given(o->csv) && given(o->plot)) printf("Loss curve: %s (data: %s)\n", o->plot, o->csv);
    close_run(&r);
    return st;
}
