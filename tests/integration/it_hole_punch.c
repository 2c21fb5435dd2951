/*
 * it_hole_punch: a worker that punches holes in its shared memory cannot
 * make runwayd's RT thread fault for long, and the other slots stay exact.
 *
 * Two passthrough slots carry impulses (the honest ones); four slots run
 * worker_garbage punch --relapse, which play silence until SIGUSR1 and then
 * punch their output ring every 2 ms (fallocate PUNCH_HOLE on their file and
 * MADV_REMOVE on a mapping of their own), and try the same on the daemon's
 * input ring, which the kernel must refuse. Every restarted instance punches
 * again at once: a worker that keeps trying.
 *
 * Checked: each punching slot is faulted and restarted, its last_error
 * naming the hole; no attempt on the daemon's file succeeded (the workers
 * say "DONE" in runwayd's log if one did); the honest slots measure exactly
 * L, before and while the others punch, and neither underruns nor restarts;
 * runwayd exits 0. Logged as figures, for a quiet window and one of the
 * same length with the punchers at work: JACK xruns, the RT thread's page
 * faults (stats rt_minor_faults) and its cycle times (rt_cycle_ns_avg over
 * the window, rt_cycle_ns_max_recent).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#ifndef RWT_GARBAGE
#error "RWT_GARBAGE must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128
#define L 4800 /* the honest slots: 100 ms, so a loaded machine does not make them underrun */
#define GL 1200
#define N_HONEST 2
#define N_PUNCH 4
#define WINDOW_MS 3000

static const char *const honest[N_HONEST] = {"pt_a", "pt_b"};
static const char *const punchers[N_PUNCH] = {"punch_a", "punch_b", "punch_c", "punch_d"};

/* The engine's counters at one moment. */
struct rt_figures {
  json_int_t xruns, cycles, cycle_ns_sum, minor_faults, major_faults;
};

static struct rt_figures rt_now(struct h_conn *c) {
  json_t *st = h_daemon_stats(c);
  struct rt_figures f = {h_int(st, "xruns"), h_int(st, "cycles"), h_int(st, "rt_cycle_ns_sum"),
                         h_int(st, "rt_minor_faults"), h_int(st, "rt_major_faults")};
  json_decref(st);
  H_CHECK(f.cycles >= 0 && f.cycle_ns_sum >= 0, "stats without the engine's cycle counters");
  H_CHECK(f.minor_faults >= 0, "stats without rt_minor_faults");
  return f;
}

/* Logs what happened between a and b; returns the RT thread's minor faults meanwhile. */
static json_int_t rt_report(struct h_conn *c, const char *what, const struct rt_figures *a,
                            const struct rt_figures *b) {
  json_t *st = h_daemon_stats(c);
  json_int_t cycles = b->cycles - a->cycles;
  h_log("figures %s: %lld cycles, %lld xruns, rt_minor_faults +%lld, rt_major_faults +%lld, "
        "rt_cycle_ns_avg %lld, rt_cycle_ns_max_recent %lld",
        what, (long long)cycles, (long long)(b->xruns - a->xruns),
        (long long)(b->minor_faults - a->minor_faults),
        (long long)(b->major_faults - a->major_faults),
        (long long)(cycles > 0 ? (b->cycle_ns_sum - a->cycle_ns_sum) / cycles : 0),
        (long long)h_int(st, "rt_cycle_ns_max_recent"));
  json_decref(st);
  return b->minor_faults - a->minor_faults;
}

/* The honest paths, measured with impulse trains (again when the graph was disturbed). */
static void measure_honest(struct h_probe *p, struct h_conn *c, struct h_path *paths,
                           const char *when) {
  for (unsigned i = 0; i < N_HONEST; i++)
    snprintf(paths[i].label, sizeof(paths[i].label), "%s %s", honest[i], when);
  struct h_train train = {.count = 8, .gap = 1300};
  if (!h_measure(p, c, paths, N_HONEST, &train))
    h_error("the honest slots are not exactly L %s", when);
}

struct punched {
  struct h_conn *c;
  const char *slot;
  json_int_t first_pid;
};

/* The slot has had a new worker, and last_error says a hole was found. */
static bool faulted_for_a_hole(void *arg, char *seen, size_t len) {
  struct punched *w = arg;
  json_t *s = h_slot(w->c, w->slot);
  H_CHECK(s != NULL, "slot %s vanished", w->slot);
  const char *why = h_str(s, "last_error");
  bool done = h_int(s, "restarts") >= 1 && why != NULL && strstr(why, "punched a hole") != NULL;
  snprintf(seen, len, "state %s, restarts %lld, last_error %s", h_str(s, "state"),
           (long long)h_int(s, "restarts"), why ? why : "(none)");
  json_decref(s);
  return done;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  struct h_path paths[N_HONEST];
  json_int_t pids[N_PUNCH];
  char cmd[600], buf[64];

  h_init("hole_punch", 110);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, N_HONEST, false, N_HONEST + 1, 0, 0);
  h_probe_path_latency(p, L);
  h_probe_count_only(p, N_HONEST); /* the punchers' output: silence, only counted */

  memset(paths, 0, sizeof(paths));
  for (unsigned i = 0; i < N_HONEST; i++) {
    json_t *s = h_add_slot(&c, honest[i],
                           json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                     "outputs", 1, "latency_frames", L),
                           10000);
    h_connect(p, h_probe_out(p, i), h_slot_port(s, "inputs", 0));
    h_connect(p, h_slot_port(s, "outputs", 0), h_probe_in(p, i));
    paths[i] = (struct h_path){.out = i, .in = i, .delay = L, .slots = {honest[i]}};
    json_decref(s);
  }
  for (unsigned i = 0; i < N_PUNCH; i++) {
    snprintf(cmd, sizeof(cmd), "exec '%s' punch --relapse", RWT_GARBAGE);
    json_t *s = h_add_slot(&c, punchers[i],
                           json_pack("{s:s, s:i, s:i, s:i}", "exec", cmd, "inputs", 1, "outputs", 1,
                                     "latency_frames", GL),
                           10000);
    pids[i] = h_int(s, "pid");
    h_connect(p, h_probe_out(p, 0), h_slot_port(s, "inputs", 0));
    h_connect(p, h_slot_port(s, "outputs", 0), h_probe_in(p, N_HONEST));
    json_decref(s);
  }
  json_int_t honest_pid[N_HONEST];
  for (unsigned i = 0; i < N_HONEST; i++) {
    json_t *s = h_slot(&c, honest[i]);
    honest_pid[i] = h_int(s, "pid");
    json_decref(s);
  }

  /* Quiet: every slot honest. */
  measure_honest(p, &c, paths, "before the holes");
  struct rt_figures q0 = rt_now(&c);
  h_sleep_ms(WINDOW_MS); /* a window of fixed length to count in, not a wait for anything */
  struct rt_figures q1 = rt_now(&c);
  rt_report(&c, "quiet", &q0, &q1);

  /* The punchers start; the honest slots are measured while they punch and are restarted. */
  size_t log_from = h_file_size(d.proc.log);
  for (unsigned i = 0; i < N_PUNCH; i++)
    H_CHECK(kill((pid_t)pids[i], SIGUSR1) == 0, "SIGUSR1 to the worker of %s", punchers[i]);
  uint64_t t0 = h_now_ms();
  struct rt_figures h0 = rt_now(&c);
  measure_honest(p, &c, paths, "while the others punch holes");
  uint64_t spent = h_now_ms() - t0;
  if (spent < WINDOW_MS)
    h_sleep_ms((unsigned)(WINDOW_MS - spent)); /* the same length as the quiet window */
  struct rt_figures h1 = rt_now(&c);
  json_int_t faults = rt_report(&c, "punching", &h0, &h1);

  for (unsigned i = 0; i < N_PUNCH; i++) {
    struct punched w = {&c, punchers[i], pids[i]};
    H_WAIT_UNTIL(faulted_for_a_hole, &w, 10000, "slot %s to be faulted for a hole", punchers[i]);
    json_t *s = h_slot(&c, punchers[i]);
    h_log("%s: state %s, restarts %lld, last_error \"%s\"", punchers[i], h_str(s, "state"),
          (long long)h_int(s, "restarts"), h_str(s, "last_error"));
    json_decref(s);
  }
  unsigned refused = h_file_count(d.proc.log, log_from, "daemon's input ring: ");
  unsigned done = h_file_count(d.proc.log, log_from, "daemon's input ring: DONE");
  h_log("attempts on the daemon's file: %u, of which %u succeeded", refused, done);
  if (refused == 0)
    h_error("no puncher reported its attempt on the daemon's file");
  if (done != 0)
    h_error("a worker punched a hole in the daemon's file");
  /*
   * Bounded: until its slot is faulted (the next housekeeping pass, 100 ms
   * at most) a hole costs the RT thread a fault per page it copies, and each
   * restarted puncher may cost as much again. Unwatched, these four cost
   * about four faults per cycle, every cycle (README: hole punching).
   */
  json_int_t cycles = h1.cycles - h0.cycles;
  h_log("punching: %.2f RT page faults per cycle",
        cycles > 0 ? (double)faults / (double)cycles : 0);
  if (cycles > 0 && faults > cycles * 2)
    h_error("the RT thread took %lld page faults in %lld cycles while workers punched holes",
            (long long)faults, (long long)cycles);

  /* The honest slots: never disturbed. */
  for (unsigned i = 0; i < N_HONEST; i++) {
    json_t *s = h_slot(&c, honest[i]);
    json_t *st = h_slot_stats(&c, honest[i]);
    h_log("%s: state %s, underruns %lld, restarts %lld", honest[i], h_str(s, "state"),
          (long long)h_int(st, "underruns"), (long long)h_int(st, "restarts"));
    if (strcmp(h_str(s, "state"), "running") != 0 || h_int(st, "restarts") != 0 ||
        h_int(s, "pid") != honest_pid[i])
      h_error("%s was disturbed by the punchers", honest[i]);
    json_decref(st);
    json_decref(s);
  }
  /* And once more after, with the punchers still at it. */
  measure_honest(p, &c, paths, "after the holes");
  H_CHECK(h_proc_alive(&d.proc), "runwayd died");

  h_probe_close(p);
  h_conn_close(&c);
  int rc = h_daemon_stop(&d);
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(rc, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
