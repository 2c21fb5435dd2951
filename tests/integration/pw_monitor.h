/*
 * PipeWire's own account of every graph cycle, from its profiler
 * (libpipewire-module-profiler, loaded by the test servers and by a desktop
 * PipeWire): which cycles did not finish in time, and how long the graph and
 * chosen nodes took.
 *
 * A cycle that did not finish (a node still triggered or running when the
 * driver began the next one) is where PipeWire's dummy driver, which starts
 * every cycle on time, lets data be lost or shifted between nodes; it tells
 * no client of it, so the tests learn it here, as they learn JACK's xruns
 * from jackd's log.
 *
 * Not thread safe: call from the test's main thread. The profiler's reports
 * arrive on the monitor's own thread.
 */
#ifndef RUNWAY_TESTS_PW_MONITOR_H
#define RUNWAY_TESTS_PW_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

struct pwm;

/* Connects to the server of PIPEWIRE_REMOTE and listens to its profiler; NULL when it cannot. */
struct pwm *pwm_open(void);
void pwm_close(struct pwm *m);

/* Reports arrived so far (the profiler sends them in batches, a few times a second). */
uint64_t pwm_cycles(struct pwm *m);

/*
 * Whether a cycle that did not finish, or finished late, began within
 * [from, to) of the graph clock (32 bits, as libjack's frame time: wraps).
 */
bool pwm_disturbed(struct pwm *m, uint32_t from, uint32_t to);
uint32_t pwm_incomplete(struct pwm *m);

struct pwm_load {
  uint64_t cycles;     /* reports in the window */
  uint64_t incomplete; /* of those, cycles that did not finish */
  double dsp_load;     /* mean of (graph run time / period), as PipeWire's own cpu_load */
  double nodes_us;     /* mean per cycle of the summed run time of the chosen nodes */
  uint32_t nodes;      /* the chosen nodes seen in the last report */
};

/*
 * Starts a window of measurement over nodes whose node.name starts with
 * prefix (NULL: none); pwm_load_take() ends it.
 */
void pwm_load_start(struct pwm *m, const char *prefix);
void pwm_load_take(struct pwm *m, struct pwm_load *out);

#endif
