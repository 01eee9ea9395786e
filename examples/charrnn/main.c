/* char-rnn — the "Text generation with an RNN" tutorial in C on dagflow.
 *   char-rnn train    [flags]   fit (Keras-style) or --loop custom (GradientTape-style)
 *   char-rnn sample   [flags]   generate text from the latest checkpoint
 *   char-rnn evaluate [flags]   the validation loss of a checkpoint
 *   char-rnn summary  [flags]   Keras-style parameter table
 *   char-rnn graph    [flags]   write the traced graph as Graphviz DOT
 *   char-rnn export   [flags] OUT.dfg   the batch-1 sampling step as a saved graph */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "dist.h"
#include "export.h"
#include "model.h"
#include "evaluate.h"
#include "sample.h"
#include "schedule.h"
#include "train.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const batchings[] = {"shuffle", "streams", NULL};
static const char *const loops[] = {"fit", "custom", NULL};
static const char *const graph_parts[] = {"train", "forward", "backward", NULL};
static const char *const pass_sets[] = {"all", "none", NULL};
static const char *const truths[] = {"true", "false", NULL};
static const char *const precisions[] = {"fp32", "bf16", NULL};

/* --cell, --layers, --dropout and --reset-after, shared by train, summary and graph. */
typedef struct model_flags { int cell, layers, reset_after; float dropout; } model_flags;
#define MODEL_FLAGS(mf)                                                                                          \
    {"cell", CLI_CHOICE, &(mf).cell, "recurrent cell: lstm, gru (Keras GRU) or rnn (SimpleRNN, tanh)", 0, 0,      \
     cr_cell_names},                                                                                             \
    {"layers", CLI_INT, &(mf).layers, "stacked recurrent layers, each stateful", 1, CR_MAX_LAYERS, NULL},       \
    {"dropout", CLI_FLOAT, &(mf).dropout, "dropout rate after each recurrent layer while training (0 = none)", 0, \
     0.99, NULL},                                                                                                \
    {"reset-after", CLI_CHOICE, &(mf).reset_after, "GRU only: Keras' reset_after (true: a (2,3H) bias with a "    \
     "separate recurrent bias)", 0, 0, truths}

static void apply_model_flags(const model_flags *mf, cr_config *cfg)
{
    cfg->cell = (cr_cell)mf->cell;
    cfg->layers = mf->layers;
    cfg->dropout = mf->dropout;
    cfg->gru_reset_before = mf->reset_after == 1;
}

static int threads = 0;

static int report(const char *command, df_status st)
{
    if (st == DF_OK) return 0;
    fprintf(cr_dist_err(), "char-rnn %s: %s\n", command, df_last_error());   /* under mpirun: rank 0 only */
    return 1;
}

/* SIGUSR1, which mpirun forwards to every rank (it ends the job on
 * SIGINT), stops like SIGINT, which df_fit handles with SIGTERM and SIGHUP. */
static void on_sigusr1(int sig)
{
    static volatile sig_atomic_t seen;
    if (seen++) _exit(130);                  /* a second one: leave at once */
    df_fit_request_stop();
    static const char msg[] = "\nInterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit now)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

/* Whether --name (or --name=...) is among the arguments. */
static bool given(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "--", 2) && !strncmp(argv[i] + 2, name, n) && (!argv[i][2 + n] || argv[i][2 + n] == '='))
            return true;
    return false;
}

static void apply_threads(void)
{
    if (threads > 0) df_set_num_threads(threads);
}

static int cmd_train(int argc, char **argv)
{
    cr_config o;
    cr_train_defaults(&o);
    int batching = 0, loop = 0, optimizer = 0, schedule = 0, precision = 0;
    float peer_timeout = 0;
    model_flags mf = {.layers = 1};
    cli_flag flags[] = {
        {"data", CLI_STRING, &o.data, "corpus (UTF-8 text)", 0, 0, NULL},
        {"epochs", CLI_INT, &o.epochs, "epochs to train (in total, when resuming)", 1, 1e6, NULL},
        {"batch", CLI_INT, &o.batch, "sequences per batch", 1, 4096, NULL},
        {"seq", CLI_INT, &o.seq, "characters per sequence (seq_length)", 1, 100000, NULL},
        {"embed", CLI_INT, &o.embed, "embedding size", 1, 65536, NULL},
        {"hidden", CLI_INT, &o.hidden, "units per recurrent layer", 1, 65536, NULL},
        MODEL_FLAGS(mf),
        {"optimizer", CLI_CHOICE, &optimizer, "adam, rmsprop or sgd (Keras defaults otherwise)", 0, 0, cr_optimizer_names},
        {"learning-rate", CLI_FLOAT, &o.learning_rate, "learning rate (the base of --lr-schedule)", 0, 10, NULL},
        {"momentum", CLI_FLOAT, &o.momentum, "SGD momentum (0 = plain SGD; --optimizer sgd only)", 0, 0.999, NULL},
        {"clip", CLI_FLOAT, &o.clipnorm, "clip gradients to this global norm (0 = off)", 0, 1e9, NULL},
        {"lr-schedule", CLI_CHOICE, &schedule, "constant, step (x --decay-rate every --decay-steps) or cosine (to 0 "
                                               "over --decay-steps), after --warmup-steps", 0, 0, cr_schedule_names},
        {"warmup-steps", CLI_INT, &o.schedule.warmup_steps, "linear learning-rate warm-up over the first N steps", 0,
         1e9, NULL},
        {"decay-steps", CLI_INT, &o.schedule.decay_steps, "step: steps per decay; cosine: steps to decay over", 1, 1e9,
         NULL},
        {"decay-rate", CLI_FLOAT, &o.schedule.decay_rate, "step: learning-rate factor per --decay-steps", 0, 1, NULL},
        {"seed", CLI_U64, &o.seed, "seed for initial weights, shuffling and dropout", 0, 0, NULL},
        {"batching", CLI_CHOICE, &batching, "shuffle (the tutorial's) or streams (contiguous rows for a stateful LSTM)", 0, 0, batchings},
        {"shuffle-buffer", CLI_INT, &o.shuffle_buffer, "shuffle buffer size", 1, 1e9, NULL},
        {"val", CLI_FLOAT, &o.val_fraction, "fraction of the text (its tail) held out for validation", 0, 0.9, NULL},
        {"steps-per-epoch", CLI_INT, &o.steps_per_epoch, "cap on steps per epoch (0 = whole epoch)", 0, 1e9, NULL},
        {"checkpoint-dir", CLI_STRING, &o.checkpoint_dir, "where ckpt_{epoch} files go", 0, 0, NULL},
        {"checkpoint-every", CLI_INT, &o.checkpoint_every, "custom loop: checkpoint every N epochs", 1, 1e6, NULL},
        {"resume", CLI_BOOL, &o.resume, "continue from the latest checkpoint (weights, optimizer, step, RNG); none "
                                        "yet: start a new run", 0, 0, NULL},
        {"overwrite", CLI_BOOL, &o.overwrite, "a new run may replace another run's checkpoints in --checkpoint-dir", 0,
         0, NULL},
        {"loop", CLI_CHOICE, &loop, "fit (Keras-style) or custom (GradientTape-style train_step)", 0, 0, loops},
        {"csv", CLI_STRING, &o.csv, "write losses as CSV ('' = none)", 0, 0, NULL},
        {"plot", CLI_STRING, &o.plot, "write the loss curve as SVG ('' = none)", 0, 0, NULL},
        {"profile", CLI_BOOL, &o.profile, "print each op's time and share of the train step at the end", 0, 0, NULL},
        {"threads", CLI_INT, &threads, "threads (0 = all cores)", 0, 1024, NULL},
        {"precision", CLI_CHOICE, &precision, "fp32, or bf16: the products on bf16 operands with fp32 sums and fp32 "
                                              "weights (CPUs with AVX512_BF16)", 0, 0, precisions},
#ifdef DF_WITH_MPI
        {"peer-timeout", CLI_FLOAT, &peer_timeout, "under mpirun: seconds a rank waits for the others in a collective "
                                                   "before ending the job (0 = forever)", 0, 1e6, NULL},
#endif
    };
    static const char default_csv[] = "CHECKPOINT_DIR/losses.csv", default_plot[] = "CHECKPOINT_DIR/loss.svg";
    o.csv = default_csv;                       /* what --help shows; replaced below unless given */
    o.plot = default_plot;
    int rc = cli_parse("char-rnn train", "char-rnn train [flags]", flags, N(flags), argc, argv, stdout, cr_dist_err());
    if (rc) return rc == 1 ? 0 : rc;
    if (mf.cell != CR_CELL_GRU && given(argc, argv, "reset-after")) {
        fprintf(cr_dist_err(), "char-rnn train: --reset-after applies to --cell gru only, not --cell %s\n",
                cr_cell_names[mf.cell]);
        return 2;
    }
    cr_dist_set_peer_timeout(peer_timeout);
    char csv[4096], plot[4096];
    if (o.csv == default_csv) {
        snprintf(csv, sizeof csv, "%s/losses.csv", o.checkpoint_dir);
        o.csv = csv;
    }
    if (o.plot == default_plot) {
        snprintf(plot, sizeof plot, "%s/loss.svg", o.checkpoint_dir);
        o.plot = plot;
    }
    o.batching = batching ? CR_STREAMS : CR_SHUFFLE;
    o.custom_loop = loop == 1;
    apply_model_flags(&mf, &o);
    o.optimizer = (cr_opt_kind)optimizer;
    o.schedule.kind = (cr_lr_kind)schedule;
    apply_threads();
    signal(SIGUSR1, on_sigusr1);
    df_status st = df_set_precision(precision ? DF_PRECISION_BF16 : DF_PRECISION_FP32);
    if (st == DF_OK) st = cr_train(&o);
    if (st != DF_OK) cr_dist_abort_if_broken();
    return report("train", st);
}

static int cmd_sample(int argc, char **argv)
{
    cr_sample_opts o;
    cr_sample_defaults(&o);
    int precision = 0, start_state = 0;
    cli_flag flags[] = {
        {"checkpoint-dir", CLI_STRING, &o.checkpoint_dir, "use the latest ckpt_N here", 0, 0, NULL},
        {"checkpoint", CLI_STRING, &o.checkpoint, "use this checkpoint file instead", 0, 0, NULL},
        {"length", CLI_INT, &o.length, "characters to generate", 0, 1e8, NULL},
        {"start", CLI_STRING, &o.start, "text to start from", 0, 0, NULL},
        {"temperature", CLI_FLOAT, &o.temperature, "sampling temperature (0 = argmax)", 0, 100, NULL},
        {"seed", CLI_U64, &o.seed, "sampling seed", 0, 0, NULL},
        {"state", CLI_CHOICE, &start_state, "the state --start is fed from: trained (the state the training batch's "
                                            "first row carried when the checkpoint was written, as the model was "
                                            "trained from) or zero (the tutorial's)", 0, 0, cr_start_states},
        {"threads", CLI_INT, &threads, "threads (0 = all cores)", 0, 1024, NULL},
        {"precision", CLI_CHOICE, &precision, "fp32, or bf16: the LSTM's recurrent weight read as bf16 (converted once), "
                                              "fp32 sums (CPUs with AVX512_BF16)", 0, 0, precisions},
    };
    int rc = cli_parse("char-rnn sample", "char-rnn sample [flags]", flags, N(flags), argc, argv, stdout, stderr);
    if (rc) return rc == 1 ? 0 : rc;
    apply_threads();
    o.zero_state = start_state == 1;
    df_status st = df_set_precision(precision ? DF_PRECISION_BF16 : DF_PRECISION_FP32);
    return report("sample", st == DF_OK ? cr_sample(&o, stdout) : st);
}

static int cmd_evaluate(int argc, char **argv)
{
    cr_evaluate_opts o;
    cr_evaluate_defaults(&o);
    int precision = 0;
    cli_flag flags[] = {
        {"checkpoint-dir", CLI_STRING, &o.checkpoint_dir, "use the latest ckpt_N here", 0, 0, NULL},
        {"checkpoint", CLI_STRING, &o.checkpoint, "use this checkpoint file instead", 0, 0, NULL},
        {"data", CLI_STRING, &o.data, "the corpus the checkpoint was trained on (checked by its XXH64)", 0, 0, NULL},
        {"warm", CLI_BOOL, &o.warm, "score a second pass over the split, from the state the first one carried "
                                    "(as training sees its state), instead of from a zero state", 0, 0, NULL},
        {"threads", CLI_INT, &threads, "threads (0 = all cores)", 0, 1024, NULL},
        {"precision", CLI_CHOICE, &precision, "fp32, or bf16 as in char-rnn train (CPUs with AVX512_BF16)", 0, 0,
         precisions},
    };
    int rc = cli_parse("char-rnn evaluate", "char-rnn evaluate [flags]", flags, N(flags), argc, argv, stdout, stderr);
    if (rc) return rc == 1 ? 0 : rc;
    apply_threads();
    df_status st = df_set_precision(precision ? DF_PRECISION_BF16 : DF_PRECISION_FP32);
    return report("evaluate", st == DF_OK ? cr_evaluate(&o, stdout) : st);
}

/* Vocabulary size from --vocab or from the corpus. */
static df_status vocab_size(const char *data, int *vocab)
{
    if (*vocab > 0) return DF_OK;
    cr_text text;
    df_status st = cr_text_load(data, &text);
    if (st == DF_OK) *vocab = text.vocab.size;
    cr_text_free(&text);
    return st;
}

static int cmd_summary(int argc, char **argv)
{
    const char *data = CR_DEFAULT_DATA;
    cr_config cfg = {.embed = 256, .hidden = 1024, .learning_rate = 1e-3f, .seed = 42};
    int batch = 64;
    model_flags mf = {.layers = 1};
    cli_flag flags[] = {
        {"data", CLI_STRING, &data, "corpus whose vocabulary sizes the model", 0, 0, NULL},
        {"vocab", CLI_INT, &cfg.vocab, "vocabulary size instead of reading --data (0 = read)", 0, 1 << 20, NULL},
        {"embed", CLI_INT, &cfg.embed, "embedding size", 1, 65536, NULL},
        {"hidden", CLI_INT, &cfg.hidden, "units per recurrent layer", 1, 65536, NULL},
        MODEL_FLAGS(mf),
        {"batch", CLI_INT, &batch, "batch size shown in output shapes", 1, 4096, NULL},
    };
    int rc = cli_parse("char-rnn summary", "char-rnn summary [flags]", flags, N(flags), argc, argv, stdout, stderr);
    if (rc) return rc == 1 ? 0 : rc;
    apply_model_flags(&mf, &cfg);
    df_status st = vocab_size(data, &cfg.vocab);
    cr_model m;
    if (st == DF_OK && (st = cr_model_init(&m, &cfg)) == DF_OK) {
        cr_model_summary(&m, batch, stdout);
        cr_model_free(&m);
    }
    return report("summary", st);
}

/* Compiles the chosen graph (not run) and writes it as DOT. */
static int cmd_graph(int argc, char **argv)
{
    const char *data = CR_DEFAULT_DATA, *dot = NULL;
    cr_config cfg = {.embed = 256, .hidden = 1024, .learning_rate = 1e-3f, .seed = 42};
    int batch = 64, seq = 100, part = 0, passes = 0;
    model_flags mf = {.layers = 1};
    cli_flag flags[] = {
        {"dot", CLI_STRING, &dot, "output DOT file (required)", 0, 0, NULL},
        {"what", CLI_CHOICE, &part, "train (the whole train step), forward (its taped forward pass) or backward "
                                    "(gradients and updates)", 0, 0, graph_parts},
        {"passes", CLI_CHOICE, &passes, "all (the compiled graph) or none (as traced, before passes)", 0, 0, pass_sets},
        {"data", CLI_STRING, &data, "corpus whose vocabulary sizes the model", 0, 0, NULL},
        {"vocab", CLI_INT, &cfg.vocab, "vocabulary size instead of reading --data (0 = read)", 0, 1 << 20, NULL},
        {"embed", CLI_INT, &cfg.embed, "embedding size", 1, 65536, NULL},
        {"hidden", CLI_INT, &cfg.hidden, "units per recurrent layer", 1, 65536, NULL},
        MODEL_FLAGS(mf),
        {"batch", CLI_INT, &batch, "batch size", 1, 4096, NULL},
        {"seq", CLI_INT, &seq, "sequence length", 1, 100000, NULL},
    };
    int rc = cli_parse("char-rnn graph", "char-rnn graph --dot FILE [flags]", flags, N(flags), argc, argv, stdout, stderr);
    if (rc) return rc == 1 ? 0 : rc;
    apply_model_flags(&mf, &cfg);
    if (!dot) {
        fprintf(stderr, "char-rnn graph: --dot FILE is required (see char-rnn graph --help)\n");
        return 2;
    }
    df_status st = vocab_size(data, &cfg.vocab);
    cr_model m;
    if (st != DF_OK || (st = cr_model_init(&m, &cfg)) != DF_OK) return report("graph", st);
    df_graph *g = NULL;
    st = cr_compile_step(&m, batch, seq, passes == 0 ? DF_PASS_ALL : 0, &g);
    static const df_dot_part parts[] = {DF_DOT_ALL, DF_DOT_FORWARD, DF_DOT_BACKWARD};
    if (st == DF_OK) st = df_graph_dump_dot_part(g, dot, parts[part]);
    df_graph_stats stats;
    if (st == DF_OK && df_graph_get_stats(g, &stats) == DF_OK)
        printf("wrote %s: %d nodes traced, %d run (%d merged by CSE, %d folded, %d fused into %d loops, %d dead); "
               "arena %.1f MB for %.1f MB of tensors\nrender: dot -Tsvg %s -o graph.svg\n",
               dot, stats.nodes_total, stats.nodes, stats.cse_merged, stats.constants_folded, stats.fused_nodes,
               stats.fused_chains, stats.dead_nodes, stats.arena_bytes / 1e6, stats.tensor_bytes / 1e6, dot);
    df_graph_free(g);
    cr_model_free(&m);
    return report("graph", st);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: char-rnn COMMAND [flags]\n\n"
            "Character-level LSTM on tiny Shakespeare, as in the tutorial \"Text generation with an RNN\"\n"
            "(--cell gru|rnn, --layers N, --dropout P, --optimizer, --clip and --lr-schedule change it).\n\n"
            "commands:\n"
            "  train     train the model (--loop fit | custom); checkpoints go to --checkpoint-dir\n"
            "  sample    generate text from the latest checkpoint\n"
            "  evaluate  the validation loss of a checkpoint (a run trained with --val)\n"
            "  summary   print the Keras-style parameter table\n"
            "  graph     write the compiled train step (or its forward or backward part) as Graphviz DOT\n"
            "  export    write the batch-1 sampling step as a saved graph (dagflow-run loads it)\n\n"
            "Run 'char-rnn COMMAND --help' for the flags of a command.\n"
            "The corpus is read from %s by default (--data PATH).\n", CR_DEFAULT_DATA);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) {     /* under mpirun: data-parallel over the ranks (dist.h) */
        int rc = report("train", cr_dist_init(&argc, &argv));
        if (rc == 0) rc = cmd_train(argc - 2, argv + 2);
        cr_dist_finalize();
        return rc;
    }
    if (!strcmp(cmd, "sample")) return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(cmd, "evaluate")) return cmd_evaluate(argc - 2, argv + 2);
    if (!strcmp(cmd, "summary")) return cmd_summary(argc - 2, argv + 2);
    if (!strcmp(cmd, "graph")) return cmd_graph(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return cr_export_command(argc - 2, argv + 2);
    fprintf(stderr, "char-rnn: unknown command '%s' (see char-rnn --help)\n", cmd);
    return 2;
}
