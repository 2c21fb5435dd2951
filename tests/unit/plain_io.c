#include "plain_io.h"

#include <stddef.h>

static float *audio_buffer(void *port, uint32_t nframes) {
  (void)nframes;
  return port;
}

static void *midi_buffer(void *port, uint32_t nframes) {
  (void)port;
  (void)nframes;
  return NULL;
}

static uint32_t midi_count(void *buf) {
  (void)buf;
  return 0;
}

static int midi_get(void *buf, uint32_t index, struct engine_midi *ev) {
  (void)buf;
  (void)index;
  (void)ev;
  return -1;
}

const struct engine_io plain_io = {audio_buffer, midi_buffer, midi_count, midi_get};
