/* test_shuffle.c — df_shuffle_buffer: tf.data's shuffle(buffer_size) over
 * indices (order, epochs, arguments) and its checkpoint entries (layout,
 * resume mid-epoch, every corrupted field refused, out of memory at every
 * allocation). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base.h"      /* df_fail_alloc_after: the allocation-failure hook */

#define assert_ok(call) cr_assert_eq((call), DF_OK, "%s: %s", #call, df_last_error())

/* One epoch's indices into out (at most cap); their count. */
static int64_t epoch(df_shuffle_buffer *s, int64_t *out, int64_t cap)
{
    int64_t k = 0, index;
    while (df_shuffle_buffer_next(s, &index)) {
        cr_assert_lt(k, cap, "the epoch gives more than %lld indices", (long long)cap);
        out[k++] = index;
    }
    return k;
}

/* ------------------------------------------------------------------ order */

/* Worked by hand from the draws of df_rng_below (bounds 3, 3, 3, 3, 2, 1:
 * the buffer stays full while inputs remain, then drains):
 * seed 1 draws 2 1 1 1 1 0, seed 2 draws 0 2 0 2 1 0. Seed 2, buffer [0 1 2]:
 * slot 0 gives 0 and takes 3; slot 2 gives 2, takes 4; slot 0 gives 3,
 * takes 5; slot 2 gives 4 and the last (itself) fills it; [5 1]: slot 1
 * gives 1; then 5. */
Test(shuffle, order_is_tf_data_shuffle_worked_by_hand)
{
    const int64_t expect[2][6] = {{2, 1, 4, 5, 3, 0}, {0, 2, 3, 4, 1, 5}};
    for (int k = 0; k < 2; k++) {
        df_shuffle_buffer s;
        assert_ok(df_shuffle_buffer_init(&s, 6, 3, (uint64_t)k + 1));
        int64_t got[6];
        cr_assert_eq(epoch(&s, got, 6), 6);
        for (int i = 0; i < 6; i++)
            cr_expect_eq(got[i], expect[k][i], "seed %d, element %d: %lld, expected %lld", k + 1, i,
                         (long long)got[i], (long long)expect[k][i]);
        df_shuffle_buffer_free(&s);
    }
}

/* tf.data's shuffle written out on its own: a pool of the first `size`
 * inputs; each output is pool[df_rng_below(pool length)], whose place the
 * next input takes, or once none is left, the pool's last element. */
static void reference_epoch(int64_t n, int64_t size, df_rng *rng, int64_t *out)
{
    int64_t *pool = malloc((size_t)(size + 1) * sizeof *pool), len = 0, read = 0;
    while (len < size && read < n) pool[len++] = read++;
    for (int64_t k = 0; len > 0; k++) {
        uint32_t pick = df_rng_below(rng, (uint32_t)len);
        out[k] = pool[pick];
        pool[pick] = read < n ? read++ : pool[--len];
    }
    free(pool);
}

Test(shuffle, order_matches_a_reference_over_sizes_and_epochs)
{
    const int64_t ns[] = {1, 2, 7, 50, 333}, sizes[] = {1, 2, 3, 7, 50, 1000};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
            int64_t n = ns[a], size = sizes[b];
            df_shuffle_buffer s;
            assert_ok(df_shuffle_buffer_init(&s, n, size, 100 + a * 10 + b));
            cr_assert_eq(s.size, size < n ? size : n, "the capacity is buffer_size, at most n");
            df_rng rng;
            df_rng_seed(&rng, 100 + a * 10 + b);
            int64_t *got = malloc((size_t)n * sizeof *got), *want = malloc((size_t)n * sizeof *want);
            for (int e = 0; e < 3; e++) {
                if (e) df_shuffle_buffer_start_epoch(&s);
                cr_assert_eq(epoch(&s, got, n), n);
                reference_epoch(n, size, &rng, want);
                for (int64_t i = 0; i < n; i++)
                    cr_assert_eq(got[i], want[i], "n %lld, buffer %lld, epoch %d, element %lld: %lld, expected %lld",
                                 (long long)n, (long long)size, e, (long long)i, (long long)got[i], (long long)want[i]);
            }
            free(got);
            free(want);
            df_shuffle_buffer_free(&s);
        }
}

Test(shuffle, every_index_once_per_epoch_and_each_epoch_reshuffles)
{
    const int64_t n = 500;
    const int64_t sizes[] = {1, 10, 499, 500, 4000};
    for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
        df_shuffle_buffer s;
        assert_ok(df_shuffle_buffer_init(&s, n, sizes[b], 9));
        int64_t order[2][500];
        for (int e = 0; e < 2; e++) {
            if (e) df_shuffle_buffer_start_epoch(&s);
            cr_assert_eq(epoch(&s, order[e], n), n, "buffer %lld: an epoch is every index", (long long)sizes[b]);
            int64_t index = -1;
            df_rng before = s.rng;
            cr_assert_not(df_shuffle_buffer_next(&s, &index), "the epoch stays over");
            cr_expect_eq(index, -1, "an over epoch gives no index");
            cr_expect_eq(memcmp(&before, &s.rng, sizeof before), 0, "an over epoch draws nothing");
            int count[500] = {0};
            for (int64_t i = 0; i < n; i++) {
                cr_assert(order[e][i] >= 0 && order[e][i] < n, "index %lld out of range", (long long)order[e][i]);
                count[order[e][i]]++;
            }
            for (int64_t i = 0; i < n; i++)
                cr_assert_eq(count[i], 1, "buffer %lld, epoch %d: index %lld came %d times", (long long)sizes[b], e,
                             (long long)i, count[i]);
            /* an index is read before it is given: the k-th comes from the first size + k */
            for (int64_t k = 0; k < n; k++)
                cr_assert_lt(order[e][k], sizes[b] + k, "element %lld is %lld, beyond the buffer", (long long)k,
                             (long long)order[e][k]);
        }
        bool in_order = true;
        for (int64_t i = 0; i < n; i++) in_order = in_order && order[0][i] == i;
        if (sizes[b] == 1) cr_expect(in_order, "a buffer of one keeps the order");
        else {
            cr_expect_not(in_order, "buffer %lld shuffles", (long long)sizes[b]);
            cr_expect_neq(memcmp(order[0], order[1], sizeof order[0]), 0, "buffer %lld: epoch 2 repeats epoch 1",
                          (long long)sizes[b]);
        }
        df_shuffle_buffer_free(&s);
    }
}

/* An epoch cut short (a cap on steps per epoch) and started again gives
 * every index once all the same. */
Test(shuffle, an_epoch_started_midway_starts_over)
{
    const int64_t n = 40;
    for (int drawn = 0; drawn <= n; drawn += 5) {
        df_shuffle_buffer s;
        assert_ok(df_shuffle_buffer_init(&s, n, 8, 2));
        int64_t index, order[40];
        for (int i = 0; i < drawn; i++) cr_assert(df_shuffle_buffer_next(&s, &index));
        df_shuffle_buffer_start_epoch(&s);
        cr_expect(s.fill == 8 && s.next == 8, "after %d drawn: fill %lld, next %lld", drawn, (long long)s.fill,
                  (long long)s.next);
        cr_assert_eq(epoch(&s, order, n), n, "after %d drawn, the new epoch gives every index", drawn);
        int count[40] = {0};
        for (int64_t i = 0; i < n; i++) count[order[i]]++;
        for (int64_t i = 0; i < n; i++) cr_assert_eq(count[i], 1, "after %d drawn: index %lld came %d times", drawn,
                                                     (long long)i, count[i]);
        df_shuffle_buffer_free(&s);
    }
}

Test(shuffle, no_indices_is_an_empty_epoch)
{
    df_shuffle_buffer s;
    assert_ok(df_shuffle_buffer_init(&s, 0, 10, 1));
    int64_t index;
    cr_expect_not(df_shuffle_buffer_next(&s, &index));
    df_shuffle_buffer_start_epoch(&s);
    cr_expect_not(df_shuffle_buffer_next(&s, &index));
    df_shuffle_buffer_free(&s);
}

Test(shuffle, bad_arguments_are_refused)
{
    df_shuffle_buffer s;
    cr_expect_eq(df_shuffle_buffer_init(&s, -1, 10, 1), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "-1"), "%s", df_last_error());
    df_shuffle_buffer_free(&s);
    cr_expect_eq(df_shuffle_buffer_init(&s, 10, 0, 1), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "size 0"), "%s", df_last_error());
    df_shuffle_buffer_free(&s);
    cr_expect_eq(df_shuffle_buffer_init(&s, 10, (int64_t)UINT32_MAX + 1, 1), DF_ERR_ARG);
    df_shuffle_buffer_free(&s);
    assert_ok(df_shuffle_buffer_init(&s, 10, UINT32_MAX, 1));
    cr_expect_eq(s.size, 10);
    df_shuffle_buffer_free(&s);
}

/* ------------------------------------------------------------ checkpoints */

/* 10 indices, a buffer of 4, 3 drawn: fill 4, next 7. */
static void mid_epoch(df_shuffle_buffer *s, uint64_t seed)
{
    assert_ok(df_shuffle_buffer_init(s, 10, 4, seed));
    int64_t index;
    for (int i = 0; i < 3; i++) cr_assert(df_shuffle_buffer_next(s, &index));
}

Test(shuffle, checkpoint_entries_have_the_documented_layout)
{
    df_shuffle_buffer s;
    mid_epoch(&s, 5);
    df_checkpoint *ck = df_checkpoint_new();
    int64_t head[2] = {3, 11};
    assert_ok(df_shuffle_buffer_put(&s, ck, "rng", "batcher", head, 2));
    const void *blob;
    size_t len;
    assert_ok(df_checkpoint_get_blob(ck, "rng", &blob, &len));
    cr_assert_eq(len, sizeof s.rng);
    cr_expect_eq(memcmp(blob, &s.rng, len), 0, "the rng entry is the df_rng's bytes");
    int64_t *v;
    size_t n;
    assert_ok(df_checkpoint_get_int64s(ck, "batcher", 1, 100, &v, &n));
    cr_assert_eq(n, 2 + 2 + 4, "head, fill, next, the buffer");
    cr_expect(v[0] == 3 && v[1] == 11, "the head first");
    cr_expect(v[2] == 4 && v[3] == 7, "fill %lld, next %lld", (long long)v[2], (long long)v[3]);
    for (int i = 0; i < 4; i++) cr_expect_eq(v[4 + i], s.buffer[i]);
    free(v);
    cr_expect_eq(df_checkpoint_count(ck), 2, "two entries, nothing else");
    df_checkpoint_free(ck);
    df_shuffle_buffer_free(&s);
}

/* The rest of this epoch and the whole next one. */
static int64_t rest(df_shuffle_buffer *s, int64_t *out)
{
    int64_t k = epoch(s, out, 10);
    df_shuffle_buffer_start_epoch(s);
    return k + epoch(s, out + k, 10);
}

/* Saved at every place of an epoch (its start and end too) through a file,
 * restored into a buffer seeded otherwise: the same indices follow. */
Test(shuffle, restore_mid_epoch_continues_identically)
{
    char path[] = "/tmp/test_shuffle.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    for (int drawn = 0; drawn <= 10; drawn++) {
        df_shuffle_buffer a, b;
        assert_ok(df_shuffle_buffer_init(&a, 10, 4, 21));
        int64_t index, step = drawn / 2, step_max = 5, got_step = -1;
        for (int i = 0; i < drawn; i++) cr_assert(df_shuffle_buffer_next(&a, &index));
        df_checkpoint *ck = df_checkpoint_new();
        assert_ok(df_shuffle_buffer_put(&a, ck, "order/rng", "order", &step, 1));
        assert_ok(df_checkpoint_write(ck, path));
        df_checkpoint_free(ck);
        assert_ok(df_checkpoint_read(path, &ck));
        assert_ok(df_shuffle_buffer_init(&b, 10, 4, 99));
        assert_ok(df_shuffle_buffer_restore(&b, ck, "order/rng", "order", &got_step, &step_max, 1));
        df_checkpoint_free(ck);
        cr_expect_eq(got_step, step, "the head comes back");
        int64_t want[20], got[20];
        int64_t nw = rest(&a, want), ng = rest(&b, got);
        cr_assert_eq(ng, nw, "after %d drawn: %lld indices follow, expected %lld", drawn, (long long)ng, (long long)nw);
        cr_assert_eq(nw, 10 - drawn + 10);
        for (int64_t i = 0; i < nw; i++)
            cr_expect_eq(got[i], want[i], "after %d drawn, element %lld: %lld, expected %lld", drawn, (long long)i,
                         (long long)got[i], (long long)want[i]);
        df_shuffle_buffer_free(&a);
        df_shuffle_buffer_free(&b);
    }
    unlink(path);
}

Test(shuffle, an_empty_source_saves_and_restores)
{
    df_shuffle_buffer a, b;
    assert_ok(df_shuffle_buffer_init(&a, 0, 1, 4));
    df_checkpoint *ck = df_checkpoint_new();
    assert_ok(df_shuffle_buffer_put(&a, ck, "rng", "batcher", NULL, 0));
    assert_ok(df_shuffle_buffer_init(&b, 0, 1, 8));
    assert_ok(df_shuffle_buffer_restore(&b, ck, "rng", "batcher", NULL, NULL, 0));
    cr_expect_eq(memcmp(&a.rng, &b.rng, sizeof a.rng), 0, "the RNG is restored");
    df_checkpoint_free(ck);
    df_shuffle_buffer_free(&a);
    df_shuffle_buffer_free(&b);
}

/* A record [step, fill, next, buffer...] for mid_epoch's buffer (fill 4,
 * next 7: buffer {0, 2, 5, 6} is a valid one) with one thing wrong. */
typedef struct corruption {
    const char *what;
    int n;                    /* values in the record */
    int64_t values[9];
    const char *needle;       /* in the message besides the entry's name */
} corruption;

static const corruption corruptions[] = {
    {"step negative", 7, {-1, 4, 7, 0, 2, 5, 6}, "leading value 0 is -1"},
    {"step past the epoch", 7, {6, 4, 7, 0, 2, 5, 6}, "leading value 0 is 6"},
    {"fill negative", 7, {1, -1, 7, 0, 2, 5, 6}, "fill -1 is out of range 0..4"},
    {"fill past the buffer", 7, {1, 5, 7, 0, 2, 5, 6}, "fill 5 is out of range 0..4"},
    {"fill below the count", 7, {1, 3, 7, 0, 2, 5, 6}, "fill 3 but 4 buffered"},
    {"fill above the count", 6, {1, 4, 7, 0, 2, 5}, "fill 4 but 3 buffered"},
    {"more values than a full buffer", 8, {1, 4, 7, 0, 2, 5, 6, 1}, "8 int64 values, expected 3 to 7"},
    {"no fill or next", 2, {1, 4}, "2 int64 values, expected 3 to 7"},
    {"next negative", 7, {1, 4, -1, 0, 2, 5, 6}, "next index -1"},
    {"next past n", 7, {1, 4, 11, 0, 2, 5, 6}, "next index 11"},
    {"next below fill", 7, {1, 4, 3, 0, 2, 5, 6}, "next index 3"},
    {"draining with input left", 5, {1, 2, 7, 0, 2}, "fill 2 with next index 7 of 10"},
    {"index negative", 7, {1, 4, 7, 0, -2, 5, 6}, "buffered index -2"},
    {"index not yet read", 7, {1, 4, 7, 0, 2, 5, 7}, "buffered index 7"},
    {"index twice", 7, {1, 4, 7, 0, 5, 5, 6}, "buffered index 5 is there twice"},
};

static void expect_unchanged(const df_shuffle_buffer *s, const df_shuffle_buffer *before, const int64_t *buffer,
                             const char *what)
{
    cr_expect(s->fill == before->fill && s->next == before->next && s->n == before->n && s->size == before->size,
              "%s: the place changed", what);
    cr_expect_eq(memcmp(&s->rng, &before->rng, sizeof s->rng), 0, "%s: the RNG changed", what);
    cr_expect_eq(memcmp(s->buffer, buffer, (size_t)s->size * sizeof *buffer), 0, "%s: the buffer changed", what);
}

Test(shuffle, every_corrupted_field_is_refused_naming_it)
{
    df_shuffle_buffer s, source;
    mid_epoch(&s, 3);
    mid_epoch(&source, 77);        /* another RNG state to offer */
    df_shuffle_buffer before = s;
    int64_t buffer[4];
    memcpy(buffer, s.buffer, sizeof buffer);
    const int64_t step_max = 5;
    for (size_t c = 0; c < sizeof corruptions / sizeof *corruptions; c++) {
        const corruption *k = &corruptions[c];
        df_checkpoint *ck = df_checkpoint_new();
        assert_ok(df_checkpoint_put_blob(ck, "rng", &source.rng, sizeof source.rng));
        assert_ok(df_checkpoint_put_int64s(ck, "batcher", k->values, (size_t)k->n));
        int64_t step = 42;
        df_status st = df_shuffle_buffer_restore(&s, ck, "rng", "batcher", &step, &step_max, 1);
        cr_expect_eq(st, DF_ERR_FORMAT, "%s: status %d (%s)", k->what, st, df_last_error());
        cr_expect(strstr(df_last_error(), "'batcher'") && strstr(df_last_error(), k->needle),
                  "%s: the message \"%s\" should name 'batcher' and say \"%s\"", k->what, df_last_error(), k->needle);
        cr_expect_eq(step, 42, "%s: the head changed", k->what);
        expect_unchanged(&s, &before, buffer, k->what);
        df_checkpoint_free(ck);
    }
    /* the valid record they were made from is taken */
    df_checkpoint *ck = df_checkpoint_new();
    assert_ok(df_checkpoint_put_blob(ck, "rng", &source.rng, sizeof source.rng));
    assert_ok(df_checkpoint_put_int64s(ck, "batcher", (int64_t[]){5, 4, 7, 0, 2, 5, 6}, 7));
    int64_t step = 0;
    assert_ok(df_shuffle_buffer_restore(&s, ck, "rng", "batcher", &step, &step_max, 1));
    cr_expect(step == 5 && s.fill == 4 && s.next == 7 && s.buffer[1] == 2 && s.buffer[3] == 6);
    cr_expect_eq(memcmp(&s.rng, &source.rng, sizeof s.rng), 0);
    df_checkpoint_free(ck);
    df_shuffle_buffer_free(&s);
    df_shuffle_buffer_free(&source);
}

Test(shuffle, a_missing_or_misshapen_rng_or_record_is_refused)
{
    df_shuffle_buffer s;
    mid_epoch(&s, 3);
    df_shuffle_buffer before = s;
    int64_t buffer[4], step = 42, step_max = 5;
    memcpy(buffer, s.buffer, sizeof buffer);
    const int64_t record[] = {1, 4, 7, 0, 2, 5, 6};
    const char rng_bytes[sizeof s.rng - 1] = {1};
    struct {
        const char *what;
        bool rng, short_rng, record;
        df_status status;
        const char *needle;
    } cases[] = {
        {"no rng", false, false, true, DF_ERR_ARG, "'rng'"},
        {"a short rng", true, true, true, DF_ERR_FORMAT, "'rng' has 31 bytes, expected 32"},
        {"no record", true, false, false, DF_ERR_ARG, "'batcher'"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        df_checkpoint *ck = df_checkpoint_new();
        if (cases[c].rng) assert_ok(df_checkpoint_put_blob(ck, "rng", cases[c].short_rng ? (const void *)rng_bytes : &s.rng,
                                                           cases[c].short_rng ? sizeof rng_bytes : sizeof s.rng));
        if (cases[c].record) assert_ok(df_checkpoint_put_int64s(ck, "batcher", record, 7));
        df_status st = df_shuffle_buffer_restore(&s, ck, "rng", "batcher", &step, &step_max, 1);
        cr_expect_eq(st, cases[c].status, "%s: status %d (%s)", cases[c].what, st, df_last_error());
        cr_expect(strstr(df_last_error(), cases[c].needle), "%s: \"%s\" should say \"%s\"", cases[c].what,
                  df_last_error(), cases[c].needle);
        cr_expect_eq(step, 42);
        expect_unchanged(&s, &before, buffer, cases[c].what);
        df_checkpoint_free(ck);
    }
    df_shuffle_buffer_free(&s);
}

/* Every allocation of init, put and restore fails in turn: DF_ERR_NOMEM and
 * nothing half done (a failed restore leaves the buffer as it was). */
Test(shuffle, out_of_memory_at_every_allocation)
{
    df_shuffle_buffer s, t;
    df_status st;
    int failures = 0;
    for (long k = 0; (df_fail_alloc_after(k), st = df_shuffle_buffer_init(&s, 10, 4, 3)) != DF_OK; k++, failures++) {
        df_fail_alloc_after(-1);
        cr_assert_eq(st, DF_ERR_NOMEM, "init, allocation %ld: %s", k, df_last_error());
        cr_expect_null(s.buffer);
    }
    df_fail_alloc_after(-1);
    int64_t index, step = 2, step_max = 5;
    for (int i = 0; i < 3; i++) cr_assert(df_shuffle_buffer_next(&s, &index));
    df_checkpoint *ck;
    for (long k = 0;; k++, failures++) {
        ck = df_checkpoint_new();
        cr_assert_not_null(ck);
        df_fail_alloc_after(k);
        st = df_shuffle_buffer_put(&s, ck, "rng", "batcher", &step, 1);
        df_fail_alloc_after(-1);
        if (st == DF_OK) break;
        cr_assert_eq(st, DF_ERR_NOMEM, "put, allocation %ld: %s", k, df_last_error());
        df_checkpoint_free(ck);
    }
    assert_ok(df_shuffle_buffer_init(&t, 10, 4, 8));
    df_shuffle_buffer before = t;
    for (long k = 0;; k++, failures++) {
        int64_t got = -1;
        df_fail_alloc_after(k);
        st = df_shuffle_buffer_restore(&t, ck, "rng", "batcher", &got, &step_max, 1);
        df_fail_alloc_after(-1);
        if (st == DF_OK) {
            cr_expect_eq(got, 2);
            break;
        }
        cr_assert_eq(st, DF_ERR_NOMEM, "restore, allocation %ld: %s", k, df_last_error());
        cr_expect(got == -1 && t.fill == before.fill && t.next == before.next, "restore, allocation %ld: half done", k);
        cr_expect_eq(memcmp(&t.rng, &before.rng, sizeof t.rng), 0, "restore, allocation %ld: the RNG changed", k);
    }
    cr_expect_eq(memcmp(&t.rng, &s.rng, sizeof t.rng), 0);
    cr_expect_geq(failures, 3, "init, put and restore each allocate");
    df_checkpoint_free(ck);
    /* a record that is wrong stays refused whichever allocation fails */
    ck = df_checkpoint_new();
    assert_ok(df_checkpoint_put_blob(ck, "rng", &s.rng, sizeof s.rng));
    assert_ok(df_checkpoint_put_int64s(ck, "batcher", (int64_t[]){1, 4, 7, 0, 5, 5, 6}, 7));
    for (long k = 0; k < 4; k++) {
        df_fail_alloc_after(k);
        st = df_shuffle_buffer_restore(&t, ck, "rng", "batcher", &step, &step_max, 1);
        df_fail_alloc_after(-1);
        cr_expect(st == DF_ERR_NOMEM || st == DF_ERR_FORMAT, "allocation %ld: a repeated index is %s", k,
                  df_status_name(st));
    }
    df_checkpoint_free(ck);
    df_shuffle_buffer_free(&s);
    df_shuffle_buffer_free(&t);
}
