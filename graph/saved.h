/* saved.h — what the saved-graph writer (graph/saved_export.c) and reader
 * (graph/saved_load.c) share: the file's framing and how each op's
 * attributes are stored. The format itself is described in dagflow.h
 * ("saved graphs"). */
#ifndef DF_SAVED_H
#define DF_SAVED_H

#include "graph.h"

#define DF_SAVED_MAGIC "DFGRAPH"          /* 8 bytes with the NUL */
#define DF_SAVED_VERSION 1u
#define DF_SAVED_HEADER 24                /* magic, version, flags, payload bytes */
#define DF_SAVED_TRAILER 8                /* XXH64 of header + payload, seed 0 */
#define DF_SAVED_MAX_NAME 4096            /* bytes of an op, node, variable or metadata name */
#define DF_SAVED_MAX_INPUTS 16            /* placeholders (a df_function's limit) */

/* How an op's attribute struct is written. Attribute structs are plain
 * bytes (DF_ATTRS_BEGIN/END forbid padding) except in the ops named in
 * graph/saved_export.c's table: */
typedef enum df_saved_attrs {
    DF_SAVED_PLAIN = 0,                   /* the bytes as they are */
    DF_SAVED_VARIABLE,                    /* starts with the df_variable * the op reads or writes:
                                           * stored as zero bytes and a variable index */
    DF_SAVED_CONSTANT,                    /* a pointer cleared once built: zero bytes and the node's data */
    DF_SAVED_FUSED,                       /* a df_fused_program: codes stored as op-table indices */
    DF_SAVED_REFUSED,                     /* holds process-local state (MPI): cannot be saved */
} df_saved_attrs;

/* How op's attributes are stored; *bool_mask gets the attribute bytes
 * that are C bools (bit i = byte i), which the reader checks are 0 or 1. */
df_saved_attrs df_saved_attrs_kind(const df_op_def *op, uint32_t *bool_mask);
/* An op's version as written (a 0 field counts as 1). */
int df_saved_op_version(const df_op_def *op);

/* Loads a saved graph from memory, refusing (DF_ERR_FORMAT) one whose
 * fixed-size tensors need more than max_tensor_bytes together: what the
 * fuzz harness uses to keep a small input from planning gigabytes. label
 * names the file in messages. */
df_status df_saved_load_buffer(const void *data, size_t len, const char *label, size_t max_tensor_bytes,
                               df_saved **out);

#endif
