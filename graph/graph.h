/* graph.h — internal structures shared by graph/ and ops/: nodes, op
 * definitions and graphs. Users see only the opaque types in dagflow.h. */
#ifndef DF_GRAPH_H
#define DF_GRAPH_H

#include "../src/base.h"
#include "../src/variable.h"

typedef struct df_op_def df_op_def;

/* An op's attributes, named: each op declares a struct
 *     DF_ATTRS_BEGIN
 *     typedef struct { int64_t begin[DF_MAX_DIMS], shape[DF_MAX_DIMS]; } pad_attrs;
 *     DF_ATTRS_END
 * sets .attrs_size = sizeof(pad_attrs) in its df_op_def, passes a filled one
 * to df_node_new and reads it back as DF_ATTRS(n, pad_attrs)->begin. No
 * padding means an initialiser such as (pad_attrs){.begin = ...} fixes every
 * byte, so equal attributes have equal bytes (a struct that would need
 * padding spells it as a member, `uint32_t unused;`). Infer may normalise
 * attributes in place (an axis of -1 becomes its index). */
#define DF_ATTRS_BEGIN _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic error \"-Wpadded\"")
#define DF_ATTRS_END _Pragma("GCC diagnostic pop")
#define DF_ATTRS(n, type) ((type *)(n)->attrs)

/* A fused chain: instruction k computes code(a, b), where code is an op's
 * df_op_def.elementwise, an operand >= 0 is input a of the fused node and
 * -(j+1) is the result of instruction j (b is unused for one-input codes).
 * The last instruction's result is the node's output. */
#define DF_FUSE_MAX 16
DF_ATTRS_BEGIN
typedef struct df_fused_program {     /* the fused op's attributes */
    int n;
    struct { uint8_t code; int8_t a, b; } ins[DF_FUSE_MAX];
} df_fused_program;
DF_ATTRS_END

struct df_node {
    int id;                       /* creation order == a topological order */
    const df_op_def *op;
    df_graph *graph;
    int n_in;
    df_node **in;
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    int64_t numel;
    void *attrs;                  /* the op's attribute struct (op->attrs_size bytes of graph
                                   * memory; NULL when the op has none): read it with DF_ATTRS */
    size_t aux_bytes;             /* op-private workspace kept as long as the output */
    const char *name;
    /* Dynamic dimensions (graph/dynamic.c). A dimension that follows a
     * DF_DYNAMIC input dimension has its bit in dyn; tracing infers every
     * node twice, at DF_TRACE_DIM (shape) and at DF_TRACE_DIM_ALT
     * (alt_shape), and a dimension is dynamic where the two differ. */
    unsigned dyn;
    int64_t alt_shape[DF_MAX_DIMS];
    int64_t alt_numel;
    int64_t traced_shape[DF_MAX_DIMS];  /* shape with DF_DYNAMIC (-1) at dynamic dims: what users see */
    bool at_alt;                  /* tracing: shape and alt_shape are swapped for a second inference */
    unsigned shape_only;          /* inputs (bit i) read only for their shape: no data, no liveness */
    /* filled by the planner */
    void *data;
    void *aux;
    int last_use;                 /* schedule position of the last reader */
    double profile_seconds;       /* wall time summed over profiled runs */
    df_node *inplace_of;          /* planner: computes into this node's buffer */
    int sched_pos;                /* -1 when dead (not scheduled) */
    bool memo, memo_root;         /* graph/memo.c: run-constant with work; read by the rest (own buffer) */
};

/* Gradcheck: one small case per entry; inputs get random values in [lo, hi]
 * (i32 inputs: integers in [0, hi)). */
typedef struct df_gradcheck_input {
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    float lo, hi;
} df_gradcheck_input;

typedef struct df_gradcheck_case {
    const char *desc;
    int n_inputs;
    df_gradcheck_input inputs[4];
    df_node *(*build)(df_graph *g, df_node **in);
    float atol, rtol;             /* 0 = defaults */
} df_gradcheck_case;

enum {
    DF_OP_VIEW = 1 << 0,          /* output aliases input 0's buffer (same bytes) */
    DF_OP_SIDE_EFFECT = 1 << 1,   /* writes a variable: runs after its non-dependents */
    DF_OP_EXTERNAL = 1 << 2,      /* data lives outside the arena (variables, constants) */
    DF_OP_INPUT = 1 << 3,         /* placeholder: fed by the caller on each run */
    DF_OP_NO_CSE = 1 << 4,        /* never merged or folded by the passes (e.g. dropout's masks) */
    DF_OP_CONSTANT = 1 << 5,      /* value fixed at build time, in n->data: what folding makes nodes into */
    DF_OP_FUSED = 1 << 6,         /* runs the df_fused_program in n->pa: what fusion makes a chain into */
    DF_OP_ELEMENTWISE = 1 << 7,   /* output element i reads only element i of each input of its size
                                   * (and scalars): may compute into such an input's buffer */
    DF_OP_LEAF = 1 << 8,          /* takes no inputs (placeholder, variable, constant) */
};

/* What one node costs, for dagflow-bench (tools/dagflow_bench.c): floating-
 * point operations (a multiply-add counts 2; exp, tanh and the like count 1)
 * and the bytes it must at least read and write (inputs, output and the aux
 * it writes; reused reads from cache count once). */
typedef struct df_op_cost { double flops, bytes; } df_op_cost;

/* Bytes of all inputs plus the output: the traffic of a one-pass op. */
static inline double df_cost_io_bytes(const df_node *n)
{
    double b = (double)n->numel * 4;
    for (int i = 0; i < n->n_in; i++) b += (double)n->in[i]->numel * 4;
    return b;
}

/* How dagflow-bench builds a graph of one op from the command line:
 * `--shape` gives n_inputs tensor shapes (random f32 in [lo, hi]; an i32
 * input holds ids in [0, dim ids_axis of input 0)), `--attr k=v` the values
 * of the named attributes (a NULL default makes one required), and build
 * calls the op's public constructor. shapes are the suite's standard cases,
 * small, seed-sized and large: "SHAPES[ k=v ...]" as on the command line. */
#define DF_BENCH_MAX_ATTRS 4
typedef struct df_bench_def {
    int n_inputs;
    df_dtype dtypes[4];
    int ids_axis;
    float lo, hi;                 /* f32 inputs' range; both 0 means [-1, 1] */
    const char *attrs[DF_BENCH_MAX_ATTRS];
    const char *defaults[DF_BENCH_MAX_ATTRS];
    df_node *(*build)(df_graph *g, df_node **in, const double *attrs);
    const char *shapes[3];
} df_bench_def;

/* How an op's attribute struct is written into a saved graph
 * (graph/saved_*.c): plain bytes (DF_ATTRS_BEGIN/END forbid padding) unless
 * it holds a pointer, which is process memory. */
typedef enum df_op_attrs_kind {
    DF_ATTRS_PLAIN = 0,           /* the bytes as they are */
    DF_ATTRS_VARIABLE,            /* starts with the df_variable * the op reads or writes (df_update_attrs) */
    DF_ATTRS_CONSTANT,            /* a pointer cleared once built; the value is the node's data */
    DF_ATTRS_FUSED,               /* a df_fused_program, whose codes are DF_EW_* fusion codes */
    DF_ATTRS_UNSAVED,             /* process-local state (the MPI all-reduce): cannot be saved */
} df_op_attrs_kind;

/* Inputs of a node with any number of them (concat, the all-reduce). */
#define DF_MAX_INPUTS (1 << 20)

struct df_op_def {
    const char *name;
    unsigned flags;
    /* Sets n->dtype/ndim/shape (and aux_bytes) from inputs and attributes;
     * returns a status with a message naming the op and shapes on mismatch. */
    df_status (*infer)(df_node *n);
    /* Computes n->data from inputs (may be NULL for views and leaves). Report
     * errors from the calling thread, not inside an OpenMP region: the
     * message buffer is per thread. */
    df_status (*forward)(df_node *n);
    /* Builds gradient nodes: dx[i] for each input with need[i]; leaves NULL
     * for no gradient. NULL backward = not differentiable. */
    df_status (*backward)(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx);
    /* Cases for the registry-wide gradcheck, terminated by a NULL build. */
    const df_gradcheck_case *gradcheck;
    /* Why the op has no gradcheck cases (NULL when it has them): "leaf: ...",
     * "no gradient: ...", "gradient op: checked through X's cases" (tests/
     * test_ops.c checks such an op appears in some case's backward), or
     * where else it is tested. Every op sets exactly one of the two. */
    const char *no_gradcheck;
    /* Fusion code of an elementwise f32 op the fusion pass may merge (a
     * DF_EW_* of ops/elementwise.h; 0 otherwise). The pass copies it into the
     * fused op's program without reading it. */
    int elementwise;
    /* Bytes of the op's attribute struct (0: the op has none). df_node_new
     * copies that many into graph memory; CSE hashes and compares them as
     * bytes, so the struct is declared between DF_ATTRS_BEGIN and
     * DF_ATTRS_END, which make any padding a compile error. */
    size_t attrs_size;
    /* The node's FLOPs and bytes (NULL: no cost model; dagflow-bench then
     * prints "-" for rates that need it). */
    void (*cost)(const df_node *n, df_op_cost *out);
    /* How dagflow-bench builds the op (NULL: not benchmarked on its own). */
    const df_bench_def *bench;
    /* Version of the op's meaning and attribute layout, written into saved
     * graphs (graph/saved_*.c), which refuse a file made by a newer version;
     * 0 counts as 1. Raise it when attributes change. */
    int version;
    /* How many inputs the op's constructors give it (elementwise ops: their
     * table's arity; DF_OP_LEAF ops none). Saved graphs refuse other counts
     * rather than let infer read inputs that are not there. */
    int min_inputs, max_inputs;
    /* How the attribute struct is written into a saved graph (pointers are
     * process memory), and which of its bytes are C bools (bit i = byte i),
     * which a reader must check are 0 or 1. */
    df_op_attrs_kind attrs_kind;
    uint32_t bool_attrs;
};


typedef struct df_output_ref { df_node *node; } df_output_ref;

/* Whether input i of n is read only for its shape (bits beyond the mask's
 * width are inputs of many-input ops such as global_norm_scale: read). */
static inline bool df_input_shape_only(const df_node *n, int i)
{
    return i < (int)(8 * sizeof n->shape_only) && (n->shape_only >> i & 1);
}

struct df_tape {
    df_graph *graph;
    int first_id, end_id;         /* recorded nodes: ids in [first_id, end_id) */
    df_tape *next;
};

struct df_graph {
    df_arena arena;               /* nodes, input arrays, names, constants */
    df_node **nodes;
    int n_nodes, cap_nodes;
    df_node **placeholders;
    int n_placeholders, cap_placeholders;
    df_node **outputs;
    int n_outputs, cap_outputs;
    df_tape *tapes;
    df_status status;
    char error[512];
    /* compiled state */
    bool compiled;
    df_node **schedule;
    int n_sched;
    void *memory;                 /* the one arena carved into tensors */
    size_t arena_bytes, tensor_bytes;
    bool profiling;
    int64_t profiled_runs;
    unsigned passes;              /* DF_PASS_* enabled (set at creation: all) */
    /* dynamic dimensions: compiled once, planned per concrete input shape */
    bool dynamic;                 /* a placeholder has a DF_DYNAMIC dimension */
    bool concrete;                /* node shapes are a call's sizes (not the trace's) */
    struct df_instance *instances;/* plans by concrete shape, most recent first */
    int n_instances, max_instances, plans_made;
    df_node **assumed;            /* pairs whose shapes the trace took as equal (dynamic dims) */
    int n_assumed, cap_assumed;   /* in nodes: 2 per pair */
    int stats_cse, stats_folded, stats_fused_chains, stats_fused_nodes, stats_inplace;
    struct df_memo *memo;         /* graph/memo.c: run-constant values kept between runs (NULL: none) */
};

/* Creates a node of op with inputs and attributes (op->attrs_size bytes,
 * copied; NULL = all zero) and runs its shape inference. Returns NULL (and
 * records the error in g) on failure or if any input is NULL. */
df_node *df_node_new(df_graph *g, const df_op_def *op, int n_in, df_node *const *in, const void *attrs);
/* graph/memo.c: the gather-hoisting rewrite (returns how many), planning
 * the kept run-constant values at compile, and the run-time checks: whether
 * this run may skip the memo nodes, what to record after a complete run,
 * forgetting after a failed one, the version bump of what a side-effect
 * node wrote. */
int df_graph_hoist_gathers(df_graph *g);
df_status df_graph_plan_memo(df_graph *g);
bool df_memo_reusable(df_graph *g);
void df_memo_ran(df_graph *g);
void df_memo_forget(df_graph *g);
void df_memo_node_wrote(const df_node *n);
/* Runs the enabled rewrite passes (graph/passes.c) before scheduling. */
void df_graph_run_passes(df_graph *g);
/* Records the first error of a graph; returns s. */
df_status df_graph_fail(df_graph *g, df_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies bytes into graph-owned memory. */
void *df_graph_alloc(df_graph *g, size_t bytes);
/* Formats a node's shape for messages. */
const char *df_node_shape_str(const df_node *n, char *buf, size_t len);
/* Error from an op's infer: "op 'matmul' (node 7 'name'): <message>". */
df_status df_op_error(df_node *n, df_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Normalises a possibly negative axis for rank ndim; -1 if out of range. */
int df_axis(int axis, int ndim);
/* A constant of shape filled with value. */
df_node *df_fill(df_graph *g, float value, int ndim, const int64_t *shape);

/* Sizes a DF_DYNAMIC dimension takes while tracing. Both are highly
 * composite (reshapes that split it still divide) and unlikely to equal a
 * static size; a node is dynamic where its shapes at the two differ. */
#define DF_TRACE_DIM 5040
#define DF_TRACE_DIM_ALT 55440

/* Same shape at both trace sizes (so at every size of the dynamic dims). */
bool df_node_same_shape(const df_node *a, const df_node *b);
/* Records that the trace relied on a and b having the same shape (it
 * skipped a reduction, fused them into one loop, ...). When either has a
 * dynamic dimension, every plan checks it: two dynamic input dimensions
 * traced at the same size may differ at run time. */
void df_graph_assume_same_shape(df_graph *g, df_node *a, df_node *b);
/* Runs n's shape inference at the trace sizes and (when an input is
 * dynamic) at the alternative ones, and records n's dynamic dimensions. */
df_status df_node_infer_traced(df_node *n);
/* Plans and activates g for the concrete shapes of inputs (a cached plan
 * when these shapes ran before). g is compiled and dynamic. */
df_status df_graph_specialize(df_graph *g, const df_tensor *inputs, int n_inputs);
/* Frees the cached plans of a dynamic graph. */
void df_graph_free_instances(df_graph *g);
/* The compiled trace of f for one signature (traced now if new), as a
 * call with inputs of these dtypes and shapes would run it (graph/function.c). */
df_status df_function_trace_for(df_function *f, const df_tensor *signature, int n_inputs, df_graph **out);
/* Plans memory for the current node shapes and allocates the arena
 * (graph/plan.c); used by compile and by each specialisation. */
df_status df_graph_place_tensors(df_graph *g);

#define DF_F32P(n) ((float *)(n)->data)
#define DF_I32P(n) ((int32_t *)(n)->data)

#endif
