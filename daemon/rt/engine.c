#include "engine.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "engine_internal.h"
#include "fpu.h"
#include "wake.h"

#define counter_add engine__counter_add

/*
 * The cycle's own duration, for rt_cycle_ns_*. On x86 with an invariant TSC
 * the time stamp counter (a few ns) replaces two clock_gettime calls (about
 * 40 ns each on a VM), calibrated once at start; elsewhere it is the clock.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static double tsc_ns_per_tick;

static void cycle_clock_calibrate(void) {
  /* Only when the kernel itself trusts the TSC as its clock (invariant, synchronised). */
  char src[32] = "";
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f != NULL) {
    if (fgets(src, sizeof(src), f) == NULL)
      src[0] = '\0';
    fclose(f);
  }
  if (strncmp(src, "tsc", 3) != 0)
    return;
  uint64_t t0 = base_mono_ns(), c0 = __rdtsc();
  struct timespec nap = {0, 5 * 1000 * 1000};
  nanosleep(&nap, NULL);
  uint64_t t1 = base_mono_ns(), c1 = __rdtsc();
  tsc_ns_per_tick = c1 > c0 ? (double)(t1 - t0) / (double)(c1 - c0) : 0.0;
}

static inline uint64_t cycle_clock(void) {
  return tsc_ns_per_tick > 0.0 ? __rdtsc() : base_mono_ns();
}

static inline uint64_t cycle_clock_ns(uint64_t ticks) {
  return tsc_ns_per_tick > 0.0 ? (uint64_t)((double)ticks * tsc_ns_per_tick) : ticks;
}

static inline uint64_t cycle_clock_second(void) {
  return tsc_ns_per_tick > 0.0 ? (uint64_t)(1e9 / tsc_ns_per_tick) : 1000000000u;
}
#else
static void cycle_clock_calibrate(void) {}
static inline uint64_t cycle_clock(void) { return base_mono_ns(); }
static inline uint64_t cycle_clock_ns(uint64_t ticks) { return ticks; }
static inline uint64_t cycle_clock_second(void) { return 1000000000u; }
#endif

void engine_init(struct engine *e) {
  memset(e, 0, sizeof(*e));
  cycle_clock_calibrate();
  shm_handover_init(&e->handover);
  /*
   * The RT-rules checker (tests/integration) is preloaded into runwayd and
   * defines these; in production they are absent and the hooks stay NULL.
   */
  e->hooks.enter = (void (*)(void))dlsym(RTLD_DEFAULT, "runway_rtcheck_enter");
  e->hooks.leave = (void (*)(void))dlsym(RTLD_DEFAULT, "runway_rtcheck_leave");
  if (e->hooks.enter == NULL || e->hooks.leave == NULL)
    e->hooks.enter = e->hooks.leave = NULL;
}

/* ---- slots and tables (control thread) ---------------------------------- */

int engine_slot_create(const struct proto_segment_params *params, const char *name,
                       struct engine_slot **out, char *err, size_t errlen) {
  struct engine_slot *s = calloc(1, sizeof(*s));
  int rc;
  if (s == NULL)
    return -ENOMEM;
  s->refs = 1;
  rc = shm_segment_create(params, name, &s->segment, err, errlen);
  if (rc != 0)
    goto fail;
  rc = shm_queue_init(&s->commands, sizeof(struct engine_cmd), 256);
  if (rc != 0)
    goto fail_segment;

  const struct rw_segment_header *h = &s->segment.layout;
  const struct shm_ctl *ctl = &s->segment.ctl;
  s->n_in = h->n_inputs;
  s->n_out = h->n_outputs;
  shm_tl_daemon_init(&s->tl, &s->segment);
  shm_spsc_producer_init(&s->events, &ctl->d->ev_write.value, &ctl->w->ev_read.value,
                         s->segment.events, sizeof(struct rw_record), h->event_capacity, 0);
  shm_spsc_consumer_init(&s->messages, &ctl->w->msg_write.value, &ctl->d->msg_read.value,
                         s->segment.messages, sizeof(struct rw_record), h->message_capacity, 0);
  atomic_init(&s->counters.headroom_min_frames, INT64_MAX);
  atomic_init(&s->counters.lead_min_last, INT64_MAX);
  atomic_init(&s->counters.lead_min_now, INT64_MAX);
  s->bp_run_start = ENGINE_NO_RUN;
  *out = s;
  return 0;

fail_segment:
  shm_segment_release(&s->segment);
fail:
  free(s);
  return rc;
}

void engine_slot_ref(struct engine_slot *slot) { slot->refs++; }

void engine_slot_unref(struct engine_slot *slot) {
  if (slot == NULL || --slot->refs > 0)
    return;
  if (slot->release != NULL)
    slot->release(slot);
  shm_queue_destroy(&slot->commands);
  shm_segment_release(&slot->segment);
  engine_bypass_unref(slot->bypass);
  free(slot->scratch);
  free(slot);
}

int engine_slot_prepare_takeover(struct engine_slot *slot, uint32_t history, uint32_t crossfade) {
  if (slot->scratch == NULL && slot->n_out > 0) {
    slot->scratch = calloc((size_t)slot->n_out * RW_MAX_PERIOD, sizeof(float));
    if (slot->scratch == NULL)
      return -ENOMEM;
  }
  slot->takeover_history = history;
  slot->takeover_crossfade = crossfade;
  return 0;
}

void engine_slot_set_bypass(struct engine_slot *slot, struct engine_bypass *bp) {
  engine_bypass_ref(bp);
  engine_bypass_unref(slot->bypass);
  slot->bypass = bp;
  /* A generation starts with nothing of its worker's to play: bypass alone. */
  slot->bp_mix = RW_FADE_FRAMES;
}

static void state_free(struct engine_state *st) {
  if (st == NULL)
    return;
  for (uint32_t i = 0; i < st->n_slots; i++) {
    engine_slot_unref(st->slots[i]);
    engine_slot_unref(st->incoming[i]);
  }
  free(st);
}

int engine_publish(struct engine *e, struct engine_slot *const *slots, uint32_t n_slots) {
  return engine_publish_with(e, slots, NULL, n_slots);
}

int engine_publish_with(struct engine *e, struct engine_slot *const *slots,
                        struct engine_slot *const *incoming, uint32_t n_slots) {
  if (n_slots > ENGINE_MAX_SLOTS)
    return -E2BIG;
  struct engine_state *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return -ENOMEM;
  st->n_slots = n_slots;
  for (uint32_t i = 0; i < n_slots; i++) {
    st->slots[i] = slots[i];
    engine_slot_ref(slots[i]);
    if (incoming != NULL && incoming[i] != NULL) {
      st->incoming[i] = incoming[i];
      engine_slot_ref(incoming[i]);
    }
  }
  struct engine_state *displaced = shm_handover_offer(&e->handover, st);
  if (displaced != NULL) {
    /* Offered before and never adopted: the RT thread has not seen it. */
    state_free(displaced);
    e->in_flight--;
  }
  e->in_flight++;
  return 0;
}

uint32_t engine_reclaim(struct engine *e) {
  struct engine_state *back = shm_handover_collect(&e->handover);
  if (back != NULL) {
    state_free(back);
    e->in_flight--;
  }
  /*
   * The table the RT thread uses now never comes back on its own; anything
   * beyond it, or an offer not yet adopted, is still moving.
   */
  if (shm_handover_pending(&e->handover))
    return e->in_flight;
  return e->in_flight > 1 ? e->in_flight - 1 : 0;
}

void engine_settle(struct engine *e) {
  struct engine_state *back = shm_handover_collect(&e->handover);
  if (back != NULL) {
    state_free(back);
    e->in_flight--;
  }
  struct engine_state *pending = shm_handover_offer(&e->handover, NULL);
  if (pending != NULL) {
    if (e->rt_state != NULL) {
      state_free(e->rt_state);
      e->in_flight--;
    }
    e->rt_state = pending;
  }
}

void engine_destroy(struct engine *e) {
  engine_settle(e);
  state_free(e->rt_state);
  e->rt_state = NULL;
  e->in_flight = 0;
}

int engine_slot_command(struct engine_slot *slot, const struct engine_cmd *cmd) {
  return shm_spsc_push(&slot->commands.tx, cmd);
}

/* ---- the RT path ---------------------------------------------------------- */

static void slot_fault(struct engine_slot *s) {
  counter_add(&s->counters.faults, 1);
  atomic_store_explicit(&s->faulted, 1, memory_order_release);
}

/*
 * Parameter commands go into the event ring stamped with the cycle's start,
 * so they take effect in the worker exactly L later, like MIDI. A command
 * that does not fit stays queued for the next cycle rather than being lost.
 */
static void forward_commands(struct engine_slot *s, uint64_t t) {
  struct engine_cmd cmd;
  while (shm_spsc_peek(&s->commands.rx, &cmd) == 1) {
    if (cmd.type == ENGINE_CMD_PARAM) {
      struct rw_record ev = {.time = t, .type = RW_EVENT_PARAM};
      ev.u.param.id = cmd.param_id;
      ev.u.param.value = cmd.value;
      int rc = shm_spsc_push(&s->events, &ev);
      if (rc == -ENOSPC)
        return;
      if (rc < 0) {
        slot_fault(s);
        return;
      }
    }
    shm_spsc_pop(&s->commands.rx, NULL);
  }
}

static void forward_midi(struct engine_slot *s, const struct engine_io *io, uint32_t n,
                         uint32_t played, uint64_t t) {
  void *buf = io->midi_buffer(s->midi_port, n);
  if (buf == NULL)
    return;
  uint32_t count = io->midi_count(buf);
  for (uint32_t i = 0; i < count; i++) {
    struct engine_midi m;
    if (io->midi_get(buf, i, &m) != 0)
      continue;
    if (m.size < 1 || m.size > 3 || m.data == NULL) {
      counter_add(&s->counters.events_dropped, 1); /* SysEx and empty events are not forwarded */
      continue;
    }
    uint32_t frame = m.frame < n ? m.frame : n - 1;
    /* Events in frames a late run already played go out with the first frame left. */
    struct rw_record ev = {.time = t + (frame > played ? frame - played : 0),
                           .type = RW_EVENT_MIDI};
    ev.size = (uint16_t)m.size;
    memcpy(ev.u.midi, m.data, m.size);
    int rc = shm_spsc_push(&s->events, &ev);
    if (rc == -ENOSPC) {
      counter_add(&s->counters.events_dropped, 1);
    } else if (rc < 0) {
      slot_fault(s);
      return;
    }
  }
}

/*
 * Replaces NaN and infinities (a worker's bug must not reach the graph) and
 * returns how many. Branch-free over blocks of 8 so the compiler vectorises
 * it: the scalar form was most of a slot's cost per cycle.
 */
static inline uint32_t nonfinite_mask(uint32_t bits, uint32_t *count) {
  uint32_t bad = (bits & 0x7f800000u) == 0x7f800000u;
  *count += bad;
  return bits & (bad - 1u); /* 0 when bad, the sample unchanged otherwise */
}

static uint32_t sanitize(float *buf, uint32_t n) {
  uint32_t bad = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint32_t b[8], k = 0;
    memcpy(b, &buf[i], sizeof(b));
    for (int j = 0; j < 8; j++)
      b[j] = nonfinite_mask(b[j], &k);
    memcpy(&buf[i], b, sizeof(b));
    bad += k;
  }
  for (; i < n; i++) {
    uint32_t b;
    memcpy(&b, &buf[i], sizeof(b));
    b = nonfinite_mask(b, &bad);
    memcpy(&buf[i], &b, sizeof(b));
  }
  return bad;
}

/*
 * Shapes [0, valid) worker frames followed by [valid, k) missing ones: after
 * a gap the worker's audio fades in, and a gap starts with the last sample
 * played fading to zero instead of a step. Frames themselves are never moved.
 */
static void shape_edges(struct engine_slot *s, float *const *dst, uint32_t valid, uint32_t k) {
  const float step = 1.0f / RW_FADE_FRAMES;
  if (valid > 0) {
    if (s->in_gap) {
      s->in_gap = false;
      s->fade_in_left = RW_FADE_FRAMES;
    }
    if (s->fade_in_left > 0) {
      uint32_t m = valid < s->fade_in_left ? valid : s->fade_in_left;
      uint32_t done = RW_FADE_FRAMES - s->fade_in_left;
      for (uint32_t c = 0; c < s->n_out; c++)
        for (uint32_t i = 0; i < m; i++)
          dst[c][i] *= (float)(done + i + 1) * step;
      s->fade_in_left -= m;
    }
    for (uint32_t c = 0; c < s->n_out; c++)
      s->tail[c] = dst[c][valid - 1];
  }
  if (valid < k) {
    if (!s->in_gap) {
      s->in_gap = true;
      s->fade_out_pos = 0;
      s->fade_in_left = 0;
    }
    if (s->fade_out_pos < RW_FADE_FRAMES) {
      uint32_t left = RW_FADE_FRAMES - s->fade_out_pos;
      uint32_t m = k - valid < left ? k - valid : left;
      for (uint32_t c = 0; c < s->n_out; c++)
        for (uint32_t i = 0; i < m; i++)
          dst[c][valid + i] = s->tail[c] * (1.0f - (float)(s->fade_out_pos + i + 1) * step);
      s->fade_out_pos += m;
    }
  }
}

/* Silence played in a cycle: the worker's fault once it attached, else it has no worker yet. */
static void count_silence(struct engine_slot *s, uint32_t missing) {
  if (!s->worker_seen) {
    counter_add(&s->counters.no_worker_frames, missing);
    return;
  }
  counter_add(&s->counters.underruns, 1);
  counter_add(&s->counters.underrun_frames, missing);
}

/*
 * Frames [from, to) of the cycle are positions a late run of the slot's node
 * played already (engine_process_slot): silence after the fade-out of the
 * last sample. The graph's gap (an xrun), not the worker's.
 */
static void played_frames(struct engine_slot *s, float *const *out, uint32_t from, uint32_t to) {
  float *dst[RW_MAX_CHANNELS];
  for (uint32_t c = 0; c < s->n_out; c++) {
    memset(out[c] + from, 0, (size_t)(to - from) * sizeof(float));
    dst[c] = out[c] + from;
  }
  shape_edges(s, dst, 0, to - from);
}

/* Frames [from, n) of the cycle have nothing from the worker: silence, or bypass. */
static void play_gap(struct engine_slot *s, float *const *out, uint32_t from, uint32_t n) {
  float *dst[RW_MAX_CHANNELS];
  for (uint32_t c = 0; c < s->n_out; c++) {
    memset(out[c] + from, 0, (size_t)(n - from) * sizeof(float));
    dst[c] = out[c] + from;
  }
  if (s->bypass != NULL) {
    counter_add(&s->counters.bypass_frames,
                engine__bypass_mix(s, dst, 0, n - from, s->tl.pos, 0, from));
    engine__bypass_note_drained(s);
    return;
  }
  shape_edges(s, dst, 0, n - from);
  count_silence(s, n - from);
}

/*
 * The worker's lead left after a piece of k frames (fill: out_write - t
 * before it), into the lifetime minimum, the histogram and the one-second
 * window.
 */
static void note_lead(struct engine_slot *s, int64_t fill, uint32_t k) {
  struct engine_slot_counters *c = &s->counters;
  const uint32_t latency = s->tl.g.latency;
  /* fill comes from the worker: clamp before subtracting, so nothing can overflow. */
  int64_t lead = (fill < -(INT64_C(1) << 40) ? -(INT64_C(1) << 40) : fill) - (int64_t)k;
  if (lead < atomic_load_explicit(&c->headroom_min_frames, memory_order_relaxed))
    atomic_store_explicit(&c->headroom_min_frames, lead, memory_order_relaxed);
  uint32_t bucket = 0;
  if (lead >= 0)
    bucket = lead >= latency ? ENGINE_LEAD_BUCKETS - 1 : 1 + (uint32_t)(lead * 8 / latency);
  if (bucket >= ENGINE_LEAD_BUCKETS)
    bucket = ENGINE_LEAD_BUCKETS - 1;
  counter_add(&c->lead_histogram[bucket], 1);
  if (lead < atomic_load_explicit(&c->lead_min_now, memory_order_relaxed))
    atomic_store_explicit(&c->lead_min_now, lead, memory_order_relaxed);
  s->lead_window += k;
  if (s->lead_window >= s->segment.layout.sample_rate) {
    s->lead_window = 0;
    atomic_store_explicit(&c->lead_min_last,
                          atomic_load_explicit(&c->lead_min_now, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&c->lead_min_now, INT64_MAX, memory_order_relaxed);
  }
}

/*
 * Every CLOCK_EVERY cycles (and in a generation's first, and after frames
 * went by without us) the slot's clock reference gets the time this cycle
 * published its input, for workers that wake themselves (shm/wake.h).
 * Reading the clock costs about 30 ns, so not every cycle: between two
 * refreshes the prediction drifts by the audio clock's error only (ppm).
 */
#define CLOCK_EVERY 16

static void publish_clock(struct engine_slot *s, uint64_t t, uint32_t n) {
  if (s->clock_due > 0) {
    s->clock_due--;
    return;
  }
  struct shm_clock clk = {.pos = t, .ns = base_mono_ns(), .period = n};
  shm_clock_publish(s->tl.g.ctl.d, &s->clock_seq, &clk);
  s->clock_due = CLOCK_EVERY - 1;
}

/*
 * The slot's port buffers for this cycle (its outputs' only when it plays
 * into them). In JACK2 each call reads the port's bookkeeping in the
 * server's shared memory, a page per port that nothing else touched since
 * the last cycle: a cache and TLB miss or three. Asked for every slot in a
 * row, before any slot is processed, the misses of neighbouring calls
 * overlap instead of each waiting behind a slot's copies. The inputs are
 * asked for again in slot_cycle(), then from the cache: JACK mixes an input
 * with several connections when asked, which must come after the slots
 * upstream of it in this callback have played.
 */
static void slot_ports(struct engine_slot *s, const struct engine_io *io, uint32_t n, bool outs) {
  for (uint32_t c = 0; c < s->n_in; c++)
    s->in_buf[c] = io->audio_buffer(s->in_ports[c], n);
  for (uint32_t c = 0; outs && c < s->n_out; c++)
    s->out_buf[c] = io->audio_buffer(s->out_ports[c], n);
}

/* engine__slot_cycle over the buffers slot_ports() fetched this cycle. */
static void slot_cycle(struct engine_slot *s, const struct engine_io *io, uint32_t n,
                       float *const *into) {
  const float *in[RW_MAX_CHANNELS];
  float *out[RW_MAX_CHANNELS];
  const float *src[RW_MAX_CHANNELS];
  float *dst[RW_MAX_CHANNELS];
  const struct shm_tl_geom *g = &s->tl.g;

  for (uint32_t c = 0; c < s->n_in; c++)
    in[c] = s->in_buf[c] = io->audio_buffer(s->in_ports[c], n);
  for (uint32_t c = 0; c < s->n_out; c++)
    out[c] = into != NULL ? into[c] : s->out_buf[c];
  counter_add(&s->counters.cycles, 1);
  /* Relaxed: only a flag for counting; the control thread reads the worker's declaration. */
  if (!s->worker_seen && atomic_load_explicit(&g->ctl.w->worker_pid, memory_order_relaxed) != 0)
    s->worker_seen = true;

  const uint32_t played = s->cycle_played;
  if (played > 0)
    played_frames(s, out, 0, played);
  if (atomic_load_explicit(&s->faulted, memory_order_relaxed)) {
    play_gap(s, out, played, n);
    return;
  }

  uint64_t t = s->tl.pos;
  forward_commands(s, t);
  if (s->midi_port != NULL)
    forward_midi(s, io, n, played, t);

  bool underrun = false, overrun = false;
  uint32_t missing = 0, bypassed = 0;
  uint32_t nonfinite = 0;
  /* A cycle longer than the segment was sized for (the period grew) runs in pieces. */
  for (uint32_t off = played, k; off < n; off += k) {
    k = n - off < g->max_period ? n - off : g->max_period;
    for (uint32_t c = 0; c < s->n_in; c++)
      src[c] = in[c] + off;
    for (uint32_t c = 0; c < s->n_out; c++)
      dst[c] = out[c] + off;

    int64_t backlog = shm_tl_daemon_write_input(&s->tl, src, k);
    if (backlog < 0) {
      slot_fault(s);
      play_gap(s, out, off, n);
      return;
    }
    if (off == played)
      publish_clock(s, t, n);
    if (backlog > (int64_t)(g->capacity - g->max_period))
      overrun = true;
    if (shm_wake_worker_if_due(&g->ctl, s->tl.pos + k, g->capacity))
      counter_add(&s->counters.wakeups, 1);

    uint64_t tp = s->tl.pos;
    int valid = shm_tl_daemon_read_output(&s->tl, dst, k);
    if (valid < 0) {
      slot_fault(s);
      play_gap(s, out, off, n);
      return;
    }
    if (s->worker_seen)
      note_lead(s, s->tl.fill, k);

    for (uint32_t c = 0; c < s->n_out; c++)
      nonfinite += sanitize(dst[c], (uint32_t)valid);
    if (s->bypass != NULL) {
      /* Nothing is missing from what the graph hears: bypass stands in, and is counted. */
      bypassed += engine__bypass_mix(s, dst, (uint32_t)valid, k, tp, s->tl.fill, off);
      continue;
    }
    shape_edges(s, dst, (uint32_t)valid, k);
    if ((uint32_t)valid < k) {
      underrun = true;
      missing += k - (uint32_t)valid;
    }
  }
  if (s->bypass != NULL) {
    if (bypassed > 0)
      counter_add(&s->counters.bypass_frames, bypassed);
    engine__bypass_note_drained(s);
  }
  if (!s->worker_seen) {
    if (s->bypass == NULL) /* with bypass those frames were not silent */
      counter_add(&s->counters.no_worker_frames, n);
  } else if (underrun) {
    counter_add(&s->counters.underruns, 1);
    counter_add(&s->counters.underrun_frames, missing);
  }
  if (overrun)
    counter_add(&s->counters.overruns, 1);
  if (nonfinite > 0)
    counter_add(&s->counters.nonfinite_samples, nonfinite);
}

void engine__slot_cycle(struct engine_slot *s, const struct engine_io *io, uint32_t n,
                        float *const *into) {
  for (uint32_t c = 0; into == NULL && c < s->n_out; c++)
    s->out_buf[c] = io->audio_buffer(s->out_ports[c], n);
  slot_cycle(s, io, n, into);
}

void engine_rt_thread_started(struct engine *e) {
  atomic_store_explicit(&e->rt_thread_id, (int)gettid(), memory_order_relaxed);
}

void engine__warm_cycle(struct engine_slot *s, const struct engine_io *io, uint32_t n) {
  const float *in[RW_MAX_CHANNELS];
  const float *src[RW_MAX_CHANNELS];
  const struct shm_tl_geom *g = &s->tl.g;
  if (atomic_load_explicit(&s->faulted, memory_order_relaxed))
    return;
  for (uint32_t c = 0; c < s->n_in; c++)
    in[c] = io->audio_buffer(s->in_ports[c], n);
  const uint32_t played = s->cycle_played;
  uint64_t t = s->tl.pos;
  forward_commands(s, t);
  if (s->midi_port != NULL)
    forward_midi(s, io, n, played, t);
  for (uint32_t off = played, k; off < n; off += k) {
    k = n - off < g->max_period ? n - off : g->max_period;
    for (uint32_t c = 0; c < s->n_in; c++)
      src[c] = in[c] + off;
    if (shm_tl_daemon_write_input(&s->tl, src, k) < 0) {
      slot_fault(s);
      return;
    }
    if (off == played)
      publish_clock(s, t, n); /* its worker wakes itself by it, as any */
    if (shm_wake_worker_if_due(&g->ctl, s->tl.pos + k, g->capacity))
      counter_add(&s->counters.wakeups, 1);
    shm_tl_daemon_pass(&s->tl, k);
  }
  /* An honest worker never publishes past in_write + L; we read nothing yet, but we check. */
  if (shm_tl_daemon_fill(&s->tl) > (int64_t)g->latency)
    slot_fault(s);
}

/*
 * One table entry: its bypass input, then its generation, or the two of a
 * takeover. fetched: slot_ports() ran for its generation this cycle.
 */
static void entry_cycle(struct engine *e, const struct engine_state *st, uint32_t i,
                        const struct engine_io *io, uint32_t n, bool fetched) {
  struct engine_slot *s = st->slots[i], *next = st->incoming[i];
  struct engine_bypass *bp = next != NULL && next->bypass != NULL ? next->bypass : s->bypass;
  if (bp != NULL)
    engine__bypass_write(bp, io, s->in_ports, s->n_in, n, s->cycle_played);
  if (next != NULL)
    engine__takeover_cycle(e, s, next, io, n);
  else if (fetched)
    slot_cycle(s, io, n, NULL);
  else
    engine__slot_cycle(s, io, n, NULL);
}

void engine_reset_clock(struct engine *e) {
  atomic_store_explicit(&e->clock_valid, 0, memory_order_relaxed);
  atomic_store_explicit(&e->rt_tid, 0, memory_order_relaxed);
}

/*
 * Once per server connection, so not a system call per cycle: gettid is one
 * that never blocks (about 0.2 us), like the futex wake the rules allow.
 * Relaxed: the id carries no data with it.
 */
static inline void note_rt_thread(struct engine *e) {
  if (atomic_load_explicit(&e->rt_tid, memory_order_relaxed) == 0)
    atomic_store_explicit(&e->rt_tid, (int)gettid(), memory_order_relaxed);
}

/*
 * A port buffer of the last cycle, most likely this cycle's too: its lines,
 * and for a port of our own (an output) the server's bookkeeping of it just
 * before the buffer, which jack_port_get_buffer reads (in JACK2 the in-use
 * flag sits in the line before the buffer and the port's flags about 1 KB
 * before it). These were last touched a period ago; a prefetch of a stale
 * address costs no more than the line, and never faults.
 */
static inline void port_prefetch(const float *buf, uint32_t n, bool own) {
  if (buf == NULL)
    return;
  const char *p = (const char *)buf;
  if (own) {
    __builtin_prefetch(p - 1024, 0, 3);
    __builtin_prefetch(p - 64, 0, 3);
  }
  for (uint32_t k = 0; k < n * sizeof(float); k += 64) {
    if (own)
      __builtin_prefetch(p + k, 1, 3);
    else
      __builtin_prefetch(p + k, 0, 3);
  }
}

static void slot_prefetch(const struct engine_slot *s, uint32_t n) {
  const struct shm_tl_geom *g = &s->tl.g;
  uint32_t idx = (uint32_t)(s->tl.pos & (g->capacity - 1));
  uint32_t len = n < g->capacity - idx ? n : g->capacity - idx;
  __builtin_prefetch(&g->ctl.w->out_write, 0, 3);
  __builtin_prefetch(&g->ctl.w->in_read, 0, 3);
  __builtin_prefetch(&g->ctl.w->sleeping, 0, 3);
  __builtin_prefetch(&g->ctl.d->in_write, 1, 3);
  __builtin_prefetch(&g->ctl.d->out_read, 1, 3);
  __builtin_prefetch(s->commands.rx.write_pos, 0, 3);
  __builtin_prefetch(&s->counters, 1, 3);
  __builtin_prefetch(&s->tail, 1, 3);
  for (uint32_t c = 0; c < s->n_out; c++) {
    const float *ring = g->out + (size_t)c * g->stride + idx;
    for (uint32_t k = 0; k < len; k += 16)
      __builtin_prefetch(ring + k, 0, 3);
  }
  for (uint32_t c = 0; c < s->n_in; c++) {
    const float *ring = g->in + (size_t)c * g->stride + idx;
    for (uint32_t k = 0; k < len; k += 16)
      __builtin_prefetch(ring + k, 1, 3);
  }
  for (uint32_t c = 0; c < s->n_in; c++)
    port_prefetch(s->in_buf[c], n, false);
  for (uint32_t c = 0; c < s->n_out; c++)
    port_prefetch(s->out_buf[c], n, true);
}

/* Beyond 10 s at 48 kHz a difference of frame times is a new clock, not a gap. */
#define CLOCK_JUMP_MAX 480000u

/* Frames went by without table entry i: its generations and its bypass skip them. */
static void entry_skip(const struct engine_state *st, uint32_t i, uint32_t gap) {
  struct engine_slot *s = st->slots[i], *next = st->incoming[i];
  struct engine_bypass *bp = next != NULL && next->bypass ? next->bypass : s->bypass;
  if (!atomic_load_explicit(&s->faulted, memory_order_relaxed)) {
    shm_tl_daemon_skip(&s->tl, gap);
    s->clock_due = 0; /* the timeline jumped: the reference is stale */
  }
  if (next != NULL && next->to_begun &&
      !atomic_load_explicit(&next->faulted, memory_order_relaxed)) {
    shm_tl_daemon_skip(&next->tl, gap);
    next->clock_due = 0;
  }
  if (bp != NULL)
    engine__bypass_skip(bp, gap);
}

/*
 * The start of a graph cycle. When the server let frames go by without
 * calling us (it may skip a late client after an xrun), every slot's
 * timeline first advances by them, so each slot's output at graph frame F
 * stays the answer to its input at F - L. Then a new table is adopted.
 */
static const struct engine_state *cycle_begin(struct engine *e, uint32_t nframes,
                                              uint32_t frame_time, bool clocked) {
  /* The gap belongs to the slots that missed it: the table before adopting a new one. */
  const struct engine_state *st = e->rt_state;
  if (clocked) {
    if (atomic_load_explicit(&e->clock_valid, memory_order_relaxed) && st != NULL) {
      /* Frame times wrap; the difference does not. */
      uint32_t gap = frame_time - e->next_frame_time;
      if (gap > 0 && gap < CLOCK_JUMP_MAX) {
        counter_add(&e->stats.skipped_frames, gap);
        for (uint32_t i = 0; i < st->n_slots; i++)
          entry_skip(st, i, gap);
      }
    }
    e->next_frame_time = frame_time + nframes;
    atomic_store_explicit(&e->clock_valid, 1, memory_order_relaxed);
  }
  e->cycle_clocked = clocked;
  e->cycle_frame = frame_time;
  e->rt_state = shm_handover_adopt(&e->handover, e->rt_state);
  return e->rt_state;
}

/* 1024 ns and up: the octave's exponent and the three bits below the leading one. */
uint32_t engine_cycle_bucket(uint64_t ns) {
  if (ns < 1024)
    return 0;
  uint32_t e = 63u - (uint32_t)__builtin_clzll(ns);
  uint32_t b = 1u + (e - 10u) * 8u + (uint32_t)((ns >> (e - 3u)) & 7u);
  return b < ENGINE_CYCLE_BUCKETS ? b : ENGINE_CYCLE_BUCKETS - 1;
}

uint64_t engine_cycle_bucket_floor(uint32_t bucket) {
  if (bucket == 0)
    return 0;
  uint32_t e = 10u + (bucket - 1u) / 8u;
  return (uint64_t)(8u + (bucket - 1u) % 8u) << (e - 3u);
}

/* A cycle's duration dt (ns), which ended at tick now, into the totals and the window. */
static void stats_add(struct engine *e, uint64_t dt, uint64_t now) {
  struct engine_stats *stats = &e->stats;
  counter_add(&stats->cycles, 1);
  counter_add(&stats->cycle_ns_sum, dt);
  counter_add(&stats->cycle_hist[engine_cycle_bucket(dt)], 1);
  if (dt > atomic_load_explicit(&stats->cycle_ns_max, memory_order_relaxed))
    atomic_store_explicit(&stats->cycle_ns_max, dt, memory_order_relaxed);
  if (dt > e->window_max)
    e->window_max = dt;
  if (e->window_start == 0) {
    e->window_start = now; /* the first window starts with the first cycle */
  } else if (now - e->window_start >= cycle_clock_second()) {
    atomic_store_explicit(&stats->cycle_ns_max_recent, e->window_max, memory_order_relaxed);
    e->window_max = 0;
    e->window_start = now;
  }
}

static void process(struct engine *e, const struct engine_io *io, uint32_t nframes,
                    uint32_t frame_time, bool clocked) {
  if (e->hooks.enter != NULL)
    e->hooks.enter();
  struct fpu_state fpu = fpu_enter_ftz();
  uint64_t start = cycle_clock();
  note_rt_thread(e);

  const struct engine_state *st = cycle_begin(e, nframes, frame_time, clocked);
  if (st != NULL && nframes > 0) {
    /*
     * The rings' lines were last touched by the workers, on other cores:
     * ask for all of them first, so the misses overlap instead of queueing
     * behind each slot's copies.
     */
    for (uint32_t i = 0; i < st->n_slots; i++)
      slot_prefetch(st->slots[i], nframes);
    /* A takeover's two generations fetch their own. */
    for (uint32_t i = 0; i < st->n_slots; i++)
      if (st->incoming[i] == NULL)
        slot_ports(st->slots[i], io, nframes, true);
    for (uint32_t i = 0; i < st->n_slots; i++)
      entry_cycle(e, st, i, io, nframes, st->incoming[i] == NULL);
  }

  uint64_t end = cycle_clock();
  stats_add(e, cycle_clock_ns(end - start), end);
  fpu_leave(fpu);
  if (e->hooks.leave != NULL)
    e->hooks.leave();
}

void engine_process(struct engine *e, const struct engine_io *io, uint32_t nframes) {
  process(e, io, nframes, 0, false);
}

void engine_process_at(struct engine *e, const struct engine_io *io, uint32_t nframes,
                       uint32_t frame_time) {
  process(e, io, nframes, frame_time, true);
}

/* The entry of the current table whose key is key, starting the search at *hint; false: none. */
static bool find_slot(const struct engine_state *st, const void *key, uint32_t *hint) {
  if (*hint < st->n_slots && st->slots[*hint]->key == key)
    return true;
  for (uint32_t i = 0; i < st->n_slots; i++) {
    if (st->slots[i]->key == key) {
      *hint = i;
      return true;
    }
  }
  return false;
}

/*
 * Where table entry i stands against the graph clock before a cycle of n
 * frames at frame_time (a backend with a node per slot). Behind: frames went
 * by without the entry, which skips them. Ahead: a late run of the slot's
 * node already played the start of this cycle (it read this cycle's clock):
 * returns how many of its frames that was.
 */
static uint32_t entry_follow_clock(struct engine *e, const struct engine_state *st, uint32_t i,
                                   uint32_t n, uint32_t frame_time) {
  struct engine_slot *s = st->slots[i];
  uint32_t played = 0;
  if (s->clocked) {
    uint32_t behind = frame_time - s->next_frame, ahead = s->next_frame - frame_time;
    /* Either way the node ran out of step with the graph: an xrun, counted once per cycle. */
    if (((behind > 0 && behind < CLOCK_JUMP_MAX) || (ahead > 0 && ahead < CLOCK_JUMP_MAX)) &&
        !e->node_cycle_xrun) {
      counter_add(&e->stats.xruns, 1);
      e->node_cycle_xrun = true;
    }
    if (behind > 0 && behind < CLOCK_JUMP_MAX) {
      entry_skip(st, i, behind);
      /* The daemon's count is of graph frames: once per cycle, however many nodes missed them. */
      if (behind > e->node_cycle_skipped) {
        counter_add(&e->stats.skipped_frames, behind - e->node_cycle_skipped);
        e->node_cycle_skipped = behind;
      }
    } else if (ahead > 0 && ahead < CLOCK_JUMP_MAX) {
      played = ahead < n ? ahead : n; /* all of it: the timeline stays where it is */
    }
  }
  s->next_frame = frame_time + n;
  s->clocked = true;
  return played;
}

/* A cycle a late run of the node played entirely already: silence, the timeline unmoved. */
static void entry_silence(const struct engine_state *st, uint32_t i, const struct engine_io *io,
                          uint32_t n) {
  struct engine_slot *s = st->slots[i];
  float *out[RW_MAX_CHANNELS];
  for (uint32_t c = 0; c < s->n_out; c++)
    out[c] = io->audio_buffer(s->out_ports[c], n);
  played_frames(s, out, 0, n);
}

void engine_process_slot(struct engine *e, const void *key, uint32_t *hint,
                         const struct engine_io *io, uint32_t nframes, uint32_t frame_time) {
  if (e->hooks.enter != NULL)
    e->hooks.enter();
  struct fpu_state fpu = fpu_enter_ftz();
  uint64_t start = cycle_clock();
  note_rt_thread(e);

  if (!e->node_cycle_open || frame_time != e->node_cycle_frame) {
    /* The first of our nodes in this graph cycle: the last cycle's time is complete. */
    if (e->node_cycle_open)
      stats_add(e, cycle_clock_ns(e->node_cycle_ticks), start);
    /* Each entry follows the graph clock on its own (entry_follow_clock). */
    cycle_begin(e, nframes, frame_time, false);
    e->cycle_clocked = true;
    e->cycle_frame = frame_time;
    e->node_cycle_open = true;
    e->node_cycle_frame = frame_time;
    e->node_cycle_ticks = 0;
    e->node_cycle_skipped = 0;
    e->node_cycle_xrun = false;
  }
  const struct engine_state *st = e->rt_state;
  if (st != NULL && nframes > 0 && find_slot(st, key, hint)) {
    uint32_t played = entry_follow_clock(e, st, *hint, nframes, frame_time);
    if (played < nframes) {
      struct engine_slot *s = st->slots[*hint], *next = st->incoming[*hint];
      s->cycle_played = played;
      if (next != NULL)
        next->cycle_played = played;
      slot_prefetch(s, nframes);
      entry_cycle(e, st, *hint, io, nframes, false);
      s->cycle_played = 0;
      if (next != NULL)
        next->cycle_played = 0;
    } else {
      entry_silence(st, *hint, io, nframes);
    }
  }

  e->node_cycle_ticks += cycle_clock() - start;
  fpu_leave(fpu);
  if (e->hooks.leave != NULL)
    e->hooks.leave();
}
