/* schedule.c — the CLI side of char-rnn's learning-rate schedules (see schedule.h). */
#include <stdio.h>
#include "schedule.h"

const char *const cr_schedule_names[] = {"constant", "step", "cosine", NULL};

cr_schedule_text cr_schedule_describe(const cr_schedule *s, float base)
{
    cr_schedule_text t;
    char warm[48] = "";
    if (s->warmup_steps > 0) snprintf(warm, sizeof warm, " after %d warm-up steps", s->warmup_steps);
    if (s->kind == CR_LR_STEP)
        snprintf(t.text, sizeof t.text, "learning rate %g, x %g every %d steps%s", base, s->decay_rate, s->decay_steps, warm);
    else if (s->kind == CR_LR_COSINE)
        snprintf(t.text, sizeof t.text, "learning rate %g, cosine decay over %d steps%s", base, s->decay_steps, warm);
    else if (s->warmup_steps > 0)
        snprintf(t.text, sizeof t.text, "learning rate %g%s", base, warm);
    else
        snprintf(t.text, sizeof t.text, "learning rate %g", base);
    return t;
}

df_status cr_schedule_check(const cr_schedule *s)
{
    if ((int)s->kind < CR_LR_CONSTANT || s->kind > CR_LR_COSINE)
        return df_error(DF_ERR_ARG, "--lr-schedule must be constant, step or cosine (got %d)", (int)s->kind);
    if (s->warmup_steps < 0) return df_error(DF_ERR_ARG, "--warmup-steps must be >= 0, got %d", s->warmup_steps);
    if (s->kind != CR_LR_CONSTANT && s->decay_steps < 1)
        return df_error(DF_ERR_ARG, "--decay-steps must be >= 1 for --lr-schedule %s, got %d", cr_schedule_names[s->kind],
                        s->decay_steps);
    if (s->kind == CR_LR_STEP && !(s->decay_rate > 0 && s->decay_rate <= 1))
        return df_error(DF_ERR_ARG, "--decay-rate must be in (0, 1] for --lr-schedule step, got %g", s->decay_rate);
    return DF_OK;
}
