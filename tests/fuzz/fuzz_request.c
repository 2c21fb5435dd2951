/*
 * libFuzzer target: one control request line, through the parser and, when
 * it is valid, through the daemon's real command handlers.
 *
 * The daemon is set up as main() does, but without an audio server: a
 * private loop, the engine, a JACK backend that is created and never opened
 * (so slots are added in state "stopped", no worker is spawned and nothing
 * touches JACK), the catalog parsed from a built-in copy of what
 * `runway-worker --list --json` prints, no control server and no state
 * directory. Handlers get no connection (conn = NULL), as a caller outside
 * the control server would: worker.attach and subscribe need one to answer
 * on, so the harness skips them (the control server's own tests cover them);
 * state.save and state.load refuse without a connection before they touch
 * any file, which is also why no input can make the fuzzer write files.
 *
 * Checks beyond the sanitizers: every request gets exactly one answer that
 * serialises to one line and parses back as an object with "ok" and the
 * request's id, as the control server would send it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "connection.h"
#include "runwayd.h"
#include "slot_state.h"
#include "slots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Slots are removed every so many inputs, so memory stays bounded over a long run. */
#define RESET_EVERY 512

/* The shape `runway-worker --list --json` prints (built-in plugins and their parameters). */
static const char catalog_json[] =
    "{\"plugins\":["
    "{\"name\":\"passthrough\",\"description\":\"Copies every input channel to the output\","
    "\"inputs\":2,\"outputs\":2,\"midi\":false,\"params\":[]},"
    "{\"name\":\"gain\",\"description\":\"Changes the level by gain_db\",\"inputs\":2,"
    "\"outputs\":2,\"midi\":false,\"params\":[{\"id\":0,\"name\":\"gain_db\",\"min\":-60.0,"
    "\"max\":24.0,\"default\":0.0,\"unit\":\"dB\"}]},"
    "{\"name\":\"sine\",\"description\":\"Test tone\",\"inputs\":0,\"outputs\":2,\"midi\":false,"
    "\"params\":[{\"id\":0,\"name\":\"frequency\",\"min\":20.0,\"max\":20000.0,\"default\":440.0,"
    "\"unit\":\"Hz\"},{\"id\":1,\"name\":\"level_db\",\"min\":-60.0,\"max\":0.0,"
    "\"default\":-12.0,\"unit\":\"dB\"}]},"
    "{\"name\":\"delay\",\"description\":\"Feedback delay\",\"inputs\":2,\"outputs\":2,"
    "\"midi\":false,\"params\":[{\"id\":0,\"name\":\"time_ms\",\"min\":0.0,\"max\":2000.0,"
    "\"default\":250.0,\"unit\":\"ms\"},{\"id\":1,\"name\":\"feedback\",\"min\":0.0,"
    "\"max\":0.95,\"default\":0.3,\"unit\":\"\"},{\"id\":2,\"name\":\"mix\",\"min\":0.0,"
    "\"max\":1.0,\"default\":0.5,\"unit\":\"\"}]},"
    "{\"name\":\"synth\",\"description\":\"16-voice saw synthesizer\",\"inputs\":0,"
    "\"outputs\":2,\"midi\":true,\"params\":[{\"id\":0,\"name\":\"level_db\",\"min\":-60.0,"
    "\"max\":0.0,\"default\":-6.0,\"unit\":\"dB\"},{\"id\":1,\"name\":\"attack_ms\",\"min\":1.0,"
    "\"max\":5000.0,\"default\":5.0,\"unit\":\"ms\"},{\"id\":2,\"name\":\"release_ms\","
    "\"min\":1.0,\"max\":10000.0,\"default\":200.0,\"unit\":\"ms\"}]}"
    "]}";

static struct runwayd d;
static uv_loop_t loop;
static int ready;
static int
    print_answers; /* RUNWAY_FUZZ_PRINT=1: each answer to stderr, to see what an input does */
static unsigned long inputs;

/* As main.c's: polls state requests that wait for workers (none do without a backend). */
static void on_state_timer(uv_timer_t *t) {
  if (!slot_state_poll(t->data, base_mono_ms()))
    uv_timer_stop(t);
}

static void die(const char *what) {
  fprintf(stderr, "fuzz_request: %s\n", what);
  abort();
}

static void setup(void) {
  char err[512];
  json_error_t jerr;

  memset(&d, 0, sizeof(d));
  log_set_level(LOG_LEVEL_ERROR);
  if (uv_loop_init(&loop) != 0)
    die("uv_loop_init failed");
  d.loop = &loop;
  d.opt.backend = "jack";
  d.opt.name = "runway-fuzz";
  d.opt.latency_ms = 50.0;
  d.opt.log_level = LOG_LEVEL_ERROR;
  d.opt.stall_timeout_ms = 2000;
  d.opt.max_slots_per_user = 32;
  d.opt.max_memory_mb_per_user = 512;
  d.opt.max_memory_mb = 4096;
  d.opt.user_instance = true;
  snprintf(d.opt.socket_path, sizeof(d.opt.socket_path), "/nonexistent/runway-fuzz.sock");
  /* Never run: workers start only once the backend is open. */
  snprintf(d.opt.worker_path, sizeof(d.opt.worker_path), "/nonexistent/runway-worker");
  d.started_ms = base_mono_ms();

  json_t *doc = json_loads(catalog_json, 0, &jerr);
  if (doc == NULL || catalog_parse(&d.catalog, doc, err, sizeof(err)) != 0)
    die("the built-in catalog does not parse");
  json_decref(doc);

  engine_init(&d.engine);
  if (slots_init(&d, err, sizeof(err)) != 0)
    die(err);
  /* The backend is created and never connected. */
  if (connection_init(&d, err, sizeof(err)) != 0)
    die(err);
  d.events = events_create();
  if (d.events == NULL)
    die("events_create failed");
  /* As main() does: state requests restart this timer while they wait for workers. */
  uv_timer_init(d.loop, &d.state_timer);
  d.state_timer.data = &d;
  uv_timer_start(&d.state_timer, on_state_timer, 2, 2);
  uv_timer_stop(&d.state_timer);
  print_answers = getenv("RUNWAY_FUZZ_PRINT") != NULL;
  ready = 1;
}

/* Removes every slot and lets the loop free what went with them. */
static void reset(void) {
  slots_shutdown(&d);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* The answer must be one line that parses back as {"id":<request id>,"ok":bool,...}. */
static void check_answer(const json_t *resp, const json_t *id) {
  size_t len = 0;
  char *line;
  json_t *back;

  if (resp == NULL)
    die("a request got no answer");
  line = proto_dump_line(resp, &len);
  if (line == NULL || len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL)
    die("an answer does not serialise to one line");
  back = json_loadb(line, len - 1, 0, NULL);
  if (!json_is_object(back) || !json_is_boolean(json_object_get(back, "ok")))
    die("an answer has no \"ok\"");
  /* jansson compares 1 and 1.0 as different; the id comes back as it was parsed. */
  if (!json_equal(json_object_get(back, "id"), id))
    die("an answer carries another id than its request");
  if (json_is_false(json_object_get(back, "ok")) &&
      !json_is_string(json_object_get(json_object_get(back, "error"), "code")))
    die("an error answer has no code");
  json_decref(back);
  free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct proto_request req;
  char err[512];
  enum proto_err rc;
  json_t *resp;

  if (!ready)
    setup();
  /* What the control server does with one line (conn_handle_line). */
  rc = proto_parse_request((const char *)data, size, &req, err, sizeof(err));
  if (rc != PROTO_OK) {
    resp = proto_response_error(req.id, rc, "%s", err);
  } else if (strcmp(req.cmd, "worker.attach") == 0 || strcmp(req.cmd, "subscribe") == 0) {
    proto_request_free(&req);
    return 0;
  } else {
    resp = commands_dispatch(&d, NULL, &req);
  }
  check_answer(resp, req.id != NULL ? req.id : json_null());
  if (print_answers) {
    char *line = proto_dump_line(resp, NULL);
    fprintf(stderr, "%s", line != NULL ? line : "(no answer)\n");
    free(line);
  }
  json_decref(resp);
  proto_request_free(&req);

  /* Closing timers of removed slots free them here. */
  uv_run(&loop, UV_RUN_NOWAIT);
  if (++inputs % RESET_EVERY == 0)
    reset();
  return 0;
}
