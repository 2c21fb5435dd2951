/*
 * it_external: a slot added with --external waits for a worker started by
 * someone else. example-gain (worker/examples, the SDK's pull API; at its
 * default 0 dB it multiplies by exactly 1.0f, so it is bit exact) is started
 * by the test with RUNWAY_SOCKET and RUNWAY_SLOT and no inherited segment: it
 * attaches over the control socket (worker.attach, the segment passed with
 * SCM_RIGHTS). Then: the slot runs with the worker's pid, impulses come out
 * exactly L later; a second worker is refused while one is attached; when
 * the worker is SIGKILLed the slot goes back to waiting (starting, no pid),
 * and a new worker attaches and plays exactly again; a worker that stops on
 * SIGTERM exits 0 and the slot waits again.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#ifndef RWT_EXAMPLE_GAIN
#error "RWT_EXAMPLE_GAIN must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128
#define L 1800

static struct h_daemon d;
static char env_socket[600];

static void start_worker(struct h_proc *w, const char *log_name) {
  char log[4200];
  snprintf(log, sizeof(log), "%s/%s.log", h_tmpdir(), log_name);
  const char *argv[] = {RWT_EXAMPLE_GAIN, NULL};
  const char *set[] = {env_socket, "RUNWAY_SLOT=ext", NULL};
  const char *unset[] = {"RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD", NULL};
  h_spawn(w, "example-gain", argv, set, unset, log);
}

struct waiting {
  struct h_conn *c;
  json_t *slot;
};

static bool slot_waiting(void *arg, char *seen, size_t len) {
  struct waiting *w = arg;
  json_t *s = h_slot(w->c, "ext");
  const char *state = h_str(s, "state");
  if (state != NULL && strcmp(state, "starting") == 0 && json_is_null(json_object_get(s, "pid"))) {
    w->slot = s;
    return true;
  }
  char *text = s ? json_dumps(s, JSON_COMPACT) : NULL;
  snprintf(seen, len, "%s", text ? text : "no slot ext");
  free(text);
  json_decref(s);
  return false;
}

static json_t *wait_waiting(struct h_conn *c) {
  struct waiting w = {c, NULL};
  H_WAIT_UNTIL(slot_waiting, &w, 10000, "slot ext to wait for a worker again (starting, no pid)");
  return w.slot;
}

/* Impulses through the slot come out exactly L later (measured again when disturbed). */
static void impulses(struct h_probe *p, struct h_conn *c, uint64_t *checked, const char *label) {
  struct h_path path = {.out = 0, .in = 0, .delay = L, .slots = {"ext"}, .checked_to = *checked};
  snprintf(path.label, sizeof(path.label), "%s", label);
  struct h_train train = {.count = 10, .gap = 900};
  if (!h_measure(p, c, &path, 1, &train))
    h_error("%s: impulses not exactly L later", label);
  *checked = path.checked_to;
}

int main(void) {
  struct h_jack jack;
  struct h_conn c;
  struct h_proc w1, w2, w3, w4;
  char buf[64];

  h_init("external", 80);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  snprintf(env_socket, sizeof(env_socket), "RUNWAY_SOCKET=%s", d.socket);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);

  json_t *r = h_call(&c, "slot.add",
                     json_pack("{s:s, s:b, s:i, s:i, s:i}", "name", "ext", "external", 1, "inputs",
                               1, "outputs", 1, "latency_frames", L));
  json_t *ports = json_object_get(r, "ports");
  h_probe_path_latency(p, L);
  h_connect(p, h_probe_out(p, 0),
            json_string_value(json_array_get(json_object_get(ports, "inputs"), 0)));
  char out_port[320];
  snprintf(out_port, sizeof(out_port), "%s",
           json_string_value(json_array_get(json_object_get(ports, "outputs"), 0)));
  h_connect(p, out_port, h_probe_in(p, 0));
  json_decref(r);
  json_decref(wait_waiting(&c));
  h_log("slot ext added: starting, no worker");

  /* Nothing attached: the slot plays silence, and reports its latency already. */
  uint32_t cmin, cmax;
  if (!h_wait_port_latency(p, out_port, false, L, 5000, &cmin, &cmax))
    h_error("capture latency of %s is %u-%u, want %u", out_port, cmin, cmax, L);

  /* ---- first worker ----------------------------------------------------------------- */
  uint64_t t0 = h_now_ms();
  start_worker(&w1, "example-gain-1");
  json_t *s = h_wait_slot(&c, "ext", "running", 0, 10000);
  h_log("example-gain pid %d attached: running in %llu ms, slot pid %lld", (int)w1.pid,
        (unsigned long long)(h_now_ms() - t0), (long long)h_int(s, "pid"));
  if (h_int(s, "pid") != w1.pid)
    h_error("slot pid %lld is not the attached worker's %d", (long long)h_int(s, "pid"),
            (int)w1.pid);
  json_decref(s);
  uint64_t checked = 0;
  impulses(p, &c, &checked, "first worker");

  /* A second worker is refused while one is attached. */
  start_worker(&w2, "example-gain-busy");
  H_CHECK(h_proc_wait(&w2, 10000), "a second worker did not give up");
  if (!WIFEXITED(w2.status) || WEXITSTATUS(w2.status) == 0)
    h_error("a second worker attached to a busy slot (%s)",
            h_status_str(w2.status, buf, sizeof(buf)));
  s = h_slot(&c, "ext");
  if (h_int(s, "pid") != w1.pid || strcmp(h_str(s, "state"), "running") != 0)
    h_error("the refused worker disturbed the slot: %s", json_dumps(s, JSON_COMPACT));
  json_decref(s);
  h_log("a second worker was refused (%s)", h_status_str(w2.status, buf, sizeof(buf)));

  /* ---- SIGKILL: back to waiting, then a new worker ---------------------------------- */
  t0 = h_now_ms();
  kill(w1.pid, SIGKILL);
  h_proc_wait(&w1, 5000);
  s = wait_waiting(&c);
  h_log("worker killed: slot waiting again after %llu ms (last_error \"%s\")",
        (unsigned long long)(h_now_ms() - t0),
        h_str(s, "last_error") ? h_str(s, "last_error") : "");
  json_decref(s);
  {
    /* No worker: impulses go in, nothing at all may come out. */
    const unsigned port0 = 0;
    uint64_t last = h_impulse_train(p, &port0, 1, 10, 900, 2400);
    h_probe_wait_frame(p, last + L + 2 * PERIOD, 10000);
    if (!h_check_port(p, 0, NULL, 0, checked, last + L + 1, "no worker attached (silence)", NULL))
      h_error("the slot played something while no worker was attached");
    checked = last + L + 1;
  }

  t0 = h_now_ms();
  start_worker(&w3, "example-gain-3");
  s = h_wait_slot(&c, "ext", "running", 0, 10000);
  h_log("a new example-gain pid %d attached in %llu ms", (int)w3.pid,
        (unsigned long long)(h_now_ms() - t0));
  if (h_int(s, "pid") != w3.pid)
    h_error("slot pid %lld is not the new worker's %d", (long long)h_int(s, "pid"), (int)w3.pid);
  json_decref(s);
  impulses(p, &c, &checked, "second worker");

  /* ---- SIGTERM: the worker stops cleanly, the slot waits again ---------------------------- */
  int st = h_proc_stop(&w3, SIGTERM, 5000);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    h_error("example-gain did not exit 0 on SIGTERM: %s", h_status_str(st, buf, sizeof(buf)));
  json_decref(wait_waiting(&c));
  start_worker(&w4, "example-gain-4");
  json_decref(h_wait_slot(&c, "ext", "running", 0, 10000));
  impulses(p, &c, &checked, "third worker");

  /* runwayd stops: the attached worker notices and exits. */
  h_probe_close(p);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  if (!h_proc_wait(&w4, 5000))
    h_error("the attached worker did not exit when runwayd stopped");
  else
    h_log("attached worker exited after runwayd stopped: %s",
          h_status_str(w4.status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
