/*
 * A supervisor keeps one worker running for its owner (a slot): it starts a
 * managed worker process or waits for an external one to attach over the
 * control socket, notices when the worker exits, disconnects, stalls or is
 * faulted, and restarts it after a backoff. It knows processes, connections
 * and time; what a worker gets (a new segment generation for every start) is
 * the owner's business, asked for through supervisor_ops.
 *
 * States: starting (spawned or waiting for an attach, not yet announced in
 * its segment), running, restarting (waiting out the backoff after an exit),
 * faulted (the same, after the worker broke the rules or could not start),
 * stopped (nothing to run: the audio server is away).
 *
 * Control thread only.
 */
#ifndef RUNWAY_DAEMON_SUPERVISE_SUPERVISOR_H
#define RUNWAY_DAEMON_SUPERVISE_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "control.h"
#include "policy.h"
#include "worker_proc.h"

enum worker_state {
  WORKER_STARTING,
  WORKER_RUNNING,
  WORKER_RESTARTING,
  WORKER_FAULTED,
  WORKER_STOPPED
};

const char *worker_state_name(enum worker_state state);

/* What every supervisor of the daemon shares. */
struct supervisor_env {
  uv_loop_t *loop;
  struct worker_launch launch; /* how managed workers are started */
  uint64_t stall_timeout_ms;   /* no progress with input pending for this long: a stall */
  struct restart_policy policy;
};

/* How the owner's worker runs. */
struct worker_command {
  bool external;     /* the user starts it; it attaches over the control socket */
  const char *file;  /* managed: the executable */
  char *const *argv; /* managed: argv[0] included, NULL terminated */
};

struct supervisor_ops {
  /*
   * The backoff is over (or a restart was asked for): the owner prepares a
   * new generation and calls supervisor_start(), or supervisor_fail().
   * reason says why the worker is restarted.
   */
  void (*restart)(void *owner, const char *reason);
  /* The state changed; reason is why (an error while not running). */
  void (*changed)(void *owner, enum worker_state state, const char *reason);
  /* The attached worker's connection closed: prepare for the next worker. */
  void (*detached)(void *owner);
  /*
   * The next worker (supervisor_start_next) exited before it took over;
   * reason says how. Nothing is restarted: the current worker plays on.
   */
  void (*next_failed)(void *owner, const char *reason);
};

struct supervisor {
  const struct supervisor_env *env;
  const struct supervisor_ops *ops;
  void *owner;
  const char *name; /* the owner's, for logs and the worker's RUNWAY_SLOT */

  enum worker_state state;
  char error[256]; /* why the worker is not running; "" while it runs */
  bool active;     /* a worker was started and not stopped since */
  pid_t pid;       /* the worker's, 0 when none */
  uint32_t restarts;
  uint32_t failures; /* failures in a row, for the backoff */
  uint64_t started_ms;
  struct worker_proc *proc;      /* managed worker, or NULL */
  struct control_conn *attached; /* external worker's connection, or NULL */
  uv_timer_t restart_timer;      /* active exactly while a restart is pending */
  struct stall_watch stall;

  /*
   * A second managed worker started beside the first for a seamless
   * replacement: it warms up on its own generation, then takes over
   * (supervisor_promote_next) or goes (supervisor_drop_next).
   */
  struct worker_proc *next_proc;
  pid_t next_pid;
};

void supervisor_init(struct supervisor *sv, const struct supervisor_env *env,
                     const struct supervisor_ops *ops, void *owner, const char *name);

/* Stops any worker and closes the timer; done(handle) runs once it is closed. */
void supervisor_close(struct supervisor *sv, uv_close_cb done);

/*
 * Starts a worker for a new generation whose segment's files are
 * segment_fds (not taken over; inherited by a managed worker). External: waits for
 * supervisor_attach(). A managed worker that cannot be spawned is a failure:
 * a restart is scheduled and the error returned (-errno).
 */
int supervisor_start(struct supervisor *sv, const struct worker_command *cmd,
                     const int segment_fds[RW_FILE_COUNT]);

/*
 * Lets the worker go (SIGTERM, SIGKILL after grace_ms; 0: SIGKILL now; an
 * attached worker is disconnected), and a next worker with it (SIGKILL), and
 * cancels a pending restart. The state
 * becomes `state` with reason, unless reason is NULL (the state is kept).
 */
void supervisor_stop(struct supervisor *sv, uint64_t grace_ms, enum worker_state state,
                     const char *reason);

/*
 * The worker failed (its start, or what it did): stop it at once and
 * restart after the backoff. state is restarting or faulted.
 */
void supervisor_fail(struct supervisor *sv, enum worker_state state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Starts a managed worker for the generation with segment_fds beside the
 * current one, which keeps running and being watched. Returns 0, or -EBUSY
 * when a next worker runs already, or -errno when it could not be spawned
 * (err says why; nothing else changes).
 */
int supervisor_start_next(struct supervisor *sv, const struct worker_command *cmd,
                          const int segment_fds[RW_FILE_COUNT], char *err, size_t errlen);

/*
 * The next worker takes over: the current one is let go (SIGTERM, SIGKILL
 * after grace_ms), a pending restart is cancelled, and the next one is the
 * worker from now on (running; counted as a restart).
 */
void supervisor_promote_next(struct supervisor *sv, uint64_t grace_ms, const char *reason);

/* The next worker goes (SIGKILL); the current one is left alone. */
void supervisor_drop_next(struct supervisor *sv);

static inline bool supervisor_has_next(const struct supervisor *sv) {
  return sv->next_proc != NULL;
}

/* A restart asked for: counted, the failure streak reset, ops->restart() now. */
void supervisor_restart_now(struct supervisor *sv, const char *reason);

/* The worker announced itself in its segment: starting -> running. */
void supervisor_running(struct supervisor *sv);

bool supervisor_restart_pending(const struct supervisor *sv);
bool supervisor_has_worker(const struct supervisor *sv);

/*
 * An external worker on conn took the segment. Returns 0, or -EBUSY when a
 * worker is attached already or conn already has an owner (a subscriber, a
 * worker of another slot: one owner per connection).
 */
int supervisor_attach(struct supervisor *sv, struct control_conn *conn);

/* Whether conn may attach (no worker attached, conn owned by nobody); err says why not. */
bool supervisor_can_attach(const struct supervisor *sv, const struct control_conn *conn, char *err,
                           size_t errlen);

enum supervisor_progress {
  SUPERVISOR_PROGRESS_OK,
  SUPERVISOR_PROGRESS_STALLED,      /* a managed worker stalled: the owner faults it */
  SUPERVISOR_PROGRESS_DISCONNECTED, /* an external one stalled and was disconnected */
};

/*
 * Housekeeping's progress report: the worker's input position and the input
 * pending for it. A worker that made no progress for the stall timeout with
 * more than threshold frames pending has stalled; why says so. An external
 * worker is then disconnected here (not ours to kill; the owner hears of it
 * through ops->detached and waits for a new one).
 */
enum supervisor_progress supervisor_check_progress(struct supervisor *sv, uint64_t in_read,
                                                   uint64_t pending, uint64_t threshold,
                                                   uint64_t now_ms, char *why, size_t whylen);

#endif
