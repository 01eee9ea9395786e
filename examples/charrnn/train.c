/* train.c — the training loops, progress output, loss CSV and SVG curve. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "dist.h"
#include "runstate.h"
#include "text.h"
#include "train.h"

volatile int cr_stop_requested = 0;

void cr_train_defaults(cr_train_opts *o)
{
    *o = (cr_train_opts){.data = CR_DEFAULT_DATA, .checkpoint_dir = "./training_checkpoints",
                         .epochs = 10, .seq = 100, .batch = 64, .embed = 256, .hidden = 1024,
                         .shuffle_buffer = 10000, .checkpoint_every = 5, .learning_rate = 1e-3f,
                         .seed = 42, .batching = CR_SHUFFLE, .layers = 1,
                         .schedule = {.decay_steps = 1000, .decay_rate = 0.5f}};
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Everything one training run holds. */
typedef struct run {
    const cr_train_opts *o;
    cr_text text;
    cr_run_config rc;
    cr_model model;
    cr_batcher train, val;
    bool has_val;
    cr_progress progress;
    int32_t *x, *y;
    df_tensor xt, yt;
    FILE *csv;
    bool tty;
} run;

static df_status open_run(run *r, const cr_train_opts *o)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->tty = isatty(STDOUT_FILENO);
    df_status st = cr_text_load(o->data, &r->text);
    if (st != DF_OK) return st;
    int64_t n_val = (int64_t)(r->text.n * (double)o->val_fraction), n_train = r->text.n - n_val;
    r->rc = (cr_run_config){.model = {.vocab = r->text.vocab.size, .embed = o->embed, .hidden = o->hidden,
                                      .learning_rate = o->learning_rate, .seed = o->seed, .cell = o->cell,
                                      .layers = o->layers, .dropout = o->dropout, .gru_reset_before = o->gru_reset_before,
                                      .optimizer = o->optimizer, .momentum = o->momentum, .clipnorm = o->clipnorm},
                            .seq = o->seq, .batch = o->batch, .batching = o->batching, .schedule = o->schedule};
    if ((st = cr_schedule_check(&r->rc.schedule)) != DF_OK) return st;
    if ((st = cr_model_init(&r->model, &r->rc.model)) != DF_OK) return st;
    if ((st = cr_dist_setup_model(&r->model)) != DF_OK) return st;     /* gradient all-reduce (mpirun) */
    st = cr_batcher_init(&r->train, r->text.ids, n_train, o->seq, o->batch, o->batching, o->shuffle_buffer, o->seed);
    if (st == DF_OK) st = cr_dist_shard(&r->train);                   /* this rank's rows of each batch */
    if (st != DF_OK) return st;
    r->model.dropout_row0 = r->train.row0;            /* its part of each batch's dropout masks */
    if (n_val > 0) {
        st = cr_batcher_init(&r->val, r->text.ids + n_train, n_val, o->seq, o->batch, CR_STREAMS, 1, o->seed);
        if (st != DF_OK) return df_error(st, "validation split of %lld chars is too small for one %d x %d batch",
                                         (long long)n_val, o->batch, o->seq);
        if ((st = cr_dist_shard(&r->val)) != DF_OK) return st;
        r->has_val = true;
    }
    size_t cells = (size_t)o->batch * (size_t)o->seq;
    r->x = malloc(cells * sizeof *r->x);
    r->y = malloc(cells * sizeof *r->y);
    if (!r->x || !r->y) return df_error(DF_ERR_NOMEM, "out of memory for batches");
    int64_t shape[2] = {r->train.rows, o->seq};
    r->xt = df_tensor_make(DF_I32, r->x, 2, shape);
    r->yt = df_tensor_make(DF_I32, r->y, 2, shape);
    return DF_OK;
}

static void close_run(run *r)
{
    if (r->csv) fclose(r->csv);
    free(r->x);
    free(r->y);
    cr_batcher_free(&r->train);
    cr_batcher_free(&r->val);
    cr_model_free(&r->model);
    cr_text_free(&r->text);
}

/* "240s", "1s/step" / "850ms/step" as Keras prints them. */
static void keras_times(double elapsed, int steps, char *total, char *per_step)
{
    sprintf(total, "%.0fs", elapsed);
    double per = steps ? elapsed / steps : 0;
    if (per >= 1) sprintf(per_step, "%.0fs/step", per);
    else if (per >= 0.01) sprintf(per_step, "%.0fms/step", per * 1000);
    else sprintf(per_step, "%.2fms/step", per * 1000);
}

/* Keras-style progress: an updating bar on a terminal, plain lines otherwise. */
static void show_progress(const run *r, int64_t done, int64_t total, double elapsed, double mean_loss, bool last)
{
    char t[32], per[32];
    keras_times(elapsed, (int)done, t, per);
    if (r->tty) {
        int width = 30, filled = (int)(width * done / total);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled - 1 || (last && i < filled) ? '=' : i == filled - 1 ? '>' : '.';
        bar[width] = 0;
        printf("\r%lld/%lld [%s] - %s %s - loss: %.4f%s", (long long)done, (long long)total, bar, t, per, mean_loss,
               last ? "\n" : "");
    } else if (last || done % (total / 10 ? total / 10 : 1) == 0) {
        printf("%lld/%lld - %s %s - loss: %.4f\n", (long long)done, (long long)total, t, per, mean_loss);
    }
    fflush(stdout);
}

static df_status evaluate(run *r, double *mean)
{
    cr_model_reset_states(&r->model);         /* state reset around validation */
    cr_batcher_start_epoch(&r->val);
    double sum = 0;
    int n = 0;
    float loss;
    while (cr_batcher_next(&r->val, r->x, r->y)) {
        df_status st = cr_eval_step(&r->model, &r->xt, &r->yt, &loss);
        if (st != DF_OK) return cr_dist_fail(st);
        sum += loss;
        n++;
    }
    *mean = n ? cr_dist_mean(sum / n) : NAN;
    cr_model_reset_states(&r->model);
    return DF_OK;
}

/* The loss before training on the text's first batch-worth of chunks, as
 * the tutorial prints it (about ln V for a fresh model). */
static df_status untrained_loss(run *r)
{
    cr_batcher_first_batch(&r->train, r->x, r->y);
    float loss;
    df_status st = cr_dist_agree(cr_eval_step(&r->model, &r->xt, &r->yt, &loss));
    if (st == DF_OK) loss = (float)cr_dist_mean(loss);
    if (st == DF_OK)
        printf("Untrained loss: %.4f (a uniform guess over %d chars gives ln %d = %.4f)\n", loss,
               r->text.vocab.size, r->text.vocab.size, log((double)r->text.vocab.size));
    cr_model_reset_states(&r->model);
    return st;
}

static df_status open_csv(run *r)
{
    if (!r->o->csv || !*r->o->csv || cr_dist_rank() != 0) return DF_OK;
    bool append = r->o->resume && access(r->o->csv, F_OK) == 0;
    r->csv = fopen(r->o->csv, append ? "a" : "w");
    if (!r->csv) return df_error(DF_ERR_IO, "cannot write %s: %s", r->o->csv, strerror(errno));
    if (!append) fprintf(r->csv, "epoch,step,loss,val_loss\n");
    return DF_OK;
}

static df_status save_checkpoint(run *r)
{
    char path[4096];
    df_status st = r->progress.epoch_step > 0 ? cr_dist_gather_state(&r->model, &r->train) : DF_OK;
    if (st == DF_OK && cr_dist_rank() == 0)      /* rank 0 writes; the others wait for its verdict */
        st = cr_save_run(r->o->checkpoint_dir, &r->rc, &r->text.vocab, &r->model, &r->train, &r->progress, path,
                         sizeof path);
    if ((st = cr_dist_agree(st)) == DF_OK) printf("Saved checkpoint %s\n", path);
    return st;
}

/* One epoch (or the rest of one a resumed checkpoint stopped in); returns
 * the mean training loss of the steps run. A stop request ends it early with
 * progress.epoch_step = steps done. */
static df_status run_epoch(run *r, int epoch, double *mean_loss)
{
    const cr_train_opts *o = r->o;
    int64_t total = r->train.steps_per_epoch, first = r->progress.epoch_step, ran = 0;
    if (o->steps_per_epoch > 0 && o->steps_per_epoch < total) total = o->steps_per_epoch;
    if (first == 0) {
        cr_model_reset_states(&r->model);      /* states reset at each epoch start */
        cr_batcher_start_epoch(&r->train);
    }
    r->progress.epoch_step = 0;
    double start = now_seconds(), sum = 0;
    float loss = 0;
    if (!o->custom_loop) printf("Epoch %d/%d\n", epoch + 1, o->epochs);
    for (int64_t i = first; i < total && cr_batcher_next(&r->train, r->x, r->y); i++) {
        if (cr_schedule_active(&r->rc.schedule))       /* a function of the step: no retrace, resumes exactly */
            df_optimizer_set_learning_rate(r->model.opt, cr_schedule_lr(&r->rc.schedule, r->rc.model.learning_rate,
                                                                        r->progress.step));
        df_status st = o->custom_loop ? cr_custom_step(&r->model, &r->xt, &r->yt, &loss)
                                      : cr_fit_step(&r->model, &r->xt, &r->yt, &loss);
        if (st != DF_OK) return cr_dist_fail(st);
        bool stop = cr_dist_step(&loss, cr_stop_requested);   /* mean loss over ranks; all stop together */
        sum += loss;
        ran++;
        r->progress.step++;
        if (o->profile && ran == 1)        /* from the second step on: the first one traced */
            df_graph_set_profiling(cr_graph(&r->model, o->custom_loop ? "custom" : "fit"), true);
        if (r->csv) fprintf(r->csv, "%d,%lld,%.6f,\n", epoch + 1, (long long)r->progress.step, loss);
        if (o->custom_loop && i % 100 == 0) printf("Epoch %d Batch %lld Loss %.4f\n", epoch + 1, (long long)i, loss);
        else if (!o->custom_loop) show_progress(r, i + 1, total, now_seconds() - start, sum / (double)ran, i + 1 == total);
        if (stop && i + 1 < total) {
            if (!o->custom_loop && r->tty) printf("\n");
            r->progress.epoch_step = i + 1;
            break;
        }
    }
    *mean_loss = sum / (double)(ran ? ran : 1);
    if (o->custom_loop) printf("Epoch %d Loss %.4f\nTime taken for 1 epoch %.2f sec\n\n", epoch + 1, *mean_loss,
                               now_seconds() - start);
    return DF_OK;
}

static df_status train_epochs(run *r)
{
    const cr_train_opts *o = r->o;
    for (int epoch = r->progress.epoch; epoch < o->epochs; epoch++) {
        double mean, val = NAN;
        df_status st = run_epoch(r, epoch, &mean);
        if (st != DF_OK) return st;
        uint64_t hash;
        if (cr_dist_size() > 1) {                    /* the ranks must still hold the same weights */
            if ((st = cr_dist_check_weights(&r->model, &hash)) != DF_OK) return st;
            printf("Weights XXH64 %016llx on all %d ranks\n", (unsigned long long)hash, cr_dist_size());
        }
        bool stop = cr_dist_any(cr_stop_requested);
        bool partial = r->progress.epoch_step > 0;     /* stopped inside the epoch */
        if (!partial) r->progress.epoch = epoch + 1;
        if (r->has_val && !partial) {
            if ((st = evaluate(r, &val)) != DF_OK) return cr_dist_fail(st);
            printf("val_loss: %.4f\n", val);
            if (r->csv) fprintf(r->csv, "%d,%lld,,%.6f\n", epoch + 1, (long long)r->progress.step, val);
        }
        if (r->csv) fflush(r->csv);
        bool last = epoch + 1 == o->epochs || stop;
        if (!o->custom_loop || last || (epoch + 1) % o->checkpoint_every == 0)
            if ((st = save_checkpoint(r)) != DF_OK) return st;
        if (stop) {
            printf("Interrupted: stopped after step %lld with a checkpoint; --resume continues from there\n",
                   (long long)r->progress.step);
            break;
        }
    }
    return DF_OK;
}

static df_status resume(run *r)
{
    char path[4096];
    df_checkpoint *ck;
    df_status st = cr_dist_read_latest(r->o->checkpoint_dir, path, sizeof path, &ck);  /* rank 0 reads, broadcasts */
    if (st != DF_OK) return st;
    st = cr_load_run_from(ck, path, &r->rc, &r->text.vocab, &r->model, &r->train, &r->progress);
    df_checkpoint_free(ck);
    if ((st = cr_dist_agree(st)) == DF_OK && r->progress.epoch_step > 0)
        st = cr_dist_scatter_state(&r->model, &r->train);     /* this rank's rows of the saved state */
    if (st == DF_OK)
        printf("Resumed from %s (%d epochs done%s, step %lld, learning rate %g from the checkpoint)\n", path,
               r->progress.epoch, r->progress.epoch_step ? " and part of the next" : "", (long long)r->progress.step,
               df_optimizer_learning_rate(r->model.opt));
    return st;
}

/* Per-op share of the train step, largest first (char-rnn train --profile). */
static void print_profile(const run *r)
{
    df_graph *g = cr_graph(&r->model, r->o->custom_loop ? "custom" : "fit");
    df_op_profile prof[64];
    int64_t runs;
    int n = df_graph_profile(g, prof, 64, &runs);
    if (runs == 0) return;
    double total = 0;
    for (int i = 0; i < n && i < 64; i++) total += prof[i].seconds;
    printf("\nProfile over %lld steps (%.1f ms/step in ops):\n%-22s %6s %12s %7s\n", (long long)runs,
           1e3 * total / (double)runs, "op", "nodes", "ms/step", "share");
    for (int i = 0; i < n && i < 64; i++)
        printf("%-22s %6d %12.3f %6.1f%%\n", prof[i].op, prof[i].nodes, 1e3 * prof[i].seconds / (double)runs,
               total > 0 ? 100 * prof[i].seconds / total : 0);
}

df_status cr_train(const cr_train_opts *o)
{
    run r;
    df_status st = cr_dist_agree(open_run(&r, o));  /* collective: every rank passes or all stop with one message */
    if (st == DF_OK) st = cr_dist_check_same(r.text.ids, (size_t)r.text.n * sizeof *r.text.ids, "corpora (--data)");
    if (st == DF_OK && cr_dist_rank() == 0) st = cr_make_dirs(o->checkpoint_dir);     /* fail now, not after an epoch */
    if ((st = cr_dist_agree(st)) == DF_OK) {
        printf("Corpus: %lld chars, %d distinct; %lld steps per epoch (batch %d, seq %d, %s batching)\n",
               (long long)r.text.n, r.text.vocab.size, (long long)r.train.steps_per_epoch, o->batch, o->seq,
               o->batching == CR_SHUFFLE ? "shuffle" : "streams");
        char model[160];
        cr_config_describe(&r.rc.model, model, sizeof model);
        printf("Model: %s; %s\n", model, cr_schedule_describe(&r.rc.schedule, r.rc.model.learning_rate).text);
        if (cr_dist_size() > 1)
            printf("Data parallel: %d processes x %d rows per batch; gradients averaged by one %.3g MB all-reduce per step\n",
                   cr_dist_size(), r.train.rows, 4e-6 * (double)cr_model_param_count(&r.model));
        st = o->resume ? resume(&r) : untrained_loss(&r);
    }
    if (st == DF_OK && cr_dist_size() > 1) st = cr_dist_check_weights(&r.model, NULL);   /* same start everywhere */
    if (st == DF_OK) st = cr_dist_agree(open_csv(&r));
    if (st == DF_OK) st = train_epochs(&r);
    if (st == DF_OK && o->custom_loop)
        printf("train_step traces: %d\n", cr_trace_count(&r.model, "custom"));
    if (st == DF_OK && o->profile) print_profile(&r);
    if (r.csv) {
        fclose(r.csv);
        r.csv = NULL;
    }
    if (st == DF_OK && o->csv && *o->csv && o->plot && *o->plot && cr_dist_rank() == 0) {
        st = df_plot_loss_csv(o->csv, o->plot);
        if (st == DF_OK) printf("Loss curve: %s (data: %s)\n", o->plot, o->csv);
    }
    close_run(&r);
    return st;
}
