#include "core/team.h"

#include <time.h>

/* Pauses before sleeping: ~25 us on the Zen 4 VM here (a pause took 25 ns),
 * ~40 us where a pause is ~140 cycles (Intel since Skylake): longer than
 * the leader's usual serial step (an input's int8 preparation, 5-15 us at
 * 7B), shorter than the wake-up a sleep costs. */
#define TEAM_SPIN 1024
#define TEAM_NAP_MS 50

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
    atomic_init(&t->sleepers, 0);
    t->n = n;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->wake, NULL);
}

void spqri_team_free(spqr_team *t) {
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->wake);
}

/* The releaser stores the phase before it reads sleepers, a sleeper counts
 * itself before it reads the phase, each with a full fence between: either
 * the releaser sees the sleeper and wakes it under the mutex, or the
 * sleeper sees the new phase and does not sleep. (Sequentially consistent
 * accesses alone are enough in C11 and on hardware; under qemu-user,
 * test_families hung twice in ~25 CI runs with both threads asleep here,
 * which a translation that keeps no store-load order between an aarch64
 * stlr and a later ldar on an x86 host allows. The fence is a dmb, a full
 * barrier for any translator.) A sleeper also rechecks the phase every
 * TEAM_NAP_MS, so a lost wake-up would cost a nap, never a hang. */
void spqri_team_wait(spqr_team *t) {
    if (t->n <= 1) return;
    /* read before arriving: the phase cannot move until this thread arrives */
    const uint32_t ph = atomic_load_explicit(&t->phase, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&t->arrived, 1, memory_order_acq_rel) == t->n - 1) {
        atomic_store_explicit(&t->arrived, 0, memory_order_relaxed);
        atomic_store(&t->phase, ph + 1u);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&t->sleepers) > 0) {
            pthread_mutex_lock(&t->mu);
            pthread_cond_broadcast(&t->wake);
            pthread_mutex_unlock(&t->mu);
        }
        return;
    }
    for (int i = 0; i < TEAM_SPIN; i++) {
        if (atomic_load_explicit(&t->phase, memory_order_acquire) != ph) return;
        cpu_relax();
    }
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->sleepers, 1);
    atomic_thread_fence(memory_order_seq_cst);
    while (atomic_load(&t->phase) == ph) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TEAM_NAP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&t->wake, &t->mu, &until);
    }
    atomic_fetch_sub(&t->sleepers, 1);
    pthread_mutex_unlock(&t->mu);
}
