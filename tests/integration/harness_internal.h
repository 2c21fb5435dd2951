/*
 * What the harness's own files share and tests do not see: the registry of
 * child processes and their logs, the probes to close when a test ends, and
 * the names of JACK clients and servers. h__ names are internal (STYLE.md).
 */
#ifndef RUNWAY_TESTS_HARNESS_INTERNAL_H
#define RUNWAY_TESTS_HARNESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jack/jack.h>

#include "harness.h"

/* ---- harness_life.c ------------------------------------------------------------- */

/* Keeps a child's log for the dump when the test fails (idempotent). */
void h__remember_log(const char *title, const char *path);

/* Async-signal-safe: the tail of every remembered log to stderr. */
void h__dump_logs(void);

/* ---- harness_proc.c -------------------------------------------------------------- */

/*
 * Like h_spawn; a graceful child (jackd) is stopped with SIGTERM first even
 * when the test fails, and dies with SIGTERM when the test process does.
 */
void h__spawn(struct h_proc *p, const char *what, const char *const *argv, const char *const *set,
              const char *const *unset, const char *log, bool graceful);

/* Stops every registered child still running, newest first (h_pass). */
void h__stop_all(void);

/*
 * Async-signal-safe: SIGKILL to every registered child, newest first, except
 * the graceful ones, which get SIGTERM and up to 3 s to exit first.
 */
void h__kill_all_raw(void);

/* ---- harness_jack.c ------------------------------------------------------------ */

/* A name unique to this test process: rw<kind>-<tag>-<pid>-<n>. */
void h__unique_name(char *buf, size_t len, const char *kind);

/* jack_client_open on a named server, never starting one, with exactly this name. */
jack_client_t *h__open_client(const char *server, const char *name, jack_status_t *st);

/* libjack's error messages: to stderr, or nowhere while probing for a server. */
void h__jack_errors(bool quiet);

/* ---- harness_probe.c ------------------------------------------------------------- */

/* Closes every probe still open (h_pass). */
void h__close_probes(void);

enum { H__EV_AUDIO = 1, H__EV_MIDI = 2 };

/* Event id's kind, port, frame and value (false when there is no such event). */
bool h__probe_event(const struct h_probe *p, uint32_t id, unsigned *kind, unsigned *port,
                    uint64_t *frame, float *value);

/*
 * Whether output frame `frame` (of a path of latency `delay`) lies near a
 * disturbance of the graph: a run of the probe that JACK started late or
 * skipped, or an xrun JACK reported.
 */
bool h__probe_disturbed(const struct h_probe *p, uint64_t frame, uint32_t delay);

/* ---- harness_watch.c ------------------------------------------------------------- */

/* Stops the watcher of p's runwayd, if any (h_probe_close). */
void h__watch_stop(const struct h_probe *p);

/* Whether output frame `frame` was in flight (up to `longest` later) when runwayd skipped. */
bool h__watch_disturbed(const struct h_probe *p, uint64_t frame, uint64_t longest);

/* Prints the disturbances the probe saw, under label (a failed check's diagnosis). */
void h__probe_explain(const struct h_probe *p, const char *label);

#endif
