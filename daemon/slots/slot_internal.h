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
static inline bool slot__backend_up(const struct runwayd *d) {
  return backend_is_open(d->backend);
}

/* ---- generation.c ---- */

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

/* Starts the worker of the current generation (spawned, or awaited for external slots). */
void slot__start_worker(struct slot *s);
/* A new generation and a new worker for it; the old worker gets grace_ms. */
int slot__replace_worker(struct slot *s, uint64_t grace_ms, char *err, size_t errlen);
void slot__unref(struct slot *s);

/* ---- watch.c ---- */

/* The worker broke the rules: counted, reported, stopped, restarted after the backoff. */
void slot__fault(struct slot *s, const char *why);

/* ---- param_commands.c ---- */

/* Reads the parameters the worker declared in its info block. */
void slot__adopt_declared_params(struct slot *s, struct engine_slot *g);
/* The worker reported a value of its own (automation); garbage is ignored. */
void slot__param_from_worker(struct slot *s, uint32_t id, float value);
/* Hands a new generation every parameter value as events at timeline time 0. */
void slot__push_params(struct slot *s, struct engine_slot *g);

#endif
