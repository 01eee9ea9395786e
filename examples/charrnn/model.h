/* model.h — the tutorial's model: Embedding(V,E) -> LSTM(H, stateful,
 * return_sequences) -> Dense(V), and the traced functions that train,
 * evaluate and sample it. */
#ifndef CR_MODEL_H
#define CR_MODEL_H
#include "dagflow.h"
#include "text.h"

typedef struct cr_config {
    int vocab, embed, hidden;
    float learning_rate;
    uint64_t seed;
} cr_config;

/* Recurrent state for one batch size and purpose (training/sampling vs
 * evaluation keep separate states). */
typedef struct cr_state {
    int batch, purpose;
    df_variable *h, *c;
} cr_state;

enum { CR_STATE_MAIN = 0, CR_STATE_EVAL = 1 };
#define CR_MAX_STATES 8
#define CR_N_PARAMS 6

typedef struct cr_model {
    cr_config cfg;
    df_variable *embedding;        /* (V,E) */
    df_variable *kernel;           /* (E,4H) input kernel, gates i,f,c,o */
    df_variable *recurrent_kernel; /* (H,4H) */
    df_variable *bias;             /* (4H), forget-gate slice = 1 */
    df_variable *dense_kernel;     /* (H,V) */
    df_variable *dense_bias;       /* (V) */
    df_variable *params[CR_N_PARAMS];
    df_optimizer *opt;
    cr_state states[CR_MAX_STATES];
    int n_states;
    df_function *fit_step, *custom_step, *eval_step, *logits_fn;
} cr_model;

df_status cr_model_init(cr_model *m, const cr_config *cfg);
void cr_model_free(cr_model *m);
/* Zeroes every recurrent state (epoch start, "reset_states()"). */
void cr_model_reset_states(cr_model *m);
/* The state for (batch, purpose), created on first use; NULL on error. */
cr_state *cr_model_state(cr_model *m, int batch, int purpose);
int64_t cr_model_param_count(const cr_model *m);
/* Keras-style summary table. */
void cr_model_summary(const cr_model *m, int batch, FILE *out);

/* Training step, the fit way: gradients of the loss w.r.t. all parameters
 * via df_gradients, Adam update. x, y (B,T) -> loss. */
df_status cr_fit_step(cr_model *m, const df_tensor *x, const df_tensor *y, float *loss);
/* The fit step (or with custom, the tape-style train_step) for (batch, seq)
 * as a compiled graph with the given passes (DF_PASS_*), not run; for
 * inspecting plans, passes and graphs. Free with df_graph_free. */
df_status cr_compile_step(cr_model *m, int batch, int seq, unsigned passes, bool custom, df_graph **out);
/* Training step, the GradientTape way: a user-written train_step traced once. */
df_status cr_custom_step(cr_model *m, const df_tensor *x, const df_tensor *y, float *loss);
/* Loss without training (own recurrent state). */
df_status cr_eval_step(cr_model *m, const df_tensor *x, const df_tensor *y, float *loss);
/* Forward only: x (B,T) -> logits (B,T,V) view (valid until the next call);
 * carries the main state of batch size B. */
df_status cr_logits(cr_model *m, const df_tensor *x, df_tensor *logits);
/* How many traces each function made so far. */
int cr_trace_count(const cr_model *m, const char *which);
/* The graph of a traced function ("fit", "custom", "eval", "logits") or NULL. */
df_graph *cr_graph(const cr_model *m, const char *which);

#endif
