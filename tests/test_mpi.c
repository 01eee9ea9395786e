/* test_mpi.c — the allreduce_mean op and data-parallel char-rnn training
 * with two MPI ranks (--with-mpi builds).
 *
 * `make check` runs this program directly: it first checks the errors of a
 * process without MPI, then starts itself as two ranks with
 * `$MPIRUN $MPIRUN_FLAGS -np 2` (a watchdog ends a run that hangs) and exits
 * with their status. Under mpirun each rank checks:
 *  - fused mean of tensors of several shapes, one allreduce_mean node;
 *  - the optimizer's gradient transform: one fused node for all gradients,
 *    the update of SGD with the mean gradient;
 *  - char-rnn, 2 ranks x 2 rows against one process with the whole batch of
 *    4 rows (a reference model on each rank): same losses and weights within
 *    float tolerance, bitwise identical weights on both ranks;
 *  - cr_dist_check_weights and cr_dist_agree report differences clearly;
 *  - ranks that reduce different sizes fail cleanly on both;
 *  - a rank that does not answer within the timeout fails the other.
 * Output: one "ok"/"FAIL" line per check and a Criterion-style synthesis
 * line, which tests/summary.sh counts. */
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

/* Starts this program as two ranks; a watchdog kills the run after 120 s. */
static int launch_ranks(int failed_without_mpi)
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
    snprintf(cmd, sizeof cmd, "exec %s %s -np 2 '%s' --ranks %d", mpirun, flags, self, failed_without_mpi != 0);
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
        if (waited == 1200) {
            fprintf(stderr, "FAIL: the two ranks did not finish within 120 s (hang); killing them\n");
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return 1;
        }
        usleep(100000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
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
    df_graph_free(g);
    section("allreduce_mean: the mean of three tensors over 2 ranks with one fused node");
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
            CHECK(cr_fit_step(&dp, &xt, &yt, &l_dp) == DF_OK, "%s", df_last_error());
            CHECK(cr_fit_step(&ref, &xrt, &yrt, &l_ref) == DF_OK, "%s", df_last_error());
            cr_dist_step(&l_dp, false);
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
        CHECK(cr_dist_check_weights(&dp, NULL) == DF_OK, "%s", df_last_error());
        if (rank == 0)
            printf("     %s: %d steps, loss within %.1g and weights within %.1g of one process; XXH64 %016llx on both ranks\n",
                   modes[mode], STEPS, worst_loss, worst, (unsigned long long)other[0]);
        cr_batcher_free(&bdp);
        cr_batcher_free(&bref);
    }
    CHECK(count_op(cr_graph(&dp, "fit"), "allreduce_mean") == 1 && count_op(cr_graph(&ref, "fit"), "allreduce_mean") == 0,
          "one all-reduce in the data-parallel step");

    /* A rank whose weights differ: both ranks fail, naming both hashes. */
    float *w = df_variable_tensor(dp.dense_bias).data;
    if (rank == 1) w[0] += 1;
    df_status st = cr_dist_check_weights(&dp, NULL);
    CHECK_ERROR(st, DF_ERR_STATE, "differ between the ranks");
    CHECK(strstr(df_last_error(), "rank 1 "), "names rank 1: %s", df_last_error());

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

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--ranks") != 0) {
        int failed = without_mpi();
        int rc = launch_ranks(failed);
        return failed || rc ? 1 : 0;
    }
    if (cr_dist_init(&argc, &argv) != DF_OK) {
        fprintf(stderr, "%s\n", df_last_error());
        return 1;
    }
    rank = cr_dist_rank();
    size = cr_dist_size();
    sections = 1;                          /* the test without MPI, run before mpirun */
    sections_failed = atoi(argv[2]);
    if (size != 2) {
        fprintf(stderr, "test_mpi: run with 2 ranks (got %d)\n", size);
        return 1;
    }
    fused_mean();
    gradient_transform();
    data_parallel_charrnn();
    size_mismatch();
    timeout();
    int all_checks = 0;
    MPI_Reduce(&checks, &all_checks, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)        /* as Criterion reports, for tests/summary.sh */
        printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0 (%d checks on 2 ranks)\n", sections, sections - sections_failed, sections_failed, all_checks);
    cr_dist_finalize();
    return sections_failed ? 1 : 0;
}
