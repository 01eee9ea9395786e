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
    /* Bumped (to a process-wide new value) by every write the library sees:
     * init, assign, checkpoint restore, handing out df_variable_tensor's
     * writable view, and graph ops that write it (graph/exec.c). Values
     * memoised from it (graph/memo.c, the bf16 weight cache) are reused
     * only while it is unchanged. */
    _Atomic uint64_t version;
};

#endif
