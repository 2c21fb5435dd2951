/*
 * clients/runwayctl: the command line to request translation, the usage
 * errors, the human output, the answer handling, and (when the test gets the
 * runwayctl binary as its argument) the exit statuses of the real tool
 * against a fake daemon that answers with a canned line.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "clock.h"
#include "ctl.h"

static const char *runwayctl_path;
static char err[512];

/* Parses a NULL-terminated argument list (argv[0] added). */
static int parse_v(struct ctl_args *a, const char *first, va_list ap) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)"runwayctl";
  for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
    assert_true(argc < 31);
    argv[argc++] = (char *)s;
  }
  argv[argc] = NULL;
  err[0] = '\0';
  return ctl_parse_args(argc, argv, a, err, sizeof(err));
}

static int parse(struct ctl_args *a, const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  int rc = parse_v(a, first, ap);
  va_end(ap);
  return rc;
}

/* Expects the arguments to give exactly this request (args object as JSON). */
static void expect_request(const char *cmd, const char *args_json, const char *first, ...) {
  struct ctl_args a;
  va_list ap;
  va_start(ap, first);
  int rc = parse_v(&a, first, ap);
  va_end(ap);
  if (rc != 0)
    fail_msg("usage error for %s: %s", cmd, err);
  assert_int_equal(a.action, CTL_RUN);
  assert_non_null(a.command);
  assert_string_equal(a.command->name, cmd);
  json_t *want =
      json_pack("{s:i,s:s,s:o}", "id", 1, "cmd", cmd, "args", json_loads(args_json, 0, NULL));
  assert_non_null(want);
  if (!json_equal(want, a.request)) {
    char *got = json_dumps(a.request, JSON_COMPACT | JSON_SORT_KEYS);
    fail_msg("request for %s: got %s, want args %s", cmd, got, args_json);
  }
  json_decref(want);
  ctl_args_free(&a);
}

/* Expects a usage error whose message holds needle. */
static void expect_usage(const char *needle, const char *first, ...) {
  struct ctl_args a;
  va_list ap;
  va_start(ap, first);
  int rc = parse_v(&a, first, ap);
  va_end(ap);
  if (rc != -EINVAL)
    fail_msg("expected a usage error (\"%s\"), got %d", needle, rc);
  assert_null(a.request);
  if (strstr(err, needle) == NULL)
    fail_msg("usage message \"%s\" lacks \"%s\"", err, needle);
}

static void test_requests(void **state) {
  (void)state;
  expect_request("status", "{}", "status", NULL);
  expect_request("plugins", "{}", "plugins", NULL);
  expect_request("slot.list", "{}", "slot", "list", NULL);
  expect_request("slot.remove", "{\"name\":\"fx\"}", "slot", "remove", "fx", NULL);
  expect_request("slot.restart", "{\"name\":\"fx-2_B\"}", "slot", "restart", "fx-2_B", NULL);
  expect_request("stats", "{}", "stats", NULL);
  expect_request("stats", "{\"name\":\"fx\"}", "stats", "fx", NULL);
  /* A word that looks like a negative number is a value, not an option. */
  expect_request("stats", "{\"name\":\"-5\"}", "stats", "-5", NULL);
  /* A positional array takes every remaining word. */
  expect_request("subscribe", "{}", "subscribe", NULL);
  expect_request("subscribe", "{\"events\":[\"slot\"]}", "subscribe", "slot", NULL);
  expect_request("subscribe", "{\"events\":[\"slot\",\"fault\",\"bogus\"]}", "subscribe", "slot",
                 "--json", "fault", "bogus", NULL);
  struct ctl_args a;
  assert_int_equal(parse(&a, "subscribe", NULL), 0);
  assert_true(a.command->stream);
  ctl_args_free(&a);
  assert_int_equal(parse(&a, "status", NULL), 0);
  assert_false(a.command->stream);
  ctl_args_free(&a);
}

static void test_slot_add_requests(void **state) {
  (void)state;
  expect_request("slot.add", "{\"name\":\"fx\",\"plugin\":\"gain\"}", "slot", "add", "fx",
                 "--plugin", "gain", NULL);
  expect_request("slot.add",
                 "{\"name\":\"fx\",\"plugin\":\"gain\",\"inputs\":2,\"outputs\":3,\"midi\":true,"
                 "\"latency_ms\":12.5}",
                 "slot", "add", "fx", "--plugin", "gain", "--inputs", "2", "--outputs", "3",
                 "--midi", "--latency-ms", "12.5", NULL);
  /* Options before the name, and --opt=value. */
  expect_request("slot.add", "{\"name\":\"fx\",\"plugin\":\"gain\",\"latency_frames\":480}", "slot",
                 "add", "--latency-frames=480", "--plugin=gain", "fx", NULL);
  /* A whole number for a number argument is sent as an integer. */
  expect_request("slot.add", "{\"name\":\"fx\",\"plugin\":\"gain\",\"latency_ms\":50}", "slot",
                 "add", "fx", "--plugin", "gain", "--latency-ms", "50", NULL);
  expect_request("slot.add", "{\"name\":\"w\",\"exec\":\"python3 my_worker.py --gain 3\"}", "slot",
                 "add", "w", "--exec", "python3 my_worker.py --gain 3", NULL);
  /* An option's value is taken as it is, even when it starts with a dash. */
  expect_request("slot.add", "{\"name\":\"w\",\"exec\":\"--weird\"}", "slot", "add", "w", "--exec",
                 "--weird", NULL);
  expect_request("slot.add", "{\"name\":\"ext\",\"external\":true,\"inputs\":1,\"midi\":true}",
                 "slot", "add", "ext", "--external", "--inputs", "1", "--midi=yes", NULL);
  expect_request("slot.add", "{\"name\":\"ext\",\"external\":true,\"midi\":false}", "slot", "add",
                 "ext", "--external", "--midi=false", NULL);
  expect_request("slot.add", "{\"name\":\"x\",\"plugin\":\"g\",\"latency_ms\":-1}", "slot", "add",
                 "x", "--plugin", "g", "--latency-ms", "-1", NULL);
}

static void test_global_options(void **state) {
  (void)state;
  struct ctl_args a;

  assert_int_equal(parse(&a, "status", NULL), 0);
  assert_null(a.socket);
  assert_int_equal(a.json, 0);
  assert_true(a.timeout_s == CTL_DEFAULT_TIMEOUT_S);
  ctl_args_free(&a);

  assert_int_equal(
      parse(&a, "--socket", "/tmp/s", "--json", "--timeout", "2.5", "slot", "list", NULL), 0);
  assert_string_equal(a.socket, "/tmp/s");
  assert_int_equal(a.json, 1);
  assert_true(a.timeout_s == 2.5);
  ctl_args_free(&a);

  /* After the command too ("slot list --json"), and with =. */
  assert_int_equal(parse(&a, "slot", "list", "--json", "--socket=/x.sock", "--timeout=1", NULL), 0);
  assert_int_equal(a.json, 1);
  assert_string_equal(a.socket, "/x.sock");
  assert_true(a.timeout_s == 1.0);
  assert_string_equal(a.command->name, "slot.list");
  ctl_args_free(&a);

  assert_int_equal(parse(&a, "stats", "--json", "fx", NULL), 0);
  assert_int_equal(a.json, 1);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(a.request, "args"), "name")), "fx");
  ctl_args_free(&a);

  /* "--" ends the options. */
  expect_request("stats", "{\"name\":\"fx\"}", "stats", "--", "fx", NULL);
}

static void test_help_and_version(void **state) {
  (void)state;
  struct ctl_args a;

  assert_int_equal(parse(&a, "--help", NULL), 0);
  assert_int_equal(a.action, CTL_HELP);
  assert_null(a.command);
  assert_null(a.request);
  assert_int_equal(parse(&a, "-h", NULL), 0);
  assert_int_equal(a.action, CTL_HELP);

  /* Help for a command wins over its missing arguments. */
  assert_int_equal(parse(&a, "slot", "add", "--help", NULL), 0);
  assert_int_equal(a.action, CTL_HELP);
  assert_string_equal(a.command->name, "slot.add");
  assert_int_equal(parse(&a, "--help", "stats", NULL), 0);
  assert_string_equal(a.command->name, "stats");

  assert_int_equal(parse(&a, "--version", NULL), 0);
  assert_int_equal(a.action, CTL_VERSION);
  assert_int_equal(parse(&a, "status", "-V", NULL), 0);
  assert_int_equal(a.action, CTL_VERSION);
}

static void test_usage_errors(void **state) {
  (void)state;
  expect_usage("no command given", NULL);
  expect_usage("no command given", "--json", NULL);
  expect_usage("unknown command \"frobnicate\"", "frobnicate", NULL);
  expect_usage("slot needs one of: add, remove, list, restart", "slot", NULL);
  expect_usage("unknown command \"slot foo\"; slot takes: add", "slot", "foo", NULL);
  /* worker.attach belongs to the worker SDK, not to runwayctl. */
  expect_usage("unknown command \"worker\"", "worker", "attach", NULL);
  expect_usage("unknown command \"slot.add\"; write it as \"slot add\"", "slot.add", "fx", NULL);
  expect_usage("unknown command \"a.b\"", "a.b", NULL);

  expect_usage("slot add needs NAME", "slot", "add", NULL);
  expect_usage("slot add needs NAME", "slot", "add", "--plugin", "gain", NULL);
  expect_usage("slot remove needs NAME; usage: runwayctl slot remove NAME", "slot", "remove", NULL);
  expect_usage("slot restart needs NAME", "slot", "restart", NULL);
  expect_usage("exactly one of --plugin P, --lv2 URI, --exec \"CMD\" or --external", "slot", "add",
               "fx", NULL);
  expect_usage("exactly one of", "slot", "add", "fx", "--plugin", "g", "--external", NULL);
  expect_usage("exactly one of", "slot", "add", "fx", "--plugin", "g", "--exec", "x", NULL);
  expect_usage("exactly one of", "slot", "add", "fx", "--external=false", NULL);
  expect_usage("exactly one of", "slot", "add", "fx", "--plugin", "g", "--lv2", "urn:x", NULL);
  expect_usage("--latency-ms or --latency-frames, not both", "slot", "add", "fx", "--plugin", "g",
               "--latency-ms", "5", "--latency-frames", "240", NULL);
  expect_usage("--inputs expects an integer, not \"abc\"", "slot", "add", "fx", "--plugin", "g",
               "--inputs", "abc", NULL);
  expect_usage("--inputs expects an integer, not \"2.5\"", "slot", "add", "fx", "--plugin", "g",
               "--inputs", "2.5", NULL);
  expect_usage("--inputs expects an integer", "slot", "add", "fx", "--plugin", "g", "--inputs",
               "99999999999999999999", NULL);
  expect_usage("--inputs expects an integer", "slot", "add", "fx", "--plugin", "g", "--inputs", "",
               NULL);
  expect_usage("--latency-ms expects a number, not \"fast\"", "slot", "add", "fx", "--plugin", "g",
               "--latency-ms", "fast", NULL);
  expect_usage("--latency-ms expects a number", "slot", "add", "fx", "--plugin", "g",
               "--latency-ms", "inf", NULL);
  expect_usage("--latency-ms expects a number", "slot", "add", "fx", "--plugin", "g",
               "--latency-ms", "nan", NULL);
  expect_usage("--midi takes no value, or true or false", "slot", "add", "fx", "--plugin", "g",
               "--midi=maybe", NULL);
  expect_usage("--plugin needs a value", "slot", "add", "fx", "--plugin", NULL);
  expect_usage("--plugin given twice", "slot", "add", "fx", "--plugin", "a", "--plugin", "b", NULL);
  expect_usage("unknown option --bogus for slot add; see `runwayctl slot add --help`", "slot",
               "add", "fx", "--plugin", "g", "--bogus", NULL);
  expect_usage("unknown option --name for slot add", "slot", "add", "--name", "fx", "--plugin", "g",
               NULL);
  expect_usage("unknown option --plugin", "--plugin", "g", "slot", "add", "fx", NULL);
  expect_usage("unknown option -x", "-x", "status", NULL);
  expect_usage("unknown option --inputs for stats", "stats", "--inputs", "2", NULL);

  expect_usage("unexpected argument \"extra\" for slot list", "slot", "list", "extra", NULL);
  expect_usage("unexpected argument \"b\" for slot remove", "slot", "remove", "a", "b", NULL);
  expect_usage("unexpected argument \"now\" for status", "status", "now", NULL);
  expect_usage("unexpected argument \"b\" for stats", "stats", "a", "b", NULL);

  expect_usage("\"a b\" is not a slot name: use 1 to 32 of A-Z a-z 0-9 _ -", "slot", "remove",
               "a b", NULL);
  expect_usage("is not a slot name", "slot", "add", "fx.1", "--plugin", "g", NULL);
  expect_usage("is not a slot name", "stats", "abcdefghijklmnopqrstuvwxyz0123456", NULL);
  expect_usage("is not a slot name", "slot", "restart", "", NULL);

  expect_usage("--socket needs a value (PATH)", "status", "--socket", NULL);
  expect_usage("--socket needs a path", "--socket", "", "status", NULL);
  expect_usage("--timeout expects seconds above 0", "--timeout", "0", "status", NULL);
  expect_usage("--timeout expects seconds above 0", "--timeout", "-1", "status", NULL);
  expect_usage("--timeout expects seconds above 0", "--timeout", "soon", "status", NULL);
  expect_usage("--timeout needs a value (SECONDS)", "status", "--timeout", NULL);
  expect_usage("--json takes no value", "--json=1", "status", NULL);
}

static char *capture(void (*fn)(FILE *, const void *), const void *arg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  fn(f, arg);
  assert_int_equal(fclose(f), 0);
  return buf;
}

static void help_fn(FILE *f, const void *arg) {
  (void)arg;
  ctl_print_help(f);
}

static void command_help_fn(FILE *f, const void *arg) { ctl_print_command_help(f, arg); }

static void test_help_text(void **state) {
  (void)state;
  char *h = capture(help_fn, NULL);
  for (const struct proto_command *c = proto_commands; c->name != NULL; c++) {
    if (c->usage == NULL)
      continue;
    assert_non_null(strstr(h, c->usage));
    assert_non_null(strstr(h, c->help));
  }
  assert_null(strstr(h, "worker.attach"));
  assert_non_null(strstr(h, "--socket PATH"));
  assert_non_null(strstr(h, "--timeout SECONDS"));
  assert_non_null(strstr(h, "3 no daemon reachable"));
  free(h);

  h = capture(command_help_fn, proto_find_command("slot.add"));
  assert_non_null(strstr(h, "Usage: runwayctl [--socket PATH] [--json] slot add NAME"));
  assert_non_null(strstr(h, "  NAME "));
  assert_non_null(strstr(h, "--latency-ms X"));
  assert_non_null(strstr(h, "--latency-frames N"));
  assert_non_null(strstr(h, "--plugin TEXT"));
  assert_non_null(strstr(h, "--midi  "));
  free(h);

  h = capture(command_help_fn, proto_find_command("subscribe"));
  assert_non_null(strstr(h, "Usage: runwayctl [--socket PATH] [--json] subscribe [EVENT...]"));
  assert_non_null(strstr(h, "  EVENTS...  "));
  free(h);
}

static json_t *J(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, 0, &e);
  if (v == NULL)
    fail_msg("bad test JSON: %s: %s", e.text, text);
  return v;
}

/*
 * Every command people use has its own printer (ctl_format.c binds one to
 * each USER command of PROTO_COMMAND_MAP): none falls back to printing the
 * result as JSON, which would show a field no printer knows. Commands only
 * programs send have none and would print JSON.
 */
static void test_every_command_printed(void **state) {
  (void)state;
  json_t *result = J("{\"no_printer_shows_this\":1}");
  for (int i = 0; i < PROTO_CMD_COUNT; i++) {
    const struct proto_command *c = &proto_commands[i];
    json_t *request =
        json_pack("{s:i, s:s, s:{s:s}}", "id", 1, "cmd", c->name, "args", "name", "fx");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    ctl_print_result(f, request, result);
    assert_int_equal(fclose(f), 0);
    /* A local command (top) has a runner instead: it never gets an answer to print. */
    if (c->usage != NULL && !c->local && strstr(out, "no_printer_shows_this") != NULL)
      fail_msg("runwayctl has no printer for %s: it printed %s", c->name, out);
    if ((c->usage == NULL || c->local) && strstr(out, "no_printer_shows_this") == NULL)
      fail_msg("%s is not a runwayctl command, yet something printed it: %s", c->name, out);
    free(out);
    json_decref(request);
  }
  json_decref(result);
}

struct print_arg {
  void (*print)(FILE *, const json_t *);
  const json_t *value;
};

static void print_fn(FILE *f, const void *arg) {
  const struct print_arg *p = arg;
  p->print(f, p->value);
}

static char *render(void (*print)(FILE *, const json_t *), const char *json_text) {
  json_t *v = J(json_text);
  struct print_arg p = {print, v};
  char *out = capture(print_fn, &p);
  json_decref(v);
  return out;
}

static void expect_render(void (*print)(FILE *, const json_t *), const char *json_text,
                          const char *want) {
  char *got = render(print, json_text);
  if (strcmp(got, want) != 0)
    fail_msg("got:\n%s\nwant:\n%s", got, want);
  free(got);
}

static void test_format_status(void **state) {
  (void)state;
  expect_render(ctl_print_status,
                "{\"version\":\"0.1.0\",\"pid\":4242,\"backend\":\"jack\",\"backend_state\":"
                "\"running\",\"name\":\"runway\",\"sample_rate\":48000,\"period\":256,\"slots\":2,"
                "\"uptime_s\":3723,\"socket\":\"/run/runway/control.sock\",\"secret\":\"x\"}",
                "version: 0.1.0\n"
                "pid: 4242\n"
                "backend: jack\n"
                "backend state: running\n"
                "client name: runway\n"
                "sample rate: 48000 Hz\n"
                "period: 256 frames (5.33 ms)\n"
                "slots: 2\n"
                "uptime: 1h 02m 03s\n"
                "socket: /run/runway/control.sock\n");
  /* Missing fields are left out; unexpected types print as they are. */
  expect_render(ctl_print_status, "{\"backend\":\"jack\",\"period\":\"?\",\"pid\":null}",
                "pid: -\nbackend: jack\nperiod: ?\n");
  expect_render(ctl_print_status, "{}", "");
  expect_render(ctl_print_status, "[]", "");
  /* Control characters never reach the terminal. */
  expect_render(ctl_print_status, "{\"name\":\"a\\u001b[2Jb\\n\"}", "client name: a?[2Jb?\n");
}

static void test_format_plugins(void **state) {
  (void)state;
  expect_render(ctl_print_plugins,
                "{\"plugins\":[{\"name\":\"gain\",\"description\":\"smoothed gain\",\"inputs\":2,"
                "\"outputs\":2,\"midi\":false,\"params\":[{\"id\":0,\"name\":\"gain\",\"min\":-60,"
                "\"max\":12,\"default\":0,\"unit\":\"dB\"},{\"id\":1,\"name\":\"mix\",\"min\":0,"
                "\"max\":1,\"default\":0.5}]},{\"name\":\"synth\",\"inputs\":0,\"outputs\":1,"
                "\"midi\":true,\"params\":[]}]}",
                "gain: 2 in, 2 out - smoothed gain\n"
                "  0 gain: -60 .. 12 dB, default 0\n"
                "  1 mix: 0 .. 1, default 0.5\n"
                "synth: 0 in, 1 out, MIDI\n");
  expect_render(ctl_print_plugins, "{\"plugins\":[]}", "no plugins\n");
  expect_render(ctl_print_plugins, "{}", "no plugins\n");
  expect_render(ctl_print_plugins, "{\"plugins\":[{}, 3]}", "-: - in, - out\n-: - in, - out\n");
}

static const char slots_json[] =
    "{\"slots\":[{\"name\":\"fx\",\"plugin\":\"gain\",\"state\":\"running\",\"pid\":4242,"
    "\"latency_frames\":2400,\"latency_ms\":50,\"restarts\":0,\"ports\":{\"inputs\":["
    "\"runway:fx.in_1\",\"runway:fx.in_2\"],\"outputs\":[\"runway:fx.out_1\","
    "\"runway:fx.out_2\"],\"midi\":\"runway:fx.midi_in\"}},{\"name\":\"external-one\","
    "\"plugin\":null,\"state\":\"starting\",\"pid\":null,\"latency_frames\":480,\"ports\":{"
    "\"inputs\":[],\"outputs\":[\"runway:external-one.out_1\"],\"midi\":null}}]}";

static void test_format_slot_list(void **state) {
  (void)state;
  expect_render(ctl_print_slot_list, slots_json,
                "NAME          PLUGIN  STATE     PID   LATENCY         PORTS\n"
                "fx            gain    running   4242  2400 (50.0 ms)  2 in, 2 out, midi\n"
                "external-one  -       starting  -     480             0 in, 1 out\n");
  /* With the sample rate, the ms come from the frames. */
  expect_render(ctl_print_slot_list,
                "{\"sample_rate\":48000,\"slots\":[{\"name\":\"a\",\"latency_frames\":480}]}",
                "NAME  PLUGIN  STATE  PID  LATENCY        PORTS\n"
                "a     -       -      -    480 (10.0 ms)  -\n");
  expect_render(ctl_print_slot_list, "{\"slots\":[]}",
                "no slots; add one with `runwayctl slot add NAME --plugin P`\n");
  expect_render(ctl_print_slot_list, "{\"slots\":\"nonsense\"}",
                "no slots; add one with `runwayctl slot add NAME --plugin P`\n");
  char *out = render(ctl_print_slot_list, "{\"slots\":[{}, 1, null]}");
  assert_non_null(strstr(out, "NAME"));
  free(out);
}

static void print_added(FILE *f, const json_t *slot) { ctl_print_slot(f, "added", slot); }

static void test_format_slot(void **state) {
  (void)state;
  json_t *all = J(slots_json);
  char *s = json_dumps(json_array_get(json_object_get(all, "slots"), 0), 0);
  expect_render(print_added, s,
                "slot fx added: gain, running, latency 2400 (50.0 ms); ports in: runway:fx.in_1 "
                "runway:fx.in_2 out: runway:fx.out_1 runway:fx.out_2 midi: runway:fx.midi_in\n");
  free(s);
  json_decref(all);
  expect_render(print_added, "{}", "slot - added: -, -, latency -\n");
  expect_render(print_added,
                "{\"name\":\"fx\",\"plugin\":\"gain\",\"state\":\"stopped\",\"latency_frames\":0,"
                "\"ports\":{\"inputs\":[],\"outputs\":[],\"midi\":null}}",
                "slot fx added: gain, stopped, latency 0; ports in: - out: -\n");
}

static void test_format_stats(void **state) {
  (void)state;
  expect_render(ctl_print_stats,
                "{\"daemon\":{\"xruns\":1,\"rt_cycle_ns_max\":12345,\"rt_cycle_ns_avg\":2500,"
                "\"cycles\":1000,\"future\":7},\"slots\":[{\"name\":\"fx\",\"underruns\":2,"
                "\"underrun_frames\":512,\"skipped_frames\":0,\"overruns\":0,"
                "\"nonfinite_samples\":3,\"restarts\":1,\"latency_frames\":2400,"
                "\"headroom_min_frames\":1800,\"cycles\":1000,\"future\":9}]}",
                "daemon: xruns 1, cycles 1000, RT cycle max 12.3 us, avg 2.5 us\n"
                "NAME  UNDERRUNS  UNDERRUN_FRAMES  SKIPPED_FRAMES  OVERRUNS  NONFINITE  RESTARTS  "
                "LATENCY  HEADROOM_MIN  CYCLES\n"
                "fx    2          512              0               0         3          1         "
                "2400     1800          1000\n");
  expect_render(ctl_print_stats, "{\"daemon\":{},\"slots\":[]}",
                "daemon: xruns -, cycles -, RT cycle max 0.0 us, avg 0.0 us\nno slots\n");
  expect_render(ctl_print_stats, "{}", "no slots\n");
}

struct response_case {
  const char *line;
  const json_t *request;
  int json;
  int rc;
  char *out, *err;
};

static void run_response(struct response_case *c) {
  size_t olen = 0, elen = 0;
  FILE *out = open_memstream(&c->out, &olen);
  FILE *errf = open_memstream(&c->err, &elen);
  c->rc = ctl_handle_response(c->line, strlen(c->line), c->request, c->json, out, errf);
  fclose(out);
  fclose(errf);
}

static void test_handle_response(void **state) {
  (void)state;
  json_t *req_remove = J("{\"id\":1,\"cmd\":\"slot.remove\",\"args\":{\"name\":\"fx\"}}");
  json_t *req_list = J("{\"id\":1,\"cmd\":\"slot.list\",\"args\":{}}");
  json_t *req_future = J("{\"id\":1,\"cmd\":\"future.command\",\"args\":{}}");
  struct response_case c;

  c = (struct response_case){.line = "{\"id\":1,\"ok\":true,\"result\":{}}", .request = req_remove};
  run_response(&c);
  assert_int_equal(c.rc, CTL_EXIT_OK);
  assert_string_equal(c.out, "slot fx removed\n");
  assert_string_equal(c.err, "");
  free(c.out);
  free(c.err);

  c = (struct response_case){.line = "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"not_found\","
                                     "\"message\":\"no slot named fx\"}}",
                             .request = req_remove};
  run_response(&c);
  assert_int_equal(c.rc, CTL_EXIT_ERROR);
  assert_string_equal(c.out, "");
  assert_string_equal(c.err, "runwayctl: not_found: no slot named fx\n");
  free(c.out);
  free(c.err);

  /* --json: the result as one document, and nothing else. */
  c = (struct response_case){.line = slots_json, .request = req_list, .json = 1};
  char *wrapped = malloc(strlen(slots_json) + 64);
  sprintf(wrapped, "{\"id\":1,\"ok\":true,\"result\":%s}", slots_json);
  c.line = wrapped;
  run_response(&c);
  assert_int_equal(c.rc, CTL_EXIT_OK);
  json_error_t jerr;
  json_t *doc = json_loads(c.out, 0, &jerr); /* fails on trailing garbage */
  assert_non_null(doc);
  json_t *want = J(slots_json);
  assert_true(json_equal(doc, want));
  json_decref(doc);
  json_decref(want);
  free(wrapped);
  free(c.out);
  free(c.err);

  c = (struct response_case){
      .line = "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"exists\",\"message\":\"m\"}}",
      .request = req_list,
      .json = 1};
  run_response(&c);
  assert_int_equal(c.rc, CTL_EXIT_ERROR);
  doc = json_loads(c.out, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(doc, "code")), "exists");
  json_decref(doc);
  free(c.out);
  free(c.err);

  c = (struct response_case){.line = "{\"id\":1,\"ok\":true}", .request = req_list, .json = 1};
  run_response(&c);
  assert_int_equal(c.rc, CTL_EXIT_OK);
  assert_string_equal(c.out, "{}\n");
  free(c.out);
  free(c.err);

  /* A command runwayctl has no human form for yet prints its result as JSON. */
  c = (struct response_case){.line = "{\"id\":1,\"ok\":true,\"result\":{\"value\":0.5}}",
                             .request = req_future};
  run_response(&c);
  assert_int_equal(c.rc, CTL_EXIT_OK);
  doc = json_loads(c.out, 0, NULL);
  assert_true(json_real_value(json_object_get(doc, "value")) == 0.5);
  json_decref(doc);
  free(c.out);
  free(c.err);

  static const char *const nonsense[] = {"",
                                         "garbage",
                                         "[1]",
                                         "{\"id\":1}",
                                         "{\"ok\":false}",
                                         "{\"ok\":false,\"error\":3}",
                                         "{\"ok\":\"yes\"}"};
  for (size_t i = 0; i < sizeof(nonsense) / sizeof(nonsense[0]); i++) {
    c = (struct response_case){.line = nonsense[i], .request = req_list};
    run_response(&c);
    assert_int_equal(c.rc, CTL_EXIT_ERROR);
    assert_non_null(strstr(c.err, "runwayctl: runwayd sent an answer"));
    free(c.out);
    free(c.err);
  }
  /* An error without code or message still reads sensibly. */
  c = (struct response_case){.line = "{\"ok\":false,\"error\":{}}", .request = req_list};
  run_response(&c);
  assert_string_equal(c.err, "runwayctl: -: -\n");
  free(c.out);
  free(c.err);

  json_decref(req_remove);
  json_decref(req_list);
  json_decref(req_future);
}

/* slot replace, slot restart --seamless, slot add --on-fault, slot advise, top. */
static void test_seamless_requests(void **state) {
  (void)state;
  expect_request("slot.replace", "{\"name\":\"fx\",\"plugin\":\"gain\"}", "slot", "replace", "fx",
                 "--plugin", "gain", NULL);
  expect_request("slot.replace",
                 "{\"name\":\"fx\",\"exec\":\"/bin/w --x\",\"on_fault\":\"bypass\","
                 "\"crossfade_ms\":5}",
                 "slot", "replace", "fx", "--exec", "/bin/w --x", "--on-fault", "bypass",
                 "--crossfade-ms", "5", NULL);
  expect_request("slot.restart", "{\"name\":\"fx\",\"seamless\":true}", "slot", "restart", "fx",
                 "--seamless", NULL);
  expect_request("slot.restart", "{\"name\":\"fx\",\"seamless\":true,\"crossfade_ms\":0}", "slot",
                 "restart", "fx", "--seamless", "--crossfade-ms", "0", NULL);
  expect_request("slot.add", "{\"name\":\"fx\",\"plugin\":\"gain\",\"on_fault\":\"bypass\"}",
                 "slot", "add", "fx", "--plugin", "gain", "--on-fault", "bypass", NULL);
  expect_request("slot.advise", "{\"name\":\"fx\"}", "slot", "advise", "fx", NULL);
  expect_request("top", "{\"once\":true,\"interval\":0.5}", "top", "--once", "--interval", "0.5",
                 NULL);
  expect_usage("exactly one of --plugin P, --lv2 URI or --exec", "slot", "replace", "fx", NULL);
  expect_usage("exactly one of --plugin P, --lv2 URI or --exec", "slot", "replace", "fx",
               "--plugin", "a", "--exec", "b", NULL);
  expect_usage("--on-fault is silence or bypass", "slot", "replace", "fx", "--plugin", "gain",
               "--on-fault", "loud", NULL);
  expect_usage("--on-fault is silence or bypass", "slot", "add", "fx", "--plugin", "gain",
               "--on-fault", "loud", NULL);
  expect_usage("--crossfade-ms is 0 to 1000", "slot", "replace", "fx", "--plugin", "gain",
               "--crossfade-ms", "2000", NULL);
  expect_usage("--crossfade-ms goes with --seamless", "slot", "restart", "fx", "--crossfade-ms",
               "10", NULL);
  expect_usage("--interval is 0.1 to 60", "top", "--interval", "0", NULL);
}

static void test_format_replace_and_advice(void **state) {
  (void)state;
  expect_render(ctl_print_advice,
                "{\"slot\":\"fx\",\"latency_frames\":960,\"sample_rate\":48000,\"cycles\":2264,"
                "\"underruns\":30,\"observed_s\":6.0,\"margin_percent\":25,"
                "\"margin_min_frames\":256,\"lead_min_frames\":-576,\"needed_frames\":1536,"
                "\"suggested_frames\":1920,\"advice\":\"raise L\"}",
                "slot fx: latency 960 frames (20.0 ms)\n"
                "  observed 6.0 s (2264 cycles): smallest lead -576 frames (-12.0 ms), 30 "
                "underrun(s)\n"
                "  the smallest latency with no underrun over that time: 1536 frames (32.0 ms)\n"
                "  suggested, with a margin of 25 % (at least 256 frames): 1920 frames (40.0 ms)\n"
                "  raise L\n");
  expect_render(ctl_print_advice,
                "{\"slot\":\"fx\",\"latency_frames\":960,\"lead_min_frames\":null}",
                "slot fx: latency 960 frames\n"
                "  no worker has run in it yet: nothing to advise from\n");
  json_t *request = J("{\"id\":1,\"cmd\":\"slot.replace\",\"args\":{\"name\":\"fx\"}}");
  json_t *result = J("{\"name\":\"fx\",\"plugin\":\"gain\",\"state\":\"running\","
                     "\"latency_frames\":2400,\"latency_ms\":50.0,\"switch\":{\"frame\":95104,"
                     "\"warmup_ms\":11,\"crossfade_frames\":960,\"crossfade_ms\":20.0,"
                     "\"history_frames\":8192,\"state_carried\":true}}");
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  ctl_print_result(f, request, result);
  fclose(f);
  assert_string_equal(out, "slot fx replaced: gain, running, latency 2400 (50.0 ms)\n"
                           "  switched at frame 95104 after 11 ms: crossfade 960 frames (20.0 "
                           "ms), 8192 frames of history, state carried over\n");
  free(out);
  json_decref(request);
  json_decref(result);
}

/* top's view: rates from two samples, nulls where there is no rate, the drawing. */
static void test_top_view(void **state) {
  (void)state;
  json_t *prev = J("{\"daemon\":{\"sample_rate\":48000,\"period\":128,\"cycles\":1000,"
                   "\"rt_cycle_ns_sum\":5000000},\"slots\":[{\"name\":\"fx\",\"pid\":7,"
                   "\"worker_cpu_ms\":100},{\"name\":\"gone\",\"pid\":8,\"worker_cpu_ms\":5}]}");
  json_t *cur = J("{\"daemon\":{\"sample_rate\":48000,\"period\":128,\"cycles\":1375,"
                  "\"rt_cycle_ns_sum\":5750000,\"rt_cycle_ns_max\":90000,"
                  "\"rt_cycle_ns_max_recent\":20000,\"xruns\":0},"
                  "\"slots\":[{\"name\":\"fx\",\"state\":\"running\",\"pid\":7,"
                  "\"worker_cpu_ms\":150,\"latency_frames\":2400,\"lead_min_recent_frames\":2304,"
                  "\"headroom_min_frames\":-96,\"underruns\":1,\"skipped_frames\":0,"
                  "\"restarts\":2,\"lead_histogram\":[1,0,0,0,0,0,0,10,1000]},"
                  "{\"name\":\"new\\u001b\",\"state\":\"starting\",\"pid\":9,"
                  "\"worker_cpu_ms\":3,\"replacing\":true}]}");
  json_t *view = ctl_top_view(prev, cur, 1000.0);
  const json_t *d = json_object_get(view, "daemon");
  assert_float_equal(json_real_value(json_object_get(d, "rt_cycle_us_avg")), 2.0, 1e-9);
  assert_float_equal(json_real_value(json_object_get(d, "rt_cycle_us_max")), 20.0, 1e-9);
  assert_float_equal(json_real_value(json_object_get(d, "rt_load_percent")), 0.075, 1e-9);
  const json_t *fx = json_array_get(json_object_get(view, "slots"), 0);
  assert_float_equal(json_real_value(json_object_get(fx, "cpu_percent")), 5.0, 1e-9);
  assert_float_equal(json_real_value(json_object_get(fx, "lead_ms")), 48.0, 1e-9);
  assert_float_equal(json_real_value(json_object_get(fx, "lead_min_ms")), -2.0, 1e-9);
  assert_float_equal(json_real_value(json_object_get(fx, "latency_ms")), 50.0, 1e-9);
  /* A slot not in the last sample has no rate yet. */
  const json_t *nw = json_array_get(json_object_get(view, "slots"), 1);
  assert_true(json_is_null(json_object_get(nw, "cpu_percent")));

  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  ctl_top_render(f, view, 0, 1);
  fclose(f);
  assert_non_null(strstr(out, "RT cycle: avg 2.0 us, max 20.0 us of 2667 us (0.1 % of the "
                              "period); xruns 0\n"));
  assert_non_null(strstr(out, "fx               running          7    5.0    48.0    -2.0    "
                              "50.0         1         0        2  [.      -#]\n"));
  assert_non_null(strstr(out, "new?             starting+new       9      -"));
  assert_null(strstr(out, "\033")); /* --once: no terminal codes, nothing from the daemon */
  free(out);
  /* In a terminal: lines cut at its width, each clearing what was there. */
  out = NULL;
  f = open_memstream(&out, &len);
  ctl_top_render(f, view, 20, 0);
  fclose(f);
  assert_non_null(strstr(out, "fx               run\033[K\n"));
  free(out);
  json_decref(view);
  json_decref(prev);
  json_decref(cur);
}

static void test_format_events(void **state) {
  (void)state;
  static const struct {
    const char *event, *want;
  } cases[] = {
      {"{\"event\":\"slot\",\"slot\":\"fx\",\"state\":\"running\",\"pid\":4242,"
       "\"generation\":3,\"reason\":\"worker started\",\"time_ms\":1}",
       "slot fx: running, pid 4242, generation 3 (worker started)\n"},
      {"{\"event\":\"slot\",\"slot\":\"fx\",\"state\":\"stopped\",\"pid\":null,"
       "\"generation\":0,\"reason\":\"\"}",
       "slot fx: stopped, pid -, generation 0\n"},
      {"{\"event\":\"underrun\",\"slot\":\"fx\",\"underruns\":2,\"underrun_frames\":96}",
       "underrun fx: 2 underruns, 96 frames of silence in all\n"},
      {"{\"event\":\"restart\",\"slot\":\"fx\",\"restarts\":1,\"reason\":\"stalled\"}",
       "restart fx: restart 1 (stalled)\n"},
      {"{\"event\":\"param\",\"slot\":\"fx\",\"param\":\"gain_db\",\"param_id\":0,\"value\":-6.5}",
       "param fx: gain_db (id 0) = -6.5\n"},
      {"{\"event\":\"fault\",\"slot\":\"fx\",\"reason\":\"segment \\u001b[31mcorrupted\"}",
       "fault fx: segment ?[31mcorrupted\n"},
      {"{\"event\":\"fault\",\"slot\":\"fx\"}", "fault fx: -\n"},
      {"{\"event\":\"replace\",\"slot\":\"fx\",\"phase\":\"switching\",\"plugin\":\"gain\","
       "\"generation\":4}",
       "replace fx: switching, gain on generation 4\n"},
      {"{\"event\":\"replace\",\"slot\":\"fx\",\"phase\":\"failed\",\"plugin\":\"/bin/false\","
       "\"generation\":5,\"reason\":\"the new worker exited\"}",
       "replace fx: failed, /bin/false on generation 5 (the new worker exited)\n"},
      {"{\"event\":\"meter\",\"slot\":\"fx\",\"peak\":1}", "meter: {\"slot\":\"fx\",\"peak\":1}\n"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *out = render(ctl_print_event, cases[i].event);
    assert_string_equal(out, cases[i].want);
    free(out);
  }
}

/* Runs ctl_handle_stream_line (answer: 0) or ctl_handle_stream_answer (1) on line. */
static int stream_case(const char *line, int answer, int json, char **out, char **errout) {
  size_t olen, elen;
  FILE *o = open_memstream(out, &olen);
  FILE *e = open_memstream(errout, &elen);
  json_t *req = J("{\"id\":1,\"cmd\":\"subscribe\",\"args\":{}}");
  int rc = answer ? ctl_handle_stream_answer(line, strlen(line), req, json, o, e)
                  : ctl_handle_stream_line(line, strlen(line), json, o, e);
  fclose(o);
  fclose(e);
  json_decref(req);
  return rc;
}

static void test_stream_lines(void **state) {
  (void)state;
  char *out, *errout;
  const char *answer = "{\"id\":1,\"ok\":true,\"result\":{\"subscribed\":[\"slot\",\"fault\"]}}";
  const char *event = "{\"event\":\"fault\",\"slot\":\"fx\",\"reason\":\"x\",\"time_ms\":5}";

  assert_int_equal(stream_case(answer, 1, 0, &out, &errout), CTL_EXIT_OK);
  assert_string_equal(out, "subscribed to slot, fault events; Ctrl-C stops\n");
  free(out);
  free(errout);
  /* --json: every line as it came, so the output is JSON lines. */
  assert_int_equal(stream_case(answer, 1, 1, &out, &errout), CTL_EXIT_OK);
  assert_int_equal(strncmp(out, answer, strlen(answer)), 0);
  assert_string_equal(out + strlen(answer), "\n");
  free(out);
  free(errout);
  const char *refused = "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"invalid_argument\","
                        "\"message\":\"unknown event type\"}}";
  assert_int_equal(stream_case(refused, 1, 0, &out, &errout), CTL_EXIT_ERROR);
  assert_string_equal(errout, "runwayctl: invalid_argument: unknown event type\n");
  free(out);
  free(errout);
  assert_int_equal(stream_case(refused, 1, 1, &out, &errout), CTL_EXIT_ERROR);
  assert_non_null(strstr(out, "invalid_argument"));
  free(out);
  free(errout);
  assert_int_equal(stream_case("nonsense", 1, 1, &out, &errout), CTL_EXIT_ERROR);
  assert_non_null(strstr(errout, "not a JSON object"));
  free(out);
  free(errout);

  assert_int_equal(stream_case(event, 0, 0, &out, &errout), CTL_EXIT_OK);
  assert_string_equal(out, "fault fx: x\n");
  free(out);
  free(errout);
  assert_int_equal(stream_case(event, 0, 1, &out, &errout), CTL_EXIT_OK);
  assert_int_equal(strncmp(out, event, strlen(event)), 0);
  assert_string_equal(out + strlen(event), "\n");
  free(out);
  free(errout);
  /* The daemon's last word before it closes goes to stderr. */
  assert_int_equal(stream_case("{\"id\":null,\"ok\":false,\"error\":{\"code\":\"limit\","
                               "\"message\":\"too many\"}}",
                               0, 0, &out, &errout),
                   CTL_EXIT_OK);
  assert_string_equal(out, "");
  assert_string_equal(errout, "runwayctl: limit: too many\n");
  free(out);
  free(errout);
  assert_int_equal(stream_case("[1,2]", 0, 0, &out, &errout), CTL_EXIT_ERROR);
  free(out);
  free(errout);
}

/* The real binary against a fake daemon that answers one connection with a canned line. */
struct fake {
  char dir[64], path[128];
  int listen_fd;
  const char *answer; /* NULL: never answer, wait for the client to go */
  char request[4096];
  pthread_t thread;
  /* A stream: after the answer, stay until the client goes, sending later on each trigger. */
  int hold;
  const char *later;
  int trigger[2];
};

static void *fake_serve(void *arg) {
  struct fake *f = arg;
  struct proto_client c;
  const char *line;
  int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    return NULL;
  if (proto_client_adopt(&c, fd) != 0) {
    close(fd);
    return NULL;
  }
  ssize_t n = proto_client_read_line(&c, base_mono_ms() + 5000, &line, NULL);
  if (n >= 0)
    snprintf(f->request, sizeof(f->request), "%s\n", line);
  if (f->answer != NULL) {
    if (write(c.fd, f->answer, strlen(f->answer)) < 0)
      perror("fake daemon write");
    while (f->hold) {
      struct pollfd p[2] = {{.fd = c.fd, .events = POLLIN},
                            {.fd = f->trigger[0], .events = POLLIN}};
      char sink[64];
      if (poll(p, 2, -1) < 0)
        break;
      if (p[1].revents & POLLIN) {
        if (read(f->trigger[0], sink, 1) == 1 && write(c.fd, f->later, strlen(f->later)) < 0)
          perror("fake daemon write");
      }
      if ((p[0].revents & (POLLIN | POLLHUP)) && read(c.fd, sink, sizeof(sink)) <= 0)
        break;
    }
  } else {
    /* Never answers: waits for the client to give up. */
    while (proto_client_read_line(&c, PROTO_CLIENT_FOREVER, &line, NULL) >= 0) {
    }
  }
  proto_client_close(&c);
  return NULL;
}

static void fake_start_with(struct fake *f, const char *answer, int hold, const char *later) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memset(f, 0, sizeof(*f));
  f->hold = hold;
  f->later = later;
  if (hold)
    assert_int_equal(pipe2(f->trigger, O_CLOEXEC), 0);
  snprintf(f->dir, sizeof(f->dir), "/tmp/rw-ctl-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
  memcpy(addr.sun_path, f->path, strlen(f->path) + 1);
  f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  assert_int_equal(listen(f->listen_fd, 4), 0);
  f->answer = answer;
  assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_start(struct fake *f, const char *answer) { fake_start_with(f, answer, 0, NULL); }

static void fake_stop(struct fake *f) {
  pthread_join(f->thread, NULL);
  if (f->hold) {
    close(f->trigger[0]);
    close(f->trigger[1]);
  }
  close(f->listen_fd);
  unlink(f->path);
  rmdir(f->dir);
}

static char *slurp(const char *path) {
  FILE *fp = fopen(path, "r");
  char *buf = calloc(1, 65536);
  assert_non_null(fp);
  size_t n = fread(buf, 1, 65535, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

/* Runs runwayctl with args (NULL-terminated), returns its exit status and output. */
static int run_tool(char **out, char **errout, const char *first, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  char out_path[] = "/tmp/rw-ctl-out-XXXXXX", err_path[] = "/tmp/rw-ctl-err-XXXXXX";
  int ofd = mkstemp(out_path), efd = mkstemp(err_path);

  assert_true(ofd >= 0 && efd >= 0);
  argv[argc++] = (char *)runwayctl_path;
  va_start(ap, first);
  for (const char *s = first; s != NULL; s = va_arg(ap, const char *))
    argv[argc++] = (char *)s;
  va_end(ap);
  argv[argc] = NULL;

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(ofd, 1);
    dup2(efd, 2);
    unsetenv("RUNWAY_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/nonexistent-runway-test", 1);
    execv(runwayctl_path, argv);
    _exit(127);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(ofd);
  close(efd);
  *out = slurp(out_path);
  *errout = slurp(err_path);
  unlink(out_path);
  unlink(err_path);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void test_tool_exit_statuses(void **state) {
  (void)state;
  struct fake f;
  char *out, *errout;

  if (runwayctl_path == NULL)
    skip();

  /* 3: nobody there; the message names the path and what to do. */
  assert_int_equal(run_tool(&out, &errout, "status", NULL), CTL_EXIT_UNREACHABLE);
  assert_non_null(strstr(errout, "/nonexistent-runway-test/runway/control.sock"));
  assert_non_null(strstr(errout, "start runwayd"));
  assert_non_null(strstr(errout, "RUNWAY_SOCKET"));
  free(out);
  free(errout);

  /* 2: usage. */
  assert_int_equal(run_tool(&out, &errout, "slot", "add", "fx", NULL), CTL_EXIT_USAGE);
  assert_non_null(strstr(errout, "runwayctl --help"));
  free(out);
  free(errout);

  /* 0: an answer, printed for people. */
  fake_start(&f, "{\"id\":1,\"ok\":true,\"result\":{\"backend\":\"jack\",\"slots\":0}}\n");
  assert_int_equal(run_tool(&out, &errout, "--socket", f.path, "status", NULL), CTL_EXIT_OK);
  fake_stop(&f);
  assert_string_equal(out, "backend: jack\nslots: 0\n");
  assert_string_equal(errout, "");
  assert_string_equal(f.request, "{\"id\":1,\"cmd\":\"status\",\"args\":{}}\n");
  free(out);
  free(errout);

  /* --json prints exactly the result. */
  fake_start(&f, "{\"id\":1,\"ok\":true,\"result\":{\"slots\":[]}}\n");
  assert_int_equal(run_tool(&out, &errout, "slot", "list", "--json", "--socket", f.path, NULL),
                   CTL_EXIT_OK);
  fake_stop(&f);
  json_t *doc = json_loads(out, 0, NULL);
  assert_non_null(doc);
  assert_int_equal(json_array_size(json_object_get(doc, "slots")), 0);
  json_decref(doc);
  free(out);
  free(errout);

  /* 1: the daemon said no. */
  fake_start(&f, "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"exists\",\"message\":\"slot "
                 "\\\"fx\\\" exists; remove it first or pick another name\"}}\n");
  assert_int_equal(run_tool(&out, &errout, "--socket", f.path, "slot", "add", "fx", "--plugin",
                            "gain", "--latency-ms", "20", NULL),
                   CTL_EXIT_ERROR);
  fake_stop(&f);
  assert_string_equal(errout, "runwayctl: exists: slot \"fx\" exists; remove it first or pick "
                              "another name\n");
  json_t *req = json_loads(f.request, JSON_DISABLE_EOF_CHECK, NULL);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(req, "args"), "latency_ms")),
                   20);
  json_decref(req);
  free(out);
  free(errout);

  /* 3: a daemon that never answers, bounded by --timeout. */
  fake_start(&f, NULL);
  uint64_t t0 = base_mono_ns();
  assert_int_equal(run_tool(&out, &errout, "--timeout", "0.3", "--socket", f.path, "status", NULL),
                   CTL_EXIT_UNREACHABLE);
  uint64_t t1 = base_mono_ns();
  fake_stop(&f);
  assert_non_null(strstr(errout, "no answer from runwayd"));
  double took = (double)(t1 - t0) / 1e9;
  assert_true(took >= 0.29 && took < 5);
  free(out);
  free(errout);

  /* 3: a daemon that hangs up without answering. */
  fake_start(&f, "");
  assert_int_equal(run_tool(&out, &errout, "--socket", f.path, "status", NULL),
                   CTL_EXIT_UNREACHABLE);
  fake_stop(&f);
  assert_non_null(strstr(errout, "closed the connection without answering"));
  free(out);
  free(errout);
}

/* Starts runwayctl with stdout on ofd and stderr on efd; returns its pid. */
static pid_t spawn_tool(int ofd, int efd, const char *const *args) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)runwayctl_path;
  for (; *args != NULL; args++)
    argv[argc++] = (char *)*args;
  argv[argc] = NULL;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(ofd, 1);
    dup2(efd, 2);
    execv(runwayctl_path, argv);
    _exit(127);
  }
  return pid;
}

/* Reads fd (non-blocking) into buf until it holds needle; fails at the deadline. */
static void wait_output(int fd, char *buf, size_t cap, const char *needle) {
  size_t len = strlen(buf);
  uint64_t deadline = base_mono_ms() + 5000;
  while (strstr(buf, needle) == NULL) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10) > 0) {
      ssize_t n = read(fd, buf + len, cap - 1 - len);
      if (n > 0) {
        len += (size_t)n;
        buf[len] = '\0';
      }
    }
    if (base_mono_ms() > deadline)
      fail_msg("runwayctl did not print \"%s\" within 5 s; it printed: %s", needle, buf);
  }
}

static int wait_exit(pid_t pid) {
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static const char stream_answer[] =
    "{\"id\":1,\"ok\":true,\"result\":{\"subscribed\":[\"slot\",\"fault\"]}}\n"
    "{\"event\":\"slot\",\"slot\":\"fx\",\"state\":\"running\",\"pid\":7,\"generation\":1,"
    "\"reason\":\"\",\"time_ms\":10}\n";
static const char stream_later[] =
    "{\"event\":\"fault\",\"slot\":\"fx\",\"reason\":\"gone\",\"time_ms\":20}\n";

static void test_tool_subscribe(void **state) {
  (void)state;
  struct fake f;
  char *out, *errout;
  char both[sizeof(stream_answer) + sizeof(stream_later)];

  if (runwayctl_path == NULL)
    skip();
  snprintf(both, sizeof(both), "%s%s", stream_answer, stream_later);

  /* Every event as it comes; the daemon going away ends it with 3. */
  fake_start(&f, both);
  assert_int_equal(run_tool(&out, &errout, "--socket", f.path, "subscribe", "slot", "fault", NULL),
                   CTL_EXIT_UNREACHABLE);
  fake_stop(&f);
  assert_string_equal(
      f.request, "{\"id\":1,\"cmd\":\"subscribe\",\"args\":{\"events\":[\"slot\",\"fault\"]}}\n");
  assert_string_equal(out, "subscribed to slot, fault events; Ctrl-C stops\n"
                           "slot fx: running, pid 7, generation 1\n"
                           "fault fx: gone\n");
  assert_non_null(strstr(errout, "closed the connection"));
  free(out);
  free(errout);

  /* --json: the lines exactly as they came. */
  fake_start(&f, both);
  assert_int_equal(run_tool(&out, &errout, "--json", "--socket", f.path, "subscribe", NULL),
                   CTL_EXIT_UNREACHABLE);
  fake_stop(&f);
  assert_string_equal(out, both);
  free(out);
  free(errout);

  /* A refused subscription is an error answer: 1. */
  fake_start(&f, "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"invalid_argument\",\"message\":"
                 "\"unknown event type\"}}\n");
  assert_int_equal(run_tool(&out, &errout, "--socket", f.path, "subscribe", "x", NULL),
                   CTL_EXIT_ERROR);
  fake_stop(&f);
  assert_string_equal(errout, "runwayctl: invalid_argument: unknown event type\n");
  free(out);
  free(errout);

  /* SIGINT and SIGTERM end a stream with 0. */
  int sigs[] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; i++) {
    int o[2], e[2];
    char buf[4096] = "";
    assert_int_equal(pipe2(o, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(e, O_CLOEXEC), 0);
    fake_start_with(&f, stream_answer, 1, stream_later);
    const char *args[] = {"--socket", f.path, "subscribe", NULL};
    pid_t pid = spawn_tool(o[1], e[1], args);
    close(o[1]);
    close(e[1]);
    wait_output(o[0], buf, sizeof(buf), "slot fx: running");
    assert_int_equal(write(f.trigger[1], "x", 1), 1);
    wait_output(o[0], buf, sizeof(buf), "fault fx: gone");
    kill(pid, sigs[i]);
    assert_int_equal(wait_exit(pid), CTL_EXIT_OK);
    fake_stop(&f);
    close(o[0]);
    close(e[0]);
  }

  /* A reader of the output that had enough (`| head -n 2`) ends it with 0 too. */
  int o[2], e[2];
  char buf[4096] = "";
  assert_int_equal(pipe2(o, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(pipe2(e, O_CLOEXEC), 0);
  fake_start_with(&f, stream_answer, 1, stream_later);
  const char *args[] = {"--json", "--socket", f.path, "subscribe", NULL};
  pid_t pid = spawn_tool(o[1], e[1], args);
  close(o[1]);
  close(e[1]);
  wait_output(o[0], buf, sizeof(buf), "\"running\"");
  close(o[0]);
  assert_int_equal(write(f.trigger[1], "x", 1), 1);
  assert_int_equal(wait_exit(pid), CTL_EXIT_OK);
  fake_stop(&f);
  close(e[0]);
}

int main(int argc, char **argv) {
  runwayctl_path = argc > 1 ? argv[1] : NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_requests),
      cmocka_unit_test(test_slot_add_requests),
      cmocka_unit_test(test_global_options),
      cmocka_unit_test(test_help_and_version),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_help_text),
      cmocka_unit_test(test_format_events),
      cmocka_unit_test(test_seamless_requests),
      cmocka_unit_test(test_format_replace_and_advice),
      cmocka_unit_test(test_top_view),
      cmocka_unit_test(test_stream_lines),
      cmocka_unit_test(test_tool_subscribe),
      cmocka_unit_test(test_format_status),
      cmocka_unit_test(test_format_plugins),
      cmocka_unit_test(test_format_slot_list),
      cmocka_unit_test(test_format_slot),
      cmocka_unit_test(test_format_stats),
      cmocka_unit_test(test_handle_response),
      cmocka_unit_test(test_every_command_printed),
      cmocka_unit_test(test_tool_exit_statuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
