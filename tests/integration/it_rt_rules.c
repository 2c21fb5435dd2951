/*
 * it_rt_rules: runwayd's RT thread keeps the real-time rules under a busy
 * scenario. runwayd runs with librunway-rtcheck preloaded: every RT cycle is
 * bracketed by the checker's hooks, and any allocation, lock, sleep, blocking
 * call or I/O inside a cycle aborts runwayd on the spot.
 *
 * For a few seconds, at a 64-frame period: four slots (passthrough and gain
 * fed with impulses, synth played over MIDI from the probe, sine), audio and
 * MIDI flowing; a slot added and removed; a worker SIGKILLed and restarted by
 * the supervisor; a slot restarted on request; a worker SIGSTOPped for longer
 * than L (underruns, gap fades). Then SIGTERM: runwayd must exit 0 (not
 * abort), and the checker's report must show it saw more than 1000 RT cycles
 * and no violation.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#ifndef RWT_RTCHECK
#error "RWT_RTCHECK must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 64
#define L 2400 /* the default 50 ms */

static json_t *add(struct h_conn *c, const char *name, json_t *args) {
  json_t *s = h_add_slot(c, name, args, 10000);
  h_log("slot %s running (pid %lld)", name, (long long)h_int(s, "pid"));
  return s;
}

static const char *port_of(json_t *slot, const char *dir, size_t i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

static json_int_t stat_of(struct h_conn *c, const char *slot, const char *key) {
  return h_slot_stat(c, slot, key);
}

struct underran {
  struct h_conn *c;
  json_int_t before, now;
};

static bool pt_underran(void *arg, char *seen, size_t len) {
  struct underran *w = arg;
  w->now = stat_of(w->c, "pt", "underruns");
  snprintf(seen, len, "underruns %lld", (long long)w->now);
  return w->now > w->before;
}

struct played {
  struct h_conn *c;
  struct h_probe *p;
  uint64_t frame;
};

/* The probe has recorded up to the frame; each look asks for stats too (busy control plane). */
static bool played_out(void *arg, char *seen, size_t len) {
  struct played *w = arg;
  json_decref(h_call(w->c, "stats", NULL));
  uint64_t now = h_probe_cycle(w->p);
  snprintf(seen, len, "the probe at frame %llu of %llu", (unsigned long long)now,
           (unsigned long long)w->frame);
  return now >= w->frame;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[64], report[4200], preload[4200], report_env[4300];

  h_init("rt_rules", 85);
  snprintf(report, sizeof(report), "%s/rtcheck.report", h_tmpdir());
  snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", RWT_RTCHECK);
  snprintf(report_env, sizeof(report_env), "RUNWAY_RTCHECK_REPORT=%s", report);
  const char *env[] = {preload, report_env, NULL};

  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, env);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 2, true, 4, 0, 0);
  h_probe_count_only(p, 1);
  h_probe_count_only(p, 2);
  h_probe_count_only(p, 3);

  json_t *pt = add(
      &c, "pt", json_pack("{s:s, s:i, s:i}", "plugin", "passthrough", "inputs", 1, "outputs", 1));
  json_t *gn = add(&c, "gn", json_pack("{s:s}", "plugin", "gain"));
  json_t *sy = add(&c, "sy", json_pack("{s:s}", "plugin", "synth"));
  json_t *sn = add(&c, "sn", json_pack("{s:s}", "plugin", "sine"));
  h_connect(p, h_probe_out(p, 0), port_of(pt, "inputs", 0));
  h_connect(p, port_of(pt, "outputs", 0), h_probe_in(p, 0));
  h_connect(p, h_probe_out(p, 1), port_of(gn, "inputs", 0));
  h_connect(p, port_of(gn, "outputs", 0), h_probe_in(p, 1));
  h_connect(p, h_probe_midi(p), h_str(json_object_get(sy, "ports"), "midi"));
  h_connect(p, port_of(sy, "outputs", 0), h_probe_in(p, 2));
  h_connect(p, port_of(sn, "outputs", 0), h_probe_in(p, 3));
  json_int_t pt_pid = h_int(pt, "pid"), gn_pid = h_int(gn, "pid"), sy_pid = h_int(sy, "pid");
  json_decref(pt);
  json_decref(gn);
  json_decref(sy);
  json_decref(sn);

  /* Audio and MIDI for the whole scenario, in frame order. */
  uint64_t f = h_probe_now(p) + 2400, last = f;
  for (unsigned k = 0; k < 300; k++) {
    f += 1000 + (k * 31u) % 89u;
    h_probe_impulse(p, 0, f, 1.0f);
    h_probe_impulse(p, 1, f + 3, 0.5f);
    if (k % 4 == 0)
      h_probe_midi3(p, f + 11, 0x90, (uint8_t)(48 + k % 24), 100);
    if (k % 4 == 2)
      h_probe_midi3(p, f + 11, 0x80, (uint8_t)(48 + (k - 2) % 24), 0);
    last = f + 11;
  }
  /* The steps below are paced apart, so that the RT thread runs a while after each. */
  h_sleep_ms(300);

  /* A slot added and removed. */
  json_decref(add(&c, "tmp", json_pack("{s:s}", "plugin", "passthrough")));
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", "tmp")));
  h_log("slot tmp removed");
  h_sleep_ms(200);

  /* A worker killed: the supervisor restarts it. */
  H_CHECK(kill((pid_t)gn_pid, SIGKILL) == 0, "kill gain worker");
  json_decref(h_wait_slot(&c, "gn", "running", gn_pid, 10000));
  h_log("gain worker killed and restarted");
  h_sleep_ms(200);

  /* A restart on request. */
  json_decref(h_call(&c, "slot.restart", json_pack("{s:s}", "name", "sy")));
  json_decref(h_wait_slot(&c, "sy", "running", sy_pid, 10000));
  h_log("synth restarted on request");
  h_sleep_ms(200);

  /* A worker stopped for longer than L: underruns, fades. */
  json_int_t u0 = stat_of(&c, "pt", "underruns");
  H_CHECK(kill((pid_t)pt_pid, SIGSTOP) == 0, "SIGSTOP");
  h_sleep_ms(200); /* the length of the stop */
  H_CHECK(kill((pid_t)pt_pid, SIGCONT) == 0, "SIGCONT");
  struct underran w = {&c, u0, 0};
  if (!h_wait_for(pt_underran, &w, 5000))
    h_error("a 200 ms stop (L = 50 ms) caused no underrun");
  h_log("passthrough worker stopped for 200 ms: underruns %lld -> %lld", (long long)u0,
        (long long)w.now);

  /* Let the rest of the audio and MIDI play, with stats polled meanwhile. */
  struct played pl = {&c, p, last + L + 2 * PERIOD};
  H_WAIT_UNTIL(played_out, &pl, 20000, "the rest of the audio and MIDI to play");
  H_CHECK(h_proc_alive(&d.proc), "runwayd died (aborted by the RT checker?)");

  h_log("at the sink: passthrough %llu, gain %llu, synth %llu, sine %llu non-zero samples",
        (unsigned long long)h_probe_nonzero(p, 0), (unsigned long long)h_probe_nonzero(p, 1),
        (unsigned long long)h_probe_nonzero(p, 2), (unsigned long long)h_probe_nonzero(p, 3));
  if (h_probe_nonzero(p, 0) < 100 || h_probe_nonzero(p, 1) < 100)
    h_error("the impulses did not flow through passthrough and gain");
  if (h_probe_nonzero(p, 2) < 1000)
    h_error("the synth played nothing (MIDI did not flow?)");
  if (h_probe_nonzero(p, 3) < 1000)
    h_error("the sine played nothing");

  json_t *ds = h_daemon_stats(&c);
  h_log("daemon: cycles %lld, rt_cycle_ns_max %lld, rt_cycle_ns_avg %lld, xruns %lld",
        (long long)h_int(ds, "cycles"), (long long)h_int(ds, "rt_cycle_ns_max"),
        (long long)h_int(ds, "rt_cycle_ns_avg"), (long long)h_int(ds, "xruns"));
  json_decref(ds);
  struct h_xruns xr;
  h_jack_xruns(&jack, 0, d.name, h_probe_client(p), &xr);
  h_log("jackd log: %u xrun(s), %u late driver wake-up(s); runwayd's callback overran in %u, "
        "was woken but not yet running in %u (the probe's source late too in %u)",
        xr.events, xr.driver_late, xr.client_running, xr.client_waiting, xr.upstream_late);

  h_probe_close(p);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  char *text = h_file_read(report);
  h_log("rtcheck report: %s", text ? text : "(none)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit 0 (%s): an RT rule was broken, see the report and its log",
            h_status_str(status, buf, sizeof(buf)));
  if (text == NULL) {
    h_error("no rtcheck report: the hooks were not active (engine did not find "
            "runway_rtcheck_enter/leave?)");
  } else {
    const char *cy = strstr(text, "cycles "), *vi = strstr(text, "violations "),
               *un = strstr(text, "unbalanced "), *ma = strstr(text, "mallocs ");
    unsigned long long cycles = cy ? strtoull(cy + 7, NULL, 10) : 0;
    unsigned long long violations = vi ? strtoull(vi + 11, NULL, 10) : 1;
    unsigned long long unbalanced = un ? strtoull(un + 11, NULL, 10) : 1;
    unsigned long long mallocs = ma ? strtoull(ma + 8, NULL, 10) : 0;
    if (mallocs == 0)
      h_error("the checker saw no malloc in runwayd: its interposers were not in effect");
    if (cycles <= 1000)
      h_error("the checker saw only %llu RT cycles", cycles);
    if (violations != 0)
      h_error("RT rule violations: %s", text);
    if (unbalanced != 0)
      h_error("enter/leave hooks unbalanced %llu times", unbalanced);
  }
  free(text);
  h_jack_stop(&jack);
  h_pass();
}
