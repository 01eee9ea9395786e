/* fuzz_cli.c — libFuzzer harness for the char-rnn flag parser.
 *
 * The input, split at NUL bytes, is an argv for cli_parse with a flag table
 * equivalent to `char-rnn train`'s (every flag type, the same ranges and
 * choices). After a successful parse every integer and float flag must be in
 * its range and every choice index valid; --help must print the table with the
 * parsed values as defaults. Help and error text go to /dev/null. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

enum { CLI_FUZZ_MAX_ARGS = 64 };

static const char *const cli_fuzz_batchings[] = {"shuffle", "streams", NULL};
static const char *const cli_fuzz_loops[] = {"fit", "custom", NULL};

/* The targets of `char-rnn train`'s flags (examples/charrnn/main.c, cmd_train). */
typedef struct cli_fuzz_opts {
    const char *data, *checkpoint_dir, *csv, *plot;
    int epochs, batch, seq, embed, hidden, shuffle_buffer, steps_per_epoch, checkpoint_every, threads;
    int batching, loop;
    float learning_rate, val;
    uint64_t seed;
    bool resume;
} cli_fuzz_opts;

static int cli_fuzz_table(cli_fuzz_opts *o, cli_flag *flags)
{
    const cli_flag table[] = {
        {"data", CLI_STRING, &o->data, "corpus (UTF-8 text)", 0, 0, NULL},
        {"epochs", CLI_INT, &o->epochs, "epochs to train (in total, when resuming)", 1, 1e6, NULL},
        {"batch", CLI_INT, &o->batch, "sequences per batch", 1, 4096, NULL},
        {"seq", CLI_INT, &o->seq, "characters per sequence (seq_length)", 1, 100000, NULL},
        {"embed", CLI_INT, &o->embed, "embedding size", 1, 65536, NULL},
        {"hidden", CLI_INT, &o->hidden, "LSTM units", 1, 65536, NULL},
        {"learning-rate", CLI_FLOAT, &o->learning_rate, "Adam learning rate", 0, 10, NULL},
        {"seed", CLI_U64, &o->seed, "seed for initial weights and shuffling", 0, 0, NULL},
        {"batching", CLI_CHOICE, &o->batching, "shuffle or streams", 0, 0, cli_fuzz_batchings},
        {"shuffle-buffer", CLI_INT, &o->shuffle_buffer, "shuffle buffer size", 1, 1e9, NULL},
        {"val", CLI_FLOAT, &o->val, "fraction held out for validation", 0, 0.9, NULL},
        {"steps-per-epoch", CLI_INT, &o->steps_per_epoch, "cap on steps per epoch", 0, 1e9, NULL},
        {"checkpoint-dir", CLI_STRING, &o->checkpoint_dir, "where ckpt_{epoch} files go", 0, 0, NULL},
        {"checkpoint-every", CLI_INT, &o->checkpoint_every, "checkpoint every N epochs", 1, 1e6, NULL},
        {"resume", CLI_BOOL, &o->resume, "continue from the latest checkpoint", 0, 0, NULL},
        {"loop", CLI_CHOICE, &o->loop, "fit or custom", 0, 0, cli_fuzz_loops},
        {"csv", CLI_STRING, &o->csv, "write losses as CSV", 0, 0, NULL},
        {"plot", CLI_STRING, &o->plot, "write the loss curve as SVG", 0, 0, NULL},
        {"threads", CLI_INT, &o->threads, "threads (0 = all cores)", 0, 1024, NULL},
    };
    int n = (int)(sizeof table / sizeof table[0]);
    memcpy(flags, table, sizeof table);
    return n;
}

static FILE *cli_fuzz_sink(void)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    FUZZ_CHECK(sink);
    return sink;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    /* argv: the NUL-separated pieces, each its own allocation (ASan sees overreads). */
    char *argv[CLI_FUZZ_MAX_ARGS + 1];
    int argc = 0;
    for (size_t at = 0; at < size && argc < CLI_FUZZ_MAX_ARGS;) {
        const uint8_t *nul = memchr(data + at, 0, size - at);
        size_t len = nul ? (size_t)(nul - (data + at)) : size - at;
        char *a = malloc(len + 1);
        FUZZ_CHECK(a);
        memcpy(a, data + at, len);
        a[len] = 0;
        argv[argc++] = a;
        at += len + 1;
    }
    argv[argc] = NULL;

    cli_fuzz_opts o = {.data = "corpus.txt", .checkpoint_dir = "./training_checkpoints", .csv = "training_log.csv",
                       .plot = "loss.svg", .epochs = 10, .batch = 64, .seq = 100, .embed = 256, .hidden = 1024,
                       .shuffle_buffer = 10000, .checkpoint_every = 5, .learning_rate = 1e-3f, .seed = 42};
    cli_flag flags[32];
    int n = cli_fuzz_table(&o, flags);
    FILE *sink = cli_fuzz_sink();
    int rc = cli_parse("char-rnn train", "char-rnn train [flags]", flags, n, argc, argv, sink, sink);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == 2);
    /* Whatever was parsed (all of it, or the flags before an error) is in range. */
    for (int i = 0; i < n; i++) {
        const cli_flag *f = &flags[i];
        if (f->type == CLI_INT) {
            int v = *(int *)f->target;
            FUZZ_CHECK(v >= f->min && v <= f->max);
        } else if (f->type == CLI_FLOAT) {
            float v = *(float *)f->target;
            FUZZ_CHECK(v >= f->min && v <= f->max);
        } else if (f->type == CLI_CHOICE) {
            int v = *(int *)f->target;
            FUZZ_CHECK(v == 0 || v == 1);
        } else if (f->type == CLI_STRING) {
            FUZZ_CHECK(*(const char **)f->target != NULL);
        }
    }
    cli_help("char-rnn train", "char-rnn train [flags]", flags, n, sink);
    for (int i = 0; i < argc; i++) free(argv[i]);
    return 0;
}
