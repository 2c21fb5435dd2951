/*
 * runway-bench-takeover: what bypass and a seamless replacement cost
 * runwayd's RT callback, per cycle of one stereo slot at 128 frames,
 * against the same slot alone measured in the same run (STYLE.md
 * guideline 12):
 *
 *   alone       one generation, its worker always ahead (the baseline)
 *   bypass      the same with --on-fault bypass, the worker playing: the
 *               cost of keeping the slot's own copy of its input
 *   bypass_gap  bypass standing in for a worker that has stopped
 *   warming     a new generation warming up beside it (fed, not read)
 *   fading      both read and crossfaded (a crossfade that never ends)
 * and, once per replacement, the input history copied into the new
 * generation at adoption (history_ns, for the old ring's 8192 frames).
 *
 * Real engine slots (memfd segments, L = 2400), fake ports, engine_process
 * with no RT thread (the table made current with engine_settle); workers are
 * played by storing their positions after every cycle, timed alone and
 * subtracted as bench_engine.c does. Minimum over repetitions; exit 0, or 1
 * when the benchmark itself is broken, 2 for a usage error.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"
#include "engine.h"
#include "plain_io.h"

#ifndef RUNWAY_BENCH_BUILD
#define RUNWAY_BENCH_BUILD "unknown"
#endif

#define FRAMES 128u
#define LATENCY 2400u
#define CHANNELS 2u
#define HISTORY 8192u

/* A port is its buffer (plain_io). */
struct port {
  float buf[FRAMES];
};

enum kind { ALONE, BYPASS, BYPASS_GAP, WARMING, FADING, KINDS };
static const char *const kind_names[KINDS] = {"alone", "bypass", "bypass_gap", "warming", "fading"};

struct bcase {
  enum kind kind;
  struct engine engine;
  struct port in[CHANNELS], out[CHANNELS];
  struct engine_slot *old, *fresh;
  struct engine_bypass *bp;
  bool feed_old;   /* the old worker keeps up (all but bypass_gap) */
  bool feed_fresh; /* the new one too (warming, fading) */
  struct rw_worker_control feed_ctl[2];
  uint64_t feed_pos;
};

static void die(const char *what) {
  fprintf(stderr, "runway-bench-takeover: %s\n", what);
  exit(1);
}

static struct engine_slot *make(struct bcase *b, uint32_t capacity) {
  struct proto_segment_params p = {
      .sample_rate = 48000,
      .n_inputs = CHANNELS,
      .n_outputs = CHANNELS,
      .latency = LATENCY,
      .max_period = FRAMES,
      .capacity = capacity,
      .generation = 1,
  };
  struct engine_slot *s;
  char err[256];
  if (engine_slot_create(&p, "bench", &s, err, sizeof(err)) != 0)
    die(err);
  for (uint32_t c = 0; c < CHANNELS; c++) {
    s->in_ports[c] = &b->in[c];
    s->out_ports[c] = &b->out[c];
  }
  return s;
}

/* A worker always ahead: everything consumed, L frames of output past it (release, as commit). */
static inline void ahead(struct rw_worker_control *ctl, uint64_t in_write) {
  atomic_store_explicit(&ctl->out_write.value, in_write + LATENCY, memory_order_release);
  atomic_store_explicit(&ctl->in_read.value, in_write, memory_order_release);
}

static void setup(struct bcase *b, enum kind kind) {
  memset(b, 0, sizeof(*b));
  b->kind = kind;
  engine_init(&b->engine);
  for (uint32_t c = 0; c < CHANNELS; c++)
    for (uint32_t i = 0; i < FRAMES; i++)
      b->in[c].buf[i] = (float)i * 0.001f;
  b->old = make(b, 0);
  if (kind == BYPASS || kind == BYPASS_GAP) {
    if (engine_bypass_create(CHANNELS, LATENCY, &b->bp) != 0)
      die("engine_bypass_create failed");
    engine_slot_set_bypass(b->old, b->bp);
  }
  b->feed_old = kind != BYPASS_GAP;
  if (engine_publish(&b->engine, &b->old, 1) != 0)
    die("engine_publish failed");
  engine_settle(&b->engine);
  /* A while alone first, so that the old ring holds history. */
  for (int i = 0; i < 200; i++) {
    engine_process(&b->engine, &plain_io, FRAMES);
    ahead(b->old->tl.g.ctl.w, b->old->tl.pos);
  }
  if (kind == WARMING || kind == FADING) {
    b->fresh = make(b, 65536);
    /* Fading: a crossfade that never ends. Warming: a worker never attached, so never ready. */
    if (engine_slot_prepare_takeover(b->fresh, HISTORY, kind == FADING ? UINT32_MAX : 0) != 0)
      die("engine_slot_prepare_takeover failed");
    if (kind == FADING)
      atomic_store(&b->fresh->tl.g.ctl.w->worker_pid, 1);
    b->feed_fresh = true;
    if (engine_publish_with(&b->engine, &b->old, &b->fresh, 1) != 0)
      die("engine_publish_with failed");
    engine_settle(&b->engine);
    for (int i = 0; i < 50; i++) {
      engine_process(&b->engine, &plain_io, FRAMES);
      ahead(b->old->tl.g.ctl.w, b->old->tl.pos);
      ahead(b->fresh->tl.g.ctl.w, b->fresh->tl.pos);
    }
    uint32_t want = kind == FADING ? ENGINE_TAKEOVER_FADING : ENGINE_TAKEOVER_WARMING;
    if (atomic_load(&b->fresh->takeover_phase) != want)
      die("the takeover is not in the phase to measure");
  }
}

static void teardown(struct bcase *b) {
  engine_destroy(&b->engine);
  engine_slot_unref(b->old);
  engine_slot_unref(b->fresh);
  engine_bypass_unref(b->bp);
}

static int64_t time_engine(void *ctx, uint64_t iters) {
  struct bcase *b = ctx;
  int64_t start = bench_now_ns();
  for (uint64_t i = 0; i < iters; i++) {
    engine_process(&b->engine, &plain_io, FRAMES);
    if (b->feed_old)
      ahead(b->old->tl.g.ctl.w, b->old->tl.pos);
    if (b->feed_fresh)
      ahead(b->fresh->tl.g.ctl.w, b->fresh->tl.pos);
  }
  return bench_now_ns() - start;
}

/* The feeding alone, on private control blocks: subtracted from the engine's time. */
static int64_t time_feed(void *ctx, uint64_t iters) {
  struct bcase *b = ctx;
  int64_t start = bench_now_ns();
  for (uint64_t i = 0; i < iters; i++) {
    b->feed_pos += FRAMES;
    if (b->feed_old)
      ahead(&b->feed_ctl[0], b->feed_pos);
    if (b->feed_fresh)
      ahead(&b->feed_ctl[1], b->feed_pos);
    bench_clobber();
  }
  return bench_now_ns() - start;
}

/* ns per cycle, minimum over reps. */
static double measure(struct bcase *b, int reps, int64_t min_ns) {
  uint64_t iters = bench_calibrate_with(time_engine, b, min_ns);
  double best = 0;
  for (int r = 0; r < reps; r++) {
    double e = (double)time_engine(b, iters) / (double)iters;
    double f = (double)time_feed(b, iters) / (double)iters;
    double v = e - f;
    if (r == 0 || v < best)
      best = v;
  }
  return best;
}

/* The history copy a takeover makes at adoption: 8192 stereo frames between two rings. */
static double measure_history(int reps) {
  struct bcase b;
  memset(&b, 0, sizeof(b));
  struct engine_slot *from = make(&b, 0), *to = make(&b, 65536);
  from->tl.pos = 100000; /* a position with a whole ring behind it */
  double best = 0;
  for (int r = 0; r < reps; r++) {
    to->tl.pos = 0;
    int64_t start = bench_now_ns();
    shm_tl_daemon_copy_history(&to->tl, &from->tl, HISTORY);
    double v = (double)(bench_now_ns() - start);
    if (r == 0 || v < best)
      best = v;
  }
  engine_slot_unref(from);
  engine_slot_unref(to);
  return best;
}

static void usage(FILE *f) {
  fprintf(f, "usage: runway-bench-takeover [--quick]\n"
             "The RT callback's cost per cycle of one stereo slot at 128 frames: alone, with\n"
             "bypass (playing, standing in), with a new generation warming up or crossfading\n"
             "beside it; and the history copied at a replacement. One JSON object per line.\n");
}

int main(int argc, char **argv) {
  bool quick, check;
  int rc = bench_options(argc, argv, "runway-bench-takeover", usage, &quick, &check);
  if (rc >= 0)
    return rc;
  const int reps = quick ? 3 : 7;
  const int64_t min_ns = quick ? 2000000 : 50000000;
  double ns[KINDS];
  for (int k = 0; k < KINDS; k++) {
    struct bcase b;
    setup(&b, (enum kind)k);
    ns[k] = measure(&b, reps, min_ns);
    if (k == BYPASS_GAP && atomic_load(&b.old->counters.bypass_frames) == 0)
      die("bypass never stood in");
    if (k == BYPASS && atomic_load(&b.old->counters.bypass_frames) > LATENCY + 64)
      die("bypass stood in for a worker that kept up");
    teardown(&b);
  }
  for (int k = 0; k < KINDS; k++)
    printf("{\"bench\":\"takeover\",\"case\":\"%s\",\"frames\":%u,\"channels\":%u,"
           "\"latency\":%u,\"cycle_ns\":%.1f,\"alone_ns\":%.1f,\"ratio\":%.3f,\"build\":\"%s\"}\n",
           kind_names[k], FRAMES, CHANNELS, LATENCY, ns[k], ns[ALONE], ns[k] / ns[ALONE],
           RUNWAY_BENCH_BUILD);
  double h = measure_history(reps * 3);
  printf("{\"bench\":\"takeover\",\"case\":\"history\",\"frames\":%u,\"channels\":%u,"
         "\"history_ns\":%.1f,\"alone_ns\":%.1f,\"ratio\":%.3f,\"build\":\"%s\"}\n",
         HISTORY, CHANNELS, h, ns[ALONE], h / ns[ALONE], RUNWAY_BENCH_BUILD);
  return fflush(stdout) == 0 ? 0 : 1;
}
