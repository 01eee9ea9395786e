/* test_memo.c — run-constant values kept between runs (graph/memo.c): the
 * gather hoisting gives the same bits as the graph without it, the kept
 * table is reused while its variables are unchanged and recomputed after
 * every kind of write, and char-rnn's sampling graph keeps its table. */
#include "helpers.h"
#include "model.h"

enum { V = 5, E = 7, N = 40 };

static void fill(df_variable *v, float scale)
{
    df_tensor t = df_variable_tensor(v);
    float *d = t.data;
    for (int64_t i = 0; i < df_variable_numel(v); i++) d[i] = scale * (float)((i * 7919) % 211 - 105) / 97.0f;
}

typedef struct toy {
    df_variable *emb, *w, *b;
} toy;

static toy toy_new(void)
{
    toy t = {df_variable_new("emb", DF_F32, 2, SHAPE(V, E), df_init_zeros(), NULL),
             df_variable_new("w", DF_F32, 2, SHAPE(E, N), df_init_zeros(), NULL),
             df_variable_new("b", DF_F32, 1, SHAPE(N), df_init_zeros(), NULL)};
    fill(t.emb, 1.0f), fill(t.w, 0.5f), fill(t.b, 0.25f);
    return t;
}

static void toy_free(toy *t)
{
    df_variable_free(t->emb), df_variable_free(t->w), df_variable_free(t->b);
}

/* ids (1,1) -> gather(emb) @ w + b, as a layer's input projection is built. */
static df_graph *projection_graph(const toy *t, unsigned passes)
{
    df_graph *g = df_graph_new();
    df_graph_set_passes(g, passes);
    df_node *ids = df_placeholder(g, DF_I32, 2, SHAPE(1, 1), "ids");
    df_node *rows = df_gather(g, df_var(g, t->emb), ids);
    df_graph_output(g, df_add(g, df_matmul(g, rows, df_var(g, t->w), false, false), df_var(g, t->b)));
    return g;
}

static void run_id(df_graph *g, int32_t id, float *out)
{
    df_tensor in = df_tensor_make(DF_I32, &id, 2, SHAPE(1, 1)), y;
    cr_assert_eq(df_graph_run(g, &in, 1, &y, 1), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_tensor_numel(&y), N);
    memcpy(out, y.data, N * sizeof *out);
}

/* The graph with passes against the same graph without them, at every id. */
static void expect_same_as_reference(const toy *t, df_graph *g, const char *when)
{
    df_graph *ref = projection_graph(t, 0);
    for (int32_t id = 0; id < V; id++) {
        float a[N], b[N];
        run_id(g, id, a);
        run_id(ref, id, b);
        cr_expect(memcmp(a, b, sizeof a) == 0, "%s: id %d differs from the graph without passes (%g vs %g)", when, id,
                  (double)a[0], (double)b[0]);
    }
    df_graph_free(ref);
}

Test(memo, hoisted_table_gives_the_same_bits_and_is_reused)
{
    toy t = toy_new();
    df_graph *g = projection_graph(&t, DF_PASS_ALL);
    expect_same_as_reference(&t, g, "first runs");
    int64_t reused;
    int nodes;
    cr_assert_eq(df_graph_memo_stats(g, &reused, &nodes), DF_OK);
    cr_expect_geq(nodes, 2, "the table's matmul and bias add are kept; %d nodes", nodes);
    cr_expect_eq(reused, V - 1, "every run after the first reuses the table; %lld", (long long)reused);
    df_graph_free(g);
    toy_free(&t);
}

Test(memo, no_table_without_the_fold_pass)
{
    toy t = toy_new();
    df_graph *g = projection_graph(&t, DF_PASS_ALL & ~DF_PASS_FOLD);
    float y[N];
    run_id(g, 1, y);
    int nodes = -1;
    df_graph_memo_stats(g, NULL, &nodes);
    cr_expect_eq(nodes, 0);
    df_graph_free(g);
    toy_free(&t);
}

/* Each way a variable can be written makes the next run recompute. */
Test(memo, table_recomputed_after_each_kind_of_write)
{
    toy t = toy_new();
    df_graph *g = projection_graph(&t, DF_PASS_ALL);
    expect_same_as_reference(&t, g, "before any write");

    float w2[E * N];
    for (int i = 0; i < E * N; i++) w2[i] = (float)(i % 13) - 6.0f;
    df_tensor tw = df_tensor_make(DF_F32, w2, 2, SHAPE(E, N));
    cr_assert_eq(df_variable_assign(t.w, &tw), DF_OK);
    expect_same_as_reference(&t, g, "after df_variable_assign of the kernel");

    cr_assert_eq(df_variable_init(t.b, df_init_constant(3.0f), NULL), DF_OK);
    expect_same_as_reference(&t, g, "after df_variable_init of the bias");

    fill(t.emb, -2.0f);                           /* through df_variable_tensor's view */
    expect_same_as_reference(&t, g, "after a write through df_variable_tensor");

    df_graph *writer = df_graph_new();            /* another graph's assign */
    df_assign(writer, t.emb, df_scale(writer, df_var(writer, t.emb), 0.5f));
    cr_assert_eq(df_graph_run(writer, NULL, 0, NULL, 0), DF_OK, "%s", df_last_error());
    expect_same_as_reference(&t, g, "after another graph assigned the table's variable");
    df_graph_free(writer);

    /* a checkpoint refers to the data put in it: put another "w" */
    df_variable *saved = df_variable_new("w", DF_F32, 2, SHAPE(E, N), df_init_constant(0.75f), NULL);
    df_checkpoint *ck = df_checkpoint_new();
    cr_assert_eq(df_checkpoint_put_variable(ck, saved), DF_OK);
    expect_same_as_reference(&t, g, "before the restore");
    cr_assert_eq(df_checkpoint_restore_variable(ck, t.w), DF_OK, "%s", df_last_error());
    expect_same_as_reference(&t, g, "after a checkpoint restore");
    df_checkpoint_free(ck);
    df_variable_free(saved);

    df_graph_free(g);
    toy_free(&t);
}

/* A graph that writes the kernel itself keeps nothing of it: each run sees
 * the kernel its previous run left (w *= 1.5 after the product). */
Test(memo, graph_writing_its_variable_keeps_nothing)
{
    toy t = toy_new();
    float expect[3][N];
    for (int step = 0; step < 3; step++) {       /* reference: a plain graph, the kernel scaled by hand */
        df_graph *ref = projection_graph(&t, 0);
        run_id(ref, 2, expect[step]);
        df_graph_free(ref);
        float *w = df_variable_tensor(t.w).data;
        for (int i = 0; i < E * N; i++) w[i] *= 1.5f;
    }
    fill(t.w, 0.5f);
    df_graph *g = projection_graph(&t, DF_PASS_ALL);
    df_assign(g, t.w, df_scale(g, df_var(g, t.w), 1.5f));
    for (int step = 0; step < 3; step++) {
        float a[N];
        run_id(g, 2, a);
        cr_expect(memcmp(a, expect[step], sizeof a) == 0, "run %d used a stale kernel", step);
    }
    df_graph_free(g);
    toy_free(&t);
}

/* char-rnn's batch-1 logits keep the projected table and equal, bit for bit,
 * the same model's logits compiled without passes, step after step. */
Test(memo, charrnn_sampling_graph_keeps_the_table)
{
    cr_config cfg = {.vocab = 11, .embed = 8, .hidden = 16, .learning_rate = 1e-3f, .seed = 5};
    cr_model m[2];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(cr_model_init(&m[k], &cfg), DF_OK, "%s", df_last_error());
        if (k) cr_assert_eq(df_function_set_passes(cr_model_function(&m[k], "logits"), 0), DF_OK);
    }
    int32_t id = 3;
    for (int step = 0; step < 20; step++) {
        df_tensor x = df_tensor_make(DF_I32, &id, 2, SHAPE(1, 1)), y[2];
        for (int k = 0; k < 2; k++) cr_assert_eq(cr_logits(&m[k], &x, &y[k]), DF_OK, "%s", df_last_error());
        cr_assert(memcmp(y[0].data, y[1].data, (size_t)cfg.vocab * sizeof(float)) == 0, "step %d differs", step);
        id = (int32_t)((id * 5 + 1) % cfg.vocab);
    }
    int64_t reused;
    int nodes;
    df_graph_memo_stats(cr_graph(&m[0], "logits"), &reused, &nodes);
    cr_expect_geq(nodes, 2, "the table; %d nodes", nodes);
    cr_expect_eq(reused, 19, "reused on every step after the first; %lld", (long long)reused);
    for (int k = 0; k < 2; k++) cr_model_free(&m[k]);
}

/* graph/exec.c runs small ops on one thread: the caller's thread count is
 * back after every run, also one whose op failed. */
Test(exec, small_ops_leave_the_thread_count_as_it_was)
{
    toy t = toy_new();
    df_graph *g = projection_graph(&t, DF_PASS_ALL);
    df_set_num_threads(2);
    float y[N];
    run_id(g, 1, y);
    cr_expect_eq(df_num_threads(), 2, "after a run: %d threads", df_num_threads());
    int32_t bad = V + 3;
    df_tensor in = df_tensor_make(DF_I32, &bad, 2, SHAPE(1, 1)), out;
    cr_expect_neq(df_graph_run(g, &in, 1, &out, 1), DF_OK, "an id out of range fails the run");
    cr_expect_eq(df_num_threads(), 2, "after a failed run: %d threads", df_num_threads());
    df_set_num_threads(0);
    df_graph_free(g);
    toy_free(&t);
}
