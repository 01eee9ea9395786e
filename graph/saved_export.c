/* saved_export.c — writes a compiled graph, its variables and metadata into
 * one saved-graph file (format: dagflow.h, "saved graphs"). The file is
 * built in memory, hashed, and written like a checkpoint: a temporary file
 * in the same directory, flushed and fsynced, renamed over the target, and
 * the directory fsynced. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "saved.h"
#include "../ops/registry.h"
#include "../ops/elementwise.h"

int df_saved_op_version(const df_op_def *op) { return op->version > 0 ? op->version : 1; }

/* ------------------------------------------------------------ the bytes */

typedef struct writer {
    unsigned char *buf;
    size_t len, cap;
    bool failed;                  /* out of memory: every later put is dropped */
} writer;

static void put_bytes(writer *w, const void *p, size_t n)
{
    if (w->failed || n == 0) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n) cap *= 2;
        unsigned char *grown = df_realloc(w->buf, cap);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->buf = grown;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_le(writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, (size_t)bytes);
}

static void put_u32(writer *w, uint32_t v) { put_le(w, v, 4); }
static void put_u64(writer *w, uint64_t v) { put_le(w, v, 8); }

static void put_name(writer *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

static void put_shape(writer *w, int ndim, const int64_t *shape)
{
    put_u32(w, (uint32_t)ndim);
    for (int d = 0; d < ndim; d++) put_u64(w, (uint64_t)shape[d]);
}

/* Values are written as the host holds them: the reader checks it runs on
 * a little-endian host too. */
static void put_values(writer *w, const void *data, int64_t numel, df_dtype dtype)
{
    put_bytes(w, data, (size_t)numel * df_dtype_size(dtype));
}

/* ------------------------------------------------------ what is written */

typedef struct exporter {
    df_graph *g;
    writer w;
    int *index;                   /* node id -> file index, -1 when not written */
    int n_written;
    const df_op_def **ops;        /* the op table */
    int n_ops;
    df_variable **vars;
    int n_vars;
} exporter;

static int op_index(exporter *e, const df_op_def *op)
{
    for (int i = 0; i < e->n_ops; i++)
        if (e->ops[i] == op) return i;
    e->ops[e->n_ops] = op;
    return e->n_ops++;
}

static int var_index(exporter *e, df_variable *v)
{
    for (int i = 0; i < e->n_vars; i++)
        if (e->vars[i] == v) return i;
    e->vars[e->n_vars] = v;
    return e->n_vars++;
}

/* The op whose fusion code is code (the table stores names, not codes,
 * which change when elementwise.def gains a line). */
static const df_op_def *op_of_code(int code)
{
    for (int i = 0; i < df_op_registry_count; i++)
        if (df_op_registry[i]->elementwise == code) return df_op_registry[i];
    return NULL;
}

static bool written(const exporter *e, const df_node *n) { return e->index[n->id] >= 0; }

/* Numbers the scheduled nodes in creation order (a topological order) and
 * fills the op and variable tables; refuses ops that cannot be saved. */
static df_status collect(exporter *e)
{
    df_graph *g = e->g;
    for (int id = 0; id < g->n_nodes; id++) {
        df_node *n = g->nodes[id];
        e->index[id] = -1;
        if (n->sched_pos < 0) continue;
        uint32_t bools;
        df_op_attrs_kind kind = df_op_attrs_kind_of(n->op, &bools);
        if (kind == DF_ATTRS_UNSAVED)
            return df_error(DF_ERR_ARG,
                            "export: op '%s' (node %d) holds process-local state (an MPI all-reduce) and cannot be "
                            "saved; export the graph built without the data-parallel gradient transform",
                            n->op->name, n->id);
        e->index[id] = e->n_written++;
        op_index(e, n->op);
        if (kind == DF_ATTRS_VARIABLE) var_index(e, DF_ATTRS(n, df_update_attrs)->var);
        if (kind == DF_ATTRS_FUSED) {
            const df_fused_program *p = DF_ATTRS(n, df_fused_program);
            for (int k = 0; k < p->n; k++) {
                const df_op_def *op = op_of_code(p->ins[k].code);
                if (!op) return df_error(DF_ERR_STATE, "export: node %d: fusion code %d has no op", n->id, p->ins[k].code);
                op_index(e, op);
            }
        }
    }
    if (g->n_placeholders > DF_SAVED_MAX_INPUTS)
        return df_error(DF_ERR_ARG, "export: %d inputs (a saved graph takes at most %d)", g->n_placeholders,
                        DF_SAVED_MAX_INPUTS);
    return DF_OK;
}

static void write_attrs(exporter *e, const df_node *n)
{
    uint32_t bools;
    df_op_attrs_kind kind = df_op_attrs_kind_of(n->op, &bools);
    size_t size = n->op->attrs_size;
    put_u32(&e->w, (uint32_t)size);
    unsigned char bytes[512];
    if (size > sizeof bytes) {                   /* no op has this many; refuse rather than truncate */
        e->w.failed = true;
        return;
    }
    if (size) memcpy(bytes, n->attrs, size);
    if (kind == DF_ATTRS_VARIABLE || kind == DF_ATTRS_CONSTANT) memset(bytes, 0, sizeof(void *));
    if (kind == DF_ATTRS_FUSED) {
        df_fused_program p = *DF_ATTRS(n, df_fused_program);
        for (int k = 0; k < p.n; k++) p.ins[k].code = (uint8_t)op_index(e, op_of_code(p.ins[k].code));
        memcpy(bytes, &p, sizeof p);
    }
    put_bytes(&e->w, bytes, size);
    if (kind == DF_ATTRS_VARIABLE) put_u32(&e->w, (uint32_t)var_index(e, DF_ATTRS(n, df_update_attrs)->var));
    if (kind == DF_ATTRS_CONSTANT) put_values(&e->w, n->data, n->numel, n->dtype);
}

static void write_node(exporter *e, const df_node *n)
{
    writer *w = &e->w;
    put_u32(w, (uint32_t)op_index(e, n->op));
    put_u32(w, (uint32_t)n->n_in);
    for (int i = 0; i < n->n_in; i++) put_u32(w, (uint32_t)e->index[n->in[i]->id]);
    put_u32(w, (uint32_t)n->dtype);
    put_shape(w, n->ndim, n->traced_shape);
    put_name(w, n->name);
    write_attrs(e, n);
}

static void write_payload(exporter *e, int n_meta, const df_saved_meta *meta)
{
    df_graph *g = e->g;
    writer *w = &e->w;
    put_u32(w, g->passes);
    put_u32(w, (uint32_t)e->n_ops);
    for (int i = 0; i < e->n_ops; i++) {
        put_name(w, e->ops[i]->name);
        put_u32(w, (uint32_t)df_saved_op_version(e->ops[i]));
    }
    put_u32(w, (uint32_t)e->n_vars);
    for (int i = 0; i < e->n_vars; i++) {
        const df_variable *v = e->vars[i];
        put_name(w, v->name);
        put_u32(w, (uint32_t)v->dtype);
        put_shape(w, v->ndim, v->shape);
        put_values(w, v->data, v->numel, v->dtype);
    }
    put_u32(w, (uint32_t)e->n_written);
    for (int id = 0; id < g->n_nodes; id++)
        if (written(e, g->nodes[id])) write_node(e, g->nodes[id]);
    put_u32(w, (uint32_t)g->n_outputs);
    for (int i = 0; i < g->n_outputs; i++) put_u32(w, (uint32_t)e->index[g->outputs[i]->id]);
    int pairs = 0;
    for (int i = 0; i < g->n_assumed; i += 2) pairs += written(e, g->assumed[i]) && written(e, g->assumed[i + 1]);
    put_u32(w, (uint32_t)pairs);
    for (int i = 0; i < g->n_assumed; i += 2)
        if (written(e, g->assumed[i]) && written(e, g->assumed[i + 1])) {
            put_u32(w, (uint32_t)e->index[g->assumed[i]->id]);
            put_u32(w, (uint32_t)e->index[g->assumed[i + 1]->id]);
        }
    put_u32(w, (uint32_t)n_meta);
    for (int i = 0; i < n_meta; i++) {
        put_name(w, meta[i].key);
        put_u64(w, meta[i].size);
        put_bytes(w, meta[i].data, meta[i].size);
    }
}

/* The header in front of the payload and the checksum after it. */
static void frame(writer *w)
{
    uint64_t payload = w->len - DF_SAVED_HEADER;
    unsigned char *h = w->buf;
    memcpy(h, DF_SAVED_MAGIC, 8);
    for (int i = 0; i < 4; i++) h[8 + i] = (unsigned char)(DF_SAVED_VERSION >> (8 * i));
    memset(h + 12, 0, 4);
    for (int i = 0; i < 8; i++) h[16 + i] = (unsigned char)(payload >> (8 * i));
    put_u64(w, XXH64(w->buf, w->len, 0));
}

/* ------------------------------------------------------------ the file */

static df_status io_error(const char *action, const char *path, int err)
{
    return df_error(DF_ERR_IO, "export: cannot %s '%s': %s", action, path, strerror(err));
}

/* Writes all of buf to tmp and makes it durable. */
static df_status write_temp(const char *tmp, const unsigned char *buf, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return io_error("create", tmp, errno);
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? errno : ENOSPC;
            close(fd);
            return io_error("write", tmp, err);
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        int err = errno;
        close(fd);
        return io_error("fsync", tmp, err);
    }
    if (close(fd) != 0) return io_error("close", tmp, errno);
    return DF_OK;
}

static df_status sync_directory_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return io_error("open the directory of", path, errno);
    int rc = fsync(fd), err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL)              /* some file systems cannot sync directories */
        return df_error(DF_ERR_IO, "export: '%s' is written but may not be durable: fsync of '%s': %s", path, dir,
                        strerror(err));
    return DF_OK;
}

static df_status write_atomically(const char *path, const unsigned char *buf, size_t len)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return df_error(DF_ERR_ARG, "export: path too long");
    df_status st = write_temp(tmp, buf, len);
    if (st == DF_OK && rename(tmp, path) != 0) st = io_error("rename the temporary file to", path, errno);
    if (st != DF_OK) {
        unlink(tmp);
        return st;
    }
    return sync_directory_of(path);
}

static df_status check_meta(int n_meta, const df_saved_meta *meta)
{
    if (n_meta < 0 || (n_meta > 0 && !meta)) return df_error(DF_ERR_ARG, "export: %d metadata entries, null array", n_meta);
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !*meta[i].key || strlen(meta[i].key) > DF_SAVED_MAX_NAME)
            return df_error(DF_ERR_ARG, "export: metadata %d: key must be 1..%d bytes", i, DF_SAVED_MAX_NAME);
        if (meta[i].size && !meta[i].data) return df_error(DF_ERR_ARG, "export: metadata '%s': null data", meta[i].key);
        for (int k = 0; k < i; k++)
            if (strcmp(meta[k].key, meta[i].key) == 0)
                return df_error(DF_ERR_ARG, "export: metadata key '%s' given twice", meta[i].key);
    }
    return DF_OK;
}

df_status df_graph_export(df_graph *g, const char *path, int n_meta, const df_saved_meta *meta)
{
    if (!g || !path) return df_error(DF_ERR_ARG, "df_graph_export: null %s", g ? "path" : "graph");
    df_status st = check_meta(n_meta, meta);
    if (st == DF_OK) st = df_graph_compile(g);
    if (st != DF_OK) return st;
    exporter e = {.g = g};
    e.index = df_malloc(((size_t)g->n_nodes + 1) * sizeof *e.index);
    e.ops = df_malloc(((size_t)df_op_registry_count + 1) * sizeof *e.ops);
    e.vars = df_malloc(((size_t)g->n_nodes + 1) * sizeof *e.vars);
    if (!e.index || !e.ops || !e.vars) st = df_error(DF_ERR_NOMEM, "export: out of memory");
    if (st == DF_OK) st = collect(&e);
    if (st == DF_OK) {
        unsigned char header[DF_SAVED_HEADER] = {0};
        put_bytes(&e.w, header, sizeof header);
        write_payload(&e, n_meta, meta);
        if (!e.w.failed) frame(&e.w);
        if (e.w.failed) st = df_error(DF_ERR_NOMEM, "export: out of memory building the file");
    }
    if (st == DF_OK) st = write_atomically(path, e.w.buf, e.w.len);
    df_free(e.w.buf);
    df_free(e.index);
    df_free(e.ops);
    df_free(e.vars);
    return st;
}

df_status df_function_export(df_function *f, int n_inputs, const df_tensor_spec *signature, const char *path,
                             int n_meta, const df_saved_meta *meta)
{
    if (!f || !path) return df_error(DF_ERR_ARG, "df_function_export: null %s", f ? "path" : "function");
    if (n_inputs < 0 || n_inputs > DF_SAVED_MAX_INPUTS || (n_inputs > 0 && !signature))
        return df_error(DF_ERR_ARG, "df_function_export: %d inputs (0..%d) or null signature", n_inputs,
                        DF_SAVED_MAX_INPUTS);
    df_tensor spec[DF_SAVED_MAX_INPUTS];
    for (int i = 0; i < n_inputs; i++) {
        if (signature[i].ndim < 0 || signature[i].ndim > DF_MAX_DIMS)
            return df_error(DF_ERR_ARG, "df_function_export: input %d has rank %d", i, signature[i].ndim);
        spec[i] = df_tensor_make(signature[i].dtype, NULL, signature[i].ndim, signature[i].shape);
    }
    df_graph *g;
    df_status st = df_function_trace_for(f, spec, n_inputs, &g);
    return st == DF_OK ? df_graph_export(g, path, n_meta, meta) : st;
}
