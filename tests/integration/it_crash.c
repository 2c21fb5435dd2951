/*
 * it_crash: a worker that dies takes nothing with it. The worker of a
 * passthrough slot is SIGKILLed five times; each time the slot must come
 * back by itself with a new worker process, the latency must still be exact
 * (impulses L later, nothing anywhere else, no leftovers of the dead
 * generation), `restarts` must count every restart, runwayd must stay alive
 * and answering, and JACK must report no xrun caused by runwayd.
 *
 * Xruns: the probe's own xrun callback and runwayd's stats count every xrun
 * of the server. On a loaded VM the dummy driver's timer itself slips now and
 * then, or real-time threads wait for a CPU; jackd logs which clients had not
 * finished their cycle and in which state, so xruns are attributed from its
 * log (h_jack_xruns): one where runwayd's callback was still running when the
 * next cycle began fails the test when runwayd's RT thread has real-time
 * scheduling and its longest cycle (rt_cycle_ns_max) reached a period: its
 * callback overran. Without real-time scheduling any process may preempt the
 * callback, and a callback that never took a period started late; those
 * xruns, and all others, are reported.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define L 1200
#define KILLS 5

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[64];

  h_init("crash", 80);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);

  json_t *s = h_add_slot(&c, "cr",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000);
  json_int_t pid = h_int(s, "pid");
  h_probe_path_latency(p, L);
  json_t *ports = json_object_get(s, "ports");
  h_connect(p, h_probe_out(p, 0),
            json_string_value(json_array_get(json_object_get(ports, "inputs"), 0)));
  h_connect(p, json_string_value(json_array_get(json_object_get(ports, "outputs"), 0)),
            h_probe_in(p, 0));
  json_decref(s);

  struct h_path path = {.out = 0, .in = 0, .delay = L, .slots = {"cr"}};
  struct h_train eight = {.count = 8, .gap = 900}, four = {.count = 4, .gap = 900};
  snprintf(path.label, sizeof(path.label), "before any kill");
  H_CHECK(h_measure(p, &c, &path, 1, &eight), "impulses before any kill");

  /* Set-up is over: xruns from here on count. */
  size_t log_from = h_file_size(jack.proc.log);
  uint64_t probe_xruns0 = h_probe_xruns(p);
  json_t *ds = h_daemon_stats(&c);
  json_int_t daemon_xruns0 = h_int(ds, "xruns");
  json_decref(ds);

  for (int i = 1; i <= KILLS; i++) {
    uint64_t t0 = h_now_ms();
    H_CHECK(kill((pid_t)pid, SIGKILL) == 0, "SIGKILL worker %lld", (long long)pid);
    s = h_wait_slot(&c, "cr", "running", pid, 10000);
    uint64_t dt = h_now_ms() - t0;
    json_int_t new_pid = h_int(s, "pid");
    h_log("kill %d: worker %lld -> %lld, running again in %llu ms, restarts %lld, generation %lld",
          i, (long long)pid, (long long)new_pid, (unsigned long long)dt,
          (long long)h_int(s, "restarts"), (long long)h_int(s, "generation"));
    H_CHECK(h_int(s, "restarts") == i, "restarts is %lld after %d kills",
            (long long)h_int(s, "restarts"), i);
    H_CHECK(h_int(s, "latency_frames") == L, "latency changed to %lld",
            (long long)h_int(s, "latency_frames"));
    json_decref(s);
    pid = new_pid;

    H_CHECK(h_proc_alive(&d.proc), "runwayd died");
    json_t *st = h_call(&c, "status", NULL);
    H_CHECK(h_int(st, "pid") == d.proc.pid, "status answers for pid %lld",
            (long long)h_int(st, "pid"));
    json_decref(st);

    /*
     * Exact again: everything since the last check, the kill window included
     * (nothing of the dead generation may come out). Impulses the new
     * worker's first late blocks lost on a busy machine (underruns) are
     * measured again, never excused when misplaced.
     */
    snprintf(path.label, sizeof(path.label), "after kill %d", i);
    if (!h_measure(p, &c, &path, 1, &four))
      h_error("%s: output not exactly the impulses L later", path.label);
  }

  s = h_slot(&c, "cr");
  H_CHECK(h_int(s, "restarts") == KILLS, "restarts %lld", (long long)h_int(s, "restarts"));
  json_decref(s);
  json_t *st = h_slot_stats(&c, "cr");
  h_log("slot stats: restarts %lld, underruns %lld, underrun_frames %lld, skipped_frames %lld, "
        "cycles %lld",
        (long long)h_int(st, "restarts"), (long long)h_int(st, "underruns"),
        (long long)h_int(st, "underrun_frames"), (long long)h_int(st, "skipped_frames"),
        (long long)h_int(st, "cycles"));
  json_decref(st);

  /* Xruns since set-up. */
  ds = h_daemon_stats(&c);
  json_int_t daemon_xruns = h_int(ds, "xruns") - daemon_xruns0;
  json_int_t longest_ns = h_int(ds, "rt_cycle_ns_max");
  h_log("daemon: rt_cycle_ns_max %lld, rt_cycle_ns_avg %lld, cycles %lld",
        (long long)h_int(ds, "rt_cycle_ns_max"), (long long)h_int(ds, "rt_cycle_ns_avg"),
        (long long)h_int(ds, "cycles"));
  json_decref(ds);
  uint64_t probe_xruns = h_probe_xruns(p) - probe_xruns0;
  struct h_xruns xr;
  h_jack_xruns(&jack, log_from, d.name, h_probe_client(p), &xr);
  h_log("xruns after set-up: probe saw %llu, runwayd counted %lld; jackd log: %u xrun(s), %u "
        "late driver wake-up(s); runwayd's callback overran in %u, was woken but not yet "
        "running in %u (the probe late too in %u)",
        (unsigned long long)probe_xruns, (long long)daemon_xruns, xr.events, xr.driver_late,
        xr.client_running, xr.client_waiting, xr.upstream_late);
  /*
   * "Running" at the next cycle is runwayd's own overrun when its callback
   * took a period or more: runwayd times every cycle (rt_cycle_ns_max). A
   * callback that never took that long was late to start, not slow: JACK
   * names it because it was woken and had not finished when the driver's
   * next cycle began. And where the machine refuses real-time scheduling
   * (jackd --no-realtime, CI's virtual machines), any process may preempt it
   * mid-callback: JACK's log then names the scheduler, not runwayd.
   */
  const json_int_t period_ns = (json_int_t)PERIOD * 1000000000 / RATE;
  bool rt = h_proc_realtime(d.proc.pid);
  if (xr.client_running > 0 && rt && longest_ns >= period_ns)
    h_error("JACK reports %u xrun(s) caused by runwayd: its callback was still running when the "
            "next cycle began (\"client = %s was not finished, state = Running\"), and its "
            "longest cycle took %lld ns, a period is %lld ns",
            xr.client_running, d.name, (long long)longest_ns, (long long)period_ns);
  else if (xr.client_running > 0)
    h_log("note: JACK names runwayd's callback running at %u xrun(s), but %s: the xrun was not "
          "its callback's doing",
          xr.client_running,
          rt ? "its longest cycle was shorter than a period (it started late)"
             : "no thread of runwayd has real-time scheduling here, so any process may preempt "
               "its callback");
  else if (probe_xruns > 0 || daemon_xruns > 0)
    h_log("note: %llu xrun(s), none caused by runwayd's callback (the machine did not run the "
          "graph's real-time threads in time)",
          (unsigned long long)probe_xruns);

  h_probe_close(p);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
