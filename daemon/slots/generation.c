/*
 * Generations: a slot's segment and engine slot for one worker, and the RT
 * table that carries them to the RT thread.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "slot_internal.h"
#include "slot_state.h"

#define RECLAIM_POLL_MS 2

void slot__totals_add(struct slot_totals *t, const struct engine_slot *g) {
  const struct engine_slot_counters *c = &g->counters;
  const struct rw_worker_counters *w = &g->segment.ctl.w->counters;
  t->cycles += atomic_load(&c->cycles);
  t->underruns += atomic_load(&c->underruns);
  t->underrun_frames += atomic_load(&c->underrun_frames);
  t->overruns += atomic_load(&c->overruns);
  t->nonfinite_samples += atomic_load(&c->nonfinite_samples);
  t->events_dropped += atomic_load(&c->events_dropped);
  t->wakeups += atomic_load(&c->wakeups);
  t->faults += atomic_load(&c->faults);
  /* Worker-side counters live in the segment: informational, clamp what looks absurd. */
  uint64_t skipped = atomic_load(&w->skipped_frames);
  t->skipped_frames += skipped < (UINT64_C(1) << 48) ? skipped : 0;
  uint64_t disc = atomic_load(&w->discontinuities);
  t->discontinuities += disc < (UINT64_C(1) << 48) ? disc : 0;
  int64_t h = atomic_load(&c->headroom_min_frames);
  if (h < t->headroom_min_frames)
    t->headroom_min_frames = h;
  t->bypass_frames += atomic_load(&c->bypass_frames);
  t->no_worker_frames += atomic_load(&c->no_worker_frames);
  for (int i = 0; i < ENGINE_LEAD_BUCKETS; i++)
    t->lead_histogram[i] += atomic_load(&c->lead_histogram[i]);
}

/* An engine slot died (the RT thread let go of its last table): keep its counts. */
static void generation_released(struct engine_slot *g) {
  struct slot *s = g->owner;
  slot__totals_add(&s->base, g);
  slot__unref(s);
}

static uint32_t effective_latency(const struct slot *s) {
  const struct runwayd *d = s->d;
  uint32_t rate = backend_sample_rate(d->backend);
  uint32_t period = backend_period(d->backend);
  uint64_t l;
  if (s->latency_frames > 0) {
    l = s->latency_frames;
  } else {
    double ms = s->latency_ms > 0 ? s->latency_ms : d->opt.latency_ms;
    l = (uint64_t)llround(ms * rate / 1000.0);
  }
  /* DESIGN.md: L is never smaller than one period. */
  if (l < period)
    l = period;
  if (l > SLOT_MAX_LATENCY_FRAMES)
    l = SLOT_MAX_LATENCY_FRAMES;
  return (uint32_t)l;
}

/*
 * The slot's bypass ring for latency L: kept while L stays, so that it holds
 * the input from before a restart; NULL for a slot that plays silence.
 */
static int bypass_for(struct slot *s, enum slot_on_fault mode, uint32_t latency,
                      struct engine_bypass **out) {
  *out = NULL;
  if (mode != SLOT_ON_FAULT_BYPASS)
    return 0;
  if (s->bypass != NULL && s->bypass->latency != latency) {
    engine_bypass_unref(s->bypass);
    s->bypass = NULL;
  }
  if (s->bypass == NULL) {
    int rc = engine_bypass_create(s->n_in < s->n_out ? s->n_in : s->n_out, latency, &s->bypass);
    if (rc != 0)
      return rc;
  }
  *out = s->bypass;
  return 0;
}

int slot__generation_create(struct slot *s, const struct slot_gen_opts *o, struct engine_slot **out,
                            char *err, size_t errlen) {
  struct runwayd *d = s->d;
  uint32_t latency = effective_latency(s);
  struct proto_segment_params p = {
      .sample_rate = backend_sample_rate(d->backend),
      .n_inputs = s->n_in,
      .n_outputs = s->n_out,
      .flags = s->midi ? RW_SEGMENT_F_MIDI : 0,
      .latency = latency,
      .max_period = backend_period(d->backend),
      .capacity = o->capacity,
      .generation = s->generation + 1,
  };
  struct engine_bypass *bp;
  int rc = bypass_for(s, o->on_fault, latency, &bp);
  if (rc != 0) {
    snprintf(err, errlen, "out of memory for the bypass ring");
    return rc;
  }
  struct engine_slot *g;
  rc = engine_slot_create(&p, s->name, &g, err, errlen);
  if (rc != 0)
    return rc;
  s->generation++;
  g->owner = s;
  g->key = s->ports;
  g->release = generation_released;
  s->refs++;
  memcpy(g->in_ports, s->ports->in, sizeof(g->in_ports));
  memcpy(g->out_ports, s->ports->out, sizeof(g->out_ports));
  g->midi_port = s->ports->midi_in;
  if (bp != NULL)
    engine_slot_set_bypass(g, bp);

  slot__push_param_table(o->params != NULL ? o->params : &s->params, g);
  if (o->state)
    slot_state_prepare(s, g);
  *out = g;
  return 0;
}

int slot__generation_new(struct slot *s, char *err, size_t errlen) {
  struct runwayd *d = s->d;
  struct slot_gen_opts o = {.on_fault = s->on_fault, .state = true};
  struct engine_slot *g;
  int rc = slot__generation_create(s, &o, &g, err, errlen);
  if (rc != 0)
    return rc;
  uint32_t latency = g->tl.g.latency;

  if (s->gen != NULL) {
    /*
     * With bypass, the generation that goes plays on (its worker's last
     * output, then bypass) until it has run out, and the new one takes its
     * place then, under bypass: no step (slot__keep_outgoing). One that
     * never played (another still going) just goes.
     */
    if (s->gen->bypass != NULL && s->gen_published && s->outgoing == NULL && slot__backend_up(d) &&
        latency == s->gen->tl.g.latency)
      slot__keep_outgoing(s, s->gen);
    engine_slot_unref(s->gen);
  }
  s->gen = g;
  s->gen_used = false;
  s->gen_published = false;
  s->segment_bytes =
      g->segment.layout.file_size[RW_FILE_DAEMON] + g->segment.layout.file_size[RW_FILE_WORKER];
  if (latency != s->latency) {
    if (s->latency != 0)
      log_info("slot %s: latency is now %u frames", s->name, latency);
    s->latency = latency;
  }
  /* The plugin's own latency stays what its last worker reported, until the new one says. */
  backend_slot_latency(d->backend, s->ports, latency + s->plugin_latency);
  return 0;
}

void slot__generation_drop(struct slot *s) {
  if (s->gen != NULL) {
    engine_slot_unref(s->gen);
    s->gen = NULL;
  }
  if (s->outgoing != NULL) {
    engine_slot_unref(s->outgoing);
    s->outgoing = NULL;
  }
}

/* Frees what the RT thread handed back; polls again while tables are still moving. */
static void on_reclaim(uv_timer_t *t) {
  struct runwayd *d = t->data;
  if (engine_reclaim(&d->engine) == 0)
    uv_timer_stop(t);
}

/*
 * The RT thread adopts the new table at its next cycle and hands the old one
 * back; a short poll frees it then (and with it the generations and ports
 * nothing uses any more). The loop never waits for the RT thread: a stalled
 * graph only delays the freeing. Without an RT thread the table takes
 * effect at once.
 */
void slot__publish(struct runwayd *d) {
  struct engine_slot *gens[ENGINE_MAX_SLOTS], *incoming[ENGINE_MAX_SLOTS];
  uint32_t n = 0;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    if (s->gen == NULL && s->outgoing == NULL)
      continue;
    /* A generation that goes plays on until it has drained; one that comes warms up beside. */
    if (s->outgoing != NULL) {
      gens[n] = s->outgoing;
      incoming[n] = NULL;
    } else {
      gens[n] = s->gen;
      incoming[n] = slot__incoming(s);
      s->gen_published = true;
    }
    n++;
  }
  if (engine_publish_with(&d->engine, gens, incoming, n) != 0) {
    log_error("out of memory publishing the slot table");
    return;
  }
  if (!slot__backend_up(d)) {
    /* A dying server's RT thread may still be in its last cycle: not before it is gone. */
    if (backend_rt_stopped(d->backend))
      engine_settle(&d->engine);
    return;
  }
  if (!uv_is_active((uv_handle_t *)&d->reclaim_timer))
    uv_timer_start(&d->reclaim_timer, on_reclaim, RECLAIM_POLL_MS, RECLAIM_POLL_MS);
}

void slots_rt_stopped(struct runwayd *d) {
  if (!slot__backend_up(d) && backend_rt_stopped(d->backend))
    engine_settle(&d->engine);
}

void slots_reorder(struct runwayd *d) {
  struct backend_slot *ports[ENGINE_MAX_SLOTS];
  struct slot *with[ENGINE_MAX_SLOTS], *order[ENGINE_MAX_SLOTS];
  uint32_t perm[ENGINE_MAX_SLOTS], n = 0;
  if (d->n_slots < 2 || !slot__backend_up(d))
    return;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    if (d->slots[i]->ports != NULL) {
      with[n] = d->slots[i];
      ports[n++] = d->slots[i]->ports;
    }
  }
  if (!backend_order(d->backend, ports, n, perm))
    return;
  /* The slots with ports take their new order; the others keep their places at the end. */
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++)
    order[m++] = with[perm[i]];
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (d->slots[i]->ports == NULL)
      order[m++] = d->slots[i];
  memcpy(d->slots, order, d->n_slots * sizeof(order[0]));
  log_debug("slots reordered to follow their connections");
  slot__publish(d);
}
