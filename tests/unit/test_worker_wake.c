/*
 * librunway-worker: how a worker sleeps (its own timer on the daemon's clock
 * reference, the daemon's wake as the fallback) and the binary interface an
 * FFI sees (the layout table and the accessors). The daemon role is played
 * by this test, as in test_worker_sdk.c; the worker waits in a thread of its
 * own when a test is about waiting. Every wait for a condition has a
 * deadline; timing assertions only ever bound from below (the worker slept
 * until its timer) or leave seconds of room.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <runway/worker.h>

#include "segment.h"
#include "timeline.h"
#include "wake.h"
#include "worker_rig.h"

#define RATE 48000u
#define PERIOD 64u
#define LAT 256u
#define MS 1000000LL

static void create(struct daemon_role *d) {
  struct proto_segment_params params = {
      .sample_rate = RATE, .n_inputs = 1, .n_outputs = 1, .latency = LAT, .max_period = PERIOD};
  daemon_role_create(d, &params);
}

/* One daemon cycle: input [t, t + PERIOD) published, output [t, t + PERIOD) played. */
static void write_input(struct daemon_role *d) {
  float buf[PERIOD] = {0};
  const float *src[1] = {buf};
  float *dst[1] = {buf};
  assert_true(shm_tl_daemon_write_input(&d->tl, src, PERIOD) >= 0);
  assert_true(shm_tl_daemon_read_output(&d->tl, dst, PERIOD) >= 0);
}

static void publish(struct daemon_role *d, uint32_t *seq, uint64_t pos, int64_t ns) {
  struct shm_clock clk = {.pos = pos, .ns = (uint64_t)ns, .period = PERIOD};
  shm_clock_publish(d->seg.ctl.d, seq, &clk);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * MS};
  nanosleep(&ts, NULL);
}

struct waiter {
  rw_worker *w;
  int rc;
  uint64_t position;
  int64_t returned_ns;
};

static void *wait_block(void *arg) {
  struct waiter *x = arg;
  rw_block b;
  x->rc = rw_worker_next(x->w, &b, 5000);
  x->returned_ns = now_ns();
  if (x->rc == 1) {
    x->position = b.position;
    rw_worker_done(x->w, &b);
  }
  return NULL;
}

/* Waits until the worker sleeps with `want` published as its wake_frames. */
static void wait_sleeping_for(struct daemon_role *d, uint32_t want) {
  const struct rw_worker_control *ctl = d->seg.ctl.w;
  int64_t deadline = now_ns() + 5000 * MS;
  while (atomic_load(&ctl->sleeping) == 0 || atomic_load(&ctl->wake_frames) != want) {
    if (now_ns() > deadline)
      fail_msg("the worker never slept with wake_frames %u (sleeping %u, wake_frames %u)", want,
               atomic_load(&ctl->sleeping), atomic_load(&ctl->wake_frames));
    sleep_ms(1);
  }
}

/* Handles the first cycle at once, so the worker is caught up at PERIOD. */
static rw_worker *open_caught_up(struct daemon_role *d, uint32_t *seq, int64_t ref_ns) {
  rw_worker *w = daemon_role_open_worker(d, NULL, "wake");
  write_input(d);
  publish(d, seq, 0, ref_ns);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.frames, PERIOD);
  rw_worker_done(w, &b);
  assert_int_equal(rw_worker_get_info(w)->wake_frames, PERIOD); /* the default: one period */
  assert_int_equal(rw_worker_get_info(w)->period, PERIOD);
  return w;
}

/*
 * With a clock reference the worker sleeps on its own timer until just after
 * the cycle that brings its input, and asks the daemon for a wake only a
 * period later: input arriving without a wake is picked up by the timer,
 * and not before it. One try; returns 0 when this thread was kept from
 * writing the input before the timer went off (a loaded machine), so the
 * caller tries again.
 */
static int timer_attempt(void) {
  struct daemon_role d;
  uint32_t seq = 0;
  create(&d);
  /* The reference says the next cycle comes in 40 ms (within one 50 ms sleep slice). */
  int64_t next_cycle = now_ns() + 40 * MS;
  rw_worker *w = open_caught_up(&d, &seq, next_cycle - (int64_t)PERIOD * 1000000000 / RATE);

  struct waiter x = {.w = w};
  pthread_t th;
  pthread_create(&th, NULL, wait_block, &x);
  wait_sleeping_for(&d, 2 * PERIOD);
  write_input(&d); /* no wake: the daemon would not, with one period pending */
  assert_int_equal(shm_wake_worker_if_due(&d.seg.ctl, 2 * PERIOD, d.seg.layout.capacity), 0);
  int in_time = now_ns() < next_cycle;
  pthread_join(th, NULL);

  assert_int_equal(x.rc, 1);
  assert_int_equal(x.position, PERIOD);
  if (in_time) {
    assert_true(x.returned_ns >= next_cycle);
    assert_true(x.returned_ns < next_cycle + 2000 * MS);
    assert_int_equal(rw_worker_stat(w, RW_STAT_TIMER_WAKES), 1);
    assert_int_equal(rw_worker_stat(w, RW_STAT_EARLY_WAKES), 0);
    assert_int_equal(rw_worker_stat(w, RW_STAT_SLEEPS), 1);
  }
  rw_worker_close(w);
  daemon_destroy(&d);
  return in_time;
}

static void test_timer_wakes_the_worker(void **state) {
  (void)state;
  int attempts = 0;
  while (!timer_attempt())
    assert_true(++attempts < 5);
}

/*
 * A timer that goes off before the cycle came (the daemon is late) is early:
 * the worker looks again twice, a slack apart, then asks to be woken the
 * moment its input arrives, and the daemon's wake brings it back.
 */
static void test_early_timer_falls_back_to_the_daemon(void **state) {
  (void)state;
  struct daemon_role d;
  uint32_t seq = 0;
  create(&d);
  int64_t next_cycle = now_ns() + 20 * MS;
  rw_worker *w = open_caught_up(&d, &seq, next_cycle - (int64_t)PERIOD * 1000000000 / RATE);

  struct waiter x = {.w = w};
  pthread_t th;
  pthread_create(&th, NULL, wait_block, &x);
  /* The cycle does not come; after its timer the worker waits for exactly one period. */
  wait_sleeping_for(&d, PERIOD);
  assert_true(now_ns() >= next_cycle);
  write_input(&d);
  assert_int_equal(shm_wake_worker_if_due(&d.seg.ctl, 2 * PERIOD, d.seg.layout.capacity), 1);
  pthread_join(th, NULL);

  assert_int_equal(x.rc, 1);
  assert_int_equal(x.position, PERIOD);
  /* Looked again twice before asking the daemon. */
  assert_int_equal(rw_worker_stat(w, RW_STAT_EARLY_WAKES), 3);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* No reference yet, or one from a graph that stopped long ago: the daemon's wake it is. */
static void test_without_a_fresh_clock_the_daemon_wakes(void **state) {
  (void)state;
  for (int stale = 0; stale < 2; stale++) {
    struct daemon_role d;
    uint32_t seq = 0;
    create(&d);
    rw_worker *w = daemon_role_open_worker(&d, NULL, "wake");
    if (stale)
      publish(&d, &seq, 0, now_ns() - 10000 * MS);
    struct waiter x = {.w = w};
    pthread_t th;
    pthread_create(&th, NULL, wait_block, &x);
    wait_sleeping_for(&d, PERIOD);
    write_input(&d);
    assert_int_equal(shm_wake_worker_if_due(&d.seg.ctl, PERIOD, d.seg.layout.capacity), 1);
    pthread_join(th, NULL);
    assert_int_equal(x.rc, 1);
    assert_int_equal(x.position, 0);
    assert_int_equal(rw_worker_stat(w, RW_STAT_TIMER_WAKES), 0);
    rw_worker_close(w);
    daemon_destroy(&d);
  }
}

/* ---- the binary interface -------------------------------------------------------- */

static void test_layout_table_matches_the_header(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int64_t want;
  } cases[] = {
      {"rw_event", sizeof(rw_event)},
      {"rw_event.u.param.value", offsetof(rw_event, u.param.value)},
      {"rw_event.u.midi.data", offsetof(rw_event, u.midi.data)},
      {"rw_param_info", sizeof(rw_param_info)},
      {"rw_param_info.def", offsetof(rw_param_info, def)},
      {"rw_param_info.unit", offsetof(rw_param_info, unit)},
      {"rw_block", 80},
      {"rw_block.position", 48},
      {"rw_block.skipped", 72},
      {"rw_worker_info", sizeof(rw_worker_info)},
      {"rw_worker_info.wake_frames", offsetof(rw_worker_info, wake_frames)},
      {"rw_worker_stats", 64},
      {"rw_worker_options", 56},
      {"rw_worker_options.plugin", 48},
      {"rw_state_handlers.user", 16},
      {"rw_plugin", 88},
      {"rw_plugin.load_state", 80},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (rw_worker_abi_offset(cases[i].name) != cases[i].want)
      fail_msg("%s: the library says %lld, the header %lld", cases[i].name,
               (long long)rw_worker_abi_offset(cases[i].name), (long long)cases[i].want);
  assert_int_equal(rw_worker_abi_offset("rw_block.nope"), -1);
  assert_int_equal(rw_worker_abi_offset("rw_block.frames.x"), -1);
  assert_int_equal(rw_worker_abi_offset(""), -1);
  assert_int_equal(rw_worker_abi_offset(NULL), -1);
}

static void test_accessors(void **state) {
  (void)state;
  float in0[4] = {1, 2, 3, 4}, out0[4], out1[4];
  const float *ins[] = {in0};
  float *outs[] = {out0, out1};
  rw_event evs[2] = {{.offset = 1, .kind = RW_EV_PARAM},
                     {.offset = 2, .kind = RW_EV_MIDI, .size = 3}};
  evs[0].u.param.id = 7;
  evs[0].u.param.value = -0.5f;
  evs[1].u.midi.data[0] = 0x90;
  evs[1].u.midi.data[1] = 60;
  rw_block b = {.frames = 4,
                .n_inputs = 1,
                .n_outputs = 2,
                .inputs = ins,
                .outputs = outs,
                .events = evs,
                .n_events = 2};

  assert_ptr_equal(rw_block_input(&b, 0), in0);
  assert_null(rw_block_input(&b, 1));
  assert_ptr_equal(rw_block_output(&b, 1), out1);
  assert_null(rw_block_output(&b, 2));
  assert_ptr_equal(rw_block_event(&b, 1), &evs[1]);
  assert_null(rw_block_event(&b, 2));
  assert_null(rw_block_input(NULL, 0));

  assert_int_equal(rw_event_param_id(&evs[0]), 7);
  assert_true(rw_event_param_value(&evs[0]) == -0.5f);
  assert_null(rw_event_midi_data(&evs[0]));
  assert_int_equal(rw_event_midi_data(&evs[1])[0], 0x90);
  assert_int_equal(rw_event_midi_data(&evs[1])[1], 60);
  assert_int_equal(rw_event_param_id(&evs[1]), 0);
  assert_true(isnan(rw_event_param_value(&evs[1])));
  assert_true(isnan(rw_event_param_value(NULL)));
}

static void test_stat_accessor(void **state) {
  (void)state;
  struct daemon_role d;
  create(&d);
  rw_worker *w = daemon_role_open_worker(&d, NULL, "wake");
  write_input(&d);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  rw_worker_done(w, &b);
  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  assert_int_equal(rw_worker_stat(w, RW_STAT_BLOCKS), st.blocks);
  assert_int_equal(rw_worker_stat(w, RW_STAT_FRAMES), PERIOD);
  assert_int_equal(rw_worker_stat(w, RW_STAT_DISCONTINUITIES), st.discontinuities);
  assert_int_equal(rw_worker_stat(w, RW_STAT_COUNT), UINT64_MAX);
  assert_int_equal(rw_worker_stat(w, -1), UINT64_MAX);
  assert_int_equal(rw_worker_stat(NULL, RW_STAT_BLOCKS), UINT64_MAX);
  rw_worker_close(w);
  daemon_destroy(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timer_wakes_the_worker),
      cmocka_unit_test(test_early_timer_falls_back_to_the_daemon),
      cmocka_unit_test(test_without_a_fresh_clock_the_daemon_wakes),
      cmocka_unit_test(test_layout_table_matches_the_header),
      cmocka_unit_test(test_accessors),
      cmocka_unit_test(test_stat_accessor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
