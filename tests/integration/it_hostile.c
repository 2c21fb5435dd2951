/*
 * it_hostile: a catalogue of hostile workers at once beside an honest slot.
 *
 * One passthrough slot (pt) carries impulse trains; beside it, one slot per
 * kind of hostility runs worker_garbage (tests/integration/worker_garbage.c),
 * which plays a correct silent worker until SIGUSR1 and then:
 *
 *   h_punch   punches holes in its output ring every 2 ms (and tries the
 *             daemon's file): faulted, the hole named in last_error
 *   h_header  tries every way to write the daemon's file, then scribbles its
 *             positions: faulted and restarted
 *   h_proc    tries runwayd's /proc/PID/fd (other slots' segments),
 *             /proc/PID/mem, ptrace and process_vm_readv: every one refused
 *   h_socket  connects to the control socket and asks to remove pt:
 *             refused, pt stays
 *   h_fork    starts three children holding its segment and exits: restarted,
 *             and the children die with it
 *   h_flood   fills its message ring as fast as runwayd drains it and floods
 *             its output with lines: runwayd keeps answering, the lines are
 *             tagged with the slot's name
 *   h_mute    never answers a state request: state.save is answered with an
 *             error after runwayd's timeout
 *
 * Checked throughout: pt measures exactly L before, while (not in a
 * sanitizer build, see below) and after they misbehave (the flood removed
 * first), and is never restarted nor removed; at the end, with the hostile
 * slots removed, runwayd holds the descriptors it held before them
 * (segments included), every process they started is gone, and runwayd
 * exits 0. The test runs in the ASan build too (label asan), where a
 * sanitizer report makes that exit status fail. Restarted instances behave
 * (--no-hold), so each slot misbehaves once.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#ifndef RWT_GARBAGE
#error "RWT_GARBAGE must be defined by the build"
#endif
#ifndef RWT_SANITIZED
#define RWT_SANITIZED 0
#endif

#define RATE 48000
#define PERIOD 128
#define L 4800 /* 100 ms: the honest slot must not underrun on a loaded (or sanitized) machine */
#define GL 1200

struct hostile {
  const char *slot;
  const char *mode;
  json_int_t pid;
};

static struct hostile hostiles[] = {
    {"h_punch", "punch", 0},   {"h_header", "header", 0}, {"h_proc", "proc", 0},
    {"h_socket", "socket", 0}, {"h_fork", "fork", 0},     {"h_flood", "flood", 0},
    {"h_mute", "mute", 0},
};
#define N_HOSTILE (sizeof(hostiles) / sizeof(hostiles[0]))

/* runwayd's open descriptors, and how many of them are segment files. */
static unsigned count_fds(pid_t pid, unsigned *segments) {
  char path[64], link[PATH_MAX + 64], target[256];
  unsigned n = 0;
  *segments = 0;
  snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  DIR *dir = opendir(path);
  H_CHECK(dir != NULL, "cannot list %s (the test runs as root: it may)", path);
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    n++;
    snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
    ssize_t len = readlink(link, target, sizeof(target) - 1);
    target[len > 0 ? len : 0] = '\0';
    if (strstr(target, "memfd:runway:") != NULL)
      (*segments)++;
  }
  closedir(dir);
  return n;
}

/* True once the process handles sig itself (its bit in SigCgt of /proc/PID/status). */
static bool catches(void *arg, char *seen, size_t len) {
  const json_int_t *pid = arg;
  char path[64], line[256];
  bool yes = false;
  snprintf(path, sizeof(path), "/proc/%lld/status", (long long)*pid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return false;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned long long mask;
    if (sscanf(line, "SigCgt: %llx", &mask) == 1)
      yes = (mask >> (SIGUSR1 - 1)) & 1;
  }
  fclose(f);
  snprintf(seen, len, "SigCgt without SIGUSR1");
  return yes;
}

struct restarted {
  struct h_conn *c;
  const struct hostile *hw;
  const char *log;
  size_t from;
  const char *why; /* in runwayd's line announcing the restart */
};

/* The slot was restarted, and runwayd said why (last_error moves on once a new worker runs). */
static bool slot_restarted(void *arg, char *seen, size_t len) {
  struct restarted *w = arg;
  char needle[128];
  snprintf(needle, sizeof(needle), "slot %s: %s", w->hw->slot, w->why);
  json_t *s = h_slot(w->c, w->hw->slot);
  H_CHECK(s != NULL, "slot %s vanished", w->hw->slot);
  json_int_t restarts = h_int(s, "restarts");
  json_decref(s);
  unsigned said = h_file_count(w->log, w->from, needle);
  snprintf(seen, len, "restarts %lld, %u line(s) \"%s\" in runwayd's log", (long long)restarts,
           said, needle);
  if (restarts >= 1 && said > 0)
    h_log("%s (%s): %s", w->hw->slot, w->hw->mode, seen);
  return restarts >= 1 && said > 0;
}

/* The pids the fork worker said it started ("child N: pid P" in runwayd's log). */
static unsigned fork_children(const char *log, size_t from, pid_t *pids, unsigned max) {
  char *text = h_file_read(log);
  unsigned n = 0;
  H_CHECK(text != NULL, "cannot read %s", log);
  for (char *at = text + from; n < max && (at = strstr(at, "worker-garbage fork: child ")) != NULL;
       at++) {
    int i, pid;
    if (sscanf(at, "worker-garbage fork: child %d: pid %d", &i, &pid) == 2 && pid > 0)
      pids[n++] = pid;
  }
  free(text);
  return n;
}

struct gone {
  const pid_t *pids;
  unsigned n;
};

static bool all_gone(void *arg, char *seen, size_t len) {
  struct gone *g = arg;
  for (unsigned i = 0; i < g->n; i++) {
    if (g->pids[i] > 0 && h_pid_exists(g->pids[i])) {
      snprintf(seen, len, "pid %d still runs", (int)g->pids[i]);
      return false;
    }
  }
  return true;
}

struct fds {
  pid_t pid;
  unsigned n, segments;
};

static bool fds_back(void *arg, char *seen, size_t len) {
  struct fds *want = arg;
  unsigned segments, n = count_fds(want->pid, &segments);
  snprintf(seen, len, "%u descriptors, %u segment files", n, segments);
  return n == want->n && segments == want->segments;
}

static void measure_pt(struct h_probe *p, struct h_conn *c, struct h_path *path, const char *when) {
  snprintf(path->label, sizeof(path->label), "pt %s", when);
  struct h_train train = {.count = 8, .gap = 1300};
  if (!h_measure(p, c, path, 1, &train))
    h_error("pt is not exactly L %s", when);
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char cmd[800], buf[64];

  h_init("hostile", 170);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);
  h_probe_path_latency(p, L);

  json_t *s = h_add_slot(&c, "pt",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000);
  h_connect(p, h_probe_out(p, 0), h_slot_port(s, "inputs", 0));
  h_connect(p, h_slot_port(s, "outputs", 0), h_probe_in(p, 0));
  json_int_t pt_pid = h_int(s, "pid");
  json_decref(s);
  struct h_path path = {.out = 0, .in = 0, .delay = L, .slots = {"pt"}};
  measure_pt(p, &c, &path, "alone");
  unsigned segs0, fds0 = count_fds(d.proc.pid, &segs0);
  h_log("runwayd with pt alone: %u descriptors, %u of them segment files", fds0, segs0);

  size_t log_from = h_file_size(d.proc.log);
  for (size_t i = 0; i < N_HOSTILE; i++) {
    struct hostile *hw = &hostiles[i];
    if (strcmp(hw->mode, "socket") == 0)
      snprintf(cmd, sizeof(cmd), "exec '%s' socket '%s' pt --no-hold", RWT_GARBAGE, d.socket);
    else
      snprintf(cmd, sizeof(cmd), "exec '%s' %s --no-hold", RWT_GARBAGE, hw->mode);
    s = h_add_slot(&c, hw->slot,
                   json_pack("{s:s, s:i, s:i, s:i}", "exec", cmd, "inputs", 1, "outputs", 1,
                             "latency_frames", GL),
                   10000);
    hw->pid = h_int(s, "pid");
    h_connect(p, h_probe_out(p, 0), h_slot_port(s, "inputs", 0));
    json_decref(s);
  }
  measure_pt(p, &c, &path, "beside the hostile workers, before they act");

  /* They act, all at once. */
  for (size_t i = 0; i < N_HOSTILE; i++) {
    H_WAIT_UNTIL(catches, &hostiles[i].pid, 10000, "the worker of %s to handle SIGUSR1",
                 hostiles[i].slot);
    H_CHECK(kill((pid_t)hostiles[i].pid, SIGUSR1) == 0, "SIGUSR1 to %s", hostiles[i].slot);
  }
  /* h_mute: runwayd answers for it, after its timeout. */
  char file[PATH_MAX + 32];
  snprintf(file, sizeof(file), "%s/mute.json", d.state_dir);
  json_t *r = h_call_error(&c, "state.save",
                           json_pack("{s:s, s:s}", "name", "h_mute", "file", file), "busy");
  h_log("state.save of h_mute -> busy (\"%s\")",
        json_string_value(json_object_get(json_object_get(r, "error"), "message")));
  json_decref(r);
  /*
   * Without real-time scheduling the graph shares two cores with seven
   * hostile workers and a sanitized runwayd: there the graph is disturbed
   * too often to measure while they act (the normal build does), and pt is
   * measured after them, with its underruns and restarts checked for the
   * whole time.
   */
  if (!RWT_SANITIZED)
    measure_pt(p, &c, &path, "while the hostile workers act");

  /* The ones that must be faulted and restarted. */
  struct restarted w = {&c, &hostiles[0], d.proc.log, log_from,
                        "faulted: the worker damaged its shared memory: the worker punched a hole"};
  H_WAIT_UNTIL(slot_restarted, &w, 10000, "h_punch to be faulted for a hole");
  w.hw = &hostiles[1];
  w.why = "faulted: ";
  H_WAIT_UNTIL(slot_restarted, &w, 10000, "h_header to be faulted");
  w.hw = &hostiles[4];
  w.why = "worker exited";
  H_WAIT_UNTIL(slot_restarted, &w, 10000, "h_fork to be restarted after it exited");

  /* What each one tried, as it told runwayd's log. */
  unsigned proc_tries = h_file_count(d.proc.log, log_from, "worker-garbage proc:");
  unsigned proc_opened = h_file_count(d.proc.log, log_from, "worker-garbage proc: OPENED");
  /* Any attack that worked says DONE (punch and header on the daemon's file, proc). */
  unsigned succeeded = h_file_count(d.proc.log, log_from, ": DONE");
  h_log("h_proc: %u lines, %u descriptors of runwayd opened; attacks that worked: %u", proc_tries,
        proc_opened, succeeded);
  if (proc_tries < 4)
    h_error("h_proc did not report its attempts (%u lines)", proc_tries);
  if (proc_opened != 0 || succeeded != 0)
    h_error("hostile workers got through: %u of runwayd's descriptors opened, %u attacks worked",
            proc_opened, succeeded);
  /* Refused at connect (the socket's mode and group) or by the peer check; pt must remain. */
  unsigned at_connect = h_file_count(d.proc.log, log_from, "worker-garbage socket: connect ");
  unsigned answered = h_file_count(d.proc.log, log_from, "slot.remove pt answered:");
  unsigned denied = h_file_count(d.proc.log, log_from, "permission_denied");
  h_log("h_socket: %u connect(s) refused, %u answer(s) to slot.remove pt, %u permission_denied",
        at_connect, answered, denied);
  if (at_connect + answered == 0)
    h_error("h_socket did not report its attempt on the control socket");
  if (answered > denied)
    h_error("h_socket: slot.remove of pt was answered without permission_denied");
  s = h_slot(&c, "pt");
  H_CHECK(s != NULL, "pt was removed by a worker");
  if (h_int(s, "pid") != pt_pid || h_int(s, "restarts") != 0)
    h_error("pt was disturbed: pid %lld (was %lld), restarts %lld", (long long)h_int(s, "pid"),
            (long long)pt_pid, (long long)h_int(s, "restarts"));
  json_decref(s);
  unsigned noise = h_file_count(d.proc.log, log_from, "of noise");
  unsigned tagged = h_file_count(d.proc.log, log_from, "slot h_flood: worker-garbage flood: line");
  h_log("h_flood: %u lines of its noise logged, %u of them tagged with its slot", noise, tagged);
  if (noise != tagged)
    h_error("h_flood: %u lines of worker output reached the log untagged", noise - tagged);
  pid_t children[8];
  unsigned n_children = fork_children(d.proc.log, log_from, children, 8);
  h_log("h_fork: %u children left behind", n_children);
  if (n_children != 3)
    h_error("h_fork: expected to find 3 children in the log, found %u", n_children);
  struct gone g = {children, n_children};
  H_WAIT_UNTIL(all_gone, &g, 10000, "h_fork's children to die with it");

  /* The flood goes on as long as its worker runs: it goes first, the others stay. */
  s = h_slot(&c, "h_flood");
  pid_t flood_pid = (pid_t)h_int(s, "pid");
  json_decref(s);
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", "h_flood")));
  measure_pt(p, &c, &path, "after the hostile workers acted");
  json_t *st = h_slot_stats(&c, "pt");
  h_log("pt: underruns %lld, restarts %lld", (long long)h_int(st, "underruns"),
        (long long)h_int(st, "restarts"));
  if (h_int(st, "underruns") != 0)
    h_log("pt: %lld underrun(s) (its worker kept from the CPU; h_measure excused what they cost)",
          (long long)h_int(st, "underruns"));
  if (h_int(st, "restarts") != 0)
    h_error("pt was restarted while the hostile workers acted");
  json_decref(st);

  /* Nothing leaks: the hostile slots removed, runwayd as before them, their processes gone. */
  pid_t last[N_HOSTILE];
  for (size_t i = 0; i < N_HOSTILE; i++) {
    s = h_slot(&c, hostiles[i].slot);
    last[i] = s != NULL ? (pid_t)h_int(s, "pid") : flood_pid;
    if (s != NULL)
      json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", hostiles[i].slot)));
    json_decref(s);
  }
  struct gone workers = {last, N_HOSTILE};
  H_WAIT_UNTIL(all_gone, &workers, 15000, "the hostile slots' workers to be gone");
  /* A removed slot's segment goes once the RT thread has let go of its table. */
  struct fds want = {d.proc.pid, fds0, segs0};
  H_WAIT_UNTIL(fds_back, &want, 10000,
               "runwayd to hold the %u descriptors (%u segment files) it held before", fds0, segs0);
  h_log("runwayd after the hostile slots went: %u descriptors, %u segment files, as before", fds0,
        segs0);
  H_CHECK(h_proc_alive(&d.proc), "runwayd died");

  h_probe_close(p);
  h_conn_close(&c);
  int rc = h_daemon_stop(&d);
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(rc, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
