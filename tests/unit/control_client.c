#include "control_client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

static uv_loop_t *pump_loop;

void client_use_loop(uv_loop_t *loop) { pump_loop = loop; }

void pump(void) { uv_run(pump_loop, UV_RUN_NOWAIT); }

/* The client's waits are 1 ms long: the loop, which the server needs, turns in between. */
static uint64_t soon(void) { return base_mono_ms() + 1; }

struct client *client_connect_to(const char *path) {
  struct client *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  /* Completes at once while the server's backlog has room. */
  int rc = proto_client_connect(&c->pc, path, PROTO_CLIENT_NOW);
  if (rc != 0)
    fail_msg("connect %s: %s", path, strerror(-rc));
  return c;
}

void client_free(struct client *c) {
  if (c == NULL)
    return;
  proto_fds_close(&c->passed);
  proto_client_close(&c->pc);
  free(c);
}

void client_send_n(struct client *c, const char *data, size_t len) {
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  while (len > 0) {
    ssize_t n = proto_client_write(&c->pc, data, len, PROTO_CLIENT_NOW);
    if (n < 0)
      fail_msg("send: %s", strerror((int)-n));
    data += n;
    len -= (size_t)n;
    if (len == 0)
      break;
    if (base_mono_ms() > deadline)
      fail_msg("send did not finish within %d ms", DEADLINE_MS);
    pump();
  }
  pump();
}

void client_send(struct client *c, const char *s) { client_send_n(c, s, strlen(s)); }

int client_fill(struct client *c) { return proto_client_fill(&c->pc, soon()) == 0; }

const char *client_read_raw(struct client *c) {
  static char copy[PROTO_MAX_LINE + 1];
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  for (;;) {
    const char *line;
    struct proto_fds fds;
    ssize_t n = proto_client_read_line(&c->pc, soon(), &line, &fds);
    if (n >= 0) {
      if (fds.n > 0) {
        proto_fds_close(&c->passed);
        c->passed = fds;
      }
      memcpy(copy, line, (size_t)n + 1);
      return copy;
    }
    if (n == -EPIPE)
      return NULL;
    if (n != -ETIMEDOUT)
      fail_msg("reading from the server: %s", strerror((int)-n));
    if (base_mono_ms() > deadline)
      fail_msg("no line from the server within %d ms", DEADLINE_MS);
    pump();
  }
}

json_t *client_read(struct client *c) {
  const char *line = client_read_raw(c);
  json_error_t jerr;
  json_t *msg;
  if (line == NULL)
    return NULL;
  msg = json_loads(line, 0, &jerr);
  if (msg == NULL)
    fail_msg("bad line from server: %s: %s", jerr.text, line);
  return msg;
}

void client_expect_eof(struct client *c) {
  uint64_t deadline = base_mono_ms() + DEADLINE_MS;
  for (;;) {
    const char *line;
    ssize_t n = proto_client_read_line(&c->pc, soon(), &line, NULL);
    if (n >= 0)
      continue;
    if (n == -EPIPE)
      return;
    if (n != -ETIMEDOUT)
      fail_msg("reading from the server: %s", strerror((int)-n));
    if (base_mono_ms() > deadline)
      fail_msg("the server did not close the connection within %d ms", DEADLINE_MS);
    pump();
  }
}

void pump_for(struct client *c, uint64_t ms) {
  uint64_t end = base_mono_ms() + ms;
  while (base_mono_ms() < end) {
    pump();
    if (c != NULL)
      (void)proto_client_fill(&c->pc, soon());
    else
      poll(NULL, 0, 1);
  }
}
