/* variable.h — the variable struct, shared with graph/ (which reads its storage). */
#ifndef DF_VARIABLE_H
#define DF_VARIABLE_H
#include "dagflow.h"

struct df_variable {
    char *name;
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    int64_t numel;
    void *data;          /* DF_ALIGN-aligned, never reallocated */
};

#endif
