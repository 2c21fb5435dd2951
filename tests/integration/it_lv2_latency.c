/*
 * it_lv2_latency: a plugin that reports latency adds it, exactly. x42's No
 * Delay Line delays by its `delay` control and reports that delay on its
 * latency port; declared in runwayd's configuration file
 * (`lv2 = http://gareus.org/oss/lv2/nodelay`, `param.delay = 100`,
 * channels from the plugin), its slot with L = 1024:
 *
 *   - its ports report L + 100 (the output's capture latency is the
 *     source's + L + 100, the input's playback latency the sink's + L + 100)
 *     and `slot list` says plugin_latency_frames 100;
 *   - impulses come out exactly L + 100 later, and nothing else;
 *   - after `param set nd delay 300`, both follow: L + 300;
 *   - after SIGKILL of the worker the ports never report less (the new
 *     worker's plugin has not run yet when it starts), and the impulses are
 *     exactly L + 300 later again.
 *
 * And a worker that writes a latency of 0xFFFFFFFF into its info block
 * (worker_latency_liar) is not believed: its ports keep reporting L, the log
 * says so once; when it then says 77, they report L + 77.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lv2_rig.h"

#define RATE 48000u
#define PERIOD 128u
#define L 1024u
#define SRC_LATENCY 7u
#define SINK_LATENCY 11u
#define NODELAY "http://gareus.org/oss/lv2/nodelay"

struct rig {
  struct h_conn c;
  struct h_probe *p;
  const char *out_port; /* the slot's, full names */
  const char *in_port;
  uint64_t checked;
};

/* Both directions of JACK's latency report, within the deadline; false once one disagrees. */
static bool ports_report(struct rig *r, uint32_t total, unsigned timeout_ms) {
  uint32_t mn, mx;
  if (!h_wait_port_latency(r->p, r->out_port, false, SRC_LATENCY + total, timeout_ms, &mn, &mx)) {
    h_log("%s capture latency [%u %u], want %u", r->out_port, mn, mx, SRC_LATENCY + total);
    return false;
  }
  if (!h_wait_port_latency(r->p, r->in_port, true, SINK_LATENCY + total, timeout_ms, &mn, &mx)) {
    h_log("%s playback latency [%u %u], want %u", r->in_port, mn, mx, SINK_LATENCY + total);
    return false;
  }
  return true;
}

static void expect_delay(struct rig *r, uint32_t delay, const char *when) {
  H_CHECK(ports_report(r, L + delay, 5000), "%s: the ports do not report L + %u", when, delay);
  json_t *s = h_slot(&r->c, "nd");
  H_CHECK(h_int(s, "plugin_latency_frames") == delay && h_int(s, "latency_frames") == L,
          "%s: slot list says plugin latency %lld, L %lld", when,
          (long long)h_int(s, "plugin_latency_frames"), (long long)h_int(s, "latency_frames"));
  json_decref(s);
  h_probe_path_latency(r->p, L + delay);
  h_check_train(r->p, 0, 0, L + delay, 1.0f, 2400, 4800, PERIOD, &r->checked, when);
  h_log("%s: ports report L + %u = %u, impulses exactly that late", when, delay, L + delay);
}

int main(void) {
  struct h_jack j;
  struct h_daemon d;
  struct rig r;
  char config[PATH_MAX];

  h_init("lv2_latency", 120);
  snprintf(config, sizeof(config), "%s/runway.conf", h_tmpdir());
  FILE *f = fopen(config, "w");
  H_CHECK(f != NULL, "cannot write %s", config);
  fprintf(f, "[slot nd]\nlv2 = %s\nlatency_frames = %u\nparam.delay = 100\n", NODELAY, L);
  H_CHECK(fclose(f) == 0, "cannot write %s", config);

  h_jack_start(&j, RATE, PERIOD);
  const char *args[] = {"--config", config, NULL};
  lv2rig_daemon_start(&d, &j, args);
  H_CHECK(h_conn_open(&r.c, d.socket) == 0, "connect");
  json_t *slot = h_wait_slot(&r.c, "nd", "running", 0, 15000);
  H_CHECK(strcmp(h_str(slot, "kind"), "lv2") == 0 && h_int(slot, "inputs") == 1 &&
              h_int(slot, "outputs") == 1 && !json_is_true(json_object_get(slot, "midi")),
          "the configured slot is not No Delay Line's 1 in, 1 out");

  r.p = h_probe_open(&j, 1, false, 1, SRC_LATENCY, SINK_LATENCY);
  const unsigned zero = 0;
  lv2rig_wire(r.p, slot, &zero, 1, &zero, 1);
  json_t *ports = json_object_get(slot, "ports");
  r.in_port = json_string_value(json_array_get(json_object_get(ports, "inputs"), 0));
  r.out_port = json_string_value(json_array_get(json_object_get(ports, "outputs"), 0));
  r.checked = h_probe_now(r.p);

  expect_delay(&r, 100, "delay 100 (from the configuration)");

  lv2rig_set(&r.c, "nd", "delay", 300);
  expect_delay(&r, 300, "param set delay 300");

  json_t *now = h_slot(&r.c, "nd");
  json_int_t pid = h_int(now, "pid");
  json_decref(now);
  H_CHECK(pid > 0 && kill((pid_t)pid, SIGKILL) == 0, "SIGKILL worker %lld", (long long)pid);
  /* For a second, while the new worker starts: the ports keep what the plugin said last. */
  for (uint64_t until = h_now_ms() + 1000; h_now_ms() < until; h_sleep_ms(10)) {
    uint32_t mn, mx;
    h_port_latency(r.p, r.out_port, false, &mn, &mx);
    H_CHECK(mn == SRC_LATENCY + L + 300 && mx == mn,
            "after SIGKILL the output's capture latency was [%u %u]", mn, mx);
  }
  json_decref(h_wait_slot(&r.c, "nd", "running", pid, 10000));
  /* A new connection makes JACK ask every client for its latencies again. */
  h_connect(r.p, h_probe_out(r.p, 0), "system:playback_1");
  expect_delay(&r, 300, "after SIGKILL of the worker");

  /* The liar. */
  json_t *liar = h_add_slot(&r.c, "liar",
                            json_pack("{s:s, s:i, s:i, s:i}", "exec", RWT_LATENCY_LIAR, "inputs", 1,
                                      "outputs", 1, "latency_frames", L),
                            15000);
  const json_t *liar_ports = json_object_get(json_object_get(liar, "ports"), "outputs");
  const char *liar_out = json_string_value(json_array_get(liar_ports, 0));
  for (uint64_t until = h_now_ms() + 1000; h_now_ms() < until; h_sleep_ms(20)) {
    uint32_t mn, mx;
    h_port_latency(r.p, liar_out, false, &mn, &mx);
    H_CHECK(mn == L && mx == L, "the liar's output reports [%u %u], not L = %u", mn, mx, L);
  }
  H_CHECK(h_file_count(d.proc.log, 0, "plugin latency of 4294967295 frames") == 1,
          "runwayd's log does not say once that it ignored the liar's latency");
  json_t *lj = h_slot(&r.c, "liar");
  H_CHECK(h_int(lj, "plugin_latency_frames") == 0, "slot list believes the liar");
  H_CHECK(kill((pid_t)h_int(lj, "pid"), SIGUSR1) == 0, "SIGUSR1 to the liar");
  json_decref(lj);
  uint32_t mn, mx;
  H_CHECK(h_wait_port_latency(r.p, liar_out, false, L + 77, 5000, &mn, &mx),
          "the honest liar's output reports [%u %u], not L + 77", mn, mx);
  h_log("a worker reporting a latency of 2^32 - 1: ignored, ports at L; then 77: L + 77");
  json_decref(liar);

  json_decref(slot);
  h_probe_close(r.p);
  h_conn_close(&r.c);
  H_CHECK(h_daemon_stop(&d) == 0, "runwayd did not stop cleanly");
  h_jack_stop(&j);
  h_pass();
}
