/* fuzz_saved.c — libFuzzer harness for the saved-graph loader.
 *
 * Each input is loaded twice: as it is (the framing checks: magic, version,
 * sizes, checksum) and with the header's payload size and the XXH64 trailer
 * recomputed, so that mutations reach the section and node parsers and the
 * ops' shape inference instead of dying at the checksum. A graph that
 * loads is then inspected the way dagflow-run does (signature, variables,
 * metadata, every byte of each read through) and reset; any contradiction
 * traps, so libFuzzer reports it as a crash. Loads are capped at 64 MiB of
 * planned tensors so that a small input cannot make the planner allocate
 * gigabytes (df_saved_load itself has no cap).
 *
 * The seeds in fuzz/corpus/saved/ are real exported files, written by
 * tests/test_saved with DF_WRITE_SAVED_SEEDS=fuzz/corpus/saved (a dense
 * train step with Adam, char-rnn LSTM and GRU samplers, an open batch
 * dimension, a fused chain). Built by `make fuzz` (fuzz/fuzz.sh);
 * tests/test_saved.c replays the seeds through this function. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "dagflow.h"
#include "../graph/saved.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

enum { SV_HEADER = 24, SV_TRAILER = 8 };

static void sv_fuzz_use(df_saved *s)
{
    int n_in = -1, n_out = -1;
    const df_tensor_spec *in = NULL, *out = NULL;
    FUZZ_CHECK(df_saved_signature(s, &n_in, &in, &n_out, &out) == DF_OK);
    FUZZ_CHECK(n_in >= 0 && n_in <= 16 && n_out >= 0 && (n_in == 0 || in) && (n_out == 0 || out));
    for (int i = 0; i < n_in + n_out; i++) {
        const df_tensor_spec *t = i < n_in ? &in[i] : &out[i - n_in];
        FUZZ_CHECK(t->dtype == DF_F32 || t->dtype == DF_I32);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= DF_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++) FUZZ_CHECK(t->shape[d] >= 0 || t->shape[d] == DF_DYNAMIC);
    }
    for (int i = 0; i < n_in; i++) FUZZ_CHECK(df_saved_input_name(s, i) != NULL);
    FUZZ_CHECK(df_saved_input_name(s, n_in)[0] == 0);
    int n_vars = df_saved_variable_count(s);
    for (int i = 0; i < n_vars; i++) {
        df_variable *v = df_saved_variable(s, i);
        FUZZ_CHECK(v && df_saved_find_variable(s, df_variable_name(v)));
        df_tensor t = df_variable_tensor(v);
        volatile unsigned char sum = 0;
        for (int64_t k = 0; k < df_variable_numel(v) * 4; k++) sum ^= ((const unsigned char *)t.data)[k];
        (void)sum;
    }
    FUZZ_CHECK(df_saved_variable(s, n_vars) == NULL);
    const char *keys[] = {"vocab", "dagflow.sampler", "model", "note"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const void *data;
        size_t size;
        if (df_saved_metadata(s, keys[k], &data, &size) != DF_OK) continue;
        volatile unsigned char sum = 0;
        for (size_t b = 0; b < size; b++) sum ^= ((const unsigned char *)data)[b];
        (void)sum;
    }
    df_graph_stats stats;
    FUZZ_CHECK(df_graph_get_stats(df_saved_graph(s), &stats) == DF_OK);
    FUZZ_CHECK(df_saved_reset(s) == DF_OK);
}

static void sv_fuzz_load(const uint8_t *buf, size_t size)
{
    df_saved *s = (df_saved *)1;
    df_status st = df_saved_load_buffer(buf, size, "fuzz", (size_t)64 << 20, &s);
    if (st != DF_OK) {
        FUZZ_CHECK(s == NULL);
        FUZZ_CHECK(st == DF_ERR_FORMAT || st == DF_ERR_NOMEM);
        FUZZ_CHECK(strlen(df_last_error()) > 0);
        return;
    }
    FUZZ_CHECK(s != NULL);
    sv_fuzz_use(s);
    df_saved_free(s);
}

static void sv_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    sv_fuzz_load(data, size);
    if (size >= SV_HEADER + SV_TRAILER) {
        uint8_t *fixed = malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        memcpy(fixed, "DFGRAPH", 8);
        sv_put_le(fixed + 8, 1, 4);
        sv_put_le(fixed + 12, 0, 4);
        sv_put_le(fixed + 16, size - SV_HEADER - SV_TRAILER, 8);
        sv_put_le(fixed + size - SV_TRAILER, XXH64(fixed, size - SV_TRAILER, 0), 8);
        sv_fuzz_load(fixed, size);
        free(fixed);
    }
    return 0;
}
