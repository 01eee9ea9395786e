/* cli.h — a table-driven flag parser: every flag has a type, a target, a
 * default shown in --help, and strict number parsing. */
#ifndef CR_CLI_H
#define CR_CLI_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CLI_INT, CLI_U64, CLI_FLOAT, CLI_STRING, CLI_BOOL, CLI_CHOICE } cli_type;

typedef struct cli_flag {
    const char *name;          /* without the leading "--" */
    cli_type type;
    void *target;              /* int*, uint64_t*, float*, const char**, bool*, int* (choice index) */
    const char *help;
    double min, max;           /* numeric range (inclusive) */
    const char *const *choices;/* CLI_CHOICE: NULL-terminated names */
} cli_flag;

/* Parses argv[0..argc) against flags. On error prints one line to err and
 * returns 2; on --help prints help to out and returns 1; else 0. */
int cli_parse(const char *command, const char *usage, const cli_flag *flags, int n_flags, int argc, char **argv,
              FILE *out, FILE *err);
void cli_help(const char *command, const char *usage, const cli_flag *flags, int n_flags, FILE *out);

#endif
