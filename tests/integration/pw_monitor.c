#include "pw_monitor.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pipewire/impl-module.h>
#include <pipewire/pipewire.h>
#include <spa/pod/pod.h>
/* After spa/pod/pod.h: it uses struct spa_pod without declaring it. */
#include <pipewire/extensions/profiler.h>
#include <spa/param/profiler.h>
#include <spa/pod/parser.h>
#include <spa/utils/string.h>

/* The latest this many disturbed cycles are kept (a ring: a busy machine makes many). */
#define MAX_INCOMPLETE 65536
#define FINISHED 3 /* PW_NODE_ACTIVATION_FINISHED */

/* Everything below the thread loop is touched under its lock. */
struct pwm {
  struct pw_thread_loop *tloop;
  struct pw_context *context;
  struct pw_core *core;
  struct pw_registry *registry;
  struct spa_hook registry_listener;
  struct pw_proxy *profiler;
  struct spa_hook profiler_listener;

  uint64_t cycles;
  uint32_t incomplete_at[MAX_INCOMPLETE]; /* graph clock, 32 bits as libjack's frame time */
  uint32_t n_incomplete;

  char prefix[128];
  bool measuring;
  struct pwm_load acc;
  double load_sum, nodes_ns_sum;
};

struct block {
  int32_t id;
  const char *name;
  int64_t prev_signal, signal, awake, finish;
  int32_t status;
  struct spa_fraction latency;
};

static int parse_block(const struct spa_pod *pod, struct block *b) {
  return spa_pod_parse_struct(pod, SPA_POD_Int(&b->id), SPA_POD_String(&b->name),
                              SPA_POD_Long(&b->prev_signal), SPA_POD_Long(&b->signal),
                              SPA_POD_Long(&b->awake), SPA_POD_Long(&b->finish),
                              SPA_POD_Int(&b->status), SPA_POD_Fraction(&b->latency));
}

/*
 * A cycle that finished, but late: the driver began it well after the
 * period (its timer slipped), or a node finished after the next cycle was
 * due. Nodes then exchanged data with a cycle's delay that no client saw.
 */
static bool late(const struct spa_io_clock *clock, const struct block *drv, bool have_driver,
                 int64_t last_finish) {
  if (!have_driver || clock->rate.denom == 0 || drv->signal <= 0)
    return false;
  int64_t period_ns =
      (int64_t)((double)clock->duration * 1e9 * clock->rate.num / clock->rate.denom);
  if (period_ns <= 0)
    return false;
  if (drv->prev_signal > 0 && drv->signal - drv->prev_signal > period_ns + period_ns / 2)
    return true;
  return last_finish > drv->signal + period_ns || drv->finish > drv->signal + period_ns;
}

/* One driver cycle: its clock, its own block and one block per follower. */
static void one_cycle(struct pwm *m, const struct spa_pod_object *o) {
  const struct spa_pod_prop *p;
  struct spa_io_clock clock;
  struct block drv = {0}, f;
  bool have_clock = false, have_driver = false, finished = true;
  int64_t last_finish = 0;
  double nodes_ns = 0;
  uint32_t nodes = 0;
  SPA_POD_OBJECT_FOREACH(o, p) {
    switch (p->key) {
    case SPA_PROFILER_clock: {
      const char *name = NULL;
      spa_zero(clock);
      have_clock = spa_pod_parse_struct(
                       &p->value, SPA_POD_Int(&clock.flags), SPA_POD_Int(&clock.id),
                       SPA_POD_String(&name), SPA_POD_Long(&clock.nsec),
                       SPA_POD_Fraction(&clock.rate), SPA_POD_Long(&clock.position),
                       SPA_POD_Long(&clock.duration), SPA_POD_Long(&clock.delay),
                       SPA_POD_Double(&clock.rate_diff), SPA_POD_Long(&clock.next_nsec)) >= 0;
      break;
    }
    case SPA_PROFILER_driverBlock:
      have_driver = parse_block(&p->value, &drv) >= 0;
      finished &= !have_driver || drv.status == FINISHED;
      break;
    case SPA_PROFILER_followerBlock:
      if (parse_block(&p->value, &f) < 0)
        break;
      finished &= f.status == FINISHED;
      if (f.finish > last_finish)
        last_finish = f.finish;
      if (m->measuring && m->prefix[0] != '\0' && f.name != NULL &&
          spa_strstartswith(f.name, m->prefix) && f.finish > f.awake) {
        nodes_ns += (double)(f.finish - f.awake);
        nodes++;
      }
      break;
    default:
      break;
    }
  }
  if (!have_clock)
    return;
  m->cycles++;
  if (!finished || late(&clock, &drv, have_driver, last_finish))
    m->incomplete_at[m->n_incomplete++ % MAX_INCOMPLETE] = (uint32_t)clock.position;
  if (!m->measuring)
    return;
  m->acc.cycles++;
  m->acc.incomplete += !finished;
  if (have_driver && drv.signal > drv.prev_signal && drv.finish > drv.signal)
    m->load_sum += (double)(drv.finish - drv.signal) / (double)(drv.signal - drv.prev_signal);
  m->nodes_ns_sum += nodes_ns;
  m->acc.nodes = nodes;
}

static void on_profile(void *data, const struct spa_pod *pod) {
  struct pwm *m = data;
  struct spa_pod *o;
  SPA_POD_STRUCT_FOREACH(pod, o) {
    if (spa_pod_is_object_type(o, SPA_TYPE_OBJECT_Profiler))
      one_cycle(m, (const struct spa_pod_object *)o);
  }
}

static const struct pw_profiler_events profiler_events = {
    PW_VERSION_PROFILER_EVENTS,
    .profile = on_profile,
};

static void on_global(void *data, uint32_t id, uint32_t permissions, const char *type,
                      uint32_t version, const struct spa_dict *props) {
  struct pwm *m = data;
  (void)permissions;
  (void)version;
  (void)props;
  if (m->profiler != NULL || !spa_streq(type, PW_TYPE_INTERFACE_Profiler))
    return;
  m->profiler = pw_registry_bind(m->registry, id, type, PW_VERSION_PROFILER, 0);
  if (m->profiler != NULL)
    pw_proxy_add_object_listener(m->profiler, &m->profiler_listener, &profiler_events, m);
}

static const struct pw_registry_events registry_events = {
    PW_VERSION_REGISTRY_EVENTS,
    .global = on_global,
};

struct pwm *pwm_open(void) {
  sigset_t all, saved;
  pw_init(NULL, NULL);
  struct pwm *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  /* Its threads leave the test's signals (watchdog, SIGTERM) to the main thread. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  m->tloop = pw_thread_loop_new("rwt-monitor", NULL);
  m->context = m->tloop ? pw_context_new(pw_thread_loop_get_loop(m->tloop), NULL, 0) : NULL;
  bool started = m->context != NULL && pw_thread_loop_start(m->tloop) == 0;
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  if (!started) {
    pwm_close(m);
    return NULL;
  }
  pw_thread_loop_lock(m->tloop);
  /* The profiler's protocol (its proxy) comes with the module, on the client side too. */
  pw_context_load_module(m->context, PW_EXTENSION_MODULE_PROFILER, NULL, NULL);
  m->core = pw_context_connect(m->context, NULL, 0);
  if (m->core != NULL) {
    m->registry = pw_core_get_registry(m->core, PW_VERSION_REGISTRY, 0);
    if (m->registry != NULL)
      pw_registry_add_listener(m->registry, &m->registry_listener, &registry_events, m);
  }
  pw_thread_loop_unlock(m->tloop);
  if (m->registry == NULL) {
    pwm_close(m);
    return NULL;
  }
  return m;
}

void pwm_close(struct pwm *m) {
  if (m == NULL)
    return;
  if (m->tloop != NULL) {
    pw_thread_loop_lock(m->tloop);
    if (m->profiler != NULL)
      pw_proxy_destroy(m->profiler);
    if (m->registry != NULL)
      pw_proxy_destroy((struct pw_proxy *)m->registry);
    if (m->core != NULL)
      pw_core_disconnect(m->core);
    pw_thread_loop_unlock(m->tloop);
    pw_thread_loop_stop(m->tloop);
  }
  if (m->context != NULL)
    pw_context_destroy(m->context);
  if (m->tloop != NULL)
    pw_thread_loop_destroy(m->tloop);
  free(m);
  pw_deinit();
}

uint64_t pwm_cycles(struct pwm *m) {
  pw_thread_loop_lock(m->tloop);
  uint64_t n = m->cycles;
  pw_thread_loop_unlock(m->tloop);
  return n;
}

bool pwm_disturbed(struct pwm *m, uint32_t from, uint32_t to) {
  bool hit = false;
  pw_thread_loop_lock(m->tloop);
  uint32_t n = m->n_incomplete < MAX_INCOMPLETE ? m->n_incomplete : MAX_INCOMPLETE;
  for (uint32_t i = 0; i < n && !hit; i++)
    hit = (uint32_t)(m->incomplete_at[i] - from) < (uint32_t)(to - from);
  pw_thread_loop_unlock(m->tloop);
  return hit;
}

uint32_t pwm_incomplete(struct pwm *m) {
  pw_thread_loop_lock(m->tloop);
  uint32_t n = m->n_incomplete;
  pw_thread_loop_unlock(m->tloop);
  return n;
}

void pwm_load_start(struct pwm *m, const char *prefix) {
  pw_thread_loop_lock(m->tloop);
  snprintf(m->prefix, sizeof(m->prefix), "%s", prefix ? prefix : "");
  memset(&m->acc, 0, sizeof(m->acc));
  m->load_sum = m->nodes_ns_sum = 0;
  m->measuring = true;
  pw_thread_loop_unlock(m->tloop);
}

void pwm_load_take(struct pwm *m, struct pwm_load *out) {
  pw_thread_loop_lock(m->tloop);
  m->measuring = false;
  *out = m->acc;
  if (m->acc.cycles > 0) {
    out->dsp_load = m->load_sum / (double)m->acc.cycles;
    out->nodes_us = m->nodes_ns_sum / (double)m->acc.cycles / 1000.0;
  }
  pw_thread_loop_unlock(m->tloop);
}
