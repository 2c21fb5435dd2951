/*
 * How slots look from outside: their kinds by name, the JSON of slot.list
 * and stats, and definitions as slots.json and the configuration keep them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "slot_internal.h"

static const char *const kind_names[] = {
    [SLOT_PLUGIN] = "plugin",
    [SLOT_EXEC] = "exec",
    [SLOT_EXTERNAL] = "external",
    [SLOT_LV2] = "lv2",
};

const char *slot_kind_name(enum slot_kind kind) {
  return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "unknown";
}

int slot_kind_parse(const char *name, enum slot_kind *kind) {
  for (size_t i = 0; name != NULL && i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
    if (strcmp(kind_names[i], name) == 0) {
      *kind = (enum slot_kind)i;
      return 0;
    }
  }
  return -EINVAL;
}

static const char *const on_fault_names[] = {
    [SLOT_ON_FAULT_SILENCE] = "silence",
    [SLOT_ON_FAULT_BYPASS] = "bypass",
};

const char *slot_on_fault_name(enum slot_on_fault mode) {
  return (size_t)mode < sizeof(on_fault_names) / sizeof(on_fault_names[0]) ? on_fault_names[mode]
                                                                           : "unknown";
}

int slot_on_fault_parse(const char *name, enum slot_on_fault *mode) {
  for (size_t i = 0; name != NULL && i < sizeof(on_fault_names) / sizeof(on_fault_names[0]); i++) {
    if (strcmp(on_fault_names[i], name) == 0) {
      *mode = (enum slot_on_fault)i;
      return 0;
    }
  }
  return -EINVAL;
}

int slot_spec_from_json(const json_t *def, struct slot_spec *spec, char *err, size_t errlen) {
  json_t *v;
  *spec = (struct slot_spec){
      .name = json_string_value(json_object_get(def, "name")),
      .plugin = json_string_value(json_object_get(def, "plugin")),
      .exec = json_string_value(json_object_get(def, "exec")),
      .inputs = -1,
      .outputs = -1,
      .midi = -1,
  };
  const char *kind = json_string_value(json_object_get(def, "kind"));
  if (spec->name == NULL || kind == NULL) {
    snprintf(err, errlen, "an entry has no name or kind");
    return -EINVAL;
  }
  if (slot_kind_parse(kind, &spec->kind) != 0) {
    snprintf(err, errlen, "slot %s has an unknown kind \"%s\"", spec->name, kind);
    return -EINVAL;
  }
  if (spec->kind == SLOT_LV2)
    spec->plugin = json_string_value(json_object_get(def, "lv2"));
  if (json_is_integer(v = json_object_get(def, "inputs")))
    spec->inputs = json_integer_value(v);
  if (json_is_integer(v = json_object_get(def, "outputs")))
    spec->outputs = json_integer_value(v);
  if (json_is_boolean(v = json_object_get(def, "midi")))
    spec->midi = json_is_true(v);
  if (json_is_number(v = json_object_get(def, "latency_ms")))
    spec->latency_ms = json_number_value(v);
  if (json_is_integer(v = json_object_get(def, "latency_frames")))
    spec->latency_frames = json_integer_value(v);
  v = json_object_get(def, "on_fault");
  if (v != NULL && slot_on_fault_parse(json_string_value(v), &spec->on_fault) != 0) {
    snprintf(err, errlen, "slot %s: on_fault is silence or bypass", spec->name);
    return -EINVAL;
  }
  return 0;
}

json_t *slot_definition_json(const struct slot *s) {
  json_t *o =
      json_pack("{s:s, s:s, s:I, s:I, s:b}", "name", s->name, "kind", slot_kind_name(s->kind),
                "inputs", (json_int_t)s->n_in, "outputs", (json_int_t)s->n_out, "midi", s->midi);
  if (s->plugin != NULL)
    json_object_set_new(o, s->kind == SLOT_LV2 ? "lv2" : "plugin", json_string(s->plugin));
  if (s->exec != NULL)
    json_object_set_new(o, "exec", json_string(s->exec));
  if (s->latency_ms > 0)
    json_object_set_new(o, "latency_ms", json_real(s->latency_ms));
  if (s->latency_frames > 0)
    json_object_set_new(o, "latency_frames", json_integer(s->latency_frames));
  /* Only when not the default, so definitions written before it existed still compare equal. */
  if (s->on_fault != SLOT_ON_FAULT_SILENCE)
    json_object_set_new(o, "on_fault", json_string(slot_on_fault_name(s->on_fault)));
  return o;
}

static json_t *names_json(char *const *names, uint32_t n) {
  json_t *a = json_array();
  for (uint32_t i = 0; i < n; i++)
    json_array_append_new(a, names[i] ? json_string(names[i]) : json_null());
  return a;
}

json_t *slot_to_json(const struct slot *s) {
  const struct runwayd *d = s->d;
  const struct backend_slot *p = s->ports;
  uint32_t rate = backend_sample_rate(d->backend);
  json_t *ports =
      json_pack("{s:o, s:o, s:o}", "inputs", p ? names_json(p->in_names, p->n_in) : json_array(),
                "outputs", p ? names_json(p->out_names, p->n_out) : json_array(), "midi",
                p && p->midi_name ? json_string(p->midi_name) : json_null());
  const char *kind = slot_kind_name(s->kind);
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:o, s:s, s:o, s:I, s:o, s:I, s:I, s:b, s:o, s:I, s:I, s:o, s:o}", "name",
      s->name, "plugin", slot_plugin_name(s) ? slot_plugin_name(s) : kind, "kind", kind, "exec",
      s->exec ? json_string(s->exec) : json_null(), "state", worker_state_name(s->sv.state), "pid",
      s->sv.pid > 0 ? json_integer(s->sv.pid) : json_null(), "latency_frames",
      (json_int_t)s->latency, "latency_ms",
      rate > 0 && s->latency > 0 ? json_real(s->latency * 1000.0 / rate) : json_null(), "inputs",
      (json_int_t)s->n_in, "outputs", (json_int_t)s->n_out, "midi", s->midi, "ports", ports,
      "restarts", (json_int_t)s->sv.restarts, "generation", (json_int_t)s->generation, "last_error",
      s->sv.error[0] ? json_string(s->sv.error) : json_null(), "declared_plugin",
      s->declared_plugin ? json_string(s->declared_plugin) : json_null());
  /* latency_frames is L; the ports report L + the plugin's own latency. */
  json_object_set_new(o, "plugin_latency_frames", json_integer(s->plugin_latency));
  if (s->kind == SLOT_LV2)
    json_object_set_new(o, "lv2", json_string(s->plugin));
  json_object_set_new(o, "on_fault", json_string(slot_on_fault_name(s->on_fault)));
  json_object_set_new(o, "replacing", slot__replace_json(s));
  return o;
}

static json_t *meters_json(const struct slot *s) {
  json_t *a = json_array();
  for (uint32_t i = 0; i < s->n_out; i++)
    json_array_append_new(a, isnan(s->meters[i]) ? json_null() : json_real(s->meters[i]));
  return a;
}

json_t *slot_stats_json(const struct slot *s) {
  struct slot_totals t = s->base;
  if (s->gen != NULL)
    slot__totals_add(&t, s->gen);
  if (s->outgoing != NULL)
    slot__totals_add(&t, s->outgoing);
  /* The lead's recent minimum: the current generation's last one to two seconds. */
  int64_t recent = INT64_MAX;
  json_t *hist = json_array();
  for (int i = 0; i < ENGINE_LEAD_BUCKETS; i++)
    json_array_append_new(hist, json_integer((json_int_t)t.lead_histogram[i]));
  if (s->gen != NULL) {
    int64_t last = atomic_load(&s->gen->counters.lead_min_last);
    int64_t now = atomic_load(&s->gen->counters.lead_min_now);
    recent = last < now ? last : now;
  }
  json_t *o = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:s, "
      "s:I, s:o, s:o}",
      "name", s->name, "underruns", (json_int_t)t.underruns, "underrun_frames",
      (json_int_t)t.underrun_frames, "skipped_frames", (json_int_t)t.skipped_frames, "overruns",
      (json_int_t)t.overruns, "nonfinite_samples", (json_int_t)t.nonfinite_samples, "restarts",
      (json_int_t)s->sv.restarts, "latency_frames", (json_int_t)s->latency, "headroom_min_frames",
      t.headroom_min_frames == INT64_MAX ? json_null() : json_integer(t.headroom_min_frames),
      "cycles", (json_int_t)t.cycles, "events_dropped", (json_int_t)t.events_dropped, "wakeups",
      (json_int_t)t.wakeups, "faults", (json_int_t)t.faults, "discontinuities",
      (json_int_t)t.discontinuities, "state", worker_state_name(s->sv.state), "no_worker_frames",
      (json_int_t)t.no_worker_frames, "lead_histogram", hist, "lead_min_recent_frames",
      recent == INT64_MAX ? json_null() : json_integer(recent));
  json_object_set_new(o, "meters", meters_json(s));
  json_object_set_new(o, "plugin_latency_frames", json_integer(s->plugin_latency));
  /* For top: whose CPU time, and how much of it so far. */
  uint64_t cpu_ms = 0;
  json_object_set_new(o, "pid", s->sv.pid > 0 ? json_integer(s->sv.pid) : json_null());
  json_object_set_new(o, "worker_cpu_ms",
                      s->sv.pid > 0 && worker_proc_cpu_ms(s->sv.pid, &cpu_ms) == 0
                          ? json_integer((json_int_t)cpu_ms)
                          : json_null());
  json_object_set_new(o, "on_fault", json_string(slot_on_fault_name(s->on_fault)));
  json_object_set_new(o, "bypass_frames", json_integer((json_int_t)t.bypass_frames));
  json_object_set_new(o, "replacing", json_boolean(s->replacing != NULL));
  return o;
}
