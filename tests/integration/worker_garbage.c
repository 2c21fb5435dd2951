/*
 * A hostile worker for it_bad_input. It does not use the SDK: it maps the
 * segment inherited at $RUNWAY_SEGMENT_FD itself and plays a correct (silent)
 * worker until SIGUSR1, then misbehaves in the way argv[1] names:
 *
 *   header     random bytes over the segment header
 *   out_write  publishes an output position far in the future
 *   in_read    publishes an input position ahead of what the daemon wrote
 *   rings      random bytes over the event and message rings' positions
 *   nonfinite  keeps the positions valid but writes NaN, +Inf, -Inf and 0.25
 *              in turn into its output
 *
 * A restarted instance (segment generation > 1) waits for SIGUSR2 before it
 * attaches (publishes its pid), so the test can read the slot's last_error
 * while the fault is fresh; after that it is a correct silent worker until
 * the next SIGUSR1 (a test's next round).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <runway/segment.h>

static volatile sig_atomic_t got_usr1, got_usr2, got_term;

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    got_usr1 = 1;
  else if (sig == SIGUSR2)
    got_usr2 = 1;
  else
    got_term = 1;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void nap_ms(unsigned ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

struct seg {
  unsigned char *base;
  size_t size;
  struct rw_segment_header h; /* private copy, taken before any scribbling */
  struct rw_segment_control *ctl;
  float *out;
};

static int map_segment(struct seg *s) {
  const char *text = getenv("RUNWAY_SEGMENT_FD");
  if (text == NULL) {
    fprintf(stderr, "worker-garbage: no RUNWAY_SEGMENT_FD\n");
    return -1;
  }
  int fd = atoi(text);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(struct rw_segment_header)) {
    fprintf(stderr, "worker-garbage: fd %d: %s\n", fd, strerror(errno));
    return -1;
  }
  s->size = (size_t)st.st_size;
  s->base = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s->base == MAP_FAILED) {
    fprintf(stderr, "worker-garbage: mmap: %s\n", strerror(errno));
    return -1;
  }
  memcpy(&s->h, s->base, sizeof(s->h));
  const struct rw_segment_header *h = &s->h;
  if (h->magic != RW_SEGMENT_MAGIC || h->capacity == 0 || (h->capacity & (h->capacity - 1)) ||
      h->regions[RW_REGION_CONTROL].offset + sizeof(struct rw_segment_control) > s->size ||
      h->regions[RW_REGION_AUDIO_OUT].offset +
              (uint64_t)h->channel_stride * h->n_outputs * sizeof(float) >
          s->size) {
    fprintf(stderr, "worker-garbage: the segment header is not what I expected\n");
    return -1;
  }
  s->ctl = (struct rw_segment_control *)(s->base + h->regions[RW_REGION_CONTROL].offset);
  s->out = (float *)(s->base + h->regions[RW_REGION_AUDIO_OUT].offset);
  return 0;
}

/* Output for input [in_read, in_write): positions [out_write, in_write + L). */
static void produce(struct seg *s, int nonfinite) {
  const struct rw_segment_header *h = &s->h;
  struct rw_segment_control *ctl = s->ctl;
  static const float pattern[4] = {NAN, INFINITY, -INFINITY, 0.25f};
  static unsigned k;
  uint64_t in_write = atomic_load_explicit(&ctl->in_write.value, memory_order_acquire);
  uint64_t out_write = atomic_load_explicit(&ctl->out_write.value, memory_order_relaxed);
  uint64_t target = in_write + h->latency;
  if (target <= out_write)
    return;
  uint64_t from = out_write;
  if (target - from > h->capacity / 2)
    from = target - h->capacity / 2;
  for (uint64_t pos = from; pos < target; pos++) {
    uint32_t idx = (uint32_t)(pos & (h->capacity - 1));
    float v = nonfinite ? pattern[k++ & 3] : 0.0f;
    for (uint32_t c = 0; c < h->n_outputs; c++)
      s->out[(size_t)c * h->channel_stride + idx] = v;
  }
  /* Release: the samples are written before the daemon sees them. */
  atomic_store_explicit(&ctl->out_write.value, target, memory_order_release);
  atomic_store_explicit(&ctl->in_read.value, in_write, memory_order_release);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "header";
  struct seg s;
  memset(&s, 0, sizeof(s));
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  if (map_segment(&s) != 0)
    return 1;
  rng ^= (uint64_t)getpid() * 0x2545f4914f6cdd1du;
  bool restarted = s.h.generation > 1;
  fprintf(stderr, "worker-garbage %s: pid %d, generation %llu%s\n", mode, (int)getpid(),
          (unsigned long long)s.h.generation, restarted ? ", waiting for SIGUSR2" : "");

  if (restarted) {
    while (!got_usr2 && !got_term)
      nap_ms(2);
  }
  /* Resume where the published output ends, like the SDK does. */
  uint64_t out_write = atomic_load_explicit(&s.ctl->out_write.value, memory_order_acquire);
  atomic_store_explicit(&s.ctl->in_read.value, out_write - s.h.latency, memory_order_release);
  atomic_store_explicit(&s.ctl->worker_pid, (uint32_t)getpid(), memory_order_release);

  bool misbehaving = false;
  while (!got_term) {
    if (got_usr1 && !misbehaving) {
      misbehaving = true;
      fprintf(stderr, "worker-garbage %s: misbehaving now\n", mode);
      if (strcmp(mode, "header") == 0) {
        for (size_t i = 0; i < sizeof(struct rw_segment_header); i += 8) {
          uint64_t r = next_random();
          memcpy(s.base + i, &r, 8);
        }
      } else if (strcmp(mode, "out_write") == 0) {
        uint64_t w = atomic_load(&s.ctl->in_write.value);
        atomic_store(&s.ctl->out_write.value, w + s.h.latency + (UINT64_C(1) << 40));
      } else if (strcmp(mode, "in_read") == 0) {
        uint64_t w = atomic_load(&s.ctl->in_write.value);
        atomic_store(&s.ctl->in_read.value, w + (UINT64_C(1) << 33));
      } else if (strcmp(mode, "rings") == 0) {
        atomic_store(&s.ctl->ev_write.value, next_random());
        atomic_store(&s.ctl->ev_read.value, next_random());
        atomic_store(&s.ctl->msg_write.value, next_random());
        atomic_store(&s.ctl->msg_read.value, next_random());
      }
    }
    bool frozen = misbehaving && (strcmp(mode, "out_write") == 0 || strcmp(mode, "in_read") == 0);
    if (!frozen)
      produce(&s, misbehaving && strcmp(mode, "nonfinite") == 0);
    nap_ms(2);
  }
  return 0;
}
