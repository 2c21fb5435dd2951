/*
 * runwayd: hosts slots whose DSP runs in worker processes, a fixed latency
 * ahead of the audio graph. main() reads top to bottom: the worker launcher
 * (runwayd's executable starts every worker), options and
 * configuration, memory, the plugin catalog, the loop and the engine, the
 * audio server's backend, the control server, signals, the state directory,
 * connecting, housekeeping, run, teardown.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "connection.h"
#include "memlock.h"
#include "notify.h"
#include "options.h"
#include "persist.h"
#include "runwayd.h"
#include "segment.h"
#include "slot_state.h"
#include "slots.h"
#include "store.h"

#define HOUSEKEEPING_MS 100

/*
 * Control socket limits: a few connections always left for root and our own
 * user; no uid may take more than a quarter; a connection that is nobody's
 * (not a subscriber or worker) and sends nothing for a minute is closed.
 */
#define CONTROL_MAX_CONNECTIONS 64
#define CONTROL_MAX_PER_UID 16
#define CONTROL_RESERVED_PRIVILEGED 8
#define CONTROL_IDLE_TIMEOUT_MS 60000

/* True once every `ms` milliseconds of housekeeping passes. */
#define run_every(d, ms) ((d)->housekeeping_passes % ((ms) / HOUSEKEEPING_MS) == 0)

/*
 * Housekeeping: the one periodic job for everything not driven by an event
 * (Redis's serverCron). Every pass: slot checks (faults, attachment, stalls,
 * worker messages), saving slots.json when due (the store paces itself) and
 * the service manager's status line; every second, the deep segment checks.
 */
static void on_housekeeping(uv_timer_t *t) {
  struct runwayd *d = t->data;
  char status[256];
  d->housekeeping_passes++;
  slots_housekeeping(d, base_mono_ms(), run_every(d, 1000));
  store_flush(d, false);
  notify_status("%s", connection_describe(d, status, sizeof(status)));
}

/* Runs every few ms while a state.save or state.load waits for a worker. */
static void on_state_timer(uv_timer_t *t) {
  struct runwayd *d = t->data;
  if (!slot_state_poll(d, base_mono_ms()))
    uv_timer_stop(t);
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

/*
 * Managed workers have their segment and no business on the control socket;
 * with runwayd's own uid (a user instance) only their session tells them.
 */
static bool refuse_workers(void *user, pid_t pid, char *why, size_t len) {
  struct runwayd *d = user;
  pid_t sid = getsid(pid);
  for (uint32_t i = 0; sid > 0 && i < d->n_slots; i++) {
    const struct supervisor *sv = &d->slots[i]->sv;
    if ((sv->proc != NULL && sv->pid == sid) || (sv->next_proc != NULL && sv->next_pid == sid)) {
      snprintf(why, len,
               "pid %d is the worker of slot %s (or one of its processes); workers have "
               "their segment and may not use the control socket",
               (int)pid, d->slots[i]->name);
      return true;
    }
  }
  return false;
}

static int start_control(struct runwayd *d, char *err, size_t errlen) {
  struct control_config cc = {
      .path = d->opt.socket_path,
      /* A user instance keeps the socket to itself unless a group was named for it. */
      .mode = d->opt.user_instance && d->opt.socket_group == NULL ? 0600 : 0660,
      .group = (gid_t)-1,
      .max_connections = CONTROL_MAX_CONNECTIONS,
      .max_per_uid = CONTROL_MAX_PER_UID,
      .reserved_privileged = CONTROL_RESERVED_PRIVILEGED,
      .idle_timeout_ms = CONTROL_IDLE_TIMEOUT_MS,
      .refuse_peer = refuse_workers,
  };
  if (d->opt.socket_group != NULL) {
    struct group *gr = getgrnam(d->opt.socket_group);
    if (gr == NULL) {
      snprintf(err, errlen, "socket_group \"%s\" is not a group on this system",
               d->opt.socket_group);
      return -ENOENT;
    }
    cc.group = gr->gr_gid;
  }
  return control_server_start(d->loop, &cc, commands_dispatch, d, &d->control, err, errlen);
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

  /* A worker being spawned: runwayd's executable is its launcher (supervise/launch.c). */
  if (argc > 1 && strcmp(argv[1], "--launch-worker") == 0)
    return worker_launch_main(argc, argv);

  /*
   * Not dumpable: no process of our uid (a worker, above all) may open our
   * /proc/PID/fd, and with it another slot's segment, or ptrace us. That
   * closes our own /proc/self/pagemap to us too, which the check for holes
   * in segments reads: it is opened first.
   */
  int watch_rc = shm_segment_watch_open();
  if (watch_rc != 0)
    log_warn("cannot watch segments through /proc/self/pagemap (%s); holes a worker punches "
             "in its segment are found only while they last",
             watch_rc == -EOPNOTSUPP ? "shared-memory huge pages may be collapsed here"
                                     : strerror(-watch_rc));
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    log_warn("cannot make runwayd non-dumpable (%s); processes of its uid could read its memory",
             strerror(errno));

  memset(&d, 0, sizeof(d));
  d.exit_status = 1;
  d.cli_set = json_object();
  rc = options_parse(argc, argv, &d.opt, d.cli_set);
  if (rc != 0) {
    json_decref(d.cli_set);
    return rc == 1 ? 0 : rc;
  }
  if (d.opt.config_path != NULL) {
    if (config_load(d.opt.config_path, &d.config, err, sizeof(err)) != 0 ||
        config_apply_options(&d.config, &d.opt, d.cli_set, err, sizeof(err)) != 0) {
      fprintf(stderr, "runwayd: %s\n", err);
      json_decref(d.cli_set);
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
  rc = sys_lock_all();
  if (rc != 0)
    log_warn("cannot lock memory (%s); page faults may cause xruns. Raise LimitMEMLOCK.",
             strerror(-rc));

  rc = catalog_load(&d.catalog, d.opt.worker_path, err, sizeof(err));
  if (rc != 0) {
    log_error("cannot learn the built-in plugins: %s", err);
    json_decref(d.cli_set);
    return 1;
  }

  d.loop = uv_default_loop();
  d.started_ms = base_mono_ms();
  engine_init(&d.engine);
  if (slots_init(&d, err, sizeof(err)) != 0 || connection_init(&d, err, sizeof(err)) != 0) {
    log_error("%s", err);
    goto out;
  }

  d.events = events_create();
  if (d.events == NULL) {
    log_error("out of memory");
    goto out;
  }
  if (start_control(&d, err, sizeof(err)) != 0) {
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

  /* Slots come back before the server connects: their first workers get their state. */
  if (persist_state_dir(d.opt.state_dir, d.state_dir, sizeof(d.state_dir)) != 0) {
    log_error("the state directory path is too long");
    goto out;
  }
  rc = store_open(&d, err, sizeof(err));
  if (rc == -EBUSY) {
    log_error("%s", err);
    goto out;
  }
  if (rc != 0)
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

  connection_start(&d);

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
  connection_stop(&d);
  store_flush(&d, true);
  slots_shutdown(&d);
  store_close(&d);
  config_free(&d.config_reloaded);
  config_free(&d.config);
  json_decref(d.cli_set);
  /* A dying server's RT thread that never stopped may still hold the tables: leave them. */
  if (backend_rt_stopped(d.backend))
    engine_destroy(&d.engine);
  else
    log_warn("the %s client was not closed in time; its slot tables are left to the exit",
             backend_server_name(d.backend));
  backend_destroy(d.backend);
  catalog_free(&d.catalog);
  /*
   * Let the workers that got SIGTERM exit and be reaped (their kill timers
   * escalate to SIGKILL), then close whatever handle is left.
   */
  if (d.loop != NULL) {
    uv_timer_stop(&d.housekeeping);
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
