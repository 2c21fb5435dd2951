/*
 * The catalog of built-in plugins, learned from `runway-worker --list --json`
 * so the daemon never links plugin code. Control thread only.
 */
#ifndef RUNWAY_DAEMON_CATALOG_H
#define RUNWAY_DAEMON_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct catalog_param {
  uint32_t id;
  char *name;
  double min;
  double max;
  double def;
  char *unit;
};

struct catalog_plugin {
  char *name;
  uint32_t n_inputs;
  uint32_t n_outputs;
  bool midi;
  struct catalog_param *params;
  uint32_t n_params;
};

struct catalog {
  struct catalog_plugin *plugins;
  uint32_t n_plugins;
  json_t *json; /* {"plugins":[...]} as the worker printed it, validated */
};

/* Runs `worker_path --list --json` and parses its answer. 0 or -errno with a message. */
int catalog_load(struct catalog *c, const char *worker_path, char *err, size_t errlen);

/* Parses a catalog document (exposed for tests). Takes a reference to doc on success. */
int catalog_parse(struct catalog *c, json_t *doc, char *err, size_t errlen);

const struct catalog_plugin *catalog_find(const struct catalog *c, const char *name);

void catalog_free(struct catalog *c);

#endif
