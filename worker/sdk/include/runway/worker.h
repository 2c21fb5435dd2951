/*
 * librunway-worker: write runway plugins in any language with a C FFI.
 *
 * A worker process computes a slot's audio a fixed latency L ahead of the
 * audio graph. The SDK hides how: the shared-memory rings, the sleeping and
 * waking, event timing, skips after stalls. The plugin author sees blocks of
 * input and output frames with the MIDI and parameter events that fall
 * inside them, each at its exact sample offset.
 *
 * Two ways to use it:
 *
 *   - Callback style (C, C++, Rust): fill a struct rw_plugin and call
 *     rw_worker_main(), which attaches, runs until the daemon or a signal ends
 *     it, and returns an exit status.
 *
 *   - Pull style (any FFI, including garbage-collected runtimes):
 *
 *       rw_worker *w;
 *       if (rw_worker_open(NULL, &w) != 0) ...
 *       rw_block b;
 *       while (rw_worker_next(w, &b, 100) >= 0) {   // >0: a block, 0: timeout
 *         ... read b.inputs, handle b.events, write every frame of b.outputs ...
 *         rw_worker_done(w, &b);
 *       }
 *       rw_worker_close(w);
 *
 * Timing: input frame k of a block is timeline position b.position + k and
 * its output plays L frames later. An event at offset k belongs to input
 * frame k, so its effect is heard at b.position + L + k, exactly where the
 * graph expects it. Events whose time already passed (after a skip, or a
 * worker restart) arrive at offset 0 of the next block rather than being
 * dropped, so a note-off is never lost. A block carries at most
 * RW_MAX_BLOCK_EVENTS events; when more fall inside it the block is made
 * shorter so that none is dropped.
 *
 * Pauses: by default the worker handles each graph cycle's input as soon as
 * the daemon publishes it (wake_frames = one period), waking on its own
 * timer just after the cycle, so its output stays about L ahead of the
 * graph. A pause between or inside blocks (a garbage collection, a page
 * fault, a slow chunk) of up to L minus one period is therefore inaudible.
 * A longer one costs exactly the audio the worker could not deliver: the
 * daemon plays silence from where the worker's output ends until its first
 * block that arrives in time, counts every frame of it (`runwayctl stats`:
 * underrun_frames), and the worker resumes with the input whose output is
 * needed next, reported as a discontinuity.
 *
 * Discontinuities: the first block, and every block after a skip, has
 * discontinuity = 1. The SDK fades the first RW_FADE_IN_FRAMES output frames
 * after a discontinuity in linearly, so a plugin that resumes with stale
 * state (an oscillator phase, a filter memory) cannot click; plugins reset
 * state that would otherwise sound wrong (a delay line full of old audio).
 *
 * Plugin state: runwayd saves and restores a slot's state (`runwayctl state
 * save/load`, and when it restarts a crashed worker) through a mailbox in the
 * segment. The SDK answers it between two blocks, never inside one: inside
 * rw_worker_next(), before the next block is planned, so a plugin never sees
 * its state change while it holds a block. A plugin either gives its own
 * handlers (rw_worker_set_state_handlers, or rw_plugin.save_state/load_state)
 * or gets the default: the current values of its declared parameters, in
 * the text format described at rw_worker_set_state_handlers. Every worker
 * answers; one with no parameters and no handlers saves a header-only document.
 *
 * ---- Using it through an FFI: the binary interface ---------------------------
 *
 * Layouts. Each struct below has fixed member offsets and a fixed size, stated
 * beside it for LP64 Linux (x86_64, aarch64, riscv64, ...) and checked at the
 * end of this header with _Static_assert. rw_worker_abi_offset() answers the
 * same questions from the library at run time, so a binding that mirrors a
 * struct (ctypes, a Rust #[repr(C)]) can check its mirror when it loads.
 *
 * Forward compatibility. A struct only ever grows at its end, and only in a
 * new RW_WORKER_API_VERSION. The version a worker passes in
 * rw_worker_options.api_version (NULL options or 0: version 1) pins the
 * layouts of everything it allocates: the library reads and writes exactly
 * the structs of that version, never more bytes, so a worker built against an
 * older header, or an FFI mirror of one, keeps working with every newer
 * library, and a larger struct is never written into its smaller one. Of the
 * structs the library allocates, rw_worker_info may grow at its end (read
 * only the members you know); the events array's stride, sizeof(rw_event),
 * never changes.
 *
 * Who allocates what:
 *   - the caller, read by the library: rw_worker_options and the
 *     rw_param_info array and strings it points to (all copied by
 *     rw_worker_open: free or reuse them once it returns), rw_state_handlers
 *     (copied), rw_plugin (read while rw_worker_main runs);
 *   - the caller, written by the library: rw_block (rw_worker_next),
 *     rw_worker_stats (rw_worker_get_stats);
 *   - the library: rw_worker, rw_worker_info (valid until rw_worker_close),
 *     and a block's channel pointer arrays, channel buffers and events array.
 *
 * Buffers. The channel pointer arrays (rw_block.inputs and .outputs), the
 * channel buffers they point to and the events array are allocated once by
 * rw_worker_open and keep their addresses until rw_worker_close, so a binding
 * may wrap them once (numpy arrays, Go slices) and reuse the views for every
 * block. Their contents belong to the block between rw_worker_next and
 * rw_worker_done: inputs and events are valid only then, and the outputs are
 * read by rw_worker_done. Events hold a union; rw_event_param_id(),
 * rw_event_param_value() and rw_event_midi_data() read it for an FFI that
 * sees only bytes there (cgo shows it as [8]byte).
 *
 * Threads. A rw_worker is used by one thread at a time: calls on one worker
 * must not overlap, but need not come from the thread that opened it. The
 * exceptions: rw_worker_request_stop may be called from any thread at any
 * time, and from a signal handler. The one per-thread value is
 * rw_worker_error(NULL), the reason the last rw_worker_open on the calling
 * thread failed: read it on that thread (a runtime that moves code between
 * threads, like Go's, locks the thread around the two calls). State handlers
 * run inside rw_worker_next, on its thread. The library starts no threads and
 * installs no signal handlers, except rw_worker_main (SIGTERM, SIGINT).
 * Nothing here runs on the daemon's real-time thread: a worker may allocate,
 * collect garbage and block as it likes; blocking longer than L costs audio,
 * never the daemon.
 *
 * Stopping. runwayd stops a worker it started (slot removal, restart, its own
 * shutdown) with SIGTERM and, if it still runs RW_WORKER_STOP_GRACE_MS later,
 * SIGKILL; a worker it finds faulted or stalled gets SIGKILL at once. Such a
 * worker also gets SIGTERM when runwayd dies (PR_SET_PDEATHSIG). On SIGTERM,
 * call rw_worker_request_stop: rw_worker_next then returns RW_ERR_CLOSED (at
 * once, or after the block in progress), and rw_worker_close frees
 * everything. Nothing needs saving at exit: the daemon already holds the
 * plugin's last state. A runtime whose handlers run late (Python runs them
 * between bytecodes, Go on another goroutine) has the whole grace for it.
 */
#ifndef RUNWAY_WORKER_H
#define RUNWAY_WORKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RW_BUILDING_SDK)
#define RW_API __attribute__((visibility("default")))
#else
#define RW_API
#endif

/* The layouts this header describes (see "Forward compatibility" above). */
#define RW_WORKER_API_VERSION 1

/* Most events one block carries (see "Timing" above). */
#define RW_MAX_BLOCK_EVENTS 512u
/* Length of the fade-in applied to the output after a discontinuity. */
#define RW_FADE_IN_FRAMES 64u
/* Time runwayd leaves a worker between SIGTERM and SIGKILL (see "Stopping"). */
#define RW_WORKER_STOP_GRACE_MS 1000u

/* Error codes: functions return 0 (or a count) on success, a negative value on failure. */
enum rw_status {
  RW_OK = 0,
  RW_ERR_INVALID = -1,  /* bad argument */
  RW_ERR_ATTACH = -2,   /* no segment to attach to, or the daemon refused */
  RW_ERR_PROTOCOL = -3, /* the segment is corrupt or speaks another ABI */
  RW_ERR_CLOSED = -4,   /* the daemon went away or asked the worker to stop */
  RW_ERR_NOMEM = -5,
  RW_ERR_SYSTEM = -6,     /* a system call failed; see rw_worker_error() */
  RW_ERR_UNSUPPORTED = -7 /* the plugin does not implement what was asked */
};

enum rw_event_kind {
  RW_EV_MIDI = 1, /* u.midi.data[0..size) holds 1 to 3 MIDI bytes */
  RW_EV_PARAM = 2 /* u.param: parameter id and its new (already clamped) value */
};

/* An event inside a block, at sample offset `offset` (0 <= offset < frames). 16 bytes. */
typedef struct rw_event {
  uint32_t offset; /* @0 */
  uint16_t kind;   /* @4  enum rw_event_kind */
  uint16_t size;   /* @6  MIDI byte count */
  union {
    struct {
      uint8_t data[4]; /* @8 */
    } midi;
    struct {
      uint32_t id; /* @8 */
      float value; /* @12 */
    } param;
  } u; /* @8 */
} rw_event;

/*
 * Parameter description a plugin declares. rw_worker_open refuses (with
 * RW_ERR_INVALID and a message saying which) a declaration the daemon could
 * not show faithfully; nothing is ever truncated. 40 bytes (4 of padding at
 * 4 and at 28); rw_worker_open reads an array of them with that stride.
 * `def` is a keyword in Python: bindings name it `default` and address it by
 * its offset, 24.
 */
typedef struct rw_param_info {
  uint32_t id;      /* @0   stable id, unique within the plugin */
  const char *name; /* @8   unique; 1 to 31 of [A-Za-z0-9_] (e.g. "gain_db") */
  float min;        /* @16  finite, min <= def <= max */
  float max;        /* @20 */
  float def;        /* @24  the default value */
  const char *unit; /* @32  "dB", "Hz", "ms", "" (or NULL); at most 15 bytes, no control
                             characters, double quotes or backslashes */
} rw_param_info;

/*
 * One block of work, filled by rw_worker_next into the caller's struct. 80
 * bytes (4 of padding at 12, 44 and 68). The pointers lead to buffers of the
 * SDK (see "Buffers" above).
 */
typedef struct rw_block {
  uint32_t frames;            /* @0 */
  uint32_t n_inputs;          /* @4 */
  uint32_t n_outputs;         /* @8 */
  const float *const *inputs; /* @16  n_inputs channels of frames samples */
  float *const *outputs;      /* @24  n_outputs channels; the plugin writes every frame */
  const rw_event *events;     /* @32  sorted by offset */
  uint32_t n_events;          /* @40 */
  uint64_t position;          /* @48  timeline position of the block's first input frame */
  uint32_t latency;           /* @56  L: the output frame k plays at timeline position + L + k */
  uint32_t sample_rate;       /* @60 */
  int discontinuity; /* @64  1 when input before this block was skipped, or it is the first */
  uint64_t skipped;  /* @72  input frames skipped just before this block */
} rw_block;

/*
 * What the worker is attached to. Owned by the library (rw_worker_get_info),
 * valid until rw_worker_close. 40 bytes today; it may grow at its end.
 */
typedef struct rw_worker_info {
  const char *slot;     /* @0   slot name ("" when unknown) */
  uint32_t sample_rate; /* @8 */
  uint32_t n_inputs;    /* @12 */
  uint32_t n_outputs;   /* @16 */
  int midi;             /* @20  the slot has a MIDI input */
  uint32_t latency;     /* @24  L in frames */
  uint32_t max_block;   /* @28  largest block rw_worker_next() returns */
  uint32_t period;      /* @32  the graph's period (frames per cycle) */
  uint32_t wake_frames; /* @36  input the worker lets arrive before it works (options) */
} rw_worker_info;

/* Counters of one rw_worker since it was opened (rw_worker_get_stats). 64 bytes; never grows. */
typedef struct rw_worker_stats {
  uint64_t blocks;          /* @0   blocks handed out by rw_worker_next */
  uint64_t frames;          /* @8   frames in those blocks */
  uint64_t skipped_frames;  /* @16  input frames skipped to stay aligned */
  uint64_t discontinuities; /* @24  blocks with discontinuity = 1 */
  uint64_t events;          /* @32  events delivered */
  uint64_t events_late;     /* @40  of those, delivered at offset 0 because their time had passed */
  uint64_t events_invalid;  /* @48  records dropped: unknown type, bad size, non-finite value */
  uint64_t messages_dropped; /* @56  send_param / send_meter calls that found the ring full */
} rw_worker_stats;

/*
 * The same counters, and those added since, one at a time (rw_worker_stat):
 * what an FFI can read without mirroring a struct.
 */
enum rw_stat {
  RW_STAT_BLOCKS = 0,
  RW_STAT_FRAMES = 1,
  RW_STAT_SKIPPED_FRAMES = 2,
  RW_STAT_DISCONTINUITIES = 3,
  RW_STAT_EVENTS = 4,
  RW_STAT_EVENTS_LATE = 5,
  RW_STAT_EVENTS_INVALID = 6,
  RW_STAT_MESSAGES_DROPPED = 7,
  RW_STAT_SLEEPS = 8,       /* times rw_worker_next slept for input */
  RW_STAT_TIMER_WAKES = 9,  /* of those, ended by the worker's own timer */
  RW_STAT_EARLY_WAKES = 10, /* timer wakes that found the input not there yet (looked again) */
  RW_STAT_COUNT = 11
};

/*
 * Options of rw_worker_open. 56 bytes (4 of padding at 4 and at 44). Copied:
 * the strings and parameters it points to need not outlive rw_worker_open.
 */
typedef struct rw_worker_options {
  int api_version; /* @0  RW_WORKER_API_VERSION (0 is taken as 1) */
  /*
   * Where to attach. When the process was started by runwayd the segment is
   * inherited (RUNWAY_SEGMENT_FD and RUNWAY_SEGMENT_WORKER_FD in the
   * environment) and these may be NULL.
   * Otherwise the SDK connects to `socket` (NULL: $RUNWAY_SOCKET, then the
   * default path) and asks for slot `slot` (NULL: $RUNWAY_SLOT), which must
   * have been added with --external.
   */
  const char *socket; /* @8 */
  const char *slot;   /* @16 */
  uint32_t max_block; /* @24  0: 256 frames */
  /*
   * @28. How much input the worker lets arrive before it works on it. 0: the
   * slot's default, one period: each cycle's input is handled as it
   * arrives, and a pause of up to L minus one period is inaudible. More
   * batches work: fewer wake-ups (less CPU), and as much less tolerance
   * (a pause of up to L - wake_frames). At most L.
   */
  uint32_t wake_frames;
  /*
   * Optional: the plugin's parameters (at most 128), announced to the daemon
   * and tracked by the SDK.
   */
  const rw_param_info *params; /* @32 */
  uint32_t n_params;           /* @40 */
  /*
   * @48. The plugin's name as runwayd shows it (status, slot list, state
   * files): 1 to 255 bytes (an LV2 plugin's URI fits), no control
   * characters, double quotes or backslashes. It is declared in the
   * segment's info block. NULL: the program's name (shortened to 255 bytes
   * if need be), or "worker".
   */
  const char *plugin;
} rw_worker_options;

typedef struct rw_worker rw_worker;

/*
 * Attaches to the slot. opts may be NULL (defaults, inherited segment).
 *
 * The plugin's declaration (opts->plugin and opts->params) goes into the
 * segment now; the daemon reads it, and counts the worker as running, from
 * the first rw_worker_next() on. Set up the plugin (and its state handlers)
 * in between.
 *
 * With RUNWAY_SEGMENT_FD set (a worker runwayd spawned), the segment's two
 * files at that descriptor and at RUNWAY_SEGMENT_WORKER_FD are mapped (the
 * first, which only the daemon writes, read-only; without the second the
 * open fails and says so); the process also asks for SIGTERM when its parent
 * dies (PR_SET_PDEATHSIG), and rw_worker_next() returns RW_ERR_CLOSED once
 * the parent is gone. Otherwise the SDK connects to the control socket, sends
 * worker.attach (slot, pid, declared parameters) and receives the segment;
 * that connection stays open until rw_worker_close(), and runwayd closing it
 * ends the worker. On failure *out is NULL and rw_worker_error(NULL), on
 * this thread, says why.
 */
RW_API int rw_worker_open(const rw_worker_options *opts, rw_worker **out);

RW_API const rw_worker_info *rw_worker_get_info(const rw_worker *w);

/*
 * Replaces the parameters declared in rw_worker_options.params, for a plugin
 * that learns them only once attached (ranges relative to the sample rate,
 * a table that depends on the channel counts). Only before the first
 * rw_worker_next(), which publishes the declaration. The same checks as at
 * open apply; on failure nothing changes. Copied, like the options'
 * parameters. Values start at the defaults.
 * Returns 0, RW_ERR_INVALID (see rw_worker_error) or RW_ERR_NOMEM.
 */
RW_API int rw_worker_declare_params(rw_worker *w, const rw_param_info *params, uint32_t n);

/*
 * Waits up to timeout_ms (< 0: forever) for the next block. Returns 1 with
 * *block filled, 0 on timeout (call again), or RW_ERR_CLOSED when the daemon
 * is gone or a stop was requested, or another negative code. While caught up
 * the worker sleeps until wake_frames of input have arrived: on its own timer
 * set just after the graph cycle that brings them, or, if that was late by a
 * whole period, woken by the daemon. It never spins and never allocates. A
 * stop request or a vanished daemon is noticed within about 50 ms.
 *
 * This is also where state requests from the daemon are answered (the state
 * handlers run on the calling thread, inside this call): on entry, before a
 * block is planned, and every <= 50 ms while waiting. A worker that does not
 * call rw_worker_next (one busy elsewhere, or one that keeps a block) leaves
 * them waiting.
 */
RW_API int rw_worker_next(rw_worker *w, rw_block *block, int timeout_ms);

/* Publishes the block's output. Every block from rw_worker_next() must be done once. */
RW_API int rw_worker_done(rw_worker *w, rw_block *block);

/*
 * Current value of a declared parameter (rw_worker_options.params): its
 * default until an event changes it. The table is updated when
 * rw_worker_next() delivers a block, so during a block it holds the value
 * after that block's last event; a state load in the default format updates
 * it at once (its events follow in the next block). NaN for an undeclared id.
 */
RW_API float rw_worker_param(const rw_worker *w, uint32_t id);

/* ---- reading blocks and events without their layout ------------------------ */

/*
 * Channel `channel` of a block's input or output, event `index` of its
 * events, or NULL when out of range. For an FFI without pointer arithmetic;
 * the same as b->inputs[channel], b->outputs[channel], &b->events[index].
 */
RW_API const float *rw_block_input(const rw_block *b, uint32_t channel);
RW_API float *rw_block_output(const rw_block *b, uint32_t channel);
RW_API const rw_event *rw_block_event(const rw_block *b, uint32_t index);

/* ev->u.param.id and ev->u.param.value of an RW_EV_PARAM event (0 and NaN for another kind). */
RW_API uint32_t rw_event_param_id(const rw_event *ev);
RW_API float rw_event_param_value(const rw_event *ev);
/* ev->u.midi.data of an RW_EV_MIDI event (ev->size bytes), NULL for another kind. */
RW_API const uint8_t *rw_event_midi_data(const rw_event *ev);

/* ---- plugin state ------------------------------------------------------------ */

/*
 * A plugin's own state handlers. Both run inside rw_worker_next(), between
 * two blocks, on the thread that calls it; they may allocate, and they may
 * call rw_worker_param and rw_worker_send_param, but not rw_worker_next or
 * rw_worker_done.
 *
 * save writes the plugin's state into buf (capacity bytes, the slot's
 * state_capacity: 256 KiB unless the daemon chose otherwise) and returns the
 * number of bytes written, RW_ERR_NOMEM when the state does not fit,
 * RW_ERR_UNSUPPORTED when there is nothing to save, or another negative
 * code on failure.
 *
 * load applies a state that save produced (possibly by another version of
 * the plugin: check it, it comes from a file) and returns 0, or a negative
 * code to refuse it, in which case the plugin keeps its current state.
 * data is a private copy that stays valid only during the call.
 *
 * A NULL save or load answers that direction with "unsupported". user is
 * passed back unchanged. 24 bytes: save @0, load @8, user @16.
 */
typedef struct rw_state_handlers {
  int64_t (*save)(void *user, unsigned char *buf, size_t capacity);
  int (*load)(void *user, const unsigned char *data, size_t len);
  void *user;
} rw_state_handlers;

/*
 * Installs the plugin's state handlers (copied), or with h NULL (or both
 * members NULL) goes back to the default. Call it before the first
 * rw_worker_next(), so the daemon learns from the start that the plugin
 * keeps state of its own (RW_INFO_F_STATE); later calls are allowed and
 * update that flag, but a daemon that already read the declaration may not
 * notice. Returns 0 or RW_ERR_INVALID (w NULL, or called from a handler).
 *
 * The default, for a plugin without handlers, saves the current values of
 * the declared parameters (rw_worker_param) as UTF-8 text:
 *
 *     runway-params 1\n
 *     gain_db -12\n
 *     mix 0.25\n
 *
 * the header line, then one line per declared parameter in declaration
 * order: its name, one space, its value as the shortest decimal of at most
 * 9 significant digits that reads back as the same float, a newline.
 * Loading reads it strictly: the header must be exactly "runway-params 1",
 * every line NAME SPACE NUMBER NEWLINE (the last newline may be missing),
 * NUMBER a plain decimal ([+-]digits[.digits][e[+-]digits], no inf or nan);
 * anything else refuses the whole document and changes nothing. Names the
 * plugin does not declare are skipped, values outside a parameter's range are
 * clamped, a repeated name takes its last value. The loaded values reach the
 * plugin as parameter events at offset 0 of the next block (after events
 * whose time has already passed, before those on time), exactly like
 * changes from `runwayctl param set`, and rw_worker_param returns them at
 * once. A plugin with no parameters saves just the header and loads any
 * valid document. The text is independent of the process locale.
 */
RW_API int rw_worker_set_state_handlers(rw_worker *w, const rw_state_handlers *h);

/*
 * Reports a parameter's value or a channel's peak level to the daemon
 * (worker -> daemon message ring). Non-blocking; returns RW_ERR_NOMEM when the
 * ring is full.
 */
RW_API int rw_worker_send_param(rw_worker *w, uint32_t id, float value);
RW_API int rw_worker_send_meter(rw_worker *w, uint32_t channel, float peak);

/*
 * Declares the plugin's own processing latency: output that answers input
 * frame k comes out `frames` later than the slot's L (a look-ahead limiter,
 * an LV2 plugin's latency port). runwayd adds it to the latency the slot's
 * ports report, so the graph's delay compensation stays exact; timing of
 * blocks and events does not change. 0 (the default) for none. Call it
 * whenever the plugin's latency changes, inside or between blocks; the
 * daemon picks the new value up within its housekeeping period (about
 * 100 ms) and ignores one above 2^20 frames. A new worker's latency counts
 * from its first rw_worker_done() on (until then the slot keeps reporting
 * what the previous worker said), so set it before that call when it is
 * known only once the plugin ran. Returns 0 or RW_ERR_INVALID.
 */
RW_API int rw_worker_set_latency(rw_worker *w, uint32_t frames);

/*
 * Asks rw_worker_next() to return RW_ERR_CLOSED (now, or after the block in
 * progress). Async-signal-safe and callable from any thread.
 */
RW_API void rw_worker_request_stop(rw_worker *w);

/* Copies w's counters into *out (64 bytes). Returns 0 or RW_ERR_INVALID. */
RW_API int rw_worker_get_stats(const rw_worker *w, rw_worker_stats *out);

/* One counter (enum rw_stat); UINT64_MAX for w NULL or a counter this library lacks. */
RW_API uint64_t rw_worker_stat(const rw_worker *w, int which);

/*
 * Last error message for w (or, when w is NULL, for the last failed
 * rw_worker_open on the calling thread). Valid until the next call on w (or
 * the next rw_worker_open on this thread).
 */
RW_API const char *rw_worker_error(const rw_worker *w);

RW_API void rw_worker_close(rw_worker *w);

/*
 * The layout this library was built with, for bindings that mirror structs:
 * "rw_block" gives sizeof(rw_block), "rw_block.position" its offset; any
 * struct and member of this header the same way (union members as
 * "rw_event.u.param.value"). -1 for a name the library does not know.
 */
RW_API int64_t rw_worker_abi_offset(const char *name);

/* ---- callback style ------------------------------------------------------ */

/* A plugin for rw_worker_main. 88 bytes (4 of padding at 28 and at 44). */
typedef struct rw_plugin {
  const char *name;            /* @0 */
  const char *description;     /* @8 */
  uint32_t n_inputs;           /* @16  channel counts the plugin is made for (the slot's win) */
  uint32_t n_outputs;          /* @20 */
  int midi;                    /* @24 */
  const rw_param_info *params; /* @32 */
  uint32_t n_params;           /* @40 */
  /* @48. Called once after attaching; returns the plugin instance or NULL on failure. */
  void *(*create)(const rw_worker_info *info);
  void (*destroy)(void *self); /* @56 */
  /* @64. Called for every block; must write every output frame. */
  void (*process)(void *self, rw_worker *w, const rw_block *block);
  /*
   * @72, @80. Optional state handlers, with the contract of rw_state_handlers
   * (self is its user). Both NULL: the SDK's default (the declared
   * parameters' values).
   */
  int64_t (*save_state)(void *self, unsigned char *buf, size_t capacity);
  int (*load_state)(void *self, const unsigned char *data, size_t len);
} rw_plugin;

/*
 * Attaches, creates the plugin, installs its state handlers, processes until
 * the daemon goes away or SIGTERM/SIGINT arrives, then cleans up. Returns a
 * process exit status (0 on a clean stop). opts may be NULL; opts->plugin
 * NULL takes plugin->name, and opts->params NULL takes plugin->params.
 */
RW_API int rw_worker_main(const rw_plugin *plugin, const rw_worker_options *opts);

/* ---- the stated layouts, checked ------------------------------------------- */

#if UINTPTR_MAX == UINT64_MAX && !defined(RW_NO_LAYOUT_CHECKS)
#ifdef __cplusplus
#define RW__LAYOUT(cond, what) static_assert(cond, what)
#else
#define RW__LAYOUT(cond, what) _Static_assert(cond, what)
#endif
RW__LAYOUT(sizeof(rw_event) == 16, "rw_event is 16 bytes");
RW__LAYOUT(offsetof(rw_event, offset) == 0 && offsetof(rw_event, kind) == 4 &&
               offsetof(rw_event, size) == 6 && offsetof(rw_event, u) == 8 &&
               offsetof(rw_event, u.midi.data) == 8 && offsetof(rw_event, u.param.id) == 8 &&
               offsetof(rw_event, u.param.value) == 12,
           "rw_event offsets");
RW__LAYOUT(sizeof(rw_param_info) == 40, "rw_param_info is 40 bytes");
RW__LAYOUT(offsetof(rw_param_info, id) == 0 && offsetof(rw_param_info, name) == 8 &&
               offsetof(rw_param_info, min) == 16 && offsetof(rw_param_info, max) == 20 &&
               offsetof(rw_param_info, def) == 24 && offsetof(rw_param_info, unit) == 32,
           "rw_param_info offsets");
RW__LAYOUT(sizeof(rw_block) == 80, "rw_block is 80 bytes");
RW__LAYOUT(offsetof(rw_block, frames) == 0 && offsetof(rw_block, n_inputs) == 4 &&
               offsetof(rw_block, n_outputs) == 8 && offsetof(rw_block, inputs) == 16 &&
               offsetof(rw_block, outputs) == 24 && offsetof(rw_block, events) == 32 &&
               offsetof(rw_block, n_events) == 40 && offsetof(rw_block, position) == 48 &&
               offsetof(rw_block, latency) == 56 && offsetof(rw_block, sample_rate) == 60 &&
               offsetof(rw_block, discontinuity) == 64 && offsetof(rw_block, skipped) == 72,
           "rw_block offsets");
RW__LAYOUT(sizeof(rw_worker_info) == 40, "rw_worker_info is 40 bytes");
RW__LAYOUT(offsetof(rw_worker_info, slot) == 0 && offsetof(rw_worker_info, sample_rate) == 8 &&
               offsetof(rw_worker_info, n_inputs) == 12 &&
               offsetof(rw_worker_info, n_outputs) == 16 && offsetof(rw_worker_info, midi) == 20 &&
               offsetof(rw_worker_info, latency) == 24 &&
               offsetof(rw_worker_info, max_block) == 28 &&
               offsetof(rw_worker_info, period) == 32 &&
               offsetof(rw_worker_info, wake_frames) == 36,
           "rw_worker_info offsets");
RW__LAYOUT(sizeof(rw_worker_stats) == 64, "rw_worker_stats is 64 bytes");
RW__LAYOUT(offsetof(rw_worker_stats, blocks) == 0 && offsetof(rw_worker_stats, frames) == 8 &&
               offsetof(rw_worker_stats, skipped_frames) == 16 &&
               offsetof(rw_worker_stats, discontinuities) == 24 &&
               offsetof(rw_worker_stats, events) == 32 &&
               offsetof(rw_worker_stats, events_late) == 40 &&
               offsetof(rw_worker_stats, events_invalid) == 48 &&
               offsetof(rw_worker_stats, messages_dropped) == 56,
           "rw_worker_stats offsets");
RW__LAYOUT(sizeof(rw_worker_options) == 56, "rw_worker_options is 56 bytes");
RW__LAYOUT(offsetof(rw_worker_options, api_version) == 0 &&
               offsetof(rw_worker_options, socket) == 8 &&
               offsetof(rw_worker_options, slot) == 16 &&
               offsetof(rw_worker_options, max_block) == 24 &&
               offsetof(rw_worker_options, wake_frames) == 28 &&
               offsetof(rw_worker_options, params) == 32 &&
               offsetof(rw_worker_options, n_params) == 40 &&
               offsetof(rw_worker_options, plugin) == 48,
           "rw_worker_options offsets");
RW__LAYOUT(sizeof(rw_state_handlers) == 24 && offsetof(rw_state_handlers, save) == 0 &&
               offsetof(rw_state_handlers, load) == 8 && offsetof(rw_state_handlers, user) == 16,
           "rw_state_handlers layout");
RW__LAYOUT(sizeof(rw_plugin) == 88, "rw_plugin is 88 bytes");
RW__LAYOUT(offsetof(rw_plugin, name) == 0 && offsetof(rw_plugin, description) == 8 &&
               offsetof(rw_plugin, n_inputs) == 16 && offsetof(rw_plugin, n_outputs) == 20 &&
               offsetof(rw_plugin, midi) == 24 && offsetof(rw_plugin, params) == 32 &&
               offsetof(rw_plugin, n_params) == 40 && offsetof(rw_plugin, create) == 48 &&
               offsetof(rw_plugin, destroy) == 56 && offsetof(rw_plugin, process) == 64 &&
               offsetof(rw_plugin, save_state) == 72 && offsetof(rw_plugin, load_state) == 80,
           "rw_plugin offsets");
#undef RW__LAYOUT
#endif

#ifdef __cplusplus
}
#endif

#endif /* RUNWAY_WORKER_H */
