/*
 * shm/segment: creating a sealed memfd segment, mapping it on the worker side,
 * refusing what is not a sealed runway segment, and detecting header changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"

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

/* A memfd of the segment's size holding a copy of its header, sealed with seals. */
static int copy_into_memfd(const struct shm_segment *seg, unsigned int mfd_flags, int seals) {
  int fd = memfd_create("unit-copy", MFD_CLOEXEC | mfd_flags);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)seg->size), 0);
  assert_int_equal(pwrite(fd, seg->base, sizeof(struct rw_segment_header), 0),
                   (ssize_t)sizeof(struct rw_segment_header));
  if (seals != 0)
    assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
  return fd;
}

static void assert_map_refused(int fd, int want_rc) {
  struct shm_segment m;
  char err[256] = "";
  memset(&m, 0x77, sizeof(m));
  int rc = shm_segment_map(fd, &m, err, sizeof(err));
  if (want_rc != 0 && rc != want_rc)
    fail_msg("shm_segment_map returned %d (%s), expected %d", rc, err, want_rc);
  assert_true(rc < 0);
  assert_true(err[0] != '\0');
  assert_int_equal(m.fd, -1);
  assert_null(m.base);
  /* A refused fd still belongs to the caller. */
  assert_true(fd_is_open(fd));
  shm_segment_release(&m);
  assert_true(fd_is_open(fd));
}

static void test_create(void **state) {
  (void)state;
  struct shm_segment seg;
  struct stat st;
  create(&seg);
  const struct rw_segment_header *h = &seg.layout;

  assert_true(seg.fd >= 0);
  assert_non_null(seg.base);
  assert_int_equal(seg.size, h->segment_size);
  assert_int_equal(fstat(seg.fd, &st), 0);
  assert_int_equal((uint64_t)st.st_size, h->segment_size);
  assert_true(fcntl(seg.fd, F_GETFD) & FD_CLOEXEC);

  /* The shared header is the private snapshot, and both are the computed layout. */
  struct rw_segment_header want;
  struct proto_segment_params p = params();
  assert_int_equal(proto_segment_layout(&p, &want, NULL, 0), 0);
  assert_memory_equal(&seg.layout, &want, sizeof(want));
  assert_memory_equal(seg.base, &want, sizeof(want));

  unsigned char *b = seg.base;
  assert_ptr_equal(seg.control, b + h->regions[RW_REGION_CONTROL].offset);
  assert_ptr_equal(seg.audio_in, b + h->regions[RW_REGION_AUDIO_IN].offset);
  assert_ptr_equal(seg.audio_out, b + h->regions[RW_REGION_AUDIO_OUT].offset);
  assert_ptr_equal(seg.events, b + h->regions[RW_REGION_EVENTS].offset);
  assert_ptr_equal(seg.messages, b + h->regions[RW_REGION_MESSAGES].offset);

  char path[64], target[256];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", seg.fd);
  ssize_t n = readlink(path, target, sizeof(target) - 1);
  assert_true(n > 0);
  target[n] = '\0';
  assert_non_null(strstr(target, "memfd:runway:unit"));

  shm_segment_release(&seg);
}

static void test_create_sealed(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  int seals = fcntl(seg.fd, F_GET_SEALS);
  assert_true(seals >= 0);
  assert_int_equal(seals & (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
                   F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  /* Writes stay allowed: both sides write through their mappings. */
  assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0);

  assert_int_equal(ftruncate(seg.fd, (off_t)seg.size + 4096), -1);
  assert_int_equal(errno, EPERM);
  assert_int_equal(ftruncate(seg.fd, (off_t)seg.size - 4096), -1);
  assert_int_equal(errno, EPERM);
  assert_int_equal(ftruncate(seg.fd, 0), -1);
  /* F_SEAL_SEAL: nobody can remove or add seals later. */
  assert_int_equal(fcntl(seg.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
  assert_int_equal(errno, EPERM);

  struct stat st;
  assert_int_equal(fstat(seg.fd, &st), 0);
  assert_int_equal((uint64_t)st.st_size, seg.size);
  shm_segment_release(&seg);
}

static void test_create_initial_state(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  const struct rw_segment_control *c = seg.control;
  assert_int_equal(atomic_load(&c->out_write.value), seg.layout.latency);
  assert_int_equal(atomic_load(&c->in_write.value), 0);
  assert_int_equal(atomic_load(&c->in_read.value), 0);
  assert_int_equal(atomic_load(&c->out_read.value), 0);
  assert_int_equal(atomic_load(&c->ev_write.value), 0);
  assert_int_equal(atomic_load(&c->ev_read.value), 0);
  assert_int_equal(atomic_load(&c->msg_write.value), 0);
  assert_int_equal(atomic_load(&c->msg_read.value), 0);
  assert_int_equal(atomic_load(&c->wake_seq), 0);
  assert_int_equal(atomic_load(&c->sleeping), 0);
  assert_int_equal(atomic_load(&c->wake_frames), seg.layout.wake_frames_default);
  assert_int_equal(seg.layout.wake_frames_default, 128); /* one period */
  assert_int_equal(atomic_load(&c->worker.skipped_frames), 0);
  assert_int_equal(atomic_load(&c->daemon.cycles), 0);

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
  assert_int_equal(seg.fd, -1);
  assert_null(seg.base);
  shm_segment_release(&seg);

  /* A NULL name falls back to a default rather than failing. */
  p = params();
  assert_int_equal(shm_segment_create(&p, NULL, &seg, NULL, 0), 0);
  shm_segment_release(&seg);
}

static void test_map_dup(void **state) {
  (void)state;
  struct shm_segment seg, m;
  char err[256] = "";
  create(&seg);
  int fd = dup(seg.fd);
  assert_true(fd >= 0);
  int rc = shm_segment_map(fd, &m, err, sizeof(err));
  if (rc != 0)
    fail_msg("shm_segment_map: %d %s", rc, err);
  assert_int_equal(m.fd, fd);
  assert_int_equal(m.size, seg.size);
  assert_ptr_not_equal(m.base, seg.base);
  assert_memory_equal(&m.layout, &seg.layout, sizeof(m.layout));
  assert_ptr_equal((unsigned char *)m.control - (unsigned char *)m.base + (unsigned char *)seg.base,
                   seg.control);
  assert_ptr_equal((unsigned char *)m.messages - (unsigned char *)m.base + (unsigned char *)seg.base,
                   seg.messages);
  assert_int_equal(m.control->out_write.value, seg.layout.latency);

  /* Both mappings are the same memory. */
  atomic_store(&seg.control->in_write.value, 12345);
  assert_int_equal(atomic_load(&m.control->in_write.value), 12345);
  m.audio_out[7] = 0.25f;
  assert_true(seg.audio_out[7] == 0.25f);
  m.messages[3].time = 99;
  assert_int_equal(seg.messages[3].time, 99);

  assert_int_equal(shm_segment_check(&m, NULL, 0), 0);
  shm_segment_release(&m);
  assert_false(fd_is_open(fd)); /* the mapped segment owned it */
  assert_true(fd_is_open(seg.fd));
  shm_segment_release(&seg);
}

static void test_map_refuses_unsealed(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);

  /* A correct copy of the header, but the fd could shrink under the mapping. */
  int fd = copy_into_memfd(&seg, MFD_ALLOW_SEALING, 0);
  assert_map_refused(fd, -EPERM);
  close(fd);

  fd = copy_into_memfd(&seg, MFD_ALLOW_SEALING, F_SEAL_GROW);
  assert_map_refused(fd, -EPERM);
  close(fd);

  /* Without MFD_ALLOW_SEALING a memfd can never be sealed. */
  fd = copy_into_memfd(&seg, 0, 0);
  assert_map_refused(fd, -EPERM);
  close(fd);

  /* The same copy, sealed, is accepted: the refusals above were about seals. */
  fd = copy_into_memfd(&seg, MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW);
  struct shm_segment m;
  assert_int_equal(shm_segment_map(fd, &m, NULL, 0), 0);
  shm_segment_release(&m);

  shm_segment_release(&seg);
}

static void test_map_refuses_non_memfd(void **state) {
  (void)state;
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  assert_map_refused(pfd[0], 0);
  assert_map_refused(pfd[1], 0);
  close(pfd[0]);
  close(pfd[1]);

  /* A regular file with a valid header in it. */
  struct shm_segment seg;
  create(&seg);
  char path[] = "/tmp/runway-unit-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  assert_int_equal(ftruncate(fd, (off_t)seg.size), 0);
  assert_int_equal(pwrite(fd, seg.base, sizeof(struct rw_segment_header), 0),
                   (ssize_t)sizeof(struct rw_segment_header));
  assert_map_refused(fd, 0);
  close(fd);

  fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_map_refused(fd, 0);
  close(fd);

  struct shm_segment m;
  assert_true(shm_segment_map(-1, &m, NULL, 0) < 0);
  assert_int_equal(m.fd, -1);
  shm_segment_release(&seg);
}

static void test_map_refuses_too_small(void **state) {
  (void)state;
  int fd = memfd_create("unit-small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, 100), 0);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  assert_map_refused(fd, -EINVAL);
  close(fd);

  fd = memfd_create("unit-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  assert_true(fd >= 0);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  assert_map_refused(fd, -EINVAL);
  close(fd);
}

static void test_map_refuses_scribbled_header(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  struct rw_segment_header *shared = seg.base;

  /* Each change is made through the daemon's mapping, then a worker maps the fd. */
  shared->magic ^= 0x100;
  int fd = dup(seg.fd);
  assert_map_refused(fd, -EPROTO);
  shared->magic = seg.layout.magic;

  shared->capacity *= 2;
  assert_map_refused(fd, -EPROTO);
  shared->capacity = seg.layout.capacity;

  shared->regions[RW_REGION_AUDIO_OUT].size += 4;
  assert_map_refused(fd, -EPROTO);
  shared->regions[RW_REGION_AUDIO_OUT].size = seg.layout.regions[RW_REGION_AUDIO_OUT].size;

  shared->segment_size += 4096;
  assert_map_refused(fd, -EPROTO);
  shared->segment_size = seg.layout.segment_size;

  struct shm_segment m;
  assert_int_equal(shm_segment_map(fd, &m, NULL, 0), 0);
  shm_segment_release(&m);
  shm_segment_release(&seg);
}

static void test_check_detects_header_change(void **state) {
  (void)state;
  struct shm_segment seg, m;
  char err[256] = "";
  create(&seg);
  assert_int_equal(shm_segment_map(dup(seg.fd), &m, NULL, 0), 0);
  assert_int_equal(shm_segment_check(&seg, err, sizeof(err)), 0);

  unsigned char *hdr = seg.base;
  unsigned char orig[sizeof(struct rw_segment_header)];
  memcpy(orig, hdr, sizeof(orig));
  /*
   * Every bit of the header, including the parameters that validate alone
   * accepts in a consistent header (rate, flags, L, period, wake size,
   * generation): check compares with the private snapshot.
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

  /* Counters are not part of the header: the worker moving them is no tampering. */
  atomic_store(&seg.control->out_write.value, 1u << 30);
  assert_int_equal(shm_segment_check(&seg, NULL, 0), 0);

  shm_segment_release(&m);
  shm_segment_release(&seg);
}

static void test_release_idempotent(void **state) {
  (void)state;
  struct shm_segment seg;
  create(&seg);
  int fd = seg.fd;
  shm_segment_release(&seg);
  assert_false(fd_is_open(fd));
  assert_int_equal(seg.fd, -1);
  assert_null(seg.base);
  assert_int_equal(seg.size, 0);
  shm_segment_release(&seg);
  shm_segment_release(&seg);
  assert_int_equal(seg.fd, -1);
  /* A released segment fails its check instead of touching freed memory. */
  assert_true(shm_segment_check(&seg, NULL, 0) < 0);
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
      cmocka_unit_test(test_create_initial_state),
      cmocka_unit_test(test_create_invalid_params),
      cmocka_unit_test(test_map_dup),
      cmocka_unit_test(test_map_refuses_unsealed),
      cmocka_unit_test(test_map_refuses_non_memfd),
      cmocka_unit_test(test_map_refuses_too_small),
      cmocka_unit_test(test_map_refuses_scribbled_header),
      cmocka_unit_test(test_check_detects_header_change),
      cmocka_unit_test(test_release_idempotent),
      cmocka_unit_test(test_release_zeroed_keeps_fd0),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
