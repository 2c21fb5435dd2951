/*
 * Ring stress with the worker as a thread of this process, sharing the
 * daemon's mapping: the same protocol and checks as test_ring_stress_proc,
 * shorter, and meant for the ThreadSanitizer build. Sharing one mapping is
 * what lets TSan see both ends' accesses at the same addresses.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring_stress.h"

struct worker_args {
  struct shm_segment *seg;
  struct rs_shared *sh;
  const struct rs_config *cfg;
  int result;
};

static void *worker_thread(void *arg) {
  struct worker_args *a = arg;
  a->result = rs_worker_run(a->seg, a->sh, a->cfg);
  return NULL;
}

static int run_config(const struct rs_config *cfg) {
  struct shm_segment seg;
  int failed = 1;

  if (rs_segment_create(cfg, &seg) != 0)
    return 1;
  struct rs_shared *sh = calloc(1, sizeof(*sh));
  struct rs_daemon *d = rs_daemon_new(cfg);
  if (sh == NULL || d == NULL) {
    fprintf(stderr, "FAIL: out of memory\n");
    goto out;
  }

  struct worker_args args = {.seg = &seg, .sh = sh, .cfg = cfg};
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, worker_thread, &args);
  if (rc != 0) {
    fprintf(stderr, "FAIL: pthread_create: %s\n", strerror(rc));
    goto out;
  }
  failed = rs_daemon_run(d, &seg, sh);
  pthread_join(thread, NULL);
  failed |= args.result;
  failed |= rs_verify(d, &seg, sh, "threads");

out:
  rs_daemon_free(d);
  free(sh);
  shm_segment_release(&seg);
  return failed;
}

int main(int argc, char **argv) {
  uint64_t seed = rs_seed();
  /*
   * --unsynchronized-stalls: stall while holding a chunk by sleeping, as the
   * proc test does, so the daemon overwrites the chunk's input before the
   * worker copies it (certainly, once per configuration) or before it
   * commits. Under TSan this shows the input ring's seqlock race: see
   * README.md in this directory.
   */
  int synced = !(argc > 1 && strcmp(argv[1], "--unsynchronized-stalls") == 0);
  /*
   * Synchronized: slow rates give a preempted worker thread more wall time
   * before the daemon can come round to a chunk it holds, ~235 ms (A) and
   * ~115 ms (B). Unsynchronized: the proc test's rates, so that its stalls
   * past the whole ring cost a smaller share of the run.
   */
  const struct rs_config configs[] = {
      {.name = "A",
       .rate = synced ? 24000 : 48000,
       .latency = 2048,
       .period = 128,
       .channels = 2,
       .seconds = 4.0,
       .synchronized_stalls = synced,
       .seed = seed},
      {.name = "B",
       .rate = synced ? 4000 : 16000,
       .latency = 300,
       .period = 64,
       .channels = 2,
       .vary_n = 1,
       .seconds = 4.0,
       .synchronized_stalls = synced,
       .seed = seed + 1},
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
    failed |= run_config(&configs[i]);
  return failed ? 1 : 0;
}
