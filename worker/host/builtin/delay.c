/*
 * delay: a feedback delay per channel. The delay line is allocated at create
 * for the longest time, so process never allocates. Changes of feedback and
 * mix ramp over 10 ms; a change of time glides over 50 ms, read with linear
 * interpolation (a tape-style pitch bend rather than a jump, which would
 * click). After a discontinuity the line is cleared: its echoes belong to
 * audio from before the gap.
 */
#include <stdlib.h>
#include <string.h>

#include "plugins.h"

enum { DELAY_TIME_MS, DELAY_FEEDBACK, DELAY_MIX };

static const rw_param_info delay_params[] = {
    {.id = DELAY_TIME_MS,
     .name = "time_ms",
     .min = 0.0f,
     .max = 2000.0f,
     .def = 250.0f,
     .unit = "ms"},
    {.id = DELAY_FEEDBACK, .name = "feedback", .min = 0.0f, .max = 0.95f, .def = 0.3f, .unit = ""},
    {.id = DELAY_MIX, .name = "mix", .min = 0.0f, .max = 1.0f, .def = 0.5f, .unit = ""},
};

struct delay {
  float *lines; /* n_lines rings of size floats */
  uint32_t n_lines;
  uint32_t size; /* power of two, > the longest delay + 1 */
  uint32_t write;
  float frames_per_ms;
  struct plugin_ramp time; /* in frames */
  struct plugin_ramp feedback;
  struct plugin_ramp mix;
  uint32_t short_ramp;
  uint32_t long_ramp;
  int snap;
};

static void *delay_create(const rw_worker_info *info) {
  struct delay *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NULL;
  uint32_t rate = plugin_rate(info);
  d->frames_per_ms = (float)rate / 1000.0f;
  uint64_t longest = (uint64_t)(delay_params[DELAY_TIME_MS].max * d->frames_per_ms) + 2;
  d->size = 1;
  while (d->size < longest)
    d->size <<= 1;
  d->n_lines = info != NULL ? info->n_outputs : 2;
  d->lines = calloc((size_t)(d->n_lines ? d->n_lines : 1) * d->size, sizeof(float));
  if (d->lines == NULL) {
    free(d);
    return NULL;
  }
  d->short_ramp = rate / 100;
  d->long_ramp = rate / 20;
  plugin_ramp_reset(&d->time, delay_params[DELAY_TIME_MS].def * d->frames_per_ms);
  plugin_ramp_reset(&d->feedback, delay_params[DELAY_FEEDBACK].def);
  plugin_ramp_reset(&d->mix, delay_params[DELAY_MIX].def);
  return d;
}

static void delay_destroy(void *self) {
  struct delay *d = self;
  free(d->lines);
  free(d);
}

static void delay_event(void *self, const rw_event *ev) {
  struct delay *d = self;
  if (ev->kind != RW_EV_PARAM || ev->u.param.id > DELAY_MIX)
    return;
  const rw_param_info *p = &delay_params[ev->u.param.id];
  float v = plugin_clamp(p, ev->u.param.value);
  struct plugin_ramp *r = &d->mix;
  uint32_t length = d->short_ramp;
  if (p->id == DELAY_TIME_MS) {
    v *= d->frames_per_ms;
    r = &d->time;
    length = d->long_ramp;
  } else if (p->id == DELAY_FEEDBACK) {
    r = &d->feedback;
  }
  if (d->snap && ev->offset == 0)
    plugin_ramp_reset(r, v);
  else
    plugin_ramp_set(r, v, length);
}

static void delay_render(void *self, const rw_block *b, uint32_t from, uint32_t to) {
  struct delay *d = self;
  const uint32_t mask = d->size - 1;
  for (uint32_t k = from; k < to; k++) {
    float time = plugin_ramp_next(&d->time);
    float fb = plugin_ramp_next(&d->feedback);
    float mix = plugin_ramp_next(&d->mix);
    uint32_t whole = (uint32_t)time;
    float frac = time - (float)whole;
    for (uint32_t c = 0; c < d->n_lines && c < b->n_outputs; c++) {
      float *line = d->lines + (size_t)c * d->size;
      float x = c < b->n_inputs ? b->inputs[c][k] : 0.0f;
      /* Written first, so a delay below one frame reads the current input. */
      line[d->write] = x;
      float y = line[(d->write - whole) & mask] * (1.0f - frac) +
                line[(d->write - whole - 1) & mask] * frac;
      line[d->write] = x + fb * y;
      b->outputs[c][k] = (1.0f - mix) * x + mix * y;
    }
    d->write = (d->write + 1) & mask;
  }
}

static void delay_process(void *self, rw_worker *w, const rw_block *b) {
  struct delay *d = self;
  (void)w;
  if (b->discontinuity) {
    memset(d->lines, 0, (size_t)d->n_lines * d->size * sizeof(float));
    plugin_ramp_finish(&d->time);
    plugin_ramp_finish(&d->feedback);
    plugin_ramp_finish(&d->mix);
  }
  /* Outputs beyond the channels the instance was made for stay silent. */
  for (uint32_t c = d->n_lines; c < b->n_outputs; c++)
    memset(b->outputs[c], 0, (size_t)b->frames * sizeof(float));
  d->snap = b->discontinuity;
  plugin_run(self, b, delay_event, delay_render);
}

const rw_plugin plugin_delay = {
    .name = "delay",
    .description = "Feedback delay: time_ms, feedback and a dry/wet mix",
    .n_inputs = 2,
    .n_outputs = 2,
    .midi = 0,
    .params = delay_params,
    .n_params = sizeof(delay_params) / sizeof(delay_params[0]),
    .create = delay_create,
    .destroy = delay_destroy,
    .process = delay_process,
};
