/*
 * it_lv2_slots: LV2 plugins through the control socket and runwayctl.
 *
 *   1. `plugins --lv2` lists the installed plugins (mda Delay 2 in 2 out,
 *      DX10 with MIDI, No Delay Line reporting latency, a test plugin runway
 *      cannot host marked so); `plugins --lv2 URI` gives one plugin's
 *      parameters (integer, scale points); runwayctl prints both, and the
 *      same as JSON. Five lists asked at once: four answered, one busy.
 *   2. `slot add --lv2 URI` gives a slot the plugin's channel counts and
 *      MIDI unless told otherwise; a URI of 82 bytes works (plugin names
 *      held 63 before segment ABI 3).
 *   3. A state file of one LV2 plugin is refused by a slot of another.
 *   4. runwayd restarted on its state directory brings the LV2 slots back
 *      (slots.json), running, with their URIs and channel counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define LONG_URI                                                                                   \
  "urn:runway:test:a-plugin-whose-uri-is-longer-than-the-63-bytes-a-segment-once-held"

static const json_t *find_plugin(const json_t *list, const char *uri) {
  size_t i;
  const json_t *p;
  json_array_foreach(list, i, p) if (h_str(p, "uri") && strcmp(h_str(p, "uri"), uri) == 0) return p;
  H_FAIL("plugins --lv2 does not list <%s>", uri);
}

static void expect_plugin(const json_t *list, const char *uri, int in, int out, bool midi,
                          bool latency, bool supported) {
  const json_t *p = find_plugin(list, uri);
  H_CHECK(h_int(p, "inputs") == in && h_int(p, "outputs") == out &&
              json_is_true(json_object_get(p, "midi")) == midi &&
              json_is_true(json_object_get(p, "latency")) == latency &&
              json_is_true(json_object_get(p, "supported")) == supported,
          "<%s>: %lld in, %lld out, midi %d, latency %d, supported %d", uri,
          (long long)h_int(p, "inputs"), (long long)h_int(p, "outputs"),
          json_is_true(json_object_get(p, "midi")), json_is_true(json_object_get(p, "latency")),
          json_is_true(json_object_get(p, "supported")));
}

/* runwayctl ARGS... against the daemon; its stdout (malloc'd). Fails unless it exits 0. */
static char *ctl(const struct h_daemon *d, const char *a1, const char *a2, const char *a3) {
  const char *argv[] = {RWT_RUNWAYCTL, "--socket", d->socket, a1, a2, a3, NULL};
  char log[PATH_MAX], st[64];
  snprintf(log, sizeof(log), "%s/runwayctl.log", h_tmpdir());
  char *out = NULL;
  int status = h_run_capture(argv, NULL, NULL, log, 30000, &out);
  H_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "runwayctl %s %s %s: %s", a1, a2 ? a2 : "",
          a3 ? a3 : "", h_status_str(status, st, sizeof(st)));
  return out;
}

static void expect_slot(struct h_conn *c, const char *name, const char *uri, int in, int out,
                        bool midi) {
  json_t *s = h_wait_slot(c, name, "running", 0, 15000);
  H_CHECK(strcmp(h_str(s, "kind"), "lv2") == 0 && strcmp(h_str(s, "lv2"), uri) == 0 &&
              strcmp(h_str(s, "plugin"), uri) == 0,
          "slot %s: kind %s, lv2 %s", name, h_str(s, "kind"), h_str(s, "lv2"));
  H_CHECK(h_int(s, "inputs") == in && h_int(s, "outputs") == out &&
              json_is_true(json_object_get(s, "midi")) == midi,
          "slot %s: %lld in, %lld out, midi %d; want %d, %d, %d", name,
          (long long)h_int(s, "inputs"), (long long)h_int(s, "outputs"),
          json_is_true(json_object_get(s, "midi")), in, out, midi);
  json_decref(s);
}

static void add(struct h_conn *c, const char *name, json_t *args) {
  json_object_set_new(args, "name", json_string(name));
  json_decref(h_call(c, "slot.add", args));
}

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct h_conn c;
  char state_dir[PATH_MAX], file[PATH_MAX];

  h_init("lv2_slots", 120);
  snprintf(state_dir, sizeof(state_dir), "%s/state", h_tmpdir());
  snprintf(file, sizeof(file), "%s/dly.json", h_tmpdir());
  h_jack_start(&j, RATE, PERIOD);
  const char *args[] = {"--state-dir", state_dir, NULL};
  lv2rig_daemon_start(&d, &j, args);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect");

  /* 1. The catalog. */
  json_t *all = h_call(&c, "plugins", json_pack("{s:b}", "lv2", 1));
  const json_t *list = json_object_get(all, "plugins");
  size_t n_installed = json_array_size(list);
  h_log("plugins --lv2: %zu plugins", n_installed);
  expect_plugin(list, LV2RIG_MDA "Delay", 2, 2, false, false, true);
  expect_plugin(list, LV2RIG_MDA "DX10", 0, 2, true, false, true);
  expect_plugin(list, "http://gareus.org/oss/lv2/nodelay", 1, 1, false, true, true);
  expect_plugin(list, "urn:runway:test:fixed", 1, 1, false, false, false);
  H_CHECK(strstr(h_str(find_plugin(list, "urn:runway:test:fixed"), "unsupported"),
                 "a fixed block length") != NULL,
          "the catalog says why the fixed-block plugin is not supported");
  json_decref(all);

  json_t *one = h_call(
      &c, "plugins", json_pack("{s:b, s:s}", "lv2", 1, "uri", "http://gareus.org/oss/lv2/nodelay"));
  const json_t *nd = json_object_get(one, "plugin");
  const json_t *params = json_object_get(nd, "params");
  H_CHECK(json_array_size(params) == 2, "No Delay Line has 2 parameters");
  const json_t *mode = json_array_get(params, 1);
  H_CHECK(strcmp(h_str(mode, "name"), "report_latency") == 0 &&
              json_is_true(json_object_get(mode, "integer")) &&
              json_is_true(json_object_get(mode, "enumeration")) &&
              json_array_size(json_object_get(mode, "scale_points")) == 4,
          "report_latency: an integer choice of 4");
  json_decref(one);

  char *text = ctl(&d, "plugins", "--lv2", NULL);
  H_CHECK(strstr(text, LV2RIG_MDA "Delay") != NULL && strstr(text, "not supported") != NULL,
          "runwayctl plugins --lv2 printed:\n%s", text);
  free(text);
  text = ctl(&d, "plugins", "--lv2", LV2RIG_MDA "Delay");
  H_CHECK(strstr(text, "l_delay: 0 .. 1, default 0.5") != NULL && strstr(text, "2 in, 2 out"),
          "runwayctl plugins --lv2 URI printed:\n%s", text);
  free(text);
  text = ctl(&d, "--json", "plugins", "--lv2");
  json_t *doc = json_loads(text, 0, NULL);
  H_CHECK(json_array_size(json_object_get(doc, "plugins")) == n_installed,
          "runwayctl --json plugins --lv2 prints the daemon's list (%zu plugins, not %zu)",
          json_array_size(json_object_get(doc, "plugins")), n_installed);
  json_decref(doc);
  free(text);

  /* Describing every plugin is a process reading seconds of data: at most four at once. */
  struct h_conn many[5];
  const char req[] = "{\"id\":1,\"cmd\":\"plugins\",\"args\":{\"lv2\":true}}\n";
  for (int i = 0; i < 5; i++) {
    H_CHECK(h_conn_open(&many[i], d.socket) == 0, "connect");
    H_CHECK(h_conn_send(&many[i], req, strlen(req)) == 0, "send");
    if (i == 3)
      h_sleep_ms(200); /* the first four are surely running before the fifth asks */
  }
  int busy = 0, ok = 0;
  for (int i = 0; i < 5; i++) {
    int e = 0;
    char *line = h_conn_read_line(&many[i], 60000, &e);
    H_CHECK(line != NULL, "no answer to plugins --lv2 (%d)", e);
    busy += strstr(line, "\"busy\"") != NULL;
    ok += strncmp(line, "{\"id\":1,\"ok\":true", 17) == 0;
    free(line);
    h_conn_close(&many[i]);
  }
  H_CHECK(ok == 4 && busy == 1, "five at once: %d answered, %d busy", ok, busy);

  /* 2. Slots, their channels from the plugin unless given. */
  add(&c, "dly", json_pack("{s:s}", "lv2", LV2RIG_MDA "Delay"));
  add(&c, "dx", json_pack("{s:s}", "lv2", LV2RIG_MDA "DX10"));
  add(&c, "nd", json_pack("{s:s}", "lv2", "http://gareus.org/oss/lv2/nodelay"));
  add(&c, "mono", json_pack("{s:s, s:i, s:b}", "lv2", LV2RIG_MDA "Delay", "inputs", 1, "midi", 1));
  add(&c, "long", json_pack("{s:s}", "lv2", LONG_URI));
  expect_slot(&c, "dly", LV2RIG_MDA "Delay", 2, 2, false);
  expect_slot(&c, "dx", LV2RIG_MDA "DX10", 0, 2, true);
  expect_slot(&c, "nd", "http://gareus.org/oss/lv2/nodelay", 1, 1, false);
  expect_slot(&c, "mono", LV2RIG_MDA "Delay", 1, 2, true);
  expect_slot(&c, "long", LONG_URI, 1, 1, false);
  h_log("slots dly, dx, nd, mono and long (a %zu-byte URI) run", strlen(LONG_URI));

  /* 3. One plugin's state is not another's. */
  json_decref(h_call(&c, "state.save", json_pack("{s:s, s:s}", "name", "dly", "file", file)));
  char *saved = h_file_read(file);
  H_CHECK(saved != NULL && strstr(saved, "\"plugin\": \"" LV2RIG_MDA "Delay\"") != NULL,
          "the state file names its plugin");
  free(saved);
  json_t *r = h_call_error(&c, "state.load", json_pack("{s:s, s:s}", "name", "dx", "file", file),
                           "invalid_argument");
  h_log("mda Delay's state into a DX10 slot: %s",
        json_string_value(json_object_get(json_object_get(r, "error"), "message")));
  json_decref(r);
  json_decref(h_call(&c, "state.load", json_pack("{s:s, s:s}", "name", "mono", "file", file)));

  /* 4. Back after a restart of runwayd. */
  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  lv2rig_daemon_start(&d, &j, args);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect");
  expect_slot(&c, "dly", LV2RIG_MDA "Delay", 2, 2, false);
  expect_slot(&c, "dx", LV2RIG_MDA "DX10", 0, 2, true);
  expect_slot(&c, "nd", "http://gareus.org/oss/lv2/nodelay", 1, 1, false);
  expect_slot(&c, "mono", LV2RIG_MDA "Delay", 1, 2, true);
  expect_slot(&c, "long", LONG_URI, 1, 1, false);
  h_log("after a restart of runwayd: the same five LV2 slots, running");

  h_conn_close(&c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
