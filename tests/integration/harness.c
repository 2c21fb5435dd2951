#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jack/jack.h>
#include <jack/midiport.h>

#include "protocol.h"

#ifndef RWT_RUNWAYD
#error "RWT_RUNWAYD (path of runwayd) must be defined by the build"
#endif
#ifndef RWT_WORKER
#error "RWT_WORKER (path of runway-worker) must be defined by the build"
#endif

extern char **environ;

/* ---- test life ----------------------------------------------------------------- */

#define MAX_PROCS 64
#define MAX_PROBES 4

#define MAX_LOGS 32

static struct {
  char tag[64];
  char tmpdir[PATH_MAX];
  uint64_t start_ms;
  struct h_proc *procs[MAX_PROCS];
  /* Every child's log, kept after it exited, for the dump on failure. */
  char logs[MAX_LOGS][PATH_MAX];
  char log_titles[MAX_LOGS][64];
  unsigned n_logs;
  struct h_probe *probes[MAX_PROBES];
  unsigned errors;
  bool failing;
} T;

/*
 * Pids for the signal handler: plain ints it may read at any time. A
 * "graceful" child (jackd) gets SIGTERM and a moment before SIGKILL: a jackd
 * killed outright never leaves JACK's registry of servers, which has room
 * for eight (see reclaim_stale_servers).
 */
static volatile sig_atomic_t sig_pids[MAX_PROCS];
static volatile sig_atomic_t sig_graceful[MAX_PROCS];

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

/*
 * Async-signal-safe: SIGKILL to every registered child, newest first, except
 * the graceful ones, which get SIGTERM and up to 3 s to exit first.
 */
static void kill_all_raw(void) {
  for (int i = MAX_PROCS - 1; i >= 0; i--)
    if (sig_pids[i] > 0 && !sig_graceful[i])
      kill((pid_t)sig_pids[i], SIGKILL);
  for (int i = MAX_PROCS - 1; i >= 0; i--) {
    pid_t pid = (pid_t)sig_pids[i];
    if (pid <= 0 || !sig_graceful[i])
      continue;
    kill(pid, SIGTERM);
    for (int k = 0; k < 300; k++) {
      if (waitpid(pid, NULL, WNOHANG) != 0)
        break;
      struct timespec ts = {0, 10 * 1000000L};
      nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
  }
}

static void dump_logs(void) {
  for (unsigned i = 0; i < T.n_logs && i < MAX_LOGS; i++)
    raw_dump(T.log_titles[i], T.logs[i], 24 * 1024);
}

static void remember_log(const char *title, const char *path) {
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
  dump_logs();
  kill_all_raw();
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

static void silent_jack_error(const char *msg) { (void)msg; }

static void stderr_jack_error(const char *msg) { fprintf(stderr, "[jack] %s\n", msg); }

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
  jack_set_error_function(stderr_jack_error);
  alarm(timeout_s);
  h_log("temporary directory %s", T.tmpdir);
}

static void unregister_proc(struct h_proc *p) {
  for (unsigned i = 0; i < MAX_PROCS; i++) {
    if (T.procs[i] == p) {
      T.procs[i] = NULL;
      sig_pids[i] = 0;
      sig_graceful[i] = 0;
    }
  }
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
  dump_logs();
  fprintf(stderr, "[%s] logs kept in %s\n", T.tag, T.tmpdir);
  fflush(stderr);
  kill_all_raw();
  fflush(stdout);
  _exit(1);
}

_Noreturn void h_pass(void) {
  for (unsigned i = 0; i < MAX_PROBES; i++)
    if (T.probes[i] != NULL)
      h_probe_close(T.probes[i]);
  for (int i = MAX_PROCS - 1; i >= 0; i--)
    if (T.procs[i] != NULL && !T.procs[i]->reaped)
      h_proc_stop(T.procs[i], SIGTERM, 5000);
  alarm(0);
  if (T.errors > 0) {
    fflush(stdout);
    dump_logs(); /* e.g. a sanitizer's report in runwayd's log */
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

/* ---- processes ------------------------------------------------------------------ */

static bool env_key_matches(const char *entry, const char *key) {
  size_t k = strcspn(key, "=");
  return strncmp(entry, key, k) == 0 && entry[k] == '=';
}

static char **build_env(const char *const *set, const char *const *unset) {
  size_t n = 0, extra = 0;
  while (environ[n] != NULL)
    n++;
  while (set != NULL && set[extra] != NULL)
    extra++;
  char **env = calloc(n + extra + 1, sizeof(char *));
  if (env == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bool drop = false;
    for (size_t j = 0; set != NULL && set[j] != NULL && !drop; j++)
      drop = env_key_matches(environ[i], set[j]);
    for (size_t j = 0; unset != NULL && unset[j] != NULL && !drop; j++)
      drop = env_key_matches(environ[i], unset[j]);
    if (!drop)
      env[k++] = environ[i];
  }
  for (size_t j = 0; j < extra; j++)
    env[k++] = (char *)set[j];
  env[k] = NULL;
  return env;
}

static pid_t fork_exec(const char *const *argv, char **env, int out_fd, int err_fd,
                       int death_sig) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  /* Child: die with the test, default signals, our descriptors only. */
  prctl(PR_SET_PDEATHSIG, death_sig);
  if (getppid() != parent)
    _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      signal(s, SIG_DFL);
  alarm(0);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) {
    dup2(devnull, 0);
    close(devnull);
  }
  if (out_fd >= 0)
    dup2(out_fd, 1);
  if (err_fd >= 0)
    dup2(err_fd, 2);
  execvpe(argv[0], (char *const *)argv, env);
  dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

static void register_proc(struct h_proc *p) {
  for (unsigned i = 0; i < MAX_PROCS; i++) {
    if (T.procs[i] == NULL) {
      T.procs[i] = p;
      sig_graceful[i] = p->graceful;
      sig_pids[i] = p->pid;
      return;
    }
  }
  kill(p->pid, SIGKILL);
  H_FAIL("too many child processes");
}

static void spawn(struct h_proc *p, const char *what, const char *const *argv,
                  const char *const *set, const char *const *unset, const char *log,
                  bool graceful) {
  memset(p, 0, sizeof(*p));
  p->graceful = graceful;
  snprintf(p->what, sizeof(p->what), "%s", what);
  snprintf(p->log, sizeof(p->log), "%s", log ? log : "");
  int fd = -1;
  if (log != NULL) {
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
      H_FAIL("cannot open %s: %s", log, strerror(errno));
  }
  char **env = build_env(set, unset);
  if (env == NULL)
    H_FAIL("out of memory");
  remember_log(what, log);
  fflush(stdout);
  fflush(stderr);
  p->pid = fork_exec(argv, env, fd, fd, graceful ? SIGTERM : SIGKILL);
  int saved = errno;
  free(env);
  if (fd >= 0)
    close(fd);
  if (p->pid < 0)
    H_FAIL("fork for %s: %s", what, strerror(saved));
  register_proc(p);
}

void h_spawn(struct h_proc *p, const char *what, const char *const *argv, const char *const *set,
             const char *const *unset, const char *log) {
  spawn(p, what, argv, set, unset, log, false);
}

bool h_proc_alive(struct h_proc *p) {
  if (p->reaped)
    return false;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == p->pid) {
    p->reaped = true;
    p->status = st;
    unregister_proc(p);
    return false;
  }
  return true;
}

bool h_proc_wait(struct h_proc *p, unsigned timeout_ms) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  while (h_proc_alive(p)) {
    if (h_now_ms() >= deadline)
      return false;
    h_sleep_ms(5);
  }
  return true;
}

int h_proc_stop(struct h_proc *p, int sig, unsigned timeout_ms) {
  if (p->reaped)
    return p->status;
  kill(p->pid, sig);
  if (!h_proc_wait(p, timeout_ms)) {
    h_log("%s (pid %d) did not exit within %u ms of signal %d; killing it", p->what, (int)p->pid,
          timeout_ms, sig);
    kill(p->pid, SIGKILL);
    h_proc_wait(p, 10000);
  }
  return p->status;
}

const char *h_status_str(int status, char *buf, size_t len) {
  if (WIFEXITED(status))
    snprintf(buf, len, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, len, "status 0x%x", status);
  return buf;
}

int h_run_capture(const char *const *argv, const char *const *set, const char *const *unset,
                  const char *log, unsigned timeout_ms, char **out) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0)
    H_FAIL("pipe: %s", strerror(errno));
  int err_fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
  char **env = build_env(set, unset);
  remember_log(argv[0], log);
  struct h_proc p;
  memset(&p, 0, sizeof(p));
  snprintf(p.what, sizeof(p.what), "%s", argv[0]);
  fflush(stdout);
  fflush(stderr);
  p.pid = fork_exec(argv, env, pipefd[1], err_fd, SIGKILL);
  free(env);
  close(pipefd[1]);
  if (err_fd >= 0)
    close(err_fd);
  if (p.pid < 0)
    H_FAIL("fork: %s", strerror(errno));
  register_proc(&p);

  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  uint64_t deadline = h_now_ms() + timeout_ms;
  for (;;) {
    int64_t left = (int64_t)deadline - (int64_t)h_now_ms();
    if (left <= 0) {
      kill(p.pid, SIGKILL);
      H_FAIL("%s did not finish within %u ms", argv[0], timeout_ms);
    }
    struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    if (len + 1024 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
    ssize_t n = read(pipefd[0], buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(pipefd[0]);
  buf[len] = '\0';
  if (!h_proc_wait(&p, timeout_ms)) {
    kill(p.pid, SIGKILL);
    H_FAIL("%s did not exit", argv[0]);
  }
  *out = buf;
  return p.status;
}

bool h_pid_exists(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

uint64_t h_sched_delay_ns(pid_t pid) {
  char dir[64], path[384];
  uint64_t sum = 0;
  snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
    FILE *f = fopen(path, "re");
    unsigned long long run = 0, wait = 0;
    if (f != NULL) {
      if (fscanf(f, "%llu %llu", &run, &wait) == 2)
        sum += wait;
      fclose(f);
    }
  }
  closedir(d);
  return sum;
}

/* ---- files ----------------------------------------------------------------------- */

size_t h_file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

char *h_file_read(const char *path) {
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 1024) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

unsigned h_file_count(const char *path, size_t from, const char *needle) {
  char *text = h_file_read(path);
  unsigned count = 0;
  if (text == NULL)
    return 0;
  size_t len = strlen(text);
  const char *p = text + (from < len ? from : len);
  while ((p = strstr(p, needle)) != NULL) {
    count++;
    p = strchr(p, '\n');
    if (p == NULL)
      break;
  }
  free(text);
  return count;
}

/* ---- JACK server ------------------------------------------------------------------ */

static unsigned name_counter;

static void unique_name(char *buf, size_t len, const char *kind) {
  snprintf(buf, len, "rw%s-%.12s-%d-%u", kind, T.tag, (int)getpid(), name_counter++);
}

static jack_client_t *open_client(const char *server, const char *name, jack_status_t *st) {
  return jack_client_open(name, JackNoStartServer | JackServerName | JackUseExactName, st, server);
}

/*
 * Starts jackd -n name and waits until a client can connect. Returns 0, or
 * -EAGAIN when jackd exited because JACK's registry of servers is full; other
 * failures fail the test, unless quiet (then -EIO).
 */
static int start_server(struct h_jack *j, const char *name, uint32_t rate, uint32_t period,
                        bool quiet) {
  char log[PATH_MAX], r[16], per[16];
  memset(j, 0, sizeof(*j));
  snprintf(j->name, sizeof(j->name), "%s", name);
  j->rate = rate;
  j->period = period;
  if (snprintf(log, sizeof(log), "%s/jackd-%s.log", T.tmpdir, j->name) >= (int)sizeof(log))
    H_FAIL("path too long");
  snprintf(r, sizeof(r), "%u", rate);
  snprintf(per, sizeof(per), "%u", period);
  const char *jackd = getenv("RUNWAY_TEST_JACKD");
  const char *argv[] = {jackd && *jackd ? jackd : "jackd", "-n", j->name, "-d", "dummy", "-r", r,
                        "-p", per, NULL};
  const char *set[] = {"JACK_NO_AUDIO_RESERVATION=1", NULL};
  spawn(&j->proc, "jackd", argv, set, NULL, log, true);

  /* Ready when a client can connect. */
  uint64_t t0 = h_now_ms(), deadline = t0 + 10000;
  char ping[64];
  unique_name(ping, sizeof(ping), "ping");
  jack_set_error_function(silent_jack_error);
  for (;;) {
    if (!h_proc_alive(&j->proc)) {
      jack_set_error_function(stderr_jack_error);
      if (h_file_count(log, 0, "Too many servers already active") > 0)
        return -EAGAIN;
      if (quiet)
        return -EIO;
      H_FAIL("jackd %s exited during start-up", j->name);
    }
    jack_status_t st = 0;
    jack_client_t *c = open_client(j->name, ping, &st);
    if (c != NULL) {
      uint32_t got_rate = jack_get_sample_rate(c), got_period = jack_get_buffer_size(c);
      jack_client_close(c);
      jack_set_error_function(stderr_jack_error);
      if (got_rate != rate || got_period != period)
        H_FAIL("jackd %s runs at %u Hz / %u frames, asked for %u / %u", j->name, got_rate,
               got_period, rate, period);
      break;
    }
    if (h_now_ms() > deadline) {
      jack_set_error_function(stderr_jack_error);
      if (quiet) {
        h_proc_stop(&j->proc, SIGTERM, 5000);
        return -EIO;
      }
      H_FAIL("jackd %s did not accept clients within 10 s (status 0x%x)", j->name, (unsigned)st);
    }
    h_sleep_ms(20);
  }
  if (!quiet)
    h_log("jackd %s (pid %d): %u Hz, %u frames, ready in %llu ms", j->name, (int)j->proc.pid,
          rate, period, (unsigned long long)(h_now_ms() - t0));
  return 0;
}

/*
 * JACK keeps a registry of running servers in shared memory with room for
 * eight (MAX_SERVERS in JACK2's shm.c). A server that exits cleanly leaves
 * it; one killed outright stays registered, and its entry is only reclaimed
 * by a server starting under the same name. Test servers have unique names,
 * so this finds entries of our dead test servers ("rwsrv-" names whose
 * process is gone) and reclaims each by starting and stopping a server of
 * that name. The registry's layout is JACK2's; anything unexpected and this
 * does nothing.
 */
static void reclaim_stale_servers(void) {
  enum { OFFSET = 0x18, STRIDE = 264, MAX_SERVERS = 8, NAME = 257 };
  char prefix[64], stale[MAX_SERVERS][NAME];
  unsigned n_stale = 0;
  FILE *f = fopen("/dev/shm/jack-shm-registry", "re");
  if (f == NULL)
    return;
  unsigned char buf[OFFSET + STRIDE * MAX_SERVERS];
  size_t got = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  uint32_t magic;
  memcpy(&magic, buf, sizeof(magic));
  if (got != sizeof(buf) || magic != 0x4a41434bu)
    return;
  snprintf(prefix, sizeof(prefix), "jack-%u:rwsrv-", (unsigned)getuid());
  for (unsigned i = 0; i < MAX_SERVERS; i++) {
    const unsigned char *e = buf + OFFSET + i * STRIDE;
    int32_t pid;
    char name[NAME];
    memcpy(&pid, e, sizeof(pid));
    memcpy(name, e + 4, NAME - 1);
    name[NAME - 1] = '\0';
    if (pid <= 0 || strncmp(name, prefix, strlen(prefix)) != 0 || h_pid_exists(pid))
      continue;
    /* "jack-UID:NAME:" -> NAME */
    char *server = strchr(name, ':') + 1;
    char *end = strrchr(server, ':');
    if (end == NULL || end == server)
      continue;
    *end = '\0';
    snprintf(stale[n_stale++], NAME, "%s", server);
  }
  for (unsigned i = 0; i < n_stale; i++) {
    struct h_jack tmp;
    h_log("reclaiming JACK's registry entry of dead test server %s", stale[i]);
    if (start_server(&tmp, stale[i], 48000, 256, true) == 0)
      h_proc_stop(&tmp.proc, SIGTERM, 5000);
  }
}

void h_jack_start(struct h_jack *j, uint32_t rate, uint32_t period) {
  char name[64];
  /* Client and server names share /dev/shm socket names: keep them all unique. */
  unique_name(name, sizeof(name), "srv");
  reclaim_stale_servers();
  if (start_server(j, name, rate, period, false) == 0)
    goto ready;
  h_log("jackd: too many JACK servers registered; reclaiming stale entries and retrying");
  reclaim_stale_servers();
  if (start_server(j, name, rate, period, false) != 0)
    H_FAIL("jackd cannot start: JACK's registry of servers is full (Too many servers already "
           "active); other JACK servers run on this machine");
ready:
  setenv("JACK_DEFAULT_SERVER", j->name, 1);
}

void h_jack_stop(struct h_jack *j) {
  if (j->proc.pid > 0 && !j->proc.reaped)
    h_proc_stop(&j->proc, SIGTERM, 5000);
}

/* ---- runwayd --------------------------------------------------------------------------- */

void h_daemon_start(struct h_daemon *d, const struct h_jack *j, const char *const *extra_args,
                    const char *const *extra_env) {
  char log[PATH_MAX];
  const char *argv[40];
  const char *env[20];
  char server_env[128], worker_env[PATH_MAX + 32];
  size_t a = 0, e = 0;

  memset(d, 0, sizeof(*d));
  unique_name(d->name, sizeof(d->name), "d");
  if (snprintf(d->socket, sizeof(d->socket), "%s/%s.sock", T.tmpdir, d->name) >=
          (int)sizeof(d->socket) ||
      snprintf(log, sizeof(log), "%s/runwayd-%s.log", T.tmpdir, d->name) >= (int)sizeof(log) ||
      snprintf(d->state_dir, sizeof(d->state_dir), "%s/state-%s", T.tmpdir, d->name) >=
          (int)sizeof(d->state_dir))
    H_FAIL("path too long");
  argv[a++] = RWT_RUNWAYD;
  argv[a++] = "--socket";
  argv[a++] = d->socket;
  argv[a++] = "--name";
  argv[a++] = d->name;
  argv[a++] = "--worker";
  argv[a++] = RWT_WORKER;
  /* Slots persist across daemon restarts: keep this daemon's state to itself. */
  argv[a++] = "--state-dir";
  argv[a++] = d->state_dir;
  for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && a < 38; i++)
    argv[a++] = extra_args[i];
  argv[a] = NULL;
  snprintf(server_env, sizeof(server_env), "JACK_DEFAULT_SERVER=%s", j->name);
  snprintf(worker_env, sizeof(worker_env), "RUNWAY_WORKER=%s", RWT_WORKER);
  env[e++] = server_env;
  env[e++] = worker_env;
  for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && e < 19; i++)
    env[e++] = extra_env[i];
  env[e] = NULL;
  const char *unset[] = {"RUNWAY_SOCKET", "RUNWAY_SLOT", "RUNWAY_SEGMENT_FD",
                         "RUNWAY_SEGMENT_WORKER_FD", NULL};
  h_spawn(&d->proc, "runwayd", argv, env, unset, log);

  /* Ready when the socket answers status with the backend active. */
  uint64_t t0 = h_now_ms(), deadline = t0 + 15000;
  struct h_conn c;
  for (;;) {
    if (!h_proc_alive(&d->proc)) {
      char st[64];
      H_FAIL("runwayd exited during start-up (%s)", h_status_str(d->proc.status, st, sizeof(st)));
    }
    if (h_conn_open(&c, d->socket) == 0) {
      json_t *r = h_call(&c, "status", NULL);
      const char *state = h_str(r, "backend_state");
      bool active = state != NULL && strcmp(state, "active") == 0;
      json_decref(r);
      h_conn_close(&c);
      if (active)
        break;
    }
    if (h_now_ms() > deadline)
      H_FAIL("runwayd did not become ready (socket answering, JACK active) within 15 s");
    h_sleep_ms(20);
  }
  h_log("runwayd %s (pid %d) ready in %llu ms", d->name, (int)d->proc.pid,
        (unsigned long long)(h_now_ms() - t0));
}

int h_daemon_stop(struct h_daemon *d) {
  char st[64];
  if (d->proc.reaped)
    return d->proc.status;
  uint64_t t0 = h_now_ms();
  int status = h_proc_stop(&d->proc, SIGTERM, 20000);
  h_log("runwayd stopped in %llu ms: %s", (unsigned long long)(h_now_ms() - t0),
        h_status_str(status, st, sizeof(st)));
  return status;
}

/* ---- control connection --------------------------------------------------------------- */

int h_conn_open(struct h_conn *c, const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  c->next_id = 1;
  if (strlen(path) >= sizeof(addr.sun_path))
    return -ENAMETOOLONG;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  c->fd = fd;
  c->cap = 1 << 16;
  c->buf = malloc(c->cap);
  return 0;
}

void h_conn_close(struct h_conn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

int h_conn_send(struct h_conn *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

char *h_conn_read_line(struct h_conn *c, unsigned timeout_ms, int *err) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  *err = 0;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl != NULL) {
      size_t n = (size_t)(nl - c->buf);
      char *line = malloc(n + 1);
      memcpy(line, c->buf, n);
      line[n] = '\0';
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return line;
    }
    int64_t left = (int64_t)deadline - (int64_t)h_now_ms();
    if (left <= 0) {
      *err = -ETIMEDOUT;
      return NULL;
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      *err = -errno;
      return NULL;
    }
    if (r == 0)
      continue;
    if (c->cap - c->len < 4096) {
      c->cap *= 2;
      c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      *err = -errno;
      return NULL;
    }
    if (n == 0) {
      *err = -EPIPE;
      return NULL;
    }
    c->len += (size_t)n;
  }
}

json_t *h_request(struct h_conn *c, const char *cmd, json_t *args) {
  long long id = c->next_id++;
  json_t *req = json_pack("{s:I, s:s}", "id", (json_int_t)id, "cmd", cmd);
  if (args != NULL)
    json_object_set_new(req, "args", args);
  size_t len;
  char *line = proto_dump_line(req, &len);
  json_decref(req);
  if (line == NULL)
    H_FAIL("cannot encode a %s request", cmd);
  int rc = h_conn_send(c, line, len);
  free(line);
  if (rc != 0)
    H_FAIL("sending %s to runwayd: %s", cmd, strerror(-rc));
  int err;
  char *resp_line = h_conn_read_line(c, 10000, &err);
  if (resp_line == NULL)
    H_FAIL("no answer to %s from runwayd: %s", cmd, strerror(-err));
  json_error_t jerr;
  json_t *resp = json_loads(resp_line, 0, &jerr);
  if (resp == NULL || !json_is_object(resp))
    H_FAIL("answer to %s is not a JSON object: %s", cmd, resp_line);
  json_t *rid = json_object_get(resp, "id");
  if (!json_is_integer(rid) || json_integer_value(rid) != id)
    H_FAIL("answer to %s (id %lld) carries another id: %s", cmd, id, resp_line);
  free(resp_line);
  return resp;
}

const char *h_error_code(const json_t *resp) {
  if (json_is_true(json_object_get(resp, "ok")))
    return NULL;
  const char *code = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
  return code ? code : "(no code)";
}

json_t *h_call(struct h_conn *c, const char *cmd, json_t *args) {
  json_t *resp = h_request(c, cmd, args);
  if (!json_is_true(json_object_get(resp, "ok"))) {
    char *text = json_dumps(resp, JSON_COMPACT);
    H_FAIL("%s failed: %s", cmd, text);
  }
  json_t *result = json_incref(json_object_get(resp, "result"));
  json_decref(resp);
  return result;
}

json_t *h_call_error(struct h_conn *c, const char *cmd, json_t *args, const char *code) {
  json_t *resp = h_request(c, cmd, args);
  const char *got = h_error_code(resp);
  if (got == NULL || strcmp(got, code) != 0) {
    char *text = json_dumps(resp, JSON_COMPACT);
    H_FAIL("%s: expected error %s, got %s", cmd, code, text);
  }
  return resp;
}

json_int_t h_int(const json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_integer(v) ? json_integer_value(v) : -1;
}

const char *h_str(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

json_t *h_slot(struct h_conn *c, const char *name) {
  json_t *r = h_call(c, "slot.list", NULL);
  json_t *slots = json_object_get(r, "slots"), *s, *found = NULL;
  size_t i;
  json_array_foreach(slots, i, s) {
    const char *n = h_str(s, "name");
    if (n != NULL && strcmp(n, name) == 0)
      found = json_incref(s);
  }
  json_decref(r);
  return found;
}

json_t *h_slot_stats(struct h_conn *c, const char *name) {
  json_t *r = h_call(c, "stats", json_pack("{s:s}", "name", name));
  json_t *slots = json_object_get(r, "slots");
  json_t *s = json_incref(json_array_get(slots, 0));
  json_decref(r);
  if (s == NULL)
    H_FAIL("stats has no slot %s", name);
  return s;
}

json_int_t h_slot_stat(struct h_conn *c, const char *name, const char *key) {
  json_t *s = h_slot_stats(c, name);
  json_int_t v = h_int(s, key);
  json_decref(s);
  return v;
}

json_t *h_daemon_stats(struct h_conn *c) {
  json_t *r = h_call(c, "stats", NULL);
  json_t *d = json_incref(json_object_get(r, "daemon"));
  json_decref(r);
  return d;
}

json_t *h_wait_slot(struct h_conn *c, const char *name, const char *state, json_int_t not_pid,
                    unsigned timeout_ms) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  json_t *s = NULL;
  for (;;) {
    s = h_slot(c, name);
    const char *st = h_str(s, "state");
    if (st != NULL && strcmp(st, state) == 0 && (not_pid == 0 || h_int(s, "pid") != not_pid))
      return s;
    if (h_now_ms() > deadline) {
      char *text = s ? json_dumps(s, JSON_COMPACT) : NULL;
      H_FAIL("slot %s not %s%s within %u ms; last seen: %s", name, state,
             not_pid ? " with a new pid" : "", timeout_ms, text ? text : "(no such slot)");
    }
    json_decref(s);
    h_sleep_ms(10);
  }
}

json_t *h_add_slot(struct h_conn *c, const char *name, json_t *args, unsigned timeout_ms) {
  json_object_set_new(args, "name", json_string(name));
  json_t *r = h_call(c, "slot.add", args);
  json_decref(r);
  return h_wait_slot(c, name, "running", 0, timeout_ms);
}

/* ---- the probe ---------------------------------------------------------------------------- */

#define MAX_EVENTS (1u << 16)
#define MAX_RECORDS (1u << 20)

enum { EV_AUDIO = 1, EV_MIDI = 2 };

struct event {
  uint64_t frame;
  uint32_t kind;
  uint32_t port;
  float value;
  uint8_t midi[3];
  uint8_t size;
};

struct h_probe {
  jack_client_t *src;
  jack_client_t *snk;
  const struct h_jack *jack;
  unsigned n_out;
  unsigned n_in;
  jack_port_t *out[H_PROBE_MAX_PORTS];
  jack_port_t *midi_out;
  jack_port_t *in[H_PROBE_MAX_PORTS];
  char out_names[H_PROBE_MAX_PORTS][320];
  char in_names[H_PROBE_MAX_PORTS][320];
  char midi_name[320];
  uint32_t src_latency;
  uint32_t sink_latency;

  /* Schedule: written by the test thread below n_events, read by the source's RT thread. */
  struct event *events;
  _Atomic uint32_t n_events;
  _Atomic uint8_t *status;
  uint32_t cursor; /* source RT thread only */
  uint64_t src_pos; /* source RT thread only: the probe's frame clock */
  uint64_t last_frame;
  /*
   * The probe's frame clock. JACK's frame timer moves on when the driver
   * starts a cycle, even when the previous graph run is still going (an xrun
   * on a loaded machine): a client late in that run then reads the next
   * cycle's time. So the probe counts its own frames: the source advances the
   * clock by n every cycle and publishes the cycle's start, and the sink, which
   * runs later in the same graph run, labels its input with that start. Both
   * ends of a path through runway then agree on every frame's time, as runway
   * does (its timeline also advances by n per run). The clock starts at JACK's
   * frame time and differs from it only after such slips.
   */
  bool src_started;            /* source RT thread only */
  _Atomic uint64_t src_start;  /* start of the source's latest cycle */
  _Atomic int64_t src_offset;  /* probe clock - JACK frame time */
  _Atomic uint64_t src_cycles; /* cycles the source ran; src_start is valid once > 0 */
  bool snk_started;            /* sink RT thread only */
  _Atomic uint64_t late;
  _Atomic uint64_t xruns;
  /*
   * Where the graph was disturbed. At an xrun JACK restarts the graph while
   * clients of the late cycle still run, so one cycle's data can be lost or
   * seen twice at a client boundary (the probe's, runway's): no client's
   * fault, and not what these tests measure. Expectations near a disturbance
   * are checked leniently (h_check_port); everything else exactly.
   */
  uint64_t xrun_at[512]; /* probe clock when the xrun callback ran */
  _Atomic uint32_t n_xrun_at;
  uint32_t path_latency[8]; /* slot latencies between source and sink (test thread) */
  unsigned n_path_latency;

  /* Sink: records appended by its RT thread below n_records. */
  struct h_record *records;
  _Atomic uint32_t n_records;
  _Atomic uint64_t overflow;
  _Atomic uint64_t first;
  _Atomic uint64_t end; /* frames before this one are recorded */
  /* Where the sink's clock and the source's disagreed (h_check_port prints them). */
  struct {
    uint64_t at;   /* the sink's cycle start */
    uint64_t src;  /* the start of the source's latest run then */
    uint32_t kind; /* 1: disagreement (a disturbance); 2: the sink adopted the source's clock */
  } gap_log[512];
  _Atomic uint32_t n_gap_log;
  int64_t snk_skew;       /* sink RT thread only: the last disagreement */
  unsigned snk_skew_runs; /* sink RT thread only: runs it lasted */
  _Atomic uint64_t sink_cycles;
  _Atomic uint64_t gaps;
  _Atomic int count_only[H_PROBE_MAX_PORTS];
  _Atomic uint32_t dc_bits[H_PROBE_MAX_PORTS]; /* a constant level on source output i (float bits) */
  _Atomic uint64_t nonzero[H_PROBE_MAX_PORTS];
  _Atomic uint64_t nonfinite[H_PROBE_MAX_PORTS];
};

/* Single-writer counters: relaxed load and store (no locked add on the RT thread). */
static inline void bump(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

static int source_process(jack_nframes_t n, void *arg) {
  struct h_probe *p = arg;
  uint64_t jack_f0 = jack_last_frame_time(p->src);
  if (!p->src_started) {
    p->src_pos = jack_f0;
    p->src_started = true;
  }
  uint64_t f0 = p->src_pos;
  p->src_pos += n;
  float *buf[H_PROBE_MAX_PORTS];
  void *midi = NULL;
  for (unsigned i = 0; i < p->n_out; i++) {
    buf[i] = jack_port_get_buffer(p->out[i], n);
    uint32_t bits = atomic_load_explicit(&p->dc_bits[i], memory_order_relaxed);
    if (bits == 0) {
      memset(buf[i], 0, n * sizeof(float));
    } else {
      float level;
      memcpy(&level, &bits, sizeof(level));
      for (uint32_t k = 0; k < n; k++)
        buf[i][k] = level;
    }
  }
  if (p->midi_out != NULL) {
    midi = jack_port_get_buffer(p->midi_out, n);
    jack_midi_clear_buffer(midi);
  }
  /* Acquire: the events below n_events are completely written. */
  uint32_t avail = atomic_load_explicit(&p->n_events, memory_order_acquire);
  while (p->cursor < avail) {
    const struct event *e = &p->events[p->cursor];
    if (e->frame >= f0 + n)
      break;
    uint8_t st = H_EV_LATE;
    if (e->frame >= f0) {
      uint32_t off = (uint32_t)(e->frame - f0);
      if (e->kind == EV_AUDIO && e->port < p->n_out) {
        buf[e->port][off] = e->value;
        st = H_EV_EMITTED;
      } else if (e->kind == EV_MIDI && midi != NULL &&
                 jack_midi_event_write(midi, off, e->midi, e->size) == 0) {
        st = H_EV_EMITTED;
      }
    }
    if (st == H_EV_LATE)
      bump(&p->late, 1);
    atomic_store_explicit(&p->status[p->cursor], st, memory_order_release);
    p->cursor++;
  }
  atomic_store_explicit(&p->src_offset, (int64_t)(f0 - jack_f0), memory_order_relaxed);
  atomic_store_explicit(&p->src_start, f0, memory_order_relaxed);
  /* Release: src_start is written before the sink (later in this graph run) sees the count. */
  atomic_store_explicit(&p->src_cycles, atomic_load_explicit(&p->src_cycles, memory_order_relaxed) + 1,
                        memory_order_release);
  return 0;
}

static void note_gap(struct h_probe *p, uint32_t kind, uint64_t src, uint64_t at) {
  uint32_t k = atomic_load_explicit(&p->n_gap_log, memory_order_relaxed);
  if (k >= sizeof(p->gap_log) / sizeof(p->gap_log[0]))
    return;
  p->gap_log[k].at = at;
  p->gap_log[k].src = src;
  p->gap_log[k].kind = kind;
  /* Release: the entry is written before the test thread sees it counted. */
  atomic_store_explicit(&p->n_gap_log, k + 1, memory_order_release);
}

static int sink_process(jack_nframes_t n, void *arg) {
  struct h_probe *p = arg;
  /* Acquire: pairs with the source's release; src_start is then the start of its latest run. */
  uint64_t cycles = atomic_load_explicit(&p->src_cycles, memory_order_acquire);
  if (cycles == 0)
    return 0; /* the source has not run yet */
  uint64_t src = atomic_load_explicit(&p->src_start, memory_order_relaxed);
  uint64_t f0;
  if (!p->snk_started) {
    p->snk_started = true;
    f0 = src;
    atomic_store_explicit(&p->first, f0, memory_order_relaxed);
  } else {
    f0 = atomic_load_explicit(&p->end, memory_order_relaxed);
  }
  /*
   * Normally the source ran just before us in this graph run: src == f0. A
   * transient difference is a graph disturbance (noted); a steady one (the
   * order of the clients changed, e.g. when the path through runway was
   * connected) is adopted after a few runs.
   */
  if (src != f0) {
    int64_t diff = (int64_t)(src - f0);
    if (p->snk_skew_runs == 0 || diff != p->snk_skew) {
      bump(&p->gaps, 1);
      note_gap(p, 1, src, f0);
      p->snk_skew = diff;
      p->snk_skew_runs = 1;
    } else if (++p->snk_skew_runs >= 8) {
      note_gap(p, 2, src, f0);
      f0 = src;
      p->snk_skew_runs = 0;
    }
  } else {
    p->snk_skew_runs = 0;
  }
  uint32_t nrec = atomic_load_explicit(&p->n_records, memory_order_relaxed);
  for (unsigned i = 0; i < p->n_in; i++) {
    const float *in = jack_port_get_buffer(p->in[i], n);
    bool count_only = atomic_load_explicit(&p->count_only[i], memory_order_relaxed);
    uint64_t nz = 0, nf = 0;
    for (uint32_t k = 0; k < n; k++) {
      uint32_t bits;
      memcpy(&bits, &in[k], sizeof(bits));
      if ((bits & 0x7fffffffu) == 0)
        continue;
      nz++;
      nf += (bits & 0x7f800000u) == 0x7f800000u;
      if (count_only)
        continue;
      if (nrec < MAX_RECORDS) {
        p->records[nrec].frame = f0 + k;
        p->records[nrec].port = i;
        p->records[nrec].value = in[k];
        nrec++;
      } else {
        bump(&p->overflow, 1);
      }
    }
    if (nz)
      bump(&p->nonzero[i], nz);
    if (nf)
      bump(&p->nonfinite[i], nf);
  }
  /* Release: the records below n_records are completely written. */
  atomic_store_explicit(&p->n_records, nrec, memory_order_release);
  atomic_store_explicit(&p->end, f0 + n, memory_order_release);
  /* Release: first and end are set before the test thread sees a cycle counted. */
  atomic_store_explicit(&p->sink_cycles,
                        atomic_load_explicit(&p->sink_cycles, memory_order_relaxed) + 1,
                        memory_order_release);
  return 0;
}

static int source_xrun(void *arg) {
  struct h_probe *p = arg;
  atomic_fetch_add_explicit(&p->xruns, 1, memory_order_relaxed);
  /* JACK calls this from one notification thread, so the log has a single writer. */
  uint32_t k = atomic_load_explicit(&p->n_xrun_at, memory_order_relaxed);
  if (k < sizeof(p->xrun_at) / sizeof(p->xrun_at[0])) {
    p->xrun_at[k] = (uint64_t)((int64_t)jack_frame_time(p->src) +
                               atomic_load_explicit(&p->src_offset, memory_order_relaxed));
    /* Release: the entry is written before the test thread sees it counted. */
    atomic_store_explicit(&p->n_xrun_at, k + 1, memory_order_release);
  }
  return 0;
}

static void source_latency_cb(jack_latency_callback_mode_t mode, void *arg) {
  struct h_probe *p = arg;
  if (mode != JackCaptureLatency)
    return;
  jack_latency_range_t r = {p->src_latency, p->src_latency};
  for (unsigned i = 0; i < p->n_out; i++)
    jack_port_set_latency_range(p->out[i], JackCaptureLatency, &r);
  if (p->midi_out != NULL)
    jack_port_set_latency_range(p->midi_out, JackCaptureLatency, &r);
}

static void sink_latency_cb(jack_latency_callback_mode_t mode, void *arg) {
  struct h_probe *p = arg;
  if (mode != JackPlaybackLatency)
    return;
  jack_latency_range_t r = {p->sink_latency, p->sink_latency};
  for (unsigned i = 0; i < p->n_in; i++)
    jack_port_set_latency_range(p->in[i], JackPlaybackLatency, &r);
}

static jack_port_t *register_port(jack_client_t *c, const char *name, const char *type,
                                  unsigned long flags, char *full, size_t len) {
  jack_port_t *port = jack_port_register(c, name, type, flags, 0);
  if (port == NULL)
    H_FAIL("cannot register probe port %s", name);
  snprintf(full, len, "%s", jack_port_name(port));
  return port;
}

struct h_probe *h_probe_open(const struct h_jack *j, unsigned n_out, bool midi, unsigned n_in,
                             uint32_t src_latency, uint32_t sink_latency) {
  char name[64], port[32];
  jack_status_t st = 0;
  if (n_out > H_PROBE_MAX_PORTS || n_in > H_PROBE_MAX_PORTS)
    H_FAIL("too many probe ports");
  struct h_probe *p = calloc(1, sizeof(*p));
  p->jack = j;
  p->n_out = n_out;
  p->n_in = n_in;
  p->src_latency = src_latency;
  p->sink_latency = sink_latency;
  p->events = calloc(MAX_EVENTS, sizeof(*p->events));
  p->status = calloc(MAX_EVENTS, sizeof(*p->status));
  p->records = malloc(MAX_RECORDS * sizeof(*p->records));
  if (p->events == NULL || p->status == NULL || p->records == NULL)
    H_FAIL("out of memory for the probe");
  /* Touch every page now, so the sink's RT callback never takes a first-touch fault. */
  memset(p->records, 0, MAX_RECORDS * sizeof(*p->records));

  unique_name(name, sizeof(name), "src");
  p->src = open_client(j->name, name, &st);
  if (p->src == NULL)
    H_FAIL("cannot open the probe source client (status 0x%x)", (unsigned)st);
  unique_name(name, sizeof(name), "snk");
  p->snk = open_client(j->name, name, &st);
  if (p->snk == NULL)
    H_FAIL("cannot open the probe sink client (status 0x%x)", (unsigned)st);

  for (unsigned i = 0; i < n_out; i++) {
    snprintf(port, sizeof(port), "out_%u", i + 1);
    p->out[i] = register_port(p->src, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput,
                              p->out_names[i], sizeof(p->out_names[i]));
  }
  if (midi)
    p->midi_out = register_port(p->src, "midi_out", JACK_DEFAULT_MIDI_TYPE, JackPortIsOutput,
                                p->midi_name, sizeof(p->midi_name));
  for (unsigned i = 0; i < n_in; i++) {
    snprintf(port, sizeof(port), "in_%u", i + 1);
    p->in[i] = register_port(p->snk, port, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput,
                             p->in_names[i], sizeof(p->in_names[i]));
  }
  if (jack_set_process_callback(p->src, source_process, p) != 0 ||
      jack_set_xrun_callback(p->src, source_xrun, p) != 0 ||
      jack_set_latency_callback(p->src, source_latency_cb, p) != 0 ||
      jack_set_process_callback(p->snk, sink_process, p) != 0 ||
      jack_set_latency_callback(p->snk, sink_latency_cb, p) != 0)
    H_FAIL("cannot install the probe's JACK callbacks");
  if (jack_activate(p->src) != 0 || jack_activate(p->snk) != 0)
    H_FAIL("cannot activate the probe clients");
  for (unsigned i = 0; i < MAX_PROBES; i++) {
    if (T.probes[i] == NULL) {
      T.probes[i] = p;
      break;
    }
  }
  /* Running when the sink has labelled a cycle. */
  uint64_t deadline = h_now_ms() + 5000;
  while (atomic_load_explicit(&p->sink_cycles, memory_order_acquire) == 0) {
    if (h_now_ms() > deadline)
      H_FAIL("the probe's sink saw no cycle within 5 s");
    h_sleep_ms(2);
  }
  return p;
}

void h_probe_close(struct h_probe *p) {
  if (p == NULL)
    return;
  for (unsigned i = 0; i < MAX_PROBES; i++)
    if (T.probes[i] == p)
      T.probes[i] = NULL;
  jack_client_close(p->src);
  jack_client_close(p->snk);
  free(p->events);
  free(p->status);
  free(p->records);
  free(p);
}

const char *h_probe_out(const struct h_probe *p, unsigned i) { return p->out_names[i]; }
const char *h_probe_source_client(const struct h_probe *p) { return jack_get_client_name(p->src); }
const char *h_probe_midi(const struct h_probe *p) { return p->midi_name; }
const char *h_probe_in(const struct h_probe *p, unsigned i) { return p->in_names[i]; }

void h_probe_count_only(struct h_probe *p, unsigned i) {
  atomic_store_explicit(&p->count_only[i], 1, memory_order_relaxed);
}

void h_probe_dc(struct h_probe *p, unsigned port, float level) {
  uint32_t bits;
  if (port >= p->n_out)
    H_FAIL("no probe output %u", port);
  memcpy(&bits, &level, sizeof(bits));
  atomic_store_explicit(&p->dc_bits[port], bits, memory_order_relaxed);
}

uint64_t h_probe_samples(struct h_probe *p, unsigned port, uint64_t from, uint64_t to,
                         float *out) {
  const struct h_record *r;
  size_t n = h_probe_records(p, &r);
  uint64_t found = 0;
  if (to <= from)
    return 0;
  memset(out, 0, (size_t)(to - from) * sizeof(float));
  /*
   * Records grow in frame order cycle by cycle (within a cycle port by port):
   * walk back from the newest until well before `from`.
   */
  for (size_t i = n; i > 0; i--) {
    const struct h_record *x = &r[i - 1];
    if (x->frame + 65536 < from)
      break;
    if (x->port != port || x->frame < from || x->frame >= to)
      continue;
    out[x->frame - from] = x->value;
    found++;
  }
  return found;
}

void h_connect(struct h_probe *p, const char *from, const char *to) {
  int rc = jack_connect(p->src, from, to);
  if (rc != 0 && rc != EEXIST)
    H_FAIL("jack_connect %s -> %s failed (%d)", from, to, rc);
}

uint64_t h_probe_cycle(const struct h_probe *p) {
  return atomic_load_explicit(&p->src_start, memory_order_relaxed);
}

uint64_t h_probe_now(struct h_probe *p) {
  return (uint64_t)((int64_t)jack_frame_time(p->src) +
                    atomic_load_explicit(&p->src_offset, memory_order_relaxed));
}

static uint32_t schedule(struct h_probe *p, const struct event *e) {
  uint32_t n = atomic_load_explicit(&p->n_events, memory_order_relaxed);
  if (n >= MAX_EVENTS)
    H_FAIL("too many probe events");
  if (e->frame < p->last_frame)
    H_FAIL("probe events must be scheduled in frame order (%llu after %llu)",
           (unsigned long long)e->frame, (unsigned long long)p->last_frame);
  p->events[n] = *e;
  p->last_frame = e->frame;
  /* Release: the event is complete before the source's RT thread sees it. */
  atomic_store_explicit(&p->n_events, n + 1, memory_order_release);
  return n;
}

uint32_t h_probe_impulse(struct h_probe *p, unsigned port, uint64_t frame, float value) {
  struct event e = {.frame = frame, .kind = EV_AUDIO, .port = port, .value = value};
  if (port >= p->n_out)
    H_FAIL("no probe output %u", port);
  return schedule(p, &e);
}

uint32_t h_probe_midi3(struct h_probe *p, uint64_t frame, uint8_t b0, uint8_t b1, uint8_t b2) {
  struct event e = {.frame = frame, .kind = EV_MIDI, .midi = {b0, b1, b2}, .size = 3};
  if (p->midi_out == NULL)
    H_FAIL("the probe has no MIDI output");
  return schedule(p, &e);
}

enum h_event_status h_probe_status(const struct h_probe *p, uint32_t id) {
  return (enum h_event_status)atomic_load_explicit(&p->status[id], memory_order_acquire);
}

uint64_t h_probe_frame(const struct h_probe *p, uint32_t id) { return p->events[id].frame; }
uint64_t h_probe_last_scheduled(const struct h_probe *p) { return p->last_frame; }

void h_probe_wait_frame(struct h_probe *p, uint64_t frame, unsigned timeout_ms) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  while (atomic_load_explicit(&p->end, memory_order_acquire) < frame) {
    if (h_now_ms() > deadline)
      H_FAIL("the sink did not reach frame %llu within %u ms (at %llu)",
             (unsigned long long)frame, timeout_ms,
             (unsigned long long)atomic_load(&p->end));
    h_sleep_ms(2);
  }
}

size_t h_probe_records(const struct h_probe *p, const struct h_record **recs) {
  *recs = p->records;
  return atomic_load_explicit(&p->n_records, memory_order_acquire);
}

uint64_t h_probe_nonzero(const struct h_probe *p, unsigned port) {
  return atomic_load(&p->nonzero[port]);
}
uint64_t h_probe_nonfinite(const struct h_probe *p, unsigned port) {
  return atomic_load(&p->nonfinite[port]);
}
uint64_t h_probe_xruns(const struct h_probe *p) { return atomic_load(&p->xruns); }
uint64_t h_probe_late(const struct h_probe *p) { return atomic_load(&p->late); }
uint64_t h_probe_gaps(const struct h_probe *p) { return atomic_load(&p->gaps); }
uint64_t h_probe_overflow(const struct h_probe *p) { return atomic_load(&p->overflow); }
uint64_t h_probe_sink_first(const struct h_probe *p) { return atomic_load(&p->first); }

void h_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t *min,
                    uint32_t *max) {
  jack_port_t *jp = jack_port_by_name(p->src, port);
  if (jp == NULL)
    H_FAIL("no JACK port %s", port);
  jack_latency_range_t r = {0, 0};
  jack_port_get_latency_range(jp, playback ? JackPlaybackLatency : JackCaptureLatency, &r);
  *min = r.min;
  *max = r.max;
}

bool h_wait_port_latency(struct h_probe *p, const char *port, bool playback, uint32_t want,
                         unsigned timeout_ms, uint32_t *got_min, uint32_t *got_max) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  bool asked = false;
  for (;;) {
    h_port_latency(p, port, playback, got_min, got_max);
    if (*got_min == want && *got_max == want)
      return true;
    if (h_now_ms() > deadline)
      return false;
    if (!asked) {
      /* Latencies settle after connections; ask the server to recompute them once. */
      jack_recompute_total_latencies(p->src);
      asked = true;
    }
    h_sleep_ms(10);
  }
}

/* ---- checking ------------------------------------------------------------------------------ */

static int cmp_expect(const void *a, const void *b) {
  const struct h_expect *x = a, *y = b;
  return x->frame < y->frame ? -1 : x->frame > y->frame;
}

uint64_t h_first_record(struct h_probe *p, unsigned port, uint64_t from, uint64_t to) {
  const struct h_record *r;
  size_t n = h_probe_records(p, &r);
  for (size_t i = 0; i < n; i++)
    if (r[i].port == port && r[i].frame >= from && r[i].frame < to)
      return r[i].frame;
  return UINT64_MAX;
}

/* Nearest record on port to frame (for diagnostics). */
static const struct h_record *nearest(const struct h_record *r, size_t n, unsigned port,
                                      uint64_t frame) {
  const struct h_record *best = NULL;
  uint64_t best_d = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (r[i].port != port)
      continue;
    uint64_t d = r[i].frame > frame ? r[i].frame - frame : frame - r[i].frame;
    if (d < best_d) {
      best_d = d;
      best = &r[i];
    }
  }
  return best;
}

void h_probe_path_latency(struct h_probe *p, uint32_t frames) {
  if (p->n_path_latency < sizeof(p->path_latency) / sizeof(p->path_latency[0]))
    p->path_latency[p->n_path_latency++] = frames;
}

/* How long after an xrun JACK may call the xrun callback (a loaded machine: generous). */
#define XRUN_REPORT_SLACK 9600

static bool in_window(uint64_t frame, uint64_t from, uint64_t to) {
  return frame >= from && frame < to;
}

/*
 * True when output frame `frame` lies where a graph disturbance may have lost
 * or repeated a cycle: around a break in the sink's labelling, or after an
 * xrun (the cycle of the xrun itself, at the output directly or after one of
 * the path latencies on its way through a slot).
 */
/*
 * [lo, hi) at the output, stretched by a path latency: when JACK loses or
 * repeats a cycle at a slot, what was in flight through it (input before,
 * output after) comes out a cycle off, up to L later.
 */
static bool in_shifted_window(const struct h_probe *p, uint64_t frame, uint64_t lo, uint64_t hi,
                              uint32_t delay) {
  uint64_t longest = delay;
  for (unsigned k = 0; k < p->n_path_latency; k++)
    if (p->path_latency[k] > longest)
      longest = p->path_latency[k];
  return in_window(frame, lo, hi + longest);
}

static bool disturbed(const struct h_probe *p, uint64_t frame, uint32_t delay) {
  const uint64_t per = p->jack->period;
  uint32_t ng = atomic_load_explicit(&p->n_gap_log, memory_order_acquire);
  for (uint32_t i = 0; i < ng; i++) {
    uint64_t g = p->gap_log[i].at < p->gap_log[i].src ? p->gap_log[i].at : p->gap_log[i].src;
    uint64_t hi = p->gap_log[i].at > p->gap_log[i].src ? p->gap_log[i].at : p->gap_log[i].src;
    /* A disagreement is noticed up to 8 runs late (before the sink adopts the source's clock). */
    uint64_t lo = g > 10 * per ? g - 10 * per : 0;
    if (in_shifted_window(p, frame, lo, hi + 3 * per, delay))
      return true;
  }
  uint32_t nx = atomic_load_explicit(&p->n_xrun_at, memory_order_acquire);
  for (uint32_t i = 0; i < nx; i++) {
    uint64_t x = p->xrun_at[i];
    uint64_t lo = x > XRUN_REPORT_SLACK + 2 * per ? x - XRUN_REPORT_SLACK - 2 * per : 0;
    if (in_shifted_window(p, frame, lo, x + 3 * per, delay))
      return true;
  }
  return false;
}

bool h_check_port(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                  uint64_t from, uint64_t to, const char *label, struct h_check *out) {
  return h_check_port_delay(p, port, ex, n, from, to, 0, label, out);
}

bool h_check_port_delay(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                        uint64_t from, uint64_t to, uint32_t delay, const char *label,
                        struct h_check *out) {
  struct h_check c;
  memset(&c, 0, sizeof(c));
  struct h_expect *e = malloc((n ? n : 1) * sizeof(*e));
  bool *seen = calloc(n ? n : 1, sizeof(bool));
  if (n > 0)
    memcpy(e, ex, n * sizeof(*e));
  for (size_t k = 0; k < n; k++) {
    if (!e[k].optional && e[k].frame >= from && e[k].frame < to &&
        disturbed(p, e[k].frame, delay)) {
      e[k].optional = true;
      c.disturbed++;
    }
  }
  qsort(e, n, sizeof(*e), cmp_expect);
  const struct h_record *r;
  size_t nr = h_probe_records(p, &r);
  unsigned printed = 0;
  const unsigned max_print = 12;

  if (h_probe_overflow(p) > 0) {
    h_error("%s: the sink's record buffer overflowed", label);
    c.unexpected++;
  }
  for (size_t i = 0; i < nr; i++) {
    if (r[i].port != port || r[i].frame < from || r[i].frame >= to)
      continue;
    struct h_expect key = {.frame = r[i].frame};
    struct h_expect *m = bsearch(&key, e, n, sizeof(*e), cmp_expect);
    if (m == NULL && disturbed(p, r[i].frame, delay)) {
      c.tolerated++; /* a cycle repeated by JACK around an xrun */
      continue;
    }
    if (m == NULL) {
      c.unexpected++;
      if (printed++ < max_print)
        printf("  %s: unexpected sample %.9g at frame %llu\n", label, (double)r[i].value,
               (unsigned long long)r[i].frame);
      continue;
    }
    seen[m - e] = true;
    if (!m->optional) {
      if (r[i].value == m->value) {
        c.exact++;
      } else {
        c.wrong++;
        if (printed++ < max_print)
          printf("  %s: at frame %llu expected %.9g, got %.9g\n", label,
                 (unsigned long long)r[i].frame, (double)m->value, (double)r[i].value);
      }
    } else {
      c.optional_seen++;
      c.optional_exact += r[i].value == m->value;
      if (!(r[i].value > 0 && r[i].value <= m->value) && disturbed(p, r[i].frame, delay)) {
        c.tolerated++; /* the data of a neighbouring cycle, around an xrun */
      } else if (!(r[i].value > 0 && r[i].value <= m->value)) {
        c.wrong++;
        if (printed++ < max_print)
          printf("  %s: at frame %llu (optional) expected at most %.9g, got %.9g\n", label,
                 (unsigned long long)r[i].frame, (double)m->value, (double)r[i].value);
      }
    }
  }
  for (size_t k = 0; k < n; k++) {
    if (e[k].frame < from || e[k].frame >= to)
      continue;
    if (!e[k].optional)
      c.required++;
    if (seen[k])
      continue;
    if (e[k].optional) {
      c.optional_missing++;
      continue;
    }
    c.missing++;
    if (printed++ < max_print) {
      const struct h_record *near = nearest(r, nr, port, e[k].frame);
      if (near != NULL)
        printf("  %s: missing %.9g at frame %llu; nearest sample %.9g at %llu (%+lld)\n", label,
               (double)e[k].value, (unsigned long long)e[k].frame, (double)near->value,
               (unsigned long long)near->frame, (long long)(near->frame - e[k].frame));
      else
        printf("  %s: missing %.9g at frame %llu; no sample at all on this port\n", label,
               (double)e[k].value, (unsigned long long)e[k].frame);
    }
  }
  free(e);
  free(seen);
  bool ok = c.missing == 0 && c.wrong == 0 && c.unexpected == 0;
  if (!ok) {
    uint32_t ng = atomic_load_explicit(&p->n_gap_log, memory_order_acquire);
    for (uint32_t i = 0; i < ng; i++)
      printf("  %s: probe clocks: %s at sink cycle %llu (source's latest run at %llu)\n", label,
             p->gap_log[i].kind == 1 ? "disagreement" : "sink adopted the source's clock",
             (unsigned long long)p->gap_log[i].at, (unsigned long long)p->gap_log[i].src);
    printf("  %s: probe: %llu xrun(s), %llu late event(s)\n", label,
           (unsigned long long)h_probe_xruns(p), (unsigned long long)h_probe_late(p));
  }
  fflush(stdout);
  if (out != NULL)
    *out = c;
  h_log("%s: %u/%u exact, %u missing, %u wrong, %u unexpected; optional: %u seen (%u exact), "
        "%u missing%s",
        label, c.exact, c.required, c.missing, c.wrong, c.unexpected, c.optional_seen,
        c.optional_exact, c.optional_missing, ok ? "" : "  <-- FAIL");
  if (c.disturbed > 0 || c.tolerated > 0)
    h_log("%s: %u expectation(s) near a JACK xrun checked leniently, %u stray sample(s) there "
          "tolerated (a graph disturbance, not the slot)", label, c.disturbed, c.tolerated);
  return ok;
}

uint32_t h_probe_n_events(const struct h_probe *p) {
  return atomic_load_explicit(&p->n_events, memory_order_relaxed);
}

struct planned {
  uint64_t frame;
  unsigned port;
};

static int cmp_planned(const void *a, const void *b) {
  const struct planned *x = a, *y = b;
  if (x->frame != y->frame)
    return x->frame < y->frame ? -1 : 1;
  return x->port < y->port ? -1 : x->port > y->port;
}

uint64_t h_impulse_train(struct h_probe *p, const unsigned *ports, unsigned n_ports,
                         unsigned count, uint32_t gap, uint32_t lead) {
  uint32_t period = p->jack->period;
  uint64_t phase = h_probe_sink_first(p) % period;
  uint64_t start = h_probe_now(p) + lead;
  if (start <= p->last_frame)
    start = p->last_frame + 1;
  struct planned *plan = calloc((size_t)count * n_ports + 1, sizeof(*plan));
  size_t n = 0;
  for (unsigned i = 0; i < n_ports; i++) {
    uint64_t f = start + (uint64_t)i * 7;
    for (unsigned k = 0; k < count; k++) {
      f += gap + (k * 37u + k * k * 11u + i * 13u) % 97u;
      uint64_t g = f;
      uint64_t off = (g + period - phase) % period; /* offset inside its cycle */
      if (k % 4 == 1)
        g += (period - off) % period; /* the first frame of a cycle */
      else if (k % 4 == 2)
        g += (period - 1 + period - off) % period; /* the last frame of a cycle */
      plan[n].frame = g;
      plan[n].port = ports[i];
      n++;
      f = g;
    }
  }
  qsort(plan, n, sizeof(*plan), cmp_planned);
  for (size_t k = 0; k < n; k++)
    h_probe_impulse(p, plan[k].port, plan[k].frame, 1.0f);
  uint64_t last = n ? plan[n - 1].frame : start;
  free(plan);
  return last;
}

bool h_check_impulses(struct h_probe *p, unsigned out_port, unsigned sink_port, uint32_t delay,
                      uint32_t first_id, uint64_t from, uint64_t to, bool tolerant,
                      const char *label, struct h_check *out) {
  return h_check_impulses_gain(p, out_port, sink_port, delay, 1.0f, first_id, from, to, tolerant,
                               label, out);
}

bool h_check_impulses_gain(struct h_probe *p, unsigned out_port, unsigned sink_port,
                           uint32_t delay, float gain, uint32_t first_id, uint64_t from,
                           uint64_t to, bool tolerant, const char *label, struct h_check *out) {
  uint32_t n = h_probe_n_events(p);
  struct h_expect *ex = calloc(n + 1, sizeof(*ex));
  size_t k = 0;
  unsigned late = 0;
  for (uint32_t id = first_id; id < n; id++) {
    const struct event *e = &p->events[id];
    if (e->kind != EV_AUDIO || e->port != out_port)
      continue;
    enum h_event_status st = h_probe_status(p, id);
    if (st == H_EV_LATE) {
      late++;
      continue;
    }
    ex[k].frame = e->frame + delay;
    ex[k].value = e->value * gain;
    /* Not emitted yet: it cannot be in the window unless the test checks too early. */
    ex[k].optional = tolerant || st != H_EV_EMITTED;
    k++;
  }
  if (late > 0)
    h_log("%s: %u impulse(s) were scheduled too late to be sent (test thread delayed); skipped",
          label, late);
  bool ok = h_check_port_delay(p, sink_port, ex, k, from, to, delay, label, out);
  free(ex);
  return ok;
}

/* ---- xrun attribution ------------------------------------------------------------------ */

void h_jack_xruns(const struct h_jack *j, size_t from, const char *client, const char *upstream,
                  struct h_xruns *out) {
  memset(out, 0, sizeof(*out));
  char *text = h_file_read(j->proc.log);
  if (text == NULL)
    return;
  size_t len = strlen(text);
  char *line = text + (from < len ? from : len);
  bool in_event = false, has_client = false, has_upstream = false, client_running = false;
  char want_client[160], want_upstream[160];
  snprintf(want_client, sizeof(want_client), "client = %s was not finished", client);
  snprintf(want_upstream, sizeof(want_upstream), "client = %s was not finished", upstream);
  for (;;) {
    char *end = strchr(line, '\n');
    bool last = end == NULL;
    if (end != NULL)
      *end = '\0';
    bool xrun_line = strstr(line, "JackEngine::XRun: client = ") != NULL;
    if (strstr(line, "JackTimedDriver::Process XRun") != NULL)
      out->driver_late++;
    if (xrun_line) {
      in_event = true;
      if (strstr(line, want_client) != NULL) {
        has_client = true;
        client_running |= strstr(line, "state = Running") != NULL;
      }
      has_upstream |= strstr(line, want_upstream) != NULL;
    }
    if ((!xrun_line || last) && in_event) {
      /* One xrun: the clients that had not finished when the next cycle began. */
      out->events++;
      if (has_client && client_running)
        out->client_running++;
      else if (has_client)
        out->client_waiting++;
      if (has_upstream)
        out->upstream_late++;
      in_event = has_client = has_upstream = client_running = false;
    }
    if (last)
      break;
    line = end + 1;
  }
  free(text);
}

/* ---- restarting a server ---------------------------------------------------------------- */

void h_jack_restart(struct h_jack *j, uint32_t rate, uint32_t period) {
  char name[64];
  snprintf(name, sizeof(name), "%s", j->name);
  h_jack_stop(j);
  reclaim_stale_servers();
  if (start_server(j, name, rate, period, false) != 0)
    H_FAIL("jackd %s cannot start again at %u Hz, %u frames", name, rate, period);
  setenv("JACK_DEFAULT_SERVER", j->name, 1);
}

/* ---- impulse trains, checked until enough of them were exact --------------------------- */

void h_check_train(struct h_probe *p, unsigned out, unsigned in, uint32_t delay, float gain,
                   uint32_t gap, uint32_t lead, uint32_t period, uint64_t *checked_to,
                   const char *label) {
  for (unsigned attempt = 1;; attempt++) {
    uint32_t first = h_probe_n_events(p);
    unsigned ports[1] = {out};
    uint64_t last = h_impulse_train(p, ports, 1, 6, gap, lead);
    uint64_t to = last + delay + 4 * period;
    h_probe_wait_frame(p, to, 20000);
    struct h_check ck;
    bool ok = h_check_impulses_gain(p, out, in, delay, gain, first, *checked_to, to, false, label,
                                    &ck);
    *checked_to = to;
    unsigned exact = ck.exact + ck.optional_exact;
    if (!ok) {
      h_error("%s: not exactly %u frames after each impulse at exactly %.9g", label, delay,
              (double)gain);
      return;
    }
    if (exact >= 4)
      return;
    if (ck.disturbed == 0 || attempt == 3) {
      h_error("%s: only %u impulses checked exactly", label, exact);
      return;
    }
    h_log("%s: only %u impulses checked exactly next to JACK xruns; once more", label, exact);
  }
}
