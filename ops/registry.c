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

/* Attribute structs that are not plain bytes, and bool bytes (a byte other
 * than 0 or 1 read as a bool is undefined behaviour). */
static const struct { const df_op_def *op; df_op_attrs_kind kind; } attrs_kinds[] = {
    {&df_op_variable, DF_ATTRS_VARIABLE},       {&df_op_assign, DF_ATTRS_VARIABLE},
    {&df_op_assign_add, DF_ATTRS_VARIABLE},     {&df_op_apply_sgd, DF_ATTRS_VARIABLE},
    {&df_op_apply_adam, DF_ATTRS_VARIABLE},     {&df_op_apply_adamw, DF_ATTRS_VARIABLE},
    {&df_op_apply_momentum, DF_ATTRS_VARIABLE}, {&df_op_apply_rmsprop, DF_ATTRS_VARIABLE},
    {&df_op_constant, DF_ATTRS_CONSTANT},       {&df_op_fused_elementwise, DF_ATTRS_FUSED},
#ifdef DF_WITH_MPI
    {&df_op_allreduce_mean, DF_ATTRS_UNSAVED},  {&df_op_allreduce_part, DF_ATTRS_UNSAVED},
#endif
};

static const struct { const df_op_def *op; uint32_t mask; } bool_attrs[] = {
    {&df_op_matmul, 0x3}, {&df_op_batch_matmul, 0x3},      /* transpose_a, transpose_b */
    {&df_op_lstm, 0x1}, {&df_op_gru, 0x1},                 /* train, reset_after */
    {&df_op_lstm_grad, 0x1}, {&df_op_gru_grad, 0x1}, {&df_op_rnn_grad, 0x1},   /* want_dh0 */
};

df_op_attrs_kind df_op_attrs_kind_of(const df_op_def *op, uint32_t *bool_mask)
{
    *bool_mask = 0;
    for (size_t i = 0; i < sizeof bool_attrs / sizeof bool_attrs[0]; i++)
        if (bool_attrs[i].op == op) *bool_mask = bool_attrs[i].mask;
    for (size_t i = 0; i < sizeof attrs_kinds / sizeof attrs_kinds[0]; i++)
        if (attrs_kinds[i].op == op) return attrs_kinds[i].kind;
    return DF_ATTRS_PLAIN;
}

/* Input counts of the ops that are not elementwise (those take their
 * table's arity): what their constructors pass to df_node_new, including
 * the shape-following forms (a second input read only for its shape). */
#define MANY (1 << 20)
static const struct { const df_op_def *op; int min, max; } arities[] = {
    {&df_op_placeholder, 0, 0}, {&df_op_variable, 0, 0}, {&df_op_constant, 0, 0},
    {&df_op_matmul, 2, 2}, {&df_op_batch_matmul, 2, 2}, {&df_op_sum, 1, 1}, {&df_op_mean, 1, 1}, {&df_op_max, 1, 1},
    {&df_op_broadcast_to, 1, 2}, {&df_op_sum_to, 1, 2}, {&df_op_reshape, 1, 2}, {&df_op_transpose, 1, 1},
    {&df_op_concat, 1, MANY}, {&df_op_slice, 1, 2}, {&df_op_pad, 1, 2},
    {&df_op_gather, 2, 2}, {&df_op_scatter_add, 2, 2}, {&df_op_one_hot, 1, 1},
    {&df_op_softmax, 1, 1}, {&df_op_log_softmax, 1, 1}, {&df_op_sparse_softmax_xent, 2, 2},
    {&df_op_fused_elementwise, 1, 2 * DF_FUSE_MAX},
    {&df_op_lstm, 4, 4}, {&df_op_lstm_grad, 4, 4}, {&df_op_lstm_grad_state, 1, 1}, {&df_op_lstm_hprev, 2, 3},
    {&df_op_lstm_final_c, 1, 1},
    {&df_op_gru, 3, 4}, {&df_op_gru_grad, 4, 4}, {&df_op_gru_grad_w, 3, 3}, {&df_op_gru_grad_bias, 1, 1},
    {&df_op_gru_grad_state, 1, 1},
    {&df_op_rnn, 3, 3}, {&df_op_rnn_grad, 3, 3}, {&df_op_rnn_grad_state, 1, 1},
    {&df_op_dropout, 2, 2}, {&df_op_fill_like, 1, 1}, {&df_op_argmax, 1, 1}, {&df_op_where, 3, 3},
    {&df_op_cast, 1, 1}, {&df_op_causal_mask, 1, 1}, {&df_op_layer_norm, 1, 3}, {&df_op_layer_norm_grad, 2, 3},
    {&df_op_pow, 1, 1},
    {&df_op_assign, 1, 1}, {&df_op_assign_add, 1, 1}, {&df_op_apply_sgd, 2, 2}, {&df_op_apply_adam, 5, 5},
    {&df_op_apply_adamw, 5, 5}, {&df_op_apply_momentum, 3, 3}, {&df_op_apply_rmsprop, 3, 3},
    {&df_op_attention, 3, 3}, {&df_op_attention_grad, 5, 5}, {&df_op_attention_grad_kv, 1, 1},
    {&df_op_global_norm_scale, 1, MANY},
};

bool df_op_takes_inputs(const df_op_def *op, int n_in, bool *declared)
{
    *declared = true;
    if (op->elementwise) return n_in == df_ew_arity(op->elementwise);
    for (size_t i = 0; i < sizeof arities / sizeof arities[0]; i++)
        if (arities[i].op == op)
            return n_in >= arities[i].min && n_in <= arities[i].max &&
                   !(op == &df_op_layer_norm && n_in == 2);   /* gain and bias come together */
    *declared = false;
    return false;
}
