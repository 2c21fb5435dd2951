/*
 * runway-worker's built-in plugins, driven directly: create, process on
 * hand-made blocks (with a NULL rw_worker, as plugins must allow), destroy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugins.h"

#define RATE 48000u
#define MAXCH 6
#define MAXF 8192u

struct rig {
  const rw_plugin *plugin;
  void *self;
  rw_worker_info info;
  uint32_t n_in;
  uint32_t n_out;
  float *in[MAXCH];
  float *out[MAXCH];
  uint64_t position;
  int first;
};

static void rig_open(struct rig *r, const rw_plugin *p, uint32_t n_in, uint32_t n_out) {
  memset(r, 0, sizeof(*r));
  r->plugin = p;
  r->n_in = n_in;
  r->n_out = n_out;
  r->info = (rw_worker_info){.slot = "t",
                             .sample_rate = RATE,
                             .n_inputs = n_in,
                             .n_outputs = n_out,
                             .midi = p->midi,
                             .latency = 2400,
                             .max_block = MAXF};
  for (uint32_t c = 0; c < MAXCH; c++) {
    r->in[c] = calloc(MAXF, sizeof(float));
    r->out[c] = calloc(MAXF, sizeof(float));
  }
  r->self = p->create(&r->info);
  assert_non_null(r->self);
  r->first = 1;
}

static void rig_close(struct rig *r) {
  r->plugin->destroy(r->self);
  for (uint32_t c = 0; c < MAXCH; c++) {
    free(r->in[c]);
    free(r->out[c]);
  }
}

/*
 * Runs one block of frames with the given events. Outputs are poisoned with
 * NaN first: a plugin must write every frame of every output.
 */
static void rig_run(struct rig *r, uint32_t frames, const rw_event *ev, uint32_t n_ev) {
  for (uint32_t c = 0; c < MAXCH; c++)
    for (uint32_t k = 0; k < frames; k++)
      r->out[c][k] = NAN;
  rw_block b = {
      .frames = frames,
      .n_inputs = r->n_in,
      .n_outputs = r->n_out,
      .inputs = (const float *const *)r->in,
      .outputs = r->out,
      .events = ev,
      .n_events = n_ev,
      .position = r->position,
      .latency = r->info.latency,
      .sample_rate = RATE,
      .discontinuity = r->first,
  };
  r->plugin->process(r->self, NULL, &b);
  for (uint32_t c = 0; c < r->n_out; c++)
    for (uint32_t k = 0; k < frames; k++)
      if (!isfinite(r->out[c][k]))
        fail_msg("%s: output %u frame %u not written (or not finite)", r->plugin->name, c, k);
  r->position += frames;
  r->first = 0;
}

static rw_event param_ev(uint32_t offset, uint32_t id, float value) {
  rw_event e = {.offset = offset, .kind = RW_EV_PARAM};
  e.u.param.id = id;
  e.u.param.value = value;
  return e;
}

static rw_event midi_ev(uint32_t offset, uint8_t b0, uint8_t b1, uint8_t b2) {
  rw_event e = {.offset = offset, .kind = RW_EV_MIDI, .size = 3};
  e.u.midi.data[0] = b0;
  e.u.midi.data[1] = b1;
  e.u.midi.data[2] = b2;
  return e;
}

static float noise(uint32_t *seed) {
  *seed = *seed * 1664525u + 1013904223u;
  return (float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* ---- the catalog ---------------------------------------------------------- */

static void test_catalog(void **state) {
  (void)state;
  const char *names[] = {"passthrough", "gain", "sine", "delay", "synth"};
  size_t n = 0;
  while (plugin_catalog[n] != NULL)
    n++;
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++) {
    const rw_plugin *p = plugin_catalog[i];
    assert_string_equal(p->name, names[i]);
    assert_ptr_equal(plugin_find(names[i]), p);
    assert_non_null(p->description);
    assert_non_null(p->create);
    assert_non_null(p->process);
    assert_non_null(p->destroy);
    for (uint32_t k = 0; k < p->n_params; k++) {
      const rw_param_info *q = &p->params[k];
      assert_true(q->min <= q->def && q->def <= q->max);
      for (uint32_t j = 0; j < k; j++)
        assert_true(p->params[j].id != q->id);
    }
  }
  assert_null(plugin_find("nope"));
  assert_int_equal(plugin_synth.midi, 1);
  assert_int_equal(plugin_sine.n_inputs, 0);
}

/* Every plugin copes with whatever channel counts the slot has. */
static void test_any_channel_counts(void **state) {
  (void)state;
  const uint32_t counts[][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 2}, {2, 1}, {3, 5}, {6, 6}};
  for (size_t i = 0; plugin_catalog[i] != NULL; i++) {
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
      struct rig r;
      rig_open(&r, plugin_catalog[i], counts[c][0], counts[c][1]);
      uint32_t seed = 1;
      for (uint32_t ch = 0; ch < MAXCH; ch++)
        for (uint32_t k = 0; k < 512; k++)
          r.in[ch][k] = noise(&seed);
      rw_event ev[] = {midi_ev(0, 0x90, 60, 100), param_ev(10, 0, 1.0f), param_ev(20, 1, 0.5f),
                       midi_ev(30, 0x80, 60, 0)};
      rig_run(&r, 512, ev, 4);
      rig_run(&r, 1, NULL, 0);
      rig_run(&r, 256, NULL, 0);
      rig_close(&r);
    }
  }
}

/* ---- passthrough ---------------------------------------------------------- */

static void test_passthrough_bit_exact(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_passthrough, 2, 3);
  uint32_t seed = 7;
  for (int block = 0; block < 4; block++) {
    for (uint32_t c = 0; c < 2; c++)
      for (uint32_t k = 0; k < 1000; k++)
        r.in[c][k] = noise(&seed);
    r.in[0][3] = -0.0f;
    r.in[1][4] = 1e-40f; /* a denormal passes unchanged too */
    rig_run(&r, 1000, NULL, 0);
    for (uint32_t c = 0; c < 2; c++)
      assert_memory_equal(r.out[c], r.in[c], 1000 * sizeof(float));
    for (uint32_t k = 0; k < 1000; k++)
      assert_true(r.out[2][k] == 0.0f);
  }
  rig_close(&r);
}

/* ---- gain ----------------------------------------------------------------- */

static void test_gain_ramp_starts_at_offset(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_gain, 2, 2);
  for (uint32_t c = 0; c < 2; c++)
    for (uint32_t k = 0; k < MAXF; k++)
      r.in[c][k] = 1.0f;
  rig_run(&r, 256, NULL, 0);
  for (uint32_t k = 0; k < 256; k++)
    assert_true(r.out[0][k] == 1.0f);

  /* -20 dB at offset 200 of a 256-frame block; the ramp runs on into the next block. */
  rw_event ev = param_ev(200, 0, -20.0f);
  float trace[1024];
  rig_run(&r, 256, &ev, 1);
  memcpy(trace, r.out[1], 256 * sizeof(float));
  for (uint32_t k = 0; k < 200; k++)
    assert_true(r.out[0][k] == 1.0f);
  assert_true(r.out[0][200] < 1.0f);
  rig_run(&r, 768, NULL, 0);
  memcpy(trace + 256, r.out[1], 768 * sizeof(float));

  const uint32_t ramp = RATE / 100;
  float max_step = 0.0f;
  for (uint32_t k = 1; k < 1024; k++) {
    float step = fabsf(trace[k] - trace[k - 1]);
    if (step > max_step)
      max_step = step;
  }
  /* 0.9 of gain spread over 480 frames: no step beyond 0.002 (a click would be ~0.9). */
  assert_true(max_step <= 0.9f / (float)ramp * 1.01f);
  assert_true(fabsf(trace[200 + ramp - 1] - 0.1f) < 1e-6f);
  for (uint32_t k = 200 + ramp; k < 1024; k++)
    assert_true(fabsf(trace[k] - 0.1f) < 1e-6f);
  rig_close(&r);
}

static void test_gain_snaps_after_discontinuity(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_gain, 1, 1);
  for (uint32_t k = 0; k < 64; k++)
    r.in[0][k] = 1.0f;
  /* Restored state arrives at offset 0 of the first block: no glide from the default. */
  rw_event ev = param_ev(0, 0, 6.0f);
  rig_run(&r, 64, &ev, 1);
  for (uint32_t k = 0; k < 64; k++)
    assert_true(fabsf(r.out[0][k] - powf(10.0f, 6.0f / 20.0f)) < 1e-6f);
  rig_close(&r);
}

/* ---- sine ----------------------------------------------------------------- */

static uint32_t rising_zero_crossings(const float *x, uint32_t n) {
  uint32_t count = 0;
  for (uint32_t k = 1; k < n; k++)
    if (x[k - 1] < 0.0f && x[k] >= 0.0f)
      count++;
  return count;
}

static void test_sine_frequency_and_level(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_sine, 0, 2);
  float *second = calloc(RATE, sizeof(float));
  for (uint32_t done = 0; done < RATE; done += 480) {
    rig_run(&r, 480, NULL, 0);
    memcpy(second + done, r.out[0], 480 * sizeof(float));
    assert_memory_equal(r.out[0], r.out[1], 480 * sizeof(float));
  }
  uint32_t z = rising_zero_crossings(second, RATE);
  assert_true(z >= 439 && z <= 441);
  float peak = 0.0f;
  float max_step = 0.0f;
  for (uint32_t k = 0; k < RATE; k++) {
    peak = fmaxf(peak, fabsf(second[k]));
    if (k > 0)
      max_step = fmaxf(max_step, fabsf(second[k] - second[k - 1]));
  }
  float level = powf(10.0f, -12.0f / 20.0f);
  assert_true(fabsf(peak - level) < level * 0.01f);
  /* The steepest a 440 Hz sine of that level can move in one frame. */
  assert_true(max_step <= level * 2.0f * (float)M_PI * 440.0f / RATE * 1.01f);

  /* 1 kHz at 0 dB from offset 100; the phase carries on, no jump. */
  rw_event ev[] = {param_ev(100, 0, 1000.0f), param_ev(100, 1, 0.0f)};
  rig_run(&r, 480, ev, 2);
  float before = second[RATE - 1];
  max_step = fabsf(r.out[0][0] - before);
  for (uint32_t k = 1; k < 480; k++)
    max_step = fmaxf(max_step, fabsf(r.out[0][k] - r.out[0][k - 1]));
  assert_true(max_step <= 2.0f * (float)M_PI * 1000.0f / RATE * 1.01f);
  for (uint32_t done = 0; done < RATE; done += 480) {
    rig_run(&r, 480, NULL, 0);
    memcpy(second + done, r.out[0], 480 * sizeof(float));
  }
  z = rising_zero_crossings(second, RATE);
  assert_true(z >= 999 && z <= 1001);
  peak = 0.0f;
  for (uint32_t k = 0; k < RATE; k++)
    peak = fmaxf(peak, fabsf(second[k]));
  assert_true(fabsf(peak - 1.0f) < 0.01f);
  free(second);
  rig_close(&r);
}

/* ---- delay ---------------------------------------------------------------- */

static void test_delay_is_exact_at_full_mix(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_delay, 2, 2);
  const uint32_t d = RATE / 100; /* 10 ms */
  const uint32_t total = 4096;
  float *in = calloc(total, sizeof(float));
  float *out = calloc(total, sizeof(float));
  uint32_t seed = 3;
  for (uint32_t k = 0; k < total; k++)
    in[k] = noise(&seed);

  rw_event ev[] = {param_ev(0, 0, 10.0f), param_ev(0, 1, 0.0f), param_ev(0, 2, 1.0f)};
  for (uint32_t done = 0; done < total; done += 512) {
    memcpy(r.in[0], in + done, 512 * sizeof(float));
    memcpy(r.in[1], in + done, 512 * sizeof(float));
    /* First block: a discontinuity, so values at offset 0 apply at once. */
    rig_run(&r, 512, done == 0 ? ev : NULL, done == 0 ? 3 : 0);
    memcpy(out + done, r.out[0], 512 * sizeof(float));
    assert_memory_equal(r.out[0], r.out[1], 512 * sizeof(float));
  }
  for (uint32_t k = 0; k < total; k++) {
    float want = k < d ? 0.0f : in[k - d];
    if (out[k] != want)
      fail_msg("delay output %u: %g, want %g", k, out[k], want);
  }
  free(in);
  free(out);
  rig_close(&r);
}

static void test_delay_feedback_and_discontinuity(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_delay, 1, 1);
  const uint32_t d = RATE / 100;
  rw_event ev[] = {param_ev(0, 0, 10.0f), param_ev(0, 1, 0.5f), param_ev(0, 2, 1.0f)};
  memset(r.in[0], 0, MAXF * sizeof(float));
  r.in[0][0] = 1.0f;
  rig_run(&r, 2048, ev, 3);
  assert_true(r.out[0][d] == 1.0f);
  assert_true(r.out[0][2 * d] == 0.5f);
  assert_true(r.out[0][3 * d] == 0.25f);
  assert_true(r.out[0][d + 1] == 0.0f);

  /* A discontinuity clears the echoes of audio from before the gap. */
  r.in[0][0] = 0.0f;
  r.first = 1;
  rig_run(&r, 2048, NULL, 0);
  for (uint32_t k = 0; k < 2048; k++)
    assert_true(r.out[0][k] == 0.0f);
  rig_close(&r);
}

/* ---- synth ---------------------------------------------------------------- */

static uint32_t first_sound(const float *x, uint32_t n) {
  for (uint32_t k = 0; k < n; k++)
    if (x[k] != 0.0f)
      return k;
  return n;
}

static int silent_from(const float *x, uint32_t from, uint32_t n) {
  for (uint32_t k = from; k < n; k++)
    if (x[k] != 0.0f)
      return 0;
  return 1;
}

static void test_synth_note_at_exact_offset(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_synth, 0, 2);
  rig_run(&r, 256, NULL, 0);
  assert_true(silent_from(r.out[0], 0, 256));

  rw_event ev[] = {param_ev(0, 2, 10.0f), midi_ev(100, 0x90, 69, 127)};
  rig_run(&r, 256, ev, 2);
  assert_int_equal(first_sound(r.out[0], 256), 100);
  assert_int_equal(first_sound(r.out[1], 256), 100);
  rig_run(&r, 4096, NULL, 0);
  float peak = 0.0f;
  for (uint32_t k = 0; k < 4096; k++)
    peak = fmaxf(peak, fabsf(r.out[0][k]));
  assert_true(peak > 0.05f);

  /* Note-off at offset 300; with a 10 ms release, silence after 300 + 480 frames. */
  rw_event off = midi_ev(300, 0x80, 69, 0);
  rig_run(&r, 2048, &off, 1);
  assert_false(silent_from(r.out[0], 300, 400));
  assert_true(silent_from(r.out[0], 300 + RATE / 100 + 1, 2048));
  rig_close(&r);
}

static void test_synth_velocity_zero_is_note_off(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_synth, 0, 1);
  rw_event ev[] = {param_ev(0, 2, 5.0f), midi_ev(0, 0x91, 60, 90)};
  rig_run(&r, 1024, ev, 2);
  assert_false(silent_from(r.out[0], 0, 1024));
  rw_event off = midi_ev(10, 0x91, 60, 0);
  rig_run(&r, 1024, &off, 1);
  assert_true(silent_from(r.out[0], 10 + RATE / 200 + 1, 1024));

  /* Louder velocity, louder voice. */
  float peaks[2];
  const uint8_t vel[2] = {20, 120};
  for (int i = 0; i < 2; i++) {
    rw_event on[] = {midi_ev(0, 0x90, 72, vel[i]), midi_ev(4000, 0x80, 72, 0)};
    rig_run(&r, 8192, on, 2);
    peaks[i] = 0.0f;
    for (uint32_t k = 0; k < 4000; k++)
      peaks[i] = fmaxf(peaks[i], fabsf(r.out[0][k]));
  }
  assert_true(peaks[1] > peaks[0] * 3.0f);
  rig_close(&r);
}

static void test_synth_polyphony_and_stealing(void **state) {
  (void)state;
  struct rig r;
  rig_open(&r, &plugin_synth, 0, 2);
  rw_event ev[64];
  for (uint32_t i = 0; i < 40; i++)
    ev[i] = midi_ev(i * 10, 0x90, (uint8_t)(30 + i), 127);
  rig_run(&r, 1024, ev, 40);
  float peak = 0.0f;
  for (uint32_t k = 0; k < 1024; k++)
    peak = fmaxf(peak, fabsf(r.out[0][k]));
  assert_true(peak > 0.0f);
  /* 16 voices of at most 0.25 each at level -6 dB. */
  assert_true(peak <= 16.0f * 0.25f * 0.5f * 1.05f);

  /* Repeated notes, and note-offs for notes that were stolen, do no harm. */
  for (uint32_t i = 0; i < 64; i++)
    ev[i] = midi_ev(i * 4, (i & 1) ? 0x80 : 0x90, (uint8_t)(30 + i % 20), 100);
  rig_run(&r, 1024, ev, 64);

  /* All notes off (CC 123) releases everything: silence after the default 200 ms release. */
  rw_event all_off = midi_ev(0, 0xB0, 123, 0);
  rig_run(&r, 16, &all_off, 1);
  for (int i = 0; i < 4; i++) /* the last block starts 16 + 3 * 4096 > 9600 frames later */
    rig_run(&r, 4096, NULL, 0);
  assert_true(silent_from(r.out[0], 0, 4096));

  /* Malformed MIDI is ignored. */
  rw_event junk[] = {{.offset = 0, .kind = RW_EV_MIDI, .size = 1, .u.midi.data = {0x90}},
                     midi_ev(1, 0x45, 60, 100)};
  rig_run(&r, 256, junk, 2);
  assert_true(silent_from(r.out[0], 0, 256));
  rig_close(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_catalog),
      cmocka_unit_test(test_any_channel_counts),
      cmocka_unit_test(test_passthrough_bit_exact),
      cmocka_unit_test(test_gain_ramp_starts_at_offset),
      cmocka_unit_test(test_gain_snaps_after_discontinuity),
      cmocka_unit_test(test_sine_frequency_and_level),
      cmocka_unit_test(test_delay_is_exact_at_full_mix),
      cmocka_unit_test(test_delay_feedback_and_discontinuity),
      cmocka_unit_test(test_synth_note_at_exact_offset),
      cmocka_unit_test(test_synth_velocity_zero_is_note_off),
      cmocka_unit_test(test_synth_polyphony_and_stealing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
