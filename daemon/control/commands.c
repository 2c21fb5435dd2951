/*
 * Control command handlers, one per command of PROTO_COMMAND_MAP
 * (proto/commands.h), bound to it by id at the bottom. Requests reach a
 * handler already validated against the command's schema, so handlers check
 * meaning (ranges, existence), not types.
 */
#include "commands.h"

#include <unistd.h>

#include "faults.h"
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
      "{s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:s, s:f}", "version", RUNWAY_VERSION,
      "pid", (json_int_t)getpid(), "backend", backend_name(d->backend), "backend_state",
      up ? "active" : "disconnected", "name", backend_client_name(d->backend), "sample_rate",
      up ? json_integer(backend_sample_rate(d->backend)) : json_null(), "period",
      up ? json_integer(backend_period(d->backend)) : json_null(), "slots",
      (json_int_t)d->n_slots, "uptime_s", (json_int_t)((base_mono_ms() - d->started_ms) / 1000),
      "socket", d->opt.socket_path, "latency_ms", d->opt.latency_ms);
  json_object_set_new(result, "state", store_status_json(d));
  return proto_response_built(req->id, result);
}

static json_t *cmd_plugins(struct runwayd *d, struct control_conn *conn,
                           const struct proto_request *req) {
  json_t *result = d->catalog.json ? json_deep_copy(d->catalog.json) : json_pack("{s:[]}", "plugins");
  return proto_response_built(req->id, result);
}

static json_t *cmd_slot_add(struct runwayd *d, struct control_conn *conn,
                            const struct proto_request *req) {
  json_t *args = req->args;
  const char *plugin = arg_string(req, "plugin");
  const char *exec = arg_string(req, "exec");
  bool external = json_is_true(json_object_get(args, "external"));
  int kinds = (plugin != NULL) + (exec != NULL) + external;
  if (kinds != 1)
    return error(req, PROTO_E_INVALID_ARGUMENT,
                 "give exactly one of plugin, exec or external (e.g. --plugin gain)");

  struct slot_spec spec = {
      .name = arg_string(req, "name"),
      .kind = plugin ? SLOT_PLUGIN : exec ? SLOT_EXEC : SLOT_EXTERNAL,
      .plugin = plugin,
      .exec = exec,
      .inputs = -1,
      .outputs = -1,
      .midi = -1,
      /* DESIGN.md's trust model: starting programs is for root and the daemon's user. */
      .privileged = control_conn_uid(conn) == 0 || control_conn_uid(conn) == geteuid(),
      .owner = control_conn_uid(conn),
  };
  json_t *v;
  if ((v = json_object_get(args, "inputs")) != NULL) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > RW_MAX_CHANNELS)
      return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                  "inputs must be between 0 and %u", RW_MAX_CHANNELS);
    spec.inputs = n;
  }
  if ((v = json_object_get(args, "outputs")) != NULL) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > RW_MAX_CHANNELS)
      return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                  "outputs must be between 0 and %u", RW_MAX_CHANNELS);
    spec.outputs = n;
  }
  if ((v = json_object_get(args, "midi")) != NULL)
    spec.midi = json_is_true(v);
  if ((v = json_object_get(args, "latency_ms")) != NULL) {
    spec.latency_ms = json_number_value(v);
    if (!(spec.latency_ms > 0))
      return error(req, PROTO_E_INVALID_ARGUMENT, "latency_ms must be greater than 0");
  }
  if ((v = json_object_get(args, "latency_frames")) != NULL) {
    spec.latency_frames = json_integer_value(v);
    if (spec.latency_frames < 1)
      return error(req, PROTO_E_INVALID_ARGUMENT, "latency_frames must be at least 1");
  }

  struct slot *s;
  char err[512];
  enum proto_err code = slots_add(d, &spec, &s, err, sizeof(err));
  if (code != PROTO_OK)
    return error(req, code, err);
  return proto_response_built(req->id, slot_to_json(s));
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

static json_t *cmd_slot_restart(struct runwayd *d, struct control_conn *conn,
                                const struct proto_request *req) {
  json_t *resp = NULL;
  struct slot *s = find_slot(d, req, "name", &resp);
  if (s == NULL)
    return resp;
  char err[512];
  enum proto_err code = slots_restart(d, s, err, sizeof(err));
  if (code != PROTO_OK)
    return error(req, code, err);
  return proto_response_built(req->id, slot_to_json(s));
}

static json_t *daemon_stats(struct runwayd *d) {
  const struct engine_stats *st = &d->engine.stats;
  uint64_t cycles = atomic_load(&st->cycles);
  uint64_t sum = atomic_load(&st->cycle_ns_sum);
  json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:s, s:I, s:I}", "xruns",
                        (json_int_t)atomic_load(&st->xruns), "rt_cycle_ns_max",
                        (json_int_t)atomic_load(&st->cycle_ns_max), "rt_cycle_ns_avg",
                        (json_int_t)(cycles ? sum / cycles : 0), "cycles", (json_int_t)cycles,
                        "backend_state", backend_is_open(d->backend) ? "active" : "disconnected",
                        "slots", (json_int_t)d->n_slots, "skipped_frames",
                        (json_int_t)atomic_load(&st->skipped_frames));
  /* The RT thread's page faults since it started: null before its first cycle. */
  struct sys_faults faults;
  int tid = atomic_load(&d->engine.rt_tid);
  bool known = o != NULL && tid > 0 && sys_thread_faults(tid, &faults) == 0;
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
  return proto_response_built(req->id, json_pack("{s:o, s:o}", "daemon", daemon_stats(d), "slots", slots));
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
    PROTO_COMMAND_MAP(HANDLER, HANDLER)
#undef HANDLER
};

json_t *commands_dispatch(void *user, struct control_conn *conn, const struct proto_request *req) {
  return handlers[req->command->id](user, conn, req);
}
