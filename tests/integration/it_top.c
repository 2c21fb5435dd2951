/*
 * it_top: `runwayctl top` as people and scripts see it.
 *
 * Two slots: alpha added over the socket, beta declared in the configuration
 * file (with on_fault = bypass).
 *
 *   1. --once --json: one JSON document with the daemon's period and RT
 *      cycle, and per slot its state, worker pid and CPU share, lead, L,
 *      counters and lead histogram.
 *   2. In a terminal (tmux, 160 x 40): the view shows the slots and their
 *      workers, drawn in place (one header on the screen however many
 *      refreshes), follows a change (a slot added, a worker restarted: its
 *      new pid), and q quits with status 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef RWT_RUNWAYCTL
#error "RWT_RUNWAYCTL must be defined by the build"
#endif

#define RATE 48000
#define PERIOD 128

static char tmux_socket[64], session[] = "top";

/* Runs tmux -L <ours> ARGS...; its output into *out when out is not NULL. */
static int tmux(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
                const char *a5, const char *a6) {
  const char *argv[] = {"tmux", "-L", tmux_socket, a1, a2, a3, a4, a5, a6, NULL};
  char log[4200], *captured = NULL;
  snprintf(log, sizeof(log), "%s/tmux.log", h_tmpdir());
  int status = h_run_capture(argv, NULL, NULL, log, 10000, &captured);
  if (out != NULL)
    *out = captured;
  else
    free(captured);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *screen(void) {
  char *text = NULL;
  tmux(&text, "capture-pane", "-p", "-t", session, NULL, NULL);
  return text ? text : strdup("");
}

static unsigned count(const char *text, const char *needle) {
  unsigned n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
    n++;
  return n;
}

/* Waits until the screen shows every needle; returns the screen (malloc'd). */
static char *wait_screen(const char *const *needles, unsigned timeout_ms, const char *what) {
  uint64_t deadline = h_now_ms() + timeout_ms;
  for (;;) {
    char *text = screen();
    bool all = true;
    for (size_t i = 0; needles[i] != NULL; i++)
      all = all && strstr(text, needles[i]) != NULL;
    if (all)
      return text;
    if (h_now_ms() >= deadline) {
      H_FAIL("top never showed %s; the screen:\n%s", what, text);
    }
    free(text);
    h_sleep_ms(50);
  }
}

static json_t *slot_row(const json_t *view, const char *name) {
  size_t i;
  const json_t *s;
  json_array_foreach(json_object_get(view, "slots"), i,
                     s) if (strcmp(h_str(s, "name"), name) == 0) return (json_t *)s;
  return NULL;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char log[4200];

  h_init("top", 80);
  snprintf(tmux_socket, sizeof(tmux_socket), "rwt-top-%d", (int)getpid());
  char guard[256];
  snprintf(guard, sizeof(guard), "tmux -L %s kill-server", tmux_socket);
  h_guard(guard);
  /* beta comes from the configuration file, on_fault included. */
  char conf[4200];
  snprintf(conf, sizeof(conf), "%s/runwayd.conf", h_tmpdir());
  FILE *f = fopen(conf, "w");
  H_CHECK(f != NULL, "cannot write %s", conf);
  fprintf(f, "[slot beta]\nplugin = delay\non_fault = bypass\nlatency_frames = 4800\n");
  H_CHECK(fclose(f) == 0, "cannot write %s", conf);
  const char *args[] = {"--config", conf, NULL};
  h_jack_start(&jack, RATE, PERIOD);
  h_daemon_start(&d, &jack, args, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  json_decref(h_add_slot(&c, "alpha", json_pack("{s:s}", "plugin", "gain"), 10000));
  json_t *beta = h_wait_slot(&c, "beta", "running", 0, 10000);
  H_CHECK(strcmp(h_str(beta, "on_fault"), "bypass") == 0, "beta from the file: on_fault %s",
          h_str(beta, "on_fault"));
  json_decref(beta);
  json_t *alpha = h_slot(&c, "alpha");
  json_int_t alpha_pid = h_int(alpha, "pid");
  json_decref(alpha);

  /* ---- 1. --once --json --------------------------------------------------------------- */
  const char *once[] = {RWT_RUNWAYCTL, "--socket",   d.socket, "--json", "top",
                        "--once",      "--interval", "0.3",    NULL};
  char *out = NULL;
  snprintf(log, sizeof(log), "%s/top-once.log", h_tmpdir());
  int status = h_run_capture(once, NULL, NULL, log, 10000, &out);
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "top --once --json failed");
  json_error_t jerr;
  json_t *view = json_loads(out ? out : "", 0, &jerr);
  H_CHECK(view != NULL, "top --once --json printed no JSON document (%s): %s", jerr.text,
          out ? out : "");
  h_log("top --once --json: %s", out);
  free(out);
  const json_t *dm = json_object_get(view, "daemon");
  H_CHECK(h_int(dm, "period") == PERIOD && h_int(dm, "sample_rate") == RATE,
          "daemon period %lld, rate %lld", (long long)h_int(dm, "period"),
          (long long)h_int(dm, "sample_rate"));
  H_CHECK(json_is_number(json_object_get(dm, "rt_cycle_us_avg")) &&
              json_is_number(json_object_get(dm, "rt_load_percent")),
          "no RT cycle time in the view");
  H_CHECK(json_array_size(json_object_get(view, "slots")) == 2, "%zu slots in the view",
          json_array_size(json_object_get(view, "slots")));
  const char *names[] = {"alpha", "beta"};
  for (int i = 0; i < 2; i++) {
    const json_t *row = slot_row(view, names[i]);
    H_CHECK(row != NULL, "slot %s not in the view", names[i]);
    H_CHECK(strcmp(h_str(row, "state"), "running") == 0 && h_int(row, "pid") > 0,
            "slot %s: %s, pid %lld", names[i], h_str(row, "state"), (long long)h_int(row, "pid"));
    H_CHECK(json_is_number(json_object_get(row, "cpu_percent")),
            "slot %s: no CPU share over the interval", names[i]);
    H_CHECK(json_is_number(json_object_get(row, "lead_ms")) &&
                json_is_number(json_object_get(row, "lead_min_ms")),
            "slot %s: no lead", names[i]);
    H_CHECK(json_array_size(json_object_get(row, "lead_histogram")) > 1,
            "slot %s: no lead histogram", names[i]);
  }
  H_CHECK(json_number_value(json_object_get(slot_row(view, "beta"), "latency_ms")) == 100.0,
          "beta's L is not 100 ms in the view");
  H_CHECK(strcmp(h_str(slot_row(view, "beta"), "on_fault"), "bypass") == 0, "beta's on_fault");
  json_decref(view);

  /* ---- 2. in a terminal ------------------------------------------------------------------ */
  char cmd[8600];
  snprintf(cmd, sizeof(cmd), "%s --socket %s top --interval 0.2", RWT_RUNWAYCTL, d.socket);
  const char *start[] = {"tmux", "-L",  tmux_socket, "new-session", "-d", "-s", session,
                         "-x",   "160", "-y",        "40",          cmd,  NULL};
  snprintf(log, sizeof(log), "%s/tmux.log", h_tmpdir());
  char *ignored = NULL;
  status = h_run_capture(start, NULL, NULL, log, 10000, &ignored);
  free(ignored);
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tmux new-session failed (see %s)", log);
  /* The pane stays after top exits, with its status. */
  tmux(NULL, "set-option", "-t", session, "remain-on-exit", "on", NULL);

  char alpha_pid_text[32];
  snprintf(alpha_pid_text, sizeof(alpha_pid_text), "%lld", (long long)alpha_pid);
  const char *first[] = {"runway top:", "RT cycle:",    "alpha", "beta",
                         "running",     alpha_pid_text, NULL};
  char *text = wait_screen(first, 10000, "both slots with their workers");
  h_log("top in a terminal:\n%s", text);
  free(text);

  /* A change shows: a new slot, a worker restarted. */
  json_decref(h_add_slot(&c, "gamma", json_pack("{s:s}", "plugin", "passthrough"), 10000));
  json_decref(h_call(&c, "slot.restart", json_pack("{s:s}", "name", "alpha")));
  json_t *a2 = h_wait_slot(&c, "alpha", "running", alpha_pid, 10000);
  char new_pid[32];
  snprintf(new_pid, sizeof(new_pid), "%lld", (long long)h_int(a2, "pid"));
  json_decref(a2);
  const char *second[] = {"gamma", new_pid, NULL};
  text = wait_screen(second, 10000, "the new slot and alpha's new worker");
  h_log("top after a slot added and a restart:\n%s", text);
  /* Drawn in place: one view on the screen, not one below the other. */
  if (count(text, "runway top:") != 1 || count(text, "NAME") != 1)
    h_error("top did not redraw in place: %u headers on the screen", count(text, "runway top:"));
  free(text);

  /* q quits, with status 0. */
  tmux(NULL, "send-keys", "-t", session, "q", NULL, NULL);
  uint64_t deadline = h_now_ms() + 5000;
  char *dead = NULL;
  for (;;) {
    free(dead);
    dead = NULL;
    tmux(&dead, "display-message", "-p", "-t", session, "#{pane_dead} #{pane_dead_status}", NULL);
    if (dead != NULL && dead[0] == '1')
      break;
    H_CHECK(h_now_ms() < deadline, "top did not quit on q: %s", dead ? dead : "?");
    h_sleep_ms(50);
  }
  h_log("after q: pane dead, status %s", dead + 2);
  H_CHECK(atoi(dead + 2) == 0, "top exited with status %s", dead + 2);
  free(dead);
  tmux(NULL, "kill-server", NULL, NULL, NULL, NULL, NULL);

  h_conn_close(&c);
  h_daemon_stop(&d);
  h_jack_stop(&jack);
  h_pass();
}
