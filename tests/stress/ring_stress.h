/*
 * Shared harness of the ring stress tests (test_ring_stress_proc and
 * test_ring_stress_threads): a daemon role that runs the timeline's RT end at
 * a fixed cadence and checks every output sample it plays, and a worker role
 * (a forked process with its own mapping, or a thread sharing the daemon's
 * mapping) that runs an identity plugin through the worker end and stalls.
 *
 * Samples encode their channel and absolute timeline position, so a torn,
 * duplicated, reordered or shifted block cannot pass for the right one. An
 * output sample at position p is accepted only when it is exactly the input
 * sample (channel, p - L), or 0 and accounted for: the daemon's read reported
 * it as not written (underrun), it lies in [0, L) (initial silence), or the
 * worker logged a skip whose silence covers it.
 *
 * Timing only decides how often things happen. Every correctness verdict is
 * made on positions; the stalls that must produce an underrun, a skip and an
 * input overwrite wait for a condition on the daemon's published positions,
 * not for a time.
 */
#ifndef RUNWAY_TESTS_RING_STRESS_H
#define RUNWAY_TESTS_RING_STRESS_H

#include <stdatomic.h>
#include <stdint.h>

#include "segment.h"

#define RS_MAX_SKIPS (1u << 16)
#define RS_MAX_STALL_WINDOWS (1u << 14)
#define RS_MAX_RECORDED_ERRORS 8u

/* Deterministic stalls every run must complete (bits of rs_shared.events_done). */
#define RS_EVENT_UNDERRUN 0x1u  /* before plan: until the daemon played past out_write */
#define RS_EVENT_LATE 0x2u      /* before commit: until the chunk's output is already late */
#define RS_EVENT_OVERWRITE 0x4u /* between plan and read: until the chunk was overwritten */
#define RS_EVENT_ALL 0x7u

struct rs_config {
  const char *name;
  uint32_t rate;
  uint32_t latency;
  uint32_t period;
  uint32_t channels; /* inputs = outputs */
  int vary_n;        /* daemon cycles of random size 1..period instead of period */
  double seconds;    /* length of the run at real-time cadence */
  /*
   * 1 for the thread variant under TSan: stalls that hold a chunk wait on
   * positions with acquire loads and stay clear of the daemon's overwrite
   * reach, so the only cross-thread accesses left are those the ring itself
   * orders. 0 (the proc variant, and the thread variant's
   * --unsynchronized-stalls): such stalls just sleep, like a paused worker,
   * and the forced overwrite waits with relaxed loads, so the worker copies
   * frames the daemon wrote without any happens-before edge.
   */
  int synchronized_stalls;
  uint64_t seed;
};

struct rs_skip {
  uint64_t from; /* output positions (old input position + L) */
  uint64_t to;   /* new input position + L */
};

/* Output positions [from, to) during which a short stall was pending. */
struct rs_window {
  uint64_t from;
  uint64_t to;
};

struct rs_error {
  uint64_t pos;
  uint32_t channel;
  float got;
  float want;
};

/*
 * Lives in a MAP_SHARED | MAP_ANONYMOUS region created before fork (or plain
 * memory for the thread variant). Arrays are written only by the worker and
 * read by the daemon after the worker has exited (waitpid / pthread_join).
 */
struct rs_shared {
  _Atomic uint32_t ready;       /* worker attached and initialised */
  _Atomic uint32_t stop;        /* daemon: the run is over, exit */
  _Atomic uint32_t events_done; /* worker: RS_EVENT_* completed */
  _Atomic uint32_t fatal;       /* worker: an API call failed; see message */
  char message[256];

  _Atomic uint64_t n_skips;
  _Atomic uint32_t skip_overflow;
  _Atomic uint64_t n_windows;

  /* Worker statistics. */
  _Atomic uint64_t chunks;
  _Atomic uint64_t frames_processed;
  _Atomic uint64_t estale;
  _Atomic uint64_t estale_missed; /* overwrite stall whose read was not reported stale */
  _Atomic uint64_t input_mismatch;
  _Atomic uint64_t short_stalls;
  _Atomic uint64_t long_stalls;
  _Atomic uint64_t sleeps;
  _Atomic uint64_t spins;
  _Atomic uint64_t jit_commits;
  struct rs_error input_errors[RS_MAX_RECORDED_ERRORS];

  struct rs_skip skips[RS_MAX_SKIPS];
  struct rs_window windows[RS_MAX_STALL_WINDOWS];
};

/*
 * Worker role on a mapped segment (its own mapping, or the daemon's for the
 * thread variant). Runs until sh->stop. Returns 0, or 1 after recording a
 * failure in sh.
 */
int rs_worker_run(struct shm_segment *seg, struct rs_shared *sh, const struct rs_config *cfg);

/* Results of the daemon role; rs_daemon_run fills, rs_verify checks. */
struct rs_daemon;

struct rs_daemon *rs_daemon_new(const struct rs_config *cfg);
void rs_daemon_free(struct rs_daemon *d);

/* Creates the segment for cfg. Returns 0, or prints why and returns -1. */
int rs_segment_create(const struct rs_config *cfg, struct shm_segment *seg);

/*
 * Daemon role: waits for sh->ready, then runs cycles at cfg's cadence for
 * cfg->seconds and at least until every deterministic stall completed, checks
 * each sample, and finally raises sh->stop. Returns 0, or 1 on a failure it
 * already printed.
 */
int rs_daemon_run(struct rs_daemon *d, struct shm_segment *seg, struct rs_shared *sh);

/*
 * After the worker exited: checks the zero samples against the skip log, the
 * segment's worker counters against that log, and the run's coverage
 * requirements; prints the summary line. 0 or 1.
 */
int rs_verify(struct rs_daemon *d, const struct shm_segment *seg, struct rs_shared *sh,
              const char *variant);

/* Seed from RUNWAY_STRESS_SEED, else from the clock. */
uint64_t rs_seed(void);

#endif
