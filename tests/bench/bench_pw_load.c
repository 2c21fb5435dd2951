/*
 * runway-bench-pw-load: what a slot costs on PipeWire. One private headless
 * PipeWire (dummy driver), and for N = 8, 32 and 128, one after the other,
 * N stereo passthroughs chained (each one's outputs into the next one's
 * inputs, with pw-link) as
 *
 *   filters  N plain pw_filter nodes in one process, each copying its
 *            inputs to its outputs: the baseline, measured in the same run;
 *   native   runwayd --backend pipewire with N passthrough slots (a node per
 *            slot, plus its clock node);
 *   pw-jack  runwayd --backend jack under PipeWire's libjack (one JACK
 *            client: one node for all N slots).
 *
 * followed by a tail node of the bench's own. Over the measuring window,
 * after a settling time:
 *
 *   dsp_load  the graph's run time over the period, as PipeWire's cpu_load
 *             counts it, from the cycle's start (clock.nsec) to the tail
 *             node's run, which comes after the whole chain;
 *   rt_us     the CPU time per cycle of the thread that runs the case's
 *             nodes (schedstat of PipeWire's data thread in the filters'
 *             process or in runwayd: the busiest thread but the main one),
 *             PipeWire's work for the nodes included;
 *   engine_us runwayd's own engine time per cycle (rt_cycle_ns_avg).
 *
 * PipeWire's profiler cannot say it for large graphs: in 0.3.65 a cycle's
 * report has room for about 90 nodes and is dropped beyond. One JSON object
 * per line on stdout, the ratios against the filters in the same run last;
 * progress on stderr.
 *
 * usage: runway-bench-pw-load [--quick] [--period FRAMES] [--seconds S] [--slots N,N,...]
 *   --quick    N = 8 only, 1 s windows (a smoke run; figures not meaningful)
 *   --period   the graph's quantum (default 256)
 *   --seconds  measuring window per case (default 5)
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pipewire/filter.h>
#include <pipewire/pipewire.h>

#include "clock.h"
#include "harness.h"

#ifndef RUNWAY_BENCH_BUILD
#define RUNWAY_BENCH_BUILD "unknown"
#endif
#ifndef RWB_PW_JACK_DIR
#error "RWB_PW_JACK_DIR (PipeWire's libjack directory) must be defined by the build"
#endif

#define RATE 48000
#define MAX_NODES 128

/* The JSON lines; stdout itself carries the harness's progress to stderr. */
static FILE *json_out;

struct opts {
  uint32_t period;
  unsigned seconds;
  unsigned sizes[8];
  unsigned n_sizes;
};

struct result {
  uint64_t cycles;
  uint64_t late; /* cycles the tail saw the clock jump or move on */
  double dsp_load;
  double rt_us;
  double engine_us; /* runwayd's rt_cycle_ns_avg over the window, or -1 */
};

/* A pw_context on a thread loop of its own (its own data thread). */
struct pw_ctx {
  struct pw_thread_loop *tloop;
  struct pw_context *context;
  struct pw_core *core;
};

static void ctx_open(struct pw_ctx *c, const char *name) {
  sigset_t all, saved;
  pw_init(NULL, NULL);
  /* Its threads leave the signals to the main thread. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  c->tloop = pw_thread_loop_new(name, NULL);
  c->context = pw_context_new(pw_thread_loop_get_loop(c->tloop),
                              pw_properties_new(PW_KEY_CONFIG_NAME, "client-rt.conf", NULL), 0);
  if (c->context == NULL || pw_thread_loop_start(c->tloop) < 0)
    H_FAIL("cannot start libpipewire");
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  pw_thread_loop_lock(c->tloop);
  c->core = pw_context_connect(c->context, NULL, 0);
  pw_thread_loop_unlock(c->tloop);
  if (c->core == NULL)
    H_FAIL("cannot connect to PipeWire");
}

static void ctx_close(struct pw_ctx *c) {
  pw_thread_loop_lock(c->tloop);
  pw_core_disconnect(c->core);
  pw_thread_loop_unlock(c->tloop);
  pw_thread_loop_stop(c->tloop);
  pw_context_destroy(c->context);
  pw_thread_loop_destroy(c->tloop);
  pw_deinit();
}

/* ---- the baseline: plain filter nodes copying their inputs --------------------------- */

struct copy_node {
  struct pw_filter *f;
  struct spa_hook listener;
  void *in[2], *out[2];
  _Atomic pid_t *tid;
};

struct copies {
  struct pw_ctx ctx;
  struct copy_node nodes[MAX_NODES];
  unsigned n;
  _Atomic pid_t data_tid; /* the thread that runs them */
};

static void copy_process(void *data, struct spa_io_position *pos) {
  struct copy_node *c = data;
  if (pos == NULL)
    return;
  if (atomic_load_explicit(c->tid, memory_order_relaxed) == 0)
    atomic_store_explicit(c->tid, (pid_t)syscall(SYS_gettid), memory_order_relaxed);
  uint32_t n = (uint32_t)pos->clock.duration;
  for (int ch = 0; ch < 2; ch++) {
    float *out = pw_filter_get_dsp_buffer(c->out[ch], n);
    const float *in = pw_filter_get_dsp_buffer(c->in[ch], n);
    if (out == NULL)
      continue;
    if (in != NULL)
      memcpy(out, in, n * sizeof(float));
    else
      memset(out, 0, n * sizeof(float));
  }
}

static const struct pw_filter_events copy_events = {
    PW_VERSION_FILTER_EVENTS,
    .process = copy_process,
};

static void *copy_port(struct pw_filter *f, bool output, const char *name) {
  void *p = pw_filter_add_port(
      f, output ? PW_DIRECTION_OUTPUT : PW_DIRECTION_INPUT, PW_FILTER_PORT_FLAG_MAP_BUFFERS, 8,
      pw_properties_new(PW_KEY_FORMAT_DSP, "32 bit float mono audio", PW_KEY_PORT_NAME, name, NULL),
      NULL, 0);
  if (p == NULL)
    H_FAIL("cannot add filter port %s", name);
  return p;
}

static struct copies *copies_open(unsigned n) {
  struct copies *c = calloc(1, sizeof(*c));
  if (c == NULL)
    H_FAIL("out of memory");
  ctx_open(&c->ctx, "rwb-copies");
  pw_thread_loop_lock(c->ctx.tloop);
  for (unsigned i = 0; i < n; i++) {
    char name[64];
    struct copy_node *node = &c->nodes[i];
    snprintf(name, sizeof(name), "rwbf.%u", i);
    node->tid = &c->data_tid;
    node->f = pw_filter_new(c->ctx.core, name,
                            pw_properties_new(PW_KEY_NODE_NAME, name, PW_KEY_MEDIA_TYPE, "Audio",
                                              PW_KEY_MEDIA_CATEGORY, "Filter", PW_KEY_MEDIA_ROLE,
                                              "DSP", PW_KEY_NODE_ALWAYS_PROCESS, "true", NULL));
    if (node->f == NULL)
      H_FAIL("cannot create filter %s", name);
    pw_filter_add_listener(node->f, &node->listener, &copy_events, node);
    node->in[0] = copy_port(node->f, false, "in_1");
    node->in[1] = copy_port(node->f, false, "in_2");
    node->out[0] = copy_port(node->f, true, "out_1");
    node->out[1] = copy_port(node->f, true, "out_2");
    if (pw_filter_connect(node->f, PW_FILTER_FLAG_RT_PROCESS, NULL, 0) < 0)
      H_FAIL("cannot connect filter %s", name);
  }
  c->n = n;
  pw_thread_loop_unlock(c->ctx.tloop);
  return c;
}

static void copies_close(struct copies *c) {
  pw_thread_loop_lock(c->ctx.tloop);
  for (unsigned i = 0; i < c->n; i++)
    pw_filter_destroy(c->nodes[i].f);
  pw_thread_loop_unlock(c->ctx.tloop);
  ctx_close(&c->ctx);
  free(c);
}

/* ---- the tail: after the whole chain, it times the graph ---------------------------- */

struct tail {
  struct pw_ctx ctx;
  struct pw_filter *f;
  struct spa_hook listener;
  void *in[2];
  /* Data thread; the main thread reads them between windows (reset/take). */
  _Atomic int measuring;
  _Atomic uint64_t cycles, late, busy_ns;
  uint64_t last_pos, last_n;
};

static void tail_process(void *data, struct spa_io_position *pos) {
  struct tail *t = data;
  if (pos == NULL)
    return;
  uint64_t f0 = pos->clock.position, n = pos->clock.duration;
  for (int ch = 0; ch < 2; ch++)
    (void)pw_filter_get_dsp_buffer(t->in[ch], (uint32_t)n);
  uint64_t now = base_mono_ns();
  if (atomic_load_explicit(&t->measuring, memory_order_acquire)) {
    atomic_fetch_add_explicit(&t->cycles, 1, memory_order_relaxed);
    if ((t->last_n != 0 && f0 != t->last_pos + t->last_n) || pos->clock.position != f0)
      atomic_fetch_add_explicit(&t->late, 1, memory_order_relaxed);
    if (now > pos->clock.nsec)
      atomic_fetch_add_explicit(&t->busy_ns, now - pos->clock.nsec, memory_order_relaxed);
  }
  t->last_pos = f0;
  t->last_n = n;
}

static const struct pw_filter_events tail_events = {
    PW_VERSION_FILTER_EVENTS,
    .process = tail_process,
};

static struct tail *tail_open(void) {
  struct tail *t = calloc(1, sizeof(*t));
  if (t == NULL)
    H_FAIL("out of memory");
  ctx_open(&t->ctx, "rwb-tail");
  pw_thread_loop_lock(t->ctx.tloop);
  t->f = pw_filter_new(t->ctx.core, "rwbt",
                       pw_properties_new(PW_KEY_NODE_NAME, "rwbt", PW_KEY_MEDIA_TYPE, "Audio",
                                         PW_KEY_MEDIA_CATEGORY, "Filter", PW_KEY_MEDIA_ROLE, "DSP",
                                         PW_KEY_NODE_ALWAYS_PROCESS, "true", NULL));
  if (t->f == NULL)
    H_FAIL("cannot create the tail node");
  pw_filter_add_listener(t->f, &t->listener, &tail_events, t);
  t->in[0] = copy_port(t->f, false, "in_1");
  t->in[1] = copy_port(t->f, false, "in_2");
  if (pw_filter_connect(t->f, PW_FILTER_FLAG_RT_PROCESS, NULL, 0) < 0)
    H_FAIL("cannot connect the tail node");
  pw_thread_loop_unlock(t->ctx.tloop);
  return t;
}

static void tail_close(struct tail *t) {
  pw_thread_loop_lock(t->ctx.tloop);
  pw_filter_destroy(t->f);
  pw_thread_loop_unlock(t->ctx.tloop);
  ctx_close(&t->ctx);
  free(t);
}

/* ---- a thread's CPU time (schedstat: ns on the CPU) -------------------------------- */

static uint64_t thread_ns(pid_t pid, pid_t tid) {
  char path[96];
  unsigned long long run = 0;
  snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
  FILE *f = fopen(path, "re");
  if (f != NULL) {
    if (fscanf(f, "%llu", &run) != 1)
      run = 0;
    fclose(f);
  }
  return run;
}

#define MAX_TIDS 64

/* The threads of pid but its main one, with their CPU time so far. */
static unsigned threads(pid_t pid, pid_t *tids, uint64_t *ns) {
  char path[64];
  unsigned n = 0;
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL && n < MAX_TIDS) {
    pid_t tid = (pid_t)atoi(e->d_name);
    if (tid <= 0 || tid == pid)
      continue;
    tids[n] = tid;
    ns[n++] = thread_ns(pid, tid);
  }
  if (d != NULL)
    closedir(d);
  return n;
}

/* ---- linking and measuring ------------------------------------------------------------- */

static void pw_link(const char *from, const char *to) {
  char log[4200], *out = NULL, st[64];
  snprintf(log, sizeof(log), "%s/pw-link.log", h_tmpdir());
  const char *argv[] = {"pw-link", from, to, NULL};
  for (int attempt = 0;; attempt++) {
    int ws = h_run_capture(argv, NULL, NULL, log, 10000, &out);
    free(out);
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
      return;
    /* A port made a moment ago may not be in pw-link's view of the graph yet. */
    if (attempt == 20)
      H_FAIL("pw-link %s %s: %s", from, to, h_status_str(ws, st, sizeof(st)));
    h_sleep_ms(50);
  }
}

/* Chains N stereo passthroughs: name(i) gives node i's port prefix ("rwbf.3:"). */
static void chain(unsigned n, void (*name)(char *buf, size_t len, unsigned i, const void *ctx),
                  const void *ctx) {
  char from[256], to[256], a[192], b[192];
  for (unsigned i = 0; i + 1 < n; i++) {
    name(a, sizeof(a), i, ctx);
    name(b, sizeof(b), i + 1, ctx);
    for (int ch = 1; ch <= 2; ch++) {
      snprintf(from, sizeof(from), "%sout_%d", a, ch);
      snprintf(to, sizeof(to), "%sin_%d", b, ch);
      pw_link(from, to);
    }
  }
}

/* The last element's outputs into the tail. */
static void link_tail(void (*name)(char *buf, size_t len, unsigned i, const void *ctx),
                      unsigned last, const void *ctx) {
  char from[256], prefix[192];
  name(prefix, sizeof(prefix), last, ctx);
  for (int ch = 1; ch <= 2; ch++) {
    char to[32];
    snprintf(from, sizeof(from), "%sout_%d", prefix, ch);
    snprintf(to, sizeof(to), "rwbt:in_%d", ch);
    pw_link(from, to);
  }
}

static void filter_name(char *buf, size_t len, unsigned i, const void *ctx) {
  (void)ctx;
  snprintf(buf, len, "rwbf.%u:", i);
}

/* Slot i's ports are "<client>:s<i>.out_1": the prefix up to the "out_"/"in_". */
static void slot_name(char *buf, size_t len, unsigned i, const void *ctx) {
  snprintf(buf, len, "%s:s%u.", (const char *)ctx, i);
}

/*
 * One window: the tail's account of the graph, and the CPU time of the
 * thread running the case's nodes: tid when known, else the busiest thread
 * of pid but the main one over the window.
 */
static void measure(struct tail *t, const struct opts *o, pid_t pid, pid_t tid, struct h_conn *c,
                    struct result *r) {
  json_t *before = NULL, *after = NULL;
  pid_t tids[MAX_TIDS];
  uint64_t ns0[MAX_TIDS], ns1[MAX_TIDS];
  h_sleep_ms(2000); /* links settle, workers reach their steady wake-up pattern */
  if (c != NULL)
    before = h_daemon_stats(c);
  unsigned nt = tid > 0 ? 1 : threads(pid, tids, ns0);
  uint64_t own0 = tid > 0 ? thread_ns(pid, tid) : 0;
  atomic_store(&t->cycles, 0);
  atomic_store(&t->late, 0);
  atomic_store(&t->busy_ns, 0);
  atomic_store_explicit(&t->measuring, 1, memory_order_release);
  h_sleep_ms(o->seconds * 1000);
  atomic_store_explicit(&t->measuring, 0, memory_order_release);
  uint64_t rt_ns = 0;
  if (tid > 0) {
    rt_ns = thread_ns(pid, tid) - own0;
  } else {
    for (unsigned i = 0; i < nt; i++) {
      uint64_t now = thread_ns(pid, tids[i]);
      ns1[i] = now > ns0[i] ? now - ns0[i] : 0;
      if (ns1[i] > rt_ns)
        rt_ns = ns1[i];
    }
  }
  r->cycles = atomic_load(&t->cycles);
  r->late = atomic_load(&t->late);
  double period_ns = 1e9 * o->period / RATE;
  r->dsp_load = r->cycles ? (double)atomic_load(&t->busy_ns) / (double)r->cycles / period_ns : 0;
  r->rt_us = r->cycles ? (double)rt_ns / (double)r->cycles / 1000.0 : 0;
  r->engine_us = -1;
  if (c != NULL) {
    after = h_daemon_stats(c);
    double cycles = (double)(h_int(after, "cycles") - h_int(before, "cycles"));
    /* rt_cycle_ns_avg is over the daemon's life: the window's own mean from the two averages. */
    double sum = (double)h_int(after, "rt_cycle_ns_avg") * (double)h_int(after, "cycles") -
                 (double)h_int(before, "rt_cycle_ns_avg") * (double)h_int(before, "cycles");
    if (cycles > 0)
      r->engine_us = sum / cycles / 1000.0;
    json_decref(before);
    json_decref(after);
  }
}

static void print_case(const struct opts *o, unsigned n, const char *name, const struct result *r) {
  fprintf(json_out,
          "{\"bench\":\"pw_load\",\"build\":\"%s\",\"period\":%u,\"slots\":%u,\"case\":\"%s\","
          "\"cycles\":%llu,\"late\":%llu,\"dsp_load\":%.4f,\"rt_us\":%.2f,"
          "\"rt_us_per_slot\":%.3f",
          RUNWAY_BENCH_BUILD, o->period, n, name, (unsigned long long)r->cycles,
          (unsigned long long)r->late, r->dsp_load, r->rt_us, r->rt_us / n);
  if (r->engine_us >= 0)
    fprintf(json_out, ",\"engine_us\":%.2f", r->engine_us);
  fprintf(json_out, "}\n");
  fflush(json_out);
  h_log("%u slots, %s: DSP load %.1f %%, RT time %.1f us per cycle, %llu of %llu cycles late", n,
        name, 100.0 * r->dsp_load, r->rt_us, (unsigned long long)r->late,
        (unsigned long long)r->cycles);
}

/* runwayd with n passthrough slots, chained; native or under pw-jack. */
static void runway_case(struct tail *t, const struct opts *o, struct h_jack *srv, unsigned n,
                        bool pwjack, struct result *r) {
  struct h_daemon d;
  struct h_conn c;
  char jack_env[4200];
  snprintf(jack_env, sizeof(jack_env), "LD_LIBRARY_PATH=%s", RWB_PW_JACK_DIR);
  const char *jack_args[] = {"--backend", "jack", "--log-level", "warn", NULL};
  const char *native_args[] = {"--log-level", "warn", NULL};
  const char *env[] = {jack_env, NULL};
  h_daemon_start(&d, srv, pwjack ? jack_args : native_args, pwjack ? env : NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  for (unsigned i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof(name), "s%u", i);
    json_decref(h_add_slot(&c, name, json_pack("{s:s}", "plugin", "passthrough"), 30000));
  }
  chain(n, slot_name, d.name);
  link_tail(slot_name, n - 1, d.name);
  measure(t, o, d.proc.pid, 0, &c, r);
  h_conn_close(&c);
  h_daemon_stop(&d);
}

static void usage(FILE *f) {
  fprintf(f, "usage: runway-bench-pw-load [--quick] [--period FRAMES] [--seconds S] "
             "[--slots N,N,...]\n");
}

static int parse(int argc, char **argv, struct opts *o) {
  *o = (struct opts){.period = 256, .seconds = 5, .sizes = {8, 32, 128}, .n_sizes = 3};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      o->seconds = 1;
      o->sizes[0] = 8;
      o->n_sizes = 1;
    } else if (strcmp(argv[i], "--period") == 0 && i + 1 < argc) {
      o->period = (uint32_t)strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      o->seconds = (unsigned)strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--slots") == 0 && i + 1 < argc) {
      o->n_sizes = 0;
      for (char *tok = strtok(argv[++i], ","); tok != NULL && o->n_sizes < 8;
           tok = strtok(NULL, ","))
        o->sizes[o->n_sizes++] = (unsigned)strtoul(tok, NULL, 10);
    } else {
      usage(argv[i][0] == '-' && argv[i][1] == 'h' ? stdout : stderr);
      return argv[i][0] == '-' && argv[i][1] == 'h' ? 0 : 2;
    }
  }
  for (unsigned i = 0; i < o->n_sizes; i++)
    if (o->sizes[i] < 2 || o->sizes[i] > MAX_NODES)
      return fprintf(stderr, "--slots: each from 2 to %d\n", MAX_NODES), 2;
  if (o->period < 16 || o->period > 8192 || o->seconds < 1)
    return fprintf(stderr, "--period 16..8192, --seconds at least 1\n"), 2;
  return -1;
}

int main(int argc, char **argv) {
  struct opts o;
  int rc = parse(argc, argv, &o);
  if (rc >= 0)
    return rc;
  /* The harness's servers are PipeWire's here; its output goes to stderr. */
  setenv("RWT_BACKEND", "pipewire", 1);
  json_out = fdopen(dup(STDOUT_FILENO), "w");
  if (json_out == NULL || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
    return 1;
  h_init("bench_pw_load", 3600);
  struct h_jack srv;
  h_jack_start(&srv, RATE, o.period);
  struct tail *t = tail_open();

  for (unsigned k = 0; k < o.n_sizes; k++) {
    unsigned n = o.sizes[k];
    struct result filters, native, pwjack;
    struct copies *cp = copies_open(n);
    chain(n, filter_name, NULL);
    link_tail(filter_name, n - 1, NULL);
    h_sleep_ms(200);
    H_CHECK(atomic_load(&cp->data_tid) > 0, "the filter nodes do not run");
    measure(t, &o, getpid(), atomic_load(&cp->data_tid), NULL, &filters);
    copies_close(cp);
    print_case(&o, n, "filters", &filters);
    runway_case(t, &o, &srv, n, false, &native);
    print_case(&o, n, "native", &native);
    runway_case(t, &o, &srv, n, true, &pwjack);
    print_case(&o, n, "pw-jack", &pwjack);
    fprintf(json_out,
            "{\"bench\":\"pw_load\",\"build\":\"%s\",\"period\":%u,\"slots\":%u,"
            "\"dsp_load_native_vs_filters\":%.3f,\"dsp_load_pwjack_vs_filters\":%.3f,"
            "\"rt_us_native_vs_filters\":%.3f,\"rt_us_pwjack_vs_filters\":%.3f}\n",
            RUNWAY_BENCH_BUILD, o.period, n, native.dsp_load / filters.dsp_load,
            pwjack.dsp_load / filters.dsp_load, native.rt_us / filters.rt_us,
            pwjack.rt_us / filters.rt_us);
    fflush(json_out);
  }
  tail_close(t);
  h_jack_stop(&srv);
  h_pass();
}
