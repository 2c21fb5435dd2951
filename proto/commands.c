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

#define ARGS_END                                                                                   \
  { .name = NULL }

static const struct proto_arg args_none[] = {ARGS_END};

static const struct proto_arg args_slot_add[] = {
    {.name = "name",
     .type = PROTO_T_STRING,
     .required = 1,
     .positional = 1,
     .help = "slot name: 1 to 32 of A-Z a-z 0-9 _ -"},
    {.name = "plugin",
     .type = PROTO_T_STRING,
     .help = "built-in plugin that runway-worker runs (see `runwayctl plugins`)"},
    {.name = "lv2",
     .type = PROTO_T_STRING,
     .help = "URI of an LV2 plugin that runway-worker hosts (see `runwayctl plugins --lv2`)"},
    {.name = "exec",
     .type = PROTO_T_STRING,
     .help = "command line of a worker program built on librunway-worker"},
    {.name = "external",
     .type = PROTO_T_BOOL,
     .help = "wait for a worker started by you to attach over the control socket"},
    {.name = "inputs", .type = PROTO_T_INT, .help = "audio inputs (default: the plugin's)"},
    {.name = "outputs", .type = PROTO_T_INT, .help = "audio outputs (default: the plugin's)"},
    {.name = "midi", .type = PROTO_T_BOOL, .help = "give the slot a MIDI input"},
    {.name = "latency_ms",
     .type = PROTO_T_NUMBER,
     .help = "write-ahead latency in milliseconds (default: runwayd --latency-ms)"},
    {.name = "latency_frames", .type = PROTO_T_INT, .help = "write-ahead latency in frames"},
    {.name = "on_fault",
     .type = PROTO_T_STRING,
     .help = "what plays while the worker cannot: silence (default), or bypass (the slot's "
             "input, exactly L later)"},
    ARGS_END};

static const struct proto_arg args_slot_restart[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1, .help = "slot name"},
    {.name = "seamless",
     .type = PROTO_T_BOOL,
     .help = "start the new worker beside the old one and crossfade to it: no gap"},
    {.name = "crossfade_ms",
     .type = PROTO_T_NUMBER,
     .help = "with --seamless: the crossfade's length, 0 to 1000 ms (default 20)"},
    ARGS_END};

static const struct proto_arg args_slot_replace[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1, .help = "slot name"},
    {.name = "plugin",
     .type = PROTO_T_STRING,
     .help = "the built-in plugin to run instead (see `runwayctl plugins`)"},
    {.name = "lv2",
     .type = PROTO_T_STRING,
     .help = "the LV2 plugin to run instead, by URI (see `runwayctl plugins --lv2`)"},
    {.name = "exec",
     .type = PROTO_T_STRING,
     .help = "the worker program to run instead (built on librunway-worker)"},
    {.name = "on_fault",
     .type = PROTO_T_STRING,
     .help = "silence or bypass from now on (default: as before)"},
    {.name = "crossfade_ms",
     .type = PROTO_T_NUMBER,
     .help = "the crossfade's length, 0 to 1000 ms (default 20)"},
    ARGS_END};

static const struct proto_arg args_plugins[] = {
    {.name = "lv2",
     .type = PROTO_T_BOOL,
     .help = "the installed LV2 plugins instead of the built-in ones"},
    {.name = "uri",
     .type = PROTO_T_STRING,
     .positional = 1,
     .help = "one LV2 plugin: its ports, parameters and whether runway can host it"},
    ARGS_END};

static const struct proto_arg args_slot_name[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1, .help = "slot name"},
    ARGS_END};

static const struct proto_arg args_stats[] = {{.name = "name",
                                               .type = PROTO_T_STRING,
                                               .positional = 1,
                                               .help = "only this slot (default: every slot)"},
                                              ARGS_END};

static const struct proto_arg args_param_get[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1, .help = "slot name"},
    {.name = "param",
     .type = PROTO_T_STRING_OR_INT,
     .required = 1,
     .positional = 1,
     .help = "parameter name or id"},
    ARGS_END};

static const struct proto_arg args_param_set[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1, .help = "slot name"},
    {.name = "param",
     .type = PROTO_T_STRING_OR_INT,
     .required = 1,
     .positional = 1,
     .help = "parameter name or id"},
    {.name = "value",
     .type = PROTO_T_NUMBER,
     .required = 1,
     .positional = 1,
     .help = "new value; out-of-range values are clamped and reported"},
    ARGS_END};

static const struct proto_arg args_state_file[] = {
    {.name = "name", .type = PROTO_T_STRING, .required = 1, .positional = 1, .help = "slot name"},
    {.name = "file",
     .type = PROTO_T_STRING,
     .required = 1,
     .positional = 1,
     .path = 1,
     .help = "state file (JSON), read and written by runwayd"},
    ARGS_END};

static const struct proto_arg args_worker_attach[] = {
    {.name = "slot", .type = PROTO_T_STRING, .required = 1, .help = "slot added with --external"},
    {.name = "pid", .type = PROTO_T_INT, .help = "the worker's process id"},
    {.name = "plugin", .type = PROTO_T_STRING, .help = "what the worker runs, for status"},
    {.name = "params", .type = PROTO_T_ARRAY, .help = "the plugin's parameters"},
    ARGS_END};

static const struct proto_arg args_top[] = {
    {.name = "once", .type = PROTO_T_BOOL, .help = "print the view once and exit (for scripts)"},
    {.name = "interval",
     .type = PROTO_T_NUMBER,
     .help = "seconds between refreshes, 0.1 to 60 (default 1)"},
    ARGS_END};

static const struct proto_arg args_subscribe[] = {
    {.name = "events",
     .type = PROTO_T_ARRAY,
     .positional = 1,
     .help =
         "event types to receive: slot, underrun, restart, param, fault, replace (default: all)"},
    ARGS_END};

/* One entry of proto_commands[]: the id is written once, as the index and the field. */
#define COMMAND(ID, ...) [PROTO_CMD_##ID] = {.id = PROTO_CMD_##ID, __VA_ARGS__}

const struct proto_command proto_commands[PROTO_CMD_COUNT + 1] = {
    COMMAND(STATUS, .name = "status", .args = args_none, .usage = "status",
            .help = "daemon, backend, rate, period, slots"),
    COMMAND(PLUGINS, .name = "plugins", .args = args_plugins, .usage = "plugins [--lv2 [URI]]",
            .help = "built-in plugins and their parameters; installed LV2 plugins, or one"),
    COMMAND(SLOT_ADD, .name = "slot.add", .args = args_slot_add,
            .usage = "slot add NAME (--plugin P | --lv2 URI | --exec CMD | --external) "
                     "[--inputs N] [--outputs M] [--midi] [--latency-ms X | --latency-frames F] "
                     "[--on-fault silence|bypass]",
            .help = "add a slot and start (or wait for) its worker"),
    COMMAND(SLOT_REMOVE, .name = "slot.remove", .args = args_slot_name, .usage = "slot remove NAME",
            .help = "stop a slot's worker and remove its ports"),
    COMMAND(SLOT_LIST, .name = "slot.list", .args = args_none, .usage = "slot list",
            .help = "slots with their state, latency and ports"),
    COMMAND(SLOT_RESTART, .name = "slot.restart", .args = args_slot_restart,
            .usage = "slot restart NAME [--seamless [--crossfade-ms X]]",
            .help = "restart a slot's worker; latency and ports stay"),
    COMMAND(SLOT_REPLACE, .name = "slot.replace", .args = args_slot_replace,
            .usage = "slot replace NAME (--plugin P | --lv2 URI | --exec CMD) "
                     "[--on-fault silence|bypass] [--crossfade-ms X]",
            .help = "swap a slot's worker with no gap: a warm-up beside it, then a crossfade"),
    COMMAND(SLOT_ADVISE, .name = "slot.advise", .args = args_slot_name, .usage = "slot advise NAME",
            .help = "the smallest latency that would have had no underrun so far, with a margin"),
    COMMAND(STATS, .name = "stats", .args = args_stats, .usage = "stats [NAME]",
            .help = "underrun, skip and timing counters per slot and for the daemon"),
    COMMAND(TOP, .name = "top", .args = args_top, .usage = "top [--once] [--interval S]",
            .local = 1,
            .help = "a live view of the slots, their workers and the RT cycle (q quits)"),
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
    COMMAND(SUBSCRIBE, .name = "subscribe", .args = args_subscribe, .usage = "subscribe [EVENT...]",
            .stream = 1,
            .help = "stream events: slot state changes, underruns, restarts, parameter "
                    "changes, faults, replacements"),
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
