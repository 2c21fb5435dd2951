#include "scale_graph.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *graph_topology_name(enum graph_topology t) {
  return t == GRAPH_CHAINED ? "chained" : "parallel";
}

void graph_open(struct graph *g, const struct h_jack *j) {
  jack_status_t st = 0;
  char name[64];
  memset(g, 0, sizeof(*g));
  snprintf(name, sizeof(name), "rwscale-mon-%d", (int)getpid());
  g->mon =
      jack_client_open(name, JackNoStartServer | JackServerName | JackUseExactName, &st, j->name);
  if (g->mon == NULL)
    H_FAIL("cannot open the monitor client on %s (status 0x%x)", j->name, (unsigned)st);
  g->rate = jack_get_sample_rate(g->mon);
  g->period = jack_get_buffer_size(g->mon);
}

void graph_close(struct graph *g) {
  if (g->mon != NULL)
    jack_client_close(g->mon);
  g->mon = NULL;
}

double graph_dsp_load(struct graph *g) { return jack_cpu_load(g->mon); }

uint32_t graph_frames(struct graph *g) { return jack_frame_time(g->mon); }

bool graph_has_port(struct graph *g, const char *name) {
  return jack_port_by_name(g->mon, name) != NULL;
}

static void connect_ports(struct graph *g, const char *from, const char *to) {
  int rc = jack_connect(g->mon, from, to);
  if (rc != 0 && rc != EEXIST)
    H_FAIL("cannot connect %s to %s (%d)", from, to, rc);
}

void graph_wire(struct graph *g, graph_port_fn port, const void *ctx, unsigned n,
                enum graph_topology t) {
  char a[256], b[256];
  for (unsigned ch = 0; ch < GRAPH_CHANNELS; ch++) {
    char capture[32], playback[32];
    snprintf(capture, sizeof(capture), "system:capture_%u", ch + 1);
    snprintf(playback, sizeof(playback), "system:playback_%u", ch + 1);
    for (unsigned i = 0; i < n; i++) {
      port(ctx, i, ch, false, b, sizeof(b));
      if (t == GRAPH_PARALLEL || i == 0) {
        connect_ports(g, capture, b);
      } else {
        port(ctx, i - 1, ch, true, a, sizeof(a));
        connect_ports(g, a, b);
      }
      if (t == GRAPH_PARALLEL || i == n - 1) {
        port(ctx, i, ch, true, a, sizeof(a));
        connect_ports(g, a, playback);
      }
    }
  }
}

static void unwire_port(struct graph *g, const char *name, bool output) {
  jack_port_t *p = jack_port_by_name(g->mon, name);
  if (p == NULL)
    return;
  const char **peers = jack_port_get_all_connections(g->mon, p);
  for (size_t k = 0; peers != NULL && peers[k] != NULL; k++) {
    int rc =
        output ? jack_disconnect(g->mon, name, peers[k]) : jack_disconnect(g->mon, peers[k], name);
    if (rc != 0)
      H_FAIL("cannot disconnect %s from %s (%d)", name, peers[k], rc);
  }
  if (peers != NULL)
    jack_free(peers);
}

void graph_unwire(struct graph *g, graph_port_fn port, const void *ctx, unsigned n) {
  char name[256];
  for (unsigned i = 0; i < n; i++) {
    for (unsigned ch = 0; ch < GRAPH_CHANNELS; ch++) {
      port(ctx, i, ch, false, name, sizeof(name));
      unwire_port(g, name, false);
      port(ctx, i, ch, true, name, sizeof(name));
      unwire_port(g, name, true);
    }
  }
}

/* ---- plain reference clients --------------------------------------------------- */

void plain_port(const void *ctx, unsigned i, unsigned ch, bool output, char *buf, size_t len) {
  (void)ctx;
  snprintf(buf, len, "rwref%u:%s_%u", i + 1, output ? "out" : "in", ch + 1);
}

unsigned plain_grow(struct graph *g, struct plain_clients *p, unsigned n) {
  char log[PATH_MAX], name[32], last[64];
  snprintf(log, sizeof(log), "%s/reference-clients.log", h_tmpdir());
  while (p->n < n && p->n < GRAPH_MAX_UNITS) {
    unsigned i = p->n;
    snprintf(name, sizeof(name), "rwref%u", i + 1);
    const char *argv[] = {p->exe, name, NULL};
    h_spawn(&p->procs[i], name, argv, NULL, NULL, log);
    plain_port(p, i, GRAPH_CHANNELS - 1, true, last, sizeof(last));
    uint64_t deadline = h_now_ms() + 10000;
    while (!graph_has_port(g, last) && h_proc_alive(&p->procs[i]) && h_now_ms() < deadline)
      h_sleep_ms(10);
    if (!graph_has_port(g, last)) {
      /* Blocked in jack_client_open, it has SIGTERM blocked: SIGKILL is the way out. */
      h_log("reference client %u did not come up: the server carries %u", i + 1, i);
      h_proc_stop(&p->procs[i], SIGKILL, 5000);
      break;
    }
    p->n++;
  }
  return p->n;
}

void plain_stop(struct graph *g, struct plain_clients *p) {
  char last[64];
  /*
   * One at a time, newest first: a hundred clients closing at once while the
   * graph still runs them all left them waiting in jack_client_close for more
   * than 5 s each.
   */
  while (p->n > 0) {
    unsigned i = --p->n;
    h_proc_stop(&p->procs[i], SIGTERM, 5000);
    plain_port(p, i, 0, false, last, sizeof(last));
    uint64_t deadline = h_now_ms() + 10000;
    while (graph_has_port(g, last) && h_now_ms() < deadline)
      h_sleep_ms(10);
  }
}
