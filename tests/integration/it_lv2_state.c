/*
 * it_lv2_state: an LV2 plugin's state through runway, end to end. The test
 * plugin urn:runway:test:probe (tests/lv2) plays its input times its `gain`
 * control times its own state `sticky`, which only its state extension
 * saves and restores, and which MIDI note 100 sets through the worker
 * extension (sticky = velocity / 64). A constant 0.25 goes in; the level
 * that comes out tells both apart:
 *
 *   1. default state (sticky 0.5, from the plugin's data), gain 1: 0.125
 *   2. gain 1.5, sticky 0.75 (note 100, velocity 48): 0.28125; state.save
 *   3. gain 0.5, sticky 127/64: 0.248046875
 *   4. state.load of the file from 2: 0.28125 again, exactly
 *   5. SIGKILL of the worker: the restarted one plays 0.28125, though a
 *      fresh instance starts from the default state
 *   6. runwayd restarted on its state directory (slots.json): 0.28125
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define L 1024u
#define DC 0.25f

struct rig {
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;
  struct h_probe *p;
  char state_dir[PATH_MAX];
};

/* A probe feeding the slot DC and MIDI, recording its output. */
static void attach_probe(struct rig *r) {
  json_t *slot = h_slot(&r->c, "pr");
  H_CHECK(slot != NULL, "slot pr is gone");
  r->p = h_probe_open(&r->j, 1, true, 1, 0, 0);
  const unsigned port[1] = {0};
  lv2rig_wire(r->p, slot, port, 1, port, 1);
  json_decref(slot);
  h_probe_dc(r->p, 0, DC);
}

static void expect_level(struct rig *r, float level, const char *when) {
  float seen = 0.0f;
  if (!lv2rig_wait_level(r->p, 0, level, h_probe_now(r->p), 10000, &seen))
    H_FAIL("%s: the slot plays %.9g, not %.9g", when, (double)seen, (double)level);
  h_log("%s: %.9g, as expected", when, (double)level);
}

/* Note 100 makes the probe plugin's worker set sticky = velocity / 64. */
static void set_sticky(struct rig *r, uint8_t velocity) {
  uint64_t f = h_probe_now(r->p) + RATE / 20;
  h_probe_midi3(r->p, f, 0x90, 100, velocity);
  h_probe_midi3(r->p, f + 1, 0x80, 100, 0);
}

static void daemon_start(struct rig *r) {
  const char *args[] = {"--state-dir", r->state_dir, NULL};
  lv2rig_daemon_start(&r->d, &r->j, args);
  H_CHECK(h_conn_open(&r->c, r->d.socket) == 0, "connect");
}

int main(void) {
  struct rig r;
  char file[PATH_MAX];

  h_init("lv2_state", 120);
  snprintf(r.state_dir, sizeof(r.state_dir), "%s/state", h_tmpdir());
  snprintf(file, sizeof(file), "%s/probe.json", h_tmpdir());
  h_jack_start(&r.j, RATE, PERIOD);
  daemon_start(&r);
  json_decref(lv2rig_add_slot(&r.c, "pr", LV2RIG_PROBE, 1, 1, true, L));
  attach_probe(&r);

  expect_level(&r, DC * 1.0f * 0.5f, "1. the default state");

  lv2rig_set(&r.c, "pr", "gain", 1.5);
  set_sticky(&r, 48);
  expect_level(&r, DC * 1.5f * 0.75f, "2. gain 1.5, sticky 0.75");
  json_t *res = h_call(&r.c, "state.save", json_pack("{s:s, s:s}", "name", "pr", "file", file));
  json_int_t bytes = h_int(res, "state_bytes");
  json_decref(res);
  H_CHECK(bytes > 0, "state.save kept no plugin state");
  char *text = h_file_read(file);
  H_CHECK(text != NULL && strstr(text, "\"gain\": 1.5") != NULL, "the file holds gain 1.5");
  free(text);
  h_log("state.save: %lld bytes of plugin state in %s", (long long)bytes, file);

  lv2rig_set(&r.c, "pr", "gain", 0.5);
  set_sticky(&r, 127);
  expect_level(&r, DC * 0.5f * (127.0f / 64.0f), "3. gain 0.5, sticky 127/64");

  json_decref(h_call(&r.c, "state.load", json_pack("{s:s, s:s}", "name", "pr", "file", file)));
  expect_level(&r, DC * 1.5f * 0.75f, "4. after state.load");

  json_t *slot = h_slot(&r.c, "pr");
  json_int_t pid = h_int(slot, "pid");
  json_decref(slot);
  H_CHECK(pid > 0 && kill((pid_t)pid, SIGKILL) == 0, "SIGKILL worker %lld", (long long)pid);
  json_decref(h_wait_slot(&r.c, "pr", "running", pid, 15000));
  expect_level(&r, DC * 1.5f * 0.75f, "5. after SIGKILL of the worker");

  h_probe_close(r.p);
  h_conn_close(&r.c);
  H_CHECK(h_daemon_stop(&r.d) == 0, "runwayd did not stop cleanly");
  daemon_start(&r);
  json_decref(h_wait_slot(&r.c, "pr", "running", 0, 15000));
  attach_probe(&r);
  expect_level(&r, DC * 1.5f * 0.75f, "6. after runwayd restarted on its state directory");

  h_probe_close(r.p);
  h_conn_close(&r.c);
  H_CHECK(h_daemon_stop(&r.d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&r.j);
  h_pass();
}
