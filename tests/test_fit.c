/* test_fit.c — df_fit and the learning-rate schedules: training, exact resume
 * (after an epoch, inside one, after a crash that lost a checkpoint),
 * validation, early stopping, CSV/SVG output, signals, every error path, and
 * the data-parallel hooks (df_fit_comm) as rank 1 sees them; the hooks over
 * MPI are tested in test_mpi.c. */
#define _GNU_SOURCE            /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"
#include "base.h"      /* df_fail_alloc_after: the allocation-failure hook */

/* ------------------------------------------------------ a toy regression */

enum { N_POINTS = 64, BATCH = 8, STEPS = N_POINTS / BATCH };

/* y = 3x + 2 over fixed points, in an order reshuffled each epoch by its
 * own RNG (what a checkpoint must carry to resume inside an epoch). */
typedef struct data {
    float x[N_POINTS], y[N_POINTS];
    int order[N_POINTS];
    int pos;
    df_rng rng;
    bool shuffle;
    float bx[BATCH], by[BATCH];
    int64_t calls;           /* next() calls that gave a batch */
    int64_t stop_at_call;    /* df_fit_request_stop on this call (0: never) */
    int signal_at_call;      /* raise(SIGTERM) on this call (0: never) */
    int fail_at_call;        /* fail on this call (0: never) */
    float lr_seen[64];       /* the optimizer's rate at each call */
    df_optimizer *opt;
} data;

static void data_init(data *d, uint64_t seed, bool shuffle)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < N_POINTS; i++) {
        d->x[i] = -1.0f + 2.0f * (float)i / (N_POINTS - 1);
        d->y[i] = 3.0f * d->x[i] + 2.0f + 0.1f * (float)((i * 37) % 11 - 5) / 5.0f;
        d->order[i] = i;
    }
    df_rng_seed(&d->rng, seed);
    d->shuffle = shuffle;
}

static void data_start_epoch(void *user)
{
    data *d = user;
    d->pos = 0;
    for (int i = N_POINTS - 1; d->shuffle && i > 0; i--) {
        int j = (int)df_rng_below(&d->rng, (uint32_t)i + 1), t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
}

static df_status data_next(void *user, df_tensor *in, bool *end)
{
    data *d = user;
    if (d->pos + BATCH > N_POINTS) {
        *end = true;
        return DF_OK;
    }
    d->calls++;
    if (d->calls == d->fail_at_call) return df_error(DF_ERR_IO, "the disk went away");
    if (d->calls == d->stop_at_call) df_fit_request_stop();
    if (d->calls == d->signal_at_call) raise(SIGTERM);
    if (d->opt && d->calls <= 64) d->lr_seen[d->calls - 1] = df_optimizer_learning_rate(d->opt);
    for (int i = 0; i < BATCH; i++) {
        d->bx[i] = d->x[d->order[d->pos + i]];
        d->by[i] = d->y[d->order[d->pos + i]];
    }
    d->pos += BATCH;
    in[0] = F32(d->bx, BATCH, 1);
    in[1] = F32(d->by, BATCH, 1);
    return DF_OK;
}

/* Position, order and RNG: all a resume inside an epoch needs. */
typedef struct data_record { int pos; int order[N_POINTS]; df_rng rng; } data_record;

static df_status data_save(void *user, df_checkpoint *ck)
{
    data *d = user;
    data_record rec = {.pos = d->pos, .rng = d->rng};
    memcpy(rec.order, d->order, sizeof rec.order);
    return df_checkpoint_put_blob(ck, "data/position", &rec, sizeof rec);
}

static df_status data_restore(void *user, const df_checkpoint *ck)
{
    data *d = user;
    const void *p;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "data/position", &p, &len);
    if (st != DF_OK) return st;
    if (len != sizeof(data_record)) return df_error(DF_ERR_FORMAT, "bad data/position record");
    data_record rec;
    memcpy(&rec, p, sizeof rec);
    d->pos = rec.pos;
    d->rng = rec.rng;
    memcpy(d->order, rec.order, sizeof rec.order);
    return DF_OK;
}

typedef struct toy {
    df_variable *w, *b, *vars[2];
    df_optimizer *opt;
    df_function *step, *eval;
    data train, val;
    int resets;
    int epochs_seen;
    double last_logged_loss;
} toy;

static df_node *toy_loss(df_graph *g, toy *m, df_node **in)
{
    df_node *pred = df_add(g, df_matmul(g, in[0], df_var(g, m->w), false, false), df_var(g, m->b));
    return df_mean(g, df_square(g, df_sub(g, pred, in[1])), NULL, 0, false);
}

static df_status build_step(df_graph *g, df_node **in, void *user)
{
    toy *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *loss = toy_loss(g, m, in);
    df_tape_end(tape);
    df_node *grads[2];
    if (df_tape_gradient(tape, loss, 2, m->vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 2, m->vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static df_status build_eval(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, toy_loss(g, user, in));
    return df_graph_status(g);
}

static void toy_reset(void *user) { ((toy *)user)->resets++; }

static df_status toy_epoch_end(void *user, const df_fit_logs *logs)
{
    toy *m = user;
    m->epochs_seen = logs->epoch;
    m->last_logged_loss = logs->loss;
    return DF_OK;
}

/* A fresh model: w and b start from init_value, Adam (slots to resume). */
static void toy_init(toy *m, float init_value, float lr)
{
    memset(m, 0, sizeof *m);
    m->w = df_variable_new("dense/kernel", DF_F32, 2, SHAPE(1, 1), df_init_constant(init_value), NULL);
    m->b = df_variable_new("dense/bias", DF_F32, 1, SHAPE(1), df_init_constant(init_value), NULL);
    cr_assert(m->w && m->b, "%s", df_last_error());
    m->vars[0] = m->w;
    m->vars[1] = m->b;
    m->opt = df_adam_new(lr, 0.9f, 0.999f, 1e-7f);
    m->step = df_function_new("toy_step", build_step, m);
    m->eval = df_function_new("toy_eval", build_eval, m);
    data_init(&m->train, 7, true);
    data_init(&m->val, 9, false);
}

static void toy_free(toy *m)
{
    df_function_free(m->step);
    df_function_free(m->eval);
    df_optimizer_free(m->opt);
    df_variable_free(m->w);
    df_variable_free(m->b);
}

static df_fit_options toy_options(toy *m, int epochs)
{
    return (df_fit_options){
        .train_step = m->step, .eval_step = m->eval, .n_inputs = 2, .optimizer = m->opt,
        .n_variables = 2, .variables = m->vars,
        .train = {.next = data_next, .start_epoch = data_start_epoch, .save = data_save, .restore = data_restore,
                  .user = &m->train},
        .epochs = epochs, .progress = DF_FIT_PROGRESS_NONE, .reset_states = toy_reset,
        .on_epoch_end = toy_epoch_end, .user = m,
    };
}

static float value_of(const df_variable *v) { return *(const float *)df_variable_tensor(v).data; }

/* ------------------------------------------------------------- scratch dir */

static char dir[64];

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) { return remove(path); }

static void make_dir(void)
{
    strcpy(dir, "/tmp/dffit.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) { nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS); }

TestSuite(fit, .init = make_dir, .fini = remove_dir);
TestSuite(schedule);

static const char *in_dir(const char *name)
{
    static char path[2][128];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

/* Weights after an uninterrupted run of `epochs`. */
static void reference_weights(int epochs, float *w, float *b)
{
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, epochs);
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    *w = value_of(m.w);
    *b = value_of(m.b);
    toy_free(&m);
}

/* -------------------------------------------------------------- training */

Test(fit, trains_and_reports_each_epoch)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 40);
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect_eq(h.epochs_done, 40);
    cr_expect_eq(h.steps, 40 * STEPS);
    cr_expect_eq(h.epoch_step, 0);
    cr_expect(!h.resumed && !h.interrupted && !h.stopped_early);
    cr_expect_eq(df_optimizer_iterations(m.opt), 40 * STEPS);
    cr_expect(fabsf(value_of(m.w) - 3.0f) < 0.1f && fabsf(value_of(m.b) - 2.0f) < 0.1f, "w %g b %g",
              value_of(m.w), value_of(m.b));
    cr_expect_lt(h.loss, 0.05, "final loss %g", h.loss);
    cr_expect_eq(m.epochs_seen, 40, "on_epoch_end saw %d epochs", m.epochs_seen);
    cr_expect_eq(m.last_logged_loss, h.loss);
    cr_expect_eq(m.resets, 40, "reset_states once per epoch without validation, got %d", m.resets);
    cr_expect(isnan(h.val_loss));
    toy_free(&m);
}

Test(fit, steps_per_epoch_caps_an_epoch)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 3);
    o.steps_per_epoch = 5;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect_eq(h.steps, 15);
    cr_expect_eq(m.train.calls, 15);
    toy_free(&m);
}

Test(fit, validation_loss_is_the_mean_over_the_validation_batches)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 2);
    o.validation = (df_fit_data){.next = data_next, .start_epoch = data_start_epoch, .user = &m.val};
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    /* the same mean, by hand, with the final weights */
    double sum = 0;
    for (int i = 0; i < N_POINTS; i += BATCH) {
        double batch = 0;
        for (int k = i; k < i + BATCH; k++) {
            float e = value_of(m.w) * m.val.x[k] + value_of(m.b) - m.val.y[k];
            batch += (double)e * e;
        }
        sum += batch / BATCH;
    }
    double expected = sum / STEPS;
    cr_expect(fabs(h.val_loss - expected) < 1e-5 * fmax(1, expected), "val_loss %.7g, by hand %.7g", h.val_loss,
              expected);
    cr_expect_eq(m.resets, 2 * 3, "epoch start, before and after validation, each epoch; got %d", m.resets);
    toy_free(&m);
}

/* ---------------------------------------------------------------- resume */

Test(fit, resume_after_an_epoch_gives_the_uninterrupted_weights)
{
    float w_ref, b_ref;
    reference_weights(6, &w_ref, &b_ref);
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 3);
    o.checkpoint_dir = dir;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect_str_eq(h.last_checkpoint, in_dir("ckpt_3"));
    cr_expect_eq(access(in_dir("ckpt_1"), F_OK), 0, "checkpoint_every defaults to every epoch");
    toy_free(&m);

    toy_init(&m, -7.0f, 0.05f);               /* other weights, fresh optimizer and data */
    o = toy_options(&m, 6);
    o.checkpoint_dir = dir;
    o.resume = true;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect(h.resumed);
    cr_expect_eq(h.epochs_done, 6);
    cr_expect_eq(h.steps, 6 * STEPS);
    cr_expect_eq(m.train.calls, 3 * STEPS, "the resumed run ran only the remaining epochs");
    cr_expect_eq(value_of(m.w), w_ref, "w %.9g vs %.9g uninterrupted", value_of(m.w), w_ref);
    cr_expect_eq(value_of(m.b), b_ref, "b %.9g vs %.9g uninterrupted", value_of(m.b), b_ref);
    toy_free(&m);
}

Test(fit, stop_inside_an_epoch_checkpoints_and_resumes_exactly)
{
    float w_ref, b_ref;
    reference_weights(4, &w_ref, &b_ref);
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 4);
    o.checkpoint_dir = dir;
    o.csv_path = in_dir("losses.csv");
    m.train.stop_at_call = STEPS + 3;          /* in epoch 2, after its third step */
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect(h.interrupted);
    cr_expect_eq(h.epochs_done, 1);
    cr_expect_eq(h.epoch_step, 3);
    cr_expect_eq(h.steps, STEPS + 3);
    cr_expect_str_eq(h.last_checkpoint, in_dir("ckpt_2"), "the epoch in progress names the checkpoint");
    toy_free(&m);

    toy_init(&m, 9.0f, 0.05f);
    o = toy_options(&m, 4);
    o.checkpoint_dir = dir;
    o.csv_path = in_dir("losses.csv");
    o.resume = true;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect_eq(h.steps, 4 * STEPS);
    cr_expect_eq(m.train.calls, 4 * STEPS - (STEPS + 3));
    cr_expect_eq(m.resets, 2, "no reset entering the resumed epoch, then one per new epoch; got %d", m.resets);
    cr_expect_eq(value_of(m.w), w_ref, "w %.9g vs %.9g uninterrupted", value_of(m.w), w_ref);
    cr_expect_eq(value_of(m.b), b_ref, "b %.9g vs %.9g uninterrupted", value_of(m.b), b_ref);
    toy_free(&m);
}

/* Steps of the CSV's training rows, in order; returns how many. */
static int csv_steps(const char *path, long long *steps, int cap)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char line[256];
    int n = 0;
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_expect_str_eq(line, "epoch,step,loss,val_loss\n");
    while (fgets(line, sizeof line, f)) {
        int epoch;
        long long step;
        char loss[64];
        if (sscanf(line, "%d,%lld,%63[^,\n]", &epoch, &step, loss) == 3 && n < cap) steps[n++] = step;
    }
    fclose(f);
    return n;
}

Test(fit, after_a_crash_the_csv_has_each_step_once)
{
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 3);
    o.checkpoint_dir = dir;
    o.checkpoint_every = 2;
    o.csv_path = in_dir("losses.csv");
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    toy_free(&m);
    cr_assert_eq(unlink(in_dir("ckpt_3")), 0, "checkpoints 2 and 3 (the last) were written");
    cr_expect_neq(access(in_dir("ckpt_1"), F_OK), 0, "checkpoint_every 2 skips epoch 1");

    toy_init(&m, 0.5f, 0.05f);     /* as if killed after epoch 3's rows, before its checkpoint */
    o = toy_options(&m, 4);
    o.checkpoint_dir = dir;
    o.csv_path = in_dir("losses.csv");
    o.resume = true;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    toy_free(&m);
    long long steps[256];
    int n = csv_steps(in_dir("losses.csv"), steps, 256);
    cr_expect_eq(n, 4 * STEPS, "rows: %d", n);
    for (int i = 0; i < n; i++) cr_expect_eq(steps[i], i + 1, "row %d has step %lld", i, steps[i]);
}

Test(fit, sigterm_stops_with_a_checkpoint_and_the_handler_is_restored)
{
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 3);
    o.checkpoint_dir = dir;
    o.handle_signals = true;
    m.train.signal_at_call = 4;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect(h.interrupted);
    cr_expect_eq(h.steps, 4);
    cr_expect_eq(access(in_dir("ckpt_1"), F_OK), 0);
    struct sigaction now;
    sigaction(SIGTERM, NULL, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL, "df_fit left its SIGTERM handler installed");
    toy_free(&m);
}

/* ------------------------------------------------ early stopping, schedules */

Test(fit, early_stopping_ends_when_the_loss_stops_improving)
{
    toy m;
    toy_init(&m, 0.5f, 0.0f);          /* learning rate 0: the loss never improves */
    df_fit_options o = toy_options(&m, 20);
    o.early_stopping_patience = 2;
    o.early_stopping_min_delta = 1e-6;    /* shuffled batches change the sum's rounding */
    o.checkpoint_dir = dir;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect(h.stopped_early);
    cr_expect_eq(h.epochs_done, 3, "the first epoch sets the best, two more without improvement; got %d",
                 h.epochs_done);
    cr_expect_eq(access(in_dir("ckpt_3"), F_OK), 0, "stopping early checkpoints");
    cr_expect(isfinite(h.best) && fabs(h.best - h.loss) < 1e-6, "best %g, last %g", h.best, h.loss);
    toy_free(&m);
}

Test(fit, a_schedule_sets_the_rate_before_each_step)
{
    toy m;
    toy_init(&m, 0.5f, 0.1f);
    m.train.opt = m.opt;
    df_fit_options o = toy_options(&m, 2);
    o.schedule = (df_lr_schedule){.kind = DF_LR_COSINE, .warmup_steps = 3, .decay_steps = 10};
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    for (int s = 0; s < 2 * STEPS; s++)
        cr_expect_float_eq(m.train.lr_seen[s], df_lr_schedule_rate(&o.schedule, 0.1f, s), 1e-9f, "step %d", s);
    cr_expect_float_eq(m.train.lr_seen[0], 0.1f / 3, 1e-8f);
    toy_free(&m);
}

Test(schedule, reference_values)
{
    df_lr_schedule constant = {0}, warm = {.warmup_steps = 4};
    df_lr_schedule step = {.kind = DF_LR_STEP, .decay_steps = 3, .decay_rate = 0.5f};
    df_lr_schedule cosine = {.kind = DF_LR_COSINE, .warmup_steps = 2, .decay_steps = 4};
    cr_expect(!df_lr_schedule_active(&constant) && df_lr_schedule_active(&warm) && df_lr_schedule_active(&step));
    cr_expect_float_eq(df_lr_schedule_rate(&constant, 0.1f, 12345), 0.1f, 1e-9f);
    float w[] = {0.025f, 0.05f, 0.075f, 0.1f, 0.1f};
    for (int s = 0; s < 5; s++) cr_expect_float_eq(df_lr_schedule_rate(&warm, 0.1f, s), w[s], 1e-8f, "warm-up %d", s);
    float st[] = {0.1f, 0.1f, 0.1f, 0.05f, 0.05f, 0.05f, 0.025f};
    for (int s = 0; s < 7; s++) cr_expect_float_eq(df_lr_schedule_rate(&step, 0.1f, s), st[s], 1e-8f, "step %d", s);
    /* warm-up 0.05, 0.1; then 0.1 (1 + cos(pi k / 4)) / 2 for k = 0..4, and 0 after */
    float co[] = {0.05f, 0.1f, 0.1f, 0.085355339f, 0.05f, 0.014644661f, 0.0f, 0.0f};
    for (int s = 0; s < 8; s++) cr_expect_float_eq(df_lr_schedule_rate(&cosine, 0.1f, s), co[s], 1e-7f, "cosine %d", s);
    /* nanoGPT's: lr 1e-3 to min_lr 1e-4, warm-up 100, lr_decay_iters 5000 */
    df_lr_schedule nano = {.kind = DF_LR_COSINE, .warmup_steps = 100, .decay_steps = 4900, .min_ratio = 0.1f};
    const int its[] = {0, 99, 100, 2550, 5000, 6000};
    for (int k = 0; k < 6; k++) {
        int it = its[k];
        double want = it < 100 ? 1e-3 * (it + 1) / 100
                    : it >= 5000 ? 1e-4 : 1e-4 + 0.5 * (1 + cos(M_PI * (it - 100) / 4900.0)) * (1e-3 - 1e-4);
        cr_expect_float_eq(df_lr_schedule_rate(&nano, 1e-3f, it), (float)want, 1e-9f, "nanoGPT iter %d", it);
    }
}

Test(schedule, bad_settings_name_the_field)
{
    df_lr_schedule s = {.kind = DF_LR_COSINE};
    cr_expect_eq(df_lr_schedule_check(&s), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "decay_steps"), "%s", df_last_error());
    s = (df_lr_schedule){.kind = DF_LR_STEP, .decay_steps = 10, .decay_rate = 0};
    cr_expect_eq(df_lr_schedule_check(&s), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "decay_rate"), "%s", df_last_error());
    s = (df_lr_schedule){.warmup_steps = -1};
    cr_expect_eq(df_lr_schedule_check(&s), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "warmup_steps"), "%s", df_last_error());
    s = (df_lr_schedule){.kind = DF_LR_COSINE, .decay_steps = 10, .min_ratio = 1};
    cr_expect_eq(df_lr_schedule_check(&s), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "min_ratio"), "%s", df_last_error());
    s = (df_lr_schedule){.kind = (df_lr_kind)7};
    cr_expect_eq(df_lr_schedule_check(&s), DF_ERR_ARG);
}

/* ------------------------------------------------------------ output files */

Test(fit, writes_a_csv_and_an_svg_loss_curve)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 2);
    o.validation = (df_fit_data){.next = data_next, .start_epoch = data_start_epoch, .user = &m.val};
    o.csv_path = in_dir("losses.csv");
    o.plot_path = in_dir("loss.svg");
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    long long steps[64];
    cr_expect_eq(csv_steps(o.csv_path, steps, 64), 2 * STEPS);
    FILE *f = fopen(o.plot_path, "r");
    cr_assert_not_null(f);
    char head[5] = {0};
    cr_expect_eq(fread(head, 1, 4, f), 4);
    fclose(f);
    cr_expect_str_eq(head, "<svg");
    toy_free(&m);
}

Test(fit, progress_lines_on_a_stream)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 2);
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.progress = DF_FIT_PROGRESS_AUTO;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    fclose(o.out);
    cr_expect(strstr(text, "Epoch 1/2\n") && strstr(text, "Epoch 2/2\n"), "%s", text);
    cr_expect(strstr(text, "8/8 - "), "no last-step line in:\n%s", text);
    cr_expect(strstr(text, " - loss: "), "%s", text);
    free(text);
    toy_free(&m);
}

/* ------------------------------------------------------------------ errors */

static void expect_error(df_status got, df_status want, const char *fragment)
{
    cr_expect_eq(got, want, "status %s, expected %s (%s)", df_status_name(got), df_status_name(want), df_last_error());
    cr_expect(strstr(df_last_error(), fragment), "message \"%s\" lacks \"%s\"", df_last_error(), fragment);
}

Test(fit, bad_options_name_the_field)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.train_step = NULL;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "train_step");
    o = toy_options(&m, 1);
    o.n_inputs = 0;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "n_inputs");
    o = toy_options(&m, 1);
    o.train.next = NULL;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "train.next");
    o = toy_options(&m, 1);
    o.train.restore = NULL;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "train.save and train.restore");
    o = toy_options(&m, 1);
    o.validation.next = data_next;
    o.eval_step = NULL;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "eval_step");
    o = toy_options(&m, 1);
    o.resume = true;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "checkpoint_dir");
    o = toy_options(&m, 1);
    o.plot_path = in_dir("x.svg");
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "csv_path");
    o = toy_options(&m, 1);
    o.epochs = -1;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "epochs");
    o = toy_options(&m, 1);
    o.schedule.kind = DF_LR_COSINE;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "decay_steps");
    o = toy_options(&m, 1);
    o.n_variables = 3;
    o.variables = NULL;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "variables");
    expect_error(df_fit(NULL, NULL), DF_ERR_ARG, "NULL options");
    cr_expect_eq(m.train.calls, 0, "no step ran with bad options");
    toy_free(&m);
}

Test(fit, unwritable_outputs_fail_before_training)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.csv_path = "/nonexistent-dir/losses.csv";
    expect_error(df_fit(&o, NULL), DF_ERR_IO, "/nonexistent-dir/losses.csv");
    o = toy_options(&m, 1);
    o.csv_path = in_dir("losses.csv");
    o.plot_path = "/nonexistent-dir/loss.svg";
    expect_error(df_fit(&o, NULL), DF_ERR_IO, "loss curve");
    cr_expect_eq(m.train.calls, 0, "no step ran");
    toy_free(&m);
}

Test(fit, resume_errors_name_what_is_wrong)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.checkpoint_dir = dir;
    o.resume = true;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "resume with nothing to resume starts a new run: %s", df_last_error());
    cr_expect(!h.resumed && h.epochs_done == 1, "a new run, not a resumed one");
    toy_free(&m);

    /* a model whose kernel has another shape */
    toy_init(&m, 0.0f, 0.05f);
    df_variable_free(m.w);
    m.w = m.vars[0] = df_variable_new("dense/kernel", DF_F32, 2, SHAPE(1, 2), df_init_zeros(), NULL);
    o = toy_options(&m, 2);
    o.checkpoint_dir = dir;
    o.resume = true;
    df_status st = df_fit(&o, NULL);
    cr_expect_eq(st, DF_ERR_SHAPE, "%s", df_last_error());
    cr_expect(strstr(df_last_error(), "dense/kernel") && strstr(df_last_error(), "ckpt_1"), "%s", df_last_error());
    toy_free(&m);
}

static df_status wrong_extra(void *user, const df_checkpoint *ck)
{
    return df_error(DF_ERR_STATE, "this run has vocab=66, the checkpoint vocab=65");
}

Test(fit, a_restore_extra_refusal_names_the_checkpoint)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.checkpoint_dir = dir;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    o.resume = true;
    o.epochs = 2;
    o.restore_extra = wrong_extra;
    df_status st = df_fit(&o, NULL);
    cr_expect_eq(st, DF_ERR_STATE);
    cr_expect(strstr(df_last_error(), "ckpt_1") && strstr(df_last_error(), "vocab=66"), "%s", df_last_error());
    toy_free(&m);
}

static df_status build_vector_loss(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, df_square(g, in[0]));
    return df_graph_status(g);
}

Test(fit, a_step_that_does_not_output_a_scalar_loss_is_an_error)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_function *bad = df_function_new("vector_step", build_vector_loss, NULL);
    df_fit_options o = toy_options(&m, 1);
    o.train_step = bad;
    expect_error(df_fit(&o, NULL), DF_ERR_SHAPE, "scalar f32 loss");
    df_function_free(bad);
    toy_free(&m);
}

Test(fit, data_errors_and_nan_losses_stop_the_run)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    m.train.fail_at_call = 3;
    df_fit_options o = toy_options(&m, 1);
    expect_error(df_fit(&o, NULL), DF_ERR_IO, "training data failed at step 3: the disk went away");
    toy_free(&m);

    toy_init(&m, NAN, 0.05f);
    o = toy_options(&m, 1);
    o.terminate_on_nan = true;
    df_fit_history h;
    expect_error(df_fit(&o, &h), DF_ERR_STATE, "terminate_on_nan");
    cr_expect_eq(h.steps, 0, "stopped at the first step");
    toy_free(&m);
}

/* ------------------------------------------------------ data parallel hooks */

/* Rank 1 of 2 whose partner holds the same values: sums double them, rank
 * 0's broadcast is this rank's own bytes, errors are this rank's. */
static df_status twin_sum(void *user, double *v, int n)
{
    (*(int *)user)++;
    for (int i = 0; i < n; i++) v[i] *= 2;
    return DF_OK;
}
static df_status twin_agree(void *user, df_status st) { return st; }
static df_status twin_broadcast(void *user, void **data, size_t *len)
{
    void *copy = malloc(*len);
    cr_assert_not_null(copy);
    memcpy(copy, *data, *len);
    *data = copy;
    return DF_OK;
}

Test(fit, a_rank_other_than_0_trains_alike_but_writes_and_prints_nothing)
{
    float w_ref, b_ref;
    reference_weights(2, &w_ref, &b_ref);
    int sums = 0;
    df_fit_comm twin = {.rank = 1, .size = 2, .sum = twin_sum, .agree = twin_agree, .broadcast = twin_broadcast,
                        .user = &sums};
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 2);
    o.comm = &twin;
    char run[128], csv[128], svg[128];            /* in_dir keeps two paths at a time */
    o.checkpoint_dir = strcpy(run, in_dir("run"));
    o.csv_path = strcpy(csv, in_dir("losses.csv"));
    o.plot_path = strcpy(svg, in_dir("loss.svg"));
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.progress = DF_FIT_PROGRESS_AUTO;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    fclose(o.out);
    cr_expect_eq(len, 0, "rank 1 printed: %s", text);
    free(text);
    cr_expect_neq(access(in_dir("run"), F_OK), 0, "rank 1 created the checkpoint directory");
    cr_expect_neq(access(in_dir("losses.csv"), F_OK), 0, "rank 1 wrote the CSV");
    cr_expect_neq(access(in_dir("loss.svg"), F_OK), 0, "rank 1 wrote the SVG");
    cr_expect_str_eq(h.last_checkpoint, in_dir("run/ckpt_2"));
    cr_expect_eq(h.steps, 2 * STEPS);
    cr_expect(sums >= 2 * 2 * STEPS, "two sums per step at least, got %d", sums);
    cr_expect_eq(value_of(m.w), w_ref, "the mean of two equal losses changes nothing: w %.9g vs %.9g", value_of(m.w),
                 w_ref);
    cr_expect_eq(value_of(m.b), b_ref);
    toy_free(&m);
}

Test(fit, a_bad_comm_is_an_argument_error)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    int sums = 0;
    df_fit_comm c = {.rank = 2, .size = 2, .sum = twin_sum, .agree = twin_agree, .broadcast = twin_broadcast,
                     .user = &sums};
    df_fit_options o = toy_options(&m, 1);
    o.comm = &c;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "rank 2 of size 2");
    c.rank = 0;
    c.agree = NULL;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "sum, agree and broadcast");
    cr_expect_eq(m.train.calls, 0, "no step ran");
    toy_free(&m);
}

/* --------------------------------------------------- one run per directory */

Test(fit, a_second_run_on_a_locked_directory_is_refused_naming_the_holder)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.checkpoint_dir = dir;
    /* another process's run: hold the lock the way df_fit does */
    int fd = open(in_dir(".lock"), O_RDWR | O_CREAT, 0666);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    cr_assert_eq(write(fd, "4242\n", 5), 5);
    expect_error(df_fit(&o, NULL), DF_ERR_STATE, "in use by another run (process 4242)");
    cr_expect_eq(m.train.calls, 0, "no step ran");
    close(fd);
    cr_expect_eq(df_fit(&o, NULL), DF_OK, "the lock is free again: %s", df_last_error());
    toy_free(&m);
}

Test(fit, a_new_run_never_mixes_with_another_runs_checkpoints)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 3);
    o.checkpoint_dir = dir;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    toy_free(&m);
    toy_init(&m, 0.0f, 0.05f);
    o = toy_options(&m, 1);
    o.checkpoint_dir = dir;
    expect_error(df_fit(&o, NULL), DF_ERR_STATE, "already holds a run (up to ckpt_3)");
    cr_expect_eq(m.train.calls, 0, "no step ran");
    o.overwrite = true;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect_eq(access(in_dir("ckpt_3"), F_OK), -1, "overwrite removed the old run's checkpoints");
    cr_expect_eq(access(in_dir("ckpt_1"), F_OK), 0);
    cr_expect_eq(h.epochs_done, 1);
    toy_free(&m);
}

Test(fit, temp_files_of_a_dead_write_are_removed)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.checkpoint_dir = dir;
    FILE *f = fopen(in_dir("ckpt_7.tmp.99999"), "w");
    cr_assert_not_null(f);
    fputs("half a checkpoint", f);
    fclose(f);
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    cr_expect_eq(access(in_dir("ckpt_7.tmp.99999"), F_OK), -1, "the stale temp file is gone");
    cr_expect_eq(access(in_dir("ckpt_1"), F_OK), 0);
    toy_free(&m);
}

/* ------------------------------------------- per-rank variables and hooks */

/* Rank 0 of 2 whose partner's copy of every float is this rank's + 100:
 * sums double (as the twin's), the broadcast is this rank's own, errors are
 * this rank's. */
static int gathers;
static df_status leader_gather(void *user, const void *mine, size_t len, void *all)
{
    gathers++;
    memcpy(all, mine, len);
    for (size_t i = 0; i < len / sizeof(float); i++) ((float *)all)[len / sizeof(float) + i] = ((const float *)mine)[i] + 100;
    return DF_OK;
}
static df_status leader_broadcast(void *user, void **data, size_t *len) { return DF_OK; }

/* Rank 1 of 2, whose rank 0 sends the checkpoint as df_fit's resume does:
 * "<path>\0<bytes>". */
typedef struct follower { int sums; char path[128]; } follower;
static df_status follower_broadcast(void *user, void **data, size_t *len)
{
    const char *path = ((follower *)user)->path;
    if (*data) return twin_broadcast(user, data, len);    /* not the checkpoint: the settings, a hash */
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char *buf = malloc(strlen(path) + 1 + (1 << 20));
    cr_assert_not_null(buf);
    strcpy(buf, path);
    *len = strlen(path) + 1 + fread(buf + strlen(path) + 1, 1, 1 << 20, f);
    fclose(f);
    *data = buf;
    return DF_OK;
}
static df_status follower_gather(void *user, const void *mine, size_t len, void *all)
{
    cr_expect_null(all, "only rank 0 receives");
    return DF_OK;
}

/* A (2,1) "carried state" with values a, a+1. */
static df_variable *rank_state(int rows, float a)
{
    df_variable *v = df_variable_new("state/h", DF_F32, 2, SHAPE(rows, 1), df_init_zeros(), NULL);
    cr_assert_not_null(v, "%s", df_last_error());
    for (int i = 0; i < rows; i++) ((float *)df_variable_tensor(v).data)[i] = a + (float)i;
    return v;
}

static float at(const df_variable *v, int i) { return ((const float *)df_variable_tensor(v).data)[i]; }

Test(fit, rank_variables_hold_every_ranks_rows_and_each_rank_gets_its_own_back)
{
    int calls = 0;
    df_fit_comm lead = {.rank = 0, .size = 2, .sum = twin_sum, .agree = twin_agree, .broadcast = leader_broadcast,
                        .gather = leader_gather, .user = &calls};
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_variable *state = rank_state(2, 1.0f);
    df_fit_options o = toy_options(&m, 1);
    o.comm = &lead;
    o.n_rank_variables = 1;
    o.rank_variables = &state;
    o.checkpoint_dir = dir;
    o.check_weights = true;
    o.validation = (df_fit_data){.next = data_next, .start_epoch = data_start_epoch, .user = &m.val};
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.progress = DF_FIT_PROGRESS_MESSAGES;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    fclose(o.out);
    cr_expect_eq(gathers, 1, "one gather for one checkpoint, got %d", gathers);
    const char *weights = strstr(text, "Weights XXH64 "), *val = strstr(text, "val_loss: ");
    cr_expect(weights && strstr(text, " on all 2 ranks\n"), "no weights line in:\n%s", text);
    cr_expect(weights && val && weights < val, "the weights line comes before val_loss, as the epoch's training ends:\n%s",
              text);
    free(text);
    df_checkpoint *ck;
    cr_assert_eq(df_checkpoint_read(in_dir("ckpt_1"), &ck), DF_OK, "%s", df_last_error());
    df_variable *all = rank_state(4, 0.0f), *half = rank_state(2, 0.0f);
    cr_assert_eq(df_checkpoint_restore_variable(ck, all), DF_OK, "the checkpoint holds both ranks' rows: %s",
                 df_last_error());
    cr_expect(at(all, 0) == 1 && at(all, 1) == 2 && at(all, 2) == 101 && at(all, 3) == 102,
              "rank 0's rows, then rank 1's: %g %g %g %g", at(all, 0), at(all, 1), at(all, 2), at(all, 3));
    cr_expect_neq(df_checkpoint_restore_variable(ck, half), DF_OK, "not one rank's (2,1) alone");
    df_checkpoint_free(ck);
    toy_free(&m);

    /* rank 1 resumes: its rows are the second half */
    follower f = {0};
    snprintf(f.path, sizeof f.path, "%s", in_dir("ckpt_1"));
    df_fit_comm follow = {.rank = 1, .size = 2, .sum = twin_sum, .agree = twin_agree, .broadcast = follower_broadcast,
                          .gather = follower_gather, .user = &f};
    toy_init(&m, 0.5f, 0.05f);
    o = toy_options(&m, 1);
    o.comm = &follow;
    o.n_rank_variables = 1;
    o.rank_variables = &half;
    o.checkpoint_dir = dir;
    o.resume = true;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    cr_expect(at(half, 0) == 101 && at(half, 1) == 102, "rank 1 got %g %g", at(half, 0), at(half, 1));
    toy_free(&m);

    /* one process resumes with the whole batch's rows */
    toy_init(&m, 0.5f, 0.05f);
    o = toy_options(&m, 1);
    o.n_rank_variables = 1;
    df_variable *whole = rank_state(4, 0.0f);
    o.rank_variables = &whole;
    o.checkpoint_dir = dir;
    o.resume = true;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    cr_expect(at(whole, 0) == 1 && at(whole, 3) == 102, "one process got %g .. %g", at(whole, 0), at(whole, 3));
    toy_free(&m);
    df_variable_free(whole);
    df_variable_free(all);
    df_variable_free(half);
    df_variable_free(state);
}

/* A stateful model's hooks on a (2,1) carried state: each step leaves its
 * step number in it, reset_states zeroes it. */
static df_variable *carried;

static void set_carried(float a, float b)
{
    float v[2] = {a, b};
    const df_tensor t = df_tensor_make(DF_F32, v, 2, SHAPE(2, 1));
    cr_assert_eq(df_variable_assign(carried, &t), DF_OK, "%s", df_last_error());
}

static void zero_carried(void *user)
{
    ((toy *)user)->resets++;
    set_carried(0, 0);
}

static df_status carry_step_number(void *user, const df_fit_step_logs *logs)
{
    (void)user;
    set_carried((float)logs->step, -(float)logs->step);
    return DF_OK;
}

/* The toy as a stateful model: the (2,1) carried state (a new one in
 * carried), reset by reset_states, validation and checkpoints in dir. */
static df_fit_options stateful_options(toy *m, int epochs)
{
    carried = rank_state(2, 0.0f);
    df_fit_options o = toy_options(m, epochs);
    o.n_rank_variables = 1;
    o.rank_variables = &carried;
    o.reset_states = zero_carried;
    o.checkpoint_dir = dir;
    o.validation = (df_fit_data){.next = data_next, .start_epoch = data_start_epoch, .user = &m->val};
    return o;
}

Test(fit, validation_leaves_the_state_the_last_step_carried_in_the_checkpoint)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = stateful_options(&m, 2);
    o.on_step = carry_step_number;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    const float last = (float)h.steps;
    cr_expect(last > 0 && at(carried, 0) == last && at(carried, 1) == -last,
              "after validation the state is the last step's (%g, %g), got (%g, %g)", last, -last, at(carried, 0),
              at(carried, 1));
    cr_expect_eq(m.resets, 2 * 3, "epoch start, before and after validation, each epoch; got %d", m.resets);
    df_checkpoint *ck;
    cr_assert_eq(df_checkpoint_read(in_dir("ckpt_2"), &ck), DF_OK, "%s", df_last_error());
    df_variable *stored = rank_state(2, 7.0f);
    cr_assert_eq(df_checkpoint_restore_variable(ck, stored), DF_OK, "%s", df_last_error());
    cr_expect(at(stored, 0) == last && at(stored, 1) == -last, "the checkpoint holds (%g, %g), not (%g, %g)",
              at(stored, 0), at(stored, 1), last, -last);
    df_checkpoint_free(ck);
    df_variable_free(stored);
    df_variable_free(carried);
    toy_free(&m);
}

/* Each allocation of a run with validation, checkpoints and a carried state
 * fails in turn (the copy of the state kept over validation among them):
 * every such run ends with DF_ERR_NOMEM, and the first budget that is
 * enough trains. */
Test(fit, out_of_memory_at_any_allocation_is_an_error)
{
    int failures = 0, successes = 0;
    long k;
    for (k = 0; k < 20000 && !successes; k++) {
        toy m;
        toy_init(&m, 0.0f, 0.05f);
        df_fit_options o = stateful_options(&m, 1);
        o.overwrite = true;
        df_fail_alloc_after(k);
        const df_status st = df_fit(&o, NULL);
        df_fail_alloc_after(-1);
        if (st == DF_OK) successes++;
        else if (failures++, st != DF_ERR_NOMEM)
            cr_expect_fail("allocation %ld: %s (%s)", k, df_status_name(st), df_last_error());
        df_variable_free(carried);
        toy_free(&m);
    }
    cr_log_info("df_fit succeeded with a budget of %ld allocations", k - 1);
    cr_expect_gt(failures, 50);
    cr_expect_eq(successes, 1, "no budget let the run succeed");
}

Test(fit, rank_variables_need_a_gather_and_an_axis_0)
{
    int sums = 0;
    df_fit_comm c = {.rank = 1, .size = 2, .sum = twin_sum, .agree = twin_agree, .broadcast = twin_broadcast,
                     .user = &sums};
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_variable *state = rank_state(2, 1.0f);
    df_fit_options o = toy_options(&m, 1);
    o.comm = &c;
    o.n_rank_variables = 1;
    o.rank_variables = &state;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "gather");
    df_variable *scalar = df_variable_new("s", DF_F32, 0, NULL, df_init_zeros(), NULL);
    o.comm = NULL;
    o.rank_variables = &scalar;
    expect_error(df_fit(&o, NULL), DF_ERR_ARG, "rank_variables[0] (s) is a scalar");
    df_variable_free(scalar);
    df_variable_free(state);
    toy_free(&m);
}

typedef struct step_log { int calls, lasts; int64_t batches[64], steps[64]; double losses[64]; int last_at; } step_log;

static step_log *the_log;
static df_status record_step(void *user, const df_fit_step_logs *s)
{
    step_log *l = the_log;
    if (l->calls < 64) {
        l->batches[l->calls] = s->batch;
        l->steps[l->calls] = s->step;
        l->losses[l->calls] = s->loss;
    }
    l->calls++;
    if (s->last) {
        l->lasts++;
        l->last_at = l->calls;
    }
    return l->calls == 40 ? df_error(DF_ERR_IO, "the hook's disk went away") : DF_OK;
}

Test(fit, on_step_sees_every_step_and_the_last_of_each_epoch)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    step_log log = {0};
    the_log = &log;
    df_fit_options o = toy_options(&m, 3);
    o.on_step = record_step;
    o.steps_per_epoch = 5;
    o.csv_path = in_dir("losses.csv");
    o.checkpoint_dir = in_dir("run");
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.progress = DF_FIT_PROGRESS_MESSAGES;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    fclose(o.out);
    cr_expect_eq(log.calls, 15);
    cr_expect_eq(log.lasts, 3, "one last step per epoch, got %d", log.lasts);
    cr_expect_eq(log.last_at, 15);
    for (int i = 0; i < 15; i++) {
        cr_expect_eq(log.batches[i], i % 5, "call %d: batch %lld", i, (long long)log.batches[i]);
        cr_expect_eq(log.steps[i], i + 1);
    }
    FILE *f = fopen(in_dir("losses.csv"), "r");
    char line[128];
    cr_assert(f && fgets(line, sizeof line, f) && fgets(line, sizeof line, f));
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "1,1,%.6f,\n", log.losses[0]);
    cr_expect_str_eq(line, want, "the hook's loss is the logged one");
    cr_expect(!strstr(text, "Epoch 1/3") && !strstr(text, "5/5"), "MESSAGES prints no bar or epoch line:\n%s", text);
    cr_expect(strstr(text, "Saved checkpoint "), "MESSAGES prints the messages:\n%s", text);
    free(text);
    toy_free(&m);

    toy_init(&m, 0.0f, 0.05f);
    log = (step_log){0};
    o = toy_options(&m, 100);
    o.on_step = record_step;
    expect_error(df_fit(&o, NULL), DF_ERR_IO, "the hook's disk went away");
    cr_expect_eq(log.calls, 40, "the run ended at the failing hook");
    cr_expect_lt(m.train.calls, 42, "no step long after it");
    toy_free(&m);
}

static df_status note_rate(void *user, const df_fit_history *h, char *note, size_t cap)
{
    toy *m = user;
    df_optimizer_set_learning_rate(m->opt, 0.25f);
    snprintf(note, cap, ", learning rate 0.25 (was %g)", (double)m->last_logged_loss);
    return h->steps == STEPS ? DF_OK : df_error(DF_ERR_STATE, "the hook saw step %lld", (long long)h->steps);
}

static df_status refuse_resume(void *user, const df_fit_history *h, char *note, size_t cap)
{
    return df_error(DF_ERR_STATE, "--seed differs");
}

Test(fit, on_resume_may_change_the_rate_and_adds_its_note)
{
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.checkpoint_dir = dir;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    toy_free(&m);

    toy_init(&m, 0.5f, 0.05f);
    m.train.opt = m.opt;
    o = toy_options(&m, 2);
    o.checkpoint_dir = dir;
    o.resume = true;
    o.on_resume = note_rate;
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.progress = DF_FIT_PROGRESS_EPOCH;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    fclose(o.out);
    char want[256];
    snprintf(want, sizeof want, "Resumed from %s (1 epochs done, step %d, learning rate 0.25 (was 0))\n",
             in_dir("ckpt_1"), STEPS);
    cr_expect(strstr(text, want), "no \"%s\" in:\n%s", want, text);
    cr_expect_float_eq(m.train.lr_seen[0], 0.25f, 1e-9f, "the first resumed step ran at the hook's rate, got %g",
                       m.train.lr_seen[0]);
    free(text);
    toy_free(&m);

    toy_init(&m, 0.5f, 0.05f);
    o = toy_options(&m, 2);
    o.checkpoint_dir = dir;
    o.resume = true;
    o.on_resume = refuse_resume;
    expect_error(df_fit(&o, NULL), DF_ERR_STATE, "--seed differs");
    cr_expect_eq(m.train.calls, 0, "no step after a refused resume");
    toy_free(&m);
}

static unsigned char *file_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    unsigned char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

Test(fit, an_epoch_resumed_from_inside_has_the_uninterrupted_mean_loss_and_checkpoint)
{
    char straight[128], stopped[128];
    snprintf(straight, sizeof straight, "%s", in_dir("straight"));
    snprintf(stopped, sizeof stopped, "%s", in_dir("stopped"));
    toy m;
    toy_init(&m, 0.5f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    o.checkpoint_dir = straight;
    df_fit_history ref, h;
    cr_assert_eq(df_fit(&o, &ref), DF_OK, "%s", df_last_error());
    toy_free(&m);

    toy_init(&m, 0.5f, 0.05f);
    o = toy_options(&m, 1);
    o.checkpoint_dir = stopped;
    m.train.stop_at_call = 3;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_assert(h.interrupted && h.epoch_step == 3);
    toy_free(&m);
    toy_init(&m, 0.5f, 0.05f);
    o = toy_options(&m, 1);
    o.checkpoint_dir = stopped;
    o.resume = true;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect_eq(h.loss, ref.loss, "the epoch's mean over all its steps: %.17g vs %.17g", h.loss, ref.loss);
    cr_expect_eq(h.best, ref.best);
    toy_free(&m);
    size_t la, lb;
    char pa[160], pb[160];
    snprintf(pa, sizeof pa, "%s/ckpt_1", straight);
    snprintf(pb, sizeof pb, "%s/ckpt_1", stopped);
    unsigned char *a = file_bytes(pa, &la), *b = file_bytes(pb, &lb);
    cr_expect(la == lb && memcmp(a, b, la) == 0, "ckpt_1 of the resumed run differs from the straight run's");
    free(a);
    free(b);
}

static int extras_saved, extras_checked;
static df_status count_save(void *user, df_checkpoint *ck)
{
    extras_saved++;
    return df_checkpoint_put_blob(ck, "extra", "x", 1);
}

static df_status count_check(void *user, const df_checkpoint *ck)
{
    extras_checked++;
    return DF_OK;
}

Test(fit, a_checkpoint_written_outside_the_loop_restores_as_a_resume_would)
{
    toy a, b;
    toy_init(&a, 0.5f, 0.05f);
    toy_init(&b, 0.0f, 0.05f);
    df_fit_options oa = toy_options(&a, 3), ob = toy_options(&b, 3);
    oa.checkpoint_dir = ob.checkpoint_dir = dir;
    cr_assert_eq(df_fit(&oa, NULL), DF_OK, "%s", df_last_error());        /* trained: slots, a data position */
    oa.save_extra = count_save;
    ob.restore_extra = count_check;
    a.train.pos = 5;
    df_fit_history h = {.epochs_done = 2, .steps = 11, .epoch_step = 3, .best = 0.25}, back;
    cr_assert_eq(df_fit_write_checkpoint(&oa, &h, in_dir("by_hand")), DF_OK, "%s", df_last_error());
    df_checkpoint *ck;
    cr_assert_eq(df_checkpoint_read(in_dir("by_hand"), &ck), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_fit_restore_checkpoint(&ob, ck, &back), DF_OK, "%s", df_last_error());
    cr_expect(extras_saved == 1 && extras_checked == 1, "the extras' hooks: saved %d, checked %d", extras_saved,
              extras_checked);
    cr_expect(back.epochs_done == 2 && back.steps == 11 && back.epoch_step == 3 && back.best == 0.25 &&
              isnan(back.loss) && !back.resumed, "progress: %d %lld %lld %g", back.epochs_done, (long long)back.steps,
              (long long)back.epoch_step, back.best);
    cr_expect(value_of(b.w) == value_of(a.w) && value_of(b.b) == value_of(a.b), "weights restored");
    cr_expect_eq(df_optimizer_iterations(b.opt), df_optimizer_iterations(a.opt), "the optimizer's state restored");
    cr_expect_eq(b.train.pos, 5, "the data source's record restored");
    df_checkpoint_free(ck);
    toy_free(&a);
    toy_free(&b);
}

/* ---------------------------------------- a model of layers with Dropout */

/* Three (2,5) batches of ids per epoch, from the epoch's start. */
typedef struct id_batches { int32_t x[10], y[10]; int next; } id_batches;

static df_status id_next(void *user, df_tensor *in, bool *end)
{
    id_batches *b = user;
    *end = b->next >= 3;
    if (*end) return DF_OK;
    for (int i = 0; i < 10; i++) {
        b->x[i] = (i * 3 + b->next) % 10;
        b->y[i] = (i * 7 + b->next + 1) % 10;
    }
    b->next++;
    in[0] = df_tensor_make(DF_I32, b->x, 2, SHAPE(2, 5));
    in[1] = df_tensor_make(DF_I32, b->y, 2, SHAPE(2, 5));
    return DF_OK;
}

static void id_start(void *user) { ((id_batches *)user)->next = 0; }

/* Embedding -> stateful LSTM -> Dropout (its own counter) -> Dense, fitted
 * for `epochs` with validation into dir (resuming if asked); its weights'
 * bytes in *weights (malloc'd) and the dropout counter's value. */
static int32_t fit_dropout_model(int epochs, bool resume, unsigned char **weights, size_t *len)
{
    df_model *m = df_model_new("m", 7);
    cr_assert_eq(df_model_add(m, df_embedding_layer(10, 4)), DF_OK);
    cr_assert_eq(df_model_add(m, df_lstm_layer(8, (df_rnn_options){.return_sequences = true, .stateful = true})), DF_OK);
    cr_assert_eq(df_model_add(m, df_dropout_layer(0.5f)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(10, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, DF_DYNAMIC)), DF_OK, "%s", df_last_error());
    df_optimizer *opt = df_adam_new(0.01f, 0.9f, 0.999f, 1e-7f);       /* slots, to resume and to check */
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    id_batches train = {0}, val = {0};
    df_fit_options o = {.train_step = df_model_train_step(m), .eval_step = df_model_eval_step(m), .n_inputs = 2,
                        .optimizer = opt, .model = m, .model_batch = 2, .epochs = epochs, .checkpoint_dir = dir,
                        .resume = resume, .progress = DF_FIT_PROGRESS_NONE,
                        .train = {.next = id_next, .start_epoch = id_start, .save = NULL, .user = &train},
                        .validation = {.next = id_next, .start_epoch = id_start, .user = &val}};
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    df_variable *w[16];
    const int n = df_model_weights(m, w, 16);
    *len = 0;
    for (int i = 0; i < n; i++) *len += (size_t)df_variable_numel(w[i]) * sizeof(float);
    *weights = malloc(*len);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const size_t bytes = (size_t)df_variable_numel(w[i]) * sizeof(float);
        memcpy(*weights + at, df_variable_tensor(w[i]).data, bytes);
        at += bytes;
    }
    df_variable *state[4];
    cr_assert_eq(df_model_state_variables(m, 2, DF_STATE_MAIN, state, 4), 3, "h, c and the dropout counter");
    const int32_t counter = *(const int32_t *)df_variable_tensor(state[2]).data;
    df_function_free(o.train_step);
    df_function_free(o.eval_step);
    df_optimizer_free(opt);
    df_model_free(m);
    return counter;
}

Test(fit, a_model_with_dropout_fits_resumes_bit_for_bit_and_draws_new_masks_each_epoch)
{
    unsigned char *straight, *resumed;
    size_t len, len2;
    const int32_t steps = fit_dropout_model(2, false, &straight, &len);
    cr_expect_eq(steps, 6, "the dropout counter goes on across epochs (2 x 3 steps), got %d", steps);
    remove_dir();
    make_dir();
    fit_dropout_model(1, false, &resumed, &len2);
    free(resumed);
    cr_expect_eq(fit_dropout_model(2, true, &resumed, &len2), 6, "the resumed counter");
    cr_assert_eq(len, len2);
    cr_expect_eq(memcmp(straight, resumed, len), 0, "1 epoch + 1 resumed = 2 straight, bit for bit");
    df_checkpoint *ck;
    cr_assert_eq(df_checkpoint_read(in_dir("ckpt_2"), &ck), DF_OK, "%s", df_last_error());
    bool counter = false, counter_slot = false;
    for (int i = 0; i < df_checkpoint_count(ck); i++) {
        counter |= !strcmp(df_checkpoint_entry_name(ck, i), "dropout/seed");
        counter_slot |= !strncmp(df_checkpoint_entry_name(ck, i), "dropout/seed/", 13);
    }
    cr_expect(counter && !counter_slot, "the counter is checkpointed (%d), with no optimizer slot (%d)", counter,
              counter_slot);
    df_checkpoint_free(ck);
    free(straight);
    free(resumed);
}

Test(fit, a_model_not_built_is_refused_before_it_trains_without_its_weights_in_the_checkpoints)
{
    df_model *m = df_model_new("m", 7);
    cr_assert_eq(df_model_add(m, df_embedding_layer(10, 4)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(10, DF_ACT_NONE, true)), DF_OK);
    df_optimizer *opt = df_sgd_new(0.1f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    id_batches train = {0};
    df_fit_options o = {.train_step = df_model_train_step(m), .n_inputs = 2, .optimizer = opt, .model = m,
                        .model_batch = 2, .epochs = 1, .checkpoint_dir = dir, .progress = DF_FIT_PROGRESS_NONE,
                        .train = {.next = id_next, .start_epoch = id_start, .user = &train}};
    expect_error(df_fit(&o, NULL), DF_ERR_STATE, "layer 'embedding' is not built: call df_model_build");
    cr_expect_eq(train.next, 0, "no step ran");
    cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, DF_DYNAMIC)), DF_OK, "%s", df_last_error());
    cr_expect_eq(df_fit(&o, NULL), DF_OK, "built, it fits: %s", df_last_error());
    df_function_free(o.train_step);
    df_optimizer_free(opt);
    df_model_free(m);
}

Test(fit, the_custom_loop_lines_end_each_epoch_also_when_the_data_source_ends_it)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 2);       /* steps_per_epoch 0: the data source ends each epoch */
    char *text = NULL;
    size_t len = 0;
    o.out = open_memstream(&text, &len);
    o.progress = DF_FIT_PROGRESS_STEPS;
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    fclose(o.out);
    int ends = 0;
    for (const char *p = text; (p = strstr(p, "Time taken for 1 epoch ")); p++) ends++;
    cr_expect_eq(ends, 2, "one end line per epoch, got %d in:\n%s", ends, text);
    cr_expect(strstr(text, "Epoch 1 Batch 0 Loss ") && strstr(text, "Epoch 2 Loss "), "%s", text);
    free(text);
    toy_free(&m);
}

/* A data source whose second batch has no rows. */
static df_status empty_second_batch(void *user, df_tensor *in, bool *end)
{
    static float x[4] = {1, 2, 3, 4}, y[4] = {3, 5, 7, 9};
    int *calls = user;
    const int64_t rows = (*calls)++ == 1 ? 0 : 4;
    in[0] = df_tensor_make(DF_F32, x, 2, SHAPE(rows, 1));
    in[1] = df_tensor_make(DF_F32, y, 2, SHAPE(rows, 1));
    *end = *calls > 3;
    return DF_OK;
}

/* df_fit of the toy on this training source fails with DF_ERR_ARG saying message. */
static void expect_bad_data(df_status (*next)(void *, df_tensor *, bool *), const char *message)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 1);
    int calls = 0;
    o.train = (df_fit_data){.next = next, .user = &calls};
    df_fit_history h;
    expect_error(df_fit(&o, &h), DF_ERR_ARG, message);
    toy_free(&m);
}

Test(fit, an_empty_batch_is_an_error_naming_the_step_and_the_shape)
{
    expect_bad_data(empty_second_batch, "the training data gave an empty batch at step 2 (input 0 has shape (0,1))");
}

/* A data source that fills its targets only in the first batch. */
static df_status targets_once(void *user, df_tensor *in, bool *end)
{
    static float x[4] = {1, 2, 3, 4}, y[4] = {3, 5, 7, 9};
    int *calls = user;
    in[0] = df_tensor_make(DF_F32, x, 2, SHAPE(4, 1));
    if ((*calls)++ == 0) in[1] = df_tensor_make(DF_F32, y, 2, SHAPE(4, 1));
    *end = *calls > 3;
    return DF_OK;
}

Test(fit, an_input_the_data_source_does_not_fill_is_named)
{
    expect_bad_data(targets_once, "the training data did not fill input 1 of 2 at step 2 (its next() must set inputs[0..1])");
}

static df_status stop_at_step_3(void *user, const df_fit_step_logs *logs)
{
    (void)user;
    if (logs->step == 3) df_fit_request_stop();
    return DF_OK;
}

Test(fit, a_stop_asked_for_in_on_step_ends_that_step)
{
    toy m;
    toy_init(&m, 0.0f, 0.05f);
    df_fit_options o = toy_options(&m, 2);
    o.on_step = stop_at_step_3;
    o.checkpoint_dir = dir;
    df_fit_history h;
    cr_assert_eq(df_fit(&o, &h), DF_OK, "%s", df_last_error());
    cr_expect(h.steps == 3 && h.epoch_step == 3, "stopped after step %lld (epoch step %lld), not 3",
              (long long)h.steps, (long long)h.epoch_step);
    toy_free(&m);
}
