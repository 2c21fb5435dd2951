/*
 * In-process command queue: an SPSC record ring in private memory, from the
 * control thread (producer) to the RT thread (consumer). Create and destroy are
 * not RT safe; the ends (shm_spsc_push / shm_spsc_pop on q->tx / q->rx) are.
 */
#ifndef RUNWAY_SHM_QUEUE_H
#define RUNWAY_SHM_QUEUE_H

#include <stdalign.h>

#include <runway/segment.h>

#include "spsc.h"

struct shm_queue {
  struct rw_position write_pos;
  struct rw_position read_pos;
  struct shm_spsc_producer tx;                        /* used only by the producing thread */
  alignas(RW_CACHE_LINE) struct shm_spsc_consumer rx; /* used only by the consuming thread */
  void *storage;
};

/* capacity is rounded up to a power of two. Returns 0 or -ENOMEM / -EINVAL. */
int shm_queue_init(struct shm_queue *q, uint32_t record_size, uint32_t capacity);
void shm_queue_destroy(struct shm_queue *q);

#endif
