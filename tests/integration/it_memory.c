/*
 * it_memory: runwayd keeps resident what its RT path touches, and the RT
 * thread does not fault for it.
 *
 * JACK2 keeps every port of the server in one shared mapping (33 KB a
 * port, over 100 MB by default), which mlockall would populate and lock
 * whole; runwayd locks it as it is touched instead (daemon/sys/memlock.h).
 * Four passthrough slots in a chain, probe -> s1 -> ... -> s4 -> probe.
 *
 * Checked: the chain is exactly 4 L (audio flows through every slot);
 * runwayd's mapping of that table is locked on touch ("lf" in smaps) and
 * resident for at most a quarter of its size; the RT thread takes no page
 * fault (stats rt_minor_faults, rt_major_faults) while the chain plays, and
 * at most MAX_GRAPH_FAULTS while a fifth slot is added, connected to the
 * probe's port and to a port of the server that no input of runwayd read
 * before (two connections: JACK mixes them), and removed.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define RATE 48000
#define PERIOD 128
#define L 2400
#define N_SLOTS 4
#define JACK_SHM "/dev/shm/jack-"
#define MAX_GRAPH_FAULTS 3

static const char *const names[N_SLOTS] = {"m1", "m2", "m3", "m4"};

/* The RT thread's page faults so far, minor and major together. */
static json_int_t rt_faults(struct h_conn *c) {
  json_t *st = h_daemon_stats(c);
  json_int_t minor = h_int(st, "rt_minor_faults"), major = h_int(st, "rt_major_faults");
  json_decref(st);
  H_CHECK(minor >= 0 && major >= 0, "stats without the RT thread's page faults");
  return minor + major;
}

struct table_map {
  bool found;
  bool lock_on_fault; /* VmFlags has lf */
  unsigned long size_kb, rss_kb;
};

/* runwayd's largest mapping of JACK's shared memory, from /proc/PID/smaps. */
static struct table_map jack_table(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
  char *text = h_file_read(path);
  H_CHECK(text != NULL, "read %s", path);
  struct table_map best = {0}, cur = {0};
  bool in_jack = false;
  for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    unsigned long kb;
    uintptr_t lo, hi;
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2) {
      const char *slash = strchr(line, '/');
      in_jack = slash != NULL && strncmp(slash, JACK_SHM, strlen(JACK_SHM)) == 0;
      cur = (struct table_map){.found = in_jack};
    } else if (in_jack && sscanf(line, "Size: %lu kB", &kb) == 1) {
      cur.size_kb = kb;
    } else if (in_jack && sscanf(line, "Rss: %lu kB", &kb) == 1) {
      cur.rss_kb = kb;
    } else if (in_jack && strncmp(line, "VmFlags:", 8) == 0) {
      cur.lock_on_fault = strstr(line, " lf") != NULL;
      if (cur.size_kb > best.size_kb)
        best = cur;
    }
  }
  free(text);
  return best;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;

  h_init("memory", 90);
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);

  const char *from = h_probe_out(p, 0);
  char prev[256];
  snprintf(prev, sizeof(prev), "%s", from);
  for (unsigned i = 0; i < N_SLOTS; i++) {
    json_t *s = h_add_slot(&c, names[i],
                           json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                     "outputs", 1, "latency_frames", L),
                           10000);
    h_connect(p, prev, h_slot_port(s, "inputs", 0));
    snprintf(prev, sizeof(prev), "%s", h_slot_port(s, "outputs", 0));
    json_decref(s);
  }
  h_connect(p, prev, h_probe_in(p, 0));
  struct h_path path = {
      .out = 0, .in = 0, .delay = N_SLOTS * L, .slots = {names[0], names[1], names[2], names[3]}};
  snprintf(path.label, sizeof(path.label), "probe -> 4 slots -> probe");
  H_CHECK(h_measure(p, &c, &path, 1, &(struct h_train){.count = 6, .gap = 1300}),
          "the chain is not exactly 4 L");

  struct table_map t = jack_table(d.proc.pid);
  h_log("JACK's port table in runwayd: %lu KB mapped, %lu KB resident, lock on fault: %s",
        t.size_kb, t.rss_kb, t.lock_on_fault ? "yes" : "no");
  H_CHECK(t.found, "runwayd maps no %s* file", JACK_SHM);
  if (!t.lock_on_fault)
    h_error("JACK's port table is not locked on touch (no lf in VmFlags)");
  if (t.rss_kb == 0 || t.rss_kb > t.size_kb / 4)
    h_error("JACK's port table: %lu KB of %lu KB resident in runwayd", t.rss_kb, t.size_kb);

  /* Playing: no fault on the RT thread. */
  json_int_t f0 = rt_faults(&c);
  h_measure(p, &c, &path, 1, &(struct h_train){.count = 6, .gap = 1300});
  json_int_t f1 = rt_faults(&c);
  h_log("RT page faults while the chain played: %lld", (long long)(f1 - f0));
  if (f1 != f0)
    h_error("the RT thread took %lld page faults while the chain played", (long long)(f1 - f0));

  /*
   * A slot coming and going beside the chain, one of its inputs connected
   * to a port of the server that no input of runwayd read before (touched
   * when it appeared): at most a soft fault or so, on a page of JACK's
   * shared memory that libjack's code on the RT thread had not read before
   * (one run in ten here, inside libjack).
   */
  json_t *s = h_add_slot(&c, "m5",
                         json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                   "outputs", 1, "latency_frames", L),
                         10000);
  h_connect(p, from, h_slot_port(s, "inputs", 0));
  h_connect(p, "system:capture_2", h_slot_port(s, "inputs", 0));
  json_decref(s);
  h_measure(p, &c, &path, 1, &(struct h_train){.count = 6, .gap = 1300});
  json_decref(h_call(&c, "slot.remove", json_pack("{s:s}", "name", "m5")));
  h_measure(p, &c, &path, 1, &(struct h_train){.count = 6, .gap = 1300});
  json_int_t f2 = rt_faults(&c);
  h_log("RT page faults while a slot came, was connected twice and went: %lld",
        (long long)(f2 - f1));
  if (f2 - f1 > MAX_GRAPH_FAULTS)
    h_error("the RT thread took %lld page faults while a slot came and went (at most %d)",
            (long long)(f2 - f1), MAX_GRAPH_FAULTS);

  h_probe_close(p);
  h_conn_close(&c);
  char buf[64];
  int rc = h_daemon_stop(&d);
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(rc, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
