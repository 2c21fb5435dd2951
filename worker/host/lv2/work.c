/*
 * The worker extension, run synchronously. A real-time host runs work() on
 * another thread so that run() never waits; runway's worker process is not
 * real-time (its write-ahead L absorbs slow blocks), so it runs the work
 * right after the run() that scheduled it, on the same thread, and hands
 * the plugin the responses before end_run(). The result is the same on
 * every run, as the worker spec says of synchronous execution ("reproducible
 * offline rendering"), and no plugin call ever overlaps another.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lv2host.h"

/* One queue holds at most this much; a plugin asking for more is told there is no space. */
#define QUEUE_MAX (16u * 1024u * 1024u)
/* Responses may schedule more work; this many rounds end a plugin that always does. */
#define MAX_ROUNDS 16

static size_t padded(uint32_t size) { return (sizeof(uint32_t) + (size_t)size + 7u) & ~(size_t)7u; }

static int queue_push(struct lv2host_work_queue *q, uint32_t size, const void *data) {
  size_t need = padded(size);
  if (size > QUEUE_MAX || q->len + need > QUEUE_MAX)
    return -ENOSPC;
  if (q->len + need > q->cap) {
    size_t cap = q->cap ? q->cap : 4096;
    while (cap < q->len + need)
      cap *= 2;
    unsigned char *grown = realloc(q->data, cap);
    if (grown == NULL)
      return -ENOMEM;
    q->data = grown;
    q->cap = cap;
  }
  memcpy(q->data + q->len, &size, sizeof(size));
  if (size > 0)
    memcpy(q->data + q->len + sizeof(size), data, size);
  q->len += need;
  return 0;
}

LV2_Worker_Status lv2host_work_schedule(LV2_Worker_Schedule_Handle handle, uint32_t size,
                                        const void *data) {
  struct lv2host_work *k = handle;
  if (k->iface == NULL || k->iface->work == NULL)
    return LV2_WORKER_ERR_UNKNOWN; /* asked for work it cannot do: it has no work() */
  if (queue_push(&k->requests, size, data) != 0) {
    k->refused++;
    return LV2_WORKER_ERR_NO_SPACE;
  }
  return LV2_WORKER_SUCCESS;
}

static LV2_Worker_Status respond(LV2_Worker_Respond_Handle handle, uint32_t size,
                                 const void *data) {
  struct lv2host_work *k = handle;
  if (queue_push(&k->responses, size, data) != 0) {
    k->refused++;
    return LV2_WORKER_ERR_NO_SPACE;
  }
  return LV2_WORKER_SUCCESS;
}

/* Moves q's items into k->doing (q is empty after), so handlers may refill q meanwhile. */
static void take(struct lv2host_work *k, struct lv2host_work_queue *q) {
  struct lv2host_work_queue t = k->doing;
  k->doing = *q;
  t.len = 0;
  *q = t;
}

static void each(const struct lv2host_work_queue *q,
                 void (*fn)(struct lv2host_work *k, uint32_t size, const void *data),
                 struct lv2host_work *k) {
  for (size_t off = 0; off < q->len;) {
    uint32_t size;
    memcpy(&size, q->data + off, sizeof(size));
    fn(k, size, q->data + off + sizeof(size));
    off += padded(size);
  }
}

static void do_work(struct lv2host_work *k, uint32_t size, const void *data) {
  k->iface->work(k->handle, respond, k, size, data);
}

static void do_response(struct lv2host_work *k, uint32_t size, const void *data) {
  if (k->iface->work_response != NULL)
    k->iface->work_response(k->handle, size, data);
}

void lv2host_work_flush(struct lv2host_work *k, int after_run) {
  if (k->iface == NULL)
    return;
  for (int round = 0; round < MAX_ROUNDS && (k->requests.len > 0 || k->responses.len > 0);
       round++) {
    take(k, &k->requests);
    each(&k->doing, do_work, k);
    take(k, &k->responses);
    each(&k->doing, do_response, k);
  }
  if (after_run && k->iface->end_run != NULL)
    k->iface->end_run(k->handle);
}

void lv2host_work_free(struct lv2host_work *k) {
  free(k->requests.data);
  free(k->responses.data);
  free(k->doing.data);
  memset(k, 0, sizeof(*k));
}
