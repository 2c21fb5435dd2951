/*
 * shm/handover: the one-place hand-over and hand-back of immutable objects
 * between the control thread and the RT thread, exercised from one thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "handover.h"

static int obj_a, obj_b, obj_c, obj_d;

static void test_init_is_empty(void **state) {
  (void)state;
  struct shm_handover h;
  shm_handover_init(&h);
  assert_int_equal(shm_handover_pending(&h), 0);
  assert_null(shm_handover_collect(&h));
}

static void test_adopt_without_offer_returns_current(void **state) {
  (void)state;
  struct shm_handover h;
  shm_handover_init(&h);
  assert_ptr_equal(shm_handover_adopt(&h, &obj_a), &obj_a);
  assert_ptr_equal(shm_handover_adopt(&h, &obj_a), &obj_a);
  /* Nothing was replaced, so nothing comes back. */
  assert_null(shm_handover_collect(&h));
  assert_int_equal(shm_handover_pending(&h), 0);
}

static void test_offer_adopt_collect(void **state) {
  (void)state;
  struct shm_handover h;
  shm_handover_init(&h);

  assert_null(shm_handover_offer(&h, &obj_b));
  assert_int_equal(shm_handover_pending(&h), 1);
  assert_null(shm_handover_collect(&h));

  assert_ptr_equal(shm_handover_adopt(&h, &obj_a), &obj_b);
  assert_int_equal(shm_handover_pending(&h), 0);
  assert_ptr_equal(shm_handover_collect(&h), &obj_a);
  assert_null(shm_handover_collect(&h));

  /* Once adopted, the new object stays current. */
  assert_ptr_equal(shm_handover_adopt(&h, &obj_b), &obj_b);
  assert_null(shm_handover_collect(&h));
}

static void test_second_offer_displaces_first(void **state) {
  (void)state;
  struct shm_handover h;
  shm_handover_init(&h);

  assert_null(shm_handover_offer(&h, &obj_b));
  /* The RT thread never saw obj_b: the control thread gets it back to free. */
  assert_ptr_equal(shm_handover_offer(&h, &obj_c), &obj_b);
  assert_int_equal(shm_handover_pending(&h), 1);

  assert_ptr_equal(shm_handover_adopt(&h, &obj_a), &obj_c);
  assert_ptr_equal(shm_handover_collect(&h), &obj_a);
  assert_int_equal(shm_handover_pending(&h), 0);
}

static void test_adopt_waits_for_collect(void **state) {
  (void)state;
  struct shm_handover h;
  shm_handover_init(&h);

  assert_null(shm_handover_offer(&h, &obj_b));
  assert_ptr_equal(shm_handover_adopt(&h, &obj_a), &obj_b); /* obj_a handed back */

  assert_null(shm_handover_offer(&h, &obj_c));
  /* obj_a is still in the hand-back place: adopting now would lose it. */
  assert_ptr_equal(shm_handover_adopt(&h, &obj_b), &obj_b);
  assert_ptr_equal(shm_handover_adopt(&h, &obj_b), &obj_b);
  assert_int_equal(shm_handover_pending(&h), 1);

  assert_ptr_equal(shm_handover_collect(&h), &obj_a);
  assert_ptr_equal(shm_handover_adopt(&h, &obj_b), &obj_c);
  assert_int_equal(shm_handover_pending(&h), 0);
  assert_ptr_equal(shm_handover_collect(&h), &obj_b);
  assert_null(shm_handover_collect(&h));
}

static void test_offer_null_withdraws(void **state) {
  (void)state;
  struct shm_handover h;
  shm_handover_init(&h);

  assert_null(shm_handover_offer(&h, &obj_d));
  /* Offering NULL takes back the pending object: nothing is left to adopt. */
  assert_ptr_equal(shm_handover_offer(&h, NULL), &obj_d);
  assert_int_equal(shm_handover_pending(&h), 0);
  assert_ptr_equal(shm_handover_adopt(&h, &obj_a), &obj_a);
  assert_null(shm_handover_collect(&h));
}

static void test_many_generations(void **state) {
  (void)state;
  struct shm_handover h;
  int objs[8];
  void *current = &objs[0];
  shm_handover_init(&h);

  for (int i = 1; i < 1000; i++) {
    void *next = &objs[i % 8];
    assert_null(shm_handover_offer(&h, next));
    void *adopted = shm_handover_adopt(&h, current);
    assert_ptr_equal(adopted, next);
    assert_ptr_equal(shm_handover_collect(&h), current);
    current = adopted;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_is_empty),
      cmocka_unit_test(test_adopt_without_offer_returns_current),
      cmocka_unit_test(test_offer_adopt_collect),
      cmocka_unit_test(test_second_offer_displaces_first),
      cmocka_unit_test(test_adopt_waits_for_collect),
      cmocka_unit_test(test_offer_null_withdraws),
      cmocka_unit_test(test_many_generations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
