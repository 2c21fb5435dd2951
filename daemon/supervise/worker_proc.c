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

#include "clock.h"
#include "log.h"

extern char **environ;

#ifndef P_PIDFD
#define P_PIDFD 3 /* <linux/wait.h>; glibc's <sys/wait.h> does not define it yet */
#endif

/* A worker's output reaches the log a line at a time, at most this long and this often. */
#define OUTPUT_LINE_MAX 400
#define OUTPUT_LINES_PER_S 20

/* LV2_PATH: where runway-worker --lv2 (lilv) looks for plugins, as every LV2 host does. */
const char *const worker_env_default[] = {
    "PATH",         "HOME",          "LANG",         "LANGUAGE",     "LC_*",
    "TZ",           "TMPDIR",        "USER",         "LOGNAME",      "LV2_PATH",
    "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", NULL,
};

/*
 * Workers are started with posix_spawn (glibc: clone with CLONE_VM |
 * CLONE_VFORK), not fork: fork would copy the daemon's page tables under
 * its mmap lock and turn its private pages copy-on-write, and the RT thread
 * could then stall on a page fault. posix_spawn cannot change the uid or
 * ask for a parent-death signal, so the child first runs runwayd's own
 * launcher (worker_launch_main), which does both and execs the worker. The
 * child is watched through a pidfd on the loop, which also makes signalling
 * it race-free.
 */
struct worker_proc {
  uv_poll_t poll;
  uv_timer_t kill_timer;
  uv_pipe_t output; /* the worker's stdout and stderr (only stderr when capturing) */
  int open_handles;

  /* A query (spec.capture_max > 0): its stdout, kept, and its exit held back until EOF. */
  uv_pipe_t captured;
  char *cap_buf;
  size_t cap_len;
  size_t cap_max;
  bool cap_open;     /* the capture pipe is being read */
  bool cap_overflow; /* it said more than cap_max */
  bool exit_held;    /* exited before its stdout ended: on_exit waits for EOF */
  int64_t exit_status;
  int exit_signal;
  worker_exit_fn on_exit;
  void *user;
  pid_t pid; /* also its session and process group */
  int pidfd;
  bool exited;
  bool detached;
  bool released;

  char slot[64];
  char line[OUTPUT_LINE_MAX + 1];
  size_t line_len;
  uint64_t window_ms; /* the second the rate limit counts in */
  uint32_t window_lines;
  uint32_t suppressed;
};

static void handle_closed(uv_handle_t *h) {
  struct worker_proc *p = h->data;
  if (--p->open_handles > 0)
    return;
  close(p->pidfd);
  free(p->cap_buf);
  free(p);
}

static void close_all(struct worker_proc *p) {
  p->released = true;
  uv_close((uv_handle_t *)&p->kill_timer, handle_closed);
  uv_close((uv_handle_t *)&p->poll, handle_closed);
  if (!uv_is_closing((uv_handle_t *)&p->output))
    uv_close((uv_handle_t *)&p->output, handle_closed);
  if (p->cap_max > 0 && !uv_is_closing((uv_handle_t *)&p->captured))
    uv_close((uv_handle_t *)&p->captured, handle_closed);
}

/* ---- the worker's output ------------------------------------------------------ */

static void emit_line(struct worker_proc *p) {
  uint64_t now = base_mono_ms();
  if (now - p->window_ms >= 1000) {
    if (p->suppressed > 0)
      log_warn("slot %s: %u more lines of worker output not logged", p->slot, p->suppressed);
    p->window_ms = now;
    p->window_lines = 0;
    p->suppressed = 0;
  }
  if (p->line_len > 0 && p->window_lines++ < OUTPUT_LINES_PER_S) {
    p->line[p->line_len] = '\0';
    log_info("slot %s: %s", p->slot, p->line);
  } else if (p->line_len > 0) {
    p->suppressed++;
  }
  p->line_len = 0;
}

static void on_output_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char chunk[4096]; /* the loop is single-threaded and consumes it at once */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Untrusted bytes: control characters (escapes, NUL) are shown as '?', long lines are cut. */
static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct worker_proc *p = s->data;
  if (n < 0) {
    emit_line(p);
    uv_read_stop(s);
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)buf->base[i];
    if (c == '\n') {
      emit_line(p);
      continue;
    }
    if (p->line_len == OUTPUT_LINE_MAX)
      emit_line(p);
    p->line[p->line_len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
}

/* ---- a query's answer ------------------------------------------------------------ */

static void report_exit(struct worker_proc *p) {
  if (p->on_exit != NULL)
    p->on_exit(p, p->exit_status, p->exit_signal, p->user);
}

/* Untrusted too: kept as bytes up to cap_max, the rest read and dropped so the child never blocks.
 */
static void on_captured(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct worker_proc *p = s->data;
  if (n < 0) {
    uv_read_stop(s);
    p->cap_open = false;
    if (p->exit_held && !p->detached) {
      p->exit_held = false;
      report_exit(p);
    }
    return;
  }
  if (p->cap_len + (size_t)n > p->cap_max) {
    p->cap_overflow = true;
    return;
  }
  memcpy(p->cap_buf + p->cap_len, buf->base, (size_t)n);
  p->cap_len += (size_t)n;
}

const char *worker_proc_captured(const struct worker_proc *proc, size_t *len) {
  *len = proc->cap_len;
  if (proc->cap_buf == NULL || proc->cap_overflow)
    return NULL;
  proc->cap_buf[proc->cap_len] = '\0';
  return proc->cap_buf;
}

/* ---- exit ----------------------------------------------------------------------- */

/* Everything the worker left in its session goes with it. */
static void kill_session(struct worker_proc *p) { (void)kill(-p->pid, SIGKILL); }

static void on_pidfd(uv_poll_t *h, int status, int events) {
  struct worker_proc *p = h->data;
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  /* WNOWAIT: the zombie keeps its pid, so the session's id cannot be reused while we kill it. */
  if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      si.si_pid == 0)
    return; /* not exited yet (a spurious wake-up) */
  kill_session(p);
  siginfo_t reaped;
  (void)waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &reaped, WEXITED | WNOHANG);
  p->exited = true;
  uv_poll_stop(&p->poll);
  uv_timer_stop(&p->kill_timer);
  if (p->detached) {
    close_all(p);
    return;
  }
  p->exit_status = si.si_code == CLD_EXITED ? si.si_status : 0;
  p->exit_signal = si.si_code == CLD_EXITED ? 0 : si.si_status;
  /* A query's answer may still sit in the pipe: its owner hears of the exit with all of it. */
  if (p->cap_open) {
    p->exit_held = true;
    return;
  }
  report_exit(p);
}

/* ---- spawning ------------------------------------------------------------------- */

static bool allowed(const char *entry, const char *const *names) {
  for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
    size_t len = strlen(names[i]);
    if (len > 0 && names[i][len - 1] == '*') {
      if (strncmp(entry, names[i], len - 1) == 0)
        return true;
    } else if (strncmp(entry, names[i], len) == 0 && entry[len] == '=') {
      return true;
    }
  }
  return false;
}

/* The allowed part of our environment, plus the worker's own variables. */
static char **build_env(const struct worker_spawn *spec) {
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **env = calloc(n + 5, sizeof(char *));
  if (env == NULL)
    return NULL;
  size_t k = 0;
  bool other_home = spec->launch->home != NULL;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(environ[i], "RUNWAY_", 7) == 0 || (other_home && !strncmp(environ[i], "HOME=", 5)))
      continue;
    if (allowed(environ[i], worker_env_default) || allowed(environ[i], spec->launch->env_allow))
      env[k++] = environ[i];
  }
  size_t first_own = k;
  if (asprintf(&env[k++], "RUNWAY_SEGMENT_FD=%d", SUPERVISOR_SEGMENT_FD) < 0 ||
      asprintf(&env[k++], "RUNWAY_SEGMENT_WORKER_FD=%d", SUPERVISOR_SEGMENT_WORKER_FD) < 0 ||
      asprintf(&env[k++], "RUNWAY_SLOT=%s", spec->slot ? spec->slot : "") < 0 ||
      (other_home && asprintf(&env[k++], "HOME=%s", spec->launch->home) < 0)) {
    env[k - 1] = NULL;
    for (size_t i = first_own; i < k - 1; i++)
      free(env[i]);
    free(env);
    return NULL;
  }
  env[k] = NULL;
  return env;
}

/* Frees what build_env allocated: ours are the entries from RUNWAY_SEGMENT_FD on. */
static void free_env(char **env) {
  size_t i = 0;
  while (env[i] != NULL && strncmp(env[i], "RUNWAY_SEGMENT_FD=", 18) != 0)
    i++;
  for (; env[i] != NULL; i++)
    free(env[i]);
  free(env);
}

/* argv of the launcher: runwayd --launch-worker --parent P [--uid U --gid G] -- FILE ARGV... */
static char **launcher_argv(const struct worker_spawn *spec, char *parent, char *uid, char *gid) {
  size_t n = 0;
  while (spec->argv[n] != NULL)
    n++;
  char **a = calloc(n + 12, sizeof(char *));
  if (a == NULL)
    return NULL;
  size_t k = 0;
  a[k++] = (char *)spec->launch->launcher;
  a[k++] = "--launch-worker";
  a[k++] = "--parent";
  a[k++] = parent;
  if (spec->launch->uid != (uid_t)-1) {
    a[k++] = "--uid";
    a[k++] = uid;
    a[k++] = "--gid";
    a[k++] = gid;
  }
  a[k++] = "--";
  a[k++] = (char *)spec->file;
  for (size_t i = 0; i < n; i++)
    a[k++] = spec->argv[i];
  a[k] = NULL;
  return a;
}

/*
 * The child gets: stdin from /dev/null; stdout and stderr into out_fd; the
 * segment's files at fds 3 and 4 (segment_fds, none of them below 5);
 * nothing else of ours (JACK's sockets, the control socket); a session of
 * its own; default signal dispositions and an empty mask (we ignore SIGPIPE,
 * it should not).
 */
static int spawn(const struct worker_spawn *spec, const int *segment_fds, char **argv, char **env,
                 int out_fd, int stdout_fd, pid_t *pid) {
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
    rc = posix_spawn_file_actions_adddup2(&fa, stdout_fd >= 0 ? stdout_fd : out_fd, 1);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
  for (int f = 0; f < RW_FILE_COUNT && rc == 0 && segment_fds[f] >= 0; f++)
    rc = posix_spawn_file_actions_adddup2(&fa, segment_fds[f], SUPERVISOR_SEGMENT_FD + f);
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, SUPERVISOR_SEGMENT_FD + RW_FILE_COUNT);
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(&attr, &none);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(&attr, &all);
  if (rc == 0)
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                             POSIX_SPAWN_SETSID);
  if (rc == 0)
    rc = posix_spawn(pid, spec->launch->launcher, &fa, &attr, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return -rc;
}

int worker_proc_spawn(uv_loop_t *loop, const struct worker_spawn *spec, struct worker_proc **out,
                      char *err, size_t errlen) {
  struct worker_proc *p = calloc(1, sizeof(*p));
  char **env = NULL, **argv = NULL;
  char uid[16], gid[16], parent[16];
  int pipe_fds[2] = {-1, -1};
  int high[RW_FILE_COUNT] = {-1, -1};
  int segment_fds[RW_FILE_COUNT];
  int cap_fds[2] = {-1, -1};
  int rc = -ENOMEM;
  if (p == NULL)
    goto fail;
  p->cap_max = spec->capture_max;
  if (p->cap_max > 0 && (p->cap_buf = malloc(p->cap_max + 1)) == NULL)
    goto fail;
  /*
   * The child's dup2s run in order: a source below the target range could
   * be overwritten before it is copied, so such a descriptor goes up first.
   */
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    segment_fds[f] = spec->segment_fds[f];
    if (segment_fds[f] >= 0 && segment_fds[f] < SUPERVISOR_SEGMENT_FD + RW_FILE_COUNT) {
      high[f] = fcntl(segment_fds[f], F_DUPFD_CLOEXEC, SUPERVISOR_SEGMENT_FD + RW_FILE_COUNT);
      if (high[f] < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot pass the segment to the worker: %s", strerror(errno));
        goto fail;
      }
      segment_fds[f] = high[f];
    }
  }
  snprintf(uid, sizeof(uid), "%u", (unsigned)spec->launch->uid);
  snprintf(gid, sizeof(gid), "%u", (unsigned)spec->launch->gid);
  snprintf(parent, sizeof(parent), "%d", (int)getpid());
  env = build_env(spec);
  argv = launcher_argv(spec, parent, uid, gid);
  if (env == NULL || argv == NULL)
    goto fail;
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot make a pipe for the worker's output: %s", strerror(errno));
    goto fail;
  }
  if (p->cap_max > 0 && pipe2(cap_fds, O_CLOEXEC) != 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot make a pipe for the answer of %s: %s", spec->file,
             strerror(errno));
    goto fail;
  }
  rc = spawn(spec, segment_fds, argv, env, pipe_fds[1], cap_fds[1], &p->pid);
  close(pipe_fds[1]);
  pipe_fds[1] = -1;
  if (cap_fds[1] >= 0)
    close(cap_fds[1]);
  cap_fds[1] = -1;
  if (rc != 0) {
    snprintf(err, errlen, "cannot start %s: %s", spec->file, strerror(-rc));
    goto fail;
  }
  p->pidfd = pidfd_open(p->pid, 0);
  if (p->pidfd < 0) {
    rc = -errno;
    snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
    kill(-p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    goto fail;
  }
  free_env(env);
  free(argv);
  for (int f = 0; f < RW_FILE_COUNT; f++)
    if (high[f] >= 0)
      close(high[f]);
  snprintf(p->slot, sizeof(p->slot), "%s", spec->slot ? spec->slot : "?");
  p->on_exit = spec->on_exit;
  p->user = spec->user;
  uv_poll_init(loop, &p->poll, p->pidfd);
  uv_timer_init(loop, &p->kill_timer);
  uv_pipe_init(loop, &p->output, 0);
  p->poll.data = p->kill_timer.data = p->output.data = p;
  p->open_handles = 3;
  if (p->cap_max > 0) {
    uv_pipe_init(loop, &p->captured, 0);
    p->captured.data = p;
    p->open_handles++;
    if (uv_pipe_open(&p->captured, cap_fds[0]) == 0) {
      cap_fds[0] = -1; /* the pipe handle owns it now */
      p->cap_open = true;
      uv_read_start((uv_stream_t *)&p->captured, on_output_alloc, on_captured);
    } else {
      p->cap_overflow = true; /* no answer can be read: the owner sees none */
    }
  }
  uv_poll_start(&p->poll, UV_READABLE, on_pidfd);
  if (uv_pipe_open(&p->output, pipe_fds[0]) == 0) {
    pipe_fds[0] = -1; /* the pipe handle owns it now */
    uv_read_start((uv_stream_t *)&p->output, on_output_alloc, on_output);
  } else {
    close(pipe_fds[0]);
    log_warn("slot %s: the worker's output cannot be read; it is discarded", p->slot);
  }
  *out = p;
  return 0;

fail:
  for (int f = 0; f < RW_FILE_COUNT; f++)
    if (high[f] >= 0)
      close(high[f]);
  if (pipe_fds[0] >= 0)
    close(pipe_fds[0]);
  if (pipe_fds[1] >= 0)
    close(pipe_fds[1]);
  if (cap_fds[0] >= 0)
    close(cap_fds[0]);
  if (cap_fds[1] >= 0)
    close(cap_fds[1]);
  if (env != NULL)
    free_env(env);
  free(argv);
  if (p != NULL)
    free(p->cap_buf);
  free(p);
  return rc;
}

pid_t worker_proc_pid(const struct worker_proc *proc) { return proc->pid; }

int worker_proc_cpu_ms(pid_t pid, uint64_t *ms) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  int err = errno;
  close(fd);
  if (n <= 0)
    return n < 0 ? -err : -EIO;
  buf[n] = '\0';
  /* The command name (field 2) may hold spaces and parentheses: count from its last ')'. */
  char *p = strrchr(buf, ')');
  unsigned long long utime, stime;
  if (p == NULL ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
    return -EIO;
  long hz = sysconf(_SC_CLK_TCK);
  *ms = (utime + stime) * 1000u / (unsigned long long)(hz > 0 ? hz : 100);
  return 0;
}

static void on_kill_timer(uv_timer_t *t) {
  struct worker_proc *p = t->data;
  if (!p->exited)
    kill_session(p);
}

void worker_proc_stop(struct worker_proc *proc, uint64_t grace_ms) {
  if (proc->exited)
    return;
  if (grace_ms == 0) {
    kill_session(proc);
    return;
  }
  /* SIGCONT too: a stopped worker must be able to act on SIGTERM. */
  (void)pidfd_send_signal(proc->pidfd, SIGTERM, NULL, 0);
  (void)pidfd_send_signal(proc->pidfd, SIGCONT, NULL, 0);
  uv_timer_start(&proc->kill_timer, on_kill_timer, grace_ms, 0);
}

void worker_proc_detach(struct worker_proc *proc) {
  proc->detached = true;
  if (proc->exited && !proc->released)
    close_all(proc);
}
