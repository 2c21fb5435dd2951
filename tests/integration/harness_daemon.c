/*
 * runwayd under test: started on the test's JACK server with its own socket,
 * JACK name and state directory, and what tests ask it about its slots.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_internal.h"

#ifndef RWT_RUNWAYD
#error "RWT_RUNWAYD (path of runwayd) must be defined by the build"
#endif
#ifndef RWT_WORKER
#error "RWT_WORKER (path of runway-worker) must be defined by the build"
#endif

struct daemon_ready {
  struct h_daemon *d;
};

static bool daemon_active(void *arg, char *seen, size_t len) {
  struct h_daemon *d = ((struct daemon_ready *)arg)->d;
  struct h_conn c;
  if (!h_proc_alive(&d->proc)) {
    char st[64];
    H_FAIL("runwayd exited during start-up (%s)", h_status_str(d->proc.status, st, sizeof(st)));
  }
  if (h_conn_open(&c, d->socket) != 0) {
    snprintf(seen, len, "the socket does not accept connections yet");
    return false;
  }
  json_t *r = h_call(&c, "status", NULL);
  const char *state = h_str(r, "backend_state");
  bool active = state != NULL && strcmp(state, "active") == 0;
  snprintf(seen, len, "backend_state %s", state ? state : "(none)");
  json_decref(r);
  h_conn_close(&c);
  return active;
}

void h_daemon_start(struct h_daemon *d, const struct h_jack *j, const char *const *extra_args,
                    const char *const *extra_env) {
  char log[PATH_MAX];
  const char *argv[40];
  const char *env[20];
  char server_env[128], worker_env[PATH_MAX + 32];
  size_t a = 0, e = 0;

  memset(d, 0, sizeof(*d));
  h__unique_name(d->name, sizeof(d->name), "d");
  if (snprintf(d->socket, sizeof(d->socket), "%s/%s.sock", h_tmpdir(), d->name) >=
          (int)sizeof(d->socket) ||
      snprintf(log, sizeof(log), "%s/runwayd-%s.log", h_tmpdir(), d->name) >= (int)sizeof(log) ||
      snprintf(d->state_dir, sizeof(d->state_dir), "%s/state-%s", h_tmpdir(), d->name) >=
          (int)sizeof(d->state_dir))
    H_FAIL("path too long");
  /* A benchmark may compare two builds of runwayd on one server. */
  const char *runwayd = getenv("RUNWAY_TEST_RUNWAYD");
  argv[a++] = runwayd != NULL && *runwayd != '\0' ? runwayd : RWT_RUNWAYD;
  argv[a++] = "--backend";
  argv[a++] = h_backend();
  argv[a++] = "--socket";
  argv[a++] = d->socket;
  argv[a++] = "--name";
  argv[a++] = d->name;
  argv[a++] = "--worker";
  argv[a++] = RWT_WORKER;
  /* Slots persist across daemon restarts: keep this daemon's state to itself. */
  argv[a++] = "--state-dir";
  argv[a++] = d->state_dir;
  for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && a < 38; i++)
    argv[a++] = extra_args[i];
  argv[a] = NULL;
  snprintf(server_env, sizeof(server_env), "JACK_DEFAULT_SERVER=%s", j->name);
  snprintf(worker_env, sizeof(worker_env), "RUNWAY_WORKER=%s", RWT_WORKER);
  env[e++] = server_env;
  env[e++] = worker_env;
  for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL && e < 19; i++)
    env[e++] = extra_env[i];
  env[e] = NULL;
  const char *unset[] = {"RUNWAY_SOCKET", "RUNWAY_SLOT", "RUNWAY_SEGMENT_FD",
                         "RUNWAY_SEGMENT_WORKER_FD", NULL};
  h_spawn(&d->proc, "runwayd", argv, env, unset, log);

  uint64_t t0 = h_now_ms();
  struct daemon_ready ready = {d};
  H_WAIT_UNTIL(daemon_active, &ready, 15000, "runwayd %s to answer status with JACK active",
               d->name);
  h_log("runwayd %s (pid %d) ready in %llu ms", d->name, (int)d->proc.pid,
        (unsigned long long)(h_now_ms() - t0));
}

int h_daemon_stop(struct h_daemon *d) {
  char st[64];
  if (d->proc.reaped)
    return d->proc.status;
  uint64_t t0 = h_now_ms();
  int status = h_proc_stop(&d->proc, SIGTERM, 20000);
  h_log("runwayd stopped in %llu ms: %s", (unsigned long long)(h_now_ms() - t0),
        h_status_str(status, st, sizeof(st)));
  return status;
}

/* ---- slots ----------------------------------------------------------------------- */

json_t *h_slot(struct h_conn *c, const char *name) {
  json_t *r = h_call(c, "slot.list", NULL);
  json_t *slots = json_object_get(r, "slots"), *s, *found = NULL;
  size_t i;
  json_array_foreach(slots, i, s) {
    const char *n = h_str(s, "name");
    if (n != NULL && strcmp(n, name) == 0)
      found = json_incref(s);
  }
  json_decref(r);
  return found;
}

const char *h_slot_port(const json_t *slot, const char *dir, size_t i) {
  return json_string_value(json_array_get(json_object_get(json_object_get(slot, "ports"), dir), i));
}

json_t *h_slot_stats(struct h_conn *c, const char *name) {
  json_t *r = h_call(c, "stats", json_pack("{s:s}", "name", name));
  json_t *slots = json_object_get(r, "slots");
  json_t *s = json_incref(json_array_get(slots, 0));
  json_decref(r);
  if (s == NULL)
    H_FAIL("stats has no slot %s", name);
  return s;
}

json_int_t h_slot_stat(struct h_conn *c, const char *name, const char *key) {
  json_t *s = h_slot_stats(c, name);
  json_int_t v = h_int(s, key);
  json_decref(s);
  return v;
}

json_t *h_daemon_stats(struct h_conn *c) {
  json_t *r = h_call(c, "stats", NULL);
  json_t *d = json_incref(json_object_get(r, "daemon"));
  json_decref(r);
  return d;
}

uint64_t h_daemon_skipped(struct h_conn *c) {
  json_t *d = h_daemon_stats(c);
  json_int_t v = h_int(d, "skipped_frames");
  json_decref(d);
  if (v < 0)
    H_FAIL("runwayd's stats have no skipped_frames");
  return (uint64_t)v;
}

struct slot_wait {
  struct h_conn *c;
  const char *name;
  const char *state;
  json_int_t not_pid;
  json_t *found;
};

static bool slot_in_state(void *arg, char *seen, size_t len) {
  struct slot_wait *w = arg;
  json_t *s = h_slot(w->c, w->name);
  const char *st = h_str(s, "state");
  if (st != NULL && strcmp(st, w->state) == 0 &&
      (w->not_pid == 0 || h_int(s, "pid") != w->not_pid)) {
    w->found = s;
    return true;
  }
  char *text = s ? json_dumps(s, JSON_COMPACT) : NULL;
  snprintf(seen, len, "%s", text ? text : "no such slot");
  free(text);
  json_decref(s);
  return false;
}

json_t *h_wait_slot(struct h_conn *c, const char *name, const char *state, json_int_t not_pid,
                    unsigned timeout_ms) {
  struct slot_wait w = {c, name, state, not_pid, NULL};
  H_WAIT_UNTIL(slot_in_state, &w, timeout_ms, "slot %s to be %s%s", name, state,
               not_pid ? " with a new pid" : "");
  return w.found;
}

json_t *h_add_slot(struct h_conn *c, const char *name, json_t *args, unsigned timeout_ms) {
  json_object_set_new(args, "name", json_string(name));
  json_t *r = h_call(c, "slot.add", args);
  json_decref(r);
  return h_wait_slot(c, name, "running", 0, timeout_ms);
}

void h_check_rt_report(const char *report, int status) {
  char buf[64];
  char *text = h_file_read(report);
  h_log("rtcheck report: %s", text ? text : "(none)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    h_error("runwayd did not exit 0 (%s): an RT rule was broken?",
            h_status_str(status, buf, sizeof(buf)));
  const char *cy = text ? strstr(text, "cycles ") : NULL;
  const char *vi = text ? strstr(text, "violations ") : NULL;
  if (cy == NULL || vi == NULL || strtoull(cy + 7, NULL, 10) < 500)
    h_error("the RT checker did not watch runwayd's cycles: %s", text ? text : "(no report)");
  else if (strtoull(vi + 11, NULL, 10) != 0)
    h_error("RT rule violations: %s", text);
  free(text);
}
