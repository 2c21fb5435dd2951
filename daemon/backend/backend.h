/*
 * The audio server backend: runwayd's seat in a graph (JACK, PipeWire). An
 * operations table chosen at run time (--backend); the rest of the daemon
 * sees only the inline wrappers below.
 *
 * A backend connects to its server, opens each slot's ports (on JACK ports of
 * one client, on PipeWire a node of its own per slot), reports each slot's
 * latency L, and runs the engine (rt/engine.h) on the server's RT thread.
 * Server events (shutdown, period or rate change, connections) reach the
 * control thread through the loop.
 *
 * Threads: everything here is called from the control thread. Backends run
 * the engine on the server's RT thread and may compute latencies on a
 * server thread of their own; they must block every signal in threads they
 * create (base/signals.h).
 */
#ifndef RUNWAY_DAEMON_BACKEND_H
#define RUNWAY_DAEMON_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <runway/segment.h>
#include <uv.h>

#include "engine.h"

/* Server events, reported as a bit set. */
enum backend_event {
  BACKEND_EV_SHUTDOWN = 1u << 0,  /* the server went away; abandon and reconnect */
  BACKEND_EV_PERIOD = 1u << 1,    /* the period changed */
  BACKEND_EV_RATE = 1u << 2,      /* the sample rate changed */
  BACKEND_EV_CONNECTED = 1u << 3, /* a connection attempt ended: call backend_finish_connect() */
  BACKEND_EV_GRAPH = 1u << 4,     /* connections changed: the slot order may have to follow */
  BACKEND_EV_CLOSED = 1u << 5     /* an abandoned connection is closed: its RT thread is gone */
};

/* Called on the control thread when events arrived; take them with backend_take_events(). */
typedef void (*backend_event_fn)(void *user);

struct backend_config {
  uv_loop_t *loop;
  struct engine *engine;
  const char *client_name; /* --name */
  backend_event_fn on_event;
  void *user;
};

/*
 * One slot's ports. The handles are what the engine's I/O callbacks take;
 * the names are the full names graph tools show ("runway:fx.in_1"). Valid
 * until backend_slot_close(), or until the connection that opened them is
 * gone (then only close is allowed).
 */
struct backend;

struct backend_slot {
  uint32_t n_in;
  uint32_t n_out;
  bool midi;
  void *in[RW_MAX_CHANNELS];
  void *out[RW_MAX_CHANNELS];
  void *midi_in;
  char *in_names[RW_MAX_CHANNELS];
  char *out_names[RW_MAX_CHANNELS];
  char *midi_name;
  uint64_t epoch; /* the connection that opened them */
};

struct backend_ops {
  const char *name;        /* "jack": what --backend and `status` say */
  const char *server_name; /* "JACK": what messages say */

  /* True when the server answers now (for --backend auto); must not block long. */
  bool (*available)(void);
  int (*create)(const struct backend_config *cfg, struct backend **out);
  void (*destroy)(struct backend *b);

  /*
   * Starts connecting (never starting a server). Connecting may block, so it
   * happens off the loop; BACKEND_EV_CONNECTED reports that it ended.
   * Returns 0, -EALREADY while connected or connecting, or -errno.
   */
  int (*connect)(struct backend *b);
  /*
   * On BACKEND_EV_CONNECTED: activates (from here on the RT thread runs).
   * Returns 0, -EINPROGRESS when the attempt has not ended, -ECONNREFUSED
   * when no server answered, or another -errno; err says why.
   */
  int (*finish_connect)(struct backend *b, char *err, size_t errlen);
  /* Deactivates and disconnects: no RT cycle runs any more when it returns. */
  void (*close)(struct backend *b);
  /*
   * After BACKEND_EV_SHUTDOWN: the server is gone; letting go of the
   * connection must not wait on the dying server, so it is closed off the
   * loop, and BACKEND_EV_CLOSED says when its RT thread is certainly gone.
   * Connecting again waits for that (connect answers -EBUSY until then).
   */
  void (*abandon)(struct backend *b);

  bool (*is_open)(const struct backend *b);
  /*
   * True when no RT cycle can run or be running: closed, or abandoned and
   * BACKEND_EV_CLOSED reported. Only then may the engine's tables be freed.
   */
  bool (*rt_stopped)(const struct backend *b);
  const char *(*client_name)(const struct backend *b); /* as the server named us */
  uint32_t (*sample_rate)(const struct backend *b);
  uint32_t (*period)(const struct backend *b);
  /* Counts connections: ports are valid only within the epoch that opened them. */
  uint64_t (*epoch)(const struct backend *b);
  /* Events since the last call (bit set of enum backend_event). */
  uint32_t (*take_events)(struct backend *b);

  /*
   * Opens the ports of slot `name` (NAME.in_1.., NAME.out_1.., NAME.midi_in).
   * Returns 0 or -errno with a message; *out is the backend's.
   */
  int (*slot_open)(struct backend *b, const char *name, uint32_t n_in, uint32_t n_out, bool midi,
                   struct backend_slot **out, char *err, size_t errlen);
  /*
   * The slot is gone, but the RT thread may still run its ports until they
   * are closed: their names must be free for a new slot at once. NULL when
   * closing frees the names at once anyway.
   */
  void (*slot_retire)(struct backend *b, struct backend_slot *bs);
  /* Closes the ports (or only frees them when their connection is gone). */
  void (*slot_close)(struct backend *b, struct backend_slot *bs);
  /*
   * Sets the slot's latency L for reporting: outputs' capture latency =
   * inputs' capture latency + L, inputs' playback latency = outputs'
   * playback latency + L. Takes effect at the next latency_update.
   */
  void (*slot_latency)(struct backend *b, struct backend_slot *bs, uint32_t latency);
  /* Asks the server to recompute latencies after changes. */
  void (*latency_update)(struct backend *b);
  /*
   * The order in which one RT cycle must run the given slots so that a slot
   * runs after the slots that feed it through the graph (keeping a chain's
   * delay exactly the sum of its L). Writes a permutation of 0..n-1 into
   * order; returns true when it differs from the identity. NULL for backends
   * whose server orders slots itself (one node per slot).
   */
  bool (*order)(struct backend *b, struct backend_slot *const *slots, uint32_t n, uint32_t *order);
};

/* Every backend starts with its operations. */
struct backend {
  const struct backend_ops *ops;
};

extern const struct backend_ops backend_jack_ops;
#ifdef RUNWAY_PIPEWIRE
extern const struct backend_ops backend_pipewire_ops;
#endif

/*
 * The backend named by --backend: "jack", "pipewire", or "auto": the
 * preferred backend whose server answers now (PipeWire first), else JACK.
 * NULL with a message for an unknown name.
 */
const struct backend_ops *backend_find(const char *name, char *err, size_t errlen);

/* Names of the backends built in, for --help and messages ("pipewire, jack"). */
const char *backend_names(void);

static inline int backend_create(const struct backend_ops *ops, const struct backend_config *cfg,
                                 struct backend **out) {
  return ops->create(cfg, out);
}
static inline void backend_destroy(struct backend *b) {
  if (b != NULL)
    b->ops->destroy(b);
}
static inline int backend_connect(struct backend *b) { return b->ops->connect(b); }
static inline int backend_finish_connect(struct backend *b, char *err, size_t errlen) {
  return b->ops->finish_connect(b, err, errlen);
}
static inline void backend_close(struct backend *b) { b->ops->close(b); }
static inline void backend_abandon(struct backend *b) { b->ops->abandon(b); }
static inline bool backend_is_open(const struct backend *b) {
  return b != NULL && b->ops->is_open(b);
}
static inline bool backend_rt_stopped(const struct backend *b) {
  return b == NULL || b->ops->rt_stopped(b);
}
static inline const char *backend_name(const struct backend *b) { return b->ops->name; }
static inline const char *backend_server_name(const struct backend *b) {
  return b->ops->server_name;
}
static inline const char *backend_client_name(const struct backend *b) {
  return b->ops->client_name(b);
}
static inline uint32_t backend_sample_rate(const struct backend *b) {
  return b->ops->sample_rate(b);
}
static inline uint32_t backend_period(const struct backend *b) { return b->ops->period(b); }
static inline uint64_t backend_epoch(const struct backend *b) { return b->ops->epoch(b); }
static inline uint32_t backend_take_events(struct backend *b) { return b->ops->take_events(b); }
static inline int backend_slot_open(struct backend *b, const char *name, uint32_t n_in,
                                    uint32_t n_out, bool midi, struct backend_slot **out, char *err,
                                    size_t errlen) {
  return b->ops->slot_open(b, name, n_in, n_out, midi, out, err, errlen);
}
static inline void backend_slot_close(struct backend *b, struct backend_slot *bs) {
  if (bs != NULL)
    b->ops->slot_close(b, bs);
}
static inline void backend_slot_retire(struct backend *b, struct backend_slot *bs) {
  if (b->ops->slot_retire != NULL)
    b->ops->slot_retire(b, bs);
}
static inline void backend_slot_latency(struct backend *b, struct backend_slot *bs,
                                        uint32_t latency) {
  b->ops->slot_latency(b, bs, latency);
}
static inline void backend_latency_update(struct backend *b) { b->ops->latency_update(b); }
static inline bool backend_order(struct backend *b, struct backend_slot *const *slots, uint32_t n,
                                 uint32_t *order) {
  return b->ops->order != NULL && b->ops->order(b, slots, n, order);
}

/* True while bs's ports belong to the live connection. */
static inline bool backend_slot_live(const struct backend *b, const struct backend_slot *bs) {
  return bs != NULL && backend_is_open(b) && bs->epoch == backend_epoch(b);
}

/* ---- for backend implementations ---------------------------------------- */

/* "fx.in_1", "fx.out_2", "fx.midi_in": a slot's port names on every backend. */
int backend_port_name(char *buf, size_t len, const char *slot, const char *suffix, uint32_t index);

/* Frees the names of bs's ports and clears them with the handles. */
void backend_slot_clear(struct backend_slot *bs);

#endif
