/* blas_env.h — choose OpenBLAS's AVX-512 kernels on CPUs that have them but
 * that OpenBLAS runs with its AVX2 ("Haswell") kernels (0.3.21 does so for
 * CPUs newer than it knows). OpenBLAS picks its kernels when it is loaded,
 * before main, from the CPU or from OPENBLAS_CORETYPE, so the only way for a
 * program to change them is to start again with the variable set. */
#ifndef CR_BLAS_ENV_H
#define CR_BLAS_ENV_H

/* Call first thing in main. Re-executes the program once (same argv) with
 * OPENBLAS_CORETYPE=SkylakeX when all of these hold:
 *   - the CPU has AVX-512 F/DQ/BW/VL,
 *   - OPENBLAS_CORETYPE is not set (an explicit choice is always respected),
 *   - the loaded OpenBLAS reports the "Haswell" core,
 *   - CHARRNN_BLAS_AUTO is not "0" (the opt-out).
 * Returns only when it did not re-execute (or exec failed: then the program
 * simply goes on with the kernels it has). */
void cr_blas_env_init(char **argv);

/* The OpenBLAS core type in use, e.g. "Haswell", "SkylakeX", "Cooperlake". */
const char *cr_blas_corename(void);

#endif
