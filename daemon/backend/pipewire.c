/*
 * PipeWire backend. One pw_context on a pw_thread_loop of our own; each slot
 * is a pw_filter node of its own (pipewire_slot.c) whose process callback
 * runs the engine for that slot on PipeWire's data thread (pipewire_rt.c).
 * One more node, the clock node (named after the client, without ports),
 * runs every cycle so the backend knows the graph's period and rate before
 * any slot exists and sees them change; a timer on the thread loop compares
 * them with what the daemon was told and reports changes. Server events
 * reach the control thread through a uv_async, as on JACK.
 *
 * Connecting: pw_context_connect() is a local socket connect and does not
 * block, so it runs on the control thread; the attempt ends when the
 * server has answered a sync and the clock node has run once (or, when no
 * driver runs it within CLOCK_WAIT_MS, with the server's default period and
 * rate).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "pipewire_internal.h"
#include "signals.h"

#define POLL_MS 50
/* How long a connection attempt waits for the clock node's first cycle. */
#define CLOCK_WAIT_MS 1500
/* How long it waits for the server to answer at all. */
#define ANSWER_WAIT_MS 5000

static struct pwb *pwb(struct backend *b) { return (struct pwb *)b; }
static const struct pwb *cpwb(const struct backend *b) { return (const struct pwb *)b; }

void pwb__post(struct pwb *b, uint32_t ev) {
  atomic_fetch_or_explicit(&b->events, ev, memory_order_release);
  uv_async_send(&b->async);
}

/* ---- whether a server answers (--backend auto) ------------------------------------ */

/*
 * Where libpipewire connects (module-protocol-native's local-socket.c):
 * $PIPEWIRE_REMOTE or "pipewire-0", an absolute path as is, else under
 * $PIPEWIRE_RUNTIME_DIR, $XDG_RUNTIME_DIR or $USERPROFILE, then /run/pipewire.
 */
static bool socket_answers(const char *dir, const char *name) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int n = dir != NULL ? snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, name)
                      : snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", name);
  if (n < 0 || (size_t)n >= sizeof(addr.sun_path))
    return false;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return false;
  /* A full backlog (EAGAIN) still means a server listens there. */
  bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno == EAGAIN;
  close(fd);
  return ok;
}

static bool pwb_available(void) {
  const char *name = getenv("PIPEWIRE_REMOTE");
  if (name == NULL || name[0] == '\0')
    name = "pipewire-0";
  if (name[0] == '/')
    return socket_answers(NULL, name);
  const char *dir = getenv("PIPEWIRE_RUNTIME_DIR");
  if (dir == NULL)
    dir = getenv("XDG_RUNTIME_DIR");
  if (dir == NULL)
    dir = getenv("USERPROFILE");
  return (dir != NULL && socket_answers(dir, name)) || socket_answers("/run/pipewire", name);
}

/* ---- the connection (loop thread) -------------------------------------------------- */

static void attempt_ended(struct pwb *b, int error, const char *why) {
  if (b->state != PWB_CONNECTING)
    return;
  b->state = PWB_ENDED;
  b->conn_error = error;
  snprintf(b->conn_err, sizeof(b->conn_err), "%s", why != NULL ? why : "");
  pwb__post(b, BACKEND_EV_CONNECTED);
}

static uint32_t prop_u32(const struct spa_dict *props, const char *key) {
  const char *v = props != NULL ? spa_dict_lookup(props, key) : NULL;
  uint32_t out;
  return v != NULL && spa_atou32(v, &out, 10) ? out : 0;
}

static void on_core_info(void *data, const struct pw_core_info *info) {
  struct pwb *b = data;
  uint32_t rate = prop_u32(info->props, "default.clock.rate");
  uint32_t quantum = prop_u32(info->props, "default.clock.quantum");
  if (rate > 0)
    b->info_rate = rate;
  if (quantum > 0)
    b->info_quantum = quantum;
}

static void on_core_done(void *data, uint32_t id, int seq) {
  struct pwb *b = data;
  if (id != PW_ID_CORE)
    return;
  if (seq == b->connect_seq)
    b->answered = true;
  if (seq == b->wait_seq) {
    b->wait_done = true;
    pw_thread_loop_signal(b->tloop, false);
  }
}

static void on_core_error(void *data, uint32_t id, int seq, int res, const char *message) {
  struct pwb *b = data;
  (void)seq;
  if (id != PW_ID_CORE || res != -EPIPE) {
    log_warn("PipeWire: error on object %u: %s (%s)", id, message ? message : "",
             spa_strerror(res));
    return;
  }
  /* The server closed the connection: it went away, or never accepted us. */
  b->core_lost = true;
  pw_thread_loop_signal(b->tloop, false);
  if (b->state == PWB_CONNECTING)
    attempt_ended(b, -ECONNREFUSED, "the PipeWire server closed the connection");
  else if (b->state == PWB_OPEN)
    pwb__post(b, BACKEND_EV_SHUTDOWN);
}

static const struct pw_core_events core_events = {
    PW_VERSION_CORE_EVENTS,
    .info = on_core_info,
    .done = on_core_done,
    .error = on_core_error,
};

static void on_timer(void *data, uint64_t expirations) {
  struct pwb *b = data;
  (void)expirations;
  uint32_t period = atomic_load_explicit(&b->seen_period, memory_order_relaxed);
  uint32_t rate = atomic_load_explicit(&b->seen_rate, memory_order_relaxed);
  if (b->state == PWB_CONNECTING) {
    uint64_t waited = base_mono_ms() - b->connect_started_ms;
    if (b->answered && ((period > 0 && rate > 0) || waited > CLOCK_WAIT_MS))
      attempt_ended(b, 0, NULL);
    else if (!b->answered && waited > ANSWER_WAIT_MS)
      attempt_ended(b, -ETIMEDOUT, "the PipeWire server did not answer");
    return;
  }
  if (b->state != PWB_OPEN || b->core_lost)
    return;
  uint32_t ev = 0;
  if (period > 0 &&
      atomic_exchange_explicit(&b->pending_period, period, memory_order_acq_rel) != period)
    ev |= BACKEND_EV_PERIOD;
  if (rate > 0 && atomic_exchange_explicit(&b->pending_rate, rate, memory_order_acq_rel) != rate)
    ev |= BACKEND_EV_RATE;
  if (ev != 0)
    pwb__post(b, ev);
}

int pwb__roundtrip(struct pwb *b, unsigned timeout_ms) {
  struct timespec deadline;
  if (b->core == NULL || b->core_lost)
    return -ENOTCONN;
  b->wait_done = false;
  b->wait_seq = pw_core_sync(b->core, PW_ID_CORE, b->wait_seq);
  pw_thread_loop_get_time(b->tloop, &deadline, (int64_t)timeout_ms * SPA_NSEC_PER_MSEC);
  while (!b->wait_done && !b->core_lost)
    if (pw_thread_loop_timed_wait_full(b->tloop, &deadline) != 0)
      return -ETIMEDOUT;
  return b->wait_done ? 0 : -ENOTCONN;
}

static const struct pw_filter_events clock_events = {
    PW_VERSION_FILTER_EVENTS,
    .process = pwb__clock_process,
};

/* The connection goes, and every node with it (loop lock held). */
static void drop_connection(struct pwb *b) {
  /* Each node leaves the list as it goes. */
  while (!spa_list_is_empty(&b->slots))
    pwb__slot_destroy_node(spa_list_first(&b->slots, struct pwb_slot, link));
  if (b->clock != NULL) {
    pw_filter_destroy(b->clock);
    b->clock = NULL;
  }
  if (b->timer != NULL) {
    pw_loop_destroy_source(pw_thread_loop_get_loop(b->tloop), b->timer);
    b->timer = NULL;
  }
  if (b->core != NULL) {
    spa_hook_remove(&b->core_listener);
    pw_core_disconnect(b->core);
    b->core = NULL;
  }
  b->state = PWB_IDLE;
}

/* Starts an attempt (loop lock held); returns -errno when it cannot even start. */
static int start_attempt(struct pwb *b) {
  struct pw_loop *loop = pw_thread_loop_get_loop(b->tloop);
  b->core_lost = false;
  b->answered = false;
  b->info_rate = b->info_quantum = 0;
  atomic_store(&b->seen_period, 0);
  atomic_store(&b->seen_rate, 0);
  b->core = pw_context_connect(b->context, NULL, 0);
  if (b->core == NULL)
    return -errno;
  pw_core_add_listener(b->core, &b->core_listener, &core_events, b);
  b->connect_seq = pw_core_sync(b->core, PW_ID_CORE, 0);
  b->state = PWB_CONNECTING;
  b->connect_started_ms = base_mono_ms();

  struct pw_properties *props = pw_properties_new(
      PW_KEY_NODE_NAME, b->requested_name, PW_KEY_NODE_DESCRIPTION, b->requested_name,
      PW_KEY_MEDIA_TYPE, "Audio", PW_KEY_MEDIA_CATEGORY, "Filter", PW_KEY_MEDIA_ROLE, "DSP",
      PW_KEY_NODE_ALWAYS_PROCESS, "true", PW_KEY_NODE_LOCK_QUANTUM, "true", NULL);
  b->clock = props != NULL ? pw_filter_new(b->core, b->requested_name, props) : NULL;
  if (b->clock == NULL)
    return -ENOMEM;
  pw_filter_add_listener(b->clock, &b->clock_listener, &clock_events, b);
  if (pw_filter_connect(b->clock, PW_FILTER_FLAG_RT_PROCESS, NULL, 0) < 0)
    return -EIO;

  struct timespec interval = {0, POLL_MS * SPA_NSEC_PER_MSEC};
  b->timer = pw_loop_add_timer(loop, on_timer, b);
  if (b->timer == NULL)
    return -ENOMEM;
  pw_loop_update_timer(loop, b->timer, &interval, &interval, false);
  return 0;
}

/* ---- operations (control thread) --------------------------------------------------- */

static void on_async(uv_async_t *handle) {
  struct pwb *b = handle->data;
  if (b->on_event != NULL)
    b->on_event(b->user);
}

static void free_backend(struct pwb *b) {
  if (b->tloop != NULL)
    pw_thread_loop_stop(b->tloop);
  if (b->context != NULL)
    pw_context_destroy(b->context);
  if (b->tloop != NULL)
    pw_thread_loop_destroy(b->tloop);
  free(b->zeros);
  free(b->scratch);
  free(b->requested_name);
  free(b);
  pw_deinit();
}

static int pwb_create(const struct backend_config *cfg, struct backend **out) {
  sigset_t saved;
  int rc;
  pw_init(NULL, NULL);
  struct pwb *b = calloc(1, sizeof(*b));
  if (b == NULL) {
    pw_deinit();
    return -ENOMEM;
  }
  b->base.ops = &backend_pipewire_ops;
  b->loop = cfg->loop;
  b->engine = cfg->engine;
  b->on_event = cfg->on_event;
  b->user = cfg->user;
  spa_list_init(&b->slots);
  b->requested_name = strdup(cfg->client_name);
  b->zeros = calloc(PWB_MAX_FRAMES, sizeof(float));
  b->scratch = calloc(PWB_MAX_FRAMES, sizeof(float));
  if (b->requested_name == NULL || b->zeros == NULL || b->scratch == NULL) {
    free_backend(b);
    return -ENOMEM;
  }
  snprintf(b->client_name, sizeof(b->client_name), "%s", b->requested_name);

  /*
   * The thread loop's thread, and the data thread pw_context_new starts,
   * are created with every signal blocked: signals only reach the loop.
   * client-rt.conf loads module-rt, which gives the data thread real-time
   * priority when the limits allow it. application.name as the nodes'
   * description, so pw-jack shows them as one client, "runway".
   */
  base_block_signals(&saved);
  b->tloop = pw_thread_loop_new("runway-pw", NULL);
  if (b->tloop != NULL) {
    b->context = pw_context_new(pw_thread_loop_get_loop(b->tloop),
                                pw_properties_new(PW_KEY_CONFIG_NAME, "client-rt.conf",
                                                  PW_KEY_APP_NAME, b->requested_name, NULL),
                                0);
  }
  rc = b->context != NULL ? pw_thread_loop_start(b->tloop) : -errno;
  base_restore_signals(&saved);
  if (b->context == NULL || rc < 0) {
    log_error("cannot set up libpipewire: %s", spa_strerror(rc < 0 ? rc : -EIO));
    free_backend(b);
    return rc < 0 ? rc : -EIO;
  }
  rc = uv_async_init(cfg->loop, &b->async, on_async);
  if (rc != 0) {
    free_backend(b);
    return rc;
  }
  b->async.data = b;
  *out = &b->base;
  return 0;
}

static int pwb_connect(struct backend *base) {
  struct pwb *b = pwb(base);
  pw_thread_loop_lock(b->tloop);
  if (b->state != PWB_IDLE) {
    pw_thread_loop_unlock(b->tloop);
    return -EALREADY;
  }
  int rc = start_attempt(b);
  if (rc != 0) {
    /* No server to talk to: the attempt ends at once, reported like any other. */
    const char *why = rc == -EHOSTDOWN || rc == -ENOENT || rc == -ECONNREFUSED
                          ? "no PipeWire server answers: is pipewire running?"
                          : "cannot connect to the PipeWire server";
    drop_connection(b);
    b->state = PWB_CONNECTING;
    attempt_ended(b, rc == -EHOSTDOWN || rc == -ENOENT ? -ECONNREFUSED : rc, why);
  }
  pw_thread_loop_unlock(b->tloop);
  return 0;
}

static int pwb_finish_connect(struct backend *base, char *err, size_t errlen) {
  struct pwb *b = pwb(base);
  pw_thread_loop_lock(b->tloop);
  if (b->state != PWB_ENDED) {
    int rc = b->state == PWB_CONNECTING ? -EINPROGRESS : -EINVAL;
    snprintf(err, errlen, "%s", rc == -EINPROGRESS ? "still connecting" : "not connecting");
    pw_thread_loop_unlock(b->tloop);
    return rc;
  }
  if (b->conn_error != 0) {
    int rc = b->conn_error;
    snprintf(err, errlen, "%s", b->conn_err);
    drop_connection(b);
    pw_thread_loop_unlock(b->tloop);
    return rc;
  }
  uint32_t period = atomic_load(&b->seen_period), rate = atomic_load(&b->seen_rate);
  if (period == 0 || rate == 0) {
    /* No driver ran the clock node: the server's defaults, until it does. */
    period = b->info_quantum ? b->info_quantum : 1024;
    rate = b->info_rate ? b->info_rate : 48000;
    log_warn("no PipeWire driver runs runway's nodes yet; assuming %u Hz, %u frames", rate, period);
  }
  b->period = period;
  b->sample_rate = rate;
  atomic_store(&b->pending_period, period);
  atomic_store(&b->pending_rate, rate);
  atomic_fetch_and(&b->events,
                   ~(uint32_t)(BACKEND_EV_PERIOD | BACKEND_EV_RATE | BACKEND_EV_SHUTDOWN));
  b->state = PWB_OPEN;
  b->open = true;
  b->epoch++;
  engine_reset_clock(b->engine);
  pw_thread_loop_unlock(b->tloop);
  return 0;
}

/* Every node is destroyed (no RT cycle of ours runs after) and the connection closed. */
static void pwb_close(struct backend *base) {
  struct pwb *b = pwb(base);
  pw_thread_loop_lock(b->tloop);
  drop_connection(b);
  pw_thread_loop_unlock(b->tloop);
  b->open = false;
}

/* The server is gone: closing only lets go of our side, nothing waits on it. */
static void pwb_abandon(struct backend *base) { pwb_close(base); }

static void free_after_close(uv_handle_t *h) { free_backend(h->data); }

static void pwb_destroy(struct backend *base) {
  struct pwb *b = pwb(base);
  pwb_close(base);
  uv_close((uv_handle_t *)&b->async, free_after_close);
}

static bool pwb_is_open(const struct backend *b) { return cpwb(b)->open; }

/*
 * No node of ours is left: pw_filter_destroy takes a node out of the data
 * loop before it returns, so once the last is gone no process callback can
 * be running.
 */
static bool pwb_rt_stopped(const struct backend *base) {
  struct pwb *b = pwb((struct backend *)base);
  pw_thread_loop_lock(b->tloop);
  bool stopped = spa_list_is_empty(&b->slots) && b->clock == NULL;
  pw_thread_loop_unlock(b->tloop);
  return stopped;
}
static const char *pwb_client_name(const struct backend *b) { return cpwb(b)->client_name; }
static uint32_t pwb_sample_rate(const struct backend *b) { return cpwb(b)->sample_rate; }
static uint32_t pwb_period(const struct backend *b) { return cpwb(b)->period; }
static uint64_t pwb_epoch(const struct backend *b) { return cpwb(b)->epoch; }

static uint32_t pwb_take_events(struct backend *base) {
  struct pwb *b = pwb(base);
  uint32_t ev = atomic_exchange_explicit(&b->events, 0, memory_order_acq_rel);
  if (ev & BACKEND_EV_PERIOD)
    b->period = atomic_load_explicit(&b->pending_period, memory_order_acquire);
  if (ev & BACKEND_EV_RATE)
    b->sample_rate = atomic_load_explicit(&b->pending_rate, memory_order_acquire);
  return ev;
}

/* ---- slots --------------------------------------------------------------------------- */

static int pwb_slot_open(struct backend *base, const char *name, uint32_t n_in, uint32_t n_out,
                         bool midi, struct backend_slot **out, char *err, size_t errlen) {
  struct pwb *b = pwb(base);
  int rc;
  pw_thread_loop_lock(b->tloop);
  if (!b->open || b->state != PWB_OPEN || b->core_lost) {
    snprintf(err, errlen, "the PipeWire server is not connected");
    rc = -ENOTCONN;
  } else {
    rc = pwb__slot_open(b, name, n_in, n_out, midi, out, err, errlen);
  }
  pw_thread_loop_unlock(b->tloop);
  return rc;
}

/* The node goes at once (its names with it); the RT thread never runs it again. */
static void pwb_slot_retire(struct backend *base, struct backend_slot *bs) {
  struct pwb *b = pwb(base);
  pw_thread_loop_lock(b->tloop);
  pwb__slot_destroy_node((struct pwb_slot *)bs);
  pw_thread_loop_unlock(b->tloop);
}

static void pwb_slot_close(struct backend *base, struct backend_slot *bs) {
  pwb_slot_retire(base, bs);
  backend_slot_clear(bs);
  free(bs);
}

static void pwb_slot_latency(struct backend *base, struct backend_slot *bs, uint32_t latency) {
  struct pwb *b = pwb(base);
  pw_thread_loop_lock(b->tloop);
  ((struct pwb_slot *)bs)->latency = latency;
  pw_thread_loop_unlock(b->tloop);
}

static void pwb_latency_update(struct backend *base) {
  struct pwb *b = pwb(base);
  struct pwb_slot *s;
  pw_thread_loop_lock(b->tloop);
  spa_list_for_each(s, &b->slots, link) {
    pwb__slot_update_latency(s, SPA_DIRECTION_OUTPUT);
    pwb__slot_update_latency(s, SPA_DIRECTION_INPUT);
  }
  pw_thread_loop_unlock(b->tloop);
}

const struct backend_ops backend_pipewire_ops = {
    .name = "pipewire",
    .server_name = "PipeWire",
    .available = pwb_available,
    .create = pwb_create,
    .destroy = pwb_destroy,
    .connect = pwb_connect,
    .finish_connect = pwb_finish_connect,
    .close = pwb_close,
    .abandon = pwb_abandon,
    .is_open = pwb_is_open,
    .rt_stopped = pwb_rt_stopped,
    .client_name = pwb_client_name,
    .sample_rate = pwb_sample_rate,
    .period = pwb_period,
    .epoch = pwb_epoch,
    .take_events = pwb_take_events,
    .slot_open = pwb_slot_open,
    .slot_retire = pwb_slot_retire,
    .slot_close = pwb_slot_close,
    .slot_latency = pwb_slot_latency,
    .latency_update = pwb_latency_update,
    .order = NULL, /* each slot is a node: PipeWire orders them itself */
};
