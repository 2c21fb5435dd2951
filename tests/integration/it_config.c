/*
 * it_config: the configuration file, at start and on SIGHUP.
 *
 *   1. runwayd --config FILE, FILE with [daemon] keys and two [slot] sections
 *      (gain "ga" with param.gain_db = -12, delay "dl" with param.time_ms and
 *      param.mix): both slots come up running with those values (param.get,
 *      and ga audibly: an impulse comes out exactly L later at exactly
 *      -12 dB); [daemon] latency_ms applies (no --latency-ms given: the
 *      slots' L is 20 ms), while --name, --socket and --state-dir from the
 *      command line win over the file's name, socket and state_dir.
 *   2. A slot created at run time with runwayctl (gain "rtg", -3 dB).
 *   3. FILE edited (ga's gain -> -6, dl removed, passthrough "nw" added),
 *      SIGHUP: dl is gone, nw runs, ga has -6 dB (param.get and audibly)
 *      without being rebuilt (same worker), rtg is untouched (same worker,
 *      -3 dB).
 *   4. FILE with a syntax error, then with an unknown key, each + SIGHUP:
 *      runwayd logs the error, keeps running and answers, and nothing
 *      changes (slots, workers, values), although the broken files also
 *      declare other changes.
 *   5. A new runwayd on the same state directory and FILE with
 *      --latency-ms 30: the command line wins over [daemon] latency_ms (a new
 *      slot gets L = 30 ms); the declared slots and rtg are back.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef RWT_RUNWAYCTL
#error "RWT_RUNWAYCTL must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128
#define CFG_L (20 * RATE / 1000)

static char cfg_path[PATH_MAX], ctl_log[PATH_MAX], wrong_sock[PATH_MAX], wrong_state[PATH_MAX];

struct ctx {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  struct h_probe *p;
  uint64_t checked_to;
};

/* Writes the configuration atomically (a reload never reads half a file). */
static void write_config(const char *text) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof(tmp), "%s.new", cfg_path);
  FILE *f = fopen(tmp, "we");
  H_CHECK(f != NULL, "create %s: %s", tmp, strerror(errno));
  H_CHECK(fputs(text, f) >= 0 && fclose(f) == 0, "write %s", tmp);
  H_CHECK(rename(tmp, cfg_path) == 0, "rename %s: %s", tmp, strerror(errno));
}

static const char cfg_head[] = "; runway test configuration\n"
                               "[daemon]\n"
                               "name = cfg-name-must-lose\n"
                               "socket = %s\n"
                               "state_dir = %s\n"
                               "latency_ms = 20\n"
                               "log_level = info\n"
                               "\n";

static void write_config_v(const char *slots) {
  char text[4096];
  int n = snprintf(text, sizeof(text), cfg_head, wrong_sock, wrong_state);
  snprintf(text + n, sizeof(text) - (size_t)n, "%s", slots);
  write_config(text);
}

static const char slots_v1[] = "[slot ga]\n"
                               "plugin = gain\n"
                               "inputs = 1\n"
                               "outputs = 1\n"
                               "param.gain_db = -12\n"
                               "\n"
                               "[slot dl]\n"
                               "plugin = delay\n"
                               "inputs = 1\n"
                               "outputs = 1\n"
                               "param.time_ms = 123\n"
                               "param.mix = 0.75\n";

static const char slots_v2[] = "[slot ga]\n"
                               "plugin = gain\n"
                               "inputs = 1\n"
                               "outputs = 1\n"
                               "param.gain_db = -6\n"
                               "\n"
                               "[slot nw]\n"
                               "plugin = passthrough\n"
                               "inputs = 1\n"
                               "outputs = 1\n"
                               "latency_frames = 480\n";

/* v2 plus changes, and a line that is not INI. */
static const char slots_syntax[] = "[slot ga]\n"
                                   "plugin = gain\n"
                                   "inputs = 1\n"
                                   "outputs = 1\n"
                                   "param.gain_db = -1\n"
                                   "\n"
                                   "[slot zz]\n"
                                   "plugin = passthrough\n"
                                   "this line is not a key = value pair [\n"
                                   "[slot nw\n"
                                   "plugin = passthrough\n";

/* v2 plus changes, and a key runwayd does not know. */
static const char slots_unknown[] = "[slot ga]\n"
                                    "plugin = gain\n"
                                    "inputs = 1\n"
                                    "outputs = 1\n"
                                    "param.gain_db = -2\n"
                                    "\n"
                                    "[slot zz]\n"
                                    "plugin = passthrough\n"
                                    "colour = blue\n";

static int ctl(const char *sock, const char *const *args) {
  const char *argv[32];
  size_t n = 0;
  argv[n++] = RWT_RUNWAYCTL;
  argv[n++] = "--socket";
  argv[n++] = sock;
  for (size_t i = 0; args[i] != NULL && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  const char *unset[] = {"RUNWAY_SOCKET", "XDG_RUNTIME_DIR", NULL};
  char *text = NULL;
  int st = h_run_capture(argv, NULL, unset, ctl_log, 15000, &text);
  free(text);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  h_log("runwayctl %s %s ... -> exit %d", args[0], args[1] ? args[1] : "", code);
  return code;
}

#define CTL(sock, ...) ctl(sock, (const char *const[]){__VA_ARGS__, NULL})

static double param_get(struct h_conn *c, const char *slot, const char *param) {
  json_t *r = h_call(c, "param.get", json_pack("{s:s, s:s}", "name", slot, "param", param));
  double x = json_number_value(json_object_get(r, "value"));
  json_decref(r);
  return x;
}

static void expect_param(struct h_conn *c, const char *slot, const char *param, double want,
                         const char *when) {
  double got = param_get(c, slot, param);
  if (fabs(got - want) > 1e-5)
    h_error("%s: %s %s is %g, want %g", when, slot, param, got, want);
  else
    h_log("%s: %s %s = %g", when, slot, param, got);
}

static json_int_t pid_of(struct h_conn *c, const char *slot) {
  json_t *s = h_slot(c, slot);
  json_int_t pid = s ? h_int(s, "pid") : -1;
  json_decref(s);
  return pid;
}

/*
 * Impulses through ga (probe out 0 -> ga -> probe in 0): exactly L later,
 * exactly `gain`. A train that a disturbance of the graph or an underrun
 * spoiled is sent again (h_measure).
 */
static void gain_check(struct ctx *x, uint32_t latency, float gain, const char *label) {
  struct h_path path = {.out = 0,
                        .in = 0,
                        .delay = latency,
                        .gain = gain,
                        .slots = {"ga"},
                        .checked_to = x->checked_to};
  /* Lead: a change sent just before lands within L + a period, then ramps 10 ms. */
  struct h_train train = {.gap = 1300, .lead = latency + 2 * PERIOD + RATE / 50 + 1200};
  snprintf(path.label, sizeof(path.label), "%s", label);
  h_measure(x->p, &x->c, &path, 1, &train);
  x->checked_to = path.checked_to;
}

static void wire_ga(struct ctx *x) {
  json_t *s = h_slot(&x->c, "ga");
  H_CHECK(s != NULL, "no slot ga");
  h_connect(x->p, h_probe_out(x->p, 0), h_slot_port(s, "inputs", 0));
  h_connect(x->p, h_slot_port(s, "outputs", 0), h_probe_in(x->p, 0));
  json_decref(s);
}

struct reload {
  const char *log;
  unsigned ok0, bad0; /* outcomes logged before the SIGHUP */
  unsigned ok, bad;
  struct h_proc *proc;
};

static bool reload_logged(void *arg, char *seen, size_t len) {
  struct reload *r = arg;
  H_CHECK(h_proc_alive(r->proc), "runwayd died on SIGHUP");
  r->ok = h_file_count(r->log, 0, "SIGHUP: reloaded");
  r->bad = h_file_count(r->log, 0, "nothing changed");
  snprintf(seen, len, "%u reloads, %u refusals logged", r->ok, r->bad);
  return r->ok > r->ok0 || r->bad > r->bad0;
}

/* Sends SIGHUP and waits until runwayd logged the outcome (reloaded, or nothing changed). */
static void sighup(struct ctx *x, bool expect_ok) {
  struct reload r = {.log = x->d.proc.log,
                     .ok0 = h_file_count(x->d.proc.log, 0, "SIGHUP: reloaded"),
                     .bad0 = h_file_count(x->d.proc.log, 0, "nothing changed"),
                     .proc = &x->d.proc};
  H_CHECK(kill(x->d.proc.pid, SIGHUP) == 0, "SIGHUP to runwayd");
  H_WAIT_UNTIL(reload_logged, &r, 5000, "runwayd to log the outcome of the SIGHUP");
  if (expect_ok && r.ok == r.ok0)
    H_FAIL("runwayd refused a valid configuration on SIGHUP (see its log)");
  if (!expect_ok && r.bad == r.bad0)
    H_FAIL("runwayd accepted a broken configuration on SIGHUP");
}

struct gone {
  struct h_conn *c;
  const char *slot;
};

static bool slot_gone(void *arg, char *seen, size_t len) {
  struct gone *g = arg;
  json_t *s = h_slot(g->c, g->slot);
  bool gone = s == NULL;
  if (!gone)
    snprintf(seen, len, "slot %s %s", g->slot, h_str(s, "state"));
  json_decref(s);
  return gone;
}

/* Waits until the slot is gone. */
static void wait_gone(struct h_conn *c, const char *slot) {
  struct gone g = {c, slot};
  H_WAIT_UNTIL(slot_gone, &g, 5000, "slot %s to go after it left the configuration", slot);
}

static const char *slot_names(struct h_conn *c, char *buf, size_t len) {
  json_t *r = h_call(c, "slot.list", NULL);
  size_t i;
  json_t *s;
  buf[0] = '\0';
  json_array_foreach(json_object_get(r, "slots"), i, s) {
    strncat(buf, h_str(s, "name"), len - strlen(buf) - 2);
    strncat(buf, " ", len - strlen(buf) - 1);
  }
  json_decref(r);
  return buf;
}

static void start(struct ctx *x, const char *state_dir, const char *latency_ms) {
  const char *args[8];
  size_t n = 0;
  args[n++] = "--config";
  args[n++] = cfg_path;
  if (state_dir != NULL) {
    args[n++] = "--state-dir";
    args[n++] = state_dir;
  }
  if (latency_ms != NULL) {
    args[n++] = "--latency-ms";
    args[n++] = latency_ms;
  }
  args[n] = NULL;
  h_daemon_start(&x->d, &x->jack, args, NULL);
  H_CHECK(h_conn_open(&x->c, x->d.socket) == 0, "connect to runwayd");
}

int main(void) {
  struct ctx x;
  char names[512], state_dir[PATH_MAX];
  memset(&x, 0, sizeof(x));
  h_init("config", 85);
  snprintf(cfg_path, sizeof(cfg_path), "%s/runwayd.conf", h_tmpdir());
  snprintf(ctl_log, sizeof(ctl_log), "%s/runwayctl.log", h_tmpdir());
  snprintf(wrong_sock, sizeof(wrong_sock), "%s/from-config.sock", h_tmpdir());
  snprintf(wrong_state, sizeof(wrong_state), "%s/from-config-state", h_tmpdir());

  h_jack_start(&x.jack, RATE, PERIOD);
  x.p = h_probe_open(&x.jack, 1, false, 1, 0, 0);
  h_probe_path_latency(x.p, CFG_L);

  /* 1. Start with two declared slots. */
  write_config_v(slots_v1);
  start(&x, NULL, NULL);
  snprintf(state_dir, sizeof(state_dir), "%s", x.d.state_dir);
  json_t *st = h_call(&x.c, "status", NULL);
  h_log("status: name %s, socket %s, latency_ms %g, state dir %s", h_str(st, "name"),
        h_str(st, "socket"), json_number_value(json_object_get(st, "latency_ms")),
        h_str(json_object_get(st, "state"), "dir"));
  if (strcmp(h_str(st, "name"), x.d.name) != 0)
    h_error("--name %s did not win over [daemon] name: JACK name %s", x.d.name, h_str(st, "name"));
  if (strcmp(h_str(st, "socket"), x.d.socket) != 0)
    h_error("--socket did not win over [daemon] socket: %s", h_str(st, "socket"));
  if (strcmp(h_str(json_object_get(st, "state"), "dir"), x.d.state_dir) != 0)
    h_error("--state-dir did not win over [daemon] state_dir: %s",
            h_str(json_object_get(st, "state"), "dir"));
  if (json_number_value(json_object_get(st, "latency_ms")) != 20.0)
    h_error("[daemon] latency_ms = 20 did not apply: %g",
            json_number_value(json_object_get(st, "latency_ms")));
  json_decref(st);
  struct stat sb;
  if (lstat(wrong_sock, &sb) == 0 || lstat(wrong_state, &sb) == 0)
    h_error("runwayd used the socket or state_dir of [daemon] although the command line named "
            "others");

  const char *declared[] = {"ga", "dl"};
  for (size_t i = 0; i < 2; i++) {
    json_t *s = h_wait_slot(&x.c, declared[i], "running", 0, 10000);
    if (h_int(s, "latency_frames") != CFG_L)
      h_error("slot %s: latency_frames %lld, want %d ([daemon] latency_ms = 20)", declared[i],
              (long long)h_int(s, "latency_frames"), CFG_L);
    json_decref(s);
  }
  expect_param(&x.c, "ga", "gain_db", -12, "at start");
  expect_param(&x.c, "dl", "time_ms", 123, "at start");
  expect_param(&x.c, "dl", "mix", 0.75, "at start");
  expect_param(&x.c, "dl", "feedback", 0.3, "at start (the plugin's default)");
  wire_ga(&x);
  gain_check(&x, CFG_L, powf(10.0f, -12.0f / 20.0f), "ga at start (-12 dB from the file)");

  /* 2. A slot made at run time with runwayctl. */
  H_CHECK(CTL(x.d.socket, "slot", "add", "rtg", "--plugin", "gain", "--inputs", "1", "--outputs",
              "1") == 0,
          "runwayctl slot add rtg");
  H_CHECK(CTL(x.d.socket, "param", "set", "rtg", "gain_db", "-3") == 0, "runwayctl param set rtg");
  json_decref(h_wait_slot(&x.c, "rtg", "running", 0, 10000));
  json_int_t ga_pid = pid_of(&x.c, "ga"), rtg_pid = pid_of(&x.c, "rtg");

  /* 3. Edit: ga's gain changes, dl goes, nw comes. */
  write_config_v(slots_v2);
  sighup(&x, true);
  wait_gone(&x.c, "dl");
  json_t *s = h_wait_slot(&x.c, "nw", "running", 0, 10000);
  if (h_int(s, "latency_frames") != 480)
    h_error("nw: latency_frames %lld, want 480", (long long)h_int(s, "latency_frames"));
  json_decref(s);
  expect_param(&x.c, "ga", "gain_db", -6, "after SIGHUP");
  expect_param(&x.c, "rtg", "gain_db", -3, "after SIGHUP (runtime slot)");
  if (pid_of(&x.c, "ga") != ga_pid)
    h_error("ga was rebuilt (worker %lld -> %lld) for a parameter change", (long long)ga_pid,
            (long long)pid_of(&x.c, "ga"));
  if (pid_of(&x.c, "rtg") != rtg_pid)
    h_error("the runtime slot rtg was touched by the reload (worker %lld -> %lld)",
            (long long)rtg_pid, (long long)pid_of(&x.c, "rtg"));
  h_log("after SIGHUP: slots %s", slot_names(&x.c, names, sizeof(names)));
  gain_check(&x, CFG_L, powf(10.0f, -6.0f / 20.0f), "ga after SIGHUP (-6 dB)");

  /* 4. Broken files change nothing. */
  const char *broken[] = {slots_syntax, slots_unknown};
  const char *what[] = {"a syntax error", "an unknown key"};
  for (size_t i = 0; i < 2; i++) {
    write_config_v(broken[i]);
    sighup(&x, false);
    H_CHECK(h_proc_alive(&x.d.proc), "runwayd died after a SIGHUP with %s", what[i]);
    json_decref(h_call(&x.c, "status", NULL));
    char label[64];
    snprintf(label, sizeof(label), "after SIGHUP with %s", what[i]);
    expect_param(&x.c, "ga", "gain_db", -6, label);
    expect_param(&x.c, "rtg", "gain_db", -3, label);
    json_t *zz = h_slot(&x.c, "zz");
    if (zz != NULL)
      h_error("%s: a slot from the broken file was created", label);
    json_decref(zz);
    const char *keep[] = {"ga", "nw", "rtg"};
    for (size_t k = 0; k < 3; k++) {
      json_t *ks = h_slot(&x.c, keep[k]);
      if (ks == NULL || strcmp(h_str(ks, "state"), "running") != 0)
        h_error("%s: slot %s is gone or not running", label, keep[k]);
      json_decref(ks);
    }
    if (pid_of(&x.c, "ga") != ga_pid || pid_of(&x.c, "rtg") != rtg_pid)
      h_error("%s: a worker was replaced", label);
    h_log("%s: nothing changed (slots %s)", label, slot_names(&x.c, names, sizeof(names)));
  }
  gain_check(&x, CFG_L, powf(10.0f, -6.0f / 20.0f), "ga after the broken reloads (-6 dB)");
  /*
   * The message names the first wrong line (17 of the syntax-error file:
   * "this line is not a key = value pair [", read as an unknown key) and says
   * what is wrong with that line, not with another one.
   */
  char *log = h_file_read(x.d.proc.log);
  const char *line = log ? strstr(log, "runwayd.conf:17:") : NULL;
  if (line == NULL) {
    h_error("runwayd did not log that line 17 of the broken file is wrong");
  } else {
    size_t len = strcspn(line, "\n");
    h_log("runwayd's message for the syntax error: %.*s", (int)len, line);
    if (memmem(line, len, "this line is not a key", 22) == NULL)
      h_error("the message for line 17 (\"this line is not a key = value pair [\") describes "
              "another line's problem: %.*s",
              (int)len, line);
  }
  free(log);

  /* 5. The command line wins: a new runwayd with --latency-ms 30, the same state directory. */
  write_config_v(slots_v2);
  h_conn_close(&x.c);
  int status = h_daemon_stop(&x.d);
  char buf[64];
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  start(&x, state_dir, "30");
  st = h_call(&x.c, "status", NULL);
  if (json_number_value(json_object_get(st, "latency_ms")) != 30.0)
    h_error("--latency-ms 30 did not win over [daemon] latency_ms = 20: %g",
            json_number_value(json_object_get(st, "latency_ms")));
  json_decref(st);
  s = h_add_slot(&x.c, "n30",
                 json_pack("{s:s, s:i, s:i}", "plugin", "passthrough", "inputs", 1, "outputs", 1),
                 10000);
  if (h_int(s, "latency_frames") != 30 * RATE / 1000)
    h_error("a new slot's L is %lld frames, want %d (--latency-ms 30)",
            (long long)h_int(s, "latency_frames"), 30 * RATE / 1000);
  json_decref(s);
  const char *back[] = {"ga", "nw", "rtg"};
  for (size_t k = 0; k < 3; k++)
    json_decref(h_wait_slot(&x.c, back[k], "running", 0, 10000));
  expect_param(&x.c, "ga", "gain_db", -6, "after a restart");
  expect_param(&x.c, "rtg", "gain_db", -3, "after a restart");
  json_t *dl = h_slot(&x.c, "dl");
  if (dl != NULL)
    h_error("dl, removed from the configuration, came back after a restart");
  json_decref(dl);
  h_log("after a restart with --latency-ms 30: slots %s", slot_names(&x.c, names, sizeof(names)));

  h_probe_close(x.p);
  h_conn_close(&x.c);
  status = h_daemon_stop(&x.d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&x.jack);
  h_pass();
}
