/*
 * proto/segment_layout: parameter ranges, geometry of the computed layout,
 * validation of a header the peer may have scribbled over, and a corruption
 * test that scribbles a real segment's header and counters and runs every
 * ring reader on the result (run under ASan, an out-of-bounds access fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"
#include "segment_layout.h"
#include "spsc.h"
#include "timeline.h"
#include "wake.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HDR_FIELD(f)                                                                               \
  offsetof(struct rw_segment_header, f), sizeof(((struct rw_segment_header *)0)->f)
#define HDR_FILE_SIZE(i)                                                                           \
  offsetof(struct rw_segment_header, file_size) + (i) * sizeof(uint64_t), sizeof(uint64_t)

/* validate's view of a header alone: the file sizes it states are the real ones. */
static int validate(const struct rw_segment_header *h, struct rw_segment_header *out, char *err,
                    size_t errlen) {
  return proto_segment_validate(h, h->file_size, out, err, errlen);
}

/* The same with file sizes of its own, and a header that claims something else. */
static int validate_sizes(const struct rw_segment_header *h, uint64_t daemon_size,
                          uint64_t worker_size) {
  const uint64_t sizes[RW_FILE_COUNT] = {daemon_size, worker_size};
  return proto_segment_validate(h, sizes, NULL, NULL, 0);
}

static struct proto_segment_params base_params(void) {
  struct proto_segment_params p = {
      .sample_rate = 48000,
      .n_inputs = 2,
      .n_outputs = 2,
      .flags = 0,
      .latency = 4800,
      .max_period = 256,
      .event_capacity = 0,
      .message_capacity = 0,
      .wake_frames = 0,
      .generation = 7,
  };
  return p;
}

static int layout(const struct proto_segment_params *p, struct rw_segment_header *h) {
  char err[256] = "";
  int rc = proto_segment_layout(p, h, err, sizeof(err));
  if (rc != 0)
    assert_true(err[0] != '\0'); /* a refusal always says why */
  return rc;
}

static int is_pow2_u64(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* ---- capacity ------------------------------------------------------------ */

static void check_capacity(uint32_t l, uint32_t period) {
  uint32_t cap = proto_segment_capacity(l, period);
  uint64_t need = 2 * ((uint64_t)l + period);
  uint64_t floor_cap = need > 256 ? need : 256;
  assert_true(is_pow2_u64(cap));
  assert_true(cap >= need);
  assert_true(cap >= 256);
  /* The smallest such power of two: half of it would not do. */
  assert_true(cap / 2 < floor_cap);
}

static void test_capacity(void **state) {
  (void)state;
  static const uint32_t periods[] = {1, 16, 32, 64, 100, 128, 256, 1000, 1024, 4096, 8192};
  for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
    for (uint32_t l = 1; l < 20000; l += 37)
      check_capacity(l, periods[i]);
    for (uint32_t k = 7; k <= 22; k++) {
      if ((1u << k) <= periods[i] + 1)
        continue;
      uint32_t l = (1u << k) - periods[i];
      {
        check_capacity(l - 1, periods[i]);
        check_capacity(l, periods[i]);
        check_capacity(l + 1, periods[i]);
      }
    }
  }
  assert_int_equal(proto_segment_capacity(1, 1), 256);
  assert_int_equal(proto_segment_capacity(64, 64), 256);
  assert_int_equal(proto_segment_capacity(64, 65), 512);
  assert_int_equal(proto_segment_capacity(4800, 256), 16384);
  assert_int_equal(proto_segment_capacity((1u << 23) - 8192, 8192), 1u << 24);
  /* Too large for 32 bits: 0, never a truncated capacity. */
  assert_int_equal(proto_segment_capacity(UINT32_MAX, UINT32_MAX), 0);
}

/* ---- parameter ranges ---------------------------------------------------- */

static void test_layout_sample_rate_range(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  static const struct {
    uint32_t rate;
    int rc;
  } cases[] = {{0, -EINVAL},      {999, -EINVAL},       {1000, 0}, {44100, 0}, {768000, 0},
               {768001, -EINVAL}, {UINT32_MAX, -EINVAL}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    p.sample_rate = cases[i].rate;
    assert_int_equal(layout(&p, &h), cases[i].rc);
    if (cases[i].rc == 0)
      assert_int_equal(h.sample_rate, cases[i].rate);
  }
}

static void test_layout_channel_range(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  for (uint32_t n = 0; n <= RW_MAX_CHANNELS + 1; n++) {
    int want = n <= RW_MAX_CHANNELS ? 0 : -EINVAL;
    p = base_params();
    p.n_inputs = n;
    assert_int_equal(layout(&p, &h), want);
    if (want == 0)
      assert_int_equal(h.n_inputs, n);
    p = base_params();
    p.n_outputs = n;
    assert_int_equal(layout(&p, &h), want);
    if (want == 0)
      assert_int_equal(h.n_outputs, n);
  }
  p = base_params();
  p.n_inputs = UINT32_MAX;
  assert_int_equal(layout(&p, &h), -EINVAL);
  p = base_params();
  p.n_outputs = UINT32_MAX;
  assert_int_equal(layout(&p, &h), -EINVAL);
}

static void test_layout_flags(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  p.flags = RW_SEGMENT_F_MIDI;
  assert_int_equal(layout(&p, &h), 0);
  assert_int_equal(h.flags, RW_SEGMENT_F_MIDI);
  for (int bit = 1; bit < 32; bit++) {
    p.flags = 1u << bit;
    assert_int_equal(layout(&p, &h), -EINVAL);
  }
}

static void test_layout_period_range(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  static const struct {
    uint32_t period;
    int rc;
  } cases[] = {{0, -EINVAL}, {1, 0}, {64, 0}, {8192, 0}, {8193, -EINVAL}, {UINT32_MAX, -EINVAL}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    p.max_period = cases[i].period;
    assert_int_equal(layout(&p, &h), cases[i].rc);
    if (cases[i].rc == 0)
      assert_int_equal(h.max_period, cases[i].period);
  }
}

static void test_layout_latency_range(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  static const uint32_t periods[] = {1, 256, 8192};
  for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
    uint32_t max_l = RW_MAX_CAPACITY / 2 - periods[i];
    p = base_params();
    p.n_inputs = p.n_outputs = 1;
    p.max_period = periods[i];
    p.latency = 0;
    assert_int_equal(layout(&p, &h), -EINVAL);
    p.latency = 1;
    assert_int_equal(layout(&p, &h), 0);
    assert_int_equal(h.latency, 1);
    p.latency = max_l;
    assert_int_equal(layout(&p, &h), 0);
    assert_int_equal(h.capacity, RW_MAX_CAPACITY);
    p.latency = max_l + 1;
    assert_int_equal(layout(&p, &h), -EINVAL);
    p.latency = UINT32_MAX;
    assert_int_equal(layout(&p, &h), -EINVAL);
    p.latency = UINT32_MAX - periods[i] + 1; /* would overflow a 32-bit sum */
    assert_int_equal(layout(&p, &h), -EINVAL);
  }
}

static void test_layout_ring_capacities(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;

  assert_int_equal(layout(&p, &h), 0);
  assert_int_equal(h.event_capacity, PROTO_EVENT_CAPACITY_DEFAULT);
  assert_int_equal(h.message_capacity, PROTO_MESSAGE_CAPACITY_DEFAULT);

  for (uint32_t v = 1; v <= 2 * RW_MAX_EVENT_CAPACITY + 1; v++) {
    int pow2 = (v & (v - 1)) == 0;
    int want = pow2 && v <= RW_MAX_EVENT_CAPACITY ? 0 : -EINVAL;
    if (!pow2 && v > 70 && v % 997 != 0)
      continue; /* sample the non powers of two */
    p = base_params();
    p.event_capacity = v;
    assert_int_equal(layout(&p, &h), want);
    if (want == 0)
      assert_int_equal(h.event_capacity, v);
    p = base_params();
    p.message_capacity = v;
    assert_int_equal(layout(&p, &h), want);
    if (want == 0)
      assert_int_equal(h.message_capacity, v);
  }
  p = base_params();
  p.event_capacity = 1u << 31;
  assert_int_equal(layout(&p, &h), -EINVAL);
  p = base_params();
  p.message_capacity = UINT32_MAX;
  assert_int_equal(layout(&p, &h), -EINVAL);
}

static void test_layout_wake_frames(void **state) {
  (void)state;
  static const struct {
    uint32_t latency, period, wake, want;
  } cases[] = {
      {4800, 256, 0, 256}, /* one period */
      {4801, 128, 0, 128},
      {256, 256, 0, 256}, /* L == one period */
      {100, 256, 0, 100}, /* but at most L */
      {1, 1, 0, 1},
      {4800, 256, 1, 1}, /* explicit values are kept... */
      {4800, 256, 4800, 4800},
      {4800, 256, 4801, 4800}, /* ...and clamped to L */
      {4800, 256, UINT32_MAX, 4800},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct proto_segment_params p = base_params();
    struct rw_segment_header h;
    p.latency = cases[i].latency;
    p.max_period = cases[i].period;
    p.wake_frames = cases[i].wake;
    assert_int_equal(layout(&p, &h), 0);
    assert_int_equal(h.wake_frames_default, cases[i].want);
  }
}

static void test_layout_err_optional(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  char tiny[4] = "xyz";
  p.sample_rate = 1;
  assert_int_equal(proto_segment_layout(&p, &h, NULL, 0), -EINVAL);
  assert_int_equal(proto_segment_layout(&p, &h, tiny, sizeof(tiny)), -EINVAL);
  assert_int_equal(strlen(tiny), 3); /* truncated, still terminated */
}

/* Every structural property a reader relies on, for one layout. */
static void check_geometry(const struct proto_segment_params *p,
                           const struct rw_segment_header *h) {
  uint32_t ev = p->event_capacity ? p->event_capacity : PROTO_EVENT_CAPACITY_DEFAULT;
  uint32_t msg = p->message_capacity ? p->message_capacity : PROTO_MESSAGE_CAPACITY_DEFAULT;
  uint64_t want_size[RW_REGION_COUNT] = {
      [RW_REGION_DAEMON_CONTROL] = sizeof(struct rw_daemon_control),
      [RW_REGION_AUDIO_IN] = (uint64_t)p->n_inputs * h->capacity * sizeof(float),
      [RW_REGION_EVENTS] = (uint64_t)ev * sizeof(struct rw_record),
      [RW_REGION_STATE_REQUEST] = sizeof(struct rw_state_request) + (uint64_t)h->state_capacity,
      [RW_REGION_WORKER_CONTROL] = sizeof(struct rw_worker_control),
      [RW_REGION_AUDIO_OUT] = (uint64_t)p->n_outputs * h->capacity * sizeof(float),
      [RW_REGION_MESSAGES] = (uint64_t)msg * sizeof(struct rw_record),
      [RW_REGION_INFO] = sizeof(struct rw_info),
      [RW_REGION_STATE_REPLY] = sizeof(struct rw_state_reply) + (uint64_t)h->state_capacity,
  };
  /* What only the daemon writes is in its file; the rest in the worker's. */
  static const uint32_t want_file[RW_REGION_COUNT] = {
      [RW_REGION_DAEMON_CONTROL] = RW_FILE_DAEMON, [RW_REGION_AUDIO_IN] = RW_FILE_DAEMON,
      [RW_REGION_EVENTS] = RW_FILE_DAEMON,         [RW_REGION_STATE_REQUEST] = RW_FILE_DAEMON,
      [RW_REGION_WORKER_CONTROL] = RW_FILE_WORKER, [RW_REGION_AUDIO_OUT] = RW_FILE_WORKER,
      [RW_REGION_MESSAGES] = RW_FILE_WORKER,       [RW_REGION_INFO] = RW_FILE_WORKER,
      [RW_REGION_STATE_REPLY] = RW_FILE_WORKER,
  };

  assert_int_equal(h->magic, RW_SEGMENT_MAGIC);
  assert_int_equal(h->state_capacity,
                   p->state_capacity ? p->state_capacity : RW_STATE_CAPACITY_DEFAULT);
  assert_int_equal(h->abi_version, RW_SEGMENT_ABI_VERSION);
  assert_int_equal(h->header_size, sizeof(struct rw_segment_header));
  assert_int_equal(h->record_size, sizeof(struct rw_record));
  assert_int_equal(h->generation, p->generation);
  assert_int_equal(h->capacity, proto_segment_capacity(p->latency, p->max_period));
  assert_int_equal(h->channel_stride, h->capacity);
  assert_true(h->capacity <= RW_MAX_CAPACITY);
  assert_true(h->wake_frames_default >= 1 && h->wake_frames_default <= h->latency);
  for (int f = 0; f < RW_FILE_COUNT; f++)
    assert_int_equal(h->file_size[f] % RW_PAGE_ALIGN, 0);

  /* The header opens the daemon file; the worker file has nothing before its first region. */
  uint64_t end[RW_FILE_COUNT] = {sizeof(struct rw_segment_header), 0};
  for (int i = 0; i < RW_REGION_COUNT; i++) {
    const struct rw_region *r = &h->regions[i];
    assert_int_equal(r->file, want_file[i]);
    assert_int_equal(r->reserved, 0);
    assert_int_equal(r->offset % RW_PAGE_ALIGN, 0);
    assert_int_equal(r->size, want_size[i]);
    assert_true(r->offset >= end[r->file]); /* after the header and the previous region */
    assert_true(r->offset + r->size <= h->file_size[r->file]);
    end[r->file] = r->offset + r->size;
  }
  assert_int_equal(h->regions[RW_REGION_WORKER_CONTROL].offset, 0);
  /* No slack beyond one page of alignment at the end of either file. */
  for (int f = 0; f < RW_FILE_COUNT; f++)
    assert_true(h->file_size[f] - end[f] < RW_PAGE_ALIGN);
}

static void test_layout_geometry(void **state) {
  (void)state;
  static const uint32_t chans[] = {0, 1, 2, 3, 64};
  static const uint32_t lats[] = {1, 63, 64, 100, 127, 1200, 4800, 65536, (1u << 23) - 8192};
  static const uint32_t periods[] = {1, 32, 64, 256, 1000, 8192};
  static const uint32_t caps[] = {0, 1, 2, 64, RW_MAX_EVENT_CAPACITY};
  int n = 0;
  for (size_t a = 0; a < 5; a++)
    for (size_t b = 0; b < 5; b++)
      for (size_t l = 0; l < sizeof(lats) / sizeof(lats[0]); l++)
        for (size_t q = 0; q < sizeof(periods) / sizeof(periods[0]); q++)
          for (size_t e = 0; e < 5; e++) {
            struct proto_segment_params p = base_params();
            struct rw_segment_header h;
            p.n_inputs = chans[a];
            p.n_outputs = chans[b];
            p.latency = lats[l];
            p.max_period = periods[q];
            p.event_capacity = caps[e];
            p.message_capacity = caps[(e + 1) % 5];
            p.flags = (uint32_t)(a & 1);
            if ((uint64_t)p.latency + p.max_period > RW_MAX_CAPACITY / 2) {
              assert_int_equal(layout(&p, &h), -EINVAL);
              continue;
            }
            assert_int_equal(layout(&p, &h), 0);
            check_geometry(&p, &h);
            /* A fresh layout validates; validate reads only the header. */
            struct rw_segment_header out;
            assert_int_equal(validate(&h, &out, NULL, 0), 0);
            assert_memory_equal(&out, &h, sizeof(h));
            n++;
          }
  assert_true(n > 1000);
}

/* ---- validation ---------------------------------------------------------- */

static void set_field(struct rw_segment_header *h, size_t off, size_t size, uint64_t v) {
  unsigned char *b = (unsigned char *)h + off;
  if (size == 4) {
    uint32_t v32 = (uint32_t)v;
    memcpy(b, &v32, 4);
  } else {
    memcpy(b, &v, 8);
  }
}

static uint64_t get_field(const struct rw_segment_header *h, size_t off, size_t size) {
  const unsigned char *b = (const unsigned char *)h + off;
  if (size == 4) {
    uint32_t v32;
    memcpy(&v32, b, 4);
    return v32;
  }
  uint64_t v;
  memcpy(&v, b, 8);
  return v;
}

static void test_validate_accepts_fresh(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h, out;
  char err[256] = "";
  assert_int_equal(layout(&p, &h), 0);
  memset(&out, 0xab, sizeof(out));
  assert_int_equal(validate(&h, &out, err, sizeof(err)), 0);
  assert_memory_equal(&out, &h, sizeof(h));
  assert_int_equal(validate(&h, NULL, NULL, 0), 0);
}

/*
 * Each row changes one field of a fresh header so that it no longer matches
 * the layout its own parameters give: every one must be refused.
 */
struct mutation {
  const char *what;
  size_t off, size;
  uint64_t value;
};

static void test_validate_rejects_field_changes(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header good;
  assert_int_equal(layout(&p, &good), 0);
  assert_int_equal(good.capacity, 16384);

  const struct mutation muts[] = {
      {"magic", HDR_FIELD(magic), RW_SEGMENT_MAGIC ^ 1},
      {"magic 0", HDR_FIELD(magic), 0},
      {"abi_version", HDR_FIELD(abi_version), RW_SEGMENT_ABI_VERSION + 1},
      {"abi_version 0", HDR_FIELD(abi_version), 0},
      {"header_size small", HDR_FIELD(header_size), sizeof(good) - 8},
      {"header_size large", HDR_FIELD(header_size), sizeof(good) + 8},
      {"daemon file size", HDR_FILE_SIZE(0), good.file_size[0] + RW_PAGE_ALIGN},
      {"daemon file size small", HDR_FILE_SIZE(0), good.file_size[0] - RW_PAGE_ALIGN},
      {"worker file size", HDR_FILE_SIZE(1), good.file_size[1] + RW_PAGE_ALIGN},
      {"worker file size small", HDR_FILE_SIZE(1), good.file_size[1] - RW_PAGE_ALIGN},
      {"sample_rate low", HDR_FIELD(sample_rate), RW_MIN_SAMPLE_RATE - 1},
      {"sample_rate high", HDR_FIELD(sample_rate), RW_MAX_SAMPLE_RATE + 1},
      {"n_inputs", HDR_FIELD(n_inputs), 3},
      {"n_inputs 0", HDR_FIELD(n_inputs), 0},
      {"n_inputs huge", HDR_FIELD(n_inputs), RW_MAX_CHANNELS + 1},
      {"n_outputs", HDR_FIELD(n_outputs), 1},
      {"n_outputs huge", HDR_FIELD(n_outputs), UINT32_MAX},
      {"flags", HDR_FIELD(flags), 2},
      {"flags high", HDR_FIELD(flags), 0x80000001u},
      {"capacity double", HDR_FIELD(capacity), 32768},
      {"capacity half", HDR_FIELD(capacity), 8192},
      {"capacity odd", HDR_FIELD(capacity), 16385},
      {"capacity 0", HDR_FIELD(capacity), 0},
      {"latency 0", HDR_FIELD(latency), 0},
      {"latency needs a larger ring", HDR_FIELD(latency), 8000},
      {"latency huge", HDR_FIELD(latency), UINT32_MAX},
      {"max_period 0", HDR_FIELD(max_period), 0},
      {"max_period needs a larger ring", HDR_FIELD(max_period), 4096},
      {"max_period huge", HDR_FIELD(max_period), RW_MAX_PERIOD + 1},
      {"channel_stride", HDR_FIELD(channel_stride), 8192},
      {"channel_stride odd", HDR_FIELD(channel_stride), 16383},
      {"channel_stride 0", HDR_FIELD(channel_stride), 0},
      {"event_capacity", HDR_FIELD(event_capacity), 512},
      {"event_capacity npot", HDR_FIELD(event_capacity), 1023},
      {"event_capacity 0", HDR_FIELD(event_capacity), 0},
      {"event_capacity huge", HDR_FIELD(event_capacity), RW_MAX_EVENT_CAPACITY * 2},
      {"message_capacity", HDR_FIELD(message_capacity), 512},
      {"message_capacity npot", HDR_FIELD(message_capacity), 255},
      {"message_capacity 0", HDR_FIELD(message_capacity), 0},
      {"record_size", HDR_FIELD(record_size), 16},
      {"record_size 0", HDR_FIELD(record_size), 0},
      {"record_size large", HDR_FIELD(record_size), 64},
      {"wake_frames_default 0", HDR_FIELD(wake_frames_default), 0},
      {"wake_frames_default > L", HDR_FIELD(wake_frames_default), 4801},
  };
  for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
    struct rw_segment_header h = good, out;
    char err[256] = "";
    set_field(&h, muts[i].off, muts[i].size, muts[i].value);
    memset(&out, 0x5c, sizeof(out));
    int rc = proto_segment_validate(&h, good.file_size, &out, err, sizeof(err));
    if (rc != -EPROTO)
      fail_msg("%s: validate returned %d, expected -EPROTO", muts[i].what, rc);
    assert_true(err[0] != '\0');
    /* *out is only written on success. */
    unsigned char untouched[sizeof(out)];
    memset(untouched, 0x5c, sizeof(untouched));
    assert_memory_equal(&out, untouched, sizeof(out));
  }

  /* Every region's file, moved to the other one (and to one that does not exist). */
  for (int r = 0; r < RW_REGION_COUNT; r++) {
    const uint32_t files[] = {!good.regions[r].file, RW_FILE_COUNT, UINT32_MAX};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
      struct rw_segment_header h = good;
      h.regions[r].file = files[i];
      assert_int_equal(proto_segment_validate(&h, good.file_size, NULL, NULL, 0), -EPROTO);
    }
    struct rw_segment_header h = good;
    h.regions[r].reserved = 1;
    assert_int_equal(proto_segment_validate(&h, good.file_size, NULL, NULL, 0), -EPROTO);
  }

  /* Every region's offset and size, each by a page, a byte and to zero. */
  for (int r = 0; r < RW_REGION_COUNT; r++) {
    const int64_t deltas[] = {RW_PAGE_ALIGN, -(int64_t)RW_PAGE_ALIGN, 1, -1, 8};
    for (int field = 0; field < 2; field++) {
      size_t off = offsetof(struct rw_segment_header, regions) +
                   (size_t)r * sizeof(struct rw_region) +
                   (field ? offsetof(struct rw_region, size) : offsetof(struct rw_region, offset));
      uint64_t v = get_field(&good, off, 8);
      for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
        struct rw_segment_header h = good;
        set_field(&h, off, 8, v + (uint64_t)deltas[d]);
        int rc = proto_segment_validate(&h, good.file_size, NULL, NULL, 0);
        if (rc != -EPROTO)
          fail_msg("region %d %s %+" PRId64 ": validate returned %d", r, field ? "size" : "offset",
                   deltas[d], rc);
      }
      struct rw_segment_header h = good;
      set_field(&h, off, 8, v == 0 ? 1 : 0);
      assert_int_equal(proto_segment_validate(&h, good.file_size, NULL, NULL, 0), -EPROTO);
      set_field(&h, off, 8, UINT64_MAX);
      assert_int_equal(proto_segment_validate(&h, good.file_size, NULL, NULL, 0), -EPROTO);
    }
  }
}

/*
 * The header's free parameters (rate, flags, L, period, wake size, generation)
 * determine the geometry but are not determined by it: a change that keeps
 * the geometry is a different but consistent segment, which validate alone
 * cannot tell from the original. shm_segment_check, which compares with the
 * private snapshot, refuses them (test_segment.c).
 */
static void test_validate_accepts_consistent_parameter_changes(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header good;
  assert_int_equal(layout(&p, &good), 0);

  const struct mutation muts[] = {
      {"sample_rate", HDR_FIELD(sample_rate), 44100},
      {"flags", HDR_FIELD(flags), RW_SEGMENT_F_MIDI},
      {"latency in the same ring", HDR_FIELD(latency), 4700},
      {"max_period in the same ring", HDR_FIELD(max_period), 255},
      {"wake_frames_default", HDR_FIELD(wake_frames_default), 1},
      {"generation", HDR_FIELD(generation), 8},
  };
  for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
    struct rw_segment_header h = good, out;
    set_field(&h, muts[i].off, muts[i].size, muts[i].value);
    int rc = proto_segment_validate(&h, good.file_size, &out, NULL, 0);
    if (rc != 0)
      fail_msg("%s: validate returned %d, expected 0", muts[i].what, rc);
    assert_int_equal(get_field(&out, muts[i].off, muts[i].size), muts[i].value);
  }
}

static int in_free_field(size_t byte) {
  static const size_t free_fields[][2] = {
      {HDR_FIELD(sample_rate)},
      {HDR_FIELD(flags)},
      {HDR_FIELD(latency)},
      {HDR_FIELD(max_period)},
      {HDR_FIELD(wake_frames_default)},
      {HDR_FIELD(generation)},
  };
  for (size_t i = 0; i < sizeof(free_fields) / sizeof(free_fields[0]); i++)
    if (byte >= free_fields[i][0] && byte < free_fields[i][0] + free_fields[i][1])
      return 1;
  return 0;
}

static void test_validate_every_bit_flip(void **state) {
  (void)state;
  static const uint32_t lats[] = {64, 4800};
  int accepted = 0;
  for (size_t li = 0; li < 2; li++) {
    struct proto_segment_params p = base_params();
    struct rw_segment_header good;
    p.latency = lats[li];
    p.max_period = lats[li] == 64 ? 32 : 256;
    assert_int_equal(layout(&p, &good), 0);
    for (size_t byte = 0; byte < sizeof(good); byte++) {
      for (int bit = 0; bit < 8; bit++) {
        struct rw_segment_header h = good, out;
        ((unsigned char *)&h)[byte] ^= (unsigned char)(1u << bit);
        int rc = proto_segment_validate(&h, good.file_size, &out, NULL, 0);
        if (rc == 0) {
          accepted++;
          if (!in_free_field(byte))
            fail_msg("flipping bit %d of header byte %zu was accepted", bit, byte);
          assert_memory_equal(&out, &h, sizeof(h));
        } else {
          assert_int_equal(rc, -EPROTO);
        }
      }
    }
  }
  assert_true(accepted > 0);
}

static void test_validate_map_size(void **state) {
  (void)state;
  struct proto_segment_params p = base_params();
  struct rw_segment_header h;
  char err[256] = "";
  assert_int_equal(layout(&p, &h), 0);

  const uint64_t d = h.file_size[RW_FILE_DAEMON], w = h.file_size[RW_FILE_WORKER];
  const uint64_t none[RW_FILE_COUNT] = {0, w};
  assert_int_equal(proto_segment_validate(&h, none, NULL, err, sizeof(err)), -EINVAL);
  assert_true(err[0] != '\0');
  assert_int_equal(validate_sizes(&h, sizeof(h) - 1, w), -EINVAL);
  assert_int_equal(validate_sizes(&h, 8, w), -EINVAL);
  assert_int_equal(proto_segment_validate(NULL, h.file_size, NULL, NULL, 0), -EINVAL);
  /* Exactly a header is big enough to be read, but not the segment it describes. */
  assert_int_equal(validate_sizes(&h, sizeof(h), w), -EPROTO);
  assert_int_equal(validate_sizes(&h, d - 1, w), -EPROTO);
  assert_int_equal(validate_sizes(&h, d + 1, w), -EPROTO);
  assert_int_equal(validate_sizes(&h, d + RW_PAGE_ALIGN, w), -EPROTO);
  /* The worker file's size counts just as much. */
  assert_int_equal(validate_sizes(&h, d, 0), -EPROTO);
  assert_int_equal(validate_sizes(&h, d, w - 1), -EPROTO);
  assert_int_equal(validate_sizes(&h, d, w + RW_PAGE_ALIGN), -EPROTO);
  assert_int_equal(validate_sizes(&h, w, d), -EPROTO);
  assert_int_equal(validate_sizes(&h, d, w), 0);
}

/* ---- corruption ---------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void) {
  /* splitmix64: tiny, and good enough to spread scribbles. */
  uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

#define CORRUPT_ITERATIONS 20000
#define CORRUPT_SEED UINT64_C(0x52554e5741590001)

struct corrupt {
  struct shm_segment seg;
  struct shm_ctl ctl;
  uint32_t cap, lat, period;
  struct shm_tl_daemon d;
  struct shm_tl_worker w;
  int w_ok;
  struct shm_spsc_producer ev_tx, msg_tx; /* daemon's events, worker's messages */
  struct shm_spsc_consumer ev_rx, msg_rx;
  /* Result tallies, to prove both the error and the success paths ran. */
  int n_validate_ok, n_validate_bad, n_read_valid, n_read_proto, n_init_ok, n_init_bad;
  int n_plan_ok, n_plan_proto, n_plan_skip, n_stale, n_pop, n_pop_proto, n_push_proto;
  /* Results that stay in bounds but are wrong: counted so all iterations still run. */
  int n_violations;
  char violations[3][160]; /* the first of each kind */
  int n_kind[3];
};

static _Atomic uint64_t *position(const struct shm_ctl *c, int i) {
  struct rw_position *pos[] = {&c->d->in_write, &c->w->in_read, &c->w->out_write, &c->d->out_read,
                               &c->d->ev_write, &c->w->ev_read, &c->w->msg_write, &c->d->msg_read};
  return &pos[i]->value;
}

static void note_violation(struct corrupt *k, uint64_t iter, int kind, const char *what, uint64_t a,
                           uint64_t b) {
  k->n_violations++;
  if (k->n_kind[kind]++ == 0)
    snprintf(k->violations[kind], sizeof(k->violations[kind]),
             "iteration %" PRIu64 ": %s (in_write %" PRIu64 ", worker pos %" PRIu64 ")", iter, what,
             a, b);
}

/* One stretch of slack: a canary and, under ASan, poison; or the check that it is intact. */
static void guard_bytes(unsigned char *base, uint64_t from, uint64_t to, int poison, int file) {
  if (to <= from)
    return;
  if (poison) {
    memset(base + from, 0xa5, to - from);
    POISON(base + from, to - from);
    return;
  }
  UNPOISON(base + from, to - from);
  for (uint64_t b = from; b < to; b++)
    if (base[b] != 0xa5)
      fail_msg("byte %" PRIu64 " of file %d, outside every region, was written", b, file);
}

/* Fills the alignment slack between the regions of both files with a canary (see guard_bytes). */
static void guard_slack(struct corrupt *k, int poison) {
  const struct rw_segment_header *h = &k->seg.layout;
  for (int f = 0; f < RW_FILE_COUNT; f++) {
    unsigned char *base = k->seg.base[f];
    uint64_t end = f == RW_FILE_DAEMON ? sizeof(struct rw_segment_header) : 0;
    for (int i = 0; i < RW_REGION_COUNT; i++) {
      if (h->regions[i].file != (uint32_t)f)
        continue;
      guard_bytes(base, end, h->regions[i].offset, poison, f);
      end = h->regions[i].offset + h->regions[i].size;
    }
    guard_bytes(base, end, h->file_size[f], poison, f);
  }
}

static void reset_ends(struct corrupt *k) {
  struct shm_segment *s = &k->seg;
  const struct rw_segment_header *h = &s->layout;
  const struct shm_ctl *c = &k->ctl;
  shm_spsc_producer_init(&k->ev_tx, &c->d->ev_write.value, &c->w->ev_read.value, s->events,
                         h->record_size, h->event_capacity, atomic_load(&c->d->ev_write.value));
  shm_spsc_consumer_init(&k->ev_rx, &c->d->ev_write.value, &c->w->ev_read.value, s->events,
                         h->record_size, h->event_capacity, atomic_load(&c->w->ev_read.value));
  shm_spsc_producer_init(&k->msg_tx, &c->w->msg_write.value, &c->d->msg_read.value, s->messages,
                         h->record_size, h->message_capacity, atomic_load(&c->w->msg_write.value));
  shm_spsc_consumer_init(&k->msg_rx, &c->w->msg_write.value, &c->d->msg_read.value, s->messages,
                         h->record_size, h->message_capacity, atomic_load(&c->d->msg_read.value));
}

/* Puts every counter back into a state an honest pair could be in, at a random time. */
static void reset_counters(struct corrupt *k) {
  static const uint64_t bases[] = {0, 1000, UINT32_MAX - 100, UINT64_C(1) << 40};
  const struct shm_ctl *c = &k->ctl;
  uint64_t t = bases[rnd_below(4)] + rnd_below(4 * k->cap);
  uint64_t behind = rnd_below(k->lat + 1);
  if (behind > t)
    behind = t;
  k->d.pos = t;
  atomic_store(&c->d->in_write.value, t);
  atomic_store(&c->d->out_read.value, t);
  atomic_store(&c->w->in_read.value, t - behind);
  atomic_store(&c->w->out_write.value, t - behind + k->lat);
  for (int i = 4; i < 8; i++)
    atomic_store(position(c, i), t);
  atomic_store(&c->w->sleeping, 0);
  atomic_store(&c->w->wake_frames, k->seg.layout.wake_frames_default);
  k->w_ok = shm_tl_worker_init(&k->w, &k->seg) == 0;
  assert_true(k->w_ok);
  reset_ends(k);
}

/*
 * Scribbles on the header or either control block. In runway only the
 * worker control block is a worker's to write, but each end here is checked
 * against whatever the other end may hold, the daemon's included.
 */
static void scribble(struct corrupt *k) {
  unsigned char *area;
  size_t size;
  switch (rnd_below(5)) {
  case 0:
  case 1:
    area = k->seg.base[RW_FILE_DAEMON];
    size = sizeof(struct rw_segment_header);
    break;
  case 2:
    area = (unsigned char *)k->ctl.d;
    size = sizeof(struct rw_daemon_control);
    break;
  default:
    area = (unsigned char *)k->ctl.w;
    size = sizeof(struct rw_worker_control);
    break;
  }
  size_t off = rnd_below(size);
  size_t len = 1 + rnd_below(size - off < 24 ? size - off : 24);

  switch (rnd_below(6)) {
  case 0:
    for (size_t i = 0; i < len; i++)
      area[off + i] = (unsigned char)rnd();
    break;
  case 1:
    memset(area + off, 0, len);
    break;
  case 2:
    memset(area + off, 0xff, len);
    break;
  case 3:
    area[off] ^= (unsigned char)(1u << rnd_below(8));
    break;
  default: {
    /* A position moved near another one: the boundaries of every check. */
    _Atomic uint64_t *dst = position(&k->ctl, (int)rnd_below(8));
    uint64_t ref = atomic_load(position(&k->ctl, (int)rnd_below(8)));
    int64_t span = 2 * (int64_t)k->cap + k->lat;
    atomic_store(dst, ref + (uint64_t)((int64_t)rnd_below((uint64_t)(2 * span + 1)) - span));
    break;
  }
  }
}

static float *alloc_floats(uint32_t n) {
  /* Exactly n floats, so ASan catches a copy of one frame too many. */
  float *p = malloc(n ? (size_t)n * sizeof(float) : 1);
  assert_non_null(p);
  for (uint32_t i = 0; i < n; i++)
    p[i] = 1.0f + (float)i;
  return p;
}

static void check_header(struct corrupt *k) {
  struct rw_segment_header out;
  char err[256];
  const uint64_t sizes[RW_FILE_COUNT] = {k->seg.size[RW_FILE_DAEMON], k->seg.size[RW_FILE_WORKER]};
  int rc = proto_segment_validate(k->seg.base[RW_FILE_DAEMON], sizes, &out, err, sizeof(err));
  if (rc == 0) {
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
        .generation = out.generation,
    };
    struct rw_segment_header again;
    k->n_validate_ok++;
    assert_int_equal(proto_segment_layout(&p, &again, NULL, 0), 0);
    assert_memory_equal(&again, &out, sizeof(out));
    for (int i = 0; i < RW_REGION_COUNT; i++)
      assert_true(out.regions[i].offset + out.regions[i].size <= sizes[out.regions[i].file]);
  } else {
    k->n_validate_bad++;
    assert_int_equal(rc, -EPROTO);
  }
  /* check refuses exactly the headers that differ from the private snapshot. */
  int same = memcmp(k->seg.base[RW_FILE_DAEMON], &k->seg.layout, sizeof(out)) == 0;
  rc = shm_segment_check(&k->seg, err, sizeof(err));
  assert_int_equal(rc, same ? 0 : -EPROTO);
}

static void run_daemon(struct corrupt *k) {
  const struct shm_ctl *c = &k->ctl;
  uint32_t n = (uint32_t)rnd_below(k->period + 2);
  uint32_t ch_in = k->seg.layout.n_inputs, ch_out = k->seg.layout.n_outputs;
  float *src[RW_MAX_CHANNELS], *dst[RW_MAX_CHANNELS];
  for (uint32_t i = 0; i < ch_in; i++)
    src[i] = alloc_floats(n);
  for (uint32_t i = 0; i < ch_out; i++)
    dst[i] = alloc_floats(n);

  uint64_t t = k->d.pos;
  uint64_t in_write_before = atomic_load(&c->d->in_write.value);
  uint64_t in_read = atomic_load(&c->w->in_read.value);
  int64_t backlog = shm_tl_daemon_write_input(&k->d, (const float *const *)src, n);
  if (n == 0 || n > k->period) {
    assert_int_equal(backlog, -EINVAL);
    assert_int_equal(atomic_load(&c->d->in_write.value), in_write_before);
  } else {
    assert_int_equal(atomic_load(&c->d->in_write.value), t + n);
    if (in_read > t + n)
      assert_int_equal(backlog, -EPROTO);
    else
      assert_int_equal(backlog, (int64_t)(t + n - in_read));
  }

  if (rnd_below(4) == 0)
    shm_wake_worker_if_due(c, atomic_load(&c->d->in_write.value), k->cap);

  uint64_t out_write = atomic_load(&c->w->out_write.value);
  int rc = shm_tl_daemon_read_output(&k->d, dst, n);
  uint32_t valid = 0;
  if (n == 0 || n > k->period) {
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(k->d.pos, t);
  } else {
    int64_t fill = (int64_t)(out_write - t);
    if (fill > (int64_t)n + k->lat) {
      assert_int_equal(rc, -EPROTO);
      k->n_read_proto++;
    } else {
      valid = fill <= 0 ? 0 : fill >= n ? n : (uint32_t)fill;
      assert_int_equal(rc, valid);
      k->n_read_valid += valid > 0;
    }
    assert_int_equal(k->d.pos, t + n);
    assert_int_equal(atomic_load(&c->d->out_read.value), t + n);
  }
  for (uint32_t i = 0; i < ch_out; i++) {
    const float *ring = k->seg.audio_out + (size_t)i * k->seg.layout.channel_stride;
    for (uint32_t f = 0; f < n; f++) {
      float want = f < valid ? ring[(t + f) & (k->cap - 1)] : 0.0f;
      assert_memory_equal(&dst[i][f], &want, sizeof(float));
    }
  }
  for (uint32_t i = 0; i < ch_in; i++)
    free(src[i]);
  for (uint32_t i = 0; i < ch_out; i++)
    free(dst[i]);
}

static void run_worker(struct corrupt *k, uint64_t iter) {
  const struct shm_ctl *c = &k->ctl;
  uint32_t ch_in = k->seg.layout.n_inputs, ch_out = k->seg.layout.n_outputs;

  if (!k->w_ok || rnd_below(4) == 0) {
    uint64_t ow = atomic_load(&c->w->out_write.value);
    uint64_t iw = atomic_load(&c->d->in_write.value);
    int rc = shm_tl_worker_init(&k->w, &k->seg);
    k->w_ok = rc == 0;
    if (rc == 0) {
      k->n_init_ok++;
      assert_true(ow >= k->lat && ow - k->lat <= iw);
      assert_int_equal(k->w.pos, ow - k->lat);
      assert_int_equal(atomic_load(&c->w->in_read.value), k->w.pos);
    } else {
      k->n_init_bad++;
      assert_int_equal(rc, -EPROTO);
      assert_true(ow < k->lat || ow - k->lat > iw);
      return;
    }
  }

  uint64_t pos = k->w.pos;
  int64_t pending = shm_tl_worker_pending(&k->w);
  uint64_t iw = atomic_load(&c->d->in_write.value);
  if (iw < pos)
    assert_int_equal(pending, -EPROTO);
  else if (iw - pos <= INT64_MAX)
    assert_int_equal(pending, (int64_t)(iw - pos));
  else if (pending < 0 && pending != -EPROTO)
    note_violation(k, iter, 0, "pending returned a negative count that is not -EPROTO", iw, pos);

  uint32_t max_frames = 1 + (uint32_t)rnd_below(k->cap);
  uint64_t out_rd = atomic_load(&c->d->out_read.value);
  struct shm_tl_chunk chunk;
  int rc = shm_tl_worker_plan(&k->w, max_frames, &chunk);
  if (rc < 0) {
    assert_int_equal(rc, -EPROTO);
    assert_true(iw < pos || out_rd > iw);
    assert_int_equal(k->w.pos, pos);
    k->n_plan_proto++;
    return;
  }
  k->n_plan_ok++;
  assert_int_equal(rc, chunk.frames);
  assert_true(chunk.frames <= max_frames);
  assert_int_equal(chunk.pos, k->w.pos);
  assert_int_equal(chunk.skipped, k->w.pos - pos);
  assert_true(chunk.frames <= iw - chunk.pos);
  if (chunk.skipped > 0) {
    k->n_plan_skip++;
    assert_int_equal(atomic_load(&c->w->out_write.value), chunk.pos + k->lat);
    assert_int_equal(atomic_load(&c->w->in_read.value), chunk.pos);
  }
  /* A planned chunk must lie where the daemon cannot be overwriting it. */
  if (iw - chunk.pos > k->cap - k->period)
    note_violation(k, iter, 1, "plan returned a chunk whose input may be overwritten", iw,
                   chunk.pos);

  /* The daemon (or a scribble) may move in_write between plan and copy. */
  uint64_t race = rnd_below(8);
  if (race == 0)
    scribble(k);
  else if (race == 1)
    atomic_store(&c->d->in_write.value, chunk.pos + (k->cap - k->period) - 1 + rnd_below(3));

  float *in[RW_MAX_CHANNELS], *out[RW_MAX_CHANNELS];
  for (uint32_t i = 0; i < ch_in; i++)
    in[i] = alloc_floats(chunk.frames);
  rc = shm_tl_worker_read_input(&k->w, &chunk, in);
  if (rc == 0) {
    uint64_t now = atomic_load(&c->d->in_write.value);
    /* An in_write that went backwards is the daemon's fault, not an overwrite. */
    if (now >= chunk.pos && now - chunk.pos > k->cap - k->period)
      note_violation(k, iter, 2, "read_input accepted input that may be overwritten", now,
                     chunk.pos);
    for (uint32_t i = 0; i < ch_out; i++) {
      out[i] = alloc_floats(chunk.frames);
      if (i < ch_in)
        memcpy(out[i], in[i], (size_t)chunk.frames * sizeof(float));
    }
    shm_tl_worker_write_output(&k->w, &chunk, (const float *const *)out);
    shm_tl_worker_commit(&k->w, &chunk);
    assert_int_equal(atomic_load(&c->w->out_write.value), chunk.pos + chunk.frames + k->lat);
    assert_int_equal(atomic_load(&c->w->in_read.value), chunk.pos + chunk.frames);
    for (uint32_t i = 0; i < ch_out; i++)
      free(out[i]);
  } else {
    assert_int_equal(rc, -ESTALE);
    k->n_stale++;
  }
  for (uint32_t i = 0; i < ch_in; i++)
    free(in[i]);
}

static void run_rings(struct corrupt *k) {
  uint32_t rs = k->seg.layout.record_size;
  unsigned char *rec = malloc(rs);
  assert_non_null(rec);
  memset(rec, 0x3c, rs);
  struct shm_spsc_consumer *rx[2] = {&k->ev_rx, &k->msg_rx};
  struct shm_spsc_producer *tx[2] = {&k->ev_tx, &k->msg_tx};
  for (int r = 0; r < 2; r++) {
    int n = (int)rnd_below(4);
    for (int i = 0; i < n; i++) {
      int rc = shm_spsc_push(tx[r], rec);
      assert_true(rc == 0 || rc == -ENOSPC || rc == -EPROTO);
      k->n_push_proto += rc == -EPROTO;
    }
    n = (int)rnd_below(4);
    for (int i = 0; i < n; i++) {
      int rc = rnd_below(2) ? shm_spsc_peek(rx[r], rec) : shm_spsc_pop(rx[r], rec);
      assert_true(rc == 1 || rc == 0 || rc == -EPROTO);
      k->n_pop += rc == 1;
      k->n_pop_proto += rc == -EPROTO;
    }
    int64_t a = shm_spsc_avail(rx[r]);
    assert_true(a == -EPROTO || (a >= 0 && a <= rx[r]->capacity));
    int64_t s = shm_spsc_space(tx[r]);
    assert_true(s == -EPROTO || (s >= 0 && s <= tx[r]->capacity));
  }
  free(rec);
}

static struct corrupt corrupt_state;

static void test_corruption(void **state) {
  (void)state;
  struct corrupt *k = &corrupt_state;
  char err[256] = "";
  uint64_t seed = CORRUPT_SEED;
  const char *env = getenv("RUNWAY_TEST_SEED");
  if (env != NULL && *env != '\0')
    seed = strtoull(env, NULL, 0);
  rng_state = seed;
  printf("corruption test: seed 0x%016" PRIx64 " (set RUNWAY_TEST_SEED to change), %d iterations\n",
         seed, CORRUPT_ITERATIONS);

  /* Small rings leave slack between regions, so a stray access lands in a guard. */
  struct proto_segment_params p = {.sample_rate = 48000,
                                   .n_inputs = 2,
                                   .n_outputs = 2,
                                   .latency = 64,
                                   .max_period = 32,
                                   .event_capacity = 16,
                                   .message_capacity = 8,
                                   .generation = 1};
  memset(k, 0, sizeof(*k));
  assert_int_equal(shm_segment_create(&p, "corrupt", &k->seg, err, sizeof(err)), 0);
  k->ctl = k->seg.ctl;
  k->cap = k->seg.layout.capacity;
  k->lat = k->seg.layout.latency;
  k->period = k->seg.layout.max_period;
  assert_int_equal(k->cap, 256);
  guard_slack(k, 1);
  shm_tl_daemon_init(&k->d, &k->seg);
  reset_counters(k);

  for (uint64_t iter = 0; iter < CORRUPT_ITERATIONS; iter++) {
    uint64_t what = rnd_below(16);
    if (what == 0)
      memcpy(k->seg.base[RW_FILE_DAEMON], &k->seg.layout, sizeof(k->seg.layout));
    else if (what == 1)
      reset_counters(k);
    else if (what == 2)
      reset_ends(k);
    int scribbles = (int)rnd_below(3);
    for (int i = 0; i < scribbles; i++)
      scribble(k);
    check_header(k);
    run_daemon(k);
    /* Scribble again between the two ends, so each sees values the other did not write. */
    if (rnd_below(2))
      scribble(k);
    run_worker(k, iter);
    run_rings(k);
  }

  printf("validate ok %d / refused %d; read_output valid %d / fault %d; worker init ok %d / "
         "refused %d; plan ok %d (skips %d) / fault %d; stale %d; ring pops %d / faults %d+%d\n",
         k->n_validate_ok, k->n_validate_bad, k->n_read_valid, k->n_read_proto, k->n_init_ok,
         k->n_init_bad, k->n_plan_ok, k->n_plan_skip, k->n_plan_proto, k->n_stale, k->n_pop,
         k->n_pop_proto, k->n_push_proto);
  guard_slack(k, 0);
  shm_segment_release(&k->seg);

  /* Both outcomes of every reader must have been reached for the test to mean anything. */
  assert_true(k->n_validate_ok > 0 && k->n_validate_bad > 0);
  assert_true(k->n_read_valid > 0 && k->n_read_proto > 0);
  assert_true(k->n_init_ok > 0 && k->n_init_bad > 0);
  assert_true(k->n_plan_ok > 0 && k->n_plan_proto > 0 && k->n_plan_skip > 0);
  assert_true(k->n_stale > 0);
  assert_true(k->n_pop > 0 && k->n_pop_proto > 0 && k->n_push_proto > 0);
  for (int i = 0; i < 3; i++)
    if (k->n_kind[i] > 0)
      printf("%d times, first at %s\n", k->n_kind[i], k->violations[i]);
  fflush(stdout);
  if (k->n_violations > 0)
    fail_msg("%d in-bounds but wrong worker results (listed above)", k->n_violations);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_capacity),
      cmocka_unit_test(test_layout_sample_rate_range),
      cmocka_unit_test(test_layout_channel_range),
      cmocka_unit_test(test_layout_flags),
      cmocka_unit_test(test_layout_period_range),
      cmocka_unit_test(test_layout_latency_range),
      cmocka_unit_test(test_layout_ring_capacities),
      cmocka_unit_test(test_layout_wake_frames),
      cmocka_unit_test(test_layout_err_optional),
      cmocka_unit_test(test_layout_geometry),
      cmocka_unit_test(test_validate_accepts_fresh),
      cmocka_unit_test(test_validate_rejects_field_changes),
      cmocka_unit_test(test_validate_accepts_consistent_parameter_changes),
      cmocka_unit_test(test_validate_every_bit_flip),
      cmocka_unit_test(test_validate_map_size),
      cmocka_unit_test(test_corruption),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
