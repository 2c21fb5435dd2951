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

/* Waits while *word == expected, at most timeout_ns (< 0: forever). 0, -ETIMEDOUT or -EINTR. */
int shm_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wakes up to n waiters. Returns how many woke, or -errno. RT safe (never blocks). */
int shm_futex_wake(_Atomic uint32_t *word, int n);

/*
 * Wakes the worker whatever it waits for: bumps the futex word (so a wait
 * about to start returns too) and does one FUTEX_WAKE. RT safe.
 */
void shm_wake_worker(struct rw_segment_control *ctl);

/*
 * Daemon side, after publishing in_write (shm_tl_daemon_write_input, whose
 * seq_cst store this relies on). Wakes the worker if, and only if, it sleeps
 * and at least its wake_frames (clamped to 1..capacity) are pending. Returns
 * 1 when it woke the worker, else 0. RT safe: one FUTEX_WAKE at most.
 */
int shm_wake_worker_if_due(struct rw_segment_control *ctl, uint64_t in_write, uint32_t capacity);

/*
 * Worker side: publishes wake_frames = want, then sleeps until the daemon
 * wakes it or timeout_ns passes, unless `want` frames are already pending past
 * pos. Returns 0 when input may be ready, -ETIMEDOUT, or -EINTR.
 */
int shm_wake_wait(struct rw_segment_control *ctl, uint64_t pos, uint32_t want,
                  int64_t timeout_ns);

#endif
