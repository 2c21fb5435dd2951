/*
 * `runway-worker --list-lv2 [URI] [--json]`: the installed LV2 plugins as
 * runway would host them, read from their data. Only for one plugin is its
 * library loaded too (and unloaded), to tell whether it loads at all.
 * runwayd learns from the JSON what `runwayctl plugins --lv2` shows and
 * what a slot with an LV2 plugin needs (channel counts, MIDI, parameters),
 * and refuses a plugin runway cannot host with the reason given here.
 *
 *   list:  {"plugins":[{"uri","name","class","inputs","outputs","midi",
 *           "latency","params","supported","unsupported"}]}
 *   one:   {"plugin":{... the same, "params" an array of
 *           {"id","name","label","min","max","default","unit","integer",
 *            "toggled","enumeration","logarithmic","sample_rate",
 *            "scale_points":[{"value","label"}]},
 *           "hidden":[symbols of controls that are not parameters],
 *           "required_features":[URIs], "sample_rate"}}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lv2host.h"

/* A string from a plugin's data as JSON; bytes that are not UTF-8 become '?'. */
static json_t *text(const char *s) {
  if (s == NULL)
    return json_null();
  json_t *j = json_string(s);
  if (j != NULL)
    return j;
  char *copy = strdup(s);
  if (copy == NULL)
    return NULL;
  for (char *c = copy; *c != '\0'; c++)
    if ((unsigned char)*c >= 0x80)
      *c = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *summary(const struct lv2host_desc *d) {
  return json_pack("{s:s, s:o, s:o, s:I, s:I, s:b, s:b, s:I, s:b, s:o}", "uri", d->uri, "name",
                   text(d->name), "class", text(d->class_label), "inputs",
                   (json_int_t)d->n_audio_in, "outputs", (json_int_t)d->n_audio_out, "midi",
                   d->midi_port >= 0, "latency", d->latency_port >= 0, "params",
                   (json_int_t)d->n_exposed, "supported", d->unsupported[0] == '\0', "unsupported",
                   d->unsupported[0] ? text(d->unsupported) : json_null());
}

static json_t *control_json(const struct lv2host_control *c) {
  json_t *points = json_array();
  for (uint32_t k = 0; points != NULL && k < c->n_points; k++)
    json_array_append_new(points, json_pack("{s:f, s:o}", "value", (double)c->points[k].value,
                                            "label", text(c->points[k].label)));
  return json_pack("{s:I, s:o, s:o, s:f, s:f, s:f, s:o, s:b, s:b, s:b, s:b, s:b, s:o}", "id",
                   (json_int_t)c->port, "name", text(c->symbol), "label", text(c->label), "min",
                   (double)c->min, "max", (double)c->max, "default", (double)c->def, "unit",
                   text(c->unit), "integer", (c->flags & LV2HOST_CTL_INTEGER) != 0, "toggled",
                   (c->flags & LV2HOST_CTL_TOGGLED) != 0, "enumeration",
                   (c->flags & LV2HOST_CTL_ENUMERATION) != 0, "logarithmic",
                   (c->flags & LV2HOST_CTL_LOGARITHMIC) != 0, "sample_rate",
                   (c->flags & LV2HOST_CTL_SAMPLE_RATE) != 0, "scale_points", points);
}

static json_t *details(const struct lv2host_desc *d, uint32_t rate) {
  json_t *o = summary(d);
  json_t *params = json_array();
  json_t *hidden = json_array();
  json_t *features = json_array();
  if (o == NULL || params == NULL || hidden == NULL || features == NULL) {
    json_decref(o);
    json_decref(params);
    json_decref(hidden);
    json_decref(features);
    return NULL;
  }
  for (uint32_t i = 0; i < d->n_controls; i++) {
    const struct lv2host_control *c = &d->controls[i];
    if (c->flags & LV2HOST_CTL_EXPOSED)
      json_array_append_new(params, control_json(c));
    else
      json_array_append_new(hidden, text(c->symbol));
  }
  LilvNodes *req = lilv_plugin_get_required_features(d->plugin);
  LILV_FOREACH(nodes, it, req)
  json_array_append_new(features, text(lilv_node_as_uri(lilv_nodes_get(req, it))));
  lilv_nodes_free(req);
  json_object_set_new(o, "params", params);
  json_object_set_new(o, "hidden", hidden);
  json_object_set_new(o, "required_features", features);
  json_object_set_new(o, "sample_rate", json_integer(rate));
  return o;
}

static int print_json(json_t *root) {
  /* Seven digits print a float's value as written (0.27, not 0.270000011). */
  char *s = root != NULL ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
  json_decref(root);
  if (s == NULL) {
    fprintf(stderr, "runway-worker: cannot encode the LV2 catalog\n");
    return 1;
  }
  int ok = puts(s) >= 0 && fflush(stdout) == 0;
  free(s);
  return ok ? 0 : 1;
}

static void print_summary(const struct lv2host_desc *d) {
  printf("%s\n    %s (%s): %u in, %u out%s%s\n", d->uri, d->name, d->class_label, d->n_audio_in,
         d->n_audio_out, d->midi_port >= 0 ? ", MIDI" : "",
         d->latency_port >= 0 ? ", reports latency" : "");
  if (d->unsupported[0] != '\0')
    printf("    not supported: %s\n", d->unsupported);
}

static void print_details(const struct lv2host_desc *d, uint32_t rate) {
  print_summary(d);
  printf("    parameters (ranges at %u Hz):\n", rate);
  for (uint32_t i = 0; i < d->n_controls; i++) {
    const struct lv2host_control *c = &d->controls[i];
    if (!(c->flags & LV2HOST_CTL_EXPOSED))
      continue;
    printf("    %4u %-22s %g .. %g, default %g %s%s%s%s  (%s)\n", c->port, c->symbol,
           (double)c->min, (double)c->max, (double)c->def, c->unit,
           c->flags & LV2HOST_CTL_INTEGER ? " integer" : "",
           c->flags & LV2HOST_CTL_TOGGLED ? " toggle" : "",
           c->flags & LV2HOST_CTL_ENUMERATION ? " choice" : "", c->label);
    for (uint32_t k = 0; k < c->n_points; k++)
      printf("           %g = %s\n", (double)c->points[k].value, c->points[k].label);
  }
  if (d->n_controls > d->n_exposed)
    printf("    %u more controls keep their defaults\n", d->n_controls - d->n_exposed);
}

int lv2host_catalog_main(const char *uri, int json, uint32_t sample_rate) {
  struct lv2host_world world;
  struct lv2host_desc desc;
  char err[512];
  int status = 1;

  if (lv2host_world_open(&world) != 0) {
    fprintf(stderr, "runway-worker: out of memory loading the LV2 world\n");
    return 1;
  }
  if (uri != NULL) {
    const LilvPlugin *p = lv2host_world_find(&world, uri, err, sizeof(err));
    if (p == NULL) {
      fprintf(stderr, "runway-worker: %s\n", err);
      status = 3;
    } else if (lv2host_describe(&world, p, sample_rate, &desc) != 0) {
      fprintf(stderr, "runway-worker: out of memory describing <%s>\n", uri);
    } else {
      /* One plugin: worth loading its library, so a slot is never made for one that fails. */
      if (desc.unsupported[0] == '\0' && lv2host_check_library(&desc, err, sizeof(err)) != 0)
        snprintf(desc.unsupported, sizeof(desc.unsupported), "%s", err);
      if (json) {
        status = print_json(json_pack("{s:o}", "plugin", details(&desc, sample_rate)));
      } else {
        print_details(&desc, sample_rate);
        status = fflush(stdout) == 0 ? 0 : 1;
      }
      lv2host_desc_free(&desc);
    }
    lv2host_world_close(&world);
    return status;
  }

  const LilvPlugins *all = lilv_world_get_all_plugins(world.world);
  json_t *list = json ? json_array() : NULL;
  status = 0;
  LILV_FOREACH(plugins, it, all) {
    if (lv2host_describe(&world, lilv_plugins_get(all, it), sample_rate, &desc) != 0) {
      fprintf(stderr, "runway-worker: out of memory describing the installed plugins\n");
      status = 1;
      break;
    }
    if (json)
      json_array_append_new(list, summary(&desc));
    else
      print_summary(&desc);
    lv2host_desc_free(&desc);
  }
  if (json && status == 0)
    status = print_json(json_pack("{s:o}", "plugins", list));
  else if (json)
    json_decref(list);
  else if (fflush(stdout) != 0)
    status = 1;
  lv2host_world_close(&world);
  return status;
}
