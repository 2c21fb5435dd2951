/*
 * A raw client of the control server for the unit tests that run a real
 * server in their own libuv loop: the test turns its loop (pump) while the
 * client waits, so one thread plays both sides. Every wait has a deadline.
 */
#ifndef RUNWAY_TEST_CONTROL_CLIENT_H
#define RUNWAY_TEST_CONTROL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#define DEADLINE_MS 5000

struct client {
  int fd;
  char buf[1 << 17];
  size_t len;
  int eof;
  int passed_fd; /* from SCM_RIGHTS, or -1 */
};

/* The loop pump() turns; set by the test's setup. */
void client_use_loop(uv_loop_t *loop);

uint64_t now_ms(void);
void pump(void);

struct client *client_connect_to(const char *path);
void client_free(struct client *c);

/* Writes everything, turning the loop whenever the socket is full. */
void client_send_n(struct client *c, const char *data, size_t len);
void client_send(struct client *c, const char *s);

/* Reads whatever is there (with any passed fd); returns 0 when nothing came. */
int client_fill(struct client *c);

/* The next line (a static buffer, without newline), or NULL at EOF; fails at the deadline. */
const char *client_read_raw(struct client *c);
/* The next line, parsed, or NULL at EOF. */
json_t *client_read(struct client *c);

/* Skips whatever is still coming and returns once the server closed. */
void client_expect_eof(struct client *c);

/* Turns the loop for ms (reading into c when given); for checking that something does not happen. */
void pump_for(struct client *c, uint64_t ms);

#endif
