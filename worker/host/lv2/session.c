/*
 * `runway-worker --lv2 URI`: the life of a worker hosting one LV2 plugin.
 *
 * Everything slow happens before the first rw_worker_next(): loading the
 * world, checking that runway can host the plugin and that its library
 * loads (before attaching, so a refusal costs the slot nothing but this
 * process's exit status and message), instantiating, activating. The daemon counts the worker as
 * running, and watches it for stalls, only from the first block on.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lv2host.h"
#include "signals.h"

/* The worker the signal handler stops; NULL outside the loop. */
static rw_worker *_Atomic session_worker;
static atomic_int stop_early;

static void on_stop_signal(int sig) {
  (void)sig;
  /* Lock-free atomics and rw_worker_request_stop: async-signal-safe. */
  atomic_store_explicit(&stop_early, 1, memory_order_relaxed);
  rw_worker *w = atomic_load_explicit(&session_worker, memory_order_acquire);
  if (w != NULL)
    rw_worker_request_stop(w);
}

/* The exposed controls, as the SDK declares parameters. */
static uint32_t param_table(const struct lv2host_desc *d, rw_param_info *out) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < d->n_controls && n < RW_MAX_PARAMS; i++) {
    const struct lv2host_control *c = &d->controls[i];
    if (!(c->flags & LV2HOST_CTL_EXPOSED))
      continue;
    out[n++] = (rw_param_info){.id = c->port,
                               .name = c->symbol,
                               .min = c->min,
                               .max = c->max,
                               .def = c->def,
                               .unit = c->unit};
  }
  return n;
}

static void describe_setup(const struct lv2host_desc *d, const rw_worker_info *info) {
  fprintf(stderr,
          "runway-worker: hosting <%s> (%s) in slot \"%s\": %u Hz, blocks of 1 to %u frames; "
          "plugin %u in / %u out%s, slot %u in / %u out%s\n",
          d->uri, d->name, info->slot, info->sample_rate, info->max_block, d->n_audio_in,
          d->n_audio_out, d->midi_port >= 0 ? ", MIDI" : "", info->n_inputs, info->n_outputs,
          info->midi ? ", MIDI" : "");
  if (d->n_controls > d->n_exposed)
    fprintf(stderr,
            "runway-worker: %u of its %u controls are not runway parameters (more than %u, or "
            "a symbol runway cannot show); they keep their defaults and travel in its state\n",
            d->n_controls - d->n_exposed, d->n_controls, RW_MAX_PARAMS);
  if (d->midi_port >= 0 && !info->midi)
    fprintf(stderr, "runway-worker: the plugin takes MIDI but the slot has no MIDI input\n");
}

int lv2host_session_main(const char *uri, const rw_worker_options *base) {
  struct lv2host_world world;
  struct lv2host_desc desc;
  struct lv2host host;
  rw_param_info params[RW_MAX_PARAMS];
  struct sigaction sa, old_term, old_int;
  rw_worker *w = NULL;
  char err[512];
  int status = 1;
  int rc;

  memset(&desc, 0, sizeof(desc));
  memset(&host, 0, sizeof(host));
  if (lv2host_world_open(&world) != 0) {
    fprintf(stderr, "runway-worker: out of memory loading the LV2 world\n");
    return 1;
  }
  const LilvPlugin *plugin = lv2host_world_find(&world, uri, err, sizeof(err));
  if (plugin == NULL) {
    fprintf(stderr, "runway-worker: %s\n", err);
    goto out;
  }
  /* Refuse before attaching what cannot run whatever the slot (the rate does not matter). */
  if (lv2host_describe(&world, plugin, 0, &desc) != 0) {
    fprintf(stderr, "runway-worker: out of memory describing <%s>\n", uri);
    goto out;
  }
  if (desc.unsupported[0] != '\0') {
    fprintf(stderr, "runway-worker: runway cannot host <%s>: %s\n", uri, desc.unsupported);
    goto out;
  }
  if (lv2host_check_library(&desc, err, sizeof(err)) != 0) {
    fprintf(stderr, "runway-worker: %s\n", err);
    goto out;
  }
  lv2host_desc_free(&desc);

  rw_worker_options opts = *base;
  if (opts.api_version == 0)
    opts.api_version = RW_WORKER_API_VERSION;
  opts.plugin = strlen(uri) < RW_PLUGIN_NAME_MAX ? uri : NULL;
  opts.params = NULL;
  opts.n_params = 0;

  atomic_store(&stop_early, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a signal must cut the SDK's futex sleep short. */
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGINT, &sa, &old_int);

  rc = rw_worker_open(&opts, &w);
  if (rc != 0) {
    fprintf(stderr, "runway-worker: cannot attach: %s\n", rw_worker_error(NULL));
    goto restore_signals;
  }
  atomic_store_explicit(&session_worker, w, memory_order_release);
  if (atomic_load(&stop_early))
    rw_worker_request_stop(w);

  const rw_worker_info *info = rw_worker_get_info(w);
  if (lv2host_describe(&world, plugin, info->sample_rate, &desc) != 0) {
    fprintf(stderr, "runway-worker: out of memory describing <%s>\n", uri);
    goto restore_signals;
  }
  if (rw_worker_declare_params(w, params, param_table(&desc, params)) != 0) {
    fprintf(stderr, "runway-worker: cannot declare the parameters of <%s>: %s\n", uri,
            rw_worker_error(w));
    goto restore_signals;
  }
  describe_setup(&desc, info);
  struct lv2host_config cfg = {.sample_rate = info->sample_rate,
                               .max_block = info->max_block,
                               .n_inputs = info->n_inputs,
                               .n_outputs = info->n_outputs,
                               .midi = info->midi};
  if (lv2host_open(&host, &world, &desc, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "runway-worker: %s\n", err);
    goto restore_signals;
  }
  rw_state_handlers handlers = {
      .save = lv2host_state_save, .load = lv2host_state_load, .user = &host};
  rw_worker_set_state_handlers(w, &handlers);

  uint32_t reported_latency = 0;
  rw_block b;
  while ((rc = rw_worker_next(w, &b, -1)) >= 0) {
    if (rc == 0)
      continue;
    lv2host_process(&host, &b);
    /* Before the block is published: the daemon sees the latency with the audio it belongs to. */
    if (host.latency != reported_latency) {
      fprintf(stderr, "runway-worker: <%s> reports a latency of %u frames\n", uri, host.latency);
      rw_worker_set_latency(w, host.latency);
      reported_latency = host.latency;
    }
    rw_worker_done(w, &b);
    /* The daemon's parameter table shows what the plugin uses: snapped values go back. */
    for (uint32_t i = 0; i < host.n_reports; i++)
      rw_worker_send_param(w, host.reports[i].id, host.reports[i].value);
  }
  if (rc == RW_ERR_CLOSED)
    status = 0;
  else
    fprintf(stderr, "runway-worker: stopping: %s\n", rw_worker_error(w));

restore_signals : {
  /* No handler may hold w while it is freed. */
  sigset_t saved;
  base_block_signals(&saved);
  atomic_store_explicit(&session_worker, NULL, memory_order_release);
  base_restore_signals(&saved);
  lv2host_close(&host);
  rw_worker_close(w);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGINT, &old_int, NULL);
}
out:
  lv2host_desc_free(&desc);
  lv2host_world_close(&world);
  return status;
}
