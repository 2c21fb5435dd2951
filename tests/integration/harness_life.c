/*
 * A test's life: its temporary directory, its log lines, its watchdog, how
 * it passes and fails, waiting for conditions, and the guard process that
 * undoes what outlives it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_internal.h"

#define MAX_LOGS 32

#ifndef RWT_TIMEOUT_SCALE
#define RWT_TIMEOUT_SCALE 1
#endif

static struct {
  char tag[64];
  char tmpdir[PATH_MAX];
  uint64_t start_ms;
  /* Every child's log, kept after it exited, for the dump on failure. */
  char logs[MAX_LOGS][PATH_MAX];
  char log_titles[MAX_LOGS][64];
  unsigned n_logs;
  unsigned errors;
  bool failing;
} T;

uint64_t h_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void h_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

const char *h_tag(void) { return T.tag; }
const char *h_tmpdir(void) { return T.tmpdir; }

void h_log(const char *fmt, ...) {
  va_list ap;
  uint64_t t = h_now_ms() - T.start_ms;
  printf("[%s +%llu.%03llu] ", T.tag, (unsigned long long)(t / 1000),
         (unsigned long long)(t % 1000));
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

void h_error(const char *fmt, ...) {
  va_list ap;
  T.errors++;
  printf("[%s] ERROR: ", T.tag);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

unsigned h_errors(void) { return T.errors; }

/* ---- waiting for a condition --------------------------------------------------- */

bool h_wait_for(h_cond_fn *cond, void *arg, unsigned timeout_ms) {
  char seen[8];
  return h_wait_seen(cond, arg, timeout_ms, seen, sizeof(seen));
}

bool h_wait_seen(h_cond_fn *cond, void *arg, unsigned timeout_ms, char *seen, size_t seen_len) {
  uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms * RWT_TIMEOUT_SCALE;
  unsigned pause_ms = 1;
  for (;;) {
    seen[0] = '\0';
    if (cond(arg, seen, seen_len))
      return true;
    if (h_now_ms() >= deadline)
      return false;
    /* Quick conditions are seen quickly; slow ones are not asked more than 50 times a second. */
    h_sleep_ms(pause_ms);
    if (pause_ms < 20)
      pause_ms *= 2;
  }
}

void h_wait_until_at(const char *file, int line, h_cond_fn *cond, void *arg, unsigned timeout_ms,
                     const char *fmt, ...) {
  char seen[1024], what[512];
  uint64_t t0 = h_now_ms();
  if (h_wait_seen(cond, arg, timeout_ms, seen, sizeof(seen)))
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  h_fail_at(file, line, "gave up waiting for %s after %llu ms%s%s%s", what,
            (unsigned long long)(h_now_ms() - t0), seen[0] ? " (last seen: " : "", seen,
            seen[0] ? ")" : "");
}

/* ---- failing --------------------------------------------------------------------- */

/* Async-signal-safe: write(2) only. */
static void raw_puts(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

/* Async-signal-safe: copies the last `tail` bytes of a file to stderr. */
static void raw_dump(const char *title, const char *path, off_t tail) {
  char buf[4096];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  off_t size = lseek(fd, 0, SEEK_END);
  off_t from = size > tail ? size - tail : 0;
  lseek(fd, from, SEEK_SET);
  raw_puts("\n----- ");
  raw_puts(title);
  raw_puts(" (");
  raw_puts(path);
  raw_puts(from > 0 ? ", tail) -----\n" : ") -----\n");
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    if (write(2, buf, (size_t)n) < 0)
      break;
  }
  raw_puts("----- end -----\n");
  close(fd);
}

void h__dump_logs(void) {
  for (unsigned i = 0; i < T.n_logs && i < MAX_LOGS; i++)
    raw_dump(T.log_titles[i], T.logs[i], 24 * 1024);
}

void h__remember_log(const char *title, const char *path) {
  if (path == NULL || path[0] == '\0')
    return;
  for (unsigned i = 0; i < T.n_logs; i++)
    if (strcmp(T.logs[i], path) == 0)
      return;
  if (T.n_logs == MAX_LOGS)
    return;
  snprintf(T.log_titles[T.n_logs], sizeof(T.log_titles[0]), "%s", title);
  snprintf(T.logs[T.n_logs], sizeof(T.logs[0]), "%s", path);
  T.n_logs++;
}

static void on_fatal_signal(int sig) {
  raw_puts("\n[harness] ");
  raw_puts(sig == SIGALRM ? "test timed out (watchdog); " : "test interrupted by a signal; ");
  raw_puts("killing children\n");
  h__dump_logs();
  h__kill_all_raw();
  _exit(sig == SIGALRM ? 124 : 128 + sig);
}

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
    struct stat st;
    if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
      remove_tree(sub);
    else
      unlink(sub);
  }
  closedir(d);
  rmdir(path);
}

void h_init(const char *tag, unsigned timeout_s) {
  snprintf(T.tag, sizeof(T.tag), "%s", tag);
  T.start_ms = h_now_ms();
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(T.tmpdir, sizeof(T.tmpdir), "/tmp/rwt-%s-XXXXXX", tag);
  if (mkdtemp(T.tmpdir) == NULL) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    exit(1);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_fatal_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /*
   * runwayd keeps its slots in a state directory (for root /var/lib/runway) and
   * restores them at start: every runwayd a test starts, even without
   * --state-dir, keeps its state in the test's own directory instead.
   */
  setenv("XDG_STATE_HOME", T.tmpdir, 1);
  h__jack_errors(false);
  alarm(timeout_s * RWT_TIMEOUT_SCALE);
  h_log("temporary directory %s", T.tmpdir);
}

_Noreturn void h_fail_at(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  if (T.failing) /* a failure while failing: just get out */
    _exit(1);
  T.failing = true;
  fflush(stdout);
  fprintf(stderr, "\n[%s] FAILED at %s:%d: ", T.tag, file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fflush(stderr);
  h__dump_logs();
  fprintf(stderr, "[%s] logs kept in %s\n", T.tag, T.tmpdir);
  fflush(stderr);
  h__kill_all_raw();
  fflush(stdout);
  _exit(1);
}

_Noreturn void h_pass(void) {
  h__close_probes();
  h__stop_all();
  alarm(0);
  if (T.errors > 0) {
    fflush(stdout);
    h__dump_logs(); /* e.g. a sanitizer's report in runwayd's log */
    fprintf(stderr, "[%s] FAILED: %u error(s), see above; logs kept in %s\n", T.tag, T.errors,
            T.tmpdir);
    exit(1);
  }
  if (getenv("RWT_KEEP") != NULL)
    h_log("logs kept in %s (RWT_KEEP)", T.tmpdir);
  else
    remove_tree(T.tmpdir);
  h_log("PASS");
  exit(0);
}

_Noreturn void h_skip(const char *fmt, ...) {
  va_list ap;
  printf("[%s] SKIPPED: ", T.tag);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
  h__close_probes();
  h__stop_all();
  alarm(0);
  remove_tree(T.tmpdir);
  exit(H_SKIP_STATUS);
}

/* ---- the guard ------------------------------------------------------------------- */

/*
 * The guard: a process of its own (its own session, so a signal to the test's
 * process group spares it) that holds the read end of a pipe whose write end
 * only the test process has. Commands arrive as lines; at EOF, which is the
 * test process's death however it died, it runs them newest first.
 */
static int guard_fd = -1;

static void guard_main(int rfd) {
  char *cmds[64];
  unsigned n = 0;
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  for (;;) {
    if (buf == NULL)
      _exit(1);
    if (cap - len < 1024) {
      cap *= 2;
      buf = realloc(buf, cap);
      continue;
    }
    ssize_t r = read(rfd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  for (char *line = strtok(buf, "\n"); line != NULL && n < 64; line = strtok(NULL, "\n"))
    cmds[n++] = line;
  /* Let the test's children (killed by pid as the test ended) finish dying. */
  struct timespec ts = {0, 300 * 1000000L};
  nanosleep(&ts, NULL);
  while (n > 0) {
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmds[n - 1], (char *)NULL);
      _exit(127);
    }
    if (pid > 0)
      waitpid(pid, NULL, 0);
    n--;
  }
  _exit(0);
}

void h_guard(const char *shell_cmd) {
  if (strchr(shell_cmd, '\n') != NULL)
    H_FAIL("h_guard: one line per command");
  if (guard_fd < 0) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
      H_FAIL("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
      H_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
      close(fds[1]);
      setsid();
      for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
          signal(s, SIG_DFL);
      alarm(0);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, NULL);
      /* Nothing of ctest's: it waits for its output pipes to close. */
      int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      /* Closes every other descriptor, the write ends of other pipes included. */
      for (int fd = 3; fd < 1024; fd++)
        if (fd != fds[0])
          close(fd);
      guard_main(fds[0]);
    }
    close(fds[0]);
    guard_fd = fds[1];
  }
  char line[4096];
  int n = snprintf(line, sizeof(line), "%s\n", shell_cmd);
  if (n <= 0 || (size_t)n >= sizeof(line) || write(guard_fd, line, (size_t)n) != n)
    H_FAIL("h_guard: cannot register \"%s\"", shell_cmd);
}
