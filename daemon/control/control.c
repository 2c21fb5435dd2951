#include "control.h"
#include "control_internal.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_MAX_PER_UID 16
#define DEFAULT_MAX_OUTPUT_QUEUE (1024 * 1024)
#define LISTEN_BACKLOG 64
#define IN_BUF_INITIAL 4096
/*
 * How long a closing connection may take to drain its output before it is
 * cut (the idle timeout instead, when that is shorter): a peer that stopped
 * reading must not keep a connection, and its owner, around forever.
 */
#define DRAIN_TIMEOUT_MS 5000
/* A full line plus its newline; a partial line that fills this is too long. */
#define IN_BUF_MAX (PROTO_MAX_LINE + 1)

enum conn_state {
  CONN_OPEN,     /* reading requests */
  CONN_DRAINING, /* no more reading; closes once the queued output is written */
  CONN_CLOSED    /* uv_close called; memory goes in the close callback */
};

struct control_conn {
  uv_pipe_t pipe; /* pipe.data points back here */
  struct control_server *server;
  struct control_conn *prev, *next;
  enum conn_state state;
  int counted; /* accepted within the limits; refused connections are not */
  pid_t pid;
  uid_t uid;
  char *in; /* the unfinished request line(s) read so far */
  size_t in_len, in_cap;
  uint64_t last_activity; /* uv_now() of the last byte read, or of the start of draining */
  int refs;               /* the server's, plus one per hold; the memory goes when it reaches 0 */
  int held;               /* a reply is deferred: later requests wait, so replies stay in order */
  void *owner;
  void (*on_close)(struct control_conn *conn, void *owner);
};

struct control_server {
  uv_loop_t *loop;
  uv_pipe_t listener;
  uv_timer_t timer;
  control_dispatch_fn dispatch;
  void *user;
  uint32_t max_connections;
  uint32_t max_per_uid;
  uint32_t reserved_privileged;
  size_t max_output_queue;
  uint64_t idle_timeout_ms;
  uint64_t drain_timeout_ms;
  struct control_conn *conns; /* every connection not yet closed */
  uint32_t nconns;            /* of them, those that count towards the limits */
  uint32_t handles;           /* uv handles not yet closed; s is freed at 0 after stop */
  int stopping;
  struct control_peers peers; /* who may connect (peers.c) */
  bool (*refuse_peer)(void *user, pid_t pid, char *why, size_t len);
  char path[SUN_PATH_MAX];
  dev_t dev; /* the socket we bound, so stop never unlinks somebody else's */
  ino_t ino;
};

struct write_req {
  uv_write_t req;
  char data[];
};

static uv_stream_t *conn_stream(struct control_conn *conn) { return (uv_stream_t *)&conn->pipe; }

static void handle_closed(struct control_server *s) {
  if (--s->handles == 0 && s->stopping)
    free(s);
}

static void server_handle_close_cb(uv_handle_t *h) { handle_closed(h->data); }

static void conn_unref(struct control_conn *conn) {
  if (--conn->refs == 0) {
    free(conn->in);
    free(conn);
  }
}

static void conn_close_cb(uv_handle_t *h) {
  struct control_conn *conn = h->data;
  struct control_server *s = conn->server;
  conn->server = NULL;
  conn_unref(conn);
  handle_closed(s);
}

static void conn_unlink(struct control_conn *conn) {
  struct control_server *s = conn->server;
  if (conn->prev != NULL)
    conn->prev->next = conn->next;
  else if (s->conns == conn)
    s->conns = conn->next;
  if (conn->next != NULL)
    conn->next->prev = conn->prev;
  conn->prev = conn->next = NULL;
}

/*
 * Closes at once, dropping queued output. The owner hears about it before
 * this returns; the memory stays valid until the close callback, so callers
 * up the stack may still look at conn->state.
 */
static void conn_close_now(struct control_conn *conn) {
  void (*on_close)(struct control_conn *, void *) = conn->on_close;

  if (conn->state == CONN_CLOSED)
    return;
  conn->state = CONN_CLOSED;
  conn_unlink(conn);
  if (conn->counted) {
    conn->counted = 0;
    conn->server->nconns--;
  }
  conn->on_close = NULL;
  if (on_close != NULL)
    on_close(conn, conn->owner);
  uv_close((uv_handle_t *)&conn->pipe, conn_close_cb);
}

static void conn_close_graceful(struct control_conn *conn) {
  if (conn->state != CONN_OPEN)
    return;
  conn->state = CONN_DRAINING;
  conn->last_activity = uv_now(conn->server->loop);
  uv_read_stop(conn_stream(conn));
  if (uv_stream_get_write_queue_size(conn_stream(conn)) == 0)
    conn_close_now(conn);
}

static void write_cb(uv_write_t *req, int status) {
  struct write_req *wr = (struct write_req *)req;
  struct control_conn *conn = req->handle->data;

  free(wr);
  if (conn->state == CONN_CLOSED)
    return;
  if (status < 0) {
    conn_close_now(conn); /* the peer went away */
  } else if (conn->state == CONN_DRAINING) {
    conn->last_activity = uv_now(conn->server->loop); /* the peer is still reading */
    if (uv_stream_get_write_queue_size(conn_stream(conn)) == 0)
      conn_close_now(conn);
  }
}

/*
 * Queues bytes in order. A peer whose unread output would go over the cap is
 * dropped instead; one answer longer than the cap still goes to a peer that
 * has taken everything before it.
 */
static int conn_queue(struct control_conn *conn, const char *data, size_t len) {
  struct control_server *s = conn->server;
  struct write_req *wr;
  uv_buf_t buf;
  int rc;

  if (conn->state == CONN_CLOSED)
    return -EPIPE;
  size_t queued = uv_stream_get_write_queue_size(conn_stream(conn));
  if (queued > 0 && queued + len > s->max_output_queue) {
    conn_close_now(conn);
    return -ENOBUFS;
  }
  wr = malloc(sizeof(*wr) + len);
  if (wr == NULL) {
    conn_close_now(conn);
    return -ENOMEM;
  }
  memcpy(wr->data, data, len);
  buf = uv_buf_init(wr->data, (unsigned)len);
  rc = uv_write(&wr->req, conn_stream(conn), &buf, 1, write_cb);
  if (rc < 0) {
    free(wr);
    conn_close_now(conn);
    return rc;
  }
  return 0;
}

/* Serialises msg; a line over the limit becomes a too_large error with the same id. */
static char *dump_checked(const json_t *msg, size_t *len, int replace_oversize) {
  char *line = proto_dump_line(msg, len);
  json_t *e;

  if (line == NULL || *len <= (size_t)PROTO_MAX_ANSWER_LINE + 1)
    return line;
  free(line);
  if (!replace_oversize)
    return NULL;
  e = proto_response_error(json_object_get(msg, "id"), PROTO_E_TOO_LARGE,
                           "the answer of %zu bytes is over the %d-byte line limit; ask for less "
                           "at a time",
                           *len - 1, PROTO_MAX_ANSWER_LINE);
  line = proto_dump_line(e, len);
  json_decref(e);
  return line;
}

static void conn_respond(struct control_conn *conn, const json_t *resp) {
  static const char oom[] =
      "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"runwayd is out of "
      "memory\"}}\n";
  size_t len = 0;
  char *line = dump_checked(resp, &len, 1);

  if (line == NULL) {
    (void)conn_queue(conn, oom, sizeof(oom) - 1);
    return;
  }
  (void)conn_queue(conn, line, len);
  free(line);
}

/* Sends an error line not tied to a request, then closes once it is written. */
static void conn_fail(struct control_conn *conn, enum proto_err code, const char *msg) {
  json_t *e = proto_response_error(NULL, code, "%s", msg);
  if (e != NULL) {
    conn_respond(conn, e);
    json_decref(e);
  }
  conn_close_graceful(conn);
}

static void conn_too_large(struct control_conn *conn) {
  char msg[160];
  snprintf(msg, sizeof(msg),
           "request line is over %d bytes; send one JSON object of at most %d bytes per line",
           PROTO_MAX_LINE, PROTO_MAX_LINE);
  conn_fail(conn, PROTO_E_TOO_LARGE, msg);
}

static void conn_handle_line(struct control_conn *conn, const char *line, size_t len) {
  struct control_server *s = conn->server;
  struct proto_request req;
  char err[512];
  enum proto_err rc;
  json_t *resp;

  rc = proto_parse_request(line, len, &req, err, sizeof(err));
  if (rc != PROTO_OK)
    resp = proto_response_error(req.id, rc, "%s", err);
  else
    resp = s->dispatch(s->user, conn, &req);
  if (resp != NULL) {
    if (conn->state == CONN_OPEN)
      conn_respond(conn, resp);
    json_decref(resp);
  }
  proto_request_free(&req);
}

/*
 * Handles every complete line in the input buffer (at EOF also the
 * unterminated rest), in order, and keeps the partial line that follows.
 */
static void conn_process(struct control_conn *conn, int eof) {
  size_t start = 0;

  while (conn->state == CONN_OPEN && !conn->held && start < conn->in_len) {
    char *nl = memchr(conn->in + start, '\n', conn->in_len - start);
    size_t end, next, len;

    if (nl == NULL && !eof)
      break;
    end = nl != NULL ? (size_t)(nl - conn->in) : conn->in_len;
    next = nl != NULL ? end + 1 : end;
    len = end - start;
    if (len > 0 && conn->in[end - 1] == '\r')
      len--;
    if (len > PROTO_MAX_LINE) {
      conn_too_large(conn);
      return;
    }
    /* Blank lines are allowed so that people can talk to the socket by hand. */
    if (len > 0)
      conn_handle_line(conn, conn->in + start, len);
    start = next;
  }
  if (conn->state != CONN_OPEN)
    return;
  memmove(conn->in, conn->in + start, conn->in_len - start);
  conn->in_len -= start;
  if (conn->in_len > PROTO_MAX_LINE)
    conn_too_large(conn);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct control_conn *conn = h->data;

  /* Grow before the free space gets small, so that reads stay large. */
  if (conn->in_cap - conn->in_len < IN_BUF_INITIAL / 4 && conn->in_cap < IN_BUF_MAX) {
    size_t cap = conn->in_cap == 0 ? IN_BUF_INITIAL : conn->in_cap * 2;
    char *in;
    if (cap > IN_BUF_MAX)
      cap = IN_BUF_MAX;
    in = realloc(conn->in, cap);
    if (in != NULL) {
      conn->in = in;
      conn->in_cap = cap;
    }
  }
  /* A zero-length buffer makes libuv report UV_ENOBUFS to read_cb. */
  buf->base = conn->in != NULL ? conn->in + conn->in_len : NULL;
  buf->len = conn->in_cap - conn->in_len;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct control_conn *conn = stream->data;

  if (conn->state != CONN_OPEN || nread == 0)
    return;
  if (nread > 0) {
    conn->in_len += (size_t)nread;
    conn->last_activity = uv_now(conn->server->loop);
    conn_process(conn, 0);
  } else if (nread == UV_EOF) {
    /* A client may half-close after its last request; answer it, then close. */
    conn_process(conn, 1);
    conn_close_graceful(conn);
  } else if (nread == UV_ENOBUFS && conn->in_cap == IN_BUF_MAX) {
    conn_too_large(conn);
  } else {
    conn_close_now(conn);
  }
}

static uint32_t conns_of_uid(const struct control_server *s, uid_t uid) {
  uint32_t n = 0;
  for (const struct control_conn *c = s->conns; c != NULL; c = c->next)
    if (c->counted && c->uid == uid)
      n++;
  return n;
}

static void connection_cb(uv_stream_t *listener, int status) {
  struct control_server *s = listener->data;
  struct control_conn *conn;
  struct ucred cred;
  socklen_t credlen = sizeof(cred);
  uv_os_fd_t fd;
  char msg[200];

  if (status < 0 || s->stopping)
    return;
  conn = calloc(1, sizeof(*conn));
  if (conn == NULL)
    return;
  conn->server = s;
  conn->refs = 1;
  conn->pid = 0;
  conn->uid = (uid_t)-1;
  uv_pipe_init(s->loop, &conn->pipe, 0);
  conn->pipe.data = conn;
  s->handles++;
  conn->state = CONN_OPEN;
  conn->last_activity = uv_now(s->loop);
  conn->next = s->conns;
  if (s->conns != NULL)
    s->conns->prev = conn;
  s->conns = conn;

  if (uv_accept(listener, conn_stream(conn)) != 0 ||
      uv_fileno((uv_handle_t *)&conn->pipe, &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) != 0) {
    conn_close_now(conn);
    return;
  }
  conn->pid = cred.pid;
  conn->uid = cred.uid;

  /*
   * The socket's mode and group already keep strangers out; this check also
   * holds when the file's permissions were loosened, or the socket was handed
   * to us (socket activation) with others. It comes before the limits, so an
   * unauthorised peer learns nothing about the daemon's connections.
   */
  if (!control__peer_allowed(&s->peers, fd, cred.uid, cred.gid)) {
    char denied[512];
    control__refusal(&s->peers, cred.uid, cred.gid, denied, sizeof(denied));
    conn_fail(conn, PROTO_E_PERMISSION, denied);
    return;
  }

  if (s->refuse_peer != NULL && s->refuse_peer(s->user, cred.pid, msg, sizeof(msg))) {
    conn_fail(conn, PROTO_E_PERMISSION, msg);
    return;
  }
  /* The last few connections are kept for root and the daemon's user, who can then clean up. */
  bool privileged = cred.uid == 0 || cred.uid == s->peers.euid;
  uint32_t room = privileged || s->reserved_privileged >= s->max_connections
                      ? s->max_connections
                      : s->max_connections - s->reserved_privileged;
  if (s->nconns >= room) {
    if (privileged || s->reserved_privileged == 0)
      snprintf(msg, sizeof(msg),
               "runwayd has %u connections, its limit; close idle clients and try again",
               s->nconns);
    else
      snprintf(msg, sizeof(msg),
               "runwayd has %u connections; the other %u are kept for root and its own user; "
               "close idle clients and try again",
               s->nconns, s->max_connections - room);
    conn_fail(conn, PROTO_E_LIMIT, msg);
    return;
  }
  if (conns_of_uid(s, conn->uid) >= s->max_per_uid) {
    snprintf(msg, sizeof(msg),
             "uid %u has %u connections to runwayd, the per-user limit; close some and try again",
             (unsigned)conn->uid, s->max_per_uid);
    conn_fail(conn, PROTO_E_LIMIT, msg);
    return;
  }
  conn->counted = 1;
  s->nconns++;
  if (uv_read_start(conn_stream(conn), alloc_cb, read_cb) != 0)
    conn_close_now(conn);
}

/*
 * Housekeeping: closes ownerless connections idle for idle_timeout_ms, and
 * closing ones whose peer has not taken their output for drain_timeout_ms.
 */
static void timer_cb(uv_timer_t *t) {
  struct control_server *s = t->data;
  uint64_t now = uv_now(s->loop);
  struct control_conn *c, *next;
  char msg[160];

  for (c = s->conns; c != NULL; c = next) {
    uint64_t quiet = now - c->last_activity;
    next = c->next;
    if (c->state == CONN_DRAINING && quiet >= s->drain_timeout_ms) {
      conn_close_now(c);
      /* on_close callbacks may close others too: start over (each pass closes one). */
      next = s->conns;
    } else if (c->state == CONN_OPEN && s->idle_timeout_ms > 0 && quiet >= s->idle_timeout_ms &&
               c->owner == NULL && c->on_close == NULL && !c->held) {
      snprintf(msg, sizeof(msg),
               "no request for %llu ms, so runwayd closed the connection; reconnect to send more",
               (unsigned long long)s->idle_timeout_ms);
      conn_fail(c, PROTO_E_LIMIT, msg);
      next = s->conns;
    }
  }
}

int control_server_start(uv_loop_t *loop, const struct control_config *cfg,
                         control_dispatch_fn dispatch, void *user, struct control_server **out,
                         char *err, size_t errlen) {
  struct control_server *s = NULL;
  struct sockaddr_un addr;
  struct stat st;
  mode_t old_umask;
  int fd = -1, bound = 0, rc;

  if (out != NULL)
    *out = NULL;
  if (loop == NULL || cfg == NULL || cfg->path == NULL || cfg->path[0] == '\0' ||
      dispatch == NULL || out == NULL) {
    proto_set_err(err, errlen, "control_server_start: missing loop, config, path or dispatch");
    return -EINVAL;
  }
  if (strlen(cfg->path) >= SUN_PATH_MAX) {
    proto_set_err(err, errlen, "socket path %s is longer than %zu bytes; use a shorter --socket",
                  cfg->path, SUN_PATH_MAX - 1);
    return -ENAMETOOLONG;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    proto_set_err(err, errlen, "out of memory");
    return -ENOMEM;
  }
  s->loop = loop;
  s->dispatch = dispatch;
  s->user = user;
  s->max_connections = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
  s->max_per_uid = cfg->max_per_uid ? cfg->max_per_uid : DEFAULT_MAX_PER_UID;
  s->reserved_privileged = cfg->reserved_privileged;
  s->refuse_peer = cfg->refuse_peer;
  s->max_output_queue = cfg->max_output_queue ? cfg->max_output_queue : DEFAULT_MAX_OUTPUT_QUEUE;
  s->idle_timeout_ms = cfg->idle_timeout_ms;
  s->drain_timeout_ms = DRAIN_TIMEOUT_MS;
  control__peers_init(&s->peers, cfg->group);
  if (s->idle_timeout_ms > 0 && s->idle_timeout_ms < s->drain_timeout_ms)
    s->drain_timeout_ms = s->idle_timeout_ms;
  memcpy(s->path, cfg->path, strlen(cfg->path) + 1);

  rc = control__ensure_parent_dir(s->path, err, errlen);
  if (rc != 0)
    goto fail;
  rc = control__clear_path(s->path, err, errlen);
  if (rc != 0)
    goto fail;

  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    rc = -errno;
    proto_set_err(err, errlen, "socket: %s", strerror(-rc));
    goto fail;
  }
  control__fill_addr(&addr, s->path);
  /*
   * bind() creates the file with the umask applied. Under a umask that masks
   * everything it is born inaccessible, and chmod below only opens it up to
   * cfg->mode: there is no moment at which it is wider than asked.
   */
  old_umask = umask(0777);
  rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
  if (rc != 0)
    rc = -errno;
  umask(old_umask);
  if (rc != 0) {
    if (rc == -EADDRINUSE)
      proto_set_err(err, errlen, "another runwayd is listening on %s; stop it or use --socket",
                    s->path);
    else
      proto_set_err(err, errlen, "cannot bind %s: %s", s->path, strerror(-rc));
    goto fail;
  }
  bound = 1;
  if (cfg->group != (gid_t)-1 && lchown(s->path, (uid_t)-1, cfg->group) != 0) {
    rc = -errno;
    proto_set_err(err, errlen,
                  "cannot give %s to group %u: %s; check the group or run as its member", s->path,
                  (unsigned)cfg->group, strerror(-rc));
    goto fail;
  }
  if (chmod(s->path, cfg->mode & 0777) != 0 || lstat(s->path, &st) != 0) {
    rc = -errno;
    proto_set_err(err, errlen, "cannot set the mode of %s: %s", s->path, strerror(-rc));
    goto fail;
  }
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  if (listen(fd, LISTEN_BACKLOG) != 0) {
    rc = -errno;
    proto_set_err(err, errlen, "cannot listen on %s: %s", s->path, strerror(-rc));
    goto fail;
  }

  rc = uv_pipe_init(loop, &s->listener, 0);
  if (rc != 0) {
    proto_set_err(err, errlen, "uv_pipe_init: %s", uv_strerror(rc));
    goto fail;
  }
  s->listener.data = s;
  s->handles++;
  rc = uv_pipe_open(&s->listener, fd);
  if (rc != 0) {
    proto_set_err(err, errlen, "uv_pipe_open: %s", uv_strerror(rc));
    goto fail;
  }
  fd = -1; /* the handle owns it now */
  rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, connection_cb);
  if (rc != 0) {
    proto_set_err(err, errlen, "cannot listen on %s: %s", s->path, uv_strerror(rc));
    goto fail;
  }
  /* Checks four times per timeout, so a timeout fires at most a quarter late. */
  uint64_t period = s->drain_timeout_ms / 4;
  period = period < 10 ? 10 : period > 1000 ? 1000 : period;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->handles++;
  uv_timer_start(&s->timer, timer_cb, period, period);
  uv_unref((uv_handle_t *)&s->timer); /* housekeeping alone does not keep the loop alive */
  *out = s;
  return 0;

fail:
  if (fd >= 0)
    (void)close(fd); /* never listened on by anyone */
  if (bound)
    (void)unlink(s->path);
  if (s->handles > 0) {
    /* The listener handle is initialised: it frees s from its close callback. */
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->listener, server_handle_close_cb);
  } else {
    free(s);
  }
  return rc;
}

void control_server_stop(struct control_server *s) {
  struct stat st;

  if (s == NULL || s->stopping)
    return;
  s->stopping = 1;
  while (s->conns != NULL)
    conn_close_now(s->conns);
  uv_close((uv_handle_t *)&s->listener, server_handle_close_cb);
  uv_close((uv_handle_t *)&s->timer, server_handle_close_cb);
  if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
    (void)unlink(s->path);
}

uint32_t control_server_connections(const struct control_server *s) {
  return s != NULL ? s->nconns : 0;
}

int control_conn_send(struct control_conn *conn, const json_t *msg) {
  size_t len = 0;
  char *line;
  int rc;

  if (conn == NULL || msg == NULL)
    return -EINVAL;
  if (conn->state != CONN_OPEN)
    return -EPIPE;
  line = dump_checked(msg, &len, 0);
  if (line == NULL)
    return len > (size_t)PROTO_MAX_ANSWER_LINE + 1 ? -EMSGSIZE : -ENOMEM;
  rc = conn_queue(conn, line, len);
  free(line);
  return rc;
}

int control_conn_send_with_fds(struct control_conn *conn, const json_t *msg, const int *fds,
                               size_t n_fds) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(CONTROL_MAX_FDS * sizeof(int))];
  } cbuf;
  struct msghdr mh;
  struct iovec iov;
  struct cmsghdr *cm;
  uv_os_fd_t sock;
  size_t len = 0;
  ssize_t n;
  char *line = NULL;
  int rc;

  if (conn == NULL || msg == NULL || fds == NULL || n_fds == 0 || n_fds > CONTROL_MAX_FDS)
    return -EINVAL;
  for (size_t i = 0; i < n_fds; i++)
    if (fds[i] < 0)
      return -EINVAL;
  if (conn->state != CONN_OPEN)
    return -EPIPE;
  /* Bytes libuv still holds would otherwise arrive after ours. */
  if (uv_stream_get_write_queue_size(conn_stream(conn)) > 0)
    return -EAGAIN;
  if (uv_fileno((uv_handle_t *)&conn->pipe, &sock) != 0)
    return -EBADF;
  line = dump_checked(msg, &len, 0);
  if (line == NULL)
    return len > (size_t)PROTO_MAX_ANSWER_LINE + 1 ? -EMSGSIZE : -ENOMEM;

  memset(&mh, 0, sizeof(mh));
  memset(&cbuf, 0, sizeof(cbuf));
  iov.iov_base = line;
  iov.iov_len = len;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf.buf;
  mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
  cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
  memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));

  do
    n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    rc = -errno;
    if (rc == -EWOULDBLOCK)
      rc = -EAGAIN; /* nothing was sent; the caller may retry later */
    else
      conn_close_now(conn);
    goto out;
  }
  rc = 0;
  /* The fds went with the first byte; the rest of the line follows in order. */
  if ((size_t)n < len)
    rc = conn_queue(conn, line + n, len - (size_t)n);
out:
  free(line);
  return rc;
}

pid_t control_conn_pid(const struct control_conn *conn) { return conn->pid; }

uid_t control_conn_uid(const struct control_conn *conn) { return conn->uid; }

size_t control_conn_queued(const struct control_conn *conn) {
  return uv_stream_get_write_queue_size((const uv_stream_t *)&conn->pipe);
}

int control_conn_set_owner(struct control_conn *conn, void *owner,
                           void (*on_close)(struct control_conn *conn, void *owner)) {
  if (conn == NULL || conn->state == CONN_CLOSED)
    return -EPIPE;
  /* One owner per connection: a second one would leave the first holding a freed conn. */
  if (owner != NULL && conn->owner != NULL && conn->owner != owner)
    return -EBUSY;
  conn->owner = owner;
  conn->on_close = on_close;
  return 0;
}

void *control_conn_owner(const struct control_conn *conn) {
  return conn != NULL && conn->state != CONN_CLOSED ? conn->owner : NULL;
}

struct control_conn *control_conn_hold(struct control_conn *conn) {
  if (conn == NULL || conn->state != CONN_OPEN)
    return NULL;
  conn->held = 1;
  conn->refs++;
  /* Nothing more is read while the reply is pending: the input stays bounded. */
  uv_read_stop(conn_stream(conn));
  return conn;
}

int control_conn_reply(struct control_conn *conn, const json_t *msg) {
  int rc = -EPIPE;
  if (conn == NULL)
    return -EINVAL;
  if (conn->state == CONN_OPEN && conn->held) {
    conn->held = 0;
    conn_respond(conn, msg);
    rc = 0;
    if (conn->state == CONN_OPEN) {
      conn->last_activity = uv_now(conn->server->loop);
      /* Requests that arrived meanwhile are answered now, then reading resumes. */
      conn_process(conn, 0);
      if (conn->state == CONN_OPEN && !conn->held &&
          uv_read_start(conn_stream(conn), alloc_cb, read_cb) != 0)
        conn_close_now(conn);
    }
  }
  conn_unref(conn);
  return rc;
}

void control_conn_close(struct control_conn *conn) {
  if (conn != NULL)
    conn_close_graceful(conn);
}
