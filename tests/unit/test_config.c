/*
 * daemon/persist/config: the configuration file, parsed (config_load) and
 * applied to the daemon's options (config_apply_options). What a file does
 * to running slots on start and SIGHUP runs in it_config against a real
 * runwayd.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char dir[] = "/tmp/test_config-XXXXXX";
static char path[4096];

static int setup(void **state) {
  (void)state;
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(path, sizeof(path), "%s/runway.conf", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(path);
  rmdir(dir);
  return 0;
}

static void write_file(const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

/* Loads text; returns config_load's result, the error in err. */
static int load(const char *text, struct config *c, char *err, size_t errlen) {
  write_file(text);
  memset(c, 0, sizeof(*c));
  err[0] = '\0';
  return config_load(path, c, err, errlen);
}

/* The file must be refused with a message naming `line` and containing `needle`. */
static void expect_refused(const char *text, int line, const char *needle) {
  struct config c;
  char err[512], where[4200];
  int rc = load(text, &c, err, sizeof(err));
  if (rc != -EINVAL)
    fail_msg("accepted (%d): %s", rc, text);
  if (line > 0)
    snprintf(where, sizeof(where), "%s:%d: ", path, line);
  else
    snprintf(where, sizeof(where), "%s: ", path);
  if (strncmp(err, where, strlen(where)) != 0 || strstr(err, needle) == NULL)
    fail_msg("message \"%s\" does not start with \"%s\" or lacks \"%s\"", err, where, needle);
  assert_null(c.daemon);
  assert_null(c.slots);
}

static json_t *slot_at(const struct config *c, size_t i) { return json_array_get(c->slots, i); }

/* ---- config_load ------------------------------------------------------------------------ */

static void test_full_file(void **state) {
  (void)state;
  struct config c;
  char err[512];
  int rc = load("; runway\n"
                "[daemon]\n"
                "name = rw\n"
                "socket = /run/runway/control.sock\n"
                "socket_group = audio\n"
                "state_dir = /var/lib/runway\n"
                "latency_ms = 20.5\n"
                "log_level = debug\n"
                "stall_timeout_ms = 2500\n"
                "worker = /usr/bin/runway-worker\n"
                "\n"
                "[slot synth]\n"
                "plugin = synth\n"
                "inputs = 0\n"
                "outputs = 2\n"
                "midi = yes\n"
                "latency_frames = 1024\n"
                "param.level_db = -6\n"
                "[slot fx-1]\n"
                "exec = /usr/bin/my-fx --fast\n"
                "latency_ms = 12\n"
                "[slot ext]\n"
                "external = true\n"
                "midi = off\n",
                &c, err, sizeof(err));
  if (rc != 0)
    fail_msg("refused: %s", err);
  assert_string_equal(json_string_value(json_object_get(c.daemon, "name")), "rw");
  assert_string_equal(json_string_value(json_object_get(c.daemon, "socket")),
                      "/run/runway/control.sock");
  assert_string_equal(json_string_value(json_object_get(c.daemon, "socket_group")), "audio");
  assert_string_equal(json_string_value(json_object_get(c.daemon, "state_dir")), "/var/lib/runway");
  assert_true(json_real_value(json_object_get(c.daemon, "latency_ms")) == 20.5);
  assert_string_equal(json_string_value(json_object_get(c.daemon, "log_level")), "debug");
  assert_int_equal(json_integer_value(json_object_get(c.daemon, "stall_timeout_ms")), 2500);
  assert_string_equal(json_string_value(json_object_get(c.daemon, "worker")),
                      "/usr/bin/runway-worker");

  assert_int_equal(json_array_size(c.slots), 3);
  json_t *s = slot_at(&c, 0); /* file order */
  assert_string_equal(json_string_value(json_object_get(s, "name")), "synth");
  assert_string_equal(json_string_value(json_object_get(s, "kind")), "plugin");
  assert_string_equal(json_string_value(json_object_get(s, "plugin")), "synth");
  assert_int_equal(json_integer_value(json_object_get(s, "inputs")), 0);
  assert_int_equal(json_integer_value(json_object_get(s, "outputs")), 2);
  assert_true(json_is_true(json_object_get(s, "midi")));
  assert_int_equal(json_integer_value(json_object_get(s, "latency_frames")), 1024);
  assert_true(json_real_value(json_object_get(json_object_get(s, "params"), "level_db")) == -6);
  s = slot_at(&c, 1);
  assert_string_equal(json_string_value(json_object_get(s, "name")), "fx-1");
  assert_string_equal(json_string_value(json_object_get(s, "kind")), "exec");
  assert_string_equal(json_string_value(json_object_get(s, "exec")), "/usr/bin/my-fx --fast");
  assert_true(json_real_value(json_object_get(s, "latency_ms")) == 12);
  assert_int_equal(json_object_size(json_object_get(s, "params")), 0);
  s = slot_at(&c, 2);
  assert_string_equal(json_string_value(json_object_get(s, "kind")), "external");
  assert_true(json_is_false(json_object_get(s, "midi")));
  config_free(&c);
  assert_null(c.daemon);
  assert_null(c.slots);
}

static void test_empty_file(void **state) {
  (void)state;
  struct config c;
  char err[512];
  assert_int_equal(load("", &c, err, sizeof(err)), 0);
  assert_int_equal(json_object_size(c.daemon), 0);
  assert_int_equal(json_array_size(c.slots), 0);
  config_free(&c);
}

static void test_section_reopened(void **state) {
  (void)state;
  struct config c;
  char err[512];
  /* [daemon] twice is one section; params may follow in any order. */
  int rc = load("[daemon]\nname = a\n[slot s]\nplugin = gain\n[daemon]\nlog_level = warn\n", &c,
                err, sizeof(err));
  if (rc != 0)
    fail_msg("refused: %s", err);
  assert_string_equal(json_string_value(json_object_get(c.daemon, "name")), "a");
  assert_string_equal(json_string_value(json_object_get(c.daemon, "log_level")), "warn");
  config_free(&c);
}

static void test_missing_file(void **state) {
  (void)state;
  struct config c = {0};
  char err[512] = "";
  char missing[4200];
  snprintf(missing, sizeof(missing), "%s/nonexistent.conf", dir);
  assert_int_equal(config_load(missing, &c, err, sizeof(err)), -ENOENT);
  assert_non_null(strstr(err, missing));
}

static void test_refused_files(void **state) {
  (void)state;
  expect_refused("[daemon]\nname = a\nthis is not ini\n", 3, "not a valid INI line");
  expect_refused("[daemon]\nlatency = 5\n", 2, "unknown key \"latency\" in [daemon]");
  expect_refused("[daemon]\nlatency_ms = 0\n", 2, "latency_ms");
  expect_refused("[daemon]\nlatency_ms = 2000.5\n", 2, "latency_ms");
  expect_refused("[daemon]\nlatency_ms = fast\n", 2, "latency_ms");
  expect_refused("[daemon]\nlatency_ms = nan\n", 2, "latency_ms");
  expect_refused("[daemon]\nstall_timeout_ms = 99\n", 2, "stall_timeout_ms");
  expect_refused("[daemon]\nstall_timeout_ms = 1e3\n", 2, "stall_timeout_ms");
  expect_refused("[daemon]\nstall_timeout_ms = 99999999999999999999999\n", 2, "stall_timeout_ms");
  expect_refused("[deamon]\nname = a\n", 2, "unknown section [deamon]");
  expect_refused("[slot bad/name]\nplugin = gain\n", 2, "unknown section");
  expect_refused("[slot a]\nplugin = gain\n[slot b]\nplugin = gain\n[slot a]\nplugin = sine\n", 6,
                 "[slot a] appears twice");
  expect_refused("[slot a]\nplugin = gain\nplugin = sine\n", 3, "\"plugin\" given twice");
  expect_refused("[slot a]\nplugin = gain\ninputs = -1\n", 3, "inputs wants a whole number");
  expect_refused("[slot a]\nplugin = gain\noutputs = 2.5\n", 3, "outputs wants a whole number");
  expect_refused("[slot a]\nplugin = gain\nmidi = maybe\n", 3, "midi wants yes or no");
  expect_refused("[slot a]\nplugin = gain\nlatency_ms = -3\n", 3, "latency_ms wants milliseconds");
  expect_refused("[slot a]\nplugin = gain\nparam.gain_db = loud\n", 3,
                 "param.gain_db wants a number");
  expect_refused("[slot a]\nplugin = gain\nparam. = 1\n", 3, "wants a number");
  expect_refused("[slot a]\nplugin = gain\ncolour = red\n", 3,
                 "unknown key \"colour\" in [slot a]");
  /* The first problem is the one reported, with its own line. */
  expect_refused("[daemon]\nname = a\nbogus = 1\nalso_bogus = 2\n", 3, "\"bogus\"");
}

static void test_slot_kind_exactly_one(void **state) {
  (void)state;
  expect_refused("[slot a]\ninputs = 1\n", 0, "[slot a] needs exactly one of plugin");
  expect_refused("[slot a]\nplugin = gain\nexec = /bin/true\n", 0, "needs exactly one");
  expect_refused("[slot a]\nplugin = gain\nexternal = yes\n", 0, "needs exactly one");
  /* external = no is no source at all. */
  expect_refused("[slot a]\nexternal = no\n", 0, "needs exactly one");
}

static void test_long_line_named_by_its_own_number(void **state) {
  (void)state;
  /*
   * inih reads at most INI_MAX_LINE (200) bytes at a time: a longer line
   * comes in pieces and counts as several in inih's own numbering. config.c
   * counts lines itself so that a problem is reported with its own line:
   * this one is on line 2.
   */
  char text[512];
  int k = snprintf(text, sizeof(text), "[daemon]\nstate_dir = /");
  memset(text + k, 'd', 300);
  snprintf(text + k + 300, sizeof(text) - (size_t)k - 300, "\nname = ok\n");
  expect_refused(text, 2, "");
}

/* ---- config_apply_options -------------------------------------------------------------- */

static void test_apply_options(void **state) {
  (void)state;
  struct config c;
  char err[512];
  int rc = load("[daemon]\nname = fromfile\nsocket = /tmp/x/control.sock\nsocket_group = audio\n"
                "state_dir = /srv/state\nlatency_ms = 30\nlog_level = warn\n"
                "stall_timeout_ms = 4000\nworker = /opt/worker\n",
                &c, err, sizeof(err));
  if (rc != 0)
    fail_msg("refused: %s", err);
  struct runwayd_options opt = {.name = "cli", .latency_ms = 50, .stall_timeout_ms = 2000};
  /* The command line gave --name and --latency-ms: those stay. */
  json_t *cli = json_pack("{s:b, s:b}", "name", 1, "latency_ms", 1);
  assert_int_equal(config_apply_options(&c, &opt, cli, err, sizeof(err)), 0);
  assert_string_equal(opt.name, "cli");
  assert_true(opt.latency_ms == 50);
  assert_string_equal(opt.socket_path, "/tmp/x/control.sock");
  assert_string_equal(opt.socket_group, "audio");
  assert_string_equal(opt.state_dir, "/srv/state");
  assert_int_equal(opt.stall_timeout_ms, 4000);
  assert_string_equal(opt.worker_path, "/opt/worker");
  enum log_level warn;
  assert_int_equal(log_parse_level("warn", &warn), 0);
  assert_int_equal(opt.log_level, warn);
  json_decref(cli);
  /* Nothing from the command line: the file's values. */
  cli = json_object();
  assert_int_equal(config_apply_options(&c, &opt, cli, err, sizeof(err)), 0);
  assert_string_equal(opt.name, "fromfile");
  assert_true(opt.latency_ms == 30);
  json_decref(cli);
  config_free(&c);
}

static void test_apply_bad_options(void **state) {
  (void)state;
  struct config c;
  char err[512];
  assert_int_equal(load("[daemon]\nlog_level = chatty\n", &c, err, sizeof(err)), 0);
  struct runwayd_options opt = {0};
  json_t *cli = json_object();
  assert_int_equal(config_apply_options(&c, &opt, cli, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "chatty"));
  config_free(&c);

  /* runway-worker by name or relative path: never looked up in $PATH. */
  const char *relative[] = {"runway-worker", "bin/runway-worker"};
  for (size_t i = 0; i < 2; i++) {
    char line[128];
    snprintf(line, sizeof(line), "[daemon]\nworker = %s\n", relative[i]);
    assert_int_equal(load(line, &c, err, sizeof(err)), 0);
    assert_int_equal(config_apply_options(&c, &opt, cli, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "absolute path"));
    config_free(&c);
  }

  char text[512];
  char longpath[150]; /* longer than a socket address holds, shorter than an INI line */
  memset(longpath, 'p', sizeof(longpath) - 1);
  longpath[0] = '/';
  longpath[sizeof(longpath) - 1] = '\0';
  snprintf(text, sizeof(text), "[daemon]\nsocket = %s\n", longpath);
  assert_int_equal(load(text, &c, err, sizeof(err)), 0);
  assert_int_equal(config_apply_options(&c, &opt, cli, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "too long"));
  json_decref(cli);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_file),
      cmocka_unit_test(test_empty_file),
      cmocka_unit_test(test_section_reopened),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_refused_files),
      cmocka_unit_test(test_slot_kind_exactly_one),
      cmocka_unit_test(test_long_line_named_by_its_own_number),
      cmocka_unit_test(test_apply_options),
      cmocka_unit_test(test_apply_bad_options),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
