/*
 * runway-bench-scale: what one runwayd carries, next to plain JACK clients
 * doing the same work on the same server in the same run (STYLE.md
 * guideline 12).
 *
 * One run starts a private `jackd -d dummy` (48 kHz, 128 frames unless told)
 * and, with --table (the default):
 *   1. "idle": the server alone;
 *   2. "plain": N runway-bench-jack-passthrough clients (two channels each),
 *      chained (capture -> c1 -> ... -> cN -> playback) and in parallel
 *      (capture -> every client -> playback), for each N of --slots as far as
 *      the server carries them;
 *   3. "idle" again, once they are gone;
 *   4. "runwayd": one runwayd with N stereo passthrough slots, wired the same
 *      two ways, for each N.
 * Each configuration settles for --warmup seconds, then is measured for
 * --seconds: the server's DSP load (jack_cpu_load every 100 ms), its xruns
 * as jackd's log tells them (clients not finished when the next cycle was
 * due, those of runwayd's own callback still running, and the driver's timer
 * running late),
 * CPU time of every process involved (schedstat, ns), the machine's busy
 * share; for runwayd also its RT callback's wall time per cycle (average, and
 * p99 and maximum from its cycle histogram), its RT thread's CPU time per
 * cycle, underruns, FUTEX_WAKEs, the CPU of its other threads and of its
 * workers, and memory (resident, proportional, locked; per daemon, per slot,
 * per worker). Each "runwayd" line carries the ratios to the "plain" line of
 * the same N and topology and the idle server's xruns.
 *
 * --search finds the smallest L (in frames, a multiple of --search-step) at
 * which N chained slots play --search-seconds without an underrun, by
 * bisection between one period and --search-max, for each N of
 * --search-slots. --check-latency N:L,... plays N chained slots at L frames
 * for --search-seconds and counts underruns.
 *
 * One JSON object per line on stdout ("bench":"scale", "kind" idle, plain,
 * runwayd, min_latency, latency_probe, env); progress on stderr.
 * tests/bench/scale_table.py turns the lines of several runs into README's
 * table (medians, spread, goals). Nothing here asserts a timing.
 *
 * usage: runway-bench-scale [--quick] [--table] [--search] [--check-latency N:L,...]
 *          [--slots 1,8,32,64,128] [--topology chained,parallel] [--seconds S]
 *          [--warmup S] [--max-clients N] [--latency-ms X] [--period FRAMES]
 *          [--search-slots 1,4,16] [--search-seconds S] [--search-step F]
 *          [--search-max F] [--run N]
 * Exit status 0 when it ran, 1 when it could not, 2 for a usage error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "scale_graph.h"
#include "scale_options.h"
#include "scale_sys.h"

#ifndef RUNWAY_BENCH_BUILD
#define RUNWAY_BENCH_BUILD "unknown"
#endif

#define RATE 48000

static struct scale_options O;

/* ---- output -------------------------------------------------------------------------- */

static FILE *json_out;

/* Prints obj as one line, with bench, kind and run first; steals obj. */
static void emit(const char *kind, json_t *obj) {
  json_t *line =
      json_pack("{s:s, s:s, s:I}", "bench", "scale", "kind", kind, "run", (json_int_t)O.run);
  json_object_update(line, obj);
  json_decref(obj);
  char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
  fprintf(json_out, "%s\n", text);
  fflush(json_out);
  free(text);
  json_decref(line);
}

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* ---- what a window measures ---------------------------------------------------------- */

#define MAX_PIDS (GRAPH_MAX_UNITS + 4)

/* What is measured: processes, and runwayd when there is one. */
struct target {
  pid_t pids[MAX_PIDS]; /* plain clients, or runwayd alone */
  unsigned n_pids;
  pid_t workers[GRAPH_MAX_UNITS];
  unsigned n_workers;
  pid_t rt_pid, rt_tid;      /* runwayd's RT thread */
  struct h_conn *conn;       /* runwayd's control connection, or NULL */
  const char *daemon_client; /* runwayd's JACK client name (for jackd's log) */
};

struct snapshot {
  int64_t cpu_ns, workers_ns, rt_ns, jackd_ns;
  uint32_t frames;
  size_t log_at;
  struct sys_busy busy;
  uint64_t t_ms;
  json_t *stats; /* runwayd's, or NULL */
};

struct result {
  double seconds, cycles;
  double load_avg, load_max;
  uint64_t xruns;
  struct h_xruns log;
  double busy, loadavg;
  double cpu_pct, workers_pct, rt_pct, jackd_pct; /* of one core */
  double client_cpu_ns_per_cycle;                 /* cpu of all pids per graph cycle */
  double rt_cpu_ns_per_cycle;
  /* runwayd */
  double rw_cycles, wall_avg, wall_p99, wall_max;
  double underruns, underrun_frames, wakeups_per_cycle;
};

static int64_t cpu_of(const pid_t *pids, unsigned n) {
  int64_t sum = 0;
  for (unsigned i = 0; i < n; i++) {
    int64_t ns = sys_process_cpu_ns(pids[i]);
    if (ns > 0)
      sum += ns;
  }
  return sum;
}

static struct h_jack jack;

static void take(const struct target *t, struct graph *g, struct snapshot *s) {
  s->t_ms = h_now_ms();
  s->frames = graph_frames(g);
  s->log_at = h_file_size(jack.proc.log);
  sys_machine_busy(&s->busy);
  s->jackd_ns = sys_process_cpu_ns(jack.proc.pid);
  s->cpu_ns = cpu_of(t->pids, t->n_pids);
  s->workers_ns = cpu_of(t->workers, t->n_workers);
  s->rt_ns = t->rt_tid > 0 ? sys_thread_cpu_ns(t->rt_pid, t->rt_tid) : 0;
  s->stats = t->conn != NULL ? h_call(t->conn, "stats", NULL) : NULL;
}

static double daemon_num(const json_t *stats, const char *key) {
  return json_number_value(json_object_get(json_object_get(stats, "daemon"), key));
}

static double slots_sum(const json_t *stats, const char *key) {
  double sum = 0;
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(stats, "slots"), i, s) sum +=
      json_number_value(json_object_get(s, key));
  return sum;
}

/* Count of the histogram bucket starting at from_ns in a stats answer (0 when absent). */
static double bucket_count(const json_t *stats, json_int_t from_ns) {
  size_t i;
  json_t *b;
  json_array_foreach(json_object_get(json_object_get(stats, "daemon"), "rt_cycle_histogram"), i,
                     b) {
    if (json_integer_value(json_array_get(b, 0)) == from_ns)
      return json_number_value(json_array_get(b, 2));
  }
  return 0;
}

/*
 * p99 and maximum of the cycle times between two stats answers, as the upper
 * edges of their histogram buckets (within 13 %).
 */
static void cycle_percentiles(const json_t *a, const json_t *b, double *p99, double *max) {
  const json_t *hist = json_object_get(json_object_get(b, "daemon"), "rt_cycle_histogram");
  double total = 0, seen = 0;
  size_t i;
  json_t *bk;
  *p99 = *max = NAN;
  json_array_foreach(hist, i, bk) total +=
      json_number_value(json_array_get(bk, 2)) -
      bucket_count(a, json_integer_value(json_array_get(bk, 0)));
  if (total <= 0)
    return;
  json_array_foreach(hist, i, bk) {
    double n = json_number_value(json_array_get(bk, 2)) -
               bucket_count(a, json_integer_value(json_array_get(bk, 0)));
    if (n <= 0)
      continue;
    json_t *to = json_array_get(bk, 1);
    double edge = json_is_integer(to) ? (double)json_integer_value(to)
                                      : 2.0 * (double)json_integer_value(json_array_get(bk, 0));
    seen += n;
    if (isnan(*p99) && seen >= 0.99 * total)
      *p99 = edge;
    *max = edge;
  }
}

/* Measures the target for `seconds`: DSP load every 100 ms, everything else around it. */
static void measure(const struct target *t, struct graph *g, double seconds, struct result *r) {
  struct snapshot a, b;
  double sum = 0, max = 0;
  unsigned n = 0;
  memset(r, 0, sizeof(*r));
  take(t, g, &a);
  uint64_t end = a.t_ms + (uint64_t)(seconds * 1000.0);
  for (uint64_t next = a.t_ms + 100; next <= end; next += 100) {
    uint64_t now = h_now_ms();
    if (next > now)
      h_sleep_ms((unsigned)(next - now));
    double load = graph_dsp_load(g);
    sum += load;
    max = load > max ? load : max;
    n++;
  }
  take(t, g, &b);
  r->seconds = (double)(b.t_ms - a.t_ms) / 1000.0;
  r->cycles = (double)(uint32_t)(b.frames - a.frames) / (double)g->period;
  r->load_avg = n ? sum / n : NAN;
  r->load_max = max;
  /*
   * From jackd's log (the harness starts it verbose): the xrun callback is
   * not called on a client that is not activated, and activating the monitor
   * would put one more client in the graph it measures.
   */
  h_jack_xruns(&jack, a.log_at, t->daemon_client ? t->daemon_client : "-", "-", &r->log);
  r->xruns = r->log.events;
  r->busy = sys_busy_share(&a.busy, &b.busy);
  r->loadavg = sys_loadavg();
  double core_ns = r->seconds * 1e9 / 100.0; /* ns of one core per percent */
  r->cpu_pct = (double)(b.cpu_ns - a.cpu_ns) / core_ns;
  r->workers_pct = (double)(b.workers_ns - a.workers_ns) / core_ns;
  r->rt_pct = (double)(b.rt_ns - a.rt_ns) / core_ns;
  r->jackd_pct = (double)(b.jackd_ns - a.jackd_ns) / core_ns;
  r->client_cpu_ns_per_cycle = r->cycles > 0 ? (double)(b.cpu_ns - a.cpu_ns) / r->cycles : NAN;
  if (a.stats != NULL && b.stats != NULL) {
    r->rw_cycles = daemon_num(b.stats, "cycles") - daemon_num(a.stats, "cycles");
    double wall = daemon_num(b.stats, "rt_cycle_ns_sum") - daemon_num(a.stats, "rt_cycle_ns_sum");
    r->wall_avg = r->rw_cycles > 0 ? wall / r->rw_cycles : NAN;
    cycle_percentiles(a.stats, b.stats, &r->wall_p99, &r->wall_max);
    r->rt_cpu_ns_per_cycle =
        r->rw_cycles > 0 && t->rt_tid > 0 ? (double)(b.rt_ns - a.rt_ns) / r->rw_cycles : NAN;
    r->underruns = slots_sum(b.stats, "underruns") - slots_sum(a.stats, "underruns");
    r->underrun_frames =
        slots_sum(b.stats, "underrun_frames") - slots_sum(a.stats, "underrun_frames");
    double wakes = slots_sum(b.stats, "wakeups") - slots_sum(a.stats, "wakeups");
    double slot_cycles = slots_sum(b.stats, "cycles") - slots_sum(a.stats, "cycles");
    r->wakeups_per_cycle = slot_cycles > 0 ? wakes / slot_cycles : NAN;
  }
  json_decref(a.stats);
  json_decref(b.stats);
}

/* The fields every configuration reports. */
static json_t *common_json(const struct result *r) {
  return json_pack("{s:f, s:o, s:o, s:I, s:I, s:f, s:f, s:f, s:f}", "seconds", r->seconds,
                   "dsp_load_avg", real_or_null(r->load_avg), "dsp_load_max",
                   real_or_null(r->load_max), "xruns", (json_int_t)r->xruns, "xruns_driver_late",
                   (json_int_t)r->log.driver_late, "jackd_cpu_pct", r->jackd_pct,
                   "machine_busy_pct", 100.0 * r->busy, "loadavg", r->loadavg, "cycles", r->cycles);
}

/* Paces the run: configurations settle before they are measured. */
static void settle(double seconds) { h_sleep_ms((unsigned)(seconds * 1000.0)); }

static double ratio(double a, double b) { return b > 0 && isfinite(a) ? a / b : NAN; }

/* ---- idle ---------------------------------------------------------------------------- */

struct idle {
  double xruns, seconds, load_sum;
  unsigned windows;
};

static void measure_idle(struct graph *g, const char *when, struct idle *idle) {
  struct target t = {.n_pids = 0};
  struct result r;
  settle(O.warmup);
  measure(&t, g, O.seconds, &r);
  idle->xruns += (double)r.xruns;
  idle->seconds += r.seconds;
  idle->load_sum += r.load_avg;
  idle->windows++;
  json_t *o = json_pack("{s:s}", "when", when);
  json_object_update_new(o, common_json(&r));
  emit("idle", o);
}

/* The idle server's xruns over a window of `seconds`, from every idle window of the run. */
static double idle_xruns(const struct idle *idle, double seconds) {
  return idle->seconds > 0 ? idle->xruns * seconds / idle->seconds : NAN;
}

static double idle_load(const struct idle *idle) {
  return idle->windows ? idle->load_sum / idle->windows : NAN;
}

/* ---- the plain reference clients ----------------------------------------------------- */

struct plain_result {
  bool have;
  struct result r;
};
static struct plain_result plain_res[MAX_LIST][2];

static void table_plain(struct graph *g, struct plain_clients *pc) {
  for (unsigned k = 0; k < O.n_slots; k++) {
    unsigned n = O.slots[k];
    if (n > O.max_clients) {
      h_log("no plain baseline for %u: more than --max-clients %u", n, O.max_clients);
      break;
    }
    if (plain_grow(g, pc, n) < n) {
      h_log("no plain baseline from %u clients on: the server carries %u", n, pc->n);
      break;
    }
    struct target t = {.n_pids = n};
    int64_t rss = 0;
    for (unsigned i = 0; i < n; i++) {
      struct sys_mem m;
      t.pids[i] = pc->procs[i].pid;
      if (sys_process_mem(t.pids[i], &m))
        rss += m.rss_kb;
    }
    for (int topo = 0; topo < 2; topo++) {
      if (!O.topo[topo])
        continue;
      struct result *r = &plain_res[k][topo].r;
      graph_wire(g, plain_port, pc, n, topo);
      settle(O.warmup);
      measure(&t, g, O.seconds, r);
      graph_unwire(g, plain_port, pc, n);
      plain_res[k][topo].have = true;
      json_t *o =
          json_pack("{s:I, s:s}", "slots", (json_int_t)n, "topology", graph_topology_name(topo));
      json_object_update_new(o, common_json(r));
      json_object_update_new(
          o, json_pack("{s:f, s:o, s:o, s:I}", "clients_cpu_pct", r->cpu_pct,
                       "clients_cpu_ns_per_cycle", real_or_null(r->client_cpu_ns_per_cycle),
                       "client_cpu_ns_per_cycle", real_or_null(r->client_cpu_ns_per_cycle / n),
                       "client_rss_kb", (json_int_t)(rss / n)));
      emit("plain", o);
    }
  }
  plain_stop(g, pc);
}

/* ---- runwayd ------------------------------------------------------------------------- */

struct naming {
  const char *client; /* runwayd's JACK client name */
  char prefix[16];    /* slot names are prefix1, prefix2 ... */
};

static void slot_port(const void *ctx, unsigned i, unsigned ch, bool output, char *buf,
                      size_t len) {
  const struct naming *nm = ctx;
  snprintf(buf, len, "%s:%s%u.%s_%u", nm->client, nm->prefix, i + 1, output ? "out" : "in", ch + 1);
}

struct daemon {
  struct h_daemon d;
  struct h_conn c;
  pid_t rt_tid;
  struct sys_mem base; /* with no slot */
};

static void daemon_start(struct daemon *dm) {
  char lat[32];
  const char *args[] = {"--log-level", "warn", NULL, NULL, NULL};
  if (O.latency_ms > 0) {
    snprintf(lat, sizeof(lat), "%g", O.latency_ms);
    args[2] = "--latency-ms";
    args[3] = lat;
  }
  h_daemon_start(&dm->d, &jack, args, NULL);
  if (h_conn_open(&dm->c, dm->d.socket) != 0)
    H_FAIL("cannot connect to runwayd");
  /* The RT thread notes its id before its first cycle. */
  uint64_t deadline = h_now_ms() + 10000;
  for (;;) {
    json_t *st = h_daemon_stats(&dm->c);
    dm->rt_tid = (pid_t)h_int(st, "rt_thread_id");
    json_decref(st);
    if (dm->rt_tid > 0)
      break;
    if (h_now_ms() > deadline) {
      dm->rt_tid = sys_busiest_thread(dm->d.proc.pid);
      h_log("runwayd reports no rt_thread_id; taking its busiest thread, %d", (int)dm->rt_tid);
      break;
    }
    h_sleep_ms(20);
  }
  settle(1.0);
  sys_process_mem(dm->d.proc.pid, &dm->base);
}

static void daemon_stop(struct daemon *dm) {
  h_conn_close(&dm->c);
  int st = h_daemon_stop(&dm->d);
  char buf[64];
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    H_FAIL("runwayd ended with %s", h_status_str(st, buf, sizeof(buf)));
}

/* Adds slots prefix1 .. prefixN (from `have` on), each running before the next. */
static void add_slots(struct daemon *dm, const struct naming *nm, unsigned from, unsigned to,
                      unsigned latency_frames) {
  char name[32];
  for (unsigned i = from; i < to; i++) {
    snprintf(name, sizeof(name), "%s%u", nm->prefix, i + 1);
    json_t *args = json_pack("{s:s, s:i, s:i}", "plugin", "passthrough", "inputs", 2, "outputs", 2);
    if (latency_frames > 0)
      json_object_set_new(args, "latency_frames", json_integer(latency_frames));
    else if (O.latency_ms > 0)
      json_object_set_new(args, "latency_ms", json_real(O.latency_ms));
    json_decref(h_add_slot(&dm->c, name, args, 20000));
  }
}

static void remove_slots(struct daemon *dm, const struct naming *nm, unsigned n) {
  char name[32];
  for (unsigned i = 0; i < n; i++) {
    snprintf(name, sizeof(name), "%s%u", nm->prefix, i + 1);
    json_decref(h_call(&dm->c, "slot.remove", json_pack("{s:s}", "name", name)));
  }
}

/* The target: runwayd and the workers of its running slots. */
static void daemon_target(struct daemon *dm, struct target *t) {
  memset(t, 0, sizeof(*t));
  t->pids[0] = dm->d.proc.pid;
  t->n_pids = 1;
  t->rt_pid = dm->d.proc.pid;
  t->rt_tid = dm->rt_tid;
  t->conn = &dm->c;
  t->daemon_client = dm->d.name;
  json_t *r = h_call(&dm->c, "slot.list", NULL);
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(r, "slots"), i, s) {
    json_int_t pid = h_int(s, "pid");
    if (pid > 0 && t->n_workers < GRAPH_MAX_UNITS)
      t->workers[t->n_workers++] = (pid_t)pid;
  }
  json_decref(r);
}

/* What runwayd-only fields a measurement adds. */
static json_t *daemon_json(const struct result *r, const struct target *t) {
  double n_workers = t->n_workers ? t->n_workers : NAN;
  return json_pack(
      "{s:f, s:o, s:o, s:o, s:o, s:f, s:f, s:o, s:I, s:f, s:f, s:f, s:f, s:f}", "rt_cycles",
      r->rw_cycles, "rt_wall_ns_avg", real_or_null(r->wall_avg), "rt_wall_ns_p99",
      real_or_null(r->wall_p99), "rt_wall_ns_max", real_or_null(r->wall_max), "rt_cpu_ns_per_cycle",
      real_or_null(r->rt_cpu_ns_per_cycle), "underruns", r->underruns, "underrun_frames",
      r->underrun_frames, "wakeups_per_cycle", real_or_null(r->wakeups_per_cycle),
      "xruns_runwayd_late", (json_int_t)r->log.client_running, "daemon_cpu_pct", r->cpu_pct,
      "daemon_rt_cpu_pct", r->rt_pct, "daemon_other_cpu_pct", r->cpu_pct - r->rt_pct,
      "workers_cpu_pct", r->workers_pct, "worker_cpu_pct", r->workers_pct / n_workers);
}

static json_t *memory_json(const struct daemon *dm, const struct target *t, unsigned n) {
  struct sys_mem m, w;
  int64_t w_rss = 0, w_pss = 0;
  sys_process_mem(dm->d.proc.pid, &m);
  for (unsigned i = 0; i < t->n_workers; i++) {
    if (sys_process_mem(t->workers[i], &w)) {
      w_rss += w.rss_kb;
      w_pss += w.pss_kb;
    }
  }
  unsigned nw = t->n_workers ? t->n_workers : 1;
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:I}",
                   "shmem_kb_no_slot", (json_int_t)dm->base.shmem_kb, "rss_kb",
                   (json_int_t)m.rss_kb, "pss_kb", (json_int_t)m.pss_kb, "locked_kb",
                   (json_int_t)m.locked_kb, "vmlck_kb", (json_int_t)m.vmlck_kb, "rss_kb_no_slot",
                   (json_int_t)dm->base.rss_kb, "locked_kb_no_slot", (json_int_t)dm->base.locked_kb,
                   "rss_kb_per_slot", (double)(m.rss_kb - dm->base.rss_kb) / n, "pss_kb_per_slot",
                   (double)(m.pss_kb - dm->base.pss_kb) / n, "locked_kb_per_slot",
                   (double)(m.locked_kb - dm->base.locked_kb) / n, "worker_rss_kb",
                   (json_int_t)(w_rss / nw), "worker_pss_kb", (json_int_t)(w_pss / nw));
}

/* The ratios to the plain clients of the same N and topology, and the idle server's xruns. */
static json_t *compare_json(const struct result *r, const struct plain_result *p,
                            const struct idle *idle) {
  json_t *o = json_pack("{s:o}", "idle_xruns", real_or_null(idle_xruns(idle, r->seconds)));
  if (p == NULL || !p->have)
    return o;
  const struct result *b = &p->r;
  double il = idle_load(idle);
  json_object_update_new(
      o,
      json_pack("{s:f, s:o, s:o, s:I, s:f, s:o, s:o, s:o, s:o}", "plain_dsp_load_avg", b->load_avg,
                "dsp_load_ratio", real_or_null(ratio(r->load_avg, b->load_avg)),
                "dsp_load_ratio_idle_subtracted",
                real_or_null(ratio(r->load_avg - il, b->load_avg - il)), "plain_xruns",
                (json_int_t)b->xruns, "plain_cpu_pct", b->cpu_pct, "cpu_ratio",
                real_or_null(ratio(r->cpu_pct, b->cpu_pct)), "cpu_with_workers_ratio",
                real_or_null(ratio(r->cpu_pct + r->workers_pct, b->cpu_pct)),
                "plain_cpu_ns_per_cycle", real_or_null(b->client_cpu_ns_per_cycle), "rt_cpu_ratio",
                real_or_null(ratio(r->rt_cpu_ns_per_cycle, b->client_cpu_ns_per_cycle))));
  return o;
}

static void table_runwayd(struct graph *g, const struct idle *idle) {
  struct daemon dm;
  daemon_start(&dm);
  struct naming nm = {.client = dm.d.name, .prefix = "s"};
  unsigned have = 0;
  for (unsigned k = 0; k < O.n_slots; k++) {
    unsigned n = O.slots[k];
    add_slots(&dm, &nm, have, n, 0);
    have = n;
    struct target t;
    daemon_target(&dm, &t);
    for (int topo = 0; topo < 2; topo++) {
      if (!O.topo[topo])
        continue;
      struct result r;
      graph_wire(g, slot_port, &nm, n, topo);
      settle(O.warmup);
      measure(&t, g, O.seconds, &r);
      graph_unwire(g, slot_port, &nm, n);
      json_t *o =
          json_pack("{s:I, s:s}", "slots", (json_int_t)n, "topology", graph_topology_name(topo));
      json_object_update_new(o, common_json(&r));
      json_object_update_new(o, daemon_json(&r, &t));
      json_object_update_new(o, memory_json(&dm, &t, n));
      json_object_update_new(o, compare_json(&r, &plain_res[k][topo], idle));
      emit("runwayd", o);
    }
  }
  daemon_stop(&dm);
}

/* ---- the smallest L -------------------------------------------------------------------- */

static unsigned probe_serial;

/* N chained slots at L frames for search_seconds: true when not one underrun. */
static bool probe_latency(struct graph *g, struct daemon *dm, unsigned n, unsigned latency,
                          bool check, json_t *probes) {
  struct naming nm = {.client = dm->d.name};
  snprintf(nm.prefix, sizeof(nm.prefix), "p%u_", ++probe_serial);
  add_slots(dm, &nm, 0, n, latency);
  struct target t;
  daemon_target(dm, &t);
  struct result r;
  graph_wire(g, slot_port, &nm, n, GRAPH_CHAINED);
  settle(O.warmup);
  measure(&t, g, O.search_seconds, &r);
  graph_unwire(g, slot_port, &nm, n);
  remove_slots(dm, &nm, n);
  json_t *o = json_pack("{s:I, s:I, s:b}", "slots", (json_int_t)n, "latency_frames",
                        (json_int_t)latency, "check", check);
  json_object_update_new(o, common_json(&r));
  json_object_update_new(o, daemon_json(&r, &t));
  emit("latency_probe", o);
  char key[16];
  snprintf(key, sizeof(key), "%u", latency);
  json_object_set_new(probes, key, json_real(r.underruns));
  return r.underruns == 0;
}

static void search_min_latency(struct graph *g, struct daemon *dm, unsigned n) {
  unsigned k = (O.search_max - O.period) / O.search_step + 1;
  json_t *probes = json_object(); /* L: underruns */
  unsigned lo = 0, hi = k - 1;
  bool found = probe_latency(g, dm, n, O.period + hi * O.search_step, false, probes);
  while (found && lo < hi) {
    unsigned mid = lo + (hi - lo) / 2;
    if (probe_latency(g, dm, n, O.period + mid * O.search_step, false, probes))
      hi = mid;
    else
      lo = mid + 1;
  }
  emit("min_latency", json_pack("{s:I, s:f, s:I, s:I, s:o, s:o}", "slots", (json_int_t)n, "seconds",
                                O.search_seconds, "step_frames", (json_int_t)O.search_step,
                                "max_frames", (json_int_t)O.search_max, "min_latency_frames",
                                found ? json_integer(O.period + hi * O.search_step) : json_null(),
                                "probes", probes));
}

static void latency_phase(struct graph *g) {
  struct daemon dm;
  daemon_start(&dm);
  for (unsigned i = 0; i < O.n_checks; i++) {
    json_t *probes = json_object();
    probe_latency(g, &dm, O.checks[i][0], O.checks[i][1], true, probes);
    json_decref(probes);
  }
  if (O.search)
    for (unsigned i = 0; i < O.n_search_slots; i++)
      search_min_latency(g, &dm, O.search_slots[i]);
  daemon_stop(&dm);
}

/* ---- main ------------------------------------------------------------------------------ */

/* A generous bound of the run's length, for the harness's watchdog. */
static unsigned run_budget_s(void) {
  double s = 120;
  unsigned top = O.slots[O.n_slots - 1];
  if (O.table)
    s += (2.0 * O.n_slots * 2 + 2) * (O.seconds + O.warmup + 5) + 2.0 * top;
  double probes = 0;
  for (unsigned i = 0; O.search && i < O.n_search_slots; i++)
    probes += (log2((O.search_max - O.period) / O.search_step + 1) + 2) *
              (O.search_seconds + O.warmup + 10 + O.search_slots[i]);
  for (unsigned i = 0; i < O.n_checks; i++)
    probes += O.search_seconds + O.warmup + 10 + O.checks[i][0];
  return (unsigned)(2 * (s + probes));
}

int main(int argc, char **argv) {
  int rc = scale_options_parse(&O, argc, argv);
  if (rc != 0)
    return rc == 1 ? 0 : rc;
  /* stdout carries the JSON lines only; the harness's progress goes to stderr. */
  int fd = dup(1);
  if (fd < 0 || (json_out = fdopen(fd, "w")) == NULL || dup2(2, 1) < 0) {
    perror("runway-bench-scale: stdout");
    return 1;
  }
  h_init("scale", run_budget_s());

  /* The programs live beside this one. */
  char self[PATH_MAX], exe[PATH_MAX + 40];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0)
    H_FAIL("cannot find my own executable");
  self[len] = '\0';
  *strrchr(self, '/') = '\0';
  snprintf(exe, sizeof(exe), "%s/runway-bench-jack-passthrough", self);
  if (access(exe, X_OK) != 0)
    H_FAIL("%s is missing; build it (cmake --build build)", exe);

  h_jack_start(&jack, RATE, O.period);
  struct graph g;
  graph_open(&g, &jack);
  emit("env",
       json_pack("{s:s, s:s, s:I, s:I, s:i, s:f, s:b, s:f, s:f, s:o}", "backend", "jack", "build",
                 RUNWAY_BENCH_BUILD, "rate", (json_int_t)g.rate, "period", (json_int_t)g.period,
                 "cpus", sys_cpus(), "loadavg", sys_loadavg(), "server_realtime",
                 jack_is_realtime(g.mon) != 0, "seconds", O.seconds, "warmup", O.warmup,
                 "latency_ms", O.latency_ms > 0 ? json_real(O.latency_ms) : json_null()));

  if (O.table) {
    static struct plain_clients pc;
    struct idle idle = {0};
    pc.exe = exe;
    measure_idle(&g, "before", &idle);
    table_plain(&g, &pc);
    measure_idle(&g, "between", &idle);
    table_runwayd(&g, &idle);
  }
  if (O.search || O.n_checks > 0)
    latency_phase(&g);

  graph_close(&g);
  h_jack_stop(&jack);
  h_pass();
}
