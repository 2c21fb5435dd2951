#include "bench_stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bench_options(int argc, char **argv, const char *name, void (*usage)(FILE *f), bool *quick,
                  bool *check) {
  *quick = *check = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      *quick = true;
    } else if (strcmp(argv[i], "--check") == 0) {
      *check = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "%s: unknown option \"%s\"\n", name, argv[i]);
      usage(stderr);
      return 2;
    }
  }
  return -1;
}

uint64_t bench_calibrate_with(int64_t (*time_iters)(void *ctx, uint64_t iters), void *ctx,
                              int64_t min_ns) {
  uint64_t iters = 16;
  for (;;) {
    int64_t t = time_iters(ctx, iters);
    if (t >= min_ns)
      return iters;
    if (t < min_ns / 16)
      iters *= 16;
    else
      iters = (uint64_t)((double)iters * (double)min_ns / (double)t * 1.1) + 1;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_min(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    if (v[i] < m)
      m = v[i];
  return m;
}

double bench_median(const double *v, int n) {
  double tmp[BENCH_MAX_REPS];
  memcpy(tmp, v, (size_t)n * sizeof(double));
  qsort(tmp, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}
