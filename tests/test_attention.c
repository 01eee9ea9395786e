/* test_attention.c — the fused attention op against the same attention
 * composed from primitive ops (batch_matmul, scale, a constant -inf upper
 * triangle, softmax, batch_matmul) in outputs and all three gradients, at
 * sizes with one and several blocks of queries and keys (T not a multiple of
 * the block, T = 1, odd d, more keys than queries, dv != d), causal and not,
 * each bitwise equal on 1, 2 and 3 threads; hand-computed T = 2 cases;
 * batch_matmul reference values; the errors. */
#include "helpers.h"

/* The composed attention: softmax(q k^T * scale + mask) v, with mask a
 * constant (Tq,Tk) of -inf where key j is after query i + (Tk - Tq). */
static df_node *composed_attention(df_graph *g, df_node *q, df_node *k, df_node *v, bool causal, float scale,
                                   int64_t Tq, int64_t Tk, float *mask_buf)
{
    df_node *s = df_scale(g, df_batch_matmul(g, q, k, false, true), scale);
    if (causal) {
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t j = 0; j < Tk; j++) mask_buf[i * Tk + j] = j > i + (Tk - Tq) ? -INFINITY : 0.0f;
        df_tensor mask = F32(mask_buf, Tq, Tk);
        s = df_add(g, s, df_constant(g, &mask));
    }
    return df_batch_matmul(g, df_softmax(g, s, -1), v, false, false);
}

typedef struct att_case {
    int ndim;
    int64_t lead[2];            /* leading axes (ndim - 2 of them) */
    int64_t Tq, Tk, d, dv;
    bool causal;
} att_case;

static int64_t numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static void shape_of(const att_case *c, int64_t rows, int64_t cols, int64_t *shape)
{
    for (int i = 0; i < c->ndim - 2; i++) shape[i] = c->lead[i];
    shape[c->ndim - 2] = rows;
    shape[c->ndim - 1] = cols;
}

/* Fused and composed attention on random q, k, v, in pairs: the output and
 * the gradients of sum(y * R) w.r.t. q, k, v; within tol of each other and
 * bitwise equal on 1, 2 and 3 threads. */
static void check_against_composed(const att_case *c, double tol)
{
    int64_t sq[4], sk[4], sv[4], so[4];
    shape_of(c, c->Tq, c->d, sq);
    shape_of(c, c->Tk, c->d, sk);
    shape_of(c, c->Tk, c->dv, sv);
    shape_of(c, c->Tq, c->dv, so);
    const int nd = c->ndim;
    const float scale = 1.0f / sqrtf((float)c->d);
    df_graph *g = df_graph_new();
    df_node *in[4] = {df_placeholder(g, DF_F32, nd, sq, "q"), df_placeholder(g, DF_F32, nd, sk, "k"),
                      df_placeholder(g, DF_F32, nd, sv, "v"), df_placeholder(g, DF_F32, nd, so, "R")};
    float *mask = malloc((size_t)(c->Tq * c->Tk) * sizeof(float));
    cr_assert_not_null(mask);
    df_node *yf = df_attention(g, in[0], in[1], in[2], c->causal, scale);
    df_node *yc = composed_attention(g, in[0], in[1], in[2], c->causal, scale, c->Tq, c->Tk, mask);
    df_node *gf[3], *gc[3];
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, yf, in[3]), NULL, 0, false), NULL, 3, in, gf), DF_OK, "%s",
                 df_graph_error(g));
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, yc, in[3]), NULL, 0, false), NULL, 3, in, gc), DF_OK, "%s",
                 df_graph_error(g));
    df_graph_output(g, yf);
    df_graph_output(g, yc);
    for (int i = 0; i < 3; i++) {
        df_graph_output(g, gf[i]);
        df_graph_output(g, gc[i]);
    }
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));

    df_rng rng;
    df_rng_seed(&rng, (uint64_t)(c->Tq * 131 + c->Tk * 17 + c->d * 7 + c->causal));
    const int64_t *shapes[4] = {sq, sk, sv, so};
    float *buf[4];
    df_tensor t[4];
    for (int i = 0; i < 4; i++) {
        buf[i] = rand_buf(&rng, numel(nd, shapes[i]), -1.5f, 1.5f);
        t[i] = df_tensor_make(DF_F32, buf[i], nd, shapes[i]);
    }
    char what[128];
    snprintf(what, sizeof what, "q %lldx%lld k %lld dv %lld%s (%lld leading)", (long long)c->Tq, (long long)c->d,
             (long long)c->Tk, (long long)c->dv, c->causal ? " causal" : "",
             (long long)numel(nd - 2, sq));
    static const char *const names[] = {"y", "dq", "dk", "dv"};
    expect_pairs_on_1_2_3_threads(g, t, 4, 4, names, tol, what);
    df_graph_free(g);
    for (int i = 0; i < 4; i++) free(buf[i]);
    free(mask);
}

/* Relative to max(1, |reference|). Measured: the largest difference over
 * these cases is 8.3e-7 (dv at T = 130: cell_exp against expf, float sums in
 * another order); 3e-6 is about 3.6 times that. */
#define ATT_TOL 3e-6

Test(attention, one_block_matches_composed_causal_and_not)
{
    for (int causal = 0; causal < 2; causal++) check_against_composed(&(att_case){4, {2, 3}, 5, 5, 4, 4, causal}, ATT_TOL);
}

/* 70 = 64 + 6: a full and a partial block of queries and of keys. */
Test(attention, t_not_a_multiple_of_the_block_matches_composed)
{
    for (int causal = 0; causal < 2; causal++) check_against_composed(&(att_case){4, {1, 2}, 70, 70, 8, 8, causal}, ATT_TOL);
}

/* Three blocks, odd d: causal skips key blocks 1 and 2 for query block 0. */
Test(attention, three_blocks_odd_d_matches_composed)
{
    for (int causal = 0; causal < 2; causal++) check_against_composed(&(att_case){4, {1, 1}, 130, 130, 3, 3, causal}, ATT_TOL);
}

Test(attention, t1_matches_composed)
{
    for (int causal = 0; causal < 2; causal++) check_against_composed(&(att_case){4, {2, 2}, 1, 1, 4, 4, causal}, ATT_TOL);
}

/* Three queries over 67 cached keys (the causal mask aligned to the last
 * key), dv != d, rank 3. */
Test(attention, fewer_queries_than_keys_and_dv_matches_composed)
{
    for (int causal = 0; causal < 2; causal++) check_against_composed(&(att_case){3, {3}, 3, 67, 5, 6, causal}, ATT_TOL);
    check_against_composed(&(att_case){3, {2}, 1, 130, 5, 2, true}, ATT_TOL);   /* a one-token step */
}

/* The head sizes of the models (d 64, the big char-gpt's; 40, whose last
 * 16 columns are a partial vector; dv 64 against d 40), over 100 positions
 * (a full and a partial block): on AVX-512 these run the register tiles of
 * ops/attention_fast.c with every row count and vector count of a tile, and
 * the causal blocks' skipped tiles. */
Test(attention, model_head_sizes_match_composed)
{
    for (int causal = 0; causal < 2; causal++) {
        check_against_composed(&(att_case){4, {1, 2}, 100, 100, 40, 64, causal}, ATT_TOL);
        check_against_composed(&(att_case){3, {2}, 70, 70, 64, 64, causal}, ATT_TOL);
    }
    check_against_composed(&(att_case){3, {1}, 37, 101, 64, 24, true}, ATT_TOL);   /* cached keys, offset 64 */
}

Test(attention, rank2_matches_composed)
{
    check_against_composed(&(att_case){2, {0}, 65, 65, 7, 7, true}, ATT_TOL);
}

/* Causal attention skips key blocks after a query block's last visible key,
 * forward and backward: with a NaN in the last key and value of 130, query 0
 * (in the first block, which sees only key 0) stays finite in the output and
 * in dq, where any product of a masked probability 0 with that key or value
 * (0 * NaN) would have made it NaN. */
Test(attention, causal_skips_key_blocks_after_the_last_visible_key)
{
    enum { T = 130, D = 3 };
    df_graph *g = df_graph_new();
    df_node *in[3] = {PH(g, 1, T, D), PH(g, 1, T, D), PH(g, 1, T, D)}, *grads[3];
    df_node *y = df_attention(g, in[0], in[1], in[2], true, 0.5f);
    cr_assert_eq(df_gradients(g, df_sum(g, y, NULL, 0, false), NULL, 3, in, grads), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, y);
    df_graph_output(g, grads[0]);
    df_rng rng;
    df_rng_seed(&rng, 5);
    float *q = rand_buf(&rng, T * D, -1, 1), *k = rand_buf(&rng, T * D, -1, 1), *v = rand_buf(&rng, T * D, -1, 1);
    k[(T - 1) * D] = v[(T - 1) * D] = NAN;
    df_tensor t[3] = {F32(q, 1, T, D), F32(k, 1, T, D), F32(v, 1, T, D)}, o[2];
    cr_assert_eq(df_graph_run(g, t, 3, o, 2), DF_OK, "%s", df_last_error());
    for (int c = 0; c < D; c++) {
        cr_expect(isfinite(((float *)o[0].data)[c]), "y[0][%d] = %g: the NaN key block was read", c, ((float *)o[0].data)[c]);
        cr_expect(isfinite(((float *)o[1].data)[c]), "dq[0][%d] = %g: the NaN key block was read", c, ((float *)o[1].data)[c]);
        cr_expect_float_eq(((float *)o[0].data)[c], v[c], 1e-6f, "query 0 sees key 0 only");
    }
    cr_expect(isnan(((float *)o[0].data)[(T - 1) * D]), "the last query sees the NaN value");
    df_graph_free(g);
    free(q), free(k), free(v);
}

/* ------------------------------------------------------------ attention_qkv */

/* The heads of qkv (B,T,3C) split out as gpt.c did before attention_qkv:
 * columns [part C, (part+1) C) as (B,H,T,d). */
static df_node *split_heads(df_graph *g, df_node *qkv, int part, int64_t B, int64_t T, int64_t C, int H)
{
    df_node *x = df_slice(g, qkv, (int64_t[]){0, 0, part * C}, (int64_t[]){B, T, C});
    return df_transpose(g, df_reshape(g, x, 4, (int64_t[]){B, T, H, C / H}), (int[]){0, 2, 1, 3});
}

/* attention_qkv against slicing, transposing, df_attention and transposing
 * back, in the output and d qkv (of sum(y * R)): the same bits (tolerance
 * 0), on 1, 2 and 3 threads. */
static void check_qkv_against_split(int64_t B, int64_t T, int64_t C, int H, bool causal)
{
    const float scale = 1.0f / sqrtf((float)(C / H));
    df_graph *g = df_graph_new();
    df_node *qkv = df_placeholder(g, DF_F32, 3, (int64_t[]){B, T, 3 * C}, "qkv");
    df_node *R = df_placeholder(g, DF_F32, 3, (int64_t[]){B, T, C}, "R");
    df_node *y = df_attention_qkv(g, qkv, H, causal, scale);
    df_node *ys = df_attention(g, split_heads(g, qkv, 0, B, T, C, H), split_heads(g, qkv, 1, B, T, C, H),
                               split_heads(g, qkv, 2, B, T, C, H), causal, scale);
    ys = df_reshape(g, df_transpose(g, ys, (int[]){0, 2, 1, 3}), 3, (int64_t[]){B, T, C});
    df_node *gq, *gs;
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, y, R), NULL, 0, false), NULL, 1, &qkv, &gq), DF_OK, "%s",
                 df_graph_error(g));
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, ys, R), NULL, 0, false), NULL, 1, &qkv, &gs), DF_OK, "%s",
                 df_graph_error(g));
    df_graph_output(g, y);
    df_graph_output(g, ys);
    df_graph_output(g, gq);
    df_graph_output(g, gs);
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    df_rng rng;
    df_rng_seed(&rng, (uint64_t)(T * 31 + C + H + causal));
    float *a = rand_buf(&rng, B * T * 3 * C, -1.5f, 1.5f), *r = rand_buf(&rng, B * T * C, -1.0f, 1.0f);
    df_tensor t[2] = {F32(a, B, T, 3 * C), F32(r, B, T, C)};
    char what[96];
    snprintf(what, sizeof what, "qkv %lldx%lldx%lld, %d heads%s", (long long)B, (long long)T, (long long)(3 * C), H,
             causal ? ", causal" : "");
    static const char *const names[] = {"y", "d qkv"};
    expect_pairs_on_1_2_3_threads(g, t, 2, 2, names, 0.0, what);
    df_graph_free(g);
    free(a), free(r);
}

/* char-gpt's heads (4 of 32 at T 64), and T = 70 (a full and a partial
 * block of queries and keys) with 3 heads of 5, causal and not. */
Test(attention_qkv, equals_split_heads_bit_for_bit)
{
    check_qkv_against_split(2, 64, 128, 4, true);
    for (int causal = 0; causal < 2; causal++) check_qkv_against_split(3, 70, 15, 3, causal);
}

Test(attention_qkv, shape_errors_name_op_node_and_shapes)
{
    df_graph *g = df_graph_new();
    df_attention_qkv(g, PH(g, 2, 4, 10), 2, true, 1.0f);
    cr_expect_eq(df_graph_status(g), DF_ERR_SHAPE);
    cr_expect(strstr(df_graph_error(g), "attention_qkv") && strstr(df_graph_error(g), "(2,4,10)"), "%s",
              df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    df_attention_qkv(g, PH(g, 2, 4, 12), 0, true, 1.0f);
    cr_expect_eq(df_graph_status(g), DF_ERR_ARG);
    cr_expect(strstr(df_graph_error(g), "n_head must be >= 1"), "%s", df_graph_error(g));
    df_graph_free(g);
}

/* ---------------------------------------------------------------- by hand */

/* q = (1, 2), k = (0.5, -1), v = (3, 5) (T = 2, d = 1, scale 1), loss
 * sum(y * (1, -2)). Without the mask, row 0's scores (0.5, -1) give
 * p = (0.8175745, 0.1824255) and y0 = 3 p0 + 5 p1 = 3.364851; row 1's
 * (2, -2)·... = (1, -2) give p = (0.9525741, 0.0474259), y1 = 3.0948517.
 * Causal: row 0 sees only key 0, y0 = 3. Gradients from dv = P^T dO,
 * dS = P (dO v^T - rowsum(dO y)), dq = dS k, dk = dS^T q, in double. */
Test(attention, two_positions_by_hand)
{
    static const float want[2][4][2] = {
        {{3.36485105f, 3.09485175f}, {-0.447439356f, 0.271059958f}, {0.0631203737f, -0.0631203737f},
         {-1.08757378f, 0.0875737775f}},
        {{3.0f, 3.09485175f}, {0.0f, 0.271059958f}, {0.361413278f, -0.361413278f},
         {-0.905148254f, -0.0948517464f}},
    };
    float q[2] = {1, 2}, k[2] = {0.5f, -1}, v[2] = {3, 5}, r[2] = {1, -2};
    for (int causal = 0; causal < 2; causal++) {
        df_graph *g = df_graph_new();
        df_node *in[4] = {PH(g, 1, 1, 2, 1), PH(g, 1, 1, 2, 1), PH(g, 1, 1, 2, 1), PH(g, 1, 1, 2, 1)};
        df_node *y = df_attention(g, in[0], in[1], in[2], causal, 1.0f), *grads[3];
        cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, y, in[3]), NULL, 0, false), NULL, 3, in, grads), DF_OK);
        df_graph_output(g, y);
        for (int i = 0; i < 3; i++) df_graph_output(g, grads[i]);
        df_tensor t[4] = {F32(q, 1, 1, 2, 1), F32(k, 1, 1, 2, 1), F32(v, 1, 1, 2, 1), F32(r, 1, 1, 2, 1)}, o[4];
        cr_assert_eq(df_graph_run(g, t, 4, o, 4), DF_OK, "%s", df_last_error());
        static const char *const names[] = {"y", "dq", "dk", "dv"};
        for (int i = 0; i < 4; i++) expect_near(o[i].data, want[causal][i], 2, 1e-6, names[i]);
        df_graph_free(g);
    }
}

/* --------------------------------------------------------- batch_matmul */

/* a (2,2,2) batched against a shared (2,2) b, and b^T; a^T per batch. */
Test(batch_matmul, reference_values_with_broadcast_and_transposes)
{
    float a[8] = {1, 2, 3, 4, /* batch 1 */ 0, 1, -1, 2}, b[4] = {1, -1, 2, 0.5f};
    /* a_0 @ b = [[1+4, -1+1], [3+8, -3+2]]; a_1 @ b = [[2, 0.5], [3, 2]] */
    const float nn[8] = {5, 0, 11, -1, 2, 0.5f, 3, 2};
    /* a_p @ b^T, b^T = [[1, 2], [-1, 0.5]]: a_0 -> [[-1, 3], [-1, 8]]; a_1 -> [[-1, 0.5], [-3, -1]] */
    const float nt[8] = {-1, 3, -1, 8, -1, 0.5f, -3, -1};
    /* a_p^T @ b: a_0^T = [[1, 3], [2, 4]] -> [[7, 0.5], [10, 0]]; a_1^T = [[0, -1], [1, 2]] -> [[-2, -0.5], [5, 0]] */
    const float tn[8] = {7, 0.5f, 10, 0, -2, -0.5f, 5, 0};
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 2, 2), *w = PH(g, 2, 2);
    df_graph_output(g, df_batch_matmul(g, x, w, false, false));
    df_graph_output(g, df_batch_matmul(g, x, w, false, true));
    df_graph_output(g, df_batch_matmul(g, x, w, true, false));
    /* the shared operand on the left: b @ a_p, b (1,2,2) broadcast */
    df_graph_output(g, df_batch_matmul(g, df_reshape(g, w, 3, SHAPE(1, 2, 2)), x, false, false));
    df_tensor in[2] = {F32(a, 2, 2, 2), F32(b, 2, 2)}, o[4];
    cr_assert_eq(df_graph_run(g, in, 2, o, 4), DF_OK, "%s", df_last_error());
    expect_close(o[0].data, nn, 8, 1e-6f);
    expect_close(o[1].data, nt, 8, 1e-6f);
    expect_close(o[2].data, tn, 8, 1e-6f);
    /* b @ a_0 = [[1-3, 2-4], [2+1.5, 4+2]]; b @ a_1 = [[1, -1], [-0.5, 3]] */
    const float left[8] = {-2, -2, 3.5f, 6, 1, -1, -0.5f, 3};
    expect_close(o[3].data, left, 8, 1e-6f);
    cr_expect_eq(o[3].ndim, 3);
    df_graph_free(g);
}

/* Batch axes (2,1) and (3) broadcast to (2,3); the gradient of the
 * broadcast operand sums over the axes it was repeated along. */
Test(batch_matmul, broadcast_batch_axes_and_their_gradient_by_hand)
{
    float a[4] = {1, 2, /* a[1] */ -1, 3};             /* (2,1,1,2) */
    float b[6] = {1, 0, /* b[1] */ 0, 1, /* b[2] */ 2, -1};   /* (3,2,1) */
    df_graph *g = df_graph_new();
    df_node *in[2] = {PH(g, 2, 1, 1, 2), PH(g, 3, 2, 1)}, *grads[2];
    df_node *y = df_batch_matmul(g, in[0], in[1], false, false);  /* (2,3,1,1) */
    cr_assert_eq(df_gradients(g, y, NULL, 2, in, grads), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, y);
    df_graph_output(g, grads[0]);
    df_graph_output(g, grads[1]);
    df_tensor t[2] = {F32(a, 2, 1, 1, 2), F32(b, 3, 2, 1)}, o[3];
    cr_assert_eq(df_graph_run(g, t, 2, o, 3), DF_OK, "%s", df_last_error());
    cr_assert_eq(o[0].ndim, 4);
    cr_expect(o[0].shape[0] == 2 && o[0].shape[1] == 3 && o[0].shape[2] == 1 && o[0].shape[3] == 1);
    /* y[i][j] = a_i . b_j: a_0 = (1,2): 1, 2, 0; a_1 = (-1,3): -1, 3, -5 */
    expect_close(o[0].data, (const float[]){1, 2, 0, -1, 3, -5}, 6, 1e-6f);
    /* d a_i = sum_j b_j = (3, 0); d b_j = sum_i a_i = (0, 5) each */
    expect_close(o[1].data, (const float[]){3, 0, 3, 0}, 4, 1e-6f);
    expect_close(o[2].data, (const float[]){0, 5, 0, 5, 0, 5}, 6, 1e-6f);
    df_graph_free(g);
}

/* The weight-gradient shortcut (one folded GEMM over the batch) equals the
 * per-batch sum, also when b is (1,K,N) and for b^T. */
Test(batch_matmul, shared_weight_gradient_by_hand)
{
    float a[8] = {1, 2, 3, 4, 0, 1, -1, 2}, b[4] = {1, -1, 2, 0.5f};
    for (int tb = 0; tb < 2; tb++)
        for (int rank3 = 0; rank3 < 2; rank3++) {
            df_graph *g = df_graph_new();
            df_node *in[2] = {PH(g, 2, 2, 2), rank3 ? PH(g, 1, 2, 2) : PH(g, 2, 2)}, *grads[2];
            df_node *y = df_batch_matmul(g, in[0], in[1], false, tb);
            cr_assert_eq(df_gradients(g, y, NULL, 2, in, grads), DF_OK, "%s", df_graph_error(g));
            df_graph_output(g, grads[1]);
            df_tensor t[2] = {F32(a, 2, 2, 2), rank3 ? F32(b, 1, 2, 2) : F32(b, 2, 2)}, o;
            cr_assert_eq(df_graph_run(g, t, 2, &o, 1), DF_OK, "%s", df_last_error());
            cr_expect_eq(o.ndim, rank3 ? 3 : 2);
            /* d op(b) = sum_p a_p^T 1: column sums of a's rows over both batches,
             * (1+3+0-1, 2+4+1+2) = (3, 9) in every column; transposed for b^T */
            const float want[2][4] = {{3, 3, 9, 9}, {3, 9, 3, 9}};
            expect_close(o.data, want[tb], 4, 1e-6f);
            df_graph_free(g);
        }
}

/* ----------------------------------------------------------------- errors */

#define EXPECT_MSG(haystack, needle) \
    cr_expect(strstr((haystack), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (haystack), (needle))

Test(batch_matmul, shape_errors_name_op_node_and_shapes)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 2, 3, 4), *b = PH(g, 3, 4, 5), *c, *v;
    cr_expect_null(df_batch_matmul(g, a, b, false, false));
    const char *msg = df_graph_error(g);
    EXPECT_MSG(msg, "batch_matmul");
    EXPECT_MSG(msg, "node 2");
    EXPECT_MSG(msg, "(2,3,4)");
    EXPECT_MSG(msg, "(3,4,5)");
    EXPECT_MSG(msg, "do not broadcast");
    df_graph_free(g);

    g = df_graph_new();
    a = PH(g, 2, 3, 4), c = PH(g, 2, 5, 5);
    cr_expect_null(df_batch_matmul(g, a, c, false, false));
    msg = df_graph_error(g);
    EXPECT_MSG(msg, "inner dimensions differ");
    EXPECT_MSG(msg, "(2,5,5)");
    df_graph_free(g);

    g = df_graph_new();
    a = PH(g, 2, 3, 4), v = PH(g, 4);
    cr_expect_null(df_batch_matmul(g, a, v, false, false));
    EXPECT_MSG(df_graph_error(g), "rank >= 2");
    df_graph_free(g);
}

Test(attention, shape_errors_name_op_node_and_shapes)
{
    struct { int64_t q[4], k[4], v[4]; bool causal; const char *says; } bad[] = {
        {{2, 2, 5, 4}, {2, 2, 5, 3}, {2, 2, 5, 4}, false, "same last axis"},
        {{2, 2, 5, 4}, {2, 3, 5, 4}, {2, 2, 5, 4}, false, "share their leading axes"},
        {{2, 2, 5, 4}, {2, 2, 5, 4}, {2, 2, 6, 4}, false, "number of keys"},
        {{2, 2, 5, 4}, {2, 2, 4, 4}, {2, 2, 4, 4}, true, "at least as many keys as queries"},
        {{2, 2, 5, 4}, {2, 2, 0, 4}, {2, 2, 0, 4}, false, "at least one key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        df_graph *g = df_graph_new();
        df_node *q = df_placeholder(g, DF_F32, 4, bad[i].q, "q"), *k = df_placeholder(g, DF_F32, 4, bad[i].k, "k");
        df_node *v = df_placeholder(g, DF_F32, 4, bad[i].v, "v");
        cr_expect_null(df_attention(g, q, k, v, bad[i].causal, 0.5f));
        const char *msg = df_graph_error(g);
        EXPECT_MSG(msg, "attention");
        EXPECT_MSG(msg, "node 3");
        EXPECT_MSG(msg, "(2,2,5,4)");
        EXPECT_MSG(msg, bad[i].says);
        df_graph_free(g);
    }
    df_graph *g = df_graph_new();
    df_node *q = PH(g, 2, 5, 4), *k = PH(g, 5, 2, 5, 4);
    cr_expect_null(df_attention(g, q, k, k, false, 0.5f));
    EXPECT_MSG(df_graph_error(g), "one rank");
    df_graph_free(g);
}

/* The fused backward has no backward of its own: a second derivative says
 * which op stops it. */
Test(attention, second_derivative_is_refused_by_name)
{
    df_graph *g = df_graph_new();
    df_node *q = PH(g, 1, 3, 2), *grad, *grad2;
    df_node *y = df_sum(g, df_attention(g, q, q, q, true, 1.0f), NULL, 0, false);
    cr_assert_eq(df_gradients(g, y, NULL, 1, &q, &grad), DF_OK, "%s", df_graph_error(g));
    cr_expect_neq(df_gradients(g, df_sum(g, grad, NULL, 0, false), NULL, 1, &q, &grad2), DF_OK);
    EXPECT_MSG(df_graph_error(g), "attention_grad");
    EXPECT_MSG(df_graph_error(g), "has no gradient");
    df_graph_free(g);
}
