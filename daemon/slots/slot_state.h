/*
 * Plugin state: state.save and state.load through the segment's state
 * mailbox (struct rw_state_request, rw_state_reply), and handing a slot's
 * last state to every new worker. A request waits for the worker without
 * blocking the loop: the client's connection is held (control_conn_hold) and
 * answered when the worker has, or after a timeout. Control thread only.
 *
 * State files are JSON: {"format":"runway-state","version":1,"slot","plugin",
 * "params":{name: value},"state": base64 or null}.
 */
#ifndef RUNWAY_DAEMON_SLOT_STATE_H
#define RUNWAY_DAEMON_SLOT_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "slots.h"

#define SLOT_STATE_TIMEOUT_MS 5000
#define SLOT_STATE_FILE_MAX (64u * 1024u * 1024u)

/* The handlers of state.save and state.load: NULL when they answer later. */
json_t *slot_state_save(struct runwayd *d, struct slot *s, struct control_conn *conn,
                        const struct proto_request *req);
json_t *slot_state_load(struct runwayd *d, struct slot *s, struct control_conn *conn,
                        const struct proto_request *req);

/* Answers requests the worker completed or that timed out; true while any still waits. */
bool slot_state_poll(struct runwayd *d, uint64_t now_ms);

/* Fails the slot's waiting request, if any (its worker went away, the slot is removed). */
void slot_state_abort(struct slot *s, const char *why);

/* Puts the slot's last state into a new generation's mailbox, before it is published. */
void slot_state_prepare(struct slot *s, struct engine_slot *gen);

/*
 * Asks the slot's worker for its state now, to hand to a worker that
 * replaces it: the slot's last state when it answers (slot_state_poll), no
 * file, no client. 0, or -EBUSY when a request is in progress, -ENOMEM.
 */
int slot_state_refresh(struct slot *s);

/* Replaces the slot's last state. 0 or -ENOMEM. */
int slot_state_set_blob(struct slot *s, const unsigned char *data, size_t len);

#endif
