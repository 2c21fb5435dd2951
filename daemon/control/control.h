/*
 * The control server: a Unix stream socket on the libuv loop speaking JSON
 * lines (proto/protocol.h). It owns connections, framing and limits; command
 * handling is the dispatch callback's job. Control thread only.
 */
#ifndef RUNWAY_DAEMON_CONTROL_H
#define RUNWAY_DAEMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "protocol.h"

struct control_server;
struct control_conn;

struct control_config {
  const char *path;             /* socket path (see proto_socket_path) */
  mode_t mode;                  /* 0660 for a system instance, 0600 for a user instance */
  gid_t group;                  /* group that owns the socket and may connect; (gid_t)-1: none */
  uint32_t max_connections;     /* total; 0: 64 */
  uint32_t max_per_uid;         /* 0: 16 */
  uint32_t reserved_privileged; /* of the total, kept for root and the daemon's own uid */
  size_t max_output_queue;      /* bytes queued to a client before it is dropped; 0: 1 MiB */
  uint64_t idle_timeout_ms;     /* 0: never; connections with an owner are exempt */
  /*
   * Optional: refuses an allowed peer by its pid (permission_denied with
   * why); runwayd keeps its managed workers off the socket this way.
   */
  bool (*refuse_peer)(void *user, pid_t pid, char *why, size_t len);
};

/*
 * Handles one valid request. Returns the response to send (built with
 * proto_response_ok / proto_response_error; the server sends and frees it), or
 * NULL when the handler already replied itself (control_conn_send_with_fds).
 */
typedef json_t *(*control_dispatch_fn)(void *user, struct control_conn *conn,
                                       const struct proto_request *req);

/*
 * Who may connect. The socket file is created with cfg->mode (0660 for a
 * system instance, 0600 for a user instance) and, when cfg->group is set,
 * given to that group. Each peer is then checked with SO_PEERCRED at accept:
 * only uid 0, the daemon's effective uid, and members of cfg->group (by the
 * peer's primary gid, or a supplementary group from SO_PEERGROUPS; on kernels
 * before 4.13 the primary gid only) are served. Anybody else gets one
 * permission_denied error line saying how to get access, and the connection
 * closes. Refused peers do not count towards the connection limits.
 */

/*
 * Creates the socket (refusing a symlink or a live socket at path, replacing
 * a stale one, creating the parent directory 0755 when missing), applies
 * mode and group, and starts accepting. Returns 0 or -errno with a message.
 */
int control_server_start(uv_loop_t *loop, const struct control_config *cfg,
                         control_dispatch_fn dispatch, void *user, struct control_server **out,
                         char *err, size_t errlen);

/*
 * Closes every connection (their on_close callbacks run before this
 * returns), stops listening and unlinks the socket if it is still the one it
 * bound. The memory goes once the loop has run the close callbacks: run the
 * loop (uv_run) before uv_loop_close.
 */
void control_server_stop(struct control_server *s);

/* Number of open connections. */
uint32_t control_server_connections(const struct control_server *s);

/*
 * Queues one message line on conn. Returns 0, or -ENOBUFS when the client's
 * queue is over the limit (the connection is then closed: a slow reader
 * never blocks the loop), or -EPIPE when it is closing.
 */
int control_conn_send(struct control_conn *conn, const json_t *msg);

/* Most descriptors one message carries. */
#define CONTROL_MAX_FDS 2

/*
 * Sends msg with fds[0..n_fds) attached (one SCM_RIGHTS message, in this
 * order) on the first byte. Only when nothing else is queued on conn;
 * returns -EAGAIN otherwise, -EINVAL for no or too many descriptors.
 */
int control_conn_send_with_fds(struct control_conn *conn, const json_t *msg, const int *fds,
                               size_t n_fds);

/* Peer credentials (SO_PEERCRED) taken at accept. */
pid_t control_conn_pid(const struct control_conn *conn);
uid_t control_conn_uid(const struct control_conn *conn);

/* Bytes queued on conn that the kernel has not taken yet. */
size_t control_conn_queued(const struct control_conn *conn);

/*
 * Attaches an owner to the connection: on_close(conn, owner) runs once when the
 * connection closes for any reason, before conn is freed. Used by attached
 * workers and subscribers. Exempts the connection from the idle timeout.
 * (NULL, NULL) detaches. on_close runs synchronously where the close happens:
 * inside control_conn_close when nothing is queued, inside control_conn_send
 * when the queue overflows, inside control_server_stop. After on_close the
 * conn pointer must not be used again. A connection has one owner at most:
 * returns 0, -EBUSY when another owner holds it, -EPIPE when it is closing.
 */
int control_conn_set_owner(struct control_conn *conn, void *owner,
                           void (*on_close)(struct control_conn *conn, void *owner));

/* The owner set with control_conn_set_owner, or NULL. */
void *control_conn_owner(const struct control_conn *conn);

/*
 * Defers the reply to the request being dispatched: the dispatch callback
 * returns NULL, and later control_conn_reply() answers. Until then the
 * connection reads nothing more, so replies stay in request order, and it is
 * exempt from the idle timeout. Returns conn (kept allocated even if it
 * closes meanwhile) or NULL when it is closing.
 */
struct control_conn *control_conn_hold(struct control_conn *conn);

/*
 * Sends the deferred reply (dropped if the connection closed meanwhile),
 * resumes reading, and releases the hold. Returns 0, or -EPIPE when the
 * connection had closed.
 */
int control_conn_reply(struct control_conn *conn, const json_t *msg);

/*
 * Stops reading and closes the connection once the queued output is written,
 * or when the peer has taken none of it for 5 s (or the idle timeout, when
 * shorter). Sends after this return -EPIPE.
 */
void control_conn_close(struct control_conn *conn);

#endif
