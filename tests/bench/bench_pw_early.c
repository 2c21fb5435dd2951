/*
 * runway-bench-pw-early: where an impulse that comes out a period early (or
 * late) through a slot on PipeWire is shifted, under load. On a private
 * headless PipeWire, with busy loops beside it, a passthrough slot (L = 2400)
 * carries impulses from a measuring client of PipeWire's own (pw_probe.c)
 * for a while, once with runwayd --backend pipewire and once with runwayd
 * --backend jack under pw-jack (all slots in one JACK client). Each impulse
 * is exact, early or late by whole periods, or missing; each one that is not
 * exact is put down to
 *
 *   probe   a node of the measuring client ran late at the impulse's
 *           emission or its reception (it read the next cycle's clock), so
 *           its own labels may be a period off;
 *   graph   else, PipeWire's profiler saw a cycle there that did not finish
 *           (some node, runwayd's included, was late);
 *   runway  else: nothing outside the slot saw anything (the slot's worker
 *           may have underrun: starved of CPU for longer than L; the slot's
 *           underruns are reported beside).
 *
 * One JSON line per mode on stdout; progress on stderr.
 *
 * usage: runway-bench-pw-early [--seconds S] [--period FRAMES] [--busy N]
 *   --seconds  impulses for S seconds per mode (default 20)
 *   --period   the graph's quantum (default 128)
 *   --busy     busy loops beside the graph (default: one per CPU)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pw_monitor.h"
#include "pw_probe.h"

#ifndef RUNWAY_BENCH_BUILD
#define RUNWAY_BENCH_BUILD "unknown"
#endif
#ifndef RWB_PW_JACK_DIR
#error "RWB_PW_JACK_DIR (PipeWire's libjack directory) must be defined by the build"
#endif

#define RATE 48000
#define L 2400
#define GAP 1100

static FILE *json_out;

enum { EARLY, LATE, MISSING };

struct counts {
  unsigned impulses, exact, early, late, missing;
  unsigned by_probe, by_graph, by_runway; /* of the ones not exact */
  unsigned runway[3];                     /* by_runway by kind: early, late, missing */
};

static void pw_link(const char *from, const char *to) {
  char log[4200], *out = NULL, st[64];
  snprintf(log, sizeof(log), "%s/pw-link.log", h_tmpdir());
  const char *argv[] = {"pw-link", from, to, NULL};
  int ws = h_run_capture(argv, NULL, NULL, log, 10000, &out);
  free(out);
  H_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "pw-link %s %s: %s", from, to,
          h_status_str(ws, st, sizeof(st)));
}

static void classify(struct pwp *p, struct pwm *m, uint32_t first, uint32_t last, uint32_t n,
                     struct counts *c) {
  const struct pwp_record *rec;
  size_t nrec = pwp_records(p, &rec);
  size_t k = 0;
  for (uint32_t id = first; id <= last; id++) {
    const struct pwp_record *e = pwp_event(p, id);
    if (pwp_status(p, id) != 1)
      continue;
    c->impulses++;
    uint64_t want = e->frame + L;
    /* Records are in frame order: the first one with this value near where it belongs. */
    while (k < nrec && rec[k].frame + 4 * n < want)
      k++;
    int64_t off = INT64_MAX;
    for (size_t j = k; j < nrec && rec[j].frame <= want + 4 * n; j++) {
      if (rec[j].value == e->value) {
        off = (int64_t)rec[j].frame - (int64_t)want;
        break;
      }
    }
    if (off == 0) {
      c->exact++;
      continue;
    }
    int kind = off == INT64_MAX ? MISSING : off < 0 ? EARLY : LATE;
    if (kind == MISSING)
      c->missing++;
    else if (kind == EARLY)
      c->early++;
    else
      c->late++;
    uint64_t lo_in = e->frame - 2 * n, hi_in = e->frame + 3 * n;
    uint64_t lo_out = want - 5 * n, hi_out = want + 5 * n;
    if (pwp_disturbed(p, lo_in, hi_in) || pwp_disturbed(p, lo_out, hi_out))
      c->by_probe++;
    else if (pwm_disturbed(m, lo_in, hi_in) || pwm_disturbed(m, lo_out, hi_out))
      c->by_graph++;
    else {
      c->by_runway++;
      c->runway[kind]++;
    }
  }
}

static void run_mode(struct h_jack *srv, bool pwjack, unsigned seconds, uint32_t period) {
  struct h_daemon d;
  struct h_conn c;
  char jack_env[4200], in[256], out[256];
  struct counts cnt = {0};
  snprintf(jack_env, sizeof(jack_env), "LD_LIBRARY_PATH=%s", RWB_PW_JACK_DIR);
  const char *jack_args[] = {"--backend", "jack", "--log-level", "warn", NULL};
  const char *native_args[] = {"--log-level", "warn", NULL};
  const char *env[] = {jack_env, NULL};
  const char *mode = pwjack ? "pw-jack" : "native";
  h_daemon_start(&d, srv, pwjack ? jack_args : native_args, pwjack ? env : NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  json_decref(h_add_slot(&c, "pt",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000));
  struct pwm *m = pwm_open();
  H_CHECK(m != NULL, "cannot listen to PipeWire's profiler");
  struct pwp *p = pwp_open(pwjack ? "rwe-j" : "rwe-n", 0, 0);
  /* Both runwayds name their ports <client>:pt.in_1: an alias, or node.name:port.name. */
  snprintf(in, sizeof(in), "%s:pt.in_1", d.name);
  snprintf(out, sizeof(out), "%s:pt.out_1", d.name);
  pw_link(pwp_source_port(p), in);
  pw_link(out, pwp_sink_port(p));
  h_sleep_ms(500);
  json_t *before = h_daemon_stats(&c);
  json_int_t under0 = h_slot_stat(&c, "pt", "underruns");

  /* Impulses GAP frames apart (varied), scheduled a second ahead, for `seconds`. */
  uint64_t frame = pwp_position(p) + RATE;
  uint32_t first = 0, last = 0;
  bool any = false;
  uint64_t end = frame + (uint64_t)seconds * RATE;
  while (frame < end) {
    while (frame < pwp_position(p) + RATE && frame < end) {
      uint32_t id = pwp_impulse(p, frame, 0.25f + 0.001f * (float)(frame % 500));
      if (!any)
        first = id;
      any = true;
      last = id;
      frame += GAP + (frame * 7) % 97;
    }
    h_sleep_ms(100);
  }
  while (pwp_sink_end(p) < frame + L + 8 * period)
    h_sleep_ms(20);
  json_t *after = h_daemon_stats(&c);
  json_int_t underruns = h_slot_stat(&c, "pt", "underruns") - under0;
  classify(p, m, first, last, period, &cnt);
  long long xruns = h_int(after, "xruns") - h_int(before, "xruns");
  long long skipped = h_int(after, "skipped_frames") - h_int(before, "skipped_frames");
  fprintf(json_out,
          "{\"bench\":\"pw_early\",\"build\":\"%s\",\"mode\":\"%s\",\"period\":%u,\"L\":%u,"
          "\"impulses\":%u,\"exact\":%u,\"early\":%u,\"late\":%u,\"missing\":%u,"
          "\"by_probe\":%u,\"by_graph\":%u,\"by_runway\":%u,\"runway_early\":%u,"
          "\"runway_late\":%u,\"runway_missing\":%u,\"runwayd_xruns\":%lld,"
          "\"runwayd_skipped_frames\":%lld,\"slot_underruns\":%lld,\"probe_late_cycles\":%u,"
          "\"graph_incomplete\":%u}\n",
          RUNWAY_BENCH_BUILD, mode, period, L, cnt.impulses, cnt.exact, cnt.early, cnt.late,
          cnt.missing, cnt.by_probe, cnt.by_graph, cnt.by_runway, cnt.runway[EARLY],
          cnt.runway[LATE], cnt.runway[MISSING], xruns, skipped, (long long)underruns,
          pwp_disturbances(p), pwm_incomplete(m));
  fflush(json_out);
  h_log("%s: %u impulses, %u exact, %u early, %u late, %u missing; not exact: %u near the probe's "
        "late cycles, %u near the graph's, %u with nothing seen outside the slot",
        mode, cnt.impulses, cnt.exact, cnt.early, cnt.late, cnt.missing, cnt.by_probe, cnt.by_graph,
        cnt.by_runway);
  json_decref(before);
  json_decref(after);
  pwp_close(p);
  pwm_close(m);
  h_conn_close(&c);
  h_daemon_stop(&d);
}

int main(int argc, char **argv) {
  unsigned seconds = 20, busy = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t period = 128;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--period") == 0 && i + 1 < argc)
      period = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--busy") == 0 && i + 1 < argc)
      busy = (unsigned)strtoul(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: runway-bench-pw-early [--seconds S] [--period FRAMES] [--busy N]\n");
      return 2;
    }
  }
  if (seconds < 1 || seconds > 600 || period < 16 || period > 8192 || busy > 16)
    return fprintf(stderr, "--seconds 1..600, --period 16..8192, --busy 0..16\n"), 2;
  setenv("RWT_BACKEND", "pipewire", 1);
  json_out = fdopen(dup(STDOUT_FILENO), "w");
  if (json_out == NULL || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
    return 1;
  h_init("bench_pw_early", 60 + 4 * seconds);
  struct h_jack srv;
  h_jack_start(&srv, RATE, period);
  struct h_proc loops[16];
  const char *loop[] = {"sh", "-c", "while :; do :; done", NULL};
  for (unsigned i = 0; i < busy; i++)
    h_spawn(&loops[i], "busy loop", loop, NULL, NULL, NULL);
  h_log("%u busy loop(s) beside the graph", busy);
  run_mode(&srv, false, seconds, period);
  run_mode(&srv, true, seconds, period);
  for (unsigned i = 0; i < busy; i++)
    h_proc_stop(&loops[i], SIGKILL, 1000);
  h_jack_stop(&srv);
  h_pass();
}
