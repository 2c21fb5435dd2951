#include "segment_layout.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int code, char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static int is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint32_t proto_segment_capacity(uint32_t latency, uint32_t max_period) {
  uint64_t need = 2 * ((uint64_t)latency + max_period);
  uint64_t cap = 256;
  while (cap < need)
    cap <<= 1;
  return cap > UINT32_MAX ? 0 : (uint32_t)cap;
}

int proto_segment_layout(const struct proto_segment_params *p, struct rw_segment_header *hdr,
                         char *err, size_t errlen) {
  if (p->sample_rate < RW_MIN_SAMPLE_RATE || p->sample_rate > RW_MAX_SAMPLE_RATE)
    return fail(-EINVAL, err, errlen, "sample rate %u is outside %u..%u", p->sample_rate,
                RW_MIN_SAMPLE_RATE, RW_MAX_SAMPLE_RATE);
  if (p->n_inputs > RW_MAX_CHANNELS || p->n_outputs > RW_MAX_CHANNELS)
    return fail(-EINVAL, err, errlen, "channel counts %u in / %u out exceed the limit of %u",
                p->n_inputs, p->n_outputs, RW_MAX_CHANNELS);
  if ((p->flags & ~RW_SEGMENT_F_ALL) != 0)
    return fail(-EINVAL, err, errlen, "unknown segment flags 0x%x", p->flags);
  if (p->max_period < 1 || p->max_period > RW_MAX_PERIOD)
    return fail(-EINVAL, err, errlen, "period %u is outside 1..%u", p->max_period, RW_MAX_PERIOD);
  if (p->latency < 1 || (uint64_t)p->latency + p->max_period > RW_MAX_CAPACITY / 2)
    return fail(-EINVAL, err, errlen, "latency %u frames is outside 1..%u", p->latency,
                RW_MAX_CAPACITY / 2 - p->max_period);

  uint32_t ev_cap = p->event_capacity ? p->event_capacity : PROTO_EVENT_CAPACITY_DEFAULT;
  uint32_t msg_cap = p->message_capacity ? p->message_capacity : PROTO_MESSAGE_CAPACITY_DEFAULT;
  if (!is_pow2(ev_cap) || ev_cap > RW_MAX_EVENT_CAPACITY || !is_pow2(msg_cap) ||
      msg_cap > RW_MAX_EVENT_CAPACITY)
    return fail(-EINVAL, err, errlen,
                "event capacity %u and message capacity %u must be powers of two up to %u", ev_cap,
                msg_cap, RW_MAX_EVENT_CAPACITY);

  /*
   * One period by default: the worker handles each cycle's input as soon as
   * it arrives (waking itself on a timer, shm/wake.h), which keeps its lead
   * at about L, so a pause of up to L minus one period costs no audio.
   */
  uint32_t wake = p->wake_frames ? p->wake_frames : p->max_period;
  if (wake > p->latency)
    wake = p->latency;

  uint32_t state_cap = p->state_capacity ? p->state_capacity : RW_STATE_CAPACITY_DEFAULT;
  if (state_cap > RW_MAX_STATE_CAPACITY)
    return fail(-EINVAL, err, errlen, "state capacity %u exceeds %u bytes", state_cap,
                RW_MAX_STATE_CAPACITY);

  uint32_t cap = proto_segment_capacity(p->latency, p->max_period);
  if (p->capacity != 0) {
    if (!is_pow2(p->capacity) || p->capacity < cap || p->capacity > RW_MAX_CAPACITY)
      return fail(-EINVAL, err, errlen,
                  "ring capacity %u is not a power of two between %u and %u frames", p->capacity,
                  cap, RW_MAX_CAPACITY);
    cap = p->capacity;
  }

  memset(hdr, 0, sizeof(*hdr));
  hdr->magic = RW_SEGMENT_MAGIC;
  hdr->abi_version = RW_SEGMENT_ABI_VERSION;
  hdr->header_size = sizeof(*hdr);
  hdr->sample_rate = p->sample_rate;
  hdr->n_inputs = p->n_inputs;
  hdr->n_outputs = p->n_outputs;
  hdr->flags = p->flags;
  hdr->capacity = cap;
  hdr->latency = p->latency;
  hdr->max_period = p->max_period;
  hdr->channel_stride = cap;
  hdr->event_capacity = ev_cap;
  hdr->message_capacity = msg_cap;
  hdr->record_size = sizeof(struct rw_record);
  hdr->wake_frames_default = wake;
  hdr->state_capacity = state_cap;
  hdr->generation = p->generation;

  uint64_t sizes[RW_REGION_COUNT] = {
      [RW_REGION_DAEMON_CONTROL] = sizeof(struct rw_daemon_control),
      [RW_REGION_AUDIO_IN] = (uint64_t)p->n_inputs * cap * sizeof(float),
      [RW_REGION_EVENTS] = (uint64_t)ev_cap * sizeof(struct rw_record),
      [RW_REGION_STATE_REQUEST] = sizeof(struct rw_state_request) + (uint64_t)state_cap,
      [RW_REGION_WORKER_CONTROL] = sizeof(struct rw_worker_control),
      [RW_REGION_AUDIO_OUT] = (uint64_t)p->n_outputs * cap * sizeof(float),
      [RW_REGION_MESSAGES] = (uint64_t)msg_cap * sizeof(struct rw_record),
      [RW_REGION_INFO] = sizeof(struct rw_info),
      [RW_REGION_STATE_REPLY] = sizeof(struct rw_state_reply) + (uint64_t)state_cap,
  };
  /* The header opens the daemon file; the worker file starts with its control block. */
  uint64_t end[RW_FILE_COUNT] = {align_up(sizeof(*hdr), RW_PAGE_ALIGN), 0};
  for (int i = 0; i < RW_REGION_COUNT; i++) {
    uint32_t file = proto_segment_region_file((enum rw_region_id)i);
    hdr->regions[i].file = file;
    hdr->regions[i].offset = end[file];
    hdr->regions[i].size = sizes[i];
    end[file] = align_up(end[file] + sizes[i], RW_PAGE_ALIGN);
  }
  for (int f = 0; f < RW_FILE_COUNT; f++)
    hdr->file_size[f] = end[f];
  return 0;
}

int proto_segment_validate(const void *base, const uint64_t file_size[RW_FILE_COUNT],
                           struct rw_segment_header *out, char *err, size_t errlen) {
  struct rw_segment_header snap;
  struct rw_segment_header expect;

  if (base == NULL || file_size[RW_FILE_DAEMON] < sizeof(snap))
    return fail(-EINVAL, err, errlen,
                "segment's daemon file of %llu bytes is smaller than its header (%zu)",
                (unsigned long long)file_size[RW_FILE_DAEMON], sizeof(snap));

  /* One copy; every check below is made on it, never on the shared bytes. */
  memcpy(&snap, base, sizeof(snap));

  if (snap.magic != RW_SEGMENT_MAGIC)
    return fail(-EPROTO, err, errlen, "not a runway segment (bad magic 0x%016llx)",
                (unsigned long long)snap.magic);
  if (snap.abi_version != RW_SEGMENT_ABI_VERSION)
    return fail(-EPROTO, err, errlen, "segment ABI version %u, this build speaks %u",
                snap.abi_version, RW_SEGMENT_ABI_VERSION);
  if (snap.header_size != sizeof(snap))
    return fail(-EPROTO, err, errlen, "segment header size %u, expected %zu", snap.header_size,
                sizeof(snap));
  for (int f = 0; f < RW_FILE_COUNT; f++)
    if (snap.file_size[f] != file_size[f])
      return fail(-EPROTO, err, errlen, "header says the %s file has %llu bytes but it has %llu",
                  f == RW_FILE_DAEMON ? "daemon" : "worker", (unsigned long long)snap.file_size[f],
                  (unsigned long long)file_size[f]);
  if (snap.record_size != sizeof(struct rw_record))
    return fail(-EPROTO, err, errlen, "event record size %u, expected %zu", snap.record_size,
                sizeof(struct rw_record));

  struct proto_segment_params p = {
      .sample_rate = snap.sample_rate,
      .n_inputs = snap.n_inputs,
      .n_outputs = snap.n_outputs,
      .flags = snap.flags,
      .latency = snap.latency,
      .max_period = snap.max_period,
      .event_capacity = snap.event_capacity,
      .message_capacity = snap.message_capacity,
      .wake_frames = snap.wake_frames_default,
      .state_capacity = snap.state_capacity,
      .capacity = snap.capacity,
      .generation = snap.generation,
  };
  char why[160];
  if (snap.event_capacity == 0 || snap.message_capacity == 0 || snap.wake_frames_default == 0 ||
      snap.state_capacity == 0)
    return fail(-EPROTO, err, errlen, "segment header has a zero ring capacity or wake size");
  if (proto_segment_layout(&p, &expect, why, sizeof(why)) != 0)
    return fail(-EPROTO, err, errlen, "segment header is invalid: %s", why);

  /*
   * The layout is a pure function of the parameters, so a header whose
   * geometry differs in any byte from the recomputed one has been tampered
   * with; this also proves every region lies inside its file and that no
   * two regions of a file overlap.
   */
  if (expect.capacity != snap.capacity || expect.channel_stride != snap.channel_stride)
    return fail(-EPROTO, err, errlen, "ring capacity %u / stride %u do not match latency %u",
                snap.capacity, snap.channel_stride, snap.latency);
  for (int i = 0; i < RW_REGION_COUNT; i++) {
    const struct rw_region *got = &snap.regions[i], *want = &expect.regions[i];
    if (got->file != want->file || got->offset != want->offset || got->size != want->size)
      return fail(-EPROTO, err, errlen,
                  "region %d in file %u at %llu+%llu, expected file %u at %llu+%llu", i, got->file,
                  (unsigned long long)got->offset, (unsigned long long)got->size, want->file,
                  (unsigned long long)want->offset, (unsigned long long)want->size);
  }
  if (memcmp(&expect, &snap, sizeof(snap)) != 0)
    return fail(-EPROTO, err, errlen, "segment header has inconsistent or reserved fields");
  for (int f = 0; f < RW_FILE_COUNT; f++)
    if (expect.file_size[f] > file_size[f])
      return fail(-EPROTO, err, errlen, "segment regions extend past their file");

  if (out != NULL)
    *out = snap;
  return 0;
}
