/*
 * The first thing a spawned worker runs: runwayd's own executable with
 * --launch-worker, doing what posix_spawn cannot before it execs the
 * worker. Runs in the child, single-threaded, before anything else of
 * runwayd (main calls it first), so plain libc and stderr are fine here.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "worker_proc.h"

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "runway worker launcher: %s%s%s: %s\n", what, detail ? " " : "",
          detail ? detail : "", strerror(errno));
  return 127;
}

static int parse_id(const char *text, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(text, &end, 10);
  return text[0] != '\0' && *end == '\0' && errno == 0 && *out < 0xffffffffUL ? 0 : -1;
}

int worker_launch_main(int argc, char **argv) {
  unsigned long uid = (unsigned long)-1, gid = (unsigned long)-1, parent = 0;
  int i = 2; /* argv[1] is --launch-worker */
  while (i + 1 < argc && strcmp(argv[i], "--") != 0) {
    if (strcmp(argv[i], "--uid") == 0 && parse_id(argv[i + 1], &uid) == 0)
      i += 2;
    else if (strcmp(argv[i], "--gid") == 0 && parse_id(argv[i + 1], &gid) == 0)
      i += 2;
    else if (strcmp(argv[i], "--parent") == 0 && parse_id(argv[i + 1], &parent) == 0)
      i += 2;
    else
      break;
  }
  if (i + 2 >= argc || strcmp(argv[i], "--") != 0 || parent == 0) {
    fprintf(stderr, "runway worker launcher: usage: runwayd --launch-worker --parent PID "
                    "[--uid U --gid G] -- FILE ARGV...\n");
    return 127;
  }
  const char *file = argv[i + 1];
  char **worker_argv = &argv[i + 2];

  if (uid != (unsigned long)-1) {
    /* Groups first, while we still may; then the uid, which ends our privileges. */
    gid_t g = (gid_t)gid;
    if (setgroups(1, &g) != 0)
      return fail("cannot set the groups of", "the worker");
    if (setresgid(g, g, g) != 0)
      return fail("cannot change the gid", NULL);
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)
      return fail("cannot change the uid", NULL);
    if (setuid(0) == 0) {
      errno = EPERM;
      return fail("still able to regain root after dropping it", NULL);
    }
  }
  /* After any uid change, which clears it. A worker outliving runwayd is killed. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    return fail("cannot ask for a parent-death signal", NULL);
  if (getppid() != (pid_t)parent)
    return 127; /* runwayd died before the request took effect */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fail("cannot set no_new_privs", NULL);
  execvp(file, worker_argv);
  return fail("cannot run", file);
}
