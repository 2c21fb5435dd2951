/*
 * runwayctl's pure parts, kept out of main() so that the unit tests can call
 * them: the command line to request translation and the help (ctl_args.c,
 * driven by proto_commands[]) and the human-readable output (ctl_format.c,
 * a printer bound to every command of PROTO_COMMAND_MAP).
 */
#ifndef RUNWAY_CLIENTS_CTL_H
#define RUNWAY_CLIENTS_CTL_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "protocol.h"

/* Exit statuses (DESIGN.md "runwayctl"). */
enum ctl_exit {
  CTL_EXIT_OK = 0,
  CTL_EXIT_ERROR = 1,      /* the daemon answered with an error (or nonsense) */
  CTL_EXIT_USAGE = 2,      /* bad command line */
  CTL_EXIT_UNREACHABLE = 3 /* no daemon at the socket, or no answer in time */
};

#define CTL_DEFAULT_TIMEOUT_S 10.0

enum ctl_action {
  CTL_RUN,     /* send request */
  CTL_HELP,    /* print help: for command if set, else the general help */
  CTL_VERSION, /* print the version */
};

struct ctl_args {
  enum ctl_action action;
  const char *socket; /* --socket, or NULL for proto_socket_path's default */
  int json;           /* --json */
  double timeout_s;   /* --timeout */
  const struct proto_command *command;
  json_t *request; /* CTL_RUN: {"id":1,"cmd":...,"args":{...}}, owned */
};

/*
 * Parses runwayctl's command line (argv[0] is skipped). Global options go
 * anywhere; a command's own options after its words. Returns 0, or -EINVAL
 * for a usage error with a message in err.
 */
int ctl_parse_args(int argc, char *const argv[], struct ctl_args *out, char *err, size_t errlen);

void ctl_args_free(struct ctl_args *args);

/* The general help, with the command list from proto_commands[]. */
void ctl_print_help(FILE *f);

/* One command's usage, description and arguments. */
void ctl_print_command_help(FILE *f, const struct proto_command *cmd);

/*
 * Interprets one response line to request: prints the result (human or,
 * with json, the result object as one JSON document) to out, or the error to
 * err_out ("runwayctl: <code>: <message>"; with json, the error object to
 * out). Returns CTL_EXIT_OK or CTL_EXIT_ERROR.
 */
int ctl_handle_response(const char *line, size_t len, const json_t *request, int json, FILE *out,
                        FILE *err_out);

/*
 * The answer of a streaming command (proto_command.stream). Without json as
 * ctl_handle_response; with json the line is printed as it came, as the
 * event lines after it will be, so the output is JSON lines.
 */
int ctl_handle_stream_answer(const char *line, size_t len, const json_t *request, int json,
                             FILE *out, FILE *err_out);

/*
 * One line of a stream after its answer: with json printed as it came;
 * otherwise an event for people (ctl_print_event), or an error line from the
 * daemon ("runwayctl: <code>: <message>") to err_out. Returns CTL_EXIT_OK, or
 * CTL_EXIT_ERROR for a line that is not a JSON object.
 */
int ctl_handle_stream_line(const char *line, size_t len, int json, FILE *out, FILE *err_out);

/* One event for people: "slot fx: running, pid 4242, generation 3 (worker started)". */
void ctl_print_event(FILE *f, const json_t *event);

/*
 * Human output of one command's result, by the printer bound to the
 * command (ctl_format.c); the result of a command this runwayctl does not
 * know prints as JSON.
 */
void ctl_print_result(FILE *f, const json_t *request, const json_t *result);

void ctl_print_status(FILE *f, const json_t *result);
void ctl_print_plugins(FILE *f, const json_t *result);
void ctl_print_params(FILE *f, const json_t *result);
void ctl_print_slot_list(FILE *f, const json_t *result);
/* One line: "slot NAME <verb>: ..." with the latency and the full port names. */
void ctl_print_slot(FILE *f, const char *verb, const json_t *slot);
void ctl_print_stats(FILE *f, const json_t *result);
/* slot.advise's answer: the lead seen, the smallest safe latency, the suggestion. */
void ctl_print_advice(FILE *f, const json_t *result);

/* ---- top (ctl_top.c) ---- */

struct proto_client;

/*
 * The view of `runwayctl top` (and its --json line) from two `stats`
 * results dt_ms apart: per slot the state, worker pid, CPU share over the
 * interval, current and smallest lead and L in ms, underruns, skipped frames,
 * restarts, the lead histogram; for the daemon the RT cycle's average over
 * the interval and recent maximum against the period. prev may be NULL (no
 * rates then). Returns a new object.
 */
json_t *ctl_top_view(const json_t *prev, const json_t *cur, double dt_ms);

/* Draws a view as text lines cut at width (0: no limit); once: plain lines, no terminal codes. */
void ctl_top_render(FILE *f, const json_t *view, int width, int once);

/*
 * Runs `top` on a connected client until q, SIGINT or SIGTERM (0), or until
 * runwayd goes away (3). --once prints one view (two samples one interval
 * apart) and returns.
 */
int ctl_top(const struct ctl_args *args, struct proto_client *c);

/* "2400 frames (50.0 ms)" style latency of a slot object into buf. */
void ctl_format_latency(char *buf, size_t len, const json_t *slot, double sample_rate);

#endif
