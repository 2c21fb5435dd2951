/*
 * Single-producer / single-consumer ring of fixed-size records.
 *
 * Used three ways: the slot's event ring (daemon -> worker, in the segment),
 * its message ring (worker -> daemon, in the segment) and the daemon's
 * in-process command queue (control thread -> RT thread, see shm_queue).
 *
 * Each end keeps its own position privately and only publishes it; the peer's
 * position is read, validated and never trusted: a fill below zero or above
 * the capacity is reported as -EPROTO, indices are always masked.
 *
 * All functions are RT safe: no allocation, no locks, no system calls.
 */
#ifndef RUNWAY_SHM_SPSC_H
#define RUNWAY_SHM_SPSC_H

#include <stdatomic.h>
#include <stdint.h>

struct shm_spsc_producer {
  _Atomic uint64_t *write_pos; /* ours, published */
  _Atomic uint64_t *read_pos;  /* the consumer's */
  unsigned char *records;
  uint32_t record_size;
  uint32_t capacity; /* power of two */
  uint64_t pos;      /* private copy of our position */
};

struct shm_spsc_consumer {
  _Atomic uint64_t *write_pos; /* the producer's */
  _Atomic uint64_t *read_pos;  /* ours, published */
  unsigned char *records;
  uint32_t record_size;
  uint32_t capacity;
  uint64_t pos;
};

/* Binds an end to existing storage. start is the position to continue from. */
void shm_spsc_producer_init(struct shm_spsc_producer *p, _Atomic uint64_t *write_pos,
                            _Atomic uint64_t *read_pos, void *records, uint32_t record_size,
                            uint32_t capacity, uint64_t start);
void shm_spsc_consumer_init(struct shm_spsc_consumer *c, _Atomic uint64_t *write_pos,
                            _Atomic uint64_t *read_pos, void *records, uint32_t record_size,
                            uint32_t capacity, uint64_t start);

/* Appends one record. Returns 0, -ENOSPC when full, -EPROTO on an impossible peer position. */
int shm_spsc_push(struct shm_spsc_producer *p, const void *record);

/* Free records, or -EPROTO. */
int64_t shm_spsc_space(struct shm_spsc_producer *p);

/* Records ready to read, or -EPROTO. */
int64_t shm_spsc_avail(struct shm_spsc_consumer *c);

/* Copies the oldest record without consuming it. Returns 1, 0 when empty, or -EPROTO. */
int shm_spsc_peek(struct shm_spsc_consumer *c, void *record);

/* Consumes the oldest record (copied to record unless NULL). Returns 1, 0 when empty, -EPROTO. */
int shm_spsc_pop(struct shm_spsc_consumer *c, void *record);

#endif
