/* blas_env.c — see blas_env.h. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "blas_env.h"

const char *cr_blas_corename(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

static int has_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

void cr_blas_env_init(char **argv)
{
    const char *opt = getenv("CHARRNN_BLAS_AUTO");
    if (opt && !strcmp(opt, "0")) return;
    if (getenv("OPENBLAS_CORETYPE")) return;          /* set by the user (or by us, once) */
    if (!argv || !argv[0] || !has_avx512()) return;
    if (strcasecmp(cr_blas_corename(), "Haswell") != 0) return;
    if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");                   /* exec failed: carry on as we were */
}
