/* test_attrs.c — op attributes (the per-op structs of graph/graph.h): CSE
 * merges two nodes only when their attributes are equal byte for byte, an
 * op's attribute struct may be as large as it needs (no fixed slots), and
 * the former constructor refuses raw attribute arrays. */
#include "helpers.h"
#include "../ops/common.h"

/* Builds two nodes a and b from the same input x. */
typedef void (*pair_builder)(df_graph *g, df_node *x, df_node **a, df_node **b);

/* Runs the pair with CSE only and with no passes; both runs must give the
 * same bits for a and for b (a wrong merge gives b a's value). Returns the
 * number of nodes CSE merged. x is (4,16) at run time; dims may hold
 * DF_DYNAMIC. */
static int cse_merged_in(pair_builder build, const int64_t *dims)
{
    float xv[64];
    for (int i = 0; i < 64; i++) xv[i] = (float)((i * 37) % 23 - 11) / 4.0f;
    df_tensor in = F32(xv, 4, 16), out[2][2];
    df_graph_stats st = {0};
    df_graph *g[2];                       /* outputs live in their graph's memory */
    for (int k = 0; k < 2; k++) {
        g[k] = df_graph_new();
        df_graph_set_passes(g[k], k == 0 ? DF_PASS_CSE : 0);
        df_node *x = df_placeholder(g[k], DF_F32, 2, dims, "x"), *a = NULL, *b = NULL;
        build(g[k], x, &a, &b);
        df_graph_output(g[k], a);
        df_graph_output(g[k], b);
        cr_assert_eq(df_graph_run(g[k], &in, 1, out[k], 2), DF_OK, "%s", df_last_error());
    }
    cr_assert_eq(df_graph_get_stats(g[0], &st), DF_OK);
    for (int j = 0; j < 2; j++) {
        int64_t n = df_tensor_numel(&out[0][j]);
        cr_assert_eq(n, df_tensor_numel(&out[1][j]), "output %c: sizes differ with CSE on", "ab"[j]);
        cr_expect(memcmp(out[0][j].data, out[1][j].data, (size_t)n * sizeof(float)) == 0,
                  "output %c differs with CSE on (merged with the other?)", "ab"[j]);
    }
    df_graph_free(g[0]);
    df_graph_free(g[1]);
    return st.cse_merged;
}

static int cse_merged_static(pair_builder build) { return cse_merged_in(build, SHAPE(4, 16)); }

static void pads_at_two_begins(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_pad(g, x, SHAPE(0, 0), 2, SHAPE(6, 18));
    *b = df_pad(g, x, SHAPE(1, 2), 2, SHAPE(6, 18));
}
static void pads_at_one_begin(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_pad(g, x, SHAPE(1, 2), 2, SHAPE(6, 18));
    *b = df_pad(g, x, SHAPE(1, 2), 2, SHAPE(6, 18));
}
static void slices_at_two_begins(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_slice(g, x, SHAPE(0, 0), SHAPE(3, 8));
    *b = df_slice(g, x, SHAPE(1, 8), SHAPE(3, 8));
}
static void sums_over_two_axes(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    df_node *sq = df_reshape(g, x, 2, SHAPE(8, 8));          /* both sums are (8) */
    *a = df_sum(g, sq, (int[]){0}, 1, false);
    *b = df_sum(g, sq, (int[]){1}, 1, false);
}
static void matmuls_with_two_transposes(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    df_node *sq = df_reshape(g, x, 2, SHAPE(8, 8));
    *a = df_matmul(g, sq, sq, false, false);
    *b = df_matmul(g, sq, sq, true, false);
}
static void softmaxes_on_two_axes(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    df_node *sq = df_reshape(g, x, 2, SHAPE(8, 8));
    *a = df_softmax(g, sq, 0);
    *b = df_softmax(g, sq, 1);
}
/* -1 and 1 name the same axis of a rank-2 input: infer normalises both. */
static void softmaxes_on_one_axis(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_softmax(g, x, -1);
    *b = df_softmax(g, x, 1);
}
/* A float attribute: the clipping norm. x's norm is about 24, above both. */
static void norm_scales_with_two_clips(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_global_norm_scale(g, 1, &x, 1.0f);
    *b = df_global_norm_scale(g, 1, &x, 2.0f);
}
/* fill_like with an open batch dimension stays a fill_like node (a float
 * attribute, its value) instead of becoming a constant. */
static void fills_of_two_values(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_fill_like(g, x, 1.0f);
    *b = df_fill_like(g, x, 2.0f);
}
static void fills_of_one_value(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = df_fill_like(g, x, 2.0f);
    *b = df_fill_like(g, x, 2.0f);
}

Test(attrs, cse_keeps_nodes_whose_attributes_differ)
{
    cr_expect_eq(cse_merged_static(pads_at_two_begins), 0, "pads at begin (0,0) and (1,2)");
    cr_expect_eq(cse_merged_static(slices_at_two_begins), 0, "slices at begin (0,0) and (1,8)");
    cr_expect_eq(cse_merged_static(sums_over_two_axes), 0, "sums over axis 0 and axis 1");
    cr_expect_eq(cse_merged_static(matmuls_with_two_transposes), 0, "matmul with and without transpose_a");
    cr_expect_eq(cse_merged_static(softmaxes_on_two_axes), 0, "softmax on axis 0 and axis 1");
    cr_expect_eq(cse_merged_static(norm_scales_with_two_clips), 0, "global_norm_scale with clip 1 and 2");
    cr_expect_eq(cse_merged_in(fills_of_two_values, SHAPE(DF_DYNAMIC, 16)), 0, "fill_like of 1 and of 2");
}

Test(attrs, cse_merges_nodes_whose_attributes_are_equal)
{
    cr_expect_eq(cse_merged_static(pads_at_one_begin), 1, "two pads at begin (1,2)");
    cr_expect_eq(cse_merged_static(softmaxes_on_one_axis), 1, "softmax on axis -1 and on axis 1 (rank 2)");
    cr_expect_eq(cse_merged_in(fills_of_one_value, SHAPE(DF_DYNAMIC, 16)), 1, "two fill_like of 2");
}

/* ------------------------------------------- an op with a large attribute */

/* y[i] = x[i] * table[i % 64]: 256 bytes of attributes, four times the
 * 8 int64 slots nodes used to have. */
#define TABLE 64
DF_ATTRS_BEGIN
typedef struct { float table[TABLE]; } scale_table_attrs;
DF_ATTRS_END

static df_status scale_table_forward(df_node *n)
{
    const float *table = DF_ATTRS(n, scale_table_attrs)->table;
    for (int64_t i = 0; i < n->numel; i++) DF_F32P(n)[i] = DF_F32P(n->in[0])[i] * table[i % TABLE];
    return DF_OK;
}

static const df_op_def scale_table_op = {
    .name = "scale_table", .infer = df_infer_unary, .forward = scale_table_forward,
    .no_gradcheck = "a test op", .attrs_size = sizeof(scale_table_attrs),
};

/* table[k] = 1 + k/8, with entry `changed` (if in range) set to -1. */
static df_node *scale_table(df_graph *g, df_node *x, int changed)
{
    scale_table_attrs a;
    for (int k = 0; k < TABLE; k++) a.table[k] = k == changed ? -1.0f : 1.0f + (float)k / 8.0f;
    return df_node_new(g, &scale_table_op, 1, &x, &a);
}

static void tables_differing_in_the_last_entry(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = scale_table(g, x, -1);
    *b = scale_table(g, x, TABLE - 1);
}
static void equal_tables(df_graph *g, df_node *x, df_node **a, df_node **b)
{
    *a = scale_table(g, x, TABLE - 1);
    *b = scale_table(g, x, TABLE - 1);
}

Test(attrs, an_op_may_have_attributes_larger_than_the_old_slots)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4, 16);
    df_graph_output(g, scale_table(g, x, 5));
    float xv[64], y[64];
    for (int i = 0; i < 64; i++) xv[i] = (float)(i + 1);
    df_tensor in = F32(xv, 4, 16), out = run1(g, &in, 1);
    memcpy(y, out.data, sizeof y);
    for (int i = 0; i < 64; i++) {
        float want = xv[i] * (i == 5 ? -1.0f : 1.0f + (float)i / 8.0f);
        cr_expect_eq(y[i], want, "y[%d] = %g, want %g (table entry %d)", i, y[i], want, i);
    }
    df_graph_free(g);
    /* CSE compares every byte of the struct, the last entry too */
    cr_expect_eq(cse_merged_static(tables_differing_in_the_last_entry), 0, "tables differing in entry 63");
    cr_expect_eq(cse_merged_static(equal_tables), 1, "equal tables");
}
