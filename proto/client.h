/*
 * A client of runwayd's control socket: one Unix stream connection carrying
 * JSON lines (protocol.h), with a deadline on every wait. runwayctl, the
 * worker SDK's worker.attach (whose answer brings the slot's segment with
 * SCM_RIGHTS), the tests and the benchmarks all talk to runwayd through it.
 * Not RT safe; one thread per client.
 *
 * Deadlines are absolute times in milliseconds on base_mono_ms()'s clock
 * (base/clock.h). PROTO_CLIENT_NOW does only what needs no waiting;
 * PROTO_CLIENT_FOREVER never gives up. Functions return 0 (or a length) or
 * -errno; waiting until the deadline gives -ETIMEDOUT, and the peer closing
 * its side gives -EPIPE.
 */
#ifndef RUNWAY_PROTO_CLIENT_H
#define RUNWAY_PROTO_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define PROTO_CLIENT_NOW ((uint64_t)0)
#define PROTO_CLIENT_FOREVER UINT64_MAX

/* Most descriptors one line brings (worker.attach passes a segment's two files). */
#define PROTO_CLIENT_MAX_FDS 2

/* Descriptors that came with one line (SCM_RIGHTS), in the order they were sent. */
struct proto_fds {
  int n;
  int fd[PROTO_CLIENT_MAX_FDS];
};

/* Closes fds->fd[0..n) and empties it. Harmless on NULL or an empty set. */
void proto_fds_close(struct proto_fds *fds);

/* Fields are read-only for users; fd may be polled, shut down or passed on. */
struct proto_client {
  int fd;                  /* the connection, or -1 */
  char *buf;               /* bytes received and not yet returned */
  size_t len;              /* bytes held in buf */
  size_t cap;              /* buf's size: the longest line and its newline */
  size_t consumed;         /* the line returned last and its newline; dropped by the next read */
  int eof;                 /* the peer closed its side; what buf holds can still be read */
  struct proto_fds passed; /* received (SCM_RIGHTS) and not yet handed out */
  size_t passed_at;        /* the offset in buf of the last byte that came with them */
  /* The signal mask while waiting (ppoll), or NULL; see proto_client_set_sigmask. */
  const sigset_t *sigmask;
};

/* A client not connected (yet): proto_client_close leaves it alone. */
#define PROTO_CLIENT_INIT                                                                          \
  { .fd = -1 }

/*
 * Connects to the socket at path. When the daemon's listen backlog is full
 * the connect waits, until deadline; then -EAGAIN. Other failures are
 * connect(2)'s: -ENOENT (no socket there), -ECONNREFUSED (nobody listens),
 * -EACCES, ...; -ENAMETOOLONG for a path that does not fit a sockaddr_un,
 * -ENOMEM. On failure c is left closed (proto_client_close is harmless).
 */
int proto_client_connect(struct proto_client *c, const char *path, uint64_t deadline);

/*
 * Wraps a connected stream socket (a socketpair, an accepted connection) and
 * takes ownership of fd. Returns 0 or -ENOMEM (fd is then not taken).
 */
int proto_client_adopt(struct proto_client *c, int fd);

/* Closes the connection and any descriptors received and not handed out. Harmless twice. */
void proto_client_close(struct proto_client *c);

/*
 * Frees the client but keeps the connection open: returns its descriptor,
 * which the caller then owns. Bytes received and not read yet are dropped.
 */
int proto_client_detach(struct proto_client *c);

/*
 * While a wait is in progress, the thread's signal mask is mask (ppoll), and
 * a signal that interrupts the wait returns -EINTR instead of waiting on.
 * A program keeps the signals it wants to see blocked otherwise, so that one
 * can only arrive while waiting and is noticed at once. NULL (the default):
 * interrupted waits go on.
 */
void proto_client_set_sigmask(struct proto_client *c, const sigset_t *mask);

/*
 * Writes len bytes as they are, waiting for room until deadline. Returns the
 * bytes written (len, or fewer when the deadline came first), or -errno when
 * the connection failed (-EPIPE, -ECONNRESET) or a wait was interrupted
 * (-EINTR).
 */
ssize_t proto_client_write(struct proto_client *c, const void *data, size_t len, uint64_t deadline);

/* As proto_client_write, but all or nothing: 0, -ETIMEDOUT or -errno. */
int proto_client_send(struct proto_client *c, const void *data, size_t len, uint64_t deadline);

/*
 * Receives what the peer sent, without returning lines (for callers that
 * watch several things and read lines with PROTO_CLIENT_NOW afterwards):
 * waits until deadline for something to arrive. Returns 0 when bytes came
 * or the peer closed just now (c->eof), -ETIMEDOUT, -EPIPE when it had
 * closed before, -ENOBUFS when buf is full of lines nobody read, or -errno.
 */
int proto_client_fill(struct proto_client *c, uint64_t deadline);

/*
 * The next line, newline excluded: its length, with *line pointing at it
 * (NUL-terminated, valid until the next read or close). Descriptors that
 * arrived with the line's bytes (at most PROTO_CLIENT_MAX_FDS; more are
 * closed) go to *fds (the caller owns them; fds->n is 0 when none came);
 * with fds NULL they are closed. Returns -ETIMEDOUT, -EPIPE once the peer
 * closed (an unfinished last line is dropped), -EMSGSIZE for a line longer
 * than PROTO_MAX_ANSWER_LINE (the connection is then of no further use), -EINTR
 * (proto_client_set_sigmask) or another -errno.
 */
ssize_t proto_client_read_line(struct proto_client *c, uint64_t deadline, const char **line,
                               struct proto_fds *fds);

/*
 * One request line and its answer: sends line (len bytes, its newline
 * included), then reads the next line as proto_client_read_line does. A
 * daemon that refuses the connection (permission, limits) answers and closes
 * at once, so the send may fail with -EPIPE or -ECONNRESET while the answer
 * is there to read: it is read all the same. Other send failures are
 * returned.
 */
ssize_t proto_client_exchange(struct proto_client *c, const char *line, size_t len,
                              uint64_t deadline, const char **answer, struct proto_fds *fds);

/*
 * proto_client_exchange with messages: sends the request
 * {"id":id,"cmd":cmd,"args":args} (args stolen; NULL for none) and parses the
 * answer into *answer (a new reference). Returns 0, -EBADMSG when the answer
 * is not a JSON object, -ENOMEM, or proto_client_exchange's errors.
 */
int proto_client_request(struct proto_client *c, json_int_t id, const char *cmd, json_t *args,
                         uint64_t deadline, json_t **answer, struct proto_fds *fds);

#endif
