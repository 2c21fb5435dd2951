/*
 * it_pw_probe (PipeWire only): a measuring client of PipeWire's own sends
 * impulses at known absolute frames of the graph clock through a runway
 * slot and finds every one exactly L later, at the first cycles after
 * linking and again right after the links were removed and made anew; and
 * L is what the ports report, to PipeWire's own latency propagation, to
 * pw-cli enum-params and to pw-jack jack_lsp -l. At quanta 64 and 256, on
 * a private headless PipeWire (links made with pw-link).
 *
 * Impulses near a late cycle (a cycle that did not finish in time, as
 * PipeWire's profiler reports it, or one in which the graph clock moved on
 * while a probe node ran: see pw_monitor.h, pw_probe.h) are excused and
 * counted (a train in which fewer than half were exact is sent again,
 * further ahead, up to ATTEMPTS trains; then the machine is too busy), and
 * none may come out anywhere else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "pw_monitor.h"
#include "pw_probe.h"

#define RATE 48000
#define SRC_LAT 100
#define SINK_LAT 30
#define N_IMPULSES 40

static json_t *slot;
static struct pwm *monitor;

/* A late cycle, as the probe's nodes or PipeWire's profiler saw it, began in [from, to). */
static bool late(const struct pwp *p, uint64_t from, uint64_t to) {
  return pwp_disturbed(p, from, to) || (monitor != NULL && pwm_disturbed(monitor, from, to));
}

static const char *port_of(const char *dir) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), 0));
}

static void pw_link(const char *from, const char *to, bool remove) {
  char log[4200], *out = NULL, st[64];
  snprintf(log, sizeof(log), "%s/pw-link.log", h_tmpdir());
  const char *add[] = {"pw-link", from, to, NULL};
  const char *del[] = {"pw-link", "-d", from, to, NULL};
  int ws = h_run_capture(remove ? del : add, NULL, NULL, log, 10000, &out);
  free(out);
  H_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "pw-link %s%s %s: %s", remove ? "-d " : "", from,
          to, h_status_str(ws, st, sizeof(st)));
}

/* In pw-cli's output: the first `key` after `after`. */
static const char *line_after(const char *text, const char *after, const char *key) {
  const char *at = strstr(text, after);
  return at != NULL ? strstr(at, key) : NULL;
}

/* PipeWire's propagation: the sink's input learns the capture latency upstream of it. */
static void check_propagation(struct pwp *p, uint32_t want) {
  uint32_t min = 0, max = 0;
  uint64_t deadline = h_now_ms() + 5000;
  while (!pwp_sink_capture_latency(p, &min, &max) || min != want || max != want) {
    if (h_now_ms() > deadline) {
      h_error("PipeWire gave the probe's sink a capture latency of %u-%u, want %u = source %u "
              "+ L",
              min, max, want, SRC_LAT);
      return;
    }
    h_sleep_ms(10);
  }
  h_log("PipeWire's propagation: the sink's capture latency is %u = source %u + L", min, SRC_LAT);
}

/* pw-cli enum-params <id> Latency of the slot's ports: output capture, input playback. */
static void check_pw_cli(const char *node, uint32_t latency) {
  char log[4200], *list = NULL, *params = NULL, name[256], id[16];
  snprintf(log, sizeof(log), "%s/pw-cli.log", h_tmpdir());
  const char *ls[] = {"pw-link", "-I", "-o", "-i", NULL};
  h_run_capture(ls, NULL, NULL, log, 10000, &list);
  const struct {
    const char *port, *direction;
    uint32_t want;
  } cases[] = {{"pt.out_1", "(Spa:Enum:Direction:Output)", SRC_LAT + latency},
               {"pt.in_1", "(Spa:Enum:Direction:Input)", SINK_LAT + latency}};
  for (size_t i = 0; i < 2; i++) {
    snprintf(name, sizeof(name), " %s:%s\n", node, cases[i].port);
    const char *at = strstr(list, name);
    const char *line = at;
    while (line != NULL && line > list && line[-1] != '\n')
      line--;
    if (at == NULL || sscanf(line, " %15s", id) != 1) {
      h_error("pw-link -I does not list %s:%s", node, cases[i].port);
      continue;
    }
    const char *argv[] = {"pw-cli", "enum-params", id, "Latency", NULL};
    h_run_capture(argv, NULL, NULL, log, 10000, &params);
    const char *min = line_after(params, cases[i].direction, "minRate");
    const char *max = line_after(params, cases[i].direction, "maxRate");
    unsigned vmin = 0, vmax = 0;
    if (min == NULL || max == NULL || sscanf(strstr(min, "Int"), "Int %u", &vmin) != 1 ||
        sscanf(strstr(max, "Int"), "Int %u", &vmax) != 1 || vmin != cases[i].want ||
        vmax != cases[i].want)
      h_error("pw-cli enum-params %s (%s:%s) Latency: %u-%u, want %u", id, node, cases[i].port,
              vmin, vmax, cases[i].want);
    else
      h_log("pw-cli enum-params %s (%s:%s) Latency %s: %u frames", id, node, cases[i].port,
            cases[i].direction, vmin);
    free(params);
  }
  free(list);
}

/* pw-jack jack_lsp -l: what JACK tools see through PipeWire's JACK layer. */
static void check_jack_lsp(const char *port, const char *what, uint32_t want) {
  char log[4200], *out = NULL, key[300], expect[64];
  snprintf(log, sizeof(log), "%s/jack_lsp.log", h_tmpdir());
  const char *argv[] = {"pw-jack", "jack_lsp", "-l", NULL};
  h_run_capture(argv, NULL, NULL, log, 10000, &out);
  snprintf(key, sizeof(key), "%s\n", port);
  snprintf(expect, sizeof(expect), "%s = [ %u %u ]", what, want, want);
  /* The port's line, then its two latency lines. */
  const char *at = strstr(out, key);
  const char *found = at != NULL ? strstr(at, expect) : NULL;
  if (found == NULL || (size_t)(found - at) > strlen(key) + 100)
    h_error("pw-jack jack_lsp -l: %s has no \"%s\"", port, expect);
  else
    h_log("pw-jack jack_lsp -l: %s %s", port, expect);
  free(out);
}

/*
 * N_IMPULSES impulses from about two periods ahead, ~1100 frames apart with
 * varied spacing (some on a cycle's first frame, some on its last); each
 * must come out exactly L later with its value, nothing anywhere else.
 * Returns false when too many were excused to tell (a machine too busy to
 * run the graph in time); wrong or stray samples are errors either way.
 */
static bool impulses(struct pwp *p, uint32_t latency, uint32_t lead, const char *when,
                     unsigned *misplaced) {
  uint32_t n = pwp_period(p);
  uint64_t start = pwp_position(p) + (lead > 2 * n ? lead : 2 * n);
  uint32_t first = 0, last = 0;
  uint64_t frame = start;
  for (unsigned i = 0; i < N_IMPULSES; i++) {
    if (i % 5 == 1)
      frame = (frame / n + 1) * n; /* first frame of a cycle */
    else if (i % 5 == 3)
      frame = (frame / n + 1) * n + n - 1; /* last frame of a cycle */
    uint32_t id = pwp_impulse(p, frame, 0.25f + 0.01f * (float)i);
    if (i == 0)
      first = id;
    last = id;
    frame += 1000 + 37 * (i % 7);
  }
  uint64_t end = frame + latency + 4 * n;
  uint64_t deadline = h_now_ms() + 20000;
  while (pwp_sink_end(p) < end) {
    H_CHECK(h_now_ms() < deadline, "%s: the probe's sink stopped at %llu", when,
            (unsigned long long)pwp_sink_end(p));
    h_sleep_ms(10);
  }

  const struct pwp_record *rec;
  size_t nrec = pwp_records(p, &rec);
  unsigned exact = 0, excused = 0, late_emit = 0, bad = 0, stray = 0;
  bool *used = calloc(nrec + 1, sizeof(bool));
  for (uint32_t id = first; id <= last; id++) {
    const struct pwp_record *e = pwp_event(p, id);
    if (pwp_status(p, id) != 1) {
      late_emit++;
      continue;
    }
    bool disturbed = late(p, e->frame - 2 * n, e->frame + 3 * n) ||
                     late(p, e->frame + latency - 2 * n, e->frame + latency + 3 * n);
    bool found = false;
    for (size_t k = 0; k < nrec; k++) {
      if (rec[k].frame == e->frame + latency && rec[k].value == e->value) {
        used[k] = found = true;
        break;
      }
    }
    if (found) {
      exact++;
    } else if (disturbed) {
      excused++;
    } else {
      bad++;
      if (bad <= 5) {
        size_t near = nrec;
        for (size_t k = 0; k < nrec; k++)
          if (rec[k].frame >= e->frame && rec[k].frame < e->frame + latency + 4 * n)
            near = near == nrec ? k : near;
        if (near < nrec)
          printf("  %s: impulse %.3f at %llu came out at %llu (%+lld frames from L)\n", when,
                 (double)e->value, (unsigned long long)e->frame,
                 (unsigned long long)rec[near].frame,
                 (long long)(rec[near].frame - e->frame) - (long long)latency);

        else
          printf("  %s: impulse %.3f at %llu did not come out\n", when, (double)e->value,
                 (unsigned long long)e->frame);
      }
    }
  }
  /* Anything else between the first impulse and the end is stray, unless near a late cycle. */
  for (size_t k = 0; k < nrec; k++) {
    if (used[k] || rec[k].frame < start)
      continue;
    if (late(p, rec[k].frame - latency - 2 * n, rec[k].frame - latency + 3 * n) ||
        late(p, rec[k].frame - 2 * n, rec[k].frame + 3 * n))
      continue;
    if (++stray <= 5)
      printf("  %s: stray sample %g at %llu\n", when, (double)rec[k].value,
             (unsigned long long)rec[k].frame);
  }
  free(used);
  unsigned emitted = N_IMPULSES - late_emit;
  h_log("%s: %u/%u impulses exactly L = %u later, %u excused near a late cycle, %u wrong, %u "
        "stray (late cycles so far: %u seen by the probe, %u by PipeWire's profiler)",
        when, exact, emitted, latency, excused, bad, stray, pwp_disturbances(p),
        monitor ? pwm_incomplete(monitor) : 0);
  *misplaced = bad + stray;
  return emitted >= N_IMPULSES / 2 && exact >= emitted / 2;
}

/*
 * Trains until one had half of its impulses or more checked exactly, ATTEMPTS
 * at most. The first starts two periods ahead (the first cycles after
 * linking); one the test thread was too late to send, or that late cycles
 * spoiled, is sent again further ahead.
 */
#define ATTEMPTS 8
/* runwayd's xruns and skipped frames: its nodes out of step with the graph clock. */
static int64_t runway_disturbances(struct h_conn *c) {
  json_t *ds = h_daemon_stats(c);
  int64_t n = h_int(ds, "xruns") + h_int(ds, "skipped_frames");
  json_decref(ds);
  return n;
}

static void train(struct pwp *p, struct h_conn *c, uint32_t latency, const char *when) {
  uint32_t lead = 0;
  for (int attempt = 1;; attempt++) {
    unsigned misplaced = 0;
    int64_t before = runway_disturbances(c);
    bool enough = impulses(p, latency, lead, when, &misplaced);
    if (misplaced > 0 && runway_disturbances(c) == before) {
      h_error("%s: impulses not exactly L later", when);
      return;
    }
    if (misplaced > 0) {
      /*
       * runwayd's nodes ran out of step with the graph meanwhile (its own
       * xruns, which neither the profiler nor the probe sees): what was in
       * flight may come out whole periods off. Not a proof either way.
       */
      enough = false;
      h_log("%s: %u impulse(s) misplaced while runwayd's nodes ran out of step with the graph",
            when, misplaced);
    }
    if (enough)
      return;
    if (attempt == ATTEMPTS) {
      h_error("%s: %d trains in a row with fewer than half of the impulses exact, each spoiled "
              "by late cycles or sent too late: the machine is too busy to measure",
              when, ATTEMPTS);
      return;
    }
    lead = lead == 0 ? 2400 : lead < 24000 ? 2 * lead : lead;
    h_log("%s: too many late cycles to tell; again, %u frames ahead", when, lead);
  }
}

static void run(uint32_t quantum, uint32_t latency) {
  struct h_jack srv;
  struct h_daemon d;
  struct h_conn c;
  char when[64], node[160];
  h_log("=== quantum %u, L %u ===", quantum, latency);
  h_jack_start(&srv, RATE, quantum);
  h_daemon_start(&d, &srv, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  slot = h_add_slot(&c, "pt",
                    json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                              "outputs", 1, "latency_frames", latency),
                    10000);
  H_CHECK(h_int(slot, "latency_frames") == latency, "latency_frames %lld",
          (long long)h_int(slot, "latency_frames"));
  snprintf(node, sizeof(node), "%s.pt", d.name);
  char probe_name[64];
  snprintf(probe_name, sizeof(probe_name), "rwp-%u", quantum);
  struct pwp *p = pwp_open(probe_name, SRC_LAT, SINK_LAT);
  monitor = pwm_open();
  H_CHECK(monitor != NULL, "cannot listen to PipeWire's profiler");

  for (int round = 0; round < 2; round++) {
    pw_link(pwp_source_port(p), port_of("inputs"), false);
    pw_link(port_of("outputs"), pwp_sink_port(p), false);
    check_propagation(p, SRC_LAT + latency);
    snprintf(when, sizeof(when), "quantum %u %s", quantum, round ? "relinked" : "linked");
    train(p, &c, latency, when);
    if (round == 0) {
      check_pw_cli(node, latency);
      check_jack_lsp(port_of("outputs"), "port capture latency", SRC_LAT + latency);
      check_jack_lsp(port_of("inputs"), "port playback latency", SINK_LAT + latency);
      pw_link(pwp_source_port(p), port_of("inputs"), true);
      pw_link(port_of("outputs"), pwp_sink_port(p), true);
    }
  }
  json_t *ds = h_daemon_stats(&c);
  h_log("runwayd: %lld xrun(s) (cycles its nodes ran out of step with the graph clock); "
        "PipeWire's profiler: %llu cycles reported, %u did not finish",
        (long long)h_int(ds, "xruns"), (unsigned long long)pwm_cycles(monitor),
        pwm_incomplete(monitor));
  json_decref(ds);
  pwp_close(p);
  pwm_close(monitor);

  monitor = NULL;
  json_decref(slot);
  h_conn_close(&c);
  int status = h_daemon_stop(&d);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit cleanly");
  h_jack_stop(&srv);
}

int main(void) {
  h_init("pw_probe", 110);
  if (!h_pipewire())
    H_FAIL("it_pw_probe runs on PipeWire only (RWT_BACKEND=pipewire)");
  run(64, 1000);
  run(256, 2400);
  h_pass();
}
