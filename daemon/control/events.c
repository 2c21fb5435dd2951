#include "events.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

const char *const events_types[] = {"slot",  "underrun", "restart", "param",
                                    "fault", "replace",  NULL};

#define EVENTS_ALL ((1u << (sizeof(events_types) / sizeof(events_types[0]) - 1)) - 1)

struct subscriber {
  struct events *ev;
  struct control_conn *conn; /* NULL once its connection closed */
  uint32_t mask;             /* bit i: events_types[i] */
};

struct events {
  struct subscriber **subs;
  unsigned n, cap;
  /*
   * Set while events_emit walks the array. A send can close a subscriber's
   * connection, and its on_close then runs inside the walk: the entry is only
   * marked dead and removed once the walk is over.
   */
  int emitting;
  int dead;
};

/* The bit of a type name, or 0 for an unknown one. */
static uint32_t type_bit(const char *type) {
  if (type == NULL)
    return 0;
  for (unsigned i = 0; events_types[i] != NULL; i++)
    if (strcmp(events_types[i], type) == 0)
      return 1u << i;
  return 0;
}

static void remove_dead(struct events *ev) {
  unsigned kept = 0;
  for (unsigned i = 0; i < ev->n; i++) {
    if (ev->subs[i]->conn == NULL)
      free(ev->subs[i]);
    else
      ev->subs[kept++] = ev->subs[i];
  }
  ev->n = kept;
  ev->dead = 0;
}

static void on_conn_close(struct control_conn *conn, void *owner) {
  struct subscriber *sub = owner;
  struct events *ev = sub->ev;
  (void)conn;
  sub->conn = NULL;
  ev->dead = 1;
  if (!ev->emitting)
    remove_dead(ev);
}

struct events *events_create(void) {
  return calloc(1, sizeof(struct events));
}

void events_destroy(struct events *ev) {
  if (ev == NULL)
    return;
  for (unsigned i = 0; i < ev->n; i++) {
    if (ev->subs[i]->conn != NULL)
      control_conn_set_owner(ev->subs[i]->conn, NULL, NULL);
    free(ev->subs[i]);
  }
  free(ev->subs);
  free(ev);
}

unsigned events_subscribers(const struct events *ev) {
  unsigned n = 0;
  if (ev == NULL)
    return 0;
  for (unsigned i = 0; i < ev->n; i++)
    n += ev->subs[i]->conn != NULL;
  return n;
}

static struct subscriber *find(struct events *ev, const struct control_conn *conn) {
  for (unsigned i = 0; i < ev->n; i++)
    if (ev->subs[i]->conn == conn)
      return ev->subs[i];
  return NULL;
}

/* "slot, underrun, restart, param, fault, replace" for messages. */
static void type_list(char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (unsigned i = 0; events_types[i] != NULL && used < len; i++) {
    int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", events_types[i]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
}

json_t *events_subscribe(struct events *ev, struct control_conn *conn,
                         const struct proto_request *req) {
  const json_t *list = json_object_get(req->args, "events");
  uint32_t mask = 0;
  char known[128];

  if (ev == NULL || conn == NULL)
    return proto_response_error(req->id, PROTO_E_INTERNAL,
                                "subscribe needs a client connection to send events on");
  type_list(known, sizeof(known));
  if (list == NULL) {
    mask = EVENTS_ALL;
  } else {
    size_t i;
    const json_t *name;
    if (!json_is_array(list) || json_array_size(list) == 0)
      return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                  "events is empty; name some of: %s, or leave it out for all",
                                  known);
    json_array_foreach(list, i, name) {
      uint32_t bit = type_bit(json_string_value(name));
      if (!json_is_string(name))
        return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                    "events[%zu] is not a string; name event types: %s", i, known);
      if (bit == 0)
        return proto_response_error(req->id, PROTO_E_INVALID_ARGUMENT,
                                    "unknown event type \"%.64s\"; the types are: %s",
                                    json_string_value(name), known);
      mask |= bit;
    }
  }

  struct subscriber *sub = find(ev, conn);
  void *owner = control_conn_owner(conn);
  if (sub == NULL && owner != NULL)
    return proto_response_error(req->id, PROTO_E_BUSY,
                                "this connection belongs to an attached worker; subscribe on a "
                                "connection of its own");
  if (sub == NULL) {
    if (ev->n == ev->cap) {
      unsigned cap = ev->cap ? ev->cap * 2 : 8;
      struct subscriber **subs = realloc(ev->subs, cap * sizeof(*subs));
      if (subs == NULL)
        return proto_response_error(req->id, PROTO_E_INTERNAL, "runwayd is out of memory");
      ev->subs = subs;
      ev->cap = cap;
    }
    sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
      return proto_response_error(req->id, PROTO_E_INTERNAL, "runwayd is out of memory");
    sub->ev = ev;
    sub->conn = conn;
    ev->subs[ev->n++] = sub;
    /* Owned connections are exempt from the idle timeout; on_conn_close unregisters. */
    control_conn_set_owner(conn, sub, on_conn_close);
  }
  /* Subscribing again replaces the set of types. */
  sub->mask = mask;

  json_t *names = json_array();
  for (unsigned i = 0; events_types[i] != NULL; i++)
    if (mask & (1u << i))
      json_array_append_new(names, json_string(events_types[i]));
  return proto_response_built(req->id, json_pack("{s:o}", "subscribed", names));
}

void events_emit(struct events *ev, const char *type, json_t *fields) {
  uint32_t bit = type_bit(type);
  int wanted = 0;
  json_t *msg = NULL;
  const char *key;
  json_t *value;

  if (ev == NULL || bit == 0)
    goto out;
  for (unsigned i = 0; i < ev->n && !wanted; i++)
    wanted = ev->subs[i]->conn != NULL && (ev->subs[i]->mask & bit);
  if (!wanted)
    goto out;

  /* "event" first and "time_ms" last, so people reading the stream see the type at once. */
  msg = json_pack("{s:s}", "event", type);
  if (msg == NULL)
    goto out;
  if (json_is_object(fields))
    json_object_foreach(fields, key, value) {
      if (strcmp(key, "event") != 0 && strcmp(key, "time_ms") != 0)
        json_object_set(msg, key, value);
    }
  json_object_set_new(msg, "time_ms", json_integer((json_int_t)base_mono_ms()));

  ev->emitting++;
  for (unsigned i = 0; i < ev->n; i++) {
    struct subscriber *sub = ev->subs[i];
    /*
     * A send over the queue limit closes that subscriber at once (its
     * on_close marks it dead); the others still get the event.
     */
    if (sub->conn != NULL && (sub->mask & bit))
      (void)control_conn_send(sub->conn, msg);
  }
  ev->emitting--;
  if (!ev->emitting && ev->dead)
    remove_dead(ev);
out:
  json_decref(msg);
  json_decref(fields);
}
