/* fuzz_runstate.c — libFuzzer harness for reading char-rnn run checkpoints:
 * cr_peek_run (the "config" and "vocab" records that `char-rnn sample` and
 * `train --resume` read before they build a model), then, for small runs,
 * cr_load_run (everything else, into a model and a batcher).
 *
 * Input byte 0 picks the mode. Even: the rest is "<config text>\0<vocab
 * UTF-8>", written as a valid checkpoint holding those two blobs, so the
 * mutations land in the config parser and the vocabulary check. Odd: the rest
 * is a whole checkpoint file whose header size and checksum are fixed up, so
 * entries can be missing, of the wrong kind or duplicated. Either way the file
 * goes to a temp path and cr_peek_run must fail with a message or return a
 * config whose sizes are positive and agree with a valid vocabulary. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "runstate.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

enum { RS_HEADER = 32 };

static void rs_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void rs_header(uint8_t *file, uint32_t count, size_t payload)
{
    memcpy(file, "DAGFLOW", 8);
    rs_put_le(file + 8, 1, 4);
    rs_put_le(file + 12, count, 4);
    rs_put_le(file + 16, payload, 8);
    rs_put_le(file + 24, XXH64(file + RS_HEADER, payload, 0), 8);
}

/* A blob entry: kind 1, u16 name length, name, u64 data length, data. */
static size_t rs_blob(uint8_t *p, const char *name, const uint8_t *data, size_t len)
{
    size_t n = strlen(name);
    p[0] = 1;
    rs_put_le(p + 1, n, 2);
    memcpy(p + 3, name, n);
    rs_put_le(p + 3 + n, len, 8);
    if (len) memcpy(p + 11 + n, data, len);
    return 11 + n + len;
}

static const char *rs_path(void)
{
    static char path[256];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(path, sizeof path, "%s/fuzz_runstate.%ld", dir, (long)getpid());
    }
    return path;
}

/* When the run is small enough to build in microseconds, cr_load_run restores
 * all of it (weights, optimizer slots, progress, RNG, a mid-epoch batcher
 * position and recurrent state) into a model and a batcher made from its
 * config: a restore must fail with a message or leave a consistent state. */
static void rs_load(const char *path, const cr_config *rc, const cr_vocab *vocab)
{
    const cr_config *c = rc;
    if (c->vocab > 64 || c->embed > 8 || c->hidden > 8 || rc->seq < 1 || rc->seq > 8 || rc->batch < 1 || rc->batch > 4)
        return;
    int64_t n = (int64_t)(rc->seq + 1) * rc->batch * 3 + 1;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    FUZZ_CHECK(ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(i % c->vocab);
    cr_model m;
    cr_batcher b;
    if (cr_model_init(&m, c) != DF_OK) {
        free(ids);
        return;
    }
    if (cr_batcher_init(&b, ids, n, rc->seq, rc->batch, rc->batching, 8, c->seed) != DF_OK) {
        cr_model_free(&m);
        free(ids);
        return;
    }
    cr_progress p = {0};
    df_status st = cr_load_run(path, rc, vocab, &m, &b, &p);
    if (st == DF_OK) {
        FUZZ_CHECK(p.epoch >= 0 && p.step >= 0);
        FUZZ_CHECK(b.step >= 0 && b.step <= b.steps_per_epoch);
        const df_shuffle_buffer *o = &b.order;
        FUZZ_CHECK(o->fill >= 0 && o->fill <= o->size && o->next >= 0 && o->next <= o->n && o->n <= b.n_chunks);
        for (int64_t i = 0; i < o->fill; i++) FUZZ_CHECK(o->buffer[i] >= 0 && o->buffer[i] < o->n);
    } else {
        FUZZ_CHECK(strlen(df_last_error()) > 0);
    }
    cr_batcher_free(&b);
    cr_model_free(&m);
    free(ids);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t *file;
    size_t len;
    if (data[0] % 2 == 0) {
        const uint8_t *config = data + 1, *nul = memchr(config, 0, size - 1);
        size_t clen = nul ? (size_t)(nul - config) : size - 1;
        const uint8_t *vocab = nul ? nul + 1 : config + clen;
        size_t vlen = size - 1 - clen - (nul ? 1 : 0);
        file = malloc(RS_HEADER + 2 * 11 + 16 + clen + vlen);
        FUZZ_CHECK(file);
        size_t payload = rs_blob(file + RS_HEADER, "config", config, clen);
        payload += rs_blob(file + RS_HEADER + payload, "vocab", vocab, vlen);
        rs_header(file, 2, payload);
        len = RS_HEADER + payload;
    } else {
        len = size - 1;
        file = malloc(len ? len : 1);
        FUZZ_CHECK(file);
        if (len) memcpy(file, data + 1, len);
        if (len >= RS_HEADER) {
            uint32_t count = (uint32_t)file[12] | (uint32_t)file[13] << 8 | (uint32_t)file[14] << 16 |
                             (uint32_t)file[15] << 24;
            rs_header(file, count, len - RS_HEADER);
        }
    }
    const char *path = rs_path();
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f);
    FUZZ_CHECK(fwrite(file, 1, len, f) == len);
    FUZZ_CHECK(fclose(f) == 0);
    free(file);

    cr_config rc;
    cr_vocab *vocab = malloc(sizeof *vocab);
    FUZZ_CHECK(vocab);
    df_status st = cr_peek_run(path, &rc, vocab);
    if (st == DF_OK) {
        FUZZ_CHECK(rc.vocab == vocab->size);
        FUZZ_CHECK(vocab->size >= 1 && vocab->size <= CR_MAX_VOCAB);
        for (int i = 1; i < vocab->size; i++) FUZZ_CHECK(vocab->chars[i - 1] < vocab->chars[i]);
        FUZZ_CHECK(rc.embed >= 1 && rc.hidden >= 1);
        FUZZ_CHECK(rc.batching == CR_SHUFFLE || rc.batching == CR_STREAMS);
        rs_load(path, &rc, vocab);
    } else {
        FUZZ_CHECK(strlen(df_last_error()) > 0);
    }
    free(vocab);
    unlink(path);
    return 0;
}
