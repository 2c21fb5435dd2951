/*
 * A slot's audio rings and the timing model of DESIGN.md.
 *
 * Positions are absolute 64-bit frames of the slot's timeline. At a cycle of n
 * frames starting at t the daemon writes input [t, t+n), publishes
 * in_write = t+n, reads output [t, t+n) and publishes out_read = t+n. The
 * worker turns input position i into output position i + L, so
 * out_write = in_read + L always holds for what it publishes. At creation
 * out_write = L: positions [0, L) are silence.
 *
 * The daemon end (shm_tl_daemon_*) is RT safe: it never blocks, never
 * allocates, and validates every position the worker published. The worker
 * end (shm_tl_worker_*) never blocks either; sleeping is shm/wake.h's job.
 */
#ifndef RUNWAY_SHM_TIMELINE_H
#define RUNWAY_SHM_TIMELINE_H

#include <stdint.h>

#include <runway/segment.h>

#include "segment.h"

/* Geometry both ends copy from the segment's private header snapshot. */
struct shm_tl_geom {
  struct shm_ctl ctl;
  float *in;  /* n_in rings, stride floats apart */
  float *out; /* n_out rings */
  uint32_t n_in;
  uint32_t n_out;
  uint32_t stride;
  uint32_t capacity; /* power of two */
  uint32_t latency;  /* L */
  uint32_t max_period;
};

void shm_tl_geom_from_segment(struct shm_tl_geom *g, const struct shm_segment *seg);

/* ---- daemon end ---------------------------------------------------------- */

struct shm_tl_daemon {
  struct shm_tl_geom g;
  uint64_t pos; /* t, the start of the current cycle; private, never read back */
  int64_t fill; /* out_write - t seen by the last read: the worker's lead (headroom) */
  /* The input gap last published (struct rw_input_gap); private, never read back. */
  uint64_t gap_start;
  uint64_t gap_end;
};

/* Starts at timeline position 0 of a freshly created segment. */
void shm_tl_daemon_init(struct shm_tl_daemon *d, const struct shm_segment *seg);

/*
 * Step 1: copies input frames [t, t+n) (a NULL channel is silence) and
 * publishes in_write = t+n. n must be in 1..max_period; larger cycles are
 * split by the caller. Returns the worker's input backlog after the write
 * (in_write - in_read), or -EPROTO when in_read is ahead of in_write (the
 * worker claims input that does not exist yet), or -EINVAL for a bad n (then
 * nothing is written). A backlog above capacity - max_period means the worker
 * is losing input: an overrun. RT safe.
 */
int64_t shm_tl_daemon_write_input(struct shm_tl_daemon *d, const float *const *src, uint32_t n);

/*
 * Steps 3 and 4: reads output positions [t, t+n) into dst, zero-fills the
 * positions the worker has not written, publishes out_read = t+n and advances
 * t by n. Returns the number of frames at the start of dst that came from the
 * worker (n when there was no underrun), or -EPROTO when out_write is
 * impossible (beyond in_write + L): then dst is all zero. Time advances for
 * every valid n; a bad n (0 or above max_period) zero-fills dst, returns
 * -EINVAL and leaves time alone. RT safe.
 */
int shm_tl_daemon_read_output(struct shm_tl_daemon *d, float *const *dst, uint32_t n);

/*
 * Advances the timeline by frames the graph played without a cycle of ours
 * (the server skipped us after an xrun), so the slot stays aligned with the
 * graph clock: input for them is silence, their output is never played.
 * Whatever the gap, this is a few stores: the input ring is not touched, the
 * skipped range is published as the segment's input gap (struct
 * rw_input_gap), which the worker end reads as silence. A gap that comes
 * before the worker has read past the previous one extends it. RT safe.
 */
void shm_tl_daemon_skip(struct shm_tl_daemon *d, uint64_t frames);

/*
 * For a generation that takes over from another (a seamless replacement):
 * copies the last `frames` input frames `from` wrote (before from->pos) into
 * d's input ring at d->pos, advances d->pos past them and publishes in_write,
 * so the new worker starts on recent history (what from's last input gap
 * covers arrives as silence, as from's worker read it). Channels beyond the smaller
 * count are left alone. frames must fit both rings (from->g.capacity and
 * d->g.capacity - d->g.max_period); the caller clamps. out_read is not
 * published. RT safe.
 */
void shm_tl_daemon_copy_history(struct shm_tl_daemon *d, const struct shm_tl_daemon *from,
                                uint32_t frames);

/* out_write - t as the worker published it now (acquire): its lead before this cycle's read. */
int64_t shm_tl_daemon_fill(const struct shm_tl_daemon *d);

/*
 * Advances t by n after step 1 without reading output or publishing
 * out_read: a generation warming up beside the one that plays. Its worker
 * then never sees itself late, whatever it has still to catch up. RT safe.
 */
void shm_tl_daemon_pass(struct shm_tl_daemon *d, uint32_t n);

/* ---- worker end ---------------------------------------------------------- */

struct shm_tl_worker {
  struct shm_tl_geom g;
  uint64_t pos; /* next input position to process (published as in_read) */
};

/*
 * One unit of work: input [pos, pos + frames) turns into output
 * [pos + L, pos + L + frames). skipped > 0 means the worker jumped forward by
 * that many input frames just before pos (it was late or its input was
 * overwritten): the plugin must treat the chunk as a discontinuity.
 */
struct shm_tl_chunk {
  uint64_t pos;
  uint32_t frames;
  uint64_t skipped;
};

/*
 * Resumes where the published output ends: pos = out_write - L, which keeps
 * the alignment across a worker restart in the same segment. Returns 0 or
 * -EPROTO when the published positions are impossible.
 */
int shm_tl_worker_init(struct shm_tl_worker *w, const struct shm_segment *seg);

/* Input frames ready past pos, or -EPROTO when in_write is behind pos. */
int64_t shm_tl_worker_pending(struct shm_tl_worker *w);

/*
 * Plans the next chunk of at most max_frames. When the output for pos would
 * be late (pos + L < out_read) or the input at pos was, or may be while we
 * copy it, overwritten, skips forward first: to out_read - L, the input
 * whose output the reader needs next (no margin: the silence between is the
 * daemon's to play and count as an underrun), or past the overwritten input,
 * never past in_write. Output positions between the old and new write
 * position that the reader has not passed are written as silence and
 * published, the skip is counted in the segment and returned in c->skipped.
 * Returns c->frames (0 when no input is pending) or -EPROTO.
 */
int shm_tl_worker_plan(struct shm_tl_worker *w, uint32_t max_frames, struct shm_tl_chunk *c);

/*
 * Copies the chunk's input into dst[0..n_in), with the frames inside the
 * daemon's input gap as silence. Returns 0, or -ESTALE when the daemon may
 * have overwritten part of it during the copy; the caller then drops the
 * chunk and plans again (which skips).
 */
int shm_tl_worker_read_input(struct shm_tl_worker *w, const struct shm_tl_chunk *c,
                             float *const *dst);

/* Writes the chunk's output (a NULL channel is silence); not visible until commit. */
void shm_tl_worker_write_output(struct shm_tl_worker *w, const struct shm_tl_chunk *c,
                                const float *const *src);

/* Publishes out_write = pos + L + frames, then in_read = pos + frames. */
void shm_tl_worker_commit(struct shm_tl_worker *w, const struct shm_tl_chunk *c);

#endif
