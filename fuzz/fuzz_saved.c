/* fuzz_saved.c — libFuzzer harness for the saved-graph loader and for
 * running what it loads.
 *
 * Each input is loaded twice: as it is (the framing checks: magic, version,
 * sizes, checksum) and with the header's payload size and the XXH64 trailer
 * recomputed, so that mutations reach the section and node parsers and the
 * ops' shape inference instead of dying at the checksum. A graph that
 * loads is then inspected the way dagflow-run does (signature, variables,
 * metadata, every byte of each read through), run, and reset; any
 * contradiction traps, so libFuzzer reports it as a crash. A file that
 * loads is trusted to run: the run feeds inputs of the signature's shapes,
 * open dims at 1 (twice: the state carried), then after a reset at 3 (a
 * second plan), with values drawn from the input's bytes (i32 mostly in
 * [0, 8), a quarter in [-2, 82): ids and positions past any vocabulary and
 * context, and negative ones; f32 in [-4, 4]), and every output
 * is read through. A run may fail (an id out of range), with a message; it
 * must not crash or read out of bounds. Loads are capped at 64 MiB of
 * planned tensors so that a small input cannot make the planner allocate
 * gigabytes (df_saved_load itself has no cap), and runs at 4 MiB (estimated
 * per node at the small sizes, for open dims), which keeps runs fast.
 *
 * The seeds in fuzz/corpus/saved/ are real exported files, written by
 * tests/test_saved with DF_WRITE_SAVED_SEEDS=fuzz/corpus/saved (a dense
 * train step with Adam, char-rnn LSTM and GRU samplers, an open batch
 * dimension, a fused chain), and by the example programs' export commands
 * (charrnn_cli.dfg, chargpt_cli.dfg: `fuzz.sh seeds` rewrites them from a
 * tiny model of each). Built by `make fuzz` (fuzz/fuzz.sh);
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

#define SV_RUN_MAX_BYTES ((size_t)4 << 20)

/* A node's size along dim d with the open input dims at `open`: shape (at
 * DF_TRACE_DIM) and alt_shape (at DF_TRACE_DIM_ALT) fix it exactly when it is
 * affine in the open size (batch, 2*batch+1, ...); otherwise the larger of
 * the two bounds it, as shapes grow with their inputs. */
static int64_t sv_dim_at(const df_node *n, int d, int64_t open)
{
    int64_t s = n->shape[d], a = n->alt_shape[d], span = DF_TRACE_DIM_ALT - DF_TRACE_DIM;
    if (s == a) return s;
    if ((a - s) % span == 0) {
        int64_t k = (a - s) / span, c = s - k * DF_TRACE_DIM;
        if (c >= 0 && k > 0) return k * open + c;
    }
    return s > a ? s : a;
}

/* Bytes of tensors a run with the open dims at `open` plans, bounded. */
static size_t sv_run_bytes(const df_graph *g, int64_t open)
{
    if (!g->dynamic) return g->arena_bytes;
    size_t total = 0;
    for (int p = 0; p < g->n_sched; p++) {
        const df_node *n = g->schedule[p];
        double numel = 1;
        for (int d = 0; d < n->ndim; d++) numel *= (double)sv_dim_at(n, d, open);
        double aux = n->numel > 0 ? (double)n->aux_bytes * numel / (double)n->numel : (double)n->aux_bytes;
        double bytes = numel * (double)df_dtype_size(n->dtype) + aux;
        if (bytes > (double)SV_RUN_MAX_BYTES) return SIZE_MAX;
        total += (size_t)bytes;
    }
    return total;
}

/* Input values from the fuzz input's bytes (a small xorshift stream). */
static uint64_t sv_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void sv_fill(const df_tensor *t, uint64_t *x)
{
    int64_t n = df_tensor_numel(t);
    for (int64_t k = 0; k < n; k++) {
        uint64_t r = sv_next(x);
        if (t->dtype == DF_I32)   /* mostly valid ids and positions, a quarter -2 .. 81 */
            ((int32_t *)t->data)[k] = r % 4 ? (int32_t)((r >> 2) % 8) : (int32_t)((r >> 2) % 84) - 2;
        else ((float *)t->data)[k] = (float)(r % 8001) / 1000.0f - 4.0f;
    }
}

/* One run with the open dims at `open`; outputs read through. */
static void sv_run_once(df_saved *s, int64_t open, uint64_t *x)
{
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    FUZZ_CHECK(df_saved_signature(s, &n_in, &in, &n_out, &out) == DF_OK);
    df_tensor inputs[16], *outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    void *bufs[16] = {0};
    bool ok = outputs != NULL;
    for (int i = 0; i < n_in && ok; i++) {
        int64_t shape[DF_MAX_DIMS], numel = 1;
        for (int d = 0; d < in[i].ndim; d++) numel *= shape[d] = in[i].shape[d] == DF_DYNAMIC ? open : in[i].shape[d];
        ok = (bufs[i] = malloc((size_t)numel * 4 + 1)) != NULL;
        inputs[i] = df_tensor_make(in[i].dtype, bufs[i], in[i].ndim, shape);
        if (ok) sv_fill(&inputs[i], x);
    }
    df_status st = ok ? df_saved_run(s, inputs, n_in, outputs, n_out) : DF_ERR_NOMEM;
    if (st != DF_OK) FUZZ_CHECK(strlen(df_last_error()) > 0);
    for (int i = 0; i < n_out && st == DF_OK; i++) {
        FUZZ_CHECK(outputs[i].dtype == out[i].dtype && outputs[i].ndim == out[i].ndim);
        for (int d = 0; d < out[i].ndim; d++)
            FUZZ_CHECK(out[i].shape[d] == DF_DYNAMIC ? outputs[i].shape[d] >= 0 : outputs[i].shape[d] == out[i].shape[d]);
        volatile unsigned char sum = 0;
        int64_t bytes = df_tensor_numel(&outputs[i]) * 4;
        FUZZ_CHECK(bytes == 0 || outputs[i].data);
        for (int64_t b = 0; b < bytes; b++) sum ^= ((const unsigned char *)outputs[i].data)[b];
        (void)sum;
    }
    for (int i = 0; i < n_in; i++) free(bufs[i]);
    free(outputs);
}

/* Runs a loaded graph small enough to run: twice at open dims 1, reset,
 * once at 3. */
static void sv_fuzz_run(df_saved *s, const uint8_t *data, size_t size)
{
    const df_graph *g = df_saved_graph(s);
    uint64_t x = XXH64(data, size, 1) | 1;
    if (sv_run_bytes(g, 3) > SV_RUN_MAX_BYTES) return;
    sv_run_once(s, 1, &x);
    sv_run_once(s, 1, &x);
    FUZZ_CHECK(df_saved_reset(s) == DF_OK);
    if (g->dynamic) sv_run_once(s, 3, &x);
}

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
    sv_fuzz_run(s, buf, size);
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
