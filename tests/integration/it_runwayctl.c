/*
 * it_runwayctl: runwayctl end to end against the real daemon: status,
 * plugins, slot add/list/restart/remove and stats, in human and --json form;
 * --json output parses and carries the fields DESIGN.md promises; exit
 * status 0 (ok), 1 (the daemon answered with an error), 2 (usage error) and
 * 3 (no daemon reachable); the socket from --socket and from $RUNWAY_SOCKET.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef RWT_RUNWAYCTL
#error "RWT_RUNWAYCTL must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128

static char ctl_log[4200];
static const char *sock;

/* Runs runwayctl with args (NULL terminated, after --socket S unless no_socket); returns exit. */
static int ctl(char **out, bool no_socket, const char *const *set, const char *const *args) {
  const char *argv[32];
  size_t n = 0;
  argv[n++] = RWT_RUNWAYCTL;
  if (!no_socket) {
    argv[n++] = "--socket";
    argv[n++] = sock;
  }
  for (size_t i = 0; args[i] != NULL && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  const char *unset[] = {"RUNWAY_SOCKET", "XDG_RUNTIME_DIR", NULL};
  char *text = NULL;
  int st = h_run_capture(argv, set, set ? NULL : unset, ctl_log, 15000, &text);
  char cmdline[512] = "";
  for (size_t i = 1; i < n; i++) {
    strncat(cmdline, argv[i], sizeof(cmdline) - strlen(cmdline) - 2);
    strncat(cmdline, " ", sizeof(cmdline) - strlen(cmdline) - 1);
  }
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  h_log("runwayctl %s-> exit %d", cmdline, code);
  if (out != NULL)
    *out = text;
  else
    free(text);
  return code;
}

#define CTL(out, ...) ctl(out, false, NULL, (const char *const[]){__VA_ARGS__, NULL})

/* Runs a --json command that must succeed and returns its parsed output. */
static json_t *ctl_json(const char *const *args) {
  char *text;
  int code = ctl(&text, false, NULL, args);
  if (code != 0)
    H_FAIL("runwayctl %s exited %d", args[1], code);
  json_error_t err;
  json_t *j = json_loads(text, 0, &err);
  if (j == NULL || !json_is_object(j))
    H_FAIL("runwayctl --json %s printed no JSON object (%s): %s", args[1], err.text, text);
  free(text);
  return j;
}

#define CTL_JSON(...) ctl_json((const char *const[]){"--json", __VA_ARGS__, NULL})

static void need(const json_t *obj, const char *what, const char *key, int type) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL) {
    h_error("%s has no \"%s\"", what, key);
    return;
  }
  if (type >= 0 && json_typeof(v) != (json_type)type &&
      !(type == JSON_INTEGER && json_is_null(v)) && !(type == JSON_TRUE && json_is_boolean(v)))
    h_error("%s: \"%s\" has the wrong type", what, key);
}

static json_t *find(json_t *slots, const char *name) {
  size_t i;
  json_t *s;
  json_array_foreach(slots, i, s) {
    if (strcmp(h_str(s, "name") ? h_str(s, "name") : "", name) == 0)
      return s;
  }
  return NULL;
}

/* Polls `runwayctl --json slot list` until slot name runs (with a pid other than not_pid). */
static json_t *wait_running(const char *name, json_int_t not_pid) {
  uint64_t deadline = h_now_ms() + 10000;
  for (;;) {
    json_t *list = CTL_JSON("slot", "list");
    json_t *s = find(json_object_get(list, "slots"), name);
    if (s != NULL && strcmp(h_str(s, "state"), "running") == 0 &&
        (not_pid == 0 || h_int(s, "pid") != not_pid)) {
      json_incref(s);
      json_decref(list);
      return s;
    }
    json_decref(list);
    if (h_now_ms() > deadline)
      H_FAIL("slot %s not running within 10 s", name);
    h_sleep_ms(50);
  }
}

static void check_slot_fields(json_t *s, const char *client) {
  const char *name = h_str(s, "name");
  char what[96];
  snprintf(what, sizeof(what), "slot list entry %s", name ? name : "?");
  need(s, what, "name", JSON_STRING);
  need(s, what, "plugin", JSON_STRING);
  need(s, what, "state", JSON_STRING);
  need(s, what, "pid", JSON_INTEGER);
  need(s, what, "latency_frames", JSON_INTEGER);
  need(s, what, "ports", JSON_OBJECT);
  json_t *ports = json_object_get(s, "ports");
  need(ports, what, "inputs", JSON_ARRAY);
  need(ports, what, "outputs", JSON_ARRAY);
  need(ports, what, "midi", -1);
  /* Full JACK port names: client:NAME.out_N. */
  char expect[256];
  snprintf(expect, sizeof(expect), "%s:%s.out_1", client, name);
  const char *out1 = json_string_value(json_array_get(json_object_get(ports, "outputs"), 0));
  if (out1 == NULL || strcmp(out1, expect) != 0)
    h_error("%s: outputs[0] is %s, want %s", what, out1 ? out1 : "null", expect);
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  char *out;
  char buf[64];

  h_init("runwayctl", 80);
  snprintf(ctl_log, sizeof(ctl_log), "%s/runwayctl-stderr.log", h_tmpdir());
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  sock = d.socket;

  /* ---- status and plugins ---------------------------------------------------------- */
  H_CHECK(CTL(&out, "status") == 0, "status");
  H_CHECK(strlen(out) > 0, "status printed nothing");
  free(out);
  json_t *st = CTL_JSON("status");
  if (strcmp(h_str(st, "backend_state") ? h_str(st, "backend_state") : "", "active") != 0 ||
      h_int(st, "sample_rate") != RATE || h_int(st, "period") != PERIOD ||
      strcmp(h_str(st, "name") ? h_str(st, "name") : "", d.name) != 0 ||
      h_int(st, "pid") != d.proc.pid)
    h_error("status --json: %s", json_dumps(st, JSON_COMPACT));
  json_decref(st);

  H_CHECK(CTL(&out, "plugins") == 0, "plugins");
  H_CHECK(strstr(out, "passthrough") != NULL, "plugins does not list passthrough: %s", out);
  free(out);
  json_t *pl = CTL_JSON("plugins");
  const char *builtins[] = {"passthrough", "gain", "sine", "delay", "synth"};
  for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
    bool found = false;
    size_t k;
    json_t *e;
    json_array_foreach(json_object_get(pl, "plugins"), k, e) {
      found |= h_str(e, "name") && strcmp(h_str(e, "name"), builtins[i]) == 0;
    }
    if (!found)
      h_error("plugins --json lacks %s", builtins[i]);
  }
  json_decref(pl);

  /* ---- slots ---------------------------------------------------------------------------- */
  H_CHECK(CTL(NULL, "slot", "add", "ctl1", "--plugin", "passthrough", "--inputs", "1", "--outputs",
              "1", "--latency-frames", "1000") == 0,
          "slot add ctl1");
  H_CHECK(CTL(NULL, "slot", "add", "ctl2", "--plugin", "sine", "--latency-ms", "20") == 0,
          "slot add ctl2");
  H_CHECK(CTL(NULL, "slot", "add", "ctl3", "--plugin", "synth", "--midi") == 0, "slot add ctl3");
  json_t *s1 = wait_running("ctl1", 0);
  json_decref(wait_running("ctl2", 0));
  json_decref(wait_running("ctl3", 0));

  json_t *list = CTL_JSON("slot", "list");
  H_CHECK(json_is_array(json_object_get(list, "slots")), "slot list --json has no slots array");
  json_t *e;
  size_t k;
  json_array_foreach(json_object_get(list, "slots"), k, e) check_slot_fields(e, d.name);
  json_t *e1 = find(json_object_get(list, "slots"), "ctl1");
  json_t *e2 = find(json_object_get(list, "slots"), "ctl2");
  json_t *e3 = find(json_object_get(list, "slots"), "ctl3");
  H_CHECK(e1 && e2 && e3, "slot list lacks a slot");
  if (h_int(e1, "latency_frames") != 1000 || h_int(e2, "latency_frames") != 960)
    h_error("latency_frames %lld and %lld, want 1000 and 960 (20 ms)",
            (long long)h_int(e1, "latency_frames"), (long long)h_int(e2, "latency_frames"));
  if (strcmp(h_str(e1, "plugin"), "passthrough") != 0 ||
      json_array_size(json_object_get(json_object_get(e1, "ports"), "inputs")) != 1)
    h_error("ctl1: %s", json_dumps(e1, JSON_COMPACT));
  const char *midi = h_str(json_object_get(e3, "ports"), "midi");
  char want_midi[256];
  snprintf(want_midi, sizeof(want_midi), "%s:ctl3.midi_in", d.name);
  if (midi == NULL || strcmp(midi, want_midi) != 0)
    h_error("ctl3 midi port %s, want %s", midi ? midi : "null", want_midi);
  json_decref(list);

  H_CHECK(CTL(&out, "slot", "list") == 0, "slot list");
  if (strstr(out, "ctl1") == NULL || strstr(out, "ctl2") == NULL)
    h_error("slot list does not show the slots: %s", out);
  free(out);

  /* ---- stats ------------------------------------------------------------------------------ */
  json_t *stats = CTL_JSON("stats");
  json_t *daemon = json_object_get(stats, "daemon");
  need(stats, "stats", "daemon", JSON_OBJECT);
  need(daemon, "stats.daemon", "xruns", JSON_INTEGER);
  need(daemon, "stats.daemon", "rt_cycle_ns_max", JSON_INTEGER);
  need(daemon, "stats.daemon", "rt_cycle_ns_avg", JSON_INTEGER);
  const char *slot_fields[] = {"underruns",      "underrun_frames",     "skipped_frames",
                               "overruns",       "nonfinite_samples",   "restarts",
                               "latency_frames", "headroom_min_frames", "cycles"};
  json_array_foreach(json_object_get(stats, "slots"), k, e) {
    need(e, "stats slot", "name", JSON_STRING);
    for (size_t f = 0; f < sizeof(slot_fields) / sizeof(slot_fields[0]); f++)
      need(e, "stats slot", slot_fields[f], JSON_INTEGER);
  }
  if (json_array_size(json_object_get(stats, "slots")) != 3)
    h_error("stats --json lists %zu slots, want 3",
            json_array_size(json_object_get(stats, "slots")));
  h_log("stats: daemon xruns %lld, rt_cycle_ns_max %lld, rt_cycle_ns_avg %lld",
        (long long)h_int(daemon, "xruns"), (long long)h_int(daemon, "rt_cycle_ns_max"),
        (long long)h_int(daemon, "rt_cycle_ns_avg"));
  json_decref(stats);
  stats = CTL_JSON("stats", "ctl1");
  if (json_array_size(json_object_get(stats, "slots")) != 1 ||
      strcmp(h_str(json_array_get(json_object_get(stats, "slots"), 0), "name"), "ctl1") != 0)
    h_error("stats ctl1 --json: %s", json_dumps(stats, JSON_COMPACT));
  json_decref(stats);
  H_CHECK(CTL(&out, "stats") == 0, "stats");
  free(out);

  /* ---- restart and remove --------------------------------------------------------------- */
  json_int_t pid = h_int(s1, "pid");
  json_decref(s1);
  H_CHECK(CTL(NULL, "slot", "restart", "ctl1") == 0, "slot restart");
  s1 = wait_running("ctl1", pid);
  h_log("ctl1 restarted: pid %lld -> %lld, restarts %lld", (long long)pid,
        (long long)h_int(s1, "pid"), (long long)h_int(s1, "restarts"));
  if (h_int(s1, "restarts") != 1 || h_int(s1, "latency_frames") != 1000)
    h_error("after restart: %s", json_dumps(s1, JSON_COMPACT));
  json_decref(s1);

  H_CHECK(CTL(NULL, "slot", "remove", "ctl2") == 0, "slot remove");
  list = CTL_JSON("slot", "list");
  if (find(json_object_get(list, "slots"), "ctl2") != NULL)
    h_error("ctl2 still listed after slot remove");
  json_decref(list);

  /* ---- exit status 1: the daemon said no ------------------------------------------------- */
  H_CHECK(CTL(NULL, "slot", "remove", "nosuch") == 1, "remove of a missing slot exits 1");
  H_CHECK(CTL(NULL, "slot", "add", "ctl1", "--plugin", "passthrough") == 1,
          "adding an existing slot exits 1");
  H_CHECK(CTL(NULL, "slot", "add", "ctl9", "--plugin", "no-such-plugin") == 1,
          "an unknown plugin exits 1");
  H_CHECK(CTL(NULL, "stats", "nosuch") == 1, "stats of a missing slot exits 1");

  /* ---- exit status 2: usage ---------------------------------------------------------------- */
  H_CHECK(CTL(NULL, "frobnicate") == 2, "an unknown command exits 2");
  H_CHECK(CTL(NULL, "slot", "add") == 2, "slot add without a name exits 2");
  H_CHECK(CTL(NULL, "slot", "add", "x", "--plugin", "gain", "--inputs", "many") == 2,
          "a non-numeric --inputs exits 2");
  H_CHECK(CTL(NULL, "slot", "add", "x", "--bogus-option") == 2, "an unknown option exits 2");

  /* ---- exit status 3: nobody there -------------------------------------------------------- */
  char nowhere[512];
  snprintf(nowhere, sizeof(nowhere), "%s/nothing-here.sock", h_tmpdir());
  const char *no_daemon[] = {RWT_RUNWAYCTL, "--socket", nowhere, "status", NULL};
  char *text;
  int code_st = h_run_capture(no_daemon, NULL, NULL, ctl_log, 15000, &text);
  free(text);
  H_CHECK(WIFEXITED(code_st) && WEXITSTATUS(code_st) == 3, "no socket file: exit %d, want 3",
          WIFEXITED(code_st) ? WEXITSTATUS(code_st) : -1);
  /* A socket file nobody listens on (bound, never listening). */
  char dead[512];
  snprintf(dead, sizeof(dead), "%s/dead.sock", h_tmpdir());
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  H_CHECK(strlen(dead) < sizeof(addr.sun_path), "socket path too long");
  memcpy(addr.sun_path, dead, strlen(dead) + 1);
  H_CHECK(bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "bind: %s", strerror(errno));
  const char *dead_daemon[] = {RWT_RUNWAYCTL, "--socket", dead, "--json", "slot", "list", NULL};
  code_st = h_run_capture(dead_daemon, NULL, NULL, ctl_log, 15000, &text);
  free(text);
  close(fd);
  H_CHECK(WIFEXITED(code_st) && WEXITSTATUS(code_st) == 3,
          "a socket nobody listens on: exit %d, want 3",
          WIFEXITED(code_st) ? WEXITSTATUS(code_st) : -1);
  h_log("runwayctl without a daemon: exit 3 (no socket file, and a dead socket)");

  /* ---- $RUNWAY_SOCKET ----------------------------------------------------------------------- */
  char env[600];
  snprintf(env, sizeof(env), "RUNWAY_SOCKET=%s", d.socket);
  const char *set[] = {env, NULL};
  H_CHECK(ctl(NULL, true, set, (const char *const[]){"status", NULL}) == 0,
          "status with $RUNWAY_SOCKET");

  H_CHECK(h_proc_alive(&d.proc), "runwayd died");
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
