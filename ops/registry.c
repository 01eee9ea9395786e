/* registry.c — the table of every op, generated from DF_LEAF_OPS, the
 * elementwise table and DF_OPS. */
#include <string.h>
#include "registry.h"

#define DF_OP_ENTRY(name) &df_op_##name,
const df_op_def *const df_op_registry[] = {
    DF_LEAF_OPS(DF_OP_ENTRY)
#define DF_EW(name, ...) DF_OP_ENTRY(name)
#include "elementwise.def"
    DF_OPS(DF_OP_ENTRY)
};
#undef DF_OP_ENTRY
const int df_op_registry_count = (int)(sizeof df_op_registry / sizeof df_op_registry[0]);

const df_op_def *df_op_find(const char *name)
{
    for (int i = 0; i < df_op_registry_count; i++)
        if (strcmp(df_op_registry[i]->name, name) == 0) return df_op_registry[i];
    return NULL;
}

const df_op_def *df_op_with_flags(unsigned flags)
{
    for (int i = 0; i < df_op_registry_count; i++)
        if ((df_op_registry[i]->flags & flags) == flags) return df_op_registry[i];
    return NULL;
}

df_op_attrs_kind df_op_attrs_kind_of(const df_op_def *op, uint32_t *bool_mask)
{
    *bool_mask = op->bool_attrs;
    return op->attrs_kind;
}

bool df_op_takes_inputs(const df_op_def *op, int n_in, bool *declared)
{
    *declared = true;
    if (op->elementwise) return n_in == df_ew_arity(op->elementwise);
    if (op->flags & DF_OP_LEAF) return n_in == 0;
    if (op->max_inputs == 0) {
        *declared = false;
        return false;
    }
    return n_in >= op->min_inputs && n_in <= op->max_inputs;
}
