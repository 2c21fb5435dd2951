#include "worker_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3 /* <linux/wait.h>; glibc's <sys/wait.h> does not define it yet */
#endif

/*
 * Workers are started with posix_spawn (glibc: clone with CLONE_VM |
 * CLONE_VFORK), not fork: fork would copy the daemon's page tables under
 * its mmap lock and turn its private pages copy-on-write, and the RT thread
 * could then stall on a page fault. The child is watched through a pidfd on
 * the loop, which also makes signalling it race-free.
 */
struct worker_proc {
  uv_poll_t poll;
  uv_timer_t kill_timer;
  worker_exit_fn on_exit;
  void *user;
  pid_t pid;
  int pidfd;
  bool exited;
  bool detached;
  bool released;
  int open_handles;
};

static void handle_closed(uv_handle_t *h) {
  struct worker_proc *p = h->data;
  if (--p->open_handles > 0)
    return;
  close(p->pidfd);
  free(p);
}

static void close_all(struct worker_proc *p) {
  uv_close((uv_handle_t *)&p->kill_timer, handle_closed);
  uv_close((uv_handle_t *)&p->poll, handle_closed);
}

static void on_pidfd(uv_poll_t *h, int status, int events) {
  struct worker_proc *p = h->data;
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
    return; /* not exited yet (a spurious wake-up) */
  p->exited = true;
  uv_poll_stop(&p->poll);
  uv_timer_stop(&p->kill_timer);
  if (p->detached) {
    p->released = true;
    close_all(p);
    return;
  }
  int64_t status_code = si.si_code == CLD_EXITED ? si.si_status : 0;
  int term_signal = si.si_code == CLD_EXITED ? 0 : si.si_status;
  if (p->on_exit != NULL)
    p->on_exit(p, status_code, term_signal, p->user);
}

/* Our environment minus the RUNWAY_* variables we set (and systemd's), plus ours. */
static char **build_env(const struct worker_spawn *spec) {
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **env = calloc(n + 4, sizeof(char *));
  if (env == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    /* Ours to set; and systemd's notification and watchdog belong to the daemon alone. */
    if (strncmp(environ[i], "RUNWAY_SEGMENT_FD=", 18) == 0 ||
        strncmp(environ[i], "RUNWAY_SLOT=", 12) == 0 ||
        strncmp(environ[i], "RUNWAY_SOCKET=", 14) == 0 ||
        strncmp(environ[i], "NOTIFY_SOCKET=", 14) == 0 ||
        strncmp(environ[i], "WATCHDOG_", 9) == 0)
      continue;
    env[k++] = environ[i];
  }
  char *mine[3] = {NULL, NULL, NULL};
  if (asprintf(&mine[0], "RUNWAY_SEGMENT_FD=%d", SUPERVISOR_SEGMENT_FD) < 0 ||
      asprintf(&mine[1], "RUNWAY_SLOT=%s", spec->slot ? spec->slot : "") < 0 ||
      asprintf(&mine[2], "RUNWAY_SOCKET=%s", spec->socket ? spec->socket : "") < 0) {
    for (int i = 0; i < 3; i++)
      free(mine[i]);
    free(env);
    return NULL;
  }
  for (int i = 0; i < 3; i++)
    env[k++] = mine[i];
  env[k] = NULL;
  return env;
}

static void free_env(char **env) {
  size_t n = 0;
  while (env[n] != NULL)
    n++;
  /* Only the last three entries are ours. */
  for (size_t i = n >= 3 ? n - 3 : 0; i < n; i++)
    free(env[i]);
  free(env);
}

/*
 * The child gets: stdin from /dev/null; stdout and stderr on our stderr, so a
 * worker's messages reach the daemon's log and never its stdout; the segment
 * at fd 3; nothing else of ours (JACK's sockets, the control socket); default
 * signal dispositions and an empty mask (we ignore SIGPIPE, it should not).
 */
static int spawn(const struct worker_spawn *spec, char **env, pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none, all;
  int rc;

  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  sigemptyset(&none);
  sigfillset(&all);
  rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, 2, 1);
  /* dup2 onto itself clears close-on-exec (glibc >= 2.29), so fd 3 works too. */
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, spec->segment_fd, SUPERVISOR_SEGMENT_FD);
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, SUPERVISOR_SEGMENT_FD + 1);
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(&attr, &none);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(&attr, &all);
  if (rc == 0)
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc == 0)
    rc = posix_spawnp(pid, spec->file, &fa, &attr, spec->argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return -rc;
}

int worker_proc_spawn(uv_loop_t *loop, const struct worker_spawn *spec, struct worker_proc **out,
                      char *err, size_t errlen) {
  struct worker_proc *p = calloc(1, sizeof(*p));
  char **env = NULL;
  int rc = -ENOMEM;
  if (p == NULL)
    goto fail;
  env = build_env(spec);
  if (env == NULL)
    goto fail;
  rc = spawn(spec, env, &p->pid);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start %s: %s", spec->file, strerror(-rc));
    goto fail;
  }
  p->pidfd = pidfd_open(p->pid, 0);
  if (p->pidfd < 0) {
    rc = -errno;
    snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    goto fail;
  }
  free_env(env);
  p->on_exit = spec->on_exit;
  p->user = spec->user;
  uv_poll_init(loop, &p->poll, p->pidfd);
  uv_timer_init(loop, &p->kill_timer);
  p->poll.data = p->kill_timer.data = p;
  p->open_handles = 2;
  uv_poll_start(&p->poll, UV_READABLE, on_pidfd);
  *out = p;
  return 0;

fail:
  if (env != NULL)
    free_env(env);
  free(p);
  return rc;
}

pid_t worker_proc_pid(const struct worker_proc *proc) { return proc->pid; }

static void send_signal(struct worker_proc *p, int sig) {
  if (!p->exited)
    (void)pidfd_send_signal(p->pidfd, sig, NULL, 0);
}

static void on_kill_timer(uv_timer_t *t) { send_signal(t->data, SIGKILL); }

void worker_proc_stop(struct worker_proc *proc, uint64_t grace_ms) {
  if (proc->exited)
    return;
  if (grace_ms == 0) {
    send_signal(proc, SIGKILL);
    return;
  }
  /* SIGCONT too: a stopped worker must be able to act on SIGTERM. */
  send_signal(proc, SIGTERM);
  send_signal(proc, SIGCONT);
  uv_timer_start(&proc->kill_timer, on_kill_timer, grace_ms, 0);
}

void worker_proc_detach(struct worker_proc *proc) {
  proc->detached = true;
  if (proc->exited && !proc->released) {
    proc->released = true;
    close_all(proc);
  }
}
