/* batches.h — (input, target) batches from the encoded corpus, two ways:
 *  shuffle: the tutorial's pipeline — chunks of seq+1 chars, input chunk[:-1],
 *           target chunk[1:], a 10000-element shuffle buffer as tf.data's
 *           shuffle(), batches with drop_remainder (172 steps per epoch).
 *  streams: batch row b reads its own contiguous stretch of text, so each
 *           batch continues exactly where the previous one stopped — what a
 *           stateful RNN should see. */
#ifndef CR_BATCHES_H
#define CR_BATCHES_H
#include <stdint.h>
#include "dagflow.h"

typedef enum cr_batching { CR_SHUFFLE, CR_STREAMS } cr_batching;

typedef struct cr_batcher {
    const int32_t *ids;
    int64_t n_ids, n_chunks, steps_per_epoch, step;
    int seq, batch;
    int row0, rows;                /* this process's rows of each batch (all of them unless sharded) */
    cr_batching mode;
    /* shuffle: the order of the chunks (streams: of none; its RNG is unused,
     * yet checkpointed as ever). */
    df_shuffle_buffer order;
} cr_batcher;

/* Fails (DF_ERR_RANGE) when the text is too short for one batch. */
df_status cr_batcher_init(cr_batcher *b, const int32_t *ids, int64_t n_ids, int seq, int batch,
                          cr_batching mode, int buffer_size, uint64_t seed);
/* The validation split of a corpus of n_ids: its last `fraction` of chars
 * (0 when fraction is 0). */
static inline int64_t cr_val_chars(int64_t n_ids, float fraction) { return (int64_t)(n_ids * (double)fraction); }
/* Batches of that split as training evaluates it: streams, in corpus
 * order; a split too short for one batch is an error saying so. */
df_status cr_batcher_init_val(cr_batcher *b, const int32_t *ids, int64_t n_ids, float fraction, int seq, int batch,
                              uint64_t seed);
void cr_batcher_free(cr_batcher *b);
/* Starts an epoch (refills the shuffle buffer; the RNG carries on). */
void cr_batcher_start_epoch(cr_batcher *b);
/* The batch that starts the text (no shuffling, no RNG use, position kept):
 * for the untrained-loss probe. */
void cr_batcher_first_batch(const cr_batcher *b, int32_t *x, int32_t *y);
/* Data parallelism: process `rank` of `ranks` gets rows [rank*batch/ranks,
 * (rank+1)*batch/ranks) of every batch; the order of batches and chunks is
 * the unsharded one, so the ranks together see exactly one process's
 * batches. batch % ranks must be 0 (DF_ERR_ARG otherwise). */
df_status cr_batcher_shard(cr_batcher *b, int rank, int ranks);
/* x and y receive (rows, seq) indices: this process's rows of the next
 * batch. Returns false at the end of the epoch. */
bool cr_batcher_next(cr_batcher *b, int32_t *x, int32_t *y);

#endif
