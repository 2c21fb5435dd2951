/*
 * Where runwayd's engine skipped frames, from a thread of the test's own.
 *
 * runwayd's clock jumps ahead with the graph's frame time after cycles the
 * graph skipped or a run of its that began late (stats: skipped_frames);
 * what was in flight through a slot then may come out whole periods off,
 * and the probe, whose runs were on time, cannot see it. Asking the counter
 * once per measurement tells only that it happened somewhere in the train,
 * and on a busy machine it happens in nearly every train: excusing the whole
 * train then proves nothing. The watcher asks every few milliseconds over a
 * connection of its own, so a skip is placed between two answers, and only
 * the output in flight then is checked leniently.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness_internal.h"

#define POLL_MS 5
#define MAX_WINDOWS 4096

struct window {
  uint64_t from, to; /* probe clock */
};

static struct {
  pthread_t thread;
  bool running;
  _Atomic bool stop;
  const struct h_probe *probe;
  char socket[108];
  pthread_mutex_t lock; /* windows and n below, between the watcher and the test thread */
  struct window windows[MAX_WINDOWS];
  uint64_t n;
  _Atomic uint64_t polls;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void nap(unsigned ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

/*
 * runwayd's skipped_frames, or -1 when the daemon does not answer (stopped,
 * restarting): the watcher's own request, since h_request fails the test,
 * which only the test thread may do.
 */
static int64_t ask(struct h_conn *c) {
  static const char req[] = "{\"id\":1,\"cmd\":\"stats\"}\n";
  if (c->fd < 0 && h_conn_open(c, w.socket) != 0)
    return -1;
  int err = 0;
  char *line = h_conn_send(c, req, sizeof(req) - 1) == 0 ? h_conn_read_line(c, 2000, &err) : NULL;
  json_t *r = line != NULL ? json_loads(line, 0, NULL) : NULL;
  free(line);
  json_t *v =
      json_object_get(json_object_get(json_object_get(r, "result"), "daemon"), "skipped_frames");
  int64_t skipped = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
  json_decref(r);
  if (skipped < 0) {
    h_conn_close(c);
    c->fd = -1;
  }
  return skipped;
}

static void add_window(uint64_t from, uint64_t to) {
  pthread_mutex_lock(&w.lock);
  w.windows[w.n % MAX_WINDOWS] = (struct window){from, to};
  w.n++;
  pthread_mutex_unlock(&w.lock);
}

static void *watch(void *arg) {
  (void)arg;
  struct h_conn c = {.fd = -1};
  uint64_t per = h_probe_period(w.probe);
  int64_t last = -1;
  uint64_t since = h_probe_cycle(w.probe); /* the cycle before the last answer was asked */
  while (!atomic_load(&w.stop)) {
    uint64_t asked = h_probe_cycle(w.probe);
    int64_t now = ask(&c);
    uint64_t answered = h_probe_cycle(w.probe);
    atomic_fetch_add(&w.polls, 1);
    if (now >= 0 && last >= 0 && now != last) {
      /* Between the previous question and this answer; a run may be a period behind. */
      add_window(since > 4 * per ? since - 4 * per : 0, answered + 4 * per);
    }
    last = now; /* after no answer (runwayd restarting), the next one starts afresh */
    since = asked;
    nap(POLL_MS);
  }
  if (c.fd >= 0)
    h_conn_close(&c);
  return NULL;
}

void h_watch_skips(const struct h_probe *p, const struct h_daemon *d) {
  if (w.running)
    H_FAIL("h_watch_skips: one watcher per test");
  w.probe = p;
  snprintf(w.socket, sizeof(w.socket), "%s", d->socket);
  atomic_store(&w.stop, false);
  /* The thread leaves the test's signals (watchdog, SIGTERM) to the main thread. */
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  int rc = pthread_create(&w.thread, NULL, watch, NULL);
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  if (rc != 0)
    H_FAIL("h_watch_skips: pthread_create: %s", strerror(rc));
  w.running = true;
  /* Its first answer: skips before it are not placed. */
  for (unsigned i = 0; i < 2000 && atomic_load(&w.polls) == 0; i++)
    nap(1);
}

bool h_watching_skips(const struct h_probe *p) { return w.running && w.probe == p; }

void h__watch_stop(const struct h_probe *p) {
  if (!w.running || w.probe != p)
    return;
  atomic_store(&w.stop, true);
  pthread_join(w.thread, NULL);
  w.running = false;
}

bool h__watch_disturbed(const struct h_probe *p, uint64_t frame, uint64_t longest) {
  if (w.probe != p)
    return false;
  bool hit = false;
  pthread_mutex_lock(&w.lock);
  for (uint64_t i = w.n > MAX_WINDOWS ? w.n - MAX_WINDOWS : 0; i < w.n && !hit; i++) {
    const struct window *x = &w.windows[i % MAX_WINDOWS];
    hit = frame >= x->from && frame < x->to + longest;
  }
  pthread_mutex_unlock(&w.lock);
  return hit;
}
