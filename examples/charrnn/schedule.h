/* schedule.h — learning-rate schedules for `char-rnn train`, computed on the
 * host before each step and set with df_optimizer_set_learning_rate (no
 * retrace). The rate is a function of the step alone, so a resumed run (the
 * step is in the checkpoint) continues the same curve. */
#ifndef CR_SCHEDULE_H
#define CR_SCHEDULE_H
#include <stdbool.h>
#include <stdint.h>
#include "dagflow.h"

typedef enum cr_lr_kind { CR_LR_CONSTANT = 0, CR_LR_STEP = 1, CR_LR_COSINE = 2 } cr_lr_kind;
/* "constant", "step", "cosine", NULL (the CLI's choices). */
extern const char *const cr_schedule_names[];

/* All zero = a constant rate (the optimizer's own, untouched). */
typedef struct cr_schedule {
    cr_lr_kind kind;
    int warmup_steps;   /* linear warm-up: step s < W runs at base * (s+1)/W */
    int decay_steps;    /* step: decay every N steps; cosine: length of the decay */
    float decay_rate;   /* step: factor per decay_steps */
} cr_schedule;

/* True when the schedule sets the rate each step (not constant, or warm-up). */
bool cr_schedule_active(const cr_schedule *s);
/* The rate for step (0-based: steps taken before it), after warm-up W:
 *   constant: base
 *   step:     base * decay_rate^floor((step - W) / decay_steps)
 *   cosine:   base * (1 + cos(pi * min(step - W, decay_steps) / decay_steps)) / 2
 *             (Keras' CosineDecay with alpha 0: it reaches 0 at decay_steps). */
float cr_schedule_lr(const cr_schedule *s, float base, int64_t step);
/* "learning rate 0.001", "learning rate 0.001, cosine decay over 1000 steps
 * after 100 warm-up steps" ... */
typedef struct cr_schedule_text { char text[160]; } cr_schedule_text;
cr_schedule_text cr_schedule_describe(const cr_schedule *s, float base);
/* DF_ERR_ARG naming the flag of the first bad setting. */
df_status cr_schedule_check(const cr_schedule *s);

#endif
