/*
 * The host features a plugin instance gets, and the list runway checks a
 * plugin's required features against.
 *
 * Block lengths: runway's blocks vary on every call (as much input as is
 * pending, at most max_block frames, shorter where events crowd or a
 * parameter changes mid-block), so runway promises bounded block lengths
 * (1 to max_block, nominal max_block) and nothing more: a plugin that
 * requires a fixed or a power-of-two block length is refused by name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lv2/buf-size/buf-size.h>
#include <lv2/core/lv2.h>
#include <lv2/data-access/data-access.h>
#include <lv2/instance-access/instance-access.h>
#include <lv2/parameters/parameters.h>
#include <lv2/state/state.h>
#include <lv2/ui/ui.h>

#include "clock.h"
#include "lv2host.h"

/* Messages a plugin may log per second before the rest of that second is dropped. */
#define LOG_BUDGET_PER_SECOND 20u

static const struct {
  const char *uri;
  const char *name;
  int supported;
} known[] = {
    {LV2_URID__map, "URID mapping", 1},
    {LV2_URID__unmap, "URID unmapping", 1},
    {LV2_OPTIONS__options, "options", 1},
    {LV2_BUF_SIZE__boundedBlockLength, "a bounded block length", 1},
    {LV2_WORKER__schedule, "the worker", 1},
    {LV2_LOG__log, "logging", 1},
    /* Properties of the plugin, not services of the host: nothing to provide. */
    {LV2_CORE__hardRTCapable, "hard real-time capability", 1},
    {LV2_CORE__inPlaceBroken, "separate input and output buffers", 1},
    {LV2_BUF_SIZE__coarseBlockLength, "long blocks", 1},
    {LV2_STATE__threadSafeRestore, "thread-safe restore", 1},
    /* runway restores the default state before the first run(). */
    {LV2_STATE__loadDefaultState, "loading its default state", 1},
    /*
     * Live plugins expect their output to be heard at once; runway plays it
     * L later, and reports that latency, as it does for every plugin.
     */
    {LV2_CORE__isLive, "live operation", 1},
    {LV2_BUF_SIZE__fixedBlockLength, "a fixed block length", 0},
    {LV2_BUF_SIZE__powerOf2BlockLength, "a power-of-two block length", 0},
    {LV2_STATE__makePath, "a directory for new files", 0},
    {LV2_INSTANCE_ACCESS_URI, "a UI with access to the instance", 0},
    {LV2_DATA_ACCESS_URI, "a UI with access to its data", 0},
    {LV2_UI__parent, "a UI", 0},
    {LV2_UI__idleInterface, "a UI", 0},
    {LV2_PARAMETERS__sampleRate, "the sample rate", 1},
    {LV2_BUF_SIZE__minBlockLength, "the minimum block length", 1},
    {LV2_BUF_SIZE__maxBlockLength, "the maximum block length", 1},
    {LV2_BUF_SIZE__nominalBlockLength, "the nominal block length", 1},
    {LV2_BUF_SIZE__sequenceSize, "the atom sequence size", 1},
};

const char *lv2host_feature_name(const char *uri) {
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (strcmp(known[i].uri, uri) == 0)
      return known[i].name;
  if (strncmp(uri, LV2_UI_PREFIX, strlen(LV2_UI_PREFIX)) == 0)
    return "a UI";
  return NULL;
}

int lv2host_feature_supported(const char *uri) {
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (strcmp(known[i].uri, uri) == 0)
      return known[i].supported;
  return 0;
}

/* ---- log:log ------------------------------------------------------------------------ */

static const char *level(const struct lv2host *h, LV2_URID type) {
  const struct lv2host_urids *u = &h->world->u;
  if (type == u->log_error)
    return "error";
  if (type == u->log_warning)
    return "warning";
  if (type == u->log_trace)
    return "trace";
  return "note";
}

static int log_vprintf(LV2_Log_Handle handle, LV2_URID type, const char *fmt, va_list ap) {
  struct lv2host *h = handle;
  /* Traces may come from run() every block; they are for debugging the plugin, not the slot. */
  if (type == h->world->u.log_trace)
    return 0;
  uint64_t second = base_mono_ms() / 1000u;
  int n = 0;
  pthread_mutex_lock(&h->log_lock);
  if (second != h->log_second) {
    if (h->log_dropped > 0)
      fprintf(stderr, "lv2 %s: %llu more message(s) dropped\n", h->desc->uri,
              (unsigned long long)h->log_dropped);
    h->log_second = second;
    h->log_count = 0;
    h->log_dropped = 0;
  }
  if (h->log_count < LOG_BUDGET_PER_SECOND) {
    h->log_count++;
    char text[1024];
    n = vsnprintf(text, sizeof(text), fmt, ap);
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
      text[--len] = '\0';
    fprintf(stderr, "lv2 %s: %s: %s\n", h->desc->uri, level(h, type), text);
  } else {
    h->log_dropped++;
  }
  pthread_mutex_unlock(&h->log_lock);
  return n;
}

static int log_printf(LV2_Log_Handle handle, LV2_URID type, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = log_vprintf(handle, type, fmt, ap);
  va_end(ap);
  return n;
}

/* ---- the feature list ---------------------------------------------------------------- */

static LV2_Options_Option option(LV2_URID key, uint32_t size, LV2_URID type, const void *value) {
  LV2_Options_Option o = {LV2_OPTIONS_INSTANCE, 0, key, size, type, value};
  return o;
}

void lv2host_features_init(struct lv2host *h) {
  struct lv2host_world *w = h->world;
  const struct lv2host_urids *u = &w->u;

  h->opt_sample_rate = (float)h->sample_rate;
  h->opt_min_block = 1;
  h->opt_max_block = (int32_t)h->max_block;
  h->opt_nominal_block = (int32_t)h->max_block;
  h->opt_sequence_size = 0;
  for (uint32_t i = 0; i < h->desc->n_ports; i++)
    if (h->desc->ports[i].atom_capacity > (size_t)h->opt_sequence_size)
      h->opt_sequence_size = (int32_t)h->desc->ports[i].atom_capacity;
  h->options[0] = option(u->sample_rate, sizeof(float), u->atom_float, &h->opt_sample_rate);
  h->options[1] = option(u->min_block, sizeof(int32_t), u->atom_int, &h->opt_min_block);
  h->options[2] = option(u->max_block, sizeof(int32_t), u->atom_int, &h->opt_max_block);
  h->options[3] = option(u->nominal_block, sizeof(int32_t), u->atom_int, &h->opt_nominal_block);
  h->options[4] = option(u->sequence_size, sizeof(int32_t), u->atom_int, &h->opt_sequence_size);
  h->options[5] = option(0, 0, 0, NULL); /* the terminator: key 0, value NULL */

  h->schedule.handle = &h->work;
  h->schedule.schedule_work = lv2host_work_schedule;
  h->log.handle = h;
  h->log.printf = log_printf;
  h->log.vprintf = log_vprintf;

  h->f_map = (LV2_Feature){LV2_URID__map, &w->urid.map};
  h->f_unmap = (LV2_Feature){LV2_URID__unmap, &w->urid.unmap};
  h->f_options = (LV2_Feature){LV2_OPTIONS__options, h->options};
  h->f_bounded = (LV2_Feature){LV2_BUF_SIZE__boundedBlockLength, NULL};
  h->f_schedule = (LV2_Feature){LV2_WORKER__schedule, &h->schedule};
  h->f_log = (LV2_Feature){LV2_LOG__log, &h->log};
  const LV2_Feature *list[] = {&h->f_map,      &h->f_unmap, &h->f_options, &h->f_bounded,
                               &h->f_schedule, &h->f_log,   NULL};
  _Static_assert(sizeof(list) <= sizeof(h->features), "room for every feature");
  memcpy(h->features, list, sizeof(list));
}
