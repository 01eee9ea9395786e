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

/* An op's version as written (a 0 field counts as 1). */
int df_saved_op_version(const df_op_def *op);

/* Loads a saved graph from memory, refusing (DF_ERR_FORMAT) one whose
 * fixed-size tensors need more than max_tensor_bytes together: what the
 * fuzz harness uses to keep a small input from planning gigabytes. label
 * names the file in messages. */
df_status df_saved_load_buffer(const void *data, size_t len, const char *label, size_t max_tensor_bytes,
                               df_saved **out);

#endif
