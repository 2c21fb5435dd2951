#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int shm_queue_init(struct shm_queue *q, uint32_t record_size, uint32_t capacity) {
  memset(q, 0, sizeof(*q));
  if (record_size == 0 || capacity == 0 || capacity > (1u << 24))
    return -EINVAL;
  uint32_t cap = 1;
  while (cap < capacity)
    cap <<= 1;
  size_t bytes = (size_t)cap * record_size;
  bytes = (bytes + RW_CACHE_LINE - 1) / RW_CACHE_LINE * RW_CACHE_LINE;
  q->storage = aligned_alloc(RW_CACHE_LINE, bytes);
  if (q->storage == NULL)
    return -ENOMEM;
  memset(q->storage, 0, bytes);
  atomic_init(&q->write_pos.value, 0);
  atomic_init(&q->read_pos.value, 0);
  shm_spsc_producer_init(&q->tx, &q->write_pos.value, &q->read_pos.value, q->storage, record_size,
                         cap, 0);
  shm_spsc_consumer_init(&q->rx, &q->write_pos.value, &q->read_pos.value, q->storage, record_size,
                         cap, 0);
  return 0;
}

void shm_queue_destroy(struct shm_queue *q) {
  free(q->storage);
  memset(q, 0, sizeof(*q));
}
