/*
 * runwayctl: one request to runwayd over its control socket, one answer,
 * printed for people or (--json) for programs. See DESIGN.md "runwayctl".
 * A streaming command (subscribe) then prints every line that follows until
 * it is interrupted or the daemon goes away.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
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

#include "version.h"

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

/* A connection's incoming lines; bytes after a line stay for the next call. */
struct line_reader {
  int fd;
  char *buf;       /* READER_CAP bytes */
  size_t len;      /* bytes held */
  size_t consumed; /* the line returned last and its newline, dropped by the next call */
};

/* One line of PROTO_MAX_LINE bytes and its newline. */
#define READER_CAP ((size_t)PROTO_MAX_LINE + 1)

/* Set by SIGINT or SIGTERM during a stream; the only type a handler may write. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signum) {
  (void)signum;
  stop_requested = 1;
}

/*
 * The next line (newline excluded) at r->buf, and its length; or
 * -ETIMEDOUT once deadline (ms, or -1 for none) passed, -EMSGSIZE, -ECONNRESET
 * for EOF, -EINTR when a stop signal arrived, or another -errno. waitmask:
 * the signal mask during the wait (the stop signals are blocked otherwise,
 * so one can only arrive here, where it is seen at once), or NULL.
 */
static ssize_t read_line(struct line_reader *r, int64_t deadline, const sigset_t *waitmask) {
  if (r->consumed > 0) {
    memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
    r->len -= r->consumed;
    r->consumed = 0;
  }
  for (;;) {
    char *nl = memchr(r->buf, '\n', r->len);
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    struct timespec ts, *tsp = NULL;
    int rc;

    if (nl != NULL) {
      r->consumed = (size_t)(nl - r->buf) + 1;
      return nl - r->buf;
    }
    if (r->len == READER_CAP)
      return -EMSGSIZE;
    if (stop_requested)
      return -EINTR;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0)
        return -ETIMEDOUT;
      ts.tv_sec = (time_t)(left / 1000);
      ts.tv_nsec = (long)(left % 1000) * 1000000;
      tsp = &ts;
    }
    rc = ppoll(&p, 1, tsp, waitmask);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0)
      return -errno;
    if (rc == 0)
      return -ETIMEDOUT;
    ssize_t n = recv(r->fd, r->buf + r->len, READER_CAP - r->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ECONNRESET;
    r->len += (size_t)n;
  }
}

/*
 * After a streaming command's answer: prints every line until a stop signal
 * (0), the reader of our output went away (0: `runwayctl subscribe | head`),
 * or runwayd closed the connection (3).
 */
static int stream_lines(struct line_reader *r, const char *path, int json,
                        const sigset_t *waitmask, int *output_closed) {
  for (;;) {
    ssize_t n = read_line(r, -1, waitmask);
    if (n == -EINTR)
      return CTL_EXIT_OK;
    if (n == -EMSGSIZE) {
      fprintf(stderr, "runwayctl: runwayd sent a line over %d bytes\n", PROTO_MAX_LINE);
      return CTL_EXIT_ERROR;
    }
    if (n < 0) {
      if (n == -ECONNRESET || n == -EPIPE)
        fprintf(stderr, "runwayctl: runwayd at %s closed the connection (it stopped, or this "
                        "client read too slowly)\n",
                path);
      else
        fprintf(stderr, "runwayctl: talking to runwayd at %s: %s\n", path, strerror((int)-n));
      return CTL_EXIT_UNREACHABLE;
    }
    if (ctl_handle_stream_line(r->buf, (size_t)n, json, stdout, stderr) != CTL_EXIT_OK)
      return CTL_EXIT_ERROR;
    /* Each event as it comes, even into a pipe. */
    if (fflush(stdout) != 0) {
      if (errno == EPIPE) {
        *output_closed = 1;
        return CTL_EXIT_OK;
      }
      fprintf(stderr, "runwayctl: writing the output: %s\n", strerror(errno));
      return CTL_EXIT_ERROR;
    }
  }
}

/*
 * For a streaming command: SIGINT and SIGTERM end it with status 0, so they
 * are caught, and blocked except while waiting for the daemon (waitmask).
 * SIGPIPE is ignored so that a closed output is an error we can see.
 */
static void prepare_stream_signals(sigset_t *waitmask) {
  struct sigaction sa;
  sigset_t stops;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigprocmask(SIG_BLOCK, &stops, waitmask);
  sigdelset(waitmask, SIGINT);
  sigdelset(waitmask, SIGTERM);
}

int main(int argc, char **argv) {
  struct ctl_args args;
  char err[512], path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char *line = NULL;
  struct line_reader reader = {.fd = -1};
  sigset_t waitmask;
  const sigset_t *wait = NULL;
  size_t len;
  ssize_t n;
  int fd = -1, rc, status = CTL_EXIT_ERROR, output_closed = 0;

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
  reader.buf = malloc(READER_CAP);
  if (line == NULL || reader.buf == NULL) {
    fprintf(stderr, "runwayctl: out of memory\n");
    goto out;
  }
  if (args.command->stream) {
    prepare_stream_signals(&waitmask);
    wait = &waitmask;
  }

  int64_t deadline = now_ms() + (int64_t)(args.timeout_s * 1000);
  fd = connect_daemon(path, args.timeout_s);
  if (fd < 0) {
    status = CTL_EXIT_UNREACHABLE;
    goto out;
  }
  reader.fd = fd;
  rc = send_all(fd, line, len);
  /*
   * A daemon that refuses us (permission, limits) answers and closes at
   * once, and our send may then fail: its answer is still there to read.
   */
  if (rc == 0 || rc == -EPIPE || rc == -ECONNRESET)
    n = read_line(&reader, deadline, wait);
  else
    n = rc;
  if (n == -EINTR) {
    /* Stopped before the daemon answered: what the user asked for. */
    status = CTL_EXIT_OK;
    goto out;
  }
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
  if (!args.command->stream) {
    status = ctl_handle_response(reader.buf, (size_t)n, args.request, args.json, stdout, stderr);
    goto out;
  }
  status = ctl_handle_stream_answer(reader.buf, (size_t)n, args.request, args.json, stdout,
                                    stderr);
  if (status != CTL_EXIT_OK)
    goto out;
  if (fflush(stdout) == 0)
    status = stream_lines(&reader, path, args.json, wait, &output_closed);
  else if (errno == EPIPE)
    output_closed = 1; /* nobody reads our output any more: done */

out:
  /*
   * Output that did not reach stdout (a full disk, a closed pipe) is a
   * failure too, except for a stream whose reader had enough.
   */
  if (fflush(stdout) != 0 && status == CTL_EXIT_OK && !output_closed) {
    fprintf(stderr, "runwayctl: writing the output: %s\n", strerror(errno));
    status = CTL_EXIT_ERROR;
  }
  if (fd >= 0)
    (void)close(fd); /* nothing left to deliver */
  free(reader.buf);
  free(line);
  ctl_args_free(&args);
  return status;
}
