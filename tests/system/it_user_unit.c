/*
 * user_unit: the user unit as `cmake --install` installs it, run by a real
 * systemd user manager with a real jackd, runwayd and workers.
 *
 * The manager runs as root in a mount namespace of the test's own, where a
 * tmpfs on /run/systemd holds an empty /run/systemd/system (so the manager
 * believes the machine was booted with systemd and nothing outside sees it),
 * in cgroups of the test's own (so it tracks only its own units, and
 * whatever outlives a failed test is found and killed by pid). It reads the
 * installed unit from the scratch prefix (SYSTEMD_UNIT_PATH) plus one drop-in
 * of plumbing: runwayd's output to a file, no core files.
 *
 *  1. The build is installed with `cmake --install --prefix DIR`: the unit's
 *     ExecStart= runs DIR/bin/runwayd, not the configured prefix's.
 *  2. `systemctl --user enable --now runwayd` returns once runwayd said READY=1: the
 *     socket (in $XDG_RUNTIME_DIR/runway, from RuntimeDirectory=) answers
 *     `status` with the backend active, and the unit shows runwayd's STATUS=
 *     text.
 *  3. The installed bash completion offers the daemon's slot, plugin and
 *     parameter names.
 *  4. SIGKILL of runwayd: Restart= brings a new one, with the slots, their
 *     parameter values, and audio exactly L late again.
 *  5. SIGSTOP of runwayd: the watchdog (WatchdogSec=) replaces it; the same.
 *  6. The configuration file the way the unit's comments and README say
 *     (`systemctl --user edit`: ExecStart= with --config %E/...): its slot
 *     comes up; after editing it, `systemctl --user reload runwayd` applies
 *     it in the same process.
 *  7. `systemctl --user stop runwayd`: runwayd exits 0, its workers are gone,
 *     its socket and runtime directory removed.
 *
 * On PipeWire (RWT_BACKEND=pipewire) the server is the user's own: its
 * socket is $XDG_RUNTIME_DIR/pipewire-0 and the manager is told nothing
 * about it, so the unit as installed (runwayd's default --backend auto)
 * must find it by itself, and runs on it natively.
 *
 * Needs root (mount namespace, cgroups); reports a skip (77) without it or
 * without systemd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define L 1200
#define SYSTEMD "/lib/systemd/systemd"

static struct {
  char prefix[PATH_MAX];  /* the scratch install */
  char runtime[PATH_MAX]; /* XDG_RUNTIME_DIR */
  char home[PATH_MAX];
  char config[PATH_MAX];  /* XDG_CONFIG_HOME */
  char units[PATH_MAX];   /* the plumbing drop-in */
  char log[PATH_MAX];     /* runwayd's output */
  char console[PATH_MAX]; /* the manager's: it logs to /dev/console when there is no journal */
  char socket[PATH_MAX];
  char cgroups[2][PATH_MAX]; /* name=systemd and unified, "" when absent */
  char env_runtime[PATH_MAX + 32];
  struct h_proc manager;
} T;

static void path(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, PATH_MAX, fmt, ap);
  va_end(ap);
  H_CHECK(n > 0 && n < PATH_MAX, "path fits");
}

static void write_file(const char *file, const char *text) {
  FILE *f = fopen(file, "w");
  H_CHECK(f != NULL, "open %s: %s", file, strerror(errno));
  H_CHECK(fputs(text, f) >= 0 && fclose(f) == 0, "write %s", file);
}

static void mkdirs(const char *dir, mode_t mode) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof(buf), "%s", dir);
  for (char *p = buf + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      H_CHECK(mkdir(buf, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", buf, strerror(errno));
      *p = '/';
    }
  }
  H_CHECK(mkdir(buf, mode) == 0 || errno == EEXIST, "mkdir %s: %s", buf, strerror(errno));
}

/* ---- the private world: namespace, cgroups, the manager ----------------------------------- */

static _Noreturn void skip(const char *why) {
  printf("user_unit: skipped: %s\n", why);
  exit(77);
}

/*
 * A mount namespace with a /run/systemd/system of its own. Done before h_init
 * (so without the harness's checks): every process the test starts, the
 * harness's guard included, lives in it.
 */
static void enter_namespace(void) {
  if (geteuid() != 0)
    skip("needs root (a mount namespace and cgroups for the user manager)");
  if (access(SYSTEMD, X_OK) != 0)
    skip(SYSTEMD " is not installed");
  if (mkdir("/run/systemd", 0755) != 0 && errno != EEXIST)
    skip("cannot create /run/systemd");
  if (unshare(CLONE_NEWNS) != 0)
    skip("unshare(CLONE_NEWNS) is not permitted here");
  /* Nothing mounted from now on may reach the rest of the machine. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
      mount("tmpfs", "/run/systemd", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0 ||
      mkdir("/run/systemd/system", 0755) != 0) {
    fprintf(stderr, "user_unit: a private /run/systemd/system: %s\n", strerror(errno));
    exit(1);
  }
}

/*
 * Our cgroup in one hierarchy of /proc/self/cgroup ("ID:CONTROLLERS:PATH"):
 * controllers "name=systemd", or "" for the unified one. "" for the root.
 */
static bool own_cgroup(const char *controllers, char *out, size_t len) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  char line[1024];
  bool found = false;
  if (f == NULL)
    return false;
  while (!found && fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    char *a = strchr(line, ':');
    char *b = a != NULL ? strchr(a + 1, ':') : NULL;
    if (b == NULL)
      continue;
    *b = '\0';
    if (strcmp(a + 1, controllers) == 0) {
      snprintf(out, len, "%s", strcmp(b + 1, "/") == 0 ? "" : b + 1);
      found = true;
    }
  }
  fclose(f);
  return found;
}

/*
 * A cgroup of the test's own below ours in each hierarchy systemd uses, for
 * the manager to take as its root. The guard kills what is left in them by
 * pid and removes them, however the test ends.
 */
static void make_cgroups(void) {
  static const struct {
    const char *mount, *controller;
  } h[2] = {{"/sys/fs/cgroup/systemd", "name=systemd"}, {NULL, ""}};
  char own[PATH_MAX], probe[PATH_MAX];
  for (int i = 0; i < 2; i++) {
    const char *mount = h[i].mount;
    if (mount == NULL) {
      /* The unified hierarchy: all of /sys/fs/cgroup, or beside the v1 ones. */
      mount = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup"
              : access("/sys/fs/cgroup/unified/cgroup.controllers", F_OK) == 0
                  ? "/sys/fs/cgroup/unified"
                  : NULL;
    }
    path(probe, "%s/cgroup.procs", mount ? mount : "/nonexistent");
    if (mount == NULL || access(probe, F_OK) != 0 ||
        !own_cgroup(h[i].controller, own, sizeof(own))) {
      T.cgroups[i][0] = '\0';
      continue;
    }
    path(T.cgroups[i], "%s%s/rwt-user-unit-%d", mount, own, (int)getpid());
    H_CHECK(mkdir(T.cgroups[i], 0755) == 0, "mkdir %s: %s", T.cgroups[i], strerror(errno));
    char cmd[3 * PATH_MAX + 512];
    snprintf(
        cmd, sizeof(cmd),
        "for i in 1 2 3 4 5 6 7 8 9 10; do find '%s' -name cgroup.procs -exec cat {} + "
        "2>/dev/null | xargs -r kill -9 2>/dev/null; find '%s' -depth -type d -exec rmdir {} + "
        "2>/dev/null; [ -d '%s' ] || break; sleep 0.3; done",
        T.cgroups[i], T.cgroups[i], T.cgroups[i]);
    h_guard(cmd);
  }
  H_CHECK(T.cgroups[0][0] != '\0' || T.cgroups[1][0] != '\0', "no cgroup hierarchy found");
}

/*
 * With no journal, the manager logs to /dev/console, which it insists be a
 * terminal: in our namespace, /dev/console is a pseudo-terminal whose other
 * end a thread copies into console.log.
 */
static void *drain_console(void *arg) {
  int master = (int)(intptr_t)arg;
  int out = open(T.console, O_WRONLY | O_APPEND | O_CLOEXEC);
  char buf[4096];
  for (;;) {
    ssize_t n = read(master, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || write(out, buf, (size_t)n) != n)
      break;
  }
  close(out);
  return NULL;
}

static void capture_console(void) {
  path(T.console, "%s/console.log", h_tmpdir());
  write_file(T.console, "");
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  H_CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "a pseudo-terminal: %s",
          strerror(errno));
  const char *pts = ptsname(master);
  H_CHECK(pts != NULL, "ptsname: %s", strerror(errno));
  /* Held open, so that the master never reads a hang-up between two messages. */
  int slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
  H_CHECK(slave >= 0, "open %s: %s", pts, strerror(errno));
  struct termios tio;
  if (tcgetattr(slave, &tio) == 0) {
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
  }
  H_CHECK(mount(pts, "/dev/console", NULL, MS_BIND, NULL) == 0, "bind %s on /dev/console: %s", pts,
          strerror(errno));
  pthread_t t;
  H_CHECK(pthread_create(&t, NULL, drain_console, (void *)(intptr_t)master) == 0, "drain thread");
  pthread_detach(t);
}

/* systemctl --user ARGS... against our manager; stdout in *out when out. Returns the exit code. */
static int systemctl(char **out, const char *arg, ...) {
  const char *argv[16] = {"systemctl", "--user", "--no-pager"};
  int n = 3;
  va_list ap;
  va_start(ap, arg);
  for (const char *a = arg; a != NULL && n < 15; a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  const char *set[] = {T.env_runtime, NULL};
  char log[PATH_MAX], *ignored = NULL;
  path(log, "%s/systemctl.log", h_tmpdir());
  int st = h_run_capture(argv, set, NULL, log, 120000, out ? out : &ignored);
  free(ignored);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* One property of runwayd.service. */
static char *prop(const char *name) {
  char *out = NULL;
  H_CHECK(systemctl(&out, "show", "runwayd.service", "-p", name, "--value", NULL) == 0,
          "systemctl show -p %s", name);
  out[strcspn(out, "\n")] = '\0';
  return out;
}

static long prop_long(const char *name) {
  char *v = prop(name);
  long n = strtol(v, NULL, 10);
  free(v);
  return n;
}

static bool prop_is(const char *name, const char *want) {
  char *v = prop(name);
  bool same = strcmp(v, want) == 0;
  free(v);
  return same;
}

static void start_manager(void) {
  char units_path[3 * PATH_MAX], home[PATH_MAX + 8], config[PATH_MAX + 24], script[4 * PATH_MAX];
  path(units_path, "SYSTEMD_UNIT_PATH=%s:%s/lib/systemd/user:", T.units, T.prefix);
  snprintf(home, sizeof(home), "HOME=%s", T.home);
  snprintf(config, sizeof(config), "XDG_CONFIG_HOME=%s", T.config);
  /* Into our cgroups first, so that the manager takes them as its root. */
  snprintf(script, sizeof(script),
           "%s%s%s%s%s%sexec " SYSTEMD " --user --log-target=console --log-level=info",
           T.cgroups[0][0] ? "echo $$ > '" : "", T.cgroups[0],
           T.cgroups[0][0] ? "/cgroup.procs' && " : "", T.cgroups[1][0] ? "echo $$ > '" : "",
           T.cgroups[1], T.cgroups[1][0] ? "/cgroup.procs' && " : "");
  const char *argv[] = {"sh", "-c", script, NULL};
  const char *set[] = {T.env_runtime, units_path, home, config, NULL};
  /* A user's manager knows nothing of PipeWire but XDG_RUNTIME_DIR. */
  const char *unset[] = {"NOTIFY_SOCKET",
                         "XDG_STATE_HOME",
                         "RUNWAY_SOCKET",
                         "DBUS_SESSION_BUS_ADDRESS",
                         "PIPEWIRE_REMOTE",
                         "PIPEWIRE_RUNTIME_DIR",
                         NULL};
  char log[PATH_MAX];
  path(log, "%s/manager.log", h_tmpdir());
  h_spawn(&T.manager, "systemd --user", argv, set, unset, log);

  uint64_t deadline = h_now_ms() + 30000;
  for (;;) {
    char *state = NULL;
    systemctl(&state, "is-system-running", NULL);
    bool up =
        state != NULL && (strncmp(state, "running", 7) == 0 || strncmp(state, "degraded", 8) == 0);
    free(state);
    if (up)
      break;
    H_CHECK(h_proc_alive(&T.manager), "the user manager exited");
    H_CHECK(h_now_ms() < deadline, "the user manager did not come up in 30 s");
    h_sleep_ms(100);
  }
  h_log("systemd --user runs (pid %d)", (int)T.manager.pid);
}

/* ---- runwayd as a unit --------------------------------------------------------------------- */

/*
 * Waits until the unit runs a main process other than not_pid; returns its
 * pid. When why is not NULL, the unit must have waited to restart (RestartSec=)
 * on the way, with that Result= ("signal", "watchdog").
 */
static pid_t wait_running(pid_t not_pid, unsigned timeout_ms, const char *what, const char *why) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  bool restarting = false;
  for (;;) {
    pid_t pid = (pid_t)prop_long("MainPID");
    char *sub = prop("SubState");
    if (strcmp(sub, "auto-restart") == 0 && why != NULL && !restarting) {
      char *result = prop("Result");
      H_CHECK(strcmp(result, why) == 0, "%s: the unit restarts for %s, not %s", what, result, why);
      h_log("%s: the unit waits to restart, Result=%s", what, result);
      free(result);
      restarting = true;
    }
    bool running = strcmp(sub, "running") == 0;
    free(sub);
    if (pid > 0 && pid != not_pid && running && prop_is("ActiveState", "active")) {
      H_CHECK(why == NULL || restarting, "%s: never seen waiting to restart", what);
      return pid;
    }
    if (h_now_ms() > deadline) {
      char *state = prop("ActiveState"), *now = prop("SubState");
      H_FAIL("%s: runwayd.service not running again in %u ms (%s/%s, MainPID %d)", what, timeout_ms,
             state, now, (int)pid);
    }
    h_sleep_ms(50);
  }
}

/* Connects to the unit's socket; the daemon says it runs as pid and its backend is active. */
static void connect_daemon(struct h_conn *c, pid_t pid) {
  H_CHECK(h_conn_open(c, T.socket) == 0, "connect to %s", T.socket);
  json_t *st = h_call(c, "status", NULL);
  H_CHECK(h_int(st, "pid") == pid, "status answers for pid %lld, the unit's is %d",
          (long long)h_int(st, "pid"), (int)pid);
  const char *state = h_str(st, "backend_state");
  H_CHECK(state != NULL && strcmp(state, "active") == 0, "backend %s", state ? state : "(none)");
  json_decref(st);
}

/* Wires the probe through slot thru (its JACK ports come and go with runwayd). */
static void wire(struct h_probe *p, struct h_conn *c) {
  json_t *s = h_wait_slot(c, "thru", "running", 0, 20000);
  json_t *ports = json_object_get(s, "ports");
  h_connect(p, h_probe_out(p, 0),
            json_string_value(json_array_get(json_object_get(ports, "inputs"), 0)));
  h_connect(p, json_string_value(json_array_get(json_object_get(ports, "outputs"), 0)),
            h_probe_in(p, 0));
  H_CHECK(h_int(s, "latency_frames") == L, "thru's latency is %lld",
          (long long)h_int(s, "latency_frames"));
  json_decref(s);
}

/* The slots survived: thru plays exactly L late, g kept its gain. */
static void check_slots(struct h_probe *p, struct h_conn *c, const char *label) {
  wire(p, c);
  json_t *g = h_wait_slot(c, "g", "running", 0, 20000);
  json_decref(g);
  json_t *v = h_call(c, "param.get", json_pack("{s:s, s:s}", "name", "g", "param", "gain_db"));
  H_CHECK(json_number_value(json_object_get(v, "value")) == -6.0, "%s: g's gain_db is %g", label,
          json_number_value(json_object_get(v, "value")));
  json_decref(v);
  uint64_t checked = h_probe_now(p);
  h_check_train(p, 0, 0, L, 1.0f, 900, 2400, PERIOD, &checked, label);
  h_log("%s: slots back, impulses exactly %d frames late, gain_db -6 kept", label, L);
}

/*
 * Waits until runwayd has written every change to its state directory: it
 * writes at most every 500 ms, and a SIGKILL loses what was not written yet.
 */
static void wait_saved(struct h_conn *c) {
  uint64_t deadline = h_now_ms() + 10000;
  for (;;) {
    json_t *st = h_call(c, "status", NULL);
    bool saved = json_is_true(json_object_get(json_object_get(st, "state"), "saved"));
    json_decref(st);
    if (saved)
      return;
    H_CHECK(h_now_ms() < deadline, "runwayd did not save its state within 10 s");
    h_sleep_ms(50);
  }
}

/* What the installed completion offers for `runwayctl WORDS<TAB>`. */
static char *complete(const char *words) {
  char script[4 * PATH_MAX];
  snprintf(script, sizeof(script),
           ". '%s/share/bash-completion/completions/runwayctl' && "
           "read -ra COMP_WORDS <<<\"%s/bin/runwayctl %s\" && COMP_WORDS+=('') && "
           "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && { _runwayctl; echo \"${COMPREPLY[*]}\"; }",
           T.prefix, T.prefix, words);
  const char *argv[] = {"bash", "--norc", "--noprofile", "-c", script, NULL};
  const char *set[] = {T.env_runtime, NULL};
  const char *unset[] = {"RUNWAY_SOCKET", NULL};
  char log[PATH_MAX], *out = NULL;
  path(log, "%s/completion.log", h_tmpdir());
  int st = h_run_capture(argv, set, unset, log, 20000, &out);
  H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "completion of \"%s\" failed", words);
  out[strcspn(out, "\n")] = '\0';
  return out;
}

static void check_completion(const char *words, const char *want) {
  char *got = complete(words);
  char padded[1024];
  snprintf(padded, sizeof(padded), " %s ", got);
  char *w = strdup(want), *save = NULL;
  for (char *tok = strtok_r(w, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
    char needle[128];
    snprintf(needle, sizeof(needle), " %s ", tok);
    H_CHECK(strstr(padded, needle) != NULL, "runwayctl %s<TAB> offers \"%s\", not %s", words, got,
            tok);
  }
  h_log("completion: runwayctl %s<TAB> -> %s", words, got);
  free(w);
  free(got);
}

int main(void) {
  struct h_jack jack;
  struct h_conn c;
  char buf[PATH_MAX * 2], exe[PATH_MAX], want[PATH_MAX];

  enter_namespace();
  h_init("user_unit", 240);
  make_cgroups();
  capture_console();

  /* 1. The build, installed to a prefix it was not configured with. runwayd
   *    running as root (as here) runs its workers as an unprivileged user, who
   *    must reach the installed runway-worker. */
  H_CHECK(chmod(h_tmpdir(), 0755) == 0, "chmod %s: %s", h_tmpdir(), strerror(errno));
  path(T.prefix, "%s/prefix", h_tmpdir());
  const char *install[] = {RWT_CMAKE, "--install", RWT_BUILD_DIR, "--prefix", T.prefix, NULL};
  const char *no_destdir[] = {"DESTDIR", NULL};
  char *out = NULL;
  path(buf, "%s/install.log", h_tmpdir());
  int st = h_run_capture(install, NULL, no_destdir, buf, 120000, &out);
  free(out);
  H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "cmake --install --prefix %s", T.prefix);
  path(buf, "%s/lib/systemd/user/runwayd.service", T.prefix);
  char *unit = h_file_read(buf);
  H_CHECK(unit != NULL, "no user unit at %s", buf);
  path(want, "\nExecStart=%s/bin/runwayd\n", T.prefix);
  H_CHECK(strstr(unit, want) != NULL, "the installed unit does not run %s/bin/runwayd:\n%s",
          T.prefix, unit);
  free(unit);

  path(T.runtime, "%s/runtime", h_tmpdir());
  path(T.home, "%s/home", h_tmpdir());
  path(T.config, "%s/config", h_tmpdir());
  path(T.units, "%s/units", h_tmpdir());
  path(T.log, "%s/runwayd.log", h_tmpdir());
  path(T.socket, "%s/runway/control.sock", T.runtime);
  /* Like /run/user/UID, a tmpfs: systemd cleans RuntimeDirectory= only there. */
  mkdirs(T.runtime, 0700);
  H_CHECK(mount("tmpfs", T.runtime, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") == 0,
          "tmpfs on %s: %s", T.runtime, strerror(errno));
  mkdirs(T.home, 0755);
  mkdirs(T.config, 0755);
  path(buf, "%s/runwayd.service.d", T.units);
  mkdirs(buf, 0755);
  snprintf(T.env_runtime, sizeof(T.env_runtime), "XDG_RUNTIME_DIR=%s", T.runtime);
  /* Plumbing only: where runwayd's output goes (there is no journal here), no core files. */
  path(buf, "%s/runwayd.service.d/test.conf", T.units);
  char dropin[PATH_MAX + 128];
  snprintf(dropin, sizeof(dropin), "[Service]\nStandardOutput=append:%s\nLimitCORE=0\n", T.log);
  write_file(buf, dropin);

  if (h_pipewire())
    h_pipewire_start_at(&jack, T.runtime, "pipewire-0", RATE, PERIOD);
  else
    h_jack_start(&jack, RATE, PERIOD);
  start_manager();
  char env_jack[128], env_state[PATH_MAX + 32];
  snprintf(env_jack, sizeof(env_jack), "JACK_DEFAULT_SERVER=%s", jack.name);
  snprintf(env_state, sizeof(env_state), "XDG_STATE_HOME=%s/state", h_tmpdir());
  /* JACK's server by name; a user's PipeWire is found through XDG_RUNTIME_DIR alone. */
  H_CHECK(systemctl(NULL, "set-environment", env_state, h_pipewire() ? NULL : env_jack, NULL) == 0,
          "set-environment");

  /* 2. Start: back only after READY=1. */
  uint64_t t0 = h_now_ms();
  /* As a user does it. Enabled, the unit also stays loaded once stopped, with its exit status. */
  H_CHECK(systemctl(NULL, "enable", "--now", "runwayd.service", NULL) == 0,
          "systemctl --user enable --now runwayd");
  pid_t pid = wait_running(0, 1000, "start", NULL);
  h_log("started in %llu ms: runwayd pid %d", (unsigned long long)(h_now_ms() - t0), (int)pid);
  path(buf, "/proc/%d/exe", (int)pid);
  ssize_t n = readlink(buf, exe, sizeof(exe) - 1);
  H_CHECK(n > 0, "readlink %s", buf);
  exe[n] = '\0';
  path(want, "%s/bin/runwayd", T.prefix);
  H_CHECK(strcmp(exe, want) == 0, "the unit runs %s, not %s", exe, want);
  struct stat sb;
  H_CHECK(stat(T.socket, &sb) == 0 && S_ISSOCK(sb.st_mode), "no socket at %s", T.socket);
  /* A user's runwayd makes it 0600; run by root, as here, runwayd is never a user instance. */
  H_CHECK((sb.st_mode & 0777) == (geteuid() == 0 ? 0660u : 0600u), "socket mode %o",
          (unsigned)(sb.st_mode & 0777));
  connect_daemon(&c, pid);
  json_t *status_json = h_call(&c, "status", NULL);
  const char *backend = h_str(status_json, "backend");
  H_CHECK(backend != NULL && strcmp(backend, h_backend()) == 0, "runwayd runs on %s, not %s",
          backend ? backend : "nothing", h_backend());
  h_log("runwayd runs on %s", backend);
  json_decref(status_json);
  char *status = prop("StatusText");
  H_CHECK(status[0] != '\0', "runwayd sent no STATUS=");
  h_log("unit status: %s", status);
  free(status);
  H_CHECK(prop_is("WatchdogUSec", "10s"), "WatchdogUSec is not 10s");

  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);
  h_probe_path_latency(p, L);
  json_decref(h_add_slot(&c, "thru",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         20000));
  json_decref(h_add_slot(&c, "g", json_pack("{s:s}", "plugin", "gain"), 20000));
  json_decref(h_call(&c, "param.set",
                     json_pack("{s:s, s:s, s:f}", "name", "g", "param", "gain_db", "value", -6.0)));
  check_slots(p, &c, "first start");

  /* 3. Completion with names from this daemon. */
  check_completion("slot remove", "thru g");
  check_completion("slot add x --plugin", "passthrough gain delay synth");
  check_completion("param set g", "gain_db");

  /* 4. SIGKILL: Restart= on-failure, slots from the state directory. */
  wait_saved(&c);
  h_conn_close(&c);
  t0 = h_now_ms();
  H_CHECK(kill(pid, SIGKILL) == 0, "SIGKILL runwayd");
  pid_t old = pid;
  pid = wait_running(old, 30000, "after SIGKILL", "signal");
  h_log("SIGKILL: runwayd %d -> %d in %llu ms (RestartSec=2s)", (int)old, (int)pid,
        (unsigned long long)(h_now_ms() - t0));
  H_CHECK(prop_long("NRestarts") == 1, "NRestarts is %ld", prop_long("NRestarts"));
  connect_daemon(&c, pid);
  check_slots(p, &c, "after SIGKILL");

  /* 5. SIGSTOP: the loop stops pinging, the watchdog replaces the daemon. */
  h_conn_close(&c);
  size_t console_from = h_file_size(T.console);
  t0 = h_now_ms();
  H_CHECK(kill(pid, SIGSTOP) == 0, "SIGSTOP runwayd");
  old = pid;
  pid = wait_running(old, 60000, "after SIGSTOP", "watchdog");
  h_log("SIGSTOP: runwayd %d -> %d in %llu ms (WatchdogSec=10s, RestartSec=2s)", (int)old, (int)pid,
        (unsigned long long)(h_now_ms() - t0));
  H_CHECK(h_file_count(T.console, console_from, "Watchdog timeout") >= 1,
          "the manager did not log a watchdog timeout");
  H_CHECK(!h_pid_exists(old), "the stopped runwayd %d is still there", (int)old);
  H_CHECK(prop_long("NRestarts") == 2, "NRestarts is %ld", prop_long("NRestarts"));
  connect_daemon(&c, pid);
  check_slots(p, &c, "after the watchdog");

  /* 6. A configuration file, as the unit's comments say; then a reload. */
  h_conn_close(&c);
  path(buf, "%s/runway", T.config);
  mkdirs(buf, 0755);
  char conf[PATH_MAX];
  path(conf, "%s/runway/runwayd.conf", T.config);
  write_file(conf, "[slot cfg]\nplugin = sine\nparam.level_db = -20\n");
  path(buf, "%s/systemd/user/runwayd.service.d", T.config);
  mkdirs(buf, 0755);
  path(buf, "%s/systemd/user/runwayd.service.d/override.conf", T.config);
  snprintf(dropin, sizeof(dropin),
           "[Service]\nExecStart=\nExecStart=%s/bin/runwayd --config %%E/runway/runwayd.conf\n",
           T.prefix);
  write_file(buf, dropin);
  H_CHECK(systemctl(NULL, "daemon-reload", NULL) == 0, "daemon-reload");
  H_CHECK(systemctl(NULL, "restart", "runwayd.service", NULL) == 0, "restart");
  old = pid;
  pid = wait_running(old, 1000, "restart with a configuration file", NULL);
  connect_daemon(&c, pid);
  json_t *s = h_wait_slot(&c, "cfg", "running", 0, 20000);
  json_decref(s);
  check_slots(p, &c, "restart with the configuration file");

  write_file(conf,
             "[slot cfg]\nplugin = sine\nparam.level_db = -30\n\n[slot cfg2]\nplugin = gain\n");
  t0 = h_now_ms();
  H_CHECK(systemctl(NULL, "reload", "runwayd.service", NULL) == 0,
          "systemctl --user reload runwayd");
  h_log("reload: %llu ms", (unsigned long long)(h_now_ms() - t0));
  H_CHECK((pid_t)prop_long("MainPID") == pid, "reload replaced the process");
  json_decref(h_wait_slot(&c, "cfg2", "running", 0, 20000));
  json_t *v = h_call(&c, "param.get", json_pack("{s:s, s:s}", "name", "cfg", "param", "level_db"));
  H_CHECK(json_number_value(json_object_get(v, "value")) == -30.0,
          "cfg's level_db is %g after the reload", json_number_value(json_object_get(v, "value")));
  json_decref(v);
  H_CHECK(h_file_count(T.log, 0, "SIGHUP: reloaded") >= 1, "runwayd did not log the reload");
  h_log("reload: cfg2 added, cfg's level_db -30, same runwayd %d", (int)pid);

  /* 7. Stop: exit 0, no worker left, the socket gone. */
  json_t *list = h_call(&c, "slot.list", NULL);
  pid_t workers[8];
  size_t nw = 0, i;
  json_t *slot;
  json_array_foreach(json_object_get(list, "slots"), i, slot) {
    if (nw < 8 && h_int(slot, "pid") > 0)
      workers[nw++] = (pid_t)h_int(slot, "pid");
  }
  json_decref(list);
  H_CHECK(nw == 4, "%zu workers running, want 4", nw);
  h_conn_close(&c);
  H_CHECK(systemctl(NULL, "stop", "runwayd.service", NULL) == 0, "systemctl --user stop runwayd");
  H_CHECK(prop_is("ActiveState", "inactive"), "not inactive after stop");
  H_CHECK(prop_is("Result", "success"), "Result is not success");
  H_CHECK(prop_long("ExecMainCode") == CLD_EXITED && prop_long("ExecMainStatus") == 0,
          "runwayd ended with code %ld status %ld", prop_long("ExecMainCode"),
          prop_long("ExecMainStatus"));
  for (i = 0; i < nw; i++)
    H_CHECK(!h_pid_exists(workers[i]), "worker %d outlived runwayd", (int)workers[i]);
  H_CHECK(access(T.socket, F_OK) != 0, "the socket %s is still there", T.socket);
  path(buf, "%s/runway", T.runtime);
  H_CHECK(access(buf, F_OK) != 0, "RuntimeDirectory= %s is still there", buf);
  h_log("stopped: exit 0, %zu workers gone, socket and runtime directory removed", nw);

  h_probe_close(p);
  /* The manager stops what is left of its own and exits. */
  systemctl(NULL, "exit", NULL);
  H_CHECK(h_proc_wait(&T.manager, 30000), "the user manager did not exit");
  h_jack_stop(&jack);
  H_CHECK(umount2(T.runtime, MNT_DETACH) == 0, "umount %s: %s", T.runtime, strerror(errno));
  h_pass();
}
