/*
 * The block loop: planning chunks on the timeline, sleeping while caught up,
 * gathering the events that fall inside a block, publishing the output, and
 * the worker -> daemon messages.
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "sdk_internal.h"
#include "wake.h"

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct rw__param *find_param(rw_worker *w, uint32_t id) {
  for (uint32_t i = 0; i < w->n_params; i++)
    if (w->params[i].id == id)
      return &w->params[i];
  return NULL;
}

/*
 * Turns a record from shared memory into a block event, or returns 0 when it
 * is not one a plugin may see. The daemon is trusted no more than any other
 * peer: kinds, sizes and values are all checked.
 */
static int convert_record(rw_worker *w, const struct rw_record *rec, rw_event *ev) {
  memset(ev, 0, sizeof(*ev));
  switch (rec->type) {
  case RW_EVENT_MIDI:
    if (rec->size < 1 || rec->size > 3)
      return 0;
    ev->kind = RW_EV_MIDI;
    ev->size = rec->size;
    memcpy(ev->u.midi.data, rec->u.midi, rec->size);
    return 1;
  case RW_EVENT_PARAM: {
    float value = rec->u.param.value;
    if (!isfinite(value))
      return 0;
    /* With declared parameters, an unknown id or an out-of-range value is a daemon bug. */
    if (w->n_params > 0) {
      const struct rw__param *p = find_param(w, rec->u.param.id);
      if (p == NULL)
        return 0;
      value = value < p->min ? p->min : value > p->max ? p->max : value;
    }
    ev->kind = RW_EV_PARAM;
    ev->u.param.id = rec->u.param.id;
    ev->u.param.value = value;
    return 1;
  }
  default:
    return 0;
  }
}

static void sort_by_offset(struct rw__pending_event *a, uint32_t n) {
  /* Insertion sort: stable, and linear for the usual already-sorted batch. */
  for (uint32_t i = 1; i < n; i++) {
    if (a[i].ev.offset >= a[i - 1].ev.offset)
      continue;
    struct rw__pending_event x = a[i];
    uint32_t j = i;
    while (j > 0 && a[j - 1].ev.offset > x.ev.offset) {
      a[j] = a[j - 1];
      j--;
    }
    a[j] = x;
  }
}

static uint32_t offset_in(const struct shm_tl_chunk *c, uint64_t time) {
  return time <= c->pos ? 0 : (uint32_t)(time - c->pos);
}

/*
 * Puts the values a state load set into the sorted batch at offset 0: after
 * the events whose time had already passed (they were sent before the load
 * was answered), before those on time. The caller left room for them.
 */
static uint32_t insert_loaded(rw_worker *w, const struct shm_tl_chunk *c, uint32_t n) {
  struct rw__pending_event *batch = w->batch;
  uint32_t at = 0;
  while (at < n && batch[at].ev.offset == 0 && batch[at].time < c->pos)
    at++;
  memmove(&batch[at + w->n_loaded], &batch[at], (size_t)(n - at) * sizeof(*batch));
  uint32_t k = at;
  for (uint32_t i = 0; i < w->n_params; i++) {
    struct rw__param *p = &w->params[i];
    if (!p->loaded)
      continue;
    struct rw__pending_event *e = &batch[k++];
    memset(e, 0, sizeof(*e));
    e->time = c->pos;
    e->ev.kind = RW_EV_PARAM;
    e->ev.u.param.id = p->id;
    e->ev.u.param.value = p->value;
    p->loaded = 0;
  }
  n += w->n_loaded;
  w->n_loaded = 0;
  return n;
}

/*
 * Collects the events for chunk c: those held back from the previous block,
 * then records from the ring with time < c->pos + c->frames, and the values
 * a state load set. Returns the number of frames the block may have:
 * c->frames, or fewer when more than RW_MAX_BLOCK_EVENTS events fall inside
 * it (the block then ends where the first event that did not fit lies, at
 * least one frame in). Returns RW_ERR_PROTOCOL when the ring's positions are
 * impossible.
 */
static int gather_events(rw_worker *w, const struct shm_tl_chunk *c, uint32_t *n_out) {
  const uint64_t end = c->pos + c->frames;
  /* No honest event lies a whole ring ahead of the input it belongs to. */
  const uint64_t horizon = end + w->seg.layout.capacity;
  struct rw__pending_event *batch = w->batch;
  uint32_t n = 0;
  uint32_t frames = c->frames;
  int full = 0;
  /*
   * Room for the loaded values (at most RW_MAX_PARAMS). Only a flood of held
   * back events leaves none; then they wait for a block with room.
   */
  uint32_t loaded = w->n_carry + w->n_loaded <= RW_MAX_BLOCK_EVENTS ? w->n_loaded : 0;
  const uint32_t limit = RW_MAX_BLOCK_EVENTS - loaded;

  for (uint32_t i = 0; i < w->n_carry; i++) {
    batch[n] = w->carry[i];
    batch[n].ev.offset = offset_in(c, batch[n].time);
    n++;
  }
  w->n_carry = 0;

  for (;;) {
    struct rw_record rec;
    int rc = shm_spsc_peek(&w->events, &rec);
    if (rc < 0) {
      rw__set_error(w, "the event ring's write position is impossible; the segment is corrupt");
      return RW_ERR_PROTOCOL;
    }
    if (rc == 0 || (rec.time >= end && rec.time < horizon))
      break;
    rw_event ev;
    if (rec.time >= horizon || !convert_record(w, &rec, &ev)) {
      shm_spsc_pop(&w->events, NULL);
      w->stats.events_invalid++;
      continue;
    }
    ev.offset = offset_in(c, rec.time);
    if (n >= limit) {
      /* Leave it in the ring; the block stops short of it. */
      full = 1;
      frames = ev.offset > 0 ? ev.offset : 1;
      break;
    }
    shm_spsc_pop(&w->events, NULL);
    batch[n].time = rec.time;
    batch[n].ev = ev;
    n++;
  }

  sort_by_offset(batch, n);
  if (full) {
    /* Events the shortened block cannot hold (only an unsorted ring leaves any) wait a block. */
    while (n > 0 && batch[n - 1].ev.offset >= frames)
      w->carry[w->n_carry++] = batch[--n];
    /* Keep the carried events in ring order for the next gather. */
    for (uint32_t i = 0; i < w->n_carry / 2; i++) {
      struct rw__pending_event t = w->carry[i];
      w->carry[i] = w->carry[w->n_carry - 1 - i];
      w->carry[w->n_carry - 1 - i] = t;
    }
  }
  if (loaded > 0)
    n = insert_loaded(w, c, n);

  for (uint32_t i = 0; i < n; i++) {
    w->block_events[i] = batch[i].ev;
    if (batch[i].time < c->pos)
      w->stats.events_late++;
    if (batch[i].ev.kind == RW_EV_PARAM) {
      struct rw__param *p = find_param(w, batch[i].ev.u.param.id);
      if (p != NULL)
        p->value = batch[i].ev.u.param.value;
    }
  }
  w->stats.events += n;
  *n_out = n;
  return (int)frames;
}

static void fill_block(rw_worker *w, rw_block *b, uint32_t n_events) {
  memset(b, 0, sizeof(*b));
  b->frames = w->cur.frames;
  b->n_inputs = w->info.n_inputs;
  b->n_outputs = w->info.n_outputs;
  b->inputs = (const float *const *)w->in_ptrs;
  b->outputs = w->out_ptrs;
  b->events = w->block_events;
  b->n_events = n_events;
  b->position = w->cur.pos;
  b->latency = w->info.latency;
  b->sample_rate = w->info.sample_rate;
  b->discontinuity = w->discontinuity_pending;
  b->skipped = w->skipped_pending;

  /* A plugin that forgets a channel plays silence, not the previous block. */
  for (uint32_t c = 0; c < w->info.n_outputs; c++)
    memset(w->out_ptrs[c], 0, (size_t)b->frames * sizeof(float));
}

/* Plans a chunk and reads its input. Returns its frames, 0 when none is pending, or < 0. */
static int plan_chunk(rw_worker *w) {
  for (;;) {
    int rc = shm_tl_worker_plan(&w->tl, w->max_block, &w->cur);
    if (rc < 0) {
      rw__set_error(w, "the slot's input positions are impossible; the segment is corrupt");
      return RW_ERR_PROTOCOL;
    }
    if (w->cur.skipped > 0) {
      w->skipped_pending += w->cur.skipped;
      w->discontinuity_pending = 1;
    }
    if (rc == 0)
      return 0;
    if (shm_tl_worker_read_input(&w->tl, &w->cur, w->in_ptrs) == 0)
      return rc;
    /* The daemon overwrote the input while we copied it: plan again, which skips past it. */
    w->discontinuity_pending = 1;
  }
}

/*
 * Sleeping until wake_frames of input have arrived. The daemon publishes
 * when its cycles happen (the clock reference, shm/wake.h), so the worker
 * sets its own timer just after the cycle that brings the input, and tells
 * the daemon to wake it only a period later (wake_frames + period): while
 * the timer is on time the daemon's RT thread never pays for a FUTEX_WAKE
 * (about 7 us on a VM, per slot and cycle). A timer that finds the input not
 * there yet (the cycle came later than predicted) is early: the worker looks
 * again a slack later, RW__LATE_RETRIES times, and only then asks to be woken
 * the moment the input arrives; so it does without a fresh reference (a new
 * slot, a stopped graph), in slices that bound how late it notices a stop.
 *
 * The slack after the predicted cycle covers the daemon's jitter from cycle
 * to cycle: a quarter period, at least RW__TIMER_SLACK_MIN_NS. A pause that
 * starts as the worker wakes has L minus that slack (and the block's own
 * work) before the output it owes is due.
 */
#define RW__TIMER_SLACK_MIN_NS (100 * 1000LL)
#define RW__LATE_RETRIES 2
/* A reference older than this many periods (plus 100 ms) means the graph stopped. */
#define RW__CLOCK_STALE_PERIODS 64

struct sleep_plan {
  uint32_t want;    /* the wake_frames the daemon sees */
  int64_t until_ns; /* end of this sleep */
  int timer;        /* until_ns is the worker's own timer for the input */
};

static void plan_sleep(rw_worker *w, int64_t now, struct sleep_plan *p) {
  const struct rw_segment_header *h = &w->seg.layout;
  struct shm_clock clk;

  p->want = w->wake_frames;
  p->until_ns = now + RW__WAIT_SLICE_NS;
  p->timer = 0;
  int early = w->timer_armed && now >= w->timer_due_ns;
  w->timer_armed = 0;
  if (early)
    w->early_wakes++;
  if (shm_clock_read(w->seg.ctl.d, &clk) != 0)
    return;
  int64_t period_ns = (int64_t)clk.period * 1000000000LL / h->sample_rate;
  int64_t age = now - (int64_t)clk.ns;
  if (age > RW__CLOCK_STALE_PERIODS * period_ns + 100 * 1000000LL || age < -1000000000LL)
    return;
  int64_t slack = period_ns / 4 > RW__TIMER_SLACK_MIN_NS ? period_ns / 4 : RW__TIMER_SLACK_MIN_NS;
  int64_t due = shm_clock_due_ns(&clk, h->sample_rate, w->tl.pos + w->wake_frames) + slack;
  if (early || due <= now) {
    /* The cycle is later than predicted: look again a slack later, a few times. */
    if (w->late_retries >= RW__LATE_RETRIES)
      return; /* the daemon wakes us when the input arrives */
    w->late_retries++;
    due = now + slack;
  }
  uint64_t fallback = (uint64_t)w->wake_frames + clk.period;
  p->want = fallback < h->capacity ? (uint32_t)fallback : h->capacity;
  p->timer = 1;
  if (due < p->until_ns)
    p->until_ns = due;
  w->timer_armed = 1;
  w->timer_due_ns = due;
}

int rw_worker_next(rw_worker *w, rw_block *block, int timeout_ms) {
  if (w == NULL || block == NULL)
    return RW_ERR_INVALID;
  if (w->in_block) {
    rw__set_error(w, "rw_worker_next called before rw_worker_done for the previous block");
    return RW_ERR_INVALID;
  }
  if (w->in_state_handler) {
    rw__set_error(w, "rw_worker_next called from a state handler");
    return RW_ERR_INVALID;
  }
  if (!w->published) {
    /*
     * Release: the info block (whose flags now say whether state handlers
     * are set) and our ring positions are complete before the daemon sees a
     * pid, which for it means "attached".
     */
    rw__info_set_flags(w);
    atomic_store_explicit(&w->seg.ctl.w->worker_pid, (uint32_t)w->pid, memory_order_release);
    w->published = 1;
  }
  int64_t deadline = timeout_ms >= 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : -1;

  for (;;) {
    /* Relaxed: see rw_worker_request_stop. */
    if (atomic_load_explicit(&w->stop, memory_order_relaxed)) {
      rw__set_error(w, "stop requested");
      return RW_ERR_CLOSED;
    }
    /*
     * Between two blocks: the only place state changes. Here on entry (so a
     * request waiting at attach is applied before the first block) and after
     * every wait slice (so an idle worker answers within one).
     */
    rw__state_poll(w);
    int rc = plan_chunk(w);
    if (rc < 0)
      return rc;
    if (rc > 0) {
      w->timer_armed = 0;
      w->late_retries = 0;
      break;
    }

    int64_t now = now_ns();
    struct sleep_plan sp;
    plan_sleep(w, now, &sp);
    if (deadline >= 0) {
      if (deadline <= now)
        return 0;
      if (deadline < sp.until_ns)
        sp.until_ns = deadline;
    }
    rc = shm_wake_wait(&w->seg.ctl, w->tl.pos, sp.want, sp.until_ns - now);
    w->sleeps++;
    if (rc == -ETIMEDOUT && sp.timer && now_ns() >= w->timer_due_ns)
      w->timer_wakes++;
    /* Checked only after sleeping: a busy worker pays nothing for it. */
    if (rw__daemon_gone(w)) {
      rw__set_error(w, "runwayd went away");
      return RW_ERR_CLOSED;
    }
  }

  uint32_t n_events = 0;
  int frames = gather_events(w, &w->cur, &n_events);
  if (frames < 0)
    return frames;
  w->cur.frames = (uint32_t)frames;

  fill_block(w, block, n_events);
  if (w->discontinuity_pending) {
    w->fade_pos = 0;
    w->stats.discontinuities++;
  }
  w->stats.skipped_frames += w->skipped_pending;
  w->stats.blocks++;
  w->stats.frames += w->cur.frames;
  w->discontinuity_pending = 0;
  w->skipped_pending = 0;
  w->out_pos = w->cur.pos + w->info.latency;
  w->in_block = 1;
  return 1;
}

/* Linear fade-in over the first RW_FADE_IN_FRAMES frames after a discontinuity. */
static void apply_fade(rw_worker *w, uint32_t frames) {
  if (w->fade_pos >= RW_FADE_IN_FRAMES)
    return;
  uint32_t n = RW_FADE_IN_FRAMES - w->fade_pos;
  if (n > frames)
    n = frames;
  for (uint32_t c = 0; c < w->info.n_outputs; c++) {
    float *out = w->out_ptrs[c];
    for (uint32_t k = 0; k < n; k++)
      out[k] *= (float)(w->fade_pos + k + 1) / (float)RW_FADE_IN_FRAMES;
  }
  w->fade_pos += n;
}

int rw_worker_done(rw_worker *w, rw_block *block) {
  if (w == NULL || block == NULL)
    return RW_ERR_INVALID;
  if (!w->in_block) {
    rw__set_error(w, "rw_worker_done without a block from rw_worker_next");
    return RW_ERR_INVALID;
  }
  apply_fade(w, w->cur.frames);
  /* The chunk is ours, not the block's: a plugin that changed block->frames cannot move time. */
  shm_tl_worker_write_output(&w->tl, &w->cur, (const float *const *)w->out_ptrs);
  shm_tl_worker_commit(&w->tl, &w->cur);
  w->out_pos = w->tl.pos + w->info.latency;
  w->in_block = 0;
  return 0;
}

static int send_message(rw_worker *w, struct rw_record *rec) {
  rec->time = w->out_pos;
  int rc = shm_spsc_push(&w->messages, rec);
  if (rc == 0)
    return 0;
  if (rc == -ENOSPC) {
    w->stats.messages_dropped++;
    atomic_fetch_add_explicit(&w->seg.ctl.w->counters.events_dropped, 1, memory_order_relaxed);
    return RW_ERR_NOMEM;
  }
  rw__set_error(w, "the message ring's read position is impossible; the segment is corrupt");
  return RW_ERR_PROTOCOL;
}

int rw_worker_send_param(rw_worker *w, uint32_t id, float value) {
  if (w == NULL || !isfinite(value))
    return RW_ERR_INVALID;
  struct rw_record rec = {.type = RW_EVENT_PARAM_OUT};
  rec.u.param.id = id;
  rec.u.param.value = value;
  return send_message(w, &rec);
}

int rw_worker_send_meter(rw_worker *w, uint32_t channel, float peak) {
  if (w == NULL || !isfinite(peak))
    return RW_ERR_INVALID;
  struct rw_record rec = {.type = RW_EVENT_METER};
  rec.u.meter.channel = channel;
  rec.u.meter.peak = peak;
  return send_message(w, &rec);
}
