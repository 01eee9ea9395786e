/* schedule.c — learning-rate schedules as functions of the step (dagflow.h). */
#include <math.h>
#include "dagflow.h"

bool df_lr_schedule_active(const df_lr_schedule *s)
{
    return s->kind != DF_LR_CONSTANT || s->warmup_steps > 0;
}

float df_lr_schedule_rate(const df_lr_schedule *s, float base, int64_t step)
{
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return (float)((double)base * (double)(step + 1) / s->warmup_steps);
    int64_t after = step - s->warmup_steps;
    switch (s->kind) {
    case DF_LR_STEP:
        return (float)((double)base * pow((double)s->decay_rate, (double)(after / s->decay_steps)));
    case DF_LR_COSINE: {
        double done = after < s->decay_steps ? (double)after / s->decay_steps : 1.0;
        double a = s->min_ratio;
        return (float)((double)base * (a + (1.0 - a) * 0.5 * (1.0 + cos(M_PI * done))));
    }
    default:
        return base;
    }
}

df_status df_lr_schedule_check(const df_lr_schedule *s)
{
    if (!s) return df_error(DF_ERR_ARG, "learning-rate schedule: NULL");
    if ((int)s->kind < DF_LR_CONSTANT || s->kind > DF_LR_COSINE)
        return df_error(DF_ERR_ARG, "learning-rate schedule: kind must be constant, step or cosine (got %d)", (int)s->kind);
    if (s->warmup_steps < 0)
        return df_error(DF_ERR_ARG, "learning-rate schedule: warmup_steps must be >= 0, got %d", s->warmup_steps);
    if (s->kind != DF_LR_CONSTANT && s->decay_steps < 1)
        return df_error(DF_ERR_ARG, "learning-rate schedule: decay_steps must be >= 1 with a decay, got %d",
                        s->decay_steps);
    if (!(s->min_ratio >= 0 && s->min_ratio < 1))
        return df_error(DF_ERR_ARG, "learning-rate schedule: min_ratio must be in [0, 1), got %g", s->min_ratio);
    if (s->kind == DF_LR_STEP && !(s->decay_rate > 0 && s->decay_rate <= 1))
        return df_error(DF_ERR_ARG, "learning-rate schedule: decay_rate must be in (0, 1] for a step decay, got %g",
                        s->decay_rate);
    return DF_OK;
}
