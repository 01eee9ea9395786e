/* common.h — helpers shared by op files: broadcasting, parallel-for
 * thresholds, reductions, gradcheck input specs. */
#ifndef DF_OPS_COMMON_H
#define DF_OPS_COMMON_H

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include "registry.h"

/* Below this many elements a loop runs on one thread (fork cost dominates). */
#define DF_PAR_MIN 16384

/* Whether a loop with enough work gets more than one thread here: not with
 * one thread allowed (the executor's small ops, --threads 1) nor inside a
 * region that a nested one could not widen. */
static inline bool df_par_worth(bool enough_work)
{
    return enough_work && omp_get_max_threads() > 1 && omp_get_active_level() < omp_get_max_active_levels();
}

/* DF_PAR_FOR(enough_work, for (...) body): the loop as an OpenMP static
 * parallel for where df_par_worth, else as a plain loop. A region whose if
 * clause is false still allocates a team and wakes a futex (about 0.3 us),
 * which at batch 1, where every op is small, is a good part of an op's
 * time. Iterations must be independent (then both forms give the same
 * bits). DF_PAR_FOR_SIMD: the same with `simd` in both forms. */
#define DF_PAR_FOR(enough_work, ...)                                        \
    do {                                                                    \
        if (df_par_worth(enough_work)) {                                    \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__        \
        } else {                                                            \
            __VA_ARGS__                                                     \
        }                                                                   \
    } while (0)
#define DF_PAR_FOR_SIMD(enough_work, ...)                                   \
    do {                                                                    \
        if (df_par_worth(enough_work)) {                                    \
            _Pragma("omp parallel for simd schedule(static)") __VA_ARGS__   \
        } else {                                                            \
            _Pragma("omp simd") __VA_ARGS__                                 \
        }                                                                   \
    } while (0)

/* A loop function compiled for AVX-512, AVX2 and the baseline, one picked
 * at load time (GCC's ifunc on x86-64 ELF). Elsewhere, and with clang (which
 * before version 15 does not resolve such a function from another file),
 * one baseline copy: the same results, without the wider vectors. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define DF_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DF_TARGET_CLONES
#endif

/* Validates a shape argument of a constructor (rank 0..4, shape non-NULL
 * when rank > 0); records the error in g (or the thread's last error when g
 * is NULL) and returns false when it is bad. */
bool df_check_shape_arg(df_graph *g, const char *op, int ndim, const int64_t *shape);

/* DF_ERR_RANGE naming the first index outside [0, limit). Call it serially,
 * before any write, so the reported position never depends on threads. */
df_status df_check_indices(const int32_t *idx, int64_t count, int64_t limit);

/* Requires an f32 input. */
df_status df_require_f32(df_node *n, int input);
/* Output shape = input 0's, dtype f32 (unary elementwise ops). */
df_status df_infer_unary(df_node *n);
DF_ATTRS_BEGIN
/* Ops along one axis (softmax, log_softmax): normalised by infer. */
typedef struct { int32_t axis; } df_axis_attrs;
/* Reductions (sum, mean): the reduced axes (bit d = axis d) and whether they
 * stay in the output as size 1. */
typedef struct { uint32_t axes; int32_t keepdims; } df_reduce_attrs;
/* Recurrent cells, whose attributes their gradient ops read too. */
typedef struct { bool train; } df_lstm_attrs;          /* keeps every step's gates (set by lstm's backward) */
typedef struct { bool reset_after; } df_gru_attrs;     /* Keras' reset_after */
typedef struct { bool want_dh0; } df_bptt_attrs;       /* lstm_grad, gru_grad, rnn_grad: also compute dh0 */
typedef struct { int32_t which; } df_lstm_state_attrs; /* lstm_grad_state: 0 = dh0, 1 = dc0, 2 = d table (the ids form) */
typedef struct { int32_t form; } df_lstm_hprev_attrs;  /* lstm_hprev: 0 = hprev, 1 = hprev^T @ dz */
DF_ATTRS_END

/* As df_infer_unary, and normalises the df_axis_attrs axis (error if out of range). */
df_status df_infer_unary_axis(df_node *n);
/* Output shape = NumPy broadcast of inputs 0 and 1, dtype f32. */
df_status df_infer_broadcast(df_node *n);
/* Calls lane(x + start, y + start, len, stride) for every 1-D lane of a
 * (ndim, shape) tensor along axis, in parallel; the last axis is contiguous. */
typedef void (*df_lane_fn)(const float *x, float *y, int64_t len, int64_t stride);
void df_for_each_lane(const float *x, float *y, int ndim, const int64_t *shape, int axis, df_lane_fn lane);
/* The pieces of softmax-like rows, their results independent of the thread
 * count and the CPU. The largest of x[k*stride], k < len, NaNs skipped
 * (-inf if all are NaN, as fmaxf); and the sum in double of e_k =
 * exp(x[k*stride] - shift), each e_k by the exp op's formula (df_ew_run:
 * vectorised, the same bits on every CPU), summed in DF_LANE_SUMS lanes
 * (k mod DF_LANE_SUMS, each in k order, then lane 0, 1, ... in turn: the
 * adds of one lane overlap the others'); e_k also to y[k*stride] when y is
 * not NULL (y may be x). */
#define DF_LANE_SUMS 8
float df_lane_max(const float *x, int64_t stride, int64_t len);
double df_exp_shifted_sum(const float *x, int64_t stride, int64_t len, float shift, float *y);
/* x viewed as (outer, len, inner) around axis (len = x's size there). */
void df_axis_view(const df_node *x, int axis, int64_t *outer, int64_t *len, int64_t *inner);

/* Row-major strides (in elements) of x. */
void df_row_major_strides(const df_node *x, int64_t *strides);
/* Strides (in elements) of x viewed at out's rank, 0 along broadcast dims. */
void df_broadcast_strides(const df_node *x, int out_ndim, const int64_t *out_shape, int64_t *strides);
/* Sums grad down to like's shape (identity when shapes match). */
df_node *df_unbroadcast(df_graph *g, df_node *grad, df_node *like);
/* reshape if shapes differ (a view), else x. */
df_node *df_reshape_like(df_graph *g, df_node *x, df_node *like);
/* Shape-following forms of the shape-taking ops, used by gradients when the
 * target shape has a dynamic dimension: the target is like's shape at run
 * time (like is input 1, read only for its shape). */
df_node *df_broadcast_like(df_graph *g, df_node *x, df_node *like, bool average);   /* average: / (out/in numel) */
df_node *df_sum_to_like(df_graph *g, df_node *x, df_node *like);
df_node *df_reshape_to_like(df_graph *g, df_node *x, df_node *like, unsigned ones_mask); /* axes in mask -> 1 */
df_node *df_pad_like(df_graph *g, df_node *x, const int64_t *begin, df_node *like);
df_node *df_slice_like(df_graph *g, df_node *x, const int64_t *begin, df_node *like);
/* Makes a node whose last input is a like input (see above). */
df_node *df_like_make(df_graph *g, const df_op_def *op, df_node *x, df_node *like, const void *attrs);
/* The target shape of a shape-taking op into out: input 1's when it has
 * one, else (ndim, shape) from its attributes; returns the rank, or -1 for
 * an ndim outside 0..DF_MAX_DIMS. */
int df_target_shape(const df_node *n, int ndim, const int64_t *shape, int64_t *out);
/* Sums x (rows, len, inner) over the middle axis into out (rows, inner),
 * deterministic: each output element is summed by one thread in order. */
void df_reduce_middle(const float *x, float *out, int64_t rows, int64_t len, int64_t inner, float scale);

/* out = scale * sum of x over the axes in mask (bit d = axis d), laid out
 * as x's shape with those axes set to 1. tmp holds numel(x) floats. */
void df_reduce_axes(const float *x, int ndim, const int64_t *shape, unsigned mask, float scale,
                    float *out, float *tmp);
/* Validates axes and sets n's output shape for a reduction (df_reduce_attrs). */
df_status df_infer_reduce(df_node *n);
df_node *df_reduce_make(df_graph *g, const df_op_def *op, df_node *x, const int *axes, int n_axes,
                        bool keepdims);
/* The keepdims shape of a reduction node (reduced axes set to 1). */
void df_reduce_keep_shape(const df_node *n, int64_t *shape);

/* Gradcheck input spec helpers. */
#define DF_GC_F32(...) {DF_F32, DF_GC_NARG(__VA_ARGS__), {__VA_ARGS__}, -1.0f, 1.0f}
#define DF_GC_F32_RANGE(lo, hi, ...) {DF_F32, DF_GC_NARG(__VA_ARGS__), {__VA_ARGS__}, lo, hi}
#define DF_GC_I32(hi, ...) {DF_I32, DF_GC_NARG(__VA_ARGS__), {__VA_ARGS__}, 0.0f, hi}
#define DF_GC_SCALAR {DF_F32, 0, {0}, -1.0f, 1.0f}
#define DF_GC_NARG(...) DF_GC_NARG_(__VA_ARGS__, 4, 3, 2, 1, 0)
#define DF_GC_NARG_(a, b, c, d, N, ...) N

#endif
