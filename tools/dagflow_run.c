/* dagflow-run — loads any saved graph (dagflow.h, "saved graphs"), prints
 * its signature, and runs it: once on zeros or on inputs read from raw
 * files, or, for a char model, samples text from it. Uses only dagflow.h.
 *
 *   dagflow-run FILE                          signature, variables, metadata (a
 *                                             char-gpt step's context and keep too)
 *   dagflow-run FILE --run [--input PATH]... [--dim N] [--steps N]
 *                                             run N times (1) on zeros (open
 *                                             dims N, default 1) or on raw
 *                                             little-endian inputs, print outputs
 *   dagflow-run FILE --sample [--start TEXT] [--length N] [--temperature T] [--top-k K] [--seed N]
 *                                             text from a char model */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "char_sampler.h"

typedef struct options {
    const char *path, *inputs[16];
    int n_inputs, steps, length, top_k;
    int64_t dim;
    bool run, sample;
    const char *start;
    float temperature;
    uint64_t seed;
} options;

static void usage(FILE *out)
{
    fprintf(out, "usage: dagflow-run FILE [--run [--input PATH]... [--dim N] [--steps N]]\n"
                 "                        [--sample [--start TEXT] [--length N] [--temperature T] [--top-k K]\n"
                 "                                  [--seed N]]\n");
}

static bool parse_number(const char *s, double lo, double hi, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return s[0] && !*end && !errno && *v >= lo && *v <= hi;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.steps = 1, .dim = 1, .start = "ROMEO: ", .length = 500, .temperature = 1.0f, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        bool takes = strcmp(a, "--input") == 0 || strcmp(a, "--dim") == 0 || strcmp(a, "--steps") == 0 ||
                     strcmp(a, "--start") == 0 || strcmp(a, "--length") == 0 || strcmp(a, "--temperature") == 0 || strcmp(a, "--top-k") == 0 ||
                     strcmp(a, "--seed") == 0;
        if (takes && !v) {
            fprintf(stderr, "dagflow-run: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--run")) o->run = true;
        else if (!strcmp(a, "--sample")) o->sample = true;
        else if (!strcmp(a, "--input") && o->n_inputs < 16) o->inputs[o->n_inputs++] = argv[++i];
        else if (!strcmp(a, "--start")) o->start = argv[++i];
        else if (!strcmp(a, "--dim") && parse_number(v, 0, 1e9, &x)) o->dim = (int64_t)x, i++;
        else if (!strcmp(a, "--steps") && parse_number(v, 1, 1e9, &x)) o->steps = (int)x, i++;
        else if (!strcmp(a, "--length") && parse_number(v, 0, 1e9, &x)) o->length = (int)x, i++;
        else if (!strcmp(a, "--temperature") && parse_number(v, 0, 100, &x)) o->temperature = (float)x, i++;
        else if (!strcmp(a, "--top-k") && parse_number(v, 0, 1e6, &x)) o->top_k = (int)x, i++;
        else if (!strcmp(a, "--seed") && parse_number(v, 0, 1.8e19, &x)) o->seed = (uint64_t)x, i++;
        else if (a[0] != '-' && !o->path) o->path = a;
        else {
            fprintf(stderr, "dagflow-run: bad argument '%s'%s%s\n", a, takes ? " " : "", takes ? v : "");
            usage(stderr);
            return 2;
        }
    }
    if (!o->path) {
        usage(stderr);
        return 2;
    }
    return 0;
}

static const char *spec_str(const df_tensor_spec *t, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "%s (", t->dtype == DF_I32 ? "i32" : "f32");
    for (int d = 0; d < t->ndim && at < cap; d++)
        at += t->shape[d] == DF_DYNAMIC ? (size_t)snprintf(buf + at, cap - at, d ? ",None" : "None")
                                        : (size_t)snprintf(buf + at, cap - at, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    if (at < cap) snprintf(buf + at, cap - at, ")");
    return buf;
}

/* "  label: TEXTsuffix" for a text metadata entry, nothing when absent. */
static void print_text_metadata(const df_saved *s, const char *key, const char *label, const char *suffix)
{
    const void *data;
    size_t size;
    if (df_saved_metadata(s, key, &data, &size) == DF_OK)
        printf("  %s: %.*s%s\n", label, (int)(size < 4096 ? size : 4096), (const char *)data, suffix);
}

static void print_signature(const df_saved *s, const char *path)
{
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    char buf[128];
    df_saved_signature(s, &n_in, &in, &n_out, &out);
    printf("%s\n", path);
    for (int i = 0; i < n_in; i++) printf("  input %d '%s': %s\n", i, df_saved_input_name(s, i), spec_str(&in[i], buf, sizeof buf));
    for (int i = 0; i < n_out; i++) printf("  output %d: %s\n", i, spec_str(&out[i], buf, sizeof buf));
    int64_t elements = 0;
    for (int i = 0; i < df_saved_variable_count(s); i++) elements += df_variable_numel(df_saved_variable(s, i));
    printf("  variables: %d (%lld elements)\n", df_saved_variable_count(s), (long long)elements);
    df_graph_stats stats;
    if (df_graph_get_stats(df_saved_graph(s), &stats) == DF_OK) printf("  nodes: %d scheduled\n", stats.nodes);
    print_text_metadata(s, "model", "model", "");
    print_text_metadata(s, DS_CONTEXT_KEY, "context", " tokens");
    print_text_metadata(s, DS_KEEP_KEY, "keep", " tokens (run again when the context is full)");
}

/* Zeros, or the raw bytes of a file of exactly the input's size. */
static df_status make_input(const df_tensor_spec *spec, const char *file, int64_t dim, df_tensor *t, void **buf)
{
    int64_t shape[DF_MAX_DIMS], numel = 1;
    for (int d = 0; d < spec->ndim; d++) numel *= shape[d] = spec->shape[d] == DF_DYNAMIC ? dim : spec->shape[d];
    size_t bytes = (size_t)numel * 4;
    *buf = calloc(bytes ? bytes : 1, 1);
    if (!*buf) return df_error(DF_ERR_NOMEM, "out of memory");
    *t = df_tensor_make(spec->dtype, *buf, spec->ndim, shape);
    if (!file) return DF_OK;
    FILE *f = fopen(file, "rb");
    if (!f) return df_error(DF_ERR_IO, "cannot open '%s': %s", file, strerror(errno));
    size_t got = fread(*buf, 1, bytes, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != bytes || extra != EOF)
        return df_error(DF_ERR_ARG, "'%s' must hold exactly %zu bytes for this input", file, bytes);
    return DF_OK;
}

static void print_output(int i, const df_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    double sum = 0;
    printf("output %d:", i);
    for (int64_t k = 0; k < n; k++) {
        double v = t->dtype == DF_I32 ? ((const int32_t *)t->data)[k] : ((const float *)t->data)[k];
        sum += v;
        if (k < 8) printf(" %.6g", v);
    }
    printf("%s (%lld elements, sum %.9g)\n", n > 8 ? " ..." : "", (long long)n, sum);
}

static df_status run(df_saved *s, const options *o)
{
    int n_in, n_out;
    const df_tensor_spec *in, *out;
    df_saved_signature(s, &n_in, &in, &n_out, &out);
    if (o->n_inputs && o->n_inputs != n_in)
        return df_error(DF_ERR_ARG, "%d --input files for %d inputs", o->n_inputs, n_in);
    df_tensor inputs[16], *outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    void *bufs[16] = {0};
    df_status st = outputs ? DF_OK : df_error(DF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_in && st == DF_OK; i++)
        st = make_input(&in[i], o->n_inputs ? o->inputs[i] : NULL, o->dim, &inputs[i], &bufs[i]);
    for (int k = 0; k < o->steps && st == DF_OK; k++) st = df_saved_run(s, inputs, n_in, outputs, n_out);
    for (int i = 0; i < n_out && st == DF_OK; i++) print_output(i, &outputs[i]);
    for (int i = 0; i < n_in; i++) free(bufs[i]);
    free(outputs);
    return st;
}

/* The start text goes out with the first generated character: only once
 * the sampler has accepted it (a character outside the vocabulary is an
 * error with nothing printed). */
typedef struct echo { const char *start; bool started; } echo;

static void emit(const char *utf8, int len, void *ctx)
{
    echo *e = ctx;
    if (!e->started) fputs(e->start, stdout);
    e->started = true;
    fwrite(utf8, 1, (size_t)len, stdout);
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    df_saved *s;
    df_status st = df_saved_load(o.path, &s);
    if (st != DF_OK) {
        fprintf(stderr, "dagflow-run: %s\n", df_last_error());
        return 1;
    }
    int V;
    if (o.sample) {
        st = ds_check_char_model(s, &V);
        echo e = {.start = o.start};
        if (st == DF_OK) st = ds_sample_chars_top_k(s, o.start, o.length, o.temperature, o.top_k, o.seed, emit, &e);
        if (st == DF_OK) printf("%s\n", e.started ? "" : o.start);
    } else {
        print_signature(s, o.path);
        if (!o.run && ds_check_char_model(s, &V) == DF_OK)
            printf("  a char model (vocabulary %d): --sample generates text\n", V);
        if (o.run) st = run(s, &o);
    }
    if (st == DF_OK && (fflush(stdout) != 0 || ferror(stdout))) st = df_error(DF_ERR_IO, "cannot write the output");
    if (st != DF_OK) fprintf(stderr, "dagflow-run: %s\n", df_last_error());
    df_saved_free(s);
    return st == DF_OK ? 0 : 1;
}
