/* fuzz_checkpoint.c — libFuzzer harness for the checkpoint reader.
 *
 * Each input is read twice with df_checkpoint_read_memory: as it is (the
 * header checks: magic, version, sizes, checksum) and with the header's
 * payload size and XXH64 recomputed, so mutations reach the entry parser
 * instead of dying at the checksum. A checkpoint that reads is then used the
 * way a program uses one: every entry listed, every blob fetched and read
 * through, tensors restored into variables of the expected names and shapes
 * (and into same-named variables of the wrong shape and dtype, which must be
 * refused). Any contradiction traps, so libFuzzer reports it as a crash.
 *
 * Built by `make fuzz` (fuzz/fuzz.sh) with clang -fsanitize=fuzzer,address,
 * undefined; tests/test_fuzz_replay.c replays the corpus and the regression
 * inputs through the same function in the normal and sanitizer builds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "dagflow.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

enum { CK_HEADER = 32 };

/* The variables the seed checkpoints hold (fuzz/make_seeds.c writes them). */
typedef struct ck_fuzz_var {
    const char *name;
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
} ck_fuzz_var;

static const ck_fuzz_var ck_fuzz_vars[] = {
    {"w", DF_F32, 2, {2, 3}},
    {"b", DF_F32, 1, {3}},
    {"step", DF_I32, 0, {0}},
    {"t4", DF_F32, 4, {1, 2, 1, 2}},
    {"empty", DF_F32, 2, {0, 5}},
};

/* Restores every tensor entry into a few variables; the calls must either
 * succeed or fail with a message, and a refused restore must leave the
 * variable untouched. */
static void ck_fuzz_use(df_checkpoint *ck)
{
    int n = df_checkpoint_count(ck);
    FUZZ_CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        const char *name = df_checkpoint_entry_name(ck, i);
        df_checkpoint_kind kind = df_checkpoint_entry_kind(ck, i);
        FUZZ_CHECK(name && *name);
        FUZZ_CHECK(kind == DF_CHECKPOINT_BLOB || kind == DF_CHECKPOINT_TENSOR);
        const void *data;
        size_t len;
        df_status st = df_checkpoint_get_blob(ck, name, &data, &len);
        FUZZ_CHECK((st == DF_OK) == (kind == DF_CHECKPOINT_BLOB));
        if (st == DF_OK) {
            volatile unsigned char sum = 0;           /* read every byte: ASan checks the span */
            for (size_t k = 0; k < len; k++) sum ^= ((const unsigned char *)data)[k];
            (void)sum;
        } else {
            FUZZ_CHECK(strlen(df_last_error()) > 0);
            /* A same-named scalar of each dtype: restored only if it matches. */
            for (int dt = 0; dt < 2; dt++) {
                df_variable *v = df_variable_new(name, (df_dtype)dt, 0, NULL, df_init_constant(7), NULL);
                if (!v) continue;
                st = df_checkpoint_restore_variable(ck, v);
                df_tensor t = df_variable_tensor(v);
                if (st != DF_OK) {
                    FUZZ_CHECK(strlen(df_last_error()) > 0);
                    FUZZ_CHECK(dt == DF_F32 ? *(float *)t.data == 7.0f : *(int32_t *)t.data == 7);
                }
                df_variable_free(v);
            }
        }
    }
    FUZZ_CHECK(df_checkpoint_entry_name(ck, n) == NULL && df_checkpoint_entry_name(ck, -1) == NULL);
    for (size_t i = 0; i < sizeof ck_fuzz_vars / sizeof ck_fuzz_vars[0]; i++) {
        const ck_fuzz_var *fv = &ck_fuzz_vars[i];
        df_variable *v = df_variable_new(fv->name, fv->dtype, fv->ndim, fv->shape, df_init_zeros(), NULL);
        if (!v) continue;
        df_status st = df_checkpoint_restore_variable(ck, v);
        FUZZ_CHECK(st == DF_OK || strlen(df_last_error()) > 0);
        df_tensor t = df_variable_tensor(v);
        volatile float sum = 0;
        for (int64_t k = 0; k < df_variable_numel(v); k++)
            sum += fv->dtype == DF_F32 ? ((float *)t.data)[k] : (float)((int32_t *)t.data)[k];
        (void)sum;
        df_variable_free(v);
    }
    const void *data;
    size_t len;
    if (df_checkpoint_get_blob(ck, "version", &data, &len) == DF_OK && len) {
        volatile unsigned char last = ((const unsigned char *)data)[len - 1];
        (void)last;
    }
}

static void ck_fuzz_read(const uint8_t *buf, size_t size)
{
    df_checkpoint *ck = (df_checkpoint *)1;
    df_status st = df_checkpoint_read_memory(buf, size, &ck);
    if (st != DF_OK) {
        FUZZ_CHECK(ck == NULL);
        FUZZ_CHECK(strlen(df_last_error()) > 0);
        return;
    }
    FUZZ_CHECK(ck != NULL);
    ck_fuzz_use(ck);
    df_checkpoint_free(ck);
}

static void ck_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    ck_fuzz_read(data, size);
    if (size >= CK_HEADER) {
        /* The same bytes with a header that agrees with them. */
        uint8_t *fixed = malloc(size);
        if (!fixed) return 0;
        memcpy(fixed, data, size);
        memcpy(fixed, "DAGFLOW", 8);
        ck_put_le(fixed + 8, 1, 4);
        ck_put_le(fixed + 16, size - CK_HEADER, 8);
        ck_put_le(fixed + 24, XXH64(fixed + CK_HEADER, size - CK_HEADER, 0), 8);
        ck_fuzz_read(fixed, size);
        free(fixed);
    }
    return 0;
}
