/* rng.c — xoshiro256** with splitmix64 seeding; its state is plain data so a
 * checkpoint can save and restore it exactly. */
#include <math.h>
#include "dagflow.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void df_rng_seed(df_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t df_rng_next(df_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

float df_rng_uniform(df_rng *rng) { return (float)(df_rng_next(rng) >> 40) * 0x1.0p-24f; }

float df_rng_normal(df_rng *rng)
{
    /* Box–Muller; u1 in (0,1] so the log is finite. */
    double u1 = ((double)(df_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(df_rng_next(rng) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t df_rng_below(df_rng *rng, uint32_t n)
{
    if (n == 0) return 0;
    /* Lemire's multiply-shift, rejection removes the bias. */
    uint64_t m = (uint64_t)(uint32_t)(df_rng_next(rng) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)-n % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(df_rng_next(rng) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
