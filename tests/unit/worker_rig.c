#include "worker_rig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void daemon_role_create(struct daemon_role *d, const struct proto_segment_params *params) {
  char err[256];
  memset(d, 0, sizeof(*d));
  if (shm_segment_create(params, "test", &d->seg, err, sizeof(err)) != 0)
    fail_msg("shm_segment_create: %s", err);
  d->n_in = params->n_inputs;
  d->n_out = params->n_outputs;
  shm_tl_daemon_init(&d->tl, &d->seg);
  const struct shm_ctl *ctl = &d->seg.ctl;
  shm_spsc_producer_init(&d->ev, &ctl->d->ev_write.value, &ctl->w->ev_read.value, d->seg.events,
                         sizeof(struct rw_record), d->seg.layout.event_capacity, 0);
  shm_spsc_consumer_init(&d->msg, &ctl->w->msg_write.value, &ctl->d->msg_read.value,
                         d->seg.messages, sizeof(struct rw_record), d->seg.layout.message_capacity,
                         0);
}

void daemon_destroy(struct daemon_role *d) { shm_segment_release(&d->seg); }

void daemon_role_export(struct daemon_role *d, const char *slot) {
  static const char *const names[RW_FILE_COUNT] = {"RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD"};
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    char text[16];
    int fd = dup(d->seg.fd[f]);
    assert_true(fd >= 0);
    snprintf(text, sizeof(text), "%d", fd);
    setenv(names[f], text, 1);
  }
  setenv("RUNWAY_SLOT", slot, 1);
}

rw_worker *daemon_role_open_worker(struct daemon_role *d, const rw_worker_options *o,
                                   const char *slot) {
  rw_worker *w = NULL;
  daemon_role_export(d, slot);
  int rc = rw_worker_open(o, &w);
  if (rc != 0)
    fail_msg("rw_worker_open: %d %s", rc, rw_worker_error(NULL));
  unsetenv("RUNWAY_SEGMENT_FD");
  unsetenv("RUNWAY_SEGMENT_WORKER_FD");
  return w;
}
