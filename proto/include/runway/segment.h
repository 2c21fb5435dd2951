/*
 * runway slot segment ABI.
 *
 * A slot's shared memory is two memfds, both sealed against resize, mapped by
 * the daemon and by the slot's worker. Each side writes only its own file:
 *
 * The daemon file holds what only the daemon writes. runwayd maps it
 * read-write and then seals it with F_SEAL_FUTURE_WRITE: its own mapping
 * stays writable, while a worker can map it only read-only and can neither
 * write it nor punch holes in it (fallocate and MADV_REMOVE are refused), so
 * no page of it can vanish under the daemon's RT thread.
 *
 *   header          struct rw_segment_header (written once; describes both files)
 *   daemon control  struct rw_daemon_control (the daemon's positions, wake word, clock, gap)
 *   audio_in        n_inputs planar float32 rings, daemon -> worker
 *   events          event_capacity struct rw_record records, daemon -> worker
 *   state request   struct rw_state_request and state_capacity bytes
 *
 * The worker file holds what the worker writes. A worker can punch holes in
 * it; the daemon looks for them every 100 ms and faults the slot.
 *
 *   worker control  struct rw_worker_control (the worker's positions, wake request, counters)
 *   audio_out       n_outputs planar float32 rings, worker -> daemon
 *   messages        message_capacity struct rw_record records, worker -> daemon
 *   info            struct rw_info (what the worker runs)
 *   state reply     struct rw_state_reply and state_capacity bytes
 *
 * Regions are page aligned, in this order within their file. All positions
 * are absolute 64-bit frame (or record) counters that only grow; a position p
 * lives at index p & (capacity - 1). Each side treats everything the other
 * side wrote as untrusted.
 *
 * Managed workers inherit the daemon file at fd 3 ($RUNWAY_SEGMENT_FD) and the
 * worker file at fd 4 ($RUNWAY_SEGMENT_WORKER_FD); attached workers receive
 * both, in this order, in one SCM_RIGHTS message with the answer to
 * worker.attach.
 */
#ifndef RUNWAY_SEGMENT_H
#define RUNWAY_SEGMENT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#define RW_SEGMENT_MAGIC UINT64_C(0x3147455359574e52) /* "RNWYSEG1" */
#define RW_SEGMENT_ABI_VERSION 3u

#define RW_CACHE_LINE 64u
#define RW_PAGE_ALIGN 4096u

/* Limits every reader enforces; a header outside them is refused. */
#define RW_MAX_CHANNELS 64u
#define RW_MIN_SAMPLE_RATE 1000u
#define RW_MAX_SAMPLE_RATE 768000u
#define RW_MAX_PERIOD 8192u
#define RW_MAX_CAPACITY (1u << 24)
#define RW_MAX_EVENT_CAPACITY (1u << 16)
#define RW_MAX_PARAMS 128u
#define RW_NAME_MAX 32u /* bytes of a parameter name, NUL included */
/* Bytes of a plugin name, NUL included: room for an LV2 plugin's URI (Debian's reach 79). */
#define RW_PLUGIN_NAME_MAX 256u
/* Largest plugin latency (struct rw_info.latency) a reader accepts, in frames. */
#define RW_MAX_PLUGIN_LATENCY (1u << 20)
#define RW_UNIT_MAX 16u
#define RW_STATE_CAPACITY_DEFAULT (256u * 1024u)
#define RW_MAX_STATE_CAPACITY (16u * 1024u * 1024u)

/*
 * Frames over which the edges of a gap in a slot's audio are faded: by the
 * daemon where output is missing, by the worker SDK after a discontinuity.
 */
#define RW_FADE_FRAMES 64u

/*
 * How long runwayd lets a worker it stops (slot removal, restart, daemon
 * shutdown) run between SIGTERM and SIGKILL. A worker it finds faulted or
 * stalled is killed at once.
 */
#define RW_STOP_GRACE_MS 1000u

#define RW_SEGMENT_F_MIDI 0x1u /* the slot has a MIDI input */
#define RW_SEGMENT_F_ALL RW_SEGMENT_F_MIDI

/* The two files of a segment. */
enum rw_segment_file { RW_FILE_DAEMON = 0, RW_FILE_WORKER = 1, RW_FILE_COUNT };

enum rw_region_id {
  /* In the daemon file. */
  RW_REGION_DAEMON_CONTROL = 0,
  RW_REGION_AUDIO_IN,
  RW_REGION_EVENTS,
  RW_REGION_STATE_REQUEST,
  /* In the worker file. */
  RW_REGION_WORKER_CONTROL,
  RW_REGION_AUDIO_OUT,
  RW_REGION_MESSAGES,
  RW_REGION_INFO,
  RW_REGION_STATE_REPLY,
  RW_REGION_COUNT
};

struct rw_region {
  uint32_t file; /* enum rw_segment_file */
  uint32_t reserved;
  uint64_t offset; /* from the start of that file */
  uint64_t size;
};

struct rw_segment_header {
  uint64_t magic;
  uint32_t abi_version;
  uint32_t header_size;              /* sizeof(struct rw_segment_header) */
  uint64_t file_size[RW_FILE_COUNT]; /* bytes in each memfd */
  uint32_t sample_rate;              /* frames per second */
  uint32_t n_inputs;                 /* audio channels daemon -> worker */
  uint32_t n_outputs;                /* audio channels worker -> daemon */
  uint32_t flags;                    /* RW_SEGMENT_F_* */
  uint32_t capacity;                 /* audio ring frames, power of two */
  uint32_t latency;                  /* L: fixed write-ahead in frames */
  uint32_t max_period;               /* largest graph period the ring is sized for */
  uint32_t channel_stride;           /* floats between two channels' ring starts */
  uint32_t event_capacity;           /* records in the event ring, power of two */
  uint32_t message_capacity;         /* records in the message ring, power of two */
  uint32_t record_size;              /* sizeof(struct rw_record) */
  uint32_t wake_frames_default;
  uint32_t state_capacity; /* bytes of plugin state each half of the mailbox holds */
  uint32_t reserved1;
  uint64_t generation; /* bumped by the daemon for every new segment of a slot */
  struct rw_region regions[RW_REGION_COUNT];
};

/* One counter alone on its cache line, so the two sides never share a line. */
struct rw_position {
  alignas(RW_CACHE_LINE) _Atomic uint64_t value;
};

/* Counters the worker SDK maintains; informational for the daemon. */
struct rw_worker_counters {
  _Atomic uint64_t skipped_frames;  /* input frames skipped to stay aligned */
  _Atomic uint64_t discontinuities; /* skips reported to the plugin */
  _Atomic uint64_t overwritten;     /* input chunks lost to overwrite */
  _Atomic uint64_t chunks;          /* chunks processed */
  _Atomic uint64_t events_dropped;  /* messages the worker could not send */
};

/*
 * The graph's clock, for workers that wake themselves on a timer instead of
 * being woken by the daemon (shm/wake.h): the daemon's cycle that started at
 * timeline position `pos` published its input at CLOCK_MONOTONIC time `ns`,
 * and cycles are `period` frames long. The daemon refreshes it every few
 * cycles as a seqlock (`seq` odd while it writes, 0 before the first write).
 * It only ever decides when a worker sleeps, so a worker checks it for sanity
 * and otherwise trusts it as far as timing goes.
 */
struct rw_clock_ref {
  _Atomic uint32_t seq;
  _Atomic uint32_t period;
  _Atomic uint64_t pos;
  _Atomic uint64_t ns;
};

/*
 * Input the daemon never wrote: when the graph played frames without a cycle
 * of the daemon's (the server may skip a late client after an xrun), the
 * daemon moves the timeline over them without touching the input ring, and
 * publishes them here as [start, end). The worker reads input positions in
 * that range as silence, whatever the ring holds there. A gap that comes
 * before the worker has read past the previous one extends it (start stays,
 * end moves), so the input between the two reads as silence too. The daemon
 * publishes a gap before the in_write that covers it, storing start and then
 * end (release); a reader loads end (acquire) and then start, so a start
 * newer than the end it read lies at or past that end: an empty range, never
 * one that covers input between two gaps. start == end: no gap.
 */
struct rw_input_gap {
  _Atomic uint64_t start;
  _Atomic uint64_t end;
};

/* What only the daemon writes; read-only to the worker. */
struct rw_daemon_control {
  struct rw_position in_write; /* input frames published */
  struct rw_position out_read; /* output frames played */
  struct rw_position ev_write; /* event records published */
  struct rw_position msg_read; /* message records consumed */

  /* Wake-up protocol (see shm/wake.h): the futex word the worker sleeps on. */
  alignas(RW_CACHE_LINE) _Atomic uint32_t wake_seq;

  alignas(RW_CACHE_LINE) struct rw_clock_ref clock; /* see struct rw_clock_ref */
  alignas(RW_CACHE_LINE) struct rw_input_gap gap;   /* see struct rw_input_gap */
};

/* What the worker writes (and `sleeping`, which the daemon also clears). */
struct rw_worker_control {
  struct rw_position in_read;   /* input frames consumed */
  struct rw_position out_write; /* output frames published */
  struct rw_position ev_read;   /* event records consumed */
  struct rw_position msg_write; /* message records published */

  /* Wake-up protocol (see shm/wake.h). */
  alignas(RW_CACHE_LINE) _Atomic uint32_t sleeping;    /* worker sets, daemon clears */
  alignas(RW_CACHE_LINE) _Atomic uint32_t wake_frames; /* worth waking for */
  _Atomic uint32_t worker_pid;                         /* its pid once attached */

  alignas(RW_CACHE_LINE) struct rw_worker_counters counters;
};

/* Event and message record kinds. */
enum rw_event_type {
  RW_EVENT_NONE = 0,
  RW_EVENT_MIDI = 1,      /* daemon -> worker: 1..3 MIDI bytes */
  RW_EVENT_PARAM = 2,     /* daemon -> worker: parameter change */
  RW_EVENT_PARAM_OUT = 3, /* worker -> daemon: parameter value report */
  RW_EVENT_METER = 4,     /* worker -> daemon: peak level of one channel (stats "meters") */
  RW_EVENT_TYPE_MAX = 63
};

/*
 * A fixed-size record. time is a timeline frame for daemon -> worker events
 * (the worker applies it at output position time + L) and the worker's output
 * position for worker -> daemon messages.
 */
struct rw_record {
  uint64_t time;
  uint16_t type; /* enum rw_event_type */
  uint16_t size; /* MIDI: number of valid bytes in midi[] */
  uint32_t reserved;
  union {
    uint8_t midi[16];
    struct {
      uint32_t id;
      float value;
    } param;
    struct {
      uint32_t channel;
      float peak;
    } meter;
    struct {
      uint64_t request;
      int32_t status;
    } ack;
    uint8_t bytes[16];
  } u;
};

/*
 * A parameter as the worker declares it. Strings are NUL-terminated within
 * their arrays (readers terminate them anyway).
 */
struct rw_param_desc {
  uint32_t id;
  float min;
  float max;
  float def;
  char name[RW_NAME_MAX];
  char unit[RW_UNIT_MAX];
};

/*
 * What the worker runs. The worker fills it in once after attaching, before
 * it publishes worker_pid (release); the daemon reads it after seeing
 * worker_pid (acquire) and validates everything.
 */
struct rw_info {
  uint32_t n_params;
  uint32_t flags; /* RW_INFO_F_* */
  /*
   * The plugin's own processing latency in frames (an LV2 plugin's latency
   * port), which the slot's ports report on top of L. Unlike the rest of the
   * block it may change at any time: the worker stores it atomically
   * (relaxed, it orders nothing else), the daemon re-reads it, and ignores a
   * value above RW_MAX_PLUGIN_LATENCY.
   */
  uint32_t latency;
  uint32_t reserved;
  char plugin[RW_PLUGIN_NAME_MAX];
  struct rw_param_desc params[RW_MAX_PARAMS];
};

#define RW_INFO_F_STATE 0x1u /* the plugin saves and loads state of its own */

/* Plugin-state mailbox operations and results. */
enum rw_state_op { RW_STATE_NONE = 0, RW_STATE_SAVE = 1, RW_STATE_LOAD = 2 };
enum rw_state_status {
  RW_STATE_OK = 0,
  RW_STATE_UNSUPPORTED = 1, /* the plugin has no state of its own */
  RW_STATE_TOO_LARGE = 2,   /* the state does not fit state_capacity */
  RW_STATE_FAILED = 3,      /* the plugin refused the state */
  RW_STATE_PENDING = 4      /* not answered yet */
};

/*
 * The mailbox, one request at a time, in two halves. The daemon writes op
 * (and, for a load, length and data) into its half, then bumps `request`
 * (release). The worker handles it between two blocks, never in the middle
 * of one, writes status (and, for a save, length and data) into its half,
 * then sets `done` = request (release). A request waiting when the worker
 * starts (a restart handing over the last saved state) is applied before its
 * first block.
 */
struct rw_state_request {
  _Atomic uint32_t request;
  uint32_t op;     /* enum rw_state_op */
  uint32_t length; /* bytes of data in use (a load) */
  uint32_t reserved;
  unsigned char data[]; /* state_capacity bytes */
};

struct rw_state_reply {
  _Atomic uint32_t done;
  int32_t status;  /* enum rw_state_status */
  uint32_t length; /* bytes of data in use (a save) */
  uint32_t reserved;
  unsigned char data[]; /* state_capacity bytes */
};

_Static_assert(sizeof(struct rw_record) == 32, "rw_record is part of the ABI");
_Static_assert(sizeof(struct rw_position) == RW_CACHE_LINE, "one position per line");
_Static_assert(sizeof(struct rw_segment_header) % 8 == 0, "header is 8-byte aligned");

#endif /* RUNWAY_SEGMENT_H */
