/* The list of built-in plugins: runway-worker --list and --plugin both read it. */
#include <string.h>

#include "plugins.h"

const rw_plugin *const plugin_catalog[] = {
    &plugin_passthrough, &plugin_gain, &plugin_sine, &plugin_delay, &plugin_synth, NULL,
};

const rw_plugin *plugin_find(const char *name) {
  for (size_t i = 0; name != NULL && plugin_catalog[i] != NULL; i++)
    if (strcmp(plugin_catalog[i]->name, name) == 0)
      return plugin_catalog[i];
  return NULL;
}
