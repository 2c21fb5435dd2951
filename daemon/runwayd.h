/*
 * The daemon's state, shared by the control-thread modules (slots, commands,
 * main). Control thread only, apart from `engine`, which the RT thread runs.
 */
#ifndef RUNWAY_DAEMON_RUNWAYD_H
#define RUNWAY_DAEMON_RUNWAYD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <uv.h>

#include "backend.h"
#include "clock.h"
#include "catalog.h"
#include "control.h"
#include "engine.h"
#include "events.h"
#include "log.h"
#include "supervisor.h"

struct slot;
struct lv2_query;

struct runwayd_options {
  const char *backend;    /* --backend: "jack", "auto" */
  const char *name;       /* client name in the graph */
  const char *socket_arg; /* --socket, or NULL */
  char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  const char *config_path;  /* --config */
  const char *state_dir;    /* --state-dir */
  const char *socket_group; /* may use the control socket besides root and our user */
  double latency_ms;        /* default write-ahead for new slots */
  enum log_level log_level;
  char worker_path[4096];  /* runway-worker */
  const char *worker_user; /* workers' user when runwayd runs as root, or NULL */
  const char *worker_env;  /* more environment names workers get, or NULL */
  /* Quotas: slots and locked segment memory per user of the socket group, and in total. */
  uint32_t max_slots_per_user;
  uint64_t max_memory_mb_per_user;
  uint64_t max_memory_mb;
  uint64_t stall_timeout_ms; /* no progress with input pending for this long: restart */
  bool user_instance;        /* not root: socket 0600 */
};

/* A parsed configuration file (config.c). */
struct config {
  json_t *daemon; /* [daemon] keys as given */
  json_t *slots;  /* [slot NAME] sections in file order */
};

/* The state directory's bookkeeping (store.c). */
struct runwayd_store {
  bool enabled; /* the directory exists and was usable */
  bool dirty;
  bool frozen; /* slots.json could not be read nor kept aside: never overwrite it */
  int lock_fd; /* flock on <state dir>/runwayd.lock: one daemon per directory */
  uint64_t last_try_ms;
  char error[1024];   /* the last write error, "" when the last write succeeded */
  char damaged[4300]; /* where an unreadable slots.json was kept aside, or "" */
  /*
   * Entries of slots.json that could not be restored (an unknown plugin),
   * kept as they were: [{"entry": {...}, "reason": "..."}]. status shows
   * them; slot.remove NAME drops one; a new slot of the same name replaces it.
   */
  json_t *orphans;
};

struct runwayd {
  uv_loop_t *loop;
  struct runwayd_options opt;
  char state_dir[PATH_MAX];
  json_t *cli_set;               /* option names given on the command line: they beat the file */
  struct config config;          /* as read at start; options point into it */
  struct config config_reloaded; /* the last one SIGHUP read */
  struct runwayd_store store;
  uv_timer_t state_timer; /* runs while state requests wait for workers */
  struct engine engine;
  struct backend *backend;
  struct control_server *control;
  struct events *events; /* subscribers of the event stream (`subscribe`) */
  struct catalog catalog;

  struct slot *slots[ENGINE_MAX_SLOTS]; /* in the RT table's order */
  uint32_t n_slots;
  struct supervisor_env supervise; /* what every slot's supervisor shares */
  char worker_home[PATH_MAX];
  char worker_env_text[1024];
  const char *worker_env[64];    /* NULL terminated */
  uv_timer_t reclaim_timer;      /* frees what the RT thread handed back */
  uv_timer_t replace_timer;      /* watches replacements and outgoing generations */
  struct lv2_query *lv2_queries; /* runway-worker describing LV2 plugins (slots/lv2.c) */
  uint64_t housekeeping_passes;

  uv_timer_t housekeeping;
  uv_timer_t reconnect;
  uint64_t reconnect_delay_ms;
  uv_signal_t sig_term;
  uv_signal_t sig_int;
  uv_signal_t sig_hup;
  uint64_t started_ms;
  bool stopping;
  int exit_status;
};

/* slots.json needs writing: the store writes it on its next flush (persist/store.c). */
static inline void store_mark_dirty(struct runwayd *d) { d->store.dirty = true; }

#endif
