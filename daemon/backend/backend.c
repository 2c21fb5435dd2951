#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * In order of preference for --backend auto; the last one is its fallback.
 * PipeWire first: where its server runs it is the desktop's audio graph
 * (JACK clients included, through pw-jack), and runway then runs on it
 * natively; where it does not, JACK.
 */
static const struct backend_ops *const backends[] = {
#ifdef RUNWAY_PIPEWIRE
    &backend_pipewire_ops,
#endif
    &backend_jack_ops,
};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

const struct backend_ops *backend_find(const char *name, char *err, size_t errlen) {
  if (strcmp(name, "auto") == 0) {
    for (size_t i = 0; i < N_BACKENDS; i++)
      if (backends[i]->available != NULL && backends[i]->available())
        return backends[i];
    return backends[N_BACKENDS - 1];
  }
  for (size_t i = 0; i < N_BACKENDS; i++)
    if (strcmp(backends[i]->name, name) == 0)
      return backends[i];
  snprintf(err, errlen, "backend \"%s\" is not available; use one of: %s, auto", name,
           backend_names());
  return NULL;
}

const char *backend_names(void) {
  static char names[64];
  if (names[0] == '\0') {
    size_t used = 0;
    for (size_t i = 0; i < N_BACKENDS && used < sizeof(names); i++)
      used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                               backends[i]->name);
  }
  return names;
}

int backend_port_name(char *buf, size_t len, const char *slot, const char *suffix, uint32_t index) {
  int n = index > 0 ? snprintf(buf, len, "%s.%s_%u", slot, suffix, index)
                    : snprintf(buf, len, "%s.%s", slot, suffix);
  return n > 0 && (size_t)n < len ? 0 : -1;
}

void backend_slot_clear(struct backend_slot *bs) {
  for (uint32_t i = 0; i < RW_MAX_CHANNELS; i++) {
    free(bs->in_names[i]);
    free(bs->out_names[i]);
    bs->in_names[i] = bs->out_names[i] = NULL;
    bs->in[i] = bs->out[i] = NULL;
  }
  free(bs->midi_name);
  bs->midi_name = NULL;
  bs->midi_in = NULL;
}
