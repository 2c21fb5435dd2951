/*
 * Control command handlers, one per command of PROTO_COMMAND_MAP
 * (proto/commands.h), bound to it by id at the bottom. Requests reach a
 * handler already validated against the command's schema, so handlers check
 * meaning (ranges, existence), not types.
 */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "faults.h"
#include "lv2.h"
#include "slot_state.h"
#include "slots.h"
#include "store.h"
#include "version.h"

typedef json_t *(*command_fn)(struct runwayd *d, struct control_conn *conn,
                              const struct proto_request *req);

static json_t *error(const struct proto_request *req, enum proto_err code, const char *msg) {
  return proto_response_error(req->id, code, "%s", msg);
}

static const char *arg_string(const struct proto_request *req, const char *name) {
  return json_string_value(json_object_get(req->args, name));
}

/* Looks up args.<key> as a slot name; answers not_found itself when missing. */
static struct slot *find_slot(struct runwayd *d, const struct proto_request *req, const char *key,
                              json_t **resp) {
  const char *name = arg_string(req, key);
  struct slot *s = name ? slots_find(d, name) : NULL;
  if (s == NULL)
    *resp = proto_response_error(req->id, PROTO_E_NOT_FOUND,
                                 "no slot named \"%s\"; `runwayctl slot list` shows the slots",
                                 name ? name : "");
  return s;
}

static json_t *cmd_status(struct runwayd *d, struct control_conn *conn,
                          const struct proto_request *req) {
  bool up = backend_is_open(d->backend);
  json_t *result = json_pack(
      "{s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:s, s:f}", "version", RUNWAY_VERSION, "pid",
      (json_int_t)getpid(), "backend", backend_name(d->backend), "backend_state",
      up ? "active" : "disconnected", "name", backend_client_name(d->backend), "sample_rate",
      up ? json_integer(backend_sample_rate(d->backend)) : json_null(), "period",
      up ? json_integer(backend_period(d->backend)) : json_null(), "slots", (json_int_t)d->n_slots,
      "uptime_s", (json_int_t)((base_mono_ms() - d->started_ms) / 1000), "socket",
      d->opt.socket_path, "latency_ms", d->opt.latency_ms);
  json_object_set_new(result, "state", store_status_json(d));
  return proto_response_built(req->id, result);
}

/*
 * Who asks: the peer's uid, or the daemon's own for a request that comes from
 * no connection (the fuzzer drives the handlers that way).
 */
static uid_t asker(const struct control_conn *conn) {
  return conn != NULL ? control_conn_uid(conn) : geteuid();
}

/* DESIGN.md's trust model: starting programs is for root and the daemon's user. */
static bool privileged(const struct control_conn *conn) {
  return asker(conn) == 0 || asker(conn) == geteuid();
}

/*
 * Answers that come later: an LV2 plugin is described by runway-worker in a
 * process of its own (slots/lv2.h), and the request is answered when it
 * has. The connection is held until then.
 */
struct deferred {
  struct control_conn *conn;
  json_t *id;
  json_t *args;    /* slot.add's, kept to build the slot from */
  bool privileged; /* the asker's rights, taken when it asked */
  uid_t owner;
};

static struct deferred *defer(struct control_conn *conn, const struct proto_request *req) {
  struct deferred *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  r->id = json_incref(req->id);
  r->args = json_deep_copy(req->args);
  r->privileged = privileged(conn);
  r->owner = asker(conn);
  if (r->args == NULL) {
    json_decref(r->id);
    free(r);
    return NULL;
  }
  return r;
}

static void deferred_free(struct deferred *r) {
  json_decref(r->id);
  json_decref(r->args);
  free(r);
}

/* A connection that closed meanwhile (conn NULL) just gets nothing. */
static void deferred_answer(struct deferred *r, json_t *resp) {
  if (r->conn != NULL)
    control_conn_reply(r->conn, resp);
  json_decref(resp);
  deferred_free(r);
}

/* Starts describing uri (NULL: every plugin); answers at once only when that cannot start. */
static json_t *ask_lv2(struct runwayd *d, struct control_conn *conn,
                       const struct proto_request *req, const char *uri, lv2_query_fn done) {
  char err[512];
  if (conn == NULL)
    return error(req, PROTO_E_INTERNAL, "LV2 plugins are described over a connection");
  struct deferred *r = defer(conn, req);
  if (r == NULL)
    return error(req, PROTO_E_INTERNAL, "out of memory");
  int rc = lv2_query(d, d->loop, uri, done, r, err, sizeof(err));
  if (rc != 0) {
    deferred_free(r);
    return error(req,
                 rc == -EINVAL  ? PROTO_E_INVALID_ARGUMENT
                 : rc == -EBUSY ? PROTO_E_BUSY
                                : PROTO_E_INTERNAL,
                 err);
  }
  /* The answer comes from the loop, later: never from inside this call. */
  r->conn = control_conn_hold(conn);
  return NULL;
}

static void plugins_described(struct runwayd *d, enum proto_err code, const json_t *answer,
                              const char *err, void *user) {
  struct deferred *r = user;
  (void)d;
  deferred_answer(r, code == PROTO_OK ? proto_response_built(r->id, json_deep_copy(answer))
                                      : proto_response_error(r->id, code, "%s", err));
}

static json_t *cmd_plugins(struct runwayd *d, struct control_conn *conn,
                           const struct proto_request *req) {
  const char *uri = arg_string(req, "uri");
  if (json_is_true(json_object_get(req->args, "lv2")) || uri != NULL)
    return ask_lv2(d, conn, req, uri, plugins_described);
  json_t *result =
      d->catalog.json ? json_deep_copy(d->catalog.json) : json_pack("{s:[]}", "plugins");
  return proto_response_built(req->id, result);
}

/* A slot_spec from slot.add's arguments (strings point into args); NULL, or an error answer. */
static json_t *spec_from_args(const json_t *args, json_t *id, struct slot_spec *spec) {
  const char *plugin = json_string_value(json_object_get(args, "plugin"));
  const char *lv2 = json_string_value(json_object_get(args, "lv2"));
  const char *exec = json_string_value(json_object_get(args, "exec"));
  bool external = json_is_true(json_object_get(args, "external"));
  int kinds = (plugin != NULL) + (lv2 != NULL) + (exec != NULL) + external;
  if (kinds != 1)
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT,
                                "give exactly one of plugin, lv2, exec or external (e.g. "
                                "--plugin gain)");
  *spec = (struct slot_spec){
      .name = json_string_value(json_object_get(args, "name")),
      .kind = plugin ? SLOT_PLUGIN
              : lv2  ? SLOT_LV2
              : exec ? SLOT_EXEC
                     : SLOT_EXTERNAL,
      .plugin = plugin ? plugin : lv2,
      .exec = exec,
      .inputs = -1,
      .outputs = -1,
      .midi = -1,
  };
  json_t *v;
  if ((v = json_object_get(args, "inputs")) != NULL) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > RW_MAX_CHANNELS)
      return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "inputs must be between 0 and %u",
                                  RW_MAX_CHANNELS);
    spec->inputs = n;
  }
  if ((v = json_object_get(args, "outputs")) != NULL) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > RW_MAX_CHANNELS)
      return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "outputs must be between 0 and %u",
                                  RW_MAX_CHANNELS);
    spec->outputs = n;
  }
  if ((v = json_object_get(args, "midi")) != NULL)
    spec->midi = json_is_true(v);
  if ((v = json_object_get(args, "latency_ms")) != NULL) {
    spec->latency_ms = json_number_value(v);
    if (!(spec->latency_ms > 0))
      return proto_response_error(id, PROTO_E_INVALID_ARGUMENT,
                                  "latency_ms must be greater than 0");
  }
  if ((v = json_object_get(args, "latency_frames")) != NULL) {
    spec->latency_frames = json_integer_value(v);
    if (spec->latency_frames < 1)
      return proto_response_error(id, PROTO_E_INVALID_ARGUMENT,
                                  "latency_frames must be at least 1");
  }
  if ((v = json_object_get(args, "on_fault")) != NULL &&
      slot_on_fault_parse(json_string_value(v), &spec->on_fault) != 0)
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "on_fault is silence or bypass");
  return NULL;
}

static json_t *add_slot(struct runwayd *d, json_t *id, const struct slot_spec *spec) {
  struct slot *s;
  char err[512];
  enum proto_err code = slots_add(d, spec, &s, err, sizeof(err));
  if (code != PROTO_OK)
    return proto_response_error(id, code, "%s", err);
  return proto_response_built(id, slot_to_json(s));
}

/* The LV2 plugin is described: its channel counts complete the slot, or it is refused. */
static void lv2_slot_described(struct runwayd *d, enum proto_err code, const json_t *answer,
                               const char *err, void *user) {
  struct deferred *r = user;
  struct slot_spec spec;
  char why[600];
  json_t *resp = spec_from_args(r->args, r->id, &spec);
  if (resp == NULL && code != PROTO_OK)
    resp = proto_response_error(r->id, code, "%s", err);
  if (resp == NULL) {
    spec.privileged = r->privileged;
    spec.owner = r->owner;
    code = lv2_fill_spec(answer, spec.plugin, &spec, why, sizeof(why));
    resp =
        code == PROTO_OK ? add_slot(d, r->id, &spec) : proto_response_error(r->id, code, "%s", why);
  }
  deferred_answer(r, resp);
}

static json_t *cmd_slot_add(struct runwayd *d, struct control_conn *conn,
                            const struct proto_request *req) {
  struct slot_spec spec;
  json_t *resp = spec_from_args(req->args, req->id, &spec);
  if (resp != NULL)
    return resp;
  /* An LV2 plugin must be described first: whether runway can host it, its channels. */
  if (spec.kind == SLOT_LV2)
    return ask_lv2(d, conn, req, spec.plugin, lv2_slot_described);
  spec.privileged = privileged(conn);
  spec.owner = asker(conn);
  return add_slot(d, req->id, &spec);
}

static json_t *cmd_slot_remove(struct runwayd *d, struct control_conn *conn,
                               const struct proto_request *req) {
  json_t *resp = NULL;
  const char *name = arg_string(req, "name");
  /* A slot slots.json named but that could not be restored (status lists them). */
  if (slots_find(d, name ?: "") == NULL && store_forget_orphan(d, name))
    return proto_response_built(req->id, json_pack("{s:s, s:b}", "removed", name, "unrestored", 1));
  struct slot *s = find_slot(d, req, "name", &resp);
  if (s == NULL)
    return resp;
  json_t *result = json_pack("{s:s}", "removed", s->name);
  slots_remove(d, s);
  return proto_response_built(req->id, result);
}

static json_t *cmd_slot_list(struct runwayd *d, struct control_conn *conn,
                             const struct proto_request *req) {
  json_t *list = json_array();
  for (uint32_t i = 0; i < d->n_slots; i++)
    json_array_append_new(list, slot_to_json(d->slots[i]));
  return proto_response_built(req->id, json_pack("{s:o}", "slots", list));
}

/* crossfade_ms as given, or -1 for the default; a message when out of range. */
/*
 * The crossfade and on_fault of a slot.replace or seamless slot.restart
 * (args of the request, or kept from it) into spec; NULL, or an error answer.
 */
static json_t *replace_options(const json_t *args, json_t *id, struct slot_replace_spec *spec) {
  const json_t *v = json_object_get(args, "crossfade_ms");
  spec->crossfade_ms = v != NULL ? json_number_value(v) : -1;
  if (v != NULL && !(spec->crossfade_ms >= 0 && spec->crossfade_ms <= 1000))
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT,
                                "crossfade_ms must be between 0 and 1000");
  spec->on_fault = -1;
  if ((v = json_object_get(args, "on_fault")) != NULL) {
    enum slot_on_fault mode;
    if (slot_on_fault_parse(json_string_value(v), &mode) != 0)
      return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "on_fault is silence or bypass");
    spec->on_fault = (int)mode;
  }
  return NULL;
}

/* Answers itself when the replacement is under way (NULL), else the error now. */
static json_t *replace(struct runwayd *d, struct control_conn *conn,
                       const struct proto_request *req, struct slot *s,
                       const struct slot_replace_spec *spec) {
  char err[512];
  enum proto_err code = slots_replace(d, s, spec, conn, false, req->id, err, sizeof(err));
  return code == PROTO_OK ? NULL : error(req, code, err);
}

static json_t *cmd_slot_restart(struct runwayd *d, struct control_conn *conn,
                                const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  if (s == NULL)
    return resp;
  bool seamless = json_is_true(json_object_get(req->args, "seamless"));
  /* The same worker again, beside the old one: its state carries over. */
  struct slot_replace_spec spec = {
      .kind = s->kind, .plugin = s->plugin, .exec = s->exec, .restart = true, .privileged = true};
  if ((resp = replace_options(req->args, req->id, &spec)) != NULL)
    return resp;
  if (!seamless && spec.crossfade_ms >= 0)
    return error(req, PROTO_E_INVALID_ARGUMENT, "crossfade_ms goes with seamless");
  if (seamless && slot_running(s) && s->kind != SLOT_EXTERNAL)
    return replace(d, conn, req, s, &spec);
  /* A worker that is not running has nothing to hand over: a plain restart. */
  char err[512];
  enum proto_err code = slots_restart(d, s, err, sizeof(err));
  if (code != PROTO_OK)
    return error(req, code, err);
  return proto_response_built(req->id, slot_to_json(s));
}

/* The RT thread's CPU time in ns (the first field of its schedstat), or -1 when unknown. */
static json_int_t rt_cpu_ns(int tid) {
  char path[64];
  long long ns = -1;
  if (tid <= 0)
    return -1;
  snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  if (fscanf(f, "%lld", &ns) != 1)
    ns = -1;
  fclose(f);
  return ns;
}

/* Cycle times by bucket, the empty ones left out: [[from_ns, to_ns, cycles], ...]. */
static json_t *cycle_histogram(const struct engine_stats *st) {
  json_t *list = json_array();
  for (uint32_t b = 0; b < ENGINE_CYCLE_BUCKETS; b++) {
    uint64_t n = atomic_load_explicit(&st->cycle_hist[b], memory_order_relaxed);
    if (n == 0)
      continue;
    json_t *to = b + 1 < ENGINE_CYCLE_BUCKETS
                     ? json_integer((json_int_t)engine_cycle_bucket_floor(b + 1))
                     : json_null();
    json_array_append_new(
        list, json_pack("[I, o, I]", (json_int_t)engine_cycle_bucket_floor(b), to, (json_int_t)n));
  }
  return list;
}

/* The LV2 plugin to replace a slot's worker with is described: hostable, or refused. */
static void lv2_replace_described(struct runwayd *d, enum proto_err code, const json_t *answer,
                                  const char *err, void *user) {
  struct deferred *r = user;
  const char *name = json_string_value(json_object_get(r->args, "name"));
  const char *uri = json_string_value(json_object_get(r->args, "lv2"));
  struct slot *s = name != NULL ? slots_find(d, name) : NULL;
  char why[600];
  json_t *resp = NULL;
  if (s == NULL) {
    resp = proto_response_error(r->id, PROTO_E_NOT_FOUND, "slot \"%s\" went away meanwhile",
                                name ? name : "");
  } else if (code != PROTO_OK) {
    resp = proto_response_error(r->id, code, "%s", err);
  } else {
    /* The slot's channels stay; the plugin must be one runway can host. */
    struct slot_spec fill = {.inputs = s->n_in, .outputs = s->n_out, .midi = s->midi};
    struct slot_replace_spec spec = {.kind = SLOT_LV2, .plugin = uri, .privileged = r->privileged};
    resp = replace_options(r->args, r->id, &spec);
    if (resp == NULL && (code = lv2_fill_spec(answer, uri, &fill, why, sizeof(why))) == PROTO_OK)
      code = slots_replace(d, s, &spec, r->conn, true, r->id, why, sizeof(why));
    if (resp == NULL && code == PROTO_OK) {
      r->conn = NULL; /* the replacement answers on it when it is over */
      deferred_free(r);
      return;
    }
    if (resp == NULL)
      resp = proto_response_error(r->id, code, "%s", why);
  }
  deferred_answer(r, resp);
}

static json_t *cmd_slot_replace(struct runwayd *d, struct control_conn *conn,
                                const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  if (s == NULL)
    return resp;
  const char *plugin = arg_string(req, "plugin");
  const char *lv2 = arg_string(req, "lv2");
  const char *exec = arg_string(req, "exec");
  if ((plugin != NULL) + (lv2 != NULL) + (exec != NULL) != 1)
    return error(req, PROTO_E_INVALID_ARGUMENT,
                 "give exactly one of plugin, lv2 or exec (e.g. --plugin gain)");
  struct slot_replace_spec spec = {.kind = plugin ? SLOT_PLUGIN : SLOT_EXEC,
                                   .plugin = plugin,
                                   .exec = exec,
                                   .privileged = privileged(conn)};
  if ((resp = replace_options(req->args, req->id, &spec)) != NULL)
    return resp;
  /* An LV2 plugin is described first: whether runway can host it at all. */
  if (lv2 != NULL)
    return ask_lv2(d, conn, req, lv2, lv2_replace_described);
  return replace(d, conn, req, s, &spec);
}

static json_t *cmd_slot_advise(struct runwayd *d, struct control_conn *conn,
                               const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  return s != NULL ? proto_response_built(req->id, slot_advice_json(s)) : resp;
}

static json_t *daemon_stats(struct runwayd *d) {
  const struct engine_stats *st = &d->engine.stats;
  uint64_t cycles = atomic_load(&st->cycles);
  uint64_t sum = atomic_load(&st->cycle_ns_sum);
  bool up = backend_is_open(d->backend);
  int tid = atomic_load_explicit(&d->engine.rt_thread_id, memory_order_relaxed);
  json_t *o = json_pack(
      "{s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:I}", "xruns",
      (json_int_t)atomic_load(&st->xruns), "rt_cycle_ns_max",
      (json_int_t)atomic_load(&st->cycle_ns_max), "rt_cycle_ns_avg",
      (json_int_t)(cycles ? sum / cycles : 0), "cycles", (json_int_t)cycles, "backend_state",
      up ? "active" : "disconnected", "slots", (json_int_t)d->n_slots, "skipped_frames",
      (json_int_t)atomic_load(&st->skipped_frames), "rt_cycle_ns_sum", (json_int_t)sum,
      "rt_cycle_ns_max_recent", (json_int_t)atomic_load(&st->cycle_ns_max_recent), "sample_rate",
      up ? json_integer(backend_sample_rate(d->backend)) : json_null(), "period",
      up ? json_integer(backend_period(d->backend)) : json_null(), "rt_cycle_histogram",
      cycle_histogram(st), "rt_thread_id", (json_int_t)tid, "rt_cpu_ns", rt_cpu_ns(tid));
  /* The RT thread's page faults since it started: null before its first cycle. */
  struct sys_faults faults;
  int cycling = atomic_load(&d->engine.rt_tid);
  bool known = o != NULL && cycling > 0 && sys_thread_faults(cycling, &faults) == 0;
  if (o != NULL &&
      (json_object_set_new(o, "rt_minor_faults",
                           known ? json_integer((json_int_t)faults.minor) : json_null()) != 0 ||
       json_object_set_new(o, "rt_major_faults",
                           known ? json_integer((json_int_t)faults.major) : json_null()) != 0)) {
    json_decref(o);
    o = NULL;
  }
  return o;
}

static json_t *cmd_stats(struct runwayd *d, struct control_conn *conn,
                         const struct proto_request *req) {
  json_t *slots = json_array();
  if (json_object_get(req->args, "name") != NULL) {
    json_t *resp = NULL;
    struct slot *s = find_slot(d, req, "name", &resp);
    if (s == NULL) {
      json_decref(slots);
      return resp;
    }
    json_array_append_new(slots, slot_stats_json(s));
  } else {
    for (uint32_t i = 0; i < d->n_slots; i++)
      json_array_append_new(slots, slot_stats_json(d->slots[i]));
  }
  return proto_response_built(req->id,
                              json_pack("{s:o, s:o}", "daemon", daemon_stats(d), "slots", slots));
}

static json_t *cmd_worker_attach(struct runwayd *d, struct control_conn *conn,
                                 const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "slot", &resp);
  if (s == NULL)
    return resp;
  char err[512];
  enum proto_err code = slots_attach(d, s, conn, req->id, err, sizeof(err));
  if (code != PROTO_OK)
    return error(req, code, err);
  return NULL; /* answered with the segment attached */
}

static json_t *cmd_param_list(struct runwayd *d, struct control_conn *conn,
                              const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  return s != NULL ? slots_param_list(s, req->id) : resp;
}

static json_t *cmd_param_get(struct runwayd *d, struct control_conn *conn,
                             const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  return s != NULL ? slots_param_get(s, req->id, json_object_get(req->args, "param")) : resp;
}

static json_t *cmd_param_set(struct runwayd *d, struct control_conn *conn,
                             const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  if (s == NULL)
    return resp;
  return slots_param_set(s, req->id, json_object_get(req->args, "param"),
                         json_number_value(json_object_get(req->args, "value")));
}

static json_t *cmd_state_save(struct runwayd *d, struct control_conn *conn,
                              const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  return s != NULL ? slot_state_save(d, s, conn, req) : resp;
}

static json_t *cmd_state_load(struct runwayd *d, struct control_conn *conn,
                              const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  return s != NULL ? slot_state_load(d, s, conn, req) : resp;
}

static json_t *cmd_subscribe(struct runwayd *d, struct control_conn *conn,
                             const struct proto_request *req) {
  return events_subscribe(d->events, conn, req);
}

/* cmd_<stem> for every command: one that has no handler does not compile. */
static const command_fn handlers[PROTO_CMD_COUNT] = {
#define HANDLER(ID, stem) [PROTO_CMD_##ID] = cmd_##stem,
#define NO_HANDLER(ID, stem)
    PROTO_COMMAND_MAP(HANDLER, HANDLER, NO_HANDLER)
#undef NO_HANDLER
#undef HANDLER
};

json_t *commands_dispatch(void *user, struct control_conn *conn, const struct proto_request *req) {
  return handlers[req->command->id](user, conn, req);
}
