/*
 * Bypass: while a slot's worker cannot play (dead, restarting, stalled,
 * faulted, not started yet), the slot plays its own input exactly L later,
 * so the track stays audible and in time.
 *
 * The input comes from a ring of runwayd's own (struct engine_bypass), not
 * from the segment: a worker cannot scribble on it, and it outlives the
 * generation, so the input from before a restart is still there. The edges
 * are crossfades, never steps. Where the worker's output is about to run out
 * (its out_write is in sight) bypass fades in over the worker's last
 * RW_FADE_FRAMES frames and is whole at the first missing one; where the
 * worker's output comes back, bypass plays on over the worker's first
 * RW_FADE_FRAMES frames (which the worker SDK fades in after a
 * discontinuity) and then crossfades back over the next ones. Both
 * crossfades are w + (b - w) * m / F: exact where the worker's output equals
 * its input, as through a passthrough. Only where a gap comes unannounced
 * (a fault, a generation replaced at once) does bypass fade in from the
 * worker's fading tail.
 *
 * Everything but engine_bypass_create/ref/unref runs on the RT thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

int engine_bypass_create(uint32_t n_ch, uint32_t latency, struct engine_bypass **out) {
  if (n_ch > RW_MAX_CHANNELS || latency == 0 || latency > RW_MAX_CAPACITY / 2)
    return -EINVAL;
  struct engine_bypass *bp = calloc(1, sizeof(*bp));
  if (bp == NULL)
    return -ENOMEM;
  /* Room for L frames of history and a whole cycle, however long the period grows. */
  uint32_t cap = 256;
  while (cap < latency + RW_MAX_PERIOD)
    cap <<= 1;
  bp->refs = 1;
  bp->n_ch = n_ch;
  bp->capacity = cap;
  bp->latency = latency;
  if (n_ch > 0 && (bp->ring = calloc((size_t)n_ch * cap, sizeof(float))) == NULL) {
    free(bp);
    return -ENOMEM;
  }
  *out = bp;
  return 0;
}

void engine_bypass_ref(struct engine_bypass *bp) {
  if (bp != NULL)
    bp->refs++;
}

void engine_bypass_unref(struct engine_bypass *bp) {
  if (bp == NULL || --bp->refs > 0)
    return;
  free(bp->ring);
  free(bp);
}

/* Copies n frames of src (NULL: silence) into ring position pos, split where it wraps. */
static void ring_put(float *ring, uint32_t capacity, uint64_t pos, const float *src, uint32_t n) {
  uint32_t idx = (uint32_t)(pos & (capacity - 1));
  uint32_t first = capacity - idx < n ? capacity - idx : n;
  if (src != NULL) {
    memcpy(ring + idx, src, (size_t)first * sizeof(float));
    memcpy(ring, src + first, (size_t)(n - first) * sizeof(float));
  } else {
    memset(ring + idx, 0, (size_t)first * sizeof(float));
    memset(ring, 0, (size_t)(n - first) * sizeof(float));
  }
}

void engine__bypass_write(struct engine_bypass *bp, const struct engine_io *io,
                          void *const *in_ports, uint32_t n_in, uint32_t n, uint32_t played) {
  /* Frames a late run played already are not the slot's again: their input is dropped. */
  bp->cycle_pos = bp->pos - played;
  const float *bufs[RW_MAX_CHANNELS];
  for (uint32_t c = 0; c < bp->n_ch && c < n_in; c++) {
    const float *in = io->audio_buffer(in_ports[c], n);
    bufs[c] = in != NULL ? in + played : NULL;
  }
  n -= played;
  /* A cycle longer than the ring holds beside L (never, within RW_MAX_PERIOD): its end only. */
  uint32_t keep = bp->capacity - bp->latency;
  uint32_t skip = n > keep ? n - keep : 0;
  for (uint32_t c = 0; c < bp->n_ch && c < n_in; c++)
    ring_put(bp->ring + (size_t)c * bp->capacity, bp->capacity, bp->pos + skip,
             bufs[c] != NULL ? bufs[c] + skip : NULL, n - skip);
  bp->pos += n;
}

void engine__bypass_skip(struct engine_bypass *bp, uint64_t frames) {
  if (frames == 0)
    return;
  /* The next reads start L before pos: past the last gap, or still to play some of it. */
  uint64_t next_read = bp->pos - bp->latency;
  if (bp->silent_end == bp->silent_start || (int64_t)(next_read - bp->silent_end) >= 0)
    bp->silent_start = bp->pos;
  bp->silent_end = bp->pos + frames;
  bp->pos += frames;
}

uint32_t engine__bypass_mix(struct engine_slot *s, float *const *dst, uint32_t valid, uint32_t k,
                            uint64_t t, int64_t fill, uint32_t off) {
  const struct engine_bypass *bp = s->bypass;
  const uint32_t F = RW_FADE_FRAMES;
  const uint32_t L = s->tl.g.latency;
  /* A generation's first L positions are silence nobody computed: never the worker's. */
  uint32_t below = t < L ? (L - t < k ? (uint32_t)(L - t) : k) : 0;
  if (valid < below)
    valid = below;

  /* The usual cycle: the worker plays, well inside its output and past its fade-in. */
  if (s->bp_mix == 0 && below == 0 && valid == k && s->bp_run_start != ENGINE_NO_RUN &&
      t - s->bp_run_start >= F && fill >= (int64_t)k + F) {
    for (uint32_t c = 0; c < s->n_out; c++)
      s->tail[c] = dst[c][k - 1];
    return 0;
  }

  const uint32_t mask = bp->capacity - 1;
  /* The input L before dst[0] (bp->pos counts the slot's frames; the cycle began at cycle_pos). */
  const uint64_t src = bp->cycle_pos + off - L;
  const float step = 1.0f / (float)F;
  uint32_t missing = 0;
  for (uint32_t i = 0; i < k; i++) {
    uint64_t p = t + i;
    bool ok = i >= below && i < valid;
    uint32_t target;
    if (!ok) {
      if (s->bp_run_start != ENGINE_NO_RUN) {
        s->bp_run_start = ENGINE_NO_RUN;
        s->bp_gap_pos = 0;
      }
      target = F;
      missing++;
    } else {
      if (s->bp_run_start == ENGINE_NO_RUN)
        s->bp_run_start = p;
      /* The worker's frames from p on; fill is untrusted but only moves the crossfade. */
      int64_t left = fill - (int64_t)i;
      if (p - s->bp_run_start < F)
        target = F; /* the worker's first frames after a gap: its own fade-in */
      else
        target = left >= (int64_t)F ? 0 : F - (uint32_t)(left > 0 ? left : 0);
    }
    /* One step per frame either way: the look-ahead ramp is exactly that steep. */
    if (target > s->bp_mix)
      s->bp_mix++;
    else if (target < s->bp_mix)
      s->bp_mix--;
    const uint32_t m = s->bp_mix;
    const uint32_t r = (uint32_t)((src + i) & mask);
    /* Input the graph skipped (unsigned: one compare for start <= src + i < end). */
    const bool skipped = src + i - bp->silent_start < bp->silent_end - bp->silent_start;
    for (uint32_t c = 0; c < s->n_out; c++) {
      float w;
      if (ok) {
        w = dst[c][i];
        s->tail[c] = w;
      } else {
        /* What the worker played last, fading out as silence would. */
        w = s->bp_gap_pos < F ? s->tail[c] * (1.0f - (float)(s->bp_gap_pos + 1) * step) : 0.0f;
      }
      float b = c < bp->n_ch && !skipped ? bp->ring[(size_t)c * bp->capacity + r] : 0.0f;
      dst[c][i] = m == 0 ? w : m == F ? b : w + (b - w) * ((float)m * step);
    }
    if (!ok && s->bp_gap_pos < F)
      s->bp_gap_pos++;
  }
  return missing;
}

void engine__bypass_note_drained(struct engine_slot *s) {
  int drained = s->bp_mix == RW_FADE_FRAMES && s->bp_run_start == ENGINE_NO_RUN;
  if (drained != atomic_load_explicit(&s->drained, memory_order_relaxed))
    atomic_store_explicit(&s->drained, drained, memory_order_relaxed);
}
