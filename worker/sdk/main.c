/*
 * rw_worker_main: the callback-style loop. Attaches, runs the plugin until
 * SIGTERM/SIGINT or the daemon's departure, and tears down.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sdk_internal.h"

/* The worker the signal handler stops; NULL outside rw_worker_main's loop. */
static rw_worker *_Atomic main_worker;
/* Set by a signal that arrives before the worker exists. */
static atomic_int stop_early;

static void on_stop_signal(int sig) {
  (void)sig;
  /* Both are lock-free atomics: async-signal-safe. */
  atomic_store_explicit(&stop_early, 1, memory_order_relaxed);
  rw_worker *w = atomic_load_explicit(&main_worker, memory_order_acquire);
  if (w != NULL)
    rw_worker_request_stop(w);
}

static void block_stop_signals(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, old);
}

int rw_worker_main(const rw_plugin *plugin, const rw_worker_options *opts) {
  struct sigaction sa, old_term, old_int;
  rw_worker_options o;
  rw_worker *w = NULL;
  void *self = NULL;
  sigset_t old_mask;
  int status = 1;
  int rc;

  if (plugin == NULL || plugin->process == NULL) {
    fprintf(stderr, "runway worker: rw_worker_main needs a plugin with a process callback\n");
    return 2;
  }
  const char *name = plugin->name ? plugin->name : "plugin";

  if (opts != NULL)
    o = *opts;
  else
    memset(&o, 0, sizeof(o));
  if (o.api_version == 0)
    o.api_version = RW_WORKER_API_VERSION;
  if (o.params == NULL && o.n_params == 0) {
    o.params = plugin->params;
    o.n_params = plugin->n_params;
  }
  if (o.plugin == NULL)
    o.plugin = plugin->name;

  atomic_store(&stop_early, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a signal must cut the futex sleep short (it returns EINTR). */
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGINT, &sa, &old_int);

  rc = rw_worker_open(&o, &w);
  if (rc != 0) {
    fprintf(stderr, "%s: cannot attach: %s\n", name, rw_worker_error(NULL));
    goto out;
  }
  atomic_store_explicit(&main_worker, w, memory_order_release);
  if (atomic_load(&stop_early))
    rw_worker_request_stop(w);

  if (plugin->create != NULL) {
    self = plugin->create(rw_worker_get_info(w));
    if (self == NULL) {
      fprintf(stderr,
              "%s: the plugin could not be created (out of memory or unsupported "
              "slot: %u in, %u out, %u Hz)\n",
              name, rw_worker_get_info(w)->n_inputs, rw_worker_get_info(w)->n_outputs,
              rw_worker_get_info(w)->sample_rate);
      goto out;
    }
  }
  /* Before the first block: the daemon learns from the start whether the plugin keeps state. */
  if (plugin->save_state != NULL || plugin->load_state != NULL) {
    rw_state_handlers h = {.save = plugin->save_state, .load = plugin->load_state, .user = self};
    rw_worker_set_state_handlers(w, &h);
  }

  rw_block b;
  while ((rc = rw_worker_next(w, &b, -1)) >= 0) {
    if (rc == 0)
      continue;
    plugin->process(self, w, &b);
    rw_worker_done(w, &b);
  }
  if (rc == RW_ERR_CLOSED) {
    status = 0;
  } else {
    fprintf(stderr, "%s: stopping: %s\n", name, rw_worker_error(w));
  }

out:
  /*
   * No handler on this thread may hold w while it is freed. (A plugin thread
   * that left the signals unblocked keeps a window of a few instructions.)
   */
  block_stop_signals(&old_mask);
  atomic_store_explicit(&main_worker, NULL, memory_order_release);
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  if (self != NULL && plugin->destroy != NULL)
    plugin->destroy(self);
  rw_worker_close(w);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGINT, &old_int, NULL);
  return status;
}
