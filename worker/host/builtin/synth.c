/*
 * synth: a 16-voice polyphonic synthesizer for MIDI input. Band-limited saw
 * (polyBLEP) through a linear ADSR; note-on velocity scales the voice, a
 * note-on with velocity 0 is a note-off, CC 123 releases every note and
 * CC 120 silences at once. Notes start and stop at their events' exact
 * frames. When all voices sound, the oldest one is stolen (a releasing one
 * first); it keeps its envelope level and phase, so stealing does not click.
 * A discontinuity keeps the voices: the note-offs for held notes still come
 * (the SDK never drops events), so nothing hangs.
 */
#include <stdlib.h>
#include <string.h>

#include "plugins.h"

#define SYNTH_VOICES 16
#define SYNTH_DECAY_MS 150.0f
#define SYNTH_SUSTAIN 0.7f
/* Four full-velocity voices reach full scale at level_db 0. */
#define SYNTH_VOICE_GAIN 0.25f
/* The phase a voice starts at: any fixed value works; this one is not a zero of the saw. */
#define SYNTH_START_PHASE 0.25

enum { SYNTH_LEVEL_DB, SYNTH_ATTACK_MS, SYNTH_RELEASE_MS };

static const rw_param_info synth_params[] = {
    {.id = SYNTH_LEVEL_DB,
     .name = "level_db",
     .min = -60.0f,
     .max = 0.0f,
     .def = -6.0f,
     .unit = "dB"},
    {.id = SYNTH_ATTACK_MS,
     .name = "attack_ms",
     .min = 1.0f,
     .max = 5000.0f,
     .def = 5.0f,
     .unit = "ms"},
    {.id = SYNTH_RELEASE_MS,
     .name = "release_ms",
     .min = 1.0f,
     .max = 10000.0f,
     .def = 200.0f,
     .unit = "ms"},
};

enum stage { STAGE_OFF, STAGE_ATTACK, STAGE_DECAY, STAGE_SUSTAIN, STAGE_RELEASE };

struct voice {
  enum stage stage;
  uint8_t note;
  float velocity;
  double phase; /* cycles, [0, 1) */
  double increment;
  float env;
  float release_step;
  uint64_t started; /* note-on order, for stealing */
};

struct synth {
  struct voice voices[SYNTH_VOICES];
  double rate;
  float frames_per_ms;
  float attack_step;
  float decay_step;
  float release_frames;
  uint64_t notes;
  struct plugin_ramp level;
  uint32_t ramp_frames;
  int snap;
};

static void *synth_create(const rw_worker_info *info) {
  struct synth *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->rate = plugin_rate(info);
  s->frames_per_ms = (float)s->rate / 1000.0f;
  s->attack_step = 1.0f / (synth_params[SYNTH_ATTACK_MS].def * s->frames_per_ms);
  s->decay_step = (1.0f - SYNTH_SUSTAIN) / (SYNTH_DECAY_MS * s->frames_per_ms);
  s->release_frames = synth_params[SYNTH_RELEASE_MS].def * s->frames_per_ms;
  s->ramp_frames = plugin_rate(info) / 100;
  plugin_ramp_reset(&s->level, plugin_db_to_gain(synth_params[SYNTH_LEVEL_DB].def));
  return s;
}

static void synth_destroy(void *self) { free(self); }

static struct voice *pick_voice(struct synth *s, uint8_t note) {
  struct voice *oldest = NULL;
  struct voice *oldest_released = NULL;
  for (int i = 0; i < SYNTH_VOICES; i++) {
    struct voice *v = &s->voices[i];
    if (v->stage != STAGE_OFF && v->note == note)
      return v; /* the same key again: retrigger its voice */
  }
  for (int i = 0; i < SYNTH_VOICES; i++) {
    struct voice *v = &s->voices[i];
    if (v->stage == STAGE_OFF) {
      v->env = 0.0f;
      v->phase = SYNTH_START_PHASE;
      return v;
    }
    if (oldest == NULL || v->started < oldest->started)
      oldest = v;
    if (v->stage == STAGE_RELEASE &&
        (oldest_released == NULL || v->started < oldest_released->started))
      oldest_released = v;
  }
  return oldest_released != NULL ? oldest_released : oldest;
}

static void note_on(struct synth *s, uint8_t note, uint8_t velocity) {
  struct voice *v = pick_voice(s, note);
  v->stage = STAGE_ATTACK;
  v->note = note;
  v->velocity = (float)velocity / 127.0f;
  v->increment = 440.0 * pow(2.0, ((double)note - 69.0) / 12.0) / s->rate;
  v->started = ++s->notes;
}

static void release(struct synth *s, struct voice *v) {
  if (v->stage == STAGE_OFF || v->stage == STAGE_RELEASE)
    return;
  v->stage = STAGE_RELEASE;
  v->release_step = 1.0f / s->release_frames;
}

static void midi(struct synth *s, const rw_event *ev) {
  if (ev->size < 3 || ev->u.midi.data[0] < 0x80)
    return;
  uint8_t type = ev->u.midi.data[0] & 0xF0;
  uint8_t d1 = ev->u.midi.data[1] & 0x7F;
  uint8_t d2 = ev->u.midi.data[2] & 0x7F;
  if (type == 0x90 && d2 > 0) {
    note_on(s, d1, d2);
  } else if (type == 0x80 || type == 0x90) {
    for (int i = 0; i < SYNTH_VOICES; i++)
      if (s->voices[i].note == d1)
        release(s, &s->voices[i]);
  } else if (type == 0xB0 && d1 == 123) {
    for (int i = 0; i < SYNTH_VOICES; i++)
      release(s, &s->voices[i]);
  } else if (type == 0xB0 && d1 == 120) {
    for (int i = 0; i < SYNTH_VOICES; i++) {
      s->voices[i].stage = STAGE_OFF;
      s->voices[i].env = 0.0f;
    }
  }
}

static void synth_event(void *self, const rw_event *ev) {
  struct synth *s = self;
  if (ev->kind == RW_EV_MIDI) {
    midi(s, ev);
    return;
  }
  if (ev->kind != RW_EV_PARAM || ev->u.param.id > SYNTH_RELEASE_MS)
    return;
  float v = plugin_clamp(&synth_params[ev->u.param.id], ev->u.param.value);
  if (ev->u.param.id == SYNTH_LEVEL_DB) {
    if (s->snap && ev->offset == 0)
      plugin_ramp_reset(&s->level, plugin_db_to_gain(v));
    else
      plugin_ramp_set(&s->level, plugin_db_to_gain(v), s->ramp_frames);
  } else if (ev->u.param.id == SYNTH_ATTACK_MS) {
    s->attack_step = 1.0f / (v * s->frames_per_ms);
  } else {
    s->release_frames = v * s->frames_per_ms;
  }
}

/* polyBLEP residual: rounds the saw's reset so it does not alias. */
static float poly_blep(double t, double dt) {
  if (t < dt) {
    t /= dt;
    return (float)(t + t - t * t - 1.0);
  }
  if (t > 1.0 - dt) {
    t = (t - 1.0) / dt;
    return (float)(t * t + t + t + 1.0);
  }
  return 0.0f;
}

/* Advances v's envelope by one frame and returns the new level. */
static float envelope(const struct synth *s, struct voice *v) {
  switch (v->stage) {
  case STAGE_ATTACK:
    v->env += s->attack_step;
    if (v->env >= 1.0f) {
      v->env = 1.0f;
      v->stage = STAGE_DECAY;
    }
    break;
  case STAGE_DECAY:
    v->env -= s->decay_step;
    if (v->env <= SYNTH_SUSTAIN) {
      v->env = SYNTH_SUSTAIN;
      v->stage = STAGE_SUSTAIN;
    }
    break;
  case STAGE_SUSTAIN:
    break;
  case STAGE_RELEASE:
    v->env -= v->release_step;
    if (v->env <= 0.0f) {
      v->env = 0.0f;
      v->stage = STAGE_OFF;
    }
    break;
  case STAGE_OFF:
    v->env = 0.0f;
    break;
  }
  return v->env;
}

static void synth_render(void *self, const rw_block *b, uint32_t from, uint32_t to) {
  struct synth *s = self;
  for (uint32_t k = from; k < to; k++) {
    float sum = 0.0f;
    for (int i = 0; i < SYNTH_VOICES; i++) {
      struct voice *v = &s->voices[i];
      if (v->stage == STAGE_OFF)
        continue;
      float saw = (float)(2.0 * v->phase - 1.0) - poly_blep(v->phase, v->increment);
      sum += saw * envelope(s, v) * v->velocity;
      v->phase += v->increment;
      if (v->phase >= 1.0)
        v->phase -= 1.0;
    }
    float out = sum * SYNTH_VOICE_GAIN * plugin_ramp_next(&s->level);
    for (uint32_t c = 0; c < b->n_outputs; c++)
      b->outputs[c][k] = out;
  }
}

static void synth_process(void *self, rw_worker *w, const rw_block *b) {
  struct synth *s = self;
  (void)w;
  if (b->discontinuity)
    plugin_ramp_finish(&s->level);
  s->snap = b->discontinuity;
  plugin_run(self, b, synth_event, synth_render);
}

const rw_plugin plugin_synth = {
    .name = "synth",
    .description = "16-voice saw synthesizer for MIDI input, with attack and release",
    .n_inputs = 0,
    .n_outputs = 2,
    .midi = 1,
    .params = synth_params,
    .n_params = sizeof(synth_params) / sizeof(synth_params[0]),
    .create = synth_create,
    .destroy = synth_destroy,
    .process = synth_process,
};
