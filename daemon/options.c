#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "version.h"

/* Longest stall timeout: an hour. Longer is a typo, and past 2^64 ms it would wrap. */
#define STALL_TIMEOUT_MAX_MS 3600000ull

static int set_backend(struct runwayd_options *o, const char *v, char *err, size_t len) {
  if (backend_find(v, err, len) == NULL)
    return -EINVAL;
  o->backend = v;
  return 0;
}

static int set_name(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->name = v;
  return 0;
}

static int set_socket(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->socket_arg = v;
  return 0;
}

static int set_config(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->config_path = v;
  return 0;
}

static int set_state_dir(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->state_dir = v;
  return 0;
}

static int set_latency(struct runwayd_options *o, const char *v, char *err, size_t len) {
  char *end;
  double ms = strtod(v, &end);
  if (*v == '\0' || *end != '\0' || !(ms > 0 && ms <= 2000)) {
    snprintf(err, len, "--latency-ms wants a number of milliseconds in (0, 2000]");
    return -EINVAL;
  }
  o->latency_ms = ms;
  return 0;
}

static int set_log_level(struct runwayd_options *o, const char *v, char *err, size_t len) {
  if (log_parse_level(v, &o->log_level) != 0) {
    snprintf(err, len, "--log-level is one of error, warn, info, debug");
    return -EINVAL;
  }
  return 0;
}

/*
 * A worker path is never looked up in $PATH (whoever sets PATH for runwayd
 * would choose what its workers run): an absolute path is kept, a relative
 * one with a slash is made absolute now, a bare name is refused.
 */
static int worker_path_set(char *buf, size_t len, const char *what, const char *v, char *err,
                           size_t errlen) {
  char resolved[PATH_MAX];
  if (strchr(v, '/') == NULL) {
    snprintf(err, errlen,
             "%s: \"%s\" is not a path; give runway-worker's path (runwayd never searches $PATH "
             "for it)",
             what, v);
    return -EINVAL;
  }
  if (v[0] != '/') {
    if (realpath(v, resolved) == NULL) {
      int e = errno;
      snprintf(err, errlen, "%s: %s: %s", what, v, strerror(e));
      return -e;
    }
    v = resolved;
  }
  int n = snprintf(buf, len, "%s", v);
  if (n < 0 || (size_t)n >= len) {
    snprintf(err, errlen, "%s: the path is too long", what);
    return -ENAMETOOLONG;
  }
  return 0;
}

static int set_worker(struct runwayd_options *o, const char *v, char *err, size_t len) {
  return worker_path_set(o->worker_path, sizeof(o->worker_path), "--worker", v, err, len);
}

static int set_stall(struct runwayd_options *o, const char *v, char *err, size_t len) {
  char *end;
  errno = 0;
  unsigned long long ms = strtoull(v, &end, 10);
  if (*v == '\0' || *v == '-' || *end != '\0' || errno == ERANGE || ms < 100 ||
      ms > STALL_TIMEOUT_MAX_MS) {
    snprintf(err, len, "--stall-timeout-ms wants a whole number of milliseconds in [100, %llu]",
             STALL_TIMEOUT_MAX_MS);
    return -EINVAL;
  }
  o->stall_timeout_ms = ms;
  return 0;
}

static int set_worker_user(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->worker_user = v;
  return 0;
}

static int set_worker_env(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->worker_env = v;
  return 0;
}

/* A whole number in [min, max] for option `name`. */
static int parse_count(const char *name, const char *v, uint64_t min, uint64_t max, uint64_t *out,
                       char *err, size_t len) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (*v == '\0' || *v == '-' || *end != '\0' || errno == ERANGE || n < min || n > max) {
    snprintf(err, len, "--%s wants a whole number in [%llu, %llu]", name, (unsigned long long)min,
             (unsigned long long)max);
    return -EINVAL;
  }
  *out = n;
  return 0;
}

static int set_max_slots(struct runwayd_options *o, const char *v, char *err, size_t len) {
  uint64_t n;
  int rc = parse_count("max-slots-per-user", v, 1, ENGINE_MAX_SLOTS, &n, err, len);
  if (rc == 0)
    o->max_slots_per_user = (uint32_t)n;
  return rc;
}

static int set_max_user_mb(struct runwayd_options *o, const char *v, char *err, size_t len) {
  return parse_count("max-memory-mb-per-user", v, 1, 1u << 20, &o->max_memory_mb_per_user, err,
                     len);
}

static int set_max_mb(struct runwayd_options *o, const char *v, char *err, size_t len) {
  return parse_count("max-memory-mb", v, 1, 1u << 20, &o->max_memory_mb, err, len);
}

static int set_group(struct runwayd_options *o, const char *v, char *err, size_t len) {
  o->socket_group = v;
  return 0;
}

/*
 * runwayd's options. The name is the long option; with '-' as '_' it is
 * also the key of the [daemon] section of the configuration file, and the
 * command line wins over the file (cli_set records what it gave).
 */
static const struct runwayd_option {
  const char *name;
  const char *metavar;
  const char *help; /* lines of --help after the first, separated by '\n' */
  int (*set)(struct runwayd_options *o, const char *value, char *err, size_t len);
} options[] = {
    {"backend", "NAME",
     "audio server: pipewire, jack, or auto: PipeWire when\n"
     "its server answers, else JACK (default: auto)",
     set_backend},
    {"name", "NAME", "client name in the audio graph (default: runway)", set_name},
    {"socket", "PATH",
     "control socket (default: $RUNWAY_SOCKET, else\n"
     "$XDG_RUNTIME_DIR/runway/control.sock, else\n/run/runway/control.sock)",
     set_socket},
    {"config", "FILE", "configuration file", set_config},
    {"state-dir", "DIR", "where slots and their state are kept", set_state_dir},
    {"latency-ms", "X", "default write-ahead of new slots (default: 50)", set_latency},
    {"log-level", "LEVEL", "error, warn, info or debug (default: info)", set_log_level},
    {"worker", "PATH",
     "runway-worker to run built-in plugins with\n(default: $RUNWAY_WORKER, else beside "
     "runwayd,\nelse " RUNWAY_WORKER_INSTALLED ")",
     set_worker},
    {"stall-timeout-ms", "N",
     "restart a worker that makes no progress for N ms\nwhile input waits (default: 2000)",
     set_stall},
    {"socket-group", "GROUP", "members of GROUP may use the control socket (mode 0660)", set_group},
    {"max-slots-per-user", "N",
     "slots one member of the socket group may add (default: 32;\nroot and runwayd's user: "
     "only the totals)",
     set_max_slots},
    {"max-memory-mb-per-user", "MB",
     "locked segment memory one group member's slots may take\n(default: 512)", set_max_user_mb},
    {"max-memory-mb", "MB", "locked segment memory of all slots (default: 4096)", set_max_mb},
    {"worker-user", "USER",
     "when runwayd runs as root, workers run as USER\n(default: runway if it exists, else nobody)",
     set_worker_user},
    {"worker-env", "NAMES",
     "more environment variables workers get (space-separated;\nPATH, HOME, locale, TZ, TMPDIR, "
     "LV2_PATH always pass)",
     set_worker_env},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

void options_usage(FILE *out) {
  fprintf(out, "usage: runwayd [OPTIONS]\n\n"
               "Hosts runway slots on the audio graph; runs in the foreground.\n\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    char head[64];
    snprintf(head, sizeof(head), "--%s %s", options[i].name, options[i].metavar);
    const char *line = options[i].help;
    int first = 1;
    while (*line != '\0') {
      const char *nl = strchr(line, '\n');
      int n = nl ? (int)(nl - line) : (int)strlen(line);
      fprintf(out, "  %-22s  %.*s\n", first ? head : "", n, line);
      first = 0;
      line += n + (nl != NULL);
    }
  }
  fprintf(out, "  --help, --version\n");
}

/*
 * runway-worker: $RUNWAY_WORKER, else beside our own executable (a build
 * tree, or an install with another prefix), else where this build installs
 * it. Never a $PATH lookup.
 */
static int find_worker(char *buf, size_t len, char *err, size_t errlen) {
  const char *env = getenv("RUNWAY_WORKER");
  if (env != NULL && env[0] != '\0')
    return worker_path_set(buf, len, "RUNWAY_WORKER", env, err, errlen);
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    char candidate[PATH_MAX + 32];
    int m = snprintf(candidate, sizeof(candidate), "%s/runway-worker", dirname(self));
    if (m > 0 && (size_t)m < len && access(candidate, X_OK) == 0) {
      memcpy(buf, candidate, (size_t)m + 1);
      return 0;
    }
  }
  snprintf(buf, len, "%s", RUNWAY_WORKER_INSTALLED);
  return 0;
}

int options_parse(int argc, char **argv, struct runwayd_options *opt, json_t *cli_set) {
  enum { O_HELP = 256, O_VERSION, O_FIRST };
  struct option longopts[N_OPTIONS + 3];
  char err[256];
  int c;

  *opt = (struct runwayd_options){
      .backend = "auto",
      .name = "runway",
      .latency_ms = 50.0,
      .log_level = LOG_LEVEL_INFO,
      .stall_timeout_ms = 2000,
      .max_slots_per_user = 32,
      .max_memory_mb_per_user = 512,
      .max_memory_mb = 4096,
      .user_instance = geteuid() != 0,
  };
  if (find_worker(opt->worker_path, sizeof(opt->worker_path), err, sizeof(err)) != 0) {
    fprintf(stderr, "runwayd: %s\n", err);
    return 2;
  }
  for (size_t i = 0; i < N_OPTIONS; i++)
    longopts[i] = (struct option){options[i].name, required_argument, NULL, O_FIRST + (int)i};
  longopts[N_OPTIONS] = (struct option){"help", no_argument, NULL, O_HELP};
  longopts[N_OPTIONS + 1] = (struct option){"version", no_argument, NULL, O_VERSION};
  longopts[N_OPTIONS + 2] = (struct option){NULL, 0, NULL, 0};

  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (c == O_HELP) {
      options_usage(stdout);
      return 1;
    }
    if (c == O_VERSION) {
      printf("runwayd %s\n", RUNWAY_VERSION);
      return 1;
    }
    if (c < O_FIRST || c >= O_FIRST + (int)N_OPTIONS) {
      options_usage(stderr);
      return 2;
    }
    const struct runwayd_option *o = &options[c - O_FIRST];
    if (o->set(opt, optarg, err, sizeof(err)) != 0) {
      fprintf(stderr, "runwayd: %s\n", err);
      return 2;
    }
    char key[32];
    snprintf(key, sizeof(key), "%s", o->name);
    for (char *p = key; *p != '\0'; p++)
      if (*p == '-')
        *p = '_';
    json_object_set_new(cli_set, key, json_true());
  }
  if (optind < argc) {
    fprintf(stderr, "runwayd: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  if (options_resolve_socket(opt, err, sizeof(err)) != 0) {
    fprintf(stderr, "runwayd: %s\n", err);
    return 2;
  }
  return 0;
}

int options_resolve_socket(struct runwayd_options *opt, char *err, size_t errlen) {
  if (proto_socket_path(opt->socket_arg, opt->socket_path, sizeof(opt->socket_path)) != 0) {
    snprintf(err, errlen, "the control socket path is too long for a Unix socket");
    return -ENAMETOOLONG;
  }
  return 0;
}
