/*
 * it_chain: two slots of one runwayd chained through JACK
 * (probe -> first -> second -> probe). Both share runway's JACK client, so
 * the daemon itself must run `first` before `second` in each cycle, whatever
 * order they were added in; then the chain delays by exactly L1 + L2, which
 * is also what JACK reports for it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define L1 1000
#define L2 1500

static const char *port_of(json_t *slot, const char *dir) { return h_slot_port(slot, dir, 0); }

/* slot.list follows the order the RT table runs the slots in. */
static bool first_runs_first(void *arg, char *seen, size_t len) {
  json_t *r = h_call(arg, "slot.list", NULL);
  json_t *slots = json_object_get(r, "slots");
  const char *a = h_str(json_array_get(slots, 0), "name");
  const char *b = h_str(json_array_get(slots, 1), "name");
  bool ok = a != NULL && b != NULL && strcmp(a, "first") == 0 && strcmp(b, "second") == 0;
  snprintf(seen, len, "order %s, %s", a ? a : "?", b ? b : "?");
  json_decref(r);
  return ok;
}

int main(void) {
  struct h_jack jack;
  struct h_daemon d;
  struct h_conn c;
  char buf[64];

  h_init("chain", 80);
  h_jack_start(&jack, 48000, 128);
  h_daemon_start(&d, &jack, NULL, NULL);
  H_CHECK(h_conn_open(&c, d.socket) == 0, "connect to runwayd");
  /* Added downstream first: the order the RT table starts with is the wrong one. */
  json_t *second = h_add_slot(&c, "second",
                              json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs",
                                        1, "outputs", 1, "latency_frames", L2),
                              10000);
  json_t *first = h_add_slot(&c, "first",
                             json_pack("{s:s, s:i, s:i, s:i}", "plugin", "passthrough", "inputs", 1,
                                       "outputs", 1, "latency_frames", L1),
                             10000);
  struct h_probe *p = h_probe_open(&jack, 1, false, 1, 0, 0);
  h_probe_path_latency(p, L1 + L2);
  h_connect(p, h_probe_out(p, 0), port_of(first, "inputs"));
  h_connect(p, port_of(first, "outputs"), port_of(second, "inputs"));
  h_connect(p, port_of(second, "outputs"), h_probe_in(p, 0));

  uint32_t cmin, cmax;
  if (!h_wait_port_latency(p, port_of(second, "outputs"), false, L1 + L2, 5000, &cmin, &cmax))
    h_error("JACK reports %u-%u frames of capture latency at the chain's end, want %u", cmin, cmax,
            L1 + L2);

  /*
   * On JACK the daemon reorders its table on the graph-order notification;
   * the impulses start a lead ahead, so the RT thread has taken the new table
   * by the time they arrive. On PipeWire each slot is a node the server
   * itself runs in graph order: the table's order means nothing there.
   */
  if (!h_pipewire())
    H_WAIT_UNTIL(first_runs_first, &c, 5000, "runwayd to run `first` before `second`");
  struct h_path path = {.out = 0, .in = 0, .delay = L1 + L2, .slots = {"first", "second"}};
  for (int round = 0; round < 2; round++) {
    snprintf(path.label, sizeof(path.label), "chain first -> second, round %d", round);
    if (!h_measure(p, &c, &path, 1, NULL))
      h_error("round %d: impulses not delayed by exactly L1 + L2 = %u", round, L1 + L2);
  }

  json_decref(first);
  json_decref(second);
  h_probe_close(p);
  h_conn_close(&c);
  int rc = h_daemon_stop(&d);
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    h_error("runwayd did not exit cleanly: %s", h_status_str(rc, buf, sizeof(buf)));
  h_jack_stop(&jack);
  h_pass();
}
