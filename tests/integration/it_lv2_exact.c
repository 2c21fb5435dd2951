/*
 * it_lv2_exact: Debian's mda Delay and mda Overdrive, hosted by
 * `runway-worker --lv2` in slots of a real runwayd, with controls away from
 * their defaults, play a known stereo signal; every sample of their output,
 * L later, equals what the reference host `lv2apply` makes of the same
 * signal with the same controls offline (run() one frame at a time).
 *
 * Both plugins give the same output at any block size (test_lv2host shows
 * it for Delay), so runway's varying blocks, and its run() split where a
 * parameter changes, must not change one bit. A stretch disturbed by the
 * machine (a JACK xrun, an underrun, a skip) is played again on fresh slots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define L 1024u
#define SIGNAL 16000u /* a third of a second of signal ... */
#define TAIL 8000u    /* ... and a sixth of its echoes */
#define TRIES 20

struct plugin {
  const char *slot;
  const char *uri;
  const char *const *controls; /* symbol, value, ..., NULL */
};

/*
 * Controls away from their defaults, except the feedback tone of Delay and
 * the muffle of Overdrive: their filters flush tiny values to zero once per
 * run(), so their silent tails depend on the block size (1e-9 after a
 * quarter of a second), in any host.
 */
static const char *const delay_controls[] = {"l_delay", "0.1", "r_delay", "0.05", "feedback", "0.5",
                                             "fx_mix",  "0.8", "output",  "0.6",  NULL};
static const char *const overdrive_controls[] = {"drive", "0.6", "output", "0.7", NULL};
static const struct plugin plugins[] = {
    {"dly", LV2RIG_MDA "Delay", delay_controls},
    {"od", LV2RIG_MDA "Overdrive", overdrive_controls},
};
#define N_PLUGINS (sizeof(plugins) / sizeof(plugins[0]))

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;
  char path[PATH_MAX], out_path[PATH_MAX];
  float *sig[2] = {lv2rig_signal(SIGNAL + TAIL, 1), lv2rig_signal(SIGNAL + TAIL, 2)};
  float *want[N_PLUGINS][2];
  float *got = malloc((SIGNAL + TAIL) * sizeof(float));

  h_init("lv2_exact", 170);
  for (unsigned ch = 0; ch < 2; ch++)
    memset(sig[ch] + SIGNAL, 0, TAIL * sizeof(float));

  /* The reference: lv2apply on the same signal, as a float WAV at the graph's rate. */
  snprintf(path, sizeof(path), "%s/in.wav", h_tmpdir());
  lv2rig_wav_write(path, sig, 2, SIGNAL + TAIL, RATE);
  for (size_t i = 0; i < N_PLUGINS; i++) {
    snprintf(out_path, sizeof(out_path), "%s/%s.wav", h_tmpdir(), plugins[i].slot);
    lv2rig_lv2apply(plugins[i].uri, plugins[i].controls, path, out_path);
    float **ch;
    unsigned n_ch;
    uint32_t n;
    lv2rig_wav_read(out_path, &ch, &n_ch, &n);
    H_CHECK(n_ch == 2 && n == SIGNAL + TAIL, "%s: lv2apply wrote %u channels of %u frames",
            plugins[i].slot, n_ch, n);
    want[i][0] = ch[0];
    want[i][1] = ch[1];
    free(ch);
  }

  h_jack_start(&j, RATE, PERIOD);
  lv2rig_daemon_start(&d, &j, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect");

  json_t *slots[N_PLUGINS];
  for (size_t i = 0; i < N_PLUGINS; i++) {
    slots[i] = lv2rig_add_slot(&c, plugins[i].slot, plugins[i].uri, 2, 2, false, L);
    for (size_t k = 0; plugins[i].controls[k] != NULL; k += 2)
      lv2rig_set(&c, plugins[i].slot, plugins[i].controls[k], atof(plugins[i].controls[k + 1]));
  }

  bool done = false;
  for (int attempt = 1; attempt <= TRIES && !done; attempt++) {
    /*
     * One probe, both slots: every sample is a probe event and a probe holds
     * 65536 of them, so a probe serves one attempt.
     */
    struct h_probe *probe = h_probe_open(&j, 4, false, 4, 0, 0);
    for (size_t i = 0; i < N_PLUGINS; i++) {
      const unsigned outs[2] = {2 * i, 2 * i + 1};
      lv2rig_wire(probe, slots[i], outs, 2, outs, 2);
    }
    h_probe_path_latency(probe, L);
    /* New connections reorder JACK's graph; let that settle before the stretch counts. */
    h_probe_wait_frame(probe, h_probe_now(probe) + RATE / 4, 5000);
    const char *names[N_PLUGINS] = {plugins[0].slot, plugins[1].slot};
    struct lv2rig_marks before, after;
    lv2rig_mark(probe, &c, names, N_PLUGINS, &before);
    /* A quarter of a second ahead: the parameters set above are in place long before. */
    uint64_t start = h_probe_now(probe) + RATE / 4;
    const unsigned all[4] = {0, 1, 2, 3};
    float *sig4[4] = {sig[0], sig[1], sig[0], sig[1]};
    lv2rig_play(probe, all, 4, sig4, SIGNAL, start);
    h_probe_wait_frame(probe, start + L + SIGNAL + TAIL, 20000);
    lv2rig_mark(probe, &c, names, N_PLUGINS, &after);
    uint64_t late = h_probe_late(probe);

    if (late > 0 || lv2rig_disturbed(&before, &after, N_PLUGINS)) {
      h_log("attempt %d disturbed (%llu late events); again on fresh slots", attempt,
            (unsigned long long)late);
      h_probe_close(probe);
      for (size_t i = 0; i < N_PLUGINS; i++) {
        json_decref(h_call(&c, "slot.restart", json_pack("{s:s}", "name", plugins[i].slot)));
        json_decref(slots[i]);
        slots[i] = h_wait_slot(&c, plugins[i].slot, "running", 0, 15000);
      }
      continue;
    }
    for (size_t i = 0; i < N_PLUGINS; i++) {
      for (unsigned ch = 0; ch < 2; ch++) {
        char label[64];
        snprintf(label, sizeof(label), "%s out_%u", plugins[i].slot, ch + 1);
        h_probe_samples(probe, 2 * i + ch, start + L, start + L + SIGNAL + TAIL, got);
        if (!lv2rig_same(got, want[i][ch], SIGNAL + TAIL, label))
          h_error("%s differs from lv2apply's output", label);
      }
    }
    h_probe_close(probe);
    done = true;
  }
  H_CHECK(done, "the machine disturbed all %d attempts (xruns or underruns); nothing compared",
          TRIES);

  for (size_t i = 0; i < N_PLUGINS; i++) {
    json_decref(slots[i]);
    free(want[i][0]);
    free(want[i][1]);
  }
  free(sig[0]);
  free(sig[1]);
  free(got);
  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
