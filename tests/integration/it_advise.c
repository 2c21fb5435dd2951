/*
 * it_advise: the latency advisor's suggestion, applied, holds.
 *
 * A worker that stops for 30 ms once per second of audio runs in a slot with
 * L = 20 ms: it underruns once a second. After a few seconds, `slot advise`
 * (over the socket and through runwayctl) must name an L above 30 ms, and
 * below a sane bound, from the smallest lead it saw (negative: the cycles
 * came up short). The slot is then added again with the suggested L and the
 * same worker: over as long again, not one underrun. The lead histogram is
 * in `stats NAME --json` and counts every cycle. A round in which the machine
 * kept the worker from a CPU (or runwayd's clock skipped) is played again,
 * ROUNDS at most.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#ifndef RWT_PAUSER
#error "RWT_PAUSER must be defined by the build"
#endif
#ifndef RWT_RUNWAYCTL
#error "RWT_RUNWAYCTL must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128
#define PAUSE_MS 30
#define L_SHORT 960 /* 20 ms */
#define OBSERVE_S 6
#define ROUNDS 3
/* A worker kept this long from a CPU over a window: its lead was the machine's, not the pauses'. */
#define MACHINE_MS 5

static json_t *add(struct h_conn *c, uint32_t latency) {
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "%s %d", RWT_PAUSER, PAUSE_MS);
  return h_add_slot(c, "ad",
                    json_pack("{s:s, s:i, s:i, s:i}", "exec", cmd, "inputs", 1, "outputs", 1,
                              "latency_frames", latency),
                    10000);
}

/* Cycles the histogram counted, and in its first bucket (short cycles). */
static void histogram(struct h_conn *c, json_int_t *cycles, json_int_t *short_cycles) {
  json_t *st = h_slot_stats(c, "ad");
  const json_t *h = json_object_get(st, "lead_histogram");
  H_CHECK(json_is_array(h) && json_array_size(h) > 1, "stats has no lead_histogram");
  *cycles = 0;
  for (size_t i = 0; i < json_array_size(h); i++)
    *cycles += json_integer_value(json_array_get(h, i));
  *short_cycles = json_integer_value(json_array_get(h, 0));
  json_decref(st);
}

/*
 * One round: observe at L = 20 ms, ask for advice, apply it and observe
 * again. True once decided (held, or an error reported); false when the
 * machine kept the worker from a CPU (or runwayd's clock skipped) in a way
 * the pauses alone do not explain: the round is played again.
 */
static bool advise_round(struct h_conn *c, const char *socket, unsigned round) {
  /* ---- L = 20 ms: the pauses underrun ------------------------------------------------ */
  json_t *s = add(c, L_SHORT);
  pid_t pid = (pid_t)h_int(s, "pid");
  json_decref(s);
  uint64_t waited0 = h_sched_delay_ns(pid), skipped0 = h_daemon_skipped(c);
  h_sleep_ms(OBSERVE_S * 1000);
  /* The machine, not the pauses: the worker kept from a CPU, or runwayd's clock skipping. */
  double waited_ms = (double)(h_sched_delay_ns(pid) - waited0) / 1e6;
  bool busy = waited_ms >= MACHINE_MS || h_daemon_skipped(c) != skipped0;
  json_int_t under = h_slot_stat(c, "ad", "underruns");
  json_int_t cycles, short_cycles;
  histogram(c, &cycles, &short_cycles);
  h_log("L = %d frames: %lld underruns in %d s; histogram: %lld cycles, %lld short", L_SHORT,
        (long long)under, OBSERVE_S, (long long)cycles, (long long)short_cycles);
  if (under < OBSERVE_S / 2)
    h_error("a worker pausing %d ms at L = 20 ms underran only %lld times", PAUSE_MS,
            (long long)under);
  if (short_cycles < under)
    h_error("the histogram counts %lld short cycles for %lld underruns", (long long)short_cycles,
            (long long)under);

  json_t *a = h_call(c, "slot.advise", json_pack("{s:s}", "name", "ad"));
  json_int_t lead = h_int(a, "lead_min_frames"), needed = h_int(a, "needed_frames");
  json_int_t suggested = h_int(a, "suggested_frames");
  h_log("advice: lead min %lld frames, needed %lld, suggested %lld (%.1f ms) over %.1f s: %s",
        (long long)lead, (long long)needed, (long long)suggested, suggested * 1000.0 / RATE,
        json_number_value(json_object_get(a, "observed_s")), h_str(a, "advice"));
  H_CHECK(lead < 0, "the smallest lead (%lld) shows no short cycle", (long long)lead);
  H_CHECK(needed == L_SHORT - lead, "needed %lld is not L - lead", (long long)needed);
  H_CHECK(suggested > needed, "no margin: suggested %lld, needed %lld", (long long)suggested,
          (long long)needed);
  json_decref(a);
  /* Above the pause, and not absurdly so (the pause, a period or two, a margin). */
  H_CHECK(suggested > PAUSE_MS * RATE / 1000, "suggested %lld frames for %d ms pauses",
          (long long)suggested, PAUSE_MS);
  if (suggested >= 4 * PAUSE_MS * RATE / 1000) {
    if (!busy)
      h_error("suggested %lld frames for %d ms pauses", (long long)suggested, PAUSE_MS);
    else
      h_log("round %u: the worker waited %.1f ms for a CPU (or runwayd skipped): the smallest "
            "lead was the machine's, not the pauses'; again",
            round, waited_ms);
    json_decref(h_call(c, "slot.remove", json_pack("{s:s}", "name", "ad")));
    return !busy;
  }

  /* The same advice for people, through runwayctl. */
  const char *argv[] = {RWT_RUNWAYCTL, "--socket", socket, "slot", "advise", "ad", NULL};
  char *out = NULL, log[4200];
  snprintf(log, sizeof(log), "%s/runwayctl.log", h_tmpdir());
  int status = h_run_capture(argv, NULL, NULL, log, 10000, &out);
  h_log("runwayctl slot advise ad:\n%s", out ? out : "");
  char want[64];
  snprintf(want, sizeof(want), "--latency-frames %lld", (long long)suggested);
  H_CHECK(status == 0 && out != NULL && strstr(out, want) != NULL,
          "runwayctl slot advise does not suggest %s", want);
  free(out);

  /* ---- the suggestion applied: no underrun, same worker ------------------------------- */
  json_decref(h_call(c, "slot.remove", json_pack("{s:s}", "name", "ad")));
  s = add(c, (uint32_t)suggested);
  pid = (pid_t)h_int(s, "pid");
  H_CHECK(h_int(s, "latency_frames") == suggested, "L is %lld",
          (long long)h_int(s, "latency_frames"));
  json_decref(s);
  waited0 = h_sched_delay_ns(pid);
  skipped0 = h_daemon_skipped(c);
  h_sleep_ms(OBSERVE_S * 1000);
  waited_ms = (double)(h_sched_delay_ns(pid) - waited0) / 1e6;
  /* Waits shorter than the advice's margin in all cannot have eaten it at any one pause. */
  busy = waited_ms * RATE / 1000 >= (double)(suggested - needed) || h_daemon_skipped(c) != skipped0;
  json_int_t after = h_slot_stat(c, "ad", "underruns");
  histogram(c, &cycles, &short_cycles);
  a = h_call(c, "slot.advise", json_pack("{s:s}", "name", "ad"));
  h_log("L = %lld frames: %lld underruns in %d s; smallest lead %lld frames; histogram: %lld "
        "cycles, %lld short",
        (long long)suggested, (long long)after, OBSERVE_S, (long long)h_int(a, "lead_min_frames"),
        (long long)cycles, (long long)short_cycles);
  json_decref(a);
  if (cycles < OBSERVE_S * RATE / PERIOD / 2)
    h_error("the histogram counted only %lld cycles in %d s", (long long)cycles, OBSERVE_S);
  json_decref(h_call(c, "slot.remove", json_pack("{s:s}", "name", "ad")));
  if (after == 0)
    return true;
  if (!busy) {
    h_error("with the advised L the same worker still underran %lld times", (long long)after);
    return true;
  }
  h_log("round %u: %lld underrun(s) with the advised L while the worker waited %.1f ms for a "
        "CPU (or runwayd skipped): the machine's delays, not the pauses; again",
        round, (long long)after, waited_ms);
  return false;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;

  h_init("advise", 80);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");

  bool decided = false;
  for (unsigned round = 1; round <= ROUNDS && !decided; round++)
    decided = advise_round(&c, d.socket, round);
  if (!decided)
    h_error("%u rounds, each with the worker kept from a CPU beyond its pauses: the machine is "
            "too busy to test the advice",
            ROUNDS);

  h_conn_close(&c);
  h_daemon_stop(&d);
  h_jack_stop(&jack);
  h_pass();
}
