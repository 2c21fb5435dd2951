/*
 * proto/protocol: request parsing and validation against the command table,
 * response building, line framing, slot names and the socket path.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"

static char err[1024];

static enum proto_err parse_n(const char *line, size_t len, struct proto_request *req) {
  memset(err, 'x', sizeof(err) - 1);
  err[sizeof(err) - 1] = '\0';
  return proto_parse_request(line, len, req, err, sizeof(err));
}

static enum proto_err parse(const char *line, struct proto_request *req) {
  return parse_n(line, strlen(line), req);
}

/* Parses, expects code, and checks that the error message builds a valid response. */
static void expect_error(const char *line, size_t len, enum proto_err code, const char *needle) {
  struct proto_request req;
  enum proto_err rc = parse_n(line, len, &req);
  if (rc != code)
    fail_msg("expected %s, got %s (%s) for %.80s", proto_err_name(code), proto_err_name(rc), err,
             line);
  assert_non_null(req.id);
  if (needle != NULL && strstr(err, needle) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", err, needle);
  json_t *resp = proto_response_error(req.id, rc, "%s", err);
  assert_non_null(resp);
  size_t n;
  char *dumped = proto_dump_line(resp, &n);
  assert_non_null(dumped);
  free(dumped);
  json_decref(resp);
  proto_request_free(&req);
}

static void expect_code(const char *line, enum proto_err code, const char *needle) {
  expect_error(line, strlen(line), code, needle);
}

static void test_error_names(void **state) {
  (void)state;
  static const char *const names[] = {"ok",
                                      "bad_request",
                                      "unknown_command",
                                      "invalid_argument",
                                      "not_found",
                                      "exists",
                                      "busy",
                                      "limit",
                                      "too_large",
                                      "backend_unavailable",
                                      "spawn_failed",
                                      "io_error",
                                      "permission_denied",
                                      "internal"};
  assert_int_equal(sizeof(names) / sizeof(names[0]), PROTO_E_COUNT);
  for (int i = 0; i < PROTO_E_COUNT; i++)
    assert_string_equal(proto_err_name((enum proto_err)i), names[i]);
  assert_string_equal(proto_err_name(PROTO_E_COUNT), "internal");
  assert_string_equal(proto_err_name((enum proto_err) - 1), "internal");
}

static void test_command_table(void **state) {
  (void)state;
  static const char *const expected[] = {"status",      "plugins",       "slot.add",
                                         "slot.remove", "slot.list",     "slot.restart",
                                         "stats",       "worker.attach", "subscribe"};
  for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
    assert_non_null(proto_find_command(expected[i]));
  assert_null(proto_find_command("nope"));
  assert_null(proto_find_command(NULL));

  for (const struct proto_command *c = proto_commands; c->name != NULL; c++) {
    assert_non_null(c->help);
    assert_non_null(c->args);
    for (const struct proto_command *d = c + 1; d->name != NULL; d++)
      assert_string_not_equal(c->name, d->name);
    if (c->usage != NULL) {
      /* runwayctl spells "slot.add" as "slot add". */
      char words[64];
      snprintf(words, sizeof(words), "%s", c->name);
      for (char *p = words; *p; p++)
        if (*p == '.')
          *p = ' ';
      assert_int_equal(strncmp(c->usage, words, strlen(words)), 0);
    }
    for (const struct proto_arg *a = c->args; a->name != NULL; a++) {
      assert_non_null(a->help);
      assert_ptr_equal(proto_find_arg(c, a->name), a);
      for (const struct proto_arg *b = a + 1; b->name != NULL; b++)
        assert_string_not_equal(a->name, b->name);
    }
  }
  const struct proto_command *add = proto_find_command("slot.add");
  assert_int_equal(proto_find_arg(add, "name")->type, PROTO_T_STRING);
  assert_true(proto_find_arg(add, "name")->required);
  assert_int_equal(proto_find_arg(add, "latency_ms")->type, PROTO_T_NUMBER);
  assert_int_equal(proto_find_arg(add, "latency_frames")->type, PROTO_T_INT);
  assert_int_equal(proto_find_arg(add, "midi")->type, PROTO_T_BOOL);
  assert_null(proto_find_arg(add, "bogus"));
  assert_null(proto_find_command("worker.attach")->usage);
  /* subscribe streams events after its answer; nothing else does. */
  for (const struct proto_command *c = proto_commands; c->name != NULL; c++)
    assert_int_equal(c->stream, strcmp(c->name, "subscribe") == 0);
  const struct proto_arg *events = proto_find_arg(proto_find_command("subscribe"), "events");
  assert_int_equal(events->type, PROTO_T_ARRAY);
  assert_false(events->required);
  assert_true(events->positional);
  assert_string_equal(proto_type_name(PROTO_T_STRING_OR_INT), "string or integer");
}

/*
 * PROTO_COMMAND_MAP and proto_commands[] agree: every command of the map has
 * its entry at its id, under the wire name its stem spells ("slot_add" is
 * "slot.add"), with a usage exactly when people use it through runwayctl.
 */
static void test_command_map(void **state) {
  (void)state;
  static const struct {
    const char *stem;
    int user;
    int local;
  } map[] = {
#define USER_ROW(ID, stem) {#stem, 1, 0},
#define INTERNAL_ROW(ID, stem) {#stem, 0, 0},
#define LOCAL_ROW(ID, stem) {#stem, 1, 1},
      PROTO_COMMAND_MAP(USER_ROW, INTERNAL_ROW, LOCAL_ROW)
#undef USER_ROW
#undef INTERNAL_ROW
#undef LOCAL_ROW
  };
  assert_int_equal(sizeof(map) / sizeof(map[0]), PROTO_CMD_COUNT);
  for (int i = 0; i < PROTO_CMD_COUNT; i++) {
    const struct proto_command *c = &proto_commands[i];
    char stem[64];
    if (c->name == NULL)
      fail_msg("PROTO_COMMAND_MAP has %s, but proto_commands[] has no entry for it", map[i].stem);
    assert_int_equal(c->id, i);
    snprintf(stem, sizeof(stem), "%s", c->name);
    for (char *p = stem; *p; p++)
      if (*p == '.')
        *p = '_';
    if (strcmp(stem, map[i].stem) != 0)
      fail_msg("proto_commands[%d] is %s, but the map has %s there", i, c->name, map[i].stem);
    assert_int_equal(c->usage != NULL, map[i].user);
    assert_int_equal(c->local, map[i].local);
    assert_ptr_equal(proto_find_command(c->name), c);
  }
  assert_null(proto_commands[PROTO_CMD_COUNT].name);
}

static void test_parse_minimal(void **state) {
  (void)state;
  struct proto_request req;
  assert_int_equal(parse("{\"cmd\":\"status\"}", &req), PROTO_OK);
  assert_true(json_is_null(req.id));
  assert_string_equal(req.cmd, "status");
  assert_ptr_equal(req.command, proto_find_command("status"));
  assert_true(json_is_object(req.args));
  assert_int_equal(json_object_size(req.args), 0);
  proto_request_free(&req);
  assert_null(req.root);
  proto_request_free(&req); /* twice is harmless */

  assert_int_equal(parse("  {\"id\":7,\"cmd\":\"slot.list\",\"args\":null}  ", &req), PROTO_OK);
  assert_int_equal(json_integer_value(req.id), 7);
  assert_true(json_is_object(req.args));
  proto_request_free(&req);
}

static void test_parse_full_slot_add(void **state) {
  (void)state;
  struct proto_request req;
  const char *line = "{\"id\":\"a\",\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"plugin\":"
                     "\"gain\",\"exec\":\"x\",\"external\":true,\"inputs\":2,\"outputs\":2,"
                     "\"midi\":false,\"latency_ms\":12.5,\"latency_frames\":480}}";
  assert_int_equal(parse(line, &req), PROTO_OK);
  assert_string_equal(json_string_value(req.id), "a");
  assert_string_equal(json_string_value(json_object_get(req.args, "name")), "fx");
  assert_int_equal(json_integer_value(json_object_get(req.args, "latency_frames")), 480);
  proto_request_free(&req);

  /* A number argument takes integers too. */
  assert_int_equal(
      parse("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"latency_ms\":50}}", &req), PROTO_OK);
  proto_request_free(&req);
  assert_int_equal(parse("{\"cmd\":\"stats\",\"args\":{}}", &req), PROTO_OK);
  proto_request_free(&req);
  assert_int_equal(parse("{\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"pid\":12,"
                         "\"params\":[{\"id\":0}]}}",
                         &req),
                   PROTO_OK);
  proto_request_free(&req);
}

static void test_ids(void **state) {
  (void)state;
  struct proto_request req;
  assert_int_equal(parse("{\"id\":1.5,\"cmd\":\"status\"}", &req), PROTO_OK);
  assert_true(json_is_real(req.id));
  proto_request_free(&req);
  assert_int_equal(parse("{\"id\":null,\"cmd\":\"status\"}", &req), PROTO_OK);
  assert_true(json_is_null(req.id));
  proto_request_free(&req);
  assert_int_equal(parse("{\"id\":-9223372036854775808,\"cmd\":\"status\"}", &req), PROTO_OK);
  assert_int_equal(json_integer_value(req.id), INT64_MIN);
  proto_request_free(&req);

  /* The id is read before anything else fails, so errors can echo it. */
  assert_int_equal(parse("{\"id\":42,\"cmd\":\"nope\"}", &req), PROTO_E_UNKNOWN_COMMAND);
  assert_int_equal(json_integer_value(req.id), 42);
  proto_request_free(&req);
  assert_int_equal(parse("{\"id\":\"x\"}", &req), PROTO_E_BAD_REQUEST);
  assert_string_equal(json_string_value(req.id), "x");
  proto_request_free(&req);

  expect_code("{\"id\":true,\"cmd\":\"status\"}", PROTO_E_BAD_REQUEST, "\"id\"");
  expect_code("{\"id\":false,\"cmd\":\"status\"}", PROTO_E_BAD_REQUEST, "\"id\"");
  expect_code("{\"id\":[1],\"cmd\":\"status\"}", PROTO_E_BAD_REQUEST, "\"id\"");
  expect_code("{\"id\":{},\"cmd\":\"status\"}", PROTO_E_BAD_REQUEST, "\"id\"");
  assert_int_equal(parse("{\"id\":{},\"cmd\":\"status\"}", &req), PROTO_E_BAD_REQUEST);
  assert_true(json_is_null(req.id));
  proto_request_free(&req);
}

static void test_invalid_json(void **state) {
  (void)state;
  expect_code("", PROTO_E_BAD_REQUEST, "not valid JSON");
  expect_code("{", PROTO_E_BAD_REQUEST, "not valid JSON");
  expect_code("hello", PROTO_E_BAD_REQUEST, "not valid JSON");
  expect_code("{\"cmd\":\"status\"} {}", PROTO_E_BAD_REQUEST, "not valid JSON");
  expect_code("{\"cmd\":\"status\",}", PROTO_E_BAD_REQUEST, NULL);
  expect_code("{'cmd':'status'}", PROTO_E_BAD_REQUEST, NULL);
  expect_code("{\"cmd\":\"status\",\"cmd\":\"plugins\"}", PROTO_E_BAD_REQUEST, "duplicate");
  expect_error(NULL, 0, PROTO_E_BAD_REQUEST, NULL);
}

static void test_not_an_object(void **state) {
  (void)state;
  expect_code("[]", PROTO_E_BAD_REQUEST, "not an object");
  expect_code("[{\"cmd\":\"status\"}]", PROTO_E_BAD_REQUEST, "not an object");
  expect_code("42", PROTO_E_BAD_REQUEST, NULL);
  expect_code("\"status\"", PROTO_E_BAD_REQUEST, NULL);
  expect_code("null", PROTO_E_BAD_REQUEST, NULL);
}

static void test_cmd_errors(void **state) {
  (void)state;
  expect_code("{}", PROTO_E_BAD_REQUEST, "no \"cmd\"");
  expect_code("{\"id\":1,\"args\":{}}", PROTO_E_BAD_REQUEST, "no \"cmd\"");
  expect_code("{\"cmd\":5}", PROTO_E_BAD_REQUEST, "must be a string");
  expect_code("{\"cmd\":null}", PROTO_E_BAD_REQUEST, "must be a string");
  expect_code("{\"cmd\":[\"status\"]}", PROTO_E_BAD_REQUEST, "must be a string");
  expect_code("{\"cmd\":\"frobnicate\"}", PROTO_E_UNKNOWN_COMMAND, "\"frobnicate\"");
  expect_code("{\"cmd\":\"frobnicate\"}", PROTO_E_UNKNOWN_COMMAND, "runwayctl --help");
  expect_code("{\"cmd\":\"slot add\"}", PROTO_E_UNKNOWN_COMMAND, "slot add");
  expect_code("{\"cmd\":\"\"}", PROTO_E_UNKNOWN_COMMAND, NULL);
  /* runwayctl's own commands are not runwayd's. */
  expect_code("{\"cmd\":\"top\"}", PROTO_E_UNKNOWN_COMMAND, "runwayctl's own command");
  expect_code("{\"cmd\":\"status\",\"arg\":{}}", PROTO_E_BAD_REQUEST, "\"arg\"");

  /* A very long unknown command is quoted only in part. */
  char line[2048];
  int n = snprintf(line, sizeof(line), "{\"cmd\":\"");
  for (int i = 0; i < 1000; i++)
    line[n++] = 'z';
  snprintf(line + n, sizeof(line) - (size_t)n, "\"}");
  expect_code(line, PROTO_E_UNKNOWN_COMMAND, "...");
  assert_true(strlen(err) < 300);
}

static void test_arg_errors(void **state) {
  (void)state;
  expect_code("{\"cmd\":\"slot.add\",\"args\":[]}", PROTO_E_INVALID_ARGUMENT, "\"args\"");
  expect_code("{\"cmd\":\"slot.add\",\"args\":\"fx\"}", PROTO_E_INVALID_ARGUMENT, "object");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{}}", PROTO_E_INVALID_ARGUMENT, "\"name\"");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"plugin\":\"gain\"}}", PROTO_E_INVALID_ARGUMENT,
              "needs the argument \"name\"");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"bogus\":1}}",
              PROTO_E_INVALID_ARGUMENT, "unknown argument \"bogus\"");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"bogus\":1}}",
              PROTO_E_INVALID_ARGUMENT, "latency_ms");
  expect_code("{\"cmd\":\"status\",\"args\":{\"verbose\":true}}", PROTO_E_INVALID_ARGUMENT,
              "takes no arguments");
  expect_code("{\"cmd\":\"slot.remove\",\"args\":{\"name\":3}}", PROTO_E_INVALID_ARGUMENT,
              "\"name\" of slot.remove must be a string, not an integer");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"inputs\":\"2\"}}",
              PROTO_E_INVALID_ARGUMENT, "\"inputs\" of slot.add must be an integer, not a string");
  /* Integer arguments refuse reals, even integral ones. */
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"inputs\":2.0}}",
              PROTO_E_INVALID_ARGUMENT, "must be an integer, not a real number");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"latency_frames\":1e3}}",
              PROTO_E_INVALID_ARGUMENT, "latency_frames");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"latency_ms\":\"50\"}}",
              PROTO_E_INVALID_ARGUMENT, "must be a number, not a string");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"midi\":1}}",
              PROTO_E_INVALID_ARGUMENT, "must be a boolean, not an integer");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"external\":\"yes\"}}",
              PROTO_E_INVALID_ARGUMENT, "external");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"plugin\":null}}",
              PROTO_E_INVALID_ARGUMENT, "not null");
  expect_code("{\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"params\":{}}}",
              PROTO_E_INVALID_ARGUMENT, "must be an array, not an object");
  expect_code("{\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"pid\":\"1\"}}",
              PROTO_E_INVALID_ARGUMENT, "pid");
  expect_code("{\"cmd\":\"subscribe\",\"args\":{\"events\":\"slot\"}}", PROTO_E_INVALID_ARGUMENT,
              "must be an array, not a string");
}

/* A schema with the types no built-in command uses yet. */
static const struct proto_arg custom_args[] = {
    {.name = "param", .type = PROTO_T_STRING_OR_INT, .required = 1, .help = "by name or id"},
    {.name = "state", .type = PROTO_T_OBJECT, .help = "plugin state"},
    {.name = "n", .type = PROTO_T_NUMBER, .help = "a number"},
    {.name = NULL}};
static const struct proto_command custom_cmd = {
    .name = "param.get", .args = custom_args, .usage = NULL, .help = "test"};

static enum proto_err check(const char *args_json) {
  json_t *args = json_loads(args_json, 0, NULL);
  assert_non_null(args);
  enum proto_err rc = proto_check_args(&custom_cmd, args, err, sizeof(err));
  json_decref(args);
  return rc;
}

static void test_string_or_int_and_object(void **state) {
  (void)state;
  assert_int_equal(check("{\"param\":\"gain\"}"), PROTO_OK);
  assert_int_equal(check("{\"param\":3}"), PROTO_OK);
  assert_int_equal(check("{\"param\":-3,\"state\":{\"a\":1},\"n\":1.5}"), PROTO_OK);
  assert_int_equal(check("{\"param\":3.5}"), PROTO_E_INVALID_ARGUMENT);
  assert_non_null(strstr(err, "must be a string or integer, not a real number"));
  assert_int_equal(check("{\"param\":true}"), PROTO_E_INVALID_ARGUMENT);
  assert_int_equal(check("{\"param\":[1]}"), PROTO_E_INVALID_ARGUMENT);
  assert_int_equal(check("{\"param\":1,\"state\":[]}"), PROTO_E_INVALID_ARGUMENT);
  assert_non_null(strstr(err, "must be an object, not an array"));
  assert_int_equal(check("{\"param\":1,\"n\":true}"), PROTO_E_INVALID_ARGUMENT);
  assert_int_equal(check("{}"), PROTO_E_INVALID_ARGUMENT);
  assert_non_null(strstr(err, "\"param\""));
  assert_int_equal(proto_check_args(&custom_cmd, NULL, err, sizeof(err)), PROTO_E_INVALID_ARGUMENT);
}

static void test_number_overflow(void **state) {
  (void)state;
  struct proto_request req;
  assert_int_equal(
      parse("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"inputs\":9223372036854775807}}",
            &req),
      PROTO_OK);
  assert_int_equal(json_integer_value(json_object_get(req.args, "inputs")), INT64_MAX);
  proto_request_free(&req);

  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"inputs\":9223372036854775808}}",
              PROTO_E_BAD_REQUEST, "not valid JSON");
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"inputs\":-9223372036854775809}}",
              PROTO_E_BAD_REQUEST, NULL);
  expect_code("{\"id\":99999999999999999999999999999,\"cmd\":\"status\"}", PROTO_E_BAD_REQUEST,
              NULL);
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"latency_ms\":1e400}}",
              PROTO_E_BAD_REQUEST, NULL);
  /* Underflow rounds to zero; the handler's range check deals with it. */
  assert_int_equal(
      parse("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"latency_ms\":1e-400}}", &req),
      PROTO_OK);
  proto_request_free(&req);
}

static char *nested(int depth, const char *prefix, const char *suffix) {
  size_t n = strlen(prefix) + strlen(suffix) + 2 * (size_t)depth + 1;
  char *s = malloc(n);
  assert_non_null(s);
  char *p = s + sprintf(s, "%s", prefix);
  for (int i = 0; i < depth; i++)
    *p++ = '[';
  for (int i = 0; i < depth; i++)
    *p++ = ']';
  strcpy(p, suffix);
  return s;
}

static void test_deep_nesting(void **state) {
  (void)state;
  struct proto_request req;
  char *s;

  s = nested(10000, "{\"cmd\":\"status\",\"args\":{\"x\":", "}}");
  expect_code(s, PROTO_E_BAD_REQUEST, "deeper than 32");
  free(s);
  /* Only the opening brackets: never balanced. */
  s = nested(10000, "", "");
  s[10000] = '\0';
  expect_code(s, PROTO_E_BAD_REQUEST, "deeper");
  free(s);

  /* Exactly PROTO_MAX_DEPTH levels: object, args object, 30 arrays. */
  s = nested(PROTO_MAX_DEPTH - 2,
             "{\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"params\":", "}}");
  assert_int_equal(parse(s, &req), PROTO_OK);
  proto_request_free(&req);
  free(s);
  s = nested(PROTO_MAX_DEPTH - 1,
             "{\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"params\":", "}}");
  expect_code(s, PROTO_E_BAD_REQUEST, "deeper");
  free(s);

  /* Brackets inside strings, escaped quotes included, do not count. */
  s = malloc(20000);
  assert_non_null(s);
  int n = sprintf(s, "{\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"exec\":\"\\\"");
  for (int i = 0; i < 5000; i++)
    s[n++] = '[';
  strcpy(s + n, "\\\\\"}}");
  assert_int_equal(parse(s, &req), PROTO_OK);
  assert_int_equal(strlen(json_string_value(json_object_get(req.args, "exec"))), 5002);
  proto_request_free(&req);
  free(s);
}

static void test_invalid_utf8_and_nul(void **state) {
  (void)state;
  static const char bad_value[] = "{\"cmd\":\"slot.add\",\"args\":{\"name\":\"f\xff\"}}";
  static const char bad_cmd[] = "{\"cmd\":\"st\xc3\x28tus\"}";
  static const char overlong[] = "{\"cmd\":\"\xc0\xaf\"}";
  static const char surrogate[] = "{\"cmd\":\"\xed\xa0\x80\"}";
  static const char bare_byte[] = "{\"cmd\":\"status\"}\xfe";
  static const char with_nul[] = "{\"cmd\":\"sta\0tus\"}";
  static const char nul_after[] = "{\"cmd\":\"status\"}\0garbage";

  expect_code(bad_value, PROTO_E_BAD_REQUEST, NULL);
  expect_code(bad_cmd, PROTO_E_BAD_REQUEST, NULL);
  expect_code(overlong, PROTO_E_BAD_REQUEST, NULL);
  expect_code(surrogate, PROTO_E_BAD_REQUEST, NULL);
  expect_code(bare_byte, PROTO_E_BAD_REQUEST, NULL);
  expect_error(with_nul, sizeof(with_nul) - 1, PROTO_E_BAD_REQUEST, "NUL byte at offset 11");
  expect_error(nul_after, sizeof(nul_after) - 1, PROTO_E_BAD_REQUEST, "NUL");
  /* An escaped NUL is refused by the JSON parser. */
  expect_code("{\"cmd\":\"slot.add\",\"args\":{\"name\":\"a\\u0000b\"}}", PROTO_E_BAD_REQUEST,
              NULL);
  /* Valid multi-byte UTF-8 is fine where strings are free-form. */
  struct proto_request req;
  assert_int_equal(
      parse("{\"id\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\xb5\",\"cmd\":\"status\"}", &req),
      PROTO_OK);
  proto_request_free(&req);
  /* An unknown command in UTF-8 is quoted without being cut inside a character. */
  char line[400];
  int n = sprintf(line, "{\"cmd\":\"");
  for (int i = 0; i < 50; i++)
    n += sprintf(line + n, "\xc3\xa9");
  sprintf(line + n, "\"}");
  expect_code(line, PROTO_E_UNKNOWN_COMMAND, "...");
}

static void test_too_large(void **state) {
  (void)state;
  size_t n = PROTO_MAX_LINE + 1;
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, ' ', n);
  s[n] = '\0';
  memcpy(s, "{\"cmd\":\"status\"}", 16);
  expect_error(s, n, PROTO_E_TOO_LARGE, "65536");
  /* Exactly at the limit is fine (trailing spaces are JSON whitespace). */
  struct proto_request req;
  assert_int_equal(parse_n(s, PROTO_MAX_LINE, &req), PROTO_OK);
  proto_request_free(&req);
  free(s);
}

/* Random mutations of valid requests never crash and always give a buildable reply. */
static void test_mutations(void **state) {
  (void)state;
  static const char *const seeds[] = {
      /* Parenthesised: one seed split over two lines (clang's -Wstring-concatenation). */
      ("{\"id\":1,\"cmd\":\"slot.add\",\"args\":{\"name\":\"fx\",\"plugin\":\"gain\",\"inputs\":2,"
       "\"latency_ms\":12.5,\"midi\":true}}"),
      "{\"id\":\"x\",\"cmd\":\"worker.attach\",\"args\":{\"slot\":\"s\",\"params\":[{\"a\":[1,2]}]}"
      "}",
      "{\"cmd\":\"stats\",\"args\":{\"name\":\"fx\"}}"};
  static const char alphabet[] = "{}[]\",:\\0123456789.eE-+ntrufalsx\xff\xc3\xa9\x80\n\t";
  uint64_t x = 0x9E3779B97F4A7C15ull;
  char buf[512];
  struct proto_request req;

  for (int iter = 0; iter < 20000; iter++) {
    const char *seed = seeds[iter % 3];
    size_t len = strlen(seed);
    memcpy(buf, seed, len);
    int edits = 1 + iter % 4;
    for (int e = 0; e < edits; e++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      size_t pos = (size_t)(x % len);
      char c = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
      switch ((x >> 40) % 3) {
      case 0:
        buf[pos] = c;
        break;
      case 1: /* delete */
        memmove(buf + pos, buf + pos + 1, len - pos - 1);
        len--;
        break;
      default: /* insert */
        if (len + 1 < sizeof(buf)) {
          memmove(buf + pos + 1, buf + pos, len - pos);
          buf[pos] = c;
          len++;
        }
      }
    }
    enum proto_err rc = proto_parse_request(buf, len, &req, err, sizeof(err));
    json_t *resp = rc == PROTO_OK ? proto_response_ok(req.id, NULL)
                                  : proto_response_error(req.id, rc, "%s", err);
    assert_non_null(resp);
    json_decref(resp);
    proto_request_free(&req);
  }
}

static void test_small_err_buffer(void **state) {
  (void)state;
  struct proto_request req;
  char small[8];
  assert_int_equal(proto_parse_request("{\"cmd\":\"nope\"}", 14, &req, small, sizeof(small)),
                   PROTO_E_UNKNOWN_COMMAND);
  assert_int_equal(strlen(small), 7);
  proto_request_free(&req);
  assert_int_equal(proto_parse_request("{\"cmd\":\"nope\"}", 14, &req, NULL, 0),
                   PROTO_E_UNKNOWN_COMMAND);
  proto_request_free(&req);
}

static void test_response_ok(void **state) {
  (void)state;
  json_t *id = json_integer(5);
  json_t *r = proto_response_ok(id, json_pack("{s:i}", "slots", 2));
  assert_non_null(r);
  assert_ptr_equal(json_object_get(r, "id"), id);
  assert_true(json_is_true(json_object_get(r, "ok")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "slots")), 2);
  assert_int_equal(json_object_size(r), 3);
  json_decref(r);
  assert_int_equal(id->refcount, 1); /* borrowed, not stolen */
  json_decref(id);

  r = proto_response_ok(NULL, NULL);
  assert_non_null(r);
  assert_true(json_is_null(json_object_get(r, "id")));
  assert_true(json_is_object(json_object_get(r, "result")));
  assert_int_equal(json_object_size(json_object_get(r, "result")), 0);
  size_t n;
  char *s = proto_dump_line(r, &n);
  assert_string_equal(s, "{\"id\":null,\"ok\":true,\"result\":{}}\n");
  assert_int_equal(n, strlen(s));
  free(s);
  json_decref(r);
}

static void test_response_error(void **state) {
  (void)state;
  json_t *id = json_string("req-1");
  json_t *r = proto_response_error(id, PROTO_E_NOT_FOUND, "no slot named %s", "fx");
  assert_non_null(r);
  json_decref(id);
  assert_string_equal(json_string_value(json_object_get(r, "id")), "req-1");
  assert_true(json_is_false(json_object_get(r, "ok")));
  json_t *e = json_object_get(r, "error");
  assert_string_equal(json_string_value(json_object_get(e, "code")), "not_found");
  assert_string_equal(json_string_value(json_object_get(e, "message")), "no slot named fx");
  assert_null(json_object_get(r, "result"));
  json_decref(r);

  for (int code = PROTO_E_BAD_REQUEST; code < PROTO_E_COUNT; code++) {
    r = proto_response_error(NULL, (enum proto_err)code, "m");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "code")),
                        proto_err_name((enum proto_err)code));
    json_decref(r);
  }

  /* Invalid UTF-8 in a message (e.g. quoted client bytes) is replaced, not fatal. */
  r = proto_response_error(NULL, PROTO_E_BAD_REQUEST, "bad %s", "\xff\xc3(\xe2\x82");
  assert_non_null(r);
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
                      "bad ?\?(?\?");
  json_decref(r);
}

static void test_dump_line(void **state) {
  (void)state;
  json_t *id = json_integer(1);
  json_t *r = proto_response_ok(
      id, json_pack("{s:s,s:[s,s]}", "msg", "two\nlines\r\n", "list", "a\n", "b"));
  json_decref(id); /* borrowed by the response */
  size_t n = 0;
  char *s = proto_dump_line(r, &n);
  assert_non_null(s);
  assert_int_equal(n, strlen(s));
  assert_true(n >= 2);
  assert_int_equal(s[n - 1], '\n');
  assert_ptr_equal(strchr(s, '\n'), s + n - 1);
  assert_null(strchr(s, '\r'));
  /* It parses back to the same message. */
  json_t *back = json_loadb(s, n, 0, NULL);
  assert_true(json_equal(back, r));
  json_decref(back);
  free(s);
  json_decref(r);
  assert_null(proto_dump_line(NULL, &n));
  s = proto_dump_line(json_null(), NULL);
  assert_string_equal(s, "null\n");
  free(s);
}

static void test_slot_names(void **state) {
  (void)state;
  assert_true(proto_valid_slot_name("a"));
  assert_true(proto_valid_slot_name("fx-1_B"));
  assert_true(proto_valid_slot_name("-"));
  assert_true(proto_valid_slot_name("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
  assert_false(proto_valid_slot_name("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
  assert_false(proto_valid_slot_name(""));
  assert_false(proto_valid_slot_name(NULL));
  assert_false(proto_valid_slot_name("a b"));
  assert_false(proto_valid_slot_name("a.b"));
  assert_false(proto_valid_slot_name("a:b"));
  assert_false(proto_valid_slot_name("a/b"));
  assert_false(proto_valid_slot_name("\xc3\xa9"));
  assert_false(proto_valid_slot_name("tab\t"));
}

static void test_socket_path(void **state) {
  (void)state;
  char buf[128];

  unsetenv("RUNWAY_SOCKET");
  unsetenv("XDG_RUNTIME_DIR");
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/run/runway/control.sock");

  setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/run/user/1000/runway/control.sock");

  setenv("RUNWAY_SOCKET", "/tmp/r.sock", 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/tmp/r.sock");

  assert_int_equal(proto_socket_path("/x/explicit.sock", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/x/explicit.sock");
  assert_int_equal(proto_socket_path("rel.sock", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "rel.sock");
  assert_int_equal(proto_socket_path("", buf, sizeof(buf)), -EINVAL);

  /* Empty variables count as unset; so does a relative XDG_RUNTIME_DIR. */
  setenv("RUNWAY_SOCKET", "", 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/run/user/1000/runway/control.sock");
  setenv("XDG_RUNTIME_DIR", "relative", 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/run/runway/control.sock");
  setenv("XDG_RUNTIME_DIR", "", 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/run/runway/control.sock");

  /* sun_path holds 107 bytes and a NUL. */
  char longp[200];
  memset(longp, 'a', sizeof(longp));
  longp[0] = '/';
  longp[108] = '\0';
  assert_int_equal(proto_socket_path(longp, buf, sizeof(buf)), -ENAMETOOLONG);
  longp[107] = '\0';
  assert_int_equal(proto_socket_path(longp, buf, sizeof(buf)), 0);
  assert_int_equal(strlen(buf), 107);
  assert_int_equal(proto_socket_path(longp, buf, 50), -ENAMETOOLONG);
  longp[107] = 'a';
  longp[108] = 'a';
  longp[150] = '\0';
  setenv("XDG_RUNTIME_DIR", longp, 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), -ENAMETOOLONG);
  setenv("RUNWAY_SOCKET", longp, 1);
  assert_int_equal(proto_socket_path(NULL, buf, sizeof(buf)), -ENAMETOOLONG);
  unsetenv("RUNWAY_SOCKET");
  unsetenv("XDG_RUNTIME_DIR");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_names),
      cmocka_unit_test(test_command_table),
      cmocka_unit_test(test_command_map),
      cmocka_unit_test(test_parse_minimal),
      cmocka_unit_test(test_parse_full_slot_add),
      cmocka_unit_test(test_ids),
      cmocka_unit_test(test_invalid_json),
      cmocka_unit_test(test_not_an_object),
      cmocka_unit_test(test_cmd_errors),
      cmocka_unit_test(test_arg_errors),
      cmocka_unit_test(test_string_or_int_and_object),
      cmocka_unit_test(test_number_overflow),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_invalid_utf8_and_nul),
      cmocka_unit_test(test_too_large),
      cmocka_unit_test(test_mutations),
      cmocka_unit_test(test_small_err_buffer),
      cmocka_unit_test(test_response_ok),
      cmocka_unit_test(test_response_error),
      cmocka_unit_test(test_dump_line),
      cmocka_unit_test(test_slot_names),
      cmocka_unit_test(test_socket_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
