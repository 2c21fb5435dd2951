/*
 * it_socket_abuse: hostile and careless clients never disturb the audio or
 * the daemon's loop.
 *
 * Two slots play: "pt" (passthrough, L = 100 ms) carries an impulse train
 * from the probe for the whole test, and "g" (gain) carries audio too and is
 * the target of parameter floods. Meanwhile a monitor thread asks `status`
 * on a connection of its own every 50 ms. Then, one after the other:
 *   - a line over 64 KiB (with its newline, and a stream of 128 KiB without
 *     any): too_large, then the connection is closed;
 *   - invalid JSON, NUL bytes, invalid UTF-8, 10,000-deep nesting (arrays,
 *     and objects inside args), wrong types of id, cmd, args and
 *     arguments: bad_request or invalid_argument, with a message, and the
 *     connection stays usable;
 *   - 200 connections at once: the daemon's limits (per uid and in total)
 *     refuse the excess, each with one `limit` error line and a close; the
 *     accepted ones are served; once they are closed a fresh connection's
 *     `status` is answered within 1 s;
 *   - a subscriber that never reads while another client loops param.set
 *     (one param event each): it is disconnected once its queue is over the
 *     cap, and the looping client is served throughout;
 *   - a client that floods requests without reading the answers: it is
 *     disconnected once its queue is over the cap.
 * Throughout: every monitor `status` is answered within 1 s, every impulse
 * through pt comes out exactly L later and nothing else does, neither slot's
 * underrun counter rises, and runwayd exits 0 at the end.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define L 4800
#define N_CONNS 200
#define STATUS_LIMIT_MS 1000
#define MONITOR_EVERY_MS 50

static const char *sock;

/* ---- the monitor ------------------------------------------------------------------- */

static struct {
  pthread_t thread;
  atomic_bool stop;
  _Atomic uint64_t asked;
  _Atomic uint64_t answered;
  _Atomic uint64_t late; /* answered after STATUS_LIMIT_MS, or not at all */
  _Atomic uint64_t max_us;
  _Atomic int phase; /* index into phases[] when the slowest answer came */
  _Atomic int now_phase;
  _Atomic int failed; /* errno of a broken connection, or 0 */
} mon;

static const char *const phases[] = {
    "idle", "oversize", "bad requests", "200 connections", "silent subscriber", "flooder", "end"};

/* Connects within 5 s (a connect waits while the listen backlog is full). */
static int connect_within(struct proto_client *c) {
  return proto_client_connect(c, sock, h_now_ms() + 5000);
}

static const char status_line[] = "{\"id\":1,\"cmd\":\"status\"}\n";

/* Sends status on c; true when it is answered ok within timeout_ms. */
static bool status_ok(struct proto_client *c, unsigned timeout_ms, const char **answer,
                      ssize_t *len) {
  *len = proto_client_exchange(c, status_line, sizeof(status_line) - 1, h_now_ms() + timeout_ms,
                               answer, NULL);
  return *len > 0 && memmem(*answer, (size_t)*len, "\"ok\":true", 9) != NULL;
}

static void *monitor_main(void *arg) {
  (void)arg;
  struct proto_client c;
  int rc = connect_within(&c);
  if (rc != 0) {
    atomic_store(&mon.failed, -rc);
    return NULL;
  }
  for (json_int_t id = 1; !atomic_load(&mon.stop); id++) {
    json_t *resp;
    uint64_t t0 = base_mono_us();
    atomic_fetch_add(&mon.asked, 1);
    rc = proto_client_request(&c, id, "status", NULL, h_now_ms() + 10000, &resp, NULL);
    uint64_t dt = base_mono_us() - t0;
    if (rc != 0) {
      atomic_fetch_add(&mon.late, 1);
      atomic_store(&mon.failed, -rc);
      break;
    }
    bool ok = json_is_true(json_object_get(resp, "ok"));
    json_decref(resp);
    if (!ok) {
      atomic_store(&mon.failed, EPROTO);
      break;
    }
    atomic_fetch_add(&mon.answered, 1);
    if (dt > (uint64_t)STATUS_LIMIT_MS * 1000)
      atomic_fetch_add(&mon.late, 1);
    if (dt > atomic_load(&mon.max_us)) {
      atomic_store(&mon.max_us, dt);
      atomic_store(&mon.phase, atomic_load(&mon.now_phase));
    }
    h_sleep_ms(MONITOR_EVERY_MS);
  }
  proto_client_close(&c);
  return NULL;
}

static void phase(int i) {
  atomic_store(&mon.now_phase, i);
  h_log("--- %s ---", phases[i]);
  H_CHECK(atomic_load(&mon.failed) == 0, "the monitor's connection broke: %s",
          strerror(atomic_load(&mon.failed)));
}

/* ---- helpers ------------------------------------------------------------------------- */

/* Sends raw bytes; expects one error line with code; the connection stays open. */
static void expect_code(struct h_conn *c, const char *what, const void *data, size_t len,
                        const char *code) {
  H_CHECK(h_conn_send(c, data, len) == 0, "send %s", what);
  int err;
  char *text = h_conn_read_line(c, 5000, &err);
  if (text == NULL) {
    h_error("%s: no answer (%s)", what, strerror(-err));
    return;
  }
  json_t *resp = json_loads(text, 0, NULL);
  const char *got = resp ? h_error_code(resp) : NULL;
  const char *msg =
      resp ? json_string_value(json_object_get(json_object_get(resp, "error"), "message")) : NULL;
  if (got == NULL || strcmp(got, code) != 0 || msg == NULL || msg[0] == '\0')
    h_error("%s: expected error %s with a message, got %.300s", what, code, text);
  else
    h_log("%s -> %s (\"%.120s\")", what, code, msg);
  json_decref(resp);
  free(text);
}

static void expect_usable(struct h_conn *c, const char *after) {
  json_t *r = h_request(c, "status", NULL);
  if (h_error_code(r) != NULL)
    h_error("after %s the connection no longer answers status", after);
  json_decref(r);
}

/* After a too_large answer the daemon closes: the next read sees EOF. */
static void expect_too_large_close(struct h_conn *c, const char *what) {
  int err;
  char *text = h_conn_read_line(c, 5000, &err);
  if (text == NULL) {
    h_error("%s: no answer (%s)", what, strerror(-err));
    return;
  }
  json_t *resp = json_loads(text, 0, NULL);
  const char *code = resp ? h_error_code(resp) : NULL;
  if (code == NULL || strcmp(code, "too_large") != 0)
    h_error("%s: expected too_large, got %.300s", what, text);
  else
    h_log("%s -> too_large", what);
  json_decref(resp);
  free(text);
  text = h_conn_read_line(c, 5000, &err);
  if (text != NULL || (err != -EPIPE && err != -ECONNRESET))
    h_error("%s: the connection stayed open after too_large (%s)", what,
            text ? text : strerror(-err));
  free(text);
}

/* ---- the abuse ------------------------------------------------------------------------- */

static void oversize(void) {
  struct h_conn c;
  /* A line of 70 KiB with its newline. */
  H_CHECK(h_conn_open(&c, sock) == 0, "connect");
  size_t big = 70 * 1024;
  char *line = malloc(128 * 1024 + 2);
  memset(line, ' ', big);
  memcpy(line, "{\"id\":1,\"cmd\":\"status\",\"args\":{\"x\":\"", 36);
  line[big - 1] = '\n';
  int rc = h_conn_send(&c, line, big);
  if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET)
    h_error("sending 70 KiB: %s", strerror(-rc));
  expect_too_large_close(&c, "a line of 70 KiB");
  h_conn_close(&c);

  /* 128 KiB without a newline, sent in pieces. */
  H_CHECK(h_conn_open(&c, sock) == 0, "connect");
  memset(line, 'a', 128 * 1024);
  for (size_t off = 0; off < 128 * 1024; off += 4096) {
    rc = h_conn_send(&c, line + off, 4096);
    if (rc != 0)
      break; /* the daemon may close as soon as 64 KiB are in */
  }
  expect_too_large_close(&c, "128 KiB without a newline");
  h_conn_close(&c);
  free(line);
}

static void bad_requests(void) {
  struct h_conn c;
  H_CHECK(h_conn_open(&c, sock) == 0, "connect");
  static const struct {
    const char *what, *line, *code;
  } cases[] = {
      {"invalid JSON", "{\"id\":1,\"cmd\":\"status\"\n", "bad_request"},
      {"not JSON at all", "hello runwayd\n", "bad_request"},
      {"a JSON array", "[1,2,3]\n", "bad_request"},
      {"a JSON string", "\"status\"\n", "bad_request"},
      {"trailing garbage", "{\"id\":1,\"cmd\":\"status\"} {}\n", "bad_request"},
      {"duplicate keys", "{\"id\":1,\"cmd\":\"status\",\"cmd\":\"plugins\"}\n", "bad_request"},
      {"invalid UTF-8", "{\"id\":1,\"cmd\":\"st\xff\xfe\"}\n", "bad_request"},
      {"id an array", "{\"id\":[1],\"cmd\":\"status\"}\n", "bad_request"},
      {"id an object", "{\"id\":{},\"cmd\":\"status\"}\n", "bad_request"},
      {"cmd a number", "{\"id\":1,\"cmd\":5}\n", "bad_request"},
      {"no cmd", "{\"id\":1}\n", "bad_request"},
      {"an unknown member", "{\"id\":1,\"cmd\":\"status\",\"x\":1}\n", "bad_request"},
      {"an unknown command", "{\"id\":1,\"cmd\":\"rm -rf\"}\n", "unknown_command"},
      {"args an array", "{\"id\":1,\"cmd\":\"status\",\"args\":[]}\n", "invalid_argument"},
      {"value a string",
       "{\"id\":1,\"cmd\":\"param.set\",\"args\":{\"name\":\"g\",\"param\":"
       "\"gain_db\",\"value\":\"loud\"}}\n",
       "invalid_argument"},
      {"value null",
       "{\"id\":1,\"cmd\":\"param.set\",\"args\":{\"name\":\"g\",\"param\":"
       "\"gain_db\",\"value\":null}}\n",
       "invalid_argument"},
      {"param a boolean",
       "{\"id\":1,\"cmd\":\"param.get\",\"args\":{\"name\":\"g\",\"param\":"
       "true}}\n",
       "invalid_argument"},
      {"name an object", "{\"id\":1,\"cmd\":\"stats\",\"args\":{\"name\":{}}}\n",
       "invalid_argument"},
      {"inputs a real",
       "{\"id\":1,\"cmd\":\"slot.add\",\"args\":{\"name\":\"x\",\"plugin\":"
       "\"gain\",\"inputs\":1.5}}\n",
       "invalid_argument"},
      {"midi a string",
       "{\"id\":1,\"cmd\":\"slot.add\",\"args\":{\"name\":\"x\",\"plugin\":"
       "\"gain\",\"midi\":\"yes\"}}\n",
       "invalid_argument"},
      {"a huge number",
       "{\"id\":1,\"cmd\":\"param.set\",\"args\":{\"name\":\"g\",\"param\":"
       "\"gain_db\",\"value\":1e400}}\n",
       "bad_request"},
      {"an unknown parameter",
       "{\"id\":1,\"cmd\":\"param.set\",\"args\":{\"name\":\"g\","
       "\"param\":\"volume\",\"value\":1}}\n",
       "not_found"},
      {"an unknown slot",
       "{\"id\":1,\"cmd\":\"param.set\",\"args\":{\"name\":\"nosuch\","
       "\"param\":\"gain_db\",\"value\":1}}\n",
       "not_found"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    expect_code(&c, cases[i].what, cases[i].line, strlen(cases[i].line), cases[i].code);
  static const char nul[] = "{\"id\":1,\"cmd\":\"sta\0tus\"}\n";
  expect_code(&c, "a NUL byte", nul, sizeof(nul) - 1, "bad_request");

  /* 10,000-deep nesting: arrays, and objects inside args (about 60 KB, under the line limit). */
  enum { DEPTH = 10000 };
  char *deep = malloc(8 * DEPTH + 64);
  size_t n = 0;
  for (int i = 0; i < DEPTH; i++)
    deep[n++] = '[';
  for (int i = 0; i < DEPTH; i++)
    deep[n++] = ']';
  deep[n++] = '\n';
  expect_code(&c, "arrays nested 10,000 deep", deep, n, "bad_request");
  n = (size_t)sprintf(deep, "{\"id\":1,\"cmd\":\"status\",\"args\":");
  for (int i = 0; i < DEPTH; i++) {
    memcpy(deep + n, "{\"a\":", 5);
    n += 5;
  }
  deep[n++] = '1';
  for (int i = 0; i < DEPTH + 1; i++)
    deep[n++] = '}';
  deep[n++] = '\n';
  H_CHECK(n < 64 * 1024, "the nested request is %zu bytes", n);
  expect_code(&c, "objects nested 10,000 deep in args", deep, n, "bad_request");
  free(deep);

  /* A thousand bad lines in one write: each answered, in order. */
  size_t cap = 1000 * 32, len = 0;
  char *many = malloc(cap);
  for (int i = 0; i < 1000; i++)
    len += (size_t)snprintf(many + len, cap - len, "{\"id\":%d,\"cmd\":%d}\n", i, i);
  H_CHECK(h_conn_send(&c, many, len) == 0, "send 1000 bad lines");
  free(many);
  unsigned answered = 0;
  for (int i = 0; i < 1000; i++) {
    int err;
    char *text = h_conn_read_line(&c, 5000, &err);
    if (text == NULL) {
      h_error("1000 bad lines: answer %d missing (%s)", i, strerror(-err));
      break;
    }
    json_t *resp = json_loads(text, 0, NULL);
    const char *code = resp ? h_error_code(resp) : NULL;
    if (code != NULL && strcmp(code, "bad_request") == 0 && h_int(resp, "id") == i)
      answered++;
    json_decref(resp);
    free(text);
  }
  h_log("1000 bad lines in one write: %u answered bad_request with their ids, in order", answered);
  if (answered != 1000)
    h_error("1000 bad lines: only %u answered in order", answered);
  expect_usable(&c, "the bad requests");
  h_conn_close(&c);
}

static void many_connections(void) {
  static struct proto_client conns[N_CONNS];
  unsigned refused = 0, accepted = 0, connect_failed = 0, other = 0;
  uint64_t t0 = h_now_ms();
  for (int i = 0; i < N_CONNS; i++) {
    if (connect_within(&conns[i]) != 0)
      connect_failed++;
  }
  h_log("%d connections opened in %llu ms (%u failed to connect)", N_CONNS,
        (unsigned long long)(h_now_ms() - t0), connect_failed);
  /*
   * Refused ones get one limit line and EOF at once; accepted ones get
   * nothing until they ask. Wait until none has become readable for 500 ms.
   */
  char first_msg[512] = "";
  bool decided[N_CONNS] = {false};
  uint64_t quiet_since = h_now_ms(), deadline = h_now_ms() + 10000;
  while (h_now_ms() - quiet_since < 500 && h_now_ms() < deadline) {
    struct pollfd pf[N_CONNS];
    int idx[N_CONNS], np = 0;
    for (int i = 0; i < N_CONNS; i++) {
      if (conns[i].fd >= 0 && !decided[i]) {
        pf[np].fd = conns[i].fd;
        pf[np].events = POLLIN;
        idx[np++] = i;
      }
    }
    if (np == 0 || poll(pf, (nfds_t)np, 100) <= 0)
      continue;
    for (int k = 0; k < np; k++) {
      if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      int i = idx[k];
      const char *line = "";
      decided[i] = true;
      quiet_since = h_now_ms();
      ssize_t len = proto_client_read_line(&conns[i], h_now_ms() + 5000, &line, NULL);
      json_t *resp = len > 0 ? json_loadb(line, (size_t)len, 0, NULL) : NULL;
      const char *code = resp ? h_error_code(resp) : NULL;
      const char *msg =
          resp ? json_string_value(json_object_get(json_object_get(resp, "error"), "message"))
               : NULL;
      if (code != NULL && strcmp(code, "limit") == 0 && msg != NULL) {
        refused++;
        if (first_msg[0] == '\0')
          snprintf(first_msg, sizeof(first_msg), "%s", msg);
        /* Then the daemon closes it. */
        if (proto_client_read_line(&conns[i], h_now_ms() + 5000, &line, NULL) != -EPIPE) {
          other++;
          h_error("connection %d: still open after its limit error", i);
        }
      } else {
        other++;
        h_error("connection %d: expected a limit error or nothing, got %.*s", i,
                len > 0 ? (int)len : 0, line);
      }
      json_decref(resp);
    }
  }
  /* The rest were accepted: each is served. */
  for (int i = 0; i < N_CONNS; i++) {
    const char *answer = "";
    ssize_t len;
    if (conns[i].fd < 0 || decided[i])
      continue;
    if (status_ok(&conns[i], 5000, &answer, &len)) {
      accepted++;
    } else {
      other++;
      h_error("connection %d: neither refused nor served (%.*s)", i, len > 0 ? (int)len : 0,
              answer);
    }
  }
  h_log("%d connections: %u served, %u refused with limit (\"%s\"), %u otherwise", N_CONNS,
        accepted, refused, first_msg, other);
  if (refused < N_CONNS - 64 || accepted == 0 || other != 0 || connect_failed != 0)
    h_error("200 connections: want the excess refused with limit and the rest served; got %u "
            "refused, %u served, %u otherwise, %u connect failures",
            refused, accepted, other, connect_failed);
  for (int i = 0; i < N_CONNS; i++)
    proto_client_close(&conns[i]);

  /*
   * A fresh connection is served promptly. The daemon may accept it before it
   * has seen the others close (then: limit, and the client tries again).
   */
  uint64_t fresh_deadline = h_now_ms() + 5000, t_fresh = base_mono_us();
  unsigned tries = 0;
  for (;;) {
    struct proto_client fresh;
    const char *answer = "";
    ssize_t len;
    int rc = connect_within(&fresh);
    H_CHECK(rc == 0, "connect after the 200: %s", strerror(-rc));
    tries++;
    bool served = status_ok(&fresh, 5000, &answer, &len);
    if (!served && h_now_ms() > fresh_deadline)
      H_FAIL("a fresh connection is still not served 5 s after the 200 closed: %.*s",
             len > 0 ? (int)len : 0, answer);
    proto_client_close(&fresh);
    if (served)
      break;
    h_sleep_ms(10);
  }
  uint64_t dt = base_mono_us() - t_fresh;
  h_log("a fresh connection after the 200 closed: status answered after %.1f ms (%u attempt%s)",
        dt / 1000.0, tries, tries == 1 ? "" : "s");
  if (dt > STATUS_LIMIT_MS * 1000)
    h_error("a fresh status took %.1f ms after the 200 closed", dt / 1000.0);
}

/* True once the peer closed fd (even with unread data left). */
static bool peer_closed(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

/* Counts the lines left in fd until EOF; -1 if it does not end within timeout. */
static long drain_lines(int fd, unsigned timeout_ms) {
  struct proto_client c;
  const char *line;
  long lines = 0;
  ssize_t n;
  uint64_t deadline = h_now_ms() + timeout_ms;
  H_CHECK(proto_client_adopt(&c, dup(fd)) == 0, "out of memory");
  while ((n = proto_client_read_line(&c, deadline, &line, NULL)) >= 0)
    lines++;
  proto_client_close(&c);
  return n == -EPIPE ? lines : -1;
}

static void silent_subscriber(void) {
  struct h_conn sub, loop;
  H_CHECK(h_conn_open(&sub, sock) == 0, "connect the subscriber");
  json_decref(h_call(&sub, "subscribe", json_pack("{s:[s]}", "events", "param")));
  H_CHECK(h_conn_open(&loop, sock) == 0, "connect the looping client");
  uint64_t t0 = h_now_ms(), deadline = t0 + 30000, sets = 0, busy = 0;
  uint64_t max_us = 0;
  while (!peer_closed(sub.fd)) {
    if (h_now_ms() > deadline)
      H_FAIL("the subscriber that never reads was not disconnected within 30 s (%llu param.set)",
             (unsigned long long)sets);
    uint64_t t = base_mono_us();
    json_t *r = h_request(&loop, "param.set",
                          json_pack("{s:s, s:s, s:f}", "name", "g", "param", "gain_db", "value",
                                    (double)(sets % 13) - 6.0));
    uint64_t dt = base_mono_us() - t;
    if (dt > max_us)
      max_us = dt;
    const char *code = h_error_code(r);
    if (code != NULL && strcmp(code, "busy") == 0)
      busy++; /* the RT queue is full for a moment: no event, try on */
    else if (code != NULL)
      H_FAIL("param.set during the event flood: %s", code);
    json_decref(r);
    sets++;
  }
  uint64_t took = h_now_ms() - t0;
  long events = drain_lines(sub.fd, 5000);
  h_log("the silent subscriber was disconnected after %llu ms and %llu param.set (%llu busy; "
        "slowest %.1f ms); it had %ld lines waiting, then EOF",
        (unsigned long long)took, (unsigned long long)sets, (unsigned long long)busy,
        max_us / 1000.0, events);
  if (events < 0)
    h_error("the silent subscriber's connection did not end");
  else if (events < 100)
    h_error("the silent subscriber got only %ld event lines before it was cut", events);
  if (max_us > STATUS_LIMIT_MS * 1000)
    h_error("a param.set took %.1f ms during the flood", max_us / 1000.0);
  expect_usable(&loop, "the subscriber was cut");
  h_conn_close(&loop);
  h_conn_close(&sub);
}

static void flooder(void) {
  struct proto_client c;
  H_CHECK(connect_within(&c) == 0, "connect the flooder");
  /* `plugins` has a large answer: the queue fills fast. */
  size_t cap = 64 * 1024, len = 0;
  char *reqs = malloc(cap);
  while (len + 40 < cap)
    len += (size_t)snprintf(reqs + len, cap - len, "{\"id\":%zu,\"cmd\":\"plugins\"}\n", len);
  uint64_t t0 = h_now_ms(), deadline = t0 + 30000, sent = 0;
  size_t off = 0;
  int why = 0;
  for (;;) {
    if (peer_closed(c.fd)) {
      why = ECONNRESET;
      break;
    }
    ssize_t n = proto_client_write(&c, reqs + off, len - off, h_now_ms() + 50);
    if (n < 0) {
      H_CHECK(n == -EPIPE || n == -ECONNRESET, "flooding: %s", strerror((int)-n));
      why = (int)-n;
      break;
    }
    sent += (uint64_t)n;
    off = (off + (size_t)n) % len; /* the buffer ends with a whole line */
    if (h_now_ms() > deadline)
      H_FAIL("the flooder was not disconnected within 30 s (%llu bytes sent)",
             (unsigned long long)sent);
  }
  uint64_t took = h_now_ms() - t0;
  /* What it had been sent: answers only (it was cut for not reading, not for what it sent). */
  const char *line;
  ssize_t n;
  unsigned ok = 0, bad = 0;
  while ((n = proto_client_read_line(&c, h_now_ms() + 5000, &line, NULL)) >= 0) {
    if (memmem(line, (size_t)n, "\"ok\":true", 9) != NULL)
      ok++;
    else if (bad++ == 0)
      h_error("the flooder got an error instead of an answer: %.300s", line);
  }
  h_log("the flooder (requests, never reading) was disconnected after %llu ms and %llu bytes "
        "of requests (%s); %u answers were waiting for it",
        (unsigned long long)took, (unsigned long long)sent, strerror(why), ok);
  if (ok == 0)
    h_error("the flooder had no answer waiting: it was cut before its queue filled");
  free(reqs);
  proto_client_close(&c);
}

/* ---- main ------------------------------------------------------------------------------ */

static const char *port_of(json_t *slot, const char *dir) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), 0));
}

static json_int_t underruns(struct h_conn *c, const char *slot) {
  return h_slot_stat(c, slot, "underruns");
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[64];

  h_init("socket_abuse", 95);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  sock = d.socket;
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 2, false, 2, 0, 0);
  h_probe_count_only(p, 1);

  json_t *s = h_add_slot(&c, "pt",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000);
  h_probe_path_latency(p, L);
  h_connect(p, h_probe_out(p, 0), port_of(s, "inputs"));
  h_connect(p, port_of(s, "outputs"), h_probe_in(p, 0));
  json_decref(s);
  s = h_add_slot(&c, "g",
                 json_pack("{s:s, s:i, s:i, s:i}", "plugin", "gain", "inputs", 1, "outputs", 1,
                           "latency_frames", L),
                 10000);
  h_connect(p, h_probe_out(p, 1), port_of(s, "inputs"));
  h_connect(p, port_of(s, "outputs"), h_probe_in(p, 1));
  json_decref(s);
  h_probe_dc(p, 1, 0.25f);
  json_int_t u_pt = underruns(&c, "pt"), u_g = underruns(&c, "g");

  /* Impulses through pt for longer than the test can take; checked up to where it got. */
  unsigned ports[1] = {0};
  h_impulse_train(p, ports, 1, 1200, 1900, L);
  H_CHECK(pthread_create(&mon.thread, NULL, monitor_main, NULL) == 0, "start the monitor");

  phase(0);
  h_sleep_ms(300); /* the monitor and the audio run undisturbed for a moment */
  phase(1);
  oversize();
  phase(2);
  bad_requests();
  phase(3);
  many_connections();
  phase(4);
  silent_subscriber();
  phase(5);
  flooder();
  phase(6);
  h_sleep_ms(300);

  atomic_store(&mon.stop, true);
  pthread_join(mon.thread, NULL);
  uint64_t asked = atomic_load(&mon.asked), answered = atomic_load(&mon.answered),
           late = atomic_load(&mon.late), max_us = atomic_load(&mon.max_us);
  int failed = atomic_load(&mon.failed);
  h_log("monitor: %llu status asked, %llu answered, %llu late or unanswered; slowest %.1f ms "
        "(during \"%s\")",
        (unsigned long long)asked, (unsigned long long)answered, (unsigned long long)late,
        max_us / 1000.0, phases[atomic_load(&mon.phase)]);
  if (failed != 0)
    h_error("the monitor's connection broke: %s", strerror(failed));
  if (late != 0 || answered < 20)
    h_error("status was not always answered within %d ms (%llu late, %llu answered)",
            STATUS_LIMIT_MS, (unsigned long long)late, (unsigned long long)answered);

  H_CHECK(h_proc_alive(&d.proc), "runwayd died");
  json_int_t u_pt2 = underruns(&c, "pt"), u_g2 = underruns(&c, "g");
  h_log("underruns: pt %lld -> %lld, g %lld -> %lld", (long long)u_pt, (long long)u_pt2,
        (long long)u_g, (long long)u_g2);
  if (u_pt2 != u_pt || u_g2 != u_g)
    h_error("the slots underran during the abuse");
  uint64_t end = h_probe_now(p);
  h_probe_wait_frame(p, end, 5000);
  struct h_check ck;
  if (!h_check_impulses(p, 0, 0, L, 0, 0, end - L, false, "pt during the abuse", &ck))
    h_error("pt: impulses not exactly L later during the abuse");
  if (ck.exact + ck.optional_exact < 20)
    h_error("pt: only %u impulses checked", ck.exact + ck.optional_exact);
  if (h_probe_nonzero(p, 1) == 0)
    h_error("g: no audio came through");

  h_probe_close(p);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
