#include "control_client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uv_loop_t *pump_loop;

void client_use_loop(uv_loop_t *loop) { pump_loop = loop; }

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pump(void) { uv_run(pump_loop, UV_RUN_NOWAIT); }

struct client *client_connect_to(const char *path) {
  struct client *c = calloc(1, sizeof(*c));
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  assert_non_null(c);
  c->passed_fd = -1;
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  assert_true(c->fd >= 0);
  assert_true(strlen(path) < sizeof(addr.sun_path));
  memcpy(addr.sun_path, path, strlen(path) + 1);
  /* Completes at once while the server's backlog has room. */
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
    fail_msg("connect %s: %s", path, strerror(errno));
  return c;
}

void client_free(struct client *c) {
  if (c == NULL)
    return;
  if (c->passed_fd >= 0)
    close(c->passed_fd);
  close(c->fd);
  free(c);
}

void client_send_n(struct client *c, const char *data, size_t len) {
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (len > 0) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN)
      fail_msg("send: %s", strerror(errno));
    if (now_ms() > deadline)
      fail_msg("send did not finish within %d ms", DEADLINE_MS);
    pump();
  }
  pump();
}

void client_send(struct client *c, const char *s) { client_send_n(c, s, strlen(s)); }

int client_fill(struct client *c) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } cbuf;
  struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = sizeof(c->buf) - c->len};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cbuf.buf,
                      .msg_controllen = sizeof(cbuf.buf)};
  struct pollfd p = {.fd = c->fd, .events = POLLIN};

  if (c->eof || iov.iov_len == 0)
    return 0;
  if (poll(&p, 1, 1) <= 0)
    return 0;
  ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) {
    c->eof = 1;
    return 1;
  }
  if (n < 0)
    return 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
      memcpy(&c->passed_fd, CMSG_DATA(cm), sizeof(int));
  c->len += (size_t)n;
  return 1;
}

const char *client_read_raw(struct client *c) {
  static char line[sizeof(((struct client *)0)->buf) + 1];
  uint64_t deadline = now_ms() + DEADLINE_MS;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl != NULL) {
      size_t n = (size_t)(nl - c->buf);
      memcpy(line, c->buf, n);
      line[n] = '\0';
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return line;
    }
    if (c->eof)
      return NULL;
    if (now_ms() > deadline)
      fail_msg("no line from the server within %d ms", DEADLINE_MS);
    pump();
    client_fill(c);
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
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (!c->eof) {
    if (now_ms() > deadline)
      fail_msg("the server did not close the connection within %d ms", DEADLINE_MS);
    pump();
    client_fill(c);
    c->len = 0;
  }
}

void pump_for(struct client *c, uint64_t ms) {
  uint64_t end = now_ms() + ms;
  while (now_ms() < end) {
    pump();
    if (c != NULL)
      client_fill(c);
    else
      poll(NULL, 0, 1);
  }
}
