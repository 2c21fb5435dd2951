#include "ctl.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX 160

/*
 * Strings from the daemon go to a terminal: control characters (escape
 * sequences) are shown as '?'. A missing value prints as "-".
 */
static void clean_into(char *buf, size_t len, const char *s) {
  size_t i = 0;
  if (s == NULL)
    s = "-";
  for (; *s != '\0' && i + 1 < len; s++)
    buf[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
  buf[i] = '\0';
}

/* Any scalar as text: strings cleaned, numbers as numbers, null or missing as "-". */
static void scalar(char *buf, size_t len, const json_t *v) {
  switch (v != NULL ? json_typeof(v) : JSON_NULL) {
  case JSON_STRING:
    clean_into(buf, len, json_string_value(v));
    break;
  case JSON_INTEGER:
    snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    break;
  case JSON_REAL:
    snprintf(buf, len, "%g", json_real_value(v));
    break;
  case JSON_TRUE:
    snprintf(buf, len, "yes");
    break;
  case JSON_FALSE:
    snprintf(buf, len, "no");
    break;
  default:
    snprintf(buf, len, "-");
  }
}

static void field(char *buf, size_t len, const json_t *obj, const char *key) {
  scalar(buf, len, json_object_get(obj, key));
}

static double number(const json_t *obj, const char *key, double fallback) {
  const json_t *v = json_object_get(obj, key);
  return json_is_number(v) ? json_number_value(v) : fallback;
}

void ctl_format_latency(char *buf, size_t len, const json_t *slot, double sample_rate) {
  const json_t *frames = json_object_get(slot, "latency_frames");
  double ms = number(slot, "latency_ms", NAN);

  if (!json_is_integer(frames)) {
    if (isnan(ms))
      snprintf(buf, len, "-");
    else
      snprintf(buf, len, "%.1f ms", ms);
    return;
  }
  if (isnan(ms) && sample_rate > 0)
    ms = (double)json_integer_value(frames) * 1000.0 / sample_rate;
  if (isnan(ms))
    snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(frames));
  else
    snprintf(buf, len, "%" JSON_INTEGER_FORMAT " (%.1f ms)", json_integer_value(frames), ms);
}

/* A table: cells[row * ncols + col], each CELL_MAX bytes; row 0 is the header. */
struct table {
  size_t ncols, nrows, cap;
  char (*cells)[CELL_MAX];
};

static char *table_cell(struct table *t, size_t row, size_t col) {
  static char scratch[CELL_MAX];
  if (row >= t->nrows || t->cells == NULL)
    return scratch;
  return t->cells[row * t->ncols + col];
}

static int table_add_row(struct table *t) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    void *cells = realloc(t->cells, cap * t->ncols * CELL_MAX);
    if (cells == NULL)
      return -1;
    t->cells = cells;
    t->cap = cap;
  }
  memset(t->cells[t->nrows * t->ncols], 0, t->ncols * CELL_MAX);
  t->nrows++;
  return 0;
}

static void table_print(FILE *f, struct table *t) {
  size_t width[16] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols && c < 16; c++) {
      size_t w = strlen(table_cell(t, r, c));
      if (w > width[c])
        width[c] = w;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = table_cell(t, r, c);
      if (c + 1 == t->ncols)
        fprintf(f, "%s\n", s);
      else
        fprintf(f, "%-*s  ", (int)width[c], s);
    }
  }
  free(t->cells);
  t->cells = NULL;
}

void ctl_print_status(FILE *f, const json_t *result) {
  static const struct {
    const char *key, *label;
  } rows[] = {
      {"version", "version"},  {"pid", "pid"},
      {"backend", "backend"},  {"backend_state", "backend state"},
      {"name", "client name"}, {"sample_rate", "sample rate"},
      {"period", "period"},    {"slots", "slots"},
      {"uptime_s", "uptime"},  {"socket", "socket"},
  };
  double rate = number(result, "sample_rate", 0);

  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    const json_t *v = json_object_get(result, rows[i].key);
    char value[CELL_MAX];
    if (v == NULL)
      continue;
    scalar(value, sizeof(value), v);
    if (strcmp(rows[i].key, "sample_rate") == 0 && json_is_number(v)) {
      snprintf(value, sizeof(value), "%g Hz", json_number_value(v));
    } else if (strcmp(rows[i].key, "period") == 0 && json_is_integer(v) && rate > 0) {
      snprintf(value, sizeof(value), "%" JSON_INTEGER_FORMAT " frames (%.2f ms)",
               json_integer_value(v), (double)json_integer_value(v) * 1000.0 / rate);
    } else if (strcmp(rows[i].key, "uptime_s") == 0 && json_is_number(v)) {
      uint64_t s = (uint64_t)fmax(0, json_number_value(v));
      snprintf(value, sizeof(value), "%" PRIu64 "h %02" PRIu64 "m %02" PRIu64 "s", s / 3600,
               s / 60 % 60, s % 60);
    }
    fprintf(f, "%s: %s\n", rows[i].label, value);
  }
}

/* `plugins --lv2`: one row per installed plugin. */
static void print_lv2_list(FILE *f, const json_t *plugins) {
  static const char *const header[] = {"URI", "NAME", "IN", "OUT", "MIDI", "NOTE"};
  struct table t = {.ncols = 6};
  const json_t *p;
  size_t i;
  if (table_add_row(&t) != 0)
    return;
  for (size_t c = 0; c < 6; c++)
    snprintf(table_cell(&t, 0, c), CELL_MAX, "%s", header[c]);
  json_array_foreach(plugins, i, p) {
    if (table_add_row(&t) != 0)
      break;
    size_t r = t.nrows - 1;
    field(table_cell(&t, r, 0), CELL_MAX, p, "uri");
    field(table_cell(&t, r, 1), CELL_MAX, p, "name");
    field(table_cell(&t, r, 2), CELL_MAX, p, "inputs");
    field(table_cell(&t, r, 3), CELL_MAX, p, "outputs");
    field(table_cell(&t, r, 4), CELL_MAX, p, "midi");
    char note[CELL_MAX] = "";
    if (!json_is_true(json_object_get(p, "supported")))
      snprintf(note, sizeof(note), "not supported");
    else if (json_is_true(json_object_get(p, "latency")))
      snprintf(note, sizeof(note), "reports latency");
    snprintf(table_cell(&t, r, 5), CELL_MAX, "%s", note);
  }
  table_print(f, &t);
}

/* `plugins --lv2 URI`: one plugin, its parameters and whether runway can host it. */
static void print_lv2_plugin(FILE *f, const json_t *p) {
  char uri[CELL_MAX], name[CELL_MAX], cls[CELL_MAX], in[32], out[32], why[CELL_MAX * 2];
  size_t i, k;
  const json_t *q, *point;
  field(uri, sizeof(uri), p, "uri");
  field(name, sizeof(name), p, "name");
  field(cls, sizeof(cls), p, "class");
  field(in, sizeof(in), p, "inputs");
  field(out, sizeof(out), p, "outputs");
  fprintf(f, "%s\n  %s (%s): %s in, %s out%s%s\n", uri, name, cls, in, out,
          json_is_true(json_object_get(p, "midi")) ? ", MIDI" : "",
          json_is_true(json_object_get(p, "latency")) ? ", reports latency" : "");
  if (!json_is_true(json_object_get(p, "supported"))) {
    field(why, sizeof(why), p, "unsupported");
    fprintf(f, "  not supported: %s\n", why);
  }
  json_array_foreach(json_object_get(p, "params"), i, q) {
    char id[32], pname[CELL_MAX], label[CELL_MAX], min[32], max[32], def[32], unit[32];
    field(id, sizeof(id), q, "id");
    field(pname, sizeof(pname), q, "name");
    field(label, sizeof(label), q, "label");
    field(min, sizeof(min), q, "min");
    field(max, sizeof(max), q, "max");
    field(def, sizeof(def), q, "default");
    field(unit, sizeof(unit), q, "unit");
    fprintf(f, "  %s %s: %s .. %s%s%s, default %s%s%s  (%s)\n", id, pname, min, max,
            strcmp(unit, "-") && unit[0] ? " " : "", strcmp(unit, "-") ? unit : "", def,
            json_is_true(json_object_get(q, "integer")) ? ", integer" : "",
            json_is_true(json_object_get(q, "toggled")) ? ", on/off" : "", label);
    json_array_foreach(json_object_get(q, "scale_points"), k, point) {
      char value[32], plabel[CELL_MAX];
      field(value, sizeof(value), point, "value");
      field(plabel, sizeof(plabel), point, "label");
      fprintf(f, "      %s = %s\n", value, plabel);
    }
  }
  size_t hidden = json_array_size(json_object_get(p, "hidden"));
  if (hidden > 0)
    fprintf(f, "  %zu more controls are not runway parameters; they keep their defaults\n", hidden);
}

void ctl_print_plugins(FILE *f, const json_t *result) {
  const json_t *plugins = json_object_get(result, "plugins");
  size_t i, j;
  const json_t *p, *param;

  if (json_is_object(json_object_get(result, "plugin"))) {
    print_lv2_plugin(f, json_object_get(result, "plugin"));
    return;
  }
  if (json_array_size(plugins) == 0) {
    fprintf(f, "no plugins\n");
    return;
  }
  if (json_is_string(json_object_get(json_array_get(plugins, 0), "uri"))) {
    print_lv2_list(f, plugins);
    return;
  }
  json_array_foreach(plugins, i, p) {
    char name[CELL_MAX], desc[CELL_MAX], in[32], out[32];
    field(name, sizeof(name), p, "name");
    field(in, sizeof(in), p, "inputs");
    field(out, sizeof(out), p, "outputs");
    fprintf(f, "%s: %s in, %s out%s", name, in, out,
            json_is_true(json_object_get(p, "midi")) ? ", MIDI" : "");
    if (json_is_string(json_object_get(p, "description"))) {
      field(desc, sizeof(desc), p, "description");
      fprintf(f, " - %s", desc);
    }
    fprintf(f, "\n");
    json_array_foreach(json_object_get(p, "params"), j, param) {
      char id[CELL_MAX], pname[CELL_MAX], min[32], max[32], def[32], unit[32];
      field(id, sizeof(id), param, "id");
      field(pname, sizeof(pname), param, "name");
      field(min, sizeof(min), param, "min");
      field(max, sizeof(max), param, "max");
      field(def, sizeof(def), param, "default");
      if (json_is_string(json_object_get(param, "unit")))
        field(unit, sizeof(unit), param, "unit");
      else
        unit[0] = '\0';
      fprintf(f, "  %s %s: %s .. %s%s%s, default %s\n", id, pname, min, max, unit[0] ? " " : "",
              unit, def);
    }
  }
}

static void ports_summary(char *buf, size_t len, const json_t *slot) {
  const json_t *ports = json_object_get(slot, "ports");
  const json_t *midi = json_object_get(ports, "midi");
  if (!json_is_object(ports)) {
    snprintf(buf, len, "-");
    return;
  }
  snprintf(buf, len, "%zu in, %zu out%s", json_array_size(json_object_get(ports, "inputs")),
           json_array_size(json_object_get(ports, "outputs")),
           json_is_string(midi) ? ", midi" : "");
}

void ctl_print_slot_list(FILE *f, const json_t *result) {
  static const char *const header[] = {"NAME", "PLUGIN", "STATE", "PID", "LATENCY", "PORTS"};
  const json_t *slots = json_object_get(result, "slots");
  double rate = number(result, "sample_rate", 0);
  struct table t = {.ncols = 6};
  const json_t *s;
  size_t i;

  if (json_array_size(slots) == 0) {
    fprintf(f, "no slots; add one with `runwayctl slot add NAME --plugin P`\n");
    return;
  }
  if (table_add_row(&t) != 0)
    return;
  for (size_t c = 0; c < 6; c++)
    snprintf(table_cell(&t, 0, c), CELL_MAX, "%s", header[c]);
  json_array_foreach(slots, i, s) {
    if (table_add_row(&t) != 0)
      break;
    size_t r = t.nrows - 1;
    field(table_cell(&t, r, 0), CELL_MAX, s, "name");
    field(table_cell(&t, r, 1), CELL_MAX, s, "plugin");
    field(table_cell(&t, r, 2), CELL_MAX, s, "state");
    field(table_cell(&t, r, 3), CELL_MAX, s, "pid");
    ctl_format_latency(table_cell(&t, r, 4), CELL_MAX, s, number(s, "sample_rate", rate));
    ports_summary(table_cell(&t, r, 5), CELL_MAX, s);
  }
  table_print(f, &t);
}

static void port_names(FILE *f, const json_t *list) {
  size_t i;
  const json_t *p;
  char name[CELL_MAX];
  if (json_array_size(list) == 0)
    fprintf(f, "-");
  json_array_foreach(list, i, p) {
    scalar(name, sizeof(name), p);
    fprintf(f, "%s%s", i ? " " : "", name);
  }
}

void ctl_print_slot(FILE *f, const char *verb, const json_t *slot) {
  char name[CELL_MAX], plugin[CELL_MAX], state[CELL_MAX], latency[64];
  const json_t *ports = json_object_get(slot, "ports");
  const json_t *midi = json_object_get(ports, "midi");

  field(name, sizeof(name), slot, "name");
  field(plugin, sizeof(plugin), slot, "plugin");
  field(state, sizeof(state), slot, "state");
  ctl_format_latency(latency, sizeof(latency), slot, number(slot, "sample_rate", 0));
  fprintf(f, "slot %s %s: %s, %s, latency %s", name, verb, plugin, state, latency);
  if (json_is_object(ports)) {
    fprintf(f, "; ports in: ");
    port_names(f, json_object_get(ports, "inputs"));
    fprintf(f, " out: ");
    port_names(f, json_object_get(ports, "outputs"));
    if (json_is_string(midi)) {
      char m[CELL_MAX];
      scalar(m, sizeof(m), midi);
      fprintf(f, " midi: %s", m);
    }
  }
  fprintf(f, "\n");
}

void ctl_print_stats(FILE *f, const json_t *result) {
  static const struct {
    const char *key, *header;
  } cols[] = {
      {"name", "NAME"},
      {"underruns", "UNDERRUNS"},
      {"underrun_frames", "UNDERRUN_FRAMES"},
      {"skipped_frames", "SKIPPED_FRAMES"},
      {"overruns", "OVERRUNS"},
      {"nonfinite_samples", "NONFINITE"},
      {"restarts", "RESTARTS"},
      {"latency_frames", "LATENCY"},
      {"headroom_min_frames", "HEADROOM_MIN"},
      {"cycles", "CYCLES"},
  };
  const size_t ncols = sizeof(cols) / sizeof(cols[0]);
  const json_t *daemon = json_object_get(result, "daemon");
  const json_t *slots = json_object_get(result, "slots");
  struct table t = {.ncols = ncols};
  const json_t *s;
  size_t i;

  if (json_is_object(daemon)) {
    char xruns[32], cycles[32];
    field(xruns, sizeof(xruns), daemon, "xruns");
    field(cycles, sizeof(cycles), daemon, "cycles");
    fprintf(f, "daemon: xruns %s, cycles %s, RT cycle max %.1f us, avg %.1f us\n", xruns, cycles,
            number(daemon, "rt_cycle_ns_max", 0) / 1000.0,
            number(daemon, "rt_cycle_ns_avg", 0) / 1000.0);
  }
  if (json_array_size(slots) == 0) {
    fprintf(f, "no slots\n");
    return;
  }
  if (table_add_row(&t) != 0)
    return;
  for (size_t c = 0; c < ncols; c++)
    snprintf(table_cell(&t, 0, c), CELL_MAX, "%s", cols[c].header);
  json_array_foreach(slots, i, s) {
    if (table_add_row(&t) != 0)
      break;
    for (size_t c = 0; c < ncols; c++)
      field(table_cell(&t, t.nrows - 1, c), CELL_MAX, s, cols[c].key);
  }
  table_print(f, &t);
}

/* "gain_db = -12 dB (-60 .. 24, default 0)" */
static void print_param_line(FILE *f, const json_t *p, const char *name_key) {
  char name[CELL_MAX], value[32], min[32], max[32], def[32], unit[32];
  field(name, sizeof(name), p, name_key);
  field(value, sizeof(value), p, "value");
  field(min, sizeof(min), p, "min");
  field(max, sizeof(max), p, "max");
  field(def, sizeof(def), p, "default");
  if (json_is_string(json_object_get(p, "unit")))
    field(unit, sizeof(unit), p, "unit");
  else
    unit[0] = '\0';
  fprintf(f, "%s = %s%s%s (%s .. %s, default %s)\n", name, value, unit[0] ? " " : "", unit, min,
          max, def);
}

void ctl_print_params(FILE *f, const json_t *result) {
  const json_t *params = json_object_get(result, "params");
  const json_t *p;
  size_t i;
  char slot[CELL_MAX];
  field(slot, sizeof(slot), result, "slot");
  if (json_array_size(params) == 0) {
    fprintf(f, "slot %s has no parameters\n", slot);
    return;
  }
  json_array_foreach(params, i, p) print_param_line(f, p, "name");
}

static void print_param_set(FILE *f, const json_t *result) {
  char slot[CELL_MAX], name[CELL_MAX], value[32], requested[32], unit[32];
  field(slot, sizeof(slot), result, "slot");
  field(name, sizeof(name), result, "param");
  field(value, sizeof(value), result, "value");
  field(requested, sizeof(requested), result, "requested");
  if (json_is_string(json_object_get(result, "unit")))
    field(unit, sizeof(unit), result, "unit");
  else
    unit[0] = '\0';
  fprintf(f, "%s %s = %s%s%s", slot, name, value, unit[0] ? " " : "", unit);
  if (json_is_true(json_object_get(result, "clamped")))
    fprintf(f, " (clamped from %s to the parameter's range)", requested);
  fprintf(f, "\n");
}

static void print_state(FILE *f, const char *verb, const json_t *result) {
  char slot[CELL_MAX], file[CELL_MAX], bytes[32], applied[64];
  field(slot, sizeof(slot), result, "slot");
  field(file, sizeof(file), result, "file");
  field(bytes, sizeof(bytes), result, "state_bytes");
  fprintf(f, "%s state of slot %s %s %s (%s bytes of plugin state", verb, slot,
          strcmp(verb, "saved") == 0 ? "to" : "from", file, bytes);
  if (json_is_string(json_object_get(result, "applied"))) {
    field(applied, sizeof(applied), result, "applied");
    fprintf(f, ", applied %s", applied);
  }
  fprintf(f, ")\n");
}

static void show_status(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_status(f, result);
}

static void show_plugins(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_plugins(f, result);
}

static void show_slot_add(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_slot(f, "added", result);
}

static void show_slot_remove(FILE *f, const json_t *args, const json_t *result) {
  char name[CELL_MAX];
  field(name, sizeof(name), args, "name");
  fprintf(f, "slot %s removed\n", name);
}

static void show_slot_list(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_slot_list(f, result);
}

/*
 * "  switched at frame 123456 after 142 ms: crossfade 960 frames (20.0 ms), 8064
 * frames of history, state carried over" for a seamless restart or a replacement.
 */
static void print_switch(FILE *f, const json_t *result) {
  const json_t *sw = json_object_get(result, "switch");
  char frame[32], xfade[32], history[32];
  if (!json_is_object(sw))
    return;
  field(frame, sizeof(frame), sw, "frame");
  field(xfade, sizeof(xfade), sw, "crossfade_frames");
  field(history, sizeof(history), sw, "history_frames");
  fprintf(f,
          "  switched at frame %s after %.0f ms: crossfade %s frames (%.1f ms), %s frames of "
          "history%s\n",
          frame, number(sw, "warmup_ms", 0), xfade, number(sw, "crossfade_ms", 0), history,
          json_is_true(json_object_get(sw, "state_carried")) ? ", state carried over" : "");
}

static void show_slot_restart(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_slot(
      f, json_is_object(json_object_get(result, "switch")) ? "restarted seamlessly" : "restarted",
      result);
  print_switch(f, result);
}

static void show_slot_replace(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_slot(f, "replaced", result);
  print_switch(f, result);
}

/* "2400 frames (50.0 ms)", or "-" when the key is null or missing. */
static void frames_ms(char *buf, size_t len, const json_t *obj, const char *key, double rate) {
  const json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v))
    snprintf(buf, len, "-");
  else if (rate > 0)
    snprintf(buf, len, "%" JSON_INTEGER_FORMAT " frames (%.1f ms)", json_integer_value(v),
             (double)json_integer_value(v) * 1000.0 / rate);
  else
    snprintf(buf, len, "%" JSON_INTEGER_FORMAT " frames", json_integer_value(v));
}

void ctl_print_advice(FILE *f, const json_t *result) {
  char slot[CELL_MAX], latency[64], lead[64], needed[64], suggested[64], cycles[32], under[32],
      margin[32];
  double rate = number(result, "sample_rate", 0);
  field(slot, sizeof(slot), result, "slot");
  frames_ms(latency, sizeof(latency), result, "latency_frames", rate);
  frames_ms(lead, sizeof(lead), result, "lead_min_frames", rate);
  frames_ms(needed, sizeof(needed), result, "needed_frames", rate);
  frames_ms(suggested, sizeof(suggested), result, "suggested_frames", rate);
  field(cycles, sizeof(cycles), result, "cycles");
  field(under, sizeof(under), result, "underruns");
  fprintf(f, "slot %s: latency %s\n", slot, latency);
  if (!json_is_integer(json_object_get(result, "lead_min_frames"))) {
    fprintf(f, "  no worker has run in it yet: nothing to advise from\n");
    return;
  }
  fprintf(f, "  observed %.1f s (%s cycles): smallest lead %s, %s underrun(s)\n",
          number(result, "observed_s", 0), cycles, lead, under);
  fprintf(f, "  the smallest latency with no underrun over that time: %s\n", needed);
  field(margin, sizeof(margin), result, "margin_min_frames");
  fprintf(f, "  suggested, with a margin of %.0f %% (at least %s frames): %s\n",
          number(result, "margin_percent", 0), margin, suggested);
  const char *advice = json_string_value(json_object_get(result, "advice"));
  if (advice != NULL) {
    char clean[CELL_MAX];
    clean_into(clean, sizeof(clean), advice);
    fprintf(f, "  %s\n", clean);
  }
}

static void show_slot_advise(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_advice(f, result);
}

static void show_stats(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_stats(f, result);
}

static void show_param_list(FILE *f, const json_t *args, const json_t *result) {
  ctl_print_params(f, result);
}

static void show_param_get(FILE *f, const json_t *args, const json_t *result) {
  char slot[CELL_MAX];
  field(slot, sizeof(slot), result, "slot");
  fprintf(f, "%s ", slot);
  print_param_line(f, result, "param");
}

static void show_param_set(FILE *f, const json_t *args, const json_t *result) {
  print_param_set(f, result);
}

static void show_state_save(FILE *f, const json_t *args, const json_t *result) {
  print_state(f, "saved", result);
}

static void show_state_load(FILE *f, const json_t *args, const json_t *result) {
  print_state(f, "loaded", result);
}

static void show_subscribe(FILE *f, const json_t *args, const json_t *result) {
  const json_t *types = json_object_get(result, "subscribed");
  const json_t *t;
  char name[CELL_MAX];
  size_t i;

  fprintf(f, "subscribed to");
  json_array_foreach(types, i, t) {
    scalar(name, sizeof(name), t);
    fprintf(f, "%s %s", i ? "," : "", name);
  }
  fprintf(f, " events; Ctrl-C stops\n");
}

/* How runwayctl prints a command's answer for people: args of the request, result of the answer. */
typedef void (*show_fn)(FILE *f, const json_t *args, const json_t *result);

/*
 * show_<stem> for every command people use (proto/commands.h): one without
 * its printer does not compile. INTERNAL commands are never sent from here;
 * LOCAL ones are never sent at all (runwayctl runs them itself).
 */
static const show_fn shows[PROTO_CMD_COUNT] = {
#define SHOW(ID, stem) [PROTO_CMD_##ID] = show_##stem,
#define NOT_SHOWN(ID, stem)
    PROTO_COMMAND_MAP(SHOW, NOT_SHOWN, NOT_SHOWN)
#undef SHOW
#undef NOT_SHOWN
};

void ctl_print_result(FILE *f, const json_t *request, const json_t *result) {
  const struct proto_command *cmd =
      proto_find_command(json_string_value(json_object_get(request, "cmd")));

  if (cmd != NULL && shows[cmd->id] != NULL) {
    shows[cmd->id](f, json_object_get(request, "args"), result);
  } else if (json_object_size(result) > 0) {
    /* A command this runwayctl does not know (a request built elsewhere): JSON beats nothing. */
    json_dumpf(result, f, JSON_INDENT(2));
    fprintf(f, "\n");
  }
}

int ctl_handle_response(const char *line, size_t len, const json_t *request, int json, FILE *out,
                        FILE *err_out) {
  json_error_t jerr;
  json_t *msg = json_loadb(line, len, 0, &jerr);
  const json_t *ok, *result, *error;
  char code[CELL_MAX], message[1024];
  int rc = CTL_EXIT_ERROR;

  if (!json_is_object(msg)) {
    fprintf(err_out,
            "runwayctl: runwayd sent an answer that is not a JSON object (%s); is the "
            "socket really runwayd's?\n",
            msg == NULL ? jerr.text : "wrong type");
    goto out;
  }
  ok = json_object_get(msg, "ok");
  if (json_is_true(ok)) {
    result = json_object_get(msg, "result");
    if (json) {
      if (result == NULL)
        fprintf(out, "{}\n");
      else if (json_dumpf(result, out, JSON_INDENT(2) | JSON_ENCODE_ANY) == 0)
        fprintf(out, "\n");
    } else {
      ctl_print_result(out, request, result);
    }
    rc = CTL_EXIT_OK;
    goto out;
  }
  error = json_object_get(msg, "error");
  if (!json_is_false(ok) || !json_is_object(error)) {
    fprintf(err_out, "runwayctl: runwayd sent an answer without \"ok\" and \"error\"; is the "
                     "socket really runwayd's?\n");
    goto out;
  }
  if (json) {
    if (json_dumpf(error, out, JSON_INDENT(2)) == 0)
      fprintf(out, "\n");
  } else {
    field(code, sizeof(code), error, "code");
    field(message, sizeof(message), error, "message");
    fprintf(err_out, "runwayctl: %s: %s\n", code, message);
  }
out:
  json_decref(msg);
  return rc;
}

/* " (text)" when obj.key is a non-empty string, else "". */
static void reason_suffix(char *buf, size_t len, const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  char clean[CELL_MAX];
  buf[0] = '\0';
  if (s == NULL || s[0] == '\0')
    return;
  clean_into(clean, sizeof(clean), s);
  snprintf(buf, len, " (%s)", clean);
}

void ctl_print_event(FILE *f, const json_t *event) {
  char type[CELL_MAX], slot[CELL_MAX], a[CELL_MAX], b[CELL_MAX], c[CELL_MAX], why[CELL_MAX + 4];

  field(type, sizeof(type), event, "event");
  field(slot, sizeof(slot), event, "slot");
  reason_suffix(why, sizeof(why), event, "reason");
  if (strcmp(type, "slot") == 0) {
    field(a, sizeof(a), event, "state");
    field(b, sizeof(b), event, "pid");
    field(c, sizeof(c), event, "generation");
    fprintf(f, "slot %s: %s, pid %s, generation %s%s\n", slot, a, b, c, why);
  } else if (strcmp(type, "underrun") == 0) {
    field(a, sizeof(a), event, "underruns");
    field(b, sizeof(b), event, "underrun_frames");
    fprintf(f, "underrun %s: %s underruns, %s frames of silence in all\n", slot, a, b);
  } else if (strcmp(type, "restart") == 0) {
    field(a, sizeof(a), event, "restarts");
    fprintf(f, "restart %s: restart %s%s\n", slot, a, why);
  } else if (strcmp(type, "param") == 0) {
    field(a, sizeof(a), event, "param");
    field(b, sizeof(b), event, "param_id");
    field(c, sizeof(c), event, "value");
    fprintf(f, "param %s: %s (id %s) = %s\n", slot, a, b, c);
  } else if (strcmp(type, "fault") == 0) {
    field(a, sizeof(a), event, "reason");
    fprintf(f, "fault %s: %s\n", slot, a);
  } else if (strcmp(type, "replace") == 0) {
    field(a, sizeof(a), event, "phase");
    field(b, sizeof(b), event, "plugin");
    field(c, sizeof(c), event, "generation");
    fprintf(f, "replace %s: %s, %s on generation %s%s\n", slot, a, b, c, why);
  } else {
    /* A type this runwayctl does not know yet: its fields as JSON beat nothing. */
    json_t *rest = json_deep_copy(event);
    char *text;
    json_object_del(rest, "event");
    text = json_dumps(rest, JSON_COMPACT);
    clean_into(c, sizeof(c), text ? text : "{}");
    fprintf(f, "%s: %s\n", type, c);
    free(text);
    json_decref(rest);
  }
}

int ctl_handle_stream_answer(const char *line, size_t len, const json_t *request, int json,
                             FILE *out, FILE *err_out) {
  json_t *msg;
  int ok;

  if (!json)
    return ctl_handle_response(line, len, request, json, out, err_out);
  msg = json_loadb(line, len, 0, NULL);
  if (!json_is_object(msg)) {
    json_decref(msg);
    fprintf(err_out, "runwayctl: runwayd sent an answer that is not a JSON object; is the socket "
                     "really runwayd's?\n");
    return CTL_EXIT_ERROR;
  }
  ok = json_is_true(json_object_get(msg, "ok"));
  json_decref(msg);
  fwrite(line, 1, len, out);
  fputc('\n', out);
  return ok ? CTL_EXIT_OK : CTL_EXIT_ERROR;
}

int ctl_handle_stream_line(const char *line, size_t len, int json, FILE *out, FILE *err_out) {
  json_t *msg = json_loadb(line, len, 0, NULL);
  const json_t *error;
  char code[CELL_MAX], message[1024];
  int rc = CTL_EXIT_OK;

  if (!json_is_object(msg)) {
    fprintf(err_out, "runwayctl: runwayd sent a line that is not a JSON object; is the socket "
                     "really runwayd's?\n");
    rc = CTL_EXIT_ERROR;
  } else if (json) {
    fwrite(line, 1, len, out);
    fputc('\n', out);
  } else if (json_object_get(msg, "event") != NULL) {
    ctl_print_event(out, msg);
  } else if (json_is_object(error = json_object_get(msg, "error"))) {
    /* The daemon explains why before it closes the stream (e.g. a limit). */
    field(code, sizeof(code), error, "code");
    field(message, sizeof(message), error, "message");
    fprintf(err_out, "runwayctl: %s: %s\n", code, message);
  }
  json_decref(msg);
  return rc;
}
