/*
 * daemon/supervise: the restart and stall policies, pure functions of their
 * inputs. The process side of supervision (spawn, exit, stop) runs in the
 * integration tests with real workers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "supervisor.h"

/* ---- restart delay --------------------------------------------------------------- */

static void test_default_policy_backs_off(void **state) {
  (void)state;
  const struct restart_policy *p = &supervisor_default_policy;
  /* The first failure of a streak restarts at once, then 100 ms doubling to the cap. */
  assert_int_equal(supervisor_restart_delay(p, 1), p->first_delay_ms);
  assert_int_equal(supervisor_restart_delay(p, 1), 0);
  assert_int_equal(supervisor_restart_delay(p, 2), 100);
  assert_int_equal(supervisor_restart_delay(p, 3), 200);
  assert_int_equal(supervisor_restart_delay(p, 4), 400);
  assert_int_equal(supervisor_restart_delay(p, 7), 3200);
  assert_int_equal(supervisor_restart_delay(p, 8), p->max_delay_ms); /* 6400, capped */
  assert_int_equal(supervisor_restart_delay(p, 9), p->max_delay_ms);
}

static void test_zero_failures_is_the_first(void **state) {
  (void)state;
  struct restart_policy p = {.first_delay_ms = 30, .max_delay_ms = 1000, .stable_after_ms = 10};
  assert_int_equal(supervisor_restart_delay(&p, 0), 30);
  assert_int_equal(supervisor_restart_delay(&p, 1), 30);
}

static void test_long_streaks_stay_capped(void **state) {
  (void)state;
  const struct restart_policy *p = &supervisor_default_policy;
  /* No overflow of the doubling, however long the streak. */
  assert_int_equal(supervisor_restart_delay(p, 64), p->max_delay_ms);
  assert_int_equal(supervisor_restart_delay(p, 1000000), p->max_delay_ms);
  assert_int_equal(supervisor_restart_delay(p, UINT32_MAX), p->max_delay_ms);
}

static void test_delay_never_shrinks_in_a_streak(void **state) {
  (void)state;
  const struct restart_policy *p = &supervisor_default_policy;
  uint64_t prev = supervisor_restart_delay(p, 1);
  for (uint32_t f = 2; f < 200; f++) {
    uint64_t d = supervisor_restart_delay(p, f);
    assert_true(d >= prev);
    assert_true(d <= p->max_delay_ms);
    prev = d;
  }
}

static void test_cap_below_the_first_step(void **state) {
  (void)state;
  struct restart_policy p = {.first_delay_ms = 0, .max_delay_ms = 30, .stable_after_ms = 10};
  assert_int_equal(supervisor_restart_delay(&p, 2), 30);
  assert_int_equal(supervisor_restart_delay(&p, 5), 30);
  struct restart_policy q = {.first_delay_ms = 0, .max_delay_ms = 150, .stable_after_ms = 10};
  assert_int_equal(supervisor_restart_delay(&q, 2), 100);
  assert_int_equal(supervisor_restart_delay(&q, 3), 150);
}

/* ---- stall watch ------------------------------------------------------------------ */

#define THRESHOLD 256
#define TIMEOUT 1000

static void test_unarmed_watch_arms_without_firing(void **state) {
  (void)state;
  struct stall_watch w = {0};
  /* Never reset: the first check arms the watch at the current position. */
  assert_false(stall_watch_check(&w, 500, 10000, THRESHOLD, 5000, TIMEOUT));
  assert_true(w.armed);
  assert_int_equal(w.pos, 500);
  assert_int_equal(w.since_ms, 5000);
}

static void test_stall_fires_at_the_timeout(void **state) {
  (void)state;
  struct stall_watch w;
  stall_watch_reset(&w, 100, 1000);
  assert_false(stall_watch_check(&w, 100, 4096, THRESHOLD, 1000, TIMEOUT));
  assert_false(stall_watch_check(&w, 100, 4096, THRESHOLD, 1999, TIMEOUT));
  assert_true(stall_watch_check(&w, 100, 4096, THRESHOLD, 2000, TIMEOUT));
  /* It keeps firing while the worker stays stuck: the caller acts once. */
  assert_true(stall_watch_check(&w, 100, 4096, THRESHOLD, 2500, TIMEOUT));
}

static void test_progress_restarts_the_clock(void **state) {
  (void)state;
  struct stall_watch w;
  stall_watch_reset(&w, 100, 0);
  assert_false(stall_watch_check(&w, 100, 4096, THRESHOLD, 900, TIMEOUT));
  /* The worker moved on by one frame: the timeout counts from now. */
  assert_false(stall_watch_check(&w, 101, 4096, THRESHOLD, 950, TIMEOUT));
  assert_int_equal(w.pos, 101);
  assert_false(stall_watch_check(&w, 101, 4096, THRESHOLD, 1900, TIMEOUT));
  assert_true(stall_watch_check(&w, 101, 4096, THRESHOLD, 1950, TIMEOUT));
}

static void test_nothing_pending_is_no_stall(void **state) {
  (void)state;
  struct stall_watch w;
  stall_watch_reset(&w, 100, 0);
  /* An idle worker with at most `threshold` frames to read is waiting, not stuck. */
  assert_false(stall_watch_check(&w, 100, THRESHOLD, THRESHOLD, 5000, TIMEOUT));
  assert_false(stall_watch_check(&w, 100, 0, THRESHOLD, 9000, TIMEOUT));
  /* Input piles up from here: the timeout counts from the last idle look. */
  assert_false(stall_watch_check(&w, 100, THRESHOLD + 1, THRESHOLD, 9500, TIMEOUT));
  assert_true(stall_watch_check(&w, 100, THRESHOLD + 1, THRESHOLD, 10000, TIMEOUT));
}

static void test_reset_rearms(void **state) {
  (void)state;
  struct stall_watch w;
  stall_watch_reset(&w, 7, 0);
  assert_true(stall_watch_check(&w, 7, 4096, THRESHOLD, TIMEOUT, TIMEOUT));
  /* A new generation starts its own watch. */
  stall_watch_reset(&w, 0, 5000);
  assert_false(stall_watch_check(&w, 0, 4096, THRESHOLD, 5999, TIMEOUT));
  assert_true(stall_watch_check(&w, 0, 4096, THRESHOLD, 6000, TIMEOUT));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_policy_backs_off),
      cmocka_unit_test(test_zero_failures_is_the_first),
      cmocka_unit_test(test_long_streaks_stay_capped),
      cmocka_unit_test(test_delay_never_shrinks_in_a_streak),
      cmocka_unit_test(test_cap_below_the_first_step),
      cmocka_unit_test(test_unarmed_watch_arms_without_firing),
      cmocka_unit_test(test_stall_fires_at_the_timeout),
      cmocka_unit_test(test_progress_restarts_the_clock),
      cmocka_unit_test(test_nothing_pending_is_no_stall),
      cmocka_unit_test(test_reset_rearms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
