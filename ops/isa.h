/* isa.h — a loop compiled once per instruction set, each copy callable by
 * name, so that tests can run every copy this CPU has against the baseline
 * one. (DF_TARGET_CLONES in common.h makes such copies too, but GCC keeps
 * them local to the library.)
 *
 * DF_ISA_KERNEL(name, params, args) needs `static inline void name##_body
 * params` and defines name##_avx512f, name##_avx2 (AVX2 and FMA) and name##_default (each
 * that body inlined under its target), and `static void name params`, which
 * calls the widest one the CPU runs. A body whose every vector lane does the
 * scalar operations of one element (no reassociated sums; the file compiled
 * with fp-contract=off) gives the same bits in every copy. */
#ifndef DF_OPS_ISA_H
#define DF_OPS_ISA_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* The _avx2 copy may use FMA (every CPU with AVX2 but a few has it). */
static inline int df_cpu_has_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#define DF_ISA_KERNEL(name, params, args)                                        \
    __attribute__((target("avx512f"))) void name##_avx512f params { name##_body args; } \
    __attribute__((target("avx2,fma"))) void name##_avx2 params { name##_body args; } \
    void name##_default params { name##_body args; }                             \
    static void name params                                                      \
    {                                                                            \
        if (__builtin_cpu_supports("avx512f")) name##_avx512f args;              \
        else if (df_cpu_has_avx2_fma()) name##_avx2 args;                         \
        else name##_default args;                                                \
    }
#define DF_ISA_HAVE_CLONES 1
#else
#define DF_ISA_KERNEL(name, params, args)                                        \
    void name##_default params { name##_body args; }                             \
    static void name params { name##_default args; }
#define DF_ISA_HAVE_CLONES 0
#endif

#endif
