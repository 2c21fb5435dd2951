/*
 * State ping-pong stress (shm/handover.h). The control thread (main) builds
 * immutable heap objects, offers them, frees what an offer displaced and what
 * the RT thread handed back; the RT thread adopts at the start of every
 * "cycle" and reads the whole current object. Run under ASan (use after free,
 * double free, leaks) and TSan (unordered accesses to the objects).
 *
 * Every object's fate is booked by serial: the RT thread marks what it
 * adopted, the control thread what it freed and why. At the end each object
 * must have been freed exactly once, and exactly the adopted ones must have
 * come back (or be the RT thread's last current object).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handover.h"

#define TARGET_ADOPTIONS 100000u
#define MIN_FORCED_DISPLACEMENTS 16u
#define MAX_SERIAL (1u << 23)
#define DEADLINE_S 90
#define POISON 0xa5

struct state {
  uint64_t serial;
  uint64_t check; /* serial ^ CHECK_KEY */
  uint32_t len;
  uint32_t reserved;
  uint64_t payload[]; /* len copies of serial */
};

#define CHECK_KEY UINT64_C(0x5ca1ab1e0ddba11)

enum fate { FATE_NONE = 0, FATE_DISPLACED, FATE_COLLECTED, FATE_FINAL, FATE_LEFT_PENDING };

struct shared {
  struct shm_handover h;
  _Atomic uint32_t stop;
  _Atomic uint64_t adoptions; /* RT: objects adopted (each hands the previous one back) */
  _Atomic uint64_t cycles;
  _Atomic uint64_t errors;
  /* Written by the RT thread only; read by the control thread after a hand-back or join. */
  uint8_t *adopted;
  struct state *rt_current; /* the RT thread's object; initial one, then its last one */
  char rt_error[160];
};

static uint64_t rng_state;

static uint64_t rng_next(void) {
  uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct state *state_new(uint64_t serial) {
  uint32_t len = 1 + (uint32_t)(rng_next() % 256);
  struct state *s = malloc(sizeof(*s) + (size_t)len * sizeof(uint64_t));
  if (s == NULL) {
    fprintf(stderr, "FAIL: out of memory\n");
    exit(1);
  }
  s->serial = serial;
  s->check = serial ^ CHECK_KEY;
  s->len = len;
  s->reserved = 0;
  for (uint32_t i = 0; i < len; i++)
    s->payload[i] = serial;
  return s;
}

/* 0 when the whole object is intact. */
static int state_bad(const struct state *s) {
  if (s->check != (s->serial ^ CHECK_KEY) || s->len == 0 || s->len > 256)
    return 1;
  for (uint32_t i = 0; i < s->len; i++)
    if (s->payload[i] != s->serial)
      return 1;
  return 0;
}

/* Poisons before freeing, so a late reader in a non-ASan build sees garbage. */
static void state_free(struct state *s) {
  memset(s, POISON, sizeof(*s) + (size_t)s->len * sizeof(uint64_t));
  free(s);
}

static void *rt_thread(void *arg) {
  struct shared *sh = arg;
  struct state *cur = sh->rt_current;
  uint64_t last = cur->serial;

  while (!atomic_load_explicit(&sh->stop, memory_order_acquire)) {
    /* The start of a cycle: adopt whatever the control thread offered. */
    struct state *next = shm_handover_adopt(&sh->h, cur);
    int adopted_now = next != cur;
    if (adopted_now) {
      if (next == NULL || next->serial <= last || next->serial > MAX_SERIAL) {
        if (atomic_fetch_add_explicit(&sh->errors, 1, memory_order_relaxed) == 0)
          snprintf(sh->rt_error, sizeof(sh->rt_error), "adopted %p (serial %llu) after serial %llu",
                   (void *)next, next ? (unsigned long long)next->serial : 0ull,
                   (unsigned long long)last);
        break;
      }
      last = next->serial;
      sh->adopted[last] = 1;
      cur = next;
      atomic_fetch_add_explicit(&sh->adoptions, 1, memory_order_release);
    }
    /* The cycle's work: read the whole object. */
    if (state_bad(cur)) {
      if (atomic_fetch_add_explicit(&sh->errors, 1, memory_order_relaxed) == 0)
        snprintf(sh->rt_error, sizeof(sh->rt_error), "object serial %llu is corrupt",
                 (unsigned long long)cur->serial);
      break;
    }
    atomic_fetch_add_explicit(&sh->cycles, 1, memory_order_relaxed);
    /*
     * Nothing new this cycle: let the control thread run. Without this the
     * two threads crawl when they share one core with other work.
     */
    if (!adopted_now)
      sched_yield();
  }
  sh->rt_current = cur;
  return NULL;
}

struct control {
  struct shared *sh;
  uint8_t *fate;
  uint64_t serial; /* last created */
  uint64_t last_collected;
  uint64_t collected;
  uint64_t displaced;
  uint64_t forced;
  int failed;
};

static void fail(struct control *c, const char *what, uint64_t serial) {
  if (c->failed < 8)
    fprintf(stderr, "FAIL: %s (serial %llu)\n", what, (unsigned long long)serial);
  c->failed++;
}

static void book(struct control *c, struct state *s, enum fate f) {
  if (state_bad(s))
    fail(c, "an object came back corrupt", s->serial);
  if (s->serial == 0 || s->serial > c->serial) {
    fail(c, "an object with an impossible serial came back", s->serial);
    return; /* not ours: do not free */
  }
  if (c->fate[s->serial] != FATE_NONE)
    fail(c, "an object came back twice", s->serial);
  c->fate[s->serial] = (uint8_t)f;
  state_free(s);
}

/* Returns how many objects came back. */
static uint64_t drain(struct control *c) {
  uint64_t before = c->collected;
  struct state *s;
  while ((s = shm_handover_collect(&c->sh->h)) != NULL) {
    if (s->serial == 0 || s->serial > c->serial) {
      fail(c, "collected an object with an impossible serial", s->serial);
      continue;
    }
    /* The hand-back happens after the adoption: its mark is visible (acquire in collect). */
    if (!c->sh->adopted[s->serial])
      fail(c, "collected an object the RT thread never adopted", s->serial);
    if (s->serial <= c->last_collected)
      fail(c, "objects came back out of order", s->serial);
    c->last_collected = s->serial;
    c->collected++;
    book(c, s, FATE_COLLECTED);
  }
  return c->collected - before;
}

static void offer_new(struct control *c) {
  if (c->serial >= MAX_SERIAL)
    return;
  struct state *old = shm_handover_offer(&c->sh->h, state_new(++c->serial));
  if (old != NULL) {
    c->displaced++;
    book(c, old, FATE_DISPLACED);
  }
}

/*
 * While the hand-back place is full the RT thread adopts nothing, so of two
 * offers in a row the first is certainly displaced, untouched.
 */
static void forced_displacement(struct control *c, double deadline) {
  if (!shm_handover_pending(&c->sh->h))
    offer_new(c);
  /* Acquire: pairs with the RT thread's count; the hand-back was stored before it. */
  while (atomic_load_explicit(&c->sh->adoptions, memory_order_acquire) <= c->collected) {
    if (now_s() > deadline || atomic_load_explicit(&c->sh->errors, memory_order_relaxed))
      return;
    sched_yield();
  }
  if (c->serial + 2 > MAX_SERIAL)
    return;
  struct state *a = state_new(++c->serial);
  uint64_t a_serial = a->serial;
  struct state *old = shm_handover_offer(&c->sh->h, a);
  if (old != NULL) {
    c->displaced++;
    book(c, old, FATE_DISPLACED);
  }
  old = shm_handover_offer(&c->sh->h, state_new(++c->serial));
  if (old == NULL || old->serial != a_serial) {
    fail(c, "an offer made while the hand-back place was full did not displace the previous one",
         a_serial);
    if (old != NULL) {
      c->displaced++;
      book(c, old, FATE_DISPLACED);
    }
    return;
  }
  c->displaced++;
  c->forced++;
  book(c, old, FATE_DISPLACED);
}

int main(void) {
  struct shared sh;
  struct control c = {.sh = &sh};
  pthread_t thread;
  const char *env = getenv("RUNWAY_STRESS_SEED");
  rng_state = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
  uint64_t seed = rng_state;

  memset(&sh, 0, sizeof(sh));
  shm_handover_init(&sh.h);
  sh.adopted = calloc(MAX_SERIAL + 1, 1);
  c.fate = calloc(MAX_SERIAL + 1, 1);
  if (sh.adopted == NULL || c.fate == NULL) {
    fprintf(stderr, "FAIL: out of memory\n");
    return 1;
  }
  /* The RT thread starts with object 1, so every adoption hands one back. */
  sh.rt_current = state_new(++c.serial);
  sh.adopted[1] = 1;
  int rc = pthread_create(&thread, NULL, rt_thread, &sh);
  if (rc != 0) {
    fprintf(stderr, "FAIL: pthread_create: %s\n", strerror(rc));
    return 1;
  }

  double start = now_s();
  double deadline = start + DEADLINE_S;
  for (uint64_t iter = 0;; iter++) {
    uint64_t adoptions = atomic_load_explicit(&sh.adoptions, memory_order_relaxed);
    if (adoptions >= TARGET_ADOPTIONS && c.forced >= MIN_FORCED_DISPLACEMENTS)
      break;
    if (atomic_load_explicit(&sh.errors, memory_order_relaxed) != 0 || c.failed)
      break;
    if (now_s() > deadline || c.serial >= MAX_SERIAL) {
      fprintf(stderr,
              "FAIL: only %llu adoptions and %llu forced displacements after %.0f s "
              "and %llu objects\n",
              (unsigned long long)adoptions, (unsigned long long)c.forced, now_s() - start,
              (unsigned long long)c.serial);
      c.failed++;
      break;
    }
    uint64_t back = drain(&c);
    /* Mostly one offer at a time; now and then one on top of a pending one. */
    if (!shm_handover_pending(&sh.h) || rng_next() % 32 == 0)
      offer_new(&c);
    else if (back == 0)
      sched_yield(); /* the RT thread has not taken the last offer yet */
    if (iter % 512 == 511)
      forced_displacement(&c, deadline);
  }

  atomic_store_explicit(&sh.stop, 1, memory_order_release);
  pthread_join(thread, NULL);
  double elapsed = now_s() - start;

  if (atomic_load_explicit(&sh.errors, memory_order_relaxed) != 0) {
    fprintf(stderr, "FAIL: RT thread: %s\n", sh.rt_error);
    c.failed++;
  }

  /* Teardown: the RT thread's last object, the hand-back place, the offer place. */
  uint64_t adoptions = atomic_load_explicit(&sh.adoptions, memory_order_relaxed);
  drain(&c);
  struct state *left = shm_handover_offer(&sh.h, NULL);
  if (left != NULL) {
    if (left->serial >= 1 && left->serial <= c.serial && sh.adopted[left->serial])
      fail(&c, "the offer place still holds an adopted object", left->serial);
    book(&c, left, FATE_LEFT_PENDING);
  }
  if (sh.rt_current != NULL) {
    if (sh.rt_current->serial < 1 || sh.rt_current->serial > c.serial ||
        !sh.adopted[sh.rt_current->serial])
      fail(&c, "the RT thread's current object was never adopted", sh.rt_current->serial);
    book(&c, sh.rt_current, FATE_FINAL);
  }
  if (shm_handover_collect(&sh.h) != NULL || shm_handover_pending(&sh.h))
    fail(&c, "the hand-over places are not empty after teardown", 0);

  /* Every object freed exactly once; exactly the adopted ones came back. */
  uint64_t unfreed = 0, wrong = 0;
  for (uint64_t s = 1; s <= c.serial; s++) {
    uint8_t f = c.fate[s];
    if (f == FATE_NONE)
      unfreed++;
    else if ((f == FATE_COLLECTED || f == FATE_FINAL) != (sh.adopted[s] != 0))
      wrong++;
  }
  if (unfreed || wrong) {
    fprintf(stderr, "FAIL: %llu objects never came back, %llu came back the wrong way\n",
            (unsigned long long)unfreed, (unsigned long long)wrong);
    c.failed++;
  }
  if (adoptions < TARGET_ADOPTIONS && !c.failed) {
    fprintf(stderr, "FAIL: only %llu adoptions\n", (unsigned long long)adoptions);
    c.failed++;
  }

  printf("%s handover: %llu swaps (adoptions) in %.2f s, %llu objects created, %llu collected, "
         "%llu displaced (%llu forced), %llu RT cycles, seed 0x%llx\n",
         c.failed ? "FAIL" : "ok", (unsigned long long)adoptions, elapsed,
         (unsigned long long)c.serial, (unsigned long long)c.collected,
         (unsigned long long)c.displaced, (unsigned long long)c.forced,
         (unsigned long long)atomic_load_explicit(&sh.cycles, memory_order_relaxed),
         (unsigned long long)seed);
  free(sh.adopted);
  free(c.fate);
  return c.failed ? 1 : 0;
}
