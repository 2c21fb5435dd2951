/*
 * Slot segments: one sealed memfd per slot, holding the layout of
 * <runway/segment.h>. Not RT safe: create and map on the control thread (or in
 * the worker before it starts processing); the RT thread only touches the
 * pointers a mapped segment exposes.
 */
#ifndef RUNWAY_SHM_SEGMENT_H
#define RUNWAY_SHM_SEGMENT_H

#include <stddef.h>

#include <runway/segment.h>

#include "segment_layout.h"

struct shm_segment {
  int fd;
  void *base;
  size_t size;
  /*
   * Private snapshot of the validated header. Both sides use it for all
   * geometry; the shared header is only ever re-read to detect tampering.
   */
  struct rw_segment_header layout;
  struct rw_segment_control *control;
  float *audio_in;  /* n_inputs channels, channel_stride floats apart */
  float *audio_out; /* n_outputs channels */
  struct rw_record *events;
  struct rw_record *messages;
  struct rw_info *info;
  struct rw_state_box *state;
};

/*
 * Creates a segment for params: memfd (MFD_CLOEXEC | MFD_ALLOW_SEALING) named
 * "runway:<name>", sized, sealed against grow and shrink, mapped, its pages
 * touched so the RT thread never takes a first-touch fault, and initialised:
 * positions at 0 except out_write = L (positions [0, L) are silence).
 * Returns 0 or -errno with a message in err.
 */
int shm_segment_create(const struct proto_segment_params *params, const char *name,
                       struct shm_segment *seg, char *err, size_t errlen);

/*
 * Maps a segment received from the daemon (worker side). Checks that the fd is
 * sealed against shrinking (so the mapping cannot fault under us), takes the
 * size from fstat and validates the header. On success the segment owns fd.
 */
int shm_segment_map(int fd, struct shm_segment *seg, char *err, size_t errlen);

/*
 * Re-validates the shared header against the private snapshot. The daemon runs
 * this periodically; a mismatch means the worker scribbled over its segment.
 * Returns 0 or -EPROTO with a message.
 */
int shm_segment_check(const struct shm_segment *seg, char *err, size_t errlen);

/* Unmaps and closes. Safe on a zeroed or already released segment. */
void shm_segment_release(struct shm_segment *seg);

#endif
