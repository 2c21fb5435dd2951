/*
 * A slot's parameters: what the plugin declares (from the catalog for
 * built-in plugins, or from the worker's info block in its segment) and the
 * values the daemon keeps for them, which outlive workers and daemon
 * restarts. Control thread only.
 */
#ifndef RUNWAY_DAEMON_PARAMS_H
#define RUNWAY_DAEMON_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <runway/segment.h>

#include "catalog.h"

struct param_def {
  uint32_t id;
  char name[RW_NAME_MAX];
  float min;
  float max;
  float def;
  char unit[RW_UNIT_MAX];
};

struct param_table {
  struct param_def *defs;
  float *values;
  uint32_t n;
};

/* Builds a table from a catalog entry, values at their defaults. 0 or -ENOMEM. */
int params_from_catalog(struct param_table *t, const struct catalog_plugin *p);

/*
 * Builds a table from a worker's info block, which is untrusted: every
 * string is terminated, names must be [A-Za-z0-9_]+ and unique, ids unique,
 * ranges finite with min <= max, defaults clamped. Returns 0 or -EPROTO with
 * a message.
 */
int params_from_info(struct param_table *t, const struct rw_info *info, char *err, size_t errlen);

/* Takes over the values of `from` for parameters of the same name (clamped). */
void params_carry_values(struct param_table *t, const struct param_table *from);

/* Sets values from a {"name": number} object; unknown names and non-numbers are skipped. */
void params_apply_json(struct param_table *t, const json_t *values);

/* Finds a parameter given by name (string) or id (integer). Returns its index or -1. */
int params_find(const struct param_table *t, const json_t *key);

/* Clamps v to the parameter's range; *clamped tells whether it had to. */
float params_clamp(const struct param_def *d, double v, bool *clamped);

/* [{"id","name","min","max","default","unit","value"}...] */
json_t *params_list_json(const struct param_table *t);
/* {"name": value, ...} */
json_t *params_values_json(const struct param_table *t);

void params_free(struct param_table *t);

#endif
