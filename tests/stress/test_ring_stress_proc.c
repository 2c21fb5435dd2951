/*
 * Cross-process ring stress: the daemon role runs in this process at a
 * real-time cadence; a forked child attaches to the same memfd through its
 * own, validated mapping (like a real worker) and runs an identity plugin
 * that stalls at random, sometimes past L and past the ring's capacity.
 * Every output sample is checked; see ring_stress.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring_stress.h"

/* Child: the worker role on its own mapping of the segment. Never returns. */
static void worker_process(struct shm_segment *parent_seg, struct rs_shared *sh,
                           const struct rs_config *cfg) {
  struct shm_segment seg;
  char err[256];
  int dfd = dup(parent_seg->fd[RW_FILE_DAEMON]), wfd = dup(parent_seg->fd[RW_FILE_WORKER]);
  /* Drop the inherited mappings: the worker must go through its own attach. */
  shm_segment_release(parent_seg);
  if (dfd < 0 || wfd < 0) {
    snprintf(sh->message, sizeof(sh->message), "dup: %s", strerror(errno));
    goto fail;
  }
  /* As a worker maps it: the daemon's file read-only. */
  int rc = shm_segment_map(dfd, wfd, &seg, err, sizeof(err));
  if (rc != 0) {
    snprintf(sh->message, sizeof(sh->message), "shm_segment_map: %.200s", err);
    close(dfd);
    close(wfd);
    goto fail;
  }
  rc = rs_worker_run(&seg, sh, cfg);
  shm_segment_release(&seg);
  _exit(rc);

fail:
  atomic_store_explicit(&sh->fatal, 1, memory_order_relaxed);
  atomic_store_explicit(&sh->ready, 1, memory_order_release);
  _exit(2);
}

/* Waits up to 10 s for the child; kills it after that. Returns 0 when it exited with 0. */
static int reap(pid_t pid, const char *name) {
  int status = 0;
  for (int i = 0; i < 1000; i++) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      goto got;
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "FAIL: %s: waitpid: %s\n", name, strerror(errno));
      return 1;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "FAIL: %s: the worker did not exit within 10 s of the stop; killing it\n", name);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return 1;
got:
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFSIGNALED(status))
    fprintf(stderr, "FAIL: %s: the worker process died of signal %d\n", name, WTERMSIG(status));
  else
    fprintf(stderr, "FAIL: %s: the worker process exited with status %d\n", name,
            WEXITSTATUS(status));
  return 1;
}

static int run_config(const struct rs_config *cfg) {
  struct shm_segment seg;
  struct rs_daemon *d = NULL;
  int failed = 1;

  if (rs_segment_create(cfg, &seg) != 0)
    return 1;
  /* The worker's log: shared with the child, created before the fork. */
  struct rs_shared *sh =
      mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    fprintf(stderr, "FAIL: mmap of the log region: %s\n", strerror(errno));
    shm_segment_release(&seg);
    return 1;
  }
  d = rs_daemon_new(cfg);
  if (d == NULL) {
    fprintf(stderr, "FAIL: out of memory\n");
    goto out;
  }

  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "FAIL: fork: %s\n", strerror(errno));
    goto out;
  }
  if (pid == 0)
    worker_process(&seg, sh, cfg);

  failed = rs_daemon_run(d, &seg, sh);
  failed |= reap(pid, cfg->name);
  failed |= rs_verify(d, &seg, sh, "proc");

out:
  rs_daemon_free(d);
  munmap(sh, sizeof(*sh));
  shm_segment_release(&seg);
  return failed;
}

int main(void) {
  uint64_t seed = rs_seed();
  /*
   * A: L a multiple of the period. B: L = 300 is not a multiple of 64, the
   * cycle size varies, and the slow rate stretches L to 19 ms of wall time.
   */
  const struct rs_config configs[] = {
      {.name = "A",
       .rate = 48000,
       .latency = 2048,
       .period = 128,
       .channels = 2,
       .seconds = 4.0,
       .seed = seed},
      {.name = "B",
       .rate = 16000,
       .latency = 300,
       .period = 64,
       .channels = 2,
       .vary_n = 1,
       .seconds = 3.0,
       .seed = seed + 1},
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
    failed |= run_config(&configs[i]);
  return failed ? 1 : 0;
}
