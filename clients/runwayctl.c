/*
 * runwayctl: one request to runwayd over its control socket, one answer,
 * printed for people or (--json) for programs. See DESIGN.md "runwayctl".
 * A streaming command (subscribe) then prints every line that follows until
 * it is interrupted or the daemon goes away.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "client.h"
#include "clock.h"
#include "ctl.h"
#include "version.h"

static const char hint[] = "start runwayd, or pass --socket PATH / set RUNWAY_SOCKET to where it "
                           "listens";

/* Says why connecting failed (rc from proto_client_connect) and what to do. */
static void connect_failed(const char *path, int rc) {
  switch (-rc) {
  case ENOENT:
  case ENOTDIR:
    fprintf(stderr, "runwayctl: no runwayd socket at %s; %s\n", path, hint);
    break;
  case ECONNREFUSED:
    fprintf(stderr, "runwayctl: nothing listens on %s (runwayd is not running?); %s\n", path, hint);
    break;
  case EACCES:
  case EPERM:
    fprintf(stderr,
            "runwayctl: not allowed to connect to %s (%s); join the socket's group, or use "
            "--socket / RUNWAY_SOCKET for your own runwayd\n",
            path, strerror(-rc));
    break;
  case EAGAIN:
  case EINPROGRESS:
    fprintf(stderr, "runwayctl: runwayd at %s does not accept connections (busy?); try again\n",
            path);
    break;
  default:
    fprintf(stderr, "runwayctl: cannot connect to %s: %s; %s\n", path, strerror(-rc), hint);
  }
}

/* Set by SIGINT or SIGTERM during a stream; the only type a handler may write. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signum) {
  (void)signum;
  stop_requested = 1;
}

/*
 * After a streaming command's answer: prints every line until a stop signal
 * (0), the reader of our output went away (0: `runwayctl subscribe | head`),
 * or runwayd closed the connection (3).
 */
static int stream_lines(struct proto_client *c, const char *path, int json, int *output_closed) {
  for (;;) {
    const char *line;
    ssize_t n = proto_client_read_line(c, PROTO_CLIENT_FOREVER, &line, NULL);
    if (n == -EINTR && stop_requested)
      return CTL_EXIT_OK;
    if (n == -EINTR)
      continue;
    if (n == -EMSGSIZE) {
      fprintf(stderr, "runwayctl: runwayd sent a line over %d bytes\n", PROTO_MAX_ANSWER_LINE);
      return CTL_EXIT_ERROR;
    }
    if (n < 0) {
      if (n == -EPIPE)
        fprintf(stderr,
                "runwayctl: runwayd at %s closed the connection (it stopped, or this "
                "client read too slowly)\n",
                path);
      else
        fprintf(stderr, "runwayctl: talking to runwayd at %s: %s\n", path, strerror((int)-n));
      return CTL_EXIT_UNREACHABLE;
    }
    if (ctl_handle_stream_line(line, (size_t)n, json, stdout, stderr) != CTL_EXIT_OK)
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

/*
 * run_<stem> for every LOCAL command (proto/commands.h): runwayctl runs those
 * itself, out of other commands; one without its runner does not compile.
 */
static int run_top(const struct ctl_args *args, struct proto_client *client) {
  return ctl_top(args, client);
}

typedef int (*run_fn)(const struct ctl_args *args, struct proto_client *client);

static const run_fn runners[PROTO_CMD_COUNT] = {
#define RUN(ID, stem) [PROTO_CMD_##ID] = run_##stem,
#define NOT_RUN(ID, stem)
    PROTO_COMMAND_MAP(NOT_RUN, NOT_RUN, RUN)
#undef RUN
#undef NOT_RUN
};

int main(int argc, char **argv) {
  struct ctl_args args;
  struct proto_client client = PROTO_CLIENT_INIT;
  char err[512], path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char *request = NULL;
  const char *answer;
  sigset_t waitmask;
  size_t len;
  ssize_t n;
  int rc, status = CTL_EXIT_ERROR, output_closed = 0;

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

  request = proto_dump_line(args.request, &len);
  if (request == NULL) {
    fprintf(stderr, "runwayctl: out of memory\n");
    goto out;
  }
  if (args.command->stream)
    prepare_stream_signals(&waitmask);

  /* --timeout bounds everything up to the answer: the connect, the request and the wait. */
  uint64_t deadline = base_mono_ms() + (uint64_t)(args.timeout_s * 1000);
  rc = proto_client_connect(&client, path, deadline);
  if (rc != 0) {
    if (rc == -ENOMEM)
      fprintf(stderr, "runwayctl: out of memory\n");
    else
      connect_failed(path, rc);
    status = rc == -ENOMEM ? CTL_EXIT_ERROR : CTL_EXIT_UNREACHABLE;
    goto out;
  }
  if (args.command->local) {
    status = runners[args.command->id](&args, &client);
    goto out;
  }
  if (args.command->stream)
    proto_client_set_sigmask(&client, &waitmask);
  n = proto_client_exchange(&client, request, len, deadline, &answer, NULL);
  if (n == -EINTR) {
    /* Stopped before the daemon answered: what the user asked for. */
    status = CTL_EXIT_OK;
    goto out;
  }
  if (n < 0) {
    status = CTL_EXIT_UNREACHABLE;
    if (n == -ETIMEDOUT)
      fprintf(stderr,
              "runwayctl: no answer from runwayd at %s within %g s; it may be busy (raise "
              "--timeout) or stuck\n",
              path, args.timeout_s);
    else if (n == -EPIPE)
      fprintf(stderr, "runwayctl: runwayd at %s closed the connection without answering\n", path);
    else if (n == -EMSGSIZE) {
      fprintf(stderr, "runwayctl: runwayd's answer is over %d bytes; ask for less\n",
              PROTO_MAX_ANSWER_LINE);
      status = CTL_EXIT_ERROR;
    } else
      fprintf(stderr, "runwayctl: talking to runwayd at %s: %s\n", path, strerror((int)-n));
    goto out;
  }
  if (!args.command->stream) {
    status = ctl_handle_response(answer, (size_t)n, args.request, args.json, stdout, stderr);
    goto out;
  }
  status = ctl_handle_stream_answer(answer, (size_t)n, args.request, args.json, stdout, stderr);
  if (status != CTL_EXIT_OK)
    goto out;
  if (fflush(stdout) == 0)
    status = stream_lines(&client, path, args.json, &output_closed);
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
  proto_client_close(&client); /* nothing left to deliver */
  free(request);
  ctl_args_free(&args);
  return status;
}
