/*
 * The harness on PipeWire (RWT_BACKEND=pipewire): the same tests against a
 * private headless PipeWire daemon instead of jackd. The server is
 * `pipewire -c <test dir>/<name>.conf` with a dummy driver, the access
 * module and no session manager; its socket is <test dir>/<name>
 * (PIPEWIRE_RUNTIME_DIR, and the server name doubles as PIPEWIRE_REMOTE),
 * so every test's server is its own. runwayd runs on it with --backend
 * pipewire; the probe stays two JACK clients, through PipeWire's libjack
 * (the test runs under pw-jack, or with its directory in LD_LIBRARY_PATH),
 * which takes a JACK server name as the PipeWire remote's name.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jack/jack.h>

#include "harness.h"
#include "harness_pipewire.h"
#ifdef RWT_HAVE_PIPEWIRE
#include "pw_monitor.h"

/* The profiler of the test's server: where cycles did not finish (pw_monitor.h). */
static struct pwm *monitor;
#endif

bool h_pipewire(void) {
  const char *b = getenv("RWT_BACKEND");
  return b != NULL && strcmp(b, "pipewire") == 0;
}

const char *h_backend(void) { return h_pipewire() ? "pipewire" : "jack"; }

void h__pw_check_libjack(void) {
  Dl_info info;
  if (!h_pipewire())
    return;
  if (dladdr((void *)jack_client_open, &info) == 0 || info.dli_fname == NULL ||
      strstr(info.dli_fname, "pipewire") == NULL)
    H_FAIL("RWT_BACKEND=pipewire needs PipeWire's libjack for the probe: run the test under "
           "pw-jack (libjack here: %s)",
           info.dli_fname ? info.dli_fname : "unknown");
}

static void write_conf(const char *path, const char *name, uint32_t rate, uint32_t period) {
  FILE *f = fopen(path, "we");
  if (f == NULL)
    H_FAIL("cannot write %s: %s", path, strerror(errno));
  /*
   * min = max = the period: no client's latency wish moves it; a test that
   * changes it does so with clock.force-quantum, which wins over both. The
   * dummy driver is the only driver, so every node runs on its clock.
   */
  fprintf(f,
          "context.properties = {\n"
          "  core.daemon = true\n"
          "  core.name = %s\n"
          "  support.dbus = false\n"
          "  log.level = 2\n"
          "  default.clock.rate = %u\n"
          "  default.clock.allowed-rates = [ %u ]\n"
          "  default.clock.quantum = %u\n"
          "  default.clock.min-quantum = %u\n"
          "  default.clock.max-quantum = %u\n"
          "}\n"
          "context.spa-libs = {\n"
          "  audio.convert.* = audioconvert/libspa-audioconvert\n"
          "  support.* = support/libspa-support\n"
          "}\n"
          "context.modules = [\n"
          "  { name = libpipewire-module-rt args = { } flags = [ ifexists nofail ] }\n"
          "  { name = libpipewire-module-protocol-native }\n"
          "  { name = libpipewire-module-profiler }\n"
          "  { name = libpipewire-module-metadata }\n"
          "  { name = libpipewire-module-spa-node-factory }\n"
          "  { name = libpipewire-module-client-node }\n"
          "  { name = libpipewire-module-access args = { } }\n"
          "  { name = libpipewire-module-adapter }\n"
          "  { name = libpipewire-module-link-factory }\n"
          "]\n"
          "context.objects = [\n"
          "  { factory = metadata args = { metadata.name = default } }\n"
          "  { factory = spa-node-factory args = { factory.name = support.node.driver\n"
          "      node.name = Dummy-Driver node.group = pipewire.dummy priority.driver = 20000 } }\n"
          "]\n",
          name, rate, rate, period, period, period);
  if (fclose(f) != 0)
    H_FAIL("cannot write %s", path);
}

static bool socket_answers(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path))
    return false;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
  close(fd);
  return ok;
}

void h__pw_server_start(struct h_jack *j, const char *name, uint32_t rate, uint32_t period) {
  h_pipewire_start_at(j, h_tmpdir(), name, rate, period);
}

void h_pipewire_start_at(struct h_jack *j, const char *dir, const char *name, uint32_t rate,
                         uint32_t period) {
  char conf[PATH_MAX], log[PATH_MAX], sock[PATH_MAX];
  memset(j, 0, sizeof(*j));
  snprintf(j->name, sizeof(j->name), "%s", name);
  j->rate = rate;
  j->period = period;
  if (snprintf(conf, sizeof(conf), "%s/%s.conf", h_tmpdir(), name) >= (int)sizeof(conf) ||
      snprintf(log, sizeof(log), "%s/pipewire-%s.log", h_tmpdir(), name) >= (int)sizeof(log) ||
      snprintf(sock, sizeof(sock), "%s/%s", dir, name) >= 108)
    H_FAIL("path too long");
  write_conf(conf, name, rate, period);
  /* The test's own clients (the probe, pw-link, pw-metadata) and runwayd find it so. */
  setenv("PIPEWIRE_RUNTIME_DIR", dir, 1);
  setenv("PIPEWIRE_REMOTE", name, 1);
  const char *argv[] = {"pipewire", "-c", conf, NULL};
  /* A server's config comes from -c alone; the clients' config dir stays the system's. */
  const char *unset[] = {"PIPEWIRE_CONFIG_DIR", "PIPEWIRE_REMOTE", NULL};
  h_spawn(&j->proc, "pipewire", argv, NULL, unset, log);

  uint64_t t0 = h_now_ms(), deadline = t0 + 10000;
  while (!socket_answers(sock)) {
    if (!h_proc_alive(&j->proc))
      H_FAIL("pipewire %s exited during start-up", name);
    if (h_now_ms() > deadline)
      H_FAIL("pipewire %s did not listen on %s within 10 s", name, sock);
    h_sleep_ms(10);
  }
  h_log("pipewire %s (pid %d): %u Hz, %u frames, ready in %llu ms", name, (int)j->proc.pid, rate,
        period, (unsigned long long)(h_now_ms() - t0));
#ifdef RWT_HAVE_PIPEWIRE
  pwm_close(monitor);
  monitor = pwm_open();
  if (monitor == NULL)
    h_log("cannot listen to PipeWire's profiler: late cycles are known from the probe only");
#endif
}

bool h__pw_disturbed(uint32_t from, uint32_t to) {
#ifdef RWT_HAVE_PIPEWIRE
  return monitor != NULL && pwm_disturbed(monitor, from, to);
#else
  (void)from;
  (void)to;
  return false;
#endif
}

void h_server_set_period(struct h_jack *j, uint32_t period) {
  char log[PATH_MAX], value[16];
  snprintf(log, sizeof(log), "%s/set-period.log", h_tmpdir());
  snprintf(value, sizeof(value), "%u", period);
  /* PipeWire: the graph's quantum, forced over min and max for every driver. */
  const char *pw[] = {"pw-metadata", "-n", "settings", "0", "clock.force-quantum", value, NULL};
  const char *jack[] = {"jack_bufsize", value, NULL};
  char *out = NULL;
  int ws = h_run_capture(h_pipewire() ? pw : jack, NULL, NULL, log, 10000, &out);
  free(out);
  if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    char st[64];
    H_FAIL("%s %s: %s", h_pipewire() ? "pw-metadata clock.force-quantum" : "jack_bufsize", value,
           h_status_str(ws, st, sizeof(st)));
  }
  j->period = period;
}
