/*
 * librunway-worker: write runway plugins in any language with a C FFI.
 *
 * A worker process computes a slot's audio a fixed latency L ahead of the
 * audio graph. The SDK hides how: the shared-memory rings, the futex sleep,
 * event timing, skips after stalls. The plugin author sees blocks of input
 * and output frames with the MIDI and parameter events that fall inside them,
 * each at its exact sample offset.
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
 *     A pause (a GC, a page fault) shorter than L between two blocks is
 *     invisible to listeners; a longer one is turned into a clean skip
 *     reported as b.discontinuity.
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
 * Threads: a rw_worker is used from one thread at a time. Nothing here is
 * called from the daemon's real-time thread; the worker may allocate and
 * block as it likes (blocking longer than L costs audio, never the daemon).
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

#define RW_WORKER_API_VERSION 1

/* Most events one block carries (see "Timing" above). */
#define RW_MAX_BLOCK_EVENTS 512u
/* Length of the fade-in applied to the output after a discontinuity. */
#define RW_FADE_IN_FRAMES 64u

/* Error codes: functions return 0 (or a count) on success, a negative value on failure. */
enum rw_status {
  RW_OK = 0,
  RW_ERR_INVALID = -1,    /* bad argument */
  RW_ERR_ATTACH = -2,     /* no segment to attach to, or the daemon refused */
  RW_ERR_PROTOCOL = -3,   /* the segment is corrupt or speaks another ABI */
  RW_ERR_CLOSED = -4,     /* the daemon went away or asked the worker to stop */
  RW_ERR_NOMEM = -5,
  RW_ERR_SYSTEM = -6,     /* a system call failed; see rw_worker_error() */
  RW_ERR_UNSUPPORTED = -7 /* the plugin does not implement what was asked */
};

enum rw_event_kind {
  RW_EV_MIDI = 1,  /* u.midi.data[0..size) holds 1 to 3 MIDI bytes */
  RW_EV_PARAM = 2  /* u.param: parameter id and its new (already clamped) value */
};

/* An event inside a block, at sample offset `offset` (0 <= offset < frames). */
typedef struct rw_event {
  uint32_t offset;
  uint16_t kind; /* enum rw_event_kind */
  uint16_t size; /* MIDI byte count */
  union {
    struct {
      uint8_t data[4];
    } midi;
    struct {
      uint32_t id;
      float value;
    } param;
  } u;
} rw_event;

/*
 * Parameter description a plugin declares. rw_worker_open refuses (with
 * RW_ERR_INVALID and a message saying which) a declaration the daemon could
 * not show faithfully; nothing is ever truncated.
 */
typedef struct rw_param_info {
  uint32_t id;      /* stable id, unique within the plugin */
  const char *name; /* unique; 1 to 31 of [A-Za-z0-9_] (e.g. "gain_db") */
  float min;        /* finite, min <= def <= max */
  float max;
  float def;
  const char *unit; /* "dB", "Hz", "ms", "" (or NULL); at most 15 bytes, no control
                       characters, double quotes or backslashes */
} rw_param_info;

/* One block of work. Buffers belong to the SDK and stay valid until rw_worker_done(). */
typedef struct rw_block {
  uint32_t frames;
  uint32_t n_inputs;
  uint32_t n_outputs;
  const float *const *inputs; /* n_inputs channels of frames samples */
  float *const *outputs;      /* n_outputs channels; the plugin writes every frame */
  const rw_event *events;     /* sorted by offset */
  uint32_t n_events;
  uint64_t position; /* timeline position of the block's first input frame */
  uint32_t latency;  /* L: the output frame k plays at timeline position + L + k */
  uint32_t sample_rate;
  int discontinuity; /* 1 when input before this block was skipped, or it is the first */
  uint64_t skipped;  /* input frames skipped just before this block */
} rw_block;

/* What the worker is attached to. */
typedef struct rw_worker_info {
  const char *slot; /* slot name ("" when unknown) */
  uint32_t sample_rate;
  uint32_t n_inputs;
  uint32_t n_outputs;
  int midi; /* the slot has a MIDI input */
  uint32_t latency;
  uint32_t max_block; /* largest block rw_worker_next() returns */
} rw_worker_info;

/* Counters of one rw_worker since it was opened (rw_worker_get_stats). */
typedef struct rw_worker_stats {
  uint64_t blocks;           /* blocks handed out by rw_worker_next */
  uint64_t frames;           /* frames in those blocks */
  uint64_t skipped_frames;   /* input frames skipped to stay aligned */
  uint64_t discontinuities;  /* blocks with discontinuity = 1 */
  uint64_t events;           /* events delivered */
  uint64_t events_late;      /* of those, delivered at offset 0 because their time had passed */
  uint64_t events_invalid;   /* records dropped: unknown type, bad size, non-finite value */
  uint64_t messages_dropped; /* send_param / send_meter calls that found the ring full */
} rw_worker_stats;

typedef struct rw_worker_options {
  int api_version; /* RW_WORKER_API_VERSION (0 is taken as 1) */
  /*
   * Where to attach. When the process was started by runwayd the segment is
   * inherited (RUNWAY_SEGMENT_FD in the environment) and these may be NULL.
   * Otherwise the SDK connects to `socket` (NULL: $RUNWAY_SOCKET, then the
   * default path) and asks for slot `slot` (NULL: $RUNWAY_SLOT), which must
   * have been added with --external.
   */
  const char *socket;
  const char *slot;
  uint32_t max_block;   /* 0: 256 frames */
  uint32_t wake_frames; /* 0: the slot's default (L / 4, at least one period) */
  /*
   * Optional: the plugin's parameters (at most 128), announced to the daemon
   * and tracked by the SDK.
   */
  const rw_param_info *params;
  uint32_t n_params;
  /*
   * The plugin's name as runwayd shows it (status, slot list): 1 to 255
   * bytes (an LV2 plugin's URI fits), no control characters, double quotes
   * or backslashes. NULL: the program's name (shortened to 255 bytes if need
   * be), or "worker".
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
 * With RUNWAY_SEGMENT_FD set (a worker runwayd spawned), the segment at that
 * descriptor is mapped; the process also asks for SIGTERM when its parent
 * dies (PR_SET_PDEATHSIG), and rw_worker_next() returns RW_ERR_CLOSED once
 * the parent is gone. Otherwise the SDK connects to the control socket, sends
 * worker.attach (slot, pid, declared parameters) and receives the segment;
 * that connection stays open until rw_worker_close(), and runwayd closing it
 * ends the worker. On failure *out is NULL and rw_worker_error(NULL) says why.
 */
RW_API int rw_worker_open(const rw_worker_options *opts, rw_worker **out);

RW_API const rw_worker_info *rw_worker_get_info(const rw_worker *w);

/*
 * Replaces the parameters declared in rw_worker_options.params, for a plugin
 * that learns them only once attached (ranges relative to the sample rate,
 * a table that depends on the channel counts). Only before the first
 * rw_worker_next(), which publishes the declaration. The same checks as at
 * open apply; on failure nothing changes. Values start at the defaults.
 * Returns 0, RW_ERR_INVALID (see rw_worker_error) or RW_ERR_NOMEM.
 */
RW_API int rw_worker_declare_params(rw_worker *w, const rw_param_info *params, uint32_t n);

/*
 * Waits up to timeout_ms (< 0: forever) for the next block. Returns 1 with
 * *block filled, 0 on timeout (call again), or RW_ERR_CLOSED when the daemon
 * is gone or a stop was requested, or another negative code. While caught up
 * the worker sleeps on a futex until the daemon has at least wake_frames of
 * input for it; it never spins and never allocates. A stop request or a
 * vanished daemon is noticed within about 50 ms.
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
 * passed back unchanged.
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

/* Copies w's counters into *out. Returns 0 or RW_ERR_INVALID. */
RW_API int rw_worker_get_stats(const rw_worker *w, rw_worker_stats *out);

/*
 * Last error message for w (or, when w is NULL, for the last failed
 * rw_worker_open in this thread).
 */
RW_API const char *rw_worker_error(const rw_worker *w);

RW_API void rw_worker_close(rw_worker *w);

/* ---- callback style ------------------------------------------------------ */

typedef struct rw_plugin {
  const char *name;
  const char *description;
  uint32_t n_inputs; /* channel counts the plugin is made for (the slot's win) */
  uint32_t n_outputs;
  int midi;
  const rw_param_info *params;
  uint32_t n_params;
  /* Called once after attaching; returns the plugin instance or NULL on failure. */
  void *(*create)(const rw_worker_info *info);
  void (*destroy)(void *self);
  /* Called for every block; must write every output frame. */
  void (*process)(void *self, rw_worker *w, const rw_block *block);
  /*
   * Optional state handlers, with the contract of rw_state_handlers (self is
   * its user). Both NULL: the SDK's default (the declared parameters' values).
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

#ifdef __cplusplus
}
#endif

#endif /* RUNWAY_WORKER_H */
