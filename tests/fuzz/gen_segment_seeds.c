/*
 * Writes fuzz_segment's seed corpus (tests/fuzz/corpus/fuzz_segment) from
 * real segments: for each preset geometry, the header shm_segment_create
 * writes, control blocks in states an honest daemon and worker reach (fresh,
 * running, close to the 64-bit wrap), and operation scripts from honest
 * cycles to hostile ones and to gaps in the graph. Run it again when the
 * segment ABI changes:
 *
 *   build-fuzz/bin/gen_segment_seeds tests/fuzz/corpus/fuzz_segment
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_segment.h"
#include "segment.h"

struct seed {
  unsigned char bytes[4096];
  size_t len;
};

static void put(struct seed *s, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n && s->len < sizeof(s->bytes); i++)
    s->bytes[s->len++] = (unsigned char)(v >> (8 * i));
}

static void put_mem(struct seed *s, const void *p, size_t n) {
  if (s->len + n > sizeof(s->bytes))
    n = sizeof(s->bytes) - s->len;
  memcpy(s->bytes + s->len, p, n);
  s->len += n;
}

static void op_cycle(struct seed *s, uint32_t n) {
  put(s, FUZZ_OP_CYCLE, 1);
  put(s, n, 2);
}

static void op_worker(struct seed *s, uint32_t max) {
  put(s, FUZZ_OP_WORKER, 1);
  put(s, max - 1, 2);
}

/* Cycles with an honest worker keeping up: the path where output is valid. */
static void honest(struct seed *s, uint32_t period, int cycles) {
  for (int i = 0; i < cycles; i++) {
    op_cycle(s, period);
    op_worker(s, period);
  }
}

static int write_seed(const char *dir, const char *name, const struct seed *s) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (f == NULL || fwrite(s->bytes, 1, s->len, f) != s->len || fclose(f) != 0) {
    fprintf(stderr, "gen_segment_seeds: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* The control image: the daemon's block, then the worker's (fuzz_segment.h). */
struct control_image {
  struct rw_daemon_control d;
  struct rw_worker_control w;
};

static void put_control(struct seed *s, const struct control_image *c) {
  put_mem(s, &c->d, sizeof(c->d));
  put_mem(s, &c->w, sizeof(c->w));
}

/* Positions of an honest pair at timeline t, the worker `behind` frames behind. */
static void running(struct control_image *c, uint32_t latency, uint64_t t, uint64_t behind,
                    uint64_t records) {
  atomic_store(&c->d.in_write.value, t);
  atomic_store(&c->d.out_read.value, t);
  atomic_store(&c->w.in_read.value, t - behind);
  atomic_store(&c->w.out_write.value, t - behind + latency);
  atomic_store(&c->d.ev_write.value, records);
  atomic_store(&c->w.ev_read.value, records);
  atomic_store(&c->w.msg_write.value, records);
  atomic_store(&c->d.msg_read.value, records);
}

static void op_gap(struct seed *s, uint32_t gap, uint32_t n) {
  put(s, FUZZ_OP_GAP, 1);
  put(s, gap, 2);
  put(s, n, 2);
}

int main(int argc, char **argv) {
  char err[256], name[64];
  if (argc != 2) {
    fprintf(stderr, "usage: gen_segment_seeds DIR\n");
    return 2;
  }
  for (size_t pi = 0; pi < FUZZ_SEG_PRESETS; pi++) {
    struct shm_segment seg;
    if (shm_segment_create(&fuzz_seg_presets[pi], "seed", &seg, err, sizeof(err)) != 0) {
      fprintf(stderr, "gen_segment_seeds: %s\n", err);
      return 1;
    }
    const struct rw_segment_header *h = &seg.layout;
    struct control_image ctl;
    uint32_t period = h->max_period, lat = h->latency;
    struct seed s;

    /* Fresh: positions at 0, out_write = L; honest cycles, then a worker that stops. */
    memcpy(&ctl.d, seg.ctl.d, sizeof(ctl.d));
    memcpy(&ctl.w, seg.ctl.w, sizeof(ctl.w));
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, seg.base[RW_FILE_DAEMON], sizeof(*h));
    put_control(&s, &ctl);
    honest(&s, period, 6);
    for (int i = 0; i < 6; i++)
      op_cycle(&s, period);
    snprintf(name, sizeof(name), "p%zu-fresh", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;

    /* Running: a worker half a latency behind, longer cycles than the ring was sized for. */
    running(&ctl, lat, 1000003, lat / 2, 77);
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, seg.base[RW_FILE_DAEMON], sizeof(*h));
    put_control(&s, &ctl);
    honest(&s, period, 3);
    op_cycle(&s, 3 * period);
    op_worker(&s, 3 * period);
    op_cycle(&s, period / 3 + 1);
    snprintf(name, sizeof(name), "p%zu-running", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;

    /* Close to the 64-bit wrap of every position. */
    running(&ctl, lat, UINT64_MAX - 2 * (uint64_t)period, 0, UINT64_MAX - 3);
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, seg.base[RW_FILE_DAEMON], sizeof(*h));
    put_control(&s, &ctl);
    honest(&s, period, 5);
    snprintf(name, sizeof(name), "p%zu-wrap", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;

    /*
     * The regression the fuzzer first found (a signed overflow in the lead
     * bookkeeping): a worker that attached and then published an out_write
     * half the 64-bit range behind the daemon.
     */
    running(&ctl, lat, UINT64_C(1) << 63, 0, 0);
    atomic_store(&ctl.w.worker_pid, 4242);
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, seg.base[RW_FILE_DAEMON], sizeof(*h));
    put_control(&s, &ctl);
    put(&s, FUZZ_OP_SET, 1);
    put(&s, 2, 1);
    put(&s, 1, 8);
    op_cycle(&s, period);
    op_cycle(&s, 1);
    atomic_store(&ctl.w.worker_pid, 0);
    snprintf(name, sizeof(name), "p%zu-lead-overflow", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;

    /* Gaps: the graph skips a period, a ring and more, with the worker keeping up between. */
    running(&ctl, lat, 20000, 0, 5);
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, seg.base[RW_FILE_DAEMON], sizeof(*h));
    put_control(&s, &ctl);
    op_gap(&s, 0, period); /* starts the clock */
    op_worker(&s, period);
    op_gap(&s, period, period);
    op_worker(&s, 4 * period);
    op_gap(&s, h->capacity < 65535 ? h->capacity : 65535, period);
    op_gap(&s, 7, period); /* a second gap before the worker read past the first */
    op_worker(&s, period);
    op_gap(&s, 0, period);
    op_worker(&s, period);
    snprintf(name, sizeof(name), "p%zu-gap", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;

    /* Hostile: everything a worker can do wrong, between honest cycles. */
    running(&ctl, lat, 5000, lat / 4, 3);
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, seg.base[RW_FILE_DAEMON], sizeof(*h));
    put_control(&s, &ctl);
    honest(&s, period, 2);
    put(&s, FUZZ_OP_SAMPLES, 1); /* NaN into the output the daemon is about to play */
    put(&s, 0, 1);
    put(&s, 5000 + lat / 4, 2);
    put(&s, period, 2);
    put(&s, 0x7fc00000u, 4);
    op_cycle(&s, period);
    put(&s, FUZZ_OP_PARAM, 1);
    put(&s, 1, 4);
    put(&s, 0x3f000000u, 4);
    put(&s, FUZZ_OP_MIDI, 1);
    put(&s, 3, 1);
    /* frame, size, bytes: a note on, a note off at the cycle's end, an over-long event */
    put(&s, 0, 2);
    put(&s, 3, 1);
    put(&s, 0x7f3c90, 3);
    put(&s, period - 1, 2);
    put(&s, 3, 1);
    put(&s, 0x003c80, 3);
    put(&s, 60000, 2);
    put(&s, 5, 1);
    put(&s, 0xf0f0f0, 3);
    op_cycle(&s, period);
    struct rw_record rec = {.time = 5000, .type = RW_EVENT_PARAM_OUT};
    rec.u.param.id = 0;
    rec.u.param.value = 0.25f;
    put(&s, FUZZ_OP_MESSAGE, 1);
    put_mem(&s, &rec, sizeof(rec));
    put(&s, FUZZ_OP_MOVE, 1); /* in_read ahead of in_write: the worker claims future input */
    put(&s, 1, 1);
    put(&s, 10 * period, 4);
    op_cycle(&s, period);
    put(&s, FUZZ_OP_SET, 1); /* out_write far ahead: an impossible fill */
    put(&s, 2, 1);
    put(&s, UINT64_C(1) << 62, 8);
    op_cycle(&s, period);
    put(&s, FUZZ_OP_WAKE, 1);
    put(&s, 1, 4);
    put(&s, 1, 4);
    put(&s, FUZZ_OP_HEADER, 1); /* the header's latency changes under the daemon */
    put(&s, offsetof(struct rw_segment_header, latency), 2);
    put(&s, 0xff, 1);
    op_cycle(&s, period);
    snprintf(name, sizeof(name), "p%zu-hostile", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;

    /* Header only: a valid header of another geometry (validates, but is not ours). */
    struct proto_segment_params other = fuzz_seg_presets[pi];
    struct rw_segment_header oh;
    other.latency += 100;
    other.n_outputs = other.n_outputs % RW_MAX_CHANNELS + 1;
    if (proto_segment_layout(&other, &oh, err, sizeof(err)) != 0) {
      fprintf(stderr, "gen_segment_seeds: %s\n", err);
      return 1;
    }
    s.len = 0;
    put(&s, pi, 1);
    put_mem(&s, &oh, sizeof(oh));
    snprintf(name, sizeof(name), "p%zu-other-header", pi);
    if (write_seed(argv[1], name, &s) != 0)
      return 1;
    shm_segment_release(&seg);
  }
  return 0;
}
