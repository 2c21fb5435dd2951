/*
 * Event subscriptions: clients that sent `subscribe` get one JSON line per
 * event on their connection, after the answer to the request:
 *
 *   {"event":"slot","slot":"fx","state":"running","pid":4242,"generation":3,
 *    "reason":"worker started","time_ms":123456}
 *
 * Types and their fields (fields may be added, never renamed):
 *   slot      slot, state, pid, generation, reason   a slot changed state
 *   underrun  slot, underruns, underrun_frames       the counters grew (totals)
 *   restart   slot, restarts, reason                 a worker is restarted
 *   param     slot, param, param_id, value           a parameter changed
 *   fault     slot, reason                           a slot faulted
 *   replace   slot, phase, plugin, generation[, reason]
 *             a seamless replacement or restart: started, switching (the
 *             crossfade began), done, or failed (reason; the old worker plays
 *             on); generation is the new one's (0 while the old worker still
 *             saves its state for it)
 * time_ms is the daemon's monotonic clock in milliseconds. Event lines have
 * "event" and never "ok"; answers have "ok".
 *
 * A subscriber that stops reading is disconnected once its output queue is
 * over the control server's limit; the others and the loop carry on.
 * Control thread only.
 */
#ifndef RUNWAY_DAEMON_EVENTS_H
#define RUNWAY_DAEMON_EVENTS_H

#include <jansson.h>

#include "control.h"
#include "protocol.h"

struct events;

/* The event type names, in the order above; NULL-terminated. */
extern const char *const events_types[];

struct events *events_create(void);

/*
 * Detaches from every subscriber's connection (they stay open) and frees the
 * registry. Stopping the control server first closes them instead.
 */
void events_destroy(struct events *ev);

/*
 * The `subscribe` handler. Checks args.events (names from events_types; absent
 * means every type), registers conn (again: replaces its types) and returns
 * the response {"subscribed":[...]} or an error response (invalid_argument for
 * an unknown type, busy when conn already belongs to an attached worker).
 * The connection becomes exempt from the idle timeout and leaves the registry
 * when it closes. Further requests on it are answered as usual.
 */
json_t *events_subscribe(struct events *ev, struct control_conn *conn,
                         const struct proto_request *req);

/*
 * Sends {"event":type, ...fields, "time_ms":...} to every subscriber of type.
 * Steals fields (an object, or NULL). Cheap when nobody listens.
 */
void events_emit(struct events *ev, const char *type, json_t *fields);

/* Subscribers registered now. */
unsigned events_subscribers(const struct events *ev);

#endif
