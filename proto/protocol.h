/*
 * The control protocol: JSON lines over a Unix stream socket.
 *
 *   request   {"id":1,"cmd":"slot.add","args":{...}}
 *   response  {"id":1,"ok":true,"result":{...}}
 *             {"id":1,"ok":false,"error":{"code":"not_found","message":"..."}}
 *
 * This module parses and validates requests against the command table
 * (commands.h), builds responses, and resolves the socket path. runwayd,
 * runwayctl and the worker SDK share it; client.h talks it over a socket.
 * Not RT safe.
 */
#ifndef RUNWAY_PROTO_PROTOCOL_H
#define RUNWAY_PROTO_PROTOCOL_H

#include <stddef.h>

#include <jansson.h>

#include "commands.h"

#define PROTO_MAX_LINE (64 * 1024) /* bytes per request line, newline excluded */
/*
 * Bytes per answer or event line, newline excluded: room for slot.list and
 * stats of the most slots a daemon hosts, with their longest port names.
 * Clients must read lines this long.
 */
#define PROTO_MAX_ANSWER_LINE (4 * 1024 * 1024)
#define PROTO_MAX_DEPTH 32     /* nesting of arrays/objects in a request */
#define PROTO_SLOT_NAME_MAX 32 /* slot names: [A-Za-z0-9_-]{1,32} */

/* Stable error codes; their strings are part of the protocol (see README). */
enum proto_err {
  PROTO_OK = 0,
  PROTO_E_BAD_REQUEST,      /* "bad_request": not JSON, not an object, too deep, bad id/cmd */
  PROTO_E_UNKNOWN_COMMAND,  /* "unknown_command" */
  PROTO_E_INVALID_ARGUMENT, /* "invalid_argument": missing, unknown, wrong type or range */
  PROTO_E_NOT_FOUND,        /* "not_found": no such slot, plugin or parameter */
  PROTO_E_EXISTS,           /* "exists": a slot with that name exists */
  PROTO_E_BUSY,             /* "busy": e.g. a worker is already attached */
  PROTO_E_LIMIT,            /* "limit": too many slots, connections, ... */
  PROTO_E_TOO_LARGE,        /* "too_large": line over PROTO_MAX_LINE */
  PROTO_E_BACKEND,          /* "backend_unavailable": the audio server is not reachable */
  PROTO_E_SPAWN,            /* "spawn_failed": the worker could not be started */
  PROTO_E_IO,               /* "io_error": a file could not be read or written */
  PROTO_E_PERMISSION,       /* "permission_denied" */
  PROTO_E_INTERNAL,         /* "internal" */
  PROTO_E_COUNT
};

const char *proto_err_name(enum proto_err code);

struct proto_request {
  json_t *root; /* owns everything below */
  json_t *id;   /* borrowed; JSON null when absent */
  const char *cmd;
  json_t *args; /* borrowed; an empty object when absent */
  const struct proto_command *command;
};

/*
 * Parses one line (without its newline) and validates it against the command
 * table: an object with a string "cmd" naming a known command, an optional
 * "id" (number, string or null) and optional "args" object whose members are
 * all declared, of the declared type, and include every required one. On
 * failure returns the error code, writes a message into err and, when the id
 * could be read, leaves it in req->id (req->root then still needs
 * proto_request_free). Never crashes on any input.
 */
enum proto_err proto_parse_request(const char *line, size_t len, struct proto_request *req,
                                   char *err, size_t errlen);

void proto_request_free(struct proto_request *req);

/*
 * Checks an args object against cmd's schema (declared names, types,
 * required ones), as proto_parse_request does. Returns PROTO_OK or
 * PROTO_E_INVALID_ARGUMENT with a message naming the argument in err.
 */
enum proto_err proto_check_args(const struct proto_command *cmd, const json_t *args, char *err,
                                size_t errlen);

/* Builds {"id":id,"ok":true,"result":result}; steals result (NULL: {}). id may be NULL. */
json_t *proto_response_ok(json_t *id, json_t *result);

/*
 * For a result built with json_pack, which returns NULL when it cannot (out
 * of memory, a string that is not UTF-8): the ok response, or an internal
 * error saying so, never an ok with an empty result.
 */
json_t *proto_response_built(json_t *id, json_t *result);

/* Builds {"id":id,"ok":false,"error":{"code":...,"message":...}}. */
json_t *proto_response_error(json_t *id, enum proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Serialises a response as one line with a trailing newline (compact, no
 * embedded newlines). Returns a malloc'd string and its length, or NULL.
 * It does not enforce PROTO_MAX_LINE; the sender does (control_conn_send).
 */
char *proto_dump_line(const json_t *msg, size_t *len);

/* snprintf into err (when err is not NULL and errlen > 0): the error-message helper. */
void proto_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 when name is a valid slot name ([A-Za-z0-9_-]{1,32}). */
int proto_valid_slot_name(const char *name);

/*
 * Resolves the control socket path: explicit (if not NULL), else
 * $RUNWAY_SOCKET, else $XDG_RUNTIME_DIR/runway/control.sock, else
 * /run/runway/control.sock. Empty variables and a relative XDG_RUNTIME_DIR
 * count as unset. Returns 0, -EINVAL for an empty explicit path, or
 * -ENAMETOOLONG when it does not fit in a sockaddr_un (or in buf).
 */
int proto_socket_path(const char *explicit_path, char *buf, size_t len);

#endif
