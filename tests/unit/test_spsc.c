/*
 * shm/spsc and shm/queue: order, empty and full, 64-bit wrap-around of the
 * positions, and the checks on positions published by an untrusted peer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "queue.h"
#include "spsc.h"

#define CAP 8u

/* 12 bytes: records need not be a power of two in size. */
struct rec {
  uint64_t seq;
  uint32_t check;
};

struct ring {
  _Atomic uint64_t write_pos;
  _Atomic uint64_t read_pos;
  struct shm_spsc_producer tx;
  struct shm_spsc_consumer rx;
  unsigned char storage[CAP * 12];
};

static const uint64_t starts[] = {
    0, UINT32_MAX - 3,        /* crosses 2^32 */
    UINT64_MAX - 5,           /* wraps the 64-bit position to 0 */
    UINT64_MAX - CAP * 3 / 2, /* wraps in the middle of a full ring */
};
#define N_STARTS (sizeof(starts) / sizeof(starts[0]))

static void ring_init(struct ring *r, uint64_t start) {
  memset(r, 0, sizeof(*r));
  atomic_store(&r->write_pos, start);
  atomic_store(&r->read_pos, start);
  shm_spsc_producer_init(&r->tx, &r->write_pos, &r->read_pos, r->storage, 12, CAP, start);
  shm_spsc_consumer_init(&r->rx, &r->write_pos, &r->read_pos, r->storage, 12, CAP, start);
}

static void make_rec(unsigned char out[12], uint64_t seq) {
  struct rec r = {.seq = seq, .check = (uint32_t)(seq * 2654435761u) ^ 0x5a5a5a5au};
  memcpy(out, &r, 12);
}

static uint64_t rec_seq(const unsigned char in[12]) {
  struct rec r;
  memcpy(&r, in, 12);
  assert_int_equal(r.check, (uint32_t)(r.seq * 2654435761u) ^ 0x5a5a5a5au);
  return r.seq;
}

static void test_empty(void **state) {
  (void)state;
  for (size_t s = 0; s < N_STARTS; s++) {
    struct ring r;
    unsigned char buf[12] = {0xee};
    ring_init(&r, starts[s]);
    assert_int_equal(shm_spsc_avail(&r.rx), 0);
    assert_int_equal(shm_spsc_space(&r.tx), CAP);
    assert_int_equal(shm_spsc_pop(&r.rx, buf), 0);
    assert_int_equal(shm_spsc_peek(&r.rx, buf), 0);
    assert_int_equal(shm_spsc_pop(&r.rx, NULL), 0);
    assert_int_equal(buf[0], 0xee);
    assert_int_equal(atomic_load(&r.read_pos), starts[s]);
  }
}

static void test_push_pop_peek_order(void **state) {
  (void)state;
  for (size_t s = 0; s < N_STARTS; s++) {
    struct ring r;
    unsigned char buf[12];
    ring_init(&r, starts[s]);
    for (uint64_t i = 0; i < 5; i++) {
      make_rec(buf, 100 + i);
      assert_int_equal(shm_spsc_push(&r.tx, buf), 0);
      assert_int_equal(atomic_load(&r.write_pos), starts[s] + i + 1);
    }
    assert_int_equal(shm_spsc_avail(&r.rx), 5);
    for (uint64_t i = 0; i < 5; i++) {
      /* peek does not consume: twice the same record, position unchanged. */
      assert_int_equal(shm_spsc_peek(&r.rx, buf), 1);
      assert_int_equal(rec_seq(buf), 100 + i);
      assert_int_equal(shm_spsc_peek(&r.rx, buf), 1);
      assert_int_equal(rec_seq(buf), 100 + i);
      assert_int_equal(atomic_load(&r.read_pos), starts[s] + i);
      assert_int_equal(shm_spsc_pop(&r.rx, buf), 1);
      assert_int_equal(rec_seq(buf), 100 + i);
      assert_int_equal(atomic_load(&r.read_pos), starts[s] + i + 1);
    }
    assert_int_equal(shm_spsc_pop(&r.rx, buf), 0);
    /* pop with NULL discards the record but still consumes it. */
    make_rec(buf, 7);
    assert_int_equal(shm_spsc_push(&r.tx, buf), 0);
    make_rec(buf, 8);
    assert_int_equal(shm_spsc_push(&r.tx, buf), 0);
    assert_int_equal(shm_spsc_pop(&r.rx, NULL), 1);
    assert_int_equal(shm_spsc_pop(&r.rx, buf), 1);
    assert_int_equal(rec_seq(buf), 8);
  }
}

static void test_full_at_capacity(void **state) {
  (void)state;
  for (size_t s = 0; s < N_STARTS; s++) {
    struct ring r;
    unsigned char buf[12];
    ring_init(&r, starts[s]);
    for (uint64_t i = 0; i < CAP; i++) {
      assert_int_equal(shm_spsc_space(&r.tx), CAP - i);
      make_rec(buf, i);
      assert_int_equal(shm_spsc_push(&r.tx, buf), 0);
    }
    assert_int_equal(shm_spsc_space(&r.tx), 0);
    assert_int_equal(shm_spsc_avail(&r.rx), CAP);
    make_rec(buf, 999);
    assert_int_equal(shm_spsc_push(&r.tx, buf), -ENOSPC);
    assert_int_equal(shm_spsc_push(&r.tx, buf), -ENOSPC);
    /* A refused push publishes nothing and overwrites nothing. */
    assert_int_equal(atomic_load(&r.write_pos), starts[s] + CAP);
    assert_int_equal(shm_spsc_peek(&r.rx, buf), 1);
    assert_int_equal(rec_seq(buf), 0);

    assert_int_equal(shm_spsc_pop(&r.rx, buf), 1);
    assert_int_equal(rec_seq(buf), 0);
    make_rec(buf, CAP);
    assert_int_equal(shm_spsc_push(&r.tx, buf), 0);
    assert_int_equal(shm_spsc_push(&r.tx, buf), -ENOSPC);
    for (uint64_t i = 1; i <= CAP; i++) {
      assert_int_equal(shm_spsc_pop(&r.rx, buf), 1);
      assert_int_equal(rec_seq(buf), i);
    }
    assert_int_equal(shm_spsc_pop(&r.rx, buf), 0);
  }
}

static void test_wrap_many_times(void **state) {
  (void)state;
  for (size_t s = 0; s < N_STARTS; s++) {
    struct ring r;
    unsigned char buf[12];
    uint64_t next_in = 0, next_out = 0;
    ring_init(&r, starts[s]);
    /* Batches of varying size, co-prime with the capacity, so every index offset is hit. */
    for (int round = 0; round < 2000; round++) {
      uint32_t push_n = (uint32_t)(round * 7 + 3) % (CAP + 1);
      for (uint32_t i = 0; i < push_n; i++) {
        make_rec(buf, next_in);
        int rc = shm_spsc_push(&r.tx, buf);
        if (next_in - next_out == CAP) {
          assert_int_equal(rc, -ENOSPC);
          break;
        }
        assert_int_equal(rc, 0);
        next_in++;
      }
      uint32_t pop_n = (uint32_t)(round * 5 + 1) % (CAP + 1);
      for (uint32_t i = 0; i < pop_n; i++) {
        int rc = shm_spsc_pop(&r.rx, buf);
        if (next_out == next_in) {
          assert_int_equal(rc, 0);
          break;
        }
        assert_int_equal(rc, 1);
        assert_int_equal(rec_seq(buf), next_out);
        next_out++;
      }
      assert_int_equal(shm_spsc_avail(&r.rx), next_in - next_out);
      assert_int_equal(shm_spsc_space(&r.tx), CAP - (next_in - next_out));
    }
    assert_true(next_out > 100 * CAP);
    assert_int_equal(atomic_load(&r.write_pos), starts[s] + next_in);
    assert_int_equal(atomic_load(&r.read_pos), starts[s] + next_out);
  }
}

static void test_consumer_rejects_bad_write_pos(void **state) {
  (void)state;
  for (size_t s = 0; s < N_STARTS; s++) {
    struct ring r;
    unsigned char buf[12];
    uint64_t p = starts[s] + 3;
    ring_init(&r, p);

    /* Behind our own position: the producer claims to have taken records back. */
    atomic_store(&r.write_pos, p - 1);
    assert_int_equal(shm_spsc_avail(&r.rx), -EPROTO);
    assert_int_equal(shm_spsc_pop(&r.rx, buf), -EPROTO);
    assert_int_equal(shm_spsc_peek(&r.rx, buf), -EPROTO);
    atomic_store(&r.write_pos, p - UINT64_C(0x8000000000000000));
    assert_int_equal(shm_spsc_pop(&r.rx, buf), -EPROTO);

    /* More than a ring ahead: those records cannot exist. */
    atomic_store(&r.write_pos, p + CAP + 1);
    assert_int_equal(shm_spsc_avail(&r.rx), -EPROTO);
    assert_int_equal(shm_spsc_pop(&r.rx, buf), -EPROTO);
    assert_int_equal(shm_spsc_peek(&r.rx, buf), -EPROTO);
    atomic_store(&r.write_pos, UINT64_MAX);
    if (UINT64_MAX - p > CAP)
      assert_int_equal(shm_spsc_pop(&r.rx, buf), -EPROTO);

    /* A failed pop consumes nothing. */
    assert_int_equal(r.rx.pos, p);
    assert_int_equal(atomic_load(&r.read_pos), p);

    /* Exactly a ring ahead is a full ring, which is fine. */
    atomic_store(&r.write_pos, p + CAP);
    assert_int_equal(shm_spsc_avail(&r.rx), CAP);
    assert_int_equal(shm_spsc_pop(&r.rx, NULL), 1);
  }
}

static void test_producer_rejects_bad_read_pos(void **state) {
  (void)state;
  for (size_t s = 0; s < N_STARTS; s++) {
    struct ring r;
    unsigned char buf[12];
    uint64_t p = starts[s] + 3;
    ring_init(&r, p);
    make_rec(buf, 1);

    /* Ahead of what we wrote: the consumer claims records that do not exist. */
    atomic_store(&r.read_pos, p + 1);
    assert_int_equal(shm_spsc_space(&r.tx), -EPROTO);
    assert_int_equal(shm_spsc_push(&r.tx, buf), -EPROTO);

    /* More than a ring behind: it would have lost records. */
    atomic_store(&r.read_pos, p - CAP - 1);
    assert_int_equal(shm_spsc_space(&r.tx), -EPROTO);
    assert_int_equal(shm_spsc_push(&r.tx, buf), -EPROTO);
    atomic_store(&r.read_pos, p + UINT64_C(0x8000000000000000));
    assert_int_equal(shm_spsc_push(&r.tx, buf), -EPROTO);

    /* A refused push publishes nothing. */
    assert_int_equal(r.tx.pos, p);
    assert_int_equal(atomic_load(&r.write_pos), p);

    /* Exactly a ring behind is a full ring. */
    atomic_store(&r.read_pos, p - CAP);
    assert_int_equal(shm_spsc_space(&r.tx), 0);
    assert_int_equal(shm_spsc_push(&r.tx, buf), -ENOSPC);
    atomic_store(&r.read_pos, p);
    assert_int_equal(shm_spsc_push(&r.tx, buf), 0);
  }
}

static void test_queue_rounds_up(void **state) {
  (void)state;
  static const uint32_t asked[] = {1, 2, 3, 5, 8, 9, 1000, 1024, 1025};
  static const uint32_t got[] = {1, 2, 4, 8, 8, 16, 1024, 1024, 2048};
  for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
    struct shm_queue q;
    assert_int_equal(shm_queue_init(&q, 24, asked[i]), 0);
    assert_non_null(q.storage);
    assert_int_equal(q.tx.capacity, got[i]);
    assert_int_equal(q.rx.capacity, got[i]);
    assert_int_equal(q.tx.record_size, 24);

    unsigned char rec[24];
    for (uint32_t k = 0; k < got[i]; k++) {
      memset(rec, (int)(k & 0xff), sizeof(rec));
      assert_int_equal(shm_spsc_push(&q.tx, rec), 0);
    }
    assert_int_equal(shm_spsc_push(&q.tx, rec), -ENOSPC);
    for (uint32_t k = 0; k < got[i]; k++) {
      assert_int_equal(shm_spsc_pop(&q.rx, rec), 1);
      assert_int_equal(rec[0], k & 0xff);
      assert_int_equal(rec[23], k & 0xff);
    }
    assert_int_equal(shm_spsc_pop(&q.rx, rec), 0);
    shm_queue_destroy(&q);
    assert_null(q.storage);
  }
}

static void test_queue_limits(void **state) {
  (void)state;
  struct shm_queue q;
  assert_int_equal(shm_queue_init(&q, 0, 16), -EINVAL);
  assert_null(q.storage);
  shm_queue_destroy(&q); /* safe after a failed init */
  assert_int_equal(shm_queue_init(&q, 16, 0), -EINVAL);
  assert_int_equal(shm_queue_init(&q, 1, (1u << 24) + 1), -EINVAL);
  assert_int_equal(shm_queue_init(&q, 1, UINT32_MAX), -EINVAL);

  assert_int_equal(shm_queue_init(&q, 1, 1u << 24), 0);
  assert_int_equal(q.tx.capacity, 1u << 24);
  shm_queue_destroy(&q);
  assert_int_equal(shm_queue_init(&q, 1, (1u << 23) + 1), 0);
  assert_int_equal(q.rx.capacity, 1u << 24);
  shm_queue_destroy(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_push_pop_peek_order),
      cmocka_unit_test(test_full_at_capacity),
      cmocka_unit_test(test_wrap_many_times),
      cmocka_unit_test(test_consumer_rejects_bad_write_pos),
      cmocka_unit_test(test_producer_rejects_bad_read_pos),
      cmocka_unit_test(test_queue_rounds_up),
      cmocka_unit_test(test_queue_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
