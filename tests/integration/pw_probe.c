#include "pw_probe.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pipewire/filter.h>
#include <pipewire/pipewire.h>
#include <spa/param/latency-utils.h>

#include "harness.h"

#define MAX_EVENTS 4096
#define MAX_RECORDS (1u << 18)
#define MAX_LATE 4096

struct pwp_port {
  struct pwp *p;
};

struct pwp {
  struct pw_thread_loop *tloop;
  struct pw_context *context;
  struct pw_core *core;
  struct pw_filter *src, *snk;
  struct spa_hook src_listener, snk_listener;
  struct pwp_port *out, *in;
  char src_port[160], snk_port[160];

  /* Schedule: written by the test below n_events, read by the data thread. */
  struct pwp_record events[MAX_EVENTS];
  _Atomic uint32_t n_events;
  _Atomic uint8_t status[MAX_EVENTS];
  uint32_t cursor; /* data thread */

  /* Data thread -> test. */
  _Atomic uint64_t src_pos;
  _Atomic uint32_t src_n;
  _Atomic uint64_t snk_end;
  struct pwp_record *records;
  _Atomic uint32_t n_records;
  uint64_t late[MAX_LATE];
  _Atomic uint32_t n_late;

  /* Data thread only: each node's last cycle. */
  uint64_t src_last, snk_last;
  uint32_t src_last_n, snk_last_n;

  /* Loop thread (under the lock): the capture latency arrived at the sink's input. */
  bool have_capture;
  struct spa_latency_info capture;
};

/* Both nodes run on the one data thread of this context: one writer. */
static void note_late(struct pwp *p, uint64_t frame) {
  uint32_t k = atomic_load_explicit(&p->n_late, memory_order_relaxed);
  if (k >= MAX_LATE)
    return;
  p->late[k] = frame;
  /* Release: the entry is written before the test sees it counted. */
  atomic_store_explicit(&p->n_late, k + 1, memory_order_release);
}

/* A cycle the clock did not follow the node's own count into, or left during the run. */
static void check_cycle(struct pwp *p, const struct spa_io_position *pos, uint64_t f0, uint32_t n,
                        uint64_t *last, uint32_t *last_n) {
  if (*last_n != 0 && f0 != *last + *last_n)
    note_late(p, f0);
  if (pos->clock.position != f0)
    note_late(p, f0);
  *last = f0;
  *last_n = n;
}

static void src_process(void *data, struct spa_io_position *pos) {
  struct pwp *p = data;
  if (pos == NULL)
    return;
  uint64_t f0 = pos->clock.position;
  uint32_t n = (uint32_t)pos->clock.duration;
  float *buf = pw_filter_get_dsp_buffer(p->out, n);
  if (buf != NULL)
    memset(buf, 0, n * sizeof(float));
  /* Acquire: the events below n_events are completely written. */
  uint32_t avail = atomic_load_explicit(&p->n_events, memory_order_acquire);
  while (p->cursor < avail && p->events[p->cursor].frame < f0 + n) {
    const struct pwp_record *e = &p->events[p->cursor];
    uint8_t st = 2;
    if (e->frame >= f0 && buf != NULL) {
      buf[e->frame - f0] = e->value;
      st = 1;
    }
    atomic_store_explicit(&p->status[p->cursor], st, memory_order_release);
    p->cursor++;
  }
  check_cycle(p, pos, f0, n, &p->src_last, &p->src_last_n);
  atomic_store_explicit(&p->src_n, n, memory_order_relaxed);
  atomic_store_explicit(&p->src_pos, f0, memory_order_release);
}

static void snk_process(void *data, struct spa_io_position *pos) {
  struct pwp *p = data;
  if (pos == NULL)
    return;
  uint64_t f0 = pos->clock.position;
  uint32_t n = (uint32_t)pos->clock.duration;
  const float *buf = pw_filter_get_dsp_buffer(p->in, n);
  uint32_t k = atomic_load_explicit(&p->n_records, memory_order_relaxed);
  for (uint32_t i = 0; buf != NULL && i < n && k < MAX_RECORDS; i++) {
    if (buf[i] != 0.0f) {
      p->records[k].frame = f0 + i;
      p->records[k].value = buf[i];
      k++;
    }
  }
  /* Release: the records below n_records are completely written. */
  atomic_store_explicit(&p->n_records, k, memory_order_release);
  check_cycle(p, pos, f0, n, &p->snk_last, &p->snk_last_n);
  atomic_store_explicit(&p->snk_end, f0 + n, memory_order_release);
}

static void snk_param_changed(void *data, void *port_data, uint32_t id,
                              const struct spa_pod *param) {
  struct pwp *p = data;
  struct spa_latency_info info;
  if (port_data == NULL || id != SPA_PARAM_Latency || param == NULL ||
      spa_latency_parse(param, &info) < 0 || info.direction != SPA_DIRECTION_OUTPUT)
    return;
  p->capture = info;
  p->have_capture = true;
}

static const struct pw_filter_events src_events = {
    PW_VERSION_FILTER_EVENTS,
    .process = src_process,
};

static const struct pw_filter_events snk_events = {
    PW_VERSION_FILTER_EVENTS,
    .param_changed = snk_param_changed,
    .process = snk_process,
};

static struct pw_filter *make_node(struct pwp *p, const char *node, bool output, uint32_t latency,
                                   const struct pw_filter_events *events, struct spa_hook *listener,
                                   struct pwp_port **port) {
  struct pw_filter *f =
      pw_filter_new(p->core, node,
                    pw_properties_new(PW_KEY_NODE_NAME, node, PW_KEY_MEDIA_TYPE, "Audio",
                                      PW_KEY_MEDIA_CATEGORY, "Filter", PW_KEY_MEDIA_ROLE, "DSP",
                                      PW_KEY_NODE_ALWAYS_PROCESS, "true", NULL));
  if (f == NULL)
    H_FAIL("cannot create probe node %s", node);
  pw_filter_add_listener(f, listener, events, p);
  uint8_t buf[512];
  struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buf, sizeof(buf));
  struct spa_latency_info info =
      SPA_LATENCY_INFO(output ? SPA_DIRECTION_OUTPUT : SPA_DIRECTION_INPUT, .min_rate = latency,
                       .max_rate = latency);
  const struct spa_pod *param = spa_latency_build(&b, SPA_PARAM_Latency, &info);
  *port = pw_filter_add_port(f, output ? PW_DIRECTION_OUTPUT : PW_DIRECTION_INPUT,
                             PW_FILTER_PORT_FLAG_MAP_BUFFERS, sizeof(struct pwp_port),
                             pw_properties_new(PW_KEY_FORMAT_DSP, "32 bit float mono audio",
                                               PW_KEY_PORT_NAME, output ? "out" : "in", NULL),
                             &param, 1);
  if (*port == NULL)
    H_FAIL("cannot add the port of probe node %s", node);
  (*port)->p = p;
  if (pw_filter_connect(f, PW_FILTER_FLAG_RT_PROCESS | PW_FILTER_FLAG_CUSTOM_LATENCY, NULL, 0) < 0)
    H_FAIL("cannot connect probe node %s", node);
  return f;
}

struct pwp *pwp_open(const char *name, uint32_t src_latency, uint32_t sink_latency) {
  char node[128];
  sigset_t all, saved;
  pw_init(NULL, NULL);
  struct pwp *p = calloc(1, sizeof(*p));
  if (p == NULL || (p->records = calloc(MAX_RECORDS, sizeof(*p->records))) == NULL)
    H_FAIL("out of memory for the PipeWire probe");
  /* The probe's threads leave the harness's signals (watchdog, SIGTERM) to the main thread. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  p->tloop = pw_thread_loop_new("rwt-probe", NULL);
  p->context = p->tloop ? pw_context_new(pw_thread_loop_get_loop(p->tloop), NULL, 0) : NULL;
  if (p->context == NULL || pw_thread_loop_start(p->tloop) < 0)
    H_FAIL("cannot start libpipewire for the probe");
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  pw_thread_loop_lock(p->tloop);
  p->core = pw_context_connect(p->context, NULL, 0);
  if (p->core == NULL)
    H_FAIL("the probe cannot connect to PipeWire (%s)", getenv("PIPEWIRE_REMOTE"));
  snprintf(node, sizeof(node), "%s.src", name);
  snprintf(p->src_port, sizeof(p->src_port), "%s:out", node);
  p->src = make_node(p, node, true, src_latency, &src_events, &p->src_listener, &p->out);
  snprintf(node, sizeof(node), "%s.snk", name);
  snprintf(p->snk_port, sizeof(p->snk_port), "%s:in", node);
  p->snk = make_node(p, node, false, sink_latency, &snk_events, &p->snk_listener, &p->in);
  pw_thread_loop_unlock(p->tloop);

  /* Running once the sink has seen a cycle. */
  uint64_t deadline = h_now_ms() + 5000;
  while (atomic_load_explicit(&p->snk_end, memory_order_acquire) == 0) {
    if (h_now_ms() > deadline)
      H_FAIL("the PipeWire probe's sink saw no cycle within 5 s");
    h_sleep_ms(2);
  }
  return p;
}

void pwp_close(struct pwp *p) {
  if (p == NULL)
    return;
  pw_thread_loop_lock(p->tloop);
  pw_filter_destroy(p->src);
  pw_filter_destroy(p->snk);
  pw_core_disconnect(p->core);
  pw_thread_loop_unlock(p->tloop);
  pw_thread_loop_stop(p->tloop);
  pw_context_destroy(p->context);
  pw_thread_loop_destroy(p->tloop);
  free(p->records);
  free(p);
  pw_deinit();
}

const char *pwp_source_port(const struct pwp *p) { return p->src_port; }
const char *pwp_sink_port(const struct pwp *p) { return p->snk_port; }

uint64_t pwp_position(const struct pwp *p) {
  return atomic_load_explicit(&((struct pwp *)p)->src_pos, memory_order_acquire);
}

uint32_t pwp_period(const struct pwp *p) {
  return atomic_load_explicit(&((struct pwp *)p)->src_n, memory_order_relaxed);
}

uint64_t pwp_sink_end(const struct pwp *p) {
  return atomic_load_explicit(&((struct pwp *)p)->snk_end, memory_order_acquire);
}

uint32_t pwp_impulse(struct pwp *p, uint64_t frame, float value) {
  uint32_t k = atomic_load_explicit(&p->n_events, memory_order_relaxed);
  if (k >= MAX_EVENTS || (k > 0 && frame < p->events[k - 1].frame))
    H_FAIL("probe events: too many, or out of order");
  p->events[k].frame = frame;
  p->events[k].value = value;
  /* Release: the event is written before the data thread sees it counted. */
  atomic_store_explicit(&p->n_events, k + 1, memory_order_release);
  return k;
}

const struct pwp_record *pwp_event(const struct pwp *p, uint32_t id) { return &p->events[id]; }

int pwp_status(const struct pwp *p, uint32_t id) {
  return atomic_load_explicit(&((struct pwp *)p)->status[id], memory_order_acquire);
}

size_t pwp_records(const struct pwp *p, const struct pwp_record **recs) {
  *recs = p->records;
  return atomic_load_explicit(&((struct pwp *)p)->n_records, memory_order_acquire);
}

bool pwp_disturbed(const struct pwp *p, uint64_t from, uint64_t to) {
  uint32_t n = atomic_load_explicit(&((struct pwp *)p)->n_late, memory_order_acquire);
  for (uint32_t i = 0; i < n; i++)
    if (p->late[i] >= from && p->late[i] < to)
      return true;
  return false;
}

uint32_t pwp_disturbances(const struct pwp *p) {
  return atomic_load_explicit(&((struct pwp *)p)->n_late, memory_order_acquire);
}

bool pwp_sink_capture_latency(struct pwp *p, uint32_t *min, uint32_t *max) {
  pw_thread_loop_lock(p->tloop);
  bool have = p->have_capture;
  struct spa_latency_info c = p->capture;
  pw_thread_loop_unlock(p->tloop);
  uint32_t n = pwp_period(p);
  *min = (uint32_t)(c.min_quantum * (float)n) + c.min_rate;
  *max = (uint32_t)(c.max_quantum * (float)n) + c.max_rate;
  return have;
}
