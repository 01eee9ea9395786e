/* test_lstm_scratch.c — the LSTM's op scratch (lstm_scratch_acquire in
 * ops/lstm_gemm.c): large buffers (the packed recurrent weight, d w_rec's
 * panels) are 2 MB aligned and marked for transparent huge pages, both the
 * process-wide cached buffer and the private one a second holder gets;
 * small ones are 64-byte aligned. The huge pages matter for speed only
 * (the weight is streamed through the TLB in every step), so losing them
 * would go unnoticed by every result test. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "helpers.h"
#include "../ops/lstm_kernels.h"

enum { MB2 = 2 << 20 };

/* Whether the kernel has transparent huge pages at all (else madvise has
 * nothing to mark and the flag check is skipped). */
static bool thp_configured(void)
{
    return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0;
}

/* The VmFlags line of the mapping in /proc/self/smaps that holds p ("" if
 * none was found). */
static void vm_flags_of(const void *p, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return;
    char line[512];
    bool inside = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {           /* a mapping's first line */
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, cap, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

static void expect_huge(const float *p, size_t floats, const char *what)
{
    cr_assert_not_null(p, "%s: no memory", what);
    cr_expect_eq((uintptr_t)p % MB2, 0, "%s: %p is not 2 MB aligned", what, (const void *)p);
    if (!thp_configured()) {
        cr_log_info("%s: no transparent huge pages in this kernel, flag not checked", what);
        return;
    }
    char flags[512];
    vm_flags_of(p + floats / 2, flags, sizeof flags);
    cr_expect(strstr(flags, " hg") != NULL, "%s: not marked MADV_HUGEPAGE (VmFlags:%s)", what, flags);
}

Test(lstm_scratch, large_buffers_on_huge_pages)
{
    const size_t floats = (size_t)5 << 20;                  /* 20 MB, the size of a packed weight */
    bool cached1, cached2;
    float *a = lstm_scratch_acquire(floats, &cached1);
    float *b = lstm_scratch_acquire(floats, &cached2);     /* while a is held: a private one */
    cr_assert(cached1 && !cached2, "first the cached buffer, then a private one");
    memset(a, 0, floats * sizeof(float));
    memset(b, 0, floats * sizeof(float));
    expect_huge(a, floats, "cached buffer");
    expect_huge(b, floats, "private buffer");
    lstm_scratch_release(b, cached2);
    lstm_scratch_release(a, cached1);
}

Test(lstm_scratch, small_buffers_aligned)
{
    bool cached1, cached2;
    float *a = lstm_scratch_acquire(1000, &cached1);
    float *b = lstm_scratch_acquire(1000, &cached2);
    cr_assert(a && b);
    cr_expect_eq((uintptr_t)a % 64, 0);
    cr_expect_eq((uintptr_t)b % 64, 0);
    a[999] = b[999] = 1.0f;                                 /* the whole size is usable (ASan) */
    lstm_scratch_release(b, cached2);
    lstm_scratch_release(a, cached1);
}
