/*
 * test_options: runwayd's command line, where it finds runway-worker. The
 * path is never looked up in $PATH: $RUNWAY_WORKER or --worker must be a
 * path (a relative one is made absolute at once), and without either it is
 * the one beside runwayd's executable or, failing that, the one this build
 * installs (RUNWAY_WORKER_INSTALLED).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "runwayd.h"

/* options_parse on argv (NULL-terminated); the result, *opt filled. */
static int parse(struct runwayd_options *opt, char **argv) {
  int argc = 0;
  while (argv[argc] != NULL)
    argc++;
  json_t *cli = json_object();
  optind = 1;
  int rc = options_parse(argc, argv, opt, cli);
  json_decref(cli);
  return rc;
}

static void test_default_is_absolute(void **state) {
  (void)state;
  struct runwayd_options opt;
  char *argv[] = {"runwayd", NULL};
  char self[PATH_MAX], beside[PATH_MAX + 32];
  unsetenv("RUNWAY_WORKER");
  assert_int_equal(parse(&opt, argv), 0);
  assert_true(opt.worker_path[0] == '/');
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  assert_true(n > 0);
  self[n] = '\0';
  snprintf(beside, sizeof(beside), "%s/runway-worker", dirname(self));
  /* Beside us when there is one (a build tree), else where the build installs it. */
  if (access(beside, X_OK) == 0)
    assert_string_equal(opt.worker_path, beside);
  else
    assert_string_equal(opt.worker_path, RUNWAY_WORKER_INSTALLED);
  assert_true(RUNWAY_WORKER_INSTALLED[0] == '/');
}

static void test_bare_name_refused(void **state) {
  (void)state;
  struct runwayd_options opt;
  char *argv[] = {"runwayd", NULL};
  setenv("RUNWAY_WORKER", "runway-worker", 1);
  assert_int_equal(parse(&opt, argv), 2);
  unsetenv("RUNWAY_WORKER");
  char *argv2[] = {"runwayd", "--worker", "runway-worker", NULL};
  assert_int_equal(parse(&opt, argv2), 2);
}

static void test_relative_made_absolute(void **state) {
  (void)state;
  struct runwayd_options opt;
  char cwd[PATH_MAX], want[PATH_MAX + 16];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  snprintf(want, sizeof(want), "%s", cwd);
  unsetenv("RUNWAY_WORKER");
  char *argv[] = {"runwayd", "--worker", "./.", NULL};
  assert_int_equal(parse(&opt, argv), 0);
  assert_string_equal(opt.worker_path, want);
  setenv("RUNWAY_WORKER", "/opt/rw/runway-worker", 1);
  char *argv2[] = {"runwayd", NULL};
  assert_int_equal(parse(&opt, argv2), 0);
  assert_string_equal(opt.worker_path, "/opt/rw/runway-worker");
  /* A relative path that names nothing cannot be made absolute: refused. */
  char *argv3[] = {"runwayd", "--worker", "./no/such/runway-worker", NULL};
  assert_int_equal(parse(&opt, argv3), 2);
  unsetenv("RUNWAY_WORKER");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_is_absolute),
      cmocka_unit_test(test_bare_name_refused),
      cmocka_unit_test(test_relative_made_absolute),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
