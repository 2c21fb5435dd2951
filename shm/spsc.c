#include "spsc.h"

#include <errno.h>
#include <string.h>

void shm_spsc_producer_init(struct shm_spsc_producer *p, _Atomic uint64_t *write_pos,
                            _Atomic uint64_t *read_pos, void *records, uint32_t record_size,
                            uint32_t capacity, uint64_t start) {
  p->write_pos = write_pos;
  p->read_pos = read_pos;
  p->records = records;
  p->record_size = record_size;
  p->capacity = capacity;
  p->pos = start;
}

void shm_spsc_consumer_init(struct shm_spsc_consumer *c, _Atomic uint64_t *write_pos,
                            _Atomic uint64_t *read_pos, void *records, uint32_t record_size,
                            uint32_t capacity, uint64_t start) {
  c->write_pos = write_pos;
  c->read_pos = read_pos;
  c->records = records;
  c->record_size = record_size;
  c->capacity = capacity;
  c->pos = start;
}

int64_t shm_spsc_space(struct shm_spsc_producer *p) {
  /* Acquire: the consumer's reads of the records it released happen before we overwrite them. */
  uint64_t r = atomic_load_explicit(p->read_pos, memory_order_acquire);
  uint64_t used = p->pos - r;
  if (used > p->capacity)
    return -EPROTO;
  return (int64_t)(p->capacity - used);
}

int shm_spsc_push(struct shm_spsc_producer *p, const void *record) {
  int64_t space = shm_spsc_space(p);
  if (space < 0)
    return (int)space;
  if (space == 0)
    return -ENOSPC;
  uint32_t idx = (uint32_t)(p->pos & (p->capacity - 1));
  memcpy(p->records + (size_t)idx * p->record_size, record, p->record_size);
  p->pos++;
  /* Release: the record bytes are visible before the consumer sees the new position. */
  atomic_store_explicit(p->write_pos, p->pos, memory_order_release);
  return 0;
}

int64_t shm_spsc_avail(struct shm_spsc_consumer *c) {
  /* Acquire: pairs with the producer's release, so the records up to w are readable. */
  uint64_t w = atomic_load_explicit(c->write_pos, memory_order_acquire);
  uint64_t fill = w - c->pos;
  if (fill > c->capacity)
    return -EPROTO;
  return (int64_t)fill;
}

int shm_spsc_peek(struct shm_spsc_consumer *c, void *record) {
  int64_t avail = shm_spsc_avail(c);
  if (avail <= 0)
    return (int)avail;
  uint32_t idx = (uint32_t)(c->pos & (c->capacity - 1));
  memcpy(record, c->records + (size_t)idx * c->record_size, c->record_size);
  return 1;
}

int shm_spsc_pop(struct shm_spsc_consumer *c, void *record) {
  int64_t avail = shm_spsc_avail(c);
  if (avail <= 0)
    return (int)avail;
  if (record != NULL) {
    uint32_t idx = (uint32_t)(c->pos & (c->capacity - 1));
    memcpy(record, c->records + (size_t)idx * c->record_size, c->record_size);
  }
  c->pos++;
  /* Release: our copy of the record is complete before the producer may reuse its place. */
  atomic_store_explicit(c->read_pos, c->pos, memory_order_release);
  return 1;
}
