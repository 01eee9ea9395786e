/* tensor_alloc.c — a tensor view over storage of its own, e.g. the batch
 * buffers a data source fills. */
#include <stdint.h>
#include <stdlib.h>
#include "dagflow.h"

df_status df_tensor_alloc(df_dtype dtype, int ndim, const int64_t *shape, df_tensor *out)
{
    if (!out || ndim < 0 || ndim > DF_MAX_DIMS || (ndim && !shape))
        return df_error(DF_ERR_ARG, "df_tensor_alloc: null argument or rank %d (0..%d)", ndim, DF_MAX_DIMS);
    *out = (df_tensor){0};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return df_error(DF_ERR_SHAPE, "df_tensor_alloc: dimension %d is %lld", i, (long long)shape[i]);
        if (shape[i] && n > SIZE_MAX / df_dtype_size(dtype) / (size_t)shape[i])
            return df_error(DF_ERR_NOMEM, "df_tensor_alloc: too many elements");
        n *= (size_t)shape[i];
    }
    void *data = calloc(n ? n : 1, df_dtype_size(dtype));
    if (!data) return df_error(DF_ERR_NOMEM, "df_tensor_alloc: out of memory for %zu elements", n);
    *out = df_tensor_make(dtype, data, ndim, shape);
    return DF_OK;
}

void df_tensor_free_data(df_tensor *t)
{
    if (!t) return;
    free(t->data);
    t->data = NULL;
}
