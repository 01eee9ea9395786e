/* make_seeds.c — writes the seed corpora of the fuzz harnesses:
 *   make_seeds DIR   ->  DIR/checkpoint/  DIR/runstate/  DIR/text/  DIR/cli/
 * The checkpoints are written with df_checkpoint_write, so they are valid
 * files of the current format; the rest are small hand-picked inputs. Run by
 * `fuzz/fuzz.sh seeds` (the files in fuzz/corpus/ are its output), except
 * runstate/run_*.bin: byte 1 and then a real char-rnn checkpoint of a tiny
 * run (--hidden 4 --embed 2 --batch 2 --seq 4): after an epoch (run_epoch),
 * with --batching streams (run_streams), and interrupted by SIGINT in the
 * middle of an epoch (run_mid_epoch: batcher position and recurrent state). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "dagflow.h"

static const char *root;

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, df_last_error());
    exit(1);
}

static void dir(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, name);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
}

static void put(const char *sub, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_str(const char *sub, const char *name, const char *s) { put(sub, name, s, strlen(s)); }
/* A string literal with its NULs (argv separators), without the final one. */
#define PUT_LIT(sub, name, lit) put(sub, name, lit, sizeof lit - 1)

static df_variable *var(const char *name, df_dtype dtype, int ndim, const int64_t *shape, float fill)
{
    df_variable *v = df_variable_new(name, dtype, ndim, shape, df_init_constant(fill), NULL);
    if (!v) die(name);
    return v;
}

static void write_ck(df_checkpoint *ck, const char *sub, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
    if (df_checkpoint_write(ck, path) != DF_OK) die(path);
    df_checkpoint_free(ck);
}

/* A file's bytes, for the runstate seeds that embed a whole checkpoint. */
static void prefix_file(const char *sub, const char *from, const char *to, unsigned char mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, from);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    unsigned char buf[65536];
    buf[0] = mode;
    size_t n = fread(buf + 1, 1, sizeof buf - 1, f);
    fclose(f);
    remove(path);
    put(sub, to, buf, n + 1);
}

static void checkpoints(void)
{
    dir("checkpoint");
    write_ck(df_checkpoint_new(), "checkpoint", "empty.ckpt");

    df_checkpoint *ck = df_checkpoint_new();
    unsigned long long version = 7;
    if (df_checkpoint_put_blob(ck, "version", &version, sizeof version) ||
        df_checkpoint_put_blob(ck, "note", "epoch=1\nstep=20\n", 16) ||
        df_checkpoint_put_blob(ck, "z", NULL, 0))
        die("blobs");
    write_ck(ck, "checkpoint", "blobs.ckpt");

    /* The variables fuzz_checkpoint.c restores into, with matching shapes. */
    df_variable *v[] = {
        var("w", DF_F32, 2, (int64_t[]){2, 3}, 1.5f), var("b", DF_F32, 1, (int64_t[]){3}, -2),
        var("step", DF_I32, 0, NULL, 42), var("t4", DF_F32, 4, (int64_t[]){1, 2, 1, 2}, 0.25f),
        var("empty", DF_F32, 2, (int64_t[]){0, 5}, 0),
    };
    ck = df_checkpoint_new();
    for (int i = 0; i < 5; i++)
        if (df_checkpoint_put_variable(ck, v[i])) die("tensors");
    if (df_checkpoint_put_blob(ck, "version", &version, sizeof version)) die("version");
    write_ck(ck, "checkpoint", "tensors.ckpt");
    for (int i = 0; i < 5; i++) df_variable_free(v[i]);

    /* Same names, other shapes and dtypes: every restore is refused. */
    df_variable *u[] = {
        var("w", DF_F32, 2, (int64_t[]){3, 2}, 1), var("b", DF_I32, 1, (int64_t[]){3}, 1),
        var("step", DF_F32, 1, (int64_t[]){1}, 1), var("t4", DF_F32, 3, (int64_t[]){2, 1, 2}, 1),
    };
    ck = df_checkpoint_new();
    for (int i = 0; i < 4; i++)
        if (df_checkpoint_put_variable(ck, u[i])) die("mismatched");
    write_ck(ck, "checkpoint", "mismatched.ckpt");
    for (int i = 0; i < 4; i++) df_variable_free(u[i]);
}

static const char config_ok[] =
    "vocab=25\nembed=8\nhidden=32\nseq=16\nbatch=4\nbatching=shuffle\nlearning_rate=0.00100000005\nseed=42\n";
static const char vocab_ok[] = "\n ,:EMORadeghiklmnoprstwy";

static void runstates(void)
{
    dir("runstate");
    /* Mode 0: "\0<config>\0<vocab>". */
    char buf[1024];
    size_t n = 0;
    buf[n++] = 0;
    memcpy(buf + n, config_ok, sizeof config_ok - 1);
    n += sizeof config_ok - 1;
    buf[n++] = 0;
    memcpy(buf + n, vocab_ok, sizeof vocab_ok - 1);
    n += sizeof vocab_ok - 1;
    put("runstate", "config.bin", buf, n);
    static const char streams[] =
        "\0vocab=3\nembed=1\nhidden=1\nseq=1\nbatch=1\nbatching=streams\nlearning_rate=1\nseed=0\n\0abc";
    put("runstate", "streams.bin", streams, sizeof streams - 1);

    /* Mode 1: a whole run checkpoint (the records df_fit writes for char-rnn, and a
     * small tensor standing in for the weights). */
    df_checkpoint *ck = df_checkpoint_new();
    unsigned char rng[32] = {1, 2, 3, 4};
    df_variable *w = var("embedding/embeddings", DF_F32, 2, (int64_t[]){25, 2}, 0.5f);
    if (df_checkpoint_put_blob(ck, "config", config_ok, sizeof config_ok - 1) ||
        df_checkpoint_put_blob(ck, "vocab", vocab_ok, sizeof vocab_ok - 1) ||
        df_checkpoint_put_blob(ck, "progress", "epoch=1\nstep=20\n", 16) ||
        df_checkpoint_put_blob(ck, "rng", rng, sizeof rng) || df_checkpoint_put_variable(ck, w))
        die("run");
    write_ck(ck, "runstate", "run.tmp");              /* the checkpoint points into w until then */
    df_variable_free(w);
    prefix_file("runstate", "run.tmp", "run.bin", 1);
}

static void texts(void)
{
    dir("text");
    put_str("text", "ascii.txt", "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n");
    put_str("text", "utf8.txt", "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9"
                                "\xce\xba\xce\xac \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80\n");
    put_str("text", "invalid.txt", "ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf end");
    PUT_LIT("text", "encode.bin", " :EMORabc\0ROMEO: abc");
    PUT_LIT("text", "encode_utf8.bin", "ab\xc3\xa9\xe2\x82\xac\0\xe2\x82\xac" "ab\xc3\xa9");
}

static void argvs(void)
{
    dir("cli");
    PUT_LIT("cli", "epochs.bin", "--epochs\0" "5\0--batching=streams\0--seed\0" "42");
    PUT_LIT("cli", "floats.bin", "--learning-rate\0" "1e-3\0--val=0.1\0--resume\0--loop\0custom");
    PUT_LIT("cli", "strings.bin", "--data=corpus.txt\0--checkpoint-dir\0D\0--csv=\0--plot\0x.svg");
    put_str("cli", "help.bin", "--help");
    PUT_LIT("cli", "bad.bin", "--epochs\0" "0\0--hidden=99999999999\0--nope");
    PUT_LIT("cli", "range.bin", "--threads\0" "1024\0--shuffle-buffer\0" "1\0--steps-per-epoch=0");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0777) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    checkpoints();
    runstates();
    texts();
    argvs();
    return 0;
}
