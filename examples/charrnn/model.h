/* model.h — the tutorial's model: Embedding(V,E) -> LSTM(H, stateful,
 * return_sequences) -> Dense(V), made of the library's layers (df_model),
 * and the traced functions that train, evaluate and sample it. The config also picks a GRU or SimpleRNN cell,
 * stacked layers, dropout after each recurrent layer, and the optimizer. */
#ifndef CR_MODEL_H
#define CR_MODEL_H
#include "batches.h"
#include "dagflow.h"
#include "text.h"

typedef enum cr_cell { CR_CELL_LSTM = 0, CR_CELL_GRU = 1, CR_CELL_RNN = 2 } cr_cell;
typedef enum cr_opt_kind { CR_OPT_ADAM = 0, CR_OPT_RMSPROP = 1, CR_OPT_SGD = 2 } cr_opt_kind;
/* NULL-terminated names, indexed by the enums ("lstm", "gru", "rnn";
 * "adam", "rmsprop", "sgd"); also the CLI's choices. */
extern const char *const cr_cell_names[];
extern const char *const cr_optimizer_names[];

#define CR_MAX_LAYERS 8

/* A run's settings: the model, the data order and the run. Saved with the
 * checkpoints and checked on resume (runstate.c's table). All-zero extras
 * are the tutorial's model: one LSTM layer, no dropout, Adam. */
typedef struct cr_config {
    int vocab, embed, hidden;
    float learning_rate;
    uint64_t seed;
    cr_cell cell;
    int layers;             /* stacked recurrent layers, 1..CR_MAX_LAYERS (0 = 1) */
    float dropout;          /* rate after each recurrent layer while training, [0, 1) */
    bool gru_reset_before;  /* GRU with reset_after = false (Keras' default is true) */
    cr_opt_kind optimizer;
    float momentum;         /* SGD only, [0, 1) */
    float clipnorm;         /* clip gradients by their global norm; 0 = off */
    /* the data order depends on these */
    int seq, batch;
    cr_batching batching;
    float val_fraction;
    int shuffle_buffer, steps_per_epoch;
    uint64_t data_hash;     /* XXH64 of the corpus's ids: another --data is another run */
    df_lr_schedule schedule;
    /* `char-rnn train` only, not saved */
    const char *data, *checkpoint_dir, *csv, *plot;
    int epochs, checkpoint_every;
    bool resume, overwrite, custom_loop, profile;
} cr_config;

/* Layers of a config (layers 0 counts as 1). */
int cr_config_layers(const cr_config *cfg);
/* DF_ERR_ARG naming the first bad setting as its flag (runstate.c: the config table's ranges, the schedule). */
df_status cr_config_check(const cr_config *cfg);
/* "2 x GRU(256, reset_after), dropout 0.2; sgd (momentum 0.9), clip 1". */
void cr_config_describe(const cr_config *cfg, char *buf, size_t cap);

/* Training/sampling and evaluation keep separate recurrent states (the
 * layers' state slots), one per batch size, up to CR_MAX_STATES each. */
enum { CR_STATE_MAIN = DF_STATE_MAIN, CR_STATE_EVAL = DF_STATE_EVAL };
#define CR_MAX_STATES DF_MAX_LAYER_STATES
/* embedding, 3 per recurrent layer, dense kernel and bias */
#define CR_MAX_PARAMS (3 + 3 * CR_MAX_LAYERS)

/* The layers (their variables by df_layer_weight) and the parameters, in
 * char-rnn's order, for checkpoints, data parallelism and tests. */
typedef struct cr_model {
    cr_config cfg;
    int n_layers;
    df_model *net;                 /* owns the layers, their variables and states */
    df_layer *embedding_layer, *rnn[CR_MAX_LAYERS], *dropout[CR_MAX_LAYERS], *dense;  /* dropout: NULL without */
    df_variable *params[CR_MAX_PARAMS];   /* embedding, each layer's three, dense kernel, bias */
    int n_params;
    df_optimizer *opt;
    df_variable *step_counter;     /* the optimizer's iteration counter (owned by it): dropout's seed */
    int dropout_row0;              /* data parallel: the first row of the batch this process holds */
    df_function *fit_step, *custom_step, *eval_step, *logits_fn;
} cr_model;

df_status cr_model_init(cr_model *m, const cr_config *cfg);
void cr_model_free(cr_model *m);
/* Zeroes every recurrent state (epoch start, "reset_states()"). */
void cr_model_reset_states(cr_model *m);
int64_t cr_model_param_count(const cr_model *m);
/* Keras-style summary table: one row per layer (dropout rows have 0). */
void cr_model_summary(const cr_model *m, int batch, FILE *out);

/* One step of a loss function on x, y (B,T): "fit" trains the fit way (the
 * compiled model's df_model_train_step), "custom" the GradientTape way (a
 * user-written train_step traced once), "eval" evaluates (own recurrent
 * state, no training). */
df_status cr_step(cr_model *m, const char *which, const df_tensor *x, const df_tensor *y, float *loss);
/* The tape-style train_step for (batch, seq) as a compiled graph with the
 * given passes (DF_PASS_*), not run; for inspecting plans, passes and graphs
 * (the fit step computes the same bits). Free with df_graph_free. */
df_status cr_compile_step(cr_model *m, int batch, int seq, unsigned passes, df_graph **out);
/* Forward only: x (B,T) -> logits (B,T,V) view (valid until the next call);
 * carries the main state of batch size B (at most CR_MAX_STATES of them). */
df_status cr_logits(cr_model *m, const df_tensor *x, df_tensor *logits);
/* The fit step, the custom train_step or the eval step ("fit", "custom",
 * "eval") as a df_function (created on first use), for df_fit: inputs x, y
 * (B,T) i32, first output the loss. */
df_function *cr_model_function(cr_model *m, const char *which);
/* How many traces each function made so far. */
int cr_trace_count(const cr_model *m, const char *which);
/* The graph of a traced function ("fit", "custom", "eval", "logits") or NULL. */
df_graph *cr_graph(const cr_model *m, const char *which);

#endif
