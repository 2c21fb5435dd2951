/*
 * it_python_worker, it_go_worker: a language binding's example gain worker
 * (clients/python/examples/gain.py, clients/go/examples/gain) in real slots
 * of a real runwayd on a real JACK server, stereo, at 48 kHz, a 256-frame
 * period and L = 2400 frames (50 ms). At 0 dB the gain is bit exact.
 *
 *   A. --exec: impulses on both channels come out exactly L later; the
 *      slot's pid is the worker's own; a gain change lands at its sample
 *      (the first changed output frame F has F - L at the start of the cycle
 *      the RT thread took the change in, the ramp ends exactly 5 ms later on
 *      exactly the new level); after SIGKILL the restarted worker plays at
 *      the gain it had (impulses exactly L later, exactly scaled).
 *   B. --external: the test starts the worker; impulses exactly L later;
 *      after SIGKILL and a new worker, the gain it had.
 *   C. The worker sleeps L - 3 periods inside every 20th block (34 ms): no
 *      underrun at default settings, and the lead shows the pauses ate the
 *      write-ahead (its minimum falls below 4 periods).
 *   D. The worker sleeps 2 L inside every 100th block, with a constant level
 *      flowing: the underrun frames runwayd counts equal the silence in the
 *      recording (each gap is its zeros plus the 63-frame fade of the last
 *      sample before it), and each gap is as long as the pause beyond L,
 *      within a few periods, and no longer.
 *
 * A pause the scheduler stretched (the worker then waited for a CPU; see
 * h_sched_delay_ns), or one while the graph itself ran late (xruns, late
 * runs, frames runwayd skipped), is excused from C's rule, a worker's CPU
 * wait from D's bound, and both are logged.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 256
#define L 2400
#define RAMP (RATE / 200) /* the examples' gain ramp: 5 ms */
#define FADE 64           /* RW_FADE_FRAMES: the daemon's fade over a gap's edges */
#define DC 0.5f

#if defined(RWT_PYTHON)
#define RUNTIME "python"
#elif defined(RWT_GO_GAIN)
#define RUNTIME "go"
#else
#error "RWT_PYTHON (with RWT_SOURCE_DIR, RWT_WORKER_LIB) or RWT_GO_GAIN must be defined"
#endif

static struct h_jack jack;
static struct h_daemon d;
static struct h_conn c;
static struct h_probe *p;
static char env_socket[600];

/* The --exec command line: plain words, which runwayd runs without a shell (env execs). */
static void exec_cmd(char *buf, size_t len, const char *extra) {
#if defined(RWT_PYTHON)
  snprintf(buf, len,
           "env PYTHONPATH=%s/clients/python RUNWAY_WORKER_LIB=%s %s "
           "%s/clients/python/examples/gain.py %s",
           RWT_SOURCE_DIR, RWT_WORKER_LIB, RWT_PYTHON, RWT_SOURCE_DIR, extra);
#else
  snprintf(buf, len, "%s %s", RWT_GO_GAIN, extra);
#endif
}

/* Starts the worker for --external slot `slot` ourselves. */
static void spawn_external(struct h_proc *w, const char *slot, const char *log_name) {
  char log[4200], env_slot[128];
  snprintf(log, sizeof(log), "%s/%s.log", h_tmpdir(), log_name);
  snprintf(env_slot, sizeof(env_slot), "RUNWAY_SLOT=%s", slot);
#if defined(RWT_PYTHON)
  static char pypath[4200], lib[4200], script[4200];
  snprintf(pypath, sizeof(pypath), "PYTHONPATH=%s/clients/python", RWT_SOURCE_DIR);
  snprintf(lib, sizeof(lib), "RUNWAY_WORKER_LIB=%s", RWT_WORKER_LIB);
  snprintf(script, sizeof(script), "%s/clients/python/examples/gain.py", RWT_SOURCE_DIR);
  const char *argv[] = {RWT_PYTHON, script, NULL};
  const char *set[] = {env_socket, env_slot, pypath, lib, NULL};
#else
  const char *argv[] = {RWT_GO_GAIN, NULL};
  const char *set[] = {env_socket, env_slot, NULL};
#endif
  const char *unset[] = {"RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD", NULL};
  h_spawn(w, RUNTIME " gain", argv, set, unset, log);
}

static const char *port_of(json_t *slot, const char *dir, unsigned i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

/* Adds a stereo slot (args stolen), wires it from the probe's outputs to its inputs, waits for it.
 */
static json_t *add_slot(const char *name, json_t *args) {
  json_object_set_new(args, "inputs", json_integer(2));
  json_object_set_new(args, "outputs", json_integer(2));
  json_object_set_new(args, "latency_frames", json_integer(L));
  json_object_set_new(args, "name", json_string(name));
  json_t *r = h_call(&c, "slot.add", args);
  for (unsigned i = 0; i < 2; i++) {
    h_connect(p, h_probe_out(p, i), port_of(r, "inputs", i));
    h_connect(p, port_of(r, "outputs", i), h_probe_in(p, i));
  }
  json_decref(r);
  return h_wait_slot(&c, name, "running", 0, 20000);
}

static void remove_slot(const char *name) {
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", name)));
}

static json_int_t stat_of(const char *slot, const char *key) { return h_slot_stat(&c, slot, key); }

/* The command name of a process (/proc/PID/comm). */
static const char *comm_of(pid_t pid, char *buf, size_t len) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
  char *text = h_file_read(path);
  snprintf(buf, len, "%s", text ? text : "?");
  free(text);
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

/*
 * Ten impulses on each channel: each exactly L later, scaled by exactly
 * `gain` (measured again when a disturbance of the graph or an underrun
 * spoiled them).
 */
static void impulses(const char *slot, float gain, uint64_t *checked, const char *label) {
  struct h_path paths[2];
  for (unsigned i = 0; i < 2; i++) {
    paths[i] = (struct h_path){
        .out = i, .in = i, .delay = L, .gain = gain, .slots = {slot}, .checked_to = *checked};
    snprintf(paths[i].label, sizeof(paths[i].label), "%s, channel %u", label, i + 1);
  }
  struct h_train train = {.count = 10, .gap = 1100, .lead = 4800};
  if (!h_measure(p, &c, paths, 2, &train))
    h_error("%s: impulses not exactly L later, scaled by exactly %.9g", label, (double)gain);
  *checked = paths[0].checked_to > paths[1].checked_to ? paths[0].checked_to : paths[1].checked_to;
}

static float level_of(double db) { return (float)pow(10.0, db / 20.0); }

struct steady {
  float want;
  float buf[2 * PERIOD + RAMP];
};

static bool output_steady(void *arg, char *seen, size_t len) {
  struct steady *w = arg;
  const uint32_t span = 2 * PERIOD + RAMP;
  uint64_t now = h_probe_cycle(p);
  h_probe_wait_frame(p, now, 5000);
  h_probe_samples(p, 0, now - span, now, w->buf);
  for (uint32_t k = 0; k < span; k++) {
    if (w->buf[k] != w->want) {
      snprintf(seen, len, "%.9g at frame %llu", (double)w->buf[k],
               (unsigned long long)(now - span + k));
      return false;
    }
  }
  return true;
}

/* Waits until input 0 has played `want` for two periods and a ramp. */
static void wait_steady(float want) {
  struct steady *w = malloc(sizeof(*w));
  w->want = want;
  H_WAIT_UNTIL(output_steady, w, 15000, "the output to settle at %.9g", (double)want);
  free(w);
}

/*
 * param.set gain_db db while the level DC flows (old level `old`). Returns
 * false when it found a problem while JACK or the slot was disturbed (the
 * caller repeats).
 */
static bool gain_change(const char *slot, double db, float old, uint64_t phase) {
  const float want = level_of(db) * DC;
  uint64_t xruns0 = h_probe_xruns(p), gaps0 = h_probe_gaps(p);
  json_int_t u0 = stat_of(slot, "underruns");
  uint64_t c_send = h_probe_cycle(p);
  json_decref(h_call(&c, "param.set",
                     json_pack("{s:s, s:s, s:f}", "name", slot, "param", "gain_db", "value", db)));
  uint64_t c_resp = h_probe_cycle(p);
  const uint64_t from = c_send + L - 2 * PERIOD, to = c_resp + L + 3 * PERIOD + RAMP;
  h_probe_wait_frame(p, to, 10000);
  size_t n = (size_t)(to - from), f = 0;
  float *y = malloc(n * sizeof(float));
  h_probe_samples(p, 0, from, to, y);
  while (f < n && y[f] == old)
    f++;
  char why[300] = "";
  uint64_t at = from + f - L;
  if (f == 0 || f == n)
    snprintf(why, sizeof(why), "the output %s the old level %.9g in [%llu, %llu)",
             f ? "never left" : "was not yet", (double)old, (unsigned long long)from,
             (unsigned long long)to);
  else if ((at + PERIOD - phase) % PERIOD != 0)
    snprintf(why, sizeof(why), "F - L = %llu is not a cycle start", (unsigned long long)at);
  else if (at < c_send || at > c_resp + PERIOD)
    snprintf(why, sizeof(why), "F - L = %llu is outside the cycles of the request [%llu, %llu]",
             (unsigned long long)at, (unsigned long long)c_send,
             (unsigned long long)(c_resp + PERIOD));
  else if (f + RAMP - 1 >= n || y[f + RAMP - 1] != want || y[f + RAMP - 2] == want)
    snprintf(why, sizeof(why), "the ramp does not end exactly %u frames after F on %.9g (%.9g)",
             RAMP, (double)want, f + RAMP - 1 < n ? (double)y[f + RAMP - 1] : -1.0);
  for (size_t i = f + RAMP - 1; !why[0] && i < n; i++)
    if (y[i] != want)
      snprintf(why, sizeof(why), "after the ramp, frame %llu is %.9g, not %.9g",
               (unsigned long long)(from + i), (double)y[i], (double)want);
  free(y);
  bool disturbed =
      h_probe_xruns(p) != xruns0 || h_probe_gaps(p) != gaps0 || stat_of(slot, "underruns") != u0;
  /* A change that checked out exactly counts, disturbed or not. */
  if (disturbed && why[0]) {
    h_log("gain change to %+g dB disturbed by an xrun or an underrun (%s); repeating", db,
          why[0] ? why : "no finding");
    return false;
  }
  if (why[0])
    h_error("gain change to %+g dB: %s", db, why);
  else
    h_log("gain change to %+g dB: first new sample F = %llu, F - L = %llu, a cycle start taken "
          "%lld frames after the request's cycle; ramp of %u frames to exactly %.9g",
          db, (unsigned long long)(from + f), (unsigned long long)at,
          (long long)at - (long long)c_send, RAMP, (double)want);
  return true;
}

/* Waits for the slot to run a worker other than `old` (0: any); returns its pid. */
static pid_t wait_new_worker(const char *slot, pid_t old) {
  json_t *s = h_wait_slot(&c, slot, "running", old, 20000);
  pid_t pid = (pid_t)h_int(s, "pid");
  json_decref(s);
  return pid;
}

/* ---- A and B ------------------------------------------------------------------------ */

static void exec_slot(uint64_t *checked) {
  char cmd[8192], name[64];
  exec_cmd(cmd, sizeof(cmd), "");
  json_t *s = add_slot("ex", json_pack("{s:s}", "exec", cmd));
  pid_t pid = (pid_t)h_int(s, "pid");
  json_decref(s);
  h_log("A. --exec slot running, worker pid %d (%s)", (int)pid, comm_of(pid, name, sizeof(name)));
  if (strcmp(name, "sh") == 0 || strcmp(name, "env") == 0)
    h_error("the slot's pid %d is %s, not the worker", (int)pid, name);
  impulses("ex", 1.0f, checked, "A. --exec, 0 dB");

  uint64_t phase = h_probe_sink_first(p) % PERIOD;
  h_probe_dc(p, 0, DC);
  wait_steady(DC);
  unsigned tries = 0;
  while (!gain_change("ex", -6.0, DC, phase)) {
    H_CHECK(++tries < 12, "twelve gain changes disturbed: the machine is too busy to measure");
    json_decref(
        h_call(&c, "param.set",
               json_pack("{s:s, s:s, s:f}", "name", "ex", "param", "gain_db", "value", 0.0)));
    wait_steady(DC);
  }
  h_probe_dc(p, 0, 0.0f);
  /* The level stops from the probe's next run on: nothing of it is due after that + L. */
  h_probe_wait_frame(p, h_probe_cycle(p) + 2 * PERIOD, 5000);
  *checked = h_probe_cycle(p) + L + PERIOD;

  H_CHECK(kill(pid, SIGKILL) == 0, "SIGKILL the worker");
  pid_t again = wait_new_worker("ex", pid);
  json_t *v = h_call(&c, "param.get", json_pack("{s:s, s:s}", "name", "ex", "param", "gain_db"));
  h_log("A. after SIGKILL a new worker runs (pid %d); gain_db is %g", (int)again,
        json_number_value(json_object_get(v, "value")));
  json_decref(v);
  h_probe_wait_frame(p, *checked, 10000);
  impulses("ex", level_of(-6.0), checked, "A. after SIGKILL, -6 dB kept");
  remove_slot("ex");
}

static void external_slot(uint64_t *checked) {
  struct h_proc w1, w2;
  json_decref(h_call(&c, "slot.add",
                     json_pack("{s:s, s:b, s:i, s:i, s:i}", "name", "ext", "external", 1, "inputs",
                               2, "outputs", 2, "latency_frames", L)));
  json_t *s = h_slot(&c, "ext");
  for (unsigned i = 0; i < 2; i++) {
    h_connect(p, h_probe_out(p, i), port_of(s, "inputs", i));
    h_connect(p, port_of(s, "outputs", i), h_probe_in(p, i));
  }
  json_decref(s);
  spawn_external(&w1, "ext", RUNTIME "-gain-1");
  pid_t pid = wait_new_worker("ext", 0);
  if (pid != w1.pid)
    h_error("B. the slot's pid %d is not the attached worker's %d", (int)pid, (int)w1.pid);
  json_t *st = h_slot_stats(&c, "ext");
  h_log("B. --external worker pid %d attached; silence while waiting: %lld frames "
        "(no_worker_frames), %lld underruns",
        (int)w1.pid, (long long)h_int(st, "no_worker_frames"), (long long)h_int(st, "underruns"));
  if (h_int(st, "no_worker_frames") <= 0)
    h_error("B. the wait for the first worker is not counted in no_worker_frames");
  json_decref(st);
  *checked = h_probe_cycle(p) + L + PERIOD;
  impulses("ext", 1.0f, checked, "B. --external, 0 dB");

  json_decref(
      h_call(&c, "param.set",
             json_pack("{s:s, s:s, s:f}", "name", "ext", "param", "gain_db", "value", -6.0)));
  /* runwayd holds the value from its answer on: the next worker gets it from runwayd. */
  kill(w1.pid, SIGKILL);
  h_proc_wait(&w1, 5000);
  spawn_external(&w2, "ext", RUNTIME "-gain-2");
  pid = wait_new_worker("ext", w1.pid);
  h_log("B. after SIGKILL a new worker (pid %d) attached", (int)pid);
  *checked = h_probe_cycle(p) + L + PERIOD;
  impulses("ext", level_of(-6.0), checked, "B. after SIGKILL, -6 dB kept");
  remove_slot("ext");
  if (!h_proc_wait(&w2, 10000))
    h_error("B. the attached worker did not exit when its slot went away");
}

/* ---- C: pauses of L - 3 periods ------------------------------------------------------ */

static void short_pauses(void) {
  const double pause_ms = (L - 3 * PERIOD) * 1000.0 / RATE;
  const unsigned every = 20, seconds = 4;
  char extra[128], cmd[8192];
  snprintf(extra, sizeof(extra), "--pause-ms %.3f --pause-every %u", pause_ms, every);
  exec_cmd(cmd, sizeof(cmd), extra);
  json_t *s = add_slot("pz", json_pack("{s:s}", "exec", cmd));
  pid_t pid = (pid_t)h_int(s, "pid");
  json_decref(s);

  /* A window of 100 ms at a time: its underruns, and how long the worker waited for a CPU. */
  unsigned windows = 0, excused = 0;
  json_int_t u_prev = stat_of("pz", "underruns");
  uint64_t w_prev = h_sched_delay_ns(pid), most_waited = 0;
  uint64_t graph_prev = h_probe_xruns(p) + h_probe_gaps(p) + h_daemon_skipped(&c);
  for (uint64_t end = h_now_ms() + seconds * 1000; h_now_ms() < end; windows++) {
    h_sleep_ms(100); /* paces the windows */
    json_int_t u = stat_of("pz", "underruns");
    uint64_t w = h_sched_delay_ns(pid);
    uint64_t waited_us = (w - w_prev) / 1000;
    /* xruns, late runs, frames runwayd skipped: the graph itself ran late meanwhile. */
    uint64_t graph = h_probe_xruns(p) + h_probe_gaps(p) + h_daemon_skipped(&c);
    bool graph_late = graph != graph_prev;
    graph_prev = graph;
    if (waited_us > most_waited)
      most_waited = waited_us;
    if (u > u_prev) {
      /*
       * The pause leaves 3 periods less the timer's slack: 9 ms of CPU waits
       * eat it, and so does a graph that runs late (a busy machine without
       * real-time scheduling), which delays the worker's wake-ups.
       */
      if (waited_us > 5000 || graph_late) {
        excused++;
        h_log("C. %lld underrun(s) while the worker waited %.1f ms for a CPU%s: excused",
              (long long)(u - u_prev), waited_us / 1000.0,
              graph_late ? " and the graph ran late" : "");
      } else {
        h_error("C. %lld underrun(s) with pauses of L - 3 periods (%.1f ms; the worker waited "
                "%.1f ms for a CPU)",
                (long long)(u - u_prev), pause_ms, waited_us / 1000.0);
      }
    }
    u_prev = u;
    w_prev = w;
  }
  json_t *st = h_slot_stats(&c, "pz");
  json_int_t head = h_int(st, "headroom_min_frames");
  h_log(
      "C. %.1f ms pauses in every %uth block for %u s: underruns %lld (%u windows excused), "
      "smallest lead %lld frames (L = %d), cycles %lld; the worker waited up to %.1f ms for a CPU",
      pause_ms, every, seconds, (long long)h_int(st, "underruns"), excused, (long long)head, L,
      (long long)h_int(st, "cycles"), most_waited / 1000.0);
  /* The pauses really ate the write-ahead: without them the lead stays near L - period. */
  if (head < 0 && h_int(st, "underruns") == 0)
    h_error("C. the lead went negative with no underrun counted");
  if (head > 4 * PERIOD)
    h_error("C. the smallest lead was %lld frames: the worker did not pause as asked",
            (long long)head);
  if (excused * 3 > windows)
    h_error("C. %u of %u windows excused: the machine is too busy to tell", excused, windows);
  json_decref(st);
  remove_slot("pz");
}

/* ---- D: pauses of 2 L: the silence counted is the silence played ----------------------------- */

struct quiet {
  json_int_t underrun_frames;
  uint64_t at;
};

/* Input 0 played DC for the last 4 periods, and still does through a read of the stats. */
static bool quiet_now(void *arg, char *seen, size_t len) {
  struct quiet *q = arg;
  const uint32_t span = 4 * PERIOD;
  float buf[4 * PERIOD];
  uint64_t before = h_probe_cycle(p);
  h_probe_wait_frame(p, before, 5000);
  h_probe_samples(p, 0, before - span, before, buf);
  for (uint32_t k = 0; k < span; k++) {
    if (buf[k] != DC) {
      snprintf(seen, len, "%.9g at frame %llu", (double)buf[k],
               (unsigned long long)(before - span + k));
      return false;
    }
  }
  json_int_t u = stat_of("gap", "underrun_frames");
  uint64_t after = h_probe_cycle(p) + PERIOD;
  h_probe_wait_frame(p, after, 5000);
  /* Still quiet through the stats read: the count belongs to what came before `after`. */
  uint32_t n = (uint32_t)(after - before);
  float *y = malloc(n * sizeof(float));
  h_probe_samples(p, 0, before, after, y);
  bool quiet = true;
  for (uint32_t k = 0; k < n && quiet; k++)
    quiet = y[k] == DC;
  free(y);
  if (!quiet) {
    snprintf(seen, len, "a gap while the stats were read");
    return false;
  }
  q->underrun_frames = u;
  q->at = after;
  return true;
}

/* Waits until input 0 played DC for the last 4 periods; returns that frame, after stats. */
static uint64_t quiet_point(json_int_t *underrun_frames) {
  struct quiet q;
  H_WAIT_UNTIL(quiet_now, &q, 15000, "D. the output to stay quiet for 4 periods");
  *underrun_frames = q.underrun_frames;
  return q.at;
}

/*
 * One window between two quiet points: returns false when JACK disturbed the
 * recording meanwhile (an xrun, a run the probe missed or began late: its frames
 * read as zeros), so the window says nothing and is measured again.
 */
static bool gap_window(pid_t pid, unsigned pause_ms, unsigned every) {
  json_int_t u0, u1;
  uint64_t xruns0 = h_probe_xruns(p), holes0 = h_probe_gaps(p);
  uint64_t t0 = quiet_point(&u0), w0 = h_sched_delay_ns(pid);
  h_sleep_ms(1600); /* the window's length: three pauses; short, so JACK seldom disturbs it */
  uint64_t t1 = quiet_point(&u1), waited_us = (h_sched_delay_ns(pid) - w0) / 1000;
  if (h_probe_xruns(p) != xruns0 || h_probe_gaps(p) != holes0) {
    h_log("D. JACK disturbed the recording of [%llu, %llu) (xruns %llu -> %llu, late "
          "or skipped probe runs %llu -> %llu); measuring again",
          (unsigned long long)t0, (unsigned long long)t1, (unsigned long long)xruns0,
          (unsigned long long)h_probe_xruns(p), (unsigned long long)holes0,
          (unsigned long long)h_probe_gaps(p));
    return false;
  }

  size_t n = (size_t)(t1 - t0);
  float *y = malloc(n * sizeof(float));
  h_probe_samples(p, 0, t0, t1, y);
  uint64_t silence = 0;
  unsigned gaps = 0, strays = 0;
  const int64_t beyond = (int64_t)pause_ms * RATE / 1000 - L; /* the pause beyond L, in frames */
  size_t settled = 0; /* samples before this may be the worker's fade-in after a gap */
  for (size_t i = 0; i < n;) {
    if (y[i] == DC || (i < settled && y[i] > 0.0f && y[i] < DC)) {
      i++; /* the level, or the worker's audio fading back in after a gap */
      continue;
    }
    /*
     * A gap starts with the last sample played (DC) fading out exactly as the
     * daemon does it, then silence, until the worker's first frame.
     */
    size_t k = i;
    for (uint32_t j = 0; k < n; k++, j++) {
      float fade = j < FADE ? DC * (1.0f - (float)(j + 1) * (1.0f / FADE)) : 0.0f;
      if (y[k] != fade)
        break;
    }
    if (k == i) {
      size_t z = i;
      while (z < n && y[z] != DC)
        z++;
      if (strays++ < 4)
        h_error("D. frames [%llu, %llu) (%.9g first): neither the level, a gap nor a fade-in "
                "after one",
                (unsigned long long)(t0 + i), (unsigned long long)(t0 + z), (double)y[i]);
      i = z;
      continue;
    }
    uint64_t gap = k - i;
    h_log("D. gap %u at frame %llu: %llu frames of silence (fade-out included); the pause "
          "beyond L is %lld",
          gaps, (unsigned long long)(t0 + i), (unsigned long long)gap, (long long)beyond);
    if ((int64_t)gap < beyond - PERIOD)
      h_error("D. gap of %llu frames, shorter than the pause beyond L (%lld): impossible",
              (unsigned long long)gap, (long long)beyond);
    if ((int64_t)gap > beyond + 3 * PERIOD + (int64_t)(waited_us * RATE / 1000000))
      h_error("D. gap of %llu frames, more than the pause beyond L (%lld) and 3 periods (the "
              "worker waited %.1f ms for a CPU)",
              (unsigned long long)gap, (long long)beyond, waited_us / 1000.0);
    silence += gap;
    gaps++;
    i = k;
    settled = k + 2 * FADE;
  }
  free(y);
  json_t *st = h_slot_stats(&c, "gap");
  h_log("D. %u ms pauses in every %uth block: %u gaps in frames [%llu, %llu), %llu frames of "
        "silence recorded, runwayd counted %lld underrun frames (%lld underruns, skipped_frames "
        "%lld, smallest lead %lld)",
        pause_ms, every, gaps, (unsigned long long)t0, (unsigned long long)t1,
        (unsigned long long)silence, (long long)(u1 - u0), (long long)h_int(st, "underruns"),
        (long long)h_int(st, "skipped_frames"), (long long)h_int(st, "headroom_min_frames"));
  json_decref(st);
  if (gaps < 2)
    h_error("D. only %u gaps in 1.6 s of pauses every %u blocks", gaps, every);
  if ((uint64_t)(u1 - u0) != silence)
    h_error("D. runwayd counted %lld underrun frames, the recording has %llu frames of silence",
            (long long)(u1 - u0), (unsigned long long)silence);
  return true;
}

static void long_pauses(void) {
  const unsigned pause_ms = 2 * L * 1000 / RATE, every = 100;
  char extra[128], cmd[8192];
  snprintf(extra, sizeof(extra), "--pause-ms %u --pause-every %u", pause_ms, every);
  exec_cmd(cmd, sizeof(cmd), extra);
  json_t *s = add_slot("gap", json_pack("{s:s}", "exec", cmd));
  pid_t pid = (pid_t)h_int(s, "pid");
  json_decref(s);
  h_probe_dc(p, 0, DC);
  unsigned tries = 0;
  while (!gap_window(pid, pause_ms, every))
    H_CHECK(++tries < 12,
            "D. twelve windows disturbed by JACK: the machine is too busy to measure");
  h_probe_dc(p, 0, 0.0f);
  remove_slot("gap");
}

int main(void) {
  h_init(RUNTIME "_worker", 170);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  snprintf(env_socket, sizeof(env_socket), "RUNWAY_SOCKET=%s", d.socket);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  p = h_probe_open(&jack, 2, false, 2, 0, 0);
  h_probe_path_latency(p, L);

  uint64_t checked = 0;
  exec_slot(&checked);
  external_slot(&checked);
  short_pauses();
  long_pauses();

  h_probe_close(p);
  h_conn_close(&c);
  char buf[64];
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
