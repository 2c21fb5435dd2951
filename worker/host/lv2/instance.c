/*
 * Bringing a described plugin to life for a slot, in the order the LV2 spec
 * gives (lv2.h, activate()): instantiate, connect every port (controls at
 * their defaults), activate, then restore a default state when the plugin
 * asks for one, before the first run(). And the way back.
 *
 * lilv_plugin_instantiate says only NULL when anything fails, printing its
 * reason to stderr; runway wants the reason in its own error, so it first
 * opens the library itself (with the flags lilv uses) and looks for the
 * plugin's descriptor: the dynamic linker's message for a library that does
 * not load, "no such plugin" for a descriptor that is not there, and
 * otherwise the plugin itself refused.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lv2/core/lv2.h>

#include "lv2host.h"

int lv2host_check_library(const struct lv2host_desc *d, char *err, size_t errlen) {
  const LilvNode *lib = lilv_plugin_get_library_uri(d->plugin);
  char *path = lib != NULL ? lilv_file_uri_parse(lilv_node_as_uri(lib), NULL) : NULL;
  if (path == NULL) {
    snprintf(err, errlen, "plugin <%s> names no library (lv2:binary) that is a local file", d->uri);
    return -EIO;
  }
  dlerror();
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    const char *why = dlerror();
    snprintf(err, errlen, "cannot load the library of <%s>: %s", d->uri, why != NULL ? why : path);
    lilv_free(path);
    return -EIO;
  }
  int rc = -ENOENT;
  LV2_Descriptor_Function get = (LV2_Descriptor_Function)(uintptr_t)dlsym(handle, "lv2_descriptor");
  for (uint32_t i = 0; get != NULL && rc != 0; i++) {
    const LV2_Descriptor *desc = get(i);
    if (desc == NULL)
      break;
    if (desc->URI != NULL && strcmp(desc->URI, d->uri) == 0)
      rc = 0;
  }
  if (rc != 0)
    snprintf(err, errlen, "%s %s plugin <%s> (its data says it does)", path,
             get == NULL ? "has no lv2_descriptor function, so no" : "has no", d->uri);
  dlclose(handle);
  lilv_free(path);
  return rc;
}

static int allocate(struct lv2host *h) {
  const struct lv2host_desc *d = h->desc;
  size_t n = d->n_ports ? d->n_ports : 1;
  h->values = calloc(n, sizeof(float));
  h->silence = calloc(h->max_block, sizeof(float));
  h->scratch = calloc(h->max_block, sizeof(float));
  h->atom_bufs = calloc(n, sizeof(void *));
  h->cv_bufs = calloc(n, sizeof(float *));
  if (!h->values || !h->silence || !h->scratch || !h->atom_bufs || !h->cv_bufs)
    return -ENOMEM;
  for (uint32_t i = 0; i < d->n_ports; i++) {
    const struct lv2host_port *p = &d->ports[i];
    switch (p->kind) {
    case LV2HOST_ATOM_IN:
    case LV2HOST_ATOM_OUT:
      /* The atom header, then the body; 8-byte aligned as atoms must be (calloc is 16). */
      h->atom_bufs[i] = calloc(1, sizeof(LV2_Atom) + p->atom_capacity);
      if (h->atom_bufs[i] == NULL)
        return -ENOMEM;
      break;
    case LV2HOST_CV_IN:
    case LV2HOST_CV_OUT:
      h->cv_bufs[i] = calloc(h->max_block, sizeof(float));
      if (h->cv_bufs[i] == NULL)
        return -ENOMEM;
      break;
    case LV2HOST_CONTROL_IN:
      h->values[i] = d->controls[p->control].def;
      break;
    default:
      break;
    }
  }
  return 0;
}

/* Every port gets a buffer before activate(); audio ports get theirs again for every run(). */
static void connect_all(struct lv2host *h) {
  const struct lv2host_desc *d = h->desc;
  for (uint32_t i = 0; i < d->n_ports; i++) {
    void *buf = NULL;
    switch (d->ports[i].kind) {
    case LV2HOST_AUDIO_IN:
      buf = h->silence;
      break;
    case LV2HOST_AUDIO_OUT:
      buf = h->scratch;
      break;
    case LV2HOST_CONTROL_IN:
    case LV2HOST_CONTROL_OUT:
      buf = &h->values[i];
      break;
    case LV2HOST_ATOM_IN:
    case LV2HOST_ATOM_OUT:
      buf = h->atom_bufs[i];
      break;
    case LV2HOST_CV_IN:
    case LV2HOST_CV_OUT:
      buf = h->cv_bufs[i];
      break;
    case LV2HOST_UNCONNECTED:
      break; /* connectionOptional: NULL is allowed */
    }
    lilv_instance_connect_port(h->inst, i, buf);
  }
}

int lv2host_open(struct lv2host *h, struct lv2host_world *w, const struct lv2host_desc *desc,
                 const struct lv2host_config *cfg, char *err, size_t errlen) {
  int rc;
  memset(h, 0, sizeof(*h));
  pthread_mutex_init(&h->log_lock, NULL);
  h->world = w;
  h->desc = desc;
  h->sample_rate = cfg->sample_rate;
  h->max_block = cfg->max_block;
  h->n_inputs = cfg->n_inputs;
  h->n_outputs = cfg->n_outputs;
  h->midi = cfg->midi;

  if (desc->unsupported[0] != '\0') {
    snprintf(err, errlen, "runway cannot host <%s>: %s", desc->uri, desc->unsupported);
    rc = -ENOTSUP;
    goto fail;
  }
  if (cfg->sample_rate == 0 || cfg->max_block == 0) {
    snprintf(err, errlen, "a sample rate and a block length are needed");
    rc = -EINVAL;
    goto fail;
  }
  rc = allocate(h);
  if (rc != 0) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  lv2host_features_init(h);
  rc = lv2host_check_library(desc, err, errlen);
  if (rc != 0)
    goto fail;
  h->inst = lilv_plugin_instantiate(desc->plugin, cfg->sample_rate, h->features);
  if (h->inst == NULL) {
    snprintf(err, errlen,
             "plugin <%s> refused to start at %u Hz with blocks of 1 to %u frames (its own "
             "messages, if any, are above)",
             desc->uri, cfg->sample_rate, cfg->max_block);
    rc = -EIO;
    goto fail;
  }
  h->work.handle = lilv_instance_get_handle(h->inst);
  h->work.iface = lilv_instance_get_extension_data(h->inst, LV2_WORKER__interface);
  connect_all(h);
  lilv_instance_activate(h->inst);
  h->active = 1;
  if (desc->load_default_state && lv2host_state_load_default(h) != 0)
    fprintf(stderr, "lv2 %s: warning: its default state could not be loaded\n", desc->uri);
  return 0;

fail:
  lv2host_close(h);
  return rc;
}

void lv2host_reset(struct lv2host *h) {
  if (h->inst == NULL)
    return;
  if (h->active)
    lilv_instance_deactivate(h->inst);
  lilv_instance_activate(h->inst);
  h->active = 1;
  h->ran = 0;
  h->resets++;
}

void lv2host_close(struct lv2host *h) {
  if (h->inst != NULL) {
    if (h->active)
      lilv_instance_deactivate(h->inst);
    lilv_instance_free(h->inst);
  }
  lv2host_work_free(&h->work);
  for (uint32_t i = 0; h->desc != NULL && i < h->desc->n_ports; i++) {
    if (h->atom_bufs != NULL)
      free(h->atom_bufs[i]);
    if (h->cv_bufs != NULL)
      free(h->cv_bufs[i]);
  }
  free(h->atom_bufs);
  free(h->cv_bufs);
  free(h->values);
  free(h->silence);
  free(h->scratch);
  pthread_mutex_destroy(&h->log_lock);
  memset(h, 0, sizeof(*h));
}

float lv2host_set_control(struct lv2host *h, uint32_t port, float v) {
  const struct lv2host_desc *d = h->desc;
  if (port >= d->n_ports || d->ports[port].kind != LV2HOST_CONTROL_IN)
    return NAN;
  float snapped = lv2host_control_snap(&d->controls[d->ports[port].control], v);
  h->values[port] = snapped;
  return snapped;
}
