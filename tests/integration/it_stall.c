/*
 * it_stall: the write-ahead absorbs worker pauses shorter than L, and a
 * longer pause costs only the audio of the gap, never the alignment.
 *
 * L = 50 ms (2400 frames) at 48 kHz, period 128, one passthrough slot.
 *
 *   1. Ten SIGSTOPs of the worker of about 20 ms each (SIGCONT between,
 *      100 ms apart): no underrun, every impulse exactly L later.
 *   2. One SIGSTOP of 300 ms (longer than L, shorter than the 2 s stall
 *      timeout): underruns are counted, the output is silent during the gap,
 *      and after the worker resumes the impulses come out exactly L later
 *      again (except in a short window after the resume, where the output
 *      fades in). The same worker process keeps running: no restart.
 *   3. One SIGSTOP longer than the stall timeout (runwayd --stall-timeout-ms
 *      1000): the supervisor replaces the worker, and the impulses come out
 *      exactly L later through the new one.
 *
 * A stage whose check a disturbance of the graph spoiled (too few impulses
 * exact next to JACK xruns or late runs, or underruns the busy machine
 * caused) is run again, up to STAGE_ATTEMPTS times; a misplaced sample fails
 * at once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define L 2400
#define SHORT_STOP_MS 20
#define SHORT_STOPS 10
#define LONG_STOP_MS 300
/* A short stop that the scheduler stretched past this is excused from the no-underrun rule. */
#define EXCUSE_MS 32
#define STAGE_ATTEMPTS 5

struct stall {
  struct h_conn c;
  struct h_probe *p;
  pid_t pid;
  uint64_t checked; /* output checked up to here */
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The length of a stop: pacing the scenario, not waiting for anything. */
static void sleep_us(uint64_t us) {
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static json_int_t stat_of(struct h_conn *c, const char *key) { return h_slot_stat(c, "st", key); }

/*
 * When runwayd's clock skipped frames while [from, to) was in flight, the
 * check is lenient there (h_probe_mark_disturbed): a busy graph, not the slot.
 */
static void mark_if_skipped(struct stall *x, uint64_t skipped0, uint64_t from, uint64_t to) {
  uint64_t skipped = h_daemon_skipped(&x->c) - skipped0;
  if (skipped == 0)
    return;
  h_log("runwayd's clock skipped %llu frames meanwhile (late runs of a busy graph)",
        (unsigned long long)skipped);
  if (!h_watching_skips(x->p)) /* the watcher placed them */
    h_probe_mark_disturbed(x->p, from, to);
}

/* ---- 1: short stops ------------------------------------------------------------- */

static enum h_verdict short_stops(struct stall *x, unsigned attempt) {
  const unsigned port0 = 0;
  uint64_t skipped0 = h_daemon_skipped(&x->c), start = h_probe_cycle(x->p);
  uint32_t first_id = h_probe_n_events(x->p);
  uint64_t last = h_impulse_train(x->p, &port0, 1, 150, 700, 2400); /* ~2.2 s of impulses */
  unsigned excused = 0;
  uint64_t longest_us = 0;
  uint64_t most_waited_us = 0;
  for (int i = 0; i < SHORT_STOPS; i++) {
    json_int_t u0 = stat_of(&x->c, "underruns");
    uint64_t w0 = h_sched_delay_ns(x->pid);
    uint64_t t0 = now_us();
    H_CHECK(kill(x->pid, SIGSTOP) == 0, "SIGSTOP");
    sleep_us(SHORT_STOP_MS * 1000);
    H_CHECK(kill(x->pid, SIGCONT) == 0, "SIGCONT");
    uint64_t dt = now_us() - t0;
    if (dt > longest_us)
      longest_us = dt;
    h_sleep_ms(100); /* paces the stops: more than L apart */
    json_int_t u1 = stat_of(&x->c, "underruns");
    /* How long the worker then waited for a CPU (a loaded machine) adds to the stop. */
    uint64_t waited = (h_sched_delay_ns(x->pid) - w0) / 1000;
    if (waited > most_waited_us)
      most_waited_us = waited;
    if (u1 > u0) {
      if (dt + waited > EXCUSE_MS * 1000) {
        excused++;
        h_log("short stop %d lasted %.1f ms and the worker then waited %.1f ms for a CPU: "
              "%lld underrun(s) excused",
              i, dt / 1000.0, waited / 1000.0, (long long)(u1 - u0));
      } else {
        h_error("short stop %d of %.1f ms (< L = 50 ms; worker waited %.1f ms for a CPU) "
                "caused %lld underrun(s)",
                i, dt / 1000.0, waited / 1000.0, (long long)(u1 - u0));
      }
    }
  }
  h_log("%d stops of %d ms (longest %.1f ms, worker waited for a CPU up to %.1f ms after one): "
        "underruns %lld, excused stops %u",
        SHORT_STOPS, SHORT_STOP_MS, longest_us / 1000.0, most_waited_us / 1000.0,
        (long long)stat_of(&x->c, "underruns"), excused);
  h_probe_wait_frame(x->p, last + L + 2 * PERIOD, 15000);
  mark_if_skipped(x, skipped0, start, last + L + 1);
  char label[64];
  snprintf(label, sizeof(label), "short stops, attempt %u", attempt);
  /* Every impulse exactly L later; an excused stop may cost a few, never 50 of 150. */
  struct h_impulses spec = {.out = 0,
                            .in = 0,
                            .delay = L,
                            .first_id = first_id,
                            .from = x->checked,
                            .to = last + L + 1,
                            .tolerant = excused > 0,
                            .min_exact = 100};
  struct h_check ck;
  h_check(x->p, &spec, label, &ck);
  x->checked = last + L + 1;
  return ck.verdict;
}

/* ---- 2: one stop longer than L -------------------------------------------------- */

static enum h_verdict long_stop(struct stall *x, unsigned attempt) {
  const unsigned port0 = 0;
  uint64_t skipped0 = h_daemon_skipped(&x->c), start = h_probe_cycle(x->p);
  uint32_t first_id = h_probe_n_events(x->p);
  uint64_t last = h_impulse_train(x->p, &port0, 1, 100, 700, 4800); /* ~1.5 s of impulses */
  /* The stop begins once part of the train has come through. */
  h_probe_wait_frame(x->p, h_probe_frame(x->p, first_id) + L + RATE / 5, 10000);
  uint64_t s_before = h_probe_now(x->p);
  H_CHECK(kill(x->pid, SIGSTOP) == 0, "SIGSTOP");
  uint64_t s_after = h_probe_now(x->p);
  h_sleep_ms(LONG_STOP_MS); /* the length of the stop */
  uint64_t c_before = h_probe_now(x->p);
  H_CHECK(kill(x->pid, SIGCONT) == 0, "SIGCONT");
  uint64_t c_after = h_probe_now(x->p);
  h_log("long stop: frames %llu..%llu (%.1f ms)", (unsigned long long)s_after,
        (unsigned long long)c_before, (c_before - s_after) * 1000.0 / RATE);
  /* The worker has caught up (skipped ahead) well within this. */
  h_probe_wait_frame(x->p, c_after + RATE / 5, 10000);
  json_int_t u_settled = stat_of(&x->c, "underruns");
  h_probe_wait_frame(x->p, last + L + 2 * PERIOD, 15000);
  json_int_t u_end = stat_of(&x->c, "underruns");
  mark_if_skipped(x, skipped0, start, last + L + 1);
  bool late_again = u_end > u_settled;
  if (late_again)
    h_log("long stop: %lld more underrun(s) after the worker had caught up (loaded machine?); "
          "missing impulses after the resume tolerated",
          (long long)(u_end - u_settled));

  /*
   * Output for impulse f plays at f + L. Before the stop it was computed in
   * time: exact. During the gap [stop + L, resume) nothing plays: absent.
   * After resume + skip margin (max(period, L/4)) + fade + scheduling slack:
   * exact again. In between it may be lost or faded, never elsewhere.
   */
  uint32_t n = h_probe_n_events(x->p);
  struct h_expect *ex = calloc(n, sizeof(*ex));
  size_t k = 0;
  unsigned absent = 0, required_after = 0, before = 0;
  const uint64_t resume_exact = c_after + L / 4 + 64 + 4800;
  for (uint32_t id = first_id; id < n; id++) {
    bool sent = h_probe_status(x->p, id) == H_EV_EMITTED;
    uint64_t o = h_probe_frame(x->p, id) + L;
    if (o >= s_after + L + PERIOD && o + PERIOD < c_before) {
      absent += sent; /* not expected: any sample there fails the check */
      continue;
    }
    ex[k].frame = o;
    ex[k].value = 1.0f;
    /* Never sent (the test thread came too late): no answer is due. */
    ex[k].optional = !sent || !(o + PERIOD < s_before || (o >= resume_exact && !late_again));
    required_after += sent && o >= resume_exact;
    before += sent && o + PERIOD < s_before;
    k++;
  }
  char label[64];
  snprintf(label, sizeof(label), "long stop, attempt %u", attempt);
  struct h_check ck;
  /* Those before the stop and at least half of those after the resume must be exact. */
  h_check_port_delay(x->p, 0, ex, k, x->checked, last + L + 1, L, before + (required_after + 1) / 2,
                     label, &ck);
  x->checked = last + L + 1;
  free(ex);
  h_log("long stop: %u impulses fell into the gap and were silent, %u exact after resume", absent,
        required_after);
  H_CHECK(absent >= 10, "too few impulses in the gap (%u) to show it was silent", absent);
  H_CHECK(required_after >= 20, "too few impulses after the resume (%u)", required_after);
  return ck.verdict;
}

/* Runs a stage until its check is not disturbed; a misplaced sample is an error. */
static void stage(struct stall *x, enum h_verdict (*run)(struct stall *, unsigned),
                  const char *name) {
  for (unsigned attempt = 1;; attempt++) {
    enum h_verdict v = run(x, attempt);
    if (v == H_EXACT)
      return;
    if (v == H_MISALIGNED) {
      h_error("%s: impulses not exactly L later, or output where the gap must be silent", name);
      return;
    }
    if (attempt == STAGE_ATTEMPTS) {
      h_error("%s: too few impulses exact in %u attempts, each disturbed (xruns, late runs of "
              "the graph or underruns): the machine is too busy to measure",
              name, STAGE_ATTEMPTS);
      return;
    }
    h_log("%s: attempt %u disturbed; once more", name, attempt);
  }
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct stall x = {0};
  char buf[64];

  h_init("stall", 110);
  h_jack_start(&jack, RATE, PERIOD);
  const char *args[] = {"--stall-timeout-ms", "1000", NULL};
  h_daemon_start(&d, &jack, args, NULL);
  H_CHECK(h_conn_open(&x.c, d.socket) == 0, "connect to runwayd");
  x.p = h_probe_open(&jack, 1, false, 1, 0, 0);
  h_watch_skips(x.p, &d);

  json_t *s = h_add_slot(&x.c, "st",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000);
  H_CHECK(h_int(s, "latency_frames") == L, "latency_frames %lld",
          (long long)h_int(s, "latency_frames"));
  x.pid = (pid_t)h_int(s, "pid");
  h_probe_path_latency(x.p, L);
  h_connect(x.p, h_probe_out(x.p, 0), h_slot_port(s, "inputs", 0));
  h_connect(x.p, h_slot_port(s, "outputs", 0), h_probe_in(x.p, 0));
  json_decref(s);

  /*
   * Settle: a train through the running slot, before any stop, with no
   * underrun. A busy machine may keep even this worker from its CPU for
   * longer than L now and then: settle again until a train passes without.
   */
  struct h_path path = {.out = 0, .in = 0, .delay = L, .slots = {"st"}, .label = "settle"};
  struct h_train settle = {.count = 6, .gap = 700};
  json_int_t u_start = stat_of(&x.c, "underruns");
  for (unsigned tries = 1;; tries++) {
    H_CHECK(h_measure(x.p, &x.c, &path, 1, &settle), "impulses before any stop");
    json_int_t u = stat_of(&x.c, "underruns");
    if (u == u_start)
      break;
    H_CHECK(tries < 5,
            "underruns before any stop in %u settling trains: the machine is too busy "
            "for this worker",
            tries);
    h_log("settle: %lld underrun(s) with no stop (a busy machine); settling again",
          (long long)(u - u_start));
    u_start = u;
  }
  x.checked = path.checked_to;

  stage(&x, short_stops, "short stops");
  json_int_t u_short = stat_of(&x.c, "underruns");
  stage(&x, long_stop, "long stop");

  json_t *st = h_slot_stats(&x.c, "st");
  json_int_t underruns = h_int(st, "underruns"), underrun_frames = h_int(st, "underrun_frames");
  h_log("stats after the long stop: underruns %lld (short stops: %lld), underrun_frames %lld, "
        "skipped_frames %lld, headroom_min_frames %lld, restarts %lld",
        (long long)underruns, (long long)u_short, (long long)underrun_frames,
        (long long)h_int(st, "skipped_frames"), (long long)h_int(st, "headroom_min_frames"),
        (long long)h_int(st, "restarts"));
  if (!(underruns > u_short))
    h_error("the long stop counted no underrun");
  if (!(underrun_frames > 0))
    h_error("the long stop counted no underrun frames");
  if (h_int(st, "restarts") != 0)
    h_error("the slot restarted (%lld) although the stop was below the stall timeout",
            (long long)h_int(st, "restarts"));
  json_decref(st);
  s = h_slot(&x.c, "st");
  if (h_int(s, "pid") != x.pid || strcmp(h_str(s, "state"), "running") != 0)
    h_error("after the long stop the slot is %s with pid %lld, expected running with pid %d",
            h_str(s, "state"), (long long)h_int(s, "pid"), (int)x.pid);
  json_decref(s);
  H_CHECK(h_pid_exists(x.pid), "the worker process is gone");

  /* ---- 3: a stop longer than the stall timeout: the supervisor replaces the worker -- */
  uint64_t t0 = h_now_ms();
  H_CHECK(kill(x.pid, SIGSTOP) == 0, "SIGSTOP");
  s = h_wait_slot(&x.c, "st", "running", x.pid, 10000);
  json_int_t new_pid = h_int(s, "pid");
  h_log("stalled worker %d replaced by %lld after %llu ms (stall timeout 1000 ms), restarts %lld",
        (int)x.pid, (long long)new_pid, (unsigned long long)(h_now_ms() - t0),
        (long long)h_int(s, "restarts"));
  if (h_int(s, "restarts") != 1)
    h_error("restarts is %lld after the stall, want 1", (long long)h_int(s, "restarts"));
  json_decref(s);
  kill(x.pid, SIGCONT); /* if it still exists */
  /* From here on: what the new worker plays (the replacement's own fade-in lies before). */
  path.checked_to = h_probe_now(x.p) + L;
  snprintf(path.label, sizeof(path.label), "after the stall restart");
  struct h_train ten = {.count = 10, .gap = 700};
  if (!h_measure(x.p, &x.c, &path, 1, &ten))
    h_error("after the stall restart: impulses not exactly L later");

  h_probe_close(x.p);
  h_conn_close(&x.c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
