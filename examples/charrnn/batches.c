/* batches.c — the two batching schemes described in batches.h. */
#include <string.h>
#include "batches.h"

df_status cr_batcher_init(cr_batcher *b, const int32_t *ids, int64_t n_ids, int seq, int batch,
                          cr_batching mode, int buffer_size, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    if (seq < 1 || batch < 1 || buffer_size < 1)
        return df_error(DF_ERR_ARG, "seq, batch and shuffle buffer must be positive");
    b->ids = ids;
    b->n_ids = n_ids;
    b->seq = seq;
    b->batch = b->rows = batch;
    b->mode = mode;
    /* shuffle: disjoint chunks of seq+1; streams: chunks advance by seq so the
     * next input starts where the last target ended. */
    b->n_chunks = mode == CR_SHUFFLE ? n_ids / (seq + 1) : (n_ids - 1) / seq;
    b->steps_per_epoch = b->n_chunks / batch;
    if (b->steps_per_epoch < 1)
        return df_error(DF_ERR_RANGE, "text of %lld chars is too short for one batch of %d x %d",
                        (long long)n_ids, batch, seq + 1);
    return df_shuffle_buffer_init(&b->order, mode == CR_SHUFFLE ? b->n_chunks : 0, buffer_size, seed);
}

df_status cr_batcher_init_val(cr_batcher *b, const int32_t *ids, int64_t n_ids, float fraction, int seq, int batch,
                              uint64_t seed)
{
    const int64_t n_val = cr_val_chars(n_ids, fraction);
    df_status st = cr_batcher_init(b, ids + (n_ids - n_val), n_val, seq, batch, CR_STREAMS, 1, seed);
    if (st != DF_OK)
        return df_error(st, "validation split of %lld chars is too small for one %d x %d batch", (long long)n_val,
                        batch, seq);
    return DF_OK;
}

void cr_batcher_free(cr_batcher *b) { df_shuffle_buffer_free(&b->order); }

void cr_batcher_start_epoch(cr_batcher *b)
{
    b->step = 0;
    df_shuffle_buffer_start_epoch(&b->order);
}

static void copy_chunk(const cr_batcher *b, int64_t start, int32_t *x, int32_t *y)
{
    memcpy(x, b->ids + start, (size_t)b->seq * sizeof *x);
    memcpy(y, b->ids + start + 1, (size_t)b->seq * sizeof *y);
}

/* Start of chunk `chunk` of row `row` at `step`, in range for either mode. */
static int64_t contiguous_start(const cr_batcher *b, int row, int64_t step)
{
    if (b->mode == CR_SHUFFLE) return (row + step * b->batch) * (b->seq + 1);
    return (row * b->steps_per_epoch + step) * b->seq;
}

df_status cr_batcher_shard(cr_batcher *b, int rank, int ranks)
{
    if (ranks < 1 || rank < 0 || rank >= ranks) return df_error(DF_ERR_ARG, "rank %d of %d is out of range", rank, ranks);
    if (b->batch % ranks)
        return df_error(DF_ERR_ARG, "--batch %d cannot be split evenly over %d processes: use a multiple of %d "
                        "(each process trains on batch/%d rows; together they train on the whole batch)",
                        b->batch, ranks, ranks, ranks);
    b->rows = b->batch / ranks;
    b->row0 = rank * b->rows;
    return DF_OK;
}

void cr_batcher_first_batch(const cr_batcher *b, int32_t *x, int32_t *y)
{
    for (int row = b->row0; row < b->row0 + b->rows; row++) {
        int64_t at = (int64_t)(row - b->row0) * b->seq;
        copy_chunk(b, contiguous_start(b, row, 0), x + at, y + at);
    }
}

bool cr_batcher_next(cr_batcher *b, int32_t *x, int32_t *y)
{
    if (b->step >= b->steps_per_epoch) return false;
    for (int row = 0; row < b->batch; row++) {      /* every row draws, so all shards share one order */
        int64_t start, chunk = 0;
        if (b->mode == CR_SHUFFLE) {
            df_shuffle_buffer_next(&b->order, &chunk);    /* an epoch draws at most n_chunks */
            start = chunk * (b->seq + 1);
        } else start = contiguous_start(b, row, b->step);
        if (row >= b->row0 && row < b->row0 + b->rows)
            copy_chunk(b, start, x + (int64_t)(row - b->row0) * b->seq, y + (int64_t)(row - b->row0) * b->seq);
    }
    b->step++;
    return true;
}
