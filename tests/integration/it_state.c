/*
 * it_state: a slot's parameters and state survive a SIGKILL of its worker
 * and a restart of runwayd, and state files carry them between slots.
 *
 * The state is made audible with a `delay` slot (1 in, 1 out, L = LAT) set to
 * mix 1, feedback 0 and a non-default time_ms (ECHO_MS; the default is
 * 250): no dry signal, one echo, so an impulse at frame f comes out exactly
 * once, at f + L + ECHO_MS * rate / 1000, with its exact value.
 *
 *   1. d1 set up, the echo checked; state.save d1 -> file (format, plugin,
 *      params checked in the file).
 *   2. SIGKILL of d1's worker: once the slot runs again, the echo is at the
 *      same frame offset, exactly.
 *   3. runwayd stopped (SIGTERM, exit 0) and a new runwayd started on the same
 *      --state-dir: d1 comes back by itself with the same latency, its
 *      parameters (param.get) and its echo.
 *   4. state.load of the saved file into a fresh delay slot d2 (default
 *      parameters): the same parameters, the same echo.
 *   5. A gain slot's saved state loaded into d2 is refused (invalid_argument)
 *      and changes nothing; a missing file is not_found. Loaded into a fresh
 *      gain slot it sounds as saved (-7 dB, exactly), although the plugin's
 *      own copy of its parameters in the file lags the param.set before it:
 *      the file's params win.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define LAT 2400
#define ECHO_MS 100
#define ECHO (ECHO_MS * RATE / 1000)
#define TIME_DEFAULT 250.0

struct ctx {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  struct h_probe *p;
  uint64_t checked_to[2]; /* per sink port: output checked up to here */
};

static const char *port_of(json_t *slot, const char *dir) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), 0));
}

static double param_get(struct h_conn *c, const char *slot, const char *param) {
  json_t *r = h_call(c, "param.get", json_pack("{s:s, s:s}", "name", slot, "param", param));
  json_t *v = json_object_get(r, "value");
  H_CHECK(json_is_number(v), "param.get %s %s: no value", slot, param);
  double x = json_number_value(v);
  json_decref(r);
  return x;
}

static void param_set(struct h_conn *c, const char *slot, const char *param, double value) {
  json_decref(h_call(c, "param.set",
                     json_pack("{s:s, s:s, s:f}", "name", slot, "param", param, "value", value)));
}

static void expect_params(struct h_conn *c, const char *slot, double time_ms, double mix,
                          double feedback, const char *when) {
  double t = param_get(c, slot, "time_ms"), m = param_get(c, slot, "mix"),
         f = param_get(c, slot, "feedback");
  h_log("%s %s: time_ms %g, mix %g, feedback %g", slot, when, t, m, f);
  /* Values travel as floats: 0.3 comes back as 0.30000001. */
  if (fabs(t - time_ms) > 1e-5 || fabs(m - mix) > 1e-6 || fabs(f - feedback) > 1e-6)
    h_error("%s %s: parameters time_ms %g mix %g feedback %g, want %g %g %g", slot, when, t, m, f,
            time_ms, mix, feedback);
}

/* Connects probe output `out` -> slot -> probe input `in`. */
static json_t *wire(struct ctx *x, const char *slot, unsigned out, unsigned in) {
  json_t *s = h_slot(&x->c, slot);
  H_CHECK(s != NULL, "no slot %s", slot);
  h_connect(x->p, h_probe_out(x->p, out), port_of(s, "inputs"));
  h_connect(x->p, port_of(s, "outputs"), h_probe_in(x->p, in));
  return s;
}

/*
 * Six impulses into probe output `out`, starting far enough ahead that any
 * parameter change sent before has landed and finished its glide (lead);
 * each must come out of probe input `in` exactly once, exactly `delay`
 * frames later, scaled by exactly `gain`, and nothing else may come out
 * there since the last check. A train that a disturbance of the graph or an
 * underrun of `slot` spoiled is sent again (h_measure).
 */
static void train_check(struct ctx *x, const char *slot, unsigned out, unsigned in, uint32_t delay,
                        float gain, uint32_t lead, const char *label) {
  struct h_path path = {.out = out,
                        .in = in,
                        .delay = delay,
                        .gain = gain,
                        .slots = {slot},
                        .checked_to = x->checked_to[in]};
  struct h_train train = {.gap = 1500, .lead = lead};
  snprintf(path.label, sizeof(path.label), "%s", label);
  h_measure(x->p, &x->c, &path, 1, &train);
  x->checked_to[in] = path.checked_to;
}

/* The delay slot's echo: L + ECHO frames after each impulse, at exactly its value. */
static void echo_check(struct ctx *x, const char *slot, unsigned out, unsigned in,
                       const char *label) {
  train_check(x, slot, out, in, LAT + ECHO, 1.0f, LAT + 2 * PERIOD + RATE / 20 + 1200, label);
}

/* A gain slot: L frames after each impulse, at exactly `gain`. */
static void gain_check(struct ctx *x, const char *slot, unsigned out, unsigned in, float gain,
                       const char *label) {
  train_check(x, slot, out, in, LAT, gain, LAT + 2 * PERIOD + RATE / 50 + 1200, label);
}

static void check_state_file(const char *path, const char *plugin, double time_ms) {
  json_error_t jerr;
  json_t *doc = json_load_file(path, 0, &jerr);
  H_CHECK(doc != NULL, "state file %s is not JSON: %s", path, jerr.text);
  const char *format = h_str(doc, "format"), *pl = h_str(doc, "plugin");
  json_t *params = json_object_get(doc, "params");
  char *text = json_dumps(doc, JSON_COMPACT);
  h_log("state file %s: %s", path, text);
  if (format == NULL || strcmp(format, "runway-state") != 0 || h_int(doc, "version") != 1 ||
      pl == NULL || strcmp(pl, plugin) != 0 || !json_is_object(params))
    h_error("state file %s: not a runway-state v1 file of plugin %s: %s", path, plugin, text);
  if (time_ms > 0 && json_number_value(json_object_get(params, "time_ms")) != time_ms)
    h_error("state file %s: time_ms is not %g: %s", path, time_ms, text);
  free(text);
  json_decref(doc);
}

static void start(struct ctx *x, const char *state_dir) {
  const char *args[] = {"--state-dir", state_dir, NULL};
  h_daemon_start(&x->d, &x->jack, state_dir ? args : NULL, NULL);
  H_CHECK(h_conn_open(&x->c, x->d.socket) == 0, "connect to runwayd");
}

static void stop(struct ctx *x) {
  char buf[64];
  h_conn_close(&x->c);
  int st = h_daemon_stop(&x->d);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(st, buf, sizeof(buf)));
}

int main(void) {
  struct ctx x;
  char saved[PATH_MAX], gain_file[PATH_MAX], state_dir[PATH_MAX];
  memset(&x, 0, sizeof(x));
  h_init("state", 85);
  snprintf(saved, sizeof(saved), "%s/d1-state.json", h_tmpdir());
  snprintf(gain_file, sizeof(gain_file), "%s/g1-state.json", h_tmpdir());

  h_jack_start(&x.jack, RATE, PERIOD);
  start(&x, NULL);
  snprintf(state_dir, sizeof(state_dir), "%s", x.d.state_dir);
  x.p = h_probe_open(&x.jack, 2, false, 2, 0, 0);
  h_probe_path_latency(x.p, LAT + ECHO);

  /* 1. d1 with an audible, non-default state. */
  json_decref(h_add_slot(&x.c, "d1",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "delay", "inputs", 1,
                                   "outputs", 1, "latency_frames", LAT),
                         10000));
  expect_params(&x.c, "d1", TIME_DEFAULT, 0.5, 0.3, "as added (defaults)");
  param_set(&x.c, "d1", "mix", 1);
  param_set(&x.c, "d1", "feedback", 0);
  param_set(&x.c, "d1", "time_ms", ECHO_MS);
  json_t *s = wire(&x, "d1", 0, 0);
  json_int_t pid = h_int(s, "pid");
  json_decref(s);
  echo_check(&x, "d1", 0, 0, "d1 set up");

  json_t *r = h_call(&x.c, "state.save", json_pack("{s:s, s:s}", "name", "d1", "file", saved));
  json_decref(r);
  check_state_file(saved, "delay", ECHO_MS);

  /* 2. SIGKILL of the worker. */
  uint64_t t0 = h_now_ms();
  H_CHECK(kill((pid_t)pid, SIGKILL) == 0, "kill the worker of d1 (pid %lld)", (long long)pid);
  s = h_wait_slot(&x.c, "d1", "running", pid, 10000);
  h_log("d1: SIGKILL -> running again (pid %lld -> %lld) in %llu ms", (long long)pid,
        (long long)h_int(s, "pid"), (unsigned long long)(h_now_ms() - t0));
  json_decref(s);
  expect_params(&x.c, "d1", ECHO_MS, 1, 0, "after SIGKILL");
  echo_check(&x, "d1", 0, 0, "d1 after SIGKILL of its worker");

  /* 3. A new runwayd on the same state directory. */
  stop(&x);
  start(&x, state_dir);
  s = h_wait_slot(&x.c, "d1", "running", 0, 10000);
  if (h_int(s, "latency_frames") != LAT)
    h_error("d1 after the daemon restart: latency_frames %lld, want %d",
            (long long)h_int(s, "latency_frames"), LAT);
  json_decref(s);
  expect_params(&x.c, "d1", ECHO_MS, 1, 0, "after a restart of runwayd");
  json_decref(wire(&x, "d1", 0, 0));
  echo_check(&x, "d1", 0, 0, "d1 after a restart of runwayd");

  /* 4. The saved state into a fresh delay slot. */
  json_decref(h_add_slot(&x.c, "d2",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "delay", "inputs", 1,
                                   "outputs", 1, "latency_frames", LAT),
                         10000));
  expect_params(&x.c, "d2", TIME_DEFAULT, 0.5, 0.3, "as added (defaults)");
  r = h_call(&x.c, "state.load", json_pack("{s:s, s:s}", "name", "d2", "file", saved));
  json_decref(r);
  expect_params(&x.c, "d2", ECHO_MS, 1, 0, "after state.load of d1's file");
  json_decref(wire(&x, "d2", 1, 1));
  echo_check(&x, "d2", 1, 1, "d2 after state.load of d1's file");

  /* 5. A gain slot's state does not fit a delay slot; a missing file is not found. */
  json_decref(h_add_slot(&x.c, "g1",
                         json_pack("{s:s, s:i, s:i}", "plugin", "gain", "inputs", 1, "outputs", 1),
                         10000));
  param_set(&x.c, "g1", "gain_db", -7);
  json_decref(h_call(&x.c, "state.save", json_pack("{s:s, s:s}", "name", "g1", "file", gain_file)));
  check_state_file(gain_file, "gain", 0);
  r = h_call_error(&x.c, "state.load", json_pack("{s:s, s:s}", "name", "d2", "file", gain_file),
                   "invalid_argument");
  h_log("state.load of a gain file into delay slot d2 -> invalid_argument (\"%s\")",
        h_str(json_object_get(r, "error"), "message"));
  json_decref(r);
  char missing[PATH_MAX];
  snprintf(missing, sizeof(missing), "%s/no-such-state.json", h_tmpdir());
  json_decref(h_call_error(&x.c, "state.load",
                           json_pack("{s:s, s:s}", "name", "d2", "file", missing), "not_found"));
  expect_params(&x.c, "d2", ECHO_MS, 1, 0, "after the refused loads");
  echo_check(&x, "d2", 1, 1, "d2 after the refused loads");

  /*
   * The gain file was saved right after the param.set, before the worker had
   * applied it: the plugin's own copy of its parameters in the file may lag,
   * and the file's params win. A fresh gain slot loading it sounds -7 dB.
   */
  s = h_add_slot(&x.c, "g2",
                 json_pack("{s:s, s:i, s:i, s:i}", "plugin", "gain", "inputs", 1, "outputs", 1,
                           "latency_frames", LAT),
                 10000);
  json_decref(s);
  json_decref(h_call(&x.c, "state.load", json_pack("{s:s, s:s}", "name", "g2", "file", gain_file)));
  double g = param_get(&x.c, "g2", "gain_db");
  h_log("g2 after state.load of g1's file: gain_db %g", g);
  if (fabs(g + 7) > 1e-6)
    h_error("g2 after state.load of g1's file: gain_db %g, want -7", g);
  /* d2 leaves probe input 1 to g2 from here (removing it unregisters its ports). */
  json_decref(h_call(&x.c, "slot.remove", json_pack("{s:s}", "name", "d2")));
  json_decref(wire(&x, "g2", 1, 1));
  gain_check(&x, "g2", 1, 1, powf(10.0f, -7.0f / 20.0f), "g2 after state.load of g1's file");

  h_probe_close(x.p);
  stop(&x);
  h_jack_stop(&x.jack);
  h_pass();
}
