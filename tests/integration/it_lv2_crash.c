/*
 * it_lv2_crash: an LV2 plugin that segfaults or hangs in run() costs its
 * own slot a restart and nothing else. The test plugin urn:runway:test:probe
 * (tests/lv2) crashes on MIDI note 101 and hangs on note 102; it plays its
 * input times `gain` times its own state `sticky`.
 *
 *   - gain 1.5, sticky 0.75 (its state extension), state.save: the daemon
 *     keeps that state; a constant 0.25 comes out as 0.28125.
 *   - note 101: the worker dies of SIGSEGV; the slot comes back by itself
 *     and plays 0.28125 again (a fresh instance would play 0.1875: its
 *     default state has sticky 0.5).
 *   - note 102: run() never returns; the stall watch (--stall-timeout-ms
 *     500) kills the worker; the slot comes back and plays 0.28125.
 *   - Meanwhile a passthrough slot carries impulses exactly L later, and
 *     runwayd answers.
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
#define L_PT 1200u
#define DC 0.25f
#define SAVED (DC * 1.5f * 0.75f)

struct rig {
  struct h_conn c;
  struct h_probe *p;
  uint64_t checked; /* the passthrough slot's output is checked up to here */
};

static void expect_level(struct rig *r, const char *when) {
  float seen = 0.0f;
  /* From now on: the old worker's sound before it failed does not count. */
  if (!lv2rig_wait_level(r->p, 0, SAVED, h_probe_now(r->p), 15000, &seen))
    H_FAIL("%s: the slot plays %.9g, not %.9g", when, (double)seen, (double)SAVED);
  h_log("%s: %.9g, the saved sound", when, (double)SAVED);
}

/* Impulses through the passthrough slot: exactly L_PT later, nothing else, since the last check. */
static void neighbour_exact(struct rig *r, const char *when) {
  const unsigned port = 1;
  uint32_t first = h_probe_n_events(r->p);
  uint64_t last = h_impulse_train(r->p, &port, 1, 4, 900, 2400);
  h_probe_wait_frame(r->p, last + L_PT + 2 * PERIOD, 10000);
  if (!h_check_impulses(r->p, 1, 1, L_PT, first, r->checked, last + L_PT + 1, false, when, NULL))
    h_error("%s: the passthrough slot did not play its impulses exactly %u frames later", when,
            L_PT);
  r->checked = last + L_PT + 1;
}

/* Schedules a note a little ahead; returns its frame. */
static uint64_t note(struct rig *r, uint8_t key, uint8_t velocity) {
  uint64_t f = h_probe_now(r->p) + RATE / 20;
  h_probe_midi3(r->p, f, 0x90, key, velocity);
  h_probe_midi3(r->p, f + 1, 0x80, key, 0);
  return f;
}

/* Sends the fatal note and waits for the slot to run again with another worker. */
static void misbehave(struct rig *r, uint8_t key, json_int_t restarts, const char *what) {
  json_t *s = h_slot(&r->c, "pr");
  json_int_t pid = h_int(s, "pid");
  json_decref(s);
  uint64_t t0 = h_now_ms();
  uint64_t at = note(r, key, 100);
  s = h_wait_slot(&r->c, "pr", "running", pid, 15000);
  h_log("%s: worker %lld -> %lld in %llu ms, restarts %lld", what, (long long)pid,
        (long long)h_int(s, "pid"), (unsigned long long)(h_now_ms() - t0),
        (long long)h_int(s, "restarts"));
  H_CHECK(h_int(s, "restarts") == restarts, "%s: restarts is %lld", what,
          (long long)h_int(s, "restarts"));
  json_decref(s);
  /* The sound stopped meanwhile (the new worker starts with L of silence): the plugin did stop. */
  uint64_t end = h_probe_cycle(r->p);
  H_CHECK(end > at + L, "%s: the restart came before the note was played", what);
  float *buf = malloc((size_t)(end - at) * sizeof(float));
  h_probe_samples(r->p, 0, at, end, buf);
  uint64_t other = 0;
  for (uint64_t k = 0; k < end - at; k++)
    other += buf[k] != SAVED;
  free(buf);
  H_CHECK(other >= L, "%s: the sound went on (%llu other frames)", what, (unsigned long long)other);
  H_CHECK(!h_pid_exists((pid_t)pid), "%s: the old worker %lld still exists", what, (long long)pid);
}

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct rig r;
  char file[PATH_MAX];

  h_init("lv2_crash", 120);
  snprintf(file, sizeof(file), "%s/probe.json", h_tmpdir());
  h_jack_start(&j, RATE, PERIOD);
  const char *args[] = {"--stall-timeout-ms", "500", NULL};
  lv2rig_daemon_start(&d, &j, args);
  H_CHECK(h_conn_open(&r.c, d.socket) == 0, "connect");

  json_t *pr = lv2rig_add_slot(&r.c, "pr", LV2RIG_PROBE, 1, 1, true, L);
  json_t *pt = h_add_slot(&r.c, "pt",
                          json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                    "outputs", 1, "latency_frames", L_PT),
                          10000);
  r.p = h_probe_open(&j, 2, true, 2, 0, 0);
  const unsigned zero = 0, one = 1;
  lv2rig_wire(r.p, pr, &zero, 1, &zero, 1);
  lv2rig_wire(r.p, pt, &one, 1, &one, 1);
  h_probe_path_latency(r.p, L_PT);
  json_decref(pr);
  json_decref(pt);
  h_probe_dc(r.p, 0, DC);
  r.checked = h_probe_now(r.p);

  lv2rig_set(&r.c, "pr", "gain", 1.5);
  note(&r, 100, 48);
  expect_level(&r, "before");
  json_decref(h_call(&r.c, "state.save", json_pack("{s:s, s:s}", "name", "pr", "file", file)));
  neighbour_exact(&r, "before");

  misbehave(&r, 101, 1, "segfault in run()");
  expect_level(&r, "after the segfault");
  neighbour_exact(&r, "after the segfault");
  H_CHECK(h_file_count(d.proc.log, 0, "killed by signal 11") >= 1,
          "runwayd's log does not say the worker was killed by SIGSEGV");

  misbehave(&r, 102, 2, "hang in run()");
  expect_level(&r, "after the hang");
  neighbour_exact(&r, "after the hang");
  H_CHECK(h_file_count(d.proc.log, 0, "made no progress") >= 1,
          "runwayd's log does not say the worker stalled");

  json_t *st = h_call(&r.c, "status", NULL);
  H_CHECK(h_int(st, "pid") == d.proc.pid, "status answers");
  json_decref(st);
  h_probe_close(r.p);
  h_conn_close(&r.c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
