/*
 * librunway-worker: opening and closing a worker, its info, errors and
 * counters. The block loop lives in block.c, the attach handshake in
 * attach.c, rw_worker_main in main.c.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdk_internal.h"
#include "wake.h"

/* The error of the last failed rw_worker_open in this thread (there is no w to hold it). */
static _Thread_local char open_error[RW__ERRLEN];

void rw__set_error(rw_worker *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->err, sizeof(w->err), fmt, ap);
  va_end(ap);
}

static int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* What runwayd shows as it is: no control characters, nothing JSON must escape. */
static int is_shown_char(char c) {
  unsigned char u = (unsigned char)c;
  return u >= 0x20 && u != 0x7f && c != '"' && c != '\\';
}

static int check_param(rw_worker *w, const rw_param_info *params, uint32_t i) {
  const rw_param_info *p = &params[i];
  if (p->name == NULL || p->name[0] == '\0') {
    rw__set_error(w, "parameter %u (id %u) has no name", i, p->id);
    return RW_ERR_INVALID;
  }
  size_t len = strlen(p->name);
  if (len >= RW_NAME_MAX) {
    rw__set_error(w, "parameter name \"%.40s...\" is %zu bytes; at most %u fit", p->name, len,
                  RW_NAME_MAX - 1);
    return RW_ERR_INVALID;
  }
  for (size_t k = 0; k < len; k++) {
    if (!is_name_char(p->name[k])) {
      rw__set_error(w, "parameter name \"%s\" may only hold letters, digits and '_'", p->name);
      return RW_ERR_INVALID;
    }
  }
  if (p->unit != NULL) {
    len = strlen(p->unit);
    if (len >= RW_UNIT_MAX) {
      rw__set_error(w, "parameter \"%s\": unit \"%.40s\" is %zu bytes; at most %u fit", p->name,
                    p->unit, len, RW_UNIT_MAX - 1);
      return RW_ERR_INVALID;
    }
    for (size_t k = 0; k < len; k++) {
      if (!is_shown_char(p->unit[k])) {
        rw__set_error(w, "parameter \"%s\": its unit holds a control character, '\"' or '\\'",
                      p->name);
        return RW_ERR_INVALID;
      }
    }
  }
  if (!isfinite(p->min) || !isfinite(p->max) || !isfinite(p->def) || p->min > p->max ||
      p->def < p->min || p->def > p->max) {
    rw__set_error(w, "parameter \"%s\": need finite min <= default <= max", p->name);
    return RW_ERR_INVALID;
  }
  for (uint32_t j = 0; j < i; j++) {
    if (params[j].id == p->id) {
      rw__set_error(w, "parameters \"%s\" and \"%s\" share id %u", params[j].name, p->name, p->id);
      return RW_ERR_INVALID;
    }
    if (strcmp(params[j].name, p->name) == 0) {
      rw__set_error(w, "two parameters are named \"%s\" (ids %u and %u)", p->name, params[j].id,
                    p->id);
      return RW_ERR_INVALID;
    }
  }
  return 0;
}

static int check_params(rw_worker *w, const rw_param_info *params, uint32_t n) {
  if (n > RW_MAX_PARAMS || (n > 0 && params == NULL)) {
    rw__set_error(w, "n_params is %u but params is %s (at most %u parameters)", n,
                  params ? "set" : "NULL", RW_MAX_PARAMS);
    return RW_ERR_INVALID;
  }
  for (uint32_t i = 0; i < n; i++) {
    int rc = check_param(w, params, i);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int check_options(rw_worker *w, const rw_worker_options *o) {
  if (o == NULL)
    return 0;
  if (o->api_version < 0 || o->api_version > RW_WORKER_API_VERSION) {
    rw__set_error(w,
                  "worker API version %d is newer than this librunway-worker (%d); "
                  "link against a newer runway",
                  o->api_version, RW_WORKER_API_VERSION);
    return RW_ERR_INVALID;
  }
  int rc = check_params(w, o->params, o->n_params);
  if (rc != 0)
    return rc;
  if (o->plugin != NULL) {
    size_t len = strlen(o->plugin);
    if (len == 0 || len >= sizeof(w->plugin)) {
      rw__set_error(w, "plugin name \"%.40s%s\" is %zu bytes; it needs 1 to %zu", o->plugin,
                    len > 40 ? "..." : "", len, sizeof(w->plugin) - 1);
      return RW_ERR_INVALID;
    }
    for (size_t k = 0; k < len; k++) {
      if (!is_shown_char(o->plugin[k])) {
        rw__set_error(w, "plugin name \"%.40s\" holds a control character, '\"' or '\\'",
                      o->plugin);
        return RW_ERR_INVALID;
      }
    }
  }
  return 0;
}

/*
 * The name the daemon shows: the declared one (checked above), else the
 * program's, made showable and shortened at a UTF-8 character boundary.
 */
static void pick_plugin_name(rw_worker *w, const rw_worker_options *o) {
  if (o != NULL && o->plugin != NULL) {
    snprintf(w->plugin, sizeof(w->plugin), "%s", o->plugin);
    return;
  }
  const char *prog = program_invocation_short_name;
  if (prog == NULL || prog[0] == '\0')
    prog = "worker";
  size_t n = 0;
  for (; prog[n] != '\0' && n < sizeof(w->plugin) - 1; n++)
    w->plugin[n] = is_shown_char(prog[n]) ? prog[n] : '_';
  /* Cut before a UTF-8 sequence the limit split (continuation bytes are 10xxxxxx). */
  if (prog[n] != '\0')
    while (n > 0 && ((unsigned char)prog[n] & 0xC0) == 0x80)
      n--;
  w->plugin[n] = '\0';
}

static uint32_t pick_max_block(const rw_worker_options *o, uint32_t capacity) {
  uint32_t n = o != NULL && o->max_block != 0 ? o->max_block : RW__DEFAULT_MAX_BLOCK;
  if (n < RW__MIN_MAX_BLOCK)
    n = RW__MIN_MAX_BLOCK;
  if (n > RW__MAX_MAX_BLOCK)
    n = RW__MAX_MAX_BLOCK;
  /* A block much larger than the ring would be skipped over before it is done. */
  if (n > capacity / 4)
    n = capacity / 4;
  return n;
}

/* Sizes the block buffers, once: rw_worker_next never allocates. */
static int allocate_buffers(rw_worker *w) {
  uint32_t n_in = w->info.n_inputs;
  uint32_t n_out = w->info.n_outputs;
  size_t frames = w->max_block;

  w->in_data = calloc((size_t)(n_in ? n_in : 1) * frames, sizeof(float));
  w->out_data = calloc((size_t)(n_out ? n_out : 1) * frames, sizeof(float));
  w->in_ptrs = calloc(n_in ? n_in : 1, sizeof(float *));
  w->out_ptrs = calloc(n_out ? n_out : 1, sizeof(float *));
  w->batch = calloc(RW_MAX_BLOCK_EVENTS, sizeof(*w->batch));
  w->carry = calloc(RW_MAX_BLOCK_EVENTS, sizeof(*w->carry));
  w->block_events = calloc(RW_MAX_BLOCK_EVENTS, sizeof(*w->block_events));
  if (!w->in_data || !w->out_data || !w->in_ptrs || !w->out_ptrs || !w->batch || !w->carry ||
      !w->block_events)
    return RW_ERR_NOMEM;
  for (uint32_t c = 0; c < n_in; c++)
    w->in_ptrs[c] = w->in_data + (size_t)c * frames;
  for (uint32_t c = 0; c < n_out; c++)
    w->out_ptrs[c] = w->out_data + (size_t)c * frames;
  return 0;
}

/* Replaces w's table with a copy of params (checked by check_params). */
static int copy_params(rw_worker *w, const rw_param_info *params, uint32_t n) {
  struct rw__param *table = NULL;
  if (n > 0) {
    table = calloc(n, sizeof(*table));
    if (table == NULL)
      return RW_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < n; i++) {
    table[i].id = params[i].id;
    table[i].min = params[i].min;
    table[i].max = params[i].max;
    table[i].value = params[i].def;
    /* check_params made sure it fits. */
    snprintf(table[i].name, sizeof(table[i].name), "%s", params[i].name);
    snprintf(table[i].unit, sizeof(table[i].unit), "%s", params[i].unit ? params[i].unit : "");
  }
  free(w->params);
  w->params = table;
  w->n_params = n;
  w->n_loaded = 0;
  return 0;
}

/* Binds the rings, resumes the timeline and tells the daemon we are here. */
static int start(rw_worker *w, const rw_worker_options *o) {
  const struct rw_segment_header *h = &w->seg.layout;
  const struct shm_ctl *ctl = &w->seg.ctl;

  if (shm_tl_worker_init(&w->tl, &w->seg) != 0) {
    rw__set_error(w, "the slot segment's positions are impossible (out_write behind L or ahead of "
                     "in_write); restart the slot");
    return RW_ERR_PROTOCOL;
  }

  /* Acquire: records below ev_write are complete; a worker restart continues at ev_read. */
  uint64_t ev_write = atomic_load_explicit(&ctl->d->ev_write.value, memory_order_acquire);
  uint64_t ev_read = atomic_load_explicit(&ctl->w->ev_read.value, memory_order_relaxed);
  if (ev_write - ev_read > h->event_capacity)
    ev_read = ev_write; /* a dead predecessor left nonsense: start with an empty ring */
  shm_spsc_consumer_init(&w->events, &ctl->d->ev_write.value, &ctl->w->ev_read.value, w->seg.events,
                         sizeof(struct rw_record), h->event_capacity, ev_read);
  /* Release: publishes the (possibly resynchronised) read position before we pop anything. */
  atomic_store_explicit(&ctl->w->ev_read.value, ev_read, memory_order_release);

  uint64_t msg_write = atomic_load_explicit(&ctl->w->msg_write.value, memory_order_relaxed);
  shm_spsc_producer_init(&w->messages, &ctl->w->msg_write.value, &ctl->d->msg_read.value,
                         w->seg.messages, sizeof(struct rw_record), h->message_capacity, msg_write);

  w->max_block = pick_max_block(o, h->capacity);
  uint32_t want = o != NULL && o->wake_frames != 0 ? o->wake_frames : h->wake_frames_default;
  /* Sleeping until more than L is pending would make every wake-up late. */
  if (want > h->latency)
    want = h->latency;
  w->wake_frames = want ? want : 1;
  atomic_store_explicit(&ctl->w->wake_frames, w->wake_frames, memory_order_relaxed);

  w->info.slot = w->slot;
  w->info.sample_rate = h->sample_rate;
  w->info.n_inputs = h->n_inputs;
  w->info.n_outputs = h->n_outputs;
  w->info.midi = (h->flags & RW_SEGMENT_F_MIDI) != 0;
  w->info.latency = h->latency;
  w->info.max_block = w->max_block;
  w->info.period = h->max_period;
  w->info.wake_frames = w->wake_frames;

  w->discontinuity_pending = 1;
  w->fade_pos = RW_FADE_IN_FRAMES;
  w->out_pos = w->tl.pos + h->latency;
  return 0;
}

int rw_worker_open(const rw_worker_options *opts, rw_worker **out) {
  int rc;

  if (out == NULL) {
    snprintf(open_error, sizeof(open_error), "rw_worker_open: out must not be NULL");
    return RW_ERR_INVALID;
  }
  *out = NULL;
  rw_worker *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    snprintf(open_error, sizeof(open_error), "out of memory");
    return RW_ERR_NOMEM;
  }
  w->sock = -1;
  w->seg.fd[RW_FILE_DAEMON] = w->seg.fd[RW_FILE_WORKER] = -1;
  w->pid = getpid();

  rc = check_options(w, opts);
  if (rc != 0)
    goto fail;
  rc = opts != NULL ? copy_params(w, opts->params, opts->n_params) : 0;
  if (rc != 0)
    goto fail;
  pick_plugin_name(w, opts);

  const char *fd_text = getenv("RUNWAY_SEGMENT_FD");
  if (fd_text != NULL && fd_text[0] != '\0') {
    const char *slot = opts != NULL && opts->slot != NULL ? opts->slot : getenv("RUNWAY_SLOT");
    snprintf(w->slot, sizeof(w->slot), "%s", slot ? slot : "");
    rc = rw__attach_inherited(w);
  } else {
    rc = rw__attach_socket(w, opts);
  }
  if (rc != 0)
    goto fail;

  rc = start(w, opts);
  if (rc != 0)
    goto fail;
  rc = allocate_buffers(w);
  if (rc != 0)
    goto fail;
  rc = rw__state_init(w);
  if (rc != 0)
    goto fail;
  /* worker_pid, which tells the daemon to read this, waits for the first rw_worker_next. */
  rw__info_fill(w);
  *out = w;
  return 0;

fail:
  if (rc == RW_ERR_NOMEM && w->err[0] == '\0')
    rw__set_error(w, "out of memory while attaching");
  snprintf(open_error, sizeof(open_error), "%s", w->err);
  rw_worker_close(w);
  return rc;
}

int rw_worker_declare_params(rw_worker *w, const rw_param_info *params, uint32_t n) {
  if (w == NULL)
    return RW_ERR_INVALID;
  if (w->published || w->in_state_handler) {
    rw__set_error(w, "rw_worker_declare_params is for before the first rw_worker_next");
    return RW_ERR_INVALID;
  }
  int rc = check_params(w, params, n);
  if (rc == 0)
    rc = copy_params(w, params, n);
  if (rc == 0)
    rw__info_fill(w);
  return rc;
}

const rw_worker_info *rw_worker_get_info(const rw_worker *w) { return w != NULL ? &w->info : NULL; }

float rw_worker_param(const rw_worker *w, uint32_t id) {
  if (w == NULL)
    return NAN;
  for (uint32_t i = 0; i < w->n_params; i++)
    if (w->params[i].id == id)
      return w->params[i].value;
  return NAN;
}

int rw_worker_get_stats(const rw_worker *w, rw_worker_stats *out) {
  if (w == NULL || out == NULL)
    return RW_ERR_INVALID;
  *out = w->stats;
  return 0;
}

uint64_t rw_worker_stat(const rw_worker *w, int which) {
  if (w == NULL)
    return UINT64_MAX;
  const rw_worker_stats *st = &w->stats;
  switch (which) {
  case RW_STAT_BLOCKS:
    return st->blocks;
  case RW_STAT_FRAMES:
    return st->frames;
  case RW_STAT_SKIPPED_FRAMES:
    return st->skipped_frames;
  case RW_STAT_DISCONTINUITIES:
    return st->discontinuities;
  case RW_STAT_EVENTS:
    return st->events;
  case RW_STAT_EVENTS_LATE:
    return st->events_late;
  case RW_STAT_EVENTS_INVALID:
    return st->events_invalid;
  case RW_STAT_MESSAGES_DROPPED:
    return st->messages_dropped;
  case RW_STAT_SLEEPS:
    return w->sleeps;
  case RW_STAT_TIMER_WAKES:
    return w->timer_wakes;
  case RW_STAT_EARLY_WAKES:
    return w->early_wakes;
  default:
    return UINT64_MAX;
  }
}

void rw_worker_request_stop(rw_worker *w) {
  if (w == NULL)
    return;
  /* Relaxed: the flag carries no data; rw_worker_next only needs to see it eventually. */
  atomic_store_explicit(&w->stop, 1, memory_order_relaxed);
  /*
   * Cut a futex sleep short. FUTEX_WAKE changes no shared state (the daemon
   * sees nothing), and the woken worker checks the flag before sleeping again.
   */
  if (w->seg.ctl.d != NULL) {
    int saved = errno;
    /* A wake on the daemon's read-only word: waking writes nothing. */
    shm_futex_wake(&w->seg.ctl.d->wake_seq, 1);
    errno = saved;
  }
}

const char *rw_worker_error(const rw_worker *w) {
  if (w == NULL)
    return open_error[0] ? open_error : "no error";
  return w->err[0] ? w->err : "no error";
}

void rw_worker_close(rw_worker *w) {
  if (w == NULL)
    return;
  if (w->seg.ctl.w != NULL) {
    /* Tell the daemon the slot is free again, unless another worker already took it. */
    uint32_t me = (uint32_t)w->pid;
    atomic_compare_exchange_strong_explicit(&w->seg.ctl.w->worker_pid, &me, 0, memory_order_release,
                                            memory_order_relaxed);
  }
  shm_segment_release(&w->seg);
  if (w->sock >= 0)
    close(w->sock);
  free(w->in_data);
  free(w->out_data);
  free(w->in_ptrs);
  free(w->out_ptrs);
  free(w->batch);
  free(w->carry);
  free(w->block_events);
  free(w->params);
  rw__state_free(w);
  free(w);
}
