#include "core/team.h"

#include <sched.h>

/* Pauses before yielding: ~70-160 us (a pause is ~64 cycles on Zen, ~140 on
 * Skylake and later), longer than a decode step's usual wait, far shorter
 * than a scheduler time slice. */
#define TEAM_SPIN 4096

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void spqri_team_init(spqr_team *t, int32_t n) {
    atomic_init(&t->arrived, 0);
    atomic_init(&t->phase, 0u);
    t->n = n;
}

void spqri_team_wait(spqr_team *t) {
    if (t->n <= 1) return;
    /* read before arriving: the phase cannot move until this thread arrives */
    const uint32_t ph = atomic_load_explicit(&t->phase, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&t->arrived, 1, memory_order_acq_rel) == t->n - 1) {
        atomic_store_explicit(&t->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&t->phase, ph + 1u, memory_order_release);
        return;
    }
    for (uint32_t i = 0; atomic_load_explicit(&t->phase, memory_order_acquire) == ph; i++) {
        if (i < TEAM_SPIN) cpu_relax();
        else sched_yield();
    }
}
