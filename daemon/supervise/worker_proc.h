/*
 * Worker processes: spawning one with its slot's segment and nothing more,
 * noticing its exit, stopping it and everything it started. Control thread
 * only. When to start or restart a worker is the supervisor's business
 * (supervisor.h).
 *
 * What a worker gets: the segment's files at fds 3 and 4 (RUNWAY_SEGMENT_FD,
 * RUNWAY_SEGMENT_WORKER_FD), RUNWAY_SLOT,
 * an environment reduced to an allow-list, stdin from /dev/null, stdout and
 * stderr into a pipe whose lines the daemon logs tagged with the slot's name,
 * a session (and process group) of its own, SIGKILL when runwayd dies, no
 * way to gain privileges (no_new_privs), and, when runwayd runs as root, an
 * unprivileged uid. It gets no control socket: it has its segment.
 */
#ifndef RUNWAY_DAEMON_SUPERVISE_WORKER_PROC_H
#define RUNWAY_DAEMON_SUPERVISE_WORKER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include <runway/segment.h>

/*
 * The segment's files are inherited at these descriptors: the daemon file at
 * 3 (RUNWAY_SEGMENT_FD), the worker file at 4 (RUNWAY_SEGMENT_WORKER_FD).
 */
#define SUPERVISOR_SEGMENT_FD 3
#define SUPERVISOR_SEGMENT_WORKER_FD (SUPERVISOR_SEGMENT_FD + RW_FILE_WORKER)

struct worker_proc;

typedef void (*worker_exit_fn)(struct worker_proc *proc, int64_t exit_status, int term_signal,
                               void *user);

/* How every worker of this daemon is started (fixed at start). */
struct worker_launch {
  const char *launcher;         /* runwayd itself (--launch-worker), absolute */
  uid_t uid;                    /* (uid_t)-1: keep runwayd's */
  gid_t gid;                    /* with uid */
  const char *home;             /* HOME for a worker with another uid, or NULL */
  const char *const *env_allow; /* extra environment names passed on, NULL terminated */
};

struct worker_spawn {
  const struct worker_launch *launch;
  const char *file;  /* executable; searched in the worker's PATH when it has no slash */
  char *const *argv; /* argv[0] included, NULL terminated */
  /* Inherited as SUPERVISOR_SEGMENT_FD and the next; -1: none (a query). */
  int segment_fds[RW_FILE_COUNT];
  const char *slot; /* exported as RUNWAY_SLOT; tags the worker's output in the log */
  worker_exit_fn on_exit;
  void *user;
  /*
   * > 0: a query, not a worker. Its stdout is kept (up to this many bytes)
   * for worker_proc_captured, only its stderr is logged, and on_exit runs
   * once it has exited and its stdout has ended.
   */
  size_t capture_max;
};

/* Starts a worker. Returns 0 or a negative libuv/errno code with a message. */
int worker_proc_spawn(uv_loop_t *loop, const struct worker_spawn *spec, struct worker_proc **out,
                      char *err, size_t errlen);

pid_t worker_proc_pid(const struct worker_proc *proc);

/*
 * What a query printed on stdout (NUL-terminated, *len bytes), or NULL when
 * it printed more than capture_max or its output could not be read. Valid in
 * the exit callback, before worker_proc_detach.
 */
const char *worker_proc_captured(const struct worker_proc *proc, size_t *len);

/*
 * The CPU time process pid has used (user and system, its threads included;
 * /proc/PID/stat), in milliseconds. 0, or -errno when it cannot be read.
 */
int worker_proc_cpu_ms(pid_t pid, uint64_t *ms);

/*
 * Stops the worker: SIGTERM now, SIGKILL to its whole session if it is still
 * alive after grace_ms (0: SIGKILL at once). Whatever the worker started
 * that is still in its session is killed when it exits. The exit callback
 * still runs unless detached.
 */
void worker_proc_stop(struct worker_proc *proc, uint64_t grace_ms);

/*
 * The owner is done with the record: after worker_proc_stop when replacing a
 * worker (the exit callback then never runs and the record frees itself once
 * the process is reaped, never left a zombie), or in the exit callback (it
 * is freed at once). Do not use proc afterwards.
 */
void worker_proc_detach(struct worker_proc *proc);

/*
 * The environment names a worker gets besides its own RUNWAY_ ones (PATH,
 * HOME, locale, TZ, TMPDIR, LV2_PATH, sanitizer options...). For --help and tests.
 */
extern const char *const worker_env_default[];

/*
 * runwayd --launch-worker [--uid U --gid G --home DIR] -- FILE ARGV...: what
 * a spawned worker runs first, as runwayd's own executable, before it
 * becomes the worker. Drops to the given uid, asks for SIGKILL when runwayd
 * dies, sets no_new_privs, and execs FILE. Returns only on failure (the exit
 * status, with the reason on stderr).
 */
int worker_launch_main(int argc, char **argv);

#endif
