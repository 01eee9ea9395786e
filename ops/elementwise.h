/* elementwise.h — what the table of elementwise ops (elementwise.def) gives
 * every file: the DF_EW_* fusion codes, each code's arity, and each op's
 * scalar function df_ew_<name>, the one definition of its values. */
#ifndef DF_OPS_ELEMENTWISE_H
#define DF_OPS_ELEMENTWISE_H

#include <math.h>

/* df_op_def.elementwise of each op: the instructions of a fused chain. */
enum {
    DF_EW_NONE = 0,               /* not fusable */
#define DF_EW(name, CODE, arity, ...) DF_EW_##CODE,
#include "elementwise.def"
    DF_EW_END                     /* one past the last code */
};
_Static_assert(DF_EW_END <= 256, "a df_fused_program stores codes in a byte");

/* float df_ew_<name>(float x) or (float a, float b): the formula. */
#define DF_EW_SCALAR_1(name, ...) static inline float df_ew_##name(float x) { return (__VA_ARGS__); }
#define DF_EW_SCALAR_2(name, ...) static inline float df_ew_##name(float a, float b) { return (__VA_ARGS__); }
#define DF_EW(name, CODE, arity, ...) DF_EW_SCALAR_##arity(name, __VA_ARGS__)
#include "elementwise.def"
#undef DF_EW_SCALAR_1
#undef DF_EW_SCALAR_2

/* 1 or 2 inputs; 0 for DF_EW_NONE and codes outside the table. */
static inline int df_ew_arity(int code)
{
    switch (code) {
#define DF_EW(name, CODE, arity, ...) case DF_EW_##CODE: return arity;
#include "elementwise.def"
    default: return 0;
    }
}
#define DF_EW_IS_BINARY(code) (df_ew_arity(code) == 2)

#endif
