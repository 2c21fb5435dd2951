/*
 * librunway-worker against a daemon role played by this test: a segment made
 * with shm_segment_create, the daemon end of the timeline, a producer on the
 * event ring and a consumer on the message ring. Both sides run in one
 * thread (the worker drains with timeout 0 between daemon cycles) unless a
 * test is about waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <runway/worker.h>

#include "segment.h"
#include "spsc.h"
#include "timeline.h"
#include "wake.h"
#include "worker_rig.h"

#define RATE 48000u
#define PERIOD 64u
#define LAT 256u
#define MAXCH 4

/* The input sample at timeline position p of channel c: distinct and exact in a float. */
static float input_at(uint64_t p, uint32_t c) {
  return (float)((p & 0xFFFF) + 1) + (float)c * 100000.0f;
}

static void daemon_create(struct daemon_role *d, uint32_t n_in, uint32_t n_out, uint32_t flags) {
  struct proto_segment_params params = {
      .sample_rate = RATE,
      .n_inputs = n_in,
      .n_outputs = n_out,
      .flags = flags,
      .latency = LAT,
      .max_period = PERIOD,
  };
  daemon_role_create(d, &params);
}

/* Hands the segment over the way runwayd does for managed workers. */
static void export_segment(struct daemon_role *d) { daemon_role_export(d, "test"); }

static rw_worker *open_worker(struct daemon_role *d, const rw_worker_options *o) {
  return daemon_role_open_worker(d, o, "test");
}

/* Step 1 of a cycle: input [t, t+n). */
static void daemon_write(struct daemon_role *d, uint32_t n) {
  float buf[MAXCH][PERIOD];
  const float *src[MAXCH];
  for (uint32_t c = 0; c < d->n_in; c++) {
    for (uint32_t k = 0; k < n; k++)
      buf[c][k] = input_at(d->tl.pos + k, c);
    src[c] = buf[c];
  }
  assert_true(shm_tl_daemon_write_input(&d->tl, src, n) >= 0);
}

/* Steps 3 and 4: output [t, t+n) into out. */
static void daemon_read(struct daemon_role *d, float out[MAXCH][PERIOD], uint32_t n) {
  float *dst[MAXCH];
  for (uint32_t c = 0; c < d->n_out; c++)
    dst[c] = out[c];
  assert_true(shm_tl_daemon_read_output(&d->tl, dst, n) >= 0);
}

static void push_record(struct daemon_role *d, const struct rw_record *rec) {
  assert_int_equal(shm_spsc_push(&d->ev, rec), 0);
}

static void push_midi(struct daemon_role *d, uint64_t time, uint8_t b0, uint8_t b1, uint8_t b2) {
  struct rw_record rec = {.time = time, .type = RW_EVENT_MIDI, .size = 3};
  rec.u.midi[0] = b0;
  rec.u.midi[1] = b1;
  rec.u.midi[2] = b2;
  push_record(d, &rec);
}

static void push_param(struct daemon_role *d, uint64_t time, uint32_t id, float value) {
  struct rw_record rec = {.time = time, .type = RW_EVENT_PARAM};
  rec.u.param.id = id;
  rec.u.param.value = value;
  push_record(d, &rec);
}

/* Fade the SDK applies to frame k after a discontinuity. */
static float fade(uint64_t k) {
  return k < RW_FADE_IN_FRAMES ? (float)(k + 1) / (float)RW_FADE_IN_FRAMES : 1.0f;
}

/* A plugin in miniature: output c = input c (zero beyond the inputs). */
static void copy_through(const rw_block *b) {
  for (uint32_t c = 0; c < b->n_outputs; c++)
    for (uint32_t k = 0; k < b->frames; k++)
      b->outputs[c][k] = c < b->n_inputs ? b->inputs[c][k] : 0.0f;
}

/* Processes everything pending; returns the number of blocks. */
static int drain(rw_worker *w) {
  rw_block b;
  int n = 0;
  int rc;
  while ((rc = rw_worker_next(w, &b, 0)) == 1) {
    copy_through(&b);
    assert_int_equal(rw_worker_done(w, &b), 0);
    n++;
  }
  assert_int_equal(rc, 0);
  return n;
}

/* ---- audio ---------------------------------------------------------------- */

static void test_audio_lands_exactly_L_later(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 2, 3, 0);
  rw_worker *w = open_worker(&d, NULL);

  const rw_worker_info *info = rw_worker_get_info(w);
  assert_int_equal(info->sample_rate, RATE);
  assert_int_equal(info->n_inputs, 2);
  assert_int_equal(info->n_outputs, 3);
  assert_int_equal(info->latency, LAT);
  assert_int_equal(info->max_block, 256);
  assert_string_equal(info->slot, "test");
  /* The daemon counts the worker as attached from its first rw_worker_next. */
  assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), 0);

  uint64_t expect_pos = 0;
  for (int cycle = 0; cycle < 40; cycle++) {
    daemon_write(&d, PERIOD);
    rw_block b;
    int rc;
    while ((rc = rw_worker_next(w, &b, 0)) == 1) {
      assert_int_equal(b.position, expect_pos);
      assert_int_equal(b.latency, LAT);
      assert_int_equal(b.sample_rate, RATE);
      assert_int_equal(b.n_inputs, 2);
      assert_int_equal(b.n_outputs, 3);
      assert_int_equal(b.discontinuity, expect_pos == 0);
      assert_int_equal(b.skipped, 0);
      for (uint32_t c = 0; c < 2; c++)
        for (uint32_t k = 0; k < b.frames; k++)
          assert_true(b.inputs[c][k] == input_at(b.position + k, c));
      copy_through(&b);
      expect_pos += b.frames;
      assert_int_equal(rw_worker_done(w, &b), 0);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), (uint32_t)getpid());

    float out[MAXCH][PERIOD];
    uint64_t t = d.tl.pos;
    daemon_read(&d, out, PERIOD);
    for (uint32_t k = 0; k < PERIOD; k++) {
      uint64_t p = t + k;
      for (uint32_t c = 0; c < 3; c++) {
        float want = p < LAT || c >= 2 ? 0.0f : input_at(p - LAT, c) * fade(p - LAT);
        if (out[c][k] != want)
          fail_msg("output %u at %llu: %g, want %g", c, (unsigned long long)p, out[c][k], want);
      }
    }
  }
  rw_worker_stats st;
  assert_int_equal(rw_worker_get_stats(w, &st), 0);
  assert_int_equal(st.frames, 40 * PERIOD);
  assert_int_equal(st.discontinuities, 1);
  assert_int_equal(st.skipped_frames, 0);
  rw_worker_close(w);
  assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), 0);
  daemon_destroy(&d);
}

/* ---- events --------------------------------------------------------------- */

static const rw_param_info test_params[] = {
    {.id = 7, .name = "x", .min = 0.0f, .max = 10.0f, .def = 1.0f, .unit = ""},
    {.id = 9, .name = "y", .min = -1.0f, .max = 1.0f, .def = 0.0f, .unit = ""},
};

static void test_events_at_their_offsets(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, RW_SEGMENT_F_MIDI);
  rw_worker_options o = {
      .api_version = RW_WORKER_API_VERSION, .params = test_params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  assert_int_equal(rw_worker_get_info(w)->midi, 1);
  assert_true(rw_worker_param(w, 7) == 1.0f);
  assert_true(isnan(rw_worker_param(w, 8)));

  /* Four cycles of input, then one block covers all 256 frames. */
  uint64_t times[] = {0, 5, 63, 64, 100, 100, 200, 255};
  for (int cycle = 0; cycle < 4; cycle++) {
    uint64_t t = d.tl.pos;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
      if (times[i] >= t && times[i] < t + PERIOD)
        push_midi(&d, times[i], 0x90, (uint8_t)i, 100);
    if (cycle == 2)
      push_param(&d, t + 3, 7, 20.0f); /* clamped to the declared max */
    daemon_write(&d, PERIOD);
    float out[MAXCH][PERIOD];
    daemon_read(&d, out, PERIOD);
  }

  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.position, 0);
  assert_int_equal(b.frames, 256);
  assert_int_equal(b.n_events, 9);
  uint32_t midi_seen = 0;
  for (uint32_t i = 0; i < b.n_events; i++) {
    const rw_event *e = &b.events[i];
    if (i > 0)
      assert_true(e->offset >= b.events[i - 1].offset);
    if (e->kind == RW_EV_MIDI) {
      assert_int_equal(e->size, 3);
      assert_int_equal(e->u.midi.data[0], 0x90);
      uint32_t idx = e->u.midi.data[1];
      assert_int_equal(idx, midi_seen);
      assert_int_equal(b.position + e->offset, times[idx]);
      midi_seen++;
    } else {
      assert_int_equal(e->kind, RW_EV_PARAM);
      assert_int_equal(e->u.param.id, 7);
      assert_true(e->u.param.value == 10.0f);
      assert_int_equal(b.position + e->offset, 128 + 3);
    }
  }
  assert_int_equal(midi_seen, 8);
  /* The table follows the events a block delivered. */
  assert_true(rw_worker_param(w, 7) == 10.0f);
  copy_through(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);

  /* An event whose time has passed arrives at offset 0 of the next block. */
  push_param(&d, 250, 9, 0.5f);
  push_midi(&d, 256 + 10, 0x80, 1, 0);
  daemon_write(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.position, 256);
  assert_int_equal(b.n_events, 2);
  assert_int_equal(b.events[0].offset, 0);
  assert_int_equal(b.events[0].kind, RW_EV_PARAM);
  assert_int_equal(b.events[1].offset, 10);
  assert_int_equal(b.events[1].kind, RW_EV_MIDI);
  assert_true(rw_worker_param(w, 9) == 0.5f);
  assert_int_equal(rw_worker_done(w, &b), 0);

  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  assert_int_equal(st.events, 11);
  assert_int_equal(st.events_late, 1);
  assert_int_equal(st.events_invalid, 0);
  assert_int_equal(atomic_load(&d.seg.ctl.w->ev_read.value), 11);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void expect_sequence(rw_worker *w, uint32_t total, uint64_t *first_frames,
                            uint64_t (*time_of)(uint32_t)) {
  uint32_t next = 0;
  int blocks = 0;
  rw_block b;
  while (next < total) {
    assert_int_equal(rw_worker_next(w, &b, 0), 1);
    assert_true(b.n_events <= RW_MAX_BLOCK_EVENTS);
    if (blocks++ == 0)
      *first_frames = b.frames;
    for (uint32_t i = 0; i < b.n_events; i++) {
      const rw_event *e = &b.events[i];
      assert_true(e->offset < b.frames);
      uint32_t idx = e->u.midi.data[1] | (uint32_t)e->u.midi.data[2] << 7;
      assert_int_equal(idx, next);
      uint64_t t = time_of(idx);
      /* On time, or (only when more events share a frame than a block holds) late at 0. */
      if (t >= b.position)
        assert_int_equal(b.position + e->offset, t);
      else
        assert_int_equal(e->offset, 0);
      next++;
    }
    copy_through(&b);
    assert_int_equal(rw_worker_done(w, &b), 0);
  }
}

static uint64_t two_clusters(uint32_t i) { return i < 300 ? 10 : 100; }

static uint64_t one_frame(uint32_t i) {
  (void)i;
  return 256;
}

static void test_event_cap_shortens_blocks(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, RW_SEGMENT_F_MIDI);
  rw_worker *w = open_worker(&d, NULL);

  /* 600 events in one 256-frame chunk: 300 at frame 10, 300 at frame 100. */
  for (uint32_t i = 0; i < 600; i++)
    push_midi(&d, two_clusters(i), 0x90, i & 0x7F, (uint8_t)(i >> 7));
  for (int cycle = 0; cycle < 4; cycle++) {
    daemon_write(&d, PERIOD);
    float out[MAXCH][PERIOD];
    daemon_read(&d, out, PERIOD);
  }
  uint64_t first = 0;
  expect_sequence(w, 600, &first, two_clusters);
  /* The block ended where the first event that did not fit lies. */
  assert_int_equal(first, 100);
  drain(w);

  /* 600 events on one frame: the block shrinks to that frame; the rest follow at offset 0. */
  for (uint32_t i = 0; i < 600; i++)
    push_midi(&d, one_frame(i), 0x90, i & 0x7F, (uint8_t)(i >> 7));
  for (int cycle = 0; cycle < 4; cycle++) {
    daemon_write(&d, PERIOD);
    float out[MAXCH][PERIOD];
    daemon_read(&d, out, PERIOD);
  }
  expect_sequence(w, 600, &first, one_frame);
  assert_int_equal(first, 1);

  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  assert_int_equal(st.events, 1200);
  assert_int_equal(st.events_late, 600 - RW_MAX_BLOCK_EVENTS);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_garbage_records_dropped(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, RW_SEGMENT_F_MIDI);
  rw_worker_options o = {.params = test_params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);

  struct rw_record rec;
  uint16_t bad_types[] = {RW_EVENT_NONE, RW_EVENT_PARAM_OUT, RW_EVENT_METER, 5, 9, 63, 0xFFFF};
  for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
    memset(&rec, 0xA5, sizeof(rec));
    rec.time = 3;
    rec.type = bad_types[i];
    push_record(&d, &rec);
  }
  uint16_t bad_sizes[] = {0, 4, 16, 0xFFFF};
  for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
    memset(&rec, 0, sizeof(rec));
    rec.time = 4;
    rec.type = RW_EVENT_MIDI;
    rec.size = bad_sizes[i];
    push_record(&d, &rec);
  }
  push_param(&d, 5, 7, NAN);
  push_param(&d, 5, 7, INFINITY);
  push_param(&d, 5, 7, -INFINITY);
  push_param(&d, 5, 12345, 1.0f); /* not a declared parameter */
  /* A time a whole ring beyond the input cannot be honest. */
  push_midi(&d, UINT64_MAX - 5, 0x90, 60, 1);
  /* The good ones around them still arrive. */
  struct rw_record one = {.time = 6, .type = RW_EVENT_MIDI, .size = 1};
  one.u.midi[0] = 0xF8;
  push_record(&d, &one);
  push_param(&d, 7, 9, -0.25f);
  daemon_write(&d, PERIOD);

  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.n_events, 2);
  assert_int_equal(b.events[0].kind, RW_EV_MIDI);
  assert_int_equal(b.events[0].size, 1);
  assert_int_equal(b.events[0].u.midi.data[0], 0xF8);
  assert_int_equal(b.events[0].u.midi.data[1], 0);
  assert_int_equal(b.events[0].offset, 6);
  assert_int_equal(b.events[1].kind, RW_EV_PARAM);
  assert_true(b.events[1].u.param.value == -0.25f);
  assert_true(rw_worker_param(w, 7) == 1.0f);
  assert_int_equal(rw_worker_done(w, &b), 0);

  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  assert_int_equal(st.events_invalid, 7 + 4 + 3 + 1 + 1);
  assert_int_equal(st.events, 2);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* ---- skips ---------------------------------------------------------------- */

static void test_skip_after_daemon_runs_ahead(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  rw_worker *w = open_worker(&d, NULL);
  float out[MAXCH][PERIOD];

  for (int cycle = 0; cycle < 10; cycle++) {
    daemon_write(&d, PERIOD);
    drain(w);
    daemon_read(&d, out, PERIOD);
  }
  /* The worker stalls for 10 cycles (640 frames, more than L = 256). */
  push_midi(&d, 700, 0x80, 60, 0); /* a note-off inside the skipped input */
  for (int cycle = 0; cycle < 10; cycle++) {
    daemon_write(&d, PERIOD);
    daemon_read(&d, out, PERIOD);
  }
  /*
   * in_write = out_read = 1280, the worker at 640: late, so it resumes with
   * the input whose output the reader needs next, and no margin beyond.
   */
  const uint64_t resume = 1280 - LAT;
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.discontinuity, 1);
  assert_int_equal(b.skipped, resume - 640);
  assert_int_equal(b.position, resume);
  /* Never drop a note-off: it comes late, at offset 0. */
  assert_int_equal(b.n_events, 1);
  assert_int_equal(b.events[0].offset, 0);
  assert_int_equal(b.events[0].u.midi.data[0], 0x80);
  copy_through(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);
  drain(w);

  for (int cycle = 0; cycle < 10; cycle++) {
    uint64_t t = d.tl.pos;
    daemon_write(&d, PERIOD);
    drain(w);
    daemon_read(&d, out, PERIOD);
    for (uint32_t k = 0; k < PERIOD; k++) {
      uint64_t p = t + k;
      float want = p < resume + LAT ? 0.0f : input_at(p - LAT, 0) * fade(p - LAT - resume);
      if (out[0][k] != want)
        fail_msg("output at %llu: %g, want %g", (unsigned long long)p, out[0][k], want);
    }
  }
  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  assert_int_equal(st.skipped_frames, resume - 640);
  assert_int_equal(st.discontinuities, 2);
  assert_int_equal(atomic_load(&d.seg.ctl.w->counters.skipped_frames), resume - 640);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* ---- waiting and stopping ------------------------------------------------- */

static void test_idle_next_times_out(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  rw_worker *w = open_worker(&d, NULL);
  rw_block b;
  int64_t t0 = now_ns();
  assert_int_equal(rw_worker_next(w, &b, 30), 0);
  int64_t took = now_ns() - t0;
  assert_true(took >= 29 * 1000000LL);
  assert_true(took < 1000 * 1000000LL);
  assert_int_equal(rw_worker_next(w, &b, 0), 0);
  /* Nobody else clears it: the flag must be down after the wait. */
  assert_int_equal(atomic_load(&d.seg.ctl.w->sleeping), 0);
  rw_worker_close(w);
  daemon_destroy(&d);
}

struct waiter {
  rw_worker *w;
  int rc;
  uint64_t position;
  int64_t returned_ns;
};

static void *wait_forever(void *arg) {
  struct waiter *x = arg;
  rw_block b;
  x->rc = rw_worker_next(x->w, &b, -1);
  x->returned_ns = now_ns();
  if (x->rc == 1) {
    x->position = b.position;
    copy_through(&b);
    rw_worker_done(x->w, &b);
  }
  return NULL;
}

static void wait_sleeping(struct daemon_role *d) {
  int64_t deadline = now_ns() + 5000 * 1000000LL;
  while (atomic_load(&d->seg.ctl.w->sleeping) == 0) {
    assert_true(now_ns() < deadline);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

/*
 * One try: the worker sleeps with wake_frames = 3 periods; two periods must
 * not wake it, the third must. Returns 0 when the worker's own 50 ms slice
 * ran out in between (the test thread was descheduled), so the wake could
 * not be observed; the caller then tries again.
 */
static int wake_attempt(void) {
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  rw_worker_options o = {.wake_frames = 3 * PERIOD};
  rw_worker *w = open_worker(&d, &o);
  const struct shm_ctl *ctl = &d.seg.ctl;
  assert_int_equal(atomic_load(&ctl->w->wake_frames), 3 * PERIOD);

  struct waiter x = {.w = w};
  pthread_t th;
  pthread_create(&th, NULL, wait_forever, &x);
  wait_sleeping(&d);
  for (int i = 1; i <= 2; i++) {
    daemon_write(&d, PERIOD);
    assert_int_equal(shm_wake_worker_if_due(ctl, (uint64_t)i * PERIOD, d.seg.layout.capacity), 0);
  }
  daemon_write(&d, PERIOD);
  int woke = shm_wake_worker_if_due(ctl, 3 * PERIOD, d.seg.layout.capacity);
  pthread_join(th, NULL);
  assert_int_equal(x.rc, 1);
  assert_int_equal(x.position, 0);
  rw_worker_close(w);
  daemon_destroy(&d);
  return woke;
}

static void test_daemon_wakes_sleeping_worker(void **state) {
  (void)state;
  int attempts = 0;
  while (!wake_attempt())
    assert_true(++attempts < 5);
}

static void test_request_stop(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  rw_worker *w = open_worker(&d, NULL);
  rw_block b;

  /* From another thread, while the worker sleeps with no timeout. */
  struct waiter x = {.w = w};
  pthread_t th;
  pthread_create(&th, NULL, wait_forever, &x);
  wait_sleeping(&d);
  int64_t t0 = now_ns();
  rw_worker_request_stop(w);
  pthread_join(th, NULL);
  assert_int_equal(x.rc, RW_ERR_CLOSED);
  assert_true(x.returned_ns - t0 < 500 * 1000000LL);
  /* And it stays stopped, even with input pending. */
  daemon_write(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), RW_ERR_CLOSED);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_misuse(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  rw_worker *w = open_worker(&d, NULL);
  rw_block b;
  assert_int_equal(rw_worker_done(w, &b), RW_ERR_INVALID);
  daemon_write(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(rw_worker_next(w, &b, 0), RW_ERR_INVALID);
  assert_non_null(strstr(rw_worker_error(w), "rw_worker_done"));
  copy_through(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);
  assert_int_equal(rw_worker_next(NULL, &b, 0), RW_ERR_INVALID);
  assert_int_equal(rw_worker_send_param(w, 1, NAN), RW_ERR_INVALID);
  rw_worker_close(w);

  /* Bad declarations are refused before attaching. */
  rw_param_info bad[] = {{.id = 1, .name = "a", .min = 1.0f, .max = 0.0f, .def = 0.5f}};
  rw_worker_options o = {.params = bad, .n_params = 1};
  export_segment(&d);
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_INVALID);
  assert_non_null(strstr(rw_worker_error(NULL), "\"a\""));
  rw_param_info dup[] = {{.id = 1, .name = "a", .max = 1.0f}, {.id = 1, .name = "b", .max = 1.0f}};
  o.params = dup;
  o.n_params = 2;
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_INVALID);
  o.n_params = 0;
  o.api_version = RW_WORKER_API_VERSION + 1;
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_INVALID);
  /* Not a memfd segment. */
  setenv("RUNWAY_SEGMENT_FD", "0", 1);
  assert_int_equal(rw_worker_open(NULL, &w), RW_ERR_ATTACH);
  setenv("RUNWAY_SEGMENT_FD", "12x", 1);
  assert_int_equal(rw_worker_open(NULL, &w), RW_ERR_ATTACH);
  assert_non_null(strstr(rw_worker_error(NULL), "12x"));
  /* The daemon file alone, as a runwayd older than the two-file segment passes it. */
  export_segment(&d);
  unsetenv("RUNWAY_SEGMENT_WORKER_FD");
  assert_int_equal(rw_worker_open(NULL, &w), RW_ERR_ATTACH);
  assert_non_null(strstr(rw_worker_error(NULL), "RUNWAY_SEGMENT_WORKER_FD is not"));
  setenv("RUNWAY_SEGMENT_WORKER_FD", "-3", 1);
  assert_int_equal(rw_worker_open(NULL, &w), RW_ERR_ATTACH);
  assert_non_null(strstr(rw_worker_error(NULL), "\"-3\""));
  unsetenv("RUNWAY_SEGMENT_FD");
  unsetenv("RUNWAY_SEGMENT_WORKER_FD");
  daemon_destroy(&d);
}

/* ---- messages ------------------------------------------------------------- */

static void test_messages(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  rw_worker *w = open_worker(&d, NULL);
  rw_block b;

  daemon_write(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(rw_worker_send_param(w, 3, 0.5f), 0);
  assert_int_equal(rw_worker_send_meter(w, 1, 0.25f), 0);
  copy_through(&b);
  rw_worker_done(w, &b);

  struct rw_record rec;
  assert_int_equal(shm_spsc_pop(&d.msg, &rec), 1);
  assert_int_equal(rec.type, RW_EVENT_PARAM_OUT);
  assert_int_equal(rec.u.param.id, 3);
  assert_true(rec.u.param.value == 0.5f);
  assert_int_equal(rec.time, LAT); /* the output position of the block */
  assert_int_equal(shm_spsc_pop(&d.msg, &rec), 1);
  assert_int_equal(rec.type, RW_EVENT_METER);
  assert_int_equal(rec.u.meter.channel, 1);
  assert_true(rec.u.meter.peak == 0.25f);
  assert_int_equal(shm_spsc_pop(&d.msg, &rec), 0);

  /* A full ring refuses, counts, and never blocks. */
  uint32_t cap = d.seg.layout.message_capacity;
  for (uint32_t i = 0; i < cap; i++)
    assert_int_equal(rw_worker_send_meter(w, 0, 0.0f), 0);
  assert_int_equal(rw_worker_send_meter(w, 0, 0.0f), RW_ERR_NOMEM);
  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  assert_int_equal(st.messages_dropped, 1);
  assert_int_equal(atomic_load(&d.seg.ctl.w->counters.events_dropped), 1);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* ---- attaching over the control socket ------------------------------------ */

struct fake_daemon {
  int listen_fd;
  char path[108];
  int segment_fds[RW_FILE_COUNT];
  int n_fds;         /* how many of them go with the answer (RW_FILE_COUNT, as runwayd sends) */
  const char *reply; /* NULL: accept with the segment */
  json_t *request;   /* what the worker sent */
  int conn;          /* kept open until the test closes it */
};

static void fake_listen(struct fake_daemon *f) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(f->path, sizeof(f->path), "/tmp/runway-test-%d.sock", (int)getpid());
  unlink(f->path);
  memcpy(addr.sun_path, f->path, sizeof(f->path));
  f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->listen_fd >= 0);
  assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(listen(f->listen_fd, 4), 0);
  f->conn = -1;
}

static void *fake_serve(void *arg) {
  struct fake_daemon *f = arg;
  char line[4096];
  size_t len = 0;
  f->conn = accept(f->listen_fd, NULL, NULL);
  if (f->conn < 0)
    return NULL;
  while (len < sizeof(line) - 1) {
    ssize_t n = read(f->conn, line + len, 1);
    if (n <= 0 || line[len] == '\n')
      break;
    len++;
  }
  f->request = json_loadb(line, len, 0, NULL);

  const char *ok = "{\"id\":1,\"ok\":true,\"result\":{\"slot\":\"fx\",\"latency_frames\":256}}\n";
  const char *text = f->reply ? f->reply : ok;
  struct iovec iov = {.iov_base = (void *)text, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(RW_FILE_COUNT * sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (f->reply == NULL) {
    /* The descriptor rides on the first byte, as runwayd sends it. */
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE((size_t)f->n_fds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)f->n_fds * sizeof(int));
    memcpy(CMSG_DATA(c), f->segment_fds, (size_t)f->n_fds * sizeof(int));
  }
  if (sendmsg(f->conn, &msg, 0) != 1)
    return NULL;
  if (write(f->conn, text + 1, strlen(text) - 1) < 0)
    return NULL;
  return NULL;
}

static void test_attach_over_socket(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 2, 2, 0);
  struct fake_daemon f = {.segment_fds = {d.seg.fd[RW_FILE_DAEMON], d.seg.fd[RW_FILE_WORKER]},
                          .n_fds = RW_FILE_COUNT};
  fake_listen(&f);
  unsetenv("RUNWAY_SEGMENT_FD");
  unsetenv("RUNWAY_SLOT");

  pthread_t th;
  pthread_create(&th, NULL, fake_serve, &f);
  rw_worker_options o = {.socket = f.path, .slot = "fx", .params = test_params, .n_params = 2};
  rw_worker *w = NULL;
  int rc = rw_worker_open(&o, &w);
  pthread_join(th, NULL);
  if (rc != 0)
    fail_msg("rw_worker_open: %s", rw_worker_error(NULL));

  /* The request: {"id":1,"cmd":"worker.attach","args":{"slot","pid","params":[...]}}. */
  assert_non_null(f.request);
  assert_int_equal(json_integer_value(json_object_get(f.request, "id")), 1);
  assert_string_equal(json_string_value(json_object_get(f.request, "cmd")), "worker.attach");
  json_t *args = json_object_get(f.request, "args");
  assert_string_equal(json_string_value(json_object_get(args, "slot")), "fx");
  assert_int_equal(json_integer_value(json_object_get(args, "pid")), getpid());
  json_t *params = json_object_get(args, "params");
  assert_int_equal(json_array_size(params), 2);
  json_t *p0 = json_array_get(params, 0);
  assert_int_equal(json_integer_value(json_object_get(p0, "id")), 7);
  assert_string_equal(json_string_value(json_object_get(p0, "name")), "x");
  assert_true(json_number_value(json_object_get(p0, "max")) == 10.0);
  assert_true(json_number_value(json_object_get(p0, "default")) == 1.0);
  assert_string_equal(json_string_value(json_object_get(p0, "unit")), "");

  assert_string_equal(json_string_value(json_object_get(args, "plugin")), "test_worker_sdk");
  json_decref(f.request);

  assert_string_equal(rw_worker_get_info(w)->slot, "fx");
  daemon_write(&d, PERIOD);
  assert_int_equal(drain(w), 1);
  assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), (uint32_t)getpid());

  /* The daemon closing the connection ends the worker. */
  close(f.conn);
  rw_block b;
  int64_t t0 = now_ns();
  assert_int_equal(rw_worker_next(w, &b, 2000), RW_ERR_CLOSED);
  assert_true(now_ns() - t0 < 500 * 1000000LL);
  rw_worker_close(w);

  /* A refusal carries runwayd's message. */
  f.reply = "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"slot fx already "
            "has a worker\"}}\n";
  pthread_create(&th, NULL, fake_serve, &f);
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_ATTACH);
  pthread_join(th, NULL);
  json_decref(f.request);
  close(f.conn);
  assert_non_null(strstr(rw_worker_error(NULL), "already has a worker"));
  assert_non_null(strstr(rw_worker_error(NULL), "busy"));

  /* Accepted with one descriptor, as a runwayd older than the two-file segment does. */
  f.reply = NULL;
  f.n_fds = 1;
  pthread_create(&th, NULL, fake_serve, &f);
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_PROTOCOL);
  pthread_join(th, NULL);
  json_decref(f.request);
  close(f.conn);
  assert_non_null(strstr(rw_worker_error(NULL), "passed 1 segment descriptors, not 2"));
  f.n_fds = RW_FILE_COUNT;

  /* Accepted, but no descriptor: a protocol error, not a hang. */
  f.reply = "{\"id\":1,\"ok\":true,\"result\":{}}\n";
  pthread_create(&th, NULL, fake_serve, &f);
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_PROTOCOL);
  pthread_join(th, NULL);
  json_decref(f.request);
  close(f.conn);

  close(f.listen_fd);
  unlink(f.path);

  /* Nobody listening. */
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_ATTACH);
  assert_non_null(strstr(rw_worker_error(NULL), "cannot connect"));
  /* No slot named anywhere. */
  o.slot = NULL;
  assert_int_equal(rw_worker_open(&o, &w), RW_ERR_ATTACH);
  assert_non_null(strstr(rw_worker_error(NULL), "RUNWAY_SLOT"));
  daemon_destroy(&d);
}

/* ---- rw_worker_main and the parent's departure ---------------------------- */

static void *passthrough_create(const rw_worker_info *info) { return (void *)info; }

static void passthrough_destroy(void *self) { (void)self; }

static void passthrough_process(void *self, rw_worker *w, const rw_block *b) {
  (void)self;
  (void)w;
  copy_through(b);
}

static const rw_plugin test_plugin = {
    .name = "test",
    .n_inputs = 1,
    .n_outputs = 1,
    .create = passthrough_create,
    .destroy = passthrough_destroy,
    .process = passthrough_process,
};

static void wait_attached(struct daemon_role *d, pid_t pid) {
  int64_t deadline = now_ns() + 5000 * 1000000LL;
  while (atomic_load(&d->seg.ctl.w->worker_pid) != (uint32_t)pid) {
    assert_true(now_ns() < deadline);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static void test_main_runs_until_sigterm(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  export_segment(&d);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(rw_worker_main(&test_plugin, NULL));
  unsetenv("RUNWAY_SEGMENT_FD");
  wait_attached(&d, pid);

  /* The child runs on its own clock: each cycle waits (with a deadline) for its output. */
  float out[MAXCH][PERIOD];
  for (int cycle = 0; cycle < 8; cycle++) {
    uint64_t t = d.tl.pos;
    daemon_write(&d, PERIOD);
    int64_t deadline = now_ns() + 5000 * 1000000LL;
    while (atomic_load(&d.seg.ctl.w->out_write.value) < t + PERIOD + LAT) {
      assert_true(now_ns() < deadline);
      shm_wake_worker_if_due(&d.seg.ctl, t + PERIOD, d.seg.layout.capacity);
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
    daemon_read(&d, out, PERIOD);
    for (uint32_t k = 0; k < PERIOD; k++) {
      uint64_t p = t + k;
      float want = p < LAT ? 0.0f : input_at(p - LAT, 0) * fade(p - LAT);
      assert_true(out[0][k] == want);
    }
  }

  assert_int_equal(kill(pid, SIGTERM), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), 0);
  daemon_destroy(&d);
}

static void test_parent_departure_closes(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d, 1, 1, 0);
  int result[2];
  assert_int_equal(pipe(result), 0);
  export_segment(&d);

  pid_t mid = fork();
  assert_true(mid >= 0);
  if (mid == 0) {
    pid_t worker = fork();
    if (worker == 0) {
      /* Ignored, so only the getppid() check can notice the parent is gone. */
      signal(SIGTERM, SIG_IGN);
      rw_worker *w;
      signed char rc = (signed char)rw_worker_open(NULL, &w);
      if (rc == 0) {
        rw_block b;
        /* The parent exits once it sees us attached. */
        while ((rc = (signed char)rw_worker_next(w, &b, -1)) >= 0)
          if (rc == 1)
            rw_worker_done(w, &b);
        rw_worker_close(w);
      }
      if (write(result[1], &rc, 1) != 1)
        _exit(1);
      _exit(0);
    }
    wait_attached(&d, worker);
    _exit(0);
  }
  unsetenv("RUNWAY_SEGMENT_FD");
  close(result[1]);
  int status;
  assert_int_equal(waitpid(mid, &status, 0), mid);
  assert_int_equal(WEXITSTATUS(status), 0);

  struct pollfd pfd = {.fd = result[0], .events = POLLIN};
  assert_int_equal(poll(&pfd, 1, 5000), 1);
  signed char rc = 0;
  assert_int_equal(read(result[0], &rc, 1), 1);
  assert_int_equal(rc, RW_ERR_CLOSED);
  close(result[0]);
  daemon_destroy(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_audio_lands_exactly_L_later),
      cmocka_unit_test(test_events_at_their_offsets),
      cmocka_unit_test(test_event_cap_shortens_blocks),
      cmocka_unit_test(test_garbage_records_dropped),
      cmocka_unit_test(test_skip_after_daemon_runs_ahead),
      cmocka_unit_test(test_idle_next_times_out),
      cmocka_unit_test(test_daemon_wakes_sleeping_worker),
      cmocka_unit_test(test_request_stop),
      cmocka_unit_test(test_misuse),
      cmocka_unit_test(test_messages),
      cmocka_unit_test(test_attach_over_socket),
      cmocka_unit_test(test_main_runs_until_sigterm),
      cmocka_unit_test(test_parent_departure_closes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
