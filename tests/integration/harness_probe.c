/*
 * The probe: one JACK client in the test process that sends scheduled
 * events on its outputs and records every non-zero sample of its inputs,
 * each labelled with its frame on the probe's own clock.
 *
 * One client both sends and receives, as jack_iodelay measures: the frame of
 * a sample sent and the frame of a sample received are counted by the same
 * callback, so no second client that runs late (and reads the next cycle's
 * frame time) can shift a measurement. The path probe -> runway -> probe is a
 * cycle in JACK's graph; JACK runs one of its two clients first and lets the
 * other side of the cycle carry the previous cycle's data (JACK2 calls that
 * connection "feedback"). Whichever it is, the signal arrives exactly one
 * cycle later than without the cycle: the probe reads, in each run, what the
 * graph delivered for its previous run, and labels it with that run's frames.
 * An impulse sent at frame f through a slot of latency L is then recorded at
 * exactly f + L.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jack/midiport.h>

#include "harness_internal.h"
#include "harness_pipewire.h"

#define MAX_EVENTS (1u << 16)
#define MAX_RECORDS (1u << 20)
#define MAX_PROBES 4
/*
 * Disturbance logs are rings of the latest MAX_LOG entries: a busy machine
 * makes thousands in a long test, and the checks ask about recent frames.
 */
#define MAX_LOG 4096

struct event {
  uint64_t frame;
  uint32_t kind;
  uint32_t port;
  float value;
  uint8_t midi[3];
  uint8_t size;
};

struct h_probe {
  jack_client_t *client;
  const struct h_jack *jack;
  unsigned n_out;
  unsigned n_in;
  jack_port_t *out[H_PROBE_MAX_PORTS];
  jack_port_t *midi_out;
  jack_port_t *in[H_PROBE_MAX_PORTS];
  char out_names[H_PROBE_MAX_PORTS][320];
  char in_names[H_PROBE_MAX_PORTS][320];
  char midi_name[320];
  uint32_t out_latency;
  uint32_t in_latency;

  /* Schedule: written by the test thread below n_events, read by the RT thread. */
  struct event *events;
  _Atomic uint32_t n_events;
  _Atomic uint8_t *status;
  uint32_t cursor;     /* RT thread only */
  uint64_t last_frame; /* test thread only */

  /*
   * The probe's frame clock (RT thread only but the atomics), kept by
   * runway's own rule (engine_process_at): it starts at JACK's frame time,
   * moves on by the period every run, and jumps ahead when JACK's frame time
   * at a run's start is ahead of where the previous run ended (cycles the
   * graph skipped), never back. A skip the whole graph saw then moves the
   * probe and every slot alike, and only a run one of them alone started
   * late or missed can put them out of step.
   */
  bool started;
  uint64_t pos;                 /* start of the next run */
  uint64_t prev_start;          /* start of the previous run: what the inputs carry now */
  uint32_t prev_n;              /* its length */
  jack_nframes_t next_jack;     /* JACK's frame time the next run should start at */
  _Atomic uint64_t cycle_start; /* start of the latest run */
  _Atomic int64_t offset;       /* probe clock - JACK frame time at the latest run */
  /*
   * Every change of that offset (JACK's clock going back, or starting anew),
   * from which run on: frames of the graph's clock (PipeWire's profiler)
   * convert by the offset of their time, not the latest one.
   */
  struct {
    uint64_t at;
    int64_t offset;
  } offsets[MAX_LOG];
  _Atomic uint32_t n_offsets;
  _Atomic uint64_t cycles; /* runs so far */
  _Atomic uint64_t first;  /* start of the first run */
  _Atomic uint64_t end;    /* inputs are recorded for every frame before this one */

  /*
   * Disturbances of the graph: runs where JACK's frame time did not move on
   * by the previous run's length (cycles skipped, or the probe ran late,
   * after the next cycle had begun), and xruns JACK reported. Around one, JACK may
   * have lost or repeated a cycle's data between clients; h_check_port is
   * lenient there.
   */
  struct {
    uint64_t at; /* the run, on the probe's clock */
    int64_t by;  /* frames JACK's clock was ahead (+: skipped) or behind where expected */
  } jumps[MAX_LOG];
  _Atomic uint32_t n_jumps;
  uint64_t xrun_at[MAX_LOG]; /* probe clock when the xrun callback ran */
  _Atomic uint32_t n_xrun_at;
  _Atomic uint64_t late;
  _Atomic uint64_t xruns;
  _Atomic uint64_t skips;
  uint32_t path_latency[8]; /* slot latencies on paths from the probe to itself */
  unsigned n_path_latency;
  /* Stretches of output a disturbance the probe cannot see touched (test thread only). */
  struct {
    uint64_t from, to;
  } marked[64];
  unsigned n_marked;

  /* Records appended by the RT thread below n_records. */
  struct h_record *records;
  _Atomic uint32_t n_records;
  _Atomic uint64_t overflow;
  _Atomic int count_only[H_PROBE_MAX_PORTS];
  _Atomic uint32_t dc_bits[H_PROBE_MAX_PORTS]; /* a constant level on output i (float bits) */
  _Atomic uint64_t nonzero[H_PROBE_MAX_PORTS];
  _Atomic uint64_t nonfinite[H_PROBE_MAX_PORTS];
};

static struct h_probe *open_probes[MAX_PROBES];

/* Single-writer counters: relaxed load and store (no locked add on the RT thread). */
static inline void bump(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

/* ---- the RT callback --------------------------------------------------------------- */

static void note_jump(struct h_probe *p, uint64_t at, int64_t by) {
  bump(&p->skips, 1);
  uint32_t k = atomic_load_explicit(&p->n_jumps, memory_order_relaxed);
  p->jumps[k % MAX_LOG].at = at;
  p->jumps[k % MAX_LOG].by = by;
  /* Release: the entry is written before the test thread sees it counted. */
  atomic_store_explicit(&p->n_jumps, k + 1, memory_order_release);
}

static void note_offset(struct h_probe *p, uint64_t at, int64_t offset) {
  uint32_t k = atomic_load_explicit(&p->n_offsets, memory_order_relaxed);
  if (k > 0 && p->offsets[(k - 1) % MAX_LOG].offset == offset)
    return;
  p->offsets[k % MAX_LOG].at = at;
  p->offsets[k % MAX_LOG].offset = offset;
  atomic_store_explicit(&p->n_offsets, k + 1, memory_order_release);
}

/* The inputs now carry what the graph delivered for the previous run. */
static void record_inputs(struct h_probe *p, jack_nframes_t n) {
  uint32_t nrec = atomic_load_explicit(&p->n_records, memory_order_relaxed);
  uint32_t len = p->prev_n < n ? p->prev_n : n;
  for (unsigned i = 0; i < p->n_in; i++) {
    const float *in = jack_port_get_buffer(p->in[i], n);
    bool count_only = atomic_load_explicit(&p->count_only[i], memory_order_relaxed);
    uint64_t nz = 0, nf = 0;
    for (uint32_t k = 0; k < len; k++) {
      uint32_t bits;
      memcpy(&bits, &in[k], sizeof(bits));
      if ((bits & 0x7fffffffu) == 0)
        continue;
      nz++;
      nf += (bits & 0x7f800000u) == 0x7f800000u;
      if (count_only)
        continue;
      if (nrec < MAX_RECORDS) {
        p->records[nrec].frame = p->prev_start + k;
        p->records[nrec].port = i;
        p->records[nrec].value = in[k];
        nrec++;
      } else {
        bump(&p->overflow, 1);
      }
    }
    if (nz)
      bump(&p->nonzero[i], nz);
    if (nf)
      bump(&p->nonfinite[i], nf);
  }
  /* Release: the records below n_records are completely written. */
  atomic_store_explicit(&p->n_records, nrec, memory_order_release);
}

static void send_outputs(struct h_probe *p, uint64_t f0, jack_nframes_t n) {
  float *buf[H_PROBE_MAX_PORTS];
  void *midi = NULL;
  for (unsigned i = 0; i < p->n_out; i++) {
    buf[i] = jack_port_get_buffer(p->out[i], n);
    uint32_t bits = atomic_load_explicit(&p->dc_bits[i], memory_order_relaxed);
    if (bits == 0) {
      memset(buf[i], 0, n * sizeof(float));
    } else {
      float level;
      memcpy(&level, &bits, sizeof(level));
      for (uint32_t k = 0; k < n; k++)
        buf[i][k] = level;
    }
  }
  if (p->midi_out != NULL) {
    midi = jack_port_get_buffer(p->midi_out, n);
    jack_midi_clear_buffer(midi);
  }
  /* Acquire: the events below n_events are completely written. */
  uint32_t avail = atomic_load_explicit(&p->n_events, memory_order_acquire);
  while (p->cursor < avail) {
    const struct event *e = &p->events[p->cursor];
    if (e->frame >= f0 + n)
      break;
    uint8_t st = H_EV_LATE;
    if (e->frame >= f0) {
      uint32_t off = (uint32_t)(e->frame - f0);
      if (e->kind == H__EV_AUDIO && e->port < p->n_out) {
        buf[e->port][off] = e->value;
        st = H_EV_EMITTED;
      } else if (e->kind == H__EV_MIDI && midi != NULL &&
                 jack_midi_event_write(midi, off, e->midi, e->size) == 0) {
        st = H_EV_EMITTED;
      }
    }
    if (st == H_EV_LATE)
      bump(&p->late, 1);
    /* Release: pairs with h_probe_status's acquire. */
    atomic_store_explicit(&p->status[p->cursor], st, memory_order_release);
    p->cursor++;
  }
}

static int probe_process(jack_nframes_t n, void *arg) {
  struct h_probe *p = arg;
  jack_nframes_t jack_f0 = jack_last_frame_time(p->client);
  bool first = !p->started;
  if (first) {
    p->pos = jack_f0;
    p->started = true;
  } else if (jack_f0 != p->next_jack) {
    /* jack_nframes_t wraps; the difference does not. Beyond 10 s it is a new clock. */
    jack_nframes_t gap = jack_f0 - p->next_jack;
    if (gap < 480000u)
      p->pos += gap;
    note_jump(p, p->pos, (int64_t)(int32_t)gap);
  }
  p->next_jack = jack_f0 + n;
  uint64_t f0 = p->pos;
  if (!first)
    record_inputs(p, n);
  send_outputs(p, f0, n);
  p->prev_start = f0;
  p->prev_n = n;
  p->pos += n;
  /*
   * The graph clock moved on while we ran: the next cycle began before this
   * one finished. PipeWire's dummy driver does that without an xrun to any
   * client; what the slots' nodes exchanged with us then may be a cycle off.
   */
  if (jack_last_frame_time(p->client) != jack_f0)
    note_jump(p, f0, 0);
  note_offset(p, f0, (int64_t)f0 - (int64_t)jack_f0);
  atomic_store_explicit(&p->offset, (int64_t)f0 - (int64_t)jack_f0, memory_order_relaxed);
  atomic_store_explicit(&p->cycle_start, f0, memory_order_relaxed);
  if (first)
    atomic_store_explicit(&p->first, f0, memory_order_relaxed);
  /* Release: records, first and end are set before the test thread sees them. */
  atomic_store_explicit(&p->end, f0, memory_order_release);
  atomic_store_explicit(&p->cycles, atomic_load_explicit(&p->cycles, memory_order_relaxed) + 1,
                        memory_order_release);
  return 0;
}

static int probe_xrun(void *arg) {
  struct h_probe *p = arg;
  bump(&p->xruns, 1);
  /* JACK calls this from one notification thread, so the log has a single writer. */
  uint32_t k = atomic_load_explicit(&p->n_xrun_at, memory_order_relaxed);
  p->xrun_at[k % MAX_LOG] = (uint64_t)((int64_t)jack_frame_time(p->client) +
                                       atomic_load_explicit(&p->offset, memory_order_relaxed));
  /* Release: the entry is written before the test thread sees it counted. */
  atomic_store_explicit(&p->n_xrun_at, k + 1, memory_order_release);
  return 0;
}

static void probe_latency(jack_latency_callback_mode_t mode, void *arg) {
  struct h_probe *p = arg;
  if (mode == JackCaptureLatency) {
    jack_latency_range_t r = {p->out_latency, p->out_latency};
    for (unsigned i = 0; i < p->n_out; i++)
      jack_port_set_latency_range(p->out[i], JackCaptureLatency, &r);
    if (p->midi_out != NULL)
      jack_port_set_latency_range(p->midi_out, JackCaptureLatency, &r);
  } else {
    jack_latency_range_t r = {p->in_latency, p->in_latency};
    for (unsigned i = 0; i < p->n_in; i++)
      jack_port_set_latency_range(p->in[i], JackPlaybackLatency, &r);
  }
}

/* ---- opening and closing ------------------------------------------------------------ */

static jack_port_t *register_port(jack_client_t *c, const char *name, const char *type,
                                  unsigned long flags, char *full, size_t len) {
  jack_port_t *port = jack_port_register(c, name, type, flags, 0);
  if (port == NULL)
    H_FAIL("cannot register probe port %s", name);
  snprintf(full, len, "%s", jack_port_name(port));
  return port;
}

static bool probe_running(void *arg, char *seen, size_t len) {
  (void)seen;
  (void)len;
  const struct h_probe *p = arg;
  /* Acquire: pairs with the callback's release of the count. */
  return atomic_load_explicit(&p->cycles, memory_order_acquire) >= 2;
}

struct h_probe *h_probe_open(const struct h_jack *j, unsigned n_out, bool midi, unsigned n_in,
                             uint32_t out_latency, uint32_t in_latency) {
  char name[64], port[32];
  jack_status_t st = 0;
  if (n_out > H_PROBE_MAX_PORTS || n_in > H_PROBE_MAX_PORTS)
    H_FAIL("too many probe ports");
  h__pw_check_libjack();
  struct h_probe *p = calloc(1, sizeof(*p));
  p->jack = j;
  p->n_out = n_out;
  p->n_in = n_in;
  p->out_latency = out_latency;
  p->in_latency = in_latency;
  p->events = calloc(MAX_EVENTS, sizeof(*p->events));
  p->status = calloc(MAX_EVENTS, sizeof(*p->status));
  p->records = malloc(MAX_RECORDS * sizeof(*p->records));
  if (p->events == NULL || p->status == NULL || p->records == NULL)
    H_FAIL("out of memory for the probe");
  /* Touch every page now, so the RT callback never takes a first-touch fault. */
  memset(p->records, 0, MAX_RECORDS * sizeof(*p->records));

  h__unique_name(name, sizeof(name), "probe");
  p->client = h__open_client(j->name, name, &st);
  if (p->client == NULL)
    H_FAIL("cannot open the probe's JACK client (status 0x%x)", (unsigned)st);
  for (unsigned i = 0; i < n_out; i++) {
    snprintf(port, sizeof(port), "out_%u", i + 1);
    p->out[i] = register_port(p->client, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput,
                              p->out_names[i], sizeof(p->out_names[i]));
  }
  if (midi)
    p->midi_out = register_port(p->client, "midi_out", JACK_DEFAULT_MIDI_TYPE, JackPortIsOutput,
                                p->midi_name, sizeof(p->midi_name));
  for (unsigned i = 0; i < n_in; i++) {
    snprintf(port, sizeof(port), "in_%u", i + 1);
    p->in[i] = register_port(p->client, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput,
                             p->in_names[i], sizeof(p->in_names[i]));
  }
  if (jack_set_process_callback(p->client, probe_process, p) != 0 ||
      jack_set_xrun_callback(p->client, probe_xrun, p) != 0 ||
      jack_set_latency_callback(p->client, probe_latency, p) != 0)
    H_FAIL("cannot install the probe's JACK callbacks");
  if (jack_activate(p->client) != 0)
    H_FAIL("cannot activate the probe's JACK client");
  for (unsigned i = 0; i < MAX_PROBES; i++) {
    if (open_probes[i] == NULL) {
      open_probes[i] = p;
      break;
    }
  }
  H_WAIT_UNTIL(probe_running, p, 5000, "the probe's first JACK cycles");
  return p;
}

void h_probe_close(struct h_probe *p) {
  if (p == NULL)
    return;
  for (unsigned i = 0; i < MAX_PROBES; i++)
    if (open_probes[i] == p)
      open_probes[i] = NULL;
  h__watch_stop(p);
  jack_client_close(p->client);
  free(p->events);
  free(p->status);
  free(p->records);
  free(p);
}

void h__close_probes(void) {
  for (unsigned i = 0; i < MAX_PROBES; i++)
    if (open_probes[i] != NULL)
      h_probe_close(open_probes[i]);
}

/* ---- ports ------------------------------------------------------------------------- */

const char *h_probe_out(const struct h_probe *p, unsigned i) { return p->out_names[i]; }
const char *h_probe_midi(const struct h_probe *p) { return p->midi_name; }
const char *h_probe_in(const struct h_probe *p, unsigned i) { return p->in_names[i]; }
const char *h_probe_client(const struct h_probe *p) { return jack_get_client_name(p->client); }
uint32_t h_probe_period(const struct h_probe *p) { return p->jack->period; }

void h_probe_count_only(struct h_probe *p, unsigned i) {
  atomic_store_explicit(&p->count_only[i], 1, memory_order_relaxed);
}

void h_probe_dc(struct h_probe *p, unsigned port, float level) {
  uint32_t bits;
  if (port >= p->n_out)
    H_FAIL("no probe output %u", port);
  memcpy(&bits, &level, sizeof(bits));
  atomic_store_explicit(&p->dc_bits[port], bits, memory_order_relaxed);
}

void h_connect(struct h_probe *p, const char *from, const char *to) {
  int rc = jack_connect(p->client, from, to);
  if (rc != 0 && rc != EEXIST)
    H_FAIL("jack_connect %s -> %s failed (%d)", from, to, rc);
}

void h_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t *min,
                    uint32_t *max) {
  jack_port_t *jp = jack_port_by_name(p->client, port);
  if (jp == NULL)
    H_FAIL("no JACK port %s", port);
  jack_latency_range_t r = {0, 0};
  jack_port_get_latency_range(jp, playback ? JackPlaybackLatency : JackCaptureLatency, &r);
  *min = r.min;
  *max = r.max;
}

struct latency_wait {
  struct h_probe *p;
  const char *port;
  bool playback;
  uint32_t want;
  uint32_t *min;
  uint32_t *max;
  uint64_t asked_ms;
};

static bool latency_is(void *arg, char *seen, size_t len) {
  struct latency_wait *w = arg;
  h_port_latency(w->p, w->port, w->playback, w->min, w->max);
  if (*w->min == w->want && *w->max == w->want)
    return true;
  snprintf(seen, len, "%u-%u", *w->min, *w->max);
  /*
   * Latencies settle after connections, and through a cycle of the graph
   * (probe -> slot -> probe) one pass of JACK's computation may not reach
   * every port: ask the server to compute them again now and then.
   */
  if (h_now_ms() - w->asked_ms >= 250) {
    jack_recompute_total_latencies(w->p->client);
    w->asked_ms = h_now_ms();
  }
  return false;
}

bool h_wait_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t want,
                         unsigned timeout_ms, uint32_t *got_min, uint32_t *got_max) {
  struct latency_wait w = {p, port, playback, want, got_min, got_max, 0};
  return h_wait_for(latency_is, &w, timeout_ms);
}

/* ---- the clock and the schedule ---------------------------------------------------- */

uint64_t h_probe_cycle(const struct h_probe *p) {
  return atomic_load_explicit(&p->cycle_start, memory_order_relaxed);
}

uint64_t h_probe_now(struct h_probe *p) {
  return (uint64_t)((int64_t)jack_frame_time(p->client) +
                    atomic_load_explicit(&p->offset, memory_order_relaxed));
}

uint64_t h_probe_sink_first(const struct h_probe *p) { return atomic_load(&p->first); }

static uint32_t schedule(struct h_probe *p, const struct event *e) {
  uint32_t n = atomic_load_explicit(&p->n_events, memory_order_relaxed);
  if (n >= MAX_EVENTS)
    H_FAIL("too many probe events");
  if (e->frame < p->last_frame)
    H_FAIL("probe events must be scheduled in frame order (%llu after %llu)",
           (unsigned long long)e->frame, (unsigned long long)p->last_frame);
  p->events[n] = *e;
  p->last_frame = e->frame;
  /* Release: the event is complete before the RT thread sees it. */
  atomic_store_explicit(&p->n_events, n + 1, memory_order_release);
  return n;
}

uint32_t h_probe_impulse(struct h_probe *p, unsigned port, uint64_t frame, float value) {
  struct event e = {.frame = frame, .kind = H__EV_AUDIO, .port = port, .value = value};
  if (port >= p->n_out)
    H_FAIL("no probe output %u", port);
  return schedule(p, &e);
}

uint32_t h_probe_midi3(struct h_probe *p, uint64_t frame, uint8_t b0, uint8_t b1, uint8_t b2) {
  struct event e = {.frame = frame, .kind = H__EV_MIDI, .midi = {b0, b1, b2}, .size = 3};
  if (p->midi_out == NULL)
    H_FAIL("the probe has no MIDI output");
  return schedule(p, &e);
}

enum h_event_status h_probe_status(const struct h_probe *p, uint32_t id) {
  return (enum h_event_status)atomic_load_explicit(&p->status[id], memory_order_acquire);
}

uint64_t h_probe_frame(const struct h_probe *p, uint32_t id) { return p->events[id].frame; }
uint64_t h_probe_last_scheduled(const struct h_probe *p) { return p->last_frame; }

uint32_t h_probe_n_events(const struct h_probe *p) {
  return atomic_load_explicit(&p->n_events, memory_order_relaxed);
}

bool h__probe_event(const struct h_probe *p, uint32_t id, unsigned *kind, unsigned *port,
                    uint64_t *frame, float *value) {
  if (id >= h_probe_n_events(p))
    return false;
  const struct event *e = &p->events[id];
  *kind = e->kind;
  *port = e->port;
  *frame = e->frame;
  *value = e->value;
  return true;
}

struct frame_wait {
  const struct h_probe *p;
  uint64_t frame;
};

static bool frame_reached(void *arg, char *seen, size_t len) {
  struct frame_wait *w = arg;
  /* Acquire: pairs with the callback's release; the records before `end` are complete. */
  uint64_t end = atomic_load_explicit(&w->p->end, memory_order_acquire);
  snprintf(seen, len, "recorded up to frame %llu", (unsigned long long)end);
  return end >= w->frame;
}

void h_probe_wait_frame(struct h_probe *p, uint64_t frame, unsigned timeout_ms) {
  struct frame_wait w = {p, frame};
  H_WAIT_UNTIL(frame_reached, &w, timeout_ms, "the probe to record up to frame %llu",
               (unsigned long long)frame);
}

/* ---- what was recorded ------------------------------------------------------------- */

size_t h_probe_records(const struct h_probe *p, const struct h_record **recs) {
  *recs = p->records;
  return atomic_load_explicit(&p->n_records, memory_order_acquire);
}

uint64_t h_probe_samples(struct h_probe *p, unsigned port, uint64_t from, uint64_t to, float *out) {
  const struct h_record *r;
  size_t n = h_probe_records(p, &r);
  uint64_t found = 0;
  if (to <= from)
    return 0;
  memset(out, 0, (size_t)(to - from) * sizeof(float));
  /*
   * Records grow in frame order run by run (within a run port by port):
   * walk back from the newest until well before `from`.
   */
  for (size_t i = n; i > 0; i--) {
    const struct h_record *x = &r[i - 1];
    if (x->frame + 65536 < from)
      break;
    if (x->port != port || x->frame < from || x->frame >= to)
      continue;
    out[x->frame - from] = x->value;
    found++;
  }
  return found;
}

uint64_t h_probe_nonzero(const struct h_probe *p, unsigned port) {
  return atomic_load(&p->nonzero[port]);
}
uint64_t h_probe_nonfinite(const struct h_probe *p, unsigned port) {
  return atomic_load(&p->nonfinite[port]);
}
uint64_t h_probe_xruns(const struct h_probe *p) { return atomic_load(&p->xruns); }
uint64_t h_probe_late(const struct h_probe *p) { return atomic_load(&p->late); }
uint64_t h_probe_gaps(const struct h_probe *p) { return atomic_load(&p->skips); }
uint64_t h_probe_overflow(const struct h_probe *p) { return atomic_load(&p->overflow); }

/* ---- disturbances ------------------------------------------------------------------ */

void h_probe_path_latency(struct h_probe *p, uint32_t frames) {
  if (p->n_path_latency < sizeof(p->path_latency) / sizeof(p->path_latency[0]))
    p->path_latency[p->n_path_latency++] = frames;
}

/* How long after an xrun JACK may call the xrun callback (a loaded machine: generous). */
#define XRUN_REPORT_SLACK 9600

/*
 * Output frame `frame` lies where a disturbance may have lost or repeated a
 * cycle: [lo, hi) around it at the output, stretched by the longest path
 * latency, since what was in flight through a slot (input before, output
 * after) may come out a cycle off, up to L later.
 */
static uint64_t longest_path(const struct h_probe *p, uint32_t delay) {
  uint64_t longest = delay;
  for (unsigned k = 0; k < p->n_path_latency; k++)
    if (p->path_latency[k] > longest)
      longest = p->path_latency[k];
  return longest;
}

static bool in_shifted_window(const struct h_probe *p, uint64_t frame, uint64_t lo, uint64_t hi,
                              uint32_t delay) {
  return frame >= lo && frame < hi + longest_path(p, delay);
}

void h_probe_mark_disturbed(struct h_probe *p, uint64_t from, uint64_t to) {
  unsigned n = sizeof(p->marked) / sizeof(p->marked[0]);
  if (p->n_marked == n) { /* full: the oldest stretch merges into the next */
    p->marked[1].from = p->marked[0].from;
    memmove(&p->marked[0], &p->marked[1], (n - 1) * sizeof(p->marked[0]));
    p->n_marked--;
  }
  p->marked[p->n_marked].from = from;
  p->marked[p->n_marked].to = to;
  p->n_marked++;
}

/*
 * Frame `frame` of the probe's clock on JACK's (PipeWire's graph clock, 32
 * bits in libjack), by the offset in force at that frame.
 */
static uint32_t graph_frame(const struct h_probe *p, uint64_t frame) {
  uint32_t n = atomic_load_explicit(&p->n_offsets, memory_order_acquire);
  uint32_t oldest = n > MAX_LOG ? n - MAX_LOG : 0;
  int64_t offset = atomic_load_explicit(&p->offset, memory_order_relaxed);
  for (uint32_t i = n; i > oldest; i--) {
    offset = p->offsets[(i - 1) % MAX_LOG].offset;
    if (p->offsets[(i - 1) % MAX_LOG].at <= frame)
      break;
  }
  return (uint32_t)((int64_t)frame - offset);
}

bool h__probe_disturbed(const struct h_probe *p, uint64_t frame, uint32_t delay) {
  const uint64_t per = p->jack->period;
  for (unsigned i = 0; i < p->n_marked; i++)
    if (frame >= p->marked[i].from && frame < p->marked[i].to)
      return true;
  uint32_t nj = atomic_load_explicit(&p->n_jumps, memory_order_acquire);
  for (uint32_t i = nj > MAX_LOG ? nj - MAX_LOG : 0; i < nj; i++) {
    uint64_t at = p->jumps[i % MAX_LOG].at;
    uint64_t lo = at > 3 * per ? at - 3 * per : 0;
    if (in_shifted_window(p, frame, lo, at + 3 * per, delay))
      return true;
  }
  uint32_t nx = atomic_load_explicit(&p->n_xrun_at, memory_order_acquire);
  for (uint32_t i = nx > MAX_LOG ? nx - MAX_LOG : 0; i < nx; i++) {
    uint64_t x = p->xrun_at[i % MAX_LOG];
    uint64_t lo = x > XRUN_REPORT_SLACK + 2 * per ? x - XRUN_REPORT_SLACK - 2 * per : 0;
    if (in_shifted_window(p, frame, lo, x + 3 * per, delay))
      return true;
  }
  if (h__watch_disturbed(p, frame, longest_path(p, delay)))
    return true;
  /* PipeWire's profiler: a graph cycle that did not finish, from a path before the frame on. */
  uint64_t reach = 3 * per + delay;
  for (unsigned k = 0; k < p->n_path_latency; k++)
    if (p->path_latency[k] + 3 * per > reach)
      reach = p->path_latency[k] + 3 * per;
  uint64_t gf = graph_frame(p, frame);
  return h__pw_disturbed(gf - reach, gf + 2 * per);
}

bool h_probe_disturbed_at(const struct h_probe *p, uint64_t frame) {
  return h__probe_disturbed(p, frame, 0);
}

void h__probe_explain(const struct h_probe *p, const char *label) {
  uint32_t nj = atomic_load_explicit(&p->n_jumps, memory_order_acquire);
  for (uint32_t i = nj > 12 ? nj - 12 : 0; i < nj; i++)
    printf("  %s: the probe's run at %llu began %+lld frames off JACK's clock (late or skipped)\n",
           label, (unsigned long long)p->jumps[i % MAX_LOG].at,
           (long long)p->jumps[i % MAX_LOG].by);
  printf("  %s: probe: %llu xrun(s) reported, %u late or skipped run(s), %llu late event(s)\n",
         label, (unsigned long long)h_probe_xruns(p), nj, (unsigned long long)h_probe_late(p));
}
