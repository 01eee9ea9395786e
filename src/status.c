/* status.c — error codes and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include "dagflow.h"

static _Thread_local char last_error[512];

const char *df_last_error(void) { return last_error; }

df_status df_error(df_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *df_status_name(df_status s)
{
    switch (s) {
    case DF_OK: return "ok";
    case DF_ERR_ARG: return "invalid argument";
    case DF_ERR_SHAPE: return "shape error";
    case DF_ERR_DTYPE: return "dtype error";
    case DF_ERR_NOMEM: return "out of memory";
    case DF_ERR_IO: return "I/O error";
    case DF_ERR_FORMAT: return "format error";
    case DF_ERR_STATE: return "invalid state";
    case DF_ERR_RANGE: return "value out of range";
    case DF_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}
