/*
 * The control commands: one list of them, and one table with each one's wire
 * name, argument schema, runwayctl usage and help. This is the only place
 * that knows the commands; runwayd binds its handlers and runwayctl its
 * printers to them by id, and both derive everything else (validation,
 * argv grammar, help, README's command list) from the table. Not RT safe.
 */
#ifndef RUNWAY_PROTO_COMMANDS_H
#define RUNWAY_PROTO_COMMANDS_H

/*
 * Every command, in the order runwayctl's help lists them.
 * PROTO_COMMAND_MAP(USER, INTERNAL, LOCAL) expands USER(ID, stem) for each
 * command people give through runwayctl, INTERNAL(ID, stem) for each that
 * only programs send (worker.attach, from the worker SDK) and LOCAL(ID, stem)
 * for each that runwayctl runs itself out of other commands (top, out of
 * stats and subscribe; never on the wire). ID names the constant
 * PROTO_CMD_<ID>. The stem names the daemon's handler, cmd_<stem>
 * (daemon/control/commands.c), and runwayctl's printer, show_<stem>
 * (clients/ctl_format.c), or for a LOCAL command its runner, run_<stem>
 * (clients/runwayctl.c), which bind from this list: a command without its
 * handler, or a runwayctl command without its printer or runner, does not
 * compile.
 *
 * Adding a command: a line here, its entry in proto_commands[]
 * (proto/commands.c: wire name, arguments, usage, help; test_protocol fails
 * until it is there), its handler and, for a USER command, its printer.
 */
#define PROTO_COMMAND_MAP(USER, INTERNAL, LOCAL)                                                   \
  USER(STATUS, status)                                                                             \
  USER(PLUGINS, plugins)                                                                           \
  USER(SLOT_ADD, slot_add)                                                                         \
  USER(SLOT_REMOVE, slot_remove)                                                                   \
  USER(SLOT_LIST, slot_list)                                                                       \
  USER(SLOT_RESTART, slot_restart)                                                                 \
  USER(SLOT_REPLACE, slot_replace)                                                                 \
  USER(SLOT_ADVISE, slot_advise)                                                                   \
  USER(STATS, stats)                                                                               \
  LOCAL(TOP, top)                                                                                  \
  USER(PARAM_LIST, param_list)                                                                     \
  USER(PARAM_GET, param_get)                                                                       \
  USER(PARAM_SET, param_set)                                                                       \
  USER(STATE_SAVE, state_save)                                                                     \
  USER(STATE_LOAD, state_load)                                                                     \
  INTERNAL(WORKER_ATTACH, worker_attach)                                                           \
  USER(SUBSCRIBE, subscribe)

enum proto_cmd {
#define PROTO_CMD_ENUM(ID, stem) PROTO_CMD_##ID,
  PROTO_COMMAND_MAP(PROTO_CMD_ENUM, PROTO_CMD_ENUM, PROTO_CMD_ENUM)
#undef PROTO_CMD_ENUM
      PROTO_CMD_COUNT
};

enum proto_type {
  PROTO_T_STRING,
  PROTO_T_INT,    /* JSON integer */
  PROTO_T_NUMBER, /* JSON integer or real */
  PROTO_T_BOOL,
  PROTO_T_ARRAY,
  PROTO_T_OBJECT,
  PROTO_T_STRING_OR_INT /* e.g. a parameter given by name or by id */
};

/* "string", "integer", "number", "boolean", "array", "object", "string or integer". */
const char *proto_type_name(enum proto_type type);

/*
 * One argument of a command. Write table entries with designated initializers
 * so that fields added later default to zero.
 */
struct proto_arg {
  const char *name;
  enum proto_type type;
  int required;
  const char *help;
  /*
   * runwayctl takes it as a bare word (positional arguments in table order,
   * "slot remove NAME") instead of as an option ("--latency-ms X", the name
   * with '_' spelled '-'). A positional array takes all the remaining words,
   * as strings ("subscribe slot fault").
   */
  int positional;
  /* A file name: runwayctl sends it absolute, resolved against its own directory. */
  int path;
};

struct proto_command {
  enum proto_cmd id;
  const char *name;             /* on the wire: "slot.add" */
  const struct proto_arg *args; /* terminated by an entry with name == NULL */
  const char *usage;            /* runwayctl form, e.g. "slot add NAME --plugin P ..."; NULL
                                   for an INTERNAL command */
  const char *help;             /* one line */
  /*
   * The ok answer opens a stream: event lines ({"event":...}, no "id") follow
   * on the same connection until it closes. runwayctl keeps reading and
   * prints each one.
   */
  int stream;
  /*
   * runwayctl runs it itself, out of other commands (a LOCAL command of the
   * map): runwayd answers it on the wire as an unknown command.
   */
  int local;
};

/*
 * The command table, indexed by enum proto_cmd and terminated by an entry
 * with name == NULL (at PROTO_CMD_COUNT).
 */
extern const struct proto_command proto_commands[PROTO_CMD_COUNT + 1];

/* The command called name (a local one included: runwayd refuses those), or NULL. */
const struct proto_command *proto_find_command(const char *name);

/* The declared argument called name, or NULL. */
const struct proto_arg *proto_find_arg(const struct proto_command *cmd, const char *name);

#endif
