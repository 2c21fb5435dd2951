/*
 * gain: multiplies every channel by gain_db. A change ramps linearly over
 * 10 ms in the linear domain, starting at the event's own frame, so it is
 * sample-accurate and never clicks.
 */
#include <stdlib.h>

#include "plugins.h"

enum { GAIN_DB };

static const rw_param_info gain_params[] = {
    {.id = GAIN_DB, .name = "gain_db", .min = -60.0f, .max = 24.0f, .def = 0.0f, .unit = "dB"},
};

struct gain {
  struct plugin_ramp gain;
  uint32_t ramp_frames;
  int snap;
};

static void *gain_create(const rw_worker_info *info) {
  struct gain *g = calloc(1, sizeof(*g));
  if (g == NULL)
    return NULL;
  g->ramp_frames = plugin_rate(info) / 100;
  plugin_ramp_reset(&g->gain, plugin_db_to_gain(gain_params[GAIN_DB].def));
  return g;
}

static void gain_destroy(void *self) { free(self); }

static void gain_event(void *self, const rw_event *ev) {
  struct gain *g = self;
  if (ev->kind == RW_EV_PARAM && ev->u.param.id == GAIN_DB) {
    float db = plugin_clamp(&gain_params[GAIN_DB], ev->u.param.value);
    if (g->snap && ev->offset == 0)
      plugin_ramp_reset(&g->gain, plugin_db_to_gain(db));
    else
      plugin_ramp_set(&g->gain, plugin_db_to_gain(db), g->ramp_frames);
  }
}

static void gain_render(void *self, const rw_block *b, uint32_t from, uint32_t to) {
  struct gain *g = self;
  struct plugin_ramp r = g->gain;
  /* Every channel replays the same ramp from the span's start. */
  for (uint32_t c = 0; c < b->n_outputs; c++) {
    float *out = b->outputs[c];
    const float *in = c < b->n_inputs ? b->inputs[c] : NULL;
    r = g->gain;
    for (uint32_t k = from; k < to; k++) {
      float v = plugin_ramp_next(&r);
      out[k] = in != NULL ? in[k] * v : 0.0f;
    }
  }
  /* With no output channel the ramp must still advance with time. */
  if (b->n_outputs == 0)
    for (uint32_t k = from; k < to; k++)
      plugin_ramp_next(&r);
  g->gain = r;
}

static void gain_process(void *self, rw_worker *w, const rw_block *b) {
  struct gain *g = self;
  (void)w;
  if (b->discontinuity)
    plugin_ramp_finish(&g->gain);
  /* After a discontinuity, values at offset 0 (e.g. restored state) apply at once. */
  g->snap = b->discontinuity;
  plugin_run(self, b, gain_event, gain_render);
}

const rw_plugin plugin_gain = {
    .name = "gain",
    .description = "Changes the level by gain_db, with click-free 10 ms ramps",
    .n_inputs = 2,
    .n_outputs = 2,
    .midi = 0,
    .params = gain_params,
    .n_params = sizeof(gain_params) / sizeof(gain_params[0]),
    .create = gain_create,
    .destroy = gain_destroy,
    .process = gain_process,
};
