/*
 * it_rt_rules_selftest: librunway-rtcheck catches what it must and nothing
 * else. Each case runs in a forked child of this program (linked against the
 * checker, so its interposers are in effect):
 *
 *   - calls that break the RT rules between runway_rtcheck_enter() and
 *     runway_rtcheck_leave() abort the child (SIGABRT) with the function's
 *     name on stderr, and leave a report saying "violations 1";
 *   - RT-safe work in a cycle (arithmetic, memcpy, clock_gettime, a futex
 *     wake), and forbidden calls outside a cycle or on another thread, pass:
 *     the child exits 0 and its report counts its cycles, with no violation.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void runway_rtcheck_enter(void);
void runway_rtcheck_leave(void);

static volatile int sink;
static _Atomic uint32_t futex_word;

static void case_malloc(void) {
  runway_rtcheck_enter();
  void *p = malloc(16);
  sink = p != NULL;
  runway_rtcheck_leave();
}

static void case_free(void) {
  void *volatile p = malloc(16); /* volatile: the compiler may not elide the pair */
  runway_rtcheck_enter();
  free(p);
  runway_rtcheck_leave();
}

static void case_mutex(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  runway_rtcheck_enter();
  pthread_mutex_lock(&m);
  runway_rtcheck_leave();
}

static void case_futex_wait(void) {
  runway_rtcheck_enter();
  /* The value differs, so a real wait would return at once: the call is what counts. */
  syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 12345, NULL, NULL, 0);
  runway_rtcheck_leave();
}

static void case_usleep(void) {
  runway_rtcheck_enter();
  usleep(1);
  runway_rtcheck_leave();
}

static void case_write(void) {
  runway_rtcheck_enter();
  sink = (int)write(1, "", 0);
  runway_rtcheck_leave();
}

static void case_printf(void) {
  runway_rtcheck_enter();
  printf("%d\n", sink);
  runway_rtcheck_leave();
}

static void *other_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++)
    free(malloc(64)); /* not the RT thread: allowed */
  return NULL;
}

static void case_clean(void) {
  float a[256], b[256];
  struct timespec ts;
  pthread_t t;
  for (int cycle = 0; cycle < 100; cycle++) {
    runway_rtcheck_enter();
    for (int i = 0; i < 256; i++)
      a[i] = (float)i * 0.5f;
    memcpy(b, a, sizeof(a));
    memset(a, 0, sizeof(a));
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO */
    syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, NULL, NULL, 0);
    sink = (int)b[cycle] + (int)ts.tv_nsec;
    if (cycle == 50) {
      /* Another thread allocating while this one is in a cycle is fine. */
      runway_rtcheck_leave();
      pthread_create(&t, NULL, other_thread, NULL);
      runway_rtcheck_enter();
    }
    runway_rtcheck_leave();
    /* Outside a cycle everything is allowed. */
    free(malloc(32));
  }
  pthread_join(t, NULL);
}

struct tcase {
  const char *name;
  void (*fn)(void);
  bool aborts;
  const char *needle; /* in stderr when it aborts */
};

static const struct tcase cases[] = {
    {"malloc", case_malloc, true, "malloc()"},
    {"free", case_free, true, "free()"},
    {"mutex", case_mutex, true, "pthread_mutex_lock()"},
    {"futex_wait", case_futex_wait, true, "SYS_futex"},
    {"usleep", case_usleep, true, "usleep()"},
    {"write", case_write, true, "write()"},
    {"printf", case_printf, true, "printf()"},
    {"clean", case_clean, false, NULL},
};

static char *read_all(int fd) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  ssize_t n;
  while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)n;
    if (cap - len < 512)
      buf = realloc(buf, cap *= 2);
  }
  buf[len] = '\0';
  return buf;
}

static int run_case(const struct tcase *c, const char *dir) {
  char report[512];
  snprintf(report, sizeof(report), "%s/report-%s", dir, c->name);
  int pipefd[2];
  if (pipe(pipefd) != 0)
    return 1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    setenv("RUNWAY_RTCHECK_REPORT", report, 1);
    c->fn();
    exit(0);
  }
  close(pipefd[1]);
  char *err = read_all(pipefd[0]);
  close(pipefd[0]);
  int st;
  waitpid(pid, &st, 0);
  FILE *f = fopen(report, "r");
  char text[512] = "";
  if (f != NULL) {
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
  }
  unlink(report);
  int failed = 0;
  if (c->aborts) {
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
      printf("case %s: expected SIGABRT, got status 0x%x\n", c->name, st);
      failed = 1;
    }
    if (strstr(err, c->needle) == NULL) {
      printf("case %s: stderr does not name %s: \"%s\"\n", c->name, c->needle, err);
      failed = 1;
    }
    if (strstr(text, "violations 1") == NULL) {
      printf("case %s: report does not say \"violations 1\": \"%s\"\n", c->name, text);
      failed = 1;
    }
  } else {
    unsigned long long cycles = 0, violations = 1;
    const char *p = strstr(text, "cycles ");
    if (p)
      cycles = strtoull(p + 7, NULL, 10);
    p = strstr(text, "violations ");
    if (p)
      violations = strtoull(p + 11, NULL, 10);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      printf("case %s: expected exit 0, got status 0x%x; stderr: %s\n", c->name, st, err);
      failed = 1;
    }
    if (cycles != 101 || violations != 0) {
      printf("case %s: report should say 101 cycles, 0 violations: \"%s\"\n", c->name, text);
      failed = 1;
    }
  }
  printf("case %-10s %s (%s%s)\n", c->name, failed ? "FAILED" : "ok",
         c->aborts ? "aborted: " : "exited 0", c->aborts ? c->needle : "");
  free(err);
  return failed;
}

int main(void) {
  char dir[] = "/tmp/rwt-rtcheck-XXXXXX";
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  alarm(25);
  int failed = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    failed += run_case(&cases[i], dir);
  rmdir(dir);
  printf("%s\n", failed ? "FAILED" : "PASS");
  return failed ? 1 : 0;
}
