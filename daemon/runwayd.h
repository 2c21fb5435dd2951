/*
 * The daemon's state, shared by the control-thread modules (slots, commands,
 * main). Control thread only, apart from `engine`, which the RT thread runs.
 */
#ifndef RUNWAY_DAEMON_RUNWAYD_H
#define RUNWAY_DAEMON_RUNWAYD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <uv.h>

#include "backend.h"
#include "catalog.h"
#include "control.h"
#include "engine.h"
#include "log.h"

#define RUNWAYD_VERSION "0.1.0"

struct slot;

struct runwayd_options {
  const char *backend;     /* "jack" */
  const char *name;        /* JACK client name */
  char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *config_path; /* --config */
  const char *state_dir;   /* --state-dir */
  double latency_ms;       /* default write-ahead for new slots */
  enum log_level log_level;
  char worker_path[4096];      /* runway-worker */
  uint64_t stall_timeout_ms;   /* no progress with input pending for this long: restart */
  bool user_instance;          /* not root: socket 0600 */
};

struct runwayd {
  uv_loop_t *loop;
  struct runwayd_options opt;
  struct engine engine;
  struct backend *backend;
  struct control_server *control;
  struct catalog catalog;

  struct slot *slots[ENGINE_MAX_SLOTS];
  uint32_t n_slots;

  uv_timer_t housekeeping;
  uv_timer_t reconnect;
  uint64_t reconnect_delay_ms;
  uint64_t housekeeping_ticks;
  uv_signal_t sig_term;
  uv_signal_t sig_int;
  uv_signal_t sig_hup;
  uint64_t started_ms;
  bool stopping;
  int exit_status;
};

/* Monotonic milliseconds. */
uint64_t runwayd_now_ms(void);

#endif
