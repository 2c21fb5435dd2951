/*
 * Supervision policies, as pure functions: how long to wait before
 * restarting a worker that failed, and when a worker counts as stalled.
 */
#ifndef RUNWAY_DAEMON_SUPERVISE_POLICY_H
#define RUNWAY_DAEMON_SUPERVISE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct restart_policy {
  uint64_t first_delay_ms; /* delay after the first failure in a row */
  uint64_t max_delay_ms;
  uint64_t stable_after_ms; /* a worker that ran this long resets the failure streak */
};

extern const struct restart_policy supervisor_default_policy;

/* Delay before restart number `failures` of a streak (1 = first failure). */
uint64_t supervisor_restart_delay(const struct restart_policy *p, uint32_t failures);

/*
 * Stall detection: a worker stalls when its input position has not moved for
 * timeout_ms while more than `threshold` frames of input were pending.
 */
struct stall_watch {
  uint64_t pos;
  uint64_t since_ms;
  bool armed;
};

void stall_watch_reset(struct stall_watch *w, uint64_t pos, uint64_t now_ms);
bool stall_watch_check(struct stall_watch *w, uint64_t in_read, uint64_t pending,
                       uint64_t threshold, uint64_t now_ms, uint64_t timeout_ms);

#endif
