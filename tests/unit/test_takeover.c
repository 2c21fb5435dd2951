/*
 * The engine's bypass and takeover (daemon/rt/bypass.c, takeover.c), sample
 * by sample, with a fake audio server (port handles are buffers) and
 * workers played by the test through the segments' positions.
 *
 * Bypass: the slot's output is its input exactly L later wherever the
 * worker's output is missing (before the worker, in a stall, after a
 * fault); where the worker plays the same thing (a passthrough), the output
 * is exact at every sample through every edge, its own fade-in after a gap
 * included; where it plays something else, the edges are ramps of
 * RW_FADE_FRAMES that end (or begin) exactly at the gap.
 *
 * Takeover: the new generation starts on the old one's input history, warms
 * up unheard, switches only once its worker is attached and as far ahead,
 * crossfades linearly over exactly the frames asked for from the frame it
 * reports, and then plays alone; identical outputs cross exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "plain_io.h"

#define RATE 48000u
#define PERIOD 64u
#define L 256u
#define F RW_FADE_FRAMES

/* A port is its buffer (plain_io). */
struct port {
  float buf[PERIOD];
};

/* The slot's input at graph frame f: never 0, different at every frame. */
static float input_at(uint64_t f) { return 1.0f + (float)(f % 113) * 0.01f; }

struct rig {
  struct engine engine;
  struct port in, out;
  int key;
  uint64_t frame; /* graph frames played */
};

static struct engine_slot *make_gen(struct rig *r, uint32_t capacity) {
  struct proto_segment_params p = {
      .sample_rate = RATE,
      .n_inputs = 1,
      .n_outputs = 1,
      .latency = L,
      .max_period = PERIOD,
      .capacity = capacity,
      .generation = 1,
  };
  struct engine_slot *s;
  char err[256];
  assert_int_equal(engine_slot_create(&p, "t", &s, err, sizeof(err)), 0);
  s->in_ports[0] = &r->in;
  s->out_ports[0] = &r->out;
  s->key = &r->key;
  return s;
}

/*
 * A worker: answers input position p with gain * input at output p + L, for
 * the input written so far (at most `upto` positions of input, when not 0),
 * fading in its first F frames after a start or a skip as the SDK does.
 */
struct worker {
  struct engine_slot *g;
  float gain;
  uint64_t fade_from; /* input position of its first block, UINT64_MAX: no fade */
};

static void worker_attach(struct worker *w, struct engine_slot *g, float gain) {
  w->g = g;
  w->gain = gain;
  w->fade_from = atomic_load(&g->tl.g.ctl.w->in_read.value);
  atomic_store(&g->tl.g.ctl.w->worker_pid, 4242);
}

static void worker_run(struct worker *w, uint64_t upto) {
  const struct shm_tl_geom *g = &w->g->tl.g;
  const struct shm_ctl *ctl = &g->ctl;
  uint64_t in_write = atomic_load(&ctl->d->in_write.value);
  uint64_t in_read = atomic_load(&ctl->w->in_read.value);
  uint32_t mask = g->capacity - 1;
  if (upto != 0 && in_write > upto)
    in_write = upto;
  for (uint64_t p = in_read; p < in_write; p++) {
    float v = w->gain * g->in[p & mask];
    if (w->fade_from != UINT64_MAX && p - w->fade_from < F)
      v *= (float)(p - w->fade_from + 1) / (float)F;
    g->out[(p + L) & mask] = v;
  }
  if (in_write > in_read) {
    atomic_store(&ctl->w->out_write.value, in_write + L);
    atomic_store(&ctl->w->in_read.value, in_write);
  }
}

/* A late worker resumes where the reader needs output next (shm_tl_worker_plan). */
static void worker_resume_late(struct worker *w) {
  const struct shm_ctl *ctl = &w->g->tl.g.ctl;
  uint64_t out_read = atomic_load(&ctl->d->out_read.value);
  uint64_t target = out_read - L;
  atomic_store(&ctl->w->out_write.value, out_read);
  atomic_store(&ctl->w->in_read.value, target);
  w->fade_from = target;
}

/* One cycle; the output buffer is left for the caller to check. */
static void cycle(struct rig *r) {
  for (uint32_t k = 0; k < PERIOD; k++)
    r->in.buf[k] = input_at(r->frame + k);
  memset(r->out.buf, 0xff, sizeof(r->out.buf)); /* NaN: every sample must be written */
  engine_process_at(&r->engine, &plain_io, PERIOD, (uint32_t)r->frame);
  r->frame += PERIOD;
}

/* The input L frames before graph frame f (0 before the slot existed). */
static float dry(uint64_t f) { return f >= L ? input_at(f - L) : 0.0f; }

static void expect_exact(const struct rig *r, float gain, const char *what) {
  uint64_t f0 = r->frame - PERIOD;
  for (uint32_t k = 0; k < PERIOD; k++) {
    float want = gain * dry(f0 + k);
    if (r->out.buf[k] != want)
      fail_msg("%s: frame %llu: %.9g, want %.9g", what, (unsigned long long)(f0 + k),
               (double)r->out.buf[k], (double)want);
  }
}

/* ---- bypass ------------------------------------------------------------------------------ */

static struct engine_bypass *bypass_for(struct engine_slot *g) {
  struct engine_bypass *bp;
  assert_int_equal(engine_bypass_create(1, L, &bp), 0);
  engine_slot_set_bypass(g, bp);
  return bp;
}

/* A passthrough with bypass: the output is exactly the input L later, whatever the worker does. */
static void test_bypass_exact_through_every_edge(void **state) {
  (void)state;
  struct rig r = {0};
  engine_init(&r.engine);
  struct engine_slot *g = make_gen(&r, 0);
  struct engine_bypass *bp = bypass_for(g);
  assert_int_equal(engine_publish(&r.engine, &g, 1), 0);
  struct worker w;

  /* No worker yet: bypass alone (and silence before the slot had input). */
  for (int i = 0; i < 10; i++) {
    cycle(&r);
    expect_exact(&r, 1.0f, "before the worker");
  }
  assert_int_equal(atomic_load(&g->drained), 1);
  /* The worker attaches late and starts where the reader is; its first frames fade in. */
  worker_attach(&w, g, 1.0f);
  worker_resume_late(&w);
  for (int i = 0; i < 30; i++) {
    worker_run(&w, 0);
    cycle(&r);
    expect_exact(&r, 1.0f, "worker joins");
  }
  assert_int_equal(atomic_load(&g->drained), 0);
  /* A stall longer than L, then a late resume. */
  for (int i = 0; i < 12; i++) {
    cycle(&r);
    expect_exact(&r, 1.0f, "stalled");
  }
  assert_int_equal(atomic_load(&g->drained), 1);
  worker_resume_late(&w);
  for (int i = 0; i < 30; i++) {
    worker_run(&w, 0);
    cycle(&r);
    expect_exact(&r, 1.0f, "resumed");
  }
  assert_true(atomic_load(&g->counters.bypass_frames) > 0);
  assert_int_equal(atomic_load(&g->counters.underruns), 0);

  /* A fault: bypass alone once the worker's tail has faded (exact for a passthrough). */
  atomic_store(&g->faulted, 1);
  for (int i = 0; i < 4; i++)
    cycle(&r);
  expect_exact(&r, 1.0f, "faulted");

  engine_destroy(&r.engine);
  engine_slot_unref(g);
  engine_bypass_unref(bp);
}

/*
 * A worker at half gain: from it 0.5 x, from bypass 1 x; into the gap the
 * ramp ends exactly at its first missing frame, out of it bypass holds F
 * frames past the worker's return and then ramps down over F.
 */
static void test_bypass_edges(void **state) {
  (void)state;
  struct rig r = {0};
  engine_init(&r.engine);
  struct engine_slot *g = make_gen(&r, 0);
  struct engine_bypass *bp = bypass_for(g);
  assert_int_equal(engine_publish(&r.engine, &g, 1), 0);
  struct worker w;
  worker_attach(&w, g, 0.5f);
  for (int i = 0; i < 20; i++) {
    worker_run(&w, 0);
    cycle(&r);
  }
  expect_exact(&r, 0.5f, "the worker plays");

  /* The worker stops with its output reaching frame `end` of the graph. */
  uint64_t end = atomic_load(&g->tl.g.ctl.w->out_write.value) + (r.frame - g->tl.pos);
  float played[40 * PERIOD];
  uint64_t first = r.frame;
  for (int i = 0; i < 40; i++) {
    cycle(&r);
    memcpy(played + (size_t)i * PERIOD, r.out.buf, sizeof(r.out.buf));
  }
  for (uint64_t f = first; f < first + 40 * PERIOD; f++) {
    float v = played[f - first], d = dry(f);
    float m = f >= end ? 1.0f : f + F < end + 1 ? 0.0f : (float)(F - (end - f)) / F;
    float want = m == 0.0f ? 0.5f * d : m == 1.0f ? d : 0.5f * d + (d - 0.5f * d) * m;
    if (v != want)
      fail_msg("into the gap: frame %llu (gap at %llu): %.9g, want %.9g", (unsigned long long)f,
               (unsigned long long)end, (double)v, (double)want);
  }
  assert_int_equal(atomic_load(&g->counters.underruns), 0);

  /* It comes back: bypass for the F frames of its fade-in, then F frames of ramp. */
  worker_resume_late(&w);
  uint64_t back = r.frame;
  worker_run(&w, 0);
  first = r.frame;
  for (int i = 0; i < 10; i++) {
    cycle(&r);
    memcpy(played + (size_t)i * PERIOD, r.out.buf, sizeof(r.out.buf));
    worker_run(&w, 0);
  }
  for (uint64_t f = first; f < first + 10 * PERIOD; f++) {
    float v = played[f - first], d = dry(f);
    uint64_t since = f - back;
    float m = since < F ? 1.0f : since >= 2 * F - 1 ? 0.0f : (float)(2 * F - 1 - since) / F;
    float want = m == 0.0f ? 0.5f * d : m == 1.0f ? d : 0.5f * d + (d - 0.5f * d) * m;
    if (v != want)
      fail_msg("out of the gap: frame %llu (back at %llu): %.9g, want %.9g", (unsigned long long)f,
               (unsigned long long)back, (double)v, (double)want);
  }
  engine_destroy(&r.engine);
  engine_slot_unref(g);
  engine_bypass_unref(bp);
}

/* A cycle that comes `skip` graph frames after the last one (the server skipped us). */
static void cycle_after_gap(struct rig *r, uint64_t skip) {
  r->frame += skip;
  cycle(r);
}

/* The input L frames before graph frame f, or silence where the graph skipped [s0, s1). */
static float dry_gapped(uint64_t f, uint64_t s0, uint64_t s1) {
  return f >= L && f - L >= s0 && f - L < s1 ? 0.0f : dry(f);
}

static void expect_gapped(const struct rig *r, uint64_t s0, uint64_t s1, const char *what) {
  uint64_t f0 = r->frame - PERIOD;
  for (uint32_t k = 0; k < PERIOD; k++) {
    float want = dry_gapped(f0 + k, s0, s1);
    if (r->out.buf[k] != want)
      fail_msg("%s: frame %llu: %.9g, want %.9g", what, (unsigned long long)(f0 + k),
               (double)r->out.buf[k], (double)want);
  }
}

/* Floats of the bypass ring that differ from before. */
static size_t ring_changes(const struct engine_bypass *bp, const float *before) {
  size_t n = 0;
  for (size_t i = 0; i < (size_t)bp->n_ch * bp->capacity; i++)
    n += memcmp(&bp->ring[i], &before[i], sizeof(float)) != 0;
  return n;
}

/*
 * A gap in the graph costs the bypass ring no clearing: the cycle after a
 * gap of ten rings writes its own PERIOD frames and nothing else, the
 * segment's input ring is not written at all, and the cycle counts in the
 * engine's statistics like any other. What the graph skipped still plays as
 * silence, exactly L later, and the input before and after it exactly.
 */
static void test_bypass_gap_is_bounded(void **state) {
  (void)state;
  struct rig r = {0};
  engine_init(&r.engine);
  struct engine_slot *g = make_gen(&r, 0);
  struct engine_bypass *bp = bypass_for(g);
  assert_int_equal(engine_publish(&r.engine, &g, 1), 0);
  const size_t ring_floats = (size_t)bp->n_ch * bp->capacity;
  float *before = malloc(ring_floats * sizeof(float));
  float *seg_before = malloc((size_t)g->tl.g.capacity * sizeof(float));
  assert_non_null(before);
  assert_non_null(seg_before);

  for (int i = 0; i < 3 * (int)(bp->capacity / PERIOD); i++) {
    cycle(&r);
    expect_exact(&r, 1.0f, "before the gaps");
  }

  /* A short gap (under L): the input before it still plays, the gap as silence. */
  uint64_t s0 = r.frame, s1 = s0 + 3 * PERIOD;
  cycle_after_gap(&r, s1 - s0);
  for (uint64_t end = s1 + L + 2 * PERIOD; r.frame < end;) {
    expect_gapped(&r, s0, s1, "a short gap");
    cycle(&r);
  }

  /* A gap of ten bypass rings: one cycle's writes, no more. */
  memcpy(before, bp->ring, ring_floats * sizeof(float));
  memcpy(seg_before, g->tl.g.in, (size_t)g->tl.g.capacity * sizeof(float));
  uint64_t cycles = atomic_load(&r.engine.stats.cycles);
  uint64_t ns = atomic_load(&r.engine.stats.cycle_ns_sum);
  s0 = r.frame;
  s1 = s0 + 10 * (uint64_t)bp->capacity;
  cycle_after_gap(&r, s1 - s0);
  assert_true(ring_changes(bp, before) <= PERIOD);
  /* The segment's input ring: this cycle's PERIOD frames only (its gap is published, not cleared).
   */
  size_t seg_changes = 0;
  for (size_t i = 0; i < g->tl.g.capacity; i++)
    seg_changes += memcmp(&g->tl.g.in[i], &seg_before[i], sizeof(float)) != 0;
  assert_true(seg_changes <= PERIOD);
  assert_int_equal(atomic_load(&r.engine.stats.cycles), cycles + 1);
  assert_true(atomic_load(&r.engine.stats.cycle_ns_sum) > ns);
  assert_int_equal(atomic_load(&r.engine.stats.skipped_frames), (s1 - s0) + 3 * PERIOD);
  for (uint64_t end = s1 + L + 2 * PERIOD;;) {
    expect_gapped(&r, s0, s1, "a long gap");
    if (r.frame >= end)
      break;
    cycle(&r);
  }

  /*
   * Two gaps closer than L: the second extends the first, so the cycle
   * between them plays as silence too (as a worker reads the segment's
   * input gap); everything after them exactly.
   */
  s0 = r.frame;
  cycle_after_gap(&r, PERIOD);
  cycle_after_gap(&r, PERIOD);
  s1 = r.frame - PERIOD;
  for (uint64_t end = s1 + L + 2 * PERIOD;;) {
    expect_gapped(&r, s0, s1, "two gaps");
    if (r.frame >= end)
      break;
    cycle(&r);
  }

  free(before);
  free(seg_before);
  engine_destroy(&r.engine);
  engine_slot_unref(g);
  engine_bypass_unref(bp);
}

/* ---- takeover ---------------------------------------------------------------------------- */

struct duo {
  struct rig r;
  struct engine_slot *old, *fresh;
  struct worker wo, wn;
};

/* An old generation that has played a while at old_gain, and a new one prepared beside it. */
static void duo_init(struct duo *d, float old_gain, uint32_t history, uint32_t crossfade) {
  memset(d, 0, sizeof(*d));
  engine_init(&d->r.engine);
  d->old = make_gen(&d->r, 0);
  assert_int_equal(engine_publish(&d->r.engine, &d->old, 1), 0);
  worker_attach(&d->wo, d->old, old_gain);
  d->wo.fade_from = UINT64_MAX;
  for (int i = 0; i < 40; i++) {
    worker_run(&d->wo, 0);
    cycle(&d->r);
  }
  expect_exact(&d->r, old_gain, "the old generation plays");
  d->fresh = make_gen(&d->r, 4 * d->old->tl.g.capacity);
  assert_int_equal(engine_slot_prepare_takeover(d->fresh, history, crossfade), 0);
  struct engine_slot *none = NULL;
  (void)none;
  assert_int_equal(engine_publish_with(&d->r.engine, &d->old, &d->fresh, 1), 0);
}

static void duo_destroy(struct duo *d) {
  engine_destroy(&d->r.engine);
  engine_slot_unref(d->old);
  engine_slot_unref(d->fresh);
}

/* The history: the old ring's last frames, at the start of the new timeline. */
static void test_takeover_history(void **state) {
  (void)state;
  struct duo d;
  duo_init(&d, 1.0f, 1000, 0);
  uint64_t old_pos = d.old->tl.pos;
  cycle(&d.r); /* adopts the table: the history is copied before this cycle's input */
  uint32_t h = atomic_load(&d.fresh->takeover_history_frames);
  assert_int_equal(h, 1000);
  const struct shm_tl_geom *g = &d.fresh->tl.g;
  for (uint32_t p = 0; p < h; p++) {
    float want = input_at(old_pos - h + p); /* the old timeline started at graph frame 0 */
    assert_true(g->in[p & (g->capacity - 1)] == want);
  }
  /* Then the same input as the old one, at the matching position. */
  for (uint32_t k = 0; k < PERIOD; k++)
    assert_true(g->in[(h + k) & (g->capacity - 1)] == input_at(old_pos + k));
  /* Its reading position is not published: its worker cannot count itself late. */
  assert_int_equal(atomic_load(&g->ctl.d->out_read.value), 0);
  assert_int_equal(atomic_load(&d.fresh->takeover_phase), ENGINE_TAKEOVER_WARMING);
  duo_destroy(&d);
}

/*
 * From a passthrough to a half gain over a crossfade of 200 frames: before,
 * the old output alone; not before the new worker attached and caught up;
 * from the reported frame on, old + (new - old) * (i + 1) / 200; after, the
 * new one alone. No sample of the new worker's own fade-in is heard.
 */
static void test_takeover_crossfade(void **state) {
  (void)state;
  const uint32_t x = 200;
  struct duo d;
  duo_init(&d, 1.0f, 2000, x);
  /* Not attached: it never switches, however long. */
  for (int i = 0; i < 20; i++) {
    worker_run(&d.wo, 0);
    cycle(&d.r);
    expect_exact(&d.r, 1.0f, "beside a new generation without worker");
  }
  assert_int_equal(atomic_load(&d.fresh->takeover_phase), ENGINE_TAKEOVER_WARMING);
  /* Attached and working through its history, not caught up yet: still the old one. */
  worker_attach(&d.wn, d.fresh, 0.5f);
  worker_run(&d.wn, 1000);
  worker_run(&d.wo, 0);
  cycle(&d.r);
  expect_exact(&d.r, 1.0f, "the new worker is behind");
  assert_int_equal(atomic_load(&d.fresh->takeover_phase), ENGINE_TAKEOVER_WARMING);

  /* Caught up: the crossfade starts at the next cycle, at the frame it reports. */
  uint64_t start = d.r.frame;
  float played[12 * PERIOD];
  for (int i = 0; i < 12; i++) {
    worker_run(&d.wn, 0);
    worker_run(&d.wo, 0);
    cycle(&d.r);
    memcpy(played + (size_t)i * PERIOD, d.r.out.buf, sizeof(d.r.out.buf));
  }
  assert_int_equal(atomic_load(&d.fresh->takeover_phase), ENGINE_TAKEOVER_DONE);
  assert_int_equal(atomic_load(&d.fresh->takeover_clocked), 1);
  assert_int_equal(atomic_load(&d.fresh->takeover_frame), (uint32_t)start);
  for (uint64_t f = start; f < start + 12 * PERIOD; f++) {
    float a = dry(f), b = 0.5f * dry(f), v = played[f - start];
    uint64_t i = f - start;
    float want = i + 1 >= x ? b : a + (b - a) * ((float)(i + 1) / (float)x);
    if (v != want)
      fail_msg("crossfade: frame %llu (+%llu): %.9g, want %.9g", (unsigned long long)f,
               (unsigned long long)i, (double)v, (double)want);
  }
  assert_int_equal(atomic_load(&d.old->counters.underruns), 0);
  assert_int_equal(atomic_load(&d.fresh->counters.underruns), 0);
  duo_destroy(&d);
}

/* The same sound on both sides crosses exactly: a restart of the same plugin is inaudible. */
static void test_takeover_identical_is_exact(void **state) {
  (void)state;
  struct duo d;
  duo_init(&d, 1.0f, 2000, 300);
  worker_attach(&d.wn, d.fresh, 1.0f);
  for (int i = 0; i < 30; i++) {
    worker_run(&d.wn, 0);
    worker_run(&d.wo, 0);
    cycle(&d.r);
    expect_exact(&d.r, 1.0f, "an identical takeover");
  }
  assert_int_equal(atomic_load(&d.fresh->takeover_phase), ENGINE_TAKEOVER_DONE);
  /* The old generation is no longer fed once the new one plays alone. */
  uint64_t old_in = atomic_load(&d.old->tl.g.ctl.d->in_write.value);
  worker_run(&d.wn, 0);
  cycle(&d.r);
  expect_exact(&d.r, 1.0f, "after the takeover");
  assert_int_equal(atomic_load(&d.old->tl.g.ctl.d->in_write.value), old_in);
  duo_destroy(&d);
}

/* An old worker that died: the new one takes over as soon as it has output, not later. */
static void test_takeover_from_a_dead_worker(void **state) {
  (void)state;
  struct duo d;
  duo_init(&d, 1.0f, 2000, 0);
  /* The old worker is gone: its output runs out within L. */
  for (int i = 0; i < 8; i++)
    cycle(&d.r);
  worker_attach(&d.wn, d.fresh, 1.0f);
  worker_run(&d.wn, 0);
  cycle(&d.r);
  assert_int_equal(atomic_load(&d.fresh->takeover_phase), ENGINE_TAKEOVER_DONE);
  expect_exact(&d.r, 1.0f, "the new worker plays at once");
  duo_destroy(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bypass_exact_through_every_edge),
      cmocka_unit_test(test_bypass_edges),
      cmocka_unit_test(test_bypass_gap_is_bounded),
      cmocka_unit_test(test_takeover_history),
      cmocka_unit_test(test_takeover_crossfade),
      cmocka_unit_test(test_takeover_identical_is_exact),
      cmocka_unit_test(test_takeover_from_a_dead_worker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
