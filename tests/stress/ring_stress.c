#include "ring_stress.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeline.h"
#include "wake.h"

#define RS_MAX_CHANNELS 4u /* the sample encoding has room for 4 channels */
#define RS_MAX_PENDING (1u << 16)
#define RS_MAX_UNDERRUN_RANGES (1u << 16)
#define RS_WAKE_TIMEOUT_NS 20000000

/* Probabilities of a random stall at each of the three stall points of a chunk. */
#define RS_P_SHORT 0.04
#define RS_P_LONG 0.001
/* Fraction of the long stalls between plan and read that outlast the ring (proc only). */
#define RS_P_OVERWRITE 0.25

/*
 * Share of catch-ups after which the worker polls in_write instead of
 * sleeping, so it plans and copies while the daemon is still in the cycle
 * that published the input: that is where a publish-before-write or a
 * missing release would show (as wrong input, or as a TSan report).
 */
#define RS_P_SPIN 0.5

/*
 * Share of catch-ups after which the worker runs "just in time" for a few
 * periods: it holds each chunk until the daemon is in the cycle that plays
 * it, then commits, so commits land between the daemon's load of in_read and
 * its load of out_write. Only there is out_write's release the daemon's sole
 * ordering for the frames it reads. Costs a few underrun cycles.
 */
#define RS_P_JIT 0.08

/* Share of all played samples that must be the exact, on-time answer. */
#define RS_MIN_EXACT_SHARE 0.60

/* Positions of the deterministic stalls, as fractions of the run. */
#define RS_AT_UNDERRUN 0.20
#define RS_AT_LATE 0.45
#define RS_AT_OVERWRITE 0.70

/* ---- helpers shared by both roles ---------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
  /* splitmix64: tiny, and good enough to pick stalls and chunk sizes. */
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint32_t rng_range(uint64_t *s, uint32_t lo, uint32_t hi) {
  if (hi <= lo)
    return lo;
  return lo + (uint32_t)(rng_next(s) % ((uint64_t)hi - lo + 1));
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

/* Input sample of channel ch at timeline position pos; exact in float32 (< 2^24). */
static float enc(uint32_t ch, uint64_t pos) {
  return (float)(1u + (uint32_t)(pos % (UINT64_C(1) << 20)) * 4u + ch);
}

/* Describes a sample value for failure messages. */
static void describe(float v, char *buf, size_t len) {
  if (v == 0.0f) {
    snprintf(buf, len, "0 (silence)");
    return;
  }
  double d = v;
  if (d >= 1.0 && d < 1.0 + 4.0 * (1 << 20) && d == (double)(uint32_t)d) {
    uint32_t k = (uint32_t)d - 1u;
    snprintf(buf, len, "%.0f (= channel %u, position %u mod 2^20)", d, k % 4u, k / 4u);
    return;
  }
  snprintf(buf, len, "%g (not an encoded sample)", d);
}

/* Frames by which an encoded sample got lags the one wanted (mod 2^20), or 0 if not comparable. */
static long lag_of(float got, float want) {
  double g = got, w = want;
  if (g < 1.0 || w < 1.0 || g != (double)(uint32_t)g || w != (double)(uint32_t)w)
    return 0;
  uint32_t kg = (uint32_t)g - 1u, kw = (uint32_t)w - 1u;
  if (kg % 4u != kw % 4u)
    return 0;
  long lag = (long)(kw / 4u) - (long)(kg / 4u);
  return lag;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
  }
}

uint64_t rs_seed(void) {
  const char *env = getenv("RUNWAY_STRESS_SEED");
  if (env != NULL && *env != '\0')
    return strtoull(env, NULL, 0);
  return now_ns() ^ ((uint64_t)clock() << 32);
}

int rs_segment_create(const struct rs_config *cfg, struct shm_segment *seg) {
  struct proto_segment_params params = {
      .sample_rate = cfg->rate,
      .n_inputs = cfg->channels,
      .n_outputs = cfg->channels,
      .latency = cfg->latency,
      .max_period = cfg->period,
      .generation = 1,
  };
  char err[256];
  if (cfg->channels == 0 || cfg->channels > RS_MAX_CHANNELS) {
    fprintf(stderr, "FAIL: the sample encoding supports 1..%u channels\n", RS_MAX_CHANNELS);
    return -1;
  }
  int rc = shm_segment_create(&params, cfg->name, seg, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "FAIL: shm_segment_create(%s): %s\n", cfg->name, err);
    return -1;
  }
  return 0;
}

/* ---- worker role ---------------------------------------------------------- */

enum rs_point { RS_AT_PLAN, RS_AT_READ, RS_AT_COMMIT };

struct rs_worker {
  struct rs_shared *sh;
  const struct rs_config *cfg;
  struct shm_tl_worker w;
  struct shm_ctl ctl;
  uint64_t rng;
  uint32_t latency;
  uint32_t capacity;
  uint32_t period;
  uint64_t total;
  uint64_t jit_until; /* input position up to which chunks are committed just in time */
  /* A pending short-stall window: from the stall until the worker caught up. */
  int window_open;
  uint64_t window_from;
};

static void worker_fatal(struct rs_worker *k, const char *what, long value) {
  if (atomic_exchange_explicit(&k->sh->fatal, 1, memory_order_relaxed) == 0)
    snprintf(k->sh->message, sizeof(k->sh->message), "%s (%ld) at input position %llu", what, value,
             (unsigned long long)k->w.pos);
}

static int stopped(const struct rs_worker *k) {
  return atomic_load_explicit(&k->sh->stop, memory_order_acquire) != 0;
}

/*
 * Waits until *word >= target. With memory_order_acquire, whatever the daemon
 * did before publishing the position is visible, exactly as after the ring's
 * own loads, so waiting adds no unordered access; memory_order_relaxed models
 * a worker that was simply paused that long. Returns -1 when the run stopped.
 */
static int wait_position_order(struct rs_worker *k, _Atomic uint64_t *word, uint64_t target,
                               memory_order order) {
  while (atomic_load_explicit(word, order) < target) {
    if (stopped(k))
      return -1;
    sleep_ns(200000);
  }
  return 0;
}

static int wait_position(struct rs_worker *k, _Atomic uint64_t *word, uint64_t target) {
  return wait_position_order(k, word, target, memory_order_acquire);
}

static void sleep_frames(const struct rs_worker *k, uint64_t frames) {
  sleep_ns(frames * 1000000000u / k->cfg->rate);
}

static void window_abandon(struct rs_worker *k) { k->window_open = 0; }

static void window_close(struct rs_worker *k) {
  if (!k->window_open)
    return;
  k->window_open = 0;
  uint64_t n = atomic_load_explicit(&k->sh->n_windows, memory_order_relaxed);
  if (n >= RS_MAX_STALL_WINDOWS)
    return;
  k->sh->windows[n].from = k->window_from;
  k->sh->windows[n].to = k->w.pos + k->latency; /* out_write: caught up */
  /* Release: the entry is written before the count that exposes it. */
  atomic_store_explicit(&k->sh->n_windows, n + 1, memory_order_release);
}

/* A random stall at point; c is the chunk held (between plan and commit) or NULL. */
static int random_stall(struct rs_worker *k, enum rs_point point, const struct shm_tl_chunk *c) {
  double u = rng_unit(&k->rng);
  if (u < RS_P_SHORT) {
    /* Well below L: with the worker otherwise keeping up, no underrun should follow. */
    if (!k->window_open && k->w.pos >= k->jit_until) {
      k->window_open = 1;
      k->window_from = atomic_load_explicit(&k->ctl.d->out_read.value, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&k->sh->short_stalls, 1, memory_order_relaxed);
    sleep_frames(k, rng_range(&k->rng, k->latency / 20 + 1, k->latency * 3 / 10));
    return 0;
  }
  if (u >= RS_P_SHORT + RS_P_LONG)
    return 0;

  window_abandon(k);
  atomic_fetch_add_explicit(&k->sh->long_stalls, 1, memory_order_relaxed);
  if (point == RS_AT_PLAN || !k->cfg->synchronized_stalls) {
    uint64_t frames = rng_range(&k->rng, k->latency, 2 * k->latency);
    if (point == RS_AT_READ && rng_unit(&k->rng) < RS_P_OVERWRITE)
      frames = (uint64_t)k->capacity + k->latency; /* the chunk's input gets overwritten */
    sleep_frames(k, frames);
    return 0;
  }
  /*
   * Synchronized stall holding a chunk: longer than L (the output is late),
   * but the daemon stays well short of overwriting the chunk's input, which
   * would race with our copy of it (README.md, "the input ring's race").
   */
  uint64_t target = c->pos + k->latency + c->frames + rng_range(&k->rng, k->period, k->latency / 2);
  return wait_position(k, &k->ctl.d->out_read.value, target);
}

static void log_skip(struct rs_worker *k, const struct shm_tl_chunk *c) {
  uint64_t n = atomic_load_explicit(&k->sh->n_skips, memory_order_relaxed);
  if (n >= RS_MAX_SKIPS) {
    atomic_store_explicit(&k->sh->skip_overflow, 1, memory_order_relaxed);
    return;
  }
  /*
   * The ring wrote silence on [max(old + L, out_read), new + L); we log from
   * old + L. The part below out_read was already played before the skip, as
   * not written (fill <= 0), so it never reaches the skip check.
   */
  k->sh->skips[n].from = c->pos - c->skipped + k->latency;
  k->sh->skips[n].to = c->pos + k->latency;
  atomic_store_explicit(&k->sh->n_skips, n + 1, memory_order_release);
}

static void check_input(struct rs_worker *k, const struct shm_tl_chunk *c, float *const *buf) {
  for (uint32_t ch = 0; ch < k->cfg->channels; ch++) {
    for (uint32_t i = 0; i < c->frames; i++) {
      float want = enc(ch, c->pos + i);
      if (buf[ch][i] == want)
        continue;
      uint64_t n = atomic_fetch_add_explicit(&k->sh->input_mismatch, 1, memory_order_relaxed);
      if (n < RS_MAX_RECORDED_ERRORS) {
        struct rs_error *e = &k->sh->input_errors[n];
        e->pos = c->pos + i;
        e->channel = ch;
        e->got = buf[ch][i];
        e->want = want;
      }
    }
  }
}

/* Polls in_write (acquire, like shm_tl_worker_plan) until it moves or a few cycles pass. */
static int spin_for_input(struct rs_worker *k) {
  uint64_t give_up = now_ns() + 4u * (uint64_t)k->period * 1000000000u / k->cfg->rate;
  while (atomic_load_explicit(&k->ctl.d->in_write.value, memory_order_acquire) == k->w.pos) {
    if (stopped(k))
      return -1;
    if (now_ns() > give_up)
      break;
    sched_yield();
  }
  return 0;
}

/*
 * Holds chunk c until the daemon has published the input of the cycle that
 * plays the chunk's first output frame: sleeps until one period before, then
 * spins on in_write so the commit follows its store as closely as possible.
 */
static int jit_wait(struct rs_worker *k, const struct shm_tl_chunk *c) {
  uint64_t due = c->pos + k->latency + 1;
  if (wait_position(k, &k->ctl.d->in_write.value, due > k->period ? due - k->period : 0) != 0)
    return -1;
  for (uint32_t i = 1; atomic_load_explicit(&k->ctl.d->in_write.value, memory_order_acquire) < due;
       i++) {
    if (i % 4096 == 0) {
      if (stopped(k))
        return -1;
      sched_yield();
    }
  }
  atomic_fetch_add_explicit(&k->sh->jit_commits, 1, memory_order_relaxed);
  return 0;
}

static uint32_t events_done(const struct rs_worker *k) {
  return atomic_load_explicit(&k->sh->events_done, memory_order_relaxed);
}

static void event_done(struct rs_worker *k, uint32_t ev) {
  atomic_fetch_or_explicit(&k->sh->events_done, ev, memory_order_release);
}

int rs_worker_run(struct shm_segment *seg, struct rs_shared *sh, const struct rs_config *cfg) {
  struct rs_worker k = {.sh = sh, .cfg = cfg, .rng = cfg->seed ^ UINT64_C(0x5eed)};
  float *buf[RS_MAX_CHANNELS] = {0};
  uint32_t max_chunk = 2 * cfg->period;
  int rc = shm_tl_worker_init(&k.w, seg);
  if (rc != 0) {
    worker_fatal(&k, "shm_tl_worker_init failed", rc);
    atomic_store_explicit(&sh->ready, 1, memory_order_release);
    return 1;
  }
  k.ctl = seg->ctl;
  k.latency = seg->layout.latency;
  k.capacity = seg->layout.capacity;
  k.period = seg->layout.max_period;
  k.total = (uint64_t)(cfg->seconds * cfg->rate);
  uint32_t want = seg->layout.wake_frames_default;
  for (uint32_t ch = 0; ch < cfg->channels; ch++) {
    buf[ch] = calloc(max_chunk, sizeof(float));
    if (buf[ch] == NULL) {
      worker_fatal(&k, "out of memory", 0);
      goto out;
    }
  }
  /* Release: pairs with the daemon's acquire; it starts the clock only now. */
  atomic_store_explicit(&sh->ready, 1, memory_order_release);

  int no_stall = 0;
  while (!stopped(&k)) {
    struct shm_tl_chunk c;
    uint32_t done = events_done(&k);

    if (!(done & RS_EVENT_UNDERRUN) && k.w.pos >= (uint64_t)(k.total * RS_AT_UNDERRUN)) {
      /* Certain underrun: hold still until the daemon has played past our out_write. */
      window_abandon(&k);
      if (wait_position(&k, &k.ctl.d->out_read.value, k.w.pos + k.latency + 2 * k.period) != 0)
        break;
      event_done(&k, RS_EVENT_UNDERRUN);
    } else if (!no_stall) {
      if (random_stall(&k, RS_AT_PLAN, NULL) != 0)
        break;
    }
    no_stall = 0;

    rc = shm_tl_worker_plan(&k.w, rng_range(&k.rng, 1, max_chunk), &c);
    if (rc < 0) {
      worker_fatal(&k, "shm_tl_worker_plan failed", rc);
      break;
    }
    if (c.skipped > 0)
      log_skip(&k, &c);
    if (rc == 0) {
      /* Caught up: out_write = in_write + L. */
      window_close(&k);
      if (rng_unit(&k.rng) < RS_P_JIT) {
        k.jit_until = k.w.pos + rng_range(&k.rng, 1, 4) * k.period;
      }
      if (rng_unit(&k.rng) < RS_P_SPIN) {
        atomic_fetch_add_explicit(&sh->spins, 1, memory_order_relaxed);
        if (spin_for_input(&k) != 0)
          break;
        no_stall = 1; /* plan at once, while the daemon may still be in its cycle */
        continue;
      }
      atomic_fetch_add_explicit(&sh->sleeps, 1, memory_order_relaxed);
      rc = shm_wake_wait(&k.ctl, k.w.pos, want, RS_WAKE_TIMEOUT_NS);
      if (rc != 0 && rc != -ETIMEDOUT && rc != -EINTR) {
        worker_fatal(&k, "shm_wake_wait failed", rc);
        break;
      }
      continue;
    }

    done = events_done(&k);
    if ((done & RS_EVENT_LATE) && !(done & RS_EVENT_OVERWRITE) &&
        c.pos >= (uint64_t)(k.total * RS_AT_OVERWRITE)) {
      /* Certain overwrite: the daemon has rewritten every frame of the chunk. */
      window_abandon(&k);
      memory_order order = cfg->synchronized_stalls ? memory_order_acquire : memory_order_relaxed;
      if (wait_position_order(&k, &k.ctl.d->in_write.value, c.pos + c.frames + k.capacity, order) !=
          0)
        break;
      rc = shm_tl_worker_read_input(&k.w, &c, buf);
      if (rc != -ESTALE) {
        atomic_fetch_add_explicit(&sh->estale_missed, 1, memory_order_relaxed);
        worker_fatal(&k, "read_input of a chunk overwritten before the copy did not return -ESTALE",
                     rc);
      }
      event_done(&k, RS_EVENT_OVERWRITE);
    } else {
      if (random_stall(&k, RS_AT_READ, &c) != 0)
        break;
      rc = shm_tl_worker_read_input(&k.w, &c, buf);
    }
    if (rc == -ESTALE) {
      /*
       * Dropped without releasing in_read: plan again at once (it skips), so
       * the copy just made is released before the daemon can come round.
       */
      atomic_fetch_add_explicit(&sh->estale, 1, memory_order_relaxed);
      no_stall = 1;
      continue;
    }
    if (rc != 0) {
      worker_fatal(&k, "shm_tl_worker_read_input failed", rc);
      break;
    }
    check_input(&k, &c, buf);

    /* The identity plugin: output position pos + L gets input position pos. */
    shm_tl_worker_write_output(&k.w, &c, (const float *const *)buf);

    done = events_done(&k);
    if ((done & RS_EVENT_UNDERRUN) && !(done & RS_EVENT_LATE) &&
        c.pos >= (uint64_t)(k.total * RS_AT_LATE)) {
      /* Certain late commit: the daemon has already played the chunk's output places. */
      window_abandon(&k);
      if (wait_position(&k, &k.ctl.d->out_read.value, c.pos + k.latency + c.frames + k.period) != 0)
        break;
      event_done(&k, RS_EVENT_LATE);
    } else if (c.pos < k.jit_until) {
      if (jit_wait(&k, &c) != 0)
        break;
    } else if (random_stall(&k, RS_AT_COMMIT, &c) != 0) {
      break;
    }
    shm_tl_worker_commit(&k.w, &c);
    atomic_fetch_add_explicit(&sh->chunks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->frames_processed, c.frames, memory_order_relaxed);
  }

out:
  for (uint32_t ch = 0; ch < RS_MAX_CHANNELS; ch++)
    free(buf[ch]);
  return atomic_load_explicit(&sh->fatal, memory_order_relaxed) != 0 ||
                 atomic_load_explicit(&sh->input_mismatch, memory_order_relaxed) != 0
             ? 1
             : 0;
}

/* ---- daemon role ---------------------------------------------------------- */

struct rs_range {
  uint64_t from;
  uint64_t to;
  uint32_t channel;
};

struct rs_daemon {
  struct rs_config cfg;
  uint32_t latency;
  uint32_t capacity;
  uint64_t total;

  uint64_t frames;
  uint64_t cycles;
  uint64_t samples;
  uint64_t exact;
  uint64_t initial_silence;
  uint64_t skip_silence; /* valid zeros, to be matched against the skip log */
  uint64_t underrun_samples;
  uint64_t underrun_cycles;
  uint64_t underrun_frames;
  uint64_t overruns;
  uint64_t max_backlog;
  uint64_t wakes;
  uint64_t late_cycles; /* cycles started more than a period late (cadence slips) */
  double seconds;

  uint64_t mismatches;
  struct rs_error errors[RS_MAX_RECORDED_ERRORS];
  const char *error_kind[RS_MAX_RECORDED_ERRORS];

  /* Valid zeros at p >= L, per channel, merged into ranges. */
  struct rs_range *zeros;
  size_t n_zeros;
  long last_zero[RS_MAX_CHANNELS];
  int zeros_overflow;

  /* Output positions played as not written, merged into ranges. */
  struct rs_range *underruns;
  size_t n_underruns;
  uint64_t underruns_recorded_until; /* UINT64_MAX unless the table filled up */

  int failed;
};

struct rs_daemon *rs_daemon_new(const struct rs_config *cfg) {
  struct rs_daemon *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NULL;
  d->cfg = *cfg;
  d->zeros = calloc(RS_MAX_PENDING, sizeof(*d->zeros));
  d->underruns = calloc(RS_MAX_UNDERRUN_RANGES, sizeof(*d->underruns));
  if (d->zeros == NULL || d->underruns == NULL) {
    rs_daemon_free(d);
    return NULL;
  }
  for (uint32_t ch = 0; ch < RS_MAX_CHANNELS; ch++)
    d->last_zero[ch] = -1;
  d->underruns_recorded_until = UINT64_MAX;
  return d;
}

void rs_daemon_free(struct rs_daemon *d) {
  if (d == NULL)
    return;
  free(d->zeros);
  free(d->underruns);
  free(d);
}

static void mismatch(struct rs_daemon *d, const char *kind, uint64_t pos, uint32_t ch, float got,
                     float want) {
  if (d->mismatches < RS_MAX_RECORDED_ERRORS) {
    struct rs_error *e = &d->errors[d->mismatches];
    e->pos = pos;
    e->channel = ch;
    e->got = got;
    e->want = want;
    d->error_kind[d->mismatches] = kind;
  }
  d->mismatches++;
}

static void note_zero(struct rs_daemon *d, uint32_t ch, uint64_t pos) {
  long last = d->last_zero[ch];
  if (last >= 0 && d->zeros[last].to == pos) {
    d->zeros[last].to = pos + 1;
    return;
  }
  if (d->n_zeros >= RS_MAX_PENDING) {
    d->zeros_overflow = 1;
    return;
  }
  d->zeros[d->n_zeros] = (struct rs_range){.from = pos, .to = pos + 1, .channel = ch};
  d->last_zero[ch] = (long)d->n_zeros++;
}

static void note_underrun(struct rs_daemon *d, uint64_t from, uint64_t to) {
  if (d->n_underruns > 0 && d->underruns[d->n_underruns - 1].to == from) {
    d->underruns[d->n_underruns - 1].to = to;
    return;
  }
  if (d->n_underruns >= RS_MAX_UNDERRUN_RANGES) {
    if (d->underruns_recorded_until == UINT64_MAX)
      d->underruns_recorded_until = from;
    return;
  }
  d->underruns[d->n_underruns++] = (struct rs_range){.from = from, .to = to};
}

/* Checks the n samples per channel the daemon just played from position t. */
static void check_output(struct rs_daemon *d, uint64_t t, uint32_t n, uint32_t valid,
                         float *const *out) {
  for (uint32_t ch = 0; ch < d->cfg.channels; ch++) {
    for (uint32_t i = 0; i < n; i++) {
      uint64_t p = t + i;
      float x = out[ch][i];
      d->samples++;
      if (i >= valid) {
        /* Not written yet: must have been played as silence. */
        if (x != 0.0f)
          mismatch(d, "non-zero sample in an underrun", p, ch, x, 0.0f);
        else
          d->underrun_samples++;
        continue;
      }
      if (p < d->latency) {
        if (x != 0.0f)
          mismatch(d, "non-zero sample in the initial silence [0, L)", p, ch, x, 0.0f);
        else
          d->initial_silence++;
        continue;
      }
      float want = enc(ch, p - d->latency);
      if (x == want)
        d->exact++;
      else if (x == 0.0f)
        note_zero(d, ch, p);
      else
        mismatch(d, "wrong sample", p, ch, x, want);
    }
  }
}

int rs_daemon_run(struct rs_daemon *d, struct shm_segment *seg, struct rs_shared *sh) {
  const struct rs_config *cfg = &d->cfg;
  struct shm_tl_daemon tl;
  float *in[RS_MAX_CHANNELS] = {0};
  float *out[RS_MAX_CHANNELS] = {0};
  uint64_t rng = cfg->seed ^ UINT64_C(0xdae0);

  d->latency = seg->layout.latency;
  d->capacity = seg->layout.capacity;
  d->total = (uint64_t)(cfg->seconds * cfg->rate);
  for (uint32_t ch = 0; ch < cfg->channels; ch++) {
    in[ch] = calloc(cfg->period, sizeof(float));
    out[ch] = calloc(cfg->period, sizeof(float));
    if (in[ch] == NULL || out[ch] == NULL) {
      fprintf(stderr, "FAIL: out of memory\n");
      d->failed = 1;
      goto out;
    }
  }

  /* Acquire: pairs with the worker's release; its attach is complete. */
  uint64_t give_up = now_ns() + 10000000000u;
  while (atomic_load_explicit(&sh->ready, memory_order_acquire) == 0) {
    if (now_ns() > give_up) {
      fprintf(stderr, "FAIL: the worker did not attach within 10 s\n");
      d->failed = 1;
      goto out;
    }
    sleep_ns(1000000);
  }

  shm_tl_daemon_init(&tl, seg);
  uint64_t start = now_ns();
  uint64_t clock_base = start; /* time of position clock_pos */
  uint64_t clock_pos = 0;
  uint64_t t = 0;
  for (;;) {
    uint32_t done = atomic_load_explicit(&sh->events_done, memory_order_acquire);
    if (t >= d->total && done == RS_EVENT_ALL)
      break;
    if (atomic_load_explicit(&sh->fatal, memory_order_relaxed) != 0)
      break; /* rs_verify reports the worker's message */
    if (t >= 6 * d->total) {
      fprintf(stderr,
              "FAIL: %s: the worker did not complete its deterministic stalls "
              "(done 0x%x of 0x%x) within %llu frames\n",
              cfg->name, done, RS_EVENT_ALL, (unsigned long long)t);
      d->failed = 1;
      break;
    }

    uint32_t n = cfg->vary_n ? rng_range(&rng, 1, cfg->period) : cfg->period;
    for (uint32_t ch = 0; ch < cfg->channels; ch++)
      for (uint32_t i = 0; i < n; i++)
        in[ch][i] = enc(ch, t + i);

    /* Step 1: input [t, t+n), in_write = t+n. */
    int64_t backlog = shm_tl_daemon_write_input(&tl, (const float *const *)in, n);
    if (backlog < 0) {
      fprintf(stderr, "FAIL: %s: shm_tl_daemon_write_input returned %lld at %llu\n", cfg->name,
              (long long)backlog, (unsigned long long)t);
      d->failed = 1;
      break;
    }
    if ((uint64_t)backlog > d->max_backlog)
      d->max_backlog = (uint64_t)backlog;
    if ((uint64_t)backlog > d->capacity - cfg->period)
      d->overruns++;
    /* Step 2: wake the worker if it sleeps and enough is pending. */
    d->wakes += (uint64_t)shm_wake_worker_if_due(&seg->ctl, t + n, d->capacity);
    /* Steps 3 and 4: output [t, t+n), out_read = t+n. */
    int valid = shm_tl_daemon_read_output(&tl, out, n);
    if (valid < 0) {
      fprintf(stderr, "FAIL: %s: shm_tl_daemon_read_output returned %d at %llu\n", cfg->name, valid,
              (unsigned long long)t);
      d->failed = 1;
      break;
    }
    if ((uint32_t)valid < n) {
      d->underrun_cycles++;
      d->underrun_frames += n - (uint32_t)valid;
      note_underrun(d, t + (uint32_t)valid, t + n);
    }
    check_output(d, t, n, (uint32_t)valid, out);
    t += n;
    d->cycles++;

    /* Fixed cadence: position t is due at clock_base + (t - clock_pos) / rate. */
    uint64_t due = clock_base + (t - clock_pos) * 1000000000u / cfg->rate;
    uint64_t now = now_ns();
    if (now > due + (uint64_t)cfg->period * 1000000000u / cfg->rate)
      d->late_cycles++;
    if (now > due + 100000000u) {
      /* More than 100 ms behind (the machine is busy): restart the clock, no burst. */
      clock_base = now;
      clock_pos = t;
    } else if (due > now) {
      struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                            .tv_nsec = (long)(due % 1000000000u)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
      }
    }
  }
  d->frames = t;
  d->seconds = (double)(now_ns() - start) / 1e9;

out:
  /* Release: everything above is done before the worker sees the stop. */
  atomic_store_explicit(&sh->stop, 1, memory_order_release);
  for (uint32_t ch = 0; ch < RS_MAX_CHANNELS; ch++) {
    free(in[ch]);
    free(out[ch]);
  }
  return d->failed;
}

/* ---- verification ----------------------------------------------------------- */

/* Index of the merged skip range containing pos, or -1. */
static long find_range(const struct rs_skip *r, size_t n, uint64_t pos) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r[mid].to <= pos)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && r[lo].from <= pos ? (long)lo : -1;
}

static int window_had_underrun(const struct rs_daemon *d, const struct rs_window *w) {
  for (size_t i = 0; i < d->n_underruns; i++)
    if (d->underruns[i].from < w->to && w->from < d->underruns[i].to)
      return 1;
  return 0;
}

int rs_verify(struct rs_daemon *d, const struct shm_segment *seg, struct rs_shared *sh,
              const char *variant) {
  const struct rs_config *cfg = &d->cfg;
  int failed = d->failed;
  char got[96], want[96];

  if (atomic_load_explicit(&sh->fatal, memory_order_acquire) != 0) {
    fprintf(stderr, "FAIL: %s/%s: worker: %s\n", variant, cfg->name, sh->message);
    failed = 1;
  }

  uint64_t in_bad = atomic_load_explicit(&sh->input_mismatch, memory_order_relaxed);
  if (in_bad > 0) {
    fprintf(stderr,
            "FAIL: %s/%s: the worker read %llu wrong input samples although read_input "
            "accepted them:\n",
            variant, cfg->name, (unsigned long long)in_bad);
    for (uint64_t i = 0; i < in_bad && i < RS_MAX_RECORDED_ERRORS; i++) {
      const struct rs_error *e = &sh->input_errors[i];
      describe(e->got, got, sizeof(got));
      describe(e->want, want, sizeof(want));
      fprintf(stderr, "  input position %llu channel %u: got %s, want %s\n",
              (unsigned long long)e->pos, e->channel, got, want);
    }
    failed = 1;
  }

  if (d->mismatches > 0) {
    fprintf(stderr, "FAIL: %s/%s: %llu output samples are wrong (L = %u); the first ones:\n",
            variant, cfg->name, (unsigned long long)d->mismatches, d->latency);
    for (uint64_t i = 0; i < d->mismatches && i < RS_MAX_RECORDED_ERRORS; i++) {
      const struct rs_error *e = &d->errors[i];
      describe(e->got, got, sizeof(got));
      describe(e->want, want, sizeof(want));
      long lag = lag_of(e->got, e->want);
      fprintf(stderr, "  %s: output position %llu channel %u: got %s, want %s", d->error_kind[i],
              (unsigned long long)e->pos, e->channel, got, want);
      if (lag != 0)
        fprintf(stderr, " (%ld frames %s)", lag < 0 ? -lag : lag, lag > 0 ? "old" : "early");
      fputc('\n', stderr);
    }
    failed = 1;
  }

  /* Merge the skip log (it is in position order) into disjoint ranges. */
  uint64_t n_skips = atomic_load_explicit(&sh->n_skips, memory_order_acquire);
  struct rs_skip *merged = calloc(n_skips + 1, sizeof(*merged));
  size_t n_merged = 0;
  uint64_t skipped_frames = 0;
  if (merged == NULL) {
    fprintf(stderr, "FAIL: out of memory\n");
    return 1;
  }
  for (uint64_t i = 0; i < n_skips; i++) {
    const struct rs_skip *s = &sh->skips[i];
    skipped_frames += s->to - s->from;
    if (s->to <= s->from || (n_merged > 0 && s->from < merged[n_merged - 1].to)) {
      fprintf(stderr, "FAIL: %s/%s: skip %llu [%llu, %llu) is empty or goes backwards\n", variant,
              cfg->name, (unsigned long long)i, (unsigned long long)s->from,
              (unsigned long long)s->to);
      failed = 1;
      continue;
    }
    if (n_merged > 0 && s->from == merged[n_merged - 1].to)
      merged[n_merged - 1].to = s->to;
    else
      merged[n_merged++] = *s;
  }
  if (atomic_load_explicit(&sh->skip_overflow, memory_order_relaxed)) {
    fprintf(stderr, "FAIL: %s/%s: more than %u skips; the log overflowed\n", variant, cfg->name,
            RS_MAX_SKIPS);
    failed = 1;
  }
  if (d->zeros_overflow) {
    fprintf(stderr, "FAIL: %s/%s: more than %u runs of silence to account for\n", variant,
            cfg->name, RS_MAX_PENDING);
    failed = 1;
  }

  /* Every valid zero at p >= L must lie in silence a skip wrote. */
  uint64_t unexplained = 0;
  for (size_t i = 0; i < d->n_zeros; i++) {
    const struct rs_range *z = &d->zeros[i];
    long k = find_range(merged, n_merged, z->from);
    if (k >= 0 && z->to <= merged[k].to) {
      d->skip_silence += z->to - z->from;
      continue;
    }
    if (unexplained < RS_MAX_RECORDED_ERRORS)
      fprintf(stderr,
              "FAIL: %s/%s: output positions [%llu, %llu) channel %u played as silence although "
              "the worker published them and logged no skip over them (input [%llu, %llu) "
              "was due)\n",
              variant, cfg->name, (unsigned long long)z->from, (unsigned long long)z->to,
              z->channel, (unsigned long long)(z->from - d->latency),
              (unsigned long long)(z->to - d->latency));
    unexplained++;
    failed = 1;
  }
  free(merged);

  /* The segment's own counters must agree with what the worker observed. */
  const struct rw_worker_counters *wc = &seg->ctl.w->counters;
  uint64_t seg_skipped = atomic_load_explicit(&wc->skipped_frames, memory_order_relaxed);
  uint64_t seg_disc = atomic_load_explicit(&wc->discontinuities, memory_order_relaxed);
  uint64_t seg_over = atomic_load_explicit(&wc->overwritten, memory_order_relaxed);
  uint64_t seg_estale = atomic_load_explicit(&sh->estale, memory_order_relaxed);
  if (!atomic_load_explicit(&sh->skip_overflow, memory_order_relaxed) &&
      (seg_skipped != skipped_frames || seg_disc != n_skips || seg_over != seg_estale)) {
    fprintf(stderr,
            "FAIL: %s/%s: segment counters (skipped %llu, discontinuities %llu, "
            "overwritten %llu) disagree with the worker's log (%llu, %llu, %llu)\n",
            variant, cfg->name, (unsigned long long)seg_skipped, (unsigned long long)seg_disc,
            (unsigned long long)seg_over, (unsigned long long)skipped_frames,
            (unsigned long long)n_skips, (unsigned long long)seg_estale);
    failed = 1;
  }

  /* Coverage: the run must have exercised what it is meant to stress. */
  uint64_t estale = atomic_load_explicit(&sh->estale, memory_order_relaxed);
  uint32_t done = atomic_load_explicit(&sh->events_done, memory_order_relaxed);
  if (done != RS_EVENT_ALL && !failed) {
    fprintf(stderr, "FAIL: %s/%s: deterministic stalls done 0x%x, want 0x%x\n", variant, cfg->name,
            done, RS_EVENT_ALL);
    failed = 1;
  }
  if (d->underrun_cycles == 0 || n_skips == 0 || estale == 0) {
    fprintf(stderr,
            "FAIL: %s/%s: the run did not exercise underruns (%llu), skips (%llu) and "
            "input overwrites (%llu)\n",
            variant, cfg->name, (unsigned long long)d->underrun_cycles, (unsigned long long)n_skips,
            (unsigned long long)estale);
    failed = 1;
  }

  uint64_t n_windows = atomic_load_explicit(&sh->n_windows, memory_order_acquire);
  uint64_t clean = 0, evaluated = 0;
  for (uint64_t i = 0; i < n_windows; i++) {
    const struct rs_window *w = &sh->windows[i];
    if (w->to > d->frames || w->to > d->underruns_recorded_until)
      continue;
    evaluated++;
    if (!window_had_underrun(d, w))
      clean++;
  }
  if (clean == 0) {
    fprintf(stderr,
            "FAIL: %s/%s: none of %llu short stalls (< 0.3 L) got through without an "
            "underrun\n",
            variant, cfg->name, (unsigned long long)evaluated);
    failed = 1;
  }

  double exact_share = d->samples ? (double)d->exact / (double)d->samples : 0.0;
  if (exact_share < RS_MIN_EXACT_SHARE) {
    fprintf(stderr,
            "FAIL: %s/%s: only %.1f%% of the samples were the on-time answer (want >= "
            "%.0f%%)\n",
            variant, cfg->name, 100.0 * exact_share, 100.0 * RS_MIN_EXACT_SHARE);
    failed = 1;
  }
  uint64_t accounted = d->exact + d->initial_silence + d->skip_silence + d->underrun_samples;
  if (!failed && accounted != d->samples) {
    fprintf(stderr, "FAIL: %s/%s: %llu samples checked but %llu accounted for\n", variant,
            cfg->name, (unsigned long long)d->samples, (unsigned long long)accounted);
    failed = 1;
  }

  printf("%s %s: %s L=%u period=%u%s cap=%u rate=%u: %.2f s, %llu frames, %llu samples checked, "
         "exact %.2f%%, initial silence %llu, skip silence %llu, underrun samples %llu; "
         "underruns %llu (%llu frames), skips %llu (%llu frames), overwritten chunks %llu, "
         "overrun cycles %llu, max backlog %llu; worker chunks %llu, sleeps %llu, wakes %llu, "
         "spins %llu, just-in-time commits %llu; "
         "stalls short %llu (clean %llu of %llu evaluated), long %llu; late cycles %llu; "
         "seed 0x%llx\n",
         failed ? "FAIL" : "ok", variant, cfg->name, d->latency, cfg->period,
         cfg->vary_n ? " (n varies)" : "", d->capacity, cfg->rate, d->seconds,
         (unsigned long long)d->frames, (unsigned long long)d->samples, 100.0 * exact_share,
         (unsigned long long)d->initial_silence, (unsigned long long)d->skip_silence,
         (unsigned long long)d->underrun_samples, (unsigned long long)d->underrun_cycles,
         (unsigned long long)d->underrun_frames, (unsigned long long)n_skips,
         (unsigned long long)skipped_frames, (unsigned long long)estale,
         (unsigned long long)d->overruns, (unsigned long long)d->max_backlog,
         (unsigned long long)atomic_load_explicit(&sh->chunks, memory_order_relaxed),
         (unsigned long long)atomic_load_explicit(&sh->sleeps, memory_order_relaxed),
         (unsigned long long)d->wakes,
         (unsigned long long)atomic_load_explicit(&sh->spins, memory_order_relaxed),
         (unsigned long long)atomic_load_explicit(&sh->jit_commits, memory_order_relaxed),
         (unsigned long long)atomic_load_explicit(&sh->short_stalls, memory_order_relaxed),
         (unsigned long long)clean, (unsigned long long)evaluated,
         (unsigned long long)atomic_load_explicit(&sh->long_stalls, memory_order_relaxed),
         (unsigned long long)d->late_cycles, (unsigned long long)cfg->seed);
  fflush(stdout);
  return failed;
}
