/* where.c — y = cond != 0 ? a : b elementwise, the three inputs (f32; cond
 * a 0/1 mask such as df_less gives) broadcast together as NumPy does. Unlike
 * cond * a + (1 - cond) * b it never mixes the unchosen value in, so an -inf
 * or NaN there cannot leak out (masking scores before a softmax). Gradient:
 * da = where(cond, dy, 0), db = where(cond, 0, dy), each summed down to its
 * operand's shape; none to cond. */
#include "common.h"

static df_status where_infer(df_node *n)
{
    int nd = 0;
    for (int i = 0; i < 3; i++) {
        df_status st = df_require_f32(n, i);
        if (st != DF_OK) return st;
        if (n->in[i]->ndim > nd) nd = n->in[i]->ndim;
    }
    for (int d = 0; d < nd; d++) {
        int64_t size = 1;
        for (int i = 0; i < 3; i++) {
            const df_node *x = n->in[i];
            int dx = d - (nd - x->ndim);
            int64_t s = dx >= 0 ? x->shape[dx] : 1;
            if (s != 1 && size != 1 && s != size) {
                char sc[64], sa[64], sb[64];
                return df_op_error(n, DF_ERR_SHAPE, "cannot broadcast cond %s, a %s and b %s (axis %d)",
                                   df_node_shape_str(n->in[0], sc, sizeof sc), df_node_shape_str(n->in[1], sa, sizeof sa),
                                   df_node_shape_str(n->in[2], sb, sizeof sb), d);
            }
            if (s != 1) size = s;
        }
        n->shape[d] = size;
    }
    n->ndim = nd;
    n->dtype = DF_F32;
    return DF_OK;
}

// cond, a, b (broadcastable) -> y (their broadcast shape)
static df_status where_forward(df_node *n)
{
    const float *C = DF_F32P(n->in[0]), *A = DF_F32P(n->in[1]), *B = DF_F32P(n->in[2]);
    float *Y = DF_F32P(n);
    int64_t N = n->numel;
    if (n->in[0]->numel == N && n->in[1]->numel == N && n->in[2]->numel == N) {
        DF_PAR_FOR_SIMD(N > DF_PAR_MIN,
        for (int64_t i = 0; i < N; i++) Y[i] = C[i] != 0 ? A[i] : B[i];);
        return DF_OK;
    }
    int nd = n->ndim;
    int64_t st[3][DF_MAX_DIMS];
    for (int k = 0; k < 3; k++) df_broadcast_strides(n->in[k], nd, n->shape, st[k]);
    DF_PAR_FOR(N > DF_PAR_MIN,
    for (int64_t i = 0; i < N; i++) {
        int64_t rem = i, off[3] = {0, 0, 0};
        for (int d = nd - 1; d >= 0; d--) {
            int64_t idx = rem % n->shape[d];
            rem /= n->shape[d];
            for (int k = 0; k < 3; k++) off[k] += idx * st[k][d];
        }
        Y[i] = C[off[0]] != 0 ? A[off[1]] : B[off[2]];
    });
    return DF_OK;
}

static df_status where_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_node *cond = n->in[0], *zero = df_scalar(g, 0.0f);
    dx[0] = NULL;
    dx[1] = need[1] ? df_unbroadcast(g, df_where(g, cond, dy, zero), n->in[1]) : NULL;
    dx[2] = need[2] ? df_unbroadcast(g, df_where(g, cond, zero, dy), n->in[2]) : NULL;
    return g->status;
}

/* cond from the sign of input 0, a 0/1 mask that the checker's step never
 * flips (it keeps |x| >= 0.05); input 0 also joins the chosen a, so that
 * every input has a gradient to check. */
static df_node *where_build(df_graph *g, df_node **in)
{
    return df_where(g, df_greater(g, in[0], df_scalar(g, 0.0f)), df_add(g, in[1], in[0]), in[2]);
}

static const df_gradcheck_case where_cases[] = {
    {"same shape", 3, {DF_GC_F32(2, 3), DF_GC_F32(2, 3), DF_GC_F32(2, 3)}, where_build, 0, 0},
    {"broadcast a row and a scalar", 3, {DF_GC_F32(4, 3), DF_GC_F32(3), DF_GC_SCALAR}, where_build, 0, 0},
    {"cond broadcast over rows", 3, {DF_GC_F32(3), DF_GC_F32(2, 3), DF_GC_F32(2, 1)}, where_build, 0, 0},
    {0},
};

/* One compare (cond != 0) per output element; each input read once (a
 * broadcast one from cache), y written. */
static void where_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = (double)n->numel, .bytes = df_cost_io_bytes(n)};
}

static df_node *where_bench_build(df_graph *g, df_node **in, const double *attrs)
{
    (void)attrs;
    return df_where(g, in[0], in[1], in[2]);
}

static const df_bench_def where_bench = {
    .n_inputs = 3, .build = where_bench_build,
    .shapes = {"256x1024,256x1024,256x1024", "6400x4096,6400x4096,6400x4096", "6400x4096,4096,1"},
};

const df_op_def df_op_where = {
    .name = "where", .infer = where_infer, .forward = where_forward, .backward = where_backward,
    .gradcheck = where_cases,
    .min_inputs = 3, .max_inputs = 3,
    .cost = where_cost, .bench = &where_bench,
};

df_node *df_where(df_graph *g, df_node *cond, df_node *a, df_node *b)
{
    df_node *in[3] = {cond, a, b};
    return df_node_new(g, &df_op_where, 3, in, NULL);
}
