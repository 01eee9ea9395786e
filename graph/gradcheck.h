/* gradcheck.h — compares an op's backward (built as graph nodes) with central
 * finite differences of its forward. Used by the registry-wide test. */
#ifndef DF_GRADCHECK_H
#define DF_GRADCHECK_H
#include "graph.h"

typedef struct df_gradcheck_result {
    int checked;              /* gradient entries compared */
    int failed;               /* entries outside tolerance */
    double max_abs_err;
    int worst_input;          /* where the largest error was */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
} df_gradcheck_result;

#define DF_GRADCHECK_ATOL 1e-3
#define DF_GRADCHECK_RTOL 5e-3

/* Runs one case with inputs drawn from seed. Returns a status for errors in
 * building or running; the comparison itself is reported in *out. */
df_status df_gradcheck_case_run(const df_gradcheck_case *c, uint64_t seed, df_gradcheck_result *out);

#endif
