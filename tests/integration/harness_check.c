/*
 * Checking what the probe recorded: every expected sample at exactly its
 * frame with exactly its value, nothing anywhere else, and never a pass on
 * too little: a check needs a floor of exact samples, so no stretch without
 * audio (a disconnected port, a slot that outputs nothing, expectations all
 * excused near disturbances) can pass. Measurements that a disturbance of
 * the graph spoiled are sent again (h_measure) instead of failing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_internal.h"
#include "runway/segment.h"

static int cmp_expect(const void *a, const void *b) {
  const struct h_expect *x = a, *y = b;
  return x->frame < y->frame ? -1 : x->frame > y->frame;
}

uint64_t h_first_record(struct h_probe *p, unsigned port, uint64_t from, uint64_t to) {
  const struct h_record *r;
  size_t n = h_probe_records(p, &r);
  for (size_t i = 0; i < n; i++)
    if (r[i].port == port && r[i].frame >= from && r[i].frame < to)
      return r[i].frame;
  return UINT64_MAX;
}

/* Nearest record on port to frame (for diagnostics). */
static const struct h_record *nearest(const struct h_record *r, size_t n, unsigned port,
                                      uint64_t frame) {
  const struct h_record *best = NULL;
  uint64_t best_d = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (r[i].port != port)
      continue;
    uint64_t d = r[i].frame > frame ? r[i].frame - frame : frame - r[i].frame;
    if (d < best_d) {
      best_d = d;
      best = &r[i];
    }
  }
  return best;
}

unsigned h_check_floor(unsigned expected, unsigned min_exact) {
  if (min_exact == H_FLOOR_NONE)
    return 0;
  if (min_exact > 0)
    return min_exact;
  return expected > 0 ? expected / 2 + 1 : 0;
}

const char *h_verdict_str(enum h_verdict v) {
  switch (v) {
  case H_EXACT:
    return "exact";
  case H_DISTURBED:
    return "too few exact next to disturbances: measure again";
  default:
    return "misaligned";
  }
}

/*
 * Whether frame lies within `span` frames of an expectation (e sorted): what
 * a disturbance leaves behind is a displaced or repeated impulse, never a
 * sample where nothing was sent.
 */
static bool near_expectation(const struct h_expect *e, size_t n, uint64_t frame, uint64_t span) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e[mid].frame < frame)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (lo < n && e[lo].frame - frame <= span) || (lo > 0 && frame - e[lo - 1].frame <= span);
}

/*
 * Whether a sample at frame of value v is the fade-out of the optional
 * expectation just before it: a slot whose worker ran out right after an
 * impulse fades its last sample out over RW_FADE_FRAMES instead of stepping
 * to silence. Optional expectations are those of a stretch with underruns.
 */
static bool fading_tail(const struct h_expect *e, size_t n, uint64_t frame, float v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e[mid].frame < frame)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return false;
  const struct h_expect *prev = &e[lo - 1];
  return prev->optional && frame - prev->frame <= RW_FADE_FRAMES && v > 0 && v < prev->value;
}

/* A displaced impulse is at most this many periods off (several skipped cycles). */
#define DISPLACED_PERIODS 8

/* Compares the records with the sorted expectations e[0..n); fills *c. */
static void compare(struct h_probe *p, unsigned port, struct h_expect *e, size_t n, uint64_t from,
                    uint64_t to, uint32_t delay, const char *label, struct h_check *c) {
  bool *seen = calloc(n ? n : 1, sizeof(bool));
  /* Skipped cycles move what was in flight by up to the skip, which L bounds for a slot. */
  uint64_t displaced_span = DISPLACED_PERIODS * (uint64_t)h_probe_period(p);
  if (delay > displaced_span)
    displaced_span = delay;
  const struct h_record *r;
  size_t nr = h_probe_records(p, &r);
  unsigned printed = 0;
  const unsigned max_print = 12;

  if (h_probe_overflow(p) > 0) {
    h_error("%s: the probe's record buffer overflowed", label);
    c->unexpected++;
  }
  for (size_t i = 0; i < nr; i++) {
    if (r[i].port != port || r[i].frame < from || r[i].frame >= to)
      continue;
    struct h_expect key = {.frame = r[i].frame};
    struct h_expect *m = bsearch(&key, e, n, sizeof(*e), cmp_expect);
    if (m == NULL && h__probe_disturbed(p, r[i].frame, delay) &&
        near_expectation(e, n, r[i].frame, displaced_span)) {
      c->tolerated++; /* a cycle repeated by JACK around a disturbance */
      continue;
    }
    if (m == NULL && fading_tail(e, n, r[i].frame, r[i].value)) {
      c->tolerated++; /* an underrun right after the impulse: its fade-out */
      continue;
    }
    if (m == NULL) {
      c->unexpected++;
      if (printed++ < max_print)
        printf("  %s: unexpected sample %.9g at frame %llu\n", label, (double)r[i].value,
               (unsigned long long)r[i].frame);
      continue;
    }
    seen[m - e] = true;
    if (!m->optional) {
      if (r[i].value == m->value) {
        c->exact++;
      } else {
        c->wrong++;
        if (printed++ < max_print)
          printf("  %s: at frame %llu expected %.9g, got %.9g\n", label,
                 (unsigned long long)r[i].frame, (double)m->value, (double)r[i].value);
      }
      continue;
    }
    c->optional_seen++;
    c->optional_exact += r[i].value == m->value;
    bool faded = r[i].value > 0 && r[i].value <= m->value;
    if (!faded && h__probe_disturbed(p, r[i].frame, delay)) {
      c->tolerated++; /* the data of a neighbouring cycle, around a disturbance */
    } else if (!faded) {
      c->wrong++;
      if (printed++ < max_print)
        printf("  %s: at frame %llu (optional) expected at most %.9g, got %.9g\n", label,
               (unsigned long long)r[i].frame, (double)m->value, (double)r[i].value);
    }
  }
  for (size_t k = 0; k < n; k++) {
    if (e[k].frame < from || e[k].frame >= to)
      continue;
    c->expected++;
    if (!e[k].optional)
      c->required++;
    if (seen[k])
      continue;
    if (e[k].optional) {
      c->optional_missing++;
      continue;
    }
    c->missing++;
    if (printed++ < max_print) {
      const struct h_record *near = nearest(r, nr, port, e[k].frame);
      if (near != NULL)
        printf("  %s: missing %.9g at frame %llu; nearest sample %.9g at %llu (%+lld)\n", label,
               (double)e[k].value, (unsigned long long)e[k].frame, (double)near->value,
               (unsigned long long)near->frame, (long long)(near->frame - e[k].frame));
      else
        printf("  %s: missing %.9g at frame %llu; no sample at all on this port\n", label,
               (double)e[k].value, (unsigned long long)e[k].frame);
    }
  }
  free(seen);
}

/*
 * h_check_port_delay, knowing that `unsent` more were scheduled but never
 * sent (the test thread came too late): too few exact is then no proof.
 */
static bool check_port(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                       uint64_t from, uint64_t to, uint32_t delay, unsigned min_exact,
                       unsigned unsent, const char *label, struct h_check *out) {
  struct h_check c;
  memset(&c, 0, sizeof(c));
  struct h_expect *e = malloc((n ? n : 1) * sizeof(*e));
  if (n > 0)
    memcpy(e, ex, n * sizeof(*e));
  for (size_t k = 0; k < n; k++) {
    if (!e[k].optional && e[k].frame >= from && e[k].frame < to &&
        h__probe_disturbed(p, e[k].frame, delay)) {
      e[k].optional = true;
      c.disturbed++;
    }
  }
  qsort(e, n, sizeof(*e), cmp_expect);
  compare(p, port, e, n, from, to, delay, label, &c);
  free(e);

  c.floor = h_check_floor(c.expected, min_exact);
  unsigned exact = c.exact + c.optional_exact;
  /* Some were allowed to be lost, or never sent. */
  bool excused = c.disturbed > 0 || c.required < c.expected || unsent > 0;
  if (c.missing > 0 || c.wrong > 0 || c.unexpected > 0)
    c.verdict = H_MISALIGNED;
  else if (exact < c.floor)
    c.verdict = excused ? H_DISTURBED : H_MISALIGNED;
  else
    c.verdict = H_EXACT;
  if (c.verdict != H_EXACT)
    h__probe_explain(p, label);
  fflush(stdout);
  if (out != NULL)
    *out = c;
  h_log("%s: %u/%u exact, %u missing, %u wrong, %u unexpected; optional: %u seen (%u exact), "
        "%u missing; %u exact of at least %u%s",
        label, c.exact, c.required, c.missing, c.wrong, c.unexpected, c.optional_seen,
        c.optional_exact, c.optional_missing, exact, c.floor,
        c.verdict == H_EXACT       ? ""
        : c.verdict == H_DISTURBED ? "  <-- too few"
                                   : "  <-- FAIL");
  if (c.disturbed > 0 || c.tolerated > 0)
    h_log("%s: %u expectation(s) near a disturbance of the graph checked leniently, %u stray "
          "sample(s) there tolerated (JACK's doing, not the slot's)",
          label, c.disturbed, c.tolerated);
  return c.verdict == H_EXACT;
}

bool h_check_port_delay(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                        uint64_t from, uint64_t to, uint32_t delay, unsigned min_exact,
                        const char *label, struct h_check *out) {
  return check_port(p, port, ex, n, from, to, delay, min_exact, 0, label, out);
}

bool h_check_port(struct h_probe *p, unsigned port, const struct h_expect *ex, size_t n,
                  uint64_t from, uint64_t to, const char *label, struct h_check *out) {
  return h_check_port_delay(p, port, ex, n, from, to, 0, 0, label, out);
}

/* ---- impulses ------------------------------------------------------------------------- */

struct planned {
  uint64_t frame;
  unsigned port;
};

static int cmp_planned(const void *a, const void *b) {
  const struct planned *x = a, *y = b;
  if (x->frame != y->frame)
    return x->frame < y->frame ? -1 : 1;
  return x->port < y->port ? -1 : x->port > y->port;
}

uint64_t h_impulse_train(struct h_probe *p, const unsigned *ports, unsigned n_ports, unsigned count,
                         uint32_t gap, uint32_t lead) {
  uint32_t period = h_probe_period(p);
  uint64_t phase = h_probe_sink_first(p) % period;
  uint64_t start = h_probe_now(p) + lead;
  if (start <= h_probe_last_scheduled(p))
    start = h_probe_last_scheduled(p) + 1;
  struct planned *plan = calloc((size_t)count * n_ports + 1, sizeof(*plan));
  size_t n = 0;
  for (unsigned i = 0; i < n_ports; i++) {
    uint64_t f = start + (uint64_t)i * 7;
    for (unsigned k = 0; k < count; k++) {
      f += gap + (k * 37u + k * k * 11u + i * 13u) % 97u;
      uint64_t g = f;
      uint64_t off = (g + period - phase) % period; /* offset inside its cycle */
      if (k % 4 == 1)
        g += (period - off) % period; /* the first frame of a cycle */
      else if (k % 4 == 2)
        g += (period - 1 + period - off) % period; /* the last frame of a cycle */
      plan[n].frame = g;
      plan[n].port = ports[i];
      n++;
      f = g;
    }
  }
  qsort(plan, n, sizeof(*plan), cmp_planned);
  for (size_t k = 0; k < n; k++)
    h_probe_impulse(p, plan[k].port, plan[k].frame, 1.0f);
  uint64_t last = n ? plan[n - 1].frame : start;
  free(plan);
  return last;
}

bool h_check(struct h_probe *p, const struct h_impulses *spec, const char *label,
             struct h_check *out) {
  uint32_t n = h_probe_n_events(p);
  float gain = spec->gain != 0.0f ? spec->gain : 1.0f;
  struct h_expect *ex = calloc(n + 1, sizeof(*ex));
  size_t k = 0;
  unsigned late = 0;
  for (uint32_t id = spec->first_id; id < n; id++) {
    unsigned kind, port;
    uint64_t frame;
    float value;
    if (!h__probe_event(p, id, &kind, &port, &frame, &value) || kind != H__EV_AUDIO ||
        port != spec->out)
      continue;
    enum h_event_status st = h_probe_status(p, id);
    if (st == H_EV_LATE) {
      late++;
      continue;
    }
    ex[k].frame = frame + spec->delay;
    ex[k].value = value * gain;
    /* Not emitted yet: it cannot be in the window unless the test checks too early. */
    ex[k].optional = spec->tolerant || st != H_EV_EMITTED;
    k++;
  }
  if (late > 0)
    h_log("%s: %u impulse(s) were scheduled too late to be sent (test thread delayed); skipped",
          label, late);
  bool ok = check_port(p, spec->in, ex, k, spec->from, spec->to, spec->delay, spec->min_exact, late,
                       label, out);
  free(ex);
  return ok;
}

bool h_check_impulses(struct h_probe *p, unsigned out_port, unsigned sink_port, uint32_t delay,
                      uint32_t first_id, uint64_t from, uint64_t to, bool tolerant,
                      const char *label, struct h_check *out) {
  return h_check_impulses_gain(p, out_port, sink_port, delay, 1.0f, first_id, from, to, tolerant,
                               label, out);
}

bool h_check_impulses_gain(struct h_probe *p, unsigned out_port, unsigned sink_port, uint32_t delay,
                           float gain, uint32_t first_id, uint64_t from, uint64_t to, bool tolerant,
                           const char *label, struct h_check *out) {
  struct h_impulses spec = {.out = out_port,
                            .in = sink_port,
                            .delay = delay,
                            .gain = gain,
                            .first_id = first_id,
                            .from = from,
                            .to = to,
                            .tolerant = tolerant};
  return h_check(p, &spec, label, out);
}

/* ---- measuring until undisturbed ------------------------------------------------------- */

/* Underruns of the slots on the path, summed. */
static json_int_t underruns_of(struct h_conn *c, const struct h_path *path) {
  json_int_t sum = 0;
  for (size_t i = 0; c != NULL && i < sizeof(path->slots) / sizeof(path->slots[0]); i++)
    if (path->slots[i] != NULL)
      sum += h_slot_stat(c, path->slots[i], "underruns");
  return sum;
}

/*
 * A burst of outside load (another VM on the host, say) can disturb every
 * train for seconds: past its attempts, a path is measured again until this
 * long has gone by since the first train, and only then is the machine too
 * busy. A misplaced impulse fails at once, however long the wait.
 */
#define H_MEASURE_PATIENCE_MS 20000

bool h_measure(struct h_probe *p, struct h_conn *c, struct h_path *paths, unsigned n,
               const struct h_train *train) {
  struct h_train t = {6, 1100, 2400, 0, 12};
  const uint64_t began_ms = h_now_ms();
  if (train != NULL) {
    t.count = train->count ? train->count : t.count;
    t.gap = train->gap ? train->gap : t.gap;
    t.lead = train->lead ? train->lead : t.lead;
    t.min_exact = train->min_exact;
    t.attempts = train->attempts ? train->attempts : t.attempts;
  }
  if (t.min_exact == 0)
    t.min_exact = (2 * t.count + 2) / 3;
  bool done[H_PROBE_MAX_PORTS] = {false};
  unsigned left = n, best[H_PROBE_MAX_PORTS] = {0};
  if (n > H_PROBE_MAX_PORTS)
    H_FAIL("h_measure: at most %u paths", H_PROBE_MAX_PORTS);
  bool failed = false;
  for (unsigned attempt = 1; left > 0 && !failed; attempt++) {
    unsigned ports[H_PROBE_MAX_PORTS], np = 0;
    uint64_t late0 = h_probe_late(p);
    uint64_t skipped0 = c != NULL ? h_daemon_skipped(c) : 0;
    uint64_t start = h_probe_cycle(p);
    json_int_t u0[H_PROBE_MAX_PORTS];
    uint32_t longest = 0;
    for (unsigned i = 0; i < n; i++) {
      if (done[i])
        continue;
      ports[np++] = paths[i].out;
      u0[i] = underruns_of(c, &paths[i]);
      if (paths[i].delay > longest)
        longest = paths[i].delay;
    }
    uint32_t first = h_probe_n_events(p);
    uint64_t last = h_impulse_train(p, ports, np, t.count, t.gap, t.lead);
    uint64_t to = last + longest + 4 * h_probe_period(p);
    h_probe_wait_frame(p, to, 20000);
    uint64_t skipped = c != NULL ? h_daemon_skipped(c) - skipped0 : 0;
    if (skipped > 0) {
      h_log("runwayd's clock skipped %llu frames during the train (late runs of a busy graph): "
            "what was in flight may come out whole periods off; checked leniently %s",
            (unsigned long long)skipped,
            h_watching_skips(p) ? "where it happened" : "over the train");
      if (!h_watching_skips(p))
        h_probe_mark_disturbed(p, start, to);
    }
    for (unsigned i = 0; i < n; i++) {
      if (done[i])
        continue;
      struct h_path *path = &paths[i];
      json_int_t u = underruns_of(c, path);
      bool tolerant = u > u0[i];
      if (tolerant)
        h_log("%s: %lld underrun(s) on the path meanwhile (a worker late on a busy machine?): "
              "impulses may be lost, never moved",
              path->label, (long long)(u - u0[i]));
      struct h_impulses spec = {.out = path->out,
                                .in = path->in,
                                .delay = path->delay,
                                .gain = path->gain,
                                .first_id = first,
                                .from = path->checked_to,
                                .to = to,
                                .tolerant = tolerant,
                                .min_exact = t.min_exact};
      struct h_check ck;
      h_check(p, &spec, path->label, &ck);
      path->first_delay = -1;
      for (uint32_t id = first; id < h_probe_n_events(p); id++) {
        unsigned kind, port;
        uint64_t frame, back;
        float value;
        if (h__probe_event(p, id, &kind, &port, &frame, &value) && kind == H__EV_AUDIO &&
            port == path->out) {
          back = h_first_record(p, path->in, frame, to);
          if (back != UINT64_MAX)
            path->first_delay = (int64_t)(back - frame);
          break;
        }
      }
      path->checked_to = to;
      unsigned exact = ck.exact + ck.optional_exact;
      if (exact > best[i])
        best[i] = exact;
      if (ck.verdict == H_MISALIGNED) {
        h_error("%s: not exactly %u frames later at exactly %.9g each", path->label, path->delay,
                (double)(path->gain != 0.0f ? path->gain : 1.0f));
        failed = true; /* the other paths of this train are still checked */
      } else if (ck.verdict == H_EXACT) {
        done[i] = true;
        left--;
      } else if (attempt >= t.attempts && h_now_ms() - began_ms >= H_MEASURE_PATIENCE_MS) {
        h_error("%s: at most %u of %u impulses exact in %u attempts over %llu ms, each disturbed "
                "(xruns, late runs of the graph or underruns): the machine is too busy to measure",
                path->label, best[i], t.count, attempt,
                (unsigned long long)(h_now_ms() - began_ms));
        failed = true;
      } else {
        h_log("%s: attempt %u disturbed (%u exact, %u needed); measuring again", path->label,
              attempt, exact, ck.floor);
      }
    }
    /* The test thread ran too late to send them all: start the next train further ahead. */
    if (h_probe_late(p) > late0 && t.lead < 48000)
      t.lead *= 2;
  }
  return !failed;
}

void h_check_train(struct h_probe *p, unsigned out, unsigned in, uint32_t delay, float gain,
                   uint32_t gap, uint32_t lead, uint32_t period, uint64_t *checked_to,
                   const char *label) {
  if (period != h_probe_period(p))
    H_FAIL("%s: a train for a period of %u frames on a server of %u", label, period,
           h_probe_period(p));
  struct h_path path = {
      .out = out, .in = in, .delay = delay, .gain = gain, .checked_to = *checked_to};
  snprintf(path.label, sizeof(path.label), "%s", label);
  struct h_train train = {.gap = gap, .lead = lead};
  h_measure(p, NULL, &path, 1, &train);
  *checked_to = path.checked_to;
}
