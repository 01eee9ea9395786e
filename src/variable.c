/* variable.c — persistent parameters: storage and initialisers. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include "base.h"
#include "variable.h"

df_variable *df_variable_new(const char *name, df_dtype dtype, int ndim,
                             const int64_t *shape, df_init init, df_rng *rng)
{
    if (!name) {
        df_error(DF_ERR_ARG, "df_variable_new: null name (checkpoints and messages name variables)");
        return NULL;
    }
    if (ndim < 0 || ndim > DF_MAX_DIMS || (ndim > 0 && !shape)) {
        df_error(DF_ERR_ARG, "variable '%s': rank %d not in 0..%d", name, ndim, DF_MAX_DIMS);
        return NULL;
    }
    int64_t numel;
    if (!df_shape_numel_checked(ndim, shape, &numel)) {
        char s[96];
        df_error(DF_ERR_SHAPE, "variable '%s': shape %s has a negative dimension or is too large",
                 name ? name : "?", df_shape_str(ndim, shape, s, sizeof s));
        return NULL;
    }
    if (dtype != DF_F32 && dtype != DF_I32) {
        df_error(DF_ERR_DTYPE, "variable '%s': unknown dtype %d", name ? name : "?", (int)dtype);
        return NULL;
    }
    df_variable *v = df_calloc(1, sizeof *v);
    if (!v) goto oom;
    v->name = df_strdup(name ? name : "var");
    v->dtype = dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    v->numel = numel;
    v->data = df_aligned_alloc((size_t)v->numel * df_dtype_size(dtype));
    if (!v->name || !v->data) goto oom;
    if (df_variable_init(v, init, rng) != DF_OK) {
        df_variable_free(v);
        return NULL;
    }
    return v;
oom:
    df_variable_free(v);
    df_error(DF_ERR_NOMEM, "variable '%s': out of memory", name ? name : "?");
    return NULL;
}

void df_variable_free(df_variable *v)
{
    if (!v) return;
    df_free(v->data);
    df_free(v->name);
    df_free(v);
}

static _Atomic uint64_t last_version;

/* Versions come from one counter, so a (storage, version) pair never
 * repeats even when freed storage is reused by another variable. */
void df_variable_touch(const df_variable *v)
{
    if (v) atomic_store(&((df_variable *)v)->version, atomic_fetch_add(&last_version, 1) + 1);
}

uint64_t df_variable_version(const df_variable *v) { return v ? atomic_load(&v->version) : 0; }

/* The view is writable: count it as a write. */
df_tensor df_variable_tensor(const df_variable *v)
{
    df_variable_touch(v);
    return df_tensor_make(v->dtype, v->data, v->ndim, v->shape);
}

const char *df_variable_name(const df_variable *v) { return v ? v->name : "(null)"; }
int64_t df_variable_numel(const df_variable *v) { return v ? v->numel : 0; }

/* Orthogonal init: Gram–Schmidt on a Gaussian (rows x cols) matrix, orthonormal
 * along the shorter side, as Keras' Orthogonal does via QR. */
static df_status init_orthogonal(df_variable *v, float gain, df_rng *rng)
{
    int64_t cols = v->ndim ? v->shape[v->ndim - 1] : 1, rows = v->numel / (cols ? cols : 1);
    bool flip = rows < cols;               /* orthonormalise the longer vectors */
    int64_t nvec = flip ? rows : cols, len = flip ? cols : rows;
    double *q = df_malloc((size_t)(nvec * len) * sizeof *q);
    if (!q) return df_error(DF_ERR_NOMEM, "variable '%s': out of memory in orthogonal init", v->name);
    for (int64_t i = 0; i < nvec * len; i++) q[i] = df_rng_normal(rng);
    for (int64_t k = 0; k < nvec; k++) {
        double *qk = q + k * len;
        for (int pass = 0; pass < 2; pass++)      /* twice is enough for float accuracy */
            for (int64_t j = 0; j < k; j++) {
                double *qj = q + j * len, dot = 0;
                for (int64_t i = 0; i < len; i++) dot += qk[i] * qj[i];
                for (int64_t i = 0; i < len; i++) qk[i] -= dot * qj[i];
            }
        double norm = 0;
        for (int64_t i = 0; i < len; i++) norm += qk[i] * qk[i];
        norm = sqrt(norm) + 1e-30;
        for (int64_t i = 0; i < len; i++) qk[i] /= norm;
    }
    float *w = v->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] = (float)(gain * (flip ? q[r * len + c] : q[c * len + r]));
    df_free(q);
    return DF_OK;
}

df_status df_variable_init(df_variable *v, df_init init, df_rng *rng)
{
    if (!v) return df_error(DF_ERR_ARG, "df_variable_init: null variable");
    df_variable_touch(v);
    bool random = init.kind == DF_INIT_UNIFORM || init.kind == DF_INIT_GLOROT_UNIFORM ||
                  init.kind == DF_INIT_ORTHOGONAL || init.kind == DF_INIT_NORMAL;
    if (random && !rng)
        return df_error(DF_ERR_ARG, "variable '%s': random initialiser needs an rng", v->name);
    if (v->dtype == DF_I32) {
        if (init.kind != DF_INIT_ZEROS && init.kind != DF_INIT_CONSTANT && init.kind != DF_INIT_ONES)
            return df_error(DF_ERR_DTYPE, "variable '%s': i32 takes zeros, ones or constant", v->name);
        int32_t val = init.kind == DF_INIT_ONES ? 1 : init.kind == DF_INIT_CONSTANT ? (int32_t)init.a : 0;
        for (int64_t i = 0; i < v->numel; i++) ((int32_t *)v->data)[i] = val;
        return DF_OK;
    }
    float *w = v->data;
    switch (init.kind) {
    case DF_INIT_ZEROS: memset(w, 0, (size_t)v->numel * sizeof *w); return DF_OK;
    case DF_INIT_ONES: for (int64_t i = 0; i < v->numel; i++) w[i] = 1; return DF_OK;
    case DF_INIT_CONSTANT: for (int64_t i = 0; i < v->numel; i++) w[i] = init.a; return DF_OK;
    case DF_INIT_UNIFORM:
        for (int64_t i = 0; i < v->numel; i++) w[i] = init.a + (init.b - init.a) * df_rng_uniform(rng);
        return DF_OK;
    case DF_INIT_GLOROT_UNIFORM: {
        /* Keras: for rank>2 the receptive field multiplies both fans. */
        int64_t fan_in = 1, fan_out = 1;
        if (v->ndim == 1) fan_in = fan_out = v->shape[0];
        else if (v->ndim >= 2) {
            int64_t field = df_shape_numel(v->ndim - 2, v->shape);
            fan_in = v->shape[v->ndim - 2] * field;
            fan_out = v->shape[v->ndim - 1] * field;
        }
        float limit = sqrtf(6.0f / (float)(fan_in + fan_out));
        for (int64_t i = 0; i < v->numel; i++) w[i] = limit * (2.0f * df_rng_uniform(rng) - 1.0f);
        return DF_OK;
    }
    case DF_INIT_ORTHOGONAL:
        return init_orthogonal(v, init.a == 0 ? 1.0f : init.a, rng);
    case DF_INIT_NORMAL:
        if (!(init.b >= 0)) return df_error(DF_ERR_ARG, "variable '%s': normal std must be >= 0, got %g", v->name, init.b);
        for (int64_t i = 0; i < v->numel; i++) w[i] = init.a + init.b * df_rng_normal(rng);
        return DF_OK;
    }
    return df_error(DF_ERR_ARG, "variable '%s': unknown initialiser %d", v->name, (int)init.kind);
}

df_status df_variable_assign(df_variable *v, const df_tensor *src)
{
    if (!v || !src || !src->data) return df_error(DF_ERR_ARG, "df_variable_assign: null argument");
    if (src->dtype != v->dtype)
        return df_error(DF_ERR_DTYPE, "variable '%s' is %s, value is %s", v->name,
                        df_dtype_name(v->dtype), df_dtype_name(src->dtype));
    if (!df_shape_equal(src->ndim, src->shape, v->ndim, v->shape)) {   /* equal counts are not enough */
        char a[64], b[64];
        return df_error(DF_ERR_SHAPE, "variable '%s' has shape %s, the value assigned has shape %s", v->name,
                        df_shape_str(v->ndim, v->shape, a, sizeof a),
                        df_shape_str(src->ndim, src->shape, b, sizeof b));
    }
    memcpy(v->data, src->data, (size_t)v->numel * df_dtype_size(v->dtype));
    df_variable_touch(v);
    return DF_OK;
}
