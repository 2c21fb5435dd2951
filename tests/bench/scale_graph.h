/*
 * The JACK side of runway-bench-scale: a monitor client that is never
 * activated (so it is not part of the graph it measures) and samples the
 * server's DSP load and makes connections; the plain reference
 * clients (runway-bench-jack-passthrough, one process each); and the wiring
 * of N stereo units, chained or in parallel, between system:capture and
 * system:playback.
 */
#ifndef RUNWAY_BENCH_SCALE_GRAPH_H
#define RUNWAY_BENCH_SCALE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jack/jack.h>

#include "harness.h"

#define GRAPH_CHANNELS 2
#define GRAPH_MAX_UNITS 256

enum graph_topology { GRAPH_CHAINED = 0, GRAPH_PARALLEL = 1 };

const char *graph_topology_name(enum graph_topology t);

struct graph {
  jack_client_t *mon;
  uint32_t rate;
  uint32_t period;
};

/* Opens the monitor client on j's server; fails the run when it cannot. */
void graph_open(struct graph *g, const struct h_jack *j);
void graph_close(struct graph *g);

/* The server's DSP load now, in percent of the period. */
double graph_dsp_load(struct graph *g);
/* The server's frame counter now (estimated between cycles). */
uint32_t graph_frames(struct graph *g);
bool graph_has_port(struct graph *g, const char *name);

/*
 * The full name of unit i's (from 0) input or output port of channel ch
 * (from 0) into buf.
 */
typedef void (*graph_port_fn)(const void *ctx, unsigned i, unsigned ch, bool output, char *buf,
                              size_t len);

/*
 * Chained: system:capture_c -> unit 0 -> unit 1 ... -> system:playback_c.
 * Parallel: system:capture_c -> every unit -> system:playback_c (JACK mixes).
 */
void graph_wire(struct graph *g, graph_port_fn port, const void *ctx, unsigned n,
                enum graph_topology t);
/* Removes every connection of the n units' ports. */
void graph_unwire(struct graph *g, graph_port_fn port, const void *ctx, unsigned n);

/* ---- plain reference clients --------------------------------------------------- */

struct plain_clients {
  const char *exe; /* runway-bench-jack-passthrough */
  struct h_proc procs[GRAPH_MAX_UNITS];
  unsigned n;
};

/* Client i's ports (ctx: the struct plain_clients). */
void plain_port(const void *ctx, unsigned i, unsigned ch, bool output, char *buf, size_t len);

/*
 * Starts clients until n run, one at a time, each once the last one's ports
 * appeared. Returns how many run: fewer than n when the server refused one
 * or it did not appear within 10 s (the server cannot carry more).
 */
unsigned plain_grow(struct graph *g, struct plain_clients *p, unsigned n);

/* Stops the clients one by one (SIGTERM), each until its ports are gone. */
void plain_stop(struct graph *g, struct plain_clients *p);

#endif
