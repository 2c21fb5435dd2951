#include "protocol.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Longest piece of a client-supplied string quoted back in an error message. */
#define QUOTE_MAX 64

static const char *const err_names[PROTO_E_COUNT] = {
    [PROTO_OK] = "ok",
    [PROTO_E_BAD_REQUEST] = "bad_request",
    [PROTO_E_UNKNOWN_COMMAND] = "unknown_command",
    [PROTO_E_INVALID_ARGUMENT] = "invalid_argument",
    [PROTO_E_NOT_FOUND] = "not_found",
    [PROTO_E_EXISTS] = "exists",
    [PROTO_E_BUSY] = "busy",
    [PROTO_E_LIMIT] = "limit",
    [PROTO_E_TOO_LARGE] = "too_large",
    [PROTO_E_BACKEND] = "backend_unavailable",
    [PROTO_E_SPAWN] = "spawn_failed",
    [PROTO_E_IO] = "io_error",
    [PROTO_E_PERMISSION] = "permission_denied",
    [PROTO_E_INTERNAL] = "internal",
};

const char *proto_err_name(enum proto_err code) {
  if ((unsigned)code >= PROTO_E_COUNT)
    return "internal";
  return err_names[code];
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return len;
}

/*
 * Replaces invalid UTF-8 in place with '?'. Messages quote client input and
 * jansson's own error text, which can hold the bytes that made parsing fail,
 * and json_string() refuses invalid UTF-8.
 */
static void utf8_sanitize(char *s) {
  size_t n = strlen(s);
  size_t i = 0;
  while (i < n) {
    size_t l = utf8_seq_len((const unsigned char *)s + i, n - i);
    if (l == 0) {
      s[i] = '?';
      l = 1;
    }
    i += l;
  }
}

/* Bytes of s to quote: at most QUOTE_MAX, never splitting a UTF-8 sequence. */
static int quote_len(const char *s) {
  size_t n = strlen(s);
  if (n <= QUOTE_MAX)
    return (int)n;
  n = QUOTE_MAX;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return (int)n;
}

static const char *quote_ellipsis(const char *s) { return strlen(s) > QUOTE_MAX ? "..." : ""; }

void proto_set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (err == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* "a string", "an integer", ... for messages about what a client sent. */
static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a real number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  }
  return "a value";
}

static int type_matches(enum proto_type type, const json_t *v) {
  switch (type) {
  case PROTO_T_STRING:
    return json_is_string(v);
  case PROTO_T_INT:
    return json_is_integer(v);
  case PROTO_T_NUMBER:
    return json_is_number(v);
  case PROTO_T_BOOL:
    return json_is_boolean(v);
  case PROTO_T_ARRAY:
    return json_is_array(v);
  case PROTO_T_OBJECT:
    return json_is_object(v);
  case PROTO_T_STRING_OR_INT:
    return json_is_string(v) || json_is_integer(v);
  }
  return 0;
}

/*
 * Rejects NUL bytes and nesting deeper than PROTO_MAX_DEPTH before jansson
 * sees the line, so that a hostile line costs one linear scan and no
 * allocation or recursion.
 */
static enum proto_err prescan(const char *line, size_t len, char *err, size_t errlen) {
  int in_string = 0, escaped = 0;
  unsigned depth = 0;

  for (size_t i = 0; i < len; i++) {
    char c = line[i];
    if (c == '\0') {
      proto_set_err(
          err, errlen,
          "request holds a NUL byte at offset %zu; send UTF-8 JSON text, one object per line", i);
      return PROTO_E_BAD_REQUEST;
    }
    if (in_string) {
      if (escaped)
        escaped = 0;
      else if (c == '\\')
        escaped = 1;
      else if (c == '"')
        in_string = 0;
      continue;
    }
    if (c == '"') {
      in_string = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > PROTO_MAX_DEPTH) {
        proto_set_err(err, errlen,
                      "request nests arrays and objects deeper than %d levels; flatten it",
                      PROTO_MAX_DEPTH);
        return PROTO_E_BAD_REQUEST;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return PROTO_OK;
}

static void append(char *buf, size_t len, size_t *used, const char *s) {
  if (*used >= len)
    return;
  int n = snprintf(buf + *used, len - *used, "%s", s);
  if (n > 0)
    *used += (size_t)n;
}

/* "name, plugin, exec, ..." for a message listing what a command accepts. */
static void list_args(const struct proto_command *cmd, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (const struct proto_arg *a = cmd->args; a->name != NULL; a++) {
    if (a != cmd->args)
      append(buf, len, &used, ", ");
    append(buf, len, &used, a->name);
  }
}

enum proto_err proto_check_args(const struct proto_command *cmd, const json_t *args, char *err,
                                size_t errlen) {
  const char *key;
  json_t *value;

  if (cmd == NULL || !json_is_object(args)) {
    proto_set_err(err, errlen, "args must be an object");
    return PROTO_E_INVALID_ARGUMENT;
  }
  /* json_object_foreach does not modify the object; it just lacks a const form. */
  json_object_foreach((json_t *)args, key, value) {
    const struct proto_arg *a = proto_find_arg(cmd, key);
    if (a == NULL) {
      char names[256];
      list_args(cmd, names, sizeof(names));
      if (names[0] == '\0')
        proto_set_err(err, errlen, "%s takes no arguments, but got \"%.*s%s\"; leave out args",
                      cmd->name, quote_len(key), key, quote_ellipsis(key));
      else
        proto_set_err(err, errlen, "unknown argument \"%.*s%s\" for %s; it takes: %s",
                      quote_len(key), key, quote_ellipsis(key), cmd->name, names);
      return PROTO_E_INVALID_ARGUMENT;
    }
    if (!type_matches(a->type, value)) {
      proto_set_err(err, errlen, "argument \"%s\" of %s must be a%s %s, not %s", a->name, cmd->name,
                    a->type == PROTO_T_INT || a->type == PROTO_T_ARRAY || a->type == PROTO_T_OBJECT
                        ? "n"
                        : "",
                    proto_type_name(a->type), json_kind(value));
      return PROTO_E_INVALID_ARGUMENT;
    }
  }
  for (const struct proto_arg *a = cmd->args; a->name != NULL; a++) {
    if (a->required && json_object_get(args, a->name) == NULL) {
      proto_set_err(err, errlen, "%s needs the argument \"%s\" (%s: %s)", cmd->name, a->name,
                    proto_type_name(a->type), a->help ? a->help : "");
      return PROTO_E_INVALID_ARGUMENT;
    }
  }
  return PROTO_OK;
}

enum proto_err proto_parse_request(const char *line, size_t len, struct proto_request *req,
                                   char *err, size_t errlen) {
  json_error_t jerr;
  enum proto_err rc;
  json_t *cmd, *args;
  const char *key;
  json_t *value;

  memset(req, 0, sizeof(*req));
  req->id = json_null();
  if (err != NULL && errlen > 0)
    err[0] = '\0';

  if (line == NULL)
    len = 0;
  if (len > PROTO_MAX_LINE) {
    proto_set_err(err, errlen,
                  "request of %zu bytes is over the %d-byte line limit; send less per line", len,
                  PROTO_MAX_LINE);
    return PROTO_E_TOO_LARGE;
  }
  rc = prescan(line, len, err, errlen);
  if (rc != PROTO_OK)
    return rc;

  req->root = json_loadb(line ? line : "", len, JSON_REJECT_DUPLICATES, &jerr);
  if (req->root == NULL) {
    proto_set_err(err, errlen,
                  "request is not valid JSON (%s, at byte %d); send one JSON object per line, "
                  "e.g. {\"id\":1,\"cmd\":\"status\"}",
                  jerr.text, jerr.position);
    return PROTO_E_BAD_REQUEST;
  }
  if (!json_is_object(req->root)) {
    proto_set_err(err, errlen,
                  "request is %s, not an object; send {\"id\":...,\"cmd\":...,\"args\":{...}}",
                  json_kind(req->root));
    return PROTO_E_BAD_REQUEST;
  }

  value = json_object_get(req->root, "id");
  if (value != NULL) {
    if (!json_is_number(value) && !json_is_string(value) && !json_is_null(value)) {
      proto_set_err(err, errlen, "\"id\" is %s; use a number, a string or null", json_kind(value));
      return PROTO_E_BAD_REQUEST;
    }
    req->id = value;
  }

  cmd = json_object_get(req->root, "cmd");
  if (cmd == NULL) {
    proto_set_err(err, errlen, "request has no \"cmd\"; name a command, e.g. \"cmd\":\"status\"");
    return PROTO_E_BAD_REQUEST;
  }
  if (!json_is_string(cmd)) {
    proto_set_err(err, errlen, "\"cmd\" is %s; it must be a string naming a command",
                  json_kind(cmd));
    return PROTO_E_BAD_REQUEST;
  }

  json_object_foreach(req->root, key, value) {
    if (strcmp(key, "id") != 0 && strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0) {
      proto_set_err(err, errlen,
                    "unknown member \"%.*s%s\" in the request; a request has only id, cmd "
                    "and args",
                    quote_len(key), key, quote_ellipsis(key));
      return PROTO_E_BAD_REQUEST;
    }
  }

  req->cmd = json_string_value(cmd);
  req->command = proto_find_command(req->cmd);
  if (req->command != NULL && req->command->local) {
    proto_set_err(err, errlen,
                  "\"%s\" is runwayctl's own command (it runs it out of other "
                  "commands); runwayd does not answer it",
                  req->command->name);
    req->command = NULL;
    return PROTO_E_UNKNOWN_COMMAND;
  }
  if (req->command == NULL) {
    /* json_string_value stops at the first NUL, which jansson rejects in input anyway. */
    proto_set_err(err, errlen,
                  "unknown command \"%.*s%s\"; run `runwayctl --help` for the commands",
                  quote_len(req->cmd), req->cmd, quote_ellipsis(req->cmd));
    return PROTO_E_UNKNOWN_COMMAND;
  }

  args = json_object_get(req->root, "args");
  if (args == NULL || json_is_null(args)) {
    args = json_object();
    if (args == NULL || json_object_set_new(req->root, "args", args) != 0) {
      proto_set_err(err, errlen, "out of memory");
      return PROTO_E_INTERNAL;
    }
  } else if (!json_is_object(args)) {
    proto_set_err(err, errlen, "\"args\" of %s is %s; it must be an object", req->command->name,
                  json_kind(args));
    return PROTO_E_INVALID_ARGUMENT;
  }
  req->args = args;
  return proto_check_args(req->command, args, err, errlen);
}

void proto_request_free(struct proto_request *req) {
  if (req == NULL)
    return;
  json_decref(req->root);
  memset(req, 0, sizeof(*req));
}

json_t *proto_response_ok(json_t *id, json_t *result) {
  if (result == NULL) {
    result = json_object();
    if (result == NULL)
      return NULL;
  }
  /* "o" steals result even when packing fails. */
  return json_pack("{s:O,s:b,s:o}", "id", id ? id : json_null(), "ok", 1, "result", result);
}

json_t *proto_response_built(json_t *id, json_t *result) {
  if (result == NULL)
    return proto_response_error(id, PROTO_E_INTERNAL,
                                "runwayd could not build this answer (out of memory, or text "
                                "that is not UTF-8)");
  return proto_response_ok(id, result);
}

json_t *proto_response_error(json_t *id, enum proto_err code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  utf8_sanitize(msg);
  return json_pack("{s:O,s:b,s:{s:s,s:s}}", "id", id ? id : json_null(), "ok", 0, "error", "code",
                   proto_err_name(code), "message", msg);
}

char *proto_dump_line(const json_t *msg, size_t *len) {
  char *s, *line;
  size_t n;

  if (msg == NULL)
    return NULL;
  /* Compact output escapes control characters in strings, so the only newline is ours. */
  s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
  if (s == NULL)
    return NULL;
  n = strlen(s);
  line = realloc(s, n + 2);
  if (line == NULL) {
    free(s);
    return NULL;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  if (len != NULL)
    *len = n + 1;
  return line;
}

int proto_valid_slot_name(const char *name) {
  size_t n;
  if (name == NULL)
    return 0;
  for (n = 0; name[n] != '\0'; n++) {
    char c = name[n];
    if (n >= PROTO_SLOT_NAME_MAX)
      return 0;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return 0;
  }
  return n > 0;
}

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

int proto_socket_path(const char *explicit_path, char *buf, size_t len) {
  const char *runtime;
  int n;

  if (explicit_path != NULL) {
    if (explicit_path[0] == '\0')
      return -EINVAL;
    n = snprintf(buf, len, "%s", explicit_path);
  } else if ((explicit_path = env_nonempty("RUNWAY_SOCKET")) != NULL) {
    n = snprintf(buf, len, "%s", explicit_path);
  } else if ((runtime = env_nonempty("XDG_RUNTIME_DIR")) != NULL && runtime[0] == '/') {
    n = snprintf(buf, len, "%s/runway/control.sock", runtime);
  } else {
    n = snprintf(buf, len, "/run/runway/control.sock");
  }
  if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return -ENAMETOOLONG;
  return 0;
}
