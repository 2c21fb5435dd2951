/*
 * The state directory: every slot's definition, parameter values and last
 * plugin state in <state dir>/slots.json, so a daemon restart brings the
 * slots back as they were. Changes mark the store dirty; the housekeeping
 * timer writes it (atomically, at most every 500 ms, retried every 5 s after
 * a failure, which is logged and reported by `status`). Control thread only.
 */
#ifndef RUNWAY_DAEMON_STORE_H
#define RUNWAY_DAEMON_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "runwayd.h"

/*
 * Prepares the directory (and presets/ in it) and locks it. A directory
 * another runwayd holds is -EBUSY (fatal: its file would be overwritten by
 * both); other failures are reported, not fatal: the daemon runs without
 * saving until the directory becomes usable.
 */
int store_open(struct runwayd *d, char *err, size_t errlen);

/*
 * Recreates the slots recorded in slots.json (before the audio server is
 * connected, so their first workers start with their parameters and state).
 * Entries that cannot be restored are kept in the file. A slots.json that
 * cannot be read is never overwritten: it is renamed aside
 * (slots.json.damaged-TIME), reported in the log and in status, and the
 * previous generation (slots.json.prev) is restored instead when it reads;
 * when it cannot even be renamed, nothing is saved. 0 or -errno.
 */
int store_load(struct runwayd *d, char *err, size_t errlen);

/* Drops the unrestorable entry of slot `name`: true when there was one. */
bool store_forget_orphan(struct runwayd *d, const char *name);

/* Writes slots.json if dirty and due (or now, when force). 0 or -errno. */
int store_flush(struct runwayd *d, bool force);

/* {"dir","saved","error","damaged","unrestored"} for status. */
json_t *store_status_json(const struct runwayd *d);

void store_close(struct runwayd *d);

#endif
