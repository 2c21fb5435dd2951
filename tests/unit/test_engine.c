/*
 * The engine's two entries: the whole table in one callback (JACK) and one
 * slot per call for backends that run a graph node per slot (PipeWire).
 * A fake audio server (port handles are buffers) and a "worker" played by
 * the test through the segment's positions: every sample the engine plays
 * is checked, and so are the once-per-graph-cycle duties (adopting a new
 * table, statistics) and each slot following the graph clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "plain_io.h"

#define RATE 48000u
#define PERIOD 64u
#define LATENCY 128u

/* A port is its buffer (plain_io). */
struct port {
  float buf[4 * PERIOD];
};

struct rig {
  struct engine engine;
  struct engine_slot *slot[2];
  struct port in[2], out[2];
  int key[2]; /* the addresses are the keys */
};

static struct engine_slot *make_slot(struct rig *r, int i) {
  struct proto_segment_params p = {
      .sample_rate = RATE,
      .n_inputs = 1,
      .n_outputs = 1,
      .latency = LATENCY,
      .max_period = PERIOD,
      .generation = 1,
  };
  struct engine_slot *s;
  char err[256];
  assert_int_equal(engine_slot_create(&p, i ? "b" : "a", &s, err, sizeof(err)), 0);
  s->in_ports[0] = &r->in[i];
  s->out_ports[0] = &r->out[i];
  s->key = &r->key[i];
  /* A worker has attached (the test plays it): silence from here on is an underrun. */
  atomic_store(&s->segment.ctl.w->worker_pid, 4242);
  return s;
}

static void rig_init(struct rig *r) {
  memset(r, 0, sizeof(*r));
  engine_init(&r->engine);
  r->slot[0] = make_slot(r, 0);
  r->slot[1] = make_slot(r, 1);
  assert_int_equal(engine_publish(&r->engine, r->slot, 2), 0);
}

static void rig_destroy(struct rig *r) {
  engine_destroy(&r->engine);
  engine_slot_unref(r->slot[0]);
  engine_slot_unref(r->slot[1]);
}

/*
 * The worker: answers input position p with the input's sample times two at
 * output position p + L, for everything the daemon wrote so far.
 */
static void worker_catch_up(struct engine_slot *s) {
  const struct shm_tl_geom *g = &s->tl.g;
  const struct shm_ctl *ctl = &g->ctl;
  uint64_t in_write = atomic_load(&ctl->d->in_write.value);
  uint64_t in_read = atomic_load(&ctl->w->in_read.value);
  uint32_t mask = g->capacity - 1;
  for (uint64_t p = in_read; p < in_write; p++)
    g->out[(p + LATENCY) & mask] = 2.0f * g->in[p & mask];
  if (in_read == 0) {
    for (uint64_t p = 0; p < LATENCY; p++)
      g->out[p & mask] = 0.0f;
  }
  atomic_store(&ctl->w->out_write.value, in_write + LATENCY);
  atomic_store(&ctl->w->in_read.value, in_write);
}

/* Input sample at timeline position p of slot i: distinct per slot and position. */
static float signal_at(int i, uint64_t p) { return (float)(i + 1) * 0.001f + (float)(p % 97); }

static void feed_inputs(struct rig *r, uint64_t t) {
  for (int i = 0; i < 2; i++)
    for (uint32_t k = 0; k < PERIOD; k++)
      r->in[i].buf[k] = signal_at(i, t + k);
}

/* After one cycle at timeline t, slot i played the worker's answer to t - L (silence before). */
static void check_outputs(struct rig *r, int i, uint64_t t) {
  for (uint32_t k = 0; k < PERIOD; k++) {
    uint64_t p = t + k;
    float want = p < LATENCY ? 0.0f : 2.0f * signal_at(i, p - LATENCY);
    assert_float_equal(r->out[i].buf[k], want, 0.0f);
  }
}

static void test_whole_table(void **state) {
  (void)state;
  struct rig r;
  rig_init(&r);
  uint32_t frame = 1000;
  for (uint64_t t = 0; t < 20 * PERIOD; t += PERIOD, frame += PERIOD) {
    feed_inputs(&r, t);
    engine_process_at(&r.engine, &plain_io, PERIOD, frame);
    if (t >= LATENCY)
      for (int i = 0; i < 2; i++)
        check_outputs(&r, i, t);
    worker_catch_up(r.slot[0]);
    worker_catch_up(r.slot[1]);
  }
  assert_int_equal(atomic_load(&r.engine.stats.cycles), 20);
  /* Every cycle is in the histogram once. */
  uint64_t counted = 0;
  for (uint32_t b = 0; b < ENGINE_CYCLE_BUCKETS; b++)
    counted += atomic_load(&r.engine.stats.cycle_hist[b]);
  assert_int_equal(counted, 20);
  rig_destroy(&r);
}

/*
 * The cycle-time histogram: a time falls in the bucket whose edges hold it,
 * each bucket above the first is at most an eighth of its lower edge wide,
 * and the last one takes everything beyond.
 */
static void test_cycle_buckets(void **state) {
  (void)state;
  assert_int_equal(engine_cycle_bucket(0), 0);
  assert_int_equal(engine_cycle_bucket(1023), 0);
  assert_int_equal(engine_cycle_bucket(1024), 1);
  assert_int_equal(engine_cycle_bucket_floor(1), 1024);
  for (uint32_t b = 1; b + 1 < ENGINE_CYCLE_BUCKETS; b++) {
    uint64_t lo = engine_cycle_bucket_floor(b), hi = engine_cycle_bucket_floor(b + 1);
    assert_true(hi > lo);
    assert_true((hi - lo) * 8 <= lo);
    assert_int_equal(engine_cycle_bucket(lo), b);
    assert_int_equal(engine_cycle_bucket(hi - 1), b);
    assert_int_equal(engine_cycle_bucket(lo + (hi - lo) / 2), b);
  }
  uint64_t last = engine_cycle_bucket_floor(ENGINE_CYCLE_BUCKETS - 1);
  assert_int_equal(engine_cycle_bucket(last), ENGINE_CYCLE_BUCKETS - 1);
  assert_int_equal(engine_cycle_bucket(UINT64_MAX), ENGINE_CYCLE_BUCKETS - 1);
}

/*
 * One call per slot, both in the same graph cycle: the same audio as the
 * whole-table entry, and the cycle counted once.
 */
static void test_per_slot(void **state) {
  (void)state;
  struct rig r;
  uint32_t hint[2] = {0, 0};
  rig_init(&r);
  uint32_t frame = 5000;
  for (uint64_t t = 0; t < 20 * PERIOD; t += PERIOD, frame += PERIOD) {
    feed_inputs(&r, t);
    /* The second slot's node runs first: order within a cycle is the server's. */
    engine_process_slot(&r.engine, &r.key[1], &hint[1], &plain_io, PERIOD, frame);
    engine_process_slot(&r.engine, &r.key[0], &hint[0], &plain_io, PERIOD, frame);
    if (t >= LATENCY)
      for (int i = 0; i < 2; i++)
        check_outputs(&r, i, t);
    worker_catch_up(r.slot[0]);
    worker_catch_up(r.slot[1]);
  }
  /* A cycle's statistics are complete when the next one begins: 19 so far. */
  assert_int_equal(atomic_load(&r.engine.stats.cycles), 19);
  assert_int_equal(hint[0], 0);
  assert_int_equal(hint[1], 1);
  assert_int_equal(atomic_load(&r.slot[0]->counters.cycles), 20);
  assert_int_equal(atomic_load(&r.slot[1]->counters.cycles), 20);
  rig_destroy(&r);
}

/* Frames the graph ran without us advance each slot's timeline, counted once per graph cycle. */
static void test_per_slot_gap(void **state) {
  (void)state;
  struct rig r;
  uint32_t hint[2] = {0, 0};
  rig_init(&r);
  uint32_t frame = 0;
  for (int c = 0; c < 4; c++, frame += PERIOD) {
    engine_process_slot(&r.engine, &r.key[0], &hint[0], &plain_io, PERIOD, frame);
    engine_process_slot(&r.engine, &r.key[1], &hint[1], &plain_io, PERIOD, frame);
  }
  uint64_t before = r.slot[0]->tl.pos;
  frame += 3 * PERIOD; /* three cycles skipped */
  engine_process_slot(&r.engine, &r.key[0], &hint[0], &plain_io, PERIOD, frame);
  engine_process_slot(&r.engine, &r.key[1], &hint[1], &plain_io, PERIOD, frame);
  assert_int_equal(r.slot[0]->tl.pos, before + 4 * PERIOD);
  assert_int_equal(r.slot[1]->tl.pos, before + 4 * PERIOD);
  assert_int_equal(atomic_load(&r.engine.stats.skipped_frames), 3 * PERIOD);
  rig_destroy(&r);
}

/*
 * A node woken late: slot 0 misses cycle 10 (its wake-up merged with the
 * next one) and runs once in cycle 11; in cycle 13 it runs late, reading
 * cycle 14's clock, and then again in cycle 14. Slot 1 runs every cycle.
 * Slot 0 skips what it missed and plays as a gap what it had played, so its
 * output is aligned again once the disturbed input has passed through; slot
 * 1 is never touched.
 */
static void test_per_slot_late_node(void **state) {
  (void)state;
  struct rig r;
  uint32_t hint[2] = {0, 0};
  const uint32_t base = 7000;
  float tail = 0.0f;
  rig_init(&r);
  for (uint32_t k = 0; k < 24; k++) {
    uint64_t t = (uint64_t)k * PERIOD;
    feed_inputs(&r, t);
    engine_process_slot(&r.engine, &r.key[1], &hint[1], &plain_io, PERIOD, base + (uint32_t)t);
    if (k != 10) {
      uint32_t frame = base + (uint32_t)t + (k == 13 ? PERIOD : 0);
      engine_process_slot(&r.engine, &r.key[0], &hint[0], &plain_io, PERIOD, frame);
    }
    if (t >= LATENCY)
      check_outputs(&r, 1, t);
    /*
     * Exact until the miss and right after it (cycle 11 plays input of cycle 9),
     * then again once the missed and disturbed input (cycles 10, 13, 14) has
     * passed L.
     */
    if ((k >= LATENCY / PERIOD && k != 10 && k <= 11) || k >= 15 + LATENCY / PERIOD)
      check_outputs(&r, 0, t);
    /* Cycle 14 was played in cycle 13: a gap, the last sample fading out. */
    if (k == 13)
      tail = r.out[0].buf[PERIOD - 1];
    if (k == 14)
      for (uint32_t i = 0; i < PERIOD; i++) {
        float fade = i < RW_FADE_FRAMES ? 1.0f - (float)(i + 1) / RW_FADE_FRAMES : 0.0f;
        assert_float_equal(r.out[0].buf[i], tail * fade, 1e-4f);
      }
    worker_catch_up(r.slot[0]);
    worker_catch_up(r.slot[1]);
  }
  /*
   * Out of step: the miss (cycle 11), the late run and its repeat (both in
   * cycle 14's clock): two xruns, once per graph cycle, and no underrun.
   */
  assert_int_equal(atomic_load(&r.slot[0]->counters.underrun_frames), 0);
  assert_int_equal(atomic_load(&r.slot[1]->counters.underrun_frames), 0);
  assert_int_equal(atomic_load(&r.engine.stats.xruns), 2);
  assert_int_equal(atomic_load(&r.engine.stats.skipped_frames), 2 * PERIOD);
  assert_int_equal(r.slot[0]->tl.pos, 24 * PERIOD);
  assert_int_equal(r.slot[1]->tl.pos, 24 * PERIOD);
  rig_destroy(&r);
}

/* A key the table does not hold (a node whose slot is gone) plays nothing and touches nothing. */
static void test_per_slot_unknown_key(void **state) {
  (void)state;
  struct rig r;
  int stranger;
  uint32_t hint = 7;
  rig_init(&r);
  engine_process_slot(&r.engine, &stranger, &hint, &plain_io, PERIOD, 0);
  assert_int_equal(hint, 7);
  assert_int_equal(atomic_load(&r.slot[0]->counters.cycles), 0);
  assert_int_equal(atomic_load(&r.slot[1]->counters.cycles), 0);
  /* A new table reaches the nodes at the next graph cycle. */
  struct engine_slot *only = r.slot[1];
  assert_int_equal(engine_publish(&r.engine, &only, 1), 0);
  uint32_t h1 = 0;
  engine_process_slot(&r.engine, &r.key[1], &h1, &plain_io, PERIOD, PERIOD);
  assert_int_equal(h1, 0);
  assert_int_equal(atomic_load(&r.slot[1]->counters.cycles), 1);
  engine_reclaim(&r.engine);
  rig_destroy(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_table),        cmocka_unit_test(test_cycle_buckets),
      cmocka_unit_test(test_per_slot),           cmocka_unit_test(test_per_slot_gap),
      cmocka_unit_test(test_per_slot_late_node), cmocka_unit_test(test_per_slot_unknown_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
