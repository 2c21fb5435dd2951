/*
 * daemon/persist (files): base64 of plugin state blobs, as RFC 4648 writes
 * it, and where the state directory is. The atomic writes on a full or
 * read-only disk run in it_state_dir against a real tmpfs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "persist.h"

/* ---- base64 ------------------------------------------------------------------------ */

static void expect_encoding(const char *plain, const char *want) {
  char *got = persist_base64_encode((const unsigned char *)plain, strlen(plain));
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

static void test_encode_rfc4648_vectors(void **state) {
  (void)state;
  /* RFC 4648, section 10. */
  expect_encoding("", "");
  expect_encoding("f", "Zg==");
  expect_encoding("fo", "Zm8=");
  expect_encoding("foo", "Zm9v");
  expect_encoding("foob", "Zm9vYg==");
  expect_encoding("fooba", "Zm9vYmE=");
  expect_encoding("foobar", "Zm9vYmFy");
}

static void expect_decoding(const char *text, const char *want) {
  unsigned char *out = NULL;
  size_t len = 12345;
  assert_int_equal(persist_base64_decode(text, &out, &len), 0);
  assert_non_null(out);
  assert_int_equal(len, strlen(want));
  assert_memory_equal(out, want, len);
  free(out);
}

static void test_decode_rfc4648_vectors(void **state) {
  (void)state;
  expect_decoding("", "");
  expect_decoding("Zg==", "f");
  expect_decoding("Zm8=", "fo");
  expect_decoding("Zm9v", "foo");
  expect_decoding("Zm9vYg==", "foob");
  expect_decoding("Zm9vYmE=", "fooba");
  expect_decoding("Zm9vYmFy", "foobar");
}

static void test_every_byte_round_trips(void **state) {
  (void)state;
  unsigned char data[769];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (unsigned char)(i * 167u + 13u);
  /* Every length mod 3, every byte value, the whole alphabet with + and /. */
  for (size_t len = 0; len <= sizeof(data); len += len < 16 ? 1 : 61) {
    char *text = persist_base64_encode(data, len);
    assert_non_null(text);
    assert_int_equal(strlen(text), (len + 2) / 3 * 4);
    unsigned char *back = NULL;
    size_t back_len = 0;
    assert_int_equal(persist_base64_decode(text, &back, &back_len), 0);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, data, len);
    free(back);
    free(text);
  }
  char *text = persist_base64_encode((const unsigned char *)"\xfb\xff\xbf", 3);
  assert_string_equal(text, "+/+/");
  free(text);
}

static void expect_invalid(const char *text) {
  unsigned char *out = (unsigned char *)"untouched";
  size_t len = 7;
  assert_int_equal(persist_base64_decode(text, &out, &len), -EINVAL);
  /* Nothing handed out on failure. */
  assert_string_equal((const char *)out, "untouched");
  assert_int_equal(len, 7);
}

static void test_decode_refuses_what_is_not_base64(void **state) {
  (void)state;
  expect_invalid("Z"); /* not a multiple of four */
  expect_invalid("Zm9vY");
  expect_invalid("Zm9v\n"); /* whitespace */
  expect_invalid("Zm 9v");
  expect_invalid("Zm9-"); /* base64url's alphabet */
  expect_invalid("Zm9_");
  expect_invalid("Zg==Zg=="); /* padding only at the very end */
  expect_invalid("Z===");     /* at most two padding characters */
  expect_invalid("====");
  expect_invalid("Zg=a");    /* no data after padding */
  expect_invalid("Zm\x80v"); /* non-ASCII */
}

static void test_decode_refuses_nonzero_pad_bits(void **state) {
  (void)state;
  /*
   * persist.h promises -EINVAL for anything that is not canonical base64.
   * RFC 4648 3.5: the bits a final group leaves over are zero; otherwise two
   * texts decode to the same bytes, and a state file is not one text per
   * blob. "f" is "Zg==", never "Zh=="; "fo" is "Zm8=", never "Zm9=".
   */
  expect_invalid("Zh==");
  expect_invalid("Zm9=");
  expect_invalid("Zm9vYh==");
}

/* ---- the state directory ------------------------------------------------------------ */

static void test_state_dir_explicit_wins(void **state) {
  (void)state;
  char buf[256];
  setenv("XDG_STATE_HOME", "/xdg", 1);
  assert_int_equal(persist_state_dir("/given/dir", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/given/dir");
  /* Empty is not given. */
  assert_int_equal(persist_state_dir("", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/xdg/runway");
}

static void test_state_dir_ignores_a_relative_xdg(void **state) {
  (void)state;
  char buf[256];
  setenv("XDG_STATE_HOME", "relative", 1);
  setenv("HOME", "/home/someone", 1);
  assert_int_equal(persist_state_dir(NULL, buf, sizeof(buf)), 0);
  /* Relative XDG paths are invalid (XDG Base Directory spec): the next rule applies. */
  assert_string_not_equal(buf, "relative/runway");
  assert_true(buf[0] == '/');
}

static void test_state_dir_too_long(void **state) {
  (void)state;
  char buf[16];
  assert_int_equal(persist_state_dir("/a/rather/long/state/directory", buf, sizeof(buf)),
                   -ENAMETOOLONG);
  setenv("XDG_STATE_HOME", "/0123456789", 1);
  /* "/0123456789/runway" is 18 bytes with its NUL. */
  assert_int_equal(persist_state_dir(NULL, buf, sizeof(buf)), -ENAMETOOLONG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_rfc4648_vectors),
      cmocka_unit_test(test_decode_rfc4648_vectors),
      cmocka_unit_test(test_every_byte_round_trips),
      cmocka_unit_test(test_decode_refuses_what_is_not_base64),
      cmocka_unit_test(test_decode_refuses_nonzero_pad_bits),
      cmocka_unit_test(test_state_dir_explicit_wins),
      cmocka_unit_test(test_state_dir_ignores_a_relative_xdg),
      cmocka_unit_test(test_state_dir_too_long),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
