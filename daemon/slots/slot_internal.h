/*
 * What the files of slots/ share among themselves (module__thing names).
 * Control thread only.
 */
#ifndef RUNWAY_DAEMON_SLOT_INTERNAL_H
#define RUNWAY_DAEMON_SLOT_INTERNAL_H

#include "slots.h"

#define SLOT_MAX_LATENCY_MS 2000.0
#define SLOT_MAX_LATENCY_FRAMES 192000
/* The SIGTERM-to-SIGKILL grace the worker SDK promises its users. */
#define SLOT_STOP_GRACE_MS RW_STOP_GRACE_MS

/* Sends an event to subscribers (takes fields). */
void slot__emit(struct slot *s, const char *type, json_t *fields);

/* True while the audio server is connected. */
static inline bool slot__backend_up(const struct runwayd *d) { return backend_is_open(d->backend); }

/* ---- generation.c ---- */

/* How a new generation is made. */
struct slot_gen_opts {
  uint32_t capacity;                /* its audio rings' frames; 0: the smallest */
  const struct param_table *params; /* values handed to its worker; NULL: the slot's */
  bool state;                       /* hand it the slot's last plugin state */
  enum slot_on_fault on_fault;      /* bypass: it shares the slot's bypass ring */
};

/* Makes a generation (not current, not published): one reference for the caller. */
int slot__generation_create(struct slot *s, const struct slot_gen_opts *o, struct engine_slot **out,
                            char *err, size_t errlen);

/*
 * Makes a new generation current (not yet published): a fresh segment whose
 * timeline starts at 0 in the cycle the RT thread adopts it.
 */
int slot__generation_new(struct slot *s, char *err, size_t errlen);
void slot__generation_drop(struct slot *s);
/* Adds a generation's counters to t. */
void slot__totals_add(struct slot_totals *t, const struct engine_slot *g);
/* Offers the RT thread every slot's current generation, in graph order. Never waits. */
void slot__publish(struct runwayd *d);

/* ---- slot.c ---- */

#define SLOT_ARGV_MAX 64

/* A managed worker's command line, with the storage its argv points into. */
struct slot_command {
  struct worker_command cmd;
  char *argv[SLOT_ARGV_MAX];
  char words[4096];
};

/* How a worker of kind runs plugin or exec (replace.c). */
void slot__worker_command(struct runwayd *d, enum slot_kind kind, const char *plugin,
                          const char *exec, struct slot_command *c);

/* Starts the worker of the current generation (spawned, or awaited for external slots). */
void slot__start_worker(struct slot *s);
/* A new generation and a new worker for it; the old worker gets grace_ms. */
int slot__replace_worker(struct slot *s, uint64_t grace_ms, char *err, size_t errlen);
void slot__unref(struct slot *s);

/* ---- replace.c ---- */

/*
 * Keeps g (referenced anew) in the RT table in the slot's place until its
 * output has run out under bypass, or a deadline; the table then takes the
 * current generation.
 */
void slot__keep_outgoing(struct slot *s, struct engine_slot *g);

/* The generation taking over from the current one (a replacement in progress), or NULL. */
struct engine_slot *slot__incoming(const struct slot *s);

/* The same, when it runs the same plugin (parameter changes go to both), or NULL. */
struct engine_slot *slot__incoming_same(const struct slot *s);

/* {"phase", "kind", "plugin"|"exec", "pid", "since_ms"} of a replacement in progress, or null. */
json_t *slot__replace_json(const struct slot *s);

/* A replacement in progress ends with why (the slot is removed, the server went away). */
void slot__replace_abort(struct slot *s, const char *why);

/* The new worker of a replacement exited (why: "worker exited with status 1"). */
void slot__replace_worker_failed(struct slot *s, const char *why);

/*
 * The old worker failed during a replacement: no restart now (the new one
 * takes over); but if the replacement fails, the slot restarts then.
 */
void slot__replace_defer_restart(struct slot *s);

/* ---- watch.c ---- */

/* The plugin name a worker declared in its info block (untrusted: kept only when printable). */
void slot__adopt_declared_name(struct slot *s, const struct rw_info *info);

/* The worker broke the rules: counted, reported, stopped, restarted after the backoff. */
void slot__fault(struct slot *s, const char *why);

/* ---- param_commands.c ---- */

/* Reads the parameters the worker declared in its info block. */
void slot__adopt_declared_params(struct slot *s, struct engine_slot *g);
/* The worker reported a value of its own (automation); garbage is ignored. */
void slot__param_from_worker(struct slot *s, uint32_t id, float value);
/* Hands a new generation every value of t as events at timeline time 0. */
void slot__push_param_table(const struct param_table *t, struct engine_slot *g);

#endif
