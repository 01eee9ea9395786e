/* text.c — UTF-8 corpus loading and the character vocabulary. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "text.h"

int cr_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0) return 0;
    unsigned char b = s[0];
    int n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (size_t)n > len) return 0;
    uint32_t c = n == 1 ? b : b & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_for_len[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;  /* overlong, surrogate */
    *cp = c;
    return n;
}

int cr_utf8_encode(uint32_t c, char *out)
{
    if (c < 0x80) { out[0] = (char)c; return 1; }
    if (c < 0x800) { out[0] = (char)(0xC0 | c >> 6); out[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12); out[1] = (char)(0x80 | (c >> 6 & 0x3F)); out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | c >> 18); out[1] = (char)(0x80 | (c >> 12 & 0x3F));
    out[2] = (char)(0x80 | (c >> 6 & 0x3F)); out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

int cr_vocab_index(const cr_vocab *v, uint32_t c)
{
    int lo = 0, hi = v->size - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v->chars[mid] == c) return mid;
        if (v->chars[mid] < c) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Decodes buf into code points (one pass), checking UTF-8 as it goes. */
static df_status decode_all(const char *buf, size_t len, uint32_t *cps, int64_t *n)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t at = 0;
    *n = 0;
    while (at < len) {
        int k = cr_utf8_decode(s + at, len - at, &cps[*n]);
        if (k == 0) return df_error(DF_ERR_FORMAT, "invalid UTF-8 at byte offset %zu (byte 0x%02x)", at, s[at]);
        at += (size_t)k;
        (*n)++;
    }
    return DF_OK;
}

static df_status build_vocab(const uint32_t *cps, int64_t n, cr_vocab *v)
{
    /* A bitmap over the code points present, then the sorted list. */
    uint8_t *seen = calloc(0x110000 / 8, 1);
    if (!seen) return df_error(DF_ERR_NOMEM, "out of memory building the vocabulary");
    v->size = 0;
    for (int64_t i = 0; i < n; i++) seen[cps[i] >> 3] |= (uint8_t)(1u << (cps[i] & 7));
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (!(seen[c >> 3] >> (c & 7) & 1)) continue;
        if (v->size == CR_MAX_VOCAB) {
            free(seen);
            return df_error(DF_ERR_RANGE, "more than %d distinct characters", CR_MAX_VOCAB);
        }
        v->chars[v->size++] = c;
    }
    free(seen);
    return DF_OK;
}

df_status cr_text_from_utf8(const char *buf, size_t len, cr_text *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0) return df_error(DF_ERR_FORMAT, "the text is empty");
    uint32_t *cps = malloc(len * sizeof *cps);
    out->ids = malloc(len * sizeof *out->ids);
    df_status st = cps && out->ids ? DF_OK : df_error(DF_ERR_NOMEM, "out of memory decoding %zu bytes", len);
    if (st == DF_OK) st = decode_all(buf, len, cps, &out->n);
    if (st == DF_OK) st = build_vocab(cps, out->n, &out->vocab);
    for (int64_t i = 0; st == DF_OK && i < out->n; i++) out->ids[i] = cr_vocab_index(&out->vocab, cps[i]);
    free(cps);
    if (st != DF_OK) cr_text_free(out);
    return st;
}

df_status cr_text_load(const char *path, cr_text *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return df_error(DF_ERR_IO, "corpus not found at %s: %s", path, CR_DATA_HINT);
        return df_error(DF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    df_status st = DF_OK;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *grown = realloc(buf, cap);
            if (!grown) { st = df_error(DF_ERR_NOMEM, "out of memory reading %s", path); break; }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) st = df_error(DF_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (st == DF_OK) st = df_error_prefix(cr_text_from_utf8(buf, len, out), path);
    free(buf);
    return st;
}

void cr_text_free(cr_text *t)
{
    free(t->ids);
    t->ids = NULL;
    t->n = 0;
}

df_status cr_vocab_encode(const cr_vocab *v, const char *s, int32_t *ids, int max, int *n)
{
    size_t len = strlen(s), at = 0;
    *n = 0;
    while (at < len) {
        uint32_t c;
        int k = cr_utf8_decode((const unsigned char *)s + at, len - at, &c);
        if (k == 0) return df_error(DF_ERR_FORMAT, "invalid UTF-8 at byte offset %zu of \"%s\"", at, s);
        int idx = cr_vocab_index(v, c);
        if (idx < 0) {
            char ch[5] = {0};
            cr_utf8_encode(c, ch);
            return df_error(DF_ERR_RANGE, "character '%s' (U+%04X) is not in the model's vocabulary", ch, c);
        }
        if (*n == max) return df_error(DF_ERR_RANGE, "text longer than %d characters", max);
        ids[(*n)++] = idx;
        at += (size_t)k;
    }
    return DF_OK;
}

size_t cr_vocab_to_utf8(const cr_vocab *v, char *out, size_t cap)
{
    size_t used = 0;
    for (int i = 0; i < v->size && used + 4 <= cap; i++) used += (size_t)cr_utf8_encode(v->chars[i], out + used);
    return used;
}

df_status cr_vocab_from_utf8(const char *buf, size_t len, cr_vocab *v)
{
    uint32_t *cps = malloc((len ? len : 1) * sizeof *cps);
    if (!cps) return df_error(DF_ERR_NOMEM, "out of memory");
    int64_t n;
    df_status st = decode_all(buf, len, cps, &n);
    if (st == DF_OK && (n == 0 || n > CR_MAX_VOCAB)) st = df_error(DF_ERR_FORMAT, "vocabulary of %lld chars", (long long)n);
    for (int64_t i = 1; st == DF_OK && i < n; i++)
        if (cps[i] <= cps[i - 1]) st = df_error(DF_ERR_FORMAT, "vocabulary is not sorted and unique");
    if (st == DF_OK) {
        v->size = (int)n;
        memcpy(v->chars, cps, (size_t)n * sizeof *cps);
    }
    free(cps);
    return st;
}
