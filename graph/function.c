/* function.c — tf.function for C: one traced, compiled graph per input
 * signature, found by the XXH3 hash of the signature. */
#include <string.h>
#include <xxhash.h>
#include "graph.h"
#include "../ops/registry.h"

typedef struct trace {
    uint64_t key;
    int n_inputs;
    df_tensor sig[16];            /* dtypes + shapes (data unused) */
    df_graph *graph;
} trace;

struct df_function {
    char *name;
    df_build_fn build;
    void *user;
    trace *traces;
    int n_traces, cap_traces;
    int trace_count;
    int retrace_warning;          /* warn when trace_count passes this (0 = never) */
    bool warned;
    df_graph *last;
    int n_signature;              /* -1: no signature (one trace per input shape) */
    int plan_cache;               /* for each trace's graph; 0 = the graph's default */
    unsigned passes;              /* DF_PASS_* for each trace's graph */
    bool has_precision;           /* else calls run at the calling thread's */
    df_precision precision;
    df_tensor_spec signature[16];
};

#define MAX_FN_INPUTS 16

uint64_t df_signature_hash(const df_tensor *inputs, int n_inputs)
{
    /* Hash a packed (dtype, ndim, dims) record per input, not raw structs, so
     * padding and data pointers never reach the key. */
    int64_t rec[MAX_FN_INPUTS * (DF_MAX_DIMS + 2)];
    int len = 0;
    for (int i = 0; i < n_inputs && i < MAX_FN_INPUTS; i++) {
        rec[len++] = inputs[i].dtype;
        rec[len++] = inputs[i].ndim;
        for (int d = 0; d < inputs[i].ndim && d < DF_MAX_DIMS; d++) rec[len++] = inputs[i].shape[d];
    }
    return XXH3_64bits(rec, (size_t)len * sizeof *rec);
}

df_function *df_function_new(const char *name, df_build_fn build, void *user)
{
    if (!build) {
        df_error(DF_ERR_ARG, "df_function_new: null builder");
        return NULL;
    }
    df_function *f = df_calloc(1, sizeof *f);
    if (f) f->name = df_strdup(name ? name : "function");
    if (!f || !f->name) {
        if (f) df_free(f);
        df_error(DF_ERR_NOMEM, "df_function_new: out of memory");
        return NULL;
    }
    f->build = build;
    f->user = user;
    f->retrace_warning = 5;
    f->n_signature = -1;
    f->passes = DF_PASS_ALL;
    return f;
}

df_function *df_function_new_signature(const char *name, df_build_fn build, void *user, int n_inputs,
                                       const df_tensor_spec *signature)
{
    if (n_inputs < 0 || n_inputs > MAX_FN_INPUTS || (n_inputs > 0 && !signature)) {
        df_error(DF_ERR_ARG, "df_function_new_signature: %d inputs (0..%d) or null signature", n_inputs,
                 MAX_FN_INPUTS);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++) {
        const df_tensor_spec *s = &signature[i];
        bool ok = (s->dtype == DF_F32 || s->dtype == DF_I32) && s->ndim >= 0 && s->ndim <= DF_MAX_DIMS;
        for (int d = 0; ok && d < s->ndim; d++) ok = s->shape[d] >= 0 || s->shape[d] == DF_DYNAMIC;
        if (!ok) {
            char buf[96];
            df_error(DF_ERR_ARG,
                     "df_function_new_signature: input %d: dtype %d, rank %d, shape %s (dims >= 0 or DF_DYNAMIC)",
                     i, (int)s->dtype, s->ndim, df_shape_str(s->ndim < 0 || s->ndim > DF_MAX_DIMS ? 0 : s->ndim,
                                                             s->shape, buf, sizeof buf));
            return NULL;
        }
    }
    df_function *f = df_function_new(name, build, user);
    if (!f) return NULL;
    f->n_signature = n_inputs;
    for (int i = 0; i < n_inputs; i++) f->signature[i] = signature[i];
    return f;
}

void df_function_free(df_function *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_traces; i++) df_graph_free(f->traces[i].graph);
    df_free(f->traces);
    df_free(f->name);
    df_free(f);
}

int df_function_trace_count(const df_function *f) { return f ? f->trace_count : 0; }

df_status df_function_set_plan_cache(df_function *f, int max_plans)
{
    if (!f) return df_error(DF_ERR_ARG, "df_function_set_plan_cache: null function");
    if (max_plans < 1) return df_error(DF_ERR_ARG, "df_function_set_plan_cache: %d plans (at least 1)", max_plans);
    if (f->n_traces > 0) return df_error(DF_ERR_STATE, "df_function_set_plan_cache: function '%s' has already run", f->name);
    f->plan_cache = max_plans;
    return DF_OK;
}

df_status df_function_set_passes(df_function *f, unsigned passes)
{
    if (!f) return df_error(DF_ERR_ARG, "df_function_set_passes: null function");
    if (passes & ~(unsigned)DF_PASS_ALL)
        return df_error(DF_ERR_ARG, "function '%s': passes 0x%x has bits outside DF_PASS_ALL (0x%x)", f->name, passes,
                        (unsigned)DF_PASS_ALL);
    if (f->n_traces > 0)
        return df_error(DF_ERR_STATE, "df_function_set_passes: function '%s' has already been traced", f->name);
    f->passes = passes;
    return DF_OK;
}

void df_function_set_retrace_warning(df_function *f, int max_traces)
{
    if (f) f->retrace_warning = max_traces > 0 ? max_traces : 0;
}

/* As TensorFlow warns about excessive retracing: each new signature costs a
 * trace and a compile, and a loop over varying shapes pays it every call. */
static void maybe_warn_retracing(df_function *f)
{
    if (f->warned || !f->retrace_warning || f->trace_count <= f->retrace_warning) return;
    f->warned = true;
    fprintf(stderr,
            "dagflow: warning: function '%s' has been traced %d times, once per distinct input signature "
            "(dtypes and shapes). Calling it with ever-new shapes retraces and recompiles each time; "
            "keep shapes fixed (pad or batch inputs) or raise the limit with df_function_set_retrace_warning.\n",
            f->name, f->trace_count);
}
df_graph *df_function_last_graph(const df_function *f) { return f ? f->last : NULL; }

static bool same_signature(const trace *t, const df_tensor *inputs, int n)
{
    if (t->n_inputs != n) return false;
    for (int i = 0; i < n; i++)
        if (t->sig[i].dtype != inputs[i].dtype ||
            !df_shape_equal(t->sig[i].ndim, t->sig[i].shape, inputs[i].ndim, inputs[i].shape))
            return false;
    return true;
}

/* Runs the builder on fresh placeholders and compiles the result. */
static df_status trace_new(df_function *f, const df_tensor *inputs, int n, uint64_t key, trace **out)
{
    if (f->n_traces == f->cap_traces) {
        int cap = f->cap_traces ? 2 * f->cap_traces : 4;
        trace *grown = df_realloc(f->traces, (size_t)cap * sizeof *grown);
        if (!grown) return df_error(DF_ERR_NOMEM, "function '%s': out of memory", f->name);
        f->traces = grown;
        f->cap_traces = cap;
    }
    df_graph *g = df_graph_new();
    if (!g) return DF_ERR_NOMEM;
    df_node *ph[MAX_FN_INPUTS] = {0};      /* past n: NULL, which ops refuse, for a builder reading more inputs */
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "input%d", i);
        ph[i] = df_placeholder(g, inputs[i].dtype, inputs[i].ndim, inputs[i].shape, name);
    }
    f->trace_count++;
    df_status st = g->status == DF_OK ? df_graph_set_passes(g, f->passes) : g->status;
    if (st == DF_OK) st = f->build(g, ph, f->user);
    if (st == DF_OK && g->status != DF_OK) st = g->status;
    if (st == DF_OK && f->plan_cache) st = df_graph_set_plan_cache(g, f->plan_cache);
    if (st == DF_OK) st = df_graph_compile(g);
    if (st != DF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", g->status != DF_OK ? g->error : df_last_error());
        df_graph_free(g);
        return df_error(st, "function '%s' (trace %d): %s", f->name, f->trace_count, msg);
    }
    trace *t = &f->traces[f->n_traces++];
    *t = (trace){.key = key, .n_inputs = n, .graph = g};
    for (int i = 0; i < n; i++) t->sig[i] = df_tensor_make(inputs[i].dtype, NULL, inputs[i].ndim, inputs[i].shape);
    *out = t;
    return DF_OK;
}

/* Runs a trace's graph; an error message starts with the function's name,
 * as a trace error does. */
static df_status run_named(const df_function *f, df_graph *g, const df_tensor *inputs, int n_inputs,
                           df_tensor *outputs, int n_outputs)
{
    const df_precision thread_precision = df_get_precision();
    if (f->has_precision) df_set_precision(f->precision);
    df_status st = df_graph_run(g, inputs, n_inputs, outputs, n_outputs);
    if (f->has_precision) df_set_precision(thread_precision);
    if (st != DF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", df_last_error());
        return df_error(st, "function '%s': %s", f->name, msg);
    }
    return DF_OK;
}

/* With a signature there is one trace, made at the signature's shapes
 * (DF_DYNAMIC dims open) on the first call; df_graph_run checks each call's
 * inputs against it. */
static df_status call_with_signature(df_function *f, const df_tensor *inputs, int n_inputs,
                                     df_tensor *outputs, int n_outputs)
{
    if (n_inputs != f->n_signature)
        return df_error(DF_ERR_ARG, "function '%s': called with %d inputs, its signature has %d", f->name, n_inputs,
                        f->n_signature);
    if (f->n_traces == 0) {
        df_tensor spec[MAX_FN_INPUTS];
        for (int i = 0; i < n_inputs; i++)
            spec[i] = df_tensor_make(f->signature[i].dtype, NULL, f->signature[i].ndim, f->signature[i].shape);
        trace *t;
        df_status st = trace_new(f, spec, n_inputs, 0, &t);
        if (st != DF_OK) return st;
    }
    f->last = f->traces[0].graph;
    return run_named(f, f->last, inputs, n_inputs, outputs, n_outputs);
}

df_status df_function_call(df_function *f, const df_tensor *inputs, int n_inputs,
                           df_tensor *outputs, int n_outputs)
{
    if (!f) return df_error(DF_ERR_ARG, "df_function_call: null function");
    if (n_inputs < 0 || n_inputs > MAX_FN_INPUTS)
        return df_error(DF_ERR_ARG, "function '%s': %d inputs (at most %d)", f->name, n_inputs, MAX_FN_INPUTS);
    if (n_inputs > 0 && !inputs) return df_error(DF_ERR_ARG, "function '%s': null inputs", f->name);
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i].ndim < 0 || inputs[i].ndim > DF_MAX_DIMS)
            return df_error(DF_ERR_SHAPE, "function '%s': input %d has rank %d", f->name, i, inputs[i].ndim);
    if (f->n_signature >= 0) return call_with_signature(f, inputs, n_inputs, outputs, n_outputs);
    uint64_t key = df_signature_hash(inputs, n_inputs);
    trace *t = NULL;
    for (int i = 0; i < f->n_traces && !t; i++)
        if (f->traces[i].key == key && same_signature(&f->traces[i], inputs, n_inputs)) t = &f->traces[i];
    if (!t) {
        df_status st = trace_new(f, inputs, n_inputs, key, &t);
        if (st != DF_OK) return st;
        maybe_warn_retracing(f);
    }
    f->last = t->graph;
    return run_named(f, t->graph, inputs, n_inputs, outputs, n_outputs);
}

df_status df_function_trace_for(df_function *f, const df_tensor *signature, int n_inputs, df_graph **out)
{
    *out = NULL;
    if (n_inputs < 0 || n_inputs > MAX_FN_INPUTS || (n_inputs > 0 && !signature))
        return df_error(DF_ERR_ARG, "function '%s': %d inputs (at most %d)", f->name, n_inputs, MAX_FN_INPUTS);
    if (f->n_signature >= 0) {                   /* its one trace, for exactly its signature */
        bool same = n_inputs == f->n_signature;
        for (int i = 0; same && i < n_inputs; i++)
            same = signature[i].dtype == f->signature[i].dtype &&
                   df_shape_equal(signature[i].ndim, signature[i].shape, f->signature[i].ndim, f->signature[i].shape);
        if (!same) return df_error(DF_ERR_ARG, "function '%s': not its signature", f->name);
        if (f->n_traces == 0) {
            trace *t;
            df_status st = trace_new(f, signature, n_inputs, 0, &t);
            if (st != DF_OK) return st;
        }
        *out = f->traces[0].graph;
        return DF_OK;
    }
    uint64_t key = df_signature_hash(signature, n_inputs);
    for (int i = 0; i < f->n_traces; i++)
        if (f->traces[i].key == key && same_signature(&f->traces[i], signature, n_inputs)) {
            *out = f->traces[i].graph;
            return DF_OK;
        }
    trace *t;
    df_status st = trace_new(f, signature, n_inputs, key, &t);
    if (st == DF_OK) *out = t->graph;
    return st;
}

df_status df_function_set_precision(df_function *f, df_precision p)
{
    if (!f) return df_error(DF_ERR_ARG, "df_function_set_precision: null function");
    df_status st = df_precision_check(p);
    if (st != DF_OK) return st;
    f->has_precision = true;
    f->precision = p;
    return DF_OK;
}
