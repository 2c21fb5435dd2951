/*
 * A takeover: one table entry, two generations of one slot (a seamless
 * restart or replacement). The new one starts on the input history the old
 * one's ring still holds, then gets every cycle's input and events as the
 * old one does, unheard and unread: its reading position is not published,
 * so its worker never counts itself late while it catches up. Once the new
 * worker is at least as far ahead as the old one (at most L: it has caught
 * up with everything it was given), and past the first frames of its output
 * (which the SDK fades in), the entry crossfades from the old output to the
 * new over takeover_crossfade frames and then plays the new one alone; the
 * control thread, told through takeover_phase, stops the old worker and
 * publishes a table without it.
 *
 * Both generations answer input position p - L at output position p of the
 * graph, each on its own timeline, so the crossfade mixes two answers to the
 * same input: a slot's output stays exactly L behind its input throughout.
 *
 * The crossfade is linear, out = old + (new - old) * g: a seamless restart
 * or an upgraded plugin plays the same sound as before, which a linear
 * crossfade keeps exactly (an impulse stays an impulse, a sine stays
 * continuous), where an equal-power one would swell by up to 3 dB between
 * two correlated signals. RT safe.
 */
#include "engine_internal.h"

/* Copies the history the old generation's input ring still holds into the new one's. */
static void begin(struct engine_slot *next, struct engine_slot *cur) {
  const struct shm_tl_geom *g = &next->tl.g, *f = &cur->tl.g;
  uint64_t h = next->takeover_history;
  /* A faulted generation was not fed: its ring holds no recent input. */
  if (atomic_load_explicit(&cur->faulted, memory_order_relaxed))
    h = 0;
  if (h > cur->tl.pos)
    h = cur->tl.pos;
  if (h > f->capacity)
    h = f->capacity;
  /* The new worker must be able to start a ring behind without losing input. */
  if (h > g->capacity - 2 * g->max_period)
    h = g->capacity - 2 * g->max_period;
  if (h > 0)
    shm_tl_daemon_copy_history(&next->tl, &cur->tl, (uint32_t)h);
  atomic_store_explicit(&next->takeover_history_frames, (uint32_t)h, memory_order_relaxed);
  next->to_begun = true;
  next->to_phase = ENGINE_TAKEOVER_WARMING;
}

/*
 * Whether the new generation can be heard from this cycle on: its worker
 * attached, past its own first output, and as far ahead as the old one (or
 * as L, which is as far as a worker gets) with this cycle's output in.
 */
static bool ready(const struct engine_slot *next, const struct engine_slot *cur, uint32_t n) {
  const uint32_t L = next->tl.g.latency;
  if (atomic_load_explicit(&next->faulted, memory_order_relaxed))
    return false;
  /* Relaxed: only a hint; the output positions below are what count. */
  if (atomic_load_explicit(&next->tl.g.ctl.w->worker_pid, memory_order_relaxed) == 0)
    return false;
  if (next->tl.pos < (uint64_t)L + RW_FADE_FRAMES)
    return false;
  int64_t fill = shm_tl_daemon_fill(&next->tl);
  if (fill < (int64_t)n || fill > (int64_t)L + n)
    return false;
  int64_t want =
      atomic_load_explicit(&cur->faulted, memory_order_relaxed) ? 0 : shm_tl_daemon_fill(&cur->tl);
  if (want < 0)
    want = 0;
  if (want > (int64_t)L)
    want = L;
  return fill >= want;
}

/* The crossfade starts at the first frame of this cycle. */
static void start_fade(const struct engine *e, struct engine_slot *next) {
  next->to_phase = ENGINE_TAKEOVER_FADING;
  next->to_faded = 0;
  /* From here on it plays: its output is read, its gaps are gaps, its run began long ago. */
  next->in_gap = false;
  next->fade_in_left = 0;
  next->bp_mix = 0;
  next->bp_run_start = next->tl.pos - RW_FADE_FRAMES;
  next->bp_gap_pos = 0;
  atomic_store_explicit(&next->takeover_frame, e->cycle_frame, memory_order_relaxed);
  atomic_store_explicit(&next->takeover_clocked, e->cycle_clocked, memory_order_relaxed);
  atomic_store_explicit(&next->takeover_position, next->tl.pos, memory_order_relaxed);
  /* Release: the frame and position above are in place before the phase says they are. */
  atomic_store_explicit(&next->takeover_phase, ENGINE_TAKEOVER_FADING, memory_order_release);
}

static void finish(struct engine_slot *next) {
  next->to_phase = ENGINE_TAKEOVER_DONE;
  atomic_store_explicit(&next->takeover_phase, ENGINE_TAKEOVER_DONE, memory_order_release);
}

/* out = old + (new - old) * g, g rising to 1 over the crossfade; the new output alone after it. */
static void crossfade(struct engine_slot *next, float *const *out, uint32_t n) {
  const uint32_t x = next->takeover_crossfade;
  const float *scratch = next->scratch;
  for (uint32_t c = 0; c < next->n_out; c++) {
    const float *nw = scratch + (size_t)c * RW_MAX_PERIOD;
    float *o = out[c];
    for (uint32_t i = 0; i < n; i++) {
      uint32_t done = next->to_faded + i + 1;
      if (done >= x)
        o[i] = nw[i];
      else
        o[i] = o[i] + (nw[i] - o[i]) * ((float)done / (float)x);
    }
  }
  next->to_faded = next->to_faded + n < x ? next->to_faded + n : x;
  if (next->to_faded >= x)
    finish(next);
}

void engine__takeover_cycle(struct engine *e, struct engine_slot *cur, struct engine_slot *next,
                            const struct engine_io *io, uint32_t n) {
  if (next->to_begun && next->to_phase == ENGINE_TAKEOVER_DONE) {
    engine__slot_cycle(next, io, n, NULL);
    return;
  }
  if (!next->to_begun)
    begin(next, cur);
  if (next->to_phase == ENGINE_TAKEOVER_WARMING && ready(next, cur, n))
    start_fade(e, next);
  if (next->to_phase == ENGINE_TAKEOVER_WARMING) {
    engine__slot_cycle(cur, io, n, NULL);
    engine__warm_cycle(next, io, n);
    return;
  }
  if (n > RW_MAX_PERIOD) {
    /* No room to hold both outputs (a period beyond any segment's): a cut. */
    finish(next);
    engine__slot_cycle(next, io, n, NULL);
    return;
  }
  float *into[RW_MAX_CHANNELS], *out[RW_MAX_CHANNELS];
  for (uint32_t c = 0; c < next->n_out; c++) {
    into[c] = next->scratch + (size_t)c * RW_MAX_PERIOD;
    out[c] = io->audio_buffer(next->out_ports[c], n);
  }
  engine__slot_cycle(cur, io, n, NULL);
  engine__slot_cycle(next, io, n, into);
  crossfade(next, out, n);
}
