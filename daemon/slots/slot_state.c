#include "slot_state.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "persist.h"
#include "wake.h"

struct slot_state_request {
  enum rw_state_op op;
  struct control_conn *conn; /* held */
  json_t *id;
  char *file;
  uint32_t seq;
  uint64_t deadline_ms;
  struct engine_slot *gen; /* the generation asked; referenced until answered */
};

static void request_free(struct slot_state_request *r) {
  json_decref(r->id);
  free(r->file);
  engine_slot_unref(r->gen);
  free(r);
}

static void answer(struct slot *s, json_t *resp) {
  struct slot_state_request *r = s->state_req;
  s->state_req = NULL;
  if (r->conn != NULL && resp != NULL)
    control_conn_reply(r->conn, resp);
  json_decref(resp);
  request_free(r);
}

int slot_state_set_blob(struct slot *s, const unsigned char *data, size_t len) {
  unsigned char *copy = NULL;
  if (len > 0) {
    copy = malloc(len);
    if (copy == NULL)
      return -ENOMEM;
    memcpy(copy, data, len);
  }
  free(s->state_blob);
  s->state_blob = copy;
  s->state_len = len;
  return 0;
}

void slot_state_prepare(struct slot *s, struct engine_slot *gen) {
  struct rw_state_request *box = gen->segment.state_request;
  if (s->state_len == 0 || s->state_len > gen->segment.layout.state_capacity)
    return;
  memcpy(box->data, s->state_blob, s->state_len);
  box->op = RW_STATE_LOAD;
  box->length = (uint32_t)s->state_len;
  /* Release: op, length and data are in place before the worker sees the request. */
  atomic_store_explicit(&box->request, 1, memory_order_release);
}

/* ---- checks --------------------------------------------------------------- */

/*
 * The parameters in a state file are authoritative for the declared
 * parameters; the plugin's blob may hold an older copy of them (a worker
 * saves what it has applied, which lags a param.set by up to L). So after a
 * load, and at every worker start, the daemon's values are sent last.
 *
 * The daemon reads and writes state files as itself: root and the daemon's
 * own user may name any path; anybody else (a member of the socket's group)
 * only files in <state dir>/presets, so the socket never lends them the
 * daemon's rights over other files.
 */
static json_t *check_path(struct runwayd *d, struct control_conn *conn, json_t *id,
                          const char *file) {
  if (file == NULL || file[0] != '/')
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT,
                                "FILE must be an absolute path (runwayctl makes it one)");
  if (strlen(file) >= PATH_MAX)
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "FILE is too long");
  if (conn == NULL)
    return proto_response_error(id, PROTO_E_INTERNAL, "state commands need a connection");
  uid_t uid = control_conn_uid(conn);
  if (uid == 0 || uid == geteuid())
    return NULL;
  char presets[PATH_MAX];
  int n = snprintf(presets, sizeof(presets), "%s/presets/", d->state_dir);
  if (n < 0 || (size_t)n >= sizeof(presets) || strncmp(file, presets, (size_t)n) != 0 ||
      strstr(file, "/../") != NULL || strchr(file + n, '/') != NULL)
    return proto_response_error(id, PROTO_E_PERMISSION,
                                "uid %u may only use state files in %s (e.g. %sfx.json)",
                                (unsigned)uid, presets, presets);
  return NULL;
}

static json_t *check_worker(struct slot *s, json_t *id) {
  if (s->replacing != NULL)
    return proto_response_error(id, PROTO_E_BUSY,
                                "slot \"%s\" is having its worker replaced; try again in a moment",
                                s->name);
  if (s->state_req != NULL)
    return proto_response_error(
        id, PROTO_E_BUSY, "slot \"%s\" is already saving or loading state; try again", s->name);
  return NULL;
}

/* Posts a request into the mailbox of the slot's generation and wakes the worker. */
static void post(struct runwayd *d, struct slot *s, struct slot_state_request *r) {
  struct rw_state_request *box = s->gen->segment.state_request;
  r->gen = s->gen;
  engine_slot_ref(r->gen);
  r->seq = atomic_load_explicit(&box->request, memory_order_relaxed) + 1;
  /* Release: op, length and data are in place before the worker sees the request. */
  atomic_store_explicit(&box->request, r->seq, memory_order_release);
  /* A sleeping worker looks at the mailbox when its futex word moves. */
  shm_wake_worker(s->gen->segment.ctl.d);
  r->deadline_ms = base_mono_ms() + SLOT_STATE_TIMEOUT_MS;
  s->state_req = r;
  if (!uv_is_active((uv_handle_t *)&d->state_timer))
    uv_timer_again(&d->state_timer);
}

static json_t *state_document(const struct slot *s) {
  char *b64 = s->state_len > 0 ? persist_base64_encode(s->state_blob, s->state_len) : NULL;
  json_t *doc =
      json_pack("{s:s, s:i, s:s, s:s, s:o, s:o}", "format", "runway-state", "version", 1, "slot",
                s->name, "plugin", slot_plugin_name(s) ? slot_plugin_name(s) : "", "params",
                slots_param_values(s), "state", b64 ? json_string(b64) : json_null());
  free(b64);
  return doc;
}

/* Writes the slot's current parameters and last state to file. */
static json_t *write_state_file(struct slot *s, json_t *id, const char *file) {
  char err[512];
  json_t *doc = state_document(s);
  char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(doc);
  if (text == NULL)
    return proto_response_error(id, PROTO_E_INTERNAL, "out of memory");
  size_t len = strlen(text);
  text[len] = '\n';
  int rc = persist_write_atomic(file, text, len + 1, err, sizeof(err));
  free(text);
  if (rc != 0)
    return proto_response_error(id, PROTO_E_IO, "%s", err);
  return proto_response_built(id, json_pack("{s:s, s:s, s:I, s:o}", "slot", s->name, "file", file,
                                            "state_bytes", (json_int_t)s->state_len, "params",
                                            slots_param_values(s)));
}

/* ---- state.save ------------------------------------------------------------ */

json_t *slot_state_save(struct runwayd *d, struct slot *s, struct control_conn *conn,
                        const struct proto_request *req) {
  const char *file = json_string_value(json_object_get(req->args, "file"));
  json_t *resp = check_path(d, conn, req->id, file);
  if (resp == NULL)
    resp = check_worker(s, req->id);
  if (resp != NULL)
    return resp;
  if (!slot_running(s)) {
    /* Nobody to ask: what the daemon keeps is the slot's state. */
    return write_state_file(s, req->id, file);
  }
  struct slot_state_request *r = calloc(1, sizeof(*r));
  if (r == NULL || (r->file = strdup(file)) == NULL) {
    free(r);
    return proto_response_error(req->id, PROTO_E_INTERNAL, "out of memory");
  }
  r->op = RW_STATE_SAVE;
  r->id = json_incref(req->id);
  r->conn = control_conn_hold(conn);
  s->gen->segment.state_request->op = RW_STATE_SAVE;
  s->gen->segment.state_request->length = 0;
  post(d, s, r);
  return NULL;
}

int slot_state_refresh(struct slot *s) {
  if (s->state_req != NULL || s->gen == NULL)
    return -EBUSY;
  struct slot_state_request *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return -ENOMEM;
  r->op = RW_STATE_SAVE;
  s->gen->segment.state_request->op = RW_STATE_SAVE;
  s->gen->segment.state_request->length = 0;
  post(s->d, s, r);
  return 0;
}

static json_t *finish_save(struct slot *s, struct slot_state_request *r) {
  struct rw_state_reply *box = r->gen->segment.state_reply;
  int32_t status = box->status;
  uint32_t len = box->length; /* untrusted: checked against the capacity */
  if (status == RW_STATE_OK && len <= r->gen->segment.layout.state_capacity) {
    if (slot_state_set_blob(s, box->data, len) != 0)
      return proto_response_error(r->id, PROTO_E_INTERNAL, "out of memory");
    store_mark_dirty(s->d);
  } else if (status == RW_STATE_TOO_LARGE) {
    return proto_response_error(r->id, PROTO_E_LIMIT,
                                "the plugin's state is larger than the slot's %u-byte mailbox",
                                r->gen->segment.layout.state_capacity);
  } else if (status != RW_STATE_UNSUPPORTED) {
    return proto_response_error(r->id, PROTO_E_INTERNAL,
                                "the worker could not save its state (status %d)", (int)status);
  }
  if (r->file == NULL)
    return NULL; /* slot_state_refresh: nobody to answer */
  return write_state_file(s, r->id, r->file);
}

/* ---- state.load ------------------------------------------------------------ */

json_t *slot_state_load(struct runwayd *d, struct slot *s, struct control_conn *conn,
                        const struct proto_request *req) {
  const char *file = json_string_value(json_object_get(req->args, "file"));
  char err[512];
  char *text = NULL;
  size_t len = 0;
  unsigned char *blob = NULL;
  size_t blob_len = 0;
  json_t *resp = check_path(d, conn, req->id, file);
  if (resp == NULL)
    resp = check_worker(s, req->id);
  if (resp != NULL)
    return resp;

  /* Group members name files in presets/, where a symbolic link must not lend them others. */
  uid_t uid = control_conn_uid(conn);
  int rc = uid == 0 || uid == geteuid()
               ? persist_read_file(file, SLOT_STATE_FILE_MAX, &text, &len, err, sizeof(err))
               : persist_read_nofollow(file, SLOT_STATE_FILE_MAX, &text, &len, err, sizeof(err));
  if (rc != 0)
    return proto_response_error(req->id, rc == -ENOENT ? PROTO_E_NOT_FOUND : PROTO_E_IO, "%s", err);
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  const char *format = json_string_value(json_object_get(doc, "format"));
  json_t *params = json_object_get(doc, "params");
  json_t *state = json_object_get(doc, "state");
  const char *plugin = json_string_value(json_object_get(doc, "plugin"));
  if (doc == NULL || format == NULL || strcmp(format, "runway-state") != 0 ||
      json_integer_value(json_object_get(doc, "version")) != 1 ||
      (params != NULL && !json_is_object(params)) ||
      (state != NULL && !json_is_null(state) && !json_is_string(state))) {
    json_decref(doc);
    return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                "%s is not a runway state file (version 1)", file);
  }
  const char *mine = slot_plugin_name(s);
  if (plugin != NULL && plugin[0] != '\0' && mine != NULL && strcmp(plugin, mine) != 0) {
    resp = proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                "%s holds state of plugin %s, but slot \"%s\" runs %s", file,
                                plugin, s->name, mine);
    json_decref(doc);
    return resp;
  }
  if (json_is_string(state) &&
      persist_base64_decode(json_string_value(state), &blob, &blob_len) != 0) {
    json_decref(doc);
    return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                "the state in %s is not valid base64", file);
  }
  /* Without a generation (the server is away), the next one will have the default mailbox. */
  uint32_t capacity =
      s->gen != NULL ? s->gen->segment.layout.state_capacity : RW_STATE_CAPACITY_DEFAULT;
  if (blob_len > capacity) {
    resp = proto_response_error(req->id, PROTO_E_LIMIT,
                                "the state in %s (%zu bytes) is larger than the slot's %u-byte "
                                "mailbox",
                                file, blob_len, capacity);
    free(blob);
    json_decref(doc);
    return resp;
  }

  /* Parameters first: the state the plugin loads next may override them. */
  if (params != NULL)
    slots_set_param_values(s, params);
  json_decref(doc);
  if (blob_len > 0 || json_is_null(state)) {
    if (slot_state_set_blob(s, blob, blob_len) != 0) {
      free(blob);
      return proto_response_error(req->id, PROTO_E_INTERNAL, "out of memory");
    }
  }
  store_mark_dirty(d);

  if (blob_len == 0 || !slot_running(s)) {
    free(blob);
    return proto_response_built(req->id,
                                json_pack("{s:s, s:s, s:I, s:s}", "slot", s->name, "file", file,
                                          "state_bytes", (json_int_t)blob_len, "applied",
                                          slot_running(s) ? "now" : "at the next start"));
  }
  struct slot_state_request *r = calloc(1, sizeof(*r));
  if (r == NULL || (r->file = strdup(file)) == NULL) {
    free(r);
    free(blob);
    return proto_response_error(req->id, PROTO_E_INTERNAL, "out of memory");
  }
  struct rw_state_request *box = s->gen->segment.state_request;
  memcpy(box->data, blob, blob_len);
  box->length = (uint32_t)blob_len;
  box->op = RW_STATE_LOAD;
  free(blob);
  r->op = RW_STATE_LOAD;
  r->id = json_incref(req->id);
  r->conn = control_conn_hold(conn);
  post(d, s, r);
  return NULL;
}

static json_t *finish_load(struct slot *s, struct slot_state_request *r) {
  int32_t status = r->gen->segment.state_reply->status;
  slots_resend_params(s);
  if (status != RW_STATE_OK)
    return proto_response_error(r->id, PROTO_E_INVALID_ARGUMENT,
                                "the plugin refused the state in %s (status %d)", r->file,
                                (int)status);
  return proto_response_built(r->id,
                              json_pack("{s:s, s:s, s:I, s:s}", "slot", s->name, "file", r->file,
                                        "state_bytes", (json_int_t)s->state_len, "applied", "now"));
}

/* ---- completion ------------------------------------------------------------- */

void slot_state_abort(struct slot *s, const char *why) {
  struct slot_state_request *r = s->state_req;
  if (r == NULL)
    return;
  answer(s, proto_response_error(r->id, PROTO_E_BUSY, "slot \"%s\": %s; try again", s->name, why));
}

bool slot_state_poll(struct runwayd *d, uint64_t now_ms) {
  bool waiting = false;
  for (uint32_t i = 0; i < d->n_slots; i++) {
    struct slot *s = d->slots[i];
    struct slot_state_request *r = s->state_req;
    if (r == NULL)
      continue;
    /* Acquire: pairs with the worker's release of done; status, length and data are final. */
    uint32_t done = atomic_load_explicit(&r->gen->segment.state_reply->done, memory_order_acquire);
    if (done == r->seq) {
      answer(s, r->op == RW_STATE_SAVE ? finish_save(s, r) : finish_load(s, r));
    } else if (r->gen != s->gen) {
      slot_state_abort(s, "its worker was replaced before it answered");
    } else if (now_ms >= r->deadline_ms) {
      slot_state_abort(s, "its worker did not answer within 5 s");
    } else {
      waiting = true;
    }
  }
  return waiting;
}
