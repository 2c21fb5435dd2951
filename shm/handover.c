#include "handover.h"

void shm_handover_init(struct shm_handover *h) {
  atomic_init(&h->to_rt, NULL);
  atomic_init(&h->from_rt, NULL);
}

void *shm_handover_offer(struct shm_handover *h, void *next) {
  /*
   * acq_rel: release publishes next's contents to the RT thread; acquire
   * makes a displaced, never adopted object safe for us to free. The
   * exchange is the only way either thread takes from to_rt, so an object
   * we get back here was never seen by the RT thread.
   */
  return atomic_exchange_explicit(&h->to_rt, next, memory_order_acq_rel);
}

void *shm_handover_adopt(struct shm_handover *h, void *current) {
  /* Relaxed peek: from_rt is only ever emptied by the control thread; we fill it below. */
  if (atomic_load_explicit(&h->from_rt, memory_order_relaxed) != NULL)
    return current; /* the last hand-back is not collected yet; adopt next cycle */
  /* Acquire: everything the control thread wrote into next is visible before we use it. */
  void *next = atomic_exchange_explicit(&h->to_rt, NULL, memory_order_acquire);
  if (next == NULL)
    return current;
  /* Release: we are done with current before the control thread may free it. */
  atomic_store_explicit(&h->from_rt, current, memory_order_release);
  return next;
}

void *shm_handover_collect(struct shm_handover *h) {
  /* Acquire: pairs with the RT thread's release; its last use of the object happened before. */
  return atomic_exchange_explicit(&h->from_rt, NULL, memory_order_acquire);
}

int shm_handover_pending(struct shm_handover *h) {
  return atomic_load_explicit(&h->to_rt, memory_order_acquire) != NULL;
}
