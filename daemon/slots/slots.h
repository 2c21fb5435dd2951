/*
 * Slots: the daemon's model of what it hosts, and each slot's life.
 *
 * A slot has a name, ports that live as long as it does (while the server is
 * connected), a latency L fixed for its life, a supervisor that keeps its
 * worker running (supervise/), and a current generation: an engine slot over
 * a fresh segment. Every worker (re)start gets a new generation, so a crashed
 * or hostile worker's leftovers never reach the next one; the RT thread
 * switches generations at a cycle boundary through the state ping-pong, and
 * the new timeline keeps the exact alignment (output at p is the answer to
 * input at p - L).
 *
 * The files of this folder: slot.c (records and life), generation.c
 * (segments, the RT table), watch.c (housekeeping: faults, stalls, worker
 * messages), param_commands.c (parameter values and commands), views.c (JSON
 * views and definitions), slot_state.c (plugin state), params.c (parameter
 * tables), catalog.c (built-in plugins).
 *
 * Control thread only.
 */
#ifndef RUNWAY_DAEMON_SLOTS_H
#define RUNWAY_DAEMON_SLOTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "params.h"
#include "protocol.h"
#include "runwayd.h"
#include "supervisor.h"

enum slot_kind { SLOT_PLUGIN, SLOT_EXEC, SLOT_EXTERNAL, SLOT_LV2 };

/* "plugin", "exec", "external", "lv2": the names in the protocol and the files. */
const char *slot_kind_name(enum slot_kind kind);
/* 0, or -EINVAL for an unknown name. */
int slot_kind_parse(const char *name, enum slot_kind *kind);

/*
 * What a slot plays while no worker can (dead, restarting, stalled, faulted,
 * not started yet): silence, or its own input exactly L later (bypass, from
 * a copy of the input the RT thread keeps; input channel k goes to output k,
 * outputs beyond the inputs are silent).
 */
enum slot_on_fault { SLOT_ON_FAULT_SILENCE, SLOT_ON_FAULT_BYPASS };

/* "silence", "bypass". */
const char *slot_on_fault_name(enum slot_on_fault mode);
/* 0, or -EINVAL for an unknown name. */
int slot_on_fault_parse(const char *name, enum slot_on_fault *mode);

/* Counters carried over from generations that are gone. */
struct slot_totals {
  uint64_t cycles;
  uint64_t underruns;
  uint64_t underrun_frames;
  uint64_t overruns;
  uint64_t nonfinite_samples;
  uint64_t events_dropped;
  uint64_t wakeups;
  uint64_t faults;
  uint64_t skipped_frames;
  uint64_t discontinuities;
  int64_t headroom_min_frames; /* INT64_MAX: none */
  uint64_t bypass_frames;
  uint64_t no_worker_frames;
  uint64_t lead_histogram[ENGINE_LEAD_BUCKETS];
};

struct slot_replace;

struct slot {
  struct runwayd *d;
  int refs; /* the table's, plus one per live generation */
  bool removed;

  char name[PROTO_SLOT_NAME_MAX + 1];
  enum slot_kind kind;
  char *plugin;          /* built-in plugin name, an LV2 plugin's URI (SLOT_LV2), or NULL */
  char *declared_plugin; /* the name the worker declared in its segment, or NULL */
  char *exec;            /* command line for SLOT_EXEC, or NULL */
  uint32_t n_in;
  uint32_t n_out;
  bool midi;
  enum slot_on_fault on_fault;
  uid_t owner;             /* who added it (quotas) */
  bool privileged;         /* added by root, the daemon's user or its files: no per-user quota */
  uint64_t segment_bytes;  /* locked memory of its segment (quotas) */
  double latency_ms;       /* > 0 when L was given in ms (kept in time across rate changes) */
  uint32_t latency_frames; /* > 0 when L was given in frames */
  uint32_t latency;        /* L in effect, frames */
  /*
   * The plugin's own latency as its worker reports it (an LV2 plugin's
   * latency port): the ports report L + this. Kept across worker restarts.
   */
  uint32_t plugin_latency;
  bool plugin_latency_refused; /* the worker reported nonsense once (logged once) */

  struct backend_slot *ports; /* NULL while the server is away */

  struct engine_slot *gen;
  uint64_t generation;
  bool gen_used;      /* a worker has been given the current generation */
  bool gen_published; /* the current generation is (or was) in the RT table */
  /*
   * With bypass: the generation before the current one, still in the RT
   * table in its place until its worker's output has run out (and bypass
   * plays alone), so that the new one comes in under bypass.
   */
  struct engine_slot *outgoing;
  uint64_t outgoing_deadline_ms;
  struct engine_bypass *bypass; /* the slot's own input ring (on_fault bypass), or NULL */
  /* A seamless replacement in progress (replace.c), or NULL. */
  struct slot_replace *replacing;

  struct supervisor sv;

  struct slot_totals base;
  uint64_t underruns_reported;   /* the count the last "underrun" event carried */
  float meters[RW_MAX_CHANNELS]; /* the worker's last peak per output (NAN: none) */

  /* Parameters: declared by the catalog or by the worker, values kept here. */
  struct param_table params;
  bool params_from_worker;
  json_t *pending_params; /* {"name": value} for parameters not declared yet */

  /* The last plugin state saved or loaded, handed to every new worker. */
  unsigned char *state_blob;
  size_t state_len;
  struct slot_state_request *state_req; /* a save or load waiting for the worker */

  /* Declared in the configuration file (kept in sync on SIGHUP). */
  bool from_config;
  json_t *config_def;
};

/* What slot.add, the configuration file and slots.json ask for. */
struct slot_spec {
  const char *name;
  enum slot_kind kind;
  const char *plugin; /* built-in plugin name, or an LV2 plugin's URI (SLOT_LV2) */
  const char *exec;
  int64_t inputs;    /* -1: the plugin's (2 for exec and external; SLOT_LV2 needs them given) */
  int64_t outputs;   /* -1: the plugin's */
  int midi;          /* -1: the plugin's; 0 or 1 */
  double latency_ms; /* 0: not given */
  int64_t latency_frames; /* 0: not given */
  enum slot_on_fault on_fault;
  /*
   * The asker is root, the daemon's own user, the configuration file or
   * slots.json: it may start programs (SLOT_EXEC), and only the daemon's
   * totals limit it. Members of the socket group are not.
   */
  bool privileged;
  uid_t owner; /* who asked: per-user quotas count the slot against this uid */
};

/*
 * Reads a slot definition as slots.json and the configuration keep it
 * ({"name", "kind", "plugin" | "lv2" | "exec", "inputs", "outputs", "midi",
 * "latency_ms", "latency_frames", "on_fault"}). The strings point into def. 0 or -EINVAL
 * with a message.
 */
int slot_spec_from_json(const json_t *def, struct slot_spec *spec, char *err, size_t errlen);

/*
 * The supervisors' shared settings, from the daemon's options: who workers
 * run as, what environment they get. 0 or -errno with a message.
 */
int slots_init(struct runwayd *d, char *err, size_t errlen);

/*
 * Adds a slot. With the server connected it gets ports, a segment and a
 * worker at once; without, it waits in state "stopped" until it connects.
 * An LV2 slot's channel counts and MIDI must be given (lv2_fill_spec asks
 * the plugin). Returns 0, or a proto error code with a message.
 */
enum proto_err slots_add(struct runwayd *d, const struct slot_spec *spec, struct slot **out,
                         char *err, size_t errlen);

/* Stops the worker; the ports go once the RT thread let go of them. */
void slots_remove(struct runwayd *d, struct slot *s);

/* Replaces the worker at once (a new generation). */
enum proto_err slots_restart(struct runwayd *d, struct slot *s, char *err, size_t errlen);

/* What slot.replace and slot.restart --seamless ask for. */
struct slot_replace_spec {
  enum slot_kind kind; /* SLOT_PLUGIN, SLOT_LV2 (plugin is the URI) or SLOT_EXEC */
  const char *plugin;
  const char *exec;
  int on_fault;        /* enum slot_on_fault, or -1: as the slot has it */
  double crossfade_ms; /* -1: the default (20 ms) */
  bool restart;        /* slot restart --seamless: the same worker again */
  bool privileged;     /* the asker may start programs (SLOT_EXEC) */
};

/*
 * Starts a seamless replacement of the slot's worker (replace.c): returns
 * PROTO_OK when it is under way, and then answers id on conn (held until
 * then, or already held when held is true; conn may be NULL) when it is
 * over, with the slot and where it switched, or with why the new worker
 * failed (the old one plays on). Otherwise a proto error code with a
 * message, and nothing changed (a held conn is still the caller's).
 */
enum proto_err slots_replace(struct runwayd *d, struct slot *s,
                             const struct slot_replace_spec *spec, struct control_conn *conn,
                             bool held, json_t *id, char *err, size_t errlen);

struct slot *slots_find(struct runwayd *d, const char *name);

/* The plugin's name as users know it: the built-in one asked for, else the worker's own. */
static inline const char *slot_plugin_name(const struct slot *s) {
  return s->plugin != NULL ? s->plugin : s->declared_plugin;
}

static inline bool slot_running(const struct slot *s) {
  return s->gen != NULL && s->sv.state == WORKER_RUNNING;
}

/*
 * Hands the slot's segment to an attaching external worker on conn (answers
 * the request itself, fd attached). Returns PROTO_OK when it replied.
 */
enum proto_err slots_attach(struct runwayd *d, struct slot *s, struct control_conn *conn,
                            json_t *id, char *err, size_t errlen);

json_t *slot_to_json(const struct slot *s);
json_t *slot_stats_json(const struct slot *s);

/*
 * slot.advise (advise.c): the smallest lead the worker had, the smallest L
 * that would have had no underrun over the time observed, a suggestion with
 * a margin, and the advice in words.
 */
json_t *slot_advice_json(const struct slot *s);

/* Definition of a slot as the state directory and the configuration see it. */
json_t *slot_definition_json(const struct slot *s);

/*
 * Periodic checks: faults, attachment, stalls, the worker's messages,
 * reclaiming tables; deep: the whole segment header too.
 */
void slots_housekeeping(struct runwayd *d, uint64_t now_ms, bool deep);

/* The server connected: ports, generations and workers for every slot. */
void slots_backend_up(struct runwayd *d);
/* The server went away (the backend is closed): workers stop, slots wait. */
void slots_backend_down(struct runwayd *d);
/* The period or rate changed: every slot gets a new generation and worker. */
void slots_rebuild_all(struct runwayd *d, const char *why);
/* An abandoned connection's RT thread is gone (BACKEND_EV_CLOSED): the old tables go. */
void slots_rt_stopped(struct runwayd *d);
/* Connections changed: the RT table follows the graph's order (backend_order). */
void slots_reorder(struct runwayd *d);

/* Stops every worker and frees every slot. The backend must be closed. */
void slots_shutdown(struct runwayd *d);

/* ---- parameters (param_commands.c) ------------------------------------------ */

/* Parameter commands; they answer with a complete response (ok or error). */
json_t *slots_param_list(struct slot *s, json_t *id);
json_t *slots_param_get(struct slot *s, json_t *id, const json_t *key);
json_t *slots_param_set(struct slot *s, json_t *id, const json_t *key, double value);

/* Sets values from {"name": value}; unknown names wait until the worker declares them. */
void slots_set_param_values(struct slot *s, const json_t *values);

/*
 * Sends every parameter value to the worker again: after it loaded a state,
 * whose copy of the parameters may be older, the daemon's values win.
 */
void slots_resend_params(struct slot *s);

/* {"name": value} of every known and pending parameter. */
json_t *slots_param_values(const struct slot *s);

#endif
