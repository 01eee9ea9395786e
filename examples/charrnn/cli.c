/* cli.c — strict flag parsing: "--name value" or "--name=value". */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void show_default(const cli_flag *f, char *buf, size_t cap)
{
    switch (f->type) {
    case CLI_INT: snprintf(buf, cap, "%d", *(int *)f->target); break;
    case CLI_U64: snprintf(buf, cap, "%llu", (unsigned long long)*(uint64_t *)f->target); break;
    case CLI_FLOAT: snprintf(buf, cap, "%g", *(float *)f->target); break;
    case CLI_STRING: snprintf(buf, cap, "%s%s%s", *(const char **)f->target ? "\"" : "",
                              *(const char **)f->target ? *(const char **)f->target : "none",
                              *(const char **)f->target ? "\"" : ""); break;
    case CLI_BOOL: snprintf(buf, cap, "off"); break;
    case CLI_CHOICE: snprintf(buf, cap, "%s", f->choices[*(int *)f->target]); break;
    }
}

void cli_help(const char *command, const char *usage, const cli_flag *flags, int n_flags, FILE *out)
{
    fprintf(out, "usage: %s\n\n", usage);
    for (int i = 0; i < n_flags; i++) {
        const cli_flag *f = &flags[i];
        char def[256], name[64];
        show_default(f, def, sizeof def);
        const char *arg = f->type == CLI_BOOL ? "" : f->type == CLI_STRING ? " S" : f->type == CLI_CHOICE ? " C" :
                          f->type == CLI_FLOAT ? " X" : " N";
        snprintf(name, sizeof name, "--%s%s", f->name, arg);
        fprintf(out, "  %-24s %s (default: %s)\n", name, f->help, def);
    }
    fprintf(out, "  %-24s %s\n", "--help", "show this help");
    (void)command;
}

static int fail(FILE *err, const char *command, const char *msg, const char *flag, const char *value)
{
    fprintf(err, "%s: %s --%s%s%s%s (see %s --help)\n", command, msg, flag, value ? " '" : "", value ? value : "",
            value ? "'" : "", command);
    return 2;
}

/* Sets the flag's target from text; returns 0 or prints an error and returns 2. */
static int set_value(const char *command, const cli_flag *f, const char *v, FILE *err)
{
    char *end;
    errno = 0;
    switch (f->type) {
    case CLI_INT: case CLI_U64: {
        /* Digits only (a leading '-' for signed): strtoll would also take
         * spaces and '+', and strtoull would wrap "-1" around. */
        const char *digits = f->type == CLI_INT && v[0] == '-' ? v + 1 : v;
        if (!isdigit((unsigned char)digits[0]))
            return fail(err, command, f->type == CLI_U64 ? "needs a non-negative integer:" : "needs an integer:",
                        f->name, v);
        unsigned long long u = strtoull(v, &end, 10);
        long long x = f->type == CLI_INT ? strtoll(v, &end, 10) : 0;
        if (*v == 0 || *end || errno) return fail(err, command, "needs an integer:", f->name, v);
        if (f->type == CLI_U64) { *(uint64_t *)f->target = u; return 0; }
        if (x < f->min || x > f->max) {
            fprintf(err, "%s: --%s must be in %.0f..%.0f, got '%s'\n", command, f->name, f->min, f->max, v);
            return 2;
        }
        *(int *)f->target = (int)x;
        return 0;
    }
    case CLI_FLOAT: {
        if (!(isdigit((unsigned char)v[0]) || v[0] == '-' || v[0] == '.'))
            return fail(err, command, "needs a number:", f->name, v);
        float x = strtof(v, &end);
        if (*v && !*end && errno == ERANGE) {         /* 1e-50 or 1e50: a number, but not a float */
            fprintf(err, "%s: --%s '%s' is outside the range of a 32-bit float (%g..%g in magnitude)\n", command,
                    f->name, v, (double)FLT_MIN, (double)FLT_MAX);
            return 2;
        }
        if (*v == 0 || *end || errno || !isfinite(x)) return fail(err, command, "needs a number:", f->name, v);
        if (x < f->min || x > f->max) {
            fprintf(err, "%s: --%s must be in %g..%g, got '%s'\n", command, f->name, f->min, f->max, v);
            return 2;
        }
        *(float *)f->target = x;
        return 0;
    }
    case CLI_STRING: *(const char **)f->target = v; return 0;
    case CLI_CHOICE:
        for (int k = 0; f->choices[k]; k++)
            if (!strcmp(f->choices[k], v)) { *(int *)f->target = k; return 0; }
        fprintf(err, "%s: --%s must be one of", command, f->name);
        for (int k = 0; f->choices[k]; k++) fprintf(err, "%s %s", k ? "," : "", f->choices[k]);
        fprintf(err, "; got '%s'\n", v);
        return 2;
    case CLI_BOOL: return 0;
    }
    return 2;
}

int cli_parse(const char *command, const char *usage, const cli_flag *flags, int n_flags, int argc, char **argv,
              FILE *out, FILE *err)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_help(command, usage, flags, n_flags, out);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "%s: unexpected argument '%s' (see %s --help)\n", command, a, command);
            return 2;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_flag *f = NULL;
        for (int k = 0; k < n_flags && !f; k++)
            if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len)) f = &flags[k];
        if (!f) {
            fprintf(err, "%s: unknown flag '%s' (see %s --help)\n", command, a, command);
            return 2;
        }
        if (f->type == CLI_BOOL) {
            if (eq) return fail(err, command, "takes no value:", f->name, eq + 1);
            *(bool *)f->target = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v || (!eq && strncmp(v, "--", 2) == 0))   /* "--data --epochs 3": the value is missing */
            return fail(err, command, "needs a value:", f->name, NULL);
        int rc = set_value(command, f, v, err);
        if (rc) return rc;
    }
    return 0;
}
