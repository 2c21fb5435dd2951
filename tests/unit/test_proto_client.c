/*
 * proto/client: connecting, lines split and joined across reads, the line
 * limit, EOF, deadlines, descriptors passed with SCM_RIGHTS, the answer of a
 * peer that closed before reading the request, interrupted waits. The peer
 * is the other end of a socketpair, written to by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "clock.h"
#include "protocol.h"

/* A client on one end of a socketpair; the test writes the peer's side on *peer. */
static void pair(struct proto_client *c, int *peer) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(proto_client_adopt(c, sv[0]), 0);
  *peer = sv[1];
}

static void put(int fd, const char *s) {
  assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Sends text with fd attached to its first byte, as runwayd does. */
static void put_with_fd(int sock, const char *text, int fd, int copies) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } control;
  int fds[4] = {fd, fd, fd, fd};
  struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)copies)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)copies);
  memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)copies);
  assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)strlen(text));
}

static void expect_line(struct proto_client *c, const char *want) {
  const char *line;
  ssize_t n = proto_client_read_line(c, base_mono_ms() + 2000, &line, NULL);
  if (n < 0)
    fail_msg("expected \"%s\", got %s", want, strerror((int)-n));
  assert_int_equal(n, strlen(want));
  assert_string_equal(line, want);
}

/* Descriptors open in this process: a descriptor the client should close must not stay. */
static int open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    n += fcntl(fd, F_GETFD) != -1;
  return n;
}

static void test_connect_errors(void **state) {
  (void)state;
  struct proto_client c = PROTO_CLIENT_INIT;
  char path[] = "/tmp/rw-client-XXXXXX";
  char sock_path[64];

  int fds = open_fds();
  proto_client_close(&c); /* never connected: closes nothing (fd 0 least of all) */
  assert_int_equal(open_fds(), fds);
  assert_non_null(mkdtemp(path));
  snprintf(sock_path, sizeof(sock_path), "%s/control.sock", path);
  assert_int_equal(proto_client_connect(&c, sock_path, base_mono_ms() + 1000), -ENOENT);
  assert_int_equal(c.fd, -1);
  proto_client_close(&c);

  /* Bound but not listening. */
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(proto_client_connect(&c, sock_path, PROTO_CLIENT_NOW), -ECONNREFUSED);

  /* Listening: connected, with or without time to wait. */
  assert_int_equal(listen(s, 4), 0);
  assert_int_equal(proto_client_connect(&c, sock_path, PROTO_CLIENT_NOW), 0);
  assert_true(c.fd >= 0);
  assert_true(fcntl(c.fd, F_GETFL) & O_NONBLOCK);
  proto_client_close(&c);
  assert_int_equal(proto_client_connect(&c, sock_path, PROTO_CLIENT_FOREVER), 0);
  assert_true(fcntl(c.fd, F_GETFL) & O_NONBLOCK);
  proto_client_close(&c);
  proto_client_close(&c); /* twice is harmless */
  close(s);
  unlink(sock_path);
  rmdir(path);

  char longer[200];
  memset(longer, 'a', sizeof(longer) - 1);
  longer[0] = '/';
  longer[sizeof(longer) - 1] = '\0';
  assert_int_equal(proto_client_connect(&c, longer, PROTO_CLIENT_NOW), -ENAMETOOLONG);
}

static void test_lines(void **state) {
  (void)state;
  struct proto_client c;
  const char *line;
  int peer;

  pair(&c, &peer);
  /* Nothing there: PROTO_CLIENT_NOW does not wait, a deadline is waited for. */
  assert_int_equal(proto_client_read_line(&c, PROTO_CLIENT_NOW, &line, NULL), -ETIMEDOUT);
  uint64_t t0 = base_mono_ms();
  assert_int_equal(proto_client_read_line(&c, t0 + 50, &line, NULL), -ETIMEDOUT);
  assert_true(base_mono_ms() - t0 >= 50);

  /* Split across writes, several in one write, empty lines. */
  put(peer, "{\"id\":1,");
  assert_int_equal(proto_client_read_line(&c, PROTO_CLIENT_NOW, &line, NULL), -ETIMEDOUT);
  put(peer, "\"ok\":true}\nsecond\n\nthird");
  expect_line(&c, "{\"id\":1,\"ok\":true}");
  expect_line(&c, "second");
  expect_line(&c, "");
  assert_int_equal(proto_client_read_line(&c, PROTO_CLIENT_NOW, &line, NULL), -ETIMEDOUT);
  put(peer, " line\n");
  expect_line(&c, "third line");

  /* The longest line there may be, then one byte more. */
  char *big = malloc(PROTO_MAX_ANSWER_LINE + 2);
  memset(big, 'x', PROTO_MAX_ANSWER_LINE);
  big[PROTO_MAX_ANSWER_LINE] = '\n';
  big[PROTO_MAX_ANSWER_LINE + 1] = '\0';
  int fl = fcntl(peer, F_GETFL);
  fcntl(peer, F_SETFL, fl | O_NONBLOCK);
  size_t off = 0;
  ssize_t n = 0;
  while (off < PROTO_MAX_ANSWER_LINE + 1) {
    ssize_t w = write(peer, big + off, PROTO_MAX_ANSWER_LINE + 1 - off);
    if (w > 0)
      off += (size_t)w;
    n = proto_client_read_line(&c, PROTO_CLIENT_NOW, &line, NULL);
    if (n >= 0)
      break;
    assert_int_equal(n, -ETIMEDOUT);
  }
  if (n < 0)
    n = proto_client_read_line(&c, base_mono_ms() + 2000, &line, NULL);
  assert_int_equal(n, PROTO_MAX_ANSWER_LINE);
  assert_int_equal(strlen(line), PROTO_MAX_ANSWER_LINE);

  big[PROTO_MAX_ANSWER_LINE] = 'x'; /* no newline within the limit */
  off = 0;
  for (;;) {
    ssize_t w = write(peer, big + off, PROTO_MAX_ANSWER_LINE + 1 - off);
    if (w > 0)
      off += (size_t)w;
    n = proto_client_read_line(&c, PROTO_CLIENT_NOW, &line, NULL);
    if (n != -ETIMEDOUT)
      break;
  }
  assert_int_equal(n, -EMSGSIZE);
  free(big);
  close(peer);
  proto_client_close(&c);
}

static void test_eof(void **state) {
  (void)state;
  struct proto_client c;
  const char *line;
  int peer;

  pair(&c, &peer);
  put(peer, "last\nunfinished");
  close(peer);
  expect_line(&c, "last");
  assert_int_equal(proto_client_read_line(&c, base_mono_ms() + 2000, &line, NULL), -EPIPE);
  assert_true(c.eof);
  assert_int_equal(proto_client_read_line(&c, PROTO_CLIENT_NOW, &line, NULL), -EPIPE);
  assert_int_equal(proto_client_fill(&c, PROTO_CLIENT_NOW), -EPIPE);
  proto_client_close(&c);

  /* fill: what came, nothing, the end; and a buffer full of unread lines. */
  pair(&c, &peer);
  assert_int_equal(proto_client_fill(&c, PROTO_CLIENT_NOW), -ETIMEDOUT);
  put(peer, "a\n");
  assert_int_equal(proto_client_fill(&c, base_mono_ms() + 2000), 0);
  assert_int_equal(c.len, 2);
  expect_line(&c, "a");
  char chunk[4096];
  memset(chunk, '\n', sizeof(chunk));
  fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
  int rc;
  do {
    ssize_t w = write(peer, chunk, sizeof(chunk));
    (void)w; /* the socket may be full: then fill makes room */
    rc = proto_client_fill(&c, PROTO_CLIENT_NOW);
  } while (rc == 0);
  assert_int_equal(rc, -ENOBUFS);
  assert_int_equal(c.len, c.cap);
  close(peer);
  proto_client_close(&c);
}

static void test_passed_fds(void **state) {
  (void)state;
  struct proto_client c;
  const char *line;
  struct proto_fds got;
  int peer;

  int memfd = memfd_create("rw-client-test", MFD_CLOEXEC);
  assert_true(memfd >= 0);
  assert_int_equal(write(memfd, "segment", 7), 7);

  /* The descriptor goes with the line whose bytes it came with, not an earlier one. */
  pair(&c, &peer);
  put(peer, "before\n");
  put_with_fd(peer, "{\"ok\":true}\n", memfd, 1);
  assert_int_equal(proto_client_read_line(&c, base_mono_ms() + 2000, &line, &got), 6);
  assert_int_equal(got.n, 0);
  assert_int_equal(proto_client_read_line(&c, base_mono_ms() + 2000, &line, &got), 11);
  assert_int_equal(got.n, 1);
  assert_int_not_equal(got.fd[0], memfd);
  assert_true(fcntl(got.fd[0], F_GETFD) & FD_CLOEXEC);
  char text[8] = {0};
  assert_int_equal(pread(got.fd[0], text, 7, 0), 7);
  assert_string_equal(text, "segment");
  proto_fds_close(&got);
  assert_int_equal(got.n, 0);

  /* Unwanted, extra or never read: closed, none left behind. */
  int before = open_fds();
  put_with_fd(peer, "one\n", memfd, 1);
  expect_line(&c, "one");
  /* A segment's two files in one message: both kept, in order; a third and fourth closed. */
  put_with_fd(peer, "two\n", memfd, 4);
  assert_int_equal(proto_client_read_line(&c, base_mono_ms() + 2000, &line, &got), 3);
  assert_int_equal(got.n, PROTO_CLIENT_MAX_FDS);
  proto_fds_close(&got);
  put_with_fd(peer, "three\n", memfd, 2);
  assert_int_equal(proto_client_fill(&c, base_mono_ms() + 2000), 0);
  assert_int_equal(c.passed.n, 2);
  close(peer);
  proto_client_close(&c);
  assert_int_equal(open_fds(), before - 2); /* the pair's two ends */
  close(memfd);
}

static void test_exchange(void **state) {
  (void)state;
  struct proto_client c;
  const char *answer;
  json_t *resp;
  int peer;

  /* A peer that answered and hung up before reading: the send fails, the answer is read. */
  pair(&c, &peer);
  put(peer, "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"limit\",\"message\":\"m\"}}\n");
  close(peer);
  const char req[] = "{\"id\":1,\"cmd\":\"status\"}\n";
  ssize_t n = proto_client_exchange(&c, req, sizeof(req) - 1, base_mono_ms() + 2000, &answer, NULL);
  assert_true(n > 0);
  assert_non_null(strstr(answer, "\"limit\""));
  proto_client_close(&c);

  /* Hung up without a word. */
  pair(&c, &peer);
  close(peer);
  assert_int_equal(
      proto_client_exchange(&c, req, sizeof(req) - 1, base_mono_ms() + 2000, &answer, NULL),
      -EPIPE);
  proto_client_close(&c);

  /* A request as a message: what goes out, and what comes back. */
  pair(&c, &peer);
  put(peer, "{\"id\":7,\"ok\":true,\"result\":{}}\n");
  assert_int_equal(proto_client_request(&c, 7, "slot.list", json_pack("{s:s}", "a", "b"),
                                        base_mono_ms() + 2000, &resp, NULL),
                   0);
  assert_true(json_is_true(json_object_get(resp, "ok")));
  json_decref(resp);
  char sent[256] = {0};
  assert_true(read(peer, sent, sizeof(sent) - 1) > 0);
  assert_string_equal(sent, "{\"id\":7,\"cmd\":\"slot.list\",\"args\":{\"a\":\"b\"}}\n");
  put(peer, "[1,2]\n");
  assert_int_equal(proto_client_request(&c, 8, "status", NULL, base_mono_ms() + 2000, &resp, NULL),
                   -EBADMSG);
  assert_null(resp);
  memset(sent, 0, sizeof(sent));
  assert_true(read(peer, sent, sizeof(sent) - 1) > 0);
  assert_string_equal(sent, "{\"id\":8,\"cmd\":\"status\"}\n");

  /* detach: the connection outlives the client. */
  int fd = proto_client_detach(&c);
  assert_true(fd >= 0);
  assert_int_equal(c.fd, -1);
  assert_int_equal(write(fd, "x", 1), 1);
  char x;
  assert_int_equal(read(peer, &x, 1), 1);
  close(fd);
  close(peer);
}

static void test_write_deadline(void **state) {
  (void)state;
  struct proto_client c;
  int peer;
  pair(&c, &peer);
  /* A peer that never reads: the socket fills, the write stops at the deadline. */
  size_t len = 8 << 20;
  char *junk = calloc(1, len);
  uint64_t t0 = base_mono_ms();
  ssize_t n = proto_client_write(&c, junk, len, t0 + 50);
  assert_true(n > 0 && (size_t)n < len);
  assert_true(base_mono_ms() - t0 >= 50);
  assert_int_equal(proto_client_send(&c, junk, len, PROTO_CLIENT_NOW), -ETIMEDOUT);
  close(peer);
  /* Gone: the error, not a signal (SIGPIPE would end the test). */
  n = proto_client_write(&c, junk, len, base_mono_ms() + 2000);
  assert_true(n == -EPIPE || n == -ECONNRESET);
  free(junk);
  proto_client_close(&c);
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) {
  (void)sig;
  got_signal = 1;
}

static void test_sigmask(void **state) {
  (void)state;
  struct proto_client c;
  struct sigaction sa = {.sa_handler = on_signal};
  sigset_t usr1, old, wait;
  const char *line;
  int peer;

  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  wait = old;
  sigdelset(&wait, SIGUSR1);

  pair(&c, &peer);
  proto_client_set_sigmask(&c, &wait);
  /* Blocked until the wait: then it interrupts it at once. */
  raise(SIGUSR1);
  assert_false(got_signal);
  uint64_t t0 = base_mono_ms();
  assert_int_equal(proto_client_read_line(&c, PROTO_CLIENT_FOREVER, &line, NULL), -EINTR);
  assert_true(got_signal);
  assert_true(base_mono_ms() - t0 < 1000);
  /* The connection is still good. */
  put(peer, "after\n");
  expect_line(&c, "after");
  close(peer);
  proto_client_close(&c);
  sigprocmask(SIG_SETMASK, &old, NULL);
  signal(SIGUSR1, SIG_DFL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_errors),
      cmocka_unit_test(test_lines),
      cmocka_unit_test(test_eof),
      cmocka_unit_test(test_passed_fds),
      cmocka_unit_test(test_exchange),
      cmocka_unit_test(test_write_deadline),
      cmocka_unit_test(test_sigmask),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
