#include "params.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int alloc_table(struct param_table *t, uint32_t n) {
  memset(t, 0, sizeof(*t));
  t->defs = calloc(n ? n : 1, sizeof(*t->defs));
  t->values = calloc(n ? n : 1, sizeof(*t->values));
  if (t->defs == NULL || t->values == NULL) {
    params_free(t);
    return -ENOMEM;
  }
  t->n = n;
  return 0;
}

int params_from_catalog(struct param_table *t, const struct catalog_plugin *p) {
  int rc = alloc_table(t, p->n_params);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < p->n_params; i++) {
    struct param_def *d = &t->defs[i];
    d->id = p->params[i].id;
    snprintf(d->name, sizeof(d->name), "%s", p->params[i].name);
    snprintf(d->unit, sizeof(d->unit), "%s", p->params[i].unit);
    d->min = (float)p->params[i].min;
    d->max = (float)p->params[i].max;
    d->def = (float)p->params[i].def;
    t->values[i] = d->def;
  }
  return 0;
}

static bool valid_name(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return false;
  return true;
}

/* Text a worker wrote: no control characters, quotes or backslashes, and valid UTF-8. */
static bool printable(const char *s) {
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f || *c == '"' || *c == '\\')
      return false;
  /* jansson refuses invalid UTF-8: what it takes can go into every answer. */
  json_t *j = json_string(s);
  json_decref(j);
  return j != NULL;
}

int params_from_info(struct param_table *t, const struct rw_info *info, char *err, size_t errlen) {
  /* One copy of the count: the worker may change it while we read. */
  uint32_t n = info->n_params;
  if (n > RW_MAX_PARAMS) {
    snprintf(err, errlen, "the worker declares %u parameters, more than %u", n, RW_MAX_PARAMS);
    return -EPROTO;
  }
  int rc = alloc_table(t, n);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    struct param_def *d = &t->defs[i];
    struct rw_param_desc src;
    memcpy(&src, &info->params[i], sizeof(src));
    src.name[sizeof(src.name) - 1] = '\0';
    src.unit[sizeof(src.unit) - 1] = '\0';
    if (!valid_name(src.name) || !printable(src.unit) || !isfinite(src.min) || !isfinite(src.max) ||
        !isfinite(src.def) || src.min > src.max) {
      snprintf(err, errlen, "parameter %u declared by the worker is malformed", i);
      params_free(t);
      return -EPROTO;
    }
    for (uint32_t k = 0; k < i; k++) {
      if (t->defs[k].id == src.id || strcmp(t->defs[k].name, src.name) == 0) {
        snprintf(err, errlen, "the worker declares parameter %s (id %u) twice", src.name, src.id);
        params_free(t);
        return -EPROTO;
      }
    }
    d->id = src.id;
    memcpy(d->name, src.name, sizeof(d->name));
    memcpy(d->unit, src.unit, sizeof(d->unit));
    d->min = src.min;
    d->max = src.max;
    d->def = src.def < src.min ? src.min : src.def > src.max ? src.max : src.def;
    t->values[i] = d->def;
  }
  return 0;
}

float params_clamp(const struct param_def *d, double v, bool *clamped) {
  double c = v;
  if (!(c >= d->min))
    c = d->min; /* NaN lands here too */
  if (c > d->max)
    c = d->max;
  if (clamped != NULL)
    *clamped = c != v;
  return (float)c;
}

void params_carry_values(struct param_table *t, const struct param_table *from) {
  for (uint32_t i = 0; i < t->n; i++)
    for (uint32_t k = 0; k < from->n; k++)
      if (strcmp(t->defs[i].name, from->defs[k].name) == 0)
        t->values[i] = params_clamp(&t->defs[i], from->values[k], NULL);
}

void params_apply_json(struct param_table *t, const json_t *values) {
  const char *name;
  json_t *v;
  if (!json_is_object(values))
    return;
  json_object_foreach((json_t *)values, name, v) {
    if (!json_is_number(v))
      continue;
    for (uint32_t i = 0; i < t->n; i++)
      if (strcmp(t->defs[i].name, name) == 0)
        t->values[i] = params_clamp(&t->defs[i], json_number_value(v), NULL);
  }
}

int params_find(const struct param_table *t, const json_t *key) {
  for (uint32_t i = 0; i < t->n; i++) {
    if (json_is_string(key) && strcmp(t->defs[i].name, json_string_value(key)) == 0)
      return (int)i;
    if (json_is_integer(key) && json_integer_value(key) == (json_int_t)t->defs[i].id)
      return (int)i;
  }
  return -1;
}

json_t *params_list_json(const struct param_table *t) {
  json_t *list = json_array();
  for (uint32_t i = 0; i < t->n; i++) {
    const struct param_def *d = &t->defs[i];
    json_array_append_new(list,
                          json_pack("{s:I, s:s, s:f, s:f, s:f, s:s, s:f}", "id", (json_int_t)d->id,
                                    "name", d->name, "min", d->min, "max", d->max, "default",
                                    d->def, "unit", d->unit, "value", t->values[i]));
  }
  return list;
}

json_t *params_values_json(const struct param_table *t) {
  json_t *o = json_object();
  for (uint32_t i = 0; i < t->n; i++)
    json_object_set_new(o, t->defs[i].name, json_real(t->values[i]));
  return o;
}

void params_free(struct param_table *t) {
  free(t->defs);
  free(t->values);
  memset(t, 0, sizeof(*t));
}
