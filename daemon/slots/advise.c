/*
 * The latency advisor (slot.advise): from the worker's lead as the RT thread
 * measured it at every cycle, the smallest L that would have had no
 * underrun over the time observed, and a suggestion with a margin.
 *
 * The lead after a cycle is how far the worker's output reached beyond what
 * the cycle played: L less the input the worker had not processed yet (its
 * backlog). The backlog does not depend on L, so the smallest L that keeps
 * every lead at or above 0 is L minus the smallest lead seen, which is
 * negative by as much as a cycle came up short. The margin covers what the
 * observation did not see: a quarter more, and at least two periods.
 *
 * Control thread only.
 */
#include <math.h>
#include <stdio.h>

#include "slot_internal.h"

#define ADVISE_MARGIN_PERCENT 25
#define ADVISE_MARGIN_PERIODS 2

json_t *slot_advice_json(const struct slot *s) {
  const struct runwayd *d = s->d;
  struct slot_totals t = s->base;
  if (s->gen != NULL)
    slot__totals_add(&t, s->gen);
  if (s->outgoing != NULL)
    slot__totals_add(&t, s->outgoing);
  uint32_t rate = slot__backend_up(d) ? backend_sample_rate(d->backend) : 0;
  uint32_t period = slot__backend_up(d) ? backend_period(d->backend) : 0;
  int64_t lead = t.headroom_min_frames;
  uint64_t margin_min = (uint64_t)ADVISE_MARGIN_PERIODS * period;
  json_t *o =
      json_pack("{s:s, s:I, s:o, s:I, s:I, s:I, s:f, s:i, s:I}", "slot", s->name, "latency_frames",
                (json_int_t)s->latency, "sample_rate", rate ? json_integer(rate) : json_null(),
                "cycles", (json_int_t)t.cycles, "underruns", (json_int_t)t.underruns,
                "underrun_frames", (json_int_t)t.underrun_frames, "observed_s",
                rate && period ? (double)t.cycles * period / rate : 0.0, "margin_percent",
                ADVISE_MARGIN_PERCENT, "margin_min_frames", (json_int_t)margin_min);
  if (o == NULL)
    return NULL;
  if (lead == INT64_MAX || s->latency == 0) {
    json_object_set_new(o, "lead_min_frames", json_null());
    json_object_set_new(o, "needed_frames", json_null());
    json_object_set_new(o, "suggested_frames", json_null());
    json_object_set_new(o, "advice", json_string("no worker has played in this slot yet"));
    return o;
  }
  /* The smallest L with every lead >= 0; never below one period (DESIGN.md). */
  int64_t needed = (int64_t)s->latency - lead;
  if (needed < (int64_t)period)
    needed = period;
  if (needed < 1)
    needed = 1;
  uint64_t margin = (uint64_t)((needed * ADVISE_MARGIN_PERCENT + 99) / 100);
  if (margin < margin_min)
    margin = margin_min;
  uint64_t suggested = (uint64_t)needed + margin;
  json_object_set_new(o, "lead_min_frames", json_integer(lead));
  json_object_set_new(o, "needed_frames", json_integer(needed));
  json_object_set_new(o, "suggested_frames", json_integer((json_int_t)suggested));
  if (rate > 0) {
    json_object_set_new(o, "needed_ms", json_real(needed * 1000.0 / rate));
    json_object_set_new(o, "suggested_ms", json_real(suggested * 1000.0 / rate));
  }

  char advice[256];
  double ms = rate > 0 ? 1000.0 / rate : 0;
  if (suggested > s->latency)
    snprintf(advice, sizeof(advice),
             "raise L to %llu frames (%.1f ms): add the slot again with --latency-frames %llu",
             (unsigned long long)suggested, suggested * ms, (unsigned long long)suggested);
  else if (suggested < s->latency)
    snprintf(advice, sizeof(advice),
             "L could be %llu frames (%.1f ms), %.1f ms less: add the slot again with "
             "--latency-frames %llu",
             (unsigned long long)suggested, suggested * ms, (s->latency - suggested) * ms,
             (unsigned long long)suggested);
  else
    snprintf(advice, sizeof(advice), "keep L as it is");
  json_object_set_new(o, "advice", json_string(advice));
  return o;
}
