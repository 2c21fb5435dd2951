/*
 * librunway-worker internals: the rw_worker object and the helpers the SDK's
 * files share. Nothing here is exported (the library is built with hidden
 * visibility; only RW_API functions are visible).
 */
#ifndef RUNWAY_WORKER_SDK_INTERNAL_H
#define RUNWAY_WORKER_SDK_INTERNAL_H

#include <locale.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <runway/worker.h>

#include "segment.h"
#include "spsc.h"
#include "timeline.h"

#define RW__DEFAULT_MAX_BLOCK 256u
#define RW__MIN_MAX_BLOCK 16u
#define RW__MAX_MAX_BLOCK 8192u
/* The public name of the fade length is the segment ABI's, the daemon's too. */
_Static_assert(RW_FADE_IN_FRAMES == RW_FADE_FRAMES, "one fade length for daemon and SDK");
_Static_assert(RW_WORKER_STOP_GRACE_MS == RW_STOP_GRACE_MS, "one grace for daemon and SDK");
/* Longest single futex sleep: bounds how late a stop request or a vanished daemon is noticed. */
#define RW__WAIT_SLICE_NS (50 * 1000000LL)
/* How long rw_worker_open waits for runwayd's answer to worker.attach. */
#define RW__ATTACH_TIMEOUT_MS 5000
#define RW__ERRLEN 512

/* An event of the current block together with the timeline time it came with. */
struct rw__pending_event {
  uint64_t time;
  rw_event ev;
};

struct rw__param {
  uint32_t id;
  float min;
  float max;
  float value;
  char name[RW_NAME_MAX];
  char unit[RW_UNIT_MAX];
  /* A state load set value; the plugin hears it at offset 0 of the next block. */
  int loaded;
  /* Scratch of the default-format parser: the document's value, applied only if all of it parses.
   */
  int staged;
  float staged_value;
};

struct rw_worker {
  struct shm_segment seg;
  struct shm_tl_worker tl;
  struct shm_spsc_consumer events;   /* daemon -> worker */
  struct shm_spsc_producer messages; /* worker -> daemon */

  /* Attachment: a control connection (attached workers) or the parent (managed ones). */
  int sock;
  pid_t parent;
  pid_t pid;

  _Atomic int stop;

  rw_worker_info info;
  char slot[64];
  uint32_t max_block;
  uint32_t wake_frames;
  /* The worker's own timer (block.c): set for timer_due_ns, cleared when a block is planned. */
  int timer_armed;
  int64_t timer_due_ns;
  uint32_t late_retries; /* timer wake-ups since the last block that found no input */

  /* Planar block buffers, allocated once at open. */
  float *in_data;
  float **in_ptrs;
  float *out_data;
  float **out_ptrs;

  /* Events of the block being handed out, and those held back for the next block. */
  struct rw__pending_event *batch;
  rw_event *block_events;
  struct rw__pending_event *carry;
  uint32_t n_carry;

  struct rw__param *params;
  uint32_t n_params;
  uint32_t n_loaded; /* params with `loaded` set */

  /* The declaration in the segment's info block, and whether the daemon may read it yet. */
  char plugin[RW_PLUGIN_NAME_MAX];
  int published;
  uint32_t latency; /* the plugin's own latency, as last given to rw_worker_set_latency */

  /* Plugin state (state.c). */
  rw_state_handlers state;
  int in_state_handler;
  unsigned char *state_buf; /* private copy of the mailbox data: state_capacity bytes */
  uint32_t state_capacity;
  locale_t c_locale; /* the default format's numbers never depend on the process locale */

  /* State between rw_worker_next and rw_worker_done. */
  int in_block;
  struct shm_tl_chunk cur;
  uint64_t skipped_pending; /* frames skipped since the last delivered block */
  int discontinuity_pending;
  uint32_t fade_pos; /* frames of the fade-in already applied; RW_FADE_IN_FRAMES when none */
  uint64_t out_pos;  /* output position messages are stamped with */

  rw_worker_stats stats;
  uint64_t sleeps;      /* RW_STAT_SLEEPS */
  uint64_t timer_wakes; /* RW_STAT_TIMER_WAKES */
  uint64_t early_wakes; /* RW_STAT_EARLY_WAKES */
  char err[RW__ERRLEN];
};

void rw__set_error(rw_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps the segment inherited at $RUNWAY_SEGMENT_FD and $RUNWAY_SEGMENT_WORKER_FD. */
int rw__attach_inherited(rw_worker *w);

/* Connects to runwayd, sends worker.attach and receives the segment fd. */
int rw__attach_socket(rw_worker *w, const rw_worker_options *opts);

/* 1 when the daemon is gone: the control connection closed, or the parent changed. */
int rw__daemon_gone(rw_worker *w);

/*
 * The plugin's declaration (name, parameters, flags): rw__info_fill writes
 * the segment's info block once after mapping; rw__info_set_flags updates
 * the flags (the state handlers may change after it was filled).
 */
void rw__info_fill(rw_worker *w);
void rw__info_set_flags(rw_worker *w);

/* Allocates what answering state requests needs (at open, so answering never fails for memory). */
int rw__state_init(rw_worker *w);
void rw__state_free(rw_worker *w);

/*
 * Answers a state request if one is waiting. Called by rw_worker_next between
 * blocks only, never while a block is out.
 */
void rw__state_poll(rw_worker *w);

#endif
