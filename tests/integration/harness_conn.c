/*
 * The control connection: a JSON-lines client of runwayd's socket, one
 * request and its answer at a time. Kept to this file alone so that it can
 * give way to the protocol's own client module (proto/) without touching the
 * rest of the harness.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness_internal.h"
#include "protocol.h"

int h_conn_open(struct h_conn *c, const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  c->next_id = 1;
  if (strlen(path) >= sizeof(addr.sun_path))
    return -ENAMETOOLONG;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  c->fd = fd;
  c->cap = 1 << 16;
  c->buf = malloc(c->cap);
  return 0;
}

void h_conn_close(struct h_conn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

int h_conn_send(struct h_conn *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

char *h_conn_read_line(struct h_conn *c, unsigned timeout_ms, int *err) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  *err = 0;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl != NULL) {
      size_t n = (size_t)(nl - c->buf);
      char *line = malloc(n + 1);
      memcpy(line, c->buf, n);
      line[n] = '\0';
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return line;
    }
    int64_t left = (int64_t)deadline - (int64_t)h_now_ms();
    if (left <= 0) {
      *err = -ETIMEDOUT;
      return NULL;
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      *err = -errno;
      return NULL;
    }
    if (r == 0)
      continue;
    if (c->cap - c->len < 4096) {
      c->cap *= 2;
      c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      *err = -errno;
      return NULL;
    }
    if (n == 0) {
      *err = -EPIPE;
      return NULL;
    }
    c->len += (size_t)n;
  }
}

json_t *h_request(struct h_conn *c, const char *cmd, json_t *args) {
  long long id = c->next_id++;
  json_t *req = json_pack("{s:I, s:s}", "id", (json_int_t)id, "cmd", cmd);
  if (args != NULL)
    json_object_set_new(req, "args", args);
  size_t len;
  char *line = proto_dump_line(req, &len);
  json_decref(req);
  if (line == NULL)
    H_FAIL("cannot encode a %s request", cmd);
  int rc = h_conn_send(c, line, len);
  free(line);
  if (rc != 0)
    H_FAIL("sending %s to runwayd: %s", cmd, strerror(-rc));
  int err;
  char *resp_line = h_conn_read_line(c, 10000, &err);
  if (resp_line == NULL)
    H_FAIL("no answer to %s from runwayd: %s", cmd, strerror(-err));
  json_error_t jerr;
  json_t *resp = json_loads(resp_line, 0, &jerr);
  if (resp == NULL || !json_is_object(resp))
    H_FAIL("answer to %s is not a JSON object: %s", cmd, resp_line);
  json_t *rid = json_object_get(resp, "id");
  if (!json_is_integer(rid) || json_integer_value(rid) != id)
    H_FAIL("answer to %s (id %lld) carries another id: %s", cmd, id, resp_line);
  free(resp_line);
  return resp;
}

const char *h_error_code(const json_t *resp) {
  if (json_is_true(json_object_get(resp, "ok")))
    return NULL;
  const char *code = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
  return code ? code : "(no code)";
}

json_t *h_call(struct h_conn *c, const char *cmd, json_t *args) {
  json_t *resp = h_request(c, cmd, args);
  if (!json_is_true(json_object_get(resp, "ok"))) {
    char *text = json_dumps(resp, JSON_COMPACT);
    H_FAIL("%s failed: %s", cmd, text);
  }
  json_t *result = json_incref(json_object_get(resp, "result"));
  json_decref(resp);
  return result;
}

json_t *h_call_error(struct h_conn *c, const char *cmd, json_t *args, const char *code) {
  json_t *resp = h_request(c, cmd, args);
  const char *got = h_error_code(resp);
  if (got == NULL || strcmp(got, code) != 0) {
    char *text = json_dumps(resp, JSON_COMPACT);
    H_FAIL("%s: expected error %s, got %s", cmd, code, text);
  }
  return resp;
}

json_int_t h_int(const json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_integer(v) ? json_integer_value(v) : -1;
}

const char *h_str(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}
