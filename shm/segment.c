#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010 /* Linux 5.1; older C libraries lack the name */
#endif

static const char *const file_names[RW_FILE_COUNT] = {"daemon", "worker"};

static bool swap_configured(void);

static int fail_errno(int code, char *err, size_t errlen, const char *what, int file) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s the %s file: %s", what, file_names[file], strerror(-code));
  return code;
}

static void bind_regions(struct shm_segment *seg) {
  const struct rw_segment_header *h = &seg->layout;
  seg->ctl.d = proto_segment_region(seg->base, h, RW_REGION_DAEMON_CONTROL);
  seg->ctl.w = proto_segment_region(seg->base, h, RW_REGION_WORKER_CONTROL);
  seg->audio_in = proto_segment_region(seg->base, h, RW_REGION_AUDIO_IN);
  seg->audio_out = proto_segment_region(seg->base, h, RW_REGION_AUDIO_OUT);
  seg->events = proto_segment_region(seg->base, h, RW_REGION_EVENTS);
  seg->messages = proto_segment_region(seg->base, h, RW_REGION_MESSAGES);
  seg->info = proto_segment_region(seg->base, h, RW_REGION_INFO);
  seg->state_request = proto_segment_region(seg->base, h, RW_REGION_STATE_REQUEST);
  seg->state_reply = proto_segment_region(seg->base, h, RW_REGION_STATE_REPLY);
}

static void segment_reset(struct shm_segment *seg) {
  memset(seg, 0, sizeof(*seg));
  for (int f = 0; f < RW_FILE_COUNT; f++)
    seg->fd[f] = -1;
}

/* One file of a new segment: made, sized, sealed against resize, mapped and touched. */
static int create_file(struct shm_segment *seg, int f, const char *name, uint64_t size, char *err,
                       size_t errlen) {
  char memfd_name[80];
  snprintf(memfd_name, sizeof(memfd_name), "runway:%s:%s", name ? name : "slot", file_names[f]);
  seg->fd[f] = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (seg->fd[f] < 0)
    return fail_errno(-errno, err, errlen, "making", f);
  if (ftruncate(seg->fd[f], (off_t)size) != 0)
    return fail_errno(-errno, err, errlen, "sizing", f);
  /* After this nobody, us included, can change the size: a peer's mapping never SIGBUSes. */
  if (fcntl(seg->fd[f], F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) != 0)
    return fail_errno(-errno, err, errlen, "sealing", f);
  seg->size[f] = size;
  seg->base[f] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, seg->fd[f], 0);
  if (seg->base[f] == MAP_FAILED) {
    seg->base[f] = NULL;
    return fail_errno(-errno, err, errlen, "mapping", f);
  }
  /* Touch every page now (the memfd is already zero) so first-touch faults happen here. */
  memset(seg->base[f], 0, size);
  return 0;
}

int shm_segment_create(const struct proto_segment_params *params, const char *name,
                       struct shm_segment *seg, char *err, size_t errlen) {
  struct rw_segment_header hdr;
  int rc;

  segment_reset(seg);
  rc = proto_segment_layout(params, &hdr, err, errlen);
  if (rc != 0)
    return rc;
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    rc = create_file(seg, f, name, hdr.file_size[f], err, errlen);
    if (rc != 0)
      goto fail;
  }
  /*
   * Best effort: keeps the RT thread's pages resident; RLIMIT_MEMLOCK may
   * refuse. Locked pages are never reclaimed (nor are any pages without
   * swap), which lets the page check read any page that went as a hole.
   */
  bool locked = mlock(seg->base[RW_FILE_DAEMON], seg->size[RW_FILE_DAEMON]) == 0 &&
                mlock(seg->base[RW_FILE_WORKER], seg->size[RW_FILE_WORKER]) == 0;
  seg->pinned = locked || !swap_configured();

  memcpy(seg->base[RW_FILE_DAEMON], &hdr, sizeof(hdr));
  seg->layout = hdr;
  bind_regions(seg);
  atomic_store_explicit(&seg->ctl.w->out_write.value, hdr.latency, memory_order_relaxed);
  atomic_store_explicit(&seg->ctl.w->wake_frames, hdr.wake_frames_default, memory_order_relaxed);

  /*
   * Our mapping stays writable; from now on the daemon file cannot be mapped
   * writable, written or punched by anyone who gets it, and its seals are
   * final. The worker file keeps what it needs: its worker writes it.
   */
  if (fcntl(seg->fd[RW_FILE_DAEMON], F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
    rc = fail_errno(-errno, err, errlen, "sealing against writes", RW_FILE_DAEMON);
    goto fail;
  }
  if (fcntl(seg->fd[RW_FILE_WORKER], F_ADD_SEALS, F_SEAL_SEAL) != 0) {
    rc = fail_errno(-errno, err, errlen, "sealing", RW_FILE_WORKER);
    goto fail;
  }
  /*
   * Populated now and never touched again: its page table keeps the record
   * of every hole. Unlocked (mlockall would lock it too): its pages are
   * locked through the first mapping, and a second lock would only count
   * twice against RLIMIT_MEMLOCK. Without it (that limit refused the
   * mapping) the page check sees only holes that are still open.
   */
  seg->watch = mmap(NULL, seg->size[RW_FILE_WORKER], PROT_READ, MAP_SHARED | MAP_POPULATE,
                    seg->fd[RW_FILE_WORKER], 0);
  if (seg->watch == MAP_FAILED)
    seg->watch = NULL;
  else
    (void)munlock(seg->watch, seg->size[RW_FILE_WORKER]);
  /* Publishes the initialised segment to whoever maps it after us. */
  atomic_thread_fence(memory_order_release);
  return 0;

fail:
  for (int f = 0; f < RW_FILE_COUNT; f++)
    if (seg->base[f] == NULL && seg->fd[f] >= 0)
      close(seg->fd[f]);
  shm_segment_release(seg);
  return rc;
}

/* Worker side: one received file's seals and size. */
static int check_file(int fd, int f, uint64_t *size, char *err, size_t errlen) {
  struct stat st;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0)
    return fail_errno(-errno, err, errlen, "reading the seals of (is it a memfd?)", f);
  if ((seals & F_SEAL_SHRINK) == 0) {
    if (err)
      snprintf(err, errlen, "the %s file is not sealed against shrinking; refusing to map it",
               file_names[f]);
    return -EPERM;
  }
  if (fstat(fd, &st) != 0)
    return fail_errno(-errno, err, errlen, "fstat on", f);
  if (st.st_size <= 0) {
    if (err)
      snprintf(err, errlen, "the segment's %s file is empty", file_names[f]);
    return -EINVAL;
  }
  *size = (uint64_t)st.st_size;
  return 0;
}

int shm_segment_map(int daemon_fd, int worker_fd, struct shm_segment *seg, char *err,
                    size_t errlen) {
  const int fds[RW_FILE_COUNT] = {daemon_fd, worker_fd};
  /* Read-only: the daemon file is the daemon's to write; it is sealed against us anyway. */
  const int prot[RW_FILE_COUNT] = {PROT_READ, PROT_READ | PROT_WRITE};
  uint64_t sizes[RW_FILE_COUNT];
  int rc;

  segment_reset(seg);
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    rc = check_file(fds[f], f, &sizes[f], err, errlen);
    if (rc != 0)
      return rc;
  }
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    void *base = mmap(NULL, (size_t)sizes[f], prot[f], MAP_SHARED | MAP_POPULATE, fds[f], 0);
    if (base == MAP_FAILED) {
      rc = fail_errno(-errno, err, errlen, "mapping", f);
      goto fail;
    }
    seg->base[f] = base;
    seg->size[f] = (size_t)sizes[f];
  }
  rc = proto_segment_validate(seg->base[RW_FILE_DAEMON], sizes, &seg->layout, err, errlen);
  if (rc != 0)
    goto fail;
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    seg->fd[f] = fds[f];
    (void)mlock(seg->base[f], seg->size[f]);
  }
  bind_regions(seg);
  return 0;

fail:
  for (int f = 0; f < RW_FILE_COUNT; f++)
    if (seg->base[f] != NULL)
      munmap(seg->base[f], seg->size[f]);
  segment_reset(seg);
  return rc;
}

int shm_segment_check(const struct shm_segment *seg, char *err, size_t errlen) {
  struct rw_segment_header now;
  const uint64_t sizes[RW_FILE_COUNT] = {seg->size[RW_FILE_DAEMON], seg->size[RW_FILE_WORKER]};
  int rc = proto_segment_validate(seg->base[RW_FILE_DAEMON], sizes, &now, err, errlen);
  if (rc != 0)
    return rc;
  if (memcmp(&now, &seg->layout, sizeof(now)) != 0) {
    if (err)
      snprintf(err, errlen, "segment header was changed after creation");
    return -EPROTO;
  }
  return 0;
}

/* Whether the kernel may swap pages out (a line beyond the header in /proc/swaps). */
static bool swap_configured(void) {
  char line[256];
  int lines = 0;
  FILE *f = fopen("/proc/swaps", "re");
  if (f == NULL)
    return true; /* cannot tell: assume it may */
  while (lines < 2 && fgets(line, sizeof(line), f) != NULL)
    lines++;
  fclose(f);
  return lines > 1;
}

/* /proc/self/pagemap, opened before the process became non-dumpable; -1 when it could not be. */
static int pagemap_fd = -1;

/*
 * Whether khugepaged may collapse shared-memory pages into huge pages
 * (shmem_enabled always, within_size or force): a collapse unmaps the small
 * pages from every mapping, the watch mapping too, and would read as holes.
 */
static bool shmem_may_collapse(void) {
  char line[256];
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
  if (f == NULL)
    return false; /* no transparent huge pages */
  bool got = fgets(line, sizeof(line), f) != NULL;
  fclose(f);
  return got && (strstr(line, "[always]") != NULL || strstr(line, "[within_size]") != NULL ||
                 strstr(line, "[force]") != NULL);
}

int shm_segment_watch_open(void) {
  if (pagemap_fd >= 0)
    return 0;
  if (shmem_may_collapse())
    return -EOPNOTSUPP;
  pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  return pagemap_fd >= 0 ? 0 : -errno;
}

/* pagemap(5): bit 63 "present", bit 62 "swapped" (also a page being migrated). */
#define PAGEMAP_PRESENT (UINT64_C(1) << 63)
#define PAGEMAP_SWAPPED (UINT64_C(1) << 62)

/*
 * Finds the first page of a mapping that its page table no longer maps
 * (present nor swapped: a hole took it): 1 (and *page), 0 when none, -errno.
 */
static int find_punched_page(const void *base, size_t size, size_t *page_out) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint64_t entries[512];
  size_t pages = (size + page - 1) / page, first = (uintptr_t)base / page;
  for (size_t at = 0; at < pages; at += 512) {
    size_t n = pages - at < 512 ? pages - at : 512;
    ssize_t got =
        pread(pagemap_fd, entries, n * sizeof(uint64_t), (off_t)((first + at) * sizeof(uint64_t)));
    if (got != (ssize_t)(n * sizeof(uint64_t)))
      return got < 0 ? -errno : -EIO;
    for (size_t i = 0; i < n; i++) {
      if ((entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) == 0) {
        *page_out = at + i;
        return 1;
      }
    }
  }
  return 0;
}

/* Finds the first page of a mapping that is not resident: 1 (and *page), 0 when all are, -errno. */
static int find_missing_page(void *base, size_t size, size_t *page_out) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char vec[1024];
  size_t pages = (size + page - 1) / page;
  for (size_t at = 0; at < pages; at += sizeof(vec)) {
    size_t n = pages - at < sizeof(vec) ? pages - at : sizeof(vec);
    if (mincore((unsigned char *)base + at * page, n * page, vec) != 0)
      return -errno;
    for (size_t i = 0; i < n; i++) {
      if ((vec[i] & 1) == 0) {
        *page_out = at + i;
        return 1;
      }
    }
  }
  return 0;
}

int shm_segment_check_pages(const struct shm_segment *seg, char *err, size_t errlen) {
  const size_t size = seg->size[RW_FILE_WORKER];
  bool by_map = pagemap_fd >= 0 && seg->watch != NULL;
  size_t page = 0;
  int rc;
  if (seg->base[RW_FILE_WORKER] == NULL || !seg->pinned)
    return 0;
  if (by_map)
    rc = find_punched_page(seg->watch, size, &page);
  else
    rc =
        find_missing_page(seg->watch != NULL ? seg->watch : seg->base[RW_FILE_WORKER], size, &page);
  if (rc < 0)
    return fail_errno(rc, err, errlen, by_map ? "reading the page map of" : "mincore on",
                      RW_FILE_WORKER);
  if (rc > 0) {
    if (err)
      snprintf(err, errlen, "the worker punched a hole in its shared memory (page %zu of its file)",
               page);
    return -EFAULT;
  }
  return 0;
}

void shm_segment_release(struct shm_segment *seg) {
  if (seg->watch != NULL)
    munmap(seg->watch, seg->size[RW_FILE_WORKER]);
  /* A file is owned exactly while it is mapped; a zeroed segment owns nothing (not fd 0). */
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    if (seg->base[f] != NULL) {
      munmap(seg->base[f], seg->size[f]);
      if (seg->fd[f] >= 0)
        close(seg->fd[f]);
    }
  }
  segment_reset(seg);
}
