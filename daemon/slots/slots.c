#include "slots.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "slot_state.h"
#include "wake.h"

#define SLOT_MAX_LATENCY_MS 2000.0
#define SLOT_MAX_LATENCY_FRAMES 192000
#define SLOT_STOP_GRACE_MS 1000
#define SLOT_SYNC_TIMEOUT_MS 500

static void slot_unref(struct slot *s);
static void start_worker(struct slot *s);

const char *slot_state_name(enum slot_state state) {
  switch (state) {
  case SLOT_STARTING:
    return "starting";
  case SLOT_RUNNING:
    return "running";
  case SLOT_RESTARTING:
    return "restarting";
  case SLOT_FAULTED:
    return "faulted";
  case SLOT_STOPPED:
    return "stopped";
  }
  return "unknown";
}

static void set_error(struct slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct slot *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
  va_end(ap);
}

static void emit_param(struct slot *s, int i);

/* Subscribers hear about every change of a slot's state, with the reason. */
static void set_state(struct slot *s, enum slot_state state, const char *reason) {
  if (s->state == state)
    return;
  s->state = state;
  if (s->d->events != NULL)
    events_emit(s->d->events, "slot",
                json_pack("{s:s, s:s, s:o, s:I, s:s}", "slot", s->name, "state",
                          slot_state_name(state), "pid", s->pid > 0 ? json_integer(s->pid) : json_null(),
                          "generation", (json_int_t)s->generation, "reason", reason));
}

static void emit(struct slot *s, const char *type, json_t *fields) {
  if (s->d->events != NULL)
    events_emit(s->d->events, type, fields);
  else
    json_decref(fields);
}

static bool backend_up(const struct runwayd *d) {
  return d->backend != NULL && backend_is_open(d->backend);
}

/* ---- the RT table ----------------------------------------------------------- */

/*
 * Publishes every slot's current generation and, with an RT thread running,
 * waits (a few cycles at most) until it adopted the table and handed back the
 * old one, so what a command changed is in effect, and freed, when it
 * answers. Without an RT thread the table takes effect at once.
 */
static void publish(struct runwayd *d) {
  struct engine_slot *gens[ENGINE_MAX_SLOTS];
  uint32_t n = 0;
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (d->slots[i]->gen != NULL)
      gens[n++] = d->slots[i]->gen;
  if (engine_publish(&d->engine, gens, n) != 0) {
    log_error("out of memory publishing the slot table");
    return;
  }
  if (!backend_up(d)) {
    engine_settle(&d->engine);
    return;
  }
  uint64_t deadline = base_mono_ms() + SLOT_SYNC_TIMEOUT_MS;
  const struct timespec nap = {0, 200 * 1000};
  while (engine_reclaim(&d->engine) > 0) {
    if (base_mono_ms() > deadline) {
      log_warn("the audio thread has not taken the new slot table within %d ms",
               SLOT_SYNC_TIMEOUT_MS);
      break;
    }
    nanosleep(&nap, NULL);
  }
}

/* ---- ports ------------------------------------------------------------------- */

static void forget_ports(struct slot *s) {
  for (uint32_t i = 0; i < RW_MAX_CHANNELS; i++) {
    free(s->in_names[i]);
    free(s->out_names[i]);
    s->in_names[i] = s->out_names[i] = NULL;
    s->in_ports[i] = s->out_ports[i] = NULL;
  }
  free(s->midi_name);
  s->midi_name = NULL;
  s->midi_port = NULL;
  s->has_ports = false;
}

static void unregister_ports(struct slot *s) {
  struct runwayd *d = s->d;
  if (s->has_ports && backend_up(d) && s->port_epoch == backend_epoch(d->backend)) {
    backend_latency_remove(d->backend, s);
    for (uint32_t i = 0; i < s->n_in; i++)
      backend_port_unregister(d->backend, s->in_ports[i]);
    for (uint32_t i = 0; i < s->n_out; i++)
      backend_port_unregister(d->backend, s->out_ports[i]);
    if (s->midi_port != NULL)
      backend_port_unregister(d->backend, s->midi_port);
  }
  forget_ports(s);
}

static int register_one(struct slot *s, const char *suffix, uint32_t index,
                        enum backend_port_kind kind, void **port, char **full, char *err,
                        size_t errlen) {
  char name[96], fullname[320];
  if (index > 0)
    snprintf(name, sizeof(name), "%s.%s_%u", s->name, suffix, index);
  else
    snprintf(name, sizeof(name), "%s.%s", s->name, suffix);
  int rc = backend_port_register(s->d->backend, name, kind, port, fullname, sizeof(fullname), err,
                                 errlen);
  if (rc != 0)
    return rc;
  *full = strdup(fullname);
  if (*full == NULL) {
    backend_port_unregister(s->d->backend, *port);
    *port = NULL;
    return -ENOMEM;
  }
  return 0;
}

static int register_ports(struct slot *s, char *err, size_t errlen) {
  int rc = 0;
  if (s->has_ports && s->port_epoch == backend_epoch(s->d->backend))
    return 0;
  forget_ports(s);
  s->has_ports = true;
  s->port_epoch = backend_epoch(s->d->backend);
  for (uint32_t i = 0; i < s->n_in && rc == 0; i++)
    rc = register_one(s, "in", i + 1, BACKEND_AUDIO_IN, &s->in_ports[i], &s->in_names[i], err,
                      errlen);
  for (uint32_t i = 0; i < s->n_out && rc == 0; i++)
    rc = register_one(s, "out", i + 1, BACKEND_AUDIO_OUT, &s->out_ports[i], &s->out_names[i], err,
                      errlen);
  if (s->midi && rc == 0)
    rc = register_one(s, "midi_in", 0, BACKEND_MIDI_IN, &s->midi_port, &s->midi_name, err, errlen);
  if (rc != 0) {
    /* Unregister the ones that made it; unregister_ports skips NULL handles. */
    struct runwayd *d = s->d;
    for (uint32_t i = 0; i < s->n_in; i++)
      backend_port_unregister(d->backend, s->in_ports[i]);
    for (uint32_t i = 0; i < s->n_out; i++)
      backend_port_unregister(d->backend, s->out_ports[i]);
    backend_port_unregister(d->backend, s->midi_port);
    forget_ports(s);
  }
  return rc;
}

/* ---- generations --------------------------------------------------------- */

static void totals_add(struct slot_totals *t, const struct engine_slot *g) {
  const struct engine_slot_counters *c = &g->counters;
  const struct rw_worker_counters *w = &g->segment.control->worker;
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
  t->no_worker_frames += atomic_load(&c->no_worker_frames);
  for (int i = 0; i < ENGINE_LEAD_BUCKETS; i++)
    t->lead_histogram[i] += atomic_load(&c->lead_histogram[i]);
}

/* An engine slot died (the RT thread let go of its last table): keep its counts. */
static void generation_released(struct engine_slot *g) {
  struct slot *s = g->owner;
  totals_add(&s->base, g);
  slot_unref(s);
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
 * Hands a new generation every parameter value as events at timeline time 0:
 * the worker gets them at offset 0 of its first block, before it has made a
 * sound, and after the state it loads first (whose copy of the parameters
 * may be older than the daemon's, which win). The RT thread has not seen the
 * segment yet, so the control thread may still produce into its event ring.
 */
static void push_params(struct slot *s, struct engine_slot *g) {
  for (uint32_t i = 0; i < s->params.n; i++) {
    struct rw_record ev = {.time = 0, .type = RW_EVENT_PARAM};
    ev.u.param.id = s->params.defs[i].id;
    ev.u.param.value = s->params.values[i];
    if (shm_spsc_push(&g->events, &ev) != 0)
      break;
  }
}

/*
 * Makes a new generation current (not yet published): a fresh segment whose
 * timeline starts at 0 in the cycle the RT thread adopts it.
 */
static int new_generation(struct slot *s, char *err, size_t errlen) {
  struct runwayd *d = s->d;
  uint32_t latency = effective_latency(s);
  struct proto_segment_params p = {
      .sample_rate = backend_sample_rate(d->backend),
      .n_inputs = s->n_in,
      .n_outputs = s->n_out,
      .flags = s->midi ? RW_SEGMENT_F_MIDI : 0,
      .latency = latency,
      .max_period = backend_period(d->backend),
      .generation = s->generation + 1,
  };
  struct engine_slot *g;
  int rc = engine_slot_create(&p, s->name, &g, err, errlen);
  if (rc != 0)
    return rc;
  s->generation++;
  g->owner = s;
  g->release = generation_released;
  s->refs++;
  memcpy(g->in_ports, s->in_ports, sizeof(g->in_ports));
  memcpy(g->out_ports, s->out_ports, sizeof(g->out_ports));
  g->midi_port = s->midi_port;

  push_params(s, g);
  slot_state_prepare(s, g);

  if (s->gen != NULL)
    engine_slot_unref(s->gen);
  s->gen = g;
  s->gen_used = false;
  if (latency != s->latency) {
    if (s->latency != 0)
      log_info("slot %s: latency is now %u frames", s->name, latency);
    s->latency = latency;
  }
  backend_latency_set(d->backend, s, s->in_ports, s->n_in, s->out_ports, s->n_out, s->midi_port,
                      latency);
  return 0;
}

static void drop_generation(struct slot *s) {
  if (s->gen != NULL) {
    engine_slot_unref(s->gen);
    s->gen = NULL;
  }
}

/* ---- workers ------------------------------------------------------------------ */

static void forget_worker(struct slot *s, uint64_t grace_ms) {
  if (s->proc != NULL) {
    worker_proc_stop(s->proc, grace_ms);
    worker_proc_detach(s->proc);
    s->proc = NULL;
  }
  if (s->attached != NULL) {
    struct control_conn *conn = s->attached;
    s->attached = NULL;
    control_conn_set_owner(conn, NULL, NULL);
    control_conn_close(conn);
  }
  s->pid = 0;
}

static void on_restart_timer(uv_timer_t *t);

/* A failure (exit, stall, fault): restart after the backoff. */
static void schedule_restart(struct slot *s, enum slot_state state) {
  uint64_t now = base_mono_ms();
  if (s->started_ms != 0 && now - s->started_ms >= supervisor_default_policy.stable_after_ms)
    s->failures = 0;
  s->failures++;
  uint64_t delay = supervisor_restart_delay(&supervisor_default_policy, s->failures);
  set_state(s, state, s->last_error);
  uv_timer_start(&s->restart_timer, on_restart_timer, delay, 0);
  log_warn("slot %s: %s; restarting in %llu ms", s->name, s->last_error,
           (unsigned long long)delay);
}

static void on_worker_exit(struct worker_proc *proc, int64_t status, int sig, void *user) {
  struct slot *s = user;
  worker_proc_detach(proc);
  s->proc = NULL;
  s->pid = 0;
  if (sig != 0)
    set_error(s, "worker was killed by signal %d", sig);
  else
    set_error(s, "worker exited with status %lld", (long long)status);
  if (s->removed || s->d->stopping || !backend_up(s->d))
    return;
  schedule_restart(s, SLOT_RESTARTING);
}

static void start_worker(struct slot *s) {
  struct runwayd *d = s->d;
  char err[256];
  s->started_ms = base_mono_ms();
  stall_watch_reset(&s->stall, 0, s->started_ms);
  set_state(s, SLOT_STARTING,
            s->kind == SLOT_EXTERNAL ? "waiting for a worker to attach" : "starting its worker");
  if (s->kind == SLOT_EXTERNAL)
    return; /* waits for worker.attach */

  char *argv[5];
  const char *file;
  if (s->kind == SLOT_PLUGIN) {
    file = d->opt.worker_path;
    argv[0] = (char *)d->opt.worker_path;
    argv[1] = "--plugin";
    argv[2] = s->plugin;
    argv[3] = NULL;
  } else {
    file = "/bin/sh";
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = s->exec;
    argv[3] = NULL;
  }
  struct worker_spawn spec = {
      .file = file,
      .argv = argv,
      .segment_fd = s->gen->segment.fd,
      .slot = s->name,
      .socket = d->opt.socket_path,
      .on_exit = on_worker_exit,
      .user = s,
  };
  int rc = worker_proc_spawn(d->loop, &spec, &s->proc, err, sizeof(err));
  if (rc != 0) {
    s->proc = NULL;
    set_error(s, "%s", err);
    schedule_restart(s, SLOT_RESTARTING);
    return;
  }
  s->gen_used = true;
  s->pid = worker_proc_pid(s->proc);
  log_info("slot %s: worker pid %d started (generation %llu)", s->name, (int)s->pid,
           (unsigned long long)s->generation);
}

/* A new generation and a new worker for it; the old worker is let go. */
static int replace_worker(struct slot *s, uint64_t grace_ms, char *err, size_t errlen) {
  forget_worker(s, grace_ms);
  uv_timer_stop(&s->restart_timer);
  int rc = new_generation(s, err, errlen);
  if (rc != 0)
    return rc;
  /*
   * The worker starts before the RT thread adopts the generation: its
   * start-up time then comes off the wait for input, not off L.
   */
  start_worker(s);
  publish(s->d);
  return 0;
}

static void on_restart_timer(uv_timer_t *t) {
  struct slot *s = t->data;
  char err[256];
  if (s->removed || !backend_up(s->d))
    return;
  s->restarts++;
  emit(s, "restart", json_pack("{s:s, s:I, s:s}", "slot", s->name, "restarts",
                               (json_int_t)s->restarts, "reason", s->last_error));
  if (replace_worker(s, 0, err, sizeof(err)) != 0) {
    set_error(s, "cannot restart: %s", err);
    schedule_restart(s, SLOT_FAULTED);
  }
}

/* ---- slot records ----------------------------------------------------------- */

static void on_slot_timer_closed(uv_handle_t *h) {
  struct slot *s = h->data;
  params_free(&s->params);
  json_decref(s->pending_params);
  json_decref(s->config_def);
  free(s->state_blob);
  free(s->plugin);
  free(s->exec);
  free(s);
}

static void slot_unref(struct slot *s) {
  if (--s->refs > 0)
    return;
  unregister_ports(s);
  if (backend_up(s->d))
    backend_latency_update(s->d->backend);
  uv_close((uv_handle_t *)&s->restart_timer, on_slot_timer_closed);
}

struct slot *slots_find(struct runwayd *d, const char *name) {
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (strcmp(d->slots[i]->name, name) == 0)
      return d->slots[i];
  return NULL;
}

/* Ports, a generation and a worker: what a slot needs to play. */
static int activate(struct slot *s, char *err, size_t errlen) {
  int rc = register_ports(s, err, errlen);
  if (rc != 0)
    return rc;
  rc = new_generation(s, err, errlen);
  if (rc != 0)
    return rc;
  return 0;
}

enum proto_err slots_add(struct runwayd *d, const struct slot_spec *spec, struct slot **out,
                         char *err, size_t errlen) {
  const struct catalog_plugin *cp = NULL;

  if (!proto_valid_slot_name(spec->name)) {
    snprintf(err, errlen,
             "invalid slot name \"%s\": use 1 to %d letters, digits, '_' or '-'",
             spec->name, PROTO_SLOT_NAME_MAX);
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (slots_find(d, spec->name) != NULL) {
    snprintf(err, errlen, "slot \"%s\" exists; remove it first or pick another name", spec->name);
    return PROTO_E_EXISTS;
  }
  if (d->n_slots >= ENGINE_MAX_SLOTS) {
    snprintf(err, errlen, "this daemon already hosts %d slots, the most it can", ENGINE_MAX_SLOTS);
    return PROTO_E_LIMIT;
  }
  if (spec->kind == SLOT_PLUGIN) {
    cp = catalog_find(&d->catalog, spec->plugin);
    if (cp == NULL) {
      snprintf(err, errlen, "no plugin named \"%s\"; `runwayctl plugins` lists them", spec->plugin);
      return PROTO_E_NOT_FOUND;
    }
  } else if (spec->kind == SLOT_EXEC && (spec->exec == NULL || spec->exec[0] == '\0')) {
    snprintf(err, errlen, "--exec needs a command line");
    return PROTO_E_INVALID_ARGUMENT;
  }
  int64_t n_in = spec->inputs >= 0 ? spec->inputs : (cp ? (int64_t)cp->n_inputs : 2);
  int64_t n_out = spec->outputs >= 0 ? spec->outputs : (cp ? (int64_t)cp->n_outputs : 2);
  bool midi = spec->midi >= 0 ? spec->midi != 0 : (cp ? cp->midi : false);
  if (n_in > RW_MAX_CHANNELS || n_out > RW_MAX_CHANNELS) {
    snprintf(err, errlen, "a slot has at most %u inputs and %u outputs", RW_MAX_CHANNELS,
             RW_MAX_CHANNELS);
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (n_out == 0 && n_in == 0) {
    snprintf(err, errlen, "a slot needs at least one input or output");
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (spec->latency_ms != 0 && spec->latency_frames != 0) {
    snprintf(err, errlen, "give the latency in ms or in frames, not both");
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (spec->latency_ms < 0 || spec->latency_ms > SLOT_MAX_LATENCY_MS ||
      !isfinite(spec->latency_ms)) {
    snprintf(err, errlen, "latency_ms must be between 0 and %.0f", SLOT_MAX_LATENCY_MS);
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (spec->latency_frames < 0 || spec->latency_frames > SLOT_MAX_LATENCY_FRAMES) {
    snprintf(err, errlen, "latency_frames must be between 1 and %d", SLOT_MAX_LATENCY_FRAMES);
    return PROTO_E_INVALID_ARGUMENT;
  }

  struct slot *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return PROTO_E_INTERNAL;
  }
  s->d = d;
  s->refs = 1;
  snprintf(s->name, sizeof(s->name), "%s", spec->name);
  s->kind = spec->kind;
  s->plugin = spec->kind == SLOT_PLUGIN ? strdup(spec->plugin) : NULL;
  s->exec = spec->kind == SLOT_EXEC ? strdup(spec->exec) : NULL;
  s->n_in = (uint32_t)n_in;
  s->n_out = (uint32_t)n_out;
  s->midi = midi;
  s->latency_ms = spec->latency_ms;
  s->latency_frames = (uint32_t)spec->latency_frames;
  s->state = SLOT_STOPPED;
  s->base.headroom_min_frames = INT64_MAX;
  uv_timer_init(d->loop, &s->restart_timer);
  s->restart_timer.data = s;
  s->pending_params = json_object();
  if ((cp != NULL && params_from_catalog(&s->params, cp) != 0) || s->pending_params == NULL ||
      (spec->kind == SLOT_PLUGIN && s->plugin == NULL) || (spec->kind == SLOT_EXEC && !s->exec)) {
    slot_unref(s);
    snprintf(err, errlen, "out of memory");
    return PROTO_E_INTERNAL;
  }

  if (backend_up(d)) {
    int rc = activate(s, err, errlen);
    if (rc != 0) {
      unregister_ports(s);
      drop_generation(s);
      slot_unref(s);
      return rc == -EEXIST ? PROTO_E_EXISTS : PROTO_E_INTERNAL;
    }
  }
  d->slots[d->n_slots++] = s;
  if (backend_up(d)) {
    start_worker(s);
    publish(d);
    backend_latency_update(d->backend);
  } else {
    set_error(s, "waiting for the audio server");
  }
  store_mark_dirty(d);
  if (s->latency > 0)
    log_info("slot %s added (%s, %u in, %u out%s, latency %u frames)", s->name,
             s->plugin ? s->plugin : (s->exec ? "exec" : "external"), s->n_in, s->n_out,
             s->midi ? ", midi" : "", s->latency);
  else
    log_info("slot %s added (%s, %u in, %u out%s); it starts when JACK is connected", s->name,
             s->plugin ? s->plugin : (s->exec ? "exec" : "external"), s->n_in, s->n_out,
             s->midi ? ", midi" : "");
  *out = s;
  return PROTO_OK;
}

void slots_remove(struct runwayd *d, struct slot *s) {
  uint32_t i;
  for (i = 0; i < d->n_slots; i++)
    if (d->slots[i] == s)
      break;
  if (i == d->n_slots)
    return;
  memmove(&d->slots[i], &d->slots[i + 1], (d->n_slots - i - 1) * sizeof(d->slots[0]));
  d->n_slots--;

  s->removed = true;
  uv_timer_stop(&s->restart_timer);
  slot_state_abort(s, "the slot was removed");
  forget_worker(s, SLOT_STOP_GRACE_MS);
  store_mark_dirty(d);
  if (backend_up(d) && s->has_ports)
    backend_latency_remove(d->backend, s);
  drop_generation(s);
  log_info("slot %s removed", s->name);
  /* Once the RT thread has let go, the last generation goes and with it the ports. */
  publish(d);
  slot_unref(s);
}

enum proto_err slots_restart(struct runwayd *d, struct slot *s, char *err, size_t errlen) {
  if (!backend_up(d)) {
    snprintf(err, errlen, "the audio server is not connected; the slot starts when it is");
    return PROTO_E_BACKEND;
  }
  s->restarts++;
  s->failures = 0;
  emit(s, "restart", json_pack("{s:s, s:I, s:s}", "slot", s->name, "restarts",
                               (json_int_t)s->restarts, "reason", "restart requested"));
  int rc = replace_worker(s, SLOT_STOP_GRACE_MS, err, errlen);
  if (rc != 0)
    return PROTO_E_INTERNAL;
  log_info("slot %s restarted on request", s->name);
  return PROTO_OK;
}

/* ---- external workers -------------------------------------------------------- */

static void on_attached_closed(struct control_conn *conn, void *owner) {
  struct slot *s = owner;
  char err[256];
  (void)conn;
  s->attached = NULL;
  s->pid = 0;
  if (s->removed || s->d->stopping || !backend_up(s->d))
    return;
  set_error(s, "the attached worker disconnected");
  log_info("slot %s: %s", s->name, s->last_error);
  /* A fresh segment for the next worker, so nothing of this one carries over. */
  if (new_generation(s, err, sizeof(err)) != 0) {
    set_error(s, "cannot prepare a new segment: %s", err);
    set_state(s, SLOT_FAULTED, s->last_error);
    return;
  }
  start_worker(s);
  publish(s->d);
}

enum proto_err slots_attach(struct runwayd *d, struct slot *s, struct control_conn *conn,
                            json_t *id, char *err, size_t errlen) {
  if (s->kind != SLOT_EXTERNAL) {
    snprintf(err, errlen,
             "slot \"%s\" runs a managed worker; only slots added with --external accept one",
             s->name);
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (!backend_up(d) || s->gen == NULL) {
    snprintf(err, errlen, "the audio server is not connected; attach again once it is");
    return PROTO_E_BACKEND;
  }
  if (s->attached != NULL) {
    snprintf(err, errlen, "a worker (pid %d) is already attached to slot \"%s\"", (int)s->pid,
             s->name);
    return PROTO_E_BUSY;
  }
  if (s->gen_used) {
    if (new_generation(s, err, errlen) != 0)
      return PROTO_E_INTERNAL;
    publish(d);
  }
  json_t *result = json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:I}", "slot", s->name,
                             "sample_rate", (json_int_t)backend_sample_rate(d->backend),
                             "latency_frames", (json_int_t)s->latency, "inputs",
                             (json_int_t)s->n_in, "outputs", (json_int_t)s->n_out, "midi", s->midi,
                             "generation", (json_int_t)s->generation);
  json_t *resp = proto_response_ok(id, result);
  int rc = resp ? control_conn_send_with_fd(conn, resp, s->gen->segment.fd) : -ENOMEM;
  json_decref(resp);
  if (rc != 0) {
    snprintf(err, errlen, "cannot pass the segment to the worker: %s", strerror(-rc));
    return PROTO_E_INTERNAL;
  }
  s->attached = conn;
  s->gen_used = true;
  s->pid = control_conn_pid(conn);
  s->started_ms = base_mono_ms();
  stall_watch_reset(&s->stall, 0, s->started_ms);
  control_conn_set_owner(conn, s, on_attached_closed);
  log_info("slot %s: worker pid %d attached", s->name, (int)s->pid);
  return PROTO_OK;
}

/* ---- JSON ----------------------------------------------------------------------- */

static json_t *names_json(char *const *names, uint32_t n) {
  json_t *a = json_array();
  for (uint32_t i = 0; i < n; i++)
    json_array_append_new(a, names[i] ? json_string(names[i]) : json_null());
  return a;
}

json_t *slot_to_json(const struct slot *s) {
  const struct runwayd *d = s->d;
  uint32_t rate = backend_sample_rate(d->backend);
  json_t *ports = json_pack("{s:o, s:o, s:o}", "inputs",
                            names_json(s->in_names, s->has_ports ? s->n_in : 0), "outputs",
                            names_json(s->out_names, s->has_ports ? s->n_out : 0), "midi",
                            s->midi_name ? json_string(s->midi_name) : json_null());
  const char *kind = s->kind == SLOT_PLUGIN ? "plugin" : s->kind == SLOT_EXEC ? "exec" : "external";
  return json_pack(
      "{s:s, s:s, s:s, s:o, s:s, s:o, s:I, s:o, s:I, s:I, s:b, s:o, s:I, s:I, s:o}", "name",
      s->name, "plugin", s->plugin ? s->plugin : kind, "kind", kind, "exec",
      s->exec ? json_string(s->exec) : json_null(), "state", slot_state_name(s->state), "pid",
      s->pid > 0 ? json_integer(s->pid) : json_null(), "latency_frames", (json_int_t)s->latency,
      "latency_ms", rate > 0 && s->latency > 0 ? json_real(s->latency * 1000.0 / rate) : json_null(),
      "inputs", (json_int_t)s->n_in, "outputs", (json_int_t)s->n_out, "midi", s->midi, "ports",
      ports, "restarts", (json_int_t)s->restarts, "generation", (json_int_t)s->generation,
      "last_error", s->last_error[0] ? json_string(s->last_error) : json_null());
}

json_t *slot_stats_json(const struct slot *s) {
  struct slot_totals t = s->base;
  if (s->gen != NULL)
    totals_add(&t, s->gen);
  /* The lead's recent minimum: the current generation's last one to two seconds. */
  int64_t recent = INT64_MAX;
  json_t *hist = json_array();
  for (int i = 0; i < ENGINE_LEAD_BUCKETS; i++)
    json_array_append_new(hist, json_integer((json_int_t)t.lead_histogram[i]));
  if (s->gen != NULL) {
    int64_t last = atomic_load(&s->gen->counters.lead_min_last);
    int64_t now = atomic_load(&s->gen->counters.lead_min_now);
    recent = last < now ? last : now;
  }
  return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:s, "
                   "s:I, s:o, s:o}",
                   "name", s->name, "underruns", (json_int_t)t.underruns, "underrun_frames",
                   (json_int_t)t.underrun_frames, "skipped_frames", (json_int_t)t.skipped_frames,
                   "overruns", (json_int_t)t.overruns, "nonfinite_samples",
                   (json_int_t)t.nonfinite_samples, "restarts", (json_int_t)s->restarts,
                   "latency_frames", (json_int_t)s->latency, "headroom_min_frames",
                   t.headroom_min_frames == INT64_MAX ? json_null()
                                                      : json_integer(t.headroom_min_frames),
                   "cycles", (json_int_t)t.cycles, "events_dropped", (json_int_t)t.events_dropped,
                   "wakeups", (json_int_t)t.wakeups, "faults", (json_int_t)t.faults,
                   "discontinuities", (json_int_t)t.discontinuities, "state",
                   slot_state_name(s->state), "no_worker_frames", (json_int_t)t.no_worker_frames,
                   "lead_histogram", hist, "lead_min_recent_frames",
                   recent == INT64_MAX ? json_null() : json_integer(recent));
}

/* ---- housekeeping --------------------------------------------------------------- */

static void fault(struct slot *s, const char *why) {
  set_error(s, "%s", why);
  s->base.faults++; /* the RT thread counts what it detects; this is what we detect */
  emit(s, "fault", json_pack("{s:s, s:s}", "slot", s->name, "reason", why));
  log_error("slot %s: faulted: %s", s->name, why);
  forget_worker(s, 0);
  /* Stop the RT thread from touching the segment until the next generation. */
  atomic_store(&s->gen->faulted, 1);
  schedule_restart(s, SLOT_FAULTED);
}

/*
 * Reads the parameters the worker declared in its info block. Built-in
 * plugins declare what the catalog said; any other worker declares them
 * here first. Values the daemon kept carry over by name.
 */
static void adopt_declared_params(struct slot *s, struct engine_slot *g) {
  struct param_table t;
  char err[256];
  if (params_from_info(&t, g->segment.info, err, sizeof(err)) != 0) {
    log_warn("slot %s: ignoring the parameters its worker declared: %s", s->name, err);
    return;
  }
  if (t.n == 0 && s->params.n > 0) {
    params_free(&t); /* a worker that declares nothing keeps the catalog's table */
    return;
  }
  params_carry_values(&t, &s->params);
  params_apply_json(&t, s->pending_params);
  bool had_table = s->params.n > 0;
  params_free(&s->params);
  s->params = t;
  s->params_from_worker = true;
  /* Values the worker did not get at its start (its table was unknown then). */
  for (uint32_t i = 0; i < s->params.n; i++) {
    const char *name = s->params.defs[i].name;
    if (had_table && json_object_get(s->pending_params, name) == NULL)
      continue;
    json_object_del(s->pending_params, name);
    struct engine_cmd cmd = {.type = ENGINE_CMD_PARAM, .param_id = s->params.defs[i].id,
                             .value = s->params.values[i]};
    if (s->params.values[i] != s->params.defs[i].def)
      engine_slot_command(g, &cmd);
  }
}

/*
 * Drains the worker's message ring: parameter values the plugin reports
 * (its own automation) update the daemon's values. A corrupt ring is a fault.
 */
static int drain_messages(struct slot *s) {
  struct rw_record ev;
  int rc;
  for (int i = 0; i < 4096; i++) {
    rc = shm_spsc_pop(&s->gen->messages, &ev);
    if (rc <= 0)
      return rc;
    if (ev.type != RW_EVENT_PARAM_OUT)
      continue;
    json_t *key = json_integer(ev.u.param.id);
    int idx = params_find(&s->params, key);
    json_decref(key);
    if (idx >= 0 && isfinite(ev.u.param.value)) {
      float v = params_clamp(&s->params.defs[idx], ev.u.param.value, NULL);
      if (v != s->params.values[idx]) {
        s->params.values[idx] = v;
        store_mark_dirty(s->d);
        emit_param(s, idx);
      }
    }
  }
  return 0;
}

static void check_slot(struct slot *s, uint64_t now, bool deep) {
  struct runwayd *d = s->d;
  struct engine_slot *g = s->gen;
  char why[256];
  /* The one-shot restart timer runs exactly while a restart is pending. */
  if (g == NULL || uv_is_active((uv_handle_t *)&s->restart_timer))
    return;
  struct rw_segment_control *ctl = g->segment.control;

  if (atomic_load(&g->faulted)) {
    fault(s, "the worker published impossible ring positions");
    return;
  }
  if (deep && shm_segment_check(&g->segment, why, sizeof(why)) != 0) {
    char msg[300];
    snprintf(msg, sizeof(msg), "the worker corrupted its segment: %s", why);
    fault(s, msg);
    return;
  }
  if (drain_messages(s) < 0) {
    fault(s, "the worker corrupted its message ring");
    return;
  }
  if (s->proc == NULL && s->attached == NULL)
    return;
  /* Acquire: pairs with the worker's release of worker_pid; its info block is complete. */
  if (s->state == SLOT_STARTING &&
      atomic_load_explicit(&ctl->worker_pid, memory_order_acquire) != 0) {
    s->last_error[0] = '\0';
    set_state(s, SLOT_RUNNING, "worker attached");
    log_info("slot %s: worker running", s->name);
    adopt_declared_params(s, g);
  }
  if (s->state != SLOT_RUNNING)
    return;

  uint64_t in_write = atomic_load(&ctl->in_write.value);
  uint64_t in_read = atomic_load(&ctl->in_read.value);
  uint64_t pending = in_write >= in_read ? in_write - in_read : 0;
  uint64_t wake = atomic_load(&ctl->wake_frames);
  uint64_t threshold = wake + backend_period(d->backend);
  if (threshold > g->segment.layout.capacity / 2)
    threshold = g->segment.layout.capacity / 2;
  if (stall_watch_check(&s->stall, in_read, pending, threshold, now, d->opt.stall_timeout_ms)) {
    snprintf(why, sizeof(why), "worker made no progress for %llu ms with input pending",
             (unsigned long long)d->opt.stall_timeout_ms);
    if (s->kind == SLOT_EXTERNAL) {
      /* Not ours to kill: disconnect it; the slot waits for a new one. */
      set_error(s, "%s; disconnected it", why);
      log_warn("slot %s: %s", s->name, s->last_error);
      struct control_conn *conn = s->attached;
      control_conn_close(conn);
      stall_watch_reset(&s->stall, in_read, now);
      return;
    }
    fault(s, why);
  }
}

/* At most one "underrun" event per slot and housekeeping tick, with the totals. */
static void report_underruns(struct slot *s) {
  struct slot_totals t = s->base;
  if (s->gen != NULL)
    totals_add(&t, s->gen);
  if (t.underruns <= s->underruns_reported)
    return;
  s->underruns_reported = t.underruns;
  emit(s, "underrun", json_pack("{s:s, s:I, s:I}", "slot", s->name, "underruns",
                                (json_int_t)t.underruns, "underrun_frames",
                                (json_int_t)t.underrun_frames));
}

void slots_housekeeping(struct runwayd *d, uint64_t now_ms) {
  engine_reclaim(&d->engine);
  bool deep = d->housekeeping_ticks % 10 == 0;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    check_slot(d->slots[i], now_ms, deep);
    if (i < d->n_slots && d->events != NULL && events_subscribers(d->events) > 0)
      report_underruns(d->slots[i]);
  }
}

/* ---- order of the RT table ---------------------------------------------------- */

/* Index of the slot owning input port `name` (audio or MIDI), or -1. */
static int slot_of_input(struct runwayd *d, const char *name) {
  for (uint32_t i = 0; i < d->n_slots; i++) {
    const struct slot *s = d->slots[i];
    if (!s->has_ports)
      continue;
    for (uint32_t k = 0; k < s->n_in; k++)
      if (s->in_names[k] && strcmp(s->in_names[k], name) == 0)
        return (int)i;
    if (s->midi_name && strcmp(s->midi_name, name) == 0)
      return (int)i;
  }
  return -1;
}

/*
 * Slots of this daemon connected to each other through JACK share one JACK
 * client, so JACK cannot order them: the callback must. It runs the table in
 * order, so the table is sorted topologically along those connections (a
 * slot after the slots that feed it, which keeps a chain's delay exactly the
 * sum of its L); slots in a feedback loop keep their order. Stable: slots
 * that do not feed each other keep the order they were added in.
 */
void slots_reorder(struct runwayd *d) {
  uint32_t n = d->n_slots;
  if (n < 2 || !backend_up(d))
    return;
  static bool feeds[ENGINE_MAX_SLOTS][ENGINE_MAX_SLOTS];
  uint32_t indegree[ENGINE_MAX_SLOTS] = {0};
  memset(feeds, 0, sizeof(feeds));
  for (uint32_t a = 0; a < n; a++) {
    const struct slot *s = d->slots[a];
    if (!s->has_ports)
      continue;
    for (uint32_t k = 0; k < s->n_out; k++) {
      const char **names = backend_port_connections(d->backend, s->out_ports[k]);
      for (size_t j = 0; names != NULL && names[j] != NULL; j++) {
        int b = slot_of_input(d, names[j]);
        if (b >= 0 && (uint32_t)b != a && !feeds[a][b]) {
          feeds[a][b] = true;
          indegree[b]++;
        }
      }
      backend_free_names(names);
    }
  }
  struct slot *order[ENGINE_MAX_SLOTS];
  bool placed[ENGINE_MAX_SLOTS] = {false};
  uint32_t m = 0;
  while (m < n) {
    /* The first slot in the current order that nobody unplaced feeds; in a loop, the first left. */
    uint32_t pick = n;
    for (uint32_t i = 0; i < n && pick == n; i++)
      if (!placed[i] && indegree[i] == 0)
        pick = i;
    for (uint32_t i = 0; i < n && pick == n; i++)
      if (!placed[i])
        pick = i;
    placed[pick] = true;
    order[m++] = d->slots[pick];
    for (uint32_t b = 0; b < n; b++)
      if (feeds[pick][b] && indegree[b] > 0)
        indegree[b]--;
  }
  if (memcmp(order, d->slots, n * sizeof(order[0])) == 0)
    return;
  memcpy(d->slots, order, n * sizeof(order[0]));
  log_debug("slots reordered to follow their connections");
  publish(d);
}

/* ---- backend transitions ------------------------------------------------------- */

void slots_backend_up(struct runwayd *d) {
  char err[256];
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    if (activate(s, err, sizeof(err)) != 0) {
      set_error(s, "%s", err);
      log_error("slot %s: %s", s->name, err);
      set_state(s, SLOT_FAULTED, s->last_error);
    }
  }
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (d->slots[i]->gen != NULL)
      start_worker(d->slots[i]);
  publish(d);
  backend_latency_update(d->backend);
}

void slots_backend_down(struct runwayd *d) {
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    uv_timer_stop(&s->restart_timer);
    forget_worker(s, SLOT_STOP_GRACE_MS);
    drop_generation(s);
    /* The connection is gone, and its ports with it. */
    forget_ports(s);
    set_error(s, "waiting for the audio server");
    set_state(s, SLOT_STOPPED, s->last_error);
  }
  publish(d);
}

void slots_rebuild_all(struct runwayd *d, const char *why) {
  char err[256];
  log_info("%s: rebuilding %u slot(s)", why, d->n_slots);
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    if (!s->has_ports)
      continue;
    forget_worker(s, SLOT_STOP_GRACE_MS);
    uv_timer_stop(&s->restart_timer);
    if (new_generation(s, err, sizeof(err)) != 0) {
      set_error(s, "%s", err);
      set_state(s, SLOT_FAULTED, s->last_error);
      drop_generation(s);
    }
  }
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (d->slots[i]->gen != NULL)
      start_worker(d->slots[i]);
  publish(d);
  backend_latency_update(d->backend);
}

void slots_shutdown(struct runwayd *d) {
  while (d->n_slots > 0) {
    struct slot *s = d->slots[d->n_slots - 1];
    d->n_slots--;
    s->removed = true;
    uv_timer_stop(&s->restart_timer);
    slot_state_abort(s, "runwayd is stopping");
    forget_worker(s, SLOT_STOP_GRACE_MS);
    drop_generation(s);
    slot_unref(s);
  }
  publish(d);
}

/* ---- parameters ------------------------------------------------------------- */

static void emit_param(struct slot *s, int i) {
  emit(s, "param", json_pack("{s:s, s:s, s:I, s:f}", "slot", s->name, "param",
                             s->params.defs[i].name, "param_id", (json_int_t)s->params.defs[i].id,
                             "value", s->params.values[i]));
}

static json_t *param_not_found(const struct slot *s, json_t *id, const json_t *key) {
  char what[64];
  if (json_is_string(key))
    snprintf(what, sizeof(what), "\"%s\"", json_string_value(key));
  else
    snprintf(what, sizeof(what), "id %lld", (long long)json_integer_value(key));
  if (s->params.n == 0 && !s->params_from_worker && s->kind != SLOT_PLUGIN)
    return proto_response_error(id, PROTO_E_NOT_FOUND,
                                "slot \"%s\" has no parameter %s: its worker has not declared any "
                                "yet (it is %s)",
                                s->name, what, slot_state_name(s->state));
  return proto_response_error(id, PROTO_E_NOT_FOUND,
                              "slot \"%s\" has no parameter %s; `runwayctl param list %s` shows "
                              "them",
                              s->name, what, s->name);
}

json_t *slots_param_list(struct slot *s, json_t *id) {
  return proto_response_ok(id, json_pack("{s:s, s:s, s:o}", "slot", s->name, "declared_by",
                                         s->params_from_worker ? "worker" : "catalog", "params",
                                         params_list_json(&s->params)));
}

json_t *slots_param_get(struct slot *s, json_t *id, const json_t *key) {
  int i = params_find(&s->params, key);
  if (i < 0)
    return param_not_found(s, id, key);
  const struct param_def *pd = &s->params.defs[i];
  return proto_response_ok(id, json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:s}", "slot",
                                         s->name, "param", pd->name, "id", (json_int_t)pd->id,
                                         "value", s->params.values[i], "min", pd->min, "max",
                                         pd->max, "default", pd->def, "unit", pd->unit));
}

json_t *slots_param_set(struct slot *s, json_t *id, const json_t *key, double value) {
  int i = params_find(&s->params, key);
  if (i < 0)
    return param_not_found(s, id, key);
  if (!isfinite(value))
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "the value must be a finite number");
  const struct param_def *pd = &s->params.defs[i];
  bool clamped;
  float v = params_clamp(pd, value, &clamped);
  if (s->gen != NULL) {
    struct engine_cmd cmd = {.type = ENGINE_CMD_PARAM, .param_id = pd->id, .value = v};
    if (engine_slot_command(s->gen, &cmd) != 0)
      return proto_response_error(id, PROTO_E_BUSY,
                                  "slot \"%s\" has too many parameter changes queued; try again",
                                  s->name);
  }
  s->params.values[i] = v;
  store_mark_dirty(s->d);
  emit_param(s, i);
  return proto_response_ok(id, json_pack("{s:s, s:s, s:I, s:f, s:f, s:b, s:s}", "slot", s->name,
                                         "param", pd->name, "id", (json_int_t)pd->id, "value", v,
                                         "requested", value, "clamped", clamped, "unit", pd->unit));
}

void slots_set_param_values(struct slot *s, const json_t *values) {
  const char *name;
  json_t *v;
  if (!json_is_object(values))
    return;
  json_object_foreach((json_t *)values, name, v) {
    if (!json_is_number(v))
      continue;
    json_t *key = json_string(name);
    int i = params_find(&s->params, key);
    json_decref(key);
    if (i < 0) {
      /* Not declared (yet): kept and applied when the worker declares it. */
      json_object_set(s->pending_params, name, v);
      continue;
    }
    float f = params_clamp(&s->params.defs[i], json_number_value(v), NULL);
    s->params.values[i] = f;
    emit_param(s, i);
    if (s->gen != NULL) {
      struct engine_cmd cmd = {.type = ENGINE_CMD_PARAM, .param_id = s->params.defs[i].id,
                               .value = f};
      engine_slot_command(s->gen, &cmd);
    }
  }
  store_mark_dirty(s->d);
}

void slots_resend_params(struct slot *s) {
  if (s->gen == NULL)
    return;
  for (uint32_t i = 0; i < s->params.n; i++) {
    struct engine_cmd cmd = {.type = ENGINE_CMD_PARAM, .param_id = s->params.defs[i].id,
                             .value = s->params.values[i]};
    if (engine_slot_command(s->gen, &cmd) != 0)
      break;
  }
}

json_t *slots_param_values(const struct slot *s) {
  json_t *o = params_values_json(&s->params);
  json_object_update_missing(o, s->pending_params);
  return o;
}

json_t *slot_definition_json(const struct slot *s) {
  const char *kind = s->kind == SLOT_PLUGIN ? "plugin" : s->kind == SLOT_EXEC ? "exec" : "external";
  json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:b}", "name", s->name, "kind", kind, "inputs",
                        (json_int_t)s->n_in, "outputs", (json_int_t)s->n_out, "midi", s->midi);
  if (s->plugin != NULL)
    json_object_set_new(o, "plugin", json_string(s->plugin));
  if (s->exec != NULL)
    json_object_set_new(o, "exec", json_string(s->exec));
  if (s->latency_ms > 0)
    json_object_set_new(o, "latency_ms", json_real(s->latency_ms));
  if (s->latency_frames > 0)
    json_object_set_new(o, "latency_frames", json_integer(s->latency_frames));
  return o;
}
