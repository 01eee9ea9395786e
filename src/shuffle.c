/* shuffle.c — tf.data's shuffle(buffer_size) over the indices 0..n-1, and
 * its place in a checkpoint (the contract is in dagflow.h). */
#include <stdlib.h>
#include <string.h>
#include "base.h"

df_status df_shuffle_buffer_init(df_shuffle_buffer *s, int64_t n, int64_t buffer_size, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    if (n < 0) return df_error(DF_ERR_ARG, "shuffle buffer: %lld indices", (long long)n);
    if (buffer_size < 1 || buffer_size > UINT32_MAX)
        return df_error(DF_ERR_ARG, "shuffle buffer size %lld is out of range 1..%lu", (long long)buffer_size,
                        (unsigned long)UINT32_MAX);
    s->n = n;
    s->size = buffer_size < n ? buffer_size : n;   /* the same order, less memory */
    df_rng_seed(&s->rng, seed);
    if (!(s->buffer = df_malloc((size_t)s->size * sizeof *s->buffer)))
        return df_error(DF_ERR_NOMEM, "out of memory for a shuffle buffer of %lld", (long long)s->size);
    df_shuffle_buffer_start_epoch(s);
    return DF_OK;
}

void df_shuffle_buffer_free(df_shuffle_buffer *s)
{
    df_free(s->buffer);
    s->buffer = NULL;
}

void df_shuffle_buffer_start_epoch(df_shuffle_buffer *s)
{
    s->fill = 0;
    s->next = 0;
    while (s->fill < s->size) s->buffer[s->fill++] = s->next++;
}

/* A random buffered index goes out and the next input takes its slot; once
 * the input is exhausted the buffer drains. */
bool df_shuffle_buffer_next(df_shuffle_buffer *s, int64_t *index)
{
    if (s->fill == 0) return false;
    int64_t at = df_rng_below(&s->rng, (uint32_t)s->fill);
    *index = s->buffer[at];
    if (s->next < s->n) s->buffer[at] = s->next++;
    else s->buffer[at] = s->buffer[--s->fill];
    return true;
}

df_status df_shuffle_buffer_put(const df_shuffle_buffer *s, df_checkpoint *ck, const char *rng_key, const char *key,
                                const int64_t *head, size_t n_head)
{
    size_t n = n_head + 2 + (size_t)s->fill;
    int64_t *record = df_malloc(n * sizeof *record);
    if (!record) return df_error(DF_ERR_NOMEM, "out of memory for checkpoint entry '%s'", key);
    if (n_head) memcpy(record, head, n_head * sizeof *record);
    record[n_head] = s->fill;
    record[n_head + 1] = s->next;
    if (s->fill) memcpy(record + n_head + 2, s->buffer, (size_t)s->fill * sizeof *record);
    df_status st = df_checkpoint_put_blob(ck, rng_key, &s->rng, sizeof s->rng);
    if (st == DF_OK) st = df_checkpoint_put_int64s(ck, key, record, n);
    df_free(record);
    return st;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Distinct indices already read (< next), sorted in a copy so that the check
 * needs no more memory than the buffer. */
static df_status check_buffered(const char *key, const int64_t *buffered, int64_t fill, int64_t next)
{
    int64_t *sorted = df_malloc((size_t)fill * sizeof *sorted);
    if (!sorted) return df_error(DF_ERR_NOMEM, "out of memory for checkpoint entry '%s'", key);
    if (fill) memcpy(sorted, buffered, (size_t)fill * sizeof *sorted);
    qsort(sorted, (size_t)fill, sizeof *sorted, by_value);
    df_status st = DF_OK;
    if (fill && (sorted[0] < 0 || sorted[fill - 1] >= next))
        st = df_error(DF_ERR_FORMAT, "checkpoint entry '%s': buffered index %lld is out of range 0..%lld", key,
                      (long long)(sorted[0] < 0 ? sorted[0] : sorted[fill - 1]), (long long)next - 1);
    for (int64_t i = 1; st == DF_OK && i < fill; i++)
        if (sorted[i] == sorted[i - 1])
            st = df_error(DF_ERR_FORMAT, "checkpoint entry '%s': buffered index %lld is there twice", key,
                          (long long)sorted[i]);
    df_free(sorted);
    return st;
}

/* A place tf.data's shuffle can be in: the buffer is full until the input
 * runs out, and holds distinct indices already read. */
static df_status check_place(const df_shuffle_buffer *s, const char *key, int64_t fill, int64_t next,
                             const int64_t *buffered, size_t n_buffered)
{
    if (fill < 0 || fill > s->size)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s': fill %lld is out of range 0..%lld", key,
                        (long long)fill, (long long)s->size);
    if ((size_t)fill != n_buffered)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s': fill %lld but %zu buffered indices", key,
                        (long long)fill, n_buffered);
    if (next < fill || next > s->n)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s': next index %lld is out of range %lld..%lld (fill..n)",
                        key, (long long)next, (long long)fill, (long long)s->n);
    if (next < s->n && fill != s->size)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s': fill %lld with next index %lld of %lld, but the "
                        "buffer holds %lld until the input runs out", key, (long long)fill, (long long)next,
                        (long long)s->n, (long long)s->size);
    return check_buffered(key, buffered, fill, next);
}

df_status df_shuffle_buffer_restore(df_shuffle_buffer *s, const df_checkpoint *ck, const char *rng_key,
                                    const char *key, int64_t *head, const int64_t *head_max, size_t n_head)
{
    df_rng rng = s->rng;
    int64_t *record;
    size_t n;
    df_status st = df_checkpoint_get_blob_into(ck, rng_key, &rng, sizeof rng);
    if (st == DF_OK) st = df_checkpoint_get_int64s(ck, key, n_head + 2, n_head + 2 + (size_t)s->size, &record, &n);
    if (st != DF_OK) return st;
    for (size_t i = 0; st == DF_OK && i < n_head; i++)
        if (record[i] < 0 || record[i] > head_max[i])
            st = df_error(DF_ERR_FORMAT, "checkpoint entry '%s': leading value %zu is %lld, out of range 0..%lld", key, i,
                          (long long)record[i], (long long)head_max[i]);
    if (st == DF_OK)
        st = check_place(s, key, record[n_head], record[n_head + 1], record + n_head + 2, n - n_head - 2);
    if (st == DF_OK) {
        if (n_head) memcpy(head, record, n_head * sizeof *record);
        s->rng = rng;
        s->fill = record[n_head];
        s->next = record[n_head + 1];
        if (s->fill) memcpy(s->buffer, record + n_head + 2, (size_t)s->fill * sizeof *record);
    }
    free(record);    /* get_int64s's copy: malloc'd */
    return st;
}
