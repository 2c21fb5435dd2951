/*
 * it_midi_timing: MIDI is sample-accurate end to end. The probe sends
 * note-ons and note-offs at known frames into an --exec slot running
 * worker_midi_impulse (built on the SDK's pull API), which answers each with
 * one sample (1.0 for a note-on, 0.5 for a note-off) at the event's offset.
 * Every answer must come out at exactly frame + L: several events per cycle,
 * at offsets 0, 1, the middle and period - 1, on adjacent frames across
 * cycle boundaries, across the worker's block boundaries, before and after a
 * worker restart. The slot's output also reports the MIDI input's capture
 * latency + L to JACK.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#ifndef RWT_MIDI_IMPULSE
#error "RWT_MIDI_IMPULSE must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128
#define L 1000 /* not a multiple of the period */
#define SRC_LAT 40
#define CYCLES 60

struct sent {
  uint32_t id;
  float value;
};

/* Offsets (inside a cycle) of the events of cycle c. */
static unsigned offsets_of(unsigned c, unsigned *out) {
  switch (c % 4) {
  case 0:
    out[0] = 0, out[1] = 1, out[2] = PERIOD / 2, out[3] = PERIOD - 1;
    return 4;
  case 1:
    out[0] = 0, out[1] = 37, out[2] = 38, out[3] = 100;
    return 4;
  case 2:
    out[0] = 5, out[1] = PERIOD - 2, out[2] = PERIOD - 1;
    return 3;
  default:
    out[0] = 0, out[1] = 64;
    return 2;
  }
}

/* Schedules CYCLES cycles of events; returns how many, fills sent[]. */
static size_t schedule(struct h_probe *p, struct sent *sent, uint64_t *last) {
  uint64_t phase = h_probe_sink_first(p) % PERIOD;
  uint64_t start = h_probe_now(p) + 4800;
  start += (PERIOD - (start + PERIOD - phase) % PERIOD) % PERIOD; /* a cycle's first frame */
  size_t n = 0;
  unsigned note = 0;
  for (unsigned c = 0; c < CYCLES; c++) {
    unsigned off[4];
    unsigned k = offsets_of(c, off);
    for (unsigned i = 0; i < k; i++) {
      uint64_t f = start + (uint64_t)c * PERIOD + off[i];
      uint8_t key = (uint8_t)(36 + note % 48);
      if (note % 2 == 0) {
        sent[n].id = h_probe_midi3(p, f, 0x90 | (note % 16), key, 100); /* note-on */
        sent[n].value = 1.0f;
      } else if (note % 6 == 3) {
        sent[n].id = h_probe_midi3(p, f, 0x90, key, 0); /* note-on with velocity 0: an off */
        sent[n].value = 0.5f;
      } else {
        sent[n].id = h_probe_midi3(p, f, 0x80 | (note % 16), key, 64); /* note-off */
        sent[n].value = 0.5f;
      }
      note++;
      n++;
      *last = f;
    }
  }
  return n;
}

static json_int_t underruns_of(struct h_conn *c) {
  json_t *st = h_slot_stats(c, "mi");
  json_int_t u = h_int(st, "underruns");
  json_decref(st);
  return u;
}

/* One round of events; returns the check's verdict. */
static enum h_verdict one_round(struct h_probe *p, struct h_conn *c, uint64_t *checked,
                                const char *label) {
  struct sent *sent = calloc(CYCLES * 4, sizeof(*sent));
  json_int_t u0 = underruns_of(c);
  uint64_t skipped0 = h_daemon_skipped(c), start = h_probe_cycle(p);
  uint64_t last = 0;
  size_t n = schedule(p, sent, &last);
  h_probe_wait_frame(p, last + L + 2 * PERIOD, 15000);
  if (h_daemon_skipped(c) != skipped0) {
    /* runwayd's clock jumped where the probe's may not have: a busy graph, not the slot. */
    h_log("%s: runwayd's clock skipped frames meanwhile; checked leniently", label);
    if (!h_watching_skips(p)) /* the watcher placed them */
      h_probe_mark_disturbed(p, start, last + L + 1);
  }
  struct h_expect *ex = calloc(n, sizeof(*ex));
  size_t k = 0;
  unsigned late = 0;
  for (size_t i = 0; i < n; i++) {
    ex[k].frame = h_probe_frame(p, sent[i].id) + L;
    ex[k].value = sent[i].value;
    /* Never sent (the test thread came too late): no answer is due, none may be elsewhere. */
    ex[k].optional = h_probe_status(p, sent[i].id) != H_EV_EMITTED;
    late += ex[k].optional;
    k++;
  }
  json_int_t u1 = underruns_of(c);
  if (u1 > u0) {
    /* The worker was late (a loaded machine): answers may be lost, never moved. */
    h_log("%s: %lld underrun(s); missing answers tolerated", label, (long long)(u1 - u0));
    for (size_t i = 0; i < k; i++)
      ex[i].optional = true;
  }
  if (late > 0)
    h_log("%s: %u event(s) were scheduled too late to be sent; skipped", label, late);
  struct h_check ck;
  h_check_port_delay(p, 0, ex, k, *checked, last + L + 1, L, 150, label, &ck);
  *checked = last + L + 1;
  free(ex);
  free(sent);
  return ck.verdict;
}

/*
 * A round of events, answered exactly: at least 150 answers exact, none out
 * of place. A round that a disturbance of the graph or an underrun spoiled is
 * sent again.
 */
static void round_of_events(struct h_probe *p, struct h_conn *c, uint64_t *checked,
                            const char *name) {
  char label[96];
  for (unsigned attempt = 1;; attempt++) {
    snprintf(label, sizeof(label), "%s, attempt %u", name, attempt);
    enum h_verdict v = one_round(p, c, checked, label);
    if (v == H_EXACT)
      return;
    if (v == H_MISALIGNED) {
      h_error("%s: MIDI events not answered at exactly frame + L", name);
      return;
    }
    if (attempt == 8) {
      h_error("%s: too few answers exact in %u rounds, each disturbed (xruns, late runs of "
              "the graph or underruns): the machine is too busy to measure",
              name, attempt);
      return;
    }
  }
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[512];

  h_init("midi_timing", 80);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 0, true, 1, SRC_LAT, 0);
  h_watch_skips(p, &d);

  snprintf(buf, sizeof(buf), "exec '%s'", RWT_MIDI_IMPULSE);
  json_t *s = h_add_slot(&c, "mi",
                         json_pack("{s:s, s:i, s:i, s:b, s:i}", "exec", buf, "inputs", 0, "outputs",
                                   1, "midi", 1, "latency_frames", L),
                         10000);
  json_int_t pid = h_int(s, "pid");
  json_t *ports = json_object_get(s, "ports");
  const char *midi_in = h_str(ports, "midi");
  const char *out = json_string_value(json_array_get(json_object_get(ports, "outputs"), 0));
  H_CHECK(midi_in != NULL && out != NULL, "slot ports in slot.list");
  char out_name[320];
  snprintf(out_name, sizeof(out_name), "%s", out);
  h_probe_path_latency(p, L);
  h_connect(p, h_probe_midi(p), midi_in);
  h_connect(p, out, h_probe_in(p, 0));
  H_CHECK(h_int(s, "latency_frames") == L, "latency_frames %lld",
          (long long)h_int(s, "latency_frames"));
  json_decref(s);

  uint32_t cmin, cmax;
  if (!h_wait_port_latency(p, out_name, false, SRC_LAT + L, 5000, &cmin, &cmax))
    h_error("capture latency of %s is %u-%u, want MIDI source %u + L %u", out_name, cmin, cmax,
            SRC_LAT, L);
  else
    h_log("JACK: %s capture latency %u = MIDI source %u + L %u", out_name, cmax, SRC_LAT, L);

  uint64_t checked = 0;
  round_of_events(p, &c, &checked, "midi");
  round_of_events(p, &c, &checked, "midi, second round");

  /* After a restart (a new generation: the timeline starts over) still exact. */
  json_decref(h_call(&c, "slot.restart", json_pack("{s:s}", "name", "mi")));
  json_decref(h_wait_slot(&c, "mi", "running", pid, 10000));
  round_of_events(p, &c, &checked, "midi after restart");

  json_t *st = h_slot_stats(&c, "mi");
  h_log("slot stats: events_dropped %lld, underruns %lld, restarts %lld",
        (long long)h_int(st, "events_dropped"), (long long)h_int(st, "underruns"),
        (long long)h_int(st, "restarts"));
  if (h_int(st, "events_dropped") > 0)
    h_error("%lld MIDI events dropped", (long long)h_int(st, "events_dropped"));
  json_decref(st);

  h_probe_close(p);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
