/* registry.h — the op registry. Each op lives in ops/<name>.c, defines
 * `const df_op_def df_op_<name>` and has one X-macro line here; adding an op
 * means writing its file and adding its line (and its file to Makefile.am).
 * The elementwise ops are lines of their own table, ops/elementwise.def,
 * which the registry includes between the leaves and the other ops. */
#ifndef DF_REGISTRY_H
#define DF_REGISTRY_H

#include "../graph/graph.h"
#include "elementwise.h"

#define DF_LEAF_OPS(X) X(placeholder) X(variable) X(constant)

#define DF_OPS(X)                                                           \
    X(matmul) X(sum) X(mean) X(broadcast_to) X(sum_to)                      \
    X(reshape)                                                              \
    X(transpose) X(concat) X(slice) X(pad)                                  \
    X(gather) X(scatter_add) X(one_hot)                                     \
    X(softmax) X(log_softmax) X(sparse_softmax_xent) X(fused_elementwise)   \
    X(lstm) X(lstm_grad) X(lstm_grad_state) X(lstm_hprev) X(lstm_final_c)   \
    X(gru) X(gru_grad) X(gru_grad_w) X(gru_grad_bias) X(gru_grad_state)     \
    X(rnn) X(rnn_grad) X(rnn_grad_state) X(dropout) X(fill_like)           \
    X(max) X(argmax) X(where) X(cast) X(causal_mask) X(layer_norm) X(layer_norm_grad) X(layer_norm_param_grad) X(pow) \
    X(assign) X(assign_add) X(apply_sgd) X(apply_adam) X(apply_adamw) X(apply_momentum) X(apply_rmsprop) \
    X(assign_at)                                                            \
    X(batch_matmul) X(attention) X(attention_grad) X(attention_grad_kv)     \
    X(attention_qkv) X(attention_qkv_grad)                                  \
    X(global_norm_scale) DF_OPS_MPI(X)

/* --with-mpi builds add the all-reduce ops (ops/allreduce_mean.c). */
#ifdef DF_WITH_MPI
#define DF_OPS_MPI(X) X(allreduce_mean) X(allreduce_part)
#else
#define DF_OPS_MPI(X)
#endif

#define DF_DECLARE_OP(name) extern const df_op_def df_op_##name;
DF_LEAF_OPS(DF_DECLARE_OP)
#define DF_EW(name, ...) DF_DECLARE_OP(name)
#include "elementwise.def"
DF_OPS(DF_DECLARE_OP)
#undef DF_DECLARE_OP

extern const df_op_def *const df_op_registry[];
extern const int df_op_registry_count;
/* Constructors of internal ops (used by the optimizers in graph/). */
df_node *df_apply_sgd(df_graph *g, df_variable *w, df_node *grad, df_node *lr);
df_node *df_apply_adam(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *t,
                       df_node *m, df_node *v, float beta1, float beta2, float eps);
df_node *df_apply_adamw(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *t, df_node *m,
                        df_node *v, float beta1, float beta2, float eps, float weight_decay);
df_node *df_apply_momentum(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *velocity,
                           float momentum, bool nesterov);
df_node *df_apply_rmsprop(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *rms, float rho,
                          float epsilon);
/* clip / max(global norm of grads, clip), a scalar. */
df_node *df_global_norm_scale(df_graph *g, int n, df_node *const *grads, float clip);
/* x broadcast to like's shape at run time (ops/broadcast_to.c); average
 * divides by the repeat count. */
df_node *df_broadcast_like(df_graph *g, df_node *x, df_node *like, bool average);
DF_ATTRS_BEGIN
/* The variable an update op (assign, assign_add, apply_*) writes: the whole
 * attribute struct of some, the first member of the others' (a pointer to a
 * struct is a pointer to its first member), so the helpers below read it
 * for all of them. */
typedef struct { df_variable *var; } df_update_attrs;
DF_ATTRS_END
/* Shared by the update ops: the variable's shape, from input 0's. */
df_status df_infer_variable_update(df_node *n);
/* The same for an optimizer's update, its slots from input first_slot on (assign.c). */
df_status df_infer_optimizer_update(df_node *n, int first_slot);
/* An update node of op; attrs is op's attribute struct (starting with a
 * df_update_attrs). */
df_node *df_variable_update_make(df_graph *g, const df_op_def *op, int n_in, df_node *const *in,
                                 const void *attrs);

/* op's attribute kind and, in *bool_mask, its bool bytes (df_op_def). */
df_op_attrs_kind df_op_attrs_kind_of(const df_op_def *op, uint32_t *bool_mask);

/* Whether op takes n_in inputs (df_op_def.min_inputs .. max_inputs).
 * *declared is false for an op that declares no count (max_inputs 0 and not
 * a source op), which a saved graph refuses. */
bool df_op_takes_inputs(const df_op_def *op, int n_in, bool *declared);

/* The op named name, or NULL. */
const df_op_def *df_op_find(const char *name);
/* The first registered op whose flags include all of flags, or NULL: how
 * graph/ finds the op a rewrite makes (DF_OP_CONSTANT for folding,
 * DF_OP_FUSED for fusion) without naming it. */
const df_op_def *df_op_with_flags(unsigned flags);

#endif
