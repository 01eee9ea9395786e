/* checkpoint.c — a named container of blobs and tensors with an atomic,
 * checksummed file format, so a training run can resume exactly.
 *
 * FILE FORMAT, version 1 (every integer little-endian)
 *
 *   header, 32 bytes
 *     offset 0   8 bytes  magic "DAGFLOW\0"
 *     offset 8   u32      version (1)
 *     offset 12  u32      entry count
 *     offset 16  u64      payload bytes (the file is exactly 32 + this long)
 *     offset 24  u64      XXH64 of the payload, seed 0
 *   payload: the entries back to back, each
 *     u8    kind: 1 = blob, 2 = tensor (df_checkpoint_kind)
 *     u16   name length n (1..65535), then n bytes of name (no NUL inside)
 *     tensors only:
 *       u8  dtype (df_dtype: 0 = f32, 1 = i32)
 *       u8  ndim (0..DF_MAX_DIMS), then ndim x i64 dims (each >= 0)
 *     u64   data length m, then m bytes of data; for a tensor m is
 *           numel x dtype size and the elements are row-major (no alignment)
 *
 * Names are unique within a file. The reader checks magic, version, sizes and
 * the checksum before it parses anything, then bounds-checks every length, so
 * a corrupt or hostile file gives DF_ERR_FORMAT and never a read out of bounds
 * or an allocation larger than the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "base.h"
#include "variable.h"

/* Tensor data goes to disk straight from variable storage (no copy, no
 * swapping), which is only the documented little-endian layout on such hosts. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c assumes a little-endian host"
#endif

static const unsigned char ck_magic[8] = "DAGFLOW";   /* the 8th byte is the NUL */
enum {
    CK_VERSION = 1,
    CK_HEADER_BYTES = 32,
    CK_MAX_NAME = 65535
};
#define CK_MEMORY_LABEL "(memory)"

typedef struct ck_entry {
    char *name;
    df_checkpoint_kind kind;
    df_dtype dtype;          /* tensors only */
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    const void *data;        /* a blob copy, a variable's storage or a span of ck->file */
    size_t bytes;
    void *owned;             /* the blob copy that data points to, else NULL */
} ck_entry;

struct df_checkpoint {
    ck_entry *entries;
    int count, cap;
    /* Name index (open addressing, -1 = empty, never more than half full): a
     * hostile file with millions of tiny entries must not make the duplicate
     * check quadratic. */
    int *slots;
    size_t nslots;
    unsigned char *file;     /* contents of a read checkpoint; its entries point into it */
};

/* ------------------------------------------------------------ little-endian */

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---------------------------------------------------------------- entries */

static df_status out_of_memory(const char *what)
{
    return df_error(DF_ERR_NOMEM, "checkpoint: out of memory (%s)", what);
}

static size_t home_slot(const char *name, size_t nslots)
{
    return (size_t)XXH64(name, strlen(name), 0) & (nslots - 1);
}

/* Index of the entry called name, or -1. */
static int find_entry(const df_checkpoint *ck, const char *name)
{
    if (!ck->nslots) return -1;
    for (size_t s = home_slot(name, ck->nslots);; s = (s + 1) & (ck->nslots - 1)) {
        int i = ck->slots[s];
        if (i < 0 || strcmp(ck->entries[i].name, name) == 0) return i;
    }
}

static void index_entry(df_checkpoint *ck, int i)
{
    size_t s = home_slot(ck->entries[i].name, ck->nslots);
    while (ck->slots[s] >= 0) s = (s + 1) & (ck->nslots - 1);
    ck->slots[s] = i;
}

static df_status grow_index(df_checkpoint *ck)
{
    size_t nslots = ck->nslots ? ck->nslots * 2 : 32;
    int *slots = df_malloc(nslots * sizeof *slots);
    if (!slots) return out_of_memory("entry index");
    for (size_t s = 0; s < nslots; s++) slots[s] = -1;
    df_free(ck->slots);
    ck->slots = slots;
    ck->nslots = nslots;
    for (int i = 0; i < ck->count; i++) index_entry(ck, i);
    return DF_OK;
}

/* Makes room for one more entry before anything is changed, so a failed
 * allocation leaves the checkpoint as it was. */
static df_status reserve_entry(df_checkpoint *ck)
{
    if (ck->count == ck->cap) {
        if (ck->cap > (1 << 29)) return out_of_memory("too many entries");
        int cap = ck->cap ? ck->cap * 2 : 16;
        ck_entry *entries = df_realloc(ck->entries, (size_t)cap * sizeof *entries);
        if (!entries) return out_of_memory("entry list");
        ck->entries = entries;
        ck->cap = cap;
    }
    if ((size_t)(ck->count + 1) * 2 > ck->nslots) return grow_index(ck);
    return DF_OK;
}

/* Appends e (whose name is not in ck yet). Takes ownership of e->name and
 * e->owned: they are freed if the append fails. */
static df_status push_entry(df_checkpoint *ck, ck_entry *e)
{
    df_status st = reserve_entry(ck);
    if (st != DF_OK) {
        df_free(e->name);
        df_free(e->owned);
        return st;
    }
    ck->entries[ck->count] = *e;
    index_entry(ck, ck->count++);
    return DF_OK;
}

/* Checks a name for put: present, 1..65535 bytes, not used yet. */
static df_status check_new_name(const df_checkpoint *ck, const char *name, const char *fn)
{
    if (!ck || !name) return df_error(DF_ERR_ARG, "%s: null argument", fn);
    size_t len = strlen(name);
    if (len == 0 || len > CK_MAX_NAME)
        return df_error(DF_ERR_ARG, "%s: name length %zu not in 1..%d", fn, len, CK_MAX_NAME);
    if (find_entry(ck, name) >= 0)
        return df_error(DF_ERR_ARG, "%s: the checkpoint already has an entry '%s'", fn, name);
    return DF_OK;
}

df_checkpoint *df_checkpoint_new(void)
{
    df_checkpoint *ck = df_calloc(1, sizeof *ck);
    if (!ck) out_of_memory("df_checkpoint_new");
    return ck;
}

void df_checkpoint_free(df_checkpoint *ck)
{
    if (!ck) return;
    for (int i = 0; i < ck->count; i++) {
        df_free(ck->entries[i].name);
        df_free(ck->entries[i].owned);
    }
    df_free(ck->entries);
    df_free(ck->slots);
    df_free(ck->file);
    df_free(ck);
}

df_status df_checkpoint_put_blob(df_checkpoint *ck, const char *key, const void *data, size_t len)
{
    df_status st = check_new_name(ck, key, "df_checkpoint_put_blob");
    if (st != DF_OK) return st;
    if (!data && len)
        return df_error(DF_ERR_ARG, "df_checkpoint_put_blob '%s': null data of %zu bytes", key, len);
    ck_entry e = {.kind = DF_CHECKPOINT_BLOB, .bytes = len};
    e.name = df_strdup(key);
    e.owned = df_malloc(len);
    if (!e.name || !e.owned) {
        df_free(e.name);
        df_free(e.owned);
        return out_of_memory(key);
    }
    if (len) memcpy(e.owned, data, len);
    e.data = e.owned;
    return push_entry(ck, &e);
}

df_status df_checkpoint_put_variable(df_checkpoint *ck, const df_variable *v)
{
    if (!v) return df_error(DF_ERR_ARG, "df_checkpoint_put_variable: null variable");
    df_status st = check_new_name(ck, v->name, "df_checkpoint_put_variable");
    if (st != DF_OK) return st;
    ck_entry e = {.kind = DF_CHECKPOINT_TENSOR, .dtype = v->dtype, .ndim = v->ndim,
                  .data = v->data, .bytes = (size_t)v->numel * df_dtype_size(v->dtype)};
    memcpy(e.shape, v->shape, sizeof e.shape);
    e.name = df_strdup(v->name);
    if (!e.name) return out_of_memory(v->name);
    return push_entry(ck, &e);
}

/* The entry called name of the given kind, or NULL with the error set. */
static const ck_entry *lookup(const df_checkpoint *ck, const char *name, df_checkpoint_kind kind)
{
    int i = find_entry(ck, name);
    if (i < 0) {
        df_error(DF_ERR_ARG, "checkpoint has no entry '%s'", name);
        return NULL;
    }
    if (ck->entries[i].kind != kind) {
        df_error(DF_ERR_ARG, "checkpoint entry '%s' is a %s, not a %s", name,
                 kind == DF_CHECKPOINT_BLOB ? "tensor" : "blob",
                 kind == DF_CHECKPOINT_BLOB ? "blob" : "tensor");
        return NULL;
    }
    return &ck->entries[i];
}

df_status df_checkpoint_get_blob(const df_checkpoint *ck, const char *key, const void **data,
                                 size_t *len)
{
    if (!ck || !key || !data || !len) return df_error(DF_ERR_ARG, "df_checkpoint_get_blob: null argument");
    const ck_entry *e = lookup(ck, key, DF_CHECKPOINT_BLOB);
    if (!e) return DF_ERR_ARG;
    *data = e->data;
    *len = e->bytes;
    return DF_OK;
}

df_status df_checkpoint_restore_variable(const df_checkpoint *ck, df_variable *v)
{
    if (!ck || !v) return df_error(DF_ERR_ARG, "df_checkpoint_restore_variable: null argument");
    const ck_entry *e = lookup(ck, v->name, DF_CHECKPOINT_TENSOR);
    if (!e) return DF_ERR_ARG;
    if (e->dtype != v->dtype)
        return df_error(DF_ERR_DTYPE, "restoring variable '%s': it is %s, the checkpoint has %s",
                        v->name, df_dtype_name(v->dtype), df_dtype_name(e->dtype));
    if (!df_shape_equal(v->ndim, v->shape, e->ndim, e->shape)) {
        char have[96], stored[96];
        return df_error(DF_ERR_SHAPE, "restoring variable '%s': it has shape %s, the checkpoint has %s",
                        v->name, df_shape_str(v->ndim, v->shape, have, sizeof have),
                        df_shape_str(e->ndim, e->shape, stored, sizeof stored));
    }
    if (e->bytes) memcpy(v->data, e->data, e->bytes);
    df_variable_touch(v);
    return DF_OK;
}

df_status df_checkpoint_tensor_shape(const df_checkpoint *ck, const char *name, df_dtype *dtype, int *ndim,
                                     int64_t shape[DF_MAX_DIMS])
{
    if (!ck || !name || !dtype || !ndim || !shape)
        return df_error(DF_ERR_ARG, "df_checkpoint_tensor_shape: null argument");
    const ck_entry *e = lookup(ck, name, DF_CHECKPOINT_TENSOR);
    if (!e) return DF_ERR_ARG;
    *dtype = e->dtype;
    *ndim = e->ndim;
    memcpy(shape, e->shape, (size_t)e->ndim * sizeof *shape);
    return DF_OK;
}

df_status df_checkpoint_get_tensor_into(const df_checkpoint *ck, const char *name, void *out, size_t len)
{
    if (!ck || !name || (!out && len)) return df_error(DF_ERR_ARG, "df_checkpoint_get_tensor_into: null argument");
    const ck_entry *e = lookup(ck, name, DF_CHECKPOINT_TENSOR);
    if (!e) return DF_ERR_ARG;
    if (e->bytes != len)
        return df_error(DF_ERR_FORMAT, "checkpoint tensor '%s' has %zu bytes, not %zu", name, e->bytes, len);
    if (len) memcpy(out, e->data, len);
    return DF_OK;
}

int df_checkpoint_count(const df_checkpoint *ck) { return ck ? ck->count : 0; }

const char *df_checkpoint_entry_name(const df_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->count ? ck->entries[i].name : NULL;
}

df_checkpoint_kind df_checkpoint_entry_kind(const df_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->count ? ck->entries[i].kind : (df_checkpoint_kind)0;
}

/* ---------------------------------------------------------------- writing */

/* Writes the payload through the checksum as it goes, so a 60 MB model is
 * hashed without a second copy. The first failure sticks (errno kept). */
typedef struct ck_writer {
    FILE *f;
    XXH64_state_t *hash;
    uint64_t payload_bytes;
    int err;                 /* errno of the first failure, 0 if none */
    const char *failed_step;
} ck_writer;

static void fail_step(ck_writer *w, const char *step)
{
    if (w->err) return;
    w->err = errno ? errno : EIO;
    w->failed_step = step;
}

static void emit_raw(ck_writer *w, const void *p, size_t n)
{
    errno = 0;
    if (!w->err && n && fwrite(p, 1, n, w->f) != n) fail_step(w, "write");
}

static void emit(ck_writer *w, const void *p, size_t n)
{
    if (w->err || !n) return;
    emit_raw(w, p, n);
    XXH64_update(w->hash, p, n);   /* cannot fail: p and the state are valid */
    w->payload_bytes += n;
}

static void emit_entry(ck_writer *w, const ck_entry *e)
{
    size_t name_len = strlen(e->name);
    unsigned char head[3], shape[2 + 8 * DF_MAX_DIMS], len[8];
    head[0] = (unsigned char)e->kind;
    put_le(head + 1, name_len, 2);
    emit(w, head, sizeof head);
    emit(w, e->name, name_len);
    if (e->kind == DF_CHECKPOINT_TENSOR) {
        shape[0] = (unsigned char)e->dtype;
        shape[1] = (unsigned char)e->ndim;
        for (int d = 0; d < e->ndim; d++) put_le(shape + 2 + 8 * d, (uint64_t)e->shape[d], 8);
        emit(w, shape, 2 + 8 * (size_t)e->ndim);
    }
    put_le(len, e->bytes, 8);
    emit(w, len, sizeof len);
    emit(w, e->data, e->bytes);
}

static void encode_header(unsigned char *h, uint32_t count, uint64_t payload_bytes, uint64_t hash)
{
    memcpy(h, ck_magic, sizeof ck_magic);
    put_le(h + 8, CK_VERSION, 4);
    put_le(h + 12, count, 4);
    put_le(h + 16, payload_bytes, 8);
    put_le(h + 24, hash, 8);
}

/* Header placeholder, payload, then the real header (its size and checksum are
 * known only at the end), flushed and fsynced. */
static void emit_file(ck_writer *w, const df_checkpoint *ck)
{
    unsigned char header[CK_HEADER_BYTES] = {0};
    emit_raw(w, header, sizeof header);
    for (int i = 0; i < ck->count; i++) emit_entry(w, &ck->entries[i]);
    encode_header(header, (uint32_t)ck->count, w->payload_bytes, XXH64_digest(w->hash));
    errno = 0;
    if (!w->err && fseek(w->f, 0, SEEK_SET) != 0) fail_step(w, "seek");
    emit_raw(w, header, sizeof header);
    errno = 0;
    if (!w->err && fflush(w->f) != 0) fail_step(w, "flush");
    if (!w->err && fsync(fileno(w->f)) != 0) fail_step(w, "fsync");
}

static df_status io_error(const char *action, const char *path, int err)
{
    return df_error(DF_ERR_IO, "checkpoint: cannot %s %s: %s", action, path, strerror(err));
}

/* Writes the whole checkpoint to tmp; on failure removes tmp. */
static df_status write_temp_file(const df_checkpoint *ck, const char *tmp)
{
    FILE *f = fopen(tmp, "wb");
    if (!f) return io_error("create", tmp, errno);
    ck_writer w = {.f = f, .hash = XXH64_createState()};
    df_status st = DF_OK;
    if (!w.hash || XXH64_reset(w.hash, 0) != XXH_OK) {
        st = out_of_memory("checksum state");
    } else {
        emit_file(&w, ck);
        if (w.err) st = io_error(w.failed_step, tmp, w.err);
    }
    XXH64_freeState(w.hash);
    errno = 0;
    if (fclose(f) != 0 && st == DF_OK) st = io_error("close", tmp, errno ? errno : EIO);
    if (st != DF_OK) unlink(tmp);
    return st;
}

/* "<path>.tmp.<pid>": in the same directory, so the rename is atomic. */
static char *temp_path_for(const char *path)
{
    size_t n = strlen(path) + 32;
    char *tmp = df_malloc(n);
    if (tmp) snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    return tmp;
}

static char *directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return df_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);   /* "/x" lives in "/" */
    char *dir = df_malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

/* Makes the rename itself durable. The new file is already in place when this
 * fails; the error says so. */
static df_status sync_directory(const char *dir, const char *path)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        return df_error(DF_ERR_IO, "checkpoint %s: written, but cannot sync directory %s: %s",
                        path, dir, strerror(err));
    }
    if (close(fd) != 0) return io_error("close directory", dir, errno);
    return DF_OK;
}

df_status df_checkpoint_write(const df_checkpoint *ck, const char *path)
{
    if (!ck || !path || !*path) return df_error(DF_ERR_ARG, "df_checkpoint_write: null argument");
    /* Both names first: running out of memory later could strand a temp file. */
    char *tmp = temp_path_for(path), *dir = directory_of(path);
    df_status st = tmp && dir ? write_temp_file(ck, tmp) : out_of_memory(path);
    if (st == DF_OK && rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        st = df_error(DF_ERR_IO, "checkpoint: cannot rename %s to %s: %s", tmp, path, strerror(err));
    }
    if (st == DF_OK) st = sync_directory(dir, path);
    df_free(tmp);
    df_free(dir);
    return st;
}

/* ---------------------------------------------------------------- reading */

/* Header, sizes and checksum; nothing of the payload is parsed yet. */
static df_status verify_file(const unsigned char *buf, size_t len, const char *label,
                             uint32_t *count)
{
    size_t magic_len = len < sizeof ck_magic ? len : sizeof ck_magic;
    if (memcmp(buf, ck_magic, magic_len) != 0)
        return df_error(DF_ERR_FORMAT, "checkpoint %s: not a dagflow checkpoint (bad magic)", label);
    if (len < CK_HEADER_BYTES)
        return df_error(DF_ERR_FORMAT, "checkpoint %s: truncated (file has %zu bytes, the header alone needs %d)",
                        label, len, CK_HEADER_BYTES);
    uint32_t version = (uint32_t)get_le(buf + 8, 4);
    if (version != CK_VERSION)
        return df_error(DF_ERR_FORMAT, "checkpoint %s: format version %u is not supported (this build reads version %d)",
                        label, version, CK_VERSION);
    uint64_t payload = get_le(buf + 16, 8);
    if (payload > len - CK_HEADER_BYTES)
        return df_error(DF_ERR_FORMAT, "checkpoint %s: truncated (file has %zu bytes, header says %llu)",
                        label, len, (unsigned long long)payload + CK_HEADER_BYTES);
    if (payload < len - CK_HEADER_BYTES)
        return df_error(DF_ERR_FORMAT, "checkpoint %s: %llu unexpected bytes after the payload (file has %zu bytes, header says %llu)",
                        label, (unsigned long long)(len - CK_HEADER_BYTES - payload), len,
                        (unsigned long long)payload + CK_HEADER_BYTES);
    if (XXH64(buf + CK_HEADER_BYTES, (size_t)payload, 0) != get_le(buf + 24, 8))
        return df_error(DF_ERR_FORMAT, "checkpoint %s: checksum mismatch (file corrupted)", label);
    *count = (uint32_t)get_le(buf + 12, 4);
    return DF_OK;
}

/* A bounds-checked cursor over the payload. */
typedef struct ck_reader {
    const unsigned char *start, *pos, *end;
    const char *label;
    uint32_t entry;          /* index of the entry being parsed, for messages */
} ck_reader;

static bool take(ck_reader *r, size_t n, const unsigned char **out)
{
    if ((size_t)(r->end - r->pos) < n) return false;
    *out = r->pos;
    r->pos += n;
    return true;
}

static bool take_le(ck_reader *r, int bytes, uint64_t *v)
{
    const unsigned char *p;
    if (!take(r, (size_t)bytes, &p)) return false;
    *v = get_le(p, bytes);
    return true;
}

static df_status malformed(const ck_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static df_status malformed(const ck_reader *r, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return df_error(DF_ERR_FORMAT, "checkpoint %s: entry %u (payload offset %zu): %s", r->label,
                    r->entry, (size_t)(r->pos - r->start), why);
}

/* Bytes a tensor of this dtype and shape needs, or -1 if that overflows. */
static int64_t tensor_bytes(df_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t n = (int64_t)df_dtype_size(dtype);
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) return 0;
    for (int d = 0; d < ndim; d++)
        if (__builtin_mul_overflow(n, shape[d], &n)) return -1;
    return n;
}

static df_status parse_tensor_header(ck_reader *r, ck_entry *e)
{
    uint64_t dtype, ndim, dim;
    if (!take_le(r, 1, &dtype) || !take_le(r, 1, &ndim))
        return malformed(r, "tensor header runs past the end of the payload");
    if (dtype != DF_F32 && dtype != DF_I32) return malformed(r, "unknown dtype %llu", (unsigned long long)dtype);
    if (ndim > DF_MAX_DIMS) return malformed(r, "rank %llu is more than %d", (unsigned long long)ndim, DF_MAX_DIMS);
    e->dtype = (df_dtype)dtype;
    e->ndim = (int)ndim;
    for (int d = 0; d < e->ndim; d++) {
        if (!take_le(r, 8, &dim)) return malformed(r, "shape runs past the end of the payload");
        e->shape[d] = (int64_t)dim;
        if (e->shape[d] < 0) return malformed(r, "negative dimension %lld", (long long)e->shape[d]);
    }
    return DF_OK;
}

/* The data span; a tensor's must be exactly as long as its shape says. */
static df_status parse_data(ck_reader *r, ck_entry *e)
{
    uint64_t len;
    const unsigned char *p;
    if (!take_le(r, 8, &len)) return malformed(r, "data length runs past the end of the payload");
    if (len > (uint64_t)(r->end - r->pos))
        return malformed(r, "data of %llu bytes runs past the end of the payload (%zu bytes left)",
                         (unsigned long long)len, (size_t)(r->end - r->pos));
    take(r, (size_t)len, &p);
    if (e->kind == DF_CHECKPOINT_TENSOR) {
        int64_t need = tensor_bytes(e->dtype, e->ndim, e->shape);
        char shape[96];
        if (need < 0 || (uint64_t)need != len)
            return malformed(r, "tensor of shape %s %s has %llu data bytes",
                             df_shape_str(e->ndim, e->shape, shape, sizeof shape),
                             df_dtype_name(e->dtype), (unsigned long long)len);
    }
    e->data = p;
    e->bytes = (size_t)len;
    return DF_OK;
}

/* A NUL-terminated copy of the entry's name, checked to be new. */
static df_status parse_name(ck_reader *r, const df_checkpoint *ck, char **out)
{
    uint64_t len;
    const unsigned char *p;
    if (!take_le(r, 2, &len) || !take(r, (size_t)len, &p))
        return malformed(r, "name runs past the end of the payload");
    if (len == 0 || memchr(p, 0, (size_t)len)) return malformed(r, "empty name or a NUL in the name");
    char *name = df_malloc((size_t)len + 1);
    if (!name) return out_of_memory("entry name");
    memcpy(name, p, (size_t)len);
    name[len] = '\0';
    if (find_entry(ck, name) >= 0) {
        df_status st = malformed(r, "duplicate entry name '%.64s'", name);
        df_free(name);
        return st;
    }
    *out = name;
    return DF_OK;
}

static df_status parse_entry(ck_reader *r, df_checkpoint *ck)
{
    uint64_t kind;
    ck_entry e = {0};
    if (!take_le(r, 1, &kind)) return malformed(r, "kind runs past the end of the payload");
    if (kind != DF_CHECKPOINT_BLOB && kind != DF_CHECKPOINT_TENSOR)
        return malformed(r, "unknown entry kind %llu", (unsigned long long)kind);
    e.kind = (df_checkpoint_kind)kind;
    df_status st = parse_name(r, ck, &e.name);
    if (st == DF_OK && e.kind == DF_CHECKPOINT_TENSOR) st = parse_tensor_header(r, &e);
    if (st == DF_OK) st = parse_data(r, &e);
    if (st != DF_OK) {
        df_free(e.name);
        return st;
    }
    return push_entry(ck, &e);
}

static df_status parse_payload(df_checkpoint *ck, size_t len, uint32_t count, const char *label)
{
    ck_reader r = {.start = ck->file + CK_HEADER_BYTES, .label = label};
    r.pos = r.start;
    r.end = r.start + len;
    for (r.entry = 0; r.entry < count; r.entry++) {
        if (r.pos == r.end)
            return df_error(DF_ERR_FORMAT, "checkpoint %s: payload ends after %u of %u entries",
                            label, r.entry, count);
        df_status st = parse_entry(&r, ck);
        if (st != DF_OK) return st;
    }
    if (r.pos != r.end)
        return df_error(DF_ERR_FORMAT, "checkpoint %s: %zu bytes after the last of %u entries",
                        label, (size_t)(r.end - r.pos), count);
    return DF_OK;
}

/* Verifies and parses buf (taking ownership of it: freed on error, else kept
 * by the checkpoint, whose entries point into it). */
static df_status open_buffer(unsigned char *buf, size_t len, const char *label, df_checkpoint **out)
{
    uint32_t count = 0;
    df_status st = verify_file(buf, len, label, &count);
    df_checkpoint *ck = st == DF_OK ? df_checkpoint_new() : NULL;
    if (st == DF_OK && !ck) st = DF_ERR_NOMEM;
    if (st != DF_OK) {
        df_free(buf);
        return st;
    }
    ck->file = buf;
    st = parse_payload(ck, len - CK_HEADER_BYTES, count, label);
    if (st != DF_OK) {
        df_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return DF_OK;
}

static df_status read_fully(int fd, unsigned char *buf, size_t len, const char *path)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return io_error("read", path, errno);
        if (n == 0)
            return df_error(DF_ERR_IO, "checkpoint %s: file shrank while being read (%zu of %zu bytes)",
                            path, done, len);
        done += (size_t)n;
    }
    return DF_OK;
}

/* The whole file in one allocation of exactly its size. */
static df_status read_whole_file(const char *path, unsigned char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("open", path, errno);
    struct stat sb;
    df_status st = DF_OK;
    unsigned char *buf = NULL;
    if (fstat(fd, &sb) != 0) st = io_error("stat", path, errno);
    else if (!S_ISREG(sb.st_mode)) st = df_error(DF_ERR_IO, "checkpoint %s: not a regular file", path);
    else if (!(buf = df_malloc((size_t)sb.st_size))) st = out_of_memory(path);
    else st = read_fully(fd, buf, (size_t)sb.st_size, path);
    if (close(fd) != 0 && st == DF_OK) st = io_error("close", path, errno);
    if (st != DF_OK) {
        df_free(buf);
        return st;
    }
    *out = buf;
    *len = (size_t)sb.st_size;
    return DF_OK;
}

df_status df_checkpoint_read(const char *path, df_checkpoint **out)
{
    if (out) *out = NULL;
    if (!path || !out) return df_error(DF_ERR_ARG, "df_checkpoint_read: null argument");
    unsigned char *buf = NULL;
    size_t len = 0;
    df_status st = read_whole_file(path, &buf, &len);
    return st == DF_OK ? open_buffer(buf, len, path, out) : st;
}

df_status df_checkpoint_read_memory(const void *data, size_t len, df_checkpoint **out)
{
    if (out) *out = NULL;
    if (!out || (!data && len)) return df_error(DF_ERR_ARG, "df_checkpoint_read_memory: null argument");
    /* A copy: entries point into it, and the caller's buffer may go away. */
    unsigned char *copy = df_malloc(len);
    if (!copy) return out_of_memory(CK_MEMORY_LABEL);
    if (len) memcpy(copy, data, len);
    return open_buffer(copy, len, CK_MEMORY_LABEL, out);
}
