/*
 * sine: a test tone on every output. The phase runs on across frequency
 * changes and discontinuities (a jump in phase would click), and level
 * changes ramp over 10 ms.
 */
#include <stdlib.h>

#include "plugins.h"

enum { SINE_FREQUENCY, SINE_LEVEL_DB };

static const rw_param_info sine_params[] = {
    {.id = SINE_FREQUENCY,
     .name = "frequency",
     .min = 20.0f,
     .max = 20000.0f,
     .def = 440.0f,
     .unit = "Hz"},
    {.id = SINE_LEVEL_DB,
     .name = "level_db",
     .min = -60.0f,
     .max = 0.0f,
     .def = -12.0f,
     .unit = "dB"},
};

struct sine {
  double phase; /* in cycles, [0, 1) */
  double increment;
  double rate;
  struct plugin_ramp level;
  uint32_t ramp_frames;
  int snap;
};

static void *sine_create(const rw_worker_info *info) {
  struct sine *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->rate = plugin_rate(info);
  s->increment = sine_params[SINE_FREQUENCY].def / s->rate;
  s->ramp_frames = plugin_rate(info) / 100;
  plugin_ramp_reset(&s->level, plugin_db_to_gain(sine_params[SINE_LEVEL_DB].def));
  return s;
}

static void sine_destroy(void *self) { free(self); }

static void sine_event(void *self, const rw_event *ev) {
  struct sine *s = self;
  if (ev->kind != RW_EV_PARAM)
    return;
  if (ev->u.param.id == SINE_FREQUENCY) {
    s->increment = plugin_clamp(&sine_params[SINE_FREQUENCY], ev->u.param.value) / s->rate;
  } else if (ev->u.param.id == SINE_LEVEL_DB) {
    float gain = plugin_db_to_gain(plugin_clamp(&sine_params[SINE_LEVEL_DB], ev->u.param.value));
    if (s->snap && ev->offset == 0)
      plugin_ramp_reset(&s->level, gain);
    else
      plugin_ramp_set(&s->level, gain, s->ramp_frames);
  }
}

static void sine_render(void *self, const rw_block *b, uint32_t from, uint32_t to) {
  struct sine *s = self;
  for (uint32_t k = from; k < to; k++) {
    float v = (float)sin(2.0 * M_PI * s->phase) * plugin_ramp_next(&s->level);
    for (uint32_t c = 0; c < b->n_outputs; c++)
      b->outputs[c][k] = v;
    s->phase += s->increment;
    if (s->phase >= 1.0)
      s->phase -= 1.0;
  }
}

static void sine_process(void *self, rw_worker *w, const rw_block *b) {
  struct sine *s = self;
  (void)w;
  if (b->discontinuity)
    plugin_ramp_finish(&s->level);
  s->snap = b->discontinuity;
  plugin_run(self, b, sine_event, sine_render);
}

const rw_plugin plugin_sine = {
    .name = "sine",
    .description = "Test tone: a sine wave at frequency Hz and level_db on every output",
    .n_inputs = 0,
    .n_outputs = 2,
    .midi = 0,
    .params = sine_params,
    .n_params = sizeof(sine_params) / sizeof(sine_params[0]),
    .create = sine_create,
    .destroy = sine_destroy,
    .process = sine_process,
};
