/* fuzz_text.c — libFuzzer harness for the char-rnn text and vocabulary code.
 *
 * The input is a corpus for cr_text_from_utf8 (which must either fail with a
 * message or give ids that index a sorted vocabulary and decode back to the
 * input), a serialized vocabulary for cr_vocab_from_utf8 (which must round-trip
 * through cr_vocab_to_utf8 byte for byte), and, split at the first NUL, a
 * vocabulary and a start string for cr_vocab_encode (as `char-rnn sample
 * --start` uses it), with a length limit taken from the input. Any
 * contradiction traps, so libFuzzer reports it as a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "text.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void tx_check_vocab(const cr_vocab *v)
{
    FUZZ_CHECK(v->size >= 1 && v->size <= CR_MAX_VOCAB);
    for (int i = 1; i < v->size; i++) FUZZ_CHECK(v->chars[i - 1] < v->chars[i]);
    FUZZ_CHECK(v->chars[v->size - 1] <= 0x10FFFF);
    for (int i = 0; i < v->size; i++) FUZZ_CHECK(cr_vocab_index(v, v->chars[i]) == i);
}

/* cr_vocab_to_utf8 then cr_vocab_from_utf8 gives v back; returns the bytes. */
static char *tx_round_trip(const cr_vocab *v, size_t *len)
{
    size_t cap = (size_t)CR_MAX_VOCAB * 4;
    char *buf = malloc(cap);
    FUZZ_CHECK(buf);
    *len = cr_vocab_to_utf8(v, buf, cap);
    cr_vocab *back = malloc(sizeof *back);
    FUZZ_CHECK(back);
    FUZZ_CHECK(cr_vocab_from_utf8(buf, *len, back) == DF_OK);
    FUZZ_CHECK(back->size == v->size && !memcmp(back->chars, v->chars, (size_t)v->size * sizeof v->chars[0]));
    free(back);
    return buf;
}

static void tx_corpus(const uint8_t *data, size_t size)
{
    cr_text t;
    df_status st = cr_text_from_utf8((const char *)data, size, &t);
    if (st != DF_OK) {
        FUZZ_CHECK(t.ids == NULL && strlen(df_last_error()) > 0);
        return;
    }
    FUZZ_CHECK(t.n >= 1 && (size_t)t.n <= size);
    tx_check_vocab(&t.vocab);
    /* Re-encoding the ids gives the input back. */
    char *out = malloc(size);
    FUZZ_CHECK(out);
    size_t used = 0;
    for (int64_t i = 0; i < t.n; i++) {
        FUZZ_CHECK(t.ids[i] >= 0 && t.ids[i] < t.vocab.size);
        char ch[4];
        int k = cr_utf8_encode(t.vocab.chars[t.ids[i]], ch);
        FUZZ_CHECK(used + (size_t)k <= size);
        memcpy(out + used, ch, (size_t)k);
        used += (size_t)k;
    }
    FUZZ_CHECK(used == size && !memcmp(out, data, size));
    free(out);
    size_t len;
    free(tx_round_trip(&t.vocab, &len));
    cr_text_free(&t);
}

static void tx_vocab(const uint8_t *data, size_t size)
{
    cr_vocab *v = malloc(sizeof *v);
    FUZZ_CHECK(v);
    if (cr_vocab_from_utf8((const char *)data, size, v) == DF_OK) {
        tx_check_vocab(v);
        size_t len;
        char *bytes = tx_round_trip(v, &len);
        FUZZ_CHECK(len == size && !memcmp(bytes, data, size));    /* the encoding is canonical */
        free(bytes);
    } else {
        FUZZ_CHECK(strlen(df_last_error()) > 0);
    }
    free(v);
}

/* "<vocab>\0<start text>": encode the start text with that vocabulary. */
static void tx_encode(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) return;
    size_t vlen = (size_t)(nul - data);
    cr_vocab *v = malloc(sizeof *v);
    FUZZ_CHECK(v);
    if (cr_vocab_from_utf8((const char *)data, vlen, v) == DF_OK) {
        size_t slen = size - vlen - 1;
        char *s = malloc(slen + 1);                      /* NUL-terminated, as argv is */
        FUZZ_CHECK(s);
        memcpy(s, nul + 1, slen);
        s[slen] = 0;
        int max = vlen ? data[0] % 17 : 0;              /* sometimes too short */
        if (max == 16) max = (int)slen + 1;
        int32_t *ids = malloc(((size_t)max + 1) * sizeof *ids);
        FUZZ_CHECK(ids);
        int n = -1;
        df_status st = cr_vocab_encode(v, s, ids, max, &n);
        FUZZ_CHECK(n >= 0 && n <= max);
        for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < v->size);
        if (st == DF_OK) {
            /* Decoding the ids gives the start text up to its first NUL. */
            size_t used = 0, want = strlen(s);
            for (int i = 0; i < n; i++) {
                char ch[4];
                int k = cr_utf8_encode(v->chars[ids[i]], ch);
                FUZZ_CHECK(used + (size_t)k <= want && !memcmp(s + used, ch, (size_t)k));
                used += (size_t)k;
            }
            FUZZ_CHECK(used == want);
        } else {
            FUZZ_CHECK(strlen(df_last_error()) > 0);
        }
        free(ids);
        free(s);
    }
    free(v);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    tx_corpus(data, size);
    tx_vocab(data, size);
    tx_encode(data, size);
    return 0;
}
