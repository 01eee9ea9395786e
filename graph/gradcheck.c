/* gradcheck.c — loss L = sum(y * R) for a fixed random R; the analytic
 * gradient comes from df_gradients with seed R, the numeric one from
 * (L(x + eps) - L(x - eps)) / 2eps, accumulated in double on the host. */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include "gradcheck.h"

#define GC_EPS 1e-2f

typedef struct gc_state {
    df_graph *g;
    int n_in, n_float;
    df_tensor in[4];
    float *in_data[4];
    int float_index[4];       /* which inputs are f32 */
    const float *weights;     /* R, y's shape */
    int64_t y_numel;
} gc_state;

static void fill_input(const df_gradcheck_input *spec, void *data, int64_t numel, df_rng *rng)
{
    for (int64_t i = 0; i < numel; i++) {
        if (spec->dtype == DF_I32) {
            ((int32_t *)data)[i] = (int32_t)df_rng_below(rng, (uint32_t)(spec->hi > 1 ? spec->hi : 1));
            continue;
        }
        float v;
        do v = spec->lo + (spec->hi - spec->lo) * df_rng_uniform(rng);
        while (spec->lo < 0 && spec->hi > 0 && fabsf(v) < 0.05f);   /* keep kinks out of reach of eps */
        ((float *)data)[i] = v;
    }
}

static df_status loss_at(gc_state *s, double *loss)
{
    df_tensor y;
    df_status st = df_graph_run(s->g, s->in, s->n_in, &y, 1);
    if (st != DF_OK) return st;
    double acc = 0;
    for (int64_t i = 0; i < s->y_numel; i++) acc += (double)((float *)y.data)[i] * s->weights[i];
    *loss = acc;
    return DF_OK;
}

/* An entry passes only when both values are finite and within tolerance;
 * written as "within" rather than "not beyond" so that NaN fails. */
static bool entry_ok(double analytic, double numeric, double atol, double rtol)
{
    double err = fabs(numeric - analytic), scale = fmax(fabs(numeric), fabs(analytic));
    return isfinite(analytic) && isfinite(numeric) && err <= atol + rtol * scale;
}

/* How bad an entry is for picking the one to report: a non-finite value is
 * worse than any finite error. */
static double entry_badness(double analytic, double numeric)
{
    if (!isfinite(analytic) || !isfinite(numeric)) return INFINITY;
    return fabs(numeric - analytic);
}

static df_status compare_input(gc_state *s, const df_gradcheck_case *c, int k, const float *analytic,
                               df_gradcheck_result *out)
{
    int i = s->float_index[k];
    float *x = s->in_data[i];
    int64_t numel = df_tensor_numel(&s->in[i]);
    double atol = c->atol > 0 ? c->atol : DF_GRADCHECK_ATOL, rtol = c->rtol > 0 ? c->rtol : DF_GRADCHECK_RTOL;
    double largest_numeric = 0;
    for (int64_t j = 0; j < numel; j++) {
        float saved = x[j];
        double plus, minus;
        df_status st;
        x[j] = saved + GC_EPS;
        if ((st = loss_at(s, &plus)) != DF_OK) return st;
        x[j] = saved - GC_EPS;
        if ((st = loss_at(s, &minus)) != DF_OK) return st;
        x[j] = saved;
        double numeric = (plus - minus) / (2.0 * GC_EPS), a = analytic[j];
        out->checked++;
        if (!isfinite(a) || !isfinite(numeric)) out->nonfinite++;
        if (!entry_ok(a, numeric, atol, rtol)) out->failed++;
        largest_numeric = fmax(largest_numeric, isfinite(numeric) ? fabs(numeric) : INFINITY);   /* NaN: large */
        double bad = entry_badness(a, numeric);
        if (bad > out->max_abs_err) {
            out->max_abs_err = bad;
            out->worst_input = i;
            out->worst_index = j;
            out->worst_analytic = a;
            out->worst_numeric = numeric;
        }
    }
    if (!(largest_numeric > atol)) out->inputs_without_gradient++;
    return DF_OK;
}

static df_status build_case(gc_state *s, const df_gradcheck_case *c, df_rng *rng, df_node ***grads_out)
{
    df_graph *g = s->g;
    df_node *ph[4], *xs[4];
    for (int i = 0; i < c->n_inputs; i++) {
        const df_gradcheck_input *spec = &c->inputs[i];
        ph[i] = df_placeholder(g, spec->dtype, spec->ndim, spec->shape, NULL);
        int64_t numel = df_shape_numel(spec->ndim, spec->shape);
        s->in_data[i] = df_malloc((size_t)(numel ? numel : 1) * 4);
        if (!s->in_data[i]) return df_graph_fail(g, DF_ERR_NOMEM, "gradcheck: out of memory");
        fill_input(spec, s->in_data[i], numel, rng);
        s->in[i] = df_tensor_make(spec->dtype, s->in_data[i], spec->ndim, spec->shape);
        if (spec->dtype == DF_F32) {
            s->float_index[s->n_float] = i;
            xs[s->n_float++] = ph[i];
        }
    }
    s->n_in = c->n_inputs;
    df_node *y = c->build(g, ph);
    if (!y) return g->status ? g->status : df_graph_fail(g, DF_ERR_STATE, "gradcheck: build returned NULL");
    s->y_numel = y->numel;
    float *w = df_malloc((size_t)(y->numel ? y->numel : 1) * sizeof *w);
    if (!w) return df_graph_fail(g, DF_ERR_NOMEM, "gradcheck: out of memory");
    for (int64_t i = 0; i < y->numel; i++) w[i] = 2.0f * df_rng_uniform(rng) - 1.0f;
    df_tensor wt = df_tensor_make(DF_F32, w, y->ndim, y->shape);
    df_node *seed = df_constant(g, &wt);
    s->weights = seed ? seed->data : NULL;        /* constants live in graph memory */
    df_free(w);
    df_node **grads = df_graph_alloc(g, 4 * sizeof *grads);
    if (!seed || !grads) return g->status;
    df_status st = df_gradients(g, y, seed, s->n_float, xs, grads);
    if (st != DF_OK) return st;
    df_graph_output(g, y);
    for (int k = 0; k < s->n_float; k++) df_graph_output(g, grads[k]);
    *grads_out = grads;
    return g->status;
}

static bool case_is_valid(const df_gradcheck_case *c)
{
    return c && c->build && c->n_inputs >= 1 && c->n_inputs <= 4;
}

df_status df_gradcheck_case_graph(const df_gradcheck_case *c, df_graph **out)
{
    if (!out || !case_is_valid(c)) return df_error(DF_ERR_ARG, "gradcheck: bad case");
    *out = NULL;
    gc_state s = {.g = df_graph_new()};
    if (!s.g) return DF_ERR_NOMEM;
    df_rng rng;
    df_rng_seed(&rng, 0);
    df_node **grads = NULL;
    df_status st = build_case(&s, c, &rng, &grads);
    for (int i = 0; i < c->n_inputs; i++) df_free(s.in_data[i]);
    if (st != DF_OK) {
        if (s.g->status != DF_OK) st = df_error(st, "gradcheck '%s': %s", c->desc, s.g->error);
        df_graph_free(s.g);
        return st;
    }
    *out = s.g;
    return DF_OK;
}

df_status df_gradcheck_case_run(const df_gradcheck_case *c, uint64_t seed, df_gradcheck_result *out)
{
    if (!out || !case_is_valid(c)) return df_error(DF_ERR_ARG, "gradcheck: bad case");
    *out = (df_gradcheck_result){0};
    gc_state s = {.g = df_graph_new()};
    if (!s.g) return DF_ERR_NOMEM;
    df_rng rng;
    df_rng_seed(&rng, seed);
    df_node **grads = NULL;
    float *analytic[4] = {0};
    df_status st = build_case(&s, c, &rng, &grads);
    df_tensor outs[5];
    if (st == DF_OK) st = df_graph_run(s.g, s.in, s.n_in, outs, 1 + s.n_float);
    for (int k = 0; k < s.n_float && st == DF_OK; k++) {   /* copy: later runs overwrite */
        int64_t numel = df_tensor_numel(&outs[1 + k]);
        analytic[k] = df_malloc((size_t)(numel ? numel : 1) * sizeof(float));
        if (!analytic[k]) st = df_error(DF_ERR_NOMEM, "gradcheck: out of memory");
        else memcpy(analytic[k], outs[1 + k].data, (size_t)numel * sizeof(float));
    }
    for (int k = 0; k < s.n_float && st == DF_OK; k++) st = compare_input(&s, c, k, analytic[k], out);
    for (int k = 0; k < 4; k++) df_free(analytic[k]);
    for (int i = 0; i < c->n_inputs; i++) df_free(s.in_data[i]);
    if (st != DF_OK && s.g->status != DF_OK) st = df_error(st, "gradcheck '%s': %s", c->desc, s.g->error);
    df_graph_free(s.g);
    return st;
}
