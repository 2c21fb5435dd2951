/*
 * it_bypass: with --on-fault bypass a slot stays audible and in time while
 * its worker is dead, restarting or stopped; with silence (the default) it
 * is silent then, as before.
 *
 * Three slots, L = 50 ms, each fed its own impulses:
 *   bp  passthrough, bypass: every impulse exactly L later, always, exact
 *   bg  gain -6 dB, bypass: every impulse exactly L later, at the gain's
 *       level from the worker and at full level (the dry input) from
 *       bypass: some must come at full level, or bypass never played
 *   sl  passthrough, silence: impulses may be missing while the worker is
 *       down (and some must be), never anywhere else than L later
 * Five rounds of SIGKILL to all three workers (the supervisor restarts them,
 * with its growing backoff), then one SIGSTOP of 300 ms (> L, < the stall
 * timeout). A round in which disturbances of the graph (xruns, late runs,
 * skips) left bp too few exact is played again, its kill or stop with it.
 * runwayd runs under the RT checker. bp and bg count no underrun:
 * their missing frames are played from bypass and counted in bypass_frames.
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
#define PERIOD 128
#define L 2400
#define KILLS 5
#define STOP_MS 300
#define TRAIN 40
#define GAP 600
#define ATTEMPTS 6 /* rounds of one kind at most, when disturbances spoil them */

static const char *const names[3] = {"bp", "bg", "sl"};

struct round {
  uint64_t frames[TRAIN];
  uint32_t ids[TRAIN]; /* bp's impulses: one the test thread sent too late excuses the others */
  uint64_t from, last;
};

static const char *port_of(const json_t *slot, const char *dir, size_t i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

/* A train on all three outputs, port k at frame + 3k: about TRAIN * GAP frames long. */
static void train(struct h_probe *p, struct round *r) {
  r->from = h_probe_now(p);
  uint64_t f = r->from + L;
  for (unsigned i = 0; i < TRAIN; i++) {
    f += GAP + (i * 37u) % 101u;
    r->frames[i] = f;
    r->ids[i] = h_probe_impulse(p, 0, f, 1.0f);
    for (unsigned k = 1; k < 3; k++)
      h_probe_impulse(p, k, f + 3 * k, 1.0f);
  }
  r->last = f + 6;
}

static json_int_t pid_of(struct h_conn *c, const char *name) {
  json_t *s = h_slot(c, name);
  json_int_t pid = h_int(s, "pid");
  json_decref(s);
  return pid;
}

/* Missing impulses of sl so far, full-level impulses of bg so far. */
static unsigned sl_missing, bg_dry;

/*
 * Checks a round. Returns false when bp's check was disturbed (too few
 * exact next to xruns, late runs or skips of the graph): the round is played
 * again. Misplaced samples are errors either way.
 */
static bool check_round(struct h_probe *p, const struct round *r, uint64_t xruns0,
                        const char *label) {
  struct h_expect ex[TRAIN];
  struct h_check ck;
  char what[96];
  h_probe_wait_frame(p, r->last + L + 2 * PERIOD, 20000);
  bool xrun = h_probe_xruns(p) != xruns0;
  uint64_t to = r->last + L + PERIOD;

  for (unsigned i = 0; i < TRAIN; i++)
    ex[i] = (struct h_expect){.frame = r->frames[i] + L,
                              .value = 1.0f,
                              .optional = h_probe_status(p, r->ids[i]) != H_EV_EMITTED};
  snprintf(what, sizeof(what), "%s: bp (bypass)", label);
  h_check_port_delay(p, 0, ex, TRAIN, r->from, to, L, 0, what, &ck);
  if (ck.verdict == H_MISALIGNED)
    h_error("%s: impulses through a bypass slot not all exactly L later", what);
  bool disturbed = ck.verdict == H_DISTURBED;
  /* What a disturbance of the graph loses on bp's path it may lose on bg's. */
  xrun = xrun || ck.disturbed > 0 || ck.tolerated > 0;

  /* bg: the gain's level from the worker, full level from bypass, between in a crossfade. */
  for (unsigned i = 0; i < TRAIN; i++)
    ex[i] = (struct h_expect){.frame = r->frames[i] + 3 + L, .value = 1.0f, .optional = true};
  snprintf(what, sizeof(what), "%s: bg (gain, bypass)", label);
  if (!h_check_port_delay(p, 1, ex, TRAIN, r->from, to, L, H_FLOOR_NONE, what, &ck))
    h_error("%s: impulses through a bypassed gain slot are not where they belong", what);
  if (ck.optional_missing > 0 && !xrun)
    h_error("%s: %u impulse(s) missing", what, ck.optional_missing);
  bg_dry += ck.optional_exact;

  /* sl: silence while the worker is down: missing allowed, misplaced never. */
  for (unsigned i = 0; i < TRAIN; i++)
    ex[i] = (struct h_expect){.frame = r->frames[i] + 6 + L, .value = 1.0f, .optional = true};
  snprintf(what, sizeof(what), "%s: sl (silence)", label);
  if (!h_check_port_delay(p, 2, ex, TRAIN, r->from, to, L, H_FLOOR_NONE, what, &ck))
    h_error("%s: impulses through a silence slot somewhere else than L later", what);
  sl_missing += ck.optional_missing;
  if (disturbed)
    h_log("%s: bp's impulses too few exact next to disturbances of the graph; again", label);
  return !disturbed;
}

enum act { ACT_NONE, ACT_KILL, ACT_STOP };

/* A train, and while it flows the workers are killed, stopped or left alone. */
static bool one_round(struct h_probe *p, struct h_conn *c, enum act act, const char *label) {
  struct round r;
  json_int_t pids[3];
  for (unsigned k = 0; k < 3; k++)
    pids[k] = pid_of(c, names[k]);
  uint64_t xruns0 = h_probe_xruns(p);
  train(p, &r);
  if (act != ACT_NONE)
    h_sleep_ms(L * 1000 / RATE + 60);
  if (act == ACT_KILL) {
    uint64_t t0 = h_now_ms();
    for (unsigned k = 0; k < 3; k++)
      H_CHECK(kill((pid_t)pids[k], SIGKILL) == 0, "SIGKILL %s's worker", names[k]);
    for (unsigned k = 0; k < 3; k++)
      json_decref(h_wait_slot(c, names[k], "running", pids[k], 10000));
    h_log("%s: all three running again in %llu ms", label, (unsigned long long)(h_now_ms() - t0));
  } else if (act == ACT_STOP) {
    for (unsigned k = 0; k < 3; k++)
      H_CHECK(kill((pid_t)pids[k], SIGSTOP) == 0, "SIGSTOP %s's worker", names[k]);
    h_sleep_ms(STOP_MS);
    for (unsigned k = 0; k < 3; k++)
      H_CHECK(kill((pid_t)pids[k], SIGCONT) == 0, "SIGCONT %s's worker", names[k]);
  }
  bool decided = check_round(p, &r, xruns0, label);
  if (act == ACT_STOP)
    for (unsigned k = 0; k < 3; k++)
      H_CHECK(pid_of(c, names[k]) == pids[k], "%s's worker was replaced after a %d ms stop",
              names[k], STOP_MS);
  return decided;
}

/* A round, again (with its kill or stop) while disturbances leave bp too few exact. */
static void play(struct h_probe *p, struct h_conn *c, enum act act, const char *label) {
  for (unsigned attempt = 1; attempt <= ATTEMPTS; attempt++)
    if (one_round(p, c, act, label))
      return;
  h_error("%s: %u rounds, each with too few of bp's impulses exact next to disturbances of the "
          "graph: the machine is too busy to measure",
          label, ATTEMPTS);
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char report[4200], preload[4200], report_env[4300], label[64];

  h_init("bypass", 110);
  snprintf(report, sizeof(report), "%s/rtcheck.report", h_tmpdir());
  snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", RWT_RTCHECK);
  snprintf(report_env, sizeof(report_env), "RUNWAY_RTCHECK_REPORT=%s", report);
  const char *env[] = {preload, report_env, NULL};
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, env);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 3, false, 3, 0, 0);
  h_watch_skips(p, &d);

  static const char *const plugins[3] = {"passthrough", "gain", "passthrough"};
  static const char *const modes[3] = {"bypass", "bypass", "silence"};
  for (unsigned k = 0; k < 3; k++) {
    json_t *s = h_add_slot(&c, names[k],
                           json_pack("{s:s, s:i, s:i, s:i, s:s}", "plugin", plugins[k], "inputs", 1,
                                     "outputs", 1, "latency_frames", L, "on_fault", modes[k]),
                           10000);
    H_CHECK(strcmp(h_str(s, "on_fault"), modes[k]) == 0, "slot %s: on_fault %s", names[k],
            h_str(s, "on_fault"));
    h_connect(p, h_probe_out(p, k), port_of(s, "inputs", 0));
    h_connect(p, port_of(s, "outputs", 0), h_probe_in(p, k));
    json_decref(s);
  }
  json_decref(
      h_call(&c, "param.set",
             json_pack("{s:s, s:s, s:f}", "name", "bg", "param", "gain_db", "value", -6.0)));
  h_probe_path_latency(p, L);
  h_sleep_ms(100); /* the gain's 10 ms ramp is over */

  play(p, &c, ACT_NONE, "before any fault");
  json_int_t under0[3];
  for (unsigned k = 0; k < 3; k++)
    under0[k] = h_slot_stat(&c, names[k], "underruns");

  /* Five SIGKILLs: each worker dies while its impulses flow, the supervisor brings it back. */
  for (int i = 1; i <= KILLS; i++) {
    snprintf(label, sizeof(label), "kill %d", i);
    play(p, &c, ACT_KILL, label);
  }

  /* A stop longer than L: the same worker resumes, late, and catches up. */
  play(p, &c, ACT_STOP, "SIGSTOP 300 ms");

  for (unsigned k = 0; k < 3; k++) {
    json_t *st = h_slot_stats(&c, names[k]);
    h_log("%s: underruns %lld (%lld since set-up), bypass_frames %lld, restarts %lld", names[k],
          (long long)h_int(st, "underruns"), (long long)(h_int(st, "underruns") - under0[k]),
          (long long)h_int(st, "bypass_frames"), (long long)h_int(st, "restarts"));
    if (k < 2 && h_int(st, "underruns") != under0[k])
      h_error("%s: underruns with bypass", names[k]);
    if (k < 2 && h_int(st, "bypass_frames") <= 0)
      h_error("%s: bypass never played", names[k]);
    if (k == 2 && h_int(st, "bypass_frames") != 0)
      h_error("%s: a silence slot played bypass", names[k]);
    json_decref(st);
  }
  h_log("bg: %u impulse(s) came at full level (bypass); sl: %u missing (silence)", bg_dry,
        sl_missing);
  if (bg_dry == 0)
    h_error("no impulse of the gain slot came from bypass: it never stood in");
  if (sl_missing == 0)
    h_error("no impulse went missing through the silence slot: the faults were not felt");

  h_probe_close(p);
  h_conn_close(&c);
  h_check_rt_report(report, h_daemon_stop(&d));
  h_jack_stop(&jack);
  h_pass();
}
