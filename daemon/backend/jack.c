/*
 * JACK backend. One client for every slot; its process callback runs the
 * engine over the whole slot table and nothing else. Because all slots share
 * the client, JACK cannot order slots that feed each other: the table is put
 * in graph order here (jb_order). Server notifications (shutdown, period
 * and rate changes, graph order) come on JACK's own threads and reach the
 * control thread through a uv_async; the latency callback reads the slot list
 * under a mutex, which the control thread never holds across a JACK call
 * (JACK may call back into us synchronously).
 */
#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jack/jack.h>
#include <jack/midiport.h>

#include "clock.h"
#include "log.h"
#include "memlock.h"
#include "signals.h"

struct jack_slot {
  struct backend_slot pub;
  uint32_t latency; /* under the backend's latency_lock */
};

/*
 * A connection attempt or the closing of an abandoned one, shared by the
 * loop and the thread doing it, which may outlive the backend (a daemon
 * stopping while a dying server keeps the thread waiting): whoever drops
 * the last reference frees it.
 */
/*
 * One connection to a server, as its callbacks see it. live is cleared when
 * the backend lets go of the client: libjack can deadlock closing a client
 * whose server died while a new one of the same name starts (seen in
 * it_soak), leaving that client's threads blocked forever, so its callbacks
 * must do nothing once they are no longer the backend's, should they ever run.
 */
struct jack_link {
  struct jack_backend *b;
  jack_client_t *client;
  _Atomic int live;
};

struct connect_job {
  pthread_mutex_t lock;
  int refs;
  bool orphaned;    /* the backend is gone: close what the thread got */
  uv_async_t *wake; /* valid while not orphaned */
  _Atomic uint32_t *events;
  char name[128];
  jack_client_t *client;
  struct jack_link *link; /* closing: the abandoned client's, freed with the job */
  jack_status_t status;
  bool done;
};

struct jack_backend {
  struct backend base;
  uv_loop_t *loop;
  struct connect_job *job;     /* the attempt in flight, or NULL */
  struct connect_job *closing; /* an abandoned client being closed, or NULL */
  uint64_t closing_since_ms;
  struct engine *engine;
  char *requested_name;
  backend_event_fn on_event;
  void *user;

  jack_client_t *client;  /* the control thread's; NULL once closed or abandoned */
  struct jack_link *link; /* the connection's callbacks' view; NULL with client */
  /*
   * Held (try-lock, never waited for) by an RT thread for its cycle: the RT
   * thread of a connection given up on (see jack_link) and the new one's
   * never run the engine at once.
   */
  _Atomic int rt_busy;
  char client_name[128];
  uint32_t sample_rate;
  uint32_t period;
  uint64_t epoch;

  uv_async_t async;
  _Atomic uint32_t events;
  _Atomic uint32_t pending_rate;
  _Atomic uint32_t pending_period;

  pthread_mutex_t latency_lock; /* never taken by the RT thread */
  struct jack_slot **slots;     /* the open slots, for the latency callback */
  uint32_t n_slots;
  uint32_t cap_slots;
};

static struct jack_backend *jb(struct backend *b) { return (struct jack_backend *)b; }
static const struct jack_backend *cjb(const struct backend *b) {
  return (const struct jack_backend *)b;
}

/* ---- RT thread ------------------------------------------------------------ */

static float *io_audio(void *port, uint32_t nframes) { return jack_port_get_buffer(port, nframes); }

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
  struct jack_link *l = arg;
  struct jack_backend *b = l->b;
  if (atomic_exchange(&b->rt_busy, 1) != 0)
    return 0; /* another connection's RT thread is in a cycle: only at a reconnection */
  if (atomic_load(&l->live))
    engine_process_at(b->engine, &jack_io, nframes, jack_last_frame_time(l->client));
  atomic_store(&b->rt_busy, 0);
  return 0;
}

/* The backend of a callback's connection, or NULL once it is not the backend's any more. */
static struct jack_backend *live_backend(void *arg) {
  struct jack_link *l = arg;
  return atomic_load_explicit(&l->live, memory_order_acquire) ? l->b : NULL;
}

/*
 * On the RT thread before its first cycle, and (JACK2) on the notification
 * thread when the client is activated: only the first is the RT thread.
 */
static void on_thread_init(void *arg) {
  struct jack_link *l = arg;
  struct jack_backend *b = live_backend(arg);
  if (b != NULL && pthread_equal(pthread_self(), jack_client_thread_id(l->client)))
    engine_rt_thread_started(b->engine);
}

/* ---- JACK notification threads -------------------------------------------- */

static void post_event(struct jack_backend *b, uint32_t ev) {
  atomic_fetch_or_explicit(&b->events, ev, memory_order_release);
  uv_async_send(&b->async);
}

static int on_graph_order(void *arg) {
  struct jack_backend *b = live_backend(arg);
  if (b != NULL)
    post_event(b, BACKEND_EV_GRAPH);
  return 0;
}

static int on_xrun(void *arg) {
  struct jack_backend *b = live_backend(arg);
  if (b == NULL)
    return 0;
  atomic_fetch_add_explicit(&b->engine->stats.xruns, 1, memory_order_relaxed);
  return 0;
}

static int on_buffer_size(jack_nframes_t nframes, void *arg) {
  struct jack_backend *b = live_backend(arg);
  if (b == NULL)
    return 0;
  uint32_t old = atomic_exchange_explicit(&b->pending_period, nframes, memory_order_acq_rel);
  if (old != nframes)
    post_event(b, BACKEND_EV_PERIOD);
  return 0;
}

static int on_sample_rate(jack_nframes_t rate, void *arg) {
  struct jack_backend *b = live_backend(arg);
  if (b == NULL)
    return 0;
  uint32_t old = atomic_exchange_explicit(&b->pending_rate, rate, memory_order_acq_rel);
  if (old != rate)
    post_event(b, BACKEND_EV_RATE);
  return 0;
}

static void on_shutdown(jack_status_t code, const char *reason, void *arg) {
  (void)code;
  (void)reason; /* logged by the control thread; no stdio here */
  struct jack_backend *b = live_backend(arg);
  if (b != NULL)
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
 * plus L. A slot without inputs (a synth) reports L alone. The MIDI input
 * counts as an input.
 */
static void slot_latency_callback(const struct jack_slot *js, jack_latency_callback_mode_t mode) {
  const struct backend_slot *p = &js->pub;
  jack_latency_range_t acc = {0, 0}, r;
  int first = 1;
  if (mode == JackCaptureLatency) {
    for (uint32_t k = 0; k < p->n_in; k++) {
      jack_port_get_latency_range(p->in[k], JackCaptureLatency, &r);
      merge_range(&acc, &r, &first);
    }
    if (p->midi_in != NULL) {
      jack_port_get_latency_range(p->midi_in, JackCaptureLatency, &r);
      merge_range(&acc, &r, &first);
    }
    acc.min += js->latency;
    acc.max += js->latency;
    for (uint32_t k = 0; k < p->n_out; k++)
      jack_port_set_latency_range(p->out[k], JackCaptureLatency, &acc);
  } else {
    for (uint32_t k = 0; k < p->n_out; k++) {
      jack_port_get_latency_range(p->out[k], JackPlaybackLatency, &r);
      merge_range(&acc, &r, &first);
    }
    acc.min += js->latency;
    acc.max += js->latency;
    for (uint32_t k = 0; k < p->n_in; k++)
      jack_port_set_latency_range(p->in[k], JackPlaybackLatency, &acc);
    if (p->midi_in != NULL)
      jack_port_set_latency_range(p->midi_in, JackPlaybackLatency, &acc);
  }
}

static void on_latency(jack_latency_callback_mode_t mode, void *arg) {
  struct jack_backend *b = live_backend(arg);
  if (b == NULL)
    return;
  pthread_mutex_lock(&b->latency_lock);
  for (uint32_t i = 0; i < b->n_slots; i++)
    slot_latency_callback(b->slots[i], mode);
  pthread_mutex_unlock(&b->latency_lock);
}

/* ---- connecting (control thread and the connector thread) ------------------ */

static void on_async(uv_async_t *handle) {
  struct jack_backend *b = handle->data;
  if (b->on_event != NULL)
    b->on_event(b->user);
}

static int jb_create(const struct backend_config *cfg, struct backend **out) {
  struct jack_backend *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return -ENOMEM;
  b->base.ops = &backend_jack_ops;
  b->loop = cfg->loop;
  b->engine = cfg->engine;
  b->on_event = cfg->on_event;
  b->user = cfg->user;
  b->requested_name = strdup(cfg->client_name);
  if (b->requested_name == NULL) {
    free(b);
    return -ENOMEM;
  }
  pthread_mutex_init(&b->latency_lock, NULL);
  int rc = uv_async_init(cfg->loop, &b->async, on_async);
  if (rc != 0) {
    pthread_mutex_destroy(&b->latency_lock);
    free(b->requested_name);
    free(b);
    return rc;
  }
  b->async.data = b;
  *out = &b->base;
  return 0;
}

static void job_unref(struct connect_job *job) {
  pthread_mutex_lock(&job->lock);
  bool last = --job->refs == 0;
  pthread_mutex_unlock(&job->lock);
  if (last) {
    pthread_mutex_destroy(&job->lock);
    free(job->link);
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
 * jack_client_open may block for as long as a dying server keeps its socket
 * open, so it runs on a thread of its own. Created with every signal blocked:
 * JACK's threads (created by jack_client_open there and by jack_activate)
 * inherit the mask, so signals only ever reach the loop thread.
 */
/*
 * How long a reconnection waits for an abandoned client's jack_client_close.
 * It takes milliseconds when it returns at all; once it is given up on, its
 * callbacks are inert (jack_link) and its RT thread excluded (rt_busy).
 */
#define CLOSE_WAIT_MS 3000

/*
 * The stack of the connector and closer threads. mlockall populates and
 * locks a new thread's whole stack, and glibc keeps a finished thread's
 * stack for the next: the default 8 MB would stay locked for nothing.
 * libjack's own threads make do with 512 KB.
 */
#define HELPER_STACK_BYTES ((size_t)256 * 1024)

static int jb_connect(struct backend *base) {
  struct jack_backend *b = jb(base);
  sigset_t saved;
  pthread_attr_t attr;
  pthread_t thread;
  if (b->client != NULL || b->job != NULL)
    return -EALREADY;
  if (b->closing != NULL) {
    /* The old client's RT thread may still run: not before it is closed, or given up on. */
    if (base_mono_ms() - b->closing_since_ms < CLOSE_WAIT_MS)
      return -EBUSY;
    log_warn("the dead JACK client did not close within %d ms (libjack is stuck in "
             "jack_client_close); connecting again without waiting for it",
             CLOSE_WAIT_MS);
    pthread_mutex_lock(&b->closing->lock);
    b->closing->orphaned = true;
    pthread_mutex_unlock(&b->closing->lock);
    job_unref(b->closing);
    b->closing = NULL;
  }
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
  pthread_attr_setstacksize(&attr, HELPER_STACK_BYTES);
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

static void jb_close(struct backend *base);

/*
 * JACK2 keeps the whole server's ports in one shared mapping, a 33 KB
 * stretch per port of any client (over 100 MB by default); mlockall locked
 * all of it, though the callback reads a page or two per port it uses.
 * Locked on touch instead, before the RT thread runs, and every page the
 * callback may read is touched first, off the RT thread: each port of ours
 * as it is made (register_port), and every output port of the server, ours
 * or another client's, when we connect and as it appears (an input of ours
 * connected to it reads its buffer). What is left to the RT thread is what
 * libjack reads each cycle, in its first cycle, and now and then a page it
 * reads first after a change of the graph: a minor fault each, once, on
 * pages the server keeps in memory (it_memory counts them). The metadata
 * database's mappings (/dev/shm/jack_db-UID/, about 1.5 MB), which the
 * callback never reads, go the same way; the small ones (the engine's and
 * our client's control blocks, a page each) it reads whole each cycle.
 */
#define JACK_SHM_PREFIX "/dev/shm/jack"
#define JACK_TABLE_MIN_BYTES ((size_t)64 << 10)

/* A port's buffer and the bookkeeping JACK2 reads to answer for it. */
static void touch_port(jack_port_t *p, uint32_t period) {
  sys_touch(jack_port_get_buffer(p, period), period * sizeof(float));
}

/* An output's: JACK2 only reads them to answer for an output. */
static void touch_output(jack_port_t *p, uint32_t period) {
  if (p != NULL && (jack_port_flags(p) & JackPortIsOutput))
    touch_port(p, period);
}

/*
 * The port table locked on touch, then the server's output ports touched.
 * Asking JACK2 for its ports reads every port's bookkeeping in the table,
 * so it is asked before the table is released.
 */
static void release_port_table(jack_client_t *client, uint32_t period) {
  const char **names = jack_get_ports(client, NULL, NULL, JackPortIsOutput);
  size_t n = 0;
  while (names != NULL && names[n] != NULL)
    n++;
  jack_port_t **outs = n > 0 ? calloc(n, sizeof(*outs)) : NULL;
  for (size_t i = 0; outs != NULL && i < n; i++)
    outs[i] = jack_port_by_name(client, names[i]);
  jack_free(names);
  size_t released = 0;
  int rc = sys_lock_on_touch(JACK_SHM_PREFIX, JACK_TABLE_MIN_BYTES, &released);
  if (rc != 0)
    log_warn("JACK's shared memory is not locked as it is touched: %s", strerror(-rc));
  else if (released > 0)
    log_debug("JACK's shared memory (%zu KB) is locked as it is touched", released / 1024);
  for (size_t i = 0; outs != NULL && i < n; i++)
    touch_output(outs[i], period);
  free(outs);
}

/* JACK's notification thread: a port appeared, which one of our inputs may be connected to. */
static void on_port_registration(jack_port_id_t id, int registered, void *arg) {
  struct jack_link *l = arg;
  struct jack_backend *b = live_backend(arg);
  if (b == NULL || !registered)
    return;
  jack_port_t *p = jack_port_by_id(l->client, id);
  /* Ours are touched as they are made (register_port), before the RT thread writes them. */
  if (p != NULL && !jack_port_is_mine(l->client, p))
    touch_output(p, atomic_load_explicit(&b->pending_period, memory_order_relaxed));
}

static int jb_finish_connect(struct backend *base, char *err, size_t errlen) {
  struct jack_backend *b = jb(base);
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

  struct jack_link *link = calloc(1, sizeof(*link));
  if (link == NULL) {
    jack_client_close(client);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  link->b = b;
  link->client = client;
  atomic_store(&link->live, 1);
  b->client = client;
  b->link = link; /* before jack_activate, which orders it before the first cycle */
  snprintf(b->client_name, sizeof(b->client_name), "%s", jack_get_client_name(b->client));
  b->sample_rate = jack_get_sample_rate(b->client);
  b->period = jack_get_buffer_size(b->client);
  atomic_store(&b->pending_rate, b->sample_rate);
  atomic_store(&b->pending_period, b->period);
  atomic_fetch_and(&b->events,
                   ~(uint32_t)(BACKEND_EV_PERIOD | BACKEND_EV_RATE | BACKEND_EV_SHUTDOWN));
  engine_reset_clock(b->engine);

  if (jack_set_process_callback(b->client, on_process, link) != 0 ||
      jack_set_thread_init_callback(b->client, on_thread_init, link) != 0 ||
      jack_set_xrun_callback(b->client, on_xrun, link) != 0 ||
      jack_set_graph_order_callback(b->client, on_graph_order, link) != 0 ||
      jack_set_buffer_size_callback(b->client, on_buffer_size, link) != 0 ||
      jack_set_sample_rate_callback(b->client, on_sample_rate, link) != 0 ||
      jack_set_latency_callback(b->client, on_latency, link) != 0 ||
      jack_set_port_registration_callback(b->client, on_port_registration, link) != 0) {
    snprintf(err, errlen, "cannot install JACK callbacks");
    goto fail;
  }
  jack_on_info_shutdown(b->client, on_shutdown, link);
  release_port_table(b->client, b->period);
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
  jb_close(base);
  return -EIO;
}

/* The connection is gone: its ports go with it; slots still open are only freed later. */
/* Returns the connection's link, no longer live: the caller frees it once its threads are gone. */
static struct jack_link *forget_client(struct jack_backend *b) {
  struct jack_link *link = b->link;
  if (link != NULL)
    atomic_store(&link->live, 0);
  b->link = NULL;
  b->client = NULL;
  pthread_mutex_lock(&b->latency_lock);
  b->n_slots = 0;
  pthread_mutex_unlock(&b->latency_lock);
  return link;
}

/* jack_client_close returns once the client's threads, the RT one too, have stopped. */
static void *close_thread(void *arg) {
  struct connect_job *job = arg;
  jack_client_close(job->client);
  pthread_mutex_lock(&job->lock);
  job->done = true;
  if (!job->orphaned) {
    atomic_fetch_or_explicit(job->events, BACKEND_EV_CLOSED, memory_order_release);
    uv_async_send(job->wake);
  }
  pthread_mutex_unlock(&job->lock);
  job_unref(job);
  return NULL;
}

static void jb_abandon(struct backend *base) {
  struct jack_backend *b = jb(base);
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t saved;
  if (b->client == NULL)
    return;
  struct connect_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    log_warn("out of memory closing the dead JACK client; leaving it open");
    (void)forget_client(b); /* its link stays for its callbacks, inert */
    return;
  }
  pthread_mutex_init(&job->lock, NULL);
  job->refs = 2;
  job->wake = &b->async;
  job->events = &b->events;
  job->client = b->client;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, HELPER_STACK_BYTES);
  base_block_signals(&saved);
  int rc = pthread_create(&thread, &attr, close_thread, job);
  base_restore_signals(&saved);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    log_warn("cannot start a thread to close the dead JACK client; leaving it open");
    pthread_mutex_destroy(&job->lock);
    free(job);
    (void)forget_client(b); /* its link stays for its callbacks, inert */
  } else {
    b->closing = job;
    b->closing_since_ms = base_mono_ms();
    job->link = forget_client(b); /* freed with the job, after jack_client_close */
  }
}

static bool jb_rt_stopped(const struct backend *base) {
  struct jack_backend *b = jb((struct backend *)base);
  /* A client given up on is inert, but its RT thread may be in a cycle still. */
  return b->client == NULL && b->closing == NULL && atomic_load(&b->rt_busy) == 0;
}

static void jb_close(struct backend *base) {
  struct jack_backend *b = jb(base);
  sigset_t mine;
  if (b->client == NULL)
    return;
  /*
   * jack_client_close deactivates first: after it returns no process
   * callback runs. libjack also restores the signal mask it saw in
   * jack_client_open, which is the all-blocked one of the connector thread;
   * the loop thread keeps its own.
   */
  pthread_sigmask(SIG_SETMASK, NULL, &mine);
  jack_client_close(b->client);
  pthread_sigmask(SIG_SETMASK, &mine, NULL);
  free(forget_client(b));
}

static void free_after_close(uv_handle_t *h) {
  struct jack_backend *b = h->data;
  pthread_mutex_destroy(&b->latency_lock);
  free(b->slots);
  free(b->requested_name);
  free(b);
}

static void jb_destroy(struct backend *base) {
  struct jack_backend *b = jb(base);
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
  if (b->closing != NULL) {
    pthread_mutex_lock(&b->closing->lock);
    b->closing->orphaned = true;
    pthread_mutex_unlock(&b->closing->lock);
    job_unref(b->closing);
    b->closing = NULL;
  }
  jb_close(base);
  uv_close((uv_handle_t *)&b->async, free_after_close);
}

static bool jb_is_open(const struct backend *b) { return cjb(b)->client != NULL; }
static const char *jb_client_name(const struct backend *base) {
  const struct jack_backend *b = cjb(base);
  return b->client != NULL ? b->client_name : b->requested_name;
}
static uint32_t jb_sample_rate(const struct backend *b) { return cjb(b)->sample_rate; }
static uint32_t jb_period(const struct backend *b) { return cjb(b)->period; }
static uint64_t jb_epoch(const struct backend *b) { return cjb(b)->epoch; }

static uint32_t jb_take_events(struct backend *base) {
  struct jack_backend *b = jb(base);
  uint32_t ev = atomic_exchange_explicit(&b->events, 0, memory_order_acq_rel);
  if (ev & BACKEND_EV_PERIOD)
    b->period = atomic_load_explicit(&b->pending_period, memory_order_acquire);
  if (ev & BACKEND_EV_RATE)
    b->sample_rate = atomic_load_explicit(&b->pending_rate, memory_order_acquire);
  if ((ev & BACKEND_EV_CLOSED) && b->closing != NULL) {
    job_unref(b->closing);
    b->closing = NULL;
  }
  return ev;
}

/* ---- slots ---------------------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define RUNWAY_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RUNWAY_TSAN 1
#endif
#endif
#ifdef RUNWAY_TSAN
/* ThreadSanitizer's dynamic annotations (its runtime defines them). */
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
static void tsan_ignore_writes_begin(void) { AnnotateIgnoreWritesBegin(__FILE__, __LINE__); }
static void tsan_ignore_writes_end(void) { AnnotateIgnoreWritesEnd(__FILE__, __LINE__); }
#else
static void tsan_ignore_writes_begin(void) {}
static void tsan_ignore_writes_end(void) {}
#endif

static int register_port(struct jack_backend *b, const char *slot, const char *suffix,
                         uint32_t index, bool midi, bool output, void **port, char **full,
                         char *err, size_t errlen) {
  char name[128];
  if (backend_port_name(name, sizeof(name), slot, suffix, index) != 0) {
    snprintf(err, errlen, "port name too long for slot %s", slot);
    return -ENAMETOOLONG;
  }
  jack_port_t *p =
      jack_port_register(b->client, name, midi ? JACK_DEFAULT_MIDI_TYPE : JACK_DEFAULT_AUDIO_TYPE,
                         output ? JackPortIsOutput : JackPortIsInput, 0);
  if (p == NULL) {
    snprintf(err, errlen, "JACK refused to register port %s:%s (name in use or too long?)",
             b->client_name, name);
    return -EEXIST;
  }
  /*
   * Locked on touch (release_port_table): here, before the slot reaches the
   * RT thread. For an input JACK clears the new port's buffer, memory that
   * may have been another client's port before (JACK reuses a gone port's
   * place), which our RT thread read through a connection: a reuse across
   * processes ThreadSanitizer cannot see, and no thread of ours can reach
   * this port yet, so the clearing is not watched.
   */
  tsan_ignore_writes_begin();
  touch_port(p, b->period);
  tsan_ignore_writes_end();
  *port = p;
  *full = strdup(jack_port_name(p));
  return *full != NULL ? 0 : -ENOMEM;
}

static void unregister_ports(struct jack_backend *b, struct backend_slot *p) {
  for (uint32_t i = 0; i < p->n_in; i++)
    if (p->in[i] != NULL)
      jack_port_unregister(b->client, p->in[i]);
  for (uint32_t i = 0; i < p->n_out; i++)
    if (p->out[i] != NULL)
      jack_port_unregister(b->client, p->out[i]);
  if (p->midi_in != NULL)
    jack_port_unregister(b->client, p->midi_in);
}

static int jb_slot_open(struct backend *base, const char *name, uint32_t n_in, uint32_t n_out,
                        bool midi, struct backend_slot **out, char *err, size_t errlen) {
  struct jack_backend *b = jb(base);
  if (b->client == NULL) {
    snprintf(err, errlen, "the JACK server is not connected");
    return -ENOTCONN;
  }
  if (n_in > RW_MAX_CHANNELS || n_out > RW_MAX_CHANNELS)
    return -EINVAL;
  struct jack_slot *js = calloc(1, sizeof(*js));
  if (js == NULL)
    return -ENOMEM;
  struct backend_slot *p = &js->pub;
  p->n_in = n_in;
  p->n_out = n_out;
  p->midi = midi;
  p->epoch = b->epoch;
  int rc = 0;
  for (uint32_t i = 0; i < n_in && rc == 0; i++)
    rc = register_port(b, name, "in", i + 1, false, false, &p->in[i], &p->in_names[i], err, errlen);
  for (uint32_t i = 0; i < n_out && rc == 0; i++)
    rc = register_port(b, name, "out", i + 1, false, true, &p->out[i], &p->out_names[i], err,
                       errlen);
  if (midi && rc == 0)
    rc = register_port(b, name, "midi_in", 0, true, false, &p->midi_in, &p->midi_name, err, errlen);
  if (rc == 0) {
    pthread_mutex_lock(&b->latency_lock);
    if (b->n_slots == b->cap_slots) {
      uint32_t cap = b->cap_slots ? b->cap_slots * 2 : 16;
      struct jack_slot **grown = realloc(b->slots, cap * sizeof(*grown));
      if (grown == NULL)
        rc = -ENOMEM;
      else {
        b->slots = grown;
        b->cap_slots = cap;
      }
    }
    if (rc == 0)
      b->slots[b->n_slots++] = js;
    pthread_mutex_unlock(&b->latency_lock);
  }
  if (rc != 0) {
    if (rc == -ENOMEM)
      snprintf(err, errlen, "out of memory opening the ports of slot %s", name);
    unregister_ports(b, p);
    backend_slot_clear(p);
    free(js);
    return rc;
  }
  *out = p;
  return 0;
}

static void jb_slot_close(struct backend *base, struct backend_slot *p) {
  struct jack_backend *b = jb(base);
  struct jack_slot *js = (struct jack_slot *)p;
  if (backend_slot_live(base, p)) {
    pthread_mutex_lock(&b->latency_lock);
    for (uint32_t i = 0; i < b->n_slots; i++) {
      if (b->slots[i] == js) {
        memmove(&b->slots[i], &b->slots[i + 1], (b->n_slots - i - 1) * sizeof(b->slots[0]));
        b->n_slots--;
        break;
      }
    }
    pthread_mutex_unlock(&b->latency_lock);
    unregister_ports(b, p);
  }
  backend_slot_clear(p);
  free(js);
}

/*
 * Renames the ports out of the way ("fx.in_1" becomes "fx.in_1~removed2"):
 * they stay registered, and valid for the RT thread, until closed.
 */
static void jb_slot_retire(struct backend *base, struct backend_slot *p) {
  struct jack_backend *b = jb(base);
  static uint32_t serial; /* control thread only */
  char name[320];
  serial++;
  void *const *groups[] = {p->in, p->out, &p->midi_in};
  const uint32_t counts[] = {p->n_in, p->n_out, p->midi_in != NULL};
  for (int g = 0; g < 3; g++) {
    for (uint32_t i = 0; i < counts[g]; i++) {
      jack_port_t *port = groups[g][i];
      snprintf(name, sizeof(name), "%s~removed%u", jack_port_short_name(port), serial);
      if (jack_port_rename(b->client, port, name) != 0)
        log_warn("cannot rename port %s out of the way of a new slot", jack_port_name(port));
    }
  }
}

static void jb_slot_latency(struct backend *base, struct backend_slot *p, uint32_t latency) {
  struct jack_backend *b = jb(base);
  pthread_mutex_lock(&b->latency_lock);
  ((struct jack_slot *)p)->latency = latency;
  pthread_mutex_unlock(&b->latency_lock);
}

static void jb_latency_update(struct backend *base) {
  struct jack_backend *b = jb(base);
  if (b->client != NULL)
    jack_recompute_total_latencies(b->client);
}

/* Index of the slot owning input port `name` (audio or MIDI), or -1. */
static int slot_of_input(struct backend_slot *const *slots, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n; i++) {
    const struct backend_slot *p = slots[i];
    for (uint32_t k = 0; k < p->n_in; k++)
      if (p->in_names[k] != NULL && strcmp(p->in_names[k], name) == 0)
        return (int)i;
    if (p->midi_name != NULL && strcmp(p->midi_name, name) == 0)
      return (int)i;
  }
  return -1;
}

/*
 * Slots connected to each other share this one client, so JACK cannot order
 * them: the callback runs the table in order, so the table is sorted
 * topologically along those connections (a slot after the slots that feed
 * it). Slots in a feedback loop keep their order. Stable: slots that do not
 * feed each other keep the order they were given in.
 */
static bool jb_order(struct backend *base, struct backend_slot *const *slots, uint32_t n,
                     uint32_t *order) {
  struct jack_backend *b = jb(base);
  static bool feeds[ENGINE_MAX_SLOTS][ENGINE_MAX_SLOTS]; /* control thread only */
  uint32_t indegree[ENGINE_MAX_SLOTS] = {0};
  bool placed[ENGINE_MAX_SLOTS] = {false};
  if (n > ENGINE_MAX_SLOTS || b->client == NULL)
    return false;
  memset(feeds, 0, sizeof(feeds));
  for (uint32_t a = 0; a < n; a++) {
    const struct backend_slot *p = slots[a];
    if (!backend_slot_live(base, p))
      continue;
    for (uint32_t k = 0; k < p->n_out; k++) {
      const char **names = jack_port_get_all_connections(b->client, p->out[k]);
      for (size_t j = 0; names != NULL && names[j] != NULL; j++) {
        int t = slot_of_input(slots, n, names[j]);
        if (t >= 0 && (uint32_t)t != a && !feeds[a][t]) {
          feeds[a][t] = true;
          indegree[t]++;
        }
      }
      if (names != NULL)
        jack_free(names);
    }
  }
  bool moved = false;
  for (uint32_t m = 0; m < n; m++) {
    /* The first slot in the given order that nobody unplaced feeds; in a loop, the first left. */
    uint32_t pick = n;
    for (uint32_t i = 0; i < n && pick == n; i++)
      if (!placed[i] && indegree[i] == 0)
        pick = i;
    for (uint32_t i = 0; i < n && pick == n; i++)
      if (!placed[i])
        pick = i;
    placed[pick] = true;
    order[m] = pick;
    moved |= pick != m;
    for (uint32_t t = 0; t < n; t++)
      if (feeds[pick][t] && indegree[t] > 0)
        indegree[t]--;
  }
  return moved;
}

const struct backend_ops backend_jack_ops = {
    .name = "jack",
    .server_name = "JACK",
    .available = NULL, /* the fallback of --backend auto: never probed */
    .create = jb_create,
    .destroy = jb_destroy,
    .connect = jb_connect,
    .finish_connect = jb_finish_connect,
    .close = jb_close,
    .abandon = jb_abandon,
    .is_open = jb_is_open,
    .rt_stopped = jb_rt_stopped,
    .client_name = jb_client_name,
    .sample_rate = jb_sample_rate,
    .period = jb_period,
    .epoch = jb_epoch,
    .take_events = jb_take_events,
    .slot_open = jb_slot_open,
    .slot_retire = jb_slot_retire,
    .slot_close = jb_slot_close,
    .slot_latency = jb_slot_latency,
    .latency_update = jb_latency_update,
    .order = jb_order,
};
