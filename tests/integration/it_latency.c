/*
 * it_latency: a slot delays its input by exactly L frames, L is what
 * slot.list says, and L is what the ports report to JACK; before and after a
 * `slot restart`, and after the worker was SIGKILLed.
 *
 * For each period (64, 128, 256) one JACK server and one runwayd host three
 * passthrough slots (1 in, 1 out) whose latency is given in frames, in ms,
 * left to the daemon's default (50 ms, or --latency-ms 20), or asked below
 * one period (L is then one period).
 * The probe's source outputs report a capture latency of SRC_LAT frames and
 * the sink inputs a playback latency of SINK_LAT, so the check covers the
 * "inputs' latency + L" rule, not just L alone.
 *
 * A measurement that a disturbance of the graph (an xrun, a run JACK started
 * late) or an underrun of a slot (its worker late on a busy machine) spoiled
 * is repeated; a sample out of place fails at once.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define SRC_LAT 100
#define SINK_LAT 30
#define N_SLOTS 3

struct lcase {
  const char *slot;
  int64_t frames; /* latency_frames, 0: not given */
  double ms;      /* latency_ms, 0: not given */
  uint32_t expect;
};

struct config {
  uint32_t period;
  const char *daemon_latency_ms; /* runwayd --latency-ms (the default for slots), or NULL */
  struct lcase cases[N_SLOTS];
};

static const struct config configs[] = {
    {64, "20", {{"f1000", 1000, 0, 1000}, {"dflt20", 0, 0, 960}, {"f200", 200, 0, 200}}},
    {128, NULL, {{"f2400", 2400, 0, 2400}, {"dflt", 0, 0, 2400}, {"ms7p5", 0, 7.5, 360}}},
    {256, NULL, {{"f4096", 4096, 0, 4096}, {"ms20", 0, 20.0, 960}, {"f100", 100, 0, 256}}},
};

struct run {
  const struct config *cfg;
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  struct h_probe *p;
  char in_port[N_SLOTS][320];
  char out_port[N_SLOTS][320];
  json_int_t pid[N_SLOTS];
  struct h_path path[N_SLOTS]; /* probe output i -> slot i -> probe input i */
};

static void check_port_latencies(struct run *r, const char *when) {
  for (unsigned i = 0; i < N_SLOTS; i++) {
    const struct lcase *lc = &r->cfg->cases[i];
    uint32_t src_min, src_max, snk_min, snk_max, cmin, cmax, pmin, pmax;
    h_port_latency(r->p, h_probe_out(r->p, i), false, &src_min, &src_max);
    h_port_latency(r->p, h_probe_in(r->p, i), true, &snk_min, &snk_max);
    H_CHECK(src_min == SRC_LAT && src_max == SRC_LAT, "probe output capture latency %u-%u", src_min,
            src_max);
    H_CHECK(snk_min == SINK_LAT && snk_max == SINK_LAT, "probe input playback latency %u-%u",
            snk_min, snk_max);
    bool cap_ok =
        h_wait_port_latency(r->p, r->out_port[i], false, src_max + lc->expect, 5000, &cmin, &cmax);
    bool pb_ok =
        h_wait_port_latency(r->p, r->in_port[i], true, snk_max + lc->expect, 5000, &pmin, &pmax);
    h_log("period %u slot %s (%s): L=%u; JACK: %s capture %u-%u minus source %u = %u, %s "
          "playback %u-%u minus sink %u = %u",
          r->cfg->period, lc->slot, when, lc->expect, r->out_port[i], cmin, cmax, src_max,
          cmax - src_max, r->in_port[i], pmin, pmax, snk_max, pmax - snk_max);
    if (!cap_ok)
      h_error("period %u slot %s: capture latency of %s is %u-%u, want %u (source %u + L %u)",
              r->cfg->period, lc->slot, r->out_port[i], cmin, cmax, src_max + lc->expect, src_max,
              lc->expect);
    if (!pb_ok)
      h_error("period %u slot %s: playback latency of %s is %u-%u, want %u (sink %u + L %u)",
              r->cfg->period, lc->slot, r->in_port[i], pmin, pmax, snk_max + lc->expect, snk_max,
              lc->expect);
  }
}

static void label_paths(struct run *r, const char *what, const char *when) {
  for (unsigned i = 0; i < N_SLOTS; i++)
    snprintf(r->path[i].label, sizeof(r->path[i].label), "period %u slot %s L=%u %s%s",
             r->cfg->period, r->cfg->cases[i].slot, r->cfg->cases[i].expect, when, what);
}

/*
 * One lone impulse per slot: the measured delay is logged, and the impulse
 * must come back exactly L later (measured again when a disturbance of the
 * graph or an underrun lost it).
 */
static void measure(struct run *r, const char *when) {
  struct h_train one = {.count = 1, .min_exact = 1};
  label_paths(r, " (single)", when);
  if (!h_measure(r->p, &r->c, r->path, N_SLOTS, &one))
    h_error("period %u %s: a lone impulse not delayed by exactly L", r->cfg->period, when);
  for (unsigned i = 0; i < N_SLOTS; i++) {
    if (r->path[i].first_delay < 0)
      h_log("%s: measured: nothing came out", r->path[i].label);
    else
      h_log("%s: measured delay %lld frames, reported L %u", r->path[i].label,
            (long long)r->path[i].first_delay, r->cfg->cases[i].expect);
  }
}

/* Trains of impulses on every slot; checks all output since the last check. */
static void impulses(struct run *r, const char *when) {
  struct h_train train = {.count = 8, .gap = 1100, .lead = 2400};
  label_paths(r, "", when);
  if (!h_measure(r->p, &r->c, r->path, N_SLOTS, &train))
    h_error("period %u %s: impulses not delayed by exactly L", r->cfg->period, when);
}

static void refresh_pids(struct run *r) {
  for (unsigned i = 0; i < N_SLOTS; i++) {
    json_t *s = h_slot(&r->c, r->cfg->cases[i].slot);
    H_CHECK(s != NULL, "slot %s vanished", r->cfg->cases[i].slot);
    r->pid[i] = h_int(s, "pid");
    H_CHECK(h_int(s, "latency_frames") == r->cfg->cases[i].expect,
            "slot %s latency_frames %lld, want %u", r->cfg->cases[i].slot,
            (long long)h_int(s, "latency_frames"), r->cfg->cases[i].expect);
    json_decref(s);
  }
}

static void run_config(const struct config *cfg) {
  struct run r;
  memset(&r, 0, sizeof(r));
  r.cfg = cfg;
  h_log("=== period %u ===", cfg->period);
  h_jack_start(&r.jack, 48000, cfg->period);
  const char *daemon_args[] = {"--latency-ms", cfg->daemon_latency_ms, NULL};
  h_daemon_start(&r.d, &r.jack, cfg->daemon_latency_ms ? daemon_args : NULL, NULL);
  H_CHECK(h_conn_open(&r.c, r.d.socket) == 0, "connect to runwayd");
  r.p = h_probe_open(&r.jack, N_SLOTS, false, N_SLOTS, SRC_LAT, SINK_LAT);
  h_watch_skips(r.p, &r.d);

  for (unsigned i = 0; i < N_SLOTS; i++) {
    const struct lcase *lc = &cfg->cases[i];
    json_t *args = json_pack("{s:s, s:i, s:i}", "plugin", "passthrough", "inputs", 1, "outputs", 1);
    if (lc->frames)
      json_object_set_new(args, "latency_frames", json_integer(lc->frames));
    if (lc->ms > 0)
      json_object_set_new(args, "latency_ms", json_real(lc->ms));
    json_t *s = h_add_slot(&r.c, lc->slot, args, 10000);
    json_int_t l = h_int(s, "latency_frames");
    if (l != lc->expect)
      h_error("slot %s: slot.list latency_frames %lld, want %u", lc->slot, (long long)l,
              lc->expect);
    const char *in = h_slot_port(s, "inputs", 0), *out = h_slot_port(s, "outputs", 0);
    H_CHECK(in && out, "slot %s has no ports in slot.list", lc->slot);
    snprintf(r.in_port[i], sizeof(r.in_port[i]), "%s", in);
    snprintf(r.out_port[i], sizeof(r.out_port[i]), "%s", out);
    json_decref(s);
    h_probe_path_latency(r.p, lc->expect);
    h_connect(r.p, h_probe_out(r.p, i), r.in_port[i]);
    h_connect(r.p, r.out_port[i], h_probe_in(r.p, i));
    r.path[i] = (struct h_path){.out = i, .in = i, .delay = lc->expect, .slots = {lc->slot}};
  }
  refresh_pids(&r);
  check_port_latencies(&r, "after connecting");
  measure(&r, "initial");
  impulses(&r, "initial");

  /* slot restart: a new generation and worker, same L, same ports. */
  for (unsigned i = 0; i < N_SLOTS; i++) {
    json_int_t old = r.pid[i];
    uint64_t t0 = h_now_ms();
    json_decref(h_call(&r.c, "slot.restart", json_pack("{s:s}", "name", cfg->cases[i].slot)));
    json_decref(h_wait_slot(&r.c, cfg->cases[i].slot, "running", old, 10000));
    h_log("period %u slot %s: restart -> running in %llu ms", cfg->period, cfg->cases[i].slot,
          (unsigned long long)(h_now_ms() - t0));
  }
  refresh_pids(&r);
  check_port_latencies(&r, "after slot restart");
  measure(&r, "after restart");
  impulses(&r, "after restart");

  /* SIGKILL the workers: the supervisor brings them back with the same alignment. */
  for (unsigned i = 0; i < N_SLOTS; i++) {
    json_int_t old = r.pid[i];
    uint64_t t0 = h_now_ms();
    H_CHECK(kill((pid_t)old, SIGKILL) == 0, "kill worker %lld", (long long)old);
    json_t *s = h_wait_slot(&r.c, cfg->cases[i].slot, "running", old, 10000);
    h_log("period %u slot %s: SIGKILL -> running again (pid %lld) in %llu ms", cfg->period,
          cfg->cases[i].slot, (long long)h_int(s, "pid"), (unsigned long long)(h_now_ms() - t0));
    json_decref(s);
  }
  refresh_pids(&r);
  check_port_latencies(&r, "after SIGKILL");
  measure(&r, "after SIGKILL");
  impulses(&r, "after SIGKILL");

  uint64_t late = h_probe_late(r.p), gaps = h_probe_gaps(r.p);
  if (late || gaps)
    h_log("period %u: %llu late event(s), %llu late or skipped probe run(s)", cfg->period,
          (unsigned long long)late, (unsigned long long)gaps);
  h_probe_close(r.p);
  h_conn_close(&r.c);
  int st = h_daemon_stop(&r.d);
  char buf[64];
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(st, buf, sizeof(buf)));
  h_jack_stop(&r.jack);
}

int main(void) {
  h_init("latency", 110);
  for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
    run_config(&configs[i]);
  h_pass();
}
