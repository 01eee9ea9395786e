/* test_config.c — config records (dagflow.h): format, parse, compare and
 * the checkpoint blob, on a struct with every field type. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "dagflow.h"

typedef enum { CELL_LSTM, CELL_GRU } cell;
static const char *const cells[] = {"lstm", "gru", NULL};

typedef struct cfg {
    int hidden;
    int64_t steps;
    uint64_t seed;
    float rate;
    bool reset_before;   /* the file says reset_after */
    cell kind;
    char name[8];
    int epochs;          /* may change on resume */
    float decay;         /* only with a GRU */
} cfg;

static bool is_gru(const void *c) { return ((const cfg *)c)->kind == CELL_GRU; }

static const df_config_field fields[] = {
    {"hidden", DF_CONFIG_INT, offsetof(cfg, hidden), .required = true},
    {"steps", DF_CONFIG_INT64, offsetof(cfg, steps), .flag = "steps"},
    {"seed", DF_CONFIG_U64, offsetof(cfg, seed), .flag = "seed", .required = true},
    {"rate", DF_CONFIG_FLOAT, offsetof(cfg, rate), .flag = "learning-rate"},
    {"reset_after", DF_CONFIG_BOOL, offsetof(cfg, reset_before), .flag = "reset-after", .negate = true},
    {"cell", DF_CONFIG_ENUM, offsetof(cfg, kind), .flag = "cell", .names = cells},
    {"name", DF_CONFIG_STRING, offsetof(cfg, name), .flag = "name", .size = 8},
    {"epochs", DF_CONFIG_INT, offsetof(cfg, epochs), .flag = "epochs", .may_change = true},
    {"decay", DF_CONFIG_FLOAT, offsetof(cfg, decay), .flag = "decay", .applies = is_gru},
};
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

static const cfg sample = {.hidden = 32, .steps = 1LL << 40, .seed = 18446744073709551615ull, .rate = 0.1f,
                           .reset_before = true, .kind = CELL_GRU, .name = "run-1", .epochs = 3, .decay = 0.5f};

Test(config, formats_every_type_and_parses_it_back_exactly)
{
    char text[1024];
    int len = df_config_format(fields, N_FIELDS, 7, &sample, text, sizeof text);
    cr_assert_gt(len, 0, "%s", df_last_error());
    cr_expect_str_eq(text, "format=7\nhidden=32\nsteps=1099511627776\nseed=18446744073709551615\nrate=0.100000001\n"
                           "reset_after=0\ncell=gru\nname=run-1\nepochs=3\ndecay=0.5\n");
    cfg back = {0};
    int version = -1;
    cr_assert_eq(df_config_parse(fields, N_FIELDS, text, (size_t)len, &back, &version), DF_OK, "%s", df_last_error());
    cr_expect_eq(version, 7);
    cr_expect(back.hidden == sample.hidden && back.steps == sample.steps && back.epochs == 3 && back.decay == 0.5f);
    cr_expect(back.rate == sample.rate && back.reset_before && back.kind == CELL_GRU && back.seed == sample.seed &&
              !strcmp(back.name, "run-1"));
}

Test(config, absent_keys_keep_the_defaults_and_required_ones_are_named)
{
    cfg c = {.rate = 0.25f, .kind = CELL_LSTM, .epochs = 9};
    int version = -1;
    const char *old = "hidden=4\nseed=9\nreset_after=true\n";
    cr_assert_eq(df_config_parse(fields, N_FIELDS, old, strlen(old), &c, &version), DF_OK, "%s", df_last_error());
    cr_expect(c.hidden == 4 && c.seed == 9 && c.rate == 0.25f && c.kind == CELL_LSTM && c.epochs == 9 &&
              !c.reset_before && version == 0);
    const char *no_seed = "format=2\nhidden=4\n";
    cr_expect_eq(df_config_parse(fields, N_FIELDS, no_seed, strlen(no_seed), &c, &version), DF_ERR_FORMAT);
    cr_expect_not_null(strstr(df_last_error(), "incomplete: no seed"), "%s", df_last_error());
}

Test(config, a_bad_value_or_unknown_key_is_a_format_error_naming_the_key)
{
    const char *bad[][2] = {{"hidden=4x", "hidden"},       {"hidden=99999999999", "hidden"}, {"seed=-1", "seed"},
                            {"rate=nan", "rate"},          {"rate=", "rate"},                {"reset_after=2", "reset_after"},
                            {"cell=lstmx", "cell"},        {"name=toolongname", "name"},     {"colour=red", "colour"},
                            {"no equals sign", "no equals"}, {"format=x", "format"},         {"steps=1.5", "steps"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "hidden=4\nseed=1\n%s\n", bad[i][0]);
        cfg c = {0};
        int version;
        cr_expect_eq(df_config_parse(fields, N_FIELDS, text, strlen(text), &c, &version), DF_ERR_FORMAT, "%s", bad[i][0]);
        cr_expect_not_null(strstr(df_last_error(), bad[i][1]), "'%s' not in: %s", bad[i][1], df_last_error());
    }
}

Test(config, formatting_refuses_what_it_could_not_read_back)
{
    char text[1024];
    cfg c = sample;
    c.kind = (cell)5;
    cr_expect_eq(df_config_format(fields, N_FIELDS, 1, &c, text, sizeof text), -1);
    cr_expect_not_null(strstr(df_last_error(), "cell"), "%s", df_last_error());
    c = sample;
    strcpy(c.name, "a\nb");
    cr_expect_eq(df_config_format(fields, N_FIELDS, 1, &c, text, sizeof text), -1);
    cr_expect_not_null(strstr(df_last_error(), "name"), "%s", df_last_error());
    cr_expect_eq(df_config_format(fields, N_FIELDS, 1, &sample, text, 20), -1, "too small a buffer");
}

Test(config, compare_names_the_first_difference_by_its_flag)
{
    const df_config_field *changed[N_FIELDS + 1];
    cr_expect_eq(df_config_compare(fields, N_FIELDS, &sample, &sample, changed), DF_OK);
    cr_expect_null(changed[0]);
    struct { void (*change)(cfg *); const char *needle; } cases[] = {
        {NULL, "it has hidden=32, this run has hidden=16"},
        {NULL, "it was trained with --seed 18446744073709551615, this run has --seed 7"},
        {NULL, "--learning-rate 0.1, this run has --learning-rate 0.2"},
        {NULL, "--reset-after false, this run has --reset-after true"},
        {NULL, "--cell gru, this run has --cell lstm"},
        {NULL, "--name run-1, this run has --name run-2"},
        {NULL, "--steps 1099511627776, this run has --steps 5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg now = sample;
        switch (i) {
        case 0: now.hidden = 16; break;
        case 1: now.seed = 7; break;
        case 2: now.rate = 0.2f; break;
        case 3: now.reset_before = false; break;
        case 4: now.kind = CELL_LSTM; break;
        case 5: strcpy(now.name, "run-2"); break;
        case 6: now.steps = 5; break;
        }
        cr_expect_eq(df_config_compare(fields, N_FIELDS, &sample, &now, NULL), DF_ERR_STATE, "case %zu", i);
        cr_expect_not_null(strstr(df_last_error(), cases[i].needle), "case %zu: '%s' not in: %s", i, cases[i].needle,
                           df_last_error());
    }
}

Test(config, fields_that_may_change_are_reported_and_others_apply_only_when_they_matter)
{
    const df_config_field *changed[N_FIELDS + 1];
    cfg now = sample;
    now.epochs = 10;
    cr_expect_eq(df_config_compare(fields, N_FIELDS, &sample, &now, changed), DF_OK, "%s", df_last_error());
    cr_expect(changed[0] && !strcmp(changed[0]->key, "epochs") && !changed[1], "epochs reported as changed");
    cfg lstm = sample, lstm_now;
    lstm.kind = CELL_LSTM;
    lstm_now = lstm;
    lstm_now.decay = 0.25f;
    cr_expect_eq(df_config_compare(fields, N_FIELDS, &lstm, &lstm_now, NULL), DF_OK, "decay applies to a GRU only");
    now = sample;
    now.decay = 0.25f;
    cr_expect_eq(df_config_compare(fields, N_FIELDS, &sample, &now, NULL), DF_ERR_STATE, "a GRU's decay counts");
    cr_expect_not_null(strstr(df_last_error(), "--decay 0.5, this run has --decay 0.25"), "%s", df_last_error());
}

Test(config, goes_into_a_checkpoint_and_back)
{
    df_checkpoint *ck = df_checkpoint_new();
    cr_assert_not_null(ck);
    cr_assert_eq(df_config_put(ck, "config", fields, N_FIELDS, 3, &sample), DF_OK, "%s", df_last_error());
    cfg back = {0};
    int version = 0;
    cr_assert_eq(df_config_get(ck, "config", fields, N_FIELDS, &back, &version), DF_OK, "%s", df_last_error());
    cr_expect(version == 3 && back.hidden == 32 && back.seed == sample.seed && back.decay == 0.5f);
    cr_expect_neq(df_config_get(ck, "absent", fields, N_FIELDS, &back, &version), DF_OK);
    df_checkpoint_free(ck);
}

/* Ranges: min <= v <= max, or v < max with below_max; max INFINITY is open;
 * floats finite; enums among their names. The message names the flag. */
Test(config, check_enforces_each_fields_range_naming_its_flag)
{
    static const df_config_field ranged[] = {
        {"hidden", DF_CONFIG_INT, offsetof(cfg, hidden), .min = 1, .max = INFINITY},
        {"steps", DF_CONFIG_INT64, offsetof(cfg, steps), .flag = "steps", .min = 0, .max = 1e13},
        {"rate", DF_CONFIG_FLOAT, offsetof(cfg, rate), .flag = "learning-rate", .min = 0, .max = INFINITY},
        {"cell", DF_CONFIG_ENUM, offsetof(cfg, kind), .flag = "cell", .names = cells},
        {"epochs", DF_CONFIG_INT, offsetof(cfg, epochs), .flag = "epochs"},   /* no range */
        {"decay", DF_CONFIG_FLOAT, offsetof(cfg, decay), .flag = "decay", .min = 0, .max = 1, .below_max = true}};
    int n = (int)(sizeof ranged / sizeof ranged[0]);
    cfg ok = sample;
    ok.epochs = -5;
    cr_expect_eq(df_config_check(ranged, n, &ok), DF_OK, "%s", df_last_error());
    ok.steps = (int64_t)1e13;    /* max itself is in */
    ok.decay = 0;
    cr_expect_eq(df_config_check(ranged, n, &ok), DF_OK, "%s", df_last_error());
    struct { int field; const char *needle; } cases[] = {
        {0, "hidden must be >= 1, got 0"},          {1, "--steps must be in [0, 1e+13], got 1e+13"},
        {1, "--steps must be in [0, 1e+13], got -1"}, {2, "--learning-rate must be >= 0, got inf"},
        {2, "--learning-rate must be >= 0, got nan"}, {3, "--cell must be one of lstm, gru; got 2"},
        {5, "--decay must be in [0, 1), got 1"},      {5, "--decay must be in [0, 1), got -0.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg bad = sample;
        switch (i) {
        case 0: bad.hidden = 0; break;
        case 1: bad.steps = (int64_t)1e13 + 1; break;
        case 2: bad.steps = -1; break;
        case 3: bad.rate = INFINITY; break;
        case 4: bad.rate = NAN; break;
        case 5: bad.kind = (cell)2; break;
        case 6: bad.decay = 1; break;
        case 7: bad.decay = -0.5f; break;
        }
        cr_expect_eq(df_config_check(ranged, n, &bad), DF_ERR_ARG, "case %zu", i);
        cr_expect_not_null(strstr(df_last_error(), cases[i].needle), "case %zu: '%s' not in: %s", i, cases[i].needle,
                           df_last_error());
    }
}

/* A field whose value is not the option itself (a hash of the file an
 * option names) is described by `about`, still naming the option. */
Test(config, compare_describes_a_derived_value_by_about)
{
    typedef struct { uint64_t data_hash; } derived;
    const df_config_field derived_fields[] = {
        {"data_hash", DF_CONFIG_U64, offsetof(derived, data_hash), .flag = "data", .about = "the corpus's XXH64"}};
    derived saved = {.data_hash = 12}, now = {.data_hash = 34};
    cr_assert_eq(df_config_compare(derived_fields, 1, &saved, &now, NULL), DF_ERR_STATE);
    cr_expect_str_eq(df_last_error(), "its --data differs (the corpus's XXH64: 12, this run's 34)");
    cr_expect_eq(df_config_compare(derived_fields, 1, &saved, &saved, NULL), DF_OK);
}
