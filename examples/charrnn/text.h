/* text.h — the corpus as code points: UTF-8 decoding, the sorted vocabulary,
 * char <-> index. */
#ifndef CR_TEXT_H
#define CR_TEXT_H
#include <stddef.h>
#include <stdint.h>
#include "dagflow.h"

#define CR_MAX_VOCAB 4096

typedef struct cr_vocab {
    int size;
    uint32_t chars[CR_MAX_VOCAB];      /* code points, ascending */
} cr_vocab;

typedef struct cr_text {
    int32_t *ids;                      /* the corpus encoded as vocabulary indices */
    int64_t n;                         /* characters (code points) */
    cr_vocab vocab;
} cr_text;

/* The default corpus location and the hint printed when it is missing. */
#define CR_DEFAULT_DATA "../shared/data/tinyshakespeare.txt"
#define CR_DATA_HINT                                                                    \
    "get tiny Shakespeare (the tutorial's shakespeare.txt, 1,115,394 chars) from "      \
    "https://storage.googleapis.com/download.tensorflow.org/data/shakespeare.txt "      \
    "and pass --data PATH"

/* Reads and encodes a UTF-8 file. Missing file, empty text and invalid UTF-8
 * (with its byte offset) are errors with a message. */
df_status cr_text_load(const char *path, cr_text *out);
df_status cr_text_from_utf8(const char *buf, size_t len, cr_text *out);
void cr_text_free(cr_text *t);

/* Index of code point c, or -1. */
int cr_vocab_index(const cr_vocab *v, uint32_t c);
/* Decodes one UTF-8 sequence at s (len bytes left); returns its length, 0 if invalid. */
int cr_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
/* Encodes c into out (4 bytes); returns the length. */
int cr_utf8_encode(uint32_t c, char *out);
/* Encodes a UTF-8 string with v into ids (at most max); unknown chars are an error. */
df_status cr_vocab_encode(const cr_vocab *v, const char *s, int32_t *ids, int max, int *n);
/* The vocabulary as one UTF-8 string (for checkpoints) and back. */
size_t cr_vocab_to_utf8(const cr_vocab *v, char *out, size_t cap);
df_status cr_vocab_from_utf8(const char *buf, size_t len, cr_vocab *v);

#endif
