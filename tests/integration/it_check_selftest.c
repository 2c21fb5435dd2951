/*
 * it_check_selftest: the harness's checks cannot pass by accident.
 *
 * The probe alone on a JACK server, no runwayd:
 *   1. No audio at all (its output connected nowhere): a check of impulses
 *      fails, strict or tolerant (every expectation optional, as after an
 *      underrun).
 *   2. Its output wired straight to its input: the impulses come back with
 *      delay 0, and the check passes; the same recording checked for a delay
 *      of one frame, or for a gain of 0.5, is misaligned.
 * So a floor of exact impulses is what a pass needs, and a check that can
 * pass is also one that can fail.
 */
#include <stdio.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128

/*
 * The check must fail with verdict `want`. Next to a JACK xrun (a busy
 * machine) expectations become optional, and a strict check may then say
 * "measure again" instead of "misaligned": never "exact".
 */
static void expect_fail(bool passed, const struct h_check *ck, enum h_verdict want,
                        const char *what) {
  bool excused = want == H_MISALIGNED && ck->verdict == H_DISTURBED && ck->disturbed > 0;
  if (passed || ck->verdict == H_EXACT || (ck->verdict != want && !excused))
    h_error("%s: the check %s (verdict: %s), it must fail as %s", what,
            passed ? "passed" : "failed differently", h_verdict_str(ck->verdict),
            h_verdict_str(want));
  else
    h_log("%s: fails as it must (%s)", what, h_verdict_str(ck->verdict));
}

int main(void) {
  struct h_jack jack;
  struct h_check ck;
  const unsigned port0 = 0;

  h_init("check_selftest", 50);
  h_jack_start(&jack, RATE, PERIOD);
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);

  /* ---- 1: no audio ------------------------------------------------------------------- */
  uint32_t first = h_probe_n_events(p);
  uint64_t last = h_impulse_train(p, &port0, 1, 8, 1100, 2400);
  uint64_t to = last + 4 * PERIOD;
  h_probe_wait_frame(p, to, 10000);
  expect_fail(h_check_impulses(p, 0, 0, 0, first, 0, to, false, "no audio, strict", &ck), &ck,
              H_MISALIGNED, "no audio, strict");
  expect_fail(h_check_impulses(p, 0, 0, 0, first, 0, to, true, "no audio, tolerant", &ck), &ck,
              H_DISTURBED, "no audio, tolerant (every impulse optional)");
  struct h_impulses one = {
      .out = 0, .in = 0, .first_id = first, .to = to, .tolerant = true, .min_exact = 1};
  expect_fail(h_check(p, &one, "no audio, tolerant, one exact needed", &ck), &ck, H_DISTURBED,
              "no audio, tolerant, one exact needed");
  if (h_check_floor(8, 0) != 5 || h_check_floor(1, 0) != 1 || h_check_floor(0, 0) != 0 ||
      h_check_floor(8, 3) != 3)
    h_error("the default floor is not more than half of the expected impulses");

  /* ---- 2: the output wired to the input ---------------------------------------------- */
  h_connect(p, h_probe_out(p, 0), h_probe_in(p, 0));
  uint64_t from = h_probe_cycle(p) + 4 * PERIOD;
  h_probe_wait_frame(p, from, 5000);
  first = h_probe_n_events(p);
  last = h_impulse_train(p, &port0, 1, 8, 1100, 2400);
  to = last + 4 * PERIOD;
  h_probe_wait_frame(p, to, 10000);
  bool wired = h_check_impulses(p, 0, 0, 0, first, from, to, false, "wired, delay 0", &ck);
  bool shifted = h_check_impulses(p, 0, 0, 1, first, from, to, false, "wired, delay 1", NULL);
  bool scaled =
      h_check_impulses_gain(p, 0, 0, 0, 0.5f, first, from, to, false, "wired, gain 0.5", NULL);
  unsigned found = ck.exact;

  if (!wired)
    h_error("wired straight through, the impulses did not come back exactly (%u exact)", found);
  if (shifted)
    h_error("a check for one frame of delay passed on a recording without it");
  if (scaled)
    h_error("a check for a gain of 0.5 passed on a recording at unity");
  h_probe_close(p);
  h_jack_stop(&jack);
  h_pass();
}
