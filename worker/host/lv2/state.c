/*
 * Plugin state through lilv: the SDK's save and load handlers.
 *
 * A saved state is lilv's Turtle text of a LilvState: every control input's
 * value and, for a plugin with the state extension, the properties its
 * save() stored (plain old data only, portable: runway keeps it in a JSON
 * file and hands it to a new process, perhaps on another machine). URIDs are
 * written as URIs, so a worker that maps them differently reads it right.
 *
 * The SDK calls these between two blocks on the thread that runs the plugin,
 * which is what restore()'s "instantiation" threading class asks for. Work a
 * restore() schedules (state:threadSafeRestore plugins do) is done, and
 * answered, before the handler returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lv2/state/state.h>

#include "lv2host.h"

/* The subject the Turtle is written about; any URI does, it is never resolved. */
#define STATE_URI "urn:runway:lv2-state"

static const void *get_port_value(const char *symbol, void *user, uint32_t *size, uint32_t *type) {
  struct lv2host *h = user;
  const struct lv2host_control *c = lv2host_desc_control(h->desc, symbol);
  if (c == NULL) {
    *size = 0;
    *type = 0;
    return NULL;
  }
  *size = sizeof(float);
  *type = h->world->u.atom_float;
  return &h->values[c->port];
}

static void set_port_value(const char *symbol, void *user, const void *value, uint32_t size,
                           uint32_t type) {
  struct lv2host *h = user;
  const struct lv2host_urids *u = &h->world->u;
  const struct lv2host_control *c = lv2host_desc_control(h->desc, symbol);
  if (c == NULL || value == NULL)
    return; /* a port this plugin (or this version of it) does not have */
  float v;
  if (type == u->atom_float && size == sizeof(float)) {
    memcpy(&v, value, sizeof(v));
  } else if (type == u->atom_double && size == sizeof(double)) {
    double d;
    memcpy(&d, value, sizeof(d));
    v = (float)d;
  } else if ((type == u->atom_int || type == u->atom_bool) && size == sizeof(int32_t)) {
    int32_t i;
    memcpy(&i, value, sizeof(i));
    v = (float)i;
  } else if (type == u->atom_long && size == sizeof(int64_t)) {
    int64_t l;
    memcpy(&l, value, sizeof(l));
    v = (float)l;
  } else {
    return; /* not a number: the port keeps its value */
  }
  /* From a file: clamped and snapped like any value; NaN becomes the default. */
  lv2host_set_control(h, c->port, v);
}

/* What state:interface's save and restore get (lilv adds mapPath and freePath). */
static void state_features(struct lv2host *h, const LV2_Feature **out) {
  out[0] = &h->f_map;
  out[1] = &h->f_unmap;
  out[2] = &h->f_options;
  out[3] = &h->f_schedule;
  out[4] = &h->f_log;
  out[5] = NULL;
}

int64_t lv2host_state_save(void *user, unsigned char *buf, size_t capacity) {
  struct lv2host *h = user;
  struct lv2host_world *w = h->world;
  const LV2_Feature *features[6];
  state_features(h, features);
  LilvState *state = lilv_state_new_from_instance(
      h->desc->plugin, h->inst, &w->urid.map, NULL, NULL, NULL, NULL, get_port_value, h,
      LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE, features);
  lv2host_work_flush(&h->work, 0);
  if (state == NULL)
    return RW_ERR_NOMEM;
  char *text = lilv_state_to_string(w->world, &w->urid.map, &w->urid.unmap, state, STATE_URI, NULL);
  lilv_state_free(state);
  if (text == NULL)
    return RW_ERR_NOMEM;
  size_t len = strlen(text);
  int64_t rc;
  if (len > capacity) {
    rc = RW_ERR_NOMEM; /* the SDK reports it as "too large for the mailbox" */
  } else {
    memcpy(buf, text, len);
    rc = (int64_t)len;
  }
  lilv_free(text);
  return rc;
}

/* Restores state (of this plugin) into the instance, then does the work restore scheduled. */
static void restore(struct lv2host *h, const LilvState *state) {
  const LV2_Feature *features[6];
  state_features(h, features);
  lilv_state_restore(state, h->inst, set_port_value, h, 0, features);
  lv2host_work_flush(&h->work, 0);
}

int lv2host_state_load(void *user, const unsigned char *data, size_t len) {
  struct lv2host *h = user;
  struct lv2host_world *w = h->world;
  /* lilv parses a C string: a NUL inside would cut it short, so refuse one. */
  if (len == 0 || memchr(data, '\0', len) != NULL)
    return RW_ERR_INVALID;
  char *text = malloc(len + 1);
  if (text == NULL)
    return RW_ERR_NOMEM;
  memcpy(text, data, len);
  text[len] = '\0';
  LilvState *state = lilv_state_new_from_string(w->world, &w->urid.map, text);
  free(text);
  if (state == NULL)
    return RW_ERR_INVALID; /* not Turtle, or no state in it (lilv says why on stderr) */
  const LilvNode *plugin = lilv_state_get_plugin_uri(state);
  if (plugin == NULL || !lilv_node_is_uri(plugin) ||
      strcmp(lilv_node_as_uri(plugin), h->desc->uri) != 0) {
    lilv_state_free(state);
    return RW_ERR_INVALID; /* another plugin's state */
  }
  restore(h, state);
  lilv_state_free(state);
  return 0;
}

int lv2host_state_load_default(struct lv2host *h) {
  struct lv2host_world *w = h->world;
  LilvState *state =
      lilv_state_new_from_world(w->world, &w->urid.map, lilv_plugin_get_uri(h->desc->plugin));
  if (state == NULL)
    return -EIO;
  restore(h, state);
  lilv_state_free(state);
  return 0;
}
