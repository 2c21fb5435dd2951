/*
 * libFuzzer target: a segment whose header and control block hold whatever
 * the input says, read by the daemon's side (the RT path, engine_process,
 * and the tamper check) and by proto_segment_validate. See fuzz_segment.h for
 * the input format. Everything in the worker's file is the worker's to
 * scribble on (and here the daemon's file too, as any state a run may leave),
 * so no input may crash the daemon, make it touch memory outside the
 * segment's regions, or put a non-finite sample into the graph.
 *
 * Checks beyond the sanitizers (abort on failure):
 *   - a header proto_segment_validate accepts is exactly the layout computed
 *     from its own parameters (so its regions fit and do not overlap);
 *   - shm_segment_check refuses exactly the headers that differ from the
 *     daemon's private snapshot;
 *   - every output sample of every cycle is finite;
 *   - the slot's counters stay within what the cycles could produce;
 *   - the slack between the segment's regions is never touched (ASan
 *     poisons it, as the corruption unit test does).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fuzz_segment.h"
#include "segment.h"
#include "segment_layout.h"
#include "spsc.h"
#include "timeline.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MIDI 8

struct preset {
  struct engine engine;
  struct engine_slot *slot;         /* held by the engine's table */
  struct engine_bypass *bypass;     /* the slot's when byte 0 asks for bypass; ours */
  struct rw_daemon_control fresh_d; /* the control blocks as created */
  struct rw_worker_control fresh_w;
};

static struct preset presets[FUZZ_SEG_PRESETS];
static int ready;

/* The graph's buffers; a port handle is the address of its channel's buffer. */
static float in_buf[RW_MAX_CHANNELS][FUZZ_SEG_MAX_FRAMES];
static float out_buf[RW_MAX_CHANNELS][FUZZ_SEG_MAX_FRAMES];

struct midi_event {
  uint32_t frame;
  uint32_t size;
  uint8_t bytes[3];
};
static struct midi_event midi[MAX_MIDI];
static uint32_t n_midi;
static int midi_tag; /* the MIDI port handle */

static void die(const char *what) {
  fprintf(stderr, "fuzz_segment: %s\n", what);
  abort();
}

/* ---- the fake graph (engine_io) ------------------------------------------------ */

static float *io_audio_buffer(void *port, uint32_t nframes) {
  (void)nframes;
  return port;
}

static void *io_midi_buffer(void *port, uint32_t nframes) {
  (void)nframes;
  return port == &midi_tag ? midi : NULL;
}

static uint32_t io_midi_count(void *buf) {
  (void)buf;
  return n_midi;
}

static int io_midi_get(void *buf, uint32_t index, struct engine_midi *ev) {
  (void)buf;
  if (index >= n_midi)
    return -1;
  ev->frame = midi[index].frame;
  ev->size = midi[index].size;
  /* Size 7 stands for an event whose data is missing, as a broken backend could give. */
  ev->data = midi[index].size == 7 ? NULL : midi[index].bytes;
  return 0;
}

static const struct engine_io io = {
    .audio_buffer = io_audio_buffer,
    .midi_buffer = io_midi_buffer,
    .midi_count = io_midi_count,
    .midi_get = io_midi_get,
};

/* ---- input reading ------------------------------------------------------------ */

struct cursor {
  const uint8_t *p;
  size_t left;
};

static uint64_t take(struct cursor *c, unsigned bytes) {
  uint64_t v = 0;
  for (unsigned i = 0; i < bytes; i++) {
    uint64_t b = 0;
    if (c->left > 0) {
      b = *c->p++;
      c->left--;
    }
    v |= b << (8 * i);
  }
  return v;
}

/* ---- setup ---------------------------------------------------------------------- */

/* Poisons every byte of both files outside the header and the regions. */
static void guard_slack(const struct shm_segment *seg) {
  const struct rw_segment_header *h = &seg->layout;
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    unsigned char *base = seg->base[f];
    uint64_t end = f == RW_FILE_DAEMON ? sizeof(struct rw_segment_header) : 0;
    for (int i = 0; i <= RW_REGION_COUNT; i++) {
      if (i < RW_REGION_COUNT && h->regions[i].file != (uint32_t)f)
        continue;
      uint64_t next = i < RW_REGION_COUNT ? h->regions[i].offset : h->file_size[f];
      if (next > end)
        POISON(base + end, next - end);
      if (i < RW_REGION_COUNT)
        end = h->regions[i].offset + h->regions[i].size;
    }
  }
}

static void setup(void) {
  char err[256];
  for (size_t i = 0; i < FUZZ_SEG_PRESETS; i++) {
    struct preset *p = &presets[i];
    struct engine_slot *s;
    engine_init(&p->engine);
    if (engine_slot_create(&fuzz_seg_presets[i], "fuzz", &s, err, sizeof(err)) != 0)
      die(err);
    for (uint32_t c = 0; c < s->n_in; c++)
      s->in_ports[c] = in_buf[c];
    for (uint32_t c = 0; c < s->n_out; c++)
      s->out_ports[c] = out_buf[c];
    s->midi_port = (s->segment.layout.flags & RW_SEGMENT_F_MIDI) ? &midi_tag : NULL;
    if (engine_publish(&p->engine, &s, 1) != 0)
      die("engine_publish failed");
    /* No RT thread: the table becomes current at once, and holds the slot. */
    engine_settle(&p->engine);
    engine_slot_unref(s);
    p->slot = s;
    uint32_t n_ch = s->n_in < s->n_out ? s->n_in : s->n_out;
    if (engine_bypass_create(n_ch, s->segment.layout.latency, &p->bypass) != 0)
      die("engine_bypass_create failed");
    memcpy(&p->fresh_d, s->segment.ctl.d, sizeof(p->fresh_d));
    memcpy(&p->fresh_w, s->segment.ctl.w, sizeof(p->fresh_w));
    guard_slack(&s->segment);
  }
  for (uint32_t c = 0; c < RW_MAX_CHANNELS; c++)
    for (uint32_t f = 0; f < FUZZ_SEG_MAX_FRAMES; f++)
      in_buf[c][f] = (float)((int)(f % 64) - 32) / 32.0f;
  ready = 1;
}

static void clear_region(struct shm_segment *seg, enum rw_region_id id) {
  memset(proto_segment_region(seg->base, &seg->layout, id), 0, seg->layout.regions[id].size);
}

/*
 * Puts the preset's segment and its RT state back to "just created", so that
 * every input runs alone and a crash reproduces from its input.
 */
static void reset(struct preset *p, bool bypass) {
  struct engine_slot *s = p->slot;
  struct shm_segment *seg = &s->segment;

  /* Bypass: the preset's own ring, empty, and the generation's state over it fresh. */
  s->bypass = bypass ? p->bypass : NULL;
  p->bypass->pos = p->bypass->cycle_pos = 0;
  p->bypass->silent_start = p->bypass->silent_end = 0;
  if (p->bypass->ring != NULL)
    memset(p->bypass->ring, 0, (size_t)p->bypass->n_ch * p->bypass->capacity * sizeof(float));
  s->bp_mix = RW_FADE_FRAMES;
  s->bp_run_start = ENGINE_NO_RUN;
  s->bp_gap_pos = 0;
  atomic_store(&s->drained, 0);
  atomic_store(&s->counters.bypass_frames, 0);

  memcpy(seg->base[RW_FILE_DAEMON], &seg->layout, sizeof(seg->layout));
  memcpy(seg->ctl.d, &p->fresh_d, sizeof(p->fresh_d));
  memcpy(seg->ctl.w, &p->fresh_w, sizeof(p->fresh_w));
  clear_region(seg, RW_REGION_AUDIO_IN);
  clear_region(seg, RW_REGION_AUDIO_OUT);
  clear_region(seg, RW_REGION_EVENTS);
  clear_region(seg, RW_REGION_MESSAGES);
  while (shm_spsc_pop(&s->commands.rx, NULL) == 1) {
  }
  s->fade_in_left = 0;
  s->fade_out_pos = 0;
  s->in_gap = false;
  memset(s->tail, 0, sizeof(s->tail));
  atomic_store(&s->faulted, 0);
  atomic_store(&s->counters.cycles, 0);
  atomic_store(&s->counters.underruns, 0);
  atomic_store(&s->counters.underrun_frames, 0);
  atomic_store(&s->counters.overruns, 0);
  atomic_store(&s->counters.nonfinite_samples, 0);
  atomic_store(&s->counters.events_dropped, 0);
  atomic_store(&s->counters.wakeups, 0);
  atomic_store(&s->counters.faults, 0);
  atomic_store(&s->counters.headroom_min_frames, INT64_MAX);
  engine_reset_clock(&p->engine);
  n_midi = 0;
}

/*
 * The daemon's private positions continue from what the control image says
 * it published last, as after a long run: t = out_read, and its ends of the
 * event and message rings at ev_write and msg_read.
 */
static void adopt_positions(struct engine_slot *s) {
  const struct shm_ctl *ctl = &s->segment.ctl;
  const struct rw_segment_header *h = &s->segment.layout;
  shm_tl_daemon_init(&s->tl, &s->segment);
  s->tl.pos = atomic_load(&ctl->d->out_read.value);
  shm_spsc_producer_init(&s->events, &ctl->d->ev_write.value, &ctl->w->ev_read.value,
                         s->segment.events, sizeof(struct rw_record), h->event_capacity,
                         atomic_load(&ctl->d->ev_write.value));
  shm_spsc_consumer_init(&s->messages, &ctl->w->msg_write.value, &ctl->d->msg_read.value,
                         s->segment.messages, sizeof(struct rw_record), h->message_capacity,
                         atomic_load(&ctl->d->msg_read.value));
}

/* ---- checks ---------------------------------------------------------------------- */

/* What a worker's proto_segment_validate makes of the header image. */
static void check_validate(const struct rw_segment_header *img) {
  struct rw_segment_header out, again;
  char err[256];

  /* Only the header is read: the claimed sizes can be anything. */
  if (proto_segment_validate(img, img->file_size, &out, err, sizeof(err)) != 0)
    return;
  struct proto_segment_params p = {
      .sample_rate = out.sample_rate,
      .n_inputs = out.n_inputs,
      .n_outputs = out.n_outputs,
      .flags = out.flags,
      .latency = out.latency,
      .max_period = out.max_period,
      .event_capacity = out.event_capacity,
      .message_capacity = out.message_capacity,
      .wake_frames = out.wake_frames_default,
      .state_capacity = out.state_capacity,
      .capacity = out.capacity, /* a ring larger than the smallest is a parameter too */
      .generation = out.generation,
  };
  if (proto_segment_layout(&p, &again, NULL, 0) != 0 || memcmp(&again, &out, sizeof(out)) != 0)
    die("proto_segment_validate accepted a header that is not the layout of its parameters");
  for (int i = 0; i < RW_REGION_COUNT; i++) {
    const struct rw_region *r = &out.regions[i];
    if (r->file >= RW_FILE_COUNT || r->offset + r->size > out.file_size[r->file] ||
        (r->file == RW_FILE_DAEMON && r->offset < sizeof(out)))
      die("proto_segment_validate accepted a region outside its file");
    if (r->file != (uint32_t)proto_segment_region_file((enum rw_region_id)i))
      die("proto_segment_validate accepted a region in the other file");
  }
}

static void check_tamper(const struct shm_segment *seg) {
  char err[256];
  int changed = memcmp(seg->base[RW_FILE_DAEMON], &seg->layout, sizeof(seg->layout)) != 0;
  int rc = shm_segment_check(seg, err, sizeof(err));
  if (rc != (changed ? -EPROTO : 0))
    die("shm_segment_check disagrees with a byte comparison of the header");
}

static void check_cycle(const struct engine_slot *s, uint32_t n, uint64_t cycles, uint64_t frames) {
  for (uint32_t c = 0; c < s->n_out; c++)
    for (uint32_t f = 0; f < n; f++)
      if (!isfinite(out_buf[c][f]))
        die("a non-finite sample reached the graph");
  if (atomic_load(&s->counters.cycles) != cycles)
    die("the cycle counter is off");
  if (atomic_load(&s->counters.underruns) > cycles || atomic_load(&s->counters.overruns) > cycles ||
      atomic_load(&s->counters.underrun_frames) > frames ||
      atomic_load(&s->counters.nonfinite_samples) > frames * s->n_out ||
      atomic_load(&s->counters.bypass_frames) > frames)
    die("a counter grew more than the cycles could make it");
  if (s->bypass == NULL && atomic_load(&s->counters.bypass_frames) != 0)
    die("bypass played in a slot without it");
}

/* ---- operations ------------------------------------------------------------------ */

static _Atomic uint64_t *position(const struct shm_ctl *c, unsigned i) {
  struct rw_position *pos[] = {&c->d->in_write, &c->w->in_read, &c->w->out_write, &c->d->out_read,
                               &c->d->ev_write, &c->w->ev_read, &c->w->msg_write, &c->d->msg_read};
  return &pos[i % 8]->value;
}

/* The worker publishes one message record; the daemon's control thread drains the ring. */
static void op_message(struct engine_slot *s, struct cursor *cur) {
  struct rw_worker_control *ctl = s->segment.ctl.w;
  const struct rw_segment_header *h = &s->segment.layout;
  struct rw_record rec;
  unsigned char raw[sizeof(rec)];
  for (size_t i = 0; i < sizeof(raw); i++)
    raw[i] = (unsigned char)take(cur, 1);
  memcpy(&rec, raw, sizeof(rec));
  uint64_t w = atomic_load(&ctl->msg_write.value);
  s->segment.messages[w & (h->message_capacity - 1)] = rec;
  atomic_store(&ctl->msg_write.value, w + 1);

  /* At most one ring's worth: a reader must never loop on a hostile position. */
  for (uint32_t i = 0; i <= h->message_capacity; i++) {
    int rc = shm_spsc_pop(&s->messages, &rec);
    if (rc == 0 || rc == -EPROTO)
      break;
    if (rc != 1)
      die("shm_spsc_pop returned something else than 1, 0 or -EPROTO");
  }
  int64_t avail = shm_spsc_avail(&s->messages);
  if (avail != -EPROTO && (avail < 0 || avail > h->message_capacity))
    die("shm_spsc_avail out of range");
}

static void op_samples(struct engine_slot *s, struct cursor *cur) {
  const struct rw_segment_header *h = &s->segment.layout;
  uint32_t ch = (uint32_t)take(cur, 1);
  uint32_t start = (uint32_t)take(cur, 2);
  uint32_t count = (uint32_t)take(cur, 2);
  uint32_t bits = (uint32_t)take(cur, 4);
  float v;
  memcpy(&v, &bits, sizeof(v));
  if (h->n_outputs == 0)
    return;
  float *ring = s->segment.audio_out + (size_t)(ch % h->n_outputs) * h->channel_stride;
  for (uint32_t i = 0; i < count && i < h->capacity; i++)
    ring[(start + i) & (h->capacity - 1)] = v;
}

static void op_midi(struct cursor *cur) {
  n_midi = (uint32_t)take(cur, 1) % (MAX_MIDI + 1);
  for (uint32_t i = 0; i < n_midi; i++) {
    midi[i].frame = (uint32_t)take(cur, 2);
    midi[i].size = (uint32_t)take(cur, 1) % 8;
    for (int b = 0; b < 3; b++)
      midi[i].bytes[b] = (uint8_t)take(cur, 1);
  }
}

/* An honest worker's step, so inputs reach the paths where output is valid. */
static void op_worker(struct engine_slot *s, struct cursor *cur) {
  static float scratch[RW_MAX_CHANNELS][FUZZ_SEG_MAX_FRAMES];
  float *chan[RW_MAX_CHANNELS];
  struct shm_tl_worker w;
  struct shm_tl_chunk chunk;
  uint32_t max = (uint32_t)take(cur, 2) % FUZZ_SEG_MAX_FRAMES + 1;

  if (shm_tl_worker_init(&w, &s->segment) != 0 || shm_tl_worker_plan(&w, max, &chunk) < 0 ||
      chunk.frames > FUZZ_SEG_MAX_FRAMES)
    return;
  for (uint32_t c = 0; c < RW_MAX_CHANNELS; c++)
    chan[c] = scratch[c];
  if (shm_tl_worker_read_input(&w, &chunk, chan) != 0)
    return;
  shm_tl_worker_write_output(&w, &chunk, (const float *const *)chan);
  shm_tl_worker_commit(&w, &chunk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct cursor cur = {data, size};
  struct rw_segment_header img;
  uint64_t cycles = 0, frames = 0;

  if (!ready)
    setup();
  uint64_t pick = take(&cur, 1);
  struct preset *p = &presets[(pick & 0x7f) % FUZZ_SEG_PRESETS];
  struct engine_slot *s = p->slot;
  struct shm_segment *seg = &s->segment;
  const struct shm_ctl *ctl = &seg->ctl;
  const struct rw_segment_header *h = &seg->layout;
  uint32_t frame_time = 0;
  reset(p, (pick & 0x80) != 0);

  /* The header image, over the real header. */
  memcpy(&img, &seg->layout, sizeof(img));
  size_t n = cur.left < sizeof(img) ? cur.left : sizeof(img);
  memcpy(&img, cur.p, n);
  cur.p += n;
  cur.left -= n;
  check_validate(&img);
  memcpy(seg->base[RW_FILE_DAEMON], &img, sizeof(img));
  check_tamper(seg);

  /* The control image, over the fresh control blocks: the daemon's, then the worker's. */
  unsigned char image[FUZZ_SEG_CONTROL_SIZE];
  memcpy(image, &p->fresh_d, sizeof(p->fresh_d));
  memcpy(image + sizeof(p->fresh_d), &p->fresh_w, sizeof(p->fresh_w));
  n = cur.left < sizeof(image) ? cur.left : sizeof(image);
  memcpy(image, cur.p, n);
  cur.p += n;
  cur.left -= n;
  memcpy(ctl->d, image, sizeof(*ctl->d));
  memcpy(ctl->w, image + sizeof(*ctl->d), sizeof(*ctl->w));
  adopt_positions(s);

  while (cur.left > 0) {
    switch (take(&cur, 1) % FUZZ_OP_COUNT) {
    case FUZZ_OP_CYCLE: {
      uint32_t max =
          3 * h->max_period < FUZZ_SEG_MAX_FRAMES ? 3 * h->max_period : FUZZ_SEG_MAX_FRAMES;
      uint32_t k = (uint32_t)(take(&cur, 2) % (max + 1));
      engine_process(&p->engine, &io, k);
      if (k > 0) {
        cycles++;
        frames += k;
      }
      check_cycle(s, k, cycles, frames);
      break;
    }
    case FUZZ_OP_MOVE: {
      _Atomic uint64_t *pos = position(ctl, (unsigned)take(&cur, 1));
      int32_t delta = (int32_t)(uint32_t)take(&cur, 4);
      atomic_store(pos, atomic_load(pos) + (uint64_t)(int64_t)delta);
      break;
    }
    case FUZZ_OP_SET: {
      _Atomic uint64_t *pos = position(ctl, (unsigned)take(&cur, 1));
      atomic_store(pos, take(&cur, 8));
      break;
    }
    case FUZZ_OP_MESSAGE:
      op_message(s, &cur);
      break;
    case FUZZ_OP_PARAM: {
      struct engine_cmd cmd = {.type = ENGINE_CMD_PARAM};
      uint32_t bits;
      cmd.param_id = (uint32_t)take(&cur, 4);
      bits = (uint32_t)take(&cur, 4);
      memcpy(&cmd.value, &bits, sizeof(cmd.value));
      (void)engine_slot_command(s, &cmd); /* -ENOSPC when 256 wait: dropped, as commands.c does */
      break;
    }
    case FUZZ_OP_MIDI:
      op_midi(&cur);
      break;
    case FUZZ_OP_SAMPLES:
      op_samples(s, &cur);
      break;
    case FUZZ_OP_HEADER: {
      size_t off = (size_t)take(&cur, 2) % sizeof(struct rw_segment_header);
      ((unsigned char *)seg->base[RW_FILE_DAEMON])[off] = (unsigned char)take(&cur, 1);
      check_tamper(seg);
      break;
    }
    case FUZZ_OP_WAKE:
      atomic_store(&ctl->w->sleeping, (uint32_t)take(&cur, 4));
      atomic_store(&ctl->w->wake_frames, (uint32_t)take(&cur, 4));
      break;
    case FUZZ_OP_WORKER:
      op_worker(s, &cur);
      break;
    case FUZZ_OP_GAP: {
      uint32_t gap = (uint32_t)take(&cur, 2);
      uint32_t max =
          3 * h->max_period < FUZZ_SEG_MAX_FRAMES ? 3 * h->max_period : FUZZ_SEG_MAX_FRAMES;
      uint32_t k = (uint32_t)(take(&cur, 2) % (max + 1));
      /* The first clocked cycle only starts the clock; later ones may find frames skipped. */
      frame_time += gap;
      engine_process_at(&p->engine, &io, k, frame_time);
      frame_time += k;
      if (k > 0) {
        cycles++;
        frames += k;
      }
      check_cycle(s, k, cycles, frames);
      break;
    }
    }
  }
  return 0;
}
