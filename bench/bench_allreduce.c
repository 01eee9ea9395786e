/* bench_allreduce.c — the cost of averaging the seed model's gradients
 * across ranks: the allreduce_mean op (pack divided by N + one MPI_Allreduce) on
 * the six char-rnn gradient shapes (vocab 65, embed 256, hidden 1024:
 * 5,330,241 floats, 21.3 MB), blocking and with a peer timeout (nonblocking
 * MPI_Iallreduce polled by MPI_Testall), next to a bare MPI_Allreduce of one
 * buffer of the same size and the op's pack alone. Run it under mpirun:
 *
 *      mpirun -np 2 bench/bench_allreduce [--reps N] [--vocab V --embed E --hidden H]
 *
 * Each timed call starts after a barrier; rank 0 prints the median and the
 * bus bandwidth of a ring all-reduce, 2 (N-1)/N bytes / time. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow_mpi.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void report(const char *what, double *t, int reps, double bytes, int size, int rank)
{
    double m = median(t, reps);
    if (rank == 0)
        printf("%-44s %9.2f ms  %7.2f GB/s bus\n", what, 1e3 * m, bytes * 2.0 * (size - 1) / size / m / 1e9);
}

int main(int argc, char **argv)
{
    int provided, rank, size, reps = 20;
    int64_t V = 65, E = 256, H = 1024;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vocab")) V = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--embed")) E = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--hidden")) H = atoll(argv[i + 1]);
    }
    if (reps < 1) reps = 1;
    /* embedding, kernel, recurrent kernel, bias, dense kernel, dense bias */
    int64_t shapes[6][2] = {{V, E}, {E, 4 * H}, {H, 4 * H}, {4 * H, 1}, {H, V}, {V, 1}};
    int64_t total = 0;
    for (int i = 0; i < 6; i++) total += shapes[i][0] * shapes[i][1];
    double bytes = 4.0 * (double)total;
    if (rank == 0)
        printf("all-reduce of %lld floats (%.1f MB) over %d ranks, median of %d\n", (long long)total, bytes / 1e6, size,
               reps);
    double *t = malloc((size_t)reps * sizeof *t);
    float *data[6];
    df_tensor in[6];
    for (int i = 0; i < 6; i++) {
        int64_t n = shapes[i][0] * shapes[i][1];
        data[i] = malloc((size_t)n * sizeof(float));
        for (int64_t k = 0; k < n; k++) data[i][k] = (float)((k + rank) % 97) * 1e-3f;
        in[i] = df_tensor_make(DF_F32, data[i], 2, shapes[i]);
    }
    for (int mode = 0; mode < 2; mode++) {
        df_allreduce_opts opts = {.comm = MPI_COMM_WORLD, .timeout = mode ? 600 : 0};
        df_graph *g = df_graph_new();
        df_node *ph[6], *out[6];
        for (int i = 0; i < 6; i++) ph[i] = df_placeholder(g, DF_F32, 2, shapes[i], NULL);
        df_allreduce_mean(g, &opts, 6, ph, out);
        for (int i = 0; i < 6; i++) df_graph_output(g, out[i]);
        df_tensor res[6];
        if (df_graph_run(g, in, 6, res, 6) != DF_OK) {       /* warm-up, compiles */
            fprintf(stderr, "rank %d: %s\n", rank, df_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double start = MPI_Wtime();
            df_graph_run(g, in, 6, res, 6);
            t[r] = MPI_Wtime() - start;
        }
        report(mode ? "allreduce_mean op, with a peer timeout" : "allreduce_mean op (pack / N, MPI_Allreduce)", t,
               reps, bytes, size, rank);
        df_graph_free(g);
    }
    float *flat = malloc((size_t)total * sizeof *flat);
    memset(flat, 0, (size_t)total * sizeof *flat);
    for (int r = 0; r < reps + 1; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, flat, (int)total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (r) t[r - 1] = MPI_Wtime() - start;
    }
    report("bare MPI_Allreduce of one buffer", t, reps, bytes, size, rank);
    for (int r = 0; r < reps + 1; r++) {          /* what the op adds: the six tensors copied / N */
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        int64_t at = 0;
        for (int i = 0; i < 6; i++) {
            int64_t n = shapes[i][0] * shapes[i][1];
            for (int64_t k = 0; k < n; k++) flat[at + k] = data[i][k] * (1.0f / (float)size);
            at += n;
        }
        if (r) t[r - 1] = MPI_Wtime() - start;
    }
    report("the pack alone (copy / N, no MPI)", t, reps, bytes, size, rank);
    for (int r = 0; r < reps + 1; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, flat, (int)total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        if (r) t[r - 1] = MPI_Wtime() - start;
    }
    report("bare MPI_Iallreduce + MPI_Wait", t, reps, bytes, size, rank);
    for (int i = 0; i < 6; i++) free(data[i]);
    free(flat);
    free(t);
    MPI_Finalize();
    return 0;
}
