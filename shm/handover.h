/*
 * The state ping-pong: a one-place hand-over of immutable objects from the
 * control thread to the RT thread, and a one-place hand-back of the object the
 * RT thread stopped using. Only the control thread ever frees, and only what
 * came back (or what it offered and the RT thread never took).
 */
#ifndef RUNWAY_SHM_HANDOVER_H
#define RUNWAY_SHM_HANDOVER_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>

#include <runway/segment.h>

struct shm_handover {
  alignas(RW_CACHE_LINE) _Atomic(void *) to_rt;
  alignas(RW_CACHE_LINE) _Atomic(void *) from_rt;
};

void shm_handover_init(struct shm_handover *h);

/*
 * Control thread: offers next for the RT thread to adopt. Returns the object
 * offered before that the RT thread never took (the caller frees it), or NULL.
 */
void *shm_handover_offer(struct shm_handover *h, void *next);

/*
 * RT thread, at the start of a cycle: returns the object to use from now on,
 * which is current unless a new one was offered and the hand-back place is
 * free, in which case current goes back. RT safe: two atomics, no waiting.
 */
void *shm_handover_adopt(struct shm_handover *h, void *current);

/* Control thread: takes back an object the RT thread released, or NULL. */
void *shm_handover_collect(struct shm_handover *h);

/* Control thread: 1 while an offered object waits for adoption. */
int shm_handover_pending(struct shm_handover *h);

#endif
