/*
 * What the files of rt/ share among themselves (engine__thing names):
 * engine.c runs a cycle of one generation, bypass.c plays a slot's own input
 * where its worker's output is missing, takeover.c runs a table entry in
 * which one generation takes over from another. All of it RT safe, apart
 * from the bypass ring's creation.
 */
#ifndef RUNWAY_DAEMON_RT_ENGINE_INTERNAL_H
#define RUNWAY_DAEMON_RT_ENGINE_INTERNAL_H

#include "engine.h"

/* Single-writer counters: a relaxed load and store is enough and avoids a locked add. */
static inline void engine__counter_add(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

/* ---- engine.c ---- */

/*
 * One cycle of n frames of generation s: its input from its ports, its
 * output into into[] (n_out buffers of n frames) or, when into is NULL, its
 * ports. Its first s->cycle_played frames are positions a late run of the
 * slot's node played already: a gap in the output, their input dropped, the
 * timeline going on from there. RT safe.
 */
void engine__slot_cycle(struct engine_slot *s, const struct engine_io *io, uint32_t n,
                        float *const *into);

/*
 * One cycle of a generation that warms up unheard: events and input as for
 * one that plays, but its output is neither read nor its reading published
 * (shm_tl_daemon_pass). RT safe.
 */
void engine__warm_cycle(struct engine_slot *s, const struct engine_io *io, uint32_t n);

/* ---- bypass.c ---- */

/*
 * This cycle's input into the slot's bypass ring, before any of its
 * generations runs; the first `played` frames were played by a late run of
 * the slot's node already (engine_process_slot) and are dropped.
 */
void engine__bypass_write(struct engine_bypass *bp, const struct engine_io *io,
                          void *const *in_ports, uint32_t n_in, uint32_t n, uint32_t played);

/* Frames the graph played without a cycle of ours: their input reads as silence (O(1)). */
void engine__bypass_skip(struct engine_bypass *bp, uint64_t frames);

/*
 * Plays bypass where generation s's worker output is missing, over the k
 * frames dst[c][0..k) at offset off of the cycle: [0, valid) came from the
 * worker, the rest is missing; t is the timeline position of dst[0] and fill
 * the worker's out_write - t (its frames from t on). Positions below L are
 * never the worker's (a generation's first L frames). Bypass fades in so
 * that it is whole at the first missing frame (the worker's last frames are
 * crossfaded into it), and out again once the worker's output is back and
 * past its own fade-in. Returns the frames the worker did not provide.
 */
uint32_t engine__bypass_mix(struct engine_slot *s, float *const *dst, uint32_t valid, uint32_t k,
                            uint64_t t, int64_t fill, uint32_t off);

/*
 * After a cycle of s: publishes whether it ended in a gap with bypass
 * playing alone (engine_slot.drained).
 */
void engine__bypass_note_drained(struct engine_slot *s);

/* ---- takeover.c ---- */

/* One cycle of a table entry whose generation next takes over from cur. */
void engine__takeover_cycle(struct engine *e, struct engine_slot *cur, struct engine_slot *next,
                            const struct engine_io *io, uint32_t n);

#endif
