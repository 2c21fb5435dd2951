/*
 * it_lv2_refusal: plugins runway cannot host are refused with a clear
 * reason, and never disturb the daemon.
 *
 *   1. runway-worker --lv2 URI, for a plugin that requires a fixed block
 *      length, one that requires power-of-two blocks, one that requires an
 *      option nobody provides, one whose library does not load, one whose
 *      library lacks it, and a URI nothing is installed under: exit status
 *      1 before attaching anywhere, and a message naming the feature, the
 *      option, the dynamic linker's reason or the URI.
 *   2. runway-worker --list-lv2 URI --json says the same ("supported":
 *      false, "unsupported": the reason); an unknown URI exits 3.
 *   3. runwayd refuses `slot add NAME --lv2 URI` for each of them, with
 *      invalid_argument and the reason (not_found for the URI nothing is
 *      installed under), and makes no slot; `plugins --lv2 URI` too.
 *   4. An --exec slot running the unloadable plugin keeps failing (its
 *      reason in runwayd's log).
 *   Throughout 3 and 4 a passthrough slot plays its impulses exactly L
 *   later, and runwayd answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define L 1200u

struct refusal {
  const char *uri;
  const char *says; /* in the message */
};

static const struct refusal refusals[] = {
    {"urn:runway:test:fixed", "requires a fixed block length"},
    {"urn:runway:test:pow2", "requires a power-of-two block length"},
    {"urn:runway:test:option", "requires the option <urn:runway:test#unknownOption>"},
    {"urn:runway:test:unloadable", "undefined symbol: runway_test_symbol_nobody_defines"},
    {"urn:runway:test:undescribed", "has no plugin <urn:runway:test:undescribed>"},
    {"urn:runway:test:absent", "no LV2 plugin <urn:runway:test:absent> is installed"},
};
#define N_REFUSALS (sizeof(refusals) / sizeof(refusals[0]))

static int run_worker(const char *const *argv, const char *log, char **out) {
  const char *env[] = {lv2rig_env(), NULL};
  const char *unset[] = {"RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD", "RUNWAY_SOCKET",
                         "RUNWAY_SLOT", NULL};
  return h_run_capture(argv, env, unset, log, 20000, out);
}

static void refused_by_the_worker(const struct refusal *r) {
  char log[PATH_MAX], st[64];
  snprintf(log, sizeof(log), "%s/worker-%s.log", h_tmpdir(), r->uri + strlen("urn:runway:"));
  size_t from = h_file_size(log);
  const char *argv[] = {RWT_WORKER, "--lv2", r->uri, NULL};
  char *out = NULL;
  int status = run_worker(argv, log, &out);
  free(out);
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "runway-worker --lv2 %s: %s", r->uri,
          h_status_str(status, st, sizeof(st)));
  if (h_file_count(log, from, r->says) != 1)
    h_error("runway-worker --lv2 %s does not say \"%s\" (see %s)", r->uri, r->says, log);
  H_CHECK(h_file_count(log, from, "cannot attach") == 0, "%s: refused only after attaching",
          r->uri);
  h_log("runway-worker --lv2 %s: exit 1, \"...%s...\"", r->uri, r->says);
}

static void refused_by_the_catalog(const struct refusal *r) {
  char log[PATH_MAX], st[64];
  snprintf(log, sizeof(log), "%s/catalog.log", h_tmpdir());
  const char *argv[] = {RWT_WORKER, "--list-lv2", r->uri, "--json", NULL};
  char *out = NULL;
  int status = run_worker(argv, log, &out);
  bool absent = strstr(r->uri, "absent") != NULL;
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == (absent ? 3 : 0),
          "runway-worker --list-lv2 %s: %s", r->uri, h_status_str(status, st, sizeof(st)));
  if (absent) {
    free(out);
    return;
  }
  json_error_t jerr;
  json_t *doc = json_loads(out, 0, &jerr);
  H_CHECK(doc != NULL, "--list-lv2 %s printed no JSON: %s", r->uri, jerr.text);
  json_t *plugin = json_object_get(doc, "plugin");
  const char *why = h_str(plugin, "unsupported");
  H_CHECK(json_is_false(json_object_get(plugin, "supported")) && why != NULL &&
              strstr(why, r->says) != NULL,
          "--list-lv2 %s: supported %s, unsupported \"%s\"", r->uri,
          json_is_true(json_object_get(plugin, "supported")) ? "true" : "false",
          why ? why : "(none)");
  json_decref(doc);
  free(out);
}

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;

  h_init("lv2_refusal", 90);
  for (size_t i = 0; i < N_REFUSALS; i++) {
    refused_by_the_worker(&refusals[i]);
    refused_by_the_catalog(&refusals[i]);
  }

  h_jack_start(&j, RATE, PERIOD);
  lv2rig_daemon_start(&d, &j, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect");
  struct h_probe *p = h_probe_open(&j, 1, false, 1, 0, 0);
  json_t *pt = h_add_slot(&c, "pt",
                          json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                    "outputs", 1, "latency_frames", L),
                          10000);
  const unsigned zero = 0;
  lv2rig_wire(p, pt, &zero, 1, &zero, 1);
  json_decref(pt);
  h_probe_path_latency(p, L);

  uint64_t checked = h_probe_now(p);
  uint32_t first = h_probe_n_events(p);
  uint64_t last = h_impulse_train(p, &zero, 1, 8, 2400, 2400);

  for (size_t i = 0; i < N_REFUSALS; i++) {
    const struct refusal *r = &refusals[i];
    bool absent = strstr(r->uri, "absent") != NULL;
    const char *code = absent ? "not_found" : "invalid_argument";
    json_t *resp =
        h_call_error(&c, "slot.add", json_pack("{s:s, s:s}", "name", "bad", "lv2", r->uri), code);
    const char *msg = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
    if (msg == NULL || strstr(msg, r->says) == NULL)
      h_error("slot add --lv2 %s: \"%s\" does not say \"%s\"", r->uri, msg ? msg : "", r->says);
    h_log("slot add --lv2 %s: %s", r->uri, code);
    json_decref(resp);
    json_t *args = json_pack("{s:b, s:s}", "lv2", 1, "uri", r->uri);
    if (absent) {
      json_decref(h_call_error(&c, "plugins", args, "not_found"));
    } else {
      json_t *one = h_call(&c, "plugins", args);
      H_CHECK(json_is_false(json_object_get(json_object_get(one, "plugin"), "supported")),
              "plugins --lv2 %s: supported", r->uri);
      json_decref(one);
    }
    H_CHECK(h_slot(&c, "bad") == NULL, "a slot was made for %s", r->uri);
  }
  json_decref(h_call_error(&c, "slot.add", json_pack("{s:s, s:s}", "name", "bad", "lv2", "Delay"),
                           "invalid_argument"));

  char exec[1024];
  snprintf(exec, sizeof(exec), "exec '%s' --lv2 urn:runway:test:unloadable", RWT_WORKER);
  json_decref(h_call(
      &c, "slot.add",
      json_pack("{s:s, s:s, s:i, s:i}", "name", "bad", "exec", exec, "inputs", 1, "outputs", 1)));
  h_probe_wait_frame(p, last + L + 2 * PERIOD, 10000);
  if (!h_check_impulses(p, 0, 0, L, first, checked, last + L + 1, false, "beside the bad slot",
                        NULL))
    h_error("the passthrough slot did not play exactly L later beside the failing slot");

  json_t *bad = h_slot(&c, "bad");
  H_CHECK(bad != NULL && strcmp(h_str(bad, "state"), "running") != 0 && h_int(bad, "restarts") >= 1,
          "the bad slot is %s after %lld restarts", bad ? h_str(bad, "state") : "gone",
          bad ? (long long)h_int(bad, "restarts") : -1LL);
  h_log("the bad slot: %s, %lld restarts, last error \"%s\"", h_str(bad, "state"),
        (long long)h_int(bad, "restarts"), h_str(bad, "last_error"));
  json_decref(bad);
  H_CHECK(h_file_count(d.proc.log, 0, "undefined symbol: runway_test_symbol_nobody_defines") >= 1,
          "runwayd's log does not carry the worker's reason");
  json_t *st = h_call(&c, "status", NULL);
  H_CHECK(h_int(st, "pid") == d.proc.pid, "status answers");
  json_decref(st);

  h_probe_close(p);
  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
