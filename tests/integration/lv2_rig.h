/*
 * What the LV2 integration tests (it_lv2_*) add to the harness: slots that
 * run `runway-worker --lv2 URI`, known signals played sample by sample
 * through the probe, float WAV files for `lv2apply` (the reference host),
 * an offline reference renderer for instruments, and the checks that a
 * stretch of audio went through undisturbed.
 *
 * Plugins are looked up in RWT_LV2_PATH: the test bundle of tests/lv2, then
 * the system's bundles (mda-lv2, x42-plugins). Not thread safe, like the
 * harness.
 */
#ifndef RUNWAY_TESTS_LV2_RIG_H
#define RUNWAY_TESTS_LV2_RIG_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

#define LV2RIG_MDA "http://drobilla.net/plugins/mda/"
#define LV2RIG_PROBE "urn:runway:test:probe"

/* "LV2_PATH=..." for runwayd's environment (its workers inherit it). */
const char *lv2rig_env(void);

/* Starts runwayd (h_daemon_start) with LV2_PATH set and extra arguments. */
void lv2rig_daemon_start(struct h_daemon *d, const struct h_jack *j, const char *const *args);

/*
 * Adds slot `name` running LV2 plugin uri (`slot add NAME --lv2 URI`) with
 * n_in / n_out channels, MIDI when midi, L = latency frames; waits until it
 * runs. Returns the slot object (new reference).
 */
json_t *lv2rig_add_slot(struct h_conn *c, const char *name, const char *uri, unsigned n_in,
                        unsigned n_out, bool midi, uint32_t latency);

/* param.set, failing the test unless the daemon applied exactly value. */
void lv2rig_set(struct h_conn *c, const char *slot, const char *param, double value);

/* Connects probe outputs out[0..n) to the slot's inputs and its outputs to probe inputs in[]. */
void lv2rig_wire(struct h_probe *p, const json_t *slot, const unsigned *out, unsigned n_out,
                 const unsigned *in, unsigned n_in);

/*
 * Schedules sig[c][0 .. n) on probe outputs ports[c], frame start + k for
 * sample k (every non-zero sample is one probe event, in frame order).
 */
void lv2rig_play(struct h_probe *p, const unsigned *ports, unsigned n_ch, float *const *sig,
                 uint32_t n, uint64_t start);

/* n frames of deterministic test signal: a few tones and noise, peak below 0.9. */
float *lv2rig_signal(uint32_t n, unsigned seed);

/*
 * Compares got with want over n samples, exactly. Prints the first few
 * differences under label; fails the comparison when the reference is
 * silence (nothing would have been compared). Returns true when equal.
 */
bool lv2rig_same(const float *got, const float *want, uint32_t n, const char *label);

/* ---- lv2apply --------------------------------------------------------------- */

/* Writes a float WAV (libsndfile's reading of it is lv2apply's). */
void lv2rig_wav_write(const char *path, float *const *ch, unsigned n_ch, uint32_t n, uint32_t rate);

/* Reads a float WAV into *ch (n_ch arrays of *n samples, malloc'd). */
void lv2rig_wav_read(const char *path, float ***ch, unsigned *n_ch, uint32_t *n);

/*
 * Runs `lv2apply -i in -o out [-c SYM VAL]... uri` (controls: pairs of
 * symbol and value strings, NULL-terminated) and fails the test if it fails.
 */
void lv2rig_lv2apply(const char *uri, const char *const *controls, const char *in, const char *out);

/* ---- reference renderer --------------------------------------------------------- */

struct lv2rig_midi {
  uint64_t frame;
  uint8_t bytes[3];
};

/*
 * Renders `frames` frames of an instrument offline through lilv, one frame
 * per run() (as lv2apply does, but with MIDI): events (sorted) at frame
 * `start` + k go into the run() of frame k, in order, at time 0. Controls at
 * their defaults. Outputs: out[c] for the plugin's first n_out audio outputs.
 */
void lv2rig_render(const char *uri, uint32_t rate, const struct lv2rig_midi *events,
                   size_t n_events, uint64_t start, uint32_t frames, float **out, unsigned n_out);

/* ---- undisturbed stretches ------------------------------------------------------ */

/* What tells a stretch of audio was disturbed: a JACK xrun, a skip, an underrun. */
struct lv2rig_marks {
  uint64_t xruns;
  uint64_t gaps;
  json_int_t underruns[4];
  json_int_t discontinuities[4];
};

/* Takes the marks of the probe and of slots[0 .. n) (at most 4). */
void lv2rig_mark(struct h_probe *p, struct h_conn *c, const char *const *slots, unsigned n,
                 struct lv2rig_marks *out);

/* True (and logged) when anything moved between a and b. */
bool lv2rig_disturbed(const struct lv2rig_marks *a, const struct lv2rig_marks *b, unsigned n);

/*
 * Waits up to timeout_ms until the last 1024 frames sink port `port`
 * recorded, all at or after frame `from`, hold exactly `level`. Returns
 * true, or false with the last value seen in *seen.
 */
bool lv2rig_wait_level(struct h_probe *p, unsigned port, float level, uint64_t from,
                       unsigned timeout_ms, float *seen);

#endif
