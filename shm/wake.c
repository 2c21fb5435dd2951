#include "wake.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int shm_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns) {
  struct timespec ts;
  struct timespec *tsp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tsp = &ts;
  }
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tsp, NULL, 0);
  if (rc == 0)
    return 0;
  if (errno == EAGAIN)
    return 0; /* the word already changed: a wake happened before we slept */
  if (errno == ETIMEDOUT)
    return -ETIMEDOUT;
  if (errno == EINTR)
    return -EINTR;
  return -errno;
}

int shm_futex_wake(_Atomic uint32_t *word, int n) {
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
  return rc < 0 ? -errno : (int)rc;
}

int shm_wake_worker_if_due(const struct shm_ctl *ctl, uint64_t in_write, uint32_t capacity) {
  struct rw_worker_control *w = ctl->w;
  /* seq_cst: the other half of the Dekker pair with the worker's store to `sleeping`. */
  if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst) == 0)
    return 0;
  uint64_t in_read = atomic_load_explicit(&w->in_read.value, memory_order_relaxed);
  uint32_t want = atomic_load_explicit(&w->wake_frames, memory_order_relaxed);
  if (want == 0)
    want = 1;
  if (want > capacity)
    want = capacity;
  /* An impossible in_read (ahead of in_write) wraps to a huge backlog: waking is harmless. */
  if (in_write - in_read < want)
    return 0;
  /* Only one waker per sleep: whoever clears the flag bumps the word. */
  if (atomic_exchange_explicit(&w->sleeping, 0, memory_order_acq_rel) == 0)
    return 0;
  shm_wake_worker(ctl->d);
  return 1;
}

void shm_wake_worker(struct rw_daemon_control *ctl) {
  /* Release: the worker's futex wait compares this word; what it should see is published. */
  atomic_fetch_add_explicit(&ctl->wake_seq, 1, memory_order_release);
  shm_futex_wake(&ctl->wake_seq, 1);
}

int shm_wake_wait(const struct shm_ctl *ctl, uint64_t pos, uint32_t want, int64_t timeout_ns) {
  struct rw_worker_control *w = ctl->w;
  atomic_store_explicit(&w->wake_frames, want, memory_order_relaxed);
  /* Acquire: read the word before announcing sleep, so any later bump makes the wait return. */
  uint32_t seq = atomic_load_explicit(&ctl->d->wake_seq, memory_order_acquire);
  /* seq_cst: pairs with the daemon's seq_cst store of in_write and load of `sleeping`. */
  atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
  uint64_t in_write = atomic_load_explicit(&ctl->d->in_write.value, memory_order_seq_cst);
  if (in_write - pos >= want) {
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
    return 0;
  }
  int rc = shm_futex_wait(&ctl->d->wake_seq, seq, timeout_ns);
  /* On timeout or a signal nobody cleared it; a stale flag would only cost a spurious wake. */
  atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
  return rc;
}

void shm_clock_publish(struct rw_daemon_control *ctl, uint32_t *seq, const struct shm_clock *clk) {
  struct rw_clock_ref *r = &ctl->clock;
  /* Odd while writing, even after; never 0 again once written, which means "no reference yet". */
  uint32_t s = (*seq + 1) | 1u;
  if (s == UINT32_MAX)
    s = 1;
  atomic_store_explicit(&r->seq, s, memory_order_relaxed);
  /* Release fence: the odd sequence is visible before any of the new values. */
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&r->pos, clk->pos, memory_order_relaxed);
  atomic_store_explicit(&r->ns, clk->ns, memory_order_relaxed);
  atomic_store_explicit(&r->period, clk->period, memory_order_relaxed);
  *seq = s + 1;
  /* Release: the values are complete before a reader sees the even sequence. */
  atomic_store_explicit(&r->seq, s + 1, memory_order_release);
}

int shm_clock_read(const struct rw_daemon_control *ctl, struct shm_clock *out) {
  const struct rw_clock_ref *r = &ctl->clock;
  for (int tries = 0; tries < 4; tries++) {
    /* Acquire: pairs with the writer's final release; the values of this sequence are visible. */
    uint32_t s1 = atomic_load_explicit(&r->seq, memory_order_acquire);
    if (s1 == 0)
      return -EAGAIN;
    if (s1 & 1u)
      continue;
    struct shm_clock c = {
        .pos = atomic_load_explicit(&r->pos, memory_order_relaxed),
        .ns = atomic_load_explicit(&r->ns, memory_order_relaxed),
        .period = atomic_load_explicit(&r->period, memory_order_relaxed),
    };
    /* Acquire fence: the loads above complete before the sequence is checked again. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&r->seq, memory_order_relaxed) != s1)
      continue;
    if (c.period == 0 || c.period > RW_MAX_PERIOD)
      return -EAGAIN;
    *out = c;
    return 0;
  }
  return -EAGAIN;
}

int64_t shm_clock_due_ns(const struct shm_clock *clk, uint32_t rate, uint64_t want) {
  /* The cycle starting at q publishes in_write = q + period. */
  if (rate == 0 || want <= clk->pos + clk->period)
    return (int64_t)clk->ns;
  uint64_t cycles = (want - clk->pos - 1) / clk->period; /* ceil((want - pos - period) / period) */
  uint64_t frames = cycles * clk->period;
  /* A prediction beyond an hour is nonsense from a scribbled reference: cap it. */
  if (frames > (uint64_t)rate * 3600)
    frames = (uint64_t)rate * 3600;
  return (int64_t)(clk->ns + frames * 1000000000ull / rate);
}
