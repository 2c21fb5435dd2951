/*
 * it_reconnect: the JACK server goes away and comes back. runwayd keeps its
 * slots, answers the control socket the whole time (connecting happens off
 * the control loop, and a server that is still shutting down can make
 * jack_client_open wait), reconnects by itself, and the slot runs again with
 * its latency kept in time (50 ms at the new rate) and exact. Then the period
 * changes on the running server (jack_bufsize; on PipeWire the forced
 * quantum): the slots are rebuilt, L given in ms stays, L given in frames is
 * raised to one period, both exact.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define SLOT "pt"

static json_t *status(struct h_conn *c) { return h_call(c, "status", json_object()); }

/* Impulses through the slot come out exactly L later. */
static void check_exact(struct h_jack *j, struct h_conn *c, uint32_t latency, const char *when) {
  struct h_probe *p = h_probe_open(j, 1, false, 1, 0, 0);
  json_t *s = h_slot(c, SLOT);
  const char *in = h_slot_port(s, "inputs", 0), *out = h_slot_port(s, "outputs", 0);
  H_CHECK(in && out, "slot %s has no ports %s", SLOT, when);
  h_probe_path_latency(p, latency);
  h_connect(p, h_probe_out(p, 0), in);
  h_connect(p, out, h_probe_in(p, 0));
  json_decref(s);
  struct h_path path = {.out = 0, .in = 0, .delay = latency, .slots = {SLOT}};
  snprintf(path.label, sizeof(path.label), "%s, L=%u at %u Hz", when, latency, j->rate);
  if (!h_measure(p, c, &path, 1, NULL))
    h_error("%s: impulses not delayed by exactly L", path.label);
  h_probe_close(p);
}

static bool backend_disconnected(void *arg, char *seen, size_t len) {
  json_t *st = status(arg);
  const char *backend = h_str(st, "backend_state");
  bool down = backend != NULL && strcmp(backend, "disconnected") == 0;
  snprintf(seen, len, "backend_state %s", backend ? backend : "(none)");
  json_decref(st);
  return down;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[64];

  h_init("reconnect", 110);
  h_jack_start(&jack, 48000, 128);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  json_t *s = h_add_slot(&c, SLOT,
                         json_pack("{s:s, s:i, s:i, s:f}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_ms", 50.0),
                         10000);
  H_CHECK(h_int(s, "latency_frames") == 2400, "L at 48 kHz: %lld",
          (long long)h_int(s, "latency_frames"));
  json_decref(s);
  check_exact(&jack, &c, 2400, "before the server went away");

  /* The server goes away: the daemon says so, keeps the slot and stays responsive. */
  h_jack_stop(&jack);
  H_WAIT_UNTIL(backend_disconnected, &c, 10000, "runwayd to notice that the server went away");
  json_decref(h_wait_slot(&c, SLOT, "stopped", 0, 5000));
  /* Reconnection attempts run meanwhile; the control socket must not wait for them. */
  for (int i = 0; i < 20; i++) {
    uint64_t t0 = h_now_ms();
    json_decref(status(&c));
    uint64_t took = h_now_ms() - t0;
    if (took > 1000)
      h_error("status took %llu ms while the server was away", (unsigned long long)took);
    h_sleep_ms(100); /* paces the requests over two seconds of reconnection attempts */
  }

  /* It comes back at another rate and period: the slot runs again, L kept in time. */
  h_jack_restart(&jack, 44100, 256);
  json_t *back = h_wait_slot(&c, SLOT, "running", 0, 20000);
  H_CHECK(h_int(back, "latency_frames") == 2205, "L at 44.1 kHz: %lld, want 2205 (50 ms)",
          (long long)h_int(back, "latency_frames"));
  json_decref(back);
  json_t *st = status(&c);
  H_CHECK(h_int(st, "sample_rate") == 44100 && h_int(st, "period") == 256,
          "status says %lld Hz, %lld frames", (long long)h_int(st, "sample_rate"),
          (long long)h_int(st, "period"));
  json_decref(st);
  check_exact(&jack, &c, 2205, "after the server came back");

  /* The period changes on the running server: every slot gets a new generation. */
  json_t *small = h_add_slot(&c, "small",
                             json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                       "outputs", 1, "latency_frames", 300),
                             10000);
  json_int_t pt_pid = h_int(back = h_slot(&c, SLOT), "pid");
  json_decref(back);
  json_int_t small_pid = h_int(small, "pid");
  json_decref(small);
  h_server_set_period(&jack, 512);
  back = h_wait_slot(&c, SLOT, "running", pt_pid, 20000);
  H_CHECK(h_int(back, "latency_frames") == 2205, "L in ms after the period change: %lld",
          (long long)h_int(back, "latency_frames"));
  json_decref(back);
  back = h_wait_slot(&c, "small", "running", small_pid, 20000);
  H_CHECK(h_int(back, "latency_frames") == 512,
          "L of 300 frames is raised to the 512-frame period, not %lld",
          (long long)h_int(back, "latency_frames"));
  json_decref(back);
  check_exact(&jack, &c, 2205, "after the period changed to 512");

  h_conn_close(&c);
  int rc = h_daemon_stop(&d);
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(rc, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
