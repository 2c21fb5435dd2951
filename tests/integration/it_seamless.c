/*
 * it_seamless: a slot's worker is swapped while audio flows, with no gap.
 *
 * runwayd runs under the RT-rules checker (librunway-rtcheck preloaded), so
 * the takeover's RT path (history copy, two generations per entry, the
 * crossfade) is held to the RT rules as well.
 *
 *   1. Impulses on channel 1 and a 440 Hz sine (a sine slot chained in) on
 *      channel 2 of a passthrough slot; `slot replace` to gain (0 dB) and
 *      `slot restart --seamless` in turn (and back to passthrough, until
 *      each kind had a switch with no xrun or skip of the graph near it):
 *      every impulse exactly L later, once, with its exact value; no
 *      underrun unless the graph was disturbed; the sine continuous
 *      through the crossfades of switches inside the train (no step above
 *      what a 440 Hz sine of its level ever takes between two samples, no
 *      sample missing). A round disturbances spoiled (too few impulses
 *      exact, no clean switch of a kind) is played again, up to ROUNDS.
 *   2. A delay (300 ms, mix 1, feedback 0) replaced by the same delay: the
 *      echo of an impulse sent before the switch arrives after the switch,
 *      exactly L + 300 ms later: the new worker heard it in its history.
 *      Made again when the switch came late or a disturbance excused the echo.
 *      sw plays on meanwhile: no underrun unless this part disturbed it.
 *   3. A replacement whose worker fails (exec /bin/false): spawn_failed with
 *      the reason, and the old worker plays on, exactly.
 */
#include <math.h>
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
#define ECHO_MS 300
#define ECHO (ECHO_MS * RATE / 1000)
#define XFADE_MS 20
#define XFADE (XFADE_MS * RATE / 1000)
#define TONE_LEVEL 0.25118864f /* -12 dB, the sine plugin's default */
#define SWAPS 6
#define ECHO_ATTEMPTS 8
#define ROUNDS 4 /* rounds of swaps at most, when disturbances spoil them */

static const char *port_of(const json_t *slot, const char *dir, size_t i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

/* Frame f of the probe (JACK frame time, 64 bits) as runwayd reports it (32 bits). */
static int64_t frames_after(uint32_t reported, uint64_t probe_frame) {
  return (int64_t)(int32_t)(reported - (uint32_t)probe_frame);
}

/* The switch of a replace / seamless restart answer; logs it. Returns its frame. */
static uint32_t check_switch(const json_t *result, const char *what) {
  const json_t *sw = json_object_get(result, "switch");
  H_CHECK(json_is_object(sw), "%s: the answer has no switch", what);
  H_CHECK(json_is_integer(json_object_get(sw, "frame")), "%s: no switch frame", what);
  h_log("%s: switched at frame %lld after %lld ms, crossfade %lld frames, %lld frames of history, "
        "generation %lld -> %lld, state carried %s",
        what, (long long)h_int(sw, "frame"), (long long)h_int(sw, "warmup_ms"),
        (long long)h_int(sw, "crossfade_frames"), (long long)h_int(sw, "history_frames"),
        (long long)h_int(sw, "from_generation"), (long long)h_int(sw, "generation"),
        json_is_true(json_object_get(sw, "state_carried")) ? "yes" : "no");
  if (h_int(sw, "history_frames") <= 0)
    h_error("%s: the new worker got no input history", what);
  return (uint32_t)h_int(sw, "frame");
}

/*
 * The sine through sink port `in` over [from, to): no sample missing (a
 * recorded 0 is a gap; a 440 Hz sine never holds one) and no step larger
 * than the sine's own steepest, with a little room for rounding.
 */
static void check_sine(struct h_probe *p, unsigned in, uint64_t from, uint64_t to,
                       const char *label) {
  size_t n = (size_t)(to - from);
  float *x = calloc(n, sizeof(float));
  H_CHECK(x != NULL, "out of memory");
  h_probe_samples(p, in, from, to, x);
  const double bound = TONE_LEVEL * 2 * M_PI * 440.0 / RATE * 1.05 + 1e-4;
  double worst = 0, peak = 0;
  size_t zeros = 0, at = 0, excused = 0;
  for (size_t i = 0; i < n; i++) {
    /* A run of the probe JACK started late or skipped leaves a hole in what it recorded. */
    bool graph = h_probe_disturbed_at(p, from + i);
    if (x[i] == 0.0f)
      graph ? excused++ : zeros++;
    if (fabs(x[i]) > peak)
      peak = fabs(x[i]);
    if (i > 0 && !graph && !h_probe_disturbed_at(p, from + i - 1) &&
        fabs((double)x[i] - x[i - 1]) > worst) {
      worst = fabs((double)x[i] - x[i - 1]);
      at = i;
    }
  }
  h_log("%s: sine over %zu frames: largest step %.5f at frame %llu (bound %.5f), peak %.4f, %zu "
        "zero samples (and %zu near a late or skipped run of the probe, not counted)",
        label, n, worst, (unsigned long long)(from + at), bound, peak, zeros, excused);
  if (zeros > 2)
    h_error("%s: the sine has %zu missing samples", label, zeros);
  if (worst > bound)
    h_error("%s: a step of %.5f at frame %llu: the sine is not continuous", label, worst,
            (unsigned long long)(from + at));
  if (fabs(peak - TONE_LEVEL) > 0.01)
    h_error("%s: the sine's peak is %.4f, not %.4f", label, peak, TONE_LEVEL);
  free(x);
}

/*
 * Time sw's workers spent runnable but waiting for a CPU, followed across
 * swaps: each new worker from when it is first seen, an old one up to the
 * last look before it stopped (a stopped worker's count is gone with it).
 */
struct waited {
  pid_t pid;
  uint64_t base, ns;
};

static void waited_follow(struct waited *w, struct h_conn *c) {
  json_t *s = h_slot(c, "sw");
  pid_t pid = (pid_t)h_int(s, "pid");
  json_decref(s);
  if (w->pid > 0) {
    uint64_t now = h_sched_delay_ns(w->pid);
    if (now > w->base)
      w->ns += now - w->base;
  }
  if (pid != w->pid) {
    w->pid = pid;
    w->base = pid > 0 ? h_sched_delay_ns(pid) : 0;
  } else if (w->pid > 0) {
    w->base = h_sched_delay_ns(pid);
  }
}

static void param_set(struct h_conn *c, const char *slot, const char *param, double value) {
  json_decref(h_call(c, "param.set",
                     json_pack("{s:s, s:s, s:f}", "name", slot, "param", param, "value", value)));
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char report[4200], preload[4200], report_env[4300];

  h_init("seamless", 110);
  snprintf(report, sizeof(report), "%s/rtcheck.report", h_tmpdir());
  snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", RWT_RTCHECK);
  snprintf(report_env, sizeof(report_env), "RUNWAY_RTCHECK_REPORT=%s", report);
  const char *env[] = {preload, report_env, NULL};
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, env);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 2, false, 3, 0, 0);
  h_watch_skips(p, &d);

  /* ---- 1. impulses and a sine across replace and a seamless restart ------------------ */
  json_t *sw = h_add_slot(&c, "sw",
                          json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 2,
                                    "outputs", 2, "latency_frames", L),
                          10000);
  json_t *tone = h_add_slot(
      &c, "tone", json_pack("{s:s, s:i, s:i}", "plugin", "sine", "inputs", 0, "outputs", 1), 10000);
  h_probe_path_latency(p, L);
  h_connect(p, h_probe_out(p, 0), port_of(sw, "inputs", 0));
  h_connect(p, port_of(tone, "outputs", 0), port_of(sw, "inputs", 1));
  h_connect(p, port_of(sw, "outputs", 0), h_probe_in(p, 0));
  h_connect(p, port_of(sw, "outputs", 1), h_probe_in(p, 1));
  json_decref(tone);

  /*
   * Rounds of swaps one after another while the impulses flow: replacements
   * to another plugin (gain, passthrough, gain...) and seamless restarts in
   * turn. A swap whose window saw a JACK xrun (the machine late: JACK may
   * lose a cycle between clients) is logged and not used for the sine; a
   * round whose impulses a disturbance left too few exact is played again,
   * as is one until each kind of swap had a clean window.
   */
  const unsigned out0 = 0;
  unsigned n_swaps = 0, clean_replace = 0, clean_restart = 0, best = 0;
  bool impulses_exact = false, misaligned = false;
  json_int_t u1 = h_slot_stat(&c, "sw", "underruns");
  for (unsigned round = 1;
       round <= ROUNDS && (!impulses_exact || clean_replace == 0 || clean_restart == 0); round++) {
    uint32_t first = h_probe_n_events(p);
    uint64_t start = h_probe_now(p);
    uint64_t last = h_impulse_train(p, &out0, 1, 160, 400, 2 * L);
    struct {
      uint32_t frame;
      bool restart, clean;
    } swaps[SWAPS];
    unsigned n = 0;
    uint64_t xruns0 = h_probe_xruns(p), skipped0 = h_daemon_skipped(&c);
    h_sleep_ms(100);
    json_int_t u0 = h_slot_stat(&c, "sw", "underruns");
    json_int_t tone0 = h_slot_stat(&c, "tone", "underruns");
    /* How long sw's workers waited for a CPU (they run at normal priority, as any process). */
    struct waited w = {0};
    waited_follow(&w, &c);
    while (n < SWAPS && (clean_replace == 0 || clean_restart == 0 || n == 0) &&
           h_probe_now(p) + 3 * RATE / 10 < last) {
      bool restart = n_swaps % 2 == 1;
      const char *plugin = n_swaps % 4 == 0 ? "gain" : "passthrough";
      /*
       * The sine is checked from 100 ms before the switch: xruns, and cycles
       * JACK let go by without runwayd (its clock skipped: a gap in the sine
       * that is the graph's), count from before that.
       */
      uint64_t xruns = h_probe_xruns(p), skips = h_daemon_skipped(&c);
      h_sleep_ms(120);
      /* The worker that goes, while it is there to ask: once stopped, its wait is gone. */
      waited_follow(&w, &c);
      json_t *r =
          restart ? h_call(&c, "slot.restart", json_pack("{s:s, s:b}", "name", "sw", "seamless", 1))
                  : h_call(&c, "slot.replace",
                           json_pack("{s:s, s:s, s:i}", "name", "sw", "plugin", plugin,
                                     "crossfade_ms", XFADE_MS));
      char label[64];
      snprintf(label, sizeof(label), restart ? "restart --seamless" : "replace -> %s", plugin);
      swaps[n].frame = check_switch(r, label);
      swaps[n].restart = restart;
      if (!restart)
        H_CHECK(strcmp(h_str(r, "plugin"), plugin) == 0, "the slot runs %s", h_str(r, "plugin"));
      H_CHECK(h_int(json_object_get(r, "switch"), "crossfade_frames") == XFADE,
              "crossfade of %lld frames",
              (long long)h_int(json_object_get(r, "switch"), "crossfade_frames"));
      H_CHECK(h_int(r, "latency_frames") == L, "L changed to %lld",
              (long long)h_int(r, "latency_frames"));
      json_decref(r);
      waited_follow(&w, &c);
      h_sleep_ms(150); /* the crossfade and 100 ms after it have played */
      swaps[n].clean = h_probe_xruns(p) == xruns && h_daemon_skipped(&c) == skips;
      if (!swaps[n].clean)
        h_log("%s: a JACK xrun or a skip of runwayd's clock near the switch; its sine is not "
              "checked",
              label);
      n++;
      n_swaps++;
    }

    h_probe_wait_frame(p, last + L + 2 * PERIOD, 15000);
    u1 = h_slot_stat(&c, "sw", "underruns");
    waited_follow(&w, &c);
    bool skipped = h_daemon_skipped(&c) != skipped0;
    bool disturbed = skipped || h_probe_xruns(p) != xruns0;
    if (skipped) {
      /* runwayd's clock jumped where the probe's may not have: a busy graph, not the swap. */
      h_log("round %u: runwayd's clock skipped frames; checked leniently there", round);
    }
    double waited_ms = (double)w.ns / 1e6;
    /* The sine's own slot underran (its worker late too): its gaps are not sw's. */
    bool tone_gaps = h_slot_stat(&c, "tone", "underruns") != tone0;
    if (tone_gaps)
      h_log("round %u: the sine's slot underran; the sine is not checked in this round", round);
    h_log("round %u: %u swaps; underruns of sw meanwhile: %lld; its workers waited %.1f ms for a "
          "CPU",
          round, n, (long long)(u1 - u0), waited_ms);
    /* An underrun is the machine's when the graph was disturbed or a worker kept waiting L. */
    if (u1 != u0 && !disturbed && waited_ms < L * 1000.0 / RATE)
      h_error("%lld underrun(s) during the swaps, with no xrun or skip of the graph and the "
              "workers waiting only %.1f ms for a CPU",
              (long long)(u1 - u0), waited_ms);
    struct h_check ck;
    h_check_impulses(p, 0, 0, L, first, start, last + L + 1, u1 != u0, "across the swaps", &ck);
    if (ck.verdict == H_MISALIGNED) {
      h_error("the impulses did not come out exactly L later, once each, across the swaps");
      misaligned = true;
      break;
    }
    if (ck.exact + ck.optional_exact > best)
      best = ck.exact + ck.optional_exact;
    if (ck.verdict == H_EXACT)
      impulses_exact = true;
    else
      h_log("round %u: too few impulses exact next to disturbances; again", round);
    for (unsigned i = 0; i < n; i++) {
      /* Each switch happened while the impulses flowed out. */
      int64_t a = frames_after(swaps[i].frame, start + 2 * L);
      int64_t b = frames_after(swaps[i].frame, last + L);
      if (a <= 0 || b >= 0) {
        /* The test thread was held up: this swap went untested, another round tests one. */
        h_log("switch %u at %u is not inside the train (%llu .. %llu); not counted", i,
              swaps[i].frame, (unsigned long long)(start + 2 * L), (unsigned long long)(last + L));
        continue;
      }
      /* An underrun (excused above) may have left a gap in the sine anywhere in the round. */
      if (!swaps[i].clean || u1 != u0 || tone_gaps)
        continue;
      uint64_t f = last + L - (uint64_t)(-b);
      check_sine(p, 1, f - 4800, f + XFADE + 4800,
                 swaps[i].restart ? "restart --seamless" : "replace");
      if (swaps[i].restart)
        clean_restart++;
      else
        clean_replace++;
    }
  }
  /*
   * sw plays on through part 2 (the sine's slot removed, the delay added and
   * replaced again and again): its underruns there are checked against that
   * window's own disturbances, before part 3 counts from its own start.
   */
  uint64_t between_xruns0 = h_probe_xruns(p), between_skipped0 = h_daemon_skipped(&c);
  struct waited between = {0};
  waited_follow(&between, &c);

  /* The sine stops recording: its slot goes (the sink would fill up). */
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", "tone")));
  if (!impulses_exact && !misaligned)
    h_error("at most %u of 160 impulses exact across the swaps in %u rounds, each disturbed "
            "(xruns or skips of the graph): the machine is too busy to measure",
            best, ROUNDS);
  if (!misaligned && (clean_replace == 0 || clean_restart == 0))
    h_error("no swap of each kind without a JACK xrun nearby in %u rounds (%u replace, %u "
            "restart): the machine is too busy to check the sine across both",
            ROUNDS, clean_replace, clean_restart);

  /* ---- 2. a delay replaced by a delay: the echo of audio from before the switch -------- */
  json_t *dl = h_add_slot(&c, "dl",
                          json_pack("{s:s, s:i, s:i, s:i}", "plugin", "delay", "inputs", 1,
                                    "outputs", 1, "latency_frames", L),
                          10000);
  param_set(&c, "dl", "feedback", 0.0);
  param_set(&c, "dl", "mix", 1.0);
  param_set(&c, "dl", "time_ms", ECHO_MS);
  h_probe_path_latency(p, L + ECHO);
  h_connect(p, h_probe_out(p, 1), port_of(dl, "inputs", 0));
  h_connect(p, port_of(dl, "outputs", 0), h_probe_in(p, 2));
  json_decref(dl);
  h_sleep_ms(300); /* the time glide (50 ms) is over */
  /*
   * An attempt proves nothing when the switch came after the echo was due,
   * when the test thread came too late to send the impulse, or when a
   * disturbance of the graph (an xrun, a late run, runwayd's clock skipping)
   * excused the echo: then it is made again.
   */
  bool proven = false;
  for (int attempt = 1; attempt <= ECHO_ATTEMPTS && !proven; attempt++) {
    uint64_t skipped0 = h_daemon_skipped(&c), xruns0 = h_probe_xruns(p);
    json_int_t dl_u0 = h_slot_stat(&c, "dl", "underruns");
    uint64_t from = h_probe_cycle(p);
    uint32_t id = h_probe_impulse(p, 1, h_probe_now(p) + 8 * PERIOD, 1.0f);
    uint64_t fi = h_probe_frame(p, id);
    /* The impulse has gone into runwayd's input ring before the replacement. */
    h_probe_wait_frame(p, fi + 4 * PERIOD, 5000);
    json_t *r =
        h_call(&c, "slot.replace", json_pack("{s:s, s:s}", "name", "dl", "plugin", "delay"));
    uint32_t s = check_switch(r, "replace delay -> delay");
    json_decref(r);
    uint64_t echo = fi + L + ECHO;
    int64_t margin = -frames_after(s + XFADE, echo);
    h_probe_wait_frame(p, echo + 2 * PERIOD, 10000);
    if (h_probe_status(p, id) != H_EV_EMITTED) {
      h_log("attempt %d: the test thread came too late to send the impulse; again", attempt);
      continue;
    }
    if (margin <= 0) {
      h_log("attempt %d: the switch came %lld frames after the echo was due; again", attempt,
            (long long)-margin);
      continue;
    }
    if (h_daemon_skipped(&c) != skipped0) {
      h_log("attempt %d: runwayd's clock skipped frames; checked leniently there", attempt);
    }
    json_int_t dl_under = h_slot_stat(&c, "dl", "underruns") - dl_u0;
    h_log("attempt %d: the impulse went in %lld frames before the switch, its echo was due %lld "
          "frames after the crossfade; underruns of dl meanwhile: %lld",
          attempt, (long long)frames_after(s, fi), (long long)margin, (long long)dl_under);
    if (dl_under > 0 && (h_daemon_skipped(&c) != skipped0 || h_probe_xruns(p) != xruns0)) {
      /* Its worker fell behind while the graph was disturbed: the echo may be lost, not moved. */
      h_log("attempt %d: the delay underran while the graph was disturbed; again", attempt);
      continue;
    }
    struct h_expect ex = {.frame = echo, .value = 1.0f};
    struct h_check ck;
    h_check_port_delay(p, 2, &ex, 1, from, echo + PERIOD, L + ECHO, 0,
                       "delay echo across the switch", &ck);
    if (ck.verdict == H_MISALIGNED)
      h_error("the echo of an impulse sent before the switch is not at exactly L + %d ms with "
              "its value: the new delay did not hear its history",
              ECHO_MS);
    proven = ck.verdict != H_DISTURBED;
    if (!proven)
      h_log("attempt %d: a disturbance of the graph near the echo; again", attempt);
  }
  if (!proven)
    h_error("in %d attempts no replacement switched before its echo was due with the graph "
            "undisturbed: the machine is too busy, the history was never tested",
            ECHO_ATTEMPTS);

  {
    json_int_t u = h_slot_stat(&c, "sw", "underruns");
    waited_follow(&between, &c);
    bool disturbed = h_probe_xruns(p) != between_xruns0 ||
                     h_daemon_skipped(&c) != between_skipped0 ||
                     between.ns >= L * UINT64_C(1000000000) / RATE;
    h_log("part 2: underruns of sw meanwhile: %lld; its worker waited %.1f ms for a CPU%s",
          (long long)(u - u1), (double)between.ns / 1e6, disturbed ? "; disturbed" : "");
    if (u != u1 && !disturbed)
      h_error("%lld underrun(s) of sw while the delay was tested beside it, with no xrun or skip "
              "of the graph and its worker waiting only %.1f ms for a CPU",
              (long long)(u - u1), (double)between.ns / 1e6);
  }

  /* ---- 3. a new worker that fails: the old one plays on -------------------------------- */
  /* Again when a disturbance of the graph left too few impulses exact. */
  bool played_on = false;
  for (unsigned round = 1; round <= ROUNDS && !played_on; round++) {
    uint32_t first = h_probe_n_events(p);
    uint64_t start = h_probe_now(p), skipped0 = h_daemon_skipped(&c);
    uint64_t xruns0 = h_probe_xruns(p);
    struct waited w = {0};
    waited_follow(&w, &c);
    /* Underruns count from here, with the disturbances that may excuse them: one window. */
    u1 = h_slot_stat(&c, "sw", "underruns");
    uint64_t last = h_impulse_train(p, &out0, 1, 20, 400, 2 * L);
    json_t *before = h_slot(&c, "sw");
    char plugin_before[64];
    snprintf(plugin_before, sizeof(plugin_before), "%s", h_str(before, "plugin"));
    json_decref(before);
    json_t *fr =
        h_call_error(&c, "slot.replace",
                     json_pack("{s:s, s:s}", "name", "sw", "exec", "/bin/false"), "spawn_failed");
    const char *msg = h_str(json_object_get(fr, "error"), "message");
    h_log("a failing replacement: %s", msg ? msg : "?");
    H_CHECK(msg != NULL && strstr(msg, "exited") != NULL, "the error does not say why");
    json_decref(fr);
    json_t *after = h_slot(&c, "sw");
    H_CHECK(strcmp(h_str(after, "plugin"), plugin_before) == 0 &&
                strcmp(h_str(after, "state"), "running") == 0,
            "after a failed replacement the slot runs %s, %s (before: %s)", h_str(after, "plugin"),
            h_str(after, "state"), plugin_before);
    json_decref(after);
    h_probe_wait_frame(p, last + L + 2 * PERIOD, 15000);
    bool skipped = h_daemon_skipped(&c) != skipped0;
    if (skipped)
      h_log("runwayd's clock skipped frames; checked leniently there");
    waited_follow(&w, &c);
    bool excused = skipped || h_probe_xruns(p) != xruns0 || w.ns >= L * UINT64_C(1000000000) / RATE;
    json_int_t u2 = h_slot_stat(&c, "sw", "underruns");
    if (u2 != u1 && !excused)
      h_error("%lld underrun(s) around the failed replacement, with no xrun or skip of the graph "
              "and the worker waiting only %.1f ms for a CPU",
              (long long)(u2 - u1), (double)w.ns / 1e6);
    struct h_check ck;
    h_check_impulses(p, 0, 0, L, first, start, last + L + 1, u2 != u1, "after a failed replace",
                     &ck);
    if (ck.verdict == H_MISALIGNED) {
      h_error("the old worker did not play on exactly after a failed replacement");
      break;
    }
    played_on = ck.verdict == H_EXACT;
    if (!played_on && round == ROUNDS)
      h_error("after a failed replacement too few impulses exact in %u rounds, each disturbed: "
              "the machine is too busy to measure",
              ROUNDS);
  }

  json_decref(sw);
  h_probe_close(p);
  h_conn_close(&c);
  h_check_rt_report(report, h_daemon_stop(&d));
  h_jack_stop(&jack);
  h_pass();
}
