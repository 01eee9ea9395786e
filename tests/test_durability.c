/* test_durability.c — checkpoint and saved-graph writes are durable: the
 * temp file is fsynced before it is renamed over the target, and the
 * directory is fsynced after the rename (else a power cut can leave the new
 * name pointing at unwritten data, or lose the rename); a write that fails
 * part way (fsync, rename, a full disk) leaves the old file and no temp file.
 * This binary compiles src/checkpoint.c and graph/saved_export.c itself and
 * links with -Wl,--wrap=fsync,--wrap=rename,--wrap=write, so every fsync,
 * rename and write that code makes passes through the recorders below,
 * which can also fail them. */
#define _GNU_SOURCE            /* nftw flags, realpath */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dagflow.h"

int __real_fsync(int fd);
int __real_rename(const char *from, const char *to);
ssize_t __real_write(int fd, const void *buf, size_t n);

enum event_kind { EV_FSYNC, EV_RENAME };
typedef struct event {
    enum event_kind kind;
    char path[PATH_MAX];      /* what fsync synced, or what rename moved */
    char to[PATH_MAX];        /* rename's destination */
} event;

static event events[16];
static int n_events;
static int fail_fsync_number;  /* 1-based fsync call to fail with EIO; 0: none */
static int fsync_calls;
static bool fail_rename;       /* rename fails with EIO */
static long write_budget = -1; /* bytes write() may still write before ENOSPC; -1: no limit */

int __wrap_fsync(int fd)
{
    if (n_events < 16) {
        event *e = &events[n_events++];
        e->kind = EV_FSYNC;
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, e->path, sizeof e->path - 1);
        e->path[n > 0 ? n : 0] = '\0';
    }
    if (++fsync_calls == fail_fsync_number) {
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to)
{
    if (n_events < 16) {
        event *e = &events[n_events++];
        e->kind = EV_RENAME;
        char *a = realpath(from, NULL);
        snprintf(e->path, sizeof e->path, "%s", a ? a : from);
        free(a);
        snprintf(e->to, sizeof e->to, "%s", to);
    }
    if (fail_rename) {
        errno = EIO;
        return -1;
    }
    return __real_rename(from, to);
}

/* A disk that fills up: what fits in the budget is written (a short
 * write), then ENOSPC. */
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (write_budget < 0) return __real_write(fd, buf, n);
    if (write_budget == 0) {
        errno = ENOSPC;
        return -1;
    }
    size_t now = n < (size_t)write_budget ? n : (size_t)write_budget;
    ssize_t done = __real_write(fd, buf, now);
    if (done > 0) write_budget -= done;
    return done;
}

/* ------------------------------------------------------------- fixtures */

static char dir[PATH_MAX];     /* real path of a fresh directory */
static char ckpt[PATH_MAX + 8];    /* dir/ckpt */

static void setup(void)
{
    char tmpl[] = "/tmp/dfdur.XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    cr_assert_not_null(realpath(tmpl, dir));
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    n_events = fsync_calls = fail_fsync_number = 0;
    fail_rename = false;
    write_budget = -1;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(durability, .init = setup, .fini = teardown);

static df_checkpoint *checkpoint_with(const char *value)
{
    df_checkpoint *ck = df_checkpoint_new();
    cr_assert_not_null(ck);
    cr_assert_eq(df_checkpoint_put_blob(ck, "value", value, strlen(value) + 1), DF_OK, "%s", df_last_error());
    return ck;
}

static df_status write_value(const char *value)
{
    df_checkpoint *ck = checkpoint_with(value);
    df_status st = df_checkpoint_write(ck, ckpt);
    df_checkpoint_free(ck);
    return st;
}

/* The checkpoint at ckpt holds `value`. */
static void expect_value(const char *value)
{
    df_checkpoint *ck = NULL;
    cr_assert_eq(df_checkpoint_read(ckpt, &ck), DF_OK, "%s", df_last_error());
    const void *data;
    size_t len;
    cr_assert_eq(df_checkpoint_get_blob(ck, "value", &data, &len), DF_OK);
    cr_expect_str_eq((const char *)data, value);
    df_checkpoint_free(ck);
}

/* No file other than name (e.g. a temp file) in dir. */
static void expect_only(const char *name)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[PATH_MAX];
    int others = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, name) != 0) {
            cr_log_error("left behind: %s", line);
            others++;
        }
    }
    pclose(p);
    cr_expect_eq(others, 0, "files other than %s were left in %s", name, dir);
}

static void expect_only_the_checkpoint(void) { expect_only("ckpt"); }

/* fsync(temp) < rename(temp -> target) < fsync(dir), nothing else renamed. */
static void expect_durable_sequence_to(const char *target)
{
    int synced_file = -1, renamed = -1, synced_dir = -1, renames = 0;
    for (int i = 0; i < n_events; i++) {
        const event *e = &events[i];
        if (e->kind == EV_RENAME) {
            renames++;
            renamed = i;
            cr_expect_str_eq(e->to, target, "renamed onto %s, not %s", e->to, target);
        }
    }
    cr_assert_eq(renames, 1, "expected one rename, saw %d", renames);
    const char *temp = events[renamed].path;
    cr_expect(strncmp(temp, dir, strlen(dir)) == 0 && strcmp(temp, target) != 0,
              "the temp file %s must be in the target's directory %s", temp, dir);
    for (int i = 0; i < n_events; i++) {
        const event *e = &events[i];
        if (e->kind != EV_FSYNC) continue;
        if (strcmp(e->path, temp) == 0 && synced_file < 0) synced_file = i;
        if (strcmp(e->path, dir) == 0 && i > renamed) synced_dir = i;
    }
    cr_expect_geq(synced_file, 0, "the temp file %s was never fsynced", temp);
    cr_expect_lt(synced_file, renamed, "the temp file was fsynced only after the rename");
    cr_expect_gt(synced_dir, renamed, "the directory %s was not fsynced after the rename", dir);
}

static void expect_durable_sequence(void) { expect_durable_sequence_to(ckpt); }

Test(durability, new_checkpoint_syncs_file_then_renames_then_syncs_directory)
{
    cr_assert_eq(write_value("first"), DF_OK, "%s", df_last_error());
    expect_durable_sequence();
    expect_value("first");
    expect_only_the_checkpoint();
}

Test(durability, replacing_a_checkpoint_follows_the_same_order)
{
    cr_assert_eq(write_value("first"), DF_OK, "%s", df_last_error());
    n_events = 0;
    cr_assert_eq(write_value("second"), DF_OK, "%s", df_last_error());
    expect_durable_sequence();
    expect_value("second");
    expect_only_the_checkpoint();
}

Test(durability, failed_file_fsync_keeps_the_old_checkpoint_and_no_temp_file)
{
    cr_assert_eq(write_value("first"), DF_OK, "%s", df_last_error());
    n_events = fsync_calls = 0;
    fail_fsync_number = 1;                       /* the temp file's fsync */
    df_status st = write_value("second");
    cr_expect_eq(st, DF_ERR_IO, "a failed fsync must fail the write, got status %d", st);
    cr_expect(strstr(df_last_error(), "fsync") != NULL, "the message should say fsync: %s", df_last_error());
    for (int i = 0; i < n_events; i++)
        cr_expect_neq(events[i].kind, EV_RENAME, "renamed after a failed fsync: unsynced data under the name");
    expect_value("first");
    expect_only_the_checkpoint();
}

Test(durability, failed_directory_fsync_is_reported)
{
    fail_fsync_number = 2;                       /* the directory's fsync */
    df_status st = write_value("first");
    cr_expect_eq(st, DF_ERR_IO, "a failed directory fsync must be reported, got status %d", st);
    cr_expect(strstr(df_last_error(), "sync directory") != NULL, "%s", df_last_error());
    expect_value("first");                       /* the data itself is in place */
}

/* ------------------------------------------------- saved-graph export */

TestSuite(export_durability, .init = setup, .fini = teardown);

static char exported[PATH_MAX + 16];   /* dir/model.dfg */

static df_status add_bias(df_graph *g, df_node **in, void *user)
{
    return df_graph_output(g, df_add(g, in[0], df_var(g, user)));
}

/* Exports x + bias, the variable bias holding value, to dir/model.dfg. */
static df_status export_value(float value)
{
    snprintf(exported, sizeof exported, "%s/model.dfg", dir);
    df_variable *bias = df_variable_new("bias", DF_F32, 1, (int64_t[]){2}, df_init_constant(value), NULL);
    cr_assert_not_null(bias, "%s", df_last_error());
    df_tensor_spec sig = {DF_F32, 1, {2}};
    df_function *f = df_function_new_signature("add_bias", add_bias, bias, 1, &sig);
    cr_assert_not_null(f, "%s", df_last_error());
    df_status st = df_function_export(f, 1, &sig, exported, 0, NULL);
    df_function_free(f);
    df_variable_free(bias);
    return st;
}

/* The file at exported loads, and its bias holds value. */
static void expect_exported_value(float value)
{
    df_saved *s = NULL;
    cr_assert_eq(df_saved_load(exported, &s), DF_OK, "%s", df_last_error());
    df_variable *bias = df_saved_find_variable(s, "bias");
    cr_assert_not_null(bias);
    const float *v = df_variable_tensor(bias).data;
    cr_expect(v[0] == value && v[1] == value, "the exported bias is %g, %g, not %g", v[0], v[1], value);
    df_saved_free(s);
}

/* A failed export (what failed): DF_ERR_IO with a message containing says,
 * the first file untouched, no temp file, and no rename after a failed
 * write or fsync. */
static void expect_failed_export(df_status st, const char *what, const char *says, bool renamed)
{
    cr_expect_eq(st, DF_ERR_IO, "a failed %s must fail the export with DF_ERR_IO, got status %d", what, st);
    cr_expect(strstr(df_last_error(), says) != NULL, "the message should say '%s': %s", says, df_last_error());
    for (int i = 0; i < n_events && !renamed; i++)
        cr_expect_neq(events[i].kind, EV_RENAME, "renamed after a failed %s: unsynced data under the name", what);
    expect_exported_value(1.0f);
    expect_only("model.dfg");
}

/* Exports value durably: fsync, rename, fsync of the directory, one file. */
static void expect_durable_export(float value)
{
    n_events = 0;
    cr_assert_eq(export_value(value), DF_OK, "%s", df_last_error());
    expect_durable_sequence_to(exported);
    expect_exported_value(value);
    expect_only("model.dfg");
}

Test(export_durability, new_file_syncs_file_then_renames_then_syncs_directory) { expect_durable_export(1.0f); }

Test(export_durability, replacing_a_file_follows_the_same_order)
{
    cr_assert_eq(export_value(1.0f), DF_OK, "%s", df_last_error());
    expect_durable_export(2.0f);
}

Test(export_durability, failed_file_fsync_keeps_the_old_file_and_no_temp_file)
{
    cr_assert_eq(export_value(1.0f), DF_OK, "%s", df_last_error());
    n_events = fsync_calls = 0;
    fail_fsync_number = 1;                       /* the temp file's fsync */
    expect_failed_export(export_value(2.0f), "fsync", "cannot fsync", false);
}

Test(export_durability, failed_rename_keeps_the_old_file_and_no_temp_file)
{
    cr_assert_eq(export_value(1.0f), DF_OK, "%s", df_last_error());
    n_events = 0;
    fail_rename = true;
    expect_failed_export(export_value(2.0f), "rename", "cannot rename", true);
}

Test(export_durability, full_disk_keeps_the_old_file_and_no_temp_file)
{
    cr_assert_eq(export_value(1.0f), DF_OK, "%s", df_last_error());
    n_events = 0;
    write_budget = 0;                            /* the first write is refused */
    expect_failed_export(export_value(2.0f), "write", "cannot write", false);
    cr_expect(strstr(df_last_error(), strerror(ENOSPC)) != NULL, "the message should give the cause: %s",
              df_last_error());
}

Test(export_durability, disk_filling_mid_file_keeps_the_old_file_and_no_temp_file)
{
    cr_assert_eq(export_value(1.0f), DF_OK, "%s", df_last_error());
    n_events = 0;
    write_budget = 100;                          /* a short write, then ENOSPC */
    expect_failed_export(export_value(2.0f), "short write", strerror(ENOSPC), false);
}

Test(export_durability, failed_directory_fsync_is_reported)
{
    fail_fsync_number = 2;                       /* the directory's fsync */
    df_status st = export_value(1.0f);
    cr_expect_eq(st, DF_ERR_IO, "a failed directory fsync must be reported, got status %d", st);
    cr_expect(strstr(df_last_error(), "fsync") && strstr(df_last_error(), "may not be durable"), "%s",
              df_last_error());
    expect_exported_value(1.0f);                 /* the data itself is in place */
}
