/*
 * it_lv2_midi: Debian's mda DX10 (an FM instrument) in a slot with a MIDI
 * input, played by a note sequence from the probe: notes on and off at
 * frames spread over cycles (at cycle starts and ends, in the same frame,
 * overlapping), at several velocities. Its output, L later, equals sample
 * for sample what a small offline renderer here (lilv, one frame per
 * run(), the events of frame k in frame k's run()) makes of the same
 * sequence: every MIDI event reached the plugin at its frame.
 *
 * DX10 renders the same at any block size with notes (its modulation wheel
 * and program changes would not). A stretch the machine disturbed is played
 * again on a fresh slot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define L 1024u
#define SPAN 24000u /* half a second from the first event */
#define LEAD 1000u  /* rendered before the first event: silence in both */
#define TRIES 20
#define DX10 LV2RIG_MDA "DX10"

/* Frames relative to the first event; notes on (0x90) and off (0x80, or 0x90 velocity 0). */
static const struct lv2rig_midi sequence[] = {
    {0, {0x90, 60, 100}},     {127, {0x90, 64, 80}},    {128, {0x90, 67, 127}},
    {128, {0x90, 72, 30}},    {1500, {0x80, 60, 64}},   {2501, {0x90, 48, 110}},
    {4500, {0x90, 64, 0}},    {4500, {0x90, 76, 90}},   {6399, {0x80, 67, 0}},
    {6400, {0x80, 72, 0}},    {8000, {0x90, 55, 70}},   {8191, {0x90, 59, 71}},
    {10000, {0x80, 48, 0}},   {12001, {0x90, 84, 127}}, {12002, {0x80, 84, 0}},
    {13000, {0x90, 43, 100}}, {15000, {0x80, 55, 0}},   {15000, {0x80, 59, 0}},
    {16383, {0x90, 67, 60}},  {18000, {0x80, 76, 0}},   {19000, {0x80, 43, 0}},
    {20000, {0x80, 67, 0}},
};
#define N_EVENTS (sizeof(sequence) / sizeof(sequence[0]))

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;
  struct lv2rig_midi events[N_EVENTS];
  float *want[2] = {malloc(SPAN * sizeof(float)), malloc(SPAN * sizeof(float))};
  float *got = malloc(SPAN * sizeof(float));

  h_init("lv2_midi", 170);
  h_jack_start(&j, RATE, PERIOD);
  lv2rig_daemon_start(&d, &j, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect");
  json_t *slot = lv2rig_add_slot(&c, "dx", DX10, 0, 2, true, L);
  const char *names[] = {"dx"};

  bool done = false;
  for (int attempt = 1; attempt <= TRIES && !done; attempt++) {
    struct h_probe *p = h_probe_open(&j, 0, true, 2, 0, 0);
    const unsigned ins[2] = {0, 1};
    lv2rig_wire(p, slot, NULL, 0, ins, 2);
    h_probe_path_latency(p, L);
    h_probe_wait_frame(p, h_probe_now(p) + RATE / 4, 5000);
    struct lv2rig_marks before, after;
    lv2rig_mark(p, &c, names, 1, &before);

    uint64_t first = h_probe_now(p) + RATE / 4;
    uint32_t ids[N_EVENTS];
    for (size_t i = 0; i < N_EVENTS; i++) {
      events[i] = sequence[i];
      events[i].frame += first;
      ids[i] = h_probe_midi3(p, events[i].frame, events[i].bytes[0], events[i].bytes[1],
                             events[i].bytes[2]);
    }
    uint64_t from = first - LEAD;
    h_probe_wait_frame(p, from + L + SPAN, 20000);
    lv2rig_mark(p, &c, names, 1, &after);
    unsigned emitted = 0;
    for (size_t i = 0; i < N_EVENTS; i++)
      emitted += h_probe_status(p, ids[i]) == H_EV_EMITTED;

    if (emitted != N_EVENTS || lv2rig_disturbed(&before, &after, 1)) {
      h_log("attempt %d disturbed (%u of %zu events emitted on time); again on a fresh slot",
            attempt, emitted, N_EVENTS);
      h_probe_close(p);
      json_decref(h_call(&c, "slot.restart", json_pack("{s:s}", "name", "dx")));
      json_decref(slot);
      slot = h_wait_slot(&c, "dx", "running", 0, 15000);
      continue;
    }
    lv2rig_render(DX10, RATE, events, N_EVENTS, from, SPAN, want, 2);
    for (unsigned ch = 0; ch < 2; ch++) {
      char label[32];
      snprintf(label, sizeof(label), "dx out_%u", ch + 1);
      h_probe_samples(p, ch, from + L, from + L + SPAN, got);
      if (!lv2rig_same(got, want[ch], SPAN, label))
        h_error("%s differs from the offline rendering", label);
    }
    h_probe_close(p);
    done = true;
  }
  H_CHECK(done, "the machine disturbed all %d attempts (xruns or underruns); nothing compared",
          TRIES);

  json_decref(slot);
  free(want[0]);
  free(want[1]);
  free(got);
  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
