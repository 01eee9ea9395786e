/* arena.c — allocation hooks and a chunked bump arena for graph-building objects. */
#include <stdlib.h>
#include <string.h>
#include "base.h"

static long allocs_until_failure = -1;

void df_fail_alloc_after(long n) { allocs_until_failure = n; }

/* True when the test hook says this allocation must fail. */
static bool injected_failure(void)
{
    if (allocs_until_failure < 0) return false;
    if (allocs_until_failure == 0) return true;
    allocs_until_failure--;
    return false;
}

void *df_malloc(size_t bytes) { return injected_failure() ? NULL : malloc(bytes ? bytes : 1); }
void *df_calloc(size_t n, size_t size) { return injected_failure() ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *df_realloc(void *p, size_t bytes) { return injected_failure() ? NULL : realloc(p, bytes ? bytes : 1); }
void df_free(void *p) { free(p); }

void *df_aligned_alloc(size_t bytes)
{
    if (injected_failure()) return NULL;
    size_t rounded = (bytes + DF_ALIGN - 1) / DF_ALIGN * DF_ALIGN;
    void *p = aligned_alloc(DF_ALIGN, rounded ? rounded : DF_ALIGN);
    if (p) memset(p, 0, rounded ? rounded : DF_ALIGN);
    return p;
}

char *df_strdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = df_malloc(n);
    if (d) memcpy(d, s ? s : "", n);
    return d;
}

struct df_arena_chunk {
    df_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

void *df_arena_alloc(df_arena *a, size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    df_arena_chunk *c = a->head;
    if (!c || c->used + bytes > c->cap) {
        size_t cap = bytes > 60000 ? bytes : 60000;
        c = df_malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

void df_arena_free(df_arena *a)
{
    for (df_arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}
