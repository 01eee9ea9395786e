/* fit.c — df_fit: Keras' model.fit around a traced train step (dagflow.h).
 *
 * A run's state is small: complete epochs, optimizer steps, steps into an
 * interrupted epoch, and the early-stopping record. It goes into every
 * checkpoint as the text blob "fit/progress", beside the variables, the
 * optimizer's slots, the data source's position and the user's extras, so a
 * resumed run computes exactly what an uninterrupted one would.
 *
 * Data parallel (options.comm): every rank runs this same code, so every
 * collective must be reached by all ranks in the same order. A rank never
 * returns or skips ahead on an error of its own: it carries the error to the
 * next synchronisation point (sync_ranks), where all ranks learn of it and
 * leave together. Per step there are two: after the batch is fetched (a
 * data source that failed or ended must stop every rank before the train
 * step's gradient all-reduce) and after the step (the mean loss and any stop
 * request). Rank 0 alone prints and writes files. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "dagflow.h"
#include "base.h"      /* df_malloc: allocations the tests can make fail */

#define FIT_MAX_INPUTS 8
#define FIT_MAX_SYNC 7           /* values one sync_ranks call sums, besides the error flag */
#define FIT_PROGRESS_KEY "fit/progress"

static volatile sig_atomic_t stop_requested;

void df_fit_request_stop(void) { stop_requested = 1; }

typedef struct fit_run {
    const df_fit_options *o;
    const df_fit_comm *comm;      /* NULL: one process */
    bool leader;                  /* rank 0: prints and writes files */
    df_fit_progress progress;     /* o->progress on the leader, NONE elsewhere */
    bool stop;                    /* every rank agreed to stop after this step */
    FILE *out;
    bool tty, has_val, profiling;
    int epochs, every;
    float base_lr;
    df_fit_history *h;
    int wait;                     /* epochs without improvement */
    double epoch_sum;             /* the losses of an epoch stopped inside, for its mean after a resume */
    FILE *csv;
    int lock_fd;                  /* the checkpoint directory's lock (leader), or -1 */
    df_tensor inputs[FIT_MAX_INPUTS];
} fit_run;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ signals */

static const int handled_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_HANDLED (int)(sizeof handled_signals / sizeof handled_signals[0])

/* First signal: stop after this step with a checkpoint. A second one takes
 * its default action at once (the last checkpoint is whole: writes are
 * atomic). */
static void on_stop_signal(int sig)
{
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
    static const char msg[] = "\nInterrupt: finishing this step and writing a checkpoint (again to quit now)\n";
    static const char ctrl_c[] = "\nInterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit now)\n";
    ssize_t ignored = sig == SIGINT ? write(STDERR_FILENO, ctrl_c, sizeof ctrl_c - 1)
                                    : write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

static void install_signals(struct sigaction *saved)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_HANDLED; i++) sigaction(handled_signals[i], &sa, &saved[i]);
}

static void restore_signals(const struct sigaction *saved)
{
    for (int i = 0; i < N_HANDLED; i++) sigaction(handled_signals[i], &saved[i], NULL);
}

/* -------------------------------------------------------------- ranks */

/* A synchronisation point; with comm, one collective: values[0..n-1] become
 * their sums over the ranks, and an error on any rank becomes every rank's
 * (the lowest failing rank's status and message). One process: st. */
static df_status sync_ranks(const fit_run *r, df_status st, double *values, int n)
{
    const df_fit_comm *c = r->comm;
    if (!c) return st;
    double v[FIT_MAX_SYNC + 1];
    for (int i = 0; i < n; i++) v[i] = values[i];
    v[n] = st != DF_OK;
    df_status sent = c->sum(c->user, v, n + 1);
    if (sent != DF_OK) return sent;
    for (int i = 0; i < n; i++) values[i] = v[i];
    return v[n] > 0 ? c->agree(c->user, st) : DF_OK;
}

static df_status check_comm(const df_fit_comm *c)
{
    if (!c) return DF_OK;
    if (c->size < 1 || c->rank < 0 || c->rank >= c->size)
        return df_error(DF_ERR_ARG, "df_fit: comm has rank %d of size %d (need 0 <= rank < size)", c->rank, c->size);
    if (!c->sum || !c->agree || !c->broadcast)
        return df_error(DF_ERR_ARG, "df_fit: comm needs the sum, agree and broadcast callbacks");
    return DF_OK;
}

/* What decides the collectives a run makes: it must be the same on every
 * rank, or they would wait for each other forever. */
static int loop_settings(const df_fit_options *o, char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "epochs=%d steps_per_epoch=%" PRId64 " n_inputs=%d validation=%s checkpoints=%s "
                    "checkpoint_every=%d resume=%s early_stopping_patience=%d early_stopping_min_delta=%g "
                    "terminate_on_nan=%s check_weights=%s rank_variables=%d",
                    o->epochs, o->steps_per_epoch, o->n_inputs, o->validation.next ? "yes" : "no",
                    o->checkpoint_dir ? "yes" : "no", o->checkpoint_every, o->resume ? "yes" : "no",
                    o->early_stopping_patience, o->early_stopping_min_delta, o->terminate_on_nan ? "yes" : "no",
                    o->check_weights ? "yes" : "no", o->n_rank_variables);
}

/* Fails on every rank unless all run the loop rank 0 runs. */
static df_status agree_on_settings(const fit_run *r)
{
    const df_fit_comm *c = r->comm;
    if (!c) return DF_OK;
    char mine[512];
    void *first = mine;
    size_t len = (size_t)loop_settings(r->o, mine, sizeof mine) + 1;
    df_status st = c->broadcast(c->user, &first, &len);
    if (st != DF_OK) return st;
    if (!r->leader && (len != strlen(mine) + 1 || memcmp(first, mine, len) != 0))
        st = df_error(DF_ERR_ARG, "df_fit: the ranks run different loops: rank 0 has %.*s, rank %d has %s "
                      "(every rank needs the same options)", (int)len, (const char *)first, c->rank, mine);
    if (!r->leader) free(first);
    return sync_ranks(r, st, NULL, 0);
}

/* ------------------------------------------------------------ options */

static df_status check_data(const df_fit_data *d, const char *which)
{
    if (!d->next) return df_error(DF_ERR_ARG, "df_fit: %s.next is required", which);
    if (!d->save != !d->restore)
        return df_error(DF_ERR_ARG, "df_fit: %s.save and %s.restore go together (one is NULL)", which, which);
    return DF_OK;
}

static df_status check_options(const df_fit_options *o)
{
    if (!o) return df_error(DF_ERR_ARG, "df_fit: NULL options");
    if (!o->train_step) return df_error(DF_ERR_ARG, "df_fit: train_step is required");
    if (o->n_inputs < 1 || o->n_inputs > FIT_MAX_INPUTS)
        return df_error(DF_ERR_ARG, "df_fit: n_inputs must be 1..%d, got %d", FIT_MAX_INPUTS, o->n_inputs);
    df_status st = check_data(&o->train, "train");
    if (st != DF_OK) return st;
    if (o->validation.next && (st = check_data(&o->validation, "validation")) != DF_OK) return st;
    if (o->validation.next && !o->eval_step) return df_error(DF_ERR_ARG, "df_fit: validation needs an eval_step");
    if (o->epochs < 0) return df_error(DF_ERR_ARG, "df_fit: epochs must be >= 0, got %d", o->epochs);
    if (o->steps_per_epoch < 0)
        return df_error(DF_ERR_ARG, "df_fit: steps_per_epoch must be >= 0, got %" PRId64, o->steps_per_epoch);
    if (o->n_variables < 0 || (o->n_variables > 0 && !o->variables))
        return df_error(DF_ERR_ARG, "df_fit: n_variables is %d but variables is %s", o->n_variables,
                        o->variables ? "set" : "NULL");
    for (int i = 0; i < o->n_variables; i++)
        if (!o->variables[i]) return df_error(DF_ERR_ARG, "df_fit: variables[%d] is NULL", i);
    if (o->n_rank_variables < 0 || (o->n_rank_variables > 0 && !o->rank_variables))
        return df_error(DF_ERR_ARG, "df_fit: n_rank_variables is %d but rank_variables is %s", o->n_rank_variables,
                        o->rank_variables ? "set" : "NULL");
    for (int i = 0; i < o->n_rank_variables; i++) {
        if (!o->rank_variables[i]) return df_error(DF_ERR_ARG, "df_fit: rank_variables[%d] is NULL", i);
        if (df_variable_tensor(o->rank_variables[i]).ndim < 1)
            return df_error(DF_ERR_ARG, "df_fit: rank_variables[%d] (%s) is a scalar: it needs an axis 0 to "
                            "concatenate the ranks along", i, df_variable_name(o->rank_variables[i]));
    }
    if (o->n_rank_variables > 0 && o->comm && !o->comm->gather)
        return df_error(DF_ERR_ARG, "df_fit: rank_variables with a comm need its gather callback");
    if (o->checkpoint_every < 0) return df_error(DF_ERR_ARG, "df_fit: checkpoint_every must be >= 0");
    if (o->resume && !o->checkpoint_dir) return df_error(DF_ERR_ARG, "df_fit: resume needs a checkpoint_dir");
    if ((st = df_lr_schedule_check(&o->schedule)) != DF_OK) return st;
    if (!(o->learning_rate >= 0) || !isfinite(o->learning_rate))
        return df_error(DF_ERR_ARG, "df_fit: learning_rate must be finite and >= 0, got %g", o->learning_rate);
    if (df_lr_schedule_active(&o->schedule) && !o->optimizer)
        return df_error(DF_ERR_ARG, "df_fit: a learning-rate schedule needs the optimizer");
    if (o->early_stopping_patience < 0 || !(o->early_stopping_min_delta >= 0))
        return df_error(DF_ERR_ARG, "df_fit: early_stopping_patience and early_stopping_min_delta must be >= 0");
    if (o->plot_path && !o->csv_path) return df_error(DF_ERR_ARG, "df_fit: plot_path needs a csv_path (its data)");
    if ((unsigned)o->progress > DF_FIT_PROGRESS_STEPS)
        return df_error(DF_ERR_ARG, "df_fit: progress must be AUTO, EPOCH, NONE, MESSAGES or STEPS, got %d",
                        (int)o->progress);
    return DF_OK;
}

/* ------------------------------------------------------------- files */

/* mkdir -p. */
static df_status make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return df_error(DF_ERR_ARG, "path too long: %s", dir);
    for (char *p = path + 1;; p++) {
        bool last = *p == 0;
        if (*p != '/' && !last) continue;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return df_error(DF_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
        if (last) break;
        *p = '/';
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return df_error(DF_ERR_IO, "%s is not a directory", dir);
    return DF_OK;
}

/* Fails now, not after the last epoch, when path's directory is not writable. */
static df_status check_writable(const char *path, const char *what)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return df_error(DF_ERR_ARG, "path too long: %s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (access(dir, W_OK) != 0)
        return df_error(DF_ERR_IO, "df_fit: cannot write the %s %s: %s: %s", what, path, dir, strerror(errno));
    return DF_OK;
}

/* The highest N of a regular file <dir>/ckpt_N (N without sign or leading
 * zero), or -1. */
static int latest_checkpoint(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int best = -1;
    for (struct dirent *e; (e = readdir(d));) {
        const char *num = e->d_name + 5;
        if (strncmp(e->d_name, "ckpt_", 5) != 0 || !isdigit((unsigned char)num[0]) || (num[0] == '0' && num[1]))
            continue;
        char *end, full[4096];
        errno = 0;
        long n = strtol(num, &end, 10);
        struct stat st;
        if (*end || errno || n > INT_MAX || snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= (int)sizeof full ||
            stat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n > best) best = (int)n;
    }
    closedir(d);
    return best;
}

/* ------------------------------------------------ the run's directory */

/* One run per checkpoint directory: an exclusive flock on <dir>/.lock,
 * held until df_fit returns (the kernel drops it if the process dies). The
 * file holds the holder's pid, for the message another process gets. */
static df_status lock_directory(fit_run *r, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return df_error(DF_ERR_IO, "df_fit: cannot open the lock %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char holder[32] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        close(fd);
        if (err == EWOULDBLOCK)
            return df_error(DF_ERR_STATE, "df_fit: checkpoint directory %s is in use by another run (process %s); "
                            "one run per directory", dir, *holder ? holder : "unknown");
        return df_error(DF_ERR_IO, "df_fit: cannot lock %s: %s", path, strerror(err));
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int err = errno;
        close(fd);
        return df_error(DF_ERR_IO, "df_fit: cannot write the lock %s: %s", path, strerror(err));
    }
    r->lock_fd = fd;
    return DF_OK;
}

static void unlock_directory(fit_run *r)
{
    if (r->lock_fd >= 0) close(r->lock_fd);
    r->lock_fd = -1;
}

/* Calls fn(dir/name) for each ckpt_N (temps: ckpt_N.tmp.PID) in dir. */
static df_status for_each_checkpoint_file(const char *dir, bool temps, int (*fn)(const char *))
{
    DIR *d = opendir(dir);
    if (!d) return df_error(DF_ERR_IO, "df_fit: cannot list %s: %s", dir, strerror(errno));
    df_status st = DF_OK;
    for (struct dirent *e; st == DF_OK && (e = readdir(d));) {
        const char *name = e->d_name, *tmp = strstr(name, ".tmp.");
        if (strncmp(name, "ckpt_", 5) != 0 || !isdigit((unsigned char)name[5]) || (tmp != NULL) != temps) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, name);
        if (fn(full) != 0 && errno != ENOENT)
            st = df_error(DF_ERR_IO, "df_fit: cannot remove %s: %s", full, strerror(errno));
    }
    closedir(d);
    return st;
}

/* With the lock held, a temp file of a checkpoint write is a leftover of a
 * process that died writing it (kill -9, a second signal): removed. A fresh
 * run into a directory that holds another run's checkpoints is refused, or
 * with overwrite removes them, so two runs never mix. */
static df_status claim_directory(fit_run *r)
{
    const df_fit_options *o = r->o;
    const char *dir = o->checkpoint_dir;
    df_status st = lock_directory(r, dir);
    if (st == DF_OK) st = for_each_checkpoint_file(dir, true, unlink);
    int latest = st == DF_OK ? latest_checkpoint(dir) : -1;
    if (st != DF_OK || o->resume || latest < 0) return st;
    if (!o->overwrite)
        return df_error(DF_ERR_STATE, "df_fit: %s already holds a run (up to ckpt_%d): resume it (resume), remove it "
                        "(overwrite) or use another checkpoint_dir", dir, latest);
    if (r->progress != DF_FIT_PROGRESS_NONE) fprintf(r->out, "Removing the run in %s (overwrite)\n", dir);
    return for_each_checkpoint_file(dir, false, unlink);
}

/* A resume rewrites the CSV through "<csv>.tmp.<pid>": such a file whose
 * process is gone is a leftover of a run killed while trimming. */
static df_status remove_stale_csv_temps(const char *csv)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", csv);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : csv;
    if (slash) *slash = 0;
    size_t n = strlen(base);
    DIR *d = opendir(slash ? (*dir ? dir : "/") : ".");
    if (!d) return DF_OK;              /* no directory yet: nothing left over */
    df_status st = DF_OK;
    for (struct dirent *e; st == DF_OK && (e = readdir(d));) {
        const char *pid = e->d_name + n + 5;
        if (strncmp(e->d_name, base, n) != 0 || strncmp(e->d_name + n, ".tmp.", 5) != 0 || !isdigit((unsigned char)*pid))
            continue;
        char *end;
        long holder = strtol(pid, &end, 10);
        if (*end || (kill((pid_t)holder, 0) == 0 || errno != ESRCH)) continue;    /* not a pid, or alive */
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", slash ? (*dir ? dir : "") : ".", e->d_name);
        if (unlink(full) != 0 && errno != ENOENT)
            st = df_error(DF_ERR_IO, "df_fit: cannot remove %s: %s", full, strerror(errno));
    }
    closedir(d);
    return st;
}

/* ---------------------------------------------------------- progress */

static int format_progress(const fit_run *r, char *buf, size_t cap)
{
    const df_fit_history *h = r->h;
    return snprintf(buf, cap, "epoch=%d\nstep=%" PRId64 "\nepoch_step=%" PRId64 "\nbest=%.17g\nwait=%d\nepoch_loss_sum=%.17g\n",
                    h->epochs_done, h->steps, h->epoch_step, h->best, r->wait, h->epoch_step ? r->epoch_sum : 0);
}

static df_status parse_progress(fit_run *r, const void *data, size_t len)
{
    char buf[256];
    if (len >= sizeof buf) return df_error(DF_ERR_FORMAT, "bad %s record (%zu bytes)", FIT_PROGRESS_KEY, len);
    memcpy(buf, data, len);
    buf[len] = 0;
    df_fit_history *h = r->h;
    char best[64], sum[64] = "0";
    int used = 0, more = 0;
    if (sscanf(buf, "epoch=%d\nstep=%" SCNd64 "\nepoch_step=%" SCNd64 "\nbest=%63[^\n]\nwait=%d\n%n", &h->epochs_done,
               &h->steps, &h->epoch_step, best, &r->wait, &used) != 5 ||
        h->epochs_done < 0 || h->steps < 0 || h->epoch_step < 0 || r->wait < 0)
        return df_error(DF_ERR_FORMAT, "bad %s record", FIT_PROGRESS_KEY);
    /* the epoch's loss sum came later: records without it are read as 0 */
    if ((size_t)used < len && sscanf(buf + used, "epoch_loss_sum=%63[^\n]\n%n", sum, &more) == 1) used += more;
    if ((size_t)used != len) return df_error(DF_ERR_FORMAT, "bad %s record", FIT_PROGRESS_KEY);
    char *end, *end_sum;
    h->best = strtod(best, &end);
    r->epoch_sum = strtod(sum, &end_sum);
    if (*end || isnan(h->best) || *end_sum || !isfinite(r->epoch_sum))
        return df_error(DF_ERR_FORMAT, "bad %s record (best %s, epoch_loss_sum %s)", FIT_PROGRESS_KEY, best, sum);
    return DF_OK;
}

/* ------------------------------------------------------- checkpoints */

/* The variables a checkpoint holds: the options' and the optimizer's
 * (iterations, learning rate, slots); malloc'd, *n of them. */
static df_variable **checkpointed_variables(const fit_run *r, int *n)
{
    const df_fit_options *o = r->o;
    int n_opt = o->optimizer ? df_optimizer_state(o->optimizer, NULL, 0) : 0;
    df_variable **vars = df_malloc((size_t)(o->n_variables + n_opt + 1) * sizeof *vars);
    if (!vars) {
        df_error(DF_ERR_NOMEM, "df_fit: out of memory");
        return NULL;
    }
    memcpy(vars, o->variables, (size_t)o->n_variables * sizeof *vars);
    if (n_opt) df_optimizer_state(o->optimizer, vars + o->n_variables, n_opt);
    *n = o->n_variables + n_opt;
    return vars;
}

static df_status put_state(const fit_run *r, df_checkpoint *ck)
{
    int n;
    df_variable **vars = checkpointed_variables(r, &n);
    df_status st = vars ? DF_OK : DF_ERR_NOMEM;
    for (int i = 0; vars && i < n && st == DF_OK; i++) st = df_checkpoint_put_variable(ck, vars[i]);
    free(vars);
    return st;
}

static df_status restore_state(const fit_run *r, const df_checkpoint *ck)
{
    int n;
    df_variable **vars = checkpointed_variables(r, &n);
    df_status st = vars ? DF_OK : DF_ERR_NOMEM;
    for (int i = 0; vars && i < n && st == DF_OK; i++) st = df_checkpoint_restore_variable(ck, vars[i]);
    free(vars);
    return st;
}

/* ----------------------------------------------------- rank variables */

/* A variable shaped as v with axis 0 `times` as long (zeros). */
static df_variable *stacked_like(const df_variable *v, int times)
{
    df_tensor t = df_variable_tensor(v);
    int64_t shape[DF_MAX_DIMS];
    memcpy(shape, t.shape, sizeof shape);
    shape[0] *= times;
    return df_variable_new(df_variable_name(v), t.dtype, t.ndim, shape, df_init_zeros(), NULL);
}

static size_t bytes_of(const df_tensor *t) { return (size_t)df_tensor_numel(t) * df_dtype_size(t->dtype); }

static void free_stacked(const fit_run *r, df_variable **whole)
{
    for (int i = 0; whole && i < r->o->n_rank_variables; i++) df_variable_free(whole[i]);
    free(whole);
}

/* With comm: rank 0's copies of the rank variables, each every rank's
 * concatenated along axis 0 (*out NULL on the other ranks and without comm).
 * Collective. */
static df_status gather_rank_variables(const fit_run *r, df_variable ***out)
{
    const df_fit_options *o = r->o;
    const df_fit_comm *c = r->comm;
    *out = NULL;
    if (!c || o->n_rank_variables == 0) return DF_OK;
    df_variable **whole = r->leader ? df_calloc((size_t)o->n_rank_variables, sizeof *whole) : NULL;
    df_status st = r->leader && !whole ? df_error(DF_ERR_NOMEM, "df_fit: out of memory") : DF_OK;
    for (int i = 0; i < o->n_rank_variables; i++) {
        const df_variable *v = o->rank_variables[i];
        df_tensor t = df_variable_tensor(v);
        if (st == DF_OK && r->leader && !(whole[i] = stacked_like(v, c->size))) st = DF_ERR_NOMEM;
        /* the sizes are alike on every rank iff size * sum(n^2) == sum(n)^2 */
        double n[2] = {(double)bytes_of(&t), (double)bytes_of(&t) * (double)bytes_of(&t)};
        if ((st = sync_ranks(r, st, n, 2)) != DF_OK) break;
        if (c->size * n[1] != n[0] * n[0]) {
            st = df_error(DF_ERR_SHAPE, "df_fit: rank_variables[%d] (%s) has another size on some rank: every rank "
                          "needs the same shape", i, df_variable_name(v));
            break;
        }
        if ((st = c->gather(c->user, t.data, bytes_of(&t), whole ? df_variable_tensor(whole[i]).data : NULL)) != DF_OK)
            break;
    }
    if (st != DF_OK) free_stacked(r, whole);
    else *out = whole;
    return st;
}

/* This rank's rows of each rank variable from a checkpoint holding all
 * ranks' (one process: the whole variable). */
static df_status restore_rank_variables(const fit_run *r, const df_checkpoint *ck)
{
    const df_fit_options *o = r->o;
    int size = r->comm ? r->comm->size : 1, rank = r->comm ? r->comm->rank : 0;
    df_status st = DF_OK;
    for (int i = 0; i < o->n_rank_variables && st == DF_OK; i++) {
        df_variable *v = o->rank_variables[i];
        if (size == 1) {
            st = df_checkpoint_restore_variable(ck, v);
            continue;
        }
        df_variable *whole = stacked_like(v, size);
        st = whole ? df_checkpoint_restore_variable(ck, whole) : DF_ERR_NOMEM;
        df_tensor mine = df_variable_tensor(v);
        if (st == DF_OK)
            memcpy(mine.data, (const char *)df_variable_tensor(whole).data + (size_t)rank * bytes_of(&mine),
                   bytes_of(&mine));
        df_variable_free(whole);
    }
    return st;
}

/* The hook, or with a model of layers and no hook, the model's own reset. */
static void reset_states(const df_fit_options *o)
{
    if (o->reset_states) o->reset_states(o->user);
    else if (o->model) df_model_reset_states(o->model);
}

/* Slots exist only after the first step: created on every rank before a
 * save, so that every checkpoint holds the same entries and every rank's
 * weights hash alike. */
static df_status create_slots(const fit_run *r)
{
    const df_fit_options *o = r->o;
    return o->optimizer && o->n_variables ? df_optimizer_create_slots(o->optimizer, o->n_variables, o->variables)
                                          : DF_OK;
}

static df_status write_checkpoint(fit_run *r, const char *path, df_variable *const *whole)
{
    const df_fit_options *o = r->o;
    df_checkpoint *ck = df_checkpoint_new();
    if (!ck) return DF_ERR_NOMEM;
    char progress[256];
    int len = format_progress(r, progress, sizeof progress);
    df_status st = o->config ? df_config_record_put(o->config, ck) : DF_OK;
    if (st == DF_OK && o->save_extra) st = o->save_extra(o->user, ck);
    if (st == DF_OK) st = df_checkpoint_put_blob(ck, FIT_PROGRESS_KEY, progress, (size_t)len);
    if (st == DF_OK) st = put_state(r, ck);
    for (int i = 0; i < o->n_rank_variables && st == DF_OK; i++)
        st = df_checkpoint_put_variable(ck, whole ? whole[i] : o->rank_variables[i]);
    if (st == DF_OK && o->train.save) st = o->train.save(o->train.user, ck);
    if (st == DF_OK) st = df_checkpoint_write(ck, path);
    df_checkpoint_free(ck);
    return st;
}

/* <dir>/ckpt_<N>: N = complete epochs, or the epoch in progress when stopped
 * inside one. Written by rank 0; collective. */
static df_status save_checkpoint(fit_run *r)
{
    df_fit_history *h = r->h;
    int number = h->epoch_step > 0 ? h->epochs_done + 1 : h->epochs_done;
    char path[sizeof h->last_checkpoint];
    df_status st = DF_OK;
    if (snprintf(path, sizeof path, "%s/ckpt_%d", r->o->checkpoint_dir, number) >= (int)sizeof path)
        st = df_error(DF_ERR_ARG, "df_fit: checkpoint path too long");
    if (st == DF_OK) st = create_slots(r);
    df_variable **whole = NULL;
    if ((st = sync_ranks(r, st, NULL, 0)) == DF_OK) st = gather_rank_variables(r, &whole);
    if (st != DF_OK) return st;
    if (r->leader) st = write_checkpoint(r, path, whole);
    free_stacked(r, whole);
    if ((st = sync_ranks(r, st, NULL, 0)) != DF_OK) return st;
    snprintf(h->last_checkpoint, sizeof h->last_checkpoint, "%s", path);
    if (r->progress != DF_FIT_PROGRESS_NONE) fprintf(r->out, "Saved checkpoint %s\n", path);
    return DF_OK;
}

/* The whole file, malloc'd, after room for a prefix of `before` bytes. */
static df_status read_file(const char *path, size_t before, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return df_error(DF_ERR_IO, "df_fit: cannot open %s: %s", path, strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    df_status st = DF_OK;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) st = df_error(DF_ERR_IO, "df_fit: cannot seek %s: %s", path, strerror(errno));
    *data = st == DF_OK ? df_malloc(before + (size_t)size + 1) : NULL;
    if (st == DF_OK && !*data) st = df_error(DF_ERR_NOMEM, "df_fit: out of memory reading %s", path);
    if (st == DF_OK && fread(*data + before, 1, (size_t)size, f) != (size_t)size)
        st = df_error(DF_ERR_IO, "df_fit: cannot read %s", path);
    fclose(f);
    *len = before + (size_t)size;
    return st;
}

/* Rank 0 finds the latest checkpoint and reads it; with comm it sends every
 * rank "<path>\0<the file's bytes>" and each parses the same bytes, so the
 * other machines need no shared file system. Collective. */
static df_status read_latest(const fit_run *r, char *path, size_t cap, df_checkpoint **ck)
{
    const char *dir = r->o->checkpoint_dir;
    *ck = NULL;
    df_status st = DF_OK;
    char *bytes = NULL;
    size_t len = 0, before = 0;
    if (r->leader) {
        int n = latest_checkpoint(dir);
        if (n < 0) st = df_error(DF_ERR_IO, "df_fit: no checkpoint (ckpt_N) in %s", dir);
        else snprintf(path, cap, "%s/ckpt_%d", dir, n);
        before = strlen(path) + 1;
        if (st == DF_OK && !r->comm) return df_checkpoint_read(path, ck);
        if (st == DF_OK && (st = read_file(path, before, &bytes, &len)) == DF_OK) memcpy(bytes, path, before);
    }
    if (!r->comm) return st;
    void *shared = bytes;
    if ((st = sync_ranks(r, st, NULL, 0)) == DF_OK) st = r->comm->broadcast(r->comm->user, &shared, &len);
    bytes = shared;
    if (st == DF_OK && !r->leader) {
        const char *end = memchr(bytes, 0, len);
        if (!end) st = df_error(DF_ERR_FORMAT, "df_fit: the checkpoint rank 0 sent has no path");
        else snprintf(path, cap, "%s", bytes);
        before = end ? (size_t)(end - bytes) + 1 : 0;
    }
    if (st == DF_OK && (st = df_checkpoint_read_memory(bytes + before, len - before, ck)) != DF_OK)
        st = df_error_prefix(st, path);
    free(bytes);
    return st;
}

static df_status restore_from(fit_run *r, const df_checkpoint *ck)
{
    const df_fit_options *o = r->o;
    const void *data;
    size_t len;
    df_status st = o->config ? df_config_record_check(o->config, ck) : DF_OK;
    if (st == DF_OK && o->restore_extra) st = o->restore_extra(o->user, ck);
    if (st == DF_OK) st = create_slots(r);
    if (st == DF_OK) st = df_checkpoint_get_blob(ck, FIT_PROGRESS_KEY, &data, &len);
    if (st == DF_OK) st = parse_progress(r, data, len);
    if (st == DF_OK) st = restore_state(r, ck);
    if (st == DF_OK) st = restore_rank_variables(r, ck);
    if (st == DF_OK && o->train.restore) st = o->train.restore(o->train.user, ck);
    return st;
}

/* With o->model: a copy of o whose variables and rank_variables list the
 * model's weights and carried state (where o gives none); free_model_lists
 * frees the lists. Without: o itself. */
typedef struct model_options {
    df_fit_options o;
    df_variable **weights, **state;
} model_options;

/* Whether a carried variable has rows of the batch (a recurrent state,
 * (B, H): per rank) or not (a Dropout layer's step counter, a scalar that
 * every rank advances alike: one shared variable, as the weights). */
static bool has_batch_rows(const df_variable *v) { return df_variable_tensor(v).ndim >= 1; }

/* The model's weights and its carried variables without batch rows
 * (state false), or its carried variables with them (state true), for
 * training batches of `batch` rows. NULL with *n -1 when the model cannot
 * list them (its message set), with *n 0 when out of memory. */
static df_variable **model_list(df_model *m, int64_t batch, bool state, int *n)
{
    const int n_weights = df_model_weights(m, NULL, 0);
    const int n_state = df_model_state_variables(m, batch, DF_STATE_MAIN, NULL, 0);
    *n = n_weights < 0 || n_state < 0 ? -1 : 0;
    df_variable **all = *n == 0 ? df_malloc((size_t)(n_weights + n_state + 1) * sizeof *all) : NULL;
    if (!all) {
        if (*n == 0) df_error(DF_ERR_NOMEM, "df_fit: out of memory listing the model's variables");
        return NULL;
    }
    df_model_weights(m, all, n_weights);
    df_model_state_variables(m, batch, DF_STATE_MAIN, all + n_weights, n_state);
    *n = 0;
    if (!state)
        for (int i = 0; i < n_weights; i++) all[(*n)++] = all[i];
    for (int i = n_weights; i < n_weights + n_state; i++)
        if (has_batch_rows(all[i]) == state) all[(*n)++] = all[i];
    return all;
}

static void free_model_lists(model_options *mo)
{
    free(mo->weights);
    free(mo->state);
}

static df_status with_model(const df_fit_options *o, model_options *mo, const df_fit_options **out)
{
    *mo = (model_options){.o = *o};
    *out = o;
    if (!o->model) return DF_OK;
    if (o->model_batch < 1) return df_error(DF_ERR_ARG, "df_fit: model_batch is %" PRId64 ", not >= 1", o->model_batch);
    /* the lists are taken now: a layer that builds at the first step would
     * have no weights in them, nor in any checkpoint, and a resume would
     * go on from fresh weights */
    for (int i = 0; o->n_variables == 0 && i < df_model_layer_count(o->model); i++)
        if (!df_layer_built(df_model_layer(o->model, i)))
            return df_error(DF_ERR_STATE, "df_fit: the model's layer '%s' is not built: call df_model_build with "
                            "its input shape before df_fit, so that checkpoints hold its weights",
                            df_layer_name(df_model_layer(o->model, i)));
    if (o->n_variables == 0 && !(mo->weights = model_list(o->model, o->model_batch, false, &mo->o.n_variables)))
        return mo->o.n_variables < 0 ? DF_ERR_STATE : DF_ERR_NOMEM;       /* the message says */
    if (o->n_rank_variables == 0 && !(mo->state = model_list(o->model, o->model_batch, true, &mo->o.n_rank_variables)))
        return mo->o.n_rank_variables < 0 ? DF_ERR_STATE : DF_ERR_NOMEM;
    if (mo->weights) mo->o.variables = mo->weights;
    if (mo->state) mo->o.rank_variables = mo->state;
    *out = &mo->o;
    return DF_OK;
}

df_status df_fit_write_checkpoint(const df_fit_options *o, const df_fit_history *h, const char *path)
{
    model_options mo;
    df_status st = with_model(o, &mo, &o);
    fit_run r = {.o = o, .h = (df_fit_history *)h};
    if (st == DF_OK) st = create_slots(&r);
    if (st == DF_OK) st = write_checkpoint(&r, path, NULL);
    free_model_lists(&mo);
    return st;
}

df_status df_fit_restore_checkpoint(const df_fit_options *o, const df_checkpoint *ck, df_fit_history *h)
{
    *h = (df_fit_history){.loss = NAN, .val_loss = NAN};
    model_options mo;
    df_status st = with_model(o, &mo, &o);
    fit_run r = {.o = o, .h = h};
    if (st == DF_OK) st = restore_from(&r, ck);
    free_model_lists(&mo);
    return st;
}

/* learning_rate_flag: the rate a resumed run goes on with, and whence. */
static void resumed_rate(const df_fit_options *o, char *note, size_t cap)
{
    float was = df_optimizer_learning_rate(o->optimizer), want = o->learning_rate;
    if (df_lr_schedule_active(&o->schedule) || want == 0 || want == was) {
        snprintf(note, cap, ", learning rate %g from the checkpoint", was);
        return;
    }
    df_optimizer_set_learning_rate(o->optimizer, want);
    snprintf(note, cap, ", learning rate %g from %s; the checkpoint had %g", want, o->learning_rate_flag, was);
}

/* Collective. Every rank restores rank 0's checkpoint, the data source's
 * record included. */
static df_status resume(fit_run *r)
{
    df_fit_history *h = r->h;
    char path[sizeof h->last_checkpoint] = "";
    df_checkpoint *ck;
    /* Nothing to resume yet (a restart script's first start): a new run, as Keras' BackupAndRestore. */
    double none = r->leader && latest_checkpoint(r->o->checkpoint_dir) < 0;
    df_status st = sync_ranks(r, DF_OK, &none, 1);
    if (st != DF_OK) return st;
    if (none > 0) {
        if (r->progress != DF_FIT_PROGRESS_NONE)
            fprintf(r->out, "No checkpoint in %s yet: starting a new run\n", r->o->checkpoint_dir);
        return DF_OK;
    }
    st = read_latest(r, path, sizeof path, &ck);
    if (st != DF_OK && !r->comm) return st;
    if (st == DF_OK) st = df_error_prefix(restore_from(r, ck), path);
    df_checkpoint_free(ck);
    if ((st = sync_ranks(r, st, NULL, 0)) != DF_OK) return st;
    h->resumed = true;
    snprintf(h->last_checkpoint, sizeof h->last_checkpoint, "%s", path);
    char note[256] = "";
    if (r->o->learning_rate_flag && r->o->optimizer) resumed_rate(r->o, note, sizeof note);
    size_t used = strlen(note);
    if (r->o->on_resume &&
        (st = sync_ranks(r, r->o->on_resume(r->o->user, h, note + used, sizeof note - used), NULL, 0)) != DF_OK)
        return st;
    if (r->progress != DF_FIT_PROGRESS_NONE)
        fprintf(r->out, "Resumed from %s (%d epochs done%s, step %" PRId64 "%s)\n", path, h->epochs_done,
                h->epoch_step ? " and part of the next" : "", h->steps, note);
    return DF_OK;
}

/* XXH64 of the checkpointed variables, in their order. */
static df_status weights_hash(const fit_run *r, uint64_t *hash)
{
    int n;
    df_status st = create_slots(r);
    df_variable **vars = st == DF_OK ? checkpointed_variables(r, &n) : NULL;
    if (!vars) return st == DF_OK ? DF_ERR_NOMEM : st;
    uint64_t h = 0;
    for (int i = 0; i < n; i++) {
        df_tensor t = df_variable_tensor(vars[i]);
        h = XXH64(t.data, (size_t)df_tensor_numel(&t) * df_dtype_size(t.dtype), h);
    }
    free(vars);
    *hash = h;
    return DF_OK;
}

/* With comm and check_weights: fails on every rank unless every rank's
 * weights hash as rank 0's. Collective. */
static df_status check_same_weights(const fit_run *r, int epoch)
{
    const df_fit_comm *c = r->comm;
    if (!c || !r->o->check_weights) return DF_OK;
    uint64_t mine = 0, first = 0;
    df_status st = weights_hash(r, &mine);
    void *sent = &mine;
    size_t len = sizeof mine;
    df_status cst = c->broadcast(c->user, &sent, &len);
    if (cst != DF_OK) return cst;
    if (!r->leader) {
        if (len == sizeof first) memcpy(&first, sent, sizeof first);
        free(sent);
        if (st == DF_OK && first != mine)
            st = df_error(DF_ERR_STATE, "df_fit: the weights differ between the ranks after epoch %d (XXH64 of the "
                          "checkpointed variables: rank 0 %016" PRIx64 ", rank %d %016" PRIx64 "): is the "
                          "gradient all-reduce installed, with the same threads and BLAS on every rank?",
                          epoch + 1, first, c->rank, mine);
    }
    if ((st = sync_ranks(r, st, NULL, 0)) == DF_OK && r->progress != DF_FIT_PROGRESS_NONE)
        fprintf(r->out, "Weights XXH64 %016" PRIx64 " on all %d ranks\n", mine, c->size);
    return st;
}

/* --------------------------------------------------------------- CSV */

static df_status csv_failed(const fit_run *r)
{
    return df_error(DF_ERR_IO, "df_fit: cannot write the CSV log %s: %s", r->o->csv_path,
                    errno ? strerror(errno) : "write error");
}

/* After a resume: keeps the header and the rows up to the checkpoint's step,
 * so steps redone after a crash are not logged twice. Atomic. */
static df_status trim_csv(const fit_run *r)
{
    const char *path = r->o->csv_path;
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT ? DF_OK : df_error(DF_ERR_IO, "df_fit: cannot read %s: %s", path, strerror(errno));
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return df_error(DF_ERR_IO, "df_fit: cannot write %s: %s", tmp, strerror(errno));
    }
    char line[512];
    while (fgets(line, sizeof line, in)) {
        int epoch;
        long long step;
        if (sscanf(line, "%d,%lld,", &epoch, &step) == 2 && step > r->h->steps) continue;
        fputs(line, out);
    }
    bool ok = !ferror(in) && !ferror(out);
    fclose(in);
    errno = 0;
    if (fflush(out) != 0 || fsync(fileno(out)) != 0) ok = false;
    if (fclose(out) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        df_status st = df_error(DF_ERR_IO, "df_fit: cannot rewrite %s: %s", path, errno ? strerror(errno) : "write error");
        unlink(tmp);
        return st;
    }
    return DF_OK;
}

static df_status open_csv(fit_run *r)
{
    const char *path = r->o->csv_path;
    if (!path || !r->leader) return DF_OK;
    bool append = r->h->resumed && access(path, F_OK) == 0;
    df_status st = append ? trim_csv(r) : DF_OK;
    if (st != DF_OK) return st;
    errno = 0;
    r->csv = fopen(path, append ? "a" : "w");
    if (!r->csv) return df_error(DF_ERR_IO, "df_fit: cannot write the CSV log %s: %s", path, strerror(errno));
    if (!append && fprintf(r->csv, "epoch,step,loss,val_loss\n") < 0) return csv_failed(r);
    return DF_OK;
}

static df_status csv_row(fit_run *r, int epoch, double loss, double val_loss)
{
    if (!r->csv) return DF_OK;
    errno = 0;
    int n = isnan(val_loss) ? fprintf(r->csv, "%d,%" PRId64 ",%.6f,\n", epoch, r->h->steps, loss)
                            : fprintf(r->csv, "%d,%" PRId64 ",,%.6f\n", epoch, r->h->steps, val_loss);
    return n < 0 ? csv_failed(r) : DF_OK;
}

/* Each epoch's rows reach the disk before its checkpoint names their steps. */
static df_status csv_flush(fit_run *r)
{
    if (!r->csv) return DF_OK;
    errno = 0;
    if (fflush(r->csv) != 0 || ferror(r->csv) || fsync(fileno(r->csv)) != 0) return csv_failed(r);
    return DF_OK;
}

static df_status close_csv(fit_run *r)
{
    if (!r->csv) return DF_OK;
    errno = 0;
    bool ok = fflush(r->csv) == 0 && !ferror(r->csv);
    if (fclose(r->csv) != 0) ok = false;
    r->csv = NULL;
    return ok ? DF_OK : csv_failed(r);
}

/* ----------------------------------------------------- progress output */

/* "240s", "850ms/step" as Keras prints them. */
static void keras_times(double elapsed, int64_t steps, char *total, char *per_step)
{
    sprintf(total, "%.0fs", elapsed);
    double per = steps ? elapsed / (double)steps : 0;
    if (per >= 1) sprintf(per_step, "%.0fs/step", per);
    else if (per >= 0.01) sprintf(per_step, "%.0fms/step", per * 1000);
    else sprintf(per_step, "%.2fms/step", per * 1000);
}

/* Keras' bar on a terminal, plain lines otherwise; total 0 = unknown.
 * Returns whether a plain line was printed. */
static bool show_progress(const fit_run *r, int64_t done, int64_t total, double elapsed, double mean_loss, bool last)
{
    if (r->progress != DF_FIT_PROGRESS_AUTO) return false;
    char t[32], per[32], of[32] = "Unknown";
    keras_times(elapsed, done, t, per);
    if (total) snprintf(of, sizeof of, "%" PRId64, total);
    if (r->tty) {
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int filled = total ? (int)(WIDTH * done / total) : WIDTH;
        for (int i = 0; i < WIDTH; i++) bar[i] = i < filled - 1 || (last && i < filled) ? '=' : i == filled - 1 ? '>' : '.';
        bar[WIDTH] = 0;
        fprintf(r->out, "\r%" PRId64 "/%s [%s] - %s %s - loss: %.4f%s", done, of, bar, t, per, mean_loss, last ? "\n" : "");
    } else {
        int64_t every = total >= 10 ? total / 10 : total ? 1 : 100;
        if (!last && done % every) return false;
        fprintf(r->out, "%" PRId64 "/%s - %s %s - loss: %.4f\n", done, of, t, per, mean_loss);
    }
    fflush(r->out);
    return !r->tty;
}

/* DF_FIT_PROGRESS_STEPS: what TensorFlow's custom-loop tutorial prints. */
static void print_epoch_end_lines(const fit_run *r, int epoch, double mean, double elapsed)
{
    if (r->progress == DF_FIT_PROGRESS_STEPS)
        fprintf(r->out, "Epoch %d Loss %.4f\nTime taken for 1 epoch %.2f sec\n\n", epoch, mean, elapsed);
}

static void print_step_lines(const fit_run *r, int epoch, int64_t batch, double loss, double mean, double elapsed,
                             bool last)
{
    if (r->progress != DF_FIT_PROGRESS_STEPS) return;
    if (batch % 100 == 0) fprintf(r->out, "Epoch %d Batch %" PRId64 " Loss %.4f\n", epoch, batch, loss);
    if (last) print_epoch_end_lines(r, epoch, mean, elapsed);
}

/* --------------------------------------------------------------- steps */

static df_status scalar_loss(const df_tensor *t, const char *fn, double *loss)
{
    if (t->dtype != DF_F32 || df_tensor_numel(t) != 1) {
        char shape[64];
        return df_error(DF_ERR_SHAPE, "df_fit: the first output of %s must be a scalar f32 loss, got %s %s", fn,
                        df_dtype_name(t->dtype), df_shape_str(t->ndim, t->shape, shape, sizeof shape));
    }
    *loss = *(const float *)t->data;
    return DF_OK;
}

static df_status next_batch(fit_run *r, const df_fit_data *d, const char *which, int64_t step, bool *end)
{
    *end = false;
    /* cleared, so that an input the source leaves unfilled shows as such, not as
     * the previous batch's view or a scalar without data */
    memset(r->inputs, 0, (size_t)r->o->n_inputs * sizeof *r->inputs);
    df_status st = d->next(d->user, r->inputs, end);
    for (int i = 0; st == DF_OK && !*end && i < r->o->n_inputs; i++)
        if (!r->inputs[i].data)
            return df_error(DF_ERR_ARG, "df_fit: the %s data did not fill input %d of %d at step %" PRId64
                            " (its next() must set inputs[0..%d])", which, i, r->o->n_inputs, step,
                            r->o->n_inputs - 1);
        else if (df_tensor_numel(&r->inputs[i]) == 0) {   /* its mean loss would be 0, or NaN, and count as a step */
            char shape[96];
            return df_error(DF_ERR_ARG, "df_fit: the %s data gave an empty batch at step %" PRId64
                            " (input %d has shape %s)", which, step, i,
                            df_shape_str(r->inputs[i].ndim, r->inputs[i].shape, shape, sizeof shape));
        }
    if (st == DF_OK) return DF_OK;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", df_last_error());
    return df_error(st, "df_fit: the %s data failed at step %" PRId64 ": %s", which, step, msg);
}

/* Collective: every rank has a batch, or every rank ends the epoch. */
static df_status agree_on_batch(const fit_run *r, df_status st, int64_t step, bool *end)
{
    double ended[1] = {*end};
    if ((st = sync_ranks(r, st, ended, 1)) != DF_OK) return st;
    int size = r->comm ? r->comm->size : 1;
    if (ended[0] > 0 && ended[0] < size)
        return df_error(DF_ERR_STATE, "df_fit: the training data of %.0f of the %d ranks ended before step %" PRId64
                        ": every rank needs as many batches", ended[0], size, step);
    *end = ended[0] > 0;
    return DF_OK;
}

static df_status train_one(fit_run *r, double *loss)
{
    const df_fit_options *o = r->o;
    df_tensor out;
    df_status st = df_function_call(o->train_step, r->inputs, o->n_inputs, &out, 1);
    if (st != DF_OK && r->comm && r->comm->abort) r->comm->abort(r->comm->user, st);   /* peers may be in its all-reduce */
    return st == DF_OK ? scalar_loss(&out, "train_step", loss) : st;
}

/* Collective: *loss becomes the mean over the ranks and *stop whether any
 * rank asked to stop, so that all stop after the same step. */
static df_status agree_on_step(fit_run *r, df_status st, int epoch, double *loss, bool *stop)
{
    double v[2] = {*loss, stop_requested};
    if ((st = sync_ranks(r, st, v, 2)) != DF_OK) return st;
    *loss = r->comm ? v[0] / r->comm->size : v[0];
    *stop = v[1] > 0;
    r->stop = r->stop || *stop;
    if (r->o->terminate_on_nan && !isfinite(*loss))
        return df_error(DF_ERR_STATE, "df_fit: the loss is %g at step %" PRId64 " (epoch %d): stopping (terminate_on_nan)",
                        *loss, r->h->steps + 1, epoch + 1);
    return DF_OK;
}

/* One epoch, or the rest of one a resumed checkpoint stopped in. A stop
 * request ends it early with h->epoch_step = the steps done. The status is
 * the same on every rank. */
static df_status run_epoch(fit_run *r, int epoch, double *mean_loss)
{
    const df_fit_options *o = r->o;
    df_fit_history *h = r->h;
    int64_t total = o->steps_per_epoch, first = h->epoch_step, ran = 0, shown = -1;
    if (first == 0) {
        reset_states(o);
        if (o->train.start_epoch) o->train.start_epoch(o->train.user);
    }
    h->epoch_step = 0;
    if (r->progress == DF_FIT_PROGRESS_AUTO) fprintf(r->out, "Epoch %d/%d\n", epoch + 1, r->epochs);
    /* a resumed epoch's mean counts the steps before the stop too */
    double start = now_seconds(), sum = first ? r->epoch_sum : 0;
    df_status st = DF_OK;        /* a CSV row rank 0 could not write: every rank learns at the next sync */
    for (int64_t i = first; total == 0 || i < total; i++) {
        if (df_lr_schedule_active(&o->schedule) && st == DF_OK)   /* NaN from a checkpoint's rate: refused */
            st = df_optimizer_set_learning_rate(o->optimizer, df_lr_schedule_rate(&o->schedule, r->base_lr, h->steps));
        bool end = false, stop = false;
        double loss = 0;
        if (st == DF_OK) st = next_batch(r, &o->train, "training", h->steps + 1, &end);
        if ((st = agree_on_batch(r, st, h->steps + 1, &end)) != DF_OK || end) break;
        st = train_one(r, &loss);
        if (st == DF_OK && o->profile && !r->profiling) {   /* from the second step on: the first traced */
            r->profiling = true;
            st = df_graph_set_profiling(df_function_last_graph(o->train_step), true);
        }
        if ((st = agree_on_step(r, st, epoch, &loss, &stop)) != DF_OK) break;
        sum += loss;
        ran++;
        h->steps++;
        bool last = (total > 0 && i + 1 == total) || stop;
        st = csv_row(r, epoch + 1, loss, NAN);
        if (st == DF_OK && o->on_step) {
            df_fit_step_logs logs = {epoch + 1, i, h->steps, loss, last};
            st = o->on_step(o->user, &logs);
            /* a stop it asks for ends this step (Keras' stop_training from a
             * batch callback); ranks learn of one only at the next step's sync */
            if (!r->comm && stop_requested && !stop) {
                stop = r->stop = true;
                last = true;
            }
        }
        print_step_lines(r, epoch + 1, i, loss, sum / (double)(first + ran), now_seconds() - start, last);
        if (show_progress(r, i + 1, total, now_seconds() - start, sum / (double)(first + ran), i + 1 == total))
            shown = i + 1;
        if (stop && (total == 0 || i + 1 < total)) {
            if (r->tty && r->progress == DF_FIT_PROGRESS_AUTO) fprintf(r->out, "\n");
            h->epoch_step = i + 1;
            break;
        }
    }
    int64_t done = first + ran;
    if (st == DF_OK && total == 0 && ran > 0 && h->epoch_step == 0) {          /* the source ended the epoch */
        if (shown != done) show_progress(r, done, done, now_seconds() - start, sum / (double)done, true);
        print_epoch_end_lines(r, epoch + 1, sum / (double)done, now_seconds() - start);
    }
    *mean_loss = done ? sum / (double)done : NAN;
    r->epoch_sum = sum;
    return sync_ranks(r, st, NULL, 0);
}

/* Copies of the rank variables (the training batch's carried state), to
 * put back after validation: validation starts from a zero state and leaves
 * one (reset_states zeroes every slot), and the state the epoch's last step
 * carried must still be there for the checkpoint (a sampler starts from it)
 * and for whatever runs next. NULL, the error set, when out of memory. */
static void **copy_rank_state(const df_fit_options *o)
{
    void **copies = df_calloc((size_t)o->n_rank_variables + 1, sizeof *copies);
    for (int i = 0; copies && i < o->n_rank_variables; i++) {
        const df_tensor t = df_variable_tensor(o->rank_variables[i]);
        const size_t bytes = (size_t)df_tensor_numel(&t) * df_dtype_size(t.dtype);
        if ((copies[i] = df_malloc(bytes ? bytes : 1))) {
            memcpy(copies[i], t.data, bytes);
            continue;
        }
        while (i > 0) free(copies[--i]);
        free(copies);
        copies = NULL;
    }
    if (!copies) df_error(DF_ERR_NOMEM, "df_fit: out of memory keeping the carried state over validation");
    return copies;
}

/* Puts the copies back (st: the validation's status so far, kept). */
static df_status restore_rank_state(const df_fit_options *o, void **copies, df_status st)
{
    for (int i = 0; i < o->n_rank_variables; i++) {
        df_variable *v = o->rank_variables[i];
        df_tensor t = df_variable_tensor(v);
        t.data = copies[i];
        const df_status put = df_variable_assign(v, &t);
        if (st == DF_OK) st = put;
        free(copies[i]);
    }
    free(copies);
    return st;
}

/* The mean loss over the validation batches of all ranks. Collective. */
static df_status evaluate(fit_run *r, double *mean)
{
    const df_fit_options *o = r->o;
    const df_fit_data *d = &o->validation;
    void **carried = copy_rank_state(o);
    df_status st = carried ? DF_OK : DF_ERR_NOMEM;
    double v[2] = {0, 0};        /* sum of the batch losses, batches */
    if (carried) reset_states(o);
    if (carried && d->start_epoch) d->start_epoch(d->user);
    while (carried) {
        bool end;
        df_tensor out;
        double loss = 0;
        if ((st = next_batch(r, d, "validation", (int64_t)v[1] + 1, &end)) != DF_OK || end) break;
        if ((st = df_function_call(o->eval_step, r->inputs, o->n_inputs, &out, 1)) != DF_OK) break;
        if ((st = scalar_loss(&out, "eval_step", &loss)) != DF_OK) break;
        v[0] += loss;
        v[1]++;
    }
    if (st == DF_OK && v[1] == 0) st = df_error(DF_ERR_STATE, "df_fit: the validation data gave no batch");
    if (carried) {
        reset_states(o);
        st = restore_rank_state(o, carried, st);
    }
    st = sync_ranks(r, st, v, 2);
    *mean = v[1] > 0 ? v[0] / v[1] : NAN;
    return st;
}

/* Early stopping's record, on the validation loss (the training loss
 * without validation); true when the patience has run out. */
static bool no_longer_improving(fit_run *r, double monitored)
{
    df_fit_history *h = r->h;
    if (monitored < h->best - r->o->early_stopping_min_delta) {
        h->best = monitored;
        r->wait = 0;
    } else {
        r->wait++;
    }
    return r->o->early_stopping_patience > 0 && r->wait >= r->o->early_stopping_patience;
}

static void print_epoch_line(const fit_run *r, int epoch, double elapsed)
{
    if (r->progress != DF_FIT_PROGRESS_EPOCH) return;
    const df_fit_history *h = r->h;
    fprintf(r->out, "Epoch %d/%d - %.0fs - loss: %.4f", epoch + 1, r->epochs, elapsed, h->loss);
    if (r->has_val) fprintf(r->out, " - val_loss: %.4f", h->val_loss);
    fprintf(r->out, "\n");
}

/* Validation, early stopping, on_epoch_end. Collective. */
static df_status end_of_epoch(fit_run *r, int epoch, bool *stop)
{
    const df_fit_options *o = r->o;
    df_fit_history *h = r->h;
    df_status st = DF_OK;
    h->val_loss = NAN;
    if (r->has_val) {
        if ((st = evaluate(r, &h->val_loss)) != DF_OK) return st;
        if (r->progress == DF_FIT_PROGRESS_AUTO || r->progress >= DF_FIT_PROGRESS_MESSAGES)
            fprintf(r->out, "val_loss: %.4f\n", h->val_loss);
        st = csv_row(r, epoch + 1, NAN, h->val_loss);
    }
    h->stopped_early = no_longer_improving(r, r->has_val ? h->val_loss : h->loss);
    if (st == DF_OK && o->on_epoch_end) {
        df_fit_logs logs = {epoch + 1, h->steps, h->loss, h->val_loss,
                            o->optimizer ? df_optimizer_learning_rate(o->optimizer) : 0};
        st = o->on_epoch_end(o->user, &logs);
    }
    *stop = h->stopped_early;
    return sync_ranks(r, st, NULL, 0);
}

/* Collective: the epoch's CSV rows are on disk, and *stop says whether any
 * rank was asked to stop (also during validation). */
static df_status agree_on_epoch(fit_run *r, bool *stop)
{
    double v[1] = {r->stop || stop_requested};
    df_status st = sync_ranks(r, csv_flush(r), v, 1);
    *stop = r->stop = v[0] > 0;
    return st;
}

static df_status train_epochs(fit_run *r)
{
    const df_fit_options *o = r->o;
    df_fit_history *h = r->h;
    for (int epoch = h->epochs_done; epoch < r->epochs; epoch++) {
        double start = now_seconds();
        df_status st = run_epoch(r, epoch, &h->loss);
        if (st == DF_OK) st = check_same_weights(r, epoch);   /* the trained weights, before validation's lines */
        bool partial = h->epoch_step > 0, early = false, stop = false;
        if (st == DF_OK && !partial) {
            h->epochs_done = epoch + 1;
            st = end_of_epoch(r, epoch, &early);
            print_epoch_line(r, epoch, now_seconds() - start);
        }
        if (st == DF_OK) st = agree_on_epoch(r, &stop);
        if (st != DF_OK) return st;
        bool last = epoch + 1 == r->epochs || stop || early;
        if (o->checkpoint_dir && (last || (epoch + 1) % r->every == 0) && (st = save_checkpoint(r)) != DF_OK) return st;
        if (stop) {
            h->interrupted = true;
            if (r->progress != DF_FIT_PROGRESS_NONE)
                fprintf(r->out, "Interrupted: stopped after step %" PRId64 "%s%s%s\n", h->steps,
                        o->checkpoint_dir ? " with a checkpoint; " : "",
                        o->checkpoint_dir ? (o->resume_flag ? o->resume_flag : "resume") : "",
                        o->checkpoint_dir ? " continues from there" : "");
            break;
        }
        if (early) {
            if (r->progress != DF_FIT_PROGRESS_NONE)
                fprintf(r->out, "Early stopping: %s did not improve for %d epochs (best %.4f)\n",
                        r->has_val ? "val_loss" : "loss", r->wait, h->best);
            break;
        }
    }
    return DF_OK;
}

/* ----------------------------------------------------------------- fit */

/* Directories, writability, resume, the CSV. Collective. */
static df_status prepare(fit_run *r)
{
    const df_fit_options *o = r->o;
    df_status st = DF_OK;
    if (r->leader) {
        if (o->checkpoint_dir) st = make_dirs(o->checkpoint_dir);
        if (st == DF_OK && o->checkpoint_dir) st = claim_directory(r);
        if (st == DF_OK && o->csv_path) st = check_writable(o->csv_path, "CSV log");
        if (st == DF_OK && o->csv_path) st = remove_stale_csv_temps(o->csv_path);
        if (st == DF_OK && o->plot_path) st = check_writable(o->plot_path, "loss curve");
    }
    if ((st = sync_ranks(r, st, NULL, 0)) != DF_OK) return st;
    if (o->resume && (st = resume(r)) != DF_OK) return st;
    return sync_ranks(r, open_csv(r), NULL, 0);
}

/* The CSV closed and, after a run that succeeded, the SVG drawn (rank 0). */
static df_status finish_files(fit_run *r, bool plot)
{
    df_status st = close_csv(r);
    if (st == DF_OK && plot && r->leader && r->o->plot_path) st = df_plot_loss_csv(r->o->csv_path, r->o->plot_path);
    return st;
}

static df_status fit_with(const df_fit_options *o, df_fit_history *h)
{
    df_status st = check_comm(o->comm);
    if (st != DF_OK) return st;          /* no comm to tell the other ranks with */
    fit_run r = {.o = o, .comm = o->comm, .leader = !o->comm || o->comm->rank == 0, .lock_fd = -1,
                 .out = o->out ? o->out : stdout, .h = h, .has_val = o->validation.next != NULL,
                 .epochs = o->epochs ? o->epochs : 1, .every = o->checkpoint_every ? o->checkpoint_every : 1};
    r.progress = r.leader ? o->progress : DF_FIT_PROGRESS_NONE;
    st = sync_ranks(&r, check_options(o), NULL, 0);
    if (st == DF_OK) st = agree_on_settings(&r);
    if (st != DF_OK) return st;
    r.tty = isatty(fileno(r.out));
    r.base_lr = o->learning_rate > 0 ? o->learning_rate : o->optimizer ? df_optimizer_learning_rate(o->optimizer) : 0;
    stop_requested = 0;
    struct sigaction saved[N_HANDLED];
    if (o->handle_signals) install_signals(saved);
    st = prepare(&r);
    if (st == DF_OK) st = train_epochs(&r);          /* the same status on every rank */
    df_status finished = finish_files(&r, st == DF_OK);
    if (st == DF_OK) st = sync_ranks(&r, finished, NULL, 0);
    unlock_directory(&r);
    if (o->handle_signals) restore_signals(saved);
    return st;
}

df_status df_fit(const df_fit_options *o, df_fit_history *history)
{
    df_fit_history local;
    df_fit_history *h = history ? history : &local;
    *h = (df_fit_history){.loss = NAN, .val_loss = NAN, .best = INFINITY};
    if (!o) return df_error(DF_ERR_ARG, "df_fit: NULL options");
    model_options mo;
    df_status st = with_model(o, &mo, &o);
    if (st == DF_OK) st = fit_with(o, h);
    free_model_lists(&mo);
    return st;
}

df_status df_fit_latest_checkpoint(const char *dir, char *path, size_t cap)
{
    if (!dir || !path || cap == 0) return df_error(DF_ERR_ARG, "df_fit_latest_checkpoint: null argument");
    int n = latest_checkpoint(dir);
    if (n < 0) return df_error(DF_ERR_IO, "no checkpoint (ckpt_N) in %s: train first", dir);
    if (snprintf(path, cap, "%s/ckpt_%d", dir, n) >= (int)cap) return df_error(DF_ERR_ARG, "checkpoint path too long");
    return DF_OK;
}

/* ------------------------------------------------------- the op profile */

df_status df_function_print_profile(const df_function *f, FILE *out)
{
    df_graph *g = df_function_last_graph(f);
    if (!g || !out) return df_error(DF_ERR_ARG, "df_function_print_profile: %s", g ? "NULL stream" : "never called");
    enum { MAX_OPS = 64 };
    df_op_profile prof[MAX_OPS];
    int64_t runs;
    int n = df_graph_profile(g, prof, MAX_OPS, &runs);
    if (n < 0) return DF_ERR_ARG;
    if (n > MAX_OPS) n = MAX_OPS;
    if (runs == 0) return DF_OK;
    double total = 0;
    for (int i = 0; i < n; i++) total += prof[i].seconds;
    fprintf(out, "\nProfile over %lld steps (%.1f ms/step in ops):\n%-22s %6s %12s %7s\n", (long long)runs,
            1e3 * total / (double)runs, "op", "nodes", "ms/step", "share");
    for (int i = 0; i < n; i++)
        fprintf(out, "%-22s %6d %12.3f %6.1f%%\n", prof[i].op, prof[i].nodes, 1e3 * prof[i].seconds / (double)runs,
                total > 0 ? 100 * prof[i].seconds / total : 0);
    return DF_OK;
}
