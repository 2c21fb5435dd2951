#include "timeline.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "segment.h"

void shm_tl_geom_from_segment(struct shm_tl_geom *g, const struct shm_segment *seg) {
  const struct rw_segment_header *h = &seg->layout;
  g->ctl = seg->ctl;
  g->in = seg->audio_in;
  g->out = seg->audio_out;
  g->n_in = h->n_inputs;
  g->n_out = h->n_outputs;
  g->stride = h->channel_stride;
  g->capacity = h->capacity;
  g->latency = h->latency;
  g->max_period = h->max_period;
}

/* Copies n frames into ring position pos, split in two where it wraps. */
static void ring_put(float *ring, uint32_t capacity, uint64_t pos, const float *src, uint32_t n) {
  uint32_t idx = (uint32_t)(pos & (capacity - 1));
  uint32_t first = capacity - idx;
  if (first > n)
    first = n;
  /* Periods and capacity are powers of two, so the wrapped second half is rare. */
  if (src != NULL) {
    memcpy(ring + idx, src, first * sizeof(float));
    if (n > first)
      memcpy(ring, src + first, (n - first) * sizeof(float));
  } else {
    memset(ring + idx, 0, first * sizeof(float));
    if (n > first)
      memset(ring, 0, (n - first) * sizeof(float));
  }
}

static void ring_get(const float *ring, uint32_t capacity, uint64_t pos, float *dst, uint32_t n) {
  uint32_t idx = (uint32_t)(pos & (capacity - 1));
  uint32_t first = capacity - idx;
  if (first > n)
    first = n;
  memcpy(dst, ring + idx, first * sizeof(float));
  if (n > first)
    memcpy(dst + first, ring, (n - first) * sizeof(float));
}

/* ---- daemon end ---------------------------------------------------------- */

void shm_tl_daemon_init(struct shm_tl_daemon *d, const struct shm_segment *seg) {
  shm_tl_geom_from_segment(&d->g, seg);
  d->pos = 0;
  d->fill = 0;
  d->gap_start = 0;
  d->gap_end = 0;
}

int64_t shm_tl_daemon_write_input(struct shm_tl_daemon *d, const float *const *src, uint32_t n) {
  const struct shm_tl_geom *g = &d->g;
  if (n == 0 || n > g->max_period)
    return -EINVAL;

  /*
   * Acquire: the worker's reads of input it has released happen before we
   * overwrite those frames (a capacity later), which is what lets it trust
   * any frame it copied before in_read moved.
   */
  uint64_t in_read = atomic_load_explicit(&g->ctl.w->in_read.value, memory_order_acquire);

  /*
   * The input ring is a seqlock's data: a worker that fell a capacity behind
   * may be copying frames we overwrite now, and read_input detects that
   * afterwards and drops the copy. The release fence orders our previous
   * in_write store before these overwrites (the writer half of the seqlock:
   * a worker that sees a torn frame also sees an in_write that says so; x86
   * gives this for free, AArch64 needs the barrier). The copies stay plain
   * memcpy: daemon and worker are separate processes, and relaxed atomic
   * word copies, which would make the overlap race-free in C11 terms within
   * one process, cost 3x the copy here (tests/stress/README.md).
   */
  atomic_thread_fence(memory_order_release);
  for (uint32_t c = 0; c < g->n_in; c++)
    ring_put(g->in + (size_t)c * g->stride, g->capacity, d->pos, src ? src[c] : NULL, n);

  uint64_t in_write = d->pos + n;
  /*
   * seq_cst, not just release: besides publishing the frames, this store and
   * the worker's store of `sleeping` form a Dekker pair with the loads that
   * follow each of them (shm/wake.c), so a worker going to sleep cannot miss
   * this input.
   */
  atomic_store_explicit(&g->ctl.d->in_write.value, in_write, memory_order_seq_cst);

  if (in_read > in_write)
    return -EPROTO;
  return (int64_t)(in_write - in_read);
}

int shm_tl_daemon_read_output(struct shm_tl_daemon *d, float *const *dst, uint32_t n) {
  const struct shm_tl_geom *g = &d->g;
  uint64_t t = d->pos;
  int result;

  if (n == 0 || n > g->max_period) {
    for (uint32_t c = 0; c < g->n_out; c++)
      memset(dst[c], 0, (size_t)n * sizeof(float));
    return -EINVAL;
  }

  /* Acquire: pairs with the worker's release of out_write, so frames below it are complete. */
  uint64_t out_write = atomic_load_explicit(&g->ctl.w->out_write.value, memory_order_acquire);
  int64_t fill = (int64_t)(out_write - t);
  uint32_t valid;
  d->fill = fill;

  /*
   * An honest worker never publishes past in_write + L, and we published
   * in_write = t + n before this read: anything beyond is a scribble.
   */
  if (fill > (int64_t)n + g->latency) {
    valid = 0;
    result = -EPROTO;
  } else if (fill <= 0) {
    valid = 0;
    result = 0;
  } else {
    valid = fill >= (int64_t)n ? n : (uint32_t)fill;
    result = (int)valid;
  }

  for (uint32_t c = 0; c < g->n_out; c++) {
    if (valid > 0)
      ring_get(g->out + (size_t)c * g->stride, g->capacity, t, dst[c], valid);
    if (valid < n)
      memset(dst[c] + valid, 0, (size_t)(n - valid) * sizeof(float));
  }

  d->pos = t + n;
  /* Release: our reads of [t, t+n) are done before the worker may reuse those places. */
  atomic_store_explicit(&g->ctl.d->out_read.value, d->pos, memory_order_release);
  return result;
}

void shm_tl_daemon_skip(struct shm_tl_daemon *d, uint64_t frames) {
  const struct shm_tl_geom *g = &d->g;
  struct rw_input_gap *gap = &g->ctl.d->gap;
  if (frames == 0)
    return;
  /*
   * Relaxed: in_read only decides whether the worker still has the last gap
   * ahead of it; a worker that lies about it only changes its own input.
   */
  uint64_t in_read = atomic_load_explicit(&g->ctl.w->in_read.value, memory_order_relaxed);
  if (d->gap_end == d->gap_start || in_read >= d->gap_end)
    d->gap_start = d->pos;
  d->gap_end = d->pos + frames;
  /* start before end, end with release: see struct rw_input_gap for why a reader needs no more. */
  atomic_store_explicit(&gap->start, d->gap_start, memory_order_relaxed);
  atomic_store_explicit(&gap->end, d->gap_end, memory_order_release);
  d->pos += frames;
  /* seq_cst, as in write_input: the Dekker pair with a worker going to sleep. */
  atomic_store_explicit(&g->ctl.d->in_write.value, d->pos, memory_order_seq_cst);
  /* Release: nothing of the skipped output will be read. */
  atomic_store_explicit(&g->ctl.d->out_read.value, d->pos, memory_order_release);
}

void shm_tl_daemon_copy_history(struct shm_tl_daemon *d, const struct shm_tl_daemon *from,
                                uint32_t frames) {
  const struct shm_tl_geom *g = &d->g, *f = &from->g;
  uint32_t n_ch = g->n_in < f->n_in ? g->n_in : f->n_in;
  uint64_t src = from->pos - frames, dst = d->pos;
  atomic_thread_fence(memory_order_release); /* as in write_input: the seqlock's writer half */
  for (uint32_t left = frames; left > 0;) {
    /* The longest piece that wraps in neither ring. */
    uint32_t si = (uint32_t)(src & (f->capacity - 1)), di = (uint32_t)(dst & (g->capacity - 1));
    uint32_t k = left;
    if (k > f->capacity - si)
      k = f->capacity - si;
    if (k > g->capacity - di)
      k = g->capacity - di;
    /* ... and lies wholly inside or outside from's last gap, which reads as silence. */
    bool in_gap = src >= from->gap_start && src < from->gap_end;
    if (in_gap && from->gap_end - src < k)
      k = (uint32_t)(from->gap_end - src);
    else if (!in_gap && src < from->gap_start && from->gap_start - src < k)
      k = (uint32_t)(from->gap_start - src);
    for (uint32_t c = 0; c < n_ch; c++) {
      float *to = g->in + (size_t)c * g->stride + di;
      if (in_gap)
        memset(to, 0, (size_t)k * sizeof(float));
      else
        memcpy(to, f->in + (size_t)c * f->stride + si, (size_t)k * sizeof(float));
    }
    src += k;
    dst += k;
    left -= k;
  }
  d->pos += frames;
  /* seq_cst, as in write_input: the Dekker pair with a worker going to sleep. */
  atomic_store_explicit(&g->ctl.d->in_write.value, d->pos, memory_order_seq_cst);
}

int64_t shm_tl_daemon_fill(const struct shm_tl_daemon *d) {
  /* Acquire: pairs with the worker's release of out_write, as in read_output. */
  uint64_t out_write = atomic_load_explicit(&d->g.ctl.w->out_write.value, memory_order_acquire);
  return (int64_t)(out_write - d->pos);
}

void shm_tl_daemon_pass(struct shm_tl_daemon *d, uint32_t n) { d->pos += n; }

/* ---- worker end ---------------------------------------------------------- */

int shm_tl_worker_init(struct shm_tl_worker *w, const struct shm_segment *seg) {
  shm_tl_geom_from_segment(&w->g, seg);
  const struct shm_tl_geom *g = &w->g;
  uint64_t out_write = atomic_load_explicit(&g->ctl.w->out_write.value, memory_order_acquire);
  uint64_t in_write = atomic_load_explicit(&g->ctl.d->in_write.value, memory_order_acquire);
  if (out_write < g->latency || out_write - g->latency > in_write)
    return -EPROTO;
  w->pos = out_write - g->latency;
  /* Release: nothing to order; in_read just catches up with what out_write already says. */
  atomic_store_explicit(&g->ctl.w->in_read.value, w->pos, memory_order_release);
  return 0;
}

int64_t shm_tl_worker_pending(struct shm_tl_worker *w) {
  /* Acquire: pairs with the daemon's store of in_write; input below it is complete. */
  uint64_t in_write = atomic_load_explicit(&w->g.ctl.d->in_write.value, memory_order_acquire);
  if (in_write < w->pos || in_write - w->pos > INT64_MAX)
    return -EPROTO;
  return (int64_t)(in_write - w->pos);
}

int shm_tl_worker_plan(struct shm_tl_worker *w, uint32_t max_frames, struct shm_tl_chunk *c) {
  const struct shm_tl_geom *g = &w->g;
  struct rw_daemon_control *dctl = g->ctl.d;
  struct rw_worker_control *wctl = g->ctl.w;

  /*
   * Acquire on out_read: the daemon's reads of output below it happened
   * before we overwrite those places. Loaded before in_write so that, for an
   * honest daemon (which publishes in_write first), out_read <= in_write.
   */
  uint64_t out_read = atomic_load_explicit(&dctl->out_read.value, memory_order_acquire);
  uint64_t in_write = atomic_load_explicit(&dctl->in_write.value, memory_order_acquire);
  if (in_write < w->pos || out_read > in_write)
    return -EPROTO;

  uint64_t target = w->pos;
  /*
   * The daemon may be writing up to max_period frames past in_write right
   * now. Comparisons are arranged so that no sum can wrap, whatever the
   * (untrusted) positions are.
   */
  if (in_write - target > g->capacity - g->max_period)
    target = in_write - (g->capacity - g->max_period);
  /*
   * Late: output for pos would play before the reader. Resume at the first
   * input whose output the reader still needs, out_read - L, and not a
   * margin beyond: every frame of a margin would be silence the listener
   * hears and the daemon cannot count (it plays it as the worker's output).
   * If the first block then misses the next cycle too, the daemon counts
   * that cycle as an underrun and the next plan skips again: the gap is
   * exactly as long as the worker was unable to play.
   */
  if (out_read > target && out_read - target > g->latency)
    target = out_read - g->latency;
  if (target > in_write)
    target = in_write;

  c->skipped = target - w->pos;
  if (c->skipped > 0) {
    /*
     * Output positions [old write position, new one) will never be computed.
     * Those the reader has not passed yet must not replay a capacity-old
     * frame: write them as silence. They lie at or beyond out_write, which
     * the daemon never reads before we publish, so this cannot race its read.
     */
    uint64_t from = w->pos + g->latency;
    uint64_t to = target + g->latency;
    if (from < out_read)
      from = out_read;
    if (to > from) {
      uint64_t len = to - from;
      if (len > g->capacity)
        len = g->capacity;
      for (uint32_t ch = 0; ch < g->n_out; ch++)
        ring_put(g->out + (size_t)ch * g->stride, g->capacity, from, NULL, (uint32_t)len);
    }
    w->pos = target;
    /* Release: the silence written above is complete before the daemon sees out_write. */
    atomic_store_explicit(&wctl->out_write.value, target + g->latency, memory_order_release);
    atomic_store_explicit(&wctl->in_read.value, target, memory_order_release);
    atomic_fetch_add_explicit(&wctl->counters.skipped_frames, c->skipped, memory_order_relaxed);
    atomic_fetch_add_explicit(&wctl->counters.discontinuities, 1, memory_order_relaxed);
  }

  uint64_t avail = in_write - w->pos;
  c->pos = w->pos;
  c->frames = avail > max_frames ? max_frames : (uint32_t)avail;
  return (int)c->frames;
}

/* Zeroes the chunk's frames that lie in the daemon's input gap (struct rw_input_gap). */
static void silence_gap(const struct shm_tl_geom *g, const struct shm_tl_chunk *c,
                        float *const *dst) {
  const struct rw_input_gap *gap = &g->ctl.d->gap;
  /* Acquire, end before start: pairs with the daemon's release of end (see rw_input_gap). */
  uint64_t end = atomic_load_explicit(&gap->end, memory_order_acquire);
  uint64_t start = atomic_load_explicit(&gap->start, memory_order_relaxed);
  uint64_t from = start > c->pos ? start : c->pos;
  uint64_t to = end < c->pos + c->frames ? end : c->pos + c->frames;
  if (from >= to)
    return;
  for (uint32_t ch = 0; ch < g->n_in; ch++)
    memset(dst[ch] + (from - c->pos), 0, (size_t)(to - from) * sizeof(float));
}

int shm_tl_worker_read_input(struct shm_tl_worker *w, const struct shm_tl_chunk *c,
                             float *const *dst) {
  const struct shm_tl_geom *g = &w->g;
  for (uint32_t ch = 0; ch < g->n_in; ch++)
    ring_get(g->in + (size_t)ch * g->stride, g->capacity, c->pos, dst[ch], c->frames);

  /*
   * Seqlock-style check: the acquire fence keeps the copies above before the
   * load below, so if in_write still leaves the chunk out of the daemon's
   * reach (it may be writing up to max_period past it), the copy is intact.
   */
  atomic_thread_fence(memory_order_acquire);
  uint64_t in_write = atomic_load_explicit(&g->ctl.d->in_write.value, memory_order_relaxed);
  if (in_write - c->pos > g->capacity - g->max_period) {
    atomic_fetch_add_explicit(&g->ctl.w->counters.overwritten, 1, memory_order_relaxed);
    return -ESTALE;
  }
  silence_gap(g, c, dst);
  return 0;
}

void shm_tl_worker_write_output(struct shm_tl_worker *w, const struct shm_tl_chunk *c,
                                const float *const *src) {
  const struct shm_tl_geom *g = &w->g;
  uint64_t p = c->pos + g->latency;
  for (uint32_t ch = 0; ch < g->n_out; ch++)
    ring_put(g->out + (size_t)ch * g->stride, g->capacity, p, src ? src[ch] : NULL, c->frames);
}

void shm_tl_worker_commit(struct shm_tl_worker *w, const struct shm_tl_chunk *c) {
  struct rw_worker_control *ctl = w->g.ctl.w;
  w->pos = c->pos + c->frames;
  /*
   * Release: the output frames are complete before the daemon sees them.
   * out_write goes first: if we die between the two stores, out_write - L is
   * still the exact resume point (shm_tl_worker_init).
   */
  atomic_store_explicit(&ctl->out_write.value, w->pos + w->g.latency, memory_order_release);
  /* Release: our input reads are done before the daemon may overwrite those places. */
  atomic_store_explicit(&ctl->in_read.value, w->pos, memory_order_release);
  atomic_fetch_add_explicit(&ctl->counters.chunks, 1, memory_order_relaxed);
}
