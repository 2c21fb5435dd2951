/*
 * Housekeeping of slots (every HOUSEKEEPING_MS, from main's timer): faults
 * the RT thread detected, holes punched in a segment, corrupted segments,
 * the worker's messages, workers announcing themselves, stalls, and underrun
 * events for subscribers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slot_internal.h"

void slot__fault(struct slot *s, const char *why) {
  s->base.faults++; /* the RT thread counts what it detects; this is what we detect */
  slot__emit(s, "fault", json_pack("{s:s, s:s}", "slot", s->name, "reason", why));
  log_error("slot %s: faulted: %s", s->name, why);
  /* Stop the RT thread from touching the segment until the next generation. */
  atomic_store(&s->gen->faulted, 1);
  supervisor_fail(&s->sv, WORKER_FAULTED, "%s", why);
}

/* The worker's peak level of an output (stats "meters"); nonsense is dropped. */
static void take_meter(struct slot *s, uint32_t channel, float peak) {
  if (channel < s->n_out && isfinite(peak) && peak >= 0.0f)
    s->meters[channel] = peak < 1000.0f ? peak : 1000.0f;
}

/*
 * Drains the worker's message ring: parameter values the plugin reports (its
 * own automation) update the daemon's values, meters go to the stats. A
 * corrupt ring is a fault.
 */
static int drain_messages(struct slot *s) {
  struct rw_record ev;
  for (int i = 0; i < 4096; i++) {
    int rc = shm_spsc_pop(&s->gen->messages, &ev);
    if (rc <= 0)
      return rc;
    if (ev.type == RW_EVENT_PARAM_OUT)
      slot__param_from_worker(s, ev.u.param.id, ev.u.param.value);
    else if (ev.type == RW_EVENT_METER)
      take_meter(s, ev.u.meter.channel, ev.u.meter.peak);
  }
  return 0;
}

/*
 * The plugin's own latency, from the worker's info block, where any value may
 * be written at any time: one above RW_MAX_PLUGIN_LATENCY is refused (and
 * said once). A new worker's block says 0 until its plugin has run, so it
 * counts only once the worker has published a block (it sets the latency
 * before it publishes the block that produced it); until then the ports keep
 * reporting what the previous worker said. A value read a pass too early is
 * put right at the next pass.
 */
static void follow_plugin_latency(struct slot *s, struct engine_slot *g) {
  struct runwayd *d = s->d;
  struct rw_worker_control *ctl = g->segment.ctl.w;
  /* Relaxed: only "has it published a block yet"; the acquire below orders the value. */
  if (atomic_load_explicit(&ctl->counters.chunks, memory_order_relaxed) == 0)
    return;
  /* Acquire: a latency stored before the worker released in_read is visible with it. */
  (void)atomic_load_explicit(&ctl->in_read.value, memory_order_acquire);
  /* Relaxed: a lone value the worker may change whenever its plugin does. */
  uint32_t v = __atomic_load_n(&g->segment.info->latency, __ATOMIC_RELAXED);
  if (v > RW_MAX_PLUGIN_LATENCY) {
    if (!s->plugin_latency_refused)
      log_warn("slot %s: its worker reports a plugin latency of %u frames, over %u; ignored",
               s->name, v, RW_MAX_PLUGIN_LATENCY);
    s->plugin_latency_refused = true;
    return;
  }
  if (v == s->plugin_latency || s->ports == NULL)
    return;
  s->plugin_latency = v;
  log_info("slot %s: its plugin's latency is now %u frames; the ports report %u", s->name, v,
           s->latency + v);
  backend_slot_latency(d->backend, s->ports, s->latency + v);
  backend_latency_update(d->backend);
}

/*
 * The plugin name the worker declared (its info block is complete once it
 * published its pid). Untrusted: cut at the field's end, kept only when it
 * is printable UTF-8 text.
 */
void slot__adopt_declared_name(struct slot *s, const struct rw_info *info) {
  char name[sizeof(info->plugin)];
  memcpy(name, info->plugin, sizeof(name));
  name[sizeof(name) - 1] = '\0';
  bool printable = name[0] != '\0';
  for (const char *c = name; *c != '\0'; c++)
    printable &= (unsigned char)*c >= 0x20 && *c != 0x7f;
  json_t *utf8 = printable ? json_string(name) : NULL;
  json_decref(utf8);
  free(s->declared_plugin);
  s->declared_plugin = utf8 != NULL ? strdup(name) : NULL;
}

/* How much pending input a running worker may leave before it counts as stalled. */
static uint64_t stall_threshold(const struct slot *s, const struct rw_worker_control *ctl) {
  uint64_t threshold = atomic_load(&ctl->wake_frames) + backend_period(s->d->backend);
  uint64_t half = s->gen->segment.layout.capacity / 2;
  return threshold < half ? threshold : half;
}

static void check_slot(struct slot *s, uint64_t now, bool deep) {
  struct engine_slot *g = s->gen;
  char why[256];
  if (g == NULL || supervisor_restart_pending(&s->sv))
    return;
  const struct shm_ctl *ctl = &g->segment.ctl;

  if (atomic_load(&g->faulted)) {
    slot__fault(s, "the worker published impossible ring positions");
    return;
  }
  /*
   * Every pass, not only deep ones: until the slot is faulted, the RT
   * thread fills each hole it meets with a page fault, so the time a hole
   * lasts is the time it costs. A pass costs an fstat and a mincore over
   * the segment (see README for what a hostile worker's holes cost).
   */
  if (shm_segment_check_pages(&g->segment, why, sizeof(why)) != 0) {
    char msg[300];
    snprintf(msg, sizeof(msg), "the worker damaged its shared memory: %s", why);
    slot__fault(s, msg);
    return;
  }
  if (deep && shm_segment_check(&g->segment, why, sizeof(why)) != 0) {
    char msg[300];
    snprintf(msg, sizeof(msg), "the worker corrupted its segment: %s", why);
    slot__fault(s, msg);
    return;
  }
  if (drain_messages(s) < 0) {
    slot__fault(s, "the worker corrupted its message ring");
    return;
  }
  if (!supervisor_has_worker(&s->sv))
    return;
  /* Acquire: pairs with the worker's release of worker_pid; its info block is complete. */
  if (s->sv.state == WORKER_STARTING &&
      atomic_load_explicit(&ctl->w->worker_pid, memory_order_acquire) != 0) {
    supervisor_running(&s->sv);
    slot__adopt_declared_name(s, g->segment.info);
    log_info("slot %s: worker running%s%s", s->name, s->declared_plugin ? ", plugin " : "",
             s->declared_plugin ? s->declared_plugin : "");
    slot__adopt_declared_params(s, g);
  }

  if (s->sv.state == WORKER_RUNNING)
    follow_plugin_latency(s, g);

  uint64_t in_write = atomic_load(&ctl->d->in_write.value);
  uint64_t in_read = atomic_load(&ctl->w->in_read.value);
  uint64_t pending = in_write >= in_read ? in_write - in_read : 0;
  if (supervisor_check_progress(&s->sv, in_read, pending, stall_threshold(s, ctl->w), now, why,
                                sizeof(why)) == SUPERVISOR_PROGRESS_STALLED)
    slot__fault(s, why);
}

/* At most one "underrun" event per slot and housekeeping pass, with the totals. */
static void report_underruns(struct slot *s) {
  struct slot_totals t = s->base;
  if (s->gen != NULL)
    slot__totals_add(&t, s->gen);
  if (t.underruns <= s->underruns_reported)
    return;
  s->underruns_reported = t.underruns;
  slot__emit(s, "underrun",
             json_pack("{s:s, s:I, s:I}", "slot", s->name, "underruns", (json_int_t)t.underruns,
                       "underrun_frames", (json_int_t)t.underrun_frames));
}

void slots_housekeeping(struct runwayd *d, uint64_t now_ms, bool deep) {
  engine_reclaim(&d->engine);
  bool listened = d->events != NULL && events_subscribers(d->events) > 0;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    check_slot(d->slots[i], now_ms, deep);
    if (listened)
      report_underruns(d->slots[i]);
  }
}
