/* test_run_helpers.c — the helpers a training program needs around its
 * model: df_error_prefix, optimizers by name, typed checkpoint blobs, config
 * records (alone and in df_fit), df_fit with a model of layers,
 * df_graph_trace and df_tensor_alloc. */
#include <stddef.h>
#include <unistd.h>
#include "helpers.h"

#define assert_ok(expr) cr_assert_eq((expr), DF_OK, "%s: %s", #expr, df_last_error())
#define expect_message(needle) \
    cr_expect_not_null(strstr(df_last_error(), (needle)), "message '%s' lacks '%s'", df_last_error(), (needle))

/* ------------------------------------------------------- df_error_prefix */

Test(error_prefix, puts_the_context_before_the_message_and_keeps_the_status)
{
    df_status st = df_error_prefix(df_error(DF_ERR_SHAPE, "vocab %d chars", 3), "run/ckpt_2");
    cr_expect_eq(st, DF_ERR_SHAPE);
    cr_expect_str_eq(df_last_error(), "run/ckpt_2: vocab 3 chars");
}

Test(error_prefix, leaves_success_and_a_null_prefix_alone)
{
    df_error(DF_ERR_IO, "earlier");
    cr_expect_eq(df_error_prefix(DF_OK, "path"), DF_OK);
    cr_expect_str_eq(df_last_error(), "earlier");
    cr_expect_eq(df_error_prefix(DF_ERR_IO, NULL), DF_ERR_IO);
    cr_expect_str_eq(df_last_error(), "earlier");
}

/* -------------------------------------------------- optimizers by name */

#define OPT(name_, rate, ...) ((df_optimizer_config){.name = (name_), .learning_rate = (rate), __VA_ARGS__})

/* w (1,2), all init, after two steps of opt on the loss sum(w * g) with
 * g = scale (3, 4): gradient g each step (norm 5 scale). Small values make
 * epsilons count and keep every update above w's rounding; rank 2, so that
 * AdamW decays it. */
static void two_steps(df_optimizer *opt, float scale, float init, float out[2])
{
    df_variable *w = df_variable_new("w", DF_F32, 2, SHAPE(1, 2), df_init_constant(init), NULL);
    cr_assert_not_null(w);
    df_graph *g = df_graph_new();
    float gv[2] = {3 * scale, 4 * scale};
    df_tensor gt = F32(gv, 1, 2);
    df_node *grad = df_constant(g, &gt);
    df_variable *vars[1] = {w};
    assert_ok(df_optimizer_apply(g, opt, 1, vars, &grad));
    df_graph_output(g, df_var(g, w));
    assert_ok(df_graph_compile(g));
    for (int i = 0; i < 2; i++) assert_ok(df_graph_run(g, NULL, 0, NULL, 0));
    memcpy(out, df_variable_tensor(w).data, 2 * sizeof *out);
    df_graph_free(g);
    df_variable_free(w);
}

/* The config's optimizer takes the same steps as the constructor's, bit for bit. */
static void check_same_as(const df_optimizer_config *c, df_optimizer *direct, const char *name)
{
    df_optimizer *opt;
    assert_ok(df_optimizer_from_config(c, &opt));
    cr_expect_str_eq(df_optimizer_name(opt), name);
    cr_expect_float_eq(df_optimizer_learning_rate(opt), c->learning_rate, 0);
    float a[2], b[2];
    two_steps(opt, 1e-7f, 1e-6f, a);
    two_steps(direct, 1e-7f, 1e-6f, b);
    cr_expect(a[0] == b[0] && a[1] == b[1], "%s: (%.9g, %.9g) vs the constructor's (%.9g, %.9g)", name, a[0], a[1],
              b[0], b[1]);
    df_optimizer_free(opt);
    df_optimizer_free(direct);
}

Test(optimizer_config, each_name_is_the_keras_optimizer_with_its_defaults)
{
    check_same_as(&OPT("adam", 0.01f), df_adam_new(0.01f, 0.9f, 0.999f, 1e-7f), "adam");
    check_same_as(&OPT("adamw", 0.01f), df_adamw_new(0.01f, 0.9f, 0.999f, 1e-8f, 0.01f), "adamw");
    check_same_as(&OPT("rmsprop", 0.01f), df_rmsprop_new(0.01f, 0.9f, 1e-7f), "rmsprop");
    check_same_as(&OPT("sgd", 0.01f), df_sgd_new(0.01f), "sgd");
    check_same_as(&OPT("sgd", 0.01f, .momentum = 0.5f), df_sgd_momentum_new(0.01f, 0.5f, false),
                  "sgd_momentum");
}

Test(optimizer_config, clipnorm_clips_the_gradients_by_their_global_norm)
{
    df_optimizer *opt;
    assert_ok(df_optimizer_from_config(&OPT("sgd", 1, .clipnorm = 5), &opt));
    float w[2];
    two_steps(opt, 10, 1, w);   /* g (30, 40) clipped to norm 5: (3, 4) a step */
    cr_expect(w[0] == 1 - 6 && w[1] == 1 - 8, "w = (%g, %g), expected (-5, -7)", w[0], w[1]);
    df_optimizer_free(opt);
}

Test(optimizer_config, an_unknown_name_or_a_bad_value_is_refused_naming_it)
{
    df_optimizer *opt = (df_optimizer *)1;
    cr_expect_eq(df_optimizer_from_config(&OPT("adagrad", 0.1f), &opt), DF_ERR_ARG);
    expect_message("'adagrad'");
    cr_expect_null(opt);
    cr_expect_eq(df_optimizer_from_config(&OPT("adam", 0.1f, .momentum = 0.9f), &opt), DF_ERR_ARG);
    expect_message("momentum 0.9 applies to sgd only");
    cr_expect_eq(df_optimizer_from_config(&OPT("sgd", 0.1f, .momentum = 1), &opt), DF_ERR_ARG);
    expect_message("[0, 1)");
    cr_expect_eq(df_optimizer_from_config(&OPT("sgd", -1), &opt), DF_ERR_ARG);
    expect_message("learning rate -1");
    cr_expect_eq(df_optimizer_from_config(&OPT("sgd", NAN), &opt), DF_ERR_ARG);
    cr_expect_eq(df_optimizer_from_config(&OPT("sgd", 0.1f, .clipnorm = -1), &opt), DF_ERR_ARG);
    expect_message("clipnorm -1");
    cr_expect_eq(df_optimizer_from_config(&OPT(NULL, 0.1f), &opt), DF_ERR_ARG);
    cr_expect_null(opt);
}

Test(optimizer_config, describes_what_it_makes)
{
    char buf[64];
    df_optimizer_config_describe(&OPT("adam", 0.001f), buf, sizeof buf);
    cr_expect_str_eq(buf, "adam");
    df_optimizer_config_describe(&OPT("sgd", 0.1f, .momentum = 0.9f, .clipnorm = 1), buf, sizeof buf);
    cr_expect_str_eq(buf, "sgd (momentum 0.9), clip 1");
    int n = df_optimizer_config_describe(&OPT("rmsprop", 0.1f, .clipnorm = 0.5f), buf, 4);
    cr_expect_eq(n, (int)strlen("rmsprop, clip 0.5"));
    cr_expect_str_eq(buf, "rms");
}

/* --------------------------------------------------- typed checkpoint blobs */

Test(checkpoint_records, a_fixed_size_record_is_copied_only_at_its_exact_length)
{
    df_checkpoint *ck = df_checkpoint_new();
    df_rng rng, back;
    df_rng_seed(&rng, 7);
    assert_ok(df_checkpoint_put_blob(ck, "rng", &rng, sizeof rng));
    assert_ok(df_checkpoint_get_blob_into(ck, "rng", &back, sizeof back));
    cr_expect_eq(memcmp(&rng, &back, sizeof rng), 0);
    char small[8] = "abcdefg";
    cr_expect_eq(df_checkpoint_get_blob_into(ck, "rng", small, sizeof small), DF_ERR_FORMAT);
    expect_message("'rng' has 32 bytes, expected 8");
    cr_expect_str_eq(small, "abcdefg", "a refused record leaves out as it was");
    cr_expect_eq(df_checkpoint_get_blob_into(ck, "missing", &back, sizeof back), DF_ERR_ARG);
    df_checkpoint_free(ck);
}

Test(checkpoint_records, int64_arrays_round_trip_through_a_written_file_at_any_offset)
{
    df_checkpoint *ck = df_checkpoint_new();
    int64_t v[5] = {-1, 0, 1, INT64_MAX, INT64_MIN};
    assert_ok(df_checkpoint_put_blob(ck, "odd", "x", 1));   /* puts the array at an odd offset of the file */
    assert_ok(df_checkpoint_put_int64s(ck, "values", v, 5));
    assert_ok(df_checkpoint_put_int64s(ck, "none", NULL, 0));
    char path[] = "/tmp/test_run_helpers_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    assert_ok(df_checkpoint_write(ck, path));
    df_checkpoint_free(ck);
    assert_ok(df_checkpoint_read(path, &ck));
    unlink(path);
    int64_t *got;
    size_t n;
    assert_ok(df_checkpoint_get_int64s(ck, "values", 2, 5, &got, &n));
    cr_expect_eq(n, 5);
    cr_expect_eq(memcmp(got, v, sizeof v), 0);
    free(got);
    assert_ok(df_checkpoint_get_int64s(ck, "none", 0, 0, &got, &n));
    cr_expect_eq(n, 0);
    free(got);
    df_checkpoint_free(ck);
}

Test(checkpoint_records, an_int64_array_of_another_length_is_refused_naming_it)
{
    df_checkpoint *ck = df_checkpoint_new();
    assert_ok(df_checkpoint_put_blob(ck, "ragged", "0123456789", 10));
    assert_ok(df_checkpoint_put_int64s(ck, "three", (int64_t[]){1, 2, 3}, 3));
    int64_t *got = (int64_t *)1;
    size_t n;
    cr_expect_eq(df_checkpoint_get_int64s(ck, "ragged", 0, 100, &got, &n), DF_ERR_FORMAT);
    expect_message("'ragged': 10 bytes is not a whole number of int64 values");
    cr_expect_null(got);
    cr_expect_eq(df_checkpoint_get_int64s(ck, "three", 4, 9, &got, &n), DF_ERR_FORMAT);
    expect_message("'three' has 3 int64 values, expected 4 to 9");
    cr_expect_eq(df_checkpoint_get_int64s(ck, "three", 0, 2, &got, &n), DF_ERR_FORMAT);
    cr_expect_null(got);
    df_checkpoint_free(ck);
}

/* ------------------------------------------------------------ config records */

typedef struct settings { int hidden; float rate; int cell; } settings;
static const char *const cells[] = {"lstm", "gru", NULL};
static const df_config_field fields[] = {
    {"hidden", DF_CONFIG_INT, offsetof(settings, hidden), .flag = "hidden", .required = true},
    {"rate", DF_CONFIG_FLOAT, offsetof(settings, rate), .flag = "rate"},
    {"cell", DF_CONFIG_ENUM, offsetof(settings, cell), .flag = "cell", .names = cells}};

static df_config_record record_of(const settings *s, int version)
{
    return (df_config_record){.name = "run", .fields = fields, .n_fields = 3, .version = version, .values = s,
                              .size = sizeof *s, .program = "trainer", .format_hint = "retrain"};
}

/* A checkpoint holding the record of saved (version 2). */
static df_checkpoint *saved_record(settings saved)
{
    df_checkpoint *ck = df_checkpoint_new();
    df_config_record r = record_of(&saved, 2);
    assert_ok(df_config_record_put(&r, ck));
    return ck;
}

Test(config_record, the_same_settings_pass_and_another_one_is_refused_naming_its_flag)
{
    df_checkpoint *ck = saved_record((settings){64, 0.5f, 1});
    settings now = {64, 0.5f, 1};
    df_config_record r = record_of(&now, 2);
    assert_ok(df_config_record_check(&r, ck));
    now.cell = 0;
    cr_expect_eq(df_config_record_check(&r, ck), DF_ERR_STATE);
    expect_message("it was trained with --cell gru, this run has --cell lstm");
    df_checkpoint_free(ck);
}

Test(config_record, another_format_is_refused_naming_the_program_and_the_hint)
{
    df_checkpoint *ck = saved_record((settings){64, 0.5f, 1});
    settings now = {64, 0.5f, 1};
    df_config_record r = record_of(&now, 3);
    cr_expect_eq(df_config_record_check(&r, ck), DF_ERR_FORMAT);
    cr_expect_str_eq(df_last_error(), "written by an older trainer (checkpoint format 2, this one reads 3): retrain");
    r.version = 1;
    r.format_hint = NULL;
    cr_expect_eq(df_config_record_check(&r, ck), DF_ERR_FORMAT);
    cr_expect_str_eq(df_last_error(), "written by a newer trainer (checkpoint format 2, this one reads 1)");
    df_checkpoint_free(ck);
}

Test(config_record, a_record_without_a_format_line_is_format_1_and_absent_keys_keep_this_runs_values)
{
    df_checkpoint *ck = df_checkpoint_new();
    const char *text = "hidden=64\n";   /* as the first files: no format line, no rate or cell */
    assert_ok(df_checkpoint_put_blob(ck, "run", text, strlen(text)));
    settings now = {64, 0.25f, 1};
    df_config_record r = record_of(&now, 1);
    assert_ok(df_config_record_check(&r, ck));
    r.version = 2;
    cr_expect_eq(df_config_record_check(&r, ck), DF_ERR_FORMAT);
    expect_message("checkpoint format 1, this one reads 2");
    df_checkpoint_free(ck);
}

/* ------------------------------------------------------ df_fit with a model */

/* A stateful SimpleRNN(3) -> Dense(2) on x (2,4,5), compiled with SGD. */
typedef struct rnn_fixture {
    df_model *m;
    df_optimizer *opt;
    df_function *step;
    float x[2 * 4 * 5], y[2 * 4 * 2];
    int fetched;
    float state_at_first_fetch;   /* sum |h| when an epoch's first batch was fetched */
} rnn_fixture;

static void rnn_fixture_make(rnn_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->m = df_model_new("net", 3);
    assert_ok(df_model_add(f->m, df_simple_rnn_layer(3, (df_rnn_options){.return_sequences = true, .stateful = true})));
    assert_ok(df_model_add(f->m, df_dense_layer(2, DF_ACT_NONE, true)));
    assert_ok(df_model_build(f->m, 3, SHAPE(2, 4, 5)));
    f->opt = df_sgd_new(0.1f);
    assert_ok(df_model_compile(f->m, f->opt, DF_LOSS_MEAN_SQUARED_ERROR));
    f->step = df_model_train_step(f->m);
    for (int i = 0; i < 40; i++) f->x[i] = (float)(i % 7) / 7;
    for (int i = 0; i < 16; i++) f->y[i] = (float)(i % 3) / 3;
}

static void rnn_fixture_free(rnn_fixture *f)
{
    df_function_free(f->step);
    df_model_free(f->m);
    df_optimizer_free(f->opt);
}

static float state_sum(df_model *m)
{
    df_variable *h;
    cr_assert_eq(df_model_state_variables(m, 2, DF_STATE_MAIN, &h, 1), 1);
    df_tensor t = df_variable_tensor(h);
    float s = 0;
    for (int64_t i = 0; i < df_tensor_numel(&t); i++) s += fabsf(((float *)t.data)[i]);
    return s;
}

static df_status one_batch(void *user, df_tensor *in, bool *end)
{
    rnn_fixture *f = user;
    if (f->fetched++ == 0) f->state_at_first_fetch = state_sum(f->m);
    in[0] = F32(f->x, 2, 4, 5);
    in[1] = F32(f->y, 2, 4, 2);
    *end = false;
    return DF_OK;
}

static df_fit_options model_options(rnn_fixture *f)
{
    return (df_fit_options){.train_step = f->step, .n_inputs = 2, .optimizer = f->opt, .model = f->m,
                            .model_batch = 2, .train = {.next = one_batch, .user = f}, .epochs = 1,
                            .steps_per_epoch = 2, .progress = DF_FIT_PROGRESS_NONE};
}

static bool has_entry(const df_checkpoint *ck, const char *name)
{
    for (int i = 0; i < df_checkpoint_count(ck); i++)
        if (!strcmp(df_checkpoint_entry_name(ck, i), name)) return true;
    return false;
}

/* The checkpoint df_fit writes for o, as read back from its file. */
static df_checkpoint *fit_checkpoint(const df_fit_options *o)
{
    char path[] = "/tmp/test_run_helpers_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    assert_ok(df_fit_write_checkpoint(o, &(df_fit_history){0}, path));
    df_checkpoint *ck;
    assert_ok(df_checkpoint_read(path, &ck));
    unlink(path);
    return ck;
}

Test(fit_model, a_checkpoint_holds_the_models_weights_and_the_state_of_its_training_batch)
{
    rnn_fixture f;
    rnn_fixture_make(&f);
    df_fit_options o = model_options(&f);
    df_checkpoint *ck = fit_checkpoint(&o);
    const char *names[] = {"simple_rnn/kernel", "simple_rnn/recurrent_kernel", "simple_rnn/bias", "dense/kernel",
                           "dense/bias", "simple_rnn/state_h"};
    for (int i = 0; i < 6; i++) cr_expect(has_entry(ck, names[i]), "no entry %s", names[i]);
    /* and back: the state restores into the model */
    df_variable *h;
    cr_assert_eq(df_model_state_variables(f.m, 2, DF_STATE_MAIN, &h, 1), 1);
    float saved = ((float *)df_variable_tensor(h).data)[0];
    ((float *)df_variable_tensor(h).data)[0] = saved + 1;
    df_fit_history hist;
    assert_ok(df_fit_restore_checkpoint(&o, ck, &hist));
    cr_expect_float_eq(((float *)df_variable_tensor(h).data)[0], saved, 0);
    df_checkpoint_free(ck);
    rnn_fixture_free(&f);
}

Test(fit_model, the_carried_state_is_zeroed_at_an_epoch_start_without_a_hook)
{
    rnn_fixture f;
    rnn_fixture_make(&f);
    df_fit_options o = model_options(&f);
    df_variable *h;
    cr_assert_eq(df_model_state_variables(f.m, 2, DF_STATE_MAIN, &h, 1), 1);
    ((float *)df_variable_tensor(h).data)[0] = 5;
    assert_ok(df_fit(&o, NULL));
    cr_expect_eq(f.fetched, 2);
    cr_expect_float_eq(f.state_at_first_fetch, 0, 0, "state at the first batch: sum |h| = %g", f.state_at_first_fetch);
    cr_expect_gt(state_sum(f.m), 0, "the steps carried a state");
    rnn_fixture_free(&f);
}

Test(fit_model, a_model_needs_its_batch_size)
{
    rnn_fixture f;
    rnn_fixture_make(&f);
    df_fit_options o = model_options(&f);
    o.model_batch = 0;
    cr_expect_eq(df_fit(&o, NULL), DF_ERR_ARG);
    expect_message("model_batch");
    rnn_fixture_free(&f);
}

static df_status put_vocabulary(void *user, df_checkpoint *ck)
{
    (void)user;
    return df_checkpoint_put_blob(ck, "vocab", "abc", 3);
}

Test(fit_model, the_config_record_goes_into_checkpoints_and_a_resume_refuses_another)
{
    rnn_fixture f;
    rnn_fixture_make(&f);
    settings now = {64, 0.5f, 1};
    df_config_record r = record_of(&now, 2);
    df_fit_options o = model_options(&f);
    o.config = &r;
    o.save_extra = put_vocabulary;
    df_checkpoint *ck = fit_checkpoint(&o);
    cr_expect_str_eq(df_checkpoint_entry_name(ck, 0), "run", "the record comes first");
    cr_expect_str_eq(df_checkpoint_entry_name(ck, 1), "vocab", "then save_extra's entries");
    df_fit_history h;
    assert_ok(df_fit_restore_checkpoint(&o, ck, &h));
    now.hidden = 65;
    cr_expect_eq(df_fit_restore_checkpoint(&o, ck, &h), DF_ERR_STATE);
    expect_message("--hidden 64, this run has --hidden 65");
    df_checkpoint_free(ck);
    rnn_fixture_free(&f);
}

/* ------------------------------------------------------------ df_graph_trace */

static df_status add_inputs(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_graph_output(g, df_mul(g, df_add(g, in[0], in[1]), in[1]));
    return df_graph_status(g);
}

static df_status failing(df_graph *g, df_node **in, void *user)
{
    (void)g, (void)in, (void)user;
    return df_error(DF_ERR_UNSUPPORTED, "the builder says no");
}

/* A builder that leaves an error in the graph but says it went well. */
static df_status forgets_its_error(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_graph_output(g, df_add(g, in[0], df_placeholder(g, DF_F32, 1, SHAPE(4), "z")));   /* (3) + (4) */
    return DF_OK;
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

Test(graph_trace, traces_a_builder_into_a_compiled_graph_with_its_names_and_passes)
{
    df_tensor_spec s = {DF_F32, 1, {3}};
    df_graph *g;
    assert_ok(df_graph_trace(add_inputs, NULL, 2, (df_tensor_spec[]){s, s}, (const char *[]){"left", NULL}, DF_PASS_ALL,
                             &g));
    float a[3] = {1, 2, 3}, b[3] = {10, 20, 30};
    df_tensor in[2] = {F32(a, 3), F32(b, 3)};
    df_tensor out = run1(g, in, 2);
    cr_expect(((float *)out.data)[2] == 990, "got %g", ((float *)out.data)[2]);
    df_graph_stats all, none;
    assert_ok(df_graph_get_stats(g, &all));
    const char *dot = "/tmp/test_run_helpers_trace.dot";
    assert_ok(df_graph_dump_dot(g, dot));
    cr_expect(file_has(dot, "left"), "placeholder 0 is named left");
    cr_expect(file_has(dot, "input1"), "placeholder 1 is named as a df_function names it");
    unlink(dot);
    df_graph_free(g);
    assert_ok(df_graph_trace(add_inputs, NULL, 2, (df_tensor_spec[]){s, s}, NULL, 0, &g));
    assert_ok(df_graph_get_stats(g, &none));
    cr_expect_gt(all.fused_nodes, 0);
    cr_expect_eq(none.fused_nodes, 0, "no passes: nothing fused");
    df_graph_free(g);
}

Test(graph_trace, the_builders_error_is_returned_and_no_graph)
{
    df_graph *g = (df_graph *)1;
    df_tensor_spec s = {DF_F32, 1, {3}};
    cr_expect_eq(df_graph_trace(failing, NULL, 1, &s, NULL, DF_PASS_ALL, &g), DF_ERR_UNSUPPORTED);
    expect_message("the builder says no");
    cr_expect_null(g);
    cr_expect_eq(df_graph_trace(forgets_its_error, NULL, 1, &s, NULL, DF_PASS_ALL, &g), DF_ERR_SHAPE);
    cr_expect_null(g);
    cr_expect_eq(df_graph_trace(failing, NULL, 17, &s, NULL, DF_PASS_ALL, &g), DF_ERR_ARG);
}

/* ------------------------------------------------------------ df_tensor_alloc */

Test(tensor_alloc, gives_zeroed_storage_of_the_shape_and_frees_it)
{
    df_tensor t;
    assert_ok(df_tensor_alloc(DF_I32, 2, SHAPE(3, 5), &t));
    cr_expect(t.dtype == DF_I32 && t.ndim == 2 && t.shape[0] == 3 && t.shape[1] == 5);
    cr_assert_not_null(t.data);
    for (int i = 0; i < 15; i++) cr_expect_eq(((int32_t *)t.data)[i], 0);
    ((int32_t *)t.data)[14] = 7;   /* the whole 3 x 5 is writable (valgrind / ASan would say) */
    df_tensor_free_data(&t);
    cr_expect_null(t.data);
    df_tensor_free_data(&t);   /* twice: a no-op */
    cr_expect_eq(df_tensor_alloc(DF_F32, 1, SHAPE(-2), &t), DF_ERR_SHAPE);
    cr_expect_null(t.data);
    cr_expect_eq(df_tensor_alloc(DF_F32, 5, SHAPE(1, 1, 1, 1, 1), &t), DF_ERR_ARG);
    assert_ok(df_tensor_alloc(DF_F32, 0, NULL, &t));   /* a scalar */
    cr_expect(t.ndim == 0 && t.data && *(float *)t.data == 0);
    df_tensor_free_data(&t);
}
