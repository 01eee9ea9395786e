/* error_prefix.c — context in front of an error message on its way up. */
#include <stdio.h>
#include "dagflow.h"

df_status df_error_prefix(df_status st, const char *prefix)
{
    if (st == DF_OK || !prefix) return st;
    char msg[512];   /* df_error writes the message df_last_error shows: copy it first */
    snprintf(msg, sizeof msg, "%s", df_last_error());
    return df_error(st, "%s: %s", prefix, msg);
}
