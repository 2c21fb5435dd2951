/*
 * The daemon's side of a slot, for the worker SDK's tests: a real segment, the
 * daemon end of its timeline, the event producer and the message consumer,
 * and the hand-over of the segment to rw_worker_open() the way runwayd does
 * it for managed workers (RUNWAY_SEGMENT_FD).
 */
#ifndef RUNWAY_TEST_WORKER_RIG_H
#define RUNWAY_TEST_WORKER_RIG_H

#include <stdint.h>

#include <runway/worker.h>

#include "segment.h"
#include "spsc.h"
#include "timeline.h"

struct daemon_role {
  struct shm_segment seg;
  struct shm_tl_daemon tl;
  struct shm_spsc_producer ev;  /* daemon -> worker */
  struct shm_spsc_consumer msg; /* worker -> daemon */
  uint32_t n_in;
  uint32_t n_out;
};

/* Creates the segment for params (failing the test if it cannot) and binds the ends. */
void daemon_role_create(struct daemon_role *d, const struct proto_segment_params *params);
void daemon_destroy(struct daemon_role *d);

/*
 * Exports dups of the segment's files in RUNWAY_SEGMENT_FD and
 * RUNWAY_SEGMENT_WORKER_FD (and RUNWAY_SLOT), for a worker to come.
 */
void daemon_role_export(struct daemon_role *d, const char *slot);

/* rw_worker_open() on a dup of the segment, as a managed worker of slot `slot`. */
rw_worker *daemon_role_open_worker(struct daemon_role *d, const rw_worker_options *o,
                                   const char *slot);

int64_t now_ns(void);

#endif
