/* gradcheck.h — compares an op's backward (built as graph nodes) with central
 * finite differences of its forward. Used by the registry-wide test. */
#ifndef DF_GRADCHECK_H
#define DF_GRADCHECK_H
#include "graph.h"

typedef struct df_gradcheck_result {
    int checked;              /* gradient entries compared */
    int failed;               /* entries outside tolerance, or NaN/Inf on either side */
    int nonfinite;            /* entries where the analytic or numeric value is NaN or Inf */
    /* f32 inputs whose numeric gradient is within atol of 0 everywhere: for
     * them the case cannot tell a wrong backward from a right one. */
    int inputs_without_gradient;
    double max_abs_err;       /* INFINITY when some entry is non-finite */
    int worst_input;          /* where the largest error was (the first non-finite entry if any) */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
} df_gradcheck_result;

/* An entry passes when |numeric - analytic| <= atol + rtol * max(|numeric|,
 * |analytic|) and both are finite. Measured over 50 seeds of every registry
 * case, the largest errors needed about 2e-5 absolute (recurrent cells,
 * log_softmax) and 1e-3 relative at small atol (div, whose third derivative
 * is large near 0.5); these defaults, about 2.5x that, then passed 1000 seeds
 * of every case. A case that needs more says why at the case. */
#define DF_GRADCHECK_ATOL 5e-5
#define DF_GRADCHECK_RTOL 1e-3

/* Runs one case with inputs drawn from seed. Returns a status for errors in
 * building or running; the comparison itself is reported in *out. */
df_status df_gradcheck_case_run(const df_gradcheck_case *c, uint64_t seed, df_gradcheck_result *out);

/* Builds c's graph (forward, loss and gradients) without running it, so a
 * test can see which ops the backward creates. The caller frees *out. */
df_status df_gradcheck_case_graph(const df_gradcheck_case *c, df_graph **out);

#endif
