/*
 * A measuring client of PipeWire's own: two pw_filter nodes in the test
 * process, a source with one output and a sink with one input, on one
 * pw_context and thread loop. The source plays impulses scheduled at
 * absolute frames of the graph clock (clock.position); the sink records
 * every non-zero sample at its absolute frame. Two nodes, so a path
 * source -> slot -> sink is an ordinary chain of the graph: each runs after
 * the one before it in the same cycle, and a slot with latency L delays by
 * exactly L.
 *
 * Both nodes note the cycles in which the graph clock did not move as their
 * own count says (the node ran late: the clock moved on during its run, or
 * it jumped since its last run). PipeWire's dummy driver starts the next
 * cycle on time even when the last one has not finished and tells no client;
 * such cycles are where data can be lost or shifted between any two nodes,
 * and the test excuses impulses near them (counting them).
 *
 * Not thread safe: call from the test's main thread.
 */
#ifndef RUNWAY_TESTS_PW_PROBE_H
#define RUNWAY_TESTS_PW_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pwp;

struct pwp_record {
  uint64_t frame;
  float value;
};

/*
 * Opens the probe on the server of PIPEWIRE_REMOTE (nodes "<name>.src" and
 * "<name>.snk"); the source reports capture latency src_latency, the sink
 * playback latency sink_latency. Fails the test when it cannot.
 */
struct pwp *pwp_open(const char *name, uint32_t src_latency, uint32_t sink_latency);
void pwp_close(struct pwp *p);

/* "<name>.src:out" and "<name>.snk:in", as pw-link takes them. */
const char *pwp_source_port(const struct pwp *p);
const char *pwp_sink_port(const struct pwp *p);

/* The start of the source's latest cycle and its length (0 before the first). */
uint64_t pwp_position(const struct pwp *p);
uint32_t pwp_period(const struct pwp *p);
/* The first frame the sink has not seen yet. */
uint64_t pwp_sink_end(const struct pwp *p);

/* Schedules an impulse (frames nondecreasing); returns its id. */
uint32_t pwp_impulse(struct pwp *p, uint64_t frame, float value);
/* 1: played at its frame, 2: its frame had passed, 0: not yet. */
int pwp_status(const struct pwp *p, uint32_t id);
/* The impulse as scheduled: its frame and value. */
const struct pwp_record *pwp_event(const struct pwp *p, uint32_t id);

/* Records so far (valid until pwp_close). */
size_t pwp_records(const struct pwp *p, const struct pwp_record **recs);

/* Whether either node noted a late cycle starting in [from, to); and how many in all. */
bool pwp_disturbed(const struct pwp *p, uint64_t from, uint64_t to);
uint32_t pwp_disturbances(const struct pwp *p);

/*
 * The capture latency PipeWire's propagation gave the sink's input (frames
 * at the current period), or false when none arrived yet.
 */
bool pwp_sink_capture_latency(struct pwp *p, uint32_t *min, uint32_t *max);

#endif
