/*
 * The binary interface seen from other languages: the layout table behind
 * rw_worker_abi_offset (what this library was compiled with, not what the
 * header says: a binding checks its mirror against the library it loaded),
 * and accessors for a block's channels and events.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "sdk_internal.h"

struct layout_entry {
  const char *name;
  int64_t value;
};

#define SIZE(type)                                                                                 \
  { #type, (int64_t)sizeof(type) }
#define OFF(type, member)                                                                          \
  { #type "." #member, (int64_t)offsetof(type, member) }

static const struct layout_entry layout[] = {
    SIZE(rw_event),
    OFF(rw_event, offset),
    OFF(rw_event, kind),
    OFF(rw_event, size),
    OFF(rw_event, u),
    OFF(rw_event, u.midi.data),
    OFF(rw_event, u.param.id),
    OFF(rw_event, u.param.value),
    SIZE(rw_param_info),
    OFF(rw_param_info, id),
    OFF(rw_param_info, name),
    OFF(rw_param_info, min),
    OFF(rw_param_info, max),
    OFF(rw_param_info, def),
    OFF(rw_param_info, unit),
    SIZE(rw_block),
    OFF(rw_block, frames),
    OFF(rw_block, n_inputs),
    OFF(rw_block, n_outputs),
    OFF(rw_block, inputs),
    OFF(rw_block, outputs),
    OFF(rw_block, events),
    OFF(rw_block, n_events),
    OFF(rw_block, position),
    OFF(rw_block, latency),
    OFF(rw_block, sample_rate),
    OFF(rw_block, discontinuity),
    OFF(rw_block, skipped),
    SIZE(rw_worker_info),
    OFF(rw_worker_info, slot),
    OFF(rw_worker_info, sample_rate),
    OFF(rw_worker_info, n_inputs),
    OFF(rw_worker_info, n_outputs),
    OFF(rw_worker_info, midi),
    OFF(rw_worker_info, latency),
    OFF(rw_worker_info, max_block),
    OFF(rw_worker_info, period),
    OFF(rw_worker_info, wake_frames),
    SIZE(rw_worker_stats),
    OFF(rw_worker_stats, blocks),
    OFF(rw_worker_stats, frames),
    OFF(rw_worker_stats, skipped_frames),
    OFF(rw_worker_stats, discontinuities),
    OFF(rw_worker_stats, events),
    OFF(rw_worker_stats, events_late),
    OFF(rw_worker_stats, events_invalid),
    OFF(rw_worker_stats, messages_dropped),
    SIZE(rw_worker_options),
    OFF(rw_worker_options, api_version),
    OFF(rw_worker_options, socket),
    OFF(rw_worker_options, slot),
    OFF(rw_worker_options, max_block),
    OFF(rw_worker_options, wake_frames),
    OFF(rw_worker_options, params),
    OFF(rw_worker_options, n_params),
    OFF(rw_worker_options, plugin),
    SIZE(rw_state_handlers),
    OFF(rw_state_handlers, save),
    OFF(rw_state_handlers, load),
    OFF(rw_state_handlers, user),
    SIZE(rw_plugin),
    OFF(rw_plugin, name),
    OFF(rw_plugin, description),
    OFF(rw_plugin, n_inputs),
    OFF(rw_plugin, n_outputs),
    OFF(rw_plugin, midi),
    OFF(rw_plugin, params),
    OFF(rw_plugin, n_params),
    OFF(rw_plugin, create),
    OFF(rw_plugin, destroy),
    OFF(rw_plugin, process),
    OFF(rw_plugin, save_state),
    OFF(rw_plugin, load_state),
};

int64_t rw_worker_abi_offset(const char *name) {
  if (name == NULL)
    return -1;
  for (size_t i = 0; i < sizeof(layout) / sizeof(layout[0]); i++)
    if (strcmp(layout[i].name, name) == 0)
      return layout[i].value;
  return -1;
}

const float *rw_block_input(const rw_block *b, uint32_t channel) {
  return b != NULL && b->inputs != NULL && channel < b->n_inputs ? b->inputs[channel] : NULL;
}

float *rw_block_output(const rw_block *b, uint32_t channel) {
  return b != NULL && b->outputs != NULL && channel < b->n_outputs ? b->outputs[channel] : NULL;
}

const rw_event *rw_block_event(const rw_block *b, uint32_t index) {
  return b != NULL && b->events != NULL && index < b->n_events ? &b->events[index] : NULL;
}

uint32_t rw_event_param_id(const rw_event *ev) {
  return ev != NULL && ev->kind == RW_EV_PARAM ? ev->u.param.id : 0;
}

float rw_event_param_value(const rw_event *ev) {
  return ev != NULL && ev->kind == RW_EV_PARAM ? ev->u.param.value : NAN;
}

const uint8_t *rw_event_midi_data(const rw_event *ev) {
  return ev != NULL && ev->kind == RW_EV_MIDI ? ev->u.midi.data : NULL;
}
