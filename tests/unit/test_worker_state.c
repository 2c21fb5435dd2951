/*
 * librunway-worker's plugin declaration (the segment's info block) and the
 * plugin-state mailbox, against a daemon role played by this test: a segment
 * made with shm_segment_create, the daemon end of the timeline, and the
 * daemon's half of the mailbox protocol of <runway/segment.h>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <runway/worker.h>

#include "segment.h"
#include "spsc.h"
#include "timeline.h"
#include "wake.h"
#include "worker_rig.h"

#define RATE 48000u
#define PERIOD 64u
#define LAT 256u
#define MAXCH 2
#define SECOND_NS (1000 * 1000000LL)

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void daemon_create_cap(struct daemon_role *d, uint32_t state_capacity) {
  struct proto_segment_params params = {
      .sample_rate = RATE,
      .n_inputs = 1,
      .n_outputs = 1,
      .latency = LAT,
      .max_period = PERIOD,
      .state_capacity = state_capacity,
  };
  daemon_role_create(d, &params);
}

static void daemon_create(struct daemon_role *d) { daemon_create_cap(d, 0); }

/* Hands the segment over the way runwayd does for managed workers. */
static void export_segment(struct daemon_role *d) { daemon_role_export(d, "state"); }

static rw_worker *open_worker(struct daemon_role *d, const rw_worker_options *o) {
  return daemon_role_open_worker(d, o, "state");
}

/* Step 1 of a cycle: input [t, t+n). */
static void daemon_write(struct daemon_role *d, uint32_t n) {
  float buf[PERIOD] = {0};
  const float *src[MAXCH] = {buf, buf};
  assert_true(shm_tl_daemon_write_input(&d->tl, src, n) >= 0);
}

/*
 * A whole cycle at once (input, then output, which moves time on): the
 * worker then finds the input pending. Its output is not looked at here.
 */
static void daemon_cycle(struct daemon_role *d, uint32_t n) {
  float out[PERIOD];
  float *dst[MAXCH] = {out, out};
  daemon_write(d, n);
  assert_true(shm_tl_daemon_read_output(&d->tl, dst, n) >= 0);
}

static void push_param(struct daemon_role *d, uint64_t time, uint32_t id, float value) {
  struct rw_record rec = {.time = time, .type = RW_EVENT_PARAM};
  rec.u.param.id = id;
  rec.u.param.value = value;
  assert_int_equal(shm_spsc_push(&d->ev, &rec), 0);
}

/* The daemon's half of the mailbox: op, length, data, then request++ (release). */
static uint32_t post(struct daemon_role *d, uint32_t op, const void *data, uint32_t len) {
  struct rw_state_request *box = d->seg.state_request;
  box->op = op;
  d->seg.state_reply->status = RW_STATE_PENDING; /* so a missing answer shows */
  box->length = len;
  if (data != NULL)
    memcpy(box->data, data, len);
  /* Release: op, length and data before the new request number. */
  return atomic_fetch_add_explicit(&box->request, 1, memory_order_release) + 1;
}

static uint32_t post_text(struct daemon_role *d, uint32_t op, const char *text) {
  return post(d, op, text, (uint32_t)strlen(text));
}

static int answered(struct daemon_role *d, uint32_t req) {
  /* Acquire: status, length and data the worker wrote before done. */
  return atomic_load_explicit(&d->seg.state_reply->done, memory_order_acquire) == req;
}

static int32_t status_of(struct daemon_role *d) { return d->seg.state_reply->status; }

/* The saved document as a string (the test's states are text). */
static const char *saved_text(struct daemon_role *d) {
  static char text[4096];
  uint32_t len = d->seg.state_reply->length;
  assert_true(len < sizeof(text));
  memcpy(text, d->seg.state_reply->data, len);
  text[len] = '\0';
  return text;
}

/* Gives the worker a between-blocks moment with no block: rw_worker_next, timeout 0. */
static void idle_next(rw_worker *w) {
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 0);
}

static void silence(const rw_block *b) {
  for (uint32_t c = 0; c < b->n_outputs; c++)
    memset(b->outputs[c], 0, b->frames * sizeof(float));
}

static const rw_param_info params[] = {
    {.id = 7, .name = "x", .min = 0.0f, .max = 10.0f, .def = 1.0f, .unit = "dB"},
    {.id = 9, .name = "y_2", .min = -1.0f, .max = 1.0f, .def = 0.0f, .unit = NULL},
};

/* ---- the declaration --------------------------------------------------------- */

static int64_t save_nothing(void *user, unsigned char *buf, size_t cap) {
  (void)user;
  (void)buf;
  (void)cap;
  return 0;
}

static int load_anything(void *user, const unsigned char *data, size_t len) {
  (void)user;
  (void)data;
  (void)len;
  return 0;
}

static void assert_terminated(const char *field, size_t size, const char *want) {
  size_t len = strlen(want);
  assert_true(len < size);
  assert_memory_equal(field, want, len);
  /* Terminated, and nothing left over from before behind the terminator. */
  for (size_t k = len; k < size; k++)
    assert_int_equal(field[k], 0);
}

static void test_info_filled_before_pid(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  /* A previous worker's declaration (or garbage) must not shine through. */
  memset(d.seg.info, 0xA5, sizeof(*d.seg.info));
  rw_worker_options o = {.params = params, .n_params = 2, .plugin = "my plugin 1.0"};
  rw_worker *w = open_worker(&d, &o);

  const struct rw_info *info = d.seg.info;
  assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), 0);
  assert_int_equal(info->n_params, 2);
  assert_int_equal(info->flags, 0);
  assert_terminated(info->plugin, sizeof(info->plugin), "my plugin 1.0");
  assert_int_equal(info->params[0].id, 7);
  assert_true(info->params[0].min == 0.0f);
  assert_true(info->params[0].max == 10.0f);
  assert_true(info->params[0].def == 1.0f);
  assert_terminated(info->params[0].name, RW_NAME_MAX, "x");
  assert_terminated(info->params[0].unit, RW_UNIT_MAX, "dB");
  assert_int_equal(info->params[1].id, 9);
  assert_true(info->params[1].min == -1.0f);
  assert_terminated(info->params[1].name, RW_NAME_MAX, "y_2");
  assert_terminated(info->params[1].unit, RW_UNIT_MAX, "");
  for (uint32_t i = 2; i < RW_MAX_PARAMS; i++)
    assert_int_equal(info->params[i].name[0], 0);

  /* Handlers set before the first rw_worker_next are in the flags when the pid appears. */
  rw_state_handlers h = {.save = save_nothing, .load = load_anything};
  assert_int_equal(rw_worker_set_state_handlers(w, &h), 0);
  idle_next(w);
  assert_int_equal(atomic_load_explicit(&d.seg.ctl.w->worker_pid, memory_order_acquire),
                   (uint32_t)getpid());
  assert_int_equal(info->flags, RW_INFO_F_STATE);
  /* Later changes update the flag. */
  assert_int_equal(rw_worker_set_state_handlers(w, NULL), 0);
  assert_int_equal(info->flags, 0);
  h.load = NULL;
  assert_int_equal(rw_worker_set_state_handlers(w, &h), 0);
  assert_int_equal(info->flags, RW_INFO_F_STATE);
  assert_int_equal(rw_worker_set_state_handlers(NULL, &h), RW_ERR_INVALID);

  /* The plugin's own latency: 0 until declared, then whatever it says, at once. */
  assert_int_equal(__atomic_load_n(&info->latency, __ATOMIC_RELAXED), 0);
  assert_int_equal(rw_worker_set_latency(w, 100), 0);
  assert_int_equal(__atomic_load_n(&info->latency, __ATOMIC_RELAXED), 100);
  assert_int_equal(rw_worker_set_latency(w, RW_MAX_PLUGIN_LATENCY), 0);
  assert_int_equal(__atomic_load_n(&info->latency, __ATOMIC_RELAXED), RW_MAX_PLUGIN_LATENCY);
  assert_int_equal(rw_worker_set_latency(w, RW_MAX_PLUGIN_LATENCY + 1), RW_ERR_INVALID);
  assert_int_equal(__atomic_load_n(&info->latency, __ATOMIC_RELAXED), RW_MAX_PLUGIN_LATENCY);
  assert_int_equal(rw_worker_set_latency(NULL, 1), RW_ERR_INVALID);
  assert_int_equal(rw_worker_set_latency(w, 0), 0);
  assert_int_equal(__atomic_load_n(&info->latency, __ATOMIC_RELAXED), 0);
  rw_worker_close(w);
  assert_int_equal(atomic_load(&d.seg.ctl.w->worker_pid), 0);

  /* No name given: the program's. No parameters: an empty table. */
  w = open_worker(&d, NULL);
  assert_terminated(info->plugin, sizeof(info->plugin), "test_worker_state");
  assert_int_equal(info->n_params, 0);
  assert_int_equal(info->params[0].name[0], 0);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* Parameters declared after attaching replace those of the options, until the first block. */
static void test_declare_params(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = &params[1], .n_params = 1};
  rw_worker *w = open_worker(&d, &o);
  const struct rw_info *info = d.seg.info;
  assert_int_equal(info->n_params, 1);
  assert_terminated(info->params[0].name, RW_NAME_MAX, "y_2");

  assert_int_equal(rw_worker_declare_params(w, params, 2), 0);
  assert_int_equal(info->n_params, 2);
  assert_terminated(info->params[0].name, RW_NAME_MAX, "x");
  assert_int_equal(info->params[1].id, 9);
  assert_true(rw_worker_param(w, 7) == 1.0f);

  /* A bad declaration changes nothing. */
  rw_param_info twice[] = {params[0], params[0]};
  assert_int_equal(rw_worker_declare_params(w, twice, 2), RW_ERR_INVALID);
  assert_non_null(strstr(rw_worker_error(w), "share id 7"));
  assert_int_equal(rw_worker_declare_params(w, NULL, 1), RW_ERR_INVALID);
  assert_int_equal(info->n_params, 2);
  assert_true(rw_worker_param(w, 9) == 0.0f);

  /* None at all is a declaration too. */
  assert_int_equal(rw_worker_declare_params(w, NULL, 0), 0);
  assert_int_equal(info->n_params, 0);
  assert_true(isnan(rw_worker_param(w, 7)));
  assert_int_equal(rw_worker_declare_params(w, params, 2), 0);

  /* Once the daemon may have read the declaration, it stays. */
  idle_next(w);
  assert_int_equal(rw_worker_declare_params(w, params, 1), RW_ERR_INVALID);
  assert_int_equal(info->n_params, 2);
  assert_int_equal(rw_worker_declare_params(NULL, params, 1), RW_ERR_INVALID);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void expect_refused(struct daemon_role *d, const rw_worker_options *o, const char *what) {
  rw_worker *w = (rw_worker *)&w; /* must come back NULL */
  export_segment(d);
  assert_int_equal(rw_worker_open(o, &w), RW_ERR_INVALID);
  unsetenv("RUNWAY_SEGMENT_FD");
  assert_null(w);
  if (strstr(rw_worker_error(NULL), what) == NULL)
    fail_msg("error \"%s\" does not mention \"%s\"", rw_worker_error(NULL), what);
}

static void test_bad_declarations_refused(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_param_info p = {.id = 1, .name = "ok", .max = 1.0f};
  rw_worker_options o = {.params = &p, .n_params = 1};

  const char *long31 = "abcdefghijklmnopqrstuvwxyz_1234";
  const char *long32 = "abcdefghijklmnopqrstuvwxyz_12345";
  p.name = long31;
  rw_worker *w = open_worker(&d, &o);
  assert_terminated(d.seg.info->params[0].name, RW_NAME_MAX, long31);
  rw_worker_close(w);
  p.name = long32;
  expect_refused(&d, &o, "at most 31");

  const char *bad_names[] = {"gain-db", "gain db", "g\xc3\xa4in", "x\n", "a.b", ""};
  for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
    p.name = bad_names[i];
    expect_refused(&d, &o, i == 5 ? "no name" : "letters, digits");
  }
  p.name = "ok";

  p.unit = "123456789012345"; /* 15 bytes fit */
  w = open_worker(&d, &o);
  assert_terminated(d.seg.info->params[0].unit, RW_UNIT_MAX, p.unit);
  rw_worker_close(w);
  p.unit = "1234567890123456";
  expect_refused(&d, &o, "at most 15");
  p.unit = "\"dB\"";
  expect_refused(&d, &o, "control character");
  p.unit = "d\tB";
  expect_refused(&d, &o, "control character");
  p.unit = "";

  /* The longest name that fits, and one byte more. */
  char name255[RW_PLUGIN_NAME_MAX];
  char name256[RW_PLUGIN_NAME_MAX + 1];
  memset(name255, 'n', RW_PLUGIN_NAME_MAX - 1);
  name255[RW_PLUGIN_NAME_MAX - 1] = '\0';
  memset(name256, 'n', RW_PLUGIN_NAME_MAX);
  name256[RW_PLUGIN_NAME_MAX] = '\0';
  o.plugin = name255;
  w = open_worker(&d, &o);
  assert_terminated(d.seg.info->plugin, sizeof(d.seg.info->plugin), name255);
  rw_worker_close(w);
  o.plugin = name256;
  expect_refused(&d, &o, "1 to 255");
  o.plugin = "";
  expect_refused(&d, &o, "1 to 255");
  o.plugin = "two\nlines";
  expect_refused(&d, &o, "control character");
  o.plugin = NULL;

  rw_param_info same[] = {{.id = 1, .name = "a", .max = 1.0f}, {.id = 2, .name = "a", .max = 1.0f}};
  o.params = same;
  o.n_params = 2;
  expect_refused(&d, &o, "two parameters are named \"a\"");

  /* More than the info block holds. */
  rw_param_info many[RW_MAX_PARAMS + 1];
  char names[RW_MAX_PARAMS + 1][8];
  for (uint32_t i = 0; i <= RW_MAX_PARAMS; i++) {
    snprintf(names[i], sizeof(names[i]), "p%u", i);
    many[i] = (rw_param_info){.id = i, .name = names[i], .max = 1.0f};
  }
  o.params = many;
  o.n_params = RW_MAX_PARAMS;
  w = open_worker(&d, &o);
  assert_int_equal(d.seg.info->n_params, RW_MAX_PARAMS);
  assert_terminated(d.seg.info->params[RW_MAX_PARAMS - 1].name, RW_NAME_MAX, "p127");
  rw_worker_close(w);
  o.n_params = RW_MAX_PARAMS + 1;
  expect_refused(&d, &o, "at most 128");
  daemon_destroy(&d);
}

/* ---- custom handlers ---------------------------------------------------------- */

struct blob {
  unsigned char bytes[64];
  size_t len;
  int saves;
  int loads;
  int64_t save_result; /* 0: save the blob; otherwise return this */
  int load_result;
  const void *load_ptr; /* where the data handed to load lay */
  rw_worker *w;
  int reentry; /* what rw_worker_next / set_state_handlers said from inside a handler */
  uint64_t blocks_at_load;
};

static int64_t blob_save(void *user, unsigned char *buf, size_t cap) {
  struct blob *b = user;
  b->saves++;
  if (b->save_result != 0)
    return b->save_result;
  if (b->len > cap)
    return RW_ERR_NOMEM;
  memcpy(buf, b->bytes, b->len);
  return (int64_t)b->len;
}

static int blob_load(void *user, const unsigned char *data, size_t len) {
  struct blob *b = user;
  b->loads++;
  b->load_ptr = data;
  if (b->w != NULL) {
    rw_block blk;
    rw_worker_stats st;
    rw_worker_get_stats(b->w, &st);
    b->blocks_at_load = st.blocks;
    b->reentry = rw_worker_next(b->w, &blk, 0) + rw_worker_set_state_handlers(b->w, NULL);
  }
  if (b->load_result != 0)
    return b->load_result;
  if (len > sizeof(b->bytes))
    return RW_ERR_INVALID;
  memcpy(b->bytes, data, len);
  b->len = len;
  return 0;
}

static void test_custom_round_trip(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker *w = open_worker(&d, NULL);
  struct blob blob = {.bytes = "opaque\0state", .len = 12, .w = w};
  rw_state_handlers h = {.save = blob_save, .load = blob_load, .user = &blob};
  assert_int_equal(rw_worker_set_state_handlers(w, &h), 0);

  uint32_t req = post(&d, RW_STATE_SAVE, NULL, 0);
  assert_false(answered(&d, req));
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(d.seg.state_reply->length, 12);
  assert_memory_equal(d.seg.state_reply->data, "opaque\0state", 12);
  assert_int_equal(blob.saves, 1);

  /* Load other bytes, then save them back. */
  const unsigned char other[5] = {1, 2, 0, 4, 5};
  req = post(&d, RW_STATE_LOAD, other, sizeof(other));
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(blob.loads, 1);
  assert_int_equal(blob.len, 5);
  assert_memory_equal(blob.bytes, other, 5);
  /* The handler parsed a private copy, not the shared mailbox. */
  const unsigned char *shared = d.seg.state_request->data;
  assert_true((const unsigned char *)blob.load_ptr < shared ||
              (const unsigned char *)blob.load_ptr >= shared + d.seg.layout.state_capacity);
  /* From inside a handler neither rw_worker_next nor set_state_handlers work. */
  assert_int_equal(blob.reentry, 2 * RW_ERR_INVALID);

  req = post(&d, RW_STATE_SAVE, NULL, 0);
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(d.seg.state_reply->length, 5);
  assert_memory_equal(d.seg.state_reply->data, other, 5);

  /* An empty state is a state. */
  req = post(&d, RW_STATE_LOAD, NULL, 0);
  idle_next(w);
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(blob.len, 0);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_save_results(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker *w = open_worker(&d, NULL);
  struct blob blob = {.len = 3};
  rw_state_handlers h = {.save = blob_save, .load = blob_load, .user = &blob};
  rw_worker_set_state_handlers(w, &h);
  const uint32_t cap = d.seg.layout.state_capacity;
  assert_int_equal(cap, RW_STATE_CAPACITY_DEFAULT);

  struct {
    int64_t result;
    int32_t status;
  } cases[] = {
      {RW_ERR_NOMEM, RW_STATE_TOO_LARGE},  {RW_ERR_UNSUPPORTED, RW_STATE_UNSUPPORTED},
      {RW_ERR_INVALID, RW_STATE_FAILED},   {-100, RW_STATE_FAILED},
      {(int64_t)cap + 1, RW_STATE_FAILED}, {INT64_MAX, RW_STATE_FAILED},
      {INT64_MIN, RW_STATE_FAILED},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    blob.save_result = cases[i].result;
    d.seg.state_reply->length = 1234; /* whatever was there: a failed save answers 0 */
    uint32_t req = post(&d, RW_STATE_SAVE, NULL, 0);
    idle_next(w);
    assert_true(answered(&d, req));
    assert_int_equal(status_of(&d), cases[i].status);
    assert_int_equal(d.seg.state_reply->length, 0);
  }
  /* Exactly the capacity fits. */
  blob.save_result = cap;
  uint32_t req = post(&d, RW_STATE_SAVE, NULL, 0);
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(d.seg.state_reply->length, cap);

  /* Only a save handler: loads are unsupported (and change nothing). */
  blob.save_result = 0;
  h.load = NULL;
  rw_worker_set_state_handlers(w, &h);
  req = post_text(&d, RW_STATE_LOAD, "abc");
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_UNSUPPORTED);
  assert_int_equal(blob.loads, 0);
  /* Only a load handler: saves are unsupported. */
  h.load = blob_load;
  h.save = NULL;
  rw_worker_set_state_handlers(w, &h);
  req = post(&d, RW_STATE_SAVE, NULL, 0);
  idle_next(w);
  assert_int_equal(status_of(&d), RW_STATE_UNSUPPORTED);
  assert_int_equal(d.seg.state_reply->length, 0);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_load_failures(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker *w = open_worker(&d, NULL);
  struct blob blob = {0};
  rw_state_handlers h = {.save = blob_save, .load = blob_load, .user = &blob};
  rw_worker_set_state_handlers(w, &h);
  const uint32_t cap = d.seg.layout.state_capacity;

  /* A length beyond the mailbox is the daemon's bug: refused without calling the plugin. */
  uint32_t bad_lengths[] = {cap + 1, cap + 4096, UINT32_MAX};
  for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
    uint32_t req = post(&d, RW_STATE_LOAD, NULL, bad_lengths[i]);
    idle_next(w);
    assert_true(answered(&d, req));
    assert_int_equal(status_of(&d), RW_STATE_FAILED);
  }
  assert_int_equal(blob.loads, 0);

  /* The whole mailbox is fine (this plugin then refuses it as too big for its blob). */
  uint32_t req = post(&d, RW_STATE_LOAD, NULL, cap);
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(blob.loads, 1);
  assert_int_equal(status_of(&d), RW_STATE_FAILED);

  /* The plugin refusing. */
  blob.load_result = -1;
  req = post_text(&d, RW_STATE_LOAD, "x");
  idle_next(w);
  assert_int_equal(status_of(&d), RW_STATE_FAILED);
  blob.load_result = RW_ERR_UNSUPPORTED;
  req = post_text(&d, RW_STATE_LOAD, "x");
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_UNSUPPORTED);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* ---- the default format ------------------------------------------------------- */

static void set_params(struct daemon_role *d, rw_worker *w, float x, float y) {
  push_param(d, d->tl.pos, 7, x);
  push_param(d, d->tl.pos, 9, y);
  daemon_cycle(d, PERIOD);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  silence(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);
}

static const char *save_default(struct daemon_role *d, rw_worker *w) {
  uint32_t req = post(d, RW_STATE_SAVE, NULL, 0);
  idle_next(w);
  assert_true(answered(d, req));
  assert_int_equal(status_of(d), RW_STATE_OK);
  return saved_text(d);
}

static int32_t load_default(struct daemon_role *d, rw_worker *w, const void *doc, uint32_t len) {
  uint32_t req = post(d, RW_STATE_LOAD, doc, len);
  idle_next(w);
  assert_true(answered(d, req));
  return status_of(d);
}

static void test_default_round_trip(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);

  assert_string_equal(save_default(&d, w), "runway-params 1\nx 1\ny_2 0\n");
  set_params(&d, w, 2.5f, -0.3f);
  /* The shortest text that reads back as the same float. */
  assert_string_equal(save_default(&d, w), "runway-params 1\nx 2.5\ny_2 -0.3\n");
  set_params(&d, w, 1.0f / 3.0f, 1e-7f);
  char saved[256];
  snprintf(saved, sizeof(saved), "%s", save_default(&d, w));
  assert_string_equal(saved, "runway-params 1\nx 0.33333334\ny_2 1e-07\n");

  /* Change them, load the saved document: exactly the saved floats come back. */
  set_params(&d, w, 9.0f, 0.9f);
  assert_int_equal(load_default(&d, w, saved, (uint32_t)strlen(saved)), RW_STATE_OK);
  assert_true(rw_worker_param(w, 7) == 1.0f / 3.0f);
  assert_true(rw_worker_param(w, 9) == 1e-7f);

  /* The plugin hears them at offset 0 of the next block, in declaration order. */
  push_param(&d, d.tl.pos + 10, 9, 0.5f); /* an ordinary change later in the block */
  daemon_cycle(&d, PERIOD);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.n_events, 3);
  assert_int_equal(b.events[0].offset, 0);
  assert_int_equal(b.events[0].kind, RW_EV_PARAM);
  assert_int_equal(b.events[0].u.param.id, 7);
  assert_true(b.events[0].u.param.value == 1.0f / 3.0f);
  assert_int_equal(b.events[1].offset, 0);
  assert_int_equal(b.events[1].u.param.id, 9);
  assert_true(b.events[1].u.param.value == 1e-7f);
  assert_int_equal(b.events[2].offset, 10);
  assert_true(rw_worker_param(w, 9) == 0.5f);
  silence(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);
  /* Delivered once. */
  daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.n_events, 0);
  silence(&b);
  rw_worker_done(w, &b);

  /* Lenient where it costs nothing: unknown names, clamping, repeats, the last newline. */
  const char *doc = "runway-params 1\nunknown_param 3\ny_2 -7\nx +4.\nx 1e400";
  assert_int_equal(load_default(&d, w, doc, (uint32_t)strlen(doc)), RW_STATE_OK);
  assert_true(rw_worker_param(w, 7) == 10.0f);
  assert_true(rw_worker_param(w, 9) == -1.0f);
  assert_string_equal(save_default(&d, w), "runway-params 1\nx 10\ny_2 -1\n");
  daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.n_events, 2);
  silence(&b);
  rw_worker_done(w, &b);
  /* Only some parameters: the others keep their values and are not sent again. */
  doc = "runway-params 1\ny_2 .25\n";
  assert_int_equal(load_default(&d, w, doc, (uint32_t)strlen(doc)), RW_STATE_OK);
  assert_true(rw_worker_param(w, 7) == 10.0f);
  assert_true(rw_worker_param(w, 9) == 0.25f);
  daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.n_events, 1);
  assert_int_equal(b.events[0].u.param.id, 9);
  silence(&b);
  rw_worker_done(w, &b);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_default_refuses_garbage(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  set_params(&d, w, 3.0f, 0.5f);

  const char *garbage[] = {
      "",
      "runway-params",
      "runway-params ",
      "runway-params 2\n",
      "runway-params 10\n",
      "runway-params 01\n",
      "runway-params 1 \n",
      "runway-params 1\r\nx 1\n",
      "RUNWAY-params 1\n",
      "runway-params1\n",
      "runway-params 1\n\n",
      "runway-params 1\nx\n",
      "runway-params 1\nx \n",
      "runway-params 1\nx  1\n",
      "runway-params 1\n x 1\n",
      "runway-params 1\nx 1 \n",
      "runway-params 1\nx\t1\n",
      "runway-params 1\nx 1\r\n",
      "runway-params 1\nx-y 1\n",
      "runway-params 1\nx nan\n",
      "runway-params 1\nx inf\n",
      "runway-params 1\nx -infinity\n",
      "runway-params 1\nx 0x10\n",
      "runway-params 1\nx 1e\n",
      "runway-params 1\nx 1e+\n",
      "runway-params 1\nx .\n",
      "runway-params 1\nx -\n",
      "runway-params 1\nx 1.2.3\n",
      "runway-params 1\nx 1,5\n",
      "runway-params 1\nx 1 2\n",
      "runway-params 1\nx 00000000000000000000000000000000000000000000000000000000000000001\n",
      /* Valid up to the last line: nothing of it may apply. */
      "runway-params 1\nx 5\ny_2 0.1\nbad line\n",
  };
  for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
    if (load_default(&d, w, garbage[i], (uint32_t)strlen(garbage[i])) != RW_STATE_FAILED)
      fail_msg("document %zu (\"%s\") was accepted", i, garbage[i]);
    assert_true(rw_worker_param(w, 7) == 3.0f);
    assert_true(rw_worker_param(w, 9) == 0.5f);
  }
  /* A NUL inside. */
  const char nul[] = "runway-params 1\nx 5\0\n";
  assert_int_equal(load_default(&d, w, nul, sizeof(nul) - 1), RW_STATE_FAILED);
  assert_true(rw_worker_param(w, 7) == 3.0f);
  /* Nothing was queued for the plugin either. */
  daemon_cycle(&d, PERIOD);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(b.n_events, 0);
  silence(&b);
  rw_worker_done(w, &b);

  /* Every prefix and every single-byte change of a good document: answered, no crash. */
  const char *good = "runway-params 1\nx 2.5\ny_2 -0.125\n";
  size_t len = strlen(good);
  char doc[64];
  for (size_t cut = 0; cut <= len; cut++) {
    int32_t st = load_default(&d, w, good, (uint32_t)cut);
    assert_true(st == RW_STATE_OK || st == RW_STATE_FAILED);
  }
  for (size_t at = 0; at < len; at++) {
    for (int v = 0; v < 256; v += 7) {
      memcpy(doc, good, len);
      doc[at] = (char)v;
      int32_t st = load_default(&d, w, doc, (uint32_t)len);
      assert_true(st == RW_STATE_OK || st == RW_STATE_FAILED);
      float x = rw_worker_param(w, 7);
      float y = rw_worker_param(w, 9);
      assert_true(x >= 0.0f && x <= 10.0f);
      assert_true(y >= -1.0f && y <= 1.0f);
    }
  }
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_default_without_params(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker *w = open_worker(&d, NULL);
  assert_string_equal(save_default(&d, w), "runway-params 1\n");
  const char *doc = "runway-params 1\ngain_db -3\n";
  assert_int_equal(load_default(&d, w, doc, (uint32_t)strlen(doc)), RW_STATE_OK);
  assert_int_equal(load_default(&d, w, "junk", 4), RW_STATE_FAILED);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_default_too_large(void **state) {
  (void)state;
  struct daemon_role d;
  /* "runway-params 1\n" is 16 bytes; "x 1\n" needs 4 more. */
  daemon_create_cap(&d, 18);
  rw_worker_options o = {.params = params, .n_params = 1};
  rw_worker *w = open_worker(&d, &o);
  d.seg.state_reply->length = 99;
  uint32_t req = post(&d, RW_STATE_SAVE, NULL, 0);
  idle_next(w);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_TOO_LARGE);
  assert_int_equal(d.seg.state_reply->length, 0);
  rw_worker_close(w);
  daemon_destroy(&d);

  daemon_create_cap(&d, 20);
  w = open_worker(&d, &o);
  assert_string_equal(save_default(&d, w), "runway-params 1\nx 1\n");
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* Numbers are written and read the same in any locale (when one with a decimal comma exists). */
static void test_default_ignores_locale(void **state) {
  (void)state;
  const char *commas[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8", "de_DE"};
  const char *found = NULL;
  for (size_t i = 0; found == NULL && i < sizeof(commas) / sizeof(commas[0]); i++)
    if (setlocale(LC_ALL, commas[i]) != NULL)
      found = commas[i];
  if (found == NULL)
    skip(); /* no locale with a decimal comma installed */
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  set_params(&d, w, 2.5f, -0.75f);
  assert_string_equal(save_default(&d, w), "runway-params 1\nx 2.5\ny_2 -0.75\n");
  const char *doc = "runway-params 1\nx 0.5\n";
  assert_int_equal(load_default(&d, w, doc, (uint32_t)strlen(doc)), RW_STATE_OK);
  assert_true(rw_worker_param(w, 7) == 0.5f);
  rw_worker_close(w);
  daemon_destroy(&d);
  setlocale(LC_ALL, "C");
}

/* ---- when requests are answered --------------------------------------------------- */

static void test_waiting_load_applied_before_first_block(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  /* A restart: the daemon hands over the last saved state before the worker exists. */
  const char *doc = "runway-params 1\nx 4\ny_2 -0.5\n";
  uint32_t req = post_text(&d, RW_STATE_LOAD, doc);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  assert_false(answered(&d, req)); /* opening alone answers nothing */
  daemon_cycle(&d, PERIOD);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(b.position, 0);
  assert_int_equal(b.discontinuity, 1);
  assert_int_equal(b.n_events, 2);
  assert_int_equal(b.events[0].offset, 0);
  assert_int_equal(b.events[0].u.param.id, 7);
  assert_true(b.events[0].u.param.value == 4.0f);
  assert_int_equal(b.events[1].offset, 0);
  assert_int_equal(b.events[1].u.param.id, 9);
  assert_true(b.events[1].u.param.value == -0.5f);
  silence(&b);
  rw_worker_done(w, &b);
  rw_worker_close(w);

  /* The same with the plugin's own handler: it runs before the first block is handed out. */
  struct blob blob = {0};
  req = post_text(&d, RW_STATE_LOAD, "restored");
  w = open_worker(&d, NULL);
  blob.w = w;
  rw_state_handlers h = {.save = blob_save, .load = blob_load, .user = &blob};
  rw_worker_set_state_handlers(w, &h);
  daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_int_equal(blob.loads, 1);
  assert_int_equal(blob.blocks_at_load, 0);
  assert_int_equal(blob.len, 8);
  assert_memory_equal(blob.bytes, "restored", 8);
  assert_true(answered(&d, req));
  silence(&b);
  rw_worker_done(w, &b);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* Loaded values go after events whose time passed (sent before the load), before on-time ones. */
static void test_loaded_values_order(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  rw_block b;
  daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  silence(&b);
  rw_worker_done(w, &b);

  push_param(&d, 10, 7, 2.0f);     /* late: frame 10 was already processed */
  push_param(&d, PERIOD, 7, 3.0f); /* on time, at the next block's first frame */
  daemon_cycle(&d, PERIOD);
  const char *doc = "runway-params 1\nx 7\ny_2 0.5\n";
  uint32_t req = post_text(&d, RW_STATE_LOAD, doc);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_true(answered(&d, req));
  assert_int_equal(b.position, PERIOD);
  assert_int_equal(b.n_events, 4);
  const float want_value[] = {2.0f, 7.0f, 0.5f, 3.0f};
  const uint32_t want_id[] = {7, 7, 9, 7};
  for (uint32_t i = 0; i < 4; i++) {
    assert_int_equal(b.events[i].offset, 0);
    assert_int_equal(b.events[i].u.param.id, want_id[i]);
    assert_true(b.events[i].u.param.value == want_value[i]);
  }
  assert_true(rw_worker_param(w, 7) == 3.0f);
  silence(&b);
  rw_worker_done(w, &b);

  /* A flood of events cannot crowd the loaded values out of the next block. */
  uint64_t t = d.tl.pos;
  for (uint32_t i = 0; i < 600; i++)
    push_param(&d, t + 5, 9, (float)i / 1000.0f);
  req = post_text(&d, RW_STATE_LOAD, "runway-params 1\nx 8\n");
  for (int cycle = 0; cycle < 4; cycle++)
    daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_true(answered(&d, req));
  assert_int_equal(b.n_events, 1);
  assert_int_equal(b.events[0].u.param.id, 7);
  assert_true(b.events[0].u.param.value == 8.0f);
  assert_int_equal(b.frames, 5); /* it ends where the held back events begin */
  silence(&b);
  rw_worker_done(w, &b);
  uint32_t seen = 0;
  int rc;
  while ((rc = rw_worker_next(w, &b, 0)) == 1) {
    for (uint32_t i = 0; i < b.n_events; i++) {
      assert_int_equal(b.events[i].u.param.id, 9);
      assert_true(b.events[i].u.param.value == (float)seen / 1000.0f);
      seen++;
    }
    silence(&b);
    rw_worker_done(w, &b);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(seen, 600);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_never_inside_a_block(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  daemon_cycle(&d, PERIOD);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);

  /* A block is out: nothing the plugin may call answers the mailbox. */
  const char *doc = "runway-params 1\nx 6\n";
  uint32_t req = post_text(&d, RW_STATE_LOAD, doc);
  assert_true(rw_worker_param(w, 7) == 1.0f);
  assert_int_equal(rw_worker_send_param(w, 7, 1.0f), 0);
  rw_worker_stats st;
  rw_worker_get_stats(w, &st);
  /* A second rw_worker_next is refused before it looks at the mailbox. */
  rw_block other;
  assert_int_equal(rw_worker_next(w, &other, 0), RW_ERR_INVALID);
  pause_ms(60); /* longer than a wait slice: nothing runs behind the plugin's back */
  assert_false(answered(&d, req));
  assert_true(rw_worker_param(w, 7) == 1.0f);
  silence(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);
  assert_false(answered(&d, req));

  /* The next rw_worker_next answers it first, then hands out the block with the values. */
  daemon_cycle(&d, PERIOD);
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  assert_true(answered(&d, req));
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(b.n_events, 1);
  assert_true(b.events[0].u.param.value == 6.0f);
  silence(&b);
  rw_worker_done(w, &b);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/*
 * The daemon role's control thread fires requests while the worker thread
 * processes blocks; every handler call must fall outside a block.
 */
struct busy {
  struct daemon_role *d;
  _Atomic int in_block;
  _Atomic int violations;
  _Atomic int handled;
  _Atomic int stop;
  int requests;
  int unanswered;
};

static int64_t busy_save(void *user, unsigned char *buf, size_t cap) {
  struct busy *x = user;
  if (atomic_load(&x->in_block))
    atomic_fetch_add(&x->violations, 1);
  atomic_fetch_add(&x->handled, 1);
  (void)cap;
  buf[0] = 'S';
  return 1;
}

static int busy_load(void *user, const unsigned char *data, size_t len) {
  struct busy *x = user;
  if (atomic_load(&x->in_block))
    atomic_fetch_add(&x->violations, 1);
  atomic_fetch_add(&x->handled, 1);
  return len == 1 && data[0] == 'L' ? 0 : -1;
}

static void *busy_daemon(void *arg) {
  struct busy *x = arg;
  for (int i = 0; i < x->requests; i++) {
    uint32_t op = i % 2 ? RW_STATE_LOAD : RW_STATE_SAVE;
    uint32_t req = post(x->d, op, "L", 1);
    int64_t deadline = now_ns() + 5 * SECOND_NS;
    while (!answered(x->d, req) && now_ns() < deadline)
      pause_ms(0);
    if (!answered(x->d, req) || status_of(x->d) != RW_STATE_OK)
      x->unanswered++;
  }
  atomic_store(&x->stop, 1);
  return NULL;
}

static void test_busy_worker_answers_between_blocks(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker *w = open_worker(&d, NULL);
  struct busy x = {.d = &d, .requests = 200};
  rw_state_handlers h = {.save = busy_save, .load = busy_load, .user = &x};
  rw_worker_set_state_handlers(w, &h);

  pthread_t th;
  pthread_create(&th, NULL, busy_daemon, &x);
  int64_t deadline = now_ns() + 20 * SECOND_NS;
  float out[PERIOD];
  float *dst[1] = {out};
  while (!atomic_load(&x.stop) && now_ns() < deadline) {
    daemon_write(&d, PERIOD);
    rw_block b;
    int rc;
    while ((rc = rw_worker_next(w, &b, 0)) == 1) {
      atomic_store(&x.in_block, 1);
      silence(&b);
      pause_ms(0); /* the block takes a while: requests arrive during it */
      atomic_store(&x.in_block, 0);
      rw_worker_done(w, &b);
    }
    assert_int_equal(rc, 0);
    shm_tl_daemon_read_output(&d.tl, dst, PERIOD);
  }
  pthread_join(th, NULL);
  assert_int_equal(x.unanswered, 0);
  assert_int_equal(atomic_load(&x.violations), 0);
  assert_int_equal(atomic_load(&x.handled), 200);
  rw_worker_close(w);
  daemon_destroy(&d);
}

struct sleeper {
  rw_worker *w;
  int rc;
};

static void *sleep_in_next(void *arg) {
  struct sleeper *s = arg;
  rw_block b;
  s->rc = rw_worker_next(s->w, &b, -1);
  return NULL;
}

static int64_t wait_answer_ns(struct daemon_role *d, uint32_t req) {
  int64_t t0 = now_ns();
  while (!answered(d, req)) {
    if (now_ns() - t0 > 5 * SECOND_NS)
      fail_msg("an idle worker did not answer within 5 s");
    pause_ms(1);
  }
  return now_ns() - t0;
}

static void test_idle_worker_answers(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  struct sleeper s = {.w = w};
  pthread_t th;
  pthread_create(&th, NULL, sleep_in_next, &s);
  /* Sleeping on the futex, no input coming. */
  int64_t deadline = now_ns() + 5 * SECOND_NS;
  while (atomic_load(&d.seg.ctl.w->sleeping) == 0) {
    assert_true(now_ns() < deadline);
    pause_ms(1);
  }

  /* Within one 50 ms wait slice (with room for a loaded machine). */
  uint32_t req = post(&d, RW_STATE_SAVE, NULL, 0);
  int64_t took = wait_answer_ns(&d, req);
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_string_equal(saved_text(&d), "runway-params 1\nx 1\ny_2 0\n");
  if (took > 250 * 1000000LL)
    fail_msg("the idle worker took %lld ms to answer", (long long)(took / 1000000));

  /* A daemon in a hurry wakes the worker (wake_seq + FUTEX_WAKE) instead of waiting a slice. */
  int fast = 0;
  for (int attempt = 0; attempt < 5 && !fast; attempt++) {
    pause_ms(5);
    req = post_text(&d, RW_STATE_LOAD, "runway-params 1\nx 2\n");
    atomic_fetch_add_explicit(&d.seg.ctl.d->wake_seq, 1, memory_order_release);
    shm_futex_wake(&d.seg.ctl.d->wake_seq, 1);
    took = wait_answer_ns(&d, req);
    assert_int_equal(status_of(&d), RW_STATE_OK);
    fast = took < 20 * 1000000LL;
  }
  assert_true(fast);
  assert_true(rw_worker_param(w, 7) == 2.0f);

  rw_worker_request_stop(w);
  pthread_join(th, NULL);
  assert_int_equal(s.rc, RW_ERR_CLOSED);
  rw_worker_close(w);
  daemon_destroy(&d);
}

static void test_mailbox_garbage(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create_cap(&d, 256);
  rw_worker_options o = {.params = params, .n_params = 2};
  rw_worker *w = open_worker(&d, &o);
  struct rw_state_request *box = d.seg.state_request;
  struct rw_state_reply *reply = d.seg.state_reply;

  /* Unknown ops, including a bump with op NONE, answer FAILED. */
  uint32_t ops[] = {RW_STATE_NONE, 3, 4, 0x80000000u, UINT32_MAX};
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
    uint32_t req = post(&d, ops[i], NULL, 0);
    idle_next(w);
    assert_true(answered(&d, req));
    assert_int_equal(status_of(&d), RW_STATE_FAILED);
  }
  /* request running backwards, or jumping: whatever it is, it is answered once. */
  atomic_store(&box->request, 1000);
  box->op = RW_STATE_SAVE;
  idle_next(w);
  assert_int_equal(atomic_load(&reply->done), 1000);
  assert_int_equal(status_of(&d), RW_STATE_OK);
  atomic_store(&box->request, 3);
  idle_next(w);
  assert_int_equal(atomic_load(&reply->done), 3);
  reply->status = -5;
  idle_next(w); /* request == done: nothing to do, nothing written */
  assert_int_equal(status_of(&d), -5);

  /* Random everything. */
  srand(1234);
  for (int i = 0; i < 3000; i++) {
    uint32_t op = (uint32_t)rand() % 4;
    uint32_t len = (uint32_t)rand() % 300; /* sometimes beyond the 256-byte mailbox */
    if (rand() % 16 == 0)
      len = (uint32_t)rand() | 0x80000000u;
    for (uint32_t k = 0; k < d.seg.layout.state_capacity; k++)
      box->data[k] = (unsigned char)rand();
    if (rand() % 4 == 0)
      memcpy(box->data, "runway-params 1\n", 16);
    reply->status = rand();
    reply->length = (uint32_t)rand();
    box->length = len;
    box->op = op;
    uint32_t req = atomic_fetch_add(&box->request, 1) + 1;
    idle_next(w);
    assert_true(answered(&d, req));
    int32_t st = status_of(&d);
    assert_true(st == RW_STATE_OK || st == RW_STATE_FAILED || st == RW_STATE_TOO_LARGE);
    if (op == RW_STATE_SAVE) {
      assert_int_equal(st, RW_STATE_OK);
      assert_true(reply->length <= d.seg.layout.state_capacity);
    }
    float x = rw_worker_param(w, 7);
    assert_true(x >= 0.0f && x <= 10.0f);
  }
  /* Still a working worker. */
  daemon_cycle(&d, PERIOD);
  rw_block b;
  assert_int_equal(rw_worker_next(w, &b, 0), 1);
  silence(&b);
  assert_int_equal(rw_worker_done(w, &b), 0);
  rw_worker_close(w);
  daemon_destroy(&d);
}

/* ---- rw_worker_main --------------------------------------------------------------- */

/* The plugin plays its state: a constant level, which a load sets. */
struct level {
  float value;
};

static void *level_create(const rw_worker_info *info) {
  (void)info;
  struct level *l = calloc(1, sizeof(*l));
  if (l != NULL)
    l->value = 0.25f;
  return l;
}

static void level_destroy(void *self) { free(self); }

static void level_process(void *self, rw_worker *w, const rw_block *b) {
  struct level *l = self;
  (void)w;
  for (uint32_t c = 0; c < b->n_outputs; c++)
    for (uint32_t k = 0; k < b->frames; k++)
      b->outputs[c][k] = l->value;
}

static int64_t level_save(void *self, unsigned char *buf, size_t cap) {
  struct level *l = self;
  if (cap < sizeof(l->value))
    return RW_ERR_NOMEM;
  memcpy(buf, &l->value, sizeof(l->value));
  return sizeof(l->value);
}

static int level_load(void *self, const unsigned char *data, size_t len) {
  struct level *l = self;
  float v;
  if (len != sizeof(v))
    return RW_ERR_INVALID;
  memcpy(&v, data, sizeof(v));
  if (!isfinite(v))
    return RW_ERR_INVALID;
  l->value = v;
  return 0;
}

static const rw_plugin level_plugin = {
    .name = "level",
    .n_inputs = 1,
    .n_outputs = 1,
    .params = params,
    .n_params = 2,
    .create = level_create,
    .destroy = level_destroy,
    .process = level_process,
    .save_state = level_save,
    .load_state = level_load,
};

static void test_main_wires_state(void **state) {
  (void)state;
  struct daemon_role d;
  daemon_create(&d);
  const float restored = 0.5f;
  uint32_t req = post(&d, RW_STATE_LOAD, &restored, sizeof(restored));
  export_segment(&d);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(rw_worker_main(&level_plugin, NULL));
  unsetenv("RUNWAY_SEGMENT_FD");

  /* Once the pid is there (acquire), the declaration is complete. */
  int64_t deadline = now_ns() + 5 * SECOND_NS;
  while (atomic_load_explicit(&d.seg.ctl.w->worker_pid, memory_order_acquire) != (uint32_t)pid) {
    assert_true(now_ns() < deadline);
    pause_ms(1);
  }
  assert_terminated(d.seg.info->plugin, sizeof(d.seg.info->plugin), "level");
  assert_int_equal(d.seg.info->flags, RW_INFO_F_STATE);
  assert_int_equal(d.seg.info->n_params, 2);
  assert_terminated(d.seg.info->params[1].name, RW_NAME_MAX, "y_2");
  wait_answer_ns(&d, req);
  assert_int_equal(status_of(&d), RW_STATE_OK);

  /* The very first block already plays the restored level. */
  float out[PERIOD];
  float *dst[1] = {out};
  for (int cycle = 0; cycle < 8; cycle++) {
    uint64_t t = d.tl.pos;
    daemon_write(&d, PERIOD);
    deadline = now_ns() + 5 * SECOND_NS;
    while (atomic_load(&d.seg.ctl.w->out_write.value) < t + PERIOD + LAT) {
      assert_true(now_ns() < deadline);
      shm_wake_worker_if_due(&d.seg.ctl, t + PERIOD, d.seg.layout.capacity);
      pause_ms(0);
    }
    assert_true(shm_tl_daemon_read_output(&d.tl, dst, PERIOD) >= 0);
    for (uint32_t k = 0; k < PERIOD; k++) {
      uint64_t p = t + k;
      float fade = p - LAT < RW_FADE_IN_FRAMES ? (float)(p - LAT + 1) / RW_FADE_IN_FRAMES : 1.0f;
      float want = p < LAT ? 0.0f : restored * fade;
      if (out[k] != want)
        fail_msg("output at %llu: %g, want %g", (unsigned long long)p, out[k], want);
    }
  }

  /* And a save while it runs (idle between cycles). */
  req = post(&d, RW_STATE_SAVE, NULL, 0);
  wait_answer_ns(&d, req);
  assert_int_equal(status_of(&d), RW_STATE_OK);
  assert_int_equal(d.seg.state_reply->length, sizeof(float));
  float saved;
  memcpy(&saved, d.seg.state_reply->data, sizeof(saved));
  assert_true(saved == restored);

  assert_int_equal(kill(pid, SIGTERM), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  daemon_destroy(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_info_filled_before_pid),
      cmocka_unit_test(test_bad_declarations_refused),
      cmocka_unit_test(test_declare_params),
      cmocka_unit_test(test_custom_round_trip),
      cmocka_unit_test(test_save_results),
      cmocka_unit_test(test_load_failures),
      cmocka_unit_test(test_default_round_trip),
      cmocka_unit_test(test_default_refuses_garbage),
      cmocka_unit_test(test_default_without_params),
      cmocka_unit_test(test_default_too_large),
      cmocka_unit_test(test_default_ignores_locale),
      cmocka_unit_test(test_waiting_load_applied_before_first_block),
      cmocka_unit_test(test_loaded_values_order),
      cmocka_unit_test(test_never_inside_a_block),
      cmocka_unit_test(test_busy_worker_answers_between_blocks),
      cmocka_unit_test(test_idle_worker_answers),
      cmocka_unit_test(test_mailbox_garbage),
      cmocka_unit_test(test_main_wires_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
