/* test_passes.c — each compile pass changes the graph (counted) and never the
 * results: every test compares against the same graph compiled without it. */
#include <xxhash.h>
#include "helpers.h"
#include "model.h"
#include "../ops/registry.h"

/* Builds the same graph twice, compiles one with passes and one without,
 * runs both on the same inputs and returns the stats of the first. */
typedef df_node *(*builder)(df_graph *g, df_node *x);

static df_graph_stats compare_with_and_without(builder build, unsigned passes, const int64_t *shape, int ndim)
{
    df_graph *g[2] = {df_graph_new(), df_graph_new()};
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    float *xv = malloc((size_t)numel * sizeof *xv);
    for (int64_t i = 0; i < numel; i++) xv[i] = (float)((i * 7919) % 2001 - 1000) / 500.0f;
    df_tensor in = df_tensor_make(DF_F32, xv, ndim, shape), out[2];
    for (int k = 0; k < 2; k++) {
        df_graph_set_passes(g[k], k == 0 ? passes : 0);
        df_graph_output(g[k], build(g[k], df_placeholder(g[k], DF_F32, ndim, shape, "x")));
        cr_assert_eq(df_graph_run(g[k], &in, 1, &out[k], 1), DF_OK, "%s", df_last_error());
    }
    cr_expect_eq(df_tensor_numel(&out[0]), df_tensor_numel(&out[1]));
    cr_expect(memcmp(out[0].data, out[1].data, (size_t)df_tensor_numel(&out[0]) * sizeof(float)) == 0,
              "results differ with the passes on");
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g[0], &st), DF_OK);
    df_graph_free(g[0]);
    df_graph_free(g[1]);
    free(xv);
    return st;
}

/* tanh(x) computed twice and the constant 2 made twice: CSE keeps one each. */
static df_node *duplicated(df_graph *g, df_node *x)
{
    df_node *a = df_scale(g, df_tanh(g, x), 2.0f), *b = df_scale(g, df_tanh(g, x), 2.0f);
    return df_add(g, a, b);
}

Test(passes, cse_merges_identical_nodes_and_constants)
{
    df_graph_stats st = compare_with_and_without(duplicated, DF_PASS_CSE, SHAPE(3, 5), 2);
    cr_expect_eq(st.cse_merged, 3, "the second tanh, the second constant 2 and the second scale; got %d", st.cse_merged);
    cr_expect_eq(st.nodes, 5, "x, tanh, 2, scale, add are left; got %d", st.nodes);
}

/* exp(0.5) + 1 depends on constants only. */
static df_node *constant_subtree(df_graph *g, df_node *x)
{
    df_node *c = df_add(g, df_exp(g, df_scalar(g, 0.5f)), df_scalar(g, 1.0f));
    return df_mul(g, x, df_reshape(g, c, 1, SHAPE(1)));
}

Test(passes, constant_folding_computes_constant_subtrees_once)
{
    df_graph_stats st = compare_with_and_without(constant_subtree, DF_PASS_FOLD, SHAPE(4), 1);
    cr_expect_eq(st.constants_folded, 2, "exp and add; got %d", st.constants_folded);
}

/* sigmoid(-(x * 3 + 1)) * x: five elementwise nodes over one shape. */
static df_node *chain(df_graph *g, df_node *x)
{
    df_node *t = df_add(g, df_mul(g, x, df_scalar(g, 3.0f)), df_scalar(g, 1.0f));
    return df_mul(g, df_sigmoid(g, df_neg(g, t)), x);
}

Test(passes, fusion_merges_an_elementwise_chain_bit_identically)
{
    /* 70001 elements: several parallel blocks and a partial last block */
    df_graph_stats st = compare_with_and_without(chain, DF_PASS_FUSE, SHAPE(7, 10001), 2);
    cr_expect_eq(st.fused_chains, 1);
    cr_expect_eq(st.fused_nodes, 5, "mul, add, neg, sigmoid, mul; got %d", st.fused_nodes);
    cr_expect_eq(st.nodes, 4, "x, the two scalars and the fused node; got %d", st.nodes);
}

/* --------------------------------------------- fusion: every fusable op */

/* The inputs an op is defined on (every operand gets the same domain). */
typedef enum input_domain { ANY_REAL, POSITIVE, AWAY_FROM_ZERO } input_domain;

typedef struct fusable_case {
    const char *op;                                         /* its registry name */
    df_node *(*unary)(df_graph *g, df_node *x);
    df_node *(*binary)(df_graph *g, df_node *a, df_node *b);
    input_domain domain;
} fusable_case;

/* One entry per op with an elementwise code; the registry walk below fails
 * for a fusable op missing here, so an op added later gets a case. */
static const fusable_case fusable_cases[] = {
    {"add", NULL, df_add, ANY_REAL},         {"sub", NULL, df_sub, ANY_REAL},
    {"mul", NULL, df_mul, ANY_REAL},         {"div", NULL, df_div, AWAY_FROM_ZERO},
    {"neg", df_neg, NULL, ANY_REAL},         {"exp", df_exp, NULL, ANY_REAL},
    {"log", df_log, NULL, POSITIVE},         {"tanh", df_tanh, NULL, ANY_REAL},
    {"sigmoid", df_sigmoid, NULL, ANY_REAL}, {"relu", df_relu, NULL, ANY_REAL},
    {"step", df_step, NULL, ANY_REAL},       {"erf", df_erf, NULL, ANY_REAL},
    {"sqrt", df_sqrt, NULL, POSITIVE},       {"rsqrt", df_rsqrt, NULL, POSITIVE},
    {"abs", df_abs, NULL, ANY_REAL},         {"softplus", df_softplus, NULL, ANY_REAL},
    {"gelu", df_gelu, NULL, ANY_REAL},       {"gelu_tanh", df_gelu_tanh, NULL, ANY_REAL},
    {"maximum", NULL, df_maximum, ANY_REAL}, {"minimum", NULL, df_minimum, ANY_REAL},
    {"equal", NULL, df_equal, ANY_REAL},     {"less", NULL, df_less, ANY_REAL},
    {"greater", NULL, df_greater, ANY_REAL},
};

static const fusable_case *fusable_case_named(const char *name)
{
    for (size_t i = 0; i < sizeof fusable_cases / sizeof fusable_cases[0]; i++)
        if (strcmp(fusable_cases[i].op, name) == 0) return &fusable_cases[i];
    return NULL;
}

/* Element i of input `which`, deterministic and inside the domain. ANY_REAL
 * has exact zeros of both signs, where relu and step change branch. */
static float domain_value(input_domain d, int which, int64_t i)
{
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(which * 0x9e3779b9u);
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    float u = (float)(h >> 8) / 16777216.0f;                 /* [0, 1) */
    switch (d) {
    case POSITIVE: return 0.0625f + 8.0f * u;
    case AWAY_FROM_ZERO: return (h & 1 ? -1.0f : 1.0f) * (0.25f + 4.0f * u);
    case ANY_REAL: break;
    }
    if (i % 61 == 0) return 0.0f;
    if (i % 67 == 0) return -0.0f;
    return -4.0f + 8.0f * u;
}

/* in[0] = x and in[1] = y, both (7, 10001); in[2] = s, shape (1). */
enum { CHAIN_X, CHAIN_Y, CHAIN_S, CHAIN_INPUTS };
#define CHAIN_ROWS 7
#define CHAIN_COLS 10001    /* 70007 elements: many 256-element blocks, in parallel, and a partial last one */

typedef struct ew_chain {
    const char *desc;
    int elementwise_nodes;                                  /* all of them fuse into one node */
    df_node *(*build)(df_graph *g, const fusable_case *c, df_node *const *in);
} ew_chain;

/* A constant that keeps every domain: 0.75 x is positive, or away from 0, when x is. */
static df_node *shrink(df_graph *g, df_node *x) { return df_mul(g, x, df_scalar(g, 0.75f)); }

static df_node *op_then_neg(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->unary(g, in[CHAIN_X]));
}
static df_node *shrink_then_op(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return c->unary(g, shrink(g, in[CHAIN_X]));
}
static df_node *op_inside_a_chain(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_add(g, c->unary(g, shrink(g, in[CHAIN_X])), in[CHAIN_Y]);
}

static const ew_chain unary_chains[] = {
    {"neg(op(x))", 2, op_then_neg},
    {"op(x * 0.75)", 2, shrink_then_op},
    {"op(x * 0.75) + y", 3, op_inside_a_chain},
};

static df_node *x_op_y(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, in[CHAIN_X], in[CHAIN_Y]));
}
static df_node *y_op_x(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, in[CHAIN_Y], in[CHAIN_X]));
}
static df_node *x_op_constant(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, in[CHAIN_X], df_scalar(g, c->domain == POSITIVE ? 1.75f : -1.25f)));
}
static df_node *constant_op_x(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, df_scalar(g, c->domain == POSITIVE ? 1.75f : -1.25f), in[CHAIN_X]));
}
static df_node *x_op_s(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, in[CHAIN_X], in[CHAIN_S]));
}
static df_node *s_op_x(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, in[CHAIN_S], in[CHAIN_X]));
}
static df_node *fused_operands(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return c->binary(g, shrink(g, in[CHAIN_X]), shrink(g, in[CHAIN_Y]));
}
static df_node *x_op_x(df_graph *g, const fusable_case *c, df_node *const *in)
{
    return df_neg(g, c->binary(g, in[CHAIN_X], in[CHAIN_X]));
}

static const ew_chain binary_chains[] = {
    {"neg(op(x, y))", 2, x_op_y},
    {"neg(op(y, x))", 2, y_op_x},
    {"neg(op(x, constant scalar))", 2, x_op_constant},
    {"neg(op(constant scalar, x))", 2, constant_op_x},
    {"neg(op(x, s)) with s of shape (1)", 2, x_op_s},
    {"neg(op(s, x)) with s of shape (1)", 2, s_op_x},
    {"op(x * 0.75, y * 0.75)", 3, fused_operands},
    {"neg(op(x, x))", 2, x_op_x},
};

/* Builds the chain with fusion on and with no passes, runs both on the same
 * inputs and requires identical bits and one fused node holding the chain. */
static void expect_fused_chain_bit_identical(const fusable_case *c, const ew_chain *ch)
{
    const int64_t numel = CHAIN_ROWS * CHAIN_COLS;
    float *data[CHAIN_INPUTS];
    df_tensor in[CHAIN_INPUTS], out[2];
    for (int k = 0; k < CHAIN_INPUTS; k++) {
        int64_t n = k == CHAIN_S ? 1 : numel;
        data[k] = malloc((size_t)n * sizeof(float));
        cr_assert_not_null(data[k]);
        for (int64_t i = 0; i < n; i++) data[k][i] = domain_value(c->domain, k, i + (k == CHAIN_S ? 12345 : 0));
        in[k] = k == CHAIN_S ? F32(data[k], 1) : F32(data[k], CHAIN_ROWS, CHAIN_COLS);
    }
    df_graph *g[2] = {df_graph_new(), df_graph_new()};
    df_graph_stats st;
    for (int k = 0; k < 2; k++) {
        df_graph_set_passes(g[k], k == 0 ? DF_PASS_FUSE : 0);
        df_node *ph[CHAIN_INPUTS] = {PH(g[k], CHAIN_ROWS, CHAIN_COLS), PH(g[k], CHAIN_ROWS, CHAIN_COLS), PH(g[k], 1)};
        df_graph_output(g[k], ch->build(g[k], c, ph));
        cr_assert_eq(df_graph_run(g[k], in, CHAIN_INPUTS, &out[k], 1), DF_OK, "%s, %s: %s", c->op, ch->desc,
                     df_last_error());
    }
    cr_assert_eq(df_graph_get_stats(g[0], &st), DF_OK);
    cr_expect_eq(st.fused_chains, 1, "%s, %s: %d fused chains, want 1", c->op, ch->desc, st.fused_chains);
    cr_expect_eq(st.fused_nodes, ch->elementwise_nodes, "%s, %s: %d nodes fused, want %d", c->op, ch->desc,
                 st.fused_nodes, ch->elementwise_nodes);
    cr_assert_eq(df_tensor_numel(&out[0]), numel, "%s, %s", c->op, ch->desc);
    cr_assert_eq(df_tensor_numel(&out[1]), numel, "%s, %s", c->op, ch->desc);
    const float *fused = out[0].data, *plain = out[1].data;
    for (int64_t i = 0; i < numel; i++) {
        uint32_t bits[2];
        memcpy(&bits[0], &fused[i], sizeof bits[0]);
        memcpy(&bits[1], &plain[i], sizeof bits[1]);
        if (bits[0] == bits[1]) continue;
        cr_expect_fail("%s, %s: element %lld is %a (bits %08x) fused, %a (bits %08x) unfused; x = %a, y = %a", c->op,
                       ch->desc, (long long)i, fused[i], bits[0], plain[i], bits[1], data[CHAIN_X][i],
                       data[CHAIN_Y][i]);
        break;                                              /* one message per chain */
    }
    for (int k = 0; k < 2; k++) df_graph_free(g[k]);
    for (int k = 0; k < CHAIN_INPUTS; k++) free(data[k]);
}

Test(passes, fusion_of_every_fusable_op_is_bit_identical)
{
    bool code_seen[DF_EW_STEP + 1] = {false};
    int ops = 0;
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (op->elementwise == DF_EW_NONE) continue;
        const fusable_case *c = fusable_case_named(op->name);
        cr_expect_not_null(c, "op '%s' is fusable (code %d) but has no entry in fusable_cases", op->name,
                           (int)op->elementwise);
        if (!c) continue;
        bool binary = DF_EW_IS_BINARY(op->elementwise);
        cr_assert_eq(binary, c->binary != NULL, "fusable_cases gives '%s' the wrong arity", op->name);
        const ew_chain *chains = binary ? binary_chains : unary_chains;
        size_t n = binary ? sizeof binary_chains / sizeof *binary_chains : sizeof unary_chains / sizeof *unary_chains;
        for (size_t k = 0; k < n; k++) expect_fused_chain_bit_identical(c, &chains[k]);
        if (op->elementwise <= DF_EW_STEP) code_seen[op->elementwise] = true;
        ops++;
    }
    for (int code = DF_EW_NONE + 1; code <= DF_EW_STEP; code++)
        cr_expect(code_seen[code], "elementwise code %d: no registry op with a case in fusable_cases has it, so it went untested",
                  code);
    cr_log_info("fusion: %d fusable ops, each in its chains, bit-identical to the unfused graph", ops);
}

/* t = tanh(x) feeds two readers: it must stay materialised, not be absorbed. */
static df_node *shared_producer(df_graph *g, df_node *x)
{
    df_node *t = df_tanh(g, x);
    return df_add(g, df_exp(g, t), df_neg(g, t));
}

Test(passes, fusion_keeps_values_with_several_readers)
{
    df_graph_stats st = compare_with_and_without(shared_producer, DF_PASS_FUSE, SHAPE(33), 1);
    cr_expect_eq(st.fused_chains, 1);
    cr_expect_eq(st.fused_nodes, 3, "exp, neg and add fuse; tanh stays; got %d", st.fused_nodes);
}

/* A broadcast operand of another shape stops the chain at that node. */
static df_node *broadcasting(df_graph *g, df_node *x)
{
    df_node *row = df_sum(g, x, (int[]){0}, 1, false);               /* (5) */
    return df_tanh(g, df_add(g, df_exp(g, x), row));                  /* (3,5) + (5) */
}

Test(passes, fusion_leaves_broadcasting_operands_outside)
{
    df_graph_stats st = compare_with_and_without(broadcasting, DF_PASS_ALL, SHAPE(3, 5), 2);
    cr_expect_eq(st.fused_chains, 0, "add broadcasts a row: tanh(add) cannot take it; got %d", st.fused_chains);
}

/* ------------------------------------------------- whole train steps, on vs off */

static uint64_t params_hash(const cr_model *m)
{
    XXH64_state_t *s = XXH64_createState();
    XXH64_reset(s, 0);
    for (int i = 0; i < m->n_params; i++) {
        df_tensor t = df_variable_tensor(m->params[i]);
        XXH64_update(s, t.data, (size_t)df_tensor_numel(&t) * sizeof(float));
    }
    uint64_t h = XXH64_digest(s);
    XXH64_freeState(s);
    return h;
}

static uint64_t train_small(unsigned passes, df_graph_stats *stats)
{
    cr_config cfg = {.vocab = 11, .embed = 8, .hidden = 16, .learning_rate = 1e-2f, .seed = 3};
    cr_model m;
    cr_assert_eq(cr_model_init(&m, &cfg), DF_OK);
    df_graph *g;
    cr_assert_eq(cr_compile_step(&m, 4, 12, passes, &g), DF_OK, "%s", df_last_error());
    int32_t x[48], y[48];
    df_tensor in[2] = {I32(x, 4, 12), I32(y, 4, 12)}, loss;
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 48; i++) {
            x[i] = (i * 3 + step) % 11;
            y[i] = (i * 3 + step + 1) % 11;
        }
        cr_assert_eq(df_graph_run(g, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
    }
    cr_assert_eq(df_graph_get_stats(g, stats), DF_OK);
    uint64_t h = params_hash(&m);
    df_graph_free(g);
    cr_model_free(&m);
    return h;
}

Test(passes, train_steps_give_bit_identical_weights_with_all_passes)
{
    df_graph_stats on, off;
    uint64_t with = train_small(DF_PASS_ALL, &on), without = train_small(0, &off);
    cr_expect_eq(with, without, "weights after 5 steps differ: %016llx vs %016llx", (unsigned long long)with,
                 (unsigned long long)without);
    cr_expect_gt(on.cse_merged + on.constants_folded + on.fused_nodes, 0, "the passes changed nothing");
    cr_expect_lt(on.nodes, off.nodes);
    cr_expect_lt(on.arena_bytes, off.arena_bytes);
    cr_log_info("train step: %d -> %d nodes; cse %d, folded %d, fused %d nodes in %d chains; arena %zu -> %zu bytes",
                off.nodes, on.nodes, on.cse_merged, on.constants_folded, on.fused_nodes, on.fused_chains,
                off.arena_bytes, on.arena_bytes);
}

/* The planner at the tutorial's size: compile only (no run). */
Test(passes, seed_train_step_peak_memory_is_the_lstm_backwards_live_set)
{
    cr_config cfg = {.vocab = 65, .embed = 256, .hidden = 1024, .learning_rate = 1e-3f, .seed = 1};
    cr_model m;
    cr_assert_eq(cr_model_init(&m, &cfg), DF_OK);
    df_graph *g;
    cr_assert_eq(cr_compile_step(&m, 64, 100, DF_PASS_ALL, &g), DF_OK, "%s", df_last_error());
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
    cr_log_info("seed train step: %d nodes, arena %.1f MB, sum of buffers %.1f MB", st.nodes, st.arena_bytes / 1e6,
                st.tensor_bytes / 1e6);
    /* The peak is the LSTM backward's live set: its output h and saved gates,
     * c and tanh(c) (B,T,H + B,T,4H + 2 B,T,H), dh (B,T,H) and dZ (B,T,4H)
     * are live together; everything else must fit in the space they leave.
     * Measured 317 MB against 315 MB for those and 350 MB for every buffer
     * (with the LSTM reading the table by id there is no gathered input, so
     * no longer much else to reuse). */
    const size_t B = 64, T = 100, H = 1024, live = (B * T * H * (1 + 4 + 2) + B * T * H * (1 + 4)) * sizeof(float);
    cr_expect_lt(st.arena_bytes, live + live / 20, "peak %zu is more than 5%% over the LSTM backward's %zu (every buffer: %zu)",
                 st.arena_bytes, live, st.tensor_bytes);
    cr_expect_lt(st.arena_bytes, st.tensor_bytes, "no buffer reused: peak %zu, every buffer %zu", st.arena_bytes,
                 st.tensor_bytes);
    df_graph_free(g);
    cr_model_free(&m);
}

/* exp(x) dies in neg, neg dies in tanh: each can write over the other. */
static df_node *unfused_chain(df_graph *g, df_node *x)
{
    return df_tanh(g, df_neg(g, df_exp(g, df_scale(g, x, 0.5f))));
}

Test(passes, elementwise_ops_run_in_place_over_inputs_they_read_last)
{
    df_graph_stats st = compare_with_and_without(unfused_chain, DF_PASS_REUSE, SHAPE(5, 7001), 2);
    cr_expect_eq(st.inplace, 3, "exp over scale, neg over exp, tanh over neg; got %d", st.inplace);
    cr_expect_eq(st.arena_bytes, (size_t)2 * ((5 * 7001 * 4 + 63) / 64 * 64),
                 "x and one buffer for the whole chain; got %zu", st.arena_bytes);
}

/* ------------------ every fused instruction vs its op's kernel, bitwise */

/* Where two ways of writing a formula part: signed zeros, infinities, NaNs
 * (both signs, a payload, a signalling one), denormals and the smallest
 * normals, the largest floats, exp's overflow and denormal edges, and where
 * tanh and sigmoid saturate. */
static const uint32_t special_bits[] = {
    0x00000000, 0x80000000, 0x3f800000, 0xbf800000, /* +0, -0, 1, -1 */
    0x3f000000, 0xc0400000, 0x3e800000, 0x33800000, /* 0.5, -3, 0.25, 2^-24 */
    0x7f800000, 0xff800000,                         /* +inf, -inf */
    0x7fc00000, 0xffc00000, 0x7fc12345, 0x7fa00001, /* NaN, -NaN, NaN with payload, signalling NaN */
    0x00000001, 0x80000001, 0x007fffff, 0x807fffff, /* smallest and largest denormals */
    0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff, /* FLT_MIN, FLT_MAX */
    0x42b17218, 0x42b20000, 0xc2ce0000, 0xc2d00000, /* 88.72, 89: exp overflows; -103, -104: exp is denormal */
    0x41a00000, 0xc1a00000, 0x2edbe6ff,             /* 20, -20, 1e-10 */
};
#define N_SPECIAL ((int64_t)(sizeof special_bits / sizeof special_bits[0]))

static float special_value(int64_t i)
{
    float v;
    memcpy(&v, &special_bits[i % N_SPECIAL], sizeof v);
    return v;
}

/* One graph, no passes: op's own node and a fused node holding the single
 * instruction op(a[, b]) read the same inputs; their outputs must have the
 * same bits. a and b have na and nb elements (1: a scalar of shape (1)). */
static void expect_instruction_matches_kernel(const df_op_def *op, const float *a, int64_t na, const float *b,
                                              int64_t nb, const char *layout)
{
    bool binary = DF_EW_IS_BINARY(op->elementwise);
    df_fused_program prog = {.n = 1, .ins = {{(uint8_t)op->elementwise, 0, binary ? 1 : 0}}};
    df_graph *g = df_graph_new();
    df_graph_set_passes(g, 0);
    df_node *in[2] = {PH(g, na), PH(g, nb)};
    df_graph_output(g, df_node_new(g, op, binary ? 2 : 1, in, NULL));
    df_graph_output(g, df_node_new(g, &df_op_fused_elementwise, binary ? 2 : 1, in, &prog));
    df_tensor feeds[2] = {F32((float *)a, na), F32((float *)b, nb)}, out[2];
    cr_assert_eq(df_graph_run(g, feeds, 2, out, 2), DF_OK, "%s (%s): %s", op->name, layout, df_last_error());
    int64_t n = df_tensor_numel(&out[0]);
    cr_assert_eq(n, na > nb ? na : nb, "%s (%s)", op->name, layout);
    cr_assert_eq(df_tensor_numel(&out[1]), n, "%s (%s)", op->name, layout);
    for (int64_t i = 0; i < n; i++) {
        uint32_t kernel, fused, x, y;
        const float *kernel_out = out[0].data, *fused_out = out[1].data;
        memcpy(&kernel, &kernel_out[i], sizeof kernel);
        memcpy(&fused, &fused_out[i], sizeof fused);
        if (kernel == fused) continue;
        float ai = a[na == 1 ? 0 : i], bi = b[nb == 1 ? 0 : i];
        /* Two NaN operands: IEEE 754 lets either one's payload and sign come
         * out, and the compiler may swap the operands of + and * in one loop
         * and not in the other; the result need only be a NaN. */
        if (binary && isnan(ai) && isnan(bi) && isnan(kernel_out[i]) && isnan(fused_out[i])) continue;
        memcpy(&x, &ai, sizeof x);
        memcpy(&y, &bi, sizeof y);
        if (binary)
            cr_expect_fail("%s (%s): element %lld: kernel %08x, fused %08x; inputs %08x, %08x", op->name, layout,
                           (long long)i, kernel, fused, x, y);
        else
            cr_expect_fail("%s: element %lld: kernel %08x, fused %08x; input %08x", op->name, (long long)i, kernel,
                           fused, x);
        break;                                              /* one message per layout */
    }
    df_graph_free(g);
}

Test(passes, every_fused_instruction_matches_its_ops_kernel_bitwise_on_special_values)
{
    /* a runs over every special value, b over every one for each a: all
     * pairs. Many laps of the list, so vector bodies and tails see them all. */
    enum { N = N_SPECIAL * N_SPECIAL };
    float a[N], b[N];
    for (int64_t i = 0; i < N; i++) {
        a[i] = special_value(i / N_SPECIAL);
        b[i] = special_value(i);
    }
    int ops = 0, codes_seen[DF_EW_END] = {0};
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (op->elementwise == DF_EW_NONE) continue;
        cr_assert(op->elementwise > DF_EW_NONE && op->elementwise < DF_EW_END, "op '%s': code %d outside the table",
                  op->name, op->elementwise);
        codes_seen[op->elementwise]++;
        ops++;
        expect_instruction_matches_kernel(op, a, N, b, N, "same shapes");
        if (!DF_EW_IS_BINARY(op->elementwise)) continue;
        for (int64_t k = 0; k < N_SPECIAL; k++) {           /* the kernels' scalar-operand loops */
            float s = special_value(k);
            expect_instruction_matches_kernel(op, b, N_SPECIAL, &s, 1, "scalar b");
            expect_instruction_matches_kernel(op, &s, 1, b, N_SPECIAL, "scalar a");
        }
    }
    for (int code = DF_EW_NONE + 1; code < DF_EW_END; code++)
        cr_expect_eq(codes_seen[code], 1, "elementwise code %d belongs to %d registered ops, want 1", code,
                     codes_seen[code]);
    cr_log_info("%d elementwise ops: fused instruction and kernel agree bitwise over %lld special values", ops,
                (long long)N_SPECIAL);
}
