/*
 * shm/timeline: the timing model of DESIGN.md on a real segment, with the
 * daemon end and the worker end driven from one thread. The worker is an
 * identity plugin, so "output at p is the worker's answer to input p - L" is
 * checked sample by sample.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"
#include "timeline.h"

#define MAXCH 4
#define POISON_VALUE (-12345.0f)

struct rig {
  struct shm_segment seg;
  struct shm_ctl ctl;
  struct shm_tl_daemon d;
  struct shm_tl_worker w;
  uint32_t lat, period, cap, n_in, n_out;
  float *src[MAXCH], *dst[MAXCH];  /* one period */
  float *win[MAXCH], *wout[MAXCH]; /* one ring */
};

/* Exactly representable, never 0, different per channel and position. */
static float sig(uint64_t p, uint32_t ch) {
  return (float)(1 + (p % 4000000) + (uint64_t)ch * 4000000);
}

static void rig_open(struct rig *r, uint32_t n_in, uint32_t n_out, uint32_t lat, uint32_t period) {
  char err[256] = "";
  struct proto_segment_params p = {.sample_rate = 48000,
                                   .n_inputs = n_in,
                                   .n_outputs = n_out,
                                   .latency = lat,
                                   .max_period = period,
                                   .generation = 1};
  memset(r, 0, sizeof(*r));
  int rc = shm_segment_create(&p, "timeline", &r->seg, err, sizeof(err));
  if (rc != 0)
    fail_msg("shm_segment_create: %s", err);
  r->ctl = r->seg.ctl;
  r->lat = lat;
  r->period = period;
  r->cap = r->seg.layout.capacity;
  r->n_in = n_in;
  r->n_out = n_out;
  for (int c = 0; c < MAXCH; c++) {
    r->src[c] = calloc(period, sizeof(float));
    r->dst[c] = calloc(period, sizeof(float));
    r->win[c] = calloc(r->cap, sizeof(float));
    r->wout[c] = calloc(r->cap, sizeof(float));
    assert_true(r->src[c] && r->dst[c] && r->win[c] && r->wout[c]);
  }
  shm_tl_daemon_init(&r->d, &r->seg);
  assert_int_equal(shm_tl_worker_init(&r->w, &r->seg), 0);
  assert_int_equal(r->w.pos, 0);
}

static void rig_close(struct rig *r) {
  for (int c = 0; c < MAXCH; c++) {
    free(r->src[c]);
    free(r->dst[c]);
    free(r->win[c]);
    free(r->wout[c]);
  }
  shm_segment_release(&r->seg);
}

static uint64_t load(_Atomic uint64_t *p) { return atomic_load(p); }

/* Daemon step 1: the test signal at [t, t+n). */
static int64_t daemon_write(struct rig *r, uint32_t n) {
  for (uint32_t c = 0; c < r->n_in; c++)
    for (uint32_t i = 0; i < n; i++)
      r->src[c][i] = sig(r->d.pos + i, c);
  int64_t rc = shm_tl_daemon_write_input(&r->d, (const float *const *)r->src, n);
  assert_int_equal(load(&r->ctl.d->in_write.value), r->d.pos + n);
  return rc;
}

/* Daemon steps 3 and 4: output [t, t+n) into r->dst. */
static int daemon_read(struct rig *r, uint32_t n) {
  uint64_t t = r->d.pos;
  for (uint32_t c = 0; c < r->n_out; c++)
    for (uint32_t i = 0; i < n; i++)
      r->dst[c][i] = POISON_VALUE;
  int rc = shm_tl_daemon_read_output(&r->d, r->dst, n);
  assert_int_equal(r->d.pos, t + n);
  assert_int_equal(load(&r->ctl.d->out_read.value), t + n);
  return rc;
}

/* What an identity worker's output channel c is: its input channel c mod n_in. */
static float expected_out(const struct rig *r, uint64_t p, uint32_t c) {
  if (r->n_in == 0)
    return 0.0f;
  return sig(p - r->lat, c % r->n_in);
}

/*
 * Checks r->dst for output [t, t+n): silence below silent_end (the initial
 * [0, L), or a skip's gap), the identity of input p - L from there on.
 */
static void check_aligned(const struct rig *r, uint64_t t, uint32_t n, uint64_t silent_from,
                          uint64_t silent_end) {
  for (uint32_t c = 0; c < r->n_out; c++) {
    for (uint32_t i = 0; i < n; i++) {
      uint64_t p = t + i;
      float want = p >= silent_from && p < silent_end ? 0.0f : expected_out(r, p, c);
      if (memcmp(&r->dst[c][i], &want, sizeof(float)) != 0)
        fail_msg("L %u period %u: output %" PRIu64 " channel %u is %g, expected %g", r->lat,
                 r->period, p, c, (double)r->dst[c][i], (double)want);
    }
  }
}

static void check_silent(const struct rig *r, uint32_t n) {
  for (uint32_t c = 0; c < r->n_out; c++)
    for (uint32_t i = 0; i < n; i++)
      if (memcmp(&r->dst[c][i], &(float){0.0f}, sizeof(float)) != 0)
        fail_msg("output %" PRIu64 " channel %u is %g, expected silence", r->d.pos - n + i, c,
                 (double)r->dst[c][i]);
}

/* One chunk of an identity worker. Returns frames processed (0: nothing pending). */
static int worker_chunk(struct rig *r, uint32_t max_frames, struct shm_tl_chunk *out_chunk) {
  struct shm_tl_chunk ch;
  int n = shm_tl_worker_plan(&r->w, max_frames, &ch);
  assert_true(n >= 0);
  if (out_chunk != NULL)
    *out_chunk = ch;
  if (n == 0)
    return 0;
  assert_int_equal(shm_tl_worker_read_input(&r->w, &ch, r->win), 0);
  for (uint32_t c = 0; c < r->n_out; c++) {
    if (r->n_in > 0)
      memcpy(r->wout[c], r->win[c % r->n_in], ch.frames * sizeof(float));
    else
      memset(r->wout[c], 0, ch.frames * sizeof(float));
  }
  shm_tl_worker_write_output(&r->w, &ch, (const float *const *)r->wout);
  shm_tl_worker_commit(&r->w, &ch);
  assert_int_equal(load(&r->ctl.w->out_write.value), ch.pos + ch.frames + r->lat);
  assert_int_equal(load(&r->ctl.w->in_read.value), ch.pos + ch.frames);
  return n;
}

/* Drains all pending input in chunks; returns the frames skipped on the way. */
static uint64_t worker_drain(struct rig *r, uint32_t chunk) {
  uint64_t skipped = 0;
  struct shm_tl_chunk ch;
  while (worker_chunk(r, chunk, &ch) > 0)
    skipped += ch.skipped;
  skipped += ch.skipped;
  return skipped;
}

static void poison_output_ring(struct rig *r) {
  for (uint32_t c = 0; c < r->n_out; c++)
    for (uint32_t i = 0; i < r->cap; i++)
      r->seg.audio_out[(size_t)c * r->seg.layout.channel_stride + i] = POISON_VALUE;
}

/* ---- alignment ------------------------------------------------------------ */

enum worker_phase {
  WORKER_BEFORE_READ, /* between the daemon's write and read: the tightest schedule */
  WORKER_AFTER_READ,  /* after the cycle */
  WORKER_EVERY_K,     /* every k cycles, as late as L allows */
};

struct align_case {
  uint32_t lat, period;
  const uint32_t *cycles; /* cycle sizes, repeated; NULL: always period */
  uint32_t n_cycles;
  uint32_t chunk;
  enum worker_phase phase;
  uint32_t n_in, n_out;
};

static void run_alignment(const struct align_case *a) {
  struct rig r;
  rig_open(&r, a->n_in, a->n_out, a->lat, a->period);
  uint64_t total = 30 * (uint64_t)r.cap; /* wrap the rings many times */
  uint32_t k = 0;
  uint64_t since_worker = 0;
  uint32_t max_cycle = a->period;
  if (a->phase == WORKER_EVERY_K)
    k = a->lat / max_cycle;

  for (uint32_t cyc = 0; r.d.pos < total; cyc++) {
    uint32_t n = a->cycles ? a->cycles[cyc % a->n_cycles] : a->period;
    uint64_t t = r.d.pos;
    int64_t backlog = daemon_write(&r, n);
    assert_true(backlog >= n);
    /* Never more than the worker could have left behind plus this cycle. */
    assert_true(backlog <= (int64_t)a->lat + n);

    if (a->phase == WORKER_BEFORE_READ)
      assert_int_equal(worker_drain(&r, a->chunk), 0);

    int valid = daemon_read(&r, n);
    if (valid != (int)n)
      fail_msg("L %u period %u chunk %u: underrun at %" PRIu64 " (%d of %u)", a->lat, a->period,
               a->chunk, t, valid, n);
    check_aligned(&r, t, n, 0, a->lat);

    since_worker++;
    if (a->phase == WORKER_AFTER_READ || (a->phase == WORKER_EVERY_K && since_worker >= k)) {
      assert_int_equal(worker_drain(&r, a->chunk), 0);
      since_worker = 0;
    }
    /* The published pair always satisfies out_write = in_read + L. */
    assert_int_equal(load(&r.ctl.w->out_write.value), load(&r.ctl.w->in_read.value) + a->lat);
  }
  assert_int_equal(atomic_load(&r.ctl.w->counters.skipped_frames), 0);
  assert_int_equal(atomic_load(&r.ctl.w->counters.discontinuities), 0);
  assert_int_equal(atomic_load(&r.ctl.w->counters.overwritten), 0);
  assert_true(atomic_load(&r.ctl.w->counters.chunks) > 0);
  rig_close(&r);
}

static void test_alignment(void **state) {
  (void)state;
  static const uint32_t odd[] = {64, 1, 63, 17, 64, 40};
  static const uint32_t mixed[] = {128, 100, 1, 77, 128, 128, 3};
  static const uint32_t small[] = {5, 7, 11, 13};
  const struct align_case cases[] = {
      {64, 64, NULL, 0, 64, WORKER_BEFORE_READ, 2, 2},
      {64, 64, NULL, 0, 64, WORKER_AFTER_READ, 2, 2},
      {100, 64, odd, 6, 37, WORKER_BEFORE_READ, 2, 2},
      {100, 64, odd, 6, 37, WORKER_AFTER_READ, 2, 2},
      {1000, 128, mixed, 7, 129, WORKER_AFTER_READ, 2, 2},
      {1000, 128, NULL, 0, 1000, WORKER_EVERY_K, 2, 2},
      {1000, 128, NULL, 0, 333, WORKER_EVERY_K, 1, 3},
      {4800, 256, NULL, 0, 1000, WORKER_EVERY_K, 2, 2},
      {4800, 256, NULL, 0, 4096, WORKER_BEFORE_READ, 2, 1},
      {300, 256, NULL, 0, 50, WORKER_AFTER_READ, 3, 2},
      {1, 1, NULL, 0, 1, WORKER_AFTER_READ, 1, 1},
      {37, 16, small, 4, 9, WORKER_EVERY_K, 2, 2},
      {200, 128, NULL, 0, 1, WORKER_AFTER_READ, 2, 2},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    run_alignment(&cases[i]);
}

/* Positions beyond 32 bits: a slot that has run for a day at 48 kHz. */
static void test_alignment_past_2_32(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 2, 2, 500, 128);
  uint64_t s = UINT32_MAX - 3000;
  const struct shm_ctl *c = &r.ctl;
  atomic_store(&c->d->in_write.value, s);
  atomic_store(&c->w->in_read.value, s);
  atomic_store(&c->d->out_read.value, s);
  atomic_store(&c->w->out_write.value, s + r.lat);
  r.d.pos = s;
  assert_int_equal(shm_tl_worker_init(&r.w, &r.seg), 0);
  assert_int_equal(r.w.pos, s);

  while (r.d.pos < s + 20 * (uint64_t)r.cap) {
    uint64_t t = r.d.pos;
    uint32_t n = 1 + (uint32_t)(t % 128);
    daemon_write(&r, n);
    assert_int_equal(daemon_read(&r, n), n);
    /* [s, s+L) is the fresh ring: silence. */
    check_aligned(&r, t, n, s, s + r.lat);
    assert_int_equal(worker_drain(&r, 97), 0);
  }
  assert_true(r.d.pos > (UINT64_C(1) << 32));
  rig_close(&r);
}

/* ---- underrun and faults -------------------------------------------------- */

static void test_underrun(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 2, 2, 100, 64);

  /* [0, L) is the worker's initial silence: it counts as delivered. */
  daemon_write(&r, 64);
  assert_int_equal(daemon_read(&r, 64), 64);
  check_silent(&r, 64);
  /* Straddling L: a prefix of 36 frames, the rest an underrun. */
  daemon_write(&r, 64);
  assert_int_equal(daemon_read(&r, 64), 36);
  check_silent(&r, 64);
  /* Then nothing, and time keeps going. */
  for (int i = 0; i < 100; i++) {
    daemon_write(&r, 64);
    assert_int_equal(daemon_read(&r, 64), 0);
    check_silent(&r, 64);
  }
  assert_int_equal(load(&r.ctl.d->out_read.value), 102 * 64);
  rig_close(&r);
}

static void test_partial_underrun_prefix(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 2, 2, 100, 64);
  /* Steady state: the worker keeps up after every read. */
  for (int i = 0; i < 10; i++) {
    daemon_write(&r, 64);
    assert_int_equal(daemon_read(&r, 64), 64);
    worker_drain(&r, 64);
  }
  /* Next cycle: the worker only managed 20 of the 64 frames it owed. */
  uint64_t t = r.d.pos;
  assert_int_equal(load(&r.ctl.w->out_write.value), t + r.lat);
  daemon_write(&r, 64);
  assert_int_equal(daemon_read(&r, 64), 64); /* [t, t+64) was computed last cycle */
  check_aligned(&r, t, 64, 0, r.lat);
  assert_int_equal(worker_chunk(&r, 20, &ch), 20);
  t = r.d.pos;
  daemon_write(&r, 64);
  /* out_write = t + L - 44: valid prefix of L - 44 = 56 frames. */
  assert_int_equal(daemon_read(&r, 64), 56);
  for (uint32_t c = 0; c < 2; c++) {
    for (uint32_t i = 0; i < 64; i++) {
      float want = i < 56 ? expected_out(&r, t + i, c) : 0.0f;
      assert_memory_equal(&r.dst[c][i], &want, sizeof(float));
    }
  }
  rig_close(&r);
}

static void test_fault_out_write_beyond(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 2, 2, 100, 64);
  for (int i = 0; i < 5; i++) {
    daemon_write(&r, 64);
    daemon_read(&r, 64);
    worker_drain(&r, 64);
  }
  const struct shm_ctl *c = &r.ctl;
  static const uint64_t beyond[] = {1, 2, 64, 1000, UINT64_C(1) << 40};
  for (size_t k = 0; k < sizeof(beyond) / sizeof(beyond[0]); k++) {
    uint64_t t = r.d.pos;
    daemon_write(&r, 64);
    /* The worker claims output for input that does not exist yet. */
    atomic_store(&c->w->out_write.value, t + 64 + r.lat + beyond[k]);
    assert_int_equal(daemon_read(&r, 64), -EPROTO);
    check_silent(&r, 64);
    assert_int_equal(r.d.pos, t + 64); /* time still advanced */
    assert_int_equal(load(&c->d->out_read.value), t + 64);
  }
  /* Exactly in_write + L is the most an honest worker can have published. */
  uint64_t t = r.d.pos;
  daemon_write(&r, 64);
  atomic_store(&c->w->out_write.value, t + 64 + r.lat);
  assert_int_equal(daemon_read(&r, 64), 64);
  rig_close(&r);
}

static void test_write_input_backlog_and_errors(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 2, 2, 200, 64);
  const struct shm_ctl *c = &r.ctl;

  assert_int_equal(daemon_write(&r, 64), 64);
  daemon_read(&r, 64);
  assert_int_equal(daemon_write(&r, 50), 114);
  daemon_read(&r, 50);
  assert_int_equal(worker_chunk(&r, 30, &ch), 30);
  assert_int_equal(daemon_write(&r, 10), 94);
  daemon_read(&r, 10);
  worker_drain(&r, 64);
  assert_int_equal(daemon_write(&r, 7), 7);
  daemon_read(&r, 7);

  /* The worker claims input that was never written. */
  uint64_t t = r.d.pos;
  atomic_store(&c->w->in_read.value, t + 64 + 1);
  assert_int_equal(daemon_write(&r, 64), -EPROTO);
  daemon_read(&r, 64);
  atomic_store(&c->w->in_read.value, r.d.pos + 64);
  assert_int_equal(daemon_write(&r, 64), 0); /* consumed exactly everything: fine */
  daemon_read(&r, 64);
  rig_close(&r);
}

static void test_bad_cycle_size(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 2, 2, 200, 64);
  const struct shm_ctl *c = &r.ctl;
  daemon_write(&r, 64);
  daemon_read(&r, 64);

  /* Sentinels in the input ring show that a refused write writes nothing. */
  for (uint32_t i = 0; i < 2 * r.cap; i++)
    r.seg.audio_in[i] = POISON_VALUE;
  static const uint32_t bad[] = {0, 65, 1000};
  for (size_t k = 0; k < 3; k++) {
    uint32_t n = bad[k];
    float *big[2];
    for (int ch = 0; ch < 2; ch++) {
      big[ch] = malloc((n ? n : 1) * sizeof(float));
      for (uint32_t i = 0; i < n; i++)
        big[ch][i] = 1.0f;
    }
    assert_int_equal(shm_tl_daemon_write_input(&r.d, (const float *const *)big, n), -EINVAL);
    assert_int_equal(load(&c->d->in_write.value), 64);
    for (uint32_t i = 0; i < 2 * r.cap; i++)
      assert_true(r.seg.audio_in[i] == POISON_VALUE);

    /* read_output still fills dst, with silence, and does not move time. */
    assert_int_equal(shm_tl_daemon_read_output(&r.d, big, n), -EINVAL);
    for (int ch = 0; ch < 2; ch++) {
      for (uint32_t i = 0; i < n; i++)
        assert_true(big[ch][i] == 0.0f);
      free(big[ch]);
    }
    assert_int_equal(r.d.pos, 64);
    assert_int_equal(load(&c->d->out_read.value), 64);
  }
  rig_close(&r);
}

static void test_null_channels_are_silence(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 2, 2, 64, 64);
  for (uint32_t i = 0; i < 2 * r.cap; i++)
    r.seg.audio_in[i] = POISON_VALUE;
  assert_int_equal(shm_tl_daemon_write_input(&r.d, NULL, 64), 64);
  for (uint32_t i = 0; i < 64; i++) {
    assert_true(r.seg.audio_in[i] == 0.0f);
    assert_true(r.seg.audio_in[r.cap + i] == 0.0f);
  }
  daemon_read(&r, 64);
  const float *one[2] = {r.src[0], NULL};
  for (uint32_t i = 0; i < 64; i++)
    r.src[0][i] = 3.0f;
  assert_int_equal(shm_tl_daemon_write_input(&r.d, one, 64), 128);
  for (uint32_t i = 64; i < 128; i++) {
    assert_true(r.seg.audio_in[i] == 3.0f);
    assert_true(r.seg.audio_in[r.cap + i] == 0.0f);
  }

  /* A worker with no output to give (NULL src) writes silence too. */
  struct shm_tl_chunk ch;
  poison_output_ring(&r);
  assert_int_equal(shm_tl_worker_plan(&r.w, 128, &ch), 128);
  shm_tl_worker_write_output(&r.w, &ch, NULL);
  shm_tl_worker_commit(&r.w, &ch);
  for (uint32_t i = r.lat; i < r.lat + 128; i++)
    assert_true(r.seg.audio_out[i] == 0.0f && r.seg.audio_out[r.cap + i] == 0.0f);
  rig_close(&r);
}

/* ---- the late worker ------------------------------------------------------ */

static void run_late_worker(uint32_t lat, uint32_t period, uint32_t stall_cycles) {
  struct rig r;
  struct shm_tl_chunk ch;
  const struct shm_ctl *c;
  rig_open(&r, 2, 2, lat, period);
  c = &r.ctl;

  /* A while in step, so the output ring holds real, capacity-old frames. */
  for (int i = 0; i < 40; i++) {
    uint64_t t = r.d.pos;
    daemon_write(&r, period);
    assert_int_equal(worker_drain(&r, period), 0);
    assert_int_equal(daemon_read(&r, period), period);
    check_aligned(&r, t, period, 0, lat);
  }
  uint64_t old_write = load(&c->w->out_write.value);
  uint64_t old_pos = r.w.pos;

  /* The worker stalls for more than L: the daemon plays on. */
  for (uint32_t i = 0; i < stall_cycles; i++) {
    uint64_t t = r.d.pos;
    daemon_write(&r, period);
    int valid = daemon_read(&r, period);
    uint64_t want = old_write > t ? old_write - t : 0;
    assert_int_equal(valid, want < period ? want : period);
    check_aligned(&r, t, period, old_write, UINT64_MAX);
  }
  uint64_t out_read = load(&c->d->out_read.value);
  uint64_t in_write = load(&c->d->in_write.value);
  assert_true(old_pos + lat < out_read); /* it is late */
  /* Whatever the ring holds now must never be played again. */
  poison_output_ring(&r);

  /*
   * Resume exactly where the reader needs output next: no margin of silence
   * beyond the gap. For an honest daemon an overwrite implies lateness, so
   * this target covers both.
   */
  uint64_t target = out_read - lat;

  int n = shm_tl_worker_plan(&r.w, r.cap, &ch);
  assert_true(n >= 0);
  assert_int_equal(ch.skipped, target - old_pos);
  assert_true(ch.skipped > 0);
  assert_int_equal(ch.pos, target);
  assert_true(ch.pos + lat >= out_read);
  assert_int_equal(n, in_write - target);
  assert_int_equal(atomic_load(&c->w->counters.skipped_frames), target - old_pos);
  assert_int_equal(atomic_load(&c->w->counters.discontinuities), 1);
  /* The skip is published at once, and it leaves no silence of the worker's own to play. */
  assert_int_equal(load(&c->w->out_write.value), target + lat);
  assert_int_equal(load(&c->w->out_write.value), out_read);
  assert_int_equal(load(&c->w->in_read.value), target);
  uint64_t gap_end = target + lat;

  /* Finish the planned chunk, then run in step again. */
  assert_int_equal(shm_tl_worker_read_input(&r.w, &ch, r.win), 0);
  for (uint32_t ch_i = 0; ch_i < 2; ch_i++)
    memcpy(r.wout[ch_i], r.win[ch_i], ch.frames * sizeof(float));
  shm_tl_worker_write_output(&r.w, &ch, (const float *const *)r.wout);
  shm_tl_worker_commit(&r.w, &ch);

  uint64_t end = r.d.pos + 10 * (uint64_t)r.cap;
  while (r.d.pos < end) {
    uint64_t t = r.d.pos;
    daemon_write(&r, period);
    assert_int_equal(worker_drain(&r, 100), 0);
    /* Never an underrun again: the worker keeps up from the first cycle it can play. */
    assert_int_equal(daemon_read(&r, period), period);
    /* Silence in the gap, then output(p) == input(p - L) exactly. */
    check_aligned(&r, t, period, out_read, gap_end);
  }
  assert_int_equal(atomic_load(&c->w->counters.discontinuities), 1);
  rig_close(&r);
}

static void test_late_worker(void **state) {
  (void)state;
  run_late_worker(1000, 128, 12); /* late by 536 frames, input intact */
  run_late_worker(1000, 128, 9);  /* late by just 152 */
  run_late_worker(4800, 256, 40); /* late by 5440 */
  run_late_worker(64, 64, 3);     /* L == period */
  run_late_worker(100, 32, 7);
}

static void test_late_and_overwritten(void **state) {
  (void)state;
  /* Behind by more than a ring: both rules apply, the later target wins. */
  run_late_worker(1000, 128, 100);
  run_late_worker(64, 64, 50);
}

/* ---- input overwrite, alone ----------------------------------------------- */

static void test_input_overwrite_skip(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 2, 2, 100, 64);
  const struct shm_ctl *c = &r.ctl;
  poison_output_ring(&r);

  /*
   * The daemon writes input without playing output, so out_read stays 0 and
   * only the overwrite rule can fire. d.pos is moved by hand for that.
   */
  uint64_t extra = 37;
  while (r.d.pos < r.cap - r.period + extra) {
    uint32_t n = r.period;
    if (r.d.pos + n > r.cap - r.period + extra)
      n = (uint32_t)(r.cap - r.period + extra - r.d.pos);
    daemon_write(&r, n);
    r.d.pos += n;
  }
  uint64_t in_write = load(&c->d->in_write.value);
  assert_int_equal(in_write, r.cap - r.period + extra);
  assert_int_equal(load(&c->d->out_read.value), 0);

  int n = shm_tl_worker_plan(&r.w, 8, &ch);
  assert_int_equal(n, 8);
  /* Far enough that the daemon's next period cannot reach the input at pos. */
  assert_int_equal(ch.pos, in_write + r.period - r.cap);
  assert_int_equal(ch.skipped, extra);
  assert_int_equal(atomic_load(&c->w->counters.skipped_frames), extra);
  assert_int_equal(atomic_load(&c->w->counters.discontinuities), 1);
  assert_int_equal(load(&c->w->out_write.value), ch.pos + r.lat);
  /* The output for the skipped input is silence, not stale ring contents. */
  for (uint64_t p = r.lat; p < ch.pos + r.lat; p++)
    assert_true(r.seg.audio_out[p & (r.cap - 1)] == 0.0f);
  assert_true(r.seg.audio_out[(ch.pos + r.lat) & (r.cap - 1)] == POISON_VALUE);

  assert_int_equal(shm_tl_worker_read_input(&r.w, &ch, r.win), 0);
  for (uint32_t i = 0; i < 8; i++)
    assert_true(r.win[1][i] == sig(ch.pos + i, 1));
  rig_close(&r);
}

static void test_read_input_stale(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 2, 2, 100, 64);
  const struct shm_ctl *c = &r.ctl;
  for (int i = 0; i < 3; i++) {
    daemon_write(&r, 64);
    daemon_read(&r, 64);
    worker_drain(&r, 64);
  }
  daemon_write(&r, 64);
  assert_int_equal(shm_tl_worker_plan(&r.w, 64, &ch), 64);
  uint64_t pos = ch.pos;

  /* The daemon may write a period past in_write: the boundary is capacity - max_period. */
  atomic_store(&c->d->in_write.value, pos + r.cap - r.period);
  assert_int_equal(shm_tl_worker_read_input(&r.w, &ch, r.win), 0);
  assert_int_equal(atomic_load(&c->w->counters.overwritten), 0);
  atomic_store(&c->d->in_write.value, pos + r.cap - r.period + 1);
  assert_int_equal(shm_tl_worker_read_input(&r.w, &ch, r.win), -ESTALE);
  assert_int_equal(atomic_load(&c->w->counters.overwritten), 1);
  atomic_store(&c->d->in_write.value, pos + 10 * (uint64_t)r.cap);
  assert_int_equal(shm_tl_worker_read_input(&r.w, &ch, r.win), -ESTALE);
  assert_int_equal(atomic_load(&c->w->counters.overwritten), 2);
  rig_close(&r);
}

static void test_read_input_stale_real_daemon(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 2, 2, 100, 64);
  const struct shm_ctl *c = &r.ctl;
  daemon_write(&r, 64);
  assert_int_equal(shm_tl_worker_plan(&r.w, 64, &ch), 64);
  /* The worker is preempted mid-chunk while the daemon plays on. */
  while (load(&c->d->in_write.value) - ch.pos + r.period <= r.cap) {
    daemon_read(&r, 64);
    daemon_write(&r, 64);
  }
  assert_int_equal(shm_tl_worker_read_input(&r.w, &ch, r.win), -ESTALE);
  daemon_read(&r, 64);

  /* Dropping the chunk and planning again skips past the damage. */
  struct shm_tl_chunk again;
  int n = shm_tl_worker_plan(&r.w, r.cap, &again);
  assert_true(n > 0);
  assert_true(again.skipped > 0);
  assert_int_equal(shm_tl_worker_read_input(&r.w, &again, r.win), 0);
  for (int i = 0; i < n; i++)
    assert_true(r.win[0][i] == sig(again.pos + (uint64_t)i, 0));
  rig_close(&r);
}

/* ---- worker start, restart, commit ---------------------------------------- */

static void test_worker_init_resume(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 2, 2, 500, 128);
  const struct shm_ctl *c = &r.ctl;

  for (int i = 0; i < 10; i++) {
    uint64_t t = r.d.pos;
    daemon_write(&r, 128);
    assert_int_equal(daemon_read(&r, 128), 128);
    check_aligned(&r, t, 128, 0, r.lat);
    worker_chunk(&r, 100, NULL); /* falls a little behind, within L */
  }
  uint64_t resume = load(&c->w->out_write.value) - r.lat;

  /* A new worker process: it died after publishing out_write but before in_read. */
  atomic_store(&c->w->in_read.value, resume - 50);
  struct shm_tl_worker w2;
  assert_int_equal(shm_tl_worker_init(&w2, &r.seg), 0);
  assert_int_equal(w2.pos, resume);
  assert_int_equal(load(&c->w->in_read.value), resume);
  r.w = w2;

  /* The restart is invisible in the output: no skip, no gap, same alignment. */
  for (int i = 0; i < 100; i++) {
    uint64_t t = r.d.pos;
    daemon_write(&r, 128);
    worker_drain(&r, 128);
    assert_int_equal(daemon_read(&r, 128), 128);
    check_aligned(&r, t, 128, 0, r.lat);
  }
  assert_int_equal(atomic_load(&c->w->counters.skipped_frames), 0);
  rig_close(&r);
}

static void test_worker_init_rejects(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_worker w;
  rig_open(&r, 1, 1, 500, 128);
  const struct shm_ctl *c = &r.ctl;
  atomic_store(&c->d->in_write.value, 1000);
  atomic_store(&c->w->in_read.value, 77);

  atomic_store(&c->w->out_write.value, r.lat - 1); /* before the timeline starts */
  assert_int_equal(shm_tl_worker_init(&w, &r.seg), -EPROTO);
  atomic_store(&c->w->out_write.value, 0);
  assert_int_equal(shm_tl_worker_init(&w, &r.seg), -EPROTO);
  atomic_store(&c->w->out_write.value, 1000 + r.lat + 1); /* for input never written */
  assert_int_equal(shm_tl_worker_init(&w, &r.seg), -EPROTO);
  atomic_store(&c->w->out_write.value, UINT64_MAX);
  assert_int_equal(shm_tl_worker_init(&w, &r.seg), -EPROTO);
  /* A refusal publishes nothing. */
  assert_int_equal(load(&c->w->in_read.value), 77);

  atomic_store(&c->w->out_write.value, 1000 + r.lat); /* caught up exactly */
  assert_int_equal(shm_tl_worker_init(&w, &r.seg), 0);
  assert_int_equal(w.pos, 1000);
  atomic_store(&c->w->out_write.value, r.lat); /* the very start */
  assert_int_equal(shm_tl_worker_init(&w, &r.seg), 0);
  assert_int_equal(w.pos, 0);
  assert_int_equal(load(&c->w->in_read.value), 0);
  rig_close(&r);
}

static void test_pending_and_plan_errors(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 1, 1, 500, 128);
  const struct shm_ctl *c = &r.ctl;

  assert_int_equal(shm_tl_worker_pending(&r.w), 0);
  assert_int_equal(shm_tl_worker_plan(&r.w, 64, &ch), 0);
  assert_int_equal(ch.frames, 0);
  assert_int_equal(ch.skipped, 0);
  assert_int_equal(ch.pos, 0);

  daemon_write(&r, 100);
  assert_int_equal(shm_tl_worker_pending(&r.w), 100);
  assert_int_equal(shm_tl_worker_plan(&r.w, 64, &ch), 64);
  assert_int_equal(shm_tl_worker_plan(&r.w, 1000, &ch), 100);
  assert_int_equal(ch.pos, 0);
  worker_chunk(&r, 30, NULL);
  assert_int_equal(shm_tl_worker_pending(&r.w), 70);

  /* in_write behind what the worker already consumed. */
  atomic_store(&c->d->in_write.value, 29);
  assert_int_equal(shm_tl_worker_pending(&r.w), -EPROTO);
  assert_int_equal(shm_tl_worker_plan(&r.w, 64, &ch), -EPROTO);
  /* out_read ahead of in_write: output played for input never written. */
  atomic_store(&c->d->in_write.value, 100);
  atomic_store(&c->d->out_read.value, 101);
  assert_int_equal(shm_tl_worker_plan(&r.w, 64, &ch), -EPROTO);
  assert_int_equal(r.w.pos, 30);
  assert_int_equal(load(&c->w->in_read.value), 30);
  rig_close(&r);
}

static void test_commit_publishes(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 1, 1, 500, 128);
  const struct shm_ctl *c = &r.ctl;
  daemon_write(&r, 128);
  assert_int_equal(shm_tl_worker_plan(&r.w, 50, &ch), 50);
  shm_tl_worker_write_output(&r.w, &ch, NULL);
  /* Nothing is visible before the commit. */
  assert_int_equal(load(&c->w->out_write.value), r.lat);
  assert_int_equal(load(&c->w->in_read.value), 0);
  shm_tl_worker_commit(&r.w, &ch);
  assert_int_equal(load(&c->w->out_write.value), 50 + r.lat);
  assert_int_equal(load(&c->w->in_read.value), 50);
  assert_int_equal(r.w.pos, 50);
  assert_int_equal(atomic_load(&c->w->counters.chunks), 1);
  rig_close(&r);
}

/*
 * A worker far behind in_write must skip (or refuse), never plan a chunk the
 * daemon may be overwriting. With in_write - pos within max_period of 2^64
 * the overwrite test in shm_tl_worker_plan and shm_tl_worker_read_input,
 * `in_write - pos + max_period > capacity`, wraps around and passes.
 */
static void test_plan_far_behind_does_not_wrap(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 1, 1, 100, 64);
  uint64_t in_write = UINT64_MAX - 10; /* in_write - 0 + 64 wraps to 53 */
  atomic_store(&r.ctl.d->in_write.value, in_write);

  int n = shm_tl_worker_plan(&r.w, 64, &ch);
  int bad = n > 0 && in_write - ch.pos > r.cap - r.period;
  uint64_t pos = ch.pos, skipped = ch.skipped;
  rig_close(&r);
  if (bad)
    fail_msg("plan returned %d frames at %" PRIu64 " with in_write %" PRIu64 " (skipped %" PRIu64
             "): input that may be overwritten",
             n, pos, in_write, skipped);
}

static void test_read_input_far_behind_does_not_wrap(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 1, 1, 100, 64);
  atomic_store(&r.ctl.d->in_write.value, UINT64_MAX - 10);
  struct shm_tl_chunk old = {.pos = 0, .frames = 64, .skipped = 0};
  int rc = shm_tl_worker_read_input(&r.w, &old, r.win);
  rig_close(&r);
  assert_int_equal(rc, -ESTALE);
}

/*
 * The lateness test `pos + L < out_read` wraps when pos is within L of 2^64:
 * the worker then "skips" backwards to out_read - L.
 */
static void test_plan_late_check_does_not_wrap(void **state) {
  (void)state;
  struct rig r;
  struct shm_tl_chunk ch;
  rig_open(&r, 1, 1, 64, 32);
  uint64_t top = UINT64_MAX - 46;
  atomic_store(&r.ctl.d->in_write.value, top);
  atomic_store(&r.ctl.d->out_read.value, 832);
  r.w.pos = top; /* caught up with that in_write */

  int n = shm_tl_worker_plan(&r.w, 64, &ch);
  uint64_t pos = ch.pos;
  rig_close(&r);
  if (n >= 0 && pos < top)
    fail_msg("plan moved the worker back from %" PRIu64 " to %" PRIu64 " (%d frames)", top, pos, n);
}

/* "Input frames ready past pos, or -EPROTO": never some other negative number. */
/*
 * Frames the graph played without calling us: the timeline moves on by them
 * (their input is silence), so the alignment with the graph clock holds:
 * after the gap, output at p is still exactly input p - L. The input ring
 * still holds the signal of a ring ago at the gap's places: the worker end
 * must read silence there all the same.
 */
static void run_skip(uint32_t gap) {
  struct rig r;
  rig_open(&r, 2, 2, 300, 64);
  for (int cyc = 0; cyc < 20; cyc++) {
    daemon_write(&r, 64);
    worker_drain(&r, 256);
    assert_true(daemon_read(&r, 64) == 64);
  }
  uint64_t before = r.d.pos;
  shm_tl_daemon_skip(&r.d, gap);
  assert_int_equal(r.d.pos, before + gap);
  assert_int_equal(load(&r.ctl.d->in_write.value), before + gap);
  assert_int_equal(load(&r.ctl.d->out_read.value), before + gap);
  assert_int_equal(load(&r.ctl.d->gap.start), before);
  assert_int_equal(load(&r.ctl.d->gap.end), before + gap);
  for (int cyc = 0; cyc < 40; cyc++) {
    uint64_t t = r.d.pos;
    daemon_write(&r, 64);
    worker_drain(&r, 256);
    int v = daemon_read(&r, 64);
    /* Output from the skipped input's answers is silence; then the signal, aligned. */
    if (v == 64)
      check_aligned(&r, t, 64, before + r.lat, before + gap + r.lat);
  }
  rig_close(&r);
}

static void test_skip_keeps_graph_alignment(void **state) {
  (void)state;
  run_skip(64);     /* one cycle the server did not run us in */
  run_skip(200);    /* not a multiple of the period */
  run_skip(100000); /* far more than a ring */
  struct rig r;
  rig_open(&r, 1, 1, 300, 64);
  shm_tl_daemon_skip(&r.d, 0);
  assert_int_equal(r.d.pos, 0);
  assert_int_equal(load(&r.ctl.d->gap.end), 0);
  rig_close(&r);
}

/* Bytes that differ between a and b, and whether all of them lie in [from, to). */
static size_t count_changed(const unsigned char *a, const unsigned char *b, size_t n, size_t from,
                            size_t to, int *outside) {
  size_t changed = 0;
  *outside = 0;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i]) {
      changed++;
      *outside |= i < from || i >= to;
    }
  }
  return changed;
}

/*
 * The RT cost of a gap does not grow with it: a gap of a whole ring (and of
 * ten) writes a few words of the daemon's control block and nothing else of
 * either file (before, the daemon cleared up to a ring per input channel in
 * one cycle: 13 ms at large L). The worker then reads the gap as silence
 * although the ring still holds whatever it held.
 */
static void test_skip_is_bounded_work(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 4, 1, 48000, 256);
  assert_int_equal(r.cap, 131072);
  for (size_t i = 0; i < (size_t)r.n_in * r.cap; i++)
    r.seg.audio_in[i] = POISON_VALUE;
  const size_t dsize = r.seg.size[RW_FILE_DAEMON], wsize = r.seg.size[RW_FILE_WORKER];
  const struct rw_region *ctl = &r.seg.layout.regions[RW_REGION_DAEMON_CONTROL];
  unsigned char *dsnap = malloc(dsize), *wsnap = malloc(wsize);
  assert_true(dsnap && wsnap);

  static const uint64_t gaps[] = {131072, 10 * 131072, 1};
  for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
    memcpy(dsnap, r.seg.base[RW_FILE_DAEMON], dsize);
    memcpy(wsnap, r.seg.base[RW_FILE_WORKER], wsize);
    uint64_t before = r.d.pos;
    shm_tl_daemon_skip(&r.d, gaps[g]);
    int outside;
    /* in_write, out_read and the gap's two ends: four 64-bit words at most. */
    size_t changed = count_changed(dsnap, r.seg.base[RW_FILE_DAEMON], dsize, ctl->offset,
                                   ctl->offset + sizeof(struct rw_daemon_control), &outside);
    if (changed > 4 * sizeof(uint64_t) || outside)
      fail_msg("a gap of %" PRIu64 " frames changed %zu bytes of the daemon file%s", gaps[g],
               changed, outside ? ", some outside its control block" : "");
    assert_int_equal(count_changed(wsnap, r.seg.base[RW_FILE_WORKER], wsize, 0, 0, &outside), 0);
    assert_int_equal(load(&r.ctl.d->in_write.value), before + gaps[g]);
  }

  /* The worker (far behind) reads what it still can of the gaps: silence, never the poison. */
  uint64_t frames = 0;
  struct shm_tl_chunk ch;
  while (worker_chunk(&r, 4096, &ch) > 0) {
    for (uint32_t c = 0; c < r.n_in; c++)
      for (uint32_t i = 0; i < ch.frames; i++)
        if (r.win[c][i] != 0.0f)
          fail_msg("input %" PRIu64 " channel %u in the gap reads %g, not silence", ch.pos + i, c,
                   (double)r.win[c][i]);
    frames += ch.frames;
  }
  assert_true(frames >= r.lat); /* the worker did read inside the gap */
  free(dsnap);
  free(wsnap);
  rig_close(&r);
}

/* Takes every pending chunk and checks its input: silence in [silent_from, silent_to), else sig. */
static void drain_checking_input(struct rig *r, uint64_t silent_from, uint64_t silent_to) {
  struct shm_tl_chunk ch;
  while (worker_chunk(r, 48, &ch) > 0) {
    for (uint32_t i = 0; i < ch.frames; i++) {
      uint64_t p = ch.pos + i;
      float want = p >= silent_from && p < silent_to ? 0.0f : sig(p, 0);
      if (memcmp(&r->win[0][i], &want, sizeof(float)) != 0)
        fail_msg("input %" PRIu64 " reads %g, expected %g", p, (double)r->win[0][i], (double)want);
    }
  }
}

/*
 * A second gap that comes before the worker has read past the first extends
 * it: from the first gap's start to the second's end, the real input in
 * between included. One that comes after is a gap of its own.
 */
static void test_second_gap(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 1, 1, 300, 64);
  for (int cyc = 0; cyc < 20; cyc++) {
    daemon_write(&r, 64);
    worker_drain(&r, 256);
    daemon_read(&r, 64);
  }

  /* The worker has not reached the first gap when the second comes: one gap. */
  uint64_t b = r.d.pos;
  shm_tl_daemon_skip(&r.d, 100);
  daemon_write(&r, 64);
  daemon_read(&r, 64);
  daemon_write(&r, 64);
  daemon_read(&r, 64);
  shm_tl_daemon_skip(&r.d, 50);
  assert_int_equal(load(&r.ctl.d->gap.start), b);
  assert_int_equal(load(&r.ctl.d->gap.end), b + 100 + 128 + 50);
  daemon_write(&r, 64);
  drain_checking_input(&r, b, b + 278);

  /* Past it: the next gap is its own, and the input before it stays the signal. */
  daemon_read(&r, 64);
  daemon_write(&r, 64);
  drain_checking_input(&r, 0, 0);
  daemon_read(&r, 64);
  uint64_t c = r.d.pos;
  shm_tl_daemon_skip(&r.d, 30);
  assert_int_equal(load(&r.ctl.d->gap.start), c);
  assert_int_equal(load(&r.ctl.d->gap.end), c + 30);
  daemon_write(&r, 64);
  drain_checking_input(&r, c, c + 30);
  rig_close(&r);
}

static void test_pending_far_ahead_is_not_negative(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, 1, 1, 100, 64);
  atomic_store(&r.ctl.d->in_write.value, UINT64_C(1) << 63);
  int64_t pending = shm_tl_worker_pending(&r.w);
  rig_close(&r);
  if (pending < 0 && pending != -EPROTO)
    fail_msg("pending returned %" PRId64, pending);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alignment),
      cmocka_unit_test(test_skip_keeps_graph_alignment),
      cmocka_unit_test(test_skip_is_bounded_work),
      cmocka_unit_test(test_second_gap),
      cmocka_unit_test(test_alignment_past_2_32),
      cmocka_unit_test(test_underrun),
      cmocka_unit_test(test_partial_underrun_prefix),
      cmocka_unit_test(test_fault_out_write_beyond),
      cmocka_unit_test(test_write_input_backlog_and_errors),
      cmocka_unit_test(test_bad_cycle_size),
      cmocka_unit_test(test_null_channels_are_silence),
      cmocka_unit_test(test_late_worker),
      cmocka_unit_test(test_late_and_overwritten),
      cmocka_unit_test(test_input_overwrite_skip),
      cmocka_unit_test(test_read_input_stale),
      cmocka_unit_test(test_read_input_stale_real_daemon),
      cmocka_unit_test(test_worker_init_resume),
      cmocka_unit_test(test_worker_init_rejects),
      cmocka_unit_test(test_pending_and_plan_errors),
      cmocka_unit_test(test_commit_publishes),
      cmocka_unit_test(test_plan_far_behind_does_not_wrap),
      cmocka_unit_test(test_read_input_far_behind_does_not_wrap),
      cmocka_unit_test(test_plan_late_check_does_not_wrap),
      cmocka_unit_test(test_pending_far_ahead_is_not_negative),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
