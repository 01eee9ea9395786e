/* test_team.c — src/team.c (the thread count adapted to the load) and
 * df_enable_ftz_all_threads. A thread that misses its core is simulated by
 * sleeping inside a timed region: its wall time runs on, its CPU time does
 * not, which is what a thread waiting for a busy core looks like. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <omp.h>
#include <time.h>
#include <xmmintrin.h>
#include <pmmintrin.h>
#include "base.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* One timed region of two threads in which thread 1 sleeps `ms`. */
static void region_with_a_sleeper(int ms)
{
    df_team_probe p;
    df_team_begin(&p, 2);
#pragma omp parallel num_threads(2)
    {
        const int64_t c = df_team_enter(&p);
        if (omp_get_thread_num() == 1) sleep_ms(ms);
        df_team_leave(&p, c);
    }
    df_team_end(&p);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ms from now until df_team_size(2) gives 2 again (polled; at most 3 s).
 * A loaded machine can only make this longer, so lower bounds are safe. */
static double ms_until_full_count(void)
{
    const double t0 = now_ms();
    while (df_team_size(2) != 2 && now_ms() - t0 < 3000) sleep_ms(2);
    return now_ms() - t0;
}

Test(team, a_thread_without_its_core_makes_regions_single_threaded)
{
    df_team_set_adapt(1);
    cr_assert_eq(df_team_size(2), 2, "a fresh state keeps the count asked for");
    const long before = df_team_degradations();
    region_with_a_sleeper(30);          /* 30 ms: past the 20 ms window, deficit ~100% */
    cr_assert_eq(df_team_degradations(), before + 1, "one verdict: too busy");
    cr_assert_eq(df_team_size(2), 1, "regions run on one thread during the back-off");
    cr_assert_eq(df_team_size(1), 1);
    const double back = ms_until_full_count();
    cr_assert(back >= 90 && back < 3000, "the first back-off is 0.1 s, the full count came back after %.0f ms", back);
    df_team_set_adapt(-1);
}

Test(team, the_back_off_doubles_while_the_load_lasts)
{
    df_team_set_adapt(1);
    region_with_a_sleeper(30);
    const double first = ms_until_full_count();
    region_with_a_sleeper(30);          /* still busy: 0.2 s this time */
    const double second = ms_until_full_count();
    cr_assert(second >= 190 && second < 3000, "second back-off %.0f ms (first %.0f ms), want 0.2 s", second, first);
    df_team_set_adapt(-1);
}

Test(team, short_windows_give_no_verdict)
{
    df_team_set_adapt(1);
    const long before = df_team_degradations();
    const double t0 = now_ms();
    region_with_a_sleeper(2);           /* 2 ms of a 20 ms window */
    const double took = now_ms() - t0;
    if (took >= 15) {                   /* a loaded machine stretched the region: no test possible */
        cr_log_warn("the 2 ms region took %.0f ms; nothing checked", took);
        df_team_set_adapt(-1);
        return;
    }
    cr_assert_eq(df_team_degradations(), before, "a verdict after %.1f ms of a 20 ms window", took);
    cr_assert_eq(df_team_size(2), 2);
    df_team_set_adapt(-1);
}

Test(team, turned_off_keeps_the_count)
{
    df_team_set_adapt(0);
    const long before = df_team_degradations();
    region_with_a_sleeper(30);
    cr_assert_eq(df_team_degradations(), before, "DF_TEAM_ADAPT=0: no verdicts");
    cr_assert_eq(df_team_size(2), 2);
    df_team_set_adapt(-1);
}

Test(team, inside_a_parallel_region_one_thread)
{
    df_team_set_adapt(1);
    int inner = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        inner = df_team_size(2);
    }
    cr_assert_eq(inner, 1);
    df_team_set_adapt(-1);
}

/* Pool threads that existed before FTZ was asked for get it, also when the
 * pool grows after a first call (the call skips its region only for a team
 * it has already set up). */
Test(team, ftz_on_every_pool_thread)
{
    const int sizes[2] = {2, 3};
    for (int s = 0; s < 2; s++) {
        const int nth = sizes[s];
        df_set_num_threads(nth);
#pragma omp parallel num_threads(nth)
        if (omp_get_thread_num() != 0) {        /* the pool threads only: the caller keeps what it has */
            _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_OFF);
            _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_OFF);
        }
        df_enable_ftz_all_threads();
        int missing = 0;
#pragma omp parallel num_threads(nth) reduction(+ : missing)
        missing += _MM_GET_FLUSH_ZERO_MODE() != _MM_FLUSH_ZERO_ON || _MM_GET_DENORMALS_ZERO_MODE() != _MM_DENORMALS_ZERO_ON;
        cr_assert_eq(missing, 0, "%d of %d threads without FTZ/DAZ", missing, nth);
    }
    df_set_num_threads(2);
}
