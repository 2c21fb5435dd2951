/*
 * daemon/events: subscriptions over a real control server in a libuv loop,
 * with plain client sockets, all on the test's thread. Every wait polls the
 * client socket briefly and turns the loop once (UV_RUN_NOWAIT) until a
 * condition holds or a deadline passes. A request answered after some events
 * works as a barrier: whatever was emitted before it has arrived before its
 * answer, so "nothing else arrived" can be checked without sleeping.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"
#include "control_client.h"
#include "events.h"

struct fixture {
  uv_loop_t loop;
  char dir[64];
  char path[128];
  struct control_config cfg;
  struct control_server *server;
  struct events *events;
  char err[256];
  int worker_owner; /* what "worker.attach" makes a connection's owner */
};

static struct fixture *fx;

static struct client *client_connect(void) { return client_connect_to(fx->path); }

static void on_worker_close(struct control_conn *conn, void *owner) {
  (void)conn;
  (void)owner;
}

static json_t *dispatch(void *user, struct control_conn *conn, const struct proto_request *req) {
  struct fixture *f = user;
  if (strcmp(req->cmd, "subscribe") == 0)
    return events_subscribe(f->events, conn, req);
  if (strcmp(req->cmd, "worker.attach") == 0)
    control_conn_set_owner(conn, &f->worker_owner, on_worker_close);
  return proto_response_ok(req->id, json_pack("{s:s}", "cmd", req->cmd));
}

static void start_ok(void) {
  if (control_server_start(&fx->loop, &fx->cfg, dispatch, fx, &fx->server, fx->err,
                           sizeof(fx->err)) != 0)
    fail_msg("control_server_start: %s", fx->err);
}

static int setup(void **state) {
  fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  client_use_loop(&fx->loop);
  snprintf(fx->dir, sizeof(fx->dir), "/tmp/rw-events-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->path, sizeof(fx->path), "%s/control.sock", fx->dir);
  fx->cfg.path = fx->path;
  fx->cfg.mode = 0600;
  fx->cfg.group = (gid_t)-1;
  fx->events = events_create();
  assert_non_null(fx->events);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[160];
  if (fx->server != NULL)
    control_server_stop(fx->server);
  /* The server closed every subscriber: the registry is empty before it goes. */
  assert_int_equal(events_subscribers(fx->events), 0);
  events_destroy(fx->events);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
  assert_int_equal(system(cmd), 0);
  free(fx);
  fx = NULL;
  return 0;
}

static const char *error_code(const json_t *msg) {
  return json_string_value(json_object_get(json_object_get(msg, "error"), "code"));
}

static const char *error_message(const json_t *msg) {
  return json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
}

/* Sends a subscribe request and checks the answer lists exactly want (comma separated). */
static void subscribe_ok(struct client *c, const char *args_json, const char *want) {
  char req[512], got[256] = "";
  size_t i;
  json_t *name;
  snprintf(req, sizeof(req), "{\"id\":\"sub\",\"cmd\":\"subscribe\"%s%s}\n",
           args_json ? ",\"args\":" : "", args_json ? args_json : "");
  client_send(c, req);
  json_t *r = client_read(c);
  assert_non_null(r);
  if (!json_is_true(json_object_get(r, "ok")))
    fail_msg("subscribe failed: %s", error_message(r));
  assert_string_equal(json_string_value(json_object_get(r, "id")), "sub");
  json_array_foreach(json_object_get(json_object_get(r, "result"), "subscribed"), i, name) {
    size_t n = strlen(got);
    snprintf(got + n, sizeof(got) - n, "%s%s", i ? "," : "", json_string_value(name));
  }
  assert_string_equal(got, want);
  json_decref(r);
}

static void expect_error(struct client *c, const char *req, const char *code, const char *needle) {
  client_send(c, req);
  json_t *r = client_read(c);
  assert_non_null(r);
  assert_true(json_is_false(json_object_get(r, "ok")));
  if (strcmp(error_code(r), code) != 0 || strstr(error_message(r), needle) == NULL)
    fail_msg("expected %s with \"%s\", got %s: %s", code, needle, error_code(r), error_message(r));
  json_decref(r);
}

/* A request whose answer proves every earlier event has been read. */
static void barrier(struct client *c) {
  client_send(c, "{\"id\":\"barrier\",\"cmd\":\"status\"}\n");
  json_t *r = client_read(c);
  assert_non_null(r);
  if (!json_is_string(json_object_get(r, "id")))
    fail_msg("expected the barrier's answer, got an event: %s",
             json_string_value(json_object_get(r, "event")));
  assert_string_equal(json_string_value(json_object_get(r, "id")), "barrier");
  json_decref(r);
}

static void expect_event(struct client *c, const char *type, const char *slot) {
  json_t *e = client_read(c);
  assert_non_null(e);
  if (!json_is_string(json_object_get(e, "event")))
    fail_msg("expected a %s event, got a line without \"event\"", type);
  assert_string_equal(json_string_value(json_object_get(e, "event")), type);
  assert_string_equal(json_string_value(json_object_get(e, "slot")), slot);
  assert_true(json_is_integer(json_object_get(e, "time_ms")));
  /* What tells an event from an answer: "event", never "ok". */
  assert_null(json_object_get(e, "ok"));
  json_decref(e);
}

static void emit(const char *type, const char *slot) {
  events_emit(fx->events, type, json_pack("{s:s}", "slot", slot));
}

static int wait_subscribers(unsigned n) {
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (events_subscribers(fx->events) != n) {
    if (base_mono_ms() > deadline)
      return 0;
    pump();
    poll(NULL, 0, 1);
  }
  return 1;
}

static void test_subscribe_and_receive(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  subscribe_ok(c, NULL, "slot,underrun,restart,param,fault,replace");
  assert_int_equal(events_subscribers(fx->events), 1);

  uint64_t t0 = base_mono_ms();
  events_emit(fx->events, "slot",
              json_pack("{s:s,s:s,s:i,s:i,s:s}", "slot", "fx", "state", "running", "pid", 4242,
                        "generation", 3, "reason", "worker started"));
  /* The line itself: "event" first, the fields in order, "time_ms" last. */
  const char *line = client_read_raw(c);
  assert_non_null(line);
  const char *want = "{\"event\":\"slot\",\"slot\":\"fx\",\"state\":\"running\",\"pid\":4242,"
                     "\"generation\":3,\"reason\":\"worker started\",\"time_ms\":";
  if (strncmp(line, want, strlen(want)) != 0)
    fail_msg("event line %s does not start with %s", line, want);
  json_t *e = json_loads(line, 0, NULL);
  json_int_t t = json_integer_value(json_object_get(e, "time_ms"));
  assert_true(t >= (json_int_t)t0 && t <= (json_int_t)base_mono_ms());
  json_decref(e);

  /* Every type, in the order emitted; fields cannot override "event" or "time_ms". */
  events_emit(fx->events, "underrun",
              json_pack("{s:s,s:i,s:i}", "slot", "fx", "underruns", 2, "underrun_frames", 96));
  events_emit(fx->events, "restart",
              json_pack("{s:s,s:i,s:s}", "slot", "fx", "restarts", 1, "reason", "stalled"));
  events_emit(fx->events, "param",
              json_pack("{s:s,s:s,s:i,s:f}", "slot", "fx", "param", "gain_db", "param_id", 0,
                        "value", -6.0));
  events_emit(fx->events, "fault",
              json_pack("{s:s,s:s,s:s,s:s}", "slot", "fx", "reason", "segment corrupted", "event",
                        "forged", "time_ms", "forged"));
  expect_event(c, "underrun", "fx");
  expect_event(c, "restart", "fx");
  e = client_read(c);
  assert_string_equal(json_string_value(json_object_get(e, "param")), "gain_db");
  assert_true(json_number_value(json_object_get(e, "value")) == -6.0);
  json_decref(e);
  e = client_read(c);
  assert_string_equal(json_string_value(json_object_get(e, "event")), "fault");
  assert_string_equal(json_string_value(json_object_get(e, "reason")), "segment corrupted");
  assert_true(json_is_integer(json_object_get(e, "time_ms")));
  json_decref(e);

  /* An event without fields, and a type nobody knows (dropped; its fields are freed). */
  events_emit(fx->events, "fault", NULL);
  events_emit(fx->events, "nonsense", json_pack("{s:s}", "slot", "fx"));
  events_emit(fx->events, NULL, json_pack("{s:s}", "slot", "fx"));
  e = client_read(c);
  assert_string_equal(json_string_value(json_object_get(e, "event")), "fault");
  assert_int_equal(json_object_size(e), 2);
  json_decref(e);

  /* Requests on a subscribed connection are answered as usual, in line with the events. */
  barrier(c);
  client_free(c);
}

static void test_type_filter(void **state) {
  (void)state;
  start_ok();
  struct client *a = client_connect();
  struct client *b = client_connect();
  struct client *none = client_connect();
  subscribe_ok(a, "{\"events\":[\"slot\"]}", "slot");
  subscribe_ok(b, "{\"events\":[\"fault\",\"underrun\",\"fault\"]}", "underrun,fault");
  assert_int_equal(events_subscribers(fx->events), 2);

  emit("underrun", "u1");
  emit("slot", "s1");
  emit("param", "p1");
  emit("fault", "f1");
  emit("restart", "r1");
  emit("slot", "s2");

  expect_event(a, "slot", "s1");
  expect_event(a, "slot", "s2");
  barrier(a);
  expect_event(b, "underrun", "u1");
  expect_event(b, "fault", "f1");
  barrier(b);
  /* A connection that did not subscribe gets nothing. */
  barrier(none);

  /* Subscribing again replaces the types. */
  subscribe_ok(a, "{\"events\":[\"param\"]}", "param");
  assert_int_equal(events_subscribers(fx->events), 2);
  emit("slot", "s3");
  emit("param", "p2");
  expect_event(a, "param", "p2");
  barrier(a);
  client_free(a);
  client_free(b);
  client_free(none);
}

static void test_invalid_subscriptions(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  expect_error(c, "{\"id\":1,\"cmd\":\"subscribe\",\"args\":{\"events\":[\"slot\",\"bogus\"]}}\n",
               "invalid_argument",
               "unknown event type \"bogus\"; the types are: slot, underrun, "
               "restart, param, fault");
  expect_error(c, "{\"id\":2,\"cmd\":\"subscribe\",\"args\":{\"events\":[]}}\n", "invalid_argument",
               "leave it out for all");
  expect_error(c, "{\"id\":3,\"cmd\":\"subscribe\",\"args\":{\"events\":[\"slot\",7]}}\n",
               "invalid_argument", "events[1] is not a string");
  expect_error(c, "{\"id\":4,\"cmd\":\"subscribe\",\"args\":{\"events\":\"slot\"}}\n",
               "invalid_argument", "must be an array");
  /* Nothing was registered; the connection still works. */
  assert_int_equal(events_subscribers(fx->events), 0);
  emit("slot", "fx");
  barrier(c);

  /* A connection an attached worker owns cannot become a subscriber. */
  client_send(c, "{\"id\":5,\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\"}}\n");
  json_decref(client_read(c));
  expect_error(c, "{\"id\":6,\"cmd\":\"subscribe\"}\n", "busy", "attached worker");
  assert_int_equal(events_subscribers(fx->events), 0);

  /* Without a connection (a caller outside the control server) it is refused, not a crash. */
  struct proto_request req;
  char err[256];
  const char *line = "{\"id\":7,\"cmd\":\"subscribe\"}";
  assert_int_equal(proto_parse_request(line, strlen(line), &req, err, sizeof(err)), PROTO_OK);
  json_t *r = events_subscribe(fx->events, NULL, &req);
  assert_string_equal(error_code(r), "internal");
  json_decref(r);
  proto_request_free(&req);
  client_free(c);
}

static void test_slow_subscriber_dropped(void **state) {
  (void)state;
  fx->cfg.max_output_queue = 64 * 1024;
  start_ok();
  /* The slow one registers first, so it closes in the middle of each walk. */
  struct client *slow = client_connect();
  struct client *fast = client_connect();
  struct client *late = client_connect();
  subscribe_ok(slow, NULL, "slot,underrun,restart,param,fault,replace");
  subscribe_ok(fast, "{\"events\":[\"param\"]}", "param");
  subscribe_ok(late, "{\"events\":[\"param\"]}", "param");
  assert_int_equal(events_subscribers(fx->events), 3);

  char *blob = malloc(4096);
  memset(blob, 'e', 4095);
  blob[4095] = '\0';
  int sent = 0;
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  /* slow never reads: its queue fills and it must be dropped, not block the loop. */
  while (events_subscribers(fx->events) == 3) {
    events_emit(fx->events, "param",
                json_pack("{s:s,s:i,s:s}", "slot", "fx", "id", sent, "param", blob));
    sent++;
    expect_event(fast, "param", "fx");
    expect_event(late, "param", "fx");
    if (base_mono_ms() > deadline)
      fail_msg("a subscriber that never reads was not dropped after %d events", sent);
  }
  free(blob);
  assert_true(sent > 1);
  assert_int_equal(events_subscribers(fx->events), 2);
  assert_int_equal(control_server_connections(fx->server), 2);

  /* The others carry on, and the loop serves new clients. */
  emit("param", "after");
  expect_event(fast, "param", "after");
  expect_event(late, "param", "after");
  barrier(fast);
  struct client *c = client_connect();
  barrier(c);
  client_expect_eof(slow);
  client_free(slow);
  client_free(fast);
  client_free(late);
  client_free(c);
}

static void test_close_unregisters(void **state) {
  (void)state;
  fx->cfg.idle_timeout_ms = 100;
  start_ok();
  struct client *sub = client_connect();
  subscribe_ok(sub, "{\"events\":[\"slot\"]}", "slot");

  /* A subscriber is exempt from the idle timeout; a plain connection is not. */
  struct client *idle = client_connect();
  barrier(idle);
  uint64_t t0 = base_mono_ms();
  json_t *r = client_read(idle);
  assert_string_equal(error_code(r), "limit");
  json_decref(r);
  assert_true(base_mono_ms() - t0 >= 50);
  while (base_mono_ms() - t0 < 300) {
    pump();
    client_fill(sub);
  }
  assert_false(sub->pc.eof);
  assert_int_equal(events_subscribers(fx->events), 1);

  /* The client goes away: it leaves the registry, and emitting afterwards is harmless. */
  client_free(sub);
  assert_true(wait_subscribers(0));
  emit("slot", "fx");

  /* Destroying the registry with a subscriber left detaches it; the server then closes it. */
  sub = client_connect();
  subscribe_ok(sub, NULL, "slot,underrun,restart,param,fault,replace");
  events_destroy(fx->events);
  fx->events = events_create();
  assert_non_null(fx->events);
  control_server_stop(fx->server);
  fx->server = NULL;
  client_expect_eof(sub);
  client_free(sub);
  client_free(idle);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_subscribe_and_receive),   T(test_type_filter),       T(test_invalid_subscriptions),
      T(test_slow_subscriber_dropped), T(test_close_unregisters),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
