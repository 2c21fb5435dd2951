/*
 * runwayd: hosts slots whose DSP runs in worker processes, a fixed latency
 * ahead of the audio graph. main() reads top to bottom: options, loop,
 * engine, backend, control server, signals, run, teardown.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "notify.h"
#include "runwayd.h"
#include "persist.h"
#include "slot_state.h"
#include "slots.h"
#include "store.h"
#include "version.h"

#define HOUSEKEEPING_MS 100
#define RECONNECT_MIN_MS 500
#define RECONNECT_MAX_MS 5000

static void usage(FILE *out) {
  fprintf(out,
          "usage: runwayd [OPTIONS]\n"
          "\n"
          "Hosts runway slots on the audio graph; runs in the foreground.\n"
          "\n"
          "  --backend jack          audio server backend (only jack for now)\n"
          "  --name NAME             JACK client name (default: runway)\n"
          "  --socket PATH           control socket (default: $RUNWAY_SOCKET, else\n"
          "                          $XDG_RUNTIME_DIR/runway/control.sock, else\n"
          "                          /run/runway/control.sock)\n"
          "  --config FILE           configuration file\n"
          "  --state-dir DIR         where slots and their state are kept\n"
          "  --latency-ms X          default write-ahead of new slots (default: 50)\n"
          "  --log-level LEVEL       error, warn, info or debug (default: info)\n"
          "  --worker PATH           runway-worker to run built-in plugins with\n"
          "                          (default: $RUNWAY_WORKER, else beside runwayd)\n"
          "  --stall-timeout-ms N    restart a worker that makes no progress for N ms\n"
          "                          while input waits (default: 2000)\n"
          "  --socket-group GROUP    members of GROUP may use the control socket (mode 0660)\n"
          "  --help, --version\n");
}

/* runway-worker: $RUNWAY_WORKER, else beside our own executable, else $PATH. */
static void find_worker(char *buf, size_t len) {
  const char *env = getenv("RUNWAY_WORKER");
  if (env != NULL && env[0] != '\0') {
    snprintf(buf, len, "%s", env);
    return;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    char candidate[PATH_MAX + 32];
    int m = snprintf(candidate, sizeof(candidate), "%s/runway-worker", dirname(self));
    if (m > 0 && (size_t)m < len && access(candidate, X_OK) == 0) {
      memcpy(buf, candidate, (size_t)m + 1);
      return;
    }
  }
  snprintf(buf, len, "runway-worker");
}

static int parse_options(int argc, char **argv, struct runwayd_options *opt, json_t *cli_set) {
  enum { O_BACKEND = 256, O_NAME, O_SOCKET, O_CONFIG, O_STATE_DIR, O_LATENCY, O_LOG, O_WORKER,
         O_STALL, O_GROUP, O_HELP, O_VERSION };
  static const struct option longopts[] = {
      {"backend", required_argument, NULL, O_BACKEND},
      {"name", required_argument, NULL, O_NAME},
      {"socket", required_argument, NULL, O_SOCKET},
      {"config", required_argument, NULL, O_CONFIG},
      {"state-dir", required_argument, NULL, O_STATE_DIR},
      {"latency-ms", required_argument, NULL, O_LATENCY},
      {"log-level", required_argument, NULL, O_LOG},
      {"worker", required_argument, NULL, O_WORKER},
      {"stall-timeout-ms", required_argument, NULL, O_STALL},
      {"socket-group", required_argument, NULL, O_GROUP},
      {"help", no_argument, NULL, O_HELP},
      {"version", no_argument, NULL, O_VERSION},
      {NULL, 0, NULL, 0},
  };
  const char *socket = NULL;
  char *end;
  int c;

  opt->backend = "jack";
  opt->name = "runway";
  opt->latency_ms = 50.0;
  opt->log_level = LOG_INFO;
  opt->stall_timeout_ms = 2000;
  opt->user_instance = geteuid() != 0;
  find_worker(opt->worker_path, sizeof(opt->worker_path));

  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case O_BACKEND:
      opt->backend = optarg;
      if (strcmp(optarg, "jack") != 0) {
        fprintf(stderr, "runwayd: backend \"%s\" is not available; use --backend jack\n", optarg);
        return 2;
      }
      break;
    case O_NAME:
      json_object_set_new(cli_set, "name", json_true());
      opt->name = optarg;
      break;
    case O_SOCKET:
      json_object_set_new(cli_set, "socket", json_true());
      socket = optarg;
      break;
    case O_CONFIG:
      opt->config_path = optarg;
      break;
    case O_STATE_DIR:
      json_object_set_new(cli_set, "state_dir", json_true());
      opt->state_dir = optarg;
      break;
    case O_LATENCY:
      json_object_set_new(cli_set, "latency_ms", json_true());
      opt->latency_ms = strtod(optarg, &end);
      if (*end != '\0' || !(opt->latency_ms > 0 && opt->latency_ms <= 2000)) {
        fprintf(stderr, "runwayd: --latency-ms wants a number of milliseconds in (0, 2000]\n");
        return 2;
      }
      break;
    case O_LOG:
      json_object_set_new(cli_set, "log_level", json_true());
      if (log_parse_level(optarg, &opt->log_level) != 0) {
        fprintf(stderr, "runwayd: --log-level is one of error, warn, info, debug\n");
        return 2;
      }
      break;
    case O_WORKER:
      json_object_set_new(cli_set, "worker", json_true());
      snprintf(opt->worker_path, sizeof(opt->worker_path), "%s", optarg);
      break;
    case O_STALL:
      json_object_set_new(cli_set, "stall_timeout_ms", json_true());
      opt->stall_timeout_ms = strtoull(optarg, &end, 10);
      if (*end != '\0' || opt->stall_timeout_ms < 100) {
        fprintf(stderr, "runwayd: --stall-timeout-ms wants at least 100\n");
        return 2;
      }
      break;
    case O_GROUP:
      json_object_set_new(cli_set, "socket_group", json_true());
      opt->socket_group = optarg;
      break;
    case O_HELP:
      usage(stdout);
      return 1;
    case O_VERSION:
      printf("runwayd %s\n", RUNWAY_VERSION);
      return 1;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "runwayd: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  if (proto_socket_path(socket, opt->socket_path, sizeof(opt->socket_path)) != 0) {
    fprintf(stderr, "runwayd: the control socket path is too long for a Unix socket\n");
    return 2;
  }
  return 0;
}

/* ---- the audio server connection -------------------------------------------- */

static void on_reconnect(uv_timer_t *t);
static void schedule_reconnect(struct runwayd *d);

/* The line `systemctl status runwayd` shows (sd_notify STATUS=). */
static const char *describe(const struct runwayd *d, char *buf, size_t len) {
  if (backend_is_open(d->backend))
    snprintf(buf, len, "JACK active, %u Hz, %u frames per period; slots: %u",
             backend_sample_rate(d->backend), backend_period(d->backend), d->n_slots);
  else
    snprintf(buf, len, "waiting for the JACK server; slots: %u", d->n_slots);
  return buf;
}

static void schedule_reconnect(struct runwayd *d) {
  uv_timer_start(&d->reconnect, on_reconnect, d->reconnect_delay_ms, 0);
  d->reconnect_delay_ms *= 2;
  if (d->reconnect_delay_ms > RECONNECT_MAX_MS)
    d->reconnect_delay_ms = RECONNECT_MAX_MS;
}

/* Starts a connection attempt; connected() or schedule_reconnect() follows. */
static void try_connect(struct runwayd *d) {
  int rc = backend_connect(d->backend);
  if (rc != 0 && rc != -EALREADY) {
    log_error("cannot start connecting to JACK: %s", strerror(-rc));
    schedule_reconnect(d);
  }
}

/* A connection attempt ended (BACKEND_EV_CONNECTED). */
static void connected(struct runwayd *d) {
  char err[256], status[256];
  int rc = backend_finish_connect(d->backend, err, sizeof(err));
  if (rc == -EINPROGRESS)
    return;
  if (rc == 0) {
    log_info("connected to JACK as \"%s\": %u Hz, %u frames per period",
             backend_client_name(d->backend), backend_sample_rate(d->backend),
             backend_period(d->backend));
    d->reconnect_delay_ms = RECONNECT_MIN_MS;
    slots_backend_up(d);
    /* The control socket already listens (main starts it first): now we are ready. */
    notify_ready(describe(d, status, sizeof(status)));
    return;
  }
  if (d->reconnect_delay_ms <= RECONNECT_MIN_MS)
    log_warn("%s; retrying in the background", err);
  notify_status("%s", describe(d, status, sizeof(status)));
  schedule_reconnect(d);
}

static void on_reconnect(uv_timer_t *t) {
  struct runwayd *d = t->data;
  if (!d->stopping)
    try_connect(d);
}

static void on_backend_event(void *user) {
  struct runwayd *d = user;
  uint32_t ev = backend_take_events(d->backend);
  if (d->stopping)
    return;
  if (ev & BACKEND_EV_CONNECTED)
    connected(d);
  if (!backend_is_open(d->backend))
    return;
  if (ev & BACKEND_EV_SHUTDOWN) {
    log_warn("the JACK server went away; slots wait until it is back");
    /* Its RT thread has stopped; closing may wait on the dying server, so not here. */
    backend_abandon(d->backend);
    slots_backend_down(d);
    d->reconnect_delay_ms = RECONNECT_MIN_MS;
    schedule_reconnect(d);
    return;
  }
  if (ev & BACKEND_EV_GRAPH)
    slots_reorder(d);
  if (ev & (BACKEND_EV_PERIOD | BACKEND_EV_RATE)) {
    char why[128];
    snprintf(why, sizeof(why), "JACK now runs at %u Hz, %u frames per period",
             backend_sample_rate(d->backend), backend_period(d->backend));
    slots_rebuild_all(d, why);
  }
}

/* ---- loop callbacks ------------------------------------------------------------ */

/* Housekeeping: one periodic timer for everything that is not driven by an event. */
/* Runs every few ms while a state.save or state.load waits for a worker. */
static void on_state_timer(uv_timer_t *t) {
  struct runwayd *d = t->data;
  if (!slot_state_poll(d, base_mono_ms()))
    uv_timer_stop(t);
}

static void on_housekeeping(uv_timer_t *t) {
  struct runwayd *d = t->data;
  char status[256];
  d->housekeeping_ticks++;
  slots_housekeeping(d, base_mono_ms());
  store_flush(d, false);
  notify_status("%s", describe(d, status, sizeof(status)));
}

static void on_stop_signal(uv_signal_t *h, int signum) {
  struct runwayd *d = h->data;
  log_info("received %s, stopping", strsignal(signum));
  d->stopping = true;
  uv_stop(d->loop);
}

static void on_sighup(uv_signal_t *h, int signum) {
  struct runwayd *d = h->data;
  char err[512];
  (void)signum;
  notify_reloading();
  if (config_reload(d, err, sizeof(err)) != 0)
    log_error("SIGHUP: %s; nothing changed", err);
  else
    log_info("SIGHUP: reloaded %s", d->opt.config_path);
  notify_reloaded();
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int main(int argc, char **argv) {
  struct runwayd d;
  char err[512];
  int rc;

  memset(&d, 0, sizeof(d));
  d.exit_status = 1;
  d.cli_set = json_object();
  rc = parse_options(argc, argv, &d.opt, d.cli_set);
  if (rc != 0)
    return rc == 1 ? 0 : rc;
  if (d.opt.config_path != NULL) {
    if (config_load(d.opt.config_path, &d.config, err, sizeof(err)) != 0 ||
        config_apply_options(&d.config, &d.opt, d.cli_set, err, sizeof(err)) != 0) {
      fprintf(stderr, "runwayd: %s\n", err);
      return 2;
    }
  }
  log_set_level(d.opt.log_level);
  /* A client that disconnects mid-write must not kill the daemon. */
  signal(SIGPIPE, SIG_IGN);
  /*
   * Keep every page resident so the RT callback never takes a page fault on
   * code, stack or heap; without the privilege (RLIMIT_MEMLOCK) it still runs.
   */
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
    log_warn("cannot lock memory (%s); page faults may cause xruns. Raise LimitMEMLOCK.",
             strerror(errno));

  rc = catalog_load(&d.catalog, d.opt.worker_path, err, sizeof(err));
  if (rc != 0) {
    log_error("cannot learn the built-in plugins: %s", err);
    return 1;
  }

  d.loop = uv_default_loop();
  d.started_ms = base_mono_ms();
  engine_init(&d.engine);
  rc = backend_create(d.loop, &d.engine, d.opt.name, on_backend_event, &d, &d.backend);
  if (rc != 0) {
    log_error("cannot create the backend: %s", strerror(-rc));
    goto out;
  }

  d.events = events_create();
  if (d.events == NULL) {
    log_error("out of memory");
    goto out;
  }

  struct control_config cc = {
      .path = d.opt.socket_path,
      /* A user instance keeps the socket to itself unless a group was named for it. */
      .mode = d.opt.user_instance && d.opt.socket_group == NULL ? 0600 : 0660,
      .group = (gid_t)-1,
  };
  if (d.opt.socket_group != NULL) {
    struct group *gr = getgrnam(d.opt.socket_group);
    if (gr == NULL) {
      log_error("socket_group \"%s\" is not a group on this system", d.opt.socket_group);
      goto out;
    }
    cc.group = gr->gr_gid;
  }
  rc = control_server_start(d.loop, &cc, commands_dispatch, &d, &d.control, err, sizeof(err));
  if (rc != 0) {
    log_error("%s", err);
    goto out;
  }
  log_info("listening on %s", d.opt.socket_path);

  uv_signal_init(d.loop, &d.sig_term);
  uv_signal_init(d.loop, &d.sig_int);
  uv_signal_init(d.loop, &d.sig_hup);
  d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
  uv_signal_start(&d.sig_term, on_stop_signal, SIGTERM);
  uv_signal_start(&d.sig_int, on_stop_signal, SIGINT);
  uv_signal_start(&d.sig_hup, on_sighup, SIGHUP);

  /* Slots from the state directory come back before JACK: their first workers get their state. */
  if (persist_state_dir(d.opt.state_dir, d.state_dir, sizeof(d.state_dir)) != 0) {
    log_error("the state directory path is too long");
    goto out;
  }
  if (store_open(&d, err, sizeof(err)) != 0)
    log_error("%s; slots will not survive a restart until this is fixed", err);
  else if (store_load(&d, err, sizeof(err)) != 0)
    log_error("%s", err);
  if (d.config.slots != NULL)
    config_apply_slots(&d, &d.config);
  uv_timer_init(d.loop, &d.state_timer);
  d.state_timer.data = &d;
  /* Started and stopped once so that uv_timer_again() can restart it later. */
  uv_timer_start(&d.state_timer, on_state_timer, 2, 2);
  uv_timer_stop(&d.state_timer);

  uv_timer_init(d.loop, &d.reconnect);
  d.reconnect.data = &d;
  d.reconnect_delay_ms = RECONNECT_MIN_MS;
  try_connect(&d);

  uv_timer_init(d.loop, &d.housekeeping);
  d.housekeeping.data = &d;
  uv_timer_start(&d.housekeeping, on_housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS);

  /* The pings come from this loop, so a hung loop gets the daemon restarted. */
  if (notify_watchdog_start(d.loop) < 0)
    log_warn("WATCHDOG_USEC is malformed; not pinging the service manager's watchdog");

  uv_run(d.loop, UV_RUN_DEFAULT);
  d.exit_status = 0;

out:
  d.stopping = true;
  notify_stopping();
  /* Stopping the server closes the subscribers' connections, which unregisters them. */
  if (d.control != NULL)
    control_server_stop(d.control);
  events_destroy(d.events);
  d.events = NULL;
  if (d.backend != NULL)
    backend_close(d.backend);
  store_flush(&d, true);
  slots_shutdown(&d);
  store_close(&d);
  config_free(&d.config_reloaded);
  config_free(&d.config);
  json_decref(d.cli_set);
  engine_destroy(&d.engine);
  backend_destroy(d.backend);
  catalog_free(&d.catalog);
  /*
   * Let the workers that got SIGTERM exit and be reaped (their kill timers
   * escalate to SIGKILL), then close whatever handle is left.
   */
  if (d.loop != NULL) {
    uv_timer_stop(&d.housekeeping);
    uv_timer_stop(&d.reconnect);
    uv_signal_stop(&d.sig_term);
    uv_signal_stop(&d.sig_int);
    uv_signal_stop(&d.sig_hup);
    uv_run(d.loop, UV_RUN_DEFAULT);
    notify_watchdog_stop();
    uv_walk(d.loop, close_walk, NULL);
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
  }
  log_info("stopped");
  return d.exit_status;
}
