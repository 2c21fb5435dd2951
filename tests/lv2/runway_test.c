/*
 * LV2 plugins for testing runway's LV2 host (described in runway_test.ttl).
 *
 * urn:runway:test:probe, per frame i:
 *
 *   out[i] = in[i] * gain * (invert ? -1 : 1) * sticky  +  note-on velocity / 127 at i
 *
 * MIDI note-ons play at their frame, except three notes:
 *   100  schedules work (the velocity); work() responds with it; the
 *        response sets sticky = velocity / 64, so the change is heard from
 *        the next run() on (a synchronous host: the very next one)
 *   101  segfaults in run()
 *   102  hangs in run()
 * sticky is the plugin's own state (state extension, key urn:runway:test#sticky,
 * a float); its default state sets it to 0.5. The control outputs report the
 * latency set_latency asks for, the number of activate() and end_run() calls,
 * and sticky.
 *
 * The other URIs share a plain copy: what makes them special is in their data
 * (features runway refuses), or that instantiate() refuses (refuses).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lv2/atom/atom.h>
#include <lv2/atom/util.h>
#include <lv2/core/lv2.h>
#include <lv2/log/log.h>
#include <lv2/midi/midi.h>
#include <lv2/state/state.h>
#include <lv2/urid/urid.h>
#include <lv2/worker/worker.h>

#define STICKY_KEY "urn:runway:test#sticky"

enum {
  P_IN,
  P_OUT,
  P_GAIN,
  P_INVERT,
  P_CUTOFF,
  P_MODE,
  P_LATENCY,
  P_SET_LATENCY,
  P_EVENTS,
  P_ACTIVATIONS,
  P_END_RUNS,
  P_STICKY,
  P_COUNT
};

typedef struct {
  void *ports[P_COUNT];
  LV2_URID_Map *map;
  LV2_Worker_Schedule *schedule;
  LV2_URID midi_event;
  LV2_URID atom_float;
  LV2_URID sticky_key;
  float sticky;
  float activations;
  float end_runs;
} Probe;

static const void *feature(const LV2_Feature *const *features, const char *uri) {
  for (int i = 0; features != NULL && features[i] != NULL; i++)
    if (strcmp(features[i]->URI, uri) == 0)
      return features[i]->data;
  return NULL;
}

static LV2_Handle probe_instantiate(const LV2_Descriptor *d, double rate, const char *bundle,
                                    const LV2_Feature *const *features) {
  (void)d;
  (void)rate;
  (void)bundle;
  Probe *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->map = (LV2_URID_Map *)feature(features, LV2_URID__map);
  p->schedule = (LV2_Worker_Schedule *)feature(features, LV2_WORKER__schedule);
  if (p->map == NULL || p->schedule == NULL) {
    free(p);
    return NULL;
  }
  p->midi_event = p->map->map(p->map->handle, LV2_MIDI__MidiEvent);
  p->atom_float = p->map->map(p->map->handle, LV2_ATOM__Float);
  p->sticky_key = p->map->map(p->map->handle, STICKY_KEY);
  p->sticky = 1.0f;
  return p;
}

static void probe_connect(LV2_Handle h, uint32_t port, void *data) {
  Probe *p = h;
  if (port < P_COUNT)
    p->ports[port] = data;
}

static void probe_activate(LV2_Handle h) {
  Probe *p = h;
  p->activations += 1.0f;
}

static float control(const Probe *p, int port) { return *(const float *)p->ports[port]; }

static void set_output(Probe *p, int port, float v) {
  if (p->ports[port] != NULL)
    *(float *)p->ports[port] = v;
}

static void misbehave(int note) {
  if (note == 101) {
    volatile int *nowhere = NULL;
    *nowhere = 1;
    raise(SIGSEGV); /* should the store above have been optimised into something else */
  }
  for (;;) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
  }
}

static void probe_run(LV2_Handle h, uint32_t n) {
  Probe *p = h;
  const float *in = p->ports[P_IN];
  float *out = p->ports[P_OUT];
  float k = control(p, P_GAIN) * (control(p, P_INVERT) > 0.0f ? -1.0f : 1.0f) * p->sticky;
  for (uint32_t i = 0; i < n; i++)
    out[i] = in[i] * k;

  const LV2_Atom_Sequence *seq = p->ports[P_EVENTS];
  LV2_ATOM_SEQUENCE_FOREACH(seq, ev) {
    if (ev->body.type != p->midi_event || ev->body.size != 3)
      continue;
    const uint8_t *msg = (const uint8_t *)(ev + 1);
    if ((msg[0] & 0xF0) != 0x90 || msg[2] == 0)
      continue;
    if (msg[1] == 101 || msg[1] == 102)
      misbehave(msg[1]);
    if (msg[1] == 100) {
      uint32_t velocity = msg[2];
      p->schedule->schedule_work(p->schedule->handle, sizeof(velocity), &velocity);
      continue;
    }
    if (ev->time.frames >= 0 && ev->time.frames < (int64_t)n)
      out[ev->time.frames] += (float)msg[2] / 127.0f;
  }
  set_output(p, P_LATENCY, control(p, P_SET_LATENCY));
  set_output(p, P_ACTIVATIONS, p->activations);
  set_output(p, P_END_RUNS, p->end_runs);
  set_output(p, P_STICKY, p->sticky);
}

static LV2_Worker_Status probe_work(LV2_Handle h, LV2_Worker_Respond_Function respond,
                                    LV2_Worker_Respond_Handle handle, uint32_t size,
                                    const void *data) {
  (void)h;
  return respond(handle, size, data);
}

static LV2_Worker_Status probe_work_response(LV2_Handle h, uint32_t size, const void *data) {
  Probe *p = h;
  uint32_t velocity;
  if (size != sizeof(velocity))
    return LV2_WORKER_ERR_UNKNOWN;
  memcpy(&velocity, data, sizeof(velocity));
  p->sticky = (float)velocity / 64.0f;
  return LV2_WORKER_SUCCESS;
}

static LV2_Worker_Status probe_end_run(LV2_Handle h) {
  Probe *p = h;
  p->end_runs += 1.0f;
  set_output(p, P_END_RUNS, p->end_runs);
  set_output(p, P_STICKY, p->sticky);
  return LV2_WORKER_SUCCESS;
}

static LV2_State_Status probe_save(LV2_Handle h, LV2_State_Store_Function store,
                                   LV2_State_Handle handle, uint32_t flags,
                                   const LV2_Feature *const *features) {
  (void)flags;
  (void)features;
  Probe *p = h;
  return store(handle, p->sticky_key, &p->sticky, sizeof(p->sticky), p->atom_float,
               LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE);
}

static LV2_State_Status probe_restore(LV2_Handle h, LV2_State_Retrieve_Function retrieve,
                                      LV2_State_Handle handle, uint32_t flags,
                                      const LV2_Feature *const *features) {
  (void)flags;
  (void)features;
  Probe *p = h;
  size_t size;
  uint32_t type, vflags;
  const void *v = retrieve(handle, p->sticky_key, &size, &type, &vflags);
  if (v == NULL || size != sizeof(float) || type != p->atom_float)
    return LV2_STATE_ERR_NO_PROPERTY;
  memcpy(&p->sticky, v, sizeof(float));
  return LV2_STATE_SUCCESS;
}

static const void *probe_extension_data(const char *uri) {
  static const LV2_Worker_Interface worker = {probe_work, probe_work_response, probe_end_run};
  static const LV2_State_Interface state = {probe_save, probe_restore};
  if (strcmp(uri, LV2_WORKER__interface) == 0)
    return &worker;
  if (strcmp(uri, LV2_STATE__interface) == 0)
    return &state;
  return NULL;
}

static void probe_cleanup(LV2_Handle h) { free(h); }

/* ---- the plain copy behind the other URIs ---------------------------------------------- */

typedef struct {
  const float *in;
  float *out;
} Copy;

static LV2_Handle copy_instantiate(const LV2_Descriptor *d, double rate, const char *bundle,
                                   const LV2_Feature *const *features) {
  (void)rate;
  (void)bundle;
  if (strcmp(d->URI, "urn:runway:test:refuses") == 0) {
    const LV2_Log_Log *log = feature(features, LV2_LOG__log);
    LV2_URID_Map *map = (LV2_URID_Map *)feature(features, LV2_URID__map);
    if (log != NULL && map != NULL)
      log->printf(log->handle, map->map(map->handle, LV2_LOG__Error),
                  "this plugin never starts (a test of refusals)\n");
    return NULL;
  }
  return calloc(1, sizeof(Copy));
}

static void copy_connect(LV2_Handle h, uint32_t port, void *data) {
  Copy *c = h;
  if (port == 0)
    c->in = data;
  else if (port == 1)
    c->out = data;
}

static void copy_run(LV2_Handle h, uint32_t n) {
  Copy *c = h;
  memcpy(c->out, c->in, n * sizeof(float));
}

static void copy_cleanup(LV2_Handle h) { free(h); }

static const LV2_Descriptor descriptors[] = {
    {"urn:runway:test:probe", probe_instantiate, probe_connect, probe_activate, probe_run, NULL,
     probe_cleanup, probe_extension_data},
    {"urn:runway:test:fixed", copy_instantiate, copy_connect, NULL, copy_run, NULL, copy_cleanup,
     NULL},
    {"urn:runway:test:pow2", copy_instantiate, copy_connect, NULL, copy_run, NULL, copy_cleanup,
     NULL},
    {"urn:runway:test:option", copy_instantiate, copy_connect, NULL, copy_run, NULL, copy_cleanup,
     NULL},
    {"urn:runway:test:refuses", copy_instantiate, copy_connect, NULL, copy_run, NULL, copy_cleanup,
     NULL},
    {"urn:runway:test:a-plugin-whose-uri-is-longer-than-the-63-bytes-a-segment-once-held",
     copy_instantiate, copy_connect, NULL, copy_run, NULL, copy_cleanup, NULL},
};

LV2_SYMBOL_EXPORT const LV2_Descriptor *lv2_descriptor(uint32_t index) {
  return index < sizeof(descriptors) / sizeof(descriptors[0]) ? &descriptors[index] : NULL;
}
