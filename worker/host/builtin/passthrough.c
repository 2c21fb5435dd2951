/*
 * passthrough: output channel c is input channel c, bit for bit; outputs
 * beyond the inputs are silent. Tests measure the slot's latency with
 * impulses through it, so it must not touch a sample.
 */
#include <string.h>

#include "plugins.h"

/* Stateless: any non-NULL pointer will do as the instance. */
static int instance;

static void *passthrough_create(const rw_worker_info *info) {
  (void)info;
  return &instance;
}

static void passthrough_destroy(void *self) { (void)self; }

static void passthrough_process(void *self, rw_worker *w, const rw_block *b) {
  (void)self;
  (void)w;
  for (uint32_t c = 0; c < b->n_outputs; c++) {
    if (c < b->n_inputs)
      memcpy(b->outputs[c], b->inputs[c], (size_t)b->frames * sizeof(float));
    else
      memset(b->outputs[c], 0, (size_t)b->frames * sizeof(float));
  }
}

const rw_plugin plugin_passthrough = {
    .name = "passthrough",
    .description = "Copies every input channel to the output of the same number, unchanged",
    .n_inputs = 2,
    .n_outputs = 2,
    .midi = 0,
    .params = NULL,
    .n_params = 0,
    .create = passthrough_create,
    .destroy = passthrough_destroy,
    .process = passthrough_process,
};
