/*
 * Worker supervision: spawning worker processes with their slot's segment,
 * noticing their exit, stopping them, and the restart and stall policies.
 * Control thread only. What a restart means for a slot (a new segment
 * generation) is slots.c's business; this module only runs processes and
 * decides when.
 */
#ifndef RUNWAY_DAEMON_SUPERVISOR_H
#define RUNWAY_DAEMON_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

/* The segment is inherited at this descriptor; RUNWAY_SEGMENT_FD names it. */
#define SUPERVISOR_SEGMENT_FD 3

struct worker_proc;

typedef void (*worker_exit_fn)(struct worker_proc *proc, int64_t exit_status, int term_signal,
                               void *user);

struct worker_spawn {
  const char *file;   /* executable (searched in PATH when it has no slash) */
  char *const *argv;  /* argv[0] included, NULL terminated */
  int segment_fd;     /* inherited as SUPERVISOR_SEGMENT_FD */
  const char *slot;   /* exported as RUNWAY_SLOT */
  const char *socket; /* exported as RUNWAY_SOCKET */
  worker_exit_fn on_exit;
  void *user;
};

/* Starts a worker. Returns 0 or a negative libuv/errno code with a message. */
int worker_proc_spawn(uv_loop_t *loop, const struct worker_spawn *spec, struct worker_proc **out,
                      char *err, size_t errlen);

pid_t worker_proc_pid(const struct worker_proc *proc);

/*
 * Stops the worker: SIGTERM now, SIGKILL if it is still alive after grace_ms
 * (0: SIGKILL at once). The exit callback still runs unless detached.
 */
void worker_proc_stop(struct worker_proc *proc, uint64_t grace_ms);

/*
 * The owner is done with the record: after worker_proc_stop when replacing a
 * worker (the exit callback then never runs and the record frees itself once
 * the process is reaped, never left a zombie), or in the exit callback (it
 * is freed at once). Do not use proc afterwards.
 */
void worker_proc_detach(struct worker_proc *proc);

/* ---- policies (pure functions) ------------------------------------------- */

struct restart_policy {
  uint64_t first_delay_ms; /* delay after the first failure in a row */
  uint64_t max_delay_ms;
  uint64_t stable_after_ms; /* a worker that ran this long resets the failure streak */
};

extern const struct restart_policy supervisor_default_policy;

/* Delay before restart number `failures` of a streak (1 = first failure). */
uint64_t supervisor_restart_delay(const struct restart_policy *p, uint32_t failures);

/*
 * Stall detection: a worker stalls when its input position has not moved for
 * timeout_ms while more than `threshold` frames of input were pending.
 */
struct stall_watch {
  uint64_t pos;
  uint64_t since_ms;
  bool armed;
};

void stall_watch_reset(struct stall_watch *w, uint64_t pos, uint64_t now_ms);
bool stall_watch_check(struct stall_watch *w, uint64_t in_read, uint64_t pending,
                       uint64_t threshold, uint64_t now_ms, uint64_t timeout_ms);

#endif
