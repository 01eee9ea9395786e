/* schedule.h — `char-rnn train`'s learning-rate schedules: the library's
 * df_lr_schedule (dagflow.h), with the CLI's names and flag-named checks. */
#ifndef CR_SCHEDULE_H
#define CR_SCHEDULE_H
#include <stdbool.h>
#include <stdint.h>
#include "dagflow.h"

typedef df_lr_schedule cr_schedule;
typedef df_lr_kind cr_lr_kind;
#define CR_LR_CONSTANT DF_LR_CONSTANT
#define CR_LR_STEP DF_LR_STEP
#define CR_LR_COSINE DF_LR_COSINE
/* "constant", "step", "cosine", NULL (the CLI's choices). */
extern const char *const cr_schedule_names[];

static inline bool cr_schedule_active(const cr_schedule *s) { return df_lr_schedule_active(s); }
static inline float cr_schedule_lr(const cr_schedule *s, float base, int64_t step)
{
    return df_lr_schedule_rate(s, base, step);
}
/* "learning rate 0.001", "learning rate 0.001, cosine decay over 1000 steps
 * after 100 warm-up steps" ... */
typedef struct cr_schedule_text { char text[160]; } cr_schedule_text;
cr_schedule_text cr_schedule_describe(const cr_schedule *s, float base);
/* DF_ERR_ARG naming the flag of the first bad setting. */
df_status cr_schedule_check(const cr_schedule *s);

#endif
