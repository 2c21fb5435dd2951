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

int shm_wake_worker_if_due(struct rw_segment_control *ctl, uint64_t in_write, uint32_t capacity) {
  /* seq_cst: the other half of the Dekker pair with the worker's store to `sleeping`. */
  if (atomic_load_explicit(&ctl->sleeping, memory_order_seq_cst) == 0)
    return 0;
  uint64_t in_read = atomic_load_explicit(&ctl->in_read.value, memory_order_relaxed);
  uint32_t want = atomic_load_explicit(&ctl->wake_frames, memory_order_relaxed);
  if (want == 0)
    want = 1;
  if (want > capacity)
    want = capacity;
  /* An impossible in_read (ahead of in_write) wraps to a huge backlog: waking is harmless. */
  if (in_write - in_read < want)
    return 0;
  /* Only one waker per sleep: whoever clears the flag bumps the word. */
  if (atomic_exchange_explicit(&ctl->sleeping, 0, memory_order_acq_rel) == 0)
    return 0;
  shm_wake_worker(ctl);
  return 1;
}

void shm_wake_worker(struct rw_segment_control *ctl) {
  /* Release: the worker's futex wait compares this word; what it should see is published. */
  atomic_fetch_add_explicit(&ctl->wake_seq, 1, memory_order_release);
  shm_futex_wake(&ctl->wake_seq, 1);
}

int shm_wake_wait(struct rw_segment_control *ctl, uint64_t pos, uint32_t want,
                  int64_t timeout_ns) {
  atomic_store_explicit(&ctl->wake_frames, want, memory_order_relaxed);
  /* Acquire: read the word before announcing sleep, so any later bump makes the wait return. */
  uint32_t seq = atomic_load_explicit(&ctl->wake_seq, memory_order_acquire);
  /* seq_cst: pairs with the daemon's seq_cst store of in_write and load of `sleeping`. */
  atomic_store_explicit(&ctl->sleeping, 1, memory_order_seq_cst);
  uint64_t in_write = atomic_load_explicit(&ctl->in_write.value, memory_order_seq_cst);
  if (in_write - pos >= want) {
    atomic_store_explicit(&ctl->sleeping, 0, memory_order_relaxed);
    return 0;
  }
  int rc = shm_futex_wait(&ctl->wake_seq, seq, timeout_ns);
  /* On timeout or a signal nobody cleared it; a stale flag would only cost a spurious wake. */
  atomic_store_explicit(&ctl->sleeping, 0, memory_order_relaxed);
  return rc;
}
