/*
 * Seamless replacement: `slot replace` and `slot restart --seamless`. A new
 * worker starts on a new generation beside the old one; the RT thread feeds
 * it the old ring's input history and then the same input, and crossfades to
 * it once it is as far ahead (rt/takeover.c). Here: when the new worker
 * starts and what it gets (plugin, parameters, the old worker's fresh state
 * when the plugin is the same), watching it until the switch, then making
 * it the slot's worker and stopping the old one; a new worker that fails
 * before the switch is stopped and the old one plays on. The request is
 * answered when it is over, either way.
 *
 * Also here, because it is the same kind of watch: with --on-fault bypass, a
 * generation that goes stays in the RT table until its output has run out
 * (slot__keep_outgoing).
 *
 * Control thread only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slot_internal.h"
#include "slot_state.h"

#define REPLACE_POLL_MS 5
/* The new worker has this long to start and catch up before it is given up on. */
#define REPLACE_TIMEOUT_MS 5000
/* How long the old worker may take to save its state for the new one. */
#define REPLACE_STATE_TIMEOUT_MS 1000
/* A crossfade unless asked otherwise. */
#define REPLACE_CROSSFADE_MS 20.0
/* The new worker's ring has room for the history and this much start-up time. */
#define REPLACE_STARTUP_ALLOWANCE_MS 1000
/* An outgoing generation's output runs out within L once its worker stopped. */
#define OUTGOING_SLACK_MS 200

enum replace_phase { REPLACE_SAVING, REPLACE_WARMING, REPLACE_FADING };

struct slot_replace {
  enum replace_phase phase;
  struct engine_slot *gen; /* the incoming generation (ours), NULL while saving */
  enum slot_kind kind;
  char *plugin;
  char *exec;
  enum slot_on_fault on_fault;
  bool same;                 /* the same plugin: parameters and state carry over */
  bool restart;              /* slot restart --seamless, for messages */
  struct param_table params; /* another plugin's, from the catalog */
  uint32_t crossfade;        /* frames */
  struct control_conn *conn; /* the request waiting for the end, or NULL */
  json_t *id;
  uint64_t asked_ms;
  uint64_t deadline_ms;
  uint64_t switch_ms;
  bool state_carried;
  bool restart_deferred; /* the old worker failed meanwhile: restart it if this fails */
};

static const char *what(const struct slot_replace *r) {
  return r->restart ? "seamless restart" : "replacement";
}

static void rec_free(struct slot_replace *r) {
  engine_slot_unref(r->gen);
  params_free(&r->params);
  json_decref(r->id);
  free(r->plugin);
  free(r->exec);
  free(r);
}

static void on_poll(uv_timer_t *t);

static void poll_soon(struct runwayd *d) {
  if (!uv_is_active((uv_handle_t *)&d->replace_timer))
    uv_timer_start(&d->replace_timer, on_poll, REPLACE_POLL_MS, REPLACE_POLL_MS);
}

struct engine_slot *slot__incoming(const struct slot *s) {
  return s->replacing != NULL ? s->replacing->gen : NULL;
}

struct engine_slot *slot__incoming_same(const struct slot *s) {
  return s->replacing != NULL && s->replacing->same ? s->replacing->gen : NULL;
}

json_t *slot__replace_json(const struct slot *s) {
  static const char *const phases[] = {
      [REPLACE_SAVING] = "saving", [REPLACE_WARMING] = "warming", [REPLACE_FADING] = "switching"};
  const struct slot_replace *r = s->replacing;
  if (r == NULL)
    return json_null();
  return json_pack("{s:s, s:s, s:s, s:o, s:I}", "phase", phases[r->phase], "kind",
                   slot_kind_name(r->kind), r->kind == SLOT_EXEC ? "exec" : "plugin",
                   r->kind == SLOT_EXEC ? r->exec : r->plugin, "pid",
                   s->sv.next_pid > 0 ? json_integer(s->sv.next_pid) : json_null(), "since_ms",
                   (json_int_t)(base_mono_ms() - r->asked_ms));
}

void slot__keep_outgoing(struct slot *s, struct engine_slot *g) {
  engine_slot_ref(g);
  s->outgoing = g;
  s->outgoing_deadline_ms = base_mono_ms() + SLOT_STOP_GRACE_MS + OUTGOING_SLACK_MS +
                            (uint64_t)g->tl.g.latency * 1000 / (g->segment.layout.sample_rate ?: 1);
  poll_soon(s->d);
}

/* The answer to the waiting request, if any; takes resp. */
static void answer(struct slot_replace *r, json_t *resp) {
  if (r->conn != NULL)
    control_conn_reply(r->conn, resp);
  r->conn = NULL;
  json_decref(resp);
}

/* The replace event: phase, what comes in, the generation it comes in on (0: none yet). */
static void emit(struct slot *s, const struct slot_replace *r, uint64_t generation,
                 const char *phase, const char *reason) {
  json_t *ev = json_pack("{s:s, s:s, s:s, s:I}", "slot", s->name, "phase", phase, "plugin",
                         r->plugin ? r->plugin
                         : r->exec ? r->exec
                                   : slot_kind_name(r->kind),
                         "generation", (json_int_t)generation);
  if (reason != NULL)
    json_object_set_new(ev, "reason", json_string(reason));
  slot__emit(s, "replace", ev);
}

/* Ends the replacement without a switch: the new worker goes, the old one plays on. */
static void fail(struct slot *s, enum proto_err code, const char *why) {
  struct slot_replace *r = s->replacing;
  log_warn("slot %s: %s failed: %s; the old worker plays on", s->name, what(r), why);
  emit(s, r, r->gen ? r->gen->segment.layout.generation : 0, "failed", why);
  supervisor_drop_next(&s->sv);
  s->replacing = NULL;
  slot__publish(s->d);
  answer(r, proto_response_error(r->id, code, "slot \"%s\": %s; it plays on with its %s worker",
                                 s->name, why, r->restart ? "old" : "previous"));
  bool restart = r->restart_deferred && !s->removed && slot__backend_up(s->d);
  rec_free(r);
  if (restart)
    supervisor_restart_now(&s->sv, "its worker failed during a seamless replacement");
}

void slot__replace_abort(struct slot *s, const char *why) {
  if (s->replacing != NULL)
    fail(s, PROTO_E_BUSY, why);
}

void slot__replace_defer_restart(struct slot *s) {
  if (s->replacing != NULL)
    s->replacing->restart_deferred = true;
}

/*
 * The argv of a managed worker: runway-worker --plugin P, or the command
 * line (split when nothing in it needs a shell, else sh -c).
 */
static size_t split_simple(const char *cmd, char *buf, size_t buflen, char **argv, size_t max) {
  static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                              "_-./:,+@%= ";
  size_t len = strlen(cmd), n = 0;
  if (len >= buflen || strspn(cmd, plain) != len)
    return 0;
  memcpy(buf, cmd, len + 1);
  for (char *tok = strtok(buf, " "); tok != NULL; tok = strtok(NULL, " ")) {
    if (n + 1 >= max || (n == 0 && strchr(tok, '=') != NULL))
      return 0;
    argv[n++] = tok;
  }
  argv[n] = NULL;
  return n;
}

void slot__worker_command(struct runwayd *d, enum slot_kind kind, const char *plugin,
                          const char *exec, struct slot_command *c) {
  memset(c, 0, sizeof(*c));
  c->cmd.external = kind == SLOT_EXTERNAL;
  c->cmd.argv = c->argv;
  if (kind == SLOT_PLUGIN || kind == SLOT_LV2) {
    c->cmd.file = d->opt.worker_path;
    c->argv[0] = d->opt.worker_path;
    c->argv[1] = kind == SLOT_LV2 ? "--lv2" : "--plugin";
    c->argv[2] = (char *)plugin;
  } else if (kind == SLOT_EXEC) {
    if (split_simple(exec, c->words, sizeof(c->words), c->argv, SLOT_ARGV_MAX) > 0) {
      c->cmd.file = c->argv[0];
    } else {
      c->cmd.file = "/bin/sh";
      c->argv[0] = "sh";
      c->argv[1] = "-c";
      c->argv[2] = (char *)exec;
    }
  }
}

/*
 * The input history a new generation starts on: what a slot's ring holds
 * (2 (L + period), rounded up to a power of two), but at most
 * REPLACE_HISTORY_SAMPLES samples over all channels, because the RT thread
 * copies it in one cycle (16384 frames of a stereo slot, 128 KiB, a few
 * microseconds).
 */
#define REPLACE_HISTORY_SAMPLES 32768u

static uint32_t history_for(const struct slot *s) {
  uint32_t h = proto_segment_capacity(s->latency, backend_period(s->d->backend));
  uint32_t most = REPLACE_HISTORY_SAMPLES / (s->n_in > 0 ? s->n_in : 1);
  return h < most ? h : most;
}

/* Frames of the new generation's rings: the history, L on both sides, start-up time. */
static uint32_t ring_for(const struct slot *s, uint32_t history) {
  uint32_t rate = backend_sample_rate(s->d->backend);
  uint64_t need = 2 * ((uint64_t)s->latency + backend_period(s->d->backend)) + history +
                  (uint64_t)rate * REPLACE_STARTUP_ALLOWANCE_MS / 1000;
  uint64_t cap = 256;
  while (cap < need)
    cap <<= 1;
  return cap <= RW_MAX_CAPACITY ? (uint32_t)cap : RW_MAX_CAPACITY;
}

/* The new generation and its worker, beside the old ones. PROTO_OK or an error with err. */
static enum proto_err begin(struct slot *s, char *err, size_t errlen) {
  struct slot_replace *r = s->replacing;
  char why[256];
  uint32_t history = history_for(s);
  struct slot_gen_opts o = {
      .capacity = ring_for(s, history),
      .params = r->same ? NULL : &r->params,
      .state = r->same,
      .on_fault = r->on_fault,
  };
  r->state_carried = r->same && s->state_len > 0;
  why[0] = '\0';
  if (slot__generation_create(s, &o, &r->gen, why, sizeof(why)) != 0 ||
      engine_slot_prepare_takeover(r->gen, history, r->crossfade) != 0) {
    snprintf(err, errlen, "cannot prepare the new worker's segment: %s",
             why[0] ? why : "out of memory");
    return PROTO_E_INTERNAL;
  }
  struct slot_command c;
  slot__worker_command(s->d, r->kind, r->plugin, r->exec, &c);
  if (supervisor_start_next(&s->sv, &c.cmd, r->gen->segment.fd, err, errlen) != 0)
    return PROTO_E_SPAWN;
  r->phase = REPLACE_WARMING;
  r->deadline_ms = base_mono_ms() + REPLACE_TIMEOUT_MS;
  log_info("slot %s: %s: new worker pid %d on generation %llu beside pid %d", s->name, what(r),
           (int)s->sv.next_pid, (unsigned long long)s->generation, (int)s->sv.pid);
  slot__publish(s->d);
  return PROTO_OK;
}

/* The switch is complete: the new worker is the slot's, the old one stops. */
static void finish(struct slot *s) {
  struct slot_replace *r = s->replacing;
  struct engine_slot *g = r->gen;
  uint64_t from = s->gen->segment.layout.generation;
  char why[128];
  snprintf(why, sizeof(why), "%s complete", what(r));
  supervisor_promote_next(&s->sv, SLOT_STOP_GRACE_MS, why);
  engine_slot_unref(s->gen);
  s->gen = g;
  r->gen = NULL;
  s->gen_used = true;
  s->gen_published = true;
  s->segment_bytes =
      g->segment.layout.file_size[RW_FILE_DAEMON] + g->segment.layout.file_size[RW_FILE_WORKER];
  if (!r->same) {
    s->kind = r->kind;
    free(s->plugin);
    free(s->exec);
    s->plugin = r->plugin;
    s->exec = r->exec;
    r->plugin = r->exec = NULL;
    params_free(&s->params);
    s->params = r->params;
    memset(&r->params, 0, sizeof(r->params));
    s->params_from_worker = false;
    json_object_clear(s->pending_params);
    slot_state_set_blob(s, NULL, 0);
  }
  /* Acquire: pairs with the worker's release of worker_pid; its info block is complete. */
  if (atomic_load_explicit(&g->segment.ctl.w->worker_pid, memory_order_acquire) != 0) {
    slot__adopt_declared_name(s, g->segment.info);
    if (!r->same)
      slot__adopt_declared_params(s, g);
  }
  s->on_fault = r->on_fault;
  if (s->on_fault != SLOT_ON_FAULT_BYPASS && s->bypass != NULL) {
    engine_bypass_unref(s->bypass); /* the generations that still use it hold their own */
    s->bypass = NULL;
  }
  s->replacing = NULL;
  slot__publish(s->d);
  store_mark_dirty(s->d);

  uint32_t rate = g->segment.layout.sample_rate;
  json_t *sw = json_pack(
      "{s:o, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:b}", "frame",
      atomic_load(&g->takeover_clocked) ? json_integer(atomic_load(&g->takeover_frame))
                                        : json_null(),
      "position", (json_int_t)atomic_load(&g->takeover_position), "crossfade_frames",
      (json_int_t)g->takeover_crossfade, "crossfade_ms",
      rate ? g->takeover_crossfade * 1000.0 / rate : 0.0, "history_frames",
      (json_int_t)atomic_load(&g->takeover_history_frames), "warmup_ms",
      (json_int_t)(r->switch_ms - r->asked_ms), "from_generation", (json_int_t)from, "generation",
      (json_int_t)g->segment.layout.generation, "state_carried", r->state_carried);
  log_info("slot %s: %s: switched after %llu ms, crossfade %u frames, %u frames of history; "
           "worker pid %d",
           s->name, what(r), (unsigned long long)(r->switch_ms - r->asked_ms),
           g->takeover_crossfade, atomic_load(&g->takeover_history_frames), (int)s->sv.pid);
  emit(s, r, g->segment.layout.generation, "done", NULL);
  json_t *result = slot_to_json(s);
  json_object_set_new(result, "switch", sw);
  answer(r, proto_response_ok(r->id, result));
  rec_free(r);
}

static void poll_replace(struct slot *s, uint64_t now) {
  struct slot_replace *r = s->replacing;
  if (r->phase == REPLACE_SAVING) {
    if (s->state_req != NULL && supervisor_has_worker(&s->sv) && now < r->deadline_ms)
      return;
    char err[256];
    slot_state_abort(s, "the worker is being replaced");
    enum proto_err code = begin(s, err, sizeof(err));
    if (code != PROTO_OK)
      fail(s, code, err);
    return;
  }
  struct engine_slot *g = r->gen;
  if (atomic_load(&g->faulted)) {
    fail(s, PROTO_E_SPAWN, "the new worker published impossible ring positions");
    return;
  }
  /* Acquire: pairs with the RT thread's release; the frame and position are in place. */
  uint32_t phase = atomic_load_explicit(&g->takeover_phase, memory_order_acquire);
  if (phase >= ENGINE_TAKEOVER_FADING && r->phase == REPLACE_WARMING) {
    r->phase = REPLACE_FADING;
    r->switch_ms = now;
    emit(s, r, g->segment.layout.generation, "switching", NULL);
  }
  if (phase == ENGINE_TAKEOVER_DONE) {
    finish(s);
    return;
  }
  if (r->phase == REPLACE_WARMING && now >= r->deadline_ms) {
    char why[160];
    snprintf(why, sizeof(why), "the new worker (pid %d) did not catch up within %d s",
             (int)s->sv.next_pid, REPLACE_TIMEOUT_MS / 1000);
    fail(s, PROTO_E_SPAWN, why);
  }
}

void slot__replace_worker_failed(struct slot *s, const char *why) {
  char msg[200];
  if (s->replacing == NULL)
    return;
  snprintf(msg, sizeof(msg), "the new %s before it could take over", why);
  fail(s, PROTO_E_SPAWN, msg);
}

static void on_poll(uv_timer_t *t) {
  struct runwayd *d = t->data;
  uint64_t now = base_mono_ms();
  bool waiting = false;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    if (s->outgoing != NULL) {
      if (atomic_load(&s->outgoing->drained) || now >= s->outgoing_deadline_ms) {
        engine_slot_unref(s->outgoing);
        s->outgoing = NULL;
        slot__publish(d);
      } else {
        waiting = true;
      }
    }
    if (s->replacing != NULL) {
      poll_replace(s, now);
      waiting |= s->replacing != NULL;
    }
  }
  if (!waiting)
    uv_timer_stop(t);
}

enum proto_err slots_replace(struct runwayd *d, struct slot *s,
                             const struct slot_replace_spec *spec, struct control_conn *conn,
                             bool held, json_t *id, char *err, size_t errlen) {
  if (!slot__backend_up(d) || s->gen == NULL) {
    snprintf(err, errlen, "the audio server is not connected; the slot starts when it is");
    return PROTO_E_BACKEND;
  }
  if (s->replacing != NULL) {
    snprintf(err, errlen, "slot \"%s\" is being replaced already; wait for that to finish",
             s->name);
    return PROTO_E_BUSY;
  }
  if (s->state_req != NULL) {
    snprintf(err, errlen, "slot \"%s\" is saving or loading state; try again in a moment", s->name);
    return PROTO_E_BUSY;
  }
  if (s->kind == SLOT_EXTERNAL || spec->kind == SLOT_EXTERNAL) {
    snprintf(err, errlen,
             "slot \"%s\": only managed workers (--plugin, --exec) can be swapped seamlessly; an "
             "external worker is yours to start and stop",
             s->name);
    return PROTO_E_INVALID_ARGUMENT;
  }
  const struct catalog_plugin *cp = NULL;
  if (spec->kind == SLOT_LV2) {
    if (spec->plugin == NULL || spec->plugin[0] == '\0') {
      snprintf(err, errlen, "--lv2 needs a plugin URI");
      return PROTO_E_INVALID_ARGUMENT;
    }
  } else if (spec->kind == SLOT_PLUGIN) {
    cp = spec->plugin ? catalog_find(&d->catalog, spec->plugin) : NULL;
    if (cp == NULL) {
      snprintf(err, errlen, "no plugin named \"%s\"; `runwayctl plugins` lists them",
               spec->plugin ? spec->plugin : "");
      return PROTO_E_NOT_FOUND;
    }
  } else if (spec->exec == NULL || spec->exec[0] == '\0') {
    snprintf(err, errlen, "--exec needs a command line");
    return PROTO_E_INVALID_ARGUMENT;
  } else if (!spec->privileged) {
    snprintf(err, errlen,
             "only root and runwayd's own user may start programs (--exec); use a plugin "
             "(`runwayctl plugins` lists them)");
    return PROTO_E_PERMISSION;
  }
  double ms = spec->crossfade_ms >= 0 ? spec->crossfade_ms : REPLACE_CROSSFADE_MS;
  if (!(ms <= 1000)) {
    snprintf(err, errlen, "crossfade_ms must be between 0 and 1000");
    return PROTO_E_INVALID_ARGUMENT;
  }

  struct slot_replace *r = calloc(1, sizeof(*r));
  if (r == NULL)
    goto oom;
  r->kind = spec->kind;
  r->restart = spec->restart;
  r->on_fault = spec->on_fault >= 0 ? (enum slot_on_fault)spec->on_fault : s->on_fault;
  r->crossfade = (uint32_t)llround(ms * backend_sample_rate(d->backend) / 1000.0);
  r->plugin = spec->plugin ? strdup(spec->plugin) : NULL;
  r->exec = spec->exec ? strdup(spec->exec) : NULL;
  if ((spec->plugin && !r->plugin) || (spec->exec && !r->exec))
    goto oom;
  r->same = r->kind == s->kind && (r->kind == SLOT_EXEC ? strcmp(r->exec, s->exec) == 0
                                                        : strcmp(r->plugin, s->plugin) == 0);
  if (!r->same && cp != NULL && params_from_catalog(&r->params, cp) != 0)
    goto oom;
  r->asked_ms = base_mono_ms();
  s->replacing = r;

  /*
   * The same plugin gets the old worker's state as it is now (a new worker
   * otherwise starts from the last saved one), if the plugin keeps any.
   */
  const struct rw_info *info = s->gen->segment.info;
  if (r->same && slot_running(s) && (info->flags & RW_INFO_F_STATE) != 0 &&
      slot_state_refresh(s) == 0) {
    r->phase = REPLACE_SAVING;
    r->deadline_ms = r->asked_ms + REPLACE_STATE_TIMEOUT_MS;
  } else {
    enum proto_err code = begin(s, err, errlen);
    if (code != PROTO_OK) {
      s->replacing = NULL;
      rec_free(r);
      return code;
    }
  }
  /* Answered when it is over: the switch, or why not. */
  if (conn != NULL) {
    r->conn = held ? conn : control_conn_hold(conn);
    r->id = json_incref(id);
  }
  log_info("slot %s: %s asked: %s", s->name, what(r), r->plugin ? r->plugin : r->exec);
  emit(s, r, r->gen ? r->gen->segment.layout.generation : 0, "started", NULL);
  poll_soon(d);
  return PROTO_OK;

oom:
  if (r != NULL)
    rec_free(r);
  snprintf(err, errlen, "out of memory");
  return PROTO_E_INTERNAL;
}
