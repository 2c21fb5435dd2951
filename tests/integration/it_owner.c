/*
 * it_owner: one owner per control connection. A connection that subscribed
 * to events, or attached as the worker of an external slot, belongs to that
 * subscription or slot; a second claim on it (worker.attach after subscribe,
 * subscribe after worker.attach, a second worker.attach) is refused with
 * `busy`, and closing it leaves nothing behind that points at it. Before the
 * rule, each sequence left a freed connection in the subscriber list or in a
 * slot, and the next event, slot.remove, slot.restart or SIGTERM used it.
 *
 * Labelled asan: scripts/test.sh runs it against an ASan-built runwayd too,
 * where any use after free aborts the daemon and fails the test.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static void add_external(struct h_conn *c, const char *name) {
  json_decref(h_call(
      c, "slot.add",
      json_pack("{s:s, s:b, s:i, s:i}", "name", name, "external", 1, "inputs", 1, "outputs", 1)));
}

/*
 * Sends a request and returns its answer's error code, or "ok"; event lines
 * that a subscribed connection receives meanwhile are skipped.
 */
static char *claim(struct h_conn *conn, const char *cmd, json_t *args, char *code, size_t len) {
  static long long next_id = 1000;
  long long id = next_id++;
  json_t *req = json_pack("{s:I, s:s}", "id", (json_int_t)id, "cmd", cmd);
  if (args != NULL)
    json_object_set_new(req, "args", args);
  char *line = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  H_CHECK(line != NULL, "encode %s", cmd);
  size_t n = strlen(line);
  line[n] = '\n'; /* json_dumps leaves room for its NUL: the newline takes it */
  int rc = h_conn_send(conn, line, n + 1);
  free(line);
  H_CHECK(rc == 0, "send %s: %s", cmd, strerror(-rc));
  for (;;) {
    int err = 0;
    char *text = h_conn_read_line(conn, 10000, &err);
    H_CHECK(text != NULL, "no answer to %s: %s", cmd, strerror(-err));
    json_t *resp = json_loads(text, 0, NULL);
    free(text);
    json_t *rid = json_object_get(resp, "id");
    if (json_is_integer(rid) && json_integer_value(rid) == id) {
      const char *e = h_error_code(resp);
      snprintf(code, len, "%s", e != NULL ? e : "ok");
      json_decref(resp);
      return code;
    }
    json_decref(resp); /* an event */
  }
}

/* Events flow: a slot comes and goes, so every subscriber is written to. */
static void stir(struct h_conn *c, const char *name) {
  json_decref(h_add_slot(
      c, name, json_pack("{s:s, s:i, s:i}", "plugin", "passthrough", "inputs", 1, "outputs", 1),
      10000));
  json_decref(h_call(c, "slot.remove", json_pack("{s:s}", "name", name)));
  json_t *st = h_call(c, "status", NULL);
  json_decref(st);
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char code[64], buf[64];

  h_init("owner", 80);
  h_jack_start(&jack, 48000, 256);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  add_external(&c, "x1");
  add_external(&c, "x2");

  /* 1. subscribe, then worker.attach on the same connection. */
  struct h_conn a;
  H_CHECK(h_conn_open(&a, d.socket) == 0, "connect (a)");
  claim(&a, "subscribe", NULL, code, sizeof(code));
  H_CHECK(strcmp(code, "ok") == 0, "subscribe: %s", code);
  claim(&a, "worker.attach", json_pack("{s:s}", "slot", "x1"), code, sizeof(code));
  if (strcmp(code, "busy") != 0)
    h_error("worker.attach on a subscribed connection answered %s, want busy", code);
  else
    h_log("worker.attach on a subscribed connection: busy");
  h_conn_close(&a);
  stir(&c, "s1");
  H_CHECK(h_proc_alive(&d.proc), "runwayd died after a subscriber that tried to attach left");

  /* 2. worker.attach, then subscribe on the same connection. */
  struct h_conn b;
  H_CHECK(h_conn_open(&b, d.socket) == 0, "connect (b)");
  claim(&b, "worker.attach", json_pack("{s:s}", "slot", "x1"), code, sizeof(code));
  H_CHECK(strcmp(code, "ok") == 0, "worker.attach x1: %s", code);
  claim(&b, "subscribe", NULL, code, sizeof(code));
  if (strcmp(code, "busy") != 0)
    h_error("subscribe on a worker's connection answered %s, want busy", code);
  else
    h_log("subscribe on a worker's connection: busy");

  /* 3. and a second slot on the worker's connection. */
  claim(&b, "worker.attach", json_pack("{s:s}", "slot", "x2"), code, sizeof(code));
  if (strcmp(code, "busy") != 0)
    h_error("a second worker.attach on one connection answered %s, want busy", code);
  else
    h_log("worker.attach of a second slot on one connection: busy");
  h_conn_close(&b);
  stir(&c, "s2");

  /* What used a freed connection before: remove, restart, then SIGTERM. */
  json_decref(h_call(&c, "slot.restart", json_pack("{s:s}", "name", "x2")));
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", "x1")));
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", "x2")));
  H_CHECK(h_proc_alive(&d.proc), "runwayd died");
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
