/*
 * Sleeping-worker protocol. A worker that has caught up publishes how much
 * pending input is worth waking for (wake_frames), raises `sleeping` and waits
 * on the futex word wake_seq. The daemon, after publishing new input, wakes it
 * only when it sleeps and at least wake_frames are pending, so a worker with a
 * 50 ms write-ahead is woken every ~12 ms instead of every cycle.
 *
 * The futex word lives in a MAP_SHARED memfd, so these use the shared (not
 * FUTEX_PRIVATE) operations.
 */
#ifndef RUNWAY_SHM_WAKE_H
#define RUNWAY_SHM_WAKE_H

#include <stdatomic.h>
#include <stdint.h>

#include <runway/segment.h>

#include "segment.h"

/* Waits while *word == expected, at most timeout_ns (< 0: forever). 0, -ETIMEDOUT or -EINTR. */
int shm_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wakes up to n waiters. Returns how many woke, or -errno. RT safe (never blocks). */
int shm_futex_wake(_Atomic uint32_t *word, int n);

/*
 * Wakes the worker whatever it waits for: bumps the futex word (so a wait
 * about to start returns too) and does one FUTEX_WAKE. RT safe.
 */
void shm_wake_worker(struct rw_daemon_control *ctl);

/*
 * Daemon side, after publishing in_write (shm_tl_daemon_write_input, whose
 * seq_cst store this relies on). Wakes the worker if, and only if, it sleeps
 * and at least its wake_frames (clamped to 1..capacity) are pending. Returns
 * 1 when it woke the worker, else 0. RT safe: one FUTEX_WAKE at most.
 */
int shm_wake_worker_if_due(const struct shm_ctl *ctl, uint64_t in_write, uint32_t capacity);

/*
 * Worker side: publishes wake_frames = want, then sleeps until the daemon
 * wakes it or timeout_ns passes, unless `want` frames are already pending past
 * pos. Returns 0 when input may be ready, -ETIMEDOUT, or -EINTR.
 */
int shm_wake_wait(const struct shm_ctl *ctl, uint64_t pos, uint32_t want, int64_t timeout_ns);

/* ---- the graph clock (struct rw_clock_ref) ---------------------------------- */

/*
 * A worker that sleeps on a timer until the input it wants has arrived, and
 * not until the daemon wakes it, costs the daemon's RT thread nothing: a
 * FUTEX_WAKE is about 7 us on a VM, more than copying a block. For that the
 * daemon publishes when its cycles happen; the worker predicts the cycle
 * that will bring the input and sets its timer just after it, and publishes
 * a wake_frames one period above what it waits for, so the daemon's wake
 * only comes when the timer was late by a whole period.
 */
struct shm_clock {
  uint64_t pos;    /* timeline position at which a cycle started */
  uint64_t ns;     /* CLOCK_MONOTONIC time its input was published */
  uint32_t period; /* frames per cycle */
};

/*
 * Daemon side: publishes *clk. *seq is the writer's private sequence (start
 * at 0); the shared one is never read back, so a worker that scribbles over
 * it cannot confuse the writer. RT safe: a few stores, never waits.
 */
void shm_clock_publish(struct rw_daemon_control *ctl, uint32_t *seq, const struct shm_clock *clk);

/*
 * Worker side: a consistent copy of the reference. Returns 0, or -EAGAIN
 * when there is none yet, the daemon is writing it (after a few tries) or it
 * is nonsense (a period outside 1..RW_MAX_PERIOD).
 */
int shm_clock_read(const struct rw_daemon_control *ctl, struct shm_clock *out);

/*
 * When, on clk's prediction, the daemon publishes input up to position
 * `want` (in_write >= want): the start of the first cycle whose input
 * reaches it. rate is the slot's sample rate. Positions before the
 * reference give its own time.
 */
int64_t shm_clock_due_ns(const struct shm_clock *clk, uint32_t rate, uint64_t want);

#endif
