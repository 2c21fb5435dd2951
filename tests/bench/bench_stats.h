/*
 * What the benchmarks share: a monotonic clock, a compiler barrier, the
 * calibration loop and the statistics over repetitions.
 */
#ifndef RUNWAY_BENCH_STATS_H
#define RUNWAY_BENCH_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_REPS 15

/* Keeps the compiler from dropping or merging copies across cycles. */
static inline void bench_clobber(void) { __asm__ volatile("" ::: "memory"); }

int64_t bench_now_ns(void);

/*
 * The options of the in-process benchmarks: --quick, --check, --help.
 * Returns -1 to go on, or the exit status (0 after --help, 2 on anything else).
 */
int bench_options(int argc, char **argv, const char *name, void (*usage)(FILE *f), bool *quick,
                  bool *check);

/*
 * Finds an iteration count for which time_iters(ctx, iters) takes at least
 * min_ns (and warms up on the way).
 */
uint64_t bench_calibrate_with(int64_t (*time_iters)(void *ctx, uint64_t iters), void *ctx,
                              int64_t min_ns);

double bench_min(const double *v, int n);
double bench_median(const double *v, int n); /* n <= BENCH_MAX_REPS */

#endif
