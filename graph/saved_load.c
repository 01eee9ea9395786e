/* saved_load.c — reads a saved-graph file (format: dagflow.h, "saved
 * graphs") back into a compiled graph with its own variables, and runs it.
 * Every field is checked before it is used: a file is data from anywhere,
 * so a bad one is DF_ERR_FORMAT naming the byte and node, never a crash.
 * Nodes are rebuilt with df_node_new, so each op's shape inference checks
 * its inputs and attributes again, and the result must match the shapes the
 * file recorded. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "saved.h"
#include "../ops/registry.h"
#include "../ops/elementwise.h"

#define MAX_DIM ((int64_t)1 << 40)         /* elements along one dimension, and in a tensor */
#define MAX_ATTRS 1024                      /* bytes of the largest attribute struct we accept */

typedef struct saved_meta { char *key; const unsigned char *data; size_t size; } saved_meta;

struct df_saved {
    unsigned char *file;                    /* the whole file: initial values and metadata point into it */
    size_t file_len;
    df_graph *g;
    df_variable **vars;
    const unsigned char **initial;          /* each variable's value in the file */
    int n_vars;
    saved_meta *meta;
    int n_meta;
    int n_inputs, n_outputs;
    df_tensor_spec inputs[DF_SAVED_MAX_INPUTS];
    df_tensor_spec *outputs;
};

/* ------------------------------------------------------------- reading */

typedef struct reader {
    const unsigned char *buf;
    size_t len, pos;                        /* len: where the payload ends */
    const char *label;
    char where[160];                        /* "node 7 ('matmul')" while reading a node */
} reader;

static df_status malformed(const reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static df_status malformed(const reader *r, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return df_error(DF_ERR_FORMAT, "saved graph '%s': %s%s%s (at byte %zu)", r->label, r->where,
                    r->where[0] ? ": " : "", msg, r->pos);
}

static df_status truncated(const reader *r, const char *what)
{
    return malformed(r, "truncated: %s needs more bytes than the %zu left", what, r->len - r->pos);
}

static bool take(reader *r, size_t n, const unsigned char **out)
{
    if (n > r->len - r->pos) return false;
    *out = r->buf + r->pos;
    r->pos += n;
    return true;
}

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static df_status get_u32(reader *r, const char *what, uint32_t *v)
{
    const unsigned char *p;
    *v = 0;
    if (!take(r, 4, &p)) return truncated(r, what);
    *v = (uint32_t)le(p, 4);
    return DF_OK;
}

static df_status get_u64(reader *r, const char *what, uint64_t *v)
{
    const unsigned char *p;
    *v = 0;
    if (!take(r, 8, &p)) return truncated(r, what);
    *v = le(p, 8);
    return DF_OK;
}

/* A count of records of at least min_bytes each: more than the bytes left
 * could hold is a corrupt count (and would be a huge allocation). */
static df_status get_count(reader *r, const char *what, size_t min_bytes, uint32_t max, uint32_t *n)
{
    df_status st = get_u32(r, what, n);
    if (st != DF_OK) return st;
    if (*n > max || (size_t)*n > (r->len - r->pos) / min_bytes)
        return malformed(r, "truncated: %u %s cannot fit in the %zu bytes left", *n, what, r->len - r->pos);
    return DF_OK;
}

/* A name into buf (NUL-terminated, at most DF_SAVED_MAX_NAME bytes). */
static df_status get_name(reader *r, const char *what, char *buf)
{
    uint32_t n;
    const unsigned char *p;
    df_status st = get_u32(r, what, &n);
    if (st != DF_OK) return st;
    if (n > DF_SAVED_MAX_NAME) return malformed(r, "%s of %u bytes (at most %d)", what, n, DF_SAVED_MAX_NAME);
    if (!take(r, n, &p)) return truncated(r, what);
    if (memchr(p, 0, n)) return malformed(r, "%s contains a NUL byte", what);
    memcpy(buf, p, n);
    buf[n] = 0;
    return DF_OK;
}

static df_status get_dtype(reader *r, df_dtype *dtype)
{
    uint32_t v;
    df_status st = get_u32(r, "dtype", &v);
    if (st != DF_OK) return st;
    if (v != DF_F32 && v != DF_I32) return malformed(r, "unknown dtype %u", v);
    *dtype = (df_dtype)v;
    return DF_OK;
}

/* A rank and dims; open (DF_DYNAMIC) dims only where allowed. *numel is the
 * product of the fixed dims, bounded so that it cannot overflow. */
static df_status get_shape(reader *r, bool open_allowed, int *ndim, int64_t *shape, int64_t *numel)
{
    uint32_t rank;
    df_status st = get_u32(r, "rank", &rank);
    if (st != DF_OK) return st;
    if (rank > DF_MAX_DIMS) return malformed(r, "rank %u (at most %d)", rank, DF_MAX_DIMS);
    *ndim = (int)rank;
    *numel = 1;
    memset(shape, 0, DF_MAX_DIMS * sizeof *shape);
    for (int d = 0; d < *ndim; d++) {
        uint64_t v;
        if ((st = get_u64(r, "dimension", &v)) != DF_OK) return st;
        int64_t dim = (int64_t)v;
        if (dim == DF_DYNAMIC && open_allowed) {
            shape[d] = dim;
            continue;
        }
        if (dim < 0 || dim > MAX_DIM)
            return malformed(r, "dimension %d is %lld (0..2^40%s)", d, (long long)dim, open_allowed ? " or -1" : "");
        shape[d] = dim;
        *numel = dim == 0 || *numel == 0 ? 0 : (*numel > MAX_DIM / dim ? MAX_DIM + 1 : *numel * dim);
        if (*numel > MAX_DIM) return malformed(r, "more than 2^40 elements");
    }
    return DF_OK;
}

/* ------------------------------------------------------------ loading */

typedef struct loader {
    reader r;
    df_saved *s;
    size_t max_tensor_bytes, tensor_bytes;
    const df_op_def **ops;
    int n_ops;
    df_node **nodes;
    int n_nodes;
} loader;

static df_status read_header(reader *r, const unsigned char *buf, size_t len)
{
    if (len < 8 || memcmp(buf, DF_SAVED_MAGIC, 8) != 0) return malformed(r, "not a saved graph (no DFGRAPH magic)");
    if (len < DF_SAVED_HEADER + DF_SAVED_TRAILER)
        return malformed(r, "truncated: %zu bytes, a saved graph has at least %d", len, DF_SAVED_HEADER + DF_SAVED_TRAILER);
    uint32_t version = (uint32_t)le(buf + 8, 4), flags = (uint32_t)le(buf + 12, 4);
    uint64_t payload = le(buf + 16, 8);
    if (version > DF_SAVED_VERSION)
        return malformed(r, "format version %u is newer than this library's %u", version, DF_SAVED_VERSION);
    if (version == 0) return malformed(r, "format version 0");
    if (flags != 0) return malformed(r, "unknown flags 0x%x", flags);
    if (payload != len - DF_SAVED_HEADER - DF_SAVED_TRAILER)
        return malformed(r, "%s: the header announces %llu payload bytes, the file has %zu",
                         payload > len - DF_SAVED_HEADER - DF_SAVED_TRAILER ? "truncated" : "trailing bytes",
                         (unsigned long long)payload, len - DF_SAVED_HEADER - DF_SAVED_TRAILER);
    uint64_t stored = le(buf + len - DF_SAVED_TRAILER, 8), actual = XXH64(buf, len - DF_SAVED_TRAILER, 0);
    if (stored != actual)
        return malformed(r, "checksum mismatch (stored %016llx, computed %016llx): the file is corrupt",
                         (unsigned long long)stored, (unsigned long long)actual);
    r->pos = DF_SAVED_HEADER;
    r->len = len - DF_SAVED_TRAILER;
    return DF_OK;
}

static df_status read_ops(loader *l)
{
    reader *r = &l->r;
    uint32_t n;
    df_status st = get_count(r, "ops", 8, 4096, &n);
    if (st != DF_OK) return st;
    l->ops = df_calloc((size_t)n + 1, sizeof *l->ops);
    if (!l->ops) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        char name[DF_SAVED_MAX_NAME + 1];
        uint32_t version, bools;
        if ((st = get_name(r, "op name", name)) != DF_OK || (st = get_u32(r, "op version", &version)) != DF_OK)
            return st;
        const df_op_def *op = df_op_find(name);
        if (!op) return malformed(r, "unknown op '%s' (op table entry %u)", name, i);
        if (version > (uint32_t)df_saved_op_version(op))
            return malformed(r, "op '%s' is version %u, newer than this library's %d", name, version,
                             df_saved_op_version(op));
        if (df_op_attrs_kind_of(op, &bools) == DF_ATTRS_UNSAVED)
            return malformed(r, "op '%s' cannot be loaded (it holds process-local state)", name);
        l->ops[l->n_ops++] = op;
    }
    return DF_OK;
}

static df_status read_variables(loader *l)
{
    reader *r = &l->r;
    df_saved *s = l->s;
    uint32_t n;
    df_status st = get_count(r, "variables", 12, 1u << 24, &n);
    if (st != DF_OK) return st;
    s->vars = df_calloc((size_t)n + 1, sizeof *s->vars);
    s->initial = df_calloc((size_t)n + 1, sizeof *s->initial);
    if (!s->vars || !s->initial) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        snprintf(r->where, sizeof r->where, "variable %u", i);
        char name[DF_SAVED_MAX_NAME + 1];
        df_dtype dtype = DF_F32;
        int ndim;
        int64_t shape[DF_MAX_DIMS], numel;
        const unsigned char *values;
        if ((st = get_name(r, "variable name", name)) != DF_OK || (st = get_dtype(r, &dtype)) != DF_OK ||
            (st = get_shape(r, false, &ndim, shape, &numel)) != DF_OK)
            return st;
        if (!take(r, (size_t)numel * df_dtype_size(dtype), &values)) return truncated(r, "the variable's values");
        df_variable *v = df_variable_new(name, dtype, ndim, shape, df_init_zeros(), NULL);
        if (!v) return malformed(r, "%s", df_last_error());
        memcpy(v->data, values, (size_t)numel * df_dtype_size(dtype));
        s->vars[s->n_vars] = v;
        s->initial[s->n_vars++] = values;
    }
    r->where[0] = 0;
    return DF_OK;
}

/* A fused program's op-table indices back to this library's fusion codes,
 * each operand checked (an input of the node or an earlier instruction). */
static df_status decode_program(loader *l, df_fused_program *p, int n_in)
{
    reader *r = &l->r;
    if (p->n < 1 || p->n > DF_FUSE_MAX) return malformed(r, "fused program of %d instructions (1..%d)", p->n, DF_FUSE_MAX);
    for (int k = 0; k < DF_FUSE_MAX; k++) {
        if (k >= p->n) {
            if (p->ins[k].code || p->ins[k].a || p->ins[k].b) return malformed(r, "instruction %d past the program's end", k);
            continue;
        }
        int index = p->ins[k].code;
        if (index >= l->n_ops || !l->ops[index]->elementwise)
            return malformed(r, "instruction %d: op-table entry %d is not an elementwise op", k, index);
        int code = l->ops[index]->elementwise, arity = df_ew_arity(code);
        int operands[2] = {p->ins[k].a, p->ins[k].b};
        for (int j = 0; j < 2; j++) {
            int o = operands[j];
            bool ok = j >= arity ? o == 0 : (o >= 0 ? o < n_in : -o - 1 < k);
            if (!ok) return malformed(r, "instruction %d: operand %d is %d", k, j, o);
        }
        p->ins[k].code = (uint8_t)code;
    }
    return DF_OK;
}

/* The fused node reads its non-scalar inputs as arrays of its own size. */
static df_status check_fused_inputs(loader *l, df_node *n, int ndim, const int64_t *shape)
{
    bool all_scalar = true;
    for (int i = 0; i < n->n_in; i++) {
        const df_node *x = n->in[i];
        if (x->dtype != DF_F32) return malformed(&l->r, "fused input %d is not f32", i);
        if (x->numel == 1 && !x->dyn) continue;
        all_scalar = false;
        if (!df_node_same_shape(x, n)) return malformed(&l->r, "fused input %d has another shape", i);
    }
    if (all_scalar) {                /* the shape came from the pass: the file's, one element */
        int64_t numel = 1;
        for (int d = 0; d < ndim; d++) numel *= shape[d] < 0 ? 2 : shape[d];
        if (numel != 1) return malformed(&l->r, "fused node of scalars with %lld elements", (long long)numel);
        n->ndim = ndim;
        memcpy(n->shape, shape, sizeof n->shape);
        memcpy(n->alt_shape, shape, sizeof n->shape);
        memcpy(n->traced_shape, shape, sizeof n->shape);
    }
    return DF_OK;
}

/* One node's attributes into attrs (aligned, op->attrs_size bytes), with
 * pointers filled in: a variable, or a constant's value in *value. */
static df_status read_attrs(loader *l, const df_op_def *op, int n_in, df_dtype dtype, int ndim, const int64_t *shape,
                            void *attrs, df_tensor *value)
{
    reader *r = &l->r;
    uint32_t size, bools;
    const unsigned char *bytes;
    df_status st = get_u32(r, "attribute size", &size);
    if (st != DF_OK) return st;
    if (size != op->attrs_size)
        return malformed(r, "%u attribute bytes, this library's op has %zu", size, op->attrs_size);
    if (!take(r, size, &bytes)) return truncated(r, "the attributes");
    memcpy(attrs, bytes, size);
    df_op_attrs_kind kind = df_op_attrs_kind_of(op, &bools);
    for (uint32_t b = 0; b < size && b < 32; b++)
        if ((bools >> b & 1) && bytes[b] > 1) return malformed(r, "attribute byte %u is %u, a bool", b, bytes[b]);
    if (kind == DF_ATTRS_VARIABLE) {
        uint32_t var;
        if ((st = get_u32(r, "variable index", &var)) != DF_OK) return st;
        if (var >= (uint32_t)l->s->n_vars) return malformed(r, "variable %u of %d", var, l->s->n_vars);
        ((df_update_attrs *)attrs)->var = l->s->vars[var];
    } else if (kind == DF_ATTRS_CONSTANT) {
        int64_t numel = 1;
        for (int d = 0; d < ndim; d++) {
            if (shape[d] < 0) return malformed(r, "a constant with an open dimension");
            numel *= shape[d];               /* bounded by get_shape */
        }
        const unsigned char *data;
        if (!take(r, (size_t)numel * df_dtype_size(dtype), &data)) return truncated(r, "the constant's values");
        *value = df_tensor_make(dtype, (void *)data, ndim, shape);
        memcpy(attrs, &(const df_tensor *){value}, sizeof(const df_tensor *));
    } else if (kind == DF_ATTRS_FUSED) {
        if (n_in < 1 || n_in > 2 * DF_FUSE_MAX) return malformed(r, "fused node with %d inputs", n_in);
        return decode_program(l, attrs, n_in);
    }
    return DF_OK;
}

static bool same_shape_as_recorded(const df_node *n, df_dtype dtype, int ndim, const int64_t *shape)
{
    if (n->dtype != dtype || n->ndim != ndim) return false;
    for (int d = 0; d < ndim; d++)
        if (n->traced_shape[d] != shape[d]) return false;
    return true;
}

static df_status read_node(loader *l, int k)
{
    reader *r = &l->r;
    df_graph *g = l->s->g;
    uint32_t op_i, n_in;
    snprintf(r->where, sizeof r->where, "node %d", k);
    df_status st = get_u32(r, "op index", &op_i);
    if (st != DF_OK) return st;
    if (op_i >= (uint32_t)l->n_ops) return malformed(r, "op %u of a table of %d", op_i, l->n_ops);
    const df_op_def *op = l->ops[op_i];
    snprintf(r->where, sizeof r->where, "node %d ('%s')", k, op->name);
    if ((st = get_count(r, "inputs", 4, 1u << 20, &n_in)) != DF_OK) return st;
    bool declared;
    if (!df_op_takes_inputs(op, (int)n_in, &declared))
        return declared ? malformed(r, "%u inputs, a number the op does not take", n_in)
                        : malformed(r, "op '%s' declares no input count and cannot be loaded", op->name);
    df_node **in = df_malloc(((size_t)n_in + 1) * sizeof *in);
    if (!in) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    for (uint32_t i = 0; i < n_in && st == DF_OK; i++) {
        uint32_t x;
        if ((st = get_u32(r, "input index", &x)) == DF_OK && x >= (uint32_t)k)
            st = malformed(r, "input %u is node %u, not an earlier node", i, x);
        if (st == DF_OK) in[i] = l->nodes[x];
    }
    df_dtype dtype = DF_F32;
    int ndim = 0;
    int64_t shape[DF_MAX_DIMS], numel;
    char name[DF_SAVED_MAX_NAME + 1];
    _Alignas(max_align_t) unsigned char attrs[MAX_ATTRS] = {0};
    df_tensor value;
    if (st == DF_OK) st = get_dtype(r, &dtype);
    if (st == DF_OK) st = get_shape(r, true, &ndim, shape, &numel);
    if (st == DF_OK) st = get_name(r, "node name", name);
    if (st == DF_OK && op->attrs_size > MAX_ATTRS) st = malformed(r, "attributes of %zu bytes", op->attrs_size);
    if (st == DF_OK) st = read_attrs(l, op, (int)n_in, dtype, ndim, shape, attrs, &value);
    if (st == DF_OK && (op->flags & DF_OP_INPUT) && g->n_placeholders >= DF_SAVED_MAX_INPUTS)
        st = malformed(r, "more than %d inputs", DF_SAVED_MAX_INPUTS);
    df_node *n = NULL;
    if (st == DF_OK && !(n = df_node_new(g, op, (int)n_in, in, op->attrs_size ? attrs : NULL)))
        st = malformed(r, "rejected by shape inference: %s", g->error);
    df_free(in);
    if (st != DF_OK) return st;
    uint32_t bools;
    if (df_op_attrs_kind_of(op, &bools) == DF_ATTRS_FUSED) st = check_fused_inputs(l, n, ndim, shape);
    if (st != DF_OK) return st;
    if (!same_shape_as_recorded(n, dtype, ndim, shape)) {
        char a[96], b[96];
        return malformed(r, "inconsistent shapes: the file records %s %s, shape inference gives %s %s",
                         df_dtype_name(dtype), df_shape_str(ndim, shape, a, sizeof a), df_dtype_name(n->dtype),
                         df_shape_str(n->ndim, n->traced_shape, b, sizeof b));
    }
    if (name[0]) df_node_set_name(n, name);
    if (!n->dyn && !(n->op->flags & DF_OP_EXTERNAL)) {
        l->tensor_bytes += (size_t)n->numel * df_dtype_size(n->dtype) + n->aux_bytes;
        if (l->tensor_bytes > l->max_tensor_bytes)
            return malformed(r, "the tensors need more than the %zu bytes allowed", l->max_tensor_bytes);
    }
    l->nodes[l->n_nodes++] = n;
    return g->status == DF_OK ? DF_OK : malformed(r, "%s", g->error);
}

static df_status read_graph(loader *l)
{
    reader *r = &l->r;
    df_saved *s = l->s;
    uint32_t n;
    df_status st = get_count(r, "nodes", 24, 1u << 26, &n);
    if (st != DF_OK) return st;
    l->nodes = df_calloc((size_t)n + 1, sizeof *l->nodes);
    if (!l->nodes) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    for (uint32_t k = 0; k < n && st == DF_OK; k++) st = read_node(l, (int)k);
    if (st != DF_OK) return st;
    r->where[0] = 0;
    uint32_t n_out;
    if ((st = get_count(r, "outputs", 4, 1u << 20, &n_out)) != DF_OK) return st;
    for (uint32_t i = 0; i < n_out; i++) {
        uint32_t x;
        if ((st = get_u32(r, "output index", &x)) != DF_OK) return st;
        if (x >= n) return malformed(r, "output %u is node %u of %u", i, x, n);
        if ((st = df_graph_output(s->g, l->nodes[x])) != DF_OK) return st;
    }
    uint32_t pairs;
    if ((st = get_count(r, "shape assumptions", 8, 1u << 26, &pairs)) != DF_OK) return st;
    for (uint32_t i = 0; i < pairs; i++) {
        uint32_t a, b;
        if ((st = get_u32(r, "assumption", &a)) != DF_OK || (st = get_u32(r, "assumption", &b)) != DF_OK) return st;
        if (a >= n || b >= n) return malformed(r, "shape assumption %u names node %u of %u", i, a >= n ? a : b, n);
        if (!df_node_same_shape(l->nodes[a], l->nodes[b]))
            return malformed(r, "shape assumption %u: nodes %u and %u differ in shape", i, a, b);
        df_graph_assume_same_shape(s->g, l->nodes[a], l->nodes[b]);
    }
    return s->g->status == DF_OK ? DF_OK : malformed(r, "%s", s->g->error);
}

static df_status read_metadata(loader *l)
{
    reader *r = &l->r;
    df_saved *s = l->s;
    uint32_t n;
    df_status st = get_count(r, "metadata entries", 12, 1u << 20, &n);
    if (st != DF_OK) return st;
    s->meta = df_calloc((size_t)n + 1, sizeof *s->meta);
    if (!s->meta) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        char key[DF_SAVED_MAX_NAME + 1];
        uint64_t size;
        const unsigned char *data;
        if ((st = get_name(r, "metadata key", key)) != DF_OK || (st = get_u64(r, "metadata size", &size)) != DF_OK)
            return st;
        if (!key[0]) return malformed(r, "metadata %u has an empty key", i);
        for (int k = 0; k < s->n_meta; k++)
            if (strcmp(s->meta[k].key, key) == 0) return malformed(r, "metadata key '%s' appears twice", key);
        if (size > r->len - r->pos || !take(r, (size_t)size, &data)) return truncated(r, "a metadata blob");
        saved_meta *m = &s->meta[s->n_meta];
        if (!(m->key = df_strdup(key))) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
        m->data = data;
        m->size = (size_t)size;
        s->n_meta++;
    }
    return DF_OK;
}

static df_status describe_signature(df_saved *s)
{
    df_graph *g = s->g;
    s->n_inputs = g->n_placeholders;
    s->n_outputs = g->n_outputs;
    s->outputs = df_calloc((size_t)g->n_outputs + 1, sizeof *s->outputs);
    if (!s->outputs) return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    for (int i = 0; i < g->n_placeholders + g->n_outputs; i++) {
        const df_node *n = i < g->n_placeholders ? g->placeholders[i] : g->outputs[i - g->n_placeholders];
        df_tensor_spec *spec = i < g->n_placeholders ? &s->inputs[i] : &s->outputs[i - g->n_placeholders];
        *spec = (df_tensor_spec){.dtype = n->dtype, .ndim = n->ndim};
        memcpy(spec->shape, n->traced_shape, sizeof spec->shape);
    }
    return DF_OK;
}

static df_status parse(loader *l)
{
    df_saved *s = l->s;
    df_status st = read_header(&l->r, s->file, s->file_len);
    uint32_t passes = 0;
    if (st == DF_OK) st = get_u32(&l->r, "passes", &passes);
    if (st == DF_OK && (passes & ~(uint32_t)DF_PASS_ALL)) st = malformed(&l->r, "unknown passes 0x%x", passes);
    if (st == DF_OK) st = read_ops(l);
    if (st == DF_OK) st = read_variables(l);
    if (st == DF_OK && !(s->g = df_graph_new())) st = DF_ERR_NOMEM;
    if (st == DF_OK) st = df_graph_set_passes(s->g, passes);
    if (st == DF_OK) st = read_graph(l);
    if (st == DF_OK) st = read_metadata(l);
    if (st == DF_OK && l->r.pos != l->r.len)
        st = malformed(&l->r, "%zu bytes after the last section", l->r.len - l->r.pos);
    if (st == DF_OK && (st = df_graph_compile(s->g)) != DF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        st = st == DF_ERR_NOMEM ? st : malformed(&l->r, "does not compile: %s", msg);
    }
    if (st == DF_OK) st = describe_signature(s);
    return st;
}

/* Takes ownership of file (df_malloc'd). */
static df_status load_owned(unsigned char *file, size_t len, const char *label, size_t max_tensor_bytes,
                            df_saved **out)
{
    *out = NULL;
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    df_free(file);
    return df_error(DF_ERR_UNSUPPORTED, "saved graph '%s': saved graphs are read on little-endian hosts only", label);
#endif
    df_saved *s = df_calloc(1, sizeof *s);
    if (!s) {
        df_free(file);
        return df_error(DF_ERR_NOMEM, "saved graph: out of memory");
    }
    s->file = file;
    s->file_len = len;
    loader l = {.r = {.buf = file, .len = len, .label = label}, .s = s, .max_tensor_bytes = max_tensor_bytes};
    df_status st = parse(&l);
    df_free(l.ops);
    df_free(l.nodes);
    if (st != DF_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        df_saved_free(s);
        return df_error(st, "%s", msg);
    }
    *out = s;
    return DF_OK;
}

df_status df_saved_load_buffer(const void *data, size_t len, const char *label, size_t max_tensor_bytes,
                               df_saved **out)
{
    if (!out) return df_error(DF_ERR_ARG, "df_saved_load: null result pointer");
    *out = NULL;
    if (!data && len) return df_error(DF_ERR_ARG, "df_saved_load_memory: null data");
    unsigned char *copy = df_malloc(len ? len : 1);
    if (!copy) return df_error(DF_ERR_NOMEM, "saved graph: out of memory (%zu bytes)", len);
    if (len) memcpy(copy, data, len);
    return load_owned(copy, len, label, max_tensor_bytes, out);
}

df_status df_saved_load_memory(const void *data, size_t len, df_saved **out)
{
    return df_saved_load_buffer(data, len, "(memory)", SIZE_MAX, out);
}

df_status df_saved_load(const char *path, df_saved **out)
{
    if (!out) return df_error(DF_ERR_ARG, "df_saved_load: null result pointer");
    *out = NULL;
    if (!path) return df_error(DF_ERR_ARG, "df_saved_load: null path");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return df_error(DF_ERR_IO, "saved graph '%s': cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int err = errno;
        close(fd);
        return df_error(DF_ERR_IO, "saved graph '%s': not a regular file%s%s", path, err ? ": " : "",
                        err ? strerror(err) : "");
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = df_malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return df_error(DF_ERR_NOMEM, "saved graph '%s': out of memory (%zu bytes)", path, len);
    }
    for (size_t done = 0; done < len;) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? errno : 0;
            close(fd);
            df_free(buf);
            return df_error(DF_ERR_IO, "saved graph '%s': read failed: %s", path, err ? strerror(err) : "file shrank");
        }
        done += (size_t)n;
    }
    close(fd);
    return load_owned(buf, len, path, SIZE_MAX, out);
}

void df_saved_free(df_saved *s)
{
    if (!s) return;
    df_graph_free(s->g);
    for (int i = 0; i < s->n_vars; i++) df_variable_free(s->vars[i]);
    for (int i = 0; i < s->n_meta; i++) df_free(s->meta[i].key);
    df_free(s->vars);
    df_free(s->initial);
    df_free(s->meta);
    df_free(s->outputs);
    df_free(s->file);
    df_free(s);
}

/* ------------------------------------------------------------- using */

df_status df_saved_signature(const df_saved *s, int *n_inputs, const df_tensor_spec **inputs, int *n_outputs,
                             const df_tensor_spec **outputs)
{
    if (!s) return df_error(DF_ERR_ARG, "df_saved_signature: null saved graph");
    if (n_inputs) *n_inputs = s->n_inputs;
    if (inputs) *inputs = s->inputs;
    if (n_outputs) *n_outputs = s->n_outputs;
    if (outputs) *outputs = s->outputs;
    return DF_OK;
}

const char *df_saved_input_name(const df_saved *s, int i)
{
    return s && i >= 0 && i < s->n_inputs ? df_node_name(s->g->placeholders[i]) : "";
}

df_status df_saved_run(df_saved *s, const df_tensor *inputs, int n_inputs, df_tensor *outputs, int n_outputs)
{
    if (!s) return df_error(DF_ERR_ARG, "df_saved_run: null saved graph");
    return df_graph_run(s->g, inputs, n_inputs, outputs, n_outputs);
}

df_status df_saved_reset(df_saved *s)
{
    if (!s) return df_error(DF_ERR_ARG, "df_saved_reset: null saved graph");
    for (int i = 0; i < s->n_vars; i++)
        memcpy(s->vars[i]->data, s->initial[i], (size_t)s->vars[i]->numel * df_dtype_size(s->vars[i]->dtype));
    return DF_OK;
}

df_status df_saved_metadata(const df_saved *s, const char *key, const void **data, size_t *size)
{
    if (!s || !key || !data || !size) return df_error(DF_ERR_ARG, "df_saved_metadata: null argument");
    for (int i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0) {
            *data = s->meta[i].data;
            *size = s->meta[i].size;
            return DF_OK;
        }
    *data = NULL;
    *size = 0;
    return df_error(DF_ERR_ARG, "saved graph: no metadata '%s'", key);
}

int df_saved_variable_count(const df_saved *s) { return s ? s->n_vars : 0; }

df_variable *df_saved_variable(const df_saved *s, int i)
{
    return s && i >= 0 && i < s->n_vars ? s->vars[i] : NULL;
}

df_variable *df_saved_find_variable(const df_saved *s, const char *name)
{
    for (int i = 0; s && name && i < s->n_vars; i++)
        if (strcmp(s->vars[i]->name, name) == 0) return s->vars[i];
    return NULL;
}

df_graph *df_saved_graph(const df_saved *s) { return s ? s->g : NULL; }
