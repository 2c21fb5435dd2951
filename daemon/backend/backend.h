/*
 * The audio server backend: a client of the graph whose process callback
 * runs engine_process(), plus ports, reported latencies and server events.
 * JACK is the one implementation for now (backend_jack.c).
 *
 * Threads: the functions here are called from the control thread. The backend
 * runs the engine on the server's RT thread, computes latencies on the
 * server's notification thread, and reports server events (shutdown, period
 * or rate change) to the control thread through the loop (uv_async).
 */
#ifndef RUNWAY_DAEMON_BACKEND_H
#define RUNWAY_DAEMON_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine.h"

struct backend;

enum backend_port_kind { BACKEND_AUDIO_IN, BACKEND_AUDIO_OUT, BACKEND_MIDI_IN };

/* Server events, reported as a bit set. */
enum backend_event {
  BACKEND_EV_SHUTDOWN = 1u << 0, /* the server went away; close and reconnect */
  BACKEND_EV_PERIOD = 1u << 1,   /* the period changed */
  BACKEND_EV_RATE = 1u << 2,     /* the sample rate changed */
  BACKEND_EV_CONNECTED = 1u << 3, /* a connection attempt ended: call backend_finish_connect() */
  BACKEND_EV_GRAPH = 1u << 4      /* connections changed */
};

/* Called on the control thread when events arrived; take them with backend_take_events(). */
typedef void (*backend_event_fn)(void *user);

int backend_create(uv_loop_t *loop, struct engine *engine, const char *client_name,
                   backend_event_fn on_event, void *user, struct backend **out);
void backend_destroy(struct backend *b);

/*
 * Starts connecting to the server (never starting one). Connecting can block
 * for as long as a dying server keeps its socket open, so it happens on a
 * thread of its own; BACKEND_EV_CONNECTED reports that it ended. Returns 0,
 * or -EALREADY while connected or connecting, or -errno.
 */
int backend_connect(struct backend *b);

/*
 * On BACKEND_EV_CONNECTED: installs the callbacks and activates (from here on
 * the RT thread runs). Returns 0, or -ECONNREFUSED when no server was
 * reachable, or another -errno; err says why.
 */
int backend_finish_connect(struct backend *b, char *err, size_t errlen);

bool backend_is_connecting(const struct backend *b);

/*
 * Deactivates and disconnects. When it returns, no RT cycle runs any more and
 * every port handle from this connection is invalid.
 */
void backend_close(struct backend *b);

/*
 * After the server went away: the client's RT thread has stopped for good;
 * closing it may still wait on the dying server, so that happens on a thread
 * of its own. Every port handle is invalid when this returns.
 */
void backend_abandon(struct backend *b);

bool backend_is_open(const struct backend *b);
const char *backend_name(const struct backend *b);        /* "jack" */
const char *backend_client_name(const struct backend *b); /* the client name actually given */
uint32_t backend_sample_rate(const struct backend *b);
uint32_t backend_period(const struct backend *b);
/* Counts connections: port handles are valid only within the epoch that made them. */
uint64_t backend_epoch(const struct backend *b);

/* Events since the last call (bit set of enum backend_event). */
uint32_t backend_take_events(struct backend *b);

/*
 * Registers a port named `name` ("fx.in_1") on the client; *full gets the
 * full name ("runway:fx.in_1"). Returns 0 or -errno with a message.
 */
int backend_port_register(struct backend *b, const char *name, enum backend_port_kind kind,
                          void **port, char *full, size_t full_len, char *err, size_t errlen);
void backend_port_unregister(struct backend *b, void *port);

/*
 * Declares a slot's ports and its fixed latency L for latency reporting:
 * outputs' capture latency = inputs' capture latency + L, inputs' playback
 * latency = outputs' playback latency + L. key identifies the slot. The
 * entry is copied; update or remove it before its ports go away.
 */
void backend_latency_set(struct backend *b, const void *key, void *const *in, uint32_t n_in,
                         void *const *out, uint32_t n_out, void *midi, uint32_t latency);
void backend_latency_remove(struct backend *b, const void *key);
/*
 * Full names of the ports connected to port (NULL-terminated, free with
 * backend_free_names), or NULL when none. Not RT safe.
 */
const char **backend_port_connections(struct backend *b, void *port);
void backend_free_names(const char **names);

/* Asks the server to recompute latencies after changes. */
void backend_latency_update(struct backend *b);

#endif
