/*
 * The daemon's connection to its audio server: connecting off the loop,
 * reconnecting with backoff after the server went away, and what server
 * events (shutdown, period or rate changes, graph changes) mean for the
 * slots. Control thread only.
 */
#ifndef RUNWAY_DAEMON_CONNECTION_H
#define RUNWAY_DAEMON_CONNECTION_H

#include <stddef.h>

#include "runwayd.h"

/* Creates the backend chosen by --backend. 0 or -errno with a message. */
int connection_init(struct runwayd *d, char *err, size_t errlen);

/* Starts connecting; until the server answers, attempts repeat with backoff. */
void connection_start(struct runwayd *d);

/* Stops reconnecting and closes the connection: no RT cycle runs when it returns. */
void connection_stop(struct runwayd *d);

/* The line `systemctl status runwayd` shows (sd_notify STATUS=). */
const char *connection_describe(const struct runwayd *d, char *buf, size_t len);

#endif
