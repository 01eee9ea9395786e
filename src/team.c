/* team.c — how many threads a parallel region gets: the count the user set
 * (df_set_num_threads / OMP_NUM_THREADS), unless the machine has lately been
 * too busy to give each of them a core.
 *
 * Why: a region of T threads ends when its slowest thread does, and the
 * LSTM's regions meet at a barrier every time step. When another process
 * keeps a core busy, one of two threads waits for a scheduler slice (ms) at
 * every such point while the other spins (libgomp's default wait policy),
 * taking CPU from the busy process and from itself: char-rnn sample ran 8x
 * slower at 2 threads than at 1 that way (bench/busy.sh). The library cannot
 * change libgomp's wait policy once it is loaded, but it can stop asking for
 * threads that do not get a core.
 *
 * How: regions that ask for more than one thread are timed (df_team_begin /
 * _enter / _leave / _end). A thread that had its core for the whole region
 * has used about as much CPU time as wall time (spinning at a barrier counts
 * as CPU); a thread that waited for a core has not. Over a window of
 * TEAM_WINDOW_NS of such regions, if the worst thread's missing CPU time
 * exceeds TEAM_DEFICIT_MAX of the wall time, regions run on one thread for a
 * back-off period (doubling while the load lasts, up to TEAM_BACKOFF_MAX_NS),
 * then the full count is tried again. Results do not change: every parallel
 * kernel gives the same bits on any thread count. DF_TEAM_ADAPT=0 turns this
 * off. */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base.h"

#define TEAM_WINDOW_NS 20000000LL        /* 20 ms of timed regions per verdict */
#define TEAM_DEFICIT_MAX 0.25            /* a thread missing a quarter of the wall time */
#define TEAM_BACKOFF_MIN_NS 100000000LL  /* 0.1 s on one thread ... */
#define TEAM_BACKOFF_MAX_NS 2000000000LL /* ... doubling up to 2 s */

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static pthread_mutex_t team_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t window_wall, window_deficit;     /* sums over the current window */
static int64_t backoff_ns = TEAM_BACKOFF_MIN_NS;
static _Atomic int64_t single_until;            /* monotonic ns; 0 = not degraded */
static _Atomic int adapt_state = -1;            /* -1 unread, 0 off, 1 on */
static _Atomic long degradations;

static bool adapt_on(void)
{
    int s = atomic_load_explicit(&adapt_state, memory_order_relaxed);
    if (s < 0) {
        const char *v = getenv("DF_TEAM_ADAPT");
        s = !(v && strcmp(v, "0") == 0);
        atomic_store_explicit(&adapt_state, s, memory_order_relaxed);
    }
    return s == 1;
}

void df_team_set_adapt(int on)
{
    pthread_mutex_lock(&team_lock);
    atomic_store(&adapt_state, on < 0 ? -1 : on != 0);
    atomic_store(&single_until, 0);
    window_wall = window_deficit = 0;
    backoff_ns = TEAM_BACKOFF_MIN_NS;
    pthread_mutex_unlock(&team_lock);
}

long df_team_degradations(void) { return atomic_load(&degradations); }

int df_team_size(int wanted)
{
    if (wanted <= 1 || omp_in_parallel()) return 1;
    if (!adapt_on()) return wanted;
    int64_t until = atomic_load_explicit(&single_until, memory_order_relaxed);
    if (until && clock_ns(CLOCK_MONOTONIC) < until) return 1;
    return wanted;
}

void df_team_begin(df_team_probe *p, int nth)
{
    p->timed = nth > 1 && adapt_on();
    p->t0 = p->timed ? clock_ns(CLOCK_MONOTONIC) : 0;
    atomic_store_explicit(&p->worst_deficit, 0, memory_order_relaxed);
}

int64_t df_team_enter(const df_team_probe *p) { return p->timed ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0; }

void df_team_leave(df_team_probe *p, int64_t cpu0)
{
    if (!p->timed) return;
    const int64_t wall = clock_ns(CLOCK_MONOTONIC) - p->t0, cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    const int64_t deficit = wall - cpu;
    int64_t seen = atomic_load_explicit(&p->worst_deficit, memory_order_relaxed);
    while (deficit > seen &&
           !atomic_compare_exchange_weak_explicit(&p->worst_deficit, &seen, deficit, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void df_team_end(df_team_probe *p)
{
    if (!p->timed) return;
    const int64_t now = clock_ns(CLOCK_MONOTONIC), wall = now - p->t0;
    pthread_mutex_lock(&team_lock);
    window_wall += wall;
    window_deficit += atomic_load_explicit(&p->worst_deficit, memory_order_relaxed);
    if (window_wall >= TEAM_WINDOW_NS) {
        if ((double)window_deficit > TEAM_DEFICIT_MAX * (double)window_wall) {
            atomic_store(&single_until, now + backoff_ns);
            backoff_ns = backoff_ns * 2 < TEAM_BACKOFF_MAX_NS ? backoff_ns * 2 : TEAM_BACKOFF_MAX_NS;
            atomic_fetch_add(&degradations, 1);
        } else {
            atomic_store(&single_until, 0);
            backoff_ns = TEAM_BACKOFF_MIN_NS;
        }
        window_wall = window_deficit = 0;
    }
    pthread_mutex_unlock(&team_lock);
}
