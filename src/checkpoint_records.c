/* checkpoint_records.c — typed views of checkpoint blobs: a fixed-size
 * record copied into place, and int64 arrays. A blob's bytes sit at any
 * offset of the file, so both read through a copy, never a cast. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow.h"

df_status df_checkpoint_get_blob_into(const df_checkpoint *ck, const char *key, void *out, size_t len)
{
    const void *data;
    size_t have;
    if (!out) return df_error(DF_ERR_ARG, "df_checkpoint_get_blob_into: null argument");
    df_status st = df_checkpoint_get_blob(ck, key, &data, &have);
    if (st != DF_OK) return st;
    if (have != len)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s' has %zu bytes, expected %zu", key, have, len);
    memcpy(out, data, len);
    return DF_OK;
}

df_status df_checkpoint_put_int64s(df_checkpoint *ck, const char *key, const int64_t *values, size_t n)
{
    if (n > SIZE_MAX / sizeof *values) return df_error(DF_ERR_ARG, "df_checkpoint_put_int64s: %zu values", n);
    if (!values && n) return df_error(DF_ERR_ARG, "df_checkpoint_put_int64s: null values");
    return df_checkpoint_put_blob(ck, key, values, n * sizeof *values);
}

df_status df_checkpoint_get_int64s(const df_checkpoint *ck, const char *key, size_t min_n, size_t max_n,
                                   int64_t **values, size_t *n)
{
    const void *data;
    size_t len;
    if (!values || !n) return df_error(DF_ERR_ARG, "df_checkpoint_get_int64s: null argument");
    *values = NULL;
    df_status st = df_checkpoint_get_blob(ck, key, &data, &len);
    if (st != DF_OK) return st;
    if (len % sizeof **values)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s': %zu bytes is not a whole number of int64 values",
                        key, len);
    *n = len / sizeof **values;
    if (*n < min_n || *n > max_n)
        return df_error(DF_ERR_FORMAT, "checkpoint entry '%s' has %zu int64 values, expected %zu to %zu", key, *n,
                        min_n, max_n);
    /* one byte at least: malloc(0) may be NULL */
    if (!(*values = malloc(len ? len : 1))) return df_error(DF_ERR_NOMEM, "out of memory reading '%s'", key);
    memcpy(*values, data, len);
    return DF_OK;
}
