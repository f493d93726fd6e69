// Command decoder: bare text and {"label","value"} objects, from (ptr,len).
#include <string.h>
#include <unity.h>

#include "gwproto.h"

using namespace gwproto;

void setUp(void) {}
void tearDown(void) {}

static DecodeStatus decode(const char* s, Command* c) { return decode_command(s, strlen(s), c); }

static void test_bare_toggle(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("toggle", &c));
  TEST_ASSERT_TRUE(c.bare);
  TEST_ASSERT_FALSE(c.has_label);
  TEST_ASSERT_EQUAL_INT(kValueString, c.type);
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
  TEST_ASSERT_EQUAL_size_t(6, c.value_len);
}

static void test_bare_trims_whitespace_and_crlf(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("  \ttoggle\r\n", &c));
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("toggle\n", &c));
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
}

static void test_bare_not_nul_terminated(void) {
  const char in[] = {'t', 'o', 'g', 'g', 'l', 'e', 'X', 'Y'};
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_command(in, 6, &c));
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
}

static void test_bare_rejects(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeEmpty, decode("", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeEmpty, decode(" \r\n\t", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeEmpty, decode_command(NULL, 5, &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNotPrintable, decode("toggle now", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNotPrintable, decode("caf\xc3\xa9", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNotPrintable, decode("a\x01", &c));
  const char nul[] = {'a', '\0', 'b'};
  TEST_ASSERT_EQUAL_INT(kDecodeNotPrintable, decode_command(nul, 3, &c));
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("abcdefghijklmnopqrstuvwxyz012345", &c));  // 32
  TEST_ASSERT_EQUAL_INT(kDecodeTooLong, decode("abcdefghijklmnopqrstuvwxyz0123456", &c));
  // A failed decode leaves an empty command.
  TEST_ASSERT_EQUAL_INT(kValueNone, c.type);
  TEST_ASSERT_EQUAL_size_t(0, c.value_len);
}

static void test_json_label_and_value(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"label\":\"led\",\"value\":\"toggle\"}", &c));
  TEST_ASSERT_FALSE(c.bare);
  TEST_ASSERT_TRUE(c.has_label);
  TEST_ASSERT_EQUAL_STRING("led", c.label);
  TEST_ASSERT_EQUAL_size_t(3, c.label_len);
  TEST_ASSERT_EQUAL_INT(kValueString, c.type);
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
}

static void test_json_value_only(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"toggle\"}", &c));
  TEST_ASSERT_FALSE(c.has_label);
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
}

static void test_json_whitespace_and_order(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk,
                        decode(" \r\n{ \"value\" :\t\"on\" ,\n \"label\" : \"led\" }\r\n", &c));
  TEST_ASSERT_EQUAL_STRING("led", c.label);
  TEST_ASSERT_EQUAL_STRING("on", c.value);
}

static void test_json_string_escapes(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk,
                        decode("{\"value\":\"a\\\"b\\\\c\\/d\\n\\r\\t\\b\\f\"}", &c));
  TEST_ASSERT_EQUAL_STRING("a\"b\\c/d\n\r\t\b\f", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"caf\\u00e9 \\u20AC\"}", &c));
  TEST_ASSERT_EQUAL_STRING("caf\xc3\xa9 \xe2\x82\xac", c.value);
}

static void test_json_surrogates(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"\\ud83d\\ude00\"}", &c));
  TEST_ASSERT_EQUAL_STRING("\xf0\x9f\x98\x80", c.value);
  // A lone high or low surrogate becomes U+FFFD; what follows is kept.
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"\\ud800x\"}", &c));
  TEST_ASSERT_EQUAL_STRING("\xef\xbf\xbdx", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"\\udc00\"}", &c));
  TEST_ASSERT_EQUAL_STRING("\xef\xbf\xbd", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"\\ud800\\u0041\"}", &c));
  TEST_ASSERT_EQUAL_STRING("\xef\xbf\xbd" "A", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeBadJson, decode("{\"value\":\"\\ud800\\u00\"}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeBadJson, decode("{\"value\":\"\\uZZZZ\"}", &c));
}

static void test_json_escaped_nul_is_kept(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"a\\u0000b\"}", &c));
  TEST_ASSERT_EQUAL_size_t(3, c.value_len);
  TEST_ASSERT_EQUAL_MEMORY("a\0b", c.value, 3);
}

static void test_json_scalars(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":1}", &c));
  TEST_ASSERT_EQUAL_INT(kValueNumber, c.type);
  TEST_ASSERT_EQUAL_STRING("1", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":-2.5e+3}", &c));
  TEST_ASSERT_EQUAL_STRING("-2.5e+3", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":0.5E-2}", &c));
  TEST_ASSERT_EQUAL_STRING("0.5E-2", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":true}", &c));
  TEST_ASSERT_EQUAL_INT(kValueBool, c.type);
  TEST_ASSERT_EQUAL_STRING("true", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":false}", &c));
  TEST_ASSERT_EQUAL_STRING("false", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":null}", &c));
  TEST_ASSERT_EQUAL_INT(kValueNull, c.type);
}

static void test_json_bad_numbers(void) {
  Command c;
  const char* bad[] = {"{\"value\":01}", "{\"value\":1.}",  "{\"value\":-}",  "{\"value\":.5}",
                       "{\"value\":1e}", "{\"value\":+1}",  "{\"value\":0x1}", "{\"value\":NaN}",
                       "{\"value\":tru}", "{\"value\":nul}", "{\"value\":True}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    TEST_ASSERT_EQUAL_INT(kDecodeBadJson, decode(bad[i], &c));
  }
}

static void test_json_nested_refused(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeNested, decode("{\"value\":{\"a\":1}}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNested, decode("{\"value\":[1]}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNested, decode("{\"x\":{\"y\":1},\"value\":1}", &c));
}

static void test_json_unknown_keys_ignored_and_last_wins(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(
      kDecodeOk,
      decode("{\"id\":\"c1\",\"value\":\"toggle\",\"n\":12,\"ok\":true,\"z\":null}", &c));
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("{\"value\":\"on\",\"value\":\"off\"}", &c));
  TEST_ASSERT_EQUAL_STRING("off", c.value);
  // A key longer than any known key is skipped whole.
  TEST_ASSERT_EQUAL_INT(
      kDecodeOk,
      decode("{\"a_very_long_key_that_is_longer_than_32_bytes\":\"x\",\"value\":2}", &c));
  TEST_ASSERT_EQUAL_STRING("2", c.value);
}

static void test_json_bad_label(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeBadLabel, decode("{\"label\":\"bad label\",\"value\":1}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeBadLabel, decode("{\"label\":5,\"value\":1}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeBadLabel, decode("{\"label\":null,\"value\":1}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeBadLabel, decode("{\"label\":\"\",\"value\":1}", &c));
  TEST_ASSERT_EQUAL_INT(
      kDecodeBadLabel,
      decode("{\"label\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"value\":1}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeOk,
                        decode("{\"label\":\"abcdefghijklmnopqrstuvwxyz012345\",\"value\":1}", &c));
  TEST_ASSERT_EQUAL_size_t(32, c.label_len);
}

static void test_json_no_value(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeNoValue, decode("{\"label\":\"led\"}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNoValue, decode("{}", &c));
  TEST_ASSERT_EQUAL_INT(kDecodeNoValue, decode("{ }", &c));
}

static void test_json_malformed(void) {
  Command c;
  const char* bad[] = {
      "{",
      "{\"value\":\"toggle\"",
      "{\"value\" \"x\"}",
      "{\"value\":1} x",
      "{\"value\":1,}",
      "{,\"value\":1}",
      "{\"value\":\"unterminated}",
      "{\"value\":\"raw\ncontrol\"}",
      "{'value':1}",
      "{value:1}",
      "{\"value\":\"\\x\"}",
      "{\"value\":1}}",
      "{\"value\":}",
      "\"unterminated",
      "\"a\" b",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    TEST_ASSERT_EQUAL_INT(kDecodeBadJson, decode(bad[i], &c));
  }
}

static void test_quoted_string_command(void) {
  Command c;
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode("\"toggle\"", &c));
  TEST_ASSERT_FALSE(c.bare);
  TEST_ASSERT_EQUAL_STRING("toggle", c.value);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode(" \"set point\" \r\n", &c));
  TEST_ASSERT_EQUAL_STRING("set point", c.value);
}

static void test_sizes(void) {
  Command c;
  char in[Command::kMaxInput + 2];
  // 64-byte value fits; 65 does not.
  char v[Command::kMaxValue + 2];
  memset(v, 'x', sizeof v);
  int n = snprintf(in, sizeof in, "{\"value\":\"%.*s\"}", static_cast<int>(Command::kMaxValue), v);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_command(in, static_cast<size_t>(n), &c));
  TEST_ASSERT_EQUAL_size_t(Command::kMaxValue, c.value_len);
  n = snprintf(in, sizeof in, "{\"value\":\"%.*s\"}", static_cast<int>(Command::kMaxValue + 1), v);
  TEST_ASSERT_EQUAL_INT(kDecodeValueTooLong, decode_command(in, static_cast<size_t>(n), &c));
  n = snprintf(in, sizeof in, "\"%.*s\"", static_cast<int>(Command::kMaxValue + 1), v);
  TEST_ASSERT_EQUAL_INT(kDecodeValueTooLong, decode_command(in, static_cast<size_t>(n), &c));
  // Input over kMaxInput is refused unread, even if it is only padding.
  memset(in, ' ', sizeof in);
  memcpy(in, "toggle", 6);
  TEST_ASSERT_EQUAL_INT(kDecodeOk, decode_command(in, Command::kMaxInput, &c));
  TEST_ASSERT_EQUAL_INT(kDecodeTooLong, decode_command(in, Command::kMaxInput + 1, &c));
  // A long number is refused too.
  char num[Command::kMaxValue + 20];
  memset(num, '1', sizeof num);
  n = snprintf(in, sizeof in, "{\"value\":%.*s}", static_cast<int>(sizeof num), num);
  TEST_ASSERT_EQUAL_INT(kDecodeValueTooLong, decode_command(in, static_cast<size_t>(n), &c));
}

static void test_status_names(void) {
  TEST_ASSERT_EQUAL_STRING("ok", decode_status_name(kDecodeOk));
  TEST_ASSERT_EQUAL_STRING("bad-json", decode_status_name(kDecodeBadJson));
  TEST_ASSERT_EQUAL_STRING("value-too-long", decode_status_name(kDecodeValueTooLong));
}

// Random bytes and mutations of valid commands: any status is fine, but the
// decoder must stay in bounds (ASan) and keep its outputs consistent.
static void test_random_input_is_safe(void) {
  XorShift32 rng(2024);
  const char* seeds[] = {"{\"label\":\"led\",\"value\":\"toggle\"}", "{\"value\":\"\\ud83d\\ude00\"}",
                         "toggle", "{\"value\":-1.5e3}", "\"quoted\""};
  for (int iter = 0; iter < 20000; iter++) {
    char in[96];
    size_t n;
    if (iter % 2 == 0) {
      n = rng.next() % sizeof in;
      for (size_t i = 0; i < n; i++) in[i] = static_cast<char>(rng.next());
    } else {
      const char* s = seeds[rng.next() % (sizeof seeds / sizeof seeds[0])];
      n = strlen(s);
      memcpy(in, s, n);
      for (int k = 0; k < 3; k++) in[rng.next() % n] = static_cast<char>(rng.next());
      n = rng.next() % (n + 1);
    }
    Command c;
    DecodeStatus st = decode_command(in, n, &c);
    TEST_ASSERT_TRUE(st >= kDecodeOk && st <= kDecodeValueTooLong);
    TEST_ASSERT_TRUE(c.value_len <= Command::kMaxValue);
    TEST_ASSERT_TRUE(c.label_len <= Command::kMaxLabel);
    if (st == kDecodeOk) {
      TEST_ASSERT_TRUE(c.type != kValueNone);
      TEST_ASSERT_EQUAL_INT('\0', c.value[c.value_len]);
      if (c.has_label) TEST_ASSERT_TRUE(valid_label(c.label, c.label_len));
    }
  }
}

int main(void) {
  UNITY_BEGIN();
  RUN_TEST(test_bare_toggle);
  RUN_TEST(test_bare_trims_whitespace_and_crlf);
  RUN_TEST(test_bare_not_nul_terminated);
  RUN_TEST(test_bare_rejects);
  RUN_TEST(test_json_label_and_value);
  RUN_TEST(test_json_value_only);
  RUN_TEST(test_json_whitespace_and_order);
  RUN_TEST(test_json_string_escapes);
  RUN_TEST(test_json_surrogates);
  RUN_TEST(test_json_escaped_nul_is_kept);
  RUN_TEST(test_json_scalars);
  RUN_TEST(test_json_bad_numbers);
  RUN_TEST(test_json_nested_refused);
  RUN_TEST(test_json_unknown_keys_ignored_and_last_wins);
  RUN_TEST(test_json_bad_label);
  RUN_TEST(test_json_no_value);
  RUN_TEST(test_json_malformed);
  RUN_TEST(test_quoted_string_command);
  RUN_TEST(test_sizes);
  RUN_TEST(test_status_names);
  RUN_TEST(test_random_input_is_safe);
  return UNITY_END();
}
