/*
 * The PipeWire backend on PipeWire's data thread: each slot node's process
 * callback runs the engine for that slot (engine_process_slot), the clock
 * node's notes the graph's period and rate. RT safe, all of it: buffers are
 * taken with pw_filter's lock-free queues, MIDI is parsed into the port's
 * own array, and the only other writes are to atomics and RT-only fields.
 * The engine's RT-rules hooks bracket everything done here, so the RT-rules
 * test sees all of it.
 */
#include <string.h>

#include <spa/control/control.h>
#include <spa/pod/iter.h>

#include "pipewire_internal.h"

static inline void rt_enter(const struct pwb *b) {
  if (b->engine->hooks.enter != NULL)
    b->engine->hooks.enter();
}

static inline void rt_leave(const struct pwb *b) {
  if (b->engine->hooks.leave != NULL)
    b->engine->hooks.leave();
}

/*
 * Each port's buffer at most once per cycle: pw_filter hands a buffer out
 * once (a second dequeue finds none), while the engine may ask again. An
 * unlinked port has no buffer: it reads silence or writes into scratch.
 */
static float *io_audio(void *port, uint32_t nframes) {
  struct pwb_port *p = port;
  struct pwb_slot *s = p->slot;
  if (p->taken != s->cycle) {
    p->taken = s->cycle;
    p->buf = pw_filter_get_dsp_buffer(p, nframes);
    if (p->buf == NULL)
      p->buf = p->output ? s->b->scratch : s->b->zeros;
  }
  return p->buf;
}

/*
 * A MIDI buffer is a spa_pod_sequence of controls at frame offsets. The
 * sequence is checked as it is walked (sizes against the buffer's chunk),
 * anything but MIDI is skipped, and the events point into the buffer, which
 * stays mapped and unchanged until the next cycle.
 */
static void take_midi(struct pwb_port *p) {
  p->n_events = 0;
  struct pw_buffer *pb = pw_filter_dequeue_buffer(p);
  if (pb == NULL)
    return;
  const struct spa_data *d = &pb->buffer->datas[0];
  if (pb->buffer->n_datas > 0 && d->data != NULL && d->chunk != NULL) {
    struct spa_pod *pod = spa_pod_from_data(d->data, d->maxsize, d->chunk->offset, d->chunk->size);
    if (pod != NULL && spa_pod_is_sequence(pod)) {
      struct spa_pod_sequence *seq = (struct spa_pod_sequence *)pod;
      struct spa_pod_control *c;
      SPA_POD_SEQUENCE_FOREACH(seq, c) {
        if (p->n_events == PWB_MAX_MIDI)
          break;
        if (c->type != SPA_CONTROL_Midi || c->value.type != SPA_TYPE_Bytes)
          continue;
        struct engine_midi *ev = &p->events[p->n_events++];
        ev->frame = c->offset;
        ev->size = SPA_POD_BODY_SIZE(&c->value);
        ev->data = SPA_POD_BODY_CONST(&c->value);
      }
    }
  }
  pw_filter_queue_buffer(p, pb);
}

static void *io_midi(void *port, uint32_t nframes) {
  struct pwb_port *p = port;
  (void)nframes;
  if (p->taken != p->slot->cycle) {
    p->taken = p->slot->cycle;
    take_midi(p);
  }
  return p;
}

static uint32_t io_midi_count(void *buf) { return ((const struct pwb_port *)buf)->n_events; }

static int io_midi_get(void *buf, uint32_t index, struct engine_midi *ev) {
  const struct pwb_port *p = buf;
  if (index >= p->n_events)
    return -1;
  *ev = p->events[index];
  return 0;
}

static const struct engine_io pwb_io = {
    .audio_buffer = io_audio,
    .midi_buffer = io_midi,
    .midi_count = io_midi_count,
    .midi_get = io_midi_get,
};

/*
 * Ports the engine did not take this cycle (a slot not in the table yet or
 * any more, a faulted slot's MIDI): outputs play silence rather than stale
 * audio, and inputs give their buffer back so the next cycle finds the new
 * one.
 */
static void settle_ports(struct pwb_slot *s, uint32_t n) {
  for (uint32_t i = 0; i < s->n_ports; i++) {
    struct pwb_port *p = s->ports[i];
    if (p->taken == s->cycle)
      continue;
    p->taken = s->cycle;
    if (p->output) {
      float *buf = pw_filter_get_dsp_buffer(p, n);
      if (buf != NULL)
        memset(buf, 0, (size_t)n * sizeof(float));
    } else {
      struct pw_buffer *pb = pw_filter_dequeue_buffer(p);
      if (pb != NULL)
        pw_filter_queue_buffer(p, pb);
    }
  }
}

void pwb__slot_process(void *data, struct spa_io_position *pos) {
  struct pwb_slot *s = data;
  struct pwb *b = s->b;
  if (pos == NULL)
    return; /* no driver yet: PipeWire plays nothing from the outputs */
  uint32_t n = (uint32_t)pos->clock.duration;
  if (n > PWB_MAX_FRAMES)
    n = PWB_MAX_FRAMES;
  /* Read once: the driver may already move the clock on if this node runs late. */
  uint32_t frame = (uint32_t)pos->clock.position;
  s->cycle++;
  engine_process_slot(b->engine, &s->pub, &s->hint, &pwb_io, n, frame);
  rt_enter(b);
  settle_ports(s, n);
  rt_leave(b);
}

void pwb__clock_process(void *data, struct spa_io_position *pos) {
  struct pwb *b = data;
  if (pos == NULL)
    return;
  rt_enter(b);
  /* Relaxed: each is a value of its own, polled; a stale one is seen at the next poll. */
  atomic_store_explicit(&b->seen_period, (uint32_t)pos->clock.duration, memory_order_relaxed);
  atomic_store_explicit(&b->seen_rate, pos->clock.rate.denom, memory_order_relaxed);
  rt_leave(b);
}
