#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "protocol.h"

/*
 * The buffer starts with room for a request-sized line and grows, when a
 * line does not fit, up to the longest answer the daemon sends and its newline.
 */
#define CLIENT_CAP ((size_t)PROTO_MAX_LINE + 1)
#define CLIENT_MAX_CAP ((size_t)PROTO_MAX_ANSWER_LINE + 1)
/* Descriptors taken from one message; the first PROTO_CLIENT_MAX_FDS are kept, the rest closed. */
#define FDS_PER_MESSAGE 8

static void client_reset(struct proto_client *c) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
}

void proto_fds_close(struct proto_fds *fds) {
  if (fds == NULL)
    return;
  for (int i = 0; i < fds->n; i++)
    if (fds->fd[i] >= 0)
      (void)close(fds->fd[i]);
  fds->n = 0;
}

static int client_alloc(struct proto_client *c) {
  client_reset(c);
  c->buf = malloc(CLIENT_CAP);
  if (c->buf == NULL)
    return -ENOMEM;
  c->cap = CLIENT_CAP;
  return 0;
}

/* Milliseconds left until deadline, for a timeout; 0 once it passed. */
static uint64_t time_left(uint64_t deadline) {
  uint64_t now = base_mono_ms();
  return deadline > now ? deadline - now : 0;
}

int proto_client_connect(struct proto_client *c, const char *path, uint64_t deadline) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int fd, rc;

  if (client_alloc(c) != 0)
    return -ENOMEM;
  if (strlen(path) >= sizeof(addr.sun_path)) {
    rc = -ENAMETOOLONG;
    goto fail;
  }
  memcpy(addr.sun_path, path, strlen(path) + 1);

  uint64_t left = deadline == PROTO_CLIENT_FOREVER ? 0 : time_left(deadline);
  /* With no time left the connect must not wait at all: a non-blocking one fails at once. */
  int nonblock = deadline != PROTO_CLIENT_FOREVER && left == 0 ? SOCK_NONBLOCK : 0;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | nonblock, 0);
  if (fd < 0) {
    rc = -errno;
    goto fail;
  }
  if (left > 0) {
    /* A Unix socket's connect waits for room in a full backlog; SO_SNDTIMEO bounds that wait. */
    struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                         .tv_usec = (suseconds_t)(left % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    rc = -errno;
    (void)close(fd); /* never connected */
    goto fail;
  }
  /* Every wait from here on is a poll with the deadline; no call may block. */
  if (!nonblock)
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  c->fd = fd;
  return 0;

fail:
  free(c->buf);
  client_reset(c);
  return rc;
}

int proto_client_adopt(struct proto_client *c, int fd) {
  if (client_alloc(c) != 0)
    return -ENOMEM;
  c->fd = fd; /* left as it is: every call here passes MSG_DONTWAIT */
  return 0;
}

void proto_client_close(struct proto_client *c) {
  if (c == NULL)
    return;
  proto_fds_close(&c->passed); /* nobody took them */
  if (c->fd >= 0)
    (void)close(c->fd); /* a socket: nothing is lost that a later call could save */
  free(c->buf);
  client_reset(c);
}

int proto_client_detach(struct proto_client *c) {
  int fd = c->fd;
  c->fd = -1;
  proto_client_close(c);
  return fd;
}

void proto_client_set_sigmask(struct proto_client *c, const sigset_t *mask) { c->sigmask = mask; }

/* Waits until fd is ready for events, or the deadline: 0, -ETIMEDOUT, -EINTR or -errno. */
static int client_wait(struct proto_client *c, short events, uint64_t deadline) {
  struct pollfd p = {.fd = c->fd, .events = events};

  for (;;) {
    struct timespec ts, *tsp = NULL;
    if (deadline != PROTO_CLIENT_FOREVER) {
      uint64_t left = time_left(deadline);
      ts.tv_sec = (time_t)(left / 1000);
      ts.tv_nsec = (long)(left % 1000) * 1000000;
      tsp = &ts;
    }
    int rc = ppoll(&p, 1, tsp, c->sigmask);
    if (rc > 0)
      return 0;
    if (rc == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
    if (c->sigmask != NULL)
      return -EINTR;
  }
}

ssize_t proto_client_write(struct proto_client *c, const void *data, size_t len,
                           uint64_t deadline) {
  const char *p = data;
  size_t done = 0;

  if (c->fd < 0)
    return -EBADF;
  while (done < len) {
    ssize_t n = send(c->fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    int rc = client_wait(c, POLLOUT, deadline);
    if (rc == -ETIMEDOUT)
      break;
    if (rc < 0)
      return rc;
  }
  return (ssize_t)done;
}

int proto_client_send(struct proto_client *c, const void *data, size_t len, uint64_t deadline) {
  ssize_t n = proto_client_write(c, data, len, deadline);
  if (n < 0)
    return (int)n;
  return (size_t)n == len ? 0 : -ETIMEDOUT;
}

/* Doubles buf for a line that did not fit: 0, -EMSGSIZE at the limit, or -ENOMEM. */
static int client_grow(struct proto_client *c) {
  if (c->cap >= CLIENT_MAX_CAP)
    return -EMSGSIZE;
  size_t cap = c->cap * 2 < CLIENT_MAX_CAP ? c->cap * 2 : CLIENT_MAX_CAP;
  char *buf = realloc(c->buf, cap);
  if (buf == NULL)
    return -ENOMEM;
  c->buf = buf;
  c->cap = cap;
  return 0;
}

/*
 * One recvmsg into the free end of buf, taking the descriptors that came
 * with it. Returns 0 (bytes, or EOF: c->eof), -EAGAIN when nothing is there,
 * or -errno.
 */
static int client_recv(struct proto_client *c) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
  } control;
  struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = c->cap - c->len};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.buf,
                       .msg_controllen = sizeof(control.buf)};
  ssize_t n;

  do
    n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  /*
   * A peer that closes before reading all we sent resets the connection
   * instead of ending it (Unix sockets); for us both are the end, after
   * whatever it sent before.
   */
  if (n < 0 && errno == ECONNRESET) {
    c->eof = 1;
    return 0;
  }
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;

  /*
   * The kernel ends a read with the message that carried descriptors, so
   * the last byte read belongs to it, while bytes before may be an earlier
   * message's: the descriptor goes with the line holding that last byte.
   */
  int keep = c->passed.n == 0 && n > 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      if (keep && c->passed.n < PROTO_CLIENT_MAX_FDS) {
        c->passed.fd[c->passed.n++] = fd;
        c->passed_at = c->len + (size_t)n - 1;
      } else {
        (void)close(fd); /* one message's worth per line is all the protocol passes */
      }
    }
  }
  if (n == 0)
    c->eof = 1;
  c->len += (size_t)n;
  return 0;
}

/* Drops the line returned last, so that buf starts with what is still unread. */
static void client_compact(struct proto_client *c) {
  if (c->consumed == 0)
    return;
  memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
  c->len -= c->consumed;
  /* Descriptors still held came with a later line: consumed <= passed_at. */
  if (c->passed.n > 0)
    c->passed_at -= c->consumed;
  c->consumed = 0;
}

int proto_client_fill(struct proto_client *c, uint64_t deadline) {
  if (c->fd < 0 || c->buf == NULL)
    return -EBADF;
  client_compact(c);
  if (c->eof)
    return -EPIPE;
  if (c->len == c->cap && client_grow(c) != 0)
    return -ENOBUFS;
  for (;;) {
    int rc = client_recv(c);
    if (rc != -EAGAIN)
      return rc;
    rc = client_wait(c, POLLIN, deadline);
    if (rc < 0)
      return rc;
  }
}

/*
 * proto_client_read_line. wait_first: the answer to a request just sent is
 * most likely not there yet, so poll before reading instead of trying a
 * read that would find nothing: one system call less per round trip.
 */
static ssize_t read_line(struct proto_client *c, uint64_t deadline, const char **line,
                         struct proto_fds *fds, int wait_first) {
  if (fds != NULL)
    fds->n = 0;
  if (c->fd < 0 || c->buf == NULL)
    return -EBADF;
  client_compact(c);
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl != NULL) {
      size_t n = (size_t)(nl - c->buf);
      *nl = '\0';
      c->consumed = n + 1;
      if (c->passed.n > 0 && c->passed_at <= n) {
        if (fds != NULL)
          *fds = c->passed;
        else
          proto_fds_close(&c->passed); /* unwanted */
        c->passed.n = 0;
      }
      *line = c->buf;
      return (ssize_t)n;
    }
    if (c->eof)
      return -EPIPE;
    if (c->len == c->cap) {
      int grown = client_grow(c);
      if (grown != 0)
        return grown;
    }
    int rc = wait_first ? -EAGAIN : client_recv(c);
    if (rc == -EAGAIN)
      rc = client_wait(c, POLLIN, deadline);
    if (rc < 0)
      return rc;
    wait_first = 0;
  }
}

ssize_t proto_client_read_line(struct proto_client *c, uint64_t deadline, const char **line,
                               struct proto_fds *fds) {
  return read_line(c, deadline, line, fds, 0);
}

ssize_t proto_client_exchange(struct proto_client *c, const char *line, size_t len,
                              uint64_t deadline, const char **answer, struct proto_fds *fds) {
  int rc = proto_client_send(c, line, len, deadline);
  if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET) {
    if (fds != NULL)
      fds->n = 0;
    return rc;
  }
  return read_line(c, deadline, answer, fds, 1);
}

int proto_client_request(struct proto_client *c, json_int_t id, const char *cmd, json_t *args,
                         uint64_t deadline, json_t **answer, struct proto_fds *fds) {
  json_t *request = json_pack("{s:I, s:s}", "id", id, "cmd", cmd);
  const char *text;
  size_t len = 0;
  char *line = NULL;
  ssize_t n;

  *answer = NULL;
  if (fds != NULL)
    fds->n = 0;
  if (request != NULL && args != NULL && json_object_set(request, "args", args) != 0) {
    json_decref(request);
    request = NULL;
  }
  json_decref(args);
  if (request != NULL)
    line = proto_dump_line(request, &len);
  json_decref(request);
  if (line == NULL)
    return -ENOMEM;
  n = proto_client_exchange(c, line, len, deadline, &text, fds);
  free(line);
  if (n < 0)
    return (int)n;
  *answer = json_loadb(text, (size_t)n, 0, NULL);
  if (json_is_object(*answer))
    return 0;
  json_decref(*answer);
  *answer = NULL;
  proto_fds_close(fds); /* with an answer nobody can read */
  return -EBADMSG;
}
