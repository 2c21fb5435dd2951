/*
 * shm/wake: the sleeping-worker protocol on a real segment's control block.
 * Threads wait for conditions with generous deadlines; no sleep is relied on
 * for correctness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "segment.h"
#include "wake.h"

#define MS INT64_C(1000000)

static int setup(void **state) {
  static struct shm_segment seg;
  struct proto_segment_params p = {
      .sample_rate = 48000, .n_inputs = 1, .n_outputs = 1, .latency = 4800, .max_period = 256};
  if (shm_segment_create(&p, "wake", &seg, NULL, 0) != 0)
    return -1;
  *state = &seg;
  return 0;
}

static int teardown(void **state) {
  shm_segment_release(*state);
  return 0;
}

static const struct shm_ctl *fresh_control(void **state) {
  struct shm_segment *seg = *state;
  const struct shm_ctl *c = &seg->ctl;
  atomic_store(&c->d->in_write.value, 0);
  atomic_store(&c->w->in_read.value, 0);
  atomic_store(&c->d->wake_seq, 0);
  atomic_store(&c->w->sleeping, 0);
  atomic_store(&c->w->wake_frames, seg->layout.wake_frames_default);
  return c;
}

static uint32_t capacity(void **state) { return ((struct shm_segment *)*state)->layout.capacity; }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pause_briefly(void) {
  struct timespec ts = {0, 100000};
  nanosleep(&ts, NULL);
}

/* ---- daemon side ---------------------------------------------------------- */

static void test_wake_not_sleeping(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->w->wake_frames, 1);
  atomic_store(&c->d->in_write.value, 100000);
  /* Plenty pending, but a worker that is not asleep is never woken. */
  assert_int_equal(shm_wake_worker_if_due(c, 100000, capacity(state)), 0);
  assert_int_equal(atomic_load(&c->d->wake_seq), 0);
  assert_int_equal(atomic_load(&c->w->sleeping), 0);
}

static void test_wake_not_enough_pending(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->w->wake_frames, 100);
  atomic_store(&c->w->in_read.value, 1000);
  atomic_store(&c->w->sleeping, 1);
  assert_int_equal(shm_wake_worker_if_due(c, 1000, capacity(state)), 0);
  assert_int_equal(shm_wake_worker_if_due(c, 1099, capacity(state)), 0);
  assert_int_equal(atomic_load(&c->w->sleeping), 1);
  assert_int_equal(atomic_load(&c->d->wake_seq), 0);

  assert_int_equal(shm_wake_worker_if_due(c, 1100, capacity(state)), 1);
  assert_int_equal(atomic_load(&c->w->sleeping), 0);
  assert_int_equal(atomic_load(&c->d->wake_seq), 1);
  /* One wake per sleep: the flag is cleared, so the next cycle does not wake again. */
  assert_int_equal(shm_wake_worker_if_due(c, 1200, capacity(state)), 0);
  assert_int_equal(atomic_load(&c->d->wake_seq), 1);

  atomic_store(&c->w->sleeping, 1);
  assert_int_equal(shm_wake_worker_if_due(c, 5000, capacity(state)), 1);
  assert_int_equal(atomic_load(&c->d->wake_seq), 2);
}

static void test_wake_seq_wraps(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->d->wake_seq, UINT32_MAX);
  atomic_store(&c->w->wake_frames, 1);
  atomic_store(&c->w->sleeping, 1);
  assert_int_equal(shm_wake_worker_if_due(c, 1, capacity(state)), 1);
  assert_int_equal(atomic_load(&c->d->wake_seq), 0);
}

static void test_wake_frames_clamped(void **state) {
  uint32_t cap = capacity(state);
  const struct shm_ctl *c = fresh_control(state);

  /* 0 means 1: nothing pending is never worth a wake. */
  atomic_store(&c->w->wake_frames, 0);
  atomic_store(&c->w->in_read.value, 500);
  atomic_store(&c->w->sleeping, 1);
  assert_int_equal(shm_wake_worker_if_due(c, 500, cap), 0);
  assert_int_equal(atomic_load(&c->w->sleeping), 1);
  assert_int_equal(shm_wake_worker_if_due(c, 501, cap), 1);

  /* More than a ring would never be pending: a full ring is enough. */
  atomic_store(&c->w->wake_frames, cap * 4);
  atomic_store(&c->w->in_read.value, 0);
  atomic_store(&c->w->sleeping, 1);
  assert_int_equal(shm_wake_worker_if_due(c, cap - 1, cap), 0);
  assert_int_equal(shm_wake_worker_if_due(c, cap, cap), 1);

  atomic_store(&c->w->wake_frames, UINT32_MAX);
  atomic_store(&c->w->sleeping, 1);
  assert_int_equal(shm_wake_worker_if_due(c, cap, cap), 1);
}

static void test_wake_impossible_in_read(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  /* in_read ahead of in_write: a worker scribble. Waking is harmless; crashing is not. */
  atomic_store(&c->w->in_read.value, 10000);
  atomic_store(&c->w->wake_frames, 100);
  atomic_store(&c->w->sleeping, 1);
  int rc = shm_wake_worker_if_due(c, 5000, capacity(state));
  assert_true(rc == 0 || rc == 1);
}

/* ---- worker side ---------------------------------------------------------- */

static void test_wait_returns_when_input_pending(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->d->in_write.value, 1300);
  int64_t t0 = now_ns();
  /* Already enough input: no sleep at all, even with no timeout. */
  assert_int_equal(shm_wake_wait(c, 1000, 300, -1), 0);
  assert_true(now_ns() - t0 < 1000 * MS);
  assert_int_equal(atomic_load(&c->w->sleeping), 0);
  assert_int_equal(atomic_load(&c->w->wake_frames), 300);
  assert_int_equal(atomic_load(&c->d->wake_seq), 0);

  assert_int_equal(shm_wake_wait(c, 0, 1300, -1), 0);
  assert_int_equal(atomic_load(&c->w->sleeping), 0);
}

static void test_wait_times_out(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->d->in_write.value, 1000);
  int64_t t0 = now_ns();
  assert_int_equal(shm_wake_wait(c, 1000, 1, 20 * MS), -ETIMEDOUT);
  int64_t waited = now_ns() - t0;
  assert_true(waited >= 15 * MS);
  assert_true(waited < 5000 * MS);
  assert_int_equal(atomic_load(&c->w->sleeping), 0);
  assert_int_equal(atomic_load(&c->w->wake_frames), 1);

  /* Pending input below `want` still sleeps. */
  assert_int_equal(shm_wake_wait(c, 900, 101, 1 * MS), -ETIMEDOUT);
  assert_int_equal(shm_wake_wait(c, 0, 0, 0), 0); /* want 0: always ready */
}

struct waker {
  const struct shm_ctl *ctl;
  uint32_t capacity;
  uint64_t in_write;
  int woke;      /* what shm_wake_worker_if_due returned */
  int saw_sleep; /* the worker raised its flag before the deadline */
};

static void *waker_main(void *arg) {
  struct waker *w = arg;
  int64_t deadline = now_ns() + 10000 * MS;
  while (atomic_load(&w->ctl->w->sleeping) == 0) {
    if (now_ns() > deadline)
      return NULL;
    pause_briefly();
  }
  w->saw_sleep = 1;
  /* What the RT thread does: publish the input (seq_cst), then maybe wake. */
  atomic_store_explicit(&w->ctl->d->in_write.value, w->in_write, memory_order_seq_cst);
  w->woke = shm_wake_worker_if_due(w->ctl, w->in_write, w->capacity);
  return NULL;
}

static void test_wait_woken_by_other_thread(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  int woke_by_futex = 0;
  for (int round = 0; round < 20; round++) {
    uint64_t pos = (uint64_t)round * 1000;
    atomic_store(&c->d->in_write.value, pos);
    atomic_store(&c->w->in_read.value, pos);
    uint32_t seq0 = atomic_load(&c->d->wake_seq);

    struct waker w = {.ctl = c, .capacity = capacity(state), .in_write = pos + 600};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waker_main, &w), 0);
    int64_t t0 = now_ns();
    /* A long timeout: only the other thread's input can end this wait in time. */
    int rc = shm_wake_wait(c, pos, 600, 20000 * MS);
    int64_t waited = now_ns() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);

    assert_int_equal(rc, 0);
    assert_true(w.saw_sleep);
    assert_true(waited < 10000 * MS);
    assert_true(atomic_load(&c->d->in_write.value) - pos >= 600);
    assert_int_equal(atomic_load(&c->w->sleeping), 0);
    /*
     * Either the waker cleared the flag and bumped the word once, or the
     * worker saw the input itself after raising the flag and never slept.
     */
    if (w.woke) {
      assert_int_equal(atomic_load(&c->d->wake_seq), seq0 + 1);
      woke_by_futex++;
    } else {
      assert_int_equal(atomic_load(&c->d->wake_seq), seq0);
    }
  }
  assert_true(woke_by_futex > 0);
}

/* ---- futex ---------------------------------------------------------------- */

static void test_futex_wait_word_differs(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->d->wake_seq, 5);
  int64_t t0 = now_ns();
  assert_int_equal(shm_futex_wait(&c->d->wake_seq, 4, -1), 0);
  assert_int_equal(shm_futex_wait(&c->d->wake_seq, 6, 10000 * MS), 0);
  assert_true(now_ns() - t0 < 1000 * MS);
}

static void test_futex_wait_timeout_and_wake(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  atomic_store(&c->d->wake_seq, 5);
  assert_int_equal(shm_futex_wait(&c->d->wake_seq, 5, 2 * MS), -ETIMEDOUT);
  assert_int_equal(shm_futex_wait(&c->d->wake_seq, 5, 0), -ETIMEDOUT);
  /* Nobody waits: a wake is cheap and wakes no one. */
  assert_int_equal(shm_futex_wake(&c->d->wake_seq, 1), 0);
  assert_int_equal(shm_futex_wake(&c->d->wake_seq, 100), 0);
}

/* ---- the clock reference ---------------------------------------------------- */

static void test_clock_publish_and_read(void **state) {
  const struct shm_ctl *c = fresh_control(state);
  struct shm_clock got;
  uint32_t seq = 0;
  memset(&c->d->clock, 0, sizeof(c->d->clock));
  assert_int_equal(shm_clock_read(c->d, &got), -EAGAIN); /* none yet */

  struct shm_clock clk = {.pos = 12800, .ns = 123456789, .period = 128};
  shm_clock_publish(c->d, &seq, &clk);
  assert_int_equal(seq % 2, 0);
  assert_int_equal(atomic_load(&c->d->clock.seq), seq);
  assert_int_equal(shm_clock_read(c->d, &got), 0);
  assert_int_equal(got.pos, 12800);
  assert_int_equal(got.ns, 123456789);
  assert_int_equal(got.period, 128);

  /* A worker scribbling over the sequence cannot confuse the writer. */
  atomic_store(&c->d->clock.seq, 7);
  assert_int_equal(shm_clock_read(c->d, &got), -EAGAIN); /* odd: "being written" */
  clk.pos = 25600;
  shm_clock_publish(c->d, &seq, &clk);
  assert_int_equal(shm_clock_read(c->d, &got), 0);
  assert_int_equal(got.pos, 25600);
  /* The sequence never comes back to 0 ("none") when it wraps. */
  seq = UINT32_MAX - 1;
  shm_clock_publish(c->d, &seq, &clk);
  assert_true(seq != 0 && seq % 2 == 0);
  assert_int_equal(shm_clock_read(c->d, &got), 0);

  /* Nonsense periods are refused. */
  clk.period = 0;
  shm_clock_publish(c->d, &seq, &clk);
  assert_int_equal(shm_clock_read(c->d, &got), -EAGAIN);
  clk.period = RW_MAX_PERIOD + 1;
  shm_clock_publish(c->d, &seq, &clk);
  assert_int_equal(shm_clock_read(c->d, &got), -EAGAIN);
}

static void test_clock_due(void **state) {
  (void)state;
  /* The cycle starting at 1000 published [1000, 1128) at 1 s; 48 kHz: 128 frames = 2.667 ms. */
  struct shm_clock clk = {.pos = 1000, .ns = 1000000000, .period = 128};
  const int64_t per = 128 * INT64_C(1000000000) / 48000;
  assert_int_equal(shm_clock_due_ns(&clk, 48000, 900), 1000000000);  /* before the reference */
  assert_int_equal(shm_clock_due_ns(&clk, 48000, 1128), 1000000000); /* that very cycle */
  assert_int_equal(shm_clock_due_ns(&clk, 48000, 1129), 1000000000 + per);
  assert_int_equal(shm_clock_due_ns(&clk, 48000, 1256), 1000000000 + per);
  assert_int_equal(shm_clock_due_ns(&clk, 48000, 1257),
                   1000000000 + 256 * INT64_C(1000000000) / 48000);
  /* Ten cycles on: exact in frames, not a sum of rounded periods. */
  assert_int_equal(shm_clock_due_ns(&clk, 48000, 1000 + 11 * 128),
                   1000000000 + 10 * 128 * INT64_C(1000000000) / 48000);
  /* Absurd distances are capped at an hour, never wrap. */
  assert_true(shm_clock_due_ns(&clk, 48000, UINT64_MAX) <= 1000000000 + 3600 * INT64_C(1000000000));
  assert_int_equal(shm_clock_due_ns(&clk, 0, 5000), 1000000000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clock_publish_and_read),
      cmocka_unit_test(test_clock_due),
      cmocka_unit_test(test_wake_not_sleeping),
      cmocka_unit_test(test_wake_not_enough_pending),
      cmocka_unit_test(test_wake_seq_wraps),
      cmocka_unit_test(test_wake_frames_clamped),
      cmocka_unit_test(test_wake_impossible_in_read),
      cmocka_unit_test(test_wait_returns_when_input_pending),
      cmocka_unit_test(test_wait_times_out),
      cmocka_unit_test(test_wait_woken_by_other_thread),
      cmocka_unit_test(test_futex_wait_word_differs),
      cmocka_unit_test(test_futex_wait_timeout_and_wake),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
