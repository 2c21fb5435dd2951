/*
 * Parameters of a slot: their values (kept here, sent to every worker), the
 * worker's declaration of them, and the param.* commands.
 */
#include <math.h>
#include <stdio.h>

#include "slot_internal.h"

static void emit_param(struct slot *s, int i) {
  slot__emit(s, "param",
             json_pack("{s:s, s:s, s:I, s:f}", "slot", s->name, "param", s->params.defs[i].name,
                       "param_id", (json_int_t)s->params.defs[i].id, "value", s->params.values[i]));
}

static json_t *param_not_found(const struct slot *s, json_t *id, const json_t *key) {
  char what[64];
  if (json_is_string(key))
    snprintf(what, sizeof(what), "\"%s\"", json_string_value(key));
  else
    snprintf(what, sizeof(what), "id %lld", (long long)json_integer_value(key));
  if (s->params.n == 0 && !s->params_from_worker && s->kind != SLOT_PLUGIN)
    return proto_response_error(id, PROTO_E_NOT_FOUND,
                                "slot \"%s\" has no parameter %s: its worker has not declared any "
                                "yet (it is %s)",
                                s->name, what, worker_state_name(s->sv.state));
  return proto_response_error(id, PROTO_E_NOT_FOUND,
                              "slot \"%s\" has no parameter %s; `runwayctl param list %s` shows "
                              "them",
                              s->name, what, s->name);
}

void slot__param_from_worker(struct slot *s, uint32_t id, float value) {
  json_t *key = json_integer(id);
  int idx = params_find(&s->params, key);
  json_decref(key);
  if (idx < 0 || !isfinite(value))
    return;
  float v = params_clamp(&s->params.defs[idx], value, NULL);
  if (v != s->params.values[idx]) {
    s->params.values[idx] = v;
    store_mark_dirty(s->d);
    emit_param(s, idx);
  }
}

/*
 * Hands a new generation every parameter value as events at timeline time 0:
 * the worker gets them at offset 0 of its first block, before it has made a
 * sound, and after the state it loads first (whose copy of the parameters
 * may be older than the daemon's, which win). The RT thread has not seen the
 * segment yet, so the control thread may still produce into its event ring.
 */
void slot__push_param_table(const struct param_table *t, struct engine_slot *g) {
  for (uint32_t i = 0; i < t->n; i++) {
    struct rw_record ev = {.time = 0, .type = RW_EVENT_PARAM};
    ev.u.param.id = t->defs[i].id;
    ev.u.param.value = t->values[i];
    if (shm_spsc_push(&g->events, &ev) != 0)
      break;
  }
}

/*
 * Reads the parameters the worker declared in its info block. Built-in
 * plugins declare what the catalog said; any other worker declares them
 * here first. Values the daemon kept carry over by name.
 */
void slot__adopt_declared_params(struct slot *s, struct engine_slot *g) {
  struct param_table t;
  char err[256];
  if (params_from_info(&t, g->segment.info, err, sizeof(err)) != 0) {
    log_warn("slot %s: ignoring the parameters its worker declared: %s", s->name, err);
    return;
  }
  if (t.n == 0 && s->params.n > 0) {
    params_free(&t); /* a worker that declares nothing keeps the catalog's table */
    return;
  }
  params_carry_values(&t, &s->params);
  params_apply_json(&t, s->pending_params);
  bool had_table = s->params.n > 0;
  params_free(&s->params);
  s->params = t;
  s->params_from_worker = true;
  /* Values the worker did not get at its start (its table was unknown then). */
  for (uint32_t i = 0; i < s->params.n; i++) {
    const char *name = s->params.defs[i].name;
    if (had_table && json_object_get(s->pending_params, name) == NULL)
      continue;
    json_object_del(s->pending_params, name);
    struct engine_cmd cmd = {
        .type = ENGINE_CMD_PARAM, .param_id = s->params.defs[i].id, .value = s->params.values[i]};
    if (s->params.values[i] != s->params.defs[i].def)
      engine_slot_command(g, &cmd);
  }
}

/*
 * A value for the worker: the current generation's, and a generation taking
 * over with the same plugin, which must not start from an older one.
 */
static int send_param(struct slot *s, uint32_t id, float value) {
  struct engine_cmd cmd = {.type = ENGINE_CMD_PARAM, .param_id = id, .value = value};
  struct engine_slot *next = slot__incoming_same(s);
  int rc = s->gen != NULL ? engine_slot_command(s->gen, &cmd) : 0;
  if (rc == 0 && next != NULL)
    rc = engine_slot_command(next, &cmd);
  return rc;
}

json_t *slots_param_list(struct slot *s, json_t *id) {
  return proto_response_built(id, json_pack("{s:s, s:s, s:o}", "slot", s->name, "declared_by",
                                            s->params_from_worker ? "worker" : "catalog", "params",
                                            params_list_json(&s->params)));
}

json_t *slots_param_get(struct slot *s, json_t *id, const json_t *key) {
  int i = params_find(&s->params, key);
  if (i < 0)
    return param_not_found(s, id, key);
  const struct param_def *pd = &s->params.defs[i];
  return proto_response_built(id, json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:s}", "slot",
                                            s->name, "param", pd->name, "id", (json_int_t)pd->id,
                                            "value", s->params.values[i], "min", pd->min, "max",
                                            pd->max, "default", pd->def, "unit", pd->unit));
}

json_t *slots_param_set(struct slot *s, json_t *id, const json_t *key, double value) {
  int i = params_find(&s->params, key);
  if (i < 0)
    return param_not_found(s, id, key);
  if (!isfinite(value))
    return proto_response_error(id, PROTO_E_INVALID_ARGUMENT, "the value must be a finite number");
  const struct param_def *pd = &s->params.defs[i];
  bool clamped;
  float v = params_clamp(pd, value, &clamped);
  if (s->replacing != NULL && slot__incoming_same(s) == NULL)
    return proto_response_error(id, PROTO_E_BUSY,
                                "slot \"%s\" is being replaced by another plugin, whose "
                                "parameters apply once it plays; try again in a moment",
                                s->name);
  if (send_param(s, pd->id, v) != 0)
    return proto_response_error(
        id, PROTO_E_BUSY, "slot \"%s\" has too many parameter changes queued; try again", s->name);
  s->params.values[i] = v;
  store_mark_dirty(s->d);
  emit_param(s, i);
  return proto_response_built(id,
                              json_pack("{s:s, s:s, s:I, s:f, s:f, s:b, s:s}", "slot", s->name,
                                        "param", pd->name, "id", (json_int_t)pd->id, "value", v,
                                        "requested", value, "clamped", clamped, "unit", pd->unit));
}

void slots_set_param_values(struct slot *s, const json_t *values) {
  const char *name;
  json_t *v;
  if (!json_is_object(values))
    return;
  json_object_foreach((json_t *)values, name, v) {
    if (!json_is_number(v))
      continue;
    json_t *key = json_string(name);
    int i = params_find(&s->params, key);
    json_decref(key);
    if (i < 0) {
      /* Not declared (yet): kept and applied when the worker declares it. */
      json_object_set(s->pending_params, name, v);
      continue;
    }
    float f = params_clamp(&s->params.defs[i], json_number_value(v), NULL);
    s->params.values[i] = f;
    emit_param(s, i);
    send_param(s, s->params.defs[i].id, f);
  }
  store_mark_dirty(s->d);
}

void slots_resend_params(struct slot *s) {
  if (s->gen == NULL)
    return;
  for (uint32_t i = 0; i < s->params.n; i++)
    if (send_param(s, s->params.defs[i].id, s->params.values[i]) != 0)
      break;
}

json_t *slots_param_values(const struct slot *s) {
  json_t *o = params_values_json(&s->params);
  json_object_update_missing(o, s->pending_params);
  return o;
}
