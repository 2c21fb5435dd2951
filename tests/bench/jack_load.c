/*
 * runway-bench-jack-load: samples the JACK server's DSP load for a while and
 * prints one JSON line, for tests/bench/bench_dsp_load.sh.
 *
 * jack_cpu_load() is the share of the period, in percent, from the start of a
 * cycle to the end of the last client's process callback, which the server
 * averages over 32 cycles (about 85 ms at 128 frames and 48 kHz) and smooths
 * further; a sample every 100 ms is therefore close to independent of the
 * last. This client is opened and never activated, so it is not part of the
 * graph it measures.
 *
 * usage: runway-bench-jack-load [--config LABEL] [--seconds S] [--warmup S]
 *                               [--interval-ms MS]
 * Prints {"bench":"dsp_load","config":LABEL,"load_avg":..,"load_max":..,...}.
 * Exit status 0, 1 when the server is unreachable, 2 for a usage error.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jack/jack.h>

#define LOAD_MAX_SAMPLES 100000

static void load_usage(FILE *f) {
  fprintf(f, "usage: runway-bench-jack-load [--config LABEL] [--seconds S] [--warmup S]\n"
             "                              [--interval-ms MS]\n"
             "  Samples jack_cpu_load() of $JACK_DEFAULT_SERVER every MS ms (default 100)\n"
             "  for S seconds (default 5) after a warm-up (default 1 s) and prints the\n"
             "  average, maximum, minimum, median and standard deviation as one JSON line.\n");
}

static int load_cmp(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Advances the absolute CLOCK_MONOTONIC deadline *t by ns and sleeps until it. */
static void load_sleep_next(struct timespec *t, int64_t ns) {
  int64_t sum = (int64_t)t->tv_nsec + ns;
  t->tv_sec += (time_t)(sum / 1000000000);
  t->tv_nsec = (long)(sum % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR) {
  }
}

static int load_parse_seconds(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= 0) || v > 3600)
    return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  const char *config = "unnamed";
  double seconds = 5, warmup = 1;
  long interval_ms = 100;

  for (int i = 1; i < argc; i += 2) {
    const char *opt = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
      load_usage(stdout);
      return 0;
    }
    if (val == NULL) {
      fprintf(stderr, "runway-bench-jack-load: unknown option or missing value: %s\n", opt);
      load_usage(stderr);
      return 2;
    }
    if (strcmp(opt, "--config") == 0 && val[0] != '\0' && strpbrk(val, "\"\\") == NULL) {
      config = val;
    } else if (strcmp(opt, "--seconds") == 0 && load_parse_seconds(val, &seconds) == 0 &&
               seconds > 0) {
    } else if (strcmp(opt, "--warmup") == 0 && load_parse_seconds(val, &warmup) == 0) {
    } else if (strcmp(opt, "--interval-ms") == 0 && (interval_ms = strtol(val, NULL, 10)) >= 10 &&
               interval_ms <= 10000) {
    } else {
      fprintf(stderr, "runway-bench-jack-load: bad value for %s: \"%s\"\n", opt, val);
      load_usage(stderr);
      return 2;
    }
  }

  long n = (long)(seconds * 1000.0 / (double)interval_ms);
  if (n < 1)
    n = 1;
  if (n > LOAD_MAX_SAMPLES)
    n = LOAD_MAX_SAMPLES;
  double *v = malloc((size_t)n * sizeof(double));
  if (v == NULL) {
    fprintf(stderr, "runway-bench-jack-load: out of memory\n");
    return 1;
  }

  jack_status_t status = 0;
  jack_client_t *client = jack_client_open("runway-bench-load", JackNoStartServer, &status);
  if (client == NULL) {
    fprintf(stderr,
            "runway-bench-jack-load: cannot connect to the JACK server (status 0x%x); is jackd "
            "running (JACK_DEFAULT_SERVER)?\n",
            (unsigned)status);
    free(v);
    return 1;
  }

  /* Absolute deadlines, so the sampling does not drift with our own run time. */
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  load_sleep_next(&t, (int64_t)(warmup * 1e9));
  for (long i = 0; i < n; i++) {
    load_sleep_next(&t, (int64_t)interval_ms * 1000000);
    v[i] = jack_cpu_load(client);
  }

  double sum = 0, sq = 0, max = v[0], min = v[0];
  for (long i = 0; i < n; i++) {
    sum += v[i];
    max = v[i] > max ? v[i] : max;
    min = v[i] < min ? v[i] : min;
  }
  double avg = sum / (double)n;
  for (long i = 0; i < n; i++)
    sq += (v[i] - avg) * (v[i] - avg);
  qsort(v, (size_t)n, sizeof(double), load_cmp);
  double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;

  printf("{\"bench\":\"dsp_load\",\"config\":\"%s\",\"load_avg\":%.3f,\"load_max\":%.3f,"
         "\"load_min\":%.3f,\"load_median\":%.3f,\"load_stddev\":%.3f,\"samples\":%ld,"
         "\"seconds\":%.1f,\"sample_rate\":%u,\"period\":%u,\"server_realtime\":%s}\n",
         config, avg, max, min, median, sqrt(sq / (double)n), n, seconds,
         (unsigned)jack_get_sample_rate(client), (unsigned)jack_get_buffer_size(client),
         jack_is_realtime(client) ? "true" : "false");
  fflush(stdout);
  jack_client_close(client);
  free(v);
  return 0;
}
