#include "commands.h"

#include <string.h>

const char *proto_type_name(enum proto_type type) {
  switch (type) {
  case PROTO_T_STRING:
    return "string";
  case PROTO_T_INT:
    return "integer";
  case PROTO_T_NUMBER:
    return "number";
  case PROTO_T_BOOL:
    return "boolean";
  case PROTO_T_ARRAY:
    return "array";
  case PROTO_T_OBJECT:
    return "object";
  case PROTO_T_STRING_OR_INT:
    return "string or integer";
  }
  return "value";
}

#define ARGS_END {.name = NULL}

static const struct proto_arg args_none[] = {ARGS_END};

static const struct proto_arg args_slot_add[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1,
     .help = "slot name: 1 to 32 of A-Z a-z 0-9 _ -"},
    {.name = "plugin", .type = PROTO_T_STRING,
     .help = "built-in plugin that runway-worker runs (see `runwayctl plugins`)"},
    {.name = "exec", .type = PROTO_T_STRING,
     .help = "command line of a worker program built on librunway-worker"},
    {.name = "external", .type = PROTO_T_BOOL,
     .help = "wait for a worker started by you to attach over the control socket"},
    {.name = "inputs", .type = PROTO_T_INT, .help = "audio inputs (default: the plugin's)"},
    {.name = "outputs", .type = PROTO_T_INT, .help = "audio outputs (default: the plugin's)"},
    {.name = "midi", .type = PROTO_T_BOOL, .help = "give the slot a MIDI input"},
    {.name = "latency_ms", .type = PROTO_T_NUMBER,
     .help = "write-ahead latency in milliseconds (default: runwayd --latency-ms)"},
    {.name = "latency_frames", .type = PROTO_T_INT, .help = "write-ahead latency in frames"},
    ARGS_END};

static const struct proto_arg args_slot_name[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1,
     .help = "slot name"},
    ARGS_END};

static const struct proto_arg args_stats[] = {
    {.name = "name", .type = PROTO_T_STRING, .positional = 1,
     .help = "only this slot (default: every slot)"},
    ARGS_END};

static const struct proto_arg args_param_get[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1,
     .help = "slot name"},
    {.name = "param", .type = PROTO_T_STRING_OR_INT, .required = 1, .positional = 1,
     .help = "parameter name or id"},
    ARGS_END};

static const struct proto_arg args_param_set[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1,
     .help = "slot name"},
    {.name = "param", .type = PROTO_T_STRING_OR_INT, .required = 1, .positional = 1,
     .help = "parameter name or id"},
    {.name = "value", .type = PROTO_T_NUMBER, .required = 1, .positional = 1,
     .help = "new value; out-of-range values are clamped and reported"},
    ARGS_END};

static const struct proto_arg args_state_file[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1,
     .help = "slot name"},
    {.name = "file", .type = PROTO_T_STRING, .required = 1, .positional = 1, .path = 1,
     .help = "state file (JSON), read and written by runwayd"},
    ARGS_END};

static const struct proto_arg args_worker_attach[] = {
    {.name = "slot", .type = PROTO_T_STRING, .required = 1,
     .help = "slot added with --external"},
    {.name = "pid", .type = PROTO_T_INT, .help = "the worker's process id"},
    {.name = "plugin", .type = PROTO_T_STRING, .help = "what the worker runs, for status"},
    {.name = "params", .type = PROTO_T_ARRAY, .help = "the plugin's parameters"},
    ARGS_END};

static const struct proto_arg args_subscribe[] = {
    {.name = "events", .type = PROTO_T_ARRAY, .positional = 1,
     .help = "event types to receive: slot, underrun, restart, param, fault (default: all)"},
    ARGS_END};

/* One entry of proto_commands[]: the id is written once, as the index and the field. */
#define COMMAND(ID, ...) [PROTO_CMD_##ID] = {.id = PROTO_CMD_##ID, __VA_ARGS__}

const struct proto_command proto_commands[PROTO_CMD_COUNT + 1] = {
    COMMAND(STATUS, .name = "status", .args = args_none, .usage = "status",
            .help = "daemon, backend, rate, period, slots"),
    COMMAND(PLUGINS, .name = "plugins", .args = args_none, .usage = "plugins",
            .help = "built-in plugins and their parameters"),
    COMMAND(SLOT_ADD, .name = "slot.add", .args = args_slot_add,
            .usage = "slot add NAME (--plugin P | --exec CMD | --external) [--inputs N] "
                     "[--outputs M] [--midi] [--latency-ms X | --latency-frames F]",
            .help = "add a slot and start (or wait for) its worker"),
    COMMAND(SLOT_REMOVE, .name = "slot.remove", .args = args_slot_name,
            .usage = "slot remove NAME", .help = "stop a slot's worker and remove its ports"),
    COMMAND(SLOT_LIST, .name = "slot.list", .args = args_none, .usage = "slot list",
            .help = "slots with their state, latency and ports"),
    COMMAND(SLOT_RESTART, .name = "slot.restart", .args = args_slot_name,
            .usage = "slot restart NAME", .help = "restart a slot's worker; latency and ports stay"),
    COMMAND(STATS, .name = "stats", .args = args_stats, .usage = "stats [NAME]",
            .help = "underrun, skip and timing counters per slot and for the daemon"),
    COMMAND(PARAM_LIST, .name = "param.list", .args = args_slot_name, .usage = "param list NAME",
            .help = "a slot's parameters with their ranges and values"),
    COMMAND(PARAM_GET, .name = "param.get", .args = args_param_get, .usage = "param get NAME P",
            .help = "one parameter's value"),
    COMMAND(PARAM_SET, .name = "param.set", .args = args_param_set,
            .usage = "param set NAME P VALUE",
            .help = "set a parameter; it takes effect L later, in step with the audio"),
    COMMAND(STATE_SAVE, .name = "state.save", .args = args_state_file,
            .usage = "state save NAME FILE",
            .help = "save a slot's parameters and plugin state to FILE"),
    COMMAND(STATE_LOAD, .name = "state.load", .args = args_state_file,
            .usage = "state load NAME FILE",
            .help = "load parameters and plugin state from FILE into a slot"),
    COMMAND(WORKER_ATTACH, .name = "worker.attach", .args = args_worker_attach, .usage = NULL,
            .help = "attach an external worker to its slot (used by the worker SDK)"),
    COMMAND(SUBSCRIBE, .name = "subscribe", .args = args_subscribe,
            .usage = "subscribe [EVENT...]", .stream = 1,
            .help = "stream events: slot state changes, underruns, restarts, parameter "
                    "changes, faults"),
    [PROTO_CMD_COUNT] = {.name = NULL},
};

const struct proto_command *proto_find_command(const char *name) {
  if (name == NULL)
    return NULL;
  for (int i = 0; i < PROTO_CMD_COUNT; i++)
    if (proto_commands[i].name != NULL && strcmp(proto_commands[i].name, name) == 0)
      return &proto_commands[i];
  return NULL;
}

const struct proto_arg *proto_find_arg(const struct proto_command *cmd, const char *name) {
  if (cmd == NULL || name == NULL)
    return NULL;
  for (const struct proto_arg *a = cmd->args; a->name != NULL; a++)
    if (strcmp(a->name, name) == 0)
      return a;
  return NULL;
}
