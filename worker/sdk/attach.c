/*
 * Getting hold of a slot's segment: inherited from runwayd (managed workers)
 * or requested over the control socket with worker.attach (attached workers),
 * and noticing later that the daemon went away.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sdk_internal.h"

#define RESPONSE_MAX (64 * 1024)

int rw__attach_inherited(rw_worker *w, const char *fd_text) {
  char err[256];
  char *end;

  errno = 0;
  long fd = strtol(fd_text, &end, 10);
  if (errno != 0 || end == fd_text || *end != '\0' || fd < 0 || fd > INT_MAX) {
    rw__set_error(w, "RUNWAY_SEGMENT_FD=\"%s\" is not a file descriptor number", fd_text);
    return RW_ERR_ATTACH;
  }
  /*
   * Managed workers die with the daemon's spawning thread (the control loop,
   * which lives as long as runwayd). SIGTERM, not SIGKILL, so rw_worker_main
   * can still stop cleanly. The getppid() recorded right after closes the
   * race with a parent that died before prctl.
   */
  (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
  w->parent = getppid();

  int rc = shm_segment_map((int)fd, &w->seg, err, sizeof(err));
  if (rc != 0) {
    rw__set_error(w, "cannot map the slot segment at fd %ld (RUNWAY_SEGMENT_FD): %s", fd, err);
    return rc == -EPROTO ? RW_ERR_PROTOCOL : RW_ERR_ATTACH;
  }
  /* Programs the plugin starts must not keep the slot's memory alive. */
  (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  return 0;
}

static int socket_path(const char *explicit_path, char *buf, size_t len) {
  const char *env = getenv("RUNWAY_SOCKET");
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int n;
  if (explicit_path != NULL && explicit_path[0] != '\0')
    n = snprintf(buf, len, "%s", explicit_path);
  else if (env != NULL && env[0] != '\0')
    n = snprintf(buf, len, "%s", env);
  else if (xdg != NULL && xdg[0] != '\0')
    n = snprintf(buf, len, "%s/runway/control.sock", xdg);
  else
    n = snprintf(buf, len, "/run/runway/control.sock");
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static json_t *attach_request(const char *slot, const char *plugin,
                              const rw_worker_options *opts) {
  json_t *params = json_array();
  json_t *req = NULL;
  if (params == NULL)
    return NULL;
  for (uint32_t i = 0; opts != NULL && i < opts->n_params; i++) {
    const rw_param_info *p = &opts->params[i];
    json_t *o = json_pack("{s:I,s:s,s:f,s:f,s:f,s:s}", "id", (json_int_t)p->id, "name", p->name,
                          "min", (double)p->min, "max", (double)p->max, "default",
                          (double)p->def, "unit", p->unit ? p->unit : "");
    if (o == NULL || json_array_append_new(params, o) != 0) {
      json_decref(params);
      return NULL;
    }
  }
  req = json_pack("{s:i,s:s,s:{s:s,s:I,s:s,s:o}}", "id", 1, "cmd", "worker.attach", "args",
                  "slot", slot, "pid", (json_int_t)getpid(), "plugin", plugin, "params", params);
  return req;
}

static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads one response line, collecting a descriptor passed with SCM_RIGHTS on
 * any of its bytes (runwayd attaches it to the first). Extra descriptors are
 * closed. Returns the line length, or -errno (-ETIMEDOUT, -EPIPE for EOF,
 * -EMSGSIZE for an oversized line).
 */
static ssize_t recv_line(int sock, char *buf, size_t cap, int *fd_out) {
  size_t len = 0;
  int64_t deadline = now_ms() + RW__ATTACH_TIMEOUT_MS;

  *fd_out = -1;
  for (;;) {
    char *nl = memchr(buf, '\n', len);
    if (nl != NULL) {
      *nl = '\0';
      return nl - buf;
    }
    if (len == cap)
      return -EMSGSIZE;

    int64_t left = deadline - now_ms();
    if (left <= 0)
      return -ETIMEDOUT;
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int pr = poll(&pfd, 1, (int)left);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr < 0)
      return -errno;
    if (pr == 0)
      return -ETIMEDOUT;

    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    struct iovec iov = {.iov_base = buf + len, .iov_len = cap - len};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (*fd_out < 0)
          *fd_out = fd;
        else
          close(fd);
      }
    }
    if (n == 0)
      return -EPIPE;
    len += (size_t)n;
  }
}

/* Turns a parsed response into 0 or an error (with w's message set). */
static int check_response(rw_worker *w, json_t *resp, const char *slot, const char *path) {
  json_t *ok = json_object_get(resp, "ok");
  if (!json_is_boolean(ok)) {
    rw__set_error(w, "runwayd at %s sent a malformed answer to worker.attach", path);
    return RW_ERR_PROTOCOL;
  }
  if (json_is_true(ok)) {
    json_t *result = json_object_get(resp, "result");
    const char *name = json_string_value(json_object_get(result, "slot"));
    if (name != NULL)
      snprintf(w->slot, sizeof(w->slot), "%s", name);
    return 0;
  }
  json_t *error = json_object_get(resp, "error");
  const char *code = json_string_value(json_object_get(error, "code"));
  const char *message = json_string_value(json_object_get(error, "message"));
  rw__set_error(w, "runwayd refused to attach a worker to slot \"%s\": %s (%s)", slot,
                message ? message : "no reason given", code ? code : "no code");
  return RW_ERR_ATTACH;
}

int rw__attach_socket(rw_worker *w, const rw_worker_options *opts) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  char err[256];
  char *line = NULL;
  char *request = NULL;
  json_t *req = NULL;
  json_t *resp = NULL;
  int fd = -1;
  int rc;

  const char *slot = opts != NULL && opts->slot != NULL ? opts->slot : getenv("RUNWAY_SLOT");
  if (slot == NULL || slot[0] == '\0') {
    rw__set_error(w, "no slot to attach to: set RUNWAY_SLOT (or rw_worker_options.slot) to a slot "
                     "added with `runwayctl slot add NAME --external`");
    return RW_ERR_ATTACH;
  }
  snprintf(w->slot, sizeof(w->slot), "%s", slot);
  if (socket_path(opts ? opts->socket : NULL, addr.sun_path, sizeof(addr.sun_path)) != 0) {
    rw__set_error(w, "the control socket path is too long for a Unix socket");
    return RW_ERR_ATTACH;
  }

  w->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (w->sock < 0) {
    rw__set_error(w, "socket: %s", strerror(errno));
    return RW_ERR_SYSTEM;
  }
  if (connect(w->sock, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    rw__set_error(w, "cannot connect to runwayd at %s: %s (is runwayd running? set RUNWAY_SOCKET "
                     "to its socket)", addr.sun_path, strerror(errno));
    return RW_ERR_ATTACH;
  }

  req = attach_request(slot, w->plugin, opts);
  size_t len = 0;
  /* Seven digits print a float's value as written (0.95, not 0.949999988). */
  request = req ? json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
  if (request == NULL) {
    rw__set_error(w, "cannot encode the worker.attach request (bad parameter names?)");
    rc = RW_ERR_INVALID;
    goto out;
  }
  len = strlen(request);
  rc = send_all(w->sock, request, len);
  if (rc == 0)
    rc = send_all(w->sock, "\n", 1);
  /* A refusing daemon answers and closes at once: read its answer even if our send failed. */
  if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET) {
    rw__set_error(w, "sending worker.attach to %s: %s", addr.sun_path, strerror(-rc));
    rc = RW_ERR_ATTACH;
    goto out;
  }

  line = malloc(RESPONSE_MAX + 1);
  if (line == NULL) {
    rc = RW_ERR_NOMEM;
    goto out;
  }
  ssize_t n = recv_line(w->sock, line, RESPONSE_MAX, &fd);
  if (n < 0) {
    if (n == -ETIMEDOUT)
      rw__set_error(w, "runwayd at %s did not answer worker.attach within %d ms", addr.sun_path,
                    RW__ATTACH_TIMEOUT_MS);
    else if (n == -EPIPE)
      rw__set_error(w, "runwayd at %s closed the connection during worker.attach", addr.sun_path);
    else
      rw__set_error(w, "reading runwayd's answer to worker.attach: %s", strerror((int)-n));
    rc = RW_ERR_ATTACH;
    goto out;
  }
  json_error_t jerr;
  resp = json_loadb(line, (size_t)n, 0, &jerr);
  if (resp == NULL || !json_is_object(resp)) {
    rw__set_error(w, "runwayd's answer to worker.attach is not a JSON object");
    rc = RW_ERR_PROTOCOL;
    goto out;
  }
  rc = check_response(w, resp, slot, addr.sun_path);
  if (rc != 0)
    goto out;
  if (fd < 0) {
    rw__set_error(w, "runwayd accepted worker.attach but passed no segment descriptor");
    rc = RW_ERR_PROTOCOL;
    goto out;
  }
  rc = shm_segment_map(fd, &w->seg, err, sizeof(err));
  if (rc != 0) {
    rw__set_error(w, "cannot map the segment runwayd passed for slot \"%s\": %s", slot, err);
    rc = rc == -EPROTO ? RW_ERR_PROTOCOL : RW_ERR_ATTACH;
    goto out;
  }
  fd = -1; /* the segment owns it now */
  rc = 0;

out:
  if (fd >= 0)
    close(fd);
  free(line);
  free(request);
  json_decref(req);
  json_decref(resp);
  return rc;
}

int rw__daemon_gone(rw_worker *w) {
  if (w->sock < 0)
    return w->parent > 0 && getppid() != w->parent;

  struct pollfd pfd = {.fd = w->sock, .events = POLLIN | POLLRDHUP};
  if (poll(&pfd, 1, 0) <= 0)
    return 0;
  if (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
    return 1;
  /* runwayd sends nothing after the attach answer today; drain whatever comes, notice EOF. */
  char scratch[512];
  ssize_t n = recv(w->sock, scratch, sizeof(scratch), MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
