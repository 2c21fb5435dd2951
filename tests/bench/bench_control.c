/*
 * runway-bench-control: what the control plane costs and how fast a
 * parameter change is heard. One private JACK server (dummy driver), one
 * runwayd, one `gain` slot (1 in, 1 out, L = 2400 frames) fed by the
 * integration tests' probe (tests/integration/harness.c, built in).
 *
 *   (a) param_set_rtt: request -> response time of `param.set` over the
 *       socket (one connection, one request at a time), N times, interleaved
 *       with as many `status` requests, the baseline measured in the same run
 *       (STYLE.md guideline 12): median and p99 of each and their ratios.
 *   (b) param_audible: a constant level flows through the slot; after each of
 *       `changes` param.set requests the probe finds the first output sample
 *       that changed, F, and the bench reports F - L - t_send, t_send being
 *       the probe's frame time when the request went out: how long after
 *       sending a change the audio carries it, not counting the slot's fixed
 *       latency L. Expected: from about minus one period (the command was
 *       taken in the cycle that was starting as it was sent) to about one
 *       period plus the socket round trip.
 *
 * One JSON object per line on stdout; progress on stderr. Exit status 0 when
 * it ran (with --check: 1 when a target is missed), 1 when it could not run.
 *
 * usage: runway-bench-control [--quick] [--check] [--period FRAMES] [--n N] [--changes N]
 *   --quick     N = 200, 10 changes (a smoke run; figures not meaningful)
 *   --period    JACK period (default 128)
 *   --n         round trips of each kind for (a) (default 2000)
 *   --changes   parameter changes for (b) (default 50)
 * Targets (--check): (a) param.set's median at most TARGET_RATIO times
 * status's; (b) every change heard between -period and period + the slowest
 * round trip (in frames) + 1.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "harness.h"

#ifndef RUNWAY_BENCH_BUILD
#define RUNWAY_BENCH_BUILD "unknown"
#endif

#define RATE 48000
#define LAT 2400
#define RAMP (RATE / 100)
#define TARGET_RATIO 2.0

static FILE *json_out;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

struct stats {
  double median, p99, min, max;
};

static struct stats stats_of(double *v, size_t n) {
  struct stats s = {0, 0, 0, 0};
  if (n == 0)
    return s;
  qsort(v, n, sizeof(*v), cmp_double);
  s.min = v[0];
  s.max = v[n - 1];
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  size_t k = (size_t)ceil(0.99 * (double)n);
  s.p99 = v[k > 0 ? k - 1 : 0];
  return s;
}

/* Sends a prebuilt request line and waits for its answer; true when it says ok. */
static bool client_call(struct proto_client *c, const char *line, size_t len) {
  const char *answer;
  ssize_t n = proto_client_exchange(c, line, len, base_mono_ms() + 10000, &answer, NULL);
  if (n == -ETIMEDOUT)
    H_FAIL("runwayd did not answer within 10 s");
  if (n < 0)
    H_FAIL("talking to runwayd: %s", strerror((int)-n));
  return memmem(answer, (size_t)n, "\"ok\":true", 9) != NULL;
}

static size_t param_line(char *buf, size_t cap, unsigned id, double db) {
  return (size_t)snprintf(buf, cap,
                          "{\"id\":%u,\"cmd\":\"param.set\",\"args\":{\"name\":\"fx\",\"param\":"
                          "\"gain_db\",\"value\":%g}}\n",
                          id, db);
}

/* (a) */
static bool bench_rtt(struct proto_client *c, unsigned n, double *rtt_max_us) {
  double *ps = calloc(n, sizeof(double)), *st = calloc(n, sizeof(double));
  char line[256], status[64];
  unsigned busy = 0, id = 1;
  /* Warm-up: both paths, caches and the worker's event handling. */
  for (unsigned i = 0; i < 100; i++) {
    size_t len = param_line(line, sizeof(line), id++, i % 2 ? -6.0 : -5.0);
    client_call(c, line, len);
    len = (size_t)snprintf(status, sizeof(status), "{\"id\":%u,\"cmd\":\"status\"}\n", id++);
    client_call(c, status, len);
  }
  for (unsigned i = 0; i < n; i++) {
    size_t slen =
        (size_t)snprintf(status, sizeof(status), "{\"id\":%u,\"cmd\":\"status\"}\n", id++);
    uint64_t t0 = base_mono_ns();
    if (!client_call(c, status, slen))
      H_FAIL("status failed");
    uint64_t t1 = base_mono_ns();
    size_t len = param_line(line, sizeof(line), id++, i % 2 ? -6.0 : -5.0);
    uint64_t t2 = base_mono_ns();
    bool ok = client_call(c, line, len);
    uint64_t t3 = base_mono_ns();
    busy += !ok; /* the RT queue full for a moment: still a round trip */
    st[i] = (double)(t1 - t0) / 1000.0;
    ps[i] = (double)(t3 - t2) / 1000.0;
  }
  struct stats p = stats_of(ps, n), s = stats_of(st, n);
  *rtt_max_us = p.max > s.max ? p.max : s.max;
  double ratio = p.median / s.median, ratio99 = p.p99 / s.p99;
  bool pass = ratio <= TARGET_RATIO;
  fprintf(json_out,
          "{\"bench\":\"control\",\"measure\":\"param_set_rtt\",\"build\":\"%s\",\"n\":%u,"
          "\"unit\":\"us\",\"median\":%.2f,\"p99\":%.2f,\"min\":%.2f,\"max\":%.2f,"
          "\"baseline\":\"status\",\"baseline_median\":%.2f,\"baseline_p99\":%.2f,"
          "\"baseline_min\":%.2f,\"baseline_max\":%.2f,\"ratio_median\":%.3f,\"ratio_p99\":%.3f,"
          "\"busy\":%u,\"target_ratio_median\":%.1f,\"pass\":%s}\n",
          RUNWAY_BENCH_BUILD, n, p.median, p.p99, p.min, p.max, s.median, s.p99, s.min, s.max,
          ratio, ratio99, busy, TARGET_RATIO, pass ? "true" : "false");
  fflush(json_out);
  free(ps);
  free(st);
  return pass;
}

/* Waits until the output sits at `level` for 2 periods + a ramp. */
static void wait_steady(struct h_probe *p, uint32_t period, float level) {
  const uint32_t span = 2 * period + RAMP;
  float *buf = malloc(span * sizeof(float));
  uint64_t deadline = h_now_ms() + 10000;
  for (;;) {
    uint64_t now = h_probe_cycle(p);
    h_probe_wait_frame(p, now, 5000);
    h_probe_samples(p, 0, now - span, now, buf);
    bool steady = true;
    for (uint32_t k = 0; k < span && steady; k++)
      steady = buf[k] == level;
    if (steady)
      break;
    if (h_now_ms() > deadline)
      H_FAIL("the output never settled at %.9g", (double)level);
    h_sleep_ms(10);
  }
  free(buf);
}

/* (b) */
static bool bench_audible(struct proto_client *c, struct h_probe *p, uint32_t period,
                          unsigned changes, double rtt_max_us) {
  double *lag = calloc(changes, sizeof(double)), *answer = calloc(changes, sizeof(double));
  unsigned done = 0, disturbed = 0, id = 1000000;
  char line[256];
  float level = 1.0f;
  h_probe_dc(p, 0, 1.0f);
  /* The level from the last run of (a) may still be set: start from a known one. */
  client_call(c, line, param_line(line, sizeof(line), id++, 0.0));
  wait_steady(p, period, level);
  for (unsigned attempt = 0; done < changes; attempt++) {
    /* Alternates whatever happened: a change set aside has been applied all the same. */
    double db = attempt % 2 ? 0.0 : -6.0;
    float want = powf(10.0f, (float)db / 20.0f);
    uint64_t x0 = h_probe_xruns(p), g0 = h_probe_gaps(p);
    size_t len = param_line(line, sizeof(line), id++, db);
    uint64_t c_send = h_probe_cycle(p), t_send = h_probe_now(p);
    client_call(c, line, len);
    uint64_t t_resp = h_probe_now(p);
    /* The RT thread takes the change at a cycle start no earlier than c_send. */
    uint64_t from = c_send + LAT - period, to = t_resp + LAT + 3 * period;
    h_probe_wait_frame(p, to, 10000);
    float *y = malloc((size_t)(to - from) * sizeof(float));
    h_probe_samples(p, 0, from, to, y);
    size_t f = 0;
    while (f < to - from && y[f] == level)
      f++;
    free(y);
    level = want;
    /*
     * Set aside: a JACK xrun or a probe clock break (a cycle lost or repeated
     * between clients), no clean edge, or JACK's frame time estimate out of
     * step with the probe's own cycle clock (it can be off by cycles after an
     * xrun).
     */
    if (h_probe_xruns(p) != x0 || h_probe_gaps(p) != g0 || f == 0 || f == to - from ||
        t_send < c_send || t_send > c_send + 2 * period) {
      disturbed++;
      h_log("change %u set aside: xruns %llu -> %llu, gaps %llu -> %llu, edge at %zu of %llu, "
            "frame time %llu in the cycle of %llu",
            done, (unsigned long long)x0, (unsigned long long)h_probe_xruns(p),
            (unsigned long long)g0, (unsigned long long)h_probe_gaps(p), f,
            (unsigned long long)(to - from), (unsigned long long)t_send,
            (unsigned long long)c_send);
      if (disturbed > 4 * changes + 20) {
        /* A figure from the clean ones, if any, and a line that says so: not a failure. */
        h_log("too many disturbed measurements (%u); the machine is too busy to measure "
              "more than %u change(s)",
              disturbed, done);
        break;
      }
      wait_steady(p, period, level);
      continue;
    }
    lag[done] = (double)(int64_t)(from + f - LAT - t_send);
    answer[done] = (double)(t_resp - t_send);
    done++;
    wait_steady(p, period, level);
  }
  h_probe_dc(p, 0, 0.0f);
  struct stats s = stats_of(lag, done), a = stats_of(answer, done);
  double rtt_frames = ceil(rtt_max_us * RATE / 1e6);
  double lo = -(double)period, hi = (double)period + rtt_frames + 1;
  bool pass = done == changes && s.min >= lo && s.max <= hi;
  fprintf(json_out,
          "{\"bench\":\"control\",\"measure\":\"param_audible\",\"build\":\"%s\",\"n\":%u,"
          "\"rate\":%d,\"period\":%u,\"latency_frames\":%d,\"median_frames\":%.1f,"
          "\"p99_frames\":%.1f,\"min_frames\":%.1f,\"max_frames\":%.1f,\"median_ms\":%.3f,"
          "\"p99_ms\":%.3f,\"answer_median_frames\":%.1f,\"answer_max_frames\":%.1f,"
          "\"expected_min_frames\":%.0f,\"expected_max_frames\":%.0f,\"disturbed\":%u,"
          "\"pass\":%s}\n",
          RUNWAY_BENCH_BUILD, done, RATE, period, LAT, s.median, s.p99, s.min, s.max,
          s.median * 1000.0 / RATE, s.p99 * 1000.0 / RATE, a.median, a.max, lo, hi, disturbed,
          pass ? "true" : "false");
  fflush(json_out);
  free(lag);
  free(answer);
  return pass;
}

static void usage(FILE *f) {
  fprintf(f, "usage: runway-bench-control [--quick] [--check] [--period FRAMES] [--n N] "
             "[--changes N]\n");
}

int main(int argc, char **argv) {
  bool quick = false, check = false;
  unsigned long period = 128, n = 2000, changes = 50;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (strcmp(argv[i], "--check") == 0)
      check = true;
    else if (strcmp(argv[i], "--period") == 0 && i + 1 < argc)
      period = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
      n = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--changes") == 0 && i + 1 < argc)
      changes = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (period < 16 || period > 4096 || (period & (period - 1)) != 0 || n < 10 || changes < 2) {
    fprintf(stderr, "runway-bench-control: --period is a power of two in [16, 4096], --n at "
                    "least 10, --changes at least 2\n");
    return 2;
  }
  if (quick) {
    n = 200;
    changes = 10;
  }
  /* stdout carries the JSON lines only; the harness's progress goes to stderr. */
  int out = dup(1);
  if (out < 0 || (json_out = fdopen(out, "w")) == NULL || dup2(2, 1) < 0) {
    perror("runway-bench-control: stdout");
    return 1;
  }

  h_init("bench_control", 110);
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn conn;
  h_jack_start(&jack, RATE, (uint32_t)period);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&conn, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);
  json_t *s = h_add_slot(&conn, "fx",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "gain", "inputs", 1, "outputs",
                                   1, "latency_frames", LAT),
                         10000);
  json_t *ports = json_object_get(s, "ports");
  h_probe_path_latency(p, LAT);
  h_connect(p, h_probe_out(p, 0),
            json_string_value(json_array_get(json_object_get(ports, "inputs"), 0)));
  h_connect(p, json_string_value(json_array_get(json_object_get(ports, "outputs"), 0)),
            h_probe_in(p, 0));
  json_decref(s);
  h_conn_close(&conn);

  struct proto_client c;
  int rc = proto_client_connect(&c, d.socket, base_mono_ms() + 10000);
  if (rc != 0)
    H_FAIL("connect %s: %s", d.socket, strerror(-rc));
  double rtt_max_us = 0;
  bool pass = bench_rtt(&c, (unsigned)n, &rtt_max_us);
  pass &= bench_audible(&c, p, (uint32_t)period, (unsigned)changes, rtt_max_us);
  proto_client_close(&c);

  h_probe_close(p);
  h_daemon_stop(&d);
  h_jack_stop(&jack);
  fclose(json_out);
  if (check && !pass)
    h_error("a target was missed (--check)");
  h_pass();
}
