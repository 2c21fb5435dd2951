#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail_errno(int code, char *err, size_t errlen, const char *what) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s", what, strerror(-code));
  return code;
}

static void bind_regions(struct shm_segment *seg) {
  const struct rw_segment_header *h = &seg->layout;
  seg->control = proto_segment_region(seg->base, h, RW_REGION_CONTROL);
  seg->audio_in = proto_segment_region(seg->base, h, RW_REGION_AUDIO_IN);
  seg->audio_out = proto_segment_region(seg->base, h, RW_REGION_AUDIO_OUT);
  seg->events = proto_segment_region(seg->base, h, RW_REGION_EVENTS);
  seg->messages = proto_segment_region(seg->base, h, RW_REGION_MESSAGES);
  seg->info = proto_segment_region(seg->base, h, RW_REGION_INFO);
  seg->state = proto_segment_region(seg->base, h, RW_REGION_STATE);
}

int shm_segment_create(const struct proto_segment_params *params, const char *name,
                       struct shm_segment *seg, char *err, size_t errlen) {
  struct rw_segment_header hdr;
  char memfd_name[64];
  int rc;

  memset(seg, 0, sizeof(*seg));
  seg->fd = -1;
  rc = proto_segment_layout(params, &hdr, err, errlen);
  if (rc != 0)
    return rc;

  snprintf(memfd_name, sizeof(memfd_name), "runway:%s", name ? name : "slot");
  seg->fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (seg->fd < 0) {
    rc = fail_errno(-errno, err, errlen, "memfd_create");
    goto fail;
  }
  if (ftruncate(seg->fd, (off_t)hdr.segment_size) != 0) {
    rc = fail_errno(-errno, err, errlen, "sizing the segment");
    goto fail;
  }
  /* After this nobody, us included, can change the size: a peer's mapping never SIGBUSes. */
  if (fcntl(seg->fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    rc = fail_errno(-errno, err, errlen, "sealing the segment");
    goto fail;
  }
  seg->size = hdr.segment_size;
  seg->base = mmap(NULL, seg->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, seg->fd, 0);
  if (seg->base == MAP_FAILED) {
    seg->base = NULL;
    rc = fail_errno(-errno, err, errlen, "mapping the segment");
    goto fail;
  }
  /* Best effort: keeps the RT thread's pages resident; RLIMIT_MEMLOCK may refuse. */
  (void)mlock(seg->base, seg->size);
  /* Touch every page now (the memfd is already zero) so first-touch faults happen here. */
  memset(seg->base, 0, seg->size);

  memcpy(seg->base, &hdr, sizeof(hdr));
  seg->layout = hdr;
  bind_regions(seg);
  struct rw_segment_control *c = seg->control;
  atomic_store_explicit(&c->out_write.value, hdr.latency, memory_order_relaxed);
  atomic_store_explicit(&c->wake_frames, hdr.wake_frames_default, memory_order_relaxed);
  /* Publishes the initialised segment to whoever maps it after us. */
  atomic_thread_fence(memory_order_release);
  return 0;

fail:
  if (seg->base == NULL && seg->fd >= 0)
    close(seg->fd);
  seg->fd = -1;
  shm_segment_release(seg);
  return rc;
}

int shm_segment_map(int fd, struct shm_segment *seg, char *err, size_t errlen) {
  struct stat st;
  int rc;

  memset(seg, 0, sizeof(*seg));
  seg->fd = -1;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0)
    return fail_errno(-errno, err, errlen, "reading the segment's seals (is it a memfd?)");
  if ((seals & F_SEAL_SHRINK) == 0) {
    if (err)
      snprintf(err, errlen, "segment is not sealed against shrinking; refusing to map it");
    return -EPERM;
  }
  if (fstat(fd, &st) != 0)
    return fail_errno(-errno, err, errlen, "fstat on the segment");
  if (st.st_size < (off_t)sizeof(struct rw_segment_header)) {
    if (err)
      snprintf(err, errlen, "segment of %lld bytes is too small", (long long)st.st_size);
    return -EINVAL;
  }
  void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    fd, 0);
  if (base == MAP_FAILED)
    return fail_errno(-errno, err, errlen, "mapping the segment");
  rc = proto_segment_validate(base, (size_t)st.st_size, &seg->layout, err, errlen);
  if (rc != 0) {
    munmap(base, (size_t)st.st_size);
    return rc;
  }
  seg->fd = fd;
  seg->base = base;
  seg->size = (size_t)st.st_size;
  (void)mlock(seg->base, seg->size);
  bind_regions(seg);
  return 0;
}

int shm_segment_check(const struct shm_segment *seg, char *err, size_t errlen) {
  struct rw_segment_header now;
  int rc = proto_segment_validate(seg->base, seg->size, &now, err, errlen);
  if (rc != 0)
    return rc;
  if (memcmp(&now, &seg->layout, sizeof(now)) != 0) {
    if (err)
      snprintf(err, errlen, "segment header was changed after creation");
    return -EPROTO;
  }
  return 0;
}

void shm_segment_release(struct shm_segment *seg) {
  /* A segment owns its fd exactly while it is mapped; a zeroed one owns nothing (not fd 0). */
  if (seg->base != NULL) {
    munmap(seg->base, seg->size);
    if (seg->fd >= 0)
      close(seg->fd);
  }
  memset(seg, 0, sizeof(*seg));
  seg->fd = -1;
}
