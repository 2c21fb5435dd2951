/*
 * The monotonic clock, in the units runway counts in. Header-only and RT
 * safe: clock_gettime(CLOCK_MONOTONIC) is served by the vDSO, with no
 * system call.
 */
#ifndef RUNWAY_BASE_CLOCK_H
#define RUNWAY_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t base_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t base_mono_us(void) { return base_mono_ns() / 1000u; }

static inline uint64_t base_mono_ms(void) { return base_mono_ns() / 1000000u; }

#endif
