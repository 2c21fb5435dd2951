/* Control command handlers: the control server's dispatch callback. Control thread only. */
#ifndef RUNWAY_DAEMON_COMMANDS_H
#define RUNWAY_DAEMON_COMMANDS_H

#include "control.h"
#include "runwayd.h"

/*
 * control_dispatch_fn for the daemon; user is the struct runwayd. req is a
 * request proto_parse_request accepted, so req->command is one of
 * proto_commands[] and every command has its handler.
 */
json_t *commands_dispatch(void *user, struct control_conn *conn, const struct proto_request *req);

#endif
