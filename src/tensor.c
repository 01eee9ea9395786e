/* tensor.c — tensor views, dtypes and shape helpers. */
#include <stdio.h>
#include <string.h>
#include "base.h"

df_tensor df_tensor_make(df_dtype dtype, void *data, int ndim, const int64_t *shape)
{
    /* An out-of-range rank is kept so that callers' checks can report it. */
    df_tensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    for (int i = 0; i < ndim && i < DF_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

int64_t df_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

bool df_shape_numel_checked(int ndim, const int64_t *shape, int64_t *numel)
{
    /* 2^40 elements (4 TiB of f32) is far beyond any machine here and keeps
     * byte counts and index arithmetic well inside int64. */
    const int64_t limit = (int64_t)1 << 40;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (shape[i] > 0 && n > limit / shape[i]) return false;
        n *= shape[i];
    }
    *numel = n;
    return true;
}

bool df_shape_equal(int na, const int64_t *a, int nb, const int64_t *b)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

int64_t df_tensor_numel(const df_tensor *t) { return df_shape_numel(t->ndim, t->shape); }

size_t df_dtype_size(df_dtype dtype) { return dtype == DF_I32 ? sizeof(int32_t) : sizeof(float); }

const char *df_dtype_name(df_dtype dtype)
{
    switch (dtype) {
    case DF_F32: return "f32";
    case DF_I32: return "i32";
    }
    return "?";
}

char *df_shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < len) snprintf(buf + used, len - used, ")");
    return buf;
}
