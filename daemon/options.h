/*
 * runwayd's command line: one table of options gives the parser and --help.
 */
#ifndef RUNWAY_DAEMON_OPTIONS_H
#define RUNWAY_DAEMON_OPTIONS_H

#include <stdio.h>

#include <jansson.h>

#include "runwayd.h"

/*
 * Fills opt with the defaults, then the command line. cli_set gets the
 * [daemon] key of every option given (the command line beats the file).
 * Returns 0, 1 when --help or --version answered (exit 0), 2 on a usage
 * error (reported on stderr).
 */
int options_parse(int argc, char **argv, struct runwayd_options *opt, json_t *cli_set);

void options_usage(FILE *out);

/* socket_path from --socket, $RUNWAY_SOCKET or the default. 0 or -ENAMETOOLONG. */
int options_resolve_socket(struct runwayd_options *opt, char *err, size_t errlen);

#endif
