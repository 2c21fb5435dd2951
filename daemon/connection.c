#include "connection.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "notify.h"
#include "slots.h"

#define RECONNECT_MIN_MS 500
#define RECONNECT_MAX_MS 5000

static void on_reconnect(uv_timer_t *t);
static void schedule_reconnect(struct runwayd *d);

const char *connection_describe(const struct runwayd *d, char *buf, size_t len) {
  if (backend_is_open(d->backend))
    snprintf(buf, len, "%s active, %u Hz, %u frames per period; slots: %u",
             backend_server_name(d->backend), backend_sample_rate(d->backend),
             backend_period(d->backend), d->n_slots);
  else
    snprintf(buf, len, "waiting for the %s server; slots: %u", backend_server_name(d->backend),
             d->n_slots);
  return buf;
}

static void schedule_reconnect(struct runwayd *d) {
  uv_timer_start(&d->reconnect, on_reconnect, d->reconnect_delay_ms, 0);
  d->reconnect_delay_ms *= 2;
  if (d->reconnect_delay_ms > RECONNECT_MAX_MS)
    d->reconnect_delay_ms = RECONNECT_MAX_MS;
}

/* Starts a connection attempt; connected() or schedule_reconnect() follows. */
static void try_connect(struct runwayd *d) {
  int rc = backend_connect(d->backend);
  if (rc == -EBUSY) {
    schedule_reconnect(d); /* the last connection is still being closed */
    return;
  }
  if (rc != 0 && rc != -EALREADY) {
    log_error("cannot start connecting to %s: %s", backend_server_name(d->backend), strerror(-rc));
    schedule_reconnect(d);
  }
}

/* A connection attempt ended (BACKEND_EV_CONNECTED). */
static void connected(struct runwayd *d) {
  char err[256], status[256];
  int rc = backend_finish_connect(d->backend, err, sizeof(err));
  if (rc == -EINPROGRESS)
    return;
  if (rc == 0) {
    log_info("connected to %s as \"%s\": %u Hz, %u frames per period",
             backend_server_name(d->backend), backend_client_name(d->backend),
             backend_sample_rate(d->backend), backend_period(d->backend));
    d->reconnect_delay_ms = RECONNECT_MIN_MS;
    slots_backend_up(d);
    /* The control socket already listens (main starts it first): now we are ready. */
    notify_ready(connection_describe(d, status, sizeof(status)));
    return;
  }
  if (d->reconnect_delay_ms <= RECONNECT_MIN_MS)
    log_warn("%s; retrying in the background", err);
  notify_status("%s", connection_describe(d, status, sizeof(status)));
  schedule_reconnect(d);
}

static void on_reconnect(uv_timer_t *t) {
  struct runwayd *d = t->data;
  if (!d->stopping)
    try_connect(d);
}

static void on_backend_event(void *user) {
  struct runwayd *d = user;
  uint32_t ev = backend_take_events(d->backend);
  if (d->stopping)
    return;
  if (ev & BACKEND_EV_CLOSED)
    slots_rt_stopped(d);
  if (ev & BACKEND_EV_CONNECTED)
    connected(d);
  if (!backend_is_open(d->backend))
    return;
  if (ev & BACKEND_EV_SHUTDOWN) {
    log_warn("the %s server went away; slots wait until it is back",
             backend_server_name(d->backend));
    /* Its RT thread has stopped; closing may wait on the dying server, so not here. */
    backend_abandon(d->backend);
    slots_backend_down(d);
    d->reconnect_delay_ms = RECONNECT_MIN_MS;
    schedule_reconnect(d);
    return;
  }
  if (ev & BACKEND_EV_GRAPH)
    slots_reorder(d);
  if (ev & (BACKEND_EV_PERIOD | BACKEND_EV_RATE)) {
    char why[128];
    snprintf(why, sizeof(why), "%s now runs at %u Hz, %u frames per period",
             backend_server_name(d->backend), backend_sample_rate(d->backend),
             backend_period(d->backend));
    slots_rebuild_all(d, why);
  }
}

int connection_init(struct runwayd *d, char *err, size_t errlen) {
  const struct backend_ops *ops = backend_find(d->opt.backend, err, errlen);
  if (ops == NULL)
    return -EINVAL;
  struct backend_config cfg = {
      .loop = d->loop,
      .engine = &d->engine,
      .client_name = d->opt.name,
      .on_event = on_backend_event,
      .user = d,
  };
  int rc = backend_create(ops, &cfg, &d->backend);
  if (rc != 0) {
    snprintf(err, errlen, "cannot create the %s backend: %s", ops->name, strerror(-rc));
    return rc;
  }
  uv_timer_init(d->loop, &d->reconnect);
  d->reconnect.data = d;
  d->reconnect_delay_ms = RECONNECT_MIN_MS;
  return 0;
}

void connection_start(struct runwayd *d) { try_connect(d); }

void connection_stop(struct runwayd *d) {
  if (d->backend == NULL)
    return;
  uv_timer_stop(&d->reconnect);
  backend_close(d->backend);
}
