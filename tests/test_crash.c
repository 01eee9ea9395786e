/* test_crash.c — crash safety of checkpoint writes.
 *
 * A child process writes checkpoints of a 3 MB model to one path in a loop,
 * each a complete "version": a blob "version" and every tensor filled with the
 * version number. The parent SIGKILLs it at random moments (seeded, delays
 * spread over one write cycle, so kills land while the model is being filled,
 * while the temp file is written or fsynced, and around the rename), then
 * checks that the file at the path reads and verifies and holds exactly one
 * complete version: the last one the child reported done, or the one after it
 * (killed between the rename and the report). Leftover temp files are allowed,
 * but cr_latest_checkpoint must never pick one. DF_CRASH_SEED and
 * DF_CRASH_KILLS override the seed and the number of kills. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dagflow.h"
#include "runstate.h"

enum { N_TENSORS = 4, DEFAULT_KILLS = 60 };

typedef struct model {
    df_variable *v[N_TENSORS];
} model;

static const char *const names[N_TENSORS] = {"lstm/kernel", "lstm/recurrent_kernel", "dense/bias", "step"};

static void model_new(model *m)
{
    m->v[0] = df_variable_new(names[0], DF_F32, 2, (int64_t[]){256, 1024}, df_init_zeros(), NULL);
    m->v[1] = df_variable_new(names[1], DF_F32, 2, (int64_t[]){256, 2048}, df_init_zeros(), NULL);
    m->v[2] = df_variable_new(names[2], DF_F32, 1, (int64_t[]){1000}, df_init_zeros(), NULL);
    m->v[3] = df_variable_new(names[3], DF_I32, 0, NULL, df_init_zeros(), NULL);
    for (int i = 0; i < N_TENSORS; i++) cr_assert_not_null(m->v[i], "%s", df_last_error());
}

static void model_free(model *m)
{
    for (int i = 0; i < N_TENSORS; i++) df_variable_free(m->v[i]);
}

static void model_fill(model *m, uint64_t version)
{
    for (int i = 0; i < N_TENSORS; i++) {
        df_tensor t = df_variable_tensor(m->v[i]);
        int64_t n = df_variable_numel(m->v[i]);
        for (int64_t k = 0; k < n; k++) {
            if (t.dtype == DF_F32) ((float *)t.data)[k] = (float)version;
            else ((int32_t *)t.data)[k] = (int32_t)version;
        }
    }
}

/* Writes version to path; DF_OK or the error. */
static df_status write_version(model *m, uint64_t version, const char *path)
{
    model_fill(m, version);
    df_checkpoint *ck = df_checkpoint_new();
    if (!ck) return DF_ERR_NOMEM;
    df_status st = df_checkpoint_put_blob(ck, "version", &version, sizeof version);
    for (int i = 0; i < N_TENSORS && st == DF_OK; i++) st = df_checkpoint_put_variable(ck, m->v[i]);
    if (st == DF_OK) st = df_checkpoint_write(ck, path);
    df_checkpoint_free(ck);
    return st;
}

/* Reads path and checks that it is one complete version; returns it. */
static uint64_t verify(const char *path, model *scratch, int kill)
{
    df_checkpoint *ck;
    df_status st = df_checkpoint_read(path, &ck);
    cr_assert_eq(st, DF_OK, "after kill %d: %s does not read: %s", kill, path, df_last_error());
    const void *data;
    size_t len;
    cr_assert_eq(df_checkpoint_get_blob(ck, "version", &data, &len), DF_OK, "kill %d: %s", kill, df_last_error());
    cr_assert_eq(len, sizeof(uint64_t));
    uint64_t version;
    memcpy(&version, data, sizeof version);
    cr_assert_eq(df_checkpoint_count(ck), N_TENSORS + 1);
    model_fill(scratch, 999999);                     /* so a restore that copies nothing is caught */
    for (int i = 0; i < N_TENSORS; i++) {
        cr_assert_eq(df_checkpoint_restore_variable(ck, scratch->v[i]), DF_OK, "kill %d: %s", kill, df_last_error());
        df_tensor t = df_variable_tensor(scratch->v[i]);
        int64_t n = df_variable_numel(scratch->v[i]);
        for (int64_t k = 0; k < n; k++) {
            double got = t.dtype == DF_F32 ? ((float *)t.data)[k] : ((int32_t *)t.data)[k];
            if (got != (double)version)
                cr_assert_fail("after kill %d: checkpoint of version %llu has %s[%lld] = %g (mixed versions)", kill,
                               (unsigned long long)version, names[i], (long long)k, got);
        }
    }
    df_checkpoint_free(ck);
    return version;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static char tmpdir[64];

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) { return remove(path); }

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/dfcrash.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void remove_tmpdir(void) { nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(crash, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 600);

/* The child: writes start+1, start+2, ... to path, reporting each completed
 * version on fd; never returns. */
static void writer(const char *path, uint64_t start, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);                 /* never outlive a failed test */
    if (getppid() == 1) _exit(1);
    model m;
    model_new(&m);
    double deadline = now() + 60;
    for (uint64_t v = start + 1; now() < deadline; v++) {
        if (write_version(&m, v, path) != DF_OK) {
            fprintf(stderr, "writer: version %llu: %s\n", (unsigned long long)v, df_last_error());
            _exit(2);
        }
        if (write(fd, &v, sizeof v) != (ssize_t)sizeof v) _exit(3);
    }
    _exit(0);
}

static int count_temp_files(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    size_t blen = strlen(base);
    for (struct dirent *e; (e = readdir(d));)
        n += !strncmp(e->d_name, base, blen) && !strncmp(e->d_name + blen, ".tmp.", 5);
    closedir(d);
    return n;
}

static long env_long(const char *name, long fallback)
{
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 10) : fallback;
}

Test(crash, sigkill_during_checkpoint_writes_never_corrupts)
{
    char path[256], temp_path[300];
    snprintf(path, sizeof path, "%s/ckpt_7", tmpdir);
    uint64_t seed = (uint64_t)env_long("DF_CRASH_SEED", 20261125);
    int kills = (int)env_long("DF_CRASH_KILLS", DEFAULT_KILLS);
    df_rng rng;
    df_rng_seed(&rng, seed);

    /* Version 0, and the time one write cycle takes here. */
    model m, scratch;
    model_new(&m);
    model_new(&scratch);
    double t0 = now();
    for (int i = 0; i < 3; i++) cr_assert_eq(write_version(&m, 0, path), DF_OK, "%s", df_last_error());
    double cycle = (now() - t0) / 3;
    cr_assert_eq(verify(path, &scratch, 0), 0);

    uint64_t last = 0;
    int mid_write = 0, corrupt = 0, versions_written = 0;
    for (int k = 1; k <= kills; k++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t pid = fork();
        cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(fds[0]);
            writer(path, last, fds[1]);
        }
        close(fds[1]);
        /* Up to two and a half write cycles: sometimes before the first write
         * completes, mostly in the middle of the second or third. */
        sleep_seconds(df_rng_uniform(&rng) * 2.5 * cycle);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "kill %d: the writer ended by itself (status %d) before it was killed", k, status);
        uint64_t done = last, v;
        while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) done = v;
        close(fds[0]);
        versions_written += (int)(done - last);
        snprintf(temp_path, sizeof temp_path, "%s.tmp.%ld", path, (long)pid);
        mid_write += access(temp_path, F_OK) == 0;

        df_checkpoint *ck;
        if (df_checkpoint_read(path, &ck) != DF_OK) {
            corrupt++;
            cr_log_error("kill %d: %s", k, df_last_error());
            continue;
        }
        df_checkpoint_free(ck);
        uint64_t found = verify(path, &scratch, k);
        /* The last version reported done, or the next one if the kill came
         * between its rename and its report. */
        cr_assert(found == done || found == done + 1,
                  "kill %d: the file holds version %llu, the writer had finished %llu", k,
                  (unsigned long long)found, (unsigned long long)done);
        last = found;
    }
    int temps = count_temp_files(tmpdir, "ckpt_7");

    /* A leftover temp file, even a complete one of a later epoch, is never
     * taken for a checkpoint. */
    char fake[300], latest[512];
    snprintf(fake, sizeof fake, "%s/ckpt_99.tmp.12345", tmpdir);
    cr_assert_eq(write_version(&m, 12345, fake), DF_OK);
    cr_assert_eq(cr_latest_checkpoint(tmpdir, latest, sizeof latest), DF_OK, "%s", df_last_error());
    cr_expect_str_eq(latest, path, "cr_latest_checkpoint chose %s", latest);

    fprintf(stderr,
            "crash-safety: seed %llu, %d kills, %d corrupt checkpoints, %d kills left a temp file (mid-write), "
            "%d versions completed, write cycle %.1f ms, final version %llu, %d temp files left\n",
            (unsigned long long)seed, kills, corrupt, mid_write, versions_written, cycle * 1e3,
            (unsigned long long)last, temps);
    cr_expect_eq(corrupt, 0, "%d of %d kills left a checkpoint that does not read", corrupt, kills);
    cr_expect_geq(kills, 50);
    cr_expect_gt(mid_write, 0, "no kill landed while a temp file was being written (write cycle %.1f ms)",
                 cycle * 1e3);
    model_free(&m);
    model_free(&scratch);
}
