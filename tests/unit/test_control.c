/*
 * daemon/control: the control server on a real socket in a temporary
 * directory. The test process runs the server's libuv loop and talks to it
 * through plain client sockets from the same thread: every wait polls the
 * client socket briefly and turns the loop once (UV_RUN_NOWAIT), until a
 * condition holds or a deadline passes.
 *
 * The peer authorisation tests run clients as other users in child
 * processes; they need root (as in CI) and skip with a message otherwise.
 * getsockopt is wrapped (-Wl,--wrap=getsockopt) so that a test can play a
 * kernel without SO_PEERGROUPS.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"
#include "control_client.h"

struct fixture {
  uv_loop_t loop;
  char dir[64];
  char path[128];
  struct control_config cfg;
  struct control_server *server;
  char err[256];

  /* What the dispatch callback saw and did. */
  int dispatched;
  pid_t last_pid;
  uid_t last_uid;
  struct control_conn *held; /* the connection a "plugins" request handed over */
  int held_closed;
  int owner_closed;
  int memfd;
  int memfd2; /* worker.attach passes both, as a segment's two files */
  int send_fd_rc;
};

static struct fixture *fx;

static struct client *client_connect(void) { return client_connect_to(fx->path); }

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

int __real_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int __wrap_getsockopt(int fd, int level, int name, void *val, socklen_t *len);

static int fake_no_peergroups; /* SO_PEERGROUPS fails with ENOPROTOOPT, as before Linux 4.13 */

int __wrap_getsockopt(int fd, int level, int name, void *val, socklen_t *len) {
  if (fake_no_peergroups && level == SOL_SOCKET && name == SO_PEERGROUPS) {
    errno = ENOPROTOOPT;
    return -1;
  }
  return __real_getsockopt(fd, level, name, val, len);
}

static void on_owner_close(struct control_conn *conn, void *owner) {
  (void)conn;
  (*(int *)owner)++;
}

static void on_held_close(struct control_conn *conn, void *owner) {
  (void)owner;
  if (fx->held == conn)
    fx->held = NULL;
  fx->held_closed++;
}

static json_t *dispatch(void *user, struct control_conn *conn, const struct proto_request *req) {
  struct fixture *f = user;
  const char *name = json_string_value(json_object_get(req->args, "name"));

  f->dispatched++;
  f->last_pid = control_conn_pid(conn);
  f->last_uid = control_conn_uid(conn);

  if (strcmp(req->cmd, "worker.attach") == 0) {
    json_t *resp = proto_response_ok(req->id, json_pack("{s:s}", "slot", "s"));
    const int fds[2] = {f->memfd, f->memfd2 >= 0 ? f->memfd2 : f->memfd};
    f->send_fd_rc = control_conn_send_with_fds(conn, resp, fds, 2);
    json_decref(resp);
    control_conn_set_owner(conn, &f->owner_closed, on_owner_close);
    return NULL;
  }
  if (strcmp(req->cmd, "plugins") == 0) {
    /* Like a subscription: the test sends events on this connection later. */
    f->held = conn;
    control_conn_set_owner(conn, f, on_held_close);
    return proto_response_ok(req->id, NULL);
  }
  if (strcmp(req->cmd, "slot.remove") == 0 && name != NULL && strcmp(name, "bye") == 0) {
    json_t *resp = proto_response_ok(req->id, json_pack("{s:s}", "bye", "bye"));
    assert_int_equal(control_conn_send(conn, resp), 0);
    json_decref(resp);
    control_conn_close(conn);
    assert_int_equal(control_conn_send(conn, resp), -EPIPE);
    return NULL;
  }
  if (strcmp(req->cmd, "slot.list") == 0) {
    /* An answer over the line limit. */
    char *big = malloc(PROTO_MAX_ANSWER_LINE + 100);
    memset(big, 'x', PROTO_MAX_ANSWER_LINE + 99);
    big[PROTO_MAX_ANSWER_LINE + 99] = '\0';
    json_t *resp = proto_response_ok(req->id, json_pack("{s:s}", "big", big));
    free(big);
    return resp;
  }
  if (strcmp(req->cmd, "slot.restart") == 0)
    return proto_response_error(req->id, PROTO_E_NOT_FOUND, "no slot named %s", name);
  return proto_response_ok(req->id, json_pack("{s:s,s:O}", "cmd", req->cmd, "args", req->args));
}

static void default_config(void) {
  memset(&fx->cfg, 0, sizeof(fx->cfg));
  fx->cfg.path = fx->path;
  fx->cfg.mode = 0660;
  fx->cfg.group = (gid_t)-1;
}

static int start(void) {
  return control_server_start(&fx->loop, &fx->cfg, dispatch, fx, &fx->server, fx->err,
                              sizeof(fx->err));
}

static void start_ok(void) {
  int rc = start();
  if (rc != 0)
    fail_msg("control_server_start: %d %s", rc, fx->err);
}

static int setup(void **state) {
  fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  client_use_loop(&fx->loop);
  snprintf(fx->dir, sizeof(fx->dir), "/tmp/rw-control-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->path, sizeof(fx->path), "%s/control.sock", fx->dir);
  fx->memfd = -1;
  fx->memfd2 = -1;
  fake_no_peergroups = 0;
  default_config();
  *state = fx;
  return 0;
}

static void stop_server(void) {
  if (fx->server != NULL) {
    control_server_stop(fx->server);
    fx->server = NULL;
  }
  /* Let the close callbacks run so that the loop closes cleanly. */
  uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state) {
  (void)state;
  char cmd[160];
  stop_server();
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  if (fx->memfd >= 0)
    close(fx->memfd);
  if (fx->memfd2 >= 0)
    close(fx->memfd2);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
  assert_int_equal(system(cmd), 0);
  free(fx);
  fx = NULL;
  return 0;
}

static int wait_connections(uint32_t n) {
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (control_server_connections(fx->server) != n) {
    if (base_mono_ms() > deadline)
      return 0;
    pump();
    poll(NULL, 0, 1);
  }
  return 1;
}

static const char *error_code(const json_t *msg) {
  return json_string_value(json_object_get(json_object_get(msg, "error"), "code"));
}

static const char *error_message(const json_t *msg) {
  return json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
}

static void expect_ok(json_t *msg, json_int_t id, const char *cmd) {
  assert_non_null(msg);
  assert_int_equal(json_integer_value(json_object_get(msg, "id")), id);
  assert_true(json_is_true(json_object_get(msg, "ok")));
  if (cmd != NULL)
    assert_string_equal(json_string_value(json_object_get(json_object_get(msg, "result"), "cmd")),
                        cmd);
  json_decref(msg);
}

static void expect_error(json_t *msg, const char *code) {
  assert_non_null(msg);
  assert_true(json_is_false(json_object_get(msg, "ok")));
  if (strcmp(error_code(msg), code) != 0)
    fail_msg("expected %s, got %s: %s", code, error_code(msg), error_message(msg));
  json_decref(msg);
}

static void test_request_response(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"status\"}\n");
  json_t *r = client_read(c);
  assert_non_null(r);
  assert_true(json_is_object(json_object_get(json_object_get(r, "result"), "args")));
  expect_ok(r, 1, "status");
  assert_int_equal(control_server_connections(fx->server), 1);
  assert_int_equal(fx->last_pid, getpid());
  assert_int_equal(fx->last_uid, getuid());

  /* Errors from the handler keep their id. */
  client_send(c, "{\"id\":\"r2\",\"cmd\":\"slot.restart\",\"args\":{\"name\":\"fx\"}}\r\n\n\n");
  r = client_read(c);
  assert_string_equal(json_string_value(json_object_get(r, "id")), "r2");
  assert_string_equal(error_message(r), "no slot named fx");
  expect_error(r, "not_found");

  /* The same connection goes on. */
  client_send(c, "{\"id\":3,\"cmd\":\"stats\",\"args\":{\"name\":\"fx\"}}\n");
  expect_ok(client_read(c), 3, "stats");
  client_free(c);
  assert_true(wait_connections(0));
}

static void test_pipelined(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  char *batch = malloc(300 * 64);
  size_t n = 0;
  for (int i = 1; i <= 300; i++) {
    if (i % 3 == 0)
      n += (size_t)sprintf(batch + n, "{\"id\":%d,\"cmd\":\"nope\"}\n", i);
    else
      n += (size_t)sprintf(batch + n, "{\"id\":%d,\"cmd\":\"status\"}\n", i);
  }
  client_send_n(c, batch, n);
  free(batch);
  for (int i = 1; i <= 300; i++) {
    json_t *r = client_read(c);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), i);
    if (i % 3 == 0)
      expect_error(r, "unknown_command");
    else
      expect_ok(r, i, "status");
  }
  client_free(c);
}

static void test_split_line(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":5,\"cm");
  pump_for(c, 30);
  assert_int_equal(c->pc.len, 0);
  assert_int_equal(fx->dispatched, 0);
  client_send(c, "d\":\"status\"}\n{\"id\":6,");
  expect_ok(client_read(c), 5, "status");
  client_send(c, "\"cmd\":\"plugins\"}\n");
  expect_ok(client_read(c), 6, NULL);

  /* One byte per write. */
  const char *req = "{\"id\":7,\"cmd\":\"status\",\"args\":{}}\n";
  for (const char *p = req; *p; p++)
    client_send_n(c, p, 1);
  expect_ok(client_read(c), 7, "status");
  client_free(c);
}

static void test_invalid_keeps_connection(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "this is not json\n");
  json_t *r = client_read(c);
  assert_true(json_is_null(json_object_get(r, "id")));
  expect_error(r, "bad_request");
  client_send(c, "{\"id\":2,\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"inputs\":\"x\"}}\n");
  r = client_read(c);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 2);
  assert_non_null(strstr(error_message(r), "inputs"));
  expect_error(r, "invalid_argument");
  client_send_n(c, "{\"cmd\":\0}\n", 10);
  expect_error(client_read(c), "bad_request");
  client_send(c, "{\"id\":3,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 3, "status");
  assert_int_equal(fx->dispatched, 1);
  client_free(c);
}

static void test_oversize_line(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  size_t n = PROTO_MAX_LINE + 1;
  char *big = malloc(n + 64);
  /* A line of exactly the limit is fine. */
  memset(big, ' ', PROTO_MAX_LINE);
  memcpy(big, "{\"id\":1,\"cmd\":\"status\"}", 23);
  big[PROTO_MAX_LINE] = '\n';
  client_send_n(c, big, PROTO_MAX_LINE + 1);
  expect_ok(client_read(c), 1, "status");

  /* One byte more, still without a newline, is refused and closed. */
  client_send(c, "{\"id\":2,\"cmd\":\"status\"}\n");
  memset(big, 'x', n);
  client_send_n(c, big, n);
  free(big);
  expect_ok(client_read(c), 2, "status");
  json_t *r = client_read(c);
  assert_non_null(strstr(error_message(r), "65536"));
  expect_error(r, "too_large");
  assert_null(client_read(c));
  assert_true(wait_connections(0));
  client_free(c);
}

static void test_oversize_response(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":4,\"cmd\":\"slot.list\"}\n");
  json_t *r = client_read(c);
  assert_int_equal(json_integer_value(json_object_get(r, "id")), 4);
  expect_error(r, "too_large");
  client_send(c, "{\"id\":5,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 5, "status");
  client_free(c);
}

static void test_eof_with_half_line(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":8,\"cmd\":\"status\"}\n{\"id\":9,\"cmd\":\"status\"}");
  assert_int_equal(shutdown(c->pc.fd, SHUT_WR), 0);
  expect_ok(client_read(c), 8, "status");
  expect_ok(client_read(c), 9, "status");
  assert_null(client_read(c));
  client_free(c);

  /* A half line that is not JSON gets its error, then the close. */
  c = client_connect();
  client_send(c, "{\"id\":10,");
  assert_int_equal(shutdown(c->pc.fd, SHUT_WR), 0);
  expect_error(client_read(c), "bad_request");
  assert_null(client_read(c));
  client_free(c);
  assert_true(wait_connections(0));
}

static void test_handler_replies_and_closes(void **state) {
  (void)state;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"slot.remove\",\"args\":{\"name\":\"bye\"}}\n"
                 "{\"id\":2,\"cmd\":\"status\"}\n");
  json_t *r = client_read(c);
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "bye")),
                      "bye");
  json_decref(r);
  /* Nothing after the close: the second request is never answered. */
  assert_null(client_read(c));
  assert_int_equal(fx->dispatched, 1);
  client_free(c);
}

static void test_connection_cap(void **state) {
  (void)state;
  struct client *c[4];
  fx->cfg.max_connections = 3;
  start_ok();
  for (int i = 0; i < 3; i++) {
    c[i] = client_connect();
    client_send(c[i], "{\"id\":1,\"cmd\":\"status\"}\n");
    expect_ok(client_read(c[i]), 1, "status");
  }
  assert_int_equal(control_server_connections(fx->server), 3);
  c[3] = client_connect();
  json_t *r = client_read(c[3]);
  assert_non_null(strstr(error_message(r), "close idle clients"));
  expect_error(r, "limit");
  assert_null(client_read(c[3]));
  client_free(c[3]);
  assert_int_equal(control_server_connections(fx->server), 3);

  /* Room again once one goes. */
  client_free(c[0]);
  assert_true(wait_connections(2));
  c[0] = client_connect();
  client_send(c[0], "{\"id\":2,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c[0]), 2, "status");
  for (int i = 0; i < 3; i++)
    client_free(c[i]);
}

static void test_per_uid_cap(void **state) {
  (void)state;
  struct client *c[3];
  fx->cfg.max_connections = 10;
  fx->cfg.max_per_uid = 2;
  start_ok();
  for (int i = 0; i < 2; i++) {
    c[i] = client_connect();
    client_send(c[i], "{\"id\":1,\"cmd\":\"status\"}\n");
    expect_ok(client_read(c[i]), 1, "status");
  }
  c[2] = client_connect();
  json_t *r = client_read(c[2]);
  assert_non_null(strstr(error_message(r), "uid"));
  expect_error(r, "limit");
  assert_null(client_read(c[2]));
  assert_int_equal(control_server_connections(fx->server), 2);
  for (int i = 0; i < 3; i++)
    client_free(c[i]);
}

static void test_slow_reader_dropped(void **state) {
  (void)state;
  fx->cfg.max_output_queue = 64 * 1024;
  start_ok();
  struct client *slow = client_connect();
  client_send(slow, "{\"id\":1,\"cmd\":\"plugins\"}\n");
  expect_ok(client_read(slow), 1, NULL);
  assert_non_null(fx->held);

  /* Events for a client that never reads: the server must drop it, not block. */
  char *blob = malloc(4096);
  memset(blob, 'e', 4095);
  blob[4095] = '\0';
  json_t *event = json_pack("{s:s,s:s}", "event", "meter", "data", blob);
  free(blob);
  int rc = 0, sent = 0;
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (fx->held != NULL) {
    rc = control_conn_send(fx->held, event);
    if (rc != 0)
      break;
    sent++;
    pump();
    if (base_mono_ms() > deadline)
      fail_msg("a client that never reads was not dropped after %d events", sent);
  }
  json_decref(event);
  assert_int_equal(rc, -ENOBUFS);
  assert_null(fx->held);
  assert_int_equal(fx->held_closed, 1);
  assert_true(sent > 0);
  assert_true(wait_connections(0));

  /* The loop still serves others. */
  struct client *c = client_connect();
  client_send(c, "{\"id\":2,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 2, "status");
  client_expect_eof(slow);
  client_free(slow);
  client_free(c);
}

static void test_idle_timeout(void **state) {
  (void)state;
  fx->cfg.idle_timeout_ms = 100;
  start_ok();
  int fd = memfd_create("runway-test", MFD_CLOEXEC);
  assert_true(fd >= 0);
  fx->memfd = fd;

  struct client *owned = client_connect();
  client_send(owned, "{\"id\":1,\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\"}}\n");
  expect_ok(client_read(owned), 1, NULL);

  uint64_t t0 = base_mono_ms();
  struct client *idle = client_connect();
  client_send(idle, "{\"id\":1,\"cmd\":\"status\"}\n");
  expect_ok(client_read(idle), 1, "status");
  json_t *r = client_read(idle);
  assert_non_null(strstr(error_message(r), "100 ms"));
  expect_error(r, "limit");
  assert_null(client_read(idle));
  assert_true(base_mono_ms() - t0 >= 100);
  client_free(idle);

  /* A connection with an owner (a worker, a subscriber) stays. */
  assert_true(wait_connections(1));
  pump_for(owned, 300);
  assert_false(owned->pc.eof);
  assert_int_equal(control_server_connections(fx->server), 1);
  assert_int_equal(fx->owner_closed, 0);
  client_free(owned);
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (fx->owner_closed == 0 && base_mono_ms() < deadline)
    pump_for(NULL, 1);
  assert_int_equal(fx->owner_closed, 1);
}

static void test_send_with_fds(void **state) {
  (void)state;
  static const char content[] = "hello from the segment";
  static const char content2[] = "and from its second file";
  start_ok();
  fx->memfd = memfd_create("runway-test", MFD_CLOEXEC);
  fx->memfd2 = memfd_create("runway-test-2", MFD_CLOEXEC);
  assert_true(fx->memfd >= 0 && fx->memfd2 >= 0);
  assert_int_equal(write(fx->memfd, content, sizeof(content)), sizeof(content));
  assert_int_equal(write(fx->memfd2, content2, sizeof(content2)), sizeof(content2));

  struct client *c = client_connect();
  client_send(c, "{\"id\":\"w\",\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"pid\":1}}\n");
  json_t *r = client_read(c);
  assert_string_equal(json_string_value(json_object_get(r, "id")), "w");
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  assert_int_equal(fx->send_fd_rc, 0);
  /* Both, in the order sent, as new descriptors of the same files. */
  assert_int_equal(c->passed.n, 2);
  assert_int_not_equal(c->passed.fd[0], fx->memfd);
  assert_int_not_equal(c->passed.fd[1], fx->memfd2);
  char got[64] = {0};
  assert_int_equal(pread(c->passed.fd[0], got, sizeof(got), 0), sizeof(content));
  assert_string_equal(got, content);
  memset(got, 0, sizeof(got));
  assert_int_equal(pread(c->passed.fd[1], got, sizeof(got), 0), sizeof(content2));
  assert_string_equal(got, content2);

  /* The owner hears about the close exactly once. */
  client_free(c);
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (fx->owner_closed == 0 && base_mono_ms() < deadline)
    pump_for(NULL, 1);
  assert_int_equal(fx->owner_closed, 1);
  pump_for(NULL, 20);
  assert_int_equal(fx->owner_closed, 1);
}

static void test_send_with_fd_needs_empty_queue(void **state) {
  (void)state;
  fx->cfg.max_output_queue = 8 * 1024 * 1024;
  start_ok();
  fx->memfd = memfd_create("runway-test", MFD_CLOEXEC);
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"plugins\"}\n");
  expect_ok(client_read(c), 1, NULL);
  struct control_conn *conn = fx->held;
  assert_non_null(conn);

  json_t *event = json_pack("{s:s}", "event", "x");
  char *blob = malloc(32768);
  memset(blob, 'b', 32767);
  blob[32767] = '\0';
  json_t *big = json_pack("{s:s}", "data", blob);
  free(blob);
  /* Fill the kernel buffer until libuv has to queue. */
  for (int i = 0; i < 1000 && control_conn_queued(conn) == 0; i++)
    assert_int_equal(control_conn_send(conn, big), 0);
  assert_true(control_conn_queued(conn) > 0);
  const int one[1] = {fx->memfd}, bad[1] = {-1}, three[3] = {fx->memfd, fx->memfd, fx->memfd};
  assert_int_equal(control_conn_send_with_fds(conn, event, one, 1), -EAGAIN);
  assert_int_equal(control_conn_send_with_fds(conn, event, bad, 1), -EINVAL);
  assert_int_equal(control_conn_send_with_fds(conn, event, three, 3), -EINVAL);
  assert_int_equal(control_conn_send_with_fds(conn, event, one, 0), -EINVAL);

  /* A message over the line limit is refused without harm. */
  char *huge = malloc(PROTO_MAX_ANSWER_LINE + 10);
  memset(huge, 'h', PROTO_MAX_ANSWER_LINE + 9);
  huge[PROTO_MAX_ANSWER_LINE + 9] = '\0';
  json_t *too_big = json_pack("{s:s}", "data", huge);
  free(huge);
  assert_int_equal(control_conn_send(conn, too_big), -EMSGSIZE);
  json_decref(too_big);
  json_decref(big);
  json_decref(event);

  /* control_conn_close lets the queue drain, then closes. */
  control_conn_close(conn);
  assert_int_equal(control_conn_send(conn, event = json_object()), -EPIPE);
  json_decref(event);
  client_expect_eof(c);
  assert_int_equal(fx->held_closed, 1);
  client_free(c);
}

static void test_close_drain_deadline(void **state) {
  (void)state;
  fx->cfg.max_output_queue = 8 * 1024 * 1024;
  fx->cfg.idle_timeout_ms = 100;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"plugins\"}\n");
  expect_ok(client_read(c), 1, NULL);
  struct control_conn *conn = fx->held;
  assert_non_null(conn);

  char *blob = malloc(32768);
  memset(blob, 'b', 32767);
  blob[32767] = '\0';
  json_t *big = json_pack("{s:s}", "data", blob);
  free(blob);
  for (int i = 0; i < 1000 && control_conn_queued(conn) == 0; i++)
    assert_int_equal(control_conn_send(conn, big), 0);
  json_decref(big);
  assert_true(control_conn_queued(conn) > 0);

  /* The client never reads: the close must not wait for it forever. */
  uint64_t t0 = base_mono_ms();
  control_conn_close(conn);
  assert_int_equal(fx->held_closed, 0);
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (fx->held_closed == 0 && base_mono_ms() < deadline)
    pump_for(NULL, 1);
  assert_int_equal(fx->held_closed, 1);
  assert_true(base_mono_ms() - t0 >= 100);
  assert_true(wait_connections(0));
  client_expect_eof(c);
  client_free(c);
}

static void test_symlink_refused(void **state) {
  (void)state;
  char target[160];
  snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
  assert_int_equal(symlink(target, fx->path), 0);
  assert_int_equal(start(), -ELOOP);
  assert_null(fx->server);
  assert_non_null(strstr(fx->err, "symbolic link"));
  assert_non_null(strstr(fx->err, "--socket"));
  struct stat st;
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(access(target, F_OK), -1);

  /* Nor is a regular file replaced. */
  assert_int_equal(unlink(fx->path), 0);
  int fd = open(fx->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(start(), -EEXIST);
  assert_non_null(strstr(fx->err, "not a socket"));
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
}

static void test_live_socket_refused(void **state) {
  (void)state;
  struct control_server *second = NULL;
  char err[256];
  start_ok();
  int rc = control_server_start(&fx->loop, &fx->cfg, dispatch, fx, &second, err, sizeof(err));
  assert_int_equal(rc, -EADDRINUSE);
  assert_null(second);
  char want[256];
  snprintf(want, sizeof(want), "another runwayd is listening on %s; stop it or use --socket",
           fx->path);
  assert_string_equal(err, want);

  /* The first server is untouched. */
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 1, "status");
  client_free(c);
}

static void test_stale_socket_replaced(void **state) {
  (void)state;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(strlen(fx->path) < sizeof(addr.sun_path));
  memcpy(addr.sun_path, fx->path, strlen(fx->path) + 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(close(fd), 0); /* the file stays, nobody listens */
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 1, "status");
  client_free(c);
}

static void test_mode_group_and_parent(void **state) {
  (void)state;
  struct stat st;
  mode_t old = umask(022);

  fx->cfg.mode = 0660;
  fx->cfg.group = getgid();
  start_ok();
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0660);
  assert_int_equal(st.st_gid, getgid());
  stop_server();

  fx->cfg.mode = 0600;
  fx->cfg.group = (gid_t)-1;
  start_ok();
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  stop_server();

  /* A missing parent directory is created 0755, whatever the umask. */
  umask(077);
  snprintf(fx->path, sizeof(fx->path), "%s/sub/control.sock", fx->dir);
  fx->cfg.mode = 0660;
  start_ok();
  char sub[128];
  snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0755);
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0660);
  umask(old);

  /* A missing grandparent is an error with a hint. */
  stop_server();
  snprintf(fx->path, sizeof(fx->path), "%s/a/b/control.sock", fx->dir);
  assert_int_equal(start(), -ENOENT);
  assert_non_null(strstr(fx->err, "--socket"));

  /* A path that cannot fit a sockaddr_un. */
  char longp[200];
  memset(longp, 'a', sizeof(longp));
  longp[0] = '/';
  longp[150] = '\0';
  fx->cfg.path = longp;
  assert_int_equal(start(), -ENAMETOOLONG);
  fx->cfg.path = fx->path;
}

static void test_stop_unlinks(void **state) {
  (void)state;
  start_ok();
  fx->memfd = memfd_create("runway-test", MFD_CLOEXEC);
  struct client *worker = client_connect();
  client_send(worker, "{\"id\":1,\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\"}}\n");
  expect_ok(client_read(worker), 1, NULL);
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 1, "status");

  control_server_stop(fx->server);
  fx->server = NULL;
  /* Owners hear about it before stop returns. */
  assert_int_equal(fx->owner_closed, 1);
  assert_int_equal(access(fx->path, F_OK), -1);
  assert_int_equal(errno, ENOENT);
  client_expect_eof(c);
  client_expect_eof(worker);
  client_free(c);
  client_free(worker);

  /* A file somebody put in its place is left alone. */
  start_ok();
  assert_int_equal(unlink(fx->path), 0);
  int fd = open(fx->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  close(fd);
  stop_server();
  assert_int_equal(access(fx->path, F_OK), 0);
}

/* ---- peer authorisation ------------------------------------------------------ */

/* Ids no real account on a CI machine uses. */
#define OTHER_UID 4243
#define OTHER_GID 4243
#define SOCKET_GID 4242

/* What a client running as another user saw, sent back over a pipe. */
struct peer_result {
  int connect_errno; /* 0, or why connect failed */
  int closed;        /* the server closed the connection after the first line */
  char line[1024];   /* the first line from the server, without its newline */
};

static int need_root(void) {
  if (geteuid() == 0)
    return 1;
  printf("skipped: running clients as other users needs root (CI runs the unit tests as root)\n");
  return 0;
}

/* The child's side: never returns. Uses no cmocka and touches no loop handle. */
static void peer_child(int out, uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
                       int wait_close) {
  struct peer_result r;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  struct timeval tv = {.tv_sec = DEADLINE_MS / 1000};
  static const char req[] = "{\"id\":1,\"cmd\":\"status\"}\n";
  size_t len = 0;
  int fd;

  memset(&r, 0, sizeof(r));
  if (setgroups(ngroups, groups) != 0 || setresgid(gid, gid, gid) != 0 ||
      setresuid(uid, uid, uid) != 0)
    _exit(10);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    _exit(11);
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  memcpy(addr.sun_path, fx->path, strlen(fx->path) + 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    r.connect_errno = errno;
  } else {
    (void)send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
    while (len + 1 < sizeof(r.line)) {
      ssize_t n = recv(fd, r.line + len, 1, 0);
      if (n <= 0 || r.line[len] == '\n')
        break;
      len++;
    }
    r.line[len] = '\0';
    if (wait_close) {
      char c;
      ssize_t n;
      while ((n = recv(fd, &c, 1, 0)) > 0)
        ;
      r.closed = n == 0 || errno == ECONNRESET;
    }
  }
  _exit(write(out, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 12);
}

/*
 * Runs one client as uid/gid with the given supplementary groups in a child
 * process and returns what it saw; the test process turns the server's loop
 * meanwhile. wait_close: the child also waits for the server to close.
 */
static struct peer_result connect_as(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
                                     int wait_close) {
  struct peer_result r;
  size_t got = 0;
  int p[2], status;
  uint64_t deadline = base_mono_ms() + 2 * DEADLINE_MS;

  assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    peer_child(p[1], uid, gid, groups, ngroups, wait_close);
  }
  close(p[1]);
  memset(&r, 0, sizeof(r));
  while (got < sizeof(r)) {
    ssize_t n = read(p[0], (char *)&r + got, sizeof(r) - got);
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    if (n == 0)
      break;
    if (base_mono_ms() > deadline) {
      kill(pid, SIGKILL);
      break;
    }
    pump();
    poll(NULL, 0, 1);
  }
  close(p[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != sizeof(r))
    fail_msg("client as uid %u failed (status 0x%x, %zu bytes of result)", (unsigned)uid,
             (unsigned)status, got);
  return r;
}

static void expect_allowed(const struct peer_result *r) {
  json_t *msg;
  if (r->connect_errno != 0)
    fail_msg("connect: %s", strerror(r->connect_errno));
  msg = json_loads(r->line, 0, NULL);
  if (msg == NULL || !json_is_true(json_object_get(msg, "ok")))
    fail_msg("expected an answer, got: %s", r->line);
  json_decref(msg);
}

/* Returns the error message (static) after checking the line is a permission_denied. */
static const char *expect_denied(const struct peer_result *r) {
  static char message[1024];
  json_t *msg;
  if (r->connect_errno != 0)
    fail_msg("connect: %s", strerror(r->connect_errno));
  msg = json_loads(r->line, 0, NULL);
  if (msg == NULL || error_code(msg) == NULL || strcmp(error_code(msg), "permission_denied") != 0)
    fail_msg("expected permission_denied, got: %s", r->line);
  assert_true(json_is_null(json_object_get(msg, "id")));
  snprintf(message, sizeof(message), "%s", error_message(msg));
  json_decref(msg);
  assert_true(r->closed);
  return message;
}

/* Lets everybody reach the socket, so that only the peer check decides. */
static void open_up_socket(void) {
  assert_int_equal(chmod(fx->dir, 0755), 0);
  fx->cfg.mode = 0666;
}

static void test_peer_root_and_own_uid_allowed(void **state) {
  (void)state;
  if (!need_root()) {
    skip();
    return;
  }
  open_up_socket();
  start_ok();
  /* Root, from another process. */
  struct peer_result r = connect_as(0, 0, NULL, 0, 0);
  expect_allowed(&r);
  assert_int_equal(fx->last_uid, 0);
  stop_server();

  /*
   * The daemon's own user: a server started while the effective uid is
   * OTHER_UID serves OTHER_UID, though it is neither root nor in a group.
   */
  assert_int_equal(chmod(fx->dir, 0777), 0);
  assert_int_equal(setegid(OTHER_GID), 0);
  assert_int_equal(seteuid(OTHER_UID), 0);
  int rc = start();
  assert_int_equal(seteuid(0), 0);
  assert_int_equal(setegid(0), 0);
  if (rc != 0)
    fail_msg("control_server_start as uid %d: %s", OTHER_UID, fx->err);
  r = connect_as(OTHER_UID, OTHER_GID, NULL, 0, 0);
  expect_allowed(&r);
  assert_int_equal(fx->last_uid, OTHER_UID);
  r = connect_as(0, 0, NULL, 0, 0);
  expect_allowed(&r);
  /* Another unprivileged user is not. */
  r = connect_as(OTHER_UID + 1, OTHER_GID + 1, NULL, 0, 1);
  const char *m = expect_denied(&r);
  assert_non_null(strstr(m, "run as root or as the daemon's user"));
  assert_non_null(strstr(m, "(uid 4243)"));
}

static void test_peer_other_uid_refused(void **state) {
  (void)state;
  if (!need_root()) {
    skip();
    return;
  }
  open_up_socket();
  start_ok();
  int before = fx->dispatched;
  struct peer_result r = connect_as(OTHER_UID, OTHER_GID, NULL, 0, 1);
  const char *m = expect_denied(&r);
  assert_string_equal(m, "uid 4243 (gid 4243) may not control runwayd: run as root");
  /* Its request never reached a handler, and it never counted as a connection. */
  assert_int_equal(fx->dispatched, before);
  assert_true(wait_connections(0));

  /* Refused peers do not use up the connection limit of those allowed. */
  stop_server();
  fx->cfg.max_connections = 1;
  start_ok();
  struct client *c = client_connect();
  client_send(c, "{\"id\":1,\"cmd\":\"status\"}\n");
  expect_ok(client_read(c), 1, "status");
  r = connect_as(OTHER_UID, OTHER_GID, NULL, 0, 1);
  /* Told it is not allowed, not that the daemon is full. */
  expect_denied(&r);
  assert_int_equal(control_server_connections(fx->server), 1);
  client_free(c);
}

static void test_peer_group_members_allowed(void **state) {
  (void)state;
  if (!need_root()) {
    skip();
    return;
  }
  open_up_socket();
  fx->cfg.group = SOCKET_GID;
  start_ok();

  /* By primary group. */
  struct peer_result r = connect_as(OTHER_UID, SOCKET_GID, NULL, 0, 0);
  expect_allowed(&r);
  assert_int_equal(fx->last_uid, OTHER_UID);

  /* By a supplementary group. */
  gid_t one[] = {SOCKET_GID};
  r = connect_as(OTHER_UID, OTHER_GID, one, 1, 0);
  expect_allowed(&r);

  /* Among more supplementary groups than the first getsockopt reads. */
  gid_t many[200];
  for (int i = 0; i < 200; i++)
    many[i] = (gid_t)(20000 + i);
  many[199] = SOCKET_GID;
  r = connect_as(OTHER_UID, OTHER_GID, many, 200, 0);
  expect_allowed(&r);

  /* In other groups only: refused, and told which group gives access. */
  many[199] = 30000;
  r = connect_as(OTHER_UID, OTHER_GID, many, 200, 1);
  const char *m = expect_denied(&r);
  char want[256];
  struct group *g = getgrgid(SOCKET_GID);
  snprintf(want, sizeof(want),
           "uid %d (gid %d) may not control runwayd: run as root or as a "
           "member of group %s (gid %d;",
           OTHER_UID, OTHER_GID, g ? g->gr_name : "4242", SOCKET_GID);
  if (strncmp(m, want, strlen(want)) != 0)
    fail_msg("message \"%s\" does not start with \"%s\"", m, want);
  assert_non_null(strstr(m, "usermod -aG"));
}

static void test_peer_groups_fallback(void **state) {
  (void)state;
  if (!need_root()) {
    skip();
    return;
  }
  /* A kernel without SO_PEERGROUPS: the primary gid still counts, supplementary ones cannot. */
  fake_no_peergroups = 1;
  open_up_socket();
  fx->cfg.group = SOCKET_GID;
  start_ok();
  struct peer_result r = connect_as(OTHER_UID, SOCKET_GID, NULL, 0, 0);
  expect_allowed(&r);
  gid_t one[] = {SOCKET_GID};
  r = connect_as(OTHER_UID, OTHER_GID, one, 1, 1);
  expect_denied(&r);
  r = connect_as(0, OTHER_GID, NULL, 0, 0);
  expect_allowed(&r);
}

static void test_socket_mode_and_group_as_root(void **state) {
  (void)state;
  struct stat st;
  if (!need_root()) {
    skip();
    return;
  }
  /* A system instance: 0660 and the configured group, even one nobody is named for. */
  fx->cfg.mode = 0660;
  fx->cfg.group = SOCKET_GID;
  start_ok();
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0660);
  assert_int_equal(st.st_gid, SOCKET_GID);
  assert_int_equal(st.st_uid, 0);

  /*
   * The file's mode is the first gate: with the directory open to all, a
   * stranger cannot even connect to a 0660 socket, but a group member can.
   */
  assert_int_equal(chmod(fx->dir, 0755), 0);
  struct peer_result r = connect_as(OTHER_UID, OTHER_GID, NULL, 0, 0);
  assert_int_equal(r.connect_errno, EACCES);
  gid_t one[] = {SOCKET_GID};
  r = connect_as(OTHER_UID, OTHER_GID, one, 1, 0);
  expect_allowed(&r);
  stop_server();

  /* A user instance: 0600, nobody else gets in even through the file. */
  fx->cfg.mode = 0600;
  fx->cfg.group = (gid_t)-1;
  start_ok();
  assert_int_equal(lstat(fx->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  r = connect_as(OTHER_UID, SOCKET_GID, NULL, 0, 0);
  assert_int_equal(r.connect_errno, EACCES);
}

int main(void) {
  /* A peer that goes away mid-write must not kill the process (runwayd ignores SIGPIPE too). */
  signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_request_response),
      T(test_pipelined),
      T(test_split_line),
      T(test_invalid_keeps_connection),
      T(test_oversize_line),
      T(test_oversize_response),
      T(test_eof_with_half_line),
      T(test_handler_replies_and_closes),
      T(test_connection_cap),
      T(test_per_uid_cap),
      T(test_slow_reader_dropped),
      T(test_idle_timeout),
      T(test_send_with_fds),
      T(test_send_with_fd_needs_empty_queue),
      T(test_close_drain_deadline),
      T(test_symlink_refused),
      T(test_live_socket_refused),
      T(test_stale_socket_replaced),
      T(test_mode_group_and_parent),
      T(test_stop_unlinks),
      T(test_peer_root_and_own_uid_allowed),
      T(test_peer_other_uid_refused),
      T(test_peer_group_members_allowed),
      T(test_peer_groups_fallback),
      T(test_socket_mode_and_group_as_root),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
