/*
 * Segment layout: computing a slot segment's geometry from its parameters, and
 * validating a mapped segment that the other side may have scribbled over.
 * Not RT safe (formats error messages); called on attach and by the
 * supervisor, never from the audio callback.
 */
#ifndef RUNWAY_PROTO_SEGMENT_LAYOUT_H
#define RUNWAY_PROTO_SEGMENT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include <runway/segment.h>

struct proto_segment_params {
  uint32_t sample_rate;
  uint32_t n_inputs;
  uint32_t n_outputs;
  uint32_t flags;            /* RW_SEGMENT_F_* */
  uint32_t latency;          /* L in frames, >= 1 */
  uint32_t max_period;       /* largest graph period in frames */
  uint32_t event_capacity;   /* records; 0 picks the default */
  uint32_t message_capacity; /* records; 0 picks the default */
  uint32_t wake_frames;      /* 0 picks max_period (one period); at most L */
  uint32_t state_capacity;   /* bytes of the state mailbox; 0 picks the default */
  /*
   * Audio ring frames: a power of two of at least proto_segment_capacity(); 0
   * picks that. A generation that takes over from another is given room for
   * the input history it starts with.
   */
  uint32_t capacity;
  uint64_t generation;
};

#define PROTO_EVENT_CAPACITY_DEFAULT 1024u
#define PROTO_MESSAGE_CAPACITY_DEFAULT 256u

/* Smallest power of two >= 2 * (latency + max_period), and at least 256. */
uint32_t proto_segment_capacity(uint32_t latency, uint32_t max_period);

/*
 * Fills *hdr with the complete header (region table and both file sizes
 * included) for params.
 * Returns 0, or -EINVAL with a message in err when a parameter is out of range.
 */
int proto_segment_layout(const struct proto_segment_params *params, struct rw_segment_header *hdr,
                         char *err, size_t errlen);

/*
 * Checks a mapped segment whose files have file_size[] bytes (the sizes come
 * from fstat, never from the header); base is the daemon file's mapping,
 * which holds the header. The header is copied once into *out before any
 * check, so a peer changing it concurrently cannot make a checked value
 * differ from a used one; callers use *out from then on and never re-read
 * the shared header. Returns 0, or -EPROTO (-EINVAL for a daemon file too
 * small for a header) with a message.
 */
int proto_segment_validate(const void *base, const uint64_t file_size[RW_FILE_COUNT],
                           struct rw_segment_header *out, char *err, size_t errlen);

/* The file a region lives in: fixed by the ABI (see <runway/segment.h>). */
static inline enum rw_segment_file proto_segment_region_file(enum rw_region_id id) {
  return id < RW_REGION_WORKER_CONTROL ? RW_FILE_DAEMON : RW_FILE_WORKER;
}

/*
 * Pointer to region id of a segment whose header was validated, given each
 * file's mapping.
 */
static inline void *proto_segment_region(void *const base[RW_FILE_COUNT],
                                         const struct rw_segment_header *hdr,
                                         enum rw_region_id id) {
  return (unsigned char *)base[hdr->regions[id].file] + hdr->regions[id].offset;
}

#endif
