/* dagflow_bench.h — the parts of dagflow-bench (tools/dagflow_bench*.c)
 * that call each other: a case (an op, its input shapes and attributes,
 * forward or with its gradient), measuring one, the machine's limits, and
 * the check and model subcommands. */
#ifndef DF_TOOLS_BENCH_H
#define DF_TOOLS_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include "../ops/registry.h"

enum { BENCH_EXIT_OK = 0, BENCH_EXIT_FAIL = 1, BENCH_EXIT_USAGE = 2 };

typedef struct bench_case {
    const df_op_def *op;
    int n_in;
    int ndim[4];
    int64_t shape[4][DF_MAX_DIMS];
    double attrs[DF_BENCH_MAX_ATTRS];
    bool backward;
    char shapes_text[160];          /* "64x1024,1024x4096" */
    char attrs_text[160];           /* "transpose_b=1 ..." as given, "" for none */
} bench_case;

typedef struct bench_timing {
    double seconds;                 /* time budget (0: use reps) */
    int reps;                       /* exact number of timed runs (0: use seconds) */
} bench_timing;

typedef struct bench_result {
    int threads, reps;
    double ms_median, ms_min, ms_p90;
    double flops, bytes;            /* summed over the nodes that ran */
    bool costed;                    /* every node that ran has a cost model */
    char uncosted[96];              /* the ops that have none, comma-separated */
    /* the roofline: which limit applies and the share of it reached */
    const char *bound;              /* "compute" or "memory" ("-" without cost) */
    char limit_name[64];            /* "fp32 FMA peak (avx512)", "DRAM read bandwidth" */
    double limit_value;             /* GFLOP/s or GB/s */
    double pct_of_limit;
} bench_result;

/* Parsing: 0 on success, else BENCH_EXIT_USAGE with the message in err. */
int bench_case_parse(bench_case *c, const char *op_name, const char *shapes, int n_attrs,
                     const char *const *attrs, bool backward, char *err, size_t err_len);
/* "SHAPES[ k=v ...]", a suite entry of an op's df_bench_def. */
int bench_case_parse_entry(bench_case *c, const df_op_def *op, const char *entry, bool backward, char *err,
                           size_t err_len);
/* Builds, compiles and times c. 0, or BENCH_EXIT_FAIL with the message in err. */
int bench_case_run(const bench_case *c, const bench_timing *t, bench_result *r, char *err, size_t err_len);
void bench_result_print(FILE *out, const bench_case *c, const bench_result *r);
void bench_result_json(FILE *out, const bench_case *c, const bench_result *r);

/* The machine (tools/dagflow_bench_peak.c); each figure measured once per process. */
const char *bench_cpu_model(void);
const char *bench_fma_isa(void);                 /* "avx512", "avx2" or "scalar" */
bool bench_has_bf16(void);
double bench_peak_fma_gflops(int threads);
double bench_peak_bf16_gflops(int threads);     /* 0 without avx512_bf16 */
enum { BENCH_L2, BENCH_L3, BENCH_DRAM, BENCH_LEVELS };
const char *bench_level_name(int level);
double bench_read_gbs(int level, int threads);
size_t bench_level_bytes(int level, int threads);/* the buffer a level's figure reads */
int bench_level_for(double bytes, int threads);  /* the level a working set of bytes lives in */
int cmd_peak(int argc, char **argv);

int cmd_check(int argc, char **argv);            /* tools/dagflow_bench_check.c */
int cmd_model(int argc, char **argv);            /* tools/dagflow_bench_model.c */

double bench_now(void);
double bench_median_sorted(const double *sorted, int n);

#endif
