/*
 * it_bad_input: runwayd survives hostile workers and hostile clients.
 *
 * (a) Hostile workers (worker_garbage, mapping its segment by hand), one slot
 *     per kind of damage, all at once, beside a passthrough slot carrying
 *     impulses:
 *       header     tries to write the segment header (the daemon's file,
 *                  which refuses every way), then random bytes over its own
 *                  positions
 *       out_write  an output position far in the future
 *       in_read    an input position ahead of what the daemon wrote
 *       rings      random event/message ring positions (the slot takes MIDI,
 *                  and MIDI flows into it)
 *     Each must get its slot faulted and restarted with a new worker (the
 *     slot's last_error says why, restarts rise); a fifth worker writes NaN
 *     and infinities with valid positions: they are replaced by 0 and counted
 *     in nonfinite_samples, and none reaches JACK. The passthrough slot
 *     plays on exactly: every impulse L later, no underrun (unless its own
 *     worker was kept from the CPU for L in all, or the graph skipped
 *     cycles), no restart. A round that disturbances of the graph left with
 *     too few exact impulses is played again (the faulting workers, restarted,
 *     misbehave anew), up to ROUNDS; then the machine is too busy.
 *
 * (b) Invalid control requests get the documented error codes and the
 *     connection stays usable; a line over 64 KiB gets too_large and the
 *     connection is closed; the daemon answers afterwards.
 *
 * Finally runwayd must exit 0 on SIGTERM. The test also runs in the ASan
 * build (label asan), where a sanitizer report makes that exit status fail.
 */
#include <errno.h>
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
#define L 4800 /* 100 ms: the passthrough slot must not underrun on a loaded machine */
#define GL 1200
#define ROUNDS 5 /* rounds of (a) at most, when disturbances spoil them */

struct hostile {
  const char *slot;
  const char *mode;
  bool faults;   /* expected to be faulted and restarted */
  bool rt_fault; /* detected by the RT thread (counted in `faults`) */
  json_int_t pid;
};

static struct hostile hostiles[] = {
    {"g_header", "header", true, false, 0},  {"g_outw", "out_write", true, true, 0},
    {"g_inr", "in_read", true, true, 0},     {"g_rings", "rings", true, false, 0},
    {"g_nan", "nonfinite", false, false, 0},
};
#define N_HOSTILE (sizeof(hostiles) / sizeof(hostiles[0]))

/* True once the process handles sig itself (its bit in SigCgt of /proc/PID/status). */
static bool catches(pid_t pid, int sig) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  bool yes = false;
  if (f == NULL)
    return false;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned long long mask;
    if (sscanf(line, "SigCgt: %llx", &mask) == 1)
      yes = (mask >> (sig - 1)) & 1;
  }
  fclose(f);
  return yes;
}

struct handler {
  pid_t pid;
  int sig;
};

static bool handler_installed(void *arg, char *seen, size_t len) {
  const struct handler *h = arg;
  (void)seen;
  (void)len;
  return catches(h->pid, h->sig);
}

/* Sends sig once the worker has installed its handler (a fresh process may not have yet). */
static void signal_worker(pid_t pid, int sig, const char *slot) {
  struct handler h = {pid, sig};
  H_WAIT_UNTIL(handler_installed, &h, 10000, "the worker of %s (pid %d) to handle signal %d", slot,
               (int)pid, sig);
  H_CHECK(kill(pid, sig) == 0, "signal %d to the worker of %s", sig, slot);
}

struct restarted {
  struct h_conn *c;
  const struct hostile *hw;
  json_t *slot;
};

/* The slot has a new worker, and last_error says why the old one went. */
static bool slot_restarted(void *arg, char *seen, size_t len) {
  struct restarted *w = arg;
  json_t *s = h_slot(w->c, w->hw->slot);
  H_CHECK(s != NULL, "slot %s vanished", w->hw->slot);
  json_int_t pid = h_int(s, "pid");
  if (pid > 0 && pid != w->hw->pid && h_str(s, "last_error") != NULL) {
    w->slot = s;
    return true;
  }
  char *text = json_dumps(s, JSON_COMPACT);
  snprintf(seen, len, "%s", text);
  free(text);
  json_decref(s);
  return false;
}

struct nonfinite {
  struct h_conn *c;
  json_int_t count;
};

static bool nonfinite_counted(void *arg, char *seen, size_t len) {
  struct nonfinite *w = arg;
  w->count = h_slot_stat(w->c, "g_nan", "nonfinite_samples");
  snprintf(seen, len, "nonfinite_samples %lld", (long long)w->count);
  return w->count > 1000;
}

static const char *port_of(json_t *slot, const char *dir, size_t i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

/* ---- (a) -------------------------------------------------------------------------- */

/* The NaN writer: non-finite samples counted and replaced by 0, never a fault. */
static void check_nan_writer(struct h_conn *c, struct h_probe *p) {
  json_t *s;
  struct nonfinite nf = {c, 0};
  h_wait_for(nonfinite_counted, &nf, 5000);
  json_int_t nonfinite = nf.count;
  s = h_slot(c, "g_nan");
  h_log("g_nan: nonfinite_samples %lld, state %s, restarts %lld; at the sink: %llu non-zero "
        "samples, %llu non-finite",
        (long long)nonfinite, h_str(s, "state"), (long long)h_int(s, "restarts"),
        (unsigned long long)h_probe_nonzero(p, 1), (unsigned long long)h_probe_nonfinite(p, 1));
  if (nonfinite <= 1000)
    h_error("g_nan: non-finite samples not counted (%lld)", (long long)nonfinite);
  if (strcmp(h_str(s, "state"), "running") != 0 || h_int(s, "restarts") != 0 ||
      h_int(s, "pid") != hostiles[N_HOSTILE - 1].pid)
    h_error("g_nan: a worker writing NaN is not a fault, but the slot is %s (restarts %lld)",
            h_str(s, "state"), (long long)h_int(s, "restarts"));
  json_decref(s);
  if (h_probe_nonfinite(p, 1) != 0)
    h_error("g_nan: %llu non-finite samples reached JACK",
            (unsigned long long)h_probe_nonfinite(p, 1));
  if (h_probe_nonzero(p, 1) == 0)
    h_error("g_nan: its finite samples (0.25) did not reach JACK");
}

/*
 * One round of (a): the hostile workers misbehave (the faulting ones anew
 * from the second round on) while pt carries impulses. True once pt's check
 * is decided (exact, or misaligned and reported); false when disturbances
 * left too few exact: the round is played again. *best: the most exact.
 */
static bool hostile_round(struct h_daemon *d, struct h_conn *c, struct h_probe *p, pid_t pt_pid,
                          unsigned round, unsigned *best) {
  /*
   * Impulses into pt, MIDI into g_rings, for the whole scenario (in frame
   * order), from half a second ahead: on a busy machine the test thread may
   * lose the CPU that long while it schedules them.
   */
  json_t *s;
  uint64_t skipped0 = h_daemon_skipped(c), start = h_probe_cycle(p);
  uint64_t pt_waited0 = h_sched_delay_ns(pt_pid);
  json_int_t pt_underruns0 = h_slot_stat(c, "pt", "underruns");
  uint64_t f = h_probe_now(p) + RATE / 2, last = f;
  uint32_t first_id = h_probe_n_events(p);
  for (unsigned k = 0; k < 150; k++) {
    f += 900 + (k * 53u) % 101u;
    h_probe_impulse(p, 0, f, 1.0f);
    h_probe_impulse(p, 1, f, 0.5f);
    if (k % 3 == 0) {
      h_probe_midi3(p, f + 7, 0x90, (uint8_t)(40 + k % 30), 100);
      h_probe_midi3(p, f + 300, 0x80, (uint8_t)(40 + k % 30), 0);
      f += 300;
    }
    last = f;
  }
  /* The scenario starts with everything running normally: a few impulses through pt first. */
  h_probe_wait_frame(p, h_probe_frame(p, first_id) + L + 4 * 900, 10000);

  for (size_t i = 0; i < N_HOSTILE; i++)
    if (round == 1 || hostiles[i].faults) /* the NaN writer misbehaves from round 1 on */
      signal_worker((pid_t)hostiles[i].pid, SIGUSR1, hostiles[i].slot);
  uint64_t t0 = h_now_ms();

  /* Each faulting slot: a new worker (which waits for SIGUSR2), and last_error says why. */
  for (size_t i = 0; i < N_HOSTILE; i++) {
    struct hostile *hw = &hostiles[i];
    if (!hw->faults)
      continue;
    struct restarted w = {c, hw, NULL};
    H_WAIT_UNTIL(slot_restarted, &w, 10000, "slot %s (%s) to be restarted, saying why", hw->slot,
                 hw->mode);
    s = w.slot;
    H_CHECK(h_proc_alive(&d->proc), "runwayd died");
    const char *state = h_str(s, "state");
    json_t *st = h_slot_stats(c, hw->slot);
    h_log("%s (%s): after %llu ms state %s, pid %lld -> %lld, restarts %lld, faults %lld, "
          "last_error \"%s\"",
          hw->slot, hw->mode, (unsigned long long)(h_now_ms() - t0), state, (long long)hw->pid,
          (long long)h_int(s, "pid"), (long long)h_int(s, "restarts"),
          (long long)h_int(st, "faults"), h_str(s, "last_error"));
    if (strcmp(state, "faulted") != 0 && strcmp(state, "restarting") != 0 &&
        strcmp(state, "starting") != 0)
      h_error("%s: state %s after the fault", hw->slot, state);
    if (h_int(s, "restarts") < (json_int_t)round)
      h_error("%s: restarts did not rise", hw->slot);
    if (hw->rt_fault && h_int(st, "faults") < 1)
      h_error("%s: the RT thread's faults counter did not rise", hw->slot);
    json_int_t new_pid = h_int(s, "pid");
    hw->pid = new_pid;
    json_decref(st);
    json_decref(s);
    /* Let the new worker attach; the slot runs again. */
    signal_worker((pid_t)new_pid, SIGUSR2, hw->slot);
    json_decref(h_wait_slot(c, hw->slot, "running", 0, 10000));
  }

  /* The NaN writer: counted and replaced, never faulted. */
  if (round == 1)
    check_nan_writer(c, p);

  /* The passthrough slot played on, exactly. */
  h_probe_wait_frame(p, last + L + 2 * PERIOD, 30000);

  bool skipped = h_daemon_skipped(c) != skipped0;
  if (skipped) {
    /* runwayd's clock jumped where the probe's may not have: a busy graph, not the slot. */
    h_log("pt: runwayd's clock skipped frames in round %u; checked leniently there", round);
  }
  /*
   * pt must not underrun because other slots fault. It may when its own
   * worker was kept from the CPU for as long as L in all (a busy machine
   * without real-time scheduling), or the graph itself skipped cycles: such
   * underruns are excused (impulses may then be lost, never moved).
   */
  double pt_waited_ms = (double)(h_sched_delay_ns(pt_pid) - pt_waited0) / 1e6;
  json_int_t pt_underruns = h_slot_stat(c, "pt", "underruns") - pt_underruns0;
  bool excused = pt_underruns > 0 && (pt_waited_ms >= L * 1000.0 / RATE || skipped);
  if (excused)
    h_log("pt: %lld underrun(s), excused: its worker waited %.1f ms for a CPU in all%s",
          (long long)pt_underruns, pt_waited_ms,
          skipped ? " and runwayd's clock skipped frames" : "");
  json_t *st = h_slot_stats(c, "pt");
  s = h_slot(c, "pt");
  h_log("pt: round %u: underruns %lld (%lld in all), restarts %lld, state %s", round,
        (long long)pt_underruns, (long long)h_int(st, "underruns"),
        (long long)h_int(st, "restarts"), h_str(s, "state"));
  struct h_check ck;
  struct h_impulses pt = {.out = 0,
                          .in = 0,
                          .delay = L,
                          .first_id = first_id,
                          .from = start,
                          .to = last + L + 1,
                          .tolerant = excused,
                          .min_exact = 20}; /* audio flows; where, every sample says */
  h_check(p, &pt, "pt beside the hostile workers", &ck);
  if (ck.verdict == H_MISALIGNED)
    h_error("pt: impulses not exactly L later while hostile workers were faulted (%s)",
            h_verdict_str(ck.verdict));
  else if (ck.verdict == H_DISTURBED)
    h_log("pt: round %u disturbed (%u exact, %u needed); again", round,
          ck.exact + ck.optional_exact, ck.floor);
  if (ck.exact + ck.optional_exact > *best)
    *best = ck.exact + ck.optional_exact;
  if (pt_underruns != 0 && !excused)
    h_error("pt: %lld underruns while other slots faulted (its worker waited %.1f ms for a CPU)",
            (long long)pt_underruns, pt_waited_ms);
  if (h_int(st, "restarts") != 0 || strcmp(h_str(s, "state"), "running") != 0)
    h_error("pt: disturbed (state %s, restarts %lld)", h_str(s, "state"),
            (long long)h_int(st, "restarts"));
  json_decref(st);
  json_decref(s);
  /* A misaligned round ends the rounds: it has failed. */
  return ck.verdict != H_DISTURBED;
}

static void hostile_workers(struct h_daemon *d, struct h_conn *c, struct h_probe *p) {
  char cmd[600];
  json_t *s = h_add_slot(c, "pt",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000);
  h_probe_path_latency(p, L);
  h_probe_count_only(p, 1); /* the NaN writer's output: counted, not recorded */
  h_connect(p, h_probe_out(p, 0), port_of(s, "inputs", 0));
  h_connect(p, port_of(s, "outputs", 0), h_probe_in(p, 0));
  pid_t pt_pid = (pid_t)h_int(s, "pid");
  json_decref(s);

  for (size_t i = 0; i < N_HOSTILE; i++) {
    struct hostile *hw = &hostiles[i];
    snprintf(cmd, sizeof(cmd), "exec '%s' %s", RWT_GARBAGE, hw->mode);
    bool midi = strcmp(hw->mode, "rings") == 0;
    s = h_add_slot(c, hw->slot,
                   json_pack("{s:s, s:i, s:i, s:b, s:i}", "exec", cmd, "inputs", 1, "outputs", 1,
                             "midi", midi, "latency_frames", GL),
                   10000);
    hw->pid = h_int(s, "pid");
    h_connect(p, h_probe_out(p, 1), port_of(s, "inputs", 0));
    if (midi)
      h_connect(p, h_probe_midi(p), h_str(json_object_get(s, "ports"), "midi"));
    if (strcmp(hw->mode, "nonfinite") == 0)
      h_connect(p, port_of(s, "outputs", 0), h_probe_in(p, 1));
    json_decref(s);
  }

  /*
   * Rounds of the scenario: a round whose check of pt a disturbance of the
   * graph left with too few exact impulses (xruns, late runs, runwayd's
   * clock skipping) is played again, the faulting workers misbehaving anew.
   */
  bool decided = false;
  unsigned best = 0;
  for (unsigned round = 1; round <= ROUNDS && !decided; round++)
    decided = hostile_round(d, c, p, pt_pid, round, &best);
  if (!decided)
    h_error("pt: at most %u of 150 impulses exact beside the hostile workers in %u rounds, each "
            "disturbed (xruns, late runs of the graph): the machine is too busy to measure",
            best, ROUNDS);
}

/* ---- (b) -------------------------------------------------------------------------- */

/* Sends a raw line; expects an error response with code. */
static void raw_expect(struct h_conn *c, const char *line, const char *code) {
  char *text;
  int err;
  H_CHECK(h_conn_send(c, line, strlen(line)) == 0, "send");
  text = h_conn_read_line(c, 10000, &err);
  H_CHECK(text != NULL, "no answer to %s: %s", line, strerror(-err));
  json_t *resp = json_loads(text, 0, NULL);
  const char *got = resp ? h_error_code(resp) : "(not JSON)";
  if (got == NULL || strcmp(got, code) != 0)
    h_error("request %.*s: expected %s, got %s", (int)strcspn(line, "\n"), line, code, text);
  else
    h_log("request %.*s -> %s", (int)strcspn(line, "\n"), line, code);
  json_decref(resp);
  free(text);
}

static void expect(struct h_conn *c, const char *what, const char *cmd, json_t *args,
                   const char *code) {
  json_t *resp = h_call_error(c, cmd, args, code);
  const char *msg = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
  h_log("%s -> %s (\"%s\")", what, code, msg ? msg : "");
  if (msg == NULL || msg[0] == '\0')
    h_error("%s: the error has no message", what);
  json_decref(resp);
}

static void bad_requests(struct h_daemon *d) {
  struct h_conn c;
  H_CHECK(h_conn_open(&c, d->socket) == 0, "connect");
  raw_expect(&c, "{not json\n", "bad_request");
  raw_expect(&c, "[1,2,3]\n", "bad_request");
  raw_expect(&c, "{\"id\":7,\"cmd\":\"no.such.command\"}\n", "unknown_command");
  expect(&c, "slot.add with a number as name", "slot.add",
         json_pack("{s:i, s:s}", "name", 5, "plugin", "passthrough"), "invalid_argument");
  expect(&c, "slot.add with a string as inputs", "slot.add",
         json_pack("{s:s, s:s, s:s}", "name", "x0", "plugin", "passthrough", "inputs", "2"),
         "invalid_argument");
  expect(&c, "slot.add with an unknown argument", "slot.add",
         json_pack("{s:s, s:s, s:i}", "name", "x0", "plugin", "passthrough", "bogus", 1),
         "invalid_argument");
  expect(&c, "slot.remove of a missing slot", "slot.remove", json_pack("{s:s}", "name", "nosuch"),
         "not_found");
  expect(&c, "slot.restart of a missing slot", "slot.restart", json_pack("{s:s}", "name", "nosuch"),
         "not_found");
  expect(&c, "stats of a missing slot", "stats", json_pack("{s:s}", "name", "nosuch"), "not_found");
  expect(&c, "slot.add of an existing name", "slot.add",
         json_pack("{s:s, s:s}", "name", "pt", "plugin", "passthrough"), "exists");
  expect(&c, "slot.add of an unknown plugin", "slot.add",
         json_pack("{s:s, s:s}", "name", "x1", "plugin", "no-such-plugin"), "not_found");
  expect(&c, "slot.add with plugin and exec", "slot.add",
         json_pack("{s:s, s:s, s:s}", "name", "x2", "plugin", "passthrough", "exec", "/bin/true"),
         "invalid_argument");
  expect(&c, "slot.add with inputs=1000", "slot.add",
         json_pack("{s:s, s:s, s:i}", "name", "x3", "plugin", "passthrough", "inputs", 1000),
         "invalid_argument");
  expect(&c, "slot.add with latency_ms=-1", "slot.add",
         json_pack("{s:s, s:s, s:i}", "name", "x4", "plugin", "passthrough", "latency_ms", -1),
         "invalid_argument");
  expect(&c, "slot.add with an invalid name", "slot.add",
         json_pack("{s:s, s:s}", "name", "bad name/..", "plugin", "passthrough"),
         "invalid_argument");

  /* The same connection still works, and nothing was created. */
  json_t *r = h_call(&c, "status", NULL);
  json_decref(r);
  const char *never[] = {"x0", "x1", "x2", "x3", "x4"};
  for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
    json_t *s = h_slot(&c, never[i]);
    if (s != NULL)
      h_error("a rejected slot.add created slot %s", never[i]);
    json_decref(s);
  }
  h_conn_close(&c);

  /* A line over 64 KiB: too_large, then the connection is closed. */
  H_CHECK(h_conn_open(&c, d->socket) == 0, "connect");
  size_t big = 70 * 1024;
  char *line = malloc(big + 2);
  memset(line, 'a', big);
  line[0] = '"';
  line[big] = '\n';
  line[big + 1] = '\0';
  int rc = h_conn_send(&c, line, big + 1);
  free(line);
  if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET)
    h_error("sending the long line: %s", strerror(-rc));
  int err;
  char *text = h_conn_read_line(&c, 10000, &err);
  if (text == NULL) {
    h_error("no answer to a line over 64 KiB (%s)", strerror(-err));
  } else {
    json_t *resp = json_loads(text, 0, NULL);
    const char *code = resp ? h_error_code(resp) : NULL;
    if (code == NULL || strcmp(code, "too_large") != 0)
      h_error("a line over 64 KiB: expected too_large, got %s", text);
    else
      h_log("a line of %zu bytes -> too_large", big);
    json_decref(resp);
    free(text);
    text = h_conn_read_line(&c, 10000, &err);
    if (text != NULL || (err != -EPIPE && err != -ECONNRESET))
      h_error("the connection stayed open after too_large (%s)", text ? text : strerror(-err));
    free(text);
  }
  h_conn_close(&c);

  /* The daemon answers afterwards. */
  H_CHECK(h_conn_open(&c, d->socket) == 0, "connect after too_large");
  r = h_call(&c, "slot.list", NULL);
  h_log("after the bad requests: %zu slots listed, daemon alive",
        json_array_size(json_object_get(r, "slots")));
  json_decref(r);
  h_conn_close(&c);
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[64];

  h_init("bad_input", 85);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 2, true, 2, 0, 0);
  h_watch_skips(p, &d);

  hostile_workers(&d, &c, p);
  H_CHECK(h_proc_alive(&d.proc), "runwayd died");
  bad_requests(&d);
  H_CHECK(h_proc_alive(&d.proc), "runwayd died");

  h_probe_close(p);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly (a sanitizer report?): %s",
            h_status_str(status, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
