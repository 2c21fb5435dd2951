/*
 * The JACK server of a test: jackd -d dummy under a unique name, JACK's
 * registry of servers kept from filling up with dead test servers, and the
 * attribution of xruns from jackd's log.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness_internal.h"
#include "harness_pipewire.h"

static unsigned name_counter;

void h__unique_name(char *buf, size_t len, const char *kind) {
  snprintf(buf, len, "rw%s-%.12s-%d-%u", kind, h_tag(), (int)getpid(), name_counter++);
}

jack_client_t *h__open_client(const char *server, const char *name, jack_status_t *st) {
  return jack_client_open(name, JackNoStartServer | JackServerName | JackUseExactName, st, server);
}

static void silent_jack_error(const char *msg) { (void)msg; }

static void print_jack_error(const char *msg) { fprintf(stderr, "[jack] %s\n", msg); }

void h__jack_errors(bool quiet) {
  jack_set_error_function(quiet ? silent_jack_error : print_jack_error);
}

static const char *jackd_program(void) {
  const char *jackd = getenv("RUNWAY_TEST_JACKD");
  return jackd != NULL && jackd[0] != '\0' ? jackd : "jackd";
}

/*
 * Without jackd there is nothing to test against. A developer's machine
 * without JACK skips (ctest counts the skip); where the tests are required
 * (RUNWAY_TEST_REQUIRE_JACKD=1, as scripts/test.sh and CI set it), that is a
 * failure, never a silent pass.
 */
static void require_jackd(void) {
  const char *jackd = jackd_program();
  if (h_find_program(jackd))
    return;
  const char *required = getenv("RUNWAY_TEST_REQUIRE_JACKD");
  if (required != NULL && required[0] != '\0' && strcmp(required, "0") != 0)
    H_FAIL("%s not found, and RUNWAY_TEST_REQUIRE_JACKD is set: install jackd2 (or name "
           "another jackd in RUNWAY_TEST_JACKD)",
           jackd);
  h_skip("%s not found (install jackd2; RUNWAY_TEST_REQUIRE_JACKD=1 makes this a failure)", jackd);
}

struct server_ready {
  struct h_jack *j;
  const char *ping;
  jack_status_t st;
  bool exited;
};

static bool server_accepts_clients(void *arg, char *seen, size_t len) {
  struct server_ready *r = arg;
  if (!h_proc_alive(&r->j->proc)) {
    r->exited = true;
    return true;
  }
  jack_client_t *c = h__open_client(r->j->name, r->ping, &r->st);
  if (c == NULL) {
    snprintf(seen, len, "jack_client_open status 0x%x", (unsigned)r->st);
    return false;
  }
  uint32_t rate = jack_get_sample_rate(c), period = jack_get_buffer_size(c);
  jack_client_close(c);
  if (rate != r->j->rate || period != r->j->period)
    H_FAIL("jackd %s runs at %u Hz / %u frames, asked for %u / %u", r->j->name, rate, period,
           r->j->rate, r->j->period);
  return true;
}

/*
 * Starts jackd -n name and waits until a client can connect. Returns 0, or
 * -EAGAIN when jackd exited because JACK's registry of servers is full; other
 * failures fail the test, unless quiet (then -EIO).
 */
static int start_server(struct h_jack *j, const char *name, uint32_t rate, uint32_t period,
                        bool quiet) {
  char log[PATH_MAX], r[16], per[16], ping[64];
  memset(j, 0, sizeof(*j));
  snprintf(j->name, sizeof(j->name), "%s", name);
  j->rate = rate;
  j->period = period;
  if (snprintf(log, sizeof(log), "%s/jackd-%s.log", h_tmpdir(), j->name) >= (int)sizeof(log))
    H_FAIL("path too long");
  snprintf(r, sizeof(r), "%u", rate);
  snprintf(per, sizeof(per), "%u", period);
  /*
   * RUNWAY_TEST_NO_REALTIME=1: jackd and its clients without real-time
   * scheduling, as on machines that refuse SCHED_FIFO (CI's virtual
   * machines): any load then delays the whole graph.
   */
  const char *no_rt = getenv("RUNWAY_TEST_NO_REALTIME");
  bool realtime = no_rt == NULL || no_rt[0] == '\0' || strcmp(no_rt, "0") == 0;
  const char *argv[] = {jackd_program(),
                        realtime ? "--realtime" : "--no-realtime",
                        "-n",
                        j->name,
                        "-d",
                        "dummy",
                        "-r",
                        r,
                        "-p",
                        per,
                        NULL};
  const char *set[] = {"JACK_NO_AUDIO_RESERVATION=1", NULL};
  h__spawn(&j->proc, "jackd", argv, set, NULL, log, true);

  uint64_t t0 = h_now_ms();
  h__unique_name(ping, sizeof(ping), "ping");
  struct server_ready ready = {.j = j, .ping = ping};
  h__jack_errors(true);
  bool up = h_wait_for(server_accepts_clients, &ready, 10000);
  h__jack_errors(false);
  if (ready.exited) {
    if (h_file_count(log, 0, "Too many servers already active") > 0)
      return -EAGAIN;
    if (quiet)
      return -EIO;
    H_FAIL("jackd %s exited during start-up", j->name);
  }
  if (!up) {
    if (quiet) {
      h_proc_stop(&j->proc, SIGTERM, 5000);
      return -EIO;
    }
    H_FAIL("jackd %s did not accept clients within 10 s (status 0x%x)", j->name,
           (unsigned)ready.st);
  }
  if (!quiet)
    h_log("jackd %s (pid %d): %u Hz, %u frames, ready in %llu ms", j->name, (int)j->proc.pid, rate,
          period, (unsigned long long)(h_now_ms() - t0));
  return 0;
}

/*
 * JACK keeps a registry of running servers in shared memory with room for
 * eight (MAX_SERVERS in JACK2's shm.c). A server that exits cleanly leaves
 * it; one killed outright stays registered, and its entry is only reclaimed
 * by a server starting under the same name. Test servers have unique names,
 * so this finds entries of our dead test servers ("rwsrv-" names whose
 * process is gone) and reclaims each by starting and stopping a server of
 * that name. The registry's layout is JACK2's; anything unexpected and this
 * does nothing.
 */
static void reclaim_stale_servers(void) {
  enum { OFFSET = 0x18, STRIDE = 264, MAX_SERVERS = 8, NAME = 257 };
  char prefix[64], stale[MAX_SERVERS][NAME];
  unsigned n_stale = 0;
  FILE *f = fopen("/dev/shm/jack-shm-registry", "re");
  if (f == NULL)
    return;
  unsigned char buf[OFFSET + STRIDE * MAX_SERVERS];
  size_t got = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  uint32_t magic;
  memcpy(&magic, buf, sizeof(magic));
  if (got != sizeof(buf) || magic != 0x4a41434bu)
    return;
  snprintf(prefix, sizeof(prefix), "jack-%u:rwsrv-", (unsigned)getuid());
  for (unsigned i = 0; i < MAX_SERVERS; i++) {
    const unsigned char *e = buf + OFFSET + i * STRIDE;
    int32_t pid;
    char name[NAME];
    memcpy(&pid, e, sizeof(pid));
    memcpy(name, e + 4, NAME - 1);
    name[NAME - 1] = '\0';
    if (pid <= 0 || strncmp(name, prefix, strlen(prefix)) != 0 || h_pid_exists(pid))
      continue;
    /* "jack-UID:NAME:" -> NAME */
    char *server = strchr(name, ':') + 1;
    char *end = strrchr(server, ':');
    if (end == NULL || end == server)
      continue;
    *end = '\0';
    snprintf(stale[n_stale++], NAME, "%s", server);
  }
  for (unsigned i = 0; i < n_stale; i++) {
    struct h_jack tmp;
    h_log("reclaiming JACK's registry entry of dead test server %s", stale[i]);
    if (start_server(&tmp, stale[i], 48000, 256, true) == 0)
      h_proc_stop(&tmp.proc, SIGTERM, 5000);
  }
}

void h_jack_start(struct h_jack *j, uint32_t rate, uint32_t period) {
  char name[64];
  /* Client and server names share /dev/shm socket names: keep them all unique. */
  h__unique_name(name, sizeof(name), "srv");
  if (h_pipewire()) {
    h__pw_server_start(j, name, rate, period);
    return;
  }
  require_jackd();
  reclaim_stale_servers();
  if (start_server(j, name, rate, period, false) != 0) {
    h_log("jackd: too many JACK servers registered; reclaiming stale entries and retrying");
    reclaim_stale_servers();
    if (start_server(j, name, rate, period, false) != 0)
      H_FAIL("jackd cannot start: JACK's registry of servers is full (Too many servers already "
             "active); other JACK servers run on this machine");
  }
  setenv("JACK_DEFAULT_SERVER", j->name, 1);
}

void h_jack_stop(struct h_jack *j) {
  if (j->proc.pid > 0 && !j->proc.reaped)
    h_proc_stop(&j->proc, SIGTERM, 5000);
}

void h_jack_restart(struct h_jack *j, uint32_t rate, uint32_t period) {
  char name[64];
  snprintf(name, sizeof(name), "%s", j->name);
  h_jack_stop(j);
  if (h_pipewire()) {
    h__pw_server_start(j, name, rate, period);
    return;
  }
  reclaim_stale_servers();
  if (start_server(j, name, rate, period, false) != 0)
    H_FAIL("jackd %s cannot start again at %u Hz, %u frames", name, rate, period);
  setenv("JACK_DEFAULT_SERVER", j->name, 1);
}

/* ---- xrun attribution ------------------------------------------------------------------ */

void h_jack_xruns(const struct h_jack *j, size_t from, const char *client, const char *upstream,
                  struct h_xruns *out) {
  memset(out, 0, sizeof(*out));
  if (h_pipewire())
    return; /* PipeWire logs no xruns; runwayd counts its late cycles in stats.xruns */
  char *text = h_file_read(j->proc.log);
  if (text == NULL)
    return;
  size_t len = strlen(text);
  char *line = text + (from < len ? from : len);
  bool in_event = false, has_client = false, has_upstream = false, client_running = false;
  char want_client[160], want_upstream[160];
  snprintf(want_client, sizeof(want_client), "client = %s was not finished", client);
  snprintf(want_upstream, sizeof(want_upstream), "client = %s was not finished", upstream);
  for (;;) {
    char *end = strchr(line, '\n');
    bool last = end == NULL;
    if (end != NULL)
      *end = '\0';
    bool xrun_line = strstr(line, "JackEngine::XRun: client = ") != NULL;
    if (strstr(line, "JackTimedDriver::Process XRun") != NULL)
      out->driver_late++;
    if (xrun_line) {
      in_event = true;
      if (strstr(line, want_client) != NULL) {
        has_client = true;
        client_running |= strstr(line, "state = Running") != NULL;
      }
      has_upstream |= strstr(line, want_upstream) != NULL;
    }
    if ((!xrun_line || last) && in_event) {
      /* One xrun: the clients that had not finished when the next cycle began. */
      out->events++;
      if (has_client && client_running)
        out->client_running++;
      else if (has_client)
        out->client_waiting++;
      if (has_upstream)
        out->upstream_late++;
      in_event = has_client = has_upstream = client_running = false;
    }
    if (last)
      break;
    line = end + 1;
  }
  free(text);
}
