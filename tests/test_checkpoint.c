/* test_checkpoint.c — checkpoint container, file format, atomic writes, and
 * robustness against corrupt files and allocation failures. */
#define _GNU_SOURCE            /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "base.h"      /* df_fail_alloc_after: the allocation-failure hook */

enum { HEADER = 32 };

/* ------------------------------------------------------------- temp files */

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/dfck.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tmpdir(void)
{
    df_fail_alloc_after(-1);
    nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(checkpoint, .init = make_tmpdir, .fini = remove_tmpdir);

/* "<tmpdir>/name" in buf. */
static char *in_tmp(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*len ? *len : 1);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

#define assert_error(call, status, needle)                                              \
    do {                                                                                \
        df_status st_ = (call);                                                         \
        cr_assert_eq(st_, (status), "%s: got %s (%s)", #call, df_status_name(st_),      \
                     df_last_error());                                                  \
        cr_assert_not_null(strstr(df_last_error(), (needle)), "'%s' not in: %s",        \
                           (needle), df_last_error());                                  \
    } while (0)

/* ------------------------------------------------------- a sample training */

static const char config_text[] = "layers=2\nhidden=128\nlr=0.001\n";

typedef struct sample {
    df_rng rng;
    int64_t step;
    df_variable *w, *counts, *scalar;
    df_checkpoint *ck;
} sample;

static df_variable *new_var(const char *name, df_dtype dtype, int ndim, const int64_t *shape,
                            df_rng *rng)
{
    df_variable *v = df_variable_new(name, dtype, ndim, shape,
                                     dtype == DF_F32 ? df_init_uniform(-1, 1) : df_init_zeros(), rng);
    cr_assert_not_null(v, "%s", df_last_error());
    return v;
}

/* Variables with recognisable values and a checkpoint of them plus blobs. */
static void sample_make(sample *s)
{
    df_rng_seed(&s->rng, 7);
    s->step = 1234567890123;
    s->w = new_var("dense/kernel", DF_F32, 2, (int64_t[]){3, 5}, &s->rng);
    s->counts = new_var("counts", DF_I32, 1, (int64_t[]){7}, NULL);
    s->scalar = new_var("adam/iterations", DF_F32, 0, NULL, &s->rng);
    int32_t *c = df_variable_tensor(s->counts).data;
    for (int i = 0; i < 7; i++) c[i] = (int32_t)(i * 1000003 - 3);
    s->ck = df_checkpoint_new();
    cr_assert_not_null(s->ck);
    cr_assert_eq(df_checkpoint_put_blob(s->ck, "config", config_text, strlen(config_text)), DF_OK);
    cr_assert_eq(df_checkpoint_put_variable(s->ck, s->w), DF_OK);
    cr_assert_eq(df_checkpoint_put_blob(s->ck, "rng", &s->rng, sizeof s->rng), DF_OK);
    cr_assert_eq(df_checkpoint_put_variable(s->ck, s->counts), DF_OK);
    cr_assert_eq(df_checkpoint_put_blob(s->ck, "step", &s->step, sizeof s->step), DF_OK);
    cr_assert_eq(df_checkpoint_put_blob(s->ck, "empty", NULL, 0), DF_OK);
    cr_assert_eq(df_checkpoint_put_variable(s->ck, s->scalar), DF_OK);
}

static void sample_free(sample *s)
{
    df_checkpoint_free(s->ck);
    df_variable_free(s->w);
    df_variable_free(s->counts);
    df_variable_free(s->scalar);
}

static uint64_t var_hash(const df_variable *v)
{
    df_tensor t = df_variable_tensor(v);
    return XXH64(t.data, (size_t)df_variable_numel(v) * df_dtype_size(t.dtype), 0);
}

/* A zeroed variable shaped like v, restored from ck, must equal v bit for bit. */
static void expect_restores(const df_checkpoint *ck, const df_variable *v)
{
    df_tensor t = df_variable_tensor(v);
    df_variable *copy = df_variable_new(df_variable_name(v), t.dtype, t.ndim, t.shape,
                                        df_init_zeros(), NULL);
    cr_assert_not_null(copy);
    cr_assert_eq(df_checkpoint_restore_variable(ck, copy), DF_OK, "%s", df_last_error());
    cr_assert_eq(var_hash(copy), var_hash(v), "variable %s differs", df_variable_name(v));
    df_variable_free(copy);
}

static void expect_blob(const df_checkpoint *ck, const char *key, const void *want, size_t len)
{
    const void *data = NULL;
    size_t got = 99;
    cr_assert_eq(df_checkpoint_get_blob(ck, key, &data, &got), DF_OK, "%s", df_last_error());
    cr_assert_eq(got, len, "blob %s has %zu bytes, want %zu", key, got, len);
    cr_assert(len == 0 || memcmp(data, want, len) == 0, "blob %s differs", key);
}

/* Everything sample_make stored is in ck, exactly. */
static void expect_sample(const df_checkpoint *ck, const sample *s)
{
    cr_assert_eq(df_checkpoint_count(ck), 7);
    expect_blob(ck, "config", config_text, strlen(config_text));
    expect_blob(ck, "rng", &s->rng, sizeof s->rng);
    expect_blob(ck, "step", &s->step, sizeof s->step);
    expect_blob(ck, "empty", NULL, 0);
    expect_restores(ck, s->w);
    expect_restores(ck, s->counts);
    expect_restores(ck, s->scalar);
}

/* The sample written to "<tmpdir>/name"; its bytes in *len. */
static unsigned char *sample_file(sample *s, char *path, size_t path_len, const char *name,
                                  size_t *len)
{
    sample_make(s);
    in_tmp(path, path_len, name);
    cr_assert_eq(df_checkpoint_write(s->ck, path), DF_OK, "%s", df_last_error());
    return slurp(path, len);
}

/* ------------------------------------------------------------- round trips */

Test(checkpoint, round_trip_blobs_and_variables_bit_exact)
{
    sample s;
    char path[256];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "%s", df_last_error());
    expect_sample(back, &s);
    df_checkpoint_free(back);
    cr_assert_eq(count_files(tmpdir), 1, "no temp file may remain");
    sample_free(&s);
}

Test(checkpoint, read_memory_copies_the_buffer)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read_memory(bytes, len, &back), DF_OK, "%s", df_last_error());
    memset(bytes, 0xAB, len);
    free(bytes);
    expect_sample(back, &s);
    df_checkpoint_free(back);
    sample_free(&s);
}

Test(checkpoint, entries_are_listed_in_insertion_order_with_kinds)
{
    sample s;
    sample_make(&s);
    static const char *names[] = {"config", "dense/kernel", "rng", "counts", "step", "empty",
                                  "adam/iterations"};
    for (int i = 0; i < 7; i++) {
        cr_assert_str_eq(df_checkpoint_entry_name(s.ck, i), names[i]);
        bool tensor = i == 1 || i == 3 || i == 6;
        cr_assert_eq(df_checkpoint_entry_kind(s.ck, i),
                     tensor ? DF_CHECKPOINT_TENSOR : DF_CHECKPOINT_BLOB);
    }
    cr_assert_null(df_checkpoint_entry_name(s.ck, 7));
    cr_assert_null(df_checkpoint_entry_name(s.ck, -1));
    cr_assert_eq((int)df_checkpoint_entry_kind(s.ck, 7), 0);
    cr_assert_eq(df_checkpoint_count(NULL), 0);
    sample_free(&s);
}

Test(checkpoint, a_read_checkpoint_writes_back_byte_identical)
{
    sample s;
    char path[256], again[256];
    size_t len, len2;
    unsigned char *first = sample_file(&s, path, sizeof path, "a", &len);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK);
    cr_assert_eq(df_checkpoint_write(back, in_tmp(again, sizeof again, "b")), DF_OK,
                 "%s", df_last_error());
    unsigned char *second = slurp(again, &len2);
    cr_assert_eq(len, len2);
    cr_assert_eq(memcmp(first, second, len), 0);
    free(first);
    free(second);
    df_checkpoint_free(back);
    sample_free(&s);
}

Test(checkpoint, put_variable_saves_the_value_at_write_time)
{
    sample s;
    sample_make(&s);
    float *w = df_variable_tensor(s.w).data;
    w[4] = 42.5f;                       /* after put, before write */
    char path[256];
    cr_assert_eq(df_checkpoint_write(s.ck, in_tmp(path, sizeof path, "ckpt")), DF_OK);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK);
    expect_restores(back, s.w);
    df_checkpoint_free(back);
    sample_free(&s);
}

Test(checkpoint, rng_state_resumes_the_same_sequence)
{
    sample s;
    char path[256];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    uint64_t expected[5];
    df_rng original = s.rng;
    for (int i = 0; i < 5; i++) expected[i] = df_rng_next(&original);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK);
    const void *data;
    size_t n;
    cr_assert_eq(df_checkpoint_get_blob(back, "rng", &data, &n), DF_OK);
    df_rng resumed;
    cr_assert_eq(n, sizeof resumed);
    memcpy(&resumed, data, n);
    for (int i = 0; i < 5; i++) cr_assert_eq(df_rng_next(&resumed), expected[i]);
    df_checkpoint_free(back);
    sample_free(&s);
}

Test(checkpoint, large_variable_round_trips)
{
    df_rng rng;
    df_rng_seed(&rng, 3);
    df_variable *big = new_var("embedding", DF_F32, 2, (int64_t[]){1024, 1024}, &rng);
    df_checkpoint *ck = df_checkpoint_new();
    cr_assert_eq(df_checkpoint_put_variable(ck, big), DF_OK);
    char path[256];
    cr_assert_eq(df_checkpoint_write(ck, in_tmp(path, sizeof path, "big")), DF_OK);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "%s", df_last_error());
    expect_restores(back, big);
    df_checkpoint_free(back);
    df_checkpoint_free(ck);
    df_variable_free(big);
}

Test(checkpoint, overwriting_replaces_the_old_checkpoint)
{
    sample s;
    char path[256];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    df_checkpoint *other = df_checkpoint_new();
    cr_assert_eq(df_checkpoint_put_blob(other, "only", "x", 1), DF_OK);
    cr_assert_eq(df_checkpoint_write(other, path), DF_OK);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK);
    cr_assert_eq(df_checkpoint_count(back), 1);
    expect_blob(back, "only", "x", 1);
    cr_assert_eq(count_files(tmpdir), 1);
    df_checkpoint_free(back);
    df_checkpoint_free(other);
    sample_free(&s);
}

/* ------------------------------------------------------ container errors */

Test(checkpoint, restore_into_another_shape_names_both_shapes)
{
    sample s;
    sample_make(&s);
    df_variable *wrong = new_var("dense/kernel", DF_F32, 2, (int64_t[]){5, 3}, &s.rng);
    uint64_t before = var_hash(wrong);
    assert_error(df_checkpoint_restore_variable(s.ck, wrong), DF_ERR_SHAPE, "dense/kernel");
    cr_assert_not_null(strstr(df_last_error(), "(5,3)"), "%s", df_last_error());
    cr_assert_not_null(strstr(df_last_error(), "(3,5)"), "%s", df_last_error());
    cr_assert_eq(var_hash(wrong), before, "a failed restore must not write");
    df_variable_free(wrong);
    sample_free(&s);
}

Test(checkpoint, restore_into_another_dtype)
{
    sample s;
    sample_make(&s);
    df_variable *wrong = new_var("counts", DF_F32, 1, (int64_t[]){7}, &s.rng);
    assert_error(df_checkpoint_restore_variable(s.ck, wrong), DF_ERR_DTYPE, "counts");
    cr_assert_not_null(strstr(df_last_error(), "i32"), "%s", df_last_error());
    df_variable_free(wrong);
    sample_free(&s);
}

Test(checkpoint, missing_names_and_wrong_kinds)
{
    sample s;
    sample_make(&s);
    df_variable *stranger = new_var("decoder/bias", DF_F32, 1, (int64_t[]){4}, &s.rng);
    assert_error(df_checkpoint_restore_variable(s.ck, stranger), DF_ERR_ARG, "decoder/bias");
    const void *data;
    size_t len;
    assert_error(df_checkpoint_get_blob(s.ck, "vocab", &data, &len), DF_ERR_ARG, "vocab");
    assert_error(df_checkpoint_get_blob(s.ck, "counts", &data, &len), DF_ERR_ARG, "tensor");
    df_variable *named_like_blob = new_var("config", DF_F32, 0, NULL, &s.rng);
    assert_error(df_checkpoint_restore_variable(s.ck, named_like_blob), DF_ERR_ARG, "blob");
    df_variable_free(named_like_blob);
    df_variable_free(stranger);
    sample_free(&s);
}

Test(checkpoint, a_stored_tensor_is_read_without_a_variable_of_its_shape)
{
    sample s;
    char path[256];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "%s", df_last_error());
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    cr_assert_eq(df_checkpoint_tensor_shape(back, "dense/kernel", &dtype, &ndim, shape), DF_OK, "%s", df_last_error());
    cr_expect(dtype == DF_F32 && ndim == 2 && shape[0] == 3 && shape[1] == 5, "%s (%d dims) %lld x %lld",
              df_dtype_name(dtype), ndim, (long long)shape[0], (long long)shape[1]);
    float got[15];
    cr_assert_eq(df_checkpoint_get_tensor_into(back, "dense/kernel", got, sizeof got), DF_OK, "%s", df_last_error());
    cr_expect_eq(memcmp(got, df_variable_tensor(s.w).data, sizeof got), 0, "the stored values, row-major");
    float short_buf[14];
    assert_error(df_checkpoint_get_tensor_into(back, "dense/kernel", short_buf, sizeof short_buf), DF_ERR_FORMAT,
                 "60 bytes, not 56");
    assert_error(df_checkpoint_tensor_shape(back, "decoder/bias", &dtype, &ndim, shape), DF_ERR_ARG, "decoder/bias");
    assert_error(df_checkpoint_tensor_shape(back, "config", &dtype, &ndim, shape), DF_ERR_ARG, "blob");
    assert_error(df_checkpoint_get_tensor_into(back, "config", got, sizeof got), DF_ERR_ARG, "blob");
    assert_error(df_checkpoint_tensor_shape(NULL, "dense/kernel", &dtype, &ndim, shape), DF_ERR_ARG, "null");
    df_checkpoint_free(back);
    sample_free(&s);
}

Test(checkpoint, duplicate_names_are_rejected)
{
    sample s;
    sample_make(&s);
    assert_error(df_checkpoint_put_blob(s.ck, "dense/kernel", "x", 1), DF_ERR_ARG, "dense/kernel");
    assert_error(df_checkpoint_put_blob(s.ck, "config", "x", 1), DF_ERR_ARG, "already");
    assert_error(df_checkpoint_put_variable(s.ck, s.counts), DF_ERR_ARG, "counts");
    cr_assert_eq(df_checkpoint_count(s.ck), 7);
    expect_blob(s.ck, "config", config_text, strlen(config_text));
    sample_free(&s);
}

Test(checkpoint, name_length_limits)
{
    df_checkpoint *ck = df_checkpoint_new();
    char *name = malloc(65537);
    memset(name, 'n', 65536);
    name[65536] = '\0';
    assert_error(df_checkpoint_put_blob(ck, name, "x", 1), DF_ERR_ARG, "65536");
    assert_error(df_checkpoint_put_blob(ck, "", "x", 1), DF_ERR_ARG, "length 0");
    name[65535] = '\0';
    cr_assert_eq(df_checkpoint_put_blob(ck, name, "y", 1), DF_OK);
    char path[256];
    cr_assert_eq(df_checkpoint_write(ck, in_tmp(path, sizeof path, "long")), DF_OK);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "%s", df_last_error());
    expect_blob(back, name, "y", 1);
    df_checkpoint_free(back);
    df_checkpoint_free(ck);
    free(name);
}

Test(checkpoint, null_arguments)
{
    df_checkpoint *ck = df_checkpoint_new(), *out = (df_checkpoint *)1;
    const void *data;
    size_t len;
    cr_assert_eq(df_checkpoint_put_blob(NULL, "k", "x", 1), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_put_blob(ck, NULL, "x", 1), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_put_blob(ck, "k", NULL, 1), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_put_variable(ck, NULL), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_get_blob(ck, "k", NULL, &len), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_get_blob(NULL, "k", &data, &len), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_restore_variable(ck, NULL), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_write(ck, NULL), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_write(NULL, "x"), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_read(NULL, &out), DF_ERR_ARG);
    cr_assert_null(out, "*out is cleared on error");
    cr_assert_eq(df_checkpoint_read_memory(NULL, 4, &out), DF_ERR_ARG);
    cr_assert_eq(df_checkpoint_count(ck), 0);
    df_checkpoint_free(ck);
    df_checkpoint_free(NULL);
}

/* ---------------------------------------------------------- corrupt files */

/* Reads bytes both from memory and from a file; both must fail with FORMAT
 * and a message containing needle (NULL: any). */
static void expect_format_error(const unsigned char *bytes, size_t len, const char *needle)
{
    char path[256];
    df_checkpoint *ck = (df_checkpoint *)1;
    df_status st = df_checkpoint_read_memory(bytes, len, &ck);
    cr_assert_eq(st, DF_ERR_FORMAT, "%zu bytes: got %s (%s)", len, df_status_name(st), df_last_error());
    cr_assert_null(ck);
    if (needle) cr_assert_not_null(strstr(df_last_error(), needle), "'%s' not in: %s", needle, df_last_error());
    spit(in_tmp(path, sizeof path, "bad"), bytes, len);
    ck = (df_checkpoint *)1;
    st = df_checkpoint_read(path, &ck);
    cr_assert_eq(st, DF_ERR_FORMAT, "%zu bytes: got %s (%s)", len, df_status_name(st), df_last_error());
    cr_assert_null(ck);
    if (needle) cr_assert_not_null(strstr(df_last_error(), needle), "'%s' not in: %s", needle, df_last_error());
    cr_assert_not_null(strstr(df_last_error(), path), "the message names the file: %s", df_last_error());
}

Test(checkpoint, one_flipped_payload_byte_fails_the_checksum)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    for (size_t i = HEADER; i < len; i++) {
        bytes[i] ^= 0x10;
        expect_format_error(bytes, len, "checksum mismatch");
        bytes[i] ^= 0x10;
    }
    free(bytes);
    sample_free(&s);
}

Test(checkpoint, every_flipped_header_byte_is_a_format_error)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    for (size_t i = 0; i < HEADER; i++)
        for (int bit = 0; bit < 8; bit++) {
            bytes[i] ^= (unsigned char)(1u << bit);
            expect_format_error(bytes, len, NULL);
            bytes[i] ^= (unsigned char)(1u << bit);
        }
    free(bytes);
    sample_free(&s);
}

Test(checkpoint, every_truncation_is_a_format_error)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    for (size_t cut = 0; cut < len; cut++) expect_format_error(bytes, cut, NULL);
    expect_format_error(bytes, len - 1, "truncated");
    char want[128];
    snprintf(want, sizeof want, "truncated (file has %zu bytes, header says %zu)", len - 100, len);
    expect_format_error(bytes, len - 100, want);
    free(bytes);
    sample_free(&s);
}

Test(checkpoint, trailing_bytes_are_a_format_error)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    bytes = realloc(bytes, len + 1);
    bytes[len] = 0;
    expect_format_error(bytes, len + 1, "after the payload");
    free(bytes);
    sample_free(&s);
}

Test(checkpoint, wrong_magic)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    memcpy(bytes, "PK\x03\x04", 4);
    expect_format_error(bytes, len, "not a dagflow checkpoint");
    expect_format_error((const unsigned char *)"hello", 5, "bad magic");
    free(bytes);
    sample_free(&s);
}

Test(checkpoint, future_version_is_refused_clearly)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    bytes[8] = 2;
    expect_format_error(bytes, len, "version 2 is not supported");
    free(bytes);
    sample_free(&s);
}

/* ---------------------------- malformed payloads behind a valid checksum */

typedef struct bytes_buf { unsigned char b[512]; size_t n; } bytes_buf;

static void put_n(bytes_buf *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p->b[p->n++] = (unsigned char)(v >> (8 * i));
}

static void put_str(bytes_buf *p, const char *s)
{
    put_n(p, strlen(s), 2);
    memcpy(p->b + p->n, s, strlen(s));
    p->n += strlen(s);
}

/* A tensor entry header: kind, name, dtype, ndim, dims. */
static void put_tensor_head(bytes_buf *p, const char *name, int dtype, int ndim, const int64_t *dims)
{
    put_n(p, DF_CHECKPOINT_TENSOR, 1);
    put_str(p, name);
    put_n(p, (uint64_t)dtype, 1);
    put_n(p, (uint64_t)ndim, 1);
    for (int d = 0; d < ndim; d++) put_n(p, (uint64_t)dims[d], 8);
}

static void put_blob_entry(bytes_buf *p, const char *name, const char *data)
{
    put_n(p, DF_CHECKPOINT_BLOB, 1);
    put_str(p, name);
    put_n(p, strlen(data), 8);
    memcpy(p->b + p->n, data, strlen(data));
    p->n += strlen(data);
}

/* Header with a correct size and checksum in front of payload. */
static size_t wrap(const unsigned char *payload, size_t n, uint32_t count, unsigned char *out)
{
    memcpy(out, "DAGFLOW", 8);
    uint64_t fields[] = {1 | (uint64_t)count << 32, n, XXH64(payload, n, 0)};
    for (int f = 0; f < 3; f++)
        for (int i = 0; i < 8; i++) out[8 + 8 * f + i] = (unsigned char)(fields[f] >> (8 * i));
    memcpy(out + HEADER, payload, n);
    return HEADER + n;
}

static void expect_payload_error(const bytes_buf *p, uint32_t count, const char *needle)
{
    unsigned char file[HEADER + sizeof p->b];
    expect_format_error(file, wrap(p->b, p->n, count, file), needle);
}

Test(checkpoint, a_valid_handmade_file_reads)
{
    bytes_buf p = {0};
    put_blob_entry(&p, "vocab", "abc");
    put_tensor_head(&p, "x", DF_I32, 2, (int64_t[]){1, 2});
    put_n(&p, 8, 8);
    put_n(&p, 0xFFFFFFFF, 4);
    put_n(&p, 5, 4);
    unsigned char file[HEADER + sizeof p.b];
    df_checkpoint *ck = NULL;
    cr_assert_eq(df_checkpoint_read_memory(file, wrap(p.b, p.n, 2, file), &ck), DF_OK,
                 "%s", df_last_error());
    expect_blob(ck, "vocab", "abc", 3);
    df_variable *x = new_var("x", DF_I32, 2, (int64_t[]){1, 2}, NULL);
    cr_assert_eq(df_checkpoint_restore_variable(ck, x), DF_OK);
    int32_t *v = df_variable_tensor(x).data;
    cr_assert(v[0] == -1 && v[1] == 5);
    df_variable_free(x);
    df_checkpoint_free(ck);
}

Test(checkpoint, malformed_entries_behind_a_valid_checksum)
{
    bytes_buf p = {0};
    put_n(&p, 3, 1);
    expect_payload_error(&p, 1, "unknown entry kind 3");

    p = (bytes_buf){0};
    put_n(&p, DF_CHECKPOINT_BLOB, 1);
    put_n(&p, 200, 2);
    put_n(&p, 0, 8);
    expect_payload_error(&p, 1, "name runs past the end");

    p = (bytes_buf){0};
    put_blob_entry(&p, "", "x");
    expect_payload_error(&p, 1, "empty name");

    p = (bytes_buf){0};
    put_n(&p, DF_CHECKPOINT_BLOB, 1);
    put_n(&p, 3, 2);
    memcpy(p.b + p.n, "a\0b", 3);
    p.n += 3;
    put_n(&p, 0, 8);
    expect_payload_error(&p, 1, "NUL");

    p = (bytes_buf){0};
    put_tensor_head(&p, "t", 9, 0, NULL);
    expect_payload_error(&p, 1, "unknown dtype 9");

    p = (bytes_buf){0};
    put_tensor_head(&p, "t", DF_F32, 5, (int64_t[]){1, 1, 1, 1, 1});
    expect_payload_error(&p, 1, "rank 5");

    p = (bytes_buf){0};
    put_tensor_head(&p, "t", DF_F32, 2, (int64_t[]){2, -3});
    expect_payload_error(&p, 1, "negative dimension -3");

    p = (bytes_buf){0};
    put_tensor_head(&p, "t", DF_F32, 3, (int64_t[]){2, 3, 4});
    p.n -= 4;                                   /* the last dim is cut short */
    expect_payload_error(&p, 1, "shape runs past the end");
}

Test(checkpoint, malformed_sizes_behind_a_valid_checksum)
{
    bytes_buf p = {0};
    put_n(&p, DF_CHECKPOINT_BLOB, 1);
    put_str(&p, "b");
    put_n(&p, UINT64_MAX, 8);
    expect_payload_error(&p, 1, "runs past the end of the payload");

    p = (bytes_buf){0};
    put_n(&p, DF_CHECKPOINT_BLOB, 1);
    put_str(&p, "b");
    put_n(&p, 0, 5);                             /* a length cut short */
    expect_payload_error(&p, 1, "data length runs past");

    p = (bytes_buf){0};
    put_tensor_head(&p, "t", DF_F32, 2, (int64_t[]){2, 3});
    put_n(&p, 20, 8);
    p.n += 20;
    expect_payload_error(&p, 1, "tensor of shape (2,3) f32 has 20 data bytes");

    p = (bytes_buf){0};                          /* numel x 4 overflows int64 */
    put_tensor_head(&p, "t", DF_F32, 2, (int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40});
    put_n(&p, 0, 8);
    expect_payload_error(&p, 1, "data bytes");
}

Test(checkpoint, entry_count_must_match_the_payload)
{
    bytes_buf p = {0};
    put_blob_entry(&p, "a", "1");
    expect_payload_error(&p, 2, "payload ends after 1 of 2 entries");
    expect_payload_error(&p, 0, "bytes after the last of 0 entries");
    p = (bytes_buf){0};
    expect_payload_error(&p, UINT32_MAX, "payload ends after 0 of 4294967295 entries");
    put_blob_entry(&p, "a", "1");
    put_blob_entry(&p, "a", "2");
    expect_payload_error(&p, 2, "duplicate entry name 'a'");
}

/* Random byte edits with the checksum fixed up afterwards, as a fuzzer with a
 * checksum-aware harness would make: OK or FORMAT, never a crash. */
Test(checkpoint, mutated_payloads_never_crash)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    unsigned char *mutant = malloc(len), *file = malloc(len);
    df_rng rng;
    df_rng_seed(&rng, 99);
    int accepted = 0;
    for (int round = 0; round < 4000; round++) {
        size_t n = len - HEADER - df_rng_below(&rng, 8) * (round % 2);
        memcpy(mutant, bytes + HEADER, n);
        for (uint32_t e = df_rng_below(&rng, 4) + 1; e--;)
            mutant[df_rng_below(&rng, (uint32_t)n)] = (unsigned char)df_rng_next(&rng);
        df_checkpoint *ck = NULL;
        df_status st = df_checkpoint_read_memory(file, wrap(mutant, n, 7, file), &ck);
        cr_assert(st == DF_OK || st == DF_ERR_FORMAT, "round %d: %s", round, df_last_error());
        for (int i = 0; i < df_checkpoint_count(ck); i++) {   /* touch every entry */
            const void *data;
            size_t blob_len;
            if (df_checkpoint_get_blob(ck, df_checkpoint_entry_name(ck, i), &data, &blob_len) == DF_OK)
                XXH64(data, blob_len, 0);
        }
        accepted += st == DF_OK;
        df_checkpoint_free(ck);
    }
    cr_assert_gt(accepted, 0, "some mutations (of data bytes) stay valid");
    free(mutant);
    free(file);
    free(bytes);
    sample_free(&s);
}

/* ------------------------------------------------------------- OS errors */

Test(checkpoint, reading_a_missing_file_or_a_directory_is_an_io_error)
{
    char path[256];
    df_checkpoint *ck = NULL;
    assert_error(df_checkpoint_read(in_tmp(path, sizeof path, "absent"), &ck), DF_ERR_IO,
                 "No such file or directory");
    cr_assert_not_null(strstr(df_last_error(), path));
    assert_error(df_checkpoint_read(tmpdir, &ck), DF_ERR_IO, "not a regular file");
    cr_assert_null(ck);
}

Test(checkpoint, writing_into_a_missing_directory_is_an_io_error)
{
    sample s;
    sample_make(&s);
    char path[256];
    in_tmp(path, sizeof path, "no/such/dir/ckpt");
    assert_error(df_checkpoint_write(s.ck, path), DF_ERR_IO, "No such file or directory");
    cr_assert_not_null(strstr(df_last_error(), path), "%s", df_last_error());
    cr_assert_eq(count_files(tmpdir), 0, "no stray files");
    sample_free(&s);
}

static void expect_old_checkpoint_intact(const char *path, const sample *s)
{
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "old checkpoint: %s", df_last_error());
    expect_sample(back, s);
    df_checkpoint_free(back);
}

/* A bigger, different checkpoint to attempt writing over the sample. */
static df_checkpoint *replacement(df_variable **big)
{
    df_rng rng;
    df_rng_seed(&rng, 5);
    *big = new_var("dense/kernel", DF_F32, 2, (int64_t[]){512, 512}, &rng);
    df_checkpoint *ck = df_checkpoint_new();
    cr_assert_eq(df_checkpoint_put_variable(ck, *big), DF_OK);
    cr_assert_eq(df_checkpoint_put_blob(ck, "config", "v2", 2), DF_OK);
    return ck;
}

Test(checkpoint, a_failed_create_leaves_the_old_checkpoint_intact)
{
    sample s;
    char path[256], tmp[300];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    cr_assert_eq(mkdir(tmp, 0700), 0);          /* the temp name is taken by a directory */
    df_variable *big;
    df_checkpoint *next = replacement(&big);
    assert_error(df_checkpoint_write(next, path), DF_ERR_IO, tmp);
    expect_old_checkpoint_intact(path, &s);
    cr_assert_eq(rmdir(tmp), 0);
    df_checkpoint_free(next);
    df_variable_free(big);
    sample_free(&s);
}

Test(checkpoint, a_write_failing_midway_leaves_the_old_checkpoint_intact)
{
    sample s;
    char path[256];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    df_variable *big;
    df_checkpoint *next = replacement(&big);
    /* Files may not grow past 64 KiB: the 1 MiB write fails with EFBIG. */
    struct rlimit old_limit, limit = {64 << 10, 64 << 10};
    getrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
    assert_error(df_checkpoint_write(next, path), DF_ERR_IO, "File too large");
    setrlimit(RLIMIT_FSIZE, &old_limit);
    expect_old_checkpoint_intact(path, &s);
    cr_assert_eq(count_files(tmpdir), 1, "the temp file is removed");
    df_checkpoint_free(next);
    df_variable_free(big);
    sample_free(&s);
}

/* ------------------------------------------------------ out of memory */

/* For k = 0, 1, ...: allocations fail after k successes while call runs, then
 * the statements after call check the outcome (status in st_); stops at the
 * first success. Every failing k must report DF_ERR_NOMEM. */
#define SWEEP_OOM(k, call, ...)                                                         \
    for (long k = 0;; k++) {                                                            \
        df_fail_alloc_after(k);                                                         \
        df_status st_ = (call);                                                         \
        df_fail_alloc_after(-1);                                                        \
        cr_assert(st_ == DF_OK || st_ == DF_ERR_NOMEM, "k=%ld: %s (%s)", k,             \
                  df_status_name(st_), df_last_error());                                \
        __VA_ARGS__                                                                     \
        if (st_ == DF_OK) break;                                                        \
        cr_assert_lt(k, 1000, "allocations never stop failing");                        \
    }

static df_status build_sample_checkpoint(const sample *s, df_checkpoint **out)
{
    df_checkpoint *ck = df_checkpoint_new();
    df_status st = ck ? DF_OK : DF_ERR_NOMEM;
    char name[32];
    for (int i = 0; st == DF_OK && i < 40; i++) {   /* enough to grow the entry list */
        snprintf(name, sizeof name, "blob%d", i);
        st = df_checkpoint_put_blob(ck, name, name, strlen(name));
    }
    if (st == DF_OK) st = df_checkpoint_put_variable(ck, s->w);
    if (st == DF_OK) st = df_checkpoint_put_variable(ck, s->counts);
    if (st != DF_OK) cr_assert_lt(df_checkpoint_count(ck), 42);
    *out = ck;
    return st;
}

Test(checkpoint, out_of_memory_while_building)
{
    sample s;
    sample_make(&s);
    df_checkpoint *ck = NULL;
    SWEEP_OOM(k, build_sample_checkpoint(&s, &ck), {
        if (st_ == DF_OK) {
            cr_assert_eq(df_checkpoint_count(ck), 42);
            expect_restores(ck, s.w);
        }
        df_checkpoint_free(ck);
    });
    sample_free(&s);
}

Test(checkpoint, out_of_memory_while_writing_keeps_the_old_file)
{
    sample s;
    char path[256];
    size_t len;
    free(sample_file(&s, path, sizeof path, "ckpt", &len));
    df_variable *big;
    df_checkpoint *next = replacement(&big);
    SWEEP_OOM(k, df_checkpoint_write(next, path), {
        cr_assert_eq(count_files(tmpdir), 1, "k=%ld: no partial or temp file", k);
        if (st_ != DF_OK) expect_old_checkpoint_intact(path, &s);
    });
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK);
    expect_restores(back, big);
    df_checkpoint_free(back);
    df_checkpoint_free(next);
    df_variable_free(big);
    sample_free(&s);
}

Test(checkpoint, out_of_memory_while_reading)
{
    sample s;
    char path[256];
    size_t len;
    unsigned char *bytes = sample_file(&s, path, sizeof path, "ckpt", &len);
    df_checkpoint *back = NULL;
    SWEEP_OOM(k, df_checkpoint_read(path, &back), {
        if (st_ == DF_OK) expect_sample(back, &s);
        else cr_assert_null(back);
        df_checkpoint_free(back);
    });
    SWEEP_OOM(k, df_checkpoint_read_memory(bytes, len, &back), {
        if (st_ == DF_OK) expect_sample(back, &s);
        else cr_assert_null(back);
        df_checkpoint_free(back);
    });
    free(bytes);
    sample_free(&s);
}
