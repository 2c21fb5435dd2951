/*
 * runway-readme-commands SECTION: prints a part of README.md that comes
 * from the command table (proto/commands.c), so that the README cannot drift
 * from the code:
 *
 *   runwayctl-help      `runwayctl --help`, as a code block
 *   protocol-commands   the commands on the wire with their arguments, as a table
 *
 * scripts/readme.cmake puts each between its markers in README.md: the
 * target `readme` rewrites them, the test readme_commands fails when they
 * are out of date. Built with the tree, never installed.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void print_runwayctl_help(void) {
  printf("```text\n");
  ctl_print_help(stdout);
  printf("```\n");
}

/* "`name` string (required), `plugin` string, ..." */
static void print_args(const struct proto_command *c) {
  for (const struct proto_arg *a = c->args; a->name != NULL; a++)
    printf("%s`%s` %s%s", a == c->args ? "" : ", ", a->name, proto_type_name(a->type),
           a->required ? " (required)" : "");
}

static void print_protocol_commands(void) {
  printf("| command | arguments | |\n|---|---|---|\n");
  for (int i = 0; i < PROTO_CMD_COUNT; i++) {
    const struct proto_command *c = &proto_commands[i];
    if (c->local)
      continue; /* runwayctl's own (top): not on the wire */
    printf("| `%s` | ", c->name);
    print_args(c);
    printf(" | %s |\n", c->help);
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "runwayctl-help") == 0)
    print_runwayctl_help();
  else if (argc == 2 && strcmp(argv[1], "protocol-commands") == 0)
    print_protocol_commands();
  else {
    fprintf(stderr, "usage: runway-readme-commands runwayctl-help|protocol-commands\n");
    return 2;
  }
  return fflush(stdout) == 0 ? 0 : 1;
}
