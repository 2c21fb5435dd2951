/*
 * Worker processes: spawning one with its slot's segment, noticing its exit,
 * stopping it. Control thread only. When to start or restart a worker is the
 * supervisor's business (supervisor.h).
 */
#ifndef RUNWAY_DAEMON_SUPERVISE_WORKER_PROC_H
#define RUNWAY_DAEMON_SUPERVISE_WORKER_PROC_H

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

#endif
