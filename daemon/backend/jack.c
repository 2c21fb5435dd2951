/*
 * JACK backend. One client; its process callback is engine_process() and
 * nothing else. Server notifications (shutdown, period and rate changes) come
 * on JACK's own threads and are forwarded to the control thread through a
 * uv_async; the latency callback reads a mutex-protected copy of each slot's
 * ports and L, which the control thread updates without holding the mutex
 * across any JACK call (JACK may call back into us synchronously).
 */
#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jack/jack.h>
#include <jack/midiport.h>

#include "log.h"
#include "signals.h"

struct latency_entry {
  const void *key;
  uint32_t n_in;
  uint32_t n_out;
  uint32_t latency;
  jack_port_t *in[RW_MAX_CHANNELS + 1]; /* audio inputs, then the MIDI input */
  jack_port_t *out[RW_MAX_CHANNELS];
};

/*
 * A connection attempt, shared by the loop and the connector thread, which
 * may outlive the backend (a daemon stopping while a dying server keeps the
 * thread waiting): whoever drops the last reference frees it.
 */
struct connect_job {
  pthread_mutex_t lock;
  int refs;
  bool orphaned;    /* the backend is gone: close what the thread got */
  uv_async_t *wake; /* valid while not orphaned */
  _Atomic uint32_t *events;
  char name[128];
  jack_client_t *client;
  jack_status_t status;
  bool done;
};

struct backend {
  uv_loop_t *loop;
  struct connect_job *job; /* the attempt in flight, or NULL */
  struct engine *engine;
  char *requested_name;
  backend_event_fn on_event;
  void *user;

  jack_client_t *client;
  char client_name[128];
  uint32_t sample_rate;
  uint32_t period;
  uint64_t epoch;

  uv_async_t async;
  _Atomic uint32_t events;
  _Atomic uint32_t pending_rate;
  _Atomic uint32_t pending_period;

  pthread_mutex_t latency_lock; /* never taken by the RT thread */
  struct latency_entry *entries;
  uint32_t n_entries;
  uint32_t cap_entries;
};

/* ---- RT thread ------------------------------------------------------------ */

static float *io_audio(void *port, uint32_t nframes) {
  return jack_port_get_buffer(port, nframes);
}

static void *io_midi(void *port, uint32_t nframes) { return jack_port_get_buffer(port, nframes); }

static uint32_t io_midi_count(void *buf) { return jack_midi_get_event_count(buf); }

static int io_midi_get(void *buf, uint32_t index, struct engine_midi *ev) {
  jack_midi_event_t je;
  if (jack_midi_event_get(&je, buf, index) != 0)
    return -1;
  ev->frame = je.time;
  ev->size = (uint32_t)je.size;
  ev->data = je.buffer;
  return 0;
}

static const struct engine_io jack_io = {
    .audio_buffer = io_audio,
    .midi_buffer = io_midi,
    .midi_count = io_midi_count,
    .midi_get = io_midi_get,
};

static int on_process(jack_nframes_t nframes, void *arg) {
  struct backend *b = arg;
  engine_process_at(b->engine, &jack_io, nframes, jack_last_frame_time(b->client));
  return 0;
}

/* ---- JACK notification threads -------------------------------------------- */

static void post_event(struct backend *b, uint32_t ev) {
  atomic_fetch_or_explicit(&b->events, ev, memory_order_release);
  uv_async_send(&b->async);
}

static int on_graph_order(void *arg) {
  post_event(arg, BACKEND_EV_GRAPH);
  return 0;
}

static int on_xrun(void *arg) {
  struct backend *b = arg;
  atomic_fetch_add_explicit(&b->engine->stats.xruns, 1, memory_order_relaxed);
  return 0;
}

static int on_buffer_size(jack_nframes_t nframes, void *arg) {
  struct backend *b = arg;
  uint32_t old = atomic_exchange_explicit(&b->pending_period, nframes, memory_order_acq_rel);
  if (old != nframes)
    post_event(b, BACKEND_EV_PERIOD);
  return 0;
}

static int on_sample_rate(jack_nframes_t rate, void *arg) {
  struct backend *b = arg;
  uint32_t old = atomic_exchange_explicit(&b->pending_rate, rate, memory_order_acq_rel);
  if (old != rate)
    post_event(b, BACKEND_EV_RATE);
  return 0;
}

static void on_shutdown(jack_status_t code, const char *reason, void *arg) {
  struct backend *b = arg;
  (void)code;
  (void)reason; /* logged by the control thread; no stdio here */
  post_event(b, BACKEND_EV_SHUTDOWN);
}

static void merge_range(jack_latency_range_t *acc, const jack_latency_range_t *r, int *first) {
  if (*first) {
    *acc = *r;
    *first = 0;
    return;
  }
  if (r->min < acc->min)
    acc->min = r->min;
  if (r->max > acc->max)
    acc->max = r->max;
}

/*
 * DESIGN.md: every output's capture latency is the inputs' capture latency
 * plus L, every input's playback latency is the outputs' playback latency
 * plus L. A slot without inputs (a synth) reports L alone.
 */
static void on_latency(jack_latency_callback_mode_t mode, void *arg) {
  struct backend *b = arg;
  pthread_mutex_lock(&b->latency_lock);
  for (uint32_t i = 0; i < b->n_entries; i++) {
    const struct latency_entry *e = &b->entries[i];
    jack_latency_range_t acc = {0, 0}, r;
    int first = 1;
    if (mode == JackCaptureLatency) {
      for (uint32_t k = 0; k < e->n_in; k++) {
        jack_port_get_latency_range(e->in[k], JackCaptureLatency, &r);
        merge_range(&acc, &r, &first);
      }
      acc.min += e->latency;
      acc.max += e->latency;
      for (uint32_t k = 0; k < e->n_out; k++)
        jack_port_set_latency_range(e->out[k], JackCaptureLatency, &acc);
    } else {
      for (uint32_t k = 0; k < e->n_out; k++) {
        jack_port_get_latency_range(e->out[k], JackPlaybackLatency, &r);
        merge_range(&acc, &r, &first);
      }
      acc.min += e->latency;
      acc.max += e->latency;
      for (uint32_t k = 0; k < e->n_in; k++)
        jack_port_set_latency_range(e->in[k], JackPlaybackLatency, &acc);
    }
  }
  pthread_mutex_unlock(&b->latency_lock);
}

/* ---- control thread ------------------------------------------------------- */

static void on_async(uv_async_t *handle) {
  struct backend *b = handle->data;
  if (b->on_event != NULL)
    b->on_event(b->user);
}

int backend_create(uv_loop_t *loop, struct engine *engine, const char *client_name,
                   backend_event_fn on_event, void *user, struct backend **out) {
  struct backend *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return -ENOMEM;
  b->loop = loop;
  b->engine = engine;
  b->on_event = on_event;
  b->user = user;
  b->requested_name = strdup(client_name);
  if (b->requested_name == NULL) {
    free(b);
    return -ENOMEM;
  }
  pthread_mutex_init(&b->latency_lock, NULL);
  int rc = uv_async_init(loop, &b->async, on_async);
  if (rc != 0) {
    pthread_mutex_destroy(&b->latency_lock);
    free(b->requested_name);
    free(b);
    return rc;
  }
  b->async.data = b;
  *out = b;
  return 0;
}

static void job_unref(struct connect_job *job);

static void free_after_close(uv_handle_t *h) {
  struct backend *b = h->data;
  pthread_mutex_destroy(&b->latency_lock);
  free(b->entries);
  free(b->requested_name);
  free(b);
}

void backend_destroy(struct backend *b) {
  if (b == NULL)
    return;
  if (b->job != NULL) {
    /* The connector thread may still wait on a server; it cleans up after itself. */
    pthread_mutex_lock(&b->job->lock);
    b->job->orphaned = true;
    if (b->job->client != NULL) {
      jack_client_close(b->job->client);
      b->job->client = NULL;
    }
    pthread_mutex_unlock(&b->job->lock);
    job_unref(b->job);
    b->job = NULL;
  }
  backend_close(b);
  uv_close((uv_handle_t *)&b->async, free_after_close);
}

static void job_unref(struct connect_job *job) {
  pthread_mutex_lock(&job->lock);
  bool last = --job->refs == 0;
  pthread_mutex_unlock(&job->lock);
  if (last) {
    pthread_mutex_destroy(&job->lock);
    free(job);
  }
}

static void *connect_thread(void *arg) {
  struct connect_job *job = arg;
  jack_status_t status = 0;
  jack_client_t *client = jack_client_open(job->name, JackNoStartServer, &status);
  pthread_mutex_lock(&job->lock);
  if (job->orphaned) {
    if (client != NULL)
      jack_client_close(client);
  } else {
    job->client = client;
    job->status = status;
    job->done = true;
    atomic_fetch_or_explicit(job->events, BACKEND_EV_CONNECTED, memory_order_release);
    uv_async_send(job->wake);
  }
  pthread_mutex_unlock(&job->lock);
  job_unref(job);
  return NULL;
}

/*
 * Runs fn with every signal blocked: JACK's threads (created by
 * jack_client_open on the connector thread and by jack_activate) inherit the
 * mask, so signals only ever reach the loop thread and a signal handler can
 * never run on the RT thread.
 */
int backend_connect(struct backend *b) {
  sigset_t saved;
  pthread_attr_t attr;
  pthread_t thread;
  if (b->client != NULL || b->job != NULL)
    return -EALREADY;
  struct connect_job *job = calloc(1, sizeof(*job));
  if (job == NULL)
    return -ENOMEM;
  pthread_mutex_init(&job->lock, NULL);
  job->refs = 2;
  job->wake = &b->async;
  job->events = &b->events;
  snprintf(job->name, sizeof(job->name), "%s", b->requested_name);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  base_block_signals(&saved);
  int rc = pthread_create(&thread, &attr, connect_thread, job);
  base_restore_signals(&saved);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_destroy(&job->lock);
    free(job);
    return -rc;
  }
  b->job = job;
  return 0;
}

bool backend_is_connecting(const struct backend *b) { return b->job != NULL; }

int backend_finish_connect(struct backend *b, char *err, size_t errlen) {
  struct connect_job *job = b->job;
  sigset_t saved;
  if (job == NULL) {
    snprintf(err, errlen, "no connection attempt in progress");
    return -EINVAL;
  }
  pthread_mutex_lock(&job->lock);
  bool done = job->done;
  jack_client_t *client = job->client;
  jack_status_t status = job->status;
  pthread_mutex_unlock(&job->lock);
  if (!done) {
    snprintf(err, errlen, "still connecting");
    return -EINPROGRESS;
  }
  b->job = NULL;
  job_unref(job);
  if (client == NULL) {
    snprintf(err, errlen, "cannot connect to the JACK server (status 0x%x)%s", (unsigned)status,
             (status & JackServerFailed) ? ": is jackd running?" : "");
    return (status & JackServerFailed) ? -ECONNREFUSED : -EIO;
  }

  b->client = client;
  snprintf(b->client_name, sizeof(b->client_name), "%s", jack_get_client_name(b->client));
  b->sample_rate = jack_get_sample_rate(b->client);
  b->period = jack_get_buffer_size(b->client);
  atomic_store(&b->pending_rate, b->sample_rate);
  atomic_store(&b->pending_period, b->period);
  atomic_fetch_and(&b->events, ~(uint32_t)(BACKEND_EV_PERIOD | BACKEND_EV_RATE | BACKEND_EV_SHUTDOWN));
  engine_reset_clock(b->engine);

  if (jack_set_process_callback(b->client, on_process, b) != 0 ||
      jack_set_xrun_callback(b->client, on_xrun, b) != 0 ||
      jack_set_graph_order_callback(b->client, on_graph_order, b) != 0 ||
      jack_set_buffer_size_callback(b->client, on_buffer_size, b) != 0 ||
      jack_set_sample_rate_callback(b->client, on_sample_rate, b) != 0 ||
      jack_set_latency_callback(b->client, on_latency, b) != 0) {
    snprintf(err, errlen, "cannot install JACK callbacks");
    goto fail;
  }
  jack_on_info_shutdown(b->client, on_shutdown, b);
  base_block_signals(&saved);
  int rc = jack_activate(b->client);
  base_restore_signals(&saved);
  if (rc != 0) {
    snprintf(err, errlen, "cannot activate the JACK client");
    goto fail;
  }
  b->epoch++;
  return 0;

fail:
  backend_close(b);
  return -EIO;
}

/* The connection is gone: its ports, and the latencies declared for them, with it. */
static void forget_client(struct backend *b) {
  b->client = NULL;
  pthread_mutex_lock(&b->latency_lock);
  b->n_entries = 0;
  pthread_mutex_unlock(&b->latency_lock);
}

static void *close_thread(void *arg) {
  jack_client_close(arg);
  return NULL;
}

void backend_abandon(struct backend *b) {
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t saved;
  if (b->client == NULL)
    return;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  base_block_signals(&saved);
  if (pthread_create(&thread, &attr, close_thread, b->client) != 0)
    log_warn("cannot start a thread to close the dead JACK client; leaving it open");
  base_restore_signals(&saved);
  pthread_attr_destroy(&attr);
  forget_client(b);
}

void backend_close(struct backend *b) {
  sigset_t mine;
  if (b->client == NULL)
    return;
  /*
   * jack_client_close deactivates first: after it returns no process
   * callback runs. libjack also restores the signal mask it saw in
   * jack_client_open, which is the all-blocked one backend_connect set up for
   * JACK's threads; the loop thread keeps its own.
   */
  pthread_sigmask(SIG_SETMASK, NULL, &mine);
  jack_client_close(b->client);
  pthread_sigmask(SIG_SETMASK, &mine, NULL);
  forget_client(b);
}

bool backend_is_open(const struct backend *b) { return b->client != NULL; }
const char *backend_name(const struct backend *b) { return "jack"; }
const char *backend_client_name(const struct backend *b) {
  return b->client != NULL ? b->client_name : b->requested_name;
}
uint32_t backend_sample_rate(const struct backend *b) { return b->sample_rate; }
uint32_t backend_period(const struct backend *b) { return b->period; }
uint64_t backend_epoch(const struct backend *b) { return b->epoch; }

uint32_t backend_take_events(struct backend *b) {
  uint32_t ev = atomic_exchange_explicit(&b->events, 0, memory_order_acq_rel);
  if (ev & BACKEND_EV_PERIOD)
    b->period = atomic_load_explicit(&b->pending_period, memory_order_acquire);
  if (ev & BACKEND_EV_RATE)
    b->sample_rate = atomic_load_explicit(&b->pending_rate, memory_order_acquire);
  return ev;
}

int backend_port_register(struct backend *b, const char *name, enum backend_port_kind kind,
                          void **port, char *full, size_t full_len, char *err, size_t errlen) {
  if (b->client == NULL) {
    snprintf(err, errlen, "the JACK server is not connected");
    return -ENOTCONN;
  }
  const char *type = kind == BACKEND_MIDI_IN ? JACK_DEFAULT_MIDI_TYPE : JACK_DEFAULT_AUDIO_TYPE;
  unsigned long flags = kind == BACKEND_AUDIO_OUT ? JackPortIsOutput : JackPortIsInput;
  jack_port_t *p = jack_port_register(b->client, name, type, flags, 0);
  if (p == NULL) {
    snprintf(err, errlen, "JACK refused to register port %s:%s (name in use or too long?)",
             b->client_name, name);
    return -EEXIST;
  }
  snprintf(full, full_len, "%s", jack_port_name(p));
  *port = p;
  return 0;
}

void backend_port_unregister(struct backend *b, void *port) {
  if (b->client != NULL && port != NULL)
    jack_port_unregister(b->client, port);
}

void backend_latency_set(struct backend *b, const void *key, void *const *in, uint32_t n_in,
                         void *const *out, uint32_t n_out, void *midi, uint32_t latency) {
  struct latency_entry e = {.key = key, .latency = latency};
  for (uint32_t i = 0; i < n_in && e.n_in < RW_MAX_CHANNELS; i++)
    e.in[e.n_in++] = in[i];
  if (midi != NULL)
    e.in[e.n_in++] = midi;
  for (uint32_t i = 0; i < n_out && i < RW_MAX_CHANNELS; i++)
    e.out[e.n_out++] = out[i];

  pthread_mutex_lock(&b->latency_lock);
  uint32_t i;
  for (i = 0; i < b->n_entries; i++)
    if (b->entries[i].key == key)
      break;
  if (i == b->n_entries) {
    if (b->n_entries == b->cap_entries) {
      uint32_t cap = b->cap_entries ? b->cap_entries * 2 : 16;
      struct latency_entry *grown = realloc(b->entries, cap * sizeof(*grown));
      if (grown == NULL) {
        pthread_mutex_unlock(&b->latency_lock);
        log_error("out of memory recording latency for a slot");
        return;
      }
      b->entries = grown;
      b->cap_entries = cap;
    }
    b->n_entries++;
  }
  b->entries[i] = e;
  pthread_mutex_unlock(&b->latency_lock);
}

void backend_latency_remove(struct backend *b, const void *key) {
  pthread_mutex_lock(&b->latency_lock);
  for (uint32_t i = 0; i < b->n_entries; i++) {
    if (b->entries[i].key == key) {
      b->entries[i] = b->entries[--b->n_entries];
      break;
    }
  }
  pthread_mutex_unlock(&b->latency_lock);
}

const char **backend_port_connections(struct backend *b, void *port) {
  if (b->client == NULL || port == NULL)
    return NULL;
  return jack_port_get_all_connections(b->client, port);
}

void backend_free_names(const char **names) {
  if (names != NULL)
    jack_free(names);
}

void backend_latency_update(struct backend *b) {
  if (b->client != NULL)
    jack_recompute_total_latencies(b->client);
}
