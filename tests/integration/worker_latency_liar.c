/*
 * A worker that lies about its plugin's latency, for it_lv2_latency. It
 * plays its input through (on the SDK), and writes 0xFFFFFFFF into the
 * segment's info block, where rw_worker_set_latency would refuse anything
 * above RW_MAX_PLUGIN_LATENCY, after every block. After SIGUSR1 it tells
 * the truth instead: 77 frames, through rw_worker_set_latency.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <runway/segment.h>
#include <runway/worker.h>

static volatile sig_atomic_t honest;

static void on_usr1(int sig) {
  (void)sig;
  honest = 1;
}

/*
 * The info block of the inherited segment, mapped a second time, by hand:
 * the header from the daemon's file (read-only to a worker), the block from
 * the worker's own file.
 */
static struct rw_info *map_info(void) {
  const char *dtext = getenv("RUNWAY_SEGMENT_FD");
  const char *wtext = getenv("RUNWAY_SEGMENT_WORKER_FD");
  struct rw_segment_header h;
  struct stat st;
  if (dtext == NULL || wtext == NULL || pread(atoi(dtext), &h, sizeof(h), 0) != sizeof(h) ||
      fstat(atoi(wtext), &st) != 0)
    return NULL;
  const struct rw_region *r = &h.regions[RW_REGION_INFO];
  if (r->file != RW_FILE_WORKER || r->offset + sizeof(struct rw_info) > (uint64_t)st.st_size)
    return NULL;
  unsigned char *base =
      mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(wtext), 0);
  if (base == MAP_FAILED)
    return NULL;
  return (struct rw_info *)(base + r->offset);
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  struct rw_info *info = map_info();
  rw_worker_options o = {.api_version = RW_WORKER_API_VERSION, .plugin = "latency-liar"};
  rw_worker *w;
  if (info == NULL || rw_worker_open(&o, &w) != 0) {
    fprintf(stderr, "latency-liar: cannot attach: %s\n", rw_worker_error(NULL));
    return 1;
  }
  rw_block b;
  int rc;
  while ((rc = rw_worker_next(w, &b, 100)) >= 0) {
    if (rc == 0)
      continue;
    for (uint32_t c = 0; c < b.n_outputs; c++)
      for (uint32_t i = 0; i < b.frames; i++)
        b.outputs[c][i] = c < b.n_inputs ? b.inputs[c][i] : 0.0f;
    if (honest)
      rw_worker_set_latency(w, 77);
    else
      __atomic_store_n(&info->latency, 0xFFFFFFFFu, __ATOMIC_RELAXED);
    rw_worker_done(w, &b);
  }
  rw_worker_close(w);
  return 0;
}
