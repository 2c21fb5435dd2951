/*
 * The lilv world, the nodes and URIDs the host asks about, and the URID map
 * (urid:map and urid:unmap): ids are stable for the life of the process, as
 * the spec asks, and a plugin's threads may map concurrently with ours.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lv2/buf-size/buf-size.h>
#include <lv2/core/lv2.h>
#include <lv2/midi/midi.h>
#include <lv2/parameters/parameters.h>
#include <lv2/port-props/port-props.h>
#include <lv2/resize-port/resize-port.h>
#include <lv2/state/state.h>
#include <lv2/units/units.h>

#include "lv2host.h"

/* ---- URID map --------------------------------------------------------------------- */

/* FNV-1a: short URIs, no adversary (the plugins we load run in this process anyway). */
static uint32_t hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s != '\0'; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* Rehashes into twice the slots. Called with the lock held. */
static int grow_slots(struct lv2host_urid *u) {
  uint32_t n = u->n_slots ? u->n_slots * 2 : 256;
  uint32_t *slots = calloc(n, sizeof(*slots));
  if (slots == NULL)
    return -ENOMEM;
  for (uint32_t id = 1; id <= u->n; id++) {
    uint32_t i = hash(u->uris[id - 1]) & (n - 1);
    while (slots[i] != 0)
      i = (i + 1) & (n - 1);
    slots[i] = id;
  }
  free(u->slots);
  u->slots = slots;
  u->n_slots = n;
  return 0;
}

/* 0 means "could not map": only when out of memory. */
static LV2_URID urid_map(LV2_URID_Map_Handle handle, const char *uri) {
  struct lv2host_urid *u = handle;
  if (uri == NULL)
    return 0;
  LV2_URID id = 0;
  pthread_mutex_lock(&u->lock);
  /* Keep the table at most half full, so probe runs stay short. */
  if ((u->n + 1) * 2 > u->n_slots && grow_slots(u) != 0)
    goto out;
  uint32_t i = hash(uri) & (u->n_slots - 1);
  for (; u->slots[i] != 0; i = (i + 1) & (u->n_slots - 1)) {
    if (strcmp(u->uris[u->slots[i] - 1], uri) == 0) {
      id = u->slots[i];
      goto out;
    }
  }
  if (u->n == u->cap) {
    uint32_t cap = u->cap ? u->cap * 2 : 128;
    char **uris = realloc(u->uris, cap * sizeof(*uris));
    if (uris == NULL)
      goto out;
    u->uris = uris;
    u->cap = cap;
  }
  char *copy = strdup(uri);
  if (copy == NULL)
    goto out;
  u->uris[u->n++] = copy;
  id = u->n;
  u->slots[i] = id;
out:
  pthread_mutex_unlock(&u->lock);
  return id;
}

static const char *urid_unmap(LV2_URID_Unmap_Handle handle, LV2_URID id) {
  struct lv2host_urid *u = handle;
  const char *uri = NULL;
  pthread_mutex_lock(&u->lock);
  if (id >= 1 && id <= u->n)
    uri = u->uris[id - 1]; /* never freed or moved while the world lives */
  pthread_mutex_unlock(&u->lock);
  return uri;
}

static void urid_init(struct lv2host_urid *u) {
  memset(u, 0, sizeof(*u));
  pthread_mutex_init(&u->lock, NULL);
  u->map.handle = u;
  u->map.map = urid_map;
  u->unmap.handle = u;
  u->unmap.unmap = urid_unmap;
}

static void urid_free(struct lv2host_urid *u) {
  for (uint32_t i = 0; i < u->n; i++)
    free(u->uris[i]);
  free(u->uris);
  free(u->slots);
  pthread_mutex_destroy(&u->lock);
}

/* ---- world ------------------------------------------------------------------------ */

#define RDFS_LABEL "http://www.w3.org/2000/01/rdf-schema#label"

/* One table makes and frees every node. */
#define NODE(field, uri)                                                                           \
  { offsetof(struct lv2host_nodes, field), uri }
static const struct {
  size_t offset;
  const char *uri;
} node_uris[] = {
    NODE(audio_port, LV2_CORE__AudioPort),
    NODE(control_port, LV2_CORE__ControlPort),
    NODE(cv_port, LV2_CORE__CVPort),
    NODE(atom_port, LV2_ATOM__AtomPort),
    NODE(input_port, LV2_CORE__InputPort),
    NODE(output_port, LV2_CORE__OutputPort),
    NODE(connection_optional, LV2_CORE__connectionOptional),
    NODE(integer, LV2_CORE__integer),
    NODE(toggled, LV2_CORE__toggled),
    NODE(enumeration, LV2_CORE__enumeration),
    NODE(logarithmic, LV2_PORT_PROPS__logarithmic),
    NODE(sample_rate, LV2_CORE__sampleRate),
    NODE(latency, LV2_CORE__latency),
    NODE(reports_latency, LV2_CORE__reportsLatency),
    NODE(designation, LV2_CORE__designation),
    NODE(midi_event, LV2_MIDI__MidiEvent),
    NODE(minimum_size, LV2_RESIZE_PORT__minimumSize),
    NODE(coarse_block_length, LV2_BUF_SIZE__coarseBlockLength),
    NODE(required_option, LV2_OPTIONS__requiredOption),
    NODE(unit, LV2_UNITS__unit),
    NODE(unit_symbol, LV2_UNITS__symbol),
    NODE(rdfs_label, RDFS_LABEL),
    NODE(load_default_state, LV2_STATE__loadDefaultState),
};
#undef NODE

static LilvNode **node_at(struct lv2host_nodes *n, size_t i) {
  return (LilvNode **)((char *)n + node_uris[i].offset);
}

/* One table maps every URID the host compares against. */
#define URID(field, uri)                                                                           \
  { offsetof(struct lv2host_urids, field), uri }
static const struct {
  size_t offset;
  const char *uri;
} urid_uris[] = {
    URID(atom_sequence, LV2_ATOM__Sequence),
    URID(atom_chunk, LV2_ATOM__Chunk),
    URID(atom_float, LV2_ATOM__Float),
    URID(atom_double, LV2_ATOM__Double),
    URID(atom_int, LV2_ATOM__Int),
    URID(atom_long, LV2_ATOM__Long),
    URID(atom_bool, LV2_ATOM__Bool),
    URID(midi_event, LV2_MIDI__MidiEvent),
    URID(sample_rate, LV2_PARAMETERS__sampleRate),
    URID(min_block, LV2_BUF_SIZE__minBlockLength),
    URID(max_block, LV2_BUF_SIZE__maxBlockLength),
    URID(nominal_block, LV2_BUF_SIZE__nominalBlockLength),
    URID(sequence_size, LV2_BUF_SIZE__sequenceSize),
    URID(log_error, LV2_LOG__Error),
    URID(log_warning, LV2_LOG__Warning),
    URID(log_note, LV2_LOG__Note),
    URID(log_trace, LV2_LOG__Trace),
};
#undef URID

/*
 * LV2_PATH with its relative entries made absolute (against the working
 * directory, as a user means them): lilv 0.24 crashes on a relative bundle
 * path. NULL when LV2_PATH is unset (lilv's default then) or out of memory.
 */
static char *absolute_lv2_path(void) {
  const char *path = getenv("LV2_PATH");
  char cwd[4096];
  if (path == NULL || getcwd(cwd, sizeof(cwd)) == NULL)
    return NULL;
  size_t cap = strlen(path) + 1;
  for (const char *c = path; *c != '\0'; c++)
    cap += *c == ':' ? strlen(cwd) + 1 : 0;
  cap += strlen(cwd) + 1;
  char *out = malloc(cap);
  if (out == NULL)
    return NULL;
  size_t n = 0;
  for (const char *entry = path; entry != NULL;) {
    const char *end = strchr(entry, ':');
    size_t len = end != NULL ? (size_t)(end - entry) : strlen(entry);
    if (len > 0) {
      if (n > 0)
        out[n++] = ':';
      if (entry[0] != '/' && entry[0] != '~')
        n += (size_t)sprintf(out + n, "%s/", cwd);
      memcpy(out + n, entry, len);
      n += len;
    }
    entry = end != NULL ? end + 1 : NULL;
  }
  out[n] = '\0';
  return out;
}

int lv2host_world_open(struct lv2host_world *w) {
  memset(w, 0, sizeof(*w));
  urid_init(&w->urid);
  w->world = lilv_world_new();
  if (w->world == NULL) {
    urid_free(&w->urid);
    return -ENOMEM;
  }
  char *path = absolute_lv2_path();
  if (path != NULL) {
    LilvNode *node = lilv_new_string(w->world, path);
    if (node != NULL)
      lilv_world_set_option(w->world, LILV_OPTION_LV2_PATH, node);
    lilv_node_free(node);
    free(path);
  }
  lilv_world_load_all(w->world);

  int rc = 0;
  for (size_t i = 0; i < sizeof(node_uris) / sizeof(node_uris[0]); i++) {
    LilvNode **node = node_at(&w->n, i);
    *node = lilv_new_uri(w->world, node_uris[i].uri);
    if (*node == NULL)
      rc = -ENOMEM;
  }
  for (size_t i = 0; i < sizeof(urid_uris) / sizeof(urid_uris[0]); i++) {
    LV2_URID *id = (LV2_URID *)((char *)&w->u + urid_uris[i].offset);
    *id = w->urid.map.map(w->urid.map.handle, urid_uris[i].uri);
    if (*id == 0)
      rc = -ENOMEM;
  }
  if (rc != 0)
    lv2host_world_close(w);
  return rc;
}

void lv2host_world_close(struct lv2host_world *w) {
  if (w->world == NULL)
    return;
  for (size_t i = 0; i < sizeof(node_uris) / sizeof(node_uris[0]); i++)
    lilv_node_free(*node_at(&w->n, i));
  lilv_world_free(w->world);
  urid_free(&w->urid);
  memset(w, 0, sizeof(*w));
}

const LilvPlugin *lv2host_world_find(struct lv2host_world *w, const char *uri, char *err,
                                     size_t errlen) {
  /* lilv_new_uri takes any string; an empty or relative one can only fail to match. */
  if (uri == NULL || strchr(uri, ':') == NULL) {
    snprintf(err, errlen,
             "\"%s\" is not a plugin URI (like http://drobilla.net/plugins/mda/Delay); "
             "`runway-worker --list-lv2` lists the installed ones",
             uri ? uri : "");
    return NULL;
  }
  LilvNode *node = lilv_new_uri(w->world, uri);
  if (node == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  const LilvPlugin *p = lilv_plugins_get_by_uri(lilv_world_get_all_plugins(w->world), node);
  lilv_node_free(node);
  if (p == NULL) {
    const char *path = getenv("LV2_PATH");
    snprintf(err, errlen,
             "no LV2 plugin <%s> is installed (searched %s); `runway-worker --list-lv2` lists "
             "the installed ones",
             uri, path != NULL && path[0] != '\0' ? path : "lilv's default path");
  }
  return p;
}

const char *lv2host_node_string(const LilvNode *node) {
  if (node == NULL)
    return NULL;
  if (lilv_node_is_string(node) || lilv_node_is_uri(node))
    return lilv_node_as_string(node);
  return NULL;
}
