/*
 * Slot records and their life: added, activated when the server is there,
 * restarted, removed; each slot's supervisor keeps its worker running.
 */
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lv2.h"
#include "slot_internal.h"
#include "slot_state.h"

void slot__emit(struct slot *s, const char *type, json_t *fields) {
  if (s->d->events != NULL)
    events_emit(s->d->events, type, fields);
  else
    json_decref(fields);
}

/* ---- the supervisor's questions ------------------------------------------------ */

/* Subscribers hear about every change of a slot's state, with the reason. */
static void on_worker_changed(void *owner, enum worker_state state, const char *reason) {
  struct slot *s = owner;
  slot__emit(s, "slot",
             json_pack("{s:s, s:s, s:o, s:I, s:s}", "slot", s->name, "state",
                       worker_state_name(state), "pid",
                       s->sv.pid > 0 ? json_integer(s->sv.pid) : json_null(), "generation",
                       (json_int_t)s->generation, "reason", reason));
}

static void on_worker_restart(void *owner, const char *reason) {
  struct slot *s = owner;
  char err[256];
  if (s->removed || !slot__backend_up(s->d))
    return;
  if (s->replacing != NULL) {
    /* A new worker is taking over already; should it fail, the slot restarts then. */
    slot__replace_defer_restart(s);
    return;
  }
  slot__emit(s, "restart",
             json_pack("{s:s, s:I, s:s}", "slot", s->name, "restarts", (json_int_t)s->sv.restarts,
                       "reason", reason));
  if (slot__replace_worker(s, SLOT_STOP_GRACE_MS, err, sizeof(err)) != 0)
    supervisor_fail(&s->sv, WORKER_FAULTED, "cannot restart: %s", err);
}

/* The attached worker went away: a fresh segment for the next, so nothing carries over. */
static void on_worker_detached(void *owner) {
  struct slot *s = owner;
  char err[256];
  if (s->removed || s->d->stopping || !slot__backend_up(s->d))
    return;
  if (slot__generation_new(s, err, sizeof(err)) != 0) {
    char why[300];
    snprintf(why, sizeof(why), "cannot prepare a new segment: %s", err);
    log_error("slot %s: %s", s->name, why);
    supervisor_stop(&s->sv, 0, WORKER_FAULTED, why);
    return;
  }
  slot__start_worker(s);
  slot__publish(s->d);
}

static void on_next_failed(void *owner, const char *reason) {
  slot__replace_worker_failed(owner, reason);
}

static const struct supervisor_ops slot_supervisor_ops = {
    .restart = on_worker_restart,
    .changed = on_worker_changed,
    .detached = on_worker_detached,
    .next_failed = on_next_failed,
};

/*
 * Workers never run as root: when runwayd does, they run as worker_user
 * (default "runway", the system service's user, else "nobody").
 */
static int worker_identity(struct runwayd *d, struct worker_launch *l, char *err, size_t errlen) {
  l->uid = (uid_t)-1;
  l->gid = (gid_t)-1;
  if (geteuid() != 0)
    return 0;
  const char *name = d->opt.worker_user;
  struct passwd *pw = name ? getpwnam(name) : getpwnam("runway");
  if (pw == NULL && name == NULL)
    pw = getpwnam(name = "nobody");
  if (pw == NULL) {
    snprintf(err, errlen, "worker_user \"%s\" is not a user on this system", name);
    return -ENOENT;
  }
  if (pw->pw_uid == 0) {
    snprintf(err, errlen, "worker_user \"%s\" is root; workers must run unprivileged", pw->pw_name);
    return -EPERM;
  }
  l->uid = pw->pw_uid;
  l->gid = pw->pw_gid;
  snprintf(d->worker_home, sizeof(d->worker_home), "%s", pw->pw_dir);
  l->home = d->worker_home;
  return 0;
}

/* worker_env: names separated by spaces or commas. */
static int worker_env_names(struct runwayd *d, struct worker_launch *l, char *err, size_t errlen) {
  size_t n = 0;
  const char *p = d->opt.worker_env ? d->opt.worker_env : "";
  snprintf(d->worker_env_text, sizeof(d->worker_env_text), "%s", p);
  for (char *tok = strtok(d->worker_env_text, " ,\t"); tok != NULL; tok = strtok(NULL, " ,\t")) {
    if (n + 1 >= sizeof(d->worker_env) / sizeof(d->worker_env[0])) {
      snprintf(err, errlen, "worker_env names too many variables");
      return -E2BIG;
    }
    d->worker_env[n++] = tok;
  }
  d->worker_env[n] = NULL;
  l->env_allow = d->worker_env;
  return 0;
}

int slots_init(struct runwayd *d, char *err, size_t errlen) {
  d->supervise = (struct supervisor_env){
      .loop = d->loop,
      /* The launcher is runwayd itself: as the child sees it, even if the file was replaced. */
      .launch = {.launcher = "/proc/self/exe"},
      .stall_timeout_ms = d->opt.stall_timeout_ms,
      .policy = supervisor_default_policy,
  };
  uv_timer_init(d->loop, &d->reclaim_timer);
  d->reclaim_timer.data = d;
  uv_timer_init(d->loop, &d->replace_timer);
  d->replace_timer.data = d;
  int rc = worker_identity(d, &d->supervise.launch, err, errlen);
  if (rc == 0)
    rc = worker_env_names(d, &d->supervise.launch, err, errlen);
  return rc;
}

/* ---- workers --------------------------------------------------------------------- */

void slot__start_worker(struct slot *s) {
  struct slot_command c;
  slot__worker_command(s->d, s->kind, s->plugin, s->exec, &c);
  if (supervisor_start(&s->sv, &c.cmd, s->gen->segment.fd) != 0 || c.cmd.external)
    return;
  s->gen_used = true;
  log_info("slot %s: worker pid %d started (generation %llu)", s->name, (int)s->sv.pid,
           (unsigned long long)s->generation);
}

int slot__replace_worker(struct slot *s, uint64_t grace_ms, char *err, size_t errlen) {
  supervisor_stop(&s->sv, grace_ms, WORKER_STARTING, NULL);
  int rc = slot__generation_new(s, err, errlen);
  if (rc != 0)
    return rc;
  /*
   * The worker starts before the RT thread adopts the generation: its
   * start-up time then comes off the wait for input, not off L.
   */
  slot__start_worker(s);
  slot__publish(s->d);
  return 0;
}

/* ---- records ---------------------------------------------------------------------- */

/* The supervisor's timer handle closed: the last of the slot goes. */
static void on_slot_closed(uv_handle_t *h) {
  struct supervisor *sv = h->data;
  struct slot *s = sv->owner;
  params_free(&s->params);
  json_decref(s->pending_params);
  json_decref(s->config_def);
  free(s->state_blob);
  engine_bypass_unref(s->bypass);
  free(s->plugin);
  free(s->declared_plugin);
  free(s->exec);
  free(s);
}

static void close_ports(struct slot *s) {
  backend_slot_close(s->d->backend, s->ports);
  s->ports = NULL;
}

void slot__unref(struct slot *s) {
  if (--s->refs > 0)
    return;
  close_ports(s);
  if (slot__backend_up(s->d))
    backend_latency_update(s->d->backend);
  supervisor_close(&s->sv, on_slot_closed);
}

struct slot *slots_find(struct runwayd *d, const char *name) {
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (strcmp(d->slots[i]->name, name) == 0)
      return d->slots[i];
  return NULL;
}

/* Ports and a generation: what a slot needs before its worker can start. */
static int activate(struct slot *s, char *err, size_t errlen) {
  struct runwayd *d = s->d;
  if (s->ports != NULL && !backend_slot_live(d->backend, s->ports))
    close_ports(s); /* from a connection that is gone */
  if (s->ports == NULL) {
    int rc =
        backend_slot_open(d->backend, s->name, s->n_in, s->n_out, s->midi, &s->ports, err, errlen);
    if (rc != 0)
      return rc;
  }
  return slot__generation_new(s, err, errlen);
}

/*
 * The locked memory a slot's segment takes (every mapping of runwayd is
 * locked): at the server's rate and period, or at 48 kHz and 1024 frames
 * while no server is there.
 */
static uint64_t segment_bytes(const struct runwayd *d, const struct slot_spec *spec,
                              uint32_t latency) {
  bool up = slot__backend_up(d);
  struct proto_segment_params p = {
      .sample_rate = up ? backend_sample_rate(d->backend) : 48000,
      .n_inputs = (uint32_t)spec->inputs,
      .n_outputs = (uint32_t)spec->outputs,
      .flags = spec->midi ? RW_SEGMENT_F_MIDI : 0,
      .latency = latency > 0 ? latency : 1,
      .max_period = up ? backend_period(d->backend) : 1024,
      .generation = 1,
  };
  struct rw_segment_header h;
  char err[128];
  if (proto_segment_layout(&p, &h, err, sizeof(err)) != 0)
    return 0;
  return h.file_size[RW_FILE_DAEMON] + h.file_size[RW_FILE_WORKER];
}

/* Per-user and total quotas of slots and locked memory (DESIGN.md: trust model). */
static enum proto_err check_quotas(const struct runwayd *d, const struct slot_spec *spec, char *err,
                                   size_t errlen) {
  uint32_t rate = slot__backend_up(d) ? backend_sample_rate(d->backend) : 48000;
  double ms = spec->latency_ms > 0 ? spec->latency_ms : d->opt.latency_ms;
  uint32_t latency = spec->latency_frames > 0 ? (uint32_t)spec->latency_frames
                                              : (uint32_t)llround(ms * rate / 1000.0);
  uint64_t bytes = segment_bytes(d, spec, latency), total = bytes, mine = bytes;
  uint32_t my_slots = 1;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    total += d->slots[i]->segment_bytes;
    if (!d->slots[i]->privileged && d->slots[i]->owner == spec->owner) {
      mine += d->slots[i]->segment_bytes;
      my_slots++;
    }
  }
  const uint64_t mib = 1024 * 1024;
  if (total > d->opt.max_memory_mb * mib) {
    snprintf(err, errlen,
             "with this slot runwayd's segments would lock %llu MiB, over max_memory_mb = %llu; "
             "remove slots, or use shorter latencies or fewer channels",
             (unsigned long long)((total + mib - 1) / mib),
             (unsigned long long)d->opt.max_memory_mb);
    return PROTO_E_LIMIT;
  }
  if (spec->privileged)
    return PROTO_OK;
  if (my_slots > d->opt.max_slots_per_user) {
    snprintf(err, errlen, "uid %u already has %u slots, max_slots_per_user; remove one first",
             (unsigned)spec->owner, my_slots - 1);
    return PROTO_E_LIMIT;
  }
  if (mine > d->opt.max_memory_mb_per_user * mib) {
    snprintf(err, errlen,
             "with this slot uid %u's segments would lock %llu MiB, over max_memory_mb_per_user "
             "= %llu; remove slots, or use shorter latencies or fewer channels",
             (unsigned)spec->owner, (unsigned long long)((mine + mib - 1) / mib),
             (unsigned long long)d->opt.max_memory_mb_per_user);
    return PROTO_E_LIMIT;
  }
  return PROTO_OK;
}

/* Checks a spec against the catalog and the limits; fills in the plugin's channel counts. */
static enum proto_err check_spec(struct runwayd *d, const struct slot_spec *spec,
                                 struct slot_spec *out, const struct catalog_plugin **cp, char *err,
                                 size_t errlen) {
  *out = *spec;
  *cp = NULL;
  if (!proto_valid_slot_name(spec->name)) {
    snprintf(err, errlen, "invalid slot name \"%s\": use 1 to %d letters, digits, '_' or '-'",
             spec->name ? spec->name : "", PROTO_SLOT_NAME_MAX);
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
    *cp = spec->plugin ? catalog_find(&d->catalog, spec->plugin) : NULL;
    if (*cp == NULL) {
      snprintf(err, errlen, "no plugin named \"%s\"; `runwayctl plugins` lists them",
               spec->plugin ? spec->plugin : "");
      return PROTO_E_NOT_FOUND;
    }
  } else if (spec->kind == SLOT_LV2 && (spec->plugin == NULL || spec->plugin[0] == '\0' ||
                                        spec->inputs < 0 || spec->outputs < 0 || spec->midi < 0)) {
    /* lv2_fill_spec asks the plugin before a slot is made; slots.json keeps what it said. */
    snprintf(err, errlen, "an LV2 slot needs its plugin's URI and channel counts");
    return PROTO_E_INVALID_ARGUMENT;
  } else if (spec->kind == SLOT_EXEC && (spec->exec == NULL || spec->exec[0] == '\0')) {
    snprintf(err, errlen, "--exec needs a command line");
    return PROTO_E_INVALID_ARGUMENT;
  } else if (spec->kind == SLOT_EXEC && !spec->privileged) {
    snprintf(err, errlen,
             "only root and runwayd's own user may start programs (--exec); use a plugin "
             "(`runwayctl plugins` lists them), or declare the slot in runwayd's configuration");
    return PROTO_E_PERMISSION;
  }
  out->inputs = spec->inputs >= 0 ? spec->inputs : (*cp ? (int64_t)(*cp)->n_inputs : 2);
  out->outputs = spec->outputs >= 0 ? spec->outputs : (*cp ? (int64_t)(*cp)->n_outputs : 2);
  out->midi = spec->midi >= 0 ? spec->midi != 0 : (*cp ? (*cp)->midi : false);
  if (out->inputs > RW_MAX_CHANNELS || out->outputs > RW_MAX_CHANNELS) {
    snprintf(err, errlen, "a slot has at most %u inputs and %u outputs", RW_MAX_CHANNELS,
             RW_MAX_CHANNELS);
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (out->outputs == 0 && out->inputs == 0) {
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
  return check_quotas(d, out, err, errlen);
}

static struct slot *slot_new(struct runwayd *d, const struct slot_spec *spec,
                             const struct catalog_plugin *cp) {
  struct slot *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->d = d;
  s->refs = 1;
  snprintf(s->name, sizeof(s->name), "%s", spec->name);
  s->kind = spec->kind;
  s->owner = spec->owner;
  s->privileged = spec->privileged;
  s->n_in = (uint32_t)spec->inputs;
  s->n_out = (uint32_t)spec->outputs;
  s->midi = spec->midi != 0;
  s->on_fault = spec->on_fault;
  s->latency_ms = spec->latency_ms;
  s->latency_frames = (uint32_t)spec->latency_frames;
  s->base.headroom_min_frames = INT64_MAX;
  for (uint32_t i = 0; i < RW_MAX_CHANNELS; i++)
    s->meters[i] = NAN;
  supervisor_init(&s->sv, &d->supervise, &slot_supervisor_ops, s, s->name);
  bool named = spec->kind == SLOT_PLUGIN || spec->kind == SLOT_LV2;
  s->plugin = named ? strdup(spec->plugin) : NULL;
  s->exec = spec->kind == SLOT_EXEC ? strdup(spec->exec) : NULL;
  s->pending_params = json_object();
  if ((cp != NULL && params_from_catalog(&s->params, cp) != 0) || s->pending_params == NULL ||
      (named && s->plugin == NULL) || (spec->kind == SLOT_EXEC && !s->exec)) {
    slot__unref(s);
    return NULL;
  }
  return s;
}

enum proto_err slots_add(struct runwayd *d, const struct slot_spec *spec, struct slot **out,
                         char *err, size_t errlen) {
  const struct catalog_plugin *cp;
  struct slot_spec full;
  enum proto_err code = check_spec(d, spec, &full, &cp, err, errlen);
  if (code != PROTO_OK)
    return code;
  struct slot *s = slot_new(d, &full, cp);
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return PROTO_E_INTERNAL;
  }
  if (slot__backend_up(d)) {
    int rc = activate(s, err, errlen);
    if (rc != 0) {
      slot__generation_drop(s);
      slot__unref(s);
      return rc == -EEXIST ? PROTO_E_EXISTS : PROTO_E_INTERNAL;
    }
  }
  d->slots[d->n_slots++] = s;
  if (slot__backend_up(d)) {
    slot__start_worker(s);
    slot__publish(d);
    backend_latency_update(d->backend);
  } else {
    snprintf(s->sv.error, sizeof(s->sv.error), "waiting for the audio server");
  }
  store_mark_dirty(d);
  const char *what = s->plugin ? s->plugin : slot_kind_name(s->kind);
  if (s->latency > 0)
    log_info("slot %s added (%s, %u in, %u out%s, latency %u frames)", s->name, what, s->n_in,
             s->n_out, s->midi ? ", midi" : "", s->latency);
  else
    log_info("slot %s added (%s, %u in, %u out%s); it starts when %s is connected", s->name, what,
             s->n_in, s->n_out, s->midi ? ", midi" : "", backend_server_name(d->backend));
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
  slot__replace_abort(s, "the slot was removed");
  slot_state_abort(s, "the slot was removed");
  supervisor_stop(&s->sv, SLOT_STOP_GRACE_MS, WORKER_STOPPED, "the slot was removed");
  store_mark_dirty(d);
  /* The RT thread may still run the ports a cycle; their names are free for a new slot now. */
  if (s->ports != NULL && backend_slot_live(d->backend, s->ports))
    backend_slot_retire(d->backend, s->ports);
  slot__generation_drop(s);
  log_info("slot %s removed", s->name);
  /* Once the RT thread has let go, the last generation goes and with it the ports. */
  slot__publish(d);
  slot__unref(s);
}

enum proto_err slots_restart(struct runwayd *d, struct slot *s, char *err, size_t errlen) {
  if (!slot__backend_up(d)) {
    snprintf(err, errlen, "the audio server is not connected; the slot starts when it is");
    return PROTO_E_BACKEND;
  }
  if (s->replacing != NULL) {
    snprintf(err, errlen, "slot \"%s\" is having its worker replaced; wait for that to finish",
             s->name);
    return PROTO_E_BUSY;
  }
  /* The restart callback replaces the worker; a failure there faults the slot. */
  supervisor_restart_now(&s->sv, "restart requested");
  if (s->sv.state == WORKER_FAULTED && supervisor_restart_pending(&s->sv)) {
    snprintf(err, errlen, "%s", s->sv.error);
    return PROTO_E_INTERNAL;
  }
  log_info("slot %s restarted on request", s->name);
  return PROTO_OK;
}

/* ---- external workers -------------------------------------------------------------- */

enum proto_err slots_attach(struct runwayd *d, struct slot *s, struct control_conn *conn,
                            json_t *id, char *err, size_t errlen) {
  if (s->kind != SLOT_EXTERNAL) {
    snprintf(err, errlen,
             "slot \"%s\" runs a managed worker; only slots added with --external accept one",
             s->name);
    return PROTO_E_INVALID_ARGUMENT;
  }
  if (!slot__backend_up(d) || s->gen == NULL) {
    snprintf(err, errlen, "the audio server is not connected; attach again once it is");
    return PROTO_E_BACKEND;
  }
  if (!supervisor_can_attach(&s->sv, conn, err, errlen))
    return PROTO_E_BUSY;
  if (s->gen_used) {
    if (slot__generation_new(s, err, errlen) != 0)
      return PROTO_E_INTERNAL;
    slot__publish(d);
  }
  json_t *result =
      json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:I}", "slot", s->name, "sample_rate",
                (json_int_t)backend_sample_rate(d->backend), "latency_frames",
                (json_int_t)s->latency, "inputs", (json_int_t)s->n_in, "outputs",
                (json_int_t)s->n_out, "midi", s->midi, "generation", (json_int_t)s->generation);
  json_t *resp = proto_response_built(id, result);
  int rc =
      resp ? control_conn_send_with_fds(conn, resp, s->gen->segment.fd, RW_FILE_COUNT) : -ENOMEM;
  json_decref(resp);
  if (rc != 0) {
    snprintf(err, errlen, "cannot pass the segment to the worker: %s", strerror(-rc));
    return PROTO_E_INTERNAL;
  }
  s->gen_used = true;
  supervisor_attach(&s->sv, conn);
  log_info("slot %s: worker pid %d attached", s->name, (int)s->sv.pid);
  return PROTO_OK;
}

/* ---- the audio server comes and goes ------------------------------------------------- */

void slots_backend_up(struct runwayd *d) {
  char err[256];
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    if (activate(s, err, sizeof(err)) != 0) {
      log_error("slot %s: %s", s->name, err);
      supervisor_stop(&s->sv, 0, WORKER_FAULTED, err);
    }
  }
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (d->slots[i]->gen != NULL)
      slot__start_worker(d->slots[i]);
  slot__publish(d);
  backend_latency_update(d->backend);
}

void slots_backend_down(struct runwayd *d) {
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    slot__replace_abort(s, "the audio server went away");
    supervisor_stop(&s->sv, SLOT_STOP_GRACE_MS, WORKER_STOPPED, "waiting for the audio server");
    slot__generation_drop(s);
    /* The connection is gone, and its ports with it. */
    close_ports(s);
  }
  slot__publish(d);
}

void slots_rebuild_all(struct runwayd *d, const char *why) {
  char err[256];
  log_info("%s: rebuilding %u slot(s)", why, d->n_slots);
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    if (s->ports == NULL)
      continue;
    slot__replace_abort(s, why);
    supervisor_stop(&s->sv, SLOT_STOP_GRACE_MS, WORKER_STARTING, NULL);
    /* New rings for another rate or period: nothing of the old ones plays on. */
    if (s->outgoing != NULL) {
      engine_slot_unref(s->outgoing);
      s->outgoing = NULL;
    }
    s->gen_published = false;
    if (slot__generation_new(s, err, sizeof(err)) != 0) {
      supervisor_stop(&s->sv, 0, WORKER_FAULTED, err);
      slot__generation_drop(s);
    }
  }
  for (uint32_t i = 0; i < d->n_slots; i++)
    if (d->slots[i]->gen != NULL)
      slot__start_worker(d->slots[i]);
  slot__publish(d);
  backend_latency_update(d->backend);
}

void slots_shutdown(struct runwayd *d) {
  lv2_queries_cancel(d);
  while (d->n_slots > 0) {
    struct slot *s = d->slots[d->n_slots - 1];
    d->n_slots--;
    s->removed = true;
    slot__replace_abort(s, "runwayd is stopping");
    slot_state_abort(s, "runwayd is stopping");
    supervisor_stop(&s->sv, SLOT_STOP_GRACE_MS, WORKER_STOPPED, NULL);
    slot__generation_drop(s);
    slot__unref(s);
  }
  slot__publish(d);
  uv_timer_stop(&d->reclaim_timer);
  uv_timer_stop(&d->replace_timer);
}
