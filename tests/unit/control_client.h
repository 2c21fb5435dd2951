/*
 * The control socket's client (proto/client.h) for the unit tests that run a
 * real server in their own libuv loop: the test turns its loop (pump) while
 * the client waits, so one thread plays both sides. Every wait has a
 * deadline, and a missed one fails the test.
 */
#ifndef RUNWAY_TEST_CONTROL_CLIENT_H
#define RUNWAY_TEST_CONTROL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "client.h"
#include "clock.h"

#define DEADLINE_MS 5000

struct client {
  struct proto_client pc;
  struct proto_fds passed; /* the last descriptors that came with a line read (SCM_RIGHTS) */
};

/* The loop pump() turns; set by the test's setup. */
void client_use_loop(uv_loop_t *loop);

void pump(void);

struct client *client_connect_to(const char *path);
void client_free(struct client *c);

/* Writes everything, turning the loop whenever the socket is full. */
void client_send_n(struct client *c, const char *data, size_t len);
void client_send(struct client *c, const char *s);

/* Receives whatever is there, waiting 1 ms at most; returns 0 when nothing came. */
int client_fill(struct client *c);

/* The next line (a static buffer, without newline), or NULL at EOF; fails at the deadline. */
const char *client_read_raw(struct client *c);
/* The next line, parsed, or NULL at EOF. */
json_t *client_read(struct client *c);

/* Skips whatever is still coming and returns once the server closed. */
void client_expect_eof(struct client *c);

/* Turns the loop for ms (receiving into c when given); for checking that something does not happen.
 */
void pump_for(struct client *c, uint64_t ms);

#endif
