/* test_mpi.c — the allreduce_mean op and data-parallel char-rnn training
 * with two MPI ranks (--with-mpi builds).
 *
 * `make check` runs this program directly: it first checks the errors of a
 * process without MPI, then starts itself as two ranks with
 * `$MPIRUN $MPIRUN_FLAGS -np 2` (a watchdog ends a run that hangs) and exits
 * with their status. Under mpirun each rank checks:
 *  - fused mean of tensors of several shapes, one allreduce_mean node, its
 *    cost model (12 FLOPs, 96 bytes for 12 floats);
 *  - the optimizer's gradient transform: one fused node for all gradients,
 *    the update of SGD with the mean gradient;
 *  - char-rnn, 2 ranks x 2 rows against one process with the whole batch of
 *    4 rows (a reference model on each rank): same losses and weights within
 *    float tolerance, bitwise identical weights on both ranks;
 *  - cr_dist_agree and cr_dist_check_same report differences clearly;
 *  - ranks that reduce different sizes fail cleanly on both;
 *  - df_fit data parallel (df_fit_mpi_comm): 2 ranks x half batches give
 *    one process's loss curve and weights; rank 0 alone writes and prints;
 *    a stop on rank 1 stops both after the same step; resume from a
 *    checkpoint only rank 0 can read; errors on one rank reach both;
 *  - a rank that does not answer within the timeout fails the other.
 * Output: one "ok"/"FAIL" line per check and a Criterion-style synthesis
 * line, which tests/summary.sh counts. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "dagflow_mpi.h"
#include "../graph/graph.h"
#include "../ops/registry.h"
#include "batches.h"
#include "dist.h"
#include "model.h"

static int rank, size, checks, failures, sections, sections_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        checks++;                                                                 \
        if (cond) break;                                                          \
        failures++;                                                               \
        fprintf(stderr, "FAIL (rank %d) %s:%d: ", rank, __FILE__, __LINE__);      \
        fprintf(stderr, __VA_ARGS__);                                             \
        fprintf(stderr, "\n");                                                    \
    } while (0)

#define CHECK_ERROR(st, want, needle)                                                                   \
    CHECK((st) == (want) && strstr(df_last_error(), (needle)), "expected %s with \"%s\", got %s: %s",   \
          df_status_name(want), (needle), df_status_name(st), df_last_error())

static void section(const char *name)
{
    int mine = failures, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("%s %s\n", all ? "FAIL" : "ok  ", name);
    fflush(stdout);
    sections++;
    sections_failed += all > 0;
}

static int count_op(const df_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i]->op->name, op) && g->nodes[i]->sched_pos >= 0) n++;
    return n;
}

/* ------------------------------------------------------ without MPI_Init */

static df_node *scale_half(df_graph *g, df_node *grad, void *user) { return df_mul(g, grad, df_scalar(g, 0.5f)); }

static int without_mpi(void)
{
    df_allreduce_opts opts = {.timeout = 0};
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_F32, 1, (int64_t[]){3}, "x"), *out;
    df_status st = df_allreduce_mean(g, &opts, 1, &x, &out);
    CHECK_ERROR(st, DF_ERR_STATE, "MPI is not initialised");
    CHECK(df_graph_status(g) == DF_ERR_STATE, "the graph keeps the error");
    df_graph_free(g);

    /* Through the optimizer: the trace fails with the same message. */
    df_variable *w = df_variable_new("w", DF_F32, 1, (int64_t[]){3}, df_init_ones(), NULL);
    df_optimizer *opt = df_sgd_new(0.1f);
    df_optimizer_set_gradient_transform(opt, df_allreduce_gradient, &opts);
    g = df_graph_new();
    df_node *loss = df_sum(g, df_mul(g, df_var(g, w), df_var(g, w)), NULL, 0, false), *grad;
    df_gradients(g, loss, NULL, 1, (df_node *[]){df_var(g, w)}, &grad);
    st = df_optimizer_apply(g, opt, 1, &w, &grad);
    CHECK_ERROR(st, DF_ERR_STATE, "MPI is not initialised");
    df_graph_free(g);
    (void)scale_half;
    df_optimizer_free(opt);
    df_variable_free(w);
    printf("%s MPI not initialised: the op and the gradient transform fail with DF_ERR_STATE\n",
           failures ? "FAIL" : "ok  ");
    return failures;
}

/* Starts this program as two ranks with args (output to out, if given);
 * a watchdog kills the run after limit seconds: then -1. */
static int launch(const char *args, const char *out, int limit)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self[len] = 0;
    const char *mpirun = getenv("MPIRUN") && *getenv("MPIRUN") ? getenv("MPIRUN") : "mpirun";
    const char *flags = getenv("MPIRUN_FLAGS") ? getenv("MPIRUN_FLAGS") : "";
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec %s %s -np 2 '%s' %s%s%s", mpirun, flags, self, args, out ? " >" : "", out ? out : "");
    if (out) strcat(cmd, " 2>&1");
    printf("running: %s\n", cmd);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);                      /* the watchdog ends mpirun and its ranks together */
        /* Open MPI leaves allocations behind at exit: in a sanitizer build,
         * LeakSanitizer would fail every rank. ASan and UBSan stay on. */
        char asan[1024];
        const char *was = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", was ? was : "", was && *was ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited++) {
        if (waited == 10 * limit) {
            fprintf(stderr, "FAIL: the two ranks did not finish within %d s (hang); killing them\n", limit);
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(100000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int launch_ranks(int failed_without_mpi)
{
    int rc = launch(failed_without_mpi ? "--ranks 1" : "--ranks 0", NULL, 120);
    return rc < 0 ? 1 : rc;
}

/* ----------------------------------------------------------- with 2 ranks */

static void fused_mean(void)
{
    df_allreduce_opts opts = {.comm = MPI_COMM_WORLD};
    float a[6], b = 10.0f * (float)rank, c[5];
    for (int i = 0; i < 6; i++) a[i] = (float)(i + 1) * (rank + 1);
    for (int i = 0; i < 5; i++) c[i] = rank ? -3.0f : 1.0f;
    df_graph *g = df_graph_new();
    df_node *in[3] = {df_placeholder(g, DF_F32, 2, (int64_t[]){2, 3}, "a"), df_placeholder(g, DF_F32, 0, NULL, "b"),
                      df_placeholder(g, DF_F32, 1, (int64_t[]){5}, "c")};
    df_node *out[3];
    CHECK(df_allreduce_mean(g, &opts, 3, in, out) == DF_OK, "%s", df_last_error());
    for (int i = 0; i < 3; i++) df_graph_output(g, out[i]);
    df_tensor t[3] = {df_tensor_make(DF_F32, a, 2, (int64_t[]){2, 3}), df_tensor_make(DF_F32, &b, 0, NULL),
                      df_tensor_make(DF_F32, c, 1, (int64_t[]){5})};
    df_tensor r[3];
    for (int run = 0; run < 2; run++) {          /* twice: the first run also checks sizes */
        df_status st = df_graph_run(g, t, 3, r, 3);
        CHECK(st == DF_OK, "run: %s", df_last_error());
        if (st != DF_OK) break;
        for (int i = 0; i < 6; i++) CHECK(((float *)r[0].data)[i] == (float)(i + 1) * 1.5f, "a[%d]", i);
        CHECK(*(float *)r[1].data == 5.0f, "b: %g", *(float *)r[1].data);
        for (int i = 0; i < 5; i++) CHECK(((float *)r[2].data)[i] == -1.0f, "c[%d]", i);
        CHECK(r[0].ndim == 2 && r[0].shape[1] == 3 && r[1].ndim == 0 && r[2].shape[0] == 5, "output shapes");
    }
    CHECK(count_op(g, "allreduce_mean") == 1, "one fused node, got %d", count_op(g, "allreduce_mean"));
    /* The cost model counts this rank's pack: one FLOP (the 1/ranks scale)
     * per element, 6 + 1 + 5 floats read and the same written. */
    for (int i = 0; i < g->n_nodes; i++) {
        const df_node *n = g->nodes[i];
        if (strcmp(n->op->name, "allreduce_mean")) continue;
        df_op_cost c = {-1, -1};
        CHECK(n->op->cost != NULL, "allreduce_mean has no cost model");
        if (n->op->cost) n->op->cost(n, &c);
        CHECK(c.flops == 12 && c.bytes == 96, "allreduce_mean cost: %g flops, %g bytes (want 12, 96)", c.flops,
              c.bytes);
    }
    df_graph_free(g);
    section("allreduce_mean: the mean of three tensors over 2 ranks with one fused node (and its cost)");
}

/* loss = sum((w1 * x)^2) + sum(w2 * x): gradients 2 x^2 w1 and x. */
static void gradient_transform(void)
{
    df_allreduce_opts opts = {.comm = MPI_COMM_WORLD, .timeout = 60};
    df_variable *w1 = df_variable_new("w1", DF_F32, 1, (int64_t[]){4}, df_init_ones(), NULL);
    df_variable *w2 = df_variable_new("w2", DF_F32, 2, (int64_t[]){2, 2}, df_init_zeros(), NULL);
    df_variable *vars[2] = {w1, w2};
    df_optimizer *opt = df_sgd_new(0.25f);
    df_optimizer_set_gradient_transform(opt, df_allreduce_gradient, &opts);
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_F32, 1, (int64_t[]){4}, "x");
    df_node *x2 = df_reshape(g, x, 2, (int64_t[]){2, 2});
    df_node *v1 = df_var(g, w1), *v2 = df_var(g, w2);
    df_node *loss = df_add(g, df_sum(g, df_square(g, df_mul(g, v1, x)), NULL, 0, false),
                           df_sum(g, df_mul(g, v2, x2), NULL, 0, false));
    df_node *grads[2];
    df_gradients(g, loss, NULL, 2, (df_node *[]){v1, v2}, grads);
    CHECK(df_optimizer_apply(g, opt, 2, vars, grads) == DF_OK, "%s", df_last_error());
    df_graph_output(g, loss);
    float xs[4];
    for (int i = 0; i < 4; i++) xs[i] = rank ? (float)(i + 1) : 1.0f;        /* rank 0: 1 1 1 1; rank 1: 1 2 3 4 */
    df_tensor in = df_tensor_make(DF_F32, xs, 1, (int64_t[]){4}), out;
    CHECK(df_graph_run(g, &in, 1, &out, 1) == DF_OK, "%s", df_last_error());
    CHECK(count_op(g, "allreduce_mean") == 1, "one fused all-reduce for both gradients, got %d",
          count_op(g, "allreduce_mean"));
    const float *p1 = df_variable_tensor(w1).data, *p2 = df_variable_tensor(w2).data;
    for (int i = 0; i < 4; i++) {
        float x0 = 1, x1 = (float)(i + 1);
        float g1 = (2 * x0 * x0 + 2 * x1 * x1) / 2, g2 = (x0 + x1) / 2;       /* mean gradients, w1 = 1 */
        CHECK(fabsf(p1[i] - (1 - 0.25f * g1)) < 1e-6f, "w1[%d] = %g, want %g", i, p1[i], 1 - 0.25f * g1);
        CHECK(fabsf(p2[i] - (0 - 0.25f * g2)) < 1e-6f, "w2[%d] = %g, want %g", i, p2[i], -0.25f * g2);
    }
    df_graph_free(g);
    df_optimizer_free(opt);
    df_variable_free(w1);
    df_variable_free(w2);
    section("gradient transform: one all-reduce for all gradients, SGD with the mean gradient");
}

/* A corpus of 26 letters repeated with variations. */
static int32_t *corpus(int64_t n)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)((i % 7 == 0 ? (s >> 16) : (uint32_t)i) % 12);
    }
    return ids;
}

static uint64_t model_hash(cr_model *m)
{
    uint64_t h = 0;
    for (int i = 0; i < m->n_params; i++) {
        df_tensor t = df_variable_tensor(m->params[i]);
        h = XXH64(t.data, (size_t)df_tensor_numel(&t) * sizeof(float), h);
    }
    return h;
}

static void data_parallel_charrnn(void)
{
    enum { B = 4, T = 12, STEPS = 6 };
    int64_t n = 4000;
    int32_t *ids = corpus(n);
    static const char *const modes[] = {"LSTM, shuffle", "LSTM, streams", "2 x GRU, SGD momentum, clip 0.05, streams"};
    cr_config cfg = {.vocab = 12, .embed = 6, .hidden = 16, .learning_rate = 0.01f, .seed = 7};
    cr_model dp, ref;                      /* data parallel (2 x 2 rows), and one process with 4 rows */
    for (int mode = 0; mode < 3; mode++) {   /* stateful rows carry over from mode 0 to 1 */
        if (mode != 1) {
            if (mode == 2) {
                cr_model_free(&dp);
                cr_model_free(&ref);
                cfg = (cr_config){.vocab = 12, .embed = 6, .hidden = 16, .learning_rate = 0.1f, .seed = 7,
                                  .cell = CR_CELL_GRU, .layers = 2, .optimizer = CR_OPT_SGD, .momentum = 0.9f,
                                  .clipnorm = 0.05f};
            }
            CHECK(cr_model_init(&dp, &cfg) == DF_OK && cr_model_init(&ref, &cfg) == DF_OK, "%s", df_last_error());
            CHECK(cr_dist_setup_model(&dp) == DF_OK, "%s", df_last_error());
        }
        cr_batcher bdp, bref;
        cr_batching how = mode ? CR_STREAMS : CR_SHUFFLE;
        CHECK(cr_batcher_init(&bdp, ids, n, T, B, how, 50, 3) == DF_OK, "%s", df_last_error());
        CHECK(cr_batcher_init(&bref, ids, n, T, B, how, 50, 3) == DF_OK, "%s", df_last_error());
        CHECK(cr_dist_shard(&bdp) == DF_OK && bdp.rows == B / 2 && bdp.row0 == rank * B / 2, "shard");
        int32_t x[B * T], y[B * T], xr[B * T], yr[B * T];
        df_tensor xt = df_tensor_make(DF_I32, x, 2, (int64_t[]){B / 2, T}), yt = df_tensor_make(DF_I32, y, 2, (int64_t[]){B / 2, T});
        df_tensor xrt = df_tensor_make(DF_I32, xr, 2, (int64_t[]){B, T}), yrt = df_tensor_make(DF_I32, yr, 2, (int64_t[]){B, T});
        float worst_loss = 0;
        for (int s = 0; s < STEPS; s++) {
            CHECK(cr_batcher_next(&bdp, x, y) && cr_batcher_next(&bref, xr, yr), "batches");
            CHECK(!memcmp(x, xr + rank * (B / 2) * T, sizeof(int32_t) * (B / 2) * T), "step %d: rank %d's rows", s, rank);
            float l_dp, l_ref;
            CHECK(cr_step(&dp, "fit", &xt, &yt, &l_dp) == DF_OK, "%s", df_last_error());
            CHECK(cr_step(&ref, "fit", &xrt, &yrt, &l_ref) == DF_OK, "%s", df_last_error());
            MPI_Allreduce(MPI_IN_PLACE, &l_dp, 1, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);    /* df_fit's mean */
            l_dp /= 2;
            worst_loss = fmaxf(worst_loss, fabsf(l_dp - l_ref));
        }
        CHECK(worst_loss < 2e-6f, "mean loss of the ranks vs one process: off by %g", worst_loss);
        float worst = 0;
        for (int i = 0; i < dp.n_params; i++) {
            df_tensor a = df_variable_tensor(dp.params[i]), b = df_variable_tensor(ref.params[i]);
            for (int64_t k = 0; k < df_tensor_numel(&a); k++)
                worst = fmaxf(worst, fabsf(((float *)a.data)[k] - ((float *)b.data)[k]));
        }
        CHECK(worst < 1e-5f, "%s: weights off the one-process run by %g", modes[mode], worst);
        uint64_t mine = model_hash(&dp), other[2];
        MPI_Allgather(&mine, 1, MPI_UINT64_T, other, 1, MPI_UINT64_T, MPI_COMM_WORLD);
        CHECK(other[0] == other[1], "weights differ between ranks: %016llx %016llx", (unsigned long long)other[0],
              (unsigned long long)other[1]);
        if (rank == 0)
            printf("     %s: %d steps, loss within %.1g and weights within %.1g of one process; XXH64 %016llx on both ranks\n",
                   modes[mode], STEPS, worst_loss, worst, (unsigned long long)other[0]);
        cr_batcher_free(&bdp);
        cr_batcher_free(&bref);
    }
    CHECK(count_op(cr_graph(&dp, "fit"), "allreduce_mean") == 1 && count_op(cr_graph(&ref, "fit"), "allreduce_mean") == 0,
          "one all-reduce in the data-parallel step");

    /* A rank whose weights differ is df_fit's check_weights now (fit_errors:
     * rank1_weights_drift). */
    df_status st;

    /* Batch not divisible by the ranks. */
    cr_batcher odd;
    CHECK(cr_batcher_init(&odd, ids, n, T, 5, CR_SHUFFLE, 50, 3) == DF_OK, "%s", df_last_error());
    CHECK_ERROR(cr_dist_shard(&odd), DF_ERR_ARG, "--batch 5 cannot be split evenly over 2 processes");
    cr_batcher_free(&odd);

    /* An error on rank 1 only reaches every rank, naming it. */
    st = cr_dist_agree(rank == 1 ? df_error(DF_ERR_IO, "cannot read corpus.txt") : DF_OK);
    CHECK_ERROR(st, DF_ERR_IO, "rank 1 of 2: cannot read corpus.txt");
    CHECK(cr_dist_agree(DF_OK) == DF_OK, "all fine");
    ids[0] += rank;
    CHECK_ERROR(cr_dist_check_same(ids, (size_t)n * sizeof *ids, "corpora (--data)"), DF_ERR_STATE,
                "corpora (--data) differ between the ranks");
    cr_model_free(&dp);
    cr_model_free(&ref);
    free(ids);
    section("char-rnn: 2 ranks x 2 rows equal 1 process x 4 rows; identical weights on both ranks; clear errors");
}

/* ------------------------------------------------- df_fit, data parallel */

/* A toy regression, y = 3x + 2 over 64 points in batches of 8, reshuffled
 * each epoch by an RNG every rank seeds alike: with rows/row0 a rank takes
 * its share of each batch (all 8 rows: one process with the whole batch). */
enum { FIT_POINTS = 64, FIT_BATCH = 8, FIT_STEPS = FIT_POINTS / FIT_BATCH };

typedef struct fit_data {
    float x[FIT_POINTS], y[FIT_POINTS];
    int order[FIT_POINTS], pos, row0, rows;
    df_rng rng;
    float bx[FIT_BATCH], by[FIT_BATCH];
    int64_t calls, stop_at_call, fail_at_call, end_at_call;   /* on this call (0: never) */
} fit_data;

static void fit_data_init(fit_data *d, uint64_t seed, int row0, int rows)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < FIT_POINTS; i++) {
        d->x[i] = -1.0f + 2.0f * (float)i / (FIT_POINTS - 1);
        d->y[i] = 3.0f * d->x[i] + 2.0f + 0.1f * (float)((i * 37) % 11 - 5) / 5.0f;
        d->order[i] = i;
    }
    df_rng_seed(&d->rng, seed);
    d->row0 = row0;
    d->rows = rows;
}

static void fit_data_start(void *user)
{
    fit_data *d = user;
    d->pos = 0;
    for (int i = FIT_POINTS - 1; i > 0; i--) {
        int j = (int)df_rng_below(&d->rng, (uint32_t)i + 1), t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
}

static df_status fit_data_next(void *user, df_tensor *in, bool *end)
{
    fit_data *d = user;
    if (d->pos + FIT_BATCH > FIT_POINTS || ++d->calls == d->end_at_call) {
        *end = true;
        return DF_OK;
    }
    if (d->calls == d->fail_at_call) return df_error(DF_ERR_IO, "the disk went away");
    if (d->calls == d->stop_at_call) df_fit_request_stop();
    for (int i = 0; i < d->rows; i++) {
        d->bx[i] = d->x[d->order[d->pos + d->row0 + i]];
        d->by[i] = d->y[d->order[d->pos + d->row0 + i]];
    }
    d->pos += FIT_BATCH;
    in[0] = df_tensor_make(DF_F32, d->bx, 2, (int64_t[]){d->rows, 1});
    in[1] = df_tensor_make(DF_F32, d->by, 2, (int64_t[]){d->rows, 1});
    return DF_OK;
}

/* What the ranks share (position, order, RNG), not this rank's rows. */
typedef struct fit_record { int pos, order[FIT_POINTS]; df_rng rng; } fit_record;

static df_status fit_data_save(void *user, df_checkpoint *ck)
{
    fit_data *d = user;
    fit_record rec = {.pos = d->pos, .rng = d->rng};
    memcpy(rec.order, d->order, sizeof rec.order);
    return df_checkpoint_put_blob(ck, "data/position", &rec, sizeof rec);
}

static df_status fit_data_restore(void *user, const df_checkpoint *ck)
{
    fit_data *d = user;
    const void *p;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, "data/position", &p, &len);
    if (st != DF_OK) return st;
    if (len != sizeof(fit_record)) return df_error(DF_ERR_FORMAT, "bad data/position record");
    fit_record rec;
    memcpy(&rec, p, sizeof rec);
    d->pos = rec.pos;
    d->rng = rec.rng;
    memcpy(d->order, rec.order, sizeof rec.order);
    return DF_OK;
}

typedef struct fit_toy {
    df_variable *w, *b, *vars[2];
    df_optimizer *opt;
    df_function *step, *eval;
    fit_data train, val;
    bool perturb_rank1;        /* on_step: rank 1 nudges its bias in each epoch */
} fit_toy;

static df_allreduce_opts fit_allreduce = {.timeout = 20};

static df_node *fit_toy_loss(df_graph *g, fit_toy *m, df_node **in)
{
    df_node *pred = df_add(g, df_matmul(g, in[0], df_var(g, m->w), false, false), df_var(g, m->b));
    return df_mean(g, df_square(g, df_sub(g, pred, in[1])), NULL, 0, false);
}

static df_status fit_build_step(df_graph *g, df_node **in, void *user)
{
    fit_toy *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *loss = fit_toy_loss(g, m, in);
    df_tape_end(tape);
    df_node *grads[2];
    if (df_tape_gradient(tape, loss, 2, m->vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 2, m->vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static df_status fit_build_eval(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, fit_toy_loss(g, user, in));
    return df_graph_status(g);
}

static df_status fit_epoch_end(void *user, const df_fit_logs *logs) { return DF_OK; }

/* Weights that drift apart during an epoch's steps (e.g. threads or BLAS that
 * differ between the machines): rank 1 nudges its bias after an epoch's first step. */
static df_status fit_step_end(void *user, const df_fit_step_logs *logs)
{
    fit_toy *m = user;
    if (m->perturb_rank1 && rank == 1 && logs->batch == 0) *(float *)df_variable_tensor(m->b).data += 1e-3f;
    return DF_OK;
}

/* parallel: this rank's half of each batch and the gradient all-reduce;
 * else the whole batch, alone. */
static void fit_toy_init(fit_toy *m, float init, bool parallel)
{
    memset(m, 0, sizeof *m);
    m->w = df_variable_new("dense/kernel", DF_F32, 2, (int64_t[]){1, 1}, df_init_constant(init), NULL);
    m->b = df_variable_new("dense/bias", DF_F32, 1, (int64_t[]){1}, df_init_constant(init), NULL);
    m->vars[0] = m->w;
    m->vars[1] = m->b;
    m->opt = df_adam_new(0.05f, 0.9f, 0.999f, 1e-7f);
    fit_allreduce.comm = MPI_COMM_WORLD;
    if (parallel) df_optimizer_set_gradient_transform(m->opt, df_allreduce_gradient, &fit_allreduce);
    m->step = df_function_new("toy_step", fit_build_step, m);
    m->eval = df_function_new("toy_eval", fit_build_eval, m);
    int rows = parallel ? FIT_BATCH / 2 : FIT_BATCH, row0 = parallel ? rank * rows : 0;
    fit_data_init(&m->train, 7, row0, rows);
    fit_data_init(&m->val, 9, row0, rows);
}

static void fit_toy_free(fit_toy *m)
{
    df_function_free(m->step);
    df_function_free(m->eval);
    df_optimizer_free(m->opt);
    df_variable_free(m->w);
    df_variable_free(m->b);
}

static df_fit_options fit_toy_options(fit_toy *m, int epochs, const df_fit_comm *comm, FILE *out)
{
    return (df_fit_options){
        .train_step = m->step, .eval_step = m->eval, .n_inputs = 2, .optimizer = m->opt,
        .n_variables = 2, .variables = m->vars,
        .train = {.next = fit_data_next, .start_epoch = fit_data_start, .save = fit_data_save,
                  .restore = fit_data_restore, .user = &m->train},
        .validation = {.next = fit_data_next, .start_epoch = fit_data_start, .user = &m->val},
        .epochs = epochs, .progress = DF_FIT_PROGRESS_EPOCH, .out = out, .comm = comm, .check_weights = comm != NULL,
        .on_epoch_end = fit_epoch_end, .on_step = fit_step_end, .user = m,
    };
}

static float fit_value(const df_variable *v) { return *(const float *)df_variable_tensor(v).data; }

/* A directory of this rank's own, and paths in it. */
static char fit_dir[64];

static const char *fit_path(const char *name)
{
    static char path[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", fit_dir, name);
    return path[k];
}

/* Rows of a df_fit CSV: epoch, step, loss (NaN on a validation row), val_loss. */
typedef struct csv_rows { int n; int epoch[256]; long long step[256]; double loss[256], val[256]; } csv_rows;

static bool read_csv(const char *path, csv_rows *rows)
{
    FILE *f = fopen(path, "r");
    rows->n = 0;
    if (!f) return false;
    char line[256];
    bool ok = fgets(line, sizeof line, f) && !strcmp(line, "epoch,step,loss,val_loss\n");
    while (ok && rows->n < 256 && fgets(line, sizeof line, f)) {
        int i = rows->n++;
        char *p = line, *end;
        rows->epoch[i] = (int)strtol(p, &end, 10);
        rows->step[i] = strtoll(end + 1, &end, 10);
        p = end + 1;
        rows->loss[i] = *p == ',' ? NAN : strtod(p, &end);
        p = *p == ',' ? p + 1 : end + 1;
        rows->val[i] = *p == '\n' ? NAN : strtod(p, &end);
    }
    fclose(f);
    return ok;
}

/* The largest difference of two CSVs' losses; -1 when their rows differ. */
static double csv_difference(const csv_rows *a, const csv_rows *b)
{
    if (a->n != b->n || a->n == 0) return -1;
    double worst = 0;
    for (int i = 0; i < a->n; i++) {
        if (a->epoch[i] != b->epoch[i] || a->step[i] != b->step[i] || isnan(a->loss[i]) != isnan(b->loss[i]) ||
            isnan(a->val[i]) != isnan(b->val[i]))
            return -1;
        if (!isnan(a->loss[i])) worst = fmax(worst, fabs(a->loss[i] - b->loss[i]));
        if (!isnan(a->val[i])) worst = fmax(worst, fabs(a->val[i] - b->val[i]));
    }
    return worst;
}

static int count_files(const char *path, const char *prefix)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static bool same_on_both_ranks(double v)
{
    double both[2];
    MPI_Allgather(&v, 1, MPI_DOUBLE, both, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    return memcmp(&both[0], &both[1], sizeof v) == 0;
}

/* A memstream for df_fit's output, and what it got. */
typedef struct captured { FILE *f; char *text; size_t len; } captured;
static void capture(captured *c) { c->text = NULL; c->len = 0; c->f = open_memstream(&c->text, &c->len); }
static void release(captured *c) { fclose(c->f); free(c->text); }
static int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void fit_like_one_process(df_fit_comm *comm)
{
    enum { EPOCHS = 3 };
    /* One process with the whole batch (each rank computes it). */
    fit_toy ref;
    fit_toy_init(&ref, 0.0f, false);
    df_fit_options o = fit_toy_options(&ref, EPOCHS, NULL, NULL);
    o.progress = DF_FIT_PROGRESS_NONE;
    o.csv_path = fit_path("reference.csv");
    df_fit_history href;
    CHECK(df_fit(&o, &href) == DF_OK, "reference: %s", df_last_error());

    fit_toy dp;
    fit_toy_init(&dp, 0.0f, true);
    captured out;
    capture(&out);
    o = fit_toy_options(&dp, EPOCHS, comm, out.f);
    o.csv_path = fit_path("losses.csv");          /* this rank's own directory: rank 1 could write here */
    o.plot_path = fit_path("loss.svg");
    o.checkpoint_dir = fit_path("run");
    df_fit_history h;
    df_status st = df_fit(&o, &h);
    fflush(out.f);
    CHECK(st == DF_OK, "2 ranks: %s", df_last_error());
    CHECK(h.epochs_done == EPOCHS && h.steps == EPOCHS * FIT_STEPS, "%d epochs, %lld steps", h.epochs_done,
          (long long)h.steps);
    CHECK(fabs(h.loss - href.loss) < 2e-6 && fabs(h.val_loss - href.val_loss) < 2e-6,
          "loss %.9g val_loss %.9g, one process %.9g %.9g", h.loss, h.val_loss, href.loss, href.val_loss);
    CHECK(same_on_both_ranks(h.loss) && same_on_both_ranks(h.val_loss) && same_on_both_ranks(h.best),
          "the ranks report different losses");
    float dw = fabsf(fit_value(dp.w) - fit_value(ref.w)), db = fabsf(fit_value(dp.b) - fit_value(ref.b));
    CHECK(dw < 1e-5f && db < 1e-5f, "weights off the one-process run by %g, %g", dw, db);
    CHECK(same_on_both_ranks(fit_value(dp.w)) && same_on_both_ranks(fit_value(dp.b)), "weights differ between ranks");
    if (rank == 0) {
        csv_rows a, b;
        CHECK(read_csv(fit_path("reference.csv"), &a) && read_csv(o.csv_path, &b), "cannot read the CSVs");
        double diff = csv_difference(&a, &b);
        CHECK(diff >= 0 && diff <= 2e-6, "CSV of 2 ranks vs one process: %s %g",
              diff < 0 ? "different rows" : "largest difference", diff);
        CHECK(b.n == EPOCHS * (FIT_STEPS + 1), "%d CSV rows", b.n);
        CHECK(count_files(o.checkpoint_dir, "ckpt_") == EPOCHS, "rank 0 wrote %d checkpoints",
              count_files(o.checkpoint_dir, "ckpt_"));
        CHECK(access(o.plot_path, F_OK) == 0, "rank 0 wrote no SVG");
        CHECK(occurrences(out.text, "Epoch ") == EPOCHS, "rank 0 prints each epoch: %s", out.text);
        printf("     df_fit: %d epochs on 2 ranks x 4 rows: CSV within %.1g of one process x 8 rows, weights within "
               "%.1g\n", EPOCHS, diff, fmax(dw, db));
    } else {
        CHECK(count_files(fit_dir, "") == 1, "rank 1 wrote files: %d entries in its directory besides the reference "
              "CSV", count_files(fit_dir, "") - 1);
        CHECK(out.len == 0, "rank 1 printed: %s", out.text);
    }
    release(&out);
    fit_toy_free(&ref);
    fit_toy_free(&dp);
    section("df_fit: 2 ranks x half batches give one process's loss curve and weights; rank 0 alone writes and "
            "prints; identical weights on both ranks");
}

/* rank 1's files go where it cannot write: only rank 0 may touch any. */
static const char *rank_path(const char *name)
{
    static char path[2][160];
    static int k;
    k ^= 1;
    if (rank == 0) return fit_path(name);
    snprintf(path[k], sizeof path[k], "/dev/null/rank1/%s", name);
    return path[k];
}

static df_fit_options fit_resumable(fit_toy *m, int epochs, const df_fit_comm *comm, FILE *out, const char *dir)
{
    df_fit_options o = fit_toy_options(m, epochs, comm, out);
    o.checkpoint_dir = rank_path(dir);
    char csv[96];
    snprintf(csv, sizeof csv, "%s.csv", dir);
    o.csv_path = rank_path(csv);
    return o;
}

static void fit_stop_and_resume(df_fit_comm *comm)
{
    enum { EPOCHS = 2, STOP = 3 };
    fit_toy full;                                 /* uninterrupted, 2 ranks */
    fit_toy_init(&full, 0.5f, true);
    df_fit_options o = fit_resumable(&full, EPOCHS, comm, NULL, "full");
    o.progress = DF_FIT_PROGRESS_NONE;
    CHECK(df_fit(&o, NULL) == DF_OK, "uninterrupted: %s", df_last_error());

    fit_toy m;
    fit_toy_init(&m, 0.5f, true);
    if (rank == 1) m.train.stop_at_call = STOP;   /* df_fit_request_stop on rank 1 alone */
    captured out;
    capture(&out);
    o = fit_resumable(&m, EPOCHS, comm, out.f, "stopped");
    df_fit_history h;
    df_status st = df_fit(&o, &h);
    fflush(out.f);
    CHECK(st == DF_OK, "%s", df_last_error());
    CHECK(h.interrupted && h.steps == STOP && h.epoch_step == STOP && h.epochs_done == 0,
          "rank %d: interrupted %d after step %lld (epoch step %lld)", rank, h.interrupted, (long long)h.steps,
          (long long)h.epoch_step);
    CHECK(same_on_both_ranks(fit_value(m.w)) && same_on_both_ranks(fit_value(m.b)), "weights differ between ranks");
    if (rank == 0) {
        CHECK(count_files(o.checkpoint_dir, "ckpt_") == 1 && access(fit_path("stopped/ckpt_1"), F_OK) == 0,
              "one checkpoint, ckpt_1: %d", count_files(o.checkpoint_dir, "ckpt_"));
        CHECK(occurrences(out.text, "Interrupted: stopped after step 3") == 1, "%s", out.text);
    } else {
        CHECK(out.len == 0, "rank 1 printed: %s", out.text);
    }
    release(&out);
    fit_toy_free(&m);

    /* Resume: rank 0 alone can read the checkpoint (rank 1's directory does
     * not exist); other starting weights, fresh optimizer and data. */
    fit_toy_init(&m, -4.0f, true);
    o = fit_resumable(&m, EPOCHS, comm, NULL, "stopped");
    o.progress = DF_FIT_PROGRESS_NONE;
    o.resume = true;
    st = df_fit(&o, &h);
    CHECK(st == DF_OK, "resume: %s", df_last_error());
    CHECK(h.resumed && h.steps == EPOCHS * FIT_STEPS && m.train.calls == EPOCHS * FIT_STEPS - STOP,
          "rank %d: resumed %d, %lld steps, %lld calls", rank, h.resumed, (long long)h.steps, (long long)m.train.calls);
    CHECK(fit_value(m.w) == fit_value(full.w) && fit_value(m.b) == fit_value(full.b),
          "rank %d: resumed w %.9g b %.9g, uninterrupted %.9g %.9g", rank, fit_value(m.w), fit_value(m.b),
          fit_value(full.w), fit_value(full.b));
    if (rank == 0) {
        csv_rows a, b;
        CHECK(read_csv(fit_path("full.csv"), &a) && read_csv(fit_path("stopped.csv"), &b), "cannot read the CSVs");
        CHECK(csv_difference(&a, &b) == 0, "the resumed CSV differs from the uninterrupted one");
    }
    fit_toy_free(&m);
    fit_toy_free(&full);
    section("df_fit: a stop on rank 1 alone stops both after the same step with one checkpoint; 2 ranks resume "
            "it from rank 0's disk bit for bit");
}

/* df_fit with rank 1 (or 0) set up to fail: both ranks return want with
 * the needle in the message. */
typedef void (*fit_setup)(fit_toy *m, df_fit_options *o);

static void expect_fit_error(df_fit_comm *comm, fit_setup setup, df_status want, const char *needle)
{
    fit_toy m;
    fit_toy_init(&m, 0.0f, true);
    df_fit_options o = fit_toy_options(&m, 2, comm, NULL);
    o.progress = DF_FIT_PROGRESS_NONE;
    setup(&m, &o);
    df_status st = df_fit(&o, NULL);
    CHECK_ERROR(st, want, needle);
    fit_toy_free(&m);
}

static void rank1_data_fails(fit_toy *m, df_fit_options *o) { m->train.fail_at_call = rank == 1 ? 3 : 0; }
static void rank1_data_ends(fit_toy *m, df_fit_options *o) { m->train.end_at_call = rank == 1 ? 3 : 0; }
static void rank1_val_fails(fit_toy *m, df_fit_options *o) { m->val.fail_at_call = rank == 1 ? 2 : 0; }
static void rank1_more_epochs(fit_toy *m, df_fit_options *o) { o->epochs += rank; }
static void rank0_csv_unwritable(fit_toy *m, df_fit_options *o) { o->csv_path = rank ? NULL : "/dev/null/x.csv"; }
static void rank1_weights_drift(fit_toy *m, df_fit_options *o) { m->perturb_rank1 = true; }
/* A new run into rank 0's directory of another run: refused on both ranks. */
static void another_run_in_the_directory(fit_toy *m, df_fit_options *o)
{
    o->checkpoint_dir = rank_path("taken");
    if (rank == 0) {
        mkdir(o->checkpoint_dir, 0777);
        char path[256];
        snprintf(path, sizeof path, "%s/ckpt_1", o->checkpoint_dir);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
    }
}

static void fit_errors(df_fit_comm *comm)
{
    expect_fit_error(comm, rank1_data_fails, DF_ERR_IO,
                     "rank 1 of 2: df_fit: the training data failed at step 3: the disk went away");
    expect_fit_error(comm, rank1_data_ends, DF_ERR_STATE, "the training data of 1 of the 2 ranks ended before step 3");
    expect_fit_error(comm, rank1_val_fails, DF_ERR_IO, "rank 1 of 2: df_fit: the validation data failed at step 2");
    expect_fit_error(comm, rank1_more_epochs, DF_ERR_ARG, "rank 1 of 2: df_fit: the ranks run different loops");
    expect_fit_error(comm, rank0_csv_unwritable, DF_ERR_IO, "cannot write the CSV log /dev/null/x.csv");
    expect_fit_error(comm, another_run_in_the_directory, DF_ERR_STATE, "already holds a run (up to ckpt_1)");
    expect_fit_error(comm, rank1_weights_drift, DF_ERR_STATE, "the weights differ between the ranks after epoch 1");
    CHECK(strstr(df_last_error(), "rank 0 ") && strstr(df_last_error(), "rank 1 "), "names both hashes: %s",
          df_last_error());
    CHECK(!df_fit_mpi_comm(MPI_COMM_WORLD, -1) && strstr(df_last_error(), "timeout"), "%s", df_last_error());
    CHECK(!df_fit_mpi_comm(MPI_COMM_NULL, 0) && strstr(df_last_error(), "MPI_COMM_NULL"), "%s", df_last_error());
    section("df_fit: an error on one rank (data, validation, options, a file rank 0 cannot write, the "
            "directory of another run, diverged weights) makes both return it with the message");
}

/* A (2,1) state per rank, rank r's rows r*10, r*10+1: a checkpoint holds
 * both ranks' rows (rank 0's first), a 2-rank resume gives each its own,
 * one process reads all four. */
static void fit_rank_variables(df_fit_comm *comm)
{
    fit_toy m;
    fit_toy_init(&m, 0.5f, true);
    df_variable *state = df_variable_new("state/h", DF_F32, 2, (int64_t[]){2, 1}, df_init_zeros(), NULL);
    float *rows = df_variable_tensor(state).data;
    rows[0] = (float)(rank * 10);
    rows[1] = (float)(rank * 10 + 1);
    df_fit_options o = fit_resumable(&m, 1, comm, NULL, "rankvars");
    o.n_rank_variables = 1;
    o.rank_variables = &state;
    o.progress = DF_FIT_PROGRESS_NONE;
    CHECK(df_fit(&o, NULL) == DF_OK, "%s", df_last_error());
    if (rank == 0) {
        df_checkpoint *ck = NULL;
        df_variable *all = df_variable_new("state/h", DF_F32, 2, (int64_t[]){4, 1}, df_init_zeros(), NULL);
        CHECK(df_checkpoint_read(fit_path("rankvars/ckpt_1"), &ck) == DF_OK &&
              df_checkpoint_restore_variable(ck, all) == DF_OK, "%s", df_last_error());
        const float *a = df_variable_tensor(all).data;
        CHECK(a[0] == 0 && a[1] == 1 && a[2] == 10 && a[3] == 11, "the checkpoint holds %g %g %g %g", a[0], a[1], a[2],
              a[3]);
        df_checkpoint_free(ck);
        df_variable_free(all);
    }
    fit_toy_free(&m);
    fit_toy_init(&m, 0.5f, true);
    rows[0] = rows[1] = -1;
    o = fit_resumable(&m, 1, comm, NULL, "rankvars");
    o.n_rank_variables = 1;
    o.rank_variables = &state;
    o.progress = DF_FIT_PROGRESS_NONE;
    o.resume = true;
    CHECK(df_fit(&o, NULL) == DF_OK, "%s", df_last_error());
    CHECK(rows[0] == rank * 10 && rows[1] == rank * 10 + 1, "rank %d resumed with %g %g", rank, rows[0], rows[1]);
    fit_toy_free(&m);
    df_variable_free(state);
    /* shapes that differ between the ranks: both fail, before any gather */
    fit_toy_init(&m, 0.5f, true);
    state = df_variable_new("state/h", DF_F32, 2, (int64_t[]){2 + rank, 1}, df_init_zeros(), NULL);
    o = fit_resumable(&m, 1, comm, NULL, "rankvars2");
    o.n_rank_variables = 1;
    o.rank_variables = &state;
    o.progress = DF_FIT_PROGRESS_NONE;
    CHECK_ERROR(df_fit(&o, NULL), DF_ERR_SHAPE, "rank_variables[0] (state/h) has another size on some rank");
    fit_toy_free(&m);
    df_variable_free(state);
    section("df_fit: rank_variables are checkpointed as both ranks' rows and each rank resumes with its own");
}

static void data_parallel_fit(void)
{
    snprintf(fit_dir, sizeof fit_dir, "/tmp/dffitmpi.%d.XXXXXX", rank);
    CHECK(mkdtemp(fit_dir) != NULL, "mkdtemp: %s", strerror(errno));
    df_fit_comm *comm = df_fit_mpi_comm(MPI_COMM_WORLD, 20);
    CHECK(comm && comm->rank == rank && comm->size == 2, "%s", df_last_error());
    if (comm) {
        fit_like_one_process(comm);
        fit_stop_and_resume(comm);
        fit_errors(comm);
        fit_rank_variables(comm);
    }
    df_fit_mpi_comm_free(comm);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fit_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", fit_dir);
}

static void size_mismatch(void)
{
    df_allreduce_opts opts = {.comm = MPI_COMM_WORLD, .timeout = 60};
    df_graph *g = df_graph_new();
    int64_t len = 3 + rank;
    df_node *x = df_placeholder(g, DF_F32, 1, &len, "x"), *out;
    df_allreduce_mean(g, &opts, 1, &x, &out);
    df_graph_output(g, out);
    float data[4] = {1, 2, 3, 4};
    df_tensor in = df_tensor_make(DF_F32, data, 1, &len), r;
    CHECK_ERROR(df_graph_run(g, &in, 1, &r, 1), DF_ERR_STATE, "the ranks disagree on the all-reduce size");
    df_graph_free(g);
    section("ranks that reduce different sizes both fail with a clear error");
}

/* Rank 0 runs an all-reduce with a 0.3 s timeout on a communicator of its
 * own; rank 1 answers 2 s late. After a timeout the op's request stays
 * pending (char-rnn ends the job then), so rank 1 answers it by hand: the
 * first run of an allreduce_mean node starts with a nonblocking MAX
 * all-reduce of {count, -count, timed, -timed} (the agreement check). */
static void timeout(void)
{
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    if (rank == 0) {
        df_allreduce_opts opts = {.comm = comm, .timeout = 0.3};
        df_graph *g = df_graph_new();
        df_node *x = df_placeholder(g, DF_F32, 1, (int64_t[]){2}, "x"), *out;
        df_allreduce_mean(g, &opts, 1, &x, &out);
        df_graph_output(g, out);
        float data[2] = {1, 2};
        df_tensor in = df_tensor_make(DF_F32, data, 1, (int64_t[]){2}), r;
        double start = MPI_Wtime();
        df_status st = df_graph_run(g, &in, 1, &r, 1);
        double waited = MPI_Wtime() - start;
        CHECK_ERROR(st, DF_ERR_STATE, "no reply from the other rank within 0.3 s: a peer has died or hung");
        CHECK(waited >= 0.3 && waited < 1.5, "gave up after %.2f s", waited);
        df_graph_free(g);
    } else {
        sleep(2);
        long long v[4] = {2, -2, 1, -1};
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, v, 4, MPI_LONG_LONG, MPI_MAX, comm, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
    }
    section("a rank that gets no answer within the timeout fails (DF_ERR_STATE) instead of waiting");
}

/* Rank 1's train step fails (its trace does) while rank 0 runs its step into
 * the gradient all-reduce, which waits forever (timeout 0): only df_fit's
 * abort hook can end the job. Its own mpirun, since the job ends. */
static df_status broken_step(df_graph *g, df_node **in, void *user)
{
    df_graph_set_error(g, DF_ERR_ARG, "rank 1's step is broken on purpose");
    return df_graph_status(g);
}

static int step_fails_on_one_rank(void)
{
    df_fit_comm *comm = df_fit_mpi_comm(MPI_COMM_WORLD, 0);
    fit_allreduce.timeout = 0;
    fit_toy m;
    fit_toy_init(&m, 0.5f, true);
    if (rank == 1) {
        df_function_free(m.step);
        m.step = df_function_new("toy_step", broken_step, &m);
    }
    df_fit_options o = fit_toy_options(&m, 2, comm, stdout);
    df_status st = df_fit(&o, NULL);
    printf("rank %d: df_fit returned %s and the job goes on\n", rank, df_status_name(st));
    fit_toy_free(&m);
    df_fit_mpi_comm_free(comm);
    return 0;
}

static int check_step_failure_ends_the_job(void)
{
    char out[] = "/tmp/test_mpi_step.XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0) return 1;
    close(fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = launch("--step-fails", out, 30);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char text[8192] = "";
    FILE *f = fopen(out, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f) fclose(f);
    unlink(out);
    bool ok = rc > 0 && took < 20 && strstr(text, "rank 1 of 2: the train step failed") &&
              strstr(text, "rank 1's step is broken on purpose");
    printf("%s a train step failing on one rank ends the job at once with its error (exit %d after %.1f s)\n",
           ok ? "ok  " : "FAIL", rc, took);
    if (!ok) printf("its output:\n%s\n", text);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    bool step_fails = argc == 2 && !strcmp(argv[1], "--step-fails");
    if (!step_fails && (argc < 3 || strcmp(argv[1], "--ranks") != 0)) {
        int failed = without_mpi();
        int rc = launch_ranks(failed);
        int ended = check_step_failure_ends_the_job();
        return failed || rc || ended ? 1 : 0;
    }
    if (cr_dist_init(&argc, &argv) != DF_OK) {
        fprintf(stderr, "%s\n", df_last_error());
        return 1;
    }
    rank = cr_dist_rank();
    size = cr_dist_size();
    if (step_fails) {
        step_fails_on_one_rank();
        cr_dist_finalize();
        return 0;
    }
    sections = 1;                          /* the test without MPI, run before mpirun */
    sections_failed = atoi(argv[2]);
    if (size != 2) {
        fprintf(stderr, "test_mpi: run with 2 ranks (got %d)\n", size);
        return 1;
    }
    fused_mean();
    gradient_transform();
    data_parallel_charrnn();
    data_parallel_fit();
    size_mismatch();
    timeout();
    int all_checks = 0;
    MPI_Reduce(&checks, &all_checks, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)        /* as Criterion reports, for tests/summary.sh */
        printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0 (%d checks on 2 ranks)\n", sections, sections - sections_failed, sections_failed, all_checks);
    cr_dist_finalize();
    return sections_failed ? 1 : 0;
}
