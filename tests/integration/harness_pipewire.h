/*
 * Between harness.c and harness_pipewire.c: the PipeWire server a test runs
 * on when RWT_BACKEND=pipewire (see harness_pipewire.c).
 */
#ifndef RUNWAY_TESTS_HARNESS_PIPEWIRE_H
#define RUNWAY_TESTS_HARNESS_PIPEWIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

/* Starts `pipewire` on a config of its own, socket <test dir>/<name>; waits until it listens. */
void h__pw_server_start(struct h_jack *j, const char *name, uint32_t rate, uint32_t period);

/* Whether a graph cycle that began in [from, to) did not finish in time (PipeWire's profiler). */
bool h__pw_disturbed(uint32_t from, uint32_t to);

/* Fails the test when the probe's libjack is not PipeWire's (RWT_BACKEND=pipewire only). */
void h__pw_check_libjack(void);

#endif
