/*
 * dagflow.h — a small static-graph dataflow engine with reverse-mode autodiff.
 *
 * TUTORIAL
 * ========
 * dagflow works like TensorFlow's tf.function, in C. You write a *builder*
 * callback that describes a computation with lazy op constructors; dagflow
 * traces it once per input signature (dtypes + shapes) into a DAG, compiles
 * it (schedule + memory plan) and runs the compiled graph as often as you like.
 *
 * 1. Variables hold persistent parameters and live outside any graph:
 *
 *      df_rng rng; df_rng_seed(&rng, 42);
 *      int64_t wshape[] = {1, 1};
 *      df_variable *w = df_variable_new("w", DF_F32, 2, wshape,
 *                                       df_init_glorot_uniform(), &rng);
 *
 * 2. A builder receives placeholders for the call's inputs and builds nodes.
 *    Op constructors infer shapes at build time. A mistake (say, matmul inner
 *    dimensions that differ) makes the constructor return NULL and puts the
 *    graph into an error state with a message naming the op, node and shapes;
 *    later constructors given NULL also return NULL, so a builder checks once:
 *
 *      static df_status build(df_graph *g, df_node **in, void *user) {
 *          struct model *m = user;
 *          df_tape *tape = df_tape_begin(g);
 *          df_node *y    = df_add(g, df_matmul(g, in[0], df_var(g, m->w), 0, 0),
 *                                 df_var(g, m->b));
 *          df_node *loss = df_mean(g, df_square(g, df_sub(g, y, in[1])), NULL, 0, 0);
 *          df_tape_end(tape);
 *          df_node *grads[2];
 *          df_tape_gradient(tape, loss, 2, m->vars, grads);
 *          df_optimizer_apply(g, m->opt, 2, m->vars, grads);   // in-place updates
 *          df_graph_output(g, loss);
 *          return df_graph_status(g);
 *      }
 *
 * 3. A df_function caches one compiled graph per input signature:
 *
 *      df_function *step = df_function_new("train_step", build, &model);
 *      df_tensor in[2] = { df_tensor_make(DF_F32, xs, 2, xshape),
 *                          df_tensor_make(DF_F32, ys, 2, yshape) };
 *      df_tensor loss;
 *      for (int i = 0; i < 100; i++)
 *          if (df_function_call(step, in, 2, &loss, 1) != DF_OK)
 *              fprintf(stderr, "%s\n", df_last_error());
 *      // df_function_trace_count(step) == 1: one signature, one trace.
 *
 *    Output tensors point into the compiled graph's memory and stay valid until
 *    the next call of the same function.
 *
 *    With an input signature, a dimension can be left open (DF_DYNAMIC, like
 *    None in tf.function's input_signature): one trace then serves every
 *    batch size, and each new size only costs a re-plan of shapes and memory:
 *
 *      df_tensor_spec sig[2] = { {DF_F32, 2, {DF_DYNAMIC, 1}},
 *                                {DF_F32, 2, {DF_DYNAMIC, 1}} };
 *      df_function *step = df_function_new_signature("train_step", build, &model, 2, sig);
 *      // batches of 32, 32, ..., 17 rows: df_function_trace_count(step) == 1
 *
 *    Inside the builder a dynamic dimension reads as DF_DYNAMIC (df_node_dim);
 *    shapes must follow the inputs (df_reshape with -1, broadcasting, df_mean)
 *    rather than fixed sizes, or the trace fails with a message naming the op.
 *
 * 4. Gradients are more nodes of the same graph (backward is graph -> graph),
 *    so gradients of gradients work for differentiable ops. Side-effecting ops
 *    (assign, optimizer updates) run after every node that does not depend on
 *    them: all reads of a variable in one call see its value from before the
 *    call's updates.
 *
 * 5. On top of this: Keras-style layers and models (df_dense_layer,
 *    df_lstm_layer, df_model_add, df_model_summary, df_model_compile ...) and
 *    the training loop df_fit (progress, validation, checkpoints with exact
 *    resume, schedules, signals, MPI). Their sections below start with a
 *    tutorial of their own; examples/mlp.c, examples/chargpt and
 *    tests/installed/toy_lstm.c use them.
 *
 * Every fallible call returns a df_status; df_last_error() gives the message
 * of the most recent failure on this thread. The library never aborts or exits
 * on user input.
 *
 * Lifetime: a df_graph owns its nodes; nodes must not be used after the graph
 * is freed (df_graph_free / df_function_free). Variables and optimizers are
 * owned by the caller and must outlive the graphs that use them.
 */
#ifndef DAGFLOW_H
#define DAGFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- version */

/* The library's version, as configure.ac's AC_INIT states it. The macros
 * give the version a program was compiled against; df_version() the one of
 * the library it runs with ("0.1.0"). */
#define DAGFLOW_VERSION_MAJOR 0
#define DAGFLOW_VERSION_MINOR 1
#define DAGFLOW_VERSION_PATCH 0
#define DF_STRINGIFY_(x) #x
#define DF_STRINGIFY(x) DF_STRINGIFY_(x)
#define DAGFLOW_VERSION                                                          \
    DF_STRINGIFY(DAGFLOW_VERSION_MAJOR) "." DF_STRINGIFY(DAGFLOW_VERSION_MINOR) "." \
    DF_STRINGIFY(DAGFLOW_VERSION_PATCH)
const char *df_version(void);

/* ------------------------------------------------------------------ status */

typedef enum df_status {
    DF_OK = 0,
    DF_ERR_ARG,       /* a null pointer or an out-of-range argument */
    DF_ERR_SHAPE,     /* shapes that do not fit the op */
    DF_ERR_DTYPE,     /* wrong element type */
    DF_ERR_NOMEM,     /* an allocation failed */
    DF_ERR_IO,        /* a file could not be read or written */
    DF_ERR_FORMAT,    /* a file is corrupt, truncated or of another kind */
    DF_ERR_STATE,     /* the object is in an error state or used out of order */
    DF_ERR_RANGE,     /* a runtime value out of range (e.g. a gather index) */
    DF_ERR_UNSUPPORTED /* e.g. no gradient defined for an op */
} df_status;

/* Message of the most recent error on the calling thread ("" if none). */
const char *df_last_error(void);
/* Short name of a status code, e.g. "shape error". */
const char *df_status_name(df_status s);
/* Records a formatted error message and returns s (for library extensions). */
df_status df_error(df_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Puts "<prefix>: " before the current message (df_last_error) and returns
 * st, for context on the way up: df_error_prefix(st, path) makes "vocab 3
 * chars" read "run/ckpt_2: vocab 3 chars". DF_OK or a NULL prefix: st as is. */
df_status df_error_prefix(df_status st, const char *prefix);

/* ----------------------------------------------------------------- tensors */

#define DF_MAX_DIMS 4

typedef enum df_dtype { DF_F32 = 0, DF_I32 = 1 } df_dtype;

/* A dense row-major tensor view. It never owns its data. */
typedef struct df_tensor {
    df_dtype dtype;
    int ndim;                     /* 0 (scalar) .. DF_MAX_DIMS */
    int64_t shape[DF_MAX_DIMS];
    void *data;
} df_tensor;

df_tensor df_tensor_make(df_dtype dtype, void *data, int ndim, const int64_t *shape);
/* A tensor over zeroed storage of its own (a batch buffer a data source
 * fills, an output to copy into), freed with df_tensor_free_data (which sets
 * data to NULL; a NULL data is a no-op). A negative dimension is
 * DF_ERR_SHAPE, no memory DF_ERR_NOMEM (*out all zero on error). */
df_status df_tensor_alloc(df_dtype dtype, int ndim, const int64_t *shape, df_tensor *out);
void df_tensor_free_data(df_tensor *t);
int64_t df_tensor_numel(const df_tensor *t);
size_t df_dtype_size(df_dtype dtype);
const char *df_dtype_name(df_dtype dtype);
/* Writes "(2,3,4)" into buf; returns buf. */
char *df_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* -------------------------------------------------------------------- RNG */

/* xoshiro256** generator; the state is plain data so it can be checkpointed. */
typedef struct df_rng { uint64_t s[4]; } df_rng;

void df_rng_seed(df_rng *rng, uint64_t seed);
uint64_t df_rng_next(df_rng *rng);
float df_rng_uniform(df_rng *rng);             /* [0, 1) */
float df_rng_normal(df_rng *rng);              /* N(0, 1) */
uint32_t df_rng_below(df_rng *rng, uint32_t n);/* uniform integer in [0, n) */

/* --------------------------------------------------------------- variables */

typedef enum df_init_kind {
    DF_INIT_ZEROS, DF_INIT_ONES, DF_INIT_CONSTANT, DF_INIT_UNIFORM,
    DF_INIT_GLOROT_UNIFORM, DF_INIT_ORTHOGONAL, DF_INIT_NORMAL
} df_init_kind;

typedef struct df_init { df_init_kind kind; float a, b; } df_init;

static inline df_init df_init_zeros(void) { return (df_init){DF_INIT_ZEROS, 0, 0}; }
static inline df_init df_init_ones(void) { return (df_init){DF_INIT_ONES, 0, 0}; }
static inline df_init df_init_constant(float v) { return (df_init){DF_INIT_CONSTANT, v, 0}; }
static inline df_init df_init_uniform(float lo, float hi) { return (df_init){DF_INIT_UNIFORM, lo, hi}; }
/* Keras glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)), with
 * fan_in = shape[0] and fan_out = shape[ndim-1] for 2-D kernels. */
static inline df_init df_init_glorot_uniform(void) { return (df_init){DF_INIT_GLOROT_UNIFORM, 0, 0}; }
/* Orthogonal rows/columns (QR of a Gaussian matrix), scaled by gain a (0 = 1). */
static inline df_init df_init_orthogonal(float gain) { return (df_init){DF_INIT_ORTHOGONAL, gain, 0}; }
/* N(mean, std^2), e.g. GPT-2's N(0, 0.02^2) (torch.nn.init.normal_). */
static inline df_init df_init_normal(float mean, float std) { return (df_init){DF_INIT_NORMAL, mean, std}; }

typedef struct df_variable df_variable;

/* Creates a variable and fills it with init (rng may be NULL for
 * deterministic initialisers). Returns NULL on error (see df_last_error). */
df_variable *df_variable_new(const char *name, df_dtype dtype, int ndim,
                             const int64_t *shape, df_init init, df_rng *rng);
void df_variable_free(df_variable *v);
/* A view of the variable's storage; writes through it change the variable. */
df_tensor df_variable_tensor(const df_variable *v);
const char *df_variable_name(const df_variable *v);
df_status df_variable_init(df_variable *v, df_init init, df_rng *rng);
/* Copies src into the variable. src must have the variable's dtype and
 * exactly its shape (a (3,2) value for a (2,3) variable is DF_ERR_SHAPE
 * naming the variable and both shapes, though the element counts agree). */
df_status df_variable_assign(df_variable *v, const df_tensor *src);
int64_t df_variable_numel(const df_variable *v);

/* ------------------------------------------------------------------ graphs */

typedef struct df_graph df_graph;
typedef struct df_node df_node;

df_graph *df_graph_new(void);
void df_graph_free(df_graph *g);
/* DF_OK, or the first error a constructor recorded in this graph. */
df_status df_graph_status(const df_graph *g);
/* The message of that first error ("" if none). */
const char *df_graph_error(const df_graph *g);
/* Puts g in an error state from a builder (if it has none yet) and returns
 * s, so a builder's own checks fail the trace with their message. */
df_status df_graph_set_error(df_graph *g, df_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Leaf nodes. A placeholder dimension of DF_DYNAMIC is left open: the graph
 * runs at any size (>= 1) of it, compiled once and planned once per size. */
#define DF_DYNAMIC (-1)
df_node *df_placeholder(df_graph *g, df_dtype dtype, int ndim, const int64_t *shape,
                        const char *name);
df_node *df_var(df_graph *g, df_variable *v);         /* reads a variable */
df_node *df_constant(df_graph *g, const df_tensor *value); /* copies value */
df_node *df_scalar(df_graph *g, float value);         /* 0-d f32 constant */

/* Marks a node as an output of the graph (in call order). */
df_status df_graph_output(df_graph *g, df_node *n);

/* Node inspection. */
df_dtype df_node_dtype(const df_node *n);
int df_node_ndim(const df_node *n);
/* Shapes as traced: DF_DYNAMIC (-1) where a dimension follows a dynamic
 * input dimension (df_node_numel is then DF_DYNAMIC too). */
int64_t df_node_dim(const df_node *n, int axis);   /* negative axis counts from the end */
const int64_t *df_node_shape(const df_node *n);
int64_t df_node_numel(const df_node *n);
const char *df_node_op_name(const df_node *n);
int df_node_id(const df_node *n);
df_node *df_node_set_name(df_node *n, const char *name);   /* returns n */
const char *df_node_name(const df_node *n);

/* Compiles (schedules, plans memory, allocates) and runs a graph directly.
 * inputs are matched to placeholders in creation order; outputs receive views
 * into graph memory valid until the next run. */
df_status df_graph_compile(df_graph *g);
df_status df_graph_run(df_graph *g, const df_tensor *inputs, int n_inputs,
                       df_tensor *outputs, int n_outputs);

/* Compilation passes, all on by default; turn some off (before compiling)
 * to compare results or to debug. */
enum {
    DF_PASS_CSE = 1 << 0,    /* common-subexpression elimination */
    DF_PASS_FOLD = 1 << 1,   /* constant folding */
    DF_PASS_FUSE = 1 << 2,   /* fuse chains of elementwise ops into one loop */
    DF_PASS_REUSE = 1 << 3,  /* reuse a buffer once its last reader has run, and let
                              * elementwise ops write over an input they read last */
    DF_PASS_ALL = 0xF
};
df_status df_graph_set_passes(df_graph *g, unsigned passes);

/* Facts about a compiled graph. */
typedef struct df_graph_stats {
    int nodes;             /* nodes that run (after dead-node removal) */
    int nodes_total;       /* nodes created */
    int dead_nodes;        /* nodes not scheduled: nothing needs them */
    int cse_merged;        /* nodes replaced by an identical earlier one */
    int constants_folded;  /* nodes computed at compile time */
    int fused_chains;      /* fused_elementwise nodes made */
    int fused_nodes;       /* elementwise nodes merged into them */
    int inplace;           /* elementwise nodes computed in their dying input's buffer */
    size_t arena_bytes;    /* peak bytes of the planned arena */
    size_t tensor_bytes;   /* sum of all planned buffers (no reuse) */
    int plans;             /* dynamic graphs: memory plans made, one per new input shape */
    int plans_cached;      /* dynamic graphs: plans kept (see df_graph_set_plan_cache) */
} df_graph_stats;
/* Dynamic graphs keep the plans (and arenas) of the last max_plans input
 * shapes, 4 by default; set before the first run. */
df_status df_graph_set_plan_cache(df_graph *g, int max_plans);
df_status df_graph_get_stats(const df_graph *g, df_graph_stats *out);

/* Per-op profiling: while on, every run adds each node's wall time. */
df_status df_graph_set_profiling(df_graph *g, bool on);
typedef struct df_op_profile {
    const char *op;        /* op name */
    int nodes;             /* scheduled nodes of that op */
    double seconds;        /* summed over the profiled runs */
} df_op_profile;
/* Time per op that runs a kernel (leaves and views are left out), largest
 * first, over the runs since profiling was turned on.
 * Fills up to max entries; returns how many ops ran; *runs (may be NULL)
 * receives the number of profiled runs. */
int df_graph_profile(const df_graph *g, df_op_profile *out, int max, int64_t *runs);

/* Writes a Graphviz DOT file with op names and shapes (written atomically).
 * After compilation, nodes that do not run (dead, merged, fused) are gray. */
df_status df_graph_dump_dot(const df_graph *g, const char *path);
/* Part of a graph: the nodes recorded by its first tape (the forward pass),
 * the nodes created after that tape ended (gradients and updates), each with
 * the nodes feeding it drawn as gray context; or all. */
typedef enum df_dot_part { DF_DOT_ALL, DF_DOT_FORWARD, DF_DOT_BACKWARD } df_dot_part;
df_status df_graph_dump_dot_part(const df_graph *g, const char *path, df_dot_part part);

/* ----------------------------------------------------------------- autodiff */

/* Builds nodes for d(sum(y * dy))/d xs[i] into grads[i] (dy NULL means ones).
 * A grads[i] is a zero constant when xs[i] does not affect y. */
df_status df_gradients(df_graph *g, df_node *y, df_node *dy, int n, df_node *const *xs,
                       df_node **grads);

/* GradientTape: records the nodes created between begin and end; gradients
 * flow only through recorded nodes (others are treated as constants). */
typedef struct df_tape df_tape;
df_tape *df_tape_begin(df_graph *g);
void df_tape_end(df_tape *t);
/* Gradients of loss w.r.t. variables (through their df_var nodes). The tape is
 * freed with its graph. */
df_status df_tape_gradient(df_tape *t, df_node *loss, int n, df_variable *const *vars,
                           df_node **grads);
df_status df_tape_gradient_nodes(df_tape *t, df_node *loss, int n, df_node *const *xs,
                                 df_node **grads);

/* --------------------------------------------------------------- functions */

/* The builder: inputs[i] are placeholders matching the call's inputs. Mark
 * results with df_graph_output and return df_graph_status(g). */
typedef df_status (*df_build_fn)(df_graph *g, df_node **inputs, void *user);

typedef struct df_function df_function;

df_function *df_function_new(const char *name, df_build_fn build, void *user);
/* The type and shape a function accepts for one input; DF_DYNAMIC dims are
 * open (tf.function's input_signature with None). */
typedef struct df_tensor_spec {
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
} df_tensor_spec;
/* A function traced once, for the given signature: every call whose inputs
 * match it (dtype, rank, every fixed dimension) runs the same trace; a call
 * that does not match fails with DF_ERR_SHAPE / DF_ERR_DTYPE. */
df_function *df_function_new_signature(const char *name, df_build_fn build, void *user, int n_inputs,
                                       const df_tensor_spec *signature);
void df_function_free(df_function *f);
/* Traces + compiles on a new signature, then runs. Every error, from the
 * trace or the run (a wrong input shape, an index out of range), names the
 * function: "function 'train_step': run: op 'gather' ...". */
df_status df_function_call(df_function *f, const df_tensor *inputs, int n_inputs,
                           df_tensor *outputs, int n_outputs);
/* How many times the builder has run (one per distinct signature). */
int df_function_trace_count(const df_function *f);
/* Past max_traces traces (default 5) a function prints one warning on stderr
 * about excessive retracing, as TensorFlow does; 0 turns it off. */
void df_function_set_retrace_warning(df_function *f, int max_traces);
/* Compilation passes (DF_PASS_*) for the function's graphs, as
 * df_graph_set_passes; DF_PASS_ALL by default. Before the first call
 * (DF_ERR_STATE after it); bits outside DF_PASS_ALL are DF_ERR_ARG. */
df_status df_function_set_passes(df_function *f, unsigned passes);
/* How many plans (one per input shape) each of the function's graphs with
 * dynamic dimensions keeps, as df_graph_set_plan_cache; before the first call. */
df_status df_function_set_plan_cache(df_function *f, int max_plans);
/* The graph traced most recently (NULL before the first call). */
df_graph *df_function_last_graph(const df_function *f);
/* XXH3 hash of a signature, as used for the trace cache key. */
uint64_t df_signature_hash(const df_tensor *inputs, int n_inputs);
/* A builder traced once into a new graph of its own, compiled with passes
 * (DF_PASS_*) but not run: what a df_function of this builder would run for
 * this signature, to look at (df_graph_get_stats, its DOT) without running
 * a step. Placeholder i is named names[i]
 * (names or names[i] NULL: "input<i>", as in a df_function); at most 16. The
 * builder's error is returned (*out NULL); else free *out with df_graph_free:
 *
 *      df_tensor_spec s = {DF_I32, 2, {64, 100}};
 *      df_graph *g;
 *      df_graph_trace(train_step, &model, 2, (df_tensor_spec[]){s, s}, (const char *[]){"x", "y"},
 *                     DF_PASS_ALL, &g);
 */
df_status df_graph_trace(df_build_fn build, void *user, int n_inputs, const df_tensor_spec *signature,
                         const char *const *names, unsigned passes, df_graph **out);

/* ------------------------------------------------------------------- ops
 * All constructors return NULL (and set the graph's error) on bad input.
 * Broadcasting follows NumPy rules. Axis arguments may be negative. */

df_node *df_add(df_graph *g, df_node *a, df_node *b);
df_node *df_sub(df_graph *g, df_node *a, df_node *b);
df_node *df_mul(df_graph *g, df_node *a, df_node *b);
df_node *df_div(df_graph *g, df_node *a, df_node *b);
df_node *df_neg(df_graph *g, df_node *x);
df_node *df_exp(df_graph *g, df_node *x);
df_node *df_log(df_graph *g, df_node *x);
df_node *df_tanh(df_graph *g, df_node *x);
df_node *df_sigmoid(df_graph *g, df_node *x);
df_node *df_relu(df_graph *g, df_node *x);
df_node *df_square(df_graph *g, df_node *x);          /* x * x */
df_node *df_scale(df_graph *g, df_node *x, float s);  /* x * s */
/* (x > 0) as 0/1 floats; no gradient. */
df_node *df_step(df_graph *g, df_node *x);
df_node *df_erf(df_graph *g, df_node *x);
df_node *df_sqrt(df_graph *g, df_node *x);
df_node *df_rsqrt(df_graph *g, df_node *x);            /* 1 / sqrt(x) */
df_node *df_abs(df_graph *g, df_node *x);              /* gradient sign(x), 0 at 0 */
/* log(1 + exp(x)), and x itself for x > 20 (PyTorch's threshold). */
df_node *df_softplus(df_graph *g, df_node *x);
/* GELU: x * Phi(x) with the exact normal CDF (erf), and PyTorch's tanh
 * approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
df_node *df_gelu(df_graph *g, df_node *x);
df_node *df_gelu_tanh(df_graph *g, df_node *x);
/* Elementwise max / min with broadcasting; NaN in either gives NaN; at a
 * tie each operand gets half the gradient (as torch). */
df_node *df_maximum(df_graph *g, df_node *a, df_node *b);
df_node *df_minimum(df_graph *g, df_node *a, df_node *b);
/* Comparisons with broadcasting: 1.0f where true, else 0.0f (a mask to
 * multiply with); no gradient. */
df_node *df_equal(df_graph *g, df_node *a, df_node *b);
/* x^p for a scalar p (torch.pow: negative x with non-integer p is NaN). */
df_node *df_pow(df_graph *g, df_node *x, float p);
/* min(max(x, lo), hi); the gradient flows where lo < x < hi. */
df_node *df_clip(df_graph *g, df_node *x, float lo, float hi);
df_node *df_less(df_graph *g, df_node *a, df_node *b);
df_node *df_greater(df_graph *g, df_node *a, df_node *b);

/* y = cond != 0 ? a : b, the three broadcast together (cond a 0/1 mask from
 * df_less etc.). The unchosen value never reaches y, so -inf or NaN there is
 * safe. Gradient to a and b where chosen; none to cond. */
df_node *df_where(df_graph *g, df_node *cond, df_node *a, df_node *b);
/* f32 <-> i32; to i32 truncates toward zero, and a NaN or out-of-range value
 * fails the run with DF_ERR_RANGE naming it. The same dtype returns x. No gradient. */
df_node *df_cast(df_graph *g, df_node *x, df_dtype dtype);

/* Matrix product op(a) @ op(b). Operands of rank > 2 are viewed as 2-D by
 * folding leading dims into rows: a (B,T,K) @ w (K,N) -> (B,T,N). For a
 * product per batch index, (B,h,T,d) @ (B,h,d,T), see df_batch_matmul. */
df_node *df_matmul(df_graph *g, df_node *a, df_node *b, bool transpose_a, bool transpose_b);
/* Batched matrix product on the last two axes: a (..., M, K) @ b (..., K, N)
 * -> (..., M, N), the leading (batch) axes broadcast NumPy-style, e.g.
 * (B,h,T,d) @ (B,h,d,T), or (B,T,K) @ a shared (K,N) or (1,K,N) weight. A
 * transpose flag swaps the last two axes of its operand (so q @ k^T is
 * df_batch_matmul(g, q, k, false, true)). Unlike df_matmul, leading axes are
 * never folded into rows: a^T of a (B,T,K) is (B,K,T). Ranks 2..DF_MAX_DIMS;
 * the gradient is built from batch_matmul, matmul and sum_to, so it is
 * differentiable again. */
df_node *df_batch_matmul(df_graph *g, df_node *a, df_node *b, bool transpose_a, bool transpose_b);
/* Scaled dot-product attention, fused: softmax(q k^T * scale + mask) v per
 * leading index, q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv)
 * (typically (B,h,T,d) with scale 1/sqrt(d)); q, k, v share their leading
 * axes (rank 2..DF_MAX_DIMS). causal masks key j for query i when
 * j > i + (Tk - Tq), i.e. aligned to the last key, so with Tq == Tk it is the
 * usual lower triangle and a one-query step over Tk cached keys sees them all
 * (causal needs Tk >= Tq). The T x T scores are never stored: blocks of
 * queries x keys with a running max and sum per query row, keeping only each
 * row's logsumexp for the backward, which recomputes the scores (a fused
 * attention_grad op giving dq, dk, dv). Results do not depend on the thread
 * count. With AVX-512F and d, dv <= 64 the blocks' products run on register
 * tiles of their own, else through the library's GEMM; the environment
 * variable DF_ATTENTION_NO_AVX512=1 (read once) forces the GEMM (the two
 * differ in the last bits). Masked keys and values must still be finite: a block that holds
 * visible keys multiplies its masked ones by 0, and 0 * NaN is NaN (as in the
 * composed version). The gradient is NOT differentiable again: asking for a second
 * derivative through it fails with "op 'attention_grad' ... has no gradient";
 * compose df_batch_matmul, df_softmax and a mask for that. */
df_node *df_attention(df_graph *g, df_node *q, df_node *k, df_node *v, bool causal, float scale);
/* Multi-head self-attention on a fused projection: qkv (..., T, 3C) is q, k
 * and v side by side, each n_head heads of C / n_head columns, and the
 * result (..., T, C) has head h's output in head h's columns; the same bits
 * as slicing the heads out, transposing them to (..., n_head, T, d),
 * df_attention and transposing back (nanoGPT's split / view / transpose),
 * without those copies, and the backward writes d qkv directly. Not
 * differentiable again, as df_attention. */
df_node *df_attention_qkv(df_graph *g, df_node *qkv, int n_head, bool causal, float scale);

/* Reductions over axes (NULL/0 axes = all axes). */
df_node *df_sum(df_graph *g, df_node *x, const int *axes, int n_axes, bool keepdims);
df_node *df_mean(df_graph *g, df_node *x, const int *axes, int n_axes, bool keepdims);
/* Maximum over axes (NULL/0 = all), NaN propagating; the gradient goes to
 * the maximal entries, shared equally among ties. */
df_node *df_reduce_max(df_graph *g, df_node *x, const int *axes, int n_axes, bool keepdims);
/* log(sum(exp(x))) along axis, computed as m + log(sum(exp(x - m))) with the
 * maximum m (a lane of all -inf gives -inf, not NaN). */
df_node *df_logsumexp(df_graph *g, df_node *x, int axis, bool keepdims);
/* Index (i32) of the first maximum along axis (NaN counts as the maximum);
 * the axis is removed. No gradient. */
df_node *df_argmax(df_graph *g, df_node *x, int axis);
/* Layer normalisation over the last axis (PyTorch's nn.LayerNorm, biased
 * variance): (x - mean) / sqrt(var + eps) * gain + bias; gain and bias (C)
 * both given or both NULL. eps is typically 1e-5. Fused forward and input
 * gradient. */
df_node *df_layer_norm(df_graph *g, df_node *x, df_node *gain, df_node *bias, float eps);
/* Attention scores (..., T, S) with the future hidden: entries j > i + (S - T)
 * become fill (-INFINITY before a softmax), i.e. the upper triangle when
 * S = T; with S > T query i is at position S - T + i (cached keys). */
df_node *df_causal_mask(df_graph *g, df_node *scores, float fill);
/* Broadcasts x to shape / sums x down to shape (inverse pair used by autodiff). */
df_node *df_broadcast_to(df_graph *g, df_node *x, int ndim, const int64_t *shape);
df_node *df_sum_to(df_graph *g, df_node *x, int ndim, const int64_t *shape);

/* Shape ops. reshape accepts one -1 dimension. */
df_node *df_reshape(df_graph *g, df_node *x, int ndim, const int64_t *shape);
df_node *df_transpose(df_graph *g, df_node *x, const int *perm);
df_node *df_concat(df_graph *g, int n, df_node *const *xs, int axis);
df_node *df_slice(df_graph *g, df_node *x, const int64_t *begin, const int64_t *size);
/* Zero tensor of shape with x placed at begin (the adjoint of slice). */
df_node *df_pad(df_graph *g, df_node *x, const int64_t *begin, int ndim, const int64_t *shape);

/* Embedding lookup: params (V,E), int indices (...) -> (..., E). An index
 * outside [0,V) fails the run with DF_ERR_RANGE. */
df_node *df_gather(df_graph *g, df_node *params, df_node *indices);
/* out (V,E) = zeros, out[indices[i]] += x[i]: the adjoint of gather. */
df_node *df_scatter_add(df_graph *g, df_node *x, df_node *indices, int64_t rows);
/* One-hot f32 of int indices (...) -> (..., depth); no gradient. */
df_node *df_one_hot(df_graph *g, df_node *indices, int64_t depth);

df_node *df_softmax(df_graph *g, df_node *x, int axis);
df_node *df_log_softmax(df_graph *g, df_node *x, int axis);
/* Mean over all positions of -log softmax(logits)[target]; logits (...,V),
 * int targets (...). A target outside [0,V) fails the run with DF_ERR_RANGE. */
df_node *df_sparse_softmax_cross_entropy(df_graph *g, df_node *logits, df_node *targets);

/* Filled tensors in the shape of another node, also where that shape has
 * open (DF_DYNAMIC) dimensions: the values follow like's size at every call
 * (like is read only for its shape; no gradient flows through them).
 * zeros_like and fill_like take like's shape and dtype. fill_like_dims takes
 * ndim/dims, where a DF_DYNAMIC entry means like's dimension at that axis: the
 * zero initial state (B,H) of a recurrent layer on x (B,T,E), at any B, is
 *
 *      df_node *h0 = df_fill_like_dims(g, x, 0.0f, DF_F32, 2, (int64_t[]){DF_DYNAMIC, H});
 */
df_node *df_zeros_like(df_graph *g, df_node *like);
df_node *df_fill_like(df_graph *g, df_node *like, float value);
df_node *df_fill_like_dims(df_graph *g, df_node *like, float value, df_dtype dtype, int ndim,
                           const int64_t *dims);

/* Side effects: write value into a variable (same shape), or add it (an
 * i32 sum wraps around in two's complement, as TensorFlow's). The returned
 * node's value is the variable after the update. */
df_node *df_assign(df_graph *g, df_variable *v, df_node *value);
df_node *df_assign_add(df_graph *g, df_variable *v, df_node *value);

/* ------------------------------------------------ KV caches: assign_at */

/* Writes value into v at position pos along axis, in place: v[..., pos :
 * pos + m, ...] = value, where value has v's shape except m (<= v's size) at
 * axis and pos is an i32 node with one element read at run time (rows
 * outside v's axis fail the run with DF_ERR_RANGE). The returned node's value is the variable after
 * the write: read the cache through it (a df_var of v does not wait for the
 * write). One step of a KV cache writes its keys with it. No gradient. */
df_node *df_assign_at(df_graph *g, df_variable *v, df_node *value, df_node *pos, int axis);

/* -------------------------------------------------------------------- lstm */

/* Fused LSTM over a sequence, Keras gate order (i, f, c, o):
 *   z_t = xproj[:, t] + h_{t-1} @ w_rec;  i,f,o = sigmoid;  g = tanh
 *   c_t = f*c_{t-1} + i*g;  h_t = o*tanh(c_t)
 * xproj (B,T,4H) is the input projection x @ W + b of all steps (one GEMM
 * done by the caller), w_rec (H,4H), h0 and c0 (B,H) -> h (B,T,H).
 *
 * A Keras LSTM(units, return_sequences=True) layer on x (B,T,E) is
 *
 *      df_node *xproj = df_add(g, df_matmul(g, x, df_var(g, kernel), 0, 0),
 *                              df_var(g, bias));             // (B,T,4H)
 *      df_node *h = df_lstm(g, xproj, df_var(g, recurrent_kernel),
 *                           df_var(g, h_state), df_var(g, c_state));
 *
 * Gradients flow to all four inputs (BPTT through the saved gates; the
 * recurrent weight gradient is one GEMM over all steps). The nonlinearities
 * use vectorised exp/tanh that agree with expf/tanhf to about 2e-7. */
df_node *df_lstm(df_graph *g, df_node *xproj, df_node *w_rec, df_node *h0, df_node *c0);
/* The final cell state c_T (B,H) of an lstm node (for stateful carry-over):
 *
 *      df_assign(g, c_state, df_lstm_final_c(g, h));
 *      df_assign(g, h_state, df_reshape(g, df_slice(g, h, (int64_t[]){0, T - 1, 0},
 *                                                   (int64_t[]){B, 1, H}), 2, (int64_t[]){B, H}));
 *
 * It has no gradient (carried state is a constant to the next call). */
df_node *df_lstm_final_c(df_graph *g, df_node *lstm);
/* The same LSTM on an input projection looked up by id: table (V,4H) is
 * the projection of every input symbol (e.g. an Embedding's table @ kernel
 * + bias), ids (B,T) i32 -> h (B,T,H), the same bits as
 * df_lstm(g, df_gather(g, table, ids), w_rec, h0, c0) without writing or
 * reading the (B,T,4H) gathered rows: each step's gate pass reads its rows
 * of the table. The gradient of table is summed in the backward's gate
 * pass while each step's gate gradients are in cache (no scatter_add over
 * them): deterministic, the same bits on any thread count, but summed in
 * another order than the gather's gradient (steps T-1 .. 0, then batch
 * rows), so it agrees with that to rounding, not bit for bit. An id outside
 * [0, V) fails the run with DF_ERR_RANGE, as df_gather's. The LSTM layer
 * uses it when an Embedding folds into it (df_model_call). Every kernel
 * path of df_lstm (packed, unpacked, AVX-512 or not, bf16, batch 1 on
 * packed weights) takes it. */
df_node *df_lstm_ids(df_graph *g, df_node *table, df_node *ids, df_node *w_rec, df_node *h0, df_node *c0);

/* --------------------------------------------------------- gru, simple rnn */

/* Fused GRU over a sequence, Keras gate layout (z, r, h): kernel (E,3H),
 * recurrent_kernel (H,3H), columns [z | r | h]. xproj (B,T,3H) is the input
 * projection x @ kernel + input_bias of all steps (one GEMM by the caller),
 * w_rec (H,3H), h0 (B,H) -> h (B,T,H).
 *   reset_after (Keras' default): u = h_{t-1} @ w_rec + b_rec;
 *       z = sigmoid(x_z + u_z), r = sigmoid(x_r + u_r), hh = tanh(x_h + r * u_h)
 *     Keras' bias is (2,3H): row 0 the input bias (into xproj), row 1 the
 *     recurrent bias b_rec (3H) passed here (NULL = no recurrent bias).
 *   reset_after = false: z, r as above without b_rec (which must be NULL; the
 *     bias is (3H), all in xproj); hh = tanh(x_h + (r * h_{t-1}) @ w_h).
 *   Then h_t = z * h_{t-1} + (1 - z) * hh.
 * A Keras GRU(units, return_sequences=True) layer on x (B,T,E):
 *
 *      df_node *b_in  = df_reshape(g, df_slice(g, df_var(g, bias), (int64_t[]){0, 0},
 *                                              (int64_t[]){1, 3 * H}), 1, (int64_t[]){3 * H});
 *      df_node *b_rec = df_reshape(g, df_slice(g, df_var(g, bias), (int64_t[]){1, 0},
 *                                              (int64_t[]){1, 3 * H}), 1, (int64_t[]){3 * H});
 *      df_node *xproj = df_add(g, df_matmul(g, x, df_var(g, kernel), 0, 0), b_in);
 *      df_node *h = df_gru(g, xproj, df_var(g, recurrent_kernel), b_rec, df_var(g, h_state), true);
 *
 * One recurrent GEMM per step (two with reset_after = false), the gates and
 * the update in one OpenMP pass; gradients flow to every input (BPTT; the
 * recurrent weight gradient is one GEMM over all steps). The final state is
 * h[:, T-1] (no cell state). */
df_node *df_gru(df_graph *g, df_node *xproj, df_node *w_rec, df_node *b_rec, df_node *h0, bool reset_after);
/* Fused Keras SimpleRNN (tanh) over a sequence: h_t = tanh(xproj[:, t] +
 * h_{t-1} @ w_rec), xproj (B,T,H) = x @ kernel + bias of all steps, kernel
 * (E,H), w_rec (H,H), h0 (B,H) -> h (B,T,H). One GEMM per step; BPTT
 * backward with the recurrent weight gradient as one GEMM. */
df_node *df_simple_rnn(df_graph *g, df_node *xproj, df_node *w_rec, df_node *h0);

/* Inverted dropout: y = x * mask / (1 - rate), each mask entry 1 with
 * probability 1 - rate (rate in [0, 1)). The mask is a hash of seed's value
 * (an i32 node with one element, e.g. a variable holding the step number),
 * salt and the element index: a new seed value draws a new mask, the same
 * value repeats it exactly (any thread count). Give each dropout layer its
 * own salt. The gradient multiplies by the same mask; dropout nodes are never
 * merged by CSE. Leave the node out to turn dropout off (evaluation). */
df_node *df_dropout(df_graph *g, df_node *x, float rate, df_node *seed, uint64_t salt);
/* The same for x holding rows [first_row, first_row + B) of a larger batch
 * (axis 0): it draws those rows' part of the larger batch's mask, so data-
 * parallel processes together drop exactly what one process would. */
df_node *df_dropout_rows(df_graph *g, df_node *x, float rate, df_node *seed, uint64_t salt, int64_t first_row);

/* -------------------------------------------------------------- optimizers */

typedef struct df_optimizer df_optimizer;

/* Every constructor takes a finite learning rate >= 0 and returns NULL
 * (df_last_error says why) for a bad one or another bad argument. */
df_optimizer *df_sgd_new(float learning_rate);
/* Keras defaults: lr 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-7. */
df_optimizer *df_adam_new(float learning_rate, float beta1, float beta2, float epsilon);
df_optimizer *df_adam_default(void);
/* AdamW as torch.optim.AdamW: w -= lr * weight_decay * w (decoupled from the
 * gradient), then Adam with PyTorch's bias correction (eps added to
 * sqrt(v) / sqrt(1 - beta2^t)). Decay applies to variables of rank >= 2
 * (kernels, embeddings: nanoGPT's rule), not to biases, gains or scalars;
 * df_optimizer_set_decay changes it per variable (e.g. no decay for an
 * embedding). Defaults (torch): lr 1e-3, betas 0.9 / 0.999, eps 1e-8,
 * weight_decay 0.01. The slots are "<var>/m" and "<var>/v", as Adam's. */
df_optimizer *df_adamw_new(float learning_rate, float beta1, float beta2, float epsilon, float weight_decay);
df_optimizer *df_adamw_default(void);
/* Whether AdamW decays v (DF_ERR_ARG for another optimizer); before tracing
 * the steps that update v (the choice is read when they trace). */
df_status df_optimizer_set_decay(df_optimizer *opt, const df_variable *v, bool decay);
/* SGD with momentum as Keras: v = momentum v - lr g; w += v (nesterov:
 * w += momentum v - lr g). */
df_optimizer *df_sgd_momentum_new(float learning_rate, float momentum, bool nesterov);
/* RMSprop as Keras (not centered, no momentum): rms = rho rms + (1-rho) g^2;
 * w -= lr g / (sqrt(rms) + epsilon). Keras defaults: lr 1e-3, rho 0.9, eps 1e-7. */
df_optimizer *df_rmsprop_new(float learning_rate, float rho, float epsilon);
/* Clip all gradients together by their global norm before each update, as
 * Keras' global_clipnorm (0 = off, the default). */
df_status df_optimizer_set_global_clipnorm(df_optimizer *opt, float clipnorm);
/* A function applied to every gradient node before clipping and the update,
 * e.g. an all-reduce mean across processes for data parallelism (builds
 * configured --with-mpi: df_allreduce_gradient in dagflow_mpi.h). */
typedef df_node *(*df_gradient_transform)(df_graph *g, df_node *grad, void *user);
void df_optimizer_set_gradient_transform(df_optimizer *opt, df_gradient_transform fn, void *user);
void df_optimizer_free(df_optimizer *opt);
/* Adds update nodes for vars given their gradients; creates slot variables
 * (zero-initialised) the first time it sees a variable. Each call of the
 * compiled graph is one optimizer step. */
df_status df_optimizer_apply(df_graph *g, df_optimizer *opt, int n, df_variable *const *vars,
                             df_node *const *grads);
/* Creates the slot variables of vars now (apply creates them lazily), e.g.
 * before restoring them from a checkpoint; variables that are not f32 (a
 * counter) get none. */
df_status df_optimizer_create_slots(df_optimizer *opt, int n, df_variable *const *vars);
float df_optimizer_learning_rate(const df_optimizer *opt);
/* A new rate for the next steps (no retrace); DF_ERR_ARG, the rate kept,
 * for a NULL optimizer or a rate that is negative or not finite. */
df_status df_optimizer_set_learning_rate(df_optimizer *opt, float lr);
/* Steps taken (read from the iteration counter variable). */
int64_t df_optimizer_iterations(const df_optimizer *opt);
/* State variables (iteration counter, then the slots in creation order), for
 * checkpoints. Returns the count; fills up to max entries of out. */
int df_optimizer_state(const df_optimizer *opt, df_variable **out, int max);
const char *df_optimizer_name(const df_optimizer *opt);

/* ------------------------------------------------------ optimizers by name
 *
 * An optimizer from its Keras name and the hyperparameters a command line
 * sets (tf.keras.optimizers.get, plus global_clipnorm); the rest are Keras'
 * defaults (AdamW: PyTorch's, weight decay 0.01). A run's flags map onto it:
 *
 *      df_optimizer_config c = {.name = "sgd", .learning_rate = 0.01f, .momentum = 0.9f, .clipnorm = 1};
 *      df_optimizer *opt;
 *      df_optimizer_from_config(&c, &opt);                    // df_sgd_momentum_new + clipnorm
 *      char text[64];
 *      df_optimizer_config_describe(&c, text, sizeof text);   // "sgd (momentum 0.9), clip 1"
 */
typedef struct df_optimizer_config {
    const char *name;       /* one of df_optimizer_names */
    float learning_rate;    /* finite, >= 0 */
    float momentum;         /* sgd only: [0, 1); 0 = plain SGD */
    float clipnorm;         /* finite, >= 0: df_optimizer_set_global_clipnorm; 0 = off */
} df_optimizer_config;
/* "adam", "adamw", "rmsprop", "sgd", NULL-terminated. */
extern const char *const df_optimizer_names[];
/* The optimizer into *out; an unknown name or an out-of-range value is
 * DF_ERR_ARG naming it ("optimizer adam: momentum 0.9 applies to sgd only"),
 * *out NULL on any error. */
df_status df_optimizer_from_config(const df_optimizer_config *c, df_optimizer **out);
/* "adam", "sgd (momentum 0.9)", "rmsprop, clip 1" into buf (snprintf's
 * contract: the length it needed). */
int df_optimizer_config_describe(const df_optimizer_config *c, char *buf, size_t cap);

/* ------------------------------------------------------------- checkpoints */

/* A checkpoint holds everything a training run needs to resume exactly:
 * config, vocabulary, weights, optimizer slots, step, RNG state. It is a list
 * of uniquely named entries, each a byte string (blob) or a tensor, kept in
 * insertion (or file) order. The file format is documented in checkpoint.c.
 *
 *      df_checkpoint *ck = df_checkpoint_new();
 *      df_checkpoint_put_blob(ck, "rng", &rng, sizeof rng);
 *      df_checkpoint_put_variable(ck, w);
 *      df_checkpoint_write(ck, "run/ckpt");      // then df_checkpoint_free(ck)
 *      ...
 *      df_checkpoint_read("run/ckpt", &ck);
 *      df_checkpoint_restore_variable(ck, w);
 */
typedef struct df_checkpoint df_checkpoint;

/* The kind of an entry; the values are the file's kind bytes. */
typedef enum df_checkpoint_kind {
    DF_CHECKPOINT_BLOB = 1,
    DF_CHECKPOINT_TENSOR = 2
} df_checkpoint_kind;

/* An empty checkpoint; NULL when out of memory (see df_last_error). */
df_checkpoint *df_checkpoint_new(void);
void df_checkpoint_free(df_checkpoint *ck);
/* Named byte strings (config text, vocabulary, RNG state, step ...). Copied.
 * Names are 1..65535 bytes and unique among all entries (a duplicate is
 * DF_ERR_ARG). get gives a view valid until df_checkpoint_free, at any byte
 * alignment (copy it out with memcpy before reading it as wider types); a
 * missing name or a tensor entry is DF_ERR_ARG. */
df_status df_checkpoint_put_blob(df_checkpoint *ck, const char *key, const void *data, size_t len);
df_status df_checkpoint_get_blob(const df_checkpoint *ck, const char *key, const void **data,
                                 size_t *len);
/* Variables by name. put references the variable's storage until write (no
 * copy): the variable must outlive the write, which saves its value then. */
df_status df_checkpoint_put_variable(df_checkpoint *ck, const df_variable *v);
/* Copies the stored tensor named like v into v; a missing name (DF_ERR_ARG),
 * another dtype (DF_ERR_DTYPE) or another shape (DF_ERR_SHAPE) is an error
 * naming the variable and both dtypes or shapes. */
df_status df_checkpoint_restore_variable(const df_checkpoint *ck, df_variable *v);
/* Atomic: writes "<path>.tmp.<pid>", fflush + fsync, renames it over path and
 * fsyncs the directory. On any failure the old file at path is untouched and
 * the temp file is removed; only a failing directory fsync comes after the
 * rename (DF_ERR_IO saying the new file is written but may not be durable).
 * Two threads of one process must not write the same path at once: they would
 * share the temp name. */
df_status df_checkpoint_write(const df_checkpoint *ck, const char *path);
/* Reads and verifies (magic, version, sizes, XXH64 of the payload) a whole
 * checkpoint; a malformed one is DF_ERR_FORMAT, an OS failure DF_ERR_IO. *out
 * is NULL on error. read_memory copies data, which may be freed afterwards. */
df_status df_checkpoint_read(const char *path, df_checkpoint **out);
df_status df_checkpoint_read_memory(const void *data, size_t len, df_checkpoint **out);
/* A stored tensor without a variable to restore into (a value of another
 * shape, e.g. one row of a batch's state): its dtype and shape (ndim entries
 * of shape written), then exactly its bytes copied into out (row-major; len
 * must be the tensor's size, else DF_ERR_FORMAT naming it and both sizes).
 * A missing name or a blob entry is DF_ERR_ARG. */
df_status df_checkpoint_tensor_shape(const df_checkpoint *ck, const char *name, df_dtype *dtype, int *ndim,
                                     int64_t shape[DF_MAX_DIMS]);
df_status df_checkpoint_get_tensor_into(const df_checkpoint *ck, const char *name, void *out, size_t len);
/* Entries, for listing: count, then the i-th name and kind (NULL / 0 when i is
 * out of range). */
int df_checkpoint_count(const df_checkpoint *ck);
const char *df_checkpoint_entry_name(const df_checkpoint *ck, int i);
df_checkpoint_kind df_checkpoint_entry_kind(const df_checkpoint *ck, int i);
/* Typed blobs, read through an aligned copy. get_blob_into copies a blob of
 * exactly len bytes into out (a struct, an RNG state); another length is
 * DF_ERR_FORMAT naming the entry and both lengths, and leaves out as it was.
 * An int64 array (native byte order) is a blob of n * 8 bytes: get_int64s
 * gives a malloc'd copy (*values, the caller frees it) of *n values with
 * min_n <= *n <= max_n; a length that is no whole number of values or out of
 * that range is DF_ERR_FORMAT naming the entry (*values NULL):
 *
 *      df_checkpoint_put_int64s(ck, "position", (int64_t[]){step, fill}, 2);
 *      int64_t *pos;
 *      size_t n;
 *      if (df_checkpoint_get_int64s(ck, "position", 2, 2, &pos, &n) == DF_OK) ... free(pos);
 */
df_status df_checkpoint_get_blob_into(const df_checkpoint *ck, const char *key, void *out, size_t len);
df_status df_checkpoint_put_int64s(df_checkpoint *ck, const char *key, const int64_t *values, size_t n);
df_status df_checkpoint_get_int64s(const df_checkpoint *ck, const char *key, size_t min_n, size_t max_n,
                                   int64_t **values, size_t *n);

/* --------------------------------------------------------- shuffle buffers */

/* tf.data's shuffle(buffer_size) over the indices 0..n-1, for a batch source
 * of your own (chunks of a text, rows of a file): the buffer starts with the
 * first buffer_size indices; each next() takes one of them at random
 * (df_rng_below on the seeded RNG) and puts the next unread index in its
 * slot, and once all are read the buffer drains. A buffer of 1 keeps the
 * order, one of n or more gives a uniform permutation; every index comes
 * exactly once per epoch, and each epoch reshuffles (the RNG carries on).
 *
 *      df_shuffle_buffer order;
 *      if (df_shuffle_buffer_init(&order, n_chunks, 10000, seed) != DF_OK) ...
 *      for (int epoch = 0; epoch < epochs; epoch++) {
 *          df_shuffle_buffer_start_epoch(&order);
 *          int64_t chunk;
 *          while (df_shuffle_buffer_next(&order, &chunk)) ... use chunk ...
 *      }
 *      df_shuffle_buffer_free(&order);
 *
 * The members are the state, to read (not to write): a checkpoint keeps
 * them with put and restore below. */
typedef struct df_shuffle_buffer {
    int64_t n;          /* indices 0..n-1 */
    int64_t size;       /* the buffer's capacity: buffer_size, at most n */
    int64_t fill;       /* indices in the buffer */
    int64_t next;       /* the next index to enter it */
    int64_t *buffer;    /* buffer[0..fill) */
    df_rng rng;
} df_shuffle_buffer;

/* n >= 0 (0: an empty epoch), 1 <= buffer_size <= UINT32_MAX, else DF_ERR_ARG;
 * out of memory is DF_ERR_NOMEM. Starts the first epoch. Zeroes *s first, so
 * free is safe after a failed init. */
df_status df_shuffle_buffer_init(df_shuffle_buffer *s, int64_t n, int64_t buffer_size, uint64_t seed);
void df_shuffle_buffer_free(df_shuffle_buffer *s);
/* Refills the buffer with the first indices; the RNG is not reseeded. */
void df_shuffle_buffer_start_epoch(df_shuffle_buffer *s);
/* The next index of the epoch into *index; false (and no RNG use) at its end. */
bool df_shuffle_buffer_next(df_shuffle_buffer *s, int64_t *index);
/* Checkpoint entries: blob rng_key holds the df_rng bytes, int64s key holds
 * the caller's n_head values first (a batch source's own step counter, say),
 * then fill, next and buffer[0..fill):
 *
 *      df_shuffle_buffer_put(&order, ck, "rng", "batcher", &step, 1);
 *      df_shuffle_buffer_restore(&order, ck, "rng", "batcher", &step, &steps_per_epoch, 1);
 *
 * (head and head_max may be NULL when n_head is 0). restore reads them into
 * s initialized alike (the same n and buffer size) and head[0..n_head),
 * checking every value: head[i] in 0..head_max[i], fill in 0..size with
 * exactly that many indices after it, next in fill..n and the buffer full
 * while next < n, the indices distinct and below next.
 * Another value, count or RNG length is DF_ERR_FORMAT naming the entry and
 * the field, a missing entry DF_ERR_ARG, out of memory DF_ERR_NOMEM; each
 * leaves s and head as they were. */
df_status df_shuffle_buffer_put(const df_shuffle_buffer *s, df_checkpoint *ck, const char *rng_key, const char *key,
                                const int64_t *head, size_t n_head);
df_status df_shuffle_buffer_restore(df_shuffle_buffer *s, const df_checkpoint *ck, const char *rng_key,
                                    const char *key, int64_t *head, const int64_t *head_max, size_t n_head);

/* ------------------------------------------------ learning-rate schedules */

/* A learning rate as a function of the step alone (steps taken before it),
 * set on the optimizer before each step with df_optimizer_set_learning_rate
 * (no retrace). A resumed run has the step in its checkpoint, so it
 * continues the same curve. All zero = a constant rate. */
typedef enum df_lr_kind { DF_LR_CONSTANT = 0, DF_LR_STEP = 1, DF_LR_COSINE = 2 } df_lr_kind;
typedef struct df_lr_schedule {
    df_lr_kind kind;
    int warmup_steps;   /* linear warm-up: step s < W runs at base * (s+1)/W */
    int decay_steps;    /* step: decay every N steps; cosine: length of the decay */
    float decay_rate;   /* step: factor per decay_steps */
    float min_ratio;    /* cosine: the floor as a fraction of base, in [0, 1) (Keras' alpha; nanoGPT's min_lr / lr) */
} df_lr_schedule;
/* True when the schedule changes the rate (not constant, or a warm-up). */
bool df_lr_schedule_active(const df_lr_schedule *s);
/* The rate for step (0-based) after the warm-up W:
 *   constant: base
 *   step:     base * decay_rate^floor((step - W) / decay_steps)
 *   cosine:   base * (a + (1 - a) (1 + cos(pi * min(step - W, decay_steps) / decay_steps)) / 2)
 *             with a = min_ratio (Keras' CosineDecay with alpha; nanoGPT's schedule
 *             with decay_steps = lr_decay_iters - warmup_iters). */
float df_lr_schedule_rate(const df_lr_schedule *s, float base, int64_t step);
/* DF_ERR_ARG naming the first bad field. */
df_status df_lr_schedule_check(const df_lr_schedule *s);

/* ------------------------------------------------------------ training loop */

/* df_fit is Keras' model.fit for any traced train step: epochs of steps with
 * a progress bar, validation, per-epoch checkpoints that resume a run exactly
 * (also from inside an epoch), a CSV log and an SVG loss curve, early
 * stopping, learning-rate schedules, and Ctrl-C / SIGTERM handling:
 *
 *      static df_status next_batch(void *user, df_tensor *in, bool *end) {
 *          struct data *d = user;
 *          if (d->pos + B > d->n) { *end = true; return DF_OK; }
 *          in[0] = df_tensor_make(DF_F32, d->x + d->pos * D, 2, (int64_t[]){B, D});
 *          in[1] = df_tensor_make(DF_F32, d->y + d->pos, 2, (int64_t[]){B, 1});
 *          d->pos += B;
 *          return DF_OK;
 *      }
 *      static void rewind(void *user) { ((struct data *)user)->pos = 0; }
 *
 *      df_fit_options o = {
 *          .train_step = step,                  // the GradientTape-style step
 *          .n_inputs = 2, .optimizer = opt, .n_variables = 2, .variables = vars,
 *          .train = {.next = next_batch, .start_epoch = rewind, .user = &data},
 *          .epochs = 10, .checkpoint_dir = "run", .csv_path = "run/losses.csv",
 *      };
 *      df_fit_history h;
 *      if (df_fit(&o, &h) != DF_OK) fprintf(stderr, "%s\n", df_last_error());
 *
 * The train step is a df_function whose inputs are one batch and whose first
 * output is the scalar f32 loss; it updates the variables itself (as in the
 * tutorial's step 2). A custom loop (calling the step yourself) stays as
 * possible as ever; df_fit only adds the bookkeeping around it. */

/* A source of batches. next fills inputs[0 .. n_inputs-1] (views that stay
 * valid until the next call) or sets *end at the end of an epoch. The
 * optional save/restore keep the source's position and RNG in checkpoints
 * (entries of its own names), so a run resumed from inside an epoch sees the
 * same batches as one that was never stopped. */
typedef struct df_fit_data {
    df_status (*next)(void *user, df_tensor *inputs, bool *end);
    void (*start_epoch)(void *user);          /* optional: rewind, reshuffle */
    df_status (*save)(void *user, df_checkpoint *ck);
    df_status (*restore)(void *user, const df_checkpoint *ck);
    void *user;
} df_fit_data;

/* What df_fit reports after each epoch (val_loss is NaN without validation). */
typedef struct df_fit_logs {
    int epoch;                /* 1-based */
    int64_t step;             /* optimizer steps taken in the whole run */
    double loss, val_loss;    /* mean training loss of the epoch's steps */
    float learning_rate;
} df_fit_logs;

/* What df_fit reports after each step, to on_step. */
typedef struct df_fit_step_logs {
    int epoch;                /* 1-based */
    int64_t batch;            /* 0-based index of the step in its epoch */
    int64_t step;             /* optimizer steps taken in the whole run, this one included */
    double loss;              /* this step's (with comm: the mean over the ranks) */
    bool last;                /* the last step of the epoch (steps_per_epoch reached, or a stop
                               * request; with steps_per_epoch 0 the end of the data shows only
                               * at the next fetch, so it is then false) */
} df_fit_step_logs;

typedef enum df_fit_progress {
    DF_FIT_PROGRESS_AUTO = 0,  /* Keras' bar on a terminal, ten lines an epoch otherwise */
    DF_FIT_PROGRESS_EPOCH = 1, /* one line per epoch */
    DF_FIT_PROGRESS_NONE = 2,
    DF_FIT_PROGRESS_MESSAGES = 3, /* no bar or epoch lines, only the messages (resumed, val_loss,
                                   * saved, interrupted): for an on_step hook that prints its own */
    DF_FIT_PROGRESS_STEPS = 4    /* the messages and the lines of TensorFlow's custom training loop:
                                  * "Epoch E Batch B Loss L" every 100 steps (B 0-based, L the step's
                                  * loss) and, when an epoch ends or stops, "Epoch E Loss L" (its mean)
                                  * and "Time taken for 1 epoch S sec" */
} df_fit_progress;

/* The ranks of a data-parallel run (src/dagflow_mpi.h makes one for MPI:
 * df_fit_mpi_comm). Each rank runs df_fit with the same options, its data
 * source giving its share of every batch, and a train step whose optimizer
 * averages the gradients over the ranks (df_allreduce_gradient), so the
 * weights stay identical. df_fit then reports and logs means over the ranks
 * (of each step's loss, of val_loss), stops every rank after the same step
 * when any one is asked to stop (signal, df_fit_request_stop, a NaN loss,
 * early stopping), lets rank 0 alone print and write files (CSV, SVG,
 * checkpoints; on resume it reads the checkpoint and broadcasts its bytes,
 * so the others need no shared file system), and returns the same status
 * and message on every rank for any error a rank can see (bad options, a
 * data source that fails or ends early, a file rank 0 cannot write).
 * The settings that shape the loop (epochs, steps_per_epoch, validation,
 * checkpoints, resume, early stopping, ...) must be alike on every rank
 * (checked: DF_ERR_ARG on every rank otherwise); the paths may differ, as
 * only rank 0's are used. On resume every rank restores rank 0's record of
 * the data source (train.save): it should hold what the ranks share (the
 * position, the shuffle's RNG), not this rank's rows. Per step the loop
 * adds two sums of a few doubles (after fetching the batch, so that a data
 * source failing on one rank stops every rank before the step; after the
 * step: the mean loss and any stop request).
 *
 * Each callback is collective: every rank calls it at the same point. A
 * failing callback means the communication is broken (a peer died or hung):
 * df_fit returns its error at once, and later calls fail at once too. */
typedef struct df_fit_comm {
    int rank, size;                 /* this process, 0..size-1, of size ranks */
    /* values[0..n-1] become their sums over the ranks (n <= 8). */
    df_status (*sum)(void *user, double *values, int n);
    /* DF_OK on every rank if st is DF_OK on all; else, on every rank, the
     * status and message (df_last_error) of the lowest failing rank. */
    df_status (*agree)(void *user, df_status st);
    /* Rank 0's *len bytes at *data reach every rank: on the others *data
     * becomes a malloc'd copy (the caller frees it) and *len its length. */
    df_status (*broadcast)(void *user, void **data, size_t *len);
    /* For rank_variables: the bytes at mine of every rank (len each) reach
     * rank 0 in rank order, at all (size * len bytes); all is NULL elsewhere. */
    df_status (*gather)(void *user, const void *mine, size_t len, void *all);
    /* Optional: called when the train step itself failed on this rank (st, df_last_error
     * says why). The other ranks may be waiting inside the step's own collective (the
     * gradient all-reduce), which no agree can reach, so it should print the error and end
     * the job (df_fit_mpi_comm's: MPI_Abort). NULL: df_fit returns the error on this rank. */
    void (*abort)(void *user, df_status st);
    void *user;
} df_fit_comm;

typedef struct df_fit_history df_fit_history;
typedef struct df_config_record df_config_record;   /* "config records" below */
typedef struct df_model df_model;                   /* "layers" below */

/* All-zero fields take the defaults in brackets. */
typedef struct df_fit_options {
    df_function *train_step;      /* required: batch -> loss (first output), updates */
    df_function *eval_step;       /* with validation: batch -> loss, no updates */
    int n_inputs;                 /* tensors per batch, 1..8 */
    df_optimizer *optimizer;      /* its slots and step go into checkpoints; schedules set its rate */
    int n_variables;              /* what checkpoints hold by name: the weights (a stateful */
    df_variable *const *variables;/* model's carried state too, but see rank_variables) */
    /* With comm, variables that differ per rank: the carried recurrent state of this rank's
     * rows of the batch. A checkpoint holds their concatenation over the ranks along axis 0
     * (each rank's shape alike; comm->gather required), and a resume gives each rank its
     * rows back, so a checkpoint does not depend on the number of ranks. One process: as
     * variables, except that validation leaves them as the epoch's last step did (below), so
     * list a carried state here, also in one process. They are not in check_weights' hash. */
    int n_rank_variables;
    df_variable *const *rank_variables;
    df_fit_data train;            /* required */
    df_fit_data validation;       /* optional (next NULL: none) */
    int epochs;                   /* [1] */
    int64_t steps_per_epoch;      /* [0: until train.next sets *end]; a cap otherwise */
    df_lr_schedule schedule;      /* [constant] */
    float learning_rate;          /* the schedule's base [0: the optimizer's rate at the start] */
    const char *checkpoint_dir;   /* [NULL: no checkpoints] <dir>/ckpt_<epoch>, created (mkdir -p) up front */
    int checkpoint_every;         /* [1] epochs; the last epoch and a stop always checkpoint */
    bool resume;                  /* continue from the latest ckpt_N in checkpoint_dir (none yet: a new run) */
    const char *resume_flag;      /* ["resume"] what a stop's "Interrupted: ..." line says continues the
                                   * run, e.g. the program's "--resume" */
    const char *learning_rate_flag; /* [NULL: a resume keeps the checkpoint's rate] with a constant schedule,
                                   * learning_rate (> 0) replaces the checkpoint's rate on resume; the
                                   * "Resumed from" line says which rate applies, naming this flag
                                   * ("learning rate 0.002 from --learning-rate; the checkpoint had 0.001") */
    bool overwrite;               /* a new run may replace the checkpoints of another run in checkpoint_dir */
    const char *csv_path;         /* [NULL] epoch,step,loss,val_loss, one row per step and per validation */
    const char *plot_path;        /* [NULL] SVG loss curve from the CSV, written at the end */
    int early_stopping_patience;  /* [0: off] epochs without improvement of val_loss (loss without validation) */
    double early_stopping_min_delta; /* an improvement must exceed this */
    bool terminate_on_nan;        /* a NaN or Inf loss ends fit with DF_ERR_STATE, as Keras' TerminateOnNaN */
    bool handle_signals;          /* SIGINT, SIGTERM, SIGHUP: finish the step, checkpoint, return */
    bool profile;                 /* profile the train step's ops from its second step on (the first
                                   * traced), for df_function_print_profile after the run */
    df_fit_progress progress;
    FILE *out;                    /* [stdout] progress and messages */
    const df_fit_comm *comm;      /* [NULL: one process] data parallel over these ranks */
    bool check_weights;           /* with comm: after each epoch the checkpointed variables must hash
                                   * (XXH64) alike on every rank, else DF_ERR_STATE listing the hashes;
                                   * rank 0 prints "Weights XXH64 <hash> on all N ranks" unless progress NONE */
    /* [NULL] a model of layers (df_model): where variables / rank_variables are not given, df_fit
     * checkpoints every weight (df_model_weights) and the state it carries for training batches
     * of model_batch rows (df_model_state_variables, DF_STATE_MAIN: the recurrent states as rank
     * variables, this rank's rows with comm; a scalar such as a Dropout's counter with the weights);
     * without a reset_states hook it zeroes that state itself (df_model_reset_states). */
    df_model *model;
    int64_t model_batch;          /* required with model (>= 1): the training batch's rows on this rank */
    const df_config_record *config; /* [NULL] the run's settings: in every checkpoint, checked on resume
                                   * (df_config_record_check) before restore_extra */
    /* Hooks, each optional, each given user: */
    /* at each epoch start and around validation; validation then puts the rank variables (the
     * training batch's carried state) back as the epoch's last step left them, whatever the
     * hook or eval_step did to them, so that the epoch's checkpoint holds that state (char-rnn
     * sample starts from it) */
    void (*reset_states)(void *user);
    df_status (*save_extra)(void *user, df_checkpoint *ck);        /* e.g. a vocabulary, after config */
    df_status (*restore_extra)(void *user, const df_checkpoint *ck); /* check they match this run */
    df_status (*on_epoch_end)(void *user, const df_fit_logs *logs); /* non-OK ends fit with it */
    df_status (*on_step)(void *user, const df_fit_step_logs *logs); /* after each step, every rank */
    /* After a resume restored everything, on every rank: may change what a resumed run may
     * change (e.g. the optimizer's rate) and write into note (cap bytes) what df_fit adds to
     * its "Resumed from <path> (N epochs done, step S<note>)" line, e.g. ", learning rate 0.01". */
    df_status (*on_resume)(void *user, const df_fit_history *h, char *note, size_t cap);
    void *user;
} df_fit_options;

struct df_fit_history {
    int epochs_done;          /* complete epochs, counting those of a resumed run */
    int64_t steps;            /* optimizer steps of the whole run */
    int64_t epoch_step;       /* steps into the next epoch when stopped inside one */
    double loss, val_loss;    /* of the last epoch (NaN when none ran or no validation) */
    double best;              /* best monitored loss (val_loss, or loss without validation) */
    bool resumed, interrupted, stopped_early;
    char last_checkpoint[512];/* path of the last checkpoint written or read ("" if none) */
};

/* Runs the loop. Errors from the step, the data source or a hook end it with
 * that status (the message names where); bad options are DF_ERR_ARG naming
 * the field. Files are written atomically and every write is checked. With
 * resume, a CSV log keeps only the rows up to the checkpoint's step (no rows
 * twice after a crash). history may be NULL.
 * A run owns its checkpoint_dir: a second df_fit on the same directory (any
 * process) fails with DF_ERR_STATE naming the holder's pid (an flock on
 * <dir>/.lock, released when df_fit returns or the process dies); checkpoint
 * temp files left by a process that died while writing are removed; and a
 * new run (no resume) into a directory holding checkpoints is DF_ERR_STATE
 * unless overwrite, which removes them first. */
df_status df_fit(const df_fit_options *o, df_fit_history *history);
/* Asks a running df_fit to stop after the current step with a checkpoint
 * (async-signal-safe; what handle_signals installs calls it). From on_step
 * the current step is the one it reports (with comm: the next one, on every
 * rank, which learn of a stop at a step's sync). */
void df_fit_request_stop(void);
/* The path of the latest checkpoint df_fit wrote in dir (the highest N of
 * a file ckpt_N), e.g. to sample from it; DF_ERR_IO when there is none. */
df_status df_fit_latest_checkpoint(const char *dir, char *path, size_t cap);
/* Outside the loop, one process: the checkpoint df_fit would write at path for these options
 * (config, save_extra, h's progress, variables and optimizer state with its slots created,
 * rank_variables, train.save), e.g. a test's or a fuzz seed; and restoring one as a resume
 * does (config, restore_extra, the progress into h, the variables, train.restore), e.g. to inspect a
 * run's state. Errors name what failed (not the path). */
df_status df_fit_write_checkpoint(const df_fit_options *o, const df_fit_history *h, const char *path);
df_status df_fit_restore_checkpoint(const df_fit_options *o, const df_checkpoint *ck, df_fit_history *h);
/* Reads a CSV in df_fit's format and writes an SVG of the per-step loss and
 * the validation points, atomically. */
df_status df_plot_loss_csv(const char *csv_path, const char *svg_path);
/* The per-op time table of a train step's most recent graph, profiled
 * (df_graph_set_profiling on df_function_last_graph, e.g. from on_step after
 * the first step, which traced): a "Profile over N steps (X ms/step in ops):"
 * line, then op, nodes, ms/step and share of the ops' time, largest first.
 * Prints nothing when no run was profiled; DF_ERR_ARG before any call. */
df_status df_function_print_profile(const df_function *f, FILE *out);

/* ----------------------------------------------------------- config records
 *
 * A run's settings, saved with its checkpoints and checked on resume, are
 * often a plain struct. A table of its fields describes it once; from the
 * table come the text ("key=value" lines, first "format=<version>"), its
 * strict parsing and the resume check naming the setting's flag:
 *
 *      typedef struct run_config { int hidden; float dropout; uint64_t seed; int cell; } run_config;
 *      static const char *const cells[] = {"lstm", "gru", NULL};
 *      static const df_config_field fields[] = {
 *          {"hidden", DF_CONFIG_INT, offsetof(run_config, hidden), .flag = "hidden", .required = true},
 *          {"dropout", DF_CONFIG_FLOAT, offsetof(run_config, dropout), .flag = "dropout"},
 *          {"seed", DF_CONFIG_U64, offsetof(run_config, seed), .flag = "seed", .required = true},
 *          {"cell", DF_CONFIG_ENUM, offsetof(run_config, cell), .flag = "cell", .names = cells}};
 *      df_config_put(ck, "config", fields, 4, 1, &cfg);             // into a checkpoint (save_extra)
 *      run_config saved = defaults;                                 // keys an older file lacks keep these
 *      df_config_get(ck, "config", fields, 4, &saved, &format);     // (restore_extra)
 *      df_config_compare(fields, 4, &saved, &cfg, NULL);
 *          // DF_ERR_STATE "it was trained with --seed 42, this run has --seed 7"
 */
typedef enum df_config_type {
    DF_CONFIG_INT,     /* int */
    DF_CONFIG_INT64,   /* int64_t */
    DF_CONFIG_U64,     /* uint64_t */
    DF_CONFIG_FLOAT,   /* float, finite, written with 9 digits (exact) */
    DF_CONFIG_BOOL,    /* bool, written 1 / 0 (read also true / false) */
    DF_CONFIG_ENUM,    /* an int-sized enum, written by name: names[value] */
    DF_CONFIG_STRING   /* char[size], no newline */
} df_config_type;

typedef struct df_config_field {
    const char *key;            /* in the text; letters, digits, '_' */
    df_config_type type;
    size_t offset;              /* offsetof(struct, member) */
    const char *flag;           /* the option's name for messages ("seed": "--seed 42"); NULL: "key=42" */
    const char *about;          /* [NULL] a value that is not the option's own, for messages:
                                 * "its --data differs (the corpus's XXH64: 12, this run's 34)" */
    const char *const *names;   /* ENUM: NULL-terminated names, indexed by value */
    size_t size;                /* STRING: the char array's size */
    bool required;              /* parsing fails without it (else it keeps the struct's value) */
    bool negate;                /* BOOL: the file holds its negation (a struct whose zero means the key's 1) */
    bool may_change;            /* df_config_compare reports a difference instead of refusing it */
    /* Whether the field matters for this config (the saved one, in df_config_compare);
     * NULL: always. E.g. a decay rate only with a step schedule. */
    bool (*applies)(const void *config);
    /* Numbers: the range df_config_check enforces, min <= value <= max (value < max with
     * below_max; max may be INFINITY), checked when min < max. */
    double min, max;
    bool below_max;
} df_config_field;

/* "format=<version>\nkey=value\n..." into buf (cap bytes, NUL-terminated);
 * the length, or -1 with DF_ERR_RANGE / DF_ERR_ARG (a bad enum value, a
 * newline in a string) in df_last_error. */
int df_config_format(const df_config_field *fields, int n, int version, const void *config, char *buf, size_t cap);
/* Parses such text into config, which holds the defaults for absent keys;
 * *version = its "format" (0 without one). DF_ERR_FORMAT naming the key on
 * an unknown key, a bad value, a line without '=' or a missing required key. */
df_status df_config_parse(const df_config_field *fields, int n, const char *text, size_t len, void *config,
                          int *version);
/* The first field (in table order) that applies to saved and differs from
 * now: DF_ERR_STATE "it was trained with --flag A, this run has --flag B"
 * ("it has key=A, this run has key=B" without a flag). Fields marked
 * may_change are not refused: with changed (room for n + 1), the differing ones
 * are listed there, NULL-terminated, so that the caller can say it applied them. */
df_status df_config_compare(const df_config_field *fields, int n, const void *saved, const void *now,
                            const df_config_field **changed);
/* Every field's value in its range (min/max; a FLOAT also finite) and every
 * ENUM one of its names, in table order, whether or not the field applies:
 * DF_ERR_ARG naming the first bad one as the user gave it, e.g.
 * "--dropout must be in [0, 1), got 1.5", "--clip must be >= 0, got -1". */
df_status df_config_check(const df_config_field *fields, int n, const void *config);
/* df_config_format into the checkpoint's blob name / df_config_parse from it. */
df_status df_config_put(df_checkpoint *ck, const char *name, const df_config_field *fields, int n, int version,
                        const void *config);
df_status df_config_get(const df_checkpoint *ck, const char *name, const df_config_field *fields, int n, void *config,
                        int *version);

/* A run's settings as df_fit keeps them (df_fit_options.config): every
 * checkpoint holds the record, and a resume refuses a checkpoint of another
 * format or with another setting, before restore_extra runs:
 *
 *      static const df_config_record record = {.name = "config", .fields = fields, .n_fields = 4,
 *          .version = 2, .values = &cfg, .size = sizeof cfg, .program = "my-trainer",
 *          .format_hint = "retrain, or resume it with my-trainer 1.0"};
 *      df_fit_options o = {..., .config = &record};
 *          // DF_ERR_FORMAT "run/ckpt_3: written by an older my-trainer (checkpoint format 1,
 *          //                this one reads 2): retrain, or resume it with my-trainer 1.0"
 *          // DF_ERR_STATE "run/ckpt_3: it was trained with --seed 42, this run has --seed 7"
 */
struct df_config_record {
    const char *name;                 /* the blob ["config"] */
    const df_config_field *fields;
    int n_fields;
    int version;                      /* written as format=<version>; a saved record without one is format 1 */
    const void *values;               /* this run's settings */
    size_t size;                      /* sizeof *values: a resume reads the saved record into a copy */
    const char *program;              /* who writes the format, for the error ["program"] */
    const char *format_hint;          /* [NULL] what to do, after the error on another format */
};
/* The record of values into ck (df_config_put). */
df_status df_config_record_put(const df_config_record *r, df_checkpoint *ck);
/* The resume check df_fit makes: ck's record is read into a copy of values
 * (keys it lacks keep this run's values); another format is DF_ERR_FORMAT
 * "written by an older <program> (checkpoint format F, this one reads V): <hint>",
 * then any difference df_config_compare refuses is its DF_ERR_STATE. */
df_status df_config_record_check(const df_config_record *r, const df_checkpoint *ck);

/* ------------------------------------------------------------------ layers
 *
 * Keras-style layers and models on top of the graph API. A layer owns its
 * variables (Keras names: "dense/kernel", "dense/bias", a second Dense in the
 * same model "dense_1/..."), their initialisers and, for recurrent layers,
 * their state. df_layer_call adds the layer's nodes to a graph being traced;
 * the first call builds the variables from the input's last dimension (as
 * Keras' build(input_shape)), or df_model_build / df_layer_build does it now.
 *
 *      df_model *m = df_model_new("char_rnn", 42);             // name, init seed
 *      df_model_add(m, df_embedding_layer(65, 256));
 *      df_model_add(m, df_lstm_layer(1024, (df_rnn_options){.return_sequences = true}));
 *      df_model_add(m, df_dense_layer(65, DF_ACT_NONE, true));
 *      df_model_build(m, 2, (int64_t[]){64, DF_DYNAMIC});       // optional: else on first call
 *      df_model_summary(m, stdout);                             // Total params: 5,330,241
 *
 *      static df_status build(df_graph *g, df_node **in, void *user) {   // a df_build_fn
 *          struct train *t = user;                  // { df_model *model; df_optimizer *opt; }
 *          df_tape *tape = df_tape_begin(g);
 *          df_node *logits = df_model_call(t->model, g, in[0], true);
 *          df_node *loss = df_sparse_softmax_cross_entropy(g, logits, in[1]);
 *          df_tape_end(tape);
 *          df_variable *vars[64];
 *          df_node *grads[64];
 *          int n = df_model_variables(t->model, vars, 64);  // built by the call above
 *          df_tape_gradient(tape, loss, n, vars, grads);
 *          df_optimizer_apply(g, t->opt, n, vars, grads);
 *          df_graph_output(g, loss);
 *          return df_graph_status(g);
 *      }
 *
 * Functional use: add the layers to a model (it names them and owns them),
 * then wire them yourself: y = df_layer_call(dense, g, df_layer_call(emb, g,
 * x, training), training). Layers are never shared between models.
 *
 * Initialisers as Keras': kernels glorot_uniform, biases zeros (an LSTM's
 * forget-gate slice ones: unit_forget_bias), embeddings uniform(-0.05, 0.05),
 * recurrent kernels orthogonal (or glorot_uniform with
 * df_rnn_options.recurrent_glorot, as the char-rnn tutorial). Random
 * initialisers draw from the model's RNG in build order, so one seed and one
 * layer order give the same weights. */
typedef struct df_layer df_layer;
typedef struct df_model df_model;

typedef enum df_activation {
    DF_ACT_NONE = 0, DF_ACT_RELU, DF_ACT_TANH, DF_ACT_SIGMOID,
    DF_ACT_GELU,          /* exact (erf) */
    DF_ACT_GELU_TANH      /* PyTorch's tanh approximation (GPT-2's) */
} df_activation;

/* Dense(units): y = activation(x @ kernel + bias), kernel (in, units), bias
 * (units) when use_bias. x (..., in) -> (..., units). */
df_layer *df_dense_layer(int64_t units, df_activation activation, bool use_bias);
/* Embedding(input_dim, output_dim): i32 indices (...) -> (..., output_dim);
 * the variable is "embedding/embeddings" (input_dim, output_dim).
 *
 * In a model, an Embedding directly followed by a layer that offers an input
 * projection (the recurrent layers: x @ kernel + bias) folds into it when the
 * ids' shape is fixed and holds at least input_dim ids (e.g. training batches
 * B*T >= V): one lookup gather(embeddings @ kernel + bias, ids), a (V,E)
 * product instead of (B*T,E). Fewer ids (sampling one step at a time) or an
 * open dimension take the plain path, gather then project. Both compute the
 * same rows up to rounding, and gradients flow through either. */
df_layer *df_embedding_layer(int64_t input_dim, int64_t output_dim);

/* Recurrent layers on x (B,T,E) (T fixed by the trace; B may be open). */
typedef struct df_rnn_options {
    bool return_sequences;   /* (B,T,H); else the last step's h (B,H) */
    bool stateful;           /* carry the final state into the next call (per batch size, which must be
                              * fixed, and per state slot); zero it with df_layer_reset_states */
    bool recurrent_glorot;   /* recurrent_kernel glorot_uniform instead of Keras' orthogonal */
} df_rnn_options;
/* LSTM(units): variables kernel (E,4H), recurrent_kernel (H,4H), bias (4H),
 * gates (i,f,c,o); the fused df_lstm op. Not stateful: zero initial state of
 * x's batch size at every call (an open batch dimension included). */
df_layer *df_lstm_layer(int64_t units, df_rnn_options options);
/* GRU(units, reset_after): kernel (E,3H), recurrent_kernel (H,3H), bias (2,3H)
 * with reset_after (Keras' default: row 0 input, row 1 recurrent bias) or
 * (3H) without; the fused df_gru op. */
df_layer *df_gru_layer(int64_t units, bool reset_after, df_rnn_options options);
/* SimpleRNN(units) with tanh: kernel (E,H), recurrent_kernel (H,H), bias (H). */
df_layer *df_simple_rnn_layer(int64_t units, df_rnn_options options);

/* State slots: a stateful layer keeps one carried state per (batch size,
 * slot), so that e.g. validation between training steps reads and carries
 * its own state and leaves the training state as it was. A call traces with
 * slot DF_STATE_MAIN unless df_model_call_slot / df_layer_call_slot say
 * otherwise; the model's compiled eval step uses DF_STATE_EVAL. */
enum { DF_STATE_MAIN = 0, DF_STATE_EVAL = 1, DF_MAX_STATE_SLOTS = 4 };
/* A stateful layer holds up to this many (batch size, slot) states; a call
 * that needs one more fails its graph with DF_ERR_RANGE saying so. */
enum { DF_MAX_LAYER_STATES = 16 };
/* Full names of a recurrent layer's state variables in one slot (c: LSTM
 * only, else ignored and may be NULL), for checkpoints written by other
 * code. Default: "<layer>/state_h", "<layer>/state_c" in slot 0,
 * "<layer>/state_h_slot<s>", ... in slot s. Set before the slot's first
 * state exists (else DF_ERR_STATE). */
df_status df_rnn_layer_set_state_names(df_layer *l, int slot, const char *h_name, const char *c_name);

/* Dropout(rate), active only when called with training = true. The mask
 * follows df_dropout's seed: by default the layer's own step counter, which
 * each training call advances (a new mask per step, the same masks on a
 * rerun from the same state), salted by the layer's name. Resetting states
 * leaves the counter alone (every epoch draws new masks); df_model_state_variables
 * lists it, and df_fit with .model checkpoints it once, not per rank. */
df_layer *df_dropout_layer(float rate);
/* Seeds the mask from another i32 scalar variable (e.g. the optimizer's
 * iteration counter, df_optimizer_state), with a salt, for the rows of a
 * larger batch starting at first_row (df_dropout_rows; 0 for the whole batch). */
df_status df_dropout_layer_set_seed(df_layer *l, df_variable *seed, uint64_t salt, int64_t first_row);
/* Weight tying: logits = x @ embeddings^T (+ bias (V)) with the Embedding
 * layer's own matrix (GPT-2's and nanoGPT's output head). It owns only its
 * bias, so the matrix is listed, saved and counted once (the summary shows
 * the head's bias alone) and its gradient sums both uses. The embedding
 * must belong to the same model and be built first (it comes earlier):
 * df_model_add refuses the head (DF_ERR_ARG) when it is not in that model. */
df_layer *df_tied_output_layer(df_layer *embedding, bool use_bias);
/* LayerNormalization over the last axis (df_layer_norm, PyTorch's and
 * Keras' definition with epsilon, e.g. 1e-5 as nn.LayerNorm): weights gamma
 * (C) ones and beta (C) zeros, named "layer_normalization/gamma" / "/beta". */
df_layer *df_layer_norm_layer(float epsilon);

/* A custom layer: a struct of your own (user) and callbacks.
 *
 *      static df_status scale_build(df_layer *l, int ndim, const int64_t *in_shape, void *user) {
 *          return df_layer_add_weight(l, "scale", DF_F32, 1, &in_shape[ndim - 1],
 *                                     df_init_ones(), true) ? DF_OK : DF_ERR_NOMEM;
 *      }
 *      static df_node *scale_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user) {
 *          return df_mul(g, x, df_var(g, df_layer_weight(l, "scale")));
 *      }
 *      static const df_layer_def scale_def = {.type = "Scale", .base_name = "scale",
 *                                             .build = scale_build, .call = scale_call};
 *      df_model_add(m, df_custom_layer(&scale_def, NULL));
 */
typedef struct df_layer_def {
    const char *type;        /* shown in the summary, e.g. "Dense" */
    const char *base_name;   /* the layer's name in a model: base, base_1, ...; e.g. "dense" */
    /* Creates the variables (df_layer_add_weight) for an input of this shape
     * (DF_DYNAMIC where open). NULL: no variables. */
    df_status (*build)(df_layer *l, int ndim, const int64_t *input_shape, void *user);
    /* Adds the layer's nodes to g; returns the output (NULL on error, with
     * the graph's error set). */
    df_node *(*call)(df_layer *l, df_graph *g, df_node *x, bool training, void *user);
    /* The output shape for an input shape (returns the output rank). NULL:
     * the input's shape. */
    int (*output_shape)(const df_layer *l, int ndim, const int64_t *input_shape, int64_t *out, void *user);
    /* Zeroes carried state (df_layer_reset_states). NULL: no state. */
    void (*reset_states)(df_layer *l, void *user);
    /* Frees user when the layer is freed. NULL: user is not freed. */
    void (*free_user)(void *user);
    /* Optional pair, for a layer whose call starts with an affine map of the
     * input's last axis (x @ kernel + bias): project adds that map for any
     * (..., in) node, call_projected the rest of the call on its result. A
     * model folds an Embedding just before such a layer into one lookup
     * (df_embedding_layer). */
    df_node *(*project)(df_layer *l, df_graph *g, df_node *x, void *user);
    df_node *(*call_projected)(df_layer *l, df_graph *g, df_node *projected, bool training, void *user);
    /* Optional, for a layer that carries state from call to call: its state
     * variables for a batch size and slot, created (zeros) on first use; the
     * count (filling up to max entries), or -1 on error (df_error set). */
    int (*state_variables)(df_layer *l, int64_t batch, int slot, df_variable **out, int max, void *user);
} df_layer_def;
/* def must outlive the layer (a static). NULL when out of memory. */
df_layer *df_custom_layer(const df_layer_def *def, void *user);
/* The definition and user pointer a layer was made with (NULL for NULL). */
const df_layer_def *df_layer_definition(const df_layer *l);
void *df_layer_user(const df_layer *l);
/* Inside build: a variable "<layer>/<name>" of this shape, initialised from
 * the model's RNG; trainable ones are listed by df_model_variables. Owned by
 * the layer, which holds up to DF_LAYER_MAX_WEIGHTS. NULL on error
 * (df_last_error names the layer). */
#define DF_LAYER_MAX_WEIGHTS 32
df_variable *df_layer_add_weight(df_layer *l, const char *name, df_dtype dtype, int ndim, const int64_t *shape,
                                 df_init init, bool trainable);
/* The layer's variable with the short name ("kernel"), NULL if none. */
df_variable *df_layer_weight(const df_layer *l, const char *name);
/* Gives the weight with the short name (e.g. "embeddings") the full
 * variable name full_name instead of "<layer>/<name>", e.g. to read
 * checkpoints of a model named by hand; df_layer_weight still finds it by
 * its short name. Before the layer is built (else DF_ERR_STATE). */
df_status df_layer_set_weight_name(df_layer *l, const char *name, const char *full_name);
/* All of the layer's variables in creation order; returns the count and
 * fills up to max entries. */
int df_layer_weights(const df_layer *l, df_variable **out, int max);

/* Adds the layer's nodes to g, which is being traced; builds the layer on
 * its first call from x's shape. A later call on an input whose last
 * dimension differs from the built one fails the graph naming the layer and
 * both shapes. NULL on error (the graph's error says why); NULL x gives NULL. */
df_node *df_layer_call(df_layer *l, df_graph *g, df_node *x, bool training);
/* df_layer_call with the state slot (0 .. DF_MAX_STATE_SLOTS-1) a stateful
 * layer reads and carries. */
df_node *df_layer_call_slot(df_layer *l, df_graph *g, df_node *x, bool training, int slot);
/* Inside a layer's call: the state slot it is being traced for. */
int df_layer_state_slot(const df_layer *l);
/* The layer's carried state variables for (batch, slot), created (zeros) on
 * first use; 0 for a layer without state, -1 on error (df_last_error). */
int df_layer_state_variables(df_layer *l, int64_t batch, int slot, df_variable **out, int max);
/* Builds the variables now for an input of this shape (DF_DYNAMIC where
 * open), as Keras' layer.build(input_shape); a built layer is DF_ERR_STATE.
 * A layer outside any model needs an RNG first (df_layer_set_rng). */
df_status df_layer_build(df_layer *l, int ndim, const int64_t *input_shape);
/* The RNG random initialisers draw from (a model sets its own on add). The
 * RNG must outlive the build. */
void df_layer_set_rng(df_layer *l, df_rng *rng);
/* Names a layer before it is added to a model (default: the Keras name). */
df_status df_layer_set_name(df_layer *l, const char *name);
const char *df_layer_name(const df_layer *l);
const char *df_layer_type(const df_layer *l);
bool df_layer_built(const df_layer *l);
/* Elements in all of the layer's variables (Keras' "Param #"). */
int64_t df_layer_param_count(const df_layer *l);
/* Zeroes a stateful layer's carried state (Keras reset_states); others: no-op. */
void df_layer_reset_states(df_layer *l);
/* Frees a layer that is not in a model (a model frees its own). */
void df_layer_free(df_layer *l);

/* A model: layers in the order added, names unique within it ("dense",
 * "dense_1", ...), one RNG (seeded with seed) for their initialisers. */
df_model *df_model_new(const char *name, uint64_t seed);
/* Frees the model, its layers and their variables. */
void df_model_free(df_model *m);
/* Takes ownership of l (also on error: then l is freed) and names it; a
 * name already used in the model is DF_ERR_ARG, and so is a tied output
 * head whose embedding is not in m. A NULL l is DF_ERR_ARG with the reason
 * its constructor gave ("df_model_add: null layer: Dense: ..."). After
 * df_model_compile it is DF_ERR_STATE: add every layer first. */
df_status df_model_add(df_model *m, df_layer *l);
/* Sequential use: the layers one after another on x (an Embedding folded
 * into a recurrent layer after it, see df_embedding_layer), in state slot
 * DF_STATE_MAIN. */
df_node *df_model_call(df_model *m, df_graph *g, df_node *x, bool training);
/* The same in another state slot (0 .. DF_MAX_STATE_SLOTS-1). */
df_node *df_model_call_slot(df_model *m, df_graph *g, df_node *x, bool training, int slot);
/* Builds every layer now for a model input of this shape (e.g. {64,
 * DF_DYNAMIC} for batch 64, any sequence length), passing each layer's
 * output shape to the next; built layers are checked, not rebuilt. */
df_status df_model_build(df_model *m, int ndim, const int64_t *input_shape);
int df_model_layer_count(const df_model *m);
df_layer *df_model_layer(const df_model *m, int i);
/* The trainable variables of all layers in layer order (Keras'
 * model.trainable_variables); returns the count, fills up to max entries. */
int df_model_variables(const df_model *m, df_variable **out, int max);
/* Every layer variable, trainable or not, in layer order (Keras'
 * model.weights): what df_model_save writes besides the optimizer. */
int df_model_weights(const df_model *m, df_variable **out, int max);
/* What the model carries from one call to the next for (batch, slot): each
 * stateful layer's state variables (h, then c for an LSTM), created (zeros)
 * on first use so that a checkpoint can restore them before any trace, and
 * a Dropout layer's own step counter. With df_model_weights, what df_fit
 * needs in its variables to resume inside an epoch bit for bit. Returns the
 * count (filling up to max entries), -1 on error (df_last_error). */
int df_model_state_variables(df_model *m, int64_t batch, int slot, df_variable **out, int max);
int64_t df_model_param_count(const df_model *m);
/* Zeroes the carried state of every layer, in every slot and batch size. */
void df_model_reset_states(df_model *m);
/* Keras' model.summary(): one row per layer ("name (Type)", output shape
 * with None for open dims, Param #), then Total / Trainable / Non-trainable
 * params with thousands separators. An unbuilt layer shows "?" and 0. The
 * name column is Keras' 27 characters, wider for a longer "name (Type)". */
void df_model_summary(const df_model *m, FILE *out);
/* The same with every output's batch dimension (axis 0, open or not) shown
 * as batch (> 0), as Keras shows a model whose Input has a batch_size. */
void df_model_summary_batch(const df_model *m, int64_t batch, FILE *out);
/* Puts every layer variable (and, with opt, the optimizer's state: its
 * iteration counter and slots) into ck by name. The variables must outlive
 * the checkpoint's write (df_checkpoint_put_variable). */
df_status df_model_save(const df_model *m, const df_optimizer *opt, df_checkpoint *ck);
/* Restores every variable by name (and with opt the optimizer's state,
 * creating its slots). The model must be built. All entries are checked
 * before any variable changes: a missing name (DF_ERR_ARG), another dtype
 * (DF_ERR_DTYPE) or shape (DF_ERR_SHAPE) is an error naming the model, the
 * variable and both dtypes or shapes, and leaves every variable as it was. */
df_status df_model_restore(df_model *m, df_optimizer *opt, const df_checkpoint *ck);

/* Keras' model.compile: the optimizer and loss of the model's ready-made
 * steps, so a model trains with df_fit without a hand-written builder:
 *
 *      df_model_compile(m, df_adam_default(), DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
 *      df_fit_options o = {.train_step = df_model_train_step(m), .n_inputs = 2, ...};
 *
 * The steps take (x, y): y are i32 class ids of logits' shape without the
 * last axis (cross-entropy from logits, the mean over all positions), or f32
 * values of the predictions' shape (mean squared error; another shape fails
 * the step with DF_ERR_SHAPE naming both, it is not broadcast). The
 * optimizer is not owned. Compile once, before making steps (a second compile after that is
 * DF_ERR_STATE: traced steps keep what they read). */
typedef enum df_loss {
    DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY = 1,
    DF_LOSS_MEAN_SQUARED_ERROR = 2
} df_loss;
df_status df_model_compile(df_model *m, df_optimizer *opt, df_loss loss);
/* Traced functions whose first output is the scalar loss: the train step
 * (training mode, state slot DF_STATE_MAIN) also applies the optimizer to
 * every trainable variable; the eval step (inference mode) changes no
 * weight and carries its own state (slot DF_STATE_EVAL). NULL before
 * df_model_compile (df_last_error says so). Each call makes a new function
 * (its own traces): keep the one you train with; the caller frees each with
 * df_function_free, before the model. */
df_function *df_model_train_step(df_model *m);
df_function *df_model_eval_step(df_model *m);

/* ---------------------------------------------------------------- runtime */

/* Number of threads used by kernels and OpenBLAS (one OpenMP pool). */
int df_num_threads(void);
void df_set_num_threads(int n);

/* Matrix products (matmul and the cells' products) run on dagflow's own
 * GEMM/GEMV kernels, AVX-512, AVX2+FMA or portable C by what the CPU has
 * (checked at run time; the library is built without -march), wherever they
 * are at least as fast as OpenBLAS at that shape, else on OpenBLAS. Their
 * results do not depend on the number of threads. The environment variable
 * DF_GEMM_ISA, read once at the first product, forces one path for every
 * product of the process:
 *   DF_GEMM_ISA=avx512 | avx2 | portable   dagflow's kernels of that level
 *                                          (a level the CPU lacks: the next
 *                                          lower one it has)
 *   DF_GEMM_ISA=openblas                   OpenBLAS only
 *   unset, auto (or anything else)         the per-shape choice above
 * for tests and for comparing paths; results agree to rounding, not bits.
 * OpenBLAS is chosen only where its kernels are as wide as dagflow's (e.g.
 * its AVX-512 ones on an AVX-512 CPU): on a CPU it does not know (it then
 * runs SSE3 "Prescott" or AVX2 kernels) dagflow's kernels take every product,
 * so speed does not depend on OpenBLAS knowing the CPU. */

/* ------------------------------------------------- threads on a busy machine */

/* df_set_num_threads (or OMP_NUM_THREADS) is an upper bound. A parallel
 * region ends when its slowest thread does, so when other processes keep the
 * cores busy, a thread that waits for a core stalls the others (char-rnn
 * sample ran 8x slower on 2 threads than on 1 next to one busy process). The
 * library's parallel kernels (GEMM/GEMV, LSTM, GRU, SimpleRNN) time their
 * threads' CPU against wall time; when a thread misses a quarter of it over
 * 20 ms of regions, they run on one thread for 0.1 s (doubling up to 2 s
 * while the load lasts), then try the full count again. Results do not change
 * (they are the same bits on any thread count). DF_TEAM_ADAPT=0 in the
 * environment (read once) turns this off. */

/* ----------------------------------------------------------- saved graphs */

/* A traced graph written down with the variables it reads, to be loaded and
 * run by a program that has none of the code that built it (TensorFlow's
 * SavedModel concrete function, torch.export):
 *
 *      df_tensor_spec sig = {DF_I32, 2, {1, 1}};
 *      df_saved_meta vocab = {"vocab", chars, n_chars};
 *      df_function_export(step, 1, &sig, "model.dfg", 1, &vocab);
 *      ...                                   // elsewhere, dagflow.h only:
 *      df_saved *s;
 *      df_saved_load("model.dfg", &s);
 *      df_saved_run(s, &ids, 1, &logits, 1); // state variables carried inside
 *
 * What is carried: every node the graph's outputs and side effects need, in
 * order, after the passes (CSE, folding, fusion) ran, with each op's name,
 * version and attributes; shapes with DF_DYNAMIC dims left open; the inputs
 * (placeholders, in order) and outputs; every variable a node reads or
 * writes (name, dtype, shape, value at export); the passes to run; and
 * key/value metadata blobs (e.g. a char model's vocabulary). Side effects
 * are kept: assign, assign_add and the optimizers' apply_* ops, with their
 * slots and step counters as variables, so an exported train step continues
 * training where it was exported. Loading runs shape inference again, the
 * passes, the planner and the executor as for a graph built in place, so
 * results are bit-identical to the live graph's on the same machine.
 *
 * What is not carried: builder callbacks and anything C code did around a
 * run (a fit loop, callbacks, learning-rate schedules computed in C, the
 * data pipeline); dead nodes; the function's other traces (a file holds one
 * signature: e.g. char-gpt's prefill trace stays behind, and its metadata
 * tells a sampler how to do without it); gradient-transform ops with
 * process-local state, i.e. the MPI all-reduce ops (export refuses a graph
 * containing one with DF_ERR_ARG naming it); the variables' df_variable
 * objects themselves (the loaded ones are new, owned by the df_saved); the
 * df_function's cached plans. Files are read on
 * little-endian hosts only (DF_ERR_UNSUPPORTED elsewhere).
 *
 * File (little-endian): "DFGRAPH\0", u32 format version (1), u32 flags (0),
 * u64 payload bytes, the payload, then the XXH64 (seed 0) of everything
 * before it. The payload: u32 passes; the op table (u32 count, then name and
 * u32 version each); the variables (u32 count, then name, u32 dtype, u32
 * rank, i64 dims, the values); the nodes in order (u32 count, then u32 op
 * (a table index), u32 input count and u32 node indices (earlier nodes),
 * u32 dtype, u32 rank, i64 dims (-1 open), name, u32 attribute bytes and the
 * attributes, then a u32 variable index for ops that read or write one, or a
 * constant's values); the outputs (u32 count, node indices); the pairs of
 * nodes whose shapes the trace took as equal (u32 count, 2 x u32 each); the
 * metadata (u32 count, then key, u64 bytes and the bytes). A name is u32
 * bytes then the bytes, no NUL. Files are written like checkpoints (temp
 * file, fsync, rename, fsync of the directory): a failed write, fsync or
 * rename (a full disk) is DF_ERR_IO naming the step, with the previous file
 * at path untouched and no temporary file left; a failed fsync of the
 * directory after the rename is DF_ERR_IO too (the file is in place but may
 * not survive a power cut).
 *
 * Loading checks everything and answers DF_ERR_FORMAT naming what is wrong
 * and where (byte offset, node): another magic, a newer format version or op
 * version, a bad checksum, truncated or trailing bytes, an op this library
 * does not have, attributes of another size, a reference to a later node or
 * a missing variable, bad dtypes, ranks or dims, and a recorded shape that
 * shape inference does not reproduce. A file that does not open is
 * DF_ERR_IO. A file that loads is safe to run: df_saved_run checks its
 * inputs, and an id or position out of range is an error status, not a
 * crash (fuzz/fuzz_saved.c runs every file it loads). */
typedef struct df_saved df_saved;
typedef struct df_saved_meta {
    const char *key;                  /* NUL-terminated, unique in a file */
    const void *data;
    size_t size;
} df_saved_meta;

/* Writes g (compiled now if it is not) to path with n_meta metadata blobs. */
df_status df_graph_export(df_graph *g, const char *path, int n_meta, const df_saved_meta *meta);
/* Writes f's trace for this signature (traced now if f has not run with it;
 * a function made with df_function_new_signature takes only its own). */
df_status df_function_export(df_function *f, int n_inputs, const df_tensor_spec *signature, const char *path,
                             int n_meta, const df_saved_meta *meta);

/* Loads a saved graph; *out is NULL on error. */
df_status df_saved_load(const char *path, df_saved **out);
/* The same from bytes in memory (copied). */
df_status df_saved_load_memory(const void *data, size_t len, df_saved **out);
void df_saved_free(df_saved *s);
/* The inputs' and outputs' dtypes and shapes (DF_DYNAMIC where open); the
 * arrays stay valid until df_saved_free. Any pointer may be NULL. */
df_status df_saved_signature(const df_saved *s, int *n_inputs, const df_tensor_spec **inputs, int *n_outputs,
                             const df_tensor_spec **outputs);
/* An input's name ("input0", ... for traced functions); "" out of range. */
const char *df_saved_input_name(const df_saved *s, int i);
/* Runs the graph as df_graph_run does: outputs are views valid until the
 * next run or df_saved_free. Variables keep what the run wrote. */
df_status df_saved_run(df_saved *s, const df_tensor *inputs, int n_inputs, df_tensor *outputs, int n_outputs);
/* Puts every variable back to its value in the file (e.g. an RNN's state). */
df_status df_saved_reset(df_saved *s);
/* The metadata blob stored under key (DF_ERR_ARG when there is none); the
 * view is valid until df_saved_free. */
df_status df_saved_metadata(const df_saved *s, const char *key, const void **data, size_t *size);
/* The loaded variables, by index (0 .. count-1) or by name; NULL if none. */
int df_saved_variable_count(const df_saved *s);
df_variable *df_saved_variable(const df_saved *s, int i);
df_variable *df_saved_find_variable(const df_saved *s, const char *name);
/* The loaded graph (compiled), for stats and inspection; owned by s. */
df_graph *df_saved_graph(const df_saved *s);

/* --------------------------------------------- mixed precision (bf16 products)
 * Under DF_PRECISION_BF16 the big products of a graph run take bf16 operands
 * (8-bit significand, rounded to nearest even as they are packed) and sum
 * them in fp32, on CPUs with AVX512_BF16 (vdpbf16ps: Intel Cooper Lake,
 * Sapphire Rapids and later, AMD Zen 4 and later): matmul and batch_matmul
 * (forward and the products of their gradients) and the fused cells'
 * recurrent products (lstm, lstm_grad and the LSTM's d w_rec, gru, gru_grad,
 * simple_rnn and its grad: the recurrent weight converted once per op call
 * into packed bf16 panels, the state converted as it is packed), and the
 * block products of the fused attention ops (attention, attention_qkv:
 * q k^T and P v, and their gradients' five; each block's operands
 * converted as they are packed, where the AVX-512 blocks apply: d, dv <=
 * 64). Everything else stays fp32: the variables (master weights),
 * optimizer slots, gate nonlinearities, the cell state, layer norms,
 * softmax (the attention's too, with its running max and sum, and its
 * output and gradient accumulators), losses, checkpoints (which hold the
 * fp32 variables whatever the precision), and one-row products and cells at batch 1 (generation: converting the weight
 * on every call would cost more than the product saves).
 * Results are deterministic as in fp32: the same bits for the same inputs
 * and thread count, and on any thread count. Each term of a product is off
 * by at most 2^-7 of itself (two roundings to 8 significant bits), so an
 * element is within (2^-7 + K 2^-24) sum_k |a b| of the exact sum; on
 * random data the errors partly cancel and a product agrees with fp32 to
 * about 2^-9 of its magnitude (tests/test_bf16). gradcheck stays fp32.
 *
 * On a CPU without AVX512_BF16 (or an OS not saving the AVX-512 state)
 * asking for bf16 is DF_ERR_UNSUPPORTED, the message naming the missing
 * feature (df_precision_check); bf16 is not emulated.
 * DF_GEMM_ISA (the fp32 path) does not affect bf16 products. */
typedef enum df_precision { DF_PRECISION_FP32 = 0, DF_PRECISION_BF16 = 1 } df_precision;
/* DF_OK when p runs on this CPU, else DF_ERR_UNSUPPORTED (DF_ERR_ARG for an
 * unknown value). */
df_status df_precision_check(df_precision p);
/* The precision of graph runs (df_graph_run, df_function_call, df_fit's
 * steps) on the calling thread from now on, for a library user who runs
 * graphs directly; FP32 by default. Refused (and the setting kept) as
 * df_precision_check says. */
df_status df_set_precision(df_precision p);
df_precision df_get_precision(void);
/* The precision f's calls run at, whatever the thread's (df_fit: set it on
 * the train_step and eval_step functions). The traces are the same graphs:
 * only the kernels differ. Refused as df_precision_check says. */
df_status df_function_set_precision(df_function *f, df_precision p);

/* ------------------------------------------- generation: run-constant values
 *
 * A compiled graph (with DF_PASS_FOLD) keeps the values that depend only on
 * variables it does not write itself, e.g. an Embedding's table projected by
 * the next layer's kernel and bias, and recomputes them only when one of
 * those variables has changed since the last run (graph/memo.c). For that,
 * a matmul of gathered rows of such a variable, matmul(gather(E, ids), W)
 * [+ b], is rewritten as gather(E @ W [+ b], ids): the same bits (each row is
 * the same dot products in the same k order), and at batch 1 the only large
 * read per step is then the recurrent weight.
 *
 * Every write the library makes gives a variable a new version: its
 * initialisers, df_variable_assign, checkpoint restores, graph ops that
 * write it, and df_variable_tensor (its view is writable). Code that keeps a
 * pointer from df_variable_tensor and writes through it later calls
 * df_variable_touch after writing. */
uint64_t df_variable_version(const df_variable *v);
void df_variable_touch(const df_variable *v);
/* How many runs of g skipped its run-constant nodes, and how many nodes
 * each such run skips (0, 0 when it has none). */
df_status df_graph_memo_stats(const df_graph *g, int64_t *runs_reused, int *nodes);

/* Batch-1 products on packed weights (src/gemv_packed.c): y (n) = x (K) @
 * W (K,n), W row-major with leading dimension ldw, packed once into column
 * panels, fp32 (the bits of dagflow's AVX-512 GEMV) or bf16 (products on
 * bf16 weights and x, fp32 sums). A batch-1 LSTM step reads its recurrent
 * weight this way: fp32 when dagflow's AVX-512 GEMV is the product's path,
 * bf16 under DF_PRECISION_BF16 (generation's `--precision bf16`).
 * df_gemv_panels_pack writes df_gemv_panels_bytes(p, K, n) bytes (64-aligned
 * memory); df_gemv_panels computes columns [j0, j1), j0 a multiple of 16,
 * and the bits of a column do not depend on the range. All are
 * DF_ERR_UNSUPPORTED on a CPU without AVX-512 (fp32) or AVX512_BF16 (bf16),
 * the message naming the feature. */
size_t df_gemv_panels_bytes(df_precision p, int64_t K, int64_t n);
df_status df_gemv_panels_pack(df_precision p, int64_t K, int64_t n, const float *W, int64_t ldw, void *panels);
df_status df_gemv_panels(df_precision p, int64_t K, int64_t n, const float *x, const void *panels, int64_t j0, int64_t j1,
                         float *y);
/* The panels of W at a variable's version (df_variable_version), packed on
 * the first call and kept while later calls ask for the same precision,
 * storage, shape and version (up to 32 weights, the least recently used
 * dropped first). NULL, with the error set, when unsupported or out of
 * memory. */
const void *df_gemv_panels_cached(df_precision p, const float *W, int64_t K, int64_t n, int64_t ldw, uint64_t version);

#ifdef __cplusplus
}
#endif
#endif /* DAGFLOW_H */
