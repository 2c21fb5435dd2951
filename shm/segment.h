/*
 * Slot segments: two sealed memfds per slot, holding the layout of
 * <runway/segment.h>: the daemon file (what only the daemon writes, which a
 * worker can map only read-only) and the worker file (what the worker
 * writes). Not RT safe: create, map and check on the control thread (or in
 * the worker before it starts processing); the RT thread only touches the
 * pointers a mapped segment exposes.
 */
#ifndef RUNWAY_SHM_SEGMENT_H
#define RUNWAY_SHM_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <runway/segment.h>

#include "segment_layout.h"

/* Both control blocks: the daemon's positions and the worker's. */
struct shm_ctl {
  struct rw_daemon_control *d;
  struct rw_worker_control *w;
};

struct shm_segment {
  int fd[RW_FILE_COUNT];
  void *base[RW_FILE_COUNT];
  size_t size[RW_FILE_COUNT];
  /*
   * Private snapshot of the validated header. Both sides use it for all
   * geometry; the shared header is only ever re-read to detect tampering.
   */
  struct rw_segment_header layout;
  struct shm_ctl ctl;
  float *audio_in;  /* n_inputs channels, channel_stride floats apart */
  float *audio_out; /* n_outputs channels */
  struct rw_record *events;
  struct rw_record *messages;
  struct rw_info *info;
  struct rw_state_request *state_request;
  struct rw_state_reply *state_reply;

  /*
   * Daemon side, for shm_segment_check_pages: a second, read-only mapping of
   * the worker file that nothing ever touches after it was populated, so a
   * page missing from it was taken by a hole, even after the RT thread's
   * mapping faulted that page back in; and whether pages can only go
   * missing by a hole (the segment is locked, or the system has no swap).
   */
  void *watch;
  bool pinned;
};

/*
 * Creates a segment for params (daemon side): two memfds (MFD_CLOEXEC |
 * MFD_ALLOW_SEALING) named "runway:<name>:daemon" and "runway:<name>:worker",
 * sized, sealed against grow and shrink, mapped, their pages touched so the
 * RT thread never takes a first-touch fault, and initialised: positions at 0
 * except out_write = L (positions [0, L) are silence). The daemon file is
 * then sealed with F_SEAL_FUTURE_WRITE: this mapping stays writable, nobody
 * can map it writable again, write it or punch holes in it. Returns 0 or
 * -errno with a message in err.
 */
int shm_segment_create(const struct proto_segment_params *params, const char *name,
                       struct shm_segment *seg, char *err, size_t errlen);

/*
 * Maps a segment received from the daemon (worker side): the daemon file
 * read-only, the worker file read-write. Checks that both are sealed against
 * shrinking (so the mappings cannot fault under us), takes their sizes from
 * fstat and validates the header. On success the segment owns both fds; on
 * failure the caller still does.
 */
int shm_segment_map(int daemon_fd, int worker_fd, struct shm_segment *seg, char *err,
                    size_t errlen);

/*
 * Re-validates the shared header against the private snapshot. The daemon runs
 * this periodically; a mismatch means the header was scribbled over.
 * Returns 0 or -EPROTO with a message.
 */
int shm_segment_check(const struct shm_segment *seg, char *err, size_t errlen);

/*
 * Daemon side: whether the worker ever punched a hole in its file
 * (fallocate, MADV_REMOVE), which the RT thread's next copy would fill with
 * a page fault. A punch takes the page out of every mapping of the file:
 * the check reads, from /proc/self/pagemap, which pages of the untouched
 * watch mapping are gone, so a hole counts even after the RT thread faulted
 * its page back in. Without pagemap (shm_segment_watch_open was not called,
 * or failed) it falls back to mincore, which sees only the holes still open.
 * Only for pinned segments: elsewhere the kernel may reclaim pages too.
 * Returns 0, -EFAULT with a message naming the first hole, or another -errno
 * when the check itself failed.
 */
int shm_segment_check_pages(const struct shm_segment *seg, char *err, size_t errlen);

/*
 * Opens /proc/self/pagemap for shm_segment_check_pages, once per process.
 * Call it before the process makes itself non-dumpable (the file is then
 * closed to it unless it runs as root). Returns 0 or -errno; -EOPNOTSUPP
 * where shared-memory huge pages may be collapsed (which would look like
 * holes).
 */
int shm_segment_watch_open(void);

/* Unmaps and closes. Safe on a zeroed or already released segment. */
void shm_segment_release(struct shm_segment *seg);

#endif
