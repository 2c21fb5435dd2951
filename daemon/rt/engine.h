/*
 * The RT engine: what runwayd's audio callback does, independent of the
 * audio server. Per cycle and slot it stamps MIDI and commands into the event
 * ring, writes input into the slot's ring, wakes a sleeping worker when due,
 * reads the write-ahead output, fades over gaps, replaces non-finite samples
 * and counts what happened.
 *
 * Threads: engine_process() runs on the RT thread and is RT safe (no
 * allocation, locks, I/O, logging or waiting; one FUTEX_WAKE at most per slot).
 * Everything else runs on the control thread. The RT thread's view of the
 * slots is an immutable struct engine_state handed over through the state
 * ping-pong (shm/handover.h); engine slots are reference counted by the
 * control thread only, so nothing is freed while the RT thread may use it.
 */
#ifndef RUNWAY_DAEMON_ENGINE_H
#define RUNWAY_DAEMON_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <runway/segment.h>

#include "handover.h"
#include "queue.h"
#include "segment.h"
#include "spsc.h"
#include "timeline.h"

#define ENGINE_MAX_SLOTS 256

/* Command records, control thread -> RT thread, one queue per engine slot. */
enum engine_cmd_type {
  ENGINE_CMD_PARAM = 1, /* forwarded into the event ring at the cycle's timeline time */
};

struct engine_cmd {
  uint32_t type;
  uint32_t param_id;
  float value;
  uint32_t reserved;
};

/* A MIDI event as the backend delivers it. */
struct engine_midi {
  uint32_t frame; /* offset in the cycle */
  uint32_t size;
  const uint8_t *data;
};

/*
 * How the engine reaches the audio server's buffers in a cycle. Port handles
 * are opaque; all callbacks must be RT safe.
 */
struct engine_io {
  float *(*audio_buffer)(void *port, uint32_t nframes);
  void *(*midi_buffer)(void *port, uint32_t nframes);
  uint32_t (*midi_count)(void *midi_buffer);
  int (*midi_get)(void *midi_buffer, uint32_t index, struct engine_midi *ev);
};

/*
 * The lead histogram's buckets: cycles whose output was short (an underrun),
 * then cycles by the worker's lead left after the cycle in eighths of L
 * ([0, L/8), [L/8, 2L/8), ... [7L/8, L] and beyond).
 */
#define ENGINE_LEAD_BUCKETS 9

/*
 * Counters of one engine slot: written by the RT thread only, read anywhere.
 * Until the generation's worker has attached (published its pid) the slot
 * plays silence because it has no worker yet, not because a worker was late:
 * those frames count in no_worker_frames, and underruns and the lead only
 * from the first cycle that sees the worker.
 */
struct engine_slot_counters {
  _Atomic uint64_t cycles;
  _Atomic uint64_t underruns;        /* cycles with at least one missing frame */
  _Atomic uint64_t underrun_frames;  /* frames played as silence for want of output */
  _Atomic uint64_t no_worker_frames; /* frames played before the worker attached */
  _Atomic uint64_t overruns;         /* cycles in which the worker was losing input */
  _Atomic uint64_t nonfinite_samples;
  _Atomic uint64_t events_dropped; /* event ring full, or MIDI longer than 3 bytes */
  _Atomic uint64_t wakeups;
  _Atomic uint64_t faults; /* impossible positions read from the segment */
  /*
   * The worker's lead after each cycle: out_write - (t + n), negative when
   * the cycle was short by that much. headroom_min_frames is the smallest
   * since the generation started (INT64_MAX: none yet); the histogram counts
   * cycles per bucket (see ENGINE_LEAD_BUCKETS) and only grows, so a reader
   * measures any window by subtracting two reads; lead_min_last is the
   * smallest in the last complete window of one second (INT64_MAX: none), and
   * lead_min_now the smallest in the window in progress.
   */
  _Atomic int64_t headroom_min_frames;
  _Atomic uint64_t lead_histogram[ENGINE_LEAD_BUCKETS];
  _Atomic int64_t lead_min_last;
  _Atomic int64_t lead_min_now;
  _Atomic uint64_t bypass_frames; /* frames played from bypass where the worker's were missing */
};

/*
 * A slot's own copy of its recent input, for --on-fault bypass
 * (daemon/rt/bypass.c). The RT thread writes every cycle's input into it
 * and, where a generation's worker output is missing, plays it exactly L
 * later: input channel k on output k, outputs beyond the inputs silent. It
 * belongs to the slot, not to a generation: every generation of the slot
 * shares it, so it holds the input from before a restart. It is runwayd's
 * private memory, which no worker can touch.
 */
struct engine_bypass {
  int refs;          /* control thread only */
  uint32_t n_ch;     /* channels kept: min(inputs, outputs) */
  uint32_t capacity; /* frames per channel, a power of two >= L + RW_MAX_PERIOD */
  uint32_t latency;
  float *ring; /* n_ch rings of capacity frames */

  /* RT thread only. */
  uint64_t pos;       /* input frames written, across generations */
  uint64_t cycle_pos; /* pos at the start of this cycle's input */
  /*
   * Input the graph skipped, [silent_start, silent_end): it reads as
   * silence, whatever the ring holds there, so a gap costs no clearing (a
   * ring per channel, up to 2^24 frames each). A gap that comes before the
   * reads passed the last one extends it, as the segment's input gap does.
   */
  uint64_t silent_start, silent_end;
};

/* A generation taking over from another in one table entry (daemon/rt/takeover.c). */
enum engine_takeover_phase {
  ENGINE_TAKEOVER_WARMING = 0, /* fed the same input, not heard, until it is as far ahead */
  ENGINE_TAKEOVER_FADING = 1,  /* crossfading from the old generation's output to its own */
  ENGINE_TAKEOVER_DONE = 2,    /* it alone plays; the old generation is no longer fed */
};

/*
 * One generation of a slot: a segment and the RT-side state over it. A worker
 * restart makes a new generation (a fresh segment whose timeline starts at 0
 * in the cycle the RT thread adopts it), so a dead or hostile worker's
 * leftovers never reach the new one.
 */
struct engine_slot {
  /* Set by the control thread before the slot is published; then immutable. */
  int refs; /* control thread only */
  void *owner;
  const void *key; /* what a one-node-per-slot backend finds it by (its ports) */
  void (*release)(struct engine_slot *slot); /* runs when refs drops to 0 */
  struct shm_segment segment;
  uint32_t n_in;
  uint32_t n_out;
  void *in_ports[RW_MAX_CHANNELS];
  void *out_ports[RW_MAX_CHANNELS];
  void *midi_port; /* NULL when the slot takes no MIDI */

  /* RT thread only. */
  struct shm_tl_daemon tl;
  struct shm_spsc_producer events;
  uint32_t fade_in_left; /* frames of fade-in still to apply after a gap */
  uint32_t fade_out_pos; /* frames since the gap started (the fade-out tail) */
  bool in_gap;
  float tail[RW_MAX_CHANNELS]; /* last sample played per channel, the fade-out start */
  bool worker_seen;            /* the worker has attached: underruns count from now on */
  uint32_t clock_seq;          /* the clock reference's private sequence (shm_clock_publish) */
  uint32_t clock_due;          /* cycles until the clock reference is refreshed */
  uint32_t lead_window;        /* frames into the lead window in progress */
  /* The port buffers of the cycle, kept to the next, whose are almost always the same. */
  const float *in_buf[RW_MAX_CHANNELS];
  float *out_buf[RW_MAX_CHANNELS];
  /*
   * engine_process_slot (a node per slot), RT thread only: whether
   * next_frame, the graph frame the timeline is at, is known; and how many
   * of this cycle's first frames a late run already played.
   */
  bool clocked;
  uint32_t next_frame;
  uint32_t cycle_played;

  /*
   * Bypass (set before publishing, with a reference; NULL: gaps are
   * silence), and its state over this generation's output, RT thread only:
   * how far bypass is mixed in (0 the worker .. RW_FADE_FRAMES bypass), where
   * the worker's current run of output began (ENGINE_NO_RUN in a gap), and
   * frames since the gap began (the worker's tail fades over them).
   */
  struct engine_bypass *bypass;
  uint32_t bp_mix;
  uint64_t bp_run_start;
  uint32_t bp_gap_pos;

  /*
   * Taking over from another generation (engine_publish_with): set before
   * publishing. takeover_history input frames of the old generation are
   * copied in first (as many as it holds); takeover_crossfade is the
   * crossfade's length in frames (0: a cut at a cycle boundary); scratch is
   * n_out * RW_MAX_PERIOD floats for this generation's output while both play.
   */
  uint32_t takeover_history;
  uint32_t takeover_crossfade;
  float *scratch;
  /* RT thread only. */
  bool to_begun;
  uint32_t to_phase;
  uint32_t to_faded; /* crossfade frames done */

  /* Control thread -> RT thread. */
  struct shm_queue commands;

  /* Control thread only: the worker -> daemon message ring. */
  struct shm_spsc_consumer messages;

  /* RT thread -> control thread. */
  _Atomic int faulted;
  /* With bypass: the worker's output has run out and bypass plays alone (or it faulted). */
  _Atomic int drained;
  /* A takeover's progress (enum engine_takeover_phase), and where its crossfade began. */
  _Atomic uint32_t takeover_phase;
  _Atomic uint32_t takeover_frame; /* the graph's frame time (valid when takeover_clocked) */
  _Atomic int takeover_clocked;
  _Atomic uint64_t takeover_position;       /* this generation's timeline position there */
  _Atomic uint32_t takeover_history_frames; /* history frames it started with */
  struct engine_slot_counters counters;
};

#define ENGINE_NO_RUN UINT64_MAX

/*
 * The RT thread's immutable view of all slots: one entry per slot, its
 * playing generation and, while another takes over from it, that one.
 */
struct engine_state {
  uint32_t n_slots;
  struct engine_slot *slots[ENGINE_MAX_SLOTS];
  struct engine_slot *incoming[ENGINE_MAX_SLOTS]; /* NULL but during a takeover */
};

/*
 * The histogram of cycle times: bucket 0 holds cycles under 1024 ns, then
 * eight buckets per octave (each 1/8 of an octave wide, so a percentile read
 * from it is within 13 % of the truth) up to the last, which holds
 * everything from 67 ms on. engine_cycle_bucket_floor() gives a
 * bucket's lower edge.
 */
#define ENGINE_CYCLE_BUCKETS 130

struct engine_stats {
  _Atomic uint64_t cycles;
  _Atomic uint64_t cycle_ns_max;
  _Atomic uint64_t cycle_ns_sum;
  _Atomic uint64_t cycle_hist[ENGINE_CYCLE_BUCKETS];
  _Atomic uint64_t cycle_ns_max_recent; /* the largest in the last complete second; 0: none yet */
  _Atomic uint64_t xruns;               /* counted by the backend, and by engine_process_slot */
  _Atomic uint64_t skipped_frames;      /* graph frames that passed without a cycle of ours */
};

/* The bucket of a cycle time in ns. RT safe. */
uint32_t engine_cycle_bucket(uint64_t ns);
/* The lower edge of a cycle-time bucket in ns (the upper edge is the next one's). */
uint64_t engine_cycle_bucket_floor(uint32_t bucket);

/* Optional hooks around each cycle, for the RT-rules checker in the tests. */
struct engine_rt_hooks {
  void (*enter)(void);
  void (*leave)(void);
};

struct engine {
  struct shm_handover handover;
  struct engine_state *rt_state; /* RT thread only while the backend runs */
  struct engine_stats stats;
  struct engine_rt_hooks hooks;
  /* RT thread only: where the graph clock should be at the next cycle. */
  uint32_t next_frame_time;
  /* RT thread only: the graph cycle engine_process_slot is in, and its time so far. */
  bool node_cycle_open;
  uint32_t node_cycle_frame;
  uint64_t node_cycle_ticks;
  uint32_t node_cycle_skipped; /* graph frames the cycle's nodes found skipped, counted once */
  bool node_cycle_xrun;
  /* RT thread only: the graph frame time of the cycle in progress, when the backend gave one. */
  bool cycle_clocked;
  uint32_t cycle_frame;
  /* RT thread only: the window of cycle_ns_max_recent. */
  uint64_t window_start;
  uint64_t window_max;
  _Atomic int clock_valid;  /* cleared by the control thread between connections */
  _Atomic int rt_thread_id; /* the RT thread's kernel id (0: unknown), for its CPU time */
  /*
   * The id of the thread that runs the cycles, taken in its first cycle (0
   * before, and again after engine_reset_clock), on every backend: where
   * the control thread reads how many page faults it took (stats), so the
   * RT thread never makes a system call to count them.
   */
  _Atomic int rt_tid;

  /* Control thread only. */
  uint32_t in_flight; /* tables offered and not yet handed back */
};

/* Control thread. Looks up the RT-rules checker hooks if the process has them. */
void engine_init(struct engine *e);

/*
 * Creates a generation over a new segment built from params. The slot starts
 * with one reference (the caller's). Returns 0 or -errno with a message.
 */
int engine_slot_create(const struct proto_segment_params *params, const char *name,
                       struct engine_slot **out, char *err, size_t errlen);
void engine_slot_ref(struct engine_slot *slot);
void engine_slot_unref(struct engine_slot *slot);

/*
 * Makes a generation that has not been published yet one that takes over
 * from another (see engine_slot.takeover_*): history frames of input to
 * start on, a crossfade of crossfade frames. 0 or -ENOMEM. Control thread.
 */
int engine_slot_prepare_takeover(struct engine_slot *slot, uint32_t history, uint32_t crossfade);

/*
 * Bypass for a slot of n_ch kept channels and latency L (daemon/rt/bypass.c).
 * Starts with one reference. 0, -EINVAL or -ENOMEM. Control thread.
 */
int engine_bypass_create(uint32_t n_ch, uint32_t latency, struct engine_bypass **out);
void engine_bypass_ref(struct engine_bypass *bp);
void engine_bypass_unref(struct engine_bypass *bp);
/* Gives a generation, before it is published, the slot's bypass (a reference of its own). */
void engine_slot_set_bypass(struct engine_slot *slot, struct engine_bypass *bp);

/*
 * Publishes a new slot table (copied; slots gain a reference each). The RT
 * thread adopts it at its next cycle; tables it hands back are reclaimed by
 * engine_reclaim(). Returns 0 or -ENOMEM.
 */
int engine_publish(struct engine *e, struct engine_slot *const *slots, uint32_t n_slots);

/*
 * The same, with incoming[i] (may be NULL, or incoming itself NULL) taking
 * over from slots[i]: fed the same input from the cycle the RT thread adopts
 * the table, after the history it starts with, it warms up unheard; once its
 * worker is at least as far ahead as the old one's (and has caught up with
 * L, or the old one has less), the RT thread crossfades from the old output
 * to the new over takeover_crossfade frames (linear: the two are usually the
 * same sound, which a linear crossfade keeps exact), then plays it alone.
 * incoming[i]->takeover_phase tells how far it got. Both share the entry's
 * ports. Returns 0 or -ENOMEM.
 */
int engine_publish_with(struct engine *e, struct engine_slot *const *slots,
                        struct engine_slot *const *incoming, uint32_t n_slots);

/*
 * Frees tables the RT thread handed back. Returns how many are still moving
 * (offered and not adopted, or replaced and not handed back yet); 0 when the
 * RT thread runs on the latest table and nothing waits to be freed.
 */
uint32_t engine_reclaim(struct engine *e);

/*
 * Control thread, only while no RT thread runs (before the backend activates
 * or after it closed): makes the latest table current at once and frees every
 * other table.
 */
void engine_settle(struct engine *e);

/* Frees everything. The backend must be closed. */
void engine_destroy(struct engine *e);

/* Queues a command for the slot's next cycle. 0 or -ENOSPC. Control thread. */
int engine_slot_command(struct engine_slot *slot, const struct engine_cmd *cmd);

/* The RT callback: one cycle of nframes for every slot of the table. RT safe. */
void engine_process(struct engine *e, const struct engine_io *io, uint32_t nframes);

/*
 * The same, given the graph's frame time at the start of the cycle: when the
 * server let frames go by without calling us (it may skip a late client
 * after an xrun), every slot's timeline first advances by them, so each
 * slot's output at graph frame F stays the answer to its input at F - L.
 * Gaps are counted in stats.skipped_frames. RT safe.
 */
void engine_process_at(struct engine *e, const struct engine_io *io, uint32_t nframes,
                       uint32_t frame_time);

/*
 * For backends that run one graph node per slot, on one RT thread: one
 * cycle of the slot whose key is key (engine_slot.key), at graph frame time
 * frame_time. The first call of a graph cycle (a new frame_time) adopts a
 * new table, follows the clock as engine_process_at does, and completes the
 * last cycle's statistics, so those stay once per graph cycle. *hint caches
 * where the slot was found (start with 0). A key not in the table plays
 * nothing. RT safe.
 */
void engine_process_slot(struct engine *e, const void *key, uint32_t *hint,
                         const struct engine_io *io, uint32_t nframes, uint32_t frame_time);

/*
 * Called by the backend on its RT thread before the first cycle (JACK's
 * thread-init callback): notes the thread's id, whose CPU time
 * (/proc/self/task/ID/schedstat) the stats report. Not RT safe (a system call).
 */
void engine_rt_thread_started(struct engine *e);

/*
 * The next engine_process_at starts a new clock (a new server connection),
 * and the next cycle records its thread's id afresh. Control thread.
 */
void engine_reset_clock(struct engine *e);

#endif
