/*
 * it_lv2_replace: `slot replace --lv2 URI`, from a built-in plugin to an LV2
 * one and from that LV2 plugin to itself, while impulses flow.
 *
 *   1. passthrough -> urn:runway:test:probe (out = in * gain * sticky, its
 *      own state sticky 0.5 by default): every impulse exactly L later, at
 *      1.0 before the reported switch frame, at 0.5 after the crossfade, and
 *      inside it at exactly old + (new - old) * (i + 1) / X; no underrun.
 *      The slot is then kind lv2 with the URI, and the plugin name the
 *      worker declared.
 *   2. The probe replaced by itself after its state changed (MIDI note 100
 *      sets sticky to velocity / 64): the new worker gets the old one's
 *      state as it is now (state_carried), so the level does not move.
 *   3. A plugin runway cannot host, and a URI nothing is installed under:
 *      invalid_argument and not_found, and the slot plays on exactly.
 * A stage whose check disturbances of the graph left with too few exact is
 * made again (stage 1 from passthrough anew), ATTEMPTS at most.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000
#define PERIOD 128
#define L 1200
#define XFADE_MS 20
#define XFADE (XFADE_MS * RATE / 1000)
#define TRAIN 60
#define GAP 300
#define ATTEMPTS 6 /* of a stage, when disturbances spoil it */

static const char *port_of(const json_t *slot, const char *dir, size_t i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

/* The impulses of a train: frames in order, one every GAP or so. */
static void train(struct h_probe *p, uint64_t *frames, uint32_t *ids, unsigned n, float value) {
  uint64_t f = h_probe_now(p) + L;
  for (unsigned i = 0; i < n; i++) {
    f += GAP + (i * 29u) % 71u;
    frames[i] = f;
    ids[i] = h_probe_impulse(p, 0, f, value);
  }
}

/*
 * Each impulse at exactly L later: `before` up to the switch at probe frame
 * sw, `after` from sw + X on, the linear crossfade between. Nothing else.
 */
static enum h_verdict check_across(struct h_probe *p, const uint64_t *frames, const uint32_t *ids,
                                   unsigned n, uint64_t sw, float before, float after,
                                   const char *label) {
  struct h_expect ex[TRAIN];
  unsigned in_fade = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t out = frames[i] + L;
    float v = out < sw ? before : out >= sw + XFADE ? after : 0.0f;
    if (out >= sw && out < sw + XFADE) {
      uint32_t k = (uint32_t)(out - sw);
      v = before + (after - before) * ((float)(k + 1) / (float)XFADE);
      in_fade++;
    }
    /* One the test thread came too late to send is not expected (it excuses the others). */
    ex[i] = (struct h_expect){
        .frame = out, .value = v, .optional = h_probe_status(p, ids[i]) != H_EV_EMITTED};
  }
  h_probe_wait_frame(p, frames[n - 1] + L + 2 * PERIOD, 15000);
  struct h_check ck;
  h_check_port_delay(p, 0, ex, n, frames[0] - 1, frames[n - 1] + L + PERIOD, L, 0, label, &ck);
  if (ck.verdict == H_MISALIGNED)
    h_error("%s: not every impulse at exactly L later with its level", label);
  else if (ck.verdict == H_DISTURBED)
    h_log("%s: too few exact next to disturbances of the graph; again", label);
  else
    h_log("%s: %u impulse(s) inside the crossfade", label, in_fade);
  return ck.verdict;
}

/* A stage's attempts ran out, each disturbed. */
static void too_busy(const char *label) {
  h_error("%s: %u attempts, each with too few impulses exact next to disturbances of the graph: "
          "the machine is too busy to measure",
          label, ATTEMPTS);
}

/* The probe frame of a reported switch frame (JACK's 32-bit frame time). */
static uint64_t probe_frame(uint32_t reported, uint64_t near) {
  return near + (uint64_t)(int64_t)(int32_t)(reported - (uint32_t)near);
}

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;
  uint64_t frames[TRAIN];
  uint32_t ids[TRAIN];

  h_init("lv2_replace", 110);
  h_jack_start(&j, RATE, PERIOD);
  lv2rig_daemon_start(&d, &j, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&j, 1, true, 1, 0, 0);
  h_watch_skips(p, &d);
  json_t *s = h_add_slot(&c, "r",
                         json_pack("{s:s, s:i, s:i, s:b, s:i}", "plugin", "passthrough", "inputs",
                                   1, "outputs", 1, "midi", 1, "latency_frames", L),
                         10000);
  h_probe_path_latency(p, L);
  h_connect(p, h_probe_out(p, 0), port_of(s, "inputs", 0));
  h_connect(p, h_probe_midi(p), h_str(json_object_get(s, "ports"), "midi"));
  h_connect(p, port_of(s, "outputs", 0), h_probe_in(p, 0));
  json_decref(s);

  /* ---- 1. a built-in plugin to an LV2 one --------------------------------------------- */
  /* Again, from passthrough anew, when a disturbance spoiled the check. */
  json_int_t u0 = h_slot_stat(&c, "r", "underruns");
  enum h_verdict v = H_DISTURBED;
  for (unsigned attempt = 1; attempt <= ATTEMPTS && v == H_DISTURBED; attempt++) {
    if (attempt > 1)
      json_decref(h_call(&c, "slot.replace",
                         json_pack("{s:s, s:s}", "name", "r", "plugin", "passthrough")));
    train(p, frames, ids, TRAIN, 1.0f);
    h_sleep_ms(120);
    json_t *r = h_call(
        &c, "slot.replace",
        json_pack("{s:s, s:s, s:i}", "name", "r", "lv2", LV2RIG_PROBE, "crossfade_ms", XFADE_MS));
    const json_t *sw = json_object_get(r, "switch");
    H_CHECK(json_is_integer(json_object_get(sw, "frame")), "no switch frame");
    uint64_t at = probe_frame((uint32_t)h_int(sw, "frame"), frames[0]);
    h_log("passthrough -> <%s>: switched at frame %llu after %lld ms", LV2RIG_PROBE,
          (unsigned long long)at, (long long)h_int(sw, "warmup_ms"));
    H_CHECK(strcmp(h_str(r, "kind"), "lv2") == 0 && strcmp(h_str(r, "lv2"), LV2RIG_PROBE) == 0,
            "the slot is %s <%s>", h_str(r, "kind"), h_str(r, "lv2"));
    json_decref(r);
    v = check_across(p, frames, ids, TRAIN, at, 1.0f, 0.5f, "passthrough -> LV2 probe");
  }
  if (v == H_DISTURBED)
    too_busy("passthrough -> LV2 probe");
  json_t *sl = h_slot(&c, "r");
  h_log("slot r: kind %s, plugin %s, declared %s", h_str(sl, "kind"), h_str(sl, "plugin"),
        h_str(sl, "declared_plugin") ? h_str(sl, "declared_plugin") : "-");
  H_CHECK(h_str(sl, "declared_plugin") != NULL, "no declared plugin name after the switch");
  json_decref(sl);

  /* ---- 2. the same LV2 plugin again: its state now goes along ------------------------- */
  uint64_t f = h_probe_now(p) + 2 * PERIOD;
  h_probe_midi3(p, f, 0x90, 100, 96); /* sticky = 96 / 64 = 1.5 */
  h_probe_wait_frame(p, f + L + 2 * PERIOD, 5000);
  h_sleep_ms(200); /* the plugin takes the note through its worker thread */
  v = H_DISTURBED;
  for (unsigned attempt = 1; attempt <= ATTEMPTS && v == H_DISTURBED; attempt++) {
    train(p, frames, ids, TRAIN, 1.0f);
    h_sleep_ms(120);
    json_t *r =
        h_call(&c, "slot.replace", json_pack("{s:s, s:s}", "name", "r", "lv2", LV2RIG_PROBE));
    const json_t *sw = json_object_get(r, "switch");
    uint64_t at = probe_frame((uint32_t)h_int(sw, "frame"), frames[0]);
    H_CHECK(json_is_true(json_object_get(sw, "state_carried")), "the state was not carried over");
    json_decref(r);
    v = check_across(p, frames, ids, TRAIN, at, 1.5f, 1.5f,
                     "LV2 probe -> itself, its state carried");
  }
  if (v == H_DISTURBED)
    too_busy("LV2 probe -> itself");

  /* ---- 3. refusals: the slot plays on --------------------------------------------------- */
  v = H_DISTURBED;
  for (unsigned attempt = 1; attempt <= ATTEMPTS && v == H_DISTURBED; attempt++) {
    train(p, frames, ids, TRAIN / 2, 1.0f);
    json_t *e = h_call_error(&c, "slot.replace",
                             json_pack("{s:s, s:s}", "name", "r", "lv2", "urn:runway:test:fixed"),
                             "invalid_argument");
    h_log("a plugin runway cannot host: %s", h_str(json_object_get(e, "error"), "message"));
    json_decref(e);
    e = h_call_error(&c, "slot.replace",
                     json_pack("{s:s, s:s}", "name", "r", "lv2", "urn:runway:test:nothing-here"),
                     "not_found");
    json_decref(e);
    v = check_across(p, frames, ids, TRAIN / 2, UINT64_MAX / 2, 1.5f, 1.5f, "after two refusals");
  }
  if (v == H_DISTURBED)
    too_busy("after two refusals");
  json_int_t u1 = h_slot_stat(&c, "r", "underruns");
  if (u1 != u0)
    h_error("%lld underrun(s) through the replacements", (long long)(u1 - u0));

  h_probe_close(p);
  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
