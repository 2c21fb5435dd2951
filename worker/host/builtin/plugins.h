/*
 * runway-worker's built-in plugins. Each is a struct rw_plugin; the catalog
 * (runway-worker --list) is built from these same structs, so what the daemon
 * is told always matches what runs.
 *
 * Plugins only use the block they are given: the rw_worker pointer passed to
 * process may be NULL (unit tests call them directly).
 */
#ifndef RUNWAY_WORKER_PLUGINS_H
#define RUNWAY_WORKER_PLUGINS_H

#include <math.h>
#include <stdint.h>

#include <runway/worker.h>

extern const rw_plugin plugin_passthrough;
extern const rw_plugin plugin_gain;
extern const rw_plugin plugin_sine;
extern const rw_plugin plugin_delay;
extern const rw_plugin plugin_synth;

/* Every built-in plugin, NULL-terminated, in catalog order. */
extern const rw_plugin *const plugin_catalog[];

/* The built-in plugin called name, or NULL. */
const rw_plugin *plugin_find(const char *name);

/* The sample rate to assume when a (hand-made) info does not give one. */
static inline uint32_t plugin_rate(const rw_worker_info *info) {
  return info != NULL && info->sample_rate > 0 ? info->sample_rate : 48000u;
}

static inline float plugin_db_to_gain(float db) { return powf(10.0f, db / 20.0f); }

/* A parameter's value clamped to its declared range. */
static inline float plugin_clamp(const rw_param_info *p, float v) {
  return v < p->min ? p->min : v > p->max ? p->max : v;
}

/*
 * A linear ramp towards a target, so parameter changes never step. A new
 * target starts a ramp of `length` frames from wherever the value is now;
 * the first frame after plugin_ramp_set already moves.
 */
struct plugin_ramp {
  float value;
  float target;
  float step;
  uint32_t left;
};

static inline void plugin_ramp_reset(struct plugin_ramp *r, float value) {
  r->value = r->target = value;
  r->step = 0.0f;
  r->left = 0;
}

static inline void plugin_ramp_set(struct plugin_ramp *r, float target, uint32_t length) {
  r->target = target;
  r->left = length > 0 ? length : 1;
  r->step = (target - r->value) / (float)r->left;
}

/* Jumps to the target (after a discontinuity there is nothing to glide from). */
static inline void plugin_ramp_finish(struct plugin_ramp *r) { plugin_ramp_reset(r, r->target); }

static inline float plugin_ramp_next(struct plugin_ramp *r) {
  if (r->left > 0) {
    r->left--;
    r->value = r->left == 0 ? r->target : r->value + r->step;
  }
  return r->value;
}

/*
 * Runs a block at sample accuracy: applies each event at its offset and
 * renders the frames between events. Events at offsets past the block (which
 * the SDK never produces) are applied after the last frame.
 */
static inline void
plugin_run(void *self, const rw_block *b, void (*on_event)(void *self, const rw_event *ev),
           void (*render)(void *self, const rw_block *b, uint32_t from, uint32_t to)) {
  uint32_t e = 0;
  uint32_t f = 0;
  while (f < b->frames) {
    while (e < b->n_events && b->events[e].offset <= f)
      on_event(self, &b->events[e++]);
    uint32_t to =
        e < b->n_events && b->events[e].offset < b->frames ? b->events[e].offset : b->frames;
    render(self, b, f, to);
    f = to;
  }
  while (e < b->n_events)
    on_event(self, &b->events[e++]);
}

#endif
