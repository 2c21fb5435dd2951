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
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "clock.h"
#include "protocol.h"
#include "sdk_internal.h"

/* The descriptor number in environment variable name, or -1 (w's message set). */
static int fd_from_env(rw_worker *w, const char *name) {
  const char *text = getenv(name);
  char *end;
  if (text == NULL || text[0] == '\0') {
    rw__set_error(w,
                  "RUNWAY_SEGMENT_FD is set but %s is not: the segment is two files since "
                  "segment ABI %u; the program that started this worker is older than this "
                  "librunway-worker (or the other way round)",
                  name, RW_SEGMENT_ABI_VERSION);
    return -1;
  }
  errno = 0;
  long fd = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || fd < 0 || fd > INT_MAX) {
    rw__set_error(w, "%s=\"%s\" is not a file descriptor number", name, text);
    return -1;
  }
  return (int)fd;
}

int rw__attach_inherited(rw_worker *w) {
  char err[256];
  int fds[RW_FILE_COUNT] = {fd_from_env(w, "RUNWAY_SEGMENT_FD"), -1};
  if (fds[RW_FILE_DAEMON] < 0)
    return RW_ERR_ATTACH;
  fds[RW_FILE_WORKER] = fd_from_env(w, "RUNWAY_SEGMENT_WORKER_FD");
  if (fds[RW_FILE_WORKER] < 0)
    return RW_ERR_ATTACH;
  /*
   * Managed workers die with the daemon's spawning thread (the control loop,
   * which lives as long as runwayd). SIGTERM, not SIGKILL, so rw_worker_main
   * can still stop cleanly. The getppid() recorded right after closes the
   * race with a parent that died before prctl.
   */
  (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
  w->parent = getppid();
  /*
   * Managed workers of every slot share one uid (runwayd's, or its
   * worker_user): not dumpable, no other of them may open our segment
   * through /proc/PID/fd or ptrace us. An attached worker keeps its own
   * user's rules (a debugger may still attach to it).
   */
  (void)prctl(PR_SET_DUMPABLE, 0);

  int rc = shm_segment_map(fds[RW_FILE_DAEMON], fds[RW_FILE_WORKER], &w->seg, err, sizeof(err));
  if (rc != 0) {
    rw__set_error(w,
                  "cannot map the slot segment at fds %d and %d (RUNWAY_SEGMENT_FD, "
                  "RUNWAY_SEGMENT_WORKER_FD): %s",
                  fds[RW_FILE_DAEMON], fds[RW_FILE_WORKER], err);
    return rc == -EPROTO ? RW_ERR_PROTOCOL : RW_ERR_ATTACH;
  }
  /* Programs the plugin starts must not keep the slot's memory alive. */
  for (int f = 0; f < RW_FILE_COUNT; f++)
    (void)fcntl(fds[f], F_SETFD, FD_CLOEXEC);
  return 0;
}

static json_t *attach_request(const char *slot, const char *plugin, const rw_worker_options *opts) {
  json_t *params = json_array();
  json_t *req = NULL;
  if (params == NULL)
    return NULL;
  for (uint32_t i = 0; opts != NULL && i < opts->n_params; i++) {
    const rw_param_info *p = &opts->params[i];
    json_t *o = json_pack("{s:I,s:s,s:f,s:f,s:f,s:s}", "id", (json_int_t)p->id, "name", p->name,
                          "min", (double)p->min, "max", (double)p->max, "default", (double)p->def,
                          "unit", p->unit ? p->unit : "");
    if (o == NULL || json_array_append_new(params, o) != 0) {
      json_decref(params);
      return NULL;
    }
  }
  req = json_pack("{s:i,s:s,s:{s:s,s:I,s:s,s:o}}", "id", 1, "cmd",
                  proto_commands[PROTO_CMD_WORKER_ATTACH].name, "args", "slot", slot, "pid",
                  (json_int_t)getpid(), "plugin", plugin, "params", params);
  return req;
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
  struct proto_client c = PROTO_CLIENT_INIT;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char err[256];
  char *text = NULL, *line = NULL;
  const char *answer;
  json_t *req = NULL;
  json_t *resp = NULL;
  struct proto_fds fds = {0};
  int rc;

  const char *slot = opts != NULL && opts->slot != NULL ? opts->slot : getenv("RUNWAY_SLOT");
  if (slot == NULL || slot[0] == '\0') {
    rw__set_error(w, "no slot to attach to: set RUNWAY_SLOT (or rw_worker_options.slot) to a slot "
                     "added with `runwayctl slot add NAME --external`");
    return RW_ERR_ATTACH;
  }
  snprintf(w->slot, sizeof(w->slot), "%s", slot);
  const char *given =
      opts != NULL && opts->socket != NULL && opts->socket[0] != '\0' ? opts->socket : NULL;
  if (proto_socket_path(given, path, sizeof(path)) != 0) {
    rw__set_error(w, "the control socket path is too long for a Unix socket");
    return RW_ERR_ATTACH;
  }

  req = attach_request(slot, w->plugin, opts);
  /* Seven digits print a float's value as written (0.95, not 0.949999988). */
  text = req ? json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
  size_t len = text ? strlen(text) : 0;
  line = text ? malloc(len + 2) : NULL;
  if (line == NULL) {
    rw__set_error(w, "cannot encode the worker.attach request (bad parameter names?)");
    rc = RW_ERR_INVALID;
    goto out;
  }
  memcpy(line, text, len);
  line[len++] = '\n';

  uint64_t deadline = base_mono_ms() + RW__ATTACH_TIMEOUT_MS;
  rc = proto_client_connect(&c, path, deadline);
  if (rc != 0) {
    rw__set_error(w,
                  "cannot connect to runwayd at %s: %s (is runwayd running? set RUNWAY_SOCKET "
                  "to its socket)",
                  path, strerror(-rc));
    rc = rc == -ENOMEM ? RW_ERR_NOMEM : RW_ERR_ATTACH;
    goto out;
  }
  ssize_t n = proto_client_exchange(&c, line, len, deadline, &answer, &fds);
  if (n < 0) {
    if (n == -ETIMEDOUT)
      rw__set_error(w, "runwayd at %s did not answer worker.attach within %d ms", path,
                    RW__ATTACH_TIMEOUT_MS);
    else if (n == -EPIPE)
      rw__set_error(w, "runwayd at %s closed the connection during worker.attach", path);
    else
      rw__set_error(w, "talking to runwayd at %s during worker.attach: %s", path,
                    strerror((int)-n));
    rc = RW_ERR_ATTACH;
    goto out;
  }
  resp = json_loadb(answer, (size_t)n, 0, NULL);
  if (resp == NULL || !json_is_object(resp)) {
    rw__set_error(w, "runwayd's answer to worker.attach is not a JSON object");
    rc = RW_ERR_PROTOCOL;
    goto out;
  }
  rc = check_response(w, resp, slot, path);
  if (rc != 0)
    goto out;
  if (fds.n != RW_FILE_COUNT) {
    rw__set_error(w,
                  "runwayd accepted worker.attach but passed %d segment descriptors, not %d "
                  "(is it older than this librunway-worker?)",
                  fds.n, RW_FILE_COUNT);
    rc = RW_ERR_PROTOCOL;
    goto out;
  }
  rc = shm_segment_map(fds.fd[RW_FILE_DAEMON], fds.fd[RW_FILE_WORKER], &w->seg, err, sizeof(err));
  if (rc != 0) {
    rw__set_error(w, "cannot map the segment runwayd passed for slot \"%s\": %s", slot, err);
    rc = rc == -EPROTO ? RW_ERR_PROTOCOL : RW_ERR_ATTACH;
    goto out;
  }
  fds.n = 0; /* the segment owns them now */
  /* The connection stays: its end tells the worker that runwayd went away. */
  w->sock = proto_client_detach(&c);
  rc = 0;

out:
  proto_fds_close(&fds);
  proto_client_close(&c);
  free(line);
  free(text);
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
