/* optimizer_config.c — an optimizer from its Keras name and the few
 * hyperparameters a command line sets (tf.keras.optimizers.get), and the
 * words a run prints about it. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "dagflow.h"

const char *const df_optimizer_names[] = {"adam", "adamw", "rmsprop", "sgd", NULL};
enum { ADAM, ADAMW, RMSPROP, SGD };

static int kind_of(const char *name)
{
    for (int i = 0; name && df_optimizer_names[i]; i++)
        if (!strcmp(name, df_optimizer_names[i])) return i;
    return -1;
}

static df_status check(const df_optimizer_config *c, int kind)
{
    if (kind < 0)
        return df_error(DF_ERR_ARG, "optimizer '%s': not one of adam, adamw, rmsprop, sgd", c->name ? c->name : "(null)");
    if (!(c->learning_rate >= 0) || isinf(c->learning_rate))
        return df_error(DF_ERR_ARG, "optimizer %s: learning rate %g is not a finite rate >= 0", c->name,
                        (double)c->learning_rate);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return df_error(DF_ERR_ARG, "optimizer %s: momentum %g is not in [0, 1)", c->name, (double)c->momentum);
    if (c->momentum > 0 && kind != SGD)
        return df_error(DF_ERR_ARG, "optimizer %s: momentum %g applies to sgd only", c->name, (double)c->momentum);
    if (!(c->clipnorm >= 0) || isinf(c->clipnorm))
        return df_error(DF_ERR_ARG, "optimizer %s: clipnorm %g is not a finite norm >= 0", c->name, (double)c->clipnorm);
    return DF_OK;
}

df_status df_optimizer_from_config(const df_optimizer_config *c, df_optimizer **out)
{
    if (!c || !out) return df_error(DF_ERR_ARG, "df_optimizer_from_config: null argument");
    *out = NULL;
    int kind = kind_of(c->name);
    df_status st = check(c, kind);
    if (st != DF_OK) return st;
    float lr = c->learning_rate;
    df_optimizer *o = kind == ADAM      ? df_adam_new(lr, 0.9f, 0.999f, 1e-7f)
                    : kind == ADAMW     ? df_adamw_new(lr, 0.9f, 0.999f, 1e-8f, 0.01f)
                    : kind == RMSPROP   ? df_rmsprop_new(lr, 0.9f, 1e-7f)
                    : c->momentum > 0   ? df_sgd_momentum_new(lr, c->momentum, false)
                                        : df_sgd_new(lr);
    if (!o) return DF_ERR_NOMEM;   /* the constructor's message */
    if (c->clipnorm > 0 && (st = df_optimizer_set_global_clipnorm(o, c->clipnorm)) != DF_OK) {
        df_optimizer_free(o);
        return st;
    }
    *out = o;
    return DF_OK;
}

int df_optimizer_config_describe(const df_optimizer_config *c, char *buf, size_t cap)
{
    char momentum[40] = "", clip[40] = "";
    if (c->momentum > 0) snprintf(momentum, sizeof momentum, " (momentum %g)", (double)c->momentum);
    if (c->clipnorm > 0) snprintf(clip, sizeof clip, ", clip %g", (double)c->clipnorm);
    return snprintf(buf, cap, "%s%s%s", c->name ? c->name : "(null)", momentum, clip);
}
