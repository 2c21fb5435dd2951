/*
 * runwayctl: one request to runwayd over its control socket, one answer,
 * printed for people or (--json) for programs. See DESIGN.md "runwayctl".
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#ifndef RUNWAY_VERSION
#define RUNWAY_VERSION "unknown"
#endif

static const char hint[] = "start runwayd, or pass --socket PATH / set RUNWAY_SOCKET to where it "
                           "listens";

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_daemon(const char *path, double timeout_s) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  struct timeval tv = {.tv_sec = (time_t)timeout_s,
                       .tv_usec = (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
  int fd, e;

  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "runwayctl: socket: %s\n", strerror(errno));
    return -1;
  }
  /* Bounds connect() when the daemon's backlog is full, and send() when it stopped reading. */
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  memcpy(addr.sun_path, path, strlen(path) + 1); /* proto_socket_path checked the length */
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
    return fd;
  e = errno;
  (void)close(fd);
  switch (e) {
  case ENOENT:
  case ENOTDIR:
    fprintf(stderr, "runwayctl: no runwayd socket at %s; %s\n", path, hint);
    break;
  case ECONNREFUSED:
    fprintf(stderr, "runwayctl: nothing listens on %s (runwayd is not running?); %s\n", path,
            hint);
    break;
  case EACCES:
  case EPERM:
    fprintf(stderr,
            "runwayctl: not allowed to connect to %s (%s); join the socket's group, or use "
            "--socket / RUNWAY_SOCKET for your own runwayd\n",
            path, strerror(e));
    break;
  case EAGAIN:
  case EINPROGRESS:
    fprintf(stderr, "runwayctl: runwayd at %s does not accept connections (busy?); try again\n",
            path);
    break;
  default:
    fprintf(stderr, "runwayctl: cannot connect to %s: %s; %s\n", path, strerror(e), hint);
  }
  return -1;
}

static int send_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -(n < 0 ? errno : EIO);
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/*
 * Reads one line (newline excluded) into buf, which holds PROTO_MAX_LINE + 1
 * bytes. Returns its length, -ETIMEDOUT, -EMSGSIZE, -ECONNRESET for EOF
 * before a newline, or another -errno.
 */
static ssize_t read_line(int fd, char *buf, size_t cap, int64_t deadline) {
  size_t len = 0;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t left = deadline - now_ms();
    int r;
    if (left <= 0)
      return -ETIMEDOUT;
    r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      return -ETIMEDOUT;
    if (len == cap)
      return -EMSGSIZE;
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ECONNRESET;
    char *nl = memchr(buf + len, '\n', (size_t)n);
    if (nl != NULL)
      return nl - buf;
    len += (size_t)n;
  }
}

int main(int argc, char **argv) {
  struct ctl_args args;
  char err[512], path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char *line = NULL, *buf = NULL;
  size_t len;
  ssize_t n;
  int fd = -1, rc, status = CTL_EXIT_ERROR;

  if (ctl_parse_args(argc, argv, &args, err, sizeof(err)) != 0) {
    fprintf(stderr, "runwayctl: %s\nTry `runwayctl --help` for more information.\n", err);
    return CTL_EXIT_USAGE;
  }
  if (args.action == CTL_HELP) {
    if (args.command != NULL)
      ctl_print_command_help(stdout, args.command);
    else
      ctl_print_help(stdout);
    status = CTL_EXIT_OK;
    goto out;
  }
  if (args.action == CTL_VERSION) {
    printf("runwayctl %s\n", RUNWAY_VERSION);
    status = CTL_EXIT_OK;
    goto out;
  }

  rc = proto_socket_path(args.socket, path, sizeof(path));
  if (rc != 0) {
    fprintf(stderr, "runwayctl: the socket path is longer than %zu bytes; use a shorter --socket\n",
            sizeof(path) - 1);
    status = CTL_EXIT_USAGE;
    goto out;
  }
  line = proto_dump_line(args.request, &len);
  buf = malloc(PROTO_MAX_LINE + 1);
  if (line == NULL || buf == NULL) {
    fprintf(stderr, "runwayctl: out of memory\n");
    goto out;
  }

  int64_t deadline = now_ms() + (int64_t)(args.timeout_s * 1000);
  fd = connect_daemon(path, args.timeout_s);
  if (fd < 0) {
    status = CTL_EXIT_UNREACHABLE;
    goto out;
  }
  rc = send_all(fd, line, len);
  if (rc == 0)
    n = read_line(fd, buf, PROTO_MAX_LINE + 1, deadline);
  else
    n = rc;
  if (n < 0) {
    status = CTL_EXIT_UNREACHABLE;
    if (n == -ETIMEDOUT || n == -EAGAIN)
      fprintf(stderr,
              "runwayctl: no answer from runwayd at %s within %g s; it may be busy (raise "
              "--timeout) or stuck\n",
              path, args.timeout_s);
    else if (n == -ECONNRESET || n == -EPIPE)
      fprintf(stderr, "runwayctl: runwayd at %s closed the connection without answering\n", path);
    else if (n == -EMSGSIZE) {
      fprintf(stderr, "runwayctl: runwayd's answer is over %d bytes; ask for less\n",
              PROTO_MAX_LINE);
      status = CTL_EXIT_ERROR;
    } else
      fprintf(stderr, "runwayctl: talking to runwayd at %s: %s\n", path, strerror((int)-n));
    goto out;
  }
  status = ctl_handle_response(buf, (size_t)n, args.request, args.json, stdout, stderr);

out:
  /* Output that did not reach stdout (a full disk, a closed pipe) is a failure too. */
  if (fflush(stdout) != 0 && status == CTL_EXIT_OK) {
    fprintf(stderr, "runwayctl: writing the output: %s\n", strerror(errno));
    status = CTL_EXIT_ERROR;
  }
  if (fd >= 0)
    (void)close(fd); /* nothing left to deliver */
  free(buf);
  free(line);
  ctl_args_free(&args);
  return status;
}
