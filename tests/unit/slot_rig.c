#include "slot_rig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "segment_layout.h"
#include "spsc.h"
#include "timeline.h"
#include "wake.h"

#define RIG_EXPORT __attribute__((visibility("default")))

struct rig {
  struct shm_segment seg;
  struct shm_tl_daemon tl;
  struct shm_spsc_producer ev;
  uint32_t period;
  uint32_t clock_seq;
  char plugin[RW_NAME_MAX * 2];
};

static const char *const export_names[RW_FILE_COUNT] = {"RUNWAY_SEGMENT_FD",
                                                        "RUNWAY_SEGMENT_WORKER_FD"};

RIG_EXPORT struct rig *rig_new(uint32_t rate, uint32_t n_in, uint32_t n_out, int midi,
                               uint32_t latency, uint32_t period) {
  struct proto_segment_params p = {
      .sample_rate = rate,
      .n_inputs = n_in,
      .n_outputs = n_out,
      .flags = midi ? RW_SEGMENT_F_MIDI : 0,
      .latency = latency,
      .max_period = period,
  };
  char err[256];
  struct rig *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  if (shm_segment_create(&p, "rig", &r->seg, err, sizeof(err)) != 0) {
    fprintf(stderr, "rig_new: %s\n", err);
    free(r);
    return NULL;
  }
  const struct shm_ctl *ctl = &r->seg.ctl;
  shm_tl_daemon_init(&r->tl, &r->seg);
  shm_spsc_producer_init(&r->ev, &ctl->d->ev_write.value, &ctl->w->ev_read.value, r->seg.events,
                         sizeof(struct rw_record), r->seg.layout.event_capacity, 0);
  r->period = period;
  return r;
}

RIG_EXPORT void rig_free(struct rig *r) {
  if (r == NULL)
    return;
  shm_segment_release(&r->seg);
  free(r);
}

RIG_EXPORT int rig_export(struct rig *r, const char *slot) {
  int fds[RW_FILE_COUNT];
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    char text[16];
    fds[f] = dup(r->seg.fd[f]);
    if (fds[f] < 0) {
      if (f > 0)
        close(fds[0]);
      return -1;
    }
    snprintf(text, sizeof(text), "%d", fds[f]);
    setenv(export_names[f], text, 1);
  }
  setenv("RUNWAY_SLOT", slot, 1);
  return fds[RW_FILE_DAEMON];
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

RIG_EXPORT int rig_cycle(struct rig *r, const float *in, float *out) {
  const float *src[RW_MAX_CHANNELS];
  float *dst[RW_MAX_CHANNELS];
  float *scratch = NULL;
  const struct rw_segment_header *h = &r->seg.layout;
  for (uint32_t c = 0; c < h->n_inputs; c++)
    src[c] = in != NULL ? in + (size_t)c * r->period : NULL;
  if (out == NULL) {
    scratch = calloc((size_t)(h->n_outputs ? h->n_outputs : 1) * r->period, sizeof(float));
    if (scratch == NULL)
      return -1;
    out = scratch;
  }
  for (uint32_t c = 0; c < h->n_outputs; c++)
    dst[c] = out + (size_t)c * r->period;
  struct shm_clock clk = {.pos = r->tl.pos, .period = r->period};
  int rc = shm_tl_daemon_write_input(&r->tl, src, r->period) < 0 ? -1 : 0;
  clk.ns = mono_ns();
  shm_clock_publish(r->seg.ctl.d, &r->clock_seq, &clk);
  if (rc == 0) {
    shm_wake_worker_if_due(&r->seg.ctl, r->tl.pos + r->period, h->capacity);
    rc = shm_tl_daemon_read_output(&r->tl, dst, r->period);
  }
  free(scratch);
  return rc;
}

RIG_EXPORT uint64_t rig_position(const struct rig *r) { return r->tl.pos; }

RIG_EXPORT uint64_t rig_pending(const struct rig *r) {
  const struct shm_ctl *ctl = &r->seg.ctl;
  uint64_t in_write = atomic_load_explicit(&ctl->d->in_write.value, memory_order_acquire);
  uint64_t in_read = atomic_load_explicit(&ctl->w->in_read.value, memory_order_acquire);
  return in_write >= in_read ? in_write - in_read : 0;
}

RIG_EXPORT int rig_push_midi(struct rig *r, uint64_t time, uint8_t b0, uint8_t b1, uint8_t b2) {
  struct rw_record rec = {.time = time, .type = RW_EVENT_MIDI, .size = 3};
  rec.u.midi[0] = b0;
  rec.u.midi[1] = b1;
  rec.u.midi[2] = b2;
  return shm_spsc_push(&r->ev, &rec) == 0 ? 0 : -1;
}

RIG_EXPORT int rig_push_param(struct rig *r, uint64_t time, uint32_t id, float value) {
  struct rw_record rec = {.time = time, .type = RW_EVENT_PARAM};
  rec.u.param.id = id;
  rec.u.param.value = value;
  return shm_spsc_push(&r->ev, &rec) == 0 ? 0 : -1;
}

RIG_EXPORT uint32_t rig_state_post(struct rig *r, uint32_t op, const void *data, uint32_t len) {
  struct rw_state_request *box = r->seg.state_request;
  if (len > r->seg.layout.state_capacity)
    len = r->seg.layout.state_capacity;
  box->op = op;
  box->length = len;
  if (data != NULL && len > 0)
    memcpy(box->data, data, len);
  /* Release: op, length and data before the new request number. */
  return atomic_fetch_add_explicit(&box->request, 1, memory_order_release) + 1;
}

RIG_EXPORT int rig_state_answered(const struct rig *r, uint32_t request) {
  /* Acquire: the worker's status, length and data before done. */
  return atomic_load_explicit(&r->seg.state_reply->done, memory_order_acquire) == request;
}

RIG_EXPORT int32_t rig_state_status(const struct rig *r) { return r->seg.state_reply->status; }

RIG_EXPORT uint32_t rig_state_read(const struct rig *r, void *buf, uint32_t cap) {
  uint32_t len = r->seg.state_reply->length;
  if (len > r->seg.layout.state_capacity)
    len = r->seg.layout.state_capacity;
  memcpy(buf, r->seg.state_reply->data, len < cap ? len : cap);
  return len;
}

RIG_EXPORT const char *rig_plugin_name(const struct rig *r) {
  struct rig *m = (struct rig *)r;
  /* Terminated here whatever the worker wrote. */
  memcpy(m->plugin, r->seg.info->plugin, sizeof(m->plugin));
  m->plugin[sizeof(m->plugin) - 1] = '\0';
  return m->plugin;
}

RIG_EXPORT uint32_t rig_declared_params(const struct rig *r) { return r->seg.info->n_params; }

RIG_EXPORT uint32_t rig_worker_pid(const struct rig *r) {
  return atomic_load_explicit(&r->seg.ctl.w->worker_pid, memory_order_acquire);
}

RIG_EXPORT uint32_t rig_wake_frames(const struct rig *r) {
  return atomic_load_explicit(&r->seg.ctl.w->wake_frames, memory_order_relaxed);
}
