/*
 * A plugin as runway sees it, read from its RDF data through lilv: which
 * ports it has and how runway connects them, its controls as runway
 * parameters (ranges, defaults, snapping), its latency and MIDI ports, and
 * whether runway can host it at all. Nothing here loads the plugin's code.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lv2/buf-size/buf-size.h>
#include <lv2/options/options.h>
#include <lv2/parameters/parameters.h>

#include "lv2host.h"

/* Atom buffers hold at least this many bytes: RW_MAX_BLOCK_EVENTS MIDI events fit easily. */
#define ATOM_CAPACITY_MIN 32768u
#define ATOM_CAPACITY_MAX (16u * 1024u * 1024u)

/* A symbol runway can show as a parameter name: 1 to RW_NAME_MAX - 1 of [A-Za-z0-9_]. */
static int showable_symbol(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= RW_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* A unit symbol runway can show: fits, and nothing JSON must escape. */
static int showable_unit(const char *s) {
  if (strlen(s) >= RW_UNIT_MAX)
    return 0;
  for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
    if (*c < 0x20 || *c == 0x7f || *c == '"' || *c == '\\')
      return 0;
  return 1;
}

static void unsupported(struct lv2host_desc *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void unsupported(struct lv2host_desc *d, const char *fmt, ...) {
  if (d->unsupported[0] != '\0')
    return; /* the first reason is the one reported */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->unsupported, sizeof(d->unsupported), fmt, ap);
  va_end(ap);
}

/* The unit's symbol ("dB", "Hz"), whether the unit is one of LV2's or a blank node. */
static void read_unit(struct lv2host_world *w, const LilvPlugin *p, const LilvPort *port,
                      char *out) {
  out[0] = '\0';
  LilvNodes *units = lilv_port_get_value(p, port, w->n.unit);
  const LilvNode *unit = units != NULL ? lilv_nodes_get_first(units) : NULL;
  if (unit != NULL) {
    LilvNode *sym = lilv_world_get(w->world, unit, w->n.unit_symbol, NULL);
    const char *text = lv2host_node_string(sym);
    if (text != NULL && showable_unit(text))
      snprintf(out, RW_UNIT_MAX, "%s", text);
    lilv_node_free(sym);
  }
  lilv_nodes_free(units);
}

static int by_value(const void *a, const void *b) {
  float x = ((const struct lv2host_scale_point *)a)->value;
  float y = ((const struct lv2host_scale_point *)b)->value;
  return (x > y) - (x < y);
}

static int read_scale_points(const LilvPlugin *p, const LilvPort *port, struct lv2host_control *c) {
  LilvScalePoints *points = lilv_port_get_scale_points(p, port);
  if (points == NULL)
    return 0;
  unsigned n = lilv_scale_points_size(points);
  c->points = calloc(n ? n : 1, sizeof(*c->points));
  if (c->points == NULL) {
    lilv_scale_points_free(points);
    return -ENOMEM;
  }
  LILV_FOREACH(scale_points, it, points) {
    const LilvScalePoint *sp = lilv_scale_points_get(points, it);
    const LilvNode *value = lilv_scale_point_get_value(sp);
    if (!lilv_node_is_float(value) && !lilv_node_is_int(value))
      continue;
    float v = lilv_node_as_float(value);
    if (!isfinite(v))
      continue;
    const char *label = lv2host_node_string(lilv_scale_point_get_label(sp));
    struct lv2host_scale_point *dst = &c->points[c->n_points++];
    dst->value = v;
    dst->label = strdup(label ? label : "");
    if (dst->label == NULL) {
      lilv_scale_points_free(points);
      return -ENOMEM;
    }
  }
  lilv_scale_points_free(points);
  qsort(c->points, c->n_points, sizeof(*c->points), by_value);
  return 0;
}

/*
 * Range and default, made usable: finite, min <= default <= max. The data
 * may lack any of them (NaN from lilv) or hold nonsense; jalv and lv2apply
 * take a missing default as 0, and so does runway when 0 is in range.
 */
static void settle_range(struct lv2host_control *c, float min, float max, float def) {
  int toggled = (c->flags & LV2HOST_CTL_TOGGLED) != 0;
  if (!isfinite(min))
    min = toggled ? 0.0f : NAN;
  if (!isfinite(max))
    max = toggled ? 1.0f : NAN;
  if (!isfinite(def))
    def = NAN;
  if (isnan(min) && isnan(max)) {
    min = isnan(def) ? 0.0f : fminf(def, 0.0f);
    max = isnan(def) ? 1.0f : fmaxf(def, 1.0f);
  } else if (isnan(min)) {
    min = isnan(def) ? fminf(0.0f, max) : fminf(def, max);
  } else if (isnan(max)) {
    max = isnan(def) ? fmaxf(1.0f, min) : fmaxf(def, min);
  }
  if (min > max) {
    float t = min;
    min = max;
    max = t;
  }
  if (isnan(def))
    def = min <= 0.0f && 0.0f <= max ? 0.0f : min;
  c->min = min;
  c->max = max;
  c->def = def < min ? min : def > max ? max : def;
}

static int describe_control(struct lv2host_world *w, const LilvPlugin *p, const LilvPort *port,
                            uint32_t index, uint32_t rate, float min, float max, float def,
                            struct lv2host_desc *d) {
  struct lv2host_control *c = &d->controls[d->n_controls];
  c->port = index;
  c->symbol = lilv_node_as_string(lilv_port_get_symbol(p, port));
  LilvNode *label = lilv_port_get_name(p, port);
  c->label = strdup(label != NULL ? lilv_node_as_string(label) : c->symbol);
  lilv_node_free(label);
  if (c->label == NULL)
    return -ENOMEM;
  if (lilv_port_has_property(p, port, w->n.integer))
    c->flags |= LV2HOST_CTL_INTEGER;
  if (lilv_port_has_property(p, port, w->n.toggled))
    c->flags |= LV2HOST_CTL_TOGGLED;
  if (lilv_port_has_property(p, port, w->n.enumeration))
    c->flags |= LV2HOST_CTL_ENUMERATION;
  if (lilv_port_has_property(p, port, w->n.logarithmic))
    c->flags |= LV2HOST_CTL_LOGARITHMIC;
  if (lilv_port_has_property(p, port, w->n.sample_rate)) {
    c->flags |= LV2HOST_CTL_SAMPLE_RATE;
    if (rate > 0) {
      min *= (float)rate;
      max *= (float)rate;
      def *= (float)rate;
    }
  }
  settle_range(c, min, max, def);
  read_unit(w, p, port, c->unit);
  if (read_scale_points(p, port, c) != 0)
    return -ENOMEM;
  if (c->symbol != NULL && showable_symbol(c->symbol) && d->n_exposed < RW_MAX_PARAMS) {
    c->flags |= LV2HOST_CTL_EXPOSED;
    d->n_exposed++;
  }
  d->ports[index].control = d->n_controls++;
  return 0;
}

static size_t atom_capacity(struct lv2host_world *w, const LilvPlugin *p, const LilvPort *port) {
  size_t cap = ATOM_CAPACITY_MIN;
  LilvNodes *sizes = lilv_port_get_value(p, port, w->n.minimum_size);
  const LilvNode *size = sizes != NULL ? lilv_nodes_get_first(sizes) : NULL;
  if (size != NULL && lilv_node_is_int(size)) {
    int v = lilv_node_as_int(size);
    if (v > 0 && (size_t)v > cap)
      cap = (size_t)v < ATOM_CAPACITY_MAX ? (size_t)v : ATOM_CAPACITY_MAX;
  }
  lilv_nodes_free(sizes);
  return cap;
}

static int is_latency_port(struct lv2host_world *w, const LilvPlugin *p, const LilvPort *port) {
  if (lilv_port_has_property(p, port, w->n.reports_latency))
    return 1;
  LilvNodes *des = lilv_port_get_value(p, port, w->n.designation);
  int yes = des != NULL && lilv_nodes_contains(des, w->n.latency);
  lilv_nodes_free(des);
  return yes;
}

static void describe_port(struct lv2host_world *w, const LilvPlugin *p, uint32_t i,
                          struct lv2host_desc *d, int *rc, uint32_t rate, const float *mins,
                          const float *maxs, const float *defs) {
  const LilvPort *port = lilv_plugin_get_port_by_index(p, i);
  struct lv2host_port *dst = &d->ports[i];
  dst->symbol = lilv_node_as_string(lilv_port_get_symbol(p, port));
  int in = lilv_port_is_a(p, port, w->n.input_port);
  int out = lilv_port_is_a(p, port, w->n.output_port);
  int optional = lilv_port_has_property(p, port, w->n.connection_optional);

  if (in == out) {
    dst->kind = LV2HOST_UNCONNECTED;
    if (!optional)
      unsupported(d, "its port %u (%s) is %s an input nor an output", i,
                  dst->symbol ? dst->symbol : "?", in ? "both" : "neither");
  } else if (lilv_port_is_a(p, port, w->n.audio_port)) {
    dst->kind = in ? LV2HOST_AUDIO_IN : LV2HOST_AUDIO_OUT;
    dst->channel = in ? d->n_audio_in++ : d->n_audio_out++;
  } else if (lilv_port_is_a(p, port, w->n.control_port)) {
    dst->kind = in ? LV2HOST_CONTROL_IN : LV2HOST_CONTROL_OUT;
    if (in)
      *rc = describe_control(w, p, port, i, rate, mins[i], maxs[i], defs[i], d);
    else if (d->latency_port < 0 && is_latency_port(w, p, port))
      d->latency_port = i;
  } else if (lilv_port_is_a(p, port, w->n.atom_port)) {
    dst->kind = in ? LV2HOST_ATOM_IN : LV2HOST_ATOM_OUT;
    dst->atom_capacity = atom_capacity(w, p, port);
    dst->midi = lilv_port_supports_event(p, port, w->n.midi_event);
    if (in && dst->midi && d->midi_port < 0)
      d->midi_port = i;
  } else if (lilv_port_is_a(p, port, w->n.cv_port)) {
    dst->kind = in ? LV2HOST_CV_IN : LV2HOST_CV_OUT;
  } else {
    dst->kind = LV2HOST_UNCONNECTED;
    if (!optional)
      unsupported(d, "its port %u (%s) is of a type runway cannot connect", i,
                  dst->symbol ? dst->symbol : "?");
  }
}

/* Required features and options runway does not provide make the plugin unhostable. */
static void check_requirements(struct lv2host_world *w, const LilvPlugin *p,
                               struct lv2host_desc *d) {
  LilvNodes *features = lilv_plugin_get_required_features(p);
  LILV_FOREACH(nodes, it, features) {
    const char *uri = lilv_node_as_uri(lilv_nodes_get(features, it));
    if (uri == NULL || lv2host_feature_supported(uri))
      continue;
    const char *name = lv2host_feature_name(uri);
    if (name != NULL)
      unsupported(d, "it requires %s (<%s>), which runway-worker does not provide", name, uri);
    else
      unsupported(d, "it requires the feature <%s>, which runway-worker does not provide", uri);
  }
  lilv_nodes_free(features);

  static const char *const provided[] = {
      LV2_PARAMETERS__sampleRate,       LV2_BUF_SIZE__minBlockLength, LV2_BUF_SIZE__maxBlockLength,
      LV2_BUF_SIZE__nominalBlockLength, LV2_BUF_SIZE__sequenceSize,
  };
  LilvNodes *options = lilv_plugin_get_value(p, w->n.required_option);
  LILV_FOREACH(nodes, it, options) {
    const char *uri = lilv_node_as_uri(lilv_nodes_get(options, it));
    int known = 0;
    for (size_t k = 0; uri != NULL && k < sizeof(provided) / sizeof(provided[0]); k++)
      known |= strcmp(uri, provided[k]) == 0;
    if (uri != NULL && !known)
      unsupported(d, "it requires the option <%s>, which runway-worker does not provide", uri);
  }
  lilv_nodes_free(options);
}

int lv2host_describe(struct lv2host_world *w, const LilvPlugin *p, uint32_t sample_rate,
                     struct lv2host_desc *d) {
  int rc = 0;
  memset(d, 0, sizeof(*d));
  d->plugin = p;
  d->uri = lilv_node_as_uri(lilv_plugin_get_uri(p));
  d->latency_port = -1;
  d->midi_port = -1;

  LilvNode *name = lilv_plugin_get_name(p);
  d->name = strdup(name != NULL ? lilv_node_as_string(name) : d->uri);
  lilv_node_free(name);
  const LilvNode *label = lilv_plugin_class_get_label(lilv_plugin_get_class(p));
  d->class_label = strdup(label != NULL ? lilv_node_as_string(label) : "Plugin");
  d->n_ports = lilv_plugin_get_num_ports(p);
  d->ports = calloc(d->n_ports ? d->n_ports : 1, sizeof(*d->ports));
  d->controls = calloc(d->n_ports ? d->n_ports : 1, sizeof(*d->controls));
  float *mins = calloc(d->n_ports ? d->n_ports : 1, 3 * sizeof(float));
  if (d->name == NULL || d->class_label == NULL || d->ports == NULL || d->controls == NULL ||
      mins == NULL) {
    free(mins);
    lv2host_desc_free(d);
    return -ENOMEM;
  }
  float *maxs = mins + d->n_ports;
  float *defs = maxs + d->n_ports;
  lilv_plugin_get_port_ranges_float(p, mins, maxs, defs);

  /* lilv_plugin_verify: a binary, a name, ports with types and symbols. */
  if (!lilv_plugin_verify(p))
    unsupported(d, "its description is incomplete or invalid (lilv could not verify it)");
  check_requirements(w, p, d);
  for (uint32_t i = 0; i < d->n_ports && rc == 0; i++)
    describe_port(w, p, i, d, &rc, sample_rate, mins, maxs, defs);
  free(mins);
  if (rc != 0) {
    lv2host_desc_free(d);
    return rc;
  }
  d->coarse = lilv_plugin_has_feature(p, w->n.coarse_block_length);
  d->load_default_state = lilv_plugin_has_feature(p, w->n.load_default_state);
  return 0;
}

void lv2host_desc_free(struct lv2host_desc *d) {
  for (uint32_t i = 0; d->controls != NULL && i < d->n_controls; i++) {
    struct lv2host_control *c = &d->controls[i];
    for (uint32_t k = 0; k < c->n_points; k++)
      free(c->points[k].label);
    free(c->points);
    free(c->label);
  }
  free(d->controls);
  free(d->ports);
  free(d->name);
  free(d->class_label);
  memset(d, 0, sizeof(*d));
}

const struct lv2host_control *lv2host_desc_control(const struct lv2host_desc *d,
                                                   const char *symbol) {
  for (uint32_t i = 0; symbol != NULL && i < d->n_controls; i++)
    if (d->controls[i].symbol != NULL && strcmp(d->controls[i].symbol, symbol) == 0)
      return &d->controls[i];
  return NULL;
}

float lv2host_control_snap(const struct lv2host_control *c, float v) {
  if (isnan(v))
    v = c->def;
  v = v < c->min ? c->min : v > c->max ? c->max : v;
  if (c->flags & LV2HOST_CTL_TOGGLED) {
    if (v > 0.0f)
      return c->max;
    return c->min <= 0.0f ? 0.0f : c->min;
  }
  if ((c->flags & LV2HOST_CTL_ENUMERATION) && c->n_points > 0) {
    /* The nearest point; between two equally near ones, the lower. */
    float best = c->points[0].value;
    for (uint32_t i = 1; i < c->n_points; i++)
      if (fabsf(c->points[i].value - v) < fabsf(best - v))
        best = c->points[i].value;
    return best;
  }
  if (c->flags & LV2HOST_CTL_INTEGER) {
    float r = roundf(v);
    /* A range with fractional ends: the nearest integer inside it, if there is one. */
    if (r > c->max)
      r -= 1.0f;
    if (r < c->min)
      r += 1.0f;
    return r >= c->min && r <= c->max ? r : v;
  }
  return v;
}
