/*
 * shm/segment: creating a segment's two sealed memfds, mapping them on the
 * worker side (the daemon file read-only), refusing what is not a sealed
 * runway segment, detecting header changes, and the kernel guarantees the
 * split rests on: a worker can neither write nor punch the daemon file, and
 * a hole punched in the worker file is found even after the page came back
 * (the pagemap tests must run after the mincore one: see their comments).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static struct proto_segment_params params(void) {
  struct proto_segment_params p = {
      .sample_rate = 48000,
      .n_inputs = 2,
      .n_outputs = 1,
      .flags = RW_SEGMENT_F_MIDI,
      .latency = 2400,
      .max_period = 128,
      .generation = 3,
  };
  return p;
}

static void create(struct shm_segment *seg) {
  char err[256] = "";
  struct proto_segment_params p = params();
  int rc = shm_segment_create(&p, "unit", seg, err, sizeof(err));
  if (rc != 0)
    fail_msg("shm_segment_create: %d %s", rc, err);
}

static int fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Maps dups of the segment's files as a worker does; the test owns the result. */
static void map_dups(const struct shm_segment *seg, struct shm_segment *m) {
  char err[256] = "";
  int d = dup(seg->fd[RW_FILE_DAEMON]), w = dup(seg->fd[RW_FILE_WORKER]);
  assert_true(d >= 0 && w >= 0);
  int rc = shm_segment_map(d, w, m, err, sizeof(err));
  if (rc != 0)
    fail_msg("shm_segment_map: %d %s", rc, err);
}

/* A memfd of size bytes holding head (len bytes) at 0, sealed with seals. */
static int memfd_with(size_t size, const void *head, size_t len, unsigned int mfd_flags,
                      int seals) {
  int fd = memfd_create("unit-copy", MFD_CLOEXEC | mfd_flags);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)size), 0);
  if (len > 0)
    assert_int_equal(pwrite(fd, head, len, 0), (ssize_t)len);
  if (seals != 0)
    assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
  return fd;
}

/* A copy of the daemon file's header in a fresh memfd of its size. */
static int copy_daemon_file(const struct shm_segment *seg, unsigned int mfd_flags, int seals) {
  return memfd_with(seg->size[RW_FILE_DAEMON], seg->base[RW_FILE_DAEMON],
                    sizeof(struct rw_segment_header), mfd_flags, seals);
}

static int copy_worker_file(const struct shm_segment *seg, unsigned int mfd_flags, int seals) {
  return memfd_with(seg->size[RW_FILE_WORKER], NULL, 0, mfd_flags, seals);
}

static void assert_map_refused(int dfd, int wfd, int want_rc) {
  struct shm_segment m;
  char err[256] = "";
  memset(&m, 0x77, sizeof(m));
  int rc = shm_segment_map(dfd, wfd, &m, err, sizeof(err));
  if (want_rc != 0 && rc != want_rc)
    fail_msg("shm_segment_map returned %d (%s), expected %d", rc, err, want_rc);
  assert_true(rc < 0);
  assert_true(err[0] != '\0');
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    assert_int_equal(m.fd[f], -1);
    assert_null(m.base[f]);
  }
  /* Refused fds still belong to the caller. */
  assert_true(dfd < 0 || fd_is_open(dfd));
  assert_true(wfd < 0 || fd_is_open(wfd));
  shm_segment_release(&m);
  assert_true(dfd < 0 || fd_is_open(dfd));
  assert_true(wfd < 0 || fd_is_open(wfd));
}

static void test_create(void **state) {
  (void)state;
  struct shm_segment seg;
  struct stat st;
  create(&seg);
  const struct rw_segment_header *h = &seg.layout;
  static const char *const names[RW_FILE_COUNT] = {"memfd:runway:unit:daemon",
                                                   "memfd:runway:unit:worker"};

  for (int f = 0; f < RW_FILE_COUNT; f++) {
    assert_true(seg.fd[f] >= 0);
    assert_non_null(seg.base[f]);
    assert_int_equal(seg.size[f], h->file_size[f]);
    assert_int_equal(fstat(seg.fd[f], &st), 0);
    assert_int_equal((uint64_t)st.st_size, h->file_size[f]);
    assert_true(fcntl(seg.fd[f], F_GETFD) & FD_CLOEXEC);
    char path[64], target[256];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", seg.fd[f]);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_non_null(strstr(target, names[f]));
  }

  /* The shared header is the private snapshot, and both are the computed layout. */
  struct rw_segment_header want;
  struct proto_segment_params p = params();
  assert_int_equal(proto_segment_layout(&p, &want, NULL, 0), 0);
  assert_memory_equal(&seg.layout, &want, sizeof(want));
  assert_memory_equal(seg.base[RW_FILE_DAEMON], &want, sizeof(want));

  /* What the daemon writes is in the daemon file, what the worker writes in the worker file. */
  unsigned char *d = seg.base[RW_FILE_DAEMON], *w = seg.base[RW_FILE_WORKER];
  assert_ptr_equal(seg.ctl.d, d + h->regions[RW_REGION_DAEMON_CONTROL].offset);
  assert_ptr_equal(seg.audio_in, d + h->regions[RW_REGION_AUDIO_IN].offset);
  assert_ptr_equal(seg.events, d + h->regions[RW_REGION_EVENTS].offset);
  assert_ptr_equal(seg.state_request, d + h->regions[RW_REGION_STATE_REQUEST].offset);
  assert_ptr_equal(seg.ctl.w, w + h->regions[RW_REGION_WORKER_CONTROL].offset);
  assert_ptr_equal(seg.audio_out, w + h->regions[RW_REGION_AUDIO_OUT].offset);
  assert_ptr_equal(seg.messages, w + h->regions[RW_REGION_MESSAGES].offset);
  assert_ptr_equal(seg.info, w + h->regions[RW_REGION_INFO].offset);
  assert_ptr_equal(seg.state_reply, w + h->regions[RW_REGION_STATE_REPLY].offset);
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);

  shm_segment_release(&seg);
}

static void test_create_sealed(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  const int resize = F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
  int seals = fcntl(seg.fd[RW_FILE_DAEMON], F_GET_SEALS);
  assert_int_equal(seals & (resize | F_SEAL_FUTURE_WRITE), resize | F_SEAL_FUTURE_WRITE);
  /* The worker file stays writable: the worker writes it (through its mapping). */
  seals = fcntl(seg.fd[RW_FILE_WORKER], F_GET_SEALS);
  assert_int_equal(seals & resize, resize);
  assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0);

  for (int f = 0; f < RW_FILE_COUNT; f++) {
    assert_int_equal(ftruncate(seg.fd[f], (off_t)seg.size[f] + 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(seg.fd[f], (off_t)seg.size[f] - 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(seg.fd[f], 0), -1);
    /* F_SEAL_SEAL: nobody can remove or add seals later. */
    assert_int_equal(fcntl(seg.fd[f], F_ADD_SEALS, F_SEAL_WRITE), -1);
    assert_int_equal(errno, EPERM);
  }

  /* The daemon's own mapping of its file, made before the seal, stays writable. */
  atomic_store(&seg.ctl.d->in_write.value, 777);
  assert_int_equal(atomic_load(&seg.ctl.d->in_write.value), 777);
  shm_segment_release(&seg);
}

/*
 * What a worker holding the daemon file can do to it, through every door:
 * nothing that changes it or takes a page away. These are the kernel's
 * guarantees (F_SEAL_FUTURE_WRITE, Linux 5.1), checked here on the running
 * kernel because the RT thread's safety rests on them.
 */
static void test_daemon_file_refuses_the_worker(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  const size_t size = seg.size[RW_FILE_DAEMON];
  int fd = dup(seg.fd[RW_FILE_DAEMON]);
  assert_true(fd >= 0);

  assert_ptr_equal(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  assert_int_equal(errno, EPERM);
  void *ro = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  assert_ptr_not_equal(ro, MAP_FAILED);
  assert_int_equal(mprotect(ro, size, PROT_READ | PROT_WRITE), -1);
  assert_int_equal(madvise(ro, size, MADV_REMOVE), -1);
  assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size), -1);
  assert_int_equal(errno, EPERM);
  assert_int_equal(pwrite(fd, "x", 1, 0), -1);
  assert_int_equal(errno, EPERM);
  /* A private copy-on-write mapping is the worker's own memory, not the daemon's. */
  unsigned char *priv = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  assert_ptr_not_equal(priv, MAP_FAILED);
  priv[0] ^= 0xff;
  assert_int_equal(madvise(priv, size, MADV_REMOVE), -1);
  munmap(priv, size);

  /* Opened again for writing through /proc: the seals are the file's, not the descriptor's. */
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  int again = open(path, O_RDWR | O_CLOEXEC);
  if (again >= 0) {
    assert_int_equal(fallocate(again, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size),
                     -1);
    assert_ptr_equal(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0), MAP_FAILED);
    assert_int_equal(pwrite(again, "x", 1, 0), -1);
    close(again);
  }

  /* Nothing changed and nothing went missing. */
  struct rw_segment_header snap;
  memcpy(&snap, ro, sizeof(snap));
  assert_memory_equal(&snap, &seg.layout, sizeof(snap));
  seg.pinned = true;
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);
  assert_int_equal(shm_segment_check(&seg, NULL, 0), 0);
  munmap(ro, size);
  close(fd);
  shm_segment_release(&seg);
}

/* Punches one page of the worker file; 0 or -errno. */
static int punch_page(const struct shm_segment *seg, off_t page) {
  const off_t size = (off_t)page_size();
  return fallocate(seg->fd[RW_FILE_WORKER], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, page * size,
                   size) == 0
             ? 0
             : -errno;
}

/* The RT thread's next copy: every page of its mapping of the worker file read again. */
static void touch_like_the_rt_thread(const struct shm_segment *seg) {
  for (size_t i = 0; i < seg->size[RW_FILE_WORKER]; i += page_size())
    (void)((volatile unsigned char *)seg->base[RW_FILE_WORKER])[i];
}

/*
 * Before shm_segment_watch_open (this test runs first): only the holes that
 * are still open are found, and only in a pinned segment.
 */
static void test_check_pages_without_pagemap(void **state) {
  (void)state;
  struct shm_segment seg;
  char err[256] = "";
  create(&seg);
  seg.pinned = true; /* whatever mlock and swap say here, as on a daemon that locks */
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);
  assert_int_equal(punch_page(&seg, 2), 0);
  assert_int_equal(shm_segment_check_pages(&seg, err, sizeof(err)), -EFAULT);
  assert_non_null(strstr(err, "page 2 of its file"));
  seg.pinned = false; /* pages may also be reclaimed: a missing one proves nothing */
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);
  seg.pinned = true;
  touch_like_the_rt_thread(&seg);
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0); /* the hole is filled again */
  shm_segment_release(&seg);
}

/*
 * With pagemap, a hole is found by either door, and still after the RT
 * thread's mapping faulted the page back in; what honest workers do (writes
 * through mappings of their own, made before or after) is never one.
 */
static void test_check_pages_finds_holes(void **state) {
  (void)state;
  struct shm_segment seg, m;
  char err[256] = "";
  assert_int_equal(shm_segment_watch_open(), 0);
  assert_int_equal(shm_segment_watch_open(), 0); /* once per process; again is harmless */

  /* Honest use first: the worker's own mapping, written page by page, and the daemon's. */
  create(&seg);
  seg.pinned = true;
  assert_non_null(seg.watch);
  map_dups(&seg, &m);
  unsigned char *fresh = mmap(NULL, m.size[RW_FILE_WORKER], PROT_READ | PROT_WRITE, MAP_SHARED,
                              m.fd[RW_FILE_WORKER], 0);
  assert_ptr_not_equal(fresh, MAP_FAILED);
  for (size_t i = 0; i < m.size[RW_FILE_WORKER]; i += page_size())
    fresh[i] = 1;
  atomic_store(&m.ctl.w->out_write.value, 4800);
  m.audio_out[5] = 0.5f;
  m.info->n_params = 1;
  atomic_store(&seg.ctl.d->in_write.value, 2400);
  seg.audio_in[3] = 0.25f;
  touch_like_the_rt_thread(&seg);
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);

  /* fallocate: found after the RT thread's copy filled the hole again. */
  assert_int_equal(punch_page(&seg, 3), 0);
  touch_like_the_rt_thread(&seg);
  assert_int_equal(shm_segment_check_pages(&seg, err, sizeof(err)), -EFAULT);
  assert_non_null(strstr(err, "page 3 of its file"));
  munmap(fresh, m.size[RW_FILE_WORKER]);
  shm_segment_release(&m);
  shm_segment_release(&seg);

  /* MADV_REMOVE through the worker's own mapping (refused while it is locked: unlocked first). */
  create(&seg);
  seg.pinned = true;
  map_dups(&seg, &m);
  munlock(m.base[RW_FILE_WORKER], m.size[RW_FILE_WORKER]);
  assert_int_equal(
      madvise((unsigned char *)m.base[RW_FILE_WORKER] + page_size(), page_size(), MADV_REMOVE), 0);
  touch_like_the_rt_thread(&seg);
  assert_int_equal(shm_segment_check_pages(&seg, err, sizeof(err)), -EFAULT);
  assert_non_null(strstr(err, "page 1 of its file"));
  shm_segment_release(&m);
  shm_segment_release(&seg);

  /* A segment that is not pinned is not judged: reclaim takes pages too. */
  create(&seg);
  seg.pinned = false;
  assert_int_equal(punch_page(&seg, 0), 0);
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);
  shm_segment_release(&seg);
}

static void test_create_initial_state(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  const struct rw_daemon_control *d = seg.ctl.d;
  const struct rw_worker_control *w = seg.ctl.w;
  assert_int_equal(atomic_load(&w->out_write.value), seg.layout.latency);
  assert_int_equal(atomic_load(&d->in_write.value), 0);
  assert_int_equal(atomic_load(&w->in_read.value), 0);
  assert_int_equal(atomic_load(&d->out_read.value), 0);
  assert_int_equal(atomic_load(&d->ev_write.value), 0);
  assert_int_equal(atomic_load(&w->ev_read.value), 0);
  assert_int_equal(atomic_load(&w->msg_write.value), 0);
  assert_int_equal(atomic_load(&d->msg_read.value), 0);
  assert_int_equal(atomic_load(&d->wake_seq), 0);
  assert_int_equal(atomic_load(&d->gap.start), 0);
  assert_int_equal(atomic_load(&d->gap.end), 0);
  assert_int_equal(atomic_load(&w->sleeping), 0);
  assert_int_equal(atomic_load(&w->wake_frames), seg.layout.wake_frames_default);
  assert_int_equal(seg.layout.wake_frames_default, 128); /* one period */
  assert_int_equal(atomic_load(&w->counters.skipped_frames), 0);

  /* Every ring starts silent. */
  size_t in_floats = (size_t)seg.layout.n_inputs * seg.layout.channel_stride;
  size_t out_floats = (size_t)seg.layout.n_outputs * seg.layout.channel_stride;
  for (size_t i = 0; i < in_floats; i++)
    assert_true(seg.audio_in[i] == 0.0f);
  for (size_t i = 0; i < out_floats; i++)
    assert_true(seg.audio_out[i] == 0.0f);
  shm_segment_release(&seg);
}

static void test_create_invalid_params(void **state) {
  (void)state;
  struct shm_segment seg;
  struct proto_segment_params p = params();
  char err[256] = "";
  p.latency = 0;
  memset(&seg, 0x55, sizeof(seg));
  assert_int_equal(shm_segment_create(&p, "bad", &seg, err, sizeof(err)), -EINVAL);
  assert_true(err[0] != '\0');
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    assert_int_equal(seg.fd[f], -1);
    assert_null(seg.base[f]);
  }
  shm_segment_release(&seg);

  /* A NULL name falls back to a default rather than failing. */
  p = params();
  assert_int_equal(shm_segment_create(&p, NULL, &seg, NULL, 0), 0);
  shm_segment_release(&seg);
}

static void test_map_dup(void **state) {
  (void)state;
  struct shm_segment seg, m;
  create(&seg);
  map_dups(&seg, &m);
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    assert_int_equal(m.size[f], seg.size[f]);
    assert_ptr_not_equal(m.base[f], seg.base[f]);
  }
  assert_memory_equal(&m.layout, &seg.layout, sizeof(m.layout));
  unsigned char *md = m.base[RW_FILE_DAEMON], *mw = m.base[RW_FILE_WORKER];
  unsigned char *sd = seg.base[RW_FILE_DAEMON], *sw = seg.base[RW_FILE_WORKER];
  assert_ptr_equal((unsigned char *)m.ctl.d - md + sd, seg.ctl.d);
  assert_ptr_equal((unsigned char *)m.ctl.w - mw + sw, seg.ctl.w);
  assert_ptr_equal((unsigned char *)m.messages - mw + sw, seg.messages);
  assert_ptr_equal((unsigned char *)m.events - md + sd, seg.events);
  assert_int_equal(atomic_load(&m.ctl.w->out_write.value), seg.layout.latency);

  /* Both mappings are the same memory: the daemon's writes reach the worker and back. */
  atomic_store(&seg.ctl.d->in_write.value, 12345);
  assert_int_equal(atomic_load(&m.ctl.d->in_write.value), 12345);
  m.audio_out[7] = 0.25f;
  assert_true(seg.audio_out[7] == 0.25f);
  m.messages[3].time = 99;
  assert_int_equal(seg.messages[3].time, 99);
  seg.audio_in[2] = 0.5f;
  assert_true(m.audio_in[2] == 0.5f);

  assert_int_equal(shm_segment_check(&m, NULL, 0), 0);
  int dfd = m.fd[RW_FILE_DAEMON], wfd = m.fd[RW_FILE_WORKER];
  shm_segment_release(&m);
  assert_false(fd_is_open(dfd)); /* the mapped segment owned them */
  assert_false(fd_is_open(wfd));
  assert_true(fd_is_open(seg.fd[RW_FILE_DAEMON]));
  assert_true(fd_is_open(seg.fd[RW_FILE_WORKER]));
  shm_segment_release(&seg);
}

static void test_map_refuses_unsealed(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  int good_w = copy_worker_file(&seg, MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW);
  int good_d = copy_daemon_file(&seg, MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW);

  /* A correct copy of the header, but the file could shrink under the mapping. */
  int fd = copy_daemon_file(&seg, MFD_ALLOW_SEALING, 0);
  assert_map_refused(fd, good_w, -EPERM);
  close(fd);
  fd = copy_daemon_file(&seg, MFD_ALLOW_SEALING, F_SEAL_GROW);
  assert_map_refused(fd, good_w, -EPERM);
  close(fd);
  /* Without MFD_ALLOW_SEALING a memfd can never be sealed. */
  fd = copy_daemon_file(&seg, 0, 0);
  assert_map_refused(fd, good_w, -EPERM);
  close(fd);
  /* The worker file likewise. */
  fd = copy_worker_file(&seg, MFD_ALLOW_SEALING, F_SEAL_GROW);
  assert_map_refused(good_d, fd, -EPERM);
  close(fd);

  /* The same copies, sealed, are accepted: the refusals above were about seals. */
  struct shm_segment m;
  assert_int_equal(shm_segment_map(good_d, good_w, &m, NULL, 0), 0);
  shm_segment_release(&m);
  shm_segment_release(&seg);
}

static void test_map_refuses_non_memfd(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  int good_w = dup(seg.fd[RW_FILE_WORKER]), good_d = dup(seg.fd[RW_FILE_DAEMON]);
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  assert_map_refused(pfd[0], good_w, 0);
  assert_map_refused(good_d, pfd[1], 0);
  close(pfd[0]);
  close(pfd[1]);

  /* A regular file with a valid header in it. */
  char path[] = "/tmp/runway-unit-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  assert_int_equal(ftruncate(fd, (off_t)seg.size[RW_FILE_DAEMON]), 0);
  assert_int_equal(pwrite(fd, seg.base[RW_FILE_DAEMON], sizeof(struct rw_segment_header), 0),
                   (ssize_t)sizeof(struct rw_segment_header));
  assert_map_refused(fd, good_w, 0);
  close(fd);

  fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_map_refused(fd, good_w, 0);
  assert_map_refused(good_d, fd, 0);
  close(fd);

  struct shm_segment m;
  assert_true(shm_segment_map(-1, good_w, &m, NULL, 0) < 0);
  assert_int_equal(m.fd[RW_FILE_DAEMON], -1);
  assert_true(shm_segment_map(good_d, -1, &m, NULL, 0) < 0);
  close(good_d);
  close(good_w);
  shm_segment_release(&seg);
}

static void test_map_refuses_wrong_files(void **state) {
  (void)state;
  struct shm_segment seg, other;
  create(&seg);
  struct proto_segment_params p = params();
  p.n_outputs = 3;
  assert_int_equal(shm_segment_create(&p, "other", &other, NULL, 0), 0);
  int d = dup(seg.fd[RW_FILE_DAEMON]), w = dup(seg.fd[RW_FILE_WORKER]);

  /* Swapped: the worker file is no header, and the daemon file cannot be mapped writable. */
  assert_map_refused(w, d, 0);
  /* The same file twice. */
  assert_map_refused(d, d, 0);
  /* Another segment's worker file: its size is not the one the header states. */
  int ow = dup(other.fd[RW_FILE_WORKER]);
  assert_map_refused(d, ow, -EPROTO);
  close(ow);

  /* A worker that reads only RUNWAY_SEGMENT_FD and maps it writable, as ABI 2 did. */
  assert_ptr_equal(mmap(NULL, seg.size[RW_FILE_DAEMON], PROT_READ | PROT_WRITE, MAP_SHARED, d, 0),
                   MAP_FAILED);

  struct shm_segment m;
  assert_int_equal(shm_segment_map(d, w, &m, NULL, 0), 0);
  shm_segment_release(&m);
  shm_segment_release(&other);
  shm_segment_release(&seg);
}

static void test_map_refuses_too_small(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  int good_w = dup(seg.fd[RW_FILE_WORKER]);
  int fd = memfd_with(100, NULL, 0, MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW);
  assert_map_refused(fd, good_w, -EINVAL);
  close(fd);

  fd = memfd_create("unit-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  assert_true(fd >= 0);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  assert_map_refused(fd, good_w, -EINVAL);
  assert_map_refused(dup(seg.fd[RW_FILE_DAEMON]), fd, -EINVAL);
  close(fd);
  close(good_w);
  shm_segment_release(&seg);
}

static void test_map_refuses_scribbled_header(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  struct rw_segment_header *shared = seg.base[RW_FILE_DAEMON];

  /* Each change is made through the daemon's mapping, then a worker maps the files. */
  int d = dup(seg.fd[RW_FILE_DAEMON]), w = dup(seg.fd[RW_FILE_WORKER]);
  shared->magic ^= 0x100;
  assert_map_refused(d, w, -EPROTO);
  shared->magic = seg.layout.magic;

  shared->capacity *= 2;
  assert_map_refused(d, w, -EPROTO);
  shared->capacity = seg.layout.capacity;

  shared->regions[RW_REGION_AUDIO_OUT].size += 4;
  assert_map_refused(d, w, -EPROTO);
  shared->regions[RW_REGION_AUDIO_OUT].size = seg.layout.regions[RW_REGION_AUDIO_OUT].size;

  shared->regions[RW_REGION_INFO].file = RW_FILE_DAEMON;
  assert_map_refused(d, w, -EPROTO);
  shared->regions[RW_REGION_INFO].file = RW_FILE_WORKER;

  for (int f = 0; f < RW_FILE_COUNT; f++) {
    shared->file_size[f] += 4096;
    assert_map_refused(d, w, -EPROTO);
    shared->file_size[f] = seg.layout.file_size[f];
  }

  struct shm_segment m;
  assert_int_equal(shm_segment_map(d, w, &m, NULL, 0), 0);
  shm_segment_release(&m);
  shm_segment_release(&seg);
}

static void test_check_detects_header_change(void **state) {
  (void)state;
  struct shm_segment seg, m;
  char err[256] = "";
  create(&seg);
  map_dups(&seg, &m);
  assert_int_equal(shm_segment_check(&seg, err, sizeof(err)), 0);

  unsigned char *hdr = seg.base[RW_FILE_DAEMON];
  unsigned char orig[sizeof(struct rw_segment_header)];
  memcpy(orig, hdr, sizeof(orig));
  /*
   * Every bit of the header, including the parameters that validate alone
   * accepts in a consistent header (rate, flags, L, period, wake size,
   * generation): check compares with the private snapshot. Only the daemon
   * can write there now; the check guards against its own mistakes.
   */
  for (size_t byte = 0; byte < sizeof(orig); byte++) {
    for (int bit = 0; bit < 8; bit++) {
      hdr[byte] ^= (unsigned char)(1u << bit);
      err[0] = '\0';
      int rc = shm_segment_check(&seg, err, sizeof(err));
      if (rc != -EPROTO)
        fail_msg("flipping bit %d of header byte %zu: check returned %d", bit, byte, rc);
      assert_true(err[0] != '\0');
      /* The worker's snapshot is just as independent of the shared bytes. */
      assert_int_equal(shm_segment_check(&m, NULL, 0), -EPROTO);
      hdr[byte] = orig[byte];
    }
  }
  assert_int_equal(shm_segment_check(&seg, NULL, 0), 0);
  assert_int_equal(shm_segment_check(&m, NULL, 0), 0);

  /* Positions are not part of the header: the worker moving them is no tampering. */
  atomic_store(&m.ctl.w->out_write.value, 1u << 30);
  assert_int_equal(shm_segment_check(&seg, NULL, 0), 0);

  shm_segment_release(&m);
  shm_segment_release(&seg);
}

static void test_release_idempotent(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  int fds[RW_FILE_COUNT] = {seg.fd[0], seg.fd[1]};
  shm_segment_release(&seg);
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    assert_false(fd_is_open(fds[f]));
    assert_int_equal(seg.fd[f], -1);
    assert_null(seg.base[f]);
    assert_int_equal(seg.size[f], 0);
  }
  shm_segment_release(&seg);
  shm_segment_release(&seg);
  assert_int_equal(seg.fd[0], -1);
  /* A released segment fails its check instead of touching freed memory. */
  assert_true(shm_segment_check(&seg, NULL, 0) < 0);
  assert_int_equal(shm_segment_check_pages(&seg, NULL, 0), 0);
}

/*
 * segment.h promises release is "safe on a zeroed ... segment". A zeroed
 * struct has fd 0, which is a real descriptor (stdin, or whatever reused it).
 */
static void test_release_zeroed_keeps_fd0(void **state) {
  (void)state;
  int saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
  if (saved < 0) {
    /* fd 0 was closed: put something there so closing it would show. */
    int devnull = open("/dev/null", O_RDONLY);
    assert_int_equal(devnull, 0);
  }
  struct shm_segment seg;
  memset(&seg, 0, sizeof(seg));
  shm_segment_release(&seg);
  int still_open = fd_is_open(0);
  if (saved >= 0) {
    dup2(saved, 0);
    close(saved);
  } else {
    close(0);
  }
  if (!still_open)
    fail_msg("shm_segment_release on a zeroed segment closed fd 0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create),
      cmocka_unit_test(test_create_sealed),
      cmocka_unit_test(test_daemon_file_refuses_the_worker),
      cmocka_unit_test(test_check_pages_without_pagemap),
      cmocka_unit_test(test_check_pages_finds_holes),
      cmocka_unit_test(test_create_initial_state),
      cmocka_unit_test(test_create_invalid_params),
      cmocka_unit_test(test_map_dup),
      cmocka_unit_test(test_map_refuses_unsealed),
      cmocka_unit_test(test_map_refuses_non_memfd),
      cmocka_unit_test(test_map_refuses_wrong_files),
      cmocka_unit_test(test_map_refuses_too_small),
      cmocka_unit_test(test_map_refuses_scribbled_header),
      cmocka_unit_test(test_check_detects_header_change),
      cmocka_unit_test(test_release_idempotent),
      cmocka_unit_test(test_release_zeroed_keeps_fd0),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
