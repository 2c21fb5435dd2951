#include "policy.h"

const struct restart_policy supervisor_default_policy = {
    .first_delay_ms = 0,
    .max_delay_ms = 5000,
    .stable_after_ms = 5000,
};

uint64_t supervisor_restart_delay(const struct restart_policy *p, uint32_t failures) {
  if (failures <= 1)
    return p->first_delay_ms;
  /* 100 ms, 200 ms, 400 ms ... after the first immediate retry, capped. */
  uint64_t delay = 100;
  for (uint32_t i = 2; i < failures && delay < p->max_delay_ms; i++)
    delay *= 2;
  return delay < p->max_delay_ms ? delay : p->max_delay_ms;
}

void stall_watch_reset(struct stall_watch *w, uint64_t pos, uint64_t now_ms) {
  w->pos = pos;
  w->since_ms = now_ms;
  w->armed = true;
}

bool stall_watch_check(struct stall_watch *w, uint64_t in_read, uint64_t pending,
                       uint64_t threshold, uint64_t now_ms, uint64_t timeout_ms) {
  if (!w->armed || in_read != w->pos || pending <= threshold) {
    stall_watch_reset(w, in_read, now_ms);
    return false;
  }
  return now_ms - w->since_ms >= timeout_ms;
}
