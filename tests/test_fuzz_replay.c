/* test_fuzz_replay.c — runs every input of the fuzz seed corpora
 * (fuzz/corpus/NAME/) and every saved crash (fuzz/regressions/NAME/) through
 * the fuzz harnesses, linked against the real library. In the sanitizer build
 * this is the regression test for each crash the fuzzers ever found; the
 * harnesses abort on any contradiction, which Criterion reports as a crash of
 * the harness's test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_DIR
#error "FUZZ_DIR (the source tree's fuzz/ directory) must be defined"
#endif

#define FUZZ_ENTRY fuzz_checkpoint_one
#include "../fuzz/fuzz_checkpoint.c"
#undef FUZZ_ENTRY
#undef FUZZ_CHECK
#define FUZZ_ENTRY fuzz_text_one
#include "../fuzz/fuzz_text.c"
#undef FUZZ_ENTRY
#undef FUZZ_CHECK
#define FUZZ_ENTRY fuzz_cli_one
#include "../fuzz/fuzz_cli.c"
#undef FUZZ_ENTRY
#undef FUZZ_CHECK
#define FUZZ_ENTRY fuzz_runstate_one
#include "../fuzz/fuzz_runstate.c"
#undef FUZZ_ENTRY

typedef int (*fuzz_fn)(const uint8_t *, size_t);

static unsigned char *read_input(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
        cr_assert_not_null(buf);
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Feeds every regular file of FUZZ_DIR/sub/name to fn; returns how many. */
static int replay_dir(const char *sub, const char *name, fuzz_fn fn)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s/%s", FUZZ_DIR, sub, name);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        unsigned char *buf = read_input(path, &len);
        fprintf(stderr, "replaying %s/%s/%s (%zu bytes)\n", sub, name, e->d_name, len);
        fn(buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *name, fuzz_fn fn)
{
    int seeds = replay_dir("corpus", name, fn);
    int crashes = replay_dir("regressions", name, fn);
    cr_expect_gt(seeds, 0, "no seed inputs in %s/corpus/%s", FUZZ_DIR, name);
    cr_log_info("fuzz_%s: %d seeds and %d saved crash inputs replayed", name, seeds, crashes);
}

Test(fuzz_replay, checkpoint) { replay("checkpoint", fuzz_checkpoint_one); }
Test(fuzz_replay, text) { replay("text", fuzz_text_one); }
Test(fuzz_replay, cli) { replay("cli", fuzz_cli_one); }
Test(fuzz_replay, runstate) { replay("runstate", fuzz_runstate_one); }
