/*
 * notify_socket: runwayd speaks the sd_notify protocol the way runwayd.service
 * (Type=notify, WatchdogSec=) relies on. The test plays the service manager:
 * it binds an AF_UNIX datagram socket, starts the real runwayd with
 * NOTIFY_SOCKET pointing at it, WATCHDOG_USEC=1000000 and WATCHDOG_PID set to
 * runwayd's own pid, and reads what arrives (with SO_PASSCRED, so it also
 * knows who sent it).
 *
 *  1. JACK running first: READY=1 arrives, and at that moment the control
 *     socket already accepts a connection and `status` says backend_state
 *     "active". WATCHDOG=1 then arrives about every 500 ms, from runwayd's
 *     pid. SIGHUP brings RELOADING=1 (with MONOTONIC_USEC=), then READY=1.
 *     On SIGTERM, STOPPING=1 arrives and runwayd exits 0.
 *  2. No JACK at start: STATUS=waiting for the JACK server..., the watchdog
 *     pings, the control socket answers with the backend disconnected, and
 *     no READY=1, until a jackd with the expected name starts; then READY=1,
 *     with the backend active.
 *
 * Waits are for datagrams or conditions with deadlines; the watchdog pings
 * are the clock of the "nothing else happens meanwhile" checks.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define WATCHDOG_USEC 1000000
#define PING_MS (WATCHDOG_USEC / 2000) /* runwayd pings at half the interval */

/* ---- the fake service manager ------------------------------------------------------ */

struct listener {
  int fd;
  char path[108];
};

struct msg {
  char text[1024];
  pid_t pid; /* sender, from SCM_CREDENTIALS */
  uint64_t at_ms;
};

static void listener_open(struct listener *l, const char *name) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int one = 1;
  int n = snprintf(l->path, sizeof(l->path), "%s/%s", h_tmpdir(), name);
  H_CHECK(n > 0 && (size_t)n < sizeof(addr.sun_path), "socket path %s fits", l->path);
  memcpy(addr.sun_path, l->path, (size_t)n + 1);
  l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  H_CHECK(l->fd >= 0, "socket: %s", strerror(errno));
  H_CHECK(bind(l->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "bind %s: %s", l->path,
          strerror(errno));
  /* The kernel attaches the sender's credentials to every datagram. */
  H_CHECK(setsockopt(l->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, "SO_PASSCRED: %s",
          strerror(errno));
}

static void listener_close(struct listener *l) {
  close(l->fd);
  unlink(l->path);
}

/* Receives one datagram before deadline_ms (absolute). Returns false on timeout. */
static bool listener_recv(struct listener *l, uint64_t deadline_ms, struct msg *m) {
  for (;;) {
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {.iov_base = m->text, .iov_len = sizeof(m->text) - 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(l->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n >= 0) {
      m->text[n] = '\0';
      m->pid = 0;
      m->at_ms = h_now_ms();
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
          struct ucred uc;
          memcpy(&uc, CMSG_DATA(c), sizeof(uc));
          m->pid = uc.pid;
        }
      return true;
    }
    H_CHECK(errno == EAGAIN || errno == EINTR, "recvmsg: %s", strerror(errno));
    uint64_t now = h_now_ms();
    if (now >= deadline_ms)
      return false;
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    poll(&p, 1, (int)(deadline_ms - now));
  }
}

/* True when one of the message's lines starts with prefix ("READY=1", "STATUS=waiting"). */
static bool has_line(const struct msg *m, const char *prefix) {
  size_t len = strlen(prefix);
  for (const char *p = m->text; p != NULL && *p != '\0';) {
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= len && memcmp(p, prefix, len) == 0)
      return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

/* The value of "KEY=" in the message (up to the end of its line, copied), or NULL. */
static const char *value_of(const struct msg *m, const char *key, char *buf, size_t len) {
  size_t k = strlen(key);
  for (const char *p = m->text; p != NULL && *p != '\0';) {
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= k && memcmp(p, key, k) == 0) {
      snprintf(buf, len, "%.*s", (int)(n - k), p + k);
      return buf;
    }
    p = end ? end + 1 : NULL;
  }
  return NULL;
}

static void show(const struct msg *m) {
  char one_line[sizeof(m->text)];
  snprintf(one_line, sizeof(one_line), "%s", m->text);
  for (char *p = one_line; *p != '\0'; p++)
    if (*p == '\n')
      *p = '|';
  h_log("notify from pid %d: %s", (int)m->pid, one_line);
}

/* ---- runwayd under a fake manager ----------------------------------------------------- */

struct managed {
  struct h_proc proc;
  char socket[108];
};

/*
 * Starts runwayd on JACK server `server` (running or not) with NOTIFY_SOCKET
 * at l. WATCHDOG_PID must be runwayd's own pid, which is known only in the
 * child: a shell sets it to $$ and execs runwayd, keeping its pid.
 */
static void start_runwayd(struct managed *d, const struct listener *l, const char *server,
                          const char *tag) {
  char log[4200], notify_env[160], server_env[128], worker_env[4200], name[64];
  snprintf(d->socket, sizeof(d->socket), "%s/%s.sock", h_tmpdir(), tag);
  snprintf(log, sizeof(log), "%s/runwayd-%s.log", h_tmpdir(), tag);
  snprintf(name, sizeof(name), "rwnotify-%s-%d", tag, (int)getpid());
  snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", l->path);
  snprintf(server_env, sizeof(server_env), "JACK_DEFAULT_SERVER=%s", server);
  snprintf(worker_env, sizeof(worker_env), "RUNWAY_WORKER=%s", RWT_WORKER);
  const char *argv[] = {"/bin/sh",     "-c",        "export WATCHDOG_PID=$$; exec \"$0\" \"$@\"",
                        RWT_RUNWAYD,   "--backend", "jack",
                        "--socket",    d->socket,   "--name",
                        name,          "--worker",  RWT_WORKER,
                        "--log-level", "debug",     NULL};
  const char *set[] = {
      notify_env, server_env, worker_env, "WATCHDOG_USEC=1000000", "JACK_NO_START_SERVER=1", NULL};
  const char *unset[] = {"RUNWAY_SOCKET",     "RUNWAY_SLOT",
                         "RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD",
                         "WATCHDOG_PID",      NULL};
  h_spawn(&d->proc, "runwayd", argv, set, unset, log);
  h_log("runwayd %s (pid %d) started, notifying %s", tag, (int)d->proc.pid, l->path);
}

/* Connects at once (no retry) and returns status's backend_state (static buffer). */
static const char *backend_state_now(const struct managed *d, json_int_t *pid) {
  static char state[32];
  struct h_conn c;
  int rc = h_conn_open(&c, d->socket);
  H_CHECK(rc == 0, "the control socket %s accepts a connection: %s", d->socket, strerror(-rc));
  json_t *r = h_call(&c, "status", NULL);
  snprintf(state, sizeof(state), "%s", h_str(r, "backend_state") ? h_str(r, "backend_state") : "?");
  *pid = h_int(r, "pid");
  json_decref(r);
  h_conn_close(&c);
  return state;
}

/*
 * Reads messages until one has a line starting with `want`. Every message
 * must come from runwayd; one with a line starting with `forbidden` (may be
 * NULL) fails the test.
 * Counts WATCHDOG=1 pings into *pings (may be NULL). Returns the message.
 */
static struct msg wait_for(struct listener *l, struct managed *d, const char *want,
                           const char *forbidden, unsigned timeout_ms, unsigned *pings) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  struct msg m;
  for (;;) {
    if (!listener_recv(l, deadline, &m)) {
      if (!h_proc_alive(&d->proc))
        H_FAIL("runwayd exited while the test waited for %s", want);
      H_FAIL("no %s within %u ms", want, timeout_ms);
    }
    if (!has_line(&m, "WATCHDOG=1") || pings == NULL)
      show(&m);
    H_CHECK(m.pid == d->proc.pid, "message from pid %d, runwayd is %d", (int)m.pid,
            (int)d->proc.pid);
    if (forbidden != NULL && has_line(&m, forbidden))
      H_FAIL("%s arrived too early", forbidden);
    if (pings != NULL && has_line(&m, "WATCHDOG=1"))
      (*pings)++;
    if (has_line(&m, want))
      return m;
  }
}

/* SIGTERM: STOPPING=1 arrives, then runwayd exits 0. */
static void stop_runwayd(struct listener *l, struct managed *d) {
  char st[64];
  H_CHECK(kill(d->proc.pid, SIGTERM) == 0, "kill: %s", strerror(errno));
  wait_for(l, d, "STOPPING=1", NULL, 10000, NULL);
  H_CHECK(h_proc_wait(&d->proc, 20000), "runwayd exits within 20 s of SIGTERM");
  H_CHECK(WIFEXITED(d->proc.status) && WEXITSTATUS(d->proc.status) == 0,
          "runwayd exits 0 on SIGTERM, not %s", h_status_str(d->proc.status, st, sizeof(st)));
  h_log("STOPPING=1, then runwayd exited 0");
}

/* ---- 1. JACK first ----------------------------------------------------------------------- */

static void jack_first(void) {
  struct h_jack jack;
  struct listener l;
  struct managed d;
  char status[512];
  json_int_t pid;

  h_log("--- JACK running before runwayd");
  h_jack_start(&jack, RATE, PERIOD);
  listener_open(&l, "notify-1");
  start_runwayd(&d, &l, jack.name, "first");

  struct msg ready = wait_for(&l, &d, "READY=1", NULL, 15000, NULL);
  /* Right now, with no retry: the socket listens and JACK is active. */
  const char *state = backend_state_now(&d, &pid);
  H_CHECK(strcmp(state, "active") == 0, "backend_state at READY=1 is \"%s\"", state);
  H_CHECK(pid == d.proc.pid, "status pid %lld is runwayd's %d (WATCHDOG_PID matched)",
          (long long)pid, (int)d.proc.pid);
  H_CHECK(value_of(&ready, "STATUS=", status, sizeof(status)) != NULL &&
              strncmp(status, "JACK active", 11) == 0,
          "READY=1 comes with STATUS=JACK active...: \"%s\"", ready.text);

  /* The watchdog: pings every PING_MS from runwayd's loop, never a gap of a whole interval. */
  uint64_t first = 0, last = 0, max_gap = 0;
  unsigned n = 0;
  uint64_t deadline = h_now_ms() + 8 * PING_MS + 1000;
  while (n < 8) {
    struct msg m;
    if (!listener_recv(&l, deadline, &m))
      H_FAIL("only %u WATCHDOG=1 within %u ms", n, 8 * PING_MS + 1000);
    H_CHECK(m.pid == d.proc.pid, "message from pid %d, runwayd is %d", (int)m.pid, (int)d.proc.pid);
    if (!has_line(&m, "WATCHDOG=1")) {
      show(&m);
      continue;
    }
    if (n > 0 && m.at_ms - last > max_gap)
      max_gap = m.at_ms - last;
    if (n == 0)
      first = m.at_ms;
    last = m.at_ms;
    n++;
  }
  double mean = (double)(last - first) / (n - 1);
  h_log("WATCHDOG=1 x%u: mean interval %.0f ms (want about %d), largest gap %llu ms", n, mean,
        PING_MS, (unsigned long long)max_gap);
  H_CHECK(mean >= 0.8 * PING_MS && mean <= 1.4 * PING_MS, "mean ping interval %.0f ms", mean);
  H_CHECK(max_gap < WATCHDOG_USEC / 1000, "largest gap %llu ms stays under the watchdog interval",
          (unsigned long long)max_gap);

  /* SIGHUP (systemctl reload): RELOADING=1 with MONOTONIC_USEC=, then READY=1 again. */
  H_CHECK(kill(d.proc.pid, SIGHUP) == 0, "kill: %s", strerror(errno));
  struct msg reloading = wait_for(&l, &d, "RELOADING=1", "STOPPING=1", 10000, NULL);
  H_CHECK(has_line(&reloading, "MONOTONIC_USEC="), "RELOADING=1 comes with MONOTONIC_USEC=: \"%s\"",
          reloading.text);
  wait_for(&l, &d, "READY=1", "STOPPING=1", 10000, NULL);
  h_log("SIGHUP: RELOADING=1, then READY=1");

  stop_runwayd(&l, &d);
  listener_close(&l);
  h_jack_stop(&jack);
}

/* ---- 2. JACK later ------------------------------------------------------------------------ */

static void jack_later(void) {
  struct listener l;
  struct managed d;
  struct h_proc jackd;
  char server[64], log[4200], status[512];
  json_int_t pid;

  h_log("--- runwayd before JACK");
  snprintf(server, sizeof(server), "rwsrv-notify-late-%d", (int)getpid());
  listener_open(&l, "notify-2");
  start_runwayd(&d, &l, server, "later");

  wait_for(&l, &d, "STATUS=waiting for the JACK server", "READY=1", 15000, NULL);

  /* Three pings (a second, a reconnect attempt) later still not ready, while the socket
   * answers: READY=1 waits for JACK. */
  unsigned pings = 0;
  while (pings < 3)
    wait_for(&l, &d, "WATCHDOG=1", "READY=1", 5000, &pings);
  const char *state = backend_state_now(&d, &pid);
  H_CHECK(strcmp(state, "active") != 0, "backend_state without JACK is \"%s\"", state);
  h_log("socket answers, backend %s, no READY=1 after %u pings", state, pings);

  const char *argv[] = {"jackd", "-n", server, "-d", "dummy", "-r", "48000", "-p", "128", NULL};
  const char *set[] = {"JACK_NO_AUDIO_RESERVATION=1", NULL};
  const char *unset[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", NULL};
  snprintf(log, sizeof(log), "%s/jackd-%s.log", h_tmpdir(), server);
  h_spawn(&jackd, "jackd", argv, set, unset, log);
  h_log("jackd %s (pid %d) started", server, (int)jackd.pid);

  /* runwayd retries with a backoff of at most 5 s. */
  struct msg ready = wait_for(&l, &d, "READY=1", NULL, 20000, NULL);
  state = backend_state_now(&d, &pid);
  H_CHECK(strcmp(state, "active") == 0, "backend_state at READY=1 is \"%s\"", state);
  H_CHECK(value_of(&ready, "STATUS=", status, sizeof(status)) != NULL &&
              strncmp(status, "JACK active", 11) == 0,
          "READY=1 comes with STATUS=JACK active...: \"%s\"", ready.text);

  stop_runwayd(&l, &d);
  listener_close(&l);
  h_proc_stop(&jackd, SIGTERM, 5000);
}

int main(void) {
  h_init("notify", 55);
  jack_first();
  jack_later();
  h_pass();
}
