/*
 * daemon/slots/params: a slot's parameter table, from the catalog or from a
 * worker's info block (untrusted shared memory), and the values the daemon
 * keeps for it.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "params.h"

static struct rw_info *info_new(void) {
  struct rw_info *info = calloc(1, sizeof(*info));
  assert_non_null(info);
  return info;
}

static void declare(struct rw_info *info, uint32_t id, const char *name, float min, float max,
                    float def, const char *unit) {
  struct rw_param_desc *d = &info->params[info->n_params++];
  d->id = id;
  d->min = min;
  d->max = max;
  d->def = def;
  snprintf(d->name, sizeof(d->name), "%s", name);
  snprintf(d->unit, sizeof(d->unit), "%s", unit);
}

/* params_from_info must refuse this info block with -EPROTO and a message (ASan: no leak). */
static void expect_refused(const struct rw_info *info, const char *why) {
  struct param_table t;
  char err[256] = "";
  int rc = params_from_info(&t, info, err, sizeof(err));
  if (rc != -EPROTO || err[0] == '\0')
    fail_msg("%s: params_from_info returned %d (\"%s\"), want -EPROTO with a message", why, rc,
             err);
}

/* ---- from a worker's info block ------------------------------------------------------- */

static void test_info_valid(void **state) {
  (void)state;
  struct rw_info *info = info_new();
  declare(info, 7, "gain_db", -60, 12, 0, "dB");
  declare(info, 9, "Mix_2", 0, 1, 0.25f, "");
  struct param_table t;
  char err[256];
  assert_int_equal(params_from_info(&t, info, err, sizeof(err)), 0);
  assert_int_equal(t.n, 2);
  assert_int_equal(t.defs[0].id, 7);
  assert_string_equal(t.defs[0].name, "gain_db");
  assert_string_equal(t.defs[0].unit, "dB");
  assert_true(t.defs[0].min == -60 && t.defs[0].max == 12 && t.defs[0].def == 0);
  assert_true(t.values[0] == 0);
  assert_string_equal(t.defs[1].name, "Mix_2");
  assert_true(t.values[1] == 0.25f);
  params_free(&t);
  assert_null(t.defs);
  free(info);
}

static void test_info_no_params(void **state) {
  (void)state;
  struct rw_info *info = info_new();
  struct param_table t;
  char err[256];
  assert_int_equal(params_from_info(&t, info, err, sizeof(err)), 0);
  assert_int_equal(t.n, 0);
  params_free(&t);
  free(info);
}

static void test_info_defaults_clamped(void **state) {
  (void)state;
  struct rw_info *info = info_new();
  declare(info, 1, "low", 0, 1, -5, "");
  declare(info, 2, "high", 0, 1, 7, "");
  declare(info, 3, "point", 2, 2, 2, "");
  struct param_table t;
  char err[256];
  assert_int_equal(params_from_info(&t, info, err, sizeof(err)), 0);
  assert_true(t.defs[0].def == 0 && t.values[0] == 0);
  assert_true(t.defs[1].def == 1 && t.values[1] == 1);
  assert_true(t.defs[2].def == 2 && t.values[2] == 2); /* min == max is a fixed value */
  params_free(&t);
  free(info);
}

static void test_info_strings_terminated(void **state) {
  (void)state;
  struct rw_info *info = info_new();
  declare(info, 1, "x", 0, 1, 0, "");
  /* No NUL anywhere in name or unit: the copy ends them itself. */
  memset(info->params[0].name, 'n', sizeof(info->params[0].name));
  memset(info->params[0].unit, 'u', sizeof(info->params[0].unit));
  struct param_table t;
  char err[256];
  assert_int_equal(params_from_info(&t, info, err, sizeof(err)), 0);
  assert_int_equal(strlen(t.defs[0].name), RW_NAME_MAX - 1);
  assert_int_equal(strlen(t.defs[0].unit), RW_UNIT_MAX - 1);
  params_free(&t);
  free(info);
}

static void test_info_too_many(void **state) {
  (void)state;
  struct rw_info *info = info_new();
  info->n_params = RW_MAX_PARAMS + 1;
  expect_refused(info, "more than RW_MAX_PARAMS");
  info->n_params = UINT32_MAX;
  expect_refused(info, "a count from garbage");
  free(info);
}

static void test_info_bad_names(void **state) {
  (void)state;
  static const char *const names[] = {"",     "a b", "a-b", "gain.db", "x\"", "\xc3\xa9t\xc3\xa9",
                                      "tab\t"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    struct rw_info *info = info_new();
    declare(info, 1, "fine", 0, 1, 0, "");
    declare(info, 2, names[i], 0, 1, 0, "");
    expect_refused(info, names[i]);
    free(info);
  }
}

static void test_info_bad_units(void **state) {
  (void)state;
  static const char *const units[] = {"\x01", "a\"b", "a\\b", "\x7f", "line\n"};
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    struct rw_info *info = info_new();
    declare(info, 1, "p", 0, 1, 0, units[i]);
    expect_refused(info, units[i]);
    free(info);
  }
}

static void test_info_bad_ranges(void **state) {
  (void)state;
  const float bad[][3] = {
      {NAN, 1, 0},      {0, NAN, 0},      {0, 1, NAN},  {-INFINITY, 1, 0},
      {0, INFINITY, 0}, {0, 1, INFINITY}, {2, 1, 1.5f},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct rw_info *info = info_new();
    declare(info, 1, "p", bad[i][0], bad[i][1], bad[i][2], "");
    expect_refused(info, "range");
    free(info);
  }
}

static void test_info_duplicates(void **state) {
  (void)state;
  struct rw_info *info = info_new();
  declare(info, 1, "a", 0, 1, 0, "");
  declare(info, 2, "b", 0, 1, 0, "");
  declare(info, 1, "c", 0, 1, 0, "");
  expect_refused(info, "the same id twice");
  free(info);
  info = info_new();
  declare(info, 1, "a", 0, 1, 0, "");
  declare(info, 2, "b", 0, 1, 0, "");
  declare(info, 3, "a", 0, 1, 0, "");
  expect_refused(info, "the same name twice");
  free(info);
}

/* ---- from the catalog ----------------------------------------------------------------- */

static void test_catalog(void **state) {
  (void)state;
  struct catalog_param cp[2] = {
      {.id = 0, .name = "time_ms", .min = 1, .max = 2000, .def = 250, .unit = "ms"},
      {.id = 1, .name = "mix", .min = 0, .max = 1, .def = 0.5, .unit = ""},
  };
  struct catalog_plugin plugin = {.name = "delay", .params = cp, .n_params = 2};
  struct param_table t;
  assert_int_equal(params_from_catalog(&t, &plugin), 0);
  assert_int_equal(t.n, 2);
  assert_string_equal(t.defs[0].name, "time_ms");
  assert_string_equal(t.defs[0].unit, "ms");
  assert_true(t.values[0] == 250 && t.values[1] == 0.5f);
  params_free(&t);
}

/* ---- values --------------------------------------------------------------------------- */

static void table_of(struct param_table *t) {
  struct rw_info *info = info_new();
  declare(info, 10, "gain_db", -60, 12, 0, "dB");
  declare(info, 11, "mix", 0, 1, 1, "");
  char err[256];
  assert_int_equal(params_from_info(t, info, err, sizeof(err)), 0);
  free(info);
}

static void test_clamp(void **state) {
  (void)state;
  struct param_table t;
  table_of(&t);
  bool clamped = true;
  assert_true(params_clamp(&t.defs[0], -6, &clamped) == -6 && !clamped);
  assert_true(params_clamp(&t.defs[0], 100, &clamped) == 12 && clamped);
  assert_true(params_clamp(&t.defs[0], -1e300, &clamped) == -60 && clamped);
  assert_true(params_clamp(&t.defs[0], NAN, &clamped) == -60 && clamped);
  assert_true(params_clamp(&t.defs[0], INFINITY, &clamped) == 12 && clamped);
  assert_true(params_clamp(&t.defs[0], 12, NULL) == 12);
  params_free(&t);
}

static void test_find(void **state) {
  (void)state;
  struct param_table t;
  table_of(&t);
  json_t *k = json_string("mix");
  assert_int_equal(params_find(&t, k), 1);
  json_decref(k);
  k = json_integer(10);
  assert_int_equal(params_find(&t, k), 0);
  json_decref(k);
  k = json_string("nope");
  assert_int_equal(params_find(&t, k), -1);
  json_decref(k);
  k = json_integer(1);
  assert_int_equal(params_find(&t, k), -1); /* an index is not an id */
  json_decref(k);
  k = json_real(10.0);
  assert_int_equal(params_find(&t, k), -1);
  json_decref(k);
  assert_int_equal(params_find(&t, NULL), -1);
  params_free(&t);
}

static void test_apply_json(void **state) {
  (void)state;
  struct param_table t;
  table_of(&t);
  json_t *v =
      json_pack("{s:f, s:i, s:s, s:f}", "gain_db", -6.5, "mix", 7, "unknown", "x", "other", 1.0);
  params_apply_json(&t, v);
  assert_true(t.values[0] == -6.5f);
  assert_true(t.values[1] == 1); /* clamped */
  json_decref(v);
  v = json_pack("{s:s, s:n, s:b}", "gain_db", "-3", "mix", "gain_db2", 1);
  params_apply_json(&t, v); /* strings, nulls, booleans: skipped */
  assert_true(t.values[0] == -6.5f);
  json_decref(v);
  v = json_pack("[f]", 1.0);
  params_apply_json(&t, v); /* not an object: nothing */
  params_apply_json(&t, NULL);
  assert_true(t.values[0] == -6.5f);
  json_decref(v);
  params_free(&t);
}

static void test_carry_values(void **state) {
  (void)state;
  struct param_table old, t;
  table_of(&old);
  old.values[0] = -20;
  old.values[1] = 0.5f;
  /* The new generation's worker declares other ranges and one parameter fewer. */
  struct rw_info *info = info_new();
  declare(info, 1, "gain_db", -12, 12, 0, "dB");
  declare(info, 2, "drive", 0, 10, 3, "");
  char err[256];
  assert_int_equal(params_from_info(&t, info, err, sizeof(err)), 0);
  params_carry_values(&t, &old);
  assert_true(t.values[0] == -12); /* by name, clamped to the new range */
  assert_true(t.values[1] == 3);   /* no old value: its default */
  params_free(&t);
  params_free(&old);
  free(info);
}

static void test_json_views(void **state) {
  (void)state;
  struct param_table t;
  table_of(&t);
  t.values[0] = -3;
  json_t *list = params_list_json(&t);
  assert_int_equal(json_array_size(list), 2);
  json_t *p = json_array_get(list, 0);
  assert_int_equal(json_integer_value(json_object_get(p, "id")), 10);
  assert_string_equal(json_string_value(json_object_get(p, "name")), "gain_db");
  assert_string_equal(json_string_value(json_object_get(p, "unit")), "dB");
  assert_true(json_real_value(json_object_get(p, "min")) == -60);
  assert_true(json_real_value(json_object_get(p, "max")) == 12);
  assert_true(json_real_value(json_object_get(p, "default")) == 0);
  assert_true(json_real_value(json_object_get(p, "value")) == -3);
  json_decref(list);
  json_t *values = params_values_json(&t);
  assert_int_equal(json_object_size(values), 2);
  assert_true(json_real_value(json_object_get(values, "gain_db")) == -3);
  assert_true(json_real_value(json_object_get(values, "mix")) == 1);
  json_decref(values);
  params_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_info_valid),
      cmocka_unit_test(test_info_no_params),
      cmocka_unit_test(test_info_defaults_clamped),
      cmocka_unit_test(test_info_strings_terminated),
      cmocka_unit_test(test_info_too_many),
      cmocka_unit_test(test_info_bad_names),
      cmocka_unit_test(test_info_bad_units),
      cmocka_unit_test(test_info_bad_ranges),
      cmocka_unit_test(test_info_duplicates),
      cmocka_unit_test(test_catalog),
      cmocka_unit_test(test_clamp),
      cmocka_unit_test(test_find),
      cmocka_unit_test(test_apply_json),
      cmocka_unit_test(test_carry_values),
      cmocka_unit_test(test_json_views),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
