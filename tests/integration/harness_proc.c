/*
 * Child processes: started with the test's environment and a log, registered
 * so that every one is killed by pid when the test ends however it ends, and
 * the files they leave behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_internal.h"

extern char **environ;

#define MAX_PROCS 192 /* runway-bench-scale runs up to 128 reference clients */

static struct h_proc *procs[MAX_PROCS];

/*
 * Pids for the signal handler: plain ints it may read at any time. A
 * "graceful" child (jackd) gets SIGTERM and a moment before SIGKILL: a jackd
 * killed outright never leaves JACK's registry of servers, which has room
 * for eight (see harness_jack.c).
 */
static volatile sig_atomic_t sig_pids[MAX_PROCS];
static volatile sig_atomic_t sig_graceful[MAX_PROCS];

void h__kill_all_raw(void) {
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

void h__stop_all(void) {
  for (int i = MAX_PROCS - 1; i >= 0; i--)
    if (procs[i] != NULL && !procs[i]->reaped)
      h_proc_stop(procs[i], SIGTERM, 5000);
}

static void register_proc(struct h_proc *p) {
  for (unsigned i = 0; i < MAX_PROCS; i++) {
    if (procs[i] == NULL) {
      procs[i] = p;
      sig_graceful[i] = p->graceful;
      sig_pids[i] = p->pid;
      return;
    }
  }
  kill(p->pid, SIGKILL);
  H_FAIL("too many child processes");
}

static void unregister_proc(struct h_proc *p) {
  for (unsigned i = 0; i < MAX_PROCS; i++) {
    if (procs[i] == p) {
      procs[i] = NULL;
      sig_pids[i] = 0;
      sig_graceful[i] = 0;
    }
  }
}

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

static pid_t fork_exec(const char *const *argv, char **env, int out_fd, int err_fd, int death_sig) {
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

void h__spawn(struct h_proc *p, const char *what, const char *const *argv, const char *const *set,
              const char *const *unset, const char *log, bool graceful) {
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
  h__remember_log(what, log);
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
  h__spawn(p, what, argv, set, unset, log, false);
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

static bool proc_exited(void *arg, char *seen, size_t len) {
  (void)seen;
  (void)len;
  return !h_proc_alive(arg);
}

bool h_proc_wait(struct h_proc *p, unsigned timeout_ms) {
  return h_wait_for(proc_exited, p, timeout_ms);
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
  h__remember_log(argv[0], log);
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

  /* Reads its output until EOF: a wait on the pipe, not on a condition. */
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

bool h_proc_realtime(pid_t pid) {
  char dir[64], path[384], buf[1024];
  bool rt = false;
  snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  if (d == NULL)
    return false;
  struct dirent *e;
  while (!rt && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
    FILE *f = fopen(path, "re");
    if (f == NULL)
      continue;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After "(comm)", which may hold spaces: field 41 is the policy (1 FIFO, 2 RR). */
    const char *p = strrchr(buf, ')');
    for (int field = 2; p != NULL && field < 41; field++)
      p = strchr(p + 1, ' ');
    if (p != NULL) {
      int policy = atoi(p + 1);
      rt = policy == 1 || policy == 2;
    }
  }
  closedir(d);
  return rt;
}

bool h_find_program(const char *name) {
  if (strchr(name, '/') != NULL)
    return access(name, X_OK) == 0;
  const char *path = getenv("PATH");
  if (path == NULL)
    path = "/usr/local/bin:/usr/bin:/bin";
  while (*path != '\0') {
    size_t n = strcspn(path, ":");
    char full[PATH_MAX];
    if (n > 0 && snprintf(full, sizeof(full), "%.*s/%s", (int)n, path, name) < (int)sizeof(full) &&
        access(full, X_OK) == 0)
      return true;
    path += n + (path[n] == ':');
  }
  return false;
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
